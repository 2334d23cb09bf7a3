//! Data movement: concat, transpose and constant padding, and their gradients.

use crate::kernel_error::{check_len, KernelError};

use super::real::Real;
use super::shape::{check_axis, filled, numel, split_at_axis, strides};

/// Checks that every shape has the rank and extents of the first except along `axis`, and returns
/// the concatenated shape.
pub fn concat_output_shape(shapes: &[&[usize]], axis: usize) -> Result<Vec<usize>, KernelError> {
    let first = shapes
        .first()
        .ok_or_else(|| KernelError::Invalid("concat of zero tensors".to_string()))?;
    check_axis(axis, first.len())?;
    let mut out = first.to_vec();
    out[axis] = 0;
    for s in shapes {
        let same_rest = s.len() == first.len()
            && s.iter()
                .zip(first.iter())
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !same_rest {
            return Err(KernelError::Invalid(format!(
                "concat along axis {axis}: shape {s:?} does not match {first:?}"
            )));
        }
        out[axis] = out[axis]
            .checked_add(s[axis])
            .ok_or_else(|| KernelError::Invalid("concat: output extent overflows".to_string()))?;
    }
    numel(&out)?;
    Ok(out)
}

/// Concatenates `inputs` (each a buffer with its shape) along `axis`. All inputs have the same
/// rank and the same extents except along `axis`.
pub fn concat<T: Real>(inputs: &[(&[T], &[usize])], axis: usize) -> Result<Vec<T>, KernelError> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|&(_, s)| s).collect();
    let out_shape = concat_output_shape(&shapes, axis)?;
    for &(data, shape) in inputs {
        check_len("concat input", numel(shape)?, data.len())?;
    }
    let [outer, total, inner] = split_at_axis(&out_shape, axis)?;
    let mut out = Vec::new();
    if outer * total * inner == 0 {
        return Ok(out);
    }
    out.try_reserve_exact(outer * total * inner)
        .map_err(|_| KernelError::Invalid("concat: cannot allocate the output".to_string()))?;
    for o in 0..outer {
        for &(data, shape) in inputs {
            let block = shape[axis] * inner;
            out.extend_from_slice(&data[o * block..(o + 1) * block]);
        }
    }
    Ok(out)
}

/// Gradient of [`concat()`]: splits `grad_output` along `axis` into pieces of the input `shapes`.
pub fn concat_backward<T: Real>(
    grad_output: &[T],
    shapes: &[&[usize]],
    axis: usize,
) -> Result<Vec<Vec<T>>, KernelError> {
    let out_shape = concat_output_shape(shapes, axis)?;
    check_len("concat grad_output", numel(&out_shape)?, grad_output.len())?;
    let [outer, total, inner] = split_at_axis(&out_shape, axis)?;
    let mut grads: Vec<Vec<T>> = shapes
        .iter()
        .map(|s| Vec::with_capacity(outer * s[axis] * inner))
        .collect();
    if grad_output.is_empty() {
        return Ok(grads);
    }
    for o in 0..outer {
        let mut start = o * total * inner;
        for (g, s) in grads.iter_mut().zip(shapes) {
            let block = s[axis] * inner;
            g.extend_from_slice(&grad_output[start..start + block]);
            start += block;
        }
    }
    Ok(grads)
}

/// Checks that `perm` is a permutation of `0..rank`.
fn check_perm(perm: &[usize], rank: usize) -> Result<(), KernelError> {
    let mut seen = vec![false; rank];
    let ok = perm.len() == rank
        && perm
            .iter()
            .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true));
    if ok {
        Ok(())
    } else {
        Err(KernelError::Invalid(format!(
            "{perm:?} is not a permutation of the axes of a rank-{rank} tensor"
        )))
    }
}

/// Transposes `x` of shape `shape`: output axis `i` is input axis `perm[i]`, so the output shape
/// is `[shape[perm[0]], shape[perm[1]], ..]`.
pub fn transpose<T: Real>(x: &[T], shape: &[usize], perm: &[usize]) -> Result<Vec<T>, KernelError> {
    check_perm(perm, shape.len())?;
    let len = numel(shape)?;
    check_len("transpose input", len, x.len())?;
    let in_strides = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    // Input stride of each output axis.
    let src_strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut out = Vec::with_capacity(len);
    if len == 0 {
        return Ok(out);
    }
    let mut index = vec![0usize; shape.len()];
    let mut src = 0usize;
    for _ in 0..len {
        out.push(x[src]);
        for axis in (0..out_shape.len()).rev() {
            index[axis] += 1;
            src += src_strides[axis];
            if index[axis] < out_shape[axis] {
                break;
            }
            src -= src_strides[axis] * out_shape[axis];
            index[axis] = 0;
        }
    }
    Ok(out)
}

/// Gradient of [`transpose`]: `grad_output` (of the transposed shape) transposed back to the
/// input `shape`.
pub fn transpose_backward<T: Real>(
    grad_output: &[T],
    shape: &[usize],
    perm: &[usize],
) -> Result<Vec<T>, KernelError> {
    check_perm(perm, shape.len())?;
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    transpose(grad_output, &out_shape, &inverse)
}

/// Shape of `x` padded by `pads` (`[begin, end]` per axis).
pub fn pad_output_shape(shape: &[usize], pads: &[[usize; 2]]) -> Result<Vec<usize>, KernelError> {
    if pads.len() != shape.len() {
        return Err(KernelError::Invalid(format!(
            "pad: {} pad pairs for a rank-{} tensor",
            pads.len(),
            shape.len()
        )));
    }
    let out = shape
        .iter()
        .zip(pads)
        .map(|(&d, &[b, e])| d.checked_add(b).and_then(|x| x.checked_add(e)))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| KernelError::Invalid("pad: padded extent overflows".to_string()))?;
    numel(&out)?;
    Ok(out)
}

/// Calls `f(input_offset, output_offset, run_len)` for every contiguous run of input elements
/// (one innermost row) and where it lands in the padded output.
fn for_each_pad_row(
    shape: &[usize],
    out_shape: &[usize],
    pads: &[[usize; 2]],
    mut f: impl FnMut(usize, usize, usize),
) {
    let rank = shape.len();
    if shape.contains(&0) {
        return;
    }
    if rank == 0 {
        f(0, 0, 1);
        return;
    }
    let out_strides = strides(out_shape);
    let last = rank - 1;
    let row = shape[last];
    let rows = shape[..last].iter().product::<usize>();
    let mut index = vec![0usize; last];
    for r in 0..rows {
        let dst: usize = index
            .iter()
            .zip(pads)
            .zip(&out_strides)
            .map(|((&i, p), &s)| (i + p[0]) * s)
            .sum::<usize>()
            + pads[last][0];
        f(r * row, dst, row);
        for axis in (0..last).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// Pads `x` (of shape `shape`) with `value`: `pads[i] = [begin, end]` elements are added before
/// and after axis `i`.
pub fn pad<T: Real>(
    x: &[T],
    shape: &[usize],
    pads: &[[usize; 2]],
    value: T,
) -> Result<Vec<T>, KernelError> {
    let out_shape = pad_output_shape(shape, pads)?;
    check_len("pad input", numel(shape)?, x.len())?;
    let mut out = filled(numel(&out_shape)?, value)?;
    for_each_pad_row(shape, &out_shape, pads, |src, dst, len| {
        out[dst..dst + len].copy_from_slice(&x[src..src + len]);
    });
    Ok(out)
}

/// Gradient of [`pad`]: the interior of `grad_output` (of the padded shape) cropped back to
/// `shape`.
pub fn pad_backward<T: Real>(
    grad_output: &[T],
    shape: &[usize],
    pads: &[[usize; 2]],
) -> Result<Vec<T>, KernelError> {
    let out_shape = pad_output_shape(shape, pads)?;
    check_len("pad grad_output", numel(&out_shape)?, grad_output.len())?;
    let mut grad_in = filled(numel(shape)?, T::zero())?;
    for_each_pad_row(shape, &out_shape, pads, |src, dst, len| {
        grad_in[src..src + len].copy_from_slice(&grad_output[dst..dst + len]);
    });
    Ok(grad_in)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_vjp, Rng};
    use proptest::prelude::*;

    #[test]
    fn hand_computed_layout() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [5.0f32, 6.0];
        let y = concat(&[(&a[..], &[2, 2][..]), (&b[..], &[2, 1][..])], 1).unwrap();
        assert_eq!(y, vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
        let y = concat(&[(&a[..], &[2, 2][..]), (&b[..], &[1, 2][..])], 0).unwrap();
        assert_eq!(y, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let g =
            concat_backward(&[1.0f32, 2.0, 5.0, 3.0, 4.0, 6.0], &[&[2, 2], &[2, 1]], 1).unwrap();
        assert_eq!(g, vec![a.to_vec(), b.to_vec()]);

        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            transpose(&x, &[2, 3], &[1, 0]).unwrap(),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        assert_eq!(
            transpose(&x, &[1, 2, 3], &[2, 0, 1]).unwrap(),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        assert_eq!(transpose(&[7.0f32], &[], &[]).unwrap(), vec![7.0]);

        let y = pad(&[1.0f32, 2.0], &[1, 2], &[[1, 0], [1, 2]], 9.0).unwrap();
        assert_eq!(y, vec![9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 1.0, 2.0, 9.0, 9.0]);
        assert_eq!(
            pad_output_shape(&[1, 2], &[[1, 0], [1, 2]]).unwrap(),
            vec![2, 5]
        );
        assert_eq!(
            pad_backward(&y, &[1, 2], &[[1, 0], [1, 2]]).unwrap(),
            vec![1.0, 2.0]
        );
    }

    #[test]
    fn rejects_inconsistent_input() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        assert!(concat::<f32>(&[], 0).is_err());
        assert!(concat(&[(&a[..], &[2, 2][..]), (&a[..3], &[3, 1][..])], 1).is_err());
        assert!(concat(&[(&a[..], &[2, 2][..])], 2).is_err());
        assert!(concat(&[(&a[..3], &[2, 2][..])], 0).is_err());
        assert!(concat_backward(&a[..3], &[&[2, 2]], 0).is_err());
        assert!(transpose(&a, &[2, 2], &[0, 0]).is_err());
        assert!(transpose(&a, &[2, 2], &[0]).is_err());
        assert!(transpose(&a, &[2, 2], &[0, 2]).is_err());
        assert!(transpose(&a[..3], &[2, 2], &[1, 0]).is_err());
        assert!(pad(&a, &[2, 2], &[[0, 1]], 0.0).is_err());
        assert!(pad(&a, &[2, 2], &[[0, usize::MAX], [0, 0]], 0.0).is_err());
        assert!(pad(
            &a,
            &[2, 2],
            &[[0, usize::MAX / 2], [0, usize::MAX / 2]],
            0.0
        )
        .is_err());
        assert!(pad_backward(&a, &[2, 2], &[[0, 1], [0, 0]]).is_err());
    }

    fn shape() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(1usize..=3, 1..=4)
    }

    fn len(shape: &[usize]) -> usize {
        shape.iter().product()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn concat_gradient(
            base in shape(),
            extents in prop::collection::vec(0usize..=3, 1..=3),
            axis_seed in any::<usize>(),
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let axis = axis_seed % base.len();
            let shapes: Vec<Vec<usize>> = extents
                .iter()
                .map(|&e| {
                    let mut s = base.clone();
                    s[axis] = e;
                    s
                })
                .collect();
            let shape_refs: Vec<&[usize]> = shapes.iter().map(|s| &s[..]).collect();
            let xs: Vec<Vec<f64>> = shapes.iter().map(|s| rng.vec(len(s))).collect();
            let out_shape = concat_output_shape(&shape_refs, axis).unwrap();
            let dy = rng.vec(len(&out_shape));
            let grads = concat_backward(&dy, &shape_refs, axis).unwrap();
            for i in 0..xs.len() {
                let f = |xi: &[f64]| {
                    let inputs: Vec<(&[f64], &[usize])> = xs
                        .iter()
                        .zip(&shapes)
                        .enumerate()
                        .map(|(j, (x, s))| (if i == j { xi } else { &x[..] }, &s[..]))
                        .collect();
                    concat(&inputs, axis).unwrap()
                };
                check_vjp(f, &xs[i], &dy, &grads[i], &mut rng).map_err(TestCaseError::fail)?;
            }
        }

        #[test]
        fn transpose_gradient(
            (shape, perm) in shape().prop_flat_map(|s| {
                let rank = s.len();
                (Just(s), Just((0..rank).collect::<Vec<usize>>()).prop_shuffle())
            }),
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(len(&shape));
            let dy = rng.vec(len(&shape));
            let dx = transpose_backward(&dy, &shape, &perm).unwrap();
            check_vjp(|x| transpose(x, &shape, &perm).unwrap(), &x, &dy, &dx, &mut rng)
                .map_err(TestCaseError::fail)?;
            // Transposing back restores the input.
            let y = transpose(&x, &shape, &perm).unwrap();
            prop_assert_eq!(transpose_backward(&y, &shape, &perm).unwrap(), x);
        }

        #[test]
        fn pad_gradient(
            (shape, pads) in shape().prop_flat_map(|s| {
                let rank = s.len();
                (Just(s), prop::collection::vec(prop::array::uniform2(0usize..=2), rank))
            }),
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(len(&shape));
            let dy = rng.vec(len(&pad_output_shape(&shape, &pads).unwrap()));
            let dx = pad_backward(&dy, &shape, &pads).unwrap();
            check_vjp(|x| pad(x, &shape, &pads, 0.5).unwrap(), &x, &dy, &dx, &mut rng)
                .map_err(TestCaseError::fail)?;
        }
    }
}
