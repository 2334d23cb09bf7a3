//! Mutated and truncated encodings of a small QDQ model never panic decode + import, and
//! errors name the source.

use mite_onnx::import::{import_bytes, ImportOptions};
use mite_onnx::{DataType, Graph, Node, OnnxModel, Tensor, TensorData, ValueInfo};
use proptest::prelude::*;

const SOURCE: &str = "fuzz-import.onnx";

fn small_model_bytes() -> Vec<u8> {
    small_model().to_bytes()
}

fn small_model() -> OnnxModel {
    let weight = Tensor::new(vec![2, 1, 3, 3], TensorData::I8((-9..9).collect())).expect("weight");
    let graph = Graph::new("small")
        .with_input(ValueInfo::tensor("input", DataType::F32, &[1, 1, 4, 4]))
        .with_initializer("scale", Tensor::scalar_f32(0.5))
        .with_initializer(
            "zero",
            Tensor::new(vec![], TensorData::I8(vec![0])).expect("zero"),
        )
        .with_initializer("w", weight)
        .with_initializer("w_scale", Tensor::vector(TensorData::F32(vec![0.1, 0.2])))
        .with_initializer("bias", Tensor::vector(TensorData::I32(vec![-3, 4])))
        .with_initializer("b_scale", Tensor::vector(TensorData::F32(vec![0.05, 0.1])))
        .with_initializer("shape", Tensor::vector(TensorData::I64(vec![1, -1])))
        .with_node(Node::new("QuantizeLinear", ["input", "scale", "zero"], ["q"]).with_name("q"))
        .with_node(Node::new("DequantizeLinear", ["q", "scale", "zero"], ["x"]).with_name("dq"))
        .with_node(
            Node::new("DequantizeLinear", ["w", "w_scale"], ["wf"])
                .with_name("dq_w")
                .with_attr("axis", 0i64),
        )
        .with_node(
            Node::new("DequantizeLinear", ["bias", "b_scale"], ["bf"])
                .with_name("dq_b")
                .with_attr("axis", 0i64),
        )
        .with_node(
            Node::new("Conv", ["x", "wf", "bf"], ["c"])
                .with_name("conv")
                .with_attr("pads", vec![1i64, 1, 1, 1])
                .with_attr("strides", vec![1i64, 1]),
        )
        .with_node(Node::new("Relu", ["c"], ["r"]).with_name("relu"))
        .with_node(Node::new("QuantizeLinear", ["r", "scale", "zero"], ["rq"]).with_name("qo"))
        .with_node(Node::new("DequantizeLinear", ["rq", "scale", "zero"], ["rf"]).with_name("dqo"))
        .with_node(Node::new("Reshape", ["rf", "shape"], ["y"]).with_name("reshape"))
        .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 32]));
    OnnxModel::new(graph)
}

/// One structural change to the model: it still decodes, so the importer sees it.
#[derive(Clone, Debug)]
enum Mutation {
    /// Sets attribute `name` of a node to a list of integers.
    Ints(prop::sample::Index, &'static str, Vec<i64>),
    /// Sets attribute `name` of a node to an integer.
    Int(prop::sample::Index, &'static str, i64),
    /// Changes a node's operator.
    OpType(prop::sample::Index, &'static str),
    /// Rewires an input of a node to another value.
    Rewire(
        prop::sample::Index,
        prop::sample::Index,
        prop::sample::Index,
    ),
    /// Drops an input of a node.
    DropInput(prop::sample::Index, prop::sample::Index),
}

const ATTRS: &[&str] = &[
    "pads",
    "strides",
    "axis",
    "group",
    "dilations",
    "kernel_shape",
    "perm",
    "auto_pad",
];
const OPS: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Relu",
    "Clip",
    "AveragePool",
    "MaxPool",
    "GlobalAveragePool",
    "Concat",
    "Flatten",
    "Reshape",
    "Transpose",
    "Pad",
    "Softmax",
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "BatchNormalization",
    "Identity",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        (
            index(),
            prop::sample::select(ATTRS),
            prop::collection::vec(-3i64..6, 0..5)
        )
            .prop_map(|(n, a, v)| Mutation::Ints(n, a, v)),
        (index(), prop::sample::select(ATTRS), -3i64..6)
            .prop_map(|(n, a, v)| Mutation::Int(n, a, v)),
        (index(), prop::sample::select(OPS)).prop_map(|(n, o)| Mutation::OpType(n, o)),
        (index(), index(), index()).prop_map(|(n, i, v)| Mutation::Rewire(n, i, v)),
        (index(), index()).prop_map(|(n, i)| Mutation::DropInput(n, i)),
    ]
}

fn apply(model: &mut OnnxModel, m: &Mutation) {
    let mut values: Vec<String> = model.graph.initializers.keys().cloned().collect();
    values.push("input".into());
    values.extend(model.graph.nodes.iter().flat_map(|n| n.outputs.clone()));
    let count = model.graph.nodes.len();
    let nodes = &mut model.graph.nodes;
    match m {
        Mutation::Ints(n, a, v) => {
            let node = &mut nodes[n.index(count)];
            node.attributes.insert((*a).to_owned(), v.clone().into());
        }
        Mutation::Int(n, a, v) => {
            let node = &mut nodes[n.index(count)];
            node.attributes.insert((*a).to_owned(), (*v).into());
        }
        Mutation::OpType(n, o) => nodes[n.index(count)].op_type = (*o).to_owned(),
        Mutation::Rewire(n, i, v) => {
            let node = &mut nodes[n.index(count)];
            let slot = i.index(node.inputs.len() + 1);
            let value = values[v.index(values.len())].clone();
            if slot == node.inputs.len() {
                node.inputs.push(value);
            } else {
                node.inputs[slot] = value;
            }
        }
        Mutation::DropInput(n, i) => {
            let node = &mut nodes[n.index(count)];
            if !node.inputs.is_empty() {
                let slot = i.index(node.inputs.len());
                node.inputs[slot].clear();
            }
        }
    }
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    for opts in [ImportOptions::default(), ImportOptions::batch_one()] {
        if let Err(e) = import_bytes(bytes, SOURCE, &opts) {
            prop_assert!(e.to_string().contains(SOURCE), "{e}");
        }
    }
    Ok(())
}

#[test]
fn the_unmutated_model_imports() {
    let module = import_bytes(&small_model_bytes(), SOURCE, &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let f = &module.functions[0];
    let names: Vec<&str> = f.layout().iter().map(|&id| f.op(id).op.name()).collect();
    assert!(names.contains(&"q.conv2d"), "{names:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn flipped_bytes_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = small_model_bytes();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        check(&bytes)?;
    }

    #[test]
    fn structural_mutations_never_panic(mutations in prop::collection::vec(mutation(), 1..4)) {
        let mut model = small_model();
        for m in &mutations {
            apply(&mut model, m);
        }
        check(&model.to_bytes())?;
    }

    #[test]
    fn truncations_never_panic(cut in any::<prop::sample::Index>()) {
        let bytes = small_model_bytes();
        let end = cut.index(bytes.len());
        check(&bytes[..end])?;
    }
}
