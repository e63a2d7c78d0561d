//! Where stack files come from: `--stacks DIR`, else `./stacks`, else the
//! stacks embedded in the binary. Only this module reads stack files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The raw text of one stack file and the name it is shown under.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Stack name: the file stem.
    pub name: String,
    /// Path shown in diagnostics (`stacks/loops.yaml`, or `<built-in>/loops.yaml`).
    pub display: String,
    /// File contents, or the reason they are unusable as text. Shared with
    /// the parsed [`Document`](crate::stack::resolve::Document), which keeps
    /// the text for diagnostics: a copy of a 10 MB stack file took 8 ms.
    /// An `Arc<String>`, not an `Arc<str>`, which would copy the text read.
    pub text: Result<std::sync::Arc<String>, String>,
}

/// Where the stacks were found.
#[derive(Debug, Clone)]
pub enum StackDir {
    Dir(PathBuf),
    Embedded,
}

impl StackDir {
    /// `--stacks DIR` if given, else `./stacks` if it exists, else the
    /// built-in stacks.
    pub fn choose(explicit: Option<&Path>) -> StackDir {
        match explicit {
            Some(p) => StackDir::Dir(p.to_path_buf()),
            None if Path::new("stacks").is_dir() => StackDir::Dir(PathBuf::from("stacks")),
            None => StackDir::Embedded,
        }
    }

    /// All stack files, sorted by name.
    pub fn list(&self) -> Result<Vec<SourceFile>> {
        match self {
            StackDir::Embedded => Ok(crate::embedded::STACKS
                .iter()
                .map(|(file, text)| SourceFile {
                    name: file.trim_end_matches(".yaml").to_string(),
                    display: format!("<built-in>/{file}"),
                    text: Ok(std::sync::Arc::new((*text).to_string())),
                })
                .collect()),
            StackDir::Dir(dir) => {
                let entries = std::fs::read_dir(dir)
                    .with_context(|| format!("cannot read stack directory `{}`", dir.display()))?;
                let mut files = Vec::new();
                for entry in entries {
                    let entry = entry.with_context(|| format!("cannot read stack directory `{}`", dir.display()))?;
                    let path = entry.path();
                    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    let Some(stem) = name.strip_suffix(".yaml").or_else(|| name.strip_suffix(".yml")) else {
                        continue;
                    };
                    if name.starts_with('.') || !path.is_file() {
                        continue;
                    }
                    let text = match std::fs::read(&path) {
                        Ok(mut bytes) => {
                            // A byte-order mark (some Windows editors write
                            // one) is not part of the YAML stream.
                            let bom = if bytes.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
                            bytes.drain(..bom);
                            String::from_utf8(bytes).map(std::sync::Arc::new).map_err(|e| {
                                let at = bom + e.utf8_error().valid_up_to();
                                format!("file is not valid UTF-8 (invalid byte at offset {at})")
                            })
                        }
                        Err(e) => Err(format!("cannot read file: {e}")),
                    };
                    files.push(SourceFile { name: stem.to_string(), display: path.display().to_string(), text });
                }
                files.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(files)
            }
        }
    }

    /// How the directory is described in messages.
    pub fn describe(&self) -> String {
        match self {
            StackDir::Dir(d) => format!("`{}`", d.display()),
            StackDir::Embedded => "the built-in stacks".to_string(),
        }
    }
}
