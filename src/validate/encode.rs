//! Encodes a JSON schema in the binary form [`super::sdoc`] reads in place.
//! Shared by `build.rs` (every embedded schema, once per build) and the
//! tests (schemas written inline), so both go through the same encoder.
//!
//! Format (little-endian): a u32 length and that many bytes of UTF-8, the
//! string table (every distinct string once, concatenated), then the value,
//! one tag byte per value:
//! - `0` null, `1` false, `2` true;
//! - `3` u64, `4` i64, `5` f64: 8 bytes;
//! - `6` string: u32 offset and u32 length in the table;
//! - `7` array: u32 count, u32 length in bytes of the items, the items;
//! - `8` object: u32 count, u32 length in bytes of the entries, then each
//!   key (offset and length, no tag) and its value, in document order.
//!
//! The byte lengths let a reader step over a whole array or object at once,
//! so looking a key up never reads the values before it.

use std::collections::HashMap;

/// Everything after the string table: what a reader walks.
struct Encoder {
    /// Every distinct string, concatenated.
    table: String,
    at: HashMap<String, u32>,
    tree: Vec<u8>,
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).expect("schema too large")
}

impl Encoder {
    fn u32(&mut self, n: usize) {
        self.tree.extend_from_slice(&u32_of(n).to_le_bytes());
    }

    fn text(&mut self, s: &str) {
        let offset = match self.at.get(s) {
            Some(&o) => o,
            None => {
                let o = u32_of(self.table.len());
                self.table.push_str(s);
                self.at.insert(s.to_string(), o);
                o
            }
        };
        self.u32(offset as usize);
        self.u32(s.len());
    }

    /// Writes a container's count, then its body, then goes back to fill
    /// in the body's length.
    fn container(&mut self, tag: u8, count: usize, body: impl FnOnce(&mut Self)) {
        self.tree.push(tag);
        self.u32(count);
        let len_at = self.tree.len();
        self.u32(0);
        body(self);
        let len = u32_of(self.tree.len() - len_at - 4);
        self.tree[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }

    fn value(&mut self, v: &serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Null => self.tree.push(0),
            Value::Bool(false) => self.tree.push(1),
            Value::Bool(true) => self.tree.push(2),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    self.tree.push(3);
                    self.tree.extend_from_slice(&u.to_le_bytes());
                } else if let Some(i) = n.as_i64() {
                    self.tree.push(4);
                    self.tree.extend_from_slice(&i.to_le_bytes());
                } else {
                    self.tree.push(5);
                    self.tree.extend_from_slice(&n.as_f64().expect("a finite number").to_le_bytes());
                }
            }
            Value::String(s) => {
                self.tree.push(6);
                self.text(s);
            }
            Value::Array(items) => self.container(7, items.len(), |e| items.iter().for_each(|i| e.value(i))),
            Value::Object(map) => self.container(8, map.len(), |e| {
                for (k, v) in map {
                    e.text(k);
                    e.value(v);
                }
            }),
        }
    }
}

/// The string table's length, the table, then the tree.
pub fn encode(v: &serde_json::Value) -> Vec<u8> {
    let mut e = Encoder { table: String::new(), at: HashMap::new(), tree: Vec::new() };
    e.value(v);
    let mut out = Vec::with_capacity(4 + e.table.len() + e.tree.len());
    out.extend_from_slice(&u32_of(e.table.len()).to_le_bytes());
    out.extend_from_slice(e.table.as_bytes());
    out.extend_from_slice(&e.tree);
    out
}

/// Closes a CRD schema the way the API server treats it: CRD schemas leave
/// the root open, but an unknown top-level field is still an error; and
/// every object has `apiVersion`, `kind` and `metadata` whether the CRD
/// lists them or not (metadata is checked as ObjectMeta separately).
pub fn close_crd(schema: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let Value::Object(root) = schema else { return };
    root.entry("additionalProperties").or_insert(Value::Bool(false));
    if let Value::Object(props) = root.entry("properties").or_insert_with(|| json!({})) {
        for k in ["apiVersion", "kind"] {
            props.entry(k).or_insert_with(|| json!({ "type": "string" }));
        }
        props.entry("metadata").or_insert_with(|| json!({ "type": "object" }));
    }
}

/// Whether the embedded schema at `path` (relative to `schemas/`) is a CRD's.
pub fn is_crd(path: &str) -> bool {
    path.starts_with("crds/")
}
