//! Decoder LLM configs (Llama 2/3/3.1/3.2, Mistral, Qwen2) as HF's `config.json` writes them, in both the
//! transformers 4 form (`rope_theta`, `rope_scaling`) and the transformers 5 form (`rope_parameters`).

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value};

/// The architectures this engine runs.
pub const SUPPORTED: [&str; 3] = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];

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
}

fn usize_of(map: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(
            v.as_u64().with_context(|| format!("config.json: {key} is not a non-negative integer: {v}"))? as usize,
        )),
    }
}

fn f64_of(map: &Map<String, Value>, key: &str) -> Result<Option<f64>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(v.as_f64().with_context(|| format!("config.json: {key} is not a number: {v}"))?)),
    }
}

fn required(map: &Map<String, Value>, key: &str) -> Result<usize> {
    usize_of(map, key)?.with_context(|| format!("config.json has no {key}"))
}

/// The usable context: `max_position_embeddings`, capped at the sliding attention window where one is in force
/// (Mistral's `sliding_window`; Qwen2's only with `use_sliding_window`), since windowed attention is not
/// implemented and within the window it equals full attention.
fn context_length(map: &Map<String, Value>, is_qwen2: bool) -> Result<usize> {
    let positions = usize_of(map, "max_position_embeddings")?.unwrap_or(2048);
    let windowed = !is_qwen2 || map.get("use_sliding_window").and_then(Value::as_bool).unwrap_or(false);
    let window = if windowed { usize_of(map, "sliding_window")? } else { None };
    Ok(window.map_or(positions, |w| w.min(positions)))
}

fn rope(map: &Map<String, Value>) -> Result<(f64, RopeScaling)> {
    // transformers 5 folds theta and scaling into `rope_parameters`; 4.x has `rope_theta` and `rope_scaling`.
    let parameters = map.get("rope_parameters").and_then(Value::as_object);
    let theta = match parameters {
        Some(p) => f64_of(p, "rope_theta")?,
        None => None,
    };
    let theta = theta.or(f64_of(map, "rope_theta")?).unwrap_or(10_000.0);
    let scaling = parameters.or(map.get("rope_scaling").and_then(Value::as_object));
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
        other => bail!("config.json: unsupported rope scaling type {other:?} (supported: default, llama3)"),
    })
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
        let hidden_size = required(map, "hidden_size")?;
        let num_heads = required(map, "num_attention_heads")?;
        let num_kv_heads = usize_of(map, "num_key_value_heads")?.unwrap_or(num_heads);
        ensure!(
            num_heads > 0 && num_kv_heads > 0 && num_heads % num_kv_heads == 0,
            "config.json: {num_heads} attention heads cannot share {num_kv_heads} key/value heads"
        );
        let head_dim = usize_of(map, "head_dim")?.unwrap_or(hidden_size / num_heads);
        ensure!(
            head_dim > 0 && head_dim % 2 == 0,
            "config.json: head size {head_dim} must be even for rotary embeddings"
        );
        let act = map.get("hidden_act").and_then(Value::as_str).unwrap_or("silu");
        ensure!(act == "silu", "config.json: hidden_act {act:?} is not supported (the Llama family uses silu)");
        let (rope_theta, rope_scaling) = rope(map)?;
        let is_qwen2 = *architecture == "Qwen2ForCausalLM";
        let tie_default = is_qwen2;
        Ok(Self {
            architecture: architecture.to_string(),
            hidden_size,
            intermediate_size: required(map, "intermediate_size")?,
            num_layers: required(map, "num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size: required(map, "vocab_size")?,
            max_positions: context_length(map, is_qwen2)?,
            rms_norm_eps: f64_of(map, "rms_norm_eps")?.unwrap_or(1e-6) as f32,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: map.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(tie_default),
            qkv_bias: is_qwen2 || map.get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
        })
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

    /// Rotary inverse frequencies, one per pair of a head, with the configured scaling applied.
    pub fn inv_freq(&self) -> Vec<f32> {
        let dim = self.head_dim as f64;
        (0..self.head_dim / 2)
            .map(|i| {
                let base = 1.0 / self.rope_theta.powf((2 * i) as f64 / dim);
                let scaled = match self.rope_scaling {
                    RopeScaling::None => base,
                    RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_positions } => {
                        let wavelen = 2.0 * std::f64::consts::PI / base;
                        let low_freq_wavelen = original_max_positions / low_freq_factor;
                        let high_freq_wavelen = original_max_positions / high_freq_factor;
                        if wavelen < high_freq_wavelen {
                            base
                        } else if wavelen > low_freq_wavelen {
                            base / factor
                        } else {
                            let smooth = (original_max_positions / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * base / factor + smooth * base
                        }
                    }
                };
                scaled as f32
            })
            .collect()
    }
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
}
