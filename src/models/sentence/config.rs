//! What a sentence-transformers model directory says about itself: the module list (`modules.json`: a
//! Transformer, a Pooling module, optionally Normalize), the pooling mode (`1_Pooling/config.json`), the longest
//! input (`sentence_bert_config.json`, else `tokenizer_config.json`'s `model_max_length`) and the transformer's own
//! `config.json` (MPNet or BERT). Both layouts are read: sentence-transformers 2's (`pooling_mode_mean_tokens: true`,
//! `sentence_transformers.models.Pooling`, as `all-mpnet-base-v2` ships) and 6's (`pooling_mode: "mean"`,
//! `sentence_transformers.base.modules...`).

use crate::backend::Activation;
use crate::checkpoint::limits;
use crate::checkpoint::read_json;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The largest hidden size, layer count, etc. read from a stranger's config.
const MAX_DIM: usize = 1 << 16;
const MAX_LAYERS: usize = 256;
const MAX_POSITIONS: usize = 1 << 16;
const MAX_VOCAB: usize = 1 << 22;

/// How token embeddings become one sentence embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the sentence's tokens.
    Mean,
    /// The first token's (`[CLS]`, `<s>`).
    Cls,
    /// The largest value of each dimension over the tokens.
    Max,
}

/// The encoder families read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// BERT and its relatives: absolute positions from 0, a token-type embedding (type 0 for one sentence).
    Bert,
    /// MPNet: positions from `pad + 1` (RoBERTa's), relative position buckets added to every layer's attention.
    Mpnet,
}

/// The transformer's `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_positions: usize,
    pub activation: Activation,
    pub layer_norm_eps: f32,
    /// BERT's token-type vocabulary.
    pub type_vocab_size: usize,
    /// MPNet's relative position buckets.
    pub relative_buckets: usize,
    /// MPNet's padding id, from which its positions count (`pad + 1` is the first).
    pub pad_token_id: usize,
}

impl EncoderConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// The first position id of a sentence.
    pub fn first_position(&self) -> usize {
        match self.family {
            Family::Bert => 0,
            Family::Mpnet => self.pad_token_id + 1,
        }
    }

    pub fn from_json(config: &Value, file: &Path) -> Result<Self> {
        let at = |key: &str| format!("{}: {key}", file.display());
        let size = |key: &str, default: Option<usize>, max: usize| -> Result<usize> {
            let value = match config.get(key) {
                None | Some(Value::Null) => default.with_context(|| format!("{} is missing", at(key)))?,
                Some(v) => v
                    .as_u64()
                    .and_then(|v| usize::try_from(v).ok())
                    .with_context(|| format!("{} is not a non-negative integer: {v}", at(key)))?,
            };
            limits::size(&at(key), value, max)
        };
        let model_type = config.get("model_type").and_then(Value::as_str).unwrap_or_default();
        let family = match model_type {
            "mpnet" => Family::Mpnet,
            "bert" => Family::Bert,
            other => bail!(
                "{}: model_type {other:?} is not a sentence encoder glov-cuda reads (mpnet, bert)",
                file.display()
            ),
        };
        let activation = match config.get("hidden_act").and_then(Value::as_str).unwrap_or("gelu") {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => bail!("{}: hidden_act {other:?} is not supported (gelu, gelu_new)", file.display()),
        };
        let eps = config.get("layer_norm_eps").map_or(Some(1e-12), Value::as_f64);
        let layer_norm_eps = match eps {
            Some(e) if e.is_finite() && e > 0.0 => e as f32,
            _ => bail!("{} is not a positive number", at("layer_norm_eps")),
        };
        let parsed = Self {
            family,
            vocab_size: size("vocab_size", None, MAX_VOCAB)?,
            hidden_size: size("hidden_size", None, MAX_DIM)?,
            num_layers: size("num_hidden_layers", None, MAX_LAYERS)?,
            num_heads: size("num_attention_heads", None, MAX_DIM)?,
            intermediate_size: size("intermediate_size", None, MAX_DIM * 4)?,
            max_positions: size("max_position_embeddings", Some(512), MAX_POSITIONS)?,
            activation,
            layer_norm_eps,
            type_vocab_size: if family == Family::Bert { size("type_vocab_size", Some(2), 1 << 10)? } else { 0 },
            relative_buckets: if family == Family::Mpnet {
                size("relative_attention_num_buckets", Some(32), 1 << 10)?
            } else {
                0
            },
            pad_token_id: match family {
                Family::Mpnet => match config.get("pad_token_id") {
                    None | Some(Value::Null) => 1,
                    Some(v) => {
                        v.as_u64().and_then(|v| usize::try_from(v).ok()).filter(|&v| v < MAX_POSITIONS).with_context(
                            || format!("{} is not a small non-negative integer: {v}", at("pad_token_id")),
                        )?
                    }
                },
                Family::Bert => 0,
            },
        };
        ensure!(
            parsed.hidden_size.is_multiple_of(parsed.num_heads),
            "{}: hidden_size {} is not a multiple of num_attention_heads {}",
            file.display(),
            parsed.hidden_size,
            parsed.num_heads
        );
        ensure!(
            parsed.family == Family::Bert || parsed.relative_buckets >= super::encoder::RELATIVE_BUCKETS,
            "{}: relative_attention_num_buckets {} is below the {} buckets MPNet's attention looks up",
            file.display(),
            parsed.relative_buckets,
            super::encoder::RELATIVE_BUCKETS
        );
        ensure!(
            parsed.first_position() < parsed.max_positions,
            "{}: positions start at {}, past max_position_embeddings {}",
            file.display(),
            parsed.first_position(),
            parsed.max_positions
        );
        Ok(parsed)
    }
}

/// The modules of a sentence-transformers directory, as `encode` chains them.
#[derive(Clone, Debug, PartialEq)]
pub struct SentenceConfig {
    /// The folder of the Transformer module (its `config.json`, weights and tokenizer).
    pub transformer_dir: PathBuf,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Tokens per sentence, special tokens included; longer ones are cut (the end token kept).
    pub max_seq_length: usize,
    /// sentence-transformers 2's `do_lower_case`: the text is lower-cased before tokenising.
    pub lower_case: bool,
}

/// A module's kind, from its `type` (`sentence_transformers.models.Pooling`,
/// `sentence_transformers.base.modules.pooling.Pooling`, ...): the last component.
fn module_kind(kind: &str) -> &str {
    kind.rsplit('.').next().unwrap_or(kind)
}

/// A module's folder inside `dir`: a relative path that stays inside it.
fn module_dir(dir: &Path, path: &str, file: &Path) -> Result<PathBuf> {
    let relative = Path::new(path);
    let inside = relative.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    ensure!(inside, "{}: module path {path:?} leaves the model directory", file.display());
    Ok(dir.join(relative))
}

fn flag(config: &Value, key: &str) -> bool {
    config.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn read_pooling(dir: &Path) -> Result<Pooling> {
    let file = dir.join("config.json");
    let config = read_json(&file)?;
    if let Some(mode) = config.get("pooling_mode") {
        return match mode.as_str() {
            Some("mean") => Ok(Pooling::Mean),
            Some("cls") => Ok(Pooling::Cls),
            Some("max") => Ok(Pooling::Max),
            _ => bail!("{}: pooling_mode {mode} is not supported (mean, cls, max)", file.display()),
        };
    }
    let modes = [
        ("pooling_mode_mean_tokens", Some(Pooling::Mean)),
        ("pooling_mode_cls_token", Some(Pooling::Cls)),
        ("pooling_mode_max_tokens", Some(Pooling::Max)),
        ("pooling_mode_mean_sqrt_len_tokens", None),
        ("pooling_mode_weightedmean_tokens", None),
        ("pooling_mode_lasttoken", None),
    ];
    let on: Vec<(&str, Option<Pooling>)> = modes.into_iter().filter(|(key, _)| flag(&config, key)).collect();
    match on.as_slice() {
        [(_, Some(pooling))] => Ok(*pooling),
        [(key, None)] => bail!("{}: {key} is not supported (mean, cls and max pooling are)", file.display()),
        [] => bail!("{}: no pooling_mode_* is true", file.display()),
        several => {
            let keys: Vec<&str> = several.iter().map(|(k, _)| *k).collect();
            bail!("{}: {} are all true; one pooling mode is supported at a time", file.display(), keys.join(", "))
        }
    }
}

/// The longest input: `sentence_bert_config.json`'s `max_seq_length`, else the tokenizer's `model_max_length`,
/// within what the positions allow.
fn max_seq_length(dir: &Path, encoder: &EncoderConfig) -> Result<(usize, bool)> {
    let positions = encoder.max_positions - encoder.first_position();
    let st = dir.join("sentence_bert_config.json");
    let (mut length, mut lower_case) = (None, false);
    if st.exists() {
        let config = read_json(&st)?;
        if let Some(v) = config.get("max_seq_length").filter(|v| !v.is_null()) {
            let v = v.as_u64().with_context(|| format!("{}: max_seq_length is not an integer: {v}", st.display()))?;
            length = Some(v);
        }
        lower_case = flag(&config, "do_lower_case");
    }
    if length.is_none() {
        let tokenizer = dir.join("tokenizer_config.json");
        if tokenizer.exists() {
            length = read_json(&tokenizer)?.get("model_max_length").and_then(Value::as_u64);
        }
    }
    let length = length.map_or(positions, |l| usize::try_from(l).unwrap_or(usize::MAX).min(positions));
    ensure!(length >= 2, "{}: a sentence of at most {length} tokens cannot hold its special tokens", dir.display());
    Ok((length, lower_case))
}

impl SentenceConfig {
    /// Reads the modules of the directory `dir` (one with `modules.json`; a bare transformer folder is read as
    /// sentence-transformers reads one without it: mean pooling, no normalisation).
    pub fn read(dir: &Path) -> Result<(Self, EncoderConfig)> {
        let modules_file = dir.join("modules.json");
        let (mut transformer_dir, mut pooling, mut normalize) = (None, None, false);
        if modules_file.exists() {
            let modules = read_json(&modules_file)?;
            let list = modules.as_array().with_context(|| format!("{} is not a list", modules_file.display()))?;
            for (i, module) in list.iter().enumerate() {
                let kind = module.get("type").and_then(Value::as_str).unwrap_or_default();
                let path = module.get("path").and_then(Value::as_str).unwrap_or_default();
                let folder = module_dir(dir, path, &modules_file)?;
                match module_kind(kind) {
                    "Transformer" if transformer_dir.is_none() && i == 0 => transformer_dir = Some(folder),
                    "Pooling" if transformer_dir.is_some() && pooling.is_none() => {
                        pooling = Some(read_pooling(&folder)?)
                    }
                    "Normalize" if pooling.is_some() && !normalize => normalize = true,
                    _ => bail!(
                        "{}: module {i} ({kind:?}) is not one glov-cuda runs: it reads a Transformer, then a Pooling \
                         module, then optionally Normalize",
                        modules_file.display()
                    ),
                }
            }
        }
        let transformer_dir = transformer_dir.unwrap_or_else(|| dir.to_path_buf());
        let pooling = match pooling {
            Some(p) => p,
            None if !modules_file.exists() => Pooling::Mean,
            None => bail!("{}: no Pooling module after the Transformer", modules_file.display()),
        };
        let config_file = transformer_dir.join("config.json");
        let encoder = EncoderConfig::from_json(&read_json(&config_file)?, &config_file)?;
        let (max_seq_length, lower_case) = max_seq_length(&transformer_dir, &encoder)?;
        Ok((Self { transformer_dir, pooling, normalize, max_seq_length, lower_case }, encoder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const BERT: &str = r#"{"model_type": "bert", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 40}"#;

    #[test]
    fn both_layouts_and_their_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "config.json", BERT);
        // No modules.json: a bare transformer, mean pooled; the length from the tokenizer's config.
        write(d, "tokenizer_config.json", r#"{"model_max_length": 1000000000000000019884624838656}"#);
        let (config, encoder) = SentenceConfig::read(d).unwrap();
        assert_eq!((config.pooling, config.normalize, config.max_seq_length), (Pooling::Mean, false, 40));
        assert_eq!((encoder.family, encoder.head_dim()), (Family::Bert, 4));
        let modules = r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]"#;
        write(d, "modules.json", modules);
        write(d, "1_Pooling/config.json", r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#);
        write(d, "sentence_bert_config.json", r#"{"max_seq_length": 16, "do_lower_case": true}"#);
        let (config, _) = SentenceConfig::read(d).unwrap();
        assert_eq!(
            (config.pooling, config.normalize, config.max_seq_length, config.lower_case),
            (Pooling::Cls, true, 16, true)
        );
        let error = |d: &Path| format!("{:#}", SentenceConfig::read(d).unwrap_err());
        write(d, "1_Pooling/config.json", r#"{"pooling_mode_cls_token": true, "pooling_mode_max_tokens": true}"#);
        assert!(error(d).contains("pooling_mode_cls_token, pooling_mode_max_tokens are all true"), "{}", error(d));
        write(d, "1_Pooling/config.json", r#"{"pooling_mode_mean_sqrt_len_tokens": true}"#);
        assert!(error(d).contains("pooling_mode_mean_sqrt_len_tokens is not supported"), "{}", error(d));
        write(d, "1_Pooling/config.json", r#"{"pooling_mode": "weightedmean"}"#);
        assert!(error(d).contains("pooling_mode \"weightedmean\" is not supported"), "{}", error(d));
        write(d, "1_Pooling/config.json", r#"{"pooling_mode": "max"}"#);
        assert_eq!(SentenceConfig::read(d).unwrap().0.pooling, Pooling::Max);
        let escaping = modules.replace("\"1_Pooling\"", "\"../1_Pooling\"");
        write(d, "modules.json", &escaping);
        assert!(error(d).contains("module path \"../1_Pooling\" leaves the model directory"), "{}", error(d));
        write(d, "modules.json", &modules.replace("models.Pooling", "models.Dense"));
        assert!(error(d).contains("module 1 (\"sentence_transformers.models.Dense\") is not one"), "{}", error(d));
        write(d, "modules.json", modules);
        write(d, "config.json", &BERT.replace("\"bert\"", "\"roberta\""));
        assert!(error(d).contains("model_type \"roberta\" is not a sentence encoder"), "{}", error(d));
        write(d, "config.json", &BERT.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3"));
        assert!(error(d).contains("hidden_size 8 is not a multiple of num_attention_heads 3"), "{}", error(d));
        write(d, "config.json", &BERT.replace("\"hidden_size\": 8", "\"hidden_size\": -8"));
        assert!(error(d).contains("hidden_size is not a non-negative integer"), "{}", error(d));
    }

    #[test]
    fn mpnet_positions_start_after_the_padding_id() {
        let config: Value = serde_json::from_str(
            r#"{"model_type": "mpnet", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 514,
                "pad_token_id": 1}"#,
        )
        .unwrap();
        let encoder = EncoderConfig::from_json(&config, Path::new("config.json")).unwrap();
        assert_eq!((encoder.first_position(), encoder.relative_buckets), (2, 32));
    }
}
