//! Grouped 2-D convolution (including depthwise) and its gradients: allocating wrappers of the
//! `mite-kernels` float kernels.
//!
//! Layouts: input `[n, c_in, h, w]`, weight `[c_out, c_in / groups, kh, kw]`, bias `[c_out]`,
//! output `[n, c_out, oh, ow]`, all row-major. Padding is implicit zeros.

use mite_kernels::float as k;

use crate::geometry::Conv2dShape;
use crate::kernel_error::KernelError;

use super::real::Real;
use super::shape::filled;

/// Forward convolution: `y = conv(x, w) + b`.
///
/// `input` is `[n, c_in, h, w]`, `weight` `[c_out, c_in / groups, kh, kw]`, `bias` (optional)
/// `[c_out]`; the result is `[n, c_out, oh, ow]` with `[oh, ow] = shape.out_hw()`. Accumulates in
/// `T`, starting from the bias.
pub fn conv2d<T: Real>(
    shape: &Conv2dShape,
    input: &[T],
    weight: &[T],
    bias: Option<&[T]>,
) -> Result<Vec<T>, KernelError> {
    let g = shape.geometry()?;
    let mut out = filled(g.output_len(), T::zero())?;
    k::conv2d(input, weight, bias, &mut out, &g)?;
    Ok(out)
}

/// Gradient of [`conv2d`] with respect to its input (a transposed convolution).
///
/// `grad_output` is `[n, c_out, oh, ow]`, `weight` `[c_out, c_in / groups, kh, kw]`; the result is
/// `[n, c_in, h, w]`. Input positions no window reaches get a zero gradient.
pub fn conv2d_backward_input<T: Real>(
    shape: &Conv2dShape,
    grad_output: &[T],
    weight: &[T],
) -> Result<Vec<T>, KernelError> {
    let g = shape.geometry()?;
    let mut out = filled(g.input_len(), T::zero())?;
    k::conv2d_backward_input(grad_output, weight, &mut out, &g)?;
    Ok(out)
}

/// Gradient of [`conv2d`] with respect to its weight.
///
/// `input` is `[n, c_in, h, w]`, `grad_output` `[n, c_out, oh, ow]`; the result is
/// `[c_out, c_in / groups, kh, kw]`, summed over the batch.
pub fn conv2d_backward_weight<T: Real>(
    shape: &Conv2dShape,
    input: &[T],
    grad_output: &[T],
) -> Result<Vec<T>, KernelError> {
    let g = shape.geometry()?;
    let mut out = filled(g.weight_len(), T::zero())?;
    k::conv2d_backward_weight(input, grad_output, &mut out, &g)?;
    Ok(out)
}

/// Gradient of [`conv2d`] with respect to its bias: `grad_output` (`[n, c_out, oh, ow]`) summed
/// over batch and space, giving `[c_out]`.
pub fn conv2d_backward_bias<T: Real>(
    shape: &Conv2dShape,
    grad_output: &[T],
) -> Result<Vec<T>, KernelError> {
    let g = shape.geometry()?;
    let mut out = filled(g.c_out(), T::zero())?;
    k::conv2d_backward_bias(grad_output, &mut out, &g)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Window2d;
    use crate::kernels::testutil::{assert_close, check_vjp, Rng};
    use proptest::prelude::*;

    fn window(kernel: usize, stride: usize, pad: usize, dilation: usize) -> Window2d {
        Window2d {
            kernel: [kernel; 2],
            strides: [stride; 2],
            pads: [pad; 4],
            dilations: [dilation; 2],
        }
    }

    fn single(in_hw: [usize; 2], window: Window2d) -> Conv2dShape {
        Conv2dShape {
            n: 1,
            c_in: 1,
            in_hw,
            c_out: 1,
            groups: 1,
            window,
        }
    }

    /// The definition, with signed index arithmetic and no hoisting.
    fn naive(s: &Conv2dShape, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let [oh, ow] = s.out_hw().unwrap();
        let [h, wd] = s.in_hw;
        let [kh, kw] = s.window.kernel;
        let (cin_g, cout_g) = (s.c_in_per_group(), s.c_out_per_group());
        let mut y = vec![0.0; s.n * s.c_out * oh * ow];
        for n in 0..s.n {
            for oc in 0..s.c_out {
                let g = oc / cout_g;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b.map_or(0.0, |b| b[oc]);
                        for icg in 0..cin_g {
                            let ic = g * cin_g + icg;
                            for ki in 0..kh {
                                for kj in 0..kw {
                                    let iy = (oy * s.window.strides[0] + ki * s.window.dilations[0])
                                        as isize
                                        - s.window.pads[0] as isize;
                                    let ix = (ox * s.window.strides[1] + kj * s.window.dilations[1])
                                        as isize
                                        - s.window.pads[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi =
                                        ((n * s.c_in + ic) * h + iy as usize) * wd + ix as usize;
                                    let wi = ((oc * cin_g + icg) * kh + ki) * kw + kj;
                                    acc += x[xi] * w[wi];
                                }
                            }
                        }
                        y[((n * s.c_out + oc) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        y
    }

    fn lens(s: &Conv2dShape) -> (usize, usize, usize) {
        let [oh, ow] = s.out_hw().unwrap();
        let [kh, kw] = s.window.kernel;
        (
            s.n * s.c_in * s.in_hw[0] * s.in_hw[1],
            s.c_out * s.c_in_per_group() * kh * kw,
            s.n * s.c_out * oh * ow,
        )
    }

    #[test]
    fn hand_computed_valid_conv_with_bias() {
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let s = single([3, 3], window(2, 1, 0, 1));
        let y = conv2d(&s, &x, &[1.0; 4], None).unwrap();
        assert_eq!(y, vec![12.0, 16.0, 24.0, 28.0]);
        let y = conv2d(&s, &x, &[1.0; 4], Some(&[0.5])).unwrap();
        assert_eq!(y, vec![12.5, 16.5, 24.5, 28.5]);
    }

    #[test]
    fn hand_computed_padded_stride_two() {
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let s = single([3, 3], window(3, 2, 1, 1));
        let y = conv2d(&s, &x, &[1.0; 9], None).unwrap();
        // Each output sees the 2x2 corner block of the input around it.
        assert_eq!(y, vec![12.0, 16.0, 24.0, 28.0]);
    }

    #[test]
    fn hand_computed_dilation() {
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let s = single([3, 3], window(2, 1, 0, 2));
        let y = conv2d(&s, &x, &[1.0, 2.0, 3.0, 4.0], None).unwrap();
        assert_eq!(y, vec![1.0 + 3.0 * 2.0 + 7.0 * 3.0 + 9.0 * 4.0]);
    }

    #[test]
    fn hand_computed_input_gradient() {
        // 1x1 input 2x2, 2x2 kernel, pad 1: the output is 3x3 and every input element is read by
        // four outputs, once with each weight.
        let s = single([2, 2], window(2, 1, 1, 1));
        let dx = conv2d_backward_input(&s, &[1.0f32; 9], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(dx, vec![10.0; 4]);
        let dw = conv2d_backward_weight(&s, &[1.0f32, 2.0, 3.0, 4.0], &[1.0; 9]).unwrap();
        assert_eq!(dw, vec![10.0; 4]);
        let db = conv2d_backward_bias(&s, &[1.0f32; 9]).unwrap();
        assert_eq!(db, vec![9.0]);
    }

    #[test]
    fn grouped_pointwise() {
        let s = Conv2dShape {
            n: 1,
            c_in: 4,
            in_hw: [1, 1],
            c_out: 2,
            groups: 2,
            window: window(1, 1, 0, 1),
        };
        let y = conv2d(
            &s,
            &[1.0f32, 2.0, 3.0, 4.0],
            &[1.0, 10.0, 100.0, 1000.0],
            None,
        )
        .unwrap();
        assert_eq!(y, vec![21.0, 4300.0]);
    }

    #[test]
    fn rejects_inconsistent_input() {
        let s = single([3, 3], window(2, 1, 0, 1));
        assert!(matches!(
            conv2d(&s, &[0.0f32; 8], &[0.0; 4], None),
            Err(KernelError::Length { .. })
        ));
        assert!(conv2d(&s, &[0.0f32; 9], &[0.0; 3], None).is_err());
        assert!(conv2d(&s, &[0.0f32; 9], &[0.0; 4], Some(&[0.0, 0.0])).is_err());
        assert!(conv2d_backward_input(&s, &[0.0f32; 3], &[0.0; 4]).is_err());
        assert!(conv2d_backward_weight(&s, &[0.0f32; 9], &[0.0; 5]).is_err());
        assert!(conv2d_backward_bias(&s, &[0.0f32; 5]).is_err());
        let mut bad = s;
        bad.groups = 0;
        assert!(conv2d(&bad, &[0.0f32; 9], &[0.0; 4], None).is_err());
        bad = s;
        bad.c_out = 3;
        bad.groups = 2;
        assert!(conv2d(&bad, &[0.0f32; 9], &[0.0; 4], None).is_err());
        bad = single([1, 1], window(3, 1, 0, 1));
        assert!(conv2d(&bad, &[0.0f32; 1], &[0.0; 9], None).is_err());
        bad = single([3, 3], window(2, 0, 0, 1));
        assert!(conv2d(&bad, &[0.0f32; 9], &[0.0; 4], None).is_err());
        bad = single([3, 3], window(2, 1, usize::MAX / 2, 1));
        assert!(conv2d(&bad, &[0.0f32; 9], &[0.0; 4], None).is_err());
    }

    fn conv_shape() -> impl Strategy<Value = Conv2dShape> {
        (
            (1usize..=2, 1usize..=3, 1usize..=2, 1usize..=2),
            (1usize..=6, 1usize..=6, 1usize..=3, 1usize..=3),
            (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=2),
            prop::array::uniform4(0usize..=2),
        )
            .prop_map(
                |((n, groups, cin_g, cout_g), (h, w, kh, kw), (sh, sw, dh, dw), pads)| {
                    Conv2dShape {
                        n,
                        c_in: groups * cin_g,
                        in_hw: [h, w],
                        c_out: groups * cout_g,
                        groups,
                        window: Window2d {
                            kernel: [kh, kw],
                            strides: [sh, sw],
                            pads,
                            dilations: [dh, dw],
                        },
                    }
                },
            )
            .prop_filter("window must fit", |s| s.is_valid())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn matches_the_definition(s in conv_shape(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let (xl, wl, _) = lens(&s);
            let (x, w, b) = (rng.vec(xl), rng.vec(wl), rng.vec(s.c_out));
            let got = conv2d(&s, &x, &w, Some(&b)).unwrap();
            assert_close(&got, &naive(&s, &x, &w, Some(&b)), 1e-12);
            let got = conv2d(&s, &x, &w, None).unwrap();
            assert_close(&got, &naive(&s, &x, &w, None), 1e-12);
        }

        #[test]
        fn input_gradient(s in conv_shape(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let (xl, wl, yl) = lens(&s);
            let (x, w, dy) = (rng.vec(xl), rng.vec(wl), rng.vec(yl));
            let dx = conv2d_backward_input(&s, &dy, &w).unwrap();
            let f = |x: &[f64]| conv2d(&s, x, &w, None).unwrap();
            check_vjp(f, &x, &dy, &dx, &mut rng).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn weight_gradient(s in conv_shape(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let (xl, wl, yl) = lens(&s);
            let (x, w, dy) = (rng.vec(xl), rng.vec(wl), rng.vec(yl));
            let dw = conv2d_backward_weight(&s, &x, &dy).unwrap();
            let f = |w: &[f64]| conv2d(&s, &x, w, None).unwrap();
            check_vjp(f, &w, &dy, &dw, &mut rng).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn bias_gradient(s in conv_shape(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let (xl, wl, yl) = lens(&s);
            let (x, w, b, dy) = (rng.vec(xl), rng.vec(wl), rng.vec(s.c_out), rng.vec(yl));
            let db = conv2d_backward_bias(&s, &dy).unwrap();
            let f = |b: &[f64]| conv2d(&s, &x, &w, Some(b)).unwrap();
            check_vjp(f, &b, &dy, &db, &mut rng).map_err(TestCaseError::fail)?;
        }

        /// Depthwise convolution (groups == channels) equals one single-channel convolution per
        /// channel.
        #[test]
        fn depthwise_is_per_channel(
            c in 1usize..=4,
            hw in 1usize..=7,
            k in prop::sample::select(vec![1usize, 3, 5]),
            stride in 1usize..=2,
            dilation in 1usize..=2,
            seed in any::<u64>(),
        ) {
            let win = window(k, stride, (k - 1) / 2 * dilation, dilation);
            let dw = Conv2dShape { n: 1, c_in: c, in_hw: [hw, hw], c_out: c, groups: c, window: win };
            prop_assume!(dw.is_valid());
            let mut rng = Rng::new(seed);
            let (x, w, b) = (rng.vec(c * hw * hw), rng.vec(c * k * k), rng.vec(c));
            let y = conv2d(&dw, &x, &w, Some(&b)).unwrap();
            let per = single([hw, hw], win);
            let plane = y.len() / c;
            for ch in 0..c {
                let x_c = &x[ch * hw * hw..(ch + 1) * hw * hw];
                let w_c = &w[ch * k * k..(ch + 1) * k * k];
                let y_c = conv2d(&per, x_c, w_c, Some(&b[ch..ch + 1])).unwrap();
                prop_assert_eq!(&y[ch * plane..(ch + 1) * plane], &y_c[..]);
            }
        }
    }

    /// Times a MobileNetV2-w0.35-shaped forward pass at 128x128 (run with
    /// `cargo test --release -p mite-interp mobilenet -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn mobilenet_class_forward_is_fast() {
        // (expand, out channels, repeats, first stride)
        let blocks = [
            (6, 16, 3, 2),
            (6, 24, 4, 2),
            (6, 32, 3, 2),
            (6, 56, 3, 1),
            (6, 112, 1, 2),
        ];
        let mut rng = Rng::new(1);
        let mut convs: Vec<(Conv2dShape, Vec<f32>)> = Vec::new();
        let mut push = |c_in: usize, hw: usize, c_out: usize, k: usize, s: usize, groups: usize| {
            let shape = Conv2dShape {
                n: 1,
                c_in,
                in_hw: [hw, hw],
                c_out,
                groups,
                window: window(k, s, (k - 1) / 2, 1),
            };
            let w_len = c_out * (c_in / groups) * k * k;
            let w: Vec<f32> = rng.vec(w_len).iter().map(|&v| v as f32 * 0.1).collect();
            convs.push((shape, w));
            shape.out_hw().unwrap()[0]
        };
        let mut hw = push(3, 128, 16, 3, 2, 1);
        hw = push(16, hw, 16, 3, 1, 16);
        hw = push(16, hw, 8, 1, 1, 1);
        let mut c = 8;
        for (t, c_out, n, s) in blocks {
            for i in 0..n {
                let e = c * t;
                hw = push(c, hw, e, 1, 1, 1);
                hw = push(e, hw, e, 3, if i == 0 { s } else { 1 }, e);
                hw = push(e, hw, c_out, 1, 1, 1);
                c = c_out;
            }
        }
        let x: Vec<f32> = vec![0.5; 3 * 128 * 128];
        let start = std::time::Instant::now();
        let mut act = x;
        for (shape, w) in &convs {
            act = conv2d(shape, &act, w, None).unwrap();
        }
        let elapsed = start.elapsed();
        println!(
            "{} convs, final {} elements, {elapsed:?}",
            convs.len(),
            act.len()
        );
        assert_eq!(act.len(), 112 * 4 * 4);
        assert!(elapsed.as_secs_f64() < 1.0);
    }

    /// The float convolution kernels before they moved to `mite-kernels`, kept as a
    /// differential oracle (the new kernels must give the same bits).
    #[allow(dead_code)]
    mod legacy {
        use crate::geometry::Conv2dShape;
        use crate::kernel_error::{check_len, KernelError};
        use crate::kernels::real::Real;
        use crate::kernels::shape::{filled, numel};
        use crate::kernels::window::{window_axes, WindowAxis};

        /// Validated sizes of a convolution.
        struct ConvDims {
            n: usize,
            c_in: usize,
            c_out: usize,
            cin_g: usize,
            cout_g: usize,
            groups: usize,
            axes: [WindowAxis; 2],
            input_len: usize,
            weight_len: usize,
            output_len: usize,
        }

        impl ConvDims {
            fn new(shape: &Conv2dShape) -> Result<Self, KernelError> {
                let groups = shape.groups;
                if groups == 0 || shape.c_in % groups != 0 || shape.c_out % groups != 0 {
                    return Err(KernelError::Invalid(format!(
                        "conv2d: groups {groups} must be positive and divide c_in {} and c_out {}",
                        shape.c_in, shape.c_out
                    )));
                }
                let axes = window_axes(&shape.window, shape.in_hw)?;
                let [kh, kw] = shape.window.kernel;
                let cin_g = shape.c_in / groups;
                Ok(ConvDims {
                    n: shape.n,
                    c_in: shape.c_in,
                    c_out: shape.c_out,
                    cin_g,
                    cout_g: shape.c_out / groups,
                    groups,
                    axes,
                    input_len: numel(&[shape.n, shape.c_in, shape.in_hw[0], shape.in_hw[1]])?,
                    weight_len: numel(&[shape.c_out, cin_g, kh, kw])?,
                    output_len: numel(&[shape.n, shape.c_out, axes[0].out_len, axes[1].out_len])?,
                })
            }

            fn in_plane(&self) -> usize {
                self.axes[0].in_len * self.axes[1].in_len
            }

            fn out_plane(&self) -> usize {
                self.axes[0].out_len * self.axes[1].out_len
            }

            fn taps(&self) -> usize {
                self.axes[0].kernel * self.axes[1].kernel
            }

            /// Calls `f(batch, out_channel, in_channel, weight_index)` for every (batch, output channel,
            /// input channel) triple that connects an input element to an output element. Nothing is
            /// called when the input or the output is empty, so the loop count is bounded by buffers the
            /// caller has already checked or allocated.
            fn for_each_channel_pair(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
                if self.input_len == 0 || self.output_len == 0 {
                    return;
                }
                for b in 0..self.n {
                    for g in 0..self.groups {
                        for oc in g * self.cout_g..(g + 1) * self.cout_g {
                            for icg in 0..self.cin_g {
                                let ic = g * self.cin_g + icg;
                                let w_base = (oc * self.cin_g + icg) * self.taps();
                                f(b, oc, ic, w_base);
                            }
                        }
                    }
                }
            }
        }

        /// Calls `row(oy, iy, ox_range, ix_start, kernel_tap)` for every kernel tap and every output row
        /// where the tap reads real input, with `ix_start` the input column read at `ox_range.start`
        /// (consecutive outputs read columns `stride_w` apart).
        fn for_each_tap_row(
            axes: &[WindowAxis; 2],
            mut row: impl FnMut(usize, usize, core::ops::Range<usize>, usize, usize),
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

        /// Forward convolution: `y = conv(x, w) + b`.
        ///
        /// `input` is `[n, c_in, h, w]`, `weight` `[c_out, c_in / groups, kh, kw]`, `bias` (optional)
        /// `[c_out]`; the result is `[n, c_out, oh, ow]` with `[oh, ow] = shape.out_hw()`. Accumulates in
        /// `T`, starting from the bias.
        pub(super) fn conv2d<T: Real>(
            shape: &Conv2dShape,
            input: &[T],
            weight: &[T],
            bias: Option<&[T]>,
        ) -> Result<Vec<T>, KernelError> {
            let dims = ConvDims::new(shape)?;
            check_len("conv2d input", dims.input_len, input.len())?;
            check_len("conv2d weight", dims.weight_len, weight.len())?;
            if let Some(bias) = bias {
                check_len("conv2d bias", dims.c_out, bias.len())?;
            }
            let mut out = filled(dims.output_len, T::zero())?;
            let (in_plane, out_plane) = (dims.in_plane(), dims.out_plane());
            let (w_in, ow, sw) = (
                dims.axes[1].in_len,
                dims.axes[1].out_len,
                dims.axes[1].stride,
            );
            if out_plane == 0 {
                return Ok(out);
            }
            if let Some(bias) = bias {
                for (plane, &b) in out.chunks_exact_mut(out_plane).zip(bias.iter().cycle()) {
                    plane.fill(b);
                }
            }
            dims.for_each_channel_pair(|b, oc, ic, w_base| {
                let x = &input[(b * dims.c_in + ic) * in_plane..][..in_plane];
                let y = &mut out[(b * dims.c_out + oc) * out_plane..][..out_plane];
                let w = &weight[w_base..w_base + dims.taps()];
                for_each_tap_row(&dims.axes, |oy, iy, oxs, ix0, tap| {
                    let wv = w[tap];
                    let y_row = &mut y[oy * ow..(oy + 1) * ow][oxs];
                    let x_row = &x[iy * w_in..(iy + 1) * w_in];
                    if sw == 1 {
                        for (yv, &xv) in y_row.iter_mut().zip(&x_row[ix0..]) {
                            *yv += wv * xv;
                        }
                    } else {
                        for (yv, &xv) in y_row.iter_mut().zip(x_row[ix0..].iter().step_by(sw)) {
                            *yv += wv * xv;
                        }
                    }
                });
            });
            Ok(out)
        }

        /// Gradient of [`conv2d`] with respect to its input (a transposed convolution).
        ///
        /// `grad_output` is `[n, c_out, oh, ow]`, `weight` `[c_out, c_in / groups, kh, kw]`; the result is
        /// `[n, c_in, h, w]`. Input positions no window reaches get a zero gradient.
        pub(super) fn conv2d_backward_input<T: Real>(
            shape: &Conv2dShape,
            grad_output: &[T],
            weight: &[T],
        ) -> Result<Vec<T>, KernelError> {
            let dims = ConvDims::new(shape)?;
            check_len("conv2d grad_output", dims.output_len, grad_output.len())?;
            check_len("conv2d weight", dims.weight_len, weight.len())?;
            let mut grad_in = filled(dims.input_len, T::zero())?;
            let (in_plane, out_plane) = (dims.in_plane(), dims.out_plane());
            let (w_in, ow, sw) = (
                dims.axes[1].in_len,
                dims.axes[1].out_len,
                dims.axes[1].stride,
            );
            if out_plane == 0 || in_plane == 0 {
                return Ok(grad_in);
            }
            dims.for_each_channel_pair(|b, oc, ic, w_base| {
                let dy = &grad_output[(b * dims.c_out + oc) * out_plane..][..out_plane];
                let dx = &mut grad_in[(b * dims.c_in + ic) * in_plane..][..in_plane];
                let w = &weight[w_base..w_base + dims.taps()];
                for_each_tap_row(&dims.axes, |oy, iy, oxs, ix0, tap| {
                    let wv = w[tap];
                    let dy_row = &dy[oy * ow..(oy + 1) * ow][oxs];
                    let dx_row = &mut dx[iy * w_in..(iy + 1) * w_in];
                    if sw == 1 {
                        for (dxv, &dyv) in dx_row[ix0..].iter_mut().zip(dy_row) {
                            *dxv += wv * dyv;
                        }
                    } else {
                        for (dxv, &dyv) in dx_row[ix0..].iter_mut().step_by(sw).zip(dy_row) {
                            *dxv += wv * dyv;
                        }
                    }
                });
            });
            Ok(grad_in)
        }

        /// Gradient of [`conv2d`] with respect to its weight.
        ///
        /// `input` is `[n, c_in, h, w]`, `grad_output` `[n, c_out, oh, ow]`; the result is
        /// `[c_out, c_in / groups, kh, kw]`, summed over the batch.
        pub(super) fn conv2d_backward_weight<T: Real>(
            shape: &Conv2dShape,
            input: &[T],
            grad_output: &[T],
        ) -> Result<Vec<T>, KernelError> {
            let dims = ConvDims::new(shape)?;
            check_len("conv2d input", dims.input_len, input.len())?;
            check_len("conv2d grad_output", dims.output_len, grad_output.len())?;
            let mut grad_w = filled(dims.weight_len, T::zero())?;
            let (in_plane, out_plane) = (dims.in_plane(), dims.out_plane());
            let (w_in, ow, sw) = (
                dims.axes[1].in_len,
                dims.axes[1].out_len,
                dims.axes[1].stride,
            );
            if out_plane == 0 || in_plane == 0 {
                return Ok(grad_w);
            }
            dims.for_each_channel_pair(|b, oc, ic, w_base| {
                let x = &input[(b * dims.c_in + ic) * in_plane..][..in_plane];
                let dy = &grad_output[(b * dims.c_out + oc) * out_plane..][..out_plane];
                let dw = &mut grad_w[w_base..w_base + dims.taps()];
                for_each_tap_row(&dims.axes, |oy, iy, oxs, ix0, tap| {
                    let dy_row = &dy[oy * ow..(oy + 1) * ow][oxs];
                    let x_row = &x[iy * w_in..(iy + 1) * w_in];
                    let mut acc = T::zero();
                    if sw == 1 {
                        for (&dyv, &xv) in dy_row.iter().zip(&x_row[ix0..]) {
                            acc += dyv * xv;
                        }
                    } else {
                        for (&dyv, &xv) in dy_row.iter().zip(x_row[ix0..].iter().step_by(sw)) {
                            acc += dyv * xv;
                        }
                    }
                    dw[tap] += acc;
                });
            });
            Ok(grad_w)
        }

        /// Gradient of [`conv2d`] with respect to its bias: `grad_output` (`[n, c_out, oh, ow]`) summed
        /// over batch and space, giving `[c_out]`.
        pub(super) fn conv2d_backward_bias<T: Real>(
            shape: &Conv2dShape,
            grad_output: &[T],
        ) -> Result<Vec<T>, KernelError> {
            let dims = ConvDims::new(shape)?;
            check_len("conv2d grad_output", dims.output_len, grad_output.len())?;
            let mut grad_b = filled(dims.c_out, T::zero())?;
            let out_plane = dims.out_plane();
            if out_plane == 0 {
                return Ok(grad_b);
            }
            for (i, plane) in grad_output.chunks_exact(out_plane).enumerate() {
                grad_b[i % dims.c_out] += plane.iter().copied().sum::<T>();
            }
            Ok(grad_b)
        }
    }

    proptest! {
        #[test]
        fn matches_the_legacy_kernels_bit_for_bit(s in conv_shape(), seed in any::<u64>()) {
            let (xl, wl, yl) = lens(&s);
            let mut rng = Rng::new(seed);
            let x: Vec<f32> = (0..xl).map(|_| rng.uniform() as f32).collect();
            let w: Vec<f32> = (0..wl).map(|_| rng.uniform() as f32).collect();
            let b: Vec<f32> = (0..s.c_out).map(|_| rng.uniform() as f32).collect();
            let dy: Vec<f32> = (0..yl).map(|_| rng.uniform() as f32).collect();
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            prop_assert_eq!(bits(conv2d(&s, &x, &w, Some(&b)).unwrap()), bits(legacy::conv2d(&s, &x, &w, Some(&b)).unwrap()));
            prop_assert_eq!(bits(conv2d_backward_input(&s, &dy, &w).unwrap()), bits(legacy::conv2d_backward_input(&s, &dy, &w).unwrap()));
            prop_assert_eq!(bits(conv2d_backward_weight(&s, &x, &dy).unwrap()), bits(legacy::conv2d_backward_weight(&s, &x, &dy).unwrap()));
            prop_assert_eq!(bits(conv2d_backward_bias(&s, &dy).unwrap()), bits(legacy::conv2d_backward_bias(&s, &dy).unwrap()));
        }
    }
}
