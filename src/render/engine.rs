//! The one template environment: embedded templates, overridable file by
//! file from `--templates DIR`, with output escaping chosen by file type.
//!
//! In `*.yaml.j2` templates every `{{ value }}` goes through the YAML
//! formatter: strings become scalars that read back identically under YAML
//! 1.1 and 1.2, numbers and booleans stay plain, and a map or list is an
//! error unless it passes through `to_yaml(indent)`. A template therefore
//! cannot emit an unquoted `on`, `0755`, `a: b` or a newline from a value.
//! Undefined variables are errors, and templates see no clock, environment
//! or files.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

use crate::yaml::emit::{Node, double_quoted, is_plain_safe, quote_str, value_after_key};

/// Builds the environment. Templates in `overrides` replace the embedded
/// ones of the same relative path; the rest fall back to the embedded ones.
pub fn environment(overrides: Option<&Path>) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let mut syntax = minijinja::syntax::SyntaxConfig::builder();
    syntax.trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(true);
    env.set_syntax(syntax.build().context("template syntax configuration")?);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".yaml.j2") || name.ends_with(".yml.j2") {
            AutoEscape::Custom("yaml".into())
        } else if name.ends_with(".env.j2") {
            AutoEscape::Custom("dotenv".into())
        } else if name.ends_with(".md.j2") {
            AutoEscape::Custom("markdown".into())
        } else if name.ends_with(".sql.j2") {
            AutoEscape::Custom("sql".into())
        } else {
            AutoEscape::Custom("refuse".into())
        }
    });
    env.set_formatter(format_value);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("indent", indent);
    env.add_filter("yaml_lines", yaml_lines);

    let dir: Option<Arc<PathBuf>> = overrides.map(|p| Arc::new(p.to_path_buf()));
    if let Some(d) = &dir
        && !d.is_dir()
    {
        bail!("template directory `{}` does not exist", d.display());
    }
    env.set_loader(move |name| {
        if let Some(d) = &dir {
            if name.split('/').any(|seg| seg == ".." || seg.is_empty()) {
                return Err(Error::new(ErrorKind::InvalidOperation, format!("invalid template name `{name}`")));
            }
            // Never through a symbolic link: a template is a file of the
            // directory itself, so an override cannot read what lies
            // elsewhere (`/proc/self/environ`, a key file).
            let mut path = d.to_path_buf();
            let mut found = true;
            for seg in name.split('/') {
                path.push(seg);
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            format!(
                                "template `{}` is a symbolic link; overrides are read only from files inside the template directory",
                                path.display()
                            ),
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        found = false;
                        break;
                    }
                }
            }
            if found && path.is_file() {
                return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                    Error::new(ErrorKind::InvalidOperation, format!("cannot read template `{}`: {e}", path.display()))
                });
            }
        }
        Ok(embedded(name).map(str::to_string))
    });
    Ok(env)
}

/// A file of a template directory that overrides no template.
pub enum Unused {
    /// A symbolic link: never read.
    Link(String),
    /// A file that is no template's name (a misspelt `deploymnet.yaml.j2`),
    /// with the closest template name, if one is close.
    Unknown(String, Option<&'static str>),
}

/// The files of a template directory that override no template stackgen
/// renders or includes, relative to it, sorted.
pub fn unused_overrides(dir: &Path) -> Vec<Unused> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, bool)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            // `file_type` does not follow a link: a linked directory is a link.
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path(), &rel, out),
                Ok(t) => out.push((rel, t.is_symlink())),
                Err(_) => {}
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, "", &mut files);
    files.sort();
    let names = || crate::embedded::TEMPLATES.iter().map(|(n, _)| *n);
    files
        .into_iter()
        .filter_map(|(f, link)| match (link, embedded(&f)) {
            (true, _) => Some(Unused::Link(f)),
            (false, None) => {
                let near = crate::diagnostic::did_you_mean(&f, names());
                Some(Unused::Unknown(f, near))
            }
            (false, Some(_)) => None,
        })
        .collect()
}

/// The embedded template of that relative path.
fn embedded(name: &str) -> Option<&'static str> {
    crate::embedded::TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

fn format_value(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if value.is_safe() {
        return out.write_str(value.as_str().unwrap_or_default()).map_err(Error::from);
    }
    match state.auto_escape() {
        AutoEscape::Custom(kind) if kind == "yaml" => yaml_value(out, value),
        // dotenv comments and values: one line, nothing a dotenv reader
        // would interpolate or end early.
        AutoEscape::Custom(kind) if kind == "dotenv" => {
            let text = text_of(value);
            out.write_str(&one_line(&text, Some('$'))).map_err(Error::from)
        }
        // Markdown: one line, and nothing that closes a code fence.
        AutoEscape::Custom(kind) if kind == "markdown" => {
            let text = text_of(value);
            let line = one_line(&text, None);
            // A byte search first: nearly no value holds a backquote.
            let line =
                if line.contains('`') && line.contains("```") { Cow::Owned(line.replace("```", "'''")) } else { line };
            out.write_str(&line).map_err(Error::from)
        }
        // SQL: a double-quoted identifier.
        AutoEscape::Custom(kind) if kind == "sql" => {
            let text = value.to_string();
            if text.contains('\0') {
                return Err(Error::new(ErrorKind::InvalidOperation, "NUL in an SQL identifier"));
            }
            out.write_str(&format!("\"{}\"", text.replace('"', "\"\""))).map_err(Error::from)
        }
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            "this template type has no escaping rules; only `*.yaml.j2` templates may interpolate values",
        )),
    }
}

/// A value's text, borrowed when it is a string.
fn text_of(value: &Value) -> Cow<'_, str> {
    value.as_str().map_or_else(|| Cow::Owned(value.to_string()), Cow::Borrowed)
}

/// `s` on one line: every control character (`char::is_control`: C0, DEL,
/// C1), and `also`, made a space. Borrowed when there is none, which is
/// nearly every value (checked by bytes when `s` is ASCII).
fn one_line(s: &str, also: Option<char>) -> Cow<'_, str> {
    let control = if s.is_ascii() { s.bytes().any(|b| b < 0x20 || b == 0x7F) } else { s.chars().any(char::is_control) };
    if !control && also.is_none_or(|a| !s.contains(a)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if c.is_control() || Some(c) == also { ' ' } else { c }).collect())
}

/// A value printed in a YAML template: one scalar.
fn yaml_value(out: &mut Output, value: &Value) -> Result<(), Error> {
    match value.kind() {
        // A string, the common case, without the detour through a node.
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            if is_plain_safe(s) { out.write_str(s) } else { out.write_str(&double_quoted(s)) }
        }
        // Booleans and integers, as `scalar` writes them, without a node.
        ValueKind::Bool => out.write_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number if value.as_i64().is_some() => write!(out, "{}", value.as_i64().unwrap_or_default()),
        _ => out.write_str(&scalar(value)?),
    }
    .map_err(Error::from)
}

/// A single value as a YAML scalar.
fn scalar(value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain => Err(Error::new(
            ErrorKind::InvalidOperation,
            "a list or map cannot be printed as a scalar; use `to_yaml(indent)`",
        )),
        _ => Ok(match to_node(value)? {
            // Inline after `key:` a string is always one quoted line.
            Node::Str(s) => quote_str(&s),
            node => value_after_key(&node, 0).trim_start().to_string(),
        }),
    }
}

/// Converts a template value into an emitter node (map order kept).
pub fn to_node(value: &Value) -> Result<Node, Error> {
    Ok(match value.kind() {
        ValueKind::Undefined => {
            return Err(Error::new(ErrorKind::UndefinedError, "undefined value"));
        }
        ValueKind::None => Node::Null,
        ValueKind::Bool => Node::Bool(value.is_true()),
        ValueKind::Number => match i128::try_from(value.clone()) {
            Ok(i) if value.as_i64().is_some() || value.to_string().parse::<i128>().is_ok() => Node::Int(i),
            _ => Node::Float(f64::try_from(value.clone())?),
        },
        ValueKind::String | ValueKind::Bytes => {
            Node::Str(value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string()))
        }
        ValueKind::Seq | ValueKind::Iterable => {
            Node::Seq(value.try_iter()?.map(|v| to_node(&v)).collect::<Result<_, _>>()?)
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            let mut add = |k: Value, v: Value| -> Result<(), Error> {
                if !v.is_undefined() {
                    let key = k.as_str().map(str::to_string).unwrap_or_else(|| k.to_string());
                    entries.push((key, to_node(&v)?));
                }
                Ok(())
            };
            // Keys with their values where the map gives both (a lookup per
            // key hashed it again).
            match value.as_object().and_then(|o| o.try_iter_pairs()) {
                Some(pairs) => pairs.into_iter().try_for_each(|(k, v)| add(k, v))?,
                None => {
                    for k in value.try_iter()? {
                        let v = value.get_item(&k)?;
                        add(k, v)?;
                    }
                }
            }
            Node::Map(entries)
        }
        _ => Node::Str(value.to_string()),
    })
}

/// `{{ x | to_yaml(4) }}` after `key:` — see `value_after_key`.
fn to_yaml(value: &Value, indent: Option<usize>) -> Result<Value, Error> {
    Ok(Value::from_safe_string(value_after_key(&to_node(value)?, indent.unwrap_or(2))))
}

/// `{{ list | yaml_lines(6) }}`: each item of a list as `- item` on its own
/// line at `indent`, for splicing a list under a key already written.
fn yaml_lines(value: &Value, indent: usize) -> Result<Value, Error> {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for item in value.try_iter()? {
        out.push('\n');
        out.push_str(&pad);
        out.push('-');
        out.push_str(&value_after_key(&to_node(&item)?, indent + 2));
    }
    Ok(Value::from_safe_string(out))
}

/// Like Jinja's `indent`, but keeps a safe (already YAML) string safe, so
/// macro output can be nested at any depth. The final newline is dropped:
/// the template's own line break ends the block.
fn indent(value: &Value, width: usize, first: Option<bool>) -> Result<Value, Error> {
    let s = value.as_str().unwrap_or_default();
    let s = s.strip_suffix('\n').unwrap_or(s);
    let pad = " ".repeat(width);
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    // Lines found with `memchr`: `str::split('\n')` went through the general
    // char searcher, about 3% of the CPU time of rendering 1,000 services
    // (macro output is indented once per nesting level).
    let mut start = 0;
    let first = first.unwrap_or(false);
    for end in memchr::memchr_iter(b'\n', s.as_bytes()).chain(std::iter::once(s.len())) {
        let line = &s[start..end];
        // `start` is 0 only on the first line.
        if start > 0 {
            out.push('\n');
        }
        if !line.is_empty() && (start > 0 || first) {
            out.push_str(&pad);
        }
        out.push_str(line);
        start = end + 1;
    }
    Ok(if value.is_safe() { Value::from_safe_string(out) } else { Value::from(out) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn render(src: &str, ctx: Value) -> Result<String, Error> {
        render_as("t.yaml.j2", src, ctx)
    }

    /// Renders `src` as a template named `name` (its extension picks the
    /// escaping).
    fn render_as(name: &str, src: &str, ctx: Value) -> Result<String, Error> {
        let mut env = environment(None).unwrap();
        env.add_template_owned(name.to_string(), src.to_string()).unwrap();
        env.get_template(name)?.render(ctx)
    }

    #[test]
    fn values_are_quoted_scalars() {
        let out = render(
            "a: {{ a }}\nb: {{ b }}\nc: {{ c }}\nd: {{ d }}\n",
            context! { a => "on", b => "x: y\nz", c => 80, d => true },
        )
        .unwrap();
        assert_eq!(out, "a: \"on\"\nb: \"x: y\\nz\"\nc: 80\nd: true\n");
    }

    #[test]
    fn maps_need_to_yaml() {
        assert!(render("a: {{ m }}\n", context! { m => context!{ k => "v" } }).is_err());
        let out = render("a:{{ m | to_yaml(2) }}\n", context! { m => context!{ k => "0755" } }).unwrap();
        assert_eq!(out, "a:\n  k: \"0755\"\n");
    }

    #[test]
    fn indent_pads_every_non_empty_line() {
        let ind = |s: &str, first: Option<bool>| indent(&Value::from(s), 2, first).unwrap().to_string();
        assert_eq!(ind("a\n\nb\n", None), "a\n\n  b");
        assert_eq!(ind("a\n\nb\n", Some(true)), "  a\n\n  b");
        assert_eq!(ind("é: x\n- y", Some(true)), "  é: x\n  - y");
        assert_eq!(ind("", Some(true)), "");
        assert_eq!(ind("\n\n", Some(true)), "\n");
        assert_eq!(ind("a\n\n\n", Some(true)), "  a\n\n");
    }

    #[test]
    fn markdown_values_stay_on_one_line_and_out_of_code_fences() {
        let md = |v: Value| render_as("t.md.j2", "`{{ v }}`", context! { v => v }).unwrap();
        assert_eq!(md(Value::from("kubectl get pods -n a")), "`kubectl get pods -n a`");
        assert_eq!(md(Value::from("a```b")), "`a'''b`");
        assert_eq!(md(Value::from("a\nb\tc")), "`a b c`");
        assert_eq!(md(Value::from("caf\u{e9} \u{85}x")), "`caf\u{e9}  x`");
        assert_eq!(md(Value::from(8080)), "`8080`");
    }

    #[test]
    fn dotenv_values_stay_on_one_line_without_expansions() {
        let env_line = |v: Value| render_as("t.env.j2", "X={{ v }}", context! { v => v }).unwrap();
        assert_eq!(env_line(Value::from("postgres://db:5432/app")), "X=postgres://db:5432/app");
        assert_eq!(env_line(Value::from("a$b\nc")), "X=a b c");
        assert_eq!(env_line(Value::from("caf\u{e9}")), "X=caf\u{e9}");
        assert_eq!(env_line(Value::from(3)), "X=3");
    }

    #[test]
    fn undefined_is_an_error() {
        assert!(render("a: {{ nope }}\n", context! {}).is_err());
    }
}
