//! Streamed frozen bottlenecks end to end: the three paper models compiled with their paper
//! scheme with and without `stream-bottlenecks` give bit-identical forward logits, and
//! bit-identical parameters after a few training steps in the graph interpreter. The zoo models
//! (seeded weights) share one activation quantization; the real int8 models of `../shared`
//! (a different scale and zero point per tensor) are checked too.

use mite::compile::{compile, CompileOptions};
use mite::interp::{Interpreter, Tensor};
use mite::ir::{ElemType, Module, Op, TensorData, TensorType};
use mite::passes::passes::{TrainConfig, UpdatePlacement};
use mite::train::scheme::Scheme;

fn compiled(model: &str, scheme: &str, fusion: bool) -> (Module, Vec<String>) {
    let mut m = mite::model::load_model(model).unwrap();
    let opts = CompileOptions {
        scheme: Scheme::parse(scheme).unwrap(),
        classes: Some(10),
        seed: 0,
        config: TrainConfig {
            updates: UpdatePlacement::AsSoonAsReady,
            ..TrainConfig::default()
        },
        magnitude: false,
        fusion,
        reorder: true,
    };
    let report = compile(model, &mut m.module, &opts).unwrap();
    mite::ir::verify_module(&m.module).unwrap();
    (m.module, report.fusion.streamed_blocks)
}

fn image(seed: usize, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| (((i + seed * 131) * 7919) % 255) as f32 / 127.5 - 1.0)
        .collect();
    Tensor::f32(shape, data).unwrap()
}

fn scalar_i64(v: i64) -> Tensor {
    Tensor::new(
        TensorType::new(&[], ElemType::I64),
        TensorData::I64(vec![v]),
    )
    .unwrap()
}

fn label(v: i32) -> Tensor {
    Tensor::new(
        TensorType::new(&[1], ElemType::I32),
        TensorData::I32(vec![v]),
    )
    .unwrap()
}

/// Forward logits before and after `steps` training steps, and the updated parameters.
fn run(m: &Module, steps: usize) -> (Vec<Vec<Tensor>>, Vec<(String, TensorData)>) {
    let shape = m.function("forward").unwrap().args()[0];
    let shape = m.function("forward").unwrap().ty(shape).shape.to_vec();
    let mut interp = Interpreter::new(m).unwrap();
    let mut logits = vec![interp.run("forward", &[image(0, &shape)]).unwrap()];
    for step in 0..steps {
        let inputs = [
            image(step + 1, &shape),
            label(step as i32 % 10),
            Tensor::f32(&[], vec![0.05]).unwrap(),
            scalar_i64(step as i64),
        ];
        interp.run_mut("train_step", &inputs).unwrap();
    }
    logits.push(interp.run("forward", &[image(0, &shape)]).unwrap());
    let params = interp
        .updated_params()
        .into_iter()
        .map(|(name, data)| (name.to_string(), data.clone()))
        .collect();
    (logits, params)
}

fn check(model: &str, scheme: &str) {
    let (plain, none) = compiled(model, scheme, false);
    let (fused, blocks) = compiled(model, scheme, true);
    assert!(none.is_empty());
    assert!(!blocks.is_empty(), "{model}: nothing fused");
    let step = fused.function("train_step").unwrap();
    // A `q.bottleneck_chain` holds two fused blocks.
    let count = |f: &mite::ir::Function| {
        f.layout()
            .iter()
            .map(|&id| match f.op(id).op {
                Op::QBottleneck { .. } => 1,
                Op::QBottleneckChain { .. } => 2,
                _ => 0,
            })
            .sum::<usize>()
    };
    assert_eq!(count(step), blocks.len());
    let chains = step
        .layout()
        .iter()
        .filter(|&&id| matches!(step.op(id).op, Op::QBottleneckChain { .. }))
        .count();
    assert_eq!(
        chains, 1,
        "{model}: the first stage is not chained into block 1"
    );
    assert!(count(fused.function("forward").unwrap()) >= blocks.len());
    let (logits_plain, params_plain) = run(&plain, 3);
    let (logits_fused, params_fused) = run(&fused, 3);
    assert_eq!(logits_plain, logits_fused, "{model}: logits differ");
    assert!(!params_plain.is_empty());
    assert_eq!(
        params_plain, params_fused,
        "{model}: trained parameters differ"
    );
    assert_ne!(
        logits_plain[0], logits_plain[1],
        "{model}: training changed nothing"
    );
}

const MODELS: [(&str, &str); 3] = [
    ("mcunet-5fps", "paper:99kb"),
    ("mbv2-w0.35", "paper:99kb"),
    ("proxyless-w0.3", "paper:98kb"),
];

#[test]
fn zoo_models_are_bit_exact_with_fusion() {
    for (model, scheme) in MODELS {
        check(&format!("zoo:{model}"), scheme);
    }
}

#[test]
fn shared_int8_models_are_bit_exact_with_fusion() {
    let test = "shared_int8_models_are_bit_exact_with_fusion";
    for (model, scheme) in MODELS {
        let Some(path) = mite_test_support::shared_file(test, &format!("models/{model}.onnx"))
        else {
            return;
        };
        check(path.to_str().unwrap(), scheme);
    }
}
