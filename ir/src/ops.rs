//! The closed op set, generated from one table.
//!
//! Each row of the `op_table!` macro invocation gives an op's Rust variant, its text name (with its dialect prefix),
//! its operand arity, its effect and its attributes with their defaults (`None` = required).
//! From that one table come the [`Op`] enum, names, arities, effects, and the conversion to and
//! from the generic attribute form used by the text format. Passes, gradient rules and kernels
//! match on [`Op`] exhaustively, so a new op without a rule is a compile error.
//!
//! Dialects: `nn.` float compute, `q.` int8 compute, `grad.` backward kernels (real-valued f32
//! gradients), `optim.` in-place parameter updates, and the builtins `param` / `const` that read
//! module globals. A later phase adds `mem.`. Any other dialect prefix
//! (`mydialect.op`) is a user's [`CustomOp`].
//!
//! Conventions: tensors are NCHW; `pads` of 2-D windows are `[top, left, bottom, right]`;
//! `nn.pad`'s `pads` are all begins then all ends (ONNX order); negative `axis` values count from
//! the end; `act_min` / `act_max` of `q.` ops are the clamp of the int8 output (folded ReLU).

use crate::attr::{Attr, AttrValue, Symbol};
use std::hash::{Hash, Hasher};
use thiserror::Error;

/// The comparable form of an op field: floats by their bits (for `Op`'s `Eq` and `Hash`).
trait FieldKey {
    /// What is compared and hashed.
    type Key<'a>: Eq + Hash
    where
        Self: 'a;
    /// The key of this field.
    fn key(&self) -> Self::Key<'_>;
}

impl FieldKey for f32 {
    type Key<'a> = u32;
    fn key(&self) -> u32 {
        self.to_bits()
    }
}

impl FieldKey for i64 {
    type Key<'a> = i64;
    fn key(&self) -> i64 {
        *self
    }
}

impl FieldKey for bool {
    type Key<'a> = bool;
    fn key(&self) -> bool {
        *self
    }
}

impl FieldKey for Vec<i64> {
    type Key<'a> = &'a [i64];
    fn key(&self) -> &[i64] {
        self
    }
}

impl FieldKey for Option<Symbol> {
    type Key<'a> = Option<&'a str>;
    fn key(&self) -> Option<&str> {
        self.as_ref().map(|s| s.0.as_str())
    }
}

impl FieldKey for Symbol {
    type Key<'a> = &'a str;
    fn key(&self) -> &str {
        &self.0
    }
}

/// How many operands an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly this many.
    Exact(usize),
    /// Between the two bounds, inclusive.
    Range(usize, usize),
    /// At least this many.
    AtLeast(usize),
}

impl Arity {
    /// Whether `n` operands are accepted.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exact(k) => n == k,
            Arity::Range(lo, hi) => (lo..=hi).contains(&n),
            Arity::AtLeast(lo) => n >= lo,
        }
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arity::Exact(k) => write!(f, "{k}"),
            Arity::Range(lo, hi) => write!(f, "{lo} to {hi}"),
            Arity::AtLeast(lo) => write!(f, "at least {lo}"),
        }
    }
}

/// What an op does besides computing its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Nothing: the op may be removed when unused, merged with an identical one, or folded.
    Pure,
    /// Reads a module global (a parameter may later be written by an update).
    ReadGlobal,
    /// Writes module state or has effects the compiler does not know (custom ops): never removed
    /// or reordered across other effects.
    Write,
}

/// The module globals an op reads and writes (see [`Op::effects`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects<'a> {
    /// Globals read, by name.
    pub reads: Vec<&'a str>,
    /// Globals written, by name.
    pub writes: Vec<&'a str>,
    /// The op's effects are not known (custom ops): it may read or write any global.
    pub unknown: bool,
}

impl Effects<'_> {
    /// Whether the op may write global `name`.
    pub fn may_write(&self, name: &str) -> bool {
        self.unknown || self.writes.contains(&name)
    }

    /// Whether the op may read global `name`.
    pub fn may_read(&self, name: &str) -> bool {
        self.unknown || self.reads.contains(&name)
    }
}

/// A user-defined op outside the built-in dialects (the escape hatch).
///
/// Its result types are taken as declared; it is treated as having unknown effects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CustomOp {
    /// Full name with dialect prefix, e.g. `acme.fft`.
    pub name: String,
    /// Attributes in the order given.
    pub attrs: Vec<(String, Attr)>,
}

/// Dialect prefixes reserved for built-in ops.
pub const RESERVED_DIALECTS: &[&str] = &["nn", "q", "grad", "optim", "mem", "builtin"];

/// Why an op could not be built from a name and attributes.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum OpError {
    /// The name is not a built-in op and has no custom dialect prefix.
    #[error("unknown op `{0}` (built-in ops are listed by `mite ops`; custom ops need a dialect prefix outside nn, q, grad, optim, mem)")]
    UnknownOp(String),
    /// An attribute the op does not have.
    #[error("op `{op}` has no attribute `{attr}` (expected one of: {expected})")]
    UnknownAttr {
        /// The op.
        op: String,
        /// The attribute given.
        attr: String,
        /// The attributes the op has.
        expected: String,
    },
    /// A required attribute is missing.
    #[error("op `{op}` needs attribute `{attr}`")]
    MissingAttr {
        /// The op.
        op: String,
        /// The missing attribute.
        attr: &'static str,
    },
    /// An attribute value of the wrong kind.
    #[error("attribute `{attr}` of `{op}`: expected {expected}, found {found}")]
    BadAttr {
        /// The op.
        op: String,
        /// The attribute.
        attr: String,
        /// What the op expects.
        expected: &'static str,
        /// The kind given.
        found: &'static str,
    },
    /// The same attribute twice.
    #[error("attribute `{attr}` of `{op}` is given twice")]
    DuplicateAttr {
        /// The op.
        op: String,
        /// The attribute.
        attr: String,
    },
}

fn take_attr<T: AttrValue>(
    op: &str,
    attrs: &mut Vec<(String, Attr)>,
    name: &'static str,
    default: Option<T>,
) -> Result<T, OpError> {
    let Some(pos) = attrs.iter().position(|(k, _)| k == name) else {
        return default.ok_or(OpError::MissingAttr {
            op: op.to_string(),
            attr: name,
        });
    };
    let (_, value) = attrs.remove(pos);
    if attrs.iter().any(|(k, _)| k == name) {
        return Err(OpError::DuplicateAttr {
            op: op.to_string(),
            attr: name.to_string(),
        });
    }
    T::from_attr(&value).map_err(|expected| OpError::BadAttr {
        op: op.to_string(),
        attr: name.to_string(),
        expected,
        found: value.kind(),
    })
}

macro_rules! op_table {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident $name:literal ($arity:expr, $effect:ident) {
            $( $(#[doc = $fdoc:literal])+ $field:ident : $fty:ty = $default:expr ),* $(,)?
        }
    )*) => {
        /// An operation of the closed op set (see the module documentation).
        ///
        /// Equality and hashing compare float attributes by their bits, so ops can key maps
        /// (CSE, e-graphs).
        #[derive(Clone, Debug)]
        pub enum Op {
            $(
                $(#[doc = $doc])+
                $variant { $( $(#[doc = $fdoc])+ $field: $fty, )* },
            )*
            /// A user-defined op (see [`CustomOp`]).
            Custom(CustomOp),
        }

        impl PartialEq for Op {
            #[allow(clippy::unit_cmp, clippy::let_unit_value)]
            fn eq(&self, other: &Op) -> bool {
                match self {
                    $(
                        Op::$variant { $($field),* } => {
                            let lhs = ($(FieldKey::key($field),)*);
                            match other {
                                Op::$variant { $($field),* } => lhs == ($(FieldKey::key($field),)*),
                                _ => false,
                            }
                        }
                    )*
                    Op::Custom(a) => matches!(other, Op::Custom(b) if a == b),
                }
            }
        }

        impl Eq for Op {}

        impl Hash for Op {
            fn hash<H: Hasher>(&self, state: &mut H) {
                std::mem::discriminant(self).hash(state);
                match self {
                    $(
                        #[allow(unused_variables)]
                        Op::$variant { $($field),* } => {
                            $(FieldKey::key($field).hash(state);)*
                        }
                    )*
                    Op::Custom(c) => c.hash(state),
                }
            }
        }

        /// The text names of all built-in ops, in table order.
        pub const BUILTIN_OP_NAMES: &[&str] = &[$($name),*];

        impl Op {
            /// The op's full text name, e.g. `nn.conv2d`.
            pub fn name(&self) -> &str {
                match self {
                    $(Op::$variant { .. } => $name,)*
                    Op::Custom(c) => &c.name,
                }
            }

            /// How many operands the op accepts (`None` for custom ops: any).
            pub fn arity(&self) -> Option<Arity> {
                match self {
                    $(Op::$variant { .. } => Some($arity),)*
                    Op::Custom(_) => None,
                }
            }

            /// The op's effect.
            pub fn effect(&self) -> Effect {
                match self {
                    $(Op::$variant { .. } => Effect::$effect,)*
                    Op::Custom(_) => Effect::Write,
                }
            }

            /// The attributes in their generic form, in table order.
            pub fn attrs(&self) -> Vec<(String, Attr)> {
                match self {
                    $(
                        #[allow(unused_variables)]
                        Op::$variant { $($field),* } => {
                            let attrs = [$((stringify!($field), $field.to_attr_opt())),*];
                            attrs
                                .into_iter()
                                .filter_map(|(k, v): (&str, Option<Attr>)| Some((k.to_string(), v?)))
                                .collect()
                        }
                    )*
                    Op::Custom(c) => c.attrs.clone(),
                }
            }

            /// The names of the attributes a built-in op has (empty for custom ops).
            pub fn attr_names(name: &str) -> &'static [&'static str] {
                match name {
                    $($name => &[$(stringify!($field)),*],)*
                    _ => &[],
                }
            }

            /// Builds an op from its text name and generic attributes, filling in defaults.
            ///
            /// A name outside the reserved dialects becomes a [`CustomOp`].
            pub fn from_parts(name: &str, attrs: Vec<(String, Attr)>) -> Result<Op, OpError> {
                #[allow(unused_mut)]
                let mut attrs = attrs;
                let op = match name {
                    $(
                        $name => Op::$variant {
                            $($field: take_attr::<$fty>(name, &mut attrs, stringify!($field), $default)?,)*
                        },
                    )*
                    _ => return custom_op(name, attrs),
                };
                if let Some((attr, _)) = attrs.into_iter().next() {
                    return Err(OpError::UnknownAttr {
                        op: name.to_string(),
                        attr,
                        expected: Op::attr_names(name).join(", "),
                    });
                }
                Ok(op)
            }
        }
    };
}

fn custom_op(name: &str, attrs: Vec<(String, Attr)>) -> Result<Op, OpError> {
    let dialect = match name.split_once('.') {
        Some((d, rest)) if !d.is_empty() && !rest.is_empty() => d,
        _ => return Err(OpError::UnknownOp(name.to_string())),
    };
    if RESERVED_DIALECTS.contains(&dialect) {
        return Err(OpError::UnknownOp(name.to_string()));
    }
    for (i, (k, _)) in attrs.iter().enumerate() {
        if attrs[..i].iter().any(|(prev, _)| prev == k) {
            return Err(OpError::DuplicateAttr {
                op: name.to_string(),
                attr: k.clone(),
            });
        }
    }
    Ok(Op::Custom(CustomOp {
        name: name.to_string(),
        attrs,
    }))
}

/// The `expand_window` of a `q.bottleneck` whose first convolution is pointwise: unit strides,
/// no padding, unit dilations.
pub const POINTWISE_WINDOW: [i64; 8] = [1, 1, 0, 0, 0, 0, 1, 1];

/// A `q.bottleneck`'s `expand_window` split into `(strides, pads, dilations)` (2, 4 and 2
/// values), or `None` when it does not hold 8 values.
pub fn bottleneck_expand_window(window: &[i64]) -> Option<(&[i64], &[i64], &[i64])> {
    (window.len() == 8).then(|| (&window[0..2], &window[2..6], &window[6..8]))
}

/// The quantization `(scale, zero point)` of a streamed link between two bottlenecks.
pub type LinkQuant = (f32, i64);

impl Op {
    /// The two `q.bottleneck`s a `q.bottleneck_chain` fuses (the first one's clamp is the
    /// link's) and the quantization of the link; `None` for any other op or when a packed
    /// attribute has the wrong length.
    pub fn bottleneck_chain_parts(&self) -> Option<([Op; 2], LinkQuant)> {
        let Op::QBottleneckChain {
            expand_window,
            dw_windows,
            expand_scale,
            dw_scale,
            link_scale,
            expand2_scale,
            dw2_scale,
            zero_points,
            acts,
        } = self
        else {
            return None;
        };
        let ([z1, zd1, zl, z2, zd2], true, true) = (
            <[i64; 5]>::try_from(zero_points.as_slice()).ok()?,
            dw_windows.len() == 16,
            acts.len() == 12,
        ) else {
            return None;
        };
        let make =
            |block: usize, expand_window: Vec<i64>, [es, ds]: [f32; 2], [ez, dz]: [i64; 2]| {
                let w = &dw_windows[block * 8..][..8];
                let a = &acts[block * 6..][..6];
                Op::QBottleneck {
                    strides: w[0..2].to_vec(),
                    pads: w[2..6].to_vec(),
                    dilations: w[6..8].to_vec(),
                    expand_window,
                    expand_scale: es,
                    expand_zero_point: ez,
                    expand_act: a[0..2].to_vec(),
                    dw_scale: ds,
                    dw_zero_point: dz,
                    dw_act: a[2..4].to_vec(),
                    act_min: a[4],
                    act_max: a[5],
                }
            };
        let first = make(
            0,
            expand_window.clone(),
            [*expand_scale, *dw_scale],
            [z1, zd1],
        );
        let second = make(
            1,
            POINTWISE_WINDOW.to_vec(),
            [*expand2_scale, *dw2_scale],
            [z2, zd2],
        );
        Some(([first, second], (*link_scale, zl)))
    }

    /// The `q.bottleneck_chain` of two `q.bottleneck`s linked by a tensor of quantization
    /// `link`; `None` when either is not a `q.bottleneck` or the second's first convolution is
    /// not pointwise.
    pub fn bottleneck_chain(first: &Op, second: &Op, link: LinkQuant) -> Option<Op> {
        let parts = |op: &Op| match op {
            Op::QBottleneck {
                strides,
                pads,
                dilations,
                expand_window,
                expand_scale,
                expand_zero_point,
                expand_act,
                dw_scale,
                dw_zero_point,
                dw_act,
                act_min,
                act_max,
            } => Some((
                [strides.as_slice(), pads, dilations].concat(),
                expand_window.clone(),
                [*expand_scale, *dw_scale],
                [*expand_zero_point, *dw_zero_point],
                [expand_act.as_slice(), dw_act, &[*act_min, *act_max]].concat(),
            )),
            _ => None,
        };
        let (w1, expand_window, [es, ds], [ez, dz], acts1) = parts(first)?;
        let (w2, expand2_window, [es2, ds2], [ez2, dz2], acts2) = parts(second)?;
        let packed = w1.len() == 8 && w2.len() == 8 && acts1.len() == 6 && acts2.len() == 6;
        (packed && expand2_window == POINTWISE_WINDOW).then(|| Op::QBottleneckChain {
            expand_window,
            dw_windows: [w1, w2].concat(),
            expand_scale: es,
            dw_scale: ds,
            link_scale: link.0,
            expand2_scale: es2,
            dw2_scale: ds2,
            zero_points: vec![ez, dz, link.1, ez2, dz2],
            acts: [acts1, acts2].concat(),
        })
    }
}

fn ints(v: &[i64]) -> Option<Vec<i64>> {
    Some(v.to_vec())
}

op_table! {
    /// Reads parameter `global` (trainable or frozen) of the module.
    Param "param" (Arity::Exact(0), ReadGlobal) {
        /// The parameter read.
        global: Symbol = None,
    }
    /// Reads constant `global` of the module.
    Const "const" (Arity::Exact(0), Pure) {
        /// The constant read.
        global: Symbol = None,
    }

    /// 2-D convolution `(x [N,Ci,H,W], w [Co,Ci/groups,kh,kw], bias [Co]?) -> [N,Co,Ho,Wo]`, f32.
    Conv2d "nn.conv2d" (Arity::Range(2, 3), Pure) {
        /// Vertical and horizontal stride.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Vertical and horizontal dilation.
        dilations: Vec<i64> = ints(&[1, 1]),
        /// Groups; depthwise convolution has `groups` = channels.
        groups: i64 = Some(1),
    }
    /// Fully connected layer `(x [N,K], w [M,K], bias [M]?) -> [N,M]`, f32.
    Linear "nn.linear" (Arity::Range(2, 3), Pure) {}
    /// Matrix product `[..,M,K] · [..,K,N] -> [..,M,N]` (equal batch dimensions), f32.
    MatMul "nn.matmul" (Arity::Exact(2), Pure) {}
    /// Elementwise sum with numpy broadcasting, f32.
    Add "nn.add" (Arity::Exact(2), Pure) {}
    /// Elementwise product with numpy broadcasting, f32.
    Mul "nn.mul" (Arity::Exact(2), Pure) {}
    /// `max(x, 0)`, f32.
    Relu "nn.relu" (Arity::Exact(1), Pure) {}
    /// `min(max(x, min), max)`, f32; ReLU6 is `min = 0.0, max = 6.0`.
    Clip "nn.clip" (Arity::Exact(1), Pure) {
        /// Lower bound (may be `-inf`).
        min: f32 = Some(f32::NEG_INFINITY),
        /// Upper bound (may be `inf`).
        max: f32 = Some(f32::INFINITY),
    }
    /// Average pooling over windows, f32.
    AvgPool "nn.avg_pool" (Arity::Exact(1), Pure) {
        /// Window height and width.
        kernel: Vec<i64> = None,
        /// Vertical and horizontal stride.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Whether padded positions count in the divisor.
        count_include_pad: bool = Some(false),
    }
    /// Mean over the spatial dimensions `[N,C,H,W] -> [N,C,1,1]`, f32.
    GlobalAvgPool "nn.global_avg_pool" (Arity::Exact(1), Pure) {}
    /// Max pooling over windows (f32 or i8; keeps the quantization).
    MaxPool "nn.max_pool" (Arity::Exact(1), Pure) {
        /// Window height and width.
        kernel: Vec<i64> = None,
        /// Vertical and horizontal stride.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Vertical and horizontal dilation.
        dilations: Vec<i64> = ints(&[1, 1]),
    }
    /// Concatenation along `axis` (operands of one element type and quantization).
    Concat "nn.concat" (Arity::AtLeast(1), Pure) {
        /// The axis joined along.
        axis: i64 = None,
    }
    /// Reshape to `shape` (one entry may be -1: inferred); any element type.
    Reshape "nn.reshape" (Arity::Exact(1), Pure) {
        /// The new shape.
        shape: Vec<i64> = None,
    }
    /// Flatten to 2-D: dimensions before `axis` and from `axis` on; any element type.
    Flatten "nn.flatten" (Arity::Exact(1), Pure) {
        /// The first dimension of the second group.
        axis: i64 = Some(1),
    }
    /// Permutation of dimensions; any element type.
    Transpose "nn.transpose" (Arity::Exact(1), Pure) {
        /// Output dimension `i` is input dimension `perm[i]`.
        perm: Vec<i64> = None,
    }
    /// Constant padding, f32: `pads` holds all begins then all ends.
    Pad "nn.pad" (Arity::Exact(1), Pure) {
        /// `[b0, b1, .., e0, e1, ..]`.
        pads: Vec<i64> = None,
        /// The padding value.
        value: f32 = Some(0.0),
    }
    /// Softmax along `axis`, f32.
    Softmax "nn.softmax" (Arity::Exact(1), Pure) {
        /// The normalised axis.
        axis: i64 = Some(-1),
    }
    /// Log-softmax along `axis`, f32.
    LogSoftmax "nn.log_softmax" (Arity::Exact(1), Pure) {
        /// The normalised axis.
        axis: i64 = Some(-1),
    }
    /// Mean softmax cross-entropy `(logits [N,C] f32, labels [N] i32) -> scalar f32`.
    SoftmaxCrossEntropy "nn.softmax_cross_entropy" (Arity::Exact(2), Pure) {}
    /// Mean squared error `(prediction, target) -> scalar f32` over all elements.
    MseLoss "nn.mse_loss" (Arity::Exact(2), Pure) {}

    /// f32 → int8 (or int32): `clamp(round_half_even(x / scale) + zero_point)`; the result type
    /// carries the chosen quantization.
    Quantize "q.quantize" (Arity::Exact(1), Pure) {}
    /// int8 or int32 → f32: `scale · (q − zero_point)`.
    Dequantize "q.dequantize" (Arity::Exact(1), Pure) {}
    /// int8 → int8 with other quantization parameters.
    Requantize "q.requantize" (Arity::Exact(1), Pure) {}
    /// Requantizing int8 convolution: `x` i8 per tensor, `w` i8 per output channel, `bias` i32
    /// with scale `s_x · s_w[c]`; int32 accumulation, then rescale by `s_x · s_w[c] / s_y`.
    QConv2d "q.conv2d" (Arity::Range(2, 3), Pure) {
        /// Vertical and horizontal stride.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Padding `[top, left, bottom, right]` (padded inputs equal the zero point).
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Vertical and horizontal dilation.
        dilations: Vec<i64> = ints(&[1, 1]),
        /// Groups; depthwise convolution has `groups` = channels.
        groups: i64 = Some(1),
        /// Lower clamp of the int8 output.
        act_min: i64 = Some(-128),
        /// Upper clamp of the int8 output.
        act_max: i64 = Some(127),
    }
    /// A frozen inverted bottleneck fused into one op, executed in row tiles (the expanded
    /// tensor and the depthwise output never exist whole): `(x, w1, b1, wd, bd, w2, b2)`, the
    /// `q.conv2d` chain dense `w1` (one group: a pointwise expansion, or any window such as a
    /// network's 3×3 stride-2 stem) → depthwise `wd` → pointwise `w2`, each with its `i32`
    /// bias. The two intermediates have no tensor of their own; their quantization (per tensor)
    /// and clamps are attributes. The result type carries the output quantization. Made by the
    /// `stream-bottlenecks` pass; forward only (autodiff refuses it).
    QBottleneck "q.bottleneck" (Arity::Exact(7), Pure) {
        /// Depthwise vertical and horizontal stride.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Depthwise padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Depthwise vertical and horizontal dilation.
        dilations: Vec<i64> = ints(&[1, 1]),
        /// Window of the first convolution (`w1`): `[stride_h, stride_w, pad_top, pad_left,
        /// pad_bottom, pad_right, dilation_h, dilation_w]` (the default is a pointwise
        /// expansion's; see [`bottleneck_expand_window`]).
        expand_window: Vec<i64> = ints(&POINTWISE_WINDOW),
        /// Scale of the first convolution's (`w1`) intermediate.
        expand_scale: f32 = None,
        /// Zero point of the expanded intermediate.
        expand_zero_point: i64 = None,
        /// Clamp `[min, max]` of the expanded intermediate.
        expand_act: Vec<i64> = ints(&[-128, 127]),
        /// Scale of the depthwise intermediate.
        dw_scale: f32 = None,
        /// Zero point of the depthwise intermediate.
        dw_zero_point: i64 = None,
        /// Clamp `[min, max]` of the depthwise intermediate.
        dw_act: Vec<i64> = ints(&[-128, 127]),
        /// Lower clamp of the int8 output.
        act_min: i64 = Some(-128),
        /// Upper clamp of the int8 output.
        act_max: i64 = Some(127),
    }
    /// Two fused frozen bottlenecks streamed into one another (the tensor between them, the
    /// link, never exists whole): `(x, w1, b1, wd, bd, w2, b2, w1', b1', wd', bd', w2', b2')`,
    /// a `q.bottleneck` whose output is read only by a second one whose first convolution is a
    /// pointwise expansion. The attributes are the two `q.bottleneck`s' packed per kind, in
    /// the order first block, link, second block; [`Op::bottleneck_chain_parts`] unpacks them.
    /// The result type carries the output quantization. Made by the `stream-bottlenecks` pass;
    /// forward only.
    QBottleneckChain "q.bottleneck_chain" (Arity::Exact(13), Pure) {
        /// Window of the first block's first convolution (as `q.bottleneck`'s `expand_window`).
        expand_window: Vec<i64> = ints(&POINTWISE_WINDOW),
        /// The two depthwise windows, `[strides (2), pads (4), dilations (2)]` of the first
        /// block then of the second (16 values).
        dw_windows: Vec<i64> = None,
        /// Scale of the first block's expanded intermediate.
        expand_scale: f32 = None,
        /// Scale of the first block's depthwise intermediate.
        dw_scale: f32 = None,
        /// Scale of the link (the first block's output).
        link_scale: f32 = None,
        /// Scale of the second block's expanded intermediate.
        expand2_scale: f32 = None,
        /// Scale of the second block's depthwise intermediate.
        dw2_scale: f32 = None,
        /// Zero points of the five intermediates: first expanded, first depthwise, link,
        /// second expanded, second depthwise.
        zero_points: Vec<i64> = None,
        /// Clamps `[min, max]` of the five intermediates (same order) then of the output (12
        /// values).
        acts: Vec<i64> = None,
    }
    /// Requantizing int8 fully connected layer `(x [N,K], w [M,K], bias [M]?) -> [N,M]`.
    QLinear "q.linear" (Arity::Range(2, 3), Pure) {
        /// Lower clamp of the int8 output.
        act_min: i64 = Some(-128),
        /// Upper clamp of the int8 output.
        act_max: i64 = Some(127),
    }
    /// Requantizing int8 elementwise sum (equal shapes; each operand with its own scale).
    QAdd "q.add" (Arity::Exact(2), Pure) {
        /// Lower clamp of the int8 output.
        act_min: i64 = Some(-128),
        /// Upper clamp of the int8 output.
        act_max: i64 = Some(127),
    }
    /// int8 average pooling over windows (padding excluded from the count).
    QAvgPool "q.avg_pool" (Arity::Exact(1), Pure) {
        /// Window height and width.
        kernel: Vec<i64> = None,
        /// Vertical and horizontal stride.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Lower clamp of the int8 output.
        act_min: i64 = Some(-128),
        /// Upper clamp of the int8 output.
        act_max: i64 = Some(127),
    }
    /// int8 mean over the spatial dimensions `[N,C,H,W] -> [N,C,1,1]`.
    QGlobalAvgPool "q.global_avg_pool" (Arity::Exact(1), Pure) {}

    /// Input gradient of a 2-D convolution `(dy, w) -> dx`: the transposed convolution of `dy`
    /// with the real-valued weight; `input_shape` is the shape of `x`.
    ConvInputGrad "grad.conv2d_input" (Arity::Exact(2), Pure) {
        /// Forward strides.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Forward padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Forward dilations.
        dilations: Vec<i64> = ints(&[1, 1]),
        /// Forward groups.
        groups: i64 = Some(1),
        /// Shape of the forward input.
        input_shape: Vec<i64> = None,
    }
    /// Weight gradient of a 2-D convolution `(x, dy) -> dw` with `dw` of shape
    /// `[Co, Ci/groups, kernel...]`.
    ConvWeightGrad "grad.conv2d_weight" (Arity::Exact(2), Pure) {
        /// Forward strides.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Forward padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Forward dilations.
        dilations: Vec<i64> = ints(&[1, 1]),
        /// Forward groups.
        groups: i64 = Some(1),
        /// Kernel height and width.
        kernel: Vec<i64> = None,
    }
    /// Bias gradient of a 2-D convolution: `dy [N,Co,H,W]` summed to `[Co]`.
    ConvBiasGrad "grad.conv2d_bias" (Arity::Exact(1), Pure) {}
    /// Input gradient of a fully connected layer `(dy [N,M], w [M,K]) -> dx [N,K]`.
    LinearInputGrad "grad.linear_input" (Arity::Exact(2), Pure) {}
    /// Weight gradient of a fully connected layer `(x [N,K], dy [N,M]) -> dw [M,K]`.
    LinearWeightGrad "grad.linear_weight" (Arity::Exact(2), Pure) {}
    /// Bias gradient of a fully connected layer: `dy [N,M]` summed to `[M]`.
    LinearBiasGrad "grad.linear_bias" (Arity::Exact(1), Pure) {}
    /// Gradient of a matrix product w.r.t. its left operand `(dy, b) -> da`.
    MatMulLhsGrad "grad.matmul_lhs" (Arity::Exact(2), Pure) {}
    /// Gradient of a matrix product w.r.t. its right operand `(a, dy) -> db`.
    MatMulRhsGrad "grad.matmul_rhs" (Arity::Exact(2), Pure) {}
    /// Input gradient of average pooling `dy -> dx` (`input_shape` is the shape of `x`).
    AvgPoolGrad "grad.avg_pool" (Arity::Exact(1), Pure) {
        /// Window height and width.
        kernel: Vec<i64> = None,
        /// Vertical and horizontal stride.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Whether padded positions counted in the divisor.
        count_include_pad: bool = Some(false),
        /// Shape of the forward input.
        input_shape: Vec<i64> = None,
    }
    /// Input gradient of global average pooling `dy [N,C,1,1] -> dx` of shape `input_shape`.
    GlobalAvgPoolGrad "grad.global_avg_pool" (Arity::Exact(1), Pure) {
        /// Shape of the forward input.
        input_shape: Vec<i64> = None,
    }
    /// Input gradient of max pooling `(x, dy) -> dx`: routed to the first maximum of each window.
    MaxPoolGrad "grad.max_pool" (Arity::Exact(2), Pure) {
        /// Window height and width.
        kernel: Vec<i64> = None,
        /// Vertical and horizontal stride.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Vertical and horizontal dilation.
        dilations: Vec<i64> = ints(&[1, 1]),
    }
    /// The 1-bit mask saved for a clamp's backward pass: `min < x < max` (f32, or i8 compared as
    /// integers), as `i1`.
    Mask "grad.mask" (Arity::Exact(1), Pure) {
        /// Lower bound (exclusive).
        min: f32 = Some(f32::NEG_INFINITY),
        /// Upper bound (exclusive).
        max: f32 = Some(f32::INFINITY),
    }
    /// `dy` where the mask is set, 0 elsewhere `(dy f32, mask i1) -> f32`.
    ApplyMask "grad.apply_mask" (Arity::Exact(2), Pure) {}
    /// Sums a broadcast gradient back to `shape` (the operand's shape before broadcasting).
    ReduceToShape "grad.reduce_to_shape" (Arity::Exact(1), Pure) {
        /// The target shape.
        shape: Vec<i64> = None,
    }
    /// Input gradient of softmax `(y, dy) -> dx` from the forward output `y`.
    SoftmaxGrad "grad.softmax" (Arity::Exact(2), Pure) {
        /// The normalised axis.
        axis: i64 = Some(-1),
    }
    /// Input gradient of log-softmax `(y, dy) -> dx` from the forward output `y`.
    LogSoftmaxGrad "grad.log_softmax" (Arity::Exact(2), Pure) {
        /// The normalised axis.
        axis: i64 = Some(-1),
    }
    /// Gradient of the mean softmax cross-entropy w.r.t. the logits
    /// `(logits [N,C], labels [N] i32, dloss scalar) -> dloss · (softmax − onehot) / N`.
    SoftmaxCrossEntropyGrad "grad.softmax_cross_entropy" (Arity::Exact(3), Pure) {}
    /// Gradient of the mean squared error w.r.t. the prediction
    /// `(prediction, target, dloss scalar) -> dloss · 2 (prediction − target) / len`.
    MseLossGrad "grad.mse_loss" (Arity::Exact(3), Pure) {}
    /// Input gradient of constant padding: crops `pads` (all begins, then all ends) off `dy`.
    PadGrad "grad.pad" (Arity::Exact(1), Pure) {
        /// The forward pads.
        pads: Vec<i64> = None,
    }
    /// The slice `[start, start + size)` of `dy` along `axis` (the gradient of one concat operand).
    Slice "grad.slice" (Arity::Exact(1), Pure) {
        /// The axis.
        axis: i64 = None,
        /// First index.
        start: i64 = None,
        /// Number of indices.
        size: i64 = None,
    }

    /// In-place SGD update of parameter `param` from its real-valued gradient
    /// `(grad f32, lr scalar f32, step scalar i64) -> ()`.
    ///
    /// f32 parameters: `g += weight_decay · w`; with momentum `m = momentum · m + g` (state
    /// `momentum_state`) and `g = m`; `w −= lr · lr_scale · g`. int8 weights and int32 biases
    /// (scale `s` per channel) are updated in their integer domain: the gradient w.r.t. the integer
    /// tensor is `s · g`; with `qas` (quantization-aware scaling) it is scaled by `s⁻²`, i.e.
    /// `g / s`; the result `q − lr · lr_scale · g̃` is rounded (to nearest, or stochastically with
    /// a generator seeded by `seed` and `step`) and saturated. With `accumulate = N > 1` the
    /// gradient is summed into state `accum_state` and applied (averaged) every N-th step.
    ///
    /// Effects: reads and writes `param` and the state it names.
    Sgd "optim.sgd" (Arity::Exact(3), Write) {
        /// The parameter updated.
        param: Symbol = None,
        /// Multiplies the learning rate for this parameter.
        lr_scale: f32 = Some(1.0),
        /// Momentum (0: none).
        momentum: f32 = Some(0.0),
        /// L2 weight decay.
        weight_decay: f32 = Some(0.0),
        /// Quantization-aware scaling of integer parameters' gradients.
        qas: bool = Some(false),
        /// Stochastic rounding of integer updates (otherwise round half to even).
        stochastic: bool = Some(false),
        /// Seed of the stochastic rounding.
        seed: i64 = Some(0),
        /// Gradient accumulation: apply every `accumulate` steps.
        accumulate: i64 = Some(1),
        /// The momentum buffer (f32, the parameter's shape; required when `momentum > 0`).
        momentum_state: Option<Symbol> = Some(None),
        /// The gradient accumulator (f32, the parameter's shape; required when
        /// `accumulate > 1`).
        accum_state: Option<Symbol> = Some(None),
        /// Sparse tensor update: the gradient covers only the channels `[slice_start, slice_start
        /// + n)` of this axis of the parameter (`n` the gradient's size along it).
        slice_axis: i64 = Some(0),
        /// The first channel the gradient covers along `slice_axis`.
        slice_start: i64 = Some(0),
    }

    /// `grad.apply_mask(grad.conv2d_input(dy, w), mask)` as one op `(dy, w, mask i1) -> dx`: the
    /// transposed convolution with the mask applied to each element as it is finished, so the
    /// unmasked input gradient never exists beside the masked one (built by the `fuse` pass).
    ConvInputGradMasked "grad.conv2d_input_masked" (Arity::Exact(3), Pure) {
        /// Forward strides.
        strides: Vec<i64> = ints(&[1, 1]),
        /// Forward padding `[top, left, bottom, right]`.
        pads: Vec<i64> = ints(&[0, 0, 0, 0]),
        /// Forward dilations.
        dilations: Vec<i64> = ints(&[1, 1]),
        /// Forward groups.
        groups: i64 = Some(1),
        /// Shape of the forward input.
        input_shape: Vec<i64> = None,
    }
}

impl Op {
    /// The dialect: the prefix before the first `.`, or `builtin`.
    pub fn dialect(&self) -> &str {
        self.name().split_once('.').map_or("builtin", |(d, _)| d)
    }

    /// Whether the quantization of the result is a free choice recorded in the result type
    /// (rather than derived from the operands).
    pub fn result_quant_is_chosen(&self) -> bool {
        matches!(
            self,
            Op::Quantize {}
                | Op::Requantize {}
                | Op::QConv2d { .. }
                | Op::QBottleneck { .. }
                | Op::QBottleneckChain { .. }
                | Op::QLinear { .. }
                | Op::QAdd { .. }
                | Op::QAvgPool { .. }
                | Op::QGlobalAvgPool {}
        )
    }

    /// How many results the op has (`None` for custom ops: as declared).
    pub fn num_results(&self) -> Option<usize> {
        match self {
            Op::Sgd { .. } => Some(0),
            Op::Custom(_) => None,
            _ => Some(1),
        }
    }

    /// The parameter an `optim.` op updates.
    pub fn updated_param(&self) -> Option<&str> {
        match self {
            Op::Sgd { param, .. } => Some(&param.0),
            _ => None,
        }
    }

    /// The module globals (parameters, constants, state) the op reads and writes.
    pub fn effects(&self) -> Effects<'_> {
        match self {
            Op::Param { global } | Op::Const { global } => Effects {
                reads: vec![&global.0],
                ..Effects::default()
            },
            Op::Sgd {
                param,
                momentum_state,
                accum_state,
                ..
            } => {
                let touched: Vec<&str> = std::iter::once(param)
                    .chain(momentum_state)
                    .chain(accum_state)
                    .map(|s| s.0.as_str())
                    .collect();
                Effects {
                    reads: touched.clone(),
                    writes: touched,
                    unknown: false,
                }
            }
            Op::Custom(_) => Effects {
                unknown: true,
                ..Effects::default()
            },
            _ => Effects::default(),
        }
    }

    /// The global read by a `param` or `const` op.
    pub fn global(&self) -> Option<&str> {
        match self {
            Op::Param { global } | Op::Const { global } => Some(&global.0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in() {
        let op = Op::from_parts("nn.conv2d", vec![("groups".into(), Attr::Int(4))]).unwrap();
        assert_eq!(
            op,
            Op::Conv2d {
                strides: vec![1, 1],
                pads: vec![0; 4],
                dilations: vec![1, 1],
                groups: 4
            }
        );
        assert_eq!(op.attrs()[3], ("groups".to_string(), Attr::Int(4)));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Op::from_parts("nn.avg_pool", vec![]).unwrap_err();
        assert_eq!(e.to_string(), "op `nn.avg_pool` needs attribute `kernel`");
        let e = Op::from_parts("nn.relu", vec![("alpha".into(), Attr::F32(0.1))]).unwrap_err();
        assert!(e.to_string().contains("has no attribute `alpha`"), "{e}");
        let e = Op::from_parts("nn.softmax", vec![("axis".into(), Attr::F32(1.0))]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "attribute `axis` of `nn.softmax`: expected an integer, found float"
        );
        assert!(matches!(
            Op::from_parts("nn.frobnicate", vec![]),
            Err(OpError::UnknownOp(_))
        ));
        assert!(matches!(
            Op::from_parts("relu", vec![]),
            Err(OpError::UnknownOp(_))
        ));
    }

    fn hash_of(op: &Op) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        op.hash(&mut h);
        h.finish()
    }

    #[test]
    fn equality_and_hash_compare_floats_by_bits() {
        let clip = |min: f32| Op::Clip { min, max: 6.0 };
        assert_eq!(clip(0.0), clip(0.0));
        assert_eq!(hash_of(&clip(0.0)), hash_of(&clip(0.0)));
        assert_ne!(clip(0.0), clip(-0.0), "0.0 and -0.0 differ in their bits");
        assert_eq!(clip(f32::NAN), clip(f32::NAN), "a NaN equals itself");
        assert_eq!(hash_of(&clip(f32::NAN)), hash_of(&clip(f32::NAN)));
        assert_ne!(Op::Relu {}, Op::GlobalAvgPool {});
        let pool = |k: i64| Op::MaxPool {
            kernel: vec![k, k],
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
        };
        assert_eq!(pool(2), pool(2));
        assert_ne!(pool(2), pool(3));
        let custom = |x: f32| {
            Op::Custom(CustomOp {
                name: "acme.scale".into(),
                attrs: vec![("by".into(), Attr::F32(x))],
            })
        };
        assert_eq!(custom(f32::NAN), custom(f32::NAN));
        assert_ne!(custom(0.0), custom(-0.0));
        let set: std::collections::HashSet<Op> = [clip(0.0), clip(0.0), clip(-0.0), pool(2)]
            .into_iter()
            .collect();
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn effects_name_the_globals() {
        let sym = |s: &str| Symbol(s.into());
        assert_eq!(Op::Param { global: sym("w") }.effects().reads, vec!["w"]);
        assert_eq!(Op::Relu {}.effects(), Effects::default());
        let sgd = Op::from_parts(
            "optim.sgd",
            vec![
                ("param".into(), Attr::Sym("w".into())),
                ("momentum".into(), Attr::F32(0.9)),
                ("momentum_state".into(), Attr::Sym("w.m".into())),
            ],
        )
        .unwrap();
        let e = sgd.effects();
        assert_eq!(e.writes, vec!["w", "w.m"]);
        assert!(e.may_write("w.m") && e.may_read("w") && !e.may_write("v"));
        // An absent optional attribute is not printed; a present one is.
        let names: Vec<String> = sgd.attrs().into_iter().map(|(k, _)| k).collect();
        assert!(names.contains(&"momentum_state".to_string()));
        assert!(!names.contains(&"accum_state".to_string()));
        let custom = Op::from_parts("acme.io", vec![]).unwrap();
        assert!(custom.effects().unknown && custom.effects().may_write("anything"));
    }

    #[test]
    fn custom_ops_need_their_own_dialect() {
        let op = Op::from_parts("acme.fft", vec![("n".into(), Attr::Int(8))]).unwrap();
        assert_eq!(op.name(), "acme.fft");
        assert_eq!(op.dialect(), "acme");
        assert_eq!(op.effect(), Effect::Write);
    }
}
