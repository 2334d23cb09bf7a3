//! Type and shape inference for every op.
//!
//! [`infer_result_types`] computes the result types of an op from its operand types and
//! attributes, or says precisely why the operands do not fit. For ops whose result quantization is
//! a free choice ([`Op::result_quant_is_chosen`]) the inferred type has no quantization; the
//! declared result type supplies it and the verifier checks that it is present and per tensor.

use crate::module::Global;
use crate::ops::Op;
use crate::types::{ElemType, Quant, Shape, TensorType};
use indexmap::IndexMap;
use smallvec::smallvec;
use std::fmt;

/// Why an op's operands or attributes do not type-check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeError(pub String);

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TypeError {}

macro_rules! bail {
    ($($arg:tt)*) => { return Err(TypeError(format!($($arg)*))) };
}

/// Checks that a type is well formed on its own: quantization only on `i8`/`i32`, positive finite
/// scales, zero points in range, per-channel axis in range with one scale per channel.
///
/// The element count must also be at most [`crate::limits::max_tensor_elements`], so that a
/// declared shape never asks for more memory than mite allows (and never overflows).
pub fn check_type(t: &TensorType) -> Result<(), TypeError> {
    if let Err(e) = crate::limits::check_elements(&t.shape) {
        bail!("{t}: {e}");
    }
    let Some(q) = &t.quant else { return Ok(()) };
    if !t.elem.is_quantizable() {
        bail!("{t}: quantization parameters are only allowed on i8 and i32 tensors");
    }
    let (lo, hi) = t.elem.int_range().unwrap_or((0, 0));
    let check_scale = |s: f32| -> Result<(), TypeError> {
        if !(s.is_finite() && s > 0.0) {
            bail!("{t}: scale {s:?} must be positive and finite");
        }
        Ok(())
    };
    let check_zp = |z: i32| -> Result<(), TypeError> {
        if !(lo..=hi).contains(&i64::from(z)) {
            bail!("{t}: zero point {z} is outside the {} range", t.elem);
        }
        Ok(())
    };
    match q {
        Quant::PerTensor { scale, zero_point } => {
            check_scale(*scale)?;
            check_zp(*zero_point)?;
        }
        Quant::PerChannel {
            axis,
            scales,
            zero_points,
        } => {
            let Some(&dim) = t.shape.get(*axis) else {
                bail!(
                    "{t}: quantization axis {axis} is out of range for rank {}",
                    t.rank()
                );
            };
            if scales.len() != dim || zero_points.len() != dim {
                bail!(
                    "{t}: {} scales and {} zero points given for axis {axis} of size {dim}",
                    scales.len(),
                    zero_points.len()
                );
            }
            scales.iter().try_for_each(|&s| check_scale(s))?;
            zero_points.iter().try_for_each(|&z| check_zp(z))?;
        }
    }
    Ok(())
}

/// The result types of `op` applied to operands of types `operands`; `globals` resolves `param`
/// and `const`. Returns `Ok(None)` for custom ops, whose result types are taken as declared.
pub fn infer_result_types(
    op: &Op,
    operands: &[&TensorType],
    globals: &IndexMap<String, Global>,
) -> Result<Option<Vec<TensorType>>, TypeError> {
    if let Some(arity) = op.arity() {
        if !arity.accepts(operands.len()) {
            bail!("expected {arity} operands, found {}", operands.len());
        }
    }
    let ty = match op {
        Op::Param { global } | Op::Const { global } => {
            let Some(g) = globals.get(&global.0) else {
                bail!("unknown global {global}");
            };
            use crate::module::GlobalKind;
            match (op, g.kind) {
                (Op::Param { .. }, GlobalKind::Param { .. })
                | (Op::Const { .. }, GlobalKind::Const) => {}
                (_, GlobalKind::Param { .. }) => {
                    bail!("{global} is a parameter; read it with `param`")
                }
                (_, GlobalKind::Const) => bail!("{global} is a constant; read it with `const`"),
                (_, GlobalKind::State) => {
                    bail!("{global} is optimizer state, which only `optim.` ops use")
                }
            }
            g.ty.clone()
        }
        Op::Conv2d {
            strides,
            pads,
            dilations,
            groups,
        } => {
            for (i, t) in operands.iter().enumerate() {
                expect_elem(t, ElemType::F32, i)?;
                expect_no_quant(t, i)?;
            }
            conv_type(operands, strides, pads, dilations, *groups, ElemType::F32)?
        }
        Op::QConv2d {
            strides,
            pads,
            dilations,
            groups,
            act_min,
            act_max,
        } => {
            check_act(*act_min, *act_max)?;
            let (x, w) = (operands[0], operands[1]);
            expect_elem(x, ElemType::I8, 0)?;
            expect_per_tensor(x, 0)?;
            expect_elem(w, ElemType::I8, 1)?;
            expect_weight_quant(w, 1)?;
            if let Some(b) = operands.get(2) {
                expect_elem(b, ElemType::I32, 2)?;
            }
            conv_type(operands, strides, pads, dilations, *groups, ElemType::I8)?
        }
        Op::QBottleneck { .. } => bottleneck_type(op, operands)?,
        Op::QBottleneckChain { .. } => bottleneck_chain_type(op, operands)?,
        Op::Linear {} | Op::QLinear { .. } => {
            let (x, w) = (operands[0], operands[1]);
            if let Op::QLinear { act_min, act_max } = op {
                check_act(*act_min, *act_max)?;
                expect_elem(x, ElemType::I8, 0)?;
                expect_per_tensor(x, 0)?;
                expect_elem(w, ElemType::I8, 1)?;
                expect_weight_quant(w, 1)?;
                if let Some(b) = operands.get(2) {
                    expect_elem(b, ElemType::I32, 2)?;
                }
            } else {
                for (i, t) in operands.iter().enumerate() {
                    expect_elem(t, ElemType::F32, i)?;
                    expect_no_quant(t, i)?;
                }
            }
            expect_rank(x, 2, 0)?;
            expect_rank(w, 2, 1)?;
            if x.shape[1] != w.shape[1] {
                bail!(
                    "operand 0 {x} has {} features but the weight {w} expects {}",
                    x.shape[1],
                    w.shape[1]
                );
            }
            if let Some(b) = operands.get(2) {
                expect_shape(b, &[w.shape[0]], 2)?;
            }
            TensorType::new(&[x.shape[0], w.shape[0]], x.elem)
        }
        Op::MatMul {} => {
            let (a, b) = (operands[0], operands[1]);
            for (i, t) in operands.iter().enumerate() {
                expect_elem(t, ElemType::F32, i)?;
                expect_no_quant(t, i)?;
            }
            if a.rank() < 2 || a.rank() != b.rank() {
                bail!("expected operands of equal rank ≥ 2, found {a} and {b}");
            }
            let r = a.rank();
            if a.shape[..r - 2] != b.shape[..r - 2] || a.shape[r - 1] != b.shape[r - 2] {
                bail!("cannot multiply {a} by {b}");
            }
            let mut shape: Shape = a.shape[..r - 1].into();
            shape.push(b.shape[r - 1]);
            TensorType {
                shape,
                elem: ElemType::F32,
                quant: None,
            }
        }
        Op::Add {} | Op::Mul {} => {
            for (i, t) in operands.iter().enumerate() {
                expect_elem(t, ElemType::F32, i)?;
                expect_no_quant(t, i)?;
            }
            let shape = broadcast(&operands[0].shape, &operands[1].shape).ok_or_else(|| {
                TypeError(format!(
                    "cannot broadcast {} with {}",
                    operands[0], operands[1]
                ))
            })?;
            TensorType {
                shape,
                elem: ElemType::F32,
                quant: None,
            }
        }
        Op::QAdd { act_min, act_max } => {
            check_act(*act_min, *act_max)?;
            for (i, t) in operands.iter().enumerate() {
                expect_elem(t, ElemType::I8, i)?;
                expect_per_tensor(t, i)?;
            }
            if operands[0].shape != operands[1].shape {
                bail!(
                    "expected operands of equal shape, found {} and {}",
                    operands[0],
                    operands[1]
                );
            }
            TensorType::new(&operands[0].shape, ElemType::I8)
        }
        Op::Relu {} | Op::Clip { .. } | Op::Softmax { .. } | Op::LogSoftmax { .. } => {
            let x = operands[0];
            expect_elem(x, ElemType::F32, 0)?;
            match op {
                Op::Clip { min, max } if min.is_nan() || max.is_nan() || min > max => {
                    bail!("clip bounds must satisfy min ≤ max, found min = {min}, max = {max}")
                }
                Op::Softmax { axis } | Op::LogSoftmax { axis } => {
                    norm_axis(*axis, x.rank())?;
                }
                _ => {}
            }
            x.clone()
        }
        Op::AvgPool {
            kernel,
            strides,
            pads,
            ..
        } => {
            let x = operands[0];
            expect_elem(x, ElemType::F32, 0)?;
            pool_type(x, kernel, strides, pads, &[1, 1])?
        }
        Op::QAvgPool {
            kernel,
            strides,
            pads,
            act_min,
            act_max,
        } => {
            check_act(*act_min, *act_max)?;
            let x = operands[0];
            expect_elem(x, ElemType::I8, 0)?;
            expect_per_tensor(x, 0)?;
            pool_type(x, kernel, strides, pads, &[1, 1])?.with_quant(None)
        }
        Op::MaxPool {
            kernel,
            strides,
            pads,
            dilations,
        } => {
            let x = operands[0];
            if !matches!(x.elem, ElemType::F32 | ElemType::I8) {
                bail!("operand 0: expected an f32 or i8 tensor, found {x}");
            }
            expect_per_tensor_or_none(x, 0)?;
            pool_type(x, kernel, strides, pads, dilations)?
        }
        Op::GlobalAvgPool {} | Op::QGlobalAvgPool {} => {
            let x = operands[0];
            let quantized = matches!(op, Op::QGlobalAvgPool {});
            expect_elem(
                x,
                if quantized {
                    ElemType::I8
                } else {
                    ElemType::F32
                },
                0,
            )?;
            if quantized {
                expect_per_tensor(x, 0)?;
            }
            expect_rank(x, 4, 0)?;
            TensorType::new(&[x.shape[0], x.shape[1], 1, 1], x.elem)
        }
        Op::Concat { axis } => {
            let first = operands[0];
            let ax = norm_axis(*axis, first.rank())?;
            let mut shape = first.shape.clone();
            for (i, t) in operands.iter().enumerate().skip(1) {
                let same_rest = t.rank() == first.rank()
                    && (0..t.rank()).all(|d| d == ax || t.shape[d] == first.shape[d]);
                if t.elem != first.elem || t.quant != first.quant || !same_rest {
                    bail!(
                        "operand {i}: expected {} with any size along axis {ax}, found {t}",
                        first
                    );
                }
                shape[ax] = shape[ax].checked_add(t.shape[ax]).ok_or_else(|| {
                    TypeError(format!(
                        "the concatenated axis {ax} overflows at operand {i}"
                    ))
                })?;
            }
            TensorType {
                shape,
                elem: first.elem,
                quant: first.quant.clone(),
            }
        }
        Op::Reshape { shape } => {
            let x = operands[0];
            expect_per_tensor_or_none(x, 0)?;
            x.with_shape(&reshape_target(x, shape)?)
        }
        Op::Flatten { axis } => {
            let x = operands[0];
            expect_per_tensor_or_none(x, 0)?;
            let ax = norm_axis_inclusive(*axis, x.rank())?;
            let outer = checked_count(&x.shape[..ax])?;
            let inner = checked_count(&x.shape[ax..])?;
            x.with_shape(&[outer, inner])
        }
        Op::Transpose { perm } => {
            let x = operands[0];
            let perm = permutation(perm, x.rank())?;
            let shape: Shape = perm.iter().map(|&p| x.shape[p]).collect();
            let quant = match &x.quant {
                Some(Quant::PerChannel {
                    axis,
                    scales,
                    zero_points,
                }) => Some(Quant::PerChannel {
                    axis: perm.iter().position(|&p| p == *axis).unwrap_or(*axis),
                    scales: scales.clone(),
                    zero_points: zero_points.clone(),
                }),
                q => q.clone(),
            };
            TensorType {
                shape,
                elem: x.elem,
                quant,
            }
        }
        Op::Pad { pads, .. } => {
            let x = operands[0];
            expect_elem(x, ElemType::F32, 0)?;
            if pads.len() != 2 * x.rank() || pads.iter().any(|&p| p < 0) {
                bail!(
                    "pads: expected {} non-negative values for {x}, found {pads:?}",
                    2 * x.rank()
                );
            }
            let r = x.rank();
            let shape: Shape = (0..r)
                .map(|d| {
                    non_negative(pads[d])
                        .checked_add(non_negative(pads[d + r]))
                        .and_then(|p| p.checked_add(x.shape[d]))
                        .ok_or_else(|| TypeError(format!("pads {pads:?} overflow axis {d} of {x}")))
                })
                .collect::<Result<_, _>>()?;
            TensorType {
                shape,
                elem: ElemType::F32,
                quant: None,
            }
        }
        Op::SoftmaxCrossEntropy {} => {
            let (logits, labels) = (operands[0], operands[1]);
            expect_elem(logits, ElemType::F32, 0)?;
            expect_rank(logits, 2, 0)?;
            expect_elem(labels, ElemType::I32, 1)?;
            expect_no_quant(labels, 1)?;
            expect_shape(labels, &[logits.shape[0]], 1)?;
            TensorType::f32(&[])
        }
        Op::MseLoss {} => {
            let (a, b) = (operands[0], operands[1]);
            expect_elem(a, ElemType::F32, 0)?;
            expect_elem(b, ElemType::F32, 1)?;
            expect_shape(b, &a.shape, 1)?;
            TensorType::f32(&[])
        }
        Op::Quantize {} => {
            let x = operands[0];
            expect_elem(x, ElemType::F32, 0)?;
            TensorType::new(&x.shape, ElemType::I8)
        }
        Op::Dequantize {} => {
            let x = operands[0];
            if !x.elem.is_quantizable() || x.quant.is_none() {
                bail!("operand 0: expected a quantized i8 or i32 tensor, found {x}");
            }
            TensorType::f32(&x.shape)
        }
        Op::Requantize {} => {
            let x = operands[0];
            expect_elem(x, ElemType::I8, 0)?;
            expect_per_tensor(x, 0)?;
            TensorType::new(&x.shape, ElemType::I8)
        }
        Op::ConvInputGrad {
            strides,
            pads,
            dilations,
            groups,
            input_shape,
        } => {
            let (dy, w) = (operands[0], operands[1]);
            expect_real(dy, 0)?;
            expect_real_or_quantized_weight(w, 1)?;
            let x = TensorType::f32(&shape_attr4(input_shape, "input_shape")?);
            let fwd = conv_type(
                &[&x, &w.with_quant(None)],
                strides,
                pads,
                dilations,
                *groups,
                ElemType::F32,
            )?;
            expect_shape(dy, &fwd.shape, 0)?;
            x
        }
        Op::ConvWeightGrad {
            strides,
            pads,
            dilations,
            groups,
            kernel,
        } => {
            let (x, dy) = (operands[0], operands[1]);
            expect_real(x, 0)?;
            expect_real(dy, 1)?;
            expect_rank(x, 4, 0)?;
            let [kh, kw] = pair(kernel, "kernel", 1)?;
            if *groups <= 0 || x.shape[1] % *groups as usize != 0 {
                bail!(
                    "groups = {groups} must be positive and divide the {} input channels",
                    x.shape[1]
                );
            }
            let co = dy.shape.get(1).copied().unwrap_or(0);
            let w = TensorType::f32(&[co, x.shape[1] / *groups as usize, kh, kw]);
            let fwd = conv_type(&[x, &w], strides, pads, dilations, *groups, ElemType::F32)?;
            expect_shape(dy, &fwd.shape, 1)?;
            w
        }
        Op::ConvInputGradMasked {
            strides,
            pads,
            dilations,
            groups,
            input_shape,
        } => {
            let unmasked = Op::ConvInputGrad {
                strides: strides.clone(),
                pads: pads.clone(),
                dilations: dilations.clone(),
                groups: *groups,
                input_shape: input_shape.clone(),
            };
            let dx = infer_result_types(&unmasked, &operands[..2], globals)?
                .and_then(|mut v| v.pop())
                .ok_or_else(|| TypeError("the unmasked input gradient has no type".into()))?;
            expect_elem(operands[2], ElemType::I1, 2)?;
            expect_shape(operands[2], &dx.shape, 2)?;
            dx
        }
        Op::ConvBiasGrad {} => {
            let dy = operands[0];
            expect_real(dy, 0)?;
            expect_rank(dy, 4, 0)?;
            TensorType::f32(&[dy.shape[1]])
        }
        Op::LinearInputGrad {} => {
            let (dy, w) = (operands[0], operands[1]);
            expect_real(dy, 0)?;
            expect_real_or_quantized_weight(w, 1)?;
            expect_rank(dy, 2, 0)?;
            expect_rank(w, 2, 1)?;
            if dy.shape[1] != w.shape[0] {
                bail!("operand 0 {dy} does not match the weight {w}");
            }
            TensorType::f32(&[dy.shape[0], w.shape[1]])
        }
        Op::LinearWeightGrad {} => {
            let (x, dy) = (operands[0], operands[1]);
            expect_real(x, 0)?;
            expect_real(dy, 1)?;
            expect_rank(x, 2, 0)?;
            expect_rank(dy, 2, 1)?;
            if x.shape[0] != dy.shape[0] {
                bail!("batch sizes differ: {x} and {dy}");
            }
            TensorType::f32(&[dy.shape[1], x.shape[1]])
        }
        Op::LinearBiasGrad {} => {
            let dy = operands[0];
            expect_real(dy, 0)?;
            expect_rank(dy, 2, 0)?;
            TensorType::f32(&[dy.shape[1]])
        }
        Op::MatMulLhsGrad {} | Op::MatMulRhsGrad {} => {
            let (p, q) = (operands[0], operands[1]);
            expect_real(p, 0)?;
            expect_real(q, 1)?;
            if p.rank() < 2
                || p.rank() != q.rank()
                || p.shape[..p.rank() - 2] != q.shape[..q.rank() - 2]
            {
                bail!("expected operands of equal rank ≥ 2 and equal batch dimensions, found {p} and {q}");
            }
            let r = p.rank();
            let mut shape: Shape = p.shape[..r - 2].into();
            if matches!(op, Op::MatMulLhsGrad {}) {
                // (dy [..,M,N], b [..,K,N]) -> [..,M,K]
                if p.shape[r - 1] != q.shape[r - 1] {
                    bail!("cannot multiply {p} by the transpose of {q}");
                }
                shape.extend([p.shape[r - 2], q.shape[r - 2]]);
            } else {
                // (a [..,M,K], dy [..,M,N]) -> [..,K,N]
                if p.shape[r - 2] != q.shape[r - 2] {
                    bail!("cannot multiply the transpose of {p} by {q}");
                }
                shape.extend([p.shape[r - 1], q.shape[r - 1]]);
            }
            TensorType {
                shape,
                elem: ElemType::F32,
                quant: None,
            }
        }
        Op::AvgPoolGrad {
            kernel,
            strides,
            pads,
            input_shape,
            ..
        } => {
            let dy = operands[0];
            expect_real(dy, 0)?;
            let x = TensorType::f32(&shape_attr4(input_shape, "input_shape")?);
            let fwd = pool_type(&x, kernel, strides, pads, &[1, 1])?;
            expect_shape(dy, &fwd.shape, 0)?;
            x
        }
        Op::GlobalAvgPoolGrad { input_shape } => {
            let dy = operands[0];
            expect_real(dy, 0)?;
            let x = TensorType::f32(&shape_attr4(input_shape, "input_shape")?);
            expect_shape(dy, &[x.shape[0], x.shape[1], 1, 1], 0)?;
            x
        }
        Op::MaxPoolGrad {
            kernel,
            strides,
            pads,
            dilations,
        } => {
            let (x, dy) = (operands[0], operands[1]);
            expect_real(x, 0)?;
            expect_real(dy, 1)?;
            let fwd = pool_type(x, kernel, strides, pads, dilations)?;
            expect_shape(dy, &fwd.shape, 1)?;
            TensorType::f32(&x.shape)
        }
        Op::Mask { min, max } => {
            let x = operands[0];
            if !matches!(x.elem, ElemType::F32 | ElemType::I8) {
                bail!("operand 0: expected an f32 or i8 tensor, found {x}");
            }
            if min.is_nan() || max.is_nan() || min > max {
                bail!("mask bounds must satisfy min ≤ max, found min = {min}, max = {max}");
            }
            TensorType::new(&x.shape, ElemType::I1)
        }
        Op::ApplyMask {} => {
            let (dy, mask) = (operands[0], operands[1]);
            expect_real(dy, 0)?;
            expect_elem(mask, ElemType::I1, 1)?;
            expect_shape(mask, &dy.shape, 1)?;
            dy.clone()
        }
        Op::ReduceToShape { shape } => {
            let dy = operands[0];
            expect_real(dy, 0)?;
            let target = shape_attr(shape, "shape")?;
            if broadcast(&target, &[]).is_none()
                || broadcast(&target, &dy.shape).as_deref() != Some(&dy.shape[..])
            {
                bail!("shape {shape:?} does not broadcast to {dy}");
            }
            TensorType::f32(&target)
        }
        Op::SoftmaxGrad { axis } | Op::LogSoftmaxGrad { axis } => {
            let (y, dy) = (operands[0], operands[1]);
            expect_real(y, 0)?;
            expect_real(dy, 1)?;
            expect_shape(dy, &y.shape, 1)?;
            norm_axis(*axis, y.rank())?;
            y.clone()
        }
        Op::SoftmaxCrossEntropyGrad {} => {
            let (logits, labels, dloss) = (operands[0], operands[1], operands[2]);
            expect_real(logits, 0)?;
            expect_rank(logits, 2, 0)?;
            expect_elem(labels, ElemType::I32, 1)?;
            expect_shape(labels, &[logits.shape[0]], 1)?;
            expect_real(dloss, 2)?;
            expect_shape(dloss, &[], 2)?;
            logits.clone()
        }
        Op::MseLossGrad {} => {
            let (a, b, dloss) = (operands[0], operands[1], operands[2]);
            expect_real(a, 0)?;
            expect_real(b, 1)?;
            expect_shape(b, &a.shape, 1)?;
            expect_real(dloss, 2)?;
            expect_shape(dloss, &[], 2)?;
            a.clone()
        }
        Op::PadGrad { pads } => {
            let dy = operands[0];
            expect_real(dy, 0)?;
            let r = dy.rank();
            if pads.len() != 2 * r || pads.iter().any(|&p| p < 0) {
                bail!(
                    "pads: expected {} non-negative values for {dy}, found {pads:?}",
                    2 * r
                );
            }
            let mut shape: Shape = Shape::new();
            for d in 0..r {
                let cut = non_negative(pads[d]).checked_add(non_negative(pads[d + r]));
                let Some(cut) = cut.filter(|&c| c <= dy.shape[d]) else {
                    bail!("pads {pads:?} remove more than {dy} holds");
                };
                shape.push(dy.shape[d] - cut);
            }
            TensorType {
                shape,
                elem: ElemType::F32,
                quant: None,
            }
        }
        Op::Slice { axis, start, size } => {
            let dy = operands[0];
            let ax = norm_axis(*axis, dy.rank())?;
            let end = start
                .checked_add(*size)
                .and_then(|e| usize::try_from(e).ok());
            if *start < 0 || *size <= 0 || end.is_none_or(|e| e > dy.shape[ax]) {
                bail!("slice [{start}, {start} + {size}) is outside axis {ax} of {dy}");
            }
            let mut shape = dy.shape.clone();
            shape[ax] = *size as usize;
            TensorType {
                shape,
                elem: dy.elem,
                quant: dy.quant.clone(),
            }
        }
        Op::Sgd {
            param,
            momentum,
            weight_decay,
            accumulate,
            lr_scale,
            momentum_state,
            accum_state,
            slice_axis,
            slice_start,
            ..
        } => {
            let (grad, lr, step) = (operands[0], operands[1], operands[2]);
            let Some(p) = globals.get(&param.0) else {
                bail!("unknown parameter {param}");
            };
            if !matches!(p.kind, crate::module::GlobalKind::Param { .. }) {
                bail!("{param} is not a parameter");
            }
            if !matches!(p.ty.elem, ElemType::F32 | ElemType::I8 | ElemType::I32)
                || (p.ty.elem != ElemType::F32 && p.ty.quant.is_none())
            {
                bail!(
                    "{param} of type {} cannot be trained (f32, or quantized i8 / i32)",
                    p.ty
                );
            }
            expect_real(grad, 0)?;
            let axis = usize::try_from(*slice_axis)
                .ok()
                .filter(|&a| a < p.ty.rank());
            let start = usize::try_from(*slice_start).ok();
            let (Some(axis), Some(start)) = (axis, start) else {
                bail!(
                    "slice_axis {slice_axis} / slice_start {slice_start} do not fit {param} : {}",
                    p.ty
                );
            };
            let mut want = p.ty.shape.clone();
            if let Some(&n) = grad.shape.get(axis).filter(|_| grad.rank() == want.len()) {
                if start + n > want[axis] && (start, axis) == (0, 0) {
                    expect_shape(grad, &p.ty.shape, 0)?;
                }
                if start + n > want[axis] {
                    bail!(
                        "the gradient covers channels {start}:{} of axis {axis}, outside {param} : {}",
                        start + n,
                        p.ty
                    );
                }
                want[axis] = n;
            }
            expect_shape(grad, &want, 0)?;
            expect_real(lr, 1)?;
            expect_shape(lr, &[], 1)?;
            expect_elem(step, ElemType::I64, 2)?;
            expect_shape(step, &[], 2)?;
            if !(lr_scale.is_finite() && momentum.is_finite() && weight_decay.is_finite())
                || *momentum < 0.0
            {
                bail!("lr_scale, momentum and weight_decay must be finite, momentum ≥ 0");
            }
            if *accumulate < 1 {
                bail!("accumulate must be ≥ 1, found {accumulate}");
            }
            let want = TensorType::f32(&p.ty.shape);
            let states = [
                (
                    "momentum_state",
                    momentum_state,
                    *momentum > 0.0,
                    "momentum > 0",
                ),
                (
                    "accum_state",
                    accum_state,
                    *accumulate > 1,
                    "accumulate > 1",
                ),
            ];
            for (attr, state, needed, why) in states {
                match state {
                    None if needed => bail!(
                        "{why} needs `{attr} = @name`, a state : {want} (declare it with `state`)"
                    ),
                    None => {}
                    Some(name) => match globals.get(&name.0) {
                        Some(g) if g.kind == crate::module::GlobalKind::State && g.ty == want => {}
                        _ => bail!("{attr} {name} must be a declared state : {want}"),
                    },
                }
            }
            return Ok(Some(vec![]));
        }
        Op::Custom(_) => return Ok(None),
    };
    check_type(&ty).map_err(|e| TypeError(format!("result: {e}")))?;
    Ok(Some(vec![ty]))
}

/// A pad value already checked to be non-negative, as `usize` (saturating on 32-bit targets).
fn non_negative(p: i64) -> usize {
    usize::try_from(p).unwrap_or(usize::MAX)
}

/// The element count of `dims`, or an error when it overflows.
fn checked_count(dims: &[usize]) -> Result<usize, TypeError> {
    crate::limits::checked_product(dims)
        .ok_or_else(|| TypeError(format!("the element count of {dims:?} overflows")))
}

fn expect_elem(t: &TensorType, elem: ElemType, i: usize) -> Result<(), TypeError> {
    if t.elem != elem {
        bail!("operand {i}: expected an {elem} tensor, found {t}");
    }
    Ok(())
}

fn expect_real(t: &TensorType, i: usize) -> Result<(), TypeError> {
    if t.elem != ElemType::F32 || t.quant.is_some() {
        bail!("operand {i}: expected a real-valued f32 tensor, found {t}");
    }
    Ok(())
}

/// A weight used by a gradient: f32, or a quantized int8 weight read in real units.
fn expect_real_or_quantized_weight(t: &TensorType, i: usize) -> Result<(), TypeError> {
    match t.elem {
        ElemType::F32 => expect_no_quant(t, i),
        ElemType::I8 => expect_weight_quant(t, i),
        _ => bail!("operand {i}: expected an f32 or quantized i8 weight, found {t}"),
    }
}

/// A 4-D (NCHW) shape attribute.
fn shape_attr4(v: &[i64], name: &str) -> Result<Vec<usize>, TypeError> {
    if v.len() != 4 {
        bail!("{name}: expected 4 dimensions (NCHW), found {v:?}");
    }
    shape_attr(v, name)
}

fn shape_attr(v: &[i64], name: &str) -> Result<Vec<usize>, TypeError> {
    if v.iter().any(|&d| d <= 0) {
        bail!("{name}: dimensions must be positive, found {v:?}");
    }
    Ok(v.iter().map(|&d| d as usize).collect())
}

fn expect_no_quant(t: &TensorType, i: usize) -> Result<(), TypeError> {
    if t.quant.is_some() {
        bail!("operand {i}: expected a tensor without quantization, found {t}");
    }
    Ok(())
}

fn expect_per_tensor(t: &TensorType, i: usize) -> Result<(), TypeError> {
    match &t.quant {
        Some(Quant::PerTensor { .. }) => Ok(()),
        _ => bail!("operand {i}: expected per-tensor quantization, found {t}"),
    }
}

fn expect_per_tensor_or_none(t: &TensorType, i: usize) -> Result<(), TypeError> {
    match &t.quant {
        Some(Quant::PerChannel { .. }) => {
            bail!("operand {i}: per-channel quantized tensors are not supported here, found {t}")
        }
        _ => Ok(()),
    }
}

fn expect_weight_quant(w: &TensorType, i: usize) -> Result<(), TypeError> {
    match &w.quant {
        Some(Quant::PerTensor { .. }) => Ok(()),
        Some(Quant::PerChannel { axis: 0, .. }) => Ok(()),
        _ => bail!("operand {i}: expected a weight quantized per tensor or per output channel (axis 0), found {w}"),
    }
}

fn expect_rank(t: &TensorType, rank: usize, i: usize) -> Result<(), TypeError> {
    if t.rank() != rank {
        bail!("operand {i}: expected rank {rank}, found {t}");
    }
    Ok(())
}

fn expect_shape(t: &TensorType, shape: &[usize], i: usize) -> Result<(), TypeError> {
    if t.shape.as_slice() != shape {
        let want: Vec<String> = shape.iter().map(usize::to_string).collect();
        bail!(
            "operand {i}: expected shape [{}], found {t}",
            want.join(", ")
        );
    }
    Ok(())
}

fn check_act(lo: i64, hi: i64) -> Result<(), TypeError> {
    if !(-128..=127).contains(&lo) || !(-128..=127).contains(&hi) || lo > hi {
        bail!("act_min/act_max must satisfy -128 ≤ act_min ≤ act_max ≤ 127, found {lo}, {hi}");
    }
    Ok(())
}

/// Normalises a possibly negative axis for a tensor of rank `rank` (`-1` is the last axis).
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, TypeError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..r).contains(&a) {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

fn norm_axis_inclusive(axis: i64, rank: usize) -> Result<usize, TypeError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..=r).contains(&a) {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

fn pair(v: &[i64], name: &str, min: i64) -> Result<[usize; 2], TypeError> {
    match v {
        [a, b] if *a >= min && *b >= min => Ok([*a as usize, *b as usize]),
        _ => bail!("{name}: expected 2 values ≥ {min}, found {v:?}"),
    }
}

fn quad(v: &[i64], name: &str) -> Result<[usize; 4], TypeError> {
    match v {
        [a, b, c, d] if v.iter().all(|&p| p >= 0) => {
            Ok([*a as usize, *b as usize, *c as usize, *d as usize])
        }
        _ => {
            bail!("{name}: expected 4 non-negative values [top, left, bottom, right], found {v:?}")
        }
    }
}

/// Output spatial size of a window over `[h, w]`, or an error when it does not fit.
fn window_out(
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    pads: [usize; 4],
    dilations: [usize; 2],
) -> Result<[usize; 2], TypeError> {
    let mut out = [0; 2];
    for d in 0..2 {
        let padded = hw[d]
            .checked_add(pads[d])
            .and_then(|p| p.checked_add(pads[d + 2]));
        let span = dilations[d]
            .checked_mul(kernel[d].saturating_sub(1))
            .and_then(|s| s.checked_add(1));
        let (Some(padded), Some(span)) = (padded, span) else {
            bail!(
                "the window (kernel {kernel:?}, pads {pads:?}, dilations {dilations:?}) overflows on {hw:?}"
            );
        };
        if padded < span {
            bail!("window of extent {span} does not fit the padded input extent {padded}");
        }
        out[d] = (padded - span) / strides[d] + 1;
    }
    Ok(out)
}

fn conv_type(
    operands: &[&TensorType],
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    groups: i64,
    elem: ElemType,
) -> Result<TensorType, TypeError> {
    let (x, w) = (operands[0], operands[1]);
    expect_rank(x, 4, 0)?;
    expect_rank(w, 4, 1)?;
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let co = w.shape[0];
    if groups <= 0 {
        bail!("groups must be positive, found {groups}");
    }
    let g = groups as usize;
    if c % g != 0 || co % g != 0 {
        bail!("groups = {g} must divide the {c} input and {co} output channels");
    }
    if w.shape[1] != c / g {
        bail!(
            "operand 1: expected a weight with {} input channels per group ({c} / {g}), found {w}",
            c / g
        );
    }
    if let Some(b) = operands.get(2) {
        expect_shape(b, &[co], 2)?;
    }
    let kernel = [w.shape[2], w.shape[3]];
    if kernel.contains(&0) {
        bail!("operand 1: empty kernel in {w}");
    }
    let out = window_out(
        [h, wd],
        kernel,
        pair(strides, "strides", 1)?,
        quad(pads, "pads")?,
        pair(dilations, "dilations", 1)?,
    )?;
    Ok(TensorType::new(&[n, co, out[0], out[1]], elem))
}

/// The result type of `q.bottleneck`: the three `q.conv2d` types chained through intermediates
/// of the attributes' quantization (errors name the convolution that does not fit).
fn bottleneck_type(op: &Op, operands: &[&TensorType]) -> Result<TensorType, TypeError> {
    let Op::QBottleneck {
        strides,
        pads,
        dilations,
        expand_window,
        expand_scale,
        expand_zero_point,
        expand_act,
        dw_scale,
        dw_zero_point,
        dw_act,
        act_min,
        act_max,
    } = op
    else {
        bail!("not a q.bottleneck: {}", op.name());
    };
    for act in [expand_act, dw_act] {
        let [lo, hi] = act.as_slice() else {
            bail!("expand_act/dw_act: expected [min, max], found {act:?}");
        };
        check_act(*lo, *hi)?;
    }
    check_act(*act_min, *act_max)?;
    let x = operands[0];
    expect_elem(x, ElemType::I8, 0)?;
    expect_per_tensor(x, 0)?;
    for i in [1, 3, 5] {
        expect_elem(operands[i], ElemType::I8, i)?;
        expect_weight_quant(operands[i], i)?;
        expect_elem(operands[i + 1], ElemType::I32, i + 1)?;
        if i == 5 && (operands[i].rank() != 4 || operands[i].shape[2..] != [1, 1]) {
            bail!(
                "operand {i}: expected a 1x1 pointwise weight, found {}",
                operands[i]
            );
        }
    }
    let intermediate = |shape: &TensorType, scale: f32, zero_point: i64, what: &str| {
        let zero_point = i32::try_from(zero_point)
            .map_err(|_| TypeError(format!("{what}_zero_point {zero_point} is out of range")))?;
        let t = TensorType {
            quant: Some(Quant::per_tensor(scale, zero_point)),
            ..shape.clone()
        };
        check_type(&t).map_err(|e| TypeError(format!("the {what} intermediate: {e}")))?;
        Ok::<_, TypeError>(t)
    };
    let in_conv = |what: &str, e: TypeError| TypeError(format!("{what} convolution: {e}"));
    let (ones, zeros) = ([1, 1], [0, 0, 0, 0]);
    let Some((e_strides, e_pads, e_dilations)) =
        crate::ops::bottleneck_expand_window(expand_window)
    else {
        bail!(
            "expand_window: expected 8 values (strides, pads, dilations), found {expand_window:?}"
        );
    };
    let mid = conv_type(
        &operands[0..3],
        e_strides,
        e_pads,
        e_dilations,
        1,
        ElemType::I8,
    )
    .map_err(|e| in_conv("expansion", e))?;
    let mid = intermediate(&mid, *expand_scale, *expand_zero_point, "expand")?;
    let c_mid = mid.shape[1];
    if operands[3].shape.first() != Some(&c_mid) {
        bail!(
            "operand 3: expected a depthwise weight with {c_mid} channels, found {}",
            operands[3]
        );
    }
    let dw = conv_type(
        &[&mid, operands[3], operands[4]],
        strides,
        pads,
        dilations,
        c_mid as i64,
        ElemType::I8,
    )
    .map_err(|e| in_conv("depthwise", e))?;
    let dw = intermediate(&dw, *dw_scale, *dw_zero_point, "dw")?;
    conv_type(
        &[&dw, operands[5], operands[6]],
        &ones,
        &zeros,
        &ones,
        1,
        ElemType::I8,
    )
    .map_err(|e| in_conv("projection", e))
}

/// The type of the link of a `q.bottleneck_chain` `op` (its first block's output, with the
/// link's quantization) from the types of its 13 operands.
pub fn bottleneck_chain_link(op: &Op, operands: &[&TensorType]) -> Result<TensorType, TypeError> {
    let Some(([first, _], (scale, zero_point))) = op.bottleneck_chain_parts() else {
        bail!("q.bottleneck_chain: dw_windows (16 values), zero_points (5) and acts (12) expected");
    };
    if operands.len() != 13 {
        bail!("expected 13 operands, found {}", operands.len());
    }
    let link = bottleneck_type(&first, &operands[..7])
        .map_err(|e| TypeError(format!("first block: {e}")))?;
    let zero_point = i32::try_from(zero_point).map_err(|_| {
        TypeError(format!(
            "the link's zero point {zero_point} is out of range"
        ))
    })?;
    let link = TensorType {
        quant: Some(Quant::per_tensor(scale, zero_point)),
        ..link
    };
    check_type(&link).map_err(|e| TypeError(format!("the link: {e}")))?;
    Ok(link)
}

/// The result type of `q.bottleneck_chain`: its two `q.bottleneck`s chained through a link of
/// the attributes' quantization (errors name the block that does not fit).
fn bottleneck_chain_type(op: &Op, operands: &[&TensorType]) -> Result<TensorType, TypeError> {
    let link = bottleneck_chain_link(op, operands)?;
    let Some(([_, second], _)) = op.bottleneck_chain_parts() else {
        bail!("not a q.bottleneck_chain: {}", op.name());
    };
    let mut second_operands = vec![&link];
    second_operands.extend_from_slice(&operands[7..]);
    bottleneck_type(&second, &second_operands).map_err(|e| TypeError(format!("second block: {e}")))
}

fn pool_type(
    x: &TensorType,
    kernel: &[i64],
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
) -> Result<TensorType, TypeError> {
    expect_rank(x, 4, 0)?;
    let kernel = pair(kernel, "kernel", 1)?;
    let pads4 = quad(pads, "pads")?;
    if pads4[0] >= kernel[0]
        || pads4[2] >= kernel[0]
        || pads4[1] >= kernel[1]
        || pads4[3] >= kernel[1]
    {
        bail!("pads {pads:?} must be smaller than the kernel {kernel:?}");
    }
    let out = window_out(
        [x.shape[2], x.shape[3]],
        kernel,
        pair(strides, "strides", 1)?,
        pads4,
        pair(dilations, "dilations", 1)?,
    )?;
    Ok(x.with_shape(&[x.shape[0], x.shape[1], out[0], out[1]]))
}

/// Numpy broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Shape> {
    let r = a.len().max(b.len());
    let mut out: Shape = smallvec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

fn reshape_target(x: &TensorType, shape: &[i64]) -> Result<Vec<usize>, TypeError> {
    let total = checked_count(&x.shape)?;
    let mut unknown = None;
    let mut known = 1usize;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            -1 if unknown.is_none() => unknown = Some(i),
            d if d > 0 => {
                known = usize::try_from(d)
                    .ok()
                    .and_then(|d| known.checked_mul(d))
                    .ok_or_else(|| TypeError(format!("shape {shape:?}: too many elements")))?
            }
            _ => bail!("shape {shape:?}: dimensions must be positive, with at most one -1"),
        }
    }
    let mut out: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = unknown {
        if known == 0 || total % known != 0 {
            bail!("cannot reshape {x} ({total} elements) to {shape:?}");
        }
        out[i] = total / known;
    } else if known != total {
        bail!("cannot reshape {x} ({total} elements) to {shape:?} ({known} elements)");
    }
    Ok(out)
}

fn permutation(perm: &[i64], rank: usize) -> Result<Vec<usize>, TypeError> {
    let mut seen = vec![false; rank];
    if perm.len() != rank {
        bail!("perm {perm:?} must be a permutation of 0..{rank}");
    }
    let mut out = Vec::with_capacity(rank);
    for &p in perm {
        match usize::try_from(p) {
            Ok(p) if p < rank && !seen[p] => {
                seen[p] = true;
                out.push(p);
            }
            _ => bail!("perm {perm:?} must be a permutation of 0..{rank}"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(op: Op, operands: &[TensorType]) -> Result<TensorType, TypeError> {
        let refs: Vec<&TensorType> = operands.iter().collect();
        Ok(infer_result_types(&op, &refs, &IndexMap::new())?
            .unwrap()
            .remove(0))
    }

    #[test]
    fn depthwise_stride_two() {
        let op = Op::Conv2d {
            strides: vec![2, 2],
            pads: vec![1; 4],
            dilations: vec![1, 1],
            groups: 16,
        };
        let t = infer(
            op,
            &[
                TensorType::f32(&[1, 16, 64, 64]),
                TensorType::f32(&[16, 1, 3, 3]),
            ],
        )
        .unwrap();
        assert_eq!(t, TensorType::f32(&[1, 16, 32, 32]));
    }

    #[test]
    fn conv_channel_mismatch_is_explained() {
        let op = Op::Conv2d {
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            groups: 1,
        };
        let e = infer(
            op,
            &[
                TensorType::f32(&[1, 3, 8, 8]),
                TensorType::f32(&[4, 2, 3, 3]),
            ],
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "operand 1: expected a weight with 3 input channels per group (3 / 1), found tensor<4x2x3x3xf32>"
        );
    }

    #[test]
    fn sizes_near_the_integer_limit_are_errors_not_wraps() {
        let x = TensorType::f32(&[2, 2]);
        let max = i64::MAX;
        let pad = Op::Pad {
            pads: vec![max, 0, max, 0],
            value: 0.0,
        };
        assert!(infer(pad, std::slice::from_ref(&x))
            .unwrap_err()
            .0
            .contains("overflow"));
        let conv = Op::Conv2d {
            strides: vec![1, 1],
            pads: vec![0, 0, 0, 0],
            dilations: vec![max, max],
            groups: 1,
        };
        // A 5x5 kernel: (5 - 1) * i64::MAX + 1 overflows even in u64 (a 3x3 one fits exactly).
        let img = TensorType::f32(&[1, 1, 4, 4]);
        let w = TensorType::f32(&[1, 1, 5, 5]);
        let e = infer(conv, &[img, w]).unwrap_err().0;
        assert!(e.contains("overflows"), "{e}");
        let big = TensorType::f32(&[1 << 40]);
        let concat = Op::Concat { axis: 0 };
        let e = infer(concat, &[big.clone(), big]).unwrap_err().0;
        assert!(e.contains("exceed the limit"), "{e}");
        let pad = Op::Pad {
            pads: vec![1 << 20, 1 << 20, 0, 0],
            value: 0.0,
        };
        let e = infer(pad, std::slice::from_ref(&x)).unwrap_err().0;
        assert!(e.contains("exceed the limit"), "{e}");
        let e = check_type(&TensorType::f32(&[usize::MAX, 2]))
            .unwrap_err()
            .0;
        assert!(e.contains("overflows"), "{e}");
    }

    #[test]
    fn broadcasting() {
        assert_eq!(
            broadcast(&[1, 4, 1], &[3, 1, 5]).unwrap().as_slice(),
            &[3, 4, 5]
        );
        assert_eq!(broadcast(&[4, 1], &[7]).unwrap().as_slice(), &[4, 7]);
        assert!(broadcast(&[2, 3], &[3, 2]).is_none());
    }

    #[test]
    fn reshape_infers_minus_one() {
        let t = infer(
            Op::Reshape { shape: vec![1, -1] },
            &[TensorType::f32(&[1, 4, 2, 2])],
        )
        .unwrap();
        assert_eq!(t.shape.as_slice(), &[1, 16]);
        assert!(infer(
            Op::Reshape { shape: vec![3, -1] },
            &[TensorType::f32(&[1, 4, 2, 2])]
        )
        .is_err());
    }

    #[test]
    fn quant_checks() {
        let bad = TensorType::quantized(&[2], ElemType::I8, Quant::per_tensor(0.0, 0));
        assert!(check_type(&bad).is_err());
        let bad = TensorType::quantized(&[2, 3], ElemType::I8, Quant::per_channel(0, vec![1.0]));
        assert!(check_type(&bad).unwrap_err().0.contains("1 scales"));
        let f = TensorType {
            quant: Some(Quant::per_tensor(1.0, 0)),
            ..TensorType::f32(&[1])
        };
        assert!(check_type(&f).is_err());
    }
}
