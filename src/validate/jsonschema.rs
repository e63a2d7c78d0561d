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

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

/// One violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path such as `.spec.template.spec.containers[0].imagePullPolicyy`.
    pub path: String,
    pub rule: String,
}

/// A compiled-enough schema: the document and its root.
pub struct Schema<'a> {
    doc: &'a Value,
    regexes: RefCell<HashMap<String, Option<regex_lite::Regex>>>,
}

impl<'a> Schema<'a> {
    pub fn new(doc: &'a Value) -> Self {
        Schema { doc, regexes: RefCell::new(HashMap::new()) }
    }

    /// Whether `text` matches `pattern`; a pattern the engine cannot
    /// compile matches everything (the checker errs towards accepting).
    fn matches(&self, pattern: &str, text: &str) -> bool {
        let mut cache = self.regexes.borrow_mut();
        let re = cache.entry(pattern.to_string()).or_insert_with(|| regex_lite::Regex::new(pattern).ok());
        re.as_ref().is_none_or(|r| r.is_match(text))
    }

    /// Checks `value` against the document's root; returns every violation
    /// found (up to a limit).
    pub fn check(&self, value: &Value) -> Vec<Violation> {
        self.check_at(self.doc, value)
    }

    /// Checks `value` against `node`, a schema inside the document.
    pub fn check_at(&self, node: &'a Value, value: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        self.walk(node, value, "", &mut out, 0);
        out.truncate(50);
        out
    }

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

    fn walk(&self, schema: &'a Value, v: &Value, path: &str, out: &mut Vec<Violation>, depth: usize) {
        if depth > 200 || out.len() >= 50 {
            return;
        }
        let s = self.resolve(schema);
        let Some(obj) = s.as_object() else {
            if s == &Value::Bool(false) {
                out.push(Violation { path: path.into(), rule: "no value is allowed here".into() });
            }
            return;
        };
        let fail = |out: &mut Vec<Violation>, rule: String| out.push(Violation { path: path.to_string(), rule });

        if obj.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            if !(v.is_string() || v.is_i64() || v.is_u64()) {
                fail(out, format!("expected an integer or a string, found {}", kind(v)));
            }
            return;
        }
        if let Some(t) = obj.get("type") {
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
        if let Some(e) = obj.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            let allowed: Vec<String> = e.iter().take(12).map(|x| x.to_string()).collect();
            fail(out, format!("{} is not one of {}", v, allowed.join(", ")));
        }
        if let Some(c) = obj.get("const")
            && c != v
        {
            fail(out, format!("expected {c}, found {v}"));
        }
        if let (Some(p), Some(text)) = (obj.get("pattern").and_then(Value::as_str), v.as_str())
            && !self.matches(p, text)
        {
            fail(out, format!("`{text}` does not match the pattern `{p}`"));
        }
        if let Some(n) = v.as_f64() {
            if let Some(min) = obj.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                fail(out, format!("{n} is below the minimum {min}"));
            }
            if let Some(max) = obj.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                fail(out, format!("{n} is above the maximum {max}"));
            }
        }
        for key in ["allOf"] {
            if let Some(all) = obj.get(key).and_then(Value::as_array) {
                for sub in all {
                    self.walk(sub, v, path, out, depth + 1);
                }
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(alts) = obj.get(key).and_then(Value::as_array) {
                let passing = alts
                    .iter()
                    .filter(|sub| {
                        let mut o = Vec::new();
                        self.walk(sub, v, path, &mut o, depth + 1);
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
                            self.walk(sub, v, path, &mut o, depth + 1);
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
        }
        match v {
            Value::Object(map) => {
                let props = obj.get("properties").and_then(Value::as_object);
                let preserve = obj.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
                if let Some(req) = obj.get("required").and_then(Value::as_array) {
                    for r in req.iter().filter_map(Value::as_str) {
                        if !map.contains_key(r) {
                            fail(out, format!("missing required field `{r}`"));
                        }
                    }
                }
                let patterns = obj.get("patternProperties").and_then(Value::as_object);
                for (k, child) in map {
                    let child_path = format!("{path}.{k}");
                    if let Some(ps) = props.and_then(|p| p.get(k)) {
                        self.walk(ps, child, &child_path, out, depth + 1);
                        continue;
                    }
                    let mut matched = false;
                    for (pat, ps) in patterns.into_iter().flatten() {
                        if self.matches(pat, k) {
                            matched = true;
                            self.walk(ps, child, &child_path, out, depth + 1);
                        }
                    }
                    if matched {
                        continue;
                    }
                    match obj.get("additionalProperties") {
                        Some(Value::Bool(false)) if !preserve => {
                            let known: Vec<&str> =
                                props.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                            let mut rule = format!("unknown field `{k}`");
                            if let Some(s) = crate::diagnostic::did_you_mean(k, known.iter().copied()) {
                                rule.push_str(&format!(" (did you mean `{s}`?)"));
                            }
                            out.push(Violation { path: child_path, rule });
                        }
                        Some(add @ Value::Object(_)) => self.walk(add, child, &child_path, out, depth + 1),
                        _ => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(is) = obj.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(is, item, &format!("{path}[{i}]"), out, depth + 1);
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
        let s = Schema::new(&schema);
        assert!(s.check(&json!({ "name": "a", "port": "http", "list": [1] })).is_empty());
        let v = s.check(&json!({ "nme": "a", "port": true, "list": ["x"] }));
        let text: Vec<String> = v.iter().map(|v| format!("{} {}", v.path, v.rule)).collect();
        assert!(text.contains(&" missing required field `name`".to_string()), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".nme unknown field `nme` (did you mean `name`?)")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".port expected an integer or a string")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with(".list[0] expected integer")), "{text:?}");
    }
}
