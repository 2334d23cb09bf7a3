//! Loads the three int8 models of `../shared/models` (skipped when absent).

use std::collections::{BTreeMap, BTreeSet};

use mite_onnx::{element_count, DataType, Dim, OnnxModel};

/// Loads `models/<name>.onnx`, or `None` when the shared directory is absent.
fn load_shared(test: &str, name: &str) -> Option<OnnxModel> {
    let path = mite_test_support::shared_file(test, &format!("models/{name}.onnx"))?;
    match mite_onnx::load(&path) {
        Ok(model) => Some(model),
        Err(e) => panic!("{e}"),
    }
}

/// Prints the op histogram and the attribute names seen per op type (run with `--nocapture`).
fn describe(name: &str, model: &OnnxModel) {
    println!("== {name}: {} nodes", model.graph.nodes.len());
    for (op, count) in model.graph.op_histogram() {
        println!("  {op:<20} {count}");
    }
    let mut attrs: BTreeMap<&str, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for node in &model.graph.nodes {
        let per_op = attrs.entry(&node.op_type).or_default();
        for (attr, value) in &node.attributes {
            let shown = match value {
                mite_onnx::AttrValue::Int(v) => v.to_string(),
                mite_onnx::AttrValue::Ints(v) => format!("{v:?}"),
                other => other.kind().to_owned(),
            };
            per_op.entry(attr.clone()).or_default().insert(shown);
        }
    }
    for (op, per_op) in attrs {
        let list: Vec<String> = per_op
            .iter()
            .map(|(attr, values)| {
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                format!("{attr}={{{}}}", values.join(", "))
            })
            .collect();
        println!("  {op}: {}", list.join("; "));
    }
    let mut presence: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for node in &model.graph.nodes {
        for attr in node.attributes.keys() {
            *presence.entry((&node.op_type, attr)).or_insert(0) += 1;
        }
    }
    println!("  attribute presence (op, attr) -> nodes: {presence:?}");
    let mut types: BTreeMap<(DataType, usize), usize> = BTreeMap::new();
    for t in model.graph.initializers.values() {
        *types.entry((t.data_type(), t.dims().len())).or_insert(0) += 1;
    }
    println!("  initializers by (type, rank): {types:?}");
    println!(
        "  ir_version {}, producer {:?} {:?}, opsets {:?}, graph inputs {}, metadata {:?}",
        model.ir_version,
        model.producer_name,
        model.producer_version,
        model.opsets,
        model.graph.inputs.len(),
        model.metadata
    );
}

/// The checks common to the three models; `expected` is the op histogram.
fn check(test: &str, name: &str, expected: &[(&str, usize)]) {
    let Some(model) = load_shared(test, name) else {
        return;
    };
    describe(name, &model);

    assert_eq!(model.opset_version(""), Some(13), "{name}: ai.onnx opset");
    assert!(
        model.graph.nodes.iter().all(|n| n.is_standard_domain()),
        "{name}: non-standard domain"
    );

    let inputs: Vec<_> = model.graph.runtime_inputs().collect();
    assert_eq!(inputs.len(), 1, "{name}: runtime inputs");
    assert_eq!(inputs[0].name, "input");
    assert_eq!(inputs[0].elem_type, DataType::F32);
    assert_eq!(inputs[0].static_shape(), Some(vec![1, 3, 128, 128]));

    assert_eq!(model.graph.outputs.len(), 1, "{name}: outputs");
    let output = &model.graph.outputs[0];
    assert_eq!(output.elem_type, DataType::F32);
    assert_eq!(
        output.shape.as_deref(),
        Some(&[Dim::Fixed(1), Dim::Fixed(1000)][..])
    );

    let histogram = model.graph.op_histogram();
    let expected: BTreeMap<String, usize> =
        expected.iter().map(|&(op, n)| (op.to_owned(), n)).collect();
    assert_eq!(histogram, expected, "{name}: op histogram");

    for (tensor_name, t) in &model.graph.initializers {
        assert_eq!(
            element_count(t.dims()),
            Some(t.len()),
            "{name}: initializer {tensor_name}"
        );
    }

    // Decoding what we encode gives the same model back.
    let again = mite_onnx::from_bytes(&model.to_bytes(), name).expect("re-decode");
    assert_eq!(again, model, "{name}: round trip");
}

#[test]
fn mcunet_5fps() {
    check(
        "mcunet_5fps",
        "mcunet-5fps",
        &[
            ("Add", 7),
            ("Conv", 43),
            ("DequantizeLinear", 138),
            ("Flatten", 1),
            ("GlobalAveragePool", 1),
            ("QuantizeLinear", 52),
        ],
    );
}

#[test]
fn mbv2_w035() {
    check(
        "mbv2_w035",
        "mbv2-w0.35",
        &[
            ("Add", 10),
            ("Conv", 52),
            ("DequantizeLinear", 168),
            ("Flatten", 1),
            ("GlobalAveragePool", 1),
            ("QuantizeLinear", 64),
        ],
    );
}

#[test]
fn proxyless_w03() {
    check(
        "proxyless_w03",
        "proxyless-w0.3",
        &[
            ("Add", 13),
            ("Conv", 61),
            ("DequantizeLinear", 198),
            ("Flatten", 1),
            ("GlobalAveragePool", 1),
            ("QuantizeLinear", 76),
        ],
    );
}
