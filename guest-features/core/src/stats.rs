//! Small numeric helpers with the semantics of Spark's aggregates.

/// Arithmetic mean; NaN for no values (Spark: null).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample variance (n − 1), two-pass; NaN for fewer than two values (Spark: null).
pub fn sample_variance(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return f64::NAN;
    }
    let m = mean(values);
    values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64
}

/// Mean and sample variance of the multiset in which each `n` of `counts` appears `n` times
/// (the per-event "events from this event's IP" values). NaN where Spark gives null.
pub fn weighted_self_moments(counts: &[u64]) -> (f64, f64) {
    let events: u64 = counts.iter().sum();
    let mean = counts.iter().map(|&n| (n * n) as f64).sum::<f64>() / events as f64;
    if events < 2 {
        return (mean, f64::NAN);
    }
    let m2: f64 = counts.iter().map(|&n| n as f64 * (n as f64 - mean) * (n as f64 - mean)).sum();
    (mean, m2 / (events - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variance_of_known_values() {
        assert_eq!(sample_variance(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), 32.0 / 7.0);
        assert!(sample_variance(&[1.0]).is_nan());
    }

    #[test]
    fn ip_frequency_moments_expand_the_multiset() {
        // IP a used 3 times, b once: per-event values 3,3,3,1.
        let (m, v) = weighted_self_moments(&[3, 1]);
        assert_eq!(m, 2.5);
        assert_eq!(v, sample_variance(&[3.0, 3.0, 3.0, 1.0]));
    }
}
