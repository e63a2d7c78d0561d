//! User-facing problems in what the user wrote: file, line, column, the
//! field path, what was found and expected, and a did-you-mean.
//!
//! Rendered like rustc/just: a headline, a `-->` location, the source line
//! with a caret under the offending token, then `=` notes.

use std::fmt;

use crate::yaml::Pos;

/// How bad a diagnostic is. Errors stop the run; warnings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Display path of the file the problem is in.
    pub file: String,
    pub pos: Option<Pos>,
    /// The field path, e.g. `services.app.replicas`.
    pub field: Option<String>,
    pub message: String,
    pub notes: Vec<String>,
    /// The source line at `pos`, for the excerpt.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// An error in `file` with no position yet.
    pub fn error(file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            pos: None,
            field: None,
            message: message.into(),
            notes: Vec::new(),
            source_line: None,
        }
    }

    /// A warning in `file`.
    pub fn warning(file: &str, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(file, message) }
    }

    pub fn at(mut self, pos: Option<Pos>) -> Self {
        self.pos = pos;
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        let f: String = field.into();
        self.field = if f.is_empty() { None } else { Some(f) };
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Fills in the source excerpt from the file text.
    pub fn with_source(self, text: &str) -> Self {
        self.with_source_lines(text, &Lines::new(text))
    }

    /// `with_source`, with the lines of `text` indexed in `lines`.
    pub fn with_source_lines(mut self, text: &str, lines: &Lines) -> Self {
        if let Some(pos) = self.pos {
            self.source_line = lines.get(text, pos.line).map(str::to_string);
        }
        self
    }

    fn sort_key(&self) -> (&str, Option<Pos>, Severity, &str) {
        (&self.file, self.pos, self.severity, &self.message)
    }
}

/// The line that starts at byte `start`, as `str::lines` gives it (without
/// its `\r\n` or `\n`).
fn line_from(text: &str, start: usize) -> Option<&str> {
    if start >= text.len() {
        return None;
    }
    let rest = &text[start..];
    // A `\r` goes with the line break only before a `\n`.
    Some(match memchr::memchr(b'\n', rest.as_bytes()) {
        Some(end) => rest[..end].strip_suffix('\r').unwrap_or(&rest[..end]),
        None => rest,
    })
}

/// Where each line of a text starts, found with `memchr`: source lines for
/// the diagnostics of a file (10,000 warnings about a 10,000-service stack
/// spent 8 s finding their lines one scan of the file at a time).
#[derive(Debug, Default, Clone)]
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        Lines { starts }
    }

    /// Line `n` (from 1; 0 is taken as 1) of `text`, the text indexed, as
    /// `str::lines` gives it.
    pub fn get<'t>(&self, text: &'t str, n: usize) -> Option<&'t str> {
        line_from(text, *self.starts.get(n.max(1) - 1)?)
    }
}

/// Sorts by file and position and drops exact repeats (a base-file error
/// is found once per environment).
pub fn normalize(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    diags.dedup();
}

/// Whether any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}

impl Diagnostic {
    /// The diagnostic as text; with `color`, ANSI colours like rustc's.
    pub fn render(&self, color: bool) -> String {
        let plain = self.to_string();
        if !color {
            return plain;
        }
        let (label, code) = match self.severity {
            Severity::Error => ("error:", "1;31"),
            Severity::Warning => ("warning:", "1;33"),
        };
        let mut out = String::new();
        for (i, line) in plain.lines().enumerate() {
            if i == 0 {
                out.push_str(&line.replacen(label, &format!("\x1b[{code}m{label}\x1b[0m"), 1));
            } else if line.trim_start().starts_with("-->") || line.trim_end().ends_with('|') || line.contains(" | ") {
                out.push_str(&format!("\x1b[34m{line}\x1b[0m"));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        match self.pos {
            Some(p) => writeln!(f, "  --> {}:{}:{}", self.file, p.line, p.col)?,
            None => writeln!(f, "  --> {}", self.file)?,
        }
        if let (Some(p), Some(line)) = (self.pos, &self.source_line) {
            let num = p.line.to_string();
            let gutter = " ".repeat(num.len());
            // Tabs as spaces; other control characters (which YAML refuses
            // raw) as their visible symbol, one column each, so the terminal
            // shows them and the caret stays aligned.
            let shown: String = line
                .chars()
                .map(|c| match c {
                    '\t' => ' ',
                    '\0'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
                    '\u{7f}' => '\u{2421}',
                    c if c.is_control() => '\u{fffd}',
                    c => c,
                })
                .collect();
            let start = shown.char_indices().nth(p.col.saturating_sub(1)).map_or(shown.len(), |(i, _)| i);
            let token = shown[start..].split(|c: char| c.is_whitespace() || c == ':' || c == ',').next().unwrap_or("");
            let width = token.chars().count().max(1);
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{num} | {shown}")?;
            writeln!(f, "{gutter} | {}{}", " ".repeat(p.col.saturating_sub(1)), "^".repeat(width))?;
        }
        if let Some(field) = &self.field {
            writeln!(f, "   = field: {field}")?;
        }
        for n in &self.notes {
            writeln!(f, "   = {n}")?;
        }
        Ok(())
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a plausible typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + 1;
    candidates
        .into_iter()
        .map(|c| (levenshtein(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_agrees_with_str_lines() {
        for text in ["", "a", "a\n", "a\nb", "a\n\nb\n", "\n", "\n\n", "x\r\ny\r\n", "é\nü\n\n", "a\r", "a\r\rb\r"] {
            let lines = Lines::new(text);
            for n in 0..6usize {
                let want = text.lines().nth(n.saturating_sub(1));
                let excerpt = Diagnostic::error("f", "m").at(Some(Pos { line: n, col: 1 })).with_source(text);
                assert_eq!(excerpt.source_line.as_deref(), want, "{text:?} line {n}");
                assert_eq!(lines.get(text, n), want, "{text:?} line {n}, indexed");
            }
        }
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("replcas", ["image", "replicas", "ports"]), Some("replicas"));
        assert_eq!(did_you_mean("zzz", ["image", "replicas"]), None);
    }

    #[test]
    fn renders_excerpt_with_caret() {
        let d = Diagnostic::error("stacks/shop.yaml", "unknown key `replcas`")
            .at(Some(Pos { line: 2, col: 5 }))
            .field("services.app.replcas")
            .note("help: did you mean `replicas`?")
            .with_source("app:\n    replcas: 3\n");
        assert_eq!(
            d.to_string(),
            "error: unknown key `replcas`\n  --> stacks/shop.yaml:2:5\n  |\n2 |     replcas: 3\n  |     ^^^^^^^\n   = field: services.app.replcas\n   = help: did you mean `replicas`?\n"
        );
    }
}
