//! The kernels of mite's training programs: `no_std`, no allocation, no `unsafe`.
//!
//! Every kernel has the shape `fn(inputs.., out: &mut [T], scratch: &mut [S], &Params) ->
//! Result<(), KernelError>` (kernels that need no scratch omit it). Parameters — requantization
//! multipliers and shifts, geometry, optimizer constants — are computed once, on the host, by the
//! constructor functions of the parameter structs, and stored in plain structs that borrow their
//! per-channel tables; the kernels only check lengths and compute.
//!
//! Families:
//! - [`int8`]: the forward int8 kernels (convolution with dense, depthwise and pointwise paths,
//!   fully connected, add, average and global average pooling, quantize / dequantize /
//!   requantize), bit-exact with TFLite / CMSIS-NN for [`Rounding::Double`] and
//!   [`Rounding::Single`], with the paper's simulation for [`Rounding::FloatScale`], and with
//!   onnxruntime's fused kernels for [`Rounding::OnnxRuntime`]; and a frozen inverted bottleneck
//!   (pointwise → depthwise → pointwise) streamed by rows ([`int8::bottleneck_int8`]);
//! - [`float`]: the `f32` backward kernels (convolution input / weight / bias gradients including
//!   a weight gradient for a slice of input channels, linear gradients, pooling gradients, packed
//!   bit masks, softmax cross-entropy);
//! - [`sgd`]: the SGD / QAS parameter update with its rounding and saturation.
//! - [`split`]: the int8 convolution and its input gradient over a weight stored as a trained
//!   slice of its first input channels plus a frozen remainder (bit-exact with the joined
//!   weight).
//!
//! Floating-point rounding functions (`round`, `floor`, `round_ties_even`) live in `std`, not
//! `core`; [`fmath`] provides exact replacements. Transcendental functions (`exp`, `ln`) are
//! supplied by the caller through the [`float::Math`] trait.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod error;
pub mod fixed_point;
pub mod float;
pub mod fmath;
pub mod geometry;
pub mod int8;
pub mod requant;
pub mod sgd;
pub mod split;
pub mod update;

pub use error::KernelError;
pub use geometry::{Conv2dGeometry, LinearGeometry, Window2d};
pub use requant::{ActRange, OutputStage, QuantParams, Requant, Rounding};
