//! Embeds `stacks/*.yaml`, `templates/**` and `schemas/**/*.json` into the binary, so a fresh
//! machine can render without any files. The list is generated (sorted by
//! path) instead of written by hand, so adding a stack or a template needs no
//! code change. The schemas are embedded encoded (`src/validate/encode.rs`;
//! their JSON texts only for tests).

#[path = "src/validate/encode.rs"]
mod encode;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, root, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((rel, path.canonicalize().expect("canonical path")));
        }
    }
}

/// The files under `dir` that `keep` takes (by `/`-separated relative
/// path), sorted by that path, with their absolute paths.
fn files(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<(String, PathBuf)> {
    let root = Path::new(dir);
    let mut files = Vec::new();
    collect(root, root, &mut files);
    files.retain(|(rel, _)| keep(rel));
    files.sort();
    files
}

fn table(name: &str, dir: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut s = format!("pub(crate) static {name}: &[(&str, &str)] = &[\n");
    for (rel, abs) in files(dir, keep) {
        writeln!(s, "    ({rel:?}, include_str!({:?})),", abs.to_string_lossy()).unwrap();
    }
    s.push_str("];\n");
    s
}

/// `SCHEMA_DOCS`: every `schemas/**/*.json`, encoded (`encode::encode`) into
/// `OUT_DIR`; a CRD's schema closed first (`encode::close_crd`).
fn schema_docs(out_dir: &Path) -> String {
    let mut s = String::from("pub(crate) static SCHEMA_DOCS: &[(&str, &[u8])] = &[\n");
    for (i, (rel, abs)) in files("schemas", |rel| rel.ends_with(".json")).iter().enumerate() {
        let text = std::fs::read_to_string(abs).expect("read schema");
        let mut value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("schemas/{rel} is not JSON: {e}"));
        if encode::is_crd(rel) {
            encode::close_crd(&mut value);
        }
        let bytes = encode::encode(&value);
        let path = out_dir.join(format!("schema-{i}.sdoc"));
        std::fs::write(&path, bytes).expect("write encoded schema");
        writeln!(s, "    ({rel:?}, include_bytes!({:?})),", path.to_string_lossy()).unwrap();
    }
    s.push_str("];\n");
    s
}

fn main() {
    println!("cargo:rerun-if-changed=stacks");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=schemas");
    println!("cargo:rerun-if-changed=src/validate/encode.rs");
    let mut code = table("STACKS", "stacks", |rel| rel.ends_with(".yaml") && !rel.contains('/'));
    code.push_str(&table("TEMPLATES", "templates", |rel| rel.ends_with(".j2")));
    // The JSON texts only for tests (which compare the encoded form with
    // them); the binary carries the encoded schemas.
    code.push_str("#[cfg(test)]\n");
    code.push_str(&table("SCHEMAS", "schemas", |rel| rel.ends_with(".json")));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    code.push_str(&schema_docs(&out_dir));
    std::fs::write(out_dir.join("embedded.rs"), code).expect("write embedded.rs");
}
