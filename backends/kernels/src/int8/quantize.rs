//! Float ↔ int8 conversion (ONNX `QuantizeLinear` / `DequantizeLinear`) and int8 → int8
//! requantization.

use crate::error::{check_len, KernelError};
use crate::fmath::round_ties_even_f32;
use crate::requant::{check_scale, QuantParams};

/// Per-axis quantization: `scales` (and `zero_points`, empty for all zero) along an axis of
/// `channels` entries with `inner` elements after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerAxis<'a> {
    /// One scale per channel, finite and positive.
    pub scales: &'a [f32],
    /// One zero point per channel, or empty.
    pub zero_points: &'a [i8],
    /// Elements after the axis (the channel of element `i` is `(i / inner) % channels`).
    pub inner: usize,
}

impl<'a> PerAxis<'a> {
    /// Checks the scales and the zero point count.
    pub fn new(
        scales: &'a [f32],
        zero_points: &'a [i8],
        inner: usize,
    ) -> Result<Self, KernelError> {
        if scales.is_empty() {
            return Err(KernelError::Param("per-axis quantization needs a scale"));
        }
        if !zero_points.is_empty() {
            check_len("zero points", scales.len(), zero_points.len())?;
        }
        for &s in scales {
            check_scale(s)?;
        }
        Ok(Self {
            scales,
            zero_points,
            inner,
        })
    }

    /// Per-tensor parameters viewed per axis (one channel).
    pub fn per_tensor(q: &'a QuantParams) -> Result<Self, KernelError> {
        Self::new(
            core::slice::from_ref(&q.scale),
            core::slice::from_ref(&q.zero_point),
            1,
        )
    }

    /// `(scale, zero point)` of element `i`.
    #[inline]
    pub(crate) fn of(&self, i: usize) -> (f32, i8) {
        let c = (i / self.inner.max(1)) % self.scales.len();
        (
            self.scales[c],
            self.zero_points.get(c).copied().unwrap_or(0),
        )
    }
}

/// One element of `QuantizeLinear`: `saturate(round_half_even(x / scale) + zero_point)`, the
/// division in `f32`; NaN maps to the zero point, infinities saturate.
#[inline]
pub fn quantize_one(x: f32, scale: f32, zero_point: i8) -> i8 {
    if x.is_nan() {
        return zero_point;
    }
    let q = f64::from(round_ties_even_f32(x / scale)) + f64::from(zero_point);
    // Exact in range after the clamp.
    q.clamp(f64::from(i8::MIN), f64::from(i8::MAX)) as i8
}

/// ONNX `QuantizeLinear` into `out`.
pub fn quantize(x: &[f32], out: &mut [i8], p: &PerAxis<'_>) -> Result<(), KernelError> {
    check_len("quantize out", x.len(), out.len())?;
    for (i, (y, &v)) in out.iter_mut().zip(x).enumerate() {
        let (s, z) = p.of(i);
        *y = quantize_one(v, s, z);
    }
    Ok(())
}

/// ONNX `DequantizeLinear` into `out`: `f32(q − z) · s`.
pub fn dequantize(x: &[i8], out: &mut [f32], p: &PerAxis<'_>) -> Result<(), KernelError> {
    check_len("dequantize out", x.len(), out.len())?;
    for (i, (y, &q)) in out.iter_mut().zip(x).enumerate() {
        let (s, z) = p.of(i);
        *y = f32::from(i16::from(q) - i16::from(z)) * s;
    }
    Ok(())
}

/// Requantizes int8 `x` from one per-tensor quantization to another through `f32`, as a
/// `DequantizeLinear` followed by a `QuantizeLinear` computes it.
pub fn requantize(
    x: &[i8],
    out: &mut [i8],
    from: QuantParams,
    to: QuantParams,
) -> Result<(), KernelError> {
    from.check()?;
    to.check()?;
    check_len("requantize out", x.len(), out.len())?;
    for (y, &q) in out.iter_mut().zip(x) {
        let real = f32::from(i16::from(q) - i16::from(from.zero_point)) * from.scale;
        *y = quantize_one(real, to.scale, to.zero_point);
    }
    Ok(())
}
