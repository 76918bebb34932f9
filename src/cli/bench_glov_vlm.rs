//! The judge half of `bench glov-step --vlm-shape`: a GLOV step of the encoder-decoder path after the proposal,
//! timed by phase as the VLM judge runs it:
//! - vision: every image through the processor, the vision tower and projector, and the packing; done once per run
//!   (the features are kept), so it is timed once, before the steps, and reported apart;
//! - prefill: the step's `--templates` questions about every image, in batches of at most `--vlm-batch` answers,
//!   image by image, each image's prefix prefilled once for its questions in the batch;
//! - decoding: greedy, `--vlm-new-tokens` per answer, no stop tokens (the worst case);
//! - matching: every answer (random tokens of about `--answer-tokens`) embedded by the matcher; the class names are
//!   embedded once per run and are not part of the step.
//!
//! The prefill is timed as a generation of no new tokens; decoding as the same generation with new tokens, less it.

use super::bench_llm::random_prompt;
use super::bench_vlm::{Cuts, RandomJudge, answer_lengths, synthetic_image};
use crate::backend::Backend;
use crate::generation::generate::{GenerateOptions, PromptEmbeddings, SharedPrefix, generate_shared};
use crate::models::llava::ImageFeatures;
use crate::sampling::mix64;
use anyhow::{Result, ensure};
use serde_json::{Value, json};
use std::time::Instant;

/// What the VLM half of a step asks.
pub struct VlmStep {
    pub images: usize,
    pub image: (u32, u32),
    pub questions: usize,
    pub question_tokens: usize,
    pub new_tokens: usize,
    pub batch: usize,
    pub answer_tokens: usize,
}

/// The VLM, its matcher and the images' features, made once.
pub struct VlmHalf<B: Backend> {
    judge: RandomJudge<B>,
    features: Vec<ImageFeatures>,
    step: VlmStep,
    seed: u64,
    pub vision_seconds: f64,
}

/// One step's seconds by phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct VlmTimes {
    pub prefill: f64,
    pub decoding: f64,
    pub matching: f64,
    pub prefill_tokens: usize,
    pub decoded_tokens: usize,
}

impl<B: Backend> VlmHalf<B> {
    pub fn new(backend: &B, shape: &str, cuts: Cuts, step: VlmStep, seed: u64) -> Result<Self> {
        ensure!(
            step.images > 0 && step.questions > 0 && step.batch > 0,
            "--images, --templates and --vlm-batch must be positive"
        );
        ensure!(step.new_tokens > 0 && step.answer_tokens > 0, "--vlm-new-tokens and --answer-tokens must be positive");
        let judge = RandomJudge::new(backend, shape, cuts, seed)?;
        backend.synchronize()?;
        let start = Instant::now();
        let features = (0..step.images)
            .map(|i| judge.encoder.features(backend, &synthetic_image(step.image, mix64(seed ^ i as u64))))
            .collect::<Result<Vec<_>>>()?;
        backend.synchronize()?;
        let vision_seconds = start.elapsed().as_secs_f64();
        Ok(Self { judge, features, step, seed, vision_seconds })
    }

    /// The step's questions about every image, in the judge's batches, each run with `new_tokens` new tokens;
    /// returns the seconds and the tokens prefilled and made.
    fn generate(&self, backend: &B, questions: &[Vec<u32>], new_tokens: usize) -> Result<(f64, usize, usize)> {
        let pairs: Vec<(usize, usize)> =
            (0..self.features.len()).flat_map(|i| (0..questions.len()).map(move |q| (q, i))).collect();
        let (mut prefilled, mut made) = (0, 0);
        backend.synchronize()?;
        let start = Instant::now();
        for chunk in pairs.chunks(self.step.batch) {
            let mut groups: Vec<SharedPrefix> = Vec::new();
            let mut replaced = Vec::new();
            for run in chunk.chunk_by(|a, b| a.1 == b.1) {
                let image = &self.features[run[0].1];
                let asked: Vec<Vec<u32>> = run.iter().map(|&(q, _)| questions[q].clone()).collect();
                let (group, positions) = self.judge.questions(image.tokens, &asked, mix64(self.seed ^ run[0].1 as u64));
                prefilled += group.prefix.len() + group.continuations.iter().map(|c| c.len() - 1).sum::<usize>();
                groups.push(group);
                replaced.push(PromptEmbeddings { positions, values: &image.features });
            }
            let generation = generate_shared(
                backend,
                &self.judge.llm,
                &groups,
                &replaced,
                &GenerateOptions::greedy(new_tokens, Vec::new()),
            )?;
            made += generation.sequences.iter().map(|s| s.tokens.len()).sum::<usize>();
        }
        backend.synchronize()?;
        Ok((start.elapsed().as_secs_f64(), prefilled, made))
    }

    /// One step's judging of `questions` new questions.
    pub fn run(&self, backend: &B) -> Result<VlmTimes> {
        let vocab = self.judge.shape.llm.vocab_size;
        let questions: Vec<Vec<u32>> = (0..self.step.questions)
            .map(|q| random_prompt(self.step.question_tokens, vocab, mix64(self.seed ^ (q as u64 + 500))))
            .collect();
        let (prefill, prefill_tokens, _) = self.generate(backend, &questions, 0)?;
        let (generating, _, decoded_tokens) = self.generate(backend, &questions, self.step.new_tokens)?;
        let answers = self.features.len() * questions.len();
        let lengths = answer_lengths(answers, self.step.answer_tokens, self.seed);
        let ids: Vec<Vec<u32>> = lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| random_prompt(n, self.judge.matcher_config.vocab_size, mix64(self.seed ^ (i as u64 + 7))))
            .collect();
        let start = Instant::now();
        self.judge.matcher.embed_ids(backend, &ids)?;
        backend.synchronize()?;
        Ok(VlmTimes {
            prefill,
            decoding: (generating - prefill).max(0.0),
            matching: start.elapsed().as_secs_f64(),
            prefill_tokens,
            decoded_tokens,
        })
    }

    /// What the JSON says of the VLM half.
    pub fn describe(&self, t: &VlmTimes) -> Value {
        let s = &self.step;
        let tokens: Vec<usize> = self.features.iter().map(|f| f.tokens).collect();
        json!({
            "images": s.images, "image_size": [s.image.0, s.image.1], "image_tokens": tokens,
            "questions": s.questions, "question_tokens": s.question_tokens, "new_tokens": s.new_tokens,
            "batch": s.batch, "answers": s.images * s.questions,
            "prefill_tokens": t.prefill_tokens, "decoded_tokens": t.decoded_tokens,
            "vision_seconds_once": self.vision_seconds,
            "llm": super::bench_llm::describe_config(&self.judge.shape.llm),
            "vision_layers": self.judge.shape.config.vision.tower.num_layers,
            "matcher_layers": self.judge.matcher_config.num_layers,
            "what": "vision: every image once per run (its features kept), timed before the steps; prefill: each \
                     image's prefix once per batch, then each question; decoding: greedy, no stop tokens, the \
                     generation with new tokens less the prefill; matching: every answer embedded",
        })
    }
}
