//! The SGD / QAS parameter update, in place.
//!
//! All arithmetic is in `f32` except the final integer rounding, which is done in `f64` (exact
//! for every `i32` value). Let `g` be the gradient and `η` the learning rate (`lr · lr_scale`,
//! one `f32` product).
//!
//! - **Accumulation** ([`accumulate`]): `acc += g`; every `N`-th step (`(step + 1) mod N = 0`)
//!   the update runs with `g = acc / N` and `acc` is reset to zeros.
//! - **`f32` parameters** ([`sgd_f32`]): `g += wd · w`; with momentum `m = μ·m + g`, `g = m`;
//!   `w = w − η·g`.
//! - **Quantized `i8` / `i32` parameters** ([`sgd_i8`], [`sgd_i32`]) with scale `s` and zero point
//!   `z` of the element's channel: `g += wd · (s·(q − z))`; the integer-tensor gradient
//!   `g̃ = s·g`, or with QAS (quantization-aware scaling, `s·g·s⁻²`) `g̃ = g / s`; momentum on
//!   `g̃`; `v = q − η·g̃` rounded half to even, or stochastically `⌊v + u⌋` with `u` from
//!   [`stochastic_u`]; saturated to the integer range. A NaN update is an error.

use crate::error::{check_len, KernelError};
use crate::fmath::{floor_f64, round_ties_even_f64};

/// `splitmix64`: one step of the generator of the same name (Steele, Lea, Flood 2014).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The uniform `u ∈ [0, 1)` of stochastic rounding for element `index` at `step`: the top 24
/// bits of `splitmix64(splitmix64(splitmix64(seed) ^ step) ^ index)`, times `2⁻²⁴`.
pub fn stochastic_u(seed: i64, step: i64, index: u64) -> f64 {
    let h = splitmix64(splitmix64(splitmix64(seed as u64) ^ step as u64) ^ index);
    (h >> 40) as f64 / f64::from(1u32 << 24)
}

/// How the integer update is rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateRounding {
    /// To nearest, ties to even.
    HalfEven,
    /// `⌊v + u⌋` with `u = stochastic_u(seed, step, index)`.
    Stochastic {
        /// Per-parameter seed.
        seed: i64,
        /// Training step.
        step: i64,
    },
}

impl UpdateRounding {
    /// `v` rounded to an integer-valued `f64` (element `index`).
    #[inline]
    pub fn apply(self, v: f64, index: usize) -> f64 {
        match self {
            Self::HalfEven => round_ties_even_f64(v),
            Self::Stochastic { seed, step } => {
                floor_f64(v + stochastic_u(seed, step, index as u64))
            }
        }
    }
}

/// The per-channel quantization of an integer parameter: element `i` has channel
/// `(i / inner) % scales.len()`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelQuant<'a> {
    scales: &'a [f32],
    zero_points: &'a [i32],
    inner: usize,
}

impl<'a> ChannelQuant<'a> {
    /// Checks (scales finite and positive, one zero point per scale) and bundles the tables.
    pub fn new(
        scales: &'a [f32],
        zero_points: &'a [i32],
        inner: usize,
    ) -> Result<Self, KernelError> {
        if scales.is_empty() {
            return Err(KernelError::Param("a quantized parameter needs a scale"));
        }
        check_len("zero points", scales.len(), zero_points.len())?;
        if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(KernelError::Param(
                "cannot train a parameter whose scale is not finite and positive",
            ));
        }
        Ok(Self {
            scales,
            zero_points,
            inner,
        })
    }

    #[inline]
    fn of(&self, i: usize) -> (f32, i32) {
        let c = (i / self.inner.max(1)) % self.scales.len();
        (self.scales[c], self.zero_points[c])
    }
}

/// The constants of one update, computed on the host (per step for the learning rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdParams {
    /// `η = lr · lr_scale`.
    pub eta: f32,
    /// Momentum `μ` (0: none; then no momentum buffer is needed).
    pub momentum: f32,
    /// Weight decay (0: none).
    pub weight_decay: f32,
    /// Quantization-aware scaling of integer parameters.
    pub qas: bool,
    /// Rounding of integer parameters.
    pub rounding: UpdateRounding,
}

/// Gradient accumulation over `every` steps: adds `g` to `acc`; on the last step of a window
/// writes `acc / every` to `out`, resets `acc` and returns `true` (the update runs with `out`);
/// otherwise returns `false`.
pub fn accumulate(
    g: &[f32],
    acc: &mut [f32],
    out: &mut [f32],
    step: i64,
    every: u32,
) -> Result<bool, KernelError> {
    check_len("accumulator", g.len(), acc.len())?;
    check_len("accumulated gradient", g.len(), out.len())?;
    if every == 0 {
        return Err(KernelError::Param("accumulation over zero steps"));
    }
    for (a, &gi) in acc.iter_mut().zip(g) {
        *a += gi;
    }
    if (i128::from(step) + 1).rem_euclid(i128::from(every)) != 0 {
        return Ok(false);
    }
    let nf = every as f32;
    for (o, a) in out.iter_mut().zip(acc.iter_mut()) {
        *o = *a / nf;
        *a = 0.0;
    }
    Ok(true)
}

/// Checks the momentum buffer against the parameter.
pub(crate) fn check_momentum(
    len: usize,
    m: &Option<&mut [f32]>,
    p: &SgdParams,
) -> Result<(), KernelError> {
    match m {
        Some(m) => check_len("momentum", len, m.len()),
        None if p.momentum > 0.0 => Err(KernelError::Param("momentum > 0 needs a momentum buffer")),
        None => Ok(()),
    }
}

/// Updates an `f32` parameter `w` in place.
pub fn sgd_f32(
    w: &mut [f32],
    g: &[f32],
    mut m: Option<&mut [f32]>,
    p: &SgdParams,
) -> Result<(), KernelError> {
    check_len("gradient", w.len(), g.len())?;
    check_momentum(w.len(), &m, p)?;
    for (i, &gi) in g.iter().enumerate() {
        update_f32(w, i, gi, &mut m, p);
    }
    Ok(())
}

/// The `f32` rule for element `i` of `w` (lengths already checked).
#[inline]
pub(crate) fn update_f32(
    w: &mut [f32],
    i: usize,
    gi: f32,
    m: &mut Option<&mut [f32]>,
    p: &SgdParams,
) {
    let mut gi = gi;
    if p.weight_decay != 0.0 {
        gi += p.weight_decay * w[i];
    }
    if let Some(m) = m.as_deref_mut() {
        m[i] = p.momentum * m[i] + gi;
        gi = m[i];
    }
    w[i] -= p.eta * gi;
}

/// The integer rule for one element: the new value (in `[lo, hi]`), or `None` when NaN.
#[inline]
pub(crate) fn update_int(
    q: i64,
    gi: f32,
    i: usize,
    m: &mut Option<&mut [f32]>,
    p: &SgdParams,
    cq: &ChannelQuant<'_>,
    (lo, hi): (f64, f64),
) -> Option<i64> {
    let (s, z) = cq.of(i);
    let mut gi = gi;
    if p.weight_decay != 0.0 {
        gi += p.weight_decay * (s * (q - i64::from(z)) as f32);
    }
    let mut gt = if p.qas { gi / s } else { s * gi };
    if let Some(m) = m.as_deref_mut() {
        m[i] = p.momentum * m[i] + gt;
        gt = m[i];
    }
    let delta = p.eta * gt;
    let v = p.rounding.apply(q as f64 - f64::from(delta), i);
    if v.is_nan() {
        return None;
    }
    // Integer-valued and clamped, so the cast is exact.
    Some(v.clamp(lo, hi) as i64)
}

/// Updates an int8 parameter in place (saturating to `[−128, 127]`). On a NaN update returns
/// [`KernelError::NanUpdate`]; elements before it have been updated.
pub fn sgd_i8(
    q: &mut [i8],
    g: &[f32],
    mut m: Option<&mut [f32]>,
    cq: &ChannelQuant<'_>,
    p: &SgdParams,
) -> Result<(), KernelError> {
    check_len("gradient", q.len(), g.len())?;
    check_momentum(q.len(), &m, p)?;
    for (i, (qi, &gi)) in q.iter_mut().zip(g).enumerate() {
        let v = update_int(i64::from(*qi), gi, i, &mut m, p, cq, (-128.0, 127.0))
            .ok_or(KernelError::NanUpdate { index: i })?;
        *qi = v as i8;
    }
    Ok(())
}

/// Updates an int32 parameter (a bias) in place, saturating to the `i32` range.
pub fn sgd_i32(
    q: &mut [i32],
    g: &[f32],
    mut m: Option<&mut [f32]>,
    cq: &ChannelQuant<'_>,
    p: &SgdParams,
) -> Result<(), KernelError> {
    check_len("gradient", q.len(), g.len())?;
    check_momentum(q.len(), &m, p)?;
    let range = (f64::from(i32::MIN), f64::from(i32::MAX));
    for (i, (qi, &gi)) in q.iter_mut().zip(g).enumerate() {
        let v = update_int(i64::from(*qi), gi, i, &mut m, p, cq, range)
            .ok_or(KernelError::NanUpdate { index: i })?;
        *qi = v as i32;
    }
    Ok(())
}

/// A gradient covering the channels `start..start + count` of a parameter viewed as
/// `[outer, channels, inner]` (a sparse, channel-slice update): the gradient is laid out
/// `[outer, count, inner]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SliceView {
    /// Product of the dimensions before the sliced axis.
    pub outer: usize,
    /// Channels of the parameter along the sliced axis.
    pub channels: usize,
    /// Product of the dimensions after the sliced axis.
    pub inner: usize,
    /// First covered channel.
    pub start: usize,
    /// Covered channels.
    pub count: usize,
}

impl SliceView {
    /// Elements of the whole parameter.
    pub fn param_len(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    /// Elements of the slice gradient.
    pub fn slice_len(&self) -> usize {
        self.outer * self.count * self.inner
    }

    /// The slice gradient's index of parameter element `i` (`None` outside the slice).
    pub fn grad_index(&self, i: usize) -> Option<usize> {
        let inner = self.inner.max(1);
        let c = (i / inner) % self.channels.max(1);
        let o = i / inner / self.channels.max(1);
        let c = c.checked_sub(self.start).filter(|&c| c < self.count)?;
        Some((o * self.count + c) * self.inner + i % inner)
    }

    /// The parameter index of slice-gradient element `j` (the inverse of [`Self::grad_index`]).
    pub fn param_index(&self, j: usize) -> usize {
        let inner = self.inner.max(1);
        let per_outer = (self.count * inner).max(1);
        let (o, rem) = (j / per_outer, j % per_outer);
        (o * self.channels + self.start + rem / inner) * inner + rem % inner
    }

    /// Checks the slice against the parameter and the gradient lengths.
    pub(crate) fn check(&self, param: usize, grad: usize) -> Result<(), KernelError> {
        if self
            .start
            .checked_add(self.count)
            .is_none_or(|end| end > self.channels)
        {
            return Err(KernelError::Param("channel slice outside the parameter"));
        }
        check_len("parameter", self.param_len(), param)?;
        check_len("slice gradient", self.slice_len(), grad)
    }

    /// Calls `f(param_index, grad_index)` for every covered element in increasing order.
    fn try_for_each(
        &self,
        mut f: impl FnMut(usize, usize) -> Result<(), KernelError>,
    ) -> Result<(), KernelError> {
        let mut j = 0;
        for o in 0..self.outer {
            let base = (o * self.channels + self.start) * self.inner;
            for i in base..base + self.count * self.inner {
                f(i, j)?;
                j += 1;
            }
        }
        Ok(())
    }
}

/// [`accumulate`] for a slice gradient: `acc` is the parameter-sized accumulator, of which only
/// the covered elements change; on the last step of a window the covered means go to `out`
/// (slice-sized) and the covered accumulator elements are reset.
pub fn accumulate_slice(
    g: &[f32],
    acc: &mut [f32],
    out: &mut [f32],
    view: &SliceView,
    step: i64,
    every: u32,
) -> Result<bool, KernelError> {
    view.check(acc.len(), g.len())?;
    check_len("accumulated gradient", g.len(), out.len())?;
    if every == 0 {
        return Err(KernelError::Param("accumulation over zero steps"));
    }
    view.try_for_each(|i, j| {
        acc[i] += g[j];
        Ok(())
    })?;
    if (i128::from(step) + 1).rem_euclid(i128::from(every)) != 0 {
        return Ok(false);
    }
    let nf = every as f32;
    view.try_for_each(|i, j| {
        out[j] = acc[i] / nf;
        acc[i] = 0.0;
        Ok(())
    })?;
    Ok(true)
}

/// [`sgd_f32`] of the covered elements only (`m`, when given, is parameter-sized and indexed
/// like the parameter); the other elements and their momentum are untouched.
pub fn sgd_f32_slice(
    w: &mut [f32],
    g: &[f32],
    mut m: Option<&mut [f32]>,
    view: &SliceView,
    p: &SgdParams,
) -> Result<(), KernelError> {
    view.check(w.len(), g.len())?;
    check_momentum(w.len(), &m, p)?;
    view.try_for_each(|i, j| {
        update_f32(w, i, g[j], &mut m, p);
        Ok(())
    })
}

/// [`sgd_i8`] of the covered elements only: element `i` of the parameter keeps its channel
/// quantization, stochastic-rounding index and momentum element `i`.
pub fn sgd_i8_slice(
    q: &mut [i8],
    g: &[f32],
    mut m: Option<&mut [f32]>,
    view: &SliceView,
    cq: &ChannelQuant<'_>,
    p: &SgdParams,
) -> Result<(), KernelError> {
    view.check(q.len(), g.len())?;
    check_momentum(q.len(), &m, p)?;
    view.try_for_each(|i, j| {
        let v = update_int(i64::from(q[i]), g[j], i, &mut m, p, cq, (-128.0, 127.0))
            .ok_or(KernelError::NanUpdate { index: i })?;
        q[i] = v as i8;
        Ok(())
    })
}

/// [`sgd_i32`] of the covered elements only (as [`sgd_i8_slice`]).
pub fn sgd_i32_slice(
    q: &mut [i32],
    g: &[f32],
    mut m: Option<&mut [f32]>,
    view: &SliceView,
    cq: &ChannelQuant<'_>,
    p: &SgdParams,
) -> Result<(), KernelError> {
    view.check(q.len(), g.len())?;
    check_momentum(q.len(), &m, p)?;
    let range = (f64::from(i32::MIN), f64::from(i32::MAX));
    view.try_for_each(|i, j| {
        let v = update_int(i64::from(q[i]), g[j], i, &mut m, p, cq, range)
            .ok_or(KernelError::NanUpdate { index: i })?;
        q[i] = v as i32;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The interpreter's reference: scatter the slice gradient into a full-size zero gradient,
    /// run the full kernel, put back the parameter and momentum outside the slice.
    fn covered(v: &SliceView) -> Vec<bool> {
        let mut inside = std::vec![false; v.param_len()];
        v.try_for_each(|i, _| {
            inside[i] = true;
            Ok(())
        })
        .unwrap();
        inside
    }

    fn scatter(g: &[f32], v: &SliceView) -> Vec<f32> {
        let mut full = std::vec![0.0; v.param_len()];
        v.try_for_each(|i, j| {
            full[i] = g[j];
            Ok(())
        })
        .unwrap();
        full
    }

    fn restore<T: Copy>(new: &mut [T], old: &[T], inside: &[bool]) {
        for ((n, &o), &k) in new.iter_mut().zip(old).zip(inside) {
            if !k {
                *n = o;
            }
        }
    }

    proptest! {
        /// Every slice kernel equals scatter + full kernel + restore, bit for bit (parameter,
        /// momentum, accumulator, mean).
        #[test]
        fn slice_kernels_match_scatter_and_restore(outer in 1..4_usize, channels in 1..6_usize, inner in 1..4_usize, lo in 0..6_usize, count in 0..6_usize, momentum in prop_oneof![Just(0.0_f32), 0.1_f32..0.95], wd in prop_oneof![Just(0.0_f32), 0.0001_f32..0.1], qas in any::<bool>(), stochastic in any::<bool>(), every in 1..4_u32, step in 0..6_i64, seed in any::<u32>()) {
            let start = lo.min(channels);
            let count = count.min(channels - start);
            let v = SliceView { outer, channels, inner, start, count };
            let mut s = seed | 1;
            let mut next = || { s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223); s >> 8 };
            let unit = |x: u32| x as f32 / 16_777_216.0 - 0.5;
            let n = v.param_len();
            let g: Vec<f32> = (0..v.slice_len()).map(|_| unit(next()) * 4.0).collect();
            let w: Vec<f32> = (0..n).map(|_| unit(next())).collect();
            let q8: Vec<i8> = (0..n).map(|_| next() as u8 as i8).collect();
            let q32: Vec<i32> = (0..n).map(|_| (next() as i32) >> 4).collect();
            let m0: Vec<f32> = (0..n).map(|_| unit(next())).collect();
            let acc0: Vec<f32> = scatter(&(0..v.slice_len()).map(|_| unit(next())).collect::<Vec<_>>(), &v);
            let scales: Vec<f32> = (0..channels).map(|_| (next() % 1000 + 1) as f32 / 4093.0).collect();
            let zps: Vec<i32> = (0..channels).map(|_| (next() % 9) as i32 - 4).collect();
            let cq = ChannelQuant::new(&scales, &zps, inner).unwrap();
            let p = SgdParams {
                eta: 0.37,
                momentum,
                weight_decay: wd,
                qas,
                rounding: if stochastic { UpdateRounding::Stochastic { seed: i64::from(seed), step } } else { UpdateRounding::HalfEven },
            };
            let inside = covered(&v);
            let full_g = scatter(&g, &v);
            let use_m = momentum > 0.0;
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();

            // Accumulation.
            let (mut acc_ref, mut mean_ref) = (acc0.clone(), std::vec![0.0; n]);
            let ready_ref = accumulate(&full_g, &mut acc_ref, &mut mean_ref, step, every).unwrap();
            let (mut acc, mut mean) = (acc0.clone(), std::vec![0.0; v.slice_len()]);
            let ready = accumulate_slice(&g, &mut acc, &mut mean, &v, step, every).unwrap();
            prop_assert_eq!(ready, ready_ref);
            prop_assert_eq!(bits(&acc), bits(&acc_ref));
            if ready {
                let mut covered_mean = Vec::new();
                v.try_for_each(|i, _| { covered_mean.push(mean_ref[i]); Ok(()) }).unwrap();
                prop_assert_eq!(bits(&mean), bits(&covered_mean));
            }

            // f32.
            let (mut w_ref, mut m_ref) = (w.clone(), m0.clone());
            sgd_f32(&mut w_ref, &full_g, use_m.then_some(&mut m_ref[..]), &p).unwrap();
            restore(&mut w_ref, &w, &inside);
            restore(&mut m_ref, &m0, &inside);
            let (mut w_new, mut m_new) = (w.clone(), m0.clone());
            sgd_f32_slice(&mut w_new, &g, use_m.then_some(&mut m_new[..]), &v, &p).unwrap();
            prop_assert_eq!(bits(&w_new), bits(&w_ref));
            prop_assert_eq!(bits(&m_new), bits(&m_ref));

            // i8.
            let (mut q_ref, mut m_ref) = (q8.clone(), m0.clone());
            sgd_i8(&mut q_ref, &full_g, use_m.then_some(&mut m_ref[..]), &cq, &p).unwrap();
            restore(&mut q_ref, &q8, &inside);
            restore(&mut m_ref, &m0, &inside);
            let (mut q_new, mut m_new) = (q8.clone(), m0.clone());
            sgd_i8_slice(&mut q_new, &g, use_m.then_some(&mut m_new[..]), &v, &cq, &p).unwrap();
            prop_assert_eq!(q_new, q_ref);
            prop_assert_eq!(bits(&m_new), bits(&m_ref));

            // i32.
            let (mut q_ref, mut m_ref) = (q32.clone(), m0.clone());
            sgd_i32(&mut q_ref, &full_g, use_m.then_some(&mut m_ref[..]), &cq, &p).unwrap();
            restore(&mut q_ref, &q32, &inside);
            restore(&mut m_ref, &m0, &inside);
            let (mut q_new, mut m_new) = (q32.clone(), m0.clone());
            sgd_i32_slice(&mut q_new, &g, use_m.then_some(&mut m_new[..]), &v, &cq, &p).unwrap();
            prop_assert_eq!(q_new, q_ref);
            prop_assert_eq!(bits(&m_new), bits(&m_ref));
        }
    }

    #[test]
    fn slice_outside_the_parameter_is_an_error() {
        let v = SliceView {
            outer: 1,
            channels: 2,
            inner: 1,
            start: 1,
            count: 2,
        };
        let mut w = [0.0_f32; 2];
        let p = SgdParams {
            eta: 1.0,
            momentum: 0.0,
            weight_decay: 0.0,
            qas: false,
            rounding: UpdateRounding::HalfEven,
        };
        assert!(sgd_f32_slice(&mut w, &[1.0, 1.0], None, &v, &p).is_err());
    }

    #[test]
    fn splitmix64_reference_values() {
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn qas_update_rounds_and_saturates() {
        let scales = [0.5_f32];
        let zps = [0];
        let cq = ChannelQuant::new(&scales, &zps, 1).unwrap();
        let p = SgdParams {
            eta: 1.0,
            momentum: 0.0,
            weight_decay: 0.0,
            qas: true,
            rounding: UpdateRounding::HalfEven,
        };
        // g / s = 2·g: 1.25 → Δ = 2.5; 5 − 2.5 = 2.5 → 2 (ties to even); −128 − 100 saturates.
        let mut q = [5_i8, -128, 0];
        sgd_i8(&mut q, &[1.25, 50.0, -0.25], None, &cq, &p).unwrap();
        assert_eq!(q, [2, -128, 0]);
        let mut q = [0_i8];
        assert_eq!(
            sgd_i8(&mut q, &[f32::NAN], None, &cq, &p),
            Err(KernelError::NanUpdate { index: 0 })
        );
        assert!(sgd_i8(&mut q, &[1.0], None, &cq, &SgdParams { momentum: 0.9, ..p }).is_err());
    }

    #[test]
    fn accumulates_every_n_steps() {
        let mut acc = [0.0_f32; 2];
        let mut g = [0.0_f32; 2];
        assert!(!accumulate(&[1.0, 2.0], &mut acc, &mut g, 0, 2).unwrap());
        assert!(accumulate(&[3.0, 2.0], &mut acc, &mut g, 1, 2).unwrap());
        assert_eq!((g, acc), ([2.0, 2.0], [0.0, 0.0]));
    }

    #[test]
    fn stochastic_rounding_is_floor_of_shifted() {
        let r = UpdateRounding::Stochastic { seed: 1, step: 0 };
        assert_eq!(r.apply(4.0, 5), 4.0);
        let u = stochastic_u(1, 0, 3);
        assert_eq!(r.apply(2.5, 3), if u >= 0.5 { 3.0 } else { 2.0 });
    }

    #[test]
    fn stochastic_u_is_in_the_unit_interval() {
        for i in 0..1000 {
            let u = stochastic_u(7, 3, i);
            assert!((0.0..1.0).contains(&u));
            assert_eq!(u, f64::from(u as f32));
        }
        assert_ne!(stochastic_u(7, 3, 0), stochastic_u(7, 4, 0));
        assert_ne!(stochastic_u(7, 3, 0), stochastic_u(8, 3, 0));
    }

    #[test]
    fn half_even() {
        let r = UpdateRounding::HalfEven;
        assert_eq!(r.apply(2.5, 0), 2.0);
        assert_eq!(r.apply(-0.5, 0), 0.0);
        assert_eq!(r.apply(3.5, 0), 4.0);
    }

    extern crate std;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// The interpreter's integer rule before it moved here, with `std`'s rounding: the oracle of
    /// the kernel.
    #[allow(clippy::too_many_arguments)]
    fn legacy_update(
        q: i64,
        gi: f32,
        i: usize,
        m: Option<&mut f32>,
        p: &SgdParams,
        s: f32,
        z: i32,
        (lo, hi): (i64, i64),
    ) -> Option<i64> {
        let mut gi = gi;
        if p.weight_decay != 0.0 {
            gi += p.weight_decay * (s * (q - i64::from(z)) as f32);
        }
        let mut gt = if p.qas { gi / s } else { s * gi };
        if let Some(m) = m {
            *m = p.momentum * *m + gt;
            gt = *m;
        }
        let delta = p.eta * gt;
        let v = q as f64 - f64::from(delta);
        let v = match p.rounding {
            UpdateRounding::HalfEven => v.round_ties_even(),
            UpdateRounding::Stochastic { seed, step } => {
                (v + stochastic_u(seed, step, i as u64)).floor()
            }
        };
        (!v.is_nan()).then(|| v.clamp(lo as f64, hi as f64) as i64)
    }

    proptest! {
        #[test]
        fn int_updates_match_the_legacy_rule(
            q8 in proptest::collection::vec(any::<i8>(), 1..24),
            q32 in proptest::collection::vec(any::<i32>(), 1..24),
            g in proptest::collection::vec(-1e4_f32..1e4, 24),
            m0 in proptest::collection::vec(-10_f32..10.0, 24),
            scales in proptest::collection::vec(1e-6_f32..2.0, 1..4),
            (eta, momentum, weight_decay) in (0.0_f32..0.5, prop_oneof![Just(0.0_f32), 0.0_f32..0.99], prop_oneof![Just(0.0_f32), 0.0_f32..0.1]),
            qas in any::<bool>(),
            stochastic in proptest::option::of((any::<i64>(), any::<i64>())),
        ) {
            let zps: Vec<i32> = scales.iter().enumerate().map(|(c, _)| c as i32 - 1).collect();
            let inner = 2;
            let cq = ChannelQuant::new(&scales, &zps, inner).unwrap();
            let rounding = stochastic.map_or(UpdateRounding::HalfEven, |(seed, step)| UpdateRounding::Stochastic { seed, step });
            let p = SgdParams { eta, momentum, weight_decay, qas, rounding };
            let chan = |i: usize| (i / inner) % scales.len();
            // int8
            let mut q = q8.clone();
            let mut m = m0[..q.len()].to_vec();
            let mom = (momentum > 0.0).then_some(&mut m[..]);
            sgd_i8(&mut q, &g[..q8.len()], mom, &cq, &p).unwrap();
            let mut mm = m0[..q8.len()].to_vec();
            for (i, &qi) in q8.iter().enumerate() {
                let mi = (momentum > 0.0).then_some(&mut mm[i]);
                let want = legacy_update(i64::from(qi), g[i], i, mi, &p, scales[chan(i)], zps[chan(i)], (-128, 127)).unwrap();
                prop_assert_eq!(i64::from(q[i]), want);
            }
            if momentum > 0.0 {
                prop_assert_eq!(m, mm);
            }
            // int32
            let mut q = q32.clone();
            sgd_i32(&mut q, &g[..q32.len()], None, &cq, &SgdParams { momentum: 0.0, ..p }).unwrap();
            for (i, &qi) in q32.iter().enumerate() {
                let want = legacy_update(i64::from(qi), g[i], i, None, &SgdParams { momentum: 0.0, ..p }, scales[chan(i)], zps[chan(i)], (i64::from(i32::MIN), i64::from(i32::MAX))).unwrap();
                prop_assert_eq!(i64::from(q[i]), want);
            }
        }
    }
}
