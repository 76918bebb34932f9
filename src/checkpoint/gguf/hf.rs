//! A GGUF file seen as an HF model directory: the config transformers builds from its metadata (the keys of a
//! `config.json`) and its tensors under HF names, with llama.cpp's conversions undone as transformers undoes them:
//! the Q and K rows of Llama files are un-permuted (llama.cpp interleaves each head's rotary halves), and Gemma 3's
//! norm weights lose the 1 llama.cpp added to them.

use super::{GgufFile, Metadata, TensorInfo};
use crate::checkpoint::tensor::StoredTensor;
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

/// The architectures (`general.architecture`) read, and their HF classes.
pub const SUPPORTED: [(&str, &str); 3] =
    [("llama", "LlamaForCausalLM"), ("qwen2", "Qwen2ForCausalLM"), ("gemma3", "Gemma3ForCausalLM")];

/// Gemma 3's defaults for what its GGUF files do not state (those of transformers' `Gemma3TextConfig`, which
/// transformers uses for these files): every sixth layer global, local rope base, query scale, activation.
const GEMMA3_SLIDING_WINDOW_PATTERN: usize = 6;
const GEMMA3_ROPE_LOCAL_BASE: f64 = 10_000.0;
const GEMMA3_QUERY_PRE_ATTN_SCALAR: f64 = 256.0;

/// The config and HF-named tensors of a file. Tensors of types we do not read are returned apart, with the reason.
pub struct HfCheckpoint {
    pub config: Value,
    pub tensors: Vec<StoredTensor>,
    pub unsupported: Vec<(String, String)>,
}

pub fn architecture(file: &GgufFile) -> Result<&str> {
    let arch = file.metadata.str("general.architecture")?;
    if !SUPPORTED.iter().any(|(a, _)| *a == arch) {
        let names: Vec<&str> = SUPPORTED.iter().map(|(a, _)| *a).collect();
        bail!("{}: architecture {arch:?} is not supported (supported: {})", file.path.display(), names.join(", "));
    }
    Ok(arch)
}

pub fn load(file: &GgufFile) -> Result<HfCheckpoint> {
    let _span = tracing::info_span!("gguf_to_hf").entered();
    let arch = architecture(file)?;
    let config = config(file, arch)?;
    let heads = config["num_attention_heads"].as_u64().unwrap_or(0) as usize;
    let kv_heads = config["num_key_value_heads"].as_u64().unwrap_or(0) as usize;
    let mut tensors = Vec::with_capacity(file.tensors.len());
    let mut unsupported = Vec::new();
    for info in &file.tensors {
        let Some(name) = hf_name(arch, &info.name) else {
            tracing::debug!(tensor = %info.name, "not used by the HF model; skipped");
            continue;
        };
        let stored = match file.stored(info, &name) {
            Ok(stored) => stored,
            Err(e) => {
                unsupported.push((name, format!("{e:#}")));
                continue;
            }
        };
        let stored = match arch {
            "llama" if info.name.ends_with(".attn_q.weight") => unpermute_rows(file, info, stored, heads)?,
            "llama" if info.name.ends_with(".attn_k.weight") => unpermute_rows(file, info, stored, kv_heads)?,
            "gemma3" if info.name.ends_with("norm.weight") => {
                let values: Vec<f32> = stored.to_f32().iter().map(|w| w - 1.0).collect();
                StoredTensor::from_f32(&name, &stored.shape, &values)
            }
            _ => stored,
        };
        tensors.push(stored);
    }
    Ok(HfCheckpoint { config, tensors, unsupported })
}

/// The HF name of a GGUF tensor; `None` for tensors the HF model has no parameter for.
fn hf_name(arch: &str, name: &str) -> Option<String> {
    let global = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        // Llama 3.1's rope scaling as per-frequency factors; transformers ignores it too.
        "rope_freqs.weight" => return None,
        _ => None,
    };
    if let Some(global) = global {
        return Some(global.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, leaf) = rest.split_once('.')?;
    let (module, suffix) = leaf.split_once('.')?;
    let gemma = arch == "gemma3";
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_norm" if gemma => "pre_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "post_attention_norm" => "post_attention_layernorm",
        "post_ffw_norm" => "post_feedforward_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return Some(name.to_string()),
    };
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// Undoes llama.cpp's interleaving of Q or K rows: within each of `heads` heads, llama.cpp's row `2 i + j` is HF's
/// row `j * half + i` (i < half = head_dim / 2, j < 2). Rows are moved whole, so quantized rows stay packed.
fn unpermute_rows(file: &GgufFile, info: &TensorInfo, stored: StoredTensor, heads: usize) -> Result<StoredTensor> {
    let rows = stored.shape.first().copied().unwrap_or(0);
    ensure!(
        heads > 0 && rows % (2 * heads) == 0 && stored.shape.len() == 2,
        "{}: tensor {} has shape {:?}, which does not split into {heads} heads of rotary pairs",
        file.path.display(),
        info.name,
        stored.shape
    );
    let row_bytes = stored.dtype.bytes_for(stored.shape[1]);
    let (head_rows, half) = (rows / heads, rows / heads / 2);
    let source = stored.bytes();
    let mut bytes = Vec::with_capacity(source.len());
    for head in 0..heads {
        for j in 0..2 {
            for i in 0..half {
                let row = head * head_rows + 2 * i + j;
                bytes.extend_from_slice(&source[row * row_bytes..(row + 1) * row_bytes]);
            }
        }
    }
    Ok(StoredTensor::from_bytes(&stored.name, &stored.shape, stored.dtype, bytes))
}

/// The `config.json` transformers builds from the file's metadata.
fn config(file: &GgufFile, arch: &str) -> Result<Value> {
    let m = &file.metadata;
    let key = |name: &str| format!("{arch}.{name}");
    let hidden = m.usize(&key("embedding_length"))?;
    let heads = m.usize(&key("attention.head_count"))?;
    let kv_heads = m.opt_usize(&key("attention.head_count_kv"))?.unwrap_or(heads);
    ensure!(heads > 0, "{}: metadata {} is 0", file.path.display(), key("attention.head_count"));
    let head_dim = match arch {
        "llama" => m.opt_usize(&key("rope.dimension_count"))?,
        _ => m.opt_usize(&key("attention.key_length"))?,
    }
    .unwrap_or(hidden / heads);
    let layers = m.usize(&key("block_count"))?;
    let vocab = vocab_size(file, arch)?;
    let tied = file.tensor("output.weight").is_none();
    let class = SUPPORTED.iter().find(|(a, _)| *a == arch).map(|(_, c)| *c).context("supported architecture")?;
    let rope_theta = m.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0);
    let mut config = json!({
        "architectures": [class],
        "model_type": arch,
        "hidden_size": hidden,
        "intermediate_size": m.usize(&key("feed_forward_length"))?,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": m.f64(&key("attention.layer_norm_rms_epsilon"))?,
        "rope_theta": rope_theta,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "bos_token_id": m.opt_usize("tokenizer.ggml.bos_token_id")?,
        "eos_token_id": m.opt_usize("tokenizer.ggml.eos_token_id")?,
        "pad_token_id": m.opt_usize("tokenizer.ggml.padding_token_id")?,
    });
    let map = config.as_object_mut().expect("a JSON object");
    if let Some(context) = m.opt_usize(&key("context_length"))? {
        map.insert("max_position_embeddings".into(), json!(context));
    }
    match arch {
        "llama" => {
            map.insert("hidden_act".into(), json!("silu"));
            map.insert("attention_bias".into(), json!(file.tensor("blk.0.attn_q.bias").is_some()));
            if let Some(kind) = m.opt_str(&key("rope.scaling.type"))?.filter(|k| *k != "none") {
                let factor = m.opt_f64(&key("rope.scaling.factor"))?;
                map.insert("rope_scaling".into(), json!({"rope_type": kind, "factor": factor}));
            }
        }
        "qwen2" => {
            map.insert("hidden_act".into(), json!("silu"));
            if let Some(window) = m.opt_usize(&key("attention.sliding_window"))? {
                map.insert("sliding_window".into(), json!(window));
            }
        }
        "gemma3" => gemma3_config(m, &key, layers, rope_theta, map)?,
        _ => unreachable!("architecture() admits only supported architectures"),
    }
    Ok(config)
}

/// Gemma 3's keys: the sliding-window layout and the rope bases, in both the transformers 4 form (`rope_theta`,
/// `rope_local_base_freq`, `sliding_window_pattern`) and the transformers 5 form (`rope_parameters` per layer type).
fn gemma3_config(
    m: &Metadata,
    key: &dyn Fn(&str) -> String,
    layers: usize,
    rope_theta: f64,
    map: &mut serde_json::Map<String, Value>,
) -> Result<()> {
    map.insert("model_type".into(), json!("gemma3_text"));
    let window = m.opt_usize(&key("attention.sliding_window"))?;
    map.insert("sliding_window".into(), json!(window));
    let sliding: Vec<bool> = match m.get(&key("attention.sliding_window_pattern")) {
        Some(super::MetaValue::Array(items)) => {
            ensure!(
                items.len() == layers,
                "metadata {} has {} entries for {layers} blocks",
                key("attention.sliding_window_pattern"),
                items.len()
            );
            items
                .iter()
                .map(|v| match v {
                    super::MetaValue::Bool(b) => Ok(*b),
                    other => bail!(
                        "metadata {} holds a {}, expected bools",
                        key("attention.sliding_window_pattern"),
                        other.type_name()
                    ),
                })
                .collect::<Result<_>>()?
        }
        _ => {
            let pattern =
                m.opt_usize(&key("attention.sliding_window_pattern"))?.unwrap_or(GEMMA3_SLIDING_WINDOW_PATTERN);
            ensure!(pattern > 0, "metadata {} is 0", key("attention.sliding_window_pattern"));
            map.insert("sliding_window_pattern".into(), json!(pattern));
            (0..layers).map(|i| (i + 1) % pattern != 0).collect()
        }
    };
    let layer_types: Vec<&str> =
        sliding.iter().map(|&s| if s { "sliding_attention" } else { "full_attention" }).collect();
    map.insert("layer_types".into(), json!(layer_types));
    map.insert("rope_local_base_freq".into(), json!(GEMMA3_ROPE_LOCAL_BASE));
    map.insert(
        "rope_parameters".into(),
        json!({
            "full_attention": {"rope_type": "default", "rope_theta": rope_theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": GEMMA3_ROPE_LOCAL_BASE},
        }),
    );
    map.insert("query_pre_attn_scalar".into(), json!(GEMMA3_QUERY_PRE_ATTN_SCALAR));
    map.insert("hidden_activation".into(), json!("gelu_pytorch_tanh"));
    map.insert("final_logit_softcapping".into(), Value::Null);
    map.insert("attn_logit_softcapping".into(), Value::Null);
    Ok(())
}

/// `{arch}.vocab_size`, else the number of tokens of the vocabulary, else the embedding's rows.
fn vocab_size(file: &GgufFile, arch: &str) -> Result<usize> {
    if let Some(v) = file.metadata.opt_usize(&format!("{arch}.vocab_size"))? {
        return Ok(v);
    }
    if let Some(tokens) = file.metadata.opt_array("tokenizer.ggml.tokens")? {
        return Ok(tokens.len());
    }
    match file.tensor("token_embd.weight") {
        Some(t) if t.dims.len() == 2 => Ok(t.dims[1]),
        _ => bail!("{}: no vocabulary size (no {arch}.vocab_size, tokens or token_embd.weight)", file.path.display()),
    }
}
