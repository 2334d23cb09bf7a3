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

use mite_ir::{ElemType, Quant, TensorType};

use crate::quant::{self, ActRange, AddInt8, OutputStage, QuantParams, Requantizer, Rounding};

use super::error::OpFailure;
use super::float_ops::OpResult;
use super::operands::{conv_shape, per_tensor, weight_quant, window, zero_point_i8, Operands};
use super::value::{Data, ExecReal};

fn int8<T: ExecReal>(v: Vec<i8>) -> Data<'static, T> {
    Data::I8(Cow::Owned(v))
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
/// rounding (TFLite's int8 `Requantize`).
pub(crate) fn requantize<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    rounding: Rounding,
) -> OpResult<T> {
    let input = per_tensor(x.ty(0)?, "operand 0")?;
    let output = per_tensor(out, "result")?;
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

/// `q.conv2d`: int8 convolution with `i32` bias, requantized per output channel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    groups: i64,
    act: (i64, i64),
    rounding: Rounding,
) -> OpResult<T> {
    let shape = conv_shape(x.shape4(0)?, x.shape4(1)?, strides, pads, dilations, groups)?;
    let input = per_tensor(x.ty(0)?, "operand 0")?;
    let (w_scales, w_zero_points) = weight_quant(x.ty(1)?)?;
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
    rounding: Rounding,
) -> OpResult<T> {
    let (xs, ws) = (x.shape(0)?, x.shape(1)?);
    let (&[batch, in_features], &[out_features, _]) = (xs, ws) else {
        return Err(OpFailure::Internal(format!(
            "linear of {xs:?} by {ws:?}: expected rank-2 operands"
        )));
    };
    let input = per_tensor(x.ty(0)?, "operand 0")?;
    let (w_scales, w_zero_points) = weight_quant(x.ty(1)?)?;
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

/// `q.add`: TFLite int8 `Add` ([`AddInt8`]) of two equally shaped tensors.
pub(crate) fn add<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    act: (i64, i64),
    rounding: Rounding,
) -> OpResult<T> {
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
/// rounding twice).
pub(crate) fn avg_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    kernel: &[i64],
    strides: &[i64],
    pads: &[i64],
    act: (i64, i64),
) -> OpResult<T> {
    let ty = x.ty(0)?;
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
/// to the result's quantization ([`quant::mean_int8`]).
pub(crate) fn global_avg_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    rounding: Rounding,
) -> OpResult<T> {
    let ty = x.ty(0)?;
    let dims = x.shape4(0)?;
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
