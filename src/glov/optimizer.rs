//! The GLOV loop over a sweep of guidance strengths. Each alpha is a trajectory with its own history and offset;
//! at each step the answers of all trajectories are sampled in one batch and all their new templates are scored in
//! one batch. The LLM and CLIP sit behind two small traits, so the bookkeeping runs the same with scripted ones.
//!
//! Trajectories whose meta-prompt and offset are equal (before guidance starts, every trajectory is in the same
//! state) form one prompt group: their answers are sampled once and shared. The sampler draws sequence `j` of every
//! group from the same random stream (seeded by the run's seed and the step), so this sharing gives exactly what
//! sampling each trajectory separately would give, and trajectories differ only through their offsets.

use super::answer::{Rejection, parse_answer, parse_question, to_llm_form};
use super::history::{Entry, History};
use super::meta_prompt::{Messages, MetaPrompt, MetaPromptVars};
use super::run_dir::{HistoryRecord, Resumed, RunDir, StepRecord};
use anyhow::{Result, bail, ensure};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// One prompt group of a step: a meta-prompt and the offset its answers are sampled with.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub messages: Messages,
    /// Already scaled by alpha.
    pub offset: Option<Vec<f32>>,
}

/// Where templates come from: the steered LLM, or a script in tests.
pub trait Proposer {
    /// `samples` raw answers for each proposal, in order. Answers depend only on the proposal, the step and the
    /// answer's index, never on the other proposals of the batch.
    fn propose(&mut self, step: usize, proposals: &[Proposal], samples: usize) -> Result<Vec<Vec<String>>>;
    /// The unscaled guidance direction H(positive) - H(negative), H being the mean of the steered block's output
    /// over the tokens of a template's LLM form (`<category>` as the slot), without a chat template.
    fn direction(&mut self, positive: &str, negative: &str) -> Result<Vec<f32>>;
}

/// The splits a template or an ensemble is evaluated on after the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EvalSplit {
    Val,
    Test,
}

/// Where accuracies come from: CLIP, or a script in tests. Accuracies are top-1, in percent.
pub trait Judge {
    /// The fitness of each template: accuracy on the few-shot train set.
    fn train_accuracies(&mut self, templates: &[String]) -> Result<Vec<f64>>;
    /// The accuracy of the ensemble of `templates` (one template: the template itself).
    fn ensemble_accuracy(&mut self, split: EvalSplit, templates: &[String]) -> Result<f64>;
}

/// What a prompt is: a template with a class slot (CLIP), or a whole question (a VLM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PromptKind {
    #[default]
    Template,
    Question,
}

impl PromptKind {
    /// The prompt in one raw answer of the LLM.
    pub fn parse(self, raw: &str) -> Result<String, Rejection> {
        match self {
            PromptKind::Template => parse_answer(raw),
            PromptKind::Question => parse_question(raw),
        }
    }

    /// What the run's messages call one prompt.
    pub fn noun(self) -> &'static str {
        match self {
            PromptKind::Template => "template",
            PromptKind::Question => "prompt",
        }
    }
}

/// What the loop needs to know of the run's settings.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    pub dataset_name: String,
    pub description: String,
    pub baseline: String,
    pub alphas: Vec<f32>,
    pub steps: usize,
    pub samples: usize,
    pub top_bottom: usize,
    pub ensemble_size: usize,
    pub prompts: PromptKind,
}

pub struct Trajectory {
    pub alpha: f32,
    pub history: History,
    /// The offset the next step is steered with: alpha * direction of the guidance pair.
    pub offset: Option<Vec<f32>>,
    pub steps: Vec<StepRecord>,
}

/// How the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Stopped on request after saving this many completed steps.
    Interrupted(usize),
}

/// One trajectory's answers of a step, parsed: the templates new to it in answer order (with their raw answers),
/// and the count of answers without a template and of templates it already had.
struct Parsed {
    new: Vec<(String, String)>,
    rejected: usize,
    duplicates: usize,
}

impl Parsed {
    fn new(trajectory: &Trajectory, answers: &[String], kind: PromptKind) -> Self {
        let mut parsed = Parsed { new: Vec::new(), rejected: 0, duplicates: 0 };
        for raw in answers {
            match kind.parse(raw) {
                Err(why) => {
                    parsed.rejected += 1;
                    tracing::trace!(alpha = trajectory.alpha, %why, raw, "answer rejected");
                }
                Ok(template)
                    if trajectory.history.contains(&template) || parsed.new.iter().any(|(n, _)| *n == template) =>
                {
                    parsed.duplicates += 1
                }
                Ok(template) => parsed.new.push((template, raw.clone())),
            }
        }
        parsed
    }
}

pub struct Optimizer<'a> {
    config: LoopConfig,
    meta: &'a MetaPrompt,
    run: RunDir,
    pub trajectories: Vec<Trajectory>,
    /// Train accuracy of every template scored so far, by any trajectory.
    scores: HashMap<String, f64>,
    ensembles: HashMap<(EvalSplit, Vec<String>), f64>,
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

/// Seconds rounded to milliseconds (they are reported, not computed with).
fn seconds(time: std::time::Duration) -> f64 {
    (time.as_secs_f64() * 1000.0).round() / 1000.0
}

impl<'a> Optimizer<'a> {
    /// A new run: scores the baseline and records it for every trajectory.
    pub fn start(config: LoopConfig, meta: &'a MetaPrompt, mut run: RunDir, judge: &mut dyn Judge) -> Result<Self> {
        let accuracy = judge.train_accuracies(std::slice::from_ref(&config.baseline))?[0];
        let records: Vec<HistoryRecord> = config
            .alphas
            .iter()
            .map(|&alpha| HistoryRecord {
                step: None,
                alpha,
                template: config.baseline.clone(),
                train_accuracy: accuracy,
                raw: None,
            })
            .collect();
        run.commit_baseline(&records)?;
        let trajectories = config
            .alphas
            .iter()
            .map(|&alpha| Trajectory {
                alpha,
                history: History::new(&config.baseline, accuracy),
                offset: None,
                steps: Vec::new(),
            })
            .collect();
        let scores = HashMap::from([(config.baseline.clone(), accuracy)]);
        Ok(Self { config, meta, run, trajectories, scores, ensembles: HashMap::new() })
    }

    /// A resumed run, rebuilt from its files: histories replayed step by step (so the guidance pairs are those
    /// the run had), offsets recomputed, the score cache refilled.
    pub fn resume<C>(
        config: LoopConfig,
        meta: &'a MetaPrompt,
        run: RunDir,
        resumed: Resumed<C>,
        proposer: &mut dyn Proposer,
    ) -> Result<Self> {
        let mut trajectories = Vec::new();
        let mut scores = HashMap::new();
        for &alpha in &config.alphas {
            let records: Vec<&HistoryRecord> = resumed.history.iter().filter(|r| r.alpha == alpha).collect();
            let Some((baseline, rest)) = records.split_first() else {
                bail!("{} has no baseline line for alpha {alpha}", super::run_dir::HISTORY)
            };
            ensure!(
                baseline.step.is_none() && baseline.template == config.baseline,
                "the first line of alpha {alpha} in {} is not the baseline",
                super::run_dir::HISTORY
            );
            let mut history = History::new(&baseline.template, baseline.train_accuracy);
            scores.insert(baseline.template.clone(), baseline.train_accuracy);
            for step in 0..resumed.completed_steps {
                let entries: Vec<Entry> = rest
                    .iter()
                    .filter(|r| r.step == Some(step))
                    .map(|r| {
                        scores.insert(r.template.clone(), r.train_accuracy);
                        Entry { step: r.step, template: r.template.clone(), accuracy: r.train_accuracy }
                    })
                    .collect();
                history.push_step(entries);
            }
            let steps: Vec<StepRecord> = resumed.steps.iter().filter(|s| s.alpha == alpha).cloned().collect();
            ensure!(
                steps.len() == resumed.completed_steps,
                "{} has {} lines for alpha {alpha}, but {} steps are complete",
                super::run_dir::STEPS,
                steps.len(),
                resumed.completed_steps
            );
            trajectories.push(Trajectory { alpha, history, offset: None, steps });
        }
        let known: usize = trajectories.iter().map(|t| t.history.entries().len()).sum();
        ensure!(
            known == resumed.history.len(),
            "{} has lines for other alphas or steps than the run's settings",
            super::run_dir::HISTORY
        );
        let mut optimizer = Self { config, meta, run, trajectories, scores, ensembles: HashMap::new() };
        for t in 0..optimizer.trajectories.len() {
            optimizer.update_offset(t, proposer)?;
        }
        Ok(optimizer)
    }

    pub fn completed_steps(&self) -> usize {
        self.run.completed_steps()
    }

    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    pub fn config(&self) -> &LoopConfig {
        &self.config
    }

    fn update_offset(&mut self, t: usize, proposer: &mut dyn Proposer) -> Result<()> {
        let trajectory = &mut self.trajectories[t];
        trajectory.offset = match trajectory.history.guidance() {
            Some(pair) if trajectory.alpha > 0.0 => {
                let direction = proposer.direction(&to_llm_form(&pair.positive), &to_llm_form(&pair.negative))?;
                Some(direction.into_iter().map(|x| trajectory.alpha * x).collect())
            }
            _ => None,
        };
        Ok(())
    }

    /// The meta-prompt trajectory `t` sees at `step`.
    pub fn messages(&self, t: usize, step: usize) -> Result<Messages> {
        let (best, worst, k) = self.trajectories[t].history.examples(self.config.top_bottom);
        self.meta.render(&MetaPromptVars {
            dataset_name: &self.config.dataset_name,
            description: &self.config.description,
            best,
            worst,
            k,
            step,
            steps: self.config.steps,
        })
    }

    /// Runs the remaining steps, checking `stop` between steps; `on_step` sees the state after each.
    pub fn run(
        &mut self,
        proposer: &mut dyn Proposer,
        judge: &mut dyn Judge,
        stop: &AtomicBool,
        on_step: &mut dyn FnMut(&Optimizer),
    ) -> Result<Outcome> {
        while self.completed_steps() < self.config.steps {
            if stop.load(Ordering::SeqCst) {
                return Ok(Outcome::Interrupted(self.completed_steps()));
            }
            self.step(proposer, judge)?;
            on_step(self);
        }
        Ok(Outcome::Finished)
    }

    /// One step for every trajectory: sample, parse, score, update guidance, evaluate the step's ensemble, save.
    pub fn step(&mut self, proposer: &mut dyn Proposer, judge: &mut dyn Judge) -> Result<()> {
        let step = self.completed_steps();
        let _span = tracing::info_span!("glov_step", step).entered();

        let started = Instant::now();
        let (proposals, group_of) = self.prompt_groups(step)?;
        let answers = proposer.propose(step, &proposals, self.config.samples)?;
        ensure!(
            answers.len() == proposals.len() && answers.iter().all(|a| a.len() == self.config.samples),
            "the proposer returned {} answer lists for {} prompts",
            answers.len(),
            proposals.len()
        );
        let mut generating = started.elapsed();
        tracing::debug!(groups = proposals.len(), seconds = seconds(generating), "answers sampled");

        let scoring = Instant::now();
        let parsed: Vec<Parsed> = self
            .trajectories
            .iter()
            .zip(&group_of)
            .map(|(t, &g)| Parsed::new(t, &answers[g], self.config.prompts))
            .collect();
        self.score_new(judge, &parsed)?;

        // Histories, guidance and the step's ensembles.
        let mut history_records = Vec::new();
        let mut changed = Vec::new();
        let mut ensembles = Vec::new();
        for (t, p) in parsed.iter().enumerate() {
            let alpha = self.trajectories[t].alpha;
            let entries: Vec<Entry> = p
                .new
                .iter()
                .map(|(template, raw)| {
                    let accuracy = self.scores[template];
                    history_records.push(HistoryRecord {
                        step: Some(step),
                        alpha,
                        template: template.clone(),
                        train_accuracy: accuracy,
                        raw: Some(raw.clone()),
                    });
                    Entry { step: Some(step), template: template.clone(), accuracy }
                })
                .collect();
            if self.trajectories[t].history.push_step(entries) {
                changed.push(t);
            }
            let top: Vec<String> = self.trajectories[t]
                .history
                .step_top(step, self.config.ensemble_size)
                .into_iter()
                .map(|e| e.template.clone())
                .collect();
            let accuracy = if top.is_empty() { None } else { Some(self.ensemble(judge, EvalSplit::Val, &top)?) };
            ensembles.push((top, accuracy));
        }
        let score_seconds = seconds(scoring.elapsed());

        let guidance_started = Instant::now();
        let used_offsets: Vec<Option<f64>> = self.trajectories.iter().map(|t| t.offset.as_deref().map(norm)).collect();
        for &t in &changed {
            self.update_offset(t, proposer)?;
        }
        generating += guidance_started.elapsed();
        let generate_seconds = seconds(generating);

        let step_records: Vec<StepRecord> = self
            .trajectories
            .iter()
            .enumerate()
            .zip(ensembles)
            .map(|((t, trajectory), (ensemble, val))| StepRecord {
                step,
                alpha: trajectory.alpha,
                answers: self.config.samples,
                new_templates: parsed[t].new.len(),
                rejected: parsed[t].rejected,
                duplicates: parsed[t].duplicates,
                best_template: trajectory.history.best().template.clone(),
                best_train_accuracy: trajectory.history.best().accuracy,
                ensemble,
                ensemble_val_accuracy: val,
                guidance: used_offsets[t].is_some(),
                offset_norm: used_offsets[t],
                generate_seconds,
                score_seconds,
            })
            .collect();
        self.run.commit_step(&history_records, &step_records)?;
        for (trajectory, record) in self.trajectories.iter_mut().zip(step_records) {
            trajectory.steps.push(record);
        }
        Ok(())
    }

    /// The proposals of a step, and the proposal of each trajectory: trajectories in the same state share one.
    fn prompt_groups(&self, step: usize) -> Result<(Vec<Proposal>, Vec<usize>)> {
        let mut proposals: Vec<Proposal> = Vec::new();
        let mut group_of = Vec::with_capacity(self.trajectories.len());
        for (t, trajectory) in self.trajectories.iter().enumerate() {
            let proposal = Proposal { messages: self.messages(t, step)?, offset: trajectory.offset.clone() };
            let group = match proposals.iter().position(|p| *p == proposal) {
                Some(g) => g,
                None => {
                    proposals.push(proposal);
                    proposals.len() - 1
                }
            };
            group_of.push(group);
        }
        Ok((proposals, group_of))
    }

    /// Scores, in one batch, every new template that no trajectory has scored before.
    fn score_new(&mut self, judge: &mut dyn Judge, parsed: &[Parsed]) -> Result<()> {
        let mut unscored: Vec<String> = Vec::new();
        for (template, _) in parsed.iter().flat_map(|p| &p.new) {
            if !self.scores.contains_key(template) && !unscored.contains(template) {
                unscored.push(template.clone());
            }
        }
        if unscored.is_empty() {
            return Ok(());
        }
        let accuracies = judge.train_accuracies(&unscored)?;
        ensure!(
            accuracies.len() == unscored.len(),
            "the judge scored {} of {} templates",
            accuracies.len(),
            unscored.len()
        );
        self.scores.extend(unscored.into_iter().zip(accuracies));
        Ok(())
    }

    /// The accuracy of an ensemble on a split, computed once per distinct ensemble.
    pub fn ensemble(&mut self, judge: &mut dyn Judge, split: EvalSplit, templates: &[String]) -> Result<f64> {
        let key = (split, templates.to_vec());
        if let Some(&accuracy) = self.ensembles.get(&key) {
            return Ok(accuracy);
        }
        let accuracy = judge.ensemble_accuracy(split, templates)?;
        self.ensembles.insert(key, accuracy);
        Ok(accuracy)
    }
}
