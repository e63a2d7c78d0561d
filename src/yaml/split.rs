//! Loading a large stack file on several threads.
//!
//! A stack with thousands of services is one YAML mapping under
//! `services:`; one thread parses it at about 12 MB/s with the event parser
//! (several times faster when a piece is in the fast reader's subset, see
//! `load`). When the text has the plain shape such a file has, it is cut at
//! the lines that start a top-level key and at the lines that start a key
//! directly under `services:`, the pieces are parsed in parallel and the
//! mapping is put back together. Such a line can only be a key of that
//! level: block scalars, flow collections and quoted scalars that span lines
//! must be indented deeper, and one that is not leaves a piece that does not
//! parse. Anything unusual (anchors or aliases, `---`, tabs, a piece that
//! does not parse, a key twice, a sequence where keys are expected) gives
//! `None`, and the caller parses the whole text on one thread, which also
//! reports any error with its position. The result is the same value either
//! way (tests compare both on the built-in and generated stacks).

use std::borrow::Cow;

use serde_yaml::{Mapping, Value};

use super::load::{MAX_NODES, parse_piece};

/// The key that ends a piece (see `parse_parallel`); a text holding it is
/// parsed on one thread.
const SENTINEL: &str = "stackgen-split-end-of-piece";

/// Texts shorter than this are parsed on one thread (splitting costs more).
pub const MIN_LEN: usize = 256 * 1024;

/// Whether `line` starts a key of a block mapping at exactly `indent`
/// spaces: `key:` followed by a space or the end of the line, with a plain
/// key that holds no `:` or `#`.
fn starts_key(line: &str, indent: usize) -> bool {
    let Some(rest) = line.get(indent..) else { return false };
    if line.as_bytes()[..indent].iter().any(|&b| b != b' ') {
        return false;
    }
    let Some(first) = rest.bytes().next() else { return false };
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return false;
    }
    let Some(colon) = rest.find(':') else { return false };
    let key = &rest[..colon];
    let after = &rest[colon + 1..];
    !key.contains(['#', ' ', '\t', '"', '\'']) && (after.is_empty() || after.starts_with(' '))
}

/// Whether `line` holds nothing but spaces and maybe a comment.
fn is_blank(line: &str) -> bool {
    let t = line.trim_start_matches(' ');
    t.is_empty() || t.starts_with('#')
}

/// The offset just past the line that starts at `at`: after its line break,
/// or the end of the text.
fn line_end(text: &str, at: usize) -> usize {
    memchr::memchr(b'\n', &text.as_bytes()[at..]).map_or(text.len(), |i| at + i + 1)
}

/// Where the services' lines are, found in one pass over the lines (see
/// `layout`); byte offsets into the text.
struct Layout {
    /// The first line after `services:`.
    start: usize,
    /// The first line after the services' lines (the next top-level key,
    /// or the end of the text).
    end: usize,
    /// The lines that start a service's key.
    keys: Vec<usize>,
    /// The services' indentation (that of their keys).
    indent: usize,
}

/// Checks that `text` has the plain shape a split needs (see the module
/// documentation) and finds its services' lines; `None` when it has not.
/// One pass over the lines, nothing copied: for a 10,000-service file, a
/// vector of every line and a second pass over it had taken 30 ms on one
/// thread while the other core waited.
fn layout(text: &str) -> Option<Layout> {
    let bytes = text.as_bytes();
    // The bytes of these ASCII characters occur in UTF-8 only as themselves.
    if memchr::memchr3(b'&', b'*', b'\t', bytes).is_some()
        || memchr::memchr(b'\r', bytes).is_some()
        || text.starts_with('\u{feff}')
        || memchr::memmem::find(bytes, SENTINEL.as_bytes()).is_some()
    {
        return None;
    }
    let mut start = None;
    let mut end = None;
    let mut indent = None;
    let mut keys = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let next = line_end(text, at);
        let line = text[at..next].trim_end_matches('\n');
        let here = at;
        at = next;
        if line.starts_with("---") || line.starts_with("...") || line.starts_with('%') {
            return None;
        }
        if is_blank(line) {
            continue;
        }
        let own = line.len() - line.trim_start_matches(' ').len();
        if own == 0 {
            // Every line at column 0 that is not blank must start a key.
            if !starts_key(line, 0) {
                return None;
            }
            if start.is_some() && end.is_none() {
                end = Some(here);
            }
            if line.trim_end() == "services:" {
                // Twice is a duplicate key: the one-thread parse reports it.
                if start.is_some() {
                    return None;
                }
                start = Some(next);
            }
            continue;
        }
        if start.is_none() || end.is_some() {
            continue;
        }
        // A line among the services: the first one sets their indentation.
        let indent = *indent.get_or_insert(own);
        if own < indent {
            return None;
        }
        if own == indent {
            if !starts_key(line, indent) {
                return None;
            }
            keys.push(here);
        }
    }
    Some(Layout { start: start?, end: end.unwrap_or(text.len()), keys, indent: indent? })
}

/// Parses `text` in pieces on all cores; `None` when it cannot be done
/// safely (see the module documentation).
pub fn parse_parallel(text: &str) -> Option<Value> {
    let Layout { start, end, keys, indent } = layout(text)?;
    if keys.len() < 64 {
        return None;
    }
    // Pieces: the file without the services' lines (`services:` then holds
    // null), and the services in runs of consecutive keys.
    let threads = crate::par::threads();
    let per_piece = keys.len().div_ceil(threads * 4);
    let mut pieces: Vec<(Cow<str>, usize)> = Vec::new();
    // Each piece ends as the file does: with or without a line break (a
    // line break added after a last line of spaces changed the block
    // scalar it ended, in yaml-rust2).
    let mut rest = String::with_capacity(start + (text.len() - end));
    rest.push_str(&text[..start]);
    rest.push_str(&text[end..]);
    pieces.push((Cow::Owned(rest), 0));
    let mut bounds: Vec<usize> = keys.iter().step_by(per_piece).copied().collect();
    bounds[0] = start;
    bounds.push(end);
    // What follows a piece decides how its last value ends (a block
    // scalar's trailing lines end differently at the end of the text), so
    // a piece ends the way it does in the file: every piece but the last
    // runs on to the line of the next piece's first key (its own last key,
    // dropped below), borrowed from the text; the last, when more of the
    // file follows, gets a sentinel key at the services' indentation.
    let last = bounds.len() - 2;
    for (i, w) in bounds.windows(2).enumerate() {
        let piece = if i < last {
            Cow::Borrowed(&text[w[0]..line_end(text, w[1])])
        } else {
            // When more text follows, `w[1]` starts a line.
            let mut piece = text[w[0]..w[1]].to_string();
            if w[1] < text.len() {
                piece.push_str(&format!("{}{SENTINEL}: ~\n", " ".repeat(indent)));
            }
            Cow::Owned(piece)
        };
        pieces.push((piece, 1));
    }
    let parsed = crate::par::map_min(&pieces, 2, |(t, depth)| parse_piece(t, *depth));
    let mut parsed = parsed.into_iter();
    let (mut root, mut nodes) = parsed.next()??;
    let mut maps = Vec::with_capacity(pieces.len() - 1);
    for piece in parsed {
        let (value, n) = piece?;
        nodes += n;
        let Value::Mapping(m) = value else { return None };
        maps.push(m);
    }
    // Each piece's own last key: the next piece's first (read from the same
    // line, so the same key), or the sentinel. Nothing else may stand
    // there. The text holds no sentinel (see `layout`), so the one added is
    // the only one.
    let followed = end < text.len();
    for (i, m) in maps.iter().enumerate() {
        let (key, value) = m.iter().last()?;
        let own = match maps.get(i + 1) {
            Some(next) => next.iter().next().map(|(k, _)| k) == Some(key),
            None => !followed || (key.as_str() == Some(SENTINEL) && value.is_null()),
        };
        if !own {
            return None;
        }
    }
    let count = maps.len();
    let mut all = Mapping::with_capacity(keys.len());
    for (i, m) in maps.into_iter().enumerate() {
        let keep = m.len() - usize::from(i + 1 < count || followed);
        for (k, v) in m.into_iter().take(keep) {
            if all.insert(k, v).is_some() {
                return None;
            }
        }
    }
    // The whole document counts its root, `services` and its mapping.
    if nodes + 2 > MAX_NODES {
        return None;
    }
    let Value::Mapping(top) = &mut root else { return None };
    match top.get_mut("services") {
        Some(slot @ Value::Null) => *slot = Value::Mapping(all),
        _ => return None,
    }
    Some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequential(text: &str) -> Value {
        super::super::load::parse(text).expect("parses").0
    }

    fn generated(n: usize) -> String {
        let mut t = String::from("# a stack\nname: big\nnamespace:\n  name: big\nservices:\n");
        for i in 0..n {
            t.push_str(&format!(
                "  svc-{i:05}:\n    image: \"r/s:{i}\"\n    env:\n      A: {{ secret: app, key: k }}\n      B: |\n        line {i}\n\n        tail\n    ports: [80, 90]\n    # comment\n"
            ));
        }
        t.push_str("secrets:\n  app:\n    keys: [k]\n");
        t
    }

    #[test]
    fn same_value_as_one_thread() {
        let text = generated(300);
        assert_eq!(parse_parallel(&text), Some(sequential(&text)));
        // Built-in stacks are small, but their shape must work too.
        for (name, text) in crate::embedded::STACKS {
            if let Some(v) = parse_parallel(text) {
                assert_eq!(v, sequential(text), "{name}");
            }
        }
    }

    /// A piece ends as its text does in the file: every service ends with a
    /// kept block scalar and blank lines, whose value depends on what
    /// follows; the next key's line may carry a value of its own.
    #[test]
    fn piece_ends_are_read_as_in_the_file() {
        let mut text = String::from("name: big\nservices:\n");
        for i in 0..200 {
            if i % 7 == 3 {
                text.push_str(&format!("  svc-{i:03}: {{ image: \"r/s:{i}\" }}\n"));
            } else {
                text.push_str(&format!("  svc-{i:03}:\n    notes: |+\n      line {i}\n\n\n"));
            }
        }
        for tail in [
            "",
            "secrets:\n  app: {}\n",
            "# the end\n",
            // A last line of spaces, no line break: found by fuzz target load_split.
            "secrets:\n    b: |\n     /   x\n\n        tail\n     ",
            "  svc-999:\n    notes: |\n      /   x\n\n         tail\n      ",
        ] {
            let text = format!("{text}{tail}");
            assert_eq!(parse_parallel(&text), Some(sequential(&text)), "tail {tail:?}");
        }
    }

    #[test]
    fn declines_what_it_cannot_split_safely() {
        let base = generated(100);
        let cases = [
            base.replace("  svc-00050:\n", "  svc-00050: &a\n"),
            base.replace("  svc-00050:\n", "  svc-00001:\n"),
            base.replace("    image: \"r/s:50\"\n", "    image: \"r/s:50\n  svc-x: y\"\n"),
            base.replace("    ports: [80, 90]\n", "    ports: [80,\n  90]\n"),
            base.replace("  svc-00050:\n", "  - svc-00050:\n"),
            base.replace("  svc-00050:\n", "\tsvc-00050:\n"),
            base.replace("name: big\n", "name: big\n---\n"),
            base.replace("services:\n", "services: {}\n"),
            base.replace("  svc-00050:\n", "  \"svc-00050\":\n"),
            base.replace("  svc-00050:\n", " svc-00050:\n"),
            base.replace("name: big\n", "name: big\nservices:\n  x: 1\n"),
            generated(10),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert_eq!(parse_parallel(text), None, "case {i}");
        }
    }

    /// The depth limit holds exactly as on one thread.
    #[test]
    fn depth_limit_is_the_same() {
        let base = generated(100);
        let mut outcomes = std::collections::BTreeSet::new();
        for d in super::super::load::MAX_DEPTH - 5..super::super::load::MAX_DEPTH {
            let nested = format!("    x: {}{}\n  svc-00050:\n", "[".repeat(d), "]".repeat(d));
            let text = base.replace("  svc-00050:\n", &nested);
            let one = super::super::load::parse(&text).ok().map(|(v, _)| v);
            outcomes.insert(one.is_some());
            assert_eq!(parse_parallel(&text).is_some(), one.is_some(), "depth {d}");
            if let Some(v) = one {
                assert_eq!(parse_parallel(&text), Some(v), "depth {d}");
            }
        }
        assert_eq!(outcomes.len(), 2, "the depths tried must reach both sides of the limit");
    }

    /// Random damage to a splittable stack: whenever the split parse gives a
    /// value, the one-thread parse gives the same value (never one where the
    /// other fails).
    mod damaged {
        use super::*;
        use proptest::prelude::*;

        /// Line-level edits that touch what the split relies on: indentation,
        /// quotes and brackets spanning lines, block scalars, comments, keys.
        const EDITS: &[&str] = &[
            "  x: \"open",
            "  y: [1,",
            "  ]",
            "  \"",
            "  z: |",
            "line",
            "    w: '",
            " q: 1",
            "  # note",
            "",
            "   deeper: 1",
            "  svc-00003:",
            "  - item",
            "  k: {a: 1,",
            "  }",
            "services:",
            "name: other",
            "  p: >",
            "  r: \"a\\",
            "  s: 'it''s'",
            "    t: \"x: y\"",
        ];

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]
            #[test]
            fn split_never_differs(edits in proptest::collection::vec((0usize..2000, 0usize..EDITS.len(), any::<bool>()), 1..4)) {
                let mut lines: Vec<String> = generated(70).lines().map(str::to_string).collect();
                for (at, edit, replace) in edits {
                    let at = at % lines.len();
                    if replace {
                        lines[at] = EDITS[edit].to_string();
                    } else {
                        lines.insert(at, EDITS[edit].to_string());
                    }
                }
                let text = lines.join("\n") + "\n";
                if let Some(split) = parse_parallel(&text) {
                    let one = super::super::super::load::parse(&text).map(|(v, _)| v);
                    prop_assert_eq!(Ok(split), one.map_err(|e| e.message));
                }
            }
        }
    }
}
