//! The optimizer (`optim.`) ops: in-place parameter updates.
//!
//! # `optim.sgd(grad, lr, step)` with attributes `param`, `lr_scale`, `momentum`,
//! `weight_decay`, `qas`, `stochastic`, `seed`, `accumulate`, `momentum_state`, `accum_state`,
//! `slice_axis`, `slice_start`
//!
//! All optimizer arithmetic is in `f32` (the gradient is rounded to `f32` first in the `f64`
//! mode), like the generated code; only the final integer rounding is done in `f64`. Let `g` be
//! the gradient, `η = lr · lr_scale` (one `f32` product), and `i` the row-major element index.
//!
//! 1. **Accumulation** (`accumulate = N > 1`): `acc += g` (the state named by `accum_state`, real
//!    units). If `(step + 1) mod N ≠ 0` (Euclidean remainder) the op stops here and the
//!    parameter is unchanged. Otherwise `g = acc / N` and `acc` is reset to zeros.
//! 2. **f32 parameters** `w`:
//!    - weight decay: `g = g + weight_decay · w` (skipped when `weight_decay = 0`);
//!    - momentum (`momentum > 0`, the state named by `momentum_state`): `m = momentum · m + g`, `g = m`;
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

use mite_ir::{GlobalData, Module, Op, Quant, Symbol, TensorData, TensorType};

use mite_kernels::sgd::{self, SgdParams, SliceView, UpdateRounding};

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

pub use mite_kernels::sgd::stochastic_u;

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

    /// The per-channel scale and zero point tables and the channel stride, for the kernel.
    fn tables(&self) -> (Vec<f32>, Vec<i32>, usize) {
        let (inner, channels) = self.per_channel.unwrap_or((1, 1));
        let scales = (0..channels).map(|c| self.quant.scale(c)).collect();
        let zero_points = (0..channels).map(|c| self.quant.zero_point(c)).collect();
        (scales, zero_points, inner)
    }
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
        momentum_state,
        accum_state,
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
    if g.len() != slice.as_ref().map_or(len, SliceView::slice_len) {
        return Err(OpFailure::Internal(format!(
            "gradient of {} elements for @{name} : {ty}",
            g.len()
        )));
    }
    let lr = scalar(x, 1)?;
    let step = step_operand(x, 2)?;

    if *accumulate > 1 {
        let every = u32::try_from(*accumulate).map_err(|_| {
            OpFailure::Unsupported(format!("@{name}: accumulation over {accumulate} steps"))
        })?;
        let acc_name = state_name(accum_state.as_ref(), "accum_state", name, true)?;
        let mut acc = globals.state(&acc_name, len)?;
        let mut mean = vec![0.0; g.len()];
        let ready = match &slice {
            Some(view) => sgd::accumulate_slice(&g, &mut acc, &mut mean, view, step, every),
            None => sgd::accumulate(&g, &mut acc, &mut mean, step, every),
        }
        .map_err(KernelError::from)?;
        globals.pending.insert(acc_name, TensorData::F32(acc));
        if !ready {
            return Ok(());
        }
        g = mean;
    }

    let momentum_name = state_name(
        momentum_state.as_ref(),
        "momentum_state",
        name,
        *momentum > 0.0,
    )?;
    let mut m = if *momentum > 0.0 {
        Some(globals.state(&momentum_name, len)?)
    } else {
        None
    };
    let rule = SgdParams {
        eta: lr * lr_scale,
        momentum: *momentum,
        weight_decay: *weight_decay,
        qas: *qas,
        rounding: if *stochastic {
            UpdateRounding::Stochastic { seed: *seed, step }
        } else {
            UpdateRounding::HalfEven
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
    // A sliced update touches only the covered elements (and their momentum).
    let mut updated = current.clone();
    let result = match (&mut updated, &slice) {
        (TensorData::F32(w), None) => sgd::sgd_f32(w, &g, m.as_deref_mut(), &rule),
        (TensorData::F32(w), Some(v)) => sgd::sgd_f32_slice(w, &g, m.as_deref_mut(), v, &rule),
        (TensorData::I8(q), _) => {
            let (scales, zero_points, inner) = ChannelQuant::new(ty, name)?.tables();
            let cq =
                sgd::ChannelQuant::new(&scales, &zero_points, inner).map_err(KernelError::from)?;
            match &slice {
                Some(v) => sgd::sgd_i8_slice(q, &g, m.as_deref_mut(), v, &cq, &rule),
                None => sgd::sgd_i8(q, &g, m.as_deref_mut(), &cq, &rule),
            }
        }
        (TensorData::I32(q), _) => {
            let (scales, zero_points, inner) = ChannelQuant::new(ty, name)?.tables();
            let cq =
                sgd::ChannelQuant::new(&scales, &zero_points, inner).map_err(KernelError::from)?;
            match &slice {
                Some(v) => sgd::sgd_i32_slice(q, &g, m.as_deref_mut(), v, &cq, &rule),
                None => sgd::sgd_i32(q, &g, m.as_deref_mut(), &cq, &rule),
            }
        }
        (other, _) => {
            return Err(OpFailure::Unsupported(format!(
                "@{name}: cannot train {} elements",
                other.elem()
            )))
        }
    };
    result.map_err(|e| match e {
        mite_kernels::KernelError::NanUpdate { index } => {
            let gi = match &slice {
                Some(v) => v.grad_index(index),
                None => Some(index),
            };
            KernelError::Invalid(format!(
                "@{name}: the update of element {index} is NaN (gradient {})",
                gi.and_then(|j| g.get(j)).copied().unwrap_or(f32::NAN)
            ))
        }
        e => e.into(),
    })?;
    globals.pending.insert(name.to_string(), updated);
    if let Some(m) = m {
        globals.pending.insert(momentum_name, TensorData::F32(m));
    }
    Ok(())
}

/// The state an update names in attribute `attr` (empty when the update does not use it).
fn state_name(
    state: Option<&Symbol>,
    attr: &str,
    param: &str,
    used: bool,
) -> Result<String, OpFailure> {
    match state {
        Some(s) => Ok(s.0.clone()),
        None if used => Err(OpFailure::Internal(format!(
            "the update of @{param} has no {attr}"
        ))),
        None => Ok(String::new()),
    }
}

/// For a gradient covering only a channel slice of the parameter (`optim.sgd`'s `slice_axis` /
/// `slice_start`): the parameter viewed as `[outer, channels, inner]` and the covered channels
/// (`None` when it covers the whole tensor).
fn channel_slice(
    param: &[usize],
    grad: &[usize],
    axis: i64,
    start: i64,
    name: &str,
) -> Result<Option<SliceView>, OpFailure> {
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
    Ok(Some(SliceView {
        outer: param[..axis].iter().product(),
        channels: param[axis],
        inner: param[axis + 1..].iter().product(),
        start,
        count: grad[axis],
    }))
}
