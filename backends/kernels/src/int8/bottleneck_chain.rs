//! Two frozen bottlenecks streamed into one another: the first block's output rows are produced
//! on demand, into a small ring, for the second block, so that the tensor between them never
//! exists whole.
//!
//! The second block's first convolution must be pointwise (an expansion): its expanded row `r`
//! reads only row `r` of the first block's output. The link between the blocks is a ring of
//! `span` rows of the first block's output (the narrow tensor, `c_link` channels), where `span`
//! is the second depthwise window's vertical extent. For each output row of the second block
//! and each expanded channel, the expanded rows its depthwise window reads are computed from the
//! link ring into a one-channel ring of `span` rows, the depthwise output row of that channel
//! follows, and the projection reads the whole depthwise row.
//!
//! The first block computes each of its rows (and each row of its own first convolution)
//! exactly once. The second block's expansion is computed per depthwise output row: an expanded
//! row shared by two depthwise output rows is computed twice (a 3×3 stride-2 depthwise computes
//! 3 expanded rows per output row where 2 are new: 1.5× the expansion's multiply-adds; a
//! stride-1 one 3×). This keeps the scratch at the narrow ring and one channel's rows instead
//! of the whole expanded ring (`c_mid · span · w`).
//!
//! The result is bit-identical to [`bottleneck_int8`](super::bottleneck_int8) run on the two
//! blocks in turn: each element sums the same wrapped `i32` products and goes through the same
//! output stage.
//!
//! Scratch: `i8` elements, the first block's scratch, then the link ring
//! (`c_link · span · w_link`), one channel's expanded rows (`span · w_link`) and the second
//! block's depthwise output row (`c_mid · ow`); see [`bottleneck_chain_int8_scratch_len`].
//!
//! [`bottleneck_chain_int8_in_place`] runs the same schedule with its output in its input's
//! bytes (one image): the output rows are staged in the input's second channel as the input
//! rows under them die, after a delay of a few rows in the scratch, then transposed to the
//! front of the buffer. The input and the output never coexist whole.

use crate::error::{check_len, check_scratch, KernelError};
use crate::geometry::Conv2dGeometry;

use super::bottleneck::{
    bottleneck_int8_scratch_len, depthwise_channel, pointwise_run, project_row, BlockRows,
    BottleneckInt8Params, BottleneckWeights, RUN,
};

/// The parameters of [`bottleneck_chain_int8`]: two bottlenecks, the second reading the first's
/// output through a pointwise expansion, checked to chain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BottleneckChainInt8Params<'a> {
    /// The first block (any dense first convolution, e.g. a network's stem).
    pub first: BottleneckInt8Params<'a>,
    /// The second block; its first convolution is pointwise.
    pub second: BottleneckInt8Params<'a>,
}

impl<'a> BottleneckChainInt8Params<'a> {
    /// Checks that `second` reads `first`'s output through a pointwise expansion and bundles
    /// them.
    pub fn new(
        first: BottleneckInt8Params<'a>,
        second: BottleneckInt8Params<'a>,
    ) -> Result<Self, KernelError> {
        let (out, e) = (&first.project.geometry, &second.expand.geometry);
        if !e.is_pointwise() {
            return Err(KernelError::Geometry(
                "bottleneck chain: the second block's first convolution must be pointwise",
            ));
        }
        if out.n() != e.n() || out.c_out() != e.c_in() || out.out_hw() != e.in_hw() {
            return Err(KernelError::Geometry(
                "bottleneck chain: the first block's output is not the second block's input",
            ));
        }
        if first.project.out.zero_point != second.expand.x_zero_point {
            return Err(KernelError::Param(
                "bottleneck chain: the first block's output zero point is not the second block's input zero point",
            ));
        }
        Ok(Self { first, second })
    }

    /// Rows of the first block's output kept at once (and rows of one expanded channel): the
    /// second depthwise window's vertical extent, at most its input height.
    pub fn link_rows(&self) -> usize {
        self.second.ring_rows()
    }

    /// Bytes the unfused pair materialises that this kernel does not: both blocks' saved
    /// intermediates and the tensor between them, less the scratch.
    pub fn bytes_saved(&self) -> usize {
        let whole = [&self.first, &self.second]
            .iter()
            .map(|p| p.expand.geometry.output_len() + p.depthwise.geometry.output_len())
            .sum::<usize>()
            + self.first.project.geometry.output_len();
        whole.saturating_sub(bottleneck_chain_int8_scratch_len(self))
    }
}

/// The `i8` scratch elements [`bottleneck_chain_int8`] needs: the first block's
/// ([`bottleneck_int8_scratch_len`]), the link ring (`c_link · span · w_link`), one expanded
/// channel's rows (`span · w_link`) and the second depthwise output row (`c_mid · ow`).
pub fn bottleneck_chain_int8_scratch_len(p: &BottleneckChainInt8Params<'_>) -> usize {
    let (e, d) = (&p.second.expand.geometry, &p.second.depthwise.geometry);
    let (span, w) = (p.link_rows(), e.in_hw()[1]);
    bottleneck_int8_scratch_len(&p.first)
        + e.c_in() * span * w
        + span * w
        + d.c_in() * d.out_hw()[1]
}

/// The fused pair: `x` (the first block's input) into `out` (the second block's output), equal
/// to [`bottleneck_int8`](super::bottleneck_int8) on `p.first` then on `p.second`; `weights`
/// are the two blocks' weights in order, `scratch` holds
/// [`bottleneck_chain_int8_scratch_len`] elements.
pub fn bottleneck_chain_int8(
    x: &[i8],
    weights: [&BottleneckWeights<'_>; 2],
    out: &mut [i8],
    scratch: &mut [i8],
    p: &BottleneckChainInt8Params<'_>,
) -> Result<(), KernelError> {
    let (first, second) = (&p.first, &p.second);
    let (e1, e2, d2, p2) = (
        &first.expand.geometry,
        &second.expand.geometry,
        &second.depthwise.geometry,
        &second.project.geometry,
    );
    check_len("bottleneck chain x", e1.input_len(), x.len())?;
    check_len("bottleneck chain out", p2.output_len(), out.len())?;
    weights[0].check(first)?;
    weights[1].check(second)?;
    let needed = bottleneck_chain_int8_scratch_len(p);
    check_scratch(needed, scratch.len())?;
    if p2.output_len() == 0 || e1.input_len() == 0 || e2.input_len() == 0 {
        return Ok(());
    }
    let oh = d2.out_hw()[0];
    let in_len = e1.input_len() / e1.n();
    let out_len = p2.output_len() / p2.n();
    for (x_b, out_b) in x.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)) {
        let mut rows = ChainRows::new(&mut scratch[..needed], p);
        for oy in 0..oh {
            rows.output_row(x_b, oy, weights, p, out_b, oh, oy);
        }
    }
    Ok(())
}

/// The streaming state of a chain over one batch element: the first block's state, the link
/// ring, one expanded channel's rows, the second depthwise output row, and the next row of the
/// first block's output to compute.
struct ChainRows<'s> {
    first: BlockRows<'s>,
    link: &'s mut [i8],
    expanded: &'s mut [i8],
    dw_row: &'s mut [i8],
    next_row: usize,
}

impl<'s> ChainRows<'s> {
    /// The state of chain `p` over `scratch` (exactly [`bottleneck_chain_int8_scratch_len`]
    /// elements, checked by the caller), before its first row.
    fn new(scratch: &'s mut [i8], p: &BottleneckChainInt8Params<'_>) -> Self {
        let e2 = &p.second.expand.geometry;
        let span = p.link_rows();
        let (c_link, w_link) = (e2.c_in(), e2.in_hw()[1]);
        let (first, rest) = scratch.split_at_mut(bottleneck_int8_scratch_len(&p.first));
        let (link, rest) = rest.split_at_mut(c_link * span * w_link);
        let (expanded, dw_row) = rest.split_at_mut(span * w_link);
        Self {
            first: BlockRows::new(first, &p.first),
            link,
            expanded,
            dw_row,
            next_row: 0,
        }
    }

    /// Rows of the first block's first convolution computed so far.
    fn expanded_rows(&self) -> usize {
        self.first.next_row()
    }

    /// Output row `oy` of the chain (all channels) into row `slot` of `out`, viewed as
    /// `[c_out, rows, ow]`; the rows of the first block's output it reads are computed from
    /// `x_b` (one batch element) first, each once. Rows are taken in increasing order.
    #[allow(clippy::too_many_arguments)]
    fn output_row(
        &mut self,
        x_b: &[i8],
        oy: usize,
        weights: [&BottleneckWeights<'_>; 2],
        p: &BottleneckChainInt8Params<'_>,
        out: &mut [i8],
        rows: usize,
        slot: usize,
    ) {
        let (first, second) = (&p.first, &p.second);
        let (e2, d2) = (&second.expand.geometry, &second.depthwise.geometry);
        let span = p.link_rows();
        let (c_link, w_link) = (e2.c_in(), e2.in_hw()[1]);
        let ow = d2.out_hw()[1];
        let c_mid = d2.c_in();
        let [ay, ax] = d2.axes();
        if let Some(last) = ay.valid_taps(oy).last() {
            let last_row = ay.input_index(oy, last);
            while self.next_row <= last_row {
                let r = self.next_row;
                self.first
                    .output_row(x_b, r, weights[0], first, self.link, span, r % span);
                self.next_row += 1;
            }
        }
        for c in 0..c_mid {
            let w_c = &weights[1].w_expand[c * c_link..][..c_link];
            for ky in ay.valid_taps(oy) {
                let slot = ay.input_index(oy, ky) % span;
                let row = &mut self.expanded[slot * w_link..][..w_link];
                for (r, y) in row.chunks_mut(RUN).enumerate() {
                    let xr = &self.link[slot * w_link + r * RUN..];
                    let b = weights[1].b_expand;
                    pointwise_run(xr, span * w_link, w_c, y, b, c, &second.expand);
                }
            }
            let y = &mut self.dw_row[c * ow..][..ow];
            depthwise_channel(
                self.expanded,
                span,
                oy,
                [&ay, &ax],
                y,
                c,
                weights[1],
                second,
            );
        }
        project_row(self.dw_row, out, rows, slot, weights[1], second);
    }
}

/// Why chain `p` cannot run in place ([`bottleneck_chain_int8_in_place`]), or `None` when it
/// can.
fn in_place_refusal(g: &ChainGeometry<'_>) -> Option<&'static str> {
    let (e1, e2, p2) = (g.first[0], g.second[0], g.second[2]);
    let [h, w] = e1.in_hw();
    if e1.n() != 1 {
        Some("bottleneck chain in place: the batch must be one image")
    } else if e1.input_len() == 0 || e2.input_len() == 0 || p2.output_len() == 0 {
        Some("bottleneck chain in place: the input, the link or the output is empty")
    } else if e1.c_in() < 2 {
        Some("bottleneck chain in place: the input needs at least two channels (the output is staged in the second)")
    } else if p2.output_len() > h * w {
        Some("bottleneck chain in place: the output is larger than one input channel")
    } else {
        None
    }
}

/// The six convolutions' geometries of a chain (expansion, depthwise, projection of each
/// block): all the in-place schedule depends on.
#[derive(Clone, Copy, Debug)]
pub struct ChainGeometry<'g> {
    /// The first block's.
    pub first: [&'g Conv2dGeometry; 3],
    /// The second block's.
    pub second: [&'g Conv2dGeometry; 3],
}

impl<'g> ChainGeometry<'g> {
    /// The geometries of chain `p`.
    pub fn of(p: &'g BottleneckChainInt8Params<'_>) -> Self {
        let block = |b: &'g BottleneckInt8Params<'_>| {
            [
                &b.expand.geometry,
                &b.depthwise.geometry,
                &b.project.geometry,
            ]
        };
        Self {
            first: block(&p.first),
            second: block(&p.second),
        }
    }
}

/// The in-place schedule of an admissible chain: where its output rows are staged and when
/// the input bytes under them are dead.
struct InPlacePlan {
    /// Output rows pending at once, at most (the delay ring's rows).
    delay: usize,
    /// Bytes of one output row, all channels (`c_out · ow`).
    row: usize,
    /// Input rows, columns and output rows.
    h: usize,
    w: usize,
    oh: usize,
    /// The first block's first convolution (its rows say which input rows are dead).
    expand: Conv2dGeometry,
}

impl InPlacePlan {
    /// The plan of chain `p`, or why it cannot run in place. The delay comes from a
    /// simulation of the kernel's schedule: before output row `oy`, the second depthwise
    /// window's rows need the first block's output rows up to its last valid tap, each of
    /// which needs the first block's first-convolution rows up to its own depthwise window's
    /// last valid tap ([`ChainRows::output_row`] and `BlockRows::output_row` compute exactly
    /// those, in increasing order).
    fn new(g: &ChainGeometry<'_>) -> Result<Self, &'static str> {
        if let Some(why) = in_place_refusal(g) {
            return Err(why);
        }
        let (e1, d2) = (g.first[0], g.second[1]);
        let [h, w] = e1.in_hw();
        let [oh, ow] = d2.out_hw();
        let mut plan = Self {
            delay: 0,
            row: g.second[2].c_out() * ow,
            h,
            w,
            oh,
            expand: *e1,
        };
        let ([ay1, _], [ay2, _]) = (g.first[1].axes(), d2.axes());
        let (mut links, mut expanded, mut flushed) = (0, 0, 0);
        for oy in 0..oh {
            if let Some(last) = ay2.valid_taps(oy).last() {
                while links <= ay2.input_index(oy, last) {
                    if let Some(last1) = ay1.valid_taps(links).last() {
                        expanded = expanded.max(ay1.input_index(links, last1) + 1);
                    }
                    links += 1;
                }
            }
            plan.delay = plan.delay.max(oy + 1 - flushed);
            flushed = flushed.max(plan.flushable(expanded).min(oy + 1));
        }
        Ok(plan)
    }

    /// Output rows whose staging bytes (row `oy` at `h·w + oy·row` in the buffer, that is in
    /// the input's second channel) lie wholly in input rows no later computation reads, once
    /// the first block has computed `expanded` rows of its first convolution.
    ///
    /// The first convolution's row `m` reads input rows from `m·stride − pad_top` on (its
    /// first valid tap, for a unit dilation; a lower bound otherwise), and its later rows read
    /// later ones, so the input rows below `expanded·stride − pad_top` are dead in every
    /// channel; all of them are once every row is computed.
    fn flushable(&self, expanded: usize) -> usize {
        let [ay, _] = self.expand.axes();
        let dead = if expanded >= ay.out_len {
            self.h
        } else {
            (expanded * ay.stride)
                .saturating_sub(ay.pad_begin)
                .min(self.h)
        };
        (dead * self.w / self.row).min(self.oh)
    }
}

/// The delay of [`bottleneck_chain_int8_in_place`] on chain `p`: the most output rows it keeps
/// in its scratch at once before their bytes of the input are dead (at least 1, at most the
/// output height; 1 when every row can be staged as soon as it is computed). `None` when `p`
/// cannot run in place: a batch of more than one image, an empty input, link or output, an
/// input of one channel (the output is staged in the second), or an output larger than one
/// input channel. Costs one pass over the rows (no arithmetic on data).
pub fn bottleneck_chain_int8_in_place_delay(p: &BottleneckChainInt8Params<'_>) -> Option<usize> {
    InPlacePlan::new(&ChainGeometry::of(p))
        .ok()
        .map(|plan| plan.delay)
}

/// The `i8` scratch elements [`bottleneck_chain_int8_in_place`] needs: the chain's
/// ([`bottleneck_chain_int8_scratch_len`]) then the delay ring of
/// [`bottleneck_chain_int8_in_place_delay`] output rows (`c_out · ow` each); `None` when `p`
/// cannot run in place (as for the delay).
pub fn bottleneck_chain_int8_in_place_scratch_len(
    p: &BottleneckChainInt8Params<'_>,
) -> Option<usize> {
    let plan = InPlacePlan::new(&ChainGeometry::of(p)).ok()?;
    Some(bottleneck_chain_int8_scratch_len(p) + plan.delay * plan.row)
}

/// The scratch [`bottleneck_chain_int8_in_place`] needs beyond the chain's
/// ([`bottleneck_chain_int8_scratch_len`]): its delay ring, from the geometries alone (what a
/// compiler sizes before it has the parameters); `None` when the chain cannot run in place.
pub fn bottleneck_chain_in_place_extra_scratch(g: &ChainGeometry<'_>) -> Option<usize> {
    InPlacePlan::new(g).ok().map(|plan| plan.delay * plan.row)
}

/// [`bottleneck_chain_int8`] with its output in its input's bytes: `buf` holds the first
/// block's input `[1, c_in, h, w]` and is consumed; on return `buf[..out_len]` is exactly the
/// output [`bottleneck_chain_int8`] writes (`out_len` the second block's output length) and
/// the rest of `buf` is clobbered. `scratch` holds
/// [`bottleneck_chain_int8_in_place_scratch_len`] elements.
///
/// Each output row (all channels) is computed into a ring of delay rows in the scratch, then
/// copied, in order and as early as possible, to a staging area in the input's second channel
/// (`buf[h·w..][..out_len]`, rows `[oy][c][x]`) once the input bytes it lands on are dead;
/// after the last row the staged output is transposed to `[c][oy][x]` at the start of `buf`
/// (the first channel, disjoint from the staging area since `out_len ≤ h·w`). Chains
/// [`bottleneck_chain_int8_in_place_delay`] refuses are a [`KernelError::Geometry`]; on any
/// error nothing is written.
pub fn bottleneck_chain_int8_in_place(
    buf: &mut [i8],
    weights: [&BottleneckWeights<'_>; 2],
    scratch: &mut [i8],
    p: &BottleneckChainInt8Params<'_>,
) -> Result<(), KernelError> {
    let plan = InPlacePlan::new(&ChainGeometry::of(p)).map_err(KernelError::Geometry)?;
    check_len(
        "bottleneck chain in place buf",
        p.first.expand.geometry.input_len(),
        buf.len(),
    )?;
    weights[0].check(&p.first)?;
    weights[1].check(&p.second)?;
    let chain = bottleneck_chain_int8_scratch_len(p);
    let needed = chain + plan.delay * plan.row;
    check_scratch(needed, scratch.len())?;
    let (chain_scratch, ring) = scratch[..needed].split_at_mut(chain);
    let (plane, row, oh) = (plan.h * plan.w, plan.row, plan.oh);
    let out_len = oh * row;
    let mut rows = ChainRows::new(chain_scratch, p);
    let mut flushed = 0;
    let flush = |buf: &mut [i8], ring: &[i8], flushed: &mut usize, ready: usize| {
        for r in *flushed..ready {
            buf[plane + r * row..][..row].copy_from_slice(&ring[(r % plan.delay) * row..][..row]);
        }
        *flushed = ready.max(*flushed);
    };
    for oy in 0..oh {
        debug_assert!(
            oy - flushed < plan.delay,
            "a pending row would be overwritten"
        );
        let slot = &mut ring[(oy % plan.delay) * row..][..row];
        rows.output_row(buf, oy, weights, p, slot, 1, 0);
        let ready = plan.flushable(rows.expanded_rows()).min(oy + 1);
        flush(buf, ring, &mut flushed, ready);
    }
    flush(buf, ring, &mut flushed, oh);
    let (out, staging) = buf.split_at_mut(plane);
    let ow = row / p.second.project.geometry.c_out();
    for (oy, staged) in staging[..out_len].chunks_exact(row).enumerate() {
        for (c, run) in staged.chunks_exact(ow).enumerate() {
            out[(c * oh + oy) * ow..][..ow].copy_from_slice(run);
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
    use crate::geometry::{Conv2dGeometry, Window2d};
    use crate::int8::bottleneck::bottleneck_int8;
    use crate::int8::bottleneck::tests::{fill, window, Tables, PW, ROUNDINGS};
    use crate::requant::{ActRange, Rounding};
    use proptest::prelude::*;

    /// The owned weights of one block.
    struct Weights {
        w: [Vec<i8>; 3],
        b: Option<[Vec<i32>; 3]>,
    }

    impl Weights {
        fn new(geometries: [&Conv2dGeometry; 3], seed: u64) -> Self {
            let w = geometries.map(|g| fill(seed ^ g.weight_len() as u64, g.weight_len()));
            let bias = |i: u64, g: &Conv2dGeometry| -> Vec<i32> {
                fill(seed ^ i, g.c_out())
                    .iter()
                    .map(|&b| i32::from(b) * 300)
                    .collect()
            };
            let b = (seed % 7 != 0).then(|| {
                [
                    bias(11, geometries[0]),
                    bias(12, geometries[1]),
                    bias(13, geometries[2]),
                ]
            });
            Self { w, b }
        }

        fn view(&self) -> BottleneckWeights<'_> {
            let b = |i: usize| self.b.as_ref().map(|b| b[i].as_slice());
            BottleneckWeights {
                w_expand: &self.w[0],
                b_expand: b(0),
                w_depthwise: &self.w[1],
                b_depthwise: b(1),
                w_project: &self.w[2],
                b_project: b(2),
            }
        }
    }

    /// The geometries of a block `[n, c_in, hw] -> c_mid -> c_out` with first window `first`
    /// and depthwise window `dw`, or `None` when they do not fit the input.
    fn geometries(
        n: usize,
        [c_in, c_mid, c_out]: [usize; 3],
        hw: [usize; 2],
        first: Window2d,
        dw: Window2d,
    ) -> Option<[Conv2dGeometry; 3]> {
        let e = Conv2dGeometry::new(n, c_in, hw, c_mid, 1, first).ok()?;
        let d = Conv2dGeometry::new(n, c_mid, e.out_hw(), c_mid, c_mid, dw).ok()?;
        let p = Conv2dGeometry::new(n, c_mid, d.out_hw(), c_out, 1, PW).ok()?;
        Some([e, d, p])
    }

    /// One case: the chained pair against the two blocks in turn, and the chain in place
    /// against the chained pair (or refused, when it cannot run in place). `channels` are the
    /// first block's input, expanded and output channels then the second's expanded and
    /// output ones. Returns the in-place delay (`None` when refused or the windows do not fit).
    #[allow(clippy::too_many_arguments)]
    fn check_case(
        n: usize,
        channels: [usize; 5],
        hw: [usize; 2],
        first: Window2d,
        dw1: Window2d,
        dw2: Window2d,
        rounding: Rounding,
        seed: u64,
    ) -> Result<Option<usize>, TestCaseError> {
        let [c_in, c_mid1, c_link, c_mid2, c_out] = channels;
        let Some(g1) = geometries(n, [c_in, c_mid1, c_link], hw, first, dw1) else {
            return Ok(None);
        };
        let Some(g2) = geometries(n, [c_link, c_mid2, c_out], g1[2].out_hw(), PW, dw2) else {
            return Ok(None);
        };
        // Zero points: input, first block's two intermediates, the link, the second's two, out.
        let zs = fill(seed ^ 0x55, 7);
        let relu6 = |z: i8| ActRange {
            min: z.min(100),
            max: 100,
        };
        // Half the cases with small scales, whose outputs mostly do not saturate (so that a
        // wrong input byte shows in the output).
        let k = if (seed >> 8) % 2 == 0 { 1.0 } else { 0.03 };
        let tables = [
            Tables::new(c_mid1, 0.004 * k, rounding, seed ^ 1, seed % 2 == 0),
            Tables::new(c_mid1, 0.02 * k, rounding, seed ^ 2, seed % 3 == 0),
            Tables::new(c_link, 0.01 * k, rounding, seed ^ 3, false),
            Tables::new(c_mid2, 0.005 * k, rounding, seed ^ 4, seed % 2 == 1),
            Tables::new(c_mid2, 0.03 * k, rounding, seed ^ 5, false),
            Tables::new(c_out, 0.02 * k, rounding, seed ^ 6, false),
        ];
        let geoms = [g1[0], g1[1], g1[2], g2[0], g2[1], g2[2]];
        let ranges = [
            relu6(zs[1]),
            relu6(zs[2]),
            ActRange::FULL,
            relu6(zs[4]),
            relu6(zs[5]),
            ActRange::FULL,
        ];
        let convs: Vec<_> = (0..6)
            .map(|i| tables[i].params(geoms[i], rounding, zs[i], zs[i + 1], ranges[i]))
            .collect();
        let p1 = BottleneckInt8Params::new(convs[0], convs[1], convs[2]).unwrap();
        let p2 = BottleneckInt8Params::new(convs[3], convs[4], convs[5]).unwrap();
        let (w1, w2) = (
            Weights::new([&g1[0], &g1[1], &g1[2]], seed),
            Weights::new([&g2[0], &g2[1], &g2[2]], seed ^ 0xabc),
        );
        let (w1, w2) = (w1.view(), w2.view());
        let x = fill(seed, g1[0].input_len());

        let mut link = vec![0; g1[2].output_len()];
        let mut scratch = vec![0; bottleneck_int8_scratch_len(&p1)];
        bottleneck_int8(&x, &w1, &mut link, &mut scratch, &p1).unwrap();
        let mut expected = vec![0; g2[2].output_len()];
        let mut scratch = vec![0; bottleneck_int8_scratch_len(&p2)];
        bottleneck_int8(&link, &w2, &mut expected, &mut scratch, &p2).unwrap();

        let p = BottleneckChainInt8Params::new(p1, p2).unwrap();
        let mut y = vec![0; g2[2].output_len()];
        let mut scratch = vec![0; bottleneck_chain_int8_scratch_len(&p)];
        bottleneck_chain_int8(&x, [&w1, &w2], &mut y, &mut scratch, &p).unwrap();
        prop_assert_eq!(&y, &expected);
        check_in_place(&x, [&w1, &w2], &y, &p)
    }

    /// The chain in place on a copy of `x` against `y` (the chain's output), or its refusal;
    /// a short scratch is refused. Nothing is written on an error. Returns the delay.
    fn check_in_place(
        x: &[i8],
        weights: [&BottleneckWeights<'_>; 2],
        y: &[i8],
        p: &BottleneckChainInt8Params<'_>,
    ) -> Result<Option<usize>, TestCaseError> {
        let e1 = &p.first.expand.geometry;
        let [h, w] = e1.in_hw();
        let oh = p.second.project.geometry.out_hw()[0];
        let delay = bottleneck_chain_int8_in_place_delay(p);
        let needed = bottleneck_chain_int8_in_place_scratch_len(p);
        let admissible = e1.n() == 1
            && e1.c_in() >= 2
            && !x.is_empty()
            && !y.is_empty()
            && p.second.expand.geometry.input_len() > 0
            && y.len() <= h * w;
        prop_assert_eq!(delay.is_some(), admissible);
        prop_assert_eq!(needed.is_some(), admissible);
        let mut buf = x.to_vec();
        let (Some(delay), Some(needed)) = (delay, needed) else {
            let mut scratch = vec![0; bottleneck_chain_int8_scratch_len(p) + y.len() + 1];
            let r = bottleneck_chain_int8_in_place(&mut buf, weights, &mut scratch, p);
            prop_assert!(
                matches!(r, Err(KernelError::Geometry(m)) if m.starts_with("bottleneck chain in place: "))
            );
            prop_assert_eq!(&buf[..], x);
            return Ok(None);
        };
        prop_assert!((1..=oh).contains(&delay));
        let ow = p.second.project.geometry.out_hw()[1];
        prop_assert_eq!(
            needed,
            bottleneck_chain_int8_scratch_len(p) + delay * p.second.project.geometry.c_out() * ow
        );
        let mut scratch = vec![0; needed];
        prop_assert_eq!(
            bottleneck_chain_int8_in_place(&mut buf, weights, &mut scratch[..needed - 1], p),
            Err(KernelError::Scratch {
                needed,
                found: needed - 1
            })
        );
        prop_assert_eq!(&buf[..], x);
        let mut long = x.to_vec();
        long.push(0);
        let r = bottleneck_chain_int8_in_place(&mut long, weights, &mut scratch, p);
        let long_refused = matches!(r, Err(KernelError::Length { .. }));
        prop_assert!(long_refused, "{:?}", r);
        prop_assert_eq!(&long[..x.len()], x);
        bottleneck_chain_int8_in_place(&mut buf, weights, &mut scratch, p).unwrap();
        prop_assert_eq!(&buf[..y.len()], y);
        Ok(Some(delay))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_the_two_blocks(
            n in 1..3_usize,
            channels in [1..4_usize, 1..6, 1..4, 1..7, 1..4],
            h in 1..10_usize,
            w in 1..9_usize,
            first in prop_oneof![Just(PW), window()],
            dw1 in window(),
            dw2 in window(),
            rounding in 0..4_usize,
            seed in any::<u64>(),
        ) {
            check_case(n, channels, [h, w], first, dw1, dw2, ROUNDINGS[rounding], seed)?;
        }

        #[test]
        fn in_place_matches_the_chain(
            channels in [2..5_usize, 1..6, 1..5, 1..7, 1..5],
            h in 1..14_usize,
            w in 1..12_usize,
            first in prop_oneof![Just(PW), window()],
            dw1 in window(),
            dw2 in window(),
            rounding in 0..4_usize,
            seed in any::<u64>(),
        ) {
            check_case(1, channels, [h, w], first, dw1, dw2, ROUNDINGS[rounding], seed)?;
        }

        #[test]
        fn in_place_first_stages(
            shape in 0..2_usize,
            c_mid1 in 1..17_usize,
            c_link in 1..9_usize,
            c_mid2 in 1..25_usize,
            c_out in 1..17_usize,
            c_in in 2..4_usize,
            hw in prop_oneof![Just([32, 32]), Just([24, 20]), Just([17, 15]), Just([8, 8])],
            rounding in 0..4_usize,
            seed in any::<u64>(),
        ) {
            // Proxyless-like (stem 3x3 s2, dw 3x3 s1, then dw 5x5 s2) and MbV2-like (dw 3x3
            // s2) first stages on small images.
            let dw2 = [k(5, 2), k3(2)][shape];
            let channels = [c_in, c_mid1, c_link, c_mid2, c_out];
            let delay = check_case(1, channels, hw, k3(2), k3(1), dw2, ROUNDINGS[rounding], seed)?;
            let [oh, ow] = [hw[0].div_ceil(4), hw[1].div_ceil(4)];
            prop_assert_eq!(delay.is_some(), c_out * oh * ow <= hw[0] * hw[1]);
        }
    }

    fn k3(s: usize) -> Window2d {
        k(3, s)
    }

    /// A `k`×`k` window of stride `s`, padded to keep the size at stride 1.
    fn k(k: usize, s: usize) -> Window2d {
        Window2d {
            kernel: [k, k],
            strides: [s, s],
            pads: [k / 2; 4],
            dilations: [1, 1],
        }
    }

    /// The in-place staging of chain `[c_in, c_link, c_out]` on `hw` against a naive liveness
    /// count: after each output row, every staged byte lies below the first input row any
    /// later first-convolution row reads, and (for a unit vertical dilation past the top
    /// padding, where the plan's bound is exact) the rows staged are all those that fit there.
    fn check_staging(
        [c_in, c_link, c_out]: [usize; 3],
        hw: [usize; 2],
        [first, dw1, dw2]: [Window2d; 3],
    ) -> Result<(), TestCaseError> {
        let Some(g1) = geometries(1, [c_in, 2, c_link], hw, first, dw1) else {
            return Ok(());
        };
        let Some(g2) = geometries(1, [c_link, 2, c_out], g1[2].out_hw(), PW, dw2) else {
            return Ok(());
        };
        let t = Tables::new(1, 0.01, Rounding::Double, 1, false);
        let conv = |g| t.params(g, Rounding::Double, 0, 0, ActRange::FULL);
        let block =
            |g: [Conv2dGeometry; 3]| BottleneckInt8Params::new(conv(g[0]), conv(g[1]), conv(g[2]));
        let p = BottleneckChainInt8Params::new(block(g1).unwrap(), block(g2).unwrap()).unwrap();
        let Ok(plan) = InPlacePlan::new(&ChainGeometry::of(&p)) else {
            return Ok(());
        };
        let [ae, _] = g1[0].axes();
        let [ay1, _] = g1[1].axes();
        let [ay2, _] = g2[1].axes();
        let [h, w] = hw;
        let (mut expanded, mut flushed) = (0, 0);
        for oy in 0..plan.oh {
            // The first-convolution rows computed by now: all those any link row read so far
            // reads (they are computed in increasing order).
            for ky2 in ay2.valid_taps(oy) {
                let link = ay2.input_index(oy, ky2);
                for ky1 in ay1.valid_taps(link) {
                    expanded = expanded.max(ay1.input_index(link, ky1) + 1);
                }
            }
            let live = (expanded..ae.out_len)
                .flat_map(|m| ae.valid_taps(m).map(move |k| ae.input_index(m, k)))
                .min()
                .unwrap_or(h);
            prop_assert!(oy + 1 - flushed <= plan.delay, "row {}: ring overrun", oy);
            let ready = plan.flushable(expanded).min(oy + 1);
            flushed = flushed.max(ready);
            prop_assert!(
                flushed * plan.row <= live * w,
                "row {}: {} staged",
                oy,
                flushed
            );
            if ae.dilation == 1 && expanded * ae.stride >= ae.pad_begin {
                prop_assert_eq!(ready, (live * w / plan.row).min(oy + 1));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn staging_lands_on_dead_input_rows(
            channels in [2..5_usize, 1..5, 1..5],
            h in 1..24_usize,
            w in 1..10_usize,
            first in prop_oneof![Just(PW), window()],
            dw1 in window(),
            dw2 in window(),
        ) {
            check_staging(channels, [h, w], [first, dw1, dw2])?;
        }
    }

    #[test]
    fn proxyless_first_stage_in_place() {
        // 1x3x128x128 -> stem 3x3 s2 (16) -> dw 3x3 -> 8 at 64x64; pw 24 -> dw 5x5 s2 -> 16 at
        // 32x32: each output row (512 bytes) lands on four dead input rows as soon as it is
        // computed.
        let delay = check_case(
            1,
            [3, 16, 8, 24, 16],
            [128, 128],
            k3(2),
            k3(1),
            k(5, 2),
            Rounding::Double,
            0x9a0c,
        )
        .unwrap();
        assert_eq!(delay, Some(1));
        // MbV2-like (w0.35): stem 16, link 8, pw 48 -> dw 3x3 s2 -> 8 at 32x32 (each output
        // row covers two input rows).
        let delay = check_case(
            1,
            [3, 16, 8, 48, 8],
            [128, 128],
            k3(2),
            k3(1),
            k3(2),
            Rounding::Single,
            0x3b2,
        )
        .unwrap();
        assert_eq!(delay, Some(1));
    }

    #[test]
    fn first_stage_into_a_stride_2_block() {
        // The paper networks' stem (3x3 stride 2) -> dw 3x3 -> pw, then pw -> dw 3x3 stride 2 ->
        // pw; even and odd sizes, batch 2.
        for (hw, n) in [([32, 32], 1), ([13, 10], 2), ([2, 3], 1)] {
            for (i, rounding) in ROUNDINGS.into_iter().enumerate() {
                let seed = 0xc4a1 + i as u64;
                check_case(
                    n,
                    [3, 16, 8, 24, 8],
                    hw,
                    k3(2),
                    k3(1),
                    k3(2),
                    rounding,
                    seed,
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn chaining_errors_and_scratch() {
        let t = Tables::new(8, 0.01, Rounding::Double, 1, false);
        let conv = |g, zx, zy| t.params(g, Rounding::Double, zx, zy, ActRange::FULL);
        let block = |g: [Conv2dGeometry; 3], zx: i8, zy: i8| {
            BottleneckInt8Params::new(conv(g[0], zx, 0), conv(g[1], 0, 0), conv(g[2], 0, zy))
                .unwrap()
        };
        let g1 = geometries(1, [3, 8, 8], [16, 16], k3(2), k3(1)).unwrap();
        let g2 = geometries(1, [8, 8, 8], [8, 8], PW, k3(2)).unwrap();
        let ok = BottleneckChainInt8Params::new(block(g1, 0, 3), block(g2, 3, 0)).unwrap();
        assert_eq!(ok.link_rows(), 3);
        // First block 8·3·8 + 8·8; link 8·3·8; one channel 3·8; second dw row 8·4.
        let scratch = 8 * 3 * 8 + 8 * 8 + 8 * 3 * 8 + 3 * 8 + 8 * 4;
        assert_eq!(bottleneck_chain_int8_scratch_len(&ok), scratch);
        assert_eq!(
            ok.bytes_saved(),
            (8 * 64 * 2 + 8 * 64 + 8 * 64 + 8 * 16) - scratch
        );
        // The zero points must meet; the second expansion must be pointwise and read the first
        // block's output.
        assert!(matches!(
            BottleneckChainInt8Params::new(block(g1, 0, 3), block(g2, 2, 0)),
            Err(KernelError::Param(_))
        ));
        let g3 = geometries(1, [8, 8, 8], [8, 8], k3(1), k3(2)).unwrap();
        assert!(matches!(
            BottleneckChainInt8Params::new(block(g1, 0, 3), block(g3, 3, 0)),
            Err(KernelError::Geometry(_))
        ));
        let g4 = geometries(1, [8, 8, 8], [4, 4], PW, k3(2)).unwrap();
        assert!(matches!(
            BottleneckChainInt8Params::new(block(g1, 0, 3), block(g4, 3, 0)),
            Err(KernelError::Geometry(_))
        ));
        let mut out = vec![0; 8 * 16];
        let mut s = vec![0; scratch - 1];
        let (w1, w2) = (
            Weights::new([&g1[0], &g1[1], &g1[2]], 1),
            Weights::new([&g2[0], &g2[1], &g2[2]], 2),
        );
        assert_eq!(
            bottleneck_chain_int8(
                &[0; 3 * 256],
                [&w1.view(), &w2.view()],
                &mut out,
                &mut s,
                &ok
            ),
            Err(KernelError::Scratch {
                needed: scratch,
                found: scratch - 1
            })
        );
    }
}
