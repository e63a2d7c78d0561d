//! A rendered document as the output checks read it: the data of a
//! `serde_json::Value`, but maps are plain vectors of entries in document
//! order (no hashing, no index) and strings borrow from the text wherever
//! no escape changed them. Reading back every rendered document into
//! `serde_json::Value` spent more time hashing keys and allocating strings
//! than parsing; the checks only walk each map once.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
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

    /// The value at a JSON pointer (`/spec/selector`, `/items/0`; `~1` and
    /// `~0` stand for `/` and `~`). The empty pointer is the value itself.
    pub fn pointer(&self, pointer: &str) -> Option<&Doc<'a>> {
        pointer_tokens(pointer)?.try_fold(self, |node, key| match node {
            Doc::Object(_) => node.get(&key),
            Doc::Array(items) => pointer_index(&key).and_then(|i| items.get(i)),
            _ => None,
        })
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

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Doc::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Doc<'a>]> {
        match self {
            Doc::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The same data, map order aside (as `serde_json::Value` compares).
    pub fn same(&self, other: &Doc<'_>) -> bool {
        match (self, other) {
            (Doc::Null, Doc::Null) => true,
            (Doc::Bool(a), Doc::Bool(b)) => a == b,
            (Doc::Number(a), Doc::Number(b)) => a == b,
            (Doc::String(a), Doc::String(b)) => a == b,
            (Doc::Array(a), Doc::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y)),
            (Doc::Object(a), Doc::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, x)| other.get(k).is_some_and(|y| x.same(y)))
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

/// Reads JSON (or any self-describing format) into a document, borrowing
/// strings from the input where it can: the embedded schemas parse without
/// copying their strings or hashing their keys.
impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }
    fn visit_none<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Doc<'de>, D::Error> {
        Doc::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Doc<'de>, E> {
        Ok(Doc::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Doc<'de>, E> {
        Ok(Number::from_f64(n).map_or(Doc::Null, Doc::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(Key(k)) = map.next_key()? {
            entries.push((k, map.next_value()?));
        }
        if has_duplicate_keys(&entries) {
            entries = last_value_wins(entries);
        }
        Ok(Doc::Object(entries))
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Entries with each key once, as `serde_json::Value` reads a JSON object
/// that repeats one: the first position, the last value.
fn last_value_wins<'a>(entries: Vec<(Cow<'a, str>, Doc<'a>)>) -> Vec<(Cow<'a, str>, Doc<'a>)> {
    let mut out: Vec<(Cow<'a, str>, Doc<'a>)> = Vec::with_capacity(entries.len());
    let mut at: std::collections::HashMap<Cow<'a, str>, usize> = std::collections::HashMap::new();
    for (k, v) in entries {
        match at.get(&k) {
            Some(&i) => out[i].1 = v,
            None => {
                at.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

/// The reference tokens of a JSON pointer (RFC 6901), unescaped: none for
/// `""` (the whole document), `None` for text that is not a pointer.
pub fn pointer_tokens(pointer: &str) -> Option<impl Iterator<Item = Cow<'_, str>>> {
    let rest = if pointer.is_empty() { None } else { Some(pointer.strip_prefix('/')?) };
    Some(rest.into_iter().flat_map(|r| r.split('/')).map(|token| {
        if token.contains('~') { Cow::Owned(token.replace("~1", "/").replace("~0", "~")) } else { Cow::Borrowed(token) }
    }))
}

/// A pointer token as a list index: decimal digits without a leading zero,
/// as RFC 6901 says.
pub fn pointer_index(token: &str) -> Option<usize> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) || (token != "0" && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
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
        let same = |v: Value| d.same(&Doc::from_json(v));
        assert!(same(v.clone()));
        assert!(same(json!({ "a": { "k": "v" }, "e": {}, "b": [1, -2, 2.5, "x", null, true] })));
        assert!(!same(json!({ "a": { "k": "w" }, "e": {}, "b": [1, -2, 2.5, "x", null, true] })));
        assert!(!same(json!({ "a": { "k": "v" }, "b": [1, -2, 2.5, "x", null, true] })));
        assert!(!Doc::from_json(json!(1)).same(&Doc::from_json(json!(1.0))));
        assert_eq!(d.pointer(""), Some(&d));
        assert_eq!(d.pointer("/b/3").and_then(Doc::as_str), Some("x"));
        for bad in ["/b/+3", "/b/03", "/b/-1", "/b/", "/b/6"] {
            assert_eq!(d.pointer(bad), None, "{bad}");
        }
        assert_eq!(d.pointer("/b/0"), Some(&Doc::Number(1.into())));
        let slash = Doc::from_json(json!({ "a/b": { "c~d": 1 } }));
        assert_eq!(slash.pointer("/a~1b/c~0d"), Some(&Doc::Number(1.into())));
        assert_eq!(d.pointer("/a/k").and_then(Doc::as_str), Some("v"));
        assert_eq!(d.pointer("/a/x"), None);
        assert_eq!(d.pointer("a"), None);
        assert!(d.pointer("/b").is_some_and(|b| matches!(b, Doc::Array(items) if items.len() == 6)));
    }

    #[test]
    fn reads_json_borrowing_its_strings() {
        let text = r#"{"k": "plain", "e": "esc\"aped", "n": [1, -1, 1.5, true, null], "o": {"x\u0041": {}}}"#;
        let d: Doc<'_> = serde_json::from_str(text).unwrap();
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&d.to_json()).unwrap(), serde_json::to_string(&v).unwrap());
        assert!(matches!(d.get("k"), Some(Doc::String(Cow::Borrowed("plain")))));
        assert!(matches!(d.get("e"), Some(Doc::String(Cow::Owned(_)))));
        assert!(d.pointer("/o/xA").is_some());
    }

    #[test]
    fn a_repeated_json_key_keeps_its_last_value_like_serde_json() {
        let text = r#"{"a": 1, "b": 2, "a": {"x": 3}}"#;
        let d: Doc<'_> = serde_json::from_str(text).unwrap();
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&d.to_json()).unwrap(), serde_json::to_string(&v).unwrap());
        assert!(d.same(&Doc::from_json(v)));
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
