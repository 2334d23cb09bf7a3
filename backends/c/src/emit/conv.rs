//! The C of the int8 convolution (`Kernel::ConvInt8`): its requantization tables and parameter
//! struct as `const` globals, one `mite_conv2d_int8` call. The streamed bottleneck's stages use
//! the same parameter structs ([`params_init`]).

use std::fmt::Write as _;

use mite_ir::program::Kernel;
use mite_kernels::int8::BiasAdd;

use super::arms::{geometry_init, guarded, Operands};
use super::literal::{elements, f64_lit, i32_lit};
use super::rounding_c;

/// A `mite_conv2d_int8_params` initialiser of a [`Kernel::ConvInt8`] (`None` for any other
/// kernel); its requantization tables are printed into `globals` as `{prefix}_scales`,
/// `{prefix}_multipliers`, `{prefix}_shifts` and `{prefix}_w_zp`.
pub(super) fn params_init(kernel: &Kernel, prefix: &str, globals: &mut String) -> Option<String> {
    let Kernel::ConvInt8 {
        geometry,
        x_zero_point,
        w_zero_points,
        scales,
        multipliers,
        shifts,
        out_zero_point,
        range,
        rounding,
        ..
    } = kernel
    else {
        return None;
    };
    let _ = writeln!(
        globals,
        "static const double {prefix}_scales[] = {{{}}};\n\
         static const int32_t {prefix}_multipliers[] = {{{}}};\n\
         static const int32_t {prefix}_shifts[] = {{{}}};",
        elements(scales, |v| f64_lit(*v)),
        elements(multipliers, |v| i32_lit(*v)),
        elements(shifts, |v| i32_lit(*v)),
    );
    let zps = if w_zero_points.is_empty() {
        "NULL".to_owned()
    } else {
        let _ = writeln!(
            globals,
            "static const int8_t {prefix}_w_zp[] = {{{}}};",
            elements(w_zero_points, |v| v.to_string())
        );
        format!("{prefix}_w_zp")
    };
    let bias_add = match BiasAdd::for_rounding(*rounding) {
        BiasAdd::Saturating => "MITE_BIAS_SATURATING",
        BiasAdd::Wrapping => "MITE_BIAS_WRAPPING",
    };
    Some(format!(
        "{{\n    {},\n    {x_zero_point}, {zps}, {}u,\n    \
         {{{{{}, {}u, {prefix}_scales, {prefix}_multipliers, {prefix}_shifts}}, {out_zero_point}, {{{}, {}}}}},\n    \
         {bias_add}}}",
        geometry_init(geometry),
        w_zero_points.len(),
        rounding_c(*rounding),
        scales.len(),
        range.min,
        range.max,
    ))
}

/// Prints the call of a [`Kernel::ConvInt8`] (operands: input, weight, optional bias; result;
/// scratch).
pub(super) fn print(
    kernel: &Kernel,
    o: &Operands,
    globals: &mut String,
    body: &mut String,
) -> Result<(), &'static str> {
    let Kernel::ConvInt8 { bias, .. } = kernel else {
        return Err("not an int8 convolution");
    };
    let p = &o.prefix;
    let init = params_init(kernel, p, globals).ok_or("not an int8 convolution")?;
    let _ = writeln!(
        globals,
        "static const mite_conv2d_int8_params {p} = {init};\n"
    );
    let (x, xn) = &o.ins[0];
    let (w, wn) = &o.ins[1];
    let (b, bn) = if *bias {
        o.ins[2].clone()
    } else {
        ("NULL".to_owned(), 0)
    };
    let (y, yn) = &o.outs[0];
    let (s, sn) = o.scratch.clone().unwrap_or_default();
    guarded(
        body,
        &format!(
            "mite_conv2d_int8({x}, {xn}u, {w}, {wn}u, {b}, {bn}u, {y}, {yn}u, {s}, {sn}u, &{p})"
        ),
    );
    Ok(())
}

/// A `mite_split_weight` initialiser of a split-weight call's operands 1 (trained) and 2
/// (frozen).
pub(super) fn split_weight_init(o: &Operands, kept: usize) -> String {
    let (t, tn) = o.ins.get(1).cloned().unwrap_or_default();
    let (f, f_n) = o.ins.get(2).cloned().unwrap_or_default();
    format!("{{{t}, {tn}u, {f}, {f_n}u, {kept}u}}")
}

/// Prints the call of a [`Kernel::ConvInt8`] whose weight is split (`Kernel::SplitWeight`;
/// operands: input, trained slice, frozen remainder, optional bias; result; scratch: the
/// accumulator plane then the gathered rows).
pub(super) fn print_split(
    kernel: &Kernel,
    kept: usize,
    o: &Operands,
    globals: &mut String,
    body: &mut String,
) -> Result<(), &'static str> {
    let Kernel::ConvInt8 { geometry, bias, .. } = kernel else {
        return Err("not an int8 convolution");
    };
    let p = &o.prefix;
    let init = params_init(kernel, p, globals).ok_or("not an int8 convolution")?;
    let _ = writeln!(
        globals,
        "static const mite_conv2d_int8_params {p} = {init};\n"
    );
    let (x, xn) = &o.ins[0];
    let (b, bn) = if *bias {
        o.ins[3].clone()
    } else {
        ("NULL".to_owned(), 0)
    };
    let (y, yn) = &o.outs[0];
    let (s, sn) = o
        .scratch
        .clone()
        .ok_or("a split convolution without scratch")?;
    let plane = geometry.out_plane();
    let gather = sn
        .checked_sub(plane)
        .ok_or("a split convolution's scratch is too short")?
        * 4;
    let w = split_weight_init(o, kept);
    let _ = writeln!(
        body,
        "    if (st == MITE_OK) {{\n        const mite_split_weight w = {w};\n        \
         st = mite_conv2d_int8_split({x}, {xn}u, &w, {b}, {bn}u, {y}, {yn}u, {s}, {plane}u, \
         (int8_t *)(void *)({s} + {plane}u), {gather}u, &{p});\n    }}"
    );
    Ok(())
}
