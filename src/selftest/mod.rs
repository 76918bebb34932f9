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
use crate::backend::cuda::ops::Variant;
use anyhow::Result;
use measure::Measure;
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

/// Inputs drawn from a counter-based generator, fresh for every case; values rounded to bf16 so that the
/// reference sees exactly what the kernels read.
struct Inputs {
    state: u64,
}

impl Inputs {
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
pub fn run_reference(quick: bool, seed: u64) -> Result<Vec<CaseResult>> {
    let cpu = CpuBackend::new();
    let mut results = kernels::cases(&cpu, quick, seed)?;
    results.extend(llm_ops::cases(&cpu, "cpu", quick, seed)?);
    results.extend(clip::cases(&cpu, "cpu", seed)?);
    results.extend(llm::model_cases(&cpu, "cpu", quick, seed)?);
    Ok(results)
}

/// The device half of `selftest`: both variants of every kernel (the LLM operations through the backend trait),
/// then CLIP and the LLM on the backend against the reference.
pub fn run_cuda(backend: &CudaBackend, quick: bool, seed: u64) -> Result<Vec<CaseResult>> {
    let mut results = Vec::new();
    for variant in [Variant::Plain, Variant::Fast] {
        results.extend(kernels::cases(&CudaKernels { gpu: &backend.gpu, variant }, quick, seed)?);
        let view = backend.with_variant(variant);
        results.extend(llm_ops::cases(&view, &format!("cuda {}", view.variant()), quick, seed)?);
    }
    let label = format!("cuda {}", backend.variant());
    results.extend(clip::cases(backend, &label, seed)?);
    results.extend(llm::model_cases(&backend.with_variant(backend.variant).with_graphs(false), &label, quick, seed)?);
    let recorded = backend.with_variant(backend.variant).with_graphs(true);
    let eager = backend.with_variant(backend.variant).with_graphs(false);
    results.extend(llm::recording_cases(&recorded, &eager, &label, quick, seed)?);
    Ok(results)
}

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
