//! mite's pass framework and its built-in passes.
//!
//! - [`Pass`]: the trait every pass implements, built-in or a user's own;
//! - [`Statistics`]: named counters a pass reports (`dce.ops-removed = 3`);
//! - [`PassRegistry`]: passes by name, for textual pipelines; users register their own;
//! - [`parse_pipeline`] / [`PassRegistry::parse_pipeline`]: `"canonicalize,cse,dce"` and
//!   options, `"constant-fold{max-elements=4096},dce"`;
//! - [`PassManager`]: runs a pipeline over a module with instrumentation (verification after each
//!   pass, IR dumps before or after passes, stop-after, a `tracing` span per pass) and returns a
//!   [`PipelineReport`];
//! - [`passes`]: the built-in passes `autodiff` (the training step), `canonicalize`,
//!   `constant-fold`, `cse`, `dce`, `dge` (dead-gradient elimination) and `dequantize` (int8
//!   graph to float);
//! - [`scheme`]: sparse-update schemes (which tensors and channels train), the paper's shipped
//!   schemes, scheme files, the analytic extra memory and magnitude channel permutation.
//!
//! ```
//! use mite_ir::{Builder, Module, Op, TensorType};
//! use mite_passes::{PassManager, PassRegistry};
//!
//! let mut m = Module::new("tiny");
//! let mut b = Builder::new(&mut m, "forward");
//! let x = b.arg("x", TensorType::f32(&[1, 4]));
//! let r = b.op(Op::Relu {}, &[x]).unwrap();
//! let y = b.op(Op::Relu {}, &[r]).unwrap();
//! b.ret(&[y]);
//!
//! let registry = PassRegistry::with_builtin();
//! let mut pm = PassManager::new(registry.parse_pipeline("canonicalize,dce").unwrap());
//! let report = pm.run(&mut m).unwrap();
//! assert!(report.changed());
//! assert_eq!(m.functions[0].num_ops(), 1);
//! assert_eq!(report.statistics().get("canonicalize.relu-of-relu"), 1);
//! ```

#![forbid(unsafe_code)]

pub mod lower;
mod manager;
mod pass;
pub mod passes;
mod pipeline;
mod registry;
mod rewrite;
pub mod scheme;
mod statistics;
#[cfg(test)]
mod testutil;

pub use manager::{PassManager, PassManagerOptions, PassRecord, PipelineError, PipelineReport};
pub use pass::{Pass, PassError};
pub use pipeline::{parse_pipeline, PipelineElement, PipelineOption, PipelineParseError};
pub use registry::{PassFactory, PassInfo, PassRegistry, RegisterError};
pub use statistics::Statistics;
