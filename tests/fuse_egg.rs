//! The `fuse` pass (fusion on egg) end to end: a zoo model's training step before and after the
//! pass alone gives bit-identical logits and trained int8 parameters after a few steps in the
//! graph interpreter, and the pass did fold masks into transposed convolutions.

use mite::compile::{compile, CompileOptions};
use mite::interp::{Interpreter, Tensor};
use mite::ir::{ElemType, Module, Op, TensorData, TensorType};
use mite::passes::passes::{Fuse, TrainConfig};
use mite::passes::{Pass, Statistics};
use mite::train::scheme::Scheme;

/// The training step of `model` without any fusion.
fn unfused(model: &str, scheme: &str) -> Module {
    let mut m = mite::model::load_model(model).unwrap();
    let opts = CompileOptions {
        scheme: Scheme::parse(scheme).unwrap(),
        classes: Some(10),
        seed: 0,
        config: TrainConfig::default(),
        magnitude: false,
        fusion: false,
        reorder: false,
    };
    compile(model, &mut m.module, &opts).unwrap();
    m.module
}

/// A deterministic input of `shape` in [-1, 1].
fn input(seed: usize, shape: &[usize]) -> Tensor {
    let data = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 37 + seed * 101) % 200) as f32 / 100.0 - 1.0)
        .collect();
    Tensor::f32(shape, data).unwrap()
}

fn typed(elem: ElemType, shape: &[usize], data: TensorData) -> Tensor {
    Tensor::new(TensorType::new(shape, elem), data).unwrap()
}

/// Logits after `steps` training steps and the updated parameters.
fn train(m: &Module, steps: usize) -> (Vec<Tensor>, Vec<(String, TensorData)>) {
    let fwd = m.function("forward").unwrap();
    let shape = fwd.ty(fwd.args()[0]).shape.to_vec();
    let mut interp = Interpreter::new(m).unwrap();
    for step in 0..steps {
        let inputs = [
            input(step, &shape),
            typed(
                ElemType::I32,
                &[1],
                TensorData::I32(vec![(step % 10) as i32]),
            ),
            Tensor::f32(&[], vec![0.1]).unwrap(),
            typed(ElemType::I64, &[], TensorData::I64(vec![step as i64])),
        ];
        interp.run_mut("train_step", &inputs).unwrap();
    }
    let logits = interp.run("forward", &[input(99, &shape)]).unwrap();
    let params = interp
        .updated_params()
        .into_iter()
        .map(|(name, data)| (name.to_string(), data.clone()))
        .collect();
    (logits, params)
}

fn count_masked(m: &Module) -> usize {
    let f = m.function("train_step").unwrap();
    f.layout()
        .iter()
        .filter(|&&id| matches!(f.op(id).op, Op::ConvInputGradMasked { .. }))
        .count()
}

#[test]
fn fuse_is_bit_exact_on_mbv2() {
    let before = unfused("zoo:mbv2-w0.35", "paper:99kb");
    let mut after = before.clone();
    let mut stats = Statistics::new();
    assert!(Fuse::default().run(&mut after, &mut stats).unwrap());
    mite::ir::verify_module(&after).unwrap();
    assert_eq!(count_masked(&before), 0);
    assert!(count_masked(&after) > 0, "{stats}");
    assert!(stats.get("rule.mask-into-conv-input") > 0, "{stats}");
    assert!(
        stats.get("bytes-after") < stats.get("bytes-before"),
        "{stats}"
    );
    let (logits_before, params_before) = train(&before, 3);
    let (logits_after, params_after) = train(&after, 3);
    assert!(!params_before.is_empty());
    assert_eq!(logits_before, logits_after, "logits differ after fuse");
    assert_eq!(
        params_before, params_after,
        "trained parameters differ after fuse"
    );
}
