//! The implementation under test of the kernel cases: the kernels' operations on host inputs and outputs. The CPU
//! backend is one subject (the reference, and the harness's check of itself without a GPU: every error must then
//! be zero); [`CudaKernels`] is the other, one kernel variant of the CUDA backend, reached through the launch
//! wrappers the backend makes public for this (`crate::backend::cuda::ops`).

use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::ops::{self, DTensor, GemmTiles, Variant};
use crate::backend::cuda::runtime::Gpu;
use crate::backend::{Activation, AttentionShape, Backend, TemplateCounts};
use crate::checkpoint::StoredTensor;
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
    /// With `bias` `[heads * seq, seq]` where given.
    fn attention(&self, qkv: &[f32], shape: AttentionShape, bias: Option<&[f32]>) -> Result<Vec<f32>>;
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

    fn attention(&self, qkv: &[f32], shape: AttentionShape, bias: Option<&[f32]>) -> Result<Vec<f32>> {
        let qkv = self.upload(qkv, shape.batch * shape.seq, shape.qkv_width())?;
        let bias = bias.map(|b| self.upload(b, shape.heads * shape.seq, shape.seq)).transpose()?;
        self.download(&Backend::attention(self, &qkv, shape, bias.as_ref())?)
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
        match (self.variant, self.gpu.gemm_tiles()) {
            (Variant::Fast, GemmTiles::Large) => super::LARGE_TILE_LABEL.to_string(),
            (variant, _) => format!("cuda {variant}"),
        }
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

    fn attention(&self, qkv: &[f32], shape: AttentionShape, bias: Option<&[f32]>) -> Result<Vec<f32>> {
        let qkv = DTensor::upload_bf16(self.gpu, qkv, shape.batch * shape.seq, shape.qkv_width(), "qkv")?;
        let bias =
            bias.map(|b| DTensor::upload_f32(self.gpu, b, shape.heads * shape.seq, shape.seq, "bias")).transpose()?;
        ops::attention(self.gpu, &qkv, shape, bias.as_ref(), self.variant)?.download_f32(self.gpu)
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
