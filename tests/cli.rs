//! The command line end to end: the real binary in temporary directories.
//!
//! Covers every subcommand, the exit codes (0 success, 1 differences found by
//! `--check`, 2 anything invalid), pruning, template overrides, output
//! determinism and the symlink guard, plus snapshots of every file the
//! built-in stacks render (so a template change shows up as a reviewed diff).

#[macro_use]
mod common;

use std::path::Path;

use common::{Test, tempdir, tree, write};

/// A small custom stack: two services, one exposed, two environments.
const SHOP: &str = "\
name: shop
description: A small shop
namespace:
  name: shop
services:
  web:
    image: nginx:1.27
    ports:
      http: 8080
    env:
      GREETING: \"on\"
    expose:
      ports:
        - { port: 80, target: http }
  api:
    image: ghcr.io/example/api:1.0
    env:
      MODE: \"0755\"
environments:
  staging: {}
  prod:
    services:
      web:
        replicas: 2
";

/// A temporary directory holding `stacks/shop.yaml`.
fn shop_dir() -> tempfile::TempDir {
    let tmp = tempdir();
    write(tmp.path(), "stacks/shop.yaml", SHOP);
    tmp
}

fn render_loops(dir: &Path) -> common::Output {
    Test::new().arg("render").arg("loops").current_dir(dir).run()
}

#[test]
fn render_in_empty_dir_uses_embedded_stacks() {
    let tmp = tempdir();
    let out = render_loops(tmp.path());
    out.code(0).stdout_has("loops: ").stdout_has(" written, 0 unchanged, 0 removed (rendered/loops)");
    let files = tree(&tmp.path().join("rendered"));
    let k8s: Vec<&String> = files.keys().filter(|p| p.starts_with("loops/prod/kubernetes/")).collect();
    assert!(k8s.len() > 5, "too few Kubernetes files: {k8s:#?}");
    assert!(files.contains_key("loops/prod/kubernetes/kustomization.yaml"), "{:#?}", files.keys());
    assert!(files.contains_key("loops/prod/kubernetes/deployment-loops-app.yaml"), "{:#?}", files.keys());
    assert!(files.contains_key("loops/prod/.stackgen-manifest"));
    for p in &k8s {
        assert!(Path::new(p.as_str()).extension().is_some_and(|e| e == "yaml"), "{p}");
        let text = std::str::from_utf8(&files[p.as_str()]).expect("UTF-8");
        let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(doc.get("apiVersion").is_some(), "{p} has no apiVersion");
    }
    // Nothing but the output tree is created.
    let top: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(top, ["rendered"]);
}

#[test]
fn rendering_twice_changes_nothing() {
    let tmp = tempdir();
    render_loops(tmp.path()).code(0);
    let first = tree(&tmp.path().join("rendered"));
    let out = render_loops(tmp.path());
    out.code(0);
    let n = first.len();
    assert_eq!(out.stdout, format!("loops: 0 written, {n} unchanged, 0 removed (rendered/loops)\n"));
    assert_eq!(out.stderr, "");
    assert_eq!(tree(&tmp.path().join("rendered")), first);
}

#[test]
fn out_option_chooses_the_output_root() {
    let tmp = tempdir();
    let out = Test::new().args(["render", "loops", "--out", "deploy/k8s"]).current_dir(tmp.path()).run();
    out.code(0).stdout_has("(deploy/k8s/loops)");
    assert!(!tmp.path().join("rendered").exists());
    assert!(tmp.path().join("deploy/k8s/loops/prod/kubernetes/kustomization.yaml").is_file());
    // --out pointing at a file is an error.
    write(tmp.path(), "afile", "x");
    let out = Test::new().args(["render", "loops", "--out", "afile"]).current_dir(tmp.path()).run();
    out.code(2);
    snapshot!("cli-out-is-a-file", out.stderr);
}

#[test]
fn stacks_option_reads_a_custom_stack() {
    let tmp = tempdir();
    write(tmp.path(), "mine/shop.yaml", SHOP);
    let out = Test::new().args(["render", "shop", "--stacks", "mine"]).current_dir(tmp.path()).run();
    out.code(0);
    snapshot!("cli-render-custom-stdout", out.stdout);
    let files = tree(&tmp.path().join("rendered"));
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    snapshot!("cli-render-custom-files", names.join("\n"));
    // A string that YAML 1.1 reads as a boolean or an octal stays a string.
    let web = std::str::from_utf8(&files["shop/prod/kubernetes/deployment-web.yaml"]).unwrap();
    assert!(web.contains("value: \"on\""), "{web}");
    assert!(web.contains("replicas: 2"), "{web}");
    let api = std::str::from_utf8(&files["shop/staging/kubernetes/deployment-api.yaml"]).unwrap();
    assert!(api.contains("value: \"0755\""), "{api}");
    // The built-in stacks are not in that directory.
    let out = Test::new().args(["render", "loops", "--stacks", "mine"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("unknown stack `loops`");
}

#[test]
fn stacks_dir_in_cwd_is_used_by_default() {
    let tmp = shop_dir();
    Test::new().args(["render", "shop"]).current_dir(tmp.path()).run().code(0);
    assert!(tmp.path().join("rendered/shop/staging/kubernetes/kustomization.yaml").is_file());
}

/// `v` with every object's keys sorted.
fn sorted_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().map(|(k, v)| (k, sorted_json(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted_json).collect()),
        other => other,
    }
}

#[test]

fn stack_without_description_renders() {
    let tmp = tempdir();
    write(
        tmp.path(),
        "stacks/bare.yaml",
        "name: bare\nnamespace:\n  name: bare\nservices:\n  web:\n    image: nginx:1.27\n",
    );
    Test::new().args(["render", "bare"]).current_dir(tmp.path()).run().code(0);
    assert!(tmp.path().join("rendered/bare/default/kubernetes/deployment-web.yaml").is_file());
}

#[test]
fn list_text_and_json() {
    let tmp = shop_dir();
    let out = Test::new().arg("list").current_dir(tmp.path()).run();
    out.code(0);
    snapshot!("cli-list-text", out.stdout);
    let out = Test::new().args(["list", "--format", "json"]).current_dir(tmp.path()).run();
    out.code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("list --format json prints JSON");
    // Key order inside a JSON object carries no meaning: compare sorted.
    snapshot!("cli-list-json", serde_json::to_string_pretty(&sorted_json(v)).unwrap());

    // The built-in stacks, whatever they are, include `loops`.
    let empty = tempdir();
    let out = Test::new().args(["list", "--format", "json"]).current_dir(empty.path()).run();
    out.code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let loops = v.as_array().unwrap().iter().find(|s| s["stack"] == "loops").expect("loops is listed");
    assert_eq!(loops["file"], "<built-in>/loops.yaml");
    assert!(loops["environments"].as_array().unwrap().iter().any(|e| e["name"] == "prod"));
    let out = Test::new().arg("list").current_dir(empty.path()).run();
    out.code(0).stdout_has("loops\n  prod: ");
}

#[test]
fn validate_writes_nothing() {
    let tmp = shop_dir();
    let out = Test::new().arg("validate").current_dir(tmp.path()).run();
    out.code(0);
    assert_eq!(tree(tmp.path()).len(), 1, "validate wrote files");
    // It renders in memory exactly what `render` writes.
    let other = shop_dir();
    Test::new().args(["render", "--all"]).current_dir(other.path()).run().code(0);
    let n = tree(&other.path().join("rendered")).len();
    assert_eq!(out.stdout, format!("ok: 1 stack, {n} files rendered in memory\n"));

    write(tmp.path(), "stacks/broken.yaml", "name: broken\nnamespace: {name: broken}\nservices:\n  web: {imag: x}\n");
    let out = Test::new().arg("validate").current_dir(tmp.path()).run();
    out.code(2);
    snapshot!("cli-validate-error", out.stderr);
    // Validating one named stack ignores the broken one.
    Test::new().args(["validate", "shop"]).current_dir(tmp.path()).run().code(0);
    assert!(!tmp.path().join("rendered").exists());
}

#[test]
fn check_reports_added_changed_and_removed_files() {
    let tmp = shop_dir();
    let check = || Test::new().args(["render", "--all", "--check"]).current_dir(tmp.path()).run();

    // Nothing rendered yet: everything is missing, nothing is written.
    let out = check();
    out.code(1);
    snapshot!("cli-check-nothing-rendered", out.stdout);
    assert!(!tmp.path().join("rendered").exists());

    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    let out = check();
    out.code(0);
    let rendered = tree(&tmp.path().join("rendered"));
    assert_eq!(out.stdout, format!("up to date: {} files\n", rendered.len()));

    // Hand edits and deletions are found, and --check repairs nothing.
    let root = tmp.path().join("rendered");
    let edited = root.join("shop/prod/kubernetes/deployment-web.yaml");
    let mut text = std::fs::read_to_string(&edited).unwrap();
    text.push_str("# hand edit\n");
    std::fs::write(&edited, &text).unwrap();
    std::fs::remove_file(root.join("shop/staging/kubernetes/service-web.yaml")).unwrap();
    let out = check();
    out.code(1);
    snapshot!("cli-check-edited-and-deleted", out.stdout);
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), text);

    // A service removed from the stack: its files are reported as removed.
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    assert_eq!(tree(&root), rendered);
    write(
        tmp.path(),
        "stacks/shop.yaml",
        SHOP.replace("  api:\n    image: ghcr.io/example/api:1.0\n    env:\n      MODE: \"0755\"\n", ""),
    );
    let out = check();
    out.code(1);
    snapshot!("cli-check-service-removed", out.stdout);
    let out = Test::new().args(["render", "--all", "--check", "--format", "json"]).current_dir(tmp.path()).run();
    out.code(1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["upToDate"], false);
    assert_eq!(
        v["removed"],
        serde_json::json!(["shop/prod/kubernetes/deployment-api.yaml", "shop/staging/kubernetes/deployment-api.yaml"])
    );
    assert_eq!(tree(&root), rendered, "--check wrote or deleted files");
}

#[test]
fn removed_service_is_pruned_and_foreign_files_are_kept() {
    let tmp = shop_dir();
    let root = tmp.path().join("rendered");
    Test::new().args(["render", "shop"]).current_dir(tmp.path()).run().code(0);
    let api = root.join("shop/prod/kubernetes/deployment-api.yaml");
    assert!(api.is_file());
    write(&root, "shop/prod/kubernetes/NOTES.md", "mine\n");
    write(&root, "shop/prod/extra/keep.yaml", "kind: Mine\n");

    write(
        tmp.path(),
        "stacks/shop.yaml",
        SHOP.replace("  api:\n    image: ghcr.io/example/api:1.0\n    env:\n      MODE: \"0755\"\n", ""),
    );
    let out = Test::new().args(["render", "shop"]).current_dir(tmp.path()).run();
    out.code(0);
    snapshot!("cli-prune-stdout", out.stdout);
    snapshot!("cli-prune-stderr", out.stderr);
    assert!(!api.exists(), "stale file not pruned");
    assert!(!root.join("shop/staging/kubernetes/deployment-api.yaml").exists());
    assert_eq!(std::fs::read_to_string(root.join("shop/prod/kubernetes/NOTES.md")).unwrap(), "mine\n");
    assert_eq!(std::fs::read_to_string(root.join("shop/prod/extra/keep.yaml")).unwrap(), "kind: Mine\n");
    let kustomization = std::fs::read_to_string(root.join("shop/prod/kubernetes/kustomization.yaml")).unwrap();
    assert!(!kustomization.contains("deployment-api"), "{kustomization}");
    // The tree is now up to date despite the foreign files.
    Test::new().args(["render", "shop", "--check"]).current_dir(tmp.path()).run().code(0);
}

#[test]
fn removed_environment_is_pruned() {
    let tmp = shop_dir();
    let root = tmp.path().join("rendered");
    Test::new().args(["render", "shop"]).current_dir(tmp.path()).run().code(0);
    assert!(root.join("shop/staging").is_dir());
    write(tmp.path(), "stacks/shop.yaml", SHOP.replace("  staging: {}\n", ""));
    let out = Test::new().args(["render", "shop", "--check"]).current_dir(tmp.path()).run();
    out.code(1).stdout_has("removed: rendered/shop/staging/kubernetes/deployment-web.yaml");
    Test::new().args(["render", "shop"]).current_dir(tmp.path()).run().code(0);
    assert!(!root.join("shop/staging").exists(), "{:#?}", tree(&root).keys());
    assert!(root.join("shop/prod/kubernetes/deployment-web.yaml").is_file());
}

#[test]
fn env_option_renders_one_environment() {
    let tmp = shop_dir();
    Test::new().args(["render", "shop", "--env", "prod"]).current_dir(tmp.path()).run().code(0);
    let files = tree(&tmp.path().join("rendered"));
    assert!(files.keys().all(|p| p.starts_with("shop/prod/")), "{:#?}", files.keys());
}

#[test]
fn unknown_env_is_an_error_with_suggestion() {
    let tmp = shop_dir();
    let out = Test::new().args(["render", "shop", "--env", "prdo"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("did you mean `prod`?");
    snapshot!("cli-unknown-env", out.stderr);
    assert!(!tmp.path().join("rendered").exists());
}

#[test]
fn unknown_stack_is_an_error() {
    let tmp = shop_dir();
    let out = Test::new().args(["render", "shpo"]).current_dir(tmp.path()).run();
    out.code(2);
    snapshot!("cli-unknown-stack", out.stderr);
    assert!(!tmp.path().join("rendered").exists());
}

#[test]
fn render_needs_a_stack_or_all() {
    let tmp = shop_dir();
    let out = Test::new().arg("render").current_dir(tmp.path()).run();
    out.code(2);
    snapshot!("cli-render-without-stack", out.stderr);
    assert!(!tmp.path().join("rendered").exists());
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempdir();
    Test::new().args(["render", "--bogus"]).current_dir(tmp.path()).run().code(2);
    Test::new().args(["render", "loops", "--all"]).current_dir(tmp.path()).run().code(2);
    Test::new().arg("frobnicate").current_dir(tmp.path()).run().code(2);
    Test::new().args(["render", "loops", "--format", "xml"]).current_dir(tmp.path()).run().code(2);
    Test::new().current_dir(tmp.path()).run().code(2);
    let help = Test::new().arg("--help").current_dir(tmp.path()).run();
    help.code(0).stdout_has("Exit codes: 0 success, 1 differences found (--check), 2");
    Test::new().arg("--version").current_dir(tmp.path()).run().code(0).stdout_has("stackgen ");
    assert_eq!(tree(tmp.path()).len(), 0);
}

#[test]
fn missing_stacks_dir_is_an_error() {
    let tmp = tempdir();
    let out = Test::new().args(["render", "--all", "--stacks", "nope"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("nope");
    let out = Test::new().args(["render", "--all", "--templates", "nope"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("nope");
    assert_eq!(tree(tmp.path()).len(), 0);
}

/// The embedded namespace template, as the repository has it.
fn namespace_template() -> String {
    std::fs::read_to_string(common::repo().join("templates/kubernetes/namespace.yaml.j2")).unwrap()
}

#[test]
fn template_override_changes_only_its_output() {
    let tmp = shop_dir();
    Test::new().args(["render", "shop", "--out", "plain"]).current_dir(tmp.path()).run().code(0);
    let tpl = namespace_template();
    assert!(tpl.contains("metadata:\n"), "{tpl}");
    let tpl = tpl.replacen("metadata:\n", "metadata:\n  annotations:\n    example.com/overridden: \"yes\"\n", 1);
    write(tmp.path(), "tpl/kubernetes/namespace.yaml.j2", tpl);
    let out =
        Test::new().args(["render", "shop", "--out", "custom", "--templates", "tpl"]).current_dir(tmp.path()).run();
    out.code(0);
    let plain = tree(&tmp.path().join("plain"));
    let custom = tree(&tmp.path().join("custom"));
    assert_eq!(plain.keys().collect::<Vec<_>>(), custom.keys().collect::<Vec<_>>());
    let differing: Vec<&String> = plain.keys().filter(|k| plain[*k] != custom[*k]).collect();
    assert_eq!(differing, ["shop/prod/kubernetes/namespace-shop.yaml", "shop/staging/kubernetes/namespace-shop.yaml"]);
    let ns = std::str::from_utf8(&custom["shop/prod/kubernetes/namespace-shop.yaml"]).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(ns).unwrap();
    assert_eq!(doc["metadata"]["annotations"]["example.com/overridden"], "yes", "{ns}");
}

/// Renders `shop` with `tpl` as the namespace template override; returns
/// the run, having checked it failed with exit 2 and wrote nothing.
fn broken_override(tpl: &str) -> common::Output {
    let tmp = shop_dir();
    write(tmp.path(), "tpl/kubernetes/namespace.yaml.j2", tpl);
    let out = Test::new().args(["render", "shop", "--templates", "tpl"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("kubernetes/namespace.yaml.j2");
    assert!(!tmp.path().join("rendered").exists(), "a failed render wrote files");
    out
}

#[test]
fn template_emitting_broken_yaml_fails_and_writes_nothing() {
    let out = broken_override("apiVersion: v1\nkind: Namespace\nmetadata: {{ namespace }}: x\n");
    snapshot!("cli-template-broken-yaml", out.stderr);
}

#[test]
fn template_with_unknown_variable_fails_and_writes_nothing() {
    let out = broken_override(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ namespace }}\n  uid: {{ no_such_variable }}\n",
    );
    snapshot!("cli-template-unknown-variable", out.stderr);
}

#[test]
fn template_with_syntax_error_fails_and_writes_nothing() {
    let out = broken_override("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ namespace }\n");
    snapshot!("cli-template-syntax-error", out.stderr);
}

#[test]
fn template_producing_the_wrong_object_fails() {
    let out = broken_override("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ namespace }}\n");
    snapshot!("cli-template-wrong-kind", out.stderr);
}

#[test]
fn failed_render_leaves_existing_tree_untouched() {
    let tmp = shop_dir();
    Test::new().args(["render", "shop"]).current_dir(tmp.path()).run().code(0);
    let before = tree(&tmp.path().join("rendered"));
    // Change the stack so files would change, and break one template.
    write(tmp.path(), "stacks/shop.yaml", SHOP.replace("replicas: 2", "replicas: 3"));
    write(tmp.path(), "tpl/kubernetes/namespace.yaml.j2", "kind: {{ nope }}\n");
    Test::new().args(["render", "shop", "--templates", "tpl"]).current_dir(tmp.path()).run().code(2);
    assert_eq!(tree(&tmp.path().join("rendered")), before);
}

#[test]
fn output_does_not_depend_on_cwd_or_environment() {
    let a = tempdir();
    let b = tempdir();
    let out_a = a.path().join("out");
    let out_b = b.path().join("nested/deeper/out");
    std::fs::create_dir_all(b.path().join("nested/deeper")).unwrap();
    Test::new().args(["render", "--all", "--out"]).arg(&out_a).current_dir(a.path()).run().code(0);
    Test::new()
        .args(["render", "--all", "--out"])
        .arg(&out_b)
        .current_dir(b.path().join("nested"))
        .env("TZ", "Pacific/Kiritimati")
        .env("LANG", "tr_TR.UTF-8")
        .env("LC_ALL", "tr_TR.UTF-8")
        .env("HOME", b.path())
        .env("USER", "somebody-else")
        .env("SOURCE_DATE_EPOCH", "0")
        .env("COLUMNS", "20")
        .env("KUBECONFIG", "/nonexistent")
        .run()
        .code(0);
    let ta = tree(&out_a);
    let tb = tree(&out_b);
    assert!(!ta.is_empty());
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (k, v) in &ta {
        assert!(v == &tb[k], "{k} differs between the two renders");
        let text = String::from_utf8_lossy(v);
        for leak in [a.path().to_str().unwrap(), b.path().to_str().unwrap()] {
            assert!(!text.contains(leak), "{k} mentions the temporary directory");
        }
    }
}

#[cfg(unix)]
#[test]
fn symlink_in_output_tree_is_never_written_through() {
    let tmp = tempdir();
    let outside = tempdir();
    write(outside.path(), "precious.txt", "keep me\n");
    std::fs::create_dir_all(tmp.path().join("rendered/loops/prod")).unwrap();
    std::os::unix::fs::symlink(outside.path(), tmp.path().join("rendered/loops/prod/kubernetes")).unwrap();

    let out = render_loops(tmp.path());
    out.code(2);
    snapshot!("cli-symlink-refused", out.stderr);
    let after = tree(outside.path());
    assert_eq!(after.keys().collect::<Vec<_>>(), ["precious.txt"]);
    assert_eq!(after["precious.txt"], b"keep me\n");
    // Still a symlink, still pointing where it did.
    let link = tmp.path().join("rendered/loops/prod/kubernetes");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), outside.path());
}

#[cfg(unix)]
#[test]
fn symlinked_stack_dir_in_output_is_never_written_through() {
    // Render once, then move a rendered directory away and link to it: a
    // change must not be written into the linked directory either.
    let tmp = shop_dir();
    let outside = tempdir();
    Test::new().args(["render", "shop"]).current_dir(tmp.path()).run().code(0);
    let moved = outside.path().join("shop");
    std::fs::rename(tmp.path().join("rendered/shop"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, tmp.path().join("rendered/shop")).unwrap();
    let before = tree(outside.path());
    write(tmp.path(), "stacks/shop.yaml", SHOP.replace("replicas: 2", "replicas: 3"));
    let out = Test::new().args(["render", "shop"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("symbolic link");
    assert_eq!(tree(outside.path()), before);
}

/// Path of a rendered file -> snapshot name (`/` becomes `__`).
fn snapshot_name(rel: &str) -> String {
    rel.replace('/', "__")
}

#[test]
fn every_built_in_stack_renders_as_snapshotted() {
    let tmp = tempdir();
    Test::new().args(["render", "--all", "--quiet"]).current_dir(tmp.path()).run().code(0);
    let files = tree(&tmp.path().join("rendered"));
    assert!(!files.is_empty());
    // Check every file before failing, so one run leaves every changed
    // snapshot pending for `cargo insta review`, not just the first.
    let mut failed = Vec::new();
    let mut check = |name: String, content: &str| {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| snapshot!(name.as_str(), content)));
        if ok.is_err() {
            failed.push(name);
        }
    };
    for (rel, bytes) in &files {
        let text = std::str::from_utf8(bytes).unwrap_or_else(|_| panic!("{rel} is not UTF-8"));
        check(snapshot_name(rel), text);
    }
    // The list itself is a snapshot, so a file that disappears shows up too.
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    check("rendered-files".to_string(), &names.join("\n"));
    assert!(failed.is_empty(), "{} snapshot(s) differ: {failed:#?}", failed.len());
}
