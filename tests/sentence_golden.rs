//! Sentence embeddings on the CPU backend against sentence-transformers: token ids and `encode`'s embeddings
//! recorded by `scripts/make_sentence_fixtures.py` from three tiny random-weight models (MPNet with mean pooling and
//! Normalize in sentence-transformers 2's layout; BERT with CLS pooling and lower-casing, and with max pooling, in
//! 6's), and MPNet's relative position buckets from HF's own function.

mod common;

use common::{fixtures, max_row_relative_error};
use glov_cuda::backend::cpu::CpuBackend;
use glov_cuda::models::sentence::SentenceModel;
use glov_cuda::models::sentence::encoder::relative_bucket;
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;

fn expected() -> Value {
    let path = fixtures().join("sentence").join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check(name: &str) {
    let expected = &expected()[name];
    let backend = CpuBackend::new();
    let dir = fixtures().join("sentence").join(name);
    let model = SentenceModel::open(&backend, dir.to_str().unwrap()).unwrap();
    let texts: Vec<String> = serde_json::from_value(expected["texts"].clone()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(expected["ids"].clone()).unwrap();
    for (text, want) in texts.iter().zip(&ids) {
        assert_eq!(&model.tokenizer.encode(text).unwrap(), want, "{name}: ids of {text:?}");
    }
    assert!(ids.iter().any(|i| i.len() == expected["max_seq_length"].as_u64().unwrap() as usize), "truncation");
    let want: Vec<Vec<f32>> = serde_json::from_value(expected["embeddings"].clone()).unwrap();
    let got = model.embed(&backend, &texts).unwrap();
    let dim = model.dim();
    let err = max_row_relative_error(&got.concat(), &want.concat(), dim);
    assert!(err < TOLERANCE, "{name}: embeddings differ from sentence-transformers by {err:e}");
    // Each text alone gives what it gives among the others (to the last bits a product's blocking moves).
    for (i, text) in texts.iter().enumerate() {
        let alone = model.embed(&backend, std::slice::from_ref(text)).unwrap();
        let err = max_row_relative_error(&alone[0], &got[i], dim);
        assert!(err < 1e-6, "{name}: text {i} alone differs by {err:e}");
    }
}

#[test]
fn mpnet_with_mean_pooling_and_normalize_embeds_as_sentence_transformers() {
    check("mpnet-mean");
}

#[test]
fn bert_with_cls_pooling_embeds_as_sentence_transformers() {
    check("bert-cls");
}

#[test]
fn bert_with_max_pooling_embeds_as_sentence_transformers() {
    check("bert-max");
}

#[test]
fn mpnet_relative_buckets_are_hf_s() {
    let buckets = &expected()["mpnet_buckets"];
    let distances: Vec<i64> = serde_json::from_value(buckets["distances"].clone()).unwrap();
    let want: Vec<usize> = serde_json::from_value(buckets["buckets"].clone()).unwrap();
    let got: Vec<usize> = distances.iter().map(|&d| relative_bucket(d)).collect();
    assert_eq!(got, want);
}
