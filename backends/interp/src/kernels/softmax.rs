//! Softmax and log-softmax along an axis, and their vector-Jacobian products.
//!
//! Both subtract the maximum along the axis before exponentiating, so large logits do not
//! overflow.

use crate::kernel_error::{check_len, KernelError};

use super::real::Real;
use super::shape::{filled, numel, split_at_axis};

/// Calls `f(indices)` with the flat indices of every 1-D lane along `axis` of a tensor of
/// `shape`.
fn lanes(shape: &[usize], axis: usize, mut f: impl FnMut(&[usize])) -> Result<(), KernelError> {
    let [outer, len, inner] = split_at_axis(shape, axis)?;
    if outer == 0 || len == 0 || inner == 0 {
        return Ok(());
    }
    let mut idx = Vec::with_capacity(len);
    for o in 0..outer {
        for i in 0..inner {
            let base = o * len * inner + i;
            idx.clear();
            idx.extend((0..len).map(|j| base + j * inner));
            f(&idx);
        }
    }
    Ok(())
}

/// Writes `log_softmax` of the lane `idx` of `x` into `out`.
fn log_softmax_lane<T: Real>(x: &[T], idx: &[usize], out: &mut [T]) {
    let max = idx
        .iter()
        .fold(T::neg_infinity(), |m, &i| if x[i] > m { x[i] } else { m });
    // A lane of all -inf (or empty) keeps max = -inf; shifting by 0 keeps the result defined.
    let shift = if max.is_finite() { max } else { T::zero() };
    let sum: T = idx.iter().map(|&i| (x[i] - shift).exp()).sum();
    let log_sum = sum.ln();
    for &i in idx {
        out[i] = x[i] - shift - log_sum;
    }
}

/// Log-softmax along `axis`: `x - max - ln Σ exp(x - max)`.
pub fn log_softmax<T: Real>(x: &[T], shape: &[usize], axis: usize) -> Result<Vec<T>, KernelError> {
    check_len("log_softmax input", numel(shape)?, x.len())?;
    let mut out = filled(x.len(), T::zero())?;
    lanes(shape, axis, |idx| {
        log_softmax_lane(x, idx, &mut out);
    })?;
    Ok(out)
}

/// Softmax along `axis`: `exp(x - max) / Σ exp(x - max)`.
pub fn softmax<T: Real>(x: &[T], shape: &[usize], axis: usize) -> Result<Vec<T>, KernelError> {
    let mut out = log_softmax(x, shape, axis)?;
    for v in &mut out {
        *v = v.exp();
    }
    Ok(out)
}

/// Vector-Jacobian product of [`softmax`]: given its output `y` and `grad_output`, returns
/// `y ⊙ (grad_output - Σ_axis grad_output ⊙ y)`.
pub fn softmax_backward<T: Real>(
    y: &[T],
    grad_output: &[T],
    shape: &[usize],
    axis: usize,
) -> Result<Vec<T>, KernelError> {
    let len = numel(shape)?;
    check_len("softmax output", len, y.len())?;
    check_len("softmax grad_output", len, grad_output.len())?;
    let mut dx = filled(len, T::zero())?;
    lanes(shape, axis, |idx| {
        let dot: T = idx.iter().map(|&i| grad_output[i] * y[i]).sum();
        for &i in idx {
            dx[i] = y[i] * (grad_output[i] - dot);
        }
    })?;
    Ok(dx)
}

/// Vector-Jacobian product of [`log_softmax`]: given its output `y` and `grad_output`, returns
/// `grad_output - exp(y) · Σ_axis grad_output`.
pub fn log_softmax_backward<T: Real>(
    y: &[T],
    grad_output: &[T],
    shape: &[usize],
    axis: usize,
) -> Result<Vec<T>, KernelError> {
    let len = numel(shape)?;
    check_len("log_softmax output", len, y.len())?;
    check_len("log_softmax grad_output", len, grad_output.len())?;
    let mut dx = filled(len, T::zero())?;
    lanes(shape, axis, |idx| {
        let sum: T = idx.iter().map(|&i| grad_output[i]).sum();
        for &i in idx {
            dx[i] = grad_output[i] - y[i].exp() * sum;
        }
    })?;
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, check_vjp, Rng};
    use proptest::prelude::*;

    #[test]
    fn hand_computed_softmax() {
        let x = [0.0f64, 3.0f64.ln(), 1000.0, 1000.0];
        assert_close(
            &softmax(&x, &[2, 2], 1).unwrap(),
            &[0.25, 0.75, 0.5, 0.5],
            1e-15,
        );
        let l = log_softmax(&x, &[2, 2], 1).unwrap();
        assert_close(
            &l,
            &[-(4f64.ln()), 0.75f64.ln(), -(2f64.ln()), -(2f64.ln())],
            1e-12,
        );
        // Along axis 0 of a [2, 2] tensor: columns (0, 1000) and (ln 3, 1000).
        let s = softmax(&x, &[2, 2], 0).unwrap();
        assert!(s[0] < 1e-300 && (s[2] - 1.0).abs() < 1e-15);
        // f32 logits that would overflow exp without the max shift.
        let s = softmax(&[100.0f32, 100.0, -1e30], &[3], 0).unwrap();
        assert_eq!(s, vec![0.5, 0.5, 0.0]);
    }

    #[test]
    fn rejects_inconsistent_input() {
        assert!(softmax(&[0.0f32; 3], &[2, 2], 1).is_err());
        assert!(softmax(&[0.0f32; 4], &[2, 2], 2).is_err());
        assert!(log_softmax(&[0.0f32; 4], &[2, 2], 2).is_err());
        assert!(softmax_backward(&[0.0f32; 4], &[0.0; 3], &[2, 2], 1).is_err());
        assert!(log_softmax_backward(&[0.0f32; 3], &[0.0; 4], &[2, 2], 1).is_err());
    }

    fn shape_and_axis() -> impl Strategy<Value = (Vec<usize>, usize)> {
        prop::collection::vec(1usize..=4, 1..=3).prop_flat_map(|s| {
            let rank = s.len();
            (Just(s), 0..rank)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn softmax_gradient((shape, axis) in shape_and_axis(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let n: usize = shape.iter().product();
            let x: Vec<f64> = rng.vec(n).iter().map(|v| 4.0 * v).collect();
            let dy = rng.vec(n);
            let y = softmax(&x, &shape, axis).unwrap();
            let dx = softmax_backward(&y, &dy, &shape, axis).unwrap();
            check_vjp(|x| softmax(x, &shape, axis).unwrap(), &x, &dy, &dx, &mut rng)
                .map_err(TestCaseError::fail)?;
        }

        #[test]
        fn log_softmax_gradient((shape, axis) in shape_and_axis(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let n: usize = shape.iter().product();
            let x: Vec<f64> = rng.vec(n).iter().map(|v| 4.0 * v).collect();
            let dy = rng.vec(n);
            let y = log_softmax(&x, &shape, axis).unwrap();
            let dx = log_softmax_backward(&y, &dy, &shape, axis).unwrap();
            check_vjp(|x| log_softmax(x, &shape, axis).unwrap(), &x, &dy, &dx, &mut rng)
                .map_err(TestCaseError::fail)?;
        }
    }
}
