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

    /// Makes the files written so far durable, before they are renamed
    /// into place (so a crash leaves each file old or new, never empty).
    fn flush(&mut self, _paths: &[PathBuf]) -> std::io::Result<()> {
        Ok(())
    }
}

/// The real filesystem.
pub struct Disk;

impl Sink for Disk {
    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        f.write_all(bytes)
    }

    /// `fsync` waits on the disk, not the CPU: several threads overlap the
    /// waits (one flush per file would dominate a large render).
    fn flush(&mut self, paths: &[PathBuf]) -> std::io::Result<()> {
        let threads = 8.min(paths.len().max(1));
        let chunk = paths.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = paths
                .chunks(chunk)
                .map(|c| scope.spawn(move || c.iter().try_for_each(|p| fs::File::open(p)?.sync_data())))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("flush worker panicked"))))
        })
    }
}

/// Undoes staging: removes the temporary files and the directories this
/// run created (deepest first; a directory that is not empty stays).
fn discard(staged: &[(PathBuf, PathBuf)], mut created_dirs: Vec<PathBuf>) {
    for (tmp, _) in staged {
        let _ = fs::remove_file(tmp);
    }
    created_dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in created_dirs {
        let _ = fs::remove_dir(d);
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
            if fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
                bail!("cannot write `{}`: a directory is in the way", dest.display());
            }
            let name = dest.file_name().context("output path has no file name")?.to_string_lossy().to_string();
            let tmp = parent.join(format!(".{name}.stackgen-tmp-{pid}"));
            let _ = fs::remove_file(&tmp);
            staged.push((tmp.clone(), dest.clone()));
            sink.write_file(&tmp, &plan.files[rel]).with_context(|| format!("cannot write `{}`", dest.display()))?;
        }
        let tmps: Vec<PathBuf> = staged.iter().map(|(t, _)| t.clone()).collect();
        sink.flush(&tmps).context("cannot flush the written files to disk")?;
        Ok(())
    })();
    if let Err(e) = result {
        discard(&staged, created_dirs);
        return Err(e);
    }
    // Move each old file aside and the new one in; on any failure put
    // every old file back, so the tree is either all old or all new.
    let mut done: Vec<(&PathBuf, Option<PathBuf>)> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    for (tmp, dest) in &staged {
        let backup = if fs::symlink_metadata(dest).is_ok() {
            let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let b = dest.with_file_name(format!(".{name}.stackgen-old-{pid}"));
            if let Err(e) = fs::rename(dest, &b) {
                failure = Some(anyhow::Error::from(e).context(format!("cannot replace `{}`", dest.display())));
                break;
            }
            Some(b)
        } else {
            None
        };
        if let Err(e) = fs::rename(tmp, dest) {
            if let Some(b) = &backup {
                let _ = fs::rename(b, dest);
            }
            failure = Some(anyhow::Error::from(e).context(format!("cannot move `{}` into place", dest.display())));
            break;
        }
        done.push((dest, backup));
    }
    if let Some(e) = failure {
        for (dest, backup) in done.iter().rev() {
            match backup {
                Some(b) => {
                    let _ = fs::rename(b, dest);
                }
                None => {
                    let _ = fs::remove_file(dest);
                }
            }
        }
        discard(&staged, created_dirs);
        return Err(e);
    }
    for (_, backup) in done {
        if let Some(b) = backup {
            let _ = fs::remove_file(b);
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

#[cfg(test)]
mod tests {
    //! Atomicity and ownership of `apply`: a failed write leaves the tree
    //! exactly as it was, and pruning deletes only files a manifest lists.

    use super::*;

    /// Every entry under `root` (symlinks not followed): files with their
    /// bytes, directories as `None`, by `/`-separated relative path.
    fn snapshot(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
        fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
            for e in fs::read_dir(dir).expect("read_dir") {
                let e = e.expect("entry");
                let name = e.file_name().into_string().expect("UTF-8 name");
                let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                let t = e.file_type().expect("file type");
                if t.is_dir() {
                    out.insert(r.clone(), None);
                    walk(&e.path(), &r, out);
                } else {
                    out.insert(r, Some(fs::read(e.path()).expect("read")));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(root, "", &mut out);
        out
    }

    fn temp_files(tree: &BTreeMap<String, Option<Vec<u8>>>) -> Vec<&String> {
        tree.keys().filter(|k| k.contains(".stackgen-tmp-")).collect()
    }

    /// A sealed plan for one environment directory of stack `shop`; with
    /// `whole_stack`, the plan covers every environment of the stack.
    fn plan_for(env: &str, whole_stack: bool, files: &[(&str, &str)]) -> Plan {
        let mut p = Plan::default();
        p.env_dirs.insert(format!("shop/{env}"));
        if whole_stack {
            p.stack_dirs.insert("shop".into());
        }
        for (k, v) in files {
            p.files.insert(format!("shop/{env}/{k}"), v.as_bytes().to_vec());
        }
        p.seal();
        p
    }

    fn plan(files: &[(&str, &str)]) -> Plan {
        plan_for("prod", true, files)
    }

    /// Writes the first `ok` files, then half of the next one and fails
    /// like a full disk.
    struct FullDisk {
        ok: usize,
        calls: usize,
    }

    impl Sink for FullDisk {
        fn write_file(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
            self.calls += 1;
            if self.calls <= self.ok {
                return Disk.write_file(path, bytes);
            }
            let mut f = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
            f.write_all(&bytes[..bytes.len() / 2])?;
            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device (os error 28)"))
        }
    }

    fn render(root: &Path, p: &Plan) -> Changes {
        let ch = compare(root, p).expect("compare");
        apply(root, p, &ch, &mut Disk).expect("apply");
        assert!(compare(root, p).expect("compare").is_empty(), "tree not up to date after apply");
        ch
    }

    const V1: &[(&str, &str)] = &[
        ("kubernetes/deployment-web.yaml", "kind: Deployment\nreplicas: 1\n"),
        ("kubernetes/service-web.yaml", "kind: Service\n"),
        ("kubernetes/kustomization.yaml", "resources: [deployment-web.yaml, service-web.yaml]\n"),
        ("compose/compose.yaml", "services: {web: {}}\n"),
        ("VERIFY.md", "# checks\n"),
    ];

    /// V1 with three files changed, two added (one in a new directory tree)
    /// and one removed.
    const V2: &[(&str, &str)] = &[
        ("kubernetes/deployment-web.yaml", "kind: Deployment\nreplicas: 3\n"),
        ("kubernetes/deployment-api.yaml", "kind: Deployment\n"),
        ("kubernetes/kustomization.yaml", "resources: [deployment-api.yaml, deployment-web.yaml]\n"),
        ("compose/compose.yaml", "services: {web: {}, api: {}}\n"),
        ("compose/configs/nginx/default.conf", "server {}\n"),
        ("VERIFY.md", "# checks\n"),
    ];

    #[test]
    fn failed_write_leaves_the_tree_byte_identical() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("out");
        fs::create_dir(&root).unwrap();
        let first = render(&root, &plan(V1));
        assert_eq!(first.added.len(), V1.len() + 1, "{first:?}");
        let before = snapshot(&root);

        let next = plan(V2);
        let ch = compare(&root, &next).unwrap();
        assert_eq!(ch.removed, ["shop/prod/kubernetes/service-web.yaml"]);
        let writes = ch.added.len() + ch.changed.len();
        assert!(writes >= 5, "{ch:?}");
        // Fail at every position, including the very first and the last write.
        for ok in 0..writes {
            let mut sink = FullDisk { ok, calls: 0 };
            let err = apply(&root, &next, &ch, &mut sink).expect_err("apply must fail when a write fails");
            assert_eq!(sink.calls, ok + 1, "apply went on writing after a failure");
            let msg = format!("{err:#}");
            assert!(msg.contains("cannot write") && msg.contains("No space left"), "{msg}");
            let after = snapshot(&root);
            assert!(temp_files(&after).is_empty(), "temporary files left behind: {:?}", temp_files(&after));
            assert_eq!(
                after.keys().collect::<Vec<_>>(),
                before.keys().collect::<Vec<_>>(),
                "entries differ after failing at write {ok}"
            );
            assert!(after == before, "contents differ after failing at write {ok}");
        }
        // The same plan then applies cleanly.
        apply(&root, &next, &ch, &mut Disk).unwrap();
        let done = snapshot(&root);
        assert!(temp_files(&done).is_empty());
        for (k, v) in V2 {
            assert_eq!(done[&format!("shop/prod/{k}")].as_deref(), Some(v.as_bytes()), "{k}");
        }
        assert!(!done.contains_key("shop/prod/kubernetes/service-web.yaml"));
        assert!(compare(&root, &next).unwrap().is_empty());
    }

    #[test]
    fn prune_removes_only_files_a_manifest_lists() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        render(root, &plan(V1));
        // Files stackgen did not write, next to and below its own.
        let foreign = [
            "shop/prod/kubernetes/NOTES.md",
            "shop/prod/compose/override.yaml",
            "shop/prod/extra/keep.yaml",
            "shop/README.md",
            "other/prod/kubernetes/deployment-web.yaml",
        ];
        for f in foreign {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, f).unwrap();
        }
        // A stale environment directory with a manifest, and one without.
        render(root, &plan_for("staging", false, &[("kubernetes/deployment-web.yaml", "kind: Deployment\n")]));
        fs::write(root.join("shop/staging/mine.txt"), "mine").unwrap();
        fs::create_dir_all(root.join("shop/manual")).unwrap();
        fs::write(root.join("shop/manual/deployment-web.yaml"), "manual").unwrap();

        // The service is gone: its file and the staging environment are stale.
        let next = plan(&V1.iter().copied().filter(|(k, _)| !k.contains("service-web")).collect::<Vec<_>>());
        let ch = compare(root, &next).unwrap();
        assert_eq!(
            ch.removed,
            [
                "shop/prod/kubernetes/service-web.yaml",
                "shop/staging/.stackgen-manifest",
                "shop/staging/kubernetes/deployment-web.yaml",
            ]
        );
        assert_eq!(
            ch.foreign,
            [
                "shop/prod/compose/override.yaml",
                "shop/prod/extra/keep.yaml",
                "shop/prod/kubernetes/NOTES.md",
                "shop/staging/mine.txt",
            ]
        );
        apply(root, &next, &ch, &mut Disk).unwrap();
        let after = snapshot(root);
        for f in foreign {
            assert_eq!(after.get(f), Some(&Some(f.as_bytes().to_vec())), "foreign file {f} was touched");
        }
        assert_eq!(after["shop/staging/mine.txt"], Some(b"mine".to_vec()));
        assert_eq!(after["shop/manual/deployment-web.yaml"], Some(b"manual".to_vec()));
        for gone in &ch.removed {
            assert!(!after.contains_key(gone), "{gone} was not pruned");
        }
        // The staging directory is kept only because of the foreign file in it.
        assert!(!after.contains_key("shop/staging/kubernetes"), "empty directory left: {:?}", after.keys());
        assert!(compare(root, &next).unwrap().is_empty());
    }

    #[test]
    fn tampered_manifest_cannot_delete_outside_its_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("out");
        fs::create_dir(&root).unwrap();
        render(&root, &plan(V1));
        fs::write(tmp.path().join("precious.txt"), "keep").unwrap();
        fs::write(root.join("shop/other.txt"), "keep").unwrap();
        let manifest = root.join("shop/prod").join(MANIFEST);
        let mut text = fs::read_to_string(&manifest).unwrap();
        text.push_str("../../../precious.txt\n../other.txt\n/etc/hostname\n");
        fs::write(&manifest, text).unwrap();
        let ch = compare(&root, &plan(V1)).unwrap();
        assert!(ch.removed.is_empty(), "{ch:?}");
        apply(&root, &plan(V1), &ch, &mut Disk).unwrap();
        assert_eq!(fs::read_to_string(tmp.path().join("precious.txt")).unwrap(), "keep");
        assert_eq!(fs::read_to_string(root.join("shop/other.txt")).unwrap(), "keep");
    }

    /// A rename that fails after others succeeded (here: a directory where
    /// a rendered file goes) must not leave a half-updated tree.
    #[test]
    fn failed_rename_leaves_the_tree_untouched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        render(root, &plan(V1));
        // Sorts after every other changed file of V2.
        let blocked = root.join("shop/prod/kubernetes/kustomization.yaml");
        fs::remove_file(&blocked).unwrap();
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), "x").unwrap();
        let before = snapshot(root);
        let next = plan(V2);
        let ch = compare(root, &next).unwrap();
        assert!(apply(root, &next, &ch, &mut Disk).is_err());
        let after = snapshot(root);
        assert!(temp_files(&after).is_empty(), "{:?}", temp_files(&after));
        let differing: BTreeSet<&String> =
            after.keys().chain(before.keys()).filter(|k| after.get(*k) != before.get(*k)).collect();
        assert!(differing.is_empty(), "a failed apply changed {differing:?}");
    }
}
