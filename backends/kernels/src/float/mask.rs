//! Activation masks packed one bit per element (the backward pass of ReLU / clip keeps only
//! whether each element was inside the range): bit `i % 32` of word `i / 32`.

use crate::error::{check_len, KernelError};

use super::Scalar;

/// The open interval `(min, max)` a mask tests (both bounds exclusive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mask<T> {
    /// Lower bound.
    pub min: T,
    /// Upper bound.
    pub max: T,
}

/// Words of a packed mask of `len` elements.
pub fn mask_words(len: usize) -> usize {
    len.div_ceil(32)
}

/// Sets bit `i` of `out` when `min < x[i] < max` (NaN: clear); unused high bits are cleared.
pub fn make_mask<T: Scalar>(x: &[T], out: &mut [u32], p: &Mask<T>) -> Result<(), KernelError> {
    if p.min
        .partial_cmp(&p.max)
        .is_none_or(|o| o == core::cmp::Ordering::Greater)
    {
        return Err(KernelError::Param("mask bounds must satisfy min <= max"));
    }
    check_len("mask words", mask_words(x.len()), out.len())?;
    out.fill(0);
    for (word, chunk) in out.iter_mut().zip(x.chunks(32)) {
        for (bit, &v) in chunk.iter().enumerate() {
            if p.min < v && v < p.max {
                *word |= 1 << bit;
            }
        }
    }
    Ok(())
}

/// `out[i] = dy[i]` where bit `i` of `mask` is set, zero elsewhere.
pub fn apply_mask<T: Scalar>(dy: &[T], mask: &[u32], out: &mut [T]) -> Result<(), KernelError> {
    check_len("mask words", mask_words(dy.len()), mask.len())?;
    check_len("masked output", dy.len(), out.len())?;
    for ((o, d), &word) in out.chunks_mut(32).zip(dy.chunks(32)).zip(mask) {
        for (bit, (ov, &dv)) in o.iter_mut().zip(d).enumerate() {
            *ov = if word >> bit & 1 == 1 { dv } else { T::ZERO };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_applies() {
        let x: [f32; 35] = core::array::from_fn(|i| i as f32 - 3.0);
        let mut m = [0_u32; 2];
        make_mask(&x, &mut m, &Mask { min: 0.0, max: 6.0 }).unwrap();
        // Elements 4..=8 (values 1..5) are inside.
        assert_eq!(m, [0b1_1111_0000, 0]);
        let mut y = [9.0_f32; 35];
        apply_mask(&[1.0; 35], &m, &mut y).unwrap();
        assert_eq!(y.iter().filter(|&&v| v == 1.0).count(), 5);
        assert_eq!(y[4], 1.0);
        assert_eq!(y[3], 0.0);
        assert!(make_mask(&x, &mut m[..1], &Mask { min: 0.0, max: 6.0 }).is_err());
    }
}
