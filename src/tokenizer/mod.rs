//! Text tokenisation for CLIP's text tower, from the checkpoint's `tokenizer.json`.

mod clip;

pub use clip::{ClipTokenizer, Pooling, TokenBatch};
