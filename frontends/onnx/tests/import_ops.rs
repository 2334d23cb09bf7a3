//! Import of each supported operator from small hand-built graphs, and every refusal message.

use mite_ir::{Attr, GlobalKind, Module, Op, OpData, TensorData as IrData};
use mite_onnx::import::{import_model, ImportOptions};
use mite_onnx::{
    DataType, Dim, Graph, Node, OnnxModel, OpsetImport, Tensor, TensorData, ValueInfo,
};

fn f32_info(name: &str, dims: &[usize]) -> ValueInfo {
    ValueInfo::tensor(name, DataType::F32, dims)
}

fn model(graph: Graph, opset: i64) -> OnnxModel {
    let mut m = OnnxModel::new(graph);
    m.opsets = vec![OpsetImport::new("", opset)];
    m
}

fn import_at(graph: Graph, opset: i64) -> Module {
    import_model(&model(graph, opset), &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn import(graph: Graph) -> Module {
    import_at(graph, 13)
}

fn error_at(graph: Graph, opset: i64) -> String {
    match import_model(&model(graph, opset), &ImportOptions::default()) {
        Ok(_) => panic!("the import should fail"),
        Err(e) => e.to_string(),
    }
}

fn error(graph: Graph) -> String {
    error_at(graph, 13)
}

fn ops(module: &Module) -> Vec<OpData> {
    let f = &module.functions[0];
    f.layout().iter().map(|&id| f.op(id).clone()).collect()
}

fn names(module: &Module) -> Vec<String> {
    ops(module).iter().map(|o| o.op.name().to_owned()).collect()
}

fn find(module: &Module, name: &str) -> OpData {
    ops(module)
        .into_iter()
        .find(|o| o.op.name() == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", names(module)))
}

fn attr(op: &OpData, name: &str) -> Attr {
    op.op
        .attrs()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no attribute {name}"))
}

fn output_shape(module: &Module) -> Vec<usize> {
    let f = &module.functions[0];
    f.ty(f.outputs()[0]).shape.to_vec()
}

fn ones(dims: &[usize]) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_f32(dims, vec![1.0; n]).unwrap()
}

fn i64s(v: &[i64]) -> Tensor {
    Tensor::vector(TensorData::I64(v.to_vec()))
}

/// `x [1,1,5,5] → Conv(w [2,1,2,2]) → y` with extra attributes.
fn conv_graph(attrs: &[(&str, mite_onnx::AttrValue)], out: &[usize]) -> Graph {
    let mut node = Node::new("Conv", ["x", "w"], ["y"]).with_name("conv");
    for (k, v) in attrs {
        node = node.with_attr(*k, v.clone());
    }
    Graph::new("g")
        .with_input(f32_info("x", &[1, 1, 5, 5]))
        .with_initializer("w", ones(&[2, 1, 2, 2]))
        .with_node(node)
        .with_output(f32_info("y", out))
}

#[test]
fn conv_auto_pad_becomes_explicit_pads() {
    let strides = ("strides", vec![2i64, 2].into());
    for (mode, pads) in [
        ("SAME_UPPER", vec![0i64, 0, 1, 1]),
        ("SAME_LOWER", vec![1, 1, 0, 0]),
    ] {
        let m = import(conv_graph(
            &[strides.clone(), ("auto_pad", mode.into())],
            &[1, 2, 3, 3],
        ));
        let conv = find(&m, "nn.conv2d");
        assert_eq!(attr(&conv, "pads"), Attr::Ints(pads), "{mode}");
        assert_eq!(conv.loc.name.as_deref(), Some("conv"));
    }
    let m = import(conv_graph(
        &[strides, ("auto_pad", "VALID".into())],
        &[1, 2, 2, 2],
    ));
    assert_eq!(attr(&find(&m, "nn.conv2d"), "pads"), Attr::Ints(vec![0; 4]));
    // The weight is a trainable parameter of the initializer's name.
    assert!(matches!(
        m.globals["w"].kind,
        GlobalKind::Param {
            trainable: mite_ir::Trainable::All
        }
    ));
}

#[test]
fn conv_dilations_pads_and_groups() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2, 5, 5]))
        .with_initializer("w", ones(&[2, 1, 3, 3]))
        .with_initializer("b", ones(&[2]))
        .with_node(
            Node::new("Conv", ["x", "w", "b"], ["y"])
                .with_name("conv")
                .with_attr("dilations", vec![2i64, 2])
                .with_attr("pads", vec![2i64, 2, 2, 2])
                .with_attr("group", 2i64)
                .with_attr("kernel_shape", vec![3i64, 3]),
        )
        .with_output(f32_info("y", &[1, 2, 5, 5]));
    let m = import(g);
    let conv = find(&m, "nn.conv2d");
    assert_eq!(attr(&conv, "dilations"), Attr::Ints(vec![2, 2]));
    assert_eq!(attr(&conv, "groups"), Attr::Int(2));
    assert_eq!(conv.operands.len(), 3);
    assert!(matches!(m.globals["b"].kind, GlobalKind::Param { .. }));
}

#[test]
fn conv_refusals_name_node_attribute_and_value() {
    let e = error(conv_graph(&[("auto_pad", "BOGUS".into())], &[1, 2, 4, 4]));
    assert!(
        e.contains("Conv (node conv): attribute `auto_pad` = \"BOGUS\" is not supported"),
        "{e}"
    );
    let e = error(conv_graph(&[("foo", 3i64.into())], &[1, 2, 4, 4]));
    assert!(
        e.contains("Conv (node conv): attribute `foo` = 3 is not supported"),
        "{e}"
    );
    let e = error(conv_graph(
        &[("kernel_shape", vec![3i64, 3].into())],
        &[1, 2, 4, 4],
    ));
    assert!(
        e.contains("attribute `kernel_shape` = [3, 3] does not match"),
        "{e}"
    );
    let e = error(conv_graph(
        &[("strides", vec![0i64, 1].into())],
        &[1, 2, 4, 4],
    ));
    assert!(
        e.contains("attribute `strides` = [0, 1] is not supported"),
        "{e}"
    );
}

#[test]
fn batch_norm_folds_into_the_conv() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 1, 2, 2]))
        .with_initializer(
            "w",
            Tensor::from_f32(&[2, 1, 1, 1], vec![1.0, 2.0]).unwrap(),
        )
        .with_initializer("scale", Tensor::from_f32(&[2], vec![4.0, 6.0]).unwrap())
        .with_initializer("beta", Tensor::from_f32(&[2], vec![0.5, 1.0]).unwrap())
        .with_initializer("mean", Tensor::from_f32(&[2], vec![1.0, 0.0]).unwrap())
        .with_initializer("var", Tensor::from_f32(&[2], vec![3.0, 8.0]).unwrap())
        .with_node(Node::new("Conv", ["x", "w"], ["c"]).with_name("conv"))
        .with_node(
            Node::new(
                "BatchNormalization",
                ["c", "scale", "beta", "mean", "var"],
                ["y"],
            )
            .with_name("bn")
            .with_attr("epsilon", 1.0f32),
        )
        .with_output(f32_info("y", &[1, 2, 2, 2]));
    let m = import(g);
    assert_eq!(names(&m), ["param", "param", "nn.conv2d"]);
    // k = scale / sqrt(var + eps) = [2, 2]; b = (0 − mean) · k + beta.
    assert_eq!(m.data("w"), Some(&IrData::F32(vec![2.0, 4.0])));
    assert_eq!(m.data("beta"), Some(&IrData::F32(vec![-1.5, 1.0])));
}

#[test]
fn batch_norm_that_cannot_fold_is_refused_by_name() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2, 2, 2]))
        .with_initializer("s", ones(&[2]))
        .with_node(Node::new("Relu", ["x"], ["r"]).with_name("relu"))
        .with_node(
            Node::new("BatchNormalization", ["r", "s", "s", "s", "s"], ["y"]).with_name("bn"),
        )
        .with_output(f32_info("y", &[1, 2, 2, 2]));
    let e = error(g);
    assert!(
        e.contains(
            "BatchNormalization (node bn): cannot be folded into a preceding Conv: its input `r` is not produced by a Conv"
        ),
        "{e}"
    );
}

fn gemm_graph(node: Node, b: Tensor, c: Option<Tensor>, out: &[usize]) -> Graph {
    let mut g = Graph::new("g")
        .with_input(f32_info("a", &[2, 3]))
        .with_initializer("B", b)
        .with_node(node.with_name("gemm"))
        .with_output(f32_info("y", out));
    if let Some(c) = c {
        g = g.with_initializer("C", c);
    }
    g
}

#[test]
fn gemm_becomes_linear() {
    // transB = 1: B is already [N, K].
    let m = import(gemm_graph(
        Node::new("Gemm", ["a", "B", "C"], ["y"]).with_attr("transB", 1i64),
        ones(&[4, 3]),
        Some(ones(&[4])),
        &[2, 4],
    ));
    assert_eq!(names(&m), ["param", "param", "nn.linear"]);
    assert!(matches!(m.globals["C"].kind, GlobalKind::Param { .. }));
    // transB = 0: the parameter keeps the ONNX layout and is transposed.
    let m = import(gemm_graph(
        Node::new("Gemm", ["a", "B", "C"], ["y"]),
        ones(&[3, 4]),
        Some(ones(&[4])),
        &[2, 4],
    ));
    assert_eq!(names(&m), ["param", "param", "nn.transpose", "nn.linear"]);
    assert_eq!(m.globals["B"].ty.shape.as_slice(), &[3, 4]);
    // alpha and beta scale the product and C.
    let m = import(gemm_graph(
        Node::new("Gemm", ["a", "B", "C"], ["y"])
            .with_attr("transB", 1i64)
            .with_attr("alpha", 2.0f32)
            .with_attr("beta", 0.5f32),
        ones(&[4, 3]),
        Some(ones(&[1, 4])),
        &[2, 4],
    ));
    assert_eq!(
        names(&m),
        [
            "param",
            "param",
            "nn.linear",
            "const",
            "nn.mul",
            "const",
            "nn.mul",
            "nn.add"
        ]
    );
}

#[test]
fn gemm_with_runtime_b_and_trans_a_uses_matmul() {
    let g = Graph::new("g")
        .with_input(f32_info("a", &[3, 2]))
        .with_input(f32_info("b", &[3, 4]))
        .with_node(
            Node::new("Gemm", ["a", "b"], ["y"])
                .with_name("gemm")
                .with_attr("transA", 1i64),
        )
        .with_output(f32_info("y", &[2, 4]));
    let m = import(g);
    assert_eq!(names(&m), ["nn.transpose", "nn.matmul"]);
}

#[test]
fn matmul_flattens_higher_rank_inputs() {
    let g = Graph::new("g")
        .with_input(f32_info("a", &[2, 5, 3]))
        .with_initializer("W", ones(&[3, 4]))
        .with_node(Node::new("MatMul", ["a", "W"], ["y"]).with_name("mm"))
        .with_output(f32_info("y", &[2, 5, 4]));
    let m = import(g);
    assert_eq!(
        names(&m),
        [
            "param",
            "nn.reshape",
            "nn.transpose",
            "nn.linear",
            "nn.reshape"
        ]
    );
    assert_eq!(output_shape(&m), [2, 5, 4]);
}

fn unary(op: Node, opset: i64, dims: &[usize], out: &[usize]) -> Module {
    let g = Graph::new("g")
        .with_input(f32_info("x", dims))
        .with_node(op)
        .with_output(f32_info("y", out));
    import_at(g, opset)
}

#[test]
fn add_mul_relu() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 4]))
        .with_initializer("k", ones(&[4]))
        .with_node(Node::new("Add", ["x", "k"], ["a"]).with_name("add"))
        .with_node(Node::new("Mul", ["a", "a"], ["b"]).with_name("mul"))
        .with_node(Node::new("Relu", ["b"], ["y"]).with_name("relu"))
        .with_output(f32_info("y", &[1, 4]));
    let m = import(g);
    assert_eq!(names(&m), ["const", "nn.add", "nn.mul", "nn.relu"]);
    assert_eq!(m.globals["k"].kind, GlobalKind::Const);
}

#[test]
fn clip_bounds_from_attributes_and_inputs() {
    let m = unary(
        Node::new("Clip", ["x"], ["y"])
            .with_attr("min", 0.0f32)
            .with_attr("max", 6.0f32),
        10,
        &[1, 4],
        &[1, 4],
    );
    assert_eq!(find(&m, "nn.clip").op, Op::Clip { min: 0.0, max: 6.0 });
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 4]))
        .with_initializer("lo", Tensor::scalar_f32(-1.0))
        .with_node(Node::new("Clip", ["x", "lo"], ["y"]).with_name("clip"))
        .with_output(f32_info("y", &[1, 4]));
    let m = import(g);
    assert_eq!(
        find(&m, "nn.clip").op,
        Op::Clip {
            min: -1.0,
            max: f32::INFINITY
        }
    );
    assert_eq!(names(&m), ["nn.clip"], "the bounds are consumed");
}

#[test]
fn pools() {
    let m = unary(
        Node::new("AveragePool", ["x"], ["y"])
            .with_attr("kernel_shape", vec![3i64, 3])
            .with_attr("pads", vec![1i64, 1, 1, 1])
            .with_attr("count_include_pad", 1i64),
        13,
        &[1, 1, 4, 4],
        &[1, 1, 4, 4],
    );
    assert_eq!(
        attr(&find(&m, "nn.avg_pool"), "count_include_pad"),
        Attr::Bool(true)
    );
    let m = unary(
        Node::new("MaxPool", ["x"], ["y"])
            .with_attr("kernel_shape", vec![2i64, 2])
            .with_attr("strides", vec![2i64, 2])
            .with_attr("dilations", vec![1i64, 1]),
        13,
        &[1, 1, 4, 4],
        &[1, 1, 2, 2],
    );
    assert_eq!(names(&m), ["nn.max_pool"]);
    let m = unary(
        Node::new("GlobalAveragePool", ["x"], ["y"]),
        13,
        &[1, 3, 4, 4],
        &[1, 3, 1, 1],
    );
    assert_eq!(names(&m), ["nn.global_avg_pool"]);
}

fn pool_error(node: Node) -> String {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 1, 4, 4]))
        .with_node(node.with_name("p").with_attr("kernel_shape", vec![2i64, 2]))
        .with_output(f32_info("y", &[1, 1, 3, 3]));
    error(g)
}

#[test]
fn pool_refusals() {
    let e = pool_error(Node::new("AveragePool", ["x"], ["y"]).with_attr("ceil_mode", 1i64));
    assert!(
        e.contains("AveragePool (node p): attribute `ceil_mode` = 1 is not supported"),
        "{e}"
    );
    let e = pool_error(Node::new("MaxPool", ["x"], ["y"]).with_attr("ceil_mode", 1i64));
    assert!(
        e.contains("MaxPool (node p): attribute `ceil_mode` = 1 is not supported"),
        "{e}"
    );
    let e = pool_error(Node::new("MaxPool", ["x"], ["y"]).with_attr("storage_order", 1i64));
    assert!(
        e.contains("MaxPool (node p): attribute `storage_order` = 1 is not supported"),
        "{e}"
    );
    let e = pool_error(Node::new("MaxPool", ["x"], ["y", "idx"]));
    assert!(
        e.contains("MaxPool (node p): the Indices output is not supported"),
        "{e}"
    );
    let e =
        pool_error(Node::new("AveragePool", ["x"], ["y"]).with_attr("dilations", vec![2i64, 2]));
    assert!(
        e.contains("AveragePool (node p): attribute `dilations` = [2, 2] is not supported"),
        "{e}"
    );
}

#[test]
fn shapes_concat_flatten_transpose() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2, 3]))
        .with_initializer("shape", i64s(&[0, -1]))
        .with_node(Node::new("Concat", ["x", "x"], ["c"]).with_attr("axis", -1i64))
        .with_node(Node::new("Transpose", ["c"], ["t"]))
        .with_node(Node::new("Reshape", ["t", "shape"], ["r"]))
        .with_node(Node::new("Flatten", ["r"], ["y"]).with_attr("axis", 0i64))
        .with_output(f32_info("y", &[1, 12]));
    let m = import(g);
    assert_eq!(
        names(&m),
        ["nn.concat", "nn.transpose", "nn.reshape", "nn.flatten"]
    );
    assert_eq!(
        attr(&find(&m, "nn.transpose"), "perm"),
        Attr::Ints(vec![2, 1, 0])
    );
    // [6, 2, 1] reshaped with [0, -1] → [6, 2].
    assert_eq!(
        attr(&find(&m, "nn.reshape"), "shape"),
        Attr::Ints(vec![6, 2])
    );
    assert!(m.globals.get("shape").is_none(), "the shape is consumed");
}

#[test]
fn reshape_refusals() {
    let g = |shape: &[i64], allowzero: i64| {
        Graph::new("g")
            .with_input(f32_info("x", &[2, 3]))
            .with_initializer("s", i64s(shape))
            .with_node(
                Node::new("Reshape", ["x", "s"], ["y"])
                    .with_name("r")
                    .with_attr("allowzero", allowzero),
            )
            .with_output(f32_info("y", &[6]))
    };
    let e = error(g(&[0, 6], 1));
    assert!(
        e.contains("Reshape (node r): shape [0, 6] is not supported"),
        "{e}"
    );
    let e = error(g(&[4, -1], 0));
    assert!(e.contains("Reshape (node r): cannot reshape"), "{e}");
    let runtime = Graph::new("g")
        .with_input(f32_info("x", &[2, 3]))
        .with_input(ValueInfo::tensor("s", DataType::I64, &[1]))
        .with_node(Node::new("Reshape", ["x", "s"], ["y"]).with_name("r"))
        .with_output(f32_info("y", &[6]));
    let e = error(runtime);
    assert!(e.contains("must be a constant"), "{e}");
}

#[test]
fn pad_from_inputs_and_attributes() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2]))
        .with_initializer("pads", i64s(&[0, 1, 0, 2]))
        .with_initializer("v", Tensor::scalar_f32(3.0))
        .with_node(Node::new("Pad", ["x", "pads", "v"], ["y"]).with_name("pad"))
        .with_output(f32_info("y", &[1, 5]));
    let m = import(g);
    assert_eq!(
        find(&m, "nn.pad").op,
        Op::Pad {
            pads: vec![0, 1, 0, 2],
            value: 3.0
        }
    );
    let m = unary(
        Node::new("Pad", ["x"], ["y"]).with_attr("pads", vec![1i64, 0, 1, 0]),
        10,
        &[1, 2],
        &[3, 2],
    );
    assert_eq!(names(&m), ["nn.pad"]);
}

#[test]
fn pad_refusals() {
    let base = |node: Node| {
        Graph::new("g")
            .with_input(f32_info("x", &[1, 2]))
            .with_initializer("pads", i64s(&[0, 1, 0, 2]))
            .with_initializer("axes", i64s(&[1]))
            .with_node(node.with_name("pad"))
            .with_output(f32_info("y", &[1, 5]))
    };
    let e = error(base(
        Node::new("Pad", ["x", "pads"], ["y"]).with_attr("mode", "reflect"),
    ));
    assert!(
        e.contains("Pad (node pad): attribute `mode` = \"reflect\" is not supported"),
        "{e}"
    );
    let e = error_at(base(Node::new("Pad", ["x", "pads", "", "axes"], ["y"])), 18);
    assert!(
        e.contains("Pad (node pad): the axes input is not supported"),
        "{e}"
    );
}

#[test]
fn softmax_before_13_coerces_to_2d() {
    let m = unary(
        Node::new("Softmax", ["x"], ["y"]),
        11,
        &[1, 2, 3],
        &[1, 2, 3],
    );
    assert_eq!(names(&m), ["nn.reshape", "nn.softmax", "nn.reshape"]);
    assert_eq!(
        attr(&find(&m, "nn.reshape"), "shape"),
        Attr::Ints(vec![1, 6])
    );
    let m = unary(
        Node::new("LogSoftmax", ["x"], ["y"]).with_attr("axis", 2i64),
        11,
        &[1, 2, 3],
        &[1, 2, 3],
    );
    assert_eq!(names(&m), ["nn.log_softmax"]);
    let m = unary(
        Node::new("Softmax", ["x"], ["y"]).with_attr("axis", 1i64),
        13,
        &[1, 2, 3],
        &[1, 2, 3],
    );
    assert_eq!(find(&m, "nn.softmax").op, Op::Softmax { axis: 1 });
}

#[test]
fn identity_dropout_and_constant_are_free() {
    let value = Tensor::from_f32(&[1, 2], vec![1.0, 2.0]).unwrap();
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2]))
        .with_node(Node::new("Identity", ["x"], ["a"]))
        .with_node(Node::new("Dropout", ["a"], ["b"]).with_attr("ratio", 0.5f32))
        .with_node(Node::new("Constant", Vec::<String>::new(), ["k"]).with_attr("value", value))
        .with_node(Node::new("Add", ["b", "k"], ["y"]))
        .with_output(f32_info("y", &[1, 2]));
    let m = import_at(g, 11);
    assert_eq!(names(&m), ["const", "nn.add"]);
    assert_eq!(m.data("k"), Some(&IrData::F32(vec![1.0, 2.0])));
}

#[test]
fn all_unsupported_ops_are_listed_together() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2]))
        .with_node(Node::new("Relu", ["x"], ["a"]).with_name("ok"))
        .with_node(
            Node::new("QLinearAdd", ["a", "a"], ["b"])
                .with_name("X")
                .with_domain("com.microsoft"),
        )
        .with_node(Node::new("LSTM", ["b"], ["c"]).with_name("lstm"))
        .with_node(Node::new("Sin", ["c"], ["y"]))
        .with_output(f32_info("y", &[1, 2]));
    let e = error(g);
    assert!(e.contains("3 unsupported op(s)"), "{e}");
    assert!(
        e.contains("contrib op com.microsoft.QLinearAdd (node X) is not supported"),
        "{e}"
    );
    assert!(e.contains("op LSTM (node lstm) is not supported"), "{e}");
    assert!(e.contains("op Sin (node #3) is not supported"), "{e}");
}

#[test]
fn opsets_outside_the_range_are_refused() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2]))
        .with_node(Node::new("Relu", ["x"], ["y"]))
        .with_output(f32_info("y", &[1, 2]));
    let e = error_at(g, 22);
    assert!(e.contains("opset 22; supported opsets are 7 to 21"), "{e}");
}

#[test]
fn symbolic_batch_needs_the_option() {
    let input = ValueInfo {
        name: "x".into(),
        elem_type: DataType::F32,
        shape: Some(vec![Dim::Symbolic("N".into()), Dim::Fixed(4)]),
    };
    let g = Graph::new("g")
        .with_input(input)
        .with_node(Node::new("Relu", ["x"], ["y"]))
        .with_output(f32_info("y", &[1, 4]));
    let e = error(g.clone());
    assert!(
        e.contains("graph input `x`: dimension 0 is symbolic (`N`)")
            && e.contains("ImportOptions::batch_size"),
        "{e}"
    );
    let m = import_model(&model(g, 13), &ImportOptions::batch_one()).unwrap();
    assert_eq!(output_shape(&m), [1, 4]);
}

#[test]
fn undefined_values_and_wrong_outputs_are_graph_errors() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2]))
        .with_node(Node::new("Add", ["x", "nowhere"], ["y"]).with_name("add"))
        .with_output(f32_info("y", &[1, 2]));
    let e = error(g);
    assert!(e.contains("value `nowhere` is not produced"), "{e}");
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2]))
        .with_node(Node::new("Relu", ["x"], ["y"]))
        .with_output(f32_info("y", &[2, 2]));
    let e = error(g);
    assert!(
        e.contains("graph output `y` is declared with shape [2, 2]"),
        "{e}"
    );
}

fn i8_scalar(v: i8) -> Tensor {
    Tensor::new(vec![], TensorData::I8(vec![v])).unwrap()
}

#[test]
fn qlinear_conv_and_matmul_import_directly() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 1, 3, 3]))
        .with_initializer("s", Tensor::scalar_f32(0.5))
        .with_initializer("z", i8_scalar(0))
        .with_initializer(
            "w",
            Tensor::new(vec![2, 1, 1, 1], TensorData::I8(vec![1, 2])).unwrap(),
        )
        .with_initializer("ws", Tensor::vector(TensorData::F32(vec![0.1, 0.2])))
        .with_initializer("wz", Tensor::vector(TensorData::I8(vec![0, 0])))
        .with_initializer("b", Tensor::vector(TensorData::I32(vec![5, -5])))
        .with_initializer(
            "m",
            Tensor::new(vec![18, 4], TensorData::I8(vec![1; 72])).unwrap(),
        )
        .with_initializer("ms", Tensor::scalar_f32(0.01))
        .with_node(Node::new("QuantizeLinear", ["x", "s", "z"], ["xq"]).with_name("q"))
        .with_node(
            Node::new(
                "QLinearConv",
                ["xq", "s", "z", "w", "ws", "wz", "s", "z", "b"],
                ["c"],
            )
            .with_name("qconv"),
        )
        .with_node(Node::new("Flatten", ["c"], ["f"]).with_name("flat"))
        .with_node(
            Node::new(
                "QLinearMatMul",
                ["f", "s", "z", "m", "ms", "z", "s", "z"],
                ["mm"],
            )
            .with_name("qmm"),
        )
        .with_node(Node::new("DequantizeLinear", ["mm", "s", "z"], ["y"]).with_name("dq"))
        .with_output(f32_info("y", &[1, 4]));
    let m = import(g);
    assert_eq!(
        names(&m),
        [
            "q.quantize",
            "param",
            "param",
            "q.conv2d",
            "nn.flatten",
            "param",
            "nn.transpose",
            "q.linear",
            "q.dequantize"
        ]
    );
    assert_eq!(find(&m, "q.conv2d").loc.name.as_deref(), Some("qconv"));
}

#[test]
fn qdq_conv_with_relu_fuses_and_uint8_is_shifted() {
    let u8_scalar = |v: u8| Tensor::new(vec![], TensorData::U8(vec![v])).unwrap();
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 1, 3, 3]))
        .with_initializer("s", Tensor::scalar_f32(0.5))
        .with_initializer("z", u8_scalar(128))
        .with_initializer("oz", u8_scalar(0))
        .with_initializer(
            "w",
            Tensor::new(vec![2, 1, 1, 1], TensorData::I8(vec![1, 2])).unwrap(),
        )
        .with_initializer("ws", Tensor::vector(TensorData::F32(vec![0.1, 0.2])))
        .with_initializer("b", Tensor::vector(TensorData::I32(vec![5, -5])))
        .with_initializer("bs", Tensor::vector(TensorData::F32(vec![0.05, 0.1])))
        .with_node(Node::new("QuantizeLinear", ["x", "s", "z"], ["xq"]).with_name("q"))
        .with_node(Node::new("DequantizeLinear", ["xq", "s", "z"], ["xf"]).with_name("dq"))
        .with_node(
            Node::new("DequantizeLinear", ["w", "ws"], ["wf"])
                .with_name("dqw")
                .with_attr("axis", 0i64),
        )
        .with_node(
            Node::new("DequantizeLinear", ["b", "bs"], ["bf"])
                .with_name("dqb")
                .with_attr("axis", 0i64),
        )
        .with_node(Node::new("Conv", ["xf", "wf", "bf"], ["c"]).with_name("conv"))
        .with_node(Node::new("Relu", ["c"], ["r"]).with_name("relu"))
        .with_node(Node::new("QuantizeLinear", ["r", "s", "oz"], ["y"]).with_name("qo"))
        .with_output(ValueInfo::tensor("y", DataType::U8, &[1, 2, 3, 3]));
    let m = import(g);
    assert_eq!(names(&m), ["q.quantize", "param", "param", "q.conv2d"]);
    let conv = find(&m, "q.conv2d");
    // uint8 zero point 0 is int8 −128, so the ReLU clamps at −128: the full range.
    assert_eq!(attr(&conv, "act_min"), Attr::Int(-128));
    let f = &m.functions[0];
    assert_eq!(
        f.ty(f.args()[0]).elem,
        mite_ir::ElemType::F32,
        "the float input stays float"
    );
    assert_eq!(
        f.ty(f.outputs()[0]).quant,
        Some(mite_ir::Quant::per_tensor(0.5, -128))
    );
}

#[test]
fn quantize_refusals() {
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2]))
        .with_initializer("s", Tensor::vector(TensorData::F32(vec![0.5, 0.25])))
        .with_initializer("z", Tensor::vector(TensorData::I8(vec![0, 0])))
        .with_node(Node::new("QuantizeLinear", ["x", "s", "z"], ["y"]).with_name("q"))
        .with_output(ValueInfo::tensor("y", DataType::I8, &[1, 2]));
    let e = error(g);
    assert!(
        e.contains(
            "QuantizeLinear (node q): per-axis quantization of activations is not supported"
        ),
        "{e}"
    );
    let g = Graph::new("g")
        .with_input(f32_info("x", &[1, 2]))
        .with_initializer("s", Tensor::scalar_f32(0.5))
        .with_initializer("s2", Tensor::scalar_f32(0.25))
        .with_initializer("z", i8_scalar(0))
        .with_node(Node::new("QuantizeLinear", ["x", "s", "z"], ["q"]).with_name("q"))
        .with_node(Node::new("DequantizeLinear", ["q", "s2", "z"], ["y"]).with_name("dq"))
        .with_output(f32_info("y", &[1, 2]));
    let e = error(g);
    assert!(
        e.contains("DequantizeLinear (node dq): input `q` is quantized as q<0.5, 0> but read with q<0.25, 0>"),
        "{e}"
    );
}
