//! The C of the in-place update (`Kernel::Sgd`): the optional channel-slice expansion and
//! gradient accumulation, then one `mite_sgd_{f32,i8,i32}` call.

use std::fmt::Write as _;

use mite_ir::program::{BufElem, SgdSlice};

use super::arms::Operands;
use super::literal::{elements, f32_lit, i32_lit, i64_lit};

/// The fields of a `Kernel::Sgd` the C call needs.
pub(super) struct Sgd<'a> {
    pub elem: BufElem,
    pub len: usize,
    pub lr_scale: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub qas: bool,
    pub stochastic_seed: Option<i64>,
    pub scales: &'a [f32],
    pub zero_points: &'a [i32],
    pub inner: usize,
    pub accumulate: u32,
    pub slice: Option<&'a SgdSlice>,
}

/// Prints the update (operands: gradient, learning rate, step; results: the parameter, then
/// the momentum and accumulator states if any; scratch for a slice or accumulation), or says
/// what the C emitter does not support.
pub(super) fn print(
    k: &Sgd<'_>,
    o: &Operands,
    globals: &mut String,
    body: &mut String,
) -> Result<(), &'static str> {
    if k.slice.is_some() && (k.weight_decay != 0.0 || k.stochastic_seed.is_some()) {
        return Err("a channel-slice update with weight decay or stochastic rounding");
    }
    let (p, n) = (&o.prefix, k.len);
    let cq = if k.elem == BufElem::F32 {
        String::new()
    } else {
        let _ = writeln!(
            globals,
            "static const float {p}_scales[] = {{{}}};\n\
             static const int32_t {p}_zero_points[] = {{{}}};\n\
             static const mite_channel_quant {p}_cq = {{{p}_scales, {p}_zero_points, {}u, {}u}};\n",
            elements(k.scales, |v| f32_lit(*v)),
            elements(k.zero_points, |v| i32_lit(*v)),
            k.scales.len(),
            k.inner,
        );
        format!(" &{p}_cq,")
    };
    // The executor uses the momentum state only when momentum > 0.
    let m = match o.outs.get(1) {
        Some((m, mn)) if k.momentum > 0.0 => format!("{m}, {mn}u"),
        _ => "NULL, 0u".to_owned(),
    };
    let func = match k.elem {
        BufElem::F32 => "mite_sgd_f32",
        BufElem::I8 => "mite_sgd_i8",
        _ => "mite_sgd_i32",
    };
    let (grad, lr, step) = (&o.ins[0].0, &o.ins[1].0, &o.ins[2].0);
    let scratch = || {
        o.scratch
            .as_ref()
            .map(|s| s.0.as_str())
            .ok_or("an update without its gradient scratch buffer")
    };
    let mut pre = String::new();
    let mut ready = "";
    if let Some(s) = k.slice {
        // The full-size gradient: the covered channels' elements in order, zeros elsewhere (an
        // update by zero leaves the rest unchanged, no weight decay).
        let scratch = scratch()?;
        let _ = write!(
            pre,
            "        {{\n            float *full = {scratch};\n            size_t i, k = 0;\n            \
             for (i = 0; i < {n}u; i++) {{\n                size_t ch = (i / {si}u) % {sc}u;\n                \
             if ({cond}) {{\n                    full[i] = g[k];\n                    k++;\n                \
             }} else {{\n                    full[i] = 0.0f;\n                }}\n            }}\n            g = full;\n        }}\n",
            si = s.inner.max(1),
            sc = s.channels.max(1),
            cond = if s.start == 0 {
                format!("ch < {}u", s.count)
            } else {
                format!("ch >= {}u && ch < {}u", s.start, s.start + s.count)
            },
        );
    }
    if k.accumulate > 1 {
        let scratch = scratch()?;
        let acc = &o.outs[1 + usize::from(k.momentum != 0.0)].0;
        let _ = write!(
            pre,
            "        st = mite_accumulate(g, {n}u, {acc}, {n}u, {scratch}, {n}u, ({step})[0], {}u, &ready);\n        \
             g = {scratch};\n",
            k.accumulate
        );
        ready = " && ready";
    }
    let _ = writeln!(
        body,
        "    if (st == MITE_OK) {{\n        const float *g = {grad};\n{decl}{pre}        \
         if (st == MITE_OK{ready}) {{\n            mite_sgd_params p;\n            \
         p.eta = ({lr})[0] * {lrs};\n            p.momentum = {mom};\n            p.weight_decay = {wd};\n            \
         p.qas = {qas};\n            p.rounding.stochastic = {sto};\n            p.rounding.seed = {seed};\n            \
         p.rounding.step = ({step})[0];\n            \
         st = {func}({q}, {n}u, g, {n}u, {m},{cq} &p);\n        }}\n    }}",
        decl = if k.accumulate > 1 {
            "        int ready = 0;\n"
        } else {
            ""
        },
        lrs = f32_lit(k.lr_scale),
        mom = f32_lit(k.momentum),
        wd = f32_lit(k.weight_decay),
        qas = i32::from(k.qas),
        sto = i32::from(k.stochastic_seed.is_some()),
        seed = i64_lit(k.stochastic_seed.unwrap_or(0)),
        q = o.outs[0].0,
    );
    Ok(())
}
