//! Test helpers: a deterministic random source and finite-difference gradient checks.

/// A small deterministic generator (splitmix64), so property tests can derive buffers from a
/// seed and still shrink over shapes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    pub fn vec(&mut self, len: usize) -> Vec<f64> {
        (0..len).map(|_| self.uniform()).collect()
    }
}

/// Step of the central differences.
pub const FD_STEP: f64 = 1e-6;
/// Tolerance of the finite-difference checks: `|fd - analytic| <= FD_TOL * (1 + |analytic|)`.
/// Central differences are exact for the linear kernels up to rounding (about `1e-16 / 1e-6`
/// relative) and have an `O(h²)` error for the smooth ones, both far below this.
pub const FD_TOL: f64 = 1e-6;

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Checks a VJP with central differences. `f` maps an input to an output; `grad_output` is the
/// random linear functional `L(y) = <grad_output, y>`; `grad_input` is the kernel's claimed
/// `dL/dx` at `x`. Compares `<grad_input, v>` with `(L(f(x + h v)) - L(f(x - h v))) / 2h` for a
/// random direction `v`.
pub fn check_vjp(
    f: impl Fn(&[f64]) -> Vec<f64>,
    x: &[f64],
    grad_output: &[f64],
    grad_input: &[f64],
    rng: &mut Rng,
) -> Result<(), String> {
    if grad_input.len() != x.len() {
        return Err(format!(
            "gradient has {} elements, input {}",
            grad_input.len(),
            x.len()
        ));
    }
    let v = rng.vec(x.len());
    let shifted = |sign: f64| -> Vec<f64> {
        x.iter()
            .zip(&v)
            .map(|(a, d)| a + sign * FD_STEP * d)
            .collect()
    };
    let plus = dot(grad_output, &f(&shifted(1.0)));
    let minus = dot(grad_output, &f(&shifted(-1.0)));
    let fd = (plus - minus) / (2.0 * FD_STEP);
    let analytic = dot(grad_input, &v);
    if (fd - analytic).abs() <= FD_TOL * (1.0 + analytic.abs()) {
        Ok(())
    } else {
        Err(format!("finite difference {fd} vs analytic {analytic}"))
    }
}

/// Asserts two slices are elementwise within `tol`.
pub fn assert_close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}
