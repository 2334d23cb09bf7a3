//! The backward (`grad.`) ops, generic over the precision `T` (see [`ExecReal`]).
//!
//! Every gradient is real-valued: `f32` values computed in `T` through the backward kernels of
//! [`crate::kernels`] (`f64` in the interpreter's `f64` mode). The choices made here:
//!
//! - `grad.conv2d_input` / `grad.linear_input` accept a quantized `i8` weight and use its real
//!   value `s[c] · (q − z[c])` (per tensor, or per channel along the quantization axis), computed
//!   in `f32` and widened, like `q.dequantize`.
//! - `grad.conv2d_bias` and `grad.linear_bias` sum `dy` through
//!   [`conv2d_backward_bias`](kernels::conv2d_backward_bias) /
//!   [`linear_backward_bias`](kernels::linear_backward_bias) (only the output geometry matters).
//! - `grad.mask` is `min < x < max` (both bounds exclusive): on `f32` the comparison is in `T`
//!   with the bounds converted from their `f32` attributes; on `i8` the integer values (not their
//!   real values) are compared with the `f32` bounds. The result is `i1`.
//! - `grad.apply_mask` keeps `dy` where the mask is set and writes 0 elsewhere.
//! - `grad.reduce_to_shape` sums over the broadcast axes
//!   ([`reduce_to_shape`](kernels::reduce_to_shape)).
//! - `grad.pad` crops the forward `pads` (all begins, then all ends) off `dy`.
//! - `grad.slice` copies `[start, start + size)` along `axis`, for any element type.
//! - The loss gradients read the incoming scalar gradient `dloss` from their third operand.

use std::borrow::Cow;

use mite_ir::{Quant, TensorType};

use crate::geometry::{Conv2dShape, Window2d};
use crate::kernels::{self, LinearShape};

use super::error::OpFailure;
use super::float_ops::OpResult;
use super::operands::{axis, conv_shape, window, Operands};
use super::value::{Data, ExecReal};

fn real<T: ExecReal>(v: Vec<T>) -> Data<'static, T> {
    Data::Real(Cow::Owned(v))
}

/// A shape attribute (`input_shape`) as dimensions.
fn dims(v: &[i64], what: &str) -> Result<Vec<usize>, OpFailure> {
    v.iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| OpFailure::Internal(format!("{what}: negative dimension in {v:?}")))
}

/// A rank-4 shape attribute.
fn dims4(v: &[i64], what: &str) -> Result<[usize; 4], OpFailure> {
    let d = dims(v, what)?;
    <[usize; 4]>::try_from(d.as_slice())
        .map_err(|_| OpFailure::Internal(format!("{what}: expected rank 4, found {v:?}")))
}

/// A rank-4 shape.
fn shape4(s: &[usize], what: &str) -> Result<[usize; 4], OpFailure> {
    <[usize; 4]>::try_from(s)
        .map_err(|_| OpFailure::Internal(format!("{what}: expected rank 4, found {s:?}")))
}

/// The channel of flat index `i` along `axis` of `shape`.
fn channel_of(i: usize, shape: &[usize], axis: usize) -> usize {
    let inner: usize = shape.get(axis + 1..).unwrap_or(&[]).iter().product();
    let channels = shape.get(axis).copied().unwrap_or(1);
    (i / inner.max(1)) % channels.max(1)
}

/// The real value of integer elements `q` of type `ty`: `s[c] · (q − z[c])` in `f32`, widened to
/// `T`. Errors if `ty` has no quantization or the axis or channel count does not fit its shape.
pub(crate) fn dequantized<T: ExecReal>(
    q: impl ExactSizeIterator<Item = i64>,
    ty: &TensorType,
) -> Result<Vec<T>, OpFailure> {
    let Some(quant) = &ty.quant else {
        return Err(OpFailure::Internal(format!("{ty} has no quantization")));
    };
    let axis = match quant {
        Quant::PerTensor { .. } => None,
        Quant::PerChannel { axis, scales, .. } => {
            if ty.shape.get(*axis) != Some(&scales.len()) {
                return Err(OpFailure::Internal(format!(
                    "{ty}: quantization axis does not match the shape"
                )));
            }
            Some(*axis)
        }
    };
    Ok(q.enumerate()
        .map(|(i, v)| {
            let c = axis.map_or(0, |a| channel_of(i, &ty.shape, a));
            let z = i64::from(quant.zero_point(c));
            let real = (v - z) as f32 * quant.scale(c);
            T::from_f64(f64::from(real))
        })
        .collect())
}

/// The real value of weight operand `i`: its elements if `f32`, dequantized if quantized `i8`.
fn real_weight<'r, T: ExecReal>(
    x: &Operands<'r, '_, T>,
    i: usize,
) -> Result<Cow<'r, [T]>, OpFailure> {
    match x.data(i)? {
        Data::Real(v) => Ok(Cow::Borrowed(&v[..])),
        Data::I8(v) => Ok(Cow::Owned(dequantized(
            v.iter().map(|&q| i64::from(q)),
            x.ty(i)?,
        )?)),
        other => Err(OpFailure::Internal(format!(
            "operand {i}: expected an f32 or i8 weight, found {} elements",
            other.elem()
        ))),
    }
}

/// The scalar operand `i` (a loss gradient).
fn scalar<T: ExecReal>(x: &Operands<'_, '_, T>, i: usize) -> Result<T, OpFailure> {
    match x.real(i)? {
        [v] => Ok(*v),
        v => Err(OpFailure::Internal(format!(
            "operand {i}: expected a scalar, found {} elements",
            v.len()
        ))),
    }
}

/// `grad.conv2d_input`: `(dy, w) -> dx` of shape `input_shape`.
pub(crate) fn conv2d_input<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    groups: i64,
    input_shape: &[i64],
) -> OpResult<T> {
    let xs = dims4(input_shape, "input_shape")?;
    let shape = conv_shape(xs, x.shape4(1)?, strides, pads, dilations, groups)?;
    let w = real_weight(x, 1)?;
    Ok(real(kernels::conv2d_backward_input(
        &shape,
        x.real(0)?,
        &w,
    )?))
}

/// `grad.conv2d_weight`: `(x, dy) -> dw` of the result's shape `[Co, Ci/groups, kh, kw]`.
pub(crate) fn conv2d_weight<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    groups: i64,
) -> OpResult<T> {
    let ws = shape4(&out.shape, "weight gradient")?;
    let shape = conv_shape(x.shape4(0)?, ws, strides, pads, dilations, groups)?;
    Ok(real(kernels::conv2d_backward_weight(
        &shape,
        x.real(0)?,
        x.real(1)?,
    )?))
}

/// `grad.conv2d_bias`: `dy [N, Co, H, W]` summed to `[Co]`.
pub(crate) fn conv2d_bias<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let [n, co, h, w] = x.shape4(0)?;
    // The bias gradient depends on the output only: describe a 1×1 convolution whose output is
    // `dy`.
    let shape = Conv2dShape {
        n,
        c_in: co,
        in_hw: [h, w],
        c_out: co,
        groups: 1,
        window: Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        },
    };
    Ok(real(kernels::conv2d_backward_bias(&shape, x.real(0)?)?))
}

/// `grad.linear_input`: `(dy [N, M], w [M, K]) -> dx [N, K]`.
pub(crate) fn linear_input<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let (ds, ws) = (x.shape(0)?, x.shape(1)?);
    let (&[batch, out_features], &[_, in_features]) = (ds, ws) else {
        return Err(OpFailure::Internal(format!(
            "linear input gradient of {ds:?} by {ws:?}: expected rank-2 operands"
        )));
    };
    let shape = LinearShape {
        batch,
        in_features,
        out_features,
    };
    let w = real_weight(x, 1)?;
    Ok(real(kernels::linear_backward_input(
        &shape,
        x.real(0)?,
        &w,
    )?))
}

/// `grad.linear_weight`: `(x [N, K], dy [N, M]) -> dw [M, K]`.
pub(crate) fn linear_weight<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let (xs, ds) = (x.shape(0)?, x.shape(1)?);
    let (&[batch, in_features], &[_, out_features]) = (xs, ds) else {
        return Err(OpFailure::Internal(format!(
            "linear weight gradient of {xs:?} and {ds:?}: expected rank-2 operands"
        )));
    };
    let shape = LinearShape {
        batch,
        in_features,
        out_features,
    };
    Ok(real(kernels::linear_backward_weight(
        &shape,
        x.real(0)?,
        x.real(1)?,
    )?))
}

/// `grad.linear_bias`: `dy [N, M]` summed to `[M]`.
pub(crate) fn linear_bias<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let ds = x.shape(0)?;
    let &[batch, out_features] = ds else {
        return Err(OpFailure::Internal(format!(
            "linear bias gradient of {ds:?}: expected rank 2"
        )));
    };
    // Only the output's dimensions matter.
    let shape = LinearShape {
        batch,
        in_features: 0,
        out_features,
    };
    Ok(real(kernels::linear_backward_bias(&shape, x.real(0)?)?))
}

/// `grad.matmul_lhs`: `(dy [.., M, N], b [.., K, N]) -> da [.., M, K]` (the result's shape).
pub(crate) fn matmul_lhs<T: ExecReal>(x: &Operands<'_, '_, T>, out: &TensorType) -> OpResult<T> {
    Ok(real(kernels::matmul_backward_lhs(
        x.real(0)?,
        x.real(1)?,
        &out.shape,
        x.shape(1)?,
    )?))
}

/// `grad.matmul_rhs`: `(a [.., M, K], dy [.., M, N]) -> db [.., K, N]` (the result's shape).
pub(crate) fn matmul_rhs<T: ExecReal>(x: &Operands<'_, '_, T>, out: &TensorType) -> OpResult<T> {
    Ok(real(kernels::matmul_backward_rhs(
        x.real(0)?,
        x.real(1)?,
        x.shape(0)?,
        &out.shape,
    )?))
}

/// `grad.avg_pool`: `dy -> dx` of shape `input_shape` (no dilation).
pub(crate) fn avg_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    kernel: &[i64],
    strides: &[i64],
    pads: &[i64],
    count_include_pad: bool,
    input_shape: &[i64],
) -> OpResult<T> {
    let w = window(kernel, strides, pads, &[1, 1])?;
    let xs = dims4(input_shape, "input_shape")?;
    Ok(real(kernels::avg_pool_backward(
        x.real(0)?,
        xs,
        &w,
        count_include_pad,
    )?))
}

/// `grad.global_avg_pool`: `dy [N, C, 1, 1] -> dx` of shape `input_shape`.
pub(crate) fn global_avg_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    input_shape: &[i64],
) -> OpResult<T> {
    let xs = dims4(input_shape, "input_shape")?;
    Ok(real(kernels::global_avg_pool_backward(x.real(0)?, xs)?))
}

/// `grad.max_pool`: `(x, dy) -> dx`, each gradient routed to the first maximum of its window.
pub(crate) fn max_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    kernel: &[i64],
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
) -> OpResult<T> {
    let w = window(kernel, strides, pads, dilations)?;
    Ok(real(kernels::max_pool_backward(
        x.real(0)?,
        x.shape4(0)?,
        &w,
        x.real(1)?,
    )?))
}

/// `grad.mask`: `min < x < max` as `i1`; `f32` compared in `T`, `i8` as integers.
pub(crate) fn mask<T: ExecReal>(x: &Operands<'_, '_, T>, min: f32, max: f32) -> OpResult<T> {
    let m = match x.data(0)? {
        Data::Real(v) => {
            kernels::clip_mask(v, T::from_f64(f64::from(min)), T::from_f64(f64::from(max)))?
        }
        Data::I8(v) => {
            if min.is_nan() || max.is_nan() || min > max {
                return Err(OpFailure::Internal(format!(
                    "mask bounds min = {min}, max = {max}"
                )));
            }
            v.iter()
                .map(|&q| {
                    let q = f32::from(q);
                    min < q && q < max
                })
                .collect()
        }
        other => {
            return Err(OpFailure::Internal(format!(
                "operand 0: expected f32 or i8 elements, found {}",
                other.elem()
            )))
        }
    };
    Ok(Data::I1(Cow::Owned(m)))
}

/// `grad.apply_mask`: `(dy, mask) -> dy` where the mask is set, 0 elsewhere.
pub(crate) fn apply_mask<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let mask = match x.data(1)? {
        Data::I1(m) => m,
        other => {
            return Err(OpFailure::Internal(format!(
                "operand 1: expected i1 elements, found {}",
                other.elem()
            )))
        }
    };
    Ok(real(kernels::masked_backward(x.real(0)?, mask)?))
}

/// `grad.reduce_to_shape`: `dy` summed over its broadcast axes to the result's shape.
pub(crate) fn reduce_to_shape<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
) -> OpResult<T> {
    Ok(real(kernels::reduce_to_shape(
        x.real(0)?,
        x.shape(0)?,
        &out.shape,
    )?))
}

/// `grad.softmax`: `(y, dy) -> dx` along `axis`.
pub(crate) fn softmax<T: ExecReal>(x: &Operands<'_, '_, T>, ax: i64) -> OpResult<T> {
    let shape = x.shape(0)?;
    Ok(real(kernels::softmax_backward(
        x.real(0)?,
        x.real(1)?,
        shape,
        axis(ax, shape.len())?,
    )?))
}

/// `grad.log_softmax`: `(y, dy) -> dx` along `axis`.
pub(crate) fn log_softmax<T: ExecReal>(x: &Operands<'_, '_, T>, ax: i64) -> OpResult<T> {
    let shape = x.shape(0)?;
    Ok(real(kernels::log_softmax_backward(
        x.real(0)?,
        x.real(1)?,
        shape,
        axis(ax, shape.len())?,
    )?))
}

/// `grad.softmax_cross_entropy`: `(logits [N, C], labels [N], dloss) -> dlogits`.
pub(crate) fn softmax_cross_entropy<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let shape = x.shape(0)?;
    let &[n, c] = shape else {
        return Err(OpFailure::Internal(format!(
            "logits of shape {shape:?}: expected rank 2"
        )));
    };
    Ok(real(kernels::softmax_cross_entropy_backward(
        x.real(0)?,
        x.i32(1)?,
        n,
        c,
        scalar(x, 2)?,
    )?))
}

/// `grad.mse_loss`: `(prediction, target, dloss) -> dprediction`.
pub(crate) fn mse_loss<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    Ok(real(kernels::mse_backward(
        x.real(0)?,
        x.real(1)?,
        x.shape(0)?,
        scalar(x, 2)?,
    )?))
}

/// `grad.pad`: crops `pads` (all begins, then all ends) off `dy`.
pub(crate) fn pad<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    out: &TensorType,
    pads: &[i64],
) -> OpResult<T> {
    let rank = out.shape.len();
    let p = dims(pads, "pads")?;
    if p.len() != 2 * rank {
        return Err(OpFailure::Internal(format!(
            "pads {pads:?} for a rank-{rank} tensor"
        )));
    }
    let pairs: Vec<[usize; 2]> = (0..rank).map(|d| [p[d], p[d + rank]]).collect();
    Ok(real(kernels::pad_backward(x.real(0)?, &out.shape, &pairs)?))
}

/// Copies `[start, start + size)` along `axis` of row-major `x` of shape `shape`; `None` if the
/// range or the element count does not fit.
fn slice_axis<E: Copy>(
    x: &[E],
    shape: &[usize],
    axis: usize,
    start: usize,
    size: usize,
) -> Option<Vec<E>> {
    let len = *shape.get(axis)?;
    if start.checked_add(size)? > len || shape.iter().product::<usize>() != x.len() {
        return None;
    }
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(x.len() / len.max(1) * size);
    if inner == 0 || len == 0 {
        return Some(out);
    }
    for block in x.chunks_exact(len * inner) {
        out.extend_from_slice(&block[start * inner..(start + size) * inner]);
    }
    Some(out)
}

/// `grad.slice`: `[start, start + size)` of `dy` along `axis`, any element type.
pub(crate) fn slice<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    ax: i64,
    start: i64,
    size: i64,
) -> OpResult<T> {
    let shape = x.shape(0)?;
    let ax = axis(ax, shape.len())?;
    let (Ok(start), Ok(size)) = (usize::try_from(start), usize::try_from(size)) else {
        return Err(OpFailure::Internal(format!(
            "negative slice start {start} or size {size}"
        )));
    };
    let bad = || {
        OpFailure::Internal(format!(
            "slice [{start}, {start} + {size}) does not fit axis {ax} of {shape:?}"
        ))
    };
    Ok(match x.data(0)? {
        Data::Real(v) => Data::Real(Cow::Owned(
            slice_axis(v, shape, ax, start, size).ok_or_else(bad)?,
        )),
        Data::I8(v) => Data::I8(Cow::Owned(
            slice_axis(v, shape, ax, start, size).ok_or_else(bad)?,
        )),
        Data::I32(v) => Data::I32(Cow::Owned(
            slice_axis(v, shape, ax, start, size).ok_or_else(bad)?,
        )),
        Data::I64(v) => Data::I64(Cow::Owned(
            slice_axis(v, shape, ax, start, size).ok_or_else(bad)?,
        )),
        Data::I1(v) => Data::I1(Cow::Owned(
            slice_axis(v, shape, ax, start, size).ok_or_else(bad)?,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_along_an_axis() {
        // [[0, 1, 2], [3, 4, 5]]
        let x = [0, 1, 2, 3, 4, 5];
        assert_eq!(slice_axis(&x, &[2, 3], 1, 1, 2), Some(vec![1, 2, 4, 5]));
        assert_eq!(slice_axis(&x, &[2, 3], 0, 1, 1), Some(vec![3, 4, 5]));
        assert_eq!(slice_axis(&x, &[2, 3], 1, 2, 2), None);
        assert_eq!(slice_axis(&x, &[2, 2], 1, 0, 1), None);
    }

    #[test]
    fn channels_of_flat_indices() {
        assert_eq!(channel_of(5, &[2, 3], 0), 1);
        assert_eq!(channel_of(5, &[2, 3], 1), 2);
        assert_eq!(channel_of(7, &[2, 2, 2], 1), 1);
    }
}
