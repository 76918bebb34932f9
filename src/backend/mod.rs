//! The backend: one trait of coarse tensor operations that the models are written against, with a CPU reference
//! implementation (`cpu`) and a CUDA one (`cuda`). Operations are whole layers' worth of work (a linear layer with
//! its bias, activation and residual; attention over a packed QKV tensor; scoring of many templates at once), so
//! that a GPU implementation can fuse each into a few kernels.

pub mod cpu;
pub mod cuda;
mod device;
pub mod runtime_options;

pub use device::Device;

use crate::checkpoint::StoredTensor;
use crate::sampling::{SamplingParams, SequenceRng};
use anyhow::Result;

/// The activation applied in a linear layer's epilogue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    #[default]
    None,
    /// `x * sigmoid(1.702 x)`, OpenAI CLIP's approximation.
    QuickGelu,
    /// The exact, erf-based GELU (HF `gelu`).
    Gelu,
    /// The tanh approximation of GELU (HF `gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
}

/// The gate of a gated MLP: `silu` (Llama, Qwen) or `gelu_pytorch_tanh` (Gemma).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Silu,
    GeluTanh,
}

/// The HF name: `none`, `quick_gelu`, `gelu`, `gelu_pytorch_tanh`.
impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Activation::None => "none",
            Activation::QuickGelu => "quick_gelu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_pytorch_tanh",
        })
    }
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

/// The shape of a multi-head attention over a packed QKV tensor of `[batch * seq, (heads + 2 * kv_heads) *
/// head_dim]` (all query heads, then the key heads, then the value heads; with grouped-query attention, query head
/// `h` reads key/value head `h / (heads / kv_heads)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Causal masking: position i attends to positions 0..=i only.
    pub causal: bool,
}

impl AttentionShape {
    /// Width of a packed QKV row.
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }
}

/// Heads of a decoder's attention, for rotary embeddings and cached attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl HeadShape {
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    pub fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// How cached attention scores keys: `softmax(scale * q k^T)` over the keys a row sees, or only over the last
/// `window` of them (the row's own key included) in a sliding-window layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scoring {
    pub scale: f32,
    pub window: Option<usize>,
}

impl Scoring {
    /// `1 / sqrt(head_dim)` over every visible key (Llama's attention).
    pub fn full(head_dim: usize) -> Self {
        Self { scale: 1.0 / (head_dim as f32).sqrt(), window: None }
    }

    /// Where the visible keys `0..len` of a row start: `len - window` in a window shorter than `len`.
    pub fn first_key(&self, len: usize) -> usize {
        self.window.map_or(0, |w| len.saturating_sub(w))
    }
}

/// Where a token's keys and values live in a KV cache: the shared prefix of a prompt group, or the private part
/// of one generated sequence (which reads its group's prefix first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Prefix(usize),
    Sequence(usize),
}

/// One query row of a cached attention call: its stream and its position in the full sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedRow {
    pub stream: Stream,
    pub position: usize,
}

/// The shape of a KV cache, fixed when it is allocated: one shared prefix per prompt group and one private part
/// per sequence, for every layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvLayout {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Token capacity of each group's shared prefix.
    pub prefixes: Vec<usize>,
    /// Per sequence: its group, and the capacity of its private part.
    pub sequences: Vec<(usize, usize)>,
}

impl KvLayout {
    /// Keys plus values, in elements, over all layers.
    pub fn elements(&self) -> usize {
        let tokens: usize = self.prefixes.iter().sum::<usize>() + self.sequences.iter().map(|s| s.1).sum::<usize>();
        2 * self.layers * tokens * self.kv_heads * self.head_dim
    }

    /// Bytes of the cache with `element_size`-byte elements (4 on the CPU backend, 2 for bf16 on the GPU).
    pub fn bytes(&self, element_size: usize) -> usize {
        self.elements() * element_size
    }

    /// A row's slot within its stream's part of the cache (in a prefix, its position; in a sequence's part, its
    /// position less the group's prefix), checked against the layout.
    pub fn slot(&self, row: &CachedRow) -> Result<usize> {
        let p = row.position;
        match row.stream {
            Stream::Prefix(g) => {
                let Some(&capacity) = self.prefixes.get(g) else { anyhow::bail!("KV cache has no prefix group {g}") };
                anyhow::ensure!(p < capacity, "position {p} is past the {capacity}-token prefix of group {g}");
                Ok(p)
            }
            Stream::Sequence(s) => {
                let Some(&(group, capacity)) = self.sequences.get(s) else {
                    anyhow::bail!("KV cache has no sequence {s}")
                };
                let start = self.prefixes[group];
                anyhow::ensure!(
                    p >= start && p - start < capacity,
                    "position {p} of sequence {s} is outside its cache part (positions {start}..{})",
                    start + capacity
                );
                Ok(p - start)
            }
        }
    }

    /// Checks that attention at `layer` with `heads` fits this cache: the layer exists, the key/value heads are
    /// the cache's, and the query heads share them evenly.
    pub fn check_attention(&self, layer: usize, heads: HeadShape) -> Result<()> {
        anyhow::ensure!(layer < self.layers, "KV cache has {} layers, not {}", self.layers, layer + 1);
        anyhow::ensure!(
            heads.kv_heads == self.kv_heads && heads.head_dim == self.head_dim,
            "KV cache holds {}x{} heads, attention asks for {}x{}",
            self.kv_heads,
            self.head_dim,
            heads.kv_heads,
            heads.head_dim
        );
        anyhow::ensure!(
            heads.kv_heads > 0 && heads.heads.is_multiple_of(heads.kv_heads),
            "{} query heads cannot share {} key/value heads",
            heads.heads,
            heads.kv_heads
        );
        Ok(())
    }
}

/// Checks an offset add over `x` (`[rows, cols]`): `offsets` is `[rows_added.len(), cols]` and every row added to
/// is inside `x`.
pub fn check_add_rows(x: (usize, usize), rows_added: &[usize], offsets: (usize, usize)) -> Result<()> {
    anyhow::ensure!(
        offsets == (rows_added.len(), x.1),
        "add_rows: offsets are [{}, {}], expected [{}, {}]",
        offsets.0,
        offsets.1,
        rows_added.len(),
        x.1
    );
    if let Some(bad) = rows_added.iter().find(|&&r| r >= x.0) {
        anyhow::bail!("add_rows: row {bad} is outside a tensor of {} rows", x.0);
    }
    Ok(())
}

/// Checks an attention bias: `[heads * seq, seq]`.
pub fn check_bias(rows: usize, cols: usize, shape: AttentionShape) -> Result<()> {
    let want = (shape.heads * shape.seq, shape.seq);
    anyhow::ensure!(
        (rows, cols) == want,
        "attention: the bias is [{rows}, {cols}], the shape needs [{}, {}]",
        want.0,
        want.1
    );
    Ok(())
}

/// Checks mean-pooling segments `(start, len)`: none empty, all inside a tensor of `rows` rows.
pub fn check_segments(segments: &[(usize, usize)], rows: usize) -> Result<()> {
    for &(start, len) in segments {
        anyhow::ensure!(
            len > 0 && start + len <= rows,
            "mean_rows: rows {start}..{} of a tensor of {rows} rows",
            start + len
        );
    }
    Ok(())
}

/// Device memory use of a backend, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryUse {
    /// Bytes allocated now.
    pub in_use: usize,
    /// The most bytes allocated at once since the backend opened.
    pub peak: usize,
    /// Bytes the backend may allocate in all (its arena).
    pub capacity: usize,
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
    type KvCache: Send;
    /// The cache rows of one forward call, prepared once and read by every layer's rope and cached attention.
    type Rows: Send + Sync;
    /// Device work recorded once and replayed on the same buffers (a CUDA graph).
    type Recording: Send;

    /// The backend's name (`cpu`, `cuda`), which keys caches of computed values.
    fn kind(&self) -> &'static str;

    /// A short description of the device, for logs and `inspect`.
    fn describe(&self) -> String;

    /// Prepares a parameter for use: the rows of every part concatenated in order (several parts make a fused
    /// weight, such as Q, K and V projections into one QKV projection). 1-D parts (biases) are concatenated too.
    fn load_weight(&self, parts: &[&StoredTensor]) -> Result<Self::Weight>;

    /// A `[rows, cols]` parameter of roughly normal values (mean, std) drawn from `seed`, made where the backend
    /// keeps its weights (on the device for CUDA): for benchmarks of real shapes without a checkpoint.
    fn random_weight(&self, rows: usize, cols: usize, mean: f32, std: f32, seed: u64) -> Result<Self::Weight>;

    /// Records the work `f` enqueues, without running it, for [`Backend::replay`]. `None` (and `f` not called)
    /// where the backend does not record, or recording is turned off. Work recorded must not move data between
    /// host and device; the tensors it allocates keep their memory until the recording is dropped.
    fn record<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<Option<(Self::Recording, T)>>;

    /// Runs recorded work again, on the buffers it was recorded with.
    fn replay(&self, recording: &Self::Recording) -> Result<()>;

    /// Copies `src` over `dst` in place (same shape), so that recorded work reading `dst` sees the new values.
    fn overwrite(&self, dst: &mut Self::Tensor, src: &Self::Tensor) -> Result<()>;

    /// Waits until all queued work is done (for timing).
    fn synchronize(&self) -> Result<()>;

    /// Device memory use, where the backend manages its own memory.
    fn memory(&self) -> Option<MemoryUse>;

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
    fn layer_norm(&self, x: &Self::Tensor, gain: &Self::Weight, bias: &Self::Weight, eps: f32) -> Result<Self::Tensor>;

    /// Scaled dot-product attention, `softmax(q k^T / sqrt(d) + bias) v` per head, on a packed QKV tensor; returns
    /// `[batch * seq, heads * head_dim]`. `bias` (MPNet's relative positions), where given, is `[heads * seq, seq]`
    /// (f32), the same for every sequence of the batch.
    fn attention(&self, qkv: &Self::Tensor, shape: AttentionShape, bias: Option<&Self::Tensor>)
    -> Result<Self::Tensor>;

    /// Root-mean-square normalisation of each row, times `gain_offset + gain` (Llama's RMSNorm with offset 0;
    /// Gemma's, whose gains are stored less 1, with offset 1), the sum formed in f32.
    fn rms_norm(&self, x: &Self::Tensor, gain: &Self::Weight, gain_offset: f32, eps: f32) -> Result<Self::Tensor>;

    /// The residual add fused with the next RMS norm: returns `(x + delta, rms_norm(x + delta))`.
    fn add_rms_norm(
        &self,
        x: &Self::Tensor,
        delta: &Self::Tensor,
        gain: &Self::Weight,
        gain_offset: f32,
        eps: f32,
    ) -> Result<(Self::Tensor, Self::Tensor)>;

    /// RMS norm of every query head (gain `q_gain`) and every key head (`k_gain`), each `head_dim` wide, of packed
    /// QKV rows, with the gains offset as in [`Backend::rms_norm`]; the value heads are copied unchanged (Gemma 3's
    /// `q_norm` and `k_norm`).
    fn head_rms_norm(
        &self,
        qkv: &Self::Tensor,
        heads: HeadShape,
        q_gain: &Self::Weight,
        k_gain: &Self::Weight,
        gain_offset: f32,
        eps: f32,
    ) -> Result<Self::Tensor>;

    /// The gated MLP activation: `[m, 2f]` (gate columns, then up columns) to `silu(gate) * up`, `[m, f]`.
    fn silu_mul(&self, gate_up: &Self::Tensor) -> Result<Self::Tensor>;

    /// Gemma's gated MLP activation: `[m, 2f]` to `gelu_tanh(gate) * up`, `[m, f]`.
    fn gelu_tanh_mul(&self, gate_up: &Self::Tensor) -> Result<Self::Tensor>;

    /// A decoder block's output product with the residual add and the next RMS norm: `(residual + x W^T,
    /// rms_norm(residual + x W^T))`. A backend may fuse them (one launch on CUDA).
    fn linear_add_rms_norm(
        &self,
        x: &Self::Tensor,
        weight: &Self::Weight,
        residual: &Self::Tensor,
        gain: &Self::Weight,
        gain_offset: f32,
        eps: f32,
    ) -> Result<(Self::Tensor, Self::Tensor)> {
        let sum = self.linear(x, weight, None, Activation::None, Some(residual))?;
        let normed = self.rms_norm(&sum, gain, gain_offset, eps)?;
        Ok((sum, normed))
    }

    /// The gated MLP's product and activation: `gate(x W_gate^T) * (x W_up^T)` with `W = [W_gate; W_up]`
    /// (`[2f, k]`), `[m, f]`. A backend may fuse them (one launch on CUDA).
    fn linear_gated(&self, x: &Self::Tensor, weight: &Self::Weight, gate: Gate) -> Result<Self::Tensor> {
        let gate_up = self.linear(x, weight, None, Activation::None, None)?;
        match gate {
            Gate::Silu => self.silu_mul(&gate_up),
            Gate::GeluTanh => self.gelu_tanh_mul(&gate_up),
        }
    }

    /// The QKV projection of block `layer` with rope, its keys and values written to the cache
    /// ([`Backend::store_kv`]); returns the rotated QKV rows for [`Backend::attend_cached`]. A backend may fuse
    /// them (one launch on CUDA).
    #[allow(clippy::too_many_arguments)]
    fn linear_rope_store(
        &self,
        x: &Self::Tensor,
        weight: &Self::Weight,
        bias: Option<&Self::Weight>,
        cache: &mut Self::KvCache,
        layer: usize,
        rows: &Self::Rows,
        heads: HeadShape,
        inv_freq: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        let qkv = self.linear(x, weight, bias, Activation::None, None)?;
        let qkv = self.rope(&qkv, rows, heads, inv_freq)?;
        self.store_kv(&qkv, cache, layer, rows, heads)?;
        Ok(qkv)
    }

    /// Rotary position embedding of the query and key heads of packed QKV rows (rotate-half layout), each row at
    /// its cache row's position, with per-pair inverse frequencies `inv_freq` (`[1, head_dim / 2]`, as uploaded).
    fn rope(
        &self,
        qkv: &Self::Tensor,
        rows: &Self::Rows,
        heads: HeadShape,
        inv_freq: &Self::Tensor,
    ) -> Result<Self::Tensor>;

    /// Adds `offsets` row `j` to row `rows[j]` of `x` (the steering offset add).
    fn add_rows(&self, x: &Self::Tensor, rows: &[usize], offsets: &Self::Tensor) -> Result<Self::Tensor>;

    /// The mean of each `(start, len)` run of rows: `[segments, cols]`.
    fn mean_rows(&self, x: &Self::Tensor, segments: &[(usize, usize)]) -> Result<Self::Tensor>;

    /// Bytes of one cached key or value element (4 for f32 on the CPU, 2 for bf16 on the GPU).
    fn kv_element_bytes(&self) -> usize;

    /// Allocates a KV cache once for a whole batch.
    fn kv_cache(&self, layout: &KvLayout) -> Result<Self::KvCache>;

    /// Checks the rows of a forward call against the cache's layout and prepares them for rope and attention.
    fn cache_rows(&self, cache: &Self::KvCache, rows: &[CachedRow]) -> Result<Self::Rows>;

    /// Prepares new rows (as many, of the same streams) in place of `rows`, so that recorded work reading them sees
    /// the new ones.
    fn update_rows(&self, cache: &Self::KvCache, rows: &mut Self::Rows, new: &[CachedRow]) -> Result<()>;

    /// Writes each row's keys and values (already rotated) of packed QKV rows to its stream at its position.
    fn store_kv(
        &self,
        qkv: &Self::Tensor,
        cache: &mut Self::KvCache,
        layer: usize,
        rows: &Self::Rows,
        heads: HeadShape,
    ) -> Result<()>;

    /// Causal attention through the cache, the rows' own keys and values already stored: each row attends to every
    /// cached position up to its own (a sequence row reads its group's prefix, then its own part), or to the last
    /// `scoring.window` of them. Returns `[rows, heads * head_dim]`.
    fn attend_cached(
        &self,
        qkv: &Self::Tensor,
        cache: &mut Self::KvCache,
        layer: usize,
        rows: &Self::Rows,
        heads: HeadShape,
        scoring: Scoring,
    ) -> Result<Self::Tensor>;

    /// [`Backend::store_kv`], then [`Backend::attend_cached`].
    fn attention_cached(
        &self,
        qkv: &Self::Tensor,
        cache: &mut Self::KvCache,
        layer: usize,
        rows: &Self::Rows,
        heads: HeadShape,
        scoring: Scoring,
    ) -> Result<Self::Tensor> {
        self.store_kv(qkv, cache, layer, rows, heads)?;
        self.attend_cached(qkv, cache, layer, rows, heads, scoring)
    }

    /// The next token of each row of `logits` (`[rows, vocab]`), row `i` drawn with `rngs[i]` at `steps[i]`, exactly
    /// as [`crate::sampling::sample`] defines it; only the tokens come back to the host.
    fn sample(
        &self,
        logits: &Self::Tensor,
        params: &SamplingParams,
        rngs: &[SequenceRng],
        steps: &[u64],
    ) -> Result<Vec<u32>>;

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
    /// added; returns `[batch * (1 + patches), dim]`. A side holds `size / patch` patches, rounded down: as a
    /// convolution of stride `patch` does, the pixels past the last whole patch are not seen (SigLIP's 384 pixels
    /// in patches of 14).
    fn patch_embed(
        &self,
        pixels: &Self::Tensor,
        image_size: usize,
        patch: usize,
        weight: &Self::Weight,
        class_embedding: &Self::Weight,
        positions: &Self::Weight,
    ) -> Result<Self::Tensor>;

    /// Rows of an embedding table for a list of token ids, times `scale` (1, or Gemma's `sqrt(hidden)`, rounded
    /// to the backend's activation type as HF rounds it to the weights' dtype), `[ids, dim]`.
    fn embed(&self, ids: &[u32], table: &Self::Weight, scale: f32) -> Result<Self::Tensor>;

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
