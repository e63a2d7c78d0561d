//! The rendered tree on disk: compare, write atomically, prune.
//!
//! Input: the in-memory plan (relative path -> bytes) for some stack
//! environments. Each environment directory owns a manifest
//! (`.stackgen-manifest`) listing the files stackgen wrote there, so a later
//! render deletes exactly the files it no longer produces and never a file
//! it did not write. Writing is two-phase: every changed file is first
//! written to a temporary sibling; only when all of them are written are
//! they renamed into place, so a failure (disk full, permission denied)
//! leaves the old tree untouched and no temporary file behind. Nothing is
//! ever written or deleted through a symbolic link.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Name of the ownership manifest in each `<stack>/<env>/` directory.
pub const MANIFEST: &str = ".stackgen-manifest";

/// Files to produce, by path relative to the output root.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub files: BTreeMap<String, Vec<u8>>,
    /// `<stack>/<env>` directories this plan covers completely.
    pub env_dirs: BTreeSet<String>,
    /// `<stack>` directories whose every environment is in the plan: any
    /// other environment directory with a manifest there is stale.
    pub stack_dirs: BTreeSet<String>,
}

/// What a render would change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Files in covered directories that stackgen did not write.
    pub foreign: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl Plan {
    /// Adds the manifests of every covered environment directory.
    pub fn seal(&mut self) {
        for dir in &self.env_dirs {
            let prefix = format!("{dir}/");
            let listed: Vec<&str> =
                self.files.keys().filter_map(|k| k.strip_prefix(&prefix)).filter(|k| *k != MANIFEST).collect();
            let mut body = String::from(
                "# Files written by stackgen in this directory; it deletes them when they are no longer rendered.\n",
            );
            for f in listed {
                body.push_str(f);
                body.push('\n');
            }
            self.files.insert(format!("{dir}/{MANIFEST}"), body.into_bytes());
        }
    }
}

/// Rejects any path that could leave the output root.
fn checked_rel(rel: &str) -> Result<&Path> {
    let p = Path::new(rel);
    if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("internal error: output path `{rel}` is not a plain relative path");
    }
    Ok(p)
}

/// Fails if any existing component of `rel` under `root` is a symlink.
fn no_symlinks(root: &Path, rel: &Path) -> Result<()> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                bail!("refusing to write through symbolic link `{}`", cur.display())
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

fn read_manifest(root: &Path, env_dir: &str) -> Vec<String> {
    let path = root.join(env_dir).join(MANIFEST);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {}
        _ => return Vec::new(),
    }
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter(|l| checked_rel(l).is_ok())
        .map(|l| format!("{env_dir}/{l}"))
        .collect()
}

/// Environment directories under the covered stack directories that hold a
/// manifest but are not in the plan any more.
fn stale_env_dirs(root: &Path, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for stack_dir in &plan.stack_dirs {
        let Ok(entries) = fs::read_dir(root.join(stack_dir)) else {
            continue;
        };
        let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
        names.sort();
        for name in names {
            let dir = format!("{stack_dir}/{name}");
            let is_dir = fs::symlink_metadata(root.join(&dir)).is_ok_and(|m| m.is_dir());
            if is_dir && !plan.env_dirs.contains(&dir) && root.join(&dir).join(MANIFEST).is_file() {
                out.push(dir);
            }
        }
    }
    out
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let r = format!("{rel}/{name}");
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&e.path(), &r, out),
            Ok(_) => out.push(r),
            Err(_) => {}
        }
    }
}

/// Compares the plan with the tree under `root`.
pub fn compare(root: &Path, plan: &Plan) -> Result<Changes> {
    let mut ch = Changes::default();
    for (rel, bytes) in &plan.files {
        let path = root.join(checked_rel(rel)?);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => ch.changed.push(rel.clone()),
            Ok(_) => match fs::read(&path) {
                Ok(old) if &old == bytes => ch.unchanged.push(rel.clone()),
                _ => ch.changed.push(rel.clone()),
            },
            Err(_) => ch.added.push(rel.clone()),
        }
    }
    let mut owned: BTreeSet<String> = BTreeSet::new();
    for dir in plan.env_dirs.iter().cloned().chain(stale_env_dirs(root, plan)) {
        let listed = read_manifest(root, &dir);
        let stale = !plan.env_dirs.contains(&dir);
        for f in listed {
            owned.insert(f.clone());
            if !plan.files.contains_key(&f) && root.join(&f).symlink_metadata().is_ok() {
                ch.removed.push(f);
            }
        }
        let manifest = format!("{dir}/{MANIFEST}");
        owned.insert(manifest.clone());
        if stale {
            ch.removed.push(manifest);
        }
        let mut present = Vec::new();
        walk(&root.join(&dir), &dir, &mut present);
        for f in present {
            if !owned.contains(&f) && !plan.files.contains_key(&f) {
                ch.foreign.push(f);
            }
        }
    }
    for v in [&mut ch.added, &mut ch.changed, &mut ch.removed, &mut ch.unchanged, &mut ch.foreign] {
        v.sort();
        v.dedup();
    }
    Ok(ch)
}

/// Where file contents go. Tests inject failures through this.
pub trait Sink {
    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
}

/// The real filesystem.
pub struct Disk;

impl Sink for Disk {
    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }
}

/// Applies the plan: writes changed files, removes stale owned files.
pub fn apply(root: &Path, plan: &Plan, changes: &Changes, sink: &mut dyn Sink) -> Result<()> {
    let pid = std::process::id();
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut created_dirs: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<()> {
        for rel in changes.added.iter().chain(&changes.changed) {
            let relp = checked_rel(rel)?;
            no_symlinks(root, relp)?;
            let dest = root.join(relp);
            let parent = dest.parent().context("output path has no parent")?.to_path_buf();
            if !parent.is_dir() {
                let mut missing = Vec::new();
                let mut p = parent.clone();
                while !p.exists() {
                    missing.push(p.clone());
                    if !p.pop() {
                        break;
                    }
                }
                fs::create_dir_all(&parent)
                    .with_context(|| format!("cannot create directory `{}`", parent.display()))?;
                created_dirs.extend(missing);
            }
            let name = dest.file_name().context("output path has no file name")?.to_string_lossy().to_string();
            let tmp = parent.join(format!(".{name}.stackgen-tmp-{pid}"));
            let _ = fs::remove_file(&tmp);
            staged.push((tmp.clone(), dest.clone()));
            sink.write_file(&tmp, &plan.files[rel]).with_context(|| format!("cannot write `{}`", dest.display()))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (tmp, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
        created_dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in created_dirs {
            let _ = fs::remove_dir(d);
        }
        return Err(e);
    }
    for (tmp, dest) in &staged {
        if let Err(e) = fs::rename(tmp, dest) {
            for (t, _) in &staged {
                let _ = fs::remove_file(t);
            }
            return Err(e).with_context(|| format!("cannot move `{}` into place", dest.display()));
        }
    }
    for rel in &changes.removed {
        let relp = checked_rel(rel)?;
        no_symlinks(root, relp.parent().unwrap_or(Path::new("")))?;
        let path = root.join(relp);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() || m.file_type().is_symlink() => {
                fs::remove_file(&path).with_context(|| format!("cannot remove stale `{}`", path.display()))?;
            }
            _ => {}
        }
        // Remove directories left empty, up to the output root.
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == root || !d.starts_with(root) || fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    Ok(())
}
