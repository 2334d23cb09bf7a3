//! Gradients of average and global average pooling.

use crate::error::{check_len, checked_product, KernelError};
use crate::geometry::Window2d;

use super::Scalar;

/// Gradient of average pooling: each output gradient, divided by its divisor (the window area
/// with `count_include_pad`, else the number of real input elements), is spread over the real
/// input elements of its window. `dy` `[n, c, oh, ow]` → `out` `[n, c, h, w]`. Without
/// `count_include_pad`, a window that reads only padding is an error.
pub fn avg_pool_backward<T: Scalar>(
    dy: &[T],
    input_dims: [usize; 4],
    window: &Window2d,
    count_include_pad: bool,
    out: &mut [T],
) -> Result<(), KernelError> {
    let [n, c, h, w] = input_dims;
    let [ay, ax] = window.axes([h, w])?;
    let (oh, ow) = (ay.out_len, ax.out_len);
    check_len(
        "avg_pool grad_output",
        checked_product(&[n, c, oh, ow])?,
        dy.len(),
    )?;
    check_len(
        "avg_pool grad_input",
        checked_product(&input_dims)?,
        out.len(),
    )?;
    out.fill(T::ZERO);
    if n * c == 0 {
        return Ok(());
    }
    let empty = (0..oh).any(|o| ay.valid_taps(o).is_empty())
        || (0..ow).any(|o| ax.valid_taps(o).is_empty());
    if empty && !count_include_pad {
        return Err(KernelError::EmptyWindow);
    }
    let area = window.kernel[0] * window.kernel[1];
    for (dx, dyp) in out
        .chunks_exact_mut((h * w).max(1))
        .zip(dy.chunks_exact((oh * ow).max(1)))
    {
        for oy in 0..oh {
            let rows = ay.valid_taps(oy);
            for ox in 0..ow {
                let cols = ax.valid_taps(ox);
                let div = if count_include_pad {
                    area
                } else {
                    rows.len() * cols.len()
                };
                let gv = dyp[oy * ow + ox] / T::of_count(div);
                for ki in rows.clone() {
                    let row = ay.input_index(oy, ki) * w;
                    for kj in cols.clone() {
                        dx[row + ax.input_index(ox, kj)] += gv;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Gradient of global average pooling: `dy` `[n, c]` divided by `h · w` and spread over each
/// plane of `out` `[n, c, h, w]`.
pub fn global_avg_pool_backward<T: Scalar>(
    dy: &[T],
    input_dims: [usize; 4],
    out: &mut [T],
) -> Result<(), KernelError> {
    let [n, c, h, w] = input_dims;
    let len = checked_product(&input_dims)?;
    let plane = h * w;
    if plane == 0 {
        return Err(KernelError::Geometry("global pooling over an empty plane"));
    }
    check_len("global_avg_pool grad_output", n * c, dy.len())?;
    check_len("global_avg_pool grad_input", len, out.len())?;
    let div = T::of_count(plane);
    for (dx, &gv) in out.chunks_exact_mut(plane).zip(dy) {
        dx.fill(gv / div);
    }
    Ok(())
}
