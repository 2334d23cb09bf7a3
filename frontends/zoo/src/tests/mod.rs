//! Tests of the zoo: verification, architecture, costs, numbering and the ONNX cross-check.

mod onnx_wire;

use crate::config::{NetConfig, MBV2_W035, MCUNET_5FPS, PROXYLESS_W03, TINY};
use crate::{
    mbv2_w035, mcunet_5fps, proxyless_w03, tiny_float_cnn, tiny_int8_cnn, tiny_int8_mlp,
    BuildOptions, Precision, ZooModel,
};
use mite_ir::cost::function_cost;
use mite_ir::{verify_module, ElemType, Function, Module, Op, Quant, ValueDef};

fn forward(m: &Module) -> &Function {
    m.function("forward").expect("a forward function")
}

/// The loc name of the op defining operand `i` of op `data` (or the argument name).
fn operand_source(f: &Function, data: &mite_ir::OpData, i: usize) -> String {
    let v = data.operands[i];
    match f.value(v).def {
        ValueDef::Arg(_) => f.value(v).name.clone().unwrap_or_default(),
        ValueDef::Result(id, _) => f.op(id).loc.name.clone().unwrap_or_default(),
    }
}

/// A conv as seen in a graph: name, kernel, strides, pads, groups, in and out channels.
#[derive(Debug, PartialEq, Eq)]
struct ConvRow {
    name: String,
    kernel: Vec<i64>,
    strides: Vec<i64>,
    pads: Vec<i64>,
    groups: i64,
    in_channels: i64,
    out_channels: i64,
}

/// The convs of an IR function, in program order.
fn ir_convs(f: &Function) -> Vec<ConvRow> {
    let mut rows = Vec::new();
    for &id in f.layout() {
        let data = f.op(id);
        let (strides, pads, groups) = match &data.op {
            Op::QConv2d {
                strides,
                pads,
                groups,
                ..
            }
            | Op::Conv2d {
                strides,
                pads,
                groups,
                ..
            } => (strides.clone(), pads.clone(), *groups),
            _ => continue,
        };
        let w = f.ty(data.operands[1]);
        let x = f.ty(data.operands[0]);
        rows.push(ConvRow {
            name: data.loc.name.clone().unwrap_or_default(),
            kernel: vec![w.shape[2] as i64, w.shape[3] as i64],
            strides,
            pads,
            groups,
            in_channels: x.shape[1] as i64,
            out_channels: w.shape[0] as i64,
        });
    }
    rows
}

/// The residual adds of an IR function: (name, first operand's source, second's source).
fn ir_adds(f: &Function) -> Vec<(String, String, String)> {
    f.layout()
        .iter()
        .map(|&id| f.op(id))
        .filter(|d| matches!(d.op, Op::QAdd { .. } | Op::Add {}))
        .map(|d| {
            (
                d.loc.name.clone().unwrap_or_default(),
                operand_source(f, d, 0),
                operand_source(f, d, 1),
            )
        })
        .collect()
}

fn all_modules() -> Vec<Module> {
    let mut modules = vec![mcunet_5fps(), mbv2_w035(), proxyless_w03()];
    for model in ZooModel::ALL {
        modules.push(model.build(&BuildOptions {
            precision: Precision::F32,
            ..BuildOptions::default()
        }));
    }
    modules.extend([tiny_int8_cnn(), tiny_float_cnn(), tiny_int8_mlp()]);
    modules
}

#[test]
fn every_model_verifies() {
    for m in all_modules() {
        if let Err(e) = verify_module(&m) {
            panic!("{}:\n{e}", m.name);
        }
    }
}

#[test]
fn tables_are_consistent() {
    for config in [&MCUNET_5FPS, &MBV2_W035, &PROXYLESS_W03, &TINY] {
        config.check().unwrap();
    }
}

#[test]
fn conv_counts_and_final_maps() {
    // (model, convs incl. classifier, backbone convs, blocks, final channels, residual adds)
    let expected = [
        (ZooModel::Mcunet5fps, 43, 42, 14, 160, 7),
        (ZooModel::Mbv2W035, 52, 51, 17, 112, 10),
        (ZooModel::ProxylessW03, 61, 60, 20, 96, 13),
    ];
    for (model, convs, backbone, blocks, channels, adds) in expected {
        let config = model.config();
        assert_eq!(config.blocks.len(), blocks, "{model:?}");
        assert_eq!(config.convs().len(), convs, "{model:?}");
        assert_eq!(config.num_backbone_convs(), backbone, "{model:?}");
        assert_eq!(config.backbone_convs().len(), backbone, "{model:?}");
        assert_eq!(config.final_map_size(), 4, "{model:?}");
        assert_eq!(config.final_channels(), channels, "{model:?}");

        let m = model.build(&BuildOptions::default());
        let f = forward(&m);
        let rows = ir_convs(f);
        assert_eq!(rows.len(), convs, "{model:?}");
        assert_eq!(
            rows.iter().filter(|r| r.name != "classifier").count(),
            backbone
        );
        assert_eq!(ir_adds(f).len(), adds, "{model:?}");
        // The pool reads the final 1×C×4×4 map.
        let pool = f
            .layout()
            .iter()
            .map(|&id| f.op(id))
            .find(|d| d.loc.name.as_deref() == Some("pool"))
            .unwrap();
        assert_eq!(
            f.ty(pool.operands[0]).shape.as_slice(),
            &[1, channels, 4, 4]
        );
    }
}

#[test]
fn int8_form_matches_the_onnx_import() {
    for model in ZooModel::ALL {
        let m = model.build(&BuildOptions::default());
        let f = forward(&m);
        assert_eq!(f.args().len(), 1);
        assert_eq!(f.value(f.args()[0]).name.as_deref(), Some("input"));
        assert_eq!(f.ty(f.args()[0]).to_string(), "tensor<1x3x128x128xf32>");
        assert_eq!(f.outputs().len(), 1);
        assert_eq!(f.ty(f.outputs()[0]).to_string(), "tensor<1x1000xf32>");

        let compute: Vec<&mite_ir::OpData> = f
            .layout()
            .iter()
            .map(|&id| f.op(id))
            .filter(|d| !matches!(d.op, Op::Param { .. }))
            .collect();
        let first = compute[0];
        assert_eq!(first.op, Op::Quantize {});
        assert_eq!(
            f.ty(first.result()).quant,
            Some(Quant::per_tensor(1.0 / 127.5, 0))
        );
        let names: Vec<&str> = compute[compute.len() - 4..]
            .iter()
            .map(|d| d.op.name())
            .collect();
        assert_eq!(
            names,
            [
                "q.global_avg_pool",
                "q.conv2d",
                "q.dequantize",
                "nn.flatten"
            ]
        );
        assert_eq!(
            compute[compute.len() - 3].loc.name.as_deref(),
            Some("classifier")
        );
        assert_eq!(
            compute[compute.len() - 1].loc.name.as_deref(),
            Some("logits")
        );
        // Only int8 compute ops in between.
        for d in &compute[1..compute.len() - 2] {
            assert!(
                matches!(
                    d.op,
                    Op::QConv2d { .. } | Op::QAdd { .. } | Op::QGlobalAvgPool {}
                ),
                "{model:?}: unexpected {}",
                d.op.name()
            );
        }
        // The pool keeps its input's quantization.
        let pool = compute[compute.len() - 4];
        assert_eq!(f.ty(pool.operands[0]).quant, f.ty(pool.result()).quant);

        // Parameters: `<layer>.weight` i8 per output channel, `<layer>.bias` i32.
        for conv in model.config().convs() {
            let w = &m.globals[&format!("{}.weight", conv.name)];
            assert_eq!(w.ty.elem, ElemType::I8);
            assert!(
                matches!(&w.ty.quant, Some(Quant::PerChannel { axis: 0, scales, .. }) if scales.len() == conv.out_channels)
            );
            let b = &m.globals[&format!("{}.bias", conv.name)];
            assert_eq!(b.ty.elem, ElemType::I32);
            assert_eq!(b.ty.shape.as_slice(), &[conv.out_channels]);
        }
        assert_eq!(m.globals.len(), 2 * model.config().convs().len());
    }
}

#[test]
fn float_variant_uses_nn_ops() {
    let m = ZooModel::Mbv2W035.build(&BuildOptions {
        precision: Precision::F32,
        ..BuildOptions::default()
    });
    let f = forward(&m);
    assert_eq!(m.name, "mbv2_w035_f32");
    assert_eq!(f.ty(f.outputs()[0]).to_string(), "tensor<1x1000xf32>");
    let mut clips = 0;
    for &id in f.layout() {
        let d = f.op(id);
        assert_ne!(d.op.dialect(), "q", "{}", d.op.name());
        if let Op::Clip { min, max } = d.op {
            assert_eq!((min, max), (0.0, 6.0));
            clips += 1;
        }
    }
    // ReLU6 after first_conv, every pointwise1 and every depthwise.
    let relu6 = MBV2_W035
        .convs()
        .iter()
        .filter(|c| {
            !matches!(
                c.role,
                crate::ConvRole::Pointwise2 | crate::ConvRole::Classifier
            )
        })
        .count();
    assert_eq!(clips, relu6);
    assert_eq!(ir_convs(f), ir_convs(forward(&mbv2_w035())));

    // The f32 weights are the real values of the int8 ones.
    let int8 = mbv2_w035();
    let wq = &int8.globals["blocks.3.depthwise.weight"];
    let (Some(mite_ir::TensorData::I8(q)), Some(mite_ir::TensorData::F32(r))) = (
        int8.data("blocks.3.depthwise.weight"),
        m.data("blocks.3.depthwise.weight"),
    ) else {
        panic!("inline data expected");
    };
    let per_channel = q.len() / wq.ty.shape[0];
    for (i, (&qi, &ri)) in q.iter().zip(r).enumerate() {
        let s = wq.ty.quant.as_ref().unwrap().scale(i / per_channel);
        assert_eq!(ri, s * f32::from(qi));
    }
}

#[test]
fn weights_are_deterministic_and_seeded() {
    let a = mcunet_5fps();
    let b = mcunet_5fps();
    assert_eq!(a.globals, b.globals);
    let c = ZooModel::Mcunet5fps.build(&BuildOptions {
        seed: 1,
        ..BuildOptions::default()
    });
    assert_ne!(a.data("first_conv.weight"), c.data("first_conv.weight"));
    // Scales do differ per channel, and weights span the int8 range.
    let w = &a.globals["blocks.13.pointwise2.weight"];
    let Some(Quant::PerChannel { scales, .. }) = &w.ty.quant else {
        panic!("per-channel weight expected");
    };
    assert!(scales.iter().any(|&s| s != scales[0]));
    let Some(mite_ir::TensorData::I8(q)) = a.data("blocks.13.pointwise2.weight") else {
        panic!("inline data expected");
    };
    assert!(q.iter().any(|&x| x <= -120) && q.iter().any(|&x| x >= 120));
}

/// NOTES §6 figures: (model, params in M, MACs in M), and the exact values of the ONNX files
/// (backbone convs, classifier excluded, weights + biases).
const NOTES_FIGURES: [(ZooModel, f64, f64, u64, u64); 3] = [
    (ZooModel::Mcunet5fps, 0.47, 22.5, 469_224, 22_453_504),
    (ZooModel::Mbv2W035, 0.24, 16.6, 244_448, 16_646_912),
    (ZooModel::ProxylessW03, 0.33, 18.6, 326_232, 18_619_904),
];

/// Whether `value` rounds to `figure` given as many decimals as `decimals`: within half a unit
/// of the figure's last digit.
fn rounds_to(value: f64, figure: f64, decimals: i32) -> bool {
    (value - figure).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-12
}

#[test]
fn parameter_and_mac_totals_match_notes() {
    for (model, params_m, macs_m, params, macs) in NOTES_FIGURES {
        let config = model.config();
        let m = model.build(&BuildOptions::default());
        let report = function_cost(forward(&m));
        let backbone = |c: &mite_ir::cost::OpCost| c.loc.as_deref() != Some("classifier");
        let classifier = |c: &mite_ir::cost::OpCost| c.loc.as_deref() == Some("classifier");

        // The cost model agrees with the table, conv by conv.
        for conv in config.convs() {
            let row = report
                .ops
                .iter()
                .find(|c| c.loc.as_deref() == Some(conv.name.as_str()))
                .unwrap();
            assert_eq!(row.macs, conv.macs(), "{}", conv.name);
            assert_eq!(row.params, conv.params(), "{}", conv.name);
        }

        // Exact figures of the real ONNX files (computed from their weight shapes).
        assert_eq!(report.params_where(backbone), params, "{model:?}");
        assert_eq!(report.macs_where(backbone), macs, "{model:?}");
        assert_eq!(
            report.total_params,
            params + report.params_where(classifier)
        );
        assert_eq!(report.total_macs, macs + report.macs_where(classifier));

        // The convention that reproduces NOTES §6: backbone only, biases included. The figures
        // are rounded to 2 (params, in M) and 1 (MACs, in M) decimals, so the tolerance is half
        // a unit of the last digit.
        assert!(rounds_to(params as f64 / 1e6, params_m, 2), "{model:?}");
        assert!(rounds_to(macs as f64 / 1e6, macs_m, 1), "{model:?}");
        // Counting the classifier does not reproduce them.
        assert!(!rounds_to(report.total_params as f64 / 1e6, params_m, 2));
        assert!(!rounds_to(report.total_macs as f64 / 1e6, macs_m, 1));
    }
}

#[test]
fn inference_peak_memory() {
    // The f32 input (196 608 bytes) and its int8 copy (49 152) are live together at the
    // quantize; no later pair of activations is larger.
    for model in ZooModel::ALL {
        let m = model.build(&BuildOptions::default());
        let report = function_cost(forward(&m));
        assert_eq!(report.input_bytes, 3 * 128 * 128 * 4);
        assert_eq!(report.peak_activation_bytes, 3 * 128 * 128 * 5, "{model:?}");
        let at = &report.ops[report.peak_op.unwrap()];
        assert_eq!(at.op, "q.quantize");
        // Largest int8 step: MCUNet blocks.1.pointwise1 reads 8×64×64 and writes 32×64×64.
        if model == ZooModel::Mcunet5fps {
            let pw1 = report
                .ops
                .iter()
                .find(|c| c.loc.as_deref() == Some("blocks.1.pointwise1"))
                .unwrap();
            assert_eq!(pw1.live_bytes, (8 + 32) * 64 * 64);
        }
    }
}

#[test]
fn backbone_conv_numbering() {
    for model in ZooModel::ALL {
        let config = model.config();
        let convs = config.backbone_convs();
        for (i, conv) in convs.iter().enumerate() {
            assert_eq!(
                config.backbone_conv_name(i).as_deref(),
                Some(conv.name.as_str())
            );
            assert_eq!(config.backbone_conv_index(&conv.name), Some(i));
        }
        assert_eq!(config.backbone_conv_name(convs.len()), None);
        assert_eq!(config.backbone_conv_index("classifier"), None);
        assert_eq!(config.backbone_conv_index("blocks.0.pointwise1"), None);
        assert_eq!(config.backbone_conv_index("blocks.01.depthwise"), None);
        assert_eq!(config.backbone_conv_index("blocks.99.depthwise"), None);
        // NOTES §3: 0 first conv, 1/2 block 0, 3b/3b+1/3b+2 block b.
        assert_eq!(config.backbone_conv_name(0).as_deref(), Some("first_conv"));
        assert_eq!(
            config.backbone_conv_name(1).as_deref(),
            Some("blocks.0.depthwise")
        );
        assert_eq!(
            config.backbone_conv_name(2).as_deref(),
            Some("blocks.0.pointwise2")
        );
        for b in 1..config.blocks.len() {
            for (r, suffix) in ["pointwise1", "depthwise", "pointwise2"].iter().enumerate() {
                assert_eq!(
                    config.backbone_conv_name(3 * b + r),
                    Some(format!("blocks.{b}.{suffix}"))
                );
            }
        }
        // Every name is a layer of the built module.
        let m = model.build(&BuildOptions::default());
        let names: Vec<String> = ir_convs(forward(&m)).into_iter().map(|r| r.name).collect();
        assert_eq!(
            names[..convs.len()],
            convs.iter().map(|c| c.name.clone()).collect::<Vec<_>>()
        );
    }
    // Indices used by the shipped schemes (NOTES §3).
    let name = |c: &NetConfig, i| c.backbone_conv_name(i).unwrap();
    assert_eq!(name(&MCUNET_5FPS, 21), "blocks.7.pointwise1");
    assert_eq!(name(&MCUNET_5FPS, 39), "blocks.13.pointwise1");
    assert_eq!(name(&MBV2_W035, 41), "blocks.13.pointwise2");
    assert_eq!(name(&MBV2_W035, 49), "blocks.16.depthwise");
    assert_eq!(name(&PROXYLESS_W03, 57), "blocks.19.pointwise1");
}

#[test]
fn tiny_models() {
    let m = tiny_int8_cnn();
    let f = forward(&m);
    assert_eq!(f.ty(f.args()[0]).to_string(), "tensor<1x3x32x32xf32>");
    assert_eq!(f.ty(f.outputs()[0]).to_string(), "tensor<1x10xf32>");
    assert_eq!(ir_convs(f).len(), 10);
    assert_eq!(
        ir_adds(f),
        [(
            "blocks.1.add".to_string(),
            "blocks.0.pointwise2".to_string(),
            "blocks.1.pointwise2".to_string()
        )]
    );
    assert!(ir_convs(f)
        .iter()
        .any(|c| c.groups == 12 && c.kernel == [3, 3]));

    let f32m = tiny_float_cnn();
    assert_eq!(ir_convs(forward(&f32m)), ir_convs(f));

    let mlp = tiny_int8_mlp();
    let f = forward(&mlp);
    assert_eq!(f.ty(f.args()[0]).to_string(), "tensor<1x16xf32>");
    assert_eq!(f.ty(f.outputs()[0]).to_string(), "tensor<1x4xf32>");
    assert_eq!(function_cost(f).total_macs, 16 * 8 + 8 * 4);
}

/// Compares each zoo model's convs and residual adds with the real ONNX file, read at test
/// time (skipped when `../shared` is absent).
#[test]
fn convs_match_the_onnx_files() {
    for model in ZooModel::ALL {
        let test = "convs_match_the_onnx_files";
        let rel = format!("models/{}", model.onnx_file_name());
        let Some(path) = mite_test_support::shared_file(test, &rel) else {
            return;
        };
        let bytes = std::fs::read(&path).unwrap();
        let graph = onnx_wire::parse_model(&bytes);

        let onnx_convs: Vec<ConvRow> = graph
            .nodes
            .iter()
            .filter(|n| n.op_type == "Conv")
            .map(|n| {
                let w = &graph.dims[&format!("{}.weight", n.name)];
                let group = n.ints.get("group").map_or(1, |g| g[0]);
                ConvRow {
                    name: n.name.clone(),
                    kernel: n.ints["kernel_shape"].clone(),
                    strides: n.ints["strides"].clone(),
                    pads: n.ints["pads"].clone(),
                    groups: group,
                    in_channels: w[1] * group,
                    out_channels: w[0],
                }
            })
            .collect();
        let m = model.build(&BuildOptions::default());
        let f = forward(&m);
        assert_eq!(ir_convs(f), onnx_convs, "{model:?}");

        let onnx_adds: Vec<(String, String, String)> = graph
            .nodes
            .iter()
            .filter(|n| n.op_type == "Add")
            .map(|n| {
                (
                    n.name.clone(),
                    graph.producer(&n.inputs[0]),
                    graph.producer(&n.inputs[1]),
                )
            })
            .collect();
        assert_eq!(ir_adds(f), onnx_adds, "{model:?}");

        // Every parameter of the zoo model exists in the file with the same shape.
        for (name, g) in &m.globals {
            let dims: Vec<i64> = g.ty.shape.iter().map(|&d| d as i64).collect();
            assert_eq!(graph.dims.get(name), Some(&dims), "{model:?} {name}");
        }
        let onnx_params = graph
            .dims
            .keys()
            .filter(|k| k.ends_with(".weight") || k.ends_with(".bias"))
            .count();
        assert_eq!(onnx_params, m.globals.len(), "{model:?}");
        // The remaining compute nodes: the pool and the flatten.
        for (op_type, name) in [("GlobalAveragePool", "pool"), ("Flatten", "logits")] {
            assert!(
                graph
                    .nodes
                    .iter()
                    .any(|n| n.op_type == op_type && n.name == name),
                "{model:?}: {op_type} {name}"
            );
        }
    }
}
