//! `autodiff`: compile-time reverse-mode differentiation that builds the whole training step.
//!
//! From function `forward` (one input, returning logits `[N, C]` f32) [`build_training_step`]
//! adds a new function
//!
//! ```text
//! func @train_step(%input, %labels: tensor<Nxi32>, %lr: tensor<f32>, %step: tensor<i64>)
//!     -> (tensor<f32>)
//! ```
//!
//! returning the loss (with `loss = mse` the second argument is `%target`, of the logits' type).
//! Its body is, in order:
//! 1. **forward**: the ops of `forward`, copied; right after each op on the gradient path that
//!    needs one, the 1-bit `grad.mask` its backward pass uses (see below);
//! 2. **loss**: `nn.softmax_cross_entropy(logits, labels)` or `nn.mse_loss(logits, target)`;
//! 3. **backward**: the seed `dloss = 1` (constant `@<train_step>.dloss`), then the ops' rules in
//!    reverse program order; gradients of a value used several times are summed with `nn.add`;
//! 4. **optimizer**: one `optim.sgd(grad, %lr, %step)` per trainable parameter that receives a
//!    gradient, in declaration order (option `updates=end`, the default). With
//!    `updates=asap` each update is emitted instead as soon as its gradient is complete (right
//!    after the backward rule of the parameter's last use), as the paper's operator reordering
//!    does; the backward ops that read the parameter all come before its update either way.
//!
//! `forward` is left unchanged. Optimizer state (`state @<param>.momentum` with `momentum > 0`,
//! `@<param>.grad_acc` with `accumulate > 1`) is declared zero-initialised and named by each
//! update's `momentum_state` / `accum_state` attribute.
//!
//! **The gradient path.** The trainable set is the parameters declared
//! declared trainable (`GlobalKind::Param { trainable }` other than `Trainable::None`; set them
//! for schemes such as "last K layers" before running, e.g. with `mite_passes::scheme`).
//!
//! **Sub-operator slicing.** A convolution weight declared `Trainable::Channels` gets the
//! gradient of those channels only: for input channels (axis 1 of a dense conv) or the channels
//! of a depthwise conv (axis 0), the forward section saves `grad.slice` of the input (named
//! `<layer>.saved_input`) instead of the whole input, and `grad.conv2d_weight` reads it (and
//! the sliced output gradient, with `groups` = the slice length, for depthwise); for output
//! channels (axis 0 of a dense conv) the output gradient is sliced. `optim.sgd` then updates
//! that slice (`slice_axis`, `slice_start`). Only values on a path from a trainable parameter to the loss get a gradient
//! (an *adjoint*): values forward-reachable from a trainable `param` read and backward-reachable
//! from the logits. Ops off that path get no backward code, and an op's rule only computes the
//! operand gradients that are on the path (no `grad.conv2d_input` below the first trained layer,
//! no `grad.conv2d_weight` for a frozen weight): this is the seed of dead-gradient elimination.
//!
//! **Rules** (one exhaustive `match` over [`Op`] in `autodiff/vjp.rs`; `dy` the result's gradient):
//!
//! | op | backward | saved |
//! |----|----------|-------|
//! | `nn.conv2d` | `grad.conv2d_input(dy, w)`, `grad.conv2d_weight(x, dy)`, `grad.conv2d_bias(dy)` | `x` if the weight trains |
//! | `nn.linear` | `grad.linear_input(dy, w)`, `grad.linear_weight(x, dy)`, `grad.linear_bias(dy)` | `x` if the weight trains |
//! | `nn.matmul` | `grad.matmul_lhs(dy, b)`, `grad.matmul_rhs(a, dy)` | the other operand |
//! | `nn.add` | `dy`, `grad.reduce_to_shape` where broadcast | — |
//! | `nn.mul` | `nn.mul(dy, other)`, `grad.reduce_to_shape` where broadcast | the other operand |
//! | `nn.relu`, `nn.clip` | `grad.apply_mask(dy, m)` | mask `m` of the *input* |
//! | `nn.avg_pool`, `nn.global_avg_pool` | `grad.avg_pool`, `grad.global_avg_pool` | — |
//! | `nn.max_pool` | `grad.max_pool(x, dy)` (`x` dequantized if int8) | `x` |
//! | `nn.concat` | `grad.slice` per operand | — |
//! | `nn.reshape`, `nn.flatten` | `nn.reshape` back | — |
//! | `nn.transpose` | `nn.transpose` by the inverse permutation | — |
//! | `nn.pad` | `grad.pad` | — |
//! | `nn.softmax`, `nn.log_softmax` | `grad.softmax(y, dy)`, `grad.log_softmax(y, dy)` | output `y` |
//! | `nn.softmax_cross_entropy`, `nn.mse_loss` | `grad.softmax_cross_entropy`, `grad.mse_loss` | logits |
//! | `q.conv2d`, `q.linear` | `dz = grad.apply_mask(dy, m)`, then the float rules with the int8 weight and `q.dequantize(x)` | mask `m` of the int8 *output* in `(act_min, act_max)`; int8 `x` if the weight trains |
//! | `q.add` | `grad.apply_mask(dy, m)` to both operands | mask of the output |
//! | `q.avg_pool` | `grad.avg_pool` of the masked gradient | mask of the output |
//! | `q.global_avg_pool` | `grad.global_avg_pool` | — |
//! | `q.quantize`, `q.requantize` | `grad.apply_mask(dy, m)` (saturation) | mask of the output in `(-128, 127)` |
//! | `q.dequantize` | `dy` (straight through) | — |
//! | `param`, `const`, `grad.*`, `optim.*`, custom ops, loss labels / targets | an error if on the path | — |
//!
//! int8 ops use the straight-through estimator with real-valued gradients: the gradient of an
//! int8 value is the gradient w.r.t. its real value `scale · (q − zero_point)`, and the
//! gradient of an int8 or int32 parameter is in real units (`optim.sgd` converts it, with QAS).
//! Activations are saved only where a weight gradient (or `nn.mul`, `nn.max_pool`, softmax, the
//! loss) needs them; clamps save 1-bit masks instead; int8 inputs are saved as int8 and
//! dequantized in the backward pass.
//!
//! **Optimizer.** `optim.sgd {param, lr_scale, momentum, weight_decay, qas, stochastic, seed,
//! accumulate}` with `lr_scale = lr-scale-bias` for biases (parameters read as operand 2 of
//! `nn.conv2d`, `nn.linear`, `q.conv2d` or `q.linear`, directly or through `q.dequantize`) and 1
//! otherwise; the other attributes come from the options, except that with stochastic rounding
//! each parameter's `seed` is the option's seed plus the parameter's declaration index.
//!
//! Options (pipeline text): `loss=cross-entropy|mse`, `lr-scale-bias=1`, `momentum=0`,
//! `weight-decay=0`, `qas=true`, `stochastic=false`, `seed=0`, `accumulate=1`,
//! `updates=end|asap`, `forward=forward`, `train-step=train_step`.
//!
//! Statistics: `forward-ops` (copied ops and the loss), `mask-ops`, `backward-ops`,
//! `optimizer-ops`, `adjoints`, `masks-saved`, `mask-bytes`, `activations-saved`,
//! `activation-bytes`, `params-updated`, `trainable-params-without-gradient`.

mod vjp;

use crate::pass::{Pass, PassError};
use crate::statistics::Statistics;
use mite_ir::analysis::{Liveness, Schedule};
use mite_ir::verify::verify_module;
use mite_ir::{
    BuildError, Builder, ElemType, Function, GlobalData, GlobalKind, Module, Op, OpId, Symbol,
    TensorData, TensorType, Trainable, Value, ValueDef, VerifyErrors,
};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use vjp::{saved_mask, ChannelSlice, Emitter, Forward, MaskOf};

/// The loss a training step minimises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Loss {
    /// Mean softmax cross-entropy against integer labels (`nn.softmax_cross_entropy`).
    #[default]
    CrossEntropy,
    /// Mean squared error against a target of the logits' type (`nn.mse_loss`).
    Mse,
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loss::CrossEntropy => "cross-entropy",
            Loss::Mse => "mse",
        })
    }
}

impl FromStr for Loss {
    type Err = String;

    fn from_str(s: &str) -> Result<Loss, String> {
        match s {
            "cross-entropy" => Ok(Loss::CrossEntropy),
            "mse" => Ok(Loss::Mse),
            _ => Err("expected `cross-entropy` or `mse`".into()),
        }
    }
}

/// Where the parameter updates go in the training step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpdatePlacement {
    /// After the whole backward pass, in parameter declaration order.
    #[default]
    End,
    /// Each right after its gradient is complete, interleaved with the backward pass (so that
    /// full gradient buffers need not all be live at once).
    AsSoonAsReady,
}

impl fmt::Display for UpdatePlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpdatePlacement::End => "end",
            UpdatePlacement::AsSoonAsReady => "asap",
        })
    }
}

impl FromStr for UpdatePlacement {
    type Err = String;

    fn from_str(s: &str) -> Result<UpdatePlacement, String> {
        match s {
            "end" => Ok(UpdatePlacement::End),
            "asap" => Ok(UpdatePlacement::AsSoonAsReady),
            _ => Err("expected `end` or `asap`".into()),
        }
    }
}

/// How to build the training step.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The function differentiated (default `forward`).
    pub forward: String,
    /// The function created (default `train_step`).
    pub train_step: String,
    /// The loss.
    pub loss: Loss,
    /// Learning-rate multiplier of biases (default 1: every trained tensor at the same rate, as
    /// PyTorch users expect; the paper's on-device recipe uses 0.5, its 0.0004 vs 0.0008).
    pub lr_scale_bias: f32,
    /// SGD momentum (default 0: none, as the paper at batch 1).
    pub momentum: f32,
    /// L2 weight decay (default 0).
    pub weight_decay: f32,
    /// Quantization-aware scaling of int8 / int32 parameters' gradients (default true).
    pub qas: bool,
    /// Stochastic rounding of integer updates (default false: round half to even).
    pub stochastic: bool,
    /// Seed of the stochastic rounding (default 0).
    pub seed: i64,
    /// Gradient accumulation: apply the updates every `accumulate` steps (default 1).
    pub accumulate: i64,
    /// Where the updates go (default [`UpdatePlacement::End`]).
    pub updates: UpdatePlacement,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            forward: "forward".into(),
            train_step: "train_step".into(),
            loss: Loss::CrossEntropy,
            lr_scale_bias: 1.0,
            momentum: 0.0,
            weight_decay: 0.0,
            qas: true,
            stochastic: false,
            seed: 0,
            accumulate: 1,
            updates: UpdatePlacement::End,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<(), AutodiffError> {
        let bad = |m: &str| Err(AutodiffError::InvalidConfig(m.to_string()));
        if !self.lr_scale_bias.is_finite() {
            return bad("lr_scale_bias must be finite");
        }
        if !(self.momentum.is_finite() && self.momentum >= 0.0) {
            return bad("momentum must be finite and ≥ 0");
        }
        if !self.weight_decay.is_finite() {
            return bad("weight_decay must be finite");
        }
        if self.accumulate < 1 {
            return bad("accumulate must be ≥ 1");
        }
        if self.forward == self.train_step {
            return bad("the training step needs a name other than the forward function's");
        }
        Ok(())
    }
}

/// What [`build_training_step`] built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrainStats {
    /// Ops of the forward section: the copied forward ops and the loss.
    pub forward_ops: usize,
    /// `grad.mask` ops in the forward section.
    pub mask_ops: usize,
    /// Ops of the backward pass (gradients, their sums, the seed, dequantized saved inputs).
    pub backward_ops: usize,
    /// `optim.sgd` ops.
    pub optimizer_ops: usize,
    /// Values that received a gradient (adjoint), the loss included.
    pub adjoints: usize,
    /// Masks the backward pass reads.
    pub masks_saved: usize,
    /// Their size in bytes (1 bit per element, rounded up per mask).
    pub mask_bytes: usize,
    /// Forward buffers other than masks and global reads (activations, the input, the logits)
    /// that the backward pass reads, so they stay live across the loss (a view shares its
    /// source's buffer: [`mite_ir::analysis::Liveness`]).
    pub activations_saved: usize,
    /// Their size in bytes.
    pub activation_bytes: usize,
    /// The parameters updated, in declaration order.
    pub updated_params: Vec<String>,
    /// Trainable parameters that do not influence the loss (no gradient, no update).
    pub trainable_without_gradient: Vec<String>,
}

/// Why a training step could not be built.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum AutodiffError {
    /// The configuration is invalid.
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
    /// There is no function to differentiate.
    #[error("no function @{0} to differentiate")]
    NoForward(String),
    /// The function to create exists already.
    #[error("function @{0} exists already")]
    FunctionExists(String),
    /// A global the training step declares exists already.
    #[error("global @{0} exists already (the training step declares it)")]
    GlobalExists(String),
    /// The forward function does not take exactly one input.
    #[error("@{func} must take exactly one input (the image), found {found}")]
    ForwardInputs {
        /// The function.
        func: String,
        /// How many arguments it has.
        found: usize,
    },
    /// The forward function does not return exactly one value.
    #[error("@{func} must return exactly one value (the logits), found {found}")]
    ForwardOutputs {
        /// The function.
        func: String,
        /// How many outputs it has.
        found: usize,
    },
    /// The logits are not a `[N, C]` f32 tensor.
    #[error("@{func} must return logits of type tensor<NxCxf32>, found {found}")]
    LogitsType {
        /// The function.
        func: String,
        /// The type returned, printed.
        found: String,
    },
    /// No parameter is declared trainable.
    #[error("no trainable parameter: mark parameters `trainable` to train them")]
    NoTrainableParams,
    /// No trainable parameter influences the logits.
    #[error("no trainable parameter influences the logits of @{func} (trainable: {})", .trainable.join(", "))]
    NoGradientPath {
        /// The function.
        func: String,
        /// The trainable parameters.
        trainable: Vec<String>,
    },
    /// An op on the gradient path has no gradient.
    #[error("{location} lies on the gradient path but is not differentiable: {reason}")]
    NotDifferentiable {
        /// `@forward op #3 nn.conv2d "conv"`.
        location: String,
        /// Why.
        reason: String,
    },
    /// An op could not be built (a bug of a rule, or IR the verifier would reject).
    #[error("building the training step: {0}")]
    Build(BuildError),
    /// An inconsistency inside the pass (a bug).
    #[error("internal error in autodiff: {0}")]
    Internal(String),
    /// The result does not verify (a bug).
    #[error("the training step does not verify:\n{0}")]
    Verify(VerifyErrors),
}

/// Adds the training step of `config.forward` to `module` as function `config.train_step`
/// (see the module documentation). On error the module is left unchanged.
pub fn build_training_step(
    module: &mut Module,
    config: &TrainConfig,
) -> Result<TrainStats, AutodiffError> {
    config.validate()?;
    let forward = module
        .function(&config.forward)
        .ok_or_else(|| AutodiffError::NoForward(config.forward.clone()))?
        .clone();
    if module.function(&config.train_step).is_some() {
        return Err(AutodiffError::FunctionExists(config.train_step.clone()));
    }
    let analysis = analyse(module, &forward)?;
    let globals_before = module.globals.len();
    let functions_before = module.functions.len();
    let result = emit(module, &forward, &analysis, config).and_then(|stats| {
        verify_module(module).map_err(AutodiffError::Verify)?;
        Ok(stats)
    });
    if result.is_err() {
        module.functions.truncate(functions_before);
        module.globals.truncate(globals_before);
    }
    result
}

/// The gradient path of the forward function.
struct Analysis {
    /// The forward function's input and logits.
    input: Value,
    logits: Value,
    /// Values on a path from a trainable parameter to the logits.
    on_path: HashSet<Value>,
    /// Trainable parameters with a read on the path, in declaration order.
    updated: Vec<String>,
    /// Trainable parameters without one.
    without_gradient: Vec<String>,
    /// Parameters read as biases.
    biases: HashSet<String>,
    /// Parameters of which only a channel slice trains.
    slices: HashMap<String, ChannelSlice>,
}

fn analyse(module: &Module, forward: &Function) -> Result<Analysis, AutodiffError> {
    let func = forward.name.clone();
    let &[input] = forward.args() else {
        return Err(AutodiffError::ForwardInputs {
            func,
            found: forward.args().len(),
        });
    };
    let &[logits] = forward.outputs() else {
        return Err(AutodiffError::ForwardOutputs {
            func,
            found: forward.outputs().len(),
        });
    };
    let ty = forward.ty(logits);
    if ty.rank() != 2 || ty.elem != ElemType::F32 || ty.quant.is_some() {
        return Err(AutodiffError::LogitsType {
            func,
            found: ty.to_string(),
        });
    }
    let trainable: Vec<String> = module
        .globals
        .iter()
        .filter(|(_, g)| g.kind.is_trainable())
        .map(|(name, _)| name.clone())
        .collect();
    let slices: HashMap<String, ChannelSlice> = module
        .globals
        .iter()
        .filter_map(|(name, g)| match g.kind {
            GlobalKind::Param {
                trainable: Trainable::Channels { axis, start, len },
            } => Some((name.clone(), ChannelSlice { axis, start, len })),
            _ => None,
        })
        .collect();
    if trainable.is_empty() {
        return Err(AutodiffError::NoTrainableParams);
    }
    let is_trainable: HashSet<&str> = trainable.iter().map(String::as_str).collect();

    let mut reached: HashSet<Value> = HashSet::new();
    for &id in forward.layout() {
        let data = forward.op(id);
        let reaches = match &data.op {
            Op::Param { global } => is_trainable.contains(global.0.as_str()),
            _ => data.operands.iter().any(|v| reached.contains(v)),
        };
        if reaches {
            reached.extend(data.results.iter().copied());
        }
    }
    let mut needed: HashSet<Value> = HashSet::from([logits]);
    for &id in forward.layout().iter().rev() {
        let data = forward.op(id);
        if data.results.iter().any(|r| needed.contains(r)) {
            needed.extend(data.operands.iter().copied());
        }
    }
    let on_path: HashSet<Value> = reached.intersection(&needed).copied().collect();
    if !on_path.contains(&logits) {
        return Err(AutodiffError::NoGradientPath { func, trainable });
    }

    let mut read_on_path: HashSet<&str> = HashSet::new();
    let mut biases = HashSet::new();
    for &id in forward.layout() {
        let data = forward.op(id);
        match &data.op {
            Op::Param { global } if on_path.contains(&data.result()) => {
                read_on_path.insert(global.0.as_str());
            }
            Op::Conv2d { .. } | Op::Linear {} | Op::QConv2d { .. } | Op::QLinear { .. } => {
                if let Some(name) = data.operands.get(2).and_then(|&b| read_param(forward, b)) {
                    biases.insert(name.to_string());
                }
            }
            _ => {}
        }
    }
    let (updated, without_gradient) = trainable
        .iter()
        .cloned()
        .partition(|name| read_on_path.contains(name.as_str()));
    Ok(Analysis {
        input,
        logits,
        on_path,
        updated,
        without_gradient,
        biases,
        slices,
    })
}

/// The parameter `v` reads, directly or through `q.dequantize`.
fn read_param(func: &Function, v: Value) -> Option<&str> {
    let ValueDef::Result(id, _) = func.value(v).def else {
        return None;
    };
    let data = func.op(id);
    match &data.op {
        Op::Param { global } => Some(&global.0),
        Op::Dequantize {} => read_param(func, data.operands[0]),
        _ => None,
    }
}

/// The trained channel slice of the weight of forward op `data`, when its weight is on the
/// gradient path and only a slice trains, and whether the op's input is sliced for it (input
/// channels of a convolution, channels of a depthwise one) or not (output channels).
fn weight_slice(
    forward: &Function,
    data: &mite_ir::OpData,
    analysis: &Analysis,
    location: &str,
) -> Result<Option<(ChannelSlice, bool)>, AutodiffError> {
    let Some(&w) = data.operands.get(1) else {
        return Ok(None);
    };
    let slice = match read_param(forward, w).and_then(|p| analysis.slices.get(p)) {
        Some(&slice) if analysis.on_path.contains(&w) => slice,
        _ => return Ok(None),
    };
    let unsupported = |reason: String| AutodiffError::NotDifferentiable {
        location: location.to_string(),
        reason,
    };
    let groups = match &data.op {
        Op::Conv2d { groups, .. } | Op::QConv2d { groups, .. } => *groups,
        _ => {
            return Err(unsupported(format!(
                "its weight trains only channels {}:{} but channel slices are supported for convolution weights only",
                slice.start,
                slice.start + slice.len
            )))
        }
    };
    let weight_in = forward.ty(w).shape.get(1).copied().unwrap_or(0);
    match (groups, slice.axis) {
        (1, 0) => Ok(Some((slice, false))),
        (1, 1) => Ok(Some((slice, true))),
        (g, 0) if g > 1 && weight_in == 1 => Ok(Some((slice, true))),
        (g, axis) => Err(unsupported(format!(
            "a channel slice along weight axis {axis} of a convolution with {g} groups is not supported (slice axis 0 or 1 of a dense convolution, axis 0 of a depthwise one)"
        ))),
    }
}

/// An op of the forward section to differentiate.
struct Step {
    id: OpId,
    location: String,
    mask: Option<Value>,
    weight_slice: Option<(ChannelSlice, Option<Value>)>,
}

fn internal(message: impl Into<String>) -> AutodiffError {
    AutodiffError::Internal(message.into())
}

fn last_op(b: &Builder<'_>) -> Result<OpId, AutodiffError> {
    b.func()
        .layout()
        .last()
        .copied()
        .ok_or_else(|| internal("no op was appended"))
}

fn emit(
    module: &mut Module,
    forward: &Function,
    analysis: &Analysis,
    config: &TrainConfig,
) -> Result<TrainStats, AutodiffError> {
    declare_state(module, analysis, config)?;
    let seed_name = format!("{}.dloss", config.train_step);
    if module.globals.contains_key(&seed_name) {
        return Err(AutodiffError::GlobalExists(seed_name));
    }

    let logits_ty = forward.ty(analysis.logits).clone();
    let mut b = Builder::new(module, &config.train_step);
    let input_name = forward
        .value(analysis.input)
        .name
        .clone()
        .unwrap_or_else(|| "input".into());
    let input = b.arg(&input_name, forward.ty(analysis.input).clone());
    let (target, loss_op) = match config.loss {
        Loss::CrossEntropy => (
            b.arg(
                "labels",
                TensorType::new(&[logits_ty.shape[0]], ElemType::I32),
            ),
            Op::SoftmaxCrossEntropy {},
        ),
        Loss::Mse => (b.arg("target", logits_ty.clone()), Op::MseLoss {}),
    };
    let lr = b.arg("lr", TensorType::f32(&[]));
    let step = b.arg("step", TensorType::new(&[], ElemType::I64));

    // 1. The forward ops, with the masks their backward rules use.
    let mut map: HashMap<Value, Value> = HashMap::from([(analysis.input, input)]);
    let mut on_path: HashSet<Value> = HashSet::new();
    let mut steps: Vec<Step> = Vec::new();
    for (index, &id) in forward.layout().iter().enumerate() {
        let data = forward.op(id);
        let operands = data
            .operands
            .iter()
            .map(|v| map.get(v).copied())
            .collect::<Option<Vec<Value>>>()
            .ok_or_else(|| internal("an operand is defined after its use"))?;
        let types = data
            .results
            .iter()
            .map(|&r| forward.ty(r).clone())
            .collect();
        if let Some(name) = &data.loc.name {
            b.named(name.clone());
        }
        let results = b
            .op_typed(data.op.clone(), &operands, types)
            .map_err(AutodiffError::Build)?;
        let new_id = last_op(&b)?;
        let mut differentiated = false;
        for (&old, &new) in data.results.iter().zip(&results) {
            map.insert(old, new);
            if analysis.on_path.contains(&old) {
                on_path.insert(new);
                differentiated = true;
            }
        }
        let mut mask = None;
        if differentiated {
            if let Some(spec) = saved_mask(&data.op) {
                let of = match spec.of {
                    MaskOf::Input => operands[0],
                    MaskOf::Output => results[0],
                };
                if let Some(name) = &data.loc.name {
                    b.named(format!("{name}.mask"));
                }
                let op = Op::Mask {
                    min: spec.min,
                    max: spec.max,
                };
                mask = Some(b.op(op, &[of]).map_err(AutodiffError::Build)?);
            }
        }
        let loc = data
            .loc
            .name
            .as_ref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let location = format!("@{} op #{index} {}{loc}", forward.name, data.op.name());
        let weight_slice = match weight_slice(forward, data, analysis, &location)? {
            Some((slice, true)) => {
                if let Some(name) = &data.loc.name {
                    b.named(format!("{name}.saved_input"));
                }
                let saved = b
                    .op(slice.op(1), &[operands[0]])
                    .map_err(AutodiffError::Build)?;
                Some((slice, Some(saved)))
            }
            Some((slice, false)) => Some((slice, None)),
            None => None,
        };
        steps.push(Step {
            id: new_id,
            location,
            mask,
            weight_slice,
        });
    }

    // 2. The loss.
    let logits = map[&analysis.logits];
    b.named("loss");
    let loss = b
        .op(loss_op, &[logits, target])
        .map_err(AutodiffError::Build)?;
    on_path.insert(loss);
    steps.push(Step {
        id: last_op(&b)?,
        location: format!("the loss of @{}", config.train_step),
        mask: None,
        weight_slice: None,
    });
    let forward_end = b.func().num_ops();

    // 3. The backward pass.
    b.named("loss.seed");
    let seed = b
        .constant(&seed_name, TensorType::f32(&[]), TensorData::F32(vec![1.0]))
        .map_err(AutodiffError::Build)?;
    let mut backward = Backward {
        adjoints: HashMap::from([(loss, seed)]),
        reads: HashMap::new(),
        read_global: HashMap::new(),
        pending: HashMap::new(),
        lr,
        step,
    };
    for s in &steps {
        let data = b.func().op(s.id);
        if let Op::Param { global } = &data.op {
            if on_path.contains(&data.result()) {
                backward
                    .reads
                    .entry(global.0.clone())
                    .or_default()
                    .push(data.result());
                backward.read_global.insert(data.result(), global.0.clone());
            }
        }
    }
    for s in &steps {
        let data = b.func().op(s.id);
        if matches!(data.op, Op::Param { .. }) || !on_path.contains(&data.result()) {
            continue;
        }
        let distinct: HashSet<&Value> = data.operands.iter().collect();
        for v in distinct {
            if let Some(g) = backward.read_global.get(v) {
                *backward.pending.entry(g.clone()).or_default() += 1;
            }
        }
    }

    for s in steps.iter().rev() {
        let data = b.func().op(s.id).clone();
        if data.results.len() != 1
            || !on_path.contains(&data.result())
            || matches!(data.op, Op::Param { .. })
        {
            continue;
        }
        let result = data.result();
        let dy = *backward
            .adjoints
            .get(&result)
            .ok_or_else(|| internal(format!("{} has no gradient", s.location)))?;
        let needs: Vec<bool> = data.operands.iter().map(|v| on_path.contains(v)).collect();
        let fwd = Forward {
            op: &data.op,
            operands: &data.operands,
            result,
            needs: &needs,
            mask: s.mask,
            weight_slice: s.weight_slice,
            location: s.location.clone(),
        };
        let mut e = Emitter {
            b: &mut b,
            loc: data.loc.name.as_ref().map(|n| format!("{n}.grad")),
        };
        let grads = vjp::vjp(&mut e, &fwd, dy)?;
        for ((&v, g), &need) in data.operands.iter().zip(grads).zip(&needs) {
            match (need, g) {
                (true, Some(g)) => backward.accumulate(&mut b, v, g)?,
                (false, None) => {}
                _ => {
                    return Err(internal(format!(
                        "rule of {} skipped a gradient",
                        s.location
                    )))
                }
            }
        }
        if config.updates == UpdatePlacement::AsSoonAsReady {
            let distinct: HashSet<&Value> = data.operands.iter().collect();
            let mut ready = Vec::new();
            for v in distinct {
                if let Some(g) = backward.read_global.get(v) {
                    let n = backward
                        .pending
                        .get_mut(g)
                        .ok_or_else(|| internal("use count"))?;
                    *n -= 1;
                    if *n == 0 {
                        ready.push(g.clone());
                    }
                }
            }
            ready.sort_by_key(|g| analysis.updated.iter().position(|u| u == g));
            for g in ready {
                backward.update(&mut b, &g, analysis, config)?;
            }
        }
    }

    // 4. The updates.
    if config.updates == UpdatePlacement::End {
        for g in &analysis.updated {
            backward.update(&mut b, g, analysis, config)?;
        }
    }
    b.ret(&[loss]);
    let adjoints = backward.adjoints.len();
    let mut stats = count(b.func(), forward_end, input, steps.len(), adjoints);
    stats.updated_params = analysis.updated.clone();
    stats.trainable_without_gradient = analysis.without_gradient.clone();
    Ok(stats)
}

/// The name of optimizer state `kind` of `param` (`@<param>.<kind>`), declared by
/// [`declare_state`] and named by the update's `momentum_state` / `accum_state`.
fn state_symbol(param: &str, kind: &str) -> Symbol {
    Symbol(format!("{param}.{kind}"))
}

/// Declares the optimizer state of the updated parameters.
fn declare_state(
    module: &mut Module,
    analysis: &Analysis,
    config: &TrainConfig,
) -> Result<(), AutodiffError> {
    let mut suffixes = Vec::new();
    if config.momentum > 0.0 {
        suffixes.push("momentum");
    }
    if config.accumulate > 1 {
        suffixes.push("grad_acc");
    }
    for param in &analysis.updated {
        let shape = module.globals[param].ty.shape.clone();
        for suffix in &suffixes {
            let name = state_symbol(param, suffix).0;
            let ty = TensorType::f32(&shape);
            let data = GlobalData::Inline(TensorData::zeros(ElemType::F32, ty.num_elements()));
            if !module.add_state(name.clone(), ty, data) {
                return Err(AutodiffError::GlobalExists(name));
            }
        }
    }
    Ok(())
}

/// The state of the backward pass.
struct Backward {
    /// The gradient of each value on the path that has one so far.
    adjoints: HashMap<Value, Value>,
    /// The reads of each updated parameter on the path.
    reads: HashMap<String, Vec<Value>>,
    /// The parameter each such read reads.
    read_global: HashMap<Value, String>,
    /// Per parameter, the ops on the path using one of its reads not yet differentiated.
    pending: HashMap<String, usize>,
    lr: Value,
    step: Value,
}

impl Backward {
    /// Adds gradient `g` to the gradient of `v`.
    fn accumulate(&mut self, b: &mut Builder<'_>, v: Value, g: Value) -> Result<(), AutodiffError> {
        let sum = match self.adjoints.get(&v) {
            Some(&prev) => b.op(Op::Add {}, &[prev, g]).map_err(AutodiffError::Build)?,
            None => g,
        };
        self.adjoints.insert(v, sum);
        Ok(())
    }

    /// Emits the update of parameter `param` from the sum of its reads' gradients.
    fn update(
        &mut self,
        b: &mut Builder<'_>,
        param: &str,
        analysis: &Analysis,
        config: &TrainConfig,
    ) -> Result<(), AutodiffError> {
        let reads = self.reads.get(param).map(Vec::as_slice).unwrap_or_default();
        let mut grad: Option<Value> = None;
        for r in reads {
            let g = *self
                .adjoints
                .get(r)
                .ok_or_else(|| internal(format!("a read of @{param} has no gradient")))?;
            grad = Some(match grad {
                Some(prev) => b.op(Op::Add {}, &[prev, g]).map_err(AutodiffError::Build)?,
                None => g,
            });
        }
        let grad = grad.ok_or_else(|| internal(format!("@{param} has no gradient")))?;
        let lr_scale = if analysis.biases.contains(param) {
            config.lr_scale_bias
        } else {
            1.0
        };
        // Stochastic rounding draws from (seed, step, element): give each parameter its own seed
        // (offset by its declaration index) so that the noise is not correlated across them.
        let seed = if config.stochastic {
            let index = b.module().globals.get_index_of(param).unwrap_or(0);
            config.seed.wrapping_add(index as i64)
        } else {
            config.seed
        };
        let slice = analysis.slices.get(param);
        let op = Op::Sgd {
            slice_axis: slice.map_or(0, |s| s.axis as i64),
            slice_start: slice.map_or(0, |s| s.start as i64),
            param: Symbol(param.to_string()),
            lr_scale,
            momentum: config.momentum,
            weight_decay: config.weight_decay,
            qas: config.qas,
            stochastic: config.stochastic,
            seed,
            accumulate: config.accumulate,
            momentum_state: (config.momentum > 0.0).then(|| state_symbol(param, "momentum")),
            accum_state: (config.accumulate > 1).then(|| state_symbol(param, "grad_acc")),
        };
        b.effect(op, &[grad, self.lr, self.step])
            .map_err(AutodiffError::Build)?;
        Ok(())
    }
}

/// Counts the ops of each kind and what the backward pass reads of the forward section.
fn count(
    func: &Function,
    forward_end: usize,
    input: Value,
    forward_ops: usize,
    adjoints: usize,
) -> TrainStats {
    let s = saved(func, forward_end, &[input]);
    TrainStats {
        forward_ops,
        adjoints,
        mask_ops: s.mask_ops,
        backward_ops: s.backward_ops,
        optimizer_ops: s.optimizer_ops,
        masks_saved: s.masks,
        mask_bytes: s.mask_bytes,
        activations_saved: s.activations,
        activation_bytes: s.activation_bytes,
        ..TrainStats::default()
    }
}

/// What the backward section of a training step (ops from `forward_end` on) reads of its
/// forward section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Saved {
    /// `grad.mask` ops in the forward section.
    pub mask_ops: usize,
    /// Non-update ops of the backward section.
    pub backward_ops: usize,
    /// `optim.` ops.
    pub optimizer_ops: usize,
    /// Masks read by the backward section, and their bytes.
    pub masks: usize,
    pub mask_bytes: usize,
    /// Other forward values (activations, `inputs`) read by it, and their bytes.
    pub activations: usize,
    pub activation_bytes: usize,
}

pub(crate) fn saved(func: &Function, forward_end: usize, inputs: &[Value]) -> Saved {
    let layout = func.layout();
    let mut out = Saved::default();
    for &id in &layout[..forward_end] {
        if matches!(func.op(id).op, Op::Mask { .. }) {
            out.mask_ops += 1;
        }
    }
    for &id in &layout[forward_end..] {
        if func.op(id).op.updated_param().is_some() {
            out.optimizer_ops += 1;
        } else {
            out.backward_ops += 1;
        }
    }
    // Saved: the buffers (one liveness for all memory figures: views alias their source) defined
    // in the forward section that the backward pass still reads; of the arguments only `inputs`,
    // and not the outputs (the loss).
    let live = Liveness::compute(func, &Schedule::program_order(func));
    for buffer in live.buffers() {
        let is_arg = matches!(func.value(buffer.value).def, ValueDef::Arg(_));
        if buffer.first >= forward_end
            || buffer.last < forward_end
            || (is_arg && !inputs.contains(&buffer.value))
            || func.outputs().contains(&buffer.value)
        {
            continue;
        }
        let bytes = usize::try_from(buffer.size).unwrap_or(usize::MAX);
        if func.ty(buffer.value).elem == ElemType::I1 {
            out.masks += 1;
            out.mask_bytes += bytes;
        } else {
            out.activations += 1;
            out.activation_bytes += bytes;
        }
    }
    out
}

/// The `autodiff` pass: [`build_training_step`] with options from the pipeline text.
#[derive(Clone, Debug, Default)]
pub struct Autodiff {
    /// The configuration used.
    pub config: TrainConfig,
}

impl Autodiff {
    /// A pass building the training step with `config`.
    pub fn new(config: TrainConfig) -> Autodiff {
        Autodiff { config }
    }

    const OPTIONS: &'static [&'static str] = &[
        "loss",
        "lr-scale-bias",
        "momentum",
        "weight-decay",
        "qas",
        "stochastic",
        "seed",
        "accumulate",
        "updates",
        "forward",
        "train-step",
    ];
}

fn parse<T: FromStr>(pass: &str, key: &str, value: &str, what: &str) -> Result<T, PassError> {
    value
        .parse()
        .map_err(|_| PassError::invalid_value(pass, key, value, what))
}

impl Pass for Autodiff {
    fn name(&self) -> &str {
        "autodiff"
    }

    fn description(&self) -> &str {
        "Builds @train_step from @forward: loss, reverse-mode gradients and SGD updates of trainable parameters"
    }

    fn set_option(&mut self, key: &str, value: &str) -> Result<(), PassError> {
        let name = "autodiff";
        let c = &mut self.config;
        match key {
            "loss" => {
                c.loss = value
                    .parse()
                    .map_err(|e: String| PassError::invalid_value(name, key, value, &e))?;
            }
            "lr-scale-bias" => c.lr_scale_bias = parse(name, key, value, "expected a number")?,
            "momentum" => c.momentum = parse(name, key, value, "expected a number")?,
            "weight-decay" => c.weight_decay = parse(name, key, value, "expected a number")?,
            "qas" => c.qas = parse(name, key, value, "expected `true` or `false`")?,
            "stochastic" => c.stochastic = parse(name, key, value, "expected `true` or `false`")?,
            "seed" => c.seed = parse(name, key, value, "expected an integer")?,
            "accumulate" => {
                c.accumulate = parse(name, key, value, "expected an integer ≥ 1")?;
                if c.accumulate < 1 {
                    return Err(PassError::invalid_value(
                        name,
                        key,
                        value,
                        "expected an integer ≥ 1",
                    ));
                }
            }
            "updates" => {
                c.updates = value
                    .parse()
                    .map_err(|e: String| PassError::invalid_value(name, key, value, &e))?;
            }
            "forward" => c.forward = value.to_string(),
            "train-step" => c.train_step = value.to_string(),
            _ => return Err(PassError::unknown_option(name, key, Self::OPTIONS)),
        }
        Ok(())
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let s = build_training_step(module, &self.config)
            .map_err(|e| PassError::failed(self.name(), e.to_string()))?;
        stats.add("forward-ops", s.forward_ops as u64);
        stats.add("mask-ops", s.mask_ops as u64);
        stats.add("backward-ops", s.backward_ops as u64);
        stats.add("optimizer-ops", s.optimizer_ops as u64);
        stats.add("adjoints", s.adjoints as u64);
        stats.add("masks-saved", s.masks_saved as u64);
        stats.add("mask-bytes", s.mask_bytes as u64);
        stats.add("activations-saved", s.activations_saved as u64);
        stats.add("activation-bytes", s.activation_bytes as u64);
        stats.add("params-updated", s.updated_params.len() as u64);
        stats.add(
            "trainable-params-without-gradient",
            s.trainable_without_gradient.len() as u64,
        );
        Ok(true)
    }
}
