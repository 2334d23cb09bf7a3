//! The scalar type the float kernels are generic over.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A real floating-point scalar: implemented for `f32` (what the interpreter runs) and `f64`
/// (what the finite-difference gradient checks run).
///
/// Kernels accumulate in `T` itself: an `f32` kernel sums in `f32`, like the generated C code.
pub trait Real:
    mite_kernels::float::Scalar
    + Copy
    + Debug
    + Display
    + Default
    + PartialOrd
    + Send
    + Sync
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + 'static
{
    /// Additive identity.
    fn zero() -> Self;
    /// Multiplicative identity.
    fn one() -> Self;
    /// Negative infinity.
    fn neg_infinity() -> Self;
    /// Converts from `f64`, rounding to nearest.
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` (exact for `f32` and `f64`).
    fn to_f64(self) -> f64;
    /// Converts a count to this type, rounding to nearest.
    fn from_usize(n: usize) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The larger of two values; if one is NaN, the other.
    fn max(self, other: Self) -> Self;
    /// The smaller of two values; if one is NaN, the other.
    fn min(self, other: Self) -> Self;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
}

macro_rules! impl_real {
    ($t:ident, $exp:path, $ln:path) => {
        impl Real for $t {
            fn zero() -> Self {
                0.0
            }
            fn one() -> Self {
                1.0
            }
            fn neg_infinity() -> Self {
                $t::NEG_INFINITY
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            fn from_usize(n: usize) -> Self {
                n as $t
            }
            fn exp(self) -> Self {
                $exp(self)
            }
            fn ln(self) -> Self {
                $ln(self)
            }
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            fn abs(self) -> Self {
                $t::abs(self)
            }
            fn max(self, other: Self) -> Self {
                $t::max(self, other)
            }
            fn min(self, other: Self) -> Self {
                $t::min(self, other)
            }
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
        }
    };
}

// `f32` uses the kernels' portable exp / ln, so the interpreter computes the bits every backend
// (no_std Rust, C on any libm) computes; `f64` (finite-difference checks) uses the host's.
impl_real!(
    f32,
    mite_kernels::fmath::exp_f32,
    mite_kernels::fmath::ln_f32
);
impl_real!(f64, f64::exp, f64::ln);

#[cfg(test)]
mod tests {
    use super::Real;

    fn softplus<T: Real>(x: T) -> T {
        (T::one() + x.exp()).ln()
    }

    #[test]
    fn both_precisions_agree() {
        let a = softplus(0.5f32).to_f64();
        let b = softplus(0.5f64);
        assert!((a - b).abs() < 1e-6);
        assert_eq!(f32::from_usize(3), 3.0);
        assert_eq!(f64::from_f64(0.25), 0.25);
        assert_eq!(Real::max(1.0f32, f32::NAN), 1.0);
        assert_eq!(f64::neg_infinity(), f64::NEG_INFINITY);
    }
}
