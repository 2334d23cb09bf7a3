//! The kernels a [`Call`](super::Call) can make, with their parameters resolved at compile time.
//!
//! Each variant corresponds to one `mite-kernels` function (or one fixed sequence of them); its
//! fields are the owned form of that kernel's parameter struct (per-channel tables as `Vec`s), so
//! the executor, the C emitter and the Rust emitter build the borrowed parameter structs from
//! them without recomputing anything. [`Kernel::signature`] gives the element type and length of
//! every operand, result and scratch buffer, which the verifier checks.

use mite_kernels::int8::{AddParams, MeanParams};
use mite_kernels::requant::{ActRange, QuantParams, Rounding};
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
    /// `mite_kernels::int8::add_int8`: `(a: i8, b: i8) -> y: i8` (may be in place).
    AddInt8 {
        /// Elements.
        len: usize,
        /// Quantization, clamp and precomputed multipliers.
        params: AddParams,
    },
    /// `mite_kernels::int8::global_avg_pool_int8` (output keeps the input's quantization):
    /// `(x: i8[n·c·h·w]) -> y: i8[n·c]`.
    GlobalAvgPoolInt8 {
        /// Input dims `[n, c, h, w]`.
        dims: [usize; 4],
        /// Rounding mode.
        rounding: Rounding,
    },
    /// `mite_kernels::int8::mean_int8` (global average pool requantizing to another
    /// quantization): `(x: i8) -> y: i8[n·c]`.
    MeanInt8 {
        /// Input dims `[n, c, h, w]`.
        dims: [usize; 4],
        /// Quantizations and multiplier.
        params: MeanParams,
    },
    /// `mite_kernels::int8::dequantize` (`DequantizeLinear`, per tensor or per axis):
    /// `(x: i8) -> y: f32`.
    Dequantize {
        /// Elements.
        len: usize,
        /// Scales, one per channel (one: per tensor).
        scales: Vec<f32>,
        /// Zero points, one per channel.
        zero_points: Vec<i8>,
        /// Elements per channel step.
        inner: usize,
    },
    /// `mite_kernels::float::make_mask` over an `i8` tensor's integer values (`min < q < max`,
    /// compared in `f32`): `(x: i8) -> mask: bits`.
    MaskInt8 {
        /// Elements.
        len: usize,
        /// Exclusive lower bound.
        min: f32,
        /// Exclusive upper bound.
        max: f32,
    },
    /// `mite_kernels::float::make_mask` over `f32` values: `(x: f32) -> mask: bits`.
    MaskF32 {
        /// Elements.
        len: usize,
        /// Exclusive lower bound.
        min: f32,
        /// Exclusive upper bound.
        max: f32,
    },
    /// `mite_kernels::float::apply_mask`: `(dy: f32, mask: bits) -> dx: f32` (may be in place).
    ApplyMask {
        /// Elements.
        len: usize,
    },
    /// Elementwise `f32` sum of two equally shaped tensors (gradients meeting at a branch):
    /// `(a: f32, b: f32) -> y: f32`.
    AddF32 {
        /// Elements.
        len: usize,
    },
    /// A copy of channels `start..start + size` of axis `axis` (`x` viewed as
    /// `[outer, channels, inner]`): `(x) -> y` of the same element type.
    Slice {
        /// Element type.
        elem: BufElem,
        /// Product of the dims before the axis.
        outer: usize,
        /// Channels along the axis.
        channels: usize,
        /// Product of the dims after the axis.
        inner: usize,
        /// First channel copied.
        start: usize,
        /// Channels copied.
        size: usize,
    },
    /// `mite_kernels::float::conv2d_backward_input`: `(dy: f32, w: f32) -> dx: f32`.
    ConvBackwardInput {
        /// Geometry of the forward convolution.
        geometry: Conv2dGeometry,
    },
    /// `mite_kernels::float::conv2d_backward_input` with an `i8` weight used at its real value
    /// `f32(q − z) · s` of its channel (as `Dequantize` computes it), dequantized tap by tap
    /// rather than into a buffer: `(dy: f32, w: i8) -> dx: f32`.
    ConvBackwardInputInt8 {
        /// Geometry of the forward convolution.
        geometry: Conv2dGeometry,
        /// The weight's scales, one per channel (one: per tensor).
        scales: Vec<f32>,
        /// Its zero points, one per channel.
        zero_points: Vec<i8>,
        /// Weight elements per channel step.
        inner: usize,
    },
    /// `mite_kernels::float::conv2d_backward_input_int8_in_place`: [`Kernel::ConvBackwardInputInt8`]
    /// written over its operand: `(w: i8) -> dy_dx: f32` where the result holds `dy` on entry
    /// and `dx` on return (the geometry admits `mite_kernels::float::InPlaceConv` and `dx` is as
    /// long as `dy`), scratch `f32[InPlaceConv::scratch_len]`.
    ConvBackwardInputInt8InPlace {
        /// Geometry of the forward convolution.
        geometry: Conv2dGeometry,
        /// The weight's scales, one per channel (one: per tensor).
        scales: Vec<f32>,
        /// Its zero points, one per channel.
        zero_points: Vec<i8>,
        /// Weight elements per channel step.
        inner: usize,
    },
    /// `mite_kernels::float::conv2d_backward_weight`: `(x: f32, dy: f32) -> dw: f32`.
    ConvBackwardWeight {
        /// Geometry of the forward convolution.
        geometry: Conv2dGeometry,
    },
    /// `mite_kernels::float::conv2d_backward_bias`: `(dy: f32[n·c·h·w]) -> db: f32[c]`.
    ConvBackwardBias {
        /// `dy`'s dims `[n, c, h, w]`.
        dims: [usize; 4],
    },
    /// `mite_kernels::float::global_avg_pool_backward`: `(dy: f32[n·c]) -> dx: f32[n·c·h·w]`.
    GlobalAvgPoolBackward {
        /// Input dims `[n, c, h, w]` of the forward pool.
        dims: [usize; 4],
    },
    /// `mite_kernels::float::softmax_cross_entropy` (mean over the batch):
    /// `(logits: f32[n·c], labels: i32[n]) -> loss: f32[1]`, scratch `f32[c]`.
    SoftmaxCrossEntropy {
        /// Batch.
        batch: usize,
        /// Classes.
        classes: usize,
    },
    /// `mite_kernels::float::softmax_cross_entropy_backward`:
    /// `(logits: f32[n·c], labels: i32[n], dloss: f32[1]) -> dlogits: f32[n·c]`.
    SoftmaxCrossEntropyBackward {
        /// Batch.
        batch: usize,
        /// Classes.
        classes: usize,
    },
    /// The SGD / QAS update of a parameter (`mite_kernels::sgd`): operands
    /// `(grad: f32, lr: f32[1], step: i64[1])`, in-place results
    /// `(param[, momentum: f32][, accumulator: f32])`; scratch `f32[len]` (the full-size
    /// gradient) when the gradient covers a channel slice or accumulates.
    Sgd {
        /// The parameter's element type.
        elem: BufElem,
        /// The parameter's length.
        len: usize,
        /// `lr_scale`: `η = lr · lr_scale`, with `lr` the entry's learning-rate argument.
        lr_scale: f32,
        /// Momentum (0: none, and no momentum state).
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
        /// Accumulate gradients over this many steps (1: none, and no accumulator state).
        accumulate: u32,
        /// The channels the gradient covers (`None`: the whole parameter).
        slice: Option<SgdSlice>,
    },
    /// `mite_kernels::update::conv2d_weight_sgd_{f32,i8}`: a convolution's weight gradient
    /// fused with its update, `update` (a [`Kernel::Sgd`] without accumulation whose gradient is
    /// the `[c_out, c_in / groups, kh, kw]` gradient of `geometry`): operands
    /// `(x: f32, dy: f32, lr: f32[1], step: i64[1])`, in-place results
    /// `(param[, momentum: f32])`, scratch `f32[kh·kw]`. No gradient buffer exists.
    ConvWeightSgd {
        /// Geometry of the forward convolution (its weight is the gradient's shape).
        geometry: Conv2dGeometry,
        /// The update of the parameter.
        update: Box<Kernel>,
    },
    /// `mite_kernels::int8::bottleneck_int8` (`q.bottleneck`, streamed row by row):
    /// `(x: i8, w_expand: i8, b_expand: i32, w_dw: i8, b_dw: i32, w_project: i8,
    /// b_project: i32) -> y: i8`, scratch `i8[bottleneck_int8_scratch_len]`. Each stage is a
    /// [`Kernel::ConvInt8`] with a bias (dense — a pointwise expansion or a stem-like k×k
    /// convolution —, depthwise, pointwise).
    BottleneckInt8 {
        /// The first convolution (a pointwise expansion, or any dense convolution).
        expand: Box<Kernel>,
        /// The depthwise convolution.
        depthwise: Box<Kernel>,
        /// The pointwise projection.
        project: Box<Kernel>,
    },
    /// `kernel` — a [`Kernel::ConvInt8`] (`mite_kernels::split::conv2d_int8_split`) or a
    /// [`Kernel::ConvBackwardInputInt8`] (`mite_kernels::split::conv2d_backward_input_int8_split`)
    /// of a dense convolution — with its `i8` weight operand (operand 1) stored in two buffers
    /// along its input channels: the trained slice `[c_out, kept, kh, kw]` (a parameter in SRAM)
    /// then the frozen remainder `[c_out, c_in − kept, kh, kw]` (flash). Operands: the inner
    /// kernel's, with the weight replaced by `(trained, frozen)`; the convolution's scratch is
    /// `i32[out_plane + ⌈gather / 4⌉]`: its accumulator plane, then the `i8` rows it gathers.
    SplitWeight {
        /// The convolution, its parameters those of the whole weight.
        kernel: Box<Kernel>,
        /// Input channels in the trained slice.
        kept: usize,
    },
    /// `mite_kernels::float::bottleneck_backward`: the backward pass of an inverted bottleneck
    /// (pointwise expansion → depthwise → pointwise projection, `i8` weights, batch 1) streamed
    /// one expanded channel at a time, so the `f32` gradient of the expanded tensor never
    /// exists whole. Operands `(dy: f32, w_project: i8, mask_depthwise: bits, w_depthwise: i8,
    /// mask_expand: bits[, w_expand: i8][, x: i8, lr: f32[1], step: i64[1]])` (`w_expand` when
    /// `dx` is computed and the weight is frozen; `x`, `lr`, `step` with the update), results
    /// `([w_expand: i8[, momentum: f32]][, dx: f32][, db_depthwise: f32][, db_expand: f32])`
    /// (the updated weight in place first), scratch
    /// `f32[mite_kernels::float::bottleneck_backward_scratch_len]`.
    ///
    /// With `kept`, the expansion weight is split ([`Kernel::SplitWeight`]): the update's
    /// weight is the trained slice of the first `kept` input channels (its geometry the
    /// expansion's with `kept` input channels, `x` the saved slice) and one more operand
    /// follows `step`, the frozen remainder `w_frozen: i8[c_mid, c_in − kept]` that `dx`
    /// reads with the slice (`mite_kernels::float::ExpandWeight::Split`).
    BottleneckBackward {
        /// The projection's input gradient: a pointwise [`Kernel::ConvBackwardInputInt8`].
        project: Box<Kernel>,
        /// The depthwise input gradient: a depthwise [`Kernel::ConvBackwardInputInt8`].
        depthwise: Box<Kernel>,
        /// The expansion's forward geometry (pointwise).
        expand: Conv2dGeometry,
        /// `dx`, the expansion's input gradient: its [`Kernel::ConvBackwardInputInt8`] (`None`:
        /// not computed).
        dx: Option<Box<Kernel>>,
        /// Whether the depthwise bias gradient is a result.
        depthwise_bias: bool,
        /// Whether the expansion's bias gradient is a result.
        expand_bias: bool,
        /// The expansion weight's update: the [`Kernel::Dequantize`] of the saved input `x` and
        /// the [`Kernel::ConvWeightSgd`] of the weight (an `i8` parameter, no slice).
        update: Option<(Box<Kernel>, Box<Kernel>)>,
        /// A split expansion weight: the input channels of its trained slice (`dx` and the
        /// update both present).
        kept: Option<usize>,
    },
    /// `mite_kernels::int8::bottleneck_chain_int8` (`q.bottleneck_chain`): two bottlenecks, the
    /// second streaming the first's output rows through a small ring: `(x: i8, the first's six
    /// weights and biases, the second's six) -> y: i8` (weights and biases in
    /// [`Kernel::BottleneckInt8`]'s order), scratch `i8[bottleneck_chain_int8_scratch_len]`.
    /// Each block is a [`Kernel::BottleneckInt8`]; the second's first convolution is pointwise.
    ///
    /// In place (`bottleneck_chain_int8_inplace`,
    /// `mite_kernels::int8::bottleneck_chain_int8_in_place`), the kernel consumes `x`: it
    /// stages its output rows in the input's dead bytes and leaves `y` at `x`'s offset, so the
    /// output takes no arena bytes of its own ([`Kernel::consumes_input`]); scratch
    /// `i8[bottleneck_chain_int8_in_place_scratch_len]`.
    BottleneckChainInt8 {
        /// The first block.
        first: Box<Kernel>,
        /// The second block, reading the first's output.
        second: Box<Kernel>,
        /// Whether the output is left in the input's bytes.
        in_place: bool,
    },
}

/// Attribute names of a bottleneck's stages (expansion, depthwise, projection).
const BOTTLENECK_STAGE_ATTRS: [[&str; 7]; 3] = [
    [
        "e_x_zp",
        "e_w_zp",
        "e_scales",
        "e_multipliers",
        "e_shifts",
        "e_y_zp",
        "e_range",
    ],
    [
        "d_x_zp",
        "d_w_zp",
        "d_scales",
        "d_multipliers",
        "d_shifts",
        "d_y_zp",
        "d_range",
    ],
    [
        "p_x_zp",
        "p_w_zp",
        "p_scales",
        "p_multipliers",
        "p_shifts",
        "p_y_zp",
        "p_range",
    ],
];

/// The geometry and `i8` scratch length of a bottleneck's three stages, if each is a
/// [`Kernel::ConvInt8`] and they chain (`None` otherwise; the verifier then reports the
/// signature mismatch).
fn bottleneck_shape(stages: [&Kernel; 3]) -> Option<([Conv2dGeometry; 3], usize)> {
    let mut gs = Vec::with_capacity(3);
    for k in stages {
        match k {
            Kernel::ConvInt8 { geometry, .. } => gs.push(*geometry),
            _ => return None,
        }
    }
    let gs: [Conv2dGeometry; 3] = gs.try_into().ok()?;
    let d = &gs[1];
    let [ay, _] = d.axes();
    let ring_rows = (ay.dilation * ay.kernel.saturating_sub(1) + 1).min(ay.in_len);
    let scratch = d.c_in() * ring_rows * d.in_hw()[1] + d.c_in() * d.out_hw()[1];
    Some((gs, scratch))
}

/// The stage geometries of a bottleneck kernel and its scratch (`None` when it is not a
/// [`Kernel::BottleneckInt8`] of three chaining convolutions).
fn block_shape(k: &Kernel) -> Option<([Conv2dGeometry; 3], usize)> {
    match k {
        Kernel::BottleneckInt8 {
            expand,
            depthwise,
            project,
        } => bottleneck_shape([expand, depthwise, project]),
        _ => None,
    }
}

/// The geometries of a bottleneck chain's two blocks and the chain's `i8` scratch: the first
/// block's, the link ring (`c_link · span · w_link`), one expanded channel's rows
/// (`span · w_link`), the second depthwise row (`c_mid · ow`); `None` when the blocks are not
/// bottlenecks or the second does not read the first's output through a pointwise expansion.
fn chain_shape(first: &Kernel, second: &Kernel) -> Option<([[Conv2dGeometry; 3]; 2], usize)> {
    let (a, first_scratch) = block_shape(first)?;
    let (b, _) = block_shape(second)?;
    let (out, e, d) = (&a[2], &b[0], &b[1]);
    if !e.is_pointwise() || out.out_hw() != e.in_hw() || out.c_out() != e.c_in() {
        return None;
    }
    let [ay, _] = d.axes();
    let span = (ay.dilation * ay.kernel.saturating_sub(1) + 1).min(ay.in_len);
    let w = e.in_hw()[1];
    let scratch = first_scratch + e.c_in() * span * w + span * w + d.c_in() * d.out_hw()[1];
    Some(([a, b], scratch))
}

/// The scratch of an in-place chain over `blocks`, or `None` when the geometry does not admit
/// it: the chain's and the delay ring
/// (`mite_kernels::int8::bottleneck_chain_in_place_extra_scratch`).
fn chain_in_place_scratch(blocks: &[[Conv2dGeometry; 3]; 2], chain: usize) -> Option<usize> {
    let [a, b] = blocks;
    let g = mite_kernels::int8::ChainGeometry {
        first: [&a[0], &a[1], &a[2]],
        second: [&b[0], &b[1], &b[2]],
    };
    Some(chain + mite_kernels::int8::bottleneck_chain_in_place_extra_scratch(&g)?)
}

/// The channels of a parameter a sparse update's gradient covers: the parameter viewed as
/// `[outer, channels, inner]`, channels `start..start + count` (the gradient holds exactly
/// those elements, in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgdSlice {
    /// Channels along the sliced axis.
    pub channels: usize,
    /// Product of the dims after the sliced axis.
    pub inner: usize,
    /// First covered channel.
    pub start: usize,
    /// Covered channels.
    pub count: usize,
}

impl SgdSlice {
    /// Whether element `i` (row-major) of the parameter is covered.
    pub fn covers(&self, i: usize) -> bool {
        let c = (i / self.inner.max(1)) % self.channels.max(1);
        (self.start..self.start + self.count).contains(&c)
    }
}

fn ints(v: &[usize]) -> KernelAttr {
    KernelAttr::Ints(v.iter().map(|&x| x as i64).collect())
}

fn quant_attr(q: &QuantParams) -> KernelAttr {
    KernelAttr::F64s(vec![f64::from(q.scale), f64::from(q.zero_point)])
}

fn pair(p: (i32, i32)) -> Vec<i64> {
    vec![i64::from(p.0), i64::from(p.1)]
}

fn geometry_attrs(g: &Conv2dGeometry) -> Vec<(&'static str, KernelAttr)> {
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
        ("groups", KernelAttr::Int(g.groups() as i64)),
    ]
}

fn sig(
    inputs: Vec<(BufElem, usize)>,
    outputs: Vec<(BufElem, usize)>,
    scratch: Option<(BufElem, usize)>,
) -> Signature {
    Signature {
        inputs,
        outputs,
        scratch,
    }
}

impl Kernel {
    /// The kernel's text name.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::ConvInt8 { .. } => "conv2d_int8",
            Kernel::AddInt8 { .. } => "add_int8",
            Kernel::GlobalAvgPoolInt8 { .. } => "global_avg_pool_int8",
            Kernel::MeanInt8 { .. } => "mean_int8",
            Kernel::Dequantize { .. } => "dequantize",
            Kernel::MaskInt8 { .. } => "mask_int8",
            Kernel::MaskF32 { .. } => "mask_f32",
            Kernel::ApplyMask { .. } => "apply_mask",
            Kernel::AddF32 { .. } => "add_f32",
            Kernel::Slice { .. } => "slice",
            Kernel::ConvBackwardInput { .. } => "conv2d_backward_input",
            Kernel::ConvBackwardInputInt8 { .. } => "conv2d_backward_input_int8w",
            Kernel::ConvBackwardInputInt8InPlace { .. } => "conv2d_backward_input_int8w_inplace",
            Kernel::ConvBackwardWeight { .. } => "conv2d_backward_weight",
            Kernel::ConvBackwardBias { .. } => "conv2d_backward_bias",
            Kernel::GlobalAvgPoolBackward { .. } => "global_avg_pool_backward",
            Kernel::SoftmaxCrossEntropy { .. } => "softmax_cross_entropy",
            Kernel::SoftmaxCrossEntropyBackward { .. } => "softmax_cross_entropy_backward",
            Kernel::Sgd { .. } => "sgd",
            Kernel::BottleneckInt8 { .. } => "bottleneck_int8",
            Kernel::BottleneckChainInt8 {
                in_place: false, ..
            } => "bottleneck_chain_int8",
            Kernel::BottleneckChainInt8 { in_place: true, .. } => "bottleneck_chain_int8_inplace",
            Kernel::ConvWeightSgd { .. } => "conv2d_backward_weight_sgd",
            Kernel::SplitWeight { kernel, .. } => match kernel.as_ref() {
                Kernel::ConvInt8 { .. } => "conv2d_int8_split",
                Kernel::ConvBackwardInputInt8 { .. } => "conv2d_backward_input_int8w_split",
                _ => "split_weight",
            },
            Kernel::BottleneckBackward { .. } => "bottleneck_backward",
        }
    }

    /// Its attributes, in print order.
    pub fn attrs(&self) -> Vec<(&'static str, KernelAttr)> {
        use KernelAttr as A;
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
                let mut a = geometry_attrs(g);
                a.extend([
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
                ]);
                a
            }
            Kernel::AddInt8 { len, params: p } => {
                let [ma, mb] = p.input_multipliers;
                vec![
                    ("len", A::Int(*len as i64)),
                    ("a", quant_attr(&p.a)),
                    ("b", quant_attr(&p.b)),
                    ("y", quant_attr(&p.out)),
                    (
                        "range",
                        A::Ints(vec![i64::from(p.range.min), i64::from(p.range.max)]),
                    ),
                    ("rounding", A::Word(rounding_name(p.rounding))),
                    ("a_multiplier", A::Ints(pair(ma))),
                    ("b_multiplier", A::Ints(pair(mb))),
                    ("y_multiplier", A::Ints(pair(p.output_multiplier))),
                ]
            }
            Kernel::GlobalAvgPoolInt8 { dims, rounding } => vec![
                ("in", ints(dims)),
                ("rounding", A::Word(rounding_name(*rounding))),
            ],
            Kernel::MeanInt8 { dims, params: p } => vec![
                ("in", ints(dims)),
                ("x", quant_attr(&p.input)),
                ("y", quant_attr(&p.output)),
                ("rounding", A::Word(rounding_name(p.rounding))),
                ("real", A::F64(p.real)),
                ("multiplier", A::Ints(pair(p.multiplier))),
            ],
            Kernel::Dequantize {
                len,
                scales,
                zero_points,
                inner,
            } => vec![
                ("len", A::Int(*len as i64)),
                ("scales", A::F32s(scales.clone())),
                (
                    "zero_points",
                    A::Ints(zero_points.iter().map(|&z| i64::from(z)).collect()),
                ),
                ("inner", A::Int(*inner as i64)),
            ],
            Kernel::MaskInt8 { len, min, max } | Kernel::MaskF32 { len, min, max } => vec![
                ("len", A::Int(*len as i64)),
                ("min", A::F32(*min)),
                ("max", A::F32(*max)),
            ],
            Kernel::ApplyMask { len } | Kernel::AddF32 { len } => {
                vec![("len", A::Int(*len as i64))]
            }
            Kernel::Slice {
                elem,
                outer,
                channels,
                inner,
                start,
                size,
            } => vec![
                ("elem", A::Word(elem.name())),
                ("in", ints(&[*outer, *channels, *inner])),
                ("start", A::Int(*start as i64)),
                ("size", A::Int(*size as i64)),
            ],
            Kernel::ConvBackwardInput { geometry } | Kernel::ConvBackwardWeight { geometry } => {
                geometry_attrs(geometry)
            }
            Kernel::ConvBackwardInputInt8 {
                geometry,
                scales,
                zero_points,
                inner,
            }
            | Kernel::ConvBackwardInputInt8InPlace {
                geometry,
                scales,
                zero_points,
                inner,
            } => {
                let mut a = geometry_attrs(geometry);
                a.extend([
                    ("w_scales", A::F32s(scales.clone())),
                    (
                        "w_zero_points",
                        A::Ints(zero_points.iter().map(|&z| i64::from(z)).collect()),
                    ),
                    ("w_inner", A::Int(*inner as i64)),
                ]);
                a
            }
            Kernel::ConvBackwardBias { dims } | Kernel::GlobalAvgPoolBackward { dims } => {
                vec![("in", ints(dims))]
            }
            Kernel::SoftmaxCrossEntropy { batch, classes }
            | Kernel::SoftmaxCrossEntropyBackward { batch, classes } => vec![
                ("batch", A::Int(*batch as i64)),
                ("classes", A::Int(*classes as i64)),
            ],
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
            } => {
                let mut a = vec![
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
                    ("accumulate", A::Int(i64::from(*accumulate))),
                ];
                if let Some(s) = slice {
                    a.push(("slice", ints(&[s.channels, s.inner, s.start, s.count])));
                }
                a
            }
            Kernel::BottleneckInt8 {
                expand,
                depthwise,
                project,
            } => bottleneck_attrs([expand, depthwise, project]),
            Kernel::BottleneckChainInt8 { first, second, .. } => {
                let mut a = vec![("block", A::Int(1))];
                a.extend(first.attrs());
                a.push(("block", A::Int(2)));
                a.extend(second.attrs());
                if let Some((_, scratch)) = chain_shape(first, second) {
                    a.push(("chain_scratch", A::Int(scratch as i64)));
                }
                a
            }
            Kernel::ConvWeightSgd { geometry, update } => {
                let mut a = geometry_attrs(geometry);
                a.extend(update.attrs());
                a
            }
            Kernel::SplitWeight { kernel, kept } => {
                let mut a = kernel.attrs();
                a.push(("kept", A::Int(*kept as i64)));
                a
            }
            Kernel::BottleneckBackward { .. } => bottleneck_backward_attrs(self),
        }
    }

    /// The element types and lengths of the call's buffers.
    pub fn signature(&self) -> Signature {
        use BufElem::{Bits, F32, I32, I64, I8};
        match self {
            Kernel::ConvInt8 {
                geometry: g, bias, ..
            } => {
                let mut inputs = vec![(I8, g.input_len()), (I8, g.weight_len())];
                if *bias {
                    inputs.push((I32, g.c_out()));
                }
                sig(
                    inputs,
                    vec![(I8, g.output_len())],
                    Some((I32, g.out_plane())),
                )
            }
            Kernel::AddInt8 { len, .. } => {
                sig(vec![(I8, *len), (I8, *len)], vec![(I8, *len)], None)
            }
            Kernel::GlobalAvgPoolInt8 { dims, .. } | Kernel::MeanInt8 { dims, .. } => sig(
                vec![(I8, dims.iter().product())],
                vec![(I8, dims[0] * dims[1])],
                None,
            ),
            Kernel::Dequantize { len, .. } => sig(vec![(I8, *len)], vec![(F32, *len)], None),
            Kernel::MaskInt8 { len, .. } => sig(vec![(I8, *len)], vec![(Bits, *len)], None),
            Kernel::MaskF32 { len, .. } => sig(vec![(F32, *len)], vec![(Bits, *len)], None),
            Kernel::ApplyMask { len } => {
                sig(vec![(F32, *len), (Bits, *len)], vec![(F32, *len)], None)
            }
            Kernel::AddF32 { len } => sig(vec![(F32, *len), (F32, *len)], vec![(F32, *len)], None),
            Kernel::Slice {
                elem,
                outer,
                channels,
                inner,
                size,
                ..
            } => sig(
                vec![(*elem, outer * channels * inner)],
                vec![(*elem, outer * size * inner)],
                None,
            ),
            Kernel::ConvBackwardInput { geometry: g } => sig(
                vec![(F32, g.output_len()), (F32, g.weight_len())],
                vec![(F32, g.input_len())],
                None,
            ),
            Kernel::ConvBackwardInputInt8 { geometry: g, .. } => sig(
                vec![(F32, g.output_len()), (I8, g.weight_len())],
                vec![(F32, g.input_len())],
                None,
            ),
            Kernel::ConvBackwardInputInt8InPlace { geometry: g, .. } => {
                match mite_kernels::float::InPlaceConv::of(g) {
                    Some(kind) if g.input_len() == g.output_len() => sig(
                        vec![(I8, g.weight_len())],
                        vec![(F32, g.output_len())],
                        Some((F32, kind.scratch_len(g))),
                    ),
                    // Not computable in place: a signature no call can match.
                    _ => sig(Vec::new(), Vec::new(), None),
                }
            }
            Kernel::ConvBackwardWeight { geometry: g } => sig(
                vec![(F32, g.input_len()), (F32, g.output_len())],
                vec![(F32, g.weight_len())],
                None,
            ),
            Kernel::ConvBackwardBias { dims } => sig(
                vec![(F32, dims.iter().product())],
                vec![(F32, dims[1])],
                None,
            ),
            Kernel::GlobalAvgPoolBackward { dims } => sig(
                vec![(F32, dims[0] * dims[1])],
                vec![(F32, dims.iter().product())],
                None,
            ),
            Kernel::SoftmaxCrossEntropy { batch, classes } => sig(
                vec![(F32, batch * classes), (I32, *batch)],
                vec![(F32, 1)],
                Some((F32, *classes)),
            ),
            Kernel::SoftmaxCrossEntropyBackward { batch, classes } => sig(
                vec![(F32, batch * classes), (I32, *batch), (F32, 1)],
                vec![(F32, batch * classes)],
                None,
            ),
            Kernel::Sgd {
                elem,
                len,
                momentum,
                accumulate,
                slice,
                ..
            } => {
                let grad_len = match slice {
                    Some(s) => len / s.channels.max(1) * s.count,
                    None => *len,
                };
                let mut outputs = vec![(*elem, *len)];
                if *momentum != 0.0 {
                    outputs.push((F32, *len));
                }
                if *accumulate > 1 {
                    outputs.push((F32, *len));
                }
                let scratch = (slice.is_some() || *accumulate > 1).then_some((F32, *len));
                sig(vec![(F32, grad_len), (F32, 1), (I64, 1)], outputs, scratch)
            }
            Kernel::BottleneckInt8 {
                expand,
                depthwise,
                project,
            } => match bottleneck_shape([expand, depthwise, project]) {
                Some(([e, d, p], scratch)) => sig(
                    vec![
                        (I8, e.input_len()),
                        (I8, e.weight_len()),
                        (I32, e.c_out()),
                        (I8, d.weight_len()),
                        (I32, d.c_out()),
                        (I8, p.weight_len()),
                        (I32, p.c_out()),
                    ],
                    vec![(I8, p.output_len())],
                    Some((I8, scratch)),
                ),
                // Not three convolutions: a signature no call can match.
                None => sig(Vec::new(), Vec::new(), None),
            },
            Kernel::BottleneckChainInt8 {
                first,
                second,
                in_place,
            } => match chain_shape(first, second) {
                Some((blocks, chain_scratch)) => {
                    let scratch = if *in_place {
                        chain_in_place_scratch(&blocks, chain_scratch)
                    } else {
                        Some(chain_scratch)
                    };
                    // An in-place chain its geometry does not admit: a signature no call
                    // can match.
                    let Some(scratch) = scratch else {
                        return sig(Vec::new(), Vec::new(), None);
                    };
                    let mut inputs = vec![(I8, blocks[0][0].input_len())];
                    for [e, d, p] in &blocks {
                        inputs.extend([
                            (I8, e.weight_len()),
                            (I32, e.c_out()),
                            (I8, d.weight_len()),
                            (I32, d.c_out()),
                            (I8, p.weight_len()),
                            (I32, p.c_out()),
                        ]);
                    }
                    let out = blocks[1][2].output_len();
                    sig(inputs, vec![(I8, out)], Some((I8, scratch)))
                }
                // Not two chaining bottlenecks: a signature no call can match.
                None => sig(Vec::new(), Vec::new(), None),
            },
            Kernel::ConvWeightSgd {
                geometry: g,
                update,
            } => match update.as_ref() {
                Kernel::Sgd {
                    len,
                    accumulate: 1,
                    slice,
                    ..
                } if slice.map_or(*len, |s| len / s.channels.max(1) * s.count)
                    == g.weight_len() =>
                {
                    let taps = g.window().kernel[0] * g.window().kernel[1];
                    sig(
                        vec![
                            (F32, g.input_len()),
                            (F32, g.output_len()),
                            (F32, 1),
                            (I64, 1),
                        ],
                        update.signature().outputs,
                        Some((F32, taps)),
                    )
                }
                // Not an update of this gradient: a signature no call can match.
                _ => sig(Vec::new(), Vec::new(), None),
            },
            Kernel::SplitWeight { kernel, kept } => split_signature(kernel, *kept),
            Kernel::BottleneckBackward { .. } => bottleneck_backward_signature(self)
                // Not a bottleneck's backward: a signature no call can match.
                .unwrap_or_else(|| sig(Vec::new(), Vec::new(), None)),
        }
    }

    /// Whether the kernel consumes operand 0 (an arena buffer no later call reads): it may
    /// overwrite it, and leaves result 0 at operand 0's offset, inside its bytes. Result 0 is
    /// live only from the next call on; operand 0's bytes cover it during the call.
    pub fn consumes_input(&self) -> bool {
        matches!(self, Kernel::BottleneckChainInt8 { in_place: true, .. })
    }

    /// Whether the kernel reads its results' previous contents (in-place updates). A
    /// [`Kernel::BottleneckBackward`] reads only its updated parameter and momentum (never arena
    /// buffers) and writes its other results whole: `false`.
    pub fn reads_outputs(&self) -> bool {
        (self.is_update() && !matches!(self, Kernel::BottleneckBackward { .. }))
            || matches!(self, Kernel::ConvBackwardInputInt8InPlace { .. })
    }

    /// The bytes of the `f32` gradient buffer a fused weight-gradient update does not
    /// materialise (0 for other kernels).
    pub fn fused_gradient_bytes(&self) -> usize {
        match self {
            Kernel::ConvWeightSgd { geometry, .. } => geometry.weight_len() * 4,
            Kernel::BottleneckBackward {
                update: Some((_, sgd)),
                ..
            } => sgd.fused_gradient_bytes(),
            _ => 0,
        }
    }

    /// Whether the kernel updates a trained parameter (an `sgd`, alone or fused).
    pub fn is_update(&self) -> bool {
        matches!(
            self,
            Kernel::Sgd { .. }
                | Kernel::ConvWeightSgd { .. }
                | Kernel::BottleneckBackward {
                    update: Some(_),
                    ..
                }
        )
    }
}

/// The signature of a [`Kernel::SplitWeight`]: the inner kernel's, its weight operand replaced
/// by the two parts (and the convolution's scratch grown by the gathered rows). A kernel that
/// cannot be split (not a dense convolution, `kept` beyond its input channels) gets a signature
/// no call can match.
fn split_signature(kernel: &Kernel, kept: usize) -> Signature {
    let geometry = match kernel {
        Kernel::ConvInt8 { geometry, .. } | Kernel::ConvBackwardInputInt8 { geometry, .. } => {
            geometry
        }
        _ => return sig(Vec::new(), Vec::new(), None),
    };
    if geometry.groups() != 1 || kept > geometry.c_in() {
        return sig(Vec::new(), Vec::new(), None);
    }
    let taps = geometry.window().kernel[0] * geometry.window().kernel[1];
    let c_out = geometry.c_out();
    let mut s = kernel.signature();
    s.inputs.splice(
        1..2,
        [
            (BufElem::I8, c_out * kept * taps),
            (BufElem::I8, c_out * (geometry.c_in() - kept) * taps),
        ],
    );
    if let Kernel::ConvInt8 { .. } = kernel {
        let gather = mite_kernels::split::conv2d_int8_split_gather_len(geometry);
        s.scratch = Some((BufElem::I32, geometry.out_plane() + gather.div_ceil(4)));
    }
    s
}

/// A bottleneck's attributes: the geometry once (`in`, `mid`, `out`, the depthwise window, and
/// the first convolution's window `e_*` when it is not pointwise), then each stage's
/// quantization.
fn bottleneck_attrs(stages: [&Kernel; 3]) -> Vec<(&'static str, KernelAttr)> {
    use KernelAttr as A;
    let mut a = Vec::new();
    if let Some(([e, d, p], scratch)) = bottleneck_shape(stages) {
        let w = d.window();
        a.extend([
            ("in", ints(&[e.n(), e.c_in(), e.in_hw()[0], e.in_hw()[1]])),
            ("mid", ints(&[d.c_in(), d.in_hw()[0], d.in_hw()[1]])),
            (
                "out",
                ints(&[p.n(), p.c_out(), p.out_hw()[0], p.out_hw()[1]]),
            ),
            ("kernel", ints(&w.kernel)),
            ("strides", ints(&w.strides)),
            ("pads", ints(&w.pads)),
            ("dilations", ints(&w.dilations)),
            ("scratch", A::Int(scratch as i64)),
        ]);
        if !e.is_pointwise() {
            // A stem-like first stage: its window too.
            let ew = e.window();
            a.extend([
                ("e_kernel", ints(&ew.kernel)),
                ("e_strides", ints(&ew.strides)),
                ("e_pads", ints(&ew.pads)),
                ("e_dilations", ints(&ew.dilations)),
            ]);
        }
    }
    for (names, k) in BOTTLENECK_STAGE_ATTRS.iter().zip(stages) {
        if let Kernel::ConvInt8 {
            x_zero_point,
            w_zero_points,
            scales,
            multipliers,
            shifts,
            out_zero_point,
            range,
            rounding,
            ..
        } = k
        {
            a.extend([
                (names[0], A::Int(i64::from(*x_zero_point))),
                (
                    names[1],
                    A::Ints(w_zero_points.iter().map(|&z| i64::from(z)).collect()),
                ),
                (names[2], A::F64s(scales.clone())),
                (
                    names[3],
                    A::Ints(multipliers.iter().map(|&m| i64::from(m)).collect()),
                ),
                (
                    names[4],
                    A::Ints(shifts.iter().map(|&s| i64::from(s)).collect()),
                ),
                (names[5], A::Int(i64::from(*out_zero_point))),
                (
                    names[6],
                    A::Ints(vec![i64::from(range.min), i64::from(range.max)]),
                ),
            ]);
            if names[0].starts_with('p') {
                a.push(("rounding", A::Word(rounding_name(*rounding))));
            }
        }
    }
    a
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

/// The parts of a [`Kernel::BottleneckBackward`]: the geometries of the projection, the
/// depthwise convolution and the expansion, `None` unless each part is the kernel it must be
/// and they chain.
pub fn bottleneck_backward_parts(k: &Kernel) -> Option<[Conv2dGeometry; 3]> {
    let Kernel::BottleneckBackward {
        project,
        depthwise,
        expand,
        dx,
        update,
        kept,
        ..
    } = k
    else {
        return None;
    };
    let input_grad = |k: &Kernel| match k {
        Kernel::ConvBackwardInputInt8 { geometry, .. } => Some(*geometry),
        _ => None,
    };
    let (p, d) = (input_grad(project)?, input_grad(depthwise)?);
    let chained = p.is_pointwise()
        && d.is_depthwise()
        && d.c_in() == d.c_out()
        && expand.is_pointwise()
        && [p.n(), d.n(), expand.n()] == [1; 3]
        && expand.c_out() == d.c_in()
        && expand.out_hw() == d.in_hw()
        && d.c_out() == p.c_in()
        && d.out_hw() == p.in_hw();
    let dx_ok = dx.as_deref().is_none_or(|k| input_grad(k) == Some(*expand));
    // The updated weight's geometry: the expansion's, or its trained slice's.
    let trained = match kept {
        None => *expand,
        Some(k) if *k <= expand.c_in() && dx.is_some() && update.is_some() => {
            Conv2dGeometry::new(1, *k, expand.in_hw(), expand.c_out(), 1, expand.window()).ok()?
        }
        Some(_) => return None,
    };
    let update_ok = update.as_ref().is_none_or(|(deq, sgd)| {
        matches!(deq.as_ref(), Kernel::Dequantize { len, .. } if *len == trained.input_len())
            && matches!(sgd.as_ref(), Kernel::ConvWeightSgd { geometry, update }
                if *geometry == trained
                    && matches!(update.as_ref(), Kernel::Sgd { elem: BufElem::I8, slice: None, .. }))
    });
    // A split dx quantizes per tensor or per output channel (as the split kernel).
    let split_ok = kept.is_none()
        || matches!(dx.as_deref(), Some(Kernel::ConvBackwardInputInt8 { scales, .. })
            if scales.len() == 1 || scales.len() == expand.c_out());
    (chained && dx_ok && update_ok && split_ok).then_some([p, d, *expand])
}

fn bottleneck_backward_signature(k: &Kernel) -> Option<Signature> {
    use BufElem::{Bits, F32, I64, I8};
    let [p, d, e] = bottleneck_backward_parts(k)?;
    let Kernel::BottleneckBackward {
        dx,
        depthwise_bias,
        expand_bias,
        update,
        kept,
        ..
    } = k
    else {
        return None;
    };
    let mut inputs = vec![
        (F32, p.output_len()),
        (I8, p.weight_len()),
        (Bits, d.output_len()),
        (I8, d.weight_len()),
        (Bits, d.input_len()),
    ];
    let mut outputs = Vec::new();
    match update {
        Some((_, sgd)) => {
            let x_len = kept.map_or(e.input_len(), |k| k * e.in_plane());
            inputs.extend([(I8, x_len), (F32, 1), (I64, 1)]);
            if let Some(k) = kept {
                inputs.push((I8, e.c_out() * (e.c_in() - k)));
            }
            outputs.extend(sgd.signature().outputs);
        }
        None if dx.is_some() => inputs.push((I8, e.weight_len())),
        None => {}
    }
    if dx.is_some() {
        outputs.push((F32, e.input_len()));
    }
    outputs.extend(
        [*depthwise_bias, *expand_bias]
            .iter()
            .filter(|&&b| b)
            .map(|_| (F32, d.c_in())),
    );
    let scratch = mite_kernels::float::bottleneck_backward_scratch_len(&d, &e);
    Some(sig(inputs, outputs, Some((F32, scratch))))
}

/// A streamed bottleneck backward's attributes: the projection's, the depthwise and the
/// expansion's weight quantization (prefixed `p_`, `d_`, `e_`), the geometries, which results
/// it has, and the update's.
fn bottleneck_backward_attrs(k: &Kernel) -> Vec<(&'static str, KernelAttr)> {
    use KernelAttr as A;
    let Kernel::BottleneckBackward {
        project,
        depthwise,
        expand,
        dx,
        depthwise_bias,
        expand_bias,
        update,
        kept,
    } = k
    else {
        return Vec::new();
    };
    let mut a = Vec::new();
    let e = expand;
    a.push(("in", ints(&[e.n(), e.c_in(), e.in_hw()[0], e.in_hw()[1]])));
    if let Kernel::ConvBackwardInputInt8 { geometry: d, .. } = depthwise.as_ref() {
        let w = d.window();
        a.extend([
            ("mid", ints(&[d.c_in(), d.in_hw()[0], d.in_hw()[1]])),
            ("kernel", ints(&w.kernel)),
            ("strides", ints(&w.strides)),
            ("pads", ints(&w.pads)),
            ("dilations", ints(&w.dilations)),
        ]);
    }
    if let Kernel::ConvBackwardInputInt8 { geometry: p, .. } = project.as_ref() {
        a.push((
            "out",
            ints(&[p.n(), p.c_out(), p.out_hw()[0], p.out_hw()[1]]),
        ));
    }
    let names = [
        ("p_scales", "p_zero_points", "p_inner"),
        ("d_scales", "d_zero_points", "d_inner"),
        ("e_scales", "e_zero_points", "e_inner"),
    ];
    for (k, (s, z, i)) in [
        Some(project.as_ref()),
        Some(depthwise.as_ref()),
        dx.as_deref(),
    ]
    .into_iter()
    .zip(names)
    {
        if let Some(Kernel::ConvBackwardInputInt8 {
            scales,
            zero_points,
            inner,
            ..
        }) = k
        {
            a.extend([
                (s, A::F32s(scales.clone())),
                (
                    z,
                    A::Ints(zero_points.iter().map(|&z| i64::from(z)).collect()),
                ),
                (i, A::Int(*inner as i64)),
            ]);
        }
    }
    a.extend([
        ("dx", A::Bool(dx.is_some())),
        ("depthwise_bias", A::Bool(*depthwise_bias)),
        ("expand_bias", A::Bool(*expand_bias)),
    ]);
    if let Some(k) = kept {
        a.push(("kept", A::Int(*k as i64)));
    }
    if let Some((deq, sgd)) = update {
        if let Kernel::Dequantize {
            scales,
            zero_points,
            inner,
            ..
        } = deq.as_ref()
        {
            a.extend([
                ("x_scales", A::F32s(scales.clone())),
                (
                    "x_zero_points",
                    A::Ints(zero_points.iter().map(|&z| i64::from(z)).collect()),
                ),
                ("x_inner", A::Int(*inner as i64)),
            ]);
        }
        if let Kernel::ConvWeightSgd { update, .. } = sgd.as_ref() {
            a.extend(update.attrs());
        }
    }
    a
}
