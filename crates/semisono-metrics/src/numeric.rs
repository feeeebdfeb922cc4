//! numpy-compatible floating-point reductions.
//!
//! The reference values this crate is checked against come from numpy, whose `sum`/`mean` use a
//! blocked pairwise summation. Reproducing the same summation order makes means bit-identical to
//! numpy's instead of merely close, so these helpers are used wherever a reference library calls
//! `np.sum`, `np.mean`, `np.average`, `np.trapz` or `np.percentile`.

/// numpy's pairwise-summation block size (`PW_BLOCKSIZE`).
const PW_BLOCKSIZE: usize = 128;
/// `numpy.add.reduce` over a contiguous 1-d float64 array (`np.sum(x)`), bit for bit.
///
/// numpy starts from the identity 0.0 and, for a contiguous array that needs no casting (the
/// reduction iterator grows its inner loop to the whole array), adds one pairwise sum of all
/// elements. Returns `0.0` for an empty slice.
pub fn np_sum(x: &[f64]) -> f64 {
    0.0 + pairwise_sum(x)
}

/// The pairwise summation of numpy's `DOUBLE_add` reduce loop (`@TYPE@_pairwise_sum`).
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= PW_BLOCKSIZE {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[i..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `np.mean(x)` for a 1-d float64 array: `np.sum(x) / n`. NaN for an empty slice (as numpy).
pub fn np_mean(x: &[f64]) -> f64 {
    np_sum(x) / x.len() as f64
}

/// `np.std(x, ddof)`: the square root of `sum((x - mean)^2) / (n - ddof)`, numpy's operation order.
///
/// Returns NaN when `n <= ddof` (numpy warns and returns NaN or inf there; we always return NaN).
pub fn np_std(x: &[f64], ddof: usize) -> f64 {
    let n = x.len();
    if n <= ddof {
        return f64::NAN;
    }
    let mean = np_mean(x);
    let sq: Vec<f64> = x
        .iter()
        .map(|&v| {
            let d = v - mean;
            d * d
        })
        .collect();
    (np_sum(&sq) / (n - ddof) as f64).sqrt()
}

/// numpy's `_lerp(a, b, t)` as used by `np.percentile(..., method="linear")`.
#[inline]
pub fn np_lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// `np.percentile(x, q)` with the default linear method, bit for bit (numpy >= 1.22).
///
/// `x` is reordered in place (partial selection, O(n)). Returns `None` for an empty slice and
/// NaN if `x` holds a NaN.
pub fn np_percentile_linear(x: &mut [f64], q: f64) -> Option<f64> {
    let n = x.len();
    if n == 0 {
        return None;
    }
    if x.iter().any(|v| v.is_nan()) {
        return Some(f64::NAN);
    }
    let quantile = q / 100.0;
    let virtual_index = (n - 1) as f64 * quantile;
    if virtual_index >= (n - 1) as f64 {
        return Some(x.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    }
    if virtual_index <= 0.0 {
        let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
        return Some(lo);
    }
    let lo = virtual_index.floor();
    let t = virtual_index - lo;
    let lo = lo as usize;
    let (_, &mut a, upper) = x.select_nth_unstable_by(lo, f64::total_cmp);
    // `lo + 1 <= n - 1` here because `virtual_index < n - 1`.
    let b = upper.iter().copied().fold(f64::INFINITY, f64::min);
    Some(np_lerp(a, b, t))
}

/// `np.average(a, weights=w)`: `sum(a * w) / sum(w)` (both numpy sums), `None` if `sum(w) == 0`.
pub fn np_weighted_average(a: &[f64], w: &[f64]) -> Option<f64> {
    debug_assert_eq!(a.len(), w.len());
    let scl = np_sum(w);
    if scl == 0.0 {
        return None;
    }
    let prod: Vec<f64> = a.iter().zip(w).map(|(x, y)| x * y).collect();
    Some(np_sum(&prod) / scl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sums_are_sequential() {
        assert_eq!(np_sum(&[]), 0.0);
        assert_eq!(np_sum(&[0.1, 0.2, 0.3]), (0.1 + 0.2) + 0.3);
    }

    #[test]
    fn pairwise_sum_uses_eight_accumulators() {
        // 9 values: ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) then + a8.
        let a = [1e16, 1.0, 1.0, 1.0, -1e16, 1.0, 1.0, 1.0, 1.0];
        let expect = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])) + a[8];
        assert_eq!(np_sum(&a), expect);
        let sequential: f64 = a.iter().sum();
        assert_ne!(
            expect, sequential,
            "test must distinguish the summation orders"
        );
    }

    #[test]
    fn pairwise_sum_splits_large_arrays() {
        let a: Vec<f64> = (0..1000).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        // 1000 -> 496 + 504; each <= ... recursion; compare to an explicit reimplementation.
        let left = pairwise_sum(&a[..496]);
        let right = pairwise_sum(&a[496..]);
        assert_eq!(np_sum(&a), left + right);
        assert!((np_sum(&a) - a.iter().sum::<f64>()).abs() < 1e-12);
    }

    #[test]
    fn percentile_matches_numpy_examples() {
        // np.percentile([1,2,3,4], 95) = 3.85
        let mut x = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(np_percentile_linear(&mut x, 95.0), Some(3.8499999999999996));
        // np.percentile([0, 10], 50) = 5.0 ; t = 0.5 -> uses the b - (b-a)(1-t) branch
        let mut y = vec![10.0, 0.0];
        assert_eq!(np_percentile_linear(&mut y, 50.0), Some(5.0));
        let mut one = vec![7.5];
        assert_eq!(np_percentile_linear(&mut one, 95.0), Some(7.5));
        assert_eq!(np_percentile_linear(&mut [], 95.0), None);
        let mut same = vec![2.0; 5];
        assert_eq!(np_percentile_linear(&mut same, 95.0), Some(2.0));
    }

    #[test]
    fn std_sample_and_population() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((np_std(&x, 0) - 1.118033988749895).abs() < 1e-15);
        assert!((np_std(&x, 1) - 1.2909944487358056).abs() < 1e-15);
        assert!(np_std(&[1.0], 1).is_nan());
    }

    #[test]
    fn weighted_average_zero_weights() {
        assert_eq!(np_weighted_average(&[1.0, 2.0], &[0.0, 0.0]), None);
        assert_eq!(
            np_weighted_average(&[1.0, 2.0], &[1.0, 3.0]),
            Some(7.0 / 4.0)
        );
    }
}
