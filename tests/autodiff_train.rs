//! Training steps built by the `autodiff` pass, run by the interpreter: the loss of a fixed
//! example decreases over a few steps, for the zoo's tiny float and int8 CNNs.

use mite::interp::{Interpreter, Tensor};
use mite::ir::{ElemType, Module, TensorData, TensorType};
use mite::passes::passes::{build_training_step, TrainConfig};

/// A deterministic pseudo-random image in `[0, 1)`.
fn image(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let data = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::new(TensorType::f32(shape), TensorData::F32(data)).unwrap()
}

/// Runs `steps` training steps on one example; returns the losses.
fn losses(mut m: Module, lr: f32, steps: i64) -> Vec<f32> {
    build_training_step(&mut m, &TrainConfig::default()).expect("the training step builds");
    let input_ty = m
        .function("forward")
        .unwrap()
        .ty(m.function("forward").unwrap().args()[0])
        .clone();
    let mut interp = Interpreter::new(&m).expect("the module verifies");
    let x = image(&input_ty.shape);
    let label = Tensor::new(
        TensorType::new(&[1], ElemType::I32),
        TensorData::I32(vec![3]),
    )
    .unwrap();
    let lr = Tensor::new(TensorType::f32(&[]), TensorData::F32(vec![lr])).unwrap();
    (0..steps)
        .map(|step| {
            let step = Tensor::new(
                TensorType::new(&[], ElemType::I64),
                TensorData::I64(vec![step]),
            )
            .unwrap();
            let out = interp
                .run_mut("train_step", &[x.clone(), label.clone(), lr.clone(), step])
                .expect("the training step runs");
            match &out[0].data {
                TensorData::F32(v) => v[0],
                other => panic!("loss of type {:?}", other.elem()),
            }
        })
        .collect()
}

#[test]
fn float_cnn_loss_decreases() {
    let l = losses(mite::zoo::tiny_float_cnn(), 0.05, 8);
    println!("losses: {l:?}");
    assert!(l.iter().all(|v| v.is_finite()), "{l:?}");
    assert!(
        l[l.len() - 1] < 0.8 * l[0],
        "the loss does not decrease: {l:?}"
    );
}

#[test]
fn int8_cnn_loss_decreases() {
    let l = losses(mite::zoo::tiny_int8_cnn(), 0.05, 8);
    println!("losses: {l:?}");
    assert!(l.iter().all(|v| v.is_finite()), "{l:?}");
    assert!(l[l.len() - 1] < l[0], "the loss does not decrease: {l:?}");
}
