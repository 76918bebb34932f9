//! Randomly initialised CLIP weights of any shape, for benchmarks.

use super::config::{ClipConfig, TowerConfig};
use crate::checkpoint::{DType, WeightStore};
use crate::models::random::RandomWeights;

pub(crate) fn norm(b: &mut RandomWeights, prefix: &str, dim: usize) {
    b.add(&format!("{prefix}.weight"), &[dim], 1.0, 0.02);
    b.add(&format!("{prefix}.bias"), &[dim], 0.0, 0.02);
}

pub(crate) fn encoder(b: &mut RandomWeights, prefix: &str, c: &TowerConfig) {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    for i in 0..c.num_layers {
        let p = format!("{prefix}.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            b.add(&format!("{p}.self_attn.{proj}.weight"), &[d, d], 0.0, 0.02);
            b.add(&format!("{p}.self_attn.{proj}.bias"), &[d], 0.0, 0.02);
        }
        norm(b, &format!("{p}.layer_norm1"), d);
        norm(b, &format!("{p}.layer_norm2"), d);
        b.add(&format!("{p}.mlp.fc1.weight"), &[f, d], 0.0, 0.02);
        b.add(&format!("{p}.mlp.fc1.bias"), &[f], 0.0, 0.02);
        b.add(&format!("{p}.mlp.fc2.weight"), &[d, f], 0.0, 0.02);
        b.add(&format!("{p}.mlp.fc2.bias"), &[d], 0.0, 0.02);
    }
}

/// A weight store with every tensor a CLIP of this config needs, drawn from `seed`, stored as `dtype`.
pub fn random_weights(config: &ClipConfig, dtype: DType, seed: u64) -> WeightStore {
    let mut b = RandomWeights::new(dtype, seed);
    let (t, v) = (&config.text, &config.vision);
    let (td, vd, p) = (t.tower.hidden_size, v.tower.hidden_size, v.patch_size);
    b.add("text_model.embeddings.token_embedding.weight", &[t.vocab_size, td], 0.0, 0.02);
    b.add("text_model.embeddings.position_embedding.weight", &[t.max_positions, td], 0.0, 0.01);
    encoder(&mut b, "text_model.encoder", &t.tower);
    norm(&mut b, "text_model.final_layer_norm", td);
    b.add("text_projection.weight", &[config.projection_dim, td], 0.0, 0.02);
    b.add("vision_model.embeddings.patch_embedding.weight", &[vd, 3, p, p], 0.0, 0.02);
    b.add("vision_model.embeddings.class_embedding", &[vd], 0.0, 0.02);
    b.add("vision_model.embeddings.position_embedding.weight", &[v.num_patches() + 1, vd], 0.0, 0.01);
    norm(&mut b, "vision_model.pre_layrnorm", vd);
    encoder(&mut b, "vision_model.encoder", &v.tower);
    norm(&mut b, "vision_model.post_layernorm", vd);
    b.add("visual_projection.weight", &[config.projection_dim, vd], 0.0, 0.02);
    b.add("logit_scale", &[], 100f32.ln(), 0.0);
    b.into_store()
}

/// The configuration of OpenAI's ViT-B/32 CLIP (`openai/clip-vit-base-patch32`).
pub fn vit_b32_config() -> ClipConfig {
    let json = serde_json::json!({
        "model_type": "clip",
        "projection_dim": 512,
        "text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8, "num_hidden_layers": 12, "eos_token_id": 2},
        "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12, "patch_size": 32, "image_size": 224}
    });
    ClipConfig::from_json(&json).expect("the built-in ViT-B/32 config is valid")
}

/// The shapes `bench clip --shape` knows: OpenAI's ViT-B/32, ViT-B/16 and ViT-L/14 (224 px).
pub const SHAPES: [&str; 3] = ["vit-b-32", "vit-b-16", "vit-l-14"];

/// The configuration of a named shape (see [`SHAPES`]).
pub fn shape_config(name: &str) -> anyhow::Result<ClipConfig> {
    let (text, vision, projection) = match name {
        "vit-b-32" => ((512, 2048, 8), (768, 3072, 12, 12, 32), 512),
        "vit-b-16" => ((512, 2048, 8), (768, 3072, 12, 12, 16), 512),
        "vit-l-14" => ((768, 3072, 12), (1024, 4096, 16, 24, 14), 768),
        other => anyhow::bail!("unknown CLIP shape {other:?} (known: {})", SHAPES.join(", ")),
    };
    let json = serde_json::json!({
        "model_type": "clip",
        "projection_dim": projection,
        "text_config": {"hidden_size": text.0, "intermediate_size": text.1, "num_attention_heads": text.2, "num_hidden_layers": 12, "eos_token_id": 2},
        "vision_config": {"hidden_size": vision.0, "intermediate_size": vision.1, "num_attention_heads": vision.2, "num_hidden_layers": vision.3, "patch_size": vision.4, "image_size": 224}
    });
    ClipConfig::from_json(&json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::models::clip::Clip;

    #[test]
    fn named_shapes_have_their_published_sizes() {
        assert_eq!(shape_config("vit-b-32").unwrap(), vit_b32_config());
        let l14 = shape_config("vit-l-14").unwrap();
        assert_eq!((l14.vision.num_patches(), l14.vision.tower.num_layers, l14.projection_dim), (256, 24, 768));
        assert_eq!(shape_config("vit-b-16").unwrap().vision.num_patches(), 196);
        assert!(shape_config("vit-h-14").unwrap_err().to_string().contains("vit-l-14"));
    }

    #[test]
    fn random_weights_build_a_model_of_the_config() {
        let mut config = vit_b32_config();
        config.text.tower.num_layers = 1;
        config.vision.tower.num_layers = 1;
        let store = random_weights(&config, DType::BF16, 7);
        let clip = Clip::from_store(&CpuBackend::new(), &store, config).unwrap();
        assert!((clip.logit_scale - 100f32.ln()).abs() < 2e-2, "bf16-rounded ln(100)");
        assert_eq!(store.get("text_projection.weight").unwrap().dtype, DType::BF16);
    }
}
