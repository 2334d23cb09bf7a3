//! A convolution's weight gradient fused with the SGD / QAS update of the weight: no gradient
//! buffer of the layer ever exists.
//!
//! The kernels walk the (output channel, input channel) pairs of
//! [`conv2d_backward_weight`](crate::float::conv2d_backward_weight) in weight order; for each
//! pair they sum the `kh·kw` tap gradients over the batch into a scratch of `kh·kw` `f32`
//! (exactly the sums, in exactly the order, of the unfused kernel) and apply the update rule of
//! [`crate::sgd`] to those elements at once. The result is bit-identical with
//! `conv2d_backward_weight` followed by `sgd_*` (or, for a gradient covering a channel slice of
//! the parameter, `sgd_*_slice`): parameter, momentum, and the element a NaN update is reported
//! at. Gradient accumulation over several steps needs the whole gradient and is not fused.

use crate::error::{check_len, KernelError};
use crate::float::conv::weight_taps;
use crate::geometry::Conv2dGeometry;
use crate::sgd::{check_momentum, update_f32, update_int, ChannelQuant, SgdParams, SliceView};

/// The scratch length of the fused kernels: one `f32` per tap (`kh·kw`).
pub fn conv2d_weight_sgd_scratch_len(g: &Conv2dGeometry) -> usize {
    g.window().kernel[0] * g.window().kernel[1]
}

/// Computes the weight gradient of `g` pair by pair into `scratch` and calls
/// `f(param_index, gradient)` for every gradient element in increasing order.
fn for_each_weight_grad(
    x: &[f32],
    dy: &[f32],
    g: &Conv2dGeometry,
    view: Option<&SliceView>,
    param_len: usize,
    scratch: &mut [f32],
    mut f: impl FnMut(usize, f32) -> Result<(), KernelError>,
) -> Result<(), KernelError> {
    check_len("conv2d input", g.input_len(), x.len())?;
    check_len("conv2d grad_output", g.output_len(), dy.len())?;
    let taps = conv2d_weight_sgd_scratch_len(g);
    check_len("weight-update scratch", taps, scratch.len())?;
    match view {
        Some(v) => v.check(param_len, g.weight_len())?,
        None => check_len("parameter", g.weight_len(), param_len)?,
    }
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    let empty = in_plane == 0 || out_plane == 0 || g.input_len() == 0 || g.output_len() == 0;
    let (cin_g, cout_g) = (g.c_in_per_group(), g.c_out_per_group());
    for grp in 0..g.groups() {
        for oc in grp * cout_g..(grp + 1) * cout_g {
            for icg in 0..cin_g {
                scratch.fill(0.0);
                if !empty {
                    let ic = grp * cin_g + icg;
                    for b in 0..g.n() {
                        let xp = &x[(b * g.c_in() + ic) * in_plane..][..in_plane];
                        let dyp = &dy[(b * g.c_out() + oc) * out_plane..][..out_plane];
                        weight_taps(xp, dyp, scratch, g);
                    }
                }
                let base = (oc * cin_g + icg) * taps;
                for (t, &gv) in scratch.iter().enumerate() {
                    let j = base + t;
                    f(view.map_or(j, |v| v.param_index(j)), gv)?;
                }
            }
        }
    }
    Ok(())
}

/// `conv2d_backward_weight(x, dy)` then [`sgd_f32`](crate::sgd::sgd_f32) of `w` (or
/// [`sgd_f32_slice`](crate::sgd::sgd_f32_slice) with `view`: the gradient covers that channel
/// slice of `w`), without the gradient buffer. `scratch` holds
/// [`conv2d_weight_sgd_scratch_len`] elements.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_sgd_f32(
    x: &[f32],
    dy: &[f32],
    g: &Conv2dGeometry,
    view: Option<&SliceView>,
    w: &mut [f32],
    mut m: Option<&mut [f32]>,
    p: &SgdParams,
    scratch: &mut [f32],
) -> Result<(), KernelError> {
    check_momentum(w.len(), &m, p)?;
    let len = w.len();
    for_each_weight_grad(x, dy, g, view, len, scratch, |i, gi| {
        update_f32(w, i, gi, &mut m, p);
        Ok(())
    })
}

/// `conv2d_backward_weight(x, dy)` then [`sgd_i8`](crate::sgd::sgd_i8) of `q` (or
/// [`sgd_i8_slice`](crate::sgd::sgd_i8_slice) with `view`), without the gradient buffer. On a
/// NaN update returns [`KernelError::NanUpdate`] with the parameter index; the elements before
/// it have been updated, as with the unfused kernels.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_sgd_i8(
    x: &[f32],
    dy: &[f32],
    g: &Conv2dGeometry,
    view: Option<&SliceView>,
    q: &mut [i8],
    mut m: Option<&mut [f32]>,
    cq: &ChannelQuant<'_>,
    p: &SgdParams,
    scratch: &mut [f32],
) -> Result<(), KernelError> {
    check_momentum(q.len(), &m, p)?;
    let len = q.len();
    for_each_weight_grad(x, dy, g, view, len, scratch, |i, gi| {
        let v = update_int(i64::from(q[i]), gi, i, &mut m, p, cq, (-128.0, 127.0))
            .ok_or(KernelError::NanUpdate { index: i })?;
        q[i] = v as i8;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::float::conv2d_backward_weight;
    use crate::geometry::Window2d;
    use crate::sgd::{sgd_f32, sgd_f32_slice, sgd_i8, sgd_i8_slice, UpdateRounding};
    use proptest::prelude::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    proptest! {
        /// The fused kernels equal `conv2d_backward_weight` then `sgd_*` / `sgd_*_slice`, bit
        /// for bit: parameter and momentum, for dense, grouped and sliced weights.
        #[test]
        fn fused_matches_unfused(
            batch in 1..3_usize, c_in_g in 1..4_usize, c_out_g in 1..4_usize, groups in 1..3_usize,
            hw in 1..6_usize, k in 1..4_usize, stride in 1..3_usize,
            sliced in any::<bool>(), extra in 0..3_usize, start in 0..3_usize,
            momentum in prop_oneof![Just(0.0_f32), 0.1_f32..0.95],
            wd in prop_oneof![Just(0.0_f32), 0.0001_f32..0.1],
            qas in any::<bool>(), stochastic in any::<bool>(), step in 0..6_i64, seed in any::<u32>(),
        ) {
            let window = Window2d { kernel: [k, k], strides: [stride, stride], pads: [1; 4], dilations: [1, 1] };
            // A sliced gradient: a dense convolution over `c_in_g` of the parameter's
            // `c_in_g + extra` input channels, starting at `start`.
            let groups = if sliced { 1 } else { groups };
            let Ok(g) = Conv2dGeometry::new(batch, c_in_g * groups, [hw, hw], c_out_g * groups, groups, window) else { return Ok(()) };
            let taps = k * k;
            let view = sliced.then(|| {
                let channels = c_in_g + extra;
                SliceView { outer: g.c_out(), channels, inner: taps, start: start.min(extra), count: c_in_g }
            });
            let n = view.map_or(g.weight_len(), |v| v.param_len());
            let mut s = seed | 1;
            let mut next = || { s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223); s >> 8 };
            let unit = |v: u32| v as f32 / 16_777_216.0 - 0.5;
            let x: Vec<f32> = (0..g.input_len()).map(|_| unit(next()) * 3.0).collect();
            let dy: Vec<f32> = (0..g.output_len()).map(|_| unit(next())).collect();
            let w: Vec<f32> = (0..n).map(|_| unit(next())).collect();
            let q: Vec<i8> = (0..n).map(|_| next() as u8 as i8).collect();
            let m0: Vec<f32> = (0..n).map(|_| unit(next())).collect();
            let channels = g.c_out();
            let scales: Vec<f32> = (0..channels).map(|_| (next() % 1000 + 1) as f32 / 4093.0).collect();
            let zps: Vec<i32> = (0..channels).map(|_| (next() % 9) as i32 - 4).collect();
            let cq = ChannelQuant::new(&scales, &zps, n / channels).unwrap();
            let p = SgdParams {
                eta: 0.37,
                momentum,
                weight_decay: wd,
                qas,
                rounding: if stochastic { UpdateRounding::Stochastic { seed: i64::from(seed), step } } else { UpdateRounding::HalfEven },
            };
            let use_m = momentum > 0.0;
            let mut grad = vec![0.0; g.weight_len()];
            conv2d_backward_weight(&x, &dy, &mut grad, &g).unwrap();
            let mut scratch = vec![7.0; taps];

            // f32
            let (mut w_ref, mut m_ref) = (w.clone(), m0.clone());
            match &view {
                Some(v) => sgd_f32_slice(&mut w_ref, &grad, use_m.then_some(&mut m_ref[..]), v, &p).unwrap(),
                None => sgd_f32(&mut w_ref, &grad, use_m.then_some(&mut m_ref[..]), &p).unwrap(),
            }
            let (mut w_new, mut m_new) = (w.clone(), m0.clone());
            conv2d_weight_sgd_f32(&x, &dy, &g, view.as_ref(), &mut w_new, use_m.then_some(&mut m_new[..]), &p, &mut scratch).unwrap();
            prop_assert_eq!(bits(&w_new), bits(&w_ref));
            prop_assert_eq!(bits(&m_new), bits(&m_ref));

            // i8
            let (mut q_ref, mut m_ref) = (q.clone(), m0.clone());
            match &view {
                Some(v) => sgd_i8_slice(&mut q_ref, &grad, use_m.then_some(&mut m_ref[..]), v, &cq, &p).unwrap(),
                None => sgd_i8(&mut q_ref, &grad, use_m.then_some(&mut m_ref[..]), &cq, &p).unwrap(),
            }
            let (mut q_new, mut m_new) = (q.clone(), m0.clone());
            conv2d_weight_sgd_i8(&x, &dy, &g, view.as_ref(), &mut q_new, use_m.then_some(&mut m_new[..]), &cq, &p, &mut scratch).unwrap();
            prop_assert_eq!(q_new, q_ref);
            prop_assert_eq!(bits(&m_new), bits(&m_ref));
        }

        /// `param_index` inverts `grad_index`.
        #[test]
        fn param_index_inverts_grad_index(outer in 1..4_usize, channels in 1..6_usize, inner in 1..4_usize, start in 0..6_usize, count in 0..6_usize) {
            let start = start.min(channels);
            let count = count.min(channels - start);
            let v = SliceView { outer, channels, inner, start, count };
            for j in 0..v.slice_len() {
                prop_assert_eq!(v.grad_index(v.param_index(j)), Some(j));
            }
        }
    }

    fn geometry() -> Conv2dGeometry {
        let window = Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        };
        Conv2dGeometry::new(1, 2, [1, 1], 2, 1, window).unwrap()
    }

    #[test]
    fn a_nan_update_names_the_first_element_like_the_unfused_kernel() {
        let g = geometry();
        let scales = [1.0_f32, 1.0];
        let zps = [0, 0];
        let cq = ChannelQuant::new(&scales, &zps, 2).unwrap();
        let p = SgdParams {
            eta: 1.0,
            momentum: 0.0,
            weight_decay: 0.0,
            qas: true,
            rounding: UpdateRounding::HalfEven,
        };
        // dy[1] is NaN: the gradients of output channel 1 (elements 2, 3) are NaN.
        let (x, dy) = ([1.0_f32, 2.0], [1.0_f32, f32::NAN]);
        let mut q = [10_i8; 4];
        let r = conv2d_weight_sgd_i8(&x, &dy, &g, None, &mut q, None, &cq, &p, &mut [0.0]);
        assert_eq!(r, Err(KernelError::NanUpdate { index: 2 }));
        assert_eq!(q, [9, 8, 10, 10]);
        let mut grad = [0.0; 4];
        conv2d_backward_weight(&x, &dy, &mut grad, &g).unwrap();
        let mut q_ref = [10_i8; 4];
        let r_ref = sgd_i8(&mut q_ref, &grad, None, &cq, &p);
        assert_eq!((r_ref, q_ref), (r, q));
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let g = geometry();
        let p = SgdParams {
            eta: 1.0,
            momentum: 0.0,
            weight_decay: 0.0,
            qas: false,
            rounding: UpdateRounding::HalfEven,
        };
        let mut w = [0.0_f32; 4];
        let (x, dy) = ([1.0_f32, 2.0], [1.0_f32, 1.0]);
        assert!(conv2d_weight_sgd_f32(&x, &dy, &g, None, &mut w, None, &p, &mut []).is_err());
        assert!(
            conv2d_weight_sgd_f32(&x, &dy, &g, None, &mut w[..3], None, &p, &mut [0.0]).is_err()
        );
        assert!(
            conv2d_weight_sgd_f32(&x[..1], &dy, &g, None, &mut w, None, &p, &mut [0.0]).is_err()
        );
        let mom = SgdParams { momentum: 0.9, ..p };
        assert!(conv2d_weight_sgd_f32(&x, &dy, &g, None, &mut w, None, &mom, &mut [0.0]).is_err());
        conv2d_weight_sgd_f32(&x, &dy, &g, None, &mut w, None, &p, &mut [0.0]).unwrap();
        assert_eq!(w, [-1.0, -2.0, -1.0, -2.0]);
    }
}
