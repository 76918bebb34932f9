//! CLIP's `config.json`, read as HF's CLIPConfig reads it (defaults for absent keys, `*_config_dict` overrides).

use crate::backend::Activation;
use crate::checkpoint::WeightStore;
use crate::checkpoint::limits::{self, check_shape};
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
    /// Patches along the image's side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn num_patches(&self) -> usize {
        self.grid().pow(2)
    }

    /// A ViT's `vision_config`, with the family's defaults for absent keys: the tower's `(hidden, intermediate,
    /// heads, layers)` and activation, and `(image_size, patch_size)`.
    pub(crate) fn from_section(
        map: &serde_json::Map<String, Value>,
        defaults: (usize, usize, usize, usize),
        default_act: &str,
        (image, patch): (usize, usize),
    ) -> Result<Self> {
        let vision = VisionConfig {
            tower: tower(map, "vision_config", defaults, default_act)?,
            image_size: get_size(map, "vision_config", "image_size", image, limits::MAX_IMAGE_SIZE)?,
            patch_size: get_size(map, "vision_config", "patch_size", patch, limits::MAX_IMAGE_SIZE)?,
        };
        ensure!(
            vision.patch_size > 0 && vision.patch_size <= vision.image_size,
            "config.json: vision_config.patch_size {} does not fit image_size {}",
            vision.patch_size,
            vision.image_size
        );
        Ok(vision)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub projection_dim: usize,
}

/// The section `key` of the config, with the entries of `key_dict` (older checkpoints) laid over it.
pub(crate) fn section(config: &Value, key: &str) -> serde_json::Map<String, Value> {
    let mut merged = config.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(overrides) = config.get(format!("{key}_dict")).and_then(Value::as_object) {
        merged.extend(overrides.clone());
    }
    merged
}

pub(crate) fn get_usize(
    map: &serde_json::Map<String, Value>,
    section: &str,
    key: &str,
    default: usize,
) -> Result<usize> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .with_context(|| format!("config.json: {section}.{key} is not a non-negative integer: {v}")),
    }
}

/// A size within `1..=max`, or `default` where absent.
pub(crate) fn get_size(
    map: &serde_json::Map<String, Value>,
    section: &str,
    key: &str,
    default: usize,
    max: usize,
) -> Result<usize> {
    limits::size(&format!("config.json: {section}.{key}"), get_usize(map, section, key, default)?, max)
}

fn get_f32(map: &serde_json::Map<String, Value>, section: &str, key: &str, default: f32) -> Result<f32> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => {
            v.as_f64().map(|v| v as f32).with_context(|| format!("config.json: {section}.{key} is not a number: {v}"))
        }
    }
}

/// A tower's sizes and activation, with the model family's defaults for absent keys: `(hidden, intermediate,
/// heads, layers)` and the activation's HF name.
pub(crate) fn tower(
    map: &serde_json::Map<String, Value>,
    section: &str,
    defaults: (usize, usize, usize, usize),
    default_act: &str,
) -> Result<TowerConfig> {
    let (hidden, intermediate, heads, layers) = defaults;
    let act = match map.get("hidden_act") {
        None | Some(Value::Null) => default_act,
        Some(Value::String(s)) => s.as_str(),
        Some(v) => bail!("config.json: {section}.hidden_act is not a string: {v}"),
    };
    let config = TowerConfig {
        hidden_size: get_size(map, section, "hidden_size", hidden, limits::MAX_HIDDEN)?,
        intermediate_size: get_size(map, section, "intermediate_size", intermediate, limits::MAX_INTERMEDIATE)?,
        num_heads: get_size(map, section, "num_attention_heads", heads, limits::MAX_HEADS)?,
        num_layers: get_size(map, section, "num_hidden_layers", layers, limits::MAX_LAYERS)?,
        activation: Activation::from_hf(act).with_context(|| format!("config.json: {section}.hidden_act"))?,
        layer_norm_eps: get_f32(map, section, "layer_norm_eps", 1e-5)?,
    };
    ensure!(
        config.hidden_size.is_multiple_of(config.num_heads),
        "config.json: {section}.hidden_size {} is not divisible by num_attention_heads {}",
        config.hidden_size,
        config.num_heads
    );
    Ok(config)
}

/// The shape a tower's layer weight `module` (`self_attn.q_proj.weight`, `mlp.fc1.weight`, ...) has by the tower's
/// config, and the keys that make it; `None` for one whose shape the sizes do not set.
fn tower_shape(c: &TowerConfig, module: &str) -> Option<(Vec<usize>, String)> {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    Some(match module {
        "self_attn.q_proj.weight"
        | "self_attn.k_proj.weight"
        | "self_attn.v_proj.weight"
        | "self_attn.out_proj.weight" => (vec![d, d], format!("hidden_size {d}")),
        "mlp.fc1.weight" => (vec![f, d], format!("intermediate_size {f} and hidden_size {d}")),
        "mlp.fc2.weight" => (vec![d, f], format!("intermediate_size {f} and hidden_size {d}")),
        _ => return None,
    })
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
            tower: tower(&text, "text_config", (512, 2048, 8, 12), "quick_gelu")?,
            vocab_size: get_size(&text, "text_config", "vocab_size", 49408, limits::MAX_VOCAB)?,
            max_positions: get_size(&text, "text_config", "max_position_embeddings", 77, limits::MAX_POSITIONS)?,
            eos_token_id: u32::try_from(get_usize(&text, "text_config", "eos_token_id", 49407)?)
                .context("config.json: text_config.eos_token_id does not fit 32 bits")?,
        };
        let vision = VisionConfig::from_section(&vision, (768, 3072, 12, 12), "quick_gelu", (224, 32))?;
        let top = config.as_object().cloned().unwrap_or_default();
        let projection_dim = limits::size(
            "config.json: projection_dim",
            get_usize(&top, "config", "projection_dim", 512)?,
            limits::MAX_HIDDEN,
        )?;
        Ok(Self { text, vision, projection_dim })
    }

    /// Checks the config against the weights before anything is built from it: the layers of each tower present
    /// are exactly `0..num_hidden_layers`, and the embeddings, projections and every layer's weights have the
    /// shapes that the sizes make. Tensors absent here are reported when the model asks for them.
    pub fn check_weights(&self, store: &WeightStore) -> Result<()> {
        let (text, vision) = (&self.text, &self.vision);
        for (tower, prefix, section) in [
            (&text.tower, "text_model.encoder.layers.", "text_config"),
            (&vision.tower, "vision_model.encoder.layers.", "vision_config"),
        ] {
            let field = format!("config.json: {section}.num_hidden_layers");
            limits::check_blocks(store.names(), prefix, tower.num_layers, &field)?;
        }
        let (td, vd, p, proj) =
            (text.tower.hidden_size, vision.tower.hidden_size, vision.patch_size, self.projection_dim);
        for t in store.tensors() {
            let layer = |tower: &str| t.name.strip_prefix(tower).and_then(|rest| rest.split_once('.')).map(|(_, m)| m);
            let (expected, fields): (Vec<usize>, String) = match t.name.as_str() {
                "text_model.embeddings.token_embedding.weight" => (
                    vec![text.vocab_size, td],
                    format!("text_config.vocab_size {} and hidden_size {td}", text.vocab_size),
                ),
                "text_model.embeddings.position_embedding.weight" => (
                    vec![text.max_positions, td],
                    format!("text_config.max_position_embeddings {} and hidden_size {td}", text.max_positions),
                ),
                "text_projection.weight" => {
                    (vec![proj, td], format!("projection_dim {proj} and text_config.hidden_size {td}"))
                }
                "visual_projection.weight" => {
                    (vec![proj, vd], format!("projection_dim {proj} and vision_config.hidden_size {vd}"))
                }
                "vision_model.embeddings.patch_embedding.weight" => {
                    (vec![vd, 3, p, p], format!("vision_config.hidden_size {vd} and patch_size {p}"))
                }
                "vision_model.embeddings.position_embedding.weight" => (
                    vec![vision.num_patches() + 1, vd],
                    format!("vision_config.image_size {}, patch_size {p} and hidden_size {vd}", vision.image_size),
                ),
                _ => match (layer("text_model.encoder.layers."), layer("vision_model.encoder.layers.")) {
                    (Some(module), _) => match tower_shape(&text.tower, module) {
                        Some((shape, fields)) => (shape, format!("text_config.{fields}")),
                        None => continue,
                    },
                    (_, Some(module)) => match tower_shape(&vision.tower, module) {
                        Some((shape, fields)) => (shape, format!("vision_config.{fields}")),
                        None => continue,
                    },
                    _ => continue,
                },
            };
            check_shape("config.json", &t.name, &t.shape, &expected, &fields)?;
        }
        Ok(())
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

    fn tiny() -> Value {
        let tower =
            json!({"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2});
        let mut text = tower.clone();
        text["vocab_size"] = json!(16);
        text["max_position_embeddings"] = json!(8);
        let mut vision = tower;
        vision["image_size"] = json!(4);
        vision["patch_size"] = json!(2);
        json!({"model_type": "clip", "projection_dim": 8, "text_config": text, "vision_config": vision})
    }

    #[test]
    fn sizes_are_bounded_and_must_match_the_weights() {
        for (section, key, value, words) in [
            ("text_config", "num_attention_heads", json!(0), "text_config.num_attention_heads is 0"),
            ("text_config", "num_hidden_layers", json!(1_000_000_000_000u64), "num_hidden_layers is 1000000000000"),
            ("vision_config", "image_size", json!(1u64 << 40), "vision_config.image_size is 1099511627776"),
            ("vision_config", "patch_size", json!(0), "vision_config.patch_size is 0"),
            (
                "vision_config",
                "num_attention_heads",
                json!(3),
                "hidden_size 8 is not divisible by num_attention_heads 3",
            ),
        ] {
            let mut bad = tiny();
            bad[section][key] = value;
            let err = ClipConfig::from_json(&bad).unwrap_err().to_string();
            assert!(err.contains("config.json") && err.contains(words), "{key}: {err}");
        }
        let config = ClipConfig::from_json(&tiny()).unwrap();
        let store = crate::models::clip::random_weights(&config, crate::checkpoint::DType::F32, 1);
        config.check_weights(&store).unwrap();
        let mut more = config.clone();
        more.vision.tower.num_layers = 3;
        let err = more.check_weights(&store).unwrap_err().to_string();
        assert!(err.contains("config.json: vision_config.num_hidden_layers is 3") && err.contains("layers.2"), "{err}");
        let mut wide = config.clone();
        wide.text.tower.intermediate_size = 32;
        let err = wide.check_weights(&store).unwrap_err().to_string();
        assert!(err.contains("text_model.encoder.layers.0.mlp.fc1.weight has shape [16, 8]"), "{err}");
        assert!(err.contains("text_config.intermediate_size 32 and hidden_size 8 make it [32, 8]"), "{err}");
        let mut positions = config.clone();
        positions.vision.image_size = 6;
        let err = positions.check_weights(&store).unwrap_err().to_string();
        assert!(err.contains("vision_model.embeddings.position_embedding.weight has shape [5, 8]"), "{err}");
    }
}
