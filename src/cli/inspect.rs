//! `glov-cuda inspect`: what a model directory or GGUF file holds.

use super::generate::TextFormat;
use crate::checkpoint::Checkpoint;
use crate::checkpoint::gguf::GgufFile;
use crate::models::clip::ClipConfig;
use crate::models::llava::config::LlavaConfig;
use crate::models::llm::LlmConfig;
use crate::models::sentence::config::SentenceConfig;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct InspectArgs {
    /// Model directory, GGUF file, or org/name in the HF cache (or give it as --model).
    #[arg(value_name = "MODEL", required_unless_present = "model_flag", conflicts_with = "model_flag")]
    model: Option<String>,
    /// The model, as other commands name theirs.
    #[arg(long = "model", value_name = "MODEL", id = "model_flag")]
    model_flag: Option<String>,
    /// Output: text, or json.
    #[arg(long, value_enum, default_value = "text")]
    format: TextFormat,
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A size in bytes, in the largest binary unit that keeps it at 1 or more.
pub(super) fn human_bytes(bytes: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} bytes") } else { format!("{value:.1} {}", units[unit]) }
}

pub fn run(args: InspectArgs) -> Result<()> {
    let model = args.model.or(args.model_flag).expect("clap requires one of them");
    let json = matches!(args.format, TextFormat::Json);
    if crate::checkpoint::is_gguf(std::path::Path::new(&model)) {
        return super::inspect_gguf::run(&GgufFile::open(std::path::Path::new(&model))?, json);
    }
    let checkpoint = Checkpoint::open(&model)?;
    let config = &checkpoint.config;
    let architectures: Vec<String> = config
        .get("architectures")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let model_type = config.get("model_type").and_then(|v| v.as_str()).unwrap_or("unknown").to_string();
    // Saturating: tensors of a hostile file may share their data.
    let parameters = checkpoint.weights.tensors().iter().fold(0u64, |sum, t| sum.saturating_add(t.numel() as u64));
    let dtypes = checkpoint.weights.dtype_counts();
    let mut files: Vec<(String, u64)> = std::fs::read_dir(&checkpoint.dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), file_size(&e.path())))
        .collect();
    files.sort();
    let clip = ClipConfig::from_json(config).ok();
    let llm = LlmConfig::from_json(config).ok();
    // A sentence encoder: its modules are read (and their errors shown) where the folder says it is one.
    let sentence_dir = checkpoint.dir.join("modules.json").exists() || matches!(model_type.as_str(), "mpnet" | "bert");
    let sentence = if sentence_dir { Some(SentenceConfig::read(&checkpoint.dir)?) } else { None };
    let llava = if model_type == "llava_onevision" { Some(LlavaConfig::from_json(config)?) } else { None };
    let llava_sizes = llava.as_ref().map(|c| {
        let t = &c.vision.tower;
        serde_json::json!({
            "vision": {"hidden": t.hidden_size, "intermediate": t.intermediate_size, "heads": t.num_heads,
                       "layers": t.num_layers, "image_size": c.vision.image_size, "patch_size": c.vision.patch_size,
                       "activation": t.activation.to_string()},
            "feature_layers": c.feature_layers, "drop_first_token": c.drop_first_token,
            "text_hidden": c.text_hidden, "grid_pinpoints": c.pinpoints, "max_tiles": c.max_tiles,
            "image_token": c.image_token,
        })
    });
    let sentence_sizes = sentence.as_ref().map(|(s, e)| {
        serde_json::json!({
            "family": format!("{:?}", e.family).to_lowercase(), "hidden": e.hidden_size,
            "intermediate": e.intermediate_size, "layers": e.num_layers, "heads": e.num_heads, "vocab": e.vocab_size,
            "positions": e.max_positions, "activation": e.activation.to_string(),
            "pooling": format!("{:?}", s.pooling).to_lowercase(), "normalize": s.normalize,
            "max_seq_length": s.max_seq_length, "lower_case": s.lower_case,
        })
    });
    let llm_sizes = llm.as_ref().map(|c| {
        serde_json::json!({
            "hidden": c.hidden_size, "intermediate": c.intermediate_size, "layers": c.num_layers, "heads": c.num_heads,
            "kv_heads": c.num_kv_heads, "head_dim": c.head_dim, "vocab": c.vocab_size, "context": c.max_positions,
            "rope_theta": c.rope_theta, "rope_scaling": c.rope_scaling.to_string(), "tied_embeddings": c.tie_word_embeddings,
            "qkv_bias": c.qkv_bias,
        })
    });
    let sizes = clip.as_ref().map(|c| {
        serde_json::json!({
            "projection_dim": c.projection_dim,
            "text": {"hidden": c.text.tower.hidden_size, "intermediate": c.text.tower.intermediate_size, "heads": c.text.tower.num_heads,
                     "layers": c.text.tower.num_layers, "vocab": c.text.vocab_size, "context": c.text.max_positions,
                     "activation": c.text.tower.activation.to_string(), "eos_token_id": c.text.eos_token_id},
            "vision": {"hidden": c.vision.tower.hidden_size, "intermediate": c.vision.tower.intermediate_size, "heads": c.vision.tower.num_heads,
                       "layers": c.vision.tower.num_layers, "image_size": c.vision.image_size, "patch_size": c.vision.patch_size,
                       "activation": c.vision.tower.activation.to_string()},
        })
    });
    if json {
        let out = serde_json::json!({
            "dir": checkpoint.dir.display().to_string(),
            "model_type": model_type,
            "architectures": architectures,
            "parameters": parameters,
            "dtypes": dtypes,
            "sizes": sizes.or(llm_sizes).or(sentence_sizes).or(llava_sizes),
            "files": files.iter().map(|(n, s)| serde_json::json!({"name": n, "bytes": s})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("model:         {}", checkpoint.dir.display());
    println!("architecture:  {} ({})", architectures.join(", "), model_type);
    println!("parameters:    {} ({:.1} M)", parameters, parameters as f64 / 1e6);
    let dtype_text: Vec<String> = dtypes.iter().map(|(d, n)| format!("{d}: {n}")).collect();
    println!("dtypes:        {}", dtype_text.join(", "));
    if let Some(c) = &clip {
        let t = &c.text.tower;
        let v = &c.vision.tower;
        println!(
            "text tower:    {} layers, width {}, {} heads, MLP {} ({}), vocab {}, context {} tokens",
            t.num_layers,
            t.hidden_size,
            t.num_heads,
            t.intermediate_size,
            t.activation,
            c.text.vocab_size,
            c.text.max_positions
        );
        println!(
            "vision tower:  {} layers, width {}, {} heads, MLP {} ({}), {}px images in {}px patches",
            v.num_layers,
            v.hidden_size,
            v.num_heads,
            v.intermediate_size,
            v.activation,
            c.vision.image_size,
            c.vision.patch_size
        );
        println!("projection:    {}", c.projection_dim);
    }
    if let Some(c) = &llm {
        println!(
            "decoder:       {} blocks, width {}, {} heads / {} key-value heads of {}, MLP {}, vocab {}, context {} \
             tokens",
            c.num_layers,
            c.hidden_size,
            c.num_heads,
            c.num_kv_heads,
            c.head_dim,
            c.intermediate_size,
            c.vocab_size,
            c.max_positions
        );
        println!(
            "rope:          theta {}, {}; tied embeddings: {}; qkv bias: {}",
            c.rope_theta,
            c.rope_scaling,
            yes_no(c.tie_word_embeddings),
            yes_no(c.qkv_bias)
        );
    }
    if let Some(c) = &llava {
        let t = &c.vision.tower;
        println!(
            "vision tower:  SigLIP, {} layers, width {}, {} heads, MLP {} ({}), {}px tiles in {}px patches; features \
             of hidden state(s) {:?}{}",
            t.num_layers,
            t.hidden_size,
            t.num_heads,
            t.intermediate_size,
            t.activation,
            c.vision.image_size,
            c.vision.patch_size,
            c.feature_layers,
            if c.drop_first_token { ", first token dropped" } else { "" }
        );
        println!(
            "anyres:        {} grid resolutions up to {:?}, at most about {} tiles' worth of features; image token {}",
            c.pinpoints.len(),
            c.pinpoints.iter().max_by_key(|(h, w)| h * w).copied().unwrap_or_default(),
            c.max_tiles,
            c.image_token
        );
        println!("language:      width {} (text_config)", c.text_hidden);
    }
    if let Some((s, e)) = &sentence {
        println!(
            "encoder:       {:?}, {} layers, width {}, {} heads, MLP {} ({}), vocab {}, {} positions",
            e.family,
            e.num_layers,
            e.hidden_size,
            e.num_heads,
            e.intermediate_size,
            e.activation,
            e.vocab_size,
            e.max_positions
        );
        println!(
            "sentences:     {:?} pooling, normalised: {}, at most {} tokens{}",
            s.pooling,
            yes_no(s.normalize),
            s.max_seq_length,
            if s.lower_case { ", lower-cased" } else { "" }
        );
    }
    println!("files:");
    for (name, size) in &files {
        println!("  {name:<40} {:>12}", human_bytes(*size));
    }
    Ok(())
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}
