//! Requantization of `i32` accumulators to the output scale: the owning tables of a
//! [`mite_kernels::Requant`] (per-channel multipliers computed once per op) and the owning output
//! stage. The arithmetic is `mite-kernels`'.

use crate::kernel_error::KernelError;

pub use mite_kernels::requant::{ActRange, Rounding};

/// The requantization factors of a tensor: one per output channel, or a single per-tensor one.
///
/// Built from real scales (`s_x · s_W[c] / s_y` for a convolution); holds both the real scales
/// (used by [`Rounding::FloatScale`] and [`Rounding::OnnxRuntime`]) and the Q31 multipliers and
/// shifts derived from them for the chosen rounding (TFLite's `QuantizeMultiplier`, with the
/// single-rounding shift saturation for [`Rounding::Single`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Requantizer {
    rounding: Rounding,
    scales: Vec<f64>,
    multipliers: Vec<i32>,
    shifts: Vec<i32>,
}

impl Requantizer {
    /// Builds a requantizer from real scales: one scale makes it per-tensor, several make it
    /// per-channel. Scales must be finite and non-negative (a zero scale maps everything to 0).
    pub fn new(scales: &[f64], rounding: Rounding) -> Result<Self, KernelError> {
        let mut multipliers = vec![0; scales.len()];
        let mut shifts = vec![0; scales.len()];
        mite_kernels::requant::quantize_multipliers(
            scales,
            rounding,
            &mut multipliers,
            &mut shifts,
        )?;
        Ok(Self {
            rounding,
            scales: scales.to_vec(),
            multipliers,
            shifts,
        })
    }

    /// A per-tensor requantizer for one real scale.
    pub fn per_tensor(scale: f64, rounding: Rounding) -> Result<Self, KernelError> {
        Self::new(&[scale], rounding)
    }

    /// The requantizer of a convolution or linear layer, with effective scales computed as TFLite
    /// does from `f32` tensor scales: `(s_x as f64) · (s_W[c] as f64) / (s_y as f64)`; with
    /// [`Rounding::OnnxRuntime`], as onnxruntime's `QLinearConv` does (`ComputeOutputScale`): in
    /// `f32`, `(s_x · s_W[c]) / s_y`, each operation rounded to `f32`.
    pub fn from_tensor_scales(
        input_scale: f32,
        weight_scales: &[f32],
        output_scale: f32,
        rounding: Rounding,
    ) -> Result<Self, KernelError> {
        let mut scales = vec![0.0; weight_scales.len()];
        mite_kernels::requant::effective_scales(
            input_scale,
            weight_scales,
            output_scale,
            rounding,
            &mut scales,
        )?;
        Self::new(&scales, rounding)
    }

    /// The kernels' view of these tables.
    pub fn as_kernel(&self) -> mite_kernels::Requant<'_> {
        // The tables have one (non-zero) length by construction.
        mite_kernels::Requant::new(self.rounding, &self.scales, &self.multipliers, &self.shifts)
            .expect("requantizer tables are consistent")
    }

    /// The rounding mode.
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// Number of channels (1 for a per-tensor requantizer).
    pub fn channels(&self) -> usize {
        self.scales.len()
    }

    /// Whether one factor applies to every channel.
    pub fn is_per_tensor(&self) -> bool {
        self.scales.len() == 1
    }

    /// The real scales, one per channel.
    pub fn scales(&self) -> &[f64] {
        &self.scales
    }

    /// The Q31 multipliers, one per channel.
    pub fn multipliers(&self) -> &[i32] {
        &self.multipliers
    }

    /// The shifts (positive: left), one per channel.
    pub fn shifts(&self) -> &[i32] {
        &self.shifts
    }

    /// Scales accumulator `acc` of output channel `channel` (ignored when per-tensor). With
    /// [`Rounding::OnnxRuntime`] the factor is the channel's scale rounded to `f32`. A
    /// per-channel requantizer given an out-of-range channel uses its last channel.
    pub fn apply(&self, acc: i32, channel: usize) -> i32 {
        self.as_kernel().apply(acc, channel)
    }

    /// Checks that this requantizer is per-tensor or has exactly `channels` channels.
    pub fn check_channels(&self, channels: usize) -> Result<(), KernelError> {
        Ok(self.as_kernel().check_channels(channels)?)
    }
}

/// The output stage of a convolution or linear layer: requantize, add the output zero point,
/// clamp.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputStage {
    /// Scales the accumulator to output units.
    pub requantizer: Requantizer,
    /// Output zero point.
    pub zero_point: i8,
    /// Clamp range (after the zero point).
    pub range: ActRange,
}

impl OutputStage {
    /// The kernels' view of this stage.
    pub fn as_kernel(&self) -> mite_kernels::OutputStage<'_> {
        mite_kernels::OutputStage {
            requant: self.requantizer.as_kernel(),
            zero_point: self.zero_point,
            range: self.range,
        }
    }

    /// `clamp(requantize(acc) + zero_point)` for output channel `channel` (the zero point is
    /// added with saturation).
    pub fn finish(&self, acc: i32, channel: usize) -> i8 {
        self.as_kernel().finish(acc, channel)
    }

    /// Checks the clamp range and the number of requantizer channels.
    pub fn check(&self, channels: usize) -> Result<(), KernelError> {
        Ok(self.as_kernel().check(channels)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_scales() {
        assert!(Requantizer::new(&[], Rounding::Double).is_err());
        assert!(Requantizer::new(&[0.5, -1.0], Rounding::Double).is_err());
        assert!(Requantizer::new(&[f64::NAN], Rounding::Single).is_err());
        assert!(Requantizer::new(&[f64::INFINITY], Rounding::FloatScale).is_err());
        assert!(Requantizer::from_tensor_scales(0.1, &[0.1], 0.0, Rounding::Double).is_err());
        assert!(Requantizer::new(&[0.0], Rounding::Double).is_ok());
    }

    #[test]
    fn modes_differ_on_ties() {
        // scale 0.25 -> (2^30, -1); acc = 5 -> 1.25; acc = -10 -> -2.5; acc = 10 -> 2.5.
        let d = Requantizer::per_tensor(0.25, Rounding::Double).unwrap();
        let s = Requantizer::per_tensor(0.25, Rounding::Single).unwrap();
        let f = Requantizer::per_tensor(0.25, Rounding::FloatScale).unwrap();
        assert_eq!(d.multipliers(), &[1 << 30]);
        assert_eq!(d.shifts(), &[-1]);
        assert_eq!((d.apply(5, 0), s.apply(5, 0), f.apply(5, 0)), (2, 1, 1));
        assert_eq!(
            (d.apply(-10, 0), s.apply(-10, 0), f.apply(-10, 0)),
            (-3, -2, -2)
        );
        assert_eq!((d.apply(10, 0), s.apply(10, 0), f.apply(10, 0)), (3, 3, 2));
        assert_eq!((d.apply(14, 0), s.apply(14, 0), f.apply(14, 0)), (4, 4, 4));
        // Per-tensor ignores the channel.
        assert_eq!(d.apply(5, 17), 2);
    }

    #[test]
    fn per_channel_and_single_saturation() {
        let r = Requantizer::new(&[0.5, 1.0, 2.0_f64.powi(31)], Rounding::Single).unwrap();
        assert_eq!(r.multipliers(), &[1 << 30, 1 << 30, i32::MAX]);
        assert_eq!(r.shifts(), &[0, 1, 30]);
        assert_eq!(r.apply(7, 0), 4);
        assert_eq!(r.apply(7, 1), 7);
        assert_eq!(r.apply(7, 2), i32::MAX);
        // Out-of-range channel: uses the last one, no panic.
        assert_eq!(r.apply(7, 99), i32::MAX);
        assert!(r.check_channels(3).is_ok());
        assert!(r.check_channels(4).is_err());
        let d = Requantizer::new(&[2.0_f64.powi(31)], Rounding::Double).unwrap();
        assert_eq!(d.shifts(), &[32]);
    }

    #[test]
    fn tensor_scales_like_tflite() {
        let r =
            Requantizer::from_tensor_scales(0.5, &[0.25, 0.125], 0.0625, Rounding::Double).unwrap();
        assert_eq!(r.scales(), &[2.0, 1.0]);
        assert_eq!(r.shifts(), &[2, 1]);
        assert_eq!(r.apply(3, 0), 6);
    }

    #[test]
    fn output_stage() {
        let stage = OutputStage {
            requantizer: Requantizer::per_tensor(0.5, Rounding::Double).unwrap(),
            zero_point: -10,
            range: ActRange { min: -10, max: 100 },
        };
        assert_eq!(stage.finish(40, 0), 10);
        assert_eq!(stage.finish(-40, 0), -10);
        assert_eq!(stage.finish(i32::MAX, 0), 100);
        assert!(stage.check(5).is_ok());
        let bad = OutputStage {
            range: ActRange { min: 5, max: 4 },
            ..stage
        };
        assert!(bad.check(1).is_err());
    }
}
