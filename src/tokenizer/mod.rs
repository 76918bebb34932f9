//! Text tokenisation from the checkpoint's `tokenizer.json`: CLIP's text tower and decoder LLMs.

mod clip;
mod llm;
mod openai;

pub use clip::{ClipTokenizer, Pooling, TokenBatch};
pub use llm::LlmTokenizer;
pub use openai::openai_clip_tokenizer;
