//! How a case compares an output with its reference. A matrix is judged by its worst row, each row by relative
//! error (`||out - ref|| / ||ref||`), so that one wrong row or tile among many right ones shows in full instead of
//! being averaged away; rows wider than [`PIECE`] values are judged piece by piece for the same reason. A NaN
//! anywhere, or an infinity where the reference is finite, makes the error NaN or infinite, which no tolerance
//! passes; outputs of another length than the reference are not compared at all and the case fails, saying so.

/// An output's distance from its reference, or why the two cannot be compared (then the case fails with that
/// reason).
pub type Measure = Result<f64, String>;

/// The most values of one row judged together: wider rows are judged in pieces of this many (the last one
/// shorter). A kernel's wrong output tile puts 8 wrong values in each of 16 rows; within a piece of 1,024 values
/// that is a relative error near sqrt(8 / 1024) ~ 0.09 when the tile's values are of the output's size, four times
/// the loosest tolerance, where a whole row of Llama 3's 128,256 logits would average it down to 0.008.
const PIECE: usize = 1024;

/// Share of a typical piece's reference norm below which a piece is judged against that share instead of its own
/// norm. A kernel's rounding error follows the scale of its inputs, not of each output: a piece whose reference
/// happens to be much smaller than the others' (near-cancelling sums, values near zero) would show an ordinary
/// absolute error as a large relative one. Its error is then `||out - ref|| / (NORM_FLOOR * typical)`: absolute
/// below the floor, relative above it. Rows of random inputs lie well above a quarter of the typical norm, so the
/// floor changes nothing for them, and a wrong tiny piece still fails against the floor.
const NORM_FLOOR: f64 = 0.25;

/// Fails, naming both lengths, where `got` and `want` hold different numbers of `what`.
pub fn same_length(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("the output has {got} {what}, the reference {want}")) }
}

/// The larger of two errors, NaN where either is (unlike `f64::max`, which drops a NaN).
pub fn worse(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// The largest relative error of any row of `width` values of `out` against `reference` (rows wider than
/// [`PIECE`] judged piece by piece, pieces of a small reference against the [`NORM_FLOOR`]).
pub fn worst_row_error(out: &[f32], reference: &[f32], width: usize) -> Measure {
    same_length("values", out.len(), reference.len())?;
    assert!(width > 0, "rows of no values");
    let piece = width.min(PIECE);
    // A typical piece of n values has the squared norm n times the reference's mean square.
    let mean_square = squared_norm(reference) / reference.len().max(1) as f64;
    let floor = |n: usize| (NORM_FLOOR * NORM_FLOOR * mean_square * n as f64).max(f64::MIN_POSITIVE);
    let error = out
        .chunks(width)
        .zip(reference.chunks(width))
        .flat_map(|(o, r)| o.chunks(piece).zip(r.chunks(piece)))
        .map(|(o, r)| (squared_distance(o, r) / squared_norm(r).max(floor(r.len()))).sqrt())
        .fold(0.0, worse);
    Ok(error)
}

/// `||a - b||^2`, in f64; NaN or infinite where a value is.
fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum()
}

fn squared_norm(a: &[f32]) -> f64 {
    a.iter().map(|&x| (x as f64).powi(2)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selftest::Inputs;

    /// The loosest tolerance of selftest's floating-point cases: a metric that exceeds it fails every case.
    const LOOSEST_TOLERANCE: f64 = 2e-2;

    /// `rows x cols` random values of magnitude up to 1.
    fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        Inputs { state: seed }.values(rows * cols, 1.0)
    }

    #[test]
    fn a_row_off_by_a_tenth_measures_a_tenth() {
        let want = vec![3.0, 4.0, 1.0, 0.0];
        let got = vec![3.3, 4.4, 1.0, 0.0];
        let error = worst_row_error(&got, &want, 2).unwrap();
        assert!((error - 0.1).abs() < 1e-6, "{error}");
    }

    #[test]
    fn bf16_rounding_passes_with_room() {
        let want = matrix(257, 2048, 1);
        let got: Vec<f32> = want.iter().map(|&v| half::bf16::from_f32(v * 1.001).to_f32()).collect();
        let error = worst_row_error(&got, &want, 2048).unwrap();
        assert!(error < LOOSEST_TOLERANCE / 4.0, "{error}");
    }

    #[test]
    fn a_nan_or_an_infinity_in_one_row_fails() {
        let want = matrix(300, 64, 2);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut got = want.clone();
            got[150 * 64 + 7] = bad;
            let error = worst_row_error(&got, &want, 64).unwrap();
            let passes = error <= LOOSEST_TOLERANCE;
            assert!(!passes, "{bad} in one row measured {error}");
        }
        // A NaN in the last row, after every other row measured 0, as in the first.
        for at in [0, want.len() - 1] {
            let mut got = want.clone();
            got[at] = f32::NAN;
            assert!(worst_row_error(&got, &want, 64).unwrap().is_nan(), "NaN at {at}");
        }
    }

    /// One 16x8 output tile zeroed in a 257 x 2048 matrix (526,336 values): 0.016 over the whole matrix, under
    /// the tolerance; per row, far over it.
    #[test]
    fn one_wrong_tile_in_a_large_matrix_fails() {
        let (rows, cols) = (257, 2048);
        let want = matrix(rows, cols, 3);
        let mut got = want.clone();
        for r in 112..128 {
            got[r * cols + 1000..r * cols + 1008].fill(0.0);
        }
        let whole = (squared_distance(&got, &want) / squared_norm(&want)).sqrt();
        assert!(whole < LOOSEST_TOLERANCE, "the whole-matrix error {whole} already fails: the test shows nothing");
        let error = worst_row_error(&got, &want, cols).unwrap();
        assert!(error > LOOSEST_TOLERANCE, "{error}");
    }

    /// A tile wrong in one row of 128,256 logits (as Llama 3's vocabulary) is judged within its piece of the row.
    #[test]
    fn a_wrong_tile_in_a_very_wide_row_fails() {
        let cols = 128_256;
        let want = matrix(2, cols, 4);
        let mut got = want.clone();
        got[cols + 64_000..cols + 64_008].iter_mut().for_each(|v| *v = -*v);
        let whole_row = (squared_distance(&got[cols..], &want[cols..]) / squared_norm(&want[cols..])).sqrt();
        assert!(whole_row < LOOSEST_TOLERANCE, "the whole row's error {whole_row} already fails");
        let error = worst_row_error(&got, &want, cols).unwrap();
        assert!(error > LOOSEST_TOLERANCE, "{error}");
    }

    /// A row far smaller than the others, off by the rounding of the output's scale, passes against the floor; the
    /// same row made of the output's typical values fails.
    #[test]
    fn a_tiny_row_is_judged_against_the_floor() {
        let cols = 64;
        let mut want = matrix(10, cols, 5);
        want[3 * cols..4 * cols].iter_mut().for_each(|v| *v *= 1e-4);
        let mut got = want.clone();
        got[3 * cols..4 * cols].iter_mut().for_each(|v| *v += 1e-3);
        let error = worst_row_error(&got, &want, cols).unwrap();
        assert!(error < LOOSEST_TOLERANCE, "{error}");
        got[3 * cols..4 * cols].copy_from_slice(&want[..cols]);
        let error = worst_row_error(&got, &want, cols).unwrap();
        assert!(error > 1.0, "{error}");
    }

    #[test]
    fn outputs_of_another_length_fail_naming_both() {
        let want = matrix(3, 4, 6);
        let error = worst_row_error(&want[..10], &want, 4).unwrap_err();
        assert_eq!(error, "the output has 10 values, the reference 12");
        assert!(worst_row_error(&[], &want, 4).is_err());
        assert_eq!(same_length("sequences", 5, 5), Ok(()));
    }

    #[test]
    fn worse_keeps_a_nan() {
        assert!(worse(0.5, f64::NAN).is_nan());
        assert!(worse(f64::NAN, 0.5).is_nan());
        assert_eq!(worse(0.5, 0.25), 0.5);
        assert_eq!(worse(0.25, f64::INFINITY), f64::INFINITY);
    }
}
