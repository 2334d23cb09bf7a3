//! Tensor data held in the module's side table for parameters and constants.

use crate::types::ElemType;

/// The elements of a dense tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `i1` elements.
    I1(Vec<bool>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I1(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn elem(&self) -> ElemType {
        match self {
            TensorData::F32(_) => ElemType::F32,
            TensorData::I8(_) => ElemType::I8,
            TensorData::I32(_) => ElemType::I32,
            TensorData::I64(_) => ElemType::I64,
            TensorData::I1(_) => ElemType::I1,
        }
    }

    /// A zero-filled tensor of `len` elements of type `elem`.
    pub fn zeros(elem: ElemType, len: usize) -> TensorData {
        match elem {
            ElemType::F32 => TensorData::F32(vec![0.0; len]),
            ElemType::I8 => TensorData::I8(vec![0; len]),
            ElemType::I32 => TensorData::I32(vec![0; len]),
            ElemType::I64 => TensorData::I64(vec![0; len]),
            ElemType::I1 => TensorData::I1(vec![false; len]),
        }
    }

    /// A 64-bit FNV-1a digest of the element type and the little-endian bytes, used to refer to
    /// elided data in printed IR (so snapshots still change when the data does).
    pub fn digest(&self) -> u64 {
        let mut h = Fnv64::new();
        h.write(self.elem().name().as_bytes());
        match self {
            TensorData::F32(v) => v.iter().for_each(|x| h.write(&x.to_le_bytes())),
            TensorData::I8(v) => v.iter().for_each(|x| h.write(&x.to_le_bytes())),
            TensorData::I32(v) => v.iter().for_each(|x| h.write(&x.to_le_bytes())),
            TensorData::I64(v) => v.iter().for_each(|x| h.write(&x.to_le_bytes())),
            TensorData::I1(v) => v.iter().for_each(|&x| h.write(&[u8::from(x)])),
        }
        h.finish()
    }

    /// The real values `scale[c] · (q − zero_point[c])` of quantized data of type `ty` (`c`: the
    /// index along the quantized axis), computed in `f32` as `q.dequantize` does; `None` when `ty`
    /// has no quantization.
    pub fn real_values(&self, ty: &crate::types::TensorType) -> Option<Vec<f32>> {
        use crate::types::Quant;
        let q = ty.quant.as_ref()?;
        let (axis, dim) = match q {
            Quant::PerTensor { .. } => (0, 1),
            Quant::PerChannel { axis, .. } => (*axis, *ty.shape.get(*axis)?),
        };
        let inner: usize = ty.shape.get(axis + 1..).map_or(1, |s| s.iter().product());
        Some(
            self.to_f64()
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = if dim == 1 {
                        0
                    } else {
                        (i / inner.max(1)) % dim
                    };
                    q.scale(c) * (v as f32 - q.zero_point(c) as f32)
                })
                .collect(),
        )
    }

    /// The elements widened to `f64` (for folding and diagnostics).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I1(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        }
    }
}

/// 64-bit FNV-1a.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_type_and_values() {
        let a = TensorData::I32(vec![1, 2]).digest();
        assert_ne!(a, TensorData::I32(vec![2, 1]).digest());
        assert_ne!(a, TensorData::I64(vec![1, 2]).digest());
        assert_eq!(a, TensorData::I32(vec![1, 2]).digest());
    }
}
