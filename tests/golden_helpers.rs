//! The comparison helpers of the golden tests (`tests/common`): a NaN, a wrong tile or outputs of another length
//! must fail the comparisons built on them.

mod common;

use common::{max_abs_error, max_row_relative_error, worse};

/// The loosest tolerance of the golden tests' row comparisons.
const LOOSEST_TOLERANCE: f32 = 2e-2;

/// `rows x cols` values spread over [-1, 1], none zero.
fn matrix(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols).map(|i| ((i * 7919 % 2003) as f32 - 1001.5) / 1001.5).collect()
}

#[test]
fn a_nan_in_one_row_fails() {
    let want = matrix(40, 64);
    let mut got = want.clone();
    got[17 * 64 + 5] = f32::NAN;
    let error = max_row_relative_error(&got, &want, 64);
    let passes = error < LOOSEST_TOLERANCE;
    assert!(!passes, "{error}");
    assert!(max_abs_error(&got, &want).is_nan());
}

#[test]
fn an_infinity_in_one_row_fails() {
    let want = matrix(40, 64);
    let mut got = want.clone();
    got[39 * 64 + 63] = f32::NEG_INFINITY;
    assert_eq!(max_row_relative_error(&got, &want, 64), f32::INFINITY);
}

/// One 16x8 output tile zeroed in a 257 x 2048 matrix.
#[test]
fn one_wrong_tile_in_a_large_matrix_fails() {
    let (rows, cols) = (257, 2048);
    let want = matrix(rows, cols);
    let mut got = want.clone();
    for r in 200..216 {
        got[r * cols + 512..r * cols + 520].fill(0.0);
    }
    let error = max_row_relative_error(&got, &want, cols);
    assert!(error > LOOSEST_TOLERANCE, "{error}");
    assert_eq!(max_row_relative_error(&want, &want, cols), 0.0);
}

#[test]
#[should_panic(expected = "an output of 10 values against a reference of 12")]
fn outputs_of_another_length_fail_naming_both() {
    let want = matrix(3, 4);
    max_row_relative_error(&want[..10], &want, 4);
}

#[test]
fn worse_keeps_a_nan() {
    assert!(worse(1.0, f32::NAN).is_nan());
    assert!(worse(f32::NAN, 1.0).is_nan());
    assert_eq!(worse(1.0, 2.0), 2.0);
}
