//! Decoder LLM configs (Llama 2/3/3.1/3.2, Mistral, Qwen2, Gemma 3 text) as HF's `config.json` writes them, in both
//! the transformers 4 form (`rope_theta`, `rope_scaling`; Gemma 3's `rope_local_base_freq` and
//! `sliding_window_pattern`) and the transformers 5 form (`rope_parameters`, per layer type for Gemma 3;
//! `layer_types`).

use crate::checkpoint::WeightStore;
use crate::checkpoint::limits::{self, check_shape};
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value};

/// The architectures this engine runs.
pub const SUPPORTED: [&str; 4] = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Gemma3ForCausalLM"];

/// How rotary frequencies are scaled for long contexts.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Llama 3.1's scheme: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_positions: f64,
    },
    /// Every frequency divided by `factor` (HF's `linear`, as Gemma 3's larger checkpoints use).
    Linear {
        factor: f64,
    },
}

impl std::fmt::Display for RopeScaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RopeScaling::None => f.write_str("no scaling"),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_positions } => write!(
                f,
                "Llama 3 scaling (factor {factor}, low-frequency factor {low_freq_factor}, high-frequency factor \
                 {high_freq_factor}, original context {original_max_positions})"
            ),
            RopeScaling::Linear { factor } => write!(f, "linear scaling (factor {factor})"),
        }
    }
}

/// What Gemma 3 (`Gemma3ForCausalLM`, `model_type` `gemma3_text`) changes in the Llama block: the embedding scaled
/// by `sqrt(hidden_size)`, RMS norms with gains `1 + weight`, norms after attention and around the feed-forward,
/// RMS norms of each query and key head, a tanh-GELU gate, sliding-window layers with their own rope base, and the
/// query scale. The feed-forward activation is tanh-GELU (`hidden_activation` `gelu_pytorch_tanh`).
#[derive(Clone, Debug, PartialEq)]
pub struct Gemma3 {
    /// Attention scores are scaled by `query_pre_attn_scalar^-0.5`.
    pub query_pre_attn_scalar: f64,
    /// Keys a sliding-window layer sees: its own and the `sliding_window - 1` before it.
    pub sliding_window: usize,
    /// Per block: whether it is a sliding-window layer (HF `layer_types[i] == "sliding_attention"`).
    pub sliding_layers: Vec<bool>,
    /// Rope base of the sliding-window layers, unscaled; the full-attention layers use the config's `rope_theta`
    /// and `rope_scaling`.
    pub local_rope_theta: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlmConfig {
    pub architecture: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_positions: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub tie_word_embeddings: bool,
    /// Q, K and V projections carry biases (Qwen2; Llama with `attention_bias`).
    pub qkv_bias: bool,
    /// The Gemma 3 block in place of the Llama one.
    pub gemma3: Option<Gemma3>,
}

fn usize_of(map: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|v| usize::try_from(v).ok()) {
            Some(v) => Ok(Some(v)),
            None => bail!("config.json: {key} is not a non-negative integer: {v}"),
        },
    }
}

/// A size, if present, within `1..=max`.
fn size_of(map: &Map<String, Value>, key: &str, max: usize) -> Result<Option<usize>> {
    usize_of(map, key)?.map(|v| limits::size(&format!("config.json: {key}"), v, max)).transpose()
}

fn f64_of(map: &Map<String, Value>, key: &str) -> Result<Option<f64>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(v.as_f64().with_context(|| format!("config.json: {key} is not a number: {v}"))?)),
    }
}

/// A size that must be present, within `1..=max`.
fn required(map: &Map<String, Value>, key: &str, max: usize) -> Result<usize> {
    size_of(map, key, max)?.with_context(|| format!("config.json has no {key}"))
}

/// The usable context: `max_position_embeddings`, capped at the sliding attention window where one is in force
/// (Mistral's `sliding_window`; Qwen2's only with `use_sliding_window`), since windowed attention is not
/// implemented and within the window it equals full attention.
fn context_length(map: &Map<String, Value>, is_qwen2: bool) -> Result<usize> {
    let positions = size_of(map, "max_position_embeddings", limits::MAX_POSITIONS)?.unwrap_or(2048);
    let windowed = !is_qwen2 || map.get("use_sliding_window").and_then(Value::as_bool).unwrap_or(false);
    let window = if windowed { size_of(map, "sliding_window", limits::MAX_POSITIONS)? } else { None };
    Ok(window.map_or(positions, |w| w.min(positions)))
}

fn rope(map: &Map<String, Value>) -> Result<(f64, RopeScaling)> {
    // transformers 5 folds theta and scaling into `rope_parameters`; 4.x has `rope_theta` and `rope_scaling`.
    let parameters = map.get("rope_parameters").and_then(Value::as_object);
    rope_of(parameters, map.get("rope_scaling").and_then(Value::as_object), f64_of(map, "rope_theta")?, 10_000.0)
}

/// Theta and scaling from a transformers 5 `parameters` map, or else the 4.x `scaling` map and `theta`.
fn rope_of(
    parameters: Option<&Map<String, Value>>,
    scaling: Option<&Map<String, Value>>,
    theta: Option<f64>,
    default_theta: f64,
) -> Result<(f64, RopeScaling)> {
    let from_parameters = match parameters {
        Some(p) => f64_of(p, "rope_theta")?,
        None => None,
    };
    let theta = from_parameters.or(theta).unwrap_or(default_theta);
    let scaling = parameters.or(scaling);
    let Some(scaling) = scaling else { return Ok((theta, RopeScaling::None)) };
    let kind = scaling.get("rope_type").or(scaling.get("type")).and_then(Value::as_str).unwrap_or("default");
    let field = |key: &str| -> Result<f64> {
        f64_of(scaling, key)?.with_context(|| format!("config.json: rope scaling of type {kind} has no {key}"))
    };
    Ok(match kind {
        "default" => (theta, RopeScaling::None),
        "llama3" => (
            theta,
            RopeScaling::Llama3 {
                factor: field("factor")?,
                low_freq_factor: field("low_freq_factor")?,
                high_freq_factor: field("high_freq_factor")?,
                original_max_positions: field("original_max_position_embeddings")?,
            },
        ),
        "linear" => (theta, RopeScaling::Linear { factor: field("factor")? }),
        other => bail!("config.json: unsupported rope scaling type {other:?} (supported: default, llama3, linear)"),
    })
}

/// Gemma 3's fields (see [`Gemma3`]), with HF's defaults where a field is absent; refuses what is not implemented
/// (logit soft-capping, bidirectional attention, attention biases).
fn gemma3(map: &Map<String, Value>, num_layers: usize) -> Result<(Gemma3, f64, RopeScaling)> {
    for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
        if let Some(v) = f64_of(map, key)? {
            bail!("config.json: {key} {v} is not supported (Gemma 3 checkpoints leave it null)");
        }
    }
    for key in ["use_bidirectional_attention", "attention_bias"] {
        ensure!(
            !map.get(key).and_then(Value::as_bool).unwrap_or(false),
            "config.json: {key} true is not supported for Gemma 3"
        );
    }
    let act = map.get("hidden_activation").or(map.get("hidden_act")).and_then(Value::as_str);
    let act = act.unwrap_or("gelu_pytorch_tanh");
    ensure!(
        crate::backend::Activation::from_hf(act).ok() == Some(crate::backend::Activation::GeluTanh),
        "config.json: hidden_activation {act:?} is not supported (Gemma 3 uses gelu_pytorch_tanh)"
    );
    let sliding_layers: Vec<bool> = match map.get("layer_types") {
        Some(Value::Array(types)) => {
            ensure!(
                types.len() == num_layers,
                "config.json: layer_types has {} entries for {num_layers} layers",
                types.len()
            );
            types
                .iter()
                .map(|t| match t.as_str() {
                    Some("sliding_attention") => Ok(true),
                    Some("full_attention") => Ok(false),
                    _ => bail!("config.json: layer_types holds {t}, not sliding_attention or full_attention"),
                })
                .collect::<Result<_>>()?
        }
        Some(other) if !other.is_null() => bail!("config.json: layer_types is not a list: {other}"),
        _ => {
            let pattern = usize_of(map, "sliding_window_pattern")?.unwrap_or(6);
            ensure!(pattern > 0, "config.json: sliding_window_pattern is 0");
            (0..num_layers).map(|i| (i + 1) % pattern != 0).collect()
        }
    };
    let sliding_window = size_of(map, "sliding_window", limits::MAX_POSITIONS)?.unwrap_or(4096);
    // transformers 5 keys `rope_parameters` by layer type; 4.x has `rope_theta`, `rope_scaling` (global layers) and
    // `rope_local_base_freq`.
    let parameters = map.get("rope_parameters").and_then(Value::as_object);
    let by_type = |kind: &str| parameters.and_then(|p| p.get(kind)).and_then(Value::as_object);
    let scaling = map.get("rope_scaling").and_then(Value::as_object);
    let (theta, scaling) = rope_of(by_type("full_attention"), scaling, f64_of(map, "rope_theta")?, 1_000_000.0)
        .context("full_attention")?;
    let (local_rope_theta, local_scaling) =
        rope_of(by_type("sliding_attention"), None, f64_of(map, "rope_local_base_freq")?, 10_000.0)?;
    ensure!(
        local_scaling == RopeScaling::None,
        "config.json: rope scaling of the sliding_attention layers is not supported"
    );
    let config = Gemma3 {
        query_pre_attn_scalar: f64_of(map, "query_pre_attn_scalar")?.unwrap_or(256.0),
        sliding_window,
        sliding_layers,
        local_rope_theta,
    };
    ensure!(config.query_pre_attn_scalar > 0.0, "config.json: query_pre_attn_scalar must be positive");
    Ok((config, theta, scaling))
}

impl LlmConfig {
    pub fn from_json(config: &Value) -> Result<Self> {
        let map = config.as_object().context("config.json is not a JSON object")?;
        let architectures: Vec<&str> = map
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(architecture) = architectures.iter().find(|a| SUPPORTED.contains(a)) else {
            bail!(
                "config.json describes architectures {architectures:?}; supported LLM architectures: {}",
                SUPPORTED.join(", ")
            );
        };
        let hidden_size = required(map, "hidden_size", limits::MAX_HIDDEN)?;
        let num_heads = required(map, "num_attention_heads", limits::MAX_HEADS)?;
        let num_kv_heads = size_of(map, "num_key_value_heads", limits::MAX_HEADS)?.unwrap_or(num_heads);
        ensure!(
            num_heads % num_kv_heads == 0,
            "config.json: {num_heads} attention heads (num_attention_heads) cannot share {num_kv_heads} key/value \
             heads (num_key_value_heads)"
        );
        let is_gemma3 = *architecture == "Gemma3ForCausalLM";
        let head_dim = size_of(map, "head_dim", limits::MAX_HEAD_DIM)?.unwrap_or(if is_gemma3 {
            256
        } else {
            hidden_size / num_heads
        });
        ensure!(
            head_dim > 0 && head_dim % 2 == 0,
            "config.json: head size {head_dim} (head_dim, or hidden_size / num_attention_heads) must be even and \
             positive for rotary embeddings"
        );
        let num_layers = required(map, "num_hidden_layers", limits::MAX_LAYERS)?;
        let (gemma3, (rope_theta, rope_scaling)) = if is_gemma3 {
            let (gemma3, theta, scaling) = gemma3(map, num_layers)?;
            (Some(gemma3), (theta, scaling))
        } else {
            let act = map.get("hidden_act").and_then(Value::as_str).unwrap_or("silu");
            ensure!(act == "silu", "config.json: hidden_act {act:?} is not supported (the Llama family uses silu)");
            (None, rope(map)?)
        };
        let is_qwen2 = *architecture == "Qwen2ForCausalLM";
        let tie_default = is_qwen2 || is_gemma3;
        let max_positions = if is_gemma3 {
            size_of(map, "max_position_embeddings", limits::MAX_POSITIONS)?.unwrap_or(131_072)
        } else {
            context_length(map, is_qwen2)?
        };
        Ok(Self {
            architecture: architecture.to_string(),
            hidden_size,
            intermediate_size: required(map, "intermediate_size", limits::MAX_INTERMEDIATE)?,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size: required(map, "vocab_size", limits::MAX_VOCAB)?,
            max_positions,
            rms_norm_eps: f64_of(map, "rms_norm_eps")?.unwrap_or(1e-6) as f32,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: map.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(tie_default),
            qkv_bias: is_qwen2 || map.get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
            gemma3,
        })
    }

    /// Checks the config against the weights before anything is built from it: the blocks `model.layers.N` present
    /// are exactly `0..num_hidden_layers`, and the embeddings and every block's projections have the shapes that
    /// the sizes make. Tensors absent here are reported when the model asks for them.
    pub fn check_weights(&self, store: &WeightStore) -> Result<()> {
        limits::check_blocks(store.names(), "model.layers.", self.num_layers, "config.json: num_hidden_layers")?;
        let (d, f, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let (q, kv) = (self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim);
        let hidden = format!("hidden_size {d}");
        let heads = format!("num_attention_heads {} x head_dim {}", self.num_heads, self.head_dim);
        let kv_heads = format!("num_key_value_heads {} x head_dim {}", self.num_kv_heads, self.head_dim);
        let mlp = format!("intermediate_size {f}");
        for t in store.tensors() {
            let module = t.name.strip_prefix("model.layers.").and_then(|rest| rest.split_once('.')).map(|(_, m)| m);
            let (expected, fields) = match (t.name.as_str(), module) {
                ("model.embed_tokens.weight" | "lm_head.weight", _) => ([v, d], format!("vocab_size {v} and {hidden}")),
                (_, Some("self_attn.q_proj.weight")) => ([q, d], format!("{heads} and {hidden}")),
                (_, Some("self_attn.k_proj.weight" | "self_attn.v_proj.weight")) => {
                    ([kv, d], format!("{kv_heads} and {hidden}"))
                }
                (_, Some("self_attn.o_proj.weight")) => ([d, q], format!("{heads} and {hidden}")),
                (_, Some("mlp.gate_proj.weight" | "mlp.up_proj.weight")) => ([f, d], format!("{mlp} and {hidden}")),
                (_, Some("mlp.down_proj.weight")) => ([d, f], format!("{mlp} and {hidden}")),
                _ => continue,
            };
            check_shape("config.json", &t.name, &t.shape, &expected, &fields)?;
        }
        Ok(())
    }

    /// Checks that `layer` names one of the model's blocks.
    pub fn check_block(&self, layer: usize) -> Result<()> {
        ensure!(
            layer < self.num_layers,
            "layer {layer} is out of range: the model has blocks 0..{}",
            self.num_layers - 1
        );
        Ok(())
    }

    /// Checks a steering vector's width against the hidden size, and its layer.
    pub fn check_steering(&self, width: usize, layer: usize) -> Result<()> {
        ensure!(
            width == self.hidden_size,
            "the steering vector has width {width}, the model's hidden size is {}",
            self.hidden_size
        );
        self.check_block(layer).context("steering")
    }

    /// Rotary inverse frequencies, one per pair of a head, with the configured scaling applied (of the
    /// full-attention layers, for Gemma 3).
    pub fn inv_freq(&self) -> Vec<f32> {
        inv_freq(self.head_dim, self.rope_theta, &self.rope_scaling)
    }

    /// Gemma 3's inverse frequencies of the sliding-window layers.
    pub fn local_inv_freq(&self) -> Option<Vec<f32>> {
        self.gemma3.as_ref().map(|g| inv_freq(self.head_dim, g.local_rope_theta, &RopeScaling::None))
    }

    /// The attention of block `layer`: its query scale and its window.
    pub fn scoring(&self, layer: usize) -> crate::backend::Scoring {
        match &self.gemma3 {
            None => crate::backend::Scoring::full(self.head_dim),
            Some(g) => crate::backend::Scoring {
                scale: g.query_pre_attn_scalar.powf(-0.5) as f32,
                window: g.sliding_layers[layer].then_some(g.sliding_window),
            },
        }
    }
}

/// Rotary inverse frequencies of a head of `head_dim` with base `theta`, scaled.
fn inv_freq(head_dim: usize, theta: f64, scaling: &RopeScaling) -> Vec<f32> {
    let dim = head_dim as f64;
    (0..head_dim / 2)
        .map(|i| {
            let base = 1.0 / theta.powf((2 * i) as f64 / dim);
            let scaled = match *scaling {
                RopeScaling::None => base,
                RopeScaling::Linear { factor } => base / factor,
                RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_positions } => {
                    let wavelen = 2.0 * std::f64::consts::PI / base;
                    let low_freq_wavelen = original_max_positions / low_freq_factor;
                    let high_freq_wavelen = original_max_positions / high_freq_factor;
                    if wavelen < high_freq_wavelen {
                        base
                    } else if wavelen > low_freq_wavelen {
                        base / factor
                    } else {
                        let smooth =
                            (original_max_positions / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * base / factor + smooth * base
                    }
                }
            };
            scaled as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_rope_forms_and_rejects_unknown_architectures() {
        let old = json!({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 100, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}});
        let c = LlmConfig::from_json(&old).unwrap();
        assert_eq!((c.head_dim, c.num_kv_heads, c.tie_word_embeddings, c.qkv_bias), (8, 2, false, false));
        let mut new = old.clone();
        let map = new.as_object_mut().unwrap();
        let scaling = map.remove("rope_scaling").unwrap();
        map.remove("rope_theta");
        let mut parameters = scaling.as_object().unwrap().clone();
        parameters.insert("rope_theta".into(), json!(500000.0));
        map.insert("rope_parameters".into(), Value::Object(parameters));
        assert_eq!(LlmConfig::from_json(&new).unwrap(), c);
        // The lowest frequencies are divided by the factor, the highest kept.
        let plain = LlmConfig { rope_scaling: RopeScaling::None, ..c.clone() }.inv_freq();
        let scaled = c.inv_freq();
        assert_eq!(scaled[0], plain[0]);
        assert!((scaled[3] - plain[3] / 8.0).abs() < 1e-12);

        let mut mistral = old.clone();
        mistral["architectures"] = json!(["MistralForCausalLM"]);
        mistral["max_position_embeddings"] = json!(32768);
        mistral["sliding_window"] = json!(4096);
        assert_eq!(LlmConfig::from_json(&mistral).unwrap().max_positions, 4096, "the window caps the context");
        let mut qwen = mistral.clone();
        qwen["architectures"] = json!(["Qwen2ForCausalLM"]);
        assert_eq!(LlmConfig::from_json(&qwen).unwrap().max_positions, 32768, "Qwen2's window is off by default");

        let err = LlmConfig::from_json(&json!({"architectures": ["GPT2LMHeadModel"]})).unwrap_err().to_string();
        assert!(err.contains("GPT2LMHeadModel") && err.contains("Qwen2ForCausalLM"), "{err}");
        let mut yarn = old.clone();
        yarn["rope_scaling"]["rope_type"] = json!("yarn");
        assert!(LlmConfig::from_json(&yarn).unwrap_err().to_string().contains("yarn"));
    }

    /// Gemma 3 270M's config.json as the Hub has it.
    fn gemma3_hub() -> Value {
        json!({"architectures": ["Gemma3ForCausalLM"], "attention_bias": false, "attn_logit_softcapping": null,
            "final_logit_softcapping": null, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
            "hidden_size": 640, "intermediate_size": 2048, "max_position_embeddings": 32768,
            "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 18, "num_key_value_heads": 1,
            "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000.0,
            "rope_scaling": null, "rope_theta": 1000000.0, "sliding_window": 512, "sliding_window_pattern": 6,
            "use_bidirectional_attention": false, "vocab_size": 262144})
    }

    #[test]
    fn reads_gemma3_in_both_forms() {
        let hub = LlmConfig::from_json(&gemma3_hub()).unwrap();
        let g = hub.gemma3.clone().unwrap();
        assert_eq!((hub.head_dim, hub.max_positions, hub.tie_word_embeddings), (256, 32768, true));
        assert_eq!((g.sliding_window, g.local_rope_theta, hub.rope_theta), (512, 10_000.0, 1_000_000.0));
        let full: Vec<usize> = (0..18).filter(|&i| !g.sliding_layers[i]).collect();
        assert_eq!(full, [5, 11, 17], "every sixth layer is global");
        assert_eq!(hub.scoring(0), crate::backend::Scoring { scale: 1.0 / 16.0, window: Some(512) });
        assert_eq!(hub.scoring(5).window, None);
        assert!((hub.local_inv_freq().unwrap()[1] - 10_000f32.powf(-2.0 / 256.0)).abs() < 1e-6);
        assert!((hub.inv_freq()[1] - 1_000_000f32.powf(-2.0 / 256.0)).abs() < 1e-6);

        // transformers 5: rope parameters per layer type, layer types listed.
        let mut new = gemma3_hub();
        let map = new.as_object_mut().unwrap();
        for key in ["rope_local_base_freq", "rope_scaling", "rope_theta", "sliding_window_pattern"] {
            map.remove(key);
        }
        map.insert(
            "rope_parameters".into(),
            json!({"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                   "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}),
        );
        let types: Vec<&str> =
            g.sliding_layers.iter().map(|&s| if s { "sliding_attention" } else { "full_attention" }).collect();
        map.insert("layer_types".into(), json!(types));
        assert_eq!(LlmConfig::from_json(&new).unwrap(), hub);

        let mut linear = gemma3_hub();
        linear["rope_scaling"] = json!({"rope_type": "linear", "factor": 8.0});
        let linear = LlmConfig::from_json(&linear).unwrap();
        assert_eq!(linear.inv_freq()[3], hub.inv_freq()[3] / 8.0);
        assert_eq!(linear.local_inv_freq(), hub.local_inv_freq(), "the local layers are not scaled");

        for (key, value, words) in [
            ("final_logit_softcapping", json!(30.0), "final_logit_softcapping"),
            ("attn_logit_softcapping", json!(50.0), "attn_logit_softcapping"),
            ("use_bidirectional_attention", json!(true), "use_bidirectional_attention"),
            ("hidden_activation", json!("silu"), "hidden_activation"),
            ("layer_types", json!(["sliding_attention"]), "layer_types has 1 entries for 18 layers"),
            ("layer_types", json!(vec!["chunked_attention"; 18]), "chunked_attention"),
        ] {
            let mut bad = gemma3_hub();
            bad[key] = value;
            let err = format!("{:#}", LlmConfig::from_json(&bad).unwrap_err());
            assert!(err.contains("config.json") && err.contains(words), "{key}: {err}");
        }
    }

    #[test]
    fn sizes_are_bounded_before_anything_is_allocated() {
        let base = json!({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
            "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 100});
        let huge = json!(1u64 << 40);
        for (key, value, words) in [
            ("num_attention_heads", json!(0), "num_attention_heads is 0, outside the supported range 1 to 1024"),
            ("num_key_value_heads", json!(3), "cannot share 3 key/value heads"),
            ("num_hidden_layers", json!(1_000_000_000_000u64), "num_hidden_layers is 1000000000000"),
            ("hidden_size", huge.clone(), "hidden_size is 1099511627776"),
            ("intermediate_size", huge.clone(), "intermediate_size is 1099511627776"),
            ("vocab_size", huge.clone(), "vocab_size is 1099511627776"),
            ("max_position_embeddings", huge.clone(), "max_position_embeddings is 1099511627776"),
            ("head_dim", json!(3), "head size 3"),
            ("head_dim", huge.clone(), "head_dim is 1099511627776"),
            ("num_attention_heads", json!(-2), "num_attention_heads is not a non-negative integer"),
        ] {
            let mut bad = base.clone();
            bad[key] = value;
            let err = LlmConfig::from_json(&bad).unwrap_err().to_string();
            assert!(err.contains("config.json") && err.contains(words), "{key}: {err}");
        }
        // Gemma 3 has a kind per layer: a trillion layers would be a trillion of them.
        let mut gemma = gemma3_hub();
        gemma["num_hidden_layers"] = json!(1_000_000_000_000u64);
        let err = LlmConfig::from_json(&gemma).unwrap_err().to_string();
        assert!(err.contains("num_hidden_layers is 1000000000000"), "{err}");
    }

    #[test]
    fn sizes_must_match_the_weights() {
        let config = crate::models::llm::shape_config("small-100m").unwrap();
        let config = LlmConfig { num_layers: 2, hidden_size: 64, intermediate_size: 96, vocab_size: 50, ..config };
        let config = LlmConfig { num_heads: 4, num_kv_heads: 2, head_dim: 16, ..config };
        let store = crate::models::llm::random_weights(&config, crate::checkpoint::DType::F32, 1);
        config.check_weights(&store).unwrap();
        for (changed, words) in [
            (
                LlmConfig { num_layers: 3, ..config.clone() },
                "num_hidden_layers is 3, but the weights have no tensor of block 2",
            ),
            (LlmConfig { num_layers: 1, ..config.clone() }, "tensor model.layers.1."),
            (LlmConfig { num_heads: 2, ..config.clone() }, "tensor model.layers.0.self_attn.o_proj.weight has shape"),
            (LlmConfig { num_kv_heads: 4, ..config.clone() }, "num_key_value_heads 4 x head_dim 16 and hidden_size 64"),
            (LlmConfig { intermediate_size: 64, ..config.clone() }, "mlp.down_proj.weight has shape [64, 96]"),
            (LlmConfig { vocab_size: 49, ..config.clone() }, "tensor model.embed_tokens.weight has shape [50, 64]"),
        ] {
            let err = changed.check_weights(&store).unwrap_err().to_string();
            assert!(err.contains("config.json") && err.contains(words), "{err}");
        }
    }
}
