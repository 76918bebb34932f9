//! `score --descriptions` (CuPL's class embedding and DCLIP's mean score) and `score --template-set` against
//! accuracies computed by HF transformers (`scripts/make_descriptions_fixture.py`); `score --waffle`'s runs; bad
//! description files.

mod common;

use common::{fixtures, glov_with_cache as glov, stderr};
use serde_json::Value;
use std::path::Path;

fn scoring(name: &str) -> String {
    fixtures().join("scoring").join(name).display().to_string()
}

fn score_json(extra: &[&str], cache: &Path) -> Value {
    let model = fixtures().join("clip-tiny-quickgelu").display().to_string();
    let dataset = scoring("dataset");
    let mut args = vec!["score", "--clip", &model, "--dataset", &dataset, "--format", "json"];
    args.extend(extra);
    let out = glov(&args, cache);
    assert!(out.status.success(), "score {extra:?} failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(scoring("expected_descriptions.json")).unwrap()).unwrap()
}

fn assert_close(got: &Value, want: &Value, what: &str) {
    for key in ["top1", "top5", "mean_per_class"] {
        let (g, w) = (got[key].as_f64().unwrap(), want[key].as_f64().unwrap());
        assert!((g - w).abs() < 1e-4, "{what} {key}: {g} vs HF {w}");
    }
}

#[test]
fn descriptions_score_as_hf_computes_both_aggregations() {
    let cache = tempfile::tempdir().unwrap();
    let file = scoring("descriptions.json");
    let expected = expected();
    for aggregate in ["embedding", "score"] {
        let report = score_json(&["--descriptions", &file, "--aggregate", aggregate], cache.path());
        let descriptions = &report["descriptions"];
        assert_eq!(descriptions["aggregate"], aggregate);
        assert_eq!(descriptions["sentences"], 17);
        assert_eq!(report["templates"].as_array().unwrap().len(), 0);
        assert_close(&descriptions["accuracy"], &expected[aggregate], aggregate);
    }
    // The fixture's two aggregations differ, so a swap would fail above.
    assert_ne!(expected["embedding"]["top1"], expected["score"]["top1"]);
}

#[test]
fn a_template_set_scores_each_template_and_the_ensemble_as_hf() {
    let cache = tempfile::tempdir().unwrap();
    let report = score_json(&["--template-set", "ImageNet-7"], cache.path());
    let want = &expected()["imagenet-7"];
    let rows = report["templates"].as_array().unwrap();
    let want_rows = want["templates"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    for (got, want) in rows.iter().zip(want_rows) {
        assert_eq!(got["template"], want["template"]);
        assert_close(got, want, want["template"].as_str().unwrap());
    }
    assert_close(&report["ensemble"], &want["ensemble"], "ensemble");
    assert_eq!(report["template_set"]["name"], "imagenet-7");
    assert!(report["template_set"]["source"].as_str().unwrap().starts_with("openai/CLIP"), "{report}");
}

#[test]
fn waffle_reports_each_run_with_their_mean_and_spread() {
    let cache = tempfile::tempdir().unwrap();
    let report = score_json(&["--waffle", "3", "--waffle-runs", "4"], cache.path());
    let waffle = &report["waffle"];
    let runs = waffle["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    let top1: Vec<f64> = runs.iter().map(|r| r["top1"].as_f64().unwrap()).collect();
    let mean = top1.iter().sum::<f64>() / 4.0;
    let std = (top1.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
    assert!((waffle["mean"]["top1"].as_f64().unwrap() - mean).abs() < 1e-9, "{waffle}");
    assert!((waffle["std"]["top1"].as_f64().unwrap() - std).abs() < 1e-9, "{waffle}");
    let descriptors = waffle["first_run_descriptors"].as_array().unwrap();
    assert_eq!(descriptors.len(), 6);
    // The same seeds give the same runs.
    let again = score_json(&["--waffle", "3", "--waffle-runs", "4"], cache.path());
    assert_eq!(again["waffle"], report["waffle"]);
}

#[test]
fn description_files_that_do_not_fit_the_dataset_are_refused_naming_the_classes() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = fixtures().join("clip-tiny-quickgelu").display().to_string();
    let dataset = scoring("dataset");
    let run = |json: &str| {
        let file = dir.path().join("d.json");
        std::fs::write(&file, json).unwrap();
        let file = file.display().to_string();
        let out = glov(&["score", "--clip", &model, "--dataset", &dataset, "--descriptions", &file], cache.path());
        assert_eq!(out.status.code(), Some(1), "{json}");
        stderr(&out)
    };
    let mut full: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(scoring("descriptions.json")).unwrap()).unwrap();
    full.remove("oak tree");
    full.insert("red house".into(), Value::Array(Vec::new()));
    let err = run(&serde_json::to_string(&full).unwrap());
    assert!(err.contains("1 missing: \"oak tree\"") && err.contains("1 with no sentence: \"red house\""), "{err}");
    assert!(err.contains("d.json"), "{err}");
    let err = run("{\"oak tree\": [1, 2]}");
    assert!(err.contains("d.json") && err.contains("line 1"), "{err}");
    let out = glov(&["score", "--clip", &model, "--dataset", &dataset, "--template-set", "imagenet-81"], cache.path());
    assert!(stderr(&out).contains("no template set is named \"imagenet-81\""), "{}", stderr(&out));
}
