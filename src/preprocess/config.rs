//! `preprocessor_config.json`: the settings of HF's CLIPImageProcessor, read with the same defaults and the same
//! interpretation of the `size` / `crop_size` shorthands that transformers applies.

use super::resample::Resample;
use anyhow::Context;
use serde_json::{Map, Value};
use std::path::Path;

/// OpenAI CLIP's per-channel mean (transformers' `OPENAI_CLIP_MEAN`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's per-channel standard deviation (transformers' `OPENAI_CLIP_STD`).
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// How the resize step chooses its output size; one variant per key set transformers accepts for `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeSize {
    /// `{"shortest_edge": s}`: the short side becomes `s`, the long side `int(s * long / short)`.
    ShortestEdge(u32),
    /// `{"shortest_edge": s, "longest_edge": l}`: as above, unless that would make the long side exceed `l`, in
    /// which case the long side is capped at `l` (transformers' `get_size_with_aspect_ratio`).
    ShortestLongestEdge { shortest: u32, longest: u32 },
    /// `{"max_height": h, "max_width": w}`: the largest aspect-preserving size that fits inside `h` x `w`.
    MaxHeightWidth { max_height: u32, max_width: u32 },
    /// `{"height": h, "width": w}`: exactly this size, aspect ratio ignored.
    Exact { height: u32, width: u32 },
}

/// Preprocessing settings equal to transformers' CLIPImageProcessor (PIL backend) configured from the same JSON.
///
/// Missing or `null` keys take CLIPImageProcessor's class defaults (shortest edge 224, bicubic, centre crop 224,
/// rescale 1/255, OpenAI mean/std). Keys that do not concern image preprocessing are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    pub do_resize: bool,
    pub size: ResizeSize,
    pub resample: Resample,
    pub do_center_crop: bool,
    /// Centre crop (height, width).
    pub crop_size: (u32, u32),
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    /// Read for completeness; decoding always yields RGB, since the model takes three channels either way.
    pub do_convert_rgb: bool,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            do_resize: true,
            size: ResizeSize::ShortestEdge(224),
            resample: Resample::Bicubic,
            do_center_crop: true,
            crop_size: (224, 224),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
            do_convert_rgb: true,
        }
    }
}

/// A problem with one key of a preprocessor config, or with the JSON as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected a JSON object at the top level")]
    NotAnObject,
    #[error("field `{field}`: {message}")]
    Field { field: &'static str, message: String },
}

fn field_error(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Field { field, message: message.into() }
}

impl PreprocessConfig {
    /// Reads and validates a `preprocessor_config.json`; errors name the file and, where it applies, the field.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read preprocessor config {}", path.display()))?;
        Self::from_json_str(&text).map_err(|e| anyhow::anyhow!("invalid preprocessor config {}: {e}", path.display()))
    }

    /// Parses the JSON text of a preprocessor config.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(text)?;
        Self::from_json(&value)
    }

    /// Interprets an already parsed preprocessor config.
    pub fn from_json(value: &Value) -> Result<Self, ConfigError> {
        let obj = value.as_object().ok_or(ConfigError::NotAnObject)?;
        let defaults = Self::default();
        let get = |key: &str| obj.get(key).filter(|v| !v.is_null());

        let flag = |field: &'static str, default: bool| -> Result<bool, ConfigError> {
            match get(field) {
                None => Ok(default),
                Some(v) => v.as_bool().ok_or_else(|| field_error(field, format!("expected true or false, got {v}"))),
            }
        };

        // CLIP resizes by the shortest edge when `size` is a bare integer, unless the config says otherwise.
        let default_to_square = flag("default_to_square", false)?;
        let size = match get("size") {
            None => defaults.size,
            Some(v) => parse_size(v, default_to_square)?,
        };
        let crop_size = match get("crop_size") {
            None => defaults.crop_size,
            Some(v) => parse_crop_size(v)?,
        };
        let resample = match get("resample") {
            None => defaults.resample,
            Some(v) => {
                let code = v
                    .as_i64()
                    .ok_or_else(|| field_error("resample", format!("expected a PIL filter number, got {v}")))?;
                Resample::from_pil(code).map_err(|message| field_error("resample", message))?
            }
        };
        let rescale_factor = match get("rescale_factor") {
            None => defaults.rescale_factor,
            Some(v) => match v.as_f64() {
                Some(f) if f.is_finite() => f,
                _ => return Err(field_error("rescale_factor", format!("expected a number, got {v}"))),
            },
        };
        let image_mean = match get("image_mean") {
            None => defaults.image_mean,
            Some(v) => parse_channels("image_mean", v)?,
        };
        let image_std = match get("image_std") {
            None => defaults.image_std,
            Some(v) => parse_channels("image_std", v)?,
        };

        let cfg = Self {
            do_resize: flag("do_resize", defaults.do_resize)?,
            size,
            resample,
            do_center_crop: flag("do_center_crop", defaults.do_center_crop)?,
            crop_size,
            do_rescale: flag("do_rescale", defaults.do_rescale)?,
            rescale_factor,
            do_normalize: flag("do_normalize", defaults.do_normalize)?,
            image_mean,
            image_std,
            do_convert_rgb: flag("do_convert_rgb", defaults.do_convert_rgb)?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what parsing alone cannot: the model needs every image at one fixed size, so a config must either
    /// centre-crop or resize to an exact height and width; the standard deviations must be non-zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.fixed_output_size().is_none() {
            return Err(field_error(
                "do_center_crop",
                "without a centre crop (or a resize to an exact height and width) images keep different sizes, \
                 which a fixed-resolution model cannot take",
            ));
        }
        if self.do_normalize && self.image_std.contains(&0.0) {
            return Err(field_error("image_std", "a standard deviation of zero"));
        }
        Ok(())
    }

    /// The (height, width) of every preprocessed image: the crop size, or the exact resize size without a crop.
    ///
    /// # Panics
    /// For a hand-built config that [`validate`](Self::validate) rejects (one whose output size varies per image);
    /// configs read by [`from_file`](Self::from_file) / [`from_json`](Self::from_json) never do.
    pub fn output_size(&self) -> (usize, usize) {
        self.fixed_output_size()
            .expect("this preprocessing config gives images of varying size (no centre crop, no exact resize)")
    }

    fn fixed_output_size(&self) -> Option<(usize, usize)> {
        match (self.do_center_crop, self.do_resize, self.size) {
            (true, _, _) => Some((self.crop_size.0 as usize, self.crop_size.1 as usize)),
            (false, true, ResizeSize::Exact { height, width }) => Some((height as usize, width as usize)),
            _ => None,
        }
    }

    /// The (height, width) an image of the given size is resized to, computed exactly as transformers does (the
    /// same integer truncations and float operations). Sizes are at least 1, where transformers would fail instead.
    pub fn resize_output_size(&self, height: u32, width: u32) -> (u32, u32) {
        let (h, w) = match self.size {
            ResizeSize::ShortestEdge(size) => shortest_edge_size(height, width, size),
            ResizeSize::ShortestLongestEdge { shortest, longest } => {
                size_with_aspect_ratio(height, width, shortest, longest)
            }
            ResizeSize::MaxHeightWidth { max_height, max_width } => {
                let scale = (max_height as f64 / height as f64).min(max_width as f64 / width as f64);
                ((height as f64 * scale) as u32, (width as f64 * scale) as u32)
            }
            ResizeSize::Exact { height, width } => (height, width),
        };
        (h.max(1), w.max(1))
    }
}

/// transformers' `get_resize_output_image_size(..., default_to_square=False)`: the short side becomes `size` and
/// the long side `int(size * long / short)` (exact integer product, one float division, truncation).
fn shortest_edge_size(height: u32, width: u32, size: u32) -> (u32, u32) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    let new_long = ((size as u64 * long as u64) as f64 / short as f64) as u32;
    if width <= height { (new_long, size) } else { (size, new_long) }
}

/// transformers' `get_size_with_aspect_ratio(image_size, size, max_size)`, used for a `size` with both
/// `shortest_edge` and `longest_edge`. Python's `round` rounds halves to even, hence `round_ties_even`.
fn size_with_aspect_ratio(height: u32, width: u32, size: u32, max_size: u32) -> (u32, u32) {
    let mut size = size;
    let mut raw_size: Option<f64> = None;
    let min_original = height.min(width) as f64;
    let max_original = height.max(width) as f64;
    if max_original / min_original * size as f64 > max_size as f64 {
        let raw = max_size as f64 * min_original / max_original;
        raw_size = Some(raw);
        size = raw.round_ties_even() as u32;
    }
    if (height <= width && height == size) || (width <= height && width == size) {
        (height, width)
    } else if width < height {
        let oh = match raw_size {
            Some(raw) => (raw * height as f64 / width as f64) as u32,
            None => ((size as u64 * height as u64) as f64 / width as f64) as u32,
        };
        (oh, size)
    } else {
        let ow = match raw_size {
            Some(raw) => (raw * width as f64 / height as f64) as u32,
            None => ((size as u64 * width as u64) as f64 / height as f64) as u32,
        };
        (size, ow)
    }
}

fn positive_int(field: &'static str, key: &str, v: &Value) -> Result<u32, ConfigError> {
    match v.as_u64() {
        Some(n) if n >= 1 && n <= u32::MAX as u64 => Ok(n as u32),
        _ => Err(field_error(field, format!("`{key}` must be a positive integer, got {v}"))),
    }
}

/// Reads the keys of a size object, treating `null` entries as absent (as transformers' `SizeDict` does).
fn size_keys<'a>(field: &'static str, map: &'a Map<String, Value>) -> Result<Vec<(&'a str, u32)>, ConfigError> {
    map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| positive_int(field, k, v).map(|n| (k.as_str(), n))).collect()
}

/// `size`: an integer (the shortest edge, or a square with `default_to_square`), a `[height, width]` list, or an
/// object with one of the key sets transformers' CLIP resize understands.
fn parse_size(v: &Value, default_to_square: bool) -> Result<ResizeSize, ConfigError> {
    const FIELD: &str = "size";
    match v {
        Value::Number(_) => {
            let n = positive_int(FIELD, FIELD, v)?;
            Ok(if default_to_square { ResizeSize::Exact { height: n, width: n } } else { ResizeSize::ShortestEdge(n) })
        }
        Value::Array(items) => match items.as_slice() {
            [h, w] => Ok(ResizeSize::Exact {
                height: positive_int(FIELD, "height", h)?,
                width: positive_int(FIELD, "width", w)?,
            }),
            [n] => {
                let n = positive_int(FIELD, FIELD, n)?;
                Ok(if default_to_square {
                    ResizeSize::Exact { height: n, width: n }
                } else {
                    ResizeSize::ShortestEdge(n)
                })
            }
            _ => Err(field_error(FIELD, format!("a list must be [height, width], got {v}"))),
        },
        Value::Object(map) => {
            let mut keys = size_keys(FIELD, map)?;
            keys.sort_unstable();
            match keys.as_slice() {
                [("shortest_edge", s)] => Ok(ResizeSize::ShortestEdge(*s)),
                [("longest_edge", l), ("shortest_edge", s)] => {
                    Ok(ResizeSize::ShortestLongestEdge { shortest: *s, longest: *l })
                }
                [("max_height", h), ("max_width", w)] => {
                    Ok(ResizeSize::MaxHeightWidth { max_height: *h, max_width: *w })
                }
                [("height", h), ("width", w)] => Ok(ResizeSize::Exact { height: *h, width: *w }),
                _ => Err(field_error(
                    FIELD,
                    format!(
                        "unsupported keys {:?}; expected {{shortest_edge}}, {{shortest_edge, longest_edge}}, \
                         {{height, width}} or {{max_height, max_width}}",
                        map.keys().collect::<Vec<_>>()
                    ),
                )),
            }
        }
        _ => Err(field_error(FIELD, format!("expected an integer, a list or an object, got {v}"))),
    }
}

/// `crop_size`: an integer (a square), a `[height, width]` list, or `{"height", "width"}`.
fn parse_crop_size(v: &Value) -> Result<(u32, u32), ConfigError> {
    const FIELD: &str = "crop_size";
    match v {
        Value::Number(_) => {
            let n = positive_int(FIELD, FIELD, v)?;
            Ok((n, n))
        }
        Value::Array(items) => match items.as_slice() {
            [h, w] => Ok((positive_int(FIELD, "height", h)?, positive_int(FIELD, "width", w)?)),
            [n] => {
                let n = positive_int(FIELD, FIELD, n)?;
                Ok((n, n))
            }
            _ => Err(field_error(FIELD, format!("a list must be [height, width], got {v}"))),
        },
        Value::Object(map) => {
            let mut keys = size_keys(FIELD, map)?;
            keys.sort_unstable();
            match keys.as_slice() {
                [("height", h), ("width", w)] => Ok((*h, *w)),
                _ => Err(field_error(
                    FIELD,
                    format!("expected keys {{height, width}}, got {:?}", map.keys().collect::<Vec<_>>()),
                )),
            }
        }
        _ => Err(field_error(FIELD, format!("expected an integer, a list or an object, got {v}"))),
    }
}

/// `image_mean` / `image_std`: three numbers, or one number used for every channel.
fn parse_channels(field: &'static str, v: &Value) -> Result<[f64; 3], ConfigError> {
    let number = |x: &Value| x.as_f64().filter(|f| f.is_finite());
    match v {
        Value::Number(_) => number(v).map(|f| [f; 3]).ok_or_else(|| field_error(field, format!("not a number: {v}"))),
        Value::Array(items) if items.len() == 3 => {
            let mut out = [0.0; 3];
            for (slot, item) in out.iter_mut().zip(items) {
                *slot = number(item).ok_or_else(|| field_error(field, format!("not a number: {item}")))?;
            }
            Ok(out)
        }
        _ => Err(field_error(field, format!("expected three numbers (one per RGB channel), got {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_vit_b32_config() {
        // The preprocessor_config.json shipped with openai/clip-vit-base-patch32 (old integer shorthands).
        let text = r#"{
            "crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
            "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "resample": 3, "size": 224
        }"#;
        let cfg = PreprocessConfig::from_json_str(text).unwrap();
        assert_eq!(cfg, PreprocessConfig::default());
        assert_eq!(cfg.output_size(), (224, 224));
    }

    #[test]
    fn dict_forms_and_defaults() {
        let cfg = PreprocessConfig::from_json_str(
            r#"{"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 320}, "resample": 2,
                "image_mean": 0.5, "image_std": [0.5, 0.5, 0.5], "rescale_factor": null}"#,
        )
        .unwrap();
        assert_eq!(cfg.size, ResizeSize::ShortestEdge(336));
        assert_eq!(cfg.crop_size, (336, 320));
        assert_eq!(cfg.resample, Resample::Bilinear);
        assert_eq!(cfg.image_mean, [0.5; 3]);
        assert_eq!(cfg.rescale_factor, 1.0 / 255.0);
        assert_eq!(cfg.output_size(), (336, 320));

        let cfg =
            PreprocessConfig::from_json_str(r#"{"size": {"height": 224, "width": 256}, "do_center_crop": false}"#)
                .unwrap();
        assert_eq!(cfg.output_size(), (224, 256));
        let cfg = PreprocessConfig::from_json_str(r#"{"size": 200, "default_to_square": true}"#).unwrap();
        assert_eq!(cfg.size, ResizeSize::Exact { height: 200, width: 200 });
    }

    #[test]
    fn errors_name_the_field() {
        let err = PreprocessConfig::from_json_str(r#"{"crop_size": {"shortest_edge": 224}}"#).unwrap_err();
        assert!(err.to_string().contains("`crop_size`"), "{err}");
        let err = PreprocessConfig::from_json_str(r#"{"size": "big"}"#).unwrap_err();
        assert!(err.to_string().contains("`size`"), "{err}");
        let err = PreprocessConfig::from_json_str(r#"{"image_std": [0.5, 0.5]}"#).unwrap_err();
        assert!(err.to_string().contains("`image_std`"), "{err}");
        let err = PreprocessConfig::from_json_str(r#"{"do_resize": "yes"}"#).unwrap_err();
        assert!(err.to_string().contains("`do_resize`"), "{err}");
        let err = PreprocessConfig::from_json_str(r#"{"resample": 7}"#).unwrap_err();
        assert!(err.to_string().contains("`resample`") && err.to_string().contains('7'), "{err}");
        let err = PreprocessConfig::from_json_str(r#"{"do_center_crop": false}"#).unwrap_err();
        assert!(err.to_string().contains("`do_center_crop`"), "{err}");
    }

    #[test]
    fn from_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preprocessor_config.json");
        std::fs::write(&path, r#"{"size": {"shortest_edge": -1}}"#).unwrap();
        let msg = format!("{:#}", PreprocessConfig::from_file(&path).unwrap_err());
        assert!(msg.contains("preprocessor_config.json") && msg.contains("`size`"), "{msg}");
        let missing = format!("{:#}", PreprocessConfig::from_file(&dir.path().join("absent.json")).unwrap_err());
        assert!(missing.contains("absent.json"), "{missing}");
    }

    #[test]
    fn resize_sizes_match_transformers() {
        let cfg = PreprocessConfig::default();
        // int(224 * 512 / 384) = 298; short side exactly 224.
        assert_eq!(cfg.resize_output_size(384, 512), (224, 298));
        assert_eq!(cfg.resize_output_size(512, 384), (298, 224));
        assert_eq!(cfg.resize_output_size(100, 100), (224, 224));
        // int(224 * 1000 / 3) = 74666 (the float quotient is 74666.67).
        assert_eq!(cfg.resize_output_size(3, 1000), (224, 74666));

        let capped = PreprocessConfig {
            size: ResizeSize::ShortestLongestEdge { shortest: 224, longest: 300 },
            ..PreprocessConfig::default()
        };
        // 1000/100*224 > 300: raw = 300*100/1000 = 30 -> (30, 300).
        assert_eq!(capped.resize_output_size(100, 1000), (30, 300));
        assert_eq!(capped.resize_output_size(300, 400), (224, 298));
    }
}
