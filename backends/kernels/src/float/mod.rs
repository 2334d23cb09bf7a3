//! `f32` kernels of the backward pass (generic over [`Scalar`] so that host-side gradient checks
//! can run them in `f64`).
//!
//! Sums accumulate in the scalar type itself, in a fixed order, so results are deterministic and
//! match the generated code.

pub mod bottleneck_backward;
pub mod conv;
pub mod fused;
pub mod inplace;
pub mod linear;
pub mod loss;
pub mod mask;
pub mod pool;

use core::iter::Sum;
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

pub use bottleneck_backward::{
    bottleneck_backward, bottleneck_backward_scratch_len, BottleneckGrads, ExpandUpdate,
    ExpandWeight, Int8Conv,
};
pub use conv::{
    conv2d, conv2d_backward_bias, conv2d_backward_input, conv2d_backward_input_int8,
    conv2d_backward_weight, conv2d_backward_weight_slice, ChannelSlice,
};
pub use inplace::{conv2d_backward_input_int8_in_place, InPlaceConv};
pub use linear::{linear, linear_backward_bias, linear_backward_input, linear_backward_weight};
pub use loss::{softmax_cross_entropy, softmax_cross_entropy_backward};
pub use mask::{apply_mask, make_mask, mask_words, Mask};
pub use pool::{avg_pool_backward, global_avg_pool_backward};

/// A real scalar the float kernels run in: `f32` on the device, `f64` in host-side checks.
pub trait Scalar:
    Copy
    + PartialOrd
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
{
    /// `0`.
    const ZERO: Self;
    /// `1`.
    const ONE: Self;
    /// `−∞`.
    const NEG_INF: Self;
    /// A count, rounded to nearest.
    fn of_count(n: usize) -> Self;
    /// Neither infinite nor NaN.
    fn finite(self) -> bool;
}

macro_rules! scalar {
    ($t:ident) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INF: Self = $t::NEG_INFINITY;
            fn of_count(n: usize) -> Self {
                n as $t
            }
            fn finite(self) -> bool {
                self.is_finite()
            }
        }
    };
}
scalar!(f32);
scalar!(f64);

/// [`Math`] for `f32` by the portable [`exp_f32`](crate::fmath::exp_f32) and
/// [`ln_f32`](crate::fmath::ln_f32): the same bits on every target.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortableMath;

impl Math<f32> for PortableMath {
    fn exp(x: f32) -> f32 {
        crate::fmath::exp_f32(x)
    }
    fn ln(x: f32) -> f32 {
        crate::fmath::ln_f32(x)
    }
}

/// The transcendental functions a kernel needs, supplied by the caller: `core` has no `exp` or
/// `ln`, and which implementation runs (the host's libm, a device's) decides the last bits.
pub trait Math<T> {
    /// `e^x`.
    fn exp(x: T) -> T;
    /// Natural logarithm.
    fn ln(x: T) -> T;
}
