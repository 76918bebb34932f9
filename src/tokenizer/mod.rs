//! Text tokenisation from the checkpoint's `tokenizer.json`: CLIP's text tower and decoder LLMs.

mod clip;
mod llm;

pub use clip::{ClipTokenizer, Pooling, TokenBatch};
pub use llm::LlmTokenizer;
