//! Loss functions (reducing to a scalar) and their gradients.
//!
//! The gradient kernels take `grad_loss`, the gradient flowing into the scalar loss (1 when the
//! loss is the root of the backward pass), so they compose like every other VJP.

use crate::kernel_error::{check_len, KernelError};

use super::real::Real;
use super::shape::{filled, numel};

/// Checks logits `[n, c]` and labels `[n]` and returns the labels as indices.
fn check_labels<T>(
    logits: &[T],
    labels: &[i32],
    n: usize,
    c: usize,
) -> Result<Vec<usize>, KernelError> {
    if n == 0 {
        return Err(KernelError::Invalid(
            "softmax_cross_entropy: empty batch".to_string(),
        ));
    }
    check_len(
        "softmax_cross_entropy logits",
        numel(&[n, c])?,
        logits.len(),
    )?;
    check_len("softmax_cross_entropy labels", n, labels.len())?;
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            usize::try_from(l).ok().filter(|&l| l < c).ok_or_else(|| {
                KernelError::Invalid(format!(
                    "softmax_cross_entropy: label {l} of sample {i} is not in 0..{c}"
                ))
            })
        })
        .collect()
}

/// Softmax cross-entropy: `logits` `[n, c]`, integer `labels` `[n]` in `0..c` → the mean over the
/// batch of `-log_softmax(logits)[label]`. Errors on an empty batch or an out-of-range label.
pub fn softmax_cross_entropy<T: Real>(
    logits: &[T],
    labels: &[i32],
    n: usize,
    c: usize,
) -> Result<T, KernelError> {
    check_labels(logits, labels, n, c)?;
    let mut row = filled(c, T::zero())?;
    Ok(mite_kernels::float::softmax_cross_entropy::<T, RealMath>(
        logits, labels, &mut row, n, c,
    )?)
}

/// Gradient of [`softmax_cross_entropy`] with respect to the logits:
/// `grad_loss · (softmax(logits) - onehot(labels)) / n`, shape `[n, c]`.
pub fn softmax_cross_entropy_backward<T: Real>(
    logits: &[T],
    labels: &[i32],
    n: usize,
    c: usize,
    grad_loss: T,
) -> Result<Vec<T>, KernelError> {
    check_labels(logits, labels, n, c)?;
    let mut grad = filled(logits.len(), T::zero())?;
    mite_kernels::float::softmax_cross_entropy_backward::<T, RealMath>(
        logits, labels, grad_loss, &mut grad, n, c,
    )?;
    Ok(grad)
}

/// The host's `exp` and `ln` (those of [`Real`]) for the kernels.
struct RealMath;

impl<T: Real> mite_kernels::float::Math<T> for RealMath {
    fn exp(x: T) -> T {
        x.exp()
    }
    fn ln(x: T) -> T {
        x.ln()
    }
}

fn check_mse<T>(a: &[T], b: &[T], shape: &[usize]) -> Result<usize, KernelError> {
    let len = numel(shape)?;
    if len == 0 {
        return Err(KernelError::Invalid("mse: empty tensors".to_string()));
    }
    check_len("mse prediction", len, a.len())?;
    check_len("mse target", len, b.len())?;
    Ok(len)
}

/// Mean-squared error `mean((a - b)²)` between two tensors of shape `shape`. Errors on empty
/// tensors.
pub fn mse<T: Real>(a: &[T], b: &[T], shape: &[usize]) -> Result<T, KernelError> {
    let len = check_mse(a, b, shape)?;
    let total: T = a.iter().zip(b).map(|(&x, &y)| (x - y) * (x - y)).sum();
    Ok(total / T::from_usize(len))
}

/// Gradient of [`mse`] with respect to `a`: `grad_loss · 2 (a - b) / len`. The gradient with
/// respect to `b` is its negation.
pub fn mse_backward<T: Real>(
    a: &[T],
    b: &[T],
    shape: &[usize],
    grad_loss: T,
) -> Result<Vec<T>, KernelError> {
    let len = check_mse(a, b, shape)?;
    let scale = (grad_loss + grad_loss) / T::from_usize(len);
    let mut grad = filled(len, T::zero())?;
    for ((g, &x), &y) in grad.iter_mut().zip(a).zip(b) {
        *g = scale * (x - y);
    }
    Ok(grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, check_vjp, Rng};
    use proptest::prelude::*;

    #[test]
    fn hand_computed_losses() {
        let ce = softmax_cross_entropy(&[0.0f64, 0.0, 0.0, 3f64.ln()], &[0, 1], 2, 2).unwrap();
        assert!((ce - (2f64.ln() + (4.0f64 / 3.0).ln()) / 2.0).abs() < 1e-15);
        let g = softmax_cross_entropy_backward(&[0.0f64, 0.0, 0.0, 3f64.ln()], &[0, 1], 2, 2, 1.0)
            .unwrap();
        assert_close(&g, &[-0.25, 0.25, 0.125, -0.125], 1e-15);
        // Large logits stay finite.
        let ce = softmax_cross_entropy(&[1000.0f32, 0.0], &[1], 1, 2).unwrap();
        assert_eq!(ce, 1000.0);

        assert_eq!(mse(&[1.0f32, 2.0], &[3.0, 2.0], &[2]).unwrap(), 2.0);
        assert_eq!(
            mse_backward(&[1.0f32, 2.0], &[3.0, 2.0], &[2], 0.5).unwrap(),
            vec![-1.0, 0.0]
        );
    }

    #[test]
    fn rejects_inconsistent_input() {
        let logits = [0.0f32; 4];
        assert!(softmax_cross_entropy(&logits, &[0, 2], 2, 2).is_err());
        assert!(softmax_cross_entropy(&logits, &[-1, 0], 2, 2).is_err());
        assert!(softmax_cross_entropy(&logits, &[0], 2, 2).is_err());
        assert!(softmax_cross_entropy(&logits, &[0, 0], 2, 3).is_err());
        assert!(softmax_cross_entropy::<f32>(&[], &[], 0, 2).is_err());
        assert!(softmax_cross_entropy_backward(&logits, &[0, 5], 2, 2, 1.0).is_err());
        assert!(mse(&[0.0f32; 2], &[0.0; 3], &[2]).is_err());
        assert!(mse::<f32>(&[], &[], &[0]).is_err());
        assert!(mse_backward(&[0.0f32; 3], &[0.0; 3], &[2], 1.0).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn cross_entropy_gradient(n in 1usize..=4, c in 1usize..=5, seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let logits: Vec<f64> = rng.vec(n * c).iter().map(|v| 3.0 * v).collect();
            let labels: Vec<i32> = (0..n).map(|_| (rng.next_u64() % c as u64) as i32).collect();
            let grad_loss = rng.uniform();
            let g = softmax_cross_entropy_backward(&logits, &labels, n, c, grad_loss).unwrap();
            let f = |x: &[f64]| vec![softmax_cross_entropy(x, &labels, n, c).unwrap()];
            check_vjp(f, &logits, &[grad_loss], &g, &mut rng).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn mse_gradient(shape in prop::collection::vec(1usize..=3, 0..=3), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let len: usize = shape.iter().product();
            let (a, b, grad_loss) = (rng.vec(len), rng.vec(len), rng.uniform());
            let g = mse_backward(&a, &b, &shape, grad_loss).unwrap();
            let f = |x: &[f64]| vec![mse(x, &b, &shape).unwrap()];
            check_vjp(f, &a, &[grad_loss], &g, &mut rng).map_err(TestCaseError::fail)?;
            // With respect to the target: the negation.
            let neg: Vec<f64> = g.iter().map(|v| -v).collect();
            let f = |y: &[f64]| vec![mse(&a, y, &shape).unwrap()];
            check_vjp(f, &b, &[grad_loss], &neg, &mut rng).map_err(TestCaseError::fail)?;
        }
    }
}
