//! The backend: one trait of coarse tensor operations that the models are written against, with a CPU reference
//! implementation (`cpu`) and a CUDA one (`cuda`). Operations are whole layers' worth of work (a linear layer with
//! its bias, activation and residual; attention over a packed QKV tensor; scoring of many templates at once), so
//! that a GPU implementation can fuse each into a few kernels.

pub mod cpu;
pub mod cuda;
mod device;

pub use device::Device;

use crate::checkpoint::StoredTensor;
use anyhow::Result;

/// The activation applied in a linear layer's epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    None,
    /// `x * sigmoid(1.702 x)`, OpenAI CLIP's approximation.
    QuickGelu,
    /// The exact, erf-based GELU (HF `gelu`).
    Gelu,
    /// The tanh approximation of GELU (HF `gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
}

impl Activation {
    /// Parses an HF `hidden_act` value; the error lists the supported ones.
    pub fn from_hf(name: &str) -> Result<Self> {
        Ok(match name {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            other => anyhow::bail!(
                "unsupported hidden_act {other:?} (supported: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)"
            ),
        })
    }
}

/// The shape of a multi-head attention over a packed `[batch * seq, 3 * heads * head_dim]` QKV tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Causal masking: position i attends to positions 0..=i only.
    pub causal: bool,
}

/// Correct-prediction counts of one template (or ensemble) over a set of labelled images.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateCounts {
    pub top1: usize,
    pub top5: usize,
    /// Correct top-1 predictions per class (index = label).
    pub top1_per_class: Vec<usize>,
}

/// Coarse operations over activations (`Tensor`, 2-D, row-major) and stored parameters (`Weight`).
pub trait Backend: Send + Sync {
    type Tensor: Send + Sync;
    type Weight: Send + Sync;

    /// A short description of the device, for logs and `inspect`.
    fn describe(&self) -> String;

    /// Prepares a parameter for use: the rows of every part concatenated in order (several parts make a fused
    /// weight, such as Q, K and V projections into one QKV projection). 1-D parts (biases) are concatenated too.
    fn load_weight(&self, parts: &[&StoredTensor]) -> Result<Self::Weight>;

    /// Copies host values into a new tensor of shape `[rows, cols]`.
    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Result<Self::Tensor>;

    /// Copies a tensor back to the host, row-major.
    fn download(&self, x: &Self::Tensor) -> Result<Vec<f32>>;

    /// `[rows, cols]` of a tensor.
    fn dims(&self, x: &Self::Tensor) -> (usize, usize);

    /// `act(x W^T + bias) + residual` with `x: [m, k]`, `W: [n, k]` (the PyTorch `Linear` layout).
    fn linear(
        &self,
        x: &Self::Tensor,
        weight: &Self::Weight,
        bias: Option<&Self::Weight>,
        activation: Activation,
        residual: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor>;

    /// Layer normalisation over each row, with gain and bias.
    fn layer_norm(&self, x: &Self::Tensor, gain: &Self::Weight, bias: &Self::Weight, eps: f32)
    -> Result<Self::Tensor>;

    /// Scaled dot-product attention, `softmax(q k^T / sqrt(d)) v` per head, on a packed QKV tensor; returns
    /// `[batch * seq, heads * head_dim]`.
    fn attention(&self, qkv: &Self::Tensor, shape: AttentionShape) -> Result<Self::Tensor>;

    /// Token embeddings plus position embeddings for a `[batch, seq]` grid of ids; returns `[batch * seq, dim]`.
    fn embed_tokens(
        &self,
        ids: &[u32],
        batch: usize,
        seq: usize,
        table: &Self::Weight,
        positions: &Self::Weight,
    ) -> Result<Self::Tensor>;

    /// ViT input: images `[batch, 3 * size * size]` (CHW) cut into `patch x patch` squares, each projected by the
    /// convolution weight `[dim, 3 * patch * patch]` (no bias), a class token prepended and position embeddings
    /// added; returns `[batch * (1 + patches), dim]`.
    fn patch_embed(
        &self,
        pixels: &Self::Tensor,
        image_size: usize,
        patch: usize,
        weight: &Self::Weight,
        class_embedding: &Self::Weight,
        positions: &Self::Weight,
    ) -> Result<Self::Tensor>;

    /// The rows at the given indices, in order.
    fn gather_rows(&self, x: &Self::Tensor, rows: &[usize]) -> Result<Self::Tensor>;

    /// Each row divided by its L2 norm.
    fn l2_normalize(&self, x: &Self::Tensor) -> Result<Self::Tensor>;

    /// The ensemble of templates: rows are `[template][class]` normalised features; returns per class the mean
    /// over templates, normalised again, `[classes, dim]`.
    fn average_templates(&self, features: &Self::Tensor, templates: usize, classes: usize) -> Result<Self::Tensor>;

    /// Zero-shot classification counts. `images: [n, dim]` and `class_features: [templates * classes, dim]` are
    /// normalised; image i is predicted as the argmax over a template's classes of the cosine similarity, and
    /// counted against `labels[i]` (top-1, top-5 and per class), for every template at once.
    fn score(
        &self,
        images: &Self::Tensor,
        class_features: &Self::Tensor,
        labels: &[u32],
        templates: usize,
        classes: usize,
    ) -> Result<Vec<TemplateCounts>>;
}
