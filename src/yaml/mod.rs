//! YAML in and out: a position-aware loader for stack files and an emitter
//! whose strings read back identically under YAML 1.1 and 1.2.

pub mod doc;
pub mod emit;
pub mod fast;
mod load;
mod split;

pub use load::{LoadError, MAX_ALIAS_NODES, MAX_DEPTH, MAX_NODES, Pos, Spans, parse, parse_value, spans};
