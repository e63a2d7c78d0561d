//! Embeds `stacks/*.yaml`, `templates/**` and `schemas/**/*.json` into the binary, so a fresh
//! machine can render without any files. The list is generated (sorted by
//! path) instead of written by hand, so adding a stack or a template needs no
//! code change. The schemas are embedded encoded (`Encoder`; their JSON
//! texts only for tests).

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

/// Encodes a parsed JSON schema in the binary form `validate::sdoc` reads
/// at run time (see there for the format): parsing the JSON text on every
/// run took about 6% of the CPU time of rendering the built-in stacks.
struct Encoder {
    /// Every distinct string, concatenated.
    table: String,
    at: std::collections::HashMap<String, u32>,
    tree: Vec<u8>,
}

impl Encoder {
    fn u32(&mut self, n: usize) {
        self.tree.extend_from_slice(&u32::try_from(n).expect("schema too large").to_le_bytes());
    }

    fn text(&mut self, s: &str) {
        let offset = match self.at.get(s) {
            Some(&o) => o,
            None => {
                let o = u32::try_from(self.table.len()).expect("schema too large");
                self.table.push_str(s);
                self.at.insert(s.to_string(), o);
                o
            }
        };
        self.u32(offset as usize);
        self.u32(s.len());
    }

    fn value(&mut self, v: &serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Null => self.tree.push(0),
            Value::Bool(false) => self.tree.push(1),
            Value::Bool(true) => self.tree.push(2),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    self.tree.push(3);
                    self.tree.extend_from_slice(&u.to_le_bytes());
                } else if let Some(i) = n.as_i64() {
                    self.tree.push(4);
                    self.tree.extend_from_slice(&i.to_le_bytes());
                } else {
                    self.tree.push(5);
                    self.tree.extend_from_slice(&n.as_f64().expect("a finite number").to_le_bytes());
                }
            }
            Value::String(s) => {
                self.tree.push(6);
                self.text(s);
            }
            Value::Array(items) => {
                self.tree.push(7);
                self.u32(items.len());
                items.iter().for_each(|i| self.value(i));
            }
            Value::Object(map) => {
                self.tree.push(8);
                self.u32(map.len());
                for (k, v) in map {
                    self.text(k);
                    self.value(v);
                }
            }
        }
    }

    /// The string table's length, the table, then the tree.
    fn encode(v: &serde_json::Value) -> Vec<u8> {
        let mut e = Encoder { table: String::new(), at: std::collections::HashMap::new(), tree: Vec::new() };
        e.value(v);
        let mut out = Vec::with_capacity(4 + e.table.len() + e.tree.len());
        out.extend_from_slice(&u32::try_from(e.table.len()).expect("schema too large").to_le_bytes());
        out.extend_from_slice(e.table.as_bytes());
        out.extend_from_slice(&e.tree);
        out
    }
}

/// `SCHEMA_DOCS`: every `schemas/**/*.json`, encoded (`encode`) into `OUT_DIR`.
fn schema_docs(out_dir: &Path) -> String {
    let mut s = String::from("pub(crate) static SCHEMA_DOCS: &[(&str, &[u8])] = &[\n");
    for (i, (rel, abs)) in files("schemas", |rel| rel.ends_with(".json")).iter().enumerate() {
        let text = std::fs::read_to_string(abs).expect("read schema");
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("schemas/{rel} is not JSON: {e}"));
        let bytes = Encoder::encode(&value);
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
