//! The kernel cases: every operation of CLIP and scoring (linear layers with their epilogues, layer norm, L2
//! normalisation, attention, token and patch embedding, scoring) on a [`Subject`] against the CPU reference, at
//! several shapes, sizes off the tile grid among them.

use super::measure::{Measure, same_length, worse, worst_row_error};
use super::subject::Subject;
use super::{CaseResult, Cases, Inputs, Selection};
use crate::backend::cpu::CpuBackend;
use crate::backend::{Activation, AttentionShape, TemplateCounts};
use anyhow::Result;

/// bf16 outputs carry a relative rounding of 2^-9 per value; the tolerance leaves room for accumulation order.
const BF16_TOLERANCE: f64 = 2e-2;
/// Sums of f32 products in another order can flip a near tie: scoring allows 1% of the images.
const SCORE_TOLERANCE: f64 = 0.01;

/// Runs the kernel cases `only` chooses against `subject`; `quick` keeps the small shapes only.
pub fn cases(subject: &dyn Subject, quick: bool, seed: u64, only: &Selection) -> Result<Vec<CaseResult>> {
    let label = subject.label();
    let mut cases = Cases { label: &label, results: Vec::new() };
    if only.wants(&["linear"]) {
        linear_cases(subject, &mut cases, quick, seed)?;
    }
    if only.wants(&["layer_norm", "l2_normalize"]) {
        norm_cases(subject, &mut cases, quick, seed)?;
    }
    if only.wants(&["attention"]) {
        attention_cases(subject, &mut cases, quick, seed)?;
    }
    if only.wants(&["embed_tokens"]) {
        embedding_cases(subject, &mut cases, quick, seed)?;
    }
    if only.wants(&["patch_embed"]) {
        patch_cases(subject, &mut cases, quick, seed)?;
    }
    if only.wants(&["score"]) {
        score_cases(subject, &mut cases, quick, seed)?;
    }
    Ok(cases.results)
}

fn linear_cases(subject: &dyn Subject, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    let reference: &dyn Subject = &CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "linear");
    let linear_shapes: &[(usize, usize, usize)] = if quick {
        &[(1, 8, 8), (37, 77, 61), (5, 2048, 64), (70, 96, 130)]
    } else {
        &[(1, 8, 8), (37, 77, 61), (64, 64, 64), (130, 768, 200), (257, 512, 2048), (40, 4096, 200), (3, 2001, 70)]
    };
    for (i, &(m, k, n)) in linear_shapes.iter().enumerate() {
        let act = [Activation::None, Activation::QuickGelu, Activation::Gelu, Activation::GeluTanh][i % 4];
        let (x, w, bias, residual) =
            (inputs.values(m * k, 1.0), inputs.values(n * k, 0.2), inputs.values(n, 0.5), inputs.values(m * n, 1.0));
        let with_extras = i % 2 == 1;
        let (b, r) = if with_extras { (Some(bias.as_slice()), Some(residual.as_slice())) } else { (None, None) };
        let want = reference.linear(&x, m, k, &w, n, b, act, r)?;
        let got = subject.linear(&x, m, k, &w, n, b, act, r)?;
        cases.push(
            "linear",
            format!("{m}x{k} . {n}x{k}^T, {act}{}", if with_extras { " +bias +residual" } else { "" }),
            worst_row_error(&got, &want, n),
            BF16_TOLERANCE,
        );
    }
    Ok(())
}

fn norm_cases(subject: &dyn Subject, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    let reference: &dyn Subject = &CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "layer_norm");
    let norm_shapes: &[(usize, usize)] = if quick { &[(3, 40)] } else { &[(3, 40), (100, 768), (1, 1000)] };
    for &(rows, cols) in norm_shapes {
        let (x, gain, bias) = (inputs.values(rows * cols, 3.0), inputs.values(cols, 1.0), inputs.values(cols, 0.5));
        let want = reference.layer_norm(&x, rows, cols, &gain, &bias, 1e-5)?;
        cases.push(
            "layer_norm",
            format!("{rows}x{cols}"),
            worst_row_error(&subject.layer_norm(&x, rows, cols, &gain, &bias, 1e-5)?, &want, cols),
            BF16_TOLERANCE,
        );
        let want = reference.l2_normalize(&x, rows, cols)?;
        cases.push(
            "l2_normalize",
            format!("{rows}x{cols}"),
            worst_row_error(&subject.l2_normalize(&x, rows, cols)?, &want, cols),
            1e-5,
        );
    }
    Ok(())
}

fn attention_cases(subject: &dyn Subject, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    let reference: &dyn Subject = &CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "attention");
    let attention_shapes: &[AttentionShape] = &[
        AttentionShape { batch: 2, seq: 5, heads: 2, kv_heads: 2, head_dim: 8, causal: true },
        AttentionShape { batch: 1, seq: 50, heads: 4, kv_heads: 2, head_dim: 64, causal: false },
        AttentionShape { batch: 3, seq: 77, heads: 8, kv_heads: 8, head_dim: 64, causal: true },
        AttentionShape { batch: 1, seq: 130, heads: 4, kv_heads: 1, head_dim: 128, causal: true },
    ];
    for shape in &attention_shapes[..if quick { 2 } else { attention_shapes.len() }] {
        let qkv = inputs.values(shape.batch * shape.seq * shape.qkv_width(), 1.0);
        let want = reference.attention(&qkv, *shape, None)?;
        let AttentionShape { batch, seq, heads, kv_heads, head_dim, causal } = *shape;
        let mask = if causal { "causal" } else { "full" };
        cases.push(
            "attention",
            format!("batch {batch}, seq {seq}, heads {heads}/{kv_heads}, dim {head_dim}, {mask}"),
            worst_row_error(&subject.attention(&qkv, *shape, None)?, &want, heads * head_dim),
            BF16_TOLERANCE,
        );
    }
    // A bias of the scores, as MPNet's relative positions add one: large enough to reorder the keys, the same for
    // every sequence of the batch; full (a sentence encoder) and causal, over more than one key tile; a head size
    // of 32 (the tiled kernel) and of 64 (the tensor-core one).
    let biased: &[AttentionShape] = &[
        AttentionShape { batch: 3, seq: 20, heads: 4, kv_heads: 4, head_dim: 32, causal: false },
        AttentionShape { batch: 2, seq: 45, heads: 2, kv_heads: 1, head_dim: 64, causal: true },
    ];
    for shape in biased {
        let qkv = inputs.values(shape.batch * shape.seq * shape.qkv_width(), 1.0);
        let bias = inputs.values(shape.heads * shape.seq * shape.seq, 3.0);
        let want = reference.attention(&qkv, *shape, Some(&bias))?;
        let AttentionShape { batch, seq, heads, kv_heads, head_dim, causal } = *shape;
        let mask = if causal { "causal" } else { "full" };
        cases.push(
            "attention",
            format!("batch {batch}, seq {seq}, heads {heads}/{kv_heads}, dim {head_dim}, {mask}, +bias"),
            worst_row_error(&subject.attention(&qkv, *shape, Some(&bias))?, &want, heads * head_dim),
            BF16_TOLERANCE,
        );
    }
    Ok(())
}

fn embedding_cases(subject: &dyn Subject, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    let reference: &dyn Subject = &CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "embed_tokens");
    let embedding_shapes: &[(usize, usize, usize, usize)] =
        if quick { &[(2, 5, 30, 16)] } else { &[(2, 5, 30, 16), (40, 77, 1000, 512)] };
    for &(batch, seq, vocab, dim) in embedding_shapes {
        let ids: Vec<u32> = inputs
            .values(batch * seq, 1.0)
            .iter()
            .map(|v| ((v + 1.0) * 0.5 * vocab as f32) as u32 % vocab as u32)
            .collect();
        let (table, positions) = (inputs.values(vocab * dim, 1.0), inputs.values(seq * dim, 1.0));
        let want = reference.embed_tokens(&ids, seq, &table, &positions, dim)?;
        let got = subject.embed_tokens(&ids, seq, &table, &positions, dim)?;
        cases.push(
            "embed_tokens",
            format!("{batch}x{seq} ids of {vocab}, dim {dim}"),
            worst_row_error(&got, &want, dim),
            BF16_TOLERANCE,
        );
    }
    Ok(())
}

fn patch_cases(subject: &dyn Subject, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    let reference: &dyn Subject = &CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "patch_embed");
    let patch_shapes: &[(usize, usize, usize, usize)] =
        // 14 px in patches of 4: a grid of 3, the last 2 pixel rows and columns outside every patch (SigLIP's 384 px
        // in patches of 14).
        if quick { &[(2, 12, 4, 24), (2, 14, 4, 24)] } else { &[(2, 12, 4, 24), (2, 14, 4, 24), (5, 224, 32, 768)] };
    for &(batch, size, patch, dim) in patch_shapes {
        let pixels = inputs.values(batch * 3 * size * size, 2.0);
        let w = inputs.values(dim * 3 * patch * patch, 0.05);
        let (class_embedding, positions) =
            (inputs.values(dim, 1.0), inputs.values(((size / patch).pow(2) + 1) * dim, 1.0));
        let want = reference.patch_embed(&pixels, batch, size, patch, &w, &class_embedding, &positions)?;
        let got = subject.patch_embed(&pixels, batch, size, patch, &w, &class_embedding, &positions)?;
        cases.push(
            "patch_embed",
            format!("{batch} images {size}px, patch {patch}, dim {dim}"),
            worst_row_error(&got, &want, dim),
            BF16_TOLERANCE,
        );
    }
    Ok(())
}

fn score_cases(subject: &dyn Subject, cases: &mut Cases, quick: bool, seed: u64) -> Result<()> {
    let reference: &dyn Subject = &CpuBackend::new();
    let mut inputs = Inputs::for_case(seed, "score");
    let score_shapes: &[(usize, usize, usize, usize)] =
        // The wide shape holds an image row of 64 KiB in shared memory: past the 48 KiB a launch gets without opting in.
        if quick { &[(20, 2, 7, 16), (6, 2, 3, 16384)] } else { &[(20, 2, 7, 16), (6, 2, 3, 16384), (1000, 4, 100, 512)] };
    for &(n, templates, classes, dim) in score_shapes {
        let images = reference.l2_normalize(&inputs.values(n * dim, 1.0), n, dim)?;
        let features =
            reference.l2_normalize(&inputs.values(templates * classes * dim, 1.0), templates * classes, dim)?;
        let labels: Vec<u32> =
            inputs.values(n, 1.0).iter().map(|v| ((v + 1.0) * 0.5 * classes as f32) as u32 % classes as u32).collect();
        let want = reference.score(&images, &features, &labels, templates, classes, dim)?;
        let got = subject.score(&images, &features, &labels, templates, classes, dim)?;
        let shape = format!("{n} images x {templates} templates x {classes} classes, dim {dim}");
        cases.push("score", shape, count_error(&got, &want, n), SCORE_TOLERANCE);
    }
    Ok(())
}

/// The largest difference, over the templates, of the top-1 or top-5 count as a share of the `images`.
fn count_error(got: &[TemplateCounts], want: &[TemplateCounts], images: usize) -> Measure {
    same_length("templates", got.len(), want.len())?;
    let differences = got.iter().zip(want).map(|(g, w)| g.top1.abs_diff(w.top1).max(g.top5.abs_diff(w.top5)));
    Ok(differences.map(|d| d as f64 / images as f64).fold(0.0, worse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selftest::table;

    #[test]
    fn the_harness_passes_the_reference_against_itself() {
        let results = cases(&CpuBackend::new(), true, 7, &Selection::all()).unwrap();
        assert!(results.len() >= 7);
        for r in &results {
            assert!(r.passed && r.error == 0.0, "{r:?}");
        }
        assert!(table(&results).lines().count() == results.len() + 1);
    }

    /// The reference with a wrong linear layer (off by 5% of the output's scale), a layer norm with a NaN in one
    /// row, an L2 normalisation one value short, and a score that misses one image: the harness must fail exactly
    /// those cases.
    struct Broken(Box<dyn Subject>);

    impl Subject for Broken {
        fn label(&self) -> String {
            "broken".into()
        }
        fn linear(
            &self,
            x: &[f32],
            m: usize,
            k: usize,
            w: &[f32],
            n: usize,
            bias: Option<&[f32]>,
            act: Activation,
            residual: Option<&[f32]>,
        ) -> Result<Vec<f32>> {
            let y = self.0.linear(x, m, k, w, n, bias, act, residual)?;
            let scale = (y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32).sqrt();
            Ok(y.iter().map(|v| v + 0.05 * scale).collect())
        }
        fn layer_norm(
            &self,
            x: &[f32],
            rows: usize,
            cols: usize,
            gain: &[f32],
            bias: &[f32],
            eps: f32,
        ) -> Result<Vec<f32>> {
            let mut y = self.0.layer_norm(x, rows, cols, gain, bias, eps)?;
            y[(rows / 2) * cols + 1] = f32::NAN;
            Ok(y)
        }
        fn l2_normalize(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>> {
            let mut y = self.0.l2_normalize(x, rows, cols)?;
            y.pop();
            Ok(y)
        }
        fn attention(&self, qkv: &[f32], shape: AttentionShape, bias: Option<&[f32]>) -> Result<Vec<f32>> {
            self.0.attention(qkv, shape, bias)
        }
        fn score(
            &self,
            images: &[f32],
            features: &[f32],
            labels: &[u32],
            templates: usize,
            classes: usize,
            dim: usize,
        ) -> Result<Vec<TemplateCounts>> {
            let mut counts = self.0.score(images, features, labels, templates, classes, dim)?;
            counts[0].top5 -= 1;
            Ok(counts)
        }
        fn embed_tokens(
            &self,
            ids: &[u32],
            seq: usize,
            table: &[f32],
            positions: &[f32],
            dim: usize,
        ) -> Result<Vec<f32>> {
            self.0.embed_tokens(ids, seq, table, positions, dim)
        }
        fn patch_embed(
            &self,
            pixels: &[f32],
            batch: usize,
            size: usize,
            patch: usize,
            w: &[f32],
            class_embedding: &[f32],
            positions: &[f32],
        ) -> Result<Vec<f32>> {
            self.0.patch_embed(pixels, batch, size, patch, w, class_embedding, positions)
        }
    }

    #[test]
    fn the_harness_catches_wrong_kernels() {
        let results = cases(&Broken(Box::new(CpuBackend::new())), true, 9, &Selection::all()).unwrap();
        for r in &results {
            let broken = ["linear", "layer_norm", "l2_normalize", "score"].contains(&r.kernel);
            assert_eq!(r.passed, !broken, "{r:?}");
        }
        let short = results.iter().find(|r| r.kernel == "l2_normalize").unwrap();
        assert_eq!(short.failure.as_deref(), Some("the output has 119 values, the reference 120"));
    }

    fn counts(top1: usize, top5: usize) -> TemplateCounts {
        TemplateCounts { top1, top5, top1_per_class: Vec::new() }
    }

    #[test]
    fn count_errors_are_the_worst_template_and_fail_on_other_lengths() {
        let want = [counts(10, 20), counts(30, 40)];
        assert_eq!(count_error(&[counts(10, 20), counts(28, 41)], &want, 100), Ok(0.02));
        let failure = count_error(&want[..1], &want, 100).unwrap_err();
        assert_eq!(failure, "the output has 1 templates, the reference 2");
    }
}
