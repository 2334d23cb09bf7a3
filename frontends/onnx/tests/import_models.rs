//! The three int8 models of `../shared/models` import, fuse into `q.` ops and verify (skipped
//! when the shared directory is absent).

use std::collections::BTreeMap;

use mite_ir::Module;
use mite_onnx::import::{import_model, ImportOptions};
use mite_onnx::OnnxModel;

/// Loads and imports `models/<name>.onnx`, or `None` when the shared directory is absent.
fn import_shared(test: &str, name: &str) -> Option<(OnnxModel, Module)> {
    let path = mite_test_support::shared_file(test, &format!("models/{name}.onnx"))?;
    let model = mite_onnx::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let module = import_model(&model, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    Some((model, module))
}

fn histogram(module: &Module) -> BTreeMap<String, usize> {
    let f = module.function("forward").expect("forward");
    let mut h = BTreeMap::new();
    for &id in f.layout() {
        *h.entry(f.op(id).op.name().to_owned()).or_insert(0) += 1;
    }
    h
}

fn check(test: &str, name: &str, convs: usize, adds: usize) {
    let Some((model, module)) = import_shared(test, name) else {
        return;
    };
    let expected: BTreeMap<String, usize> = [
        ("nn.flatten", 1),
        ("param", 2 * convs),
        ("q.add", adds),
        ("q.conv2d", convs),
        ("q.dequantize", 1),
        ("q.global_avg_pool", 1),
        ("q.quantize", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(histogram(&module), expected, "{name}");

    // Parameters are exactly the weight and bias initializers, under their names.
    let mut params: Vec<&str> = module
        .globals
        .iter()
        .filter(|(_, g)| g.kind.is_trainable())
        .map(|(n, _)| n.as_str())
        .collect();
    params.sort_unstable();
    let mut weights: Vec<&str> = model
        .graph
        .initializers
        .keys()
        .map(String::as_str)
        .filter(|n| n.ends_with(".weight") || n.ends_with(".bias"))
        .collect();
    weights.sort_unstable();
    assert_eq!(params, weights, "{name}");
    assert_eq!(params.len(), 2 * convs);

    // Conv ops keep the ONNX node names.
    let f = module.function("forward").expect("forward");
    let first = f
        .layout()
        .iter()
        .map(|&id| f.op(id))
        .find(|op| op.op.name() == "q.conv2d")
        .expect("a conv");
    assert_eq!(first.loc.name.as_deref(), Some("first_conv"));
    let out = f.ty(f.outputs()[0]);
    assert_eq!(out.shape.as_slice(), &[1, 1000]);
}

#[test]
fn mcunet_5fps_imports() {
    check("mcunet_5fps_imports", "mcunet-5fps", 43, 7);
}

#[test]
fn mbv2_w035_imports() {
    check("mbv2_w035_imports", "mbv2-w0.35", 52, 10);
}

#[test]
fn proxyless_w03_imports() {
    check("proxyless_w03_imports", "proxyless-w0.3", 61, 13);
}
