//! `glov-cuda describe` on the tiny random LLM: CuPL's and DCLIP's files (every class a key, CuPL's sentences cut at
//! their full stop), the same seed giving the same file, the file read back by `score --descriptions`, and bad
//! questions files.

mod common;

use common::{glov_with_cache as glov, stderr};
use serde_json::Value;
use std::path::Path;

fn describe(out: &Path, extra: &[&str], cache: &Path) -> Value {
    let out_str = out.to_str().unwrap();
    let mut args =
        vec!["describe", "--llm", "examples/tiny-llm", "--dataset", "examples/tiny-dataset", "--out", out_str];
    args.extend(extra);
    let run = glov(&args, cache);
    assert!(run.status.success(), "describe {extra:?} failed: {}", stderr(&run));
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

const CLASSES: [&str; 5] = ["blue square", "green triangle", "purple stripes", "red circle", "yellow star"];

#[test]
fn cupl_writes_a_sentence_per_answer_and_score_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cupl.json");
    let d = describe(&file, &["--style", "cupl", "--samples", "2", "--batch", "7"], dir.path());
    let classes: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(classes, CLASSES);
    for (class, sentences) in d.as_object().unwrap() {
        let sentences = sentences.as_array().unwrap();
        assert!(!sentences.is_empty() && sentences.len() <= 10, "{class}: {sentences:?}");
        for s in sentences {
            let s = s.as_str().unwrap();
            assert!(s.ends_with('.') && s.matches('.').count() == 1 && s == s.trim(), "{class}: {s:?}");
        }
    }
    let again =
        describe(&dir.path().join("again.json"), &["--style", "cupl", "--samples", "2", "--batch", "7"], dir.path());
    assert_eq!(again, d, "the same seed and batch give the same file");
    let other =
        describe(&dir.path().join("other.json"), &["--style", "cupl", "--samples", "2", "--seed", "5"], dir.path());
    assert_ne!(other, d);

    let file_str = file.to_str().unwrap();
    let clip = "tests/fixtures/clip-tiny-quickgelu";
    let score = ["score", "--clip", clip, "--dataset", "examples/tiny-dataset", "--descriptions", file_str];
    let out = glov(&[&score[..], &["--format", "json", "--no-cache"]].concat(), dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let total: usize = d.as_object().unwrap().values().map(|s| s.as_array().unwrap().len()).sum();
    assert_eq!(report["descriptions"]["sentences"], total);
}

#[test]
fn dclip_writes_every_class_and_custom_questions_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = describe(&dir.path().join("dclip.json"), &["--style", "dclip", "--max-new-tokens", "12"], dir.path());
    let classes: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(classes, CLASSES);
    for sentences in d.as_object().unwrap().values() {
        for s in sentences.as_array().unwrap() {
            assert!(s.as_str().unwrap().starts_with("A photo of a "), "{s}");
        }
    }

    let questions = dir.path().join("questions.txt");
    std::fs::write(&questions, "What does {} look like?\nno slot here\n").unwrap();
    let q = questions.to_str().unwrap();
    let out_file = dir.path().join("never.json");
    let out = out_file.to_str().unwrap();
    let args = ["describe", "--llm", "examples/tiny-llm", "--dataset", "examples/tiny-dataset", "--out", out];
    let run = glov(&[&args[..], &["--style", "cupl", "--questions", q]].concat(), dir.path());
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("line 2") && stderr(&run).contains("questions.txt"), "{}", stderr(&run));
    std::fs::write(&questions, "Describe {} in a sentence\n").unwrap();
    let run = glov(&[&args[..], &["--style", "dclip", "--questions", q]].concat(), dir.path());
    assert!(stderr(&run).contains("DCLIP asks its one published few-shot question"), "{}", stderr(&run));
    assert!(!out_file.exists(), "a refused run wrote {out}");
    let d = describe(&out_file, &["--style", "cupl", "--questions", q, "--samples", "1"], dir.path());
    assert!(d.as_object().unwrap().values().all(|s| s.as_array().unwrap().len() <= 1));
}
