//! Validation of the rendered output before anything is written: every
//! Kubernetes document against the embedded Kubernetes schema (selectable
//! version) or its CRD schema, every compose file against the Compose
//! Specification, and lints no schema can express (a Service that selects
//! no workload). Unknown fields are errors. See `schemas/README.md` for the
//! sources and licences of the embedded schemas.

#[cfg(test)]
mod encode;
pub mod jsonschema;
mod sdoc;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{Result, bail};

use crate::render::File;
use crate::yaml::doc::Doc;
use jsonschema::Schema;

/// Kubernetes versions whose schemas are embedded.
pub const KUBE_VERSIONS: &[&str] = &["1.30", "1.32"];
/// The default Kubernetes version.
pub const DEFAULT_KUBE_VERSION: &str = "1.32";

/// A schema opened on first use (or why it could not be).
type Lazy = OnceLock<Result<Schema, String>>;

/// The embedded schemas, each opened on first use (a render needs only
/// some of them) and then shared by every check. Opened schemas are never
/// freed (see `open_schema`).
pub struct Validator {
    kube: Schema,
    /// The Kubernetes schema's `kinds` (`apiVersion/kind` → its schema),
    /// sorted for binary search: looked up for every rendered object.
    kinds: Vec<(&'static str, sdoc::V)>,
    /// ObjectMeta's schema, which CRD objects' metadata is checked against.
    object_meta: Option<sdoc::V>,
    version: String,
    crds: BTreeMap<&'static str, (&'static [u8], Lazy)>,
    compose: Lazy,
}

/// An embedded schema, encoded by `build.rs` (see `sdoc`).
fn embedded(path: &str) -> Option<&'static [u8]> {
    crate::embedded::SCHEMA_DOCS.iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}

/// A checker for an embedded schema, read in place (see `sdoc`); the
/// bytes stay for the rest of the process, and the compiled checker borrows
/// from them. A CRD's schema arrives closed by `build.rs` the way the API
/// server treats it (`encode::close_crd`: no unknown top-level field;
/// `apiVersion`, `kind` and `metadata` always allowed).
fn open_schema(what: &str, encoded: &'static [u8]) -> Result<Schema, String> {
    sdoc::Encoded::open(encoded).map(|e| Schema::new(e.root())).map_err(|e| format!("embedded schema {what}: {e}"))
}

impl Validator {
    /// Loads the schemas for Kubernetes `version` (e.g. `1.32`).
    pub fn new(version: &str) -> Result<Validator> {
        let file = format!("kubernetes/v{version}.json");
        let Some(text) = embedded(&file) else {
            bail!("no schema for Kubernetes {version}; available: {}", KUBE_VERSIONS.join(", "));
        };
        let kube = open_schema(&file, text).map_err(|e| anyhow::anyhow!(e))?;
        let crds = crate::embedded::SCHEMA_DOCS
            .iter()
            .filter(|(p, _)| p.starts_with("crds/"))
            .map(|(path, text)| (*path, (*text, OnceLock::new())))
            .collect();
        let root = kube.root();
        let mut kinds: Vec<(&'static str, sdoc::V)> = root.get("kinds").into_iter().flat_map(|k| k.entries()).collect();
        kinds.sort_by_key(|(k, _)| *k);
        let object_meta = root.pointer("/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        Ok(Validator { kube, kinds, object_meta, version: version.to_string(), crds, compose: OnceLock::new() })
    }

    fn compose(&self) -> Result<&Schema, &String> {
        self.compose
            .get_or_init(|| {
                let text = embedded("compose-spec.json").ok_or("no embedded compose schema")?;
                open_schema("compose-spec.json", text)
            })
            .as_ref()
    }

    /// Problems of every rendered file: those found while rendering, a
    /// check of any YAML file not checked yet, and the lints across files.
    pub fn check(&self, files: &[File]) -> Vec<String> {
        let mut problems: Vec<String> = crate::par::map(files, |f| match &f.problems {
            Some(p) => p.clone(),
            None => self.check_file(f),
        })
        .into_iter()
        .flatten()
        .collect();
        let mut docs: BTreeMap<&str, Vec<(&str, &LintFacts)>> = BTreeMap::new();
        for f in files {
            let dir = f.path.rsplit_once('/').map_or("", |(d, _)| d);
            if let (Some(v), true) = (&f.lint, dir.ends_with("/kubernetes")) {
                docs.entry(dir).or_default().push((f.path.as_str(), v));
            }
        }
        for (dir, objs) in &docs {
            problems.extend(lint_selectors(dir, objs));
        }
        problems
    }

    /// Problems of one file not checked while rendering.
    fn check_file(&self, f: &File) -> Vec<String> {
        let dir = f.path.rsplit_once('/').map_or("", |(d, _)| d);
        let is_kube = dir.ends_with("/kubernetes") || dir.ends_with("/gitops");
        let is_compose = f.path.ends_with("/compose/compose.yaml");
        if !(is_kube || is_compose) || !f.path.ends_with(".yaml") || f.path.ends_with("/kustomization.yaml") {
            return Vec::new();
        }
        let parsed = std::str::from_utf8(&f.bytes)
            .map_err(|e| e.to_string())
            .and_then(|text| crate::yaml::fast::parse_rendered(text).map_err(|e| e.to_string()));
        let value = match parsed {
            Ok(v) => v,
            Err(e) => return vec![format!("{}: not valid YAML: {e}", f.path)],
        };
        if is_compose { self.check_compose(&f.path, &value) } else { self.check_object(&f.path, &value) }
    }

    /// A compose file against the Compose Specification.
    pub fn check_compose(&self, file: &str, value: &Doc<'_>) -> Vec<String> {
        let schema = match self.compose() {
            Ok(s) => s,
            Err(e) => return vec![format!("{file}: {e}")],
        };
        schema
            .check(value)
            .into_iter()
            .map(|v| format!("{file}: `{}`: {} [Compose Specification]", path_or_root(&v.path), v.rule))
            .collect()
    }

    /// A Kubernetes object against its Kubernetes or CRD schema.
    pub fn check_object(&self, file: &str, value: &Doc<'_>) -> Vec<String> {
        let api = value.get("apiVersion").and_then(Doc::as_str).unwrap_or_default();
        let kind = value.get("kind").and_then(Doc::as_str).unwrap_or_default();
        let name = value.pointer("/metadata/name").and_then(Doc::as_str).unwrap_or_default();
        let what = format!("{kind} `{name}`");
        let key = format!("{api}/{kind}");
        let mut out = Vec::new();
        let mut report = |v: jsonschema::Violation, rule_src: &str| {
            out.push(format!("{file}: {what}: `{}`: {} [{rule_src}]", path_or_root(&v.path), v.rule));
        };
        let kube = &self.kube;
        if let Ok(i) = self.kinds.binary_search_by_key(&key.as_str(), |(k, _)| *k) {
            let root = self.kinds[i].1;
            for v in kube.check_at(root, value) {
                report(v, &format!("Kubernetes {} {key}", self.version));
            }
            return out;
        }
        let (group, version) = api.rsplit_once('/').unwrap_or(("", api));
        let crd = format!("crds/{group}/{}_{version}.json", kind.to_ascii_lowercase());
        let Some((text, opened)) = self.crds.get(crd.as_str()) else {
            out.push(format!("{file}: {what}: no schema for {api} {kind}; stackgen cannot check it"));
            return out;
        };
        let schema = match opened.get_or_init(|| open_schema(&crd, text)) {
            Ok(s) => s,
            Err(e) => {
                out.push(format!("{file}: {what}: {e}"));
                return out;
            }
        };
        for v in schema.check(value) {
            report(v, &format!("CRD {group} {version} {kind}"));
        }
        // CRD schemas do not describe metadata; check it as ObjectMeta.
        if let (Some(meta), Some(def)) = (value.get("metadata"), self.object_meta) {
            for mut v in kube.check_at(def, meta) {
                v.path = format!(".metadata{}", v.path);
                report(v, &format!("Kubernetes {} ObjectMeta", self.version));
            }
        }
        out
    }
}

fn path_or_root(p: &str) -> &str {
    if p.is_empty() { "." } else { p }
}

/// What the cross-document lints need of a Kubernetes object, taken while
/// it is rendered (the document itself is dropped once checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintFacts {
    pub kind: String,
    pub name: String,
    /// A Service's `spec.selector`: label and value, the value as JSON text
    /// (so the string `"1"` and the number `1` stay apart).
    pub selector: Option<Vec<(String, String)>>,
    /// A workload's pod template labels, the same way.
    pub pod_labels: Option<Vec<(String, String)>>,
}

/// The lint facts of a rendered object (`None` without a kind or a name).
pub fn lint_facts(doc: &Doc<'_>) -> Option<LintFacts> {
    let kind = doc.get("kind")?.as_str()?;
    let name = doc.pointer("/metadata/name")?.as_str().unwrap_or_default();
    let pairs = |at: &str| -> Option<Vec<(String, String)>> {
        let map = doc.pointer(at)?.as_object()?;
        Some(map.iter().map(|(k, v)| (k.to_string(), v.to_json().to_string())).collect())
    };
    let pod_labels = match kind {
        "Deployment" | "StatefulSet" | "Job" => pairs("/spec/template/metadata/labels"),
        "CronJob" => pairs("/spec/jobTemplate/spec/template/metadata/labels"),
        _ => None,
    };
    let selector = if kind == "Service" { pairs("/spec/selector") } else { None };
    Some(LintFacts { kind: kind.to_string(), name: name.to_string(), selector, pod_labels })
}

/// A Service must select the pods of some workload in the same directory.
/// Workloads are indexed by label pair, so this stays linear in the number
/// of objects.
fn lint_selectors(dir: &str, objs: &[(&str, &LintFacts)]) -> Vec<String> {
    let pod_labels: Vec<&[(String, String)]> = objs.iter().filter_map(|(_, f)| f.pod_labels.as_deref()).collect();
    let mut by_pair: std::collections::HashMap<(&str, &str), Vec<usize>> = std::collections::HashMap::new();
    for (i, labels) in pod_labels.iter().enumerate() {
        for (k, v) in labels.iter() {
            by_pair.entry((k, v)).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (file, f) in objs {
        if f.kind != "Service" {
            continue;
        }
        let Some(sel) = f.selector.as_deref() else { continue };
        if sel.is_empty() {
            continue;
        }
        // The rarest label pair of the selector bounds the candidates (a
        // pair every workload has must not make this quadratic).
        let candidates = sel
            .iter()
            .map(|(k, v)| by_pair.get(&(k.as_str(), v.as_str())).map(Vec::as_slice).unwrap_or_default())
            .min_by_key(|c| c.len())
            .unwrap_or_default();
        let matched = candidates.iter().any(|&i| sel.iter().all(|pair| pod_labels[i].contains(pair)));
        if !matched {
            out.push(format!(
                "{file}: Service `{}`: its selector matches no workload in `{dir}` [lint: service-selector]",
                f.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(yaml: &str) -> LintFacts {
        lint_facts(&crate::yaml::fast::parse(yaml).expect("yaml")).expect("kind and name")
    }

    #[test]
    fn a_service_must_select_some_workload() {
        let deploy = facts(
            "kind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    metadata:\n      labels: {app: web, tier: front, n: 1}\n",
        );
        let cron = facts(
            "kind: CronJob\nmetadata: {name: dump}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          labels: {app: dump}\n",
        );
        let svc = |sel: &str| facts(&format!("kind: Service\nmetadata: {{name: s}}\nspec:\n  selector: {sel}\n"));
        let lint = |service: &LintFacts| {
            lint_selectors("x/kubernetes", &[("d.yaml", &deploy), ("c.yaml", &cron), ("s.yaml", service)])
        };
        for ok in ["{app: web}", "{app: web, tier: front}", "{app: dump}", "{n: 1}", "{}"] {
            assert!(lint(&svc(ok)).is_empty(), "{ok}");
        }
        for bad in ["{app: api}", "{app: web, tier: back}", "{app: dump, tier: front}", "{n: \"1\"}"] {
            let found = lint(&svc(bad));
            assert_eq!(found.len(), 1, "{bad}");
            assert!(found[0].contains("s.yaml: Service `s`: its selector matches no workload in `x/kubernetes`"));
        }
        assert_eq!(deploy.selector, None);
        assert_eq!(svc("{app: web}").pod_labels, None);
    }

    /// Schemas are parsed on first use; this proves every embedded one
    /// parses, so no render can meet a broken one late.
    #[test]
    fn every_embedded_schema_parses() {
        for version in KUBE_VERSIONS {
            let v = Validator::new(version).expect("Kubernetes schema");
            assert!(v.compose().is_ok(), "compose schema");
            assert!(!v.crds.is_empty());
            for (path, (text, _)) in &v.crds {
                let schema = open_schema(path, text).unwrap_or_else(|e| panic!("{e}"));
                assert!(schema.root().get("properties").is_some(), "{path} has no properties");
            }
        }
    }

    #[test]
    fn a_manifest_carries_no_status() {
        // The controller writes `status`; the embedded schemas drop it
        // (schemas/extract.py), for Kubernetes kinds and CRDs alike.
        let v = Validator::new(DEFAULT_KUBE_VERSION).unwrap();
        for (head, spec) in [
            ("apiVersion: apps/v1\nkind: Deployment", "spec: {selector: {}, template: {}}"),
            ("apiVersion: argoproj.io/v1alpha1\nkind: Application", "spec: {destination: {}, project: p}"),
        ] {
            let text = format!("{head}\nmetadata: {{name: x}}\n{spec}\n");
            let ok = crate::yaml::fast::parse(&text).unwrap();
            assert_eq!(v.check_object("x.yaml", &ok), Vec::<String>::new(), "{head}");
            let with_status = format!("{text}status: {{}}\n");
            let bad = crate::yaml::fast::parse(&with_status).unwrap();
            let problems = v.check_object("x.yaml", &bad);
            assert!(problems.len() == 1 && problems[0].contains("status"), "{head}: {problems:?}");
        }
    }
}
