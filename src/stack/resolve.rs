//! Stage 2 of loading: one parsed stack file -> a typed `Stack` per
//! environment.
//!
//! A file is a base stack plus `environments` (overlays) and `components`
//! (optional overlays an environment switches on). For an environment the
//! merged YAML is: base, then each of its components in order, then its own
//! overlay. Maps merge key by key (so named things merge by name), any other
//! value replaces, and `null` deletes. The merged value is then deserialised;
//! every error is located in whichever layer wrote the offending field.

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::stack::layered::Layered;
use crate::stack::model::{Service, Stack};
use crate::stack::source::SourceFile;
use crate::yaml::{Pos, Spans, parse_value_spans};

/// Name of the single environment of a stack that declares none.
pub const DEFAULT_ENV: &str = "default";

/// A stack file split into its layers.
#[derive(Debug, Clone)]
pub struct Document {
    pub name: String,
    pub file: String,
    pub text: std::sync::Arc<String>,
    base: Value,
    /// Positions of every field path, computed from `text` when a
    /// diagnostic first needs one (most runs never do).
    spans: std::sync::OnceLock<Spans>,
    /// Where each line of `text` starts, for the source lines of diagnostics.
    lines: std::sync::OnceLock<crate::diagnostic::Lines>,
    /// Positions of block keys by a scan of the lines (`yaml::keys`), asked
    /// before `spans` is computed; `None` for a text it cannot index.
    keys: std::sync::OnceLock<Option<crate::yaml::keys::KeyIndex>>,
    /// Environment name -> (components it enables, overlay).
    pub environments: IndexMap<String, EnvDef>,
    components: IndexMap<String, Value>,
}

/// The parsed layers `Document::release` took out.
pub struct Released {
    _layers: (Value, IndexMap<String, Value>, Vec<Value>),
}

/// One environment as written.
#[derive(Debug, Clone)]
pub struct EnvDef {
    pub description: Option<String>,
    /// Another environment this one starts from.
    pub extends: Option<String>,
    pub components: Vec<String>,
    overlay: Value,
}

impl Document {
    /// Parses a source file and splits off environments and components.
    pub fn parse(src: &SourceFile) -> Result<Document, Vec<Diagnostic>> {
        let text = match &src.text {
            Ok(t) => t.clone(),
            Err(why) => return Err(vec![Diagnostic::error(&src.display, why.clone())]),
        };
        let (value, recorded) = parse_value_spans(&text).map_err(|e| {
            let mut d = Diagnostic::error(&src.display, e.message).at(Some(e.pos)).with_source(&text);
            if let Some(p) = e.path {
                d = d.field(p);
            }
            vec![d]
        })?;
        let mut map = match value {
            Value::Mapping(m) => m,
            Value::Null => {
                return Err(vec![
                    Diagnostic::error(&src.display, "stack file is empty")
                        .note("expected a mapping with at least `name` and `namespace`"),
                ]);
            }
            _ => {
                return Err(vec![
                    Diagnostic::error(&src.display, "a stack file must be a mapping of keys to values")
                        .at(Some(Pos { line: 1, col: 1 }))
                        .with_source(&text),
                ]);
            }
        };
        let mut errors = Vec::new();
        // Positions, when the parse recorded them; else found on first need.
        let spans = std::sync::OnceLock::new();
        if let Some(recorded) = recorded {
            let _ = spans.set(recorded);
        }
        let err = |path: &str, msg: String| {
            let at = spans.get_or_init(|| crate::yaml::spans(&text)).locate(path);
            Diagnostic::error(&src.display, msg).at(at).field(path).with_source(&text)
        };
        let mut components = IndexMap::new();
        match map.remove("components") {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(m)) => {
                for (k, v) in m {
                    let k = key_string(&k);
                    if !crate::stack::validate::is_dns_label(&k) {
                        errors.push(err(
                            &format!("components.{k}"),
                            format!(
                                "component name `{k}` is not a valid DNS-1123 label (at most 63 lowercase letters, digits and `-`)"
                            ),
                        ));
                    }
                    match v {
                        Value::Mapping(ref m)
                            if ["name", "environments", "components", "extends"]
                                .iter()
                                .any(|key| m.contains_key(*key)) =>
                        {
                            errors.push(err(
                                &format!("components.{k}"),
                                "a component cannot set `name`, `environments`, `components` or `extends`".into(),
                            ));
                        }
                        Value::Mapping(_) | Value::Null => {
                            components.insert(k, v);
                        }
                        _ => errors.push(err(
                            &format!("components.{k}"),
                            "a component must be a mapping (a partial stack)".into(),
                        )),
                    }
                }
            }
            Some(_) => errors.push(err("components", "`components` must be a mapping of name to partial stack".into())),
        }
        let mut environments = IndexMap::new();
        match map.remove("environments") {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(m)) => {
                for (k, v) in m {
                    let name = key_string(&k);
                    // Environment names become directories of the output tree.
                    if !crate::stack::validate::is_dns_label(&name) {
                        errors.push(err(&format!("environments.{name}"), format!("environment name `{name}` is not a valid DNS-1123 label (at most 63 lowercase letters, digits and `-`); it names an output directory")));
                        continue;
                    }
                    match env_def(&name, v, &components) {
                        Ok(def) => {
                            environments.insert(name, def);
                        }
                        Err((path, msg)) => errors.push(err(&path, msg)),
                    }
                }
            }
            Some(_) => errors.push(err("environments", "`environments` must be a mapping of name to overlay".into())),
        }
        for (name, def) in &environments {
            let Some(parent) = &def.extends else { continue };
            let path = format!("environments.{name}.extends");
            if !environments.contains_key(parent) {
                let mut msg = format!("unknown environment `{parent}`");
                if let Some(s) = did_you_mean(parent, environments.keys().map(String::as_str)) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                errors.push(err(&path, msg));
                continue;
            }
            let mut seen = vec![name.as_str()];
            let mut cur = Some(parent.as_str());
            while let Some(e) = cur {
                if seen.contains(&e) {
                    errors.push(err(
                        &path,
                        format!("environments extend each other in a cycle: {} -> {e}", seen.join(" -> ")),
                    ));
                    break;
                }
                seen.push(e);
                cur = environments.get(e).and_then(|d: &EnvDef| d.extends.as_deref());
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Document {
            name: src.name.clone(),
            file: src.display.clone(),
            text,
            base: Value::Mapping(map),
            spans,
            lines: std::sync::OnceLock::new(),
            keys: std::sync::OnceLock::new(),
            environments,
            components,
        })
    }

    /// Takes the parsed layers out once every environment needed was
    /// resolved; name, file, text and environment names stay (for reports
    /// and diagnostics). `resolve` must not be called afterwards. The caller
    /// decides where the returned layers are freed.
    pub fn release(&mut self) -> Released {
        let base = std::mem::take(&mut self.base);
        let components = std::mem::take(&mut self.components);
        let overlays = self.environments.values_mut().map(|d| std::mem::take(&mut d.overlay)).collect();
        Released { _layers: (base, components, overlays) }
    }

    fn spans(&self) -> &Spans {
        self.spans.get_or_init(|| crate::yaml::spans(&self.text))
    }

    /// Where exactly `path` is written: from the positions recorded while
    /// parsing if there are any, else from the key index where it is sure,
    /// else from a parse that records them.
    fn exact(&self, path: &str) -> Option<Pos> {
        use crate::yaml::keys::Found;
        if self.spans.get().is_none()
            && let Some(ix) = self.keys.get_or_init(|| crate::yaml::keys::index(&self.text))
        {
            match ix.exact(path) {
                Found::At(pos) => return Some(pos),
                Found::Absent => return None,
                Found::Unsure => {}
            }
        }
        self.spans().exact(path)
    }

    fn lines(&self) -> &crate::diagnostic::Lines {
        self.lines.get_or_init(|| crate::diagnostic::Lines::new(&self.text))
    }

    /// Environment names in definition order (`default` when none are declared).
    pub fn env_names(&self) -> Vec<String> {
        if self.environments.is_empty() {
            vec![DEFAULT_ENV.to_string()]
        } else {
            self.environments.keys().cloned().collect()
        }
    }

    /// The overlays of `env` in the order they apply: those of the
    /// environment it extends, then its components, then its own.
    fn layers(&self, env: &str) -> Vec<(String, &Value)> {
        let mut chain = Vec::new();
        let mut cur = Some(env);
        while let Some(e) = cur {
            if chain.contains(&e) {
                break;
            }
            chain.push(e);
            cur = self.environments.get(e).and_then(|d| d.extends.as_deref());
        }
        let mut layers = Vec::new();
        for e in chain.into_iter().rev() {
            let Some(def) = self.environments.get(e) else { continue };
            for c in &def.components {
                let prefix = format!("components.{c}.");
                if !layers.iter().any(|(p, _)| *p == prefix) {
                    layers.push((prefix, &self.components[c]));
                }
            }
            layers.push((format!("environments.{e}."), &def.overlay));
        }
        layers
    }

    /// Merges the layers of `env` and deserialises them.
    pub fn resolve(&self, env: &str) -> Result<Stack, Vec<Diagnostic>> {
        let layers = self.layers(env);
        if layers.is_empty() {
            // No overlay: the base as it is (no copy of a large stack).
            return deserialize_stack(&self.base, &self.locator(env));
        }
        // Read in place unless the stack is large enough for its services to
        // deserialise in parallel; on any error the layers are merged and
        // deserialised again, which locates every error.
        if parallel_services_of(&self.base).is_none()
            && let Ok(stack) = self.in_place(&layers)
        {
            return Ok(stack);
        }
        deserialize_stack(&self.merged(env), &self.locator(env))
    }

    /// The base with `layers` applied, deserialised without a merged copy
    /// (`Layered`).
    fn in_place(&self, layers: &[(String, &Value)]) -> Result<Stack, serde_yaml::Error> {
        Stack::deserialize(Layered::new(std::iter::once(&self.base).chain(layers.iter().map(|(_, v)| *v))))
    }

    /// The base with every layer of `env` merged into a copy.
    fn merged(&self, env: &str) -> Value {
        let mut merged = self.base.clone();
        for (_, overlay) in self.layers(env) {
            merge(&mut merged, overlay.clone());
        }
        merged
    }

    /// Locates field paths of the merged stack of `env`.
    pub fn locator(&self, env: &str) -> Locator<'_> {
        let mut layers: Vec<String> = self.layers(env).into_iter().map(|(p, _)| p).collect();
        layers.reverse();
        Locator { doc: self, layers }
    }

    /// The base alone, without any environment's overlays, and a locator
    /// for it: what the problems of every environment are compared with.
    pub fn resolve_base(&self) -> (Result<Stack, Vec<Diagnostic>>, Locator<'_>) {
        let loc = Locator { doc: self, layers: Vec::new() };
        (deserialize_stack(&self.base, &loc), loc)
    }

    /// Components `env` enables, directly or through `extends`.
    pub fn components_of(&self, env: &str) -> Vec<String> {
        self.layers(env)
            .into_iter()
            .filter_map(|(p, _)| p.strip_prefix("components.").map(|c| c.trim_end_matches('.').to_string()))
            .collect()
    }
}

/// Maps a field path of a merged stack back to where it was written.
pub struct Locator<'a> {
    doc: &'a Document,
    /// Path prefixes of overlay layers, the one applied last first.
    layers: Vec<String>,
}

impl Locator<'_> {
    /// Where `path` was written: the deepest written ancestor, searching the
    /// layers from the last applied to the base. Returns its position and
    /// the path as written in the file.
    pub fn find(&self, path: &str) -> (Option<Pos>, String) {
        let mut p = path;
        loop {
            for layer in &self.layers {
                let full = format!("{layer}{p}");
                if let Some(pos) = self.doc.exact(&full) {
                    return (Some(pos), format!("{layer}{path}"));
                }
            }
            if let Some(pos) = self.doc.exact(p) {
                return (Some(pos), path.to_string());
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p = &p[..cut],
                None => return (None, path.to_string()),
            }
        }
    }

    /// An error at `path`.
    pub fn error(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.place(Diagnostic::error(&self.doc.file, message), path)
    }

    /// A warning at `path`.
    pub fn warning(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.place(Diagnostic::warning(&self.doc.file, message), path)
    }

    /// `d` with the position, field and source line of `path`.
    fn place(&self, d: Diagnostic, path: &str) -> Diagnostic {
        let (pos, written) = self.find(path);
        d.at(pos).field(written).with_source_lines(&self.doc.text, self.doc.lines())
    }
}

fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

fn env_def(name: &str, v: Value, components: &IndexMap<String, Value>) -> Result<EnvDef, (String, String)> {
    let base = format!("environments.{name}");
    let mut m = match v {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m,
        _ => {
            return Err((base, "an environment must be a mapping (an overlay of the stack)".into()));
        }
    };
    let description = match m.remove("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err((format!("{base}.description"), "expected a string".into())),
    };
    let extends = match m.remove("extends") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err((format!("{base}.extends"), "expected an environment name".into())),
    };
    let mut enabled = Vec::new();
    match m.remove("components") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("{base}.components[{i}]");
                let Value::String(c) = item else {
                    return Err((path, "expected a component name".into()));
                };
                if !components.contains_key(&c) {
                    let mut msg = format!("unknown component `{c}`");
                    if let Some(s) = did_you_mean(&c, components.keys().map(String::as_str)) {
                        msg.push_str(&format!("; did you mean `{s}`?"));
                    }
                    return Err((path, msg));
                }
                enabled.push(c);
            }
        }
        Some(_) => {
            return Err((format!("{base}.components"), "expected a list of component names".into()));
        }
    }
    for key in ["name", "environments"] {
        if m.contains_key(key) {
            return Err((format!("{base}.{key}"), format!("`{key}` cannot be changed by an environment")));
        }
    }
    Ok(EnvDef { description, extends, components: enabled, overlay: Value::Mapping(m) })
}

/// Deep merge, as a JSON merge patch (RFC 7386): maps merge by key, a
/// map replaces what is not one, anything else replaces; a `null` in the
/// overlay deletes its key (the other keys keep their order) and is never
/// kept, so deleting a key that is not there does nothing, however deep.
pub fn merge(base: &mut Value, overlay: Value) {
    match overlay {
        Value::Mapping(o) => {
            if !base.is_mapping() {
                *base = Value::Mapping(Mapping::with_capacity(o.len()));
            }
            let Value::Mapping(b) = base else { unreachable!("made a mapping above") };
            for (k, v) in o {
                if v.is_null() {
                    b.shift_remove(&k);
                } else if let Some(existing) = b.get_mut(&k) {
                    merge(existing, v);
                } else {
                    let mut fresh = Value::Null;
                    merge(&mut fresh, v);
                    b.insert(k, fresh);
                }
            }
        }
        o => *base = o,
    }
}

/// Services from which a stack deserialises them on all cores.
const PARALLEL_SERVICES: usize = 256;

/// `deserialize_all` for a whole stack. The services of a large stack are
/// deserialised on all cores (10,000 services took 60 ms on one); on any
/// error, the one-thread path runs again to report it.
fn deserialize_stack(value: &Value, loc: &Locator<'_>) -> Result<Stack, Vec<Diagnostic>> {
    if let Some(stack) = parallel_services(value) {
        return Ok(stack);
    }
    deserialize_all(value, loc)
}

/// The stack with its services deserialised in parallel, or `None` when it
/// has few services or anything fails to deserialise.
fn parallel_services(value: &Value) -> Option<Stack> {
    let map = value.as_mapping()?;
    let services = parallel_services_of(value)?;
    let rest: Mapping =
        map.iter().filter(|(k, _)| k.as_str() != Some("services")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut stack = Stack::deserialize(&Value::Mapping(rest)).ok()?;
    let entries: Vec<(&Value, &Value)> = services.iter().collect();
    let typed =
        crate::par::map(&entries, |(k, v)| Some((String::deserialize(*k).ok()?, Service::deserialize(*v).ok()?)));
    let mut all = crate::stack::model::Map::with_capacity_and_hasher(typed.len(), Default::default());
    for entry in typed {
        let (name, service) = entry?;
        if all.insert(name, service).is_some() {
            return None;
        }
    }
    stack.services = all;
    Some(stack)
}

/// The services of a stack that has enough of them to deserialise them in
/// parallel (`PARALLEL_SERVICES`).
fn parallel_services_of(value: &Value) -> Option<&Mapping> {
    value.get("services")?.as_mapping().filter(|s| s.len() >= PARALLEL_SERVICES)
}

/// Deserialises `value`, collecting every error: after each one the
/// offending key is removed and deserialisation is retried.
fn deserialize_all<T: DeserializeOwned>(value: &Value, loc: &Locator<'_>) -> Result<T, Vec<Diagnostic>> {
    // The common case first, without tracking paths (only an error needs them).
    if let Ok(v) = T::deserialize(value) {
        return Ok(v);
    }
    let mut value = value.clone();
    let mut errors = Vec::new();
    for _ in 0..200 {
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(v) if errors.is_empty() => return Ok(v),
            Ok(_) => return Err(errors),
            Err(e) => {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                let msg = e.inner().to_string();
                let (diag, removable) = describe(&path, &msg, loc);
                errors.push(diag);
                match removable {
                    Some(p) if remove_path(&mut value, &p) => {}
                    _ => return Err(errors),
                }
            }
        }
    }
    Err(errors)
}

/// Turns a serde message into a diagnostic; returns the path to remove so
/// deserialisation can continue past it.
fn describe(path: &str, msg: &str, loc: &Locator<'_>) -> (Diagnostic, Option<String>) {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let full = if path.ends_with(key) { path.to_string() } else { join(path, key) };
        let parent = full.strip_suffix(key).unwrap_or("").trim_end_matches('.');
        let mut expected = expected;
        let where_ = if parent.is_empty() {
            // A top-level key of the merged stack is written at the top of
            // the file, of an environment or of a component.
            let written = loc.find(&full).1;
            let mut layer = written.strip_suffix(key).unwrap_or("").trim_end_matches('.').splitn(2, '.');
            match (layer.next(), layer.next()) {
                (Some("environments"), Some(env)) => {
                    expected.retain(|k| *k != "name");
                    expected.extend(["extends", "components"]);
                    format!("in environment `{env}`")
                }
                (Some("components"), Some(c)) => {
                    expected.retain(|k| *k != "name");
                    format!("in component `{c}`")
                }
                _ => "at the top level".to_string(),
            }
        } else {
            format!("in `{parent}`")
        };
        let mut d = loc.error(&full, format!("unknown key `{key}` {where_}"));
        if !expected.is_empty() {
            d = d.note(format!(
                "expected one of {}",
                expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
            ));
            if let Some(s) = did_you_mean(key, expected.iter().copied()) {
                d = d.note(format!("help: did you mean `{s}`?"));
            }
        }
        return (d, Some(full));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let word = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let mut d = loc.error(path, format!("unknown value `{word}`")).note(format!(
            "expected one of {}",
            expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
        ));
        if let Some(s) = did_you_mean(word, expected.iter().copied()) {
            d = d.note(format!("help: did you mean `{s}`?"));
        }
        return (d, Some(path.to_string()));
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or("");
        let where_ = if path.is_empty() { "at the top level".to_string() } else { format!("in `{path}`") };
        return (loc.error(path, format!("missing required key `{key}` {where_}")), None);
    }
    let mut msg =
        msg.replace("invalid type: ", "wrong type: found ").replace("invalid value: ", "invalid value: found ");
    // Rust's integer type names, in words.
    for (rust, words) in [
        ("u8", "an integer from 0 to 255"),
        ("u16", "an integer from 0 to 65535"),
        ("u32", "a whole number (0 or more)"),
        ("u64", "a whole number (0 or more)"),
        ("i32", "an integer"),
        ("i64", "an integer"),
    ] {
        if let Some(head) = msg.strip_suffix(&format!("expected {rust}")) {
            msg = format!("{head}expected {words}");
        }
    }
    let removable = (!path.is_empty()).then(|| path.to_string());
    (loc.error(path, msg), removable)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// Removes the value at a `a.b[2].c` path. Returns whether anything was removed.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let segments = split_path(path);
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parents {
        cur = match (cur, seg) {
            (Value::Mapping(m), Seg::Key(k)) => match m.get_mut(k.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Value::Sequence(s), Seg::Index(i)) => match s.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (cur, last) {
        (Value::Mapping(m), Seg::Key(k)) => m.remove(k.as_str()).is_some(),
        (Value::Sequence(s), Seg::Index(i)) if *i < s.len() => {
            s.remove(*i);
            true
        }
        _ => false,
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(b) = rest.find('[') {
            if b > 0 {
                out.push(Seg::Key(rest[..b].to_string()));
            }
            rest = &rest[b..];
            while let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').unwrap_or(r.len());
                if let Ok(i) = r[..end].parse() {
                    out.push(Seg::Index(i));
                }
                rest = r.get(end + 1..).unwrap_or("");
            }
        } else if !rest.is_empty() {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document::parse(&SourceFile { name: "t".into(), display: "t.yaml".into(), text: Ok(text.to_string().into()) })
            .unwrap()
    }

    /// A stack of `n` services, one of them written `broken` when asked.
    fn many_services(n: usize, broken: Option<usize>) -> String {
        let mut text = String::from("name: t\nnamespace: {name: t}\nlabels: {team: a}\nservices:\n");
        for i in 0..n {
            let replicas = if broken == Some(i) { "lots" } else { "2" };
            text.push_str(&format!(
                "  s{i}:\n    image: r/s{i}:1\n    replicas: {replicas}\n    ports: {{http: 80}}\n    env: {{A: x, B: {{ secret: db, key: k }}}}\n"
            ));
        }
        text.push_str("secrets:\n  db: {keys: [k]}\n");
        text
    }

    #[test]
    fn many_services_deserialise_in_parallel_to_the_same_stack() {
        let text = many_services(PARALLEL_SERVICES + 44, None);
        let d = doc(&text);
        let parallel = parallel_services(&d.base).expect("the parallel path takes it");
        let serial: Stack = Stack::deserialize(&d.base).unwrap();
        assert_eq!(serde_json::to_value(&parallel).unwrap(), serde_json::to_value(&serial).unwrap());
        assert_eq!(format!("{parallel:?}"), format!("{serial:?}"));
        assert!(parallel_services(&doc(&many_services(PARALLEL_SERVICES - 1, None)).base).is_none());
    }

    #[test]
    fn an_error_among_many_services_is_reported_as_on_one_thread() {
        let d = doc(&many_services(PARALLEL_SERVICES + 10, Some(150)));
        assert!(parallel_services(&d.base).is_none());
        let errors = d.resolve(DEFAULT_ENV).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| format!("{e:?}")).collect();
        assert_eq!(errors.len(), 1, "{text:?}");
        assert!(text[0].contains("services.s150.replicas"), "{text:?}");
    }

    #[test]
    fn environments_read_in_place_are_the_merged_ones() {
        let mut envs = 0;
        for (file, text) in crate::embedded::STACKS {
            let d = doc(text);
            for env in d.env_names() {
                let layers = d.layers(&env);
                let in_place = d.in_place(&layers).unwrap();
                let merged = Stack::deserialize(&d.merged(&env)).unwrap();
                assert_eq!(format!("{in_place:?}"), format!("{merged:?}"), "{file} {env}");
                envs += usize::from(!layers.is_empty());
            }
        }
        assert!(envs >= 10, "{envs} environments with overlays");
    }

    #[test]
    fn merge_by_name_and_delete_with_null() {
        let mut base: Value = serde_yaml::from_str("a: {x: 1, y: 2}\nl: [1, 2]\n").unwrap();
        merge(&mut base, serde_yaml::from_str("a: {y: 3, x: null}\nl: [9]\n").unwrap());
        assert_eq!(base, serde_yaml::from_str::<Value>("a: {y: 3}\nl: [9]\n").unwrap());
        // Deleting keeps the order of the other keys (definition order).
        let mut base: Value = serde_yaml::from_str("{a: 1, b: 2, c: 3, d: 4}").unwrap();
        merge(&mut base, serde_yaml::from_str("{b: null}").unwrap());
        let keys: Vec<&str> = base.as_mapping().unwrap().keys().filter_map(Value::as_str).collect();
        assert_eq!(keys, ["a", "c", "d"]);
    }

    #[test]
    fn collects_every_unknown_key_with_location() {
        let d = doc(
            "name: t\nnamespace: {name: t}\nservices:\n  app:\n    image: x:1\n    replcas: 2\n  db:\n    imag: y\n",
        );
        let errs = d.resolve(DEFAULT_ENV).unwrap_err();
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 2, "{msgs:#?}");
        assert!(msgs[0].contains("unknown key `replcas` in `services.app`"), "{}", msgs[0]);
        assert!(msgs[0].contains("t.yaml:6:5"), "{}", msgs[0]);
        assert!(msgs[0].contains("did you mean `replicas`"), "{}", msgs[0]);
        assert!(msgs[1].contains("t.yaml:8:5"), "{}", msgs[1]);
    }

    #[test]
    fn overlay_errors_point_into_the_environment() {
        let d = doc(
            "name: t\nnamespace: {name: t}\nservices:\n  app: {image: 'x:1'}\nenvironments:\n  prod:\n    services:\n      app:\n        replicas: many\n",
        );
        let errs = d.resolve("prod").unwrap_err();
        assert!(errs[0].to_string().contains("t.yaml:9:9"), "{}", errs[0]);
        assert_eq!(errs[0].field.as_deref(), Some("environments.prod.services.app.replicas"));
        assert!(d.resolve("prod").is_err());
    }
}
