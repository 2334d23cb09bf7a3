//! mite compiles neural networks into programs that train themselves on microcontrollers.
//!
//! This facade re-exports the workspace crates and holds the [`driver`] that the `mite`
//! command line uses, so that embedding applications and tests run exactly what the CLI runs.
//!
//! - [`ir`]: the typed SSA IR, text format and verifier;
//! - [`passes`]: the pass framework and the passes;
//! - [`interp`]: the reference interpreter and its kernels;
//! - [`onnx`]: ONNX reading, import and export;
//! - [`zoo`]: the paper's models and small test models;
//! - [`data`]: `.npy` files and image datasets.

#![forbid(unsafe_code)]

pub mod compile;
pub mod driver;
pub mod eval;
pub mod inspect;
pub mod model;
pub mod output;
pub mod quantize;
pub mod search;
pub mod train;

/// The C backend (`--emit c`).
pub use mite_c as cgen;
pub use mite_data as data;
pub use mite_interp as interp;
pub use mite_ir as ir;
pub use mite_onnx as onnx;
pub use mite_passes as passes;
pub use mite_rustgen as rustgen;
pub use mite_zoo as zoo;
