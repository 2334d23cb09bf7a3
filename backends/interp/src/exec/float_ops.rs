//! The float (`nn.`) ops, generic over the precision `T` (see [`ExecReal`]).
//!
//! Each function reads its operands through [`Operands`], calls the matching kernel of
//! [`crate::kernels`] and returns the result as owned [`Data::Real`].

use std::borrow::Cow;

use crate::kernels::{self, LinearShape};

use super::error::OpFailure;
use super::operands::{axis, conv_shape, window, Operands};
use super::value::{Data, ExecReal};

/// Result type of every op here.
pub(crate) type OpResult<T> = Result<Data<'static, T>, OpFailure>;

fn real<T: ExecReal>(v: Vec<T>) -> Data<'static, T> {
    Data::Real(Cow::Owned(v))
}

/// `nn.conv2d`: grouped 2-D convolution with an optional bias.
pub(crate) fn conv2d<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    groups: i64,
) -> OpResult<T> {
    let shape = conv_shape(x.shape4(0)?, x.shape4(1)?, strides, pads, dilations, groups)?;
    let y = kernels::conv2d(&shape, x.real(0)?, x.real(1)?, x.real_bias()?)?;
    Ok(real(y))
}

/// `nn.linear`: `x [N, K] · wᵀ + bias`.
pub(crate) fn linear<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let (xs, ws) = (x.shape(0)?, x.shape(1)?);
    let (&[batch, in_features], &[out_features, _]) = (xs, ws) else {
        return Err(OpFailure::Internal(format!(
            "linear of {xs:?} by {ws:?}: expected rank-2 operands"
        )));
    };
    let shape = LinearShape {
        batch,
        in_features,
        out_features,
    };
    let y = kernels::linear(&shape, x.real(0)?, x.real(1)?, x.real_bias()?)?;
    Ok(real(y))
}

/// `nn.matmul`: batched matrix product.
pub(crate) fn matmul<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let y = kernels::matmul(x.real(0)?, x.shape(0)?, x.real(1)?, x.shape(1)?)?;
    Ok(real(y))
}

/// `nn.add`: broadcasting sum.
pub(crate) fn add<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let y = kernels::add(x.real(0)?, x.shape(0)?, x.real(1)?, x.shape(1)?)?;
    Ok(real(y))
}

/// `nn.mul`: broadcasting product.
pub(crate) fn mul<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let y = kernels::mul(x.real(0)?, x.shape(0)?, x.real(1)?, x.shape(1)?)?;
    Ok(real(y))
}

/// `nn.relu`.
pub(crate) fn relu<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    Ok(real(kernels::relu(x.real(0)?)))
}

/// `nn.clip` (bounds converted from their `f32` attributes; infinities stay infinite).
pub(crate) fn clip<T: ExecReal>(x: &Operands<'_, '_, T>, min: f32, max: f32) -> OpResult<T> {
    let y = kernels::clip(
        x.real(0)?,
        T::from_f64(f64::from(min)),
        T::from_f64(f64::from(max)),
    )?;
    Ok(real(y))
}

/// `nn.avg_pool` (no dilation).
pub(crate) fn avg_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    kernel: &[i64],
    strides: &[i64],
    pads: &[i64],
    count_include_pad: bool,
) -> OpResult<T> {
    let w = window(kernel, strides, pads, &[1, 1])?;
    let y = kernels::avg_pool(x.real(0)?, x.shape4(0)?, &w, count_include_pad)?;
    Ok(real(y))
}

/// `nn.global_avg_pool`.
pub(crate) fn global_avg_pool<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let y = kernels::global_avg_pool(x.real(0)?, x.shape4(0)?)?;
    Ok(real(y))
}

/// `nn.max_pool` on an `f32` tensor.
pub(crate) fn max_pool<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    kernel: &[i64],
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
) -> OpResult<T> {
    let w = window(kernel, strides, pads, dilations)?;
    let y = kernels::max_pool(x.real(0)?, x.shape4(0)?, &w)?;
    Ok(real(y))
}

/// `nn.pad`: constant padding, `pads` = all begins then all ends.
pub(crate) fn pad<T: ExecReal>(x: &Operands<'_, '_, T>, pads: &[i64], value: f32) -> OpResult<T> {
    let rank = x.shape(0)?.len();
    if pads.len() != 2 * rank {
        return Err(OpFailure::Internal(format!(
            "pads {pads:?} for a rank-{rank} tensor"
        )));
    }
    let pairs = (0..rank)
        .map(|d| {
            let b = usize::try_from(pads[d]);
            let e = usize::try_from(pads[d + rank]);
            match (b, e) {
                (Ok(b), Ok(e)) => Ok([b, e]),
                _ => Err(OpFailure::Internal(format!("negative pads {pads:?}"))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let y = kernels::pad(
        x.real(0)?,
        x.shape(0)?,
        &pairs,
        T::from_f64(f64::from(value)),
    )?;
    Ok(real(y))
}

/// `nn.softmax`.
pub(crate) fn softmax<T: ExecReal>(x: &Operands<'_, '_, T>, ax: i64) -> OpResult<T> {
    let shape = x.shape(0)?;
    let y = kernels::softmax(x.real(0)?, shape, axis(ax, shape.len())?)?;
    Ok(real(y))
}

/// `nn.log_softmax`.
pub(crate) fn log_softmax<T: ExecReal>(x: &Operands<'_, '_, T>, ax: i64) -> OpResult<T> {
    let shape = x.shape(0)?;
    let y = kernels::log_softmax(x.real(0)?, shape, axis(ax, shape.len())?)?;
    Ok(real(y))
}

/// `nn.softmax_cross_entropy`: logits `[N, C]`, `i32` labels `[N]` → scalar mean loss.
pub(crate) fn softmax_cross_entropy<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let shape = x.shape(0)?;
    let &[n, c] = shape else {
        return Err(OpFailure::Internal(format!(
            "logits of shape {shape:?}: expected rank 2"
        )));
    };
    let loss = kernels::softmax_cross_entropy(x.real(0)?, x.i32(1)?, n, c)?;
    Ok(real(vec![loss]))
}

/// `nn.mse_loss`: scalar mean squared error.
pub(crate) fn mse_loss<T: ExecReal>(x: &Operands<'_, '_, T>) -> OpResult<T> {
    let loss = kernels::mse(x.real(0)?, x.real(1)?, x.shape(0)?)?;
    Ok(real(vec![loss]))
}
