//! Exact int8 fixed-point arithmetic and int8 reference kernels.
//!
//! # Numerics
//!
//! Tensors are int8 with an affine quantization `real = s · (q − z)`: activations per tensor,
//! weights symmetric per output channel (`z = 0`), biases int32 with scale `s_x · s_W[c]`
//! (`paper/NOTES.md` §2). A convolution or linear layer accumulates `Σ (x − z_x)·(w − z_w) + b`
//! in `i32` and maps the accumulator to the output with the per-channel effective scale
//! `s_x · s_W[c] / s_y`, then adds `z_y` and clamps to the activation range
//! (ReLU / ReLU6 are folded into that range).
//!
//! How the effective scale is applied is chosen by [`Rounding`]:
//!
//! * [`Rounding::Double`] (default): bit-exact with TFLite's reference kernels as normally built
//!   and with CMSIS-NN's `arm_nn_requantize`: the scale becomes a Q31 multiplier and a shift
//!   ([`mite_kernels::fixed_point::quantize_multiplier`], TFLite's `QuantizeMultiplier`), applied with gemmlowp's
//!   `SaturatingRoundingDoublingHighMul` (ties towards +∞) and `RoundingDivideByPOT` (ties away
//!   from zero). The two roundings can differ by one from exact rounding near ties; see
//!   [`fixed_point`].
//! * [`Rounding::Single`]: bit-exact with TFLite built with `TFLITE_SINGLE_ROUNDING` (and CMSIS-NN
//!   with `CMSIS_NN_USE_SINGLE_ROUNDING`): one rounding of the 64-bit product, ties towards +∞.
//! * [`Rounding::FloatScale`]: the paper's PyTorch simulation, `round_half_even(acc · s)` in
//!   `f64` (see [`requantize_float_scale`] for the source it follows).
//! * [`Rounding::OnnxRuntime`]: what onnxruntime's CPU provider computes for a QDQ graph:
//!   `round_half_even(f32(acc) · f32 scale)` in its fused int8 kernels, and float arithmetic
//!   between `DequantizeLinear` and `QuantizeLinear` for the ops it leaves unfused. Which ops are
//!   fused depends on the graph (an op is fused when its activations and result each have one
//!   consumer); the interpreter decides it, and the kernels are in [`onnxruntime`].
//!
//! Kernels and their references:
//!
//! * [`quantize`] / [`dequantize`] (and per-axis variants): ONNX `QuantizeLinear` (round half to
//!   even, saturate) and `DequantizeLinear`.
//! * [`conv2d_int8`], [`fully_connected_int8`]: TFLite `ConvPerChannel` / `FullyConnected`
//!   (padding contributes the input zero point, i.e. nothing), in NCHW.
//! * [`AddInt8`] / [`add_int8`]: TFLite int8 `Add` (left shift 20, three multipliers), or the
//!   paper's float formula with [`Rounding::FloatScale`].
//! * [`avg_pool_int8`]: TFLite int8 `AveragePool` (padding excluded, ties away from zero);
//!   [`max_pool_int8`]: TFLite `MaxPool`.
//! * [`global_avg_pool_int8`]: the paper's global average pool (output keeps the input
//!   quantization); [`mean_int8`]: TFLite int8 `Mean` (requantizes to another scale).
//!
//! Every kernel validates its inputs and returns a [`KernelError`](crate::kernel_error::KernelError)
//! instead of panicking.

pub mod fixed_point;
pub mod onnxruntime;

mod conv;
mod elementwise;
mod pool;
mod quantize;
mod requantizer;

pub use conv::{conv2d_int8, fully_connected_int8, LinearShape};
pub use elementwise::{add_int8, AddInt8, ADD_LEFT_SHIFT};
pub use fixed_point::{
    frexp, multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_single_rounding,
    quantize_multiplier, quantize_multiplier_single_rounding, requantize_float_scale,
    rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
};
pub use pool::{avg_pool_int8, global_avg_pool_int8, max_pool_int8, mean_int8};
pub use quantize::{dequantize, dequantize_per_axis, quantize, quantize_per_axis, QuantParams};
pub use requantizer::{ActRange, OutputStage, Requantizer, Rounding};
