//! The CUDA implementation of the backend trait, for the operations CLIP and scoring use: parameters and
//! activations in bf16, features and scores in f32, every buffer in the arena. The decoder-LLM operations (RMS
//! norm, rope, SiLU gate, KV cache) are not on the GPU yet and answer with an error that says so.

use super::ops::{self, DTensor, DType, PatchEmbedding, Variant};
use super::runtime::Gpu;
use crate::backend::{Activation, AttentionShape, Backend, CachedRow, HeadShape, KvLayout, TemplateCounts};
use crate::checkpoint::StoredTensor;
use anyhow::{Result, bail, ensure};

pub struct CudaBackend {
    pub gpu: Gpu,
    /// Which kernel of each pair runs (`--kernels`).
    pub variant: Variant,
}

impl CudaBackend {
    pub fn open(ordinal: usize, variant: Variant) -> Result<Self> {
        Ok(Self { gpu: Gpu::open(ordinal, None)?, variant })
    }

    pub fn variant_name(&self) -> &'static str {
        match self.variant {
            Variant::Plain => "plain",
            Variant::Fast => "fast",
        }
    }

    fn as_dtype(&self, x: &DTensor, dtype: DType) -> Result<Option<DTensor>> {
        if x.dtype == dtype { Ok(None) } else { ops::convert(&self.gpu, x, dtype).map(Some) }
    }
}

fn not_yet<T>(op: &str) -> Result<T> {
    bail!("{op} does not run on the CUDA backend yet: the LLM runs with --device cpu in this version")
}

impl Backend for CudaBackend {
    type Tensor = DTensor;
    type Weight = DTensor;
    type KvCache = ();

    fn kind(&self) -> &'static str {
        "cuda"
    }

    fn describe(&self) -> String {
        let g = &self.gpu;
        let kernels = match self.variant {
            Variant::Plain => "plain",
            Variant::Fast => "fast",
        };
        format!(
            "cuda:{} {} (compute capability {}.{}, {kernels} kernels)",
            g.ordinal, g.name, g.capability.0, g.capability.1
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

    fn attention(&self, qkv: &DTensor, shape: AttentionShape) -> Result<DTensor> {
        ops::attention(&self.gpu, qkv, shape, self.variant)
    }

    fn rms_norm(&self, _: &DTensor, _: &DTensor, _: f32) -> Result<DTensor> {
        not_yet("RMS norm")
    }

    fn silu_mul(&self, _: &DTensor) -> Result<DTensor> {
        not_yet("the SiLU gate")
    }

    fn rope(&self, _: &DTensor, _: &[usize], _: HeadShape, _: &[f32]) -> Result<DTensor> {
        not_yet("rotary embedding")
    }

    fn add_rows(&self, _: &DTensor, _: &[usize], _: &DTensor) -> Result<DTensor> {
        not_yet("the steering offset add")
    }

    fn mean_rows(&self, _: &DTensor, _: &[(usize, usize)]) -> Result<DTensor> {
        not_yet("mean pooling")
    }

    fn kv_cache(&self, _: &KvLayout) -> Result<()> {
        not_yet("the KV cache")
    }

    fn attention_cached(&self, _: &DTensor, _: &mut (), _: usize, _: &[CachedRow], _: HeadShape) -> Result<DTensor> {
        not_yet("cached attention")
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

    fn embed(&self, _: &[u32], _: &DTensor) -> Result<DTensor> {
        not_yet("token embedding without positions")
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
