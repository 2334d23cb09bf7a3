//! int8 element-wise addition (residual connections): the `mite-kernels` add, plus
//! onnxruntime's fused `QLinearAdd` for [`Rounding::OnnxRuntime`].

use mite_kernels::int8::AddParams;

use super::onnxruntime::add_qlinear;
use super::quantize::QuantParams;
use super::requantizer::{ActRange, Rounding};
use crate::kernel_error::{check_len, KernelError};

pub use mite_kernels::int8::ADD_LEFT_SHIFT;

/// A prepared int8 addition `y = a + b` of two tensors with different quantizations.
///
/// With [`Rounding::Double`] (or [`Rounding::Single`]) this is TFLite's reference int8 `Add`
/// (the general-rescaling path, as prepared by its `add.cc`):
///
/// 1. `twice_max_input_scale = 2 · max(s_a, s_b)`; the input multipliers are
///    `s_a / twice_max` and `s_b / twice_max` (both in `(0, 0.5]`) and the output multiplier is
///    `twice_max / (2^20 · s_y)`, each quantized with `QuantizeMultiplierSmallerThanOneExp`
///    (i.e. [`mite_kernels::fixed_point::quantize_multiplier`], which must give a shift ≤ 0; otherwise
///    [`AddInt8::new`] fails, as TFLite's prepare does).
/// 2. Per element: `a' = (a − z_a) · 2^20`, `b' = (b − z_b) · 2^20`, each rescaled by its input
///    multiplier (`MultiplyByQuantizedMultiplierSmallerThanOneExp`: the double-rounding
///    `SRDHM` + `RoundingDivideByPOT`, or the single-rounding multiply in that build), summed in
///    `i32`, rescaled by the output multiplier, plus `z_y`, clamped to the activation range.
///
/// With [`Rounding::FloatScale`] it is the paper's simulation (`QuantizedElementwise` in
/// tiny-training's `quantized_ops.py`): `(a − z_a)·s_a + (b − z_b)·s_b` in `f32`, divided by `s_y`
/// in `f64`, rounded half to even, plus `z_y`, clamped.
///
/// With [`Rounding::OnnxRuntime`] it is onnxruntime's fused `QLinearAdd`
/// ([`add_qlinear`]); an add that onnxruntime leaves in float is
/// [`add_qdq_float`](super::onnxruntime::add_qdq_float).
#[derive(Clone, Debug, PartialEq)]
pub struct AddInt8 {
    a: QuantParams,
    b: QuantParams,
    out: QuantParams,
    range: ActRange,
    /// The kernel's parameters; `None` with [`Rounding::OnnxRuntime`].
    kernel: Option<AddParams>,
    input_multipliers: [(i32, i32); 2],
    output_multiplier: (i32, i32),
}

impl AddInt8 {
    /// Prepares the addition (computes the multipliers). Fails on invalid scales, an empty
    /// activation range, or (fixed-point modes) an output scale so small that the output
    /// multiplier is not below 1 (`s_y ≤ 2·max(s_a, s_b) / 2^20`).
    pub fn new(
        a: QuantParams,
        b: QuantParams,
        out: QuantParams,
        range: ActRange,
        rounding: Rounding,
    ) -> Result<Self, KernelError> {
        let (kernel, input_multipliers, output_multiplier) = if rounding == Rounding::OnnxRuntime {
            // The multipliers are unused by onnxruntime's add; kept for inspection.
            let p = AddParams::new(a, b, out, range, Rounding::FloatScale)?;
            (None, p.input_multipliers, p.output_multiplier)
        } else {
            let p = AddParams::new(a, b, out, range, rounding)?;
            (Some(p), p.input_multipliers, p.output_multiplier)
        };
        Ok(Self {
            a,
            b,
            out,
            range,
            kernel,
            input_multipliers,
            output_multiplier,
        })
    }

    /// The quantized input multipliers `(multiplier, shift)` for `a` and `b`.
    pub fn input_multipliers(&self) -> [(i32, i32); 2] {
        self.input_multipliers
    }

    /// The quantized output multiplier `(multiplier, shift)`.
    pub fn output_multiplier(&self) -> (i32, i32) {
        self.output_multiplier
    }

    /// Adds one pair of elements.
    pub fn add_one(&self, a: i8, b: i8) -> i8 {
        match &self.kernel {
            Some(p) => p.add_one(a, b),
            None => add_qlinear(a, self.a, b, self.b, self.out, self.range),
        }
    }

    /// Adds two tensors of the same length element by element (no broadcasting).
    pub fn apply(&self, a: &[i8], b: &[i8]) -> Result<Vec<i8>, KernelError> {
        check_len("b", a.len(), b.len())?;
        let mut y = vec![0; a.len()];
        match &self.kernel {
            Some(p) => mite_kernels::int8::add_int8(a, b, &mut y, p)?,
            None => {
                for ((yv, &x), &z) in y.iter_mut().zip(a).zip(b) {
                    *yv = self.add_one(x, z);
                }
            }
        }
        Ok(y)
    }
}

/// Convenience wrapper: prepares an [`AddInt8`] and applies it.
pub fn add_int8(
    a: &[i8],
    a_params: QuantParams,
    b: &[i8],
    b_params: QuantParams,
    out: QuantParams,
    range: ActRange,
    rounding: Rounding,
) -> Result<Vec<i8>, KernelError> {
    AddInt8::new(a_params, b_params, out, range, rounding)?.apply(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn qp(scale: f32, zero_point: i8) -> QuantParams {
        QuantParams { scale, zero_point }
    }

    #[test]
    fn prepared_multipliers_like_tflite() {
        let add = AddInt8::new(
            qp(0.5, 0),
            qp(0.25, 0),
            qp(0.5, 0),
            ActRange::FULL,
            Rounding::Double,
        )
        .unwrap();
        // twice_max = 1: 0.5 -> (2^30, 0), 0.25 -> (2^30, −1), 1/(2^20·0.5) = 2^−19 -> (2^30, −18).
        assert_eq!(add.input_multipliers(), [(1 << 30, 0), (1 << 30, -1)]);
        assert_eq!(add.output_multiplier(), (1 << 30, -18));
        // 3·0.5 + 2·0.25 = 2.0 -> 4.
        assert_eq!(add.add_one(3, 2), 4);
        assert_eq!(add.add_one(-3, -2), -4);
        assert_eq!(add.add_one(127, 127), 127);
        assert_eq!(add.add_one(-128, -128), -128);
    }

    #[test]
    fn tie_rounding_per_mode() {
        // a·1 + b·1, output scale 1 after the /2^20 bookkeeping: a = ±1 with s_a = 0.5 -> ±0.5.
        let make = |r| AddInt8::new(qp(0.5, 0), qp(0.5, 0), qp(1.0, 0), ActRange::FULL, r).unwrap();
        let (d, s, f) = (
            make(Rounding::Double),
            make(Rounding::Single),
            make(Rounding::FloatScale),
        );
        assert_eq!(
            (d.add_one(1, 0), s.add_one(1, 0), f.add_one(1, 0)),
            (1, 1, 0)
        );
        assert_eq!(
            (d.add_one(-1, 0), s.add_one(-1, 0), f.add_one(-1, 0)),
            (-1, 0, 0)
        );
        assert_eq!(
            (d.add_one(3, 0), s.add_one(3, 0), f.add_one(3, 0)),
            (2, 2, 2)
        );
        assert_eq!(
            (d.add_one(2, 3), s.add_one(2, 3), f.add_one(2, 3)),
            (3, 3, 2)
        );
    }

    #[test]
    fn zero_points_and_clamp() {
        let add = AddInt8::new(
            qp(0.1, 10),
            qp(0.1, -10),
            qp(0.1, 5),
            ActRange { min: 5, max: 50 },
            Rounding::Double,
        )
        .unwrap();
        // (20 − 10) + (0 + 10) = 20 steps of 0.1 -> 20 + 5 = 25.
        assert_eq!(add.add_one(20, 0), 25);
        // Negative real values clamp at the ReLU floor z_y = 5.
        assert_eq!(add.add_one(-100, -100), 5);
        assert_eq!(add.add_one(127, 127), 50);
        assert_eq!(add.apply(&[20, -100], &[0, -100]).unwrap(), vec![25, 5]);
        assert!(add.apply(&[1, 2], &[1]).is_err());
    }

    #[test]
    fn rejects_bad_parameters() {
        let full = ActRange::FULL;
        let r = Rounding::Double;
        assert!(AddInt8::new(qp(0.0, 0), qp(1.0, 0), qp(1.0, 0), full, r).is_err());
        assert!(AddInt8::new(qp(1.0, 0), qp(1.0, 0), qp(f32::NAN, 0), full, r).is_err());
        let empty = ActRange { min: 3, max: 2 };
        assert!(AddInt8::new(qp(1.0, 0), qp(1.0, 0), qp(1.0, 0), empty, r).is_err());
        // Output multiplier 2 / (2^20 · 1e-7) >= 1.
        assert!(AddInt8::new(qp(1.0, 0), qp(1.0, 0), qp(1e-7, 0), full, r).is_err());
        assert!(add_int8(&[1], qp(1.0, 0), &[1], qp(1.0, 0), qp(1e-7, 0), full, r).is_err());
        // The float simulation has no such limit.
        assert!(AddInt8::new(
            qp(1.0, 0),
            qp(1.0, 0),
            qp(1e-7, 0),
            full,
            Rounding::FloatScale
        )
        .is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn add_is_within_one_of_exact(
            a in any::<i8>(), b in any::<i8>(),
            za in any::<i8>(), zb in any::<i8>(), zy in any::<i8>(),
            sa in 0.01_f32..1.0, sb in 0.01_f32..1.0, sy in 0.01_f32..1.0,
            rounding in prop_oneof![
                Just(Rounding::Double),
                Just(Rounding::Single),
                Just(Rounding::FloatScale),
                Just(Rounding::OnnxRuntime)
            ],
        ) {
            let add = AddInt8::new(qp(sa, za), qp(sb, zb), qp(sy, zy), ActRange::FULL, rounding).unwrap();
            let got = i32::from(add.add_one(a, b));
            let exact = (f64::from(i32::from(a) - i32::from(za)) * f64::from(sa)
                + f64::from(i32::from(b) - i32::from(zb)) * f64::from(sb))
                / f64::from(sy)
                + f64::from(zy);
            let clamped = exact.clamp(-128.0, 127.0);
            // Each of the three fixed-point rescalings loses < 2^-20 relative; the final rounding
            // can then be off by one near ties.
            prop_assert!((f64::from(got) - clamped).abs() <= 1.0, "got {got}, exact {exact}");
            if rounding == Rounding::FloatScale {
                // f32 products and sum are off by < 1e-4, magnified by at most 1/s_y = 100.
                prop_assert!((f64::from(got) - clamped).abs() <= 0.5 + 1e-2);
            }
        }
    }
}
