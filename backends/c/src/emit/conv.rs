//! The C of the int8 convolution (`Kernel::ConvInt8`): its requantization tables and parameter
//! struct as `const` globals, one `mite_conv2d_int8` call.

use std::fmt::Write as _;

use mite_kernels::int8::BiasAdd;
use mite_kernels::requant::{ActRange, Rounding};
use mite_kernels::Conv2dGeometry;

use super::arms::{geometry_init, guarded, Operands};
use super::literal::{elements, f64_lit, i32_lit};
use super::rounding_c;

/// The fields of a `Kernel::ConvInt8` the C call needs.
pub(super) struct ConvInt8<'a> {
    pub geometry: &'a Conv2dGeometry,
    pub x_zero_point: i8,
    pub w_zero_points: &'a [i8],
    pub scales: &'a [f64],
    pub multipliers: &'a [i32],
    pub shifts: &'a [i32],
    pub out_zero_point: i8,
    pub range: ActRange,
    pub rounding: Rounding,
    pub bias: bool,
}

/// Prints the call (operands: input, weight, optional bias; result; scratch).
pub(super) fn print(k: &ConvInt8<'_>, o: &Operands, globals: &mut String, body: &mut String) {
    let p = &o.prefix;
    let table = |globals: &mut String, suffix: &str, ty: &str, items: String| {
        let _ = writeln!(globals, "static const {ty} {p}_{suffix}[] = {{{items}}};");
    };
    table(
        globals,
        "scales",
        "double",
        elements(k.scales, |v| f64_lit(*v)),
    );
    table(
        globals,
        "multipliers",
        "int32_t",
        elements(k.multipliers, |v| i32_lit(*v)),
    );
    table(
        globals,
        "shifts",
        "int32_t",
        elements(k.shifts, |v| i32_lit(*v)),
    );
    let zps = if k.w_zero_points.is_empty() {
        "NULL".to_owned()
    } else {
        table(
            globals,
            "w_zp",
            "int8_t",
            elements(k.w_zero_points, |v| v.to_string()),
        );
        format!("{p}_w_zp")
    };
    let bias_add = match BiasAdd::for_rounding(k.rounding) {
        BiasAdd::Saturating => "MITE_BIAS_SATURATING",
        BiasAdd::Wrapping => "MITE_BIAS_WRAPPING",
    };
    let _ = writeln!(
        globals,
        "static const mite_conv2d_int8_params {p} = {{\n    {geometry},\n    \
         {xzp}, {zps}, {nzp}u,\n    \
         {{{{{rounding}, {nch}u, {p}_scales, {p}_multipliers, {p}_shifts}}, {yzp}, {{{lo}, {hi}}}}},\n    \
         {bias_add}\n}};\n",
        geometry = geometry_init(k.geometry),
        xzp = k.x_zero_point,
        nzp = k.w_zero_points.len(),
        rounding = rounding_c(k.rounding),
        nch = k.scales.len(),
        yzp = k.out_zero_point,
        lo = k.range.min,
        hi = k.range.max,
    );
    let (x, xn) = &o.ins[0];
    let (w, wn) = &o.ins[1];
    let (b, bn) = if k.bias {
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
}
