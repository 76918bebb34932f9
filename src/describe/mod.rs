//! Class descriptions written by an LLM, the baselines GLOV is compared with: CuPL (several questions per class,
//! several sampled answers each, every answer one sentence) and DCLIP (one few-shot question per class, its answer's
//! `- ` lines made sentences). Every (class, question) is one prompt whose samples share its prefill; the prompts
//! decode in batches of a bounded number of sequences. An instruction-tuned model is asked through its chat template
//! (the question as the user's message) and stops at its stop tokens; a base model gets the question as plain text.

pub mod prompts;

use crate::backend::Backend;
use crate::generation::generate::{GenerateOptions, Request, Streams, generate};
use crate::generation::sampling::SamplingParams;
use crate::models::llm::LlmModel;
use crate::scoring::descriptions::Descriptions;
use anyhow::{Result, ensure};

/// Whose descriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Style {
    /// CuPL: each question's sampled answers, cut at their first full stop.
    Cupl,
    /// DCLIP: the `- ` lines of the answer to the few-shot question, as "A photo of a {class}, which is/has ...".
    Dclip,
}

/// How descriptions are generated.
#[derive(Clone, Debug)]
pub struct DescribeOptions {
    pub style: Style,
    /// CuPL's questions (`{}`: the class with its article); unused by DCLIP.
    pub questions: Vec<String>,
    /// Answers sampled per question.
    pub samples: usize,
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    pub seed: u64,
    /// Most sequences decoded together.
    pub batch: usize,
}

impl DescribeOptions {
    /// The published settings of a style: CuPL's five ImageNet questions, 10 answers each at temperature 0.99 and
    /// up to 50 tokens; DCLIP's one answer at 0.7 and up to 100 tokens; neither filters sampling.
    pub fn published(style: Style, seed: u64, batch: usize) -> Self {
        let (samples, temperature, max_new_tokens) = match style {
            Style::Cupl => (10, 0.99, 50),
            Style::Dclip => (1, 0.7, 100),
        };
        DescribeOptions {
            style,
            questions: prompts::CUPL_QUESTIONS.iter().map(|q| q.to_string()).collect(),
            samples,
            max_new_tokens,
            sampling: SamplingParams { temperature, top_k: 0, top_p: 1.0, greedy: false },
            seed,
            batch,
        }
    }
}

/// One prompt: the class it describes and its text.
struct Prompt {
    class: usize,
    text: String,
}

fn prompts(classnames: &[String], options: &DescribeOptions) -> Vec<Prompt> {
    let mut out = Vec::new();
    for (class, name) in classnames.iter().enumerate() {
        match options.style {
            Style::Cupl => {
                out.extend(options.questions.iter().map(|q| Prompt { class, text: prompts::cupl_question(q, name) }))
            }
            Style::Dclip => out.push(Prompt { class, text: prompts::dclip_prompt(name) }),
        }
    }
    out
}

/// Descriptions of every class: each answer's sentences under the class's name. A class may end with none (an
/// answer with no text before its full stop, or no `- ` line); `score --descriptions` names such classes.
pub fn describe<B: Backend>(
    backend: &B,
    model: &LlmModel<B>,
    classnames: &[String],
    options: &DescribeOptions,
) -> Result<Descriptions> {
    ensure!(options.samples >= 1 && options.batch >= 1, "samples and batch must be at least 1");
    ensure!(options.style == Style::Dclip || !options.questions.is_empty(), "CuPL needs at least one question");
    let prompts = prompts(classnames, options);
    let per_call = (options.batch / options.samples).max(1);
    let _span = tracing::info_span!("describe", prompts = prompts.len(), samples = options.samples).entered();
    let mut sentences: Vec<Vec<String>> = vec![Vec::new(); classnames.len()];
    let generation = GenerateOptions {
        max_new_tokens: options.max_new_tokens,
        sampling: options.sampling,
        seed: options.seed,
        stop_tokens: model.stop_tokens.clone(),
        steer: None,
        streams: Streams::Batch,
    };
    for (call, chunk) in prompts.chunks(per_call).enumerate() {
        let requests = chunk
            .iter()
            .map(|p| {
                let prompt = match &model.chat {
                    Some(_) => model.chat_prompt(None, &p.text)?,
                    None => model.tokenizer.encode_plain(&p.text)?,
                };
                Ok(Request { prompt, n: options.samples, steer: None })
            })
            .collect::<Result<Vec<_>>>()?;
        // Each call draws from its own seed, so a prompt's answers depend on the seed and the batch size only.
        let call_options = GenerateOptions { seed: options.seed.wrapping_add(call as u64), ..generation.clone() };
        let result = generate(backend, &model.llm, &requests, &call_options)?;
        for sequence in result.sequences {
            let prompt = &chunk[sequence.request];
            let answer = model.tokenizer.decode(&sequence.tokens)?;
            match options.style {
                Style::Cupl => sentences[prompt.class].extend(prompts::cupl_sentence(&answer)),
                Style::Dclip => {
                    sentences[prompt.class].extend(prompts::dclip_sentences(&answer, &classnames[prompt.class]))
                }
            }
        }
        tracing::info!(done = (call * per_call + chunk.len()), of = prompts.len(), "prompts answered");
    }
    Ok(Descriptions(classnames.iter().cloned().zip(sentences).collect()))
}
