//! Average path lengths, computed exactly as scikit-learn computes them.

/// Euler–Mascheroni constant (NumPy's `np.euler_gamma`).
pub const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// c(n): the average path length of an unsuccessful search in a binary search tree of `n`
/// points — scikit-learn's `_average_path_length`: 0 for n ≤ 1, 1 for n = 2, else
/// 2 (ln(n − 1) + γ) − 2 (n − 1) / n. `libm` makes `ln` identical on every platform.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * (libm::log(n - 1.0) + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// NumPy's `percentile(values, q)` with the default linear method (`values` is sorted in place).
pub fn percentile_linear(values: &mut [f64], q: f64) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    percentile_of_sorted(values, q)
}

/// [`percentile_linear`] over values already sorted (by `f64::total_cmp`): many quantiles of
/// one sample for one sort.
pub(crate) fn percentile_of_sorted(values: &[f64], q: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let virtual_index = q / 100.0 * (n - 1) as f64;
    let lo = (libm::floor(virtual_index) as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let t = virtual_index - lo as f64;
    let (a, b) = (values[lo], values[hi]);
    let diff = b - a;
    // NumPy's `_lerp`, including its switch to the upper end for t >= 0.5.
    if t >= 0.5 { b - diff * (1.0 - t) } else { a + diff * t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_of_n_matches_hand_computation() {
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        // c(3) = 2 (ln 2 + γ) − 4/3
        let c3 = 2.0 * (std::f64::consts::LN_2 + EULER_GAMMA) - 4.0 / 3.0;
        assert!((average_path_length(3) - c3).abs() < 1e-15);
        // c(256) = 2 (ln 255 + γ) − 510/256 ≈ 10.244770920
        assert!((average_path_length(256) - 10.244_770_920_119_917).abs() < 1e-9);
    }

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([1, 2, 3, 4], 10) == 1.3 ; np.percentile([1, 2, 3, 4], 90) == 3.7
        assert!((percentile_linear(&mut [4.0, 2.0, 1.0, 3.0], 10.0) - 1.3).abs() < 1e-12);
        assert!((percentile_linear(&mut [1.0, 2.0, 3.0, 4.0], 90.0) - 3.7).abs() < 1e-12);
        assert_eq!(percentile_linear(&mut [5.0], 10.0), 5.0);
    }
}
