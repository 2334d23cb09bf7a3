//! Float ↔ int8 conversion as ONNX `QuantizeLinear` / `DequantizeLinear`: allocating wrappers
//! of the `mite-kernels` kernels.

use mite_kernels::int8::{self as k, PerAxis};

use crate::kernel_error::{check_len, KernelError};

pub use mite_kernels::requant::QuantParams;

/// Checks that a quantization scale is finite and positive.
pub(crate) fn check_scale(scale: f32) -> Result<(), KernelError> {
    Ok(mite_kernels::requant::check_scale(scale)?)
}

/// ONNX `QuantizeLinear` to int8 with a per-tensor scale and zero point: round half to even,
/// then saturate to `[-128, 127]`.
pub fn quantize(x: &[f32], scale: f32, zero_point: i8) -> Result<Vec<i8>, KernelError> {
    let q = QuantParams { scale, zero_point };
    q.check()?;
    let mut y = vec![0; x.len()];
    k::quantize(x, &mut y, &PerAxis::per_tensor(&q)?)?;
    Ok(y)
}

/// ONNX `DequantizeLinear` from int8 with a per-tensor scale and zero point:
/// `(x − zero_point) · scale` in `f32`.
pub fn dequantize(x: &[i8], scale: f32, zero_point: i8) -> Result<Vec<f32>, KernelError> {
    let q = QuantParams { scale, zero_point };
    q.check()?;
    let mut y = vec![0.0; x.len()];
    k::dequantize(x, &mut y, &PerAxis::per_tensor(&q)?)?;
    Ok(y)
}

/// Validates a per-axis layout and returns `(axis length, elements after the axis)`.
fn per_axis_layout(
    len: usize,
    shape: &[usize],
    axis: usize,
    scales: &[f32],
    zero_points: &[i8],
) -> Result<(usize, usize), KernelError> {
    if axis >= shape.len() {
        return Err(KernelError::Invalid(format!(
            "axis {axis} out of range for rank {}",
            shape.len()
        )));
    }
    let numel = shape
        .iter()
        .try_fold(1_usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| KernelError::Invalid("shape size overflows usize".into()))?;
    check_len("x", numel, len)?;
    check_len("scales", shape[axis], scales.len())?;
    if !zero_points.is_empty() {
        check_len("zero_points", shape[axis], zero_points.len())?;
    }
    for &s in scales {
        check_scale(s)?;
    }
    let inner = shape[axis + 1..].iter().product();
    Ok((shape[axis], inner))
}

/// ONNX `QuantizeLinear` with per-axis scales and zero points along `axis` of `shape`
/// (`scales.len() == shape[axis]`; `zero_points` has the same length, or is empty for all-zero).
pub fn quantize_per_axis(
    x: &[f32],
    shape: &[usize],
    axis: usize,
    scales: &[f32],
    zero_points: &[i8],
) -> Result<Vec<i8>, KernelError> {
    let (_, inner) = per_axis_layout(x.len(), shape, axis, scales, zero_points)?;
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let mut y = vec![0; x.len()];
    k::quantize(x, &mut y, &PerAxis::new(scales, zero_points, inner)?)?;
    Ok(y)
}

/// ONNX `DequantizeLinear` with per-axis scales and zero points along `axis` of `shape`
/// (`scales.len() == shape[axis]`; `zero_points` has the same length, or is empty for all-zero).
pub fn dequantize_per_axis(
    x: &[i8],
    shape: &[usize],
    axis: usize,
    scales: &[f32],
    zero_points: &[i8],
) -> Result<Vec<f32>, KernelError> {
    let (_, inner) = per_axis_layout(x.len(), shape, axis, scales, zero_points)?;
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let mut y = vec![0.0; x.len()];
    k::dequantize(x, &mut y, &PerAxis::new(scales, zero_points, inner)?)?;
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        let x = [
            0.0,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            0.49,
            1000.0,
            -1000.0,
            f32::NAN,
        ];
        let q = quantize(&x, 1.0, 0).unwrap();
        assert_eq!(q, vec![0, 0, 2, 2, 0, -2, -2, 0, 127, -128, 0]);
        let q = quantize(&[1.0, -1.0, 0.25, f32::INFINITY, f32::NEG_INFINITY], 0.5, 3).unwrap();
        assert_eq!(q, vec![5, 1, 3, 127, -128]);
        // Rounding happens before the zero point: 0.5/1 -> 0, + 1 = 1 (not round(1.5) = 2).
        assert_eq!(quantize(&[0.5], 1.0, 1).unwrap(), vec![1]);
        assert!(quantize(&[1.0], 0.0, 0).is_err());
        assert!(quantize(&[1.0], f32::NAN, 0).is_err());
    }

    #[test]
    fn dequantize_per_tensor() {
        let x = dequantize(&[-128, 0, 5, 127], 0.5, -128).unwrap();
        assert_eq!(x, vec![0.0, 64.0, 66.5, 127.5]);
        assert!(dequantize(&[0], -1.0, 0).is_err());
    }

    #[test]
    fn per_axis_round_trip() {
        // shape [2, 3, 2], axis 1: scales per middle index.
        let shape = [2, 3, 2];
        let scales = [1.0, 0.5, 0.25];
        let zps = [0, 1, -1];
        let x: Vec<f32> = (0..12).map(|i| i as f32 * 0.25).collect();
        let q = quantize_per_axis(&x, &shape, 1, &scales, &zps).unwrap();
        let expect: Vec<i8> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = (i / 2) % 3;
                quantize(&[v], scales[c], zps[c]).unwrap()[0]
            })
            .collect();
        assert_eq!(q, expect);
        let back = dequantize_per_axis(&q, &shape, 1, &scales, &zps).unwrap();
        for (i, (&a, &b)) in x.iter().zip(&back).enumerate() {
            let c = (i / 2) % 3;
            assert!((a - b).abs() <= scales[c] / 2.0, "{i}: {a} vs {b}");
        }
        // Empty zero points mean zero.
        let q0 = quantize_per_axis(&x, &shape, 1, &scales, &[]).unwrap();
        assert_eq!(q0[2], 1); // x = 0.5, scale 0.5
        assert_eq!(q0[11], 11); // x = 2.75, scale 0.25
    }

    #[test]
    fn per_axis_errors() {
        let x = [0.0_f32; 6];
        assert!(quantize_per_axis(&x, &[2, 3], 2, &[1.0; 3], &[]).is_err());
        assert!(quantize_per_axis(&x, &[2, 3], 1, &[1.0; 2], &[]).is_err());
        assert!(quantize_per_axis(&x, &[2, 3], 1, &[1.0; 3], &[0; 2]).is_err());
        assert!(quantize_per_axis(&x, &[2, 4], 1, &[1.0; 4], &[]).is_err());
        assert!(quantize_per_axis(&x, &[usize::MAX, 3], 1, &[1.0; 3], &[]).is_err());
        assert!(dequantize_per_axis(&[0; 6], &[2, 3], 0, &[1.0, 0.0], &[]).is_err());
        assert!(quantize_per_axis(&[], &[0, 3], 1, &[1.0; 3], &[])
            .unwrap()
            .is_empty());
    }
}
