//! int8 pooling: average (TFLite `AveragePool`), global average (the paper's: the output keeps
//! the input quantization) and mean with requantization (TFLite `Mean`).

use crate::error::{check_len, checked_product, KernelError};
use crate::fmath::round_ties_even_f64;
use crate::geometry::Window2d;
use crate::requant::{ActRange, QuantParams, Rounding};

/// `sum / count` rounded to nearest, ties away from zero (`count > 0`).
fn div_round_half_away(sum: i64, count: i64) -> i64 {
    if sum > 0 {
        (sum + count / 2) / count
    } else {
        (sum - count / 2) / count
    }
}

/// `sum / count` rounded to nearest, ties to even (`count > 0`).
fn div_round_half_even(sum: i64, count: i64) -> i64 {
    let q = sum.div_euclid(count);
    let r = sum.rem_euclid(count);
    match (2 * r).cmp(&count) {
        core::cmp::Ordering::Less => q,
        core::cmp::Ordering::Greater => q + 1,
        core::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// int8 average pooling of `x` `[n, c, h, w]` (`dims`) into `out` `[n, c, oh, ow]`, as TFLite's
/// reference: padding excluded from the count, ties away from zero, then clamped to `range`. A
/// window entirely in the padding is an error.
pub fn avg_pool_int8(
    x: &[i8],
    dims: [usize; 4],
    window: &Window2d,
    range: ActRange,
    out: &mut [i8],
) -> Result<(), KernelError> {
    range.check()?;
    let [n, c, h, w] = dims;
    check_len("avg_pool x", checked_product(&dims)?, x.len())?;
    let [ay, ax] = window.axes([h, w])?;
    let (oh, ow) = (ay.out_len, ax.out_len);
    check_len("avg_pool out", checked_product(&[n, c, oh, ow])?, out.len())?;
    if oh * ow == 0 {
        return Ok(());
    }
    if h * w == 0 {
        // The padding alone makes the window fit: every window is empty.
        return if n * c == 0 {
            Ok(())
        } else {
            Err(KernelError::EmptyWindow)
        };
    }
    for (plane, y) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for oy in 0..oh {
            let rows = ay.valid_taps(oy);
            for ox in 0..ow {
                let cols = ax.valid_taps(ox);
                let count = (rows.len() * cols.len()) as i64;
                if count == 0 {
                    return Err(KernelError::EmptyWindow);
                }
                let mut sum = 0_i64;
                for ky in rows.clone() {
                    let iy = ay.input_index(oy, ky);
                    for kx in cols.clone() {
                        sum += i64::from(plane[iy * w + ax.input_index(ox, kx)]);
                    }
                }
                // |mean| <= 128, so the cast to i32 is exact.
                y[oy * ow + ox] = range.clamp(div_round_half_away(sum, count) as i32);
            }
        }
    }
    Ok(())
}

/// The paper's global average pool: `x` `[n, c, h, w]` into `out` `[n, c]`, same quantization,
/// the mean rounded half away from zero (fixed-point modes, as TFLite) or half to even
/// (float modes, as PyTorch and onnxruntime).
pub fn global_avg_pool_int8(
    x: &[i8],
    dims: [usize; 4],
    rounding: Rounding,
    out: &mut [i8],
) -> Result<(), KernelError> {
    let count = global_count(x.len(), dims)?;
    check_len("global_avg_pool out", dims[0] * dims[1], out.len())?;
    for (plane, y) in x.chunks_exact(count).zip(out.iter_mut()) {
        let sum: i64 = plane.iter().map(|&v| i64::from(v)).sum();
        let mean = match rounding {
            Rounding::Double | Rounding::Single => div_round_half_away(sum, count as i64),
            Rounding::FloatScale | Rounding::OnnxRuntime => div_round_half_even(sum, count as i64),
        };
        // The mean of int8 values is an int8 value.
        *y = mean as i8;
    }
    Ok(())
}

/// Checks `x` against `dims` and returns the plane size (non-zero).
fn global_count(len: usize, dims: [usize; 4]) -> Result<usize, KernelError> {
    check_len("global pool x", checked_product(&dims)?, len)?;
    let count = dims[2] * dims[3];
    if count == 0 {
        return Err(KernelError::Geometry("global pooling over an empty plane"));
    }
    Ok(count)
}

/// The parameters of [`mean_int8`] (TFLite int8 `Mean` over H×W), computed on the host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanParams {
    /// Input quantization.
    pub input: QuantParams,
    /// Output quantization.
    pub output: QuantParams,
    /// Rounding mode (not [`Rounding::OnnxRuntime`], whose float path is the interpreter's).
    pub rounding: Rounding,
    /// `s_in / s_out`.
    pub real: f64,
    /// `(multiplier, shift)` of `real`.
    pub multiplier: (i32, i32),
}

impl MeanParams {
    /// Computes the multiplier.
    pub fn new(
        input: QuantParams,
        output: QuantParams,
        rounding: Rounding,
    ) -> Result<Self, KernelError> {
        input.check()?;
        output.check()?;
        if rounding == Rounding::OnnxRuntime {
            return Err(KernelError::Param(
                "the onnxruntime mean is not a mite-kernels kernel",
            ));
        }
        let real = f64::from(input.scale) / f64::from(output.scale);
        Ok(Self {
            input,
            output,
            rounding,
            real,
            multiplier: rounding.quantize_multiplier(real),
        })
    }
}

/// TFLite int8 `Mean` over H×W: `x` `[n, c, h, w]` into `out` `[n, c]` requantized from the input
/// to the output quantization. At most `2^23` elements per plane (the `i32` accumulator).
pub fn mean_int8(
    x: &[i8],
    dims: [usize; 4],
    out: &mut [i8],
    p: &MeanParams,
) -> Result<(), KernelError> {
    let count = global_count(x.len(), dims)?;
    check_len("mean out", dims[0] * dims[1], out.len())?;
    if count > 1 << 23 {
        return Err(KernelError::Geometry(
            "mean over more than 2^23 elements overflows the int32 accumulator",
        ));
    }
    let zi = i32::from(p.input.zero_point);
    let zo = i64::from(p.output.zero_point);
    let (m, s) = p.multiplier;
    for (plane, y) in x.chunks_exact(count).zip(out.iter_mut()) {
        // |x − z_in| <= 255 and count <= 2^23: no overflow.
        let acc: i32 = plane.iter().map(|&v| i32::from(v) - zi).sum();
        let mean = match p.rounding {
            Rounding::Double | Rounding::Single => {
                div_round_half_away(i64::from(p.rounding.multiply(acc, m, s)), count as i64)
            }
            Rounding::FloatScale | Rounding::OnnxRuntime => {
                round_ties_even_f64(f64::from(acc) * p.real / count as f64) as i64
            }
        };
        *y = mean
            .saturating_add(zo)
            .clamp(i64::from(i8::MIN), i64::from(i8::MAX)) as i8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_empty_plane_padded_to_fit_is_an_empty_window_not_a_panic() {
        use super::*;
        let window = Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [1, 1, 0, 0],
            dilations: [1, 1],
        };
        let range = ActRange {
            min: -128,
            max: 127,
        };
        let mut out = [0_i8; 1];
        let e = avg_pool_int8(&[], [1, 1, 0, 0], &window, range, &mut out).unwrap_err();
        assert_eq!(e, KernelError::EmptyWindow);
        assert!(avg_pool_int8(&[], [0, 1, 0, 0], &window, range, &mut []).is_ok());
    }

    use super::*;

    #[test]
    fn rounding_helpers() {
        assert_eq!(div_round_half_away(3, 2), 2);
        assert_eq!(div_round_half_away(-3, 2), -2);
        assert_eq!(div_round_half_away(5, 4), 1);
        assert_eq!(div_round_half_away(-5, 4), -1);
        assert_eq!(div_round_half_away(0, 4), 0);
        assert_eq!(div_round_half_away(4, 3), 1);
        assert_eq!(div_round_half_away(5, 3), 2);
        assert_eq!(div_round_half_even(3, 2), 2);
        assert_eq!(div_round_half_even(5, 2), 2);
        assert_eq!(div_round_half_even(-3, 2), -2);
        assert_eq!(div_round_half_even(-5, 2), -2);
        assert_eq!(div_round_half_even(-1, 2), 0);
        assert_eq!(div_round_half_even(7, 4), 2);
        assert_eq!(div_round_half_even(-7, 4), -2);
    }
}
