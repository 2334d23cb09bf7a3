//! The mite reference interpreter: executes every op of the IR.
//!
//! Float kernels compute in `f32`; int8 kernels are bit-exact with the TFLite / CMSIS-NN
//! reference kernels (see [`quant`]). The [`exec`] module runs the functions of an IR module
//! with them ([`Interpreter`]).

pub mod exec;
pub mod geometry;
pub mod kernel_error;
pub mod kernels;
pub mod program;
pub mod quant;

pub use exec::{Buffer, ExecReal, InterpError, InterpOptions, Interpreter, Tensor, TraceEvent};
