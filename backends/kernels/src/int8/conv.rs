//! int8 2-D convolution (TFLite `ConvPerChannel` reference semantics, NCHW): a general tap-by-tap
//! path, and fast paths for pointwise and depthwise convolutions (module `conv_fast`).
//!
//! `y[b,o,i,j] = clamp(requant_o(Σ (x − z_x)·(w[o] − z_w[o]) + bias[o]) + z_y)`. Padded positions
//! contribute nothing (as if they held the input zero point). Products and sums wrap in `i32`;
//! integer addition is associative under wrapping, so every path gives the same bits.

use crate::error::{check_len, check_scratch, KernelError};
use crate::geometry::{for_each_tap_row, Conv2dGeometry};
use crate::requant::{OutputStage, Rounding};

use super::{check_zero_points, conv_fast, zero_point_of};

/// How the int32 bias joins the accumulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BiasAdd {
    /// Saturating to the `i32` range: what the float graph computes for the paper's dead
    /// channels (bias `i32::MIN`); equal to wrapping whenever the sum fits.
    Saturating,
    /// Wrapping, as onnxruntime's fused `QLinearConv` does.
    Wrapping,
}

impl BiasAdd {
    /// The bias addition of a rounding mode: wrapping for [`Rounding::OnnxRuntime`], saturating
    /// otherwise.
    pub fn for_rounding(rounding: Rounding) -> Self {
        if rounding == Rounding::OnnxRuntime {
            Self::Wrapping
        } else {
            Self::Saturating
        }
    }

    #[inline]
    pub(crate) fn add(self, acc: i32, bias: i32) -> i32 {
        match self {
            Self::Saturating => acc.saturating_add(bias),
            Self::Wrapping => acc.wrapping_add(bias),
        }
    }
}

/// The parameters of [`conv2d_int8`], computed once on the host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dInt8Params<'a> {
    /// Geometry.
    pub geometry: Conv2dGeometry,
    /// Input zero point.
    pub x_zero_point: i8,
    /// Weight zero points: empty (symmetric), one, or one per output channel.
    pub w_zero_points: &'a [i8],
    /// Requantization, output zero point and clamp.
    pub out: OutputStage<'a>,
    /// How the bias is added.
    pub bias_add: BiasAdd,
}

impl<'a> Conv2dInt8Params<'a> {
    /// Checks and bundles the parameters.
    pub fn new(
        geometry: Conv2dGeometry,
        x_zero_point: i8,
        w_zero_points: &'a [i8],
        out: OutputStage<'a>,
    ) -> Result<Self, KernelError> {
        check_zero_points(w_zero_points, geometry.c_out())?;
        out.check(geometry.c_out())?;
        Ok(Self {
            geometry,
            x_zero_point,
            w_zero_points,
            out,
            bias_add: BiasAdd::for_rounding(out.requant.rounding()),
        })
    }
}

/// The `i32` scratch elements [`conv2d_int8`] needs: one output plane.
pub fn conv2d_int8_scratch_len(p: &Conv2dInt8Params<'_>) -> usize {
    p.geometry.out_plane()
}

/// int8 convolution: `x` `[n, c_in, h, w]`, `w` `[c_out, c_in/groups, kh, kw]`, optional `bias`
/// `[c_out]` (units `s_x · s_W[o]`) into `out` `[n, c_out, oh, ow]`; `scratch` holds
/// [`conv2d_int8_scratch_len`] accumulators.
pub fn conv2d_int8(
    x: &[i8],
    w: &[i8],
    bias: Option<&[i32]>,
    out: &mut [i8],
    scratch: &mut [i32],
    p: &Conv2dInt8Params<'_>,
) -> Result<(), KernelError> {
    let g = &p.geometry;
    check_len("conv2d x", g.input_len(), x.len())?;
    check_len("conv2d w", g.weight_len(), w.len())?;
    check_len("conv2d out", g.output_len(), out.len())?;
    if let Some(b) = bias {
        check_len("conv2d bias", g.c_out(), b.len())?;
    }
    check_zero_points(p.w_zero_points, g.c_out())?;
    p.out.check(g.c_out())?;
    let plane_len = g.out_plane();
    check_scratch(plane_len, scratch.len())?;
    if g.output_len() == 0 {
        return Ok(());
    }
    if g.is_pointwise() {
        conv_fast::pointwise(x, w, bias, out, scratch, p);
    } else if g.is_depthwise() {
        conv_fast::depthwise(x, w, bias, out, scratch, p);
    } else {
        generic(x, w, bias, out, scratch, p);
    }
    Ok(())
}

/// The general path (any groups and window), one output plane at a time, tap by tap; lengths
/// are checked by the caller.
pub(crate) fn generic(
    x: &[i8],
    w: &[i8],
    bias: Option<&[i32]>,
    out: &mut [i8],
    scratch: &mut [i32],
    p: &Conv2dInt8Params<'_>,
) {
    let g = &p.geometry;
    let plane_len = g.out_plane();
    let plane = &mut scratch[..plane_len];
    let (in_plane, cin_g, cout_g) = (g.in_plane(), g.c_in_per_group(), g.c_out_per_group());
    let taps = g.window().kernel[0] * g.window().kernel[1];
    let zx = i32::from(p.x_zero_point);
    for (bo, y) in out.chunks_exact_mut(plane_len).enumerate() {
        let (b, o) = (bo / g.c_out(), bo % g.c_out());
        let group = o / cout_g;
        let zw = zero_point_of(p.w_zero_points, o);
        plane.fill(0);
        for ci in 0..cin_g {
            let c = group * cin_g + ci;
            let xp = &x[(b * g.c_in() + c) * in_plane..][..in_plane];
            let wk = &w[(o * cin_g + ci) * taps..][..taps];
            accumulate_taps(plane, xp, wk, zw, zx, g);
        }
        let bias_o = bias.map_or(0, |bias| bias[o]);
        for (yv, &acc) in y.iter_mut().zip(plane.iter()) {
            *yv = p.out.finish(p.bias_add.add(acc, bias_o), o);
        }
    }
}

/// One input plane's contribution, tap by tap over contiguous rows.
#[inline]
fn accumulate_taps(plane: &mut [i32], x: &[i8], wk: &[i8], zw: i32, zx: i32, g: &Conv2dGeometry) {
    let axes = g.axes();
    let (w_in, ow, sw) = (axes[1].in_len, axes[1].out_len, axes[1].stride);
    for_each_tap_row(&axes, |oy, iy, oxs, ix0, tap| {
        let wv = i32::from(wk[tap]) - zw;
        if wv == 0 {
            return;
        }
        let row = &mut plane[oy * ow..(oy + 1) * ow][oxs];
        let x_row = &x[iy * w_in..(iy + 1) * w_in];
        if sw == 1 {
            for (acc, &xv) in row.iter_mut().zip(&x_row[ix0..]) {
                *acc = acc.wrapping_add((i32::from(xv) - zx).wrapping_mul(wv));
            }
        } else {
            for (acc, &xv) in row.iter_mut().zip(x_row[ix0..].iter().step_by(sw)) {
                *acc = acc.wrapping_add((i32::from(xv) - zx).wrapping_mul(wv));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::geometry::Window2d;
    use crate::requant::{quantize_multipliers, ActRange, Requant};
    use proptest::prelude::*;

    /// The definition, one output element at a time, with signed indices.
    fn naive(x: &[i8], w: &[i8], bias: &[i32], p: &Conv2dInt8Params<'_>) -> Vec<i8> {
        let g = &p.geometry;
        let [h, wd] = g.in_hw();
        let [oh, ow] = g.out_hw();
        let win = g.window();
        let [kh, kw] = win.kernel;
        let (cin_g, cout_g) = (g.c_in_per_group(), g.c_out_per_group());
        let mut y = vec![];
        for b in 0..g.n() {
            for o in 0..g.c_out() {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0_i32;
                        for ci in 0..cin_g {
                            let c = (o / cout_g) * cin_g + ci;
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * win.strides[0] + ky * win.dilations[0]) as isize
                                        - win.pads[0] as isize;
                                    let ix = (ox * win.strides[1] + kx * win.dilations[1]) as isize
                                        - win.pads[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xv = i32::from(
                                        x[((b * g.c_in() + c) * h + iy as usize) * wd
                                            + ix as usize],
                                    );
                                    let wv = i32::from(w[((o * cin_g + ci) * kh + ky) * kw + kx]);
                                    acc = acc.wrapping_add(
                                        (xv - i32::from(p.x_zero_point))
                                            .wrapping_mul(wv - zero_point_of(p.w_zero_points, o)),
                                    );
                                }
                            }
                        }
                        y.push(p.out.finish(acc.saturating_add(bias[o]), o));
                    }
                }
            }
        }
        y
    }

    fn shape() -> impl Strategy<Value = (Conv2dGeometry, u64)> {
        (
            1..3_usize,
            1..4_usize,
            1..4_usize,
            1..3_usize,
            1..6_usize,
            1..4_usize,
            1..3_usize,
            0..2_usize,
            1..3_usize,
            any::<u64>(),
        )
            .prop_filter_map(
                "window fits",
                |(n, groups, cg, og, hw, k, s, pad, d, seed)| {
                    let window = Window2d {
                        kernel: [k, k.max(1)],
                        strides: [s, s],
                        pads: [pad, pad, pad, pad],
                        dilations: [d, d],
                    };
                    Conv2dGeometry::new(n, groups * cg, [hw, hw + 1], groups * og, groups, window)
                        .ok()
                        .map(|g| (g, seed))
                },
            )
    }

    fn fill(seed: u64, len: usize) -> Vec<i8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as i8
            })
            .collect()
    }

    proptest! {
        #[test]
        fn matches_definition((g, seed) in shape(), rounding in 0..4_u8, zx in any::<i8>()) {
            let rounding = [Rounding::Double, Rounding::Single, Rounding::FloatScale, Rounding::OnnxRuntime][rounding as usize];
            let scales: Vec<f64> = (0..g.c_out()).map(|c| 0.001 + c as f64 * 0.0007).collect();
            let (mut m, mut s) = (vec![0; g.c_out()], vec![0; g.c_out()]);
            quantize_multipliers(&scales, rounding, &mut m, &mut s).unwrap();
            let out = OutputStage { requant: Requant::new(rounding, &scales, &m, &s).unwrap(), zero_point: 3, range: ActRange::FULL };
            let wz = fill(seed ^ 9, g.c_out());
            let mut p = Conv2dInt8Params::new(g, zx, &wz, out).unwrap();
            p.bias_add = BiasAdd::Saturating;
            let x = fill(seed, g.input_len());
            let w = fill(seed ^ 5, g.weight_len());
            let bias: Vec<i32> = fill(seed ^ 7, g.c_out()).iter().map(|&b| i32::from(b) * 1000).collect();
            let mut y = vec![0; g.output_len()];
            let mut scratch = vec![0; conv2d_int8_scratch_len(&p)];
            conv2d_int8(&x, &w, Some(&bias), &mut y, &mut scratch, &p).unwrap();
            prop_assert_eq!(y, naive(&x, &w, &bias, &p));
        }
    }

    #[test]
    fn pointwise_and_errors() {
        let g = Conv2dGeometry::new(
            1,
            2,
            [2, 2],
            1,
            1,
            Window2d {
                kernel: [1, 1],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
            },
        )
        .unwrap();
        assert!(g.is_pointwise());
        let scales = [1.0];
        let (mut m, mut s) = ([0], [0]);
        quantize_multipliers(&scales, Rounding::Double, &mut m, &mut s).unwrap();
        let out = OutputStage {
            requant: Requant::new(Rounding::Double, &scales, &m, &s).unwrap(),
            zero_point: 0,
            range: ActRange::FULL,
        };
        let p = Conv2dInt8Params::new(g, 1, &[], out).unwrap();
        let mut y = [0; 4];
        let mut scratch = [0; 4];
        conv2d_int8(
            &[1, 2, 3, 4, 5, 6, 7, 8],
            &[2, 1],
            None,
            &mut y,
            &mut scratch,
            &p,
        )
        .unwrap();
        assert_eq!(y, [4, 7, 10, 13]);
        assert_eq!(
            conv2d_int8(
                &[1, 2, 3, 4, 5, 6, 7, 8],
                &[2, 1],
                None,
                &mut y,
                &mut scratch[..3],
                &p
            ),
            Err(KernelError::Scratch {
                needed: 4,
                found: 3
            })
        );
        assert!(matches!(
            conv2d_int8(&[1], &[2, 1], None, &mut y, &mut scratch, &p),
            Err(KernelError::Length { .. })
        ));
    }
}
