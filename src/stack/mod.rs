//! Stack files: where they come from (`source`), their types (`model`),
//! layering of environments and components (`resolve`, read in place by
//! `layered`), and the checks
//! beyond types (`validate`).

pub mod layered;
pub mod model;
pub mod resolve;
pub mod source;
pub mod validate;
