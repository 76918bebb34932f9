//! The real OpenAI CLIP tokenizer (its 49,408-token BPE as an HF `tokenizer.json`, gzipped), built into the binary
//! so that benchmarks on random-weight models tokenise real text without any model files.

use super::ClipTokenizer;
use anyhow::{Context, Result};
use std::io::Read;

const GZIPPED: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tokenizer/openai-clip-tokenizer.json.gz"));

/// OpenAI CLIP's tokenizer with a context of 77 tokens; `eos_token_id` is the model config's (which selects the
/// pooling, as for a checkpoint).
pub fn openai_clip_tokenizer(eos_token_id: u32) -> Result<ClipTokenizer> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(GZIPPED).read_to_end(&mut json).context("the built-in CLIP tokenizer")?;
    ClipTokenizer::from_bytes(&json, Some(eos_token_id), 77)
}
