//! Tests of the lowering: the zoo models' training steps lower, verify and account their memory.

use super::*;
use crate::passes::{build_training_step, TrainConfig};
use crate::scheme::Scheme;
use mite_ir::program::print_program;

fn lowered(mut m: Module, scheme: &str) -> Program {
    Scheme::parse(scheme).unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    lower_module(&m, &LowerOptions::default()).unwrap()
}

#[test]
fn zoo_models_lower_and_verify() {
    for (m, scheme) in [
        (mite_zoo::mcunet_5fps(), "last:6"),
        (mite_zoo::mcunet_5fps(), "paper:99kb"),
    ] {
        let p = lowered(m, scheme);
        let s = p.storage_bytes();
        assert!(s.arena > 0 && s.param > 0, "{s:?}");
        assert_eq!(p.entries.len(), 2);
        let text = print_program(&p);
        assert!(text.contains("entry @train_step"), "{text}");
    }
}

#[test]
fn tiny_model_lowers_with_every_storage_class() {
    let p = lowered(mite_zoo::tiny_int8_cnn(), "last:2");
    let kinds: std::collections::BTreeSet<&str> =
        p.buffers.iter().map(|b| b.storage.kind()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["arena", "arg", "flash", "param"]
    );
    let train = p.entry("train_step").unwrap();
    // input, label, lr, step; the int8 image is the input.
    assert_eq!(train.args.len(), 4);
    assert_eq!(p.buffer(train.args[0]).elem, BufElem::I8);
    assert_eq!(p.entry("infer").unwrap().args.len(), 1);
    // One update per trained parameter, each writing that parameter's SRAM copy.
    let params: Vec<BufferId> = (0..p.buffers.len())
        .map(|i| BufferId(i as u32))
        .filter(|&b| p.buffer(b).storage.kind() == "param")
        .collect();
    let mut updated: Vec<BufferId> = train
        .calls
        .iter()
        .filter(|c| c.kernel.is_update())
        .map(|c| c.outputs[0])
        .collect();
    updated.sort();
    assert_eq!(updated, params);
    // Scratch lives in the arena, only at its call.
    assert!(train.calls.iter().any(|c| c.scratch.is_some()));
}

#[test]
fn a_broken_plan_is_rejected() {
    let mut p = lowered(mite_zoo::tiny_int8_cnn(), "last:2");
    // Put the first call's output where its input... any two buffers a call reads and writes.
    let train = p.entry("train_step").unwrap().clone();
    let call = train
        .calls
        .iter()
        .find(|c| c.kernel.name() == "conv2d_int8" && c.scratch.is_some())
        .unwrap();
    let (y, scratch) = (call.outputs[0], call.scratch.unwrap());
    let Storage::Arena { offset } = p.buffer(y).storage else {
        panic!("conv output not in the arena")
    };
    p.buffers[scratch.index()].storage = Storage::Arena { offset };
    let err = verify_program(&p).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|e| matches!(e, mite_ir::program::ProgramError::Overlap { .. })),
        "{err}"
    );
}

#[test]
fn unsupported_ops_name_function_op_and_location() {
    let mut m = mite_zoo::tiny_int8_cnn();
    Scheme::parse("last:2").unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    let opts = LowerOptions {
        rounding: Rounding::OnnxRuntime,
        ..LowerOptions::default()
    };
    let err = lower_module(&m, &opts).unwrap_err().to_string();
    assert!(
        err.contains("@forward") && err.contains("q.conv2d") && err.contains("onnxruntime"),
        "{err}"
    );
    let err = lower_module(
        &m,
        &LowerOptions {
            forward: "nope".into(),
            ..LowerOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err, LowerError::NoFunction("nope".into()));
}

/// The calls of the training step, by kernel name.
fn train_kernels(p: &Program) -> Vec<&'static str> {
    p.entries[1].calls.iter().map(|c| c.kernel.name()).collect()
}

#[test]
fn weight_gradients_fuse_with_their_updates() {
    let mut m = mite_zoo::mcunet_5fps();
    Scheme::parse("paper:99kb").unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    let fused = lower_module(&m, &LowerOptions::default()).unwrap();
    let unfused = lower_module(
        &m,
        &LowerOptions {
            fuse_updates: false,
            ..LowerOptions::default()
        },
    )
    .unwrap();
    let count = |p: &Program, name: &str| train_kernels(p).iter().filter(|&&k| k == name).count();
    let pairs = count(&unfused, "conv2d_backward_weight");
    assert!(pairs > 0);
    assert_eq!(count(&fused, "conv2d_backward_weight_sgd"), pairs);
    assert_eq!(count(&fused, "conv2d_backward_weight"), 0);
    assert_eq!(count(&unfused, "conv2d_backward_weight_sgd"), 0);
    // Each fused pair drops one gradient and one update call, adds one.
    assert_eq!(
        fused.entries[1].calls.len() + pairs,
        unfused.entries[1].calls.len()
    );
    // No gradient buffer and no full-size scratch of the fused updates remains.
    let text = print_program(&fused);
    assert!(!text.contains("grad_full"), "{text}");
    assert!(fused.storage_bytes().arena < unfused.storage_bytes().arena);
    // The fused call comes after every other reader of the weight it updates.
    for (k, call) in fused.entries[1].calls.iter().enumerate() {
        if call.kernel.fused_gradient_bytes() > 0 {
            let w = call.outputs[0];
            let later_reader = fused.entries[1].calls[k + 1..]
                .iter()
                .any(|c| c.inputs.contains(&w));
            assert!(!later_reader, "call {k} updates {w} before a reader");
        }
    }
}
