//! The per-op rules of reverse-mode differentiation: what an op saves in the forward pass
//! ([`saved_mask`]) and what it emits in the backward pass ([`vjp`]).
//!
//! Both are exhaustive `match`es over [`Op`] without a catch-all arm: a new op without a rule is a
//! compile error. Gradients are real-valued f32 tensors of the shape of the value they belong to,
//! also for int8 values (straight-through estimator).

use super::AutodiffError;
use mite_ir::infer::norm_axis;
use mite_ir::{Builder, ElemType, Op, TensorType, Value};

/// Which value of an op a saved mask is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MaskOf {
    /// The first operand (float clamps: `nn.relu`, `nn.clip`).
    Input,
    /// The result (int8 ops: where the output clamp was inactive).
    Output,
}

/// A 1-bit mask saved in the forward pass: `min < value < max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct MaskSpec {
    /// The value compared.
    pub of: MaskOf,
    /// Lower bound (exclusive).
    pub min: f32,
    /// Upper bound (exclusive).
    pub max: f32,
}

impl MaskSpec {
    fn output(min: i64, max: i64) -> Option<MaskSpec> {
        Some(MaskSpec {
            of: MaskOf::Output,
            min: min as f32,
            max: max as f32,
        })
    }
}

const I8_MIN: i64 = -128;
const I8_MAX: i64 = 127;

/// The mask an op on the gradient path saves in the forward pass, if any.
///
/// Float clamps save a mask of their input; int8 ops with an output clamp save a mask of their
/// int8 output against the clamp bounds (`act_min`, `act_max`, or the int8 range for
/// `q.quantize` / `q.requantize`), so that no activation needs to be kept for the clamp.
pub(super) fn saved_mask(op: &Op) -> Option<MaskSpec> {
    match op {
        Op::Relu {} => Some(MaskSpec {
            of: MaskOf::Input,
            min: 0.0,
            max: f32::INFINITY,
        }),
        Op::Clip { min, max } => Some(MaskSpec {
            of: MaskOf::Input,
            min: *min,
            max: *max,
        }),
        Op::QConv2d {
            act_min, act_max, ..
        }
        | Op::QLinear { act_min, act_max }
        | Op::QAdd { act_min, act_max }
        | Op::QAvgPool {
            act_min, act_max, ..
        } => MaskSpec::output(*act_min, *act_max),
        Op::Quantize {} | Op::Requantize {} => MaskSpec::output(I8_MIN, I8_MAX),
        Op::Param { .. }
        | Op::Const { .. }
        | Op::Conv2d { .. }
        | Op::Linear {}
        | Op::MatMul {}
        | Op::Add {}
        | Op::Mul {}
        | Op::AvgPool { .. }
        | Op::GlobalAvgPool {}
        | Op::MaxPool { .. }
        | Op::Concat { .. }
        | Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Transpose { .. }
        | Op::Pad { .. }
        | Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::SoftmaxCrossEntropy {}
        | Op::MseLoss {}
        | Op::Dequantize {}
        | Op::QGlobalAvgPool {}
        | Op::ConvInputGrad { .. }
        | Op::ConvInputGradMasked { .. }
        | Op::ConvWeightGrad { .. }
        | Op::ConvBiasGrad {}
        | Op::LinearInputGrad {}
        | Op::LinearWeightGrad {}
        | Op::LinearBiasGrad {}
        | Op::MatMulLhsGrad {}
        | Op::MatMulRhsGrad {}
        | Op::AvgPoolGrad { .. }
        | Op::GlobalAvgPoolGrad { .. }
        | Op::MaxPoolGrad { .. }
        | Op::Mask { .. }
        | Op::ApplyMask {}
        | Op::ReduceToShape { .. }
        | Op::SoftmaxGrad { .. }
        | Op::LogSoftmaxGrad { .. }
        | Op::SoftmaxCrossEntropyGrad {}
        | Op::MseLossGrad {}
        | Op::PadGrad { .. }
        | Op::Slice { .. }
        | Op::Sgd { .. }
        | Op::QBottleneck { .. }
        | Op::QBottleneckChain { .. }
        | Op::Custom(_) => None,
    }
}

/// Appends backward ops to the training function, named after the forward op they differentiate.
pub(super) struct Emitter<'a, 'm> {
    /// The builder of the training function.
    pub b: &'a mut Builder<'m>,
    /// The location name given to emitted ops (`<forward op>.grad`), if any.
    pub loc: Option<String>,
}

impl Emitter<'_, '_> {
    /// Appends `op` and returns its result.
    pub fn op(&mut self, op: Op, operands: &[Value]) -> Result<Value, AutodiffError> {
        if let Some(loc) = &self.loc {
            self.b.named(loc.clone());
        }
        self.b.op(op, operands).map_err(AutodiffError::Build)
    }

    /// The type of `v`.
    pub fn ty(&self, v: Value) -> &TensorType {
        self.b.ty(v)
    }

    /// The shape of `v` as an attribute.
    fn shape(&self, v: Value) -> Vec<i64> {
        self.ty(v).shape.iter().map(|&d| d as i64).collect()
    }

    /// `g` summed back to the shape of `operand` where it was broadcast.
    fn unbroadcast(&mut self, g: Value, operand: Value) -> Result<Value, AutodiffError> {
        if self.ty(g).shape == self.ty(operand).shape {
            return Ok(g);
        }
        let shape = self.shape(operand);
        self.op(Op::ReduceToShape { shape }, &[g])
    }

    /// `x` as a real-valued f32 tensor (`q.dequantize` of an int8 value).
    fn real(&mut self, x: Value) -> Result<Value, AutodiffError> {
        if self.ty(x).elem == ElemType::F32 && self.ty(x).quant.is_none() {
            Ok(x)
        } else {
            self.op(Op::Dequantize {}, &[x])
        }
    }

    /// `dy` masked by the saved mask (an internal error if none was saved).
    fn masked(&mut self, op: &Op, dy: Value, mask: Option<Value>) -> Result<Value, AutodiffError> {
        let mask = mask.ok_or_else(|| {
            AutodiffError::Internal(format!("no mask was saved for `{}`", op.name()))
        })?;
        self.op(Op::ApplyMask {}, &[dy, mask])
    }
}

/// What a rule sees of the forward op it differentiates (all values in the training function).
pub(super) struct Forward<'a> {
    /// The op.
    pub op: &'a Op,
    /// Its operands.
    pub operands: &'a [Value],
    /// Its result.
    pub result: Value,
    /// Which operands need a gradient (they lie on a path from a trainable parameter to the loss).
    pub needs: &'a [bool],
    /// The mask saved in the forward pass ([`saved_mask`]), if the op saves one.
    pub mask: Option<Value>,
    /// Sparse tensor update of a convolution's weight: the trained channel slice and the input
    /// channels saved for it in the forward pass (`None` when the input is not sliced).
    pub weight_slice: Option<(ChannelSlice, Option<Value>)>,
    /// Where the op is, for errors: `op #3 nn.conv2d "conv"`.
    pub location: String,
}

impl Forward<'_> {
    fn need(&self, i: usize) -> bool {
        self.needs.get(i).copied().unwrap_or(false)
    }

    fn not_differentiable(&self, reason: &str) -> AutodiffError {
        AutodiffError::NotDifferentiable {
            location: self.location.clone(),
            reason: reason.to_string(),
        }
    }
}

/// Emits the backward ops of `fwd` given the gradient `dy` of its result; returns one gradient
/// per operand (`Some` exactly where [`Forward::needs`] is set).
pub(super) fn vjp(
    e: &mut Emitter<'_, '_>,
    fwd: &Forward<'_>,
    dy: Value,
) -> Result<Vec<Option<Value>>, AutodiffError> {
    let ops = fwd.operands;
    let mut g: Vec<Option<Value>> = vec![None; ops.len()];
    match fwd.op {
        Op::Conv2d {
            strides,
            pads,
            dilations,
            groups,
        } => conv(e, fwd, dy, (strides, pads, dilations, *groups), &mut g)?,
        Op::QConv2d {
            strides,
            pads,
            dilations,
            groups,
            ..
        } => {
            let dz = e.masked(fwd.op, dy, fwd.mask)?;
            conv(e, fwd, dz, (strides, pads, dilations, *groups), &mut g)?;
        }
        Op::Linear {} => linear(e, fwd, dy, &mut g)?,
        Op::QLinear { .. } => {
            let dz = e.masked(fwd.op, dy, fwd.mask)?;
            linear(e, fwd, dz, &mut g)?;
        }
        Op::MatMul {} => {
            if fwd.need(0) {
                g[0] = Some(e.op(Op::MatMulLhsGrad {}, &[dy, ops[1]])?);
            }
            if fwd.need(1) {
                g[1] = Some(e.op(Op::MatMulRhsGrad {}, &[ops[0], dy])?);
            }
        }
        Op::Add {} => {
            for i in 0..2 {
                if fwd.need(i) {
                    g[i] = Some(e.unbroadcast(dy, ops[i])?);
                }
            }
        }
        Op::Mul {} => {
            for i in 0..2 {
                if fwd.need(i) {
                    let other = ops[1 - i];
                    let t = e.op(Op::Mul {}, &[dy, other])?;
                    g[i] = Some(e.unbroadcast(t, ops[i])?);
                }
            }
        }
        Op::Relu {} | Op::Clip { .. } => {
            if fwd.need(0) {
                g[0] = Some(e.masked(fwd.op, dy, fwd.mask)?);
            }
        }
        Op::AvgPool {
            kernel,
            strides,
            pads,
            count_include_pad,
        } => {
            if fwd.need(0) {
                let input_shape = e.shape(ops[0]);
                let op = Op::AvgPoolGrad {
                    kernel: kernel.clone(),
                    strides: strides.clone(),
                    pads: pads.clone(),
                    count_include_pad: *count_include_pad,
                    input_shape,
                };
                g[0] = Some(e.op(op, &[dy])?);
            }
        }
        Op::QAvgPool {
            kernel,
            strides,
            pads,
            ..
        } => {
            if fwd.need(0) {
                let dz = e.masked(fwd.op, dy, fwd.mask)?;
                let input_shape = e.shape(ops[0]);
                let op = Op::AvgPoolGrad {
                    kernel: kernel.clone(),
                    strides: strides.clone(),
                    pads: pads.clone(),
                    count_include_pad: false,
                    input_shape,
                };
                g[0] = Some(e.op(op, &[dz])?);
            }
        }
        Op::GlobalAvgPool {} | Op::QGlobalAvgPool {} => {
            if fwd.need(0) {
                let input_shape = e.shape(ops[0]);
                g[0] = Some(e.op(Op::GlobalAvgPoolGrad { input_shape }, &[dy])?);
            }
        }
        Op::MaxPool {
            kernel,
            strides,
            pads,
            dilations,
        } => {
            if fwd.need(0) {
                let x = e.real(ops[0])?;
                let op = Op::MaxPoolGrad {
                    kernel: kernel.clone(),
                    strides: strides.clone(),
                    pads: pads.clone(),
                    dilations: dilations.clone(),
                };
                g[0] = Some(e.op(op, &[x, dy])?);
            }
        }
        Op::Concat { axis } => {
            let ax =
                norm_axis(*axis, e.ty(dy).rank()).map_err(|err| fwd.not_differentiable(&err.0))?;
            let mut start = 0i64;
            for (i, &x) in ops.iter().enumerate() {
                let size = e.ty(x).shape[ax] as i64;
                if fwd.need(i) {
                    let op = Op::Slice {
                        axis: ax as i64,
                        start,
                        size,
                    };
                    g[i] = Some(e.op(op, &[dy])?);
                }
                start += size;
            }
        }
        Op::Reshape { .. } | Op::Flatten { .. } => {
            if fwd.need(0) {
                g[0] = Some(if e.ty(dy).shape == e.ty(ops[0]).shape {
                    dy
                } else {
                    let shape = e.shape(ops[0]);
                    e.op(Op::Reshape { shape }, &[dy])?
                });
            }
        }
        Op::Transpose { perm } => {
            if fwd.need(0) {
                let mut inverse = vec![0i64; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    let p = usize::try_from(p)
                        .map_err(|_| fwd.not_differentiable("invalid permutation"))?;
                    inverse[p] = i as i64;
                }
                g[0] = Some(e.op(Op::Transpose { perm: inverse }, &[dy])?);
            }
        }
        Op::Pad { pads, .. } => {
            if fwd.need(0) {
                g[0] = Some(e.op(Op::PadGrad { pads: pads.clone() }, &[dy])?);
            }
        }
        Op::Softmax { axis } => {
            if fwd.need(0) {
                g[0] = Some(e.op(Op::SoftmaxGrad { axis: *axis }, &[fwd.result, dy])?);
            }
        }
        Op::LogSoftmax { axis } => {
            if fwd.need(0) {
                g[0] = Some(e.op(Op::LogSoftmaxGrad { axis: *axis }, &[fwd.result, dy])?);
            }
        }
        Op::SoftmaxCrossEntropy {} => {
            if fwd.need(1) {
                return Err(fwd.not_differentiable("the labels have no gradient"));
            }
            if fwd.need(0) {
                let op = Op::SoftmaxCrossEntropyGrad {};
                g[0] = Some(e.op(op, &[ops[0], ops[1], dy])?);
            }
        }
        Op::MseLoss {} => {
            if fwd.need(1) {
                return Err(fwd.not_differentiable(
                    "the gradient w.r.t. the target of a mean squared error is not supported",
                ));
            }
            if fwd.need(0) {
                g[0] = Some(e.op(Op::MseLossGrad {}, &[ops[0], ops[1], dy])?);
            }
        }
        Op::Quantize {} | Op::Requantize {} => {
            if fwd.need(0) {
                g[0] = Some(e.masked(fwd.op, dy, fwd.mask)?);
            }
        }
        Op::Dequantize {} => {
            if fwd.need(0) {
                g[0] = Some(dy);
            }
        }
        Op::QAdd { .. } => {
            if fwd.need(0) || fwd.need(1) {
                let dz = e.masked(fwd.op, dy, fwd.mask)?;
                for (i, gi) in g.iter_mut().enumerate() {
                    if fwd.need(i) {
                        *gi = Some(dz);
                    }
                }
            }
        }
        Op::Param { .. } | Op::Const { .. } => {
            return Err(fwd.not_differentiable(
                "a global read is a leaf of the gradient graph (internal error: it has no rule)",
            ))
        }
        Op::ConvInputGrad { .. }
        | Op::ConvInputGradMasked { .. }
        | Op::ConvWeightGrad { .. }
        | Op::ConvBiasGrad {}
        | Op::LinearInputGrad {}
        | Op::LinearWeightGrad {}
        | Op::LinearBiasGrad {}
        | Op::MatMulLhsGrad {}
        | Op::MatMulRhsGrad {}
        | Op::AvgPoolGrad { .. }
        | Op::GlobalAvgPoolGrad { .. }
        | Op::MaxPoolGrad { .. }
        | Op::Mask { .. }
        | Op::ApplyMask {}
        | Op::ReduceToShape { .. }
        | Op::SoftmaxGrad { .. }
        | Op::LogSoftmaxGrad { .. }
        | Op::SoftmaxCrossEntropyGrad {}
        | Op::MseLossGrad {}
        | Op::PadGrad { .. }
        | Op::Slice { .. } => {
            return Err(fwd.not_differentiable(
                "backward kernels (`grad.` ops) have no gradient (no higher-order derivatives)",
            ))
        }
        Op::Sgd { .. } => {
            return Err(fwd.not_differentiable("parameter updates have no gradient"));
        }
        Op::QBottleneck { .. } | Op::QBottleneckChain { .. } => {
            return Err(fwd.not_differentiable(
                "`q.bottleneck` is a fused frozen block (forward only); differentiate before \
                 `stream-bottlenecks` fuses it",
            ));
        }
        Op::Custom(_) => {
            return Err(fwd.not_differentiable("custom ops have no gradient rule"));
        }
    }
    Ok(g)
}

/// Forward attributes of a convolution: strides, pads, dilations, groups.
/// The trained channels `[start, start + len)` along `axis` of a weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ChannelSlice {
    /// The weight's axis (0: output channels, 1: input channels).
    pub axis: usize,
    /// First channel.
    pub start: usize,
    /// Number of channels.
    pub len: usize,
}

impl ChannelSlice {
    /// `grad.slice` of these channels along `axis` of an activation (NCHW: 1).
    pub fn op(self, axis: i64) -> Op {
        Op::Slice {
            axis,
            start: self.start as i64,
            size: self.len as i64,
        }
    }
}

type ConvAttrs<'a> = (&'a Vec<i64>, &'a Vec<i64>, &'a Vec<i64>, i64);

/// Gradients of a (float or int8) convolution from the gradient `dz` of its real-valued,
/// unclamped output. The weight is used as is (int8 weights in real units); the input is
/// dequantized for the weight gradient.
fn conv(
    e: &mut Emitter<'_, '_>,
    fwd: &Forward<'_>,
    dz: Value,
    (strides, pads, dilations, groups): ConvAttrs<'_>,
    g: &mut [Option<Value>],
) -> Result<(), AutodiffError> {
    let (x, w) = (fwd.operands[0], fwd.operands[1]);
    if fwd.need(0) {
        let op = Op::ConvInputGrad {
            strides: strides.clone(),
            pads: pads.clone(),
            dilations: dilations.clone(),
            groups,
            input_shape: e.shape(x),
        };
        g[0] = Some(e.op(op, &[dz, w])?);
    }
    if fwd.need(1) {
        let kernel = e.shape(w)[2..].to_vec();
        let (x, dz, groups) = match fwd.weight_slice {
            None => (x, dz, groups),
            Some((slice, saved)) => {
                let x = saved.unwrap_or(x);
                let depthwise = groups > 1;
                let dz = if slice.axis == 0 {
                    e.op(slice.op(1), &[dz])?
                } else {
                    dz
                };
                (x, dz, if depthwise { slice.len as i64 } else { groups })
            }
        };
        let x = e.real(x)?;
        let op = Op::ConvWeightGrad {
            strides: strides.clone(),
            pads: pads.clone(),
            dilations: dilations.clone(),
            groups,
            kernel,
        };
        g[1] = Some(e.op(op, &[x, dz])?);
    }
    if fwd.need(2) {
        g[2] = Some(e.op(Op::ConvBiasGrad {}, &[dz])?);
    }
    Ok(())
}

/// Gradients of a (float or int8) fully connected layer from the gradient `dz` of its
/// real-valued, unclamped output.
fn linear(
    e: &mut Emitter<'_, '_>,
    fwd: &Forward<'_>,
    dz: Value,
    g: &mut [Option<Value>],
) -> Result<(), AutodiffError> {
    let (x, w) = (fwd.operands[0], fwd.operands[1]);
    if fwd.need(0) {
        g[0] = Some(e.op(Op::LinearInputGrad {}, &[dz, w])?);
    }
    if fwd.need(1) {
        let x = e.real(x)?;
        g[1] = Some(e.op(Op::LinearWeightGrad {}, &[x, dz])?);
    }
    if fwd.need(2) {
        g[2] = Some(e.op(Op::LinearBiasGrad {}, &[dz])?);
    }
    Ok(())
}
