//! Shape helpers shared by the float kernels: checked element counts, row-major strides,
//! broadcasting and fallible allocation.

use crate::kernel_error::KernelError;

/// Number of elements of a tensor of shape `shape` (1 for a scalar), or an error if the product
/// overflows `usize`.
pub fn numel(shape: &[usize]) -> Result<usize, KernelError> {
    shape.iter().try_fold(1usize, |acc, &d| {
        acc.checked_mul(d)
            .ok_or_else(|| KernelError::Invalid(format!("shape {shape:?} has too many elements")))
    })
}

/// Row-major strides (in elements) of a tensor of shape `shape`. Assumes [`numel`] succeeded.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut out = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        out[i] = out[i + 1] * shape[i + 1];
    }
    out
}

/// The numpy-style broadcast of two shapes: shapes are aligned at their last axis, and each pair
/// of dimensions must be equal or contain a 1.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, KernelError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = dim_aligned(a, rank, i);
        let db = dim_aligned(b, rank, i);
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(KernelError::Invalid(format!(
                "shapes {a:?} and {b:?} do not broadcast"
            )));
        };
    }
    numel(&out)?;
    Ok(out)
}

/// Dimension of `shape` at axis `i` after left-padding it with ones to `rank` axes.
fn dim_aligned(shape: &[usize], rank: usize, i: usize) -> usize {
    let pad = rank - shape.len();
    if i < pad {
        1
    } else {
        shape[i - pad]
    }
}

/// Strides of `shape` read as a tensor of the (broadcast) shape `out`: zero along every axis
/// where `shape` has extent 1 (or is missing) but `out` does not.
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let own = strides(shape);
    (0..rank)
        .map(|i| {
            let pad = rank - shape.len();
            if i < pad || shape[i - pad] != out[i] {
                0
            } else {
                own[i - pad]
            }
        })
        .collect()
}

/// Checks that `axis` is a valid axis of a rank-`rank` tensor.
pub(crate) fn check_axis(axis: usize, rank: usize) -> Result<(), KernelError> {
    if axis < rank {
        Ok(())
    } else {
        Err(KernelError::Invalid(format!(
            "axis {axis} out of range for a rank-{rank} tensor"
        )))
    }
}

/// Splits `shape` around `axis` into `(outer, axis_len, inner)` element counts.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> Result<[usize; 3], KernelError> {
    check_axis(axis, shape.len())?;
    Ok([
        numel(&shape[..axis])?,
        shape[axis],
        numel(&shape[axis + 1..])?,
    ])
}

/// A vector of `len` copies of `value`, or an error (instead of an abort) if it cannot be
/// allocated.
pub(crate) fn filled<T: Clone>(len: usize, value: T) -> Result<Vec<T>, KernelError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        KernelError::Invalid(format!("cannot allocate an output of {len} elements"))
    })?;
    v.resize(len, value);
    Ok(v)
}

/// Calls `f(out_index, a_index, b_index)` for every element of the broadcast shape `out`, in
/// row-major order, where `a_strides` and `b_strides` come from [`broadcast_strides`].
pub(crate) fn for_each_broadcast(
    out: &[usize],
    a_strides: &[usize],
    b_strides: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let rank = out.len();
    if out.contains(&0) {
        return;
    }
    if rank == 0 {
        f(0, 0, 0);
        return;
    }
    let last = rank - 1;
    let (len, sa, sb) = (out[last], a_strides[last], b_strides[last]);
    let mut index = vec![0usize; last];
    let (mut ia, mut ib, mut io) = (0usize, 0usize, 0usize);
    loop {
        for j in 0..len {
            f(io + j, ia + j * sa, ib + j * sb);
        }
        io += len;
        // Advance the odometer over the outer axes.
        let mut axis = last;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            ia += a_strides[axis];
            ib += b_strides[axis];
            if index[axis] < out[axis] {
                break;
            }
            ia -= a_strides[axis] * out[axis];
            ib -= b_strides[axis] * out[axis];
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_rules() {
        assert_eq!(broadcast_shape(&[2, 3], &[3]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast_shape(&[2, 1, 4], &[3, 1]).unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast_shape(&[], &[5]).unwrap(), vec![5]);
        assert!(broadcast_shape(&[2, 3], &[2]).is_err());
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), vec![0, 1, 0]);
    }

    #[test]
    fn numel_overflow_is_an_error() {
        assert_eq!(numel(&[]).unwrap(), 1);
        assert_eq!(numel(&[2, 0, 3]).unwrap(), 0);
        assert!(numel(&[usize::MAX, 2]).is_err());
    }

    #[test]
    fn odometer_visits_every_element() {
        let out = [2, 3, 2];
        let sa = broadcast_strides(&[3, 1], &out);
        let sb = broadcast_strides(&[2, 1, 2], &out);
        let mut seen = Vec::new();
        for_each_broadcast(&out, &sa, &sb, |o, a, b| seen.push((o, a, b)));
        assert_eq!(seen.len(), 12);
        assert_eq!(seen[0], (0, 0, 0));
        assert_eq!(seen[3], (3, 1, 1));
        assert_eq!(seen[11], (11, 2, 3));
    }

    #[test]
    fn allocation_failure_is_an_error() {
        assert!(filled(usize::MAX / 2, 0.0f32).is_err());
    }
}
