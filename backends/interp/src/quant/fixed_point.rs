//! Fixed-point requantization arithmetic, bit-exact with TFLite / CMSIS-NN / gemmlowp.
//!
//! A real multiplier `s > 0` is represented as a Q31 `multiplier` `M` and a power-of-two `shift`
//! such that `s ≈ M · 2^(shift − 31)` with `M ∈ [2^30, 2^31)` (see [`mite_kernels::fixed_point::quantize_multiplier`]).
//! Applying it to an `i32` accumulator `x` approximates `x · s`:
//!
//! * **double rounding** ([`multiply_by_quantized_multiplier`], the TFLite default and CMSIS-NN's
//!   `arm_nn_requantize`): `x` is first multiplied by `2^max(shift, 0)` (wrapping, as the compiled
//!   C code does), then [`saturating_rounding_doubling_high_mul`] rounds `x·M / 2^31` to an
//!   integer with ties towards +∞, then [`rounding_divide_by_pot`] rounds the division by
//!   `2^max(−shift, 0)` with ties away from zero. Rounding twice means the result can differ by
//!   one from the exactly rounded `x · M · 2^(shift−31)`: with `R = max(−shift, 0)`, the first
//!   stage moves the value by at most `2^−(R+1)` (in output units), so the results can only differ
//!   when the exact value lies within `2^−(R+1)` of a half-integer. Example: `x = 5`,
//!   `M = 2^30`, `shift = −1` is exactly `1.25`, but the first stage gives `round(2.5) = 3` and the
//!   second `round(1.5) = 2`. Exact negative ties (`−2.5`) also round away from zero (to `−3`).
//! * **single rounding** ([`multiply_by_quantized_multiplier_single_rounding`], TFLite built with
//!   `TFLITE_SINGLE_ROUNDING`, CMSIS-NN with `CMSIS_NN_USE_SINGLE_ROUNDING`): the 64-bit product
//!   `x·M` is divided by `2^(31−shift)` once, rounding ties towards +∞. This is the exact
//!   round-half-up of `x · M · 2^(shift−31)`.
//! * **float scale** ([`requantize_float_scale`]): `round_half_even(x · s)` computed in `f64`, which
//!   is what the paper's PyTorch simulation does (see that function).

pub use mite_kernels::fixed_point::{
    frexp, multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_single_rounding,
    quantize_multiplier, quantize_multiplier_single_rounding, requantize_float_scale,
    rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
};
