//! Softmax cross-entropy over `[n, c]` logits with integer labels: the loss and its gradient.

use crate::error::{check_len, checked_product, KernelError};

use super::{Math, Scalar};

/// Checks the shapes and labels.
fn check<T>(logits: &[T], labels: &[i32], n: usize, c: usize) -> Result<(), KernelError> {
    if n == 0 {
        return Err(KernelError::Geometry("softmax_cross_entropy: empty batch"));
    }
    check_len(
        "softmax_cross_entropy logits",
        checked_product(&[n, c])?,
        logits.len(),
    )?;
    check_len("softmax_cross_entropy labels", n, labels.len())?;
    if labels
        .iter()
        .any(|&l| usize::try_from(l).map_or(true, |l| l >= c))
    {
        return Err(KernelError::Param(
            "softmax_cross_entropy: a label is not in 0..c",
        ));
    }
    Ok(())
}

/// `x − max − ln Σ exp(x − max)` of one row, into `out`.
fn log_softmax_row<T: Scalar, M: Math<T>>(x: &[T], out: &mut [T]) {
    let max = x.iter().fold(T::NEG_INF, |m, &v| if v > m { v } else { m });
    // A row of all −∞ keeps max = −∞; shifting by 0 keeps the result defined.
    let shift = if max.finite() { max } else { T::ZERO };
    let sum: T = x.iter().map(|&v| M::exp(v - shift)).sum();
    let log_sum = M::ln(sum);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v - shift - log_sum;
    }
}

/// The mean over the batch of `−log_softmax(logits)[label]`. `scratch` holds one row (`c`).
pub fn softmax_cross_entropy<T: Scalar, M: Math<T>>(
    logits: &[T],
    labels: &[i32],
    scratch: &mut [T],
    n: usize,
    c: usize,
) -> Result<T, KernelError> {
    check(logits, labels, n, c)?;
    crate::error::check_scratch(c, scratch.len())?;
    let row = &mut scratch[..c];
    let total: T = logits
        .chunks_exact(c.max(1))
        .zip(labels)
        .map(|(x, &l)| {
            log_softmax_row::<T, M>(x, row);
            -row[l as usize]
        })
        .sum();
    Ok(total / T::of_count(n))
}

/// Gradient with respect to the logits, `grad_loss · (softmax(logits) − onehot(labels)) / n`,
/// into `out` `[n, c]`.
pub fn softmax_cross_entropy_backward<T: Scalar, M: Math<T>>(
    logits: &[T],
    labels: &[i32],
    grad_loss: T,
    out: &mut [T],
    n: usize,
    c: usize,
) -> Result<(), KernelError> {
    check(logits, labels, n, c)?;
    check_len("softmax_cross_entropy grad", logits.len(), out.len())?;
    let scale = grad_loss / T::of_count(n);
    if c == 0 {
        return Ok(());
    }
    for ((x, o), &l) in logits
        .chunks_exact(c)
        .zip(out.chunks_exact_mut(c))
        .zip(labels)
    {
        log_softmax_row::<T, M>(x, o);
        for v in o.iter_mut() {
            *v = M::exp(*v);
        }
        o[l as usize] -= T::ONE;
        for v in o.iter_mut() {
            *v *= scale;
        }
    }
    Ok(())
}
