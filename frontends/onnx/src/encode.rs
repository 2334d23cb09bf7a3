//! The owned model to protobuf messages.
//!
//! Numeric tensor data is written to `raw_data` (little-endian), strings to `string_data`.

use crate::model::{AttrValue, Dim, Graph, Node, OnnxModel, Tensor, TensorData, ValueInfo};
use crate::proto::{
    tensor_shape_proto::{DimValue, Dimension},
    type_proto, AttributeProto, AttributeType, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// `Some(s)` unless `s` is empty, so that empty optional strings are not written.
fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Converts a model.
pub(crate) fn model(model: &OnnxModel) -> ModelProto {
    ModelProto {
        ir_version: Some(model.ir_version),
        producer_name: non_empty(&model.producer_name),
        producer_version: non_empty(&model.producer_version),
        graph: Some(graph(&model.graph)),
        opset_import: model
            .opsets
            .iter()
            .map(|o| OperatorSetIdProto {
                domain: Some(o.domain.clone()),
                version: Some(o.version),
            })
            .collect(),
        metadata_props: model
            .metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: Some(key.clone()),
                value: Some(value.clone()),
            })
            .collect(),
        ..ModelProto::default()
    }
}

/// Converts a graph.
fn graph(graph: &Graph) -> GraphProto {
    GraphProto {
        node: graph.nodes.iter().map(node).collect(),
        name: non_empty(&graph.name),
        initializer: graph
            .initializers
            .iter()
            .map(|(name, t)| tensor(t, name))
            .collect(),
        input: graph.inputs.iter().map(value_info).collect(),
        output: graph.outputs.iter().map(value_info).collect(),
        value_info: graph.value_info.iter().map(value_info).collect(),
        ..GraphProto::default()
    }
}

/// Converts a node.
fn node(node: &Node) -> NodeProto {
    NodeProto {
        input: node.inputs.clone(),
        output: node.outputs.clone(),
        name: non_empty(&node.name),
        op_type: Some(node.op_type.clone()),
        attribute: node
            .attributes
            .iter()
            .map(|(name, value)| attribute(name, value))
            .collect(),
        domain: non_empty(&node.domain),
        ..NodeProto::default()
    }
}

/// Converts an attribute.
fn attribute(name: &str, value: &AttrValue) -> AttributeProto {
    let mut proto = AttributeProto {
        name: Some(name.to_owned()),
        ..AttributeProto::default()
    };
    let kind = match value {
        AttrValue::Float(v) => {
            proto.f = Some(*v);
            AttributeType::Float
        }
        AttrValue::Int(v) => {
            proto.i = Some(*v);
            AttributeType::Int
        }
        AttrValue::String(v) => {
            proto.s = Some(v.clone().into_bytes());
            AttributeType::String
        }
        AttrValue::Tensor(t) => {
            proto.t = Some(tensor(t, ""));
            AttributeType::Tensor
        }
        AttrValue::Floats(v) => {
            proto.floats = v.clone();
            AttributeType::Floats
        }
        AttrValue::Ints(v) => {
            proto.ints = v.clone();
            AttributeType::Ints
        }
        AttrValue::Strings(v) => {
            proto.strings = v.iter().map(|s| s.clone().into_bytes()).collect();
            AttributeType::Strings
        }
        AttrValue::Tensors(v) => {
            proto.tensors = v.iter().map(|t| tensor(t, "")).collect();
            AttributeType::Tensors
        }
    };
    proto.r#type = Some(kind as i32);
    proto
}

/// Converts a tensor called `name` (empty for none).
pub(crate) fn tensor(tensor: &Tensor, name: &str) -> TensorProto {
    let mut proto = TensorProto {
        dims: tensor.dims().iter().map(|&d| dim_to_i64(d)).collect(),
        data_type: Some(tensor.data_type().code()),
        name: non_empty(name),
        ..TensorProto::default()
    };
    match tensor.data() {
        TensorData::String(v) => proto.string_data = v.clone(),
        data => proto.raw_data = Some(raw_bytes(data)),
    }
    proto
}

/// A dimension as written on the wire; saturates above `i64::MAX`, which no real tensor has.
fn dim_to_i64(d: usize) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX)
}

/// The little-endian bytes of numeric data; empty for strings.
fn raw_bytes(data: &TensorData) -> Vec<u8> {
    match data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F16(v) | TensorData::Bf16(v) | TensorData::U16(v) => {
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        }
        TensorData::I8(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::U64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::String(_) => Vec::new(),
    }
}

/// Converts a value declaration.
fn value_info(info: &ValueInfo) -> ValueInfoProto {
    let shape = info.shape.as_ref().map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: match d {
                    Dim::Fixed(n) => Some(DimValue::DimValue(dim_to_i64(*n))),
                    Dim::Symbolic(name) => Some(DimValue::DimParam(name.clone())),
                    Dim::Unknown => None,
                },
                denotation: None,
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(info.name.clone()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::Tensor(type_proto::Tensor {
                elem_type: Some(info.elem_type.code()),
                shape,
            })),
            denotation: None,
        }),
        doc_string: None,
    }
}
