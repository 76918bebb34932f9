//! `out = a b^T` for row-major matrices, through the `gemm` crate on rayon's pool.

/// Writes `a [m, k] x b[n, k]^T` into the first `n` columns of `out`, whose rows are `out_stride` apart.
pub fn matmul_nt_into(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, out: &mut [f32], out_stride: usize) {
    // Checked products: the bounds of the unsafe call below rest on them not wrapping.
    let fits = |len: usize, size: Option<usize>| size.is_some_and(|size| len >= size);
    assert!(
        fits(a.len(), m.checked_mul(k)) && fits(b.len(), n.checked_mul(k)),
        "matmul operands are smaller than [{m}, {k}] and [{n}, {k}]"
    );
    assert!(n <= out_stride, "matmul output rows of {n} values overlap at stride {out_stride}");
    let out_size = m.checked_sub(1).map(|rows| rows.checked_mul(out_stride).and_then(|s| s.checked_add(n)));
    assert!(out_size.is_none_or(|size| fits(out.len(), size)), "matmul output is too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in out.chunks_mut(out_stride).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above keep every index the strides reach inside the three slices; `out` is borrowed
    // mutably, so it does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product_with_stride() {
        let (m, n, k, stride) = (5, 3, 7, 4);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let b: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
        let mut out = vec![9.0f32; m * stride];
        matmul_nt_into(&a, &b, m, n, k, &mut out, stride);
        for i in 0..m {
            for j in 0..n {
                let expect: f32 = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
                assert!((out[i * stride + j] - expect).abs() < 1e-5, "({i},{j}) {} vs {expect}", out[i * stride + j]);
            }
            assert_eq!(out[i * stride + 3], 9.0, "column past n must be untouched");
        }
    }
}
