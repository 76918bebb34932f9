//! CLIP on the CPU backend against HF transformers: features recorded by `scripts/make_clip_fixtures.py` from two
//! tiny random-weight models (quick_gelu with f32 weights and legacy argmax pooling; gelu with sharded bf16
//! weights and first-end-token pooling).

mod common;

use common::{fixtures, max_abs_error, max_row_relative_error, read_tensor};
use glov_cuda::backend::Backend;
use glov_cuda::backend::cpu::CpuBackend;
use glov_cuda::models::clip::ClipModel;
use glov_cuda::preprocess;
use serde_json::Value;
use std::path::PathBuf;

const TOLERANCE: f32 = 1e-4;

struct Golden {
    model: ClipModel<CpuBackend>,
    json: Value,
    tensors: PathBuf,
}

fn golden(name: &str) -> Golden {
    let dir = fixtures().join(name);
    let model = ClipModel::open(&CpuBackend::new(), dir.to_str().unwrap()).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    Golden { model, json, tensors: dir.join("golden.safetensors") }
}

fn texts(g: &Golden) -> Vec<String> {
    g.json["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

fn check_text(name: &str) {
    let g = golden(name);
    let backend = CpuBackend::new();
    let texts = texts(&g);
    let batch = g.model.tokenizer.encode_batch(&texts).unwrap();
    for (i, want) in g.json["input_ids"].as_array().unwrap().iter().enumerate() {
        let want: Vec<u32> = want.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(batch.text_ids(i), want.as_slice(), "{name}: ids of {:?}", texts[i]);
    }
    let got = backend.download(&g.model.clip.encode_text(&backend, &batch).unwrap()).unwrap();
    let (shape, want) = read_tensor(&g.tensors, "text_features");
    let err = max_row_relative_error(&got, &want, shape[1]);
    assert!(err < TOLERANCE, "{name}: text features differ from HF by {err:e}");
    // Each text alone (its own trimmed length) gives the same features as in the padded batch.
    for (i, text) in texts.iter().enumerate() {
        let one = g.model.tokenizer.encode_batch(&[text]).unwrap();
        let alone = backend.download(&g.model.clip.encode_text(&backend, &one).unwrap()).unwrap();
        let err = max_row_relative_error(&alone, &want[i * shape[1]..(i + 1) * shape[1]], shape[1]);
        assert!(err < TOLERANCE, "{name}: text {i} alone differs from HF by {err:e}");
    }
}

fn check_images(name: &str) {
    let g = golden(name);
    let backend = CpuBackend::new();
    let (pshape, pixels) = read_tensor(&g.tensors, "pixel_values");
    let (fshape, want) = read_tensor(&g.tensors, "image_features");
    let per_image = pshape[1] * pshape[2] * pshape[3];
    let batch = backend.upload(&pixels, pshape[0], per_image).unwrap();
    let got = backend.download(&g.model.clip.encode_images(&backend, &batch).unwrap()).unwrap();
    let err = max_row_relative_error(&got, &want, fshape[1]);
    assert!(err < TOLERANCE, "{name}: image features from HF's pixels differ from HF by {err:e}");

    let (_, scale) = read_tensor(&g.tensors, "logit_scale");
    assert_eq!(g.model.clip.logit_scale, scale[0], "{name}: logit scale");

    // Our own decoding and preprocessing of the same files.
    let images: Vec<PathBuf> = g.json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| fixtures().join("images").join(n.as_str().unwrap()))
        .collect();
    let mut ours = Vec::new();
    for (path, result) in images.iter().zip(preprocess::load_images(&images, &g.model.preprocess)) {
        ours.extend(result.unwrap_or_else(|e| panic!("{}: {e:#}", path.display())));
    }
    assert_eq!(ours.len(), pixels.len(), "{name}: preprocessed sizes differ");
    for (i, path) in images.iter().enumerate() {
        let range = i * per_image..(i + 1) * per_image;
        let diff = max_abs_error(&ours[range.clone()], &pixels[range]);
        // PNGs are decoded to the same bytes and resampled exactly as PIL does; the JPEG decoders may differ by a
        // unit or two per channel (a unit is 1 / (255 * std) ~ 0.015 in normalised values).
        let limit = if path.extension().is_some_and(|e| e == "jpg") { 0.1 } else { 1e-5 };
        assert!(diff <= limit, "{name}: preprocessing of {} differs from HF by {diff}", path.display());
    }
    let batch = backend.upload(&ours, pshape[0], per_image).unwrap();
    let got = backend.download(&g.model.clip.encode_images(&backend, &batch).unwrap()).unwrap();
    let err = max_row_relative_error(&got, &want, fshape[1]);
    assert!(err < 2e-2, "{name}: image features from our preprocessing differ from HF by {err:e}");
}

#[test]
fn quick_gelu_f32_text_matches_hf() {
    check_text("clip-tiny-quickgelu");
}

#[test]
fn quick_gelu_f32_images_match_hf() {
    check_images("clip-tiny-quickgelu");
}

#[test]
fn gelu_bf16_sharded_text_matches_hf() {
    check_text("clip-tiny-gelu");
}

#[test]
fn gelu_bf16_sharded_images_match_hf() {
    check_images("clip-tiny-gelu");
}
