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

use crate::error::{check_len, check_scratch, KernelError};

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
    let span = p.link_rows();
    let (c_link, w_link) = (e2.c_in(), e2.in_hw()[1]);
    let [oh, ow] = d2.out_hw();
    let c_mid = d2.c_in();
    let (first_scratch, rest) = scratch[..needed].split_at_mut(bottleneck_int8_scratch_len(first));
    let (link, rest) = rest.split_at_mut(c_link * span * w_link);
    let (expanded, dw_row) = rest.split_at_mut(span * w_link);
    let [ay, ax] = d2.axes();
    let in_len = e1.input_len() / e1.n();
    let out_len = p2.output_len() / p2.n();
    for (x_b, out_b) in x.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)) {
        let mut rows = BlockRows::new(&mut *first_scratch, first);
        let mut next_row = 0;
        for oy in 0..oh {
            if let Some(last) = ay.valid_taps(oy).last() {
                let last_row = ay.input_index(oy, last);
                while next_row <= last_row {
                    rows.output_row(
                        x_b,
                        next_row,
                        weights[0],
                        first,
                        link,
                        span,
                        next_row % span,
                    );
                    next_row += 1;
                }
            }
            for c in 0..c_mid {
                let w_c = &weights[1].w_expand[c * c_link..][..c_link];
                for ky in ay.valid_taps(oy) {
                    let slot = ay.input_index(oy, ky) % span;
                    let row = &mut expanded[slot * w_link..][..w_link];
                    for (r, y) in row.chunks_mut(RUN).enumerate() {
                        let xr = &link[slot * w_link + r * RUN..];
                        let b = weights[1].b_expand;
                        pointwise_run(xr, span * w_link, w_c, y, b, c, &second.expand);
                    }
                }
                let y = &mut dw_row[c * ow..][..ow];
                depthwise_channel(expanded, span, oy, [&ay, &ax], y, c, weights[1], second);
            }
            project_row(dw_row, out_b, oh, oy, weights[1], second);
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

    /// One case: the chained pair against the two blocks in turn. `channels` are the first
    /// block's input, expanded and output channels then the second's expanded and output ones.
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
    ) -> Result<(), TestCaseError> {
        let [c_in, c_mid1, c_link, c_mid2, c_out] = channels;
        let Some(g1) = geometries(n, [c_in, c_mid1, c_link], hw, first, dw1) else {
            return Ok(());
        };
        let Some(g2) = geometries(n, [c_link, c_mid2, c_out], g1[2].out_hw(), PW, dw2) else {
            return Ok(());
        };
        // Zero points: input, first block's two intermediates, the link, the second's two, out.
        let zs = fill(seed ^ 0x55, 7);
        let relu6 = |z: i8| ActRange {
            min: z.min(100),
            max: 100,
        };
        let tables = [
            Tables::new(c_mid1, 0.004, rounding, seed ^ 1, seed % 2 == 0),
            Tables::new(c_mid1, 0.02, rounding, seed ^ 2, seed % 3 == 0),
            Tables::new(c_link, 0.01, rounding, seed ^ 3, false),
            Tables::new(c_mid2, 0.005, rounding, seed ^ 4, seed % 2 == 1),
            Tables::new(c_mid2, 0.03, rounding, seed ^ 5, false),
            Tables::new(c_out, 0.02, rounding, seed ^ 6, false),
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
        prop_assert_eq!(y, expected);
        Ok(())
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
    }

    fn k3(s: usize) -> Window2d {
        Window2d {
            kernel: [3, 3],
            strides: [s, s],
            pads: [1; 4],
            dilations: [1, 1],
        }
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
