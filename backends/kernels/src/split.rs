//! Convolutions whose `i8` weight is stored in two parts along its input channels: the
//! **trained** slice `[c_out, kept, kh, kw]` (an SRAM copy updated by the optimizer) and the
//! **frozen** remainder `[c_out, c_in − kept, kh, kw]` (left in flash). A sparse update that
//! trains only the first `kept` input channels of a layer then needs SRAM for the slice only.
//!
//! Both kernels are bit-identical with the unsplit kernels run on the whole weight (the slice
//! ++ the remainder, row by row):
//!
//! - [`conv2d_int8_split`] gathers the whole rows of up to [`SPLIT_GROUP`] output channels into
//!   a small `i8` scratch and runs [`conv2d_int8`] on that group of output channels (each output
//!   channel is computed independently, from its own row, so the group's outputs are the same
//!   bits);
//! - [`conv2d_backward_input_int8_split`] runs [`conv2d_backward_input_int8`] twice, once per
//!   part, each writing its own range of input channels of `dx` (each `dx` element sums over
//!   output channels and taps only, in the same order).
//!
//! Only dense convolutions (`groups == 1`) are split; a grouped weight is refused.

use crate::error::{check_len, check_scratch, KernelError};
use crate::float::conv2d_backward_input_int8;
use crate::geometry::Conv2dGeometry;
use crate::int8::{conv2d_int8, Conv2dInt8Params, PerAxis};
use crate::requant::{OutputStage, Requant};

/// Output channels whose weight rows [`conv2d_int8_split`] gathers at once.
pub const SPLIT_GROUP: usize = 8;

/// A weight stored as its trained first `kept` input channels and its frozen remainder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitWeight<'a> {
    /// `[c_out, kept, kh, kw]`.
    pub trained: &'a [i8],
    /// `[c_out, c_in − kept, kh, kw]`.
    pub frozen: &'a [i8],
    /// Input channels in the trained part.
    pub kept: usize,
}

impl SplitWeight<'_> {
    /// Checks the split against geometry `g`: dense, `kept ≤ c_in`, both parts of the right
    /// length. Returns the per-output-channel lengths of the two parts.
    fn check(&self, g: &Conv2dGeometry) -> Result<(usize, usize), KernelError> {
        if g.groups() != 1 {
            return Err(KernelError::Param(
                "a split weight needs a dense convolution (groups 1)",
            ));
        }
        if self.kept > g.c_in() {
            return Err(KernelError::Param(
                "a split weight keeps more input channels than the convolution has",
            ));
        }
        let taps = g.window().kernel[0] * g.window().kernel[1];
        let (a, b) = (self.kept * taps, (g.c_in() - self.kept) * taps);
        check_len(
            "split weight (trained part)",
            g.c_out() * a,
            self.trained.len(),
        )?;
        check_len(
            "split weight (frozen part)",
            g.c_out() * b,
            self.frozen.len(),
        )?;
        Ok((a, b))
    }
}

/// The `i8` gather scratch [`conv2d_int8_split`] needs: the rows of [`SPLIT_GROUP`] output
/// channels (fewer when the convolution has fewer).
pub fn conv2d_int8_split_gather_len(g: &Conv2dGeometry) -> usize {
    let taps = g.window().kernel[0] * g.window().kernel[1];
    SPLIT_GROUP.min(g.c_out()) * g.c_in_per_group() * taps
}

/// The `i32` scratch [`conv2d_int8_split`] needs: one output plane (as [`conv2d_int8`]).
pub fn conv2d_int8_split_scratch_len(g: &Conv2dGeometry) -> usize {
    g.out_plane()
}

/// A per-tensor (one entry) or per-output-channel table restricted to channels `range`.
fn channels_of<T>(table: &[T], range: core::ops::Range<usize>) -> &[T] {
    if table.len() <= 1 {
        table
    } else {
        &table[range]
    }
}

/// [`conv2d_int8`] with a [`SplitWeight`]: `x` `[n, c_in, h, w]`, optional `bias` `[c_out]`
/// into `out` `[n, c_out, oh, ow]`; `scratch` holds [`conv2d_int8_split_scratch_len`]
/// accumulators and `gather` [`conv2d_int8_split_gather_len`] weights. Bit-identical with
/// [`conv2d_int8`] on the joined weight.
pub fn conv2d_int8_split(
    x: &[i8],
    w: &SplitWeight<'_>,
    bias: Option<&[i32]>,
    out: &mut [i8],
    scratch: &mut [i32],
    gather: &mut [i8],
    p: &Conv2dInt8Params<'_>,
) -> Result<(), KernelError> {
    let g = &p.geometry;
    let (row_t, row_f) = w.check(g)?;
    check_len("conv2d x", g.input_len(), x.len())?;
    check_len("conv2d out", g.output_len(), out.len())?;
    if let Some(b) = bias {
        check_len("conv2d bias", g.c_out(), b.len())?;
    }
    p.out.check(g.c_out())?;
    check_scratch(conv2d_int8_split_scratch_len(g), scratch.len())?;
    check_scratch(conv2d_int8_split_gather_len(g), gather.len())?;
    let row = row_t + row_f;
    let (in_len, out_len) = (g.c_in() * g.in_plane(), g.c_out() * g.out_plane());
    if out_len == 0 {
        return Ok(());
    }
    let requant = &p.out.requant;
    let mut o0 = 0;
    while o0 < g.c_out() {
        let count = SPLIT_GROUP.min(g.c_out() - o0);
        let range = o0..o0 + count;
        for (k, o) in range.clone().enumerate() {
            let dst = &mut gather[k * row..(k + 1) * row];
            dst[..row_t].copy_from_slice(&w.trained[o * row_t..(o + 1) * row_t]);
            dst[row_t..].copy_from_slice(&w.frozen[o * row_f..(o + 1) * row_f]);
        }
        let geometry = Conv2dGeometry::new(1, g.c_in(), g.in_hw(), count, 1, g.window())?;
        let stage = OutputStage {
            requant: Requant::new(
                requant.rounding(),
                channels_of(requant.scales(), range.clone()),
                channels_of(requant.multipliers(), range.clone()),
                channels_of(requant.shifts(), range.clone()),
            )?,
            ..p.out
        };
        let mut sub = Conv2dInt8Params::new(
            geometry,
            p.x_zero_point,
            channels_of(p.w_zero_points, range.clone()),
            stage,
        )?;
        sub.bias_add = p.bias_add;
        let sub_bias = bias.map(|b| &b[range.clone()]);
        for b in 0..g.n() {
            let xb = &x[b * in_len..(b + 1) * in_len];
            let yb = &mut out[b * out_len + o0 * g.out_plane()..][..count * g.out_plane()];
            conv2d_int8(xb, &gather[..count * row], sub_bias, yb, scratch, &sub)?;
        }
        o0 += count;
    }
    Ok(())
}

/// [`conv2d_backward_input_int8`] with a [`SplitWeight`] (its quantization `p` per tensor or
/// per output channel, as for the joined weight): `dy` `[n, c_out, oh, ow]` into `dx`
/// `[n, c_in, h, w]`, input channels `[0, kept)` from the trained part and the rest from the
/// frozen part. Bit-identical with [`conv2d_backward_input_int8`] on the joined weight.
pub fn conv2d_backward_input_int8_split(
    dy: &[f32],
    w: &SplitWeight<'_>,
    p: &PerAxis<'_>,
    dx: &mut [f32],
    g: &Conv2dGeometry,
) -> Result<(), KernelError> {
    let (row_t, row_f) = w.check(g)?;
    check_len("conv2d grad_output", g.output_len(), dy.len())?;
    check_len("conv2d grad_input", g.input_len(), dx.len())?;
    if p.scales.len() != 1 && p.scales.len() != g.c_out() {
        return Err(KernelError::Param(
            "a split weight is quantized per tensor or per output channel",
        ));
    }
    let (in_plane, out_len) = (g.in_plane(), g.c_out() * g.out_plane());
    let parts = [
        (w.trained, 0, w.kept, row_t),
        (w.frozen, w.kept, g.c_in() - w.kept, row_f),
    ];
    for b in 0..g.n() {
        let dyb = &dy[b * out_len..(b + 1) * out_len];
        for &(weight, first, channels, row) in &parts {
            if channels == 0 {
                continue;
            }
            let part = Conv2dGeometry::new(1, channels, g.in_hw(), g.c_out(), 1, g.window())?;
            let quant = PerAxis {
                inner: row.max(1),
                ..*p
            };
            let start = (b * g.c_in() + first) * in_plane;
            let dxb = &mut dx[start..start + channels * in_plane];
            conv2d_backward_input_int8(dyb, weight, &quant, dxb, &part)?;
        }
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
    use crate::requant::{quantize_multipliers, ActRange, Rounding};
    use proptest::prelude::*;

    /// Splits a `[c_out, c_in, taps]` weight after `kept` input channels.
    fn split(w: &[i8], c_out: usize, c_in: usize, taps: usize, kept: usize) -> [Vec<i8>; 2] {
        let row = c_in * taps;
        let mut t = Vec::new();
        let mut f = Vec::new();
        for o in 0..c_out {
            t.extend_from_slice(&w[o * row..o * row + kept * taps]);
            f.extend_from_slice(&w[o * row + kept * taps..(o + 1) * row]);
        }
        [t, f]
    }

    fn window(k: usize, stride: usize, pad: usize) -> Window2d {
        Window2d {
            kernel: [k, k],
            strides: [stride, stride],
            pads: [pad; 4],
            dilations: [1, 1],
        }
    }

    fn values(seed: u64, n: usize) -> Vec<i8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = crate::sgd::splitmix64(s);
                (s >> 56) as u8 as i8
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn split_forward_equals_the_joined_weight(
            n in 1usize..3, c_in in 1usize..7, c_out in 1usize..20, k in 1usize..4,
            hw in 3usize..6, stride in 1usize..3, per_channel: bool, seed: u64,
            kept_frac in 0usize..=4,
        ) {
            let kept = c_in * kept_frac / 4;
            let pad = k / 2;
            let g = Conv2dGeometry::new(n, c_in, [hw, hw], c_out, 1, window(k, stride, pad))
                .unwrap();
            let x = values(seed, g.input_len());
            let w = values(seed ^ 1, g.weight_len());
            let bias: Vec<i32> = values(seed ^ 2, c_out).iter().map(|&v| i32::from(v) * 37).collect();
            let channels = if per_channel { c_out } else { 1 };
            let scales: Vec<f64> = (0..channels).map(|c| 0.003 + 0.001 * c as f64).collect();
            let (mut m, mut s) = (vec![0; channels], vec![0; channels]);
            quantize_multipliers(&scales, Rounding::Double, &mut m, &mut s).unwrap();
            let zps: Vec<i8> = (0..channels).map(|c| (c as i8) - 2).collect();
            let out = OutputStage {
                requant: Requant::new(Rounding::Double, &scales, &m, &s).unwrap(),
                zero_point: -3,
                range: ActRange { min: -128, max: 127 },
            };
            let p = Conv2dInt8Params::new(g, 5, &zps, out).unwrap();
            let mut want = vec![0; g.output_len()];
            let mut scratch = vec![0; g.out_plane()];
            conv2d_int8(&x, &w, Some(&bias), &mut want, &mut scratch, &p).unwrap();
            let [t, f] = split(&w, c_out, c_in, k * k, kept);
            let sw = SplitWeight { trained: &t, frozen: &f, kept };
            let mut got = vec![0; g.output_len()];
            let mut gather = vec![0; conv2d_int8_split_gather_len(&g)];
            conv2d_int8_split(&x, &sw, Some(&bias), &mut got, &mut scratch, &mut gather, &p)
                .unwrap();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn split_input_gradient_equals_the_joined_weight(
            n in 1usize..3, c_in in 1usize..7, c_out in 1usize..12, k in 1usize..4,
            hw in 3usize..6, stride in 1usize..3, per_channel: bool, seed: u64,
            kept_frac in 0usize..=4,
        ) {
            let kept = c_in * kept_frac / 4;
            let g = Conv2dGeometry::new(n, c_in, [hw, hw], c_out, 1, window(k, stride, k / 2))
                .unwrap();
            let w = values(seed, g.weight_len());
            let dy: Vec<f32> = values(seed ^ 3, g.output_len())
                .iter()
                .map(|&v| f32::from(v) * 0.013)
                .collect();
            let channels = if per_channel { c_out } else { 1 };
            let scales: Vec<f32> = (0..channels).map(|c| 0.02 + 0.003 * c as f32).collect();
            let zps: Vec<i8> = (0..channels).map(|c| 1 - c as i8).collect();
            let inner = if per_channel { c_in * k * k } else { g.weight_len() };
            let q = PerAxis::new(&scales, &zps, inner).unwrap();
            let mut want = vec![0.0; g.input_len()];
            conv2d_backward_input_int8(&dy, &w, &q, &mut want, &g).unwrap();
            let [t, f] = split(&w, c_out, c_in, k * k, kept);
            let sw = SplitWeight { trained: &t, frozen: &f, kept };
            let mut got = vec![1.0; g.input_len()];
            conv2d_backward_input_int8_split(&dy, &sw, &q, &mut got, &g).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got), bits(&want));
        }
    }

    #[test]
    fn grouped_weights_and_wrong_parts_are_refused() {
        let g = Conv2dGeometry::new(1, 4, [3, 3], 4, 4, window(3, 1, 1)).unwrap();
        let t = [0i8; 4 * 9];
        let sw = SplitWeight {
            trained: &t,
            frozen: &[],
            kept: 1,
        };
        let mut dx = vec![0.0; g.input_len()];
        let q = PerAxis::new(&[0.1], &[], 36).unwrap();
        let e = conv2d_backward_input_int8_split(&vec![0.0; g.output_len()], &sw, &q, &mut dx, &g);
        assert!(matches!(e, Err(KernelError::Param(_))), "{e:?}");
        let g = Conv2dGeometry::new(1, 4, [3, 3], 2, 1, window(1, 1, 0)).unwrap();
        let sw = SplitWeight {
            trained: &t[..2],
            frozen: &t[..4],
            kept: 1,
        };
        let e = conv2d_backward_input_int8_split(&vec![0.0; g.output_len()], &sw, &q, &mut dx, &g);
        assert!(matches!(e, Err(KernelError::Length { .. })), "{e:?}");
    }
}
