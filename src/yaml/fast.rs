//! A fast reader for the block-style YAML that stackgen's own templates emit,
//! with serde_yaml as the fallback for everything else; and, in a second
//! mode ([`parse_input`]), for the plain shape of stack files, with the
//! stack loader's event parser as the fallback.
//!
//! Why: every rendered document is parsed back (it must be valid YAML, and
//! its value is schema-checked). Through serde_yaml that parse was about a
//! quarter of the CPU time of a 10,000-service render; the line-based reader
//! here is several times faster on the same documents.
//!
//! The guarantee: [`parse`] returns exactly the data
//! `serde_yaml::from_str::<serde_json::Value>(text)` returns: the same
//! value (key order included), or an error whenever serde_yaml errors. The
//! fast path ([`parse_subset`]) only answers when it is certain; on anything
//! outside the subset, or anything it is unsure about, it answers `None` and
//! serde_yaml parses the text instead. It never reports an error itself.
//!
//! The subset (one document, LF line breaks):
//! - blank lines and full-line `#` comments;
//! - a block mapping or block sequence at the top (at any column);
//! - block mappings `key: value` and `key:` followed by a more indented
//!   block, or by a sequence at the key's own column (`key:` then `- x`);
//! - block sequences `- item`, `-` followed by an indented block, and
//!   compact items `- key: value` / `- - x` (the collection starts at the
//!   item's column);
//! - keys: plain, or double- or single-quoted, on one line;
//! - values: plain scalars on one line (resolved exactly as serde_yaml does:
//!   null, booleans, integers, floats, strings), double-quoted scalars with
//!   escapes and single-quoted scalars on one line, `{}`, `[]`, and literal
//!   block scalars `|`, `|-`, `|+` (indentation detected, chomping applied).
//!
//! Everything else falls back: tabs outside literal block content, carriage
//! returns, control or non-printable characters, a byte order mark, trailing
//! whitespace, `---` / `...` / `%` lines, anchors, aliases, tags, `?` keys,
//! non-empty flow collections, folded `>` scalars, block scalar indentation
//! indicators or comments, empty block scalars, scalars continued on another
//! line, trailing comments, plain scalars containing `: ` or ` #` or ending
//! in `:`, plain scalars starting with an indicator, duplicate keys, keys of
//! more than 1000 bytes, nesting deeper than 64, integers outside 64 bits, a
//! scalar as the whole document, an empty or comment-only document, and any
//! indentation the rules above do not expect (even when it is valid YAML).

use std::borrow::Cow;

use serde_json::{Number, Value};

use super::doc::{Doc, has_duplicate_keys};

/// Deepest nesting the fast path handles (serde_yaml refuses 128 levels).
const MAX_DEPTH: usize = 64;

/// Longest implicit key, in source bytes with its quotes, the fast path
/// handles (libyaml refuses keys of more than 1024 characters).
const MAX_KEY: usize = 1000;

/// Parses one YAML document; the same data as
/// `serde_yaml::from_str::<serde_json::Value>(text)` (fast path for the
/// block-style subset, serde_yaml otherwise).
pub fn parse(text: &str) -> Result<Doc<'_>, serde_yaml::Error> {
    match parse_doc(text) {
        Some(doc) => Ok(doc),
        None => serde_yaml::from_str(text).map(Doc::from_json),
    }
}

/// [`parse`] for a rendered document, which must also not write a key
/// twice: serde_json's maps keep the last of two equal keys without a word,
/// while kubectl and Compose refuse the document. The fast path already
/// leaves such a document to serde_yaml, whose own value refuses them.
pub fn parse_rendered(text: &str) -> Result<Doc<'_>, serde_yaml::Error> {
    match parse_doc(text) {
        Some(doc) => Ok(doc),
        None => {
            if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(text)
                && e.to_string().contains("duplicate entry with key")
            {
                return Err(e);
            }
            serde_yaml::from_str(text).map(Doc::from_json)
        }
    }
}

/// The fast path alone, as a JSON value: `None` when the text is outside
/// the subset (the caller then falls back to serde_yaml).
pub fn parse_subset(text: &str) -> Option<Value> {
    parse_doc(text).map(|doc| doc.to_json())
}

/// The fast path for a stack file (or a piece of one, see `split`): the
/// same subset plus what hand-written files use, read the way the stack
/// loader reads them; `None` whenever the text is outside it, and the
/// loader then parses it itself. Differences from [`parse`]'s subset:
/// - plain scalars resolve by the YAML 1.2 core schema, as the loader does
///   (`0755` and `+1` stay strings; plain keys must resolve to strings;
///   infinities and NaN fall back);
/// - flow collections on one line (`[a, "b"]`, `{ k: v, n: { x: 1 } }`)
///   whose plain scalars hold none of `:#"&*!|>%@` and backtick, and
///   start with no `'` (`Let's` is a plain scalar, `'x'` a quoted one);
/// - anchors on block collections (`key: &name` with the block below) and
///   aliases of them (`key: *name`, `- *name`), expanded as the loader
///   expands them, and within its limit on what aliases repeat;
/// - folded block scalars `>`, `>-`, `>+` whose lines are not indented
///   more than the first and that start with no blank line;
/// - a comment after a value (`key: value  # why`) or after a key;
/// - ASCII only, and nesting up to `INPUT_MAX_DEPTH`.
///
/// Returns the value and how many more nodes the loader counts than the
/// value's scalars: an alias counts as the weight of what it repeats
/// (`load::weight_of`), not as the scalars of its copy.
pub fn parse_input(text: &str) -> Option<(Doc<'_>, isize)> {
    if !text.is_ascii() {
        return None;
    }
    parse_doc_in(text, Mode::Input)
}

/// Nesting the input fast path takes: well inside the loader's own limit,
/// also for a piece that sits one level down in its file.
const INPUT_MAX_DEPTH: usize = 32;

/// Which reading: rendered output (serde_yaml's) or a stack file (the
/// loader's).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Output,
    Input,
}

/// The fast path alone.
fn parse_doc(text: &str) -> Option<Doc<'_>> {
    parse_doc_in(text, Mode::Output).map(|(doc, _)| doc)
}

fn parse_doc_in(text: &str, mode: Mode) -> Option<(Doc<'_>, isize)> {
    let (lines, tab) = split_lines(text)?;
    let mut parser = Parser::new(lines, text.ends_with('\n'), tab, mode);
    // An empty or comment-only document is serde_yaml's business.
    let Next::Line(indent, rest) = parser.peek()? else { return None };
    let value = parser.block(indent, rest)?;
    match parser.peek()? {
        Next::Eof => Some((value, parser.alias_adjust)),
        Next::Line(..) => None,
    }
}

/// The lines of `text` (without their `\n`) and whether it holds a tab, or
/// `None` when a character or trailing whitespace puts the text outside the
/// subset. A few passes that each go many bytes at a time (a branch-free
/// fold the compiler vectorises, `memchr`, `is_ascii`): one pass with a
/// `match` per byte was 4% of the instructions of a built-in render.
fn split_lines(text: &str) -> Option<(Vec<&str>, bool)> {
    let bytes = text.as_bytes();
    // ASCII controls other than `\n` and `\t`, and DEL.
    let control = |b: u8| (b < 0x20) & (b != b'\n') & (b != b'\t') | (b == 0x7F);
    if bytes.iter().fold(false, |seen, &b| seen | control(b)) {
        return None;
    }
    let tab = memchr::memchr(b'\t', bytes).is_some();
    let non_ascii = !bytes.is_ascii();
    let mut lines = Vec::with_capacity(bytes.len() / 32);
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', bytes) {
        lines.push(text.get(start..i)?);
        start = i + 1;
    }
    if start < bytes.len() {
        lines.push(text.get(start..)?);
    }
    if non_ascii && !non_ascii_ok(text) || lines.iter().any(|l| l.ends_with([' ', '\t'])) {
        return None;
    }
    Some((lines, tab))
}

/// Whether every non-ASCII character is one libyaml reads as an ordinary
/// printable character: line breaks other than `\n` (NEL, LS, PS), the C1
/// controls, the byte order mark and the non-characters U+FFFE/U+FFFF fall
/// back (so do ASCII controls, DEL and CR: see `split_lines`).
fn non_ascii_ok(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(c,
            '\n' | '\t' | '\u{20}'..='\u{7E}' | '\u{A0}'..='\u{2027}' | '\u{202A}'..='\u{D7FF}'
            | '\u{E000}'..='\u{FEFE}' | '\u{FF00}'..='\u{FFFD}' | '\u{10000}'..)
    })
}

/// The next structural line, or the end of the text.
enum Next<'a> {
    Eof,
    /// Indentation (spaces) and the rest of the line.
    Line(usize, &'a str),
}

/// How a literal block scalar treats its final line break and trailing
/// blank lines.
#[derive(Clone, Copy)]
enum Chomp {
    /// `|`: one final line break.
    Clip,
    /// `|-`: none.
    Strip,
    /// `|+`: the final line break and every trailing blank line.
    Keep,
}

/// The first part of a line in a block collection.
enum Entry<'a> {
    /// `key:` and what follows the colon on that line.
    Key(Cow<'a, str>, &'a str),
    /// Not a mapping entry (a scalar, if anything).
    Scalar,
}

/// Line-based recursive descent. Every method returning `Option` answers
/// `None` for "outside the subset", which aborts the whole fast path.
struct Parser<'a> {
    lines: Vec<&'a str>,
    /// The current line.
    pos: usize,
    /// Whether the last line ends with a line break.
    final_newline: bool,
    /// Whether the text holds a tab anywhere.
    tab: bool,
    /// Open collections.
    depth: usize,
    mode: Mode,
    /// Anchors defined so far (stack files), the latest last; `None` while
    /// the anchored node is still being read.
    anchors: Vec<(&'a str, Option<Anchored<'a>>)>,
    /// What aliases repeated: the sum of their weights, and the loader's
    /// node count minus that of the expanded value (see [`parse_input`]).
    alias_weight: usize,
    alias_adjust: isize,
}

/// An anchored node, its weight as the loader counts an alias of it
/// (`load::weight_of`: every node but keys), and its scalars, keys
/// included (`load::from_doc`'s count).
#[derive(Clone)]
struct Anchored<'a> {
    value: Doc<'a>,
    weight: usize,
    scalars: usize,
}

impl<'a> Parser<'a> {
    fn new(lines: Vec<&'a str>, final_newline: bool, tab: bool, mode: Mode) -> Parser<'a> {
        Parser {
            lines,
            pos: 0,
            final_newline,
            tab,
            depth: 0,
            mode,
            anchors: Vec::new(),
            alias_weight: 0,
            alias_adjust: 0,
        }
    }

    /// Skips blank and comment lines and returns the next line without
    /// consuming it.
    fn peek(&mut self) -> Option<Next<'a>> {
        while let Some(&line) = self.lines.get(self.pos) {
            // Bytes, not chars: a space is one byte, and so are `#` and tab.
            let bytes = line.as_bytes();
            let indent = bytes.iter().take_while(|&&b| b == b' ').count();
            if matches!(bytes.get(indent), None | Some(b'#')) {
                self.pos += 1;
                continue;
            }
            if self.tab && memchr::memchr(b'\t', bytes).is_some() {
                return None;
            }
            let rest = line.get(indent..)?;
            if indent == 0 && (rest.starts_with("---") || rest.starts_with("...")) {
                return None;
            }
            return Some(Next::Line(indent, rest));
        }
        Some(Next::Eof)
    }

    /// [`split_entry`], and for a stack file a plain key must read as a
    /// string (the loader turns `true:` into the key `true`, `True:` too).
    fn entry(&self, s: &'a str) -> Option<Entry<'a>> {
        let entry = split_entry(s)?;
        if self.mode == Mode::Input
            && let Entry::Key(key, _) = &entry
            && !s.starts_with(['"', '\''])
            && !matches!(resolve_core(key), Some(Doc::String(_)))
        {
            return None;
        }
        Some(entry)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        let max = if self.mode == Mode::Input { INPUT_MAX_DEPTH } else { MAX_DEPTH };
        (self.depth <= max).then_some(())
    }

    /// A block collection whose first entry is `rest`, at column `col` of
    /// the current line.
    fn block(&mut self, col: usize, rest: &'a str) -> Option<Doc<'a>> {
        if is_seq_entry(rest) {
            return self.seq(col, rest);
        }
        match self.entry(rest)? {
            Entry::Key(key, after) => self.map(col, key, after),
            Entry::Scalar => None,
        }
    }

    /// A block mapping at column `col`; its first key is already split off
    /// the current line.
    fn map(&mut self, col: usize, mut key: Cow<'a, str>, mut after: &'a str) -> Option<Doc<'a>> {
        self.enter()?;
        let mut map = Vec::new();
        loop {
            self.pos += 1;
            let value = self.value_after_key(col, after)?;
            map.push((key, value));
            match self.peek()? {
                Next::Line(indent, rest) if indent == col => match self.entry(rest)? {
                    Entry::Key(k, a) => (key, after) = (k, a),
                    Entry::Scalar => return None,
                },
                Next::Line(indent, _) if indent > col => return None,
                _ => break,
            }
        }
        self.depth -= 1;
        if has_duplicate_keys(&map) {
            return None;
        }
        Some(Doc::Object(map))
    }

    /// The value of a key of the mapping at column `col`: `after` is the
    /// rest of the key's line (already consumed) after the colon.
    fn value_after_key(&mut self, col: usize, after: &'a str) -> Option<Doc<'a>> {
        let mut inline = after.trim_start_matches(' ');
        // `key:  # comment`: the value, if any, is on the next lines.
        if self.mode == Mode::Input && inline.starts_with('#') && inline.len() < after.len() {
            inline = "";
        }
        if self.mode == Mode::Input && inline.starts_with('&') {
            return self.anchored(col, inline);
        }
        if !inline.is_empty() {
            return self.scalar(col, inline);
        }
        match self.peek()? {
            Next::Line(indent, rest) if indent > col => self.block(indent, rest),
            // A sequence may sit at the column of its key.
            Next::Line(indent, rest) if indent == col && is_seq_entry(rest) => self.seq(col, rest),
            _ => Some(Doc::Null),
        }
    }

    /// `key: &name` (stack files): the block collection below the key,
    /// remembered for aliases. An anchor on anything else falls back.
    fn anchored(&mut self, col: usize, inline: &'a str) -> Option<Doc<'a>> {
        let name = anchor(inline)?;
        let at = self.anchors.len();
        // An alias inside the node it names refers to no anchor yet.
        self.anchors.push((name, None));
        let value = match self.peek()? {
            Next::Line(indent, rest) if indent > col => self.block(indent, rest)?,
            Next::Line(indent, rest) if indent == col && is_seq_entry(rest) => self.seq(col, rest)?,
            _ => return None,
        };
        let (weight, scalars) = counts(&value);
        self.anchors[at].1 = Some(Anchored { value: value.clone(), weight, scalars });
        Some(value)
    }

    /// `*name` (stack files): a copy of the node of the latest anchor of
    /// that name. Falls back when there is none, or when aliases repeat
    /// more than the loader allows (it then says so).
    fn alias(&mut self, s: &'a str) -> Option<(Doc<'a>, &'a str)> {
        let (name, rest) = alias(s)?;
        let (_, anchored) = self.anchors.iter().rev().find(|(n, _)| *n == name)?;
        let anchored = anchored.as_ref()?;
        self.alias_weight += anchored.weight;
        if self.alias_weight > super::MAX_ALIAS_NODES {
            return None;
        }
        self.alias_adjust += anchored.weight as isize - anchored.scalars as isize;
        Some((anchored.value.clone(), rest))
    }

    /// A block sequence at column `col` whose first entry (`-` ...) is the
    /// rest of the current line.
    fn seq(&mut self, col: usize, mut entry: &'a str) -> Option<Doc<'a>> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            let content = entry.get(1..)?.trim_start_matches(' ');
            if content.is_empty() {
                self.pos += 1;
                items.push(match self.peek()? {
                    Next::Line(indent, rest) if indent > col => self.block(indent, rest)?,
                    _ => Doc::Null,
                });
            } else {
                // Only `-` and spaces precede the content: bytes are columns.
                let at = col + (entry.len() - content.len());
                items.push(self.item(col, at, content)?);
            }
            match self.peek()? {
                Next::Line(indent, rest) if indent == col && is_seq_entry(rest) => entry = rest,
                Next::Line(indent, _) if indent > col => return None,
                // At `col` but no `-`: the end of a sequence at the column of
                // its key; the caller checks that the line continues it.
                _ => break,
            }
        }
        self.depth -= 1;
        Some(Doc::Array(items))
    }

    /// The content of an entry of the sequence at column `col`, starting at
    /// column `at` of the current line.
    fn item(&mut self, col: usize, at: usize, content: &'a str) -> Option<Doc<'a>> {
        if is_seq_entry(content) {
            return self.seq(at, content);
        }
        // `- {...}`, `- [...]` and `- word # comment` are scalars, not keys.
        if self.mode == Mode::Input
            && (content.starts_with(['{', '[']) || matches!(plain_end(content), Some((_, b'#'))))
        {
            self.pos += 1;
            return self.scalar(col, content);
        }
        match self.entry(content)? {
            Entry::Key(key, after) => self.map(at, key, after),
            Entry::Scalar => {
                self.pos += 1;
                self.scalar(col, content)
            }
        }
    }

    /// A scalar or empty flow collection written inline in the collection
    /// at column `col`: `s`, non-empty, is the rest of the line before the
    /// current one. Consumes a literal block scalar's lines.
    fn scalar(&mut self, col: usize, s: &'a str) -> Option<Doc<'a>> {
        if self.mode == Mode::Input {
            return self.input_scalar(col, s);
        }
        match s.as_bytes().first()? {
            b'"' => match double_quoted(s)? {
                (value, "") => Some(Doc::String(value)),
                _ => None,
            },
            b'\'' => match single_quoted(s)? {
                (value, "") => Some(Doc::String(value)),
                _ => None,
            },
            b'|' => self.block_scalar(col, s).map(|text| Doc::String(Cow::Owned(text))),
            b'{' => (s == "{}").then(|| Doc::Object(Vec::new())),
            b'[' => (s == "[]").then(|| Doc::Array(Vec::new())),
            _ if plain_start(s) && plain_end(s).is_none() => resolve_plain(s),
            _ => None,
        }
    }

    /// [`Self::scalar`] for a stack file.
    fn input_scalar(&mut self, col: usize, s: &'a str) -> Option<Doc<'a>> {
        let (value, rest) = match s.as_bytes().first()? {
            b'"' => double_quoted(s).map(|(v, rest)| (Doc::String(v), rest))?,
            b'\'' => single_quoted(s).map(|(v, rest)| (Doc::String(v), rest))?,
            b'{' | b'[' => self.flow(s)?,
            b'*' => self.alias(s)?,
            b'|' | b'>' => return self.block_scalar(col, s).map(|text| Doc::String(Cow::Owned(text))),
            _ => {
                let (text, rest) = match plain_end(s) {
                    None => (s, ""),
                    Some((i, b'#')) => (s.get(..i)?.trim_end_matches(' '), s.get(i..)?),
                    Some(_) => return None,
                };
                if !plain_start(text) {
                    return None;
                }
                (resolve_core(text)?, rest)
            }
        };
        comment_or_nothing(rest).then_some(value)
    }

    /// A flow collection written on one line at the start of `s`: its value
    /// and the text after its closing bracket.
    fn flow(&mut self, s: &'a str) -> Option<(Doc<'a>, &'a str)> {
        self.enter()?;
        let (close, is_map) = match s.as_bytes().first()? {
            b'[' => (b']', false),
            b'{' => (b'}', true),
            _ => return None,
        };
        let mut rest = s.get(1..)?.trim_start_matches(' ');
        let mut items = Vec::new();
        let mut entries = Vec::new();
        if rest.as_bytes().first() == Some(&close) {
            rest = rest.get(1..)?;
        } else {
            loop {
                if is_map {
                    let (key, after) = match rest.as_bytes().first()? {
                        b'"' => double_quoted(rest)?,
                        b'\'' => single_quoted(rest)?,
                        _ => {
                            let (token, after) = flow_plain(rest)?;
                            match resolve_core(token)? {
                                Doc::String(k) => (k, after),
                                _ => return None,
                            }
                        }
                    };
                    let after = after.strip_prefix(": ")?.trim_start_matches(' ');
                    let (value, after) = self.flow_item(after)?;
                    entries.push((key, value));
                    rest = after;
                } else {
                    let (value, after) = self.flow_item(rest)?;
                    items.push(value);
                    rest = after;
                }
                rest = rest.trim_start_matches(' ');
                match rest.as_bytes().first()? {
                    b',' => rest = rest.get(1..)?.trim_start_matches(' '),
                    &b if b == close => {
                        rest = rest.get(1..)?;
                        break;
                    }
                    _ => return None,
                }
                // No trailing comma, no empty entry.
                if rest.starts_with([',', ']', '}']) {
                    return None;
                }
            }
        }
        self.depth -= 1;
        if is_map {
            if has_duplicate_keys(&entries) {
                return None;
            }
            Some((Doc::Object(entries), rest))
        } else {
            Some((Doc::Array(items), rest))
        }
    }

    /// One value inside a flow collection, at the start of `s`.
    fn flow_item(&mut self, s: &'a str) -> Option<(Doc<'a>, &'a str)> {
        match s.as_bytes().first()? {
            b'"' => double_quoted(s).map(|(v, rest)| (Doc::String(v), rest)),
            b'\'' => single_quoted(s).map(|(v, rest)| (Doc::String(v), rest)),
            b'{' | b'[' => self.flow(s),
            _ => {
                let (token, rest) = flow_plain(s)?;
                Some((resolve_core(token)?, rest))
            }
        }
    }

    /// The content lines of a block scalar in the collection at column
    /// `parent`, from the current line on. The content indentation is that
    /// of the first non-blank line and must be deeper than `parent`; the
    /// block ends before the first non-blank line indented less.
    fn block_lines(&mut self, parent: usize, chomp: Chomp) -> Option<BlockLines<'a>> {
        let mut lines = Vec::new();
        let mut indent = None;
        let mut blanks = 0;
        let mut last_break = true;
        while let Some(&line) = self.lines.get(self.pos) {
            if line.is_empty() {
                blanks += 1;
                self.pos += 1;
                continue;
            }
            let spaces = line.len() - line.trim_start_matches(' ').len();
            // libyaml refuses a tab where it still expects indentation.
            if line.as_bytes().get(spaces) == Some(&b'\t') && indent.is_none_or(|width| spaces < width) {
                return None;
            }
            let width = match indent {
                None if spaces > parent => *indent.insert(spaces),
                None => break,
                Some(width) if spaces >= width => width,
                Some(_) => break,
            };
            lines.push((blanks, line.get(width..)?));
            blanks = 0;
            self.pos += 1;
            last_break = self.pos < self.lines.len() || self.final_newline;
        }
        // A block scalar without content lines: leave it to serde_yaml.
        indent?;
        // A text that ends inside a `|` or `|+` block without a line break:
        // the stack loader's parser keeps a final line break there that
        // libyaml (and the YAML spec) do not; leave it to the loader.
        if self.mode == Mode::Input && !last_break && !matches!(chomp, Chomp::Strip) {
            return None;
        }
        Some(BlockLines { lines, trailing: blanks, last_break, chomp })
    }

    /// A block scalar in the collection at column `parent` whose header
    /// (`|`, `>`, with `-` or `+`) is `header`, from the next line on.
    /// Literal (`|`): the lines as written. Folded (`>`, stack files only):
    /// a line break between two lines becomes a space, and `n` blank lines
    /// between them become `n` line breaks; lines indented more than the
    /// first (which keep their breaks) and blank lines before the first
    /// fall back.
    fn block_scalar(&mut self, parent: usize, header: &str) -> Option<String> {
        let folded = match header.as_bytes().first() {
            Some(b'|') => false,
            Some(b'>') => true,
            _ => return None,
        };
        let chomp = block_chomp(header.get(1..)?)?;
        let block = self.block_lines(parent, chomp)?;
        let mut out = String::new();
        for (i, &(blanks, text)) in block.lines.iter().enumerate() {
            if folded && (text.starts_with([' ', '\t']) || (i == 0 && blanks > 0)) {
                return None;
            }
            if i > 0 && !folded {
                out.push('\n');
            } else if i > 0 && blanks == 0 {
                out.push(' ');
            }
            out.extend(std::iter::repeat_n('\n', blanks));
            out.push_str(text);
        }
        Some(block.chomped(out))
    }
}

/// The content lines of a block scalar: each with the number of blank lines
/// before it, and its text without the indentation.
struct BlockLines<'a> {
    lines: Vec<(usize, &'a str)>,
    /// Blank lines after the last content line.
    trailing: usize,
    /// Whether the last content line ends with a line break.
    last_break: bool,
    chomp: Chomp,
}

impl BlockLines<'_> {
    /// `content` (the scalar without its final line break) chomped.
    fn chomped(&self, mut content: String) -> String {
        match self.chomp {
            Chomp::Strip => {}
            Chomp::Clip if self.last_break => content.push('\n'),
            Chomp::Keep if self.last_break => content.extend(std::iter::repeat_n('\n', self.trailing + 1)),
            Chomp::Clip | Chomp::Keep => {}
        }
        content
    }
}

/// Whether `s`, a value of a stack file's block mapping that starts with a
/// quote or a bracket, is a quoted scalar or flow collection as this reader
/// takes it, closed on its line with at most a comment after it (the key
/// index, `yaml::keys`, does not read such values but must know where
/// they end).
pub(super) fn closes_on_line(s: &str) -> bool {
    let mut reader = Parser::new(Vec::new(), true, false, Mode::Input);
    let rest = match s.as_bytes().first() {
        Some(b'"') => double_quoted(s).map(|(_, rest)| rest),
        Some(b'\'') => single_quoted(s).map(|(_, rest)| rest),
        Some(b'{' | b'[') => reader.flow(s).map(|(_, rest)| rest),
        _ => None,
    };
    rest.is_some_and(comment_or_nothing)
}

/// Whether what follows a value on its line is nothing, or a comment
/// separated from it by a space.
pub(super) fn comment_or_nothing(rest: &str) -> bool {
    rest.is_empty() || (rest.starts_with(' ') && rest.trim_start_matches(' ').starts_with('#'))
}

/// A plain scalar inside a flow collection at the start of `s`: the token
/// (spaces around it trimmed) and the text from the `,`, `]`, `}` or `:`
/// (followed by a space, one of those or the end) that ends it. Narrower
/// than YAML: no `#`, quote, anchor, alias, tag or other indicator anywhere
/// in it, and it starts like a block plain scalar.
fn flow_plain(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let end = (0..bytes.len()).find(|&i| match bytes[i] {
        b',' | b']' | b'}' => true,
        b':' => matches!(bytes.get(i + 1), None | Some(b' ' | b',' | b']' | b'}')),
        _ => false,
    })?;
    let token = s.get(..end)?.trim_end_matches(' ');
    // `[a -]`: the stack loader's parser refuses a `-` after a space right
    // before `,`, `]` or `}` (and `[a - ]` is not worth telling apart).
    if token.is_empty()
        || token.ends_with(" -")
        || !plain_start(token)
        || token.contains(['#', '"', '&', '*', '!', '|', '>', '%', '@', '`', '[', '{'])
    {
        return None;
    }
    Some((token, s.get(end..)?))
}

/// A plain scalar of a stack file, resolved as the stack loader resolves it
/// (`load::resolve_scalar`, the YAML 1.2 core schema); `None` for what
/// `Doc` cannot hold the same way (infinities, NaN).
fn resolve_core(s: &str) -> Option<Doc<'_>> {
    Some(match super::load::resolve_plain_core(s) {
        None => Doc::String(Cow::Borrowed(s)),
        Some(serde_yaml::Value::Null) => Doc::Null,
        Some(serde_yaml::Value::Bool(b)) => Doc::Bool(b),
        Some(serde_yaml::Value::Number(n)) => Doc::Number(match n.as_i64() {
            Some(i) => Number::from(i),
            None => Number::from_f64(n.as_f64()?)?,
        }),
        Some(_) => return None,
    })
}

/// The chomping indicator after a block scalar's `|` or `>`: none, `-` or
/// `+` alone (indentation indicators and comments fall back).
fn block_chomp(s: &str) -> Option<Chomp> {
    match s {
        "" => Some(Chomp::Clip),
        "-" => Some(Chomp::Strip),
        "+" => Some(Chomp::Keep),
        _ => None,
    }
}

/// An anchor or alias name the fast path takes: letters, digits, `_`, `-`.
fn is_anchor_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The name of `&name` when that is all of `s` (an anchor before a block).
pub(super) fn anchor(s: &str) -> Option<&str> {
    s.strip_prefix('&').filter(|name| is_anchor_name(name))
}

/// `*name` at the start of `s`: the name and the text after it.
pub(super) fn alias(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('*')?;
    let (name, rest) = body.split_at(body.find(' ').unwrap_or(body.len()));
    is_anchor_name(name).then_some((name, rest))
}

/// The weight of `doc` as the loader counts an alias of it (every node but
/// keys) and its scalars with keys (as the loader counts a value it reads).
fn counts(doc: &Doc<'_>) -> (usize, usize) {
    match doc {
        Doc::Array(items) => items.iter().map(counts).fold((1, 0), |(w, s), (iw, is)| (w + iw, s + is)),
        Doc::Object(entries) => {
            entries.iter().map(|(_, v)| counts(v)).fold((1, entries.len()), |(w, s), (iw, is)| (w + iw, s + is))
        }
        _ => (1, 1),
    }
}

/// Whether `s` (the rest of a line at its column) is a block sequence entry.
pub(super) fn is_seq_entry(s: &str) -> bool {
    s == "-" || s.starts_with("- ")
}

/// Splits `key:` off `s` (text at the start of a collection entry), or says
/// it is not a mapping entry; `None` when unsure.
fn split_entry(s: &str) -> Option<Entry<'_>> {
    let (key, after) = match s.as_bytes().first()? {
        b'"' => double_quoted(s)?,
        b'\'' => single_quoted(s)?,
        _ => match plain_end(s) {
            None => return Some(Entry::Scalar),
            Some((colon, b':')) => {
                let key = s.get(..colon)?;
                if !plain_start(key) || key.ends_with(' ') {
                    return None;
                }
                (Cow::Borrowed(key), s.get(colon..)?)
            }
            // A comment before any `: `.
            Some(_) => return None,
        },
    };
    if after.is_empty() {
        return Some(Entry::Scalar);
    }
    let rest = after.strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) || s.len() - after.len() > MAX_KEY {
        return None;
    }
    Some(Entry::Key(key, rest))
}

/// Where a plain scalar written on one line would stop short of the end of
/// the line `s`: the byte index of the first `:` followed by a space or the
/// end (`b':'`), or of the first space followed by `#` (`b'#'`).
fn plain_end(s: &str) -> Option<(usize, u8)> {
    let bytes = s.as_bytes();
    memchr::memchr2_iter(b':', b' ', bytes).find_map(|i| match (bytes[i], bytes.get(i + 1)) {
        (b':', None | Some(b' ')) => Some((i, b':')),
        (b' ', Some(b'#')) => Some((i, b'#')),
        _ => None,
    })
}

/// Whether a plain scalar can start `s`: a character that is no indicator
/// (`-` only before a non-space).
fn plain_start(s: &str) -> bool {
    // Bytes: a non-ASCII character's first byte is not ASCII either.
    match *s.as_bytes() {
        [] => false,
        [b'-', ref rest @ ..] => rest.first().is_some_and(|&b| b != b' '),
        [b, ..] if b.is_ascii() => {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'$' | b'(' | b')' | b'+' | b'.' | b'/' | b';' | b'<' | b'=' | b'\\' | b'^' | b'_' | b'~'
                )
        }
        // Any other printable character (checked for the whole text).
        [_, ..] => true,
    }
}

/// A double-quoted scalar at the start of `s`, closed on the same line:
/// its value and the text after the closing quote.
fn double_quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut rest = s.get(1..)?;
    let mut out = String::new();
    loop {
        let at = rest.find(['"', '\\'])?;
        let tail = rest.get(at..)?;
        if let Some(after) = tail.strip_prefix('"') {
            // No escape before the closing quote: the text itself.
            if out.is_empty() && rest.len() + 1 == s.len() {
                return Some((Cow::Borrowed(rest.get(..at)?), after));
            }
            out.push_str(rest.get(..at)?);
            return Some((Cow::Owned(out), after));
        }
        out.push_str(rest.get(..at)?);
        let escaped = tail.get(2..)?;
        let (c, digits) = match tail.as_bytes().get(1)? {
            b'0' => ('\0', 0),
            b'a' => ('\u{7}', 0),
            b'b' => ('\u{8}', 0),
            b't' => ('\t', 0),
            b'n' => ('\n', 0),
            b'v' => ('\u{B}', 0),
            b'f' => ('\u{C}', 0),
            b'r' => ('\r', 0),
            b'e' => ('\u{1B}', 0),
            b' ' => (' ', 0),
            b'"' => ('"', 0),
            b'/' => ('/', 0),
            b'\\' => ('\\', 0),
            b'N' => ('\u{85}', 0),
            b'_' => ('\u{A0}', 0),
            b'L' => ('\u{2028}', 0),
            b'P' => ('\u{2029}', 0),
            b'x' => (hex_escape(escaped, 2)?, 2),
            b'u' => (hex_escape(escaped, 4)?, 4),
            b'U' => (hex_escape(escaped, 8)?, 8),
            _ => return None,
        };
        out.push(c);
        rest = escaped.get(digits..)?;
    }
}

/// The character of the `len` hex digits starting `s` (surrogates and
/// values beyond U+10FFFF, which libyaml refuses, are `None`).
fn hex_escape(s: &str, len: usize) -> Option<char> {
    let digits = s.get(..len)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(digits, 16).ok()?)
}

/// A single-quoted scalar at the start of `s`, closed on the same line:
/// its value and the text after the closing quote.
fn single_quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut rest = s.get(1..)?;
    let mut out = String::new();
    loop {
        let at = rest.find('\'')?;
        let after = rest.get(at + 1..)?;
        match after.strip_prefix('\'') {
            Some(more) => {
                out.push_str(rest.get(..at)?);
                out.push('\'');
                rest = more;
            }
            // No `''` before the closing quote: the text itself.
            None if out.is_empty() && rest.len() + 1 == s.len() => {
                return Some((Cow::Borrowed(rest.get(..at)?), after));
            }
            None => {
                out.push_str(rest.get(..at)?);
                return Some((Cow::Owned(out), after));
            }
        }
    }
}

// ------------------------------------------------------- plain scalar values
//
// What serde_yaml 0.9 does with an untagged plain scalar when the target is
// a `serde_json::Value` (`visit_untagged_scalar` and the helpers it calls,
// restated here so the fast path resolves every plain scalar exactly alike).

/// The value of a plain scalar; `None` for integers that need 128 bits
/// (serde_json refuses those: serde_yaml's error is the right answer).
fn resolve_plain(s: &str) -> Option<Doc<'_>> {
    match s {
        "null" | "Null" | "NULL" | "~" => return Some(Doc::Null),
        "true" | "True" | "TRUE" => return Some(Doc::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Doc::Bool(false)),
        _ => {}
    }
    // Integers and finite floats start with a digit, a sign or a dot (Rust's
    // float syntax also takes `inf` and `nan`, which are not finite).
    if !s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return Some(Doc::String(Cow::Borrowed(s)));
    }
    if let Some(n) = parse_unsigned_int(s, u64::from_str_radix) {
        return Some(Doc::Number(n.into()));
    }
    if let Some(n) = parse_negative_int(s, i64::from_str_radix) {
        return Some(Doc::Number(n.into()));
    }
    if parse_unsigned_int(s, u128::from_str_radix).is_some() || parse_negative_int(s, i128::from_str_radix).is_some() {
        return None;
    }
    if !digits_but_not_number(s)
        && let Some(f) = parse_f64(s)
    {
        // serde_json has no infinities or NaN: they become null.
        return Some(Number::from_f64(f).map_or(Doc::Null, Doc::Number));
    }
    Some(Doc::String(Cow::Borrowed(s)))
}

fn parse_unsigned_int<T>(s: &str, from_str_radix: fn(&str, u32) -> Result<T, std::num::ParseIntError>) -> Option<T> {
    let unpositive = s.strip_prefix('+').unwrap_or(s);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unpositive.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Ok(n) = from_str_radix(rest, radix) {
                return Some(n);
            }
        }
    }
    if unpositive.starts_with(['+', '-']) || digits_but_not_number(s) {
        return None;
    }
    from_str_radix(unpositive, 10).ok()
}

fn parse_negative_int<T>(s: &str, from_str_radix: fn(&str, u32) -> Result<T, std::num::ParseIntError>) -> Option<T> {
    for (prefix, radix) in [("-0x", 16), ("-0o", 8), ("-0b", 2)] {
        if let Some(rest) = s.strip_prefix(prefix)
            && let Ok(n) = from_str_radix(&format!("-{rest}"), radix)
        {
            return Some(n);
        }
    }
    if digits_but_not_number(s) {
        return None;
    }
    from_str_radix(s, 10).ok()
}

fn parse_f64(s: &str) -> Option<f64> {
    let unpositive = match s.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => s,
    };
    if let ".inf" | ".Inf" | ".INF" = unpositive {
        return Some(f64::INFINITY);
    }
    if let "-.inf" | "-.Inf" | "-.INF" = s {
        return Some(f64::NEG_INFINITY);
    }
    if let ".nan" | ".NaN" | ".NAN" = s {
        return Some(f64::NAN);
    }
    unpositive.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Leading zeros followed by digits: a string in YAML 1.2.
fn digits_but_not_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    s.len() > 1 && s.starts_with('0') && s.bytes().skip(1).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::super::files_under;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::path::Path;

    /// [`parse`] as a JSON value: what the tests compare with serde_yaml.
    fn parse_json(text: &str) -> Result<Value, serde_yaml::Error> {
        parse(text).map(|doc| doc.to_json())
    }

    /// Equal values with the same key order (`Map` equality ignores order).
    fn identical(a: &Value, b: &Value) -> bool {
        a == b && serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
    }

    /// Asserts `parse_json` agrees with serde_yaml on `text`; returns the
    /// fast path's answer.
    #[track_caller]
    fn check(text: &str) -> Option<Value> {
        let expected = serde_yaml::from_str::<Value>(text);
        let got = parse_json(text);
        match (&got, &expected) {
            (Ok(a), Ok(b)) => assert!(identical(a, b), "{text:?}: fast {a}, serde_yaml {b}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{text:?}: fast {got:?}, serde_yaml {expected:?}"),
        }
        parse_subset(text)
    }

    /// The fast path takes `text` and gives `expected` (as serde_yaml does).
    #[track_caller]
    fn fast(text: &str, expected: Value) {
        match check(text) {
            Some(v) => assert!(identical(&v, &expected), "{text:?}: got {v}, expected {expected}"),
            None => panic!("{text:?}: fell back"),
        }
    }

    /// The fast path leaves `text` to serde_yaml (which gives the same).
    #[track_caller]
    fn falls_back(text: &str) {
        assert_eq!(check(text), None, "{text:?} must fall back");
    }

    /// The insta snapshot body: what follows the second `---` line.
    fn snapshot_body(text: &str) -> Option<&str> {
        let rest = text.strip_prefix("---\n")?;
        let end = rest.find("\n---\n")?;
        rest.get(end + 5..)
    }

    /// Every snapshot body (rendered files and CLI output alike), every
    /// YAML test fixture and built-in stack: `(name, text, is rendered YAML)`.
    fn corpus() -> Vec<(String, String, bool)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = Vec::new();
        for dir in ["snapshots", "tests/fixtures", "stacks"] {
            files_under(&root.join(dir), &mut paths);
        }
        paths.sort();
        let mut docs = Vec::new();
        for path in paths {
            let name = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            if name.ends_with(".snap") {
                let Some(body) = snapshot_body(&text) else { continue };
                let file = name.trim_start_matches("snapshots/");
                let rendered = file.contains("__") && (file.ends_with(".yaml.snap") || file.ends_with(".yml.snap"));
                docs.push((name.clone(), body.to_string(), rendered));
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                docs.push((name, text, false));
            }
        }
        docs
    }

    #[test]
    fn agrees_with_serde_yaml_on_snapshots_and_fixtures() {
        let docs = corpus();
        assert!(docs.len() > 150, "only {} documents found", docs.len());
        let (mut rendered, mut taken) = (0, 0);
        for (name, text, is_rendered) in &docs {
            let fast = check(text);
            if *is_rendered {
                rendered += 1;
                if fast.is_some() {
                    taken += 1;
                } else {
                    eprintln!("fell back: {name}");
                }
            }
            // Variants: without the header comment, without the final line
            // break, cut in the middle, with one line dropped or indented
            // by one more space, with CRLF line breaks.
            let lines: Vec<&str> = text.lines().collect();
            let mid = lines.len() / 2;
            let mut variants = vec![
                lines.iter().skip(1).map(|l| format!("{l}\n")).collect::<String>(),
                text.trim_end_matches('\n').to_string(),
                lines.iter().take(mid).map(|l| format!("{l}\n")).collect(),
                text.replace('\n', "\r\n"),
            ];
            let third = lines.len() / 3;
            if lines.get(third).is_some() {
                let mut dropped = lines.clone();
                dropped.remove(third);
                variants.push(dropped.join("\n"));
                let shifted: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| if i == third { format!(" {l}") } else { l.to_string() })
                    .collect();
                variants.push(shifted.join("\n"));
            }
            for v in &variants {
                check(v);
            }
        }
        eprintln!("fast path took {taken} of {rendered} rendered YAML snapshots ({} documents in all)", docs.len());
        assert!(rendered >= 100, "only {rendered} rendered YAML snapshots found");
        assert!(taken * 10 >= rendered * 9, "fast path took only {taken} of {rendered} rendered YAML snapshots");
    }

    #[test]
    fn typical_output_takes_the_fast_path() {
        fast(
            "# Generated by stackgen from stack x (environment prod). Do not edit.\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: worker\n  labels:\n    app.kubernetes.io/name: worker\n\
             spec:\n  replicas: 5\n  template:\n    spec:\n      containers:\n        - name: worker\n          image: \"ghcr.io/x:0.1.0\"\n\
             \x20         args:\n            - celery\n            - \"-A\"\n          env:\n            - name: A\n              valueFrom:\n\
             \x20               secretKeyRef:\n                  optional: true\n          resources:\n            requests:\n              cpu: 100m\n\
             \x20     volumes:\n        - name: tmp\n          emptyDir: {}\n",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "worker", "labels": {"app.kubernetes.io/name": "worker"}},
                "spec": {"replicas": 5, "template": {"spec": {
                    "containers": [{"name": "worker", "image": "ghcr.io/x:0.1.0", "args": ["celery", "-A"],
                        "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"optional": true}}}],
                        "resources": {"requests": {"cpu": "100m"}}}],
                    "volumes": [{"name": "tmp", "emptyDir": {}}]}}}
            }),
        );
        fast(
            "data:\n  \"10-extensions.sql\": |\n    -- comment\n    CREATE EXTENSION \"citext\";\n  b: x\n",
            json!({"data": {"10-extensions.sql": "-- comment\nCREATE EXTENSION \"citext\";\n", "b": "x"}}),
        );
        // Key order is kept as written.
        fast("z: 1\na: 2\nm: 3\n", json!({"z": 1, "a": 2, "m": 3}));
    }

    #[test]
    fn sequences_and_nesting() {
        fast("a:\n- x\n- y\nb: 1\n", json!({"a": ["x", "y"], "b": 1}));
        fast("a:\n  - x\n  -\n  - - y\n    - z\n", json!({"a": ["x", null, ["y", "z"]]}));
        fast("- a: 1\n  b:\n    c: 2\n- d\n", json!([{"a": 1, "b": {"c": 2}}, "d"]));
        fast("- a:\n  - x\n  b: 1\n", json!([{"a": ["x"], "b": 1}]));
        fast("- a:\n- b\n", json!([{"a": null}, "b"]));
        fast("-\n  a: 1\n-\n", json!([{"a": 1}, null]));
        fast("-   a: 1\n    b: 2\n", json!([{"a": 1, "b": 2}]));
        fast("- -\n", json!([[null]]));
        fast("- {}\n- []\n- |\n  x\n", json!([{}, [], "x\n"]));
        fast("  a: 1\n  b: 2\n", json!({"a": 1, "b": 2}));
        fast("a:\nb:\n  # comment\nc: x\n", json!({"a": null, "b": null, "c": "x"}));
        fast("a: {}\nb: []\n", json!({"a": {}, "b": []}));
        fast("a:\n\n  # c\n\n  b: 1\n", json!({"a": {"b": 1}}));
        // serde_yaml refuses 128 levels; the fast path stops at 64.
        let deep = |n: usize| (0..n).map(|i| format!("{}k:\n", " ".repeat(i))).collect::<String>();
        check(&deep(60)).expect("60 levels");
        falls_back(&deep(70));
        falls_back(&deep(130));
    }

    #[test]
    fn quoted_scalars_and_keys() {
        fast(
            r#"a: "x\"y\\z\n\t\0\x41\u00e9\U0001F600\N\_\L\P\/\ \a\b\e\f\r\v""#,
            json!({"a": "x\"y\\z\n\t\0Aé😀\u{85}\u{a0}\u{2028}\u{2029}/ \u{7}\u{8}\u{1b}\u{c}\r\u{b}"}),
        );
        fast("a: 'it''s \"x\" \\n'\n", json!({"a": "it's \"x\" \\n"}));
        fast("\"k: #\": 1\n'q''k': 2\n\"\": 3\n", json!({"k: #": 1, "q'k": 2, "": 3}));
        fast("- \"a\": 1\n  'b': \"2\"\n", json!([{"a": 1, "b": "2"}]));
        fast("a: \"  spaced  \"\n", json!({"a": "  spaced  "}));
        fast("a: \"é😀\"\nb: ключ\n", json!({"a": "é😀", "b": "ключ"}));
        for unusual in [r#"a: "\q""#, r#"a: "\uD800""#, r#"a: "\x4""#, r#"a: "\U00110000""#, r#"a: "\é""#] {
            falls_back(unusual);
        }
        falls_back("a: \"open\n  continued\"\n");
        falls_back("a: 'open\n  continued'\n");
        falls_back("a: \"x\" # comment\n");
        falls_back("a: \"x\"y\n");
        falls_back("\"a\" : 1\n");
        falls_back("\"a\":1\n");
    }

    #[test]
    fn plain_scalars_resolve_like_serde_yaml() {
        for (s, expected) in [
            ("x", json!("x")),
            ("null", Value::Null),
            ("Null", Value::Null),
            ("NULL", Value::Null),
            ("~", Value::Null),
            ("nULL", json!("nULL")),
            ("true", json!(true)),
            ("True", json!(true)),
            ("FALSE", json!(false)),
            ("tRUE", json!("tRUE")),
            ("yes", json!("yes")),
            ("on", json!("on")),
            ("Off", json!("Off")),
            ("y", json!("y")),
            ("n", json!("n")),
            ("5", json!(5)),
            ("0", json!(0)),
            ("-1", json!(-1)),
            ("+1", json!(1)),
            ("-0", json!(0)),
            ("0755", json!("0755")),
            ("-0755", json!("-0755")),
            ("0o17", json!(15)),
            ("0x1F", json!(31)),
            ("-0x1F", json!(-31)),
            ("0b101", json!(5)),
            ("0x", json!("0x")),
            ("1e3", json!(1000.0)),
            ("1.0", json!(1.0)),
            ("-1.5", json!(-1.5)),
            (".5", json!(0.5)),
            ("1.", json!(1.0)),
            ("+.5", json!(0.5)),
            (".inf", Value::Null),
            ("-.Inf", Value::Null),
            (".NaN", Value::Null),
            ("inf", json!("inf")),
            ("nan", json!("nan")),
            ("Infinity", json!("Infinity")),
            ("100m", json!("100m")),
            ("64Mi", json!("64Mi")),
            ("12:30", json!("12:30")),
            ("1_000", json!("1_000")),
            ("2024-01-01", json!("2024-01-01")),
            ("9223372036854775807", json!(9_223_372_036_854_775_807_i64)),
            ("18446744073709551615", json!(18_446_744_073_709_551_615_u64)),
            ("-9223372036854775808", json!(-9_223_372_036_854_775_808_i64)),
            ("+-1", json!("+-1")),
            ("--1", json!("--1")),
            ("-x", json!("-x")),
            ("a:b", json!("a:b")),
            ("a#b", json!("a#b")),
            ("http://x:80/a?b=c", json!("http://x:80/a?b=c")),
            ("a, b [c] {d}", json!("a, b [c] {d}")),
            ("x'y\"z", json!("x'y\"z")),
            ("/var/lib", json!("/var/lib")),
            ("$(VAR)", json!("$(VAR)")),
            ("<<", json!("<<")),
            ("...", json!("...")),
            ("---", json!("---")),
            ("\u{a0}x", json!("\u{a0}x")),
        ] {
            fast(&format!("k: {s}\n"), json!({ "k": expected }));
            fast(&format!("- {s}\n"), json!([expected]));
        }
        // Integers beyond 64 bits: serde_json refuses them (an error).
        for s in ["18446744073709551616", "-9223372036854775809", "0x10000000000000000"] {
            falls_back(&format!("k: {s}\n"));
        }
        // Plain keys are strings whatever they look like.
        fast(
            "1: a\ntrue: b\nnull: c\n~: d\n0x1F: e\n-1: f\n",
            json!({"1": "a", "true": "b", "null": "c", "~": "d", "0x1F": "e", "-1": "f"}),
        );
    }

    #[test]
    fn literal_block_chomping() {
        fast("a: |\n  x\n  y\nb: 1\n", json!({"a": "x\ny\n", "b": 1}));
        fast("a: |-\n  x\n  y\nb: 1\n", json!({"a": "x\ny", "b": 1}));
        fast("a: |+\n  x\n  y\nb: 1\n", json!({"a": "x\ny\n", "b": 1}));
        fast("a: |\n  x\n\n\nb: 1\n", json!({"a": "x\n", "b": 1}));
        fast("a: |-\n  x\n\n\nb: 1\n", json!({"a": "x", "b": 1}));
        fast("a: |+\n  x\n\n\nb: 1\n", json!({"a": "x\n\n\n", "b": 1}));
        fast("a: |+\n  x\n\n\n", json!({"a": "x\n\n\n"}));
        fast("a: |\n  x\n\n\n", json!({"a": "x\n"}));
        fast("a: |+\n  x\n\n# c\nb: 1\n", json!({"a": "x\n\n", "b": 1}));
        fast("a: |\n\n  x\n\n  y\n", json!({"a": "\nx\n\ny\n"}));
        fast(
            "a: |\n  x\n    indented\n  # not a comment\n  - y\n",
            json!({"a": "x\n  indented\n# not a comment\n- y\n"}),
        );
        fast("a: |\n  tab\there\n", json!({"a": "tab\there\n"}));
        fast("a: |\n  x", json!({"a": "x"}));
        fast("a: |+\n  x", json!({"a": "x"}));
        fast("a: |-\n  x", json!({"a": "x"}));
        fast("- |\n  x\n- |-\n  y\n", json!(["x\n", "y"]));
        fast("- a: |\n    x\n  b: 1\n", json!([{"a": "x\n", "b": 1}]));
        fast("a:\n- |\n  x\n", json!({"a": ["x\n"]}));
        // Empty block scalars, indentation indicators, folded scalars,
        // comments after the header: serde_yaml's business.
        for text in [
            "a: |\nb: 1\n",
            "a: |+\n\nb: 1\n",
            "a: |\n",
            "a: |2\n   x\n",
            "a: |-2\n   x\n",
            "a: >\n  x\n",
            "a: | # c\n  x\n",
            "- a: |\n  x\n",
        ] {
            falls_back(text);
        }
        // Less indented content ends the block; what follows must fit.
        falls_back("a: |\n    x\n  y\n");
        falls_back("a: |\n  x\n \n  y\n");
    }

    #[test]
    fn fallback_triggers() {
        for text in [
            // Whitespace and line breaks.
            "a:\n\tb: 1\n",
            "a: b\t\n",
            "a: b \n",
            "a: 1\r\nb: 2\r\n",
            "\u{feff}a: 1\n",
            "a: x\u{85}y\n",
            "a: x\u{2028}y\n",
            "a: \u{1}\n",
            "a: \u{7f}\n",
            // Anchors, aliases, tags, complex keys, flow collections.
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "? a\n: b\n",
            "a: {b: 1}\n",
            "a: [1, 2]\n",
            "a: { }\n",
            "a: >-\n  x\n",
            // Documents and directives.
            "---\na: 1\n",
            "a: 1\n...\n",
            "%YAML 1.2\n---\na: 1\n",
            "a: 1\n---\nb: 2\n",
            // Plain scalars the subset does not read.
            "a: b #c\n",
            "a: b:\n",
            "a: x\n  continued\n",
            "- x\n  continued\n",
            "a: @x\n",
            "a: `x`\n",
            "a: %x\n",
            "a: ?x\n",
            "a: :x\n",
            "a #b: c\n",
            "a : b\n",
            "a:b\n",
            // Duplicate keys, empty or scalar documents.
            "a: 1\na: 2\n",
            "a: 1\n\"a\": 2\n",
            "",
            "\n\n",
            "# only a comment\n",
            "# Generated by stackgen\n",
            "hello\n",
            "\"hello\"\n",
            "[]\n",
            "- a: 1\n- a: 1\n  a: 2\n",
            // Errors and odd indentation.
            "key: a: b\n",
            "a: - x\n",
            "a:\n  b: 1\n c: 2\n",
            "a:\n    b: 1\n  c: 2\n",
            "a:\n  - x\n  b: 1\n",
            "a: 1\n- x\n",
            "- x\nb: 1\n",
            "a: 1\n  b: 2\n",
            "- a: 1\n   b: 2\n",
            "- a: 1\n  - b\n",
            "a:\n  x\n",
            "-\n  x\n",
        ] {
            falls_back(text);
        }
        // Long keys: libyaml refuses implicit keys over 1024 characters.
        falls_back(&format!("{}: 1\n", "k".repeat(1001)));
        falls_back(&format!("{}: 1\n", "k".repeat(1100)));
        fast(&format!("{}: 1\n", "k".repeat(1000)), json!({ "k".repeat(1000): 1 }));
    }

    #[test]
    fn documents_the_way_files_are_written() {
        fast("# Generated by stackgen from stack a (environment b). Do not edit.\na: 1\n", json!({"a": 1}));
        fast("a: 1", json!({"a": 1}));
        fast("a:", json!({"a": null}));
        fast("\n\n# c\n  # indented comment\na: 1\n\n# trailing\n", json!({"a": 1}));
        fast("a: 1\n# c\tc\n", json!({"a": 1}));
        fast("a:    spaced\n", json!({"a": "spaced"}));
    }

    // ------------------------------------------------------------ property

    /// Scalars YAML gives a meaning to, or that break a line's structure.
    const TRICKY: &[&str] = &[
        "x",
        "name",
        "",
        " ",
        "a b",
        " lead",
        ":",
        "a:",
        "a: b",
        "a:b",
        "#",
        "a #b",
        "a#b",
        "'",
        "\"",
        "x'y",
        "\\",
        "\\n",
        "1",
        "-1",
        "+1",
        "0",
        "0755",
        "0x1F",
        "0o7",
        "1e3",
        "1.0",
        ".5",
        ".inf",
        "-.inf",
        ".nan",
        "12:30",
        "18446744073709551616",
        "9223372036854775807",
        "on",
        "off",
        "yes",
        "no",
        "y",
        "null",
        "Null",
        "~",
        "true",
        "False",
        "é",
        "日本",
        "😀",
        "\u{a0}",
        "- x",
        "-x",
        "-",
        "--",
        "---",
        "...",
        "?",
        "? x",
        "&a",
        "*a",
        "!t",
        "|",
        "|-",
        ">",
        "%",
        "@",
        "`",
        "{}",
        "[]",
        "{a: 1}",
        "[1]",
        "a,b",
        "a\nb",
        "tab\there",
        "\u{85}",
        "\u{1}",
        "<<",
        "=",
        "100m",
        "$(V)",
        "/p",
    ];

    /// Lines of literal block content.
    const BLOCK_LINES: &[&str] = &["x", "  y", "# not a comment", "", "", "a: b", "- z", "\"q\"", "tab\tin", "é"];

    #[derive(Debug, Clone)]
    enum Tree {
        /// Text and style: 0 plain, 1 double-quoted, 2 single-quoted.
        Scalar(String, u8),
        /// Content lines and chomping (0 clip, 1 strip, 2 keep).
        Literal(Vec<String>, u8),
        EmptyMap,
        EmptySeq,
        /// Entries, indentation step, sequences at the key's column.
        Map(Vec<(String, u8, Tree)>, usize, bool),
        /// Items, indentation step, compact items (`- a: 1`).
        Seq(Vec<Tree>, usize, bool),
    }

    fn scalar() -> impl Strategy<Value = (String, u8)> {
        (prop::sample::select(TRICKY), 0u8..3).prop_map(|(s, style)| (s.to_string(), style))
    }

    fn tree() -> impl Strategy<Value = Tree> {
        let leaf = prop_oneof![
            8 => scalar().prop_map(|(s, style)| Tree::Scalar(s, style)),
            1 => Just(Tree::EmptyMap),
            1 => Just(Tree::EmptySeq),
            2 => (prop::collection::vec(prop::sample::select(BLOCK_LINES), 0..4), 0u8..3)
                .prop_map(|(lines, chomp)| Tree::Literal(lines.iter().map(|l| l.to_string()).collect(), chomp)),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                (prop::collection::vec((scalar(), inner.clone()), 1..4), 1usize..4, any::<bool>()).prop_map(
                    |(entries, step, indentless)| Tree::Map(
                        entries.into_iter().map(|((k, style), v)| (k, style, v)).collect(),
                        step,
                        indentless
                    )
                ),
                (prop::collection::vec(inner, 1..4), 1usize..4, any::<bool>())
                    .prop_map(|(items, step, compact)| Tree::Seq(items, step, compact)),
            ]
        })
    }

    fn emit_scalar(s: &str, style: u8) -> String {
        match style {
            0 => s.to_string(),
            1 => {
                let mut out = String::from("\"");
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\u{85}' => out.push_str("\\N"),
                        c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
                        'é' => out.push_str("\\u00E9"),
                        c => out.push(c),
                    }
                }
                out.push('"');
                out
            }
            _ => format!("'{}'", s.replace('\'', "''")),
        }
    }

    /// Writes what follows `key:` or `-` for a value of the collection at `col`.
    fn emit_inline(t: &Tree, col: usize, step: usize, out: &mut String) -> bool {
        match t {
            Tree::Scalar(s, style) => out.push_str(&format!(" {}\n", emit_scalar(s, *style))),
            Tree::EmptyMap => out.push_str(" {}\n"),
            Tree::EmptySeq => out.push_str(" []\n"),
            Tree::Literal(lines, chomp) => {
                out.push_str([" |\n", " |-\n", " |+\n"][usize::from(*chomp % 3)]);
                for line in lines {
                    if !line.is_empty() {
                        out.push_str(&" ".repeat(col + step));
                        out.push_str(line);
                    }
                    out.push('\n');
                }
            }
            Tree::Map(..) | Tree::Seq(..) => return false,
        }
        true
    }

    /// Writes a collection at column `col`; `first` replaces the indentation
    /// of its first line (a compact item's `- `).
    fn emit_block(t: &Tree, col: usize, mut first: Option<String>, out: &mut String) {
        let prefix = |first: &mut Option<String>| first.take().unwrap_or_else(|| " ".repeat(col));
        match t {
            Tree::Map(entries, step, indentless) => {
                for (key, style, value) in entries {
                    out.push_str(&prefix(&mut first));
                    out.push_str(&emit_scalar(key, *style));
                    out.push(':');
                    if !emit_inline(value, col, *step, out) {
                        out.push('\n');
                        let at = if *indentless && matches!(value, Tree::Seq(..)) { col } else { col + step };
                        emit_block(value, at, None, out);
                    }
                }
            }
            Tree::Seq(items, step, compact) => {
                for item in items {
                    let dash = format!("{}-", prefix(&mut first));
                    out.push_str(&dash);
                    if emit_inline(item, col, *step, out) {
                        continue;
                    }
                    if *compact {
                        out.truncate(out.len() - dash.len());
                        emit_block(item, col + 2, Some(format!("{dash} ")), out);
                    } else {
                        out.push('\n');
                        emit_block(item, col + step, None, out);
                    }
                }
            }
            _ => {
                out.push_str(&prefix(&mut first));
                if !emit_inline(t, col, 2, out) {
                    out.push('\n');
                }
            }
        }
    }

    /// Applies one small edit to a document, the way a broken template might.
    fn mutate(text: &str, kind: u8, at: usize, n: usize) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let i = if lines.is_empty() { 0 } else { at % lines.len() };
        match kind {
            0 => lines.insert(i, format!("{}# comment", " ".repeat(n))),
            1 => lines.insert(i, String::new()),
            2 => {
                if let Some(l) = lines.get_mut(i) {
                    l.push(' ');
                }
            }
            3 => {
                if let Some(l) = lines.get_mut(i)
                    && l.starts_with(' ')
                {
                    l.remove(0);
                }
            }
            4 => {
                if let Some(l) = lines.get_mut(i) {
                    l.insert(0, ' ');
                }
            }
            5 => {
                if let Some(l) = lines.get_mut(i)
                    && l.starts_with(' ')
                {
                    l.replace_range(0..1, "\t");
                }
            }
            6 => return text.trim_end_matches('\n').to_string(),
            7 => lines.insert(0, "# Generated by stackgen from stack x (environment y). Do not edit.".to_string()),
            8 => {
                if let Some(l) = lines.get(i).cloned() {
                    lines.insert(i, l);
                }
            }
            9 => lines.insert(i, format!("{}- x", " ".repeat(n))),
            _ => return text.to_string(),
        }
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Shapes of lines for the line-level property: `K` and `V` stand for a
    /// key and a value.
    const SHAPES: &[&str] = &[
        "K: V", "K: V", "K:", "- V", "- V", "-", "- K: V", "- K: V", "- K:", "# c", "", "V", "- - V", "K:  V",
        "-   K: V", "V V", "\tK: V",
    ];
    const KEYS: &[&str] =
        &["a", "b", "k", "\"q\"", "'s'", "1", "~", "é", "a b", "-x", "\"\"", "x:y", "\u{a0}a", "a #c", "&a a", "? a"];
    const VALUES: &[&str] = &[
        "v",
        "1",
        "-1",
        "0x1F",
        "~",
        "null",
        "true",
        "on",
        "1e3",
        ".inf",
        "\"s\\tq\"",
        "\"\\x41\\u00e9\"",
        "'it''s'",
        "{}",
        "[]",
        "|",
        "|-",
        "|+",
        "é",
        "a b",
        "a:b",
        "a#b",
        "0755",
        "12:30",
        "-",
        "- v",
        "\"a\": b",
        "x\u{a0}#c",
        "\ttab",
        "t\tin",
        "text",
        "  text",
        "*a",
        "[a]",
    ];

    fn line() -> impl Strategy<Value = String> {
        (
            prop::sample::select(&[0usize, 0, 0, 1, 2, 2, 2, 3, 4, 4, 6][..]),
            prop::sample::select(SHAPES),
            prop::sample::select(KEYS),
            prop::sample::select(VALUES),
        )
            .prop_map(|(indent, shape, k, v)| {
                format!("{}{}", " ".repeat(indent), shape.replace('K', k).replace('V', v))
            })
    }

    /// `parse_json` and serde_yaml agree on `text`.
    fn agree(text: &str) -> Result<(), TestCaseError> {
        let expected = serde_yaml::from_str::<Value>(text);
        let got = parse_json(text);
        match (&got, &expected) {
            (Ok(a), Ok(b)) => prop_assert!(identical(a, b), "{:?}: fast {}, serde_yaml {}", text, a, b),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "{:?}: fast {:?}, serde_yaml {:?}", text, got, expected),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Documents from a grammar of block collections, scalars written
        /// plain (possibly invalid) or quoted, then possibly broken by an edit.
        #[test]
        fn random_documents_agree_with_serde_yaml(
            t in tree(),
            kind in 0u8..16,
            at in 0usize..64,
            n in 0usize..6,
        ) {
            let mut text = String::new();
            emit_block(&t, 0, None, &mut text);
            agree(&mutate(&text, kind, at, n))?;
        }

        /// Random lines of entry shapes at random indentation.
        #[test]
        fn random_lines_agree_with_serde_yaml(lines in prop::collection::vec(line(), 1..10), newline in any::<bool>()) {
            let mut text = lines.join("\n");
            if newline {
                text.push('\n');
            }
            agree(&text)?;
        }
    }
}
