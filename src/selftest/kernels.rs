//! The kernel parity harness: every kernel, in both variants, against the CPU reference backend on fresh random
//! inputs at several shapes (sizes that are not multiples of the tiles among them), compared by
//! ||out - ref|| / ||ref||. The implementation under test is a [`Subject`]: the CUDA kernels, or the CPU backend
//! itself, which checks the harness without a GPU (every error must then be zero).

use super::backend::CudaBackend;
use super::ops::{self, DTensor, Variant};
use super::runtime::Gpu;
use crate::backend::cpu::CpuBackend;
use crate::backend::{Activation, AttentionShape, Backend, TemplateCounts};
use crate::checkpoint::{DType, StoredTensor};
use crate::models::clip::{Clip, random_weights, shape_config};
use crate::tokenizer::openai_clip_tokenizer;
use anyhow::Result;

/// An implementation of the kernels' operations on host inputs and outputs.
pub trait Subject {
    fn label(&self) -> String;
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<Vec<f32>>;
    fn layer_norm(&self, x: &[f32], rows: usize, cols: usize, gain: &[f32], bias: &[f32], eps: f32)
    -> Result<Vec<f32>>;
    fn l2_normalize(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>>;
    fn attention(&self, qkv: &[f32], shape: AttentionShape) -> Result<Vec<f32>>;
    fn score(
        &self,
        images: &[f32],
        features: &[f32],
        labels: &[u32],
        templates: usize,
        classes: usize,
        dim: usize,
    ) -> Result<Vec<TemplateCounts>>;
    /// Token rows plus position rows of a `[ids.len() / seq, seq]` grid; tables are `[_, dim]`.
    fn embed_tokens(&self, ids: &[u32], seq: usize, table: &[f32], positions: &[f32], dim: usize) -> Result<Vec<f32>>;
    /// The ViT input of `pixels` (`[batch, 3 * size * size]`) with a projection `[dim, 3 * patch * patch]`.
    #[allow(clippy::too_many_arguments)]
    fn patch_embed(
        &self,
        pixels: &[f32],
        batch: usize,
        size: usize,
        patch: usize,
        weight: &[f32],
        class_embedding: &[f32],
        positions: &[f32],
    ) -> Result<Vec<f32>>;
}

fn weight(values: &[f32], shape: &[usize]) -> StoredTensor {
    StoredTensor::from_f32("selftest", shape, values)
}

impl Subject for CpuBackend {
    fn label(&self) -> String {
        "cpu".into()
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
        let w = self.load_weight(&[&weight(w, &[n, k])])?;
        let bias = bias.map(|b| self.load_weight(&[&weight(b, &[n])])).transpose()?;
        let residual = residual.map(|r| self.upload(r, m, n)).transpose()?;
        let y = Backend::linear(self, &self.upload(x, m, k)?, &w, bias.as_ref(), act, residual.as_ref())?;
        self.download(&y)
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
        let (g, b) = (self.load_weight(&[&weight(gain, &[cols])])?, self.load_weight(&[&weight(bias, &[cols])])?);
        self.download(&Backend::layer_norm(self, &self.upload(x, rows, cols)?, &g, &b, eps)?)
    }

    fn l2_normalize(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>> {
        self.download(&Backend::l2_normalize(self, &self.upload(x, rows, cols)?)?)
    }

    fn attention(&self, qkv: &[f32], shape: AttentionShape) -> Result<Vec<f32>> {
        self.download(&Backend::attention(self, &self.upload(qkv, shape.batch * shape.seq, shape.qkv_width())?, shape)?)
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
        let images = self.upload(images, labels.len(), dim)?;
        let features = self.upload(features, templates * classes, dim)?;
        Backend::score(self, &images, &features, labels, templates, classes)
    }

    fn embed_tokens(&self, ids: &[u32], seq: usize, table: &[f32], positions: &[f32], dim: usize) -> Result<Vec<f32>> {
        let table = self.load_weight(&[&weight(table, &[table.len() / dim, dim])])?;
        let positions = self.load_weight(&[&weight(positions, &[positions.len() / dim, dim])])?;
        self.download(&Backend::embed_tokens(self, ids, ids.len() / seq, seq, &table, &positions)?)
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
        let dim = class_embedding.len();
        let w = self.load_weight(&[&weight(w, &[dim, 3 * patch * patch])])?;
        let class_embedding = self.load_weight(&[&weight(class_embedding, &[dim])])?;
        let positions = self.load_weight(&[&weight(positions, &[positions.len() / dim, dim])])?;
        let pixels = self.upload(pixels, batch, 3 * size * size)?;
        self.download(&Backend::patch_embed(self, &pixels, size, patch, &w, &class_embedding, &positions)?)
    }
}

/// The CUDA kernels of one variant.
pub struct CudaKernels<'a> {
    pub gpu: &'a Gpu,
    pub variant: Variant,
}

impl Subject for CudaKernels<'_> {
    fn label(&self) -> String {
        format!("cuda {:?}", self.variant).to_lowercase()
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
        let g = self.gpu;
        let x = DTensor::upload_bf16(g, x, m, k, "x")?;
        let w = DTensor::upload_bf16(g, w, n, k, "weight")?;
        let bias = bias.map(|b| DTensor::upload_bf16(g, b, 1, n, "bias")).transpose()?;
        let residual = residual.map(|r| DTensor::upload_bf16(g, r, m, n, "residual")).transpose()?;
        ops::linear(g, &x, &w, bias.as_ref(), act, residual.as_ref(), self.variant)?.download_f32(g)
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
        let g = self.gpu;
        let x = DTensor::upload_bf16(g, x, rows, cols, "x")?;
        let (gain, bias) =
            (DTensor::upload_bf16(g, gain, 1, cols, "gain")?, DTensor::upload_bf16(g, bias, 1, cols, "bias")?);
        ops::layer_norm(g, &x, &gain, &bias, eps, self.variant)?.download_f32(g)
    }

    fn l2_normalize(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>> {
        let x = DTensor::upload_f32(self.gpu, x, rows, cols, "x")?;
        ops::l2_normalize(self.gpu, &x, self.variant)?.download_f32(self.gpu)
    }

    fn attention(&self, qkv: &[f32], shape: AttentionShape) -> Result<Vec<f32>> {
        let qkv = DTensor::upload_bf16(self.gpu, qkv, shape.batch * shape.seq, shape.qkv_width(), "qkv")?;
        ops::attention(self.gpu, &qkv, shape, self.variant)?.download_f32(self.gpu)
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
        let g = self.gpu;
        let images = DTensor::upload_f32(g, images, labels.len(), dim, "images")?;
        let features = DTensor::upload_f32(g, features, templates * classes, dim, "class features")?;
        let labels_t = DTensor::upload_u32(g, labels, "labels")?;
        ops::score(g, &images, &features, &labels_t, templates, classes, self.variant)
    }

    fn embed_tokens(&self, ids: &[u32], seq: usize, table: &[f32], positions: &[f32], dim: usize) -> Result<Vec<f32>> {
        let g = self.gpu;
        let ids = DTensor::upload_u32(g, ids, "ids")?;
        let table = DTensor::upload_bf16(g, table, table.len() / dim, dim, "token table")?;
        let positions = DTensor::upload_bf16(g, positions, positions.len() / dim, dim, "positions")?;
        ops::embed_tokens(g, &ids, seq, &table, &positions)?.download_f32(g)
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
        let g = self.gpu;
        let dim = class_embedding.len();
        let pixels = DTensor::upload_f32(g, pixels, batch, 3 * size * size, "pixels")?;
        let weight = DTensor::upload_bf16(g, w, dim, 3 * patch * patch, "patch projection")?;
        let class_embedding = DTensor::upload_bf16(g, class_embedding, 1, dim, "class embedding")?;
        let positions = DTensor::upload_bf16(g, positions, positions.len() / dim, dim, "positions")?;
        let p = ops::PatchEmbedding {
            size,
            patch,
            weight: &weight,
            class_embedding: &class_embedding,
            positions: &positions,
        };
        ops::patch_embed(g, &pixels, &p, self.variant)?.download_f32(g)
    }
}

/// One comparison.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseResult {
    pub kernel: &'static str,
    pub subject: String,
    pub shape: String,
    /// ||out - ref|| / ||ref|| (for scoring: the largest count difference over the images).
    pub error: f64,
    pub tolerance: f64,
    pub passed: bool,
}

/// Inputs drawn from a counter-based generator, fresh for every case; values rounded to bf16 so that the
/// reference sees exactly what the kernels read.
pub(super) struct Inputs {
    pub(super) state: u64,
}

impl Inputs {
    pub(super) fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.state = crate::generation::sampling::mix64(self.state.wrapping_add(0x9E37_79B9_7F4A_7C15));
                let u = (self.state >> 40) as f32 / (1u64 << 24) as f32;
                half::bf16::from_f32((2.0 * u - 1.0) * scale).to_f32()
            })
            .collect()
    }
}

pub(super) fn relative_error(out: &[f32], reference: &[f32]) -> f64 {
    if out.len() != reference.len() {
        return f64::INFINITY;
    }
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&o, &r) in out.iter().zip(reference) {
        diff += (o as f64 - r as f64).powi(2);
        norm += (r as f64).powi(2);
    }
    // NaN (an unwritten output in a poisoned arena) never passes.
    if diff.is_nan() { f64::NAN } else { (diff / norm.max(f64::MIN_POSITIVE)).sqrt() }
}

/// Runs every case against `subject`; `quick` keeps the small shapes only.
pub fn run(subject: &dyn Subject, quick: bool, seed: u64) -> Result<Vec<CaseResult>> {
    let cpu = CpuBackend::new();
    let reference: &dyn Subject = &cpu;
    let mut inputs = Inputs { state: seed };
    let mut results = Vec::new();
    let mut record = |kernel: &'static str, shape: String, error: f64, tolerance: f64| {
        results.push(CaseResult {
            kernel,
            subject: subject.label(),
            shape,
            error,
            tolerance,
            passed: error <= tolerance,
        });
    };
    // bf16 outputs carry a relative rounding of 2^-9 per value; the tolerance leaves room for accumulation order.
    let bf16_tolerance = 2e-2;

    let linear_shapes: &[(usize, usize, usize)] = if quick {
        &[(1, 8, 8), (37, 77, 61), (5, 2048, 64)]
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
        record(
            "linear",
            format!("{m}x{k} . {n}x{k}^T {act:?}{}", if with_extras { " +bias +residual" } else { "" }),
            relative_error(&got, &want),
            bf16_tolerance,
        );
    }

    let norm_shapes: &[(usize, usize)] = if quick { &[(3, 40)] } else { &[(3, 40), (100, 768), (1, 1000)] };
    for &(rows, cols) in norm_shapes {
        let (x, gain, bias) = (inputs.values(rows * cols, 3.0), inputs.values(cols, 1.0), inputs.values(cols, 0.5));
        let want = reference.layer_norm(&x, rows, cols, &gain, &bias, 1e-5)?;
        record(
            "layer_norm",
            format!("{rows}x{cols}"),
            relative_error(&subject.layer_norm(&x, rows, cols, &gain, &bias, 1e-5)?, &want),
            bf16_tolerance,
        );
        let want = reference.l2_normalize(&x, rows, cols)?;
        record(
            "l2_normalize",
            format!("{rows}x{cols}"),
            relative_error(&subject.l2_normalize(&x, rows, cols)?, &want),
            1e-5,
        );
    }

    let attention_shapes: &[AttentionShape] = &[
        AttentionShape { batch: 2, seq: 5, heads: 2, kv_heads: 2, head_dim: 8, causal: true },
        AttentionShape { batch: 1, seq: 50, heads: 4, kv_heads: 2, head_dim: 64, causal: false },
        AttentionShape { batch: 3, seq: 77, heads: 8, kv_heads: 8, head_dim: 64, causal: true },
        AttentionShape { batch: 1, seq: 130, heads: 4, kv_heads: 1, head_dim: 128, causal: true },
    ];
    for shape in &attention_shapes[..if quick { 2 } else { attention_shapes.len() }] {
        let qkv = inputs.values(shape.batch * shape.seq * shape.qkv_width(), 1.0);
        let want = reference.attention(&qkv, *shape)?;
        let AttentionShape { batch, seq, heads, kv_heads, head_dim, causal } = *shape;
        let mask = if causal { "causal" } else { "full" };
        record(
            "attention",
            format!("batch {batch}, seq {seq}, heads {heads}/{kv_heads}, dim {head_dim}, {mask}"),
            relative_error(&subject.attention(&qkv, *shape)?, &want),
            bf16_tolerance,
        );
    }

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
        record(
            "embed_tokens",
            format!("{batch}x{seq} ids of {vocab}, dim {dim}"),
            relative_error(&got, &want),
            bf16_tolerance,
        );
    }

    let patch_shapes: &[(usize, usize, usize, usize)] =
        if quick { &[(2, 12, 4, 24)] } else { &[(2, 12, 4, 24), (5, 224, 32, 768)] };
    for &(batch, size, patch, dim) in patch_shapes {
        let pixels = inputs.values(batch * 3 * size * size, 2.0);
        let w = inputs.values(dim * 3 * patch * patch, 0.05);
        let (class_embedding, positions) =
            (inputs.values(dim, 1.0), inputs.values(((size / patch).pow(2) + 1) * dim, 1.0));
        let want = reference.patch_embed(&pixels, batch, size, patch, &w, &class_embedding, &positions)?;
        let got = subject.patch_embed(&pixels, batch, size, patch, &w, &class_embedding, &positions)?;
        record(
            "patch_embed",
            format!("{batch} images {size}px, patch {patch}, dim {dim}"),
            relative_error(&got, &want),
            bf16_tolerance,
        );
    }

    let score_shapes: &[(usize, usize, usize, usize)] =
        if quick { &[(20, 2, 7, 16)] } else { &[(20, 2, 7, 16), (1000, 4, 100, 512)] };
    for &(n, templates, classes, dim) in score_shapes {
        let images = reference.l2_normalize(&inputs.values(n * dim, 1.0), n, dim)?;
        let features =
            reference.l2_normalize(&inputs.values(templates * classes * dim, 1.0), templates * classes, dim)?;
        let labels: Vec<u32> =
            inputs.values(n, 1.0).iter().map(|v| ((v + 1.0) * 0.5 * classes as f32) as u32 % classes as u32).collect();
        let want = reference.score(&images, &features, &labels, templates, classes, dim)?;
        let got = subject.score(&images, &features, &labels, templates, classes, dim)?;
        // Sums of f32 products in another order can flip a near tie: allow 1% of the images.
        let error = want
            .iter()
            .zip(&got)
            .map(|(w, g)| (w.top1.abs_diff(g.top1).max(w.top5.abs_diff(g.top5))) as f64 / n as f64)
            .fold(if want.len() == got.len() { 0.0 } else { f64::INFINITY }, f64::max);
        record("score", format!("{n} images x {templates} templates x {classes} classes, dim {dim}"), error, 0.01);
    }
    Ok(results)
}

/// The table printed by `selftest`.
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
    }
    out
}

/// The device half of `selftest`: both variants of every kernel (the LLM operations through the backend trait),
/// then CLIP and the LLM on the backend against the reference.
pub fn run_cuda(backend: &CudaBackend, quick: bool, seed: u64) -> Result<Vec<CaseResult>> {
    let mut results = Vec::new();
    for variant in [Variant::Plain, Variant::Fast] {
        results.extend(run(&CudaKernels { gpu: &backend.gpu, variant }, quick, seed)?);
        let view = backend.with_variant(variant);
        results.extend(super::selftest_llm::op_cases(&view, &format!("cuda {}", view.variant_name()), quick, seed)?);
    }
    let label = format!("cuda {}", backend.variant_name());
    results.extend(clip_parity(backend, &label, seed)?);
    results.extend(super::selftest_llm::model_cases(
        &backend.with_variant(backend.variant).with_graphs(false),
        &label,
        quick,
        seed,
    )?);
    let recorded = backend.with_variant(backend.variant).with_graphs(true);
    let eager = backend.with_variant(backend.variant).with_graphs(false);
    results.extend(super::selftest_llm::recording_cases(&recorded, &eager, &label, seed)?);
    Ok(results)
}

/// Features of a random-weight CLIP (ViT-B/32 widths, 2 layers per tower) on `subject` against the reference:
/// relative error of image and text features, and the share of images whose best-matching text (argmax of the
/// cosine) is the same on both.
pub fn clip_parity<B: Backend>(subject: &B, label: &str, seed: u64) -> Result<Vec<CaseResult>> {
    let mut config = shape_config("vit-b-32")?;
    config.text.tower.num_layers = 2;
    config.vision.tower.num_layers = 2;
    let store = random_weights(&config, DType::BF16, seed);
    let tokenizer = openai_clip_tokenizer(config.text.eos_token_id)?;
    let subjects = ["cat", "dog", "fire truck", "oak tree", "sail boat", "red house", "tabby cat", "golden retriever"];
    let styles = ["a photo of a {}.", "a blurry photo of the {}.", "itap of a {}.", "a drawing of a {} in a book."];
    let texts: Vec<String> = styles.iter().flat_map(|t| subjects.iter().map(move |c| t.replace("{}", c))).collect();
    let tokens = tokenizer.encode_batch(&texts)?;
    let images = 32;
    let size = 3 * config.vision.image_size * config.vision.image_size;
    let pixels = Inputs { state: seed ^ 0xC11B }.values(images * size, 2.0);

    fn features<B: Backend>(
        b: &B,
        store: &crate::checkpoint::WeightStore,
        config: &crate::models::clip::ClipConfig,
        pixels: &[f32],
        images: usize,
        tokens: &crate::tokenizer::TokenBatch,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let clip = Clip::from_store(b, store, config.clone())?;
        let batch = b.upload(pixels, images, pixels.len() / images)?;
        let image = b.download(&b.l2_normalize(&clip.encode_images(b, &batch)?)?)?;
        let text = b.download(&b.l2_normalize(&clip.encode_text(b, tokens)?)?)?;
        Ok((image, text))
    }
    let (want_images, want_texts) = features(&CpuBackend::new(), &store, &config, &pixels, images, &tokens)?;
    let (got_images, got_texts) = features(subject, &store, &config, &pixels, images, &tokens)?;
    let dim = config.projection_dim;
    // Random weights give every image nearly the same direction, so the cosine's argmax would pick one text for
    // all of them; with each side's mean removed the choice varies from image to image and the check means
    // something.
    let centred = |rows: &[f32]| -> Vec<f32> {
        let n = rows.len() / dim;
        let mean: Vec<f32> = (0..dim).map(|d| rows.iter().skip(d).step_by(dim).sum::<f32>() / n as f32).collect();
        rows.chunks_exact(dim).flat_map(|r| r.iter().zip(&mean).map(|(v, m)| v - m).collect::<Vec<_>>()).collect()
    };
    // Per image: the best text and its lead over the runner-up, relative to the spread of its scores.
    let best_texts = |images_f: &[f32], texts_f: &[f32]| -> Vec<(usize, f32)> {
        let (images_c, texts_c) = (centred(images_f), centred(texts_f));
        images_c
            .chunks_exact(dim)
            .map(|image| {
                let sims: Vec<f32> =
                    texts_c.chunks_exact(dim).map(|t| t.iter().zip(image).map(|(a, b)| a * b).sum()).collect();
                let best = crate::generation::sampling::argmax(&sims) as usize;
                let runner_up =
                    sims.iter().enumerate().filter(|&(j, _)| j != best).map(|(_, &v)| v).fold(f32::MIN, f32::max);
                let spread =
                    sims.iter().copied().fold(f32::MIN, f32::max) - sims.iter().copied().fold(f32::MAX, f32::min);
                (best, (sims[best] - runner_up) / spread.max(f32::MIN_POSITIVE))
            })
            .collect()
    };
    // Images whose best text leads by less than 5% of the spread are near ties that bf16 rounding may flip; the
    // agreement is taken over the others.
    let (want_best, got_best) = (best_texts(&want_images, &want_texts), best_texts(&got_images, &got_texts));
    let clear: Vec<usize> = (0..images).filter(|&i| want_best[i].1 >= 0.05).collect();
    let agree = clear.iter().filter(|&&i| want_best[i].0 == got_best[i].0).count();
    let shape = format!("vit-b-32 widths, 2 layers, {images} images ({} clear), {} texts", clear.len(), texts.len());
    let case = |kernel, error: f64, tolerance| CaseResult {
        kernel,
        subject: label.to_string(),
        shape: shape.clone(),
        error,
        tolerance,
        passed: error <= tolerance,
    };
    Ok(vec![
        case("clip_images", relative_error(&got_images, &want_images), 2e-2),
        case("clip_texts", relative_error(&got_texts, &want_texts), 2e-2),
        // Reported as the share of disagreeing images among the clear ones (all of them when fewer than a quarter
        // are clear: the check would say nothing).
        case("clip_top1", if clear.len() * 4 < images { 1.0 } else { 1.0 - agree as f64 / clear.len() as f64 }, 0.01),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_passes_the_reference_against_itself() {
        let results = run(&CpuBackend::new(), true, 7).unwrap();
        assert!(results.len() >= 7);
        for r in &results {
            assert!(r.passed && r.error == 0.0, "{r:?}");
        }
        assert!(table(&results).lines().count() == results.len() + 1);
    }

    /// The reference with a wrong linear layer (off by 5% of the output's scale) and a score that misses one
    /// image: the harness must fail exactly those cases.
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
            self.0.layer_norm(x, rows, cols, gain, bias, eps)
        }
        fn l2_normalize(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>> {
            self.0.l2_normalize(x, rows, cols)
        }
        fn attention(&self, qkv: &[f32], shape: AttentionShape) -> Result<Vec<f32>> {
            self.0.attention(qkv, shape)
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
        let results = run(&Broken(Box::new(CpuBackend::new())), true, 9).unwrap();
        for r in &results {
            let broken = r.kernel == "linear" || r.kernel == "score";
            assert_eq!(r.passed, !broken, "{r:?}");
        }
    }

    #[test]
    fn clip_parity_of_the_reference_with_itself_is_exact() {
        let results = clip_parity(&CpuBackend::new(), "cpu", 3).unwrap();
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|r| r.passed && r.error == 0.0), "{results:?}");
    }

    #[test]
    fn errors_are_relative_and_nan_fails() {
        assert!((relative_error(&[1.0, 2.0], &[1.0, 2.5]) - 0.5 / 7.25f64.sqrt()).abs() < 1e-12);
        assert!(relative_error(&[f32::NAN], &[1.0]).is_nan());
        assert_eq!(relative_error(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }
}
