//! Shared helpers of the integration tests: a builder that runs the real
//! `stackgen` binary with a time limit, and the snapshot settings.
//!
//! Not every test binary uses every helper.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one run of the binary may take before it is killed and the
/// test fails. Generous: a healthy run takes milliseconds, this only stops a
/// hang (an alias bomb, a runaway loop) from stalling the suite.
pub const TIME_LIMIT: Duration = Duration::from_secs(20);

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One invocation of the binary, built up like `just`'s test helper:
/// `Test::new().arg("render").arg("loops").current_dir(dir).run()`.
#[must_use]
pub struct Test {
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    envs: Vec<(OsString, OsString)>,
}

impl Test {
    pub fn new() -> Test {
        Test { args: Vec::new(), cwd: None, envs: Vec::new() }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Test {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Test {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Test {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Runs the binary; kills it and panics if it takes longer than
    /// `TIME_LIMIT`. Always runs in a directory: the current one of the test
    /// process would otherwise be the repository, whose `stacks/` would be
    /// picked up instead of the embedded stacks.
    pub fn run(self) -> Output {
        let cwd = self.cwd.expect("Test::run needs a current_dir (a temporary directory)");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackgen"));
        cmd.args(&self.args)
            .current_dir(&cwd)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn stackgen");
        let mut out_pipe = child.stdout.take().expect("stdout pipe");
        let mut err_pipe = child.stderr.take().expect("stderr pipe");
        // Drain both pipes on threads so a chatty child cannot block on a
        // full pipe while we wait for it.
        let out_thread = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out_pipe.read_to_end(&mut buf);
            buf
        });
        let err_thread = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err_pipe.read_to_end(&mut buf);
            buf
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for stackgen") {
                break status;
            }
            if start.elapsed() > TIME_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("stackgen {:?} did not finish within {TIME_LIMIT:?}; killed", self.args);
            }
            thread::sleep(Duration::from_millis(5));
        };
        let stdout = out_thread.join().expect("stdout reader");
        let stderr = err_thread.join().expect("stderr reader");
        Output {
            args: self.args,
            code: status.code(),
            stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Output {
    pub args: Vec<OsString>,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Output {
        assert_eq!(
            self.code,
            Some(expected),
            "stackgen {:?}: expected exit code {expected}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self.no_panic()
    }

    /// Asserts the binary did not panic.
    #[track_caller]
    pub fn no_panic(&self) -> &Output {
        assert!(
            !self.stderr.contains("panicked") && self.code != Some(101),
            "stackgen {:?} panicked:\n{}",
            self.args,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Output {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}:\n{}", self.stdout);
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Output {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", self.stderr);
        self
    }
}

/// Every regular file under `root` (symlinks not followed), by `/`-separated
/// relative path. Empty when `root` does not exist.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries {
            let e = e.expect("read_dir entry");
            let name = e.file_name().into_string().expect("UTF-8 file name");
            let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let t = e.file_type().expect("file type");
            if t.is_dir() {
                walk(&e.path(), &r, out);
            } else {
                out.insert(r, std::fs::read(e.path()).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

/// Snapshot settings shared by every test binary: snapshots live in the
/// top-level `snapshots/` directory under exactly the name given.
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(repo().join("snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("stackgen-test").tempdir().expect("temporary directory")
}

/// Writes `text` to `dir/rel`, creating parent directories.
pub fn write(dir: &Path, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create parent directories");
    std::fs::write(&path, text).expect("write file");
    path
}

/// `snapshot!(name, content)`: an insta snapshot stored as
/// `snapshots/<name>.snap`.
#[allow(unused_macros)]
macro_rules! snapshot {
    ($name:expr, $content:expr $(,)?) => {
        common::settings().bind(|| insta::assert_snapshot!($name, $content))
    };
}
