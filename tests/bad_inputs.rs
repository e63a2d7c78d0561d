//! A catalogue of bad stack files (`tests/fixtures/bad/<case>.yaml`), each
//! rendered alone through the real binary:
//!
//! `stackgen render --stacks stacks --all --out out [ARGS]`
//!
//! with `stacks/` holding only that file and `ARGS` read from an optional
//! `<case>.args` next to it. Every case must exit 2 within the time limit,
//! without a panic, write nothing, and point at `<case>.yaml:LINE:COL`
//! (or at least name the file where no line applies). Its stderr is
//! snapshotted as `snapshots/bad@<case>.yaml.snap`.

#[macro_use]
mod common;

use std::path::Path;
use std::sync::Mutex;

use common::{Output, Test, tempdir, tree};

/// Cases with no line to point at: they must still name the file.
const NO_LINE: &[&str] = &["empty-file", "non-utf8", "unknown-environment"];

/// Cases that fail today because of a bug in `src/`. They are skipped by
/// the catalogue and each has an `#[ignore]`d test below; remove a case from
/// here once it is fixed, and accept its new snapshot.
const KNOWN_BUGS: &[&str] = &[];

/// What the message must say, beyond the generic checks.
const EXPECT: &[(&str, &[&str])] = &[
    ("alias-bomb", &["alias"]),
    ("backup-name-too-long", &["`a-database-with-a-rather-long-name-for-its-team-x-backup`", "52"]),
    // A NUL used to end the file silently for the YAML reader (the
    // broken line after it went unnoticed).
    ("control-character", &["U+0000", "control-character.yaml:6:22"]),
    ("compose-publish-with-replicas", &["host port 8080", "3 replicas", "compose-publish-with-replicas.yaml:10:"]),
    ("config-file-name-dotdot", &["`../../../../evil.conf`"]),
    ("config-name-slash", &["`site/../../escape`"]),
    ("deep-nesting", &["deep-nesting.yaml:"]),
    ("duplicate-keys", &["duplicate key `replicas`", "line 7"]),
    ("empty-file", &["empty"]),
    ("environment-name-dotdot", &["`../../escape`"]),
    ("expose-port-twice", &["port 80 is already exposed", "port name `http` is already used"]),
    ("environment-name-empty", &["environment name ``"]),
    ("environment-name-null", &["the key `~` reads as null", "environment-name-null.yaml:9:3"]),
    ("environment-name-slash", &["`prod/eu`"]),
    (
        "environment-unknown-key",
        &["unknown key `extend` in environment `prod`", "did you mean `extends`", "`components`"],
    ),
    ("missing-required-key", &["`namespace`"]),
    ("mount-path-dotdot", &["/var/../etc"]),
    (
        "mount-subpath",
        &[
            "mount-subpath.yaml:14:",
            "cannot mount a sub-path of a named or ephemeral volume",
            "subPath `secret_key` is not a key of this secret",
            "keys: secretKey, token",
            "subPath `../lfs` must be a relative path",
        ],
    ),
    ("multiple-documents", &["one YAML document"]),
    (
        "network-blocks-dependency",
        &[
            "admits nothing into `api` from `web` on port 9000",
            "admits nothing into `db` from `web` on port 5432",
            "from its backup job `db-backup`",
            "the backup job `db-backup` connects to `db`, but the NetworkPolicy blocks egress to port 5432",
        ],
    ),
    ("network-blocks-load-balancer", &["LoadBalancer", "port 2222;", "network-blocks-load-balancer.yaml:8:5"]),
    ("network-blocks-route", &["port 8080 of `web`", "port 80 is the Service's", "network-blocks-route.yaml:10:3"]),
    ("non-utf8", &["UTF-8"]),
    ("object-name-clash", &["Service `api`", "object-name-clash.yaml:9:15", "services.api"]),
    ("port-out-of-range", &["70000", "out of range"]),
    ("probe-unknown-port", &["`htp`", "did you mean `http`", "`metrics`"]),
    ("route-unknown-service", &["`webb`", "did you mean `web`"]),
    ("route-path-traefik-rule", &["is not a URL path", "route-path-traefik-rule.yaml:14:5"]),
    ("rwo-volume-with-replicas", &["2 replicas", "`uploads`", "ReadWriteOnce"]),
    ("service-name-digit", &["`9web`", "start with a letter"]),
    ("service-name-dotdot", &["`..`"]),
    ("service-name-slash", &["`web/admin`"]),
    ("service-name-uppercase", &["`Web`"]),
    ("stack-name-mismatch", &["`shop`", "stack-name-mismatch.yaml"]),
    ("tabs", &["tab"]),
    ("top-level-list", &["mapping"]),
    ("undeclared-secret", &["secret `db` is not declared"]),
    ("undeclared-secret-key", &["`passwrd`", "did you mean `password`"]),
    ("undeclared-volume", &["volume `dat`", "did you mean `data`"]),
    ("unknown-environment", &["`prdo`", "did you mean `prod`"]),
    (
        "unsafe-names",
        &[
            "`a: b` is not a valid annotation key",
            "Compose variable `2FA_SEED`, which starts with a digit",
            "image `nginx:${TAG}` contains `$`",
            "version `17 beta` becomes an image tag",
            "`web,websecure` is not a Traefik entrypoint name",
        ],
    ),
    ("unknown-nested-key", &["`replcas`", "did you mean `replicas`"]),
    ("unknown-top-level-key", &["`servces`", "did you mean `services`"]),
    ("wrong-type", &["many", "expected a whole number"]),
    ("volume-keep-ephemeral", &["`keep` protects a persistent volume", "volume-keep-ephemeral.yaml:5:"]),
    ("yaml-syntax-error", &["invalid YAML"]),
    ("yaml-tag", &["tag"]),
];

/// Cases with several problems: how many errors each must report.
const MULTIPLE: &[(&str, usize)] = &[
    ("multiple-errors", 5),
    ("multiple-type-errors", 5),
    ("network-blocks-dependency", 5),
    ("unsafe-names", 5),
    ("mount-subpath", 3),
];

/// Runs one fixture in its own temporary directory.
fn run_case(fixture: &Path, extra: &[&str]) -> (Output, bool) {
    let tmp = tempdir();
    let name = fixture.file_name().unwrap();
    std::fs::create_dir(tmp.path().join("stacks")).unwrap();
    std::fs::copy(fixture, tmp.path().join("stacks").join(name)).unwrap();
    let out = Test::new()
        .args(["render", "--stacks", "stacks", "--all", "--out", "out"])
        .args(extra)
        .current_dir(tmp.path())
        .run();
    let wrote = !tree(&tmp.path().join("out")).is_empty();
    (out, wrote)
}

fn extra_args(fixture: &Path) -> Vec<String> {
    std::fs::read_to_string(fixture.with_extension("args"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `(line, col)` of every `--> stacks/<file>:LINE:COL` location.
fn locations(stderr: &str, file: &str) -> Vec<(usize, usize)> {
    let marker = format!("--> stacks/{file}:");
    stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(&marker))
        .filter_map(|rest| {
            let (line, col) = rest.split_once(':')?;
            Some((line.parse().ok()?, col.parse().ok()?))
        })
        .collect()
}

/// Checks the rules every bad input must follow; returns what is wrong.
fn problems(stem: &str, out: &Output, wrote: bool) -> Vec<String> {
    let file = format!("{stem}.yaml");
    let mut p = Vec::new();
    if out.code != Some(2) {
        p.push(format!("exit code {:?}, expected 2", out.code));
    }
    if out.stderr.contains("panicked") {
        p.push("panicked".into());
    }
    if out.stderr.contains("internal error") {
        p.push("reported as an internal error".into());
    }
    if wrote {
        p.push("files were written".into());
    }
    let locs = locations(&out.stderr, &file);
    if NO_LINE.contains(&stem) {
        if !out.stderr.contains(&format!("stacks/{file}")) {
            p.push(format!("stderr does not name `stacks/{file}`"));
        }
    } else if locs.is_empty() {
        p.push(format!("no `stacks/{file}:LINE:COL` location"));
    }
    if !locs.is_sorted() {
        p.push(format!("locations not sorted: {locs:?}"));
    }
    for (case, needles) in EXPECT {
        if *case == stem {
            for n in *needles {
                if !out.stderr.contains(n) {
                    p.push(format!("stderr lacks {n:?}"));
                }
            }
        }
    }
    for (case, n) in MULTIPLE {
        if *case == stem {
            let errors = out.stderr.lines().filter(|l| l.starts_with("error: ") && !l.contains(" found; ")).count();
            if errors != *n || locs.len() != *n {
                p.push(format!("expected {n} located errors, got {errors} errors at {locs:?}"));
            }
            if !out.stderr.contains(&format!("error: {n} problems found; nothing was written")) {
                p.push(format!("no summary of {n} problems"));
            }
        }
    }
    p
}

#[test]
fn every_bad_input_is_rejected_with_a_location() {
    let failures = Mutex::new(Vec::new());
    common::settings().bind(|| {
        insta::glob!("fixtures/bad/*.yaml", |path| {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            if KNOWN_BUGS.contains(&stem) {
                return;
            }
            let args = extra_args(path);
            let (out, wrote) = run_case(path, &args.iter().map(String::as_str).collect::<Vec<_>>());
            for p in problems(stem, &out, wrote) {
                failures.lock().unwrap().push(format!("{stem}: {p}\n{}", out.stderr));
            }
            insta::assert_snapshot!("bad", out.stderr);
        });
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} problem(s):\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn every_case_is_checked_by_name() {
    // Catch typos in the tables above: every named case has a fixture.
    let dir = common::repo().join("tests/fixtures/bad");
    for name in
        NO_LINE.iter().chain(KNOWN_BUGS).chain(EXPECT.iter().map(|(n, _)| n)).chain(MULTIPLE.iter().map(|(n, _)| n))
    {
        assert!(dir.join(format!("{name}.yaml")).is_file(), "no fixture {name}.yaml");
    }
}

#[test]
fn mutable_image_tag_is_a_warning() {
    let fixture = common::repo().join("tests/fixtures/warn/mutable-image-tag.yaml");
    let (out, wrote) = run_case(&fixture, &[]);
    out.code(0);
    assert!(wrote, "a warning must not stop the render");
    assert!(out.stderr.contains("`latest`"), "{}", out.stderr);
    let locs = locations(&out.stderr, "mutable-image-tag.yaml");
    assert_eq!(locs.iter().map(|l| l.0).collect::<Vec<_>>(), [7, 9], "{}", out.stderr);
    assert!(!out.stderr.contains("worker"), "a pinned tag is not warned about:\n{}", out.stderr);
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
    snapshot!("warn-mutable-image-tag", out.stderr);
}

/// Secret values written out as env literals, and a `$(VAR)` in a probe
/// command (never expanded there), are warnings at their lines; references,
/// files and numbers are not.
#[test]
fn secret_literals_and_probe_references_are_warnings() {
    let fixture = common::repo().join("tests/fixtures/warn/secret-literals.yaml");
    let (out, wrote) = run_case(&fixture, &[]);
    out.code(0);
    assert!(wrote, "a warning must not stop the render");
    assert!(out.stderr.contains("`DB_PASSWORD` looks like a secret"), "{}", out.stderr);
    assert!(out.stderr.contains("the URL in `DATABASE_URL` holds a password"), "{}", out.stderr);
    assert!(out.stderr.contains("`$(DB_PASS)`: a probe's command is run as it is"), "{}", out.stderr);
    let locs = locations(&out.stderr, "secret-literals.yaml");
    assert_eq!(locs.iter().map(|l| l.0).collect::<Vec<_>>(), [10, 11, 19], "{}", out.stderr);
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
}

/// Runs a `KNOWN_BUGS` case with the catalogue's checks.
fn check_known_bug(stem: &str) {
    let fixture = common::repo().join(format!("tests/fixtures/bad/{stem}.yaml"));
    let (out, wrote) = run_case(&fixture, &[]);
    let p = problems(stem, &out, wrote);
    assert!(p.is_empty(), "{stem}: {p:#?}\n--- stdout ---\n{}\n--- stderr ---\n{}", out.stdout, out.stderr);
}

#[test]

fn argocd_project_with_slash_is_rejected() {
    check_known_bug("argocd-project-slash");
}

/// Renders one stack file written inline; returns the run.
fn run_inline(stem: &str, text: &str) -> Output {
    let tmp = tempdir();
    let fixture = common::write(tmp.path(), &format!("{stem}.yaml"), text);
    run_case(&fixture, &[]).0
}

#[test]

fn deep_nesting_reports_the_depth_limit() {
    let text = format!("name: deep\nnamespace: {{name: deep}}\nlabels: {}{}\n", "[".repeat(1000), "]".repeat(1000));
    let out = run_inline("deep", &text);
    out.code(2).stderr_has("nesting deeper than 64 levels");
}

#[test]

fn block_mapping_problems_point_at_the_first_key() {
    // A mount without `path`: the mapping starts at `readOnly` (8:9).
    let out = run_inline(
        "mount",
        "name: mount\nnamespace:\n  name: mount\nservices:\n  web:\n    image: nginx:1.27\n    mounts:\n      - readOnly: true\n        volume: data\nvolumes:\n  data: {ephemeral: true}\n",
    );
    out.code(2).stderr_has("missing required key `path`");
    assert_eq!(locations(&out.stderr, "mount.yaml"), [(8, 9)], "{}", out.stderr);
    // A missing top-level key: the document starts at 1:1.
    let out = run_inline("top", "name: top\nservices: {}\n");
    out.code(2).stderr_has("missing required key `namespace`");
    assert_eq!(locations(&out.stderr, "top.yaml"), [(1, 1)], "{}", out.stderr);
}
