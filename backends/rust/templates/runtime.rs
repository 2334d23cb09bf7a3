//! The fixed part of every crate mite emits (copied verbatim by `mite-rustgen`): memory blocks,
//! borrowing typed views of disjoint buffers out of them without `unsafe`, the errors, the
//! checksum of saved parameters, and one small runner per kernel that builds the kernel's
//! parameter struct from a `static` descriptor and calls `mite-kernels`.

use mite_kernels::float::Math;
use mite_kernels::requant::{ActRange, OutputStage, Requant, Rounding};
use mite_kernels::sgd::{ChannelQuant, SgdParams, UpdateRounding};
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

/// Runs `mite_kernels::sgd::sgd_i8`.
pub fn sgd_i8(
    d: &SgdDesc,
    lr: f32,
    step: i64,
    g: &[f32],
    q: &mut [i8],
    m: Option<&mut [f32]>,
) -> Result<(), Error> {
    let cq = ChannelQuant::new(d.scales, d.zero_points, d.inner)?;
    mite_kernels::sgd::sgd_i8(q, g, m, &cq, &d.params(lr, step))?;
    Ok(())
}

/// Runs `mite_kernels::sgd::sgd_i32`.
pub fn sgd_i32(
    d: &SgdDesc,
    lr: f32,
    step: i64,
    g: &[f32],
    q: &mut [i32],
    m: Option<&mut [f32]>,
) -> Result<(), Error> {
    let cq = ChannelQuant::new(d.scales, d.zero_points, d.inner)?;
    mite_kernels::sgd::sgd_i32(q, g, m, &cq, &d.params(lr, step))?;
    Ok(())
}

/// Runs `mite_kernels::sgd::sgd_f32`.
pub fn sgd_f32(
    d: &SgdDesc,
    lr: f32,
    step: i64,
    g: &[f32],
    w: &mut [f32],
    m: Option<&mut [f32]>,
) -> Result<(), Error> {
    mite_kernels::sgd::sgd_f32(w, g, m, &d.params(lr, step))?;
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
