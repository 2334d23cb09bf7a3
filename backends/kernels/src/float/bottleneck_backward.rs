//! The backward pass of an inverted bottleneck (pointwise expansion → depthwise → pointwise
//! projection, `i8` weights) streamed one expanded channel at a time: the `f32` gradient of
//! the expanded tensor never exists whole, only two planes of it.
//!
//! It replaces this sequence of unfused kernels (batch 1), where `dy` is the gradient at the
//! projection's output and `h` the gradient of the expanded tensor:
//!
//! 1. `h = conv2d_backward_input_int8(dy, w_project)`;
//! 2. `h = apply_mask(h, mask_depthwise)`; optionally `db_dw = conv2d_backward_bias(h)`;
//! 3. `h = conv2d_backward_input_int8(h, w_depthwise)` (in place or not);
//! 4. `h = apply_mask(h, mask_expand)`; optionally `db_pw = conv2d_backward_bias(h)`;
//! 5. optionally `dx = conv2d_backward_input_int8(h, w_expand)`;
//! 6. optionally `conv2d_weight_sgd_i8(dequantize(x), h)` of `w_expand`.
//!
//! The expansion weight may be split ([`ExpandWeight::Split`], see [`crate::split`]): its
//! trained slice of the first `kept` input channels is updated (step 6 on the slice, `x` the
//! saved slice of `kept` channels) and `dx` reads the slice and the frozen remainder, as
//! `conv2d_backward_input_int8_split` does (bit-identical with the joined weight).
//!
//! Every step is separable over the expanded channel `o`: plane `o` of step 1 is
//! `Σ_j w_project[j][o] · dy[j]`, steps 2–4 and the bias sums act on plane `o` alone, row `o`
//! of the expansion's weight gradient reads plane `o` only, and `dx` accumulates plane `o`'s
//! contribution over `o` ascending — the order the unfused transposed convolution adds its
//! terms in. Each element is the same sum of the same products in the same order as the
//! unfused kernels compute it, so the results are bit-identical (tested below): `dx`, the
//! bias gradients, the updated weight and momentum. `dx` uses row `o` of the expansion weight
//! before row `o` is updated, as the unfused sequence computes `dx` before the update.

use crate::error::{check_len, KernelError};
use crate::float::conv::{backward_input_with, int8_weight};
use crate::float::mask::mask_words;
use crate::geometry::Conv2dGeometry;
use crate::int8::PerAxis;
use crate::sgd::{check_momentum, update_int, ChannelQuant, SgdParams};

/// An `i8` convolution weight with its per-channel quantization and the forward geometry.
#[derive(Clone, Copy, Debug)]
pub struct Int8Conv<'a> {
    /// Forward geometry.
    pub geometry: &'a Conv2dGeometry,
    /// The weight.
    pub weight: &'a [i8],
    /// Its quantization (`f32(q − z) · s`, as `dequantize`).
    pub quant: PerAxis<'a>,
}

/// The SGD / QAS update of the expansion's `i8` weight, fused (its gradient is never stored).
#[derive(Debug)]
pub struct ExpandUpdate<'a> {
    /// The expansion's input `x`, as saved (`i8`).
    pub x: &'a [i8],
    /// Its quantization (`dequantize` of it is the `f32` input of the weight gradient).
    pub x_quant: PerAxis<'a>,
    /// The parameter, updated in place (also the weight `dx` reads, row by row before its
    /// update).
    pub weight: &'a mut [i8],
    /// The parameter's quantization for `dx` (`f32(q − z) · s`).
    pub weight_quant: PerAxis<'a>,
    /// Momentum state, if the rule has momentum.
    pub momentum: Option<&'a mut [f32]>,
    /// The parameter's quantization for the update rule.
    pub channels: ChannelQuant<'a>,
    /// The update rule.
    pub params: SgdParams,
}

/// The expansion's weight: frozen (read only by `dx`), trained (updated), split (its trained
/// slice updated), or not needed.
#[derive(Debug)]
pub enum ExpandWeight<'a> {
    /// Neither `dx` nor an update needs it.
    Unused,
    /// Frozen: read by `dx` only.
    Frozen(Int8Conv<'a>),
    /// Trained: updated row by row (and read by `dx` first).
    Trained(ExpandUpdate<'a>),
    /// Split along its input channels: the trained slice `[c_mid, kept]` (`update.weight`,
    /// updated row by row from `update.x`, the saved input's first `kept` channels) and the
    /// frozen remainder `[c_mid, c_in − kept]`. `dx` reads both (each row of the slice before
    /// its update); `update.weight_quant` is the whole weight's quantization, per tensor or
    /// per output channel.
    Split {
        /// The trained slice's update.
        update: ExpandUpdate<'a>,
        /// The frozen remainder.
        frozen: &'a [i8],
        /// Input channels in the trained slice.
        kept: usize,
    },
}

/// The results of [`bottleneck_backward`] besides the updated weight, each optional.
#[derive(Debug, Default)]
pub struct BottleneckGrads<'a> {
    /// `dx`, the gradient at the expansion's input (`[1, c_in, h, w]`).
    pub dx: Option<&'a mut [f32]>,
    /// The depthwise bias gradient (`[c_mid]`).
    pub depthwise_bias: Option<&'a mut [f32]>,
    /// The expansion's bias gradient (`[c_mid]`).
    pub expand_bias: Option<&'a mut [f32]>,
}

/// Elements of the `f32` scratch of [`bottleneck_backward`]: one plane of the depthwise output
/// and one of its input, then `c_in + 2` more that the C runtime's version of the kernel uses
/// for the row of the expansion's weight gradient it hands to its fused update (this kernel
/// updates element by element and leaves them alone).
pub fn bottleneck_backward_scratch_len(
    depthwise: &Conv2dGeometry,
    expand: &Conv2dGeometry,
) -> usize {
    depthwise.out_plane() + depthwise.in_plane() + expand.c_in() + 2
}

/// The streamed backward pass of an inverted bottleneck (see the module documentation).
///
/// `dy` is the gradient at the projection's output; `masks` are the packed masks of the
/// depthwise output and of the expansion's output (the depthwise input); `expand` is the
/// expansion's geometry. The expansion and projection must be pointwise, the depthwise a
/// depthwise convolution between them, all at batch 1.
#[allow(clippy::too_many_arguments)]
pub fn bottleneck_backward(
    dy: &[f32],
    project: Int8Conv<'_>,
    depthwise: Int8Conv<'_>,
    masks: [&[u32]; 2],
    expand: &Conv2dGeometry,
    mut weight: ExpandWeight<'_>,
    grads: BottleneckGrads<'_>,
    scratch: &mut [f32],
) -> Result<(), KernelError> {
    let (gp, gd) = (project.geometry, depthwise.geometry);
    check_chain(expand, gd, gp)?;
    let mid = gd.c_in();
    let (plane_out, plane_in) = (gd.out_plane(), gd.in_plane());
    check_len("projection grad_output", gp.output_len(), dy.len())?;
    check_len("projection weight", gp.weight_len(), project.weight.len())?;
    check_len("depthwise weight", gd.weight_len(), depthwise.weight.len())?;
    check_len(
        "depthwise mask",
        mask_words(gd.output_len()),
        masks[0].len(),
    )?;
    check_len("expansion mask", mask_words(gd.input_len()), masks[1].len())?;
    let needed = bottleneck_backward_scratch_len(gd, expand);
    if scratch.len() < needed {
        return Err(KernelError::Scratch {
            needed,
            found: scratch.len(),
        });
    }
    match &weight {
        ExpandWeight::Unused => {}
        ExpandWeight::Frozen(w) => {
            check_len("expansion weight", expand.weight_len(), w.weight.len())?;
        }
        ExpandWeight::Trained(u) => {
            check_len("expansion weight", expand.weight_len(), u.weight.len())?;
            check_len("expansion input", expand.input_len(), u.x.len())?;
            check_momentum(u.weight.len(), &u.momentum, &u.params)?;
        }
        ExpandWeight::Split {
            update: u,
            frozen,
            kept,
        } => {
            let (c_in, kept) = (expand.c_in(), *kept);
            if kept > c_in {
                return Err(KernelError::Param(
                    "a split expansion weight keeps more input channels than the expansion has",
                ));
            }
            let scales = u.weight_quant.scales.len();
            if scales != 1 && scales != mid {
                return Err(KernelError::Param(
                    "a split weight is quantized per tensor or per output channel",
                ));
            }
            check_len(
                "expansion weight (trained part)",
                mid * kept,
                u.weight.len(),
            )?;
            check_len(
                "expansion weight (frozen part)",
                mid * (c_in - kept),
                frozen.len(),
            )?;
            check_len("expansion input (trained part)", kept * plane_in, u.x.len())?;
            check_momentum(u.weight.len(), &u.momentum, &u.params)?;
        }
    }
    let BottleneckGrads {
        mut dx,
        mut depthwise_bias,
        mut expand_bias,
    } = grads;
    if let Some(dx) = dx.as_deref_mut() {
        if matches!(weight, ExpandWeight::Unused) {
            return Err(KernelError::Param("dx needs the expansion weight"));
        }
        check_len("expansion grad_input", expand.input_len(), dx.len())?;
        dx.fill(0.0);
    }
    for b in [&depthwise_bias, &expand_bias].into_iter().flatten() {
        check_len("bias gradient", mid, b.len())?;
    }

    let (h_out, rest) = scratch.split_at_mut(plane_out);
    let h_in = &mut rest[..plane_in];
    let one = Conv2dGeometry::new(1, 1, gd.in_hw(), 1, 1, gd.window())?;
    let taps = gd.window().kernel[0] * gd.window().kernel[1];
    let w_project = int8_weight(project.weight, &project.quant);
    let w_depthwise = int8_weight(depthwise.weight, &depthwise.quant);
    let (c_in, c_out) = (expand.c_in(), gp.c_out());
    let width = expand.out_hw()[1];
    for o in 0..mid {
        // 1: plane `o` of the projection's input gradient, `j` ascending from zero.
        h_out.fill(0.0);
        for j in 0..c_out {
            let wv = w_project(j * mid + o);
            for (h, &d) in h_out.iter_mut().zip(&dy[j * plane_out..][..plane_out]) {
                *h += wv * d;
            }
        }
        // 2: the depthwise mask and bias gradient.
        mask_plane(h_out, masks[0], o * plane_out);
        if let Some(db) = depthwise_bias.as_deref_mut() {
            db[o] = bias_sum(h_out);
        }
        // 3: the depthwise transposed convolution of the plane.
        backward_input_with(h_out, h_in, &one, |t| w_depthwise(o * taps + t))?;
        // 4: the expansion's mask and bias gradient.
        mask_plane(h_in, masks[1], o * plane_in);
        if let Some(db) = expand_bias.as_deref_mut() {
            db[o] = bias_sum(h_in);
        }
        // 5, 6: `dx` from row `o` of the weight as it is, then row `o`'s update.
        match &mut weight {
            ExpandWeight::Unused => {}
            ExpandWeight::Frozen(w) => {
                if let Some(dx) = dx.as_deref_mut() {
                    let wv = int8_weight(w.weight, &w.quant);
                    add_row(dx, h_in, o, c_in, &wv);
                }
            }
            ExpandWeight::Trained(u) => {
                if let Some(dx) = dx.as_deref_mut() {
                    let wv = int8_weight(u.weight, &u.weight_quant);
                    add_row(dx, h_in, o, c_in, &wv);
                }
                update_row(u, h_in, o, c_in, width)?;
            }
            ExpandWeight::Split {
                update: u,
                frozen,
                kept,
            } => {
                if let Some(dx) = dx.as_deref_mut() {
                    let wv = split_weight(u.weight, frozen, *kept, c_in, &u.weight_quant);
                    add_row(dx, h_in, o, c_in, &wv);
                }
                update_row(u, h_in, o, *kept, width)?;
            }
        }
    }
    Ok(())
}

/// Checks that `e → d → p` is a pointwise expansion, a depthwise convolution and a pointwise
/// projection chained at batch 1.
fn check_chain(
    e: &Conv2dGeometry,
    d: &Conv2dGeometry,
    p: &Conv2dGeometry,
) -> Result<(), KernelError> {
    let chained = e.c_out() == d.c_in()
        && e.out_hw() == d.in_hw()
        && d.c_out() == p.c_in()
        && d.out_hw() == p.in_hw();
    if !(e.n() == 1 && d.n() == 1 && p.n() == 1) {
        return Err(KernelError::Geometry(
            "a streamed bottleneck backward needs batch 1",
        ));
    }
    if !(e.is_pointwise() && d.is_depthwise() && d.c_in() == d.c_out() && p.is_pointwise()) {
        return Err(KernelError::Geometry(
            "a streamed bottleneck backward needs pointwise → depthwise → pointwise",
        ));
    }
    if !chained {
        return Err(KernelError::Geometry(
            "the bottleneck's convolutions do not chain",
        ));
    }
    Ok(())
}

/// Zeroes the elements of `plane` whose bit (`base + i`) of `mask` is clear (`apply_mask`).
fn mask_plane(plane: &mut [f32], mask: &[u32], base: usize) {
    for (i, v) in plane.iter_mut().enumerate() {
        let bit = base + i;
        if mask[bit / 32] >> (bit % 32) & 1 == 0 {
            *v = 0.0;
        }
    }
}

/// The bias gradient of one plane as `conv2d_backward_bias` computes it at batch 1: zero plus
/// the plane's sum.
fn bias_sum(plane: &[f32]) -> f32 {
    let mut acc = 0.0_f32;
    acc += plane.iter().copied().sum::<f32>();
    acc
}

/// `dx[ic] += w[o][ic] · h` for every input channel `ic` (the expansion's transposed
/// convolution, term `o`).
fn add_row(dx: &mut [f32], h: &[f32], o: usize, c_in: usize, w: &impl Fn(usize) -> f32) {
    let plane = h.len();
    for ic in 0..c_in {
        let wv = w(o * c_in + ic);
        for (d, &hv) in dx[ic * plane..][..plane].iter_mut().zip(h) {
            *d += wv * hv;
        }
    }
}

/// Element `i` (`o · c_in + ic`) of a weight split after `kept` input channels, at its real
/// value `f32(q − z) · s` with the whole weight's quantization `q` (the value
/// `conv2d_backward_input_int8_split` reads: the same scale and zero point of row `o`).
fn split_weight<'a>(
    trained: &'a [i8],
    frozen: &'a [i8],
    kept: usize,
    c_in: usize,
    q: &'a PerAxis<'_>,
) -> impl Fn(usize) -> f32 + 'a {
    move |i| {
        let (o, ic) = (i / c_in, i % c_in);
        let v = if ic < kept {
            trained[o * kept + ic]
        } else {
            frozen[o * (c_in - kept) + ic - kept]
        };
        let (s, z) = q.of(i);
        f32::from(i16::from(v) - i16::from(z)) * s
    }
}

/// Row `o` of the expansion's weight gradient over its `c_in` (trained) input channels
/// (`Σ_rows Σ_cols h · x`, rows `width` wide, row sums added to zero in row order, as the
/// fused weight-gradient kernel sums a 1×1 tap) and its update.
fn update_row(
    u: &mut ExpandUpdate<'_>,
    h: &[f32],
    o: usize,
    c_in: usize,
    width: usize,
) -> Result<(), KernelError> {
    let plane = h.len();
    let x = int8_weight(u.x, &u.x_quant);
    for ic in 0..c_in {
        let mut g = 0.0_f32;
        if width > 0 {
            for (r, h_row) in h.chunks_exact(width).enumerate() {
                let base = ic * plane + r * width;
                let mut acc = 0.0_f32;
                for (k, &hv) in h_row.iter().enumerate() {
                    acc += hv * x(base + k);
                }
                g += acc;
            }
        }
        let i = o * c_in + ic;
        let v = update_int(
            i64::from(u.weight[i]),
            g,
            i,
            &mut u.momentum,
            &u.params,
            &u.channels,
            (-128.0, 127.0),
        )
        .ok_or(KernelError::NanUpdate { index: i })?;
        u.weight[i] = v as i8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::float::{apply_mask, conv2d_backward_bias, conv2d_backward_input_int8};
    use crate::geometry::Window2d;
    use crate::int8::dequantize;
    use crate::sgd::UpdateRounding;
    use crate::split::{conv2d_backward_input_int8_split, SplitWeight};
    use crate::update::conv2d_weight_sgd_i8;

    /// A pseudo-random stream.
    struct Rng(u32);

    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            self.0 >> 8
        }
        fn unit(&mut self) -> f32 {
            self.next() as f32 / 16_777_216.0 - 0.5
        }
        fn i8s(&mut self, n: usize) -> Vec<i8> {
            (0..n).map(|_| self.next() as u8 as i8).collect()
        }
        fn bits(&mut self, n: usize) -> Vec<u32> {
            // Mostly set bits, some clear.
            (0..mask_words(n))
                .map(|_| self.next() | self.next() << 8)
                .collect()
        }
        fn scales(&mut self, n: usize) -> Vec<f32> {
            (0..n)
                .map(|_| (self.next() % 1000 + 1) as f32 / 7919.0)
                .collect()
        }
    }

    /// One random bottleneck and the options of the case.
    #[derive(Clone, Copy, Debug)]
    struct Case {
        c_in: usize,
        mid: usize,
        c_out: usize,
        hw: [usize; 2],
        k: usize,
        stride: usize,
        dx: bool,
        dw_bias: bool,
        pw_bias: bool,
        update: bool,
        momentum: bool,
        /// A split expansion weight keeping this many input channels (with the update).
        kept: Option<usize>,
        seed: u32,
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Runs the unfused sequence and the streamed kernel; asserts they agree bit for bit.
    fn check(c: Case) -> Result<(), TestCaseError> {
        let pw = Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        };
        let pad = c.k / 2;
        let dww = Window2d {
            kernel: [c.k, c.k],
            strides: [c.stride, c.stride],
            pads: [pad; 4],
            dilations: [1, 1],
        };
        let ge = Conv2dGeometry::new(1, c.c_in, c.hw, c.mid, 1, pw).unwrap();
        let Ok(gd) = Conv2dGeometry::new(1, c.mid, c.hw, c.mid, c.mid, dww) else {
            return Ok(());
        };
        let gp = Conv2dGeometry::new(1, c.mid, gd.out_hw(), c.c_out, 1, pw).unwrap();
        let mut r = Rng(c.seed | 1);
        let dy: Vec<f32> = (0..gp.output_len()).map(|_| r.unit()).collect();
        let (w_p, w_d, w_e) = (
            r.i8s(gp.weight_len()),
            r.i8s(gd.weight_len()),
            r.i8s(ge.weight_len()),
        );
        let (s_p, s_d, s_e) = (r.scales(c.c_out), r.scales(c.mid), r.scales(c.mid));
        let (z_p, z_d, z_e) = (r.i8s(c.c_out), r.i8s(c.mid), r.i8s(c.mid));
        let q_p = PerAxis::new(&s_p, &z_p, c.mid).unwrap();
        let q_d = PerAxis::new(&s_d, &z_d, gd.weight_len() / c.mid).unwrap();
        let q_e = PerAxis::new(&s_e, &z_e, c.c_in).unwrap();
        let (m_d, m_e) = (r.bits(gd.output_len()), r.bits(gd.input_len()));
        let x = r.i8s(ge.input_len());
        let (xs, xz) = ([0.0625_f32 + r.unit().abs() / 8.0], [r.next() as u8 as i8]);
        let q_x = PerAxis::new(&xs, &xz, ge.input_len()).unwrap();
        let zp_e: Vec<i32> = z_e.iter().map(|&z| i32::from(z)).collect();
        let cq = ChannelQuant::new(&s_e, &zp_e, c.c_in).unwrap();
        // The split: the trained slice's geometry, update and parts.
        let kept = c.kept.map(|k| k.min(c.c_in));
        let update = c.update || kept.is_some();
        let k_in = kept.unwrap_or(c.c_in);
        let gu = Conv2dGeometry::new(1, k_in, c.hw, c.mid, 1, pw).unwrap();
        let cq_u = ChannelQuant::new(&s_e, &zp_e, k_in).unwrap();
        let (w_t, w_f): (Vec<i8>, Vec<i8>) = {
            let (mut t, mut f) = (Vec::new(), Vec::new());
            for row in w_e.chunks(c.c_in) {
                t.extend_from_slice(&row[..k_in]);
                f.extend_from_slice(&row[k_in..]);
            }
            (t, f)
        };
        let params = SgdParams {
            eta: 0.37,
            momentum: if c.momentum { 0.9 } else { 0.0 },
            weight_decay: if c.momentum { 0.01 } else { 0.0 },
            qas: c.seed % 2 == 0,
            rounding: if c.seed % 3 == 0 {
                UpdateRounding::Stochastic { seed: 5, step: 3 }
            } else {
                UpdateRounding::HalfEven
            },
        };
        let m0: Vec<f32> = (0..gu.weight_len()).map(|_| r.unit()).collect();

        // The unfused sequence.
        let mut h = vec![0.0; gp.input_len()];
        conv2d_backward_input_int8(&dy, &w_p, &q_p, &mut h, &gp).unwrap();
        let mut t = h.clone();
        apply_mask(&t, &m_d, &mut h).unwrap();
        let mut db_d = vec![0.0; c.mid];
        conv2d_backward_bias(&h, &mut db_d, &gd).unwrap();
        t = vec![0.0; gd.input_len()];
        conv2d_backward_input_int8(&h, &w_d, &q_d, &mut t, &gd).unwrap();
        let mut h = vec![0.0; gd.input_len()];
        apply_mask(&t, &m_e, &mut h).unwrap();
        let mut db_e = vec![0.0; c.mid];
        conv2d_backward_bias(&h, &mut db_e, &ge).unwrap();
        let mut dx = vec![0.0; ge.input_len()];
        if kept.is_some() {
            let sw = SplitWeight {
                trained: &w_t,
                frozen: &w_f,
                kept: k_in,
            };
            conv2d_backward_input_int8_split(&h, &sw, &q_e, &mut dx, &ge).unwrap();
        } else {
            conv2d_backward_input_int8(&h, &w_e, &q_e, &mut dx, &ge).unwrap();
        }
        // The update reads the saved input's first `k_in` channels.
        let x_u = &x[..gu.input_len()];
        let mut xf = vec![0.0; x_u.len()];
        dequantize(x_u, &mut xf, &q_x).unwrap();
        let (mut w_ref, mut m_ref) = (w_t.clone(), m0.clone());
        if update {
            let mut taps = [0.0];
            conv2d_weight_sgd_i8(
                &xf,
                &h,
                &gu,
                None,
                &mut w_ref,
                c.momentum.then_some(&mut m_ref[..]),
                &cq_u,
                &params,
                &mut taps,
            )
            .unwrap();
        }

        // The streamed kernel.
        let (mut w_new, mut m_new) = (w_t.clone(), m0.clone());
        let mut dx_new = vec![9.0; ge.input_len()];
        let (mut db_d_new, mut db_e_new) = (vec![9.0; c.mid], vec![9.0; c.mid]);
        let weight = if kept.is_some() {
            ExpandWeight::Split {
                update: ExpandUpdate {
                    x: x_u,
                    x_quant: q_x,
                    weight: &mut w_new,
                    weight_quant: q_e,
                    momentum: c.momentum.then_some(&mut m_new[..]),
                    channels: cq_u,
                    params,
                },
                frozen: &w_f,
                kept: k_in,
            }
        } else if c.update {
            ExpandWeight::Trained(ExpandUpdate {
                x: &x,
                x_quant: q_x,
                weight: &mut w_new,
                weight_quant: q_e,
                momentum: c.momentum.then_some(&mut m_new[..]),
                channels: cq,
                params,
            })
        } else if c.dx {
            ExpandWeight::Frozen(Int8Conv {
                geometry: &ge,
                weight: &w_e,
                quant: q_e,
            })
        } else {
            ExpandWeight::Unused
        };
        let grads = BottleneckGrads {
            dx: c.dx.then_some(&mut dx_new[..]),
            depthwise_bias: c.dw_bias.then_some(&mut db_d_new[..]),
            expand_bias: c.pw_bias.then_some(&mut db_e_new[..]),
        };
        let mut scratch = vec![7.0; bottleneck_backward_scratch_len(&gd, &ge)];
        bottleneck_backward(
            &dy,
            Int8Conv {
                geometry: &gp,
                weight: &w_p,
                quant: q_p,
            },
            Int8Conv {
                geometry: &gd,
                weight: &w_d,
                quant: q_d,
            },
            [&m_d, &m_e],
            &ge,
            weight,
            grads,
            &mut scratch,
        )
        .unwrap();
        if c.dx {
            prop_assert_eq!(bits(&dx_new), bits(&dx));
        }
        if c.dw_bias {
            prop_assert_eq!(bits(&db_d_new), bits(&db_d));
        }
        if c.pw_bias {
            prop_assert_eq!(bits(&db_e_new), bits(&db_e));
        }
        if update {
            prop_assert_eq!(&w_new, &w_ref);
            prop_assert_eq!(bits(&m_new), bits(&m_ref));
        } else {
            prop_assert_eq!(&w_new, &w_t);
        }
        Ok(())
    }

    proptest! {
        /// The streamed kernel equals the unfused sequence bit for bit: strided depthwise,
        /// 3×3 to 7×7 kernels, zero points, every optional result present or absent.
        #[test]
        fn streamed_matches_unfused(
            c_in in 1..6_usize, mid in 1..10_usize, c_out in 1..6_usize,
            h in 1..9_usize, w in 1..9_usize, k in prop_oneof![Just(1_usize), Just(3), Just(5), Just(7)],
            stride in 1..3_usize, dx in any::<bool>(), dw_bias in any::<bool>(), pw_bias in any::<bool>(),
            update in any::<bool>(), momentum in any::<bool>(), seed in any::<u32>(),
        ) {
            check(Case { c_in, mid, c_out, hw: [h, w], k, stride, dx, dw_bias, pw_bias, update, momentum, kept: None, seed })?;
        }

        /// With a split expansion weight (trained slice + frozen remainder) the streamed
        /// kernel equals `dx` through `conv2d_backward_input_int8_split` and the slice's update
        /// through `conv2d_weight_sgd_i8`, bit for bit; `kept` from none to all channels.
        #[test]
        fn streamed_split_matches_unfused(
            c_in in 1..7_usize, mid in 1..10_usize, c_out in 1..6_usize,
            h in 1..8_usize, w in 1..8_usize, k in prop_oneof![Just(1_usize), Just(3), Just(5)],
            stride in 1..3_usize, dx in any::<bool>(), dw_bias in any::<bool>(), pw_bias in any::<bool>(),
            momentum in any::<bool>(), kept in 0..7_usize, seed in any::<u32>(),
        ) {
            check(Case { c_in, mid, c_out, hw: [h, w], k, stride, dx, dw_bias, pw_bias, update: true, momentum, kept: Some(kept), seed })?;
        }
    }

    #[test]
    fn a_real_sized_block_matches() {
        // MbV2's block 12 (32 → 192 → 32 at 8×8), a stride-2 7×7 block, and MCUNet's block 13
        // shape with its expansion weight split after 24 of 96 input channels.
        for (c_in, mid, c_out, hw, k, stride, kept) in [
            (32, 192, 32, 8, 3, 1, None),
            (16, 48, 24, 12, 7, 2, None),
            (96, 288, 96, 5, 3, 1, Some(24)),
        ] {
            check(Case {
                c_in,
                mid,
                c_out,
                hw: [hw, hw],
                k,
                stride,
                dx: true,
                dw_bias: true,
                pw_bias: true,
                update: true,
                momentum: false,
                kept,
                seed: 12,
            })
            .unwrap();
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        let pw = Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        };
        let ge = Conv2dGeometry::new(1, 2, [2, 2], 4, 1, pw).unwrap();
        let gd = Conv2dGeometry::new(1, 4, [2, 2], 4, 4, pw).unwrap();
        let gp = Conv2dGeometry::new(1, 4, [2, 2], 2, 1, pw).unwrap();
        let scale = [1.0_f32];
        let q = PerAxis::new(&scale, &[], 1).unwrap();
        let conv = |g, w| Int8Conv {
            geometry: g,
            weight: w,
            quant: q,
        };
        let (wp, wd) = ([0_i8; 8], [0_i8; 4]);
        let mask = [u32::MAX];
        let run = |e: &Conv2dGeometry, scratch: &mut [f32], dx: Option<&mut [f32]>| {
            bottleneck_backward(
                &[0.0; 8],
                conv(&gp, &wp),
                conv(&gd, &wd),
                [&mask, &mask],
                e,
                ExpandWeight::Unused,
                BottleneckGrads {
                    dx,
                    ..BottleneckGrads::default()
                },
                scratch,
            )
        };
        assert_eq!(run(&ge, &mut [0.0; 12], None), Ok(()));
        assert_eq!(
            run(&ge, &mut [0.0; 11], None),
            Err(KernelError::Scratch {
                needed: 12,
                found: 11
            })
        );
        assert!(matches!(
            run(&ge, &mut [0.0; 12], Some(&mut [0.0; 8])),
            Err(KernelError::Param(_))
        ));
        let wide = Conv2dGeometry::new(1, 2, [2, 2], 6, 1, pw).unwrap();
        assert!(matches!(
            run(&wide, &mut [0.0; 12], None),
            Err(KernelError::Geometry(_))
        ));
        // A split weight: more kept channels than the expansion has, or a wrong part.
        let split = |kept: usize, trained: &mut [i8], frozen: &[i8]| {
            let zps = [0_i32];
            let u = ExpandUpdate {
                x: &[0; 8][..kept.min(2) * 4],
                x_quant: q,
                weight: trained,
                weight_quant: q,
                momentum: None,
                channels: ChannelQuant::new(&scale, &zps, kept.max(1)).unwrap(),
                params: SgdParams {
                    eta: 0.1,
                    momentum: 0.0,
                    weight_decay: 0.0,
                    qas: false,
                    rounding: crate::sgd::UpdateRounding::HalfEven,
                },
            };
            bottleneck_backward(
                &[0.0; 8],
                conv(&gp, &wp),
                conv(&gd, &wd),
                [&mask, &mask],
                &ge,
                ExpandWeight::Split {
                    update: u,
                    frozen,
                    kept,
                },
                BottleneckGrads::default(),
                &mut [0.0; 12],
            )
        };
        assert_eq!(split(1, &mut [0; 4], &[0; 4]), Ok(()));
        assert!(matches!(
            split(3, &mut [0; 12], &[]),
            Err(KernelError::Param(_))
        ));
        assert_eq!(
            split(1, &mut [0; 4], &[0; 3]),
            Err(KernelError::Length {
                what: "expansion weight (frozen part)",
                expected: 4,
                found: 3
            })
        );
    }
}
