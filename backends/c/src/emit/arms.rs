//! The C of every kernel: one runtime call (or a short loop where the runtime has no function)
//! per [`Kernel`] variant, mirroring the Program executor's semantics (`mite_interp::program`,
//! `run.rs`). The int8 convolution and the update, longer, are in [`super::conv`] and
//! [`super::sgd`]; this module's [`print`] is the one place that dispatches on the variant.

use std::fmt::Write as _;

use mite_ir::program::{BufElem, Kernel};
use mite_kernels::Conv2dGeometry;

use super::literal::{elements, f32_lit, f64_lit, i32_lit, i64_lit};
use super::{c_type, conv, rounding_c, sgd};

/// The C operands of one call: `(expression, stored length)` of each operand, result and the
/// scratch buffer, and the prefix of the call's globals.
pub(super) struct Operands {
    pub prefix: String,
    pub ins: Vec<(String, usize)>,
    pub outs: Vec<(String, usize)>,
    pub scratch: Option<(String, usize)>,
}

/// A `mite_conv2d_geometry` initialiser.
pub(super) fn geometry_init(g: &Conv2dGeometry) -> String {
    let w = g.window();
    let [oh, ow] = g.out_hw();
    format!(
        "{{{n}u, {ci}u, {{{h}u, {wd}u}}, {co}u, {gr}u,\n     \
         {{{{{kh}u, {kw}u}}, {{{sh}u, {sw}u}}, {{{p0}u, {p1}u, {p2}u, {p3}u}}, {{{dh}u, {dw}u}}}},\n     \
         {{{oh}u, {ow}u}}}}",
        n = g.n(),
        ci = g.c_in(),
        h = g.in_hw()[0],
        wd = g.in_hw()[1],
        co = g.c_out(),
        gr = g.groups(),
        kh = w.kernel[0],
        kw = w.kernel[1],
        sh = w.strides[0],
        sw = w.strides[1],
        p0 = w.pads[0],
        p1 = w.pads[1],
        p2 = w.pads[2],
        p3 = w.pads[3],
        dh = w.dilations[0],
        dw = w.dilations[1],
    )
}

/// The weight and bias fields of `mite_bottleneck_int8_weights`, in the Program call's operand
/// order.
const BOTTLENECK_WEIGHTS: [&str; 6] = [
    "w_expand",
    "b_expand",
    "w_depthwise",
    "b_depthwise",
    "w_project",
    "b_project",
];

fn dims_init(d: &[usize; 4]) -> String {
    format!("{{{}u, {}u, {}u, {}u}}", d[0], d[1], d[2], d[3])
}

fn quant_init(q: &mite_kernels::requant::QuantParams) -> String {
    format!("{{{}, {}}}", f32_lit(q.scale), q.zero_point)
}

fn pair_init(p: (i32, i32)) -> String {
    format!("{{{}, {}}}", i32_lit(p.0), i32_lit(p.1))
}

/// `st = CALL;` guarded by the status so far.
pub(super) fn guarded(body: &mut String, call: &str) {
    let _ = writeln!(
        body,
        "    if (st == MITE_OK) {{\n        st = {call};\n    }}"
    );
}

/// A per-axis table (`mite_per_axis`) named `{prefix}_pa`.
fn per_axis(globals: &mut String, prefix: &str, scales: &[f32], zps: &[i8], inner: usize) {
    let zp = if zps.is_empty() {
        "NULL".to_owned()
    } else {
        let _ = writeln!(
            globals,
            "static const int8_t {prefix}_zp[] = {{{}}};",
            elements(zps, |v| v.to_string())
        );
        format!("{prefix}_zp")
    };
    let _ = writeln!(
        globals,
        "static const float {prefix}_scales[] = {{{}}};\n\
         static const mite_per_axis {prefix}_pa = {{{prefix}_scales, {}u, {zp}, {}u, {inner}u}};\n",
        elements(scales, |v| f32_lit(*v)),
        scales.len(),
        zps.len(),
    );
}

/// Prints `kernel`'s call into `body` and its `const` tables into `globals`, or says what
/// the C emitter does not support.
pub(super) fn print(
    kernel: &Kernel,
    o: &Operands,
    globals: &mut String,
    body: &mut String,
) -> Result<(), &'static str> {
    let p = &o.prefix;
    let (i0, i0n) = o.ins.first().cloned().unwrap_or_default();
    let (i1, i1n) = o.ins.get(1).cloned().unwrap_or_default();
    let (y, yn) = o.outs.first().cloned().unwrap_or_default();
    match kernel {
        Kernel::ConvInt8 { .. } => conv::print(kernel, o, globals, body)?,
        Kernel::SplitWeight { kernel: inner, kept } => match inner.as_ref() {
            Kernel::ConvInt8 { .. } => conv::print_split(inner, *kept, o, globals, body)?,
            Kernel::ConvBackwardInputInt8 {
                geometry,
                scales,
                zero_points,
                inner,
            } => {
                let _ = writeln!(
                    globals,
                    "static const mite_conv2d_geometry {p}_g = {};",
                    geometry_init(geometry)
                );
                per_axis(globals, p, scales, zero_points, *inner);
                let w = conv::split_weight_init(o, *kept);
                let _ = writeln!(
                    body,
                    "    if (st == MITE_OK) {{\n        const mite_split_weight w = {w};\n        \
                     st = mite_conv2d_backward_input_int8w_split({i0}, {i0n}u, &w, &{p}_pa, {y}, {yn}u, &{p}_g);\n    }}"
                );
            }
            _ => return Err("a split weight read by a kernel other than an int8 convolution or its input gradient"),
        },
        Kernel::Sgd {
            elem,
            len,
            lr_scale,
            momentum,
            weight_decay,
            qas,
            stochastic_seed,
            scales,
            zero_points,
            inner,
            accumulate,
            slice,
        } => sgd::print(
            &sgd::Sgd {
                elem: *elem,
                len: *len,
                lr_scale: *lr_scale,
                momentum: *momentum,
                weight_decay: *weight_decay,
                qas: *qas,
                stochastic_seed: *stochastic_seed,
                scales,
                zero_points,
                inner: *inner,
                accumulate: *accumulate,
                slice: slice.as_ref(),
            },
            o,
            globals,
            body,
        )?,
        Kernel::BottleneckInt8 {
            expand,
            depthwise,
            project,
        } => {
            let mut stages = Vec::with_capacity(3);
            for (suffix, k) in [("e", expand), ("d", depthwise), ("p", project)] {
                match conv::params_init(k, &format!("{p}_{suffix}"), globals) {
                    Some(init) => stages.push(init),
                    None => return Err("a bottleneck stage that is not an int8 convolution"),
                }
            }
            let _ = writeln!(
                globals,
                "static const mite_bottleneck_int8_params {p} = {{\n{},\n{},\n{}\n}};\n",
                stages[0], stages[1], stages[2]
            );
            let ins: Vec<(String, usize)> = (0..7)
                .map(|i| o.ins.get(i).cloned().unwrap_or_default())
                .collect();
            let (s, sn) = o.scratch.clone().unwrap_or_default();
            let mut fields = String::new();
            for (i, name) in BOTTLENECK_WEIGHTS.iter().enumerate() {
                let (e, n) = &ins[i + 1];
                let _ = write!(
                    fields,
                    "        w.{name} = {e};\n        w.{name}_len = {n}u;\n"
                );
            }
            let _ = writeln!(
                body,
                "    if (st == MITE_OK) {{\n        mite_bottleneck_int8_weights w;\n{fields}        \
                 st = mite_bottleneck_int8({i0}, {i0n}u, &w, {y}, {yn}u, {s}, {sn}u, &{p});\n    }}"
            );
        }
        Kernel::BottleneckChainInt8 {
            first,
            second,
            in_place,
        } => {
            let mut blocks = Vec::with_capacity(2);
            for (b, k) in [("a", first), ("b", second)] {
                let Kernel::BottleneckInt8 {
                    expand,
                    depthwise,
                    project,
                } = &**k
                else {
                    return Err("a bottleneck chain block that is not a bottleneck");
                };
                let mut stages = Vec::with_capacity(3);
                for (suffix, k) in [("e", expand), ("d", depthwise), ("p", project)] {
                    match conv::params_init(k, &format!("{p}_{b}{suffix}"), globals) {
                        Some(init) => stages.push(init),
                        None => return Err("a bottleneck stage that is not an int8 convolution"),
                    }
                }
                blocks.push(format!(
                    "{{\n{},\n{},\n{}\n}}",
                    stages[0], stages[1], stages[2]
                ));
            }
            let _ = writeln!(
                globals,
                "static const mite_bottleneck_chain_int8_params {p} = {{\n{},\n{}\n}};\n",
                blocks[0], blocks[1]
            );
            let ins: Vec<(String, usize)> = (0..13)
                .map(|i| o.ins.get(i).cloned().unwrap_or_default())
                .collect();
            let (s, sn) = o.scratch.clone().unwrap_or_default();
            let mut fields = String::new();
            for b in 0..2 {
                for (i, name) in BOTTLENECK_WEIGHTS.iter().enumerate() {
                    let (e, n) = &ins[1 + 6 * b + i];
                    let _ = write!(
                        fields,
                        "        w[{b}].{name} = {e};\n        w[{b}].{name}_len = {n}u;\n"
                    );
                }
            }
            // In place, the input is consumed and the output left at its offset (y == i0).
            let run = if *in_place {
                format!("mite_bottleneck_chain_int8_in_place({i0}, {i0n}u, w, {s}, {sn}u, &{p})")
            } else {
                format!("mite_bottleneck_chain_int8({i0}, {i0n}u, w, {y}, {yn}u, {s}, {sn}u, &{p})")
            };
            let _ = writeln!(
                body,
                "    if (st == MITE_OK) {{\n        mite_bottleneck_int8_weights w[2];\n{fields}        \
                 st = {run};\n    }}"
            );
        }
        Kernel::AddInt8 { params: a, .. } => {
            let [ma, mb] = a.input_multipliers;
            let _ = writeln!(
                globals,
                "static const mite_add_params {p} = {{{}, {}, {}, {{{}, {}}}, {}, {{{}, {}}}, {}}};\n",
                quant_init(&a.a),
                quant_init(&a.b),
                quant_init(&a.out),
                a.range.min,
                a.range.max,
                rounding_c(a.rounding),
                pair_init(ma),
                pair_init(mb),
                pair_init(a.output_multiplier),
            );
            guarded(
                body,
                &format!("mite_add_int8({i0}, {i0n}u, {i1}, {i1n}u, {y}, {yn}u, &{p})"),
            );
        }
        Kernel::GlobalAvgPoolInt8 { dims, rounding } => {
            let _ = writeln!(
                globals,
                "static const size_t {p}_dims[4] = {};",
                dims_init(dims)
            );
            guarded(
                body,
                &format!(
                    "mite_global_avg_pool_int8({i0}, {i0n}u, {p}_dims, {}, {y}, {yn}u)",
                    rounding_c(*rounding)
                ),
            );
        }
        Kernel::MeanInt8 { dims, params: m } => {
            let _ = writeln!(
                globals,
                "static const size_t {p}_dims[4] = {};\n\
                 static const mite_mean_params {p} = {{{}, {}, {}, {}, {}}};\n",
                dims_init(dims),
                quant_init(&m.input),
                quant_init(&m.output),
                rounding_c(m.rounding),
                f64_lit(m.real),
                pair_init(m.multiplier),
            );
            guarded(
                body,
                &format!("mite_mean_int8({i0}, {i0n}u, {p}_dims, {y}, {yn}u, &{p})"),
            );
        }
        Kernel::Dequantize {
            scales,
            zero_points,
            inner,
            ..
        } => {
            per_axis(globals, p, scales, zero_points, *inner);
            guarded(
                body,
                &format!("mite_dequantize({i0}, {i0n}u, {y}, {yn}u, &{p}_pa)"),
            );
        }
        Kernel::MaskInt8 { len, min, max } => {
            // The executor widens the int8 values to f32 and makes the f32 mask.
            let _ = writeln!(
                body,
                "    if (st == MITE_OK) {{\n        \
                 const int8_t *x = {i0};\n        uint32_t *bits = {y};\n        size_t w;\n        \
                 for (w = 0; w < {yn}u; w++) {{\n            uint32_t word = 0u;\n            size_t b;\n            \
                 for (b = 0; b < 32u && w * 32u + b < {len}u; b++) {{\n                \
                 float v = (float)x[w * 32u + b];\n                \
                 if ({lo} < v && v < {hi}) {{\n                    word |= (uint32_t)1u << b;\n                }}\n            }}\n            \
                 bits[w] = word;\n        }}\n    }}",
                lo = f32_lit(*min),
                hi = f32_lit(*max),
            );
        }
        Kernel::MaskF32 { min, max, .. } => guarded(
            body,
            &format!(
                "mite_make_mask_f32({i0}, {i0n}u, {y}, {yn}u, {}, {})",
                f32_lit(*min),
                f32_lit(*max)
            ),
        ),
        Kernel::ApplyMask { .. } => guarded(
            body,
            &format!("mite_apply_mask_f32({i0}, {i0n}u, {i1}, {i1n}u, {y}, {yn}u)"),
        ),
        Kernel::AddF32 { len } => {
            let _ = writeln!(
                body,
                "    if (st == MITE_OK) {{\n        \
                 const float *a = {i0};\n        const float *b = {i1};\n        float *y = {y};\n        \
                 size_t i;\n        for (i = 0; i < {len}u; i++) {{\n            y[i] = a[i] + b[i];\n        }}\n    }}"
            );
        }
        Kernel::Slice {
            elem,
            outer,
            channels,
            inner,
            start,
            size,
        } => {
            let ty = c_type(*elem);
            let _ = writeln!(
                body,
                "    if (st == MITE_OK) {{\n        \
                 const {ty} *x = {i0};\n        {ty} *y = {y};\n        size_t o;\n        \
                 for (o = 0; o < {outer}u; o++) {{\n            \
                 memmove(y + o * {run}u, x + o * {stride}u + {first}u, {run}u * sizeof *y);\n        }}\n    }}",
                run = size * inner,
                stride = channels * inner,
                first = start * inner,
            );
        }
        Kernel::ConvBackwardInput { geometry } => {
            let _ = writeln!(
                globals,
                "static const mite_conv2d_geometry {p}_g = {};\n",
                geometry_init(geometry)
            );
            guarded(
                body,
                &format!(
                    "mite_conv2d_backward_input_f32({i0}, {i0n}u, {i1}, {i1n}u, {y}, {yn}u, &{p}_g)"
                ),
            );
        }
        Kernel::ConvBackwardInputInt8 {
            geometry,
            scales,
            zero_points,
            inner,
        } => {
            // The int8 weight read at its real value tap by tap (no dequantized copy).
            let _ = writeln!(
                globals,
                "static const mite_conv2d_geometry {p}_g = {};",
                geometry_init(geometry)
            );
            per_axis(globals, p, scales, zero_points, *inner);
            guarded(
                body,
                &format!(
                    "mite_conv2d_backward_input_int8w({i0}, {i0n}u, {i1}, {i1n}u, &{p}_pa, {y}, {yn}u, &{p}_g)"
                ),
            );
        }
        Kernel::ConvBackwardInputInt8InPlace {
            geometry,
            scales,
            zero_points,
            inner,
        } => {
            let _ = writeln!(
                globals,
                "static const mite_conv2d_geometry {p}_g = {};",
                geometry_init(geometry)
            );
            per_axis(globals, p, scales, zero_points, *inner);
            let (s, sn) = o.scratch.clone().unwrap_or_default();
            guarded(
                body,
                &format!(
                    "mite_conv2d_backward_input_int8w_inplace({y}, {yn}u, {i0}, {i0n}u, &{p}_pa, {s}, {sn}u, &{p}_g)"
                ),
            );
        }
        Kernel::ConvBackwardWeight { geometry } => {
            let _ = writeln!(
                globals,
                "static const mite_conv2d_geometry {p}_g = {};\n",
                geometry_init(geometry)
            );
            guarded(
                body,
                &format!(
                    "mite_conv2d_backward_weight_f32({i0}, {i0n}u, {i1}, {i1n}u, {y}, {yn}u, &{p}_g)"
                ),
            );
        }
        Kernel::ConvWeightSgd { geometry, update } => {
            if !conv_weight_sgd(geometry, update, o, globals, body) {
                return Err(
                    "a fused weight update other than an f32 / i8 sgd without accumulation",
                );
            }
        }
        Kernel::BottleneckBackward { .. } => bottleneck_backward(kernel, o, globals, body)?,
        Kernel::ConvBackwardBias { dims } => {
            let [n, c, h, w] = *dims;
            let _ = writeln!(
                globals,
                "static const mite_conv2d_geometry {p}_g = {{{n}u, {c}u, {{{h}u, {w}u}}, {c}u, 1u,\n     \
                 {{{{1u, 1u}}, {{1u, 1u}}, {{0u, 0u, 0u, 0u}}, {{1u, 1u}}}}, {{{h}u, {w}u}}}};\n"
            );
            guarded(
                body,
                &format!("mite_conv2d_backward_bias_f32({i0}, {i0n}u, {y}, {yn}u, &{p}_g)"),
            );
        }
        Kernel::GlobalAvgPoolBackward { dims } => {
            let _ = writeln!(
                globals,
                "static const size_t {p}_dims[4] = {};",
                dims_init(dims)
            );
            guarded(
                body,
                &format!("mite_global_avg_pool_backward_f32({i0}, {i0n}u, {p}_dims, {y}, {yn}u)"),
            );
        }
        Kernel::SoftmaxCrossEntropy { batch, classes } => {
            let (s, sn) = o.scratch.clone().unwrap_or_default();
            guarded(
                body,
                &format!(
                    "mite_softmax_cross_entropy_f32({i0}, {i0n}u, {i1}, {i1n}u, {s}, {sn}u, {batch}u, {classes}u, {y})"
                ),
            );
        }
        Kernel::SoftmaxCrossEntropyBackward { batch, classes } => {
            let (g, _) = o.ins.get(2).cloned().unwrap_or_default();
            guarded(
                body,
                &format!(
                    "mite_softmax_cross_entropy_backward_f32({i0}, {i0n}u, {i1}, {i1n}u, ({g})[0], {y}, {yn}u, {batch}u, {classes}u)"
                ),
            );
        }
    }
    Ok(())
}

/// A [`Kernel::ConvWeightSgd`]: `mite_conv2d_weight_sgd_{f32,i8}` with the update's constants
/// (`false` when the update is not an `sgd` of an `f32` / `i8` parameter without accumulation).
fn conv_weight_sgd(
    geometry: &Conv2dGeometry,
    update: &Kernel,
    o: &Operands,
    globals: &mut String,
    body: &mut String,
) -> bool {
    let Kernel::Sgd {
        elem,
        len,
        lr_scale,
        momentum,
        weight_decay,
        qas,
        stochastic_seed,
        scales,
        zero_points,
        inner,
        accumulate: 1,
        slice,
    } = update
    else {
        return false;
    };
    let p = &o.prefix;
    let (func, cq) = match elem {
        BufElem::F32 => ("mite_conv2d_weight_sgd_f32", String::new()),
        BufElem::I8 => {
            let _ = writeln!(
                globals,
                "static const float {p}_scales[] = {{{}}};\n\
                 static const int32_t {p}_zero_points[] = {{{}}};\n\
                 static const mite_channel_quant {p}_cq = {{{p}_scales, {p}_zero_points, {}u, {inner}u}};",
                elements(scales, |v| f32_lit(*v)),
                elements(zero_points, |v| i32_lit(*v)),
                scales.len()
            );
            ("mite_conv2d_weight_sgd_i8", format!(" &{p}_cq,"))
        }
        _ => return false,
    };
    let _ = writeln!(
        globals,
        "static const mite_conv2d_geometry {p}_g = {};",
        geometry_init(geometry)
    );
    let view = match slice {
        Some(s) => {
            let _ = writeln!(
                globals,
                "static const mite_slice_view {p}_sv = {{{}u, {}u, {}u, {}u, {}u}};",
                len / (s.channels * s.inner).max(1),
                s.channels,
                s.inner,
                s.start,
                s.count
            );
            format!("&{p}_sv")
        }
        None => "NULL".to_owned(),
    };
    globals.push('\n');
    let ((x, xn), (dy, dyn_)) = (o.ins[0].clone(), o.ins[1].clone());
    let ((lr, _), (step, _)) = (o.ins[2].clone(), o.ins[3].clone());
    let (q, qn) = o.outs[0].clone();
    // The executor uses the momentum state only when momentum > 0.
    let m = match o.outs.get(1) {
        Some((m, mn)) if *momentum > 0.0 => format!("{m}, {mn}u"),
        _ => "NULL, 0u".to_owned(),
    };
    let Some((s, sn)) = o.scratch.clone() else {
        return false;
    };
    let _ = writeln!(
        body,
        "    if (st == MITE_OK) {{\n        mite_sgd_params p;\n        \
         p.eta = ({lr})[0] * {lrs};\n        p.momentum = {mom};\n        p.weight_decay = {wd};\n        \
         p.qas = {qas};\n        p.rounding.stochastic = {sto};\n        p.rounding.seed = {seed};\n        \
         p.rounding.step = ({step})[0];\n        \
         st = {func}({x}, {xn}u, {dy}, {dyn_}u, &{p}_g, {view}, {q}, {qn}u, {m},{cq} &p, {s}, {sn}u);\n    }}",
        lrs = f32_lit(*lr_scale),
        mom = f32_lit(*momentum),
        wd = f32_lit(*weight_decay),
        qas = i32::from(*qas),
        sto = i32::from(stochastic_seed.is_some()),
        seed = i64_lit(stochastic_seed.unwrap_or(0)),
    );
    true
}

/// A [`Kernel::BottleneckBackward`]: `mite_bottleneck_backward` with its constants (operands
/// and results in the kernel's order: see its documentation).
fn bottleneck_backward(
    kernel: &Kernel,
    o: &Operands,
    globals: &mut String,
    body: &mut String,
) -> Result<(), &'static str> {
    const BAD: &str = "a bottleneck_backward whose parts do not chain";
    let Kernel::BottleneckBackward {
        project,
        depthwise,
        expand,
        dx,
        depthwise_bias,
        expand_bias,
        update,
        kept,
    } = kernel
    else {
        return Err(BAD);
    };
    let [gp, gd, _] = mite_ir::program::bottleneck_backward_parts(kernel).ok_or(BAD)?;
    let p = &o.prefix;
    let mut quant = |k: &Kernel, suffix: &str| match k {
        Kernel::ConvBackwardInputInt8 {
            scales,
            zero_points,
            inner,
            ..
        }
        | Kernel::Dequantize {
            scales,
            zero_points,
            inner,
            ..
        } => {
            per_axis(
                globals,
                &format!("{p}_{suffix}"),
                scales,
                zero_points,
                *inner,
            );
            Ok(format!("&{p}_{suffix}_pa"))
        }
        _ => Err(BAD),
    };
    let (pw, dw) = (quant(project, "p")?, quant(depthwise, "d")?);
    let ew = match dx.as_deref() {
        Some(k) => quant(k, "e")?,
        None => "NULL".to_owned(),
    };
    let xq = match update {
        Some((deq, _)) => Some(quant(deq, "x")?),
        None => None,
    };
    let _ = writeln!(
        globals,
        "static const mite_bottleneck_backward_params {p}_bb = {{\n    {},\n    {},\n    {},\n    \
         {pw}, {dw}, {ew}, {}u}};\n",
        geometry_init(&gp),
        geometry_init(&gd),
        geometry_init(expand),
        kept.unwrap_or(0),
    );
    let input = |i: usize| o.ins.get(i).cloned().ok_or(BAD);
    let mut outs = o.outs.iter().cloned();
    let (mut pre, u) = (String::new(), if update.is_some() { "&u" } else { "NULL" });
    // The frozen weight read by dx alone, or a split weight's frozen remainder (after `step`).
    let (frozen, frozen_n) = match (update, dx, kept) {
        (None, Some(_), _) => input(5)?,
        (Some(_), _, Some(_)) => input(8)?,
        _ => ("NULL".to_owned(), 0),
    };
    if let (Some((_, sgd)), Some(xq)) = (update, xq) {
        let Kernel::ConvWeightSgd { update: rule, .. } = sgd.as_ref() else {
            return Err(BAD);
        };
        let Kernel::Sgd {
            lr_scale,
            momentum,
            weight_decay,
            qas,
            stochastic_seed,
            scales,
            zero_points,
            inner,
            ..
        } = rule.as_ref()
        else {
            return Err(BAD);
        };
        let _ = writeln!(
            globals,
            "static const float {p}_u_scales[] = {{{}}};\n\
             static const int32_t {p}_u_zero_points[] = {{{}}};\n\
             static const mite_channel_quant {p}_cq = {{{p}_u_scales, {p}_u_zero_points, {}u, {inner}u}};\n",
            elements(scales, |v| f32_lit(*v)),
            elements(zero_points, |v| i32_lit(*v)),
            scales.len()
        );
        let ((x, xn), (lr, _), (step, _)) = (input(5)?, input(6)?, input(7)?);
        let (w, wn) = outs.next().ok_or(BAD)?;
        let m_buf = if *momentum != 0.0 { outs.next() } else { None };
        // The executor uses the momentum state only when momentum > 0.
        let (m, mn) = match m_buf {
            Some((m, mn)) if *momentum > 0.0 => (m, mn),
            _ => ("NULL".to_owned(), 0),
        };
        let _ = write!(
            pre,
            "        sp.eta = ({lr})[0] * {lrs};\n        sp.momentum = {mom};\n        \
             sp.weight_decay = {wd};\n        sp.qas = {qas};\n        sp.rounding.stochastic = {sto};\n        \
             sp.rounding.seed = {seed};\n        sp.rounding.step = ({step})[0];\n        \
             u.x = {x};\n        u.x_len = {xn}u;\n        u.x_quant = {xq};\n        u.w = {w};\n        \
             u.w_len = {wn}u;\n        u.m = {m};\n        u.m_len = {mn}u;\n        u.cq = &{p}_cq;\n        \
             u.sgd = &sp;\n",
            lrs = f32_lit(*lr_scale),
            mom = f32_lit(*momentum),
            wd = f32_lit(*weight_decay),
            qas = i32::from(*qas),
            sto = i32::from(stochastic_seed.is_some()),
            seed = i64_lit(stochastic_seed.unwrap_or(0)),
        );
    }
    for (field, present) in [
        ("dx", dx.is_some()),
        ("db_depthwise", *depthwise_bias),
        ("db_expand", *expand_bias),
    ] {
        let (e, n) = if present {
            outs.next().ok_or(BAD)?
        } else {
            ("NULL".to_owned(), 0)
        };
        let _ = write!(
            pre,
            "        g.{field} = {e};\n        g.{field}_len = {n}u;\n"
        );
    }
    let ins: Vec<(String, usize)> = (0..5).map(input).collect::<Result<_, _>>()?;
    let (s, sn) = o.scratch.clone().ok_or(BAD)?;
    let _ = writeln!(
        body,
        "    if (st == MITE_OK) {{\n        mite_bottleneck_backward_update u;\n        \
         mite_bottleneck_backward_grads g;\n        mite_sgd_params sp;\n{pre}        (void)u;\n        (void)sp;\n        \
         st = mite_bottleneck_backward({}, {}u, {}, {}u, {}, {}u, {}, {}u, {}, {}u, {frozen}, {frozen_n}u, {u}, &g, {s}, {sn}u, &{p}_bb);\n    }}",
        ins[0].0, ins[0].1, ins[1].0, ins[1].1, ins[2].0, ins[2].1, ins[3].0, ins[3].1, ins[4].0,
        ins[4].1,
    );
    Ok(())
}
