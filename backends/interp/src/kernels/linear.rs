//! Fully connected layers and (batched) matrix multiplication, with their gradients.

use crate::kernel_error::{check_len, KernelError};

use super::real::Real;
use super::shape::{filled, numel};

/// Dimensions of a fully connected layer `y = x · Wᵀ + b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinearShape {
    /// Rows of `x` and `y` (`N`).
    pub batch: usize,
    /// Columns of `x` and of `W` (`K`).
    pub in_features: usize,
    /// Rows of `W`, columns of `y`, length of `b` (`M`).
    pub out_features: usize,
}

impl LinearShape {
    /// The checked kernel geometry.
    fn geometry(&self) -> Result<mite_kernels::LinearGeometry, KernelError> {
        Ok(mite_kernels::LinearGeometry::new(
            self.batch,
            self.in_features,
            self.out_features,
        )?)
    }

    fn lens(&self) -> Result<[usize; 3], KernelError> {
        Ok([
            numel(&[self.batch, self.in_features])?,
            numel(&[self.out_features, self.in_features])?,
            numel(&[self.batch, self.out_features])?,
        ])
    }
}

fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = T::zero();
    for (&x, &y) in a.iter().zip(b) {
        acc += x * y;
    }
    acc
}

/// `y += alpha * x`, elementwise over the shorter of the two.
fn axpy<T: Real>(y: &mut [T], alpha: T, x: &[T]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += alpha * xv;
    }
}

/// Fully connected layer: `x` `[N, K]`, `weight` `[M, K]`, optional `bias` `[M]` → `[N, M]`,
/// `y[n, m] = b[m] + Σ_k x[n, k] · W[m, k]`, accumulated in `T`.
pub fn linear<T: Real>(
    shape: &LinearShape,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
) -> Result<Vec<T>, KernelError> {
    let [_, _, y_len] = shape.lens()?;
    let mut y = filled(y_len, T::zero())?;
    mite_kernels::float::linear(x, weight, bias, &mut y, &shape.geometry()?)?;
    Ok(y)
}

/// Gradient of [`linear`] with respect to `x`: `grad_output` `[N, M]` · `weight` `[M, K]` →
/// `[N, K]`.
pub fn linear_backward_input<T: Real>(
    shape: &LinearShape,
    grad_output: &[T],
    weight: &[T],
) -> Result<Vec<T>, KernelError> {
    let [x_len, _, _] = shape.lens()?;
    let mut dx = filled(x_len, T::zero())?;
    mite_kernels::float::linear_backward_input(grad_output, weight, &mut dx, &shape.geometry()?)?;
    Ok(dx)
}

/// Gradient of [`linear`] with respect to `weight`: `grad_outputᵀ` `[M, N]` · `x` `[N, K]` →
/// `[M, K]`.
pub fn linear_backward_weight<T: Real>(
    shape: &LinearShape,
    x: &[T],
    grad_output: &[T],
) -> Result<Vec<T>, KernelError> {
    let [_, w_len, _] = shape.lens()?;
    let mut dw = filled(w_len, T::zero())?;
    mite_kernels::float::linear_backward_weight(x, grad_output, &mut dw, &shape.geometry()?)?;
    Ok(dw)
}

/// Gradient of [`linear`] with respect to `bias`: `grad_output` `[N, M]` summed over rows → `[M]`.
pub fn linear_backward_bias<T: Real>(
    shape: &LinearShape,
    grad_output: &[T],
) -> Result<Vec<T>, KernelError> {
    shape.lens()?;
    let mut db = filled(shape.out_features, T::zero())?;
    mite_kernels::float::linear_backward_bias(grad_output, &mut db, &shape.geometry()?)?;
    Ok(db)
}

/// Validated dimensions of `[.., M, K] · [.., K, N]`.
#[derive(Clone, Copy, Debug)]
struct MatmulDims {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
}

impl MatmulDims {
    fn new(a_shape: &[usize], b_shape: &[usize]) -> Result<Self, KernelError> {
        let invalid = |why: &str| {
            KernelError::Invalid(format!("matmul of {a_shape:?} and {b_shape:?}: {why}"))
        };
        if a_shape.len() < 2 || a_shape.len() != b_shape.len() {
            return Err(invalid("operands must have the same rank, at least 2"));
        }
        let r = a_shape.len();
        if a_shape[..r - 2] != b_shape[..r - 2] {
            return Err(invalid("batch dimensions differ"));
        }
        if a_shape[r - 1] != b_shape[r - 2] {
            return Err(invalid("inner dimensions differ"));
        }
        let dims = MatmulDims {
            batch: numel(&a_shape[..r - 2])?,
            m: a_shape[r - 2],
            k: a_shape[r - 1],
            n: b_shape[r - 1],
        };
        numel(a_shape)?;
        numel(b_shape)?;
        numel(&[dims.batch, dims.m, dims.n])?;
        Ok(dims)
    }

    fn lens(&self) -> [usize; 3] {
        [
            self.batch * self.m * self.k,
            self.batch * self.k * self.n,
            self.batch * self.m * self.n,
        ]
    }
}

/// Shape of `matmul(a, b)`: `[.., M, N]` for `a` `[.., M, K]` and `b` `[.., K, N]`.
pub fn matmul_output_shape(
    a_shape: &[usize],
    b_shape: &[usize],
) -> Result<Vec<usize>, KernelError> {
    MatmulDims::new(a_shape, b_shape)?;
    let r = a_shape.len();
    let mut out = a_shape.to_vec();
    out[r - 1] = b_shape[r - 1];
    Ok(out)
}

/// Matrix product `a` `[.., M, K]` · `b` `[.., K, N]` → `[.., M, N]`. Both operands have the same
/// rank (at least 2) and equal leading (batch) dimensions; no broadcasting.
pub fn matmul<T: Real>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
) -> Result<Vec<T>, KernelError> {
    let d = MatmulDims::new(a_shape, b_shape)?;
    let [a_len, b_len, c_len] = d.lens();
    check_len("matmul lhs", a_len, a.len())?;
    check_len("matmul rhs", b_len, b.len())?;
    let mut c = filled(c_len, T::zero())?;
    if c_len == 0 {
        return Ok(c);
    }
    for i in 0..d.batch {
        let a_mat = &a[i * d.m * d.k..][..d.m * d.k];
        let b_mat = &b[i * d.k * d.n..][..d.k * d.n];
        let c_mat = &mut c[i * d.m * d.n..][..d.m * d.n];
        for r in 0..d.m {
            let c_row = &mut c_mat[r * d.n..(r + 1) * d.n];
            for (kk, &av) in a_mat[r * d.k..(r + 1) * d.k].iter().enumerate() {
                axpy(c_row, av, &b_mat[kk * d.n..(kk + 1) * d.n]);
            }
        }
    }
    Ok(c)
}

/// Gradient of [`matmul`] with respect to `a`: `grad_output` `[.., M, N]` · `bᵀ` → `[.., M, K]`.
pub fn matmul_backward_lhs<T: Real>(
    grad_output: &[T],
    b: &[T],
    a_shape: &[usize],
    b_shape: &[usize],
) -> Result<Vec<T>, KernelError> {
    let d = MatmulDims::new(a_shape, b_shape)?;
    let [a_len, b_len, c_len] = d.lens();
    check_len("matmul grad_output", c_len, grad_output.len())?;
    check_len("matmul rhs", b_len, b.len())?;
    let mut da = filled(a_len, T::zero())?;
    if a_len == 0 {
        return Ok(da);
    }
    for i in 0..d.batch {
        let dc = &grad_output[i * d.m * d.n..][..d.m * d.n];
        let b_mat = &b[i * d.k * d.n..][..d.k * d.n];
        let da_mat = &mut da[i * d.m * d.k..][..d.m * d.k];
        for r in 0..d.m {
            let dc_row = &dc[r * d.n..(r + 1) * d.n];
            for (kk, dav) in da_mat[r * d.k..(r + 1) * d.k].iter_mut().enumerate() {
                *dav = dot(dc_row, &b_mat[kk * d.n..(kk + 1) * d.n]);
            }
        }
    }
    Ok(da)
}

/// Gradient of [`matmul`] with respect to `b`: `aᵀ` · `grad_output` `[.., M, N]` → `[.., K, N]`.
pub fn matmul_backward_rhs<T: Real>(
    a: &[T],
    grad_output: &[T],
    a_shape: &[usize],
    b_shape: &[usize],
) -> Result<Vec<T>, KernelError> {
    let d = MatmulDims::new(a_shape, b_shape)?;
    let [a_len, b_len, c_len] = d.lens();
    check_len("matmul lhs", a_len, a.len())?;
    check_len("matmul grad_output", c_len, grad_output.len())?;
    let mut db = filled(b_len, T::zero())?;
    if b_len == 0 {
        return Ok(db);
    }
    for i in 0..d.batch {
        let a_mat = &a[i * d.m * d.k..][..d.m * d.k];
        let dc = &grad_output[i * d.m * d.n..][..d.m * d.n];
        let db_mat = &mut db[i * d.k * d.n..][..d.k * d.n];
        for r in 0..d.m {
            let dc_row = &dc[r * d.n..(r + 1) * d.n];
            for (kk, &av) in a_mat[r * d.k..(r + 1) * d.k].iter().enumerate() {
                axpy(&mut db_mat[kk * d.n..(kk + 1) * d.n], av, dc_row);
            }
        }
    }
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, check_vjp, Rng};
    use proptest::prelude::*;

    #[test]
    fn hand_computed_linear() {
        let s = LinearShape {
            batch: 2,
            in_features: 2,
            out_features: 3,
        };
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let w = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
        let y = linear(&s, &x, &w, Some(&[0.0, 10.0, 100.0])).unwrap();
        assert_eq!(y, vec![1.0, 12.0, 103.0, 3.0, 14.0, 107.0]);
        let dy = [1.0f32, 1.0, 1.0, 0.0, 0.0, 2.0];
        assert_eq!(
            linear_backward_input(&s, &dy, &w).unwrap(),
            vec![2.0, 2.0, 2.0, 2.0]
        );
        assert_eq!(
            linear_backward_weight(&s, &x, &dy).unwrap(),
            vec![1.0, 2.0, 1.0, 2.0, 7.0, 10.0]
        );
        assert_eq!(linear_backward_bias(&s, &dy).unwrap(), vec![1.0, 1.0, 3.0]);
    }

    #[test]
    fn hand_computed_matmul() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [5.0f32, 6.0, 7.0, 8.0];
        let c = matmul(&a, &[2, 2], &b, &[2, 2]).unwrap();
        assert_eq!(c, vec![19.0, 22.0, 43.0, 50.0]);
        // Batched: two 1x2 · 2x1 products.
        let c = matmul(&a, &[2, 1, 2], &b, &[2, 2, 1]).unwrap();
        assert_eq!(c, vec![17.0, 53.0]);
        assert_eq!(
            matmul_output_shape(&[3, 2, 4], &[3, 4, 5]).unwrap(),
            vec![3, 2, 5]
        );
    }

    #[test]
    fn rejects_inconsistent_input() {
        let s = LinearShape {
            batch: 1,
            in_features: 2,
            out_features: 2,
        };
        assert!(linear(&s, &[0.0f32; 3], &[0.0; 4], None).is_err());
        assert!(linear(&s, &[0.0f32; 2], &[0.0; 4], Some(&[0.0])).is_err());
        assert!(linear_backward_input(&s, &[0.0f32; 2], &[0.0; 3]).is_err());
        assert!(linear_backward_weight(&s, &[0.0f32; 2], &[0.0; 1]).is_err());
        assert!(linear_backward_bias(&s, &[0.0f32; 3]).is_err());
        let huge = LinearShape {
            batch: usize::MAX,
            in_features: 2,
            out_features: 2,
        };
        assert!(linear(&huge, &[0.0f32; 2], &[0.0; 4], None).is_err());
        assert!(matmul(&[0.0f32; 4], &[2, 2], &[0.0; 6], &[3, 2]).is_err());
        assert!(matmul(&[0.0f32; 4], &[4], &[0.0; 4], &[4]).is_err());
        assert!(matmul(&[0.0f32; 4], &[2, 1, 2], &[0.0; 4], &[1, 2, 2]).is_err());
        assert!(matmul(&[0.0f32; 4], &[2, 2], &[0.0; 4], &[2, 2, 1]).is_err());
        assert!(matmul(&[0.0f32; 3], &[2, 2], &[0.0; 4], &[2, 2]).is_err());
        assert!(matmul_backward_lhs(&[0.0f32; 3], &[0.0; 4], &[2, 2], &[2, 2]).is_err());
        assert!(matmul_backward_rhs(&[0.0f32; 4], &[0.0; 3], &[2, 2], &[2, 2]).is_err());
    }

    fn linear_shape() -> impl Strategy<Value = LinearShape> {
        (1usize..=4, 1usize..=5, 1usize..=5).prop_map(|(batch, in_features, out_features)| {
            LinearShape {
                batch,
                in_features,
                out_features,
            }
        })
    }

    fn matmul_shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        (
            prop::collection::vec(1usize..=3, 0..=2),
            1usize..=4,
            1usize..=4,
            1usize..=4,
        )
            .prop_map(|(batch, m, k, n)| {
                let mut a = batch.clone();
                a.extend([m, k]);
                let mut b = batch;
                b.extend([k, n]);
                (a, b)
            })
    }

    fn len(shape: &[usize]) -> usize {
        shape.iter().product()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn linear_gradients(s in linear_shape(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let (n, k, m) = (s.batch, s.in_features, s.out_features);
            let (x, w, b, dy) = (rng.vec(n * k), rng.vec(m * k), rng.vec(m), rng.vec(n * m));
            let dx = linear_backward_input(&s, &dy, &w).unwrap();
            check_vjp(|x| linear(&s, x, &w, Some(&b)).unwrap(), &x, &dy, &dx, &mut rng)
                .map_err(TestCaseError::fail)?;
            let dw = linear_backward_weight(&s, &x, &dy).unwrap();
            check_vjp(|w| linear(&s, &x, w, Some(&b)).unwrap(), &w, &dy, &dw, &mut rng)
                .map_err(TestCaseError::fail)?;
            let db = linear_backward_bias(&s, &dy).unwrap();
            check_vjp(|b| linear(&s, &x, &w, Some(b)).unwrap(), &b, &dy, &db, &mut rng)
                .map_err(TestCaseError::fail)?;
        }

        #[test]
        fn linear_is_matmul_by_transpose(s in linear_shape(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let (n, k, m) = (s.batch, s.in_features, s.out_features);
            let (x, w) = (rng.vec(n * k), rng.vec(m * k));
            let wt: Vec<f64> = (0..k * m).map(|i| w[(i % m) * k + i / m]).collect();
            let y = linear(&s, &x, &w, None).unwrap();
            assert_close(&y, &matmul(&x, &[n, k], &wt, &[k, m]).unwrap(), 1e-12);
        }

        #[test]
        fn matmul_gradients((a_shape, b_shape) in matmul_shapes(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let c_shape = matmul_output_shape(&a_shape, &b_shape).unwrap();
            let (a, b) = (rng.vec(len(&a_shape)), rng.vec(len(&b_shape)));
            let dc = rng.vec(len(&c_shape));
            let da = matmul_backward_lhs(&dc, &b, &a_shape, &b_shape).unwrap();
            check_vjp(|a| matmul(a, &a_shape, &b, &b_shape).unwrap(), &a, &dc, &da, &mut rng)
                .map_err(TestCaseError::fail)?;
            let db = matmul_backward_rhs(&a, &dc, &a_shape, &b_shape).unwrap();
            check_vjp(|b| matmul(&a, &a_shape, b, &b_shape).unwrap(), &b, &dc, &db, &mut rng)
                .map_err(TestCaseError::fail)?;
        }
    }
}
