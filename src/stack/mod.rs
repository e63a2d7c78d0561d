//! Stack files: where they come from (`source`), their types (`model`),
//! layering of environments and components (`resolve`), and the checks
//! beyond types (`validate`).

pub mod model;
pub mod resolve;
pub mod source;
pub mod validate;
