//! The fused ops the `fuse` pass builds, executed as exactly the sequence they replace, so a
//! fused graph computes the same bits as the unfused one.
//!
//! - `grad.conv2d_input_masked(dy, w, mask)`: `grad.conv2d_input(dy, w)` followed by
//!   `grad.apply_mask(_, mask)`.

use std::borrow::Cow;

use crate::kernels;

use super::error::OpFailure;
use super::float_ops::OpResult;
use super::grad_ops;
use super::operands::Operands;
use super::value::{Data, ExecReal};

/// `grad.conv2d_input_masked`: the transposed convolution of `dy` (operand 0) with `w`
/// (operand 1), then zero wherever the mask (operand 2) is clear.
pub(crate) fn conv2d_input_masked<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    groups: i64,
    input_shape: &[i64],
) -> OpResult<T> {
    let dx = grad_ops::conv2d_input(x, strides, pads, dilations, groups, input_shape)?;
    let Data::Real(dx) = dx else {
        return Err(OpFailure::Internal(
            "the input gradient is not real-valued".to_string(),
        ));
    };
    let mask = match x.data(2)? {
        Data::I1(m) => m,
        other => {
            return Err(OpFailure::Internal(format!(
                "operand 2: expected i1 elements, found {}",
                other.elem()
            )))
        }
    };
    Ok(Data::Real(Cow::Owned(kernels::masked_backward(&dx, mask)?)))
}
