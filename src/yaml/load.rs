//! Stage 1 of loading: YAML text -> `serde_yaml::Value` plus a span index.
//!
//! serde_yaml gives no positions for values, so the text is read with
//! yaml-rust2's event parser instead. While building the value this stage
//! enforces the limits a hostile file could abuse (nesting depth, alias
//! expansion, duplicate keys, multiple documents) and records where every
//! field path starts, so later stages can point at `file:line:column`.
//!
//! Plain scalars are resolved by the YAML 1.2 core schema: `on` and `yes` are
//! strings here, and only `true`/`false` are booleans.
//!
//! When no positions are wanted, a text in the plain shape most stack files
//! have is read first by the line-based reader of `fast` (`parse_input`,
//! several times faster than the event parser); anything outside its subset,
//! or anything wrong, goes through the event parser, which reports it. Tests
//! compare both readers on every stack and fixture and on generated and
//! damaged texts: when the fast reader answers, the answer is the same.

use std::collections::HashMap;

use serde_yaml::{Mapping, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::doc::Doc;

/// Deepest nesting accepted in a stack file.
pub const MAX_DEPTH: usize = 64;
/// Most nodes aliases may add to a document (the billion-laughs guard):
/// each alias costs the size of what it repeats.
pub const MAX_ALIAS_NODES: usize = 250_000;
/// Most nodes a document may hold in all (a stack of 10,000 services is
/// under a million).
pub const MAX_NODES: usize = 20_000_000;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Pos {
        Pos { line: m.line(), col: m.col() + 1 }
    }
}

/// Where each field path of a document starts (the key for map entries).
#[derive(Debug, Default, Clone)]
pub struct Spans {
    map: HashMap<String, Pos>,
}

impl Spans {
    /// Position of `path`, or of its closest recorded ancestor.
    pub fn locate(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.map.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// Position of exactly `path`, if it was written in the document.
    pub fn exact(&self, path: &str) -> Option<Pos> {
        self.map.get(path).copied()
    }

    /// Every recorded path and its position (tests and fuzzing).
    #[doc(hidden)]
    pub fn paths(&self) -> impl Iterator<Item = (&str, Pos)> {
        self.map.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// A problem found while reading YAML text.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub pos: Pos,
    pub message: String,
    pub path: Option<String>,
}

/// Parses one YAML document. An empty document yields `Value::Null`.
pub fn parse(text: &str) -> Result<(Value, Spans), LoadError> {
    let (value, spans) = parse_with(text, true)?;
    Ok((value, spans.unwrap_or_default()))
}

/// Parses one YAML document without recording positions (the common case:
/// positions are only needed for a diagnostic, and `spans` finds them
/// then). A failure is reported exactly as by `parse`.
pub fn parse_value(text: &str) -> Result<Value, LoadError> {
    parse_value_spans(text).map(|(value, _)| value)
}

/// Texts up to this size that need the event parser (anchors, folded
/// scalars…) record their positions in that one pass: a warning about any
/// of them would otherwise parse the whole text again (1-2 ms for a
/// built-in stack, most of an environment's resolve time). Larger texts
/// keep the memory of positions off the common path.
pub const RECORD_MAX: usize = 256 << 10;

/// `parse_value`, plus the positions when the parse recorded them
/// (`RECORD_MAX`).
pub fn parse_value_spans(text: &str) -> Result<(Value, Option<Spans>), LoadError> {
    if text.len() >= super::split::MIN_LEN
        && let Some(value) = super::split::parse_parallel(text)
    {
        return Ok((value, None));
    }
    if let Some((value, _)) = parse_fast(text) {
        return Ok((value, None));
    }
    let record = text.len() <= RECORD_MAX;
    match parse_with(text, record) {
        Ok(parsed) => Ok(parsed),
        // Parse again with positions, for the failing field's path.
        Err(e) if !record => Err(parse_with(text, true).err().unwrap_or(e)),
        Err(e) => Err(e),
    }
}

/// Where each field path of `text` starts (empty if it does not parse).
pub fn spans(text: &str) -> Spans {
    parse_with(text, true).ok().and_then(|(_, s)| s).unwrap_or_default()
}

/// Parses one piece of a larger document whose root is a collection `depth`
/// levels deep in it, without positions; `None` on any problem, anchor or alias
/// (the caller then parses the whole text). Returns the value and the
/// number of nodes, for the document-wide limit.
pub(super) fn parse_piece(text: &str, depth: usize) -> Option<(Value, usize)> {
    if let Some(parsed) = parse_fast(text) {
        return Some(parsed);
    }
    if non_printable(text).is_some() {
        return None;
    }
    let (builder, parsed) = run(text, Builder { depth, ..Builder::default() });
    if builder.error.is_some() || parsed.is_err() || builder.anchored {
        return None;
    }
    Some((builder.done.unwrap_or(Value::Null), builder.nodes))
}

/// Feeds the events of `text` to `builder`.
fn run(text: &str, mut builder: Builder) -> (Builder, Result<(), yaml_rust2::ScanError>) {
    let parsed = Parser::new_from_str(text).load(&mut builder, true);
    (builder, parsed)
}

/// The first character YAML does not allow raw in a stream (outside its
/// printable set: C0 controls but tab, line feed and carriage return; DEL;
/// C1 controls but NEL; U+FFFE and U+FFFF), with its position. yaml-rust2
/// takes a NUL for the end of the input and silently dropped the rest of
/// the file; libyaml (and so kubectl) refuses all of them.
fn non_printable(text: &str) -> Option<(Pos, char)> {
    let bad_ascii = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7F;
    // One pass over the bytes that the compiler can vectorise; characters
    // only when something may be wrong.
    let suspect = text.as_bytes().iter().fold(false, |acc, &b| acc | bad_ascii(b) | (b >= 0x80));
    if !suspect {
        return None;
    }
    let (mut line, mut col) = (1, 1);
    for c in text.chars() {
        let bad = match c {
            c if c.is_ascii() => bad_ascii(c as u8),
            '\u{85}' => false,
            '\u{80}'..='\u{9F}' | '\u{FFFE}' | '\u{FFFF}' => true,
            _ => false,
        };
        if bad {
            return Some((Pos { line, col }, c));
        }
        if c == '\n' {
            (line, col) = (line + 1, 1);
        } else {
            col += 1;
        }
    }
    None
}

fn parse_with(text: &str, record: bool) -> Result<(Value, Option<Spans>), LoadError> {
    if let Some((pos, c)) = non_printable(text) {
        let message = format!(
            "character U+{:04X} is not allowed in YAML; write it as an escape in a double-quoted string",
            c as u32
        );
        return Err(LoadError { pos, message, path: None });
    }
    let (builder, parsed) = run(text, Builder { record, ..Builder::default() });
    // The builder's own limits (depth, aliases, duplicates) are hit first
    // and say more than the parser's later complaint.
    if let Some(err) = builder.error {
        return Err(err);
    }
    if let Err(e) = parsed {
        let pos = Pos::from_marker(*e.marker());
        // The scanner's own nesting guard can fire before the builder sees
        // the events: report it as the limit it is.
        let message = if e.info().contains("recursion limit") {
            format!("nesting deeper than {MAX_DEPTH} levels")
        } else {
            format!("invalid YAML: {}", e.info())
        };
        return Err(LoadError { pos, message, path: None });
    }
    let value = builder.done.unwrap_or(Value::Null);
    Ok((value, record.then_some(Spans { map: builder.spans })))
}

enum Frame {
    Seq { items: Vec<Value>, path: String, anchor: usize },
    Map { map: Entries, pending_key: Option<(String, Pos)>, path: String, anchor: usize },
}

/// The entries of a mapping being built. serde_yaml's `Mapping` hashes each
/// key with SipHash (once to look for a duplicate, once to insert) and
/// grows from empty; most mappings of a stack file are short, so they are
/// kept in a list, checked for a duplicate by comparing keys, and turned
/// into a `Mapping` of the right size once, at their end.
enum Entries {
    Few(Vec<(String, Value)>),
    Many(Mapping),
}

impl Entries {
    /// Up to this many entries, a list.
    const FEW: usize = 16;

    fn is_empty(&self) -> bool {
        match self {
            Entries::Few(v) => v.is_empty(),
            Entries::Many(m) => m.is_empty(),
        }
    }

    fn contains(&self, key: &str) -> bool {
        match self {
            Entries::Few(v) => v.iter().any(|(k, _)| k == key),
            Entries::Many(m) => m.contains_key(key),
        }
    }

    fn push(&mut self, key: String, value: Value) {
        match self {
            Entries::Few(v) if v.len() < Self::FEW => v.push((key, value)),
            Entries::Few(v) => {
                let mut m = Mapping::with_capacity(2 * Self::FEW);
                m.extend(v.drain(..).map(|(k, v)| (Value::String(k), v)));
                m.insert(Value::String(key), value);
                *self = Entries::Many(m);
            }
            Entries::Many(m) => {
                m.insert(Value::String(key), value);
            }
        }
    }

    fn into_mapping(self) -> Mapping {
        match self {
            Entries::Few(v) => v.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            Entries::Many(m) => m,
        }
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    done: Option<Value>,
    documents: usize,
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    alias_nodes: usize,
    /// Whether paths and positions are recorded (`spans`).
    record: bool,
    /// How deep the parsed text's root sits in its document (`parse_piece`).
    depth: usize,
    /// Whether an anchor or alias was seen.
    anchored: bool,
    spans: HashMap<String, Pos>,
    error: Option<LoadError>,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: String) {
        if self.error.is_none() {
            let path = self.current_child_path();
            self.error = Some(LoadError { pos, message, path });
        }
    }

    /// The path the next value will get.
    fn current_child_path(&self) -> Option<String> {
        match self.stack.last()? {
            Frame::Seq { items, path, .. } => Some(format!("{path}[{}]", items.len())),
            Frame::Map { pending_key: Some((k, _)), path, .. } => Some(join(path, k)),
            Frame::Map { path, .. } => Some(path.clone()),
        }
    }

    fn count(&mut self, n: usize, pos: Pos) -> bool {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            self.fail(pos, format!("document has more than {MAX_NODES} nodes"));
            return false;
        }
        true
    }

    fn count_alias(&mut self, n: usize, pos: Pos) -> bool {
        self.alias_nodes += n;
        if self.alias_nodes > MAX_ALIAS_NODES {
            self.fail(pos, format!("aliases expand to more than {MAX_ALIAS_NODES} nodes (alias bomb?)"));
            return false;
        }
        self.count(n, pos)
    }

    /// Adds a finished value to the enclosing collection.
    fn push_value(&mut self, value: Value, pos: Pos) {
        match self.stack.last_mut() {
            None => self.done = Some(value),
            Some(Frame::Seq { items, path, .. }) => {
                if self.record {
                    let p = format!("{path}[{}]", items.len());
                    self.spans.entry(p).or_insert(pos);
                }
                items.push(value);
            }
            Some(Frame::Map { map, pending_key, path, .. }) => match pending_key.take() {
                None => {
                    let key = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_string(),
                        _ => {
                            self.fail(pos, "mapping keys must be plain strings".into());
                            return;
                        }
                    };
                    if map.contains(&key) {
                        // Without `record` the message lacks the first
                        // line; `parse_value` parses again with it.
                        let p = join(path, &key);
                        let first = self.spans.get(&p).copied();
                        let at = first.map(|f| format!(" (first defined at line {})", f.line)).unwrap_or_default();
                        self.fail(pos, format!("duplicate key `{key}`{at}"));
                        return;
                    }
                    if self.record {
                        if map.is_empty() {
                            let own = path.clone();
                            self.spans.entry(own).or_insert(pos);
                        }
                        let p = join(path, &key);
                        self.spans.insert(p, pos);
                    }
                    *pending_key = Some((key, pos));
                }
                Some((key, _)) => map.push(key, value),
            },
        }
    }

    /// The path of the next collection (empty when not recording).
    fn child_path(&self) -> String {
        if !self.record {
            return String::new();
        }
        self.current_child_path().unwrap_or_default()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = Pos::from_marker(mark);
        if matches!(&ev, Event::Alias(_))
            || matches!(&ev, Event::Scalar(_, _, a, _) | Event::SequenceStart(a, _) | Event::MappingStart(a, _) if *a > 0)
        {
            self.anchored = true;
        }
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(pos, "a stack file holds exactly one YAML document; found a second `---`".into());
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if !self.count(1, pos) {
                    return;
                }
                // A plain key keeps its spelling (`1e3:` is the key `1e3`,
                // not `1000.0`); one that reads as null is refused.
                let at_key = matches!(self.stack.last(), Some(Frame::Map { pending_key: None, .. }));
                let value = if at_key && tag.is_none() && style == TScalarStyle::Plain {
                    if matches!(resolve_plain_core(&text), Some(Value::Null)) {
                        return self.fail(
                            pos,
                            format!("the key `{text}` reads as null, not a name; quote it if a name is meant"),
                        );
                    }
                    Value::String(text)
                } else {
                    match resolve_scalar(text, style, tag.as_ref()) {
                        Ok(v) => v,
                        Err(msg) => return self.fail(pos, msg),
                    }
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, (value.clone(), 1));
                }
                self.push_value(value, pos);
            }
            Event::Alias(id) => {
                let Some((value, weight)) = self.anchors.get(&id).cloned() else {
                    return self.fail(pos, "alias refers to an unknown anchor".into());
                };
                if !self.count_alias(weight, pos) {
                    return;
                }
                self.push_value(value, pos);
            }
            Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) if tag.is_some() => {
                self.fail(pos, format!("YAML tags are not supported here (found `{}`)", tag_text(tag.as_ref())));
            }
            Event::SequenceStart(anchor, _) => {
                if self.stack.len() + self.depth >= MAX_DEPTH {
                    return self.fail(pos, format!("nesting deeper than {MAX_DEPTH} levels"));
                }
                let path = self.child_path();
                if self.record && matches!(self.stack.last(), Some(Frame::Seq { .. }) | None) {
                    self.spans.entry(path.clone()).or_insert(pos);
                }
                self.stack.push(Frame::Seq { items: Vec::new(), path, anchor });
            }
            Event::MappingStart(anchor, _) => {
                if self.stack.len() + self.depth >= MAX_DEPTH {
                    return self.fail(pos, format!("nesting deeper than {MAX_DEPTH} levels"));
                }
                if let Some(Frame::Map { pending_key: None, .. }) = self.stack.last() {
                    return self.fail(pos, "mapping keys must be plain strings".into());
                }
                let path = self.child_path();
                // A block mapping's start marker sits on its first `:`; the
                // mapping's position is recorded at its first key instead.
                self.stack.push(Frame::Map { map: Entries::Few(Vec::new()), pending_key: None, path, anchor });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return;
                };
                let (value, anchor) = match frame {
                    Frame::Seq { items, anchor, .. } => (Value::Sequence(items), anchor),
                    Frame::Map { map, anchor, .. } => (Value::Mapping(map.into_mapping()), anchor),
                };
                if anchor > 0 {
                    let weight = weight_of(&value);
                    self.anchors.insert(anchor, (value.clone(), weight));
                }
                self.push_value(value, pos);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

fn weight_of(v: &Value) -> usize {
    match v {
        Value::Sequence(s) => 1 + s.iter().map(weight_of).sum::<usize>(),
        Value::Mapping(m) => 1 + m.values().map(weight_of).sum::<usize>(),
        _ => 1,
    }
}

fn tag_text(tag: Option<&Tag>) -> String {
    tag.map(|t| format!("{}{}", t.handle, t.suffix)).unwrap_or_default()
}

/// Resolves a scalar by the YAML 1.2 core schema.
fn resolve_scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(t) = tag {
        let full = tag_text(Some(t));
        return match full.as_str() {
            "!!str" | "tag:yaml.org,2002:str" => Ok(Value::String(text)),
            _ => Err(format!("YAML tags are not supported here (found `{full}`)")),
        };
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text));
    }
    Ok(resolve_plain_core(&text).unwrap_or(Value::String(text)))
}

/// What an untagged plain scalar is by the YAML 1.2 core schema when it is
/// not a string: null, a boolean or a number (`None`: a string).
pub(super) fn resolve_plain_core(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Some(Value::Null),
        "true" | "True" | "TRUE" => Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => Some(Value::Bool(false)),
        _ => parse_number(text),
    }
}

/// The loader's value of a document read by the fast path, counting its
/// nodes as the event loader does (every scalar, keys included).
fn from_doc(doc: Doc<'_>, nodes: &mut usize) -> Value {
    *nodes += usize::from(!matches!(doc, Doc::Array(_) | Doc::Object(_)));
    match doc {
        Doc::Null => Value::Null,
        Doc::Bool(b) => Value::Bool(b),
        Doc::Number(n) => Value::Number(match n.as_i64() {
            Some(i) => Number::from(i),
            None => Number::from(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Doc::String(s) => Value::String(s.into_owned()),
        Doc::Array(items) => Value::Sequence(items.into_iter().map(|d| from_doc(d, nodes)).collect()),
        Doc::Object(entries) => {
            *nodes += entries.len();
            let mut map = Mapping::with_capacity(entries.len());
            for (k, v) in entries {
                let v = from_doc(v, nodes);
                map.insert(Value::String(k.into_owned()), v);
            }
            Value::Mapping(map)
        }
    }
}

/// The fast path (`fast::parse_input`) for a stack file or a piece of one:
/// the value and its node count, or `None` when the text is outside its
/// subset or over the node limit (the event loader then parses it, and
/// reports what is wrong).
fn parse_fast(text: &str) -> Option<(Value, usize)> {
    let (doc, alias_adjust) = super::fast::parse_input(text)?;
    let mut nodes = 0;
    let value = from_doc(doc, &mut nodes);
    let nodes = nodes.checked_add_signed(alias_adjust)?;
    (nodes <= MAX_NODES).then_some((value, nodes))
}

fn parse_number(s: &str) -> Option<Value> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    // Every number starts with a digit or a dot (most scalars are words).
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        // `0755`, `+1` or `-0` would lose their spelling as numbers; they
        // stay strings (a numeric field then says it wants a number).
        if s.starts_with('+') || (digits.starts_with('0') && (digits.len() > 1 || neg)) {
            return None;
        }
        let v: i64 = s.parse().ok()?;
        return Some(Value::Number(Number::from(v)));
    }

    if digits.eq_ignore_ascii_case(".inf") {
        return Some(Value::Number(Number::from(if neg { f64::NEG_INFINITY } else { f64::INFINITY })));
    }
    if s == ".nan" || s == ".NaN" || s == ".NAN" {
        return Some(Value::Number(Number::from(f64::NAN)));
    }
    let looks_float = digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if looks_float {
        return s.parse::<f64>().ok().map(|f| Value::Number(Number::from(f)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_where_they_are() {
        for (text, line, col, code) in [
            ("a: 1\nb: x\0\nc: [\n", 2, 5, 0),
            ("a: \u{1}\n", 1, 4, 1),
            ("a: é\u{7f}\n", 1, 5, 0x7f),
            ("a:\n  - \u{9b}\n", 2, 5, 0x9b),
            ("a: \u{ffff}\n", 1, 4, 0xffff),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!((e.pos.line, e.pos.col), (line, col), "{text:?}: {}", e.message);
            assert!(e.message.contains(&format!("U+{code:04X}")), "{text:?}: {}", e.message);
            assert!(parse_value(text).is_err(), "{text:?}");
        }
        // Tab, carriage return and NEL are allowed.
        for text in ["a: \"x\ty\"\r\n", "a: x\u{85}y\n"] {
            assert!(parse(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn resolves_core_schema() {
        let (v, _) = parse("a: on\nb: 0755\nc: true\nd: '1'\ne: 1.5\nf: ~\ng: 12:30\n").unwrap();
        assert_eq!(v["a"], Value::String("on".into()));
        assert_eq!(v["b"], Value::String("0755".into()));
        assert_eq!(v["c"], Value::Bool(true));
        assert_eq!(v["d"], Value::String("1".into()));
        assert_eq!(v["e"], Value::Number(Number::from(1.5)));
        assert_eq!(v["f"], Value::Null);
        assert_eq!(v["g"], Value::String("12:30".into()));
    }

    /// `parse_number` before it skipped the allocations, kept as it was to
    /// compare with.
    #[allow(clippy::manual_ignore_case_cmp)]
    fn parse_number_reference(s: &str) -> Option<Value> {
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let v: i64 = s.parse().ok()?;
            return (v.to_string() == s).then(|| Value::Number(Number::from(v)));
        }
        if digits.to_ascii_lowercase() == ".inf" {
            return Some(Value::Number(Number::from(if neg { f64::NEG_INFINITY } else { f64::INFINITY })));
        }
        if s == ".nan" || s == ".NaN" || s == ".NAN" {
            return Some(Value::Number(Number::from(f64::NAN)));
        }
        let looks_float = digits.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'.')
            && digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
            && digits.bytes().any(|b| b.is_ascii_digit());
        if looks_float {
            return s.parse::<f64>().ok().map(|f| Value::Number(Number::from(f)));
        }
        None
    }

    #[test]
    fn numbers_resolve_as_before() {
        // Every string of up to 4 characters over an alphabet that spells
        // integers, floats, infinities and NaNs, plus the 64-bit edges.
        const ABC: &[u8] = b"0019.-+eEinfaNI";
        let mut cases: Vec<String> =
            ["9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809"]
                .map(String::from)
                .to_vec();
        let mut layer = vec![String::new()];
        for _ in 0..4 {
            layer = layer.iter().flat_map(|p| ABC.iter().map(move |&c| format!("{p}{}", c as char))).collect();
            cases.extend(layer.iter().cloned());
        }
        let show = |v: Option<Value>| format!("{v:?}");
        for s in &cases {
            assert_eq!(show(parse_number(s)), show(parse_number_reference(s)), "`{s}`");
        }
    }

    #[test]
    fn records_positions() {
        let (_, spans) = parse("services:\n  app:\n    replicas: 2\n    args:\n      - x\n").unwrap();
        assert_eq!(spans.exact("services.app.replicas"), Some(Pos { line: 3, col: 5 }));
        assert_eq!(spans.exact("services.app.args[0]"), Some(Pos { line: 5, col: 9 }));
        assert_eq!(spans.locate("services.app.nope.deeper"), Some(Pos { line: 2, col: 3 }));
    }

    #[test]
    fn the_event_parse_of_a_small_text_keeps_its_positions() {
        // An anchor on a scalar takes the event parser: its one pass
        // records positions.
        let anchored = "base: &b x\nservices:\n  app:\n    image: *b\n    replicas: 2\n";
        let (value, spans) = parse_value_spans(anchored).unwrap();
        let (full, all) = parse(anchored).unwrap();
        assert_eq!(value, full);
        let spans = spans.expect("event parse of a small text records positions");
        assert_eq!(spans.map, all.map);
        assert_eq!(spans.exact("services.app.replicas"), Some(Pos { line: 5, col: 5 }));
        // The fast reader records none: `spans` finds them when needed.
        let plain = "services:\n  app:\n    replicas: 2\n";
        assert!(parse_value_spans(plain).unwrap().1.is_none());
        // A large text takes no positions off the common path.
        let large = format!("a: &a 1\nb: *a\n{}", "# padding\n".repeat(RECORD_MAX / 10 + 1));
        let (value, spans) = parse_value_spans(&large).unwrap();
        assert!(spans.is_none());
        assert_eq!(value, parse(&large).unwrap().0);
    }

    #[test]
    fn mappings_short_and_long_keep_order_and_refuse_duplicates() {
        for n in [1, Entries::FEW, Entries::FEW + 1, 3 * Entries::FEW] {
            // Keys in an order no sorting or hashing would give.
            let keys: Vec<String> = (0..n).map(|i| format!("k{}", (i * 7919) % 1000)).collect();
            let text: String = keys.iter().enumerate().map(|(i, k)| format!("{k}: {i}\n")).collect();
            let (v, _) = parse(&text).unwrap();
            let got: Vec<&str> = v.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap()).collect();
            assert_eq!(got, keys, "{n} keys");
            assert_eq!(parse_value(&text).unwrap(), v);
            for dup in [0, n - 1] {
                let bad = format!("{text}{}: again\n", keys[dup]);
                for e in [parse(&bad).unwrap_err(), parse_value(&bad).unwrap_err()] {
                    assert_eq!(
                        (e.pos.line, e.message.contains("duplicate key")),
                        (n + 1, true),
                        "{n} keys: {}",
                        e.message
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_duplicates_bombs_depth_and_documents() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
        assert!(e.message.contains("duplicate key `a`"), "{}", e.message);

        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='j' {
            bomb.push_str(&format!(
                "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        assert!(parse(&bomb).unwrap_err().message.contains("alias bomb"));

        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).unwrap_err().message.contains("nesting deeper"));

        assert!(parse("a: 1\n---\nb: 2\n").unwrap_err().message.contains("one YAML document"));
        assert_eq!(parse("").unwrap().0, Value::Null);
        assert!(parse("a:\n\tb: 1\n").is_err());
    }

    // ------------------------------------------------- the input fast path

    /// The event loader's answer: the value and its node count, or `None`
    /// when it refuses the text.
    fn slow(text: &str) -> Option<(Value, usize)> {
        let (b, parsed) = run(text, Builder::default());
        (b.error.is_none() && parsed.is_ok()).then(|| (b.done.unwrap_or(Value::Null), b.nodes))
    }

    /// The fast path never disagrees: when it answers, the loader gives the
    /// same value and node count.
    fn agree(text: &str) -> Result<bool, String> {
        match (parse_fast(text), slow(text)) {
            (None, _) => Ok(false),
            (Some(f), Some(s)) if f == s => Ok(true),
            (Some(f), s) => Err(format!("fast {f:?}\nloader {s:?}\ntext:\n{text}")),
        }
    }

    #[test]
    fn fast_path_agrees_on_stacks_and_fixtures() {
        let mut taken = Vec::new();
        // The built-in stacks are the files of `stacks/`.
        let mut files = Vec::new();
        for dir in ["tests/fixtures", "stacks"] {
            crate::yaml::files_under(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut files);
        }
        files.retain(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"));
        assert!(files.len() > 10, "fixtures not found");
        for f in &files {
            // Some fixtures are not UTF-8 on purpose.
            let Ok(text) = String::from_utf8(std::fs::read(f).unwrap()) else { continue };
            if agree(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display())) {
                taken.push(f.display().to_string());
            }
        }
        // The shape of the generated benchmark stack (bench/gen_stack.py)
        // must take the fast path, or it gains nothing.
        let service = "  svc-1:\n    image: r/s:1.0.0  # pinned\n    replicas: 2\n    ports:\n      http: 8080\n    env:\n      HTTP_PORT: \"8080\"\n      DB: { secret: app, key: db-password }\n    mounts:\n      - { volume: data-1, path: /data }\n    probes:\n      readiness: { http: { path: /healthz, port: http }, periodSeconds: 10 }\n    resources:\n      limits: { cpu: \"1\", memory: 512Mi }\n    expose:\n      ports:\n        - { port: 80, target: http }\n    args: [--a, 'b c', \"d\", 1, true, ~, []]\n";
        let text = format!(
            "# bench\nname: big\ntargets: [kubernetes]\nservices:\n{service}secrets:\n  app: {{ keys: [db-password] }}\n"
        );
        assert_eq!(agree(&text), Ok(true), "{text}");
        assert!(taken.len() >= 4, "the fast path took only {taken:?}");
        // Every built-in stack, anchors, aliases and folded scalars included.
        for name in ["loom", "loomio", "loops", "pogly"] {
            let file = format!("stacks/{name}.yaml");
            assert!(taken.iter().any(|t| t.ends_with(&file)), "the fast path did not take {file}: {taken:?}");
        }
    }

    #[test]
    fn fast_path_edge_cases() {
        // (text, whether the fast path must take it)
        let cases: &[(&str, bool)] = &[
            ("a: 1\n", true),
            ("a: 0755\nb: +1\nc: -0\nd: 1.5\ne: 1e3\nf: .5\n", true),
            ("a: True\nb: NULL\nc: ~\nd:\ne: 'x'\n", true),
            ("True: x\n", false),
            ("null: x\n", false),
            ("'True': x\n", true),
            ("1: x\n", false),
            ("a: .inf\n", false),
            ("a: .nan\n", false),
            ("a: x # c\nb: 'y'  # c\nc: [1, 2] # c\nd: # c\n  e: 1\n", true),
            ("a: x#c\n", true),
            ("a: [a, b,]\n", false),
            ("a: [a, , b]\n", false),
            ("a: { b: }\n", false),
            ("a: { b }\n", false),
            ("a: { b: c, b: d }\n", false),
            ("a: [a: b]\n", false),
            ("a: { u: http://x:80/p, v: [a:b] }\n", true),
            ("a: { u: x:, v: y }\n", false),
            ("a: [\"x, y\", 'it''s', \"\\u00e9\"]\n", true),
            ("a: [[], {}, [[1]], { b: { c: [d] } }]\n", true),
            ("a: [1,2]\n", true),
            ("a: {b: c}\n", true),
            ("a: { b : c }\n", true),
            ("a: [x]y\n", false),
            ("a: [x\n  , y]\n", false),
            ("- [a, b]\n- { c: d }\n- e # c\n", true),
            ("a: é\n", false),
            ("a: &x 1\nb: *x\n", false),
            // Anchors on block collections, and aliases of them.
            ("a: &x\n  k: v\nb: *x\n", true),
            ("a: &x\n  - 1\n  - k: v\nb:\n  c: *x # same\n  d: [*x]\n", false),
            ("a: &x\n- 1\nb:\n  - *x\n  - *x\n", true),
            ("a: &x\n  k: v\nb: &x\n  k: w\nc: *x\n", true),
            ("a: &x\n  k: *x\n", false),
            ("a: &x\n  k: v\nb: &x\n  k: *x\n", false),
            ("a: *x\n", false),
            ("a: &x\nb: 1\n", false),
            ("a: &x # c\n  k: v\n", false),
            ("a: &x\n  k: v\nb: *x1\n", false),
            ("a: &x.y\n  k: v\n", false),
            ("a: &x\n  k: {}\nb:\n  e: *x\nc: *x\n", true),
            ("a: &x\n  k: []\nb: *x\n", true),
            ("- &x\n  k: v\n", false),
            ("a: !!str 1\n", false),
            // Folded block scalars: lines joined by spaces, blank lines kept.
            ("a: >\n  folded\n", true),
            ("a: >-\n  one\n  two\n\n  three\n\n\n  four\nb: 1\n", true),
            ("a: >+\n  one\n  two\n\n\nb: 1\n", true),
            ("- >\n  x y\n  z\n- 1\n", true),
            ("a: >\n  one\n    more\n  two\n", false),
            ("a: >\n\n  one\n", false),
            ("a: >\n  x", false),
            ("a: >-\n  x", true),
            ("a: >2\n  x\n", false),
            ("a: > # c\n  x\n", false),
            ("a: |\n  lit\n\n  eral\nb: 1\n", true),
            ("a: b\n---\nc: d\n", false),
            ("{ a: b }\n", false),
            // Found by review: a `|`/`|+` block ending the text without a
            // line break (the event parser keeps one there)...
            ("a: |\n  x", false),
            ("a: |+\n  x", false),
            ("- |\n x", false),
            ("a: |-\n  x", true),
            ("a: |\n  x\n", true),
            // ...and a flow plain scalar ending in ` -` (the event parser
            // refuses it).
            ("a: [a -]\n", false),
            ("a: { k: a -, b: c }\n", false),
            ("- { b c: a -}\n", false),
            ("a: [a-, -a, a-b]\n", true),
            ("", false),
        ];
        for (text, taken) in cases {
            assert_eq!(agree(text), Ok(*taken), "{text:?}");
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Scalars that resolve differently or need quoting (the first
        /// `SAFE`, drawn more often), then ones that break the subset or the
        /// YAML.
        const WORDS: &[&str] = &[
            "a",
            "b c",
            "true",
            "True",
            "FALSE",
            "null",
            "~",
            "",
            "0",
            "-0",
            "+1",
            "0755",
            "007",
            "12",
            "-3",
            "1.5",
            "1e3",
            ".5",
            "5.",
            "0x1F",
            "0o7",
            "1_000",
            "a#b",
            "-x",
            "$(X)",
            "it's",
            "a\\b",
            "http://h:80/p",
            ".inf",
            "-.INF",
            ".nan",
            "a:b",
            "a: b",
            "a #b",
            "#x",
            "- x",
            "x,y",
            "[x",
            "{x",
            "x]",
            "x}",
            "'q'",
            "\"d\"",
            "*a",
            "&a",
            "!t",
            "|",
            ">",
            "@x",
            "%x",
            "`x",
            "?x",
            "? x",
            "é",
            "a -",
            "x |",
        ];
        const SAFE: usize = 28;

        fn word() -> impl Strategy<Value = usize> {
            prop_oneof![4 => 0..SAFE, 1 => 0..WORDS.len()]
        }

        #[derive(Debug, Clone)]
        enum Tree {
            Word(usize, u8),
            Seq(Vec<Tree>, bool),
            Map(Vec<(usize, u8, Tree)>, bool),
        }

        fn tree() -> impl Strategy<Value = Tree> {
            let leaf = (word(), 0u8..4).prop_map(|(w, s)| Tree::Word(w, s));
            leaf.prop_recursive(4, 40, 5, |inner| {
                prop_oneof![
                    (prop::collection::vec(inner.clone(), 0..4), any::<bool>()).prop_map(|(v, f)| Tree::Seq(v, f)),
                    (prop::collection::vec((word(), 0u8..4, inner), 0..4), any::<bool>())
                        .prop_map(|(v, f)| Tree::Map(v, f)),
                ]
            })
        }

        /// A word as a plain, single- or double-quoted scalar (style 3:
        /// plain with a comment after it).
        fn scalar(w: usize, style: u8) -> String {
            let w = WORDS[w];
            match style {
                1 => format!("'{}'", w.replace('\'', "''")),
                2 => format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")),
                _ => w.to_string(),
            }
        }

        fn flow(t: &Tree) -> String {
            match t {
                Tree::Word(w, s) => scalar(*w, *s),
                Tree::Seq(items, _) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
                Tree::Map(entries, _) => format!(
                    "{{ {} }}",
                    entries
                        .iter()
                        .map(|(k, s, v)| format!("{}: {}", scalar(*k, *s), flow(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }

        /// Block style, except where a node asks for flow.
        fn block(t: &Tree, col: usize, out: &mut String) {
            let pad = " ".repeat(col);
            match t {
                Tree::Seq(items, false) if !items.is_empty() => {
                    for item in items {
                        match item {
                            Tree::Word(w, 3) => out.push_str(&format!("{pad}- {} # c\n", scalar(*w, 0))),
                            Tree::Word(..) | Tree::Seq(_, true) | Tree::Map(_, true) => {
                                out.push_str(&format!("{pad}- {}\n", flow(item)))
                            }
                            _ => {
                                out.push_str(&format!("{pad}-\n"));
                                block(item, col + 2, out);
                            }
                        }
                    }
                }
                Tree::Map(entries, false) if !entries.is_empty() => {
                    for (k, s, v) in entries {
                        let key = scalar(*k, *s % 3);
                        match v {
                            Tree::Word(w, 3) => out.push_str(&format!("{pad}{key}: {} # c\n", scalar(*w, 0))),
                            Tree::Word(..) | Tree::Seq(_, true) | Tree::Map(_, true) => {
                                out.push_str(&format!("{pad}{key}: {}\n", flow(v)))
                            }
                            Tree::Seq(items, false) if items.is_empty() => out.push_str(&format!("{pad}{key}: []\n")),
                            Tree::Map(e, false) if e.is_empty() => out.push_str(&format!("{pad}{key}: {{}}\n")),
                            _ => {
                                out.push_str(&format!("{pad}{key}:\n"));
                                block(v, col + 2, out);
                            }
                        }
                    }
                }
                _ => out.push_str(&format!("{pad}{}\n", flow(t))),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]

            #[test]
            fn the_fast_path_never_disagrees(t in tree(), cut in any::<prop::sample::Index>(), edit in 0u8..14, ch in prop::sample::select(vec![' ', ':', '#', ',', '[', ']', '{', '}', '-', '\n', '"', '\'', 'x'])) {
                let mut text = String::new();
                block(&t, 0, &mut text);
                agree(&text).map_err(TestCaseError::fail)?;
                // One edit anywhere: insert or delete a character, or drop
                // the final line break.
                let mut edited: Vec<char> = text.chars().collect();
                if !edited.is_empty() {
                    let i = cut.index(edited.len());
                    match edit {
                        0..6 => edited.insert(i, ch),
                        6..12 => {
                            edited.remove(i);
                        }
                        _ => {
                            edited.pop();
                        }
                    }
                }
                let edited: String = edited.into_iter().collect();
                agree(&edited).map_err(TestCaseError::fail)?;
            }
        }
    }
}
