//! Shared by the quantization tests and the `float_mcunet` example: a float MCUNet-5FPS built
//! from the dequantized weights of the paper's int8 model, in the form PyTorch's exporter writes
//! (float `Conv`s, explicit `Relu` / `Clip`, some `BatchNormalization` left unfolded), and
//! onnxruntime run through Python.

#![allow(dead_code)]

use mite::ir::{Module, Op};
use mite::onnx::{import_model, AttrValue, ImportOptions, Node, OnnxModel, Tensor};
use mite::passes::passes::Dequantize;
use mite::passes::{Pass, Statistics};
use std::path::Path;
use std::process::Command;

/// Every how many-th convolution gets an unfolded `BatchNormalization`.
pub const BN_EVERY: usize = 3;

/// Rewrites the dequantized graph into PyTorch's form: clips with a negative lower bound (the
/// int8 range of a linear layer) are dropped, and the ReLU clips alternate between `nn.relu` and
/// `nn.clip(0, max)`. Returns how many of each.
fn pytorch_activations(module: &mut Module) -> (usize, usize, usize) {
    let f = module.function_mut("forward").unwrap();
    let (mut dropped, mut relus, mut clips) = (0, 0, 0);
    for id in f.layout().to_vec() {
        let Op::Clip { min, .. } = f.op(id).op else {
            continue;
        };
        if min < 0.0 {
            let (x, y) = (f.op(id).operands[0], f.op(id).result());
            f.replace_all_uses(y, x);
            f.erase_op(id);
            dropped += 1;
        } else if (relus + clips) % 2 == 0 {
            f.op_mut(id).op = Op::Relu {};
            relus += 1;
        } else {
            clips += 1;
        }
    }
    f.compact();
    (dropped, relus, clips)
}

/// A tiny deterministic generator (for the BatchNormalization statistics).
fn lcg(state: &mut u64) -> f32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 40) as f32) / ((1u64 << 24) as f32)
}

/// Splits every [`BN_EVERY`]-th `Conv` of `model` into `Conv` + `BatchNormalization` computing
/// the same function (`W' = W / a`, `b' = (b − β) / a + μ` with `a = γ / √(σ² + ε)`); returns
/// how many.
fn unfold_batch_norms(model: &mut OnnxModel) -> usize {
    let eps = 1e-5f32;
    let mut state = 0x5eed_u64;
    let mut nodes = Vec::new();
    let mut count = 0;
    let mut conv_index = 0;
    let old = std::mem::take(&mut model.graph.nodes);
    for node in old {
        if node.op_type != "Conv" {
            nodes.push(node);
            continue;
        }
        conv_index += 1;
        if conv_index % BN_EVERY != 0 || node.inputs.len() < 3 {
            nodes.push(node);
            continue;
        }
        let inits = &mut model.graph.initializers;
        let w = inits[&node.inputs[1]].clone();
        let b = inits[&node.inputs[2]].clone();
        let co = w.dims()[0];
        let per = w.len() / co;
        let (gamma, beta, mean, var): (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) = (0..co)
            .map(|_| {
                (
                    0.5 + lcg(&mut state),
                    0.2 * (lcg(&mut state) - 0.5),
                    0.2 * (lcg(&mut state) - 0.5),
                    0.5 + lcg(&mut state),
                )
            })
            .fold(
                Default::default(),
                |mut acc: (Vec<_>, Vec<_>, Vec<_>, Vec<_>), t| {
                    acc.0.push(t.0);
                    acc.1.push(t.1);
                    acc.2.push(t.2);
                    acc.3.push(t.3);
                    acc
                },
            );
        let a: Vec<f32> = (0..co).map(|c| gamma[c] / (var[c] + eps).sqrt()).collect();
        let wv = w.data().as_f32().unwrap();
        let bv = b.data().as_f32().unwrap();
        let w2: Vec<f32> = wv.iter().enumerate().map(|(i, x)| x / a[i / per]).collect();
        let b2: Vec<f32> = (0..co)
            .map(|c| (bv[c] - beta[c]) / a[c] + mean[c])
            .collect();
        inits.insert(
            node.inputs[1].clone(),
            Tensor::from_f32(w.dims(), w2).unwrap(),
        );
        inits.insert(node.inputs[2].clone(), Tensor::from_f32(&[co], b2).unwrap());
        let base = node.name.clone();
        for (suffix, v) in [
            ("gamma", gamma),
            ("beta", beta),
            ("mean", mean),
            ("var", var),
        ] {
            inits.insert(
                format!("{base}.bn.{suffix}"),
                Tensor::from_f32(&[co], v).unwrap(),
            );
        }
        let out = node.outputs[0].clone();
        let pre = format!("{out}.prebn");
        let mut conv = node;
        conv.outputs[0] = pre.clone();
        nodes.push(conv);
        let inputs: Vec<String> = std::iter::once(pre)
            .chain(["gamma", "beta", "mean", "var"].map(|s| format!("{base}.bn.{s}")))
            .collect();
        nodes.push(
            Node::new("BatchNormalization", inputs, [out])
                .with_name(format!("{base}.bn"))
                .with_attr("epsilon", AttrValue::Float(eps)),
        );
        count += 1;
    }
    model.graph.nodes = nodes;
    count
}

/// What [`float_mcunet`] built.
pub struct FloatModel {
    /// The float ONNX model.
    pub model: OnnxModel,
    /// Linear-layer clips dropped, `Relu`s, `Clip`s, `BatchNormalization`s.
    pub counts: (usize, usize, usize, usize),
}

/// The float MCUNet-5FPS from the int8 model at `int8_path` (see the module documentation).
pub fn float_mcunet(int8_path: &Path) -> FloatModel {
    let onnx = mite::onnx::load(int8_path).unwrap();
    let mut module = import_model(&onnx, &ImportOptions::batch_one()).unwrap();
    Dequantize.run(&mut module, &mut Statistics::new()).unwrap();
    let (dropped, relus, clips) = pytorch_activations(&mut module);
    mite::ir::verify_module(&module).unwrap();
    let mut model = mite::onnx::write_qdq(&module, "forward").unwrap();
    let bns = unfold_batch_norms(&mut model);
    FloatModel {
        model,
        counts: (dropped, relus, clips, bns),
    }
}

/// A Python with `onnxruntime` and `numpy` (`$MITE_PYTHON` or `python3`), or `None` after printing
/// why the test is skipped (a failure with `MITE_REQUIRE_TOOLS=1`).
pub fn python_with_onnxruntime(test: &str) -> Option<String> {
    let python = std::env::var("MITE_PYTHON").unwrap_or_else(|_| "python3".to_string());
    mite_test_support::tool(test, &python)?;
    let ok = Command::new(&python)
        .args(["-c", "import onnxruntime, numpy"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Some(python)
    } else if std::env::var("MITE_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{test}: {python} has no onnxruntime (MITE_REQUIRE_TOOLS=1)")
    } else {
        eprintln!("SKIPPED {test}: {python} has no onnxruntime module");
        None
    }
}

/// Logits of onnxruntime for the first `n` images of `images.npy` (normalised `(p − 127.5) /
/// 127.5`), through `tools/ort_logits.py`; row-major `[n, classes]`.
pub fn onnxruntime_logits(python: &str, model: &Path, images: &Path, n: usize) -> Vec<f32> {
    let out = std::env::temp_dir().join(format!(
        "mite-ort-{}-{}.npy",
        std::process::id(),
        model.file_stem().unwrap().to_string_lossy()
    ));
    let script = mite_test_support::workspace_root().join("tools/ort_logits.py");
    let status = Command::new(python)
        .arg(script)
        .arg(model)
        .arg(images)
        .arg(n.to_string())
        .arg(&out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "tools/ort_logits.py failed on {}",
        model.display()
    );
    let array = mite::data::NpyArray::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    match array.data {
        mite::data::NpyData::F32(v) => v,
        other => panic!("unexpected logits type {}", other.descr()),
    }
}
