//! Dequantization of ggml's block formats to f32, one block at a time, as ggml's reference `dequantize_row_*`
//! functions define them. Every block starts with (or, for Q6_K, ends with) f16 scales; the packed values follow.

use super::ggml_type::QuantType;
use half::f16;
use rayon::prelude::*;

/// Blocks per parallel task: large enough that a task outweighs its scheduling.
const BLOCKS_PER_TASK: usize = 1024;

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Dequantizes whole blocks: `bytes` holds `out.len() / block_values` blocks of `quant`. Large inputs are split
/// across rayon's threads.
pub fn dequantize(quant: QuantType, bytes: &[u8], out: &mut [f32]) {
    let (values, size) = (quant.block_values(), quant.block_bytes());
    assert!(out.len().is_multiple_of(values), "{} values are not whole {quant} blocks", out.len());
    let blocks = out.len() / values;
    assert!(bytes.len() >= blocks * size, "{} bytes hold fewer than {blocks} {quant} blocks", bytes.len());
    let block = block_fn(quant);
    let tasks =
        out.par_chunks_mut(values * BLOCKS_PER_TASK).zip(bytes[..blocks * size].par_chunks(size * BLOCKS_PER_TASK));
    tasks.for_each(|(out, bytes)| {
        for (y, x) in out.chunks_exact_mut(values).zip(bytes.chunks_exact(size)) {
            block(x, y);
        }
    });
}

fn block_fn(quant: QuantType) -> fn(&[u8], &mut [f32]) {
    match quant {
        QuantType::Q4_0 => q4_0,
        QuantType::Q4_1 => q4_1,
        QuantType::Q5_0 => q5_0,
        QuantType::Q5_1 => q5_1,
        QuantType::Q8_0 => q8_0,
        QuantType::Q4K => q4_k,
        QuantType::Q5K => q5_k,
        QuantType::Q6K => q6_k,
    }
}

/// d, then 16 bytes of 4-bit values: low nibbles are values 0..16, high nibbles 16..32, offset by 8.
fn q4_0(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    let qs = &x[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0f) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// d and a minimum m, then 4-bit values as in Q4_0 without the offset: y = q d + m.
fn q4_1(x: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(x, 0), f16_at(x, 2));
    let qs = &x[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0x0f) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// The fifth bit of value j (0..32) from the 32-bit mask `qh`, as 0 or 16.
fn high_bit(qh: u32, j: usize) -> u8 {
    (((qh >> j) & 1) << 4) as u8
}

/// d, a 32-bit mask of fifth bits, then 4-bit low parts as in Q4_0; offset by 16.
fn q5_0(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
    let qs = &x[6..22];
    for j in 0..16 {
        y[j] = (((qs[j] & 0x0f) | high_bit(qh, j)) as i32 - 16) as f32 * d;
        y[j + 16] = (((qs[j] >> 4) | high_bit(qh, j + 16)) as i32 - 16) as f32 * d;
    }
}

/// d and a minimum m, then Q5_0's layout without the offset: y = q d + m.
fn q5_1(x: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(x, 0), f16_at(x, 2));
    let qh = u32::from_le_bytes([x[4], x[5], x[6], x[7]]);
    let qs = &x[8..24];
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0f) | high_bit(qh, j)) as f32 * d + m;
        y[j + 16] = ((qs[j] >> 4) | high_bit(qh, j + 16)) as f32 * d + m;
    }
}

/// d, then 32 signed bytes.
fn q8_0(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 0);
    for (y, &q) in y.iter_mut().zip(&x[2..34]) {
        *y = q as i8 as f32 * d;
    }
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) of a K-quant block, packed into 12 bytes: sub-blocks 0..4
/// in the low 6 bits of bytes 0..4 and 4..8; sub-blocks 4..8 in the nibbles of bytes 8..12 with their top two
/// bits in the top bits of bytes 0..8.
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    if j < 4 {
        ((q[j] & 63) as f32, (q[j + 4] & 63) as f32)
    } else {
        let scale = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        let min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (scale as f32, min as f32)
    }
}

/// d and dmin, 12 bytes of 6-bit sub-block scales and minimums, 128 bytes of 4-bit values: eight sub-blocks of
/// 32, y = d scale q - dmin min. Each 32 bytes hold two sub-blocks (low nibbles, then high nibbles).
fn q4_k(x: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(x, 0), f16_at(x, 2));
    let scales = &x[4..16];
    let qs = &x[16..144];
    for pair in 0..4 {
        let q = &qs[pair * 32..pair * 32 + 32];
        let (s1, m1) = scale_min_k4(2 * pair, scales);
        let (s2, m2) = scale_min_k4(2 * pair + 1, scales);
        let y = &mut y[pair * 64..pair * 64 + 64];
        for l in 0..32 {
            y[l] = d * s1 * (q[l] & 0x0f) as f32 - dmin * m1;
            y[l + 32] = d * s2 * (q[l] >> 4) as f32 - dmin * m2;
        }
    }
}

/// Q4_K with a fifth bit per value: 32 bytes of high bits (bit 2k of byte l for sub-block 2k, bit 2k+1 for
/// sub-block 2k+1) between the scales and the 4-bit values.
fn q5_k(x: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(x, 0), f16_at(x, 2));
    let scales = &x[4..16];
    let qh = &x[16..48];
    let qs = &x[48..176];
    for pair in 0..4 {
        let q = &qs[pair * 32..pair * 32 + 32];
        let (s1, m1) = scale_min_k4(2 * pair, scales);
        let (s2, m2) = scale_min_k4(2 * pair + 1, scales);
        let (bit1, bit2) = (1u8 << (2 * pair), 1u8 << (2 * pair + 1));
        let y = &mut y[pair * 64..pair * 64 + 64];
        for l in 0..32 {
            let high1 = if qh[l] & bit1 != 0 { 16 } else { 0 };
            let high2 = if qh[l] & bit2 != 0 { 16 } else { 0 };
            y[l] = d * s1 * ((q[l] & 0x0f) + high1) as f32 - dmin * m1;
            y[l + 32] = d * s2 * ((q[l] >> 4) + high2) as f32 - dmin * m2;
        }
    }
}

/// 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed 8-bit scales (one per 16 values), then d: values
/// offset by 32. Each half of 128 values takes 64 low bytes, 32 high bytes and 8 scales.
fn q6_k(x: &[u8], y: &mut [f32]) {
    let d = f16_at(x, 208);
    for half in 0..2 {
        let ql = &x[half * 64..half * 64 + 64];
        let qh = &x[128 + half * 32..128 + half * 32 + 32];
        let sc = &x[192 + half * 8..192 + half * 8 + 8];
        let y = &mut y[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}
