//! The built-in passes.
//!
//! | name | pass | what it does |
//! |------|------|--------------|
//! | `autodiff` | [`Autodiff`] | builds `@train_step`: loss, gradients and updates ([`build_training_step`]) |
//! | `canonicalize` | [`Canonicalize`] | local simplifications to a fixed point |
//! | `constant-fold` | [`ConstantFold`] | evaluates ops over constants at compile time |
//! | `cse` | [`Cse`] | merges identical pure ops |
//! | `dce` | [`Dce`] | removes unused pure ops and unread constants |
//! | `dge` | [`DeadGradientElimination`] | drops updates of frozen parameters and the gradients, masks and saved activations only they needed |
//! | `fuse` | [`Fuse`] | fuses pure tensor ops by equality saturation (egg), cost in bytes materialised |
//! | `dequantize` | [`Dequantize`] | rewrites the int8 graph into its float equivalent |
//! | `schedule` | [`Schedule`] | reorders ops to lower the peak of live memory, respecting effects |
//! | `stream-bottlenecks` | [`StreamBottlenecks`] | fuses frozen inverted bottlenecks (pw → dw → pw) into row-streamed `q.bottleneck` ops, and a block whose output only the next (pointwise-expanding) block reads into a `q.bottleneck_chain` with it |
//! | (`quantize`) | [`Quantize`] | float graph + calibration ranges → the real int8 graph (not in the registry: needs ranges) |

mod autodiff;
mod canonicalize;
mod constant_fold;
mod cse;
mod dce;
mod dequantize;
mod dge;
pub mod fuse;
mod quantize;
mod schedule;
mod stream_bottlenecks;

pub use autodiff::{
    build_training_step, Autodiff, AutodiffError, Loss, TrainConfig, TrainStats, UpdatePlacement,
};
pub use canonicalize::Canonicalize;
pub use constant_fold::ConstantFold;
pub use cse::Cse;
pub use dce::Dce;
pub use dequantize::Dequantize;
pub use dge::DeadGradientElimination;
pub use fuse::Fuse;
pub use quantize::{quantize_weight_per_channel, Calibration, Quantize, Range};
pub use schedule::{schedule_cost, schedule_function, Schedule, ScheduleCost, ScheduleResult};
pub use stream_bottlenecks::{
    chain_bottlenecks, stream_bottlenecks, ChainedPair, FusedBlock, StreamBottlenecks,
};
