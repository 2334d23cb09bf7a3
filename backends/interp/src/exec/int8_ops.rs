//! The quantized (`q.`) ops and int8 max pooling, bit-exact through the kernels of
//! [`crate::quant`].
//!
//! Quantization parameters come from the IR types: operands' types for inputs, the result type
//! for the output (its quantization is the op's free choice). Zero points of `i8` types are in
//! the `i8` range (the verifier checks it). The rounding mode of requantization is the
//! interpreter's [`Rounding`] option.
//!
//! Float inputs and outputs of `q.quantize` / `q.dequantize` cross the `f32` boundary: in `f64`
//! mode the input of `q.quantize` is rounded to `f32` first and the output of `q.dequantize` is
//! computed in `f32` and widened, so int8 results are identical in both modes.

use std::borrow::Cow;

use mite_ir::analysis::UseCounts;
use mite_ir::{ElemType, Function, Op, Quant, TensorType};

use crate::quant::onnxruntime::{self as ort, FloatBias};
use crate::quant::{self, ActRange, AddInt8, OutputStage, QuantParams, Requantizer, Rounding};

use super::error::OpFailure;
use super::float_ops::OpResult;
use super::operands::{conv_shape, per_tensor, weight_quant, window, zero_point_i8, Operands};
use super::value::{Data, ExecReal};

fn int8<T: ExecReal>(v: Vec<i8>) -> Data<'static, T> {
    Data::I8(Cow::Owned(v))
}

/// How a requantizing op computes: the interpreter's rounding mode, and whether the op's data flow
/// is exclusive (its result and each non-constant operand used by exactly one op), which decides
/// between onnxruntime's fused and float kernels with [`Rounding::OnnxRuntime`].
pub(crate) type Mode = (Rounding, bool);

/// Whether onnxruntime would run a `DQ → op → Q` group as a float op rather than a fused int8
/// kernel ([`crate::quant::onnxruntime`]).
fn onnxruntime_float((rounding, exclusive): Mode) -> bool {
    rounding == Rounding::OnnxRuntime && !exclusive
}

/// For each op of `func` (by position): whether its results and each of its operands not
/// produced by a `param` / `const` op are used exactly once (being returned counts as a use).
///
/// onnxruntime converts an int8 `QuantizeLinear → DequantizeLinear` pair to uint8 only when the
/// quantized tensor has a single consumer, and fuses a QDQ group into its int8 kernel only when
/// its activations are uint8; so an op of an imported QDQ graph runs fused exactly when this
/// holds.
pub(crate) fn exclusive_data_flow(func: &Function) -> Vec<bool> {
    let uses = UseCounts::compute(func);
    let constant = |v: mite_ir::Value| {
        func.defining_op(v)
            .is_some_and(|id| matches!(func.op(id).op, Op::Param { .. } | Op::Const { .. }))
    };
    func.layout()
        .iter()
        .map(|&id| {
            let op = func.op(id);
            op.results.iter().all(|&r| uses.get(r) == 1)
                && op.operands.iter().all(|&v| constant(v) || uses.get(v) == 1)
        })
        .collect()
}

/// The clamp range of a `q.` op from its `act_min` / `act_max` attributes.
fn act_range(act_min: i64, act_max: i64) -> Result<ActRange, OpFailure> {
    match (i8::try_from(act_min), i8::try_from(act_max)) {
        (Ok(min), Ok(max)) => Ok(ActRange { min, max }),
        _ => Err(OpFailure::Internal(format!(
            "act_min/act_max {act_min}/{act_max} outside the i8 range"
        ))),
    }
}

/// One element of ONNX `QuantizeLinear` to int32: `saturate(round_half_even(x / s) + z)`, the
/// division in `f32`; NaN maps to the zero point.
fn quantize_i32(x: f32, scale: f32, zero_point: i32) -> i32 {
    if x.is_nan() {
        return zero_point;
    }
    let q = f64::from((x / scale).round_ties_even()) + f64::from(zero_point);
    // In range after the clamp, so the cast is exact.
    q.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// One element of ONNX `DequantizeLinear` from int32: `f32(q − z) · s`.
fn dequantize_i32(q: i32, scale: f32, zero_point: i32) -> f32 {
    (i64::from(q) - i64::from(zero_point)) as f32 * scale
}

/// The channel of flat index `i` for per-axis parameters along `axis` of `shape`.
fn channel_of(i: usize, shape: &[usize], axis: usize) -> usize {
    let inner: usize = shape[axis + 1..].iter().product();
    (i / inner.max(1)) % shape[axis].max(1)
}

/// `q.quantize`: `f32` → `i8` (or `i32`) with the result type's quantization (per tensor; per
/// axis is accepted too).
pub(crate) fn quantize<T: ExecReal>(x: &Operands<'_, '_, T>, out: &TensorType) -> OpResult<T> {
    let input = T::cow_to_f32(x.real(0)?);
    let Some(q) = &out.quant else {
        return Err(OpFailure::Internal(format!(
            "result {out} has no quantization"
        )));
    };
    match (out.elem, q) {
        (ElemType::I8, Quant::PerTensor { scale, zero_point }) => Ok(int8(quant::quantize(
            &input,
            *scale,
            zero_point_i8(*zero_point)?,
        )?)),
        (
            ElemType::I8,
            Quant::PerChannel {
                axis,
                scales,
                zero_points,
            },
        ) => {
            let zps = zero_points
                .iter()
                .map(|&z| zero_point_i8(z))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(int8(quant::quantize_per_axis(
                &input, &out.shape, *axis, scales, &zps,
            )?))
        }
        (ElemType::I32, q) => {
            let axis = match q {
                Quant::PerTensor { .. } => None,
                Quant::PerChannel { axis, .. } => Some(*axis),
            };
            let y = input
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = axis.map_or(0, |a| channel_of(i, &out.shape, a));
                    quantize_i32(v, q.scale(c), q.zero_point(c))
                })
                .collect();
            Ok(Data::I32(Cow::Owned(y)))
        }
        _ => Err(OpFailure::Unsupported(format!(
            "quantizing to {out} (only i8 and i32 results)"
        ))),
    }
}

/// `q.dequantize`: `i8` or `i32`, per tensor or per axis → `f32`.
pub(crate) fn dequantize<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let ty = x.ty(0)?;
    let Some(q) = &ty.quant else {
        return Err(OpFailure::Internal(format!(
            "operand {ty} has no quantization"
        )));
    };
    let y = match (ty.elem, q) {
        (ElemType::I8, Quant::PerTensor { scale, zero_point }) => {
            quant::dequantize(x.i8(0)?, *scale, zero_point_i8(*zero_point)?)?
        }
        (
            ElemType::I8,
            Quant::PerChannel {
                axis,
                scales,
                zero_points,
            },
        ) => {
            let zps = zero_points
                .iter()
                .map(|&z| zero_point_i8(z))
                .collect::<Result<Vec<_>, _>>()?;
            quant::dequantize_per_axis(x.i8(0)?, &ty.shape, *axis, scales, &zps)?
        }
        (ElemType::I32, q) => {
            let axis = match q {
                Quant::PerTensor { .. } => None,
                Quant::PerChannel { axis, .. } => Some(*axis),
            };
            x.i32(0)?
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = axis.map_or(0, |a| channel_of(i, &ty.shape, a));
                    dequantize_i32(v, q.scale(c), q.zero_point(c))
                })
                .collect()
        }
        _ => {
            return Err(OpFailure::Unsupported(format!(
                "dequantizing {ty} (only i8 and i32 operands)"
            )))
        }
    };
    Ok(Data::Real(Cow::Owned(T::vec_from_f32(y))))
}

/// `q.requantize`: `y = clamp(requant_{s_in / s_out}(x − z_in) + z_out)` with the interpreter's
/// rounding (TFLite's int8 `Requantize`); with [`Rounding::OnnxRuntime`], the `DequantizeLinear →
/// QuantizeLinear` pair it stands for ([`ort::requantize_qdq`]).
pub(crate) fn requantize<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    rounding: Rounding,
) -> OpResult<T> {
    let input = per_tensor(x.ty(0)?, "operand 0")?;
    let output = per_tensor(out, "result")?;
    if rounding == Rounding::OnnxRuntime {
        return Ok(int8(ort::requantize_qdq(x.i8(0)?, input, output)?));
    }
    let stage = OutputStage {
        requantizer: Requantizer::per_tensor(
            f64::from(input.scale) / f64::from(output.scale),
            rounding,
        )?,
        zero_point: output.zero_point,
        range: ActRange::FULL,
    };
    let zx = i32::from(input.zero_point);
    let y = x
        .i8(0)?
        .iter()
        .map(|&v| stage.finish(i32::from(v) - zx, 0))
        .collect();
    Ok(int8(y))
}

/// The output stage of `q.conv2d` / `q.linear`: effective scales `s_x · s_w[c] / s_y`
/// ([`Requantizer::from_tensor_scales`]), the output zero point and the activation clamp.
fn output_stage(
    input: QuantParams,
    weight_scales: &[f32],
    out: &TensorType,
    act: ActRange,
    rounding: Rounding,
) -> Result<(OutputStage, QuantParams), OpFailure> {
    let output = per_tensor(out, "result")?;
    let requantizer =
        Requantizer::from_tensor_scales(input.scale, weight_scales, output.scale, rounding)?;
    Ok((
        OutputStage {
            requantizer,
            zero_point: output.zero_point,
            range: act,
        },
        output,
    ))
}

/// The scales of the `i32` bias (operand 2) of a `q.conv2d` / `q.linear`, as its
/// `DequantizeLinear` would use them: the bias type's own quantization, or `s_x · s_W[c]` when it
/// has none.
fn bias_scales<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    input: QuantParams,
    w_scales: &[f32],
) -> Result<Vec<f32>, OpFailure> {
    Ok(match &x.ty(2)?.quant {
        Some(Quant::PerTensor { scale, .. }) => vec![*scale],
        Some(Quant::PerChannel { scales, .. }) => scales.to_vec(),
        None => w_scales.iter().map(|&w| input.scale * w).collect(),
    })
}

/// onnxruntime's float convolution of the dequantized operands of a `q.conv2d` / `q.linear`
/// (operand 2, when present, is the `i32` bias), quantized to `out`.
fn qdq_float_conv<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    shape: &crate::geometry::Conv2dShape,
    input: QuantParams,
    w_scales: &[f32],
    w_zero_points: &[i8],
    out: &TensorType,
    act: (i64, i64),
) -> OpResult<T> {
    let bias_scales = match x.i32_bias()? {
        Some(_) => bias_scales(x, input, w_scales)?,
        None => Vec::new(),
    };
    let bias = x.i32_bias()?.map(|values| FloatBias {
        values,
        scales: &bias_scales,
    });
    let y = ort::conv2d_qdq_float(
        shape,
        x.i8(0)?,
        input,
        x.i8(1)?,
        w_scales,
        w_zero_points,
        bias,
        per_tensor(out, "result")?,
        act_range(act.0, act.1)?,
    )?;
    Ok(int8(y))
}

/// `q.conv2d`: int8 convolution with `i32` bias, requantized per output channel. With
/// [`Rounding::OnnxRuntime`] and a non-exclusive data flow, onnxruntime's float convolution
/// between `DequantizeLinear` and `QuantizeLinear` ([`ort::conv2d_qdq_float`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    groups: i64,
    act: (i64, i64),
    mode: Mode,
) -> OpResult<T> {
    let rounding = mode.0;
    let shape = conv_shape(x.shape4(0)?, x.shape4(1)?, strides, pads, dilations, groups)?;
    let input = per_tensor(x.ty(0)?, "operand 0")?;
    let (w_scales, w_zero_points) = weight_quant(x.ty(1)?)?;
    if onnxruntime_float(mode) {
        return qdq_float_conv(x, &shape, input, &w_scales, &w_zero_points, out, act);
    }
    let (stage, _) = output_stage(input, &w_scales, out, act_range(act.0, act.1)?, rounding)?;
    let y = quant::conv2d_int8(
        &shape,
        x.i8(0)?,
        input.zero_point,
        x.i8(1)?,
        &w_zero_points,
        x.i32_bias()?,
        &stage,
    )?;
    Ok(int8(y))
}

/// `q.linear`: int8 fully connected layer with `i32` bias.
pub(crate) fn linear<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    act: (i64, i64),
    mode: Mode,
) -> OpResult<T> {
    let rounding = mode.0;
    let (xs, ws) = (x.shape(0)?, x.shape(1)?);
    let (&[batch, in_features], &[out_features, _]) = (xs, ws) else {
        return Err(OpFailure::Internal(format!(
            "linear of {xs:?} by {ws:?}: expected rank-2 operands"
        )));
    };
    let input = per_tensor(x.ty(0)?, "operand 0")?;
    let (w_scales, w_zero_points) = weight_quant(x.ty(1)?)?;
    if onnxruntime_float(mode) {
        // A float Gemm of the dequantized operands: a 1×1 convolution over a 1×1 image.
        // (Approximate: onnxruntime's Gemm blocks K by its own N = out_features and adds the
        // bias first; the paper's networks have no q.linear.)
        let shape = crate::geometry::Conv2dShape {
            n: batch,
            c_in: in_features,
            in_hw: [1, 1],
            c_out: out_features,
            groups: 1,
            window: crate::geometry::Window2d {
                kernel: [1, 1],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
            },
        };
        return qdq_float_conv(x, &shape, input, &w_scales, &w_zero_points, out, act);
    }
    let (stage, _) = output_stage(input, &w_scales, out, act_range(act.0, act.1)?, rounding)?;
    let shape = quant::LinearShape {
        batch,
        in_features,
        out_features,
    };
    let y = quant::fully_connected_int8(
        shape,
        x.i8(0)?,
        input.zero_point,
        x.i8(1)?,
        &w_zero_points,
        x.i32_bias()?,
        &stage,
    )?;
    Ok(int8(y))
}

/// `q.add`: TFLite int8 `Add` ([`AddInt8`]) of two equally shaped tensors. With
/// [`Rounding::OnnxRuntime`]: onnxruntime's `QLinearAdd` when the data flow is exclusive, else its
/// float `Add` between `DequantizeLinear`s and a `QuantizeLinear` ([`ort::add_qdq_float`]).
pub(crate) fn add<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    act: (i64, i64),
    mode: Mode,
) -> OpResult<T> {
    let rounding = mode.0;
    if onnxruntime_float(mode) {
        return Ok(int8(ort::add_qdq_float(
            x.i8(0)?,
            per_tensor(x.ty(0)?, "operand 0")?,
            x.i8(1)?,
            per_tensor(x.ty(1)?, "operand 1")?,
            per_tensor(out, "result")?,
            act_range(act.0, act.1)?,
        )?));
    }
    let add = AddInt8::new(
        per_tensor(x.ty(0)?, "operand 0")?,
        per_tensor(x.ty(1)?, "operand 1")?,
        per_tensor(out, "result")?,
        act_range(act.0, act.1)?,
        rounding,
    )?;
    Ok(int8(add.apply(x.i8(0)?, x.i8(1)?)?))
}

/// `q.avg_pool`: TFLite int8 `AveragePool`. The result must keep the operand's quantization
/// (TFLite requires it; a different one is reported as unsupported rather than silently
/// rounding twice). With [`Rounding::OnnxRuntime`]: onnxruntime's average pool of the
/// dequantized values, quantized to the result's quantization ([`ort::avg_pool_qdq_float`]; its
/// fused `QLinearAveragePool` also pools in float), which may differ from the operand's.
pub(crate) fn avg_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    kernel: &[i64],
    strides: &[i64],
    pads: &[i64],
    act: (i64, i64),
    rounding: Rounding,
) -> OpResult<T> {
    let ty = x.ty(0)?;
    if rounding == Rounding::OnnxRuntime {
        let w = window(kernel, strides, pads, &[1, 1])?;
        return Ok(int8(ort::avg_pool_qdq_float(
            x.i8(0)?,
            x.shape4(0)?,
            Some(&w),
            per_tensor(ty, "operand 0")?,
            per_tensor(out, "result")?,
            act_range(act.0, act.1)?,
        )?));
    }
    if ty.quant != out.quant {
        return Err(OpFailure::Unsupported(format!(
            "q.avg_pool must keep its operand's quantization: operand {ty}, result {out} \
             (requantize before or after pooling)"
        )));
    }
    let w = window(kernel, strides, pads, &[1, 1])?;
    let y = quant::avg_pool_int8(x.i8(0)?, x.shape4(0)?, &w, act_range(act.0, act.1)?)?;
    Ok(int8(y))
}

/// `q.global_avg_pool`: when the result keeps the operand's quantization, the paper's global
/// average pool ([`quant::global_avg_pool_int8`]); otherwise TFLite's int8 `Mean` requantizing
/// to the result's quantization ([`quant::mean_int8`]). With [`Rounding::OnnxRuntime`]:
/// onnxruntime's `QLinearGlobalAveragePool` ([`ort::global_avg_pool_qlinear`]) when the data
/// flow is exclusive, else its float `GlobalAveragePool` between `DequantizeLinear` and
/// `QuantizeLinear` ([`ort::avg_pool_qdq_float`]); either way with the result's quantization.
pub(crate) fn global_avg_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    mode: Mode,
) -> OpResult<T> {
    let rounding = mode.0;
    let ty = x.ty(0)?;
    let dims = x.shape4(0)?;
    if rounding == Rounding::OnnxRuntime {
        let (input, output) = (per_tensor(ty, "operand 0")?, per_tensor(out, "result")?);
        let y = if onnxruntime_float(mode) {
            ort::avg_pool_qdq_float(x.i8(0)?, dims, None, input, output, ActRange::FULL)?
        } else {
            ort::global_avg_pool_qlinear(x.i8(0)?, dims, input, output)?
        };
        return Ok(int8(y));
    }
    let y = if ty.quant == out.quant {
        quant::global_avg_pool_int8(x.i8(0)?, dims, rounding)?
    } else {
        quant::mean_int8(
            x.i8(0)?,
            dims,
            per_tensor(ty, "operand 0")?,
            per_tensor(out, "result")?,
            rounding,
        )?
    };
    Ok(int8(y))
}

/// `nn.max_pool` on an `i8` tensor (TFLite `MaxPool`; the quantization is kept).
pub(crate) fn max_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    kernel: &[i64],
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
) -> OpResult<T> {
    let w = window(kernel, strides, pads, dilations)?;
    Ok(int8(quant::max_pool_int8(x.i8(0)?, x.shape4(0)?, &w)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mite_ir::{Builder, Module};

    #[test]
    fn exclusive_data_flow_marks_single_use_ops() {
        // y = relu(x) feeds two ops (a branch point, like a residual tensor); w = y1 + y2 + b is
        // the only op whose activations and result each have one use (b is a parameter, read
        // by two ops: parameters do not count).
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[2]));
        let p = b.param("b", TensorType::f32(&[2]), false, None).unwrap();
        let y = b.op(Op::Relu {}, &[x]).unwrap();
        let y1 = b.op(Op::Relu {}, &[y]).unwrap();
        let y2 = b.op(Op::Add {}, &[y, p]).unwrap();
        let s = b.op(Op::Add {}, &[y1, y2]).unwrap();
        let w = b.op(Op::Add {}, &[s, p]).unwrap();
        b.ret(&[w]);
        let f = m.function("f").unwrap();
        // Ops: param, relu y, relu y1, add y2, add s, add w.
        assert_eq!(
            exclusive_data_flow(f),
            vec![false, false, false, false, true, true]
        );
        assert!(onnxruntime_float((Rounding::OnnxRuntime, false)));
        assert!(!onnxruntime_float((Rounding::OnnxRuntime, true)));
        assert!(!onnxruntime_float((Rounding::Double, false)));
    }

    #[test]
    fn int32_quantization_rounds_half_to_even_and_saturates() {
        assert_eq!(quantize_i32(2.5, 1.0, 0), 2);
        assert_eq!(quantize_i32(3.5, 1.0, 1), 5);
        assert_eq!(quantize_i32(f32::INFINITY, 1.0, 0), i32::MAX);
        assert_eq!(quantize_i32(f32::NAN, 1.0, 7), 7);
        assert_eq!(dequantize_i32(i32::MIN, 1.0, 1), -2_147_483_649.0);
        assert_eq!(channel_of(5, &[2, 3], 0), 1);
        assert_eq!(channel_of(5, &[2, 3], 1), 2);
    }
}
