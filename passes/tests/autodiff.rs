//! The `autodiff` pass on whole models: the training IR of the zoo's tiny float and int8 CNNs
//! (insta snapshots), dead-gradient elimination for sparse schemes, update placement, optimizer
//! state, options from pipeline text, and the errors.

use mite_ir::text::print_function;
use mite_ir::verify::verify_module;
use mite_ir::{Builder, CustomOp, GlobalKind, Module, Op, OpData, PrintOptions, TensorType};
use mite_passes::passes::{
    build_training_step, AutodiffError, Loss, TrainConfig, TrainStats, UpdatePlacement,
};
use mite_passes::{PassManager, PassRegistry};

fn build(m: &mut Module, config: &TrainConfig) -> TrainStats {
    let stats = build_training_step(m, config).expect("the training step builds");
    verify_module(m).expect("the training step verifies");
    stats
}

fn train_step(m: &Module) -> String {
    print_function(m.function("train_step").unwrap(), &PrintOptions::default())
}

/// Marks only the parameters for which `keep` holds as trainable.
fn train_only(m: &mut Module, keep: impl Fn(&str) -> bool) {
    for (name, g) in m.globals.iter_mut() {
        if let GlobalKind::Param { trainable } = &mut g.kind {
            *trainable = mite_ir::Trainable::from_bool(keep(name));
        }
    }
}

/// The ops of `@train_step` after the loss (the backward pass and the updates).
fn after_loss(m: &Module) -> Vec<OpData> {
    let f = m.function("train_step").unwrap();
    let loss = f
        .layout()
        .iter()
        .position(|&id| f.op(id).loc.name.as_deref() == Some("loss"))
        .unwrap();
    f.layout()[loss + 1..]
        .iter()
        .map(|&id| f.op(id).clone())
        .collect()
}

#[test]
fn tiny_float_cnn_full_update() {
    let mut m = mite_zoo::tiny_float_cnn();
    let before = print_function(m.function("forward").unwrap(), &PrintOptions::full());
    let stats = build(&mut m, &TrainConfig::default());
    let after = print_function(m.function("forward").unwrap(), &PrintOptions::full());
    assert_eq!(before, after, "forward is left unchanged");
    assert_eq!(stats.updated_params.len(), 20);
    assert_eq!(stats.optimizer_ops, 20);
    assert_eq!(stats.masks_saved, 6, "one per ReLU6");
    insta::assert_snapshot!(format!("{stats:#?}\n{}", train_step(&m)));
}

#[test]
fn tiny_int8_cnn_full_update() {
    let mut m = mite_zoo::tiny_int8_cnn();
    let stats = build(&mut m, &TrainConfig::default());
    assert_eq!(stats.updated_params.len(), 20);
    assert_eq!(stats.masks_saved, 11, "one per q.conv2d and the q.add");
    insta::assert_snapshot!(format!("{stats:#?}\n{}", train_step(&m)));
}

#[test]
fn classifier_only_has_no_backward_op_before_the_classifier() {
    for mut m in [mite_zoo::tiny_float_cnn(), mite_zoo::tiny_int8_cnn()] {
        train_only(&mut m, |name| name.starts_with("classifier."));
        let stats = build(&mut m, &TrainConfig::default());
        assert_eq!(
            stats.updated_params,
            ["classifier.weight", "classifier.bias"]
        );
        for data in after_loss(&m) {
            let loc = data.loc.name.as_deref().unwrap_or("");
            assert!(
                matches!(data.op, Op::Sgd { .. })
                    || ["loss", "logits", "classifier", "dequantize_logits"]
                        .iter()
                        .any(|p| loc.starts_with(p)),
                "backward op {} at {loc:?} reaches an earlier layer",
                data.op.name()
            );
            assert!(!matches!(
                data.op,
                Op::ConvInputGrad { .. } | Op::GlobalAvgPoolGrad { .. }
            ));
        }
        // Saved: the pooled features for the weight gradient and the logits for the loss.
        assert_eq!(stats.activations_saved, 2, "{stats:#?}");
    }
}

#[test]
fn int8_bias_only_saves_masks_and_no_activation() {
    // "bias-only for the last k layers needs no saved input activation, only a 1-bit mask".
    let mut m = mite_zoo::tiny_int8_cnn();
    train_only(&mut m, |name| {
        name.ends_with(".bias")
            && (name.starts_with("blocks.2.") || name.starts_with("classifier."))
    });
    let stats = build(&mut m, &TrainConfig::default());
    assert_eq!(stats.updated_params.len(), 4);
    assert_eq!(stats.masks_saved, 4, "{stats:#?}");
    assert_eq!(stats.activations_saved, 1, "only the logits: {stats:#?}");
    let ops: Vec<String> = after_loss(&m)
        .iter()
        .map(|d| d.op.name().to_string())
        .collect();
    assert!(!ops.iter().any(|o| o == "grad.conv2d_weight"), "{ops:?}");
    assert!(!ops.iter().any(|o| o == "q.dequantize"), "{ops:?}");
    // No gradient below the first trained layer.
    assert!(!after_loss(&m).iter().any(|d| {
        matches!(d.op, Op::ConvInputGrad { .. })
            && d.loc.name.as_deref() == Some("blocks.2.pointwise1.grad")
    }));
}

#[test]
fn updates_as_soon_as_ready_follow_their_gradient_and_last_reader() {
    let mut m = mite_zoo::tiny_float_cnn();
    let config = TrainConfig {
        updates: UpdatePlacement::AsSoonAsReady,
        ..TrainConfig::default()
    };
    let stats = build(&mut m, &config);
    assert_eq!(stats.optimizer_ops, 20);
    let f = m.function("train_step").unwrap();
    let layout = f.layout();
    let last_backward = layout
        .iter()
        .rposition(|&id| !matches!(f.op(id).op, Op::Sgd { .. }))
        .unwrap();
    let first_update = layout
        .iter()
        .position(|&id| matches!(f.op(id).op, Op::Sgd { .. }))
        .unwrap();
    assert!(first_update < last_backward, "updates are interleaved");
    for (pos, &id) in layout.iter().enumerate() {
        let Op::Sgd { param, .. } = &f.op(id).op else {
            continue;
        };
        // Every op reading the parameter comes before its update.
        for (later, &other) in layout.iter().enumerate().skip(pos + 1) {
            let reads_param = f.op(other).operands.iter().any(|&v| {
                matches!(f.value(v).def, mite_ir::ValueDef::Result(def, _)
                    if matches!(&f.op(def).op, Op::Param { global } if global == param))
            });
            assert!(!reads_param, "op #{later} reads {param} after its update");
        }
    }
    // The classifier is updated right after its gradients.
    let names: Vec<&str> = layout.iter().map(|&id| f.op(id).op.name()).collect();
    let bias_grad = names.iter().position(|&n| n == "grad.conv2d_bias").unwrap();
    assert_eq!(names[bias_grad + 1], "optim.sgd");
}

#[test]
fn momentum_and_accumulation_declare_state() {
    let mut m = mite_zoo::tiny_int8_cnn();
    train_only(&mut m, |name| name.starts_with("classifier."));
    let config = TrainConfig {
        momentum: 0.9,
        accumulate: 4,
        weight_decay: 1e-4,
        stochastic: true,
        seed: 7,
        ..TrainConfig::default()
    };
    build(&mut m, &config);
    for name in [
        "classifier.weight.momentum",
        "classifier.weight.grad_acc",
        "classifier.bias.momentum",
        "classifier.bias.grad_acc",
    ] {
        let g = &m.globals[name];
        assert_eq!(g.kind, GlobalKind::State, "{name}");
        assert_eq!(g.ty.elem, mite_ir::ElemType::F32);
    }
    assert!(!m.globals.contains_key("first_conv.weight.momentum"));
    let text = train_step(&m);
    // Each parameter's stochastic-rounding seed is the option's seed plus its declaration index.
    let weight_seed = 7 + m.globals.get_index_of("classifier.weight").unwrap();
    let bias_seed = 7 + m.globals.get_index_of("classifier.bias").unwrap();
    assert_ne!(weight_seed, bias_seed);
    let expected = format!(
        "param = @classifier.weight, lr_scale = 1.0, momentum = 0.9, weight_decay = 0.0001, qas = true, stochastic = true, seed = {weight_seed}, accumulate = 4"
    );
    assert!(text.contains(&expected), "{text}");
    assert!(
        text.contains(&format!("seed = {bias_seed}, accumulate = 4")),
        "{text}"
    );
    // Each update names its state.
    assert!(
        text.contains("accumulate = 4, momentum_state = @classifier.weight.momentum, accum_state = @classifier.weight.grad_acc,"),
        "{text}"
    );
}

#[test]
fn pipeline_text_sets_the_options() {
    let registry = PassRegistry::with_builtin();
    let passes = registry
        .parse_pipeline(
            "autodiff{loss=mse,lr-scale-bias=0.25,momentum=0,weight-decay=0,qas=false,stochastic=false,accumulate=1,updates=asap},dce",
        )
        .unwrap();
    let mut m = mite_zoo::tiny_int8_mlp();
    let mut pm = PassManager::new(passes);
    let report = pm.run(&mut m).unwrap();
    let stats = report.statistics();
    assert_eq!(stats.get("autodiff.optimizer-ops"), 4);
    assert_eq!(stats.get("autodiff.params-updated"), 4);
    assert_eq!(stats.get("autodiff.masks-saved"), 2);
    let text = train_step(&m);
    assert!(text.contains("%target: tensor<1x4xf32>"), "{text}");
    assert!(text.contains("nn.mse_loss"));
    assert!(text.contains("lr_scale = 0.25, momentum = 0.0, weight_decay = 0.0, qas = false"));

    for (text, message) in [
        ("autodiff{loss=hinge}", "expected `cross-entropy` or `mse`"),
        ("autodiff{accumulate=0}", "expected an integer ≥ 1"),
        ("autodiff{updates=later}", "expected `end` or `asap`"),
        ("autodiff{qas=yes}", "expected `true` or `false`"),
        (
            "autodiff{frobnicate=1}",
            "known options: loss, lr-scale-bias",
        ),
    ] {
        let e = registry.parse_pipeline(text).err().unwrap();
        assert!(e.to_string().contains(message), "{text}: {e}");
    }
}

fn err(m: &mut Module, config: &TrainConfig) -> AutodiffError {
    let before = m.clone();
    let e = build_training_step(m, config).unwrap_err();
    assert_eq!(
        m.functions.len(),
        before.functions.len(),
        "unchanged on error"
    );
    assert_eq!(m.globals, before.globals, "unchanged on error");
    e
}

#[test]
fn errors_are_precise() {
    let config = TrainConfig::default();

    let mut m = Module::new("empty");
    assert_eq!(
        err(&mut m, &config).to_string(),
        "no function @forward to differentiate"
    );

    let mut m = mite_zoo::tiny_float_cnn();
    build(&mut m, &config);
    assert_eq!(
        err(&mut m, &config).to_string(),
        "function @train_step exists already"
    );

    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1, 2, 2, 2]));
    let w = b.param("w", TensorType::f32(&[2]), true, None).unwrap();
    let y = b.op(Op::Add {}, &[x, w]).unwrap();
    b.ret(&[y]);
    assert_eq!(
        err(&mut m, &config).to_string(),
        "@forward must return logits of type tensor<NxCxf32>, found tensor<1x2x2x2xf32>"
    );

    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1, 2]));
    let _ = b.arg("y", TensorType::f32(&[1, 2]));
    b.ret(&[x]);
    assert_eq!(
        err(&mut m, &config).to_string(),
        "@forward must take exactly one input (the image), found 2"
    );

    let mut m = mite_zoo::tiny_float_cnn();
    train_only(&mut m, |_| false);
    assert_eq!(
        err(&mut m, &config).to_string(),
        "no trainable parameter: mark parameters `trainable` to train them"
    );

    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1, 2]));
    let w = b
        .param("unused", TensorType::f32(&[2]), true, None)
        .unwrap();
    let _ = b.op(Op::Relu {}, &[w]).unwrap();
    b.ret(&[x]);
    assert_eq!(
        err(&mut m, &config).to_string(),
        "no trainable parameter influences the logits of @forward (trainable: unused)"
    );

    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1, 2]));
    let w = b.param("w", TensorType::f32(&[1, 2]), true, None).unwrap();
    let h = b.op(Op::Add {}, &[x, w]).unwrap();
    let custom = Op::Custom(CustomOp {
        name: "acme.gelu".into(),
        attrs: vec![],
    });
    let y = b
        .named("act")
        .op_typed(custom, &[h], vec![TensorType::f32(&[1, 2])])
        .unwrap()[0];
    b.ret(&[y]);
    assert_eq!(
        err(&mut m, &config).to_string(),
        "@forward op #2 acme.gelu \"act\" lies on the gradient path but is not differentiable: custom ops have no gradient rule"
    );

    let mut m = mite_zoo::tiny_int8_mlp();
    let bad = TrainConfig {
        accumulate: 0,
        ..TrainConfig::default()
    };
    assert!(matches!(err(&mut m, &bad), AutodiffError::InvalidConfig(_)));
    let mse = TrainConfig {
        loss: Loss::Mse,
        momentum: -1.0,
        ..TrainConfig::default()
    };
    assert!(matches!(err(&mut m, &mse), AutodiffError::InvalidConfig(_)));
}

#[test]
fn the_pass_reports_statistics_and_fails_cleanly() {
    let registry = PassRegistry::with_builtin();
    let mut m = mite_zoo::tiny_float_cnn();
    let mut pm = PassManager::new(registry.parse_pipeline("autodiff").unwrap());
    let report = pm.run(&mut m).unwrap();
    let s = report.statistics();
    for key in [
        "forward-ops",
        "mask-ops",
        "backward-ops",
        "optimizer-ops",
        "adjoints",
        "masks-saved",
        "mask-bytes",
        "activations-saved",
        "activation-bytes",
        "params-updated",
        "trainable-params-without-gradient",
    ] {
        assert!(s.contains(&format!("autodiff.{key}")), "{key}");
    }
    let mut pm = PassManager::new(registry.parse_pipeline("autodiff").unwrap());
    let e = pm.run(&mut m).unwrap_err();
    assert!(
        e.to_string()
            .contains("function @train_step exists already"),
        "{e}"
    );
}
