//! Randomly initialised decoder LLMs of named real shapes, for benchmarks and memory estimates.

use super::config::LlmConfig;
use crate::checkpoint::{DType, WeightStore};
use crate::models::random::RandomWeights;
use anyhow::{Result, bail};

/// The config of a named shape: `llama3-8b`, `llama3-1b` (Llama 3.2 1B), `qwen2-7b`, `gemma3-270m`, or
/// `small-100m` (a Llama-shaped model of about 100M parameters for CPU benchmarks).
pub fn shape_config(name: &str) -> Result<LlmConfig> {
    let llama3 = |hidden, intermediate, layers, heads, kv_heads, tie| {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": hidden, "intermediate_size": intermediate,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
            "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192},
            "tie_word_embeddings": tie,
        })
    };
    let json = match name {
        "llama3-8b" => llama3(4096, 14336, 32, 32, 8, false),
        "llama3-1b" => llama3(2048, 8192, 16, 32, 8, true),
        "qwen2-7b" => serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
            "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": false,
        }),
        "gemma3-270m" => serde_json::json!({
            "architectures": ["Gemma3ForCausalLM"], "hidden_size": 640, "intermediate_size": 2048,
            "num_hidden_layers": 18, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
            "vocab_size": 262144, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0, "sliding_window": 512, "sliding_window_pattern": 6,
            "query_pre_attn_scalar": 256, "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": true,
        }),
        "small-100m" => serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12,
            "num_attention_heads": 12, "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": true,
        }),
        other => {
            bail!("unknown model shape {other:?} (known: llama3-8b, llama3-1b, qwen2-7b, gemma3-270m, small-100m)")
        }
    };
    LlmConfig::from_json(&json)
}

/// Every tensor a model of this config needs, drawn from `seed`, stored as `dtype`.
pub fn random_weights(config: &LlmConfig, dtype: DType, seed: u64) -> WeightStore {
    let mut b = RandomWeights::new(dtype, seed);
    let (d, f, v) = (config.hidden_size, config.intermediate_size, config.vocab_size);
    let (q, kv) = (config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim);
    let mut add = |name: String, shape: &[usize]| {
        let (mean, std) = initialisation(config, &name, shape.iter().skip(1).product());
        b.add(&name, shape, mean, std);
    };
    add("model.embed_tokens.weight".into(), &[v, d]);
    for i in 0..config.num_layers {
        let p = format!("model.layers.{i}");
        add(format!("{p}.input_layernorm.weight"), &[d]);
        add(format!("{p}.post_attention_layernorm.weight"), &[d]);
        if config.gemma3.is_some() {
            add(format!("{p}.pre_feedforward_layernorm.weight"), &[d]);
            add(format!("{p}.post_feedforward_layernorm.weight"), &[d]);
            add(format!("{p}.self_attn.q_norm.weight"), &[config.head_dim]);
            add(format!("{p}.self_attn.k_norm.weight"), &[config.head_dim]);
        }
        for (name, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            add(format!("{p}.self_attn.{name}.weight"), &[rows, d]);
            if config.qkv_bias {
                add(format!("{p}.self_attn.{name}.bias"), &[rows]);
            }
        }
        add(format!("{p}.self_attn.o_proj.weight"), &[d, q]);
        add(format!("{p}.mlp.gate_proj.weight"), &[f, d]);
        add(format!("{p}.mlp.up_proj.weight"), &[f, d]);
        add(format!("{p}.mlp.down_proj.weight"), &[d, f]);
    }
    add("model.norm.weight".into(), &[d]);
    if !config.tie_word_embeddings {
        add("lm_head.weight".into(), &[v, d]);
    }
    b.into_store()
}

/// The (mean, std) that [`random_weights`] gives the parameter `name` whose rows have `cols` values: norm gains
/// centre on 1 (Gemma's stored weights on 0, its gains being `1 + weight`), embeddings and biases have std 0.02,
/// projections `1 / sqrt(fan in)`.
pub fn initialisation(config: &LlmConfig, name: &str, cols: usize) -> (f32, f32) {
    if name.ends_with("norm.weight") {
        (if config.gemma3.is_some() { 0.0 } else { 1.0 }, 0.02)
    } else if name.ends_with(".bias") || name == "model.embed_tokens.weight" {
        (0.0, 0.02)
    } else {
        (0.0, 1.0 / (cols as f32).sqrt())
    }
}

/// Parameters of a config (embeddings counted once when tied).
pub fn parameter_count(config: &LlmConfig) -> usize {
    let (d, f, v) = (config.hidden_size, config.intermediate_size, config.vocab_size);
    let (q, kv) = (config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim);
    let bias = if config.qkv_bias { q + 2 * kv } else { 0 };
    let gemma3_norms = if config.gemma3.is_some() { 2 * d + 2 * config.head_dim } else { 0 };
    let block = 2 * d + gemma3_norms + (q + 2 * kv) * d + bias + d * q + 3 * f * d;
    let head = if config.tie_word_embeddings { 0 } else { v * d };
    v * d + config.num_layers * block + d + head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::models::llm::Llm;

    #[test]
    fn named_shapes_have_their_published_sizes() {
        // Llama 3 8B has 8.03 billion parameters, Llama 3.2 1B 1.24 billion, Qwen2 7B 7.62 billion.
        for (name, billions) in [("llama3-8b", 8.03), ("llama3-1b", 1.24), ("qwen2-7b", 7.62)] {
            let count = parameter_count(&shape_config(name).unwrap()) as f64 / 1e9;
            assert!((count - billions).abs() < 0.01, "{name}: {count} billion parameters");
        }
        // Gemma 3 270M: 268 million parameters, 168 million of them the embedding; its GGUF file holds 236 tensors.
        let gemma = shape_config("gemma3-270m").unwrap();
        assert!((parameter_count(&gemma) as f64 / 1e6 - 268.0).abs() < 0.5);
        assert_eq!(random_weights(&LlmConfig { vocab_size: 8, ..gemma }, DType::BF16, 1).tensors().len(), 236);
        assert!(shape_config("gpt5").is_err());
    }

    #[test]
    fn random_weights_load_into_a_model() {
        let mut config = shape_config("small-100m").unwrap();
        config.num_layers = 1;
        config.vocab_size = 64;
        let store = random_weights(&config, DType::BF16, 3);
        let params: usize = store.tensors().iter().map(|t| t.numel()).sum();
        assert_eq!(params, parameter_count(&config));
        Llm::from_store(&CpuBackend::new(), &store, config).unwrap();
        let mut gemma = shape_config("gemma3-270m").unwrap();
        gemma.num_layers = 2;
        gemma.gemma3.as_mut().unwrap().sliding_layers.truncate(2);
        gemma.vocab_size = 64;
        let store = random_weights(&gemma, DType::BF16, 3);
        let params: usize = store.tensors().iter().map(|t| t.numel()).sum();
        assert_eq!(params, parameter_count(&gemma));
        Llm::from_store(&CpuBackend::new(), &store, gemma).unwrap();
    }
}
