//! The optimiser a run uses: GLOV, or LLM-OPT (Liu et al., "Language Models as Black-Box Optimizers for
//! Vision-Language Models", CVPR 2024), the method GLOV extends. They differ only in the meta-prompt and in
//! guidance: LLM-OPT's meta-prompt is its published one (`llm_opt_meta_prompt.txt`: a list of good and a list of bad
//! templates, without accuracies or a dataset description, answers as `- ` lines of under 15 words) and it has no
//! steering (alpha 0 only). Everything else (the LLM, samples per step, steps, scoring, ensembles, the baseline it
//! starts from) is GLOV's, so that a comparison measures the method. The published code starts from 80 LAION-COCO
//! captions, asks GPT-3.5 for one template per call for 10 steps and shows the best and worst 3: here the start is
//! GLOV's baseline template, each of a step's samples is one such call, and `top-bottom` defaults to 3.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// LLM-OPT's published meta-prompt, in the meta-prompt file format.
pub const LLM_OPT_META_PROMPT: &str = include_str!("llm_opt_meta_prompt.txt");

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// GLOV: accuracies in the meta-prompt, guidance by the offset vector.
    #[default]
    Glov,
    /// LLM-OPT: good and bad templates without accuracies, no guidance.
    LlmOpt,
}

impl Method {
    /// The meta-prompt used when no `meta-prompt` file is given.
    pub fn default_meta_prompt(self) -> &'static str {
        match self {
            Method::Glov => super::meta_prompt::DEFAULT,
            Method::LlmOpt => LLM_OPT_META_PROMPT,
        }
    }

    /// The defaults that differ from GLOV's, as settings keys and JSON values.
    pub fn defaults(self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            Method::Glov => Vec::new(),
            Method::LlmOpt => vec![("alphas", serde_json::json!([0.0])), ("top-bottom", serde_json::json!(3))],
        }
    }

    /// Settings the method cannot run with.
    pub fn check(self, alphas: &[f32]) -> Result<()> {
        if self == Method::LlmOpt && alphas.iter().any(|&a| a != 0.0) {
            bail!("method llm-opt has no guidance: alphas must be 0 (its default), not {alphas:?}");
        }
        Ok(())
    }

    /// The method's name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Method::Glov => "GLOV",
            Method::LlmOpt => "LLM-OPT",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Glov => "glov",
            Method::LlmOpt => "llm-opt",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glov::meta_prompt::{Example, MetaPrompt, MetaPromptVars};

    #[test]
    fn llm_opts_meta_prompt_lists_good_and_bad_templates_without_accuracies() {
        let meta = MetaPrompt::parse(LLM_OPT_META_PROMPT).unwrap();
        let example = |template: &str, accuracy| Example { template: template.into(), accuracy };
        let vars = MetaPromptVars {
            dataset_name: "EuroSAT",
            description: "Satellite images.",
            best: vec![example("a photo of a <category>.", 40), example("itap of a <category>.", 55)],
            worst: vec![example("<category>", 10), example("a <category> drawing.", 20)],
            k: 2,
            step: 3,
            steps: 10,
        };
        let messages = meta.render(&vars).unwrap();
        assert_eq!(messages.system, None);
        let user = messages.user;
        assert!(user.starts_with("Hi ChatGPT, I have two lists of templates"), "{user}");
        assert!(
            user.contains("Here is the list of good templates:\na photo of a {}.\nitap of a {}.\n\nHere is the list of bad templates: \n{}\na {} drawing.\n\n"),
            "{user}"
        );
        // The rendered message is trimmed: the published text's trailing spaces go.
        assert!(user.ends_with("- Only the template should start with '- ' in a separate line."), "{user:?}");
        assert!(!user.contains("40") && !user.contains("EuroSAT") && !user.contains("Satellite"), "{user}");
    }

    #[test]
    fn llm_opt_runs_without_guidance_only() {
        assert!(Method::LlmOpt.check(&[0.0]).is_ok());
        let err = Method::LlmOpt.check(&[1.0, 0.0]).unwrap_err().to_string();
        assert!(err.contains("no guidance") && err.contains("[1.0, 0.0]"), "{err}");
        assert!(Method::Glov.check(&[1.0, 0.0]).is_ok());
    }
}
