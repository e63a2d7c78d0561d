//! docs/stack-format.md stays true: every complete example (a fenced block
//! whose info string is `yaml stack`) renders with the real binary, and
//! every field of the stack format's JSON schema is documented there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Examples the reference must keep, at the least.
const MIN_EXAMPLES: usize = 6;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn reference() -> String {
    let path = repo().join("docs/stack-format.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn stackgen(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stackgen"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the stackgen binary")
}

/// One complete stack example: where it starts, its name and its text.
struct Example {
    line: usize,
    name: String,
    text: String,
}

/// The ```` ```yaml stack ```` blocks of a Markdown text.
fn examples(markdown: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let line_no = i + 1;
        match current.as_mut() {
            None => {
                if line.trim_end() == "```yaml stack" {
                    current = Some((line_no, String::new()));
                }
            }
            Some((start, text)) => {
                if line.trim_end() == "```" {
                    let start = *start;
                    let text = std::mem::take(text);
                    let name = text
                        .lines()
                        .find_map(|l| l.strip_prefix("name:"))
                        .map(|n| n.trim().trim_matches(['"', '\'']).to_string())
                        .unwrap_or_default();
                    out.push(Example { line: start, name, text });
                    current = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "docs/stack-format.md: a ```yaml stack block is never closed");
    out
}

#[test]
fn every_complete_example_renders() {
    let examples = examples(&reference());
    assert!(
        examples.len() >= MIN_EXAMPLES,
        "docs/stack-format.md has {} complete examples (```yaml stack), expected at least {MIN_EXAMPLES}",
        examples.len()
    );
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for ex in &examples {
        let valid_name =
            !ex.name.is_empty() && ex.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        assert!(valid_name, "example at docs/stack-format.md:{} has no usable top-level `name:` line", ex.line);
        assert!(names.insert(ex.name.clone()), "two examples are named `{}`", ex.name);

        let tmp = tempfile::tempdir().expect("temporary directory");
        let stacks: PathBuf = tmp.path().join("stacks");
        std::fs::create_dir(&stacks).expect("create the stacks directory");
        std::fs::write(stacks.join(format!("{}.yaml", ex.name)), &ex.text).expect("write the example");
        let out = tmp.path().join("out");
        let (stacks_arg, out_arg) = (stacks.to_string_lossy(), out.to_string_lossy());
        let run = stackgen(&["render", "--all", "--stacks", &stacks_arg, "--out", &out_arg], tmp.path());
        if run.status.code() != Some(0) {
            failures.push(format!(
                "example `{}` (docs/stack-format.md:{}) exited with {:?}\n--- stderr ---\n{}--- stdout ---\n{}",
                ex.name,
                ex.line,
                run.status.code(),
                String::from_utf8_lossy(&run.stderr),
                String::from_utf8_lossy(&run.stdout)
            ));
        } else if !out.join(&ex.name).is_dir() {
            failures.push(format!("example `{}` (docs/stack-format.md:{}) rendered nothing", ex.name, ex.line));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every property of the schema, as (where, name): the top level and every
/// definition except the derived `...Overlay` copies.
fn schema_properties(schema: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.get("properties").and_then(|p| p.as_object()).map(|p| p.keys().cloned().collect()).unwrap_or_default()
    };
    for name in keys(schema) {
        out.push(("top level".to_string(), name));
    }
    let defs = schema.get("$defs").and_then(|d| d.as_object()).expect("the schema has `$defs`");
    for (def, body) in defs.iter().filter(|(def, _)| !def.ends_with("Overlay")) {
        for name in keys(body) {
            out.push((format!("$defs/{def}"), name));
        }
    }
    out
}

#[test]
fn every_schema_field_is_documented() {
    let run = stackgen(&["schema"], repo());
    assert_eq!(run.status.code(), Some(0), "stackgen schema failed: {}", String::from_utf8_lossy(&run.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&run.stdout).expect("`stackgen schema` prints JSON");
    let properties = schema_properties(&schema);
    assert!(properties.len() > 50, "suspiciously few schema properties: {}", properties.len());
    let doc = reference();
    let missing: Vec<String> = properties
        .iter()
        .filter(|(_, name)| !doc.contains(&format!("`{name}`")))
        .map(|(def, name)| format!("`{name}` ({def})"))
        .collect();
    assert!(missing.is_empty(), "docs/stack-format.md does not mention these fields: {}", missing.join(", "));
}

#[test]
fn example_extraction_reads_fences_and_names() {
    let md = "text\n```yaml stack\n# c\nname: demo\nservices:\n  a:\n    name: x\n```\n```yaml\nname: fragment\n```\n";
    let found = examples(md);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "demo");
    assert_eq!(found[0].line, 2);
    assert!(found[0].text.starts_with("# c\nname: demo\n"));
}
