//! Typed access to an op's operands and conversion of its attributes.
//!
//! The module is verified before it runs, so the accessors here only fail on an inconsistency the
//! verifier should have excluded; they return [`OpFailure::Internal`] rather than panicking.

use mite_ir::infer::norm_axis;
use mite_ir::{Quant, TensorType};

use crate::geometry::{Conv2dShape, Window2d};
use crate::quant::QuantParams;

use super::error::OpFailure;
use super::value::{Data, ExecReal};

/// The operands of one op: their data and their types.
pub(crate) struct Operands<'r, 'a, T: Clone> {
    data: &'r [&'r Data<'a, T>],
    types: &'r [&'r TensorType],
}

impl<'r, 'a, T: ExecReal> Operands<'r, 'a, T> {
    /// Operands with data `data` of types `types` (same length).
    pub(crate) fn new(data: &'r [&'r Data<'a, T>], types: &'r [&'r TensorType]) -> Self {
        Operands { data, types }
    }

    /// Number of operands.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// The data of operand `i`.
    pub(crate) fn data(&self, i: usize) -> Result<&'r Data<'a, T>, OpFailure> {
        self.data
            .get(i)
            .copied()
            .ok_or_else(|| OpFailure::Internal(format!("missing operand {i}")))
    }

    /// The type of operand `i`.
    pub(crate) fn ty(&self, i: usize) -> Result<&'r TensorType, OpFailure> {
        self.types
            .get(i)
            .copied()
            .ok_or_else(|| OpFailure::Internal(format!("missing operand {i}")))
    }

    /// The shape of operand `i`.
    pub(crate) fn shape(&self, i: usize) -> Result<&'r [usize], OpFailure> {
        Ok(&self.ty(i)?.shape)
    }

    /// The shape of operand `i`, which must have rank 4 (NCHW).
    pub(crate) fn shape4(&self, i: usize) -> Result<[usize; 4], OpFailure> {
        let s = self.shape(i)?;
        <[usize; 4]>::try_from(s)
            .map_err(|_| OpFailure::Internal(format!("operand {i}: expected rank 4, found {s:?}")))
    }

    fn mismatch(&self, i: usize, want: &str) -> OpFailure {
        let found = self
            .data
            .get(i)
            .map_or("nothing".to_string(), |d| format!("{} elements", d.elem()));
        OpFailure::Internal(format!(
            "operand {i}: expected {want} elements, found {found}"
        ))
    }

    /// The float elements of operand `i`.
    pub(crate) fn real(&self, i: usize) -> Result<&'r [T], OpFailure> {
        match self.data(i)? {
            Data::Real(v) => Ok(v),
            _ => Err(self.mismatch(i, "f32")),
        }
    }

    /// The `i8` elements of operand `i`.
    pub(crate) fn i8(&self, i: usize) -> Result<&'r [i8], OpFailure> {
        match self.data(i)? {
            Data::I8(v) => Ok(v),
            _ => Err(self.mismatch(i, "i8")),
        }
    }

    /// The `i32` elements of operand `i`.
    pub(crate) fn i32(&self, i: usize) -> Result<&'r [i32], OpFailure> {
        match self.data(i)? {
            Data::I32(v) => Ok(v),
            _ => Err(self.mismatch(i, "i32")),
        }
    }

    /// The optional third operand's float elements (a bias).
    pub(crate) fn real_bias(&self) -> Result<Option<&'r [T]>, OpFailure> {
        if self.len() > 2 {
            Ok(Some(self.real(2)?))
        } else {
            Ok(None)
        }
    }

    /// The optional third operand's `i32` elements (a quantized bias).
    pub(crate) fn i32_bias(&self) -> Result<Option<&'r [i32]>, OpFailure> {
        if self.len() > 2 {
            Ok(Some(self.i32(2)?))
        } else {
            Ok(None)
        }
    }
}

fn to_usize(v: i64, what: &str) -> Result<usize, OpFailure> {
    usize::try_from(v).map_err(|_| OpFailure::Internal(format!("{what}: negative value {v}")))
}

/// A two-element attribute (strides, dilations, kernel).
pub(crate) fn pair(v: &[i64], what: &str) -> Result<[usize; 2], OpFailure> {
    match v {
        [a, b] => Ok([to_usize(*a, what)?, to_usize(*b, what)?]),
        _ => Err(OpFailure::Internal(format!(
            "{what}: expected 2 values, found {v:?}"
        ))),
    }
}

/// A four-element padding attribute `[top, left, bottom, right]`.
pub(crate) fn quad(v: &[i64], what: &str) -> Result<[usize; 4], OpFailure> {
    match v {
        [a, b, c, d] => Ok([
            to_usize(*a, what)?,
            to_usize(*b, what)?,
            to_usize(*c, what)?,
            to_usize(*d, what)?,
        ]),
        _ => Err(OpFailure::Internal(format!(
            "{what}: expected 4 values, found {v:?}"
        ))),
    }
}

/// A pooling window from its attributes.
pub(crate) fn window(
    kernel: &[i64],
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
) -> Result<Window2d, OpFailure> {
    Ok(Window2d {
        kernel: pair(kernel, "kernel")?,
        strides: pair(strides, "strides")?,
        pads: quad(pads, "pads")?,
        dilations: pair(dilations, "dilations")?,
    })
}

/// The geometry of a convolution of `x` `[n, c, h, w]` by `w` `[co, c/groups, kh, kw]`.
pub(crate) fn conv_shape(
    x: [usize; 4],
    w: [usize; 4],
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    groups: i64,
) -> Result<Conv2dShape, OpFailure> {
    let kernel = [w[2] as i64, w[3] as i64];
    Ok(Conv2dShape {
        n: x[0],
        c_in: x[1],
        in_hw: [x[2], x[3]],
        c_out: w[0],
        groups: to_usize(groups, "groups")?,
        window: window(&kernel, strides, pads, dilations)?,
    })
}

/// A possibly negative axis of a rank-`rank` tensor, normalised.
pub(crate) fn axis(axis: i64, rank: usize) -> Result<usize, OpFailure> {
    norm_axis(axis, rank).map_err(|e| OpFailure::Internal(e.0))
}

/// A zero point as `i8`.
pub(crate) fn zero_point_i8(z: i32) -> Result<i8, OpFailure> {
    i8::try_from(z).map_err(|_| OpFailure::Internal(format!("zero point {z} is outside i8")))
}

/// The per-tensor quantization of an `i8` type.
pub(crate) fn per_tensor(ty: &TensorType, what: &str) -> Result<QuantParams, OpFailure> {
    match &ty.quant {
        Some(Quant::PerTensor { scale, zero_point }) => Ok(QuantParams {
            scale: *scale,
            zero_point: zero_point_i8(*zero_point)?,
        }),
        _ => Err(OpFailure::Internal(format!(
            "{what}: expected per-tensor quantization, found {ty}"
        ))),
    }
}

/// The scales and zero points of a weight quantized per tensor (one entry each) or per output
/// channel (axis 0).
pub(crate) fn weight_quant(ty: &TensorType) -> Result<(Vec<f32>, Vec<i8>), OpFailure> {
    match &ty.quant {
        Some(Quant::PerTensor { scale, zero_point }) => {
            Ok((vec![*scale], vec![zero_point_i8(*zero_point)?]))
        }
        Some(Quant::PerChannel {
            axis: 0,
            scales,
            zero_points,
        }) => Ok((
            scales.to_vec(),
            zero_points
                .iter()
                .map(|&z| zero_point_i8(z))
                .collect::<Result<_, _>>()?,
        )),
        _ => Err(OpFailure::Internal(format!(
            "weight: expected per-tensor or axis-0 quantization, found {ty}"
        ))),
    }
}
