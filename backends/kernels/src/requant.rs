//! Requantization of `i32` accumulators: rounding modes, per-channel multipliers (computed on
//! the host), and the output stage (zero point and activation clamp).

use crate::error::{check_len, KernelError};
use crate::fixed_point::{
    multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_single_rounding,
    quantize_multiplier, quantize_multiplier_single_rounding, requantize_float_scale,
};
use crate::fmath::round_ties_even_f32;

/// How an `i32` accumulator is scaled by a real factor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// TFLite's default / CMSIS-NN `arm_nn_requantize`: Q31 multiplier and shift, gemmlowp
    /// `SaturatingRoundingDoublingHighMul` then `RoundingDivideByPOT` (two roundings).
    #[default]
    Double,
    /// TFLite built with `TFLITE_SINGLE_ROUNDING`: one rounding (ties towards +∞) of the 64-bit
    /// product.
    Single,
    /// The paper's PyTorch simulation: `round_half_even(acc · scale)` in `f64`, no fixed point.
    FloatScale,
    /// onnxruntime's fused int8 kernels (MLAS `MlasRequantizeOutput`):
    /// `round_half_even(f32(acc) · f32(scale))`.
    OnnxRuntime,
}

impl Rounding {
    /// TFLite's `QuantizeMultiplier` for this mode: `(multiplier, shift)` of a real factor.
    pub fn quantize_multiplier(self, real: f64) -> (i32, i32) {
        match self {
            Rounding::Single => quantize_multiplier_single_rounding(real),
            Rounding::Double | Rounding::FloatScale | Rounding::OnnxRuntime => {
                quantize_multiplier(real)
            }
        }
    }

    /// Applies a quantized multiplier with this mode's fixed-point rounding (double rounding
    /// for every mode but [`Rounding::Single`]).
    pub fn multiply(self, x: i32, multiplier: i32, shift: i32) -> i32 {
        if self == Rounding::Single {
            multiply_by_quantized_multiplier_single_rounding(x, multiplier, shift)
        } else {
            multiply_by_quantized_multiplier(x, multiplier, shift)
        }
    }
}

/// The affine quantization of an int8 tensor: `real = scale · (q − zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantParams {
    /// Real value of one quantization step; finite and positive.
    pub scale: f32,
    /// The int8 value that represents real 0.
    pub zero_point: i8,
}

impl QuantParams {
    /// Checks that the scale is finite and positive.
    pub fn check(&self) -> Result<(), KernelError> {
        check_scale(self.scale)
    }
}

/// Checks that a quantization scale is finite and positive.
pub fn check_scale(scale: f32) -> Result<(), KernelError> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(KernelError::Param(
            "quantization scale must be finite and positive",
        ))
    }
}

/// An inclusive clamp range for int8 outputs (fused ReLU / ReLU6 become a narrower range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActRange {
    /// Smallest output value.
    pub min: i8,
    /// Largest output value.
    pub max: i8,
}

impl ActRange {
    /// The whole int8 range `[-128, 127]` (no activation).
    pub const FULL: Self = Self {
        min: i8::MIN,
        max: i8::MAX,
    };

    /// Checks that `min <= max`.
    pub fn check(&self) -> Result<(), KernelError> {
        if self.min <= self.max {
            Ok(())
        } else {
            Err(KernelError::Param("activation range is empty (min > max)"))
        }
    }

    /// Clamps an `i32` into the range.
    pub fn clamp(&self, v: i32) -> i8 {
        // Within [min, max] ⊂ i8 after the clamp, so the cast is exact.
        v.clamp(i32::from(self.min), i32::from(self.max)) as i8
    }
}

impl Default for ActRange {
    fn default() -> Self {
        Self::FULL
    }
}

/// Fills `multipliers` and `shifts` (one per scale) with the quantized multipliers of `scales`
/// for `rounding`. Runs on the host when a program is compiled. Scales must be finite and
/// non-negative (a zero scale maps everything to 0).
pub fn quantize_multipliers(
    scales: &[f64],
    rounding: Rounding,
    multipliers: &mut [i32],
    shifts: &mut [i32],
) -> Result<(), KernelError> {
    if scales.is_empty() {
        return Err(KernelError::Param("a requantizer needs at least one scale"));
    }
    check_len("multipliers", scales.len(), multipliers.len())?;
    check_len("shifts", scales.len(), shifts.len())?;
    for ((&s, m), sh) in scales.iter().zip(multipliers).zip(shifts) {
        if !(s.is_finite() && s >= 0.0) {
            return Err(KernelError::Param(
                "requantization scale must be finite and non-negative",
            ));
        }
        (*m, *sh) = rounding.quantize_multiplier(s);
    }
    Ok(())
}

/// Fills `out` with the effective scales of a convolution or linear layer, computed as TFLite
/// does from `f32` tensor scales: `(s_x as f64) · (s_W[c] as f64) / (s_y as f64)`; with
/// [`Rounding::OnnxRuntime`], as onnxruntime does: in `f32`, `(s_x · s_W[c]) / s_y`.
pub fn effective_scales(
    input_scale: f32,
    weight_scales: &[f32],
    output_scale: f32,
    rounding: Rounding,
    out: &mut [f64],
) -> Result<(), KernelError> {
    if !(output_scale.is_finite() && output_scale > 0.0) {
        return Err(KernelError::Param(
            "output scale must be finite and positive",
        ));
    }
    check_len("effective scales", weight_scales.len(), out.len())?;
    for (o, &w) in out.iter_mut().zip(weight_scales) {
        *o = match rounding {
            Rounding::OnnxRuntime => f64::from(input_scale * w / output_scale),
            _ => f64::from(input_scale) * f64::from(w) / f64::from(output_scale),
        };
    }
    Ok(())
}

/// Requantization factors, one per output channel or a single per-tensor one: the real scales
/// (used by the float modes) and the multipliers and shifts computed from them by
/// [`quantize_multipliers`]. Borrows its tables.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Requant<'a> {
    rounding: Rounding,
    scales: &'a [f64],
    multipliers: &'a [i32],
    shifts: &'a [i32],
}

impl<'a> Requant<'a> {
    /// Bundles precomputed tables (all of the same, non-zero, length).
    pub fn new(
        rounding: Rounding,
        scales: &'a [f64],
        multipliers: &'a [i32],
        shifts: &'a [i32],
    ) -> Result<Self, KernelError> {
        if scales.is_empty() {
            return Err(KernelError::Param("a requantizer needs at least one scale"));
        }
        check_len("multipliers", scales.len(), multipliers.len())?;
        check_len("shifts", scales.len(), shifts.len())?;
        Ok(Self {
            rounding,
            scales,
            multipliers,
            shifts,
        })
    }

    /// The rounding mode.
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// The real scales.
    pub fn scales(&self) -> &'a [f64] {
        self.scales
    }

    /// The fixed-point multipliers.
    pub fn multipliers(&self) -> &'a [i32] {
        self.multipliers
    }

    /// The shifts.
    pub fn shifts(&self) -> &'a [i32] {
        self.shifts
    }

    /// Number of channels (1 for a per-tensor requantizer).
    pub fn channels(&self) -> usize {
        self.scales.len()
    }

    /// Checks that this requantizer is per-tensor or has exactly `channels` channels.
    pub fn check_channels(&self, channels: usize) -> Result<(), KernelError> {
        if self.scales.len() == 1 || self.scales.len() == channels {
            Ok(())
        } else {
            Err(KernelError::Length {
                what: "requantizer channels",
                expected: channels,
                found: self.scales.len(),
            })
        }
    }

    /// Scales accumulator `acc` of output channel `channel` (ignored when per-tensor; an
    /// out-of-range channel uses the last one).
    #[inline]
    pub fn apply(&self, acc: i32, channel: usize) -> i32 {
        let c = channel.min(self.scales.len() - 1);
        match self.rounding {
            Rounding::Double => {
                multiply_by_quantized_multiplier(acc, self.multipliers[c], self.shifts[c])
            }
            Rounding::Single => multiply_by_quantized_multiplier_single_rounding(
                acc,
                self.multipliers[c],
                self.shifts[c],
            ),
            Rounding::FloatScale => requantize_float_scale(acc, self.scales[c]),
            // `as` saturates and maps NaN to 0.
            Rounding::OnnxRuntime => round_ties_even_f32(acc as f32 * self.scales[c] as f32) as i32,
        }
    }
}

/// The output stage of a convolution or linear layer: requantize, add the output zero point,
/// clamp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputStage<'a> {
    /// Scales the accumulator to output units.
    pub requant: Requant<'a>,
    /// Output zero point.
    pub zero_point: i8,
    /// Clamp range (after the zero point).
    pub range: ActRange,
}

impl OutputStage<'_> {
    /// `clamp(requantize(acc) + zero_point)` for output channel `channel` (the zero point is
    /// added with saturation).
    #[inline]
    pub fn finish(&self, acc: i32, channel: usize) -> i8 {
        let v = self.requant.apply(acc, channel);
        self.range
            .clamp(v.saturating_add(i32::from(self.zero_point)))
    }

    /// Checks the clamp range and the number of requantizer channels.
    pub fn check(&self, channels: usize) -> Result<(), KernelError> {
        self.range.check()?;
        self.requant.check_channels(channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_differ_on_ties() {
        let scales = [0.25];
        let run = |rounding: Rounding, acc: i32| {
            let (mut m, mut s) = ([0], [0]);
            quantize_multipliers(&scales, rounding, &mut m, &mut s).unwrap();
            Requant::new(rounding, &scales, &m, &s)
                .unwrap()
                .apply(acc, 0)
        };
        assert_eq!(
            [Rounding::Double, Rounding::Single, Rounding::FloatScale].map(|r| run(r, 5)),
            [2, 1, 1]
        );
        assert_eq!(
            [Rounding::Double, Rounding::Single, Rounding::FloatScale].map(|r| run(r, -10)),
            [-3, -2, -2]
        );
        assert_eq!(run(Rounding::OnnxRuntime, 10), 2);
    }

    #[test]
    fn rejects_bad_tables() {
        let (mut m, mut s) = ([0; 2], [0; 2]);
        assert!(quantize_multipliers(&[0.5, -1.0], Rounding::Double, &mut m, &mut s).is_err());
        assert!(quantize_multipliers(&[0.5], Rounding::Double, &mut m, &mut s).is_err());
        assert!(Requant::new(Rounding::Double, &[], &[], &[]).is_err());
        assert!(ActRange { min: 3, max: 2 }.check().is_err());
    }
}
