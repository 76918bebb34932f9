//! The judge of the encoder-decoder path: a prompt's fitness is the top-1 accuracy of a VLM's greedy answers to it
//! on the few-shot training images, each answer matched to a class by sentence embeddings
//! ([`GenerativeScorer`]). An ensemble of prompts is a majority vote of their predicted classes per image, ties to
//! the class of the better prompt (the first listed). The reference has no ensemble on this path; its result is the
//! best single prompt, which the run reports beside the ensemble.

use super::optimizer::{EvalSplit, Judge};
use crate::backend::Backend;
use crate::scoring::generative::GenerativeScorer;
use anyhow::Result;
use std::collections::HashMap;

pub struct VlmJudge<'a, B: Backend> {
    pub train: GenerativeScorer<'a, B>,
    pub val: GenerativeScorer<'a, B>,
    pub test: GenerativeScorer<'a, B>,
    /// Each prompt's predicted class per image, by split (`None`: the training images).
    predictions: HashMap<(Option<EvalSplit>, String), Vec<usize>>,
}

/// The class each image gets by majority vote of `votes` (one list of predictions per prompt, best prompt first);
/// a tie goes to the class of the first prompt among the tied.
pub fn majority_vote(votes: &[&[usize]], images: usize) -> Vec<usize> {
    (0..images)
        .map(|i| {
            let count = |class: usize| votes.iter().filter(|v| v[i] == class).count();
            let most = votes.iter().map(|v| count(v[i])).max().unwrap_or(0);
            votes.iter().map(|v| v[i]).find(|&c| count(c) == most).unwrap_or(0)
        })
        .collect()
}

impl<'a, B: Backend> VlmJudge<'a, B> {
    pub fn new(train: GenerativeScorer<'a, B>, val: GenerativeScorer<'a, B>, test: GenerativeScorer<'a, B>) -> Self {
        Self { train, val, test, predictions: HashMap::new() }
    }

    fn scorer(&self, split: Option<EvalSplit>) -> &GenerativeScorer<'a, B> {
        match split {
            None => &self.train,
            Some(EvalSplit::Val) => &self.val,
            Some(EvalSplit::Test) => &self.test,
        }
    }

    /// Scores the prompts not yet scored on `split`, all in one batch of answers.
    fn predict(&mut self, split: Option<EvalSplit>, prompts: &[String]) -> Result<()> {
        let mut missing: Vec<&str> = Vec::new();
        for p in prompts {
            if !self.predictions.contains_key(&(split, p.clone())) && !missing.contains(&p.as_str()) {
                missing.push(p);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let scored = self.scorer(split).score_all(&missing)?;
        for (prompt, (_, judged)) in missing.iter().zip(scored) {
            self.predictions.insert((split, prompt.to_string()), judged.iter().map(|j| j.predicted).collect());
        }
        Ok(())
    }

    /// Top-1 accuracy in percent of these predictions on `split`.
    fn accuracy(&self, split: Option<EvalSplit>, predicted: &[usize]) -> f64 {
        let labels = self.scorer(split).labels();
        let hits = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        100.0 * hits as f64 / labels.len().max(1) as f64
    }
}

impl<B: Backend> Judge for VlmJudge<'_, B> {
    fn train_accuracies(&mut self, prompts: &[String]) -> Result<Vec<f64>> {
        self.predict(None, prompts)?;
        Ok(prompts.iter().map(|p| self.accuracy(None, &self.predictions[&(None, p.clone())])).collect())
    }

    fn ensemble_accuracy(&mut self, split: EvalSplit, prompts: &[String]) -> Result<f64> {
        let split = Some(split);
        self.predict(split, prompts)?;
        let votes: Vec<&[usize]> = prompts.iter().map(|p| self.predictions[&(split, p.clone())].as_slice()).collect();
        let voted = majority_vote(&votes, self.scorer(split).labels().len());
        Ok(self.accuracy(split, &voted))
    }
}

#[cfg(test)]
mod tests {
    use super::majority_vote;

    #[test]
    fn the_majority_wins_and_a_tie_goes_to_the_better_prompt() {
        let (best, second, third) = ([0, 1, 2, 3], [1, 1, 0, 4], [1, 2, 0, 5]);
        let voted = majority_vote(&[&best, &second, &third], 4);
        // Image 0: two votes for 1. Image 1: two for 1. Image 2: two for 0. Image 3: three-way tie, the best's 3.
        assert_eq!(voted, [1, 1, 0, 3]);
        assert_eq!(majority_vote(&[&[7, 8][..]], 2), [7, 8]);
        // Two prompts disagreeing everywhere: the better one's classes.
        assert_eq!(majority_vote(&[&[1, 2][..], &[3, 4][..]], 2), [1, 2]);
    }
}
