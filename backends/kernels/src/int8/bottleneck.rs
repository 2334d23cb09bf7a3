//! A frozen inverted bottleneck — a first convolution (the pointwise expansion, or any dense
//! convolution such as a network's stem), a depthwise convolution, a pointwise projection —
//! streamed row by row, so that neither the first convolution's output nor the depthwise output
//! ever exists whole.
//!
//! Rows of the first convolution's output are computed on demand, from the whole input, into a
//! ring of the last `span` rows (`span` is the depthwise window's vertical extent,
//! `dilation · (kh − 1) + 1`, at most the depthwise input height). As soon as the rows an output
//! row of the depthwise convolution reads are in the ring, that row is computed (all channels)
//! and projected straight into the output. Every row of the first convolution is computed
//! exactly once: there is no recomputed halo.
//!
//! The result is bit-identical to running [`conv2d_int8`](super::conv2d_int8) three times with
//! the same parameters: each output element sums the same wrapped `i32` products (integer
//! addition is associative under wrapping), adds the bias the same way and goes through the same
//! [`OutputStage`](crate::OutputStage).
//!
//! Scratch: `i8` elements, the ring (`c_mid · span · w_mid`) then one depthwise output row
//! (`c_mid · ow`); see [`bottleneck_int8_scratch_len`].

use crate::error::{check_len, check_scratch, KernelError};
use crate::geometry::WindowAxis;

use super::conv::Conv2dInt8Params;
use super::conv_fast::{finish, interior};
use super::{check_zero_points, zero_point_of};

/// The parameters of [`bottleneck_int8`]: those of the three convolutions it fuses, checked to
/// chain (shapes and batch agree, the first is dense, the middle one depthwise, the last
/// pointwise).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BottleneckInt8Params<'a> {
    /// The first convolution `[n, c_in, h, w] -> [n, c_mid, mh, mw]`: one group, any window (a
    /// pointwise expansion, or e.g. a 3×3 stride-2 stem).
    pub expand: Conv2dInt8Params<'a>,
    /// The depthwise convolution `[n, c_mid, mh, mw] -> [n, c_mid, oh, ow]`.
    pub depthwise: Conv2dInt8Params<'a>,
    /// The pointwise projection `[n, c_mid, oh, ow] -> [n, c_out, oh, ow]`.
    pub project: Conv2dInt8Params<'a>,
}

impl<'a> BottleneckInt8Params<'a> {
    /// Checks that the three convolutions chain and bundles them.
    pub fn new(
        expand: Conv2dInt8Params<'a>,
        depthwise: Conv2dInt8Params<'a>,
        project: Conv2dInt8Params<'a>,
    ) -> Result<Self, KernelError> {
        let (e, d, p) = (&expand.geometry, &depthwise.geometry, &project.geometry);
        if e.groups() != 1 {
            return Err(KernelError::Geometry(
                "bottleneck: the first convolution must be dense (one group)",
            ));
        }
        if !d.is_depthwise() {
            return Err(KernelError::Geometry(
                "bottleneck: the middle convolution must be depthwise (one channel per group)",
            ));
        }
        if !p.is_pointwise() {
            return Err(KernelError::Geometry(
                "bottleneck: the projection must be a pointwise (1x1, stride 1, no padding) convolution",
            ));
        }
        if e.n() != d.n() || d.n() != p.n() {
            return Err(KernelError::Geometry(
                "bottleneck: the three convolutions have different batch sizes",
            ));
        }
        if e.c_out() != d.c_in() || e.out_hw() != d.in_hw() {
            return Err(KernelError::Geometry(
                "bottleneck: the expansion's output is not the depthwise convolution's input",
            ));
        }
        if d.c_out() != p.c_in() || d.out_hw() != p.in_hw() {
            return Err(KernelError::Geometry(
                "bottleneck: the depthwise output is not the projection's input",
            ));
        }
        for conv in [&expand, &depthwise, &project] {
            check_zero_points(conv.w_zero_points, conv.geometry.c_out())?;
            conv.out.check(conv.geometry.c_out())?;
        }
        Ok(Self {
            expand,
            depthwise,
            project,
        })
    }

    /// Rows of the first convolution's output kept at once: the depthwise window's vertical
    /// extent, at most the depthwise input height.
    pub fn ring_rows(&self) -> usize {
        let [ay, _] = self.depthwise.geometry.axes();
        (ay.dilation * (ay.kernel - 1) + 1).min(ay.in_len)
    }

    /// Bytes the unfused sequence materialises that this kernel does not: the first
    /// convolution's output and the depthwise output, less the scratch.
    pub fn bytes_saved(&self) -> usize {
        let whole = self.expand.geometry.output_len() + self.depthwise.geometry.output_len();
        whole.saturating_sub(bottleneck_int8_scratch_len(self))
    }
}

/// The `i8` scratch elements [`bottleneck_int8`] needs: the ring of expanded rows
/// (`c_mid · ring_rows · w`) and one depthwise output row (`c_mid · ow`).
pub fn bottleneck_int8_scratch_len(p: &BottleneckInt8Params<'_>) -> usize {
    let d = &p.depthwise.geometry;
    let (c_mid, w, ow) = (d.c_in(), d.in_hw()[1], d.out_hw()[1]);
    c_mid * p.ring_rows() * w + c_mid * ow
}

/// The weights and biases of the three convolutions of a bottleneck (shapes as for
/// [`conv2d_int8`](super::conv2d_int8); a missing bias adds nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BottleneckWeights<'a> {
    /// First convolution's weight `[c_mid, c_in, kh, kw]`.
    pub w_expand: &'a [i8],
    /// First convolution's bias `[c_mid]`.
    pub b_expand: Option<&'a [i32]>,
    /// Depthwise weight `[c_mid, 1, kh, kw]`.
    pub w_depthwise: &'a [i8],
    /// Depthwise bias `[c_mid]`.
    pub b_depthwise: Option<&'a [i32]>,
    /// Projection weight `[c_out, c_mid, 1, 1]`.
    pub w_project: &'a [i8],
    /// Projection bias `[c_out]`.
    pub b_project: Option<&'a [i32]>,
}

impl BottleneckWeights<'_> {
    pub(super) fn check(&self, p: &BottleneckInt8Params<'_>) -> Result<(), KernelError> {
        let convs = [
            (&p.expand, self.w_expand, self.b_expand, "expansion"),
            (
                &p.depthwise,
                self.w_depthwise,
                self.b_depthwise,
                "depthwise",
            ),
            (&p.project, self.w_project, self.b_project, "projection"),
        ];
        for (conv, w, b, what) in convs {
            let g = &conv.geometry;
            check_len(what, g.weight_len(), w.len())?;
            if let Some(b) = b {
                check_len(what, g.c_out(), b.len())?;
            }
        }
        Ok(())
    }
}

/// The fused bottleneck: `x` `[n, c_in, h, w]` into `out` `[n, c_out, oh, ow]`, equal to the
/// three convolutions of `p` in sequence; `scratch` holds [`bottleneck_int8_scratch_len`]
/// elements.
pub fn bottleneck_int8(
    x: &[i8],
    weights: &BottleneckWeights<'_>,
    out: &mut [i8],
    scratch: &mut [i8],
    p: &BottleneckInt8Params<'_>,
) -> Result<(), KernelError> {
    let (e, d, pr) = (
        &p.expand.geometry,
        &p.depthwise.geometry,
        &p.project.geometry,
    );
    check_len("bottleneck x", e.input_len(), x.len())?;
    check_len("bottleneck out", pr.output_len(), out.len())?;
    weights.check(p)?;
    let needed = bottleneck_int8_scratch_len(p);
    check_scratch(needed, scratch.len())?;
    if pr.output_len() == 0 || e.input_len() == 0 {
        return Ok(());
    }
    let [oh, ow] = d.out_hw();
    let in_len = e.c_in() * e.in_hw()[0] * e.in_hw()[1];
    let out_len = pr.c_out() * oh * ow;
    for (x_b, out_b) in x.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)) {
        let mut rows = BlockRows::new(&mut scratch[..needed], p);
        for oy in 0..oh {
            rows.output_row(x_b, oy, weights, p, out_b, oh, oy);
        }
    }
    Ok(())
}

/// Outputs are computed in runs of at most this many `i32` accumulators (on the stack), each
/// run finished by the convolution fast paths' output stage. Sums wrap in `i32` as in the
/// generic kernel; wrapping addition is associative, so neither the order of the terms nor the
/// folded zero point below changes a bit.
pub(super) const RUN: usize = 32;

/// The streaming state of one bottleneck over one batch element: its ring of rows of the first
/// convolution's output, its depthwise output row, and the next row of the first convolution's
/// output to compute.
pub(super) struct BlockRows<'s> {
    ring: &'s mut [i8],
    dw_row: &'s mut [i8],
    next_row: usize,
}

impl<'s> BlockRows<'s> {
    /// The state of block `p` over `scratch` (at least [`bottleneck_int8_scratch_len`]
    /// elements, checked by the caller), before its first row.
    pub(super) fn new(scratch: &'s mut [i8], p: &BottleneckInt8Params<'_>) -> Self {
        let d = &p.depthwise.geometry;
        let (c_mid, mw, ow) = (d.c_in(), d.in_hw()[1], d.out_hw()[1]);
        let (ring, rest) = scratch.split_at_mut(c_mid * p.ring_rows() * mw);
        Self {
            ring,
            dw_row: &mut rest[..c_mid * ow],
            next_row: 0,
        }
    }

    /// Rows of the first convolution's output computed so far (they are computed in
    /// increasing order, so the next one to compute).
    pub(super) fn next_row(&self) -> usize {
        self.next_row
    }

    /// Output row `oy` of block `p` (all channels) into row `slot` of `out`, viewed as
    /// `[c_out, rows, ow]`; the rows of the first convolution's output it reads are computed
    /// from `x_b` (one batch element) first, each once. Rows are taken in increasing order.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn output_row(
        &mut self,
        x_b: &[i8],
        oy: usize,
        weights: &BottleneckWeights<'_>,
        p: &BottleneckInt8Params<'_>,
        out: &mut [i8],
        rows: usize,
        slot: usize,
    ) {
        let ring_rows = p.ring_rows();
        let [ay, ax] = p.depthwise.geometry.axes();
        if let Some(last) = ay.valid_taps(oy).last() {
            let last_row = ay.input_index(oy, last);
            while self.next_row <= last_row {
                expand_row(x_b, self.next_row, self.ring, ring_rows, weights, p);
                self.next_row += 1;
            }
        }
        depthwise_row(self.ring, ring_rows, oy, &ay, &ax, self.dw_row, weights, p);
        project_row(self.dw_row, out, rows, slot, weights, p);
    }
}

/// `y[i]` = the output stage of channel `o` over `Σ_c (w_o[c] − z_w) · (x[c·stride + i] − z_x)`:
/// a pointwise convolution over one run of a row (`y.len() ≤ RUN`). The accumulators start at
/// `−z_x · Σ_c (w_o[c] − z_w)`, so the inner loop multiplies raw inputs.
pub(super) fn pointwise_run(
    x: &[i8],
    stride: usize,
    w_o: &[i8],
    y: &mut [i8],
    bias: Option<&[i32]>,
    o: usize,
    conv: &Conv2dInt8Params<'_>,
) {
    let zw = zero_point_of(conv.w_zero_points, o);
    let zx = i32::from(conv.x_zero_point);
    let mut acc = [0_i32; RUN];
    let acc = &mut acc[..y.len()];
    let wsum = w_o
        .iter()
        .fold(0_i32, |s, &wq| s.wrapping_add(i32::from(wq) - zw));
    acc.fill(zx.wrapping_neg().wrapping_mul(wsum));
    for (c, &wq) in w_o.iter().enumerate() {
        let wv = i32::from(wq) - zw;
        for (a, &xv) in acc.iter_mut().zip(&x[c * stride..][..y.len()]) {
            *a = a.wrapping_add(wv.wrapping_mul(i32::from(xv)));
        }
    }
    finish(y, acc, bias, o, conv);
}

/// Row `my` of the first convolution's output (all channels) into its ring slot
/// `my % ring_rows`, from the whole input `x` of one batch element. A pointwise convolution
/// goes through [`pointwise_run`]; any other window finds the valid taps of each output of a
/// run once for all output channels.
fn expand_row(
    x: &[i8],
    my: usize,
    ring: &mut [i8],
    ring_rows: usize,
    weights: &BottleneckWeights<'_>,
    p: &BottleneckInt8Params<'_>,
) {
    let conv = &p.expand;
    let g = &conv.geometry;
    let [h, w] = g.in_hw();
    let plane = h * w;
    let [ay, ax] = g.axes();
    let (mw, kw) = (ax.out_len, ax.kernel);
    let taps = ay.kernel * kw;
    let zx = i32::from(conv.x_zero_point);
    let slot = my % ring_rows;
    if g.is_pointwise() {
        for c in 0..g.c_out() {
            let w_c = &weights.w_expand[c * g.c_in()..][..g.c_in()];
            let row = &mut ring[(c * ring_rows + slot) * mw..][..mw];
            for (r, y) in row.chunks_mut(RUN).enumerate() {
                let xr = &x[my * w + r * RUN..];
                pointwise_run(xr, plane, w_c, y, weights.b_expand, c, conv);
            }
        }
        return;
    }
    let kys = ay.valid_taps(my);
    let mut kxs = [(0, 0); RUN];
    let mut acc = [0_i32; RUN];
    for x0 in (0..mw).step_by(RUN) {
        let len = RUN.min(mw - x0);
        for (i, k) in kxs[..len].iter_mut().enumerate() {
            let taps = ax.valid_taps(x0 + i);
            *k = (taps.start, taps.end);
        }
        for c in 0..g.c_out() {
            let zw = zero_point_of(conv.w_zero_points, c);
            let w_c = &weights.w_expand[c * g.c_in() * taps..][..g.c_in() * taps];
            let acc = &mut acc[..len];
            acc.fill(0);
            for (ci, wk) in w_c.chunks_exact(taps).enumerate() {
                let xp = &x[ci * plane..][..plane];
                for ky in kys.clone() {
                    let x_row = &xp[ay.input_index(my, ky) * w..][..w];
                    let wr = &wk[ky * kw..][..kw];
                    for (i, (a, &(lo, hi))) in acc.iter_mut().zip(&kxs[..len]).enumerate() {
                        for kx in lo..hi {
                            let xv = i32::from(x_row[ax.input_index(x0 + i, kx)]);
                            let wv = i32::from(wr[kx]);
                            *a = a.wrapping_add((xv - zx).wrapping_mul(wv - zw));
                        }
                    }
                }
            }
            let row = &mut ring[(c * ring_rows + slot) * mw + x0..][..len];
            finish(row, acc, weights.b_expand, c, conv);
        }
    }
}

/// Depthwise output row `oy` (all channels) from the expanded rows in the ring.
#[allow(clippy::too_many_arguments)]
fn depthwise_row(
    ring: &[i8],
    ring_rows: usize,
    oy: usize,
    ay: &WindowAxis,
    ax: &WindowAxis,
    dw_row: &mut [i8],
    weights: &BottleneckWeights<'_>,
    p: &BottleneckInt8Params<'_>,
) {
    let g = &p.depthwise.geometry;
    let (w, ow) = (ax.in_len, ax.out_len);
    for c in 0..g.c_out() {
        let plane = &ring[c * ring_rows * w..][..ring_rows * w];
        depthwise_channel(
            plane,
            ring_rows,
            oy,
            [ay, ax],
            &mut dw_row[c * ow..][..ow],
            c,
            weights,
            p,
        );
    }
}

/// Depthwise output row `oy` of channel `c` (`y`, `ow` elements) from that channel's ring of
/// expanded rows (`ring_rows` rows, row `r` in slot `r % ring_rows`); the outputs whose whole
/// window reads real input (the interior) are summed without padding checks.
#[allow(clippy::too_many_arguments)]
pub(super) fn depthwise_channel(
    plane: &[i8],
    ring_rows: usize,
    oy: usize,
    [ay, ax]: [&WindowAxis; 2],
    y: &mut [i8],
    c: usize,
    weights: &BottleneckWeights<'_>,
    p: &BottleneckInt8Params<'_>,
) {
    let conv = &p.depthwise;
    let w = ax.in_len;
    let [kh, kw] = conv.geometry.window().kernel;
    let zx = i32::from(conv.x_zero_point);
    let cols_in = interior(ax);
    let mut acc = [0_i32; RUN];
    let zw = zero_point_of(conv.w_zero_points, c);
    let wk = &weights.w_depthwise[c * kh * kw..][..kh * kw];
    for (r, y) in y.chunks_mut(RUN).enumerate() {
        let x0 = r * RUN;
        let acc = &mut acc[..y.len()];
        acc.fill(0);
        for ky in ay.valid_taps(oy) {
            let slot = ay.input_index(oy, ky) % ring_rows;
            let row = &plane[slot * w..][..w];
            let wr = &wk[ky * kw..][..kw];
            for (i, a) in acc.iter_mut().enumerate() {
                let ox = x0 + i;
                if cols_in.contains(&ox) {
                    let xr = &row[ax.input_index(ox, 0)..];
                    for (kx, &wq) in wr.iter().enumerate() {
                        let xv = i32::from(xr[kx * ax.dilation]) - zx;
                        *a = a.wrapping_add(xv.wrapping_mul(i32::from(wq) - zw));
                    }
                } else {
                    for kx in ax.valid_taps(ox) {
                        let xv = i32::from(row[ax.input_index(ox, kx)]) - zx;
                        *a = a.wrapping_add(xv.wrapping_mul(i32::from(wr[kx]) - zw));
                    }
                }
            }
        }
        finish(y, acc, weights.b_depthwise, c, conv);
    }
}

/// The row of every projection channel from one depthwise output row, into row `slot` of
/// `out` viewed as `[c_out, rows, ow]`.
pub(super) fn project_row(
    dw_row: &[i8],
    out: &mut [i8],
    rows: usize,
    slot: usize,
    weights: &BottleneckWeights<'_>,
    p: &BottleneckInt8Params<'_>,
) {
    let conv = &p.project;
    let g = &conv.geometry;
    let ow = g.in_hw()[1];
    for o in 0..g.c_out() {
        let w_o = &weights.w_project[o * g.c_in()..][..g.c_in()];
        let row = &mut out[(o * rows + slot) * ow..][..ow];
        for (r, y) in row.chunks_mut(RUN).enumerate() {
            pointwise_run(&dw_row[r * RUN..], ow, w_o, y, weights.b_project, o, conv);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::geometry::{Conv2dGeometry, Window2d};
    use crate::int8::conv::{conv2d_int8, conv2d_int8_scratch_len};
    use crate::requant::{quantize_multipliers, ActRange, OutputStage, Requant, Rounding};
    use proptest::prelude::*;

    pub(crate) const ROUNDINGS: [Rounding; 4] = [
        Rounding::Double,
        Rounding::Single,
        Rounding::FloatScale,
        Rounding::OnnxRuntime,
    ];

    pub(crate) fn fill(seed: u64, len: usize) -> Vec<i8> {
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

    /// Owned requantization tables of one convolution.
    pub(crate) struct Tables {
        scales: Vec<f64>,
        m: Vec<i32>,
        s: Vec<i32>,
        wz: Vec<i8>,
    }

    impl Tables {
        pub(crate) fn new(
            channels: usize,
            base: f64,
            rounding: Rounding,
            seed: u64,
            zw: bool,
        ) -> Self {
            let scales: Vec<f64> = (0..channels)
                .map(|c| base + c as f64 * base * 0.13)
                .collect();
            let (mut m, mut s) = (vec![0; channels], vec![0; channels]);
            quantize_multipliers(&scales, rounding, &mut m, &mut s).unwrap();
            let wz = if zw { fill(seed, channels) } else { vec![] };
            Self { scales, m, s, wz }
        }

        pub(crate) fn params(
            &self,
            g: Conv2dGeometry,
            rounding: Rounding,
            zx: i8,
            zy: i8,
            range: ActRange,
        ) -> Conv2dInt8Params<'_> {
            let out = OutputStage {
                requant: Requant::new(rounding, &self.scales, &self.m, &self.s).unwrap(),
                zero_point: zy,
                range,
            };
            Conv2dInt8Params::new(g, zx, &self.wz, out).unwrap()
        }
    }

    pub(crate) const PW: Window2d = Window2d {
        kernel: [1, 1],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
    };

    /// One case: the fused kernel (first convolution `first`, depthwise `window`) against the
    /// three convolutions in sequence.
    #[allow(clippy::too_many_arguments)]
    fn check_case(
        n: usize,
        c_in: usize,
        c_mid: usize,
        c_out: usize,
        hw: [usize; 2],
        first: Window2d,
        window: Window2d,
        rounding: Rounding,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let pw = PW;
        let Ok(ge) = Conv2dGeometry::new(n, c_in, hw, c_mid, 1, first) else {
            return Ok(());
        };
        let Ok(gd) = Conv2dGeometry::new(n, c_mid, ge.out_hw(), c_mid, c_mid, window) else {
            return Ok(());
        };
        let gp = Conv2dGeometry::new(n, c_mid, gd.out_hw(), c_out, 1, pw).unwrap();
        let zs = fill(seed ^ 0x55, 4);
        let relu6 = ActRange {
            min: zs[1].min(100),
            max: 100,
        };
        let te = Tables::new(c_mid, 0.004, rounding, seed ^ 1, seed % 2 == 0);
        let td = Tables::new(c_mid, 0.02, rounding, seed ^ 2, seed % 3 == 0);
        let tp = Tables::new(c_out, 0.01, rounding, seed ^ 3, false);
        let mut pe = te.params(ge, rounding, zs[0], zs[1], relu6);
        let mut pd = td.params(gd, rounding, zs[1], zs[2], ActRange::FULL);
        let mut pp = tp.params(gp, rounding, zs[2], zs[3], ActRange::FULL);
        if seed % 5 == 0 {
            // The saturating bias of the paper's dead channels, whatever the rounding.
            pe.bias_add = crate::int8::BiasAdd::Saturating;
            pd.bias_add = crate::int8::BiasAdd::Wrapping;
            pp.bias_add = crate::int8::BiasAdd::Wrapping;
        }
        let x = fill(seed, ge.input_len());
        let (we, wd, wp) = (
            fill(seed ^ 4, ge.weight_len()),
            fill(seed ^ 5, gd.weight_len()),
            fill(seed ^ 6, gp.weight_len()),
        );
        let bias = |s: u64, len: usize| -> Vec<i32> {
            fill(s, len).iter().map(|&b| i32::from(b) * 300).collect()
        };
        let (be, bd, bp) = (
            bias(seed ^ 7, c_mid),
            bias(seed ^ 8, c_mid),
            bias(seed ^ 9, c_out),
        );
        let with_bias = seed % 7 != 0;
        let pick = |b: &[i32]| -> Option<Vec<i32>> { with_bias.then(|| b.to_vec()) };
        let (be, bd, bp) = (pick(&be), pick(&bd), pick(&bp));

        let run = |x: &[i8], w: &[i8], b: Option<&[i32]>, p: &Conv2dInt8Params<'_>| {
            let mut y = vec![0; p.geometry.output_len()];
            let mut scratch = vec![0; conv2d_int8_scratch_len(p)];
            conv2d_int8(x, w, b, &mut y, &mut scratch, p).unwrap();
            y
        };
        let mid = run(&x, &we, be.as_deref(), &pe);
        let dw = run(&mid, &wd, bd.as_deref(), &pd);
        let expected = run(&dw, &wp, bp.as_deref(), &pp);

        let p = BottleneckInt8Params::new(pe, pd, pp).unwrap();
        let weights = BottleneckWeights {
            w_expand: &we,
            b_expand: be.as_deref(),
            w_depthwise: &wd,
            b_depthwise: bd.as_deref(),
            w_project: &wp,
            b_project: bp.as_deref(),
        };
        let mut y = vec![0; gp.output_len()];
        let mut scratch = vec![0; bottleneck_int8_scratch_len(&p)];
        bottleneck_int8(&x, &weights, &mut y, &mut scratch, &p).unwrap();
        prop_assert_eq!(y, expected);
        prop_assert!(scratch.len() <= ge.output_len() + gd.output_len());
        Ok(())
    }

    pub(crate) fn window() -> impl Strategy<Value = Window2d> {
        (
            1..4_usize,
            1..4_usize,
            1..3_usize,
            0..3_usize,
            0..2_usize,
            1..3_usize,
        )
            .prop_map(|(kh, kw, s, pad_t, pad_b, d)| Window2d {
                kernel: [kh, kw],
                strides: [s, 3 - s],
                pads: [pad_t, pad_b, pad_b, pad_t],
                dilations: [d, 1],
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_the_three_convolutions(
            n in 1..3_usize,
            c_in in 1..5_usize,
            c_mid in 1..7_usize,
            c_out in 1..5_usize,
            h in 1..9_usize,
            w in 1..8_usize,
            first in prop_oneof![Just(PW), window()],
            window in window(),
            rounding in 0..4_usize,
            seed in any::<u64>(),
        ) {
            check_case(n, c_in, c_mid, c_out, [h, w], first, window, ROUNDINGS[rounding], seed)?;
        }
    }

    #[test]
    fn mobilenet_shapes() {
        // 3x3 stride 1 and stride 2 with padding 1, the blocks of the paper's networks; odd sizes.
        for (k, s, hw) in [
            (3, 1, [8, 8]),
            (3, 2, [9, 7]),
            (5, 2, [11, 11]),
            (7, 1, [6, 5]),
        ] {
            let pad = k / 2;
            let window = Window2d {
                kernel: [k, k],
                strides: [s, s],
                pads: [pad; 4],
                dilations: [1, 1],
            };
            for (i, rounding) in ROUNDINGS.into_iter().enumerate() {
                check_case(1, 3, 12, 5, hw, PW, window, rounding, 0x9e37 + i as u64).unwrap();
            }
        }
    }

    #[test]
    fn stem_shapes() {
        // The first stage of the paper's networks: a 3x3 stride-2 stem conv (3 -> c_mid), a 3x3
        // depthwise, a pointwise projection; even and odd sizes, batch 2.
        let k3 = |s: usize| Window2d {
            kernel: [3, 3],
            strides: [s, s],
            pads: [1; 4],
            dilations: [1, 1],
        };
        for (hw, n) in [([16, 16], 1), ([13, 10], 2), ([2, 3], 1)] {
            for (i, rounding) in ROUNDINGS.into_iter().enumerate() {
                for s in [1, 2] {
                    check_case(n, 3, 8, 4, hw, k3(2), k3(s), rounding, 0x51e + i as u64).unwrap();
                }
            }
        }
    }

    fn pointwise(n: usize, c_in: usize, hw: [usize; 2], c_out: usize) -> Conv2dGeometry {
        let pw = Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        };
        Conv2dGeometry::new(n, c_in, hw, c_out, 1, pw).unwrap()
    }

    #[test]
    fn chaining_errors_and_scratch() {
        let t = Tables::new(4, 0.01, Rounding::Double, 1, false);
        let p = |g| t.params(g, Rounding::Double, 0, 0, ActRange::FULL);
        let dw = Conv2dGeometry::new(
            1,
            4,
            [6, 6],
            4,
            4,
            Window2d {
                kernel: [3, 3],
                strides: [2, 2],
                pads: [1; 4],
                dilations: [1, 1],
            },
        )
        .unwrap();
        let e = pointwise(1, 2, [6, 6], 4);
        let pr = pointwise(1, 4, [3, 3], 4);
        let ok = BottleneckInt8Params::new(p(e), p(dw), p(pr)).unwrap();
        assert_eq!(ok.ring_rows(), 3);
        assert_eq!(bottleneck_int8_scratch_len(&ok), 4 * 3 * 6 + 4 * 3);
        assert_eq!(ok.bytes_saved(), 4 * 36 + 4 * 9 - (72 + 12));
        // A grouped first convolution is refused; a dense 3x3 one is streamed.
        assert!(matches!(
            BottleneckInt8Params::new(p(dw), p(dw), p(pr)),
            Err(KernelError::Geometry(_))
        ));
        let stem = Conv2dGeometry::new(
            1,
            2,
            [12, 12],
            4,
            1,
            Window2d {
                kernel: [3, 3],
                strides: [2, 2],
                pads: [1; 4],
                dilations: [1, 1],
            },
        )
        .unwrap();
        assert!(BottleneckInt8Params::new(p(stem), p(dw), p(pr)).is_ok());
        assert!(matches!(
            BottleneckInt8Params::new(p(e), p(pointwise(1, 4, [6, 6], 4)), p(pr)),
            Err(KernelError::Geometry(_))
        ));
        assert!(matches!(
            BottleneckInt8Params::new(p(e), p(dw), p(pointwise(1, 4, [6, 6], 4))),
            Err(KernelError::Geometry(_))
        ));
        let weights = BottleneckWeights {
            w_expand: &[0; 8],
            b_expand: None,
            w_depthwise: &[0; 36],
            b_depthwise: None,
            w_project: &[0; 16],
            b_project: None,
        };
        let mut out = [0; 36];
        let mut scratch = [0; 84];
        bottleneck_int8(&[0; 72], &weights, &mut out, &mut scratch, &ok).unwrap();
        assert_eq!(
            bottleneck_int8(&[0; 72], &weights, &mut out, &mut scratch[..83], &ok),
            Err(KernelError::Scratch {
                needed: 84,
                found: 83
            })
        );
        let short = BottleneckWeights {
            w_depthwise: &[0; 35],
            ..weights
        };
        assert!(matches!(
            bottleneck_int8(&[0; 72], &short, &mut out, &mut scratch, &ok),
            Err(KernelError::Length { .. })
        ));
    }
}
