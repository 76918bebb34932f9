//! A GGUF file seen as an HF model directory: the config transformers builds from its metadata (the keys of a
//! `config.json`) and its tensors under HF names, with llama.cpp's conversions undone as transformers undoes them:
//! the Q and K rows of Llama files are un-permuted (llama.cpp interleaves each head's rotary halves), and Gemma 3's
//! norm weights lose the 1 llama.cpp added to them.

use super::{GgufFile, Metadata, TensorInfo};
use crate::checkpoint::limits;
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

/// The HF `config.json` a GGUF file's metadata describes, without its tensors.
pub fn load_config(file: &GgufFile) -> Result<Value> {
    config(file, architecture(file)?)
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
    let source = stored.bytes();
    let row_bytes = stored.shape.get(1).and_then(|&cols| stored.dtype.bytes_for(cols)).unwrap_or(0);
    ensure!(
        heads > 0
            && rows % (2 * heads) == 0
            && stored.shape.len() == 2
            && rows.checked_mul(row_bytes) == Some(source.len()),
        "{}: tensor {} has shape {:?}, which does not split into {heads} heads of rotary pairs",
        file.path.display(),
        info.name,
        stored.shape
    );
    if source.is_empty() {
        return Ok(stored);
    }
    let source_rows: Vec<&[u8]> = source.chunks_exact(row_bytes).collect();
    let (head_rows, half) = (rows / heads, rows / heads / 2);
    let mut bytes = Vec::with_capacity(source.len());
    for head in 0..heads {
        for j in 0..2 {
            for i in 0..half {
                bytes.extend_from_slice(source_rows[head * head_rows + 2 * i + j]);
            }
        }
    }
    Ok(StoredTensor::from_bytes(&stored.name, &stored.shape, stored.dtype, bytes))
}

/// The sizes the metadata states, checked against their bounds and the file's tensors.
struct Sizes {
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Where the head size comes from: its key, or the division that gives it.
    head_source: String,
    layers: usize,
    intermediate: usize,
    vocab: usize,
}

/// The `config.json` transformers builds from the file's metadata.
fn config(file: &GgufFile, arch: &str) -> Result<Value> {
    let m = &file.metadata;
    let key = |name: &str| format!("{arch}.{name}");
    let field = |name: &str| format!("{}: metadata {}", file.path.display(), key(name));
    let bounded = |name: &str, max: usize| -> Result<Option<usize>> {
        m.opt_usize(&key(name))?.map(|v| limits::size(&field(name), v, max)).transpose()
    };
    let required = |name: &str, max: usize| -> Result<usize> {
        bounded(name, max)?.with_context(|| format!("{} is missing", field(name)))
    };
    let hidden = required("embedding_length", limits::MAX_HIDDEN)?;
    let heads = required("attention.head_count", limits::MAX_HEADS)?;
    let kv_heads = bounded("attention.head_count_kv", limits::MAX_HEADS)?.unwrap_or(heads);
    ensure!(
        heads % kv_heads == 0,
        "{}: {heads} attention heads cannot share {kv_heads} key/value heads",
        field("attention.head_count_kv")
    );
    let head_key = if arch == "llama" { "rope.dimension_count" } else { "attention.key_length" };
    let (head_dim, head_source) = match bounded(head_key, limits::MAX_HEAD_DIM)? {
        Some(size) => (size, key(head_key)),
        None => (hidden / heads, format!("{} / {}", key("embedding_length"), key("attention.head_count"))),
    };
    ensure!(
        head_dim > 0 && head_dim % 2 == 0,
        "{}: the head size ({head_source}) is {head_dim}, not a positive even number",
        file.path.display()
    );
    let layers = required("block_count", limits::MAX_LAYERS)?;
    let intermediate = required("feed_forward_length", limits::MAX_INTERMEDIATE)?;
    let vocab = vocab_size(file, arch)?;
    let sizes = Sizes { hidden, heads, kv_heads, head_dim, head_source, layers, intermediate, vocab };
    check_tensors(file, &key, &sizes)?;
    let tied = file.tensor("output.weight").is_none();
    let class = SUPPORTED.iter().find(|(a, _)| *a == arch).map(|(_, c)| *c).context("supported architecture")?;
    let rope_theta = m.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0);
    let mut config = json!({
        "architectures": [class],
        "model_type": arch,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
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
    if let Some(context) = bounded("context_length", limits::MAX_POSITIONS)? {
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
            if let Some(window) = bounded("attention.sliding_window", limits::MAX_POSITIONS)? {
                map.insert("sliding_window".into(), json!(window));
            }
        }
        "gemma3" => {
            map.insert("sliding_window".into(), json!(bounded("attention.sliding_window", limits::MAX_POSITIONS)?));
            gemma3_config(m, &key, layers, rope_theta, map)?
        }
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
    let pattern_key = key("attention.sliding_window_pattern");
    let sliding: Vec<bool> = match m.get(&pattern_key) {
        Some(super::MetaValue::Array(_)) => {
            let flags = m.opt_bools(&pattern_key)?.unwrap_or_default();
            ensure!(
                flags.len() == layers,
                "{}: metadata {pattern_key} has {} entries for {layers} blocks",
                m.origin(),
                flags.len()
            );
            flags.to_vec()
        }
        _ => {
            let pattern = m.opt_usize(&pattern_key)?.unwrap_or(GEMMA3_SLIDING_WINDOW_PATTERN);
            ensure!(pattern > 0, "{}: metadata {pattern_key} is 0", m.origin());
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

/// `{arch}.vocab_size`, else the number of tokens of the vocabulary, else the embedding's rows; bounded.
fn vocab_size(file: &GgufFile, arch: &str) -> Result<usize> {
    let origin = file.path.display();
    let (vocab, source) = if let Some(v) = file.metadata.opt_usize(&format!("{arch}.vocab_size"))? {
        (v, format!("metadata {arch}.vocab_size"))
    } else if let Some(tokens) = file.metadata.opt_array("tokenizer.ggml.tokens")? {
        (tokens.len(), "the length of metadata tokenizer.ggml.tokens".to_string())
    } else {
        match file.tensor("token_embd.weight") {
            Some(t) if t.dims.len() == 2 => (t.dims[1], "the rows of tensor token_embd.weight".to_string()),
            _ => bail!("{origin}: no vocabulary size (no {arch}.vocab_size, tokens or token_embd.weight)"),
        }
    };
    limits::size(&format!("{origin}: the vocabulary size ({source})"), vocab, limits::MAX_VOCAB)
}

/// Checks the sizes against the file's tensors before anything is built from them: the blocks `blk.N` present are
/// exactly `0..block_count`, and the token embedding and every block's projections have the dimensions the sizes
/// make. Tensors absent here are reported when the model asks for them.
fn check_tensors(file: &GgufFile, key: &dyn Fn(&str) -> String, s: &Sizes) -> Result<()> {
    let origin = file.path.display();
    let names = file.tensors.iter().map(|t| t.name.as_str());
    limits::check_blocks(names, "blk.", s.layers, &format!("{origin}: metadata {}", key("block_count")))?;
    let (q, kv) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
    let hidden = format!("{} {}", key("embedding_length"), s.hidden);
    let heads = format!("{} {} x head size {} ({})", key("attention.head_count"), s.heads, s.head_dim, s.head_source);
    let kv_heads =
        format!("{} {} x head size {} ({})", key("attention.head_count_kv"), s.kv_heads, s.head_dim, s.head_source);
    let ffn = format!("{} {}", key("feed_forward_length"), s.intermediate);
    for t in &file.tensors {
        let module = t.name.strip_prefix("blk.").and_then(|rest| rest.split_once('.')).map(|(_, module)| module);
        // Dimensions in ggml's order: a row's length first.
        let (expected, fields) = match (t.name.as_str(), module) {
            ("token_embd.weight", _) => ([s.hidden, s.vocab], format!("{hidden} and the vocabulary of {}", s.vocab)),
            (_, Some("attn_q.weight")) => ([s.hidden, q], format!("{heads} and {hidden}")),
            (_, Some("attn_k.weight" | "attn_v.weight")) => ([s.hidden, kv], format!("{kv_heads} and {hidden}")),
            (_, Some("attn_output.weight")) => ([q, s.hidden], format!("{heads} and {hidden}")),
            (_, Some("ffn_gate.weight" | "ffn_up.weight")) => {
                ([s.hidden, s.intermediate], format!("{ffn} and {hidden}"))
            }
            (_, Some("ffn_down.weight")) => ([s.intermediate, s.hidden], format!("{ffn} and {hidden}")),
            _ => continue,
        };
        ensure!(
            t.dims == expected,
            "{origin}: tensor {} has dimensions {:?}, but metadata {fields} make them {expected:?}",
            t.name,
            t.dims
        );
    }
    Ok(())
}
