//! Launch wrappers of the decoder-LLM kernels that work row by row: RMS norm (with the fused residual add, and of
//! attention heads), rotary embedding, the SiLU and tanh-GELU gates, the steering offset add, mean pooling,
//! embedding lookup and random weights. Shapes are checked here, at the boundary.

use super::kv_cache::CudaRows;
use super::ops::{DTensor, DType, Variant, arg, blocks, null};
use super::runtime::Gpu;
use crate::backend::{HeadShape, check_add_rows, check_segments};
use anyhow::{Result, bail, ensure};

/// The widest row the fast RMS norm keeps in registers (256 threads x 32 columns).
const RMS_NORM_FAST_MAX_COLS: usize = 256 * 32;

/// An RMS norm's gain (bf16, used as `gain_offset + gain`) and epsilon.
pub struct RmsGain<'a> {
    pub gain: &'a DTensor,
    pub gain_offset: f32,
    pub eps: f32,
}

/// `rms_norm(x + delta)` (and the sum itself) or, without `delta`, `rms_norm(x)`; all bf16.
pub fn rms_norm(
    gpu: &Gpu,
    x: &DTensor,
    delta: Option<&DTensor>,
    norm: RmsGain,
    variant: Variant,
) -> Result<(Option<DTensor>, DTensor)> {
    let RmsGain { gain, gain_offset, eps } = norm;
    x.expect("RMS norm input", DType::Bf16)?;
    gain.expect("RMS norm gain", DType::Bf16)?;
    ensure!(gain.rows * gain.cols == x.cols, "RMS norm: gain of {} for rows of {}", gain.rows * gain.cols, x.cols);
    if let Some(d) = delta {
        d.expect("residual delta", DType::Bf16)?;
        ensure!(
            d.rows == x.rows && d.cols == x.cols,
            "residual add: x is [{}, {}] but delta is [{}, {}]",
            x.rows,
            x.cols,
            d.rows,
            d.cols
        );
    }
    let sum = delta.map(|_| DTensor::new(gpu, x.rows, x.cols, DType::Bf16, "residual sum")).transpose()?;
    let y = DTensor::new(gpu, x.rows, x.cols, DType::Bf16, "RMS norm output")?;
    let delta_ptr = delta.map_or(null(), |d| d.block.ptr);
    let sum_ptr = sum.as_ref().map_or(null(), |s| s.block.ptr);
    let (rows, cols) = (x.rows as i32, x.cols as i32);
    let mut args = [
        arg(&x.block.ptr),
        arg(&delta_ptr),
        arg(&gain.block.ptr),
        arg(&sum_ptr),
        arg(&y.block.ptr),
        arg(&rows),
        arg(&cols),
        arg(&eps),
        arg(&gain_offset),
    ];
    // SAFETY: the arguments match rms_norm / rms_norm_plain; every tensor was checked to be [rows, cols] bf16.
    unsafe {
        if variant == Variant::Fast && x.cols <= RMS_NORM_FAST_MAX_COLS {
            gpu.launch("rms_norm", (x.rows as u32, 1, 1), (256, 1, 1), 0, &mut args)?;
        } else {
            gpu.launch("rms_norm_plain", (blocks(x.rows, 128), 1, 1), (128, 1, 1), 0, &mut args)?;
        }
    }
    Ok((sum, y))
}

/// RMS norm of each query head (gain `q_gain`) and key head (`k_gain`) of packed bf16 QKV rows; value heads copied.
pub fn head_rms_norm(
    gpu: &Gpu,
    qkv: &DTensor,
    heads: HeadShape,
    q_gain: &DTensor,
    k_gain: &DTensor,
    gain_offset: f32,
    eps: f32,
    variant: Variant,
) -> Result<DTensor> {
    qkv.expect("head RMS norm input", DType::Bf16)?;
    ensure!(qkv.cols == heads.qkv_width(), "head RMS norm: rows of {}, expected {}", qkv.cols, heads.qkv_width());
    for gain in [q_gain, k_gain] {
        gain.expect("head RMS norm gain", DType::Bf16)?;
        ensure!(
            gain.rows * gain.cols == heads.head_dim,
            "head RMS norm: gain of {} for heads of {}",
            gain.rows * gain.cols,
            heads.head_dim
        );
    }
    let out = DTensor::new(gpu, qkv.rows, qkv.cols, DType::Bf16, "head-normalised QKV")?;
    let (rows, h, kv, d) = (qkv.rows as i32, heads.heads as i32, heads.kv_heads as i32, heads.head_dim as i32);
    let mut args = [
        arg(&qkv.block.ptr),
        arg(&q_gain.block.ptr),
        arg(&k_gain.block.ptr),
        arg(&out.block.ptr),
        arg(&rows),
        arg(&h),
        arg(&kv),
        arg(&d),
        arg(&eps),
        arg(&gain_offset),
    ];
    let units = qkv.rows * (heads.heads + 2 * heads.kv_heads);
    // SAFETY: the arguments match head_rms_norm / head_rms_norm_plain; qkv and out are [rows, qkv_width] bf16, the
    // gains hold head_dim values each.
    unsafe {
        match variant {
            Variant::Fast => gpu.launch("head_rms_norm", (blocks(units, 4), 1, 1), (128, 1, 1), 0, &mut args)?,
            Variant::Plain => {
                gpu.launch("head_rms_norm_plain", (blocks(units, 128), 1, 1), (128, 1, 1), 0, &mut args)?
            }
        }
    }
    Ok(out)
}

/// Rotates the query and key heads of packed QKV rows, each at its cache row's position.
pub fn rope(gpu: &Gpu, qkv: &DTensor, rows: &CudaRows, heads: HeadShape, inv_freq: &DTensor) -> Result<DTensor> {
    qkv.expect("rope input", DType::Bf16)?;
    inv_freq.expect("rope frequencies", DType::F32)?;
    ensure!(qkv.cols == heads.qkv_width(), "rope: rows of {}, expected {}", qkv.cols, heads.qkv_width());
    ensure!(qkv.rows == rows.len(), "rope: {} rows for {} cache rows", qkv.rows, rows.len());
    ensure!(
        heads.head_dim.is_multiple_of(2) && inv_freq.rows * inv_freq.cols * 2 == heads.head_dim,
        "rope: {} frequencies for head size {}",
        inv_freq.rows * inv_freq.cols,
        heads.head_dim
    );
    let out = DTensor::new(gpu, qkv.rows, qkv.cols, DType::Bf16, "rotated QKV")?;
    let (n_rows, record_width) = (qkv.rows as i32, super::kv_cache::ROW_FIELDS as i32);
    let (h, kv, d) = (heads.heads as i32, heads.kv_heads as i32, heads.head_dim as i32);
    let mut args = [
        arg(&qkv.block.ptr),
        arg(&out.block.ptr),
        arg(&rows.records.block.ptr),
        arg(&record_width),
        arg(&inv_freq.block.ptr),
        arg(&n_rows),
        arg(&h),
        arg(&kv),
        arg(&d),
    ];
    // SAFETY: the arguments match rope (one thread per row and rotation pair); qkv and out are [rows, qkv_width],
    // the records hold one record per row.
    unsafe { gpu.launch("rope", (blocks(qkv.rows * heads.head_dim / 2, 128), 1, 1), (128, 1, 1), 0, &mut args)? };
    Ok(out)
}

/// `[m, 2f]` (gate, up) to `act(gate) * up`, `[m, f]`, by the kernel `silu_mul` or `gelu_tanh_mul`.
pub fn gated(gpu: &Gpu, gate_up: &DTensor, kernel: &str) -> Result<DTensor> {
    gate_up.expect("gated MLP input", DType::Bf16)?;
    ensure!(gate_up.cols.is_multiple_of(2), "{kernel}: {} columns do not split into gate and up halves", gate_up.cols);
    let f = gate_up.cols / 2;
    let out = DTensor::new(gpu, gate_up.rows, f, DType::Bf16, "gated MLP activation")?;
    let (rows, f_i) = (gate_up.rows as i32, f as i32);
    let mut args = [arg(&gate_up.block.ptr), arg(&out.block.ptr), arg(&rows), arg(&f_i)];
    // SAFETY: the arguments match silu_mul and gelu_tanh_mul; gate_up is [rows, 2f], out [rows, f].
    unsafe { gpu.launch(kernel, (blocks(gate_up.rows * f, 256), 1, 1), (256, 1, 1), 0, &mut args)? };
    Ok(out)
}

/// A copy of `x` (bf16) with `offsets` row j (f32) added to row `rows[j]`.
pub fn add_rows(gpu: &Gpu, x: &DTensor, rows: &[usize], offsets: &DTensor) -> Result<DTensor> {
    x.expect("steered hidden states", DType::Bf16)?;
    check_add_rows((x.rows, x.cols), rows, (offsets.rows, offsets.cols))?;
    let mut seen = rows.to_vec();
    seen.sort_unstable();
    ensure!(seen.windows(2).all(|w| w[0] != w[1]), "add_rows: a row is named twice");
    let offsets_f32 =
        if offsets.dtype == DType::F32 { None } else { Some(super::ops::convert(gpu, offsets, DType::F32)?) };
    let offsets = offsets_f32.as_ref().unwrap_or(offsets);
    let out = DTensor::new(gpu, x.rows, x.cols, DType::Bf16, "steered hidden states")?;
    gpu.copy(&x.block, &out.block, x.rows * x.cols * 2)?;
    let (n, cols) = (rows.len() as i32, x.cols as i32);
    // Every row in order (the decode step of a batch, which is recorded for replay) needs no index list, and so
    // no copy from the host.
    let identity = rows.iter().enumerate().all(|(j, &r)| j == r);
    let indices = if identity {
        None
    } else {
        let indices: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        Some(DTensor::upload_u32(gpu, &indices, "steered rows")?)
    };
    let indices_ptr = indices.as_ref().map_or(null(), |t| t.block.ptr);
    let mut args = [arg(&out.block.ptr), arg(&indices_ptr), arg(&offsets.block.ptr), arg(&n), arg(&cols)];
    // SAFETY: the arguments match add_rows; every row index is inside `out` (or null: rows 0..n), offsets are
    // [n, cols] f32.
    unsafe { gpu.launch("add_rows", (rows.len() as u32, blocks(x.cols, 256), 1), (256, 1, 1), 0, &mut args)? };
    Ok(out)
}

/// The mean of each `(start, len)` run of rows of a bf16 tensor, as f32 `[segments, cols]`.
pub fn mean_rows(gpu: &Gpu, x: &DTensor, segments: &[(usize, usize)]) -> Result<DTensor> {
    x.expect("pooled hidden states", DType::Bf16)?;
    check_segments(segments, x.rows)?;
    let flat: Vec<u32> = segments.iter().flat_map(|&(start, len)| [start as u32, len as u32]).collect();
    let segments_t = DTensor::upload_u32(gpu, &flat, "pooled segments")?;
    let out = DTensor::new(gpu, segments.len(), x.cols, DType::F32, "mean-pooled rows")?;
    let (n, cols) = (segments.len() as i32, x.cols as i32);
    let mut args = [arg(&x.block.ptr), arg(&segments_t.block.ptr), arg(&out.block.ptr), arg(&n), arg(&cols)];
    // SAFETY: the arguments match mean_rows; every segment lies inside `x`.
    unsafe { gpu.launch("mean_rows", (segments.len() as u32, blocks(x.cols, 256), 1), (256, 1, 1), 0, &mut args)? };
    Ok(out)
}

/// Rows of an embedding table (bf16) for token ids, times `scale`.
pub fn embed(gpu: &Gpu, ids: &[u32], table: &DTensor, scale: f32) -> Result<DTensor> {
    table.expect("embedding table", DType::Bf16)?;
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= table.rows) {
        bail!("token id {bad} is outside the vocabulary ({} entries)", table.rows);
    }
    let ids_t = DTensor::upload_u32(gpu, ids, "token ids")?;
    let out = DTensor::new(gpu, ids.len(), table.cols, DType::Bf16, "token embeddings")?;
    let (n, cols) = (ids.len() as i32, table.cols as i32);
    let mut args =
        [arg(&table.block.ptr), arg(&ids_t.block.ptr), arg(&out.block.ptr), arg(&n), arg(&cols), arg(&scale)];
    // SAFETY: the arguments match embed_rows; every id is a row of the table.
    unsafe { gpu.launch("embed_rows", (ids.len() as u32, blocks(table.cols, 256), 1), (256, 1, 1), 0, &mut args)? };
    Ok(out)
}

/// A `[rows, cols]` bf16 weight of the counter-based normal stream of `crate::random_normal`, made on the device.
pub fn random_normal(gpu: &Gpu, rows: usize, cols: usize, mean: f32, std: f32, seed: u64) -> Result<DTensor> {
    let out = DTensor::new(gpu, rows, cols, DType::Bf16, "random weight")?;
    let n = (rows * cols) as i64;
    let scale = std * crate::random_normal::NORMAL_SCALE;
    let mut args = [arg(&out.block.ptr), arg(&n), arg(&seed), arg(&mean), arg(&scale)];
    // SAFETY: the arguments match random_normal_bf16; `out` holds n bf16 values.
    unsafe { gpu.launch("random_normal_bf16", (blocks(n as usize, 256), 1, 1), (256, 1, 1), 0, &mut args)? };
    Ok(out)
}
