//! The meta-prompt: the system and user messages the LLM sees at each step, rendered from a template file.
//!
//! A template file has a `[system]` line and a `[user]` line, each followed by its message (the system message may
//! be empty: no system message is sent). Messages are minijinja templates (Jinja syntax, blocks trimmed) with
//! these variables, any other name being an error:
//! - `dataset_name`, `description`: the dataset's name and one-sentence description;
//! - `best`, `worst`: the in-context examples, each a list of `{template, accuracy}` in ascending order of accuracy
//!   (templates with `<category>` as the slot, accuracies as whole percents). At the first step `worst` is empty
//!   and `best` holds the baseline alone;
//! - `k`: how many examples each list holds (0 at the first step);
//! - `step`, `steps`: the step being prompted (0-based) and the number of steps.
//!
//! The files shipped with the binary are [`DEFAULT`] (CLIP templates) and [`QUESTIONS`] (a VLM's whole questions,
//! where `template` is the question); `--meta-prompt FILE` replaces them.

use anyhow::{Context, Result, bail};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use std::path::Path;

pub const DEFAULT: &str = include_str!("meta_prompt.txt");

/// The meta-prompt of the encoder-decoder path: whole questions for a VLM.
pub const QUESTIONS: &str = include_str!("vlm_meta_prompt.txt");

/// One in-context example.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Example {
    /// The template with `<category>` as the slot.
    pub template: String,
    /// Whole percent.
    pub accuracy: i64,
}

/// Everything a meta-prompt shows.
#[derive(Clone, Debug, Serialize)]
pub struct MetaPromptVars<'a> {
    pub dataset_name: &'a str,
    pub description: &'a str,
    pub best: Vec<Example>,
    pub worst: Vec<Example>,
    pub k: usize,
    pub step: usize,
    pub steps: usize,
}

impl MetaPromptVars<'_> {
    fn to_value(&self) -> Value {
        let list = |examples: &[Example]| -> Value {
            examples
                .iter()
                .map(|e| minijinja::context! { template => e.template.as_str(), accuracy => e.accuracy })
                .collect()
        };
        minijinja::context! {
            dataset_name => self.dataset_name,
            description => self.description,
            best => list(&self.best),
            worst => list(&self.worst),
            k => self.k,
            step => self.step,
            steps => self.steps,
        }
    }
}

/// A rendered meta-prompt.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Messages {
    pub system: Option<String>,
    pub user: String,
}

#[derive(Debug)]
pub struct MetaPrompt {
    env: Environment<'static>,
    has_system: bool,
    /// The template file's text, recorded in the run's configuration.
    source: String,
}

const VARIABLES: [&str; 7] = ["dataset_name", "description", "best", "worst", "k", "step", "steps"];

impl MetaPrompt {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the meta-prompt file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("meta-prompt file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let (system, user) = split_sections(text)?;
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| anyhow::anyhow!("configuring the meta-prompt syntax: {e}"))?,
        );
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template_owned("system", system.clone()).context("in the [system] section")?;
        env.add_template_owned("user", user).context("in the [user] section")?;
        for name in ["system", "user"] {
            let template = env.get_template(name)?;
            for variable in template.undeclared_variables(false) {
                if !VARIABLES.contains(&variable.as_str()) {
                    bail!(
                        "the [{name}] section uses {{{{ {variable} }}}}, which is not a meta-prompt variable (known: {})",
                        VARIABLES.join(", ")
                    );
                }
            }
        }
        Ok(Self { env, has_system: !system.trim().is_empty(), source: text.to_string() })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn render(&self, vars: &MetaPromptVars) -> Result<Messages> {
        let render = |name: &str| -> Result<String> {
            let text =
                self.env.get_template(name)?.render(vars.to_value()).with_context(|| format!("rendering [{name}]"))?;
            Ok(text.trim().to_string())
        };
        let system = if self.has_system { Some(render("system")?) } else { None };
        Ok(Messages { system, user: render("user")? })
    }
}

/// The `[system]` and `[user]` sections, in that order, each exactly once.
fn split_sections(text: &str) -> Result<(String, String)> {
    let mut sections: Vec<(&str, usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match line.trim_end() {
            header @ ("[system]" | "[user]") => sections.push((header, i + 1, String::new())),
            _ => match sections.last_mut() {
                Some((_, _, body)) => {
                    body.push_str(line);
                    body.push('\n');
                }
                None if line.trim().is_empty() => {}
                None => bail!("line {}: text before the first [system] or [user] line", i + 1),
            },
        }
    }
    match sections.as_slice() {
        [("[system]", _, system), ("[user]", _, user)] => Ok((system.clone(), user.clone())),
        [("[user]", _, user)] => Ok((String::new(), user.clone())),
        _ => {
            let found: Vec<String> = sections.iter().map(|(h, line, _)| format!("{h} on line {line}")).collect();
            bail!(
                "a meta-prompt file has a [system] line then a [user] line, each once; found: {}",
                if found.is_empty() { "neither".to_string() } else { found.join(", ") }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(best: Vec<Example>, worst: Vec<Example>) -> MetaPromptVars<'static> {
        let k = worst.len();
        MetaPromptVars { dataset_name: "DTD", description: "Textures.", best, worst, k, step: 3, steps: 100 }
    }

    fn ex(template: &str, accuracy: i64) -> Example {
        Example { template: template.to_string(), accuracy }
    }

    #[test]
    fn sections_and_variables_are_checked() {
        let m = MetaPrompt::parse("[user]\n{{ dataset_name }} at step {{ step }} of {{ steps }}\n").unwrap();
        let out = m.render(&vars(vec![], vec![])).unwrap();
        assert_eq!(out, Messages { system: None, user: "DTD at step 3 of 100".to_string() });
        let err = MetaPrompt::parse("[system]\nx\n[user]\n{{ datset }}\n").unwrap_err().to_string();
        assert!(err.contains("datset") && err.contains("dataset_name"), "{err}");
        let err = MetaPrompt::parse("hello\n[user]\nx\n").unwrap_err().to_string();
        assert!(err.starts_with("line 1"), "{err}");
        let err = MetaPrompt::parse("[user]\na\n[system]\nb\n").unwrap_err().to_string();
        assert!(err.contains("[user] on line 1, [system] on line 3"), "{err}");
        assert!(MetaPrompt::parse("[user]\n{% if %}\n").is_err());
    }

    #[test]
    fn default_renders_the_examples_in_order() {
        let m = MetaPrompt::parse(DEFAULT).unwrap();
        let first = m.render(&vars(vec![ex("a photo of a <category>.", 41)], vec![])).unwrap();
        assert!(first.system.as_deref().unwrap().starts_with("You help find prompt templates"));
        assert!(
            first.user.contains("The template so far and its accuracy:\na photo of a <category>.  (accuracy: 41%)")
        );
        assert!(!first.user.contains("worst"));
        let later = m
            .render(&vars(
                vec![ex("b <category>", 50), ex("c <category>", 60)],
                vec![ex("x <category>", 10), ex("y <category>", 20)],
            ))
            .unwrap();
        let worst = later.user.find("x <category>  (accuracy: 10%)\ny <category>  (accuracy: 20%)").unwrap();
        let best = later.user.find("b <category>  (accuracy: 50%)\nc <category>  (accuracy: 60%)").unwrap();
        assert!(worst < best, "the best examples come last:\n{}", later.user);
        assert!(later.user.contains("The 2 best templates so far"));
        assert!(later.user.ends_with("without numbering, quotes or explanation."));
    }
}
