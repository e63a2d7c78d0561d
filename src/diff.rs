//! `stackgen diff`: what a render would change, as a unified diff or a
//! per-file stat. Input: the plan and its `Changes` against the tree on
//! disk; output: text. Reads the old files, writes nothing.

use std::fs;
use std::path::Path;

use similar::TextDiff;

use crate::output::{Changes, Plan};

/// Lines added and removed in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub path: String,
    pub status: &'static str,
    pub added: usize,
    pub removed: usize,
}

fn old_text(root: &Path, rel: &str) -> String {
    let path = root.join(rel);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => String::from_utf8_lossy(&fs::read(&path).unwrap_or_default()).into_owned(),
        _ => String::new(),
    }
}

fn entries(ch: &Changes) -> impl Iterator<Item = (&String, &'static str)> {
    let mut all: Vec<(&String, &'static str)> = ch
        .added
        .iter()
        .map(|p| (p, "added"))
        .chain(ch.changed.iter().map(|p| (p, "changed")))
        .chain(ch.removed.iter().map(|p| (p, "removed")))
        .collect();
    all.sort();
    all.into_iter()
}

/// Unified diffs of every changed file, `a/` being the disk and `b/` the render.
pub fn unified(root: &Path, plan: &Plan, ch: &Changes, color: bool) -> String {
    let mut out = String::new();
    for (rel, status) in entries(ch) {
        let old = if status == "added" { String::new() } else { old_text(root, rel) };
        let new = plan.files.get(rel).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        let a = if status == "added" { "/dev/null".to_string() } else { format!("a/{rel}") };
        let b = if status == "removed" { "/dev/null".to_string() } else { format!("b/{rel}") };
        let diff = TextDiff::from_lines(&old, &new);
        let text = diff.unified_diff().context_radius(3).header(&a, &b).to_string();
        for line in text.lines() {
            let paint = match line.as_bytes().first() {
                _ if !color => None,
                Some(b'+') if line.starts_with("+++") => Some("1"),
                Some(b'-') if line.starts_with("---") => Some("1"),
                Some(b'+') => Some("32"),
                Some(b'-') => Some("31"),
                Some(b'@') => Some("36"),
                _ => None,
            };
            match paint {
                Some(code) => out.push_str(&format!("\x1b[{code}m{line}\x1b[0m\n")),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// Lines added and removed per changed file.
pub fn stat(root: &Path, plan: &Plan, ch: &Changes) -> Vec<FileStat> {
    entries(ch)
        .map(|(rel, status)| {
            let old = if status == "added" { String::new() } else { old_text(root, rel) };
            let new = plan.files.get(rel).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            let diff = TextDiff::from_lines(&old, &new);
            let (mut added, mut removed) = (0, 0);
            for c in diff.iter_all_changes() {
                match c.tag() {
                    similar::ChangeTag::Insert => added += 1,
                    similar::ChangeTag::Delete => removed += 1,
                    similar::ChangeTag::Equal => {}
                }
            }
            FileStat { path: rel.clone(), status, added, removed }
        })
        .collect()
}
