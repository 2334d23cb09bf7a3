//! Trained weights stored in two buffers (see [`Kernel::SplitWeight`](super::Kernel)): a
//! sparse update that trains the first `kept` input channels of a convolution keeps only that
//! slice `[c_out, kept, kh, kw]` in SRAM ([`Storage::Param`]); the frozen remainder
//! `[c_out, c_in − kept, kh, kw]` stays in flash ([`Storage::Flash`] naming the same global).
//! The whole parameter is the two joined along axis 1.

use super::{BufferId, Program, Storage};
use crate::TensorData;

/// A trained parameter stored as its trained slice and its frozen remainder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightSplit {
    /// The SRAM slice ([`Storage::Param`]).
    pub trained: BufferId,
    /// The flash remainder ([`Storage::Flash`] of the same global).
    pub frozen: BufferId,
}

impl Program {
    /// The split parameters: each [`Storage::Param`] buffer whose global also names a
    /// [`Storage::Flash`] buffer (its frozen remainder), in buffer order.
    pub fn weight_splits(&self) -> Vec<WeightSplit> {
        let flash_of = |global: &str| {
            self.buffers.iter().position(
                |b| matches!(&b.storage, Storage::Flash { global: Some(g), .. } if g == global),
            )
        };
        self.buffers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match &b.storage {
                Storage::Param { global, .. } => flash_of(global).map(|f| WeightSplit {
                    trained: BufferId(i as u32),
                    frozen: BufferId(f as u32),
                }),
                _ => None,
            })
            .collect()
    }

    /// The frozen remainder of parameter buffer `trained`, if it is split.
    pub fn frozen_part(&self, trained: BufferId) -> Option<BufferId> {
        self.weight_splits()
            .into_iter()
            .find(|s| s.trained == trained)
            .map(|s| s.frozen)
    }

    /// The whole value of parameter buffer `trained` holding `data`: `data` itself, or, for a
    /// split parameter, `data` joined with its frozen remainder along axis 1 (`None` when the
    /// two do not fit together).
    pub fn whole_param(&self, trained: BufferId, data: &TensorData) -> Option<TensorData> {
        let Some(frozen) = self.frozen_part(trained) else {
            return Some(data.clone());
        };
        let (t, f) = (self.buffer(trained), self.buffer(frozen));
        let Storage::Flash { data: rest, .. } = &f.storage else {
            return None;
        };
        let outer = *t.shape.first()?;
        if f.shape.first() != Some(&outer) || outer == 0 {
            return None;
        }
        join_rows(data, rest, outer)
    }
}

/// `a` and `b` viewed as `outer` rows each, joined row by row (`a`'s row then `b`'s).
pub fn join_rows(a: &TensorData, b: &TensorData, outer: usize) -> Option<TensorData> {
    fn join<T: Copy>(a: &[T], b: &[T], outer: usize) -> Option<Vec<T>> {
        if outer == 0 || a.len() % outer != 0 || b.len() % outer != 0 {
            return None;
        }
        let (ra, rb) = (a.len() / outer, b.len() / outer);
        let mut v = Vec::with_capacity(a.len() + b.len());
        for o in 0..outer {
            v.extend_from_slice(&a[o * ra..(o + 1) * ra]);
            v.extend_from_slice(&b[o * rb..(o + 1) * rb]);
        }
        Some(v)
    }
    Some(match (a, b) {
        (TensorData::F32(a), TensorData::F32(b)) => TensorData::F32(join(a, b, outer)?),
        (TensorData::I8(a), TensorData::I8(b)) => TensorData::I8(join(a, b, outer)?),
        (TensorData::I32(a), TensorData::I32(b)) => TensorData::I32(join(a, b, outer)?),
        (TensorData::I64(a), TensorData::I64(b)) => TensorData::I64(join(a, b, outer)?),
        (TensorData::I1(a), TensorData::I1(b)) => TensorData::I1(join(a, b, outer)?),
        _ => return None,
    })
}

/// The inverse of [`join_rows`]: `data` viewed as `outer` rows, each split after its first
/// `head` elements into `(heads, tails)` (`None` when the rows do not divide so).
pub fn split_rows(
    data: &TensorData,
    outer: usize,
    head: usize,
) -> Option<(TensorData, TensorData)> {
    fn split<T: Copy>(v: &[T], outer: usize, head: usize) -> Option<(Vec<T>, Vec<T>)> {
        if outer == 0 || v.len() % outer != 0 || head > v.len() / outer {
            return None;
        }
        let row = v.len() / outer;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for r in v.chunks_exact(row) {
            a.extend_from_slice(&r[..head]);
            b.extend_from_slice(&r[head..]);
        }
        Some((a, b))
    }
    Some(match data {
        TensorData::F32(v) => {
            let (a, b) = split(v, outer, head)?;
            (TensorData::F32(a), TensorData::F32(b))
        }
        TensorData::I8(v) => {
            let (a, b) = split(v, outer, head)?;
            (TensorData::I8(a), TensorData::I8(b))
        }
        TensorData::I32(v) => {
            let (a, b) = split(v, outer, head)?;
            (TensorData::I32(a), TensorData::I32(b))
        }
        TensorData::I64(v) => {
            let (a, b) = split(v, outer, head)?;
            (TensorData::I64(a), TensorData::I64(b))
        }
        TensorData::I1(v) => {
            let (a, b) = split(v, outer, head)?;
            (TensorData::I1(a), TensorData::I1(b))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_join_in_order() {
        let a = TensorData::I8(vec![1, 2, 3, 4]);
        let b = TensorData::I8(vec![9, 8]);
        assert_eq!(
            join_rows(&a, &b, 2),
            Some(TensorData::I8(vec![1, 2, 9, 3, 4, 8]))
        );
        assert_eq!(join_rows(&a, &b, 3), None);
        let joined = join_rows(&a, &b, 2).unwrap();
        assert_eq!(split_rows(&joined, 2, 2), Some((a.clone(), b.clone())));
        assert_eq!(split_rows(&joined, 2, 4), None);
        assert_eq!(join_rows(&a, &TensorData::F32(vec![0.0; 2]), 2), None);
    }
}
