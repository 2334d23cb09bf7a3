//! Elementwise kernels: broadcasting add and mul, relu and clip, and their gradients.
//!
//! Binary kernels follow numpy broadcasting (see [`broadcast_shape`]); their result has the
//! broadcast shape, and their gradients sum over the broadcast axes ([`reduce_to_shape`]).
//!
//! Relu and clip gradients use a mask saved by the forward pass (one bit per element on the
//! device): `true` where the clamp was inactive and the gradient passes through. The boundaries
//! count as clamped: `x > 0` for relu and `min < x < max` for clip.

use crate::kernel_error::{check_len, KernelError};

use super::real::Real;
use super::shape::{broadcast_shape, broadcast_strides, filled, for_each_broadcast, numel};

/// Applies `f` to every pair of the broadcast of `a` and `b`.
fn broadcast_binary<T: Real>(
    what: &'static str,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    f: impl Fn(T, T) -> T,
) -> Result<Vec<T>, KernelError> {
    check_len(what, numel(a_shape)?, a.len())?;
    check_len(what, numel(b_shape)?, b.len())?;
    let out_shape = broadcast_shape(a_shape, b_shape)?;
    if a_shape == b_shape {
        return Ok(a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect());
    }
    let mut out = filled(numel(&out_shape)?, T::zero())?;
    let sa = broadcast_strides(a_shape, &out_shape);
    let sb = broadcast_strides(b_shape, &out_shape);
    for_each_broadcast(&out_shape, &sa, &sb, |o, ia, ib| out[o] = f(a[ia], b[ib]));
    Ok(out)
}

/// `a + b` with numpy broadcasting; the result has shape `broadcast_shape(a_shape, b_shape)`.
pub fn add<T: Real>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
) -> Result<Vec<T>, KernelError> {
    broadcast_binary("add operand", a, a_shape, b, b_shape, |x, y| x + y)
}

/// `a * b` (elementwise) with numpy broadcasting; the result has shape
/// `broadcast_shape(a_shape, b_shape)`.
pub fn mul<T: Real>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
) -> Result<Vec<T>, KernelError> {
    broadcast_binary("mul operand", a, a_shape, b, b_shape, |x, y| x * y)
}

/// Sums `grad` (of shape `from`) over the axes along which a tensor of shape `to` was broadcast
/// to `from`, giving a tensor of shape `to`. Errors if `to` does not broadcast to `from`.
pub fn reduce_to_shape<T: Real>(
    grad: &[T],
    from: &[usize],
    to: &[usize],
) -> Result<Vec<T>, KernelError> {
    check_len("reduce_to_shape input", numel(from)?, grad.len())?;
    if broadcast_shape(from, to)? != from {
        return Err(KernelError::Invalid(format!(
            "shape {to:?} does not broadcast to {from:?}"
        )));
    }
    if from == to {
        return Ok(grad.to_vec());
    }
    let mut out = filled(numel(to)?, T::zero())?;
    let s_to = broadcast_strides(to, from);
    let s_from = broadcast_strides(from, from);
    for_each_broadcast(from, &s_from, &s_to, |_, i, o| out[o] += grad[i]);
    Ok(out)
}

/// Gradients of [`add`]: `grad_output` (of the broadcast shape) reduced to `a_shape` and to
/// `b_shape`.
pub fn add_backward<T: Real>(
    grad_output: &[T],
    a_shape: &[usize],
    b_shape: &[usize],
) -> Result<(Vec<T>, Vec<T>), KernelError> {
    let out_shape = broadcast_shape(a_shape, b_shape)?;
    Ok((
        reduce_to_shape(grad_output, &out_shape, a_shape)?,
        reduce_to_shape(grad_output, &out_shape, b_shape)?,
    ))
}

/// Gradients of [`mul`]: `(reduce(grad_output · b) to a_shape, reduce(grad_output · a) to
/// b_shape)`.
pub fn mul_backward<T: Real>(
    grad_output: &[T],
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
) -> Result<(Vec<T>, Vec<T>), KernelError> {
    let out_shape = broadcast_shape(a_shape, b_shape)?;
    check_len("mul grad_output", numel(&out_shape)?, grad_output.len())?;
    let ga = mul(grad_output, &out_shape, b, b_shape)?;
    let gb = mul(grad_output, &out_shape, a, a_shape)?;
    Ok((
        reduce_to_shape(&ga, &out_shape, a_shape)?,
        reduce_to_shape(&gb, &out_shape, b_shape)?,
    ))
}

/// `max(x, 0)` elementwise; NaN stays NaN.
pub fn relu<T: Real>(x: &[T]) -> Vec<T> {
    x.iter()
        .map(|&v| if v < T::zero() { T::zero() } else { v })
        .collect()
}

/// The relu gradient mask: `x > 0`.
pub fn relu_mask<T: Real>(x: &[T]) -> Vec<bool> {
    x.iter().map(|&v| v > T::zero()).collect()
}

fn check_clip_bounds<T: Real>(min: T, max: T) -> Result<(), KernelError> {
    if min <= max {
        Ok(())
    } else {
        Err(KernelError::Invalid(format!(
            "clip bounds must satisfy min <= max, got min {min}, max {max}"
        )))
    }
}

/// Clamps every element to `[min, max]` (relu6 is `clip(x, 0, 6)`); NaN stays NaN. Errors if
/// `min > max` or either bound is NaN.
pub fn clip<T: Real>(x: &[T], min: T, max: T) -> Result<Vec<T>, KernelError> {
    check_clip_bounds(min, max)?;
    Ok(x.iter()
        .map(|&v| {
            if v < min {
                min
            } else if v > max {
                max
            } else {
                v
            }
        })
        .collect())
}

/// The clip gradient mask: `min < x < max`. Errors like [`clip`].
pub fn clip_mask<T: Real>(x: &[T], min: T, max: T) -> Result<Vec<bool>, KernelError> {
    check_clip_bounds(min, max)?;
    Ok(x.iter().map(|&v| min < v && v < max).collect())
}

/// Gradient of relu or clip: `grad_output` where `mask` is true, zero elsewhere.
pub fn masked_backward<T: Real>(grad_output: &[T], mask: &[bool]) -> Result<Vec<T>, KernelError> {
    check_len("mask", grad_output.len(), mask.len())?;
    Ok(grad_output
        .iter()
        .zip(mask)
        .map(|(&g, &keep)| if keep { g } else { T::zero() })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_vjp, Rng};
    use proptest::prelude::*;

    #[test]
    fn hand_computed_broadcasting() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            add(&a, &[2, 3], &[10.0, 20.0, 30.0], &[3]).unwrap(),
            vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]
        );
        assert_eq!(
            mul(&[1.0f32, 2.0], &[2, 1], &[1.0, 10.0, 100.0], &[1, 3]).unwrap(),
            vec![1.0, 10.0, 100.0, 2.0, 20.0, 200.0]
        );
        assert_eq!(add(&[1.0f32], &[], &[2.0], &[1]).unwrap(), vec![3.0]);
        assert_eq!(
            reduce_to_shape(&a, &[2, 3], &[3]).unwrap(),
            vec![5.0, 7.0, 9.0]
        );
        assert_eq!(
            reduce_to_shape(&a, &[2, 3], &[2, 1]).unwrap(),
            vec![6.0, 15.0]
        );
        assert_eq!(reduce_to_shape(&a, &[2, 3], &[]).unwrap(), vec![21.0]);
        let (ga, gb) = mul_backward(
            &[1.0f32; 6],
            &[1.0, 2.0],
            &[2, 1],
            &[1.0, 10.0, 100.0],
            &[1, 3],
        )
        .unwrap();
        assert_eq!(ga, vec![111.0, 111.0]);
        assert_eq!(gb, vec![3.0, 3.0, 3.0]);
    }

    #[test]
    fn relu_and_clip() {
        let x = [-2.0f32, 0.0, 0.5, 7.0];
        assert_eq!(relu(&x), vec![0.0, 0.0, 0.5, 7.0]);
        assert_eq!(relu_mask(&x), vec![false, false, true, true]);
        assert_eq!(clip(&x, 0.0, 6.0).unwrap(), vec![0.0, 0.0, 0.5, 6.0]);
        assert_eq!(
            clip_mask(&x, 0.0, 6.0).unwrap(),
            vec![false, false, true, false]
        );
        assert!(relu(&[f32::NAN])[0].is_nan());
        let g = masked_backward(&[1.0f32, 2.0, 3.0, 4.0], &[false, true, true, false]).unwrap();
        assert_eq!(g, vec![0.0, 2.0, 3.0, 0.0]);
    }

    #[test]
    fn rejects_inconsistent_input() {
        assert!(add(&[1.0f32, 2.0], &[2], &[1.0, 2.0, 3.0], &[3]).is_err());
        assert!(add(&[1.0f32, 2.0], &[3], &[1.0], &[1]).is_err());
        assert!(mul(&[1.0f32], &[1], &[1.0], &[2]).is_err());
        assert!(reduce_to_shape(&[1.0f32, 2.0], &[2], &[3]).is_err());
        assert!(reduce_to_shape(&[1.0f32, 2.0], &[2], &[1, 2]).is_err());
        assert!(add_backward(&[1.0f32; 5], &[2, 3], &[3]).is_err());
        assert!(mul_backward(&[1.0f32; 6], &[1.0; 6], &[2, 3], &[1.0; 2], &[3]).is_err());
        assert!(clip(&[1.0f32], 2.0, 1.0).is_err());
        assert!(clip(&[1.0f32], f32::NAN, 1.0).is_err());
        assert!(clip_mask(&[1.0f32], 2.0, 1.0).is_err());
        assert!(masked_backward(&[1.0f32], &[true, false]).is_err());
    }

    /// A broadcast output shape and two operand shapes that broadcast to it.
    fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        prop::collection::vec((1usize..=3, 0u8..4, 0u8..4), 0..=3).prop_flat_map(|axes| {
            let rank = axes.len();
            (Just(axes), 0..=rank, 0..=rank).prop_map(|(axes, drop_a, drop_b)| {
                // Each operand keeps a suffix of the axes; bit flags squeeze some to 1.
                let make = |drop: usize, pick: fn(&(usize, u8, u8)) -> u8| {
                    axes[drop..]
                        .iter()
                        .map(|ax| if pick(ax) == 0 { 1 } else { ax.0 })
                        .collect::<Vec<usize>>()
                };
                (make(drop_a, |ax| ax.1), make(drop_b, |ax| ax.2))
            })
        })
    }

    fn len(shape: &[usize]) -> usize {
        shape.iter().product()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn add_gradients((a_shape, b_shape) in broadcast_pair(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let out = broadcast_shape(&a_shape, &b_shape).unwrap();
            let (a, b, dy) = (rng.vec(len(&a_shape)), rng.vec(len(&b_shape)), rng.vec(len(&out)));
            let (da, db) = add_backward(&dy, &a_shape, &b_shape).unwrap();
            check_vjp(|a| add(a, &a_shape, &b, &b_shape).unwrap(), &a, &dy, &da, &mut rng)
                .map_err(TestCaseError::fail)?;
            check_vjp(|b| add(&a, &a_shape, b, &b_shape).unwrap(), &b, &dy, &db, &mut rng)
                .map_err(TestCaseError::fail)?;
        }

        #[test]
        fn mul_gradients((a_shape, b_shape) in broadcast_pair(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let out = broadcast_shape(&a_shape, &b_shape).unwrap();
            let (a, b, dy) = (rng.vec(len(&a_shape)), rng.vec(len(&b_shape)), rng.vec(len(&out)));
            let (da, db) = mul_backward(&dy, &a, &a_shape, &b, &b_shape).unwrap();
            check_vjp(|a| mul(a, &a_shape, &b, &b_shape).unwrap(), &a, &dy, &da, &mut rng)
                .map_err(TestCaseError::fail)?;
            check_vjp(|b| mul(&a, &a_shape, b, &b_shape).unwrap(), &b, &dy, &db, &mut rng)
                .map_err(TestCaseError::fail)?;
        }

        #[test]
        fn relu_and_clip_gradients(n in 1usize..=20, seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let (x, dy) = (rng.vec(n), rng.vec(n));
            let dx = masked_backward(&dy, &relu_mask(&x)).unwrap();
            check_vjp(relu, &x, &dy, &dx, &mut rng).map_err(TestCaseError::fail)?;
            let dx = masked_backward(&dy, &clip_mask(&x, -0.5, 0.5).unwrap()).unwrap();
            check_vjp(|x| clip(x, -0.5, 0.5).unwrap(), &x, &dy, &dx, &mut rng)
                .map_err(TestCaseError::fail)?;
        }
    }
}
