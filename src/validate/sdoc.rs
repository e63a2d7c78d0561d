//! The embedded schemas in binary form: `build.rs` parses each JSON schema
//! once and writes its tree in pre-order, so a run reads it back without
//! scanning JSON text. Parsing the JSON on every run took about 6% of the
//! CPU time of rendering the built-in stacks; most of it went to finding
//! string ends and growing vectors whose length JSON does not give.
//!
//! Format (little-endian): a u32 length and that many bytes of UTF-8, the
//! string table (every distinct string once, concatenated), then the value,
//! one tag byte per value:
//! - `0` null, `1` false, `2` true;
//! - `3` u64, `4` i64, `5` f64: 8 bytes;
//! - `6` string: u32 offset and u32 length in the table;
//! - `7` array: u32 count, the items;
//! - `8` object: u32 count, then each key (offset and length, no tag) and
//!   its value, in document order.
//!
//! The table is checked as UTF-8 once, so a string costs a slice.
//!
//! The result is the [`Doc`] that `serde_json` gives for the JSON text, with
//! every string borrowed from the binary (a test compares both for every
//! embedded schema).

use std::borrow::Cow;

use serde_json::Number;

use crate::yaml::doc::Doc;

/// Deepest nesting read (the embedded schemas are far shallower).
const MAX_DEPTH: usize = 128;

/// Most items reserved ahead for one array or object (the largest in the
/// embedded schemas has 149; a longer one grows as it is read).
const RESERVE: usize = 4096;

/// Decodes one encoded schema.
pub fn decode(bytes: &'static [u8]) -> Result<Doc<'static>, String> {
    let mut r = Reader { bytes, at: 0, table: "" };
    let n = r.count()?;
    r.table = std::str::from_utf8(r.take(n)?).map_err(|e| format!("string table: {e}"))?;
    let doc = r.value(0)?;
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the value", bytes.len() - r.at));
    }
    Ok(doc)
}

struct Reader {
    bytes: &'static [u8],
    at: usize,
    table: &'static str,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<&'static [u8], String> {
        let bytes = self.bytes;
        let got = self.at.checked_add(n).and_then(|end| bytes.get(self.at..end)).ok_or("truncated")?;
        self.at += n;
        Ok(got)
    }

    fn eight(&mut self) -> Result<[u8; 8], String> {
        let b = self.take(8)?;
        Ok([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    fn count(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn text(&mut self) -> Result<&'static str, String> {
        let (offset, n) = (self.count()?, self.count()?);
        let table = self.table;
        offset.checked_add(n).and_then(|end| table.get(offset..end)).ok_or_else(|| "a string outside the table".into())
    }

    /// How many of `n` announced items to reserve room for. Every item
    /// takes at least one byte, so a count beyond what is left is damage,
    /// not a reason to reserve memory; and at most `RESERVE` ahead per
    /// level, however deep damage nests.
    fn reserve(&self, n: usize) -> usize {
        n.min(self.bytes.len() - self.at).min(RESERVE)
    }

    fn value(&mut self, depth: usize) -> Result<Doc<'static>, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        let tag = self.take(1)?[0];
        Ok(match tag {
            0 => Doc::Null,
            1 => Doc::Bool(false),
            2 => Doc::Bool(true),
            3 => Doc::Number(u64::from_le_bytes(self.eight()?).into()),
            4 => Doc::Number(i64::from_le_bytes(self.eight()?).into()),
            5 => Number::from_f64(f64::from_le_bytes(self.eight()?)).map_or(Doc::Null, Doc::Number),
            6 => Doc::String(Cow::Borrowed(self.text()?)),
            7 => {
                let n = self.count()?;
                let mut items = Vec::with_capacity(self.reserve(n));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Doc::Array(items)
            }
            8 => {
                let n = self.count()?;
                let mut entries = Vec::with_capacity(self.reserve(n));
                for _ in 0..n {
                    let key = self.text()?;
                    entries.push((Cow::Borrowed(key), self.value(depth + 1)?));
                }
                Doc::Object(entries)
            }
            t => return Err(format!("unknown tag {t} at byte {}", self.at - 1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_decodes_to_what_its_json_parses_to() {
        assert_eq!(crate::embedded::SCHEMA_DOCS.len(), crate::embedded::SCHEMAS.len());
        for ((path, bytes), (json_path, text)) in crate::embedded::SCHEMA_DOCS.iter().zip(crate::embedded::SCHEMAS) {
            assert_eq!(path, json_path);
            let decoded = decode(bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
            let parsed: Doc<'static> = serde_json::from_str(text).unwrap();
            assert!(decoded == parsed, "{path}: the decoded schema differs from its JSON");
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let (_, bytes) = crate::embedded::SCHEMA_DOCS[0];
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let leak = |b: &[u8]| -> &'static [u8] { Box::leak(b.to_vec().into_boxed_slice()) };
        // An unknown tag; an array longer than the bytes left; a string
        // outside the table; a table that is not UTF-8.
        assert!(decode(leak(&[0, 0, 0, 0, 9])).is_err());
        assert!(decode(leak(&[0, 0, 0, 0, 7, 255, 255, 255, 255])).is_err());
        assert!(decode(leak(&[1, 0, 0, 0, b'a', 6, 0, 0, 0, 0, 2, 0, 0, 0])).is_err());
        assert!(decode(leak(&[1, 0, 0, 0, 0xff, 0])).is_err());
        assert_eq!(decode(leak(&[1, 0, 0, 0, b'a', 6, 0, 0, 0, 0, 1, 0, 0, 0])), Ok(Doc::String("a".into())));
    }
}
