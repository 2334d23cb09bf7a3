//! Sparse update on the paper's three models: every built-in paper scheme compiles to a training
//! step holding weight-gradient and update ops exactly for the scheme's trainable tensors, on the
//! zoo builders and (when `../shared` is present) on the imported ONNX models.

use mite::ir::{Function, Module, Op, Trainable};
use mite::onnx::{import_file, ImportOptions};
use mite::passes::passes::{build_training_step, TrainConfig};
use mite::passes::scheme::{layers, Role, Scheme, TrainedTensor, PAPER_MODELS};
use mite::zoo::{BuildOptions, ZooModel};
use std::collections::{BTreeMap, BTreeSet};

/// The parameter each `optim.sgd` updates, with its gradient's shape.
fn updates(f: &Function) -> BTreeMap<String, Vec<usize>> {
    f.layout()
        .iter()
        .filter_map(|&id| {
            let data = f.op(id);
            let param = data.op.updated_param()?;
            Some((param.to_string(), f.ty(data.operands[0]).shape.to_vec()))
        })
        .collect()
}

fn count(f: &Function, pred: impl Fn(&Op) -> bool) -> usize {
    f.layout().iter().filter(|&&id| pred(&f.op(id).op)).count()
}

/// Builds the training step of `scheme` and checks it against the scheme's trained tensors.
fn check_scheme(module: &Module, scheme: &Scheme, what: &str) {
    let mut m = module.clone();
    let all_layers = layers(&m);
    let trained = scheme.apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    let f = m.function("train_step").unwrap();
    let got = updates(f);
    let want: BTreeSet<String> = trained.iter().map(|t| t.name.clone()).collect();
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "{what}: updated parameters"
    );
    // One weight-gradient op per trained weight, none for a frozen one.
    let weights: Vec<&TrainedTensor> = trained
        .iter()
        .filter(|t| {
            all_layers
                .iter()
                .any(|l| l.weight.as_ref() == Some(&t.name))
        })
        .collect();
    let weight_grads = count(f, |op| {
        matches!(op, Op::ConvWeightGrad { .. } | Op::LinearWeightGrad {})
    });
    assert_eq!(weight_grads, weights.len(), "{what}: weight-gradient ops");
    // A sliced weight's gradient covers exactly its slice.
    let globals = &m.globals;
    for t in &trained {
        let mut shape = globals[&t.name].ty.shape.to_vec();
        if let Trainable::Channels { axis, len, .. } = t.trainable {
            shape[axis] = len;
        }
        assert_eq!(got[&t.name], shape, "{what}: gradient of {t}");
    }
    // No backward op below the earliest layer that trains.
    let lowest = all_layers
        .iter()
        .position(|l| {
            [&l.weight, &l.bias]
                .iter()
                .any(|p| p.as_ref().is_some_and(|p| want.contains(p)))
        })
        .unwrap();
    for l in &all_layers[..lowest] {
        let grad_loc = format!("{}.grad", l.name);
        let n = f
            .layout()
            .iter()
            .filter(|&&id| f.op(id).loc.name.as_deref() == Some(grad_loc.as_str()))
            .count();
        assert_eq!(n, 0, "{what}: {} is below every trained layer", l.name);
    }
}

fn zoo_model(name: &str) -> ZooModel {
    ZooModel::ALL
        .into_iter()
        .find(|m| m.onnx_file_name().trim_end_matches(".onnx") == name)
        .unwrap()
}

fn check_model(module: &Module, model: &str, source: &str) {
    let paper = PAPER_MODELS.iter().find(|m| m.name == model).unwrap();
    let l = layers(module);
    assert_eq!(
        l.iter()
            .filter(|l| matches!(l.role, Role::Backbone(_)))
            .count(),
        paper.backbone_convs
    );
    for s in paper.schemes() {
        check_scheme(
            module,
            &Scheme::Sparse(s.clone()),
            &format!("{source} {model} {}", s.name),
        );
    }
    for s in ["classifier", "bias:12", "last:12"] {
        check_scheme(
            module,
            &Scheme::parse(s).unwrap(),
            &format!("{source} {model} {s}"),
        );
    }
}

#[test]
fn paper_schemes_on_the_zoo_models() {
    for model in PAPER_MODELS {
        let m = zoo_model(model.name).build(&BuildOptions::default());
        check_model(&m, model.name, "zoo");
    }
}

#[test]
fn paper_schemes_on_the_shared_onnx_models() {
    for model in PAPER_MODELS {
        let zoo = zoo_model(model.name);
        let Some(path) = mite_test_support::shared_file(
            "paper_schemes_on_the_shared_onnx_models",
            &format!("models/{}", zoo.onnx_file_name()),
        ) else {
            return;
        };
        let m = import_file(&path, &ImportOptions::batch_one()).unwrap();
        check_model(&m, model.name, "onnx");
    }
}

/// The backward graph MbV2-w0.35 `paper:49kb` compiles to: masks and sliced saved inputs in the
/// forward section, then the backward and update ops (the forward ops themselves are omitted).
#[test]
fn mbv2_paper_49kb_backward_graph_snapshot() {
    let mut m = ZooModel::Mbv2W035.build(&BuildOptions::default());
    Scheme::parse("paper:49kb").unwrap().apply(&mut m).unwrap();
    let stats = build_training_step(&mut m, &TrainConfig::default()).unwrap();
    let text = mite::ir::text::print_function(
        m.function("train_step").unwrap(),
        &mite::ir::PrintOptions::default(),
    );
    let backward: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["grad.", "optim.", "loss", "saved_input", "return"]
                .iter()
                .any(|k| l.contains(k))
        })
        .collect();
    insta::assert_snapshot!(format!("{stats:#?}\n{}", backward.join("\n")));
}

/// Magnitude selection: permuting MbV2's expanded channels so that the sliced layers of
/// `paper:49kb` it supports (conv 41, a second pointwise conv at 1/4, and conv 49, a depthwise
/// conv at 1/8) train their largest-magnitude channels leaves the logits of real images
/// bit-identical; a first pointwise conv (its input is the residual stream) is refused by name.
#[test]
fn magnitude_permutation_keeps_the_logits_on_real_images() {
    use mite::passes::scheme::permute::permute_by_magnitude;
    let test = "magnitude_permutation_keeps_the_logits_on_real_images";
    let (Some(model), Some(data)) = (
        mite_test_support::shared_file(test, "models/mbv2-w0.35.onnx"),
        mite_test_support::shared_dir(test),
    ) else {
        return;
    };
    let m = import_file(&model, &ImportOptions::batch_one()).unwrap();
    let trained = Scheme::parse("paper:49kb")
        .unwrap()
        .resolve(&layers(&m))
        .unwrap();
    let supported: Vec<TrainedTensor> = trained
        .iter()
        .filter(|t| {
            matches!(t.trainable, Trainable::Channels { .. })
                && (t.name.contains("pointwise2") || t.name.contains("depthwise"))
        })
        .cloned()
        .collect();
    assert_eq!(supported.len(), 2, "{supported:?}");
    let mut permuted = m.clone();
    assert_eq!(permute_by_magnitude(&mut permuted, &supported).unwrap(), 2);
    mite::ir::verify_module(&permuted).unwrap();
    assert_ne!(
        permuted.globals["blocks.13.depthwise.weight"].data,
        m.globals["blocks.13.depthwise.weight"].data,
        "the permutation changed nothing"
    );
    // The slice of conv 41 (blocks.13.pointwise2, input channels) now holds its largest columns.
    let g = &permuted.globals["blocks.13.pointwise2.weight"];
    let mite::ir::GlobalData::Inline(d) = &g.data else {
        panic!("no data")
    };
    let real = d.real_values(&g.ty).unwrap();
    let (co, ci) = (g.ty.shape[0], g.ty.shape[1]);
    let norm = |c: usize| (0..co).map(|o| real[o * ci + c].powi(2)).sum::<f32>();
    let norms: Vec<f32> = (0..ci).map(norm).collect();
    assert!(norms.windows(2).all(|w| w[0] >= w[1]), "{norms:?}");

    let images = mite::data::Dataset::load(&data.join("datasets/imagenette"), "val").unwrap();
    let logits = |m: &Module| {
        mite::eval::evaluate(
            m,
            "forward",
            &images,
            mite::data::Normalization::parse("127.5,127.5").unwrap(),
            Some(20),
            mite::interp::quant::Rounding::Double,
            |_, _| {},
        )
        .unwrap()
        .1
        .values
    };
    assert_eq!(logits(&m), logits(&permuted));

    let pw1: Vec<TrainedTensor> = trained
        .iter()
        .filter(|t| t.name == "blocks.14.pointwise1.weight")
        .cloned()
        .collect();
    let err = permute_by_magnitude(&mut m.clone(), &pw1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks.14.pointwise1.weight"), "{err}");
    assert!(err.contains("residual stream"), "{err}");
}

/// One training step of MbV2 (zoo weights) with convs 49 (depthwise, 1/8) and 50 (pointwise,
/// 1/4) trained on a channel slice changes exactly the slice, and by exactly what the
/// whole-tensor update of the same step changes there.
#[test]
fn a_sliced_update_equals_the_full_update_on_its_slice() {
    use mite::interp::{Interpreter, Tensor};
    use mite::ir::{ElemType, TensorData, TensorType};
    let scheme = |ratio: &str| {
        let text = format!(
            "bias = 0\nbiases_on_path = false\n[[weight]]\nlayer = 49\nratio = \"{ratio}\"\n[[weight]]\nlayer = 50\nratio = \"{ratio}\"\n"
        );
        Scheme::from_toml(&text, "slice.toml").unwrap()
    };
    let step = |scheme: Scheme| -> (
        Vec<TrainedTensor>,
        std::collections::HashMap<String, TensorData>,
    ) {
        let mut m = ZooModel::Mbv2W035.build(&BuildOptions::default());
        let trained = scheme.apply(&mut m).unwrap();
        build_training_step(&mut m, &TrainConfig::default()).unwrap();
        let mut interp = Interpreter::new(&m).unwrap();
        let n = 3 * 128 * 128;
        let image: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
            .collect();
        let inputs = [
            Tensor::f32(&[1, 3, 128, 128], image).unwrap(),
            Tensor::new(
                TensorType::new(&[1], ElemType::I32),
                TensorData::I32(vec![3]),
            )
            .unwrap(),
            Tensor::f32(&[], vec![0.5]).unwrap(),
            Tensor::new(
                TensorType::new(&[], ElemType::I64),
                TensorData::I64(vec![0]),
            )
            .unwrap(),
        ];
        interp.run_mut("train_step", &inputs).unwrap();
        (trained, interp.take_overrides())
    };
    let (sliced, after_slice) = step(scheme("1/8"));
    let (_, after_full) = step(scheme("1"));
    let original = ZooModel::Mbv2W035.build(&BuildOptions::default());
    let mut changed = 0;
    for t in sliced.iter().filter(|t| !t.name.starts_with("classifier")) {
        let Trainable::Channels { axis, start, len } = t.trainable else {
            panic!("{t} is not sliced")
        };
        let shape = original.globals[&t.name].ty.shape.to_vec();
        let inner: usize = shape[axis + 1..].iter().product();
        let (TensorData::I8(s), TensorData::I8(f)) = (&after_slice[&t.name], &after_full[&t.name])
        else {
            panic!("{t}: not int8")
        };
        let mite::ir::GlobalData::Inline(TensorData::I8(o)) = &original.globals[&t.name].data
        else {
            panic!("{t}: no data")
        };
        for i in 0..o.len() {
            let c = (i / inner) % shape[axis];
            if (start..start + len).contains(&c) {
                assert_eq!(s[i], f[i], "{t} element {i}");
                changed += usize::from(s[i] != o[i]);
            } else {
                assert_eq!(s[i], o[i], "{t} element {i} is outside the slice");
            }
        }
    }
    assert!(changed > 0, "the step changed no element of the slices");
}
