//! The real proposer and judge: the steered LLM, and CLIP scoring on three dataset splits.

use super::optimizer::{EvalSplit, Judge, Proposal, Proposer};
use crate::backend::Backend;
use crate::generation::generate::{GenerateOptions, Request, Streams, generate};
use crate::generation::hidden::block_output_means;
use crate::generation::sampling::{SamplingParams, mix64};
use crate::generation::steering::{SteerCache, SteerConfig, SteerMode};
use crate::models::llm::LlmModel;
use crate::scoring::Scorer;
use anyhow::Result;

pub struct LlmProposer<'a, B: Backend> {
    pub backend: &'a B,
    pub model: &'a LlmModel<B>,
    pub layer: usize,
    pub cache: SteerCache,
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    pub seed: u64,
    /// KV-cache bytes of the last step's batch.
    pub kv_cache_bytes: usize,
}

impl<B: Backend> LlmProposer<'_, B> {
    /// The sampling seed of a step: answers differ from step to step, and repeat when a step is re-run.
    fn step_seed(&self, step: usize) -> u64 {
        mix64(self.seed ^ mix64(step as u64 + 1))
    }
}

impl<B: Backend> Proposer for LlmProposer<'_, B> {
    fn propose(&mut self, step: usize, proposals: &[Proposal], samples: usize) -> Result<Vec<Vec<String>>> {
        let requests = proposals
            .iter()
            .map(|p| {
                let prompt = self.model.chat_prompt(p.messages.system.as_deref(), &p.messages.user)?;
                Ok(Request { prompt, n: samples, steer: p.offset.clone() })
            })
            .collect::<Result<Vec<_>>>()?;
        let options = GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampling: self.sampling,
            seed: self.step_seed(step),
            stop_tokens: self.model.stop_tokens.clone(),
            steer: Some(SteerConfig { layer: self.layer, mode: SteerMode::Last, cache: self.cache }),
            streams: Streams::PerRequest,
        };
        let generation = generate(self.backend, &self.model.llm, &requests, &options)?;
        self.kv_cache_bytes = generation.kv_cache_bytes;
        let mut answers = vec![Vec::with_capacity(samples); proposals.len()];
        for sequence in &generation.sequences {
            answers[sequence.request].push(self.model.tokenizer.decode(&sequence.tokens)?);
        }
        Ok(answers)
    }

    fn direction(&mut self, positive: &str, negative: &str) -> Result<Vec<f32>> {
        let texts = [self.model.tokenizer.encode_plain(positive)?, self.model.tokenizer.encode_plain(negative)?];
        let means = block_output_means(self.backend, &self.model.llm, &texts, self.layer)?;
        let (p, n) = means.split_at(self.model.llm.config.hidden_size);
        Ok(p.iter().zip(n).map(|(a, b)| a - b).collect())
    }
}

/// Scorers of the few-shot train set and of the validation and test splits.
pub struct ClipJudge<'a, B: Backend> {
    pub train: Scorer<'a, B>,
    pub val: Scorer<'a, B>,
    pub test: Scorer<'a, B>,
}

impl<B: Backend> Judge for ClipJudge<'_, B> {
    fn train_accuracies(&mut self, templates: &[String]) -> Result<Vec<f64>> {
        Ok(self.train.score_templates(templates)?.into_iter().map(|a| a.top1).collect())
    }

    fn ensemble_accuracy(&mut self, split: EvalSplit, templates: &[String]) -> Result<f64> {
        let scorer = match split {
            EvalSplit::Val => &self.val,
            EvalSplit::Test => &self.test,
        };
        Ok(scorer.score_ensemble(templates)?.top1)
    }
}
