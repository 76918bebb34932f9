//! Text generation: sampling, stop conditions, batched decoding with a shared-prefix KV cache, steering, and the
//! hidden states that guidance vectors are made from.

pub mod generate;
pub mod hidden;
pub mod prompt_logits;
pub use crate::sampling;
pub mod steering;
