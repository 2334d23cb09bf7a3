//! Checked window arithmetic shared by convolution and pooling.

use crate::geometry::Window2d;
use crate::kernel_error::KernelError;

pub(crate) use mite_kernels::geometry::WindowAxis;

/// Validates `window` against an input of spatial size `in_hw` and returns its two axes
/// (height, width). Every quantity the kernels compute from them fits in `usize`.
pub(crate) fn window_axes(
    window: &Window2d,
    in_hw: [usize; 2],
) -> Result<[WindowAxis; 2], KernelError> {
    let invalid =
        |why: &str| KernelError::Invalid(format!("window {window:?} on {in_hw:?}: {why}"));
    let mut axes = [WindowAxis {
        in_len: 0,
        out_len: 0,
        kernel: 0,
        stride: 0,
        dilation: 0,
        pad_begin: 0,
    }; 2];
    for (d, axis) in axes.iter_mut().enumerate() {
        let (kernel, stride, dilation) = (window.kernel[d], window.strides[d], window.dilations[d]);
        if kernel == 0 || stride == 0 || dilation == 0 {
            return Err(invalid("kernel, strides and dilations must be positive"));
        }
        let padded = in_hw[d]
            .checked_add(window.pads[d])
            .and_then(|p| p.checked_add(window.pads[d + 2]))
            .ok_or_else(|| invalid("padded size overflows"))?;
        let span = dilation
            .checked_mul(kernel - 1)
            .and_then(|s| s.checked_add(1))
            .ok_or_else(|| invalid("dilated kernel size overflows"))?;
        if padded < span {
            return Err(invalid("the window does not fit in the padded input"));
        }
        // The largest position read is (out_len - 1) * stride + span - 1 <= padded - 1, and
        // `padded` is a valid usize, so no index arithmetic below can overflow.
        *axis = WindowAxis {
            in_len: in_hw[d],
            out_len: (padded - span) / stride + 1,
            kernel,
            stride,
            dilation,
            pad_begin: window.pads[d],
        };
    }
    Ok(axes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(axis: &WindowAxis, k: usize) -> Vec<usize> {
        (0..axis.out_len)
            .filter(|&o| {
                let pos = o * axis.stride + k * axis.dilation;
                pos >= axis.pad_begin && pos - axis.pad_begin < axis.in_len
            })
            .collect()
    }

    #[test]
    fn valid_outputs_match_brute_force() {
        for in_len in 1..7 {
            for kernel in 1..4 {
                for stride in 1..4 {
                    for dilation in 1..3 {
                        for pb in 0..3 {
                            for pe in 0..3 {
                                let w = Window2d {
                                    kernel: [kernel, 1],
                                    strides: [stride, 1],
                                    pads: [pb, 0, pe, 0],
                                    dilations: [dilation, 1],
                                };
                                let Ok([axis, _]) = window_axes(&w, [in_len, 1]) else {
                                    continue;
                                };
                                assert_eq!(w.output_size([in_len, 1]).unwrap()[0], axis.out_len);
                                for k in 0..kernel {
                                    let got: Vec<usize> = axis.valid_outputs(k).collect();
                                    assert_eq!(got, brute(&axis, k), "{w:?} in {in_len} k {k}");
                                    for o in axis.valid_outputs(k) {
                                        assert!(axis.input_index(o, k) < in_len);
                                    }
                                }
                                for o in 0..axis.out_len {
                                    let got: Vec<usize> = axis.valid_taps(o).collect();
                                    let want: Vec<usize> = (0..kernel)
                                        .filter(|&k| brute(&axis, k).contains(&o))
                                        .collect();
                                    assert_eq!(got, want, "{w:?} in {in_len} o {o}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_bad_windows() {
        let mut w = Window2d {
            kernel: [3, 3],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        };
        assert!(window_axes(&w, [2, 5]).is_err());
        w.strides = [0, 1];
        assert!(window_axes(&w, [5, 5]).is_err());
        w.strides = [1, 1];
        w.pads = [usize::MAX, 0, 1, 0];
        assert!(window_axes(&w, [5, 5]).is_err());
        w.pads = [0; 4];
        w.dilations = [usize::MAX, 1];
        assert!(window_axes(&w, [5, 5]).is_err());
    }
}
