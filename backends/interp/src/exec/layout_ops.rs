//! Data movement on any element type: `nn.concat` and `nn.transpose`.
//!
//! (`nn.reshape` and `nn.flatten` do not touch the data: the interpreter forwards the operand's
//! elements to the result, moving them when the operand dies there.)
//!
//! The float kernels' `concat` / `transpose` are generic over [`crate::kernels::Real`] only, so
//! these small generic versions serve every element type, floats included.

use std::borrow::Cow;

use super::error::OpFailure;
use super::float_ops::OpResult;
use super::operands::{axis, Operands};
use super::value::{Data, ExecReal};

/// Concatenates row-major `inputs` (with their shapes) along `axis`; shapes are assumed to agree
/// except along `axis` (the verifier checked them).
fn concat_slices<E: Copy>(inputs: &[(&[E], &[usize])], axis: usize) -> Vec<E> {
    let total: usize = inputs.iter().map(|(d, _)| d.len()).sum();
    let mut out = Vec::with_capacity(total);
    let Some((_, first)) = inputs.first() else {
        return out;
    };
    let outer: usize = first[..axis].iter().product();
    let inner: usize = first[axis + 1..].iter().product();
    for o in 0..outer {
        for (data, shape) in inputs {
            let block = shape[axis] * inner;
            out.extend_from_slice(&data[o * block..(o + 1) * block]);
        }
    }
    out
}

/// Transposes row-major `x` of shape `shape`: output axis `i` is input axis `perm[i]`.
fn transpose_slice<E: Copy>(x: &[E], shape: &[usize], perm: &[usize]) -> Vec<E> {
    let rank = shape.len();
    let mut in_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let src_strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut out = Vec::with_capacity(x.len());
    if x.is_empty() {
        return out;
    }
    let mut index = vec![0usize; rank];
    let mut src = 0usize;
    for _ in 0..x.len() {
        out.push(x[src]);
        for a in (0..rank).rev() {
            index[a] += 1;
            src += src_strides[a];
            if index[a] < out_shape[a] {
                break;
            }
            src -= src_strides[a] * out_shape[a];
            index[a] = 0;
        }
    }
    out
}

/// Collects operand slices of variant `$variant` (all operands must have it) and concatenates.
macro_rules! concat_as {
    ($variant:ident, $x:expr, $axis:expr) => {{
        let mut inputs = Vec::with_capacity($x.len());
        for i in 0..$x.len() {
            match $x.data(i)? {
                Data::$variant(v) => inputs.push((&v[..], $x.shape(i)?)),
                other => {
                    return Err(OpFailure::Internal(format!(
                        "operand {i}: {} elements, expected the element type of operand 0",
                        other.elem()
                    )))
                }
            }
        }
        Data::$variant(Cow::Owned(concat_slices(&inputs, $axis)))
    }};
}

/// `nn.concat` along `axis`, any element type.
pub(crate) fn concat<T: ExecReal>(x: &Operands<'_, '_, T>, ax: i64) -> OpResult<T> {
    let ax = axis(ax, x.shape(0)?.len())?;
    check_lengths(x)?;
    Ok(match x.data(0)? {
        Data::Real(_) => concat_as!(Real, x, ax),
        Data::I8(_) => concat_as!(I8, x, ax),
        Data::I32(_) => concat_as!(I32, x, ax),
        Data::I64(_) => concat_as!(I64, x, ax),
        Data::I1(_) => concat_as!(I1, x, ax),
    })
}

/// Checks every operand's element count against its shape (so slicing cannot go out of range).
fn check_lengths<T: ExecReal>(x: &Operands<'_, '_, T>) -> Result<(), OpFailure> {
    for i in 0..x.len() {
        let want: usize = x.shape(i)?.iter().product();
        let found = x.data(i)?.len();
        if want != found {
            return Err(OpFailure::Internal(format!(
                "operand {i}: {found} elements for shape {:?}",
                x.shape(i)?
            )));
        }
    }
    Ok(())
}

/// `nn.transpose`, any element type.
pub(crate) fn transpose<T: ExecReal>(x: &Operands<'_, '_, T>, perm: &[i64]) -> OpResult<T> {
    let shape = x.shape(0)?;
    let perm = perm
        .iter()
        .map(|&p| usize::try_from(p).ok().filter(|&p| p < shape.len()))
        .collect::<Option<Vec<usize>>>()
        .filter(|p| p.len() == shape.len())
        .ok_or_else(|| OpFailure::Internal(format!("bad permutation {perm:?}")))?;
    check_lengths(x)?;
    Ok(match x.data(0)? {
        Data::Real(v) => Data::Real(Cow::Owned(transpose_slice(v, shape, &perm))),
        Data::I8(v) => Data::I8(Cow::Owned(transpose_slice(v, shape, &perm))),
        Data::I32(v) => Data::I32(Cow::Owned(transpose_slice(v, shape, &perm))),
        Data::I64(v) => Data::I64(Cow::Owned(transpose_slice(v, shape, &perm))),
        Data::I1(v) => Data::I1(Cow::Owned(transpose_slice(v, shape, &perm))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_concat_small() {
        // [[0, 1, 2], [3, 4, 5]]ᵀ
        let x = [0, 1, 2, 3, 4, 5];
        assert_eq!(
            transpose_slice(&x, &[2, 3], &[1, 0]),
            vec![0, 3, 1, 4, 2, 5]
        );
        assert_eq!(transpose_slice(&[7], &[], &[]), vec![7]);
        let a = [1, 2, 3, 4];
        let b = [5, 6];
        assert_eq!(
            concat_slices(&[(&a[..], &[2, 2][..]), (&b[..], &[2, 1][..])], 1),
            vec![1, 2, 5, 3, 4, 6]
        );
    }
}
