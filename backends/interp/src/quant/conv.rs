//! int8 convolution and fully connected layers (TFLite `ConvPerChannel` / `FullyConnected`
//! reference semantics, NCHW layout): allocating wrappers of the `mite-kernels` kernels.

use mite_kernels::int8 as k;
use mite_kernels::LinearGeometry;

use super::requantizer::OutputStage;
use crate::geometry::Conv2dShape;
use crate::kernel_error::KernelError;

/// Multiplies dimensions, failing instead of overflowing.
pub(crate) fn checked_product(dims: &[usize]) -> Result<usize, KernelError> {
    Ok(mite_kernels::error::checked_product(dims)?)
}

/// int8 2-D convolution (grouped, dilated, strided, padded), as TFLite's reference
/// `ConvPerChannel` in NCHW:
///
/// `y[b,o,i,j] = clamp(requant_o(Σ (x − z_x)·(w[o] − z_w[o]) + bias[o]) + z_y)`
///
/// * `x`: `[n, c_in, h, w]` int8 with zero point `x_zero_point`; padded positions contribute
///   nothing (as if they held the zero point).
/// * `w`: `[c_out, c_in/groups, kh, kw]` int8; `w_zero_points` is empty (symmetric weights, the
///   usual case), one per-tensor value, or one per output channel.
/// * `bias`: optional `[c_out]` int32, in units of `s_x · s_W[o]`.
/// * The sum of products is `i32` and wraps on overflow like the reference's (which cannot
///   overflow for int8 operands unless the reduction has more than about 2^15 terms). The bias is
///   then added with saturation to the `i32` range (`add_bias`): the reference wraps there too,
///   but real models do overflow at that step (the paper's MCUNet has dead channels whose bias is
///   `i32::MIN`), and saturating gives what the float graph computes. With
///   [`Rounding::OnnxRuntime`](super::Rounding::OnnxRuntime) it wraps, as onnxruntime's fused
///   `QLinearConv` does (its int32 column sums and accumulators wrap; verified on those dead
///   channels).
/// * `out` requantizes per output channel (or per tensor) with its [`super::Rounding`], adds the
///   output zero point and clamps to the activation range.
///
/// Returns `[n, c_out, oh, ow]`.
pub fn conv2d_int8(
    shape: &Conv2dShape,
    x: &[i8],
    x_zero_point: i8,
    w: &[i8],
    w_zero_points: &[i8],
    bias: Option<&[i32]>,
    out: &OutputStage,
) -> Result<Vec<i8>, KernelError> {
    shape.checked_out_hw()?;
    let geometry = shape.geometry()?;
    let params = k::Conv2dInt8Params::new(geometry, x_zero_point, w_zero_points, out.as_kernel())?;
    let mut y = vec![0; geometry.output_len()];
    let mut scratch = vec![0; k::conv2d_int8_scratch_len(&params)];
    k::conv2d_int8(x, w, bias, &mut y, &mut scratch, &params)?;
    Ok(y)
}

/// Dimensions of a fully connected layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinearShape {
    /// Batch size `N`.
    pub batch: usize,
    /// Input features `K`.
    pub in_features: usize,
    /// Output features `M`.
    pub out_features: usize,
}

/// int8 fully connected layer, as TFLite's reference `FullyConnected` (per-tensor) and its
/// per-channel variant:
///
/// `y[n,m] = clamp(requant_m(Σ_k (x[n,k] − z_x)·(w[m,k] − z_w[m]) + bias[m]) + z_y)`
///
/// `x` is `[N, K]`, `w` is `[M, K]`, `bias` `[M]`; `w_zero_points` and the requantizer are
/// per-tensor or per output feature (`w_zero_points` may also be empty). Returns `[N, M]`.
pub fn fully_connected_int8(
    shape: LinearShape,
    x: &[i8],
    x_zero_point: i8,
    w: &[i8],
    w_zero_points: &[i8],
    bias: Option<&[i32]>,
    out: &OutputStage,
) -> Result<Vec<i8>, KernelError> {
    let geometry = LinearGeometry::new(shape.batch, shape.in_features, shape.out_features)?;
    let params = k::LinearInt8Params::new(geometry, x_zero_point, w_zero_points, out.as_kernel())?;
    let mut y = vec![0; shape.batch * shape.out_features];
    k::linear_int8(x, w, bias, &mut y, &params)?;
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Window2d;
    use crate::quant::requantizer::{ActRange, Requantizer};
    use crate::quant::Rounding;
    use proptest::prelude::*;

    fn stage(scales: &[f64], rounding: Rounding, zero_point: i8, range: ActRange) -> OutputStage {
        OutputStage {
            requantizer: Requantizer::new(scales, rounding).unwrap(),
            zero_point,
            range,
        }
    }

    fn window(k: usize, s: usize, p: usize, d: usize) -> Window2d {
        Window2d {
            kernel: [k, k],
            strides: [s, s],
            pads: [p; 4],
            dilations: [d, d],
        }
    }

    #[test]
    fn conv_hand_example_padding_and_zero_point() {
        // 1x1x2x2 input, z_x = 1, 2x2 kernel of ones, pad 1 on every side -> 3x3 output.
        // x − z_x = [[1, 2], [3, 4]]; each output is the sum of the covered (x − z_x).
        let shape = Conv2dShape {
            n: 1,
            c_in: 1,
            in_hw: [2, 2],
            c_out: 1,
            groups: 1,
            window: window(2, 1, 1, 1),
        };
        let x = [2, 3, 4, 5];
        let w = [1, 1, 1, 1];
        let out = stage(&[1.0], Rounding::Double, 0, ActRange::FULL);
        let y = conv2d_int8(&shape, &x, 1, &w, &[], None, &out).unwrap();
        assert_eq!(y, vec![1, 3, 2, 4, 10, 6, 3, 7, 4]);
        // Bias 5, float scale 0.5 (ties to even), z_y = −3, clamp at 3.
        let out = stage(
            &[0.5],
            Rounding::FloatScale,
            -3,
            ActRange { min: -128, max: 3 },
        );
        let y = conv2d_int8(&shape, &x, 1, &w, &[], Some(&[5]), &out).unwrap();
        // (1+5)/2=3 -> 0; (3+5)/2=4 -> 1; (2+5)/2=3.5 -> 4 -> 1; (4+5)/2=4.5 -> 4 -> 1;
        // (10+5)/2=7.5 -> 8 -> 5 -> clamp 3; (6+5)/2=5.5 -> 6 -> 3; (7+5)/2 = 6 -> 3.
        assert_eq!(y, vec![0, 1, 1, 1, 3, 3, 1, 3, 1]);
    }

    #[test]
    fn depthwise_stride_dilation_weight_zero_point() {
        // 2 channels, 3x3 input, depthwise 2x2 kernel dilation 2 -> 1x1 output, corners only.
        let shape = Conv2dShape {
            n: 1,
            c_in: 2,
            in_hw: [3, 3],
            c_out: 2,
            groups: 2,
            window: window(2, 1, 0, 2),
        };
        let x: Vec<i8> = (1..=18).collect();
        // channel 0 corners 1,3,7,9; channel 1 corners 10,12,16,18.
        let w = [1, 2, 3, 4, 5, 5, 5, 5];
        // channel 1 weight zero point 4 -> effective weights all 1.
        let out = stage(&[1.0, 1.0], Rounding::Single, 0, ActRange::FULL);
        let y = conv2d_int8(&shape, &x, 0, &w, &[0, 4], None, &out).unwrap();
        assert_eq!(y, vec![1 + 6 + 21 + 36, 10 + 12 + 16 + 18]);
        // Stride 2, 1x1 kernel, padding only top and left on a 3x3 input: a 2x2 output reading
        // padded (0,0), (0,2), (2,0), (2,2) = padding, padding, padding, input (1,1) = 5.
        let shape = Conv2dShape {
            n: 1,
            c_in: 1,
            in_hw: [3, 3],
            c_out: 1,
            groups: 1,
            window: Window2d {
                pads: [1, 1, 0, 0],
                ..window(1, 2, 0, 1)
            },
        };
        let x: Vec<i8> = (1..=9).collect();
        let out = stage(&[1.0], Rounding::Double, 7, ActRange::FULL);
        let y = conv2d_int8(&shape, &x, 0, &[2], &[], Some(&[1]), &out).unwrap();
        assert_eq!(y, vec![8, 8, 8, 7 + 1 + 10]);
    }

    #[test]
    fn conv_rejects_bad_shapes() {
        let good = Conv2dShape {
            n: 1,
            c_in: 2,
            in_hw: [3, 3],
            c_out: 2,
            groups: 1,
            window: window(3, 1, 0, 1),
        };
        let out = stage(&[1.0], Rounding::Double, 0, ActRange::FULL);
        let x = [0_i8; 18];
        let w = [0_i8; 36];
        assert!(conv2d_int8(&good, &x, 0, &w, &[], None, &out).is_ok());
        assert!(conv2d_int8(&good, &x[..17], 0, &w, &[], None, &out).is_err());
        assert!(conv2d_int8(&good, &x, 0, &w[..35], &[], None, &out).is_err());
        assert!(conv2d_int8(&good, &x, 0, &w, &[0; 3], None, &out).is_err());
        assert!(conv2d_int8(&good, &x, 0, &w, &[], Some(&[0]), &out).is_err());
        let three = stage(&[1.0; 3], Rounding::Double, 0, ActRange::FULL);
        assert!(conv2d_int8(&good, &x, 0, &w, &[], None, &three).is_err());
        let empty_range = stage(&[1.0], Rounding::Double, 0, ActRange { min: 1, max: 0 });
        assert!(conv2d_int8(&good, &x, 0, &w, &[], None, &empty_range).is_err());
        let bad_groups = Conv2dShape { groups: 3, ..good };
        assert!(conv2d_int8(&bad_groups, &x, 0, &w, &[], None, &out).is_err());
        let zero_groups = Conv2dShape { groups: 0, ..good };
        assert!(conv2d_int8(&zero_groups, &x, 0, &w, &[], None, &out).is_err());
        let too_big = Conv2dShape {
            window: window(4, 1, 0, 1),
            ..good
        };
        assert!(conv2d_int8(&too_big, &x, 0, &w, &[], None, &out).is_err());
        let zero_stride = Conv2dShape {
            window: window(3, 0, 0, 1),
            ..good
        };
        assert!(conv2d_int8(&zero_stride, &x, 0, &w, &[], None, &out).is_err());
        let huge = Conv2dShape {
            n: usize::MAX,
            ..good
        };
        assert!(conv2d_int8(&huge, &x, 0, &w, &[], None, &out).is_err());
    }

    #[test]
    fn fully_connected_hand_example() {
        // x = [[1, 2, 3]], z_x = 1 -> [0, 1, 2]; w rows [1, 1, 1], [2, -1, 0] (z_w 0 / 1).
        let shape = LinearShape {
            batch: 2,
            in_features: 3,
            out_features: 2,
        };
        let x = [1, 2, 3, -1, 0, 1];
        let w = [1, 1, 1, 2, -1, 0];
        let out = stage(&[1.0, 0.5], Rounding::Double, 1, ActRange::FULL);
        let y = fully_connected_int8(shape, &x, 1, &w, &[0, 1], Some(&[10, -3]), &out).unwrap();
        // Effective weights of row 1: [1, −2, −1]. Scale 0.5 is (2^30, 0): only the
        // doubling-high-mul rounds, with ties towards +inf.
        // batch 0: 0+1+2+10 = 13 -> 14;  0·1 + 1·(−2) + 2·(−1) − 3 = −7 -> −3.5 -> −3 -> −2
        // batch 1: −2−1+0+10 = 7 -> 8;   (−2)·1 + (−1)·(−2) + 0 − 3 = −3 -> −1.5 -> −1 -> 0
        assert_eq!(y, vec![14, -2, 8, 0]);
        let per_tensor = stage(&[1.0], Rounding::Single, 0, ActRange { min: 0, max: 127 });
        let y = fully_connected_int8(shape, &x, 1, &w, &[], None, &per_tensor).unwrap();
        assert_eq!(y, vec![3, 0, 0, 0]);
        assert!(fully_connected_int8(shape, &x[..5], 1, &w, &[], None, &per_tensor).is_err());
        assert!(fully_connected_int8(shape, &x, 1, &w, &[], Some(&[1]), &per_tensor).is_err());
        let three = stage(&[1.0; 3], Rounding::Double, 0, ActRange::FULL);
        assert!(fully_connected_int8(shape, &x, 1, &w, &[], None, &three).is_err());
    }

    /// Independent reference: materialise the zero-point-padded input, then correlate with an
    /// i64 accumulator, then apply the same output stage.
    fn reference_conv(
        shape: &Conv2dShape,
        x: &[i8],
        zx: i8,
        w: &[i8],
        zw: &[i8],
        bias: Option<&[i32]>,
        out: &OutputStage,
    ) -> Vec<i8> {
        let [h, wd] = shape.in_hw;
        let [pt, pl, pb, pr] = shape.window.pads;
        let (ph, pw) = (h + pt + pb, wd + pl + pr);
        let mut padded = vec![zx; shape.n * shape.c_in * ph * pw];
        for b in 0..shape.n {
            for c in 0..shape.c_in {
                for i in 0..h {
                    for j in 0..wd {
                        padded[((b * shape.c_in + c) * ph + i + pt) * pw + j + pl] =
                            x[((b * shape.c_in + c) * h + i) * wd + j];
                    }
                }
            }
        }
        let [oh, ow] = shape.out_hw().unwrap();
        let [kh, kw] = shape.window.kernel;
        let cin_g = shape.c_in / shape.groups;
        let cout_g = shape.c_out / shape.groups;
        let mut y = vec![0; shape.n * shape.c_out * oh * ow];
        for (idx, yv) in y.iter_mut().enumerate() {
            let j = idx % ow;
            let i = (idx / ow) % oh;
            let o = (idx / (ow * oh)) % shape.c_out;
            let b = idx / (ow * oh * shape.c_out);
            let z = i64::from(match zw.len() {
                0 => 0,
                1 => zw[0],
                _ => zw[o],
            });
            let mut acc: i64 = bias.map_or(0, |bv| i64::from(bv[o]));
            for ci in 0..cin_g {
                let c = (o / cout_g) * cin_g + ci;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let r = i * shape.window.strides[0] + ky * shape.window.dilations[0];
                        let s = j * shape.window.strides[1] + kx * shape.window.dilations[1];
                        let xv = i64::from(padded[((b * shape.c_in + c) * ph + r) * pw + s]);
                        let wv = i64::from(w[((o * cin_g + ci) * kh + ky) * kw + kx]);
                        acc += (xv - i64::from(zx)) * (wv - z);
                    }
                }
            }
            *yv = out.finish(
                acc.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
                o,
            );
        }
        y
    }

    type Case = (
        Conv2dShape,
        Vec<i8>,
        i8,
        Vec<i8>,
        Vec<i8>,
        Option<Vec<i32>>,
        OutputStage,
    );

    fn conv_case() -> impl Strategy<Value = Case> {
        (
            (1_usize..=2, 1_usize..=3, 1_usize..=3, 1_usize..=3),
            (1_usize..=6, 1_usize..=6, 1_usize..=3, 1_usize..=3),
            (1_usize..=3, 1_usize..=3, 1_usize..=2, 1_usize..=2),
            prop::array::uniform4(0_usize..=2),
        )
            .prop_filter_map("window must fit", |(a, b, c, pads)| {
                let (n, groups, cin_g, cout_g) = a;
                let (h, w, kh, kw) = b;
                let (sh, sw, dh, dw) = c;
                let shape = Conv2dShape {
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
                };
                shape.is_valid().then_some(shape)
            })
            .prop_flat_map(|shape| {
                let xl = shape.n * shape.c_in * shape.in_hw[0] * shape.in_hw[1];
                let wl = shape.c_out
                    * shape.c_in_per_group()
                    * shape.window.kernel[0]
                    * shape.window.kernel[1];
                let co = shape.c_out;
                let rounding = prop_oneof![
                    Just(Rounding::Double),
                    Just(Rounding::Single),
                    Just(Rounding::FloatScale),
                    Just(Rounding::OnnxRuntime)
                ];
                let scales = prop_oneof![
                    prop::collection::vec(1e-4_f64..0.2, 1),
                    prop::collection::vec(1e-4_f64..0.2, co),
                ];
                let zw = prop_oneof![
                    Just(Vec::new()),
                    prop::collection::vec(any::<i8>(), 1),
                    prop::collection::vec(any::<i8>(), co),
                ];
                let range = (any::<i8>(), any::<i8>()).prop_map(|(a, b)| ActRange {
                    min: a.min(b),
                    max: a.max(b),
                });
                let out = (scales, rounding, any::<i8>(), range).prop_map(|(s, r, z, range)| {
                    OutputStage {
                        requantizer: Requantizer::new(&s, r).unwrap(),
                        zero_point: z,
                        range,
                    }
                });
                (
                    Just(shape),
                    prop::collection::vec(any::<i8>(), xl),
                    any::<i8>(),
                    prop::collection::vec(any::<i8>(), wl),
                    zw,
                    prop::option::of(prop::collection::vec(-5000_i32..5000, co)),
                    out,
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn conv_matches_padded_reference(case in conv_case()) {
            let (shape, x, zx, w, zw, bias, out) = case;
            let got = conv2d_int8(&shape, &x, zx, &w, &zw, bias.as_deref(), &out).unwrap();
            let want = reference_conv(&shape, &x, zx, &w, &zw, bias.as_deref(), &out);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn fully_connected_is_a_1x1_conv(
            (n, k, m) in (1_usize..=3, 1_usize..=8, 1_usize..=4),
            seed in any::<u64>(),
            zx in any::<i8>(),
            rounding in prop_oneof![
                Just(Rounding::Double),
                Just(Rounding::Single),
                Just(Rounding::FloatScale),
                Just(Rounding::OnnxRuntime)
            ],
        ) {
            // Deterministic pseudo-random operands from the seed.
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 24) as i8 };
            let x: Vec<i8> = (0..n * k).map(|_| next()).collect();
            let w: Vec<i8> = (0..m * k).map(|_| next()).collect();
            let bias: Vec<i32> = (0..m).map(|_| i32::from(next()) * 7).collect();
            let scales: Vec<f64> = (0..m).map(|_| f64::from(next().unsigned_abs()) / 4096.0 + 1e-3).collect();
            let out = OutputStage {
                requantizer: Requantizer::new(&scales, rounding).unwrap(),
                zero_point: next(),
                range: ActRange::FULL,
            };
            let fc = fully_connected_int8(
                LinearShape { batch: n, in_features: k, out_features: m },
                &x, zx, &w, &[], Some(&bias), &out,
            ).unwrap();
            // The same as a conv with K input channels on a 1x1 image, per batch.
            let shape = Conv2dShape {
                n, c_in: k, in_hw: [1, 1], c_out: m, groups: 1,
                window: Window2d { kernel: [1, 1], strides: [1, 1], pads: [0; 4], dilations: [1, 1] },
            };
            let conv = conv2d_int8(&shape, &x, zx, &w, &[], Some(&bias), &out).unwrap();
            prop_assert_eq!(fc, conv);
        }
    }

    // The implementation before the kernels moved to `mite-kernels`, kept as a differential
    // oracle for the new kernel.
    mod legacy {
        use super::super::checked_product;
        use crate::geometry::Conv2dShape;
        use crate::kernel_error::{check_len, KernelError};
        use crate::quant::requantizer::{OutputStage, Rounding};

        /// Checks a per-channel (or per-tensor, or absent) weight zero point list and returns a lookup.
        fn weight_zero_point(
            zero_points: &[i8],
            channels: usize,
        ) -> Result<impl Fn(usize) -> i32 + '_, KernelError> {
            if !(zero_points.is_empty() || zero_points.len() == 1 || zero_points.len() == channels)
            {
                return Err(KernelError::Invalid(format!(
                    "{} weight zero points, expected 0, 1 or {channels}",
                    zero_points.len()
                )));
            }
            Ok(move |c: usize| match zero_points.len() {
                0 => 0,
                1 => i32::from(zero_points[0]),
                _ => i32::from(zero_points[c]),
            })
        }

        pub(super) fn legacy_conv2d_int8(
            shape: &Conv2dShape,
            x: &[i8],
            x_zero_point: i8,
            w: &[i8],
            w_zero_points: &[i8],
            bias: Option<&[i32]>,
            out: &OutputStage,
        ) -> Result<Vec<i8>, KernelError> {
            let [oh, ow] = shape.checked_out_hw()?;
            let [h, wd] = shape.in_hw;
            let [kh, kw] = shape.window.kernel;
            let [sh, sw] = shape.window.strides;
            let [dh, dw] = shape.window.dilations;
            let [pad_top, pad_left, _, _] = shape.window.pads;
            let cin_g = shape.c_in_per_group();
            let cout_g = shape.c_out_per_group();

            check_len(
                "x",
                checked_product(&[shape.n, shape.c_in, h, wd])?,
                x.len(),
            )?;
            check_len(
                "w",
                checked_product(&[shape.c_out, cin_g, kh, kw])?,
                w.len(),
            )?;
            if let Some(b) = bias {
                check_len("bias", shape.c_out, b.len())?;
            }
            let zw = weight_zero_point(w_zero_points, shape.c_out)?;
            out.check(shape.c_out)?;
            let out_len = checked_product(&[shape.n, shape.c_out, oh, ow])?;

            let zx = i32::from(x_zero_point);
            let bias_add = bias_adder(out);
            let mut y = Vec::with_capacity(out_len);
            // One output plane at a time, accumulated tap by tap over contiguous rows; integer sums wrap,
            // so the order does not change the result.
            let mut plane = vec![0_i32; oh * ow];
            for b in 0..shape.n {
                for o in 0..shape.c_out {
                    let group = o / cout_g;
                    let zw_o = zw(o);
                    plane.fill(0);
                    for ci in 0..cin_g {
                        let c = group * cin_g + ci;
                        let x_plane =
                            &x[(b * shape.c_in + c) * h * wd..(b * shape.c_in + c + 1) * h * wd];
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let wv =
                                    i32::from(w[((o * cin_g + ci) * kh + ky) * kw + kx]) - zw_o;
                                if wv == 0 {
                                    continue;
                                }
                                let (ox_lo, ox_hi) = valid_range(ow, sw, kx * dw, pad_left, wd);
                                for oy in 0..oh {
                                    let py = oy * sh + ky * dh;
                                    if py < pad_top || py - pad_top >= h {
                                        continue;
                                    }
                                    let x_row =
                                        &x_plane[(py - pad_top) * wd..(py - pad_top + 1) * wd];
                                    let out_row = &mut plane[oy * ow..(oy + 1) * ow];
                                    for ox in ox_lo..ox_hi {
                                        let xv = i32::from(x_row[ox * sw + kx * dw - pad_left]);
                                        out_row[ox] =
                                            out_row[ox].wrapping_add((xv - zx).wrapping_mul(wv));
                                    }
                                }
                            }
                        }
                    }
                    let bias_o = bias.map_or(0, |bias| bias[o]);
                    y.extend(
                        plane
                            .iter()
                            .map(|&acc| out.finish(bias_add(acc, bias_o), o)),
                    );
                }
            }
            Ok(y)
        }

        /// How the bias is added to the accumulator for `out`'s rounding mode: wrapping for
        /// [`Rounding::OnnxRuntime`] (onnxruntime's fused kernels), saturating ([`add_bias`]) otherwise.
        fn bias_adder(out: &OutputStage) -> fn(i32, i32) -> i32 {
            if out.requantizer.rounding() == Rounding::OnnxRuntime {
                i32::wrapping_add
            } else {
                add_bias
            }
        }

        /// Adds the int32 bias to an accumulator, saturating to the `i32` range.
        ///
        /// TFLite's reference kernels wrap here; the paper's models have dead output channels with
        /// weight scales near 1e-8 and bias `i32::MIN`, whose sum wraps to the opposite sign. Saturating
        /// reproduces what the QDQ float graph computes for them (onnxruntime's float `Conv`, and the
        /// paper's simulation), and equals wrapping whenever the sum fits. (onnxruntime's fused
        /// `QLinearConv` wraps; see [`Rounding::OnnxRuntime`].)
        pub fn add_bias(acc: i32, bias: i32) -> i32 {
            acc.saturating_add(bias)
        }

        /// The output columns `ox` whose input column `ox · stride + offset − pad` lies inside `[0, width)`.
        fn valid_range(
            out: usize,
            stride: usize,
            offset: usize,
            pad: usize,
            width: usize,
        ) -> (usize, usize) {
            let lo = if offset >= pad {
                0
            } else {
                (pad - offset).div_ceil(stride)
            };
            let hi = if pad + width > offset {
                (pad + width - offset).div_ceil(stride).min(out)
            } else {
                0
            };
            (lo.min(hi), hi)
        }
    }

    proptest! {
        #[test]
        fn conv_matches_legacy_implementation(
            (shape, x, zx, w, zw, bias, out) in conv_case(),
            extreme_bias in any::<bool>(),
        ) {
            // Biases near the i32 limits exercise the saturating and wrapping bias additions.
            let bias = bias.map(|b| {
                b.iter()
                    .map(|&v| if extreme_bias { v.signum().wrapping_mul(i32::MAX - 3).wrapping_add(v) } else { v })
                    .collect::<Vec<_>>()
            });
            let new = conv2d_int8(&shape, &x, zx, &w, &zw, bias.as_deref(), &out).unwrap();
            let old = legacy::legacy_conv2d_int8(&shape, &x, zx, &w, &zw, bias.as_deref(), &out)
                .unwrap();
            prop_assert_eq!(new, old);
        }
    }
}
