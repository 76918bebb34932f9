//! LLaVA-OneVision on the CPU backend against HF transformers (`scripts/make_llava_fixtures.py`), in both weight
//! layouts: the image processor's tiles for images of odd sizes and aspect ratios (bit for bit), the packed
//! features that replace the image tokens (SigLIP, the projector, anyres packing with unpadding, the `anyres_max`
//! downscale and `image_newline`), and for three images a question's prompt ids, last-position logits and greedy
//! answer.

mod common;

use common::{fixtures, max_row_relative_error, read_tensor};
use glov_cuda::backend::cpu::CpuBackend;
use glov_cuda::models::llava::LlavaModel;
use glov_cuda::preprocess::decode_rgb8;
use serde_json::Value;

fn golden() -> Value {
    let path = fixtures().join("llava-tiny").join("golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check(model_dir: &str) {
    let backend = CpuBackend::new();
    let model = LlavaModel::open(&backend, fixtures().join(model_dir).to_str().unwrap()).unwrap();
    let dir = fixtures().join("llava-tiny");
    let tensors = dir.join("golden.safetensors");
    let (mut downscaled, mut answered) = (0, 0);
    for (i, image) in golden()["images"].as_array().unwrap().iter().enumerate() {
        let img = decode_rgb8(&dir.join(image["file"].as_str().unwrap())).unwrap();
        let tiles = model.image.tiles(&img).unwrap();
        let best: Vec<u32> = serde_json::from_value(image["best_resolution"].clone()).unwrap();
        assert_eq!((tiles.best.0, tiles.best.1), (best[0], best[1]), "image {i}: best resolution");
        let (_, pixels) = read_tensor(&tensors, &format!("pixel_values_{i}"));
        assert_eq!(tiles.tiles as u64, image["tiles"].as_u64().unwrap(), "image {i}: tiles");
        assert_eq!(tiles.pixels, pixels, "image {i}: pixel values");
        let got = model.image.features(&backend, &img).unwrap();
        assert_eq!(got.tiles, tiles.tiles);
        let (shape, want) = read_tensor(&tensors, &format!("features_{i}"));
        assert_eq!(got.tokens, shape[0], "image {i}: image tokens");
        let err = max_row_relative_error(&got.features, &want, shape[1]);
        assert!(err < 1e-4, "image {i}: packed features differ from HF by {err:e}");
        if let Some(question) = image["question"].as_str() {
            let (answer, _) = model.answer(&backend, &img, question, 12).unwrap();
            let ids: Vec<u32> = serde_json::from_value(image["input_ids"].clone()).unwrap();
            assert_eq!(answer.input_ids, ids, "image {i}: prompt ids");
            assert_eq!(answer.image_tokens, shape[0]);
            let (_, logits) = read_tensor(&tensors, &format!("last_logits_{i}"));
            let err = max_row_relative_error(&answer.last_logits, &logits, logits.len());
            assert!(err < 1e-4, "image {i}: last logits differ from HF by {err:e}");
            // Token for token up to the first step whose two best logits are within reach of rounding.
            let want: Vec<u32> = serde_json::from_value(image["answer_ids"].clone()).unwrap();
            let margins: Vec<f64> = serde_json::from_value(image["margins"].clone()).unwrap();
            let sure = margins.iter().position(|&m| m < 1e-3).unwrap_or(want.len());
            assert!(sure >= 4, "image {i}: the fixture's answer has a near tie at step {sure}");
            assert_eq!(answer.answer_ids[..sure], want[..sure], "image {i}: greedy answer");
            answered += 1;
        }
        let grid_tokens = (got.tiles - 1) * 16;
        downscaled += usize::from(got.tiles > 2 && got.tokens < 16 + grid_tokens / 2);
    }
    assert!(downscaled > 0, "no image was downscaled by anyres_max: the fixture does not test it");
    assert_eq!(answered, 3);
}

#[test]
fn image_features_match_hf_in_the_newer_layout() {
    check("llava-tiny");
}

#[test]
fn image_features_match_hf_in_the_hub_layout() {
    check("llava-tiny-hub");
}
