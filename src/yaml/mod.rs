//! YAML in and out: a position-aware loader for stack files (`load`, with a
//! fast path through `fast` for their plain shape, and `split` for large
//! ones), an emitter whose strings read back identically under YAML 1.1 and
//! 1.2 (`emit`), and the fast reader of rendered documents (`fast`, into
//! `doc::Doc`).

pub mod doc;
pub mod emit;
pub mod fast;
pub mod keys;
mod load;
mod split;

pub use load::{
    LoadError, MAX_ALIAS_NODES, MAX_DEPTH, MAX_NODES, Pos, Spans, parse, parse_value, parse_value_spans, spans,
};

/// The parallel reader of large stack files alone (`None` where it declines
/// and the whole text would be parsed on one thread), for the `load_split`
/// fuzz target, which checks it against [`parse`] on texts far shorter than
/// the size from which loading uses it.
#[doc(hidden)]
pub fn parse_split(text: &str) -> Option<serde_yaml::Value> {
    split::parse_parallel(text)
}

/// Every file under `dir`, depth first (tests that read the repository's
/// snapshots and fixtures).
#[cfg(test)]
fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}
