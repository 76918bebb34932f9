//! Models written once against the backend trait.

pub mod clip;
pub mod llava;
pub mod llm;
pub mod random;
pub mod sentence;
