//! GLOV: an LLM proposes prompt templates for CLIP, CLIP scores them, the scored history goes back into the LLM's
//! prompt, and an offset vector in the LLM's residual stream steers it from worse templates towards better ones.

pub mod answer;
pub mod baselines;
pub mod datasets;
pub mod engine;
pub mod history;
pub mod meta_prompt;
pub mod method;
pub mod optimizer;
pub mod plot;
pub mod report;
pub mod run_dir;
pub mod settings;
pub mod vlm_judge;
