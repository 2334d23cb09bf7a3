//! Decoding of hand-built protobuf messages: typed data fields and the error cases.

use prost::Message;

use crate::error::ErrorKind;
use crate::model::{DataType, TensorData};
use crate::proto::{
    AttributeProto, AttributeType, DataLocation, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorDataType, TensorProto,
};

const FILE: &str = "unit.onnx";

/// A model around `graph`, encoded.
fn model_bytes(graph: GraphProto) -> Vec<u8> {
    ModelProto {
        ir_version: Some(7),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        ..ModelProto::default()
    }
    .encode_to_vec()
}

/// A model whose only content is initializer `t`, encoded.
fn with_initializer(t: TensorProto) -> Vec<u8> {
    model_bytes(GraphProto {
        initializer: vec![t],
        ..GraphProto::default()
    })
}

/// A tensor called `w` of `data_type` and `dims`, without data.
fn tensor(data_type: TensorDataType, dims: &[i64]) -> TensorProto {
    TensorProto {
        name: Some("w".to_owned()),
        data_type: Some(data_type as i32),
        dims: dims.to_vec(),
        ..TensorProto::default()
    }
}

/// Decodes a model with initializer `t` and returns that initializer's data.
fn decode_initializer(t: TensorProto) -> TensorData {
    let model = crate::from_bytes(&with_initializer(t), FILE).expect("decodes");
    model.graph.initializers["w"].data().clone()
}

/// Decodes a model with initializer `t`, expecting an error; returns it as text with its kind.
fn initializer_error(t: TensorProto) -> (String, ErrorKind) {
    let err = crate::from_bytes(&with_initializer(t), FILE).expect_err("fails");
    (err.to_string(), err.kind)
}

#[test]
fn typed_fields_decode() {
    let mut t = tensor(TensorDataType::Float, &[2]);
    t.float_data = vec![1.5, -2.0];
    assert_eq!(decode_initializer(t), TensorData::F32(vec![1.5, -2.0]));

    let mut t = tensor(TensorDataType::Int8, &[3]);
    t.int32_data = vec![-128, 0, 127];
    assert_eq!(decode_initializer(t), TensorData::I8(vec![-128, 0, 127]));

    let mut t = tensor(TensorDataType::Uint8, &[1]);
    t.int32_data = vec![255];
    assert_eq!(decode_initializer(t), TensorData::U8(vec![255]));

    let mut t = tensor(TensorDataType::Bool, &[2]);
    t.int32_data = vec![1, 0];
    assert_eq!(decode_initializer(t), TensorData::Bool(vec![true, false]));

    let mut t = tensor(TensorDataType::Int32, &[]);
    t.int32_data = vec![-7];
    assert_eq!(decode_initializer(t), TensorData::I32(vec![-7]));

    let mut t = tensor(TensorDataType::Int64, &[1, 1]);
    t.int64_data = vec![i64::MIN];
    assert_eq!(decode_initializer(t), TensorData::I64(vec![i64::MIN]));

    let mut t = tensor(TensorDataType::Double, &[1]);
    t.double_data = vec![0.25];
    assert_eq!(decode_initializer(t), TensorData::F64(vec![0.25]));

    let mut t = tensor(TensorDataType::Uint32, &[1]);
    t.uint64_data = vec![u64::from(u32::MAX)];
    assert_eq!(decode_initializer(t), TensorData::U32(vec![u32::MAX]));

    let mut t = tensor(TensorDataType::Float16, &[1]);
    t.int32_data = vec![0x3c00];
    assert_eq!(decode_initializer(t), TensorData::F16(vec![0x3c00]));

    let mut t = tensor(TensorDataType::String, &[1]);
    t.string_data = vec![b"hi".to_vec()];
    assert_eq!(
        decode_initializer(t),
        TensorData::String(vec![b"hi".to_vec()])
    );
}

#[test]
fn raw_data_is_little_endian() {
    let mut t = tensor(TensorDataType::Int32, &[2]);
    t.raw_data = Some(vec![1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
    assert_eq!(decode_initializer(t), TensorData::I32(vec![1, -2]));

    let mut t = tensor(TensorDataType::Float, &[1]);
    t.raw_data = Some(1.5f32.to_le_bytes().to_vec());
    assert_eq!(decode_initializer(t), TensorData::F32(vec![1.5]));
}

#[test]
fn element_count_mismatch_names_tensor_and_counts() {
    let mut t = tensor(TensorDataType::Float, &[2, 3]);
    t.float_data = vec![0.0; 5];
    let (message, kind) = initializer_error(t);
    assert!(matches!(
        kind,
        ErrorKind::ElementCount {
            expected: 6,
            found: 5,
            ..
        }
    ));
    assert_eq!(
        message,
        "unit.onnx: initializer `w` (#0): dims [2, 3] imply 6 elements but the data holds 5"
    );
}

#[test]
fn external_data_is_refused() {
    let mut t = tensor(TensorDataType::Float, &[4]);
    t.data_location = Some(DataLocation::External as i32);
    t.external_data = vec![StringStringEntryProto {
        key: Some("location".to_owned()),
        value: Some("weights.bin".to_owned()),
    }];
    let (message, kind) = initializer_error(t);
    assert!(matches!(kind, ErrorKind::ExternalData { .. }));
    assert!(
        message.starts_with("unit.onnx: initializer `w`"),
        "{message}"
    );
    assert!(message.contains("weights.bin"), "{message}");
}

#[test]
fn bad_tensors_are_refused() {
    let (message, kind) = initializer_error(tensor(TensorDataType::Float, &[-1]));
    assert!(matches!(kind, ErrorKind::InvalidDims { .. }), "{message}");

    let (_, kind) = initializer_error(tensor(TensorDataType::Float, &[i64::MAX, i64::MAX]));
    assert!(matches!(kind, ErrorKind::InvalidDims { .. }));

    let mut t = tensor(TensorDataType::Float, &[1]);
    t.data_type = Some(99);
    let (message, kind) = initializer_error(t);
    assert!(matches!(kind, ErrorKind::UnknownDataType(99)));
    assert!(message.contains("unknown data type code 99"), "{message}");

    let (_, kind) = initializer_error(tensor(TensorDataType::Undefined, &[]));
    assert!(matches!(kind, ErrorKind::UnknownDataType(0)));

    let (_, kind) = initializer_error(tensor(TensorDataType::Complex64, &[1]));
    assert!(matches!(
        kind,
        ErrorKind::UnsupportedDataType(DataType::Complex64)
    ));

    let mut t = tensor(TensorDataType::Int8, &[1]);
    t.int32_data = vec![300];
    let (message, kind) = initializer_error(t);
    assert!(matches!(
        kind,
        ErrorKind::ValueOutOfRange { value: 300, .. }
    ));
    assert!(
        message.contains("300") && message.contains("INT8"),
        "{message}"
    );

    let mut t = tensor(TensorDataType::Float, &[1]);
    t.raw_data = Some(vec![0; 4]);
    t.float_data = vec![1.0];
    let (message, kind) = initializer_error(t);
    assert!(matches!(kind, ErrorKind::MisplacedData { .. }), "{message}");

    let mut t = tensor(TensorDataType::Float, &[1]);
    t.int64_data = vec![1];
    let (message, kind) = initializer_error(t);
    assert!(matches!(kind, ErrorKind::MisplacedData { .. }));
    assert!(message.contains("int64_data"), "{message}");

    let mut t = tensor(TensorDataType::Float, &[1]);
    t.raw_data = Some(vec![0; 3]);
    let (_, kind) = initializer_error(t);
    assert!(matches!(kind, ErrorKind::RawDataLength { len: 3, .. }));

    let mut t = tensor(TensorDataType::Bool, &[1]);
    t.raw_data = Some(vec![2]);
    let (_, kind) = initializer_error(t);
    assert!(matches!(kind, ErrorKind::ValueOutOfRange { value: 2, .. }));
}

#[test]
fn duplicate_initializers_are_refused() {
    let mut t = tensor(TensorDataType::Float, &[1]);
    t.float_data = vec![1.0];
    let bytes = model_bytes(GraphProto {
        initializer: vec![t.clone(), t],
        ..GraphProto::default()
    });
    let err = crate::from_bytes(&bytes, FILE).expect_err("duplicate");
    assert!(matches!(err.kind, ErrorKind::Duplicate { .. }));
    assert_eq!(
        err.to_string(),
        "unit.onnx: graph: duplicate initializer `w`"
    );
}

/// A node named `n` of `op_type` with the single attribute `attribute`.
fn node_with(op_type: &str, attribute: AttributeProto) -> Vec<u8> {
    model_bytes(GraphProto {
        node: vec![NodeProto {
            name: Some("n".to_owned()),
            op_type: Some(op_type.to_owned()),
            attribute: vec![attribute],
            ..NodeProto::default()
        }],
        ..GraphProto::default()
    })
}

#[test]
fn subgraph_attributes_are_refused_by_name() {
    let attribute = AttributeProto {
        name: Some("then_branch".to_owned()),
        r#type: Some(AttributeType::Graph as i32),
        g: Some(Vec::new()),
        ..AttributeProto::default()
    };
    let err = crate::from_bytes(&node_with("If", attribute), FILE).expect_err("subgraph");
    assert!(matches!(err.kind, ErrorKind::UnsupportedAttribute { .. }));
    assert_eq!(
        err.to_string(),
        "unit.onnx: node `n` (If) attribute `then_branch`: GRAPH (subgraph) attributes are not \
         supported"
    );
}

#[test]
fn malformed_attributes_are_refused() {
    let attribute = AttributeProto {
        name: Some("axis".to_owned()),
        r#type: Some(42),
        ..AttributeProto::default()
    };
    let err = crate::from_bytes(&node_with("Flatten", attribute), FILE).expect_err("type");
    assert!(matches!(err.kind, ErrorKind::UnknownAttributeType(42)));

    let attribute = AttributeProto {
        name: Some("mode".to_owned()),
        r#type: Some(AttributeType::String as i32),
        s: Some(vec![0xff, 0xfe]),
        ..AttributeProto::default()
    };
    let err = crate::from_bytes(&node_with("Pad", attribute), FILE).expect_err("utf-8");
    assert!(matches!(err.kind, ErrorKind::InvalidUtf8));

    let attribute = AttributeProto {
        name: Some("value".to_owned()),
        r#type: Some(AttributeType::Tensor as i32),
        ..AttributeProto::default()
    };
    let err = crate::from_bytes(&node_with("Constant", attribute), FILE).expect_err("tensor");
    assert!(matches!(err.kind, ErrorKind::MissingAttributeValue { .. }));

    let attribute = AttributeProto {
        name: Some("alpha".to_owned()),
        ref_attr_name: Some("outer".to_owned()),
        ..AttributeProto::default()
    };
    let err = crate::from_bytes(&node_with("LeakyRelu", attribute), FILE).expect_err("ref");
    assert!(matches!(err.kind, ErrorKind::AttributeReference(_)));
}

#[test]
fn non_standard_domains_are_kept() {
    let bytes = model_bytes(GraphProto {
        node: vec![NodeProto {
            op_type: Some("QLinearConv".to_owned()),
            domain: Some("com.microsoft".to_owned()),
            ..NodeProto::default()
        }],
        ..GraphProto::default()
    });
    let model = crate::from_bytes(&bytes, FILE).expect("decodes");
    assert_eq!(model.graph.nodes[0].domain, "com.microsoft");
    assert!(!model.graph.nodes[0].is_standard_domain());
}

#[test]
fn sparse_initializers_are_refused() {
    let bytes = model_bytes(GraphProto {
        sparse_initializer: vec![Vec::new()],
        ..GraphProto::default()
    });
    let err = crate::from_bytes(&bytes, FILE).expect_err("sparse");
    assert!(matches!(
        err.kind,
        ErrorKind::SparseInitializer { count: 1 }
    ));
}
