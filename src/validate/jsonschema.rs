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
use std::sync::RwLock;

use serde_json::{Map, Value};

use crate::yaml::doc::Doc;

/// One violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path such as `.spec.template.spec.containers[0].imagePullPolicyy`.
    pub path: String,
    pub rule: String,
}

/// The regular expressions of a schema document (`pattern` values and
/// `patternProperties` keys), each compiled on first use and then shared
/// by every check, on every thread. A pattern the engine cannot compile is
/// remembered as `None`.
#[derive(Debug, Default)]
pub struct Patterns(RwLock<HashMap<String, Option<regex_lite::Regex>>>);

impl Patterns {
    /// Whether `text` matches `pattern`; a pattern the engine cannot
    /// compile matches everything (the checker errs towards accepting).
    fn matches(&self, pattern: &str, text: &str) -> bool {
        // A poisoned lock only means another check panicked; the cache is
        // still consistent (entries are inserted whole).
        if let Some(re) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(pattern) {
            return re.as_ref().is_none_or(|r| r.is_match(text));
        }
        let re = regex_lite::Regex::new(pattern).ok();
        let ok = re.as_ref().is_none_or(|r| r.is_match(text));
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(pattern.to_string(), re);
        ok
    }
}

/// A schema document ready to check values against. Each schema node is
/// compiled once, on first use: its keywords read, its `$ref` followed, its
/// properties sorted for binary search. Checking then walks the compiled
/// nodes without hashing or re-reading keywords.
pub struct Schema<'a> {
    doc: &'a Value,
    patterns: Patterns,
    compiled: RwLock<Compiled<'a>>,
}

/// The compiled nodes and, by the address of the schema value each came
/// from, their index.
#[derive(Default)]
struct Compiled<'a> {
    nodes: Vec<Node<'a>>,
    ids: HashMap<usize, usize>,
}

/// What a schema allows beside its listed properties.
#[derive(Clone, Copy)]
enum Additional {
    Any,
    Forbidden,
    Schema(usize),
}

/// One schema node, `$ref`s followed.
struct Node<'a> {
    /// The schema `false`: no value is allowed.
    nothing: bool,
    /// Not an object (`true`, or something unexpected): anything goes.
    anything: bool,
    int_or_string: bool,
    preserve_unknown: bool,
    ty: Option<&'a Value>,
    enumeration: Option<&'a Vec<Value>>,
    constant: Option<&'a Value>,
    pattern: Option<&'a str>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    all_of: Vec<usize>,
    one_of: Option<Vec<usize>>,
    any_of: Option<Vec<usize>>,
    /// `properties`, as written (for "did you mean").
    known: Option<&'a Map<String, Value>>,
    /// `properties`, sorted by name.
    properties: Vec<(&'a str, usize)>,
    required: Vec<&'a str>,
    pattern_properties: Vec<(&'a str, usize)>,
    additional: Additional,
    items: Option<usize>,
}

impl Node<'_> {
    fn placeholder() -> Self {
        Node {
            nothing: false,
            anything: true,
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
            known: None,
            properties: Vec::new(),
            required: Vec::new(),
            pattern_properties: Vec::new(),
            additional: Additional::Any,
            items: None,
        }
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

impl<'a> Schema<'a> {
    /// A checker for `doc`; nodes compile as checks first reach them, and
    /// regexes compile on first use. Both are shared by every check, on
    /// every thread.
    pub fn new(doc: &'a Value) -> Self {
        Schema { doc, patterns: Patterns::default(), compiled: RwLock::new(Compiled::default()) }
    }

    /// The schema document.
    pub fn doc(&self) -> &'a Value {
        self.doc
    }

    /// Checks `value` against the document's root; returns every violation
    /// found (up to a limit).
    pub fn check(&self, value: &Doc<'_>) -> Vec<Violation> {
        self.check_at(self.doc, value)
    }

    /// Checks `value` against `node`, a schema inside the document.
    pub fn check_at(&self, node: &'a Value, value: &Doc<'_>) -> Vec<Violation> {
        let key = self.resolve(node) as *const Value as usize;
        // A poisoned lock only means another check panicked; nodes are
        // pushed whole, so what is there is consistent.
        let known = self.compiled.read().unwrap_or_else(|e| e.into_inner()).ids.get(&key).copied();
        let id = match known {
            Some(id) => id,
            None => self.compile(&mut self.compiled.write().unwrap_or_else(|e| e.into_inner()), node),
        };
        let compiled = self.compiled.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        self.walk(&compiled.nodes, id, value, &At::Root(""), &mut out, 0);
        out.truncate(50);
        out
    }

    /// Follows `$ref`s into the same document (`#/a/b`).
    fn resolve(&self, mut s: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(r) = s.get("$ref").and_then(Value::as_str) else { return s };
            let Some(ptr) = r.strip_prefix('#') else { return s };
            match self.doc.pointer(ptr) {
                Some(t) => s = t,
                None => return s,
            }
        }
        s
    }

    /// The index of the compiled `schema` (`$ref`s followed), compiling it
    /// and what it reaches if need be.
    fn compile(&self, c: &mut Compiled<'a>, schema: &'a Value) -> usize {
        let s = self.resolve(schema);
        let key = s as *const Value as usize;
        if let Some(&id) = c.ids.get(&key) {
            return id;
        }
        let id = c.nodes.len();
        c.nodes.push(Node::placeholder());
        c.ids.insert(key, id);
        let Some(obj) = s.as_object() else {
            c.nodes[id].nothing = s == &Value::Bool(false);
            c.nodes[id].anything = !c.nodes[id].nothing;
            return id;
        };
        let mut n = Node::placeholder();
        n.anything = false;
        let list = |c: &mut Compiled<'a>, v: &'a Value| -> Vec<usize> {
            v.as_array().into_iter().flatten().map(|sub| self.compile(c, sub)).collect()
        };
        for (key, v) in obj {
            match key.as_str() {
                "x-kubernetes-int-or-string" => n.int_or_string = v.as_bool() == Some(true),
                "x-kubernetes-preserve-unknown-fields" => n.preserve_unknown = v.as_bool() == Some(true),
                "type" => n.ty = Some(v),
                "enum" => n.enumeration = v.as_array(),
                "const" => n.constant = Some(v),
                "pattern" => n.pattern = v.as_str(),
                "minimum" => n.minimum = v.as_f64(),
                "maximum" => n.maximum = v.as_f64(),
                "allOf" => n.all_of = list(c, v),
                "oneOf" => n.one_of = v.is_array().then(|| list(c, v)),
                "anyOf" => n.any_of = v.is_array().then(|| list(c, v)),
                "properties" => {
                    n.known = v.as_object();
                    n.properties = v
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, sub)| (k.as_str(), self.compile(c, sub)))
                        .collect();
                    n.properties.sort_by(|a, b| a.0.cmp(b.0));
                }
                "required" => n.required = v.as_array().into_iter().flatten().filter_map(Value::as_str).collect(),
                "patternProperties" => {
                    n.pattern_properties = v
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, sub)| (k.as_str(), self.compile(c, sub)))
                        .collect();
                }
                "additionalProperties" => {
                    n.additional = match v {
                        Value::Bool(false) => Additional::Forbidden,
                        Value::Object(_) => Additional::Schema(self.compile(c, v)),
                        _ => Additional::Any,
                    }
                }
                "items" => n.items = Some(self.compile(c, v)),
                _ => {}
            }
        }
        c.nodes[id] = n;
        id
    }

    fn walk(&self, nodes: &[Node<'a>], id: usize, v: &Doc<'_>, at: &At<'_>, out: &mut Vec<Violation>, depth: usize) {
        if depth > 200 || out.len() >= 50 {
            return;
        }
        let n = &nodes[id];
        if n.nothing {
            out.push(Violation { path: at.text(), rule: "no value is allowed here".into() });
            return;
        }
        if n.anything {
            return;
        }
        let fail = |out: &mut Vec<Violation>, rule: String| out.push(Violation { path: at.text(), rule });

        if n.int_or_string {
            if !(v.is_string() || v.is_integer()) {
                fail(out, format!("expected an integer or a string, found {}", kind(v)));
            }
            return;
        }
        if let Some(t) = n.ty {
            let ok = match t {
                Value::String(t) => type_ok(t, v),
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)),
                _ => true,
            };
            if !ok {
                fail(out, format!("expected {}, found {}", type_text(t), kind(v)));
                return;
            }
        }
        if let Some(e) = n.enumeration
            && !e.iter().any(|x| v.eq_json(x))
        {
            let allowed: Vec<String> = e.iter().take(12).map(|x| x.to_string()).collect();
            fail(out, format!("{} is not one of {}", v.to_json(), allowed.join(", ")));
        }
        if let Some(c) = n.constant
            && !v.eq_json(c)
        {
            fail(out, format!("expected {c}, found {}", v.to_json()));
        }
        if let (Some(p), Some(text)) = (n.pattern, v.as_str())
            && !self.patterns.matches(p, text)
        {
            fail(out, format!("`{text}` does not match the pattern `{p}`"));
        }
        if let Some(x) = v.as_f64() {
            if let Some(min) = n.minimum
                && x < min
            {
                fail(out, format!("{x} is below the minimum {min}"));
            }
            if let Some(max) = n.maximum
                && x > max
            {
                fail(out, format!("{x} is above the maximum {max}"));
            }
        }
        for &sub in &n.all_of {
            self.walk(nodes, sub, v, at, out, depth + 1);
        }
        for (key, alts) in [("oneOf", &n.one_of), ("anyOf", &n.any_of)] {
            let Some(alts) = alts else { continue };
            let passing = alts
                .iter()
                .filter(|&&sub| {
                    let mut o = Vec::new();
                    self.walk(nodes, sub, v, at, &mut o, depth + 1);
                    o.is_empty()
                })
                .count();
            let ok = if key == "oneOf" { passing == 1 } else { passing >= 1 };
            if !ok {
                // Report the errors of the closest alternative.
                let best = alts
                    .iter()
                    .map(|&sub| {
                        let mut o = Vec::new();
                        self.walk(nodes, sub, v, at, &mut o, depth + 1);
                        o
                    })
                    .min_by_key(Vec::len)
                    .unwrap_or_default();
                if best.is_empty() {
                    fail(out, format!("matches {passing} of the `{key}` alternatives, expected exactly one"));
                } else {
                    out.extend(best);
                }
            }
        }
        match v {
            Doc::Object(map) => {
                for r in &n.required {
                    if !map.iter().any(|(k, _)| k == r) {
                        fail(out, format!("missing required field `{r}`"));
                    }
                }
                for (k, child) in map {
                    let child_at = At::Key(at, k);
                    if let Ok(i) = n.properties.binary_search_by(|(name, _)| (*name).cmp(k.as_ref())) {
                        self.walk(nodes, n.properties[i].1, child, &child_at, out, depth + 1);
                        continue;
                    }
                    let mut matched = false;
                    for &(pat, sub) in &n.pattern_properties {
                        if self.patterns.matches(pat, k) {
                            matched = true;
                            self.walk(nodes, sub, child, &child_at, out, depth + 1);
                        }
                    }
                    if matched {
                        continue;
                    }
                    match n.additional {
                        Additional::Forbidden if !n.preserve_unknown => {
                            let known: Vec<&str> =
                                n.known.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                            let mut rule = format!("unknown field `{k}`");
                            if let Some(s) = crate::diagnostic::did_you_mean(k, known.iter().copied()) {
                                rule.push_str(&format!(" (did you mean `{s}`?)"));
                            }
                            out.push(Violation { path: child_at.text(), rule });
                        }
                        Additional::Schema(sub) => self.walk(nodes, sub, child, &child_at, out, depth + 1),
                        _ => {}
                    }
                }
            }
            Doc::Array(items) => {
                if let Some(sub) = n.items {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(nodes, sub, item, &At::Index(at, i), out, depth + 1);
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

fn type_text(t: &Value) -> String {
    match t {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        _ => t.to_string(),
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
        let s = Schema::new(&schema);
        assert!(s.check(&Doc::from_json(json!({ "name": "a", "port": "http", "list": [1] }))).is_empty());
        let v = s.check(&Doc::from_json(json!({ "nme": "a", "port": true, "list": ["x"] })));
        let text: Vec<String> = v.iter().map(|v| format!("{} {}", v.path, v.rule)).collect();
        assert!(text.contains(&" missing required field `name`".to_string()), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".nme unknown field `nme` (did you mean `name`?)")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".port expected an integer or a string")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".list[0] expected integer")), "{text:?}");
    }
}
