//! Exact floating-point rounding without `std`, and portable `exp` / `ln`.
//!
//! `f64::round_ties_even`, `round` and `floor` are `std` functions (they call the platform's
//! math library); these give the same results with plain IEEE arithmetic, so the kernels compute
//! the same bits on the host and on a microcontroller. Adding and subtracting `2^52` (`2^23` for
//! `f32`) rounds a value below that magnitude to an integer in the current rounding mode, which is
//! round-to-nearest-even everywhere Rust runs; values at or above it are already integers.

const F64_INT: f64 = 4_503_599_627_370_496.0; // 2^52
const F32_INT: f32 = 8_388_608.0; // 2^23

/// `x` rounded to the nearest integer, ties to even (as `f64::round_ties_even`).
pub fn round_ties_even_f64(x: f64) -> f64 {
    if x.is_nan() || x.abs() >= F64_INT {
        return x;
    }
    let r = (x.abs() + F64_INT) - F64_INT;
    // Keep the sign (also of a zero result, like the std function).
    if x.is_sign_negative() {
        -r
    } else {
        r
    }
}

/// `x` rounded to the nearest integer, ties to even (as `f32::round_ties_even`).
pub fn round_ties_even_f32(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= F32_INT {
        return x;
    }
    let r = (x.abs() + F32_INT) - F32_INT;
    if x.is_sign_negative() {
        -r
    } else {
        r
    }
}

/// `x` rounded towards zero (as `f64::trunc`).
pub fn trunc_f64(x: f64) -> f64 {
    if x.is_nan() || x.abs() >= F64_INT {
        return x;
    }
    // |x| < 2^52 fits in i64 exactly, and `as` truncates.
    let t = x as i64 as f64;
    if x.is_sign_negative() {
        -t.abs()
    } else {
        t
    }
}

/// The largest integer not above `x` (as `f64::floor`).
pub fn floor_f64(x: f64) -> f64 {
    let t = trunc_f64(x);
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// `x` rounded to the nearest integer, ties away from zero (as `f64::round`).
pub fn round_half_away_f64(x: f64) -> f64 {
    if x.is_nan() || x.abs() >= F64_INT {
        return x;
    }
    let t = trunc_f64(x);
    let frac = x - t; // exact
    if frac.abs() >= 0.5 {
        t + if x > 0.0 { 1.0 } else { -1.0 }
    } else {
        t
    }
}

/// `2^e` for `e` in `[-1022, 1023]`, exactly.
pub fn pow2_f64(e: i32) -> f64 {
    let e = e.clamp(-1022, 1023);
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// `2^e` for `e` in `[-126, 127]`, exactly.
fn pow2_f32(e: i32) -> f32 {
    f32::from_bits(((e.clamp(-126, 127) + 127) as u32) << 23)
}

// ln 2 split so that `k · LN2_HI` is exact for |k| < 2^9 (LN2_HI has 15 significant bits).
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
const LOG2_E: f32 = core::f32::consts::LOG2_E;

/// `e^x` in `f32` arithmetic only (no fused multiply-add, a fixed operation order), so that every
/// target computes the same bits — the host, a `no_std` microcontroller and the C backend's
/// mirror of this function. Within 1 ulp of glibc's `expf` over a dense sweep of its range (the
/// tests allow 2).
///
/// Method: `x = k·ln 2 + r` with `k = round(x·log2 e)` and `|r| ≤ ln 2 / 2` (Cody–Waite, two-part
/// `ln 2`), `e^r` by its Taylor polynomial to degree 7 in Horner form, then scaling by `2^k` in
/// one or two exact steps (two when the result is subnormal).
pub fn exp_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.722_84 {
        return f32::INFINITY;
    }
    if x < -103.972_08 {
        return 0.0;
    }
    let k = round_ties_even_f32(x * LOG2_E);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // k is an integer in [-150, 128].
    let k = k as i32;
    if k > 127 {
        p * pow2_f32(127) * pow2_f32(k - 127)
    } else if k < -126 {
        p * pow2_f32(-126) * pow2_f32(k + 126)
    } else {
        p * pow2_f32(k)
    }
}

/// The natural logarithm in `f32` arithmetic only, for the same reason as [`exp_f32`]. Within
/// 2 ulp of the correctly rounded result (tested against `std`); `ln(0) = −∞`, `ln(x < 0)` and
/// `ln(NaN)` are NaN, `ln(∞) = ∞`.
///
/// Method: `x = m · 2^e` with `m ∈ [√2/2, √2)` (subnormals scaled by `2^23` first),
/// `ln m = 2·atanh(s)`, `s = (m − 1)/(m + 1)`, `|s| < 0.172`, by its odd series to `s^11`, and
/// `ln x = e·ln2_hi + (ln m + e·ln2_lo)`.
pub fn ln_f32(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let (x, mut e) = if x < f32::MIN_POSITIVE {
        (x * 8_388_608.0, -23)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    e += ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > core::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let q = 1.0 / 11.0;
    let q = q * s2 + 1.0 / 9.0;
    let q = q * s2 + 1.0 / 7.0;
    let q = q * s2 + 1.0 / 5.0;
    let q = q * s2 + 1.0 / 3.0;
    let q = q * s2;
    let ln_m = 2.0 * s + 2.0 * s * q;
    let e = e as f32;
    e * LN2_HI + (ln_m + e * LN2_LO)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ties_and_signs() {
        assert_eq!(round_ties_even_f64(2.5), 2.0);
        assert_eq!(round_ties_even_f64(-0.5).to_bits(), (-0.0_f64).to_bits());
        assert_eq!(round_ties_even_f32(3.5), 4.0);
        assert_eq!(round_half_away_f64(-2.5), -3.0);
        assert_eq!(floor_f64(-0.25), -1.0);
        assert_eq!(pow2_f64(31), 2_147_483_648.0);
        assert_eq!(pow2_f64(-3), 0.125);
    }

    /// Distance in units in the last place between two finite `f32` of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_and_ln_special_values() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(-104.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(ln_f32(1.0), 0.0);
        assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(f32::INFINITY), f32::INFINITY);
        assert!(ln_f32(-1.0).is_nan());
        assert!(ln_f32(f32::NAN).is_nan());
        assert!(ulps(ln_f32(f32::from_bits(1)), (f32::from_bits(1)).ln()) <= 2);
    }

    #[test]
    fn exp_and_ln_within_two_ulp_on_a_dense_sweep() {
        let mut worst = (0, 0);
        for i in 0..400_000 {
            let x = -103.0 + 191.0 * (i as f32) / 400_000.0;
            let (a, b) = (exp_f32(x), x.exp());
            if b.is_normal() {
                worst.0 = worst.0.max(ulps(a, b));
            }
            let y = f32::from_bits(0x0000_1000 + i * 5_300);
            worst.1 = worst.1.max(ulps(ln_f32(y), y.ln()));
        }
        assert!(
            worst.0 <= 2 && worst.1 <= 2,
            "worst ulps (exp, ln) {worst:?}"
        );
    }

    proptest! {
        #[test]
        fn exp_and_ln_agree_with_std_within_two_ulp(x in -87.0_f32..88.0, y in proptest::num::f32::POSITIVE) {
            prop_assert!(ulps(exp_f32(x), x.exp()) <= 2, "exp({}) = {} vs {}", x, exp_f32(x), x.exp());
            if y.is_finite() {
                prop_assert!(ulps(ln_f32(y), y.ln()) <= 2, "ln({}) = {} vs {}", y, ln_f32(y), y.ln());
            }
        }

        #[test]
        fn agree_with_std_f64(x in proptest::num::f64::ANY) {
            let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            prop_assert!(same(round_ties_even_f64(x), x.round_ties_even()));
            prop_assert!(same(round_half_away_f64(x), x.round()));
            prop_assert!(same(floor_f64(x), x.floor()));
            prop_assert!(same(trunc_f64(x), x.trunc()));
        }

        #[test]
        fn agree_with_std_small(x in -1e6_f64..1e6, half in any::<bool>()) {
            let x = if half { (x * 2.0).round() / 2.0 } else { x };
            prop_assert_eq!(round_ties_even_f64(x), x.round_ties_even());
            prop_assert_eq!(round_half_away_f64(x), x.round());
            prop_assert_eq!(floor_f64(x), x.floor());
        }

        #[test]
        fn agree_with_std_f32(x in proptest::num::f32::ANY) {
            let r = round_ties_even_f32(x);
            let s = x.round_ties_even();
            prop_assert!(r.to_bits() == s.to_bits() || (r.is_nan() && s.is_nan()));
        }
    }
}
