//! onnxruntime's CPU arithmetic for QDQ graphs: the kernels behind
//! [`Rounding::OnnxRuntime`](super::Rounding::OnnxRuntime).
//!
//! # What onnxruntime runs
//!
//! onnxruntime (1.32, CPU execution provider, x86-64, default graph optimisation
//! `ORT_ENABLE_ALL`) does not execute a QDQ graph as written. Its graph transformers
//!
//! 1. convert every int8 `QuantizeLinear → DequantizeLinear` pair whose quantized tensor has
//!    exactly one consumer to uint8 (`QDQS8ToU8Transformer`: it requires the `Q` node to have a
//!    single output edge; zero points shift by 128, which changes no arithmetic), and
//! 2. fuse `DQ → op → Q` groups into int8 kernels (`QLinearConv`, `QLinearAdd`,
//!    `QLinearGlobalAveragePool`, ...) only where the activations are uint8: on x86-64 the QDQ
//!    selectors refuse int8 activations.
//!
//! So an int8 op of a QDQ graph runs onnxruntime's **fused integer kernel** when each of its
//! activation operands and its result is used by exactly one op, and otherwise stays **float**:
//! `DequantizeLinear` of the operands, the float op, `QuantizeLinear` of the result. In the
//! paper's three networks the float ones are the 1×1 convolutions reading or writing a residual
//! tensor (which has two consumers) and every residual `Add`; checked node by node against the
//! optimised graph onnxruntime saves (`SessionOptions.optimized_model_filepath`). The
//! interpreter applies this rule ([`crate::exec`]) and calls the matching function here.
//!
//! # Formulas (all `f32`, as onnxruntime; `rne` = round half to even)
//!
//! * `QuantizeLinear` (MLAS `MlasQuantizeLinear`): `clamp(x / s, lo − z, hi − z)` in `f32`,
//!   `rne`, `+ z` ([`quantize_f32`]). `DequantizeLinear`: `f32(q − z) · s`.
//! * Fused convolution / linear (`QLinearConv` with `MlasRequantizeOutput`, the same
//!   post-processing as the symmetric-conv kernels): `acc = Σ (x − z_x)(w − z_w) + bias` in
//!   `i32`, `scale[c] = (s_x · s_W[c]) / s_y` in `f32` (`ComputeOutputScale`),
//!   `y = rne(f32(acc) · scale[c]) + z_y`, clamped ([`mlas_requantize`], used by
//!   [`super::Requantizer`]). The bias is added with saturation (`quant::conv`); onnxruntime
//!   wraps, which differs only for a sum beyond the `i32` range.
//! * Float convolution (`Conv<float>` on `MlasConv`; weights are not constant initializers
//!   there, so no NCHWc rewrite): the operands dequantized, then per output an `f32` dot product
//!   in the order of MLAS's SGEMM (input channel, kernel row, kernel column), as a chain of fused
//!   multiply-adds from 0 restarted every `StrideK` terms (the K blocking of
//!   `MlasSgemmOperation`, [`sgemm_stride_k`]) with the partial sums added in order, then
//!   `+ f32(bias) · s_bias[c]`, then `QuantizeLinear` ([`conv2d_qdq_float`]). Verified bit-exact
//!   for 1×1 convolutions (the only float ones in the paper's networks).
//! * Float add (`Add` between `DequantizeLinear`s and a `QuantizeLinear`):
//!   `quantize_f32(f32(a − z_a)·s_a + f32(b − z_b)·s_b)` ([`add_qdq_float`]).
//! * Fused global average pool (`QLinearGlobalAveragePool`, MLAS `qlgavgpool.cpp`):
//!   `scale = s_in / (s_out · f32(H·W))` in `f32`, `acc = Σx − z_in·H·W` in `i32`,
//!   `y = rne(f32(acc) · scale) + z_out`, clamped ([`global_avg_pool_qlinear`]).
//! * Fused add (`QLinearAdd`, not used by the paper's networks; MLAS has several platform
//!   kernels): `rne(f32(a − z_a)·(s_a/s_c) + f32(b − z_b)·(s_b/s_c)) + z_c` with the ratios in
//!   `f32` ([`add_qlinear`]). Approximate: the SSE/NEON kernels use 22-bit fixed-point ratios.
//! * Float global average pool / average pool (`GlobalAveragePool`, `AveragePool` float, and
//!   `QLinearAveragePool`, which pools in float): the mean of the dequantized values in `f32`
//!   (summed in order, divided by the count), then `QuantizeLinear` ([`avg_pool_qdq_float`]).
//!   Approximate: MLAS sums vector lanes in another order.
//! * `q.requantize` (a `DequantizeLinear → QuantizeLinear` pair): `quantize_f32(f32(x − z)·s)`
//!   ([`requantize_qdq`]).

use super::conv::checked_product;
use super::quantize::QuantParams;
use super::requantizer::ActRange;
use crate::geometry::{Conv2dShape, Window2d};
use crate::kernel_error::{check_len, KernelError};

/// `MlasRequantizeOutput` on one accumulator (bias already added): `rne(f32(acc) · scale)`,
/// saturated to `i32` (the caller adds the zero point and clamps; clamping before or after
/// rounding agrees because the bounds are integers). NaN gives 0.
pub fn mlas_requantize(acc: i32, scale: f32) -> i32 {
    // `as` saturates and maps NaN to 0.
    (acc as f32 * scale).round_ties_even() as i32
}

/// onnxruntime's `QuantizeLinear` of one `f32` (MLAS `MlasQuantizeLinear`): `x / s` in `f32`,
/// clamped to `[range.min − z, range.max − z]` (NaN goes to the lower bound, as `MAXPS`), rounded
/// half to even, plus `z`.
pub fn quantize_f32(x: f32, out: QuantParams, range: ActRange) -> i8 {
    let z = i32::from(out.zero_point);
    let lo = (i32::from(range.min) - z) as f32;
    let hi = (i32::from(range.max) - z) as f32;
    // f32::max returns the non-NaN operand.
    let v = (x / out.scale).max(lo).min(hi).round_ties_even();
    // v + z lies in [range.min, range.max].
    (v as i32 + z) as i8
}

/// onnxruntime's `DequantizeLinear` of one int8 value: `f32(q − z) · s`.
pub fn dequantize_f32(q: i8, scale: f32, zero_point: i8) -> f32 {
    f32::from(i16::from(q) - i16::from(zero_point)) * scale
}

/// The K block length of MLAS's `MlasSgemmOperation` for an `N`-column, depth-`K` product with
/// an untransposed A: starting from 128 × 128 (`MLAS_SGEMM_STRIDEN` × `MLAS_SGEMM_STRIDEK`), the K
/// stride halves while it stays ≥ `K` when `N ≥ K`; otherwise it doubles while the N stride
/// halves (down to 16) and stays ≥ `N`.
pub fn sgemm_stride_k(n: usize, k: usize) -> usize {
    let (mut stride_n, mut stride_k) = (128_usize, 128_usize);
    if n >= k {
        while stride_k / 2 >= k {
            stride_k /= 2;
        }
    } else {
        while stride_n > 16 && stride_n / 2 >= n {
            stride_k *= 2;
            stride_n /= 2;
        }
    }
    stride_k.max(1)
}

/// The scales of a dequantized bias: one per output channel, or one for all.
#[derive(Clone, Copy, Debug)]
pub struct FloatBias<'a> {
    /// The int32 bias values, one per output channel.
    pub values: &'a [i32],
    /// Its scales (1 or one per output channel).
    pub scales: &'a [f32],
}

/// A float convolution of dequantized int8 operands followed by `QuantizeLinear`, as onnxruntime
/// runs a `DQ → Conv → Q` group it did not fuse (see the [module docs](self)).
///
/// `w_scales` / `w_zero_points` are per output channel (or one value; zero points may be empty).
/// Returns `[n, c_out, oh, ow]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_qdq_float(
    shape: &Conv2dShape,
    x: &[i8],
    x_params: QuantParams,
    w: &[i8],
    w_scales: &[f32],
    w_zero_points: &[i8],
    bias: Option<FloatBias<'_>>,
    out: QuantParams,
    range: ActRange,
) -> Result<Vec<i8>, KernelError> {
    let [oh, ow] = shape.checked_out_hw()?;
    x_params.check()?;
    out.check()?;
    range.check()?;
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
    let k_len = checked_product(&[cin_g, kh, kw])?;
    check_len("w", checked_product(&[shape.c_out, k_len])?, w.len())?;
    let per_channel = |len: usize, what: &str| {
        if len == 1 || len == shape.c_out {
            Ok(())
        } else {
            Err(KernelError::Invalid(format!(
                "{len} {what}, expected 1 or {}",
                shape.c_out
            )))
        }
    };
    per_channel(w_scales.len(), "weight scales")?;
    if !w_zero_points.is_empty() {
        per_channel(w_zero_points.len(), "weight zero points")?;
    }
    for &s in w_scales {
        super::quantize::check_scale(s)?;
    }
    if let Some(b) = bias {
        check_len("bias", shape.c_out, b.values.len())?;
        per_channel(b.scales.len(), "bias scales")?;
    }
    let out_len = checked_product(&[shape.n, shape.c_out, oh, ow])?;
    let pick = |v: &[f32], c: usize| v[if v.len() == 1 { 0 } else { c }];

    // DequantizeLinear of the activation and of the weights (per output channel).
    let xf: Vec<f32> = x
        .iter()
        .map(|&q| dequantize_f32(q, x_params.scale, x_params.zero_point))
        .collect();
    let wf: Vec<f32> = w
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let o = i / k_len;
            let z = match w_zero_points.len() {
                0 => 0,
                1 => w_zero_points[0],
                _ => w_zero_points[o],
            };
            dequantize_f32(q, pick(w_scales, o), z)
        })
        .collect();
    let stride_k = sgemm_stride_k(oh * ow, k_len);

    let mut y = Vec::with_capacity(out_len);
    let mut column = vec![0.0_f32; k_len];
    for b in 0..shape.n {
        for o in 0..shape.c_out {
            let group = o / cout_g;
            let wrow = &wf[o * k_len..(o + 1) * k_len];
            let bias_f = bias.map_or(0.0, |bv| bv.values[o] as f32 * pick(bv.scales, o));
            for oy in 0..oh {
                for ox in 0..ow {
                    // The im2col column of this output: (input channel, ky, kx), 0 in padding.
                    for ci in 0..cin_g {
                        let c = group * cin_g + ci;
                        let plane = &xf[(b * shape.c_in + c) * h * wd..][..h * wd];
                        for ky in 0..kh {
                            let iy = (oy * sh + ky * dh).checked_sub(pad_top).filter(|&v| v < h);
                            for kx in 0..kw {
                                let ix = (ox * sw + kx * dw)
                                    .checked_sub(pad_left)
                                    .filter(|&v| v < wd);
                                column[(ci * kh + ky) * kw + kx] = match (iy, ix) {
                                    (Some(iy), Some(ix)) => plane[iy * wd + ix],
                                    _ => 0.0,
                                };
                            }
                        }
                    }
                    let sum = blocked_dot(wrow, &column, stride_k);
                    y.push(quantize_f32(sum + bias_f, out, range));
                }
            }
        }
    }
    Ok(y)
}

/// MLAS's SGEMM dot product: a fused-multiply-add chain from 0 over each block of `stride_k`
/// terms; the block results added to the running output in order.
fn blocked_dot(a: &[f32], b: &[f32], stride_k: usize) -> f32 {
    let mut total = 0.0_f32;
    for (i, (ab, bb)) in a.chunks(stride_k).zip(b.chunks(stride_k)).enumerate() {
        let block = ab
            .iter()
            .zip(bb)
            .fold(0.0_f32, |s, (&p, &q)| p.mul_add(q, s));
        total = if i == 0 { block } else { total + block };
    }
    total
}

/// The float `Add` of two dequantized int8 tensors followed by `QuantizeLinear`, as onnxruntime
/// runs an unfused `DQ, DQ → Add → Q` group: `quantize_f32(f32(a − z_a)·s_a + f32(b − z_b)·s_b)`.
pub fn add_qdq_float(
    a: &[i8],
    a_params: QuantParams,
    b: &[i8],
    b_params: QuantParams,
    out: QuantParams,
    range: ActRange,
) -> Result<Vec<i8>, KernelError> {
    a_params.check()?;
    b_params.check()?;
    out.check()?;
    range.check()?;
    check_len("b", a.len(), b.len())?;
    Ok(a.iter()
        .zip(b)
        .map(|(&p, &q)| {
            let sum = dequantize_f32(p, a_params.scale, a_params.zero_point)
                + dequantize_f32(q, b_params.scale, b_params.zero_point);
            quantize_f32(sum, out, range)
        })
        .collect())
}

/// One element of onnxruntime's fused `QLinearAdd`, in the float form of its AVX2 kernel:
/// `rne(f32(a − z_a)·r_a + f32(b − z_b)·r_b) + z_c` with `r_a = s_a / s_c`, `r_b = s_b / s_c` in
/// `f32`, clamped. Not exercised by the paper's networks (onnxruntime leaves their adds in float);
/// the SSE2 and NEON kernels use 22-bit fixed-point ratios and can differ by one near ties.
pub fn add_qlinear(
    a: i8,
    a_params: QuantParams,
    b: i8,
    b_params: QuantParams,
    out: QuantParams,
    range: ActRange,
) -> i8 {
    let ra = a_params.scale / out.scale;
    let rb = b_params.scale / out.scale;
    let da = f32::from(i16::from(a) - i16::from(a_params.zero_point));
    let db = f32::from(i16::from(b) - i16::from(b_params.zero_point));
    let v = (da * ra + db * rb).round_ties_even() as i32;
    range.clamp(v.saturating_add(i32::from(out.zero_point)))
}

/// onnxruntime's fused `QLinearGlobalAveragePool` (MLAS `MlasQLinearGlobalAveragePool`) on NCHW
/// `x` of shape `dims`: `scale = s_in / (s_out · f32(H·W))` in `f32`, `acc = Σx − z_in·H·W` in
/// `i32`, `y = clamp(rne(f32(acc) · scale) + z_out)`. Output `[n, c]`. MLAS rejects planes of
/// 2^24 elements or more and scales outside `[2^−32, 256)`; so does this function.
pub fn global_avg_pool_qlinear(
    x: &[i8],
    dims: [usize; 4],
    input: QuantParams,
    output: QuantParams,
) -> Result<Vec<i8>, KernelError> {
    input.check()?;
    output.check()?;
    check_len("x", checked_product(&dims)?, x.len())?;
    let [n, c, h, w] = dims;
    let count = h * w;
    if count == 0 || count >= 1 << 24 {
        return Err(KernelError::Invalid(format!(
            "QLinearGlobalAveragePool over {count} elements per plane (must be in [1, 2^24))"
        )));
    }
    let scale = input.scale / (output.scale * count as f32);
    if !(scale >= 2.0_f32.powi(-32) && scale < 256.0) {
        return Err(KernelError::Invalid(format!(
            "QLinearGlobalAveragePool scale {scale} outside [2^-32, 256)"
        )));
    }
    // count < 2^24 and |z_in| <= 128: the bias fits in i32, and so does the sum.
    let bias = -i32::from(input.zero_point) * count as i32;
    Ok((0..n * c)
        .map(|p| {
            let sum: i32 = x[p * count..(p + 1) * count]
                .iter()
                .map(|&v| i32::from(v))
                .sum();
            let v = mlas_requantize(sum + bias, scale);
            ActRange::FULL.clamp(v.saturating_add(i32::from(output.zero_point)))
        })
        .collect())
}

/// Float average pooling of dequantized int8 values followed by `QuantizeLinear`: per window,
/// the valid (non-padding) values dequantized, summed in order in `f32`, divided by their count,
/// quantized to `output` and clamped to `range`. `window = None` pools each whole plane (global
/// average pool). Output `[n, c, oh, ow]`.
pub fn avg_pool_qdq_float(
    x: &[i8],
    dims: [usize; 4],
    window: Option<&Window2d>,
    input: QuantParams,
    output: QuantParams,
    range: ActRange,
) -> Result<Vec<i8>, KernelError> {
    input.check()?;
    output.check()?;
    range.check()?;
    check_len("x", checked_product(&dims)?, x.len())?;
    let [n, c, h, w] = dims;
    let whole = Window2d {
        kernel: [h, w],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
    };
    let window = window.unwrap_or(&whole);
    let [oh, ow] = window.output_size([h, w]).ok_or_else(|| {
        KernelError::Invalid(format!("pool window {window:?} does not fit {dims:?}"))
    })?;
    let [kh, kw] = window.kernel;
    let [sh, sw] = window.strides;
    let [dh, dw] = window.dilations;
    let [pad_top, pad_left, _, _] = window.pads;
    let mut y = Vec::with_capacity(checked_product(&[n, c, oh, ow])?);
    for p in 0..n * c {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut sum, mut count) = (0.0_f32, 0_u32);
                for ky in 0..kh {
                    let Some(iy) = (oy * sh + ky * dh).checked_sub(pad_top).filter(|&v| v < h)
                    else {
                        continue;
                    };
                    for kx in 0..kw {
                        if let Some(ix) =
                            (ox * sw + kx * dw).checked_sub(pad_left).filter(|&v| v < w)
                        {
                            sum +=
                                dequantize_f32(plane[iy * w + ix], input.scale, input.zero_point);
                            count += 1;
                        }
                    }
                }
                if count == 0 {
                    return Err(KernelError::Invalid(
                        "average pool window lies entirely in the padding".into(),
                    ));
                }
                y.push(quantize_f32(sum / count as f32, output, range));
            }
        }
    }
    Ok(y)
}

/// A `DequantizeLinear → QuantizeLinear` pair: `quantize_f32(f32(x − z_in)·s_in)` to `output`.
pub fn requantize_qdq(
    x: &[i8],
    input: QuantParams,
    output: QuantParams,
) -> Result<Vec<i8>, KernelError> {
    input.check()?;
    output.check()?;
    Ok(x.iter()
        .map(|&q| {
            quantize_f32(
                dequantize_f32(q, input.scale, input.zero_point),
                output,
                ActRange::FULL,
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{Requantizer, Rounding};

    fn qp(scale: f32, zero_point: i8) -> QuantParams {
        QuantParams { scale, zero_point }
    }

    fn window(k: usize, s: usize, p: usize) -> Window2d {
        Window2d {
            kernel: [k, k],
            strides: [s, s],
            pads: [p; 4],
            dilations: [1, 1],
        }
    }

    #[test]
    fn requantize_rounds_the_f32_product_half_to_even() {
        // 5 · 0.5 = 2.5 -> 2; 7 · 0.5 = 3.5 -> 4; −5 · 0.5 = −2.5 -> −2; saturation and NaN.
        assert_eq!(mlas_requantize(5, 0.5), 2);
        assert_eq!(mlas_requantize(7, 0.5), 4);
        assert_eq!(mlas_requantize(-5, 0.5), -2);
        assert_eq!(mlas_requantize(i32::MAX, 2.0), i32::MAX);
        assert_eq!(mlas_requantize(1, f32::NAN), 0);
        // f32(2^24 + 1) = 2^24: the accumulator itself is rounded to f32 first.
        assert_eq!(mlas_requantize((1 << 24) + 1, 1.0), 1 << 24);
    }

    #[test]
    fn fused_conv_scale_is_computed_and_applied_in_f32() {
        // A real tie of MCUNet's blocks.0.depthwise (channel 7): s_x = s_y = 0.023529412,
        // s_W = 0.012871988, acc = 12702. Exactly, acc · s_x · s_W / s_y = 163.499993...; in f32
        // the scale is 0.012871988 and the product rounds to 163.5, a tie, which goes to even:
        // 164, as onnxruntime computes. The f64 modes give 163.
        let (sx, sw) = (0.023_529_412_f32, 0.012_871_988_f32);
        let ort = Requantizer::from_tensor_scales(sx, &[sw], sx, Rounding::OnnxRuntime).unwrap();
        let float = Requantizer::from_tensor_scales(sx, &[sw], sx, Rounding::FloatScale).unwrap();
        assert_eq!(ort.scales(), &[f64::from(sx * sw / sx)]);
        assert_eq!(12702.0_f32 * (sx * sw / sx), 163.5);
        assert_eq!(ort.apply(12702, 0), 164);
        assert_eq!(float.apply(12702, 0), 163);
        // Hand ties with an exact scale: 0.5 · 5 = 2.5 -> 2, 0.5 · 7 = 3.5 -> 4.
        let half =
            Requantizer::from_tensor_scales(1.0, &[0.5], 1.0, Rounding::OnnxRuntime).unwrap();
        assert_eq!(
            (half.apply(5, 0), half.apply(7, 0), half.apply(-7, 0)),
            (2, 4, -4)
        );
    }

    #[test]
    fn quantize_linear_divides_clamps_and_rounds_to_even() {
        let full = ActRange::FULL;
        // 2.5 / 1 -> 2, 3.5 -> 4, −2.5 -> −2, then + z.
        assert_eq!(quantize_f32(2.5, qp(1.0, 0), full), 2);
        assert_eq!(quantize_f32(3.5, qp(1.0, 0), full), 4);
        assert_eq!(quantize_f32(-2.5, qp(1.0, 3), full), 1);
        // 0.75 / 0.5 = 1.5 -> 2 (the division is in f32 and exact here).
        assert_eq!(quantize_f32(0.75, qp(0.5, -128), full), -126);
        // Clamped before rounding to [min − z, max − z]; NaN goes to the lower bound.
        assert_eq!(quantize_f32(1000.0, qp(1.0, 10), full), 127);
        assert_eq!(quantize_f32(-1000.0, qp(1.0, 10), full), -128);
        assert_eq!(quantize_f32(f32::NAN, qp(1.0, 10), full), -128);
        assert_eq!(
            quantize_f32(5.0, qp(1.0, 0), ActRange { min: -3, max: 4 }),
            4
        );
        assert_eq!(dequantize_f32(-128, 0.5, 3), -65.5);
    }

    #[test]
    fn sgemm_k_blocking() {
        // N >= K: the K stride halves from 128 while it stays >= K.
        assert_eq!(sgemm_stride_k(1024, 32), 32);
        assert_eq!(sgemm_stride_k(1024, 48), 64);
        assert_eq!(sgemm_stride_k(1024, 144), 128);
        // N < K: the K stride doubles while the N stride (from 128, down to 16) stays >= N.
        assert_eq!(sgemm_stride_k(64, 480), 256);
        assert_eq!(sgemm_stride_k(16, 480), 1024);
        assert_eq!(sgemm_stride_k(100, 480), 128);
        // Blocks restart the fused multiply-add chain from 0: with stride 2 the big terms cancel
        // inside each block before the 1s could survive; as one chain a 1 survives.
        let a = [1.0e8_f32, 1.0, -1.0e8, 1.0];
        let b = [1.0_f32; 4];
        assert_eq!(blocked_dot(&a, &b, 2), 0.0);
        assert_eq!(blocked_dot(&a, &b, 4), 1.0);
    }

    #[test]
    fn float_conv_hand_example() {
        // 1×1 conv, 2 input channels, 1×2 image; x − z_x = [[1, 1], [1, 3]] · 0.5,
        // w = [1, 2] · 1.0: dot = 0.5 + 1.0 = 1.5 -> 2 (even); 0.5 + 3.0 = 3.5 -> 4.
        let shape = Conv2dShape {
            n: 1,
            c_in: 2,
            in_hw: [1, 2],
            c_out: 1,
            groups: 1,
            window: window(1, 1, 0),
        };
        let x = [2, 2, 2, 4]; // channel 0: [2, 2], channel 1: [2, 4]; z_x = 1
        let full = ActRange::FULL;
        let y = conv2d_qdq_float(
            &shape,
            &x,
            qp(0.5, 1),
            &[1, 2],
            &[1.0],
            &[],
            None,
            qp(1.0, 0),
            full,
        )
        .unwrap();
        assert_eq!(y, vec![2, 4]);
        // Bias 2 with scale 0.5 adds 1.0 after the dot: 2.5 -> 2, 4.5 -> 4; z_y = −1.
        let bias = FloatBias {
            values: &[2],
            scales: &[0.5],
        };
        let y = conv2d_qdq_float(
            &shape,
            &x,
            qp(0.5, 1),
            &[1, 2],
            &[1.0],
            &[],
            Some(bias),
            qp(1.0, -1),
            full,
        )
        .unwrap();
        assert_eq!(y, vec![1, 3]);
        // 3×3 with padding 1 on a 1×1 image: only the centre tap sees data.
        let shape = Conv2dShape {
            in_hw: [1, 1],
            c_in: 1,
            window: window(3, 1, 1),
            ..shape
        };
        let w = [9, 9, 9, 9, 3, 9, 9, 9, 9];
        let y = conv2d_qdq_float(
            &shape,
            &[5],
            qp(0.5, 0),
            &w,
            &[1.0],
            &[0],
            None,
            qp(1.0, 0),
            full,
        )
        .unwrap();
        // 2.5 · 3 = 7.5 -> 8.
        assert_eq!(y, vec![8]);
        assert!(conv2d_qdq_float(
            &shape,
            &[5, 5],
            qp(0.5, 0),
            &w,
            &[1.0],
            &[],
            None,
            qp(1.0, 0),
            full
        )
        .is_err());
        assert!(conv2d_qdq_float(
            &shape,
            &[5],
            qp(0.5, 0),
            &w,
            &[1.0, 2.0],
            &[],
            None,
            qp(1.0, 0),
            full
        )
        .is_err());
    }

    #[test]
    fn float_add_rounds_the_f32_sum() {
        // 5 · 0.5 + 0 = 2.5 -> 2; 7 · 0.5 = 3.5 -> 4; (3 − 1) · 0.5 + (2 − 0) · 0.25 = 1.5 -> 2.
        let full = ActRange::FULL;
        let y = add_qdq_float(
            &[5, 7, 3],
            qp(0.5, 0),
            &[0, 0, 2],
            qp(0.25, 0),
            qp(1.0, 0),
            full,
        )
        .unwrap();
        assert_eq!(y, vec![2, 4, 2]);
        // ReLU floor through the range, zero point of the output.
        let relu = ActRange {
            min: -128,
            max: 127,
        };
        let y = add_qdq_float(&[-10], qp(1.0, 0), &[0], qp(1.0, 0), qp(1.0, -128), relu).unwrap();
        assert_eq!(y, vec![-128]);
        assert!(add_qdq_float(&[1], qp(1.0, 0), &[1, 2], qp(1.0, 0), qp(1.0, 0), full).is_err());
    }

    #[test]
    fn qlinear_add_uses_f32_ratios() {
        // r_a = 0.5 / 1 = 0.5: 5 · 0.5 = 2.5 -> 2; 7 · 0.5 + 0 = 3.5 -> 4; z_c = 1.
        let full = ActRange::FULL;
        assert_eq!(
            add_qlinear(5, qp(0.5, 0), 0, qp(0.5, 0), qp(1.0, 1), full),
            3
        );
        assert_eq!(
            add_qlinear(7, qp(0.5, 0), 0, qp(0.5, 0), qp(1.0, 1), full),
            5
        );
        assert_eq!(
            add_qlinear(127, qp(1.0, -128), 127, qp(1.0, -128), qp(1.0, 0), full),
            127
        );
    }

    #[test]
    fn qlinear_global_average_pool() {
        // scale = 1 / (1 · 2) = 0.5. Planes [1, 2] -> 1.5 -> 2; [2, 3] -> 2.5 -> 2;
        // [-3, 0] -> −1.5 -> −2; [-5, 0] -> −2.5 -> −2.
        let x = [1, 2, 2, 3, -3, 0, -5, 0];
        let y = global_avg_pool_qlinear(&x, [2, 2, 1, 2], qp(1.0, 0), qp(1.0, 0)).unwrap();
        assert_eq!(y, vec![2, 2, -2, -2]);
        // z_in = −1: acc = Σx + 2; s_in / (s_out · 2) = 0.25 / (0.5 · 2) = 0.25:
        // [1, 2] -> 5 · 0.25 = 1.25 -> 1; [2, 3] -> 7 · 0.25 = 1.75 -> 2; then + z_out = 3.
        let y = global_avg_pool_qlinear(&x[..4], [1, 2, 1, 2], qp(0.25, -1), qp(0.5, 3)).unwrap();
        assert_eq!(y, vec![4, 5]);
        // Saturation (255 · 25), and MLAS's scale range [2^-32, 256): 1 / (0.001 · 4) = 250 is
        // accepted, 1 / (0.0001 · 4) = 2500 is not.
        let y = global_avg_pool_qlinear(&[127; 4], [1, 1, 2, 2], qp(1.0, -128), qp(0.01, 0));
        assert_eq!(y.unwrap(), vec![127]);
        let y = global_avg_pool_qlinear(&[0; 4], [1, 1, 2, 2], qp(1.0, 0), qp(0.001, 0));
        assert_eq!(y.unwrap(), vec![0]);
        let y = global_avg_pool_qlinear(&[0; 4], [1, 1, 2, 2], qp(1.0, 0), qp(0.0001, 0));
        assert!(y.is_err());
        assert!(global_avg_pool_qlinear(&[0; 3], [1, 1, 2, 2], qp(1.0, 0), qp(1.0, 0)).is_err());
    }

    #[test]
    fn float_pools_and_requantize() {
        let full = ActRange::FULL;
        // Global: (1 + 2) · 0.5 / 2 = 0.75 -> 0.75 / 0.5 = 1.5 -> 2.
        let y = avg_pool_qdq_float(&[1, 2], [1, 1, 1, 2], None, qp(0.5, 0), qp(0.5, 0), full);
        assert_eq!(y.unwrap(), vec![2]);
        // 2×2 window, stride 1, pad 1 on a 1×1 image: every window holds only the one value.
        let y = avg_pool_qdq_float(
            &[5],
            [1, 1, 1, 1],
            Some(&window(2, 1, 1)),
            qp(0.5, 0),
            qp(1.0, 0),
            full,
        );
        // 5 · 0.5 = 2.5 -> 2.
        assert_eq!(y.unwrap(), vec![2; 4]);
        // q.requantize: (x − z) · s_in / s_out: (3 − 0) · 0.5 = 1.5 -> 2, (−5) · 0.5 -> −2.
        let y = requantize_qdq(&[3, -5, 127], qp(0.5, 0), qp(1.0, 0)).unwrap();
        assert_eq!(y, vec![2, -2, 64]);
    }
}
