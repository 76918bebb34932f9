//! Models written once against the backend trait.

pub mod clip;
