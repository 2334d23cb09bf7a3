//! Exact floating-point rounding without `std`.
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

    proptest! {
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
