//! int8 pooling: average, max, global average (paper) and mean with requantization (TFLite).
//! Average, global average and mean run the `mite-kernels` kernels; max pooling is here.
//!
//! Which global pooling to use: the paper's graphs (and tiny-training's `QuantizedAvgPool`) keep
//! the input quantization on the output — use [`global_avg_pool_int8`]. When the output tensor
//! has its own scale or zero point (a TFLite `MEAN` over H×W, or an imported graph that
//! requantizes), use [`mean_int8`].

use mite_kernels::int8 as k;

use super::conv::checked_product;
use super::onnxruntime::global_avg_pool_qlinear;
use super::quantize::QuantParams;
use super::requantizer::{ActRange, Rounding};
use crate::geometry::Window2d;
use crate::kernel_error::{check_len, KernelError};

/// Validated NCHW pooling geometry: `(n·c, h, w, oh, ow)`.
fn pool_geometry(
    len: usize,
    dims: [usize; 4],
    window: &Window2d,
) -> Result<(usize, usize, usize, usize, usize), KernelError> {
    let [n, c, h, w] = dims;
    check_len("x", checked_product(&dims)?, len)?;
    let [oh, ow] = window.output_size([h, w]).ok_or_else(|| {
        KernelError::Invalid(format!("pool window {window:?} does not fit {dims:?}"))
    })?;
    checked_product(&[n, c, oh, ow])?;
    Ok((n * c, h, w, oh, ow))
}

/// Calls `f` with the valid (non-padding) input values of each pooling window, in NCHW order of
/// the outputs; `f` returns the output value or an error.
fn pool_windows(
    x: &[i8],
    dims: [usize; 4],
    window: &Window2d,
    mut f: impl FnMut(&mut dyn Iterator<Item = i8>) -> Result<i8, KernelError>,
) -> Result<Vec<i8>, KernelError> {
    let (planes, h, w, oh, ow) = pool_geometry(x.len(), dims, window)?;
    let [kh, kw] = window.kernel;
    let [sh, sw] = window.strides;
    let [dh, dw] = window.dilations;
    let [pad_top, pad_left, _, _] = window.pads;
    let mut y = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let rows = (0..kh)
                    .map(|ky| oy * sh + ky * dh)
                    .filter(|&py| py >= pad_top && py - pad_top < h)
                    .map(|py| py - pad_top);
                let mut values = rows.flat_map(|iy| {
                    (0..kw)
                        .map(move |kx| ox * sw + kx * dw)
                        .filter(|&px| px >= pad_left && px - pad_left < w)
                        .map(move |px| plane[iy * w + px - pad_left])
                });
                y.push(f(&mut values)?);
            }
        }
    }
    Ok(y)
}

/// int8 average pooling on NCHW `x` of shape `dims`, as TFLite's reference int8 `AveragePool`:
/// the sum of the valid window elements (padding is excluded from both the sum and the count,
/// ONNX `count_include_pad = 0`), divided by the count rounding half away from zero, clamped to
/// `range`. The output keeps the input quantization. Dilation, which TFLite lacks, is supported
/// the same way. A window lying entirely in the padding is an error (as in TFLite).
pub fn avg_pool_int8(
    x: &[i8],
    dims: [usize; 4],
    window: &Window2d,
    range: ActRange,
) -> Result<Vec<i8>, KernelError> {
    let (planes, _, _, oh, ow) = pool_geometry(x.len(), dims, window)?;
    let mut y = vec![0; planes * oh * ow];
    k::avg_pool_int8(x, dims, window, range, &mut y)?;
    Ok(y)
}

/// int8 max pooling on NCHW `x` of shape `dims`: the maximum of the valid window elements
/// (padding never wins). No requantization; the output keeps the input quantization. A window
/// lying entirely in the padding is an error.
pub fn max_pool_int8(
    x: &[i8],
    dims: [usize; 4],
    window: &Window2d,
) -> Result<Vec<i8>, KernelError> {
    pool_windows(x, dims, window, |values| {
        values.max().ok_or_else(|| {
            KernelError::Invalid("max pool window lies entirely in the padding".into())
        })
    })
}

/// Checks NCHW dims for a global reduction and returns `(n·c, h·w)`.
fn global_geometry(len: usize, dims: [usize; 4]) -> Result<(usize, usize), KernelError> {
    check_len("x", checked_product(&dims)?, len)?;
    let [n, c, h, w] = dims;
    let count = h * w;
    if count == 0 {
        return Err(KernelError::Invalid(format!(
            "global pooling over an empty plane {dims:?}"
        )));
    }
    Ok((n * c, count))
}

/// Global average pooling as in the paper: the mean over H×W of each channel, with the output
/// keeping the input's scale and zero point. Output shape `[n, c]` (i.e. `[n, c, 1, 1]`).
///
/// The mean is taken over the raw int8 values. Rounding of the exact mean depends on `rounding`:
/// * [`Rounding::Double`] / [`Rounding::Single`]: half away from zero, as TFLite's int8
///   `AveragePool` with a window covering the whole plane (the on-device semantics);
/// * [`Rounding::FloatScale`] (and [`Rounding::OnnxRuntime`], whose requantizing pool is
///   [`mean_int8`]): half to even, which is what the paper's simulation
///   (`x.mean([-1, -2]).round()` in tiny-training's `QuantizedAvgPool`) computes: the float32
///   sum of int8 values is exact below 2^24 elements, and for planes under 2^16 elements the
///   float32 division cannot create or destroy a tie, so this integer version agrees with it.
pub fn global_avg_pool_int8(
    x: &[i8],
    dims: [usize; 4],
    rounding: Rounding,
) -> Result<Vec<i8>, KernelError> {
    let (planes, _) = global_geometry(x.len(), dims)?;
    let mut y = vec![0; planes];
    k::global_avg_pool_int8(x, dims, rounding, &mut y)?;
    Ok(y)
}

/// Mean over H×W with requantization to a different output quantization, as TFLite's reference
/// int8 `Mean` (`reference_integer_ops::Mean`, the `MEAN` op over axes {1, 2}):
///
/// `acc = Σ (x − z_in)`; `acc = MultiplyByQuantizedMultiplier(acc, quantize(s_in / s_out))`;
/// `acc = acc / (H·W)` rounded half away from zero; `y = clamp(acc + z_out, −128, 127)`.
///
/// [`Rounding::Single`] uses the single-rounding multiply; [`Rounding::FloatScale`] computes
/// `round_half_even(Σ(x − z_in) · (s_in / s_out) / (H·W)) + z_out` in `f64` (no reference: an
/// analogue of the paper's float-scale requantization); [`Rounding::OnnxRuntime`] is onnxruntime's
/// `QLinearGlobalAveragePool` ([`global_avg_pool_qlinear`]). Output shape `[n, c]`. The `i32`
/// accumulator of the reference limits planes to 2^23 elements; larger ones are an error.
pub fn mean_int8(
    x: &[i8],
    dims: [usize; 4],
    input: QuantParams,
    output: QuantParams,
    rounding: Rounding,
) -> Result<Vec<i8>, KernelError> {
    input.check()?;
    output.check()?;
    let (planes, count) = global_geometry(x.len(), dims)?;
    if count > 1 << 23 {
        return Err(KernelError::Invalid(format!(
            "mean over {count} elements overflows the int32 accumulator"
        )));
    }
    if rounding == Rounding::OnnxRuntime {
        return global_avg_pool_qlinear(x, dims, input, output);
    }
    let mut y = vec![0; planes];
    k::mean_int8(
        x,
        dims,
        &mut y,
        &k::MeanParams::new(input, output, rounding)?,
    )?;
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn win(k: usize, s: usize, pads: [usize; 4]) -> Window2d {
        Window2d {
            kernel: [k, k],
            strides: [s, s],
            pads,
            dilations: [1, 1],
        }
    }

    #[test]
    fn avg_pool_excludes_padding_and_rounds_away() {
        // 1x1x2x2 = [[1, 2], [3, 4]], 2x2 window, stride 1, pad 1 all round -> 3x3 output.
        let x = [1, 2, 3, 4];
        let y = avg_pool_int8(&x, [1, 1, 2, 2], &win(2, 1, [1; 4]), ActRange::FULL).unwrap();
        // Corners: single values; edges: pairs (1+2)/2 = 1.5 -> 2, (1+3)/2 = 2, (2+4)/2 = 3,
        // (3+4)/2 = 3.5 -> 4; centre 10/4 = 2.5 -> 3.
        assert_eq!(y, vec![1, 2, 2, 2, 3, 3, 3, 4, 4]);
        let neg: Vec<i8> = x.iter().map(|v| -v).collect();
        let y = avg_pool_int8(&neg, [1, 1, 2, 2], &win(2, 1, [1; 4]), ActRange::FULL).unwrap();
        assert_eq!(y, vec![-1, -2, -2, -2, -3, -3, -3, -4, -4]);
        // Clamp.
        let y = avg_pool_int8(
            &x,
            [1, 1, 2, 2],
            &win(2, 2, [0; 4]),
            ActRange { min: 0, max: 2 },
        )
        .unwrap();
        assert_eq!(y, vec![2]);
    }

    #[test]
    fn avg_pool_errors() {
        let x = [0_i8; 8];
        assert!(avg_pool_int8(&x, [1, 2, 2, 2], &win(2, 1, [0; 4]), ActRange::FULL).is_ok());
        assert!(avg_pool_int8(&x[..7], [1, 2, 2, 2], &win(2, 1, [0; 4]), ActRange::FULL).is_err());
        assert!(avg_pool_int8(&x, [1, 2, 2, 2], &win(3, 1, [0; 4]), ActRange::FULL).is_err());
        assert!(avg_pool_int8(&x, [1, 2, 2, 2], &win(2, 0, [0; 4]), ActRange::FULL).is_err());
        let empty = ActRange { min: 1, max: 0 };
        assert!(avg_pool_int8(&x, [1, 2, 2, 2], &win(2, 1, [0; 4]), empty).is_err());
        // First window entirely in the top padding.
        assert!(avg_pool_int8(&x, [1, 2, 2, 2], &win(2, 1, [2, 0, 0, 0]), ActRange::FULL).is_err());
        assert!(max_pool_int8(&x, [1, 2, 2, 2], &win(2, 1, [2, 0, 0, 0])).is_err());
        assert!(max_pool_int8(&x, [usize::MAX, 2, 2, 2], &win(2, 1, [0; 4])).is_err());
    }

    #[test]
    fn max_pool_ignores_padding() {
        let x = [-5, -6, -7, -8];
        let y = max_pool_int8(&x, [1, 1, 2, 2], &win(2, 1, [1; 4])).unwrap();
        assert_eq!(y, vec![-5, -5, -6, -5, -5, -6, -7, -7, -8]);
        // Two channels, stride 1, dilation 2 on a 3x3 plane: max of the corners.
        let x: Vec<i8> = (0..18).map(|v| if v == 4 { 100 } else { v }).collect();
        let w = Window2d {
            kernel: [2, 2],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [2, 2],
        };
        assert_eq!(max_pool_int8(&x, [1, 2, 3, 3], &w).unwrap(), vec![8, 17]);
    }

    #[test]
    fn global_avg_pool_modes() {
        // Plane 0: [1, 2] mean 1.5; plane 1: [2, 3] mean 2.5; plane 2: [-3, 0] −1.5; [-5, 0] −2.5.
        let x = [1, 2, 2, 3, -3, 0, -5, 0];
        let d = global_avg_pool_int8(&x, [2, 2, 1, 2], Rounding::Double).unwrap();
        let s = global_avg_pool_int8(&x, [2, 2, 1, 2], Rounding::Single).unwrap();
        let f = global_avg_pool_int8(&x, [2, 2, 1, 2], Rounding::FloatScale).unwrap();
        assert_eq!(d, vec![2, 3, -2, -3]);
        assert_eq!(s, d);
        assert_eq!(f, vec![2, 2, -2, -2]);
        assert!(global_avg_pool_int8(&x, [2, 2, 0, 2], Rounding::Double).is_err());
        assert!(global_avg_pool_int8(&x, [2, 2, 2, 2], Rounding::Double).is_err());
        let big = [127_i8; 9];
        assert_eq!(
            global_avg_pool_int8(&big, [1, 1, 3, 3], Rounding::Double).unwrap(),
            vec![127]
        );
    }

    #[test]
    fn mean_requantizes() {
        let qp = |scale, zero_point| QuantParams { scale, zero_point };
        // x − z_in = [1, 2, 3, 4] (z_in = −1): sum 10; s_in/s_out = 2 -> 20 / 4 = 5; + z_out 3.
        let x = [0, 1, 2, 3];
        for r in [Rounding::Double, Rounding::Single, Rounding::FloatScale] {
            let y = mean_int8(&x, [1, 1, 2, 2], qp(0.2, -1), qp(0.1, 3), r).unwrap();
            assert_eq!(y, vec![8], "{r:?}");
        }
        // sum 10 · 0.5 = 5 -> 5/4 = 1.25 -> 1.
        let y = mean_int8(&x, [1, 1, 2, 2], qp(0.1, -1), qp(0.2, 0), Rounding::Double).unwrap();
        assert_eq!(y, vec![1]);
        // Tie: sum 10 · 1 / 4 = 2.5 -> 3 (TFLite, away from zero) or 2 (float, to even).
        let y = mean_int8(&x, [1, 1, 2, 2], qp(0.1, -1), qp(0.1, 0), Rounding::Double).unwrap();
        assert_eq!(y, vec![3]);
        let y = mean_int8(
            &x,
            [1, 1, 2, 2],
            qp(0.1, -1),
            qp(0.1, 0),
            Rounding::FloatScale,
        );
        assert_eq!(y.unwrap(), vec![2]);
        // Saturation.
        let y = mean_int8(
            &[127; 4],
            [1, 1, 2, 2],
            qp(1.0, -128),
            qp(0.01, 0),
            Rounding::Double,
        );
        assert_eq!(y.unwrap(), vec![127]);
        assert!(mean_int8(&x, [1, 1, 2, 2], qp(0.0, 0), qp(0.1, 0), Rounding::Double).is_err());
        assert!(mean_int8(&x, [1, 1, 2, 3], qp(0.1, 0), qp(0.1, 0), Rounding::Double).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// With the same scale on both sides and zero point 0, TFLite's Mean (multiplier 1.0 =
        /// `(2^30, 1)`, exact) equals the quantization-keeping global pool and a whole-plane
        /// average pool. (With a non-zero zero point they can differ on ties, since Mean rounds
        /// `Σ(x − z)/n` and the pools round `Σx/n`.)
        #[test]
        fn mean_with_identity_requant_is_global_pool(
            (dims, x) in (1_usize..=2, 1_usize..=3, 1_usize..=4, 1_usize..=4)
                .prop_flat_map(|(n, c, h, w)| {
                    (Just([n, c, h, w]), prop::collection::vec(any::<i8>(), n * c * h * w))
                }),
            scale in 1e-3_f32..1.0,
        ) {
            let q = QuantParams { scale, zero_point: 0 };
            let mean = mean_int8(&x, dims, q, q, Rounding::Double).unwrap();
            let pool = global_avg_pool_int8(&x, dims, Rounding::Double).unwrap();
            prop_assert_eq!(&mean, &pool);
            // And the pool is avg_pool with a whole-plane window.
            let whole = Window2d { kernel: [dims[2], dims[3]], strides: [1, 1], pads: [0; 4], dilations: [1, 1] };
            let avg = avg_pool_int8(&x, dims, &whole, ActRange::FULL).unwrap();
            prop_assert_eq!(&avg, &pool);
        }

        /// avg pool against a direct definition in f64 (exact for these sizes).
        #[test]
        fn avg_pool_matches_definition(
            (dims, x) in (1_usize..=2, 1_usize..=2, 1_usize..=5, 1_usize..=5)
                .prop_flat_map(|(n, c, h, w)| {
                    (Just([n, c, h, w]), prop::collection::vec(any::<i8>(), n * c * h * w))
                }),
            k in 1_usize..=3, s in 1_usize..=2, pads in prop::array::uniform4(0_usize..=1),
        ) {
            let window = win(k, s, pads);
            prop_assume!(window.output_size([dims[2], dims[3]]).is_some());
            // As ONNX requires: pads smaller than the kernel, so no window is all padding.
            prop_assume!(pads.iter().all(|&p| p < k));
            let y = avg_pool_int8(&x, dims, &window, ActRange::FULL).unwrap();
            let mx = max_pool_int8(&x, dims, &window).unwrap();
            let [oh, ow] = window.output_size([dims[2], dims[3]]).unwrap();
            let (h, w) = (dims[2] as isize, dims[3] as isize);
            for p in 0..dims[0] * dims[1] {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut vals = Vec::new();
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky) as isize - pads[0] as isize;
                                let ix = (ox * s + kx) as isize - pads[1] as isize;
                                if (0..h).contains(&iy) && (0..w).contains(&ix) {
                                    vals.push(f64::from(x[p * (h * w) as usize + (iy * w + ix) as usize]));
                                }
                            }
                        }
                        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                        // Half away from zero is f64::round.
                        let i = (p * oh + oy) * ow + ox;
                        prop_assert_eq!(f64::from(y[i]), mean.round());
                        prop_assert_eq!(f64::from(mx[i]), vals.iter().cloned().fold(f64::MIN, f64::max));
                    }
                }
            }
        }
    }
}
