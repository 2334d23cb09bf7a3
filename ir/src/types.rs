//! Tensor types: element types, static shapes and int8 quantization parameters.
//!
//! Text form: `tensor<1x16x64x64xi8, q<0.0235, -128>>`; a scalar is `tensor<f32>`; per-channel
//! quantization along axis 0 is `q<axis=0, [0.1, 0.2], [0, 0]>` (the zero points may be omitted
//! when they are all zero).

use smallvec::SmallVec;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A static tensor shape (batch 1 is the target, so every dimension is known).
pub type Shape = SmallVec<[usize; 4]>;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElemType {
    /// IEEE 754 single precision.
    F32,
    /// Signed 8-bit integer (quantized activations and weights).
    I8,
    /// Signed 32-bit integer (quantized biases, accumulators, labels).
    I32,
    /// Signed 64-bit integer (shapes and indices from imported models).
    I64,
    /// One bit (masks saved for the backward pass).
    I1,
}

impl ElemType {
    /// Every element type, in text order.
    pub const ALL: [ElemType; 5] = [
        ElemType::F32,
        ElemType::I8,
        ElemType::I32,
        ElemType::I64,
        ElemType::I1,
    ];

    /// The name used in the text format (`f32`, `i8`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::I8 => "i8",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
            ElemType::I1 => "i1",
        }
    }

    /// Parses a name of the text format.
    pub fn from_name(name: &str) -> Option<ElemType> {
        ElemType::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Storage size in bits.
    pub fn bits(self) -> usize {
        match self {
            ElemType::F32 | ElemType::I32 => 32,
            ElemType::I8 => 8,
            ElemType::I64 => 64,
            ElemType::I1 => 1,
        }
    }

    /// Whether the type is an integer type that may carry quantization parameters.
    pub fn is_quantizable(self) -> bool {
        matches!(self, ElemType::I8 | ElemType::I32)
    }

    /// The inclusive range of representable integers, for integer types.
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            ElemType::I8 => Some((i8::MIN.into(), i8::MAX.into())),
            ElemType::I32 => Some((i32::MIN.into(), i32::MAX.into())),
            ElemType::I64 => Some((i64::MIN, i64::MAX)),
            ElemType::I1 => Some((0, 1)),
            ElemType::F32 => None,
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Affine quantization parameters: `real = scale · (q − zero_point)`.
///
/// Equality and hashing compare scales bit for bit, so types can be used as map keys.
#[derive(Clone, Debug)]
pub enum Quant {
    /// One scale and zero point for the whole tensor.
    PerTensor {
        /// The step between adjacent integers, in real units.
        scale: f32,
        /// The integer that represents real zero.
        zero_point: i32,
    },
    /// One scale and zero point per index along `axis` (weights: the output channel axis).
    PerChannel {
        /// The quantized axis.
        axis: usize,
        /// One scale per channel.
        scales: Arc<[f32]>,
        /// One zero point per channel.
        zero_points: Arc<[i32]>,
    },
}

impl Quant {
    /// Per-tensor parameters.
    pub fn per_tensor(scale: f32, zero_point: i32) -> Quant {
        Quant::PerTensor { scale, zero_point }
    }

    /// Per-channel parameters along `axis`, with all zero points 0 (symmetric).
    pub fn per_channel(axis: usize, scales: Vec<f32>) -> Quant {
        let zero_points = vec![0; scales.len()].into();
        Quant::PerChannel {
            axis,
            scales: scales.into(),
            zero_points,
        }
    }

    /// The scale of channel `c` (any channel for per-tensor parameters).
    pub fn scale(&self, c: usize) -> f32 {
        match self {
            Quant::PerTensor { scale, .. } => *scale,
            Quant::PerChannel { scales, .. } => scales[c],
        }
    }

    /// The zero point of channel `c` (any channel for per-tensor parameters).
    pub fn zero_point(&self, c: usize) -> i32 {
        match self {
            Quant::PerTensor { zero_point, .. } => *zero_point,
            Quant::PerChannel { zero_points, .. } => zero_points[c],
        }
    }

    /// Whether the parameters are per tensor.
    pub fn is_per_tensor(&self) -> bool {
        matches!(self, Quant::PerTensor { .. })
    }
}

impl PartialEq for Quant {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Quant::PerTensor {
                    scale: a,
                    zero_point: za,
                },
                Quant::PerTensor {
                    scale: b,
                    zero_point: zb,
                },
            ) => a.to_bits() == b.to_bits() && za == zb,
            (
                Quant::PerChannel {
                    axis: a,
                    scales: sa,
                    zero_points: za,
                },
                Quant::PerChannel {
                    axis: b,
                    scales: sb,
                    zero_points: zb,
                },
            ) => {
                a == b
                    && za == zb
                    && sa.len() == sb.len()
                    && sa
                        .iter()
                        .zip(sb.iter())
                        .all(|(x, y)| x.to_bits() == y.to_bits())
            }
            _ => false,
        }
    }
}

impl Eq for Quant {}

impl Hash for Quant {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Quant::PerTensor { scale, zero_point } => {
                0u8.hash(state);
                scale.to_bits().hash(state);
                zero_point.hash(state);
            }
            Quant::PerChannel {
                axis,
                scales,
                zero_points,
            } => {
                1u8.hash(state);
                axis.hash(state);
                for s in scales.iter() {
                    s.to_bits().hash(state);
                }
                zero_points.hash(state);
            }
        }
    }
}

impl fmt::Display for Quant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quant::PerTensor { scale, zero_point } => write!(f, "q<{scale:?}, {zero_point}>"),
            Quant::PerChannel {
                axis,
                scales,
                zero_points,
            } => {
                write!(f, "q<axis={axis}, [")?;
                write_list(f, scales.iter().map(|s| format!("{s:?}")))?;
                f.write_str("]")?;
                if zero_points.iter().any(|&z| z != 0) {
                    f.write_str(", [")?;
                    write_list(f, zero_points.iter().map(|z| z.to_string()))?;
                    f.write_str("]")?;
                }
                f.write_str(">")
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: impl Iterator<Item = String>) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(&item)?;
    }
    Ok(())
}

/// The type of an SSA value: a statically shaped tensor, optionally quantized.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Dimensions, outermost first (NCHW for images).
    pub shape: Shape,
    /// Element type.
    pub elem: ElemType,
    /// Quantization parameters (only on `i8` and `i32`).
    pub quant: Option<Quant>,
}

impl TensorType {
    /// A tensor type without quantization.
    pub fn new(shape: &[usize], elem: ElemType) -> TensorType {
        TensorType {
            shape: shape.into(),
            elem,
            quant: None,
        }
    }

    /// An `f32` tensor type.
    pub fn f32(shape: &[usize]) -> TensorType {
        TensorType::new(shape, ElemType::F32)
    }

    /// A quantized tensor type.
    pub fn quantized(shape: &[usize], elem: ElemType, quant: Quant) -> TensorType {
        TensorType {
            shape: shape.into(),
            elem,
            quant: Some(quant),
        }
    }

    /// The same type with other quantization parameters.
    pub fn with_quant(&self, quant: Option<Quant>) -> TensorType {
        TensorType {
            shape: self.shape.clone(),
            elem: self.elem,
            quant,
        }
    }

    /// The same element type and quantization with another shape.
    pub fn with_shape(&self, shape: &[usize]) -> TensorType {
        TensorType {
            shape: shape.into(),
            elem: self.elem,
            quant: self.quant.clone(),
        }
    }

    /// Rank (number of dimensions).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements (1 for a scalar).
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Storage size in bytes (bits rounded up to whole bytes).
    pub fn size_bytes(&self) -> usize {
        (self.num_elements() * self.elem.bits()).div_ceil(8)
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor<")?;
        for d in &self.shape {
            write!(f, "{d}x")?;
        }
        f.write_str(self.elem.name())?;
        if let Some(q) = &self.quant {
            write!(f, ", {q}")?;
        }
        f.write_str(">")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let t = TensorType::quantized(&[1, 16, 64, 64], ElemType::I8, Quant::per_tensor(0.5, -128));
        assert_eq!(t.to_string(), "tensor<1x16x64x64xi8, q<0.5, -128>>");
        assert_eq!(TensorType::f32(&[]).to_string(), "tensor<f32>");
        let w = TensorType::quantized(
            &[2, 3],
            ElemType::I8,
            Quant::per_channel(0, vec![0.1, 0.25]),
        );
        assert_eq!(w.to_string(), "tensor<2x3xi8, q<axis=0, [0.1, 0.25]>>");
    }

    #[test]
    fn sizes() {
        assert_eq!(TensorType::new(&[3, 5], ElemType::I1).size_bytes(), 2);
        assert_eq!(TensorType::f32(&[2, 2]).size_bytes(), 16);
    }
}
