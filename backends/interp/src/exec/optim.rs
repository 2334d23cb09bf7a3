//! The optimizer (`optim.`) ops: in-place parameter updates.
//!
//! # `optim.sgd(grad, lr, step)` with attributes `param`, `lr_scale`, `momentum`,
//! `weight_decay`, `qas`, `stochastic`, `seed`, `accumulate`, `slice_axis`, `slice_start`
//!
//! All optimizer arithmetic is in `f32` (the gradient is rounded to `f32` first in the `f64`
//! mode), like the generated code; only the final integer rounding is done in `f64`. Let `g` be
//! the gradient, `η = lr · lr_scale` (one `f32` product), and `i` the row-major element index.
//!
//! 1. **Accumulation** (`accumulate = N > 1`): `acc += g` (state `@<param>.grad_acc`, real
//!    units). If `(step + 1) mod N ≠ 0` (Euclidean remainder) the op stops here and the
//!    parameter is unchanged. Otherwise `g = acc / N` and `acc` is reset to zeros.
//! 2. **f32 parameters** `w`:
//!    - weight decay: `g = g + weight_decay · w` (skipped when `weight_decay = 0`);
//!    - momentum (`momentum > 0`, state `@<param>.momentum`): `m = momentum · m + g`, `g = m`;
//!    - `w = w − η · g`.
//! 3. **Quantized `i8` / `i32` parameters** `q` with scale `s` and zero point `z` of the
//!    element's channel (per tensor, or per channel along the type's `Quant::PerChannel` axis):
//!    - weight decay in real units: `g = g + weight_decay · (s · (q − z))`;
//!    - the gradient w.r.t. the integer tensor: `g̃ = s · g`; with `qas` (quantization-aware
//!      scaling, `s · g · s⁻²`): `g̃ = g / s`;
//!    - momentum on the scaled gradient: `m = momentum · m + g̃`, `g̃ = m` (so the momentum
//!      state of an integer parameter is in integer units);
//!    - `Δ = η · g̃` (in `f32`) and `v = q − Δ` (in `f64`, exact for every `i32` `q`);
//!    - rounding: half to even, or with `stochastic`, `⌊v + u⌋` where `u ∈ [0, 1)` is
//!      [`stochastic_u`]`(seed, step, i)`: 24 bits of
//!      `h = splitmix64(splitmix64(splitmix64(seed) ^ step) ^ i)` (`seed`, `step` and `i`
//!      reinterpreted as `u64`), `u = (h >> 40) · 2⁻²⁴` — reproducible, and unbiased up to
//!      `2⁻²⁴`;
//!    - saturation to `[−128, 127]` (`i8`) or the `i32` range (infinities saturate); a NaN
//!      update is an error naming the parameter (an integer cannot hold it). NaN in an `f32`
//!      parameter update propagates, as in IEEE arithmetic.
//!
//! With a gradient covering only the channels `[slice_start, slice_start + n)` of axis
//! `slice_axis` (sparse tensor update), the rules apply to those elements of the parameter and
//! of its state; every other element is left unchanged.
//!
//! State globals start from their declared data, or zeros when declared without data
//! ([`GlobalData::Absent`]); data elided when printing is an error. The parameter itself must
//! have data.
//!
//! # Visibility
//!
//! Updates (parameters and state) go to a pending set first; the interpreter commits it when the
//! run succeeds, so a failed run changes nothing. Within a run, later `optim.` ops and later
//! `param` reads see the updated data; a value read by `param` before the update keeps the old
//! elements.

use std::collections::HashMap;

use mite_ir::{GlobalData, Module, Op, Quant, TensorData, TensorType};

use crate::kernel_error::KernelError;

use super::error::OpFailure;
use super::operands::Operands;
use super::value::{Data, ExecReal};

/// Where `optim.` ops read and write global data during one run.
pub(crate) struct Globals<'s> {
    /// The module (declared data).
    pub(crate) module: &'s Module,
    /// Data committed by earlier runs or set by the user (the interpreter's overrides).
    pub(crate) committed: &'s HashMap<String, TensorData>,
    /// Data written during this run.
    pub(crate) pending: &'s mut HashMap<String, TensorData>,
}

impl Globals<'_> {
    /// The current data of global `name`, if it has any: pending, committed, then declared.
    fn current(&self, name: &str) -> Result<Option<&TensorData>, OpFailure> {
        if let Some(d) = self.pending.get(name).or_else(|| self.committed.get(name)) {
            return Ok(Some(d));
        }
        let global = self
            .module
            .globals
            .get(name)
            .ok_or_else(|| OpFailure::Internal(format!("unknown global @{name}")))?;
        match &global.data {
            GlobalData::Inline(d) => Ok(Some(d)),
            GlobalData::Absent => Ok(None),
            GlobalData::Elided { digest } => Err(OpFailure::ElidedData {
                global: name.to_string(),
                digest: *digest,
            }),
        }
    }

    /// The `f32` elements of state `name` (`len` of them; zeros when it has no data).
    fn state(&self, name: &str, len: usize) -> Result<Vec<f32>, OpFailure> {
        match self.current(name)? {
            None => Ok(vec![0.0; len]),
            Some(TensorData::F32(v)) if v.len() == len => Ok(v.clone()),
            Some(d) => Err(OpFailure::Internal(format!(
                "state @{name}: {} {} elements, expected {len} f32",
                d.len(),
                d.elem()
            ))),
        }
    }
}

/// `splitmix64`: one step of the generator of the same name (Steele, Lea, Flood 2014).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The uniform `u ∈ [0, 1)` of stochastic rounding for element `index` at `step`: the top 24
/// bits of `splitmix64(splitmix64(splitmix64(seed) ^ step) ^ index)`, times `2⁻²⁴` (exact in
/// `f32`).
pub fn stochastic_u(seed: i64, step: i64, index: u64) -> f64 {
    let h = splitmix64(splitmix64(splitmix64(seed as u64) ^ step as u64) ^ index);
    (h >> 40) as f64 / f64::from(1u32 << 24)
}

/// How the integer update is rounded.
#[derive(Clone, Copy)]
enum Round {
    /// To nearest, ties to even.
    HalfEven,
    /// `⌊v + u⌋` with `u` from [`stochastic_u`].
    Stochastic { seed: i64, step: i64 },
}

impl Round {
    /// `v` rounded to an integer-valued `f64` (element `index`).
    fn apply(self, v: f64, index: usize) -> f64 {
        match self {
            Round::HalfEven => v.round_ties_even(),
            Round::Stochastic { seed, step } => {
                (v + stochastic_u(seed, step, index as u64)).floor()
            }
        }
    }
}

/// The `f32` scalar operand `i` (the learning rate), rounded to `f32`.
fn scalar<T: ExecReal>(x: &Operands<'_, '_, T>, i: usize) -> Result<f32, OpFailure> {
    match x.real(i)? {
        [v] => Ok(v.to_f64() as f32),
        v => Err(OpFailure::Internal(format!(
            "operand {i}: expected a scalar, found {} elements",
            v.len()
        ))),
    }
}

/// The `i64` scalar operand `i`.
fn step_operand<T: ExecReal>(x: &Operands<'_, '_, T>, i: usize) -> Result<i64, OpFailure> {
    match x.data(i)? {
        Data::I64(v) if v.len() == 1 => Ok(v[0]),
        other => Err(OpFailure::Internal(format!(
            "operand {i}: expected an i64 scalar, found {} {} elements",
            other.len(),
            other.elem()
        ))),
    }
}

/// The scale and zero point of every element of a quantized parameter of type `ty` (per tensor:
/// one channel).
struct ChannelQuant<'t> {
    quant: &'t Quant,
    /// `(inner size, channels)` for per-channel parameters.
    per_channel: Option<(usize, usize)>,
}

impl<'t> ChannelQuant<'t> {
    fn new(ty: &'t TensorType, param: &str) -> Result<ChannelQuant<'t>, OpFailure> {
        let Some(quant) = &ty.quant else {
            return Err(OpFailure::Internal(format!(
                "@{param} of type {ty} has no quantization"
            )));
        };
        let per_channel = match quant {
            Quant::PerTensor { .. } => None,
            Quant::PerChannel { axis, scales, .. } => {
                if ty.shape.get(*axis) != Some(&scales.len()) {
                    return Err(OpFailure::Internal(format!(
                        "@{param}: the quantization of {ty} does not match its shape"
                    )));
                }
                let inner: usize = ty.shape[axis + 1..].iter().product();
                Some((inner, scales.len()))
            }
        };
        let channels = per_channel.map_or(1, |(_, c)| c);
        for c in 0..channels {
            let s = quant.scale(c);
            if !(s.is_finite() && s > 0.0) {
                return Err(OpFailure::Unsupported(format!(
                    "@{param}: cannot train with scale {s} (channel {c})"
                )));
            }
        }
        Ok(ChannelQuant { quant, per_channel })
    }

    /// `(scale, zero point)` of element `i`.
    fn of(&self, i: usize) -> (f32, i32) {
        let c = self
            .per_channel
            .map_or(0, |(inner, channels)| (i / inner.max(1)) % channels.max(1));
        (self.quant.scale(c), self.quant.zero_point(c))
    }
}

/// The attributes of `optim.sgd` the update uses.
struct Rule {
    eta: f32,
    momentum: f32,
    weight_decay: f32,
    qas: bool,
    round: Round,
}

/// `optim.sgd`: updates the parameter (and its state) in `globals.pending`; see the module
/// documentation for the exact rules.
pub(crate) fn sgd<T: ExecReal>(
    op: &Op,
    x: &Operands<'_, '_, T>,
    globals: &mut Globals<'_>,
) -> Result<(), OpFailure> {
    let Op::Sgd {
        param,
        lr_scale,
        momentum,
        weight_decay,
        qas,
        stochastic,
        seed,
        accumulate,
        slice_axis,
        slice_start,
    } = op
    else {
        return Err(OpFailure::Internal(format!(
            "{} is not optim.sgd",
            op.name()
        )));
    };
    let name = param.0.as_str();
    let ty = &globals
        .module
        .globals
        .get(name)
        .ok_or_else(|| OpFailure::Internal(format!("unknown parameter @{name}")))?
        .ty;
    let len = ty.num_elements();
    let slice = channel_slice(&ty.shape, x.shape(0)?, *slice_axis, *slice_start, name)?;
    let mut g: Vec<f32> = T::cow_to_f32(x.real(0)?).into_owned();
    if let Some(inside) = &slice {
        g = scatter(&g, inside, len);
    }
    if g.len() != len {
        return Err(OpFailure::Internal(format!(
            "gradient of {} elements for @{name} : {ty}",
            g.len()
        )));
    }
    let lr = scalar(x, 1)?;
    let step = step_operand(x, 2)?;

    if *accumulate > 1 {
        let acc_name = format!("{name}.grad_acc");
        let mut acc = globals.state(&acc_name, len)?;
        for (a, &gi) in acc.iter_mut().zip(&g) {
            *a += gi;
        }
        let n = i128::from(*accumulate);
        if (i128::from(step) + 1).rem_euclid(n) != 0 {
            globals.pending.insert(acc_name, TensorData::F32(acc));
            return Ok(());
        }
        let nf = *accumulate as f32;
        g = acc.iter().map(|&a| a / nf).collect();
        globals
            .pending
            .insert(acc_name, TensorData::F32(vec![0.0; len]));
    }

    let momentum_name = format!("{name}.momentum");
    let mut m = if *momentum > 0.0 {
        Some(globals.state(&momentum_name, len)?)
    } else {
        None
    };
    let rule = Rule {
        eta: lr * lr_scale,
        momentum: *momentum,
        weight_decay: *weight_decay,
        qas: *qas,
        round: if *stochastic {
            Round::Stochastic { seed: *seed, step }
        } else {
            Round::HalfEven
        },
    };
    let current = globals
        .current(name)?
        .ok_or_else(|| OpFailure::AbsentData(name.to_string()))?;
    if current.len() != len {
        return Err(OpFailure::Internal(format!(
            "@{name}: {} elements for {ty}",
            current.len()
        )));
    }
    let before_m = m.clone();
    let mut updated = match current {
        TensorData::F32(w) => TensorData::F32(update_f32(w, &g, m.as_deref_mut(), &rule)),
        TensorData::I8(q) => {
            let cq = ChannelQuant::new(ty, name)?;
            let q64 = q.iter().map(|&v| i64::from(v));
            let new = update_int(q64, &g, m.as_deref_mut(), &rule, &cq, name, (-128, 127))?;
            // In range after saturation.
            TensorData::I8(new.into_iter().map(|v| v as i8).collect())
        }
        TensorData::I32(q) => {
            let cq = ChannelQuant::new(ty, name)?;
            let q64 = q.iter().map(|&v| i64::from(v));
            let range = (i64::from(i32::MIN), i64::from(i32::MAX));
            let new = update_int(q64, &g, m.as_deref_mut(), &rule, &cq, name, range)?;
            TensorData::I32(new.into_iter().map(|v| v as i32).collect())
        }
        other => {
            return Err(OpFailure::Unsupported(format!(
                "@{name}: cannot train {} elements",
                other.elem()
            )))
        }
    };
    if let Some(inside) = &slice {
        keep_outside(&mut updated, current, inside);
        if let (Some(m), Some(old)) = (m.as_mut(), &before_m) {
            restore(m, old, inside);
        }
    }
    globals.pending.insert(name.to_string(), updated);
    if let Some(m) = m {
        globals.pending.insert(momentum_name, TensorData::F32(m));
    }
    Ok(())
}

/// The f32 rule: weight decay, momentum, `w − η · g`.
fn update_f32(w: &[f32], g: &[f32], mut m: Option<&mut [f32]>, rule: &Rule) -> Vec<f32> {
    w.iter()
        .zip(g)
        .enumerate()
        .map(|(i, (&wi, &gi))| {
            let mut gi = gi;
            if rule.weight_decay != 0.0 {
                gi += rule.weight_decay * wi;
            }
            if let Some(m) = m.as_deref_mut() {
                m[i] = rule.momentum * m[i] + gi;
                gi = m[i];
            }
            wi - rule.eta * gi
        })
        .collect()
}

/// The integer rule: real-unit weight decay, scaling (with or without QAS), momentum, rounding
/// and saturation to `range`. Returns the new values, in `range`.
fn update_int(
    q: impl Iterator<Item = i64>,
    g: &[f32],
    mut m: Option<&mut [f32]>,
    rule: &Rule,
    cq: &ChannelQuant<'_>,
    param: &str,
    (lo, hi): (i64, i64),
) -> Result<Vec<i64>, OpFailure> {
    q.zip(g)
        .enumerate()
        .map(|(i, (qi, &gi))| {
            let (s, z) = cq.of(i);
            let mut gi = gi;
            if rule.weight_decay != 0.0 {
                gi += rule.weight_decay * (s * (qi - i64::from(z)) as f32);
            }
            let mut gt = if rule.qas { gi / s } else { s * gi };
            if let Some(m) = m.as_deref_mut() {
                m[i] = rule.momentum * m[i] + gt;
                gt = m[i];
            }
            let delta = rule.eta * gt;
            let v = rule.round.apply(qi as f64 - f64::from(delta), i);
            if v.is_nan() {
                return Err(OpFailure::Kernel(KernelError::Invalid(format!(
                    "@{param}: the update of element {i} is NaN (gradient {gi})"
                ))));
            }
            // Integer-valued and clamped to `range`, so the cast is exact.
            Ok(v.clamp(lo as f64, hi as f64) as i64)
        })
        .collect()
}

/// For a gradient covering only a channel slice of the parameter (`optim.sgd`'s `slice_axis` /
/// `slice_start`): which parameter elements it covers (`None` when it covers the whole tensor).
fn channel_slice(
    param: &[usize],
    grad: &[usize],
    axis: i64,
    start: i64,
    name: &str,
) -> Result<Option<Vec<bool>>, OpFailure> {
    if grad == param && start == 0 {
        return Ok(None);
    }
    let bad = || {
        OpFailure::Internal(format!(
            "gradient {grad:?} is not a channel slice of @{name} {param:?}"
        ))
    };
    let axis = usize::try_from(axis).map_err(|_| bad())?;
    let start = usize::try_from(start).map_err(|_| bad())?;
    if grad.len() != param.len() || axis >= param.len() || start + grad[axis] > param[axis] {
        return Err(bad());
    }
    let inner: usize = param[axis + 1..].iter().product();
    let channels = param[axis];
    let len: usize = param.iter().product();
    Ok(Some(
        (0..len)
            .map(|i| {
                let c = (i / inner.max(1)) % channels.max(1);
                (start..start + grad[axis]).contains(&c)
            })
            .collect(),
    ))
}

/// The full-size gradient: `g`'s elements at the covered positions (in order), zeros elsewhere.
fn scatter(g: &[f32], inside: &[bool], len: usize) -> Vec<f32> {
    let mut it = g.iter();
    (0..len)
        .map(|i| {
            if inside[i] {
                it.next().copied().unwrap_or(0.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Puts back the elements outside the slice: a sliced update changes nothing else.
fn restore<T: Copy>(new: &mut [T], old: &[T], inside: &[bool]) {
    for ((n, &o), &keep_new) in new.iter_mut().zip(old).zip(inside) {
        if !keep_new {
            *n = o;
        }
    }
}

fn keep_outside(updated: &mut TensorData, current: &TensorData, inside: &[bool]) {
    match (updated, current) {
        (TensorData::F32(n), TensorData::F32(o)) => restore(n, o, inside),
        (TensorData::I8(n), TensorData::I8(o)) => restore(n, o, inside),
        (TensorData::I32(n), TensorData::I32(o)) => restore(n, o, inside),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // The first outputs of the reference generator seeded with 0 (state advanced by the
        // golden gamma each call).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
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
    fn half_even_and_floor() {
        assert_eq!(Round::HalfEven.apply(2.5, 0), 2.0);
        assert_eq!(Round::HalfEven.apply(-0.5, 0), 0.0);
        assert_eq!(Round::HalfEven.apply(3.5, 0), 4.0);
        let r = Round::Stochastic { seed: 1, step: 0 };
        assert_eq!(r.apply(4.0, 5), 4.0);
    }
}
