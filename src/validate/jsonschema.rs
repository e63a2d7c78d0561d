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

/// A schema document ready to check values against.
pub struct Schema<'a> {
    doc: &'a Value,
    patterns: &'a Patterns,
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

/// The keywords of one schema node, read in one pass over its entries.
#[derive(Default)]
struct Keywords<'a> {
    int_or_string: bool,
    preserve_unknown: bool,
    ty: Option<&'a Value>,
    enumeration: Option<&'a Vec<Value>>,
    constant: Option<&'a Value>,
    pattern: Option<&'a str>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    all_of: Option<&'a Vec<Value>>,
    one_of: Option<&'a Vec<Value>>,
    any_of: Option<&'a Vec<Value>>,
    properties: Option<&'a Map<String, Value>>,
    required: Option<&'a Vec<Value>>,
    pattern_properties: Option<&'a Map<String, Value>>,
    additional: Option<&'a Value>,
    items: Option<&'a Value>,
}

impl<'a> Keywords<'a> {
    fn of(obj: &'a Map<String, Value>) -> Keywords<'a> {
        let mut k = Keywords::default();
        for (key, v) in obj {
            match key.as_str() {
                "x-kubernetes-int-or-string" => k.int_or_string = v.as_bool() == Some(true),
                "x-kubernetes-preserve-unknown-fields" => k.preserve_unknown = v.as_bool() == Some(true),
                "type" => k.ty = Some(v),
                "enum" => k.enumeration = v.as_array(),
                "const" => k.constant = Some(v),
                "pattern" => k.pattern = v.as_str(),
                "minimum" => k.minimum = v.as_f64(),
                "maximum" => k.maximum = v.as_f64(),
                "allOf" => k.all_of = v.as_array(),
                "oneOf" => k.one_of = v.as_array(),
                "anyOf" => k.any_of = v.as_array(),
                "properties" => k.properties = v.as_object(),
                "required" => k.required = v.as_array(),
                "patternProperties" => k.pattern_properties = v.as_object(),
                "additionalProperties" => k.additional = Some(v),
                "items" => k.items = Some(v),
                _ => {}
            }
        }
        k
    }
}

impl<'a> Schema<'a> {
    /// A checker for `doc`, compiling its regexes into `patterns` (a cache
    /// shared by every check of that document).
    pub fn new(doc: &'a Value, patterns: &'a Patterns) -> Self {
        Schema { doc, patterns }
    }

    /// Checks `value` against the document's root; returns every violation
    /// found (up to a limit).
    pub fn check(&self, value: &Value) -> Vec<Violation> {
        self.check_at(self.doc, value)
    }

    /// Checks `value` against `node`, a schema inside the document.
    pub fn check_at(&self, node: &'a Value, value: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        self.walk(node, value, &At::Root(""), &mut out, 0);
        out.truncate(50);
        out
    }

    /// Follows `$ref`s into the same document (`#/a/b`).
    fn resolve(&self, mut s: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(r) = s.get("$ref").and_then(Value::as_str) else { return s };
            let Some(ptr) = r.strip_prefix('#') else { return s };
            let target = if ptr.contains('~') {
                self.doc.pointer(ptr)
            } else {
                // The common case, without the allocations of `pointer`.
                ptr.split('/').skip(1).try_fold(self.doc, |node, token| match node {
                    Value::Object(o) => o.get(token),
                    Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                })
            };
            match target {
                Some(t) => s = t,
                None => return s,
            }
        }
        s
    }

    fn walk(&self, schema: &'a Value, v: &Value, at: &At<'_>, out: &mut Vec<Violation>, depth: usize) {
        if depth > 200 || out.len() >= 50 {
            return;
        }
        let s = self.resolve(schema);
        let Some(obj) = s.as_object() else {
            if s == &Value::Bool(false) {
                out.push(Violation { path: at.text(), rule: "no value is allowed here".into() });
            }
            return;
        };
        let kw = Keywords::of(obj);
        let fail = |out: &mut Vec<Violation>, rule: String| out.push(Violation { path: at.text(), rule });

        if kw.int_or_string {
            if !(v.is_string() || v.is_i64() || v.is_u64()) {
                fail(out, format!("expected an integer or a string, found {}", kind(v)));
            }
            return;
        }
        if let Some(t) = kw.ty {
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
        if let Some(e) = kw.enumeration
            && !e.contains(v)
        {
            let allowed: Vec<String> = e.iter().take(12).map(|x| x.to_string()).collect();
            fail(out, format!("{} is not one of {}", v, allowed.join(", ")));
        }
        if let Some(c) = kw.constant
            && c != v
        {
            fail(out, format!("expected {c}, found {v}"));
        }
        if let (Some(p), Some(text)) = (kw.pattern, v.as_str())
            && !self.patterns.matches(p, text)
        {
            fail(out, format!("`{text}` does not match the pattern `{p}`"));
        }
        if let Some(n) = v.as_f64() {
            if let Some(min) = kw.minimum
                && n < min
            {
                fail(out, format!("{n} is below the minimum {min}"));
            }
            if let Some(max) = kw.maximum
                && n > max
            {
                fail(out, format!("{n} is above the maximum {max}"));
            }
        }
        for sub in kw.all_of.into_iter().flatten() {
            self.walk(sub, v, at, out, depth + 1);
        }
        for (key, alts) in [("oneOf", kw.one_of), ("anyOf", kw.any_of)] {
            let Some(alts) = alts else { continue };
            let passing = alts
                .iter()
                .filter(|sub| {
                    let mut o = Vec::new();
                    self.walk(sub, v, at, &mut o, depth + 1);
                    o.is_empty()
                })
                .count();
            let ok = if key == "oneOf" { passing == 1 } else { passing >= 1 };
            if !ok {
                // Report the errors of the closest alternative.
                let best = alts
                    .iter()
                    .map(|sub| {
                        let mut o = Vec::new();
                        self.walk(sub, v, at, &mut o, depth + 1);
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
            Value::Object(map) => {
                if let Some(req) = kw.required {
                    for r in req.iter().filter_map(Value::as_str) {
                        if !map.contains_key(r) {
                            fail(out, format!("missing required field `{r}`"));
                        }
                    }
                }
                for (k, child) in map {
                    let child_at = At::Key(at, k);
                    if let Some(ps) = kw.properties.and_then(|p| p.get(k)) {
                        self.walk(ps, child, &child_at, out, depth + 1);
                        continue;
                    }
                    let mut matched = false;
                    for (pat, ps) in kw.pattern_properties.into_iter().flatten() {
                        if self.patterns.matches(pat, k) {
                            matched = true;
                            self.walk(ps, child, &child_at, out, depth + 1);
                        }
                    }
                    if matched {
                        continue;
                    }
                    match kw.additional {
                        Some(Value::Bool(false)) if !kw.preserve_unknown => {
                            let known: Vec<&str> =
                                kw.properties.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                            let mut rule = format!("unknown field `{k}`");
                            if let Some(s) = crate::diagnostic::did_you_mean(k, known.iter().copied()) {
                                rule.push_str(&format!(" (did you mean `{s}`?)"));
                            }
                            out.push(Violation { path: child_at.text(), rule });
                        }
                        Some(add @ Value::Object(_)) => self.walk(add, child, &child_at, out, depth + 1),
                        _ => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(is) = kw.items {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(is, item, &At::Index(at, i), out, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
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

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
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
        let patterns = Patterns::default();
        let s = Schema::new(&schema, &patterns);
        assert!(s.check(&json!({ "name": "a", "port": "http", "list": [1] })).is_empty());
        let v = s.check(&json!({ "nme": "a", "port": true, "list": ["x"] }));
        let text: Vec<String> = v.iter().map(|v| format!("{} {}", v.path, v.rule)).collect();
        assert!(text.contains(&" missing required field `name`".to_string()), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".nme unknown field `nme` (did you mean `name`?)")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".port expected an integer or a string")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".list[0] expected integer")), "{text:?}");
    }
}
