//! LLaVA-OneVision's `config.json` (`LlavaOnevisionConfig`): the SigLIP vision tower's sizes, the projector, the
//! anyres settings (grid pinpoints, `vision_aspect_ratio = anyres_max_N`), which hidden state is the image feature
//! (`vision_feature_layer`: an index or a list, concatenated) and whether its first token is dropped
//! (`vision_feature_select_strategy`), and the image token.

use crate::backend::Activation;
use crate::checkpoint::limits;
use crate::models::clip::VisionConfig;
use crate::models::clip::config::{get_size, get_usize, section};
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct LlavaConfig {
    pub vision: VisionConfig,
    pub text_hidden: usize,
    /// Indices into HF's `hidden_states` (0: the embeddings, `i`: after layer `i`), concatenated in this order.
    pub feature_layers: Vec<usize>,
    /// `default`: the first token of each tile is dropped (a class token, in CLIP); `full`: all are kept.
    pub drop_first_token: bool,
    pub projector_activation: Activation,
    pub projector_bias: bool,
    /// Grid resolutions `(height, width)`.
    pub pinpoints: Vec<(usize, usize)>,
    /// `anyres_max_N`: the packed grid is downscaled to about N tiles' worth of features.
    pub max_tiles: usize,
    pub image_token: u32,
}

/// A feature layer index, negative from the end as Python indexes, into `layers + 1` hidden states.
fn feature_layer(value: &Value, layers: usize) -> Result<usize> {
    let i = value.as_i64().with_context(|| format!("vision_feature_layer {value} is not an integer"))?;
    let states = layers as i64 + 1;
    let index = if i < 0 { states + i } else { i };
    ensure!((0..states).contains(&index), "vision_feature_layer {i} is outside the {states} hidden states");
    Ok(index as usize)
}

impl LlavaConfig {
    pub fn from_json(config: &Value) -> Result<Self> {
        let model_type = config.get("model_type").and_then(Value::as_str).unwrap_or("");
        if model_type != "llava_onevision" {
            bail!("config.json: model_type {model_type:?} is not llava_onevision");
        }
        let vision_map = section(config, "vision_config");
        let vision_type = vision_map.get("model_type").and_then(Value::as_str).unwrap_or("siglip_vision_model");
        ensure!(
            vision_type == "siglip_vision_model",
            "config.json: vision_config.model_type {vision_type:?} is not a SigLIP vision tower"
        );
        let vision = VisionConfig::from_section(&vision_map, (1152, 4304, 16, 27), "gelu_pytorch_tanh", (384, 14))?;
        let text = section(config, "text_config");
        let text_hidden = get_size(&text, "text_config", "hidden_size", 896, limits::MAX_HIDDEN)?;
        let layers = vision.tower.num_layers;
        let feature_layers = match config.get("vision_feature_layer") {
            None | Some(Value::Null) => vec![layers],
            Some(Value::Array(list)) if !list.is_empty() => {
                list.iter().map(|v| feature_layer(v, layers)).collect::<Result<_>>()?
            }
            Some(v) => vec![feature_layer(v, layers).context("config.json")?],
        };
        let drop_first_token = match config.get("vision_feature_select_strategy").and_then(Value::as_str) {
            None | Some("full") => false,
            Some("default") => true,
            Some(other) => bail!("config.json: vision_feature_select_strategy {other:?} is not default or full"),
        };
        let act = config.get("projector_hidden_act").and_then(Value::as_str).unwrap_or("gelu");
        let projector_activation =
            Activation::from_hf(act).with_context(|| "config.json: projector_hidden_act".to_string())?;
        let list = config
            .get("image_grid_pinpoints")
            .and_then(Value::as_array)
            .context("config.json: image_grid_pinpoints is missing or not a list")?;
        let mut pinpoints = Vec::new();
        for (i, pair) in list.iter().enumerate() {
            let pair: Vec<usize> = pair
                .as_array()
                .filter(|p| p.len() == 2)
                .and_then(|p| p.iter().map(|v| v.as_u64().map(|v| v as usize)).collect())
                .with_context(|| format!("config.json: image_grid_pinpoints[{i}] is not [height, width]"))?;
            let fits = pair.iter().all(|&s| s > 0 && s <= limits::MAX_IMAGE_SIZE && s % vision.image_size == 0);
            ensure!(fits, "config.json: image_grid_pinpoints[{i}] is not a grid of {}-pixel tiles", vision.image_size);
            pinpoints.push((pair[0], pair[1]));
        }
        ensure!(!pinpoints.is_empty(), "config.json: image_grid_pinpoints is empty");
        let aspect = config.get("vision_aspect_ratio").and_then(Value::as_str).unwrap_or("anyres_max_9");
        let max_tiles = aspect
            .strip_prefix("anyres_max_")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n >= 1)
            .with_context(|| format!("config.json: vision_aspect_ratio {aspect:?} is not anyres_max_N"))?;
        let image_token =
            get_usize(config.as_object().context("config.json is not an object")?, "", "image_token_index", 151646)?;
        Ok(Self {
            vision,
            text_hidden,
            feature_layers,
            drop_first_token,
            projector_activation,
            projector_bias: config.get("multimodal_projector_bias").and_then(Value::as_bool).unwrap_or(true),
            pinpoints,
            max_tiles,
            image_token: u32::try_from(image_token).context("config.json: image_token_index does not fit 32 bits")?,
        })
    }
}
