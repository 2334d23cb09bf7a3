//! The fixed part of every crate mite emits (copied verbatim by `mite-rustgen`): memory blocks,
//! borrowing typed views of disjoint buffers out of them without `unsafe`, the errors, the
//! checksum of saved parameters, and one small runner per kernel that builds the kernel's
//! parameter struct from a `static` descriptor and calls `mite-kernels`.

use mite_kernels::float::Math;
use mite_kernels::int8::AddParams;
use mite_kernels::requant::{ActRange, OutputStage, Requant, Rounding};
use mite_kernels::sgd::{ChannelQuant, SgdParams, SliceView, UpdateRounding};
use mite_kernels::{Conv2dGeometry, KernelError, Window2d};

/// What can go wrong in a call of the model's API.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Error {
    /// The label is not a class index (`0..classes`); nothing was changed.
    BadLabel {
        /// The label given.
        label: i32,
        /// The number of classes.
        classes: usize,
    },
    /// The loss is NaN or infinite; the update was skipped and nothing was changed.
    NonFiniteLoss {
        /// The loss.
        loss: f32,
    },
    /// A kernel refused its arguments (cannot happen for a crate mite verified, unless a
    /// parameter update turned NaN: then the updates before it in this step have been applied).
    Kernel(KernelError),
    /// A buffer did not fit its memory block or alignment (cannot happen for a verified crate).
    Layout,
    /// A saved-parameter image is too short, of another model, or fails its checksum; nothing
    /// was changed.
    BadImage,
    /// The output slice for `save_params` is shorter than [`crate::SAVE_BYTES`].
    ShortBuffer,
    /// [`crate::Model::init`] (or a successful `load_params`) has not run yet.
    NotInitialized,
}

impl From<KernelError> for Error {
    fn from(e: KernelError) -> Self {
        Error::Kernel(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::BadLabel { label, classes } => {
                write!(f, "label {label} is not in 0..{classes}")
            }
            Error::NonFiniteLoss { loss } => write!(f, "the loss is not finite ({loss})"),
            Error::Kernel(e) => write!(f, "kernel error: {e}"),
            Error::Layout => write!(f, "a buffer does not fit its memory block"),
            Error::BadImage => write!(f, "the parameter image is invalid"),
            Error::ShortBuffer => write!(f, "the output buffer is too short"),
            Error::NotInitialized => write!(f, "the model is not initialised"),
        }
    }
}

/// `N` bytes aligned to 8, so that views of `i32`, `f32` and `i64` at aligned offsets are valid.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct Block<const N: usize>(pub [u8; N]);

impl<const N: usize> Block<N> {
    /// All zeros (so that a `static` holding it lands in `.bss`).
    pub const fn zeroed() -> Self {
        Block([0; N])
    }
}

/// A flash table: bytes aligned to 8 (included from `data/`).
#[repr(C, align(8))]
pub struct Table<const N: usize>(pub [u8; N]);

/// Splits `bytes` into the `K` disjoint byte ranges `ranges` (sorted, non-overlapping).
pub fn carve<const K: usize>(
    bytes: &mut [u8],
    ranges: [(usize, usize); K],
) -> Result<[&mut [u8]; K], Error> {
    let mut rest = bytes;
    let mut pos = 0;
    let mut ok = true;
    let parts = ranges.map(|(start, end)| {
        let tail = core::mem::take(&mut rest);
        let split = start
            .checked_sub(pos)
            .and_then(|skip| tail.split_at_mut_checked(skip))
            .and_then(|(_, tail)| tail.split_at_mut_checked(end.checked_sub(start)?));
        match split {
            Some((part, tail)) => {
                rest = tail;
                pos = end;
                part
            }
            None => {
                ok = false;
                &mut []
            }
        }
    });
    if ok {
        Ok(parts)
    } else {
        Err(Error::Layout)
    }
}

/// The bytes `start..end` of `bytes`.
pub fn region(bytes: &[u8], start: usize, end: usize) -> Result<&[u8], Error> {
    bytes.get(start..end).ok_or(Error::Layout)
}

/// The bytes `start..end` of `bytes`, mutably.
pub fn region_mut(bytes: &mut [u8], start: usize, end: usize) -> Result<&mut [u8], Error> {
    bytes.get_mut(start..end).ok_or(Error::Layout)
}

/// The first element of a view.
pub fn first<T: Copy>(v: &[T]) -> Result<T, Error> {
    v.first().copied().ok_or(Error::Layout)
}

/// An `i8` view.
pub fn i8s(b: &[u8]) -> &[i8] {
    bytemuck::cast_slice(b)
}

/// A mutable `i8` view.
pub fn i8s_mut(b: &mut [u8]) -> &mut [i8] {
    bytemuck::cast_slice_mut(b)
}

/// A typed view (`i32`, `f32`, `u32`, `i64`) of aligned bytes.
pub fn view<T: bytemuck::Pod>(b: &[u8]) -> Result<&[T], Error> {
    bytemuck::try_cast_slice(b).map_err(|_| Error::Layout)
}

/// A mutable typed view of aligned bytes.
pub fn view_mut<T: bytemuck::Pod>(b: &mut [u8]) -> Result<&mut [T], Error> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| Error::Layout)
}

/// `exp` and `ln` from `libm`: the same bits on the host and on the microcontroller.
pub struct LibM;

impl Math<f32> for LibM {
    fn exp(x: f32) -> f32 {
        libm::expf(x)
    }
    fn ln(x: f32) -> f32 {
        libm::logf(x)
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) continued from `crc` over `bytes`
/// (start with `0xFFFF_FFFF`, finish with `!crc`).
pub fn crc32(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    crc
}

/// A convolution's resolved parameters, kept in flash.
pub struct ConvDesc {
    /// Batch, input channels, input height and width.
    pub input: [usize; 4],
    /// Output channels.
    pub c_out: usize,
    /// Groups.
    pub groups: usize,
    /// The window.
    pub window: Window2d,
    /// Input zero point.
    pub x_zp: i8,
    /// Weight zero points (empty: symmetric).
    pub w_zp: &'static [i8],
    /// Requantization factors.
    pub scales: &'static [f64],
    /// Their fixed-point multipliers.
    pub multipliers: &'static [i32],
    /// Their shifts.
    pub shifts: &'static [i32],
    /// Output zero point.
    pub y_zp: i8,
    /// Output clamp.
    pub range: ActRange,
    /// Rounding mode.
    pub rounding: Rounding,
}

/// Runs `mite_kernels::int8::conv2d_int8`.
pub fn conv_int8(
    d: &ConvDesc,
    x: &[i8],
    w: &[i8],
    bias: Option<&[i32]>,
    out: &mut [i8],
    scratch: &mut [i32],
) -> Result<(), Error> {
    let [n, c_in, h, wd] = d.input;
    let g = Conv2dGeometry::new(n, c_in, [h, wd], d.c_out, d.groups, d.window)?;
    let requant = Requant::new(d.rounding, d.scales, d.multipliers, d.shifts)?;
    let stage = OutputStage {
        requant,
        zero_point: d.y_zp,
        range: d.range,
    };
    let p = mite_kernels::int8::Conv2dInt8Params::new(g, d.x_zp, d.w_zp, stage)?;
    mite_kernels::int8::conv2d_int8(x, w, bias, out, scratch, &p)?;
    Ok(())
}

/// The parameters of one convolution of a [`ConvDesc`].
fn conv_params(d: &ConvDesc) -> Result<mite_kernels::int8::Conv2dInt8Params<'_>, Error> {
    let [n, c_in, h, wd] = d.input;
    let g = Conv2dGeometry::new(n, c_in, [h, wd], d.c_out, d.groups, d.window)?;
    let requant = Requant::new(d.rounding, d.scales, d.multipliers, d.shifts)?;
    let stage = OutputStage {
        requant,
        zero_point: d.y_zp,
        range: d.range,
    };
    Ok(mite_kernels::int8::Conv2dInt8Params::new(
        g, d.x_zp, d.w_zp, stage,
    )?)
}

/// Runs `mite_kernels::int8::bottleneck_int8` with the expansion, depthwise and projection
/// convolutions `d`, their weights `w` and biases `b`.
pub fn bottleneck_int8(
    d: [&ConvDesc; 3],
    x: &[i8],
    w: [&[i8]; 3],
    b: [&[i32]; 3],
    out: &mut [i8],
    scratch: &mut [i8],
) -> Result<(), Error> {
    let p = mite_kernels::int8::BottleneckInt8Params::new(
        conv_params(d[0])?,
        conv_params(d[1])?,
        conv_params(d[2])?,
    )?;
    let weights = mite_kernels::int8::BottleneckWeights {
        w_expand: w[0],
        b_expand: Some(b[0]),
        w_depthwise: w[1],
        b_depthwise: Some(b[1]),
        w_project: w[2],
        b_project: Some(b[2]),
    };
    mite_kernels::int8::bottleneck_int8(x, &weights, out, scratch, &p)?;
    Ok(())
}

/// The parameters of two chained bottlenecks from their six convolutions `d` (expansion,
/// depthwise, projection of the first then of the second).
fn chain_params<'a>(
    d: [&'a ConvDesc; 6],
) -> Result<mite_kernels::int8::BottleneckChainInt8Params<'a>, Error> {
    let block = |i: usize| -> Result<_, Error> {
        Ok(mite_kernels::int8::BottleneckInt8Params::new(
            conv_params(d[i])?,
            conv_params(d[i + 1])?,
            conv_params(d[i + 2])?,
        )?)
    };
    Ok(mite_kernels::int8::BottleneckChainInt8Params::new(
        block(0)?,
        block(3)?,
    )?)
}

/// The two blocks' weights `w` and biases `b` (in [`chain_params`]' order).
fn chain_weights<'a>(
    w: [&'a [i8]; 6],
    b: [&'a [i32]; 6],
) -> [mite_kernels::int8::BottleneckWeights<'a>; 2] {
    let weights = |i: usize| mite_kernels::int8::BottleneckWeights {
        w_expand: w[i],
        b_expand: Some(b[i]),
        w_depthwise: w[i + 1],
        b_depthwise: Some(b[i + 1]),
        w_project: w[i + 2],
        b_project: Some(b[i + 2]),
    };
    [weights(0), weights(3)]
}

/// Runs `mite_kernels::int8::bottleneck_chain_int8` with the six convolutions `d` of two
/// bottlenecks (expansion, depthwise, projection of the first then of the second), their
/// weights `w` and biases `b` in the same order.
pub fn bottleneck_chain_int8(
    d: [&ConvDesc; 6],
    x: &[i8],
    w: [&[i8]; 6],
    b: [&[i32]; 6],
    out: &mut [i8],
    scratch: &mut [i8],
) -> Result<(), Error> {
    let p = chain_params(d)?;
    let [w0, w1] = chain_weights(w, b);
    mite_kernels::int8::bottleneck_chain_int8(x, [&w0, &w1], out, scratch, &p)?;
    Ok(())
}

/// Runs `mite_kernels::int8::bottleneck_chain_int8_in_place`: as [`bottleneck_chain_int8`],
/// but `buf` (the input) is consumed and the output left at its start.
pub fn bottleneck_chain_int8_in_place(
    d: [&ConvDesc; 6],
    buf: &mut [i8],
    w: [&[i8]; 6],
    b: [&[i32]; 6],
    scratch: &mut [i8],
) -> Result<(), Error> {
    let p = chain_params(d)?;
    let [w0, w1] = chain_weights(w, b);
    mite_kernels::int8::bottleneck_chain_int8_in_place(buf, [&w0, &w1], scratch, &p)?;
    Ok(())
}

/// The channels of a parameter a sparse update's gradient covers (`[outer, channels, inner]`,
/// channels `start..start + count`).
pub struct SliceDesc {
    /// Channels along the sliced axis.
    pub channels: usize,
    /// Product of the dims after it.
    pub inner: usize,
    /// First covered channel.
    pub start: usize,
    /// Covered channels.
    pub count: usize,
}

/// An SGD / QAS update's resolved parameters, kept in flash.
pub struct SgdDesc {
    /// `η = lr · lr_scale`.
    pub lr_scale: f32,
    /// Momentum (0: none).
    pub momentum: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// Quantization-aware scaling.
    pub qas: bool,
    /// Stochastic rounding seed (`None`: half to even).
    pub seed: Option<i64>,
    /// Per-channel scales of an integer parameter.
    pub scales: &'static [f32],
    /// Per-channel zero points of an integer parameter.
    pub zero_points: &'static [i32],
    /// Elements per channel step.
    pub inner: usize,
    /// Steps a gradient is accumulated over (1: none).
    pub accumulate: u32,
    /// The channels the gradient covers (`None`: all).
    pub slice: Option<SliceDesc>,
}

impl SgdDesc {
    fn params(&self, lr: f32, step: i64) -> SgdParams {
        SgdParams {
            eta: lr * self.lr_scale,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            qas: self.qas,
            rounding: match self.seed {
                Some(seed) => UpdateRounding::Stochastic { seed, step },
                None => UpdateRounding::HalfEven,
            },
        }
    }
}

/// A parameter element type the optimizer updates.
pub trait Trained: Copy {
    /// Runs the `mite_kernels::sgd` update of this element type.
    fn update(
        q: &mut [Self],
        g: &[f32],
        m: Option<&mut [f32]>,
        d: &SgdDesc,
        p: &SgdParams,
    ) -> Result<(), KernelError>;
}

impl Trained for i8 {
    fn update(
        q: &mut [i8],
        g: &[f32],
        m: Option<&mut [f32]>,
        d: &SgdDesc,
        p: &SgdParams,
    ) -> Result<(), KernelError> {
        let cq = ChannelQuant::new(d.scales, d.zero_points, d.inner)?;
        mite_kernels::sgd::sgd_i8(q, g, m, &cq, p)
    }
}

impl Trained for i32 {
    fn update(
        q: &mut [i32],
        g: &[f32],
        m: Option<&mut [f32]>,
        d: &SgdDesc,
        p: &SgdParams,
    ) -> Result<(), KernelError> {
        let cq = ChannelQuant::new(d.scales, d.zero_points, d.inner)?;
        mite_kernels::sgd::sgd_i32(q, g, m, &cq, p)
    }
}

impl Trained for f32 {
    fn update(
        w: &mut [f32],
        g: &[f32],
        m: Option<&mut [f32]>,
        _d: &SgdDesc,
        p: &SgdParams,
    ) -> Result<(), KernelError> {
        mite_kernels::sgd::sgd_f32(w, g, m, p)
    }
}

/// A weight element type the fused weight-gradient update trains.
pub trait WeightTrained: Copy {
    /// Runs the `mite_kernels::update` kernel of this element type.
    #[allow(clippy::too_many_arguments)]
    fn conv_update(
        x: &[f32],
        dy: &[f32],
        g: &Conv2dGeometry,
        view: Option<&SliceView>,
        q: &mut [Self],
        m: Option<&mut [f32]>,
        d: &SgdDesc,
        p: &SgdParams,
        scratch: &mut [f32],
    ) -> Result<(), KernelError>;
}

impl WeightTrained for i8 {
    fn conv_update(
        x: &[f32],
        dy: &[f32],
        g: &Conv2dGeometry,
        view: Option<&SliceView>,
        q: &mut [i8],
        m: Option<&mut [f32]>,
        d: &SgdDesc,
        p: &SgdParams,
        scratch: &mut [f32],
    ) -> Result<(), KernelError> {
        let cq = ChannelQuant::new(d.scales, d.zero_points, d.inner)?;
        mite_kernels::update::conv2d_weight_sgd_i8(x, dy, g, view, q, m, &cq, p, scratch)
    }
}

impl WeightTrained for f32 {
    fn conv_update(
        x: &[f32],
        dy: &[f32],
        g: &Conv2dGeometry,
        view: Option<&SliceView>,
        w: &mut [f32],
        m: Option<&mut [f32]>,
        _d: &SgdDesc,
        p: &SgdParams,
        scratch: &mut [f32],
    ) -> Result<(), KernelError> {
        mite_kernels::update::conv2d_weight_sgd_f32(x, dy, g, view, w, m, p, scratch)
    }
}

/// A convolution's weight gradient fused with the weight's update (`mite_kernels::update`):
/// no gradient buffer.
#[allow(clippy::too_many_arguments)]
pub fn conv_weight_sgd<T: WeightTrained>(
    geom: &GeomDesc,
    d: &SgdDesc,
    x: &[f32],
    dy: &[f32],
    lr: &[f32],
    step: &[i64],
    q: &mut [T],
    m: Option<&mut [f32]>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    let step = first(step)?;
    let p = d.params(first(lr)?, step);
    let view = d.slice.as_ref().map(|s| SliceView {
        outer: q.len() / (s.channels * s.inner).max(1),
        channels: s.channels,
        inner: s.inner,
        start: s.start,
        count: s.count,
    });
    T::conv_update(x, dy, &geom.geometry()?, view.as_ref(), q, m, d, &p, scratch)?;
    Ok(())
}

/// Writes the full-size gradient of a channel slice: `g`'s elements at the covered positions,
/// zeros elsewhere.
fn scatter(g: &[f32], s: &SliceDesc, full: &mut [f32]) -> Result<(), Error> {
    full.fill(0.0);
    let run = s.count * s.inner;
    let stride = s.channels * s.inner;
    if run == 0 {
        return Ok(());
    }
    for (o, src) in g.chunks_exact(run).enumerate() {
        let at = o * stride + s.start * s.inner;
        full.get_mut(at..at + run)
            .ok_or(Error::Layout)?
            .copy_from_slice(src);
    }
    Ok(())
}

/// One parameter update: accumulation over `accumulate` steps into `acc` (the mean in
/// `scratch`), or a channel slice's gradient scattered into `scratch` (then the elements outside
/// the slice see a zero gradient, which mite only emits where that leaves them unchanged: no
/// momentum, no weight decay), then the `mite_kernels::sgd` rule.
#[allow(clippy::too_many_arguments)]
pub fn sgd<T: Trained>(
    d: &SgdDesc,
    g: &[f32],
    lr: &[f32],
    step: &[i64],
    q: &mut [T],
    m: Option<&mut [f32]>,
    acc: Option<&mut [f32]>,
    scratch: Option<&mut [f32]>,
) -> Result<(), Error> {
    let step = first(step)?;
    let p = d.params(first(lr)?, step);
    match (&d.slice, acc, scratch) {
        (None, None, _) => T::update(q, g, m, d, &p)?,
        (None, Some(acc), Some(mean)) => {
            if mite_kernels::sgd::accumulate(g, acc, mean, step, d.accumulate)? {
                T::update(q, mean, m, d, &p)?;
            }
        }
        (Some(s), None, Some(full)) => {
            scatter(g, s, full)?;
            T::update(q, full, m, d, &p)?;
        }
        _ => return Err(Error::Layout),
    }
    Ok(())
}

/// Runs `mite_kernels::int8::add_int8`.
pub fn add_int8(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) -> Result<(), Error> {
    mite_kernels::int8::add_int8(a, b, out, p)?;
    Ok(())
}

/// `add_int8` with its result over operand `a` (`y = a + b`), element by element through the
/// kernel's own `AddParams::add_one`.
pub fn add_int8_into_a(p: &AddParams, y: &mut [i8], b: &[i8]) -> Result<(), Error> {
    mite_kernels::error::check_len("add b", y.len(), b.len())?;
    for (y, &b) in y.iter_mut().zip(b) {
        *y = p.add_one(*y, b);
    }
    Ok(())
}

/// `add_int8` with its result over operand `b` (`y = a + b`).
pub fn add_int8_into_b(p: &AddParams, a: &[i8], y: &mut [i8]) -> Result<(), Error> {
    mite_kernels::error::check_len("add a", y.len(), a.len())?;
    for (y, &a) in y.iter_mut().zip(a) {
        *y = p.add_one(a, *y);
    }
    Ok(())
}

/// Elementwise `f32` sum.
pub fn add_f32(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<(), Error> {
    mite_kernels::error::check_len("add_f32 b", a.len(), b.len())?;
    mite_kernels::error::check_len("add_f32 out", a.len(), out.len())?;
    for ((y, &x), &z) in out.iter_mut().zip(a).zip(b) {
        *y = x + z;
    }
    Ok(())
}

/// Elementwise `f32` sum into the first operand (`y += b`; `f32` addition commutes, so this
/// also serves a result over the second operand).
pub fn add_f32_into(y: &mut [f32], b: &[f32]) -> Result<(), Error> {
    mite_kernels::error::check_len("add_f32 b", y.len(), b.len())?;
    for (y, &z) in y.iter_mut().zip(b) {
        *y += z;
    }
    Ok(())
}

/// Runs `mite_kernels::int8::global_avg_pool_int8`.
pub fn global_avg_pool_int8(
    dims: [usize; 4],
    rounding: Rounding,
    x: &[i8],
    out: &mut [i8],
) -> Result<(), Error> {
    mite_kernels::int8::global_avg_pool_int8(x, dims, rounding, out)?;
    Ok(())
}

/// Runs `mite_kernels::int8::mean_int8`.
pub fn mean_int8(
    dims: [usize; 4],
    p: &mite_kernels::int8::MeanParams,
    x: &[i8],
    out: &mut [i8],
) -> Result<(), Error> {
    mite_kernels::int8::mean_int8(x, dims, out, p)?;
    Ok(())
}

/// Per-axis quantization of a dequantization, kept in flash.
pub struct DequantDesc {
    /// Scales.
    pub scales: &'static [f32],
    /// Zero points.
    pub zero_points: &'static [i8],
    /// Elements per channel step.
    pub inner: usize,
}

/// Runs `mite_kernels::int8::dequantize`.
pub fn dequantize(d: &DequantDesc, x: &[i8], out: &mut [f32]) -> Result<(), Error> {
    let p = mite_kernels::int8::PerAxis::new(d.scales, d.zero_points, d.inner)?;
    mite_kernels::int8::dequantize(x, out, &p)?;
    Ok(())
}

/// Runs `mite_kernels::float::make_mask` over `f32` values.
pub fn mask_f32(min: f32, max: f32, x: &[f32], out: &mut [u32]) -> Result<(), Error> {
    mite_kernels::float::make_mask(x, out, &mite_kernels::float::Mask { min, max })?;
    Ok(())
}

/// Runs `mite_kernels::float::make_mask` over the integer values of an `i8` tensor (as `f32`),
/// 32 elements (one mask word) at a time.
pub fn mask_int8(min: f32, max: f32, x: &[i8], out: &mut [u32]) -> Result<(), Error> {
    mite_kernels::error::check_len(
        "mask words",
        mite_kernels::float::mask_words(x.len()),
        out.len(),
    )?;
    let mask = mite_kernels::float::Mask { min, max };
    for (chunk, word) in x.chunks(32).zip(out.chunks_mut(1)) {
        let mut values = [0.0_f32; 32];
        for (v, &q) in values.iter_mut().zip(chunk) {
            *v = f32::from(q);
        }
        mite_kernels::float::make_mask(&values[..chunk.len()], word, &mask)?;
    }
    Ok(())
}

/// Runs `mite_kernels::float::apply_mask`.
pub fn apply_mask(dy: &[f32], mask: &[u32], out: &mut [f32]) -> Result<(), Error> {
    mite_kernels::float::apply_mask(dy, mask, out)?;
    Ok(())
}

/// `apply_mask` in place: zeroes the elements whose mask bit is clear.
pub fn apply_mask_in_place(y: &mut [f32], mask: &[u32]) -> Result<(), Error> {
    mite_kernels::error::check_len(
        "mask words",
        mite_kernels::float::mask_words(y.len()),
        mask.len(),
    )?;
    for (chunk, &word) in y.chunks_mut(32).zip(mask) {
        for (bit, v) in chunk.iter_mut().enumerate() {
            if word >> bit & 1 == 0 {
                *v = 0.0;
            }
        }
    }
    Ok(())
}

/// Copies channels `start..start + size` of `x` viewed as `[outer, channels, inner]`.
pub fn slice<T: Copy>(
    [outer, channels, inner, start, size]: [usize; 5],
    x: &[T],
    out: &mut [T],
) -> Result<(), Error> {
    mite_kernels::error::check_len("slice x", outer * channels * inner, x.len())?;
    mite_kernels::error::check_len("slice out", outer * size * inner, out.len())?;
    let run = size * inner;
    if run == 0 {
        return Ok(());
    }
    for (o, dst) in out.chunks_exact_mut(run).enumerate() {
        let at = (o * channels + start) * inner;
        dst.copy_from_slice(x.get(at..at + run).ok_or(Error::Layout)?);
    }
    Ok(())
}

/// A convolution's geometry, kept in flash.
pub struct GeomDesc {
    /// Batch, input channels, input height and width.
    pub input: [usize; 4],
    /// Output channels.
    pub c_out: usize,
    /// Groups.
    pub groups: usize,
    /// The window.
    pub window: Window2d,
}

impl GeomDesc {
    fn geometry(&self) -> Result<Conv2dGeometry, Error> {
        let [n, c_in, h, w] = self.input;
        Ok(Conv2dGeometry::new(
            n,
            c_in,
            [h, w],
            self.c_out,
            self.groups,
            self.window,
        )?)
    }
}

/// Runs `mite_kernels::float::conv2d_backward_input`.
pub fn conv_backward_input(d: &GeomDesc, dy: &[f32], w: &[f32], dx: &mut [f32]) -> Result<(), Error> {
    mite_kernels::float::conv2d_backward_input(dy, w, dx, &d.geometry()?)?;
    Ok(())
}

/// Runs `mite_kernels::float::conv2d_backward_input_int8` (the `i8` weight dequantized tap by tap).
pub fn conv_backward_input_int8(
    d: &GeomDesc,
    q: &DequantDesc,
    dy: &[f32],
    w: &[i8],
    dx: &mut [f32],
) -> Result<(), Error> {
    let p = mite_kernels::int8::PerAxis::new(q.scales, q.zero_points, q.inner)?;
    mite_kernels::float::conv2d_backward_input_int8(dy, w, &p, dx, &d.geometry()?)?;
    Ok(())
}

/// Runs `mite_kernels::split::conv2d_backward_input_int8_split`: the input gradient of a
/// convolution whose weight is its trained first `kept` input channels then the frozen rest.
pub fn conv_backward_input_int8_split(
    d: &GeomDesc,
    q: &DequantDesc,
    kept: usize,
    dy: &[f32],
    trained: &[i8],
    frozen: &[i8],
    dx: &mut [f32],
) -> Result<(), Error> {
    let p = mite_kernels::int8::PerAxis::new(q.scales, q.zero_points, q.inner)?;
    let w = mite_kernels::split::SplitWeight {
        trained,
        frozen,
        kept,
    };
    mite_kernels::split::conv2d_backward_input_int8_split(dy, &w, &p, dx, &d.geometry()?)?;
    Ok(())
}

/// Runs `mite_kernels::split::conv2d_int8_split`: a convolution whose weight is its trained
/// first `kept` input channels then the frozen rest; `scratch` holds the accumulator plane,
/// then the gathered weight rows.
#[allow(clippy::too_many_arguments)]
pub fn conv_int8_split(
    d: &ConvDesc,
    kept: usize,
    x: &[i8],
    trained: &[i8],
    frozen: &[i8],
    bias: Option<&[i32]>,
    out: &mut [i8],
    scratch: &mut [i32],
) -> Result<(), Error> {
    let p = conv_params(d)?;
    let plane = mite_kernels::split::conv2d_int8_split_scratch_len(&p.geometry);
    let (acc, rows) = scratch.split_at_mut(plane.min(scratch.len()));
    let w = mite_kernels::split::SplitWeight {
        trained,
        frozen,
        kept,
    };
    mite_kernels::split::conv2d_int8_split(
        x,
        &w,
        bias,
        out,
        acc,
        bytemuck::cast_slice_mut(rows),
        &p,
    )?;
    Ok(())
}

/// Runs `mite_kernels::float::conv2d_backward_input_int8_in_place` (`buf`: `dy` in, `dx` out).
pub fn conv_backward_input_int8_in_place(
    d: &GeomDesc,
    q: &DequantDesc,
    buf: &mut [f32],
    w: &[i8],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let p = mite_kernels::int8::PerAxis::new(q.scales, q.zero_points, q.inner)?;
    mite_kernels::float::conv2d_backward_input_int8_in_place(buf, w, &p, scratch, &d.geometry()?)?;
    Ok(())
}

/// Runs `mite_kernels::float::conv2d_backward_weight`.
pub fn conv_backward_weight(d: &GeomDesc, x: &[f32], dy: &[f32], dw: &mut [f32]) -> Result<(), Error> {
    mite_kernels::float::conv2d_backward_weight(x, dy, dw, &d.geometry()?)?;
    Ok(())
}

/// Runs `mite_kernels::float::conv2d_backward_bias` (`dy` `[n, c, h, w]`).
pub fn conv_backward_bias(dims: [usize; 4], dy: &[f32], db: &mut [f32]) -> Result<(), Error> {
    let [n, c, h, w] = dims;
    // A 1×1 identity convolution has the bias gradient's geometry.
    let window = Window2d {
        kernel: [1, 1],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
    };
    let g = Conv2dGeometry::new(n, c, [h, w], c, 1, window)?;
    mite_kernels::float::conv2d_backward_bias(dy, db, &g)?;
    Ok(())
}

/// Runs `mite_kernels::float::global_avg_pool_backward`.
pub fn global_avg_pool_backward(dims: [usize; 4], dy: &[f32], dx: &mut [f32]) -> Result<(), Error> {
    mite_kernels::float::global_avg_pool_backward(dy, dims, dx)?;
    Ok(())
}

/// Runs `mite_kernels::float::softmax_cross_entropy` (exp and ln from `libm`).
pub fn softmax_cross_entropy(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[i32],
    loss: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let l = mite_kernels::float::softmax_cross_entropy::<f32, LibM>(
        logits, labels, scratch, batch, classes,
    )?;
    *loss.first_mut().ok_or(Error::Layout)? = l;
    Ok(())
}

/// Runs `mite_kernels::float::softmax_cross_entropy_backward` (exp and ln from `libm`).
pub fn softmax_cross_entropy_backward(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[i32],
    dloss: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    mite_kernels::float::softmax_cross_entropy_backward::<f32, LibM>(
        logits,
        labels,
        first(dloss)?,
        out,
        batch,
        classes,
    )?;
    Ok(())
}

/// The bits of an output element (for hashing outputs identically on every target).
pub trait Bits: Copy {
    /// The value's bits, widened to `u32`.
    fn bits(self) -> u32;
}

impl Bits for f32 {
    fn bits(self) -> u32 {
        self.to_bits()
    }
}

impl Bits for i8 {
    fn bits(self) -> u32 {
        u32::from(self as u8)
    }
}

impl Bits for i32 {
    fn bits(self) -> u32 {
        self as u32
    }
}

/// A streamed bottleneck backward's constants (`mite_kernels::float::bottleneck_backward`),
/// kept in flash: the three convolutions' geometries and weight quantizations, the saved
/// input's quantization and the expansion weight's update, when trained.
pub struct BottleneckBackwardDesc {
    /// The projection's geometry.
    pub project: &'static GeomDesc,
    /// Its weight's quantization.
    pub project_w: &'static DequantDesc,
    /// The depthwise geometry.
    pub depthwise: &'static GeomDesc,
    /// Its weight's quantization.
    pub depthwise_w: &'static DequantDesc,
    /// The expansion's geometry.
    pub expand: &'static GeomDesc,
    /// Its weight's quantization, when `dx` is computed.
    pub expand_w: Option<&'static DequantDesc>,
    /// The saved input's quantization, when the expansion weight is trained.
    pub x: Option<&'static DequantDesc>,
    /// The expansion weight's update, when trained.
    pub sgd: Option<&'static SgdDesc>,
    /// A split expansion weight: the input channels of its trained slice.
    pub kept: Option<usize>,
}

/// The trained expansion weight of a streamed bottleneck backward and what its update reads.
pub struct ExpandTrained<'a> {
    /// The saved `i8` input of the expansion.
    pub x: &'a [i8],
    /// The learning rate.
    pub lr: &'a [f32],
    /// The step.
    pub step: &'a [i64],
    /// The weight, updated in place.
    pub w: &'a mut [i8],
    /// Its momentum state.
    pub m: Option<&'a mut [f32]>,
}

/// Runs `mite_kernels::float::bottleneck_backward`: `frozen` is the expansion weight when `dx`
/// is computed and the weight is not trained, or a split weight's frozen remainder (with
/// `trained` its slice).
#[allow(clippy::too_many_arguments)]
pub fn bottleneck_backward(
    d: &BottleneckBackwardDesc,
    dy: &[f32],
    w_project: &[i8],
    masks: [&[u32]; 2],
    w_depthwise: &[i8],
    frozen: Option<&[i8]>,
    trained: Option<ExpandTrained<'_>>,
    grads: [Option<&mut [f32]>; 3],
    scratch: &mut [f32],
) -> Result<(), Error> {
    use mite_kernels::float::{ExpandUpdate, ExpandWeight, Int8Conv};
    use mite_kernels::int8::PerAxis;
    let per_axis = |q: &'static DequantDesc| PerAxis::new(q.scales, q.zero_points, q.inner);
    let (gp, gd, ge) = (
        d.project.geometry()?,
        d.depthwise.geometry()?,
        d.expand.geometry()?,
    );
    let expand_q = d.expand_w.map(per_axis).transpose()?;
    let weight = match (trained, frozen) {
        (Some(t), frozen) => {
            let (Some(s), Some(xq)) = (d.sgd, d.x) else {
                return Err(Error::Layout);
            };
            let update = ExpandUpdate {
                x: t.x,
                x_quant: per_axis(xq)?,
                weight: t.w,
                // Without dx the weight is only updated, never read at its real value.
                weight_quant: match expand_q {
                    Some(p) => p,
                    None => PerAxis::new(s.scales, &[], s.inner)?,
                },
                momentum: t.m,
                channels: ChannelQuant::new(s.scales, s.zero_points, s.inner)?,
                params: s.params(first(t.lr)?, first(t.step)?),
            };
            match (d.kept, frozen) {
                (Some(kept), Some(frozen)) => ExpandWeight::Split {
                    update,
                    frozen,
                    kept,
                },
                (None, None) => ExpandWeight::Trained(update),
                _ => return Err(Error::Layout),
            }
        }
        (None, Some(w)) => ExpandWeight::Frozen(Int8Conv {
            geometry: &ge,
            weight: w,
            quant: expand_q.ok_or(Error::Layout)?,
        }),
        (None, None) => ExpandWeight::Unused,
    };
    let [dx, depthwise_bias, expand_bias] = grads;
    mite_kernels::float::bottleneck_backward(
        dy,
        Int8Conv {
            geometry: &gp,
            weight: w_project,
            quant: per_axis(d.project_w)?,
        },
        Int8Conv {
            geometry: &gd,
            weight: w_depthwise,
            quant: per_axis(d.depthwise_w)?,
        },
        masks,
        &ge,
        weight,
        mite_kernels::float::BottleneckGrads {
            dx,
            depthwise_bias,
            expand_bias,
        },
        scratch,
    )?;
    Ok(())
}
