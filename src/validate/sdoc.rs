//! The embedded schemas in binary form, read in place: `build.rs` parses
//! each JSON schema once and writes its tree in pre-order (the format is in
//! `encode.rs`), and a run reads values where they lie. Nothing is decoded
//! into a tree: a check reaches only some of a schema (the properties a
//! rendered document has), and decoding all of it into [`Doc`]s was about
//! 4% of the instructions of rendering the built-in stacks and a quarter of
//! their peak heap.
//!
//! The bytes are the build's own output, so a run does not walk them all
//! to check them first (that walk cost two thirds of the decoding it
//! replaced); the tests check every embedded schema completely
//! ([`Encoded::verify`]). Reading never panics and always ends whatever
//! the bytes hold: every read is bounds-checked, a list or map is read
//! only up to its stated length and the end of the bytes, and each step
//! moves forward.
//!
//! Before that, parsing the JSON text on every run took about 6% of the CPU
//! time; most of it went to finding string ends and growing vectors whose
//! length JSON does not give.

use std::borrow::Cow;

use serde_json::Number;

use crate::yaml::doc::Doc;

/// Deepest nesting accepted (the embedded schemas are far shallower).
const MAX_DEPTH: usize = 128;

/// An encoded schema (its header and string table checked).
pub struct Encoded {
    bytes: &'static [u8],
    table: &'static str,
    /// Where the value starts.
    root: usize,
}

/// A value inside an [`Encoded`] schema (a byte offset).
#[derive(Clone, Copy)]
pub struct V {
    e: &'static Encoded,
    at: usize,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

fn eight_at(bytes: &[u8], at: usize) -> Option<[u8; 8]> {
    bytes.get(at..at.checked_add(8)?)?.try_into().ok()
}

impl Encoded {
    /// Opens an encoded schema: its string table must be UTF-8 and a value
    /// must follow. The result lives as long as the process (schemas are
    /// never freed: see `validate::open_schema`).
    pub fn open(bytes: &'static [u8]) -> Result<&'static Encoded, String> {
        let n = u32_at(bytes, 0).ok_or("truncated")?;
        let table = bytes.get(4..4usize.checked_add(n).ok_or("truncated")?).ok_or("truncated")?;
        let table = std::str::from_utf8(table).map_err(|e| format!("string table: {e}"))?;
        let root = 4 + n;
        if root >= bytes.len() {
            return Err("no value after the string table".into());
        }
        Ok(Box::leak(Box::new(Encoded { bytes, table, root })))
    }

    /// Checks every byte: tags known, lengths and strings inside the bytes,
    /// each list and map exactly as long as it says, nothing after the value.
    #[cfg(test)]
    pub fn verify(&self) -> Result<(), String> {
        let end = check(self.bytes, self.table, self.root, 0)?;
        if end != self.bytes.len() {
            return Err(format!("{} bytes after the value", self.bytes.len() - end));
        }
        Ok(())
    }

    /// Encodes and opens a schema given as JSON (tests and schemas built at
    /// run time); the bytes are never freed either.
    #[cfg(test)]
    pub fn from_json(schema: &serde_json::Value) -> &'static Encoded {
        let bytes: &'static [u8] = Box::leak(super::encode::encode(schema).into_boxed_slice());
        Encoded::open(bytes).expect("a schema the encoder wrote")
    }

    pub fn root(&'static self) -> V {
        V { e: self, at: self.root }
    }
}

/// The string at `at` (offset and length in the table), if it is one.
fn text_at(bytes: &[u8], table: &'static str, at: usize) -> Option<&'static str> {
    let (offset, n) = (u32_at(bytes, at)?, u32_at(bytes, at + 4)?);
    table.get(offset..offset.checked_add(n)?)
}

/// Checks the value at `at`; returns where it ends.
#[cfg(test)]
fn check(bytes: &[u8], table: &'static str, at: usize, depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    let tag = *bytes.get(at).ok_or("truncated")?;
    let body = at + 1;
    let fits = |end: usize| if end <= bytes.len() { Ok(end) } else { Err("truncated".to_string()) };
    match tag {
        0..=2 => Ok(body),
        3..=5 => fits(body + 8),
        6 => {
            text_at(bytes, table, body).ok_or("a string outside the table")?;
            Ok(body + 8)
        }
        7 | 8 => {
            let n = u32_at(bytes, body).ok_or("truncated")?;
            let len = u32_at(bytes, body + 4).ok_or("truncated")?;
            let start = body + 8;
            let end = fits(start.checked_add(len).ok_or("truncated")?)?;
            let mut p = start;
            for _ in 0..n {
                if tag == 8 {
                    text_at(bytes, table, p).ok_or("a key outside the table")?;
                    p += 8;
                }
                p = check(bytes, table, p, depth + 1)?;
                if p > end {
                    return Err(format!("the items of the list or map at byte {at} run past its length"));
                }
            }
            if p != end {
                return Err(format!("the list or map at byte {at} is not as long as it says"));
            }
            Ok(end)
        }
        t => Err(format!("unknown tag {t} at byte {at}")),
    }
}

impl V {
    fn tag(self) -> u8 {
        self.e.bytes.get(self.at).copied().unwrap_or(0)
    }

    fn u32(self, at: usize) -> usize {
        u32_at(self.e.bytes, at).unwrap_or(0)
    }

    /// The byte offset of the value: the same value, the same offset.
    pub fn offset(self) -> usize {
        self.at
    }

    /// Where the value ends, as its tag and length say (past the end of
    /// the bytes only if they are damaged; readers stop there).
    fn end(self) -> usize {
        match self.tag() {
            3..=6 => self.at + 9,
            7 | 8 => (self.at + 9).saturating_add(self.u32(self.at + 5)),
            _ => self.at + 1,
        }
    }

    /// The values of a list (tag 7) or the entries of a map
    /// (tag 8): at most as many as it says, none past its length or the
    /// bytes' end; none when the value has another tag.
    fn children(self, tag: u8) -> impl Iterator<Item = (&'static str, V)> {
        let e = self.e;
        let keyed = tag == 8;
        let mut left = if self.tag() == tag { self.u32(self.at + 1) } else { 0 };
        let end = self.end().min(e.bytes.len());
        let mut p = self.at + 9;
        std::iter::from_fn(move || {
            if left == 0 || p >= end {
                return None;
            }
            left -= 1;
            let key = if keyed { text_at(e.bytes, e.table, p).unwrap_or_default() } else { "" };
            let v = V { e, at: if keyed { p + 8 } else { p } };
            // `end` is past `v.at`, so every step moves forward.
            p = v.end();
            Some((key, v))
        })
    }

    pub fn as_bool(self) -> Option<bool> {
        match self.tag() {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        }
    }

    pub fn as_str(self) -> Option<&'static str> {
        if self.tag() != 6 {
            return None;
        }
        text_at(self.e.bytes, self.e.table, self.at + 1)
    }

    fn number(self) -> Option<Number> {
        let b = eight_at(self.e.bytes, self.at + 1)?;
        match self.tag() {
            3 => Some(u64::from_le_bytes(b).into()),
            4 => Some(i64::from_le_bytes(b).into()),
            5 => Number::from_f64(f64::from_le_bytes(b)),
            _ => None,
        }
    }

    pub fn as_f64(self) -> Option<f64> {
        self.number().and_then(|n| n.as_f64())
    }

    pub fn is_object(self) -> bool {
        self.tag() == 8
    }

    pub fn is_array(self) -> bool {
        self.tag() == 7
    }

    /// A list's items (none for anything else).
    pub fn items(self) -> impl Iterator<Item = V> {
        self.children(7).map(|(_, v)| v)
    }

    /// A map's keys and values, in document order (none for anything else).
    pub fn entries(self) -> impl Iterator<Item = (&'static str, V)> {
        self.children(8)
    }

    /// The value of `key` in a map.
    pub fn get(self, key: &str) -> Option<V> {
        self.entries().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value at a JSON pointer (RFC 6901), as [`Doc::pointer`] finds it.
    pub fn pointer(self, pointer: &str) -> Option<V> {
        crate::yaml::doc::pointer_tokens(pointer)?.try_fold(self, |node, key| match node.tag() {
            8 => node.get(&key),
            7 => crate::yaml::doc::pointer_index(&key).and_then(|i| node.items().nth(i)),
            _ => None,
        })
    }

    /// The value as a [`Doc`] (strings borrowed from the binary).
    pub fn to_doc(self) -> Doc<'static> {
        self.to_doc_at(0)
    }

    fn to_doc_at(self, depth: usize) -> Doc<'static> {
        match self.tag() {
            _ if depth > MAX_DEPTH => Doc::Null,
            1 => Doc::Bool(false),
            2 => Doc::Bool(true),
            3..=5 => self.number().map_or(Doc::Null, Doc::Number),
            6 => Doc::String(Cow::Borrowed(self.as_str().unwrap_or_default())),
            7 => Doc::Array(self.items().map(|v| v.to_doc_at(depth + 1)).collect()),
            8 => Doc::Object(self.entries().map(|(k, v)| (Cow::Borrowed(k), v.to_doc_at(depth + 1))).collect()),
            _ => Doc::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON text of an embedded schema, as the binary carries it (a
    /// CRD's closed the way `build.rs` closes it).
    fn embedded_json(path: &str, text: &str) -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        if super::super::encode::is_crd(path) {
            super::super::encode::close_crd(&mut v);
        }
        v
    }

    #[test]
    fn every_embedded_schema_reads_as_what_its_json_parses_to() {
        assert_eq!(crate::embedded::SCHEMA_DOCS.len(), crate::embedded::SCHEMAS.len());
        for ((path, bytes), (json_path, text)) in crate::embedded::SCHEMA_DOCS.iter().zip(crate::embedded::SCHEMAS) {
            assert_eq!(path, json_path);
            let encoded = Encoded::open(bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
            encoded.verify().unwrap_or_else(|e| panic!("{path}: {e}"));
            let parsed = Doc::from_json(embedded_json(path, text));
            assert!(encoded.root().to_doc() == parsed, "{path}: the encoded schema differs from its JSON");
        }
    }

    #[test]
    fn reads_values_and_pointers_in_place() {
        let v = serde_json::json!({
            "a": { "b/c": [1, -2, 2.5, "x", null, true, false], "~k": "t" },
            "e": {}, "l": [], "s": "str"
        });
        let root = Encoded::from_json(&v).root();
        let d = Doc::from_json(v);
        for p in ["", "/a", "/a/b~1c", "/a/b~1c/0", "/a/b~1c/2", "/a/b~1c/3", "/a/b~1c/6", "/a/~0k", "/e", "/l", "/s"] {
            assert!(root.pointer(p).map(V::to_doc).as_ref() == d.pointer(p), "{p}");
        }
        for bad in ["/b", "/a/b~1c/+3", "/a/b~1c/03", "/a/b~1c/-1", "/a/b~1c/", "/a/b~1c/7", "/s/0", "a"] {
            assert!(root.pointer(bad).is_none(), "{bad}");
        }
        assert_eq!(root.pointer("/a/b~1c/1").and_then(V::as_f64), Some(-2.0));
        assert_eq!(root.pointer("/a/b~1c/5").and_then(V::as_bool), Some(true));
        assert_eq!(root.get("s").and_then(V::as_str), Some("str"));
        assert_eq!(root.entries().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "e", "l", "s"]);
        assert_eq!(root.get("a").map(|a| a.items().count()), Some(0));
        assert_ne!(root.get("e").map(V::offset), root.get("l").map(V::offset));
    }

    #[test]
    fn damage_is_found_by_verify_and_never_makes_reading_panic_or_hang() {
        let leak = |b: &[u8]| -> &'static [u8] { Box::leak(b.to_vec().into_boxed_slice()) };
        let damaged = |b: &'static [u8]| match Encoded::open(b) {
            Err(_) => true,
            Ok(e) => {
                // Reading all of it ends, without a panic.
                let _ = e.root().to_doc();
                let _ = e.root().pointer("/a/0/b");
                e.verify().is_err()
            }
        };
        let (_, bytes) = crate::embedded::SCHEMA_DOCS[0];
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(damaged(&bytes[..cut]), "cut at {cut}");
        }
        // Bytes changed one at a time across one schema: it reads without a
        // panic and always ends.
        let mut copy = bytes.to_vec();
        for i in (0..copy.len()).step_by(copy.len() / 300 + 1) {
            let old = copy[i];
            copy[i] = old ^ 0xa5;
            let b = leak(&copy);
            if let Ok(e) = Encoded::open(b) {
                let _ = e.root().to_doc();
            }
            copy[i] = old;
        }
        // An unknown tag; a list longer than the bytes left; a string
        // outside the table; a table that is not UTF-8; a list whose items
        // run past its length, and one whose length runs past its items; a
        // list of four billion items in a few bytes.
        assert!(damaged(leak(&[0, 0, 0, 0, 9])));
        assert!(damaged(leak(&[0, 0, 0, 0, 7, 255, 255, 255, 255, 0, 0, 0, 0])));
        assert!(damaged(leak(&[1, 0, 0, 0, b'a', 6, 0, 0, 0, 0, 2, 0, 0, 0])));
        assert!(damaged(leak(&[1, 0, 0, 0, 0xff, 0])));
        assert!(damaged(leak(&[0, 0, 0, 0, 7, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0])));
        assert!(damaged(leak(&[0, 0, 0, 0, 7, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0])));
        assert!(damaged(leak(&[0, 0, 0, 0, 7, 255, 255, 255, 255, 255, 255, 255, 255, 0])));
        let ok = Encoded::open(leak(&[1, 0, 0, 0, b'a', 6, 0, 0, 0, 0, 1, 0, 0, 0])).expect("a string");
        assert_eq!((ok.verify(), ok.root().as_str()), (Ok(()), Some("a")));
        let list = Encoded::open(leak(&[0, 0, 0, 0, 7, 2, 0, 0, 0, 2, 0, 0, 0, 0, 2])).expect("a list");
        assert_eq!(list.verify(), Ok(()));
        assert!(list.root().to_doc() == Doc::Array(vec![Doc::Null, Doc::Bool(true)]));
    }
}
