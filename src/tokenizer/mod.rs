//! Text tokenisation from the checkpoint's `tokenizer.json` (or a GGUF file's metadata): CLIP's text tower,
//! decoder LLMs and sentence encoders.

mod clip;
pub mod gguf;
mod llm;
mod load;
mod openai;
mod sentence;

pub use clip::{ClipTokenizer, Pooling, TokenBatch};
pub use llm::{LlmTokenizer, llm_text};
pub use openai::openai_clip_tokenizer;
pub use sentence::SentenceTokenizer;
