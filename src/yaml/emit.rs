//! YAML scalar and block emission that reads back identically under YAML 1.1
//! (PyYAML, go-yaml v2 in kubectl) and YAML 1.2 parsers.
//!
//! Input: strings, numbers, booleans and nested maps/lists (as minijinja values).
//! Output: YAML text. A string is written plain only when it cannot be
//! mistaken for anything else by either spec; otherwise it is double-quoted
//! with every character a YAML 1.1 reader would treat specially escaped.

use std::fmt::Write as _;

/// Words that YAML 1.1 or 1.2 resolve to booleans or null when plain.
const RESERVED: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// Longest key written in the implicit `key: value` form; YAML allows 1024
/// characters, longer keys use the explicit `? key` form.
const MAX_IMPLICIT_KEY: usize = 1000;

/// Returns `s` as a YAML scalar that every parser reads back as the string `s`.
pub fn quote_str(s: &str) -> String {
    let mut out = String::new();
    push_quoted(s, &mut out);
    out
}

/// `quote_str`, appended to `out`.
pub fn push_quoted(s: &str, out: &mut String) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        push_double_quoted(s, out);
    }
}

/// A plain scalar is safe when it starts with a letter or `/`, holds only
/// `[A-Za-z0-9._/-]`, and is not a reserved word. Starting with a letter or
/// `/` rules out every number, timestamp, sexagesimal and special float of
/// YAML 1.1 as well as every indicator character. Quantities such as `250m`
/// or `64Mi` (digits and letters only, with a letter no number syntax
/// uses) are plain too.
pub fn is_plain_safe(s: &str) -> bool {
    // Every character allowed is ASCII, so the bytes are the characters.
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    if first.is_ascii_digit() {
        // No letter any number syntax uses (exponent, 0x/0o/0b prefixes).
        return bytes.iter().all(u8::is_ascii_alphanumeric)
            && bytes.iter().any(u8::is_ascii_alphabetic)
            && !bytes.iter().any(|c| b"eExXbBoO".contains(c));
    }
    if !(first.is_ascii_alphabetic() || first == b'/') {
        return false;
    }
    if !bytes.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'/' | b'-')) {
        return false;
    }
    !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

/// Characters PyYAML's reader accepts raw in a stream (its `NON_PRINTABLE`
/// complement), minus the ones YAML 1.1 treats as line breaks or that are
/// invisible and better escaped.
fn is_raw_ok(c: char) -> bool {
    match c {
        '\u{20}'..='\u{7E}' => true,
        '\u{A0}'..='\u{D7FF}' => c != '\u{2028}' && c != '\u{2029}',
        '\u{E000}'..='\u{FFFD}' => c != '\u{FEFF}',
        '\u{10000}'..='\u{10FFFF}' => true,
        _ => false,
    }
}

/// Double-quoted scalar with YAML escapes. Characters outside the BMP are
/// written raw (UTF-8), never as surrogate pairs.
pub fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_double_quoted(s, &mut out);
    out
}

/// `double_quoted`, appended to `out`.
pub fn push_double_quoted(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Runs of printable ASCII other than `"` and the backslash are copied
    // whole; the byte that ends a run starts a character (every byte before
    // it is ASCII).
    let mut rest = s;
    while let Some(i) = rest.bytes().position(|b| !(0x20..=0x7E).contains(&b) || b == b'"' || b == b'\\') {
        out.push_str(&rest[..i]);
        let Some(c) = rest[i..].chars().next() else { break };
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if is_raw_ok(c) => out.push(c),
            c if (c as u32) <= 0xFF => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.push_str(rest);
    out.push('"');
}

/// Whether a multi-line string can be written as a `|` literal block and
/// read back unchanged: only characters that need no escaping, no carriage
/// returns, no trailing spaces (a linter would flag them), a first line not
/// starting with a space (that would need an indentation indicator), and
/// at most one final newline.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.ends_with("\n\n")
        && !s.starts_with([' ', '\n'])
        && s.chars().all(|c| c == '\n' || c == '\t' || is_raw_ok(c))
        && s.split('\n').all(|l| !l.ends_with([' ', '\t']) && !l.starts_with('\t'))
}

/// A value that can be emitted as YAML.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// Appends the node as an inline scalar and returns true; returns false
    /// and writes nothing for what takes a block (a non-empty collection,
    /// a string written as a literal block).
    fn push_inline(&self, out: &mut String) -> bool {
        match self {
            Node::Null => out.push_str("null"),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Node::Float(f) if f.is_finite() => {
                let at = out.len();
                let _ = write!(out, "{f:?}");
                if !out[at..].contains(['.', 'e']) {
                    out.push_str(".0");
                }
            }
            Node::Float(f) if f.is_nan() => out.push_str(".nan"),
            Node::Float(f) => out.push_str(if *f > 0.0 { ".inf" } else { "-.inf" }),
            Node::Str(s) if literal_ok(s) => return false,
            Node::Str(s) => push_quoted(s, out),
            Node::Seq(v) if v.is_empty() => out.push_str("[]"),
            Node::Map(m) if m.is_empty() => out.push_str("{}"),
            Node::Seq(_) | Node::Map(_) => return false,
        }
        true
    }
}

/// Emits `node` as the value part of a `key:` line whose children sit at
/// `indent` spaces: a scalar or empty collection comes back as ` value`, a
/// block collection as a newline followed by its indented lines. So a
/// template writes `labels:{{ x | to_yaml(4) }}` and gets valid YAML either way.
pub fn value_after_key(node: &Node, indent: usize) -> String {
    let mut out = String::new();
    value_after_key_into(node, indent, &mut out);
    out
}

/// `value_after_key`, appended to `out`. Every level of a nested value
/// writes into the one buffer (each used to return its own string, copied
/// into its parent's: a value `d` levels deep was copied `d` times).
fn value_after_key_into(node: &Node, indent: usize, out: &mut String) {
    out.push(' ');
    if !node.push_inline(out) {
        out.pop();
        block(node, indent, out);
    }
}

/// A line break and `indent` spaces.
fn new_line(indent: usize, out: &mut String) {
    const SPACES: &str = "                                                                ";
    out.push('\n');
    let mut left = indent;
    while left > 0 {
        let n = left.min(SPACES.len());
        out.push_str(&SPACES[..n]);
        left -= n;
    }
}

/// Writes a non-empty collection in block style, each line starting with a
/// newline and `indent` spaces.
fn block(node: &Node, indent: usize, out: &mut String) {
    match node {
        Node::Map(entries) => {
            for (k, v) in entries {
                new_line(indent, out);
                let at = out.len();
                push_quoted(k, out);
                // An implicit key is limited to 1024 characters (bytes
                // first: no more bytes, no more characters).
                if out.len() - at > MAX_IMPLICIT_KEY && out[at..].chars().count() > MAX_IMPLICIT_KEY {
                    out.insert_str(at, "? ");
                    new_line(indent, out);
                }
                out.push(':');
                value_after_key_into(v, indent + 2, out);
            }
        }
        Node::Seq(items) => {
            for item in items {
                new_line(indent, out);
                out.push('-');
                out.push(' ');
                if !item.push_inline(out) {
                    // First line of the nested block goes on the dash
                    // line: the line break and indentation (or, before
                    // a literal block's `|`, the space) it starts with
                    // are dropped.
                    let mark = out.len();
                    block(item, indent + 2, out);
                    let lead = out[mark..].len() - out[mark..].trim_start().len();
                    out.drain(mark..mark + lead);
                }
            }
        }
        Node::Str(s) => {
            out.push_str(if s.ends_with('\n') { " |" } else { " |-" });
            for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    new_line(indent, out);
                    out.push_str(line);
                }
            }
        }
        _ => unreachable!("block() is only called for non-empty collections"),
    }
}

/// A whole document body (top-level map or list) with no leading newline.
pub fn document(node: &Node) -> String {
    let mut out = String::new();
    if !node.push_inline(&mut out) {
        block(node, 0, &mut out);
        out.remove(0);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_only_when_unambiguous() {
        assert_eq!(quote_str("loops-app"), "loops-app");
        assert_eq!(quote_str("/var/www/storage"), "/var/www/storage");
        for s in ["on", "Off", "YES", "y", "N", "null", "true", "0755", "12:30", "", "a: b", "1e3"] {
            assert!(quote_str(s).starts_with('"'), "{s} must be quoted");
        }
        assert_eq!(quote_str("a: b"), "\"a: b\"");
        assert_eq!(quote_str("-x"), "\"-x\"");
    }

    #[test]
    fn escapes_line_breaks_and_controls() {
        assert_eq!(double_quoted("a\nb"), "\"a\\nb\"");
        assert_eq!(double_quoted("\u{2028}\u{85}\u{feff}"), "\"\\u2028\\x85\\uFEFF\"");
        assert_eq!(double_quoted("\u{1}\u{7f}"), "\"\\x01\\x7F\"");
        assert_eq!(double_quoted("😀"), "\"😀\"");
        assert_eq!(double_quoted("say \"hi\" \\"), "\"say \\\"hi\\\" \\\\\"");
    }

    #[test]
    fn block_layout() {
        let n = Node::Map(vec![
            ("a".into(), Node::Str("on".into())),
            (
                "list".into(),
                Node::Seq(vec![
                    Node::Map(vec![("name".into(), Node::Str("x".into())), ("port".into(), Node::Int(80))]),
                    Node::Str("y".into()),
                ]),
            ),
            ("empty".into(), Node::Map(vec![])),
        ]);
        assert_eq!(document(&n), "a: \"on\"\nlist:\n  - name: x\n    port: 80\n  - \"y\"\nempty: {}\n");
    }

    #[test]
    fn nested_blocks_start_on_their_dash_line() {
        let long = "k".repeat(MAX_IMPLICIT_KEY + 1);
        let n = Node::Seq(vec![
            Node::Seq(vec![Node::Int(1), Node::Map(vec![("a".into(), Node::Str("x\n\ny\n".into()))])]),
            Node::Str("l1\nl2".into()),
            Node::Map(vec![(long.clone(), Node::Seq(vec![Node::Bool(true)]))]),
        ]);
        let text = document(&n);
        assert_eq!(
            text,
            format!("- - 1\n  - a: |\n      x\n\n      y\n- |-\n  l1\n  l2\n- ? {long}\n  :\n    - true\n")
        );
        let back: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back[0][1]["a"], serde_yaml::Value::from("x\n\ny\n"));
        assert_eq!(back[1], serde_yaml::Value::from("l1\nl2"));
        assert_eq!(back[2][long.as_str()][0], serde_yaml::Value::from(true));
    }
}
