//! Calendar arithmetic on epoch milliseconds without 64-bit division in the common case.
//!
//! WebAssembly has no 64-bit multiply-high, so `i64 / constant` compiles to a real division
//! (tens of cycles) where native code uses a multiply. For |ms| < 2^47 (up to year 6429; earlier than 1970 takes the integer path),
//! f64 division is exact enough that its floor is the integer quotient: the quotient's
//! magnitude stays below 2^38 while the distance to the next integer is at least 1/3.6e6,
//! far above f64's rounding error there. Outside that range the integer path is used.

const EXACT_LIMIT: i64 = 1 << 47;
const MS_PER_HOUR: i64 = 3_600_000;

/// UTC hour of day (0..24) of epoch milliseconds.
#[inline]
pub fn hour_of_day(ms: i64) -> usize {
    if (0..EXACT_LIMIT).contains(&ms) {
        // Non-negative: truncating casts are floors (no libm call on baseline x86-64).
        let hours = (ms as f64 / MS_PER_HOUR as f64) as i64;
        (hours - (hours as f64 / 24.0) as i64 * 24) as usize
    } else {
        (ms.div_euclid(MS_PER_HOUR).rem_euclid(24)) as usize
    }
}

/// `ms / 1000` truncated toward zero (Spark's cast of a double to long).
#[inline]
pub fn truncated_secs(ms: i64) -> i64 {
    if (0..EXACT_LIMIT).contains(&ms) { (ms as f64 / 1000.0) as i64 } else { ms / 1000 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_integer_arithmetic() {
        let mut ms: i64 = -5 * 86_400_000;
        while ms < 4_102_444_800_000 {
            for d in [-1, 0, 1, 999, 1000, 3_599_999, 3_600_000] {
                let t = ms + d;
                assert_eq!(hour_of_day(t), t.div_euclid(MS_PER_HOUR).rem_euclid(24) as usize, "{t}");
                assert_eq!(truncated_secs(t), t / 1000, "{t}");
            }
            ms += 7_777_777_777;
        }
        for t in [i64::MIN + 1, -EXACT_LIMIT, EXACT_LIMIT, i64::MAX] {
            assert_eq!(hour_of_day(t), t.div_euclid(MS_PER_HOUR).rem_euclid(24) as usize);
            assert_eq!(truncated_secs(t), t / 1000);
        }
    }
}
