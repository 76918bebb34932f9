//! CLIP's `config.json`, read as HF's CLIPConfig reads it (defaults for absent keys, `*_config_dict` overrides).

use crate::backend::Activation;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct TowerConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub activation: Activation,
    pub layer_norm_eps: f32,
}

impl TowerConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub tower: TowerConfig,
    pub vocab_size: usize,
    pub max_positions: usize,
    /// HF's `eos_token_id`; the legacy value 2 selects argmax pooling.
    pub eos_token_id: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    pub tower: TowerConfig,
    pub image_size: usize,
    pub patch_size: usize,
}

impl VisionConfig {
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub projection_dim: usize,
}

/// The section `key` of the config, with the entries of `key_dict` (older checkpoints) laid over it.
fn section(config: &Value, key: &str) -> serde_json::Map<String, Value> {
    let mut merged = config.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(overrides) = config.get(format!("{key}_dict")).and_then(Value::as_object) {
        merged.extend(overrides.clone());
    }
    merged
}

fn get_usize(map: &serde_json::Map<String, Value>, section: &str, key: &str, default: usize) -> Result<usize> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .map(|v| v as usize)
            .with_context(|| format!("config.json: {section}.{key} is not a non-negative integer: {v}")),
    }
}

fn get_f32(map: &serde_json::Map<String, Value>, section: &str, key: &str, default: f32) -> Result<f32> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => {
            v.as_f64().map(|v| v as f32).with_context(|| format!("config.json: {section}.{key} is not a number: {v}"))
        }
    }
}

fn tower(
    map: &serde_json::Map<String, Value>,
    section: &str,
    defaults: (usize, usize, usize, usize),
) -> Result<TowerConfig> {
    let (hidden, intermediate, heads, layers) = defaults;
    let act = match map.get("hidden_act") {
        None | Some(Value::Null) => "quick_gelu",
        Some(Value::String(s)) => s.as_str(),
        Some(v) => bail!("config.json: {section}.hidden_act is not a string: {v}"),
    };
    let config = TowerConfig {
        hidden_size: get_usize(map, section, "hidden_size", hidden)?,
        intermediate_size: get_usize(map, section, "intermediate_size", intermediate)?,
        num_heads: get_usize(map, section, "num_attention_heads", heads)?,
        num_layers: get_usize(map, section, "num_hidden_layers", layers)?,
        activation: Activation::from_hf(act).with_context(|| format!("config.json: {section}.hidden_act"))?,
        layer_norm_eps: get_f32(map, section, "layer_norm_eps", 1e-5)?,
    };
    ensure!(config.hidden_size > 0 && config.intermediate_size > 0, "config.json: {section} sizes must be positive");
    ensure!(
        config.num_heads > 0 && config.hidden_size.is_multiple_of(config.num_heads),
        "config.json: {section}.hidden_size {} is not divisible by num_attention_heads {}",
        config.hidden_size,
        config.num_heads
    );
    Ok(config)
}

impl ClipConfig {
    pub fn from_json(config: &Value) -> Result<Self> {
        let model_type = config.get("model_type").and_then(Value::as_str).unwrap_or("");
        let architectures: Vec<&str> = config
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if model_type != "clip" && !architectures.contains(&"CLIPModel") {
            bail!(
                "config.json describes model_type {model_type:?} (architectures {architectures:?}); supported: CLIP \
                 (model_type \"clip\", CLIPModel: OpenAI CLIP and the LAION/OpenCLIP HF ports)"
            );
        }
        let text = section(config, "text_config");
        let vision = section(config, "vision_config");
        let text = TextConfig {
            tower: tower(&text, "text_config", (512, 2048, 8, 12))?,
            vocab_size: get_usize(&text, "text_config", "vocab_size", 49408)?,
            max_positions: get_usize(&text, "text_config", "max_position_embeddings", 77)?,
            eos_token_id: u32::try_from(get_usize(&text, "text_config", "eos_token_id", 49407)?)
                .context("config.json: text_config.eos_token_id does not fit 32 bits")?,
        };
        let vision = VisionConfig {
            tower: tower(&vision, "vision_config", (768, 3072, 12, 12))?,
            image_size: get_usize(&vision, "vision_config", "image_size", 224)?,
            patch_size: get_usize(&vision, "vision_config", "patch_size", 32)?,
        };
        ensure!(
            vision.patch_size > 0 && vision.image_size.is_multiple_of(vision.patch_size),
            "config.json: vision_config.image_size {} is not a multiple of patch_size {}",
            vision.image_size,
            vision.patch_size
        );
        let top = config.as_object().cloned().unwrap_or_default();
        let projection_dim = get_usize(&top, "config", "projection_dim", 512)?;
        ensure!(projection_dim > 0, "config.json: projection_dim must be positive");
        ensure!(
            text.vocab_size > 0 && text.max_positions > 0,
            "config.json: text_config.vocab_size and max_position_embeddings must be positive"
        );
        Ok(Self { text, vision, projection_dim })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_dict_overrides() {
        let config = json!({
            "model_type": "clip",
            "projection_dim": 768,
            "text_config": {"hidden_size": 768, "eos_token_id": 2},
            "text_config_dict": {"num_attention_heads": 12},
            "vision_config": {"patch_size": 14, "image_size": 336, "hidden_act": "gelu"}
        });
        let c = ClipConfig::from_json(&config).unwrap();
        assert_eq!(c.text.tower.hidden_size, 768);
        assert_eq!(c.text.tower.num_heads, 12);
        assert_eq!(c.text.eos_token_id, 2);
        assert_eq!(c.vision.num_patches(), 576);
        assert_eq!(c.vision.tower.activation, Activation::Gelu);
        assert_eq!(c.vision.tower.hidden_size, 768);
        assert_eq!(c.projection_dim, 768);
    }

    #[test]
    fn errors_name_the_field() {
        let err = ClipConfig::from_json(&json!({"model_type": "siglip"})).unwrap_err().to_string();
        assert!(err.contains("siglip") && err.contains("supported"), "{err}");
        let err = format!(
            "{:#}",
            ClipConfig::from_json(&json!({"model_type": "clip", "text_config": {"hidden_act": "swish"}})).unwrap_err()
        );
        assert!(err.contains("text_config.hidden_act") && err.contains("swish"), "{err}");
        let err = ClipConfig::from_json(&json!({"model_type": "clip", "vision_config": {"hidden_size": "big"}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("vision_config.hidden_size"), "{err}");
    }
}
