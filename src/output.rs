//! The rendered tree on disk: compare, write, prune.
//!
//! Input: the in-memory plan (relative path -> bytes) for some stack
//! environments. Each environment directory owns a manifest
//! (`.stackgen-manifest`) listing the files stackgen wrote there, so a later
//! render deletes exactly the files it no longer produces and never a file
//! it did not write. Nothing is ever written or deleted through a symbolic
//! link: a symlink among the directories of an output path is refused.
//!
//! Writing is two-phase. Phase one writes every new content somewhere the
//! tree does not see yet:
//! - a file whose directory exists goes to a temporary sibling
//!   (`.NAME.stackgen-tmp-PID`);
//! - a file under a directory that does not exist yet (a stack or an
//!   environment rendered for the first time) goes into one staging
//!   directory per missing top directory, `.DIR.stackgen-tmp-PID` beside
//!   it, which holds that whole new subtree.
//!
//! Only when all of it is written does phase two move it into place: each
//! old file aside (`.NAME.stackgen-old-PID`) and its temporary in, then each
//! staging directory to its final name with a single `rename`. A failure in
//! either phase (disk full, permission denied, a rename refused) puts back
//! every old file, removes the subtrees this run renamed in (they did not
//! exist before) and every temporary, so the tree is all old or all new and
//! nothing is left behind. Stale files are pruned after the commit (should
//! that fail, the new tree keeps some stale files until the next render).
//!
//! Each rename is atomic, the whole commit is not: another process reading
//! the tree during those renames can see some new files beside old ones.
//! Ctrl-C, SIGTERM and SIGHUP do not end the process in the middle: they
//! are deferred while `apply` runs ([`crate::interrupt`]), and one that
//! comes in before the last rename stops the writing and rolls it back
//! like a failure. A crash (kill -9, a power loss) during the renames leaves
//! a mix, which the next render completes, and the crashed run's
//! `.stackgen-tmp-PID` and `.stackgen-old-PID` entries, which nothing
//! removes but a later run that happens to get the same process id.
//!
//! Durability is opt-in (`render --fsync`, [`Disk::fsync`]). Without it
//! nothing is flushed: a power loss shortly after a render may leave new
//! files empty or partial, as with kubectl, kustomize or helm, which do not
//! fsync their output either (a render is repeatable, and a
//! `render --check` finds such damage). With it each file is flushed before
//! it replaces the old one, so after a power loss each file is old or new,
//! never empty, and the directories are flushed too, so the render is on
//! disk when the command returns.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::interrupt;

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
    /// The plan holds every stack (`render --all`): the environment
    /// directories with a manifest of any other stack directory under the
    /// root are stale too (a stack file removed or renamed).
    pub whole_root: bool,
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
            // Only the keys under `prefix`, which sort together: scanning
            // every file for every directory was quadratic in a monorepo.
            let listed: Vec<&str> = self
                .files
                .range::<str, _>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Unbounded))
                .map_while(|(k, _)| k.strip_prefix(&prefix))
                .filter(|k| *k != MANIFEST)
                .collect();
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

/// For `compare`: whether directories under the root resolve to a
/// directory (symlinks followed, as reading a file through them would),
/// asking the file system once per directory. When one is missing, its
/// missing ancestors are recorded too, so the files of a whole new stack
/// cost a few `stat`s instead of one each.
struct Present<'a> {
    root: &'a Path,
    known: HashMap<PathBuf, bool>,
}

impl<'a> Present<'a> {
    fn new(root: &'a Path) -> Self {
        Present { root, known: HashMap::new() }
    }

    fn is_dir(&mut self, dir: &Path) -> bool {
        if let Some(&known) = self.known.get(dir) {
            return known;
        }
        // The ancestors up to the root, itself included (it may be missing
        // too), but not an empty path (a root of `""` is the working directory).
        let root = self.root;
        let above = || dir.ancestors().skip(1).take_while(|a| !a.as_os_str().is_empty() && a.starts_with(root));
        let below_missing = above().find_map(|a| self.known.get(a).copied()) == Some(false);
        let present = !below_missing && fs::metadata(dir).is_ok_and(|m| m.is_dir());
        if !present && !below_missing {
            for a in above() {
                if self.known.contains_key(a) {
                    break;
                }
                let up = fs::metadata(a).is_ok_and(|m| m.is_dir());
                self.known.insert(a.to_path_buf(), up);
                if up {
                    break;
                }
            }
        }
        self.known.insert(dir.to_path_buf(), present);
        present
    }
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
/// manifest but are not in the plan any more; with `Plan::whole_root`, also
/// those of every other stack directory under the root.
fn stale_env_dirs(root: &Path, plan: &Plan, present: &mut Present) -> Vec<String> {
    let mut out = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    if plan.whole_root
        && let Ok(entries) = fs::read_dir(root)
    {
        gone = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && !plan.stack_dirs.contains(n))
            .collect();
        gone.sort();
    }
    for stack_dir in plan.stack_dirs.iter().chain(&gone) {
        if !present.is_dir(&root.join(stack_dir)) {
            continue;
        }
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
    // No output root yet (a first render, a fresh checkout): every file is
    // new, and there is nothing to read back, prune or find foreign. The
    // walk below would find the same, a path and a lookup per file.
    if !fs::metadata(root).is_ok_and(|m| m.is_dir()) {
        for rel in plan.files.keys() {
            checked_rel(rel)?;
            ch.added.push(rel.clone());
        }
        return Ok(ch);
    }
    let mut present = Present::new(root);
    let mut existing = Vec::new();
    for (rel, bytes) in &plan.files {
        let path = root.join(checked_rel(rel)?);
        // A file whose directory is missing is missing too: no `stat` for it.
        if path.parent().is_some_and(|p| !present.is_dir(p)) {
            ch.added.push(rel.clone());
            continue;
        }
        existing.push((rel, bytes, path));
    }
    // Reading back a large tree is I/O and memcmp: spread over the cores.
    let states = crate::par::map(&existing, |(_, bytes, path)| holds(path, bytes));
    for ((rel, _, _), state) in existing.iter().zip(states) {
        match state {
            Some(true) => ch.unchanged.push((*rel).clone()),
            Some(false) => ch.changed.push((*rel).clone()),
            None => ch.added.push((*rel).clone()),
        }
    }
    let mut owned: BTreeSet<String> = BTreeSet::new();
    for dir in plan.env_dirs.iter().cloned().chain(stale_env_dirs(root, plan, &mut present)) {
        if !present.is_dir(&root.join(&dir)) {
            // Neither a manifest nor files to find there.
            owned.insert(format!("{dir}/{MANIFEST}"));
            continue;
        }
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
        let mut present_files = Vec::new();
        walk(&root.join(&dir), &dir, &mut present_files);
        for f in present_files {
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

/// Whether the file at `path` holds exactly `bytes`: `None` if there is
/// nothing there, `Some(false)` for other contents or anything but a
/// regular file (a symlink is never followed).
fn holds(path: &Path, bytes: &[u8]) -> Option<bool> {
    #[cfg(unix)]
    {
        use std::io::Read as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // One open that refuses a symlink (and does not wait on a FIFO),
        // its size from the open file, then one read when the size
        // matches: four calls instead of the six of `symlink_metadata`
        // and `fs::read` (60,000 fewer for a 10,000-service `--check`).
        let open = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
        match open {
            Ok(mut file) => {
                let Ok(meta) = file.metadata() else { return Some(false) };
                if !meta.is_file() || meta.len() != bytes.len() as u64 {
                    return Some(false);
                }
                let mut old = vec![0; bytes.len()];
                return Some(file.read_exact(&mut old).is_ok() && old == bytes);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Some(false),
            // Anything else: as below, which tells a missing path apart
            // from an unreadable file.
            Err(_) => {}
        }
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Some(false),
        Ok(_) => Some(fs::read(path).is_ok_and(|old| old == bytes)),
        Err(_) => None,
    }
}

/// What failed in `Sink::write_tree`: the directory or the file of that index.
#[derive(Debug)]
pub enum TreeError {
    Dir(usize, io::Error),
    File(usize, io::Error),
}

impl TreeError {
    /// Directories before files, then by index.
    fn rank(&self) -> (u8, usize) {
        match self {
            TreeError::Dir(i, _) => (0, *i),
            TreeError::File(i, _) => (1, *i),
        }
    }
}

/// Fails with an `Interrupted` error once a deferred signal came in.
fn go_on() -> io::Result<()> {
    interrupt::received().map_or(Ok(()), |sig| Err(interrupt::stopped(sig)))
}

/// `Sink::write_tree` on the calling thread: the directories, then the
/// files, stopping at the first failure or a deferred signal.
fn write_tree_in_order<S: Sink + ?Sized>(
    sink: &mut S,
    dirs: &[PathBuf],
    files: &[(PathBuf, &[u8])],
) -> Result<(), TreeError> {
    for (i, d) in dirs.iter().enumerate() {
        go_on().and_then(|()| sink.create_dir(d)).map_err(|e| TreeError::Dir(i, e))?;
    }
    for (i, (path, bytes)) in files.iter().enumerate() {
        go_on().and_then(|()| sink.write_file(path, bytes)).map_err(|e| TreeError::File(i, e))?;
    }
    Ok(())
}

/// The file system operations of `apply`, so that tests can make any of
/// them fail. Every method but `write_file` defaults to the real thing.
pub trait Sink {
    /// Creates the file `path` (a temporary name of this run) with `bytes`.
    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()>;

    /// Creates the directories `dirs` (each one's parent exists or comes
    /// before it in the list) and then writes the files `files` with
    /// `write_file`; by default one after the other, stopping at the first
    /// failure, which it returns with its step and index, or before the next
    /// step once a signal came in ([`interrupt`]). After a failure
    /// `apply` removes every staging directory and file of the batch, so an
    /// implementation may work in any order that creates a directory
    /// before what goes in it, or at once.
    fn write_tree(&mut self, dirs: &[PathBuf], files: &[(PathBuf, &[u8])]) -> Result<(), TreeError> {
        write_tree_in_order(self, dirs, files)
    }

    /// Creates a directory (in a staging directory, or the staging
    /// directory itself).
    fn create_dir(&mut self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    /// Moves a file or a directory into place, or an old file aside.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    /// Makes the files written so far durable, before they are renamed
    /// into place (so a crash leaves each file old or new, never empty).
    fn flush(&mut self, _files: &[PathBuf]) -> io::Result<()> {
        Ok(())
    }

    /// Makes directory entries durable: those of the staging directories
    /// before they are renamed, those of the renames and removals after.
    fn flush_dirs(&mut self, _dirs: &[PathBuf]) -> io::Result<()> {
        Ok(())
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct Disk {
    /// `render --fsync`: make the render durable. Off, nothing is flushed
    /// (see the module documentation for what that risks). On, `apply`
    /// flushes
    /// 1. every written file, before anything is renamed: a rename must not
    ///    make a file visible under its final name before its data is on
    ///    disk, or a power loss can leave it empty (the old file gone);
    /// 2. every directory made in a staging directory, before the staging
    ///    directory is renamed: their entries are data of those directories,
    ///    and a subtree renamed into place must not come back incomplete;
    /// 3. after the renames and removals, every directory whose entries
    ///    changed: a rename or an unlink is durable only once its directory
    ///    is, so when stackgen returns, the new tree is what a power loss
    ///    leaves (without it, the journal commits it a few seconds later).
    pub fsync: bool,
}

/// Opens `path` for writing; it must not exist.
fn create_new(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).open(path)
}

/// Syncs `paths` (files or directories) on up to 8 threads: `fsync` waits
/// on the disk, not the CPU, and the threads overlap the waits. With
/// `stoppable`, a deferred signal stops it.
fn sync_paths(paths: &[PathBuf], data_only: bool, stoppable: bool) -> io::Result<()> {
    let threads = 8.min(paths.len().max(1));
    let chunk = paths.len().div_ceil(threads).max(1);
    let sync = move |p: &PathBuf| -> io::Result<()> {
        if stoppable {
            go_on()?;
        }
        let f = fs::File::open(p)?;
        if data_only { f.sync_data() } else { f.sync_all() }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths.chunks(chunk).map(|c| scope.spawn(move || c.iter().try_for_each(sync))).collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("flush worker panicked"))))
    })
}

impl Sink for Disk {
    /// A file of that name can only be left by a crashed run that had the
    /// same process id: it is removed and the file created again.
    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = match create_new(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_file(path)?;
                create_new(path)?
            }
            other => other?,
        };
        f.write_all(bytes)
    }

    /// On two threads from 64 entries on. Creating a directory or a file
    /// holds its parent directory's lock, writing a file does not, so work
    /// is handed out a directory at a time (at most `CHUNK` files): the two
    /// threads mostly create entries in different directories, and a large
    /// directory is still shared. A thread that reaches an entry whose
    /// directory the other is still creating waits for it. Measured on 2
    /// cores: writing 25,000 files into one directory took 25-30% less time
    /// with two threads than with one on tmpfs and on ext4; for the built-in
    /// stacks (55 new directories, 152 files onto ext4), creating the
    /// directories on one thread first had taken 2-4 ms.
    fn write_tree(&mut self, dirs: &[PathBuf], files: &[(PathBuf, &[u8])]) -> Result<(), TreeError> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        const CHUNK: usize = 64;
        if dirs.len() + files.len() < 64 || crate::par::threads() < 2 {
            return write_tree_in_order(self, dirs, files);
        }
        // Which of `dirs` each directory and each run of files goes in.
        let index: HashMap<&Path, usize> = dirs.iter().enumerate().map(|(i, d)| (d.as_path(), i)).collect();
        let parent_of = |p: &Path| p.parent().and_then(|d| index.get(d).copied());
        let dir_parent: Vec<Option<usize>> = dirs.iter().map(|d| parent_of(d)).collect();
        let mut runs: Vec<(std::ops::Range<usize>, Option<usize>)> = Vec::new();
        let mut start = 0;
        for i in 1..=files.len() {
            let cut = i == files.len() || i - start == CHUNK || files[i].0.parent() != files[start].0.parent();
            if cut {
                runs.push((start..i, parent_of(&files[start].0)));
                start = i;
            }
        }
        let made: Vec<AtomicBool> = dirs.iter().map(|_| AtomicBool::new(false)).collect();
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        /// Stops the other thread if this one leaves early (an error or a
        /// panic), so that it never waits for a directory that will not
        /// come; forgotten when the thread runs out of work.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let disk = *self;
        let work = || -> Result<(), TreeError> {
            let guard = StopOnDrop(&stop);
            let mut disk = disk;
            // Waits until directory `d` exists; false once the other thread stopped.
            let ready = |d: Option<usize>| {
                let Some(d) = d else { return true };
                while !made[d].load(Ordering::Acquire) {
                    if stop.load(Ordering::Acquire) {
                        return false;
                    }
                    std::thread::yield_now();
                }
                true
            };
            loop {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                if let Some(dir) = dirs.get(k) {
                    if !ready(dir_parent[k]) {
                        break;
                    }
                    go_on().and_then(|()| fs::create_dir(dir)).map_err(|e| TreeError::Dir(k, e))?;
                    made[k].store(true, Ordering::Release);
                } else if let Some((range, parent)) = runs.get(k - dirs.len()) {
                    if !ready(*parent) {
                        break;
                    }
                    for i in range.clone() {
                        let (path, bytes) = &files[i];
                        go_on().and_then(|()| disk.write_file(path, bytes)).map_err(|e| TreeError::File(i, e))?;
                    }
                } else {
                    break;
                }
            }
            std::mem::forget(guard);
            Ok(())
        };
        // A panic becomes an error, so that `apply` removes what was staged.
        let work = || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(TreeError::File(0, io::Error::other("a writer thread panicked"))))
        };
        match crate::par::join(work, work) {
            // Both failed: the directory, else the file, listed first.
            (Err(a), Err(b)) => Err(if a.rank() <= b.rank() { a } else { b }),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    fn flush(&mut self, files: &[PathBuf]) -> io::Result<()> {
        if self.fsync { sync_paths(files, true, true) } else { Ok(()) }
    }

    /// Directories are few, and their flush also runs after the commit,
    /// which a signal must not leave undurable: it is never cut short.
    fn flush_dirs(&mut self, dirs: &[PathBuf]) -> io::Result<()> {
        if self.fsync { sync_paths(dirs, false, false) } else { Ok(()) }
    }
}

/// What `apply` found on the way to an output path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// A real directory (not a symlink).
    Dir,
    /// Nothing: this directory and everything below it are to be created.
    Missing,
    /// Something that is not a directory (a file, a socket...).
    Other,
}

/// For `apply`: the directories under the output root already looked at,
/// so each is inspected once (`lstat`, symlinks never followed) however
/// many files go into it.
struct Checked<'a> {
    root: &'a Path,
    known: HashMap<PathBuf, Found>,
}

impl<'a> Checked<'a> {
    fn new(root: &'a Path) -> Self {
        Checked { root, known: HashMap::new() }
    }

    /// Walks the directory `rel` (relative to the root) from the top and
    /// returns the first component that is not a real directory, with what
    /// is there; `None` when the whole of it exists. Fails on a symlink.
    fn first_not_dir(&mut self, rel: &Path) -> Result<Option<(PathBuf, Found)>> {
        let mut cur = self.root.to_path_buf();
        for c in rel.components() {
            cur.push(c);
            let found = match self.known.get(&cur) {
                Some(&f) => f,
                None => {
                    let f = match fs::symlink_metadata(&cur) {
                        Ok(m) if m.file_type().is_symlink() => {
                            bail!("refusing to write through symbolic link `{}`", cur.display())
                        }
                        Ok(m) if m.is_dir() => Found::Dir,
                        Ok(_) => Found::Other,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Found::Missing,
                        Err(e) => return Err(e).with_context(|| format!("cannot inspect `{}`", cur.display())),
                    };
                    self.known.insert(cur.clone(), f);
                    f
                }
            };
            if found != Found::Dir {
                return Ok(Some((cur, found)));
            }
        }
        Ok(None)
    }

    fn forget(&mut self, dir: &Path) {
        self.known.remove(dir);
    }
}

/// Sibling name of `path` for this run: `.NAME.stackgen-KIND-PID`.
fn sibling(path: &Path, kind: &str, pid: u32) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    path.with_file_name(format!(".{name}.stackgen-{kind}-{pid}"))
}

/// Phase one's work: where each new content went.
#[derive(Default)]
struct Staged {
    /// Files written beside their destination: (temporary, destination).
    files: Vec<(PathBuf, PathBuf)>,
    /// Staging directories of new subtrees: (staging directory, destination).
    trees: Vec<(PathBuf, PathBuf)>,
    /// Every directory created in the staging directories, themselves included.
    dirs: Vec<PathBuf>,
}

impl Staged {
    /// Removes everything phase one may have created.
    fn discard(&self) {
        for (tmp, _) in &self.files {
            let _ = fs::remove_file(tmp);
        }
        for (stage, _) in &self.trees {
            let _ = fs::remove_dir_all(stage);
        }
    }
}

/// Phase one: writes every added and changed file where the tree does not
/// see it yet (see the module documentation), and flushes it if asked.
fn stage(
    root: &Path,
    plan: &Plan,
    changes: &Changes,
    sink: &mut dyn Sink,
    checked: &mut Checked,
    staged: &mut Staged,
) -> Result<()> {
    let pid = std::process::id();
    // Staging directory of each new top directory, and the directories
    // already made in the staging directories.
    let mut stages: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut made: HashSet<PathBuf> = HashSet::new();
    // Where each file goes now, with its bytes; and its destination.
    let mut jobs: Vec<(PathBuf, &[u8])> = Vec::new();
    let mut dests: Vec<PathBuf> = Vec::new();
    // Directories to create in the staging directories (parents first), made
    // with the files; and their names in the output tree, for errors.
    let mut new_dirs: Vec<PathBuf> = Vec::new();
    let mut new_dir_names: Vec<PathBuf> = Vec::new();
    // The last directory that went into a staging directory, and the
    // directory standing for it there: the files of one directory come one
    // after the other (the plan is sorted), and need none of the lookups.
    let mut last: Option<(&Path, PathBuf)> = None;
    for rel in changes.added.iter().chain(&changes.changed) {
        let relp = checked_rel(rel)?;
        let bytes = plan.files.get(rel).with_context(|| format!("internal error: `{rel}` is not in the plan"))?;
        let dest = root.join(relp);
        let dir = relp.parent().unwrap_or(Path::new(""));
        if let Some((last_dir, staged_dir)) = &last
            && *last_dir == dir
            && let Some(name) = relp.file_name()
        {
            jobs.push((staged_dir.join(name), bytes.as_slice()));
            dests.push(dest);
            continue;
        }
        let path = match checked.first_not_dir(dir)? {
            None => {
                match fs::symlink_metadata(&dest) {
                    Ok(m) if m.file_type().is_symlink() => {
                        bail!("refusing to write through symbolic link `{}`", dest.display())
                    }
                    Ok(m) if m.is_dir() => bail!("cannot write `{}`: a directory is in the way", dest.display()),
                    _ => {}
                }
                let tmp = sibling(&dest, "tmp", pid);
                staged.files.push((tmp.clone(), dest.clone()));
                tmp
            }
            Some((top, Found::Missing)) => {
                let stage = match stages.get(&top) {
                    Some(s) => s.clone(),
                    None => {
                        let s = sibling(&top, "tmp", pid);
                        let created = match sink.create_dir(&s) {
                            // Left by a crashed run with the same process id.
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                                let _ = fs::remove_dir_all(&s);
                                sink.create_dir(&s)
                            }
                            other => other,
                        };
                        created.with_context(|| format!("cannot create directory `{}`", top.display()))?;
                        staged.trees.push((s.clone(), top.clone()));
                        staged.dirs.push(s.clone());
                        stages.insert(top.clone(), s.clone());
                        s
                    }
                };
                let inner = dest.strip_prefix(&top).context("internal error: output path outside its directory")?;
                let mut sub = stage.clone();
                for c in inner.parent().into_iter().flat_map(Path::components) {
                    sub.push(c);
                    if !made.contains(&sub) {
                        made.insert(sub.clone());
                        new_dirs.push(sub.clone());
                        new_dir_names.push(top.join(sub.strip_prefix(&stage).unwrap_or(&sub)));
                        staged.dirs.push(sub.clone());
                    }
                }
                last = Some((dir, sub));
                stage.join(inner)
            }
            Some((other, _)) => {
                bail!("cannot create directory `{}`: a file is in the way", other.display())
            }
        };
        jobs.push((path, bytes.as_slice()));
        dests.push(dest);
    }
    if let Err(e) = sink.write_tree(&new_dirs, &jobs) {
        let (e, what) = match e {
            TreeError::Dir(i, e) => (e, format!("cannot create directory `{}`", name_at(&new_dir_names, i).display())),
            TreeError::File(i, e) => (e, format!("cannot write `{}`", name_at(&dests, i).display())),
        };
        return Err(anyhow::Error::from(e).context(what));
    }
    let written: Vec<PathBuf> = jobs.into_iter().map(|(p, _)| p).collect();
    sink.flush(&written).context("cannot flush the written files to disk")?;
    sink.flush_dirs(&staged.dirs).context("cannot flush the new directories to disk")?;
    Ok(())
}

fn name_at(names: &[PathBuf], i: usize) -> &Path {
    names.get(i).map_or(Path::new("?"), PathBuf::as_path)
}

/// One step of phase two, as needed to undo it.
enum Moved<'s> {
    /// A file moved in; the old one, if any, moved aside to the backup.
    File { dest: &'s Path, backup: Option<PathBuf> },
    /// A staging directory renamed to `dest`, which did not exist.
    Tree { dest: &'s Path },
}

/// Phase two: moves everything into place, or nothing (every step done is
/// undone on a failure). Returns the backups of the replaced files.
fn commit<'s>(staged: &'s Staged, sink: &mut dyn Sink) -> Result<Vec<PathBuf>> {
    let pid = std::process::id();
    let mut done: Vec<Moved<'s>> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    for (tmp, dest) in &staged.files {
        if let Err(e) = go_on() {
            failure = Some(e.into());
            break;
        }
        let backup = if fs::symlink_metadata(dest).is_ok() {
            let b = sibling(dest, "old", pid);
            if let Err(e) = sink.rename(dest, &b) {
                failure = Some(anyhow::Error::from(e).context(format!("cannot replace `{}`", dest.display())));
                break;
            }
            Some(b)
        } else {
            None
        };
        if let Err(e) = sink.rename(tmp, dest) {
            if let Some(b) = &backup {
                let _ = fs::rename(b, dest);
            }
            failure = Some(anyhow::Error::from(e).context(format!("cannot move `{}` into place", dest.display())));
            break;
        }
        done.push(Moved::File { dest, backup });
    }
    if failure.is_none() {
        for (stage, dest) in &staged.trees {
            if let Err(e) = go_on().and_then(|()| sink.rename(stage, dest)) {
                failure = Some(anyhow::Error::from(e).context(format!("cannot move `{}` into place", dest.display())));
                break;
            }
            done.push(Moved::Tree { dest });
        }
    }
    if let Some(e) = failure {
        for step in done.iter().rev() {
            match step {
                Moved::File { dest, backup: Some(b) } => {
                    let _ = fs::rename(b, dest);
                }
                Moved::File { dest, backup: None } => {
                    let _ = fs::remove_file(dest);
                }
                Moved::Tree { dest } => {
                    let _ = fs::remove_dir_all(dest);
                }
            }
        }
        return Err(e);
    }
    Ok(done
        .into_iter()
        .filter_map(|m| match m {
            Moved::File { backup, .. } => backup,
            Moved::Tree { .. } => None,
        })
        .collect())
}

/// Applies the plan: writes changed files, removes stale owned files.
/// `root` must exist; it is the one directory `apply` never creates.
///
/// SIGINT, SIGTERM and SIGHUP are deferred while it runs ([`interrupt`]):
/// one that comes in before the new files are all in place stops the
/// writing, and `apply` leaves the tree as it was and returns an error
/// saying so; one that comes in later lets it finish.
pub fn apply(root: &Path, plan: &Plan, changes: &Changes, sink: &mut dyn Sink) -> Result<()> {
    // Held to the end: once the new files are in place, removing the
    // backups and the stale files is not stopped either.
    let _deferral = interrupt::defer();
    let mut checked = Checked::new(root);
    let mut staged = Staged::default();
    let committed = stage(root, plan, changes, sink, &mut checked, &mut staged).and_then(|()| commit(&staged, sink));
    let backups = match committed {
        Ok(b) => b,
        Err(e) => {
            staged.discard();
            if let Some(sig) = interrupt::received() {
                bail!("interrupted by {}: nothing was changed in `{}`", interrupt::name(sig), root.display());
            }
            return Err(e);
        }
    };
    for b in backups {
        let _ = fs::remove_file(b);
    }
    // Directories whose entries changed, to flush with `--fsync`.
    let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
    for (_, dest) in staged.files.iter().chain(&staged.trees) {
        touched.extend(dest.parent().map(Path::to_path_buf));
    }
    for rel in &changes.removed {
        let relp = checked_rel(rel)?;
        match checked.first_not_dir(relp.parent().unwrap_or(Path::new("")))? {
            None => {}
            // Nothing to remove under something that is not a directory.
            Some(_) => continue,
        }
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
                touched.insert(d);
                break;
            }
            checked.forget(&d);
            touched.remove(&d);
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    let touched: Vec<PathBuf> = touched.into_iter().collect();
    sink.flush_dirs(&touched).context("the new files are in place, but cannot flush their directories to disk")?;
    Ok(())
}

/// [`apply`] into `root`, made first if it does not exist (with its
/// missing parents). Should `apply` fail, the directories made here are
/// removed again, so a failed render leaves no trace on disk.
pub fn apply_to(root: &Path, plan: &Plan, changes: &Changes, sink: &mut dyn Sink) -> Result<()> {
    let _deferral = interrupt::defer();
    let mut missing: Vec<&Path> =
        root.ancestors().take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err()).collect();
    missing.reverse();
    let mut made: Vec<&Path> = Vec::new();
    let result = missing
        .iter()
        .try_for_each(|d| match fs::create_dir(d) {
            Ok(()) => {
                made.push(d);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        })
        .with_context(|| format!("cannot create `{}`", root.display()))
        .and_then(|()| apply(root, plan, changes, sink));
    if result.is_err() {
        for d in made.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
    result
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
                } else if t.is_symlink() {
                    let target = fs::read_link(e.path()).expect("read_link");
                    out.insert(r, Some(format!("symlink to {}", target.display()).into_bytes()));
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
        tree.keys().filter(|k| k.contains(".stackgen-tmp-") || k.contains(".stackgen-old-")).collect()
    }

    /// A sealed plan for one environment directory of stack `shop`; with
    /// `whole_stack`, the plan covers every environment of the stack.
    fn plan_for(env: &str, whole_stack: bool, files: &[(&str, &str)]) -> Plan {
        plan_of(&[("shop", env, whole_stack, files)])
    }

    /// (stack, environment, whole stack, files) of `plan_of`.
    type Part<'a> = (&'a str, &'a str, bool, &'a [(&'a str, &'a str)]);

    /// A sealed plan for several environments.
    fn plan_of(parts: &[Part]) -> Plan {
        let mut p = Plan::default();
        for (stack, env, whole_stack, files) in parts {
            p.env_dirs.insert(format!("{stack}/{env}"));
            if *whole_stack {
                p.stack_dirs.insert(stack.to_string());
            }
            for (k, v) in *files {
                p.files.insert(format!("{stack}/{env}/{k}"), v.as_bytes().to_vec());
            }
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
                return Disk::default().write_file(path, bytes);
            }
            let mut f = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
            f.write_all(&bytes[..bytes.len() / 2])?;
            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device (os error 28)"))
        }
    }

    fn render(root: &Path, p: &Plan) -> Changes {
        let ch = compare(root, p).expect("compare");
        apply(root, p, &ch, &mut Disk::default()).expect("apply");
        assert!(compare(root, p).expect("compare").is_empty(), "tree not up to date after apply");
        ch
    }

    /// A temporary directory whose `out/` holds the render of `V1`; the
    /// changes of that first render.
    fn rendered_v1() -> (tempfile::TempDir, std::path::PathBuf, Changes) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("out");
        fs::create_dir(&root).unwrap();
        let first = render(&root, &plan(V1));
        (tmp, root, first)
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

    /// 3 levels of directories (parents first) and files in each.
    fn tree_jobs(root: &Path) -> (Vec<PathBuf>, Vec<(PathBuf, Vec<u8>)>) {
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for a in 0..4 {
            let da = root.join(format!("s{a}"));
            dirs.push(da.clone());
            for b in 0..5 {
                let db = da.join(format!("e{b}"));
                dirs.push(db.clone());
                for c in ["kubernetes", "compose"] {
                    let dc = db.join(c);
                    dirs.push(dc.clone());
                    // One large directory, so a run of files is split.
                    let n = if (a, b, c) == (0, 0, "kubernetes") { 150 } else { 3 };
                    for f in 0..n {
                        files.push((dc.join(format!("f{f}.yaml")), format!("{a}{b}{c}{f}").into_bytes()));
                    }
                }
                files.push((db.join("VERIFY.md"), b"v".to_vec()));
            }
        }
        (dirs, files)
    }

    #[test]
    fn disk_writes_a_tree_on_two_threads_directories_first() {
        let tmp = tempfile::tempdir().unwrap();
        let (dirs, files) = tree_jobs(tmp.path());
        let jobs: Vec<(PathBuf, &[u8])> = files.iter().map(|(p, b)| (p.clone(), b.as_slice())).collect();
        Disk::default().write_tree(&dirs, &jobs).unwrap();
        for (p, b) in &files {
            assert_eq!(&fs::read(p).unwrap(), b, "{}", p.display());
        }
        for d in &dirs {
            assert!(d.is_dir());
        }
    }

    #[test]
    fn holds_tells_same_changed_and_missing_apart_without_following_or_waiting() {
        let tmp = tempfile::tempdir().unwrap();
        let at = |n: &str| tmp.path().join(n);
        fs::write(at("same"), b"abc\n").unwrap();
        fs::write(at("other"), b"abd\n").unwrap();
        fs::write(at("longer"), b"abc\n\n").unwrap();
        fs::create_dir(at("dir")).unwrap();
        assert_eq!(holds(&at("same"), b"abc\n"), Some(true));
        assert_eq!(holds(&at("other"), b"abc\n"), Some(false));
        assert_eq!(holds(&at("longer"), b"abc\n"), Some(false));
        assert_eq!(holds(&at("dir"), b"abc\n"), Some(false));
        assert_eq!(holds(&at("missing"), b"abc\n"), None);
        assert_eq!(holds(&at("missing").join("below"), b"abc\n"), None);
        #[cfg(unix)]
        {
            // A symlink to the very contents is still a change (it is
            // never written through), a dangling one too.
            std::os::unix::fs::symlink(at("same"), at("link")).unwrap();
            std::os::unix::fs::symlink(at("missing"), at("dangling")).unwrap();
            assert_eq!(holds(&at("link"), b"abc\n"), Some(false));
            assert_eq!(holds(&at("dangling"), b"abc\n"), Some(false));
            // A FIFO is not opened for a read that would wait for a writer.
            let fifo = std::ffi::CString::new(at("fifo").into_os_string().into_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
            assert_eq!(holds(&at("fifo"), b""), Some(false));
        }
    }

    #[test]
    fn disk_reports_a_directory_it_cannot_create_and_stops() {
        let tmp = tempfile::tempdir().unwrap();
        let (dirs, files) = tree_jobs(tmp.path());
        let jobs: Vec<(PathBuf, &[u8])> = files.iter().map(|(p, b)| (p.clone(), b.as_slice())).collect();
        // A file where a directory with children must go: its creation
        // fails, and what goes in it must not wait for it for ever.
        let blocked = dirs.iter().position(|d| d.ends_with("s2")).unwrap();
        fs::write(&dirs[blocked], b"in the way").unwrap();
        match Disk::default().write_tree(&dirs, &jobs) {
            Err(TreeError::Dir(i, e)) => assert_eq!((i, e.kind()), (blocked, std::io::ErrorKind::AlreadyExists)),
            other => panic!("expected the blocked directory to fail, got {other:?}"),
        }
    }

    #[test]
    fn failed_write_leaves_the_tree_byte_identical() {
        let (_tmp, root, first) = rendered_v1();
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
        apply(&root, &next, &ch, &mut Disk::default()).unwrap();
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
        let (_tmp, root, _) = rendered_v1();
        let root = root.as_path();
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
        apply(root, &next, &ch, &mut Disk::default()).unwrap();
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
        let (tmp, root, _) = rendered_v1();
        fs::write(tmp.path().join("precious.txt"), "keep").unwrap();
        fs::write(root.join("shop/other.txt"), "keep").unwrap();
        let manifest = root.join("shop/prod").join(MANIFEST);
        let mut text = fs::read_to_string(&manifest).unwrap();
        text.push_str("../../../precious.txt\n../other.txt\n/etc/hostname\n");
        fs::write(&manifest, text).unwrap();
        let ch = compare(&root, &plan(V1)).unwrap();
        assert!(ch.removed.is_empty(), "{ch:?}");
        apply(&root, &plan(V1), &ch, &mut Disk::default()).unwrap();
        assert_eq!(fs::read_to_string(tmp.path().join("precious.txt")).unwrap(), "keep");
        assert_eq!(fs::read_to_string(root.join("shop/other.txt")).unwrap(), "keep");
    }

    /// A rename that fails after others succeeded (here: a directory where
    /// a rendered file goes) must not leave a half-updated tree.
    #[test]
    fn failed_rename_leaves_the_tree_untouched() {
        let (_tmp, root, _) = rendered_v1();
        let root = root.as_path();
        // Sorts after every other changed file of V2.
        let blocked = root.join("shop/prod/kubernetes/kustomization.yaml");
        fs::remove_file(&blocked).unwrap();
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), "x").unwrap();
        let before = snapshot(root);
        let next = plan(V2);
        let ch = compare(root, &next).unwrap();
        assert!(apply(root, &next, &ch, &mut Disk::default()).is_err());
        let after = snapshot(root);
        assert!(temp_files(&after).is_empty(), "{:?}", temp_files(&after));
        let differing: BTreeSet<&String> =
            after.keys().chain(before.keys()).filter(|k| after.get(*k) != before.get(*k)).collect();
        assert!(differing.is_empty(), "a failed apply changed {differing:?}");
    }

    /// The operations of `Sink`, to count and to make fail.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Op {
        Write,
        Mkdir,
        Rename,
        Flush,
    }

    const OPS: [Op; 4] = [Op::Write, Op::Mkdir, Op::Rename, Op::Flush];

    /// The real disk (with `--fsync`), counting each kind of operation and
    /// failing the `at`-th one (from 1) of kind `op`.
    struct Faulty {
        fail: Option<(Op, usize)>,
        counts: [usize; 4],
        disk: Disk,
    }

    impl Faulty {
        fn new(fail: Option<(Op, usize)>) -> Self {
            Faulty { fail, counts: [0; 4], disk: Disk { fsync: true } }
        }

        /// Counts one `op`; true when it is the one to fail.
        fn fails(&mut self, op: Op) -> bool {
            self.counts[op as usize] += 1;
            self.fail == Some((op, self.counts[op as usize]))
        }
    }

    fn injected(what: &str) -> std::io::Error {
        std::io::Error::other(format!("injected {what} failure"))
    }

    impl Sink for Faulty {
        fn write_file(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
            if !self.fails(Op::Write) {
                return self.disk.write_file(path, bytes);
            }
            let mut f = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
            f.write_all(&bytes[..bytes.len() / 2])?;
            Err(injected("write"))
        }

        fn create_dir(&mut self, path: &Path) -> std::io::Result<()> {
            if self.fails(Op::Mkdir) { Err(injected("mkdir")) } else { fs::create_dir(path) }
        }

        fn rename(&mut self, from: &Path, to: &Path) -> std::io::Result<()> {
            if self.fails(Op::Rename) { Err(injected("rename")) } else { fs::rename(from, to) }
        }

        fn flush(&mut self, files: &[PathBuf]) -> std::io::Result<()> {
            if self.fails(Op::Flush) { Err(injected("flush")) } else { self.disk.flush(files) }
        }

        fn flush_dirs(&mut self, dirs: &[PathBuf]) -> std::io::Result<()> {
            if self.fails(Op::Flush) { Err(injected("flush")) } else { self.disk.flush_dirs(dirs) }
        }
    }

    /// Puts the tree under `root` back to `tree` (a `snapshot`).
    fn restore(root: &Path, tree: &BTreeMap<String, Option<Vec<u8>>>) {
        fs::remove_dir_all(root).expect("remove the tree");
        fs::create_dir(root).expect("recreate the root");
        // Parents sort before their children.
        for (k, v) in tree {
            match v {
                None => fs::create_dir(root.join(k)).expect("mkdir"),
                Some(bytes) => fs::write(root.join(k), bytes).expect("write"),
            }
        }
    }

    fn assert_same_tree(root: &Path, before: &BTreeMap<String, Option<Vec<u8>>>, context: &str) {
        let after = snapshot(root);
        assert!(temp_files(&after).is_empty(), "{context}: left behind {:?}", temp_files(&after));
        let differing: BTreeSet<&String> =
            after.keys().chain(before.keys()).filter(|k| after.get(*k) != before.get(*k)).collect();
        assert!(differing.is_empty(), "{context}: the failed apply changed {differing:?}");
    }

    /// Applies `next` to the tree under `root` once failing at each
    /// operation in turn, of every kind: each attempt must fail and leave
    /// the tree byte-identical with no temporary behind. Then applies it
    /// for real and returns how many operations of each kind that took.
    fn fails_cleanly_at_every_step(root: &Path, next: &Plan) -> [usize; 4] {
        let before = snapshot(root);
        let ch = compare(root, next).expect("compare");
        let mut counter = Faulty::new(None);
        apply(root, next, &ch, &mut counter).expect("apply without failures");
        let counts = counter.counts;
        // The real apply flushes the files, the staged directories, and,
        // once everything is in place, the changed directories.
        assert_eq!(counts[Op::Flush as usize], 3, "{counts:?}");
        restore(root, &before);
        assert_same_tree(root, &before, "restore");
        for op in OPS {
            // The last flush comes after the commit: the tree is new then.
            let last = if op == Op::Flush { 2 } else { counts[op as usize] };
            for at in 1..=last {
                let mut sink = Faulty::new(Some((op, at)));
                let err = apply(root, next, &ch, &mut sink).expect_err("apply must fail when an operation fails");
                let msg = format!("{err:#}");
                assert!(msg.contains("injected"), "{op:?} {at}: {msg}");
                assert_eq!(sink.counts[op as usize], at, "{op:?} {at}: apply went on after the failure");
                assert_same_tree(root, &before, &format!("failing {op:?} {at} of {last}"));
            }
        }
        let mut sink = Faulty::new(None);
        apply(root, next, &ch, &mut sink).expect("apply");
        let after = snapshot(root);
        assert!(temp_files(&after).is_empty(), "{:?}", temp_files(&after));
        for (rel, bytes) in &next.files {
            assert_eq!(after.get(rel), Some(&Some(bytes.clone())), "{rel}");
        }
        for gone in &ch.removed {
            assert!(!after.contains_key(gone), "{gone} was not pruned");
        }
        let again = compare(root, next).expect("compare");
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(again.unchanged.len(), next.files.len());
        counts
    }

    const CART: &[(&str, &str)] = &[
        ("kubernetes/deployment-cart.yaml", "kind: Deployment\n"),
        ("kubernetes/kustomization.yaml", "resources: [deployment-cart.yaml]\n"),
        ("compose/compose.yaml", "services: {cart: {}}\n"),
        ("compose/configs/nginx/default.conf", "server {}\n"),
        ("VERIFY.md", "# checks\n"),
    ];

    /// A brand-new stack directory is written into one staging directory
    /// and moved in with one rename; a failure anywhere leaves nothing.
    #[test]
    fn new_stack_fails_cleanly_at_every_step() {
        let (_tmp, root, _) = rendered_v1();
        let next = plan_of(&[("shop", "prod", true, V1), ("cart", "prod", true, CART), ("cart", "dev", true, CART)]);
        let ch = compare(&root, &next).unwrap();
        assert_eq!(ch.added.len(), 2 * (CART.len() + 1), "{ch:?}");
        assert_eq!(ch.unchanged.len(), V1.len() + 1, "{ch:?}");
        let counts = fails_cleanly_at_every_step(&root, &next);
        // One file per write, no per-file rename: `cart/` moves in at once.
        assert_eq!(counts[Op::Write as usize], ch.added.len());
        assert_eq!(counts[Op::Rename as usize], 1, "{counts:?}");
        // The staging directory and its subdirectories (prod, dev; each
        // with kubernetes, compose, compose/configs, compose/configs/nginx).
        assert_eq!(counts[Op::Mkdir as usize], 1 + 2 * 5, "{counts:?}");
    }

    /// A new environment directory beside an existing one.
    #[test]
    fn new_env_beside_an_existing_one_fails_cleanly_at_every_step() {
        let (_tmp, root, _) = rendered_v1();
        let root = root.as_path();
        let mut next = plan(V1);
        next.files.extend(plan_for("staging", true, CART).files);
        next.env_dirs.insert("shop/staging".into());
        let ch = compare(root, &next).unwrap();
        assert_eq!(ch.added.len(), CART.len() + 1, "{ch:?}");
        assert!(ch.added.iter().all(|f| f.starts_with("shop/staging/")), "{ch:?}");
        let counts = fails_cleanly_at_every_step(root, &next);
        assert_eq!(counts[Op::Write as usize], CART.len() + 1);
        assert_eq!(counts[Op::Rename as usize], 1, "{counts:?}");
    }

    /// Changed files in existing directories, a new subdirectory of an
    /// existing environment, a new stack and a removed file together: a
    /// failure at the last directory rename comes after the other new
    /// directory and every replaced file were moved in, and undoes them.
    #[test]
    fn mixed_update_fails_cleanly_at_every_step() {
        let (_tmp, root, _) = rendered_v1();
        let root = root.as_path();
        let next = plan_of(&[("shop", "prod", true, V2), ("cart", "prod", true, CART)]);
        let ch = compare(root, &next).unwrap();
        assert_eq!(ch.removed, ["shop/prod/kubernetes/service-web.yaml"]);
        assert!(ch.changed.len() >= 4, "{ch:?}");
        let counts = fails_cleanly_at_every_step(root, &next);
        // Each changed file: old aside, new in; the added
        // `shop/prod/kubernetes/deployment-api.yaml`: in; then the new
        // directories `shop/prod/compose/configs` and `cart`.
        assert_eq!(counts[Op::Rename as usize], ch.changed.len() * 2 + 1 + 2, "{counts:?}");
    }

    /// Rendering into an empty root, then rendering again, changes nothing
    /// the second time; with `--fsync` too.
    #[test]
    fn second_render_after_a_fresh_one_is_unchanged() {
        for fsync in [false, true] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let root = tmp.path();
            let p = plan_of(&[("shop", "prod", true, V1), ("shop", "dev", true, V2), ("cart", "prod", true, CART)]);
            let first = compare(root, &p).unwrap();
            assert_eq!(first.added.len(), p.files.len(), "{first:?}");
            apply(root, &p, &first, &mut Disk { fsync }).expect("apply");
            let tree = snapshot(root);
            assert!(temp_files(&tree).is_empty(), "{:?}", temp_files(&tree));
            let files: Vec<&String> = tree.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k).collect();
            assert_eq!(files, p.files.keys().collect::<Vec<_>>());
            let second = compare(root, &p).unwrap();
            assert!(second.is_empty() && second.foreign.is_empty(), "{second:?}");
            assert_eq!(second.unchanged, p.files.keys().cloned().collect::<Vec<_>>());
        }
    }

    /// A missing root: every file is added.
    #[test]
    fn compare_with_a_missing_root_adds_everything() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = plan(V1);
        let ch = compare(&tmp.path().join("nowhere"), &p).unwrap();
        assert_eq!(ch.added, p.files.keys().cloned().collect::<Vec<_>>());
        assert!(ch.changed.is_empty() && ch.removed.is_empty() && ch.foreign.is_empty(), "{ch:?}");
    }

    /// A symlinked directory on the way to a new subtree is refused, and
    /// nothing is written on either side of it.
    #[cfg(unix)]
    #[test]
    fn symlinked_directory_in_the_way_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("out");
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&elsewhere).unwrap();
        render(&root, &plan(V1));
        // The stack directory itself, and an environment directory.
        std::os::unix::fs::symlink(&elsewhere, root.join("cart")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("shop/staging")).unwrap();
        let before = snapshot(&root);
        for next in [plan_of(&[("cart", "prod", true, CART)]), plan_for("staging", false, CART)] {
            let ch = compare(&root, &next).unwrap();
            assert_eq!(ch.added.len(), CART.len() + 1, "{ch:?}");
            let err = apply(&root, &next, &ch, &mut Disk::default()).expect_err("must refuse");
            assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
            assert_same_tree(&root, &before, "symlink");
            assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "written through the symlink");
        }
        // `compare` reads through a symlinked directory, as it always did:
        // the files behind it are compared, not reported as added.
        let inside = plan_for("prod", true, V1);
        fs::remove_file(root.join("cart")).unwrap();
        std::os::unix::fs::symlink(root.join("shop"), root.join("cart")).unwrap();
        let mut through = Plan::default();
        for (k, v) in &inside.files {
            through.files.insert(k.replacen("shop/", "cart/", 1), v.clone());
        }
        through.env_dirs.insert("cart/prod".into());
        let ch = compare(&root, &through).unwrap();
        assert!(ch.is_empty() && ch.unchanged.len() == through.files.len(), "{ch:?}");
    }

    /// Leftovers of a crashed run that had the same process id (a staging
    /// directory, a temporary file) do not stop the next render.
    #[test]
    fn leftovers_of_a_crashed_run_with_the_same_pid_are_replaced() {
        let (_tmp, root, _) = rendered_v1();
        let root = root.as_path();
        let pid = std::process::id();
        let stale_dir = root.join(format!(".cart.stackgen-tmp-{pid}"));
        fs::create_dir_all(stale_dir.join("prod/kubernetes")).unwrap();
        fs::write(stale_dir.join("prod/kubernetes/junk.yaml"), "junk").unwrap();
        let stale_file = root.join(format!("shop/prod/kubernetes/.deployment-web.yaml.stackgen-tmp-{pid}"));
        fs::write(&stale_file, "a longer stale content than the new one").unwrap();
        let next = plan_of(&[("shop", "prod", true, V2), ("cart", "prod", true, CART)]);
        render(root, &next);
        let after = snapshot(root);
        assert!(temp_files(&after).is_empty(), "{:?}", temp_files(&after));
        assert!(!after.contains_key("cart/prod/kubernetes/junk.yaml"));
        assert_eq!(
            after["shop/prod/kubernetes/deployment-web.yaml"].as_deref(),
            Some(b"kind: Deployment\nreplicas: 3\n".as_slice())
        );
    }

    /// `Disk` writes large batches on two threads: when one write fails,
    /// whatever the other thread wrote is removed too.
    #[test]
    fn parallel_write_failure_leaves_nothing_behind() {
        let (_tmp, root, _) = rendered_v1();
        let root = root.as_path();
        let extra: Vec<(String, String)> =
            (0..150).map(|i| (format!("kubernetes/extra-{i:03}.yaml"), format!("n: {i}\n"))).collect();
        let mut files: Vec<(&str, &str)> = V1.to_vec();
        files.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut cart: Vec<(&str, &str)> = CART.to_vec();
        cart.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let next = plan_of(&[("shop", "prod", true, &files), ("cart", "prod", true, &cart)]);
        // A directory where the temporary of a file in the middle goes: its
        // write fails (`Disk` removes only a stale file there).
        let blocker = root.join(format!("shop/prod/kubernetes/.extra-075.yaml.stackgen-tmp-{}", std::process::id()));
        fs::create_dir(&blocker).unwrap();
        fs::write(blocker.join("keep"), "keep").unwrap();
        let before = snapshot(root);
        let ch = compare(root, &next).unwrap();
        assert!(ch.added.len() > 300, "{}", ch.added.len());
        let err = apply(root, &next, &ch, &mut Disk::default()).expect_err("the blocked write must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains("cannot write") && msg.contains("extra-075.yaml"), "{msg}");
        let after = snapshot(root);
        let differing: BTreeSet<&String> =
            after.keys().chain(before.keys()).filter(|k| after.get(*k) != before.get(*k)).collect();
        assert!(differing.is_empty(), "the failed apply changed {differing:?}");
        fs::remove_dir_all(&blocker).unwrap();
        render(root, &next);
        assert!(temp_files(&snapshot(root)).is_empty());
    }
}
