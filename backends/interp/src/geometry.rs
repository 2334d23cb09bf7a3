//! Shape geometry shared by the float and int8 kernels.
//!
//! All tensors are dense, row-major, in NCHW layout (batch, channels, height, width). Padding
//! follows ONNX order: `[top, left, bottom, right]`.

pub use mite_kernels::geometry::Window2d;

/// Dimensions of a grouped 2-D convolution over a batch-`n` NCHW input.
///
/// The weight has shape `[c_out, c_in / groups, kh, kw]`; depthwise convolution is
/// `groups == c_in == c_out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height and width.
    pub in_hw: [usize; 2],
    /// Output channels.
    pub c_out: usize,
    /// Number of groups (`c_in` and `c_out` are both multiples of it).
    pub groups: usize,
    /// Kernel, stride, padding and dilation.
    pub window: Window2d,
}

impl Conv2dShape {
    /// Output spatial size, or `None` when the window does not fit.
    pub fn out_hw(&self) -> Option<[usize; 2]> {
        self.window.output_size(self.in_hw)
    }

    /// Input channels seen by one group.
    pub fn c_in_per_group(&self) -> usize {
        self.c_in / self.groups
    }

    /// Output channels produced by one group.
    pub fn c_out_per_group(&self) -> usize {
        self.c_out / self.groups
    }

    /// The output spatial size of a consistent shape, or the error every int8 convolution kernel
    /// reports for an inconsistent one.
    pub fn checked_out_hw(&self) -> Result<[usize; 2], crate::kernel_error::KernelError> {
        use crate::kernel_error::KernelError;
        if !self.is_valid() {
            return Err(KernelError::Invalid(format!(
                "inconsistent conv2d shape {self:?}"
            )));
        }
        self.out_hw()
            .ok_or_else(|| KernelError::Invalid("conv2d window does not fit".into()))
    }

    /// The checked kernel geometry of this shape.
    pub fn geometry(
        &self,
    ) -> Result<mite_kernels::Conv2dGeometry, crate::kernel_error::KernelError> {
        Ok(mite_kernels::Conv2dGeometry::new(
            self.n,
            self.c_in,
            self.in_hw,
            self.c_out,
            self.groups,
            self.window,
        )?)
    }

    /// Whether the dimensions are consistent (groups divide channels, the window fits).
    pub fn is_valid(&self) -> bool {
        self.groups > 0
            && self.c_in % self.groups == 0
            && self.c_out % self.groups == 0
            && self.out_hw().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_stride_two() {
        let w = Window2d {
            kernel: [3, 3],
            strides: [2, 2],
            pads: [1, 1, 1, 1],
            dilations: [1, 1],
        };
        assert_eq!(w.output_size([128, 128]), Some([64, 64]));
        assert_eq!(w.output_size([7, 7]), Some([4, 4]));
    }

    #[test]
    fn window_larger_than_input() {
        let w = Window2d {
            kernel: [5, 5],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        };
        assert_eq!(w.output_size([4, 4]), None);
    }
}
