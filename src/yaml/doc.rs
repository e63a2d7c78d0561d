//! A rendered document as the output checks read it: the data of a
//! `serde_json::Value`, but maps are plain vectors of entries in document
//! order (no hashing, no index) and strings borrow from the text wherever
//! no escape changed them. Reading back every rendered document into
//! `serde_json::Value` spent more time hashing keys and allocating strings
//! than parsing; the checks only walk each map once.

use std::borrow::Cow;

use serde_json::{Number, Value};

/// One YAML (JSON-compatible) value.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Doc<'a>>),
    /// Entries in document order; keys are unique.
    Object(Vec<(Cow<'a, str>, Doc<'a>)>),
}

impl<'a> Doc<'a> {
    /// The value of `key` in a map (a linear search: rendered maps are
    /// small, and each is searched for a handful of keys at most).
    pub fn get(&self, key: &str) -> Option<&Doc<'a>> {
        match self {
            Doc::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a JSON pointer made of map keys (`/spec/selector`).
    pub fn pointer(&self, pointer: &str) -> Option<&Doc<'a>> {
        pointer.strip_prefix('/')?.split('/').try_fold(self, |node, key| node.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Doc::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Doc<'a>)]> {
        match self {
            Doc::Object(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Doc::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Doc::String(_))
    }

    /// An integer (whether it fits `i64` or `u64`).
    pub fn is_integer(&self) -> bool {
        matches!(self, Doc::Number(n) if n.is_i64() || n.is_u64())
    }

    /// Equal to a JSON value: the same data, map order aside (as
    /// `serde_json::Value` compares).
    pub fn eq_json(&self, v: &Value) -> bool {
        match (self, v) {
            (Doc::Null, Value::Null) => true,
            (Doc::Bool(a), Value::Bool(b)) => a == b,
            (Doc::Number(a), Value::Number(b)) => a == b,
            (Doc::String(a), Value::String(b)) => a == b,
            (Doc::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_json(y)),
            (Doc::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, x)| b.get(k.as_ref()).is_some_and(|y| x.eq_json(y)))
            }
            _ => false,
        }
    }

    /// The same data as a `serde_json::Value`.
    pub fn to_json(&self) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Number(n) => Value::Number(n.clone()),
            Doc::String(s) => Value::String(s.to_string()),
            Doc::Array(items) => Value::Array(items.iter().map(Doc::to_json).collect()),
            Doc::Object(entries) => Value::Object(entries.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect()),
        }
    }

    /// A JSON value as a document (owning its strings).
    pub fn from_json(v: Value) -> Doc<'static> {
        match v {
            Value::Null => Doc::Null,
            Value::Bool(b) => Doc::Bool(b),
            Value::Number(n) => Doc::Number(n),
            Value::String(s) => Doc::String(Cow::Owned(s)),
            Value::Array(items) => Doc::Array(items.into_iter().map(Doc::from_json).collect()),
            Value::Object(map) => {
                Doc::Object(map.into_iter().map(|(k, v)| (Cow::Owned(k), Doc::from_json(v))).collect())
            }
        }
    }
}

/// Whether two entries share a key: pairwise for a small map, sorted for a
/// large one (so a map of many keys stays `n log n`).
pub fn has_duplicate_keys(entries: &[(Cow<'_, str>, Doc<'_>)]) -> bool {
    if entries.len() <= 16 {
        return entries.iter().enumerate().any(|(i, (k, _))| entries[..i].iter().any(|(other, _)| other == k));
    }
    let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_both_ways_and_compares_like_json() {
        let v = json!({ "b": [1, -2, 2.5, "x", null, true], "a": { "k": "v" }, "e": {} });
        let d = Doc::from_json(v.clone());
        assert_eq!(d.to_json(), v);
        assert_eq!(serde_json::to_string(&d.to_json()).unwrap(), serde_json::to_string(&v).unwrap());
        assert!(d.eq_json(&v));
        assert!(d.eq_json(&json!({ "a": { "k": "v" }, "e": {}, "b": [1, -2, 2.5, "x", null, true] })));
        assert!(!d.eq_json(&json!({ "a": { "k": "w" }, "e": {}, "b": [1, -2, 2.5, "x", null, true] })));
        assert!(!d.eq_json(&json!({ "a": { "k": "v" }, "b": [1, -2, 2.5, "x", null, true] })));
        assert!(!Doc::from_json(json!(1)).eq_json(&json!(1.0)));
        assert_eq!(d.pointer("/a/k").and_then(Doc::as_str), Some("v"));
        assert_eq!(d.pointer("/a/x"), None);
        assert_eq!(d.pointer("a"), None);
        assert!(d.pointer("/b").is_some_and(|b| matches!(b, Doc::Array(items) if items.len() == 6)));
    }

    #[test]
    fn finds_duplicate_keys_in_small_and_large_maps() {
        let map = |keys: &[String]| -> Vec<(Cow<'static, str>, Doc<'static>)> {
            keys.iter().map(|k| (Cow::Owned(k.clone()), Doc::Null)).collect()
        };
        for n in [2, 16, 17, 200] {
            let mut keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            assert!(!has_duplicate_keys(&map(&keys)), "{n}");
            keys.push(format!("k{}", n / 2));
            assert!(has_duplicate_keys(&map(&keys)), "{n}");
        }
        assert!(!has_duplicate_keys(&[]));
    }
}
