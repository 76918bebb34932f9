//! The CUDA implementation of the backend trait: parameters and activations in bf16 (the LLM's residual stream
//! too), features, scores and steering offsets in f32, every buffer in the arena, the KV cache in one block of it,
//! and the next tokens sampled on the device.

use super::kv_cache::{CudaKvCache, CudaRows};
use super::llm_ops::{self, RmsGain};
use super::ops::{self, DTensor, DType, PatchEmbedding, Variant};
use super::runtime::Gpu;
use crate::backend::runtime_options::GpuMemory;
use crate::backend::{
    Activation, AttentionShape, Backend, CachedRow, Gate, HeadShape, KvLayout, MemoryUse, Scoring, TemplateCounts,
};
use crate::checkpoint::StoredTensor;
use crate::sampling::{SamplingParams, SequenceRng};
use anyhow::{Result, bail, ensure};

pub struct CudaBackend {
    /// Shared by the views of one device with different kernel variants.
    pub gpu: std::sync::Arc<Gpu>,
    /// Which kernel of each pair runs (`--kernels`).
    pub variant: Variant,
    /// Whether decode steps are recorded once and replayed as CUDA graphs (`--no-cuda-graphs` turns it off).
    pub graphs: bool,
}

impl CudaBackend {
    /// Opens device `ordinal` with an arena of `arena_bytes` (`None`: 90% of the memory free at start).
    pub fn open(ordinal: usize, variant: Variant, arena: Option<GpuMemory>) -> Result<Self> {
        Ok(Self { gpu: std::sync::Arc::new(Gpu::open(ordinal, arena)?), variant, graphs: true })
    }

    /// The same backend, recording decode steps as CUDA graphs or not.
    pub fn with_graphs(self, graphs: bool) -> Self {
        Self { graphs, ..self }
    }

    /// The same device and arena, running the other kernel of each pair.
    pub fn with_variant(&self, variant: Variant) -> Self {
        Self { gpu: self.gpu.clone(), variant, graphs: self.graphs }
    }

    /// The kernels this view runs.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    fn as_dtype(&self, x: &DTensor, dtype: DType) -> Result<Option<DTensor>> {
        if x.dtype == dtype { Ok(None) } else { ops::convert(&self.gpu, x, dtype).map(Some) }
    }
}

impl Backend for CudaBackend {
    type Tensor = DTensor;
    type Weight = DTensor;
    type KvCache = CudaKvCache;
    type Rows = CudaRows;
    type Recording = super::runtime::Graph;

    fn kind(&self) -> &'static str {
        "cuda"
    }

    fn describe(&self) -> String {
        let g = &self.gpu;
        format!(
            "cuda:{} {} (compute capability {}.{}, {} kernels, from {})",
            g.ordinal, g.name, g.capability.0, g.capability.1, self.variant, g.kernel_image
        )
    }

    fn load_weight(&self, parts: &[&StoredTensor]) -> Result<DTensor> {
        let Some(first) = parts.first() else { bail!("a weight needs at least one tensor") };
        let cols: usize = if first.shape.len() == 1 { 1 } else { first.shape.iter().skip(1).product() };
        let mut values = Vec::new();
        for part in parts {
            let part_cols: usize = if part.shape.len() == 1 { 1 } else { part.shape.iter().skip(1).product() };
            ensure!(
                part_cols == cols,
                "cannot fuse {} {:?} with {} {:?}",
                first.name,
                first.shape,
                part.name,
                part.shape
            );
            values.extend(part.to_f32());
        }
        let rows = values.len() / cols.max(1);
        DTensor::upload_bf16(&self.gpu, &values, rows, cols, &first.name)
    }

    fn random_weight(&self, rows: usize, cols: usize, mean: f32, std: f32, seed: u64) -> Result<DTensor> {
        llm_ops::random_normal(&self.gpu, rows, cols, mean, std, seed)
    }

    fn record<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<Option<(Self::Recording, T)>> {
        if !self.graphs {
            return Ok(None);
        }
        self.gpu.record(f).map(Some)
    }

    fn replay(&self, recording: &Self::Recording) -> Result<()> {
        self.gpu.replay(recording)
    }

    fn overwrite(&self, dst: &mut DTensor, src: &DTensor) -> Result<()> {
        ensure!(
            (dst.rows, dst.cols, dst.dtype) == (src.rows, src.cols, src.dtype),
            "overwrite: [{}, {}] {:?} over [{}, {}] {:?}",
            src.rows,
            src.cols,
            src.dtype,
            dst.rows,
            dst.cols,
            dst.dtype
        );
        self.gpu.copy(&src.block, &dst.block, src.rows * src.cols * src.dtype.size())
    }

    fn synchronize(&self) -> Result<()> {
        self.gpu.synchronize()
    }

    fn memory(&self) -> Option<MemoryUse> {
        let arena = self.gpu.arena();
        Some(MemoryUse { in_use: arena.in_use(), peak: arena.peak(), capacity: arena.capacity() })
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<DTensor> {
        DTensor::upload_f32(&self.gpu, data, rows, cols, "uploaded values")
    }

    fn download(&self, x: &DTensor) -> Result<Vec<f32>> {
        x.download_f32(&self.gpu)
    }

    fn dims(&self, x: &DTensor) -> (usize, usize) {
        (x.rows, x.cols)
    }

    fn linear(
        &self,
        x: &DTensor,
        weight: &DTensor,
        bias: Option<&DTensor>,
        activation: Activation,
        residual: Option<&DTensor>,
    ) -> Result<DTensor> {
        let x_bf16 = self.as_dtype(x, DType::Bf16)?;
        let residual_bf16 = residual.map(|r| self.as_dtype(r, DType::Bf16)).transpose()?.flatten();
        let residual = residual_bf16.as_ref().or(residual);
        ops::linear(&self.gpu, x_bf16.as_ref().unwrap_or(x), weight, bias, activation, residual, self.variant)
    }

    fn layer_norm(&self, x: &DTensor, gain: &DTensor, bias: &DTensor, eps: f32) -> Result<DTensor> {
        let x_bf16 = self.as_dtype(x, DType::Bf16)?;
        ops::layer_norm(&self.gpu, x_bf16.as_ref().unwrap_or(x), gain, bias, eps, self.variant)
    }

    fn attention(&self, qkv: &DTensor, shape: AttentionShape, bias: Option<&DTensor>) -> Result<DTensor> {
        ops::attention(&self.gpu, qkv, shape, bias, self.variant)
    }

    fn rms_norm(&self, x: &DTensor, gain: &DTensor, gain_offset: f32, eps: f32) -> Result<DTensor> {
        let x_bf16 = self.as_dtype(x, DType::Bf16)?;
        let norm = RmsGain { gain, gain_offset, eps };
        Ok(llm_ops::rms_norm(&self.gpu, x_bf16.as_ref().unwrap_or(x), None, norm, self.variant)?.1)
    }

    fn add_rms_norm(
        &self,
        x: &DTensor,
        delta: &DTensor,
        gain: &DTensor,
        gain_offset: f32,
        eps: f32,
    ) -> Result<(DTensor, DTensor)> {
        let x_bf16 = self.as_dtype(x, DType::Bf16)?;
        let delta_bf16 = self.as_dtype(delta, DType::Bf16)?;
        let x = x_bf16.as_ref().unwrap_or(x);
        let delta = Some(delta_bf16.as_ref().unwrap_or(delta));
        let norm = RmsGain { gain, gain_offset, eps };
        let (sum, normed) = llm_ops::rms_norm(&self.gpu, x, delta, norm, self.variant)?;
        Ok((sum.expect("a fused add returns its sum"), normed))
    }

    fn head_rms_norm(
        &self,
        qkv: &DTensor,
        heads: HeadShape,
        q_gain: &DTensor,
        k_gain: &DTensor,
        gain_offset: f32,
        eps: f32,
    ) -> Result<DTensor> {
        let qkv_bf16 = self.as_dtype(qkv, DType::Bf16)?;
        let qkv = qkv_bf16.as_ref().unwrap_or(qkv);
        llm_ops::head_rms_norm(&self.gpu, qkv, heads, q_gain, k_gain, gain_offset, eps, self.variant)
    }

    fn silu_mul(&self, gate_up: &DTensor) -> Result<DTensor> {
        let gate_up_bf16 = self.as_dtype(gate_up, DType::Bf16)?;
        llm_ops::gated(&self.gpu, gate_up_bf16.as_ref().unwrap_or(gate_up), "silu_mul")
    }

    fn gelu_tanh_mul(&self, gate_up: &DTensor) -> Result<DTensor> {
        let gate_up_bf16 = self.as_dtype(gate_up, DType::Bf16)?;
        llm_ops::gated(&self.gpu, gate_up_bf16.as_ref().unwrap_or(gate_up), "gelu_tanh_mul")
    }

    fn linear_add_rms_norm(
        &self,
        x: &DTensor,
        weight: &DTensor,
        residual: &DTensor,
        gain: &DTensor,
        gain_offset: f32,
        eps: f32,
    ) -> Result<(DTensor, DTensor)> {
        let x_bf16 = self.as_dtype(x, DType::Bf16)?;
        let residual_bf16 = self.as_dtype(residual, DType::Bf16)?;
        let (x, residual) = (x_bf16.as_ref().unwrap_or(x), residual_bf16.as_ref().unwrap_or(residual));
        let norm = RmsGain { gain, gain_offset, eps };
        ops::linear_add_rms_norm(&self.gpu, x, weight, residual, &norm, self.variant)
    }

    fn linear_gated(&self, x: &DTensor, weight: &DTensor, gate: Gate) -> Result<DTensor> {
        let x_bf16 = self.as_dtype(x, DType::Bf16)?;
        let kernel = match gate {
            Gate::Silu => "silu_mul",
            Gate::GeluTanh => "gelu_tanh_mul",
        };
        ops::linear_gated(&self.gpu, x_bf16.as_ref().unwrap_or(x), weight, kernel, self.variant)
    }

    fn linear_rope_store(
        &self,
        x: &DTensor,
        weight: &DTensor,
        bias: Option<&DTensor>,
        cache: &mut CudaKvCache,
        layer: usize,
        rows: &CudaRows,
        heads: HeadShape,
        inv_freq: &DTensor,
    ) -> Result<DTensor> {
        if self.variant == Variant::Plain || !CudaKvCache::fuses_rope(heads) {
            let qkv = self.linear(x, weight, bias, Activation::None, None)?;
            let qkv = self.rope(&qkv, rows, heads, inv_freq)?;
            self.store_kv(&qkv, cache, layer, rows, heads)?;
            return Ok(qkv);
        }
        let x_bf16 = self.as_dtype(x, DType::Bf16)?;
        cache.linear_rope_store(&self.gpu, x_bf16.as_ref().unwrap_or(x), weight, bias, layer, rows, heads, inv_freq)
    }

    fn rope(&self, qkv: &DTensor, rows: &CudaRows, heads: HeadShape, inv_freq: &DTensor) -> Result<DTensor> {
        let qkv_bf16 = self.as_dtype(qkv, DType::Bf16)?;
        llm_ops::rope(&self.gpu, qkv_bf16.as_ref().unwrap_or(qkv), rows, heads, inv_freq)
    }

    fn add_rows(&self, x: &DTensor, rows: &[usize], offsets: &DTensor) -> Result<DTensor> {
        let x_bf16 = self.as_dtype(x, DType::Bf16)?;
        llm_ops::add_rows(&self.gpu, x_bf16.as_ref().unwrap_or(x), rows, offsets)
    }

    fn mean_rows(&self, x: &DTensor, segments: &[(usize, usize)]) -> Result<DTensor> {
        let x_bf16 = self.as_dtype(x, DType::Bf16)?;
        llm_ops::mean_rows(&self.gpu, x_bf16.as_ref().unwrap_or(x), segments)
    }

    fn kv_element_bytes(&self) -> usize {
        2
    }

    fn kv_cache(&self, layout: &KvLayout) -> Result<CudaKvCache> {
        CudaKvCache::new(&self.gpu, layout)
    }

    fn cache_rows(&self, cache: &CudaKvCache, rows: &[CachedRow]) -> Result<CudaRows> {
        cache.rows(&self.gpu, rows)
    }

    fn update_rows(&self, cache: &CudaKvCache, rows: &mut CudaRows, new: &[CachedRow]) -> Result<()> {
        cache.update_rows(&self.gpu, rows, new)
    }

    fn store_kv(
        &self,
        qkv: &DTensor,
        cache: &mut CudaKvCache,
        layer: usize,
        rows: &CudaRows,
        heads: HeadShape,
    ) -> Result<()> {
        let qkv_bf16 = self.as_dtype(qkv, DType::Bf16)?;
        cache.store(&self.gpu, qkv_bf16.as_ref().unwrap_or(qkv), layer, rows, heads)
    }

    fn attend_cached(
        &self,
        qkv: &DTensor,
        cache: &mut CudaKvCache,
        layer: usize,
        rows: &CudaRows,
        heads: HeadShape,
        scoring: Scoring,
    ) -> Result<DTensor> {
        let qkv_bf16 = self.as_dtype(qkv, DType::Bf16)?;
        cache.attention(&self.gpu, qkv_bf16.as_ref().unwrap_or(qkv), layer, rows, heads, scoring, self.variant)
    }

    fn sample(
        &self,
        logits: &DTensor,
        params: &SamplingParams,
        rngs: &[SequenceRng],
        steps: &[u64],
    ) -> Result<Vec<u32>> {
        super::sampling::sample(&self.gpu, logits, params, rngs, steps, self.variant)
    }

    fn embed_tokens(
        &self,
        ids: &[u32],
        batch: usize,
        seq: usize,
        table: &DTensor,
        positions: &DTensor,
    ) -> Result<DTensor> {
        ensure!(ids.len() == batch * seq, "embed_tokens: {} ids for [{batch}, {seq}]", ids.len());
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= table.rows) {
            bail!("token id {bad} is outside the vocabulary ({} entries)", table.rows);
        }
        let ids = DTensor::upload_u32(&self.gpu, ids, "token ids")?;
        ops::embed_tokens(&self.gpu, &ids, seq, table, positions)
    }

    fn patch_embed(
        &self,
        pixels: &DTensor,
        image_size: usize,
        patch: usize,
        weight: &DTensor,
        class_embedding: &DTensor,
        positions: &DTensor,
    ) -> Result<DTensor> {
        let p = PatchEmbedding { size: image_size, patch, weight, class_embedding, positions };
        ops::patch_embed(&self.gpu, pixels, &p, self.variant)
    }

    fn embed(&self, ids: &[u32], table: &DTensor, scale: f32) -> Result<DTensor> {
        // The scale in bf16, the type of the weights and activations, as HF rounds it to the weights' dtype.
        llm_ops::embed(&self.gpu, ids, table, half::bf16::from_f32(scale).to_f32())
    }

    fn gather_rows(&self, x: &DTensor, rows: &[usize]) -> Result<DTensor> {
        ops::gather_rows(&self.gpu, x, rows)
    }

    fn l2_normalize(&self, x: &DTensor) -> Result<DTensor> {
        let x_f32 = self.as_dtype(x, DType::F32)?;
        ops::l2_normalize(&self.gpu, x_f32.as_ref().unwrap_or(x), self.variant)
    }

    fn average_templates(&self, features: &DTensor, templates: usize, classes: usize) -> Result<DTensor> {
        ops::average_templates(&self.gpu, features, templates, classes, self.variant)
    }

    fn score(
        &self,
        images: &DTensor,
        class_features: &DTensor,
        labels: &[u32],
        templates: usize,
        classes: usize,
    ) -> Result<Vec<TemplateCounts>> {
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
            bail!("label {bad} is outside the {classes} classes");
        }
        let labels_t = DTensor::upload_u32(&self.gpu, labels, "labels")?;
        ops::score(&self.gpu, images, class_features, &labels_t, templates, classes, self.variant)
    }
}
