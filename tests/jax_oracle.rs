//! mite's compile-time autodiff against an external oracle: JAX computed, in float64, the loss
//! and every parameter gradient of a small CNN (conv, depthwise, pointwise, residual add, pooling,
//! linear, cross-entropy); `tools/jax_oracle.py` wrote the goldens in `tests/goldens/jax_small_cnn`.
//!
//! mite builds the training step with plain SGD at learning rate 1 (biases too), runs it once in
//! f32, and reads each gradient back as `w_before − w_after`. Criterion (per tensor, as the
//! oracle's manifest recommends): `max |g_mite − g_jax| ≤ 1e-5 · max |g_jax|`, and the loss within
//! 1e-5 relative. An elementwise relative bound would be wrong in f32: tiny gradient entries carry
//! absolute f32 rounding errors far above 1e-5 of their own size.

use mite::data::{NpyArray, NpyData};
use mite::interp::{Interpreter, Tensor};
use mite::ir::text::parse_module;
use mite::ir::{ElemType, GlobalData, TensorData, TensorType};
use mite::passes::passes::{build_training_step, TrainConfig};
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/jax_small_cnn")
}

fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = NpyArray::read(path).unwrap();
    match a.data {
        NpyData::F32(v) => (a.shape, v),
        NpyData::F64(v) => (a.shape, v.into_iter().map(|x| x as f32).collect()),
        other => panic!("{}: unexpected {}", path.display(), other.descr()),
    }
}

fn read_f64(path: &Path) -> Vec<f64> {
    match NpyArray::read(path).unwrap().data {
        NpyData::F64(v) => v,
        NpyData::F32(v) => v.into_iter().map(f64::from).collect(),
        other => panic!("{}: unexpected {}", path.display(), other.descr()),
    }
}

#[test]
fn gradients_match_jax() {
    let dir = golden_dir();
    let mut module =
        parse_module(&std::fs::read_to_string(dir.join("model.mir")).unwrap()).unwrap();
    let names: Vec<String> = module.globals.keys().cloned().collect();
    for name in &names {
        let (_, values) = read_f32(&dir.join(format!("params/{name}.npy")));
        module.globals[name].data = GlobalData::Inline(TensorData::F32(values));
    }
    let config = TrainConfig {
        lr_scale_bias: 1.0,
        qas: false,
        ..TrainConfig::default()
    };
    build_training_step(&mut module, &config).unwrap();
    mite::ir::verify_module(&module).unwrap();

    let (shape, input) = read_f32(&dir.join("input.npy"));
    let labels = match NpyArray::read(&dir.join("labels.npy")).unwrap().data {
        NpyData::I32(v) => v,
        other => panic!("labels: unexpected {}", other.descr()),
    };
    let inputs = [
        Tensor::f32(&shape, input).unwrap(),
        Tensor::new(
            TensorType::new(&[labels.len()], ElemType::I32),
            TensorData::I32(labels),
        )
        .unwrap(),
        Tensor::f32(&[], vec![1.0]).unwrap(),
        Tensor::new(
            TensorType::new(&[], ElemType::I64),
            TensorData::I64(vec![0]),
        )
        .unwrap(),
    ];
    let mut interp = Interpreter::new(&module).unwrap();
    let out = interp.run_mut("train_step", &inputs).unwrap();
    let loss = f64::from(out[0].as_f32().unwrap()[0]);
    let jax_loss = read_f64(&dir.join("loss.npy"))[0];
    println!("loss: mite {loss:.9}, jax {jax_loss:.9}");
    assert!(
        (loss - jax_loss).abs() <= 1e-5 * jax_loss.abs(),
        "loss {loss} vs {jax_loss}"
    );

    let updated: std::collections::HashMap<String, TensorData> = interp
        .updated_params()
        .into_iter()
        .map(|(n, d)| (n.to_string(), d.clone()))
        .collect();
    assert_eq!(updated.len(), names.len(), "every parameter is updated");
    for name in &names {
        let TensorData::F32(before) = module.data(name).unwrap().clone() else {
            panic!()
        };
        let TensorData::F32(after) = &updated[name] else {
            panic!("{name} is not f32")
        };
        let jax = read_f64(&dir.join(format!("grads/{name}.npy")));
        let ours: Vec<f64> = before
            .iter()
            .zip(after)
            .map(|(b, a)| f64::from(*b) - f64::from(*a))
            .collect();
        let scale = jax.iter().fold(0f64, |m, g| m.max(g.abs()));
        let worst = ours
            .iter()
            .zip(&jax)
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        println!(
            "{name:14} max|g| {scale:.4e}  max|diff| {worst:.3e}  ratio {:.2e}",
            worst / scale
        );
        assert!(
            worst <= 1e-5 * scale,
            "{name}: max |g_mite - g_jax| = {worst:e} > 1e-5 * {scale:e}"
        );
    }
}
