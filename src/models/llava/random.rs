//! Randomly initialised LLaVA-OneVision models of the published shapes, for benchmarks: the configs of
//! `llava-onevision-qwen2-0.5b-ov-hf` and `-7b-ov-hf` (SigLIP so400m at 384 pixels as LLaVA-OneVision uses it, 26
//! layers, every hidden state of the last kept; grid pinpoints of 1x1 to 6x6 tiles; `anyres_max_9`), and the
//! weights of the image side. The language model is a decoder LLM of the same shape ([`Llm::random`]).
//!
//! [`Llm::random`]: crate::models::llm::Llm::random

use super::config::LlavaConfig;
use crate::checkpoint::{DType, WeightStore};
use crate::models::clip::random::encoder;
use crate::models::llm::LlmConfig;
use crate::models::random::RandomWeights;
use crate::preprocess::anyres::AnyresConfig;
use anyhow::{Result, bail};
use serde_json::json;

/// The shapes `bench vlm` knows.
pub const SHAPES: [&str; 2] = ["llava-ov-0.5b", "llava-ov-7b"];

/// A named shape: the model's config, its image processor and its language model.
#[derive(Debug)]
pub struct Shape {
    pub config: LlavaConfig,
    pub processor: AnyresConfig,
    pub llm: LlmConfig,
}

pub fn shape(name: &str) -> Result<Shape> {
    // (hidden, intermediate, layers, heads, kv heads, vocab, tied embeddings) of the Qwen2 language model.
    let text = match name {
        "llava-ov-0.5b" => (896, 4864, 24, 14, 2, 152000, true),
        "llava-ov-7b" => (3584, 18944, 28, 28, 4, 152128, false),
        other => bail!("unknown LLaVA-OneVision shape {other:?} (known: {})", SHAPES.join(", ")),
    };
    let (tile, patch) = (384, 14);
    let pinpoints: Vec<[usize; 2]> = (1..=6).flat_map(|h| (1..=6).map(move |w| [h * tile, w * tile])).collect();
    let text_config = json!({
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": text.0,
        "intermediate_size": text.1, "num_hidden_layers": text.2, "num_attention_heads": text.3,
        "num_key_value_heads": text.4, "vocab_size": text.5, "tie_word_embeddings": text.6,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
    });
    let config = json!({
        "model_type": "llava_onevision",
        "vision_config": {
            "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
            "num_attention_heads": 16, "num_hidden_layers": 26, "image_size": tile, "patch_size": patch,
            "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6,
        },
        "text_config": text_config,
        "vision_feature_layer": -1, "vision_feature_select_strategy": "full", "projector_hidden_act": "gelu",
        "image_grid_pinpoints": pinpoints, "vision_aspect_ratio": "anyres_max_9", "image_token_index": 151646,
    });
    let processor = json!({
        "size": {"height": tile, "width": tile}, "image_grid_pinpoints": pinpoints, "resample": 3,
        "do_rescale": true, "rescale_factor": 1.0 / 255.0, "do_normalize": true,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": true,
    });
    Ok(Shape {
        config: LlavaConfig::from_json(&config)?,
        processor: AnyresConfig::from_json(&processor)?,
        llm: LlmConfig::from_json(&text_config)?,
    })
}

/// The image side's weights (vision tower, projector, `image_newline`) in the newer layout, drawn from `seed`.
pub fn image_weights(config: &LlavaConfig, dtype: DType, seed: u64) -> WeightStore {
    let mut b = RandomWeights::new(dtype, seed);
    let v = &config.vision;
    let (d, p, h) = (v.tower.hidden_size, v.patch_size, config.text_hidden);
    let tower = "model.vision_tower.vision_model";
    b.add(&format!("{tower}.embeddings.patch_embedding.weight"), &[d, 3, p, p], 0.0, 0.02);
    b.add(&format!("{tower}.embeddings.patch_embedding.bias"), &[d], 0.0, 0.02);
    b.add(&format!("{tower}.embeddings.position_embedding.weight"), &[v.grid() * v.grid(), d], 0.0, 0.01);
    encoder(&mut b, &format!("{tower}.encoder"), &v.tower);
    let projector = "model.multi_modal_projector";
    let feature = d * config.feature_layers.len();
    b.add(&format!("{projector}.linear_1.weight"), &[h, feature], 0.0, 1.0 / (feature as f32).sqrt());
    b.add(&format!("{projector}.linear_1.bias"), &[h], 0.0, 0.02);
    b.add(&format!("{projector}.linear_2.weight"), &[h, h], 0.0, 1.0 / (h as f32).sqrt());
    b.add(&format!("{projector}.linear_2.bias"), &[h], 0.0, 0.02);
    b.add("model.image_newline", &[h], 0.0, 1.0);
    b.into_store()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::models::llava::ImageEncoder;

    #[test]
    fn named_shapes_have_their_published_sizes() {
        let small = shape("llava-ov-0.5b").unwrap();
        assert_eq!(small.config.vision.grid(), 27);
        assert_eq!((small.config.text_hidden, small.llm.hidden_size, small.llm.num_layers), (896, 896, 24));
        assert_eq!((small.config.max_tiles, small.config.pinpoints.len()), (9, 36));
        assert!(small.llm.tie_word_embeddings && small.llm.qkv_bias);
        let large = shape("llava-ov-7b").unwrap();
        assert_eq!((large.llm.hidden_size, large.llm.num_kv_heads, large.llm.vocab_size), (3584, 4, 152128));
        assert!(shape("llava-ov-72b").unwrap_err().to_string().contains("llava-ov-7b"));
    }

    #[test]
    fn random_image_weights_load_and_make_features() {
        let mut s = shape("llava-ov-0.5b").unwrap();
        s.config.vision.tower.num_layers = 1;
        s.config.feature_layers = vec![1];
        let store = image_weights(&s.config, DType::BF16, 3);
        let backend = CpuBackend::new();
        let encoder = ImageEncoder::load(&backend, &store, s.config, s.processor, "random").unwrap();
        let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let features = encoder.features(&backend, &img).unwrap();
        // A 40x30 image: the base tile's 729 tokens, then the 384x384 grid's 27x27 unpadded to 21 rows (padding
        // (27 - round(30 * 27 / 40)) / 2 = 3 rows above and below), each row followed by the newline.
        assert_eq!(features.tiles, 2);
        assert_eq!(features.tokens, 729 + 21 * 28);
        assert!(features.features.iter().all(|v| v.is_finite()));
    }
}
