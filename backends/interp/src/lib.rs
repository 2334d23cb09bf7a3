//! The mite reference interpreter: executes every op of the IR.
//!
//! Float kernels compute in `f32`; int8 kernels are bit-exact with the TFLite / CMSIS-NN
//! reference kernels (see [`quant`]).

pub mod geometry;
pub mod kernel_error;
pub mod kernels;
pub mod quant;
