//! Tokenisation against the Python `tokenizers` library reading the same tokenizer.json (truncation at 77), for
//! the real OpenAI CLIP BPE vocabulary and for the tiny vocabulary of the fixture models, on hard strings.

mod common;

use common::fixtures;
use glov_cuda::tokenizer::ClipTokenizer;
use serde_json::Value;
use std::io::Read;

fn cases() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("tokenizer").join("cases.json")).unwrap()).unwrap()
}

fn check(tokenizer: &ClipTokenizer, key: &str) {
    let cases = cases();
    let strings = cases["strings"].as_array().unwrap();
    let expected = cases[key].as_array().unwrap();
    assert!(strings.len() >= 25);
    assert_eq!(strings.len(), expected.len(), "{key}: strings against their ids");
    for (text, want) in strings.iter().zip(expected) {
        let text = text.as_str().unwrap();
        let want: Vec<u32> = want.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(tokenizer.encode(text).unwrap(), want, "{key}: ids of {text:?}");
    }
}

#[test]
fn openai_vocabulary_matches_reference_ids() {
    let mut json = Vec::new();
    let file = std::fs::File::open(fixtures().join("tokenizer").join("openai-clip-tokenizer.json.gz")).unwrap();
    flate2::read::GzDecoder::new(file).read_to_end(&mut json).unwrap();
    let tokenizer = ClipTokenizer::from_bytes(&json, Some(2), 77).unwrap();
    assert_eq!(tokenizer.encode("a photo of a cat.").unwrap(), vec![49406, 320, 1125, 539, 320, 2368, 269, 49407]);
    check(&tokenizer, "openai");
}

#[test]
fn tiny_vocabulary_matches_reference_ids() {
    let path = fixtures().join("clip-tiny-quickgelu").join("tokenizer.json");
    let tokenizer = ClipTokenizer::from_file(&path, Some(2), 77).unwrap();
    check(&tokenizer, "tiny");
}

#[test]
fn over_long_text_keeps_the_end_token_and_pools_it() {
    let path = fixtures().join("clip-tiny-gelu").join("tokenizer.json");
    let tokenizer = ClipTokenizer::from_file(&path, Some(1113), 77).unwrap();
    let text = "word ".repeat(200);
    let batch = tokenizer.encode_batch(&[text.as_str(), "a cat"]).unwrap();
    assert_eq!(batch.seq, 77);
    assert_eq!(batch.text_ids(0).last(), Some(&1113));
    assert_eq!(batch.pooled, vec![76, batch.lengths[1] - 1]);
}

#[test]
fn a_file_that_is_not_a_clip_tokenizer_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{\"not\": \"a tokenizer\"}").unwrap();
    let err = format!("{:#}", ClipTokenizer::from_file(&path, None, 77).err().unwrap());
    assert!(err.contains("tokenizer.json"), "{err}");
}
