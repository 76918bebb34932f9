//! A randomly initialised MPNet of `all-mpnet-base-v2`'s shape (the matcher of GLOV's encoder-decoder path), for
//! benchmarks: mean pooling and normalisation as that model's modules have them.

use super::SentenceEncoder;
use super::config::{EncoderConfig, Pooling};
use crate::backend::Backend;
use crate::checkpoint::DType;
use crate::models::clip::random::norm;
use crate::models::random::RandomWeights;
use anyhow::Result;
use std::path::Path;

/// `all-mpnet-base-v2`'s transformer config.
pub fn mpnet_base_config() -> EncoderConfig {
    let json = serde_json::json!({
        "model_type": "mpnet", "vocab_size": 30527, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514,
        "relative_attention_num_buckets": 32, "pad_token_id": 1, "hidden_act": "gelu", "layer_norm_eps": 1e-5,
    });
    EncoderConfig::from_json(&json, Path::new("the built-in all-mpnet-base-v2 config"))
        .expect("the built-in MPNet config is valid")
}

/// An MPNet sentence encoder of `config` (its family must be MPNet) with weights drawn from `seed`, stored as bf16.
pub fn random_mpnet<B: Backend>(backend: &B, config: EncoderConfig, seed: u64) -> Result<SentenceEncoder<B>> {
    let mut b = RandomWeights::new(DType::BF16, seed);
    let (d, f) = (config.hidden_size, config.intermediate_size);
    b.add("embeddings.word_embeddings.weight", &[config.vocab_size, d], 0.0, 0.02);
    b.add("embeddings.position_embeddings.weight", &[config.max_positions, d], 0.0, 0.02);
    norm(&mut b, "embeddings.LayerNorm", d);
    b.add("encoder.relative_attention_bias.weight", &[config.relative_buckets, config.num_heads], 0.0, 0.02);
    for i in 0..config.num_layers {
        let p = format!("encoder.layer.{i}");
        for part in ["q", "k", "v", "o"] {
            b.add(&format!("{p}.attention.attn.{part}.weight"), &[d, d], 0.0, 0.02);
            b.add(&format!("{p}.attention.attn.{part}.bias"), &[d], 0.0, 0.02);
        }
        norm(&mut b, &format!("{p}.attention.LayerNorm"), d);
        b.add(&format!("{p}.intermediate.dense.weight"), &[f, d], 0.0, 0.02);
        b.add(&format!("{p}.intermediate.dense.bias"), &[f], 0.0, 0.02);
        b.add(&format!("{p}.output.dense.weight"), &[d, f], 0.0, 0.02);
        b.add(&format!("{p}.output.dense.bias"), &[d], 0.0, 0.02);
        norm(&mut b, &format!("{p}.output.LayerNorm"), d);
    }
    SentenceEncoder::load(backend, &b.into_store(), config, Pooling::Mean, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;

    #[test]
    fn a_random_mpnet_embeds_to_unit_vectors() {
        let mut config = mpnet_base_config();
        config.num_layers = 1;
        let encoder = random_mpnet(&CpuBackend::new(), config, 5).unwrap();
        let out = encoder.embed_ids(&CpuBackend::new(), &[vec![0, 7, 2], vec![0, 9, 11, 2]]).unwrap();
        for row in &out {
            assert_eq!(row.len(), 768);
            let length = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((length - 1.0).abs() < 1e-4, "{length}");
        }
        assert_ne!(out[0], out[1]);
    }
}
