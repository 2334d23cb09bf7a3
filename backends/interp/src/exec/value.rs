//! Values the interpreter consumes and produces.
//!
//! - [`Tensor`]: a typed tensor with `f32` storage for float values ([`TensorData`]); what
//!   [`Interpreter::run`](super::Interpreter::run) takes and returns, and what a CLI feeds images
//!   in and reads logits out of.
//! - [`Buffer`]: the elements of a value whose float elements are of a precision `T` (`f32` or
//!   `f64`); what the precision-generic entry points
//!   ([`Interpreter::run_real`](super::Interpreter::run_real),
//!   [`Interpreter::run_f64`](super::Interpreter::run_f64)) take and return. Its type is the
//!   function's argument or result type.
//! - [`ExecReal`]: the precisions the interpreter runs float ops in.

use std::borrow::Cow;

use mite_ir::{ElemType, TensorData, TensorType};

use crate::kernels::Real;

use super::error::InterpError;

/// A precision the float ops of the interpreter can run in: `f32` (the default, like the
/// generated code) or `f64` (for finite-difference gradient checks).
///
/// Module data and [`Tensor`] inputs are stored in `f32`; these conversions move them into and
/// out of the precision `Self` (borrowing when `Self` is `f32`).
pub trait ExecReal: Real {
    /// `f32` elements in this precision (borrowed when no conversion is needed).
    fn cow_from_f32(data: &[f32]) -> Cow<'_, [Self]>;
    /// These elements in `f32` (borrowed when no conversion is needed; rounds to nearest
    /// otherwise).
    fn cow_to_f32(data: &[Self]) -> Cow<'_, [f32]>;
    /// Owned `f32` elements in this precision.
    fn vec_from_f32(data: Vec<f32>) -> Vec<Self>;
    /// Owned elements in `f32` (rounding to nearest).
    fn vec_to_f32(data: Vec<Self>) -> Vec<f32>;
}

impl ExecReal for f32 {
    fn cow_from_f32(data: &[f32]) -> Cow<'_, [f32]> {
        Cow::Borrowed(data)
    }
    fn cow_to_f32(data: &[f32]) -> Cow<'_, [f32]> {
        Cow::Borrowed(data)
    }
    fn vec_from_f32(data: Vec<f32>) -> Vec<f32> {
        data
    }
    fn vec_to_f32(data: Vec<f32>) -> Vec<f32> {
        data
    }
}

impl ExecReal for f64 {
    fn cow_from_f32(data: &[f32]) -> Cow<'_, [f64]> {
        Cow::Owned(data.iter().map(|&x| f64::from(x)).collect())
    }
    fn cow_to_f32(data: &[f64]) -> Cow<'_, [f32]> {
        Cow::Owned(data.iter().map(|&x| x as f32).collect())
    }
    fn vec_from_f32(data: Vec<f32>) -> Vec<f64> {
        data.into_iter().map(f64::from).collect()
    }
    fn vec_to_f32(data: Vec<f64>) -> Vec<f32> {
        data.into_iter().map(|x| x as f32).collect()
    }
}

/// The elements of one value, row-major, with float elements in precision `T`.
///
/// Which variant a value has follows its IR element type: `f32` values are [`Buffer::Real`],
/// the integer types have their own variants.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer<T> {
    /// Elements of an `f32`-typed value, in precision `T`.
    Real(Vec<T>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `i1` elements.
    I1(Vec<bool>),
}

impl<T: ExecReal> Buffer<T> {
    /// The IR element type these elements represent (`f32` for [`Buffer::Real`]).
    pub fn elem(&self) -> ElemType {
        match self {
            Buffer::Real(_) => ElemType::F32,
            Buffer::I8(_) => ElemType::I8,
            Buffer::I32(_) => ElemType::I32,
            Buffer::I64(_) => ElemType::I64,
            Buffer::I1(_) => ElemType::I1,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::Real(v) => v.len(),
            Buffer::I8(v) => v.len(),
            Buffer::I32(v) => v.len(),
            Buffer::I64(v) => v.len(),
            Buffer::I1(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The float elements, if this is an `f32`-typed value.
    pub fn as_real(&self) -> Option<&[T]> {
        match self {
            Buffer::Real(v) => Some(v),
            _ => None,
        }
    }

    /// Converts IR tensor data (widening `f32` elements to `T`).
    pub fn from_data(data: &TensorData) -> Buffer<T> {
        match data {
            TensorData::F32(v) => Buffer::Real(T::cow_from_f32(v).into_owned()),
            TensorData::I8(v) => Buffer::I8(v.clone()),
            TensorData::I32(v) => Buffer::I32(v.clone()),
            TensorData::I64(v) => Buffer::I64(v.clone()),
            TensorData::I1(v) => Buffer::I1(v.clone()),
        }
    }

    /// Converts to IR tensor data (rounding float elements to `f32`).
    pub fn into_data(self) -> TensorData {
        match self {
            Buffer::Real(v) => TensorData::F32(T::vec_to_f32(v)),
            Buffer::I8(v) => TensorData::I8(v),
            Buffer::I32(v) => TensorData::I32(v),
            Buffer::I64(v) => TensorData::I64(v),
            Buffer::I1(v) => TensorData::I1(v),
        }
    }
}

impl From<TensorData> for Buffer<f32> {
    fn from(data: TensorData) -> Buffer<f32> {
        match data {
            TensorData::F32(v) => Buffer::Real(v),
            TensorData::I8(v) => Buffer::I8(v),
            TensorData::I32(v) => Buffer::I32(v),
            TensorData::I64(v) => Buffer::I64(v),
            TensorData::I1(v) => Buffer::I1(v),
        }
    }
}

impl From<Buffer<f32>> for TensorData {
    fn from(buffer: Buffer<f32>) -> TensorData {
        buffer.into_data()
    }
}

/// A typed tensor: the interpreter's input and output value.
///
/// `data` has the element type of `ty` and `ty.num_elements()` elements (checked by
/// [`Tensor::new`]; the interpreter checks inputs again against the function's argument types).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Shape, element type and quantization.
    pub ty: TensorType,
    /// The elements, row-major.
    pub data: TensorData,
}

impl Tensor {
    /// A tensor of type `ty` holding `data`; errors if the element type or count does not match.
    pub fn new(ty: TensorType, data: TensorData) -> Result<Tensor, InterpError> {
        if data.elem() != ty.elem || data.len() != ty.num_elements() {
            return Err(InterpError::InvalidTensor(format!(
                "{} {} elements given for {ty}, which needs {} {} elements",
                data.len(),
                data.elem(),
                ty.num_elements(),
                ty.elem
            )));
        }
        Ok(Tensor { ty, data })
    }

    /// An `f32` tensor of shape `shape`; errors if `data` does not have as many elements.
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Result<Tensor, InterpError> {
        Tensor::new(TensorType::f32(shape), TensorData::F32(data))
    }

    /// A zero-filled tensor of type `ty` (integer zeros, not the zero point).
    pub fn zeros(ty: TensorType) -> Tensor {
        let data = TensorData::zeros(ty.elem, ty.num_elements());
        Tensor { ty, data }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.ty.shape
    }

    /// The elements, if the tensor is `f32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements, if the tensor is `i8`.
    pub fn as_i8(&self) -> Option<&[i8]> {
        match &self.data {
            TensorData::I8(v) => Some(v),
            _ => None,
        }
    }

    /// The elements, if the tensor is `i32`.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            TensorData::I32(v) => Some(v),
            _ => None,
        }
    }

    /// The real values the tensor represents: `f32` elements as they are, quantized integers
    /// dequantized (`scale · (q − zero_point)`, per tensor or per channel), other integers and
    /// booleans converted.
    pub fn to_real(&self) -> Vec<f32> {
        let raw = self.data.to_f64();
        let Some(quant) = &self.ty.quant else {
            return raw.into_iter().map(|x| x as f32).collect();
        };
        let (axis, channels) = match quant {
            mite_ir::Quant::PerTensor { .. } => (0, 1),
            mite_ir::Quant::PerChannel { axis, scales, .. } => (*axis, scales.len()),
        };
        let inner: usize = self.ty.shape.iter().skip(axis + 1).product();
        raw.into_iter()
            .enumerate()
            .map(|(i, q)| {
                let c = if channels == 1 {
                    0
                } else {
                    (i / inner.max(1)) % channels
                };
                let z = f64::from(quant.zero_point(c));
                ((q - z) * f64::from(quant.scale(c))) as f32
            })
            .collect()
    }
}

/// The data of a value during a run: borrowed from the module, a parameter override or an input
/// where possible, owned otherwise.
#[derive(Clone, Debug)]
pub(crate) enum Data<'a, T: Clone> {
    /// Elements of an `f32`-typed value, in precision `T`.
    Real(Cow<'a, [T]>),
    /// `i8` elements.
    I8(Cow<'a, [i8]>),
    /// `i32` elements.
    I32(Cow<'a, [i32]>),
    /// `i64` elements.
    I64(Cow<'a, [i64]>),
    /// `i1` elements.
    I1(Cow<'a, [bool]>),
}

impl<'a, T: ExecReal> Data<'a, T> {
    /// Borrows IR tensor data (converting `f32` elements when `T` is not `f32`).
    pub(crate) fn from_tensor_data(data: &'a TensorData) -> Data<'a, T> {
        match data {
            TensorData::F32(v) => Data::Real(T::cow_from_f32(v)),
            TensorData::I8(v) => Data::I8(Cow::Borrowed(v)),
            TensorData::I32(v) => Data::I32(Cow::Borrowed(v)),
            TensorData::I64(v) => Data::I64(Cow::Borrowed(v)),
            TensorData::I1(v) => Data::I1(Cow::Borrowed(v)),
        }
    }

    /// Borrows a buffer.
    pub(crate) fn from_buffer(buffer: &'a Buffer<T>) -> Data<'a, T> {
        match buffer {
            Buffer::Real(v) => Data::Real(Cow::Borrowed(v)),
            Buffer::I8(v) => Data::I8(Cow::Borrowed(v)),
            Buffer::I32(v) => Data::I32(Cow::Borrowed(v)),
            Buffer::I64(v) => Data::I64(Cow::Borrowed(v)),
            Buffer::I1(v) => Data::I1(Cow::Borrowed(v)),
        }
    }

    /// The elements as an owned buffer (copied if borrowed).
    pub(crate) fn into_buffer(self) -> Buffer<T> {
        match self {
            Data::Real(v) => Buffer::Real(v.into_owned()),
            Data::I8(v) => Buffer::I8(v.into_owned()),
            Data::I32(v) => Buffer::I32(v.into_owned()),
            Data::I64(v) => Buffer::I64(v.into_owned()),
            Data::I1(v) => Buffer::I1(v.into_owned()),
        }
    }

    /// A copy of the elements as an owned buffer.
    pub(crate) fn to_buffer(&self) -> Buffer<T> {
        self.clone().into_buffer()
    }

    /// The IR element type.
    pub(crate) fn elem(&self) -> ElemType {
        match self {
            Data::Real(_) => ElemType::F32,
            Data::I8(_) => ElemType::I8,
            Data::I32(_) => ElemType::I32,
            Data::I64(_) => ElemType::I64,
            Data::I1(_) => ElemType::I1,
        }
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Data::Real(v) => v.len(),
            Data::I8(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::I1(v) => v.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mite_ir::Quant;

    #[test]
    fn buffer_round_trips_through_tensor_data() {
        let data = TensorData::F32(vec![0.5, -1.25]);
        let b64 = Buffer::<f64>::from_data(&data);
        assert_eq!(b64, Buffer::Real(vec![0.5, -1.25]));
        assert_eq!(b64.into_data(), data);
        let b32: Buffer<f32> = data.clone().into();
        assert_eq!(TensorData::from(b32), data);
    }

    #[test]
    fn tensor_checks_and_dequantizes() {
        assert!(Tensor::f32(&[2, 2], vec![1.0; 3]).is_err());
        let ty = TensorType::quantized(&[2], ElemType::I8, Quant::per_tensor(0.5, 1));
        let t = Tensor::new(ty, TensorData::I8(vec![3, -1])).unwrap();
        assert_eq!(t.to_real(), vec![1.0, -1.0]);
        let ty =
            TensorType::quantized(&[2, 1], ElemType::I8, Quant::per_channel(0, vec![0.5, 2.0]));
        let t = Tensor::new(ty, TensorData::I8(vec![4, 4])).unwrap();
        assert_eq!(t.to_real(), vec![2.0, 8.0]);
    }
}
