//! Fast paths of [`conv2d_int8`](super::conv2d_int8) for the two shapes MobileNet-style nets are
//! made of: pointwise (1×1, stride 1, no padding, groups 1) and depthwise (one input and one
//! output channel per group, any window).
//!
//! Both give the generic path's bits: integer sums wrap in `i32` (associative, so the order of
//! the terms does not matter) and each output goes through the same bias addition and
//! [`OutputStage::finish`](crate::OutputStage::finish).

use crate::geometry::WindowAxis;

use super::conv::Conv2dInt8Params;
use super::zero_point_of;

/// Pointwise convolution: per output channel, the `plane` of `i32` accumulators (one output
/// plane long) gathers `(w[o, c] − z_w) · (x[c] − z_x)` over the input channels, then the output
/// stage maps it to `out`. Lengths are checked by the caller.
pub(crate) fn pointwise(
    x: &[i8],
    w: &[i8],
    bias: Option<&[i32]>,
    out: &mut [i8],
    plane: &mut [i32],
    p: &Conv2dInt8Params<'_>,
) {
    let g = &p.geometry;
    let (len, c_in, c_out) = (g.out_plane(), g.c_in(), g.c_out());
    let plane = &mut plane[..len];
    let zx = i32::from(p.x_zero_point);
    for (bo, y) in out.chunks_exact_mut(len).enumerate() {
        let (b, o) = (bo / c_out, bo % c_out);
        let xb = &x[b * c_in * len..][..c_in * len];
        let zw = zero_point_of(p.w_zero_points, o);
        plane.fill(0);
        for (&wq, xc) in w[o * c_in..][..c_in].iter().zip(xb.chunks_exact(len)) {
            let wv = i32::from(wq) - zw;
            if wv == 0 {
                continue;
            }
            for (acc, &xv) in plane.iter_mut().zip(xc) {
                *acc = acc.wrapping_add((i32::from(xv) - zx).wrapping_mul(wv));
            }
        }
        finish(y, plane, bias, o, p);
    }
}

/// Depthwise convolution: for every plane, the outputs whose whole window reads real input (the
/// interior) are summed without padding checks, the border outputs over their valid taps only.
/// `row` holds one output row of accumulators (at least `ow` long). Lengths are checked by the
/// caller.
pub(crate) fn depthwise(
    x: &[i8],
    w: &[i8],
    bias: Option<&[i32]>,
    out: &mut [i8],
    row: &mut [i32],
    p: &Conv2dInt8Params<'_>,
) {
    let g = &p.geometry;
    let [ay, ax] = g.axes();
    let [kh, kw] = g.window().kernel;
    let taps = kh * kw;
    let [oh, ow] = g.out_hw();
    let in_plane = g.in_plane();
    let zx = i32::from(p.x_zero_point);
    let rows_in = interior(&ay);
    let cols_in = interior(&ax);
    let row = &mut row[..ow];
    for (bc, y) in out.chunks_exact_mut(oh * ow).enumerate() {
        let c = bc % g.c_out();
        let xp = &x[bc * in_plane..][..in_plane];
        let wk = &w[c * taps..][..taps];
        let zw = zero_point_of(p.w_zero_points, c);
        for (oy, y_row) in y.chunks_exact_mut(ow).enumerate() {
            let ky = ay.valid_taps(oy);
            if rows_in.contains(&oy) {
                let iy0 = ay.input_index(oy, 0);
                for ox in cols_in.clone() {
                    let ix0 = ax.input_index(ox, 0);
                    let mut acc = 0_i32;
                    for (ky, wr) in wk.chunks_exact(kw).enumerate() {
                        let xr = &xp[(iy0 + ky * ay.dilation) * ax.in_len + ix0..];
                        for (kx, &wq) in wr.iter().enumerate() {
                            let xv = i32::from(xr[kx * ax.dilation]) - zx;
                            acc = acc.wrapping_add(xv.wrapping_mul(i32::from(wq) - zw));
                        }
                    }
                    row[ox] = acc;
                }
            }
            for ox in 0..ow {
                if rows_in.contains(&oy) && cols_in.contains(&ox) {
                    continue;
                }
                let mut acc = 0_i32;
                for ky in ky.clone() {
                    let xr = &xp[ay.input_index(oy, ky) * ax.in_len..][..ax.in_len];
                    for kx in ax.valid_taps(ox) {
                        let xv = i32::from(xr[ax.input_index(ox, kx)]) - zx;
                        let wv = i32::from(wk[ky * kw + kx]) - zw;
                        acc = acc.wrapping_add(xv.wrapping_mul(wv));
                    }
                }
                row[ox] = acc;
            }
            finish(y_row, row, bias, c, p);
        }
    }
}

/// The outputs of an axis at which every tap reads real input: from the first output the first
/// tap reads to the last output the last tap reads (both bounds move down as the tap grows).
pub(crate) fn interior(a: &WindowAxis) -> core::ops::Range<usize> {
    let lo = a.valid_outputs(0).start;
    let hi = a.valid_outputs(a.kernel - 1).end;
    lo..hi.max(lo)
}

/// The output stage of channel `o` over a run of accumulators.
#[inline]
pub(crate) fn finish(
    y: &mut [i8],
    acc: &[i32],
    bias: Option<&[i32]>,
    o: usize,
    p: &Conv2dInt8Params<'_>,
) {
    let bias_o = bias.map_or(0, |bias| bias[o]);
    for (yv, &a) in y.iter_mut().zip(acc) {
        *yv = p.out.finish(p.bias_add.add(a, bias_o), o);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::super::conv::{conv2d_int8_scratch_len, generic, BiasAdd};
    use super::*;
    use crate::geometry::{Conv2dGeometry, Window2d};
    use crate::requant::{quantize_multipliers, ActRange, OutputStage, Requant, Rounding};
    use proptest::prelude::*;

    fn fill(seed: u64, len: usize) -> Vec<i8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as i8
            })
            .collect()
    }

    /// Runs the fast path `fast` and the generic path on the same random operands and
    /// parameters; returns both outputs.
    #[allow(clippy::type_complexity)]
    fn both(
        g: Conv2dGeometry,
        seed: u64,
        rounding: Rounding,
        bias_add: BiasAdd,
        zx: i8,
        wz_len: usize,
        fast: fn(&[i8], &[i8], Option<&[i32]>, &mut [i8], &mut [i32], &Conv2dInt8Params<'_>),
    ) -> (Vec<i8>, Vec<i8>) {
        let scales: Vec<f64> = fill(seed ^ 3, g.c_out())
            .iter()
            .map(|&v| 0.0004 + f64::from(v.unsigned_abs()) * 0.00002)
            .collect();
        let (mut m, mut s) = (vec![0; g.c_out()], vec![0; g.c_out()]);
        quantize_multipliers(&scales, rounding, &mut m, &mut s).unwrap();
        let out = OutputStage {
            requant: Requant::new(rounding, &scales, &m, &s).unwrap(),
            zero_point: fill(seed ^ 11, 1)[0],
            range: ActRange {
                min: -100,
                max: 120,
            },
        };
        let wz = fill(seed ^ 9, wz_len);
        let mut p = Conv2dInt8Params::new(g, zx, &wz, out).unwrap();
        p.bias_add = bias_add;
        let x = fill(seed, g.input_len());
        let w = fill(seed ^ 5, g.weight_len());
        let bias: Vec<i32> = fill(seed ^ 7, g.c_out())
            .iter()
            .map(|&b| i32::from(b) * 997)
            .collect();
        let mut scratch = vec![0; conv2d_int8_scratch_len(&p)];
        let (mut y_fast, mut y_generic) = (vec![0; g.output_len()], vec![0; g.output_len()]);
        fast(&x, &w, Some(&bias), &mut y_fast, &mut scratch, &p);
        generic(&x, &w, Some(&bias), &mut y_generic, &mut scratch, &p);
        (y_fast, y_generic)
    }

    fn rounding_of(i: u8) -> Rounding {
        [
            Rounding::Double,
            Rounding::Single,
            Rounding::FloatScale,
            Rounding::OnnxRuntime,
        ][usize::from(i % 4)]
    }

    fn bias_add_of(wrapping: bool) -> BiasAdd {
        if wrapping {
            BiasAdd::Wrapping
        } else {
            BiasAdd::Saturating
        }
    }

    proptest! {
        #[test]
        fn pointwise_equals_generic(
            n in 1..3_usize, c_in in 1..20_usize, c_out in 1..6_usize, h in 1..7_usize,
            w in 1..9_usize, seed in any::<u64>(), rounding in 0..4_u8, wrapping in any::<bool>(),
            zx in any::<i8>(), per_channel in any::<bool>(),
        ) {
            let window = Window2d { kernel: [1, 1], strides: [1, 1], pads: [0; 4], dilations: [1, 1] };
            let g = Conv2dGeometry::new(n, c_in, [h, w], c_out, 1, window).unwrap();
            prop_assert!(g.is_pointwise());
            let wz_len = if per_channel { c_out } else { 1 };
            let (fast, slow) = both(g, seed, rounding_of(rounding), bias_add_of(wrapping), zx, wz_len, pointwise);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn depthwise_equals_generic(
            n in 1..3_usize, c in 1..5_usize, h in 1..13_usize, w in 1..13_usize,
            kh in 1..8_usize, kw in 1..8_usize, s in 1..3_usize, d in 1..3_usize,
            pads in proptest::array::uniform4(0..4_usize), seed in any::<u64>(),
            rounding in 0..4_u8, wrapping in any::<bool>(), zx in any::<i8>(),
            per_channel in any::<bool>(),
        ) {
            let window = Window2d { kernel: [kh, kw], strides: [s, 3 - s], pads, dilations: [d, 1] };
            let Ok(g) = Conv2dGeometry::new(n, c, [h, w], c, c, window) else {
                return Ok(());
            };
            prop_assert!(g.is_depthwise());
            let wz_len = if per_channel { c } else { 0 };
            let (fast, slow) = both(g, seed, rounding_of(rounding), bias_add_of(wrapping), zx, wz_len, depthwise);
            prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn depthwise_interior_and_border() {
        // 3×3, pad 1, stride 1 over 5×6: the interior is rows 1..4, columns 1..5.
        let window = Window2d {
            kernel: [3, 3],
            strides: [1, 1],
            pads: [1; 4],
            dilations: [1, 1],
        };
        let g = Conv2dGeometry::new(1, 2, [5, 6], 2, 2, window).unwrap();
        let [ay, ax] = g.axes();
        assert_eq!((interior(&ay), interior(&ax)), (1..4, 1..5));
        let (fast, slow) = both(
            g,
            42,
            Rounding::Double,
            BiasAdd::Saturating,
            -3,
            2,
            depthwise,
        );
        assert_eq!(fast, slow);
        // A window wider than the input: no interior at all.
        let wide = Window2d {
            kernel: [1, 5],
            strides: [1, 1],
            pads: [0, 2, 0, 2],
            dilations: [1, 1],
        };
        let g = Conv2dGeometry::new(1, 1, [2, 3], 1, 1, wide).unwrap();
        assert!(interior(&g.axes()[1]).is_empty());
    }
}
