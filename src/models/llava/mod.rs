//! LLaVA-OneVision (HF `LlavaOnevisionForConditionalGeneration`), the encoder-decoder VLM of GLOV's second
//! setting: the anyres image processor ([`crate::preprocess::anyres`]), SigLIP's vision tower and the projector on
//! the backend, the packing of each image's features with `image_newline` (`pack_image_features`, on the host), and
//! the language model (Qwen2, as the decoder LLMs are run) with those features in place of the image tokens' embeddings,
//! batched and with the KV cache. Model directories in both weight layouts are read: the hub's
//! (`vision_tower.vision_model.*`, `multi_modal_projector.*`, `language_model.model.*`, `language_model.lm_head.*`,
//! `image_newline`) and the newer one under `model.` (with `lm_head.*`).

pub mod config;
pub mod image_encoder;
pub mod pack;
pub mod random;
pub mod vision;

use crate::backend::Backend;
use crate::checkpoint::{Checkpoint, StoredTensor, WeightStore};
use crate::generation::generate::{GenerateOptions, PromptEmbeddings, Request, generate_replacing};
use crate::generation::prompt_logits::last_logits_replacing;
use crate::models::llm::{Llm, LlmConfig};
use crate::preprocess::anyres::AnyresConfig;
use crate::tokenizer::LlmTokenizer;
use anyhow::{Context, Result, ensure};
use config::LlavaConfig;
use image::RgbImage;
pub use image_encoder::{ImageEncoder, ImageFeatures};

pub struct LlavaModel<B: Backend> {
    pub checkpoint: Checkpoint,
    pub image: ImageEncoder<B>,
    pub llm: Llm<B>,
    pub tokenizer: LlmTokenizer,
    pub stop_tokens: Vec<u32>,
}

/// The conversation the reference asks in (`{}`: the question, verbatim).
pub const CONVERSATION: &str = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\
                                <image>\n{}<|im_end|>\n<|im_start|>assistant\n";

/// One question about one image, answered.
pub struct Answer {
    /// The prompt, the image token repeated once per image feature.
    pub input_ids: Vec<u32>,
    pub image_tokens: usize,
    /// The logits of the prompt's last position.
    pub last_logits: Vec<f32>,
    /// The greedy continuation, without the stop token.
    pub answer_ids: Vec<u32>,
    pub answer: String,
}

/// The language model's `config.json` (`text_config`, with its architecture named where the file leaves it out)
/// and its weights under the names a decoder LLM has (`model.*`, `lm_head.*`).
fn language_model(checkpoint: &Checkpoint) -> Result<(LlmConfig, WeightStore)> {
    let mut text = checkpoint.config.get("text_config").cloned().context("config.json: text_config is missing")?;
    if text.get("architectures").is_none() {
        let architecture = match text.get("model_type").and_then(serde_json::Value::as_str) {
            Some("qwen2") => "Qwen2ForCausalLM",
            Some("llama") => "LlamaForCausalLM",
            Some("mistral") => "MistralForCausalLM",
            other => {
                anyhow::bail!("config.json: text_config.model_type {other:?} is not a language model glov-cuda runs")
            }
        };
        text["architectures"] = serde_json::json!([architecture]);
    }
    let config = LlmConfig::from_json(&text).context("config.json: text_config")?;
    let renames = [
        ("model.language_model.", "model."),
        ("language_model.model.", "model."),
        ("language_model.lm_head.", "lm_head."),
        ("lm_head.", "lm_head."),
    ];
    let mut tensors = Vec::new();
    for tensor in checkpoint.weights.tensors() {
        if let Some((from, to)) = renames.iter().find(|(from, _)| tensor.name.starts_with(from)) {
            let mut renamed: StoredTensor = tensor.clone();
            renamed.name = format!("{to}{}", &tensor.name[from.len()..]);
            tensors.push(renamed);
        }
    }
    let store = WeightStore::from_tensors(&checkpoint.dir.display().to_string(), tensors);
    config.check_weights(&store)?;
    Ok((config, store))
}

impl<B: Backend> LlavaModel<B> {
    pub fn open(backend: &B, model: &str) -> Result<Self> {
        let checkpoint = Checkpoint::open(model)?;
        let dir = checkpoint.dir.display().to_string();
        let config = LlavaConfig::from_json(&checkpoint.config).with_context(|| format!("model {dir}"))?;
        let processor = AnyresConfig::from_file(&checkpoint.file("preprocessor_config.json")?)?;
        let image = ImageEncoder::load(backend, &checkpoint.weights, config, processor, &dir)
            .with_context(|| format!("loading the image side of {dir}"))?;
        let (llm_config, store) = language_model(&checkpoint).with_context(|| format!("model {dir}"))?;
        ensure!(
            llm_config.hidden_size == image.config.text_hidden,
            "{dir}: the language model's width {} is not the projector's {}",
            llm_config.hidden_size,
            image.config.text_hidden
        );
        let llm = Llm::from_store(backend, &store, llm_config)
            .with_context(|| format!("loading the language model of {dir}"))?;
        let (tokenizer, _, mut stop_tokens) = crate::tokenizer::llm_text(&checkpoint)?;
        if let Some(end) = tokenizer.token_to_id("<|im_end|>").filter(|t| !stop_tokens.contains(t)) {
            stop_tokens.push(end);
        }
        ensure!(
            (image.config.image_token as usize) < llm.config.vocab_size,
            "{dir}: image_token_index {} is outside the vocabulary",
            image.config.image_token
        );
        Ok(Self { checkpoint, image, llm, tokenizer, stop_tokens })
    }

    /// The conversation's ids for `question`, with the one image token repeated `image_tokens` times, and the
    /// positions of those copies.
    pub fn prompt(&self, question: &str, image_tokens: usize) -> Result<(Vec<u32>, Vec<usize>)> {
        let ids = self.tokenizer.encode_rendered(&CONVERSATION.replacen("{}", question, 1))?;
        let image = self.image.config.image_token;
        let at: Vec<usize> = ids.iter().enumerate().filter(|(_, t)| **t == image).map(|(i, _)| i).collect();
        ensure!(
            at.len() == 1,
            "the conversation holds {} image tokens, not one (the question holds <image>?)",
            at.len()
        );
        let mut expanded = ids[..at[0]].to_vec();
        expanded.extend(std::iter::repeat_n(image, image_tokens));
        expanded.extend_from_slice(&ids[at[0] + 1..]);
        Ok((expanded, (at[0]..at[0] + image_tokens).collect()))
    }

    /// The greedy answer to `question` about `img` (up to `max_new_tokens`, ending at a stop token), and the
    /// image's features.
    pub fn answer(
        &self,
        backend: &B,
        img: &RgbImage,
        question: &str,
        max_new_tokens: usize,
    ) -> Result<(Answer, ImageFeatures)> {
        let image = self.image.features(backend, img)?;
        let (input_ids, positions) = self.prompt(question, image.tokens)?;
        let replaced = PromptEmbeddings { positions, values: &image.features };
        let last_logits = last_logits_replacing(backend, &self.llm, &input_ids, None, &replaced)?;
        let options = GenerateOptions::greedy(max_new_tokens, self.stop_tokens.clone());
        let request = Request { prompt: input_ids.clone(), n: 1, steer: None };
        let generation = generate_replacing(backend, &self.llm, &[request], &[replaced], &options)?;
        let answer_ids = generation.sequences[0].tokens.clone();
        let answer = self.tokenizer.decode(&answer_ids)?;
        Ok((Answer { input_ids, image_tokens: image.tokens, last_logits, answer_ids, answer }, image))
    }
}
