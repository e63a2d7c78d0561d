//! Ctrl-C, SIGTERM and SIGHUP while the output tree is written: the tree is
//! left as it was, nothing of the write stays behind, and the process ends
//! by the signal. A test binary of its own, because a signal is
//! process-wide: in a shared binary it would stop other tests' writes.

mod common;

use std::fs;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stackgen::interrupt;
use stackgen::output::{self, Plan, Sink};

/// Every file under `root` with its bytes, by relative path.
fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(fs::DirEntry::file_name);
        for e in entries {
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            if e.file_type().unwrap().is_dir() {
                out.push((format!("{name}/"), Vec::new()));
                walk(&e.path(), &format!("{name}/"), out);
            } else {
                out.push((name, fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

fn plan(version: &str, files: usize) -> Plan {
    let mut plan = Plan::default();
    for i in 0..files {
        plan.files.insert(format!("shop/prod/kubernetes/f{i:03}.yaml"), format!("v: {version}-{i}\n").into_bytes());
        plan.files.insert(format!("new/prod/kubernetes/f{i:03}.yaml"), format!("v: {version}-{i}\n").into_bytes());
    }
    plan.env_dirs.insert("shop/prod".into());
    plan.env_dirs.insert("new/prod".into());
    plan.seal();
    plan
}

/// Writes and renames like the real file system, and raises `SIGINT` in
/// this process just before its `at`-th call of the `step` kind.
struct RaiseAt {
    step: &'static str,
    at: usize,
    calls: usize,
}

impl RaiseAt {
    fn count(&mut self, step: &str) {
        if step == self.step {
            self.calls += 1;
            if self.calls == self.at {
                // SAFETY: raising signals this process handles. The second
                // one, as when a cancelled job's process group and a parent
                // both pass a SIGTERM on, must not cut the rollback short.
                unsafe {
                    libc::raise(libc::SIGINT);
                    libc::raise(libc::SIGTERM);
                }
            }
        }
    }
}

impl Sink for RaiseAt {
    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.count("write");
        fs::write(path, bytes)
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.count("rename");
        fs::rename(from, to)
    }
}

#[test]
fn a_signal_while_writing_leaves_the_tree_as_it_was() {
    // In the middle of writing the new files, and in the middle of moving
    // them into place (the first renames already done, then undone).
    for (step, at) in [("write", 1), ("write", 30), ("rename", 1), ("rename", 12), ("rename", 39)] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let old = plan("old", 20);
        // Only `shop` exists before: the new plan changes its files and
        // adds the stack `new` (a staging directory renamed in last).
        let mut first = old.clone();
        first.files.retain(|k, _| k.starts_with("shop/"));
        first.env_dirs.retain(|k| k.starts_with("shop/"));
        let changes = output::compare(root, &first).unwrap();
        output::apply(root, &first, &changes, &mut output::Disk::default()).unwrap();
        let before = snapshot(root);

        let next = plan("new", 20);
        let changes = output::compare(root, &next).unwrap();
        let mut sink = RaiseAt { step, at, calls: 0 };
        let Err(err) = output::apply(root, &next, &changes, &mut sink) else {
            panic!("{step} {at}: the interrupted write went through");
        };
        assert_eq!(interrupt::take(), Some(libc::SIGINT), "{step} {at}: the signal is recorded for the exit");
        assert_eq!(err.to_string(), format!("interrupted by SIGINT: nothing was changed in `{}`", root.display()));
        assert!(sink.calls >= at, "{step} {at}: the sink was called {} times", sink.calls);
        assert_eq!(snapshot(root), before, "{step} {at}: the tree must be as it was");

        // With the signal taken, the same write goes through.
        output::apply(root, &next, &changes, &mut output::Disk::default()).unwrap();
        assert!(output::compare(root, &next).unwrap().is_empty());
    }
}

/// A generated stack of `n` services, each with a Deployment and a Service.
fn big_stack(n: usize) -> String {
    let mut s = String::from("name: big\nnamespace: {name: big}\ntargets: [kubernetes]\nservices:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  svc-{i:04}:\n    image: registry.example.com/svc:{i}.0.0\n    ports: {{http: 8080}}\n    \
             resources: {{requests: {{cpu: 10m, memory: 16Mi}}, limits: {{cpu: 100m, memory: 64Mi}}}}\n    \
             expose: {{ports: [{{port: 80, target: http}}]}}\n"
        ));
    }
    s
}

fn leftovers(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().contains(".stackgen-") && e.file_name() != ".stackgen-manifest" {
                found.push(e.path());
            }
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            }
        }
    }
    found
}

/// The real binary, stopped while it writes a fresh tree: once its staging
/// directory appears in the output root, it gets the signal.
#[test]
fn the_binary_ends_by_the_signal_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("stacks")).unwrap();
    fs::write(dir.path().join("stacks/big.yaml"), big_stack(1500)).unwrap();
    for (sig, out) in [(libc::SIGINT, "int"), (libc::SIGTERM, "term"), (libc::SIGHUP, "hup")] {
        let root = dir.path().join(out);
        fs::create_dir(&root).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_stackgen"))
            .args(["render", "big", "-q", "--out", out])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut sent = false;
        while started.elapsed() < common::TIME_LIMIT {
            if fs::read_dir(&root).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".stackgen-tmp-"))
            {
                // SAFETY: signalling the child this test started.
                unsafe { libc::kill(child.id() as libc::pid_t, sig) };
                sent = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(sent, "{out}: no staging directory appeared");
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.signal(), Some(sig), "{out}: ends by the signal; stderr: {stderr}");
        if stderr.is_empty() {
            // The signal came after the last rename: the write finished.
            let check = Command::new(env!("CARGO_BIN_EXE_stackgen"))
                .args(["render", "big", "-q", "--check", "--out", out])
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(check.status.success(), "{out}: finished, but not up to date");
        } else {
            assert_eq!(
                stderr.trim_end(),
                format!("error: interrupted by {}: nothing was changed in `{out}`", interrupt::name(sig)),
                "{out}"
            );
            assert_eq!(snapshot(&root), Vec::new(), "{out}: the output root must be empty again");
        }
        assert_eq!(leftovers(&root), Vec::<PathBuf>::new(), "{out}: temporary files left behind");
    }
}
