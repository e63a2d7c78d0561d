//! Embeds `stacks/*.yaml`, `templates/**` and `schemas/**/*.json` into the binary, so a fresh
//! machine can render without any files. The list is generated (sorted by
//! path) instead of written by hand, so adding a stack or a template needs no
//! code change.

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

fn table(name: &str, dir: &str, keep: impl Fn(&str) -> bool) -> String {
    let root = Path::new(dir);
    let mut files = Vec::new();
    collect(root, root, &mut files);
    files.retain(|(rel, _)| keep(rel));
    files.sort();
    let mut s = format!("pub(crate) static {name}: &[(&str, &str)] = &[\n");
    for (rel, abs) in files {
        writeln!(s, "    ({rel:?}, include_str!({:?})),", abs.to_string_lossy()).unwrap();
    }
    s.push_str("];\n");
    s
}

fn main() {
    println!("cargo:rerun-if-changed=stacks");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=schemas");
    let mut code = table("STACKS", "stacks", |rel| rel.ends_with(".yaml") && !rel.contains('/'));
    code.push_str(&table("TEMPLATES", "templates", |rel| rel.ends_with(".j2")));
    code.push_str(&table("SCHEMAS", "schemas", |rel| rel.ends_with(".json")));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded.rs");
    std::fs::write(out, code).expect("write embedded.rs");
}
