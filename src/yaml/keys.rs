//! Where the block-mapping keys of a stack file are written, found by
//! scanning its lines instead of parsing it again.
//!
//! A diagnostic points at the key its field path was written under. Files
//! read by the fast reader carry no positions, and finding them meant a
//! second parse with the event parser: 1.3 ms for the one warning of a
//! built-in stack, 1.35 s for a 10,000-service file (4 MB) whose images
//! have no tag. The index here records `path -> line:column` for every key
//! of every block mapping that is not inside a sequence, in one pass over
//! the lines, and answers the same as the event parser's positions
//! ([`super::Spans::exact`]) for such paths (tests compare both).
//!
//! It answers only where it is sure. A path through a sequence (`[i]`) or
//! into a value written inline as a flow collection or block scalar is
//! [`Found::Unsure`], and the caller asks the event parser. An alias
//! (`key: *name`) is a value like a scalar: nothing is written under it.
//! A text with anything outside the plain block shape (quoted or complex
//! keys, anchors other than `key: &name` before a block, aliases with more
//! after them, tags, multi-line flow collections or quoted scalars, scalars
//! continued on another line, tabs, directives, several documents) gets no
//! index at all.

use std::collections::{HashMap, HashSet};

use super::Pos;
use super::fast::{alias, anchor, closes_on_line, comment_or_nothing, is_seq_entry};
use super::load::resolve_plain_core;

/// What the index knows about a path.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Written here.
    At(Pos),
    /// Certainly not written in the file.
    Absent,
    /// Not something the index can tell.
    Unsure,
}

/// foldhash, as `stack::model::Map`: SipHash was a quarter of building
/// the index.
type Hasher = foldhash::fast::RandomState;

/// Positions of the keys of a text of the plain block shape.
#[derive(Debug, Default, Clone)]
pub struct KeyIndex {
    keys: HashMap<String, Pos, Hasher>,
    /// Indexed paths the index cannot vouch for: a key with a `.` in it, and
    /// everything under one. The parser joins keys with `.` and keeps the
    /// last write of a path, so `a.b: 1` and a later `a: {b: 2}` (which the
    /// index does not read) are one path to it.
    dotted: HashSet<String, Hasher>,
    /// Paths whose value the index did not look into (a sequence, a flow
    /// collection or a block scalar).
    opaque: HashSet<String, Hasher>,
}

impl KeyIndex {
    /// Every path the index vouches for, and its position (tests and fuzzing).
    #[doc(hidden)]
    pub fn paths(&self) -> impl Iterator<Item = (&str, Pos)> {
        self.keys.iter().filter(|(k, _)| !self.dotted.contains(*k)).map(|(k, v)| (k.as_str(), *v))
    }

    /// Where `path` (keys joined by `.`) is written.
    pub fn exact(&self, path: &str) -> Found {
        if path.is_empty() || path.contains('[') {
            return Found::Unsure;
        }
        if let Some(pos) = self.keys.get(path) {
            return if self.dotted.contains(path) { Found::Unsure } else { Found::At(*pos) };
        }
        // Under a value the index did not read, anything may be written.
        let mut p = path;
        while let Some(cut) = p.rfind('.') {
            p = &p[..cut];
            if self.opaque.contains(p) {
                return Found::Unsure;
            }
        }
        Found::Absent
    }
}

/// A mapping being read: the column of its keys and its path.
struct Open {
    col: usize,
    path: String,
    /// At or under a key with a `.` in it.
    dotted: bool,
}

/// Indexes `text`; `None` when it is not of the plain block shape.
pub fn index(text: &str) -> Option<KeyIndex> {
    if !text.is_ascii() || text.contains('\t') || text.contains('\r') {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let mut ix = KeyIndex::default();
    let mut open: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some((col, rest)) = content(lines[i]) else {
            i += 1;
            continue;
        };
        if col == 0 && (rest.starts_with("---") || rest.starts_with("...") || rest.starts_with('%')) {
            return None;
        }
        while open.last().is_some_and(|o| o.col > col) {
            open.pop();
        }
        match open.last() {
            Some(o) if o.col == col => {}
            // The first key opens the root mapping.
            None if ix.keys.is_empty() => open.push(Open { col, path: String::new(), dotted: false }),
            // Deeper than any open mapping without a key announcing it (a
            // scalar continued on this line), or a second root.
            _ => return None,
        }
        let (key, value) = plain_key(rest)?;
        let parent = open.last()?;
        let path = if parent.path.is_empty() {
            key.to_string()
        } else {
            let mut p = String::with_capacity(parent.path.len() + 1 + key.len());
            p.push_str(&parent.path);
            p.push('.');
            p.push_str(key);
            p
        };
        let dotted = parent.dotted || key.contains('.');
        if dotted {
            ix.dotted.insert(path.clone());
        }
        if ix.keys.insert(path.clone(), Pos { line: i + 1, col: col + 1 }).is_some() {
            return None;
        }
        i += 1;
        let mut value = value.trim_start_matches(' ');
        // `key: &name` anchors the block below; its keys are written there.
        if value.starts_with('&') {
            anchor(value)?;
            value = "";
        }
        if value.is_empty() || value.starts_with('#') {
            // A block below (or nothing: null).
            let Some((next, (next_col, next_rest))) = (i..lines.len()).find_map(|j| Some((j, content(lines[j])?)))
            else {
                break;
            };
            if is_seq_entry(next_rest) && next_col >= col {
                // A sequence: skipped whole (its items are `[i]` paths),
                // once it is clear that it ends where its lines say.
                i = skip_block(&lines, next, col, true);
                if !one_line_items(&lines[next..i]) {
                    return None;
                }
                ix.opaque.insert(path);
            } else if next_col > col {
                open.push(Open { col: next_col, path, dotted });
            }
            continue;
        }
        match value.as_bytes()[0] {
            b'|' | b'>' => {
                i = skip_block(&lines, i, col, false);
                ix.opaque.insert(path);
            }
            // Quoted scalars and flow collections must end on their line,
            // as the fast reader reads them.
            b'"' | b'\'' | b'{' | b'[' if !closes_on_line(value) => return None,
            b'{' | b'[' => {
                ix.opaque.insert(path);
            }
            // `key: *name`: the key is written here, and nothing under it
            // (the event parser records no position inside an alias).
            b'*' if alias(value).is_some_and(|(_, rest)| comment_or_nothing(rest)) => {}
            // Other anchors and aliases, tags and reserved indicators; a `-`
            // entry after a key.
            b'&' | b'*' | b'!' | b'@' | b'`' | b'%' | b'?' => return None,
            _ if is_seq_entry(value) => return None,
            // A plain scalar, maybe with a comment after it.
            _ => {}
        }
    }
    Some(ix)
}

/// The column and text of a line with content; `None` for a blank or
/// comment line.
fn content(line: &str) -> Option<(usize, &str)> {
    let rest = line.trim_start_matches(' ');
    (!rest.is_empty() && !rest.starts_with('#')).then(|| (line.len() - rest.len(), rest))
}

/// `key: value` or `key:` with a plain key of the usual characters that
/// the loader reads as a string (`FALSE:` is the key `false` to it, and
/// `1e3:` the key `1000.0`); the key and what follows the colon.
fn plain_key(s: &str) -> Option<(&str, &str)> {
    let colon = s.find(':')?;
    let (key, after) = (&s[..colon], &s[colon + 1..]);
    let ok = key.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        && resolve_plain_core(key).is_none()
        && (after.is_empty() || after.starts_with(' '));
    ok.then_some((key, after))
}

/// Whether the lines of a sequence keep each quoted scalar and flow
/// collection on one line. The event parser lets a quoted scalar of an
/// item run on over lines indented less than the sequence (a fuzzer found
/// `- " :` whose closing quote came after `services:` and `web:` lines at
/// the left margin), so those lines are not keys, though `skip_block`
/// ends the sequence at them. Block scalars are skipped: their lines are
/// text. Conservative: a line starting with a quoted key (`- "a": b`) fails
/// too, as such a key fails the index anywhere else.
fn one_line_items(lines: &[&str]) -> bool {
    let mut i = 0;
    while i < lines.len() {
        let Some((col, mut rest)) = content(lines[i]) else {
            i += 1;
            continue;
        };
        i += 1;
        // The column of the node that starts after the `- ` entries.
        let mut at = col;
        while is_seq_entry(rest) {
            let after = rest[1..].trim_start_matches(' ');
            at += rest.len() - after.len();
            rest = after;
        }
        let value = plain_key(rest).map_or(rest, |(_, v)| v.trim_start_matches(' '));
        match value.as_bytes().first() {
            // A block scalar's lines are indented deeper than its node.
            Some(b'|' | b'>') => {
                while i < lines.len() && content(lines[i]).is_none_or(|(c, _)| c > at) {
                    i += 1;
                }
            }
            Some(b'"' | b'\'' | b'{' | b'[') if !closes_on_line(value) => return false,
            _ => {}
        }
    }
    true
}

/// The line after a block that belongs to something at column `col`: lines
/// indented deeper, blank lines and comments, and with `items` also `-`
/// lines at `col` (a sequence at its key's column).
fn skip_block(lines: &[&str], from: usize, col: usize, items: bool) -> usize {
    let ends = |line: &str| match content(line) {
        None => false,
        Some((c, rest)) => c < col || (c == col && !(items && is_seq_entry(rest))),
    };
    lines[from..].iter().position(|l| ends(l)).map_or(lines.len(), |p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key path the event parser records (outside sequences and
    /// inline values) is found at the same place, and a path it does not
    /// record is not claimed.
    fn agrees(name: &str, text: &str) -> usize {
        let Some(ix) = index(text) else { return 0 };
        let spans = super::super::spans(text);
        let mut checked = 0;
        for (path, pos) in spans.paths() {
            match ix.exact(path) {
                Found::At(p) => {
                    assert_eq!(p, pos, "{name}: {path}");
                    checked += 1;
                }
                Found::Unsure => {}
                Found::Absent => panic!("{name}: {path} is written at {pos:?}, the index says absent"),
            }
        }
        for (path, pos) in ix.paths() {
            assert_eq!(spans.exact(path), Some(pos), "{name}: {path}");
            for typo in [format!("{path}x"), format!("{path}.nope"), format!("x{path}")] {
                if ix.exact(&typo) == Found::Absent {
                    assert_eq!(spans.exact(&typo), None, "{name}: {typo}");
                }
            }
        }
        checked
    }

    #[test]
    fn agrees_with_the_event_parser_on_stack_files() {
        let mut indexed = Vec::new();
        for (name, text) in crate::embedded::STACKS {
            if agrees(name, text) > 0 {
                indexed.push(*name);
            }
        }
        // The built-in stacks the fast reader takes are indexed, anchors
        // and aliases (loops, loomio) included.
        indexed.sort_unstable();
        assert_eq!(indexed, ["loom.yaml", "loomio.yaml", "loops.yaml", "pogly.yaml"]);
        let mut files = Vec::new();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        super::super::files_under(&repo.join("tests/fixtures"), &mut files);
        super::super::files_under(&repo.join("fuzz/seeds"), &mut files);
        for f in files {
            if let Ok(text) = std::fs::read_to_string(&f) {
                agrees(&f.display().to_string(), &text);
            }
        }
    }

    #[test]
    fn shapes() {
        let text = "a:\n  b: 1 # c\n  list:\n  - x\n  - y: 2\n  flow: { z: 1 }\n  lit: |\n    k: v\n  d:\n    e: \"q # r\"\nf: ~\n";
        assert_eq!(agrees("shapes", text), 8);
        let ix = index(text).unwrap();
        assert_eq!(ix.exact("a.lit.k"), Found::Unsure);
        assert_eq!(ix.exact("a.flow.z"), Found::Unsure);
        assert_eq!(ix.exact("a.list[0]"), Found::Unsure);
        assert_eq!(ix.exact("a.nope"), Found::Absent);
        // A dotted key's path may also be written inside a flow value.
        let ix = index("a.b: 1\na: {b: 2}\nc.d:\n  e: 1\nf: 1\n").unwrap();
        assert_eq!(ix.exact("a.b"), Found::Unsure);
        assert_eq!(ix.exact("c.d.e"), Found::Unsure);
        assert_eq!(ix.exact("f"), Found::At(Pos { line: 5, col: 1 }));
        for text in ["a.b: 1\na: {b: 2}\n", "a.b:\n  c: 2\na: {b.c: 1}\n"] {
            agrees(text, text);
        }
        // Flow values with quoted scalars that close on their line.
        let ix = index("a: [\"x]\", 'y''s', {k: \"v\"}]\nb: 1\n").unwrap();
        assert_eq!(ix.exact("b"), Found::At(Pos { line: 2, col: 1 }));
        for bad in [
            "a: [x, ']\nb: 1']\nc: 2\n",
            "a: {k: \"}\nb: 1\"}\n",
            "a: [it's, \"]\nb: 1\"]\n",
            "a: 'abc''\n  def'\n",
            "a: \"abc\\\"\n  def\"\n",
            "FALSE: 1\n",
            "a:\n  1: x\n",
            "null: 1\n",
            "a: [1,\n  2]\n",
            "a: \"x\n  y\"\n",
            "a: x\n  y\n",
            "\"a\": 1\n",
            "a: &x 1\nb: *x\n",
            "a: 1\n---\nb: 2\n",
        ] {
            assert!(index(bad).is_none(), "{bad:?}");
        }
    }

    /// A quoted scalar of a sequence item that runs on past the lines
    /// `skip_block` gives the sequence: what follows is not keys, so there
    /// is no index (found by the `locate_keys` fuzzer; the index had put
    /// `services.web` and `b` there). The event parser takes both texts.
    #[test]
    fn items_running_on_past_their_sequence() {
        for text in ["a:\n- \" :\nla:\nservices:\n  web: x\"\n", "a:\n- 'x\nb: 1'\n"] {
            assert!(crate::yaml::parse(text).is_ok(), "{text:?}");
            assert!(index(text).is_none(), "{text:?}");
        }
        // One-line quoted and flow items, and block scalars with quotes in
        // their text, keep the index.
        let text = "a:\n- \"x: y\"\n- k: [1, 2]\n  run: |\n    it's \"\n- >\n  don't\nb:\n  c: 1\n";
        assert_eq!(agrees("one-line items", text), 3);
        assert_eq!(index(text).unwrap().exact("b.c"), Found::At(Pos { line: 9, col: 3 }));
    }
}
