//! Fused backward kernels: one kernel where the unfused graph runs two, so the intermediate
//! tensor never needs a buffer of its own. Each runs the same loops, in the same order, as the
//! sequence it replaces, so its results are bit-identical to it (tested below).

use crate::error::{check_len, KernelError};
use crate::geometry::Conv2dGeometry;

use super::conv::conv2d_backward_input;
use super::mask::mask_words;
use super::Scalar;

/// `apply_mask(conv2d_backward_input(dy, w), mask)` written into `out`: the transposed
/// convolution accumulates into `out`, then every element whose mask bit is clear is zeroed in
/// place. No second buffer of the input's size exists.
pub fn conv2d_backward_input_masked<T: Scalar>(
    dy: &[T],
    w: &[T],
    mask: &[u32],
    out: &mut [T],
    g: &Conv2dGeometry,
) -> Result<(), KernelError> {
    check_len("mask words", mask_words(g.input_len()), mask.len())?;
    conv2d_backward_input(dy, w, out, g)?;
    for (chunk, &word) in out.chunks_mut(32).zip(mask) {
        for (bit, v) in chunk.iter_mut().enumerate() {
            if word >> bit & 1 == 0 {
                *v = T::ZERO;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::mask::apply_mask;
    use crate::geometry::Window2d;
    use std::vec;
    use std::vec::Vec;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((s >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn check(g: &Conv2dGeometry, seed: u32) {
        let dy = pseudo(g.output_len(), seed);
        let w = pseudo(g.weight_len(), seed + 1);
        let mask: Vec<u32> = pseudo(mask_words(g.input_len()), seed + 2)
            .iter()
            .map(|v| v.to_bits() ^ 0x5555_5555)
            .collect();
        let mut dx = vec![0.0f32; g.input_len()];
        conv2d_backward_input(&dy, &w, &mut dx, g).unwrap();
        let mut want = vec![0.0f32; g.input_len()];
        apply_mask(&dx, &mask, &mut want).unwrap();
        let mut got = vec![7.0f32; g.input_len()];
        conv2d_backward_input_masked(&dy, &w, &mask, &mut got, g).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
        assert!(got.contains(&0.0) && got.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn masked_input_gradient_equals_the_unfused_pair_bit_for_bit() {
        // Pointwise, strided 3x3 with padding, and depthwise.
        let win = |k: usize, s: usize, p: usize| Window2d {
            kernel: [k, k],
            strides: [s, s],
            pads: [p; 4],
            dilations: [1, 1],
        };
        let cases = [
            Conv2dGeometry::new(1, 8, [5, 5], 6, 1, win(1, 1, 0)),
            Conv2dGeometry::new(2, 4, [7, 6], 4, 1, win(3, 2, 1)),
            Conv2dGeometry::new(1, 6, [6, 6], 6, 6, win(3, 1, 1)),
        ];
        for (i, g) in cases.into_iter().enumerate() {
            check(&g.unwrap(), i as u32 * 7 + 1);
        }
    }

    #[test]
    fn a_short_mask_is_an_error() {
        let window = Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        };
        let g = Conv2dGeometry::new(1, 4, [4, 4], 2, 1, window).unwrap();
        let mut out = vec![0.0f32; g.input_len()];
        let err = conv2d_backward_input_masked(
            &vec![0.0; g.output_len()],
            &vec![0.0; g.weight_len()],
            &[0],
            &mut out,
            &g,
        );
        assert!(err.is_err());
    }
}
