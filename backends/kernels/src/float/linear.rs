//! Fully connected layer in floating point and its gradients: `x` `[N, K]`, `w` `[M, K]`,
//! `bias` `[M]`, `y` `[N, M]`.

use crate::error::{check_len, KernelError};
use crate::geometry::LinearGeometry;

use super::Scalar;

fn dot<T: Scalar>(a: &[T], b: &[T]) -> T {
    let mut acc = T::ZERO;
    for (&x, &y) in a.iter().zip(b) {
        acc += x * y;
    }
    acc
}

fn axpy<T: Scalar>(y: &mut [T], alpha: T, x: &[T]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += alpha * xv;
    }
}

fn lens(g: &LinearGeometry) -> [usize; 3] {
    let (n, k, m) = (g.batch(), g.in_features(), g.out_features());
    [n * k, m * k, n * m]
}

/// `y[n, m] = b[m] + Σ_k x[n, k] · w[m, k]`.
pub fn linear<T: Scalar>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
    g: &LinearGeometry,
) -> Result<(), KernelError> {
    let [x_len, w_len, y_len] = lens(g);
    check_len("linear input", x_len, x.len())?;
    check_len("linear weight", w_len, w.len())?;
    check_len("linear output", y_len, out.len())?;
    if let Some(bias) = bias {
        check_len("linear bias", g.out_features(), bias.len())?;
    }
    let (k, m) = (g.in_features(), g.out_features());
    if m == 0 {
        return Ok(());
    }
    for (n, y_row) in out.chunks_exact_mut(m).enumerate() {
        let x_row = &x[n * k..(n + 1) * k];
        for (j, yv) in y_row.iter_mut().enumerate() {
            let b = bias.map_or(T::ZERO, |b| b[j]);
            *yv = b + dot(x_row, &w[j * k..(j + 1) * k]);
        }
    }
    Ok(())
}

/// Gradient with respect to `x`: `dy` `[N, M]` · `w` `[M, K]` → `out` `[N, K]`.
pub fn linear_backward_input<T: Scalar>(
    dy: &[T],
    w: &[T],
    out: &mut [T],
    g: &LinearGeometry,
) -> Result<(), KernelError> {
    let [x_len, w_len, y_len] = lens(g);
    check_len("linear grad_output", y_len, dy.len())?;
    check_len("linear weight", w_len, w.len())?;
    check_len("linear grad_input", x_len, out.len())?;
    out.fill(T::ZERO);
    let (k, m) = (g.in_features(), g.out_features());
    if k == 0 || m == 0 {
        return Ok(());
    }
    for (dx_row, dy_row) in out.chunks_exact_mut(k).zip(dy.chunks_exact(m)) {
        for (&dyv, w_row) in dy_row.iter().zip(w.chunks_exact(k)) {
            axpy(dx_row, dyv, w_row);
        }
    }
    Ok(())
}

/// Gradient with respect to `w`: `dyᵀ` `[M, N]` · `x` `[N, K]` → `out` `[M, K]`.
pub fn linear_backward_weight<T: Scalar>(
    x: &[T],
    dy: &[T],
    out: &mut [T],
    g: &LinearGeometry,
) -> Result<(), KernelError> {
    let [x_len, w_len, y_len] = lens(g);
    check_len("linear input", x_len, x.len())?;
    check_len("linear grad_output", y_len, dy.len())?;
    check_len("linear grad_weight", w_len, out.len())?;
    out.fill(T::ZERO);
    let (k, m) = (g.in_features(), g.out_features());
    if k == 0 || m == 0 {
        return Ok(());
    }
    for (x_row, dy_row) in x.chunks_exact(k).zip(dy.chunks_exact(m)) {
        for (dw_row, &dyv) in out.chunks_exact_mut(k).zip(dy_row) {
            axpy(dw_row, dyv, x_row);
        }
    }
    Ok(())
}

/// Gradient with respect to the bias: `dy` summed over rows → `out` `[M]`.
pub fn linear_backward_bias<T: Scalar>(
    dy: &[T],
    out: &mut [T],
    g: &LinearGeometry,
) -> Result<(), KernelError> {
    let [_, _, y_len] = lens(g);
    check_len("linear grad_output", y_len, dy.len())?;
    check_len("linear grad_bias", g.out_features(), out.len())?;
    out.fill(T::ZERO);
    if g.out_features() == 0 {
        return Ok(());
    }
    for row in dy.chunks_exact(g.out_features()) {
        for (d, &v) in out.iter_mut().zip(row) {
            *d += v;
        }
    }
    Ok(())
}
