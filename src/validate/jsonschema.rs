//! A small JSON Schema checker for the subset the embedded schemas use
//! (Kubernetes OpenAPI in JSON-schema form, CRD schemas, the Compose
//! Specification, stackgen's own stack schema): `type`, `properties`,
//! `additionalProperties`, `patternProperties`, `pattern`,
//! `required`, `items`, `enum`, `const`, `oneOf`/`anyOf`/`allOf`, `$ref`
//! into the same document, numeric bounds, and the Kubernetes extensions
//! `x-kubernetes-int-or-string` and `x-kubernetes-preserve-unknown-fields`.
//! Unknown keywords are ignored, so the checker errs towards accepting.
//!
//! Every error carries the JSON path of the offending value and the rule.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use super::sdoc::V;
use crate::yaml::doc::Doc;

/// One violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path such as `.spec.template.spec.containers[0].imagePullPolicyy`.
    pub path: String,
    pub rule: String,
}

/// A `pattern` value or `patternProperties` key of a compiled node.
struct Pattern<'a> {
    text: &'a str,
    matcher: Matcher<'a>,
}

/// How a pattern is matched: most schema patterns have a simple shape
/// (Compose keys every object's extensions by `^x-` and services by
/// `^[a-zA-Z0-9._-]+$`) and are matched directly; matching them with
/// regex-lite behind a shared, locked cache took about 3% of the CPU time
/// of rendering the built-in stacks. Any other pattern is compiled the
/// first time its node matches; one the engine cannot compile is
/// remembered as `None` and matches everything (the checker errs towards
/// accepting).
enum Matcher<'a> {
    Simple(Simple<'a>),
    Regex(OnceLock<Option<regex_lite::Regex>>),
}

impl<'a> Pattern<'a> {
    fn new(text: &'a str) -> Self {
        let matcher = Simple::of(text).map_or_else(|| Matcher::Regex(OnceLock::new()), Matcher::Simple);
        Pattern { text, matcher }
    }

    fn matches(&self, text: &str) -> bool {
        match &self.matcher {
            Matcher::Simple(simple) => simple.matches(text),
            Matcher::Regex(re) => {
                re.get_or_init(|| regex_lite::Regex::new(self.text).ok()).as_ref().is_none_or(|r| r.is_match(text))
            }
        }
    }
}

/// The shapes `Pattern` matches directly, each exactly as the regex does.
#[derive(Debug, PartialEq)]
enum Simple<'a> {
    /// `^abc`: starts with a word of letters, digits, `_` and `-`.
    Prefix(&'a str),
    /// `^abc$`: is exactly that word.
    Exact(&'a str),
    /// `^[...]+$` of ASCII letters, digits, ranges of them and `._-`: one
    /// or more characters, each in the set (bit per ASCII code).
    Class(u128),
    /// `^.+$`: one or more characters, none a line feed.
    Line,
    /// `.+` (unanchored, Compose's key pattern of labels and environment
    /// maps): some character that is not a line feed.
    NotBlank,
}

impl<'a> Simple<'a> {
    fn of(p: &'a str) -> Option<Self> {
        let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if p == ".+" {
            return Some(Simple::NotBlank);
        }
        let body = p.strip_prefix('^')?;
        if body == ".+$" {
            return Some(Simple::Line);
        }
        if let Some(set) = body.strip_prefix('[').and_then(|b| b.strip_suffix("]+$")) {
            return Self::class(set).map(Simple::Class);
        }
        match body.strip_suffix('$') {
            Some(w) if word(w) => Some(Simple::Exact(w)),
            None if word(body) => Some(Simple::Prefix(body)),
            _ => None,
        }
    }

    /// The set of a character class of letters, digits, their ranges
    /// (`a-z`) and `.` `_`, with `-` literal only first or last.
    fn class(set: &str) -> Option<u128> {
        let b = set.as_bytes();
        let mut bits = 0u128;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let range_end = (i + 2 < b.len() && b[i + 1] == b'-').then(|| b[i + 2]);
            if let Some(end) = range_end {
                let same_kind = (c.is_ascii_lowercase() && end.is_ascii_lowercase())
                    || (c.is_ascii_uppercase() && end.is_ascii_uppercase())
                    || (c.is_ascii_digit() && end.is_ascii_digit());
                if !same_kind || c > end {
                    return None;
                }
                for x in c..=end {
                    bits |= 1 << x;
                }
                i += 3;
                continue;
            }
            let literal =
                c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || (c == b'-' && (i == 0 || i + 1 == b.len()));
            if !literal {
                return None;
            }
            bits |= 1 << c;
            i += 1;
        }
        (bits != 0).then_some(bits)
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            Simple::Prefix(w) => text.starts_with(w),
            Simple::Exact(w) => text == *w,
            Simple::Class(bits) => !text.is_empty() && text.bytes().all(|c| c < 128 && bits & (1 << c) != 0),
            Simple::Line => !text.is_empty() && !text.contains('\n'),
            Simple::NotBlank => text.bytes().any(|b| b != b'\n'),
        }
    }
}

/// A schema document ready to check values against. Each schema node is
/// compiled the first time a check reaches it: its keywords read once, its
/// `$ref` followed once, its properties sorted for binary search. Checking
/// then walks compiled nodes without hashing or re-reading keywords, and a
/// render that never reaches most of a large schema never compiles it.
///
/// The schema is read where it lies in its encoded form ([`V`]): a node's
/// keywords are read when it compiles, so the parts no check reaches are
/// never read at all.
pub struct Schema {
    root: V,
    /// The definitions `$ref`s point at (`#/$defs/NAME`, `#/definitions/NAME`),
    /// by section and name for binary search, listed on first use: finding
    /// one by reading the section's keys in turn was 1.4% of the
    /// instructions of rendering the built-in stacks.
    defs: OnceLock<Vec<(&'static str, &'static str, V)>>,
    /// Compiled nodes by the offset of the schema value they came from
    /// (after `$ref`s), so a definition used in many places compiles once.
    /// Compiled nodes live as long as the process (see `compile`).
    compiled: RwLock<HashMap<usize, &'static Node, foldhash::fast::RandomState>>,
}

/// A subschema, compiled on first use.
struct Child {
    schema: V,
    node: OnceLock<&'static Node>,
}

impl Child {
    fn new(schema: V) -> Self {
        Child { schema, node: OnceLock::new() }
    }
}

/// The order of a node's properties for lookup: by length, then by bytes.
/// Most comparisons of a binary search then end on the lengths, without
/// comparing any bytes (comparing names was 1% of checking documents).
fn lookup_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// What a schema allows beside its listed properties.
enum Additional {
    Any,
    Forbidden,
    Schema(Child),
}

/// One schema node, `$ref`s followed. The few keyword values a check
/// compares with (`type`, `enum`, `const`) are copied out as [`Doc`]s.
struct Node {
    /// The schema `false`: no value is allowed.
    nothing: bool,
    /// Not an object (`true`, or something unexpected): anything goes.
    anything: bool,
    int_or_string: bool,
    preserve_unknown: bool,
    ty: Option<Doc<'static>>,
    enumeration: Option<Vec<Doc<'static>>>,
    constant: Option<Doc<'static>>,
    pattern: Option<Pattern<'static>>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    all_of: Vec<Child>,
    one_of: Option<Vec<Child>>,
    any_of: Option<Vec<Child>>,
    /// The names in `properties`, as written (for "did you mean").
    known: Vec<&'static str>,
    /// `properties`, in [`lookup_order`] for binary search.
    properties: Vec<(&'static str, Child)>,
    required: Vec<&'static str>,
    pattern_properties: Vec<(Pattern<'static>, Child)>,
    additional: Additional,
    items: Option<Child>,
}

impl Node {
    /// Reads the keywords of `s` (a schema value, `$ref`s followed).
    fn of(s: V) -> Self {
        let mut n = Node {
            nothing: s.as_bool() == Some(false),
            anything: false,
            int_or_string: false,
            preserve_unknown: false,
            ty: None,
            enumeration: None,
            constant: None,
            pattern: None,
            minimum: None,
            maximum: None,
            all_of: Vec::new(),
            one_of: None,
            any_of: None,
            known: Vec::new(),
            properties: Vec::new(),
            required: Vec::new(),
            pattern_properties: Vec::new(),
            additional: Additional::Any,
            items: None,
        };
        if !s.is_object() {
            n.anything = !n.nothing;
            return n;
        }
        let list = |v: V| -> Vec<Child> { v.items().map(Child::new).collect() };
        let entries =
            |v: V| -> Vec<(&'static str, Child)> { v.entries().map(|(k, sub)| (k, Child::new(sub))).collect() };
        for (key, v) in s.entries() {
            match key {
                "x-kubernetes-int-or-string" => n.int_or_string = v.as_bool() == Some(true),
                "x-kubernetes-preserve-unknown-fields" => n.preserve_unknown = v.as_bool() == Some(true),
                "type" => n.ty = Some(v.to_doc()),
                "enum" => n.enumeration = v.is_array().then(|| v.items().map(V::to_doc).collect()),
                "const" => n.constant = Some(v.to_doc()),
                "pattern" => n.pattern = v.as_str().map(Pattern::new),
                "minimum" => n.minimum = v.as_f64(),
                "maximum" => n.maximum = v.as_f64(),
                "allOf" => n.all_of = list(v),
                "oneOf" => n.one_of = v.is_array().then(|| list(v)),
                "anyOf" => n.any_of = v.is_array().then(|| list(v)),
                "properties" => {
                    n.known = v.entries().map(|(k, _)| k).collect();
                    n.properties = entries(v);
                    n.properties.sort_by(|a, b| lookup_order(a.0, b.0));
                }
                "required" => n.required = v.items().filter_map(V::as_str).collect(),
                "patternProperties" => {
                    n.pattern_properties = entries(v).into_iter().map(|(k, c)| (Pattern::new(k), c)).collect();
                }
                "additionalProperties" => {
                    n.additional = if v.as_bool() == Some(false) {
                        Additional::Forbidden
                    } else if v.is_object() {
                        Additional::Schema(Child::new(v))
                    } else {
                        Additional::Any
                    }
                }
                "items" => n.items = Some(Child::new(v)),
                _ => {}
            }
        }
        n
    }
}

/// Where a value sits, built into a string only when a violation needs it.
#[derive(Clone, Copy)]
enum At<'p> {
    Root(&'p str),
    Key(&'p At<'p>, &'p str),
    Index(&'p At<'p>, usize),
}

impl At<'_> {
    fn text(&self) -> String {
        match self {
            At::Root(p) => (*p).to_string(),
            At::Key(parent, k) => format!("{}.{k}", parent.text()),
            At::Index(parent, i) => format!("{}[{i}]", parent.text()),
        }
    }
}

/// Where a walk puts its violations. A probe (does this alternative of a
/// `oneOf` or `anyOf` pass?) needs only to know whether there is one: it
/// stops at the first, and builds no path or message for it.
struct Out {
    list: Vec<Violation>,
    probe: bool,
}

impl Out {
    fn report() -> Self {
        Out { list: Vec::new(), probe: false }
    }

    fn probe() -> Self {
        Out { list: Vec::new(), probe: true }
    }

    /// Whether the walk can stop here.
    fn full(&self) -> bool {
        self.list.len() >= if self.probe { 1 } else { 50 }
    }

    fn fail(&mut self, at: &At<'_>, rule: impl FnOnce() -> String) {
        let v = if self.probe {
            Violation { path: String::new(), rule: String::new() }
        } else {
            Violation { path: at.text(), rule: rule() }
        };
        self.list.push(v);
    }
}

impl Schema {
    /// A checker for `doc`; nodes compile as checks first reach them, and
    /// regexes compile on first use. Both are shared by every check, on
    /// every thread.
    pub fn new(root: V) -> Self {
        Schema { root, defs: OnceLock::new(), compiled: RwLock::new(HashMap::default()) }
    }

    /// A checker for a schema given as JSON (encoded first; never freed).
    #[cfg(test)]
    pub fn from_json(schema: &serde_json::Value) -> Self {
        Schema::new(super::sdoc::Encoded::from_json(schema).root())
    }

    /// The schema's root value.
    pub fn root(&self) -> V {
        self.root
    }

    /// Checks `value` against the document's root; returns every violation
    /// found (up to a limit).
    pub fn check(&self, value: &Doc<'_>) -> Vec<Violation> {
        self.check_at(self.root, value)
    }

    /// Checks `value` against `node`, a schema inside the document.
    pub fn check_at(&self, node: V, value: &Doc<'_>) -> Vec<Violation> {
        let mut out = Out::report();
        self.walk(self.compile(node), value, &At::Root(""), &mut out, 0);
        out.list.truncate(50);
        out.list
    }

    /// Follows `$ref`s into the same document (`#/a/b`).
    fn resolve(&self, mut s: V) -> V {
        for _ in 0..32 {
            let Some(r) = s.get("$ref").and_then(V::as_str) else { return s };
            let Some(ptr) = r.strip_prefix('#') else { return s };
            match self.definition(ptr).or_else(|| self.root.pointer(ptr)) {
                Some(t) => s = t,
                None => return s,
            }
        }
        s
    }

    /// The definition at `ptr` when it is `/$defs/NAME` or
    /// `/definitions/NAME` (a NAME without `/` or `~` escapes).
    fn definition(&self, ptr: &str) -> Option<V> {
        let (section, name) = ptr.strip_prefix('/')?.split_once('/')?;
        if name.contains(['/', '~']) || !matches!(section, "$defs" | "definitions") {
            return None;
        }
        let defs = self.defs.get_or_init(|| {
            let mut defs: Vec<(&'static str, &'static str, V)> = ["$defs", "definitions"]
                .into_iter()
                .filter_map(|sec| Some((sec, self.root.get(sec)?)))
                .flat_map(|(sec, d)| d.entries().map(move |(k, v)| (sec, k, v)))
                .collect();
            // A repeated name: the first, as a pointer finds it.
            defs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            defs.dedup_by(|later, first| (later.0, later.1) == (first.0, first.1));
            defs
        });
        let i = defs.binary_search_by(|(sec, n, _)| (*sec, *n).cmp(&(section, name))).ok()?;
        Some(defs[i].2)
    }

    /// The compiled node of `schema` (`$ref`s followed). A node is never
    /// freed: schemas live as long as the process, and a node's children
    /// point at nodes shared with other parents.
    fn compile(&self, schema: V) -> &'static Node {
        let s = self.resolve(schema);
        let key = s.offset();
        // A poisoned lock only means another check panicked; entries are
        // inserted whole.
        if let Some(node) = self.compiled.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return node;
        }
        let node: &'static Node = Box::leak(Box::new(Node::of(s)));
        // Two threads may compile the same node at once: the first one
        // inserted is the one kept.
        self.compiled.write().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(node)
    }

    fn child(&self, c: &Child) -> &'static Node {
        c.node.get_or_init(|| self.compile(c.schema))
    }

    fn walk(&self, n: &Node, v: &Doc<'_>, at: &At<'_>, out: &mut Out, depth: usize) {
        if depth > 200 || out.full() {
            return;
        }
        if n.nothing {
            out.fail(at, || "no value is allowed here".into());
            return;
        }
        if n.anything {
            return;
        }

        if n.int_or_string {
            if !(v.is_string() || v.is_integer()) {
                out.fail(at, || format!("expected an integer or a string, found {}", kind(v)));
            }
            return;
        }
        if let Some(t) = &n.ty {
            let ok = match t {
                Doc::String(t) => type_ok(t, v),
                Doc::Array(ts) => ts.iter().filter_map(Doc::as_str).any(|t| type_ok(t, v)),
                _ => true,
            };
            if !ok {
                out.fail(at, || format!("expected {}, found {}", type_text(t), kind(v)));
                return;
            }
        }
        if let Some(e) = &n.enumeration
            && !e.iter().any(|x| v.same(x))
        {
            out.fail(at, || {
                let allowed: Vec<String> = e.iter().take(12).map(|x| x.to_json().to_string()).collect();
                format!("{} is not one of {}", v.to_json(), allowed.join(", "))
            });
        }
        if let Some(c) = &n.constant
            && !v.same(c)
        {
            out.fail(at, || format!("expected {}, found {}", c.to_json(), v.to_json()));
        }
        if let (Some(p), Some(text)) = (&n.pattern, v.as_str())
            && !p.matches(text)
        {
            out.fail(at, || format!("`{text}` does not match the pattern `{}`", p.text));
        }
        if let Some(x) = v.as_f64() {
            if let Some(min) = n.minimum
                && x < min
            {
                out.fail(at, || format!("{x} is below the minimum {min}"));
            }
            if let Some(max) = n.maximum
                && x > max
            {
                out.fail(at, || format!("{x} is above the maximum {max}"));
            }
        }
        for sub in &n.all_of {
            self.walk(self.child(sub), v, at, out, depth + 1);
        }
        for (key, alts) in [("oneOf", &n.one_of), ("anyOf", &n.any_of)] {
            let Some(alts) = alts else { continue };
            let passing = alts
                .iter()
                .filter(|sub| {
                    let mut o = Out::probe();
                    self.walk(self.child(sub), v, at, &mut o, depth + 1);
                    o.list.is_empty()
                })
                .count();
            let ok = if key == "oneOf" { passing == 1 } else { passing >= 1 };
            if !ok && out.probe {
                out.fail(at, String::new);
            } else if !ok {
                // Report the errors of the closest alternative.
                let best = alts
                    .iter()
                    .map(|sub| {
                        let mut o = Out::report();
                        self.walk(self.child(sub), v, at, &mut o, depth + 1);
                        o.list
                    })
                    .min_by_key(Vec::len)
                    .unwrap_or_default();
                if best.is_empty() {
                    out.fail(at, || format!("matches {passing} of the `{key}` alternatives, expected exactly one"));
                } else {
                    out.list.extend(best);
                }
            }
        }
        match v {
            Doc::Object(map) => {
                for r in &n.required {
                    if !map.iter().any(|(k, _)| k == r) {
                        out.fail(at, || format!("missing required field `{r}`"));
                    }
                }
                for (k, child) in map {
                    let child_at = At::Key(at, k);
                    if let Ok(i) = n.properties.binary_search_by(|(name, _)| lookup_order(name, k)) {
                        self.walk(self.child(&n.properties[i].1), child, &child_at, out, depth + 1);
                        continue;
                    }
                    let mut matched = false;
                    for (pat, sub) in &n.pattern_properties {
                        if pat.matches(k) {
                            matched = true;
                            self.walk(self.child(sub), child, &child_at, out, depth + 1);
                        }
                    }
                    if matched {
                        continue;
                    }
                    match &n.additional {
                        Additional::Forbidden if !n.preserve_unknown => out.fail(&child_at, || {
                            let mut rule = format!("unknown field `{k}`");
                            if let Some(s) = crate::diagnostic::did_you_mean(k, n.known.iter().copied()) {
                                rule.push_str(&format!(" (did you mean `{s}`?)"));
                            }
                            rule
                        }),
                        Additional::Schema(sub) => self.walk(self.child(sub), child, &child_at, out, depth + 1),
                        _ => {}
                    }
                }
            }
            Doc::Array(items) => {
                if let Some(sub) = &n.items {
                    let node = self.child(sub);
                    for (i, item) in items.iter().enumerate() {
                        self.walk(node, item, &At::Index(at, i), out, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}

fn type_ok(t: &str, v: &Doc<'_>) -> bool {
    match t {
        "object" => matches!(v, Doc::Object(_)),
        "array" => matches!(v, Doc::Array(_)),
        "string" => v.is_string(),
        "integer" => v.is_integer() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => matches!(v, Doc::Number(_)),
        "boolean" => matches!(v, Doc::Bool(_)),
        "null" => matches!(v, Doc::Null),
        _ => true,
    }
}

fn type_text(t: &Doc<'_>) -> String {
    match t {
        Doc::String(s) => s.to_string(),
        Doc::Array(a) => a.iter().filter_map(Doc::as_str).collect::<Vec<_>>().join(" or "),
        _ => t.to_json().to_string(),
    }
}

fn kind(v: &Doc<'_>) -> &'static str {
    match v {
        Doc::Null => "null",
        Doc::Bool(_) => "a boolean",
        Doc::Number(n) if n.is_f64() => "a number",
        Doc::Number(_) => "an integer",
        Doc::String(_) => "a string",
        Doc::Array(_) => "a list",
        Doc::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_patterns_match_exactly_as_the_regex_does() {
        // Every pattern of the embedded schemas (values of `pattern`, keys
        // of `patternProperties`), on texts built from their own characters.
        fn collect<'d>(d: &'d Doc<'d>, out: &mut Vec<&'d str>) {
            match d {
                Doc::Object(map) => {
                    for (k, v) in map {
                        match (k.as_ref(), v) {
                            ("pattern", Doc::String(p)) => out.push(p),
                            ("patternProperties", Doc::Object(ps)) => out.extend(ps.iter().map(|(p, _)| p.as_ref())),
                            _ => {}
                        }
                        collect(v, out);
                    }
                }
                Doc::Array(items) => items.iter().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        let docs: Vec<Doc<'static>> = crate::embedded::SCHEMAS
            .iter()
            .map(|(path, text)| serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}")))
            .collect();
        let mut patterns = Vec::new();
        docs.iter().for_each(|d| collect(d, &mut patterns));
        patterns.sort_unstable();
        patterns.dedup();
        let texts: Vec<String> = {
            let alphabet = ["", "x", "x-", "X", "a", "z", "A", "Z", "0", "9", ".", "_", "-", "/", " ", "\n", "é", "ab"];
            let mut t = Vec::new();
            for a in alphabet {
                for b in alphabet {
                    for c in ["", "x-", "-y", "a.b", "\n"] {
                        t.push(format!("{a}{b}{c}"));
                    }
                }
            }
            t
        };
        let mut simple = 0;
        for p in &patterns {
            let Some(s) = Simple::of(p) else { continue };
            simple += 1;
            let re = regex_lite::Regex::new(p).unwrap();
            for t in &texts {
                assert_eq!(s.matches(t), re.is_match(t), "pattern {p:?} ({s:?}) on {t:?}");
            }
        }
        // The shapes the embedded schemas use most are taken directly.
        assert!(simple >= 5, "only {simple} simple patterns among {patterns:?}");
        assert_eq!(Simple::of("^x-"), Some(Simple::Prefix("x-")));
        assert_eq!(Simple::of("^.+$"), Some(Simple::Line));
        assert_eq!(Simple::of(".+"), Some(Simple::NotBlank));
        assert!(matches!(Simple::of("^[a-zA-Z0-9._-]+$"), Some(Simple::Class(_))));
        // Anything else goes to the regex engine.
        for p in ["^[^a]+$", "^[a-z]*$", "^x-.*", "^[a-\\d]+$", "x-", "^[z-a]+$", "^[a-z-0]+$", "^(a|b)$", "^[a-Z]+$"] {
            assert_eq!(Simple::of(p), None, "{p}");
        }
    }

    #[test]
    fn reports_unknown_fields_types_and_required() {
        let schema = json!({
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "name": { "type": "string" },
                "port": { "$ref": "#/$defs/port" },
                "list": { "type": "array", "items": { "type": "integer" } }
            },
            "$defs": { "port": { "x-kubernetes-int-or-string": true } }
        });
        let s = Schema::from_json(&schema);
        assert!(s.check(&Doc::from_json(json!({ "name": "a", "port": "http", "list": [1] }))).is_empty());
        let v = s.check(&Doc::from_json(json!({ "nme": "a", "port": true, "list": ["x"] })));
        let text: Vec<String> = v.iter().map(|v| format!("{} {}", v.path, v.rule)).collect();
        assert!(text.contains(&" missing required field `name`".to_string()), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".nme unknown field `nme` (did you mean `name`?)")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".port expected an integer or a string")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".list[0] expected integer")), "{text:?}");
    }

    #[test]
    fn refs_reach_definitions_in_either_section_and_escaped_names() {
        let s = Schema::from_json(&json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "a": { "$ref": "#/$defs/int" },
                "b": { "$ref": "#/definitions/str" },
                "c": { "$ref": "#/$defs/a~1b" },
                "d": { "$ref": "#/$defs/chain" },
                "e": { "$ref": "#/properties/a" }
            },
            "$defs": { "int": { "type": "integer" }, "a/b": { "type": "boolean" }, "chain": { "$ref": "#/definitions/str" } },
            "definitions": { "str": { "type": "string" }, "int": { "type": "null" } }
        }));
        let ok = json!({ "a": 1, "b": "x", "c": true, "d": "y", "e": 2 });
        assert!(s.check(&Doc::from_json(ok)).is_empty());
        let bad = json!({ "a": "1", "b": 2, "c": "t", "d": null, "e": "z" });
        let text: Vec<String> =
            s.check(&Doc::from_json(bad)).iter().map(|v| format!("{} {}", v.path, v.rule)).collect();
        assert_eq!(
            text,
            [
                ".a expected integer, found a string",
                ".b expected string, found an integer",
                ".c expected boolean, found a string",
                ".d expected string, found null",
                ".e expected integer, found a string"
            ]
        );
    }

    #[test]
    fn one_of_and_any_of_count_passing_alternatives_and_report_the_closest() {
        let schema = json!({
            "type": "object",
            "properties": {
                // Like Kubernetes' Quantity: a string or a number.
                "cpu": { "oneOf": [{ "type": "string" }, { "type": "number" }] },
                // Both alternatives pass for 1.0: oneOf wants exactly one.
                "ratio": { "oneOf": [{ "type": "number" }, { "type": "integer" }] },
                "port": { "anyOf": [
                    { "type": "integer", "minimum": 1 },
                    { "type": "object", "required": ["name"], "additionalProperties": false,
                      "properties": { "name": { "type": "string" } } }
                ] },
                "deep": { "oneOf": [{ "properties": { "x": { "oneOf": [{ "type": "string" }, { "type": "null" }] } } }] }
            }
        });
        let s = Schema::from_json(&schema);
        let text = |v: serde_json::Value| -> Vec<String> {
            s.check(&Doc::from_json(v)).iter().map(|v| format!("{} {}", v.path, v.rule)).collect()
        };
        assert_eq!(text(json!({ "cpu": "500m", "port": 8080, "deep": { "x": null } })), Vec::<String>::new());
        assert_eq!(text(json!({ "cpu": 0.5, "port": { "name": "http" } })), Vec::<String>::new());
        assert_eq!(text(json!({ "cpu": true })), [".cpu expected string, found a boolean"]);
        assert_eq!(text(json!({ "ratio": 1 })), [".ratio matches 2 of the `oneOf` alternatives, expected exactly one"]);
        assert_eq!(text(json!({ "port": 0 })), [".port 0 is below the minimum 1"]);
        // The closest alternative has one violation, the other two.
        assert_eq!(text(json!({ "port": { "nam": "http" } })), [".port expected integer, found a map"]);
        assert_eq!(text(json!({ "deep": { "x": 3 } })), [".deep.x expected string, found an integer"]);
    }
}
