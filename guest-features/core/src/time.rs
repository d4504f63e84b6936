//! Calendar arithmetic on epoch milliseconds without 64-bit division in the common case.
//!
//! Native code divides by a constant with one multiply-high; WebAssembly has no 64-bit
//! multiply-high, so `i64 / constant` compiles to a real division (tens of cycles). For
//! 0 <= ms < 2^47 (up to year 6429) these functions divide by multiplying with a rounded-up
//! reciprocal, `q = mul_hi(n, ⌈2^(64+s)/d⌉) >> s`, exact because the reciprocal's excess `e`
//! (under `d`) keeps `n·e` below `2^(64+s)` for every such `n` (checked in the tests, and
//! against integer division on ranges and edges). Outside that range the integer path is used.

const EXACT_LIMIT: i64 = 1 << 47;
const MS_PER_HOUR: i64 = 3_600_000;

/// ⌈2^85 / 3,600,000⌉: `mul_hi(ms, HOUR_MAGIC) >> 21 = ms / 3,600,000` for ms < 2^47.
const HOUR_MAGIC: u64 = 10_746_007_285_463_370_442;
/// ⌈2^73 / 1,000⌉: `mul_hi(ms, SECOND_MAGIC) >> 9 = ms / 1,000` for ms < 2^47.
const SECOND_MAGIC: u64 = 9_444_732_965_739_290_428;
/// ⌈2^37 / 24⌉: `(h × DAY_MAGIC) >> 37 = h / 24` for h < 2^26 (hours below 2^47 ms).
const DAY_MAGIC: u64 = 5_726_623_062;

/// The high 64 bits of `a × b`: one instruction natively; four 32-bit products
/// ([`mul_hi_by_halves`]) where WebAssembly has no wide multiply, still far cheaper than its
/// 64-bit division.
#[inline(always)]
fn mul_hi(a: u64, b: u64) -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        ((u128::from(a) * u128::from(b)) >> 64) as u64
    }
    #[cfg(target_arch = "wasm32")]
    {
        mul_hi_by_halves(a, b)
    }
}

/// [`mul_hi`] from the four products of the 32-bit halves.
#[inline(always)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn mul_hi_by_halves(a: u64, b: u64) -> u64 {
    let (a_lo, a_hi) = (a & 0xFFFF_FFFF, a >> 32);
    let (b_lo, b_hi) = (b & 0xFFFF_FFFF, b >> 32);
    let (lh, hl) = (a_lo * b_hi, a_hi * b_lo);
    let mid = ((a_lo * b_lo) >> 32) + (lh & 0xFFFF_FFFF) + (hl & 0xFFFF_FFFF);
    a_hi * b_hi + (lh >> 32) + (hl >> 32) + (mid >> 32)
}

/// UTC hour of day (0..24) of epoch milliseconds.
#[inline]
pub fn hour_of_day(ms: i64) -> usize {
    if (0..EXACT_LIMIT).contains(&ms) {
        let hours = mul_hi(ms as u64, HOUR_MAGIC) >> 21;
        (hours - ((hours * DAY_MAGIC) >> 37) * 24) as usize
    } else {
        (ms.div_euclid(MS_PER_HOUR).rem_euclid(24)) as usize
    }
}

/// `ms / 1000` truncated toward zero (Spark's cast of a double to long).
#[inline]
pub fn truncated_secs(ms: i64) -> i64 {
    if (0..EXACT_LIMIT).contains(&ms) { (mul_hi(ms as u64, SECOND_MAGIC) >> 9) as i64 } else { ms / 1000 }
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
        for t in [i64::MIN + 1, -EXACT_LIMIT, EXACT_LIMIT - 1, EXACT_LIMIT, i64::MAX] {
            assert_eq!(hour_of_day(t), t.div_euclid(MS_PER_HOUR).rem_euclid(24) as usize);
            assert_eq!(truncated_secs(t), t / 1000);
        }
    }

    #[test]
    fn reciprocals_are_exact_over_their_range() {
        // A reciprocal ⌈2^k/d⌉ is exact for n < 2^bits when its excess e = m·d − 2^k keeps
        // n·e < 2^k.
        let exact = |m: u64, k: u32, d: u64, bits: u32| {
            let e = u128::from(m) * u128::from(d) - (1u128 << k);
            u128::from(m) == (1u128 << k).div_ceil(u128::from(d)) && e << bits < 1u128 << k
        };
        assert!(exact(HOUR_MAGIC, 85, 3_600_000, 47));
        assert!(exact(SECOND_MAGIC, 73, 1_000, 47));
        assert!(exact(DAY_MAGIC, 37, 24, 26));
        assert!(((EXACT_LIMIT - 1) / MS_PER_HOUR) < 1 << 26);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            for (a, b) in [(x, HOUR_MAGIC), (x >> 17, SECOND_MAGIC), (x, x.rotate_left(29)), (u64::MAX, x)] {
                assert_eq!(mul_hi_by_halves(a, b), ((u128::from(a) * u128::from(b)) >> 64) as u64);
            }
        }
        assert_eq!(mul_hi_by_halves(u64::MAX, u64::MAX), u64::MAX - 1);
    }
}
