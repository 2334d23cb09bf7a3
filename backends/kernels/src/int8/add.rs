//! int8 element-wise addition (residual connections), TFLite's reference int8 `Add` or the
//! paper's float formula.

use crate::error::{check_len, KernelError};
use crate::fmath::round_ties_even_f64;
use crate::requant::{ActRange, QuantParams, Rounding};

/// The left shift TFLite applies to int8 add inputs before rescaling them (`1 << 20`).
pub const ADD_LEFT_SHIFT: i32 = 20;

/// A prepared int8 addition `y = a + b` of two tensors with different quantizations.
///
/// With [`Rounding::Double`] or [`Rounding::Single`]: TFLite's reference `Add` (general
/// rescaling): `twice_max = 2 · max(s_a, s_b)`, input multipliers `s_a / twice_max` and
/// `s_b / twice_max`, output multiplier `twice_max / (2^20 · s_y)`; per element
/// `a' = (a − z_a) · 2^20` and `b'` likewise, each rescaled, summed, rescaled by the output
/// multiplier, plus `z_y`, clamped. With [`Rounding::FloatScale`]: the paper's
/// `(a − z_a)·s_a + (b − z_b)·s_b` in `f32`, divided by `s_y` in `f64`, rounded half to even.
/// [`Rounding::OnnxRuntime`] is not a kernel here (its float path stays in the interpreter):
/// [`AddParams::new`] rejects it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AddParams {
    /// Quantization of `a`.
    pub a: QuantParams,
    /// Quantization of `b`.
    pub b: QuantParams,
    /// Quantization of the output.
    pub out: QuantParams,
    /// Clamp range of the output.
    pub range: ActRange,
    /// Rounding mode.
    pub rounding: Rounding,
    /// `(multiplier, shift)` of `a` and `b`.
    pub input_multipliers: [(i32, i32); 2],
    /// `(multiplier, shift)` of the output.
    pub output_multiplier: (i32, i32),
}

impl AddParams {
    /// Computes the multipliers (on the host). Fails on invalid scales, an empty range,
    /// [`Rounding::OnnxRuntime`], or (fixed-point modes) a factor that is not in `(0, 1)`.
    pub fn new(
        a: QuantParams,
        b: QuantParams,
        out: QuantParams,
        range: ActRange,
        rounding: Rounding,
    ) -> Result<Self, KernelError> {
        a.check()?;
        b.check()?;
        out.check()?;
        range.check()?;
        if rounding == Rounding::OnnxRuntime {
            return Err(KernelError::Param(
                "the onnxruntime add is not a mite-kernels kernel",
            ));
        }
        // As TFLite: the doubling is done in f32 (exact), the divisions in f64.
        let twice_max = f64::from(2.0 * a.scale.max(b.scale));
        let reals = [
            f64::from(a.scale) / twice_max,
            f64::from(b.scale) / twice_max,
            twice_max / (f64::from(1_u32 << ADD_LEFT_SHIFT) * f64::from(out.scale)),
        ];
        let q = reals.map(|r| rounding.quantize_multiplier(r));
        if rounding != Rounding::FloatScale {
            for (real, (_, shift)) in reals.iter().zip(&q) {
                if !(*real > 0.0 && *real < 1.0 && *shift <= 0) {
                    return Err(KernelError::Param(
                        "add rescale factor not in (0, 1): output scale too small",
                    ));
                }
            }
        }
        Ok(Self {
            a,
            b,
            out,
            range,
            rounding,
            input_multipliers: [q[0], q[1]],
            output_multiplier: q[2],
        })
    }

    /// Adds one pair of elements.
    #[inline]
    pub fn add_one(&self, a: i8, b: i8) -> i8 {
        let da = i32::from(a) - i32::from(self.a.zero_point);
        let db = i32::from(b) - i32::from(self.b.zero_point);
        let raw = if self.rounding == Rounding::FloatScale {
            let sum = da as f32 * self.a.scale + db as f32 * self.b.scale;
            round_ties_even_f64(f64::from(sum) / f64::from(self.out.scale)) as i32
        } else {
            // |da|, |db| <= 255, so the shifted values stay below 2^28.
            let [(ma, sa), (mb, sb)] = self.input_multipliers;
            let scaled_a = self.rounding.multiply(da << ADD_LEFT_SHIFT, ma, sa);
            let scaled_b = self.rounding.multiply(db << ADD_LEFT_SHIFT, mb, sb);
            let (mo, so) = self.output_multiplier;
            self.rounding.multiply(scaled_a + scaled_b, mo, so)
        };
        self.range
            .clamp(raw.saturating_add(i32::from(self.out.zero_point)))
    }
}

/// Adds two tensors of the same length element by element into `out`.
pub fn add_int8(a: &[i8], b: &[i8], out: &mut [i8], p: &AddParams) -> Result<(), KernelError> {
    check_len("add b", a.len(), b.len())?;
    check_len("add out", a.len(), out.len())?;
    for ((y, &x), &z) in out.iter_mut().zip(a).zip(b) {
        *y = p.add_one(x, z);
    }
    Ok(())
}
