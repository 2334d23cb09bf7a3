//! Trained weights go back into the original ONNX model under the same names.

use mite_ir::{GlobalData, TensorData as IrData};
use mite_onnx::import::{import_model, ImportOptions};
use mite_onnx::{
    export_weights, DataType, ExportError, Graph, Node, OnnxModel, Tensor, TensorData, ValueInfo,
};

fn qdq_model() -> OnnxModel {
    let graph = Graph::new("g")
        .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 1, 3, 3]))
        .with_initializer("s", Tensor::scalar_f32(0.5))
        .with_initializer("z", Tensor::new(vec![], TensorData::I8(vec![0])).unwrap())
        .with_initializer(
            "conv.weight",
            Tensor::new(vec![2, 1, 1, 1], TensorData::I8(vec![1, 2])).unwrap(),
        )
        .with_initializer("ws", Tensor::vector(TensorData::F32(vec![0.1, 0.2])))
        .with_initializer("conv.bias", Tensor::vector(TensorData::I32(vec![5, -5])))
        .with_initializer("bs", Tensor::vector(TensorData::F32(vec![0.05, 0.1])))
        .with_node(Node::new("QuantizeLinear", ["x", "s", "z"], ["xq"]).with_name("q"))
        .with_node(Node::new("DequantizeLinear", ["xq", "s", "z"], ["xf"]).with_name("dq"))
        .with_node(
            Node::new("DequantizeLinear", ["conv.weight", "ws"], ["wf"])
                .with_name("dqw")
                .with_attr("axis", 0i64),
        )
        .with_node(
            Node::new("DequantizeLinear", ["conv.bias", "bs"], ["bf"])
                .with_name("dqb")
                .with_attr("axis", 0i64),
        )
        .with_node(Node::new("Conv", ["xf", "wf", "bf"], ["c"]).with_name("conv"))
        .with_node(Node::new("QuantizeLinear", ["c", "s", "z"], ["cq"]).with_name("qo"))
        .with_node(Node::new("DequantizeLinear", ["cq", "s", "z"], ["y"]).with_name("dqo"))
        .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 2, 3, 3]));
    OnnxModel::new(graph)
}

fn set(module: &mut mite_ir::Module, name: &str, data: IrData) {
    module.globals.get_mut(name).unwrap().data = GlobalData::Inline(data);
}

#[test]
fn changed_parameters_round_trip_and_nothing_else_changes() {
    let original = qdq_model();
    let bytes = original.to_bytes();
    let mut module = import_model(&original, &ImportOptions::default()).unwrap();
    set(&mut module, "conv.weight", IrData::I8(vec![-7, 9]));
    set(&mut module, "conv.bias", IrData::I32(vec![100, -100]));
    let exported = export_weights(&original, &module).unwrap();
    let back = mite_onnx::from_bytes(&exported.to_bytes(), "exported.onnx").unwrap();
    let inits = &back.graph.initializers;
    assert_eq!(inits["conv.weight"].data(), &TensorData::I8(vec![-7, 9]));
    assert_eq!(inits["conv.weight"].dims(), &[2, 1, 1, 1]);
    assert_eq!(inits["conv.bias"].data(), &TensorData::I32(vec![100, -100]));
    // Restoring the two initializers gives the original bytes.
    let mut restored = back.clone();
    for name in ["conv.weight", "conv.bias"] {
        restored
            .graph
            .initializers
            .insert(name.to_owned(), original.graph.initializers[name].clone());
    }
    assert_eq!(restored.to_bytes(), bytes);
    // Unchanged parameters export to identical bytes.
    let module = import_model(&original, &ImportOptions::default()).unwrap();
    assert_eq!(
        export_weights(&original, &module).unwrap().to_bytes(),
        bytes
    );
}

#[test]
fn mismatches_are_refused() {
    let original = qdq_model();
    let mut module = import_model(&original, &ImportOptions::default()).unwrap();
    set(&mut module, "conv.weight", IrData::I8(vec![1, 2, 3]));
    assert_eq!(
        export_weights(&original, &module).unwrap_err(),
        ExportError::ElementCount {
            name: "conv.weight".into(),
            param: 3,
            initializer: 2
        }
    );
    set(&mut module, "conv.weight", IrData::F32(vec![1.0, 2.0]));
    let e = export_weights(&original, &module).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter @conv.weight holds f32 elements but initializer `conv.weight` is INT8"
    );
    let mut other = original.clone();
    other.graph.initializers.shift_remove("conv.bias");
    let module = import_model(&original, &ImportOptions::default()).unwrap();
    assert_eq!(
        export_weights(&other, &module).unwrap_err(),
        ExportError::MissingInitializer("conv.bias".into())
    );
}

#[test]
fn shared_models_round_trip() {
    let Some(path) =
        mite_test_support::shared_file("shared_models_round_trip", "models/mcunet-5fps.onnx")
    else {
        return;
    };
    let original = mite_onnx::load(&path).unwrap();
    let mut module = import_model(&original, &ImportOptions::default()).unwrap();
    let before = original.to_bytes();
    assert_eq!(
        export_weights(&original, &module).unwrap().to_bytes(),
        before
    );
    let name = "classifier.weight";
    let Some(IrData::I8(mut w)) = module.data(name).cloned() else {
        panic!("{name} is not int8");
    };
    w[0] = w[0].wrapping_add(1);
    set(&mut module, name, IrData::I8(w.clone()));
    let exported = export_weights(&original, &module).unwrap();
    let back = mite_onnx::from_bytes(&exported.to_bytes(), "exported.onnx").unwrap();
    assert_eq!(back.graph.initializers[name].data(), &TensorData::I8(w));
    for (k, t) in &original.graph.initializers {
        if k != name {
            assert_eq!(&back.graph.initializers[k], t, "{k}");
        }
    }
    assert_eq!(back.graph.nodes, original.graph.nodes);
}

#[test]
fn folded_batch_norm_becomes_identity() {
    let ones = |n: usize| Tensor::from_f32(&[n], vec![1.0; n]).unwrap();
    let graph = Graph::new("g")
        .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 1, 2, 2]))
        .with_initializer(
            "w",
            Tensor::from_f32(&[2, 1, 1, 1], vec![1.0, 2.0]).unwrap(),
        )
        .with_initializer("scale", Tensor::from_f32(&[2], vec![4.0, 6.0]).unwrap())
        .with_initializer("beta", ones(2))
        .with_initializer("mean", ones(2))
        .with_initializer("var", ones(2))
        .with_node(Node::new("Conv", ["x", "w"], ["c"]).with_name("conv"))
        .with_node(
            Node::new(
                "BatchNormalization",
                ["c", "scale", "beta", "mean", "var"],
                ["y"],
            )
            .with_name("bn")
            .with_attr("epsilon", 0.5f32),
        )
        .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 2, 2, 2]));
    let original = OnnxModel::new(graph);
    let module = import_model(&original, &ImportOptions::default()).unwrap();
    let exported = export_weights(&original, &module).unwrap();
    let inits = &exported.graph.initializers;
    assert_eq!(inits["scale"].data(), &TensorData::F32(vec![1.0, 1.0]));
    assert_eq!(inits["mean"].data(), &TensorData::F32(vec![0.0, 0.0]));
    assert_eq!(inits["var"].data(), &TensorData::F32(vec![0.5, 0.5]));
    assert_eq!(inits["beta"].data(), module_data(&module, "beta"));
    assert_eq!(inits["w"].data(), module_data(&module, "w"));
}

fn module_data(module: &mite_ir::Module, name: &str) -> &'static TensorData {
    let Some(IrData::F32(v)) = module.data(name) else {
        panic!("{name}");
    };
    Box::leak(Box::new(TensorData::F32(v.clone())))
}
