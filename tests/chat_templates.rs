//! Chat-template renderings against HF transformers' `apply_chat_template` (fixtures made by
//! `scripts/make_chat_fixtures.py`).

use std::path::{Path, PathBuf};

use glov_cuda::chat::{ChatTemplate, Message};
use serde::Deserialize;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat")
}

#[derive(Deserialize)]
struct Case {
    template_name: String,
    #[serde(default)]
    conversation: String,
    template: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    messages: Vec<Message>,
    add_generation_prompt: bool,
    now_unix: Option<i64>,
    rendered: Option<String>,
    error_contains: Option<String>,
}

/// Points at the first differing character, with some context, to make a mismatch readable.
fn first_difference(want: &str, got: &str) -> String {
    let at = want.chars().zip(got.chars()).take_while(|(a, b)| a == b).count();
    let context = |s: &str| s.chars().skip(at.saturating_sub(20)).take(60).collect::<String>();
    format!("first difference at char {at}:\n  want …{:?}\n  got  …{:?}", context(want), context(got))
}

#[test]
fn renders_match_hf_apply_chat_template() {
    let text = std::fs::read_to_string(fixture_dir().join("cases.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 100, "expected the full fixture set, got {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let label = format!(
            "{} / {} / add_generation_prompt={}",
            case.template_name, case.conversation, case.add_generation_prompt
        );
        let template = match ChatTemplate::new(&case.template, case.bos_token.clone(), case.eos_token.clone()) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{label}: compile error: {e:#}"));
                continue;
            }
        };
        let template = match case.now_unix {
            Some(now) => template.with_fixed_now(now),
            None => template,
        };
        let result = template.render(&case.messages, case.add_generation_prompt);
        match (&case.rendered, &case.error_contains, result) {
            (Some(want), _, Ok(got)) if *want == got => {}
            (Some(want), _, Ok(got)) => failures.push(format!("{label}: {}", first_difference(want, &got))),
            (Some(_), _, Err(e)) => failures.push(format!("{label}: unexpected error: {e:#}")),
            (None, Some(needle), Err(e)) => {
                let msg = format!("{e:#}");
                if !msg.contains(needle.as_str()) {
                    failures.push(format!("{label}: error {msg:?} lacks {needle:?}"));
                }
            }
            (None, Some(needle), Ok(got)) => {
                failures.push(format!("{label}: expected an error containing {needle:?}, rendered {got:?}"))
            }
            (None, None, _) => failures.push(format!("{label}: fixture has neither rendered nor error_contains")),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[derive(Deserialize)]
struct SavedCase {
    messages: Vec<Message>,
    add_generation_prompt: bool,
    rendered: String,
}

#[test]
fn saved_tokenizer_directory_renders_like_hf() {
    let dir = fixture_dir().join("saved_model");
    let template = ChatTemplate::from_model_dir(&dir).unwrap().expect("saved_model has a chat template");
    assert!(template.name().ends_with("chat_template.jinja"), "{}", template.name());
    assert_eq!(template.bos_token(), Some("<|begin_of_text|>"));
    assert_eq!(template.eos_token(), Some("<|eot_id|>"));
    let text = std::fs::read_to_string(fixture_dir().join("saved_model_expected.json")).unwrap();
    let cases: Vec<SavedCase> = serde_json::from_str(&text).unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let got = template.render(&case.messages, case.add_generation_prompt).unwrap();
        assert_eq!(got, case.rendered, "{}", first_difference(&case.rendered, &got));
    }
}
