//! The optimizer's bookkeeping, driven by a scripted proposer and judge: prompt groups, parsing, the score cache,
//! guidance and its offsets, step ensembles, the run directory, resume, and the final choice.

use glov_cuda::glov::meta_prompt::{DEFAULT, MetaPrompt};
use glov_cuda::glov::optimizer::{EvalSplit, Judge, LoopConfig, Optimizer, Outcome, PromptKind, Proposal, Proposer};
use glov_cuda::glov::report;
use glov_cuda::glov::run_dir::{HISTORY, RunDir, STEPS};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Answers written by a script: at step s, a steered group answers from `steered[s]`, an unsteered one from
/// `plain[s]`. Accuracies are written into the templates (`acc=NN`) for the judge to read.
struct Script {
    plain: Vec<Vec<&'static str>>,
    steered: Vec<Vec<&'static str>>,
    /// Every call: the step and its proposals.
    calls: Vec<(usize, Vec<Proposal>)>,
    directions: Vec<(String, String)>,
}

impl Proposer for Script {
    fn propose(&mut self, step: usize, proposals: &[Proposal], samples: usize) -> anyhow::Result<Vec<Vec<String>>> {
        self.calls.push((step, proposals.to_vec()));
        Ok(proposals
            .iter()
            .map(|p| {
                let answers = if p.offset.is_some() { &self.steered[step] } else { &self.plain[step] };
                assert_eq!(answers.len(), samples);
                answers.iter().map(|a| a.to_string()).collect()
            })
            .collect())
    }

    fn direction(&mut self, positive: &str, negative: &str) -> anyhow::Result<Vec<f32>> {
        self.directions.push((positive.to_string(), negative.to_string()));
        Ok(vec![positive.len() as f32, -(negative.len() as f32)])
    }
}

#[derive(Default)]
struct Scores {
    train_calls: Vec<Vec<String>>,
    ensemble_calls: Vec<(EvalSplit, Vec<String>)>,
}

/// A scripted template's accuracy, written in it; the published templates of the dataset's CLIP set (DTD's 8)
/// score 20.
fn written_accuracy(template: &str) -> f64 {
    match template.find("acc=") {
        Some(at) => template[at + 4..].split_whitespace().next().unwrap().parse().unwrap(),
        None => {
            assert!(template.starts_with("a photo of "), "not scripted: {template:?}");
            20.0
        }
    }
}

impl Judge for Scores {
    fn train_accuracies(&mut self, templates: &[String]) -> anyhow::Result<Vec<f64>> {
        self.train_calls.push(templates.to_vec());
        Ok(templates.iter().map(|t| written_accuracy(t)).collect())
    }

    fn ensemble_accuracy(&mut self, split: EvalSplit, templates: &[String]) -> anyhow::Result<f64> {
        self.ensemble_calls.push((split, templates.to_vec()));
        let mean = templates.iter().map(|t| written_accuracy(t)).sum::<f64>() / templates.len() as f64;
        Ok(if split == EvalSplit::Val { mean } else { mean - 1.0 })
    }
}

fn script() -> Script {
    Script {
        plain: vec![
            // Step 0, one group for all: a better template, a rejection, a worse one, a repeat within the step.
            vec![
                "1. \"a {} photo acc=60\"",
                "I cannot think of one.",
                "Template: b <category> acc=40",
                "a <Category> photo acc=60",
            ],
            // Step 1, alpha 0 alone: a repeat of step 0 and three new.
            vec!["a {} photo acc=60", "c {} acc=55", "d {} acc=45", "e {} acc=50"],
            vec!["f {} acc=30", "g {} acc=20", "h {} acc=10", "none"],
        ],
        steered: vec![
            vec![],
            // Step 1, alphas 1 and 0.5 (each with its own offset, the same script): a new best and a template
            // that alpha 0 also finds at this step.
            vec!["x {} acc=80", "c {} acc=55", "y {} acc=65", "nothing"],
            vec!["z {} acc=90", "x {} acc=80", "w {} acc=70", "v {} acc=75"],
        ],
        calls: Vec::new(),
        directions: Vec::new(),
    }
}

fn loop_config(steps: usize) -> LoopConfig {
    LoopConfig {
        dataset_name: "DTD".into(),
        description: "Close-up images of textures.".into(),
        baseline: "a photo of a {} acc=50".into(),
        alphas: vec![1.0, 0.5, 0.0],
        steps,
        samples: 4,
        top_bottom: 5,
        ensemble_size: 3,
        prompts: PromptKind::Template,
    }
}

fn run_all(dir: &Path, steps: usize) -> (Script, Scores, report::Results) {
    let meta = MetaPrompt::parse(DEFAULT).unwrap();
    let (mut proposer, mut judge) = (script(), Scores::default());
    let run = RunDir::create(dir, &serde_json::json!({"test": true})).unwrap();
    let mut optimizer = Optimizer::start(loop_config(steps), &meta, run, &mut judge).unwrap();
    let outcome = optimizer.run(&mut proposer, &mut judge, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(outcome, Outcome::Finished);
    let results = report::results(&mut optimizer, &mut judge).unwrap();
    (proposer, judge, results)
}

#[test]
fn bookkeeping_follows_the_method() {
    let dir = tempfile::tempdir().unwrap();
    let (proposer, judge, results) = run_all(dir.path(), 3);

    // Step 0: every trajectory is in the same state, so one prompt group; after it, alphas 1 and 0.5 are guided
    // (different offsets) and alpha 0 is not: three groups.
    let offsets: Vec<Vec<Option<Vec<f32>>>> =
        proposer.calls.iter().map(|c| c.1.iter().map(|p| p.offset.clone()).collect()).collect();
    let d = ["a <category> photo acc=60".len() as f32, -("a photo of a <category> acc=50".len() as f32)];
    assert_eq!(offsets[0], vec![None]);
    assert_eq!(offsets[1], vec![Some(d.to_vec()), Some(vec![0.5 * d[0], 0.5 * d[1]]), None]);
    // The pair after step 0 is (the new best, the baseline), in the LLM's form; after step 1 a new best (x, 80)
    // with runner-up y (65) for both guided trajectories; at step 2 alpha 1 and 0.5 find z (90) over x (80).
    assert_eq!(
        proposer.directions,
        [
            ("a <category> photo acc=60", "a photo of a <category> acc=50"),
            ("a <category> photo acc=60", "a photo of a <category> acc=50"),
            ("x <category> acc=80", "y <category> acc=65"),
            ("x <category> acc=80", "y <category> acc=65"),
            ("z <category> acc=90", "x <category> acc=80"),
            ("z <category> acc=90", "x <category> acc=80"),
        ]
        .map(|(p, n)| (p.to_string(), n.to_string()))
    );
    // Alpha 0 never gets an offset, and changes its prompt on its own history.
    assert!(offsets.iter().all(|step| step.last() == Some(&None)));

    // The score cache: a template is scored once, whichever trajectory or step proposes it again.
    let scored: Vec<&String> = judge.train_calls.iter().flatten().collect();
    let mut unique = scored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(scored.len(), unique.len(), "no template scored twice: {scored:?}");
    assert_eq!(judge.train_calls[0], ["a photo of a {} acc=50"], "the baseline first, alone");
    assert_eq!(judge.train_calls[1], ["a {} photo acc=60", "b {} acc=40"]);
    assert_eq!(judge.train_calls[2], ["x {} acc=80", "c {} acc=55", "y {} acc=65", "d {} acc=45", "e {} acc=50"]);

    // history.jsonl: baselines, then per step and alpha the new templates in answer order, with the raw answers.
    let history: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join(HISTORY))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows: Vec<(Option<u64>, f64, &str)> = history
        .iter()
        .map(|h| (h["step"].as_u64(), h["alpha"].as_f64().unwrap(), h["template"].as_str().unwrap()))
        .collect();
    assert_eq!(
        &rows[..3],
        [
            (None, 1.0, "a photo of a {} acc=50"),
            (None, 0.5, "a photo of a {} acc=50"),
            (None, 0.0, "a photo of a {} acc=50")
        ]
    );
    assert_eq!(rows[3], (Some(0), 1.0, "a {} photo acc=60"));
    assert_eq!(history[3]["raw"], "1. \"a {} photo acc=60\"");
    assert_eq!(history[4]["raw"], "Template: b <category> acc=40");
    let alpha0_step1: Vec<&str> = rows.iter().filter(|r| r.0 == Some(1) && r.1 == 0.0).map(|r| r.2).collect();
    assert_eq!(alpha0_step1, ["c {} acc=55", "d {} acc=45", "e {} acc=50"], "a's repeat is not added again");

    // steps.jsonl: counts, guidance, the step's own top three ensembled on the validation split.
    let steps: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join(STEPS))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps.len(), 9);
    let first = &steps[0];
    assert_eq!(
        (first["new_templates"].as_u64(), first["rejected"].as_u64(), first["duplicates"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(first["guidance"], false);
    assert_eq!(first["ensemble"], serde_json::json!(["a {} photo acc=60", "b {} acc=40"]));
    assert_eq!(first["ensemble_val_accuracy"], 50.0);
    let alpha_half_step1 = &steps[4];
    assert_eq!(alpha_half_step1["alpha"], 0.5);
    assert_eq!(alpha_half_step1["guidance"], true);
    let norm = (0.25 * (d[0] * d[0] + d[1] * d[1]) as f64).sqrt();
    assert!((alpha_half_step1["offset_norm"].as_f64().unwrap() - norm).abs() < 1e-9);
    assert_eq!(alpha_half_step1["ensemble"], serde_json::json!(["x {} acc=80", "y {} acc=65", "c {} acc=55"]));
    assert_eq!(alpha_half_step1["best_template"], "x {} acc=80");
    let alpha0_step2 = &steps[8];
    assert_eq!((alpha0_step2["new_templates"].as_u64(), alpha0_step2["rejected"].as_u64()), (Some(3), Some(1)));
    assert!(alpha0_step2["offset_norm"].is_null());

    // The result: alpha 1 and 0.5 tie on train accuracy (90) and on validation; the earlier in the list wins.
    // Each trajectory's chosen step is its best step ensemble on validation; the test split is evaluated once.
    assert_eq!(results.chosen_alpha, 1.0);
    let t1 = &results.trajectories[0];
    assert_eq!((t1.chosen_step, t1.best_train_accuracy), (Some(2), 90.0));
    // x was already in the history (step 1), so step 2's own templates are z, w, v.
    assert_eq!(t1.ensemble, ["z {} acc=90", "v {} acc=75", "w {} acc=70"]);
    assert_eq!(results.final_ensemble, t1.ensemble);
    assert!((results.test_accuracy - (235.0 / 3.0 - 1.0)).abs() < 1e-9);
    let t0 = &results.trajectories[2];
    // Steps 0 and 1 tie on validation (50): the earlier step is chosen.
    assert_eq!((t0.chosen_step, t0.best_train_accuracy), (Some(0), 60.0));
    assert_eq!(results.test_accuracy_without_guidance, Some(t0.ensemble_test_accuracy));
    assert_eq!((results.baseline.val_accuracy, results.baseline.test_accuracy), (50.0, 49.0));
    let tests: Vec<&Vec<String>> =
        judge.ensemble_calls.iter().filter(|(s, _)| *s == EvalSplit::Test).map(|(_, t)| t).collect();
    assert_eq!(tests.len(), 4, "baseline, alpha 1 / 0.5 (one shared ensemble), alpha 0, DTD's set: {tests:?}");
    // The dataset's published CLIP template set, as an ensemble on the test split.
    assert_eq!(tests[3].len(), 8);
    let set = results.template_set.as_ref().expect("DTD has a published set");
    assert_eq!((set.name.as_str(), set.templates, set.test_accuracy), ("dtd", 8, 19.0));
    let csv = report::results_csv(&results);
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.lines().nth(1).unwrap().starts_with(",baseline,a photo of a {} acc=50,50,"));
    assert_eq!(report::best_templates(&results), "z {} acc=90\nv {} acc=75\nw {} acc=70\n");
}

#[test]
fn a_resumed_run_writes_what_an_uninterrupted_one_writes() {
    let whole = tempfile::tempdir().unwrap();
    run_all(whole.path(), 3);
    for stop_after in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaPrompt::parse(DEFAULT).unwrap();
        {
            let (mut proposer, mut judge) = (script(), Scores::default());
            let run = RunDir::create(dir.path(), &serde_json::json!({"test": true})).unwrap();
            let mut optimizer = Optimizer::start(loop_config(3), &meta, run, &mut judge).unwrap();
            for _ in 0..stop_after {
                optimizer.step(&mut proposer, &mut judge).unwrap();
            }
        }
        // Half a step's lines, as a kill during the next step's writing leaves them.
        let mut history = std::fs::OpenOptions::new().append(true).open(dir.path().join(HISTORY)).unwrap();
        std::io::Write::write_all(&mut history, b"{\"step\":9,\"alpha\":1.0,\"templ").unwrap();
        drop(history);

        let (mut proposer, mut judge) = (script(), Scores::default());
        let (run, resumed) = RunDir::open::<serde_json::Value>(dir.path()).unwrap();
        let mut optimizer = Optimizer::resume(loop_config(3), &meta, run, resumed, &mut proposer).unwrap();
        assert_eq!(optimizer.completed_steps(), stop_after);
        optimizer.run(&mut proposer, &mut judge, &AtomicBool::new(false), &mut |_| {}).unwrap();
        // The score cache is refilled from the history: nothing scored before the stop is scored again.
        let before: Vec<String> = std::fs::read_to_string(dir.path().join(HISTORY))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|h| h["step"].as_u64().is_none_or(|s| (s as usize) < stop_after))
            .map(|h| h["template"].as_str().unwrap().to_string())
            .collect();
        assert!(!before.is_empty());
        assert!(judge.train_calls.iter().flatten().all(|t| !before.contains(t)), "{:?}", judge.train_calls);
        assert_eq!(
            std::fs::read(dir.path().join(HISTORY)).unwrap(),
            std::fs::read(whole.path().join(HISTORY)).unwrap(),
            "history.jsonl after stopping at step {stop_after}"
        );
        let strip_times = |path: &Path| -> Vec<serde_json::Value> {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["generate_seconds"] = 0.into();
                    v["score_seconds"] = 0.into();
                    v
                })
                .collect()
        };
        assert_eq!(strip_times(&dir.path().join(STEPS)), strip_times(&whole.path().join(STEPS)));
    }
}

#[test]
fn a_stop_request_ends_the_loop_between_steps() {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetaPrompt::parse(DEFAULT).unwrap();
    let (mut proposer, mut judge) = (script(), Scores::default());
    let run = RunDir::create(dir.path(), &serde_json::json!({})).unwrap();
    let mut optimizer = Optimizer::start(loop_config(3), &meta, run, &mut judge).unwrap();
    let stop = AtomicBool::new(false);
    let outcome = optimizer
        .run(&mut proposer, &mut judge, &stop, &mut |o| {
            if o.completed_steps() == 2 {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .unwrap();
    assert_eq!(outcome, Outcome::Interrupted(2));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["completed_steps"], 2);
}

/// The default meta-prompt, rendered for alpha 0 before step 2 of the scripted run, written out by hand.
#[test]
fn the_default_meta_prompt_renders_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetaPrompt::parse(DEFAULT).unwrap();
    let (mut proposer, mut judge) = (script(), Scores::default());
    let run = RunDir::create(dir.path(), &serde_json::json!({})).unwrap();
    let mut optimizer = Optimizer::start(loop_config(3), &meta, run, &mut judge).unwrap();
    let first = optimizer.messages(2, 0).unwrap();
    assert_eq!(
        first.user,
        "Write one new prompt template that raises CLIP's zero-shot classification accuracy on the dataset below. \
Keep the format of the examples, with <category> where the class name goes. Use the description of the dataset, and \
learn from the examples and their accuracies: move away from what the worse templates do and towards what the better \
ones do.

Dataset: DTD
Description: Close-up images of textures.

The template so far and its accuracy:
a photo of a <category> acc=50  (accuracy: 50%)

Answer with the new template only, on one line, without numbering, quotes or explanation."
    );
    optimizer.step(&mut proposer, &mut judge).unwrap();
    optimizer.step(&mut proposer, &mut judge).unwrap();
    // Alpha 0's history: baseline 50, a 60, b 40, c 55, d 45, e 50 (6 entries, k = 3). Of two equal accuracies
    // the earlier template ranks higher: the baseline is among the best, e among the worst.
    let later = optimizer.messages(2, 2).unwrap();
    let examples = "The 3 worst templates so far, from lower to higher accuracy:
b <category> acc=40  (accuracy: 40%)
d <category> acc=45  (accuracy: 45%)
e <category> acc=50  (accuracy: 50%)

The 3 best templates so far, from lower to higher accuracy:
a photo of a <category> acc=50  (accuracy: 50%)
c <category> acc=55  (accuracy: 55%)
a <category> photo acc=60  (accuracy: 60%)

Answer with the new template only";
    assert!(later.user.contains(examples), "{}", later.user);
    assert_eq!(
        later.system.as_deref(),
        Some(
            "You help find prompt templates for zero-shot image classification with CLIP. A template is a short phrase \
or sentence with the placeholder <category> where a class name goes. CLIP fills the template with every class name, \
compares each image with all of these texts, and predicts the class whose text matches the image best."
        )
    );
}
