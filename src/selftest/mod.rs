//! The parity harness of `glov-cuda selftest`: every CUDA kernel, in both variants, then CLIP and random Llama 3
//! and Gemma 3 models end to end, against the CPU reference backend on fresh random inputs at several shapes (sizes that are not
//! multiples of the tiles among them), each matrix judged by its worst row's ||out - ref|| / ||ref|| (`measure`). Run
//! against the CPU backend itself, it checks the harness without a GPU (every error must then be zero).
//!
//! It drives the models and generation, so it sits above them (and above the backends): `subject` is the kernels'
//! operations on host data, by the reference or by one variant of the CUDA kernels; `kernels` the kernel cases of
//! CLIP and scoring; `llm_ops` the LLM's operations through the backend trait; `clip` and `llm` the models (and the
//! LLM's recorded decode step against eager decoding). From the CUDA backend it takes only what that backend makes
//! public: `CudaBackend` and its views (`with_variant`, `with_graphs`), and for single kernels `runtime::Gpu` with
//! the launch wrappers of `ops` and their `Variant`.

pub mod clip;
pub mod kernels;
pub mod llm;
pub mod llm_ops;
pub mod measure;
pub mod subject;

use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::backend::CudaBackend;
use crate::backend::cuda::ops::{GemmTiles, Variant};
use anyhow::{Result, bail};
use measure::Measure;
use std::collections::BTreeSet;
use subject::CudaKernels;

/// One comparison.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseResult {
    pub kernel: &'static str,
    pub subject: String,
    pub shape: String,
    /// The worst row's ||out - ref|| / ||ref|| (for scoring: the largest count difference over the images);
    /// infinite where the output could not be compared.
    pub error: f64,
    pub tolerance: f64,
    pub passed: bool,
    /// Why the output could not be compared with the reference (the case then fails).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The results of one subject, as the cases add them.
struct Cases<'a> {
    label: &'a str,
    results: Vec<CaseResult>,
}

impl Cases<'_> {
    fn push(&mut self, kernel: &'static str, shape: String, measure: Measure, tolerance: f64) {
        let (error, failure) = match measure {
            Ok(error) => (error, None),
            Err(failure) => (f64::INFINITY, Some(failure)),
        };
        // Written so that a NaN error fails.
        let passed = failure.is_none() && error <= tolerance;
        let subject = self.label.to_string();
        self.results.push(CaseResult { kernel, subject, shape, error, tolerance, passed, failure });
    }
}

/// Every case, in the order selftest runs them: the kernel cases (run for each variant), the LLM operations, CLIP,
/// the two models, and the recorded decode step.
pub const CASES: &[&str] = &[
    "linear",
    "layer_norm",
    "l2_normalize",
    "attention",
    "embed_tokens",
    "patch_embed",
    "score",
    "rms_norm",
    "add_rms_norm",
    "add_rms_norm_sum",
    "rms_norm_offset",
    "add_rms_norm_offset",
    "head_rms_norm",
    "silu_mul",
    "gelu_tanh_mul",
    "add_rows",
    "mean_rows",
    "embed",
    "embed_scaled",
    "rope",
    "attention_cached_prefill",
    "attention_cached_decode",
    "attention_window_prefill",
    "attention_window_decode",
    "attention_shared_prefix",
    "attention_shared_prefix_direct",
    "linear_add_rms_norm_sum",
    "linear_add_rms_norm",
    "linear_silu",
    "linear_gelu_tanh",
    "linear_rope_store",
    "linear_rope_store_attention",
    "sample_greedy",
    "sample_top_k",
    "sample_top_k_top_p",
    "sample_full",
    "sample_top_p",
    "sample_top_k_past_vocab",
    "clip_images",
    "clip_texts",
    "clip_top1",
    "llm_logits",
    "llm_top1",
    "llm_greedy_16",
    "llm_steer_all",
    "llm_steer_last",
    "llm_steer_last_clean",
    "gemma_logits",
    "gemma_top1",
    "gemma_greedy_16",
    "gemma_steer_all",
    "gemma_steer_last",
    "gemma_steer_last_clean",
    "decode_recorded_greedy",
    "decode_recorded_sampled",
    "decode_recorded_steered",
];

/// The cases a run computes: every case, or those `--only` names. Cases computed together (the three norms of one
/// call, a model's logits and top-1) run when any of them is chosen; only the chosen ones are reported.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    names: Option<BTreeSet<&'static str>>,
}

impl Selection {
    pub fn all() -> Self {
        Selection { names: None }
    }

    /// The cases of a comma-separated list of names from [`CASES`]; an unknown or empty name is an error.
    pub fn only(list: &str) -> Result<Self> {
        let mut names = BTreeSet::new();
        for name in list.split(',').map(str::trim) {
            match CASES.iter().find(|&&case| case == name) {
                Some(case) => names.insert(*case),
                None if name.is_empty() => bail!("--only {list:?}: an empty case name (names are comma-separated)"),
                None => bail!("--only: no selftest case is named {name:?}; the cases are: {}", CASES.join(", ")),
            };
        }
        Ok(Selection { names: Some(names) })
    }

    /// Whether any of `cases` is chosen (so that the computation they share must run).
    fn wants(&self, cases: &[&str]) -> bool {
        self.names.as_ref().is_none_or(|names| cases.iter().any(|case| names.contains(case)))
    }

    /// The chosen cases of which `results` holds none (those that do not run on the device checked).
    pub fn missing(&self, results: &[CaseResult]) -> Vec<&'static str> {
        let chosen = self.names.iter().flatten();
        chosen.filter(|&&case| !results.iter().any(|r| r.kernel == case)).copied().collect()
    }

    /// The chosen cases among `cases`.
    fn within(&self, cases: &[&'static str]) -> Selection {
        Selection { names: Some(cases.iter().filter(|case| self.wants(&[case])).copied().collect()) }
    }

    fn keep(&self, mut results: Vec<CaseResult>) -> Vec<CaseResult> {
        results.retain(|r| self.wants(&[r.kernel]));
        results
    }
}

/// Inputs drawn from a counter-based generator, fresh for every case; values rounded to bf16 so that the
/// reference sees exactly what the kernels read.
struct Inputs {
    state: u64,
}

impl Inputs {
    /// The generator of the cases named `case`: its own stream for each, so that a case sees the same inputs
    /// whichever other cases run.
    fn for_case(seed: u64, case: &str) -> Self {
        let state = case.bytes().fold(seed, |h, b| crate::sampling::mix64(h ^ u64::from(b)));
        Inputs { state }
    }

    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.state = crate::sampling::mix64(self.state.wrapping_add(0x9E37_79B9_7F4A_7C15));
                let u = (self.state >> 40) as f32 / (1u64 << 24) as f32;
                half::bf16::from_f32((2.0 * u - 1.0) * scale).to_f32()
            })
            .collect()
    }
}

/// The table printed by `selftest`, a case that could not be compared followed by a line saying why.
pub fn table(results: &[CaseResult]) -> String {
    let mut out =
        format!("{:<22} {:<11} {:>11} {:>9}  {:<4} shape\n", "kernel", "subject", "rel. error", "tolerance", "ok");
    for r in results {
        out.push_str(&format!(
            "{:<22} {:<11} {:>11.3e} {:>9.0e}  {:<4} {}\n",
            r.kernel,
            r.subject,
            r.error,
            r.tolerance,
            if r.passed { "yes" } else { "NO" },
            r.shape
        ));
        if let Some(failure) = &r.failure {
            out.push_str(&format!("{:<22} failed: {failure}\n", ""));
        }
    }
    out
}

/// `selftest --device cpu`: the harness against the reference itself: the kernel cases, the LLM operations, CLIP
/// and the LLM.
pub fn run_reference(quick: bool, seed: u64, only: &Selection) -> Result<Vec<CaseResult>> {
    let cpu = CpuBackend::new();
    let mut results = kernels::cases(&cpu, quick, seed, only)?;
    results.extend(llm_ops::cases(&cpu, "cpu", quick, seed, only)?);
    results.extend(clip::cases(&cpu, "cpu", seed, only)?);
    results.extend(llm::model_cases(&cpu, "cpu", quick, seed, only)?);
    Ok(only.keep(results))
}

/// The device half of `selftest`: both variants of every kernel (the LLM operations through the backend trait),
/// then CLIP and the LLM on the backend against the reference.
pub fn run_cuda(backend: &CudaBackend, quick: bool, seed: u64, only: &Selection) -> Result<Vec<CaseResult>> {
    let mut results = Vec::new();
    for variant in [Variant::Plain, Variant::Fast] {
        results.extend(kernels::cases(&CudaKernels { gpu: &backend.gpu, variant }, quick, seed, only)?);
        let view = backend.with_variant(variant);
        results.extend(llm_ops::cases(&view, &format!("cuda {}", view.variant()), quick, seed, only)?);
    }
    results.extend(large_tile_cases(backend, quick, seed, only)?);
    let label = format!("cuda {}", backend.variant());
    results.extend(clip::cases(backend, &label, seed, only)?);
    let eager = backend.with_variant(backend.variant).with_graphs(false);
    results.extend(llm::model_cases(&eager, &label, quick, seed, only)?);
    let recorded = backend.with_variant(backend.variant).with_graphs(true);
    results.extend(llm::recording_cases(&recorded, &eager, &label, quick, seed, only)?);
    Ok(only.keep(results))
}

/// The products once more with their 128 x 128 tiles forced (`cuda fast-128x128`): the cases' shapes are too small
/// for the choice by shape to take them.
fn large_tile_cases(backend: &CudaBackend, quick: bool, seed: u64, only: &Selection) -> Result<Vec<CaseResult>> {
    /// Puts the choice by shape back however the cases end.
    struct ByShape<'a>(&'a crate::backend::cuda::runtime::Gpu);
    impl Drop for ByShape<'_> {
        fn drop(&mut self) {
            self.0.set_gemm_tiles(GemmTiles::Auto);
        }
    }
    let products = only.within(&[
        "linear",
        "linear_add_rms_norm_sum",
        "linear_add_rms_norm",
        "linear_silu",
        "linear_gelu_tanh",
        "linear_rope_store",
        "linear_rope_store_attention",
    ]);
    backend.gpu.set_gemm_tiles(GemmTiles::Large);
    let _by_shape = ByShape(&backend.gpu);
    let kernels = CudaKernels { gpu: &backend.gpu, variant: Variant::Fast };
    let mut results = kernels::cases(&kernels, quick, seed, &products)?;
    let view = backend.with_variant(Variant::Fast);
    results.extend(llm_ops::large_tile_cases(&view, LARGE_TILE_LABEL, quick, seed, &products)?);
    Ok(results)
}

/// The subject of the cases run with the products' 128 x 128 tiles forced.
pub const LARGE_TILE_LABEL: &str = "cuda fast-128x128";

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(measure: Measure, tolerance: f64) -> CaseResult {
        let mut cases = Cases { label: "test", results: Vec::new() };
        cases.push("kernel", "shape".into(), measure, tolerance);
        cases.results.pop().unwrap()
    }

    #[test]
    fn a_case_passes_within_its_tolerance_only() {
        assert!(pushed(Ok(0.01), 0.02).passed);
        assert!(pushed(Ok(0.02), 0.02).passed);
        assert!(!pushed(Ok(0.03), 0.02).passed);
        assert!(!pushed(Ok(f64::INFINITY), 0.02).passed);
    }

    #[test]
    fn the_case_list_is_every_case_the_reference_harness_runs() {
        let results = run_reference(true, 5, &Selection::all()).unwrap();
        let ran: Vec<&str> = results.iter().map(|r| r.kernel).collect();
        let mut listed: Vec<&str> = CASES.iter().copied().filter(|c| !c.starts_with("decode_recorded")).collect();
        let mut first_runs: Vec<&str> = Vec::new();
        for case in ran {
            if !first_runs.contains(&case) {
                first_runs.push(case);
            }
        }
        assert_eq!(first_runs, listed, "CASES must list the cases in the order they first run");
        listed.sort();
        listed.dedup();
        assert_eq!(listed.len(), CASES.len() - 3);
    }

    #[test]
    fn only_computes_and_reports_the_named_cases() {
        let only = Selection::only("l2_normalize, sample_top_p,clip_top1").unwrap();
        let results = run_reference(true, 5, &only).unwrap();
        let ran: BTreeSet<&str> = results.iter().map(|r| r.kernel).collect();
        assert_eq!(ran, BTreeSet::from(["l2_normalize", "sample_top_p", "clip_top1"]));
        assert!(results.iter().all(|r| r.passed && r.error == 0.0), "{results:?}");
        assert!(only.missing(&results).is_empty());
        let recorded = Selection::only("linear,decode_recorded_greedy").unwrap();
        let results = run_reference(true, 5, &recorded).unwrap();
        assert_eq!(recorded.missing(&results), ["decode_recorded_greedy"]);
    }

    #[test]
    fn only_refuses_unknown_and_empty_names() {
        let unknown = Selection::only("linear,lineer").unwrap_err().to_string();
        assert!(unknown.contains("no selftest case is named \"lineer\"") && unknown.contains("rms_norm"), "{unknown}");
        let empty = Selection::only("linear,").unwrap_err().to_string();
        assert!(empty.contains("an empty case name"), "{empty}");
    }

    #[test]
    fn a_nan_error_fails() {
        let r = pushed(Ok(f64::NAN), 0.02);
        assert!(!r.passed);
        assert!(table(&[r]).contains(" NO "));
    }

    #[test]
    fn an_output_that_cannot_be_compared_fails_saying_why() {
        let r = pushed(Err("the output has 3 values, the reference 4".into()), 0.02);
        assert!(!r.passed && r.error == f64::INFINITY, "{r:?}");
        let table = table(&[r]);
        assert!(table.contains("failed: the output has 3 values, the reference 4"), "{table}");
    }
}
