//! `glov-cuda generate`: sample continuations of one prompt, optionally steered.

use super::steering_args::SteerArgs;
use crate::backend::Backend;
use crate::generation::generate::{GenerateOptions, Request, Streams, generate};
use crate::generation::sampling::SamplingParams;
use crate::generation::steering::SteerConfig;
use crate::glov::settings::parse_finite;
use crate::models::llm::LlmModel;
use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TextFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// LLM directory, GGUF file, or org/name in the HF cache.
    #[arg(long, value_name = "MODEL")]
    llm: String,
    /// A plain-text prompt (no chat template; the tokenizer's own BOS is added).
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["system", "user"])]
    prompt: Option<String>,
    /// A system message, rendered with the model's chat template.
    #[arg(long, value_name = "TEXT", requires = "user")]
    system: Option<String>,
    /// A user message, rendered with the model's chat template (with the assistant's generation prompt).
    #[arg(long, value_name = "TEXT")]
    user: Option<String>,
    /// Number of sequences, sharing the prompt's prefill.
    #[arg(short = 'n', long = "num-sequences", default_value_t = 1, value_name = "N")]
    n: usize,
    /// Most tokens generated per sequence (a stop token ends a sequence earlier).
    #[arg(long, default_value_t = 50, value_name = "T")]
    max_new_tokens: usize,
    /// Softmax temperature of sampling; 0 is greedy decoding, as --greedy (as in vLLM and llama.cpp). The sampling
    /// defaults are transformers' generate() defaults (temperature 1, top-k 50, top-p 1); optimize uses GLOV's
    /// (top-p 0.9).
    #[arg(long, default_value_t = 1.0, value_parser = parse_finite)]
    temperature: f32,
    /// Keep the k most likely tokens (0: off).
    #[arg(long, default_value_t = 50)]
    top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: off).
    #[arg(long, default_value_t = 1.0, value_parser = parse_finite)]
    top_p: f32,
    /// Seed: a sequence's tokens depend only on the seed and its index.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Take the most likely token at every step (as --temperature 0).
    #[arg(long)]
    greedy: bool,
    #[command(flatten)]
    steer: SteerArgs,
    /// Output: text (each sequence decoded), or json (token ids, text and finish reason of each sequence).
    #[arg(long, value_enum, default_value = "text")]
    format: TextFormat,
}

pub fn run<B: Backend>(backend: &B, args: GenerateArgs) -> Result<()> {
    let model = LlmModel::open(backend, &args.llm)?;
    let prompt = match (&args.prompt, &args.user) {
        (Some(p), _) => model.tokenizer.encode_plain(p)?,
        (None, Some(user)) => model.chat_prompt(args.system.as_deref(), user)?,
        (None, None) => bail!("give --prompt TEXT, or --user TEXT (with an optional --system TEXT)"),
    };
    if args.n == 0 {
        bail!("--num-sequences must be at least 1");
    }
    let steer = args.steer.load()?;
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            greedy: args.greedy,
        },
        seed: args.seed,
        stop_tokens: model.stop_tokens.clone(),
        steer: steer.as_ref().map(|(_, layer)| SteerConfig {
            layer: *layer,
            mode: args.steer.steer_mode,
            cache: args.steer.steer_cache,
        }),
        streams: Streams::Batch,
    };
    let request = Request { prompt: prompt.clone(), n: args.n, steer: steer.map(|(v, _)| v) };
    let result = generate(backend, &model.llm, &[request], &options)?;
    match args.format {
        TextFormat::Text => {
            for s in &result.sequences {
                if result.sequences.len() > 1 {
                    println!("--- sequence {} ({} tokens, {})", s.index, s.tokens.len(), s.finish);
                }
                println!("{}", model.tokenizer.decode(&s.tokens)?);
            }
        }
        TextFormat::Json => {
            let sequences = result
                .sequences
                .iter()
                .map(|s| Ok(json!({"index": s.index, "text": model.tokenizer.decode(&s.tokens)?, "token_ids": s.tokens, "finish_reason": s.finish})))
                .collect::<Result<Vec<_>>>()?;
            let out =
                json!({"prompt_token_ids": prompt, "sequences": sequences, "kv_cache_bytes": result.kv_cache_bytes});
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}
