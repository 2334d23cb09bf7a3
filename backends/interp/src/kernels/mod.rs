//! Float reference kernels, forward and backward, over dense row-major (NCHW) slices.
//!
//! Every kernel is generic over the scalar type [`Real`]: the interpreter runs them in `f32`, the
//! gradient checks in `f64`. Sums accumulate in `T` itself (no wider accumulator), in a fixed
//! order, so results are deterministic.
//!
//! Conventions shared by all kernels:
//! - shapes are passed explicitly; every buffer length is checked against its shape, and every
//!   parameter is validated, so inconsistent input returns a [`KernelError`](crate::kernel_error::KernelError) instead of
//!   panicking;
//! - kernels return freshly allocated outputs (`Result<Vec<T>, KernelError>`), or the scalar
//!   itself for losses;
//! - backward kernels are named `<op>_backward[_<operand>]` and return the gradient with respect
//!   to that operand (vector-Jacobian products); loss gradients take the incoming scalar
//!   gradient `grad_loss`.
//!
//! Families: [`conv`] (grouped and depthwise 2-D convolution), [`linear`](mod@linear) (fully connected and
//! matmul), [`elementwise`] (broadcasting add and mul, relu, clip), [`pool`] (average, global
//! average, max), [`layout`] (concat, transpose, pad), [`softmax`](mod@softmax) and [`loss`] (softmax
//! cross-entropy, mean-squared error).

pub mod conv;
pub mod elementwise;
pub mod layout;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod real;
pub mod shape;
pub mod softmax;
mod window;

#[cfg(test)]
mod testutil;

pub use conv::{conv2d, conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight};
pub use elementwise::{
    add, add_backward, clip, clip_mask, masked_backward, mul, mul_backward, reduce_to_shape, relu,
    relu_mask,
};
pub use layout::{
    concat, concat_backward, concat_output_shape, pad, pad_backward, pad_output_shape, transpose,
    transpose_backward,
};
pub use linear::{
    linear, linear_backward_bias, linear_backward_input, linear_backward_weight, matmul,
    matmul_backward_lhs, matmul_backward_rhs, matmul_output_shape, LinearShape,
};
pub use loss::{mse, mse_backward, softmax_cross_entropy, softmax_cross_entropy_backward};
pub use pool::{
    avg_pool, avg_pool_backward, global_avg_pool, global_avg_pool_backward, max_pool,
    max_pool_backward,
};
pub use real::Real;
pub use shape::{broadcast_shape, numel};
pub use softmax::{log_softmax, log_softmax_backward, softmax, softmax_backward};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Conv2dShape, Window2d};

    /// Degenerate shapes (a zero extent next to a huge one) return promptly, without panicking
    /// or looping over the huge extent.
    #[test]
    fn empty_tensors_with_huge_extents() {
        let huge = 1usize << 60;
        let none: [f32; 0] = [];
        assert!(softmax(&none, &[0, huge], 1).unwrap().is_empty());
        assert!(log_softmax(&none, &[huge, 0], 1).unwrap().is_empty());
        assert!(softmax_backward(&none, &none, &[huge, 0, 3], 2)
            .unwrap()
            .is_empty());
        assert!(concat(&[(&none[..], &[huge, 0][..])], 1)
            .unwrap()
            .is_empty());
        assert!(concat_backward(&none, &[&[huge, 0]], 1).unwrap()[0].is_empty());
        let mm = [huge, 0, 0];
        assert!(matmul(&none, &mm, &none, &mm).unwrap().is_empty());
        assert!(matmul_backward_lhs(&none, &none, &mm, &mm)
            .unwrap()
            .is_empty());
        assert!(matmul_backward_rhs(&none, &none, &mm, &mm)
            .unwrap()
            .is_empty());
        assert!(add(&none, &[huge, 0], &none, &[0]).unwrap().is_empty());
        assert!(reduce_to_shape(&none, &[huge, 0], &[1, 0])
            .unwrap()
            .is_empty());
        assert!(transpose(&none, &[huge, 0], &[1, 0]).unwrap().is_empty());
        assert!(pad(&none, &[huge, 0], &[[0, 0], [0, 0]], 0.0)
            .unwrap()
            .is_empty());

        let window = Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [1; 4],
            dilations: [1, 1],
        };
        let conv = Conv2dShape {
            n: huge,
            c_in: 0,
            in_hw: [0, 0],
            c_out: 0,
            groups: 1,
            window,
        };
        assert!(conv2d(&conv, &none, &none, None).unwrap().is_empty());
        assert!(conv2d_backward_input(&conv, &none, &none)
            .unwrap()
            .is_empty());
        assert!(conv2d_backward_weight(&conv, &none, &none)
            .unwrap()
            .is_empty());
        assert!(conv2d_backward_bias(&conv, &none).unwrap().is_empty());
        // A huge output that cannot be allocated is an error, not an abort.
        assert!(avg_pool(&none, [huge, 1, 0, 0], &window, true).is_err());
        assert!(max_pool(&none, [huge, 0, 0, 0], &window)
            .unwrap()
            .is_empty());
    }
}
