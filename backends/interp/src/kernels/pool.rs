//! Average, global average and max pooling over NCHW tensors, and their gradients.
//!
//! Padding never contributes a value: max pooling ignores it (as if it were `-inf`), average
//! pooling either counts it as zeros (`count_include_pad`) or leaves it out of the divisor. A
//! window lying entirely in padding is an error, except for average pooling with
//! `count_include_pad`, where it averages to zero.

use crate::geometry::Window2d;
use crate::kernel_error::{check_len, KernelError};

use super::real::Real;
use super::shape::{filled, numel};
use super::window::{window_axes, WindowAxis};

use std::ops::Range;

/// Validated pooling geometry.
struct PoolDims {
    what: &'static str,
    planes: usize,
    in_hw: [usize; 2],
    axes: [WindowAxis; 2],
    kernel_area: usize,
    input_len: usize,
    output_len: usize,
}

/// For every output position along each axis, the taps of its window that read real input.
struct Taps {
    rows: Vec<Range<usize>>,
    cols: Vec<Range<usize>>,
}

impl PoolDims {
    fn new(
        what: &'static str,
        input_shape: [usize; 4],
        window: &Window2d,
    ) -> Result<Self, KernelError> {
        let [n, c, h, w] = input_shape;
        let axes = window_axes(window, [h, w])?;
        Ok(PoolDims {
            what,
            planes: numel(&[n, c])?,
            in_hw: [h, w],
            axes,
            kernel_area: numel(&window.kernel)?,
            input_len: numel(&input_shape)?,
            output_len: numel(&[n, c, axes[0].out_len, axes[1].out_len])?,
        })
    }

    /// The valid taps of every output row and column. Call only after the output buffer has been
    /// allocated (which bounds the output extents). Errors if some window reads only padding and
    /// `allow_empty` is false.
    fn taps(&self, allow_empty: bool) -> Result<Taps, KernelError> {
        let [ay, ax] = &self.axes;
        let taps = Taps {
            rows: (0..ay.out_len).map(|o| ay.valid_taps(o)).collect(),
            cols: (0..ax.out_len).map(|o| ax.valid_taps(o)).collect(),
        };
        if !allow_empty && (taps.rows.iter().chain(&taps.cols)).any(|r| r.is_empty()) {
            return Err(KernelError::Invalid(format!(
                "{}: a window reads only padding (input {:?}, axes {:?})",
                self.what, self.in_hw, self.axes
            )));
        }
        Ok(taps)
    }

    fn in_plane(&self) -> usize {
        self.in_hw[0] * self.in_hw[1]
    }

    fn out_hw(&self) -> [usize; 2] {
        [self.axes[0].out_len, self.axes[1].out_len]
    }

    fn out_plane(&self) -> usize {
        self.axes[0].out_len * self.axes[1].out_len
    }

    /// Flat in-plane input indices read by output `(oy, ox)`, in row-major window order.
    fn window<'a>(
        &'a self,
        taps: &'a Taps,
        oy: usize,
        ox: usize,
    ) -> impl Iterator<Item = usize> + 'a {
        let [ay, ax] = &self.axes;
        let w = self.in_hw[1];
        taps.rows[oy].clone().flat_map(move |ki| {
            let row = ay.input_index(oy, ki) * w;
            taps.cols[ox]
                .clone()
                .map(move |kj| row + ax.input_index(ox, kj))
        })
    }

    /// The divisor of output `(oy, ox)` for average pooling.
    fn divisor(&self, taps: &Taps, oy: usize, ox: usize, count_include_pad: bool) -> usize {
        if count_include_pad {
            self.kernel_area
        } else {
            taps.rows[oy].len() * taps.cols[ox].len()
        }
    }
}

/// Average pooling: `input` `[n, c, h, w]` → `[n, c, oh, ow]`. Each output is the sum of the real
/// input elements in its window divided by the window area (`count_include_pad`) or by the number
/// of real elements. Dilations are honoured.
pub fn avg_pool<T: Real>(
    input: &[T],
    input_shape: [usize; 4],
    window: &Window2d,
    count_include_pad: bool,
) -> Result<Vec<T>, KernelError> {
    let dims = PoolDims::new("avg_pool", input_shape, window)?;
    check_len("avg_pool input", dims.input_len, input.len())?;
    let mut out = filled(dims.output_len, T::zero())?;
    if dims.planes == 0 {
        return Ok(out);
    }
    let taps = dims.taps(count_include_pad)?;
    let (in_plane, [oh, ow]) = (dims.in_plane(), dims.out_hw());
    for (x, y) in input
        .chunks_exact(in_plane.max(1))
        .zip(out.chunks_exact_mut(dims.out_plane().max(1)))
    {
        for oy in 0..oh {
            for ox in 0..ow {
                let sum: T = dims.window(&taps, oy, ox).map(|i| x[i]).sum();
                let div = T::from_usize(dims.divisor(&taps, oy, ox, count_include_pad));
                y[oy * ow + ox] = sum / div;
            }
        }
    }
    Ok(out)
}

/// Gradient of [`avg_pool`] with respect to its input: each output gradient, divided by its
/// divisor, is spread over the real input elements of its window. Result `[n, c, h, w]`.
pub fn avg_pool_backward<T: Real>(
    grad_output: &[T],
    input_shape: [usize; 4],
    window: &Window2d,
    count_include_pad: bool,
) -> Result<Vec<T>, KernelError> {
    let dims = PoolDims::new("avg_pool", input_shape, window)?;
    let mut grad_in = filled(dims.input_len, T::zero())?;
    mite_kernels::float::avg_pool_backward(
        grad_output,
        input_shape,
        window,
        count_include_pad,
        &mut grad_in,
    )?;
    Ok(grad_in)
}

/// Max pooling: `input` `[n, c, h, w]` → `[n, c, oh, ow]`, the largest real input element of each
/// (possibly dilated) window. NaN inputs are skipped unless the whole window is NaN.
pub fn max_pool<T: Real>(
    input: &[T],
    input_shape: [usize; 4],
    window: &Window2d,
) -> Result<Vec<T>, KernelError> {
    let dims = PoolDims::new("max_pool", input_shape, window)?;
    check_len("max_pool input", dims.input_len, input.len())?;
    let mut out = filled(dims.output_len, T::zero())?;
    if dims.planes == 0 {
        return Ok(out);
    }
    let taps = dims.taps(false)?;
    let (in_plane, [oh, ow]) = (dims.in_plane(), dims.out_hw());
    for (x, y) in input
        .chunks_exact(in_plane.max(1))
        .zip(out.chunks_exact_mut(dims.out_plane().max(1)))
    {
        for oy in 0..oh {
            for ox in 0..ow {
                y[oy * ow + ox] = x[argmax(dims.window(&taps, oy, ox), x)];
            }
        }
    }
    Ok(out)
}

/// The first index in `window` holding the largest value of `x` (NaN counts as smaller than any
/// number); 0 for an empty window, which callers rule out.
fn argmax<T: Real>(window: impl Iterator<Item = usize>, x: &[T]) -> usize {
    let mut best: Option<usize> = None;
    for i in window {
        best = match best {
            Some(b) if !(x[i] > x[b] || (x[b].is_nan() && !x[i].is_nan())) => Some(b),
            _ => Some(i),
        };
    }
    best.unwrap_or(0)
}

/// Gradient of [`max_pool`] with respect to its input: each output gradient goes to the maximum
/// of its window, the first one in row-major window order on ties. Result `[n, c, h, w]`.
pub fn max_pool_backward<T: Real>(
    input: &[T],
    input_shape: [usize; 4],
    window: &Window2d,
    grad_output: &[T],
) -> Result<Vec<T>, KernelError> {
    let dims = PoolDims::new("max_pool", input_shape, window)?;
    check_len("max_pool input", dims.input_len, input.len())?;
    check_len("max_pool grad_output", dims.output_len, grad_output.len())?;
    let mut grad_in = filled(dims.input_len, T::zero())?;
    if dims.planes == 0 {
        return Ok(grad_in);
    }
    let taps = dims.taps(false)?;
    let (in_plane, [oh, ow]) = (dims.in_plane(), dims.out_hw());
    for ((x, dx), dy) in input
        .chunks_exact(in_plane.max(1))
        .zip(grad_in.chunks_exact_mut(in_plane.max(1)))
        .zip(grad_output.chunks_exact(dims.out_plane().max(1)))
    {
        for oy in 0..oh {
            for ox in 0..ow {
                dx[argmax(dims.window(&taps, oy, ox), x)] += dy[oy * ow + ox];
            }
        }
    }
    Ok(grad_in)
}

fn global_dims(input_shape: [usize; 4]) -> Result<(usize, usize, usize), KernelError> {
    let [n, c, h, w] = input_shape;
    let plane = numel(&[h, w])?;
    if plane == 0 {
        return Err(KernelError::Invalid(format!(
            "global_avg_pool: empty spatial extent in {input_shape:?}"
        )));
    }
    let planes = numel(&[n, c])?;
    numel(&input_shape)?;
    Ok((planes, plane, planes * plane))
}

/// Global average pooling: `input` `[n, c, h, w]` → `[n, c, 1, 1]`, the mean of each plane.
pub fn global_avg_pool<T: Real>(
    input: &[T],
    input_shape: [usize; 4],
) -> Result<Vec<T>, KernelError> {
    let (_, plane, len) = global_dims(input_shape)?;
    check_len("global_avg_pool input", len, input.len())?;
    let div = T::from_usize(plane);
    Ok(input
        .chunks_exact(plane)
        .map(|p| p.iter().copied().sum::<T>() / div)
        .collect())
}

/// Gradient of [`global_avg_pool`]: `grad_output` `[n, c, 1, 1]` divided by `h · w` and spread
/// over each plane, giving `[n, c, h, w]`.
pub fn global_avg_pool_backward<T: Real>(
    grad_output: &[T],
    input_shape: [usize; 4],
) -> Result<Vec<T>, KernelError> {
    let (_, _, len) = global_dims(input_shape)?;
    let mut grad_in = filled(len, T::zero())?;
    mite_kernels::float::global_avg_pool_backward(grad_output, input_shape, &mut grad_in)?;
    Ok(grad_in)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_vjp, Rng};
    use proptest::prelude::*;

    fn window(kernel: usize, stride: usize, pad: usize, dilation: usize) -> Window2d {
        Window2d {
            kernel: [kernel; 2],
            strides: [stride; 2],
            pads: [pad; 4],
            dilations: [dilation; 2],
        }
    }

    fn iota(n: usize) -> Vec<f32> {
        (1..=n).map(|v| v as f32).collect()
    }

    #[test]
    fn hand_computed_pools() {
        let x = iota(16);
        let w = window(2, 2, 0, 1);
        assert_eq!(
            avg_pool(&x, [1, 1, 4, 4], &w, false).unwrap(),
            vec![3.5, 5.5, 11.5, 13.5]
        );
        assert_eq!(
            max_pool(&x, [1, 1, 4, 4], &w).unwrap(),
            vec![6.0, 8.0, 14.0, 16.0]
        );
        // Dilation 2, kernel 2: the window reads x[0,0], x[0,2], x[2,0], x[2,2].
        let dil = window(2, 1, 0, 2);
        assert_eq!(
            max_pool(&x, [1, 1, 4, 4], &dil).unwrap(),
            vec![11.0, 12.0, 15.0, 16.0]
        );
        assert_eq!(
            avg_pool(&x, [1, 1, 4, 4], &dil, true).unwrap(),
            vec![6.0, 7.0, 10.0, 11.0]
        );
        assert_eq!(global_avg_pool(&x, [1, 2, 2, 4]).unwrap(), vec![4.5, 12.5]);
    }

    #[test]
    fn count_include_pad() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let w = window(2, 2, 1, 1);
        assert_eq!(
            avg_pool(&x, [1, 1, 2, 2], &w, true).unwrap(),
            vec![0.25, 0.5, 0.75, 1.0]
        );
        assert_eq!(
            avg_pool(&x, [1, 1, 2, 2], &w, false).unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
        assert_eq!(
            avg_pool_backward(&[4.0f32; 4], [1, 1, 2, 2], &w, true).unwrap(),
            vec![1.0; 4]
        );
        assert_eq!(
            max_pool(&[-1.0f32, -2.0, -3.0, -4.0], [1, 1, 2, 2], &w).unwrap(),
            vec![-1.0, -2.0, -3.0, -4.0]
        );
    }

    #[test]
    fn max_pool_gradient_goes_to_first_maximum() {
        let x = [1.0f32, 5.0, 5.0, 2.0];
        let g = max_pool_backward(&x, [1, 1, 2, 2], &window(2, 1, 0, 1), &[3.0]).unwrap();
        assert_eq!(g, vec![0.0, 3.0, 0.0, 0.0]);
        // Overlapping windows accumulate.
        let x = iota(9);
        let g = max_pool_backward(&x, [1, 1, 3, 3], &window(2, 1, 1, 1), &[1.0f32; 16]).unwrap();
        assert_eq!(g, vec![1.0, 1.0, 2.0, 1.0, 1.0, 2.0, 2.0, 2.0, 4.0]);
        let g = global_avg_pool_backward(&[8.0f32, 4.0], [1, 2, 2, 2]).unwrap();
        assert_eq!(g, vec![2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn rejects_inconsistent_input() {
        let w = window(2, 2, 0, 1);
        assert!(avg_pool(&[0.0f32; 15], [1, 1, 4, 4], &w, false).is_err());
        assert!(max_pool(&[0.0f32; 4], [1, 1, 1, 1], &w).is_err());
        assert!(avg_pool_backward(&[0.0f32; 3], [1, 1, 4, 4], &w, false).is_err());
        assert!(max_pool_backward(&[0.0f32; 16], [1, 1, 4, 4], &w, &[0.0; 3]).is_err());
        // A window made only of padding.
        let all_pad = window(1, 1, 1, 1);
        assert!(max_pool(&[0.0f32; 4], [1, 1, 2, 2], &all_pad).is_err());
        assert!(avg_pool(&[0.0f32; 4], [1, 1, 2, 2], &all_pad, false).is_err());
        assert_eq!(
            avg_pool(&[1.0f32; 4], [1, 1, 2, 2], &all_pad, true).unwrap()[0],
            0.0
        );
        assert!(global_avg_pool(&[0.0f32; 0], [1, 1, 0, 3]).is_err());
        assert!(global_avg_pool(&[0.0f32; 5], [1, 1, 2, 3]).is_err());
        assert!(global_avg_pool_backward(&[0.0f32; 2], [1, 1, 2, 3]).is_err());
        let huge = window(2, 1, usize::MAX / 2, 1);
        assert!(max_pool(&[0.0f32; 4], [1, 1, 2, 2], &huge).is_err());
    }

    fn pool_case() -> impl Strategy<Value = ([usize; 4], Window2d)> {
        (
            (1usize..=2, 1usize..=3, 1usize..=6, 1usize..=6),
            (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3),
            (1usize..=2, 1usize..=2),
            prop::array::uniform4(0usize..=2),
        )
            .prop_map(|((n, c, h, w), (kh, kw, sh, sw), (dh, dw), pads)| {
                (
                    [n, c, h, w],
                    Window2d {
                        kernel: [kh, kw],
                        strides: [sh, sw],
                        pads,
                        dilations: [dh, dw],
                    },
                )
            })
            .prop_filter("window must fit and see input", |(s, w)| {
                max_pool(&vec![0.0f64; s.iter().product()], *s, w).is_ok()
            })
    }

    fn out_len(shape: [usize; 4], w: &Window2d) -> usize {
        let [oh, ow] = w.output_size([shape[2], shape[3]]).unwrap();
        shape[0] * shape[1] * oh * ow
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn avg_pool_gradient((shape, w) in pool_case(), include in any::<bool>(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(shape.iter().product());
            let dy = rng.vec(out_len(shape, &w));
            let dx = avg_pool_backward(&dy, shape, &w, include).unwrap();
            check_vjp(|x| avg_pool(x, shape, &w, include).unwrap(), &x, &dy, &dx, &mut rng)
                .map_err(TestCaseError::fail)?;
        }

        #[test]
        fn max_pool_gradient((shape, w) in pool_case(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(shape.iter().product());
            let dy = rng.vec(out_len(shape, &w));
            let dx = max_pool_backward(&x, shape, &w, &dy).unwrap();
            check_vjp(|x| max_pool(x, shape, &w).unwrap(), &x, &dy, &dx, &mut rng)
                .map_err(TestCaseError::fail)?;
        }

        #[test]
        fn global_avg_pool_gradient(
            shape in prop::array::uniform4(1usize..=4),
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(shape.iter().product());
            let dy = rng.vec(shape[0] * shape[1]);
            let dx = global_avg_pool_backward(&dy, shape).unwrap();
            check_vjp(|x| global_avg_pool(x, shape).unwrap(), &x, &dy, &dx, &mut rng)
                .map_err(TestCaseError::fail)?;
        }

        /// Average pooling with `count_include_pad` equals the average over an explicitly
        /// zero-padded input; without it, over the real elements only.
        #[test]
        fn avg_pool_matches_definition((shape, w) in pool_case(), seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(shape.iter().product());
            let [_, _, h, wd] = shape;
            let [oh, ow] = w.output_size([h, wd]).unwrap();
            let with = avg_pool(&x, shape, &w, true).unwrap();
            let without = avg_pool(&x, shape, &w, false).unwrap();
            for p in 0..shape[0] * shape[1] {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (mut sum, mut count) = (0.0, 0usize);
                        for ki in 0..w.kernel[0] {
                            for kj in 0..w.kernel[1] {
                                let iy = (oy * w.strides[0] + ki * w.dilations[0]) as isize - w.pads[0] as isize;
                                let ix = (ox * w.strides[1] + kj * w.dilations[1]) as isize - w.pads[1] as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    sum += x[p * h * wd + iy as usize * wd + ix as usize];
                                    count += 1;
                                }
                            }
                        }
                        let o = p * oh * ow + oy * ow + ox;
                        let area = (w.kernel[0] * w.kernel[1]) as f64;
                        prop_assert!((with[o] - sum / area).abs() < 1e-12);
                        prop_assert!((without[o] - sum / count as f64).abs() < 1e-12);
                    }
                }
            }
        }
    }
}
