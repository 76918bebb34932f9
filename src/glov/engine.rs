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
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Tokens generated so far, shared with whoever reports progress.
    pub generated_tokens: Arc<AtomicUsize>,
}

impl<B: Backend> LlmProposer<'_, B> {
    /// The sampling seed of a step: answers differ from step to step, and repeat when a step is re-run.
    fn step_seed(&self, step: usize) -> u64 {
        mix64(self.seed ^ mix64(step as u64 + 1))
    }
}

/// The note the meta-prompt puts after each template it lists; a base model copies it after its own.
const ACCURACY_NOTE: &str = "(accuracy:";

impl<B: Backend> LlmProposer<'_, B> {
    /// The meta-prompt's tokens: rendered through the model's chat template, or, for a base model without one, as
    /// plain text (the system part, a blank line, the user part and a line break: the model writes the next line).
    fn prompt(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>> {
        if self.model.chat.is_some() {
            return self.model.chat_prompt(system, user);
        }
        let text = system.map_or(String::new(), |s| format!("{s}\n\n")) + user + "\n";
        self.model.tokenizer.encode_plain(&text)
    }
}

/// A base model's answer: its first line, without the accuracy note it copies from the meta-prompt's list.
fn plain_answer(text: &str) -> String {
    let line = text.split('\n').next().unwrap_or_default();
    line.split(ACCURACY_NOTE).next().unwrap_or_default().trim_end().to_string()
}

impl<B: Backend> Proposer for LlmProposer<'_, B> {
    fn propose(&mut self, step: usize, proposals: &[Proposal], samples: usize) -> Result<Vec<Vec<String>>> {
        let requests = proposals
            .iter()
            .map(|p| {
                let prompt = self.prompt(p.messages.system.as_deref(), &p.messages.user)?;
                Ok(Request { prompt, n: samples, steer: p.offset.clone() })
            })
            .collect::<Result<Vec<_>>>()?;
        // Without a chat template nothing marks the end of an answer but the line: it ends at the first line break.
        let plain = self.model.chat.is_none();
        let mut stop_tokens = self.model.stop_tokens.clone();
        if plain {
            stop_tokens.extend_from_slice(self.model.tokenizer.line_break_tokens());
        }
        let options = GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampling: self.sampling,
            seed: self.step_seed(step),
            stop_tokens,
            steer: Some(SteerConfig { layer: self.layer, mode: SteerMode::Last, cache: self.cache }),
            streams: Streams::PerRequest,
        };
        let generation = generate(self.backend, &self.model.llm, &requests, &options)?;
        self.kv_cache_bytes = generation.kv_cache_bytes;
        let tokens: usize = generation.sequences.iter().map(|s| s.tokens.len()).sum();
        self.generated_tokens.fetch_add(tokens, Ordering::Relaxed);
        let mut answers = vec![Vec::with_capacity(samples); proposals.len()];
        for sequence in &generation.sequences {
            let text = self.model.tokenizer.decode(&sequence.tokens)?;
            let text = if plain { plain_answer(&text) } else { text };
            answers[sequence.request].push(text);
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

#[cfg(test)]
mod tests {
    use super::plain_answer;

    #[test]
    fn a_plain_answer_is_its_first_line_without_the_accuracy_note() {
        assert_eq!(plain_answer("a photo of a <category>.  (accuracy: 42%)\nmore"), "a photo of a <category>.");
        assert_eq!(plain_answer("A <category> in the wild\n\n(accuracy: 3%)"), "A <category> in the wild");
        assert_eq!(plain_answer("\na photo of a <category>."), "");
        assert_eq!(plain_answer("a sketch of a <category>"), "a sketch of a <category>");
    }
}
