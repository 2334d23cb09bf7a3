//! The zoo's builders against the imported real models: the same layers, in the same order,
//! with the same names, shapes, strides, padding and groups, and the same parameters.

use mite::ir::cost::function_cost;
use mite::ir::{Module, Op};
use mite::onnx::{import_file, ImportOptions};
use mite::zoo::{BuildOptions, ZooModel};

/// One line per conv or add: name, kind, attributes and operand/result shapes.
fn layers(module: &Module) -> Vec<String> {
    let f = module.function("forward").unwrap();
    f.layout()
        .iter()
        .filter_map(|&id| {
            let data = f.op(id);
            let shapes: Vec<String> = data
                .operands
                .iter()
                .chain(&data.results)
                .map(|&v| format!("{:?}", f.ty(v).shape.as_slice()))
                .collect();
            let what = match &data.op {
                Op::QConv2d {
                    strides,
                    pads,
                    dilations,
                    groups,
                    ..
                } => {
                    format!("conv s{strides:?} p{pads:?} d{dilations:?} g{groups}")
                }
                Op::QAdd { .. } => "add".to_string(),
                Op::QGlobalAvgPool {} => "pool".to_string(),
                _ => return None,
            };
            Some(format!(
                "{} {what} {}",
                data.loc.name.as_deref().unwrap_or("?"),
                shapes.join(" ")
            ))
        })
        .collect()
}

fn params(module: &Module) -> Vec<(String, Vec<usize>)> {
    module
        .globals
        .iter()
        .map(|(name, g)| (name.clone(), g.ty.shape.to_vec()))
        .collect()
}

fn check(model: ZooModel) {
    let test = "zoo_vs_onnx";
    let Some(path) =
        mite_test_support::shared_file(test, &format!("models/{}", model.onnx_file_name()))
    else {
        return;
    };
    let imported = import_file(&path, &ImportOptions::batch_one()).unwrap();
    let zoo = model.build(&BuildOptions::default());
    let (a, b) = (layers(&zoo), layers(&imported));
    assert_eq!(a.len(), b.len(), "{}: layer counts differ", model.name());
    for (z, i) in a.iter().zip(&b) {
        assert_eq!(
            z,
            i,
            "{}: zoo layer differs from the imported one",
            model.name()
        );
    }
    let (mut pz, mut pi) = (params(&zoo), params(&imported));
    pz.sort();
    pi.sort();
    assert_eq!(pz, pi, "{}: parameters differ", model.name());
    let (cz, ci) = (
        function_cost(zoo.function("forward").unwrap()),
        function_cost(imported.function("forward").unwrap()),
    );
    assert_eq!(
        (cz.total_macs, cz.total_params),
        (ci.total_macs, ci.total_params)
    );
    println!(
        "{}: {} layers equal; {} parameters, {} MACs (classifier included)",
        model.name(),
        a.len(),
        ci.total_params,
        ci.total_macs
    );
}

#[test]
fn mcunet_5fps_zoo_equals_import() {
    check(ZooModel::Mcunet5fps);
}

#[test]
fn mbv2_w035_zoo_equals_import() {
    check(ZooModel::Mbv2W035);
}

#[test]
fn proxyless_w03_zoo_equals_import() {
    check(ZooModel::ProxylessW03);
}
