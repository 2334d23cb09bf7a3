//! Encoding and decoding built models.

use mite_onnx::{
    AttrValue, DataType, Dim, ErrorKind, Graph, Node, OnnxModel, OpsetImport, Tensor, TensorData,
    ValueInfo,
};

/// A tensor of `dims` holding `data`; panics on a count mismatch (test helper).
fn tensor(dims: &[usize], data: TensorData) -> Tensor {
    Tensor::new(dims.to_vec(), data).expect("consistent test tensor")
}

/// A model that uses every attribute kind, every supported element type and every kind of dim.
fn everything_model() -> OnnxModel {
    let graph = Graph::new("everything")
        .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 3, 4, 4]))
        .with_input(ValueInfo {
            name: "y".into(),
            elem_type: DataType::I8,
            shape: Some(vec![
                Dim::Symbolic("batch".into()),
                Dim::Unknown,
                Dim::Fixed(0),
            ]),
        })
        .with_input(ValueInfo {
            name: "z".into(),
            elem_type: DataType::F16,
            shape: None,
        })
        .with_initializer(
            "f32",
            tensor(&[2, 2], TensorData::F32(vec![1.0, -2.5, 0.0, 1e-30])),
        )
        .with_initializer(
            "f64",
            tensor(&[1], TensorData::F64(vec![std::f64::consts::PI])),
        )
        .with_initializer("f16", tensor(&[2], TensorData::F16(vec![0x3c00, 0xffff])))
        .with_initializer("bf16", tensor(&[1], TensorData::Bf16(vec![0x3f80])))
        .with_initializer("i8", tensor(&[3], TensorData::I8(vec![-128, 0, 127])))
        .with_initializer("u8", tensor(&[], TensorData::U8(vec![255])))
        .with_initializer(
            "i16",
            tensor(&[2], TensorData::I16(vec![i16::MIN, i16::MAX])),
        )
        .with_initializer("u16", tensor(&[1], TensorData::U16(vec![u16::MAX])))
        .with_initializer("i32", tensor(&[2], TensorData::I32(vec![i32::MIN, 7])))
        .with_initializer("u32", tensor(&[1], TensorData::U32(vec![u32::MAX])))
        .with_initializer("i64", tensor(&[2], TensorData::I64(vec![i64::MIN, -1])))
        .with_initializer("u64", tensor(&[1], TensorData::U64(vec![u64::MAX])))
        .with_initializer("bool", tensor(&[2], TensorData::Bool(vec![true, false])))
        .with_initializer(
            "strings",
            tensor(&[2], TensorData::String(vec![b"a".to_vec(), vec![0xff, 0]])),
        )
        .with_initializer("empty", tensor(&[0, 5], TensorData::F32(Vec::new())))
        .with_node(
            Node::new("Conv", ["x", "f32", ""], ["c"])
                .with_name("conv")
                .with_attr("group", 1i64)
                .with_attr("pads", vec![1i64, 1, 1, 1])
                .with_attr("alpha", 0.5f32)
                .with_attr("auto_pad", "NOTSET")
                .with_attr("scales", vec![0.25f32, 4.0])
                .with_attr("modes", vec!["a".to_owned(), String::new()])
                .with_attr("value", Tensor::scalar_f32(3.0))
                .with_attr(
                    "values",
                    vec![
                        Tensor::scalar_f32(1.0),
                        tensor(&[1], TensorData::I64(vec![2])),
                    ],
                )
                .with_attr("empty_ints", Vec::<i64>::new()),
        )
        .with_node(
            Node::new("QLinearConv", ["c"], ["d", ""])
                .with_name("contrib")
                .with_domain("com.microsoft"),
        )
        .with_node(Node::new("Relu", ["d"], ["out"]))
        .with_output(ValueInfo::tensor("out", DataType::F32, &[1, 8, 4, 4]));
    let mut model = OnnxModel::new(graph);
    model.opsets.push(OpsetImport::new("com.microsoft", 1));
    model.metadata.push(("key".into(), "value".into()));
    model
        .graph
        .value_info
        .push(ValueInfo::tensor("c", DataType::F32, &[1, 8, 4, 4]));
    model
}

#[test]
fn decode_encode_decode_round_trip() {
    let model = everything_model();
    let bytes = model.to_bytes();
    let decoded = mite_onnx::from_bytes(&bytes, "everything.onnx").expect("decode");
    assert_eq!(decoded, model);
    // Encoding is deterministic, so a second pass gives the same bytes.
    assert_eq!(decoded.to_bytes(), bytes);
}

#[test]
fn save_and_load() {
    let model = everything_model();
    let path = std::env::temp_dir().join(format!("mite-onnx-{}-save.onnx", std::process::id()));
    model.save(&path).expect("save");
    let loaded = mite_onnx::load(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded.expect("load"), model);
}

#[test]
fn accessors() {
    let model = everything_model();
    assert_eq!(model.opset_version("ai.onnx"), Some(13));
    assert_eq!(model.opset_version("com.microsoft"), Some(1));
    assert_eq!(model.opset_version("ai.onnx.ml"), None);

    let conv = model.graph.node("conv").expect("conv node");
    assert!(conv.is_standard_domain());
    assert_eq!(conv.attr("group").and_then(AttrValue::as_int), Some(1));
    assert_eq!(
        conv.attr("pads").and_then(AttrValue::as_ints),
        Some(&[1i64, 1, 1, 1][..])
    );
    assert_eq!(
        conv.attr("auto_pad").and_then(AttrValue::as_str),
        Some("NOTSET")
    );
    assert_eq!(conv.inputs[2], "");
    assert!(!model
        .graph
        .node("contrib")
        .expect("contrib")
        .is_standard_domain());

    let names: Vec<&str> = model
        .graph
        .runtime_inputs()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["x", "y", "z"]);
    assert_eq!(model.graph.inputs[0].static_shape(), Some(vec![1, 3, 4, 4]));
    assert_eq!(model.graph.inputs[1].static_shape(), None);

    let w = &model.graph.initializers["f32"];
    assert_eq!(w.dims(), [2, 2]);
    assert_eq!(w.data().as_f32(), Some(&[1.0, -2.5, 0.0, 1e-30][..]));
    assert_eq!(model.graph.initializers["u8"].dims(), [0usize; 0]);
}

#[test]
fn tensor_new_checks_element_count() {
    assert!(Tensor::new(vec![2, 3], TensorData::I8(vec![0; 5])).is_err());
    assert!(Tensor::new(vec![usize::MAX, 2], TensorData::I8(Vec::new())).is_err());
    assert!(Tensor::new(vec![], TensorData::I8(vec![1])).is_ok());
}

#[test]
fn data_type_codes_round_trip() {
    for t in DataType::ALL {
        assert_eq!(DataType::from_code(t.code()), Some(t));
    }
    assert_eq!(DataType::F32.code(), 1);
    assert_eq!(DataType::I8.code(), 3);
    assert_eq!(DataType::F4E2M1.code(), 23);
    assert_eq!(DataType::from_code(0), None);
    assert_eq!(DataType::from_code(24), None);
    assert_eq!(DataType::from_code(-1), None);
}

#[test]
fn errors_name_the_file() {
    let err = mite_onnx::load("/nonexistent/dir/model.onnx").expect_err("missing file");
    assert!(matches!(err.kind, ErrorKind::Io(_)));
    assert!(
        err.to_string().contains("/nonexistent/dir/model.onnx"),
        "{err}"
    );

    let bytes = everything_model().to_bytes();
    let err = mite_onnx::from_bytes(&bytes[..bytes.len() / 2], "half.onnx").expect_err("truncated");
    assert!(matches!(err.kind, ErrorKind::Protobuf(_)));
    assert!(
        err.to_string().starts_with("half.onnx: malformed protobuf"),
        "{err}"
    );

    let err = mite_onnx::from_bytes(&[], "empty.onnx").expect_err("no graph");
    assert!(matches!(err.kind, ErrorKind::MissingGraph));
    assert_eq!(err.to_string(), "empty.onnx: the model has no graph");
}
