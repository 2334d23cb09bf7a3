//! The memory report of a function (a training step or an inference pass): what lives where.
//!
//! **SRAM** is the arena plus the parameters the function updates plus optimizer state:
//! - *arena* ([`MemoryReport::arena_bytes`]): every buffer of [`Liveness`] over the program
//!   order (arguments such as the input image and label, activations, saved activations at the
//!   element type they are kept in, 1-bit masks packed 8 to a byte, gradients) and one scratch
//!   buffer per op that needs one ([`scratch_bytes`], live only at its op), placed by
//!   [`plan_best`]; [`MemoryReport::lower_bound_bytes`] is the most bytes live at one step;
//! - *parameters* ([`MemoryReport::params_bytes`]): each parameter the function updates (an op
//!   writes it, by [`crate::Op::effects`]), at its own type: int8 weights 1 byte, int32 biases 4 bytes, f32 4
//!   bytes per element — the SRAM copy training writes into;
//! - *state* ([`MemoryReport::state_bytes`]): the state globals the function's ops write
//!   (momentum, gradient accumulators).
//!
//! **Flash** ([`MemoryReport::flash_bytes`]): the parameters the function reads but does not
//! update and the constants it reads.
//!
//! **Kinds of arena buffers** ([`BufferKind`]): the *forward part* is the ops up to and including
//! the loss (`nn.softmax_cross_entropy` or `nn.mse_loss`; a function without a loss is all
//! forward). A buffer defined in the forward part that is still live after the loss is *saved*
//! for the backward pass (a [`BufferKind::Mask`] if its elements are `i1`, else a
//! [`BufferKind::SavedActivation`]); one that dies before is a forward
//! [`BufferKind::Activation`]; buffers defined after the loss are [`BufferKind::Gradient`]s
//! (gradients and backward temporaries); arguments are [`BufferKind::Input`] and function
//! outputs (the loss) [`BufferKind::Output`].
//! [`MemoryReport::at_peak`] sums the buffers live at the peak step by kind, so the report always
//! says what makes the peak.

use super::best::{plan_best, SearchLimits};
use super::plan::{check_plan, PlanError, Request};
use super::scratch::scratch_bytes;
use crate::analysis::{Liveness, Schedule};
use crate::module::{Function, GlobalKind, Module, Value, ValueDef};
use crate::ops::Op;
use crate::types::ElemType;
use std::collections::BTreeSet;
use std::fmt;
use thiserror::Error;

/// What an arena buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BufferKind {
    /// A function argument (input image, label, learning rate, step).
    Input,
    /// A forward activation that dies before the loss.
    Activation,
    /// A forward value kept for the backward pass.
    SavedActivation,
    /// A 1-bit mask kept for the backward pass.
    Mask,
    /// A gradient or another value of the backward pass.
    Gradient,
    /// Kernel scratch of one op.
    Scratch,
    /// A function output (the loss), live to the end.
    Output,
}

impl BufferKind {
    /// All kinds, in report order.
    pub const ALL: [BufferKind; 7] = [
        BufferKind::Input,
        BufferKind::Activation,
        BufferKind::SavedActivation,
        BufferKind::Mask,
        BufferKind::Gradient,
        BufferKind::Scratch,
        BufferKind::Output,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            BufferKind::Input => "input",
            BufferKind::Activation => "activation",
            BufferKind::SavedActivation => "saved activation",
            BufferKind::Mask => "mask",
            BufferKind::Gradient => "gradient",
            BufferKind::Scratch => "scratch",
            BufferKind::Output => "output",
        }
    }
}

/// One buffer of the arena with its placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaBuffer {
    /// What it holds.
    pub kind: BufferKind,
    /// Who defines it: the argument's name or the op's name and location.
    pub what: String,
    /// Size in bytes.
    pub size: u64,
    /// First and last live step (inclusive).
    pub live: (usize, usize),
    /// Offset in the arena.
    pub offset: u64,
}

/// Why a memory report could not be made.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MemoryError {
    /// The module has no function of that name.
    #[error("the module has no function @{0}")]
    NoFunction(String),
    /// The planner produced an invalid plan (a bug in the planner).
    #[error("the arena plan of @{function} is invalid: {error}")]
    BadPlan {
        /// The function.
        function: String,
        /// What the checker found.
        error: PlanError,
    },
}

/// The memory of one function (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryReport {
    /// The function.
    pub function: String,
    /// SRAM at the peak: arena + parameters + state.
    pub peak_bytes: u64,
    /// The planned arena.
    pub arena_bytes: u64,
    /// The most arena bytes live at one step.
    pub lower_bound_bytes: u64,
    /// How the arena was planned ([`crate::memory::best::Method::name`]), with `, optimal` when
    /// the plan is proven optimal.
    pub planner: String,
    /// SRAM copies of the updated parameters.
    pub params_bytes: u64,
    /// The updated parameters, in module order.
    pub updated_params: Vec<String>,
    /// Optimizer state.
    pub state_bytes: u64,
    /// Frozen parameters and constants read by the function.
    pub flash_bytes: u64,
    /// All saved activations (their sum: they are all live right after the loss).
    pub saved_activation_bytes: u64,
    /// All saved masks.
    pub mask_bytes: u64,
    /// All arguments.
    pub input_bytes: u64,
    /// The largest scratch buffer of one op.
    pub max_scratch_bytes: u64,
    /// The step (op position) at which the arena's live bytes peak.
    pub peak_step: usize,
    /// Bytes live at the peak step by kind (kinds with none are left out).
    pub at_peak: Vec<(BufferKind, u64)>,
    /// Every arena buffer with its placement, in definition order (scratch after its op's
    /// results).
    pub buffers: Vec<ArenaBuffer>,
    /// The op run at each step (its name and location), for timelines.
    pub steps: Vec<String>,
}

impl MemoryReport {
    /// `arena / lower bound` (1.0 for an empty arena).
    pub fn ratio(&self) -> f64 {
        if self.lower_bound_bytes == 0 {
            1.0
        } else {
            self.arena_bytes as f64 / self.lower_bound_bytes as f64
        }
    }
}

fn describe_value(func: &Function, v: Value) -> String {
    let data = func.value(v);
    match data.def {
        ValueDef::Arg(_) => format!("%{}", data.name.as_deref().unwrap_or("arg")),
        ValueDef::Result(id, _) => describe_op(func, id),
    }
}

fn describe_op(func: &Function, id: crate::module::OpId) -> String {
    let data = func.op(id);
    match &data.loc.name {
        Some(loc) => format!("{} ({loc})", data.op.name()),
        None => data.op.name().to_string(),
    }
}

/// Computes the [`MemoryReport`] of function `name` of `module`, in program order.
pub fn memory_report(module: &Module, name: &str) -> Result<MemoryReport, MemoryError> {
    let func = module
        .function(name)
        .ok_or_else(|| MemoryError::NoFunction(name.to_string()))?;
    let schedule = Schedule::program_order(func);
    let live = Liveness::compute(func, &schedule);
    let loss_step = schedule
        .ops()
        .iter()
        .position(|&id| matches!(func.op(id).op, Op::SoftmaxCrossEntropy {} | Op::MseLoss {}));

    let mut buffers: Vec<ArenaBuffer> = Vec::new();
    let mut requests: Vec<Request> = Vec::new();
    let outputs: BTreeSet<Value> = func.outputs().iter().copied().collect();
    for b in live.buffers() {
        let kind = match (func.value(b.value).def, loss_step) {
            (ValueDef::Arg(_), _) => BufferKind::Input,
            _ if outputs.contains(&b.value) => BufferKind::Output,
            (_, None) => BufferKind::Activation,
            (_, Some(loss)) if b.first > loss => BufferKind::Gradient,
            (_, Some(loss)) if b.last <= loss => BufferKind::Activation,
            _ if func.ty(b.value).elem == ElemType::I1 => BufferKind::Mask,
            _ => BufferKind::SavedActivation,
        };
        buffers.push(ArenaBuffer {
            kind,
            what: describe_value(func, b.value),
            size: b.size,
            live: (b.first, b.last),
            offset: 0,
        });
        requests.push(Request::from(b));
    }
    for (step, &id) in schedule.ops().iter().enumerate() {
        let size = scratch_bytes(func, func.op(id));
        if size > 0 {
            buffers.push(ArenaBuffer {
                kind: BufferKind::Scratch,
                what: describe_op(func, id),
                size,
                live: (step, step),
                offset: 0,
            });
            requests.push(Request {
                size,
                align: 4,
                first: step,
                last: step,
            });
        }
    }
    let best = plan_best(&requests, &SearchLimits::default());
    let plan = best.plan;
    check_plan(&requests, &plan).map_err(|error| MemoryError::BadPlan {
        function: name.to_string(),
        error,
    })?;
    for (buf, &offset) in buffers.iter_mut().zip(&plan.offsets) {
        buf.offset = offset;
    }

    // The peak step of the plan's requests (scratch included).
    let steps = schedule.len().max(1);
    let mut per_step = vec![0u64; steps];
    for r in &requests {
        for s in &mut per_step[r.first..=r.last.min(steps - 1)] {
            *s += r.size;
        }
    }
    let peak_step = per_step
        .iter()
        .position(|&b| b == plan.lower_bound)
        .unwrap_or(0);
    let at_peak: Vec<(BufferKind, u64)> = BufferKind::ALL
        .iter()
        .map(|&k| {
            let bytes = buffers
                .iter()
                .filter(|b| b.kind == k && b.live.0 <= peak_step && peak_step <= b.live.1)
                .map(|b| b.size)
                .sum();
            (k, bytes)
        })
        .filter(|&(_, bytes)| bytes > 0)
        .collect();
    let sum_of =
        |k: BufferKind| -> u64 { buffers.iter().filter(|b| b.kind == k).map(|b| b.size).sum() };

    // From the ops' effects: globals written (parameters and state) and read.
    let (mut written, mut read): (BTreeSet<&str>, BTreeSet<&str>) = Default::default();
    for &id in func.layout() {
        let effects = func.op(id).op.effects();
        written.extend(effects.writes);
        read.extend(effects.reads);
    }
    let (mut params_bytes, mut state_bytes, mut flash_bytes) = (0u64, 0u64, 0u64);
    let mut updated_params = Vec::new();
    for (g_name, g) in &module.globals {
        let bytes = g.ty.size_bytes() as u64;
        if written.contains(g_name.as_str()) && matches!(g.kind, GlobalKind::Param { .. }) {
            params_bytes += bytes;
            updated_params.push(g_name.clone());
        } else if g.kind == GlobalKind::State && written.contains(g_name.as_str()) {
            state_bytes += bytes;
        } else if read.contains(g_name.as_str()) {
            flash_bytes += bytes;
        }
    }

    Ok(MemoryReport {
        function: name.to_string(),
        peak_bytes: plan.arena_size + params_bytes + state_bytes,
        arena_bytes: plan.arena_size,
        lower_bound_bytes: plan.lower_bound,
        planner: format!(
            "{}{}",
            best.method.name(),
            if best.optimal { ", optimal" } else { "" }
        ),
        params_bytes,
        updated_params,
        state_bytes,
        flash_bytes,
        saved_activation_bytes: sum_of(BufferKind::SavedActivation),
        mask_bytes: sum_of(BufferKind::Mask),
        input_bytes: sum_of(BufferKind::Input),
        max_scratch_bytes: buffers
            .iter()
            .filter(|b| b.kind == BufferKind::Scratch)
            .map(|b| b.size)
            .max()
            .unwrap_or(0),
        peak_step,
        at_peak,
        buffers,
        steps: schedule
            .ops()
            .iter()
            .map(|&id| describe_op(func, id))
            .collect(),
    })
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "memory of @{}", self.function)?;
        writeln!(f, "  SRAM peak            {:>12}", kb(self.peak_bytes))?;
        writeln!(
            f,
            "    arena              {:>12}  (lower bound {}, ratio {:.3}, {})",
            kb(self.arena_bytes),
            kb(self.lower_bound_bytes),
            self.ratio(),
            self.planner
        )?;
        writeln!(
            f,
            "    parameters         {:>12}  ({} updated)",
            kb(self.params_bytes),
            self.updated_params.len()
        )?;
        writeln!(f, "    optimizer state    {:>12}", kb(self.state_bytes))?;
        writeln!(f, "  flash (frozen)       {:>12}", kb(self.flash_bytes))?;
        writeln!(
            f,
            "  saved activations    {:>12}",
            kb(self.saved_activation_bytes)
        )?;
        writeln!(f, "  saved masks          {:>12}", kb(self.mask_bytes))?;
        writeln!(f, "  inputs               {:>12}", kb(self.input_bytes))?;
        writeln!(
            f,
            "  largest scratch      {:>12}",
            kb(self.max_scratch_bytes)
        )?;
        write!(f, "  arena peak at step {}:", self.peak_step)?;
        for (k, bytes) in &self.at_peak {
            write!(f, " {} {}", k.name(), kb(*bytes))?;
            if Some(k) != self.at_peak.last().map(|(k, _)| k) {
                f.write_str(",")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Builder, Symbol, TensorData, TensorType};

    /// x [1,8] → linear (w [4,8] trained, b [4] frozen) → loss; backward: weight gradient; sgd.
    #[test]
    fn a_hand_built_training_step() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "train_step");
        let x = b.arg("x", TensorType::f32(&[1, 8])); // 32 bytes
        let labels = b.arg("labels", TensorType::new(&[1], ElemType::I32)); // 4
        let lr = b.arg("lr", TensorType::f32(&[])); // 4
        let step = b.arg("step", TensorType::new(&[], ElemType::I64)); // 8
        let w = b
            .param(
                "w",
                TensorType::f32(&[4, 8]),
                true,
                Some(TensorData::F32(vec![0.0; 32])),
            )
            .unwrap();
        let bias = b
            .param(
                "b",
                TensorType::f32(&[4]),
                false,
                Some(TensorData::F32(vec![0.0; 4])),
            )
            .unwrap();
        let y = b.op(Op::Linear {}, &[x, w, bias]).unwrap(); // 16, step 2
        let r = b.op(Op::Relu {}, &[y]).unwrap(); // 16, step 3 (y is used again)
        let k = b.op(Op::Mask { min: 0.0, max: 1e9 }, &[y]).unwrap(); // 1 byte, step 4
        let loss = b.op(Op::SoftmaxCrossEntropy {}, &[r, labels]).unwrap(); // 4, step 5
        let one = b
            .constant("one", TensorType::f32(&[]), TensorData::F32(vec![1.0]))
            .unwrap();
        let dr = b
            .op(Op::SoftmaxCrossEntropyGrad {}, &[r, labels, one])
            .unwrap(); // 16, step 7
        let dy = b.op(Op::ApplyMask {}, &[dr, k]).unwrap(); // in place of dr, step 8
        let dw = b.op(Op::LinearWeightGrad {}, &[x, dy]).unwrap(); // 128, step 9
        let sgd = Op::Sgd {
            param: Symbol("w".into()),
            lr_scale: 1.0,
            momentum: 0.0,
            weight_decay: 0.0,
            qas: false,
            stochastic: false,
            seed: 0,
            accumulate: 1,
            momentum_state: None,
            accum_state: None,
            slice_axis: 0,
            slice_start: 0,
        };
        b.op_typed(sgd, &[dw, lr, step], vec![]).unwrap(); // step 10
        b.ret(&[loss]);
        let r = memory_report(&m, "train_step").unwrap();

        // Inputs live from step 0: x to step 9, labels to 7, lr and step to 10.
        assert_eq!(r.input_bytes, 32 + 4 + 4 + 8);
        // r is used by the loss gradient after the loss: saved, 16 bytes; the mask too.
        assert_eq!(r.saved_activation_bytes, 16);
        assert_eq!(r.mask_bytes, 1);
        // Peak at step 9: inputs 44 (the labels died at step 7) + dy 16 (in place of dr) + dw
        // 128 + the loss 4; y died at step 4, r at step 7, the mask at step 8.
        assert_eq!(r.lower_bound_bytes, 44 + 16 + 128 + 4);
        assert_eq!(r.peak_step, 9);
        assert_eq!(
            r.at_peak,
            vec![
                (BufferKind::Input, 44),
                (BufferKind::Gradient, 144),
                (BufferKind::Output, 4)
            ]
        );
        assert!(r.arena_bytes >= r.lower_bound_bytes);
        assert_eq!(r.params_bytes, 128, "w is updated: its SRAM copy");
        assert_eq!(r.updated_params, ["w"]);
        assert_eq!(r.flash_bytes, 16 + 4, "the frozen bias and the constant");
        assert_eq!(r.state_bytes, 0);
        assert_eq!(r.peak_bytes, r.arena_bytes + 128);
        let text = r.to_string();
        assert!(
            text.contains("arena peak at step 9: input 0.0 KB, gradient 0.1 KB, output 0.0 KB"),
            "{text}"
        );
        assert!(matches!(
            memory_report(&m, "nope"),
            Err(MemoryError::NoFunction(_))
        ));
    }
}
