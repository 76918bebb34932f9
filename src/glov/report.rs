//! The end of a run: each trajectory's chosen step (the best validation accuracy of a step's ensemble), the chosen
//! alpha (the best train accuracy reached), test accuracies, and the files that report them.

use super::baselines::DescriptionResults;
use super::optimizer::{EvalSplit, Judge, Optimizer, PromptKind};
use super::plot::{LineStyle, Series, accuracy_png};
use crate::glov::method::Method;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct BaselineResult {
    pub template: String,
    pub train_accuracy: f64,
    pub val_accuracy: f64,
    pub test_accuracy: f64,
}

/// The ensemble of the dataset's published CLIP template set (`score --template-set`), a baseline beside the
/// single template.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct TemplateSetResult {
    pub name: String,
    pub templates: usize,
    pub test_accuracy: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct TrajectoryResult {
    pub alpha: f32,
    pub best_template: String,
    pub best_train_accuracy: f64,
    pub templates_scored: usize,
    /// The step whose ensemble did best on the validation split; `None` when no step brought a template (the
    /// ensemble is then the baseline).
    pub chosen_step: Option<usize>,
    pub ensemble: Vec<String>,
    pub ensemble_val_accuracy: f64,
    pub ensemble_test_accuracy: f64,
    /// A VLM run's best prompt alone on the test split: the reference's result on that path, which has no
    /// ensemble.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_test_accuracy: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Results {
    pub dataset: String,
    pub steps: usize,
    pub baseline: BaselineResult,
    pub trajectories: Vec<TrajectoryResult>,
    /// Chosen among the non-zero alphas (all, if only 0 was run) by best train accuracy; ties go to the better
    /// validation accuracy, then to the earlier alpha in the list.
    pub chosen_alpha: f32,
    /// The final result: the chosen alpha's ensemble on the test split.
    pub test_accuracy: f64,
    /// The same for alpha = 0 (GLOV without guidance), when it was run.
    pub test_accuracy_without_guidance: Option<f64>,
    pub final_ensemble: Vec<String>,
    /// `None` where the dataset's name has no published template set (and in runs from before there was one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_set: Option<TemplateSetResult>,
    /// The description baselines the settings asked for (see [`super::baselines`]).
    #[serde(default, skip_serializing_if = "DescriptionResults::is_empty")]
    pub descriptions: DescriptionResults,
}

pub fn results(optimizer: &mut Optimizer, judge: &mut dyn Judge) -> Result<Results> {
    let config = optimizer.config().clone();
    let baseline = std::slice::from_ref(&config.baseline);
    let baseline = BaselineResult {
        template: config.baseline.clone(),
        train_accuracy: optimizer.trajectories[0].history.baseline().accuracy,
        val_accuracy: optimizer.ensemble(judge, EvalSplit::Val, baseline)?,
        test_accuracy: optimizer.ensemble(judge, EvalSplit::Test, baseline)?,
    };
    let mut trajectories = Vec::new();
    for t in 0..optimizer.trajectories.len() {
        let trajectory = &optimizer.trajectories[t];
        let chosen = trajectory
            .steps
            .iter()
            .filter_map(|s| s.ensemble_val_accuracy.map(|a| (s, a)))
            .reduce(|best, next| if next.1 > best.1 { next } else { best });
        let (chosen_step, ensemble, val) = match chosen {
            Some((s, a)) => (Some(s.step), s.ensemble.clone(), a),
            None => (None, vec![config.baseline.clone()], baseline.val_accuracy),
        };
        let best = trajectory.history.best();
        let (alpha, best_template, best_train_accuracy) = (trajectory.alpha, best.template.clone(), best.accuracy);
        let templates_scored = trajectory.history.entries().len() - 1;
        let test = optimizer.ensemble(judge, EvalSplit::Test, &ensemble)?;
        let best_test_accuracy = match config.prompts {
            PromptKind::Question => {
                Some(optimizer.ensemble(judge, EvalSplit::Test, std::slice::from_ref(&best_template))?)
            }
            PromptKind::Template => None,
        };
        trajectories.push(TrajectoryResult {
            alpha,
            best_template,
            best_train_accuracy,
            templates_scored,
            chosen_step,
            ensemble,
            ensemble_val_accuracy: val,
            ensemble_test_accuracy: test,
            best_test_accuracy,
        });
    }
    let guided: Vec<&TrajectoryResult> = trajectories.iter().filter(|t| t.alpha > 0.0).collect();
    let candidates = if guided.is_empty() { trajectories.iter().collect() } else { guided };
    let chosen = candidates
        .into_iter()
        .reduce(|best, next| {
            let better = next.best_train_accuracy > best.best_train_accuracy
                || (next.best_train_accuracy == best.best_train_accuracy
                    && next.ensemble_val_accuracy > best.ensemble_val_accuracy);
            if better { next } else { best }
        })
        .expect("at least one trajectory");
    // A published set is CLIP templates: no questions for a VLM.
    let published = match config.prompts {
        PromptKind::Template => crate::scoring::template_sets::find(&config.dataset_name).ok(),
        PromptKind::Question => None,
    };
    let template_set = match published {
        Some(set) => {
            let templates = set.templates();
            let test_accuracy = optimizer.ensemble(judge, EvalSplit::Test, &templates)?;
            Some(TemplateSetResult { name: set.name.to_string(), templates: templates.len(), test_accuracy })
        }
        None => None,
    };
    Ok(Results {
        dataset: config.dataset_name.clone(),
        template_set,
        descriptions: DescriptionResults::default(),
        steps: optimizer.completed_steps(),
        chosen_alpha: chosen.alpha,
        test_accuracy: chosen.ensemble_test_accuracy,
        test_accuracy_without_guidance: trajectories.iter().find(|t| t.alpha == 0.0).map(|t| t.ensemble_test_accuracy),
        final_ensemble: chosen.ensemble.clone(),
        baseline,
        trajectories,
    })
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// One row per trajectory, plus the baseline as the first row (alpha empty).
pub fn results_csv(r: &Results) -> String {
    let mut out = String::from(
        "alpha,chosen,best_template,best_train_accuracy,templates_scored,chosen_step,ensemble,ensemble_val_accuracy,ensemble_test_accuracy\n",
    );
    let b = &r.baseline;
    let _ = writeln!(
        out,
        ",baseline,{},{},0,,{},{},{}",
        csv_field(&b.template),
        b.train_accuracy,
        csv_field(&b.template),
        b.val_accuracy,
        b.test_accuracy
    );
    for t in &r.trajectories {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            t.alpha,
            if t.alpha == r.chosen_alpha { "yes" } else { "no" },
            csv_field(&t.best_template),
            t.best_train_accuracy,
            t.templates_scored,
            t.chosen_step.map(|s| s.to_string()).unwrap_or_default(),
            csv_field(&t.ensemble.join(" | ")),
            t.ensemble_val_accuracy,
            t.ensemble_test_accuracy
        );
    }
    out
}

/// The final ensemble's templates, one per line: a templates file for `glov-cuda score --templates`.
pub fn best_templates(r: &Results) -> String {
    r.final_ensemble.iter().map(|t| format!("{t}\n")).collect()
}

/// The summary printed at the end of a run.
/// The table printed at the end of a run of `method`.
pub fn summary_table(r: &Results, method: Method, kind: PromptKind) -> String {
    let noun = kind.noun();
    let mut out = String::new();
    let _ = writeln!(out, "{} on {} after {} steps (accuracies: top-1 %)", method.label(), r.dataset, r.steps);
    let _ = writeln!(out, "{:>8}  {:>8}  {:>6}  {:>6}  {:>6}  best {noun}", "alpha", "scored", "train", "val", "test");
    let b = &r.baseline;
    let _ = writeln!(
        out,
        "{:>8}  {:>8}  {:>6.2}  {:>6.2}  {:>6.2}  {}",
        "baseline", 1, b.train_accuracy, b.val_accuracy, b.test_accuracy, b.template
    );
    for t in &r.trajectories {
        let mark = if t.alpha == r.chosen_alpha { "*" } else { " " };
        let _ = writeln!(
            out,
            "{:>7}{mark}  {:>8}  {:>6.2}  {:>6.2}  {:>6.2}  {}",
            t.alpha,
            t.templates_scored,
            t.best_train_accuracy,
            t.ensemble_val_accuracy,
            t.ensemble_test_accuracy,
            t.best_template
        );
    }
    let _ = writeln!(out, "train: best {noun}'s few-shot accuracy; val and test: the ensemble of the chosen step");
    let _ = writeln!(
        out,
        "chosen alpha (*): {}; test accuracy {:.2} (baseline {:.2})",
        r.chosen_alpha, r.test_accuracy, b.test_accuracy
    );
    let chosen = r.trajectories.iter().find(|t| t.alpha == r.chosen_alpha);
    if let Some(single) = chosen.and_then(|t| t.best_test_accuracy) {
        let _ = writeln!(
            out,
            "the VLM's ensemble is a majority vote of the prompts' classes (the reference has none); the best prompt \
             alone, the reference's result: test accuracy {single:.2}"
        );
    }
    if let Some(set) = &r.template_set {
        let _ = writeln!(
            out,
            "the dataset's CLIP template set ({}, {} templates), as an ensemble: test accuracy {:.2}",
            set.name, set.templates, set.test_accuracy
        );
    }
    for (name, described) in [("CuPL", &r.descriptions.cupl), ("DCLIP", &r.descriptions.dclip)] {
        if let Some(d) = described {
            let without = match d.classes_without_sentence.len() {
                0 => String::new(),
                n => format!("; {n} class(es) without one scored by the baseline template"),
            };
            let _ = writeln!(
                out,
                "{name}: {} sentences written by the LLM ({}{without}): test accuracy {:.2}",
                d.sentences, d.file, d.test_accuracy
            );
        }
    }
    if let Some(w) = &r.descriptions.waffle {
        let _ = writeln!(
            out,
            "WaffleCLIP: {} pairs of random descriptors, {} runs: test accuracy {:.2} ± {:.2}",
            w.pairs,
            w.runs.len(),
            w.test_accuracy,
            w.std
        );
    }
    if let Some(without) = r.test_accuracy_without_guidance.filter(|_| method == Method::Glov) {
        let _ = writeln!(out, "without guidance (alpha 0): test accuracy {without:.2}");
    }
    let _ = writeln!(out, "final ensemble:");
    for t in &r.final_ensemble {
        let _ = writeln!(out, "  {t}");
    }
    out
}

/// Accuracy against step for each trajectory: the best train accuracy so far, and the step ensemble's validation
/// accuracy.
pub fn plot(optimizer: &Optimizer) -> Result<Vec<u8>> {
    let mut series = Vec::new();
    for (group, t) in optimizer.trajectories.iter().enumerate() {
        series.push(Series {
            label: format!("alpha {}: best train", t.alpha),
            points: t.steps.iter().map(|s| (s.step, s.best_train_accuracy)).collect(),
            group,
            line: LineStyle::Solid,
        });
    }
    for (group, t) in optimizer.trajectories.iter().enumerate() {
        series.push(Series {
            label: format!("alpha {}: step ensemble, val", t.alpha),
            points: t.steps.iter().filter_map(|s| s.ensemble_val_accuracy.map(|a| (s.step, a))).collect(),
            group,
            line: LineStyle::Dashed,
        });
    }
    accuracy_png(&format!("GLOV on {}", optimizer.config().dataset_name), "top-1 accuracy (%)", &series)
}
