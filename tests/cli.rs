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
fn a_byte_order_mark_before_the_stack_is_ignored() {
    let tmp = shop_dir();
    Test::new().args(["render", "shop"]).current_dir(tmp.path()).run().code(0);
    let plain = tree(&tmp.path().join("rendered"));
    write(tmp.path(), "stacks/shop.yaml", format!("\u{feff}{SHOP}"));
    Test::new().args(["render", "shop", "--check"]).current_dir(tmp.path()).run().code(0);
    assert_eq!(tree(&tmp.path().join("rendered")), plain);
    // A bad byte's offset counts the mark, as in the file.
    let mut bytes = b"\xEF\xBB\xBFname: shop\n".to_vec();
    bytes.push(0xFF);
    std::fs::write(tmp.path().join("stacks/shop.yaml"), bytes).unwrap();
    let out = Test::new().args(["render", "shop"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("invalid byte at offset 14");
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
fn render_all_prunes_a_stack_no_longer_defined() {
    let tmp = shop_dir();
    let root = tmp.path().join("rendered");
    write(tmp.path(), "stacks/cart.yaml", SHOP.replace("name: shop\n", "name: cart\n"));
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    write(&root, "shop/prod/kubernetes/NOTES.md", "mine\n");
    // The stack file `shop` is renamed `store`.
    std::fs::remove_file(tmp.path().join("stacks/shop.yaml")).unwrap();
    write(tmp.path(), "stacks/store.yaml", SHOP.replace("name: shop\n", "name: store\n"));
    // Rendering one stack leaves the others' directories alone.
    Test::new().args(["render", "store"]).current_dir(tmp.path()).run().code(0);
    assert!(root.join("shop/prod/kubernetes/deployment-web.yaml").is_file());
    // `--all` covers the whole output root: `shop` is out of date, then pruned.
    let out = Test::new().args(["render", "--all", "--check"]).current_dir(tmp.path()).run();
    out.code(1)
        .stdout_has("removed: rendered/shop/prod/kubernetes/deployment-web.yaml\n")
        .stdout_has("removed: rendered/shop/staging/.stackgen-manifest\n");
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0).stdout_has("shop: 14 removed, no stack defines it any more (rendered/shop)\n");
    assert!(!root.join("shop/staging").exists(), "{:#?}", tree(&root).keys());
    assert!(!root.join("shop/prod/kubernetes/deployment-web.yaml").exists());
    assert_eq!(std::fs::read_to_string(root.join("shop/prod/kubernetes/NOTES.md")).unwrap(), "mine\n");
    assert!(root.join("cart/prod/kubernetes/deployment-web.yaml").is_file());
    assert!(root.join("store/prod/kubernetes/deployment-web.yaml").is_file());
    Test::new().args(["render", "--all", "--check"]).current_dir(tmp.path()).run().code(0);
    // `--env` renders part of each stack: no stack directory is pruned then.
    write(&root, "gone/prod/.stackgen-manifest", "# Files written by stackgen\nx.yaml\n");
    write(&root, "gone/prod/x.yaml", "x: 1\n");
    Test::new().args(["render", "--all", "--env", "prod"]).current_dir(tmp.path()).run().code(0);
    assert!(root.join("gone/prod/x.yaml").is_file());
}

#[test]
fn env_option_renders_one_environment() {
    let tmp = shop_dir();
    Test::new().args(["render", "shop", "--env", "prod"]).current_dir(tmp.path()).run().code(0);
    let files = tree(&tmp.path().join("rendered"));
    assert!(files.keys().all(|p| p.starts_with("shop/prod/")), "{:#?}", files.keys());
}

#[test]
fn all_with_env_skips_the_stacks_without_it() {
    let tmp = shop_dir();
    write(
        tmp.path(),
        "stacks/cart.yaml",
        "name: cart\nnamespace: { name: cart }\nservices:\n  web: { image: \"nginx:1.27\" }\n",
    );
    let out = Test::new().args(["render", "--all", "--env", "staging"]).current_dir(tmp.path()).run();
    out.code(0)
        .stdout_has("cart: skipped, none of the environments asked for\n")
        .stdout_has("shop: 7 written, 0 unchanged, 0 removed (rendered/shop)\n");
    assert!(tmp.path().join("rendered/shop/staging").is_dir());
    assert!(!tmp.path().join("rendered/cart").exists());
    // `validate` without a stack named takes every stack, the same way.
    Test::new().args(["validate", "--env", "staging"]).current_dir(tmp.path()).run().code(0);
    // An environment no stack has is still an error, with a suggestion.
    let out = Test::new().args(["render", "--all", "--env", "stagng"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("stack `shop` has no environment `stagng`").stderr_has("did you mean `staging`?");
    // A named stack without it too.
    let out = Test::new().args(["render", "cart", "--env", "staging"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("stack `cart` has no environment `staging`");
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

/// An override written against the `metadata` macro, as the docs show it,
/// renders what the embedded template (which includes `_metadata.yaml.j2`
/// directly) renders: the macro stays for overrides and writes the same.
#[test]
fn override_using_the_metadata_macro_renders_the_same() {
    let tmp = shop_dir();
    Test::new().args(["render", "shop", "--out", "plain"]).current_dir(tmp.path()).run().code(0);
    let tpl = std::fs::read_to_string(common::repo().join("templates/kubernetes/service.yaml.j2")).unwrap();
    let include = "{% with name = s.name, labels = s.labels, annotations = {} %}\
                   {% include \"kubernetes/_metadata.yaml.j2\" %}{% endwith %}\n";
    assert!(tpl.contains(include), "{tpl}");
    let tpl = tpl.replacen(include, "{{ k.metadata(s.name, s.labels) -}}\n", 1);
    write(
        tmp.path(),
        "tpl/kubernetes/service.yaml.j2",
        format!("{{% import \"kubernetes/_macros.yaml.j2\" as k %}}\n{tpl}"),
    );
    let out =
        Test::new().args(["render", "shop", "--out", "custom", "--templates", "tpl"]).current_dir(tmp.path()).run();
    out.code(0);
    let plain = tree(&tmp.path().join("plain"));
    assert!(plain.keys().any(|k| k.contains("/service-")), "{:#?}", plain.keys());
    assert_eq!(plain, tree(&tmp.path().join("custom")));
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

/// A key written twice is refused, as kubectl and Compose refuse it, in a
/// shape the fast reader takes and in one it leaves to serde_yaml (flow).
#[test]
fn template_emitting_a_duplicate_key_fails_and_writes_nothing() {
    for tpl in [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ namespace }}\nspec:\n  finalizers: [kubernetes]\nspec:\n  finalizers: []\n",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: {{ namespace }}, name: {{ namespace }}}\n",
    ] {
        let out = broken_override(tpl);
        assert!(out.stderr.contains("duplicate"), "{}", out.stderr);
    }
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

/// An override that is a symbolic link is refused: through it a template
/// could read any file (the process environment, a key) into the output.
#[test]
fn template_override_through_a_symlink_is_refused() {
    let tmp = shop_dir();
    write(tmp.path(), "elsewhere/secret.txt", "MY_CI_TOKEN=ghp_supersecret\n");
    std::fs::create_dir_all(tmp.path().join("tpl/kubernetes")).unwrap();
    std::os::unix::fs::symlink(
        tmp.path().join("elsewhere/secret.txt"),
        tmp.path().join("tpl/kubernetes/namespace.yaml.j2"),
    )
    .unwrap();
    let out = Test::new().args(["render", "shop", "--templates", "tpl"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("is a symbolic link");
    assert!(!out.stderr.contains("ghp_supersecret"), "{}", out.stderr);
    assert!(!tmp.path().join("rendered").exists(), "a failed render wrote files");
    // A whole directory linked in is refused the same way.
    std::fs::remove_dir_all(tmp.path().join("tpl")).unwrap();
    write(tmp.path(), "real/kubernetes/namespace.yaml.j2", namespace_template());
    std::fs::create_dir_all(tmp.path().join("tpl")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("real/kubernetes"), tmp.path().join("tpl/kubernetes")).unwrap();
    let out = Test::new().args(["render", "shop", "--templates", "tpl"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("is a symbolic link");
}

/// A file in the template directory that overrides nothing is named, with
/// the template it was probably meant to be.
#[test]
fn a_misspelt_template_override_is_a_warning() {
    let tmp = shop_dir();
    write(tmp.path(), "tpl/kubernetes/deploymnet.yaml.j2", "kind: Deployment\n");
    let out = Test::new().args(["render", "shop", "--templates", "tpl"]).current_dir(tmp.path()).run();
    out.code(0)
        .stderr_has("warning: this file overrides no template stackgen renders; it is ignored")
        .stderr_has("tpl/kubernetes/deploymnet.yaml.j2")
        .stderr_has("did you mean `kubernetes/deployment.yaml.j2`?");
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

// ---------------------------------------------------------------------------
// diff, --check --format json, list, schema, new, completions, templates,
// built-in output validation, lints, tasks and environment `extends`.
// ---------------------------------------------------------------------------

/// `SHOP` without its `api` service.
fn shop_without_api() -> String {
    let s = SHOP.replace("  api:\n    image: ghcr.io/example/api:1.0\n    env:\n      MODE: \"0755\"\n", "");
    assert_ne!(s, SHOP, "the `api` service is no longer spelled as expected in SHOP");
    s
}

/// A temporary directory holding `stacks/<name>.yaml` = the fixture
/// `tests/fixtures/cli/<fixture>.yaml`.
fn fixture_dir(fixture: &str, name: &str) -> tempfile::TempDir {
    let tmp = tempdir();
    write(tmp.path(), &format!("stacks/{name}.yaml"), fixture_text(fixture));
    tmp
}

fn fixture_text(fixture: &str) -> String {
    let path = common::repo().join(format!("tests/fixtures/cli/{fixture}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line contains {needle:?}")) + 1
}

fn json(out: &common::Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.stdout))
}

fn yaml_file(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines a unified diff hunk shows for `text` with `sign` (`+` or `-`).
fn signed_lines(text: &str, sign: char) -> String {
    text.lines().map(|l| format!("{sign}{l}\n")).collect()
}

#[test]
fn diff_of_an_up_to_date_tree_is_empty() {
    let tmp = shop_dir();
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    let before = tree(tmp.path());
    let out = Test::new().args(["diff", "--all"]).current_dir(tmp.path()).run();
    out.code(0);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
    let out = Test::new().args(["diff", "--all", "--stat", "--format", "json"]).current_dir(tmp.path()).run();
    out.code(0);
    assert_eq!(json(&out), serde_json::json!({ "upToDate": true, "files": [] }));
    assert_eq!(tree(tmp.path()), before, "diff wrote or deleted files");
}

#[test]
fn diff_shows_edited_and_deleted_files() {
    let tmp = shop_dir();
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    let root = tmp.path().join("rendered");
    let edited = root.join("shop/prod/kubernetes/deployment-web.yaml");
    let text = std::fs::read_to_string(&edited).unwrap();
    assert_eq!(text.matches("  replicas: 2\n").count(), 1, "{text}");
    std::fs::write(&edited, text.replace("  replicas: 2\n", "  replicas: 7\n")).unwrap();
    let deleted = root.join("shop/staging/kubernetes/service-web.yaml");
    let deleted_text = std::fs::read_to_string(&deleted).unwrap();
    std::fs::remove_file(&deleted).unwrap();
    let before = tree(tmp.path());

    // NO_COLOR empty counts as unset: only the pipe keeps the diff plain.
    let out = Test::new().args(["diff", "--all"]).env("NO_COLOR", "").current_dir(tmp.path()).run();
    out.code(1);
    assert!(!out.stdout.contains('\x1b'), "ANSI escapes in piped output:\n{:?}", out.stdout);
    let d = &out.stdout;
    let web = "--- a/shop/prod/kubernetes/deployment-web.yaml\n+++ b/shop/prod/kubernetes/deployment-web.yaml\n@@ ";
    assert!(d.starts_with(web), "{d}");
    assert!(d.contains("\n-  replicas: 7\n+  replicas: 2\n"), "{d}");
    let n = deleted_text.lines().count();
    let svc = format!(
        "--- /dev/null\n+++ b/shop/staging/kubernetes/service-web.yaml\n@@ -0,0 +1,{n} @@\n{}",
        signed_lines(&deleted_text, '+')
    );
    assert!(d.ends_with(&svc), "{d}");
    assert_eq!(d.lines().filter(|l| l.starts_with("+++ ")).count(), 2, "only two files differ:\n{d}");
    assert_eq!(d.lines().filter(|l| l.starts_with("--- ")).count(), 2, "{d}");

    // --stat: one line per file, then the totals.
    let out = Test::new().args(["diff", "--all", "--stat"]).current_dir(tmp.path()).run();
    out.code(1);
    let lines: Vec<Vec<&str>> = out.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(lines[0], ["changed", "+1", "-1", "rendered/shop/prod/kubernetes/deployment-web.yaml"]);
    let added = format!("+{n}");
    assert_eq!(lines[1], ["added", added.as_str(), "-0", "rendered/shop/staging/kubernetes/service-web.yaml"]);
    let totals: Vec<usize> = lines[2].iter().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(totals, [2, n + 1, 1], "{}", out.stdout);
    assert!(out.stdout.lines().last().unwrap().starts_with("2 files changed, "), "{}", out.stdout);

    let out = Test::new().args(["diff", "--all", "--stat", "--format", "json"]).current_dir(tmp.path()).run();
    out.code(1);
    assert_eq!(
        json(&out),
        serde_json::json!({
            "upToDate": false,
            "files": [
                { "path": "shop/prod/kubernetes/deployment-web.yaml", "status": "changed", "added": 1, "removed": 1 },
                { "path": "shop/staging/kubernetes/service-web.yaml", "status": "added", "added": n, "removed": 0 },
            ]
        })
    );
    assert_eq!(tree(tmp.path()), before, "diff wrote or deleted files");
}

#[test]
fn diff_shows_a_file_no_longer_rendered_as_removed() {
    let tmp = shop_dir();
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    let root = tmp.path().join("rendered");
    let old: Vec<(String, String)> = ["prod", "staging"]
        .iter()
        .map(|e| {
            let rel = format!("shop/{e}/kubernetes/deployment-api.yaml");
            let text = std::fs::read_to_string(root.join(&rel)).unwrap();
            (rel, text)
        })
        .collect();
    write(tmp.path(), "stacks/shop.yaml", shop_without_api());
    let before = tree(tmp.path());

    let out = Test::new().args(["diff", "--all"]).current_dir(tmp.path()).run();
    out.code(1);
    for (rel, text) in &old {
        let n = text.lines().count();
        let hunk = format!("--- a/{rel}\n+++ /dev/null\n@@ -1,{n} +0,0 @@\n{}", signed_lines(text, '-'));
        assert!(out.stdout.contains(&hunk), "no removal hunk for {rel}:\n{}", out.stdout);
    }

    let out = Test::new().args(["diff", "--all", "--stat"]).current_dir(tmp.path()).run();
    out.code(1);
    for (rel, text) in &old {
        let line = format!("removed +0 -{} rendered/{rel}", text.lines().count());
        let found = out.stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line);
        assert!(found, "no `{line}` in:\n{}", out.stdout);
    }

    let out = Test::new().args(["diff", "--all", "--stat", "--format", "json"]).current_dir(tmp.path()).run();
    out.code(1);
    let v = json(&out);
    assert_eq!(v["upToDate"], false);
    let removed: Vec<serde_json::Value> =
        v["files"].as_array().unwrap().iter().filter(|f| f["status"] == "removed").cloned().collect();
    let expected: Vec<serde_json::Value> = old
        .iter()
        .map(|(rel, text)| serde_json::json!({ "path": rel, "status": "removed", "added": 0, "removed": text.lines().count() }))
        .collect();
    assert_eq!(removed, expected);
    assert_eq!(tree(tmp.path()), before, "diff wrote or deleted files");
}

#[test]
fn format_json_reports_failures_as_json_too() {
    let tmp = tempdir();
    write(
        tmp.path(),
        "stacks/app.yaml",
        "name: app\nnamespace: { name: app }\nservices:\n  web:\n    image: nginx:1.27\n    replcas: 2\n",
    );
    let out = Test::new().args(["render", "--all", "--format", "json"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("unknown key `replcas`");
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "1 problem found; nothing was written");
    let p = &v["problems"][0];
    assert_eq!(p["severity"], "error");
    assert_eq!(p["file"], "stacks/app.yaml");
    assert_eq!((p["line"].as_u64(), p["column"].as_u64()), (Some(6), Some(5)));
    assert_eq!(p["field"], "services.web.replcas");
    assert!(p["notes"].as_array().unwrap().iter().any(|n| n == "help: did you mean `replicas`?"), "{p}");
    assert!(!tmp.path().join("rendered").exists());
    // A failure that is not about the stacks: the message alone.
    write(
        tmp.path(),
        "stacks/app.yaml",
        "name: app\nnamespace: { name: app }\nservices:\n  web: { image: \"nginx:1.27\" }\n",
    );
    write(tmp.path(), "afile", "x");
    let out = Test::new().args(["render", "--all", "--out", "afile", "--format", "json"]).current_dir(tmp.path()).run();
    out.code(2);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "output `afile` exists and is not a directory");
    assert_eq!(v["problems"], serde_json::json!([]));
}

#[test]
fn check_format_json_lists_added_changed_and_removed() {
    let tmp = shop_dir();
    let check = || Test::new().args(["render", "--all", "--check", "--format", "json"]).current_dir(tmp.path()).run();
    let root = tmp.path().join("rendered");

    let out = check();
    out.code(1);
    let v = json(&out);
    assert!(!root.exists(), "--check wrote files");
    Test::new().args(["render", "--all", "--quiet"]).current_dir(tmp.path()).run().code(0);
    let rendered = tree(&root);
    let all: Vec<&String> = rendered.keys().collect();
    assert_eq!(v["upToDate"], false);
    assert_eq!(v["added"], serde_json::json!(all), "a first --check lists every file a render writes");
    assert_eq!(v["changed"], serde_json::json!([]));
    assert_eq!(v["removed"], serde_json::json!([]));

    let out = check();
    out.code(0);
    let v = json(&out);
    assert_eq!(v["upToDate"], true);
    for k in ["added", "changed", "removed"] {
        assert_eq!(v[k], serde_json::json!([]), "{k}: {v}");
    }

    // One file edited, one deleted, one service dropped from the stack.
    let edited = "shop/prod/kubernetes/deployment-web.yaml";
    let mut text = std::fs::read_to_string(root.join(edited)).unwrap();
    text.push_str("# hand edit\n");
    std::fs::write(root.join(edited), text).unwrap();
    let deleted = "shop/staging/kubernetes/service-web.yaml";
    std::fs::remove_file(root.join(deleted)).unwrap();
    write(tmp.path(), "stacks/shop.yaml", shop_without_api());
    let before = tree(&root);
    let out = check();
    out.code(1);
    let v = json(&out);
    assert_eq!(v["upToDate"], false);
    assert_eq!(v["added"], serde_json::json!([deleted]));
    assert_eq!(
        v["removed"],
        serde_json::json!(["shop/prod/kubernetes/deployment-api.yaml", "shop/staging/kubernetes/deployment-api.yaml"])
    );
    let changed: Vec<&str> = v["changed"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(changed.contains(&edited), "{changed:?}");
    assert!(!changed.contains(&deleted), "{changed:?}");
    let mut sorted = changed.clone();
    sorted.sort_unstable();
    assert_eq!(changed, sorted, "changed is not sorted");
    assert_eq!(tree(&root), before, "--check wrote or deleted files");

    // A render makes it up to date again.
    Test::new().args(["render", "--all", "--quiet"]).current_dir(tmp.path()).run().code(0);
    check().code(0);
}

#[test]
fn list_json_shows_inherited_components() {
    let tmp = fixture_dir("extends", "app");
    write(
        tmp.path(),
        "stacks/zeta.yaml",
        "name: zeta\nnamespace:\n  name: zeta\nservices:\n  web:\n    image: nginx:1.27\n",
    );
    let out = Test::new().args(["list", "--stacks", "stacks", "--format", "json"]).current_dir(tmp.path()).run();
    out.code(0);
    assert_eq!(
        json(&out),
        serde_json::json!([
            {
                "stack": "app",
                "file": "stacks/app.yaml",
                "environments": [
                    { "name": "base-env", "targets": ["kubernetes", "compose"], "components": ["monitoring"] },
                    { "name": "child", "targets": ["kubernetes"], "components": ["monitoring", "tracing"] },
                    { "name": "plain", "targets": ["kubernetes", "compose"], "components": [] },
                ]
            },
            {
                "stack": "zeta",
                "file": "stacks/zeta.yaml",
                "environments": [{ "name": "default", "targets": ["kubernetes"], "components": [] }]
            }
        ])
    );
    // The text form says the same.
    let out = Test::new().args(["list", "--stacks", "stacks"]).current_dir(tmp.path()).run();
    out.code(0)
        .stdout_has("  child: kubernetes (components: monitoring, tracing)\n")
        .stdout_has("  plain: kubernetes, compose\n");
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let tmp = tempdir();
    let out = Test::new().arg("schema").current_dir(tmp.path()).run();
    out.code(0);
    let printed = json(&out);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/stack.schema.json");
    let committed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(printed == committed, "`stackgen schema` differs from {}; regenerate it", path.display());
    assert!(printed["properties"]["services"].is_object(), "not the stack schema: {printed}");
    assert_eq!(tree(tmp.path()).len(), 0);
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    // `stackgen schema | head -1`: the schema (131 KB) is more than a pipe
    // holds, so the write meets the closed pipe whatever the timing.
    let tmp = tempdir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackgen"))
        .arg("schema")
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.signal(), Some(libc::SIGPIPE), "status {:?}", done.status);
    assert_eq!(String::from_utf8_lossy(&done.stderr), "", "no panic message");
}

#[test]
fn new_writes_a_starter_that_renders() {
    let tmp = tempdir();
    let stacks = tmp.path().join("stacks");
    let out = Test::new().args(["new", "shop", "--stacks"]).arg(&stacks).current_dir(tmp.path()).run();
    out.code(0).stdout_has("shop.yaml");
    let files = tree(&stacks);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["shop.yaml", "stack.schema.json"]);
    let schema = Test::new().arg("schema").current_dir(tmp.path()).run();
    assert_eq!(std::str::from_utf8(&files["stack.schema.json"]).unwrap(), schema.code(0).stdout);
    let starter: serde_yaml::Value = serde_yaml::from_slice(&files["shop.yaml"]).unwrap();
    assert_eq!(starter["name"], "shop");

    // A second run refuses to overwrite.
    std::fs::write(stacks.join("shop.yaml"), "name: shop # mine\n").unwrap();
    let out = Test::new().args(["new", "shop", "--stacks"]).arg(&stacks).current_dir(tmp.path()).run();
    out.code(2).stderr_has("already exists");
    assert_eq!(std::fs::read_to_string(stacks.join("shop.yaml")).unwrap(), "name: shop # mine\n");
    std::fs::write(stacks.join("shop.yaml"), &files["shop.yaml"]).unwrap();

    // Names that are not DNS labels write nothing.
    for bad in ["Shop", "a/b", "shop-", "sh_op", ""] {
        let out = Test::new().args(["new", bad, "--stacks"]).arg(&stacks).current_dir(tmp.path()).run();
        out.code(2);
        assert!(out.stderr.contains("not a valid stack name"), "{bad:?}: {}", out.stderr);
    }
    assert_eq!(tree(tmp.path()).len(), 2, "{:#?}", tree(tmp.path()).keys());

    // The starter renders as is, for both targets.
    let out = Test::new()
        .args(["render", "--all", "--stacks"])
        .arg(&stacks)
        .args(["--out", "out"])
        .current_dir(tmp.path())
        .run();
    out.code(0);
    assert_eq!(out.stderr, "", "the starter renders with warnings");
    let rendered = tree(&tmp.path().join("out"));
    for dir in ["kubernetes", "compose"] {
        assert!(
            rendered.keys().any(|k| k.starts_with("shop/") && k.contains(&format!("/{dir}/"))),
            "no {dir} tree: {:#?}",
            rendered.keys()
        );
    }
    assert!(rendered.keys().any(|k| k.ends_with("/kubernetes/kustomization.yaml")));
    assert!(rendered.keys().any(|k| k.ends_with("/compose/compose.yaml")));
}

#[test]
fn completions_for_every_shell() {
    let tmp = tempdir();
    let mut seen = Vec::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = Test::new().args(["completions", shell]).current_dir(tmp.path()).run();
        out.code(0);
        assert!(out.stdout.contains("render"), "{shell} completions do not mention `render`");
        assert!(out.stdout.contains("templates"), "{shell} completions do not mention `templates`");
        assert!(!seen.contains(&out.stdout), "{shell} completions are the same as another shell's");
        seen.push(out.stdout.clone());
    }
    Test::new().args(["completions", "tcsh"]).current_dir(tmp.path()).run().code(2);
    assert_eq!(tree(tmp.path()).len(), 0);
}

#[test]
fn templates_list_and_export() {
    let tmp = tempdir();
    let out = Test::new().args(["templates", "list"]).current_dir(tmp.path()).run();
    out.code(0);
    let listed: Vec<&str> = out.stdout.lines().collect();
    assert!(listed.contains(&"kubernetes/deployment.yaml.j2"), "{listed:?}");
    let repo_templates = tree(&common::repo().join("templates"));
    let j2: Vec<&str> = repo_templates.keys().map(String::as_str).filter(|k| k.ends_with(".j2")).collect();
    assert_eq!(listed, j2, "the embedded templates are not those of templates/");

    let out = Test::new().args(["templates", "export", "tpl"]).current_dir(tmp.path()).run();
    out.code(0);
    let exported = tree(&tmp.path().join("tpl"));
    assert_eq!(exported.keys().map(String::as_str).collect::<Vec<_>>(), listed);
    for (k, v) in &exported {
        assert!(v == &repo_templates[k], "exported {k} differs from templates/{k}");
    }

    // Without --force an existing file is not overwritten, and nothing else is written.
    let job = tmp.path().join("tpl/kubernetes/job.yaml.j2");
    let edited = format!("{}{{# local edit #}}\n", std::fs::read_to_string(&job).unwrap());
    std::fs::write(&job, &edited).unwrap();
    let before = tree(tmp.path());
    let out = Test::new().args(["templates", "export", "tpl"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("--force");
    assert_eq!(tree(tmp.path()), before);
    let partial = tempdir();
    write(partial.path(), "tpl/kubernetes/job.yaml.j2", "mine\n");
    Test::new().args(["templates", "export", "tpl"]).current_dir(partial.path()).run().code(2);
    assert_eq!(tree(&partial.path().join("tpl")).keys().collect::<Vec<_>>(), ["kubernetes/job.yaml.j2"]);

    let out = Test::new().args(["templates", "export", "tpl", "--force"]).current_dir(tmp.path()).run();
    out.code(0);
    assert_eq!(tree(&tmp.path().join("tpl")), exported, "--force did not restore the templates");

    // The exported templates render exactly what the embedded ones do.
    Test::new().args(["render", "--all", "--quiet", "--out", "embedded"]).current_dir(tmp.path()).run().code(0);
    Test::new()
        .args(["render", "--all", "--quiet", "--out", "exported", "--templates", "tpl"])
        .current_dir(tmp.path())
        .run()
        .code(0);
    let a = tree(&tmp.path().join("embedded"));
    let b = tree(&tmp.path().join("exported"));
    assert!(a.len() > 10, "{:#?}", a.keys());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs when rendered with the exported templates");
    }
}

#[test]
fn templates_export_is_all_or_nothing_and_never_through_a_symlink() {
    let tmp = tempdir();
    Test::new().args(["templates", "export", "tpl"]).current_dir(tmp.path()).run().code(0);
    let exported = tree(&tmp.path().join("tpl"));

    // Exporting again over identical files is not a conflict.
    let out = Test::new().args(["templates", "export", "tpl"]).current_dir(tmp.path()).run();
    out.code(0);
    assert!(
        out.stdout.contains(&format!("wrote 0 templates to tpl ({} already up to date)", exported.len())),
        "{}",
        out.stdout
    );

    // A symlink at a template's path: refused, with --force too (as render
    // refuses one in its output), and its target is not written.
    let outside = tempdir();
    let target = write(outside.path(), "keep.txt", "not a template\n");
    let job = tmp.path().join("tpl/kubernetes/job.yaml.j2");
    std::fs::remove_file(&job).unwrap();
    std::os::unix::fs::symlink(&target, &job).unwrap();
    Test::new().args(["templates", "export", "tpl"]).current_dir(tmp.path()).run().code(2).stderr_has("--force");
    assert!(std::fs::symlink_metadata(&job).unwrap().file_type().is_symlink());
    let out = Test::new().args(["templates", "export", "tpl", "--force"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("symbolic link");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not a template\n");
    assert!(std::fs::symlink_metadata(&job).unwrap().file_type().is_symlink());
    std::fs::remove_file(&job).unwrap();
    Test::new().args(["templates", "export", "tpl"]).current_dir(tmp.path()).run().code(0);
    assert_eq!(tree(&tmp.path().join("tpl")), exported);

    // A symlinked directory among the template paths: nothing is written
    // through it, nor anywhere else.
    let compose = tmp.path().join("tpl/compose");
    std::fs::remove_dir_all(&compose).unwrap();
    std::os::unix::fs::symlink(outside.path(), &compose).unwrap();
    let job_text = std::fs::read(&job).unwrap();
    std::fs::write(&job, "edited\n").unwrap();
    let before = (tree(tmp.path()), tree(outside.path()));
    let out = Test::new().args(["templates", "export", "tpl", "--force"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("symbolic link");
    assert_eq!((tree(tmp.path()), tree(outside.path())), before);
    std::fs::remove_file(&compose).unwrap();

    // One template that cannot be written (a directory in its place): the
    // others are not written either.
    std::fs::remove_file(tmp.path().join("tpl/kubernetes/service.yaml.j2")).unwrap();
    std::fs::create_dir_all(tmp.path().join("tpl/kubernetes/service.yaml.j2/inside")).unwrap();
    let before = tree(tmp.path());
    Test::new().args(["templates", "export", "tpl", "--force"]).current_dir(tmp.path()).run().code(2);
    assert_eq!(tree(tmp.path()), before);
    assert_eq!(std::fs::read(&job).unwrap(), b"edited\n");
    std::fs::remove_dir_all(tmp.path().join("tpl/kubernetes/service.yaml.j2")).unwrap();
    Test::new().args(["templates", "export", "tpl", "--force"]).current_dir(tmp.path()).run().code(0);
    assert_eq!(std::fs::read(&job).unwrap(), job_text);
    assert_eq!(tree(&tmp.path().join("tpl")), exported);
}

/// Renders `loops` with one template overridden by the repository's copy
/// edited with `edit`; checks it failed with exit 2 and wrote nothing.
fn invalid_output_override(template: &str, edit: impl Fn(&str) -> String, extra: &[&str]) -> common::Output {
    let tmp = tempdir();
    let original = std::fs::read_to_string(common::repo().join("templates").join(template)).unwrap();
    let edited = edit(&original);
    assert_ne!(edited, original, "the edit of {template} matched nothing");
    write(tmp.path(), &format!("tpl/{template}"), edited);
    let out = Test::new().args(["render", "loops", "--templates", "tpl"]).args(extra).current_dir(tmp.path()).run();
    out.code(2);
    assert!(!tmp.path().join("rendered").exists(), "an invalid render wrote files");
    out
}

fn misspelled_service_field(tpl: &str) -> String {
    tpl.replacen("\nspec:\n", "\nspec:\n  sessionAffinty: None\n", 1)
}

#[test]
fn unknown_kubernetes_field_in_a_template_override_is_caught() {
    let out = invalid_output_override("kubernetes/service.yaml.j2", misspelled_service_field, &[]);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("sessionAffinty"))
        .unwrap_or_else(|| panic!("no problem reported for the field:\n{}", out.stderr));
    let file = line.trim().split(':').next().unwrap();
    assert!(
        file.starts_with("loops/prod/kubernetes/service-") && file.ends_with(".yaml"),
        "does not name the output file: {line}"
    );
    for needle in ["`.spec.sessionAffinty`", "unknown field", "did you mean `sessionAffinity`", "Kubernetes 1.32"] {
        assert!(line.contains(needle), "{needle:?} missing from: {line}");
    }
    // The version checked against follows --kube-version.
    let out =
        invalid_output_override("kubernetes/service.yaml.j2", misspelled_service_field, &["--kube-version", "1.30"]);
    out.stderr_has("Kubernetes 1.30");
}

#[test]
fn unknown_compose_key_in_a_template_override_is_caught() {
    let out = invalid_output_override(
        "compose/compose.yaml.j2",
        |t| {
            t.replacen("    restart: {{ s.restart }}\n", "    restart: {{ s.restart }}\n    restart_polcy: always\n", 1)
        },
        &[],
    );
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("restart_polcy"))
        .unwrap_or_else(|| panic!("no problem reported for the key:\n{}", out.stderr));
    for needle in ["loops/prod/compose/compose.yaml", "unknown field", "Compose Specification", ".services."] {
        assert!(line.contains(needle), "{needle:?} missing from: {line}");
    }
    // A near miss of a Compose key gets a suggestion.
    let out = invalid_output_override(
        "compose/compose.yaml.j2",
        |t| t.replacen("    restart: {{ s.restart }}\n", "    restrt: {{ s.restart }}\n", 1),
        &[],
    );
    out.stderr_has(
        "`.services.loops-app.restrt`: unknown field `restrt` (did you mean `restart`?) [Compose Specification]",
    );
}

#[test]
fn kube_version_option() {
    let tmp = tempdir();
    Test::new().args(["render", "loops", "--kube-version", "1.30"]).current_dir(tmp.path()).run().code(0);
    assert!(tmp.path().join("rendered/loops/prod/kubernetes/kustomization.yaml").is_file());
    let other = tempdir();
    let out = Test::new().args(["render", "loops", "--kube-version", "1.99"]).current_dir(other.path()).run();
    out.code(2).stderr_has("1.99");
    assert_eq!(tree(other.path()).len(), 0);
    Test::new().args(["validate", "loops", "--kube-version", "1.99"]).current_dir(other.path()).run().code(2);
}

#[test]
fn network_without_dns_egress_warns() {
    let tmp = fixture_dir("network-no-dns", "net");
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0).stderr_has("warning:").stderr_has("DNS").stderr_has("port 53");
    let text = fixture_text("network-no-dns");
    out.stderr_has(&format!("--> stacks/net.yaml:{}:", line_of(&text, "egress:")));
    // With DNS allowed, no warning.
    let fixed = text.replace("      ports: [443]\n", "      ports: [443, 53]\n");
    assert_ne!(fixed, text);
    write(tmp.path(), "stacks/net.yaml", fixed);
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0);
    assert!(!out.stderr.contains("DNS"), "{}", out.stderr);
}

#[test]
fn depending_on_a_service_without_expose_warns_on_kubernetes() {
    let stack = "name: app\nnamespace: { name: app }\ntargets: [kubernetes, compose]\nservices:\n  \
                 cache:\n    image: redis:7.4\n    ports: { redis: 6379 }\n  \
                 web:\n    image: nginx:1.27\n    dependsOn: [cache]\n";
    let tmp = tempdir();
    write(tmp.path(), "stacks/app.yaml", stack);
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0)
        .stderr_has("warning: `web` depends on `cache`, which has no `expose`")
        .stderr_has("--> stacks/app.yaml:10:17")
        .stderr_has("field: services.web.dependsOn[0]");
    // Compose alone resolves service names: no warning.
    write(tmp.path(), "stacks/app.yaml", stack.replace("[kubernetes, compose]", "[compose]"));
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0);
    assert!(!out.stderr.contains("expose"), "{}", out.stderr);
    // With a Service, no warning.
    let exposed =
        stack.replace("{ redis: 6379 }\n", "{ redis: 6379 }\n    expose: { ports: [{ port: 6379, target: redis }] }\n");
    write(tmp.path(), "stacks/app.yaml", &exposed);
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0);
    assert!(!out.stderr.contains("expose"), "{}", out.stderr);
    // A Service of another name: Kubernetes knows it by that name only.
    write(tmp.path(), "stacks/app.yaml", exposed.replace("expose: { ports", "expose: { name: redis, ports"));
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0).stderr_has("warning: `web` depends on `cache`, whose Service is named `redis`");
}

#[test]
fn service_name_rules_apply_where_there_is_a_service() {
    // Compose ignores `expose`: a name Kubernetes would refuse is fine there.
    let stack = "name: app\nnamespace: { name: app }\ntargets: [compose]\nservices:\n  \
                 1password:\n    image: 1password/connect-api:1.7\n    ports: { http: 8080 }\n    \
                 expose: { ports: [{ port: 80, target: http }] }\n";
    let tmp = tempdir();
    write(tmp.path(), "stacks/app.yaml", stack);
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    write(tmp.path(), "stacks/app.yaml", stack.replace("[compose]", "[kubernetes]"));
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("Service name `1password` must start with a letter");
}

#[test]
fn compose_runs_one_replica_of_a_service_with_a_sidecar() {
    let stack = "name: app\nnamespace: { name: app }\ntargets: [kubernetes, compose]\nservices:\n  \
                 web:\n    image: php:8.3-fpm\n    replicas: 2\n    ports: { fpm: 9000 }\n    \
                 sidecars:\n      nginx:\n        image: nginx:1.27\n        ports: { http: 8080 }\n";
    let tmp = tempdir();
    write(tmp.path(), "stacks/app.yaml", stack);
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0);
    let compose = yaml_file(&tmp.path().join("rendered/app/default/compose/compose.yaml"));
    assert_eq!(compose["services"]["web"]["deploy"]["replicas"], serde_yaml::Value::from(1));
    assert_eq!(compose["services"]["web-nginx"]["network_mode"], serde_yaml::Value::from("service:web"));
    // Kubernetes keeps both replicas: the sidecar is in every pod.
    let deployment = yaml_file(&tmp.path().join("rendered/app/default/kubernetes/deployment-web.yaml"));
    assert_eq!(deployment["spec"]["replicas"], serde_yaml::Value::from(2));
    // A service turned off stays off.
    write(tmp.path(), "stacks/app.yaml", stack.replace("replicas: 2", "replicas: 0"));
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    let compose = yaml_file(&tmp.path().join("rendered/app/default/compose/compose.yaml"));
    assert_eq!(compose["services"]["web"]["deploy"]["replicas"], serde_yaml::Value::from(0));
}

#[test]
fn network_blocking_a_datastore_dependency_is_an_error() {
    let tmp = fixture_dir("network-blocks-postgres", "net");
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("5432").stderr_has("services.web.dependsOn[0]");
    let text = fixture_text("network-blocks-postgres");
    out.stderr_has(&format!("--> stacks/net.yaml:{}:", line_of(&text, "dependsOn:")));
    assert!(!tmp.path().join("rendered").exists());
    // An egress rule for PostgreSQL fixes it.
    write(tmp.path(), "stacks/net.yaml", format!("{text}    - {{ cidr: 10.0.0.0/8, ports: [5432] }}\n"));
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0);
    assert!(!out.stderr.contains("5432"), "{}", out.stderr);
}

#[test]
fn task_renders_a_job_and_a_one_shot_service() {
    let tmp = fixture_dir("tasks", "app");
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    let root = tmp.path().join("rendered/app/default");
    let job = yaml_file(&root.join("kubernetes/job-migrate.yaml"));
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["name"], "migrate");
    assert!(job["metadata"]["annotations"]["argocd.argoproj.io/hook"].is_string(), "{job:?}");
    assert!(job["spec"]["ttlSecondsAfterFinished"].as_u64().is_some_and(|t| t > 0), "{job:?}");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/example/api:1.0");
    assert_eq!(container["args"], serde_yaml::to_value(["migrate", "--yes"]).unwrap());
    let kustomization = std::fs::read_to_string(root.join("kubernetes/kustomization.yaml")).unwrap();
    assert!(kustomization.contains("job-migrate.yaml"), "{kustomization}");

    let text = std::fs::read_to_string(root.join("compose/compose.yaml")).unwrap();
    let compose: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let migrate = &compose["services"]["migrate"];
    assert_eq!(migrate["image"], "ghcr.io/example/api:1.0");
    assert_eq!(migrate["restart"], "no");
    // Quoted: an unquoted `no` is a boolean in YAML 1.1.
    let block = &text[text.find("\n  migrate:\n").expect("migrate service")..];
    let block = &block[..block[1..].find("\n  api:\n").map_or(block.len(), |i| i + 1)];
    assert!(block.contains("    restart: \"no\"\n"), "{block}");
    assert!(migrate["depends_on"].get("api").is_none(), "the task waits for the service it gates: {text}");
    assert_eq!(compose["services"]["api"]["depends_on"]["migrate"]["condition"], "service_completed_successfully");
}

#[test]
fn build_only_service_is_rejected_for_kubernetes() {
    let tmp = fixture_dir("build-only", "app");
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("kubernetes").stderr_has("needs an `image`");
    let text = fixture_text("build-only");
    out.stderr_has(&format!("--> stacks/app.yaml:{}:", line_of(&text, "  api:")));
    assert!(!tmp.path().join("rendered").exists());
    // Compose builds it.
    write(tmp.path(), "stacks/app.yaml", text.replace("targets: [kubernetes, compose]", "targets: [compose]"));
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    let compose = yaml_file(&tmp.path().join("rendered/app/default/compose/compose.yaml"));
    assert_eq!(compose["services"]["api"]["build"]["dockerfile"], "Dockerfile");
}

#[test]
fn environment_extends_inherits_the_overlay() {
    let tmp = fixture_dir("extends", "app");
    Test::new().args(["render", "--all"]).current_dir(tmp.path()).run().code(0);
    let root = tmp.path().join("rendered/app");
    let web = |env: &str| yaml_file(&root.join(format!("{env}/kubernetes/deployment-web.yaml")));
    let env_of = |d: &serde_yaml::Value| -> Vec<(String, String)> {
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let label = |d: &serde_yaml::Value| d["spec"]["template"]["metadata"]["labels"]["example.com/monitored"].clone();

    let base = web("base-env");
    assert_eq!(base["spec"]["replicas"], 3);
    assert_eq!(label(&base), "yes");
    assert_eq!(env_of(&base), [pair("LOG_LEVEL", "debug")]);

    // child = base-env's overlay and components, then its own.
    let child = web("child");
    assert_eq!(child["spec"]["replicas"], 3, "child does not inherit base-env's replicas");
    assert_eq!(label(&child), "yes", "child does not inherit base-env's component");
    let env = env_of(&child);
    for p in [pair("LOG_LEVEL", "debug"), pair("REGION", "eu"), pair("OTEL_EXPORTER", "otlp")] {
        assert!(env.contains(&p), "{p:?} missing from child's env {env:?}");
    }
    assert_eq!(env.len(), 3, "{env:?}");

    // Nothing leaks back or sideways.
    let plain = web("plain");
    assert_eq!(plain["spec"]["replicas"], 1);
    assert!(label(&plain).is_null());
    assert_eq!(env_of(&plain), [pair("LOG_LEVEL", "info")]);
    // child replaced the target list; the others kept compose.
    assert!(root.join("base-env/compose/compose.yaml").is_file());
    assert!(root.join("plain/compose/compose.yaml").is_file());
    assert!(!root.join("child/compose").exists());
}

#[test]
fn a_problem_an_environment_brings_in_names_the_environment() {
    let tmp = tempdir();
    write(
        tmp.path(),
        "stacks/app.yaml",
        "name: app\nnamespace: { name: app }\nservices:\n  web:\n    image: nginx:1.27\n    \
         mounts: [{ volume: data, path: /data }]\nvolumes:\n  data: { size: 1Gi }\n\
         environments:\n  dev: {}\n  prod:\n    services:\n      web: { replicas: 3 }\n  \
         big:\n    services:\n      web: { replicas: 2 }\n",
    );
    let out = Test::new().args(["validate", "--all"]).current_dir(tmp.path()).run();
    // The error points at the base mount; the note says where replicas change.
    out.code(2)
        .stderr_has("error: service `web` has 3 replicas but mounts the ReadWriteOnce volume `data`")
        .stderr_has("= in environment `prod`\n")
        .stderr_has("error: service `web` has 2 replicas")
        .stderr_has("= in environment `big`\n");
    assert!(!out.stderr.contains("`dev`"), "{}", out.stderr);
}

/// When every environment has an error the base alone does not, the
/// environments are named too; an error of the base itself is not.
#[test]
fn a_problem_every_environment_brings_in_names_them() {
    let tmp = tempdir();
    write(
        tmp.path(),
        "stacks/app.yaml",
        "name: app\nnamespace: { name: app }\nservices:\n  web:\n    image: nginx:1.27\n    \
         dependsOn: [api]\n  api: { image: nginx:1.27, expose: { ports: [{ port: 80, target: nope }] } }\n\
         environments:\n  dev:\n    services: { api: null }\n",
    );
    let out = Test::new().args(["validate", "--all"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("error: dependency `api` is not declared").stderr_has("= in environment `dev`\n");
    // `nope` is the base's own error (dev deletes `api`, so dev does not
    // have it): no environment to name, and only once.
    write(
        tmp.path(),
        "stacks/app.yaml",
        "name: app\nnamespace: { name: app }\nservices:\n  web:\n    image: nginx:1.27\n    \
         expose: { ports: [{ port: 80, target: nope }] }\n\
         environments:\n  dev: { services: { web: { replicas: 2 } } }\n  prod: {}\n",
    );
    let out = Test::new().args(["validate", "--all"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("`nope`");
    assert!(!out.stderr.contains("in environment"), "{}", out.stderr);
}

/// `gitops` in an environment without the kubernetes target delivers
/// nothing, as its warning says: no `gitops/` pointing at a tree that is
/// not there.
#[test]
fn gitops_without_the_kubernetes_target_renders_nothing() {
    let tmp = tempdir();
    write(
        tmp.path(),
        "stacks/app.yaml",
        "name: app\nnamespace: { name: app }\ntargets: [kubernetes]\nservices:\n  web: { image: nginx:1.27 }\n\
         gitops: { repo: https://git.example.com/app.git, flux: {} }\n\
         environments:\n  dev: { targets: [compose] }\n  prod: {}\n",
    );
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0).stderr_has("which this environment does not render; nothing is rendered for it");
    assert!(!tmp.path().join("rendered/app/dev/gitops").exists());
    assert!(tmp.path().join("rendered/app/prod/gitops/kustomization.yaml").is_file());
}

#[test]
fn environment_extends_cycle_is_an_error() {
    let tmp = fixture_dir("extends-cycle", "app");
    let text = fixture_text("extends-cycle");
    for args in [&["render", "--all"][..], &["render", "app", "--env", "c"], &["list"], &["validate"]] {
        let out = Test::new().args(args).current_dir(tmp.path()).run();
        out.code(2).stderr_has("cycle").stderr_has(&format!("--> stacks/app.yaml:{}:", line_of(&text, "extends: b")));
    }
    assert!(!tmp.path().join("rendered").exists());
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    snapshot!("cli-extends-cycle", out.stderr);
}

#[test]
fn network_lint_counts_dns_egress_to_a_namespace() {
    let text = fixture_text("network-namespace-scoped");
    let tmp = tempdir();
    // Without the datastore dependency: only the DNS lint applies.
    let no_dep = text.replace("    dependsOn: [acid-db]\n", "");
    assert_ne!(no_dep, text);
    write(tmp.path(), "stacks/net.yaml", no_dep);
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0);
    let policy =
        std::fs::read_to_string(tmp.path().join("rendered/net/default/kubernetes/networkpolicy-net.yaml")).unwrap();
    assert!(policy.contains("kubernetes.io/metadata.name: kube-system"), "{policy}");
    assert!(!out.stderr.contains("DNS"), "false DNS warning for egress to kube-system on port 53:\n{}", out.stderr);
}

#[test]
fn network_lint_counts_datastore_egress_to_the_stack_namespace() {
    let tmp = fixture_dir("network-namespace-scoped", "net");
    let out = Test::new().args(["render", "--all"]).current_dir(tmp.path()).run();
    out.code(0);
    assert!(!out.stderr.contains("5432"), "{}", out.stderr);
}

#[test]
fn diff_with_out_pointing_at_a_file_is_an_error() {
    let tmp = tempdir();
    write(tmp.path(), "afile", "x");
    let render = Test::new().args(["render", "loops", "--check", "--out", "afile"]).current_dir(tmp.path()).run();
    render.code(2).stderr_has("not a directory");
    let out = Test::new().args(["diff", "loops", "--out", "afile"]).current_dir(tmp.path()).run();
    out.code(2).stderr_has("not a directory");
    assert_eq!(out.stdout, "");
}
