//! The kernels a [`Call`](super::Call) can make, with their parameters resolved at compile time.
//!
//! Each variant corresponds to one `mite-kernels` function (or one fixed sequence of them); its
//! fields are the owned form of that kernel's parameter struct (per-channel tables as `Vec`s), so
//! the executor, the C emitter and the Rust emitter build the borrowed parameter structs from
//! them without recomputing anything. [`Kernel::signature`] gives the element type and length of
//! every operand, result and scratch buffer, which the verifier checks.

use mite_kernels::requant::{ActRange, Rounding};
use mite_kernels::Conv2dGeometry;

use super::BufElem;

/// An attribute value in the text form of a call.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelAttr {
    /// An integer.
    Int(i64),
    /// A float (printed with enough digits to round-trip).
    F32(f32),
    /// A double (printed with enough digits to round-trip).
    F64(f64),
    /// A flag.
    Bool(bool),
    /// A word (an enum value such as a rounding mode).
    Word(&'static str),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A list of floats.
    F32s(Vec<f32>),
    /// A list of doubles.
    F64s(Vec<f64>),
}

/// What a call's buffers must be: `(element type, length)` of each operand, result and scratch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Signature {
    /// Operands, in order.
    pub inputs: Vec<(BufElem, usize)>,
    /// Results, in order.
    pub outputs: Vec<(BufElem, usize)>,
    /// Scratch, if the kernel needs any.
    pub scratch: Option<(BufElem, usize)>,
}

/// One kernel with its resolved parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    /// `mite_kernels::int8::conv2d_int8`: `(x: i8, w: i8[, bias: i32]) -> y: i8`, scratch `i32`.
    ConvInt8 {
        /// Geometry.
        geometry: Conv2dGeometry,
        /// Input zero point.
        x_zero_point: i8,
        /// Weight zero points (empty: symmetric).
        w_zero_points: Vec<i8>,
        /// Real requantization factors, one per output channel or one.
        scales: Vec<f64>,
        /// Their fixed-point multipliers.
        multipliers: Vec<i32>,
        /// Their shifts.
        shifts: Vec<i32>,
        /// Output zero point.
        out_zero_point: i8,
        /// Output clamp.
        range: ActRange,
        /// Rounding mode.
        rounding: Rounding,
        /// Whether a bias operand is given.
        bias: bool,
    },
    /// The SGD / QAS update of a parameter (`mite_kernels::sgd`): operands `(grad: f32)`,
    /// in-place results `(param[, momentum])`.
    Sgd {
        /// The parameter's element type.
        elem: BufElem,
        /// The parameter's length.
        len: usize,
        /// `lr_scale`: `η = lr · lr_scale`, with `lr` the entry's learning-rate argument.
        lr_scale: f32,
        /// Momentum (0: none).
        momentum: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Quantization-aware scaling.
        qas: bool,
        /// Stochastic rounding of integer parameters with this seed (`None`: half to even).
        stochastic_seed: Option<i64>,
        /// Per-channel scales of an integer parameter (empty for `f32`).
        scales: Vec<f32>,
        /// Per-channel zero points of an integer parameter.
        zero_points: Vec<i32>,
        /// Elements per channel step (the product of the dims after the channel axis).
        inner: usize,
    },
}

impl Kernel {
    /// The kernel's text name.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::ConvInt8 { .. } => "conv2d_int8",
            Kernel::Sgd { .. } => "sgd",
        }
    }

    /// Its attributes, in print order.
    pub fn attrs(&self) -> Vec<(&'static str, KernelAttr)> {
        use KernelAttr as A;
        let ints = |v: &[usize]| A::Ints(v.iter().map(|&x| x as i64).collect());
        match self {
            Kernel::ConvInt8 {
                geometry: g,
                x_zero_point,
                w_zero_points,
                scales,
                multipliers,
                shifts,
                out_zero_point,
                range,
                rounding,
                bias,
            } => {
                let w = g.window();
                vec![
                    ("in", ints(&[g.n(), g.c_in(), g.in_hw()[0], g.in_hw()[1]])),
                    (
                        "out",
                        ints(&[g.n(), g.c_out(), g.out_hw()[0], g.out_hw()[1]]),
                    ),
                    ("kernel", ints(&w.kernel)),
                    ("strides", ints(&w.strides)),
                    ("pads", ints(&w.pads)),
                    ("dilations", ints(&w.dilations)),
                    ("groups", A::Int(g.groups() as i64)),
                    ("x_zp", A::Int(i64::from(*x_zero_point))),
                    (
                        "w_zp",
                        A::Ints(w_zero_points.iter().map(|&z| i64::from(z)).collect()),
                    ),
                    ("scales", A::F64s(scales.clone())),
                    (
                        "multipliers",
                        A::Ints(multipliers.iter().map(|&m| i64::from(m)).collect()),
                    ),
                    (
                        "shifts",
                        A::Ints(shifts.iter().map(|&s| i64::from(s)).collect()),
                    ),
                    ("y_zp", A::Int(i64::from(*out_zero_point))),
                    (
                        "range",
                        A::Ints(vec![i64::from(range.min), i64::from(range.max)]),
                    ),
                    ("rounding", A::Word(rounding_name(*rounding))),
                    ("bias", A::Bool(*bias)),
                ]
            }
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
            } => vec![
                ("elem", A::Word(elem.name())),
                ("len", A::Int(*len as i64)),
                ("lr_scale", A::F32(*lr_scale)),
                ("momentum", A::F32(*momentum)),
                ("weight_decay", A::F32(*weight_decay)),
                ("qas", A::Bool(*qas)),
                (
                    "stochastic_seed",
                    stochastic_seed.map_or(A::Word("none"), A::Int),
                ),
                ("scales", A::F32s(scales.clone())),
                (
                    "zero_points",
                    A::Ints(zero_points.iter().map(|&z| i64::from(z)).collect()),
                ),
                ("inner", A::Int(*inner as i64)),
            ],
        }
    }

    /// The element types and lengths of the call's buffers.
    pub fn signature(&self) -> Signature {
        match self {
            Kernel::ConvInt8 {
                geometry: g, bias, ..
            } => {
                let mut inputs = vec![(BufElem::I8, g.input_len()), (BufElem::I8, g.weight_len())];
                if *bias {
                    inputs.push((BufElem::I32, g.c_out()));
                }
                Signature {
                    inputs,
                    outputs: vec![(BufElem::I8, g.output_len())],
                    scratch: Some((BufElem::I32, g.out_plane())),
                }
            }
            Kernel::Sgd {
                elem,
                len,
                momentum,
                ..
            } => {
                let mut outputs = vec![(*elem, *len)];
                if *momentum != 0.0 {
                    outputs.push((BufElem::F32, *len));
                }
                Signature {
                    inputs: vec![(BufElem::F32, *len)],
                    outputs,
                    scratch: None,
                }
            }
        }
    }

    /// Whether the kernel reads its results' previous contents (in-place updates).
    pub fn reads_outputs(&self) -> bool {
        matches!(self, Kernel::Sgd { .. })
    }
}

/// The text name of a rounding mode.
pub fn rounding_name(r: Rounding) -> &'static str {
    match r {
        Rounding::Double => "double",
        Rounding::Single => "single",
        Rounding::FloatScale => "float",
        Rounding::OnnxRuntime => "onnxruntime",
    }
}
