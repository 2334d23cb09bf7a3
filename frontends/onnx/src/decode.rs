//! Protobuf messages to the owned model, with validation.

use indexmap::map::Entry;
use indexmap::IndexMap;

use crate::error::{ErrorKind, OnnxError};
use crate::model::{
    AttrValue, DataType, Dim, Graph, Node, OnnxModel, OpsetImport, Tensor, TensorData,
    TensorShapeError, ValueInfo,
};
use crate::proto::{
    self, tensor_shape_proto::DimValue, type_proto, AttributeProto, AttributeType, DataLocation,
    GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};

/// Converts a decoded `ModelProto` read from `file`.
pub(crate) fn model(proto: ModelProto, file: &str) -> Result<OnnxModel, OnnxError> {
    let graph = proto
        .graph
        .ok_or_else(|| ErrorKind::MissingGraph.at(file, ""))?;
    Ok(OnnxModel {
        ir_version: proto.ir_version.unwrap_or(0),
        producer_name: proto.producer_name.unwrap_or_default(),
        producer_version: proto.producer_version.unwrap_or_default(),
        opsets: proto
            .opset_import
            .into_iter()
            .map(|o| OpsetImport::new(o.domain.unwrap_or_default(), o.version.unwrap_or(0)))
            .collect(),
        metadata: proto
            .metadata_props
            .into_iter()
            .map(|e| (e.key.unwrap_or_default(), e.value.unwrap_or_default()))
            .collect(),
        graph: self::graph(graph, file)?,
    })
}

/// Converts the main graph.
fn graph(proto: GraphProto, file: &str) -> Result<Graph, OnnxError> {
    if !proto.sparse_initializer.is_empty() {
        let count = proto.sparse_initializer.len();
        return Err(ErrorKind::SparseInitializer { count }.at(file, "graph"));
    }

    let mut initializers = IndexMap::with_capacity(proto.initializer.len());
    for (index, t) in proto.initializer.into_iter().enumerate() {
        let name = t.name.clone().unwrap_or_default();
        let context = || format!("initializer `{name}` (#{index})");
        let tensor = tensor(t).map_err(|kind| kind.at(file, context()))?;
        match initializers.entry(name.clone()) {
            Entry::Occupied(_) => {
                let kind = ErrorKind::Duplicate {
                    what: "initializer",
                    name: name.clone(),
                };
                return Err(kind.at(file, "graph"));
            }
            Entry::Vacant(slot) => {
                slot.insert(tensor);
            }
        }
    }

    let nodes = proto
        .node
        .into_iter()
        .enumerate()
        .map(|(index, n)| node(n, index, file))
        .collect::<Result<_, _>>()?;

    let inputs = proto
        .input
        .into_iter()
        .map(|v| interface_value(v, "graph input", file))
        .collect::<Result<_, _>>()?;
    let outputs = proto
        .output
        .into_iter()
        .map(|v| interface_value(v, "graph output", file))
        .collect::<Result<_, _>>()?;

    let mut value_info = Vec::new();
    for v in proto.value_info {
        let context = format!("value_info `{}`", v.name.as_deref().unwrap_or_default());
        match self::value_info(v) {
            Ok(info) => value_info.push(info),
            // Type hints for intermediate values are optional; non-tensor ones are dropped.
            Err(ErrorKind::NotATensorType { .. }) => {}
            Err(kind) => return Err(kind.at(file, context)),
        }
    }

    Ok(Graph {
        name: proto.name.unwrap_or_default(),
        nodes,
        initializers,
        inputs,
        outputs,
        value_info,
    })
}

/// Converts a graph input or output, which must be tensor-typed.
fn interface_value(proto: ValueInfoProto, what: &str, file: &str) -> Result<ValueInfo, OnnxError> {
    let context = format!("{what} `{}`", proto.name.as_deref().unwrap_or_default());
    value_info(proto).map_err(|kind| kind.at(file, context))
}

/// Converts a value declaration; `NotATensorType` when it has no tensor type.
fn value_info(proto: ValueInfoProto) -> Result<ValueInfo, ErrorKind> {
    let name = proto.name.unwrap_or_default();
    let tensor_type = match proto.r#type.and_then(|t| t.value) {
        Some(type_proto::Value::Tensor(t)) => t,
        Some(type_proto::Value::Sequence(_)) => {
            return Err(ErrorKind::NotATensorType {
                found: "a sequence",
            })
        }
        Some(type_proto::Value::Map(_)) => {
            return Err(ErrorKind::NotATensorType { found: "a map" })
        }
        Some(type_proto::Value::SparseTensor(_)) => {
            return Err(ErrorKind::NotATensorType {
                found: "a sparse tensor",
            })
        }
        Some(type_proto::Value::Optional(_)) => {
            return Err(ErrorKind::NotATensorType {
                found: "an optional",
            })
        }
        None => return Err(ErrorKind::NotATensorType { found: "no type" }),
    };
    let code = tensor_type.elem_type.unwrap_or(0);
    let elem_type = DataType::from_code(code).ok_or(ErrorKind::UnknownDataType(code))?;
    let shape = match tensor_type.shape {
        None => None,
        Some(shape) => Some(shape.dim.into_iter().map(dim).collect::<Result<_, _>>()?),
    };
    Ok(ValueInfo {
        name,
        elem_type,
        shape,
    })
}

/// Converts one declared dimension.
fn dim(proto: proto::tensor_shape_proto::Dimension) -> Result<Dim, ErrorKind> {
    match proto.value {
        Some(DimValue::DimValue(v)) => usize::try_from(v)
            .map(Dim::Fixed)
            .map_err(|_| ErrorKind::NegativeDim(v)),
        Some(DimValue::DimParam(name)) => Ok(Dim::Symbolic(name)),
        None => Ok(Dim::Unknown),
    }
}

/// Converts the node at position `index` of the graph.
fn node(proto: NodeProto, index: usize, file: &str) -> Result<Node, OnnxError> {
    let name = proto.name.unwrap_or_default();
    let op_type = proto.op_type.unwrap_or_default();
    let context = if name.is_empty() {
        format!("node #{index} ({op_type})")
    } else {
        format!("node `{name}` ({op_type})")
    };

    let mut attributes = IndexMap::with_capacity(proto.attribute.len());
    for a in proto.attribute {
        let attr_name = a.name.clone().unwrap_or_default();
        let value = attribute(a)
            .map_err(|kind| kind.at(file, format!("{context} attribute `{attr_name}`")))?;
        match attributes.entry(attr_name) {
            Entry::Occupied(slot) => {
                let kind = ErrorKind::Duplicate {
                    what: "attribute",
                    name: slot.key().clone(),
                };
                return Err(kind.at(file, context));
            }
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
        }
    }

    Ok(Node {
        name,
        op_type,
        domain: proto.domain.unwrap_or_default(),
        inputs: proto.input,
        outputs: proto.output,
        attributes,
    })
}

/// Converts one attribute value.
///
/// A missing scalar (`f`, `i`, `s`) reads as its protobuf default, as proto2 prescribes.
fn attribute(proto: AttributeProto) -> Result<AttrValue, ErrorKind> {
    if let Some(reference) = proto.ref_attr_name.filter(|r| !r.is_empty()) {
        return Err(ErrorKind::AttributeReference(reference));
    }
    let code = proto.r#type.unwrap_or(0);
    let kind = AttributeType::try_from(code).map_err(|_| ErrorKind::UnknownAttributeType(code))?;
    let value = match kind {
        AttributeType::Undefined => return Err(ErrorKind::UnknownAttributeType(code)),
        AttributeType::Float => AttrValue::Float(proto.f.unwrap_or_default()),
        AttributeType::Int => AttrValue::Int(proto.i.unwrap_or_default()),
        AttributeType::String => AttrValue::String(utf8(proto.s.unwrap_or_default())?),
        AttributeType::Tensor => {
            let t = proto
                .t
                .ok_or(ErrorKind::MissingAttributeValue { declared: "TENSOR" })?;
            AttrValue::Tensor(tensor(t)?)
        }
        AttributeType::Floats => AttrValue::Floats(proto.floats),
        AttributeType::Ints => AttrValue::Ints(proto.ints),
        AttributeType::Strings => AttrValue::Strings(
            proto
                .strings
                .into_iter()
                .map(utf8)
                .collect::<Result<_, _>>()?,
        ),
        AttributeType::Tensors => AttrValue::Tensors(
            proto
                .tensors
                .into_iter()
                .map(tensor)
                .collect::<Result<_, _>>()?,
        ),
        AttributeType::Graph => return Err(unsupported("GRAPH (subgraph)")),
        AttributeType::Graphs => return Err(unsupported("GRAPHS (subgraph)")),
        AttributeType::SparseTensor => return Err(unsupported("SPARSE_TENSOR")),
        AttributeType::SparseTensors => return Err(unsupported("SPARSE_TENSORS")),
        AttributeType::TypeProto => return Err(unsupported("TYPE_PROTO")),
        AttributeType::TypeProtos => return Err(unsupported("TYPE_PROTOS")),
    };
    Ok(value)
}

/// An unsupported-attribute error for `kind`.
fn unsupported(kind: &'static str) -> ErrorKind {
    ErrorKind::UnsupportedAttribute { kind }
}

/// Bytes that must be UTF-8.
fn utf8(bytes: Vec<u8>) -> Result<String, ErrorKind> {
    String::from_utf8(bytes).map_err(|_| ErrorKind::InvalidUtf8)
}

/// Converts a tensor, checking its element type, storage and element count.
pub(crate) fn tensor(proto: TensorProto) -> Result<Tensor, ErrorKind> {
    let external = proto.data_location == Some(DataLocation::External as i32);
    if external || !proto.external_data.is_empty() {
        let location = proto
            .external_data
            .iter()
            .find(|e| e.key.as_deref() == Some("location"))
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| "?".to_owned());
        return Err(ErrorKind::ExternalData { location });
    }
    if proto.segment.is_some() {
        return Err(ErrorKind::SegmentedTensor);
    }
    let code = proto.data_type.unwrap_or(0);
    let data_type = DataType::from_code(code).ok_or(ErrorKind::UnknownDataType(code))?;
    let dims = proto
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ErrorKind::InvalidDims {
            dims: proto.dims.clone(),
        })?;
    let wire_dims = proto.dims.clone();
    let data = tensor_data(data_type, proto)?;
    Tensor::new(dims, data).map_err(|e| match e {
        TensorShapeError::Overflow { .. } => ErrorKind::InvalidDims { dims: wire_dims },
        TensorShapeError::ElementCount {
            expected, found, ..
        } => ErrorKind::ElementCount {
            dims: wire_dims,
            expected,
            found,
        },
    })
}

/// Where tensor data of some element type may be stored besides `raw_data`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TypedField {
    Float,
    Int32,
    String,
    Int64,
    Double,
    Uint64,
}

impl TypedField {
    /// The protobuf field name.
    fn name(self) -> &'static str {
        match self {
            Self::Float => "float_data",
            Self::Int32 => "int32_data",
            Self::String => "string_data",
            Self::Int64 => "int64_data",
            Self::Double => "double_data",
            Self::Uint64 => "uint64_data",
        }
    }

    /// What the spec allows for this field, for messages.
    fn expected(self) -> &'static str {
        match self {
            Self::Float => "float_data or raw_data",
            Self::Int32 => "int32_data or raw_data",
            Self::String => "string_data",
            Self::Int64 => "int64_data or raw_data",
            Self::Double => "double_data or raw_data",
            Self::Uint64 => "uint64_data or raw_data",
        }
    }
}

/// The typed field for `data_type`, or `None` when its data is not supported.
fn typed_field(data_type: DataType) -> Option<TypedField> {
    match data_type {
        DataType::F32 => Some(TypedField::Float),
        DataType::U8
        | DataType::I8
        | DataType::U16
        | DataType::I16
        | DataType::I32
        | DataType::Bool
        | DataType::F16
        | DataType::Bf16 => Some(TypedField::Int32),
        DataType::I64 => Some(TypedField::Int64),
        DataType::String => Some(TypedField::String),
        DataType::F64 => Some(TypedField::Double),
        DataType::U32 | DataType::U64 => Some(TypedField::Uint64),
        DataType::Complex64
        | DataType::Complex128
        | DataType::F8E4M3Fn
        | DataType::F8E4M3FnUz
        | DataType::F8E5M2
        | DataType::F8E5M2FnUz
        | DataType::U4
        | DataType::I4
        | DataType::F4E2M1 => None,
    }
}

/// Decodes the elements from `raw_data` or the typed field that goes with `data_type`.
fn tensor_data(data_type: DataType, mut proto: TensorProto) -> Result<TensorData, ErrorKind> {
    let field = typed_field(data_type).ok_or(ErrorKind::UnsupportedDataType(data_type))?;
    let populated: Vec<TypedField> = [
        (TypedField::Float, proto.float_data.is_empty()),
        (TypedField::Int32, proto.int32_data.is_empty()),
        (TypedField::String, proto.string_data.is_empty()),
        (TypedField::Int64, proto.int64_data.is_empty()),
        (TypedField::Double, proto.double_data.is_empty()),
        (TypedField::Uint64, proto.uint64_data.is_empty()),
    ]
    .into_iter()
    .filter(|&(_, empty)| !empty)
    .map(|(f, _)| f)
    .collect();
    // An empty `raw_data` carries nothing; treat it like an absent one.
    let raw = proto.raw_data.take().filter(|r| !r.is_empty());

    let misplaced = populated.iter().any(|&f| f != field)
        || (raw.is_some() && (!populated.is_empty() || field == TypedField::String));
    if misplaced {
        let mut found: Vec<&str> = populated.iter().map(|f| f.name()).collect();
        if raw.is_some() {
            found.push("raw_data");
        }
        return Err(ErrorKind::MisplacedData {
            data_type,
            expected: field.expected(),
            found: found.join(" and "),
        });
    }

    match raw {
        Some(raw) => from_raw(data_type, &raw),
        None => from_typed(data_type, proto),
    }
}

/// Decodes little-endian `raw_data`.
fn from_raw(data_type: DataType, raw: &[u8]) -> Result<TensorData, ErrorKind> {
    let elem_size = match data_type {
        DataType::U8 | DataType::I8 | DataType::Bool => 1,
        DataType::U16 | DataType::I16 | DataType::F16 | DataType::Bf16 => 2,
        DataType::F32 | DataType::I32 | DataType::U32 => 4,
        DataType::F64 | DataType::I64 | DataType::U64 => 8,
        _ => return Err(ErrorKind::UnsupportedDataType(data_type)),
    };
    if raw.len() % elem_size != 0 {
        return Err(ErrorKind::RawDataLength {
            len: raw.len(),
            elem_size,
            data_type,
        });
    }
    let data = match data_type {
        DataType::U8 => TensorData::U8(raw.to_vec()),
        DataType::I8 => TensorData::I8(raw.iter().map(|&b| i8::from_le_bytes([b])).collect()),
        DataType::Bool => TensorData::Bool(
            raw.iter()
                .map(|&b| bool_from(i128::from(b)))
                .collect::<Result<_, _>>()?,
        ),
        DataType::U16 => TensorData::U16(le(raw, u16::from_le_bytes)),
        DataType::I16 => TensorData::I16(le(raw, i16::from_le_bytes)),
        DataType::F16 => TensorData::F16(le(raw, u16::from_le_bytes)),
        DataType::Bf16 => TensorData::Bf16(le(raw, u16::from_le_bytes)),
        DataType::F32 => TensorData::F32(le(raw, f32::from_le_bytes)),
        DataType::I32 => TensorData::I32(le(raw, i32::from_le_bytes)),
        DataType::U32 => TensorData::U32(le(raw, u32::from_le_bytes)),
        DataType::F64 => TensorData::F64(le(raw, f64::from_le_bytes)),
        DataType::I64 => TensorData::I64(le(raw, i64::from_le_bytes)),
        DataType::U64 => TensorData::U64(le(raw, u64::from_le_bytes)),
        _ => return Err(ErrorKind::UnsupportedDataType(data_type)),
    };
    Ok(data)
}

/// Splits `raw` (a whole number of `N`-byte elements) and converts each element.
fn le<const N: usize, T>(raw: &[u8], convert: fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|chunk| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(chunk);
            convert(bytes)
        })
        .collect()
}

/// A boolean stored as 0 or 1.
fn bool_from(value: i128) -> Result<bool, ErrorKind> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(ErrorKind::ValueOutOfRange {
            value,
            data_type: DataType::Bool,
        }),
    }
}

/// Narrows each value of a typed field to the element type, refusing values out of range.
fn narrow<S, T>(values: Vec<S>, data_type: DataType) -> Result<Vec<T>, ErrorKind>
where
    S: Copy + Into<i128>,
    T: TryFrom<S>,
{
    values
        .into_iter()
        .map(|v| {
            T::try_from(v).map_err(|_| ErrorKind::ValueOutOfRange {
                value: v.into(),
                data_type,
            })
        })
        .collect()
}

/// Decodes the typed field that goes with `data_type`.
fn from_typed(data_type: DataType, proto: TensorProto) -> Result<TensorData, ErrorKind> {
    let data = match data_type {
        DataType::F32 => TensorData::F32(proto.float_data),
        DataType::F64 => TensorData::F64(proto.double_data),
        DataType::I64 => TensorData::I64(proto.int64_data),
        DataType::String => TensorData::String(proto.string_data),
        DataType::I32 => TensorData::I32(proto.int32_data),
        DataType::I8 => TensorData::I8(narrow(proto.int32_data, data_type)?),
        DataType::U8 => TensorData::U8(narrow(proto.int32_data, data_type)?),
        DataType::I16 => TensorData::I16(narrow(proto.int32_data, data_type)?),
        DataType::U16 => TensorData::U16(narrow(proto.int32_data, data_type)?),
        DataType::F16 => TensorData::F16(narrow(proto.int32_data, data_type)?),
        DataType::Bf16 => TensorData::Bf16(narrow(proto.int32_data, data_type)?),
        DataType::Bool => TensorData::Bool(
            proto
                .int32_data
                .into_iter()
                .map(|v| bool_from(i128::from(v)))
                .collect::<Result<_, _>>()?,
        ),
        DataType::U32 => TensorData::U32(narrow(proto.uint64_data, data_type)?),
        DataType::U64 => TensorData::U64(proto.uint64_data),
        _ => return Err(ErrorKind::UnsupportedDataType(data_type)),
    };
    Ok(data)
}
