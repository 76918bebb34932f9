//! One launch wrapper per kernel: shapes checked at the boundary, the output allocated from the arena, the
//! launch geometry the kernel expects. Each computing op has a `Variant`: the plain kernel or the fast one.

use super::device_arena::DeviceBlock;
use super::llm_ops::RmsGain;
use super::runtime::Gpu;
use crate::backend::{Activation, AttentionShape, HeadShape, TemplateCounts, check_bias};
use anyhow::{Result, bail, ensure};
use std::ffi::c_void;

/// Which kernel of a pair runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Obviously right, slow.
    Plain,
    /// Tiled, tensor cores where there are any.
    Fast,
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Variant::Plain => "plain",
            Variant::Fast => "fast",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    Bf16,
    F32,
    U32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::Bf16 => 2,
            DType::F32 | DType::U32 => 4,
        }
    }
}

/// A 2-D row-major tensor in the arena.
pub struct DTensor {
    pub block: DeviceBlock,
    pub rows: usize,
    pub cols: usize,
    pub dtype: DType,
}

impl DTensor {
    /// A tensor of `[rows, cols]` values of `dtype`, unwritten, from the arena (`what` names it in errors).
    pub fn new(gpu: &Gpu, rows: usize, cols: usize, dtype: DType, what: &str) -> Result<Self> {
        let block = gpu.arena().alloc(rows * cols * dtype.size(), what)?;
        Ok(Self { block, rows, cols, dtype })
    }

    /// A tensor of f32 values copied from the host.
    pub fn upload_f32(gpu: &Gpu, data: &[f32], rows: usize, cols: usize, what: &str) -> Result<Self> {
        ensure!(data.len() == rows * cols, "{what}: {} values for [{rows}, {cols}]", data.len());
        let t = Self::new(gpu, rows, cols, DType::F32, what)?;
        gpu.upload(&t.block, data)?;
        Ok(t)
    }

    /// Rounds to bf16 on the host (round to nearest even, as the kernels' conversions do).
    pub fn upload_bf16(gpu: &Gpu, data: &[f32], rows: usize, cols: usize, what: &str) -> Result<Self> {
        ensure!(data.len() == rows * cols, "{what}: {} values for [{rows}, {cols}]", data.len());
        let values: Vec<half::bf16> = data.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let t = Self::new(gpu, rows, cols, DType::Bf16, what)?;
        gpu.upload(&t.block, &values)?;
        Ok(t)
    }

    /// A `[1, n]` tensor of u32 values copied from the host.
    pub fn upload_u32(gpu: &Gpu, data: &[u32], what: &str) -> Result<Self> {
        let t = Self::new(gpu, 1, data.len(), DType::U32, what)?;
        gpu.upload(&t.block, data)?;
        Ok(t)
    }

    /// The values as f32 (bf16 widened exactly).
    pub fn download_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let n = self.rows * self.cols;
        Ok(match self.dtype {
            DType::F32 => {
                let mut out = vec![0f32; n];
                gpu.download(&self.block, &mut out)?;
                out
            }
            DType::Bf16 => {
                let mut out = vec![half::bf16::ZERO; n];
                gpu.download(&self.block, &mut out)?;
                out.into_iter().map(f32::from).collect()
            }
            DType::U32 => self.download_u32(gpu)?.into_iter().map(|v| v as f32).collect(),
        })
    }

    pub fn download_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        ensure!(self.dtype == DType::U32, "not a u32 tensor");
        let mut out = vec![0u32; self.rows * self.cols];
        gpu.download(&self.block, &mut out)?;
        Ok(out)
    }

    pub(super) fn expect(&self, what: &str, dtype: DType) -> Result<()> {
        ensure!(self.dtype == dtype, "{what}: expected {dtype:?}, got {:?}", self.dtype);
        Ok(())
    }
}

/// A kernel parameter: a pointer to the value, as cuLaunchKernel takes them.
pub(super) fn arg<T>(value: &T) -> *mut c_void {
    value as *const T as *mut c_void
}

pub(super) fn null() -> u64 {
    0
}

pub(super) const fn blocks(n: usize, per: usize) -> u32 {
    n.div_ceil(per) as u32
}

pub fn activation_code(a: Activation) -> i32 {
    match a {
        Activation::None => 0,
        Activation::QuickGelu => 1,
        Activation::Gelu => 2,
        Activation::GeluTanh => 3,
    }
}

/// `act(x W^T + bias) + residual`, all bf16: x [m, k], W [n, k], bias [n], residual [m, n].
pub fn linear(
    gpu: &Gpu,
    x: &DTensor,
    w: &DTensor,
    bias: Option<&DTensor>,
    act: Activation,
    residual: Option<&DTensor>,
    variant: Variant,
) -> Result<DTensor> {
    check_product(x, w, bias, residual)?;
    let (m, n) = (x.rows, w.rows);
    let y = DTensor::new(gpu, m, n, DType::Bf16, "linear output")?;
    let epilogue = Epilogue { bias, act, residual, ..Epilogue::default() };
    match variant {
        Variant::Plain => gemm_plain(gpu, x, w, &epilogue, &y)?,
        Variant::Fast => gemm_mma(gpu, x, w, &epilogue, Mode::Plain, &y)?,
    }
    Ok(y)
}

/// `s = residual + x W^T` and its RMS norm, all bf16: the residual add of a decoder block and the norm after it.
/// Fast: one launch (the product's epilogue adds, its last column tile of each row tile normalises); plain (and a
/// product of more row tiles than counters): the product with the residual in its epilogue, then the RMS norm.
pub fn linear_add_rms_norm(
    gpu: &Gpu,
    x: &DTensor,
    w: &DTensor,
    residual: &DTensor,
    norm: &RmsGain,
    variant: Variant,
) -> Result<(DTensor, DTensor)> {
    check_product(x, w, None, Some(residual))?;
    norm.gain.expect("RMS norm gain", DType::Bf16)?;
    let (m, n) = (x.rows, w.rows);
    ensure!(
        norm.gain.rows * norm.gain.cols == n,
        "RMS norm: gain of {} for rows of {n}",
        norm.gain.rows * norm.gain.cols
    );
    if variant == Variant::Plain || !fuses_norm(gpu, m) {
        let sum = linear(gpu, x, w, None, Activation::None, Some(residual), variant)?;
        let plain_norm = RmsGain { gain: norm.gain, gain_offset: norm.gain_offset, eps: norm.eps };
        let (_, normed) = super::llm_ops::rms_norm(gpu, &sum, None, plain_norm, variant)?;
        return Ok((sum, normed));
    }
    let sum = DTensor::new(gpu, m, n, DType::Bf16, "residual sum")?;
    let normed = DTensor::new(gpu, m, n, DType::Bf16, "RMS norm output")?;
    let epilogue = Epilogue { residual: Some(residual), norm: Some((norm, &normed)), ..Epilogue::default() };
    gemm_mma(gpu, x, w, &epilogue, Mode::Plain, &sum)?;
    Ok((sum, normed))
}

/// Whether `gemm_mma` has a counter for each 64-row tile of `m` rows to norm (a prefill of millions of rows runs
/// the product and the norm apart).
fn fuses_norm(gpu: &Gpu, m: usize) -> bool {
    m.div_ceil(64) <= gpu.tile_counter_capacity()
}

/// The gated MLP's product and gate: `act(x W_gate^T) * (x W_up^T)`, W = [gate (f); up (f)] `[2f, k]`, out
/// `[m, f]`; `kernel` names the gate (`silu_mul` or `gelu_tanh_mul`). Fast: one launch; plain: the plain product,
/// then the gate's kernel.
pub fn linear_gated(gpu: &Gpu, x: &DTensor, w: &DTensor, kernel: &str, variant: Variant) -> Result<DTensor> {
    check_product(x, w, None, None)?;
    let mode = match kernel {
        "silu_mul" => Mode::Silu,
        "gelu_tanh_mul" => Mode::GeluTanh,
        _ => bail!("no gated product for {kernel}"),
    };
    ensure!(w.rows.is_multiple_of(2), "{kernel}: {} weight rows do not split into gate and up halves", w.rows);
    if variant == Variant::Plain {
        let gate_up = linear(gpu, x, w, None, Activation::None, None, variant)?;
        return super::llm_ops::gated(gpu, &gate_up, kernel);
    }
    let y = DTensor::new(gpu, x.rows, w.rows / 2, DType::Bf16, "gated MLP activation")?;
    gemm_mma(gpu, x, w, &Epilogue::default(), mode, &y)?;
    Ok(y)
}

fn check_product(x: &DTensor, w: &DTensor, bias: Option<&DTensor>, residual: Option<&DTensor>) -> Result<()> {
    for (name, t) in [("x", Some(x)), ("weight", Some(w)), ("bias", bias), ("residual", residual)] {
        if let Some(t) = t {
            t.expect(name, DType::Bf16)?;
        }
    }
    let (m, k, n) = (x.rows, x.cols, w.rows);
    ensure!(w.cols == k, "linear: x is [{m}, {k}] but the weight is [{n}, {}]", w.cols);
    if let Some(b) = bias {
        ensure!(b.rows * b.cols == n, "linear: bias of {} values for {n} outputs", b.rows * b.cols);
    }
    if let Some(r) = residual {
        ensure!((r.rows, r.cols) == (m, n), "linear: residual [{}, {}] for output [{m}, {n}]", r.rows, r.cols);
    }
    Ok(())
}

/// What `gemm_mma` does with its tiles besides the product (kernels/gemm.cu): the mode's column pairing and
/// epilogue, and for plain tiles the bias, activation, residual and an RMS norm of the rows into a second output.
#[derive(Default)]
pub(super) struct Epilogue<'a> {
    pub bias: Option<&'a DTensor>,
    pub act: Activation,
    pub residual: Option<&'a DTensor>,
    pub norm: Option<(&'a RmsGain<'a>, &'a DTensor)>,
    pub rope: Option<RopeStore<'a>>,
}

/// The rope mode's inputs: the rows' cache records, the rotary frequencies and one layer's key and value buffers.
pub(super) struct RopeStore<'a> {
    pub records: u64,
    pub inv_freq: &'a DTensor,
    pub keys: u64,
    pub values: u64,
    pub heads: HeadShape,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Plain = 0,
    Silu = 1,
    GeluTanh = 2,
    Rope = 3,
}

fn gemm_plain(gpu: &Gpu, x: &DTensor, w: &DTensor, e: &Epilogue, y: &DTensor) -> Result<()> {
    let (m, k, n) = (x.rows, x.cols, w.rows);
    let (bias_ptr, residual_ptr) = (e.bias.map_or(null(), |b| b.block.ptr), e.residual.map_or(null(), |r| r.block.ptr));
    let (mi, ni, ki, code) = (m as i32, n as i32, k as i32, activation_code(e.act));
    let mut args = [
        arg(&x.block.ptr),
        arg(&w.block.ptr),
        arg(&bias_ptr),
        arg(&residual_ptr),
        arg(&y.block.ptr),
        arg(&mi),
        arg(&ni),
        arg(&ki),
        arg(&code),
    ];
    // SAFETY: the arguments match gemm_plain's parameters; the caller checked every tensor's shape.
    unsafe { gpu.launch("gemm_plain", (m as u32, blocks(n, 128), 1), (128, 1, 1), 0, &mut args) }
}

/// The tile shape of the tensor-core products (kernels/gemm.cu): 64 x 64 tiles of 4 warps (`gemm_mma`), or 64 x
/// 128, 64 x 256 or 128 x 128 tiles of 8 warps (`gemm_mma_64x128`, `gemm_mma_64x256`, `gemm_mma_128x128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmTiles {
    /// Per product ([`gemm_tile`]).
    Auto = 0,
    /// 64 x 64 everywhere.
    Small = 1,
    /// 128 x 128 everywhere.
    Large = 2,
    /// 64 x 128 everywhere.
    Wide = 3,
    /// 64 x 256 everywhere.
    Widest = 4,
}

impl GemmTiles {
    pub(super) fn from_u8(v: u8) -> Self {
        match v {
            1 => GemmTiles::Small,
            2 => GemmTiles::Large,
            3 => GemmTiles::Wide,
            4 => GemmTiles::Widest,
            _ => GemmTiles::Auto,
        }
    }
}

impl std::fmt::Display for GemmTiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GemmTiles::Auto => "tiles by shape",
            GemmTiles::Small => "64x64 tiles",
            GemmTiles::Large => "128x128 tiles",
            GemmTiles::Wide => "64x128 tiles",
            GemmTiles::Widest => "64x256 tiles",
        })
    }
}

/// A product's tile: rows of Y (of X) by columns of Y (rows of W).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub rows: usize,
    pub cols: usize,
}

impl Tile {
    pub const SMALL: Tile = Tile { rows: 64, cols: 64 };
    pub const WIDE: Tile = Tile { rows: 64, cols: 128 };
    pub const WIDEST: Tile = Tile { rows: 64, cols: 256 };
    pub const LARGE: Tile = Tile { rows: 128, cols: 128 };

    /// The kernel, its threads per block and its dynamic shared memory (`GemmTiles<...>::SHARED` in
    /// kernels/gemm.cu: the larger of its 4 stages of X's and W's 32-wide bf16 tiles and its staged f32 output with
    /// rows of `cols + 8`; the small tile's is static).
    fn kernel(self) -> (&'static str, u32, u32) {
        let name = match (self.rows, self.cols) {
            (64, 128) => "gemm_mma_64x128",
            (64, 256) => "gemm_mma_64x256",
            (128, 128) => "gemm_mma_128x128",
            _ => return ("gemm_mma", 128, 0),
        };
        let (stages, output) = (4 * (self.rows + self.cols) * 32 * 2, self.rows * (self.cols + 8) * 4);
        (name, 256, stages.max(output) as u32)
    }
}

/// The tile of a product of `m` rows and `n` columns of W, in every mode (the rope mode's tiles hold runs of
/// rotary pairs of as many heads as they take). Chosen by shape: a decode step's products (at most 64 rows) take
/// 64 x 256 tiles, which read the batch's rows of X once per 256 columns, and split K; a product of more rows takes
/// 128 x 128 tiles where it has at least one per SM (fewer would leave SMs idle that 64 x 64 tiles keep busy), else
/// 64 x 64.
pub fn gemm_tile(tiles: GemmTiles, m: usize, n: usize, sms: usize) -> Tile {
    let large_tiles = m.div_ceil(128) * n.div_ceil(128);
    match tiles {
        GemmTiles::Auto if m <= 64 => Tile::WIDEST,
        GemmTiles::Auto if large_tiles >= sms => Tile::LARGE,
        GemmTiles::Auto | GemmTiles::Small => Tile::SMALL,
        GemmTiles::Large => Tile::LARGE,
        GemmTiles::Wide => Tile::WIDE,
        GemmTiles::Widest => Tile::WIDEST,
    }
}

/// Launches `gemm_mma` or one of its wider twins ([`gemm_tile`]) in `mode` into `y` (shaped for the mode by the
/// caller). Split K where the product is a decode step's (see [`k_splits`]) and the tile counters suffice.
pub(super) fn gemm_mma(gpu: &Gpu, x: &DTensor, w: &DTensor, e: &Epilogue, mode: Mode, y: &DTensor) -> Result<()> {
    let (m, k, n) = (x.rows, x.cols, w.rows);
    let head_dim = e.rope.as_ref().map_or(0, |r| r.heads.head_dim);
    if mode == Mode::Rope {
        ensure!(
            head_dim >= 2 && head_dim.is_multiple_of(2) && n.is_multiple_of(head_dim),
            "the fused rope product needs whole heads of an even size ({n} outputs, heads of {head_dim})"
        );
    }
    let tile = gemm_tile(gpu.gemm_tiles(), m, n, gpu.multiprocessors);
    let column_tiles = match mode {
        Mode::Plain => n.div_ceil(tile.cols),
        Mode::Silu | Mode::GeluTanh | Mode::Rope => (n / 2).div_ceil(tile.cols / 2),
    };
    let row_tiles = m.div_ceil(tile.rows);
    let tiles = row_tiles * column_tiles;
    let capacity = gpu.tile_counter_capacity();
    let splits = if tiles + row_tiles <= capacity { k_splits(m, column_tiles, k, gpu.multiprocessors) } else { 1 };
    ensure!(
        e.norm.is_none() || fuses_norm(gpu, m),
        "a fused RMS norm over {row_tiles} row tiles needs more than the {capacity} tile counters"
    );
    let partial = if splits > 1 {
        Some(DTensor::new(gpu, splits * tiles, tile.rows * tile.cols, DType::F32, "split-K partial tiles")?)
    } else {
        None
    };
    let ptr = |t: Option<&DTensor>| t.map_or(null(), |t| t.block.ptr);
    let (bias_ptr, residual_ptr, partial_ptr) = (ptr(e.bias), ptr(e.residual), ptr(partial.as_ref()));
    let (mi, ni, ki, code, mode_i) = (m as i32, n as i32, k as i32, activation_code(e.act), mode as i32);
    let pair = match mode {
        Mode::Plain => 0,
        Mode::Silu | Mode::GeluTanh => (n / 2) as i32,
        Mode::Rope => (head_dim / 2) as i32,
    };
    let rope = e.rope.as_ref();
    let (records, record_width) = (rope.map_or(null(), |r| r.records), super::kv_cache::ROW_FIELDS as i32);
    let inv_freq = ptr(rope.map(|r| r.inv_freq));
    let (keys, values) = (rope.map_or(null(), |r| r.keys), rope.map_or(null(), |r| r.values));
    let (heads, kv_heads) = rope.map_or((0, 0), |r| (r.heads.heads as i32, r.heads.kv_heads as i32));
    let (gain, normed) = e.norm.map_or((null(), null()), |(g, out)| (g.gain.block.ptr, out.block.ptr));
    let (eps, gain_offset) = e.norm.map_or((0.0f32, 0.0f32), |(g, _)| (g.eps, g.gain_offset));
    let counters = gpu.tile_counters();
    let mut args = [
        arg(&x.block.ptr),
        arg(&w.block.ptr),
        arg(&bias_ptr),
        arg(&residual_ptr),
        arg(&y.block.ptr),
        arg(&mi),
        arg(&ni),
        arg(&ki),
        arg(&code),
        arg(&partial_ptr),
        arg(&counters),
        arg(&mode_i),
        arg(&pair),
        arg(&records),
        arg(&record_width),
        arg(&inv_freq),
        arg(&keys),
        arg(&values),
        arg(&heads),
        arg(&kv_heads),
        arg(&gain),
        arg(&normed),
        arg(&eps),
        arg(&gain_offset),
    ];
    let grid = (row_tiles as u32, column_tiles as u32, splits as u32);
    let (kernel, threads, shared) = tile.kernel();
    // SAFETY: the arguments match the kernel's parameters (every variant has gemm_mma's). The caller checked
    // x, w, the bias, the residual and y for this mode's shapes (and the rope mode's records and cache slots); the
    // partial tiles hold splits x tiles x tile rows x tile columns floats; the counters (zero between launches) hold
    // a counter per tile and per row tile.
    unsafe { gpu.launch(kernel, grid, (threads, 1, 1), shared, &mut args) }
}

/// How many blocks share each of a product's `output_tiles` (in a row of tiles) along K. Only a product of at
/// most 64 rows (a decode step's batch) is split, and the count depends on the tiles, K and the GPU alone, never
/// on the number of rows: a row's result is then the same in any batch of up to 64 rows. The aim is about two
/// blocks per SM, each with at least 16 tiles of K (512 values) to stream.
pub fn k_splits(m: usize, output_tiles: usize, k: usize, multiprocessors: usize) -> usize {
    if m > 64 {
        return 1;
    }
    let wanted = (2 * multiprocessors).div_ceil(output_tiles);
    wanted.clamp(1, (k / 512).max(1))
}

/// Layer norm of each row of x (bf16), with gain and bias (bf16, `cols` values each).
pub fn layer_norm(
    gpu: &Gpu,
    x: &DTensor,
    gain: &DTensor,
    bias: &DTensor,
    eps: f32,
    variant: Variant,
) -> Result<DTensor> {
    x.expect("x", DType::Bf16)?;
    ensure!(
        gain.rows * gain.cols == x.cols && bias.rows * bias.cols == x.cols,
        "layer_norm: gain and bias must have {} values",
        x.cols
    );
    let y = DTensor::new(gpu, x.rows, x.cols, DType::Bf16, "layer norm output")?;
    let (rows, cols) = (x.rows as i32, x.cols as i32);
    let mut args = [
        arg(&x.block.ptr),
        arg(&gain.block.ptr),
        arg(&bias.block.ptr),
        arg(&y.block.ptr),
        arg(&rows),
        arg(&cols),
        arg(&eps),
    ];
    // SAFETY: the arguments match layer_norm_plain / layer_norm.
    unsafe {
        match variant {
            Variant::Plain => gpu.launch("layer_norm_plain", (blocks(x.rows, 128), 1, 1), (128, 1, 1), 0, &mut args)?,
            Variant::Fast => gpu.launch("layer_norm", (x.rows as u32, 1, 1), (256, 1, 1), 0, &mut args)?,
        }
    }
    Ok(y)
}

/// Each row of x (f32) over its L2 norm; a zero row stays zero.
pub fn l2_normalize(gpu: &Gpu, x: &DTensor, variant: Variant) -> Result<DTensor> {
    x.expect("x", DType::F32)?;
    let y = DTensor::new(gpu, x.rows, x.cols, DType::F32, "normalised rows")?;
    let (rows, cols) = (x.rows as i32, x.cols as i32);
    let mut args = [arg(&x.block.ptr), arg(&y.block.ptr), arg(&rows), arg(&cols)];
    // SAFETY: the arguments match l2_normalize_plain / l2_normalize.
    unsafe {
        match variant {
            Variant::Plain => {
                gpu.launch("l2_normalize_plain", (blocks(x.rows, 128), 1, 1), (128, 1, 1), 0, &mut args)?
            }
            Variant::Fast => gpu.launch("l2_normalize", (x.rows as u32, 1, 1), (256, 1, 1), 0, &mut args)?,
        }
    }
    Ok(y)
}

pub fn bf16_to_f32(gpu: &Gpu, x: &DTensor) -> Result<DTensor> {
    x.expect("x", DType::Bf16)?;
    let y = DTensor::new(gpu, x.rows, x.cols, DType::F32, "f32 copy")?;
    let n = (x.rows * x.cols) as i64;
    let mut args = [arg(&x.block.ptr), arg(&y.block.ptr), arg(&n)];
    // SAFETY: the arguments match bf16_to_f32.
    unsafe { gpu.launch("bf16_to_f32", (blocks(n as usize, 256), 1, 1), (256, 1, 1), 0, &mut args)? };
    Ok(y)
}

/// Attention over packed QKV rows (bf16); returns [batch * seq, heads * head_dim].
pub fn attention(
    gpu: &Gpu,
    qkv: &DTensor,
    shape: AttentionShape,
    bias: Option<&DTensor>,
    variant: Variant,
) -> Result<DTensor> {
    qkv.expect("qkv", DType::Bf16)?;
    if let Some(bias) = bias {
        bias.expect("attention bias", DType::F32)?;
        check_bias(bias.rows, bias.cols, shape)?;
    }
    let AttentionShape { batch, seq, heads, kv_heads, head_dim, causal } = shape;
    ensure!(
        qkv.rows == batch * seq && qkv.cols == shape.qkv_width(),
        "attention: qkv is [{}, {}], the shape needs [{}, {}]",
        qkv.rows,
        qkv.cols,
        batch * seq,
        shape.qkv_width()
    );
    ensure!(kv_heads > 0 && heads % kv_heads == 0, "attention: {heads} heads over {kv_heads} key/value heads");
    ensure!(batch <= 65535 && heads <= 65535, "attention: batch {batch} and heads {heads} must each be at most 65535");
    let limit = if variant == Variant::Fast { 128 } else { 256 };
    ensure!(head_dim <= limit, "attention: head_dim {head_dim} is over the {variant:?} kernel's limit of {limit}");
    // The tensor-core kernel takes head sizes of 64 and 128 (CLIP's, MPNet's, Llama's); others the tiled one.
    let tensor_cores = variant == Variant::Fast && matches!(head_dim, 64 | 128);
    let out = DTensor::new(gpu, batch * seq, heads * head_dim, DType::Bf16, "attention output")?;
    let (b, s, h, kvh, d, c) =
        (batch as i32, seq as i32, heads as i32, kv_heads as i32, head_dim as i32, causal as i32);
    let scale = 1.0f32 / (head_dim as f32).sqrt();
    let bias_ptr = bias.map_or(null(), |b| b.block.ptr);
    let mut args = [
        arg(&qkv.block.ptr),
        arg(&bias_ptr),
        arg(&out.block.ptr),
        arg(&b),
        arg(&s),
        arg(&h),
        arg(&kvh),
        arg(&d),
        arg(&c),
        arg(&scale),
    ];
    // SAFETY: the arguments match attention_plain / attention / attention_mma.
    unsafe {
        match variant {
            Variant::Plain => {
                gpu.launch("attention_plain", (blocks(batch * seq * heads, 4), 1, 1), (128, 1, 1), 0, &mut args)?
            }
            Variant::Fast if tensor_cores => {
                let grid = (blocks(seq, 64), heads as u32, batch as u32);
                gpu.launch("attention_mma", grid, (128, 1, 1), 0, &mut args)?
            }
            Variant::Fast => {
                gpu.launch("attention", (blocks(seq, 16), heads as u32, batch as u32), (128, 1, 1), 0, &mut args)?
            }
        }
    }
    Ok(out)
}

/// Token rows plus position rows (bf16 tables); ids form a [batch, seq] grid.
pub fn embed_tokens(gpu: &Gpu, ids: &DTensor, seq: usize, table: &DTensor, positions: &DTensor) -> Result<DTensor> {
    ids.expect("ids", DType::U32)?;
    let rows = ids.rows * ids.cols;
    ensure!(seq > 0 && rows.is_multiple_of(seq) && seq <= positions.rows, "embed_tokens: {rows} ids in rows of {seq}");
    ensure!(table.cols == positions.cols, "embed_tokens: table and positions differ in width");
    let out = DTensor::new(gpu, rows, table.cols, DType::Bf16, "token embeddings")?;
    let (r, s, dim) = (rows as i32, seq as i32, table.cols as i32);
    let mut args = [
        arg(&ids.block.ptr),
        arg(&table.block.ptr),
        arg(&positions.block.ptr),
        arg(&out.block.ptr),
        arg(&r),
        arg(&s),
        arg(&dim),
    ];
    // SAFETY: the arguments match embed_tokens.
    unsafe { gpu.launch("embed_tokens", (rows as u32, blocks(table.cols, 256), 1), (256, 1, 1), 0, &mut args)? };
    Ok(out)
}

/// The parameters of a ViT's input layer (bf16): the patch projection [dim, 3 * patch * patch] (no bias), the class
/// token [dim] and the positions [1 + patches, dim].
pub struct PatchEmbedding<'a> {
    pub size: usize,
    pub patch: usize,
    pub weight: &'a DTensor,
    pub class_embedding: &'a DTensor,
    pub positions: &'a DTensor,
}

/// ViT input: pixels [batch, 3 * size * size] (f32) through the patch projection, class token prepended,
/// positions added: [batch * (1 + patches), dim].
pub fn patch_embed(gpu: &Gpu, pixels: &DTensor, p: &PatchEmbedding, variant: Variant) -> Result<DTensor> {
    let PatchEmbedding { size, patch, weight, class_embedding, positions } = *p;
    pixels.expect("pixels", DType::F32)?;
    ensure!(
        patch > 0 && patch <= size && pixels.cols == 3 * size * size,
        "patch_embed: pixels [_, {}] for size {size}",
        pixels.cols
    );
    let (batch, grid, width) = (pixels.rows, size / patch, 3 * patch * patch);
    let patches = grid * grid;
    ensure!(
        weight.cols == width,
        "patch_embed: the projection is [{}, {}], patches have {width}",
        weight.rows,
        weight.cols
    );
    ensure!(positions.rows == patches + 1, "patch_embed: {} positions for {} tokens", positions.rows, patches + 1);
    let rows = DTensor::new(gpu, batch * patches, width, DType::Bf16, "patch rows")?;
    let (b, s, pi) = (batch as i32, size as i32, patch as i32);
    let mut args = [arg(&pixels.block.ptr), arg(&rows.block.ptr), arg(&b), arg(&s), arg(&pi)];
    // SAFETY: the arguments match patch_rows.
    unsafe { gpu.launch("patch_rows", (blocks(batch * patches * width, 256), 1, 1), (256, 1, 1), 0, &mut args)? };
    let projected = linear(gpu, &rows, weight, None, Activation::None, None, variant)?;
    let dim = weight.rows;
    let out = DTensor::new(gpu, batch * (patches + 1), dim, DType::Bf16, "vision tokens")?;
    let (pc, d) = (patches as i32, dim as i32);
    let mut args = [
        arg(&projected.block.ptr),
        arg(&class_embedding.block.ptr),
        arg(&positions.block.ptr),
        arg(&out.block.ptr),
        arg(&b),
        arg(&pc),
        arg(&d),
    ];
    // SAFETY: the arguments match vision_tokens.
    unsafe {
        gpu.launch("vision_tokens", (blocks(batch * (patches + 1) * dim, 256), 1, 1), (256, 1, 1), 0, &mut args)?
    };
    Ok(out)
}

/// Per class, the mean over templates of normalised features [templates * classes, dim] (f32), normalised again.
pub fn average_templates(
    gpu: &Gpu,
    features: &DTensor,
    templates: usize,
    classes: usize,
    variant: Variant,
) -> Result<DTensor> {
    features.expect("features", DType::F32)?;
    ensure!(
        features.rows == templates * classes,
        "average_templates: {} rows for {templates} x {classes}",
        features.rows
    );
    let mean = DTensor::new(gpu, classes, features.cols, DType::F32, "ensemble features")?;
    let (t, c, d) = (templates as i32, classes as i32, features.cols as i32);
    let mut args = [arg(&features.block.ptr), arg(&mean.block.ptr), arg(&t), arg(&c), arg(&d)];
    // SAFETY: the arguments match average_templates.
    unsafe {
        gpu.launch("average_templates", (blocks(classes * features.cols, 256), 1, 1), (256, 1, 1), 0, &mut args)?
    };
    l2_normalize(gpu, &mean, variant)
}

/// Top-1, top-5 and per-class top-1 counts of every template.
pub fn score(
    gpu: &Gpu,
    images: &DTensor,
    class_features: &DTensor,
    labels: &DTensor,
    templates: usize,
    classes: usize,
    variant: Variant,
) -> Result<Vec<TemplateCounts>> {
    images.expect("images", DType::F32)?;
    class_features.expect("class features", DType::F32)?;
    labels.expect("labels", DType::U32)?;
    let (n, dim) = (images.rows, images.cols);
    ensure!(labels.rows * labels.cols == n, "score: {} labels for {n} images", labels.rows * labels.cols);
    ensure!(
        class_features.rows == templates * classes && class_features.cols == dim,
        "score: class features [{}, {}] for {templates} x {classes} of width {dim}",
        class_features.rows,
        class_features.cols
    );
    ensure!(templates <= 65535, "score: at most 65535 templates per call, not {templates}");
    let counts = DTensor::upload_u32(gpu, &vec![0u32; 2 * templates + templates * classes], "score counts")?;
    let (top1, top5, per_class) =
        (counts.block.ptr, counts.block.ptr + 4 * templates as u64, counts.block.ptr + 8 * templates as u64);
    let (ni, ci, di) = (n as i32, classes as i32, dim as i32);
    let mut args = [
        arg(&images.block.ptr),
        arg(&class_features.block.ptr),
        arg(&labels.block.ptr),
        arg(&ni),
        arg(&ci),
        arg(&di),
        arg(&top1),
        arg(&top5),
        arg(&per_class),
    ];
    // SAFETY: the arguments match score_plain / score; the counts buffer holds 2 t + t c values.
    unsafe {
        match variant {
            Variant::Plain => {
                gpu.launch("score_plain", (blocks(n, 128), templates as u32, 1), (128, 1, 1), 0, &mut args)?
            }
            Variant::Fast => {
                gpu.launch("score", (n as u32, templates as u32, 1), (128, 1, 1), (dim * 4) as u32, &mut args)?
            }
        }
    }
    let all = counts.download_u32(gpu)?;
    let (top1, top5, per_class) = (&all[..templates], &all[templates..2 * templates], &all[2 * templates..]);
    Ok((0..templates)
        .map(|t| TemplateCounts {
            top1: top1[t] as usize,
            top5: top5[t] as usize,
            top1_per_class: per_class[t * classes..(t + 1) * classes].iter().map(|&c| c as usize).collect(),
        })
        .collect())
}

/// The rows at the given indices, in order (bf16 or f32).
pub fn gather_rows(gpu: &Gpu, x: &DTensor, rows: &[usize]) -> Result<DTensor> {
    if let Some(bad) = rows.iter().find(|&&r| r >= x.rows) {
        anyhow::bail!("gather: row {bad} is outside a tensor of {} rows", x.rows);
    }
    let (kernel, dtype) = match x.dtype {
        DType::Bf16 => ("gather_rows_bf16", DType::Bf16),
        DType::F32 => ("gather_rows_f32", DType::F32),
        DType::U32 => anyhow::bail!("gather: u32 tensors are not gathered"),
    };
    let indices: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let indices = DTensor::upload_u32(gpu, &indices, "gathered row indices")?;
    let out = DTensor::new(gpu, rows.len(), x.cols, dtype, "gathered rows")?;
    let (n, cols) = (rows.len() as i32, x.cols as i32);
    let mut args = [arg(&x.block.ptr), arg(&indices.block.ptr), arg(&out.block.ptr), arg(&n), arg(&cols)];
    // SAFETY: the arguments match gather_rows_bf16 / gather_rows_f32; every index was checked.
    unsafe { gpu.launch(kernel, (rows.len() as u32, blocks(x.cols, 256), 1), (256, 1, 1), 0, &mut args)? };
    Ok(out)
}

/// A bf16 tensor as f32, or an f32 one rounded to bf16; a tensor already of `dtype` is copied through unchanged.
pub fn convert(gpu: &Gpu, x: &DTensor, dtype: DType) -> Result<DTensor> {
    match (x.dtype, dtype) {
        (DType::Bf16, DType::F32) => bf16_to_f32(gpu, x),
        (DType::F32, DType::Bf16) => {
            let y = DTensor::new(gpu, x.rows, x.cols, DType::Bf16, "bf16 copy")?;
            let n = (x.rows * x.cols) as i64;
            let mut args = [arg(&x.block.ptr), arg(&y.block.ptr), arg(&n)];
            // SAFETY: the arguments match f32_to_bf16.
            unsafe { gpu.launch("f32_to_bf16", (blocks(n as usize, 256), 1, 1), (256, 1, 1), 0, &mut args)? };
            Ok(y)
        }
        (from, to) => anyhow::bail!("no conversion from {from:?} to {to:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{GemmTiles, Tile, gemm_tile, k_splits};

    #[test]
    fn tiles_by_shape_fill_the_gpu() {
        let auto = |m, n| gemm_tile(GemmTiles::Auto, m, n, 132);
        // Llama-3-8B prefill of 2,000 prompt tokens: every product has at least one 128 x 128 tile per SM.
        assert_eq!(auto(2000, 6144), Tile::LARGE);
        assert_eq!(auto(2000, 2 * 14336), Tile::LARGE);
        assert_eq!(auto(2000, 4096), Tile::LARGE);
        // 77 tiles of 128 would leave 55 of 132 SMs idle: 64 x 64 tiles; 144 are enough.
        assert_eq!(auto(800, 1408), Tile::SMALL);
        assert_eq!(auto(1100, 2048), Tile::LARGE);
        // Decode batches take the widest 64-row tiles (and split K), however narrow or wide the output.
        assert_eq!(auto(64, 128_256), Tile::WIDEST);
        assert_eq!(auto(1, 2 * 64), Tile::WIDEST);
        assert_eq!(auto(65, 1536), Tile::SMALL);
        // A forced shape holds whatever the product.
        assert_eq!(gemm_tile(GemmTiles::Large, 1, 8, 132), Tile::LARGE);
        assert_eq!(gemm_tile(GemmTiles::Wide, 4096, 8, 132), Tile::WIDE);
        assert_eq!(gemm_tile(GemmTiles::Small, 40, 4096, 132), Tile::SMALL);
    }

    #[test]
    fn k_splits_fill_the_gpu_for_decode_batches_only() {
        // Llama-3-8B's o_proj at a decode batch on 132 SMs: 64 output tiles of 64 columns, five blocks share each;
        // 32 tiles of 128 columns, eight (the most that leaves each 512 values of K).
        assert_eq!(k_splits(40, 64, 4096, 132), 5);
        assert_eq!(k_splits(40, 32, 4096, 132), 8);
        // The same for every batch of up to 64 rows, none for more.
        assert!((1..=64).all(|m| k_splits(m, 64, 4096, 132) == 5));
        assert_eq!(k_splits(65, 64, 4096, 132), 1);
        // Wide outputs fill the GPU alone; short sums are not split below 512 values each.
        assert_eq!(k_splits(40, 448, 4096, 132), 1);
        assert_eq!(k_splits(40, 1, 1000, 132), 1);
        assert_eq!(k_splits(40, 1, 2048, 132), 4);
    }
}
