//! Grouped 2-D convolution (including depthwise) in floating point, and its gradients.
//!
//! Layouts: input `[n, c_in, h, w]`, weight `[c_out, c_in / groups, kh, kw]`, bias `[c_out]`,
//! output `[n, c_out, oh, ow]`. Padding is implicit zeros. Every kernel walks the same loop nest:
//! for each (batch, output channel, input channel of its group, tap), the output rows and
//! columns that read real input are computed once and the inner loop runs over a contiguous row.

use crate::error::{check_len, KernelError};
use crate::geometry::{for_each_tap_row, Conv2dGeometry};

use super::Scalar;

/// Calls `f(batch, out_channel, in_channel, weight_index)` for every connected triple; nothing
/// when the input or output is empty.
fn for_each_channel_pair(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize, usize)) {
    if g.input_len() == 0 || g.output_len() == 0 {
        return;
    }
    let (cin_g, cout_g) = (g.c_in_per_group(), g.c_out_per_group());
    let taps = g.window().kernel[0] * g.window().kernel[1];
    for b in 0..g.n() {
        for grp in 0..g.groups() {
            for oc in grp * cout_g..(grp + 1) * cout_g {
                for icg in 0..cin_g {
                    f(b, oc, grp * cin_g + icg, (oc * cin_g + icg) * taps);
                }
            }
        }
    }
}

/// Forward convolution `out = conv(x, w) + b`, accumulated starting from the bias.
pub fn conv2d<T: Scalar>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
    g: &Conv2dGeometry,
) -> Result<(), KernelError> {
    check_len("conv2d input", g.input_len(), x.len())?;
    check_len("conv2d weight", g.weight_len(), w.len())?;
    check_len("conv2d output", g.output_len(), out.len())?;
    if let Some(bias) = bias {
        check_len("conv2d bias", g.c_out(), bias.len())?;
    }
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    out.fill(T::ZERO);
    if out_plane == 0 {
        return Ok(());
    }
    if let Some(bias) = bias {
        for (plane, &b) in out.chunks_exact_mut(out_plane).zip(bias.iter().cycle()) {
            plane.fill(b);
        }
    }
    let axes = g.axes();
    let (w_in, ow, sw) = (axes[1].in_len, axes[1].out_len, axes[1].stride);
    let taps = g.window().kernel[0] * g.window().kernel[1];
    for_each_channel_pair(g, |b, oc, ic, w_base| {
        let xp = &x[(b * g.c_in() + ic) * in_plane..][..in_plane];
        let y = &mut out[(b * g.c_out() + oc) * out_plane..][..out_plane];
        let wk = &w[w_base..w_base + taps];
        for_each_tap_row(&axes, |oy, iy, oxs, ix0, tap| {
            let wv = wk[tap];
            let y_row = &mut y[oy * ow..(oy + 1) * ow][oxs];
            let x_row = &xp[iy * w_in..(iy + 1) * w_in];
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
    Ok(())
}

/// Gradient with respect to the input (a transposed convolution): `dy` `[n, c_out, oh, ow]`,
/// `w` → `out` `[n, c_in, h, w]`. Input positions no window reaches get zero.
pub fn conv2d_backward_input<T: Scalar>(
    dy: &[T],
    w: &[T],
    out: &mut [T],
    g: &Conv2dGeometry,
) -> Result<(), KernelError> {
    check_lens(dy.len(), w.len(), out.len(), g)?;
    backward_input_with(dy, out, g, |i| w[i])
}

/// `conv2d_backward_input` with an `i8` weight used at its real value `f32(q − z) · s` (the
/// channel's scale and zero point, exactly as [`crate::int8::dequantize`] computes it),
/// dequantized tap by tap: the same `f32` values in the same order as dequantizing the whole
/// weight and calling [`conv2d_backward_input`], so the result is bit-identical, without an
/// `f32` copy of the weight.
pub fn conv2d_backward_input_int8(
    dy: &[f32],
    w: &[i8],
    p: &crate::int8::PerAxis<'_>,
    out: &mut [f32],
    g: &Conv2dGeometry,
) -> Result<(), KernelError> {
    check_lens(dy.len(), w.len(), out.len(), g)?;
    backward_input_with(dy, out, g, int8_weight(w, p))
}

/// The real value `f32(q − z) · s` of weight element `i` (its channel's scale and zero point).
pub(crate) fn int8_weight<'a>(
    w: &'a [i8],
    p: &'a crate::int8::PerAxis<'_>,
) -> impl Fn(usize) -> f32 + 'a {
    move |i| {
        let (s, z) = p.of(i);
        f32::from(i16::from(w[i]) - i16::from(z)) * s
    }
}

/// The length checks of the input gradient, in order: `dy`, the weight, the output.
fn check_lens(dy: usize, w: usize, out: usize, g: &Conv2dGeometry) -> Result<(), KernelError> {
    check_len("conv2d grad_output", g.output_len(), dy)?;
    check_len("conv2d weight", g.weight_len(), w)?;
    check_len("conv2d grad_input", g.input_len(), out)
}

/// The transposed convolution with the weight element `i` read through `weight(i)` (lengths
/// already checked).
pub(crate) fn backward_input_with<T: Scalar>(
    dy: &[T],
    out: &mut [T],
    g: &Conv2dGeometry,
    weight: impl Fn(usize) -> T,
) -> Result<(), KernelError> {
    out.fill(T::ZERO);
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    if out_plane == 0 || in_plane == 0 {
        return Ok(());
    }
    let axes = g.axes();
    let (w_in, ow, sw) = (axes[1].in_len, axes[1].out_len, axes[1].stride);
    for_each_channel_pair(g, |b, oc, ic, w_base| {
        let dyp = &dy[(b * g.c_out() + oc) * out_plane..][..out_plane];
        let dx = &mut out[(b * g.c_in() + ic) * in_plane..][..in_plane];
        for_each_tap_row(&axes, |oy, iy, oxs, ix0, tap| {
            let wv = weight(w_base + tap);
            let dy_row = &dyp[oy * ow..(oy + 1) * ow][oxs];
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
    Ok(())
}

/// A contiguous range `[start, start + len)` of input channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelSlice {
    /// First input channel.
    pub start: usize,
    /// Number of channels.
    pub len: usize,
}

/// Gradient with respect to the weight, summed over the batch: `x` `[n, c_in, h, w]`, `dy` →
/// `out` `[c_out, c_in / groups, kh, kw]`.
pub fn conv2d_backward_weight<T: Scalar>(
    x: &[T],
    dy: &[T],
    out: &mut [T],
    g: &Conv2dGeometry,
) -> Result<(), KernelError> {
    check_len("conv2d input", g.input_len(), x.len())?;
    check_len("conv2d grad_output", g.output_len(), dy.len())?;
    check_len("conv2d grad_weight", g.weight_len(), out.len())?;
    out.fill(T::ZERO);
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    if out_plane == 0 || in_plane == 0 {
        return Ok(());
    }
    let taps = g.window().kernel[0] * g.window().kernel[1];
    for_each_channel_pair(g, |b, oc, ic, w_base| {
        let xp = &x[(b * g.c_in() + ic) * in_plane..][..in_plane];
        let dyp = &dy[(b * g.c_out() + oc) * out_plane..][..out_plane];
        weight_taps(xp, dyp, &mut out[w_base..w_base + taps], g);
    });
    Ok(())
}

/// The weight gradient of a dense (`groups == 1`) convolution for the input channels of `slice`
/// only: `x` holds just those channels, `[n, slice.len, h, w]`, and `out` is
/// `[c_out, slice.len, kh, kw]` — the gradient of `w[:, slice, :, :]`. Sparse updates of a slice
/// of channels save only these activations.
pub fn conv2d_backward_weight_slice<T: Scalar>(
    x: &[T],
    dy: &[T],
    out: &mut [T],
    g: &Conv2dGeometry,
    slice: ChannelSlice,
) -> Result<(), KernelError> {
    if g.groups() != 1 {
        return Err(KernelError::Geometry(
            "a channel-slice weight gradient needs a dense (groups = 1) convolution",
        ));
    }
    let end = slice
        .start
        .checked_add(slice.len)
        .filter(|&e| e <= g.c_in())
        .ok_or(KernelError::Geometry(
            "channel slice outside the input channels",
        ))?;
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    let taps = g.window().kernel[0] * g.window().kernel[1];
    check_len("conv2d input slice", g.n() * slice.len * in_plane, x.len())?;
    check_len("conv2d grad_output", g.output_len(), dy.len())?;
    check_len(
        "conv2d grad_weight slice",
        g.c_out() * slice.len * taps,
        out.len(),
    )?;
    out.fill(T::ZERO);
    if out_plane == 0 || in_plane == 0 || end == slice.start {
        return Ok(());
    }
    for b in 0..g.n() {
        for oc in 0..g.c_out() {
            let dyp = &dy[(b * g.c_out() + oc) * out_plane..][..out_plane];
            for ic in 0..slice.len {
                let xp = &x[(b * slice.len + ic) * in_plane..][..in_plane];
                let w_base = (oc * slice.len + ic) * taps;
                weight_taps(xp, dyp, &mut out[w_base..w_base + taps], g);
            }
        }
    }
    Ok(())
}

/// `dw[tap] += Σ dy · x` over one (input plane, output plane) pair, row by row.
#[inline]
pub(crate) fn weight_taps<T: Scalar>(xp: &[T], dyp: &[T], dw: &mut [T], g: &Conv2dGeometry) {
    let axes = g.axes();
    let (w_in, ow, sw) = (axes[1].in_len, axes[1].out_len, axes[1].stride);
    for_each_tap_row(&axes, |oy, iy, oxs, ix0, tap| {
        let dy_row = &dyp[oy * ow..(oy + 1) * ow][oxs];
        let x_row = &xp[iy * w_in..(iy + 1) * w_in];
        let mut acc = T::ZERO;
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
}

/// Gradient with respect to the bias: `dy` summed over batch and space → `out` `[c_out]`.
pub fn conv2d_backward_bias<T: Scalar>(
    dy: &[T],
    out: &mut [T],
    g: &Conv2dGeometry,
) -> Result<(), KernelError> {
    check_len("conv2d grad_output", g.output_len(), dy.len())?;
    check_len("conv2d grad_bias", g.c_out(), out.len())?;
    out.fill(T::ZERO);
    let out_plane = g.out_plane();
    if out_plane == 0 {
        return Ok(());
    }
    for (i, plane) in dy.chunks_exact(out_plane).enumerate() {
        out[i % g.c_out()] += plane.iter().copied().sum::<T>();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::geometry::Window2d;
    use proptest::prelude::*;

    proptest! {
        /// The slice kernel equals the matching slice of the full weight gradient.
        #[test]
        fn slice_matches_full(c_in in 1..5_usize, c_out in 1..4_usize, hw in 2..6_usize, k in 1..4_usize, lo in 0..5_usize, len in 0..5_usize, seed in any::<u32>()) {
            let window = Window2d { kernel: [k, k], strides: [1, 2], pads: [1; 4], dilations: [1, 1] };
            let Ok(g) = Conv2dGeometry::new(2, c_in, [hw, hw], c_out, 1, window) else { return Ok(()) };
            let (lo, len) = (lo.min(c_in), len.min(c_in - lo.min(c_in)));
            let mut s = seed | 1;
            let mut next = || { s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223); (s >> 8) as f32 / 16_777_216.0 - 0.5 };
            let x: Vec<f32> = (0..g.input_len()).map(|_| next()).collect();
            let dy: Vec<f32> = (0..g.output_len()).map(|_| next()).collect();
            let mut full = vec![0.0; g.weight_len()];
            conv2d_backward_weight(&x, &dy, &mut full, &g).unwrap();
            let plane = hw * hw;
            let xs: Vec<f32> = (0..2).flat_map(|b| x[(b * c_in + lo) * plane..(b * c_in + lo + len) * plane].to_vec()).collect();
            let mut part = vec![0.0; c_out * len * k * k];
            conv2d_backward_weight_slice(&xs, &dy, &mut part, &g, ChannelSlice { start: lo, len }).unwrap();
            let expect: Vec<f32> = (0..c_out).flat_map(|o| full[(o * c_in + lo) * k * k..(o * c_in + lo + len) * k * k].to_vec()).collect();
            prop_assert_eq!(part, expect);
        }

        /// The int8-weight kernel equals dequantizing the whole weight and running the f32 kernel.
        #[test]
        fn int8_weight_matches_dequantized(c in 1..4_usize, groups in 1..3_usize, c_out_g in 1..3_usize, hw in 1..6_usize, k in 1..4_usize, stride in 1..3_usize, per_channel in any::<bool>(), seed in any::<u32>()) {
            let window = Window2d { kernel: [k, k], strides: [stride, stride], pads: [1; 4], dilations: [1, 1] };
            let Ok(g) = Conv2dGeometry::new(2, c * groups, [hw, hw], c_out_g * groups, groups, window) else { return Ok(()) };
            let mut s = seed | 1;
            let mut next = || { s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223); s >> 8 };
            let dy: Vec<f32> = (0..g.output_len()).map(|_| next() as f32 / 16_777_216.0 - 0.5).collect();
            let w: Vec<i8> = (0..g.weight_len()).map(|_| next() as u8 as i8).collect();
            let channels = if per_channel { g.c_out() } else { 1 };
            let scales: Vec<f32> = (0..channels).map(|_| (next() % 1000 + 1) as f32 / 7919.0).collect();
            let zps: Vec<i8> = (0..channels).map(|_| next() as u8 as i8).collect();
            let inner = g.weight_len() / g.c_out();
            let p = crate::int8::PerAxis::new(&scales, &zps, inner).unwrap();
            let mut wf = vec![0.0; w.len()];
            crate::int8::dequantize(&w, &mut wf, &p).unwrap();
            let mut expect = vec![0.0; g.input_len()];
            conv2d_backward_input(&dy, &wf, &mut expect, &g).unwrap();
            let mut got = vec![1.0; g.input_len()];
            conv2d_backward_input_int8(&dy, &w, &p, &mut got, &g).unwrap();
            prop_assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), expect.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }
}
