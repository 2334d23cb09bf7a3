//! int8 forward kernels (TFLite / CMSIS-NN reference semantics, NCHW layout).
//!
//! Tensors are int8 with `real = s · (q − z)`; a convolution or linear layer accumulates
//! `Σ (x − z_x)·(w − z_w) + b` in `i32` (products wrap, as the reference's) and maps it to the
//! output with an [`OutputStage`](crate::OutputStage).

pub mod add;
pub mod bottleneck;
pub mod bottleneck_chain;
pub mod conv;
mod conv_fast;
pub mod linear;
pub mod pool;
pub mod quantize;

pub use add::{add_int8, AddParams, ADD_LEFT_SHIFT};
pub use bottleneck::{
    bottleneck_int8, bottleneck_int8_scratch_len, BottleneckInt8Params, BottleneckWeights,
};
pub use bottleneck_chain::{
    bottleneck_chain_in_place_extra_scratch, bottleneck_chain_int8, bottleneck_chain_int8_in_place,
    bottleneck_chain_int8_in_place_delay, bottleneck_chain_int8_in_place_scratch_len,
    bottleneck_chain_int8_scratch_len, BottleneckChainInt8Params, ChainGeometry,
};
pub use conv::{conv2d_int8, conv2d_int8_scratch_len, BiasAdd, Conv2dInt8Params};
pub use linear::{linear_int8, LinearInt8Params};
pub use pool::{avg_pool_int8, global_avg_pool_int8, mean_int8, MeanParams};
pub use quantize::{dequantize, quantize, requantize, PerAxis};

/// A per-tensor (1 entry), per-channel (`channels` entries) or absent (0 entries: all zero)
/// weight zero point list, checked.
pub(crate) fn check_zero_points(
    zero_points: &[i8],
    channels: usize,
) -> Result<(), crate::KernelError> {
    if zero_points.is_empty() || zero_points.len() == 1 || zero_points.len() == channels {
        Ok(())
    } else {
        Err(crate::KernelError::Length {
            what: "weight zero points",
            expected: channels,
            found: zero_points.len(),
        })
    }
}

/// The zero point of channel `c` in a list checked by [`check_zero_points`].
#[inline]
pub(crate) fn zero_point_of(zero_points: &[i8], c: usize) -> i32 {
    match zero_points.len() {
        0 => 0,
        1 => i32::from(zero_points[0]),
        _ => i32::from(zero_points[c]),
    }
}
