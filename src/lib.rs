//! stackgen: typed per-app stack definitions -> deterministic Kubernetes
//! manifests and Compose files.
//!
//! Pipeline: `stack::source` (read files) -> `stack::resolve` (layers ->
//! typed `Stack`) -> `stack::validate` -> `render` (templates -> files in
//! memory) -> `output` (compare, write atomically, prune). Only the first
//! and last stages touch the file system.

pub mod alloc;
pub mod cli;
pub mod diagnostic;
pub mod diff;
pub mod interrupt;
pub mod output;
pub mod par;
pub mod pipeline;
pub mod render;
pub mod schema;
pub mod stack;
pub mod validate;
pub mod yaml;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

pub use pipeline::run;
