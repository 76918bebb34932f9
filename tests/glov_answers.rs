//! The answer parser against a hand-written corpus of LLM answers (`tests/fixtures/glov/answers.json`), each with the
//! template or rejection its rules call for.

use std::path::Path;

use glov_cuda::glov::answer::{Rejection, parse_answer, to_llm_form};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    answer: String,
    template: Option<String>,
    rejected: Option<String>,
}

fn corpus() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glov/answers.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The corpus spelling of a rejection, the same as its serde form.
fn rejection_name(rejection: Rejection) -> String {
    serde_json::to_value(rejection).unwrap().as_str().unwrap().to_string()
}

#[test]
fn corpus_answers_parse_as_expected() {
    let cases = corpus();
    assert!(cases.len() >= 40, "expected the full corpus, got {} cases", cases.len());
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let want = match (&case.template, &case.rejected) {
            (Some(template), None) => Ok(template.clone()),
            (None, Some(rejected)) => Err(rejected.clone()),
            _ => panic!("case {i} must have exactly one of `template` and `rejected`"),
        };
        let got = parse_answer(&case.answer).map_err(rejection_name);
        if got != want {
            failures.push(format!("case {i}: answer {:?}\n  want {want:?}\n  got  {got:?}", case.answer));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn accepted_templates_are_trimmed_and_hold_the_slot() {
    for case in corpus() {
        if let Ok(template) = parse_answer(&case.answer) {
            assert!(template.contains("{}"), "{template:?} from {:?}", case.answer);
            assert_eq!(template, template.trim(), "untrimmed template from {:?}", case.answer);
        }
    }
}

#[test]
fn llm_form_round_trips() {
    assert_eq!(to_llm_form("a photo of a {}."), "a photo of a <category>.");
    assert_eq!(to_llm_form("a {} or a {}"), "a <category> or a <category>");
    assert_eq!(to_llm_form("no slot"), "no slot");
    for template in ["a photo of a {}.", "{} in the wild.", "itap of a {}: a type of pet"] {
        assert_eq!(parse_answer(&to_llm_form(template)).as_deref(), Ok(template));
    }
}

#[test]
fn rejections_read_as_words() {
    assert_eq!(Rejection::Empty.to_string(), "empty answer");
    assert_eq!(Rejection::NoSlot.to_string(), "no class slot");
    assert_eq!(rejection_name(Rejection::TooLong), "too_long");
}
