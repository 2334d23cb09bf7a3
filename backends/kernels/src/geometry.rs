//! Plain, `Copy` geometry of the windowed and matrix kernels, with checked constructors.
//!
//! All tensors are dense, row-major, NCHW (batch, channels, height, width). Padding follows ONNX
//! order: `[top, left, bottom, right]`.

use core::ops::Range;

use crate::error::{checked_product, KernelError};

/// The spatial parameters of a 2-D convolution or pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window2d {
    /// Window height and width (`kh`, `kw`).
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub strides: [usize; 2],
    /// Padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Vertical and horizontal dilation.
    pub dilations: [usize; 2],
}

impl Window2d {
    /// Output spatial size `[oh, ow]` for an input of spatial size `[h, w]`, or `None` when the
    /// window does not fit (or a kernel extent, stride or dilation is zero, or a size overflows).
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let mut out = [0; 2];
        for d in 0..2 {
            if self.strides[d] == 0 || self.dilations[d] == 0 || self.kernel[d] == 0 {
                return None;
            }
            let padded = input[d]
                .checked_add(self.pads[d])?
                .checked_add(self.pads[d + 2])?;
            let span = self.dilations[d]
                .checked_mul(self.kernel[d] - 1)?
                .checked_add(1)?;
            if padded < span {
                return None;
            }
            out[d] = (padded - span) / self.strides[d] + 1;
        }
        Some(out)
    }

    /// The two validated axes (height, width) of this window over an input of size `in_hw`.
    pub fn axes(&self, in_hw: [usize; 2]) -> Result<[WindowAxis; 2], KernelError> {
        let out = self.output_size(in_hw).ok_or(KernelError::Geometry(
            "the window does not fit the padded input",
        ))?;
        Ok([0, 1].map(|d| WindowAxis {
            in_len: in_hw[d],
            out_len: out[d],
            kernel: self.kernel[d],
            stride: self.strides[d],
            dilation: self.dilations[d],
            pad_begin: self.pads[d],
        }))
    }

    /// Whether the window is 1×1 with unit stride and no padding (a pointwise map).
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.strides == [1, 1] && self.pads == [0; 4]
    }
}

/// One spatial axis of a window whose output size has been checked, so that no index computation
/// overflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WindowAxis {
    /// Input extent.
    pub in_len: usize,
    /// Output extent.
    pub out_len: usize,
    /// Number of taps.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Padding before the first input element.
    pub pad_begin: usize,
}

impl WindowAxis {
    /// Outputs `o` for which tap `k` reads a real input element (not padding).
    pub fn valid_outputs(&self, k: usize) -> Range<usize> {
        let offset = k * self.dilation;
        let lo = if offset >= self.pad_begin {
            0
        } else {
            (self.pad_begin - offset).div_ceil(self.stride)
        };
        let limit = self.in_len + self.pad_begin;
        let hi = if offset >= limit {
            0
        } else {
            (limit - offset).div_ceil(self.stride).min(self.out_len)
        };
        lo.min(hi)..hi
    }

    /// The input index read by tap `k` at output `o` (for `o` in `valid_outputs(k)`).
    pub fn input_index(&self, o: usize, k: usize) -> usize {
        o * self.stride + k * self.dilation - self.pad_begin
    }

    /// Taps `k` of output `o` that read a real input element.
    pub fn valid_taps(&self, o: usize) -> Range<usize> {
        let base = o * self.stride;
        let lo = if base >= self.pad_begin {
            0
        } else {
            (self.pad_begin - base).div_ceil(self.dilation)
        };
        let limit = self.in_len + self.pad_begin;
        let hi = if base >= limit {
            0
        } else {
            (limit - base).div_ceil(self.dilation).min(self.kernel)
        };
        lo.min(hi)..hi
    }
}

/// A grouped 2-D convolution over a batch-`n` NCHW input, validated: groups divide the channels,
/// the window fits, and every buffer size fits in `usize`.
///
/// The weight has shape `[c_out, c_in / groups, kh, kw]`; depthwise is `groups == c_in == c_out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    n: usize,
    c_in: usize,
    in_hw: [usize; 2],
    c_out: usize,
    groups: usize,
    window: Window2d,
    out_hw: [usize; 2],
}

impl Conv2dGeometry {
    /// Checks and builds the geometry.
    pub fn new(
        n: usize,
        c_in: usize,
        in_hw: [usize; 2],
        c_out: usize,
        groups: usize,
        window: Window2d,
    ) -> Result<Self, KernelError> {
        if groups == 0 || c_in % groups != 0 || c_out % groups != 0 {
            return Err(KernelError::Geometry(
                "conv2d groups must be positive and divide c_in and c_out",
            ));
        }
        let out_hw = window.output_size(in_hw).ok_or(KernelError::Geometry(
            "conv2d window does not fit the input",
        ))?;
        let g = Self {
            n,
            c_in,
            in_hw,
            c_out,
            groups,
            window,
            out_hw,
        };
        checked_product(&[n, c_in, in_hw[0], in_hw[1]])?;
        checked_product(&[n, c_out, out_hw[0], out_hw[1]])?;
        checked_product(&[c_out, c_in / groups, window.kernel[0], window.kernel[1]])?;
        Ok(g)
    }

    /// Batch size.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Input channels.
    pub fn c_in(&self) -> usize {
        self.c_in
    }
    /// Output channels.
    pub fn c_out(&self) -> usize {
        self.c_out
    }
    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// Input height and width.
    pub fn in_hw(&self) -> [usize; 2] {
        self.in_hw
    }
    /// Output height and width.
    pub fn out_hw(&self) -> [usize; 2] {
        self.out_hw
    }
    /// The window.
    pub fn window(&self) -> Window2d {
        self.window
    }
    /// Input channels per group.
    pub fn c_in_per_group(&self) -> usize {
        self.c_in / self.groups
    }
    /// Output channels per group.
    pub fn c_out_per_group(&self) -> usize {
        self.c_out / self.groups
    }
    /// Whether this is a depthwise convolution (one input and one output channel per group).
    pub fn is_depthwise(&self) -> bool {
        self.c_in_per_group() == 1 && self.c_out_per_group() == 1
    }
    /// Whether this is a dense 1×1 convolution with unit stride and no padding.
    pub fn is_pointwise(&self) -> bool {
        self.groups == 1 && self.window.is_pointwise()
    }
    /// Elements of the input `[n, c_in, h, w]`.
    pub fn input_len(&self) -> usize {
        self.n * self.c_in * self.in_hw[0] * self.in_hw[1]
    }
    /// Elements of the output `[n, c_out, oh, ow]`.
    pub fn output_len(&self) -> usize {
        self.n * self.c_out * self.out_hw[0] * self.out_hw[1]
    }
    /// Elements of the weight `[c_out, c_in / groups, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        self.c_out * self.c_in_per_group() * self.window.kernel[0] * self.window.kernel[1]
    }
    /// Elements of one input plane.
    pub fn in_plane(&self) -> usize {
        self.in_hw[0] * self.in_hw[1]
    }
    /// Elements of one output plane.
    pub fn out_plane(&self) -> usize {
        self.out_hw[0] * self.out_hw[1]
    }
    /// The two window axes (height, width).
    pub fn axes(&self) -> [WindowAxis; 2] {
        [0, 1].map(|d| WindowAxis {
            in_len: self.in_hw[d],
            out_len: self.out_hw[d],
            kernel: self.window.kernel[d],
            stride: self.window.strides[d],
            dilation: self.window.dilations[d],
            pad_begin: self.window.pads[d],
        })
    }
}

/// A fully connected layer `[batch, in_features] × [out_features, in_features]ᵀ`, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinearGeometry {
    batch: usize,
    in_features: usize,
    out_features: usize,
}

impl LinearGeometry {
    /// Checks (no buffer size overflows) and builds the geometry.
    pub fn new(batch: usize, in_features: usize, out_features: usize) -> Result<Self, KernelError> {
        checked_product(&[batch, in_features])?;
        checked_product(&[batch, out_features])?;
        checked_product(&[out_features, in_features])?;
        Ok(Self {
            batch,
            in_features,
            out_features,
        })
    }
    /// Batch size `N`.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Input features `K`.
    pub fn in_features(&self) -> usize {
        self.in_features
    }
    /// Output features `M`.
    pub fn out_features(&self) -> usize {
        self.out_features
    }
}

/// Calls `row(oy, iy, ox_range, ix_start, tap)` for every kernel tap and every output row where
/// the tap reads real input, `ix_start` being the input column read at `ox_range.start`
/// (consecutive outputs read columns `stride_w` apart).
#[inline]
pub(crate) fn for_each_tap_row(
    axes: &[WindowAxis; 2],
    mut row: impl FnMut(usize, usize, Range<usize>, usize, usize),
) {
    let [ay, ax] = axes;
    for ki in 0..ay.kernel {
        let oys = ay.valid_outputs(ki);
        for kj in 0..ax.kernel {
            let oxs = ax.valid_outputs(kj);
            if oxs.is_empty() {
                continue;
            }
            let ix0 = ax.input_index(oxs.start, kj);
            for oy in oys.clone() {
                row(
                    oy,
                    ay.input_index(oy, ki),
                    oxs.clone(),
                    ix0,
                    ki * ax.kernel + kj,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_geometry_checks() {
        let w = Window2d {
            kernel: [3, 3],
            strides: [2, 2],
            pads: [1; 4],
            dilations: [1, 1],
        };
        let g = Conv2dGeometry::new(1, 8, [7, 7], 8, 8, w).unwrap();
        assert_eq!(g.out_hw(), [4, 4]);
        assert!(g.is_depthwise());
        assert!(Conv2dGeometry::new(1, 8, [7, 7], 6, 4, w).is_err());
        assert!(Conv2dGeometry::new(1, 8, [0, 0], 8, 8, Window2d { pads: [0; 4], ..w }).is_err());
        assert!(Conv2dGeometry::new(usize::MAX, 8, [7, 7], 8, 1, w).is_err());
    }
}
