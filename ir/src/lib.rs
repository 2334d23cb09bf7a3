//! mite's IR: a typed SSA graph of tensor ops with an MLIR-flavoured text format.
//!
//! - [`types`]: element types, static shapes, int8 quantization parameters;
//! - [`ops`]: the closed op table ([`Op`]) with dialect prefixes;
//! - [`module`]: storage ([`Module`], [`Function`], arenas, program order);
//! - [`builder`]: building functions with type inference ([`Builder`]);
//! - [`infer`]: type and shape inference for every op;
//! - [`text`]: printer and parser;
//! - [`verify`]: the verifier;
//! - [`analysis`]: uses, the schedule and buffer liveness;
//! - [`memory`]: the arena planner and the memory report of a training step;
//! - [`program`]: the lowered, planned Program the backends print and execute.

#![forbid(unsafe_code)]

pub mod analysis;
pub mod attr;
pub mod builder;
pub mod cost;
pub mod data;
pub mod infer;
pub mod limits;
pub mod memory;
pub mod module;
pub mod ops;
pub mod program;
pub mod text;
pub mod types;
pub mod verify;

pub use attr::{Attr, Symbol};
pub use builder::{BuildError, Builder};
pub use data::TensorData;
pub use module::{
    Function, Global, GlobalData, GlobalKind, Loc, Module, OpData, OpId, Trainable, Value, ValueDef,
};
pub use ops::{Arity, CustomOp, Effect, Effects, Op};
pub use text::{print_module, PrintOptions};
pub use types::{ElemType, Quant, Shape, TensorType};
pub use verify::{verify_module, VerifyError, VerifyErrors};
