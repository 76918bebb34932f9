//! The CPU reference backend: f32 activations, weights converted from their stored dtype where they are used,
//! matrix products through the `gemm` crate and everything else spread over rows with rayon. Written to be
//! obviously right; every CUDA kernel is compared against it.

mod attention;
mod decoder;
mod elementwise;
mod embed;
mod kv_cache;
mod matmul;
mod score;

pub use kv_cache::CpuKvCache;

use super::{
    Activation, AttentionShape, Backend, CachedRow, HeadShape, KvLayout, MemoryUse, Scoring, TemplateCounts,
    check_add_rows, check_bias, check_segments,
};
use crate::checkpoint::StoredTensor;
use crate::sampling::{SamplingParams, SequenceRng, sample_batch};
use anyhow::{Result, bail, ensure};
use std::borrow::Cow;

/// How many weight values a linear layer converts to f32 at a time (16 MiB of f32).
const CONVERT_BLOCK_VALUES: usize = 4 << 20;

/// A row-major `[rows, cols]` f32 matrix in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTensor {
    pub data: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

impl CpuTensor {
    pub fn new(data: Vec<f32>, rows: usize, cols: usize) -> Self {
        debug_assert_eq!(data.len(), rows * cols);
        Self { data, rows, cols }
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// A parameter: one or more stored tensors whose rows are concatenated, kept in their stored float dtype.
pub struct CpuWeight {
    parts: Vec<StoredTensor>,
    rows: usize,
    /// Values per row (the product of all dimensions after the first; 1 for 1-D tensors).
    cols: usize,
}

impl CpuWeight {
    /// All values as f32, borrowed when a single part is stored as aligned f32.
    fn values(&self) -> Cow<'_, [f32]> {
        if let [single] = self.parts.as_slice()
            && let Some(values) = single.as_f32_slice()
        {
            return Cow::Borrowed(values);
        }
        Cow::Owned(self.parts.iter().flat_map(|p| p.to_f32()).collect())
    }

    /// Row `row` converted to f32 into `out` (`cols` values), read from whichever part holds it: a lookup
    /// converts only the rows it needs, never the whole table.
    fn read_row(&self, mut row: usize, out: &mut [f32]) {
        for part in &self.parts {
            let rows = part.shape.first().copied().unwrap_or(1);
            if row < rows {
                part.read_f32_range(row * self.cols, out);
                return;
            }
            row -= rows;
        }
        panic!("row {row} is outside {}", self.names());
    }

    fn names(&self) -> String {
        self.parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join("+")
    }
}

/// The CPU backend. Its thread count is rayon's global pool.
#[derive(Default)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        Self
    }
}

fn check_cols(what: &str, x: &CpuTensor, cols: usize) -> Result<()> {
    ensure!(x.cols == cols, "{what}: input has {} columns, expected {cols}", x.cols);
    Ok(())
}

impl Backend for CpuBackend {
    type Tensor = CpuTensor;
    type Weight = CpuWeight;
    type KvCache = CpuKvCache;
    type Rows = Vec<CachedRow>;
    type Recording = std::convert::Infallible;

    fn kind(&self) -> &'static str {
        "cpu"
    }

    fn describe(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn load_weight(&self, parts: &[&StoredTensor]) -> Result<CpuWeight> {
        let Some(first) = parts.first() else { bail!("a weight needs at least one tensor") };
        let cols: usize = first.shape.iter().skip(1).product();
        let mut rows = 0;
        for part in parts {
            let part_cols: usize = part.shape.iter().skip(1).product();
            ensure!(
                part.shape.len() == first.shape.len() && part_cols == cols,
                "cannot fuse {} {:?} with {} {:?}: their row sizes differ",
                first.name,
                first.shape,
                part.name,
                part.shape
            );
            rows += part.shape.first().copied().unwrap_or(1);
        }
        // Quantized parts are dequantized once here: converting them at every product would cost more than the
        // memory they save.
        Ok(CpuWeight { parts: parts.iter().map(|p| p.dequantized()).collect(), rows, cols })
    }

    fn random_weight(&self, rows: usize, cols: usize, mean: f32, std: f32, seed: u64) -> Result<CpuWeight> {
        let values = crate::random_normal::normal_values(seed, 0, rows * cols, mean, std);
        let part = StoredTensor::from_f32_as("random weight", &[rows, cols], &values, crate::checkpoint::DType::BF16);
        Ok(CpuWeight { parts: vec![part], rows, cols })
    }

    fn record<T>(&self, _: impl FnOnce() -> Result<T>) -> Result<Option<(Self::Recording, T)>> {
        Ok(None)
    }

    fn replay(&self, recording: &Self::Recording) -> Result<()> {
        match *recording {}
    }

    fn overwrite(&self, dst: &mut CpuTensor, src: &CpuTensor) -> Result<()> {
        ensure!(
            (dst.rows, dst.cols) == (src.rows, src.cols),
            "overwrite: [{}, {}] over [{}, {}]",
            src.rows,
            src.cols,
            dst.rows,
            dst.cols
        );
        dst.data.copy_from_slice(&src.data);
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn memory(&self) -> Option<MemoryUse> {
        None
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<CpuTensor> {
        ensure!(data.len() == rows * cols, "upload: {} values do not make a [{rows}, {cols}] tensor", data.len());
        Ok(CpuTensor::new(data.to_vec(), rows, cols))
    }

    fn download(&self, x: &CpuTensor) -> Result<Vec<f32>> {
        Ok(x.data.clone())
    }

    fn dims(&self, x: &CpuTensor) -> (usize, usize) {
        (x.rows, x.cols)
    }

    fn linear(
        &self,
        x: &CpuTensor,
        weight: &CpuWeight,
        bias: Option<&CpuWeight>,
        activation: Activation,
        residual: Option<&CpuTensor>,
    ) -> Result<CpuTensor> {
        check_cols(&format!("linear {}", weight.names()), x, weight.cols)?;
        let n = weight.rows;
        let bias = match bias {
            Some(b) => {
                ensure!(b.rows * b.cols == n, "bias {} has {} values, expected {n}", b.names(), b.rows * b.cols);
                Some(b.values())
            }
            None => None,
        };
        if let Some(r) = residual {
            ensure!(
                r.rows == x.rows && r.cols == n,
                "residual is [{}, {}], expected [{}, {n}]",
                r.rows,
                r.cols,
                x.rows
            );
        }
        let k = x.cols;
        let mut out = vec![0.0f32; x.rows * n];
        let mut offset = 0;
        for part in &weight.parts {
            let part_rows = part.shape.first().copied().unwrap_or(1);
            if let Some(w) = part.as_f32_slice() {
                matmul::matmul_nt_into(&x.data, w, x.rows, part_rows, k, &mut out[offset..], n);
            } else {
                // Other dtypes are converted a block of rows at a time, so the f32 copy stays small.
                let block = (CONVERT_BLOCK_VALUES / k.max(1)).max(1);
                let mut converted = vec![0.0f32; block.min(part_rows) * k];
                for start in (0..part_rows).step_by(block) {
                    let rows = block.min(part_rows - start);
                    part.read_f32_range(start * k, &mut converted[..rows * k]);
                    matmul::matmul_nt_into(&x.data, &converted, x.rows, rows, k, &mut out[offset + start..], n);
                }
            }
            offset += part_rows;
        }
        elementwise::epilogue(&mut out, n, bias.as_deref(), activation, residual.map(|r| r.data.as_slice()));
        Ok(CpuTensor::new(out, x.rows, n))
    }

    fn layer_norm(&self, x: &CpuTensor, gain: &CpuWeight, bias: &CpuWeight, eps: f32) -> Result<CpuTensor> {
        ensure!(
            gain.rows == x.cols && bias.rows == x.cols,
            "layer norm {}: width {} != {}",
            gain.names(),
            gain.rows,
            x.cols
        );
        let mut out = x.data.clone();
        elementwise::layer_norm(&mut out, x.cols, &gain.values(), &bias.values(), eps);
        Ok(CpuTensor::new(out, x.rows, x.cols))
    }

    fn attention(&self, qkv: &CpuTensor, shape: AttentionShape, bias: Option<&CpuTensor>) -> Result<CpuTensor> {
        ensure!(
            shape.kv_heads > 0 && shape.heads.is_multiple_of(shape.kv_heads),
            "attention: {} query heads cannot share {} key/value heads",
            shape.heads,
            shape.kv_heads
        );
        ensure!(
            qkv.rows == shape.batch * shape.seq && qkv.cols == shape.qkv_width(),
            "attention: qkv is [{}, {}], expected [{}, {}]",
            qkv.rows,
            qkv.cols,
            shape.batch * shape.seq,
            shape.qkv_width()
        );
        if let Some(bias) = bias {
            check_bias(bias.rows, bias.cols, shape)?;
        }
        let out = attention::attention(&qkv.data, shape, bias.map(|b| b.data.as_slice()));
        Ok(CpuTensor::new(out, qkv.rows, shape.heads * shape.head_dim))
    }

    fn rms_norm(&self, x: &CpuTensor, gain: &CpuWeight, gain_offset: f32, eps: f32) -> Result<CpuTensor> {
        ensure!(
            gain.rows * gain.cols == x.cols,
            "RMS norm {}: width {} != {}",
            gain.names(),
            gain.rows * gain.cols,
            x.cols
        );
        let mut out = x.data.clone();
        decoder::rms_norm(&mut out, x.cols, &gain.values(), gain_offset, eps);
        Ok(CpuTensor::new(out, x.rows, x.cols))
    }

    fn add_rms_norm(
        &self,
        x: &CpuTensor,
        delta: &CpuTensor,
        gain: &CpuWeight,
        gain_offset: f32,
        eps: f32,
    ) -> Result<(CpuTensor, CpuTensor)> {
        ensure!(
            x.rows == delta.rows && x.cols == delta.cols,
            "add_rms_norm: x is [{}, {}] but delta is [{}, {}]",
            x.rows,
            x.cols,
            delta.rows,
            delta.cols
        );
        let sum = CpuTensor::new(x.data.iter().zip(&delta.data).map(|(a, b)| a + b).collect(), x.rows, x.cols);
        let normed = self.rms_norm(&sum, gain, gain_offset, eps)?;
        Ok((sum, normed))
    }

    fn silu_mul(&self, gate_up: &CpuTensor) -> Result<CpuTensor> {
        ensure!(
            gate_up.cols.is_multiple_of(2),
            "silu_mul: {} columns do not split into gate and up halves",
            gate_up.cols
        );
        Ok(CpuTensor::new(decoder::silu_mul(&gate_up.data, gate_up.cols / 2), gate_up.rows, gate_up.cols / 2))
    }

    fn gelu_tanh_mul(&self, gate_up: &CpuTensor) -> Result<CpuTensor> {
        ensure!(
            gate_up.cols.is_multiple_of(2),
            "gelu_tanh_mul: {} columns do not split into gate and up halves",
            gate_up.cols
        );
        let f = gate_up.cols / 2;
        let out = decoder::gated(&gate_up.data, f, |g| elementwise::activate(g, Activation::GeluTanh));
        Ok(CpuTensor::new(out, gate_up.rows, f))
    }

    fn head_rms_norm(
        &self,
        qkv: &CpuTensor,
        heads: HeadShape,
        q_gain: &CpuWeight,
        k_gain: &CpuWeight,
        gain_offset: f32,
        eps: f32,
    ) -> Result<CpuTensor> {
        check_cols("head RMS norm", qkv, heads.qkv_width())?;
        for gain in [q_gain, k_gain] {
            ensure!(
                gain.rows * gain.cols == heads.head_dim,
                "head RMS norm {}: width {} != head size {}",
                gain.names(),
                gain.rows * gain.cols,
                heads.head_dim
            );
        }
        let mut out = qkv.data.clone();
        decoder::head_rms_norm(&mut out, heads, &q_gain.values(), &k_gain.values(), gain_offset, eps);
        Ok(CpuTensor::new(out, qkv.rows, qkv.cols))
    }

    fn rope(
        &self,
        qkv: &CpuTensor,
        rows: &Vec<CachedRow>,
        heads: HeadShape,
        inv_freq: &CpuTensor,
    ) -> Result<CpuTensor> {
        check_cols("rope", qkv, heads.qkv_width())?;
        ensure!(rows.len() == qkv.rows, "rope: {} cache rows for {} rows", rows.len(), qkv.rows);
        ensure!(
            inv_freq.data.len() * 2 == heads.head_dim,
            "rope: {} frequencies for head size {}",
            inv_freq.data.len(),
            heads.head_dim
        );
        let positions: Vec<usize> = rows.iter().map(|r| r.position).collect();
        let mut out = qkv.data.clone();
        decoder::rope(&mut out, &positions, heads, &inv_freq.data);
        Ok(CpuTensor::new(out, qkv.rows, qkv.cols))
    }

    fn add_rows(&self, x: &CpuTensor, rows: &[usize], offsets: &CpuTensor) -> Result<CpuTensor> {
        check_add_rows((x.rows, x.cols), rows, (offsets.rows, offsets.cols))?;
        let mut out = x.clone();
        for (j, &r) in rows.iter().enumerate() {
            out.data[r * x.cols..(r + 1) * x.cols].iter_mut().zip(offsets.row(j)).for_each(|(v, o)| *v += o);
        }
        Ok(out)
    }

    fn mean_rows(&self, x: &CpuTensor, segments: &[(usize, usize)]) -> Result<CpuTensor> {
        check_segments(segments, x.rows)?;
        let mut data = Vec::with_capacity(segments.len() * x.cols);
        for &(start, len) in segments {
            let mut mean = vec![0.0f64; x.cols];
            for r in start..start + len {
                mean.iter_mut().zip(x.row(r)).for_each(|(m, &v)| *m += v as f64);
            }
            data.extend(mean.iter().map(|m| (m / len as f64) as f32));
        }
        Ok(CpuTensor::new(data, segments.len(), x.cols))
    }

    fn kv_element_bytes(&self) -> usize {
        4
    }

    fn kv_cache(&self, layout: &KvLayout) -> Result<CpuKvCache> {
        ensure!(
            layout.sequences.iter().all(|&(g, _)| g < layout.prefixes.len()),
            "KV layout names a group it does not have"
        );
        Ok(CpuKvCache::new(layout))
    }

    fn cache_rows(&self, cache: &CpuKvCache, rows: &[CachedRow]) -> Result<Vec<CachedRow>> {
        for row in rows {
            cache.layout().slot(row)?;
        }
        Ok(rows.to_vec())
    }

    fn update_rows(&self, cache: &CpuKvCache, rows: &mut Vec<CachedRow>, new: &[CachedRow]) -> Result<()> {
        ensure!(new.len() == rows.len(), "update_rows: {} rows in place of {}", new.len(), rows.len());
        *rows = self.cache_rows(cache, new)?;
        Ok(())
    }

    fn store_kv(
        &self,
        qkv: &CpuTensor,
        cache: &mut CpuKvCache,
        layer: usize,
        rows: &Vec<CachedRow>,
        heads: HeadShape,
    ) -> Result<()> {
        check_cols("KV store", qkv, heads.qkv_width())?;
        cache.store(&qkv.data, layer, rows, heads)
    }

    fn attend_cached(
        &self,
        qkv: &CpuTensor,
        cache: &mut CpuKvCache,
        layer: usize,
        rows: &Vec<CachedRow>,
        heads: HeadShape,
        scoring: Scoring,
    ) -> Result<CpuTensor> {
        check_cols("cached attention", qkv, heads.qkv_width())?;
        let out = cache.attend(&qkv.data, layer, rows, heads, scoring)?;
        Ok(CpuTensor::new(out, qkv.rows, heads.heads * heads.head_dim))
    }

    fn sample(
        &self,
        logits: &CpuTensor,
        params: &SamplingParams,
        rngs: &[SequenceRng],
        steps: &[u64],
    ) -> Result<Vec<u32>> {
        ensure!(
            rngs.len() == logits.rows && steps.len() == logits.rows,
            "sample: {} rows of logits, {} random streams, {} steps",
            logits.rows,
            rngs.len(),
            steps.len()
        );
        params.validate()?;
        Ok(sample_batch(&logits.data, logits.cols, params, rngs, steps))
    }

    fn embed(&self, ids: &[u32], table: &CpuWeight, scale: f32) -> Result<CpuTensor> {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= table.rows) {
            bail!("token id {bad} is outside the vocabulary of {} ({} entries)", table.names(), table.rows);
        }
        let mut data = vec![0.0f32; ids.len() * table.cols];
        for (&id, row) in ids.iter().zip(data.chunks_exact_mut(table.cols.max(1))) {
            table.read_row(id as usize, row);
            if scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        Ok(CpuTensor::new(data, ids.len(), table.cols))
    }

    fn embed_tokens(
        &self,
        ids: &[u32],
        batch: usize,
        seq: usize,
        table: &CpuWeight,
        positions: &CpuWeight,
    ) -> Result<CpuTensor> {
        ensure!(ids.len() == batch * seq, "embed: {} ids do not make a [{batch}, {seq}] grid", ids.len());
        ensure!(table.cols == positions.cols, "embed: token width {} != position width {}", table.cols, positions.cols);
        ensure!(
            seq <= positions.rows,
            "sequence of {seq} tokens is longer than the {} positions of {}",
            positions.rows,
            positions.names()
        );
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= table.rows) {
            bail!("token id {bad} is outside the vocabulary of {} ({} entries)", table.names(), table.rows);
        }
        let dim = table.cols;
        let mut data = vec![0.0f32; ids.len() * dim];
        let mut position = vec![0.0f32; dim];
        for (n, (&id, row)) in ids.iter().zip(data.chunks_exact_mut(dim)).enumerate() {
            table.read_row(id as usize, row);
            positions.read_row(n % seq, &mut position);
            row.iter_mut().zip(&position).for_each(|(t, p)| *t += p);
        }
        Ok(CpuTensor::new(data, batch * seq, dim))
    }

    fn patch_embed(
        &self,
        pixels: &CpuTensor,
        image_size: usize,
        patch: usize,
        weight: &CpuWeight,
        class_embedding: &CpuWeight,
        positions: &CpuWeight,
    ) -> Result<CpuTensor> {
        ensure!(patch > 0 && patch <= image_size, "a patch of {patch} pixels does not fit an image of {image_size}");
        check_cols("patch embedding", pixels, 3 * image_size * image_size)?;
        let dim = weight.rows;
        ensure!(
            weight.cols == 3 * patch * patch,
            "patch weight {} has rows of {}, expected {}",
            weight.names(),
            weight.cols,
            3 * patch * patch
        );
        let grid = image_size / patch;
        let tokens = 1 + grid * grid;
        ensure!(
            class_embedding.rows * class_embedding.cols == dim,
            "class embedding {} is not of width {dim}",
            class_embedding.names()
        );
        ensure!(
            positions.rows == tokens && positions.cols == dim,
            "position embedding {} is [{}, {}], expected [{tokens}, {dim}]",
            positions.names(),
            positions.rows,
            positions.cols
        );
        let columns = embed::im2col(&pixels.data, pixels.rows, image_size, patch);
        let patches = CpuTensor::new(columns, pixels.rows * grid * grid, 3 * patch * patch);
        let projected = self.linear(&patches, weight, None, Activation::None, None)?;
        let data = embed::assemble_vit_tokens(
            &projected.data,
            pixels.rows,
            grid * grid,
            &class_embedding.values(),
            &positions.values(),
            dim,
        );
        Ok(CpuTensor::new(data, pixels.rows * tokens, dim))
    }

    fn gather_rows(&self, x: &CpuTensor, rows: &[usize]) -> Result<CpuTensor> {
        let mut data = Vec::with_capacity(rows.len() * x.cols);
        for &r in rows {
            ensure!(r < x.rows, "gather: row {r} is outside a tensor of {} rows", x.rows);
            data.extend_from_slice(x.row(r));
        }
        Ok(CpuTensor::new(data, rows.len(), x.cols))
    }

    fn l2_normalize(&self, x: &CpuTensor) -> Result<CpuTensor> {
        let mut data = x.data.clone();
        elementwise::l2_normalize(&mut data, x.cols);
        Ok(CpuTensor::new(data, x.rows, x.cols))
    }

    fn average_templates(&self, features: &CpuTensor, templates: usize, classes: usize) -> Result<CpuTensor> {
        ensure!(
            templates > 0 && features.rows == templates * classes,
            "ensemble: {} rows are not {templates} templates x {classes} classes",
            features.rows
        );
        let mut data = vec![0.0f32; classes * features.cols];
        for t in 0..templates {
            let block = &features.data[t * classes * features.cols..(t + 1) * classes * features.cols];
            data.iter_mut().zip(block).for_each(|(acc, v)| *acc += v);
        }
        data.iter_mut().for_each(|v| *v /= templates as f32);
        elementwise::l2_normalize(&mut data, features.cols);
        Ok(CpuTensor::new(data, classes, features.cols))
    }

    fn score(
        &self,
        images: &CpuTensor,
        class_features: &CpuTensor,
        labels: &[u32],
        templates: usize,
        classes: usize,
    ) -> Result<Vec<TemplateCounts>> {
        ensure!(
            images.cols == class_features.cols,
            "score: image width {} != text width {}",
            images.cols,
            class_features.cols
        );
        ensure!(
            class_features.rows == templates * classes,
            "score: {} text rows are not {templates} x {classes}",
            class_features.rows
        );
        ensure!(labels.len() == images.rows, "score: {} labels for {} images", labels.len(), images.rows);
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
            bail!("score: label {bad} is outside the {classes} classes");
        }
        Ok(score::score(&images.data, &class_features.data, labels, templates, classes, images.cols))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::DType;

    #[test]
    fn linear_on_fused_bf16_parts_matches_f32_across_conversion_blocks() {
        // Enough rows that the bf16 part is converted in several blocks.
        let k = 3;
        let rows = CONVERT_BLOCK_VALUES / k + 5;
        let values: Vec<f32> =
            (0..rows * k).map(|i| half::bf16::from_f32(((i * 37 % 101) as f32 - 50.0) / 64.0).to_f32()).collect();
        let small: Vec<f32> = (0..2 * k).map(|i| i as f32 - 2.5).collect();
        let backend = CpuBackend::new();
        let as_bf16 = StoredTensor::from_f32_as("w", &[rows, k], &values, DType::BF16);
        let as_f32 = StoredTensor::from_f32("w", &[rows, k], &values);
        let tail = StoredTensor::from_f32("t", &[2, k], &small);
        let x = backend.upload(&[1.0, -2.0, 0.5, 0.25, 4.0, -1.0], 2, k).unwrap();
        let got = backend
            .linear(&x, &backend.load_weight(&[&as_bf16, &tail]).unwrap(), None, Activation::None, None)
            .unwrap();
        let want =
            backend.linear(&x, &backend.load_weight(&[&as_f32, &tail]).unwrap(), None, Activation::None, None).unwrap();
        assert_eq!((got.rows, got.cols), (2, rows + 2));
        let n = rows + 2;
        for (i, (g, w)) in got.data.iter().zip(&want.data).enumerate() {
            assert!((g - w).abs() <= 1e-6, "output {i}: {g} vs {w}");
        }
        // Spot-check one output by hand: row 1, the last row of the bf16 part.
        let r = rows - 1;
        let expect: f32 = (0..k).map(|j| x.data[k + j] * values[r * k + j]).sum();
        assert!((got.data[n + r] - expect).abs() < 1e-5);
        // And the tail part's first row.
        let expect: f32 = (0..k).map(|j| x.data[j] * small[j]).sum();
        assert!((got.data[rows] - expect).abs() < 1e-5);
    }
}
