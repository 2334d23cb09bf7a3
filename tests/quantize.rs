//! Quantizing users' float models (issue #8): the small PyTorch-style CNN of
//! `tools/small_cnn.py` (imports, quantizes, round-trips through the QDQ writer, trains), the same
//! model quantized by onnxruntime's `quantize_static`, and bad input. The float MCUNet-5FPS
//! experiment is `tests/quantize_mcunet.rs`.

mod quantize_support;

use mite::data::{Dataset, Normalization, NpyArray, NpyData};
use mite::eval::{argmax, evaluate};
use mite::interp::quant::Rounding;
use mite::model::load_model;
use mite::onnx::{DataType, Graph, Node, OnnxModel, Tensor, ValueInfo};
use mite::quantize::{calibrate, quantize_module, CalibrateOptions, Method};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mite"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the mite binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mite-quantize-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(limit: usize) -> CalibrateOptions {
    CalibrateOptions {
        method: Method::MinMax,
        limit: Some(limit),
        normalization: Normalization {
            mean: 127.5,
            std: 127.5,
        },
        resize: false,
        reduce_range: false,
    }
}

/// A Python with `onnx` (for the generator), or `None` after saying why.
fn python_with_onnx(test: &str) -> Option<String> {
    let python = std::env::var("MITE_PYTHON").unwrap_or_else(|_| "python3".to_string());
    mite_test_support::tool(test, &python)?;
    let ok = Command::new(&python)
        .args(["-c", "import onnx, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(python)
    } else if std::env::var("MITE_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{test}: {python} has no onnx module (MITE_REQUIRE_TOOLS=1)")
    } else {
        eprintln!("SKIPPED {test}: {python} has no onnx module");
        None
    }
}

/// Runs `tools/small_cnn.py` into `dir`; with `qdq_images`, also onnxruntime's QDQ model.
fn small_cnn(python: &str, dir: &Path, qdq_images: Option<&Path>) -> (PathBuf, PathBuf) {
    let float = dir.join("small_cnn.onnx");
    let qdq = dir.join("small_cnn_ort_qdq.onnx");
    let mut cmd = Command::new(python);
    cmd.arg(mite_test_support::workspace_root().join("tools/small_cnn.py"))
        .arg(&float);
    if let Some(images) = qdq_images {
        cmd.arg("--qdq").arg(images).arg(&qdq);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "small_cnn.py: {}", text(&out.stderr));
    (float, qdq)
}

fn op_count(module: &mite::ir::Module, name: &str) -> usize {
    let f = module.function("forward").unwrap();
    f.layout()
        .iter()
        .filter(|&&id| f.op(id).op.name() == name)
        .count()
}

fn train_losses(model: &str, extra: &[&str], dir: &Path) -> (f32, f32) {
    let report = dir.join(format!("report-{}.json", extra.len()));
    let mut args = vec![
        "train",
        model,
        "--data",
        "../shared/datasets/cifar10",
        "--scheme",
        "full",
        "--lr",
        "0.02",
        "--limit",
        "100",
        "--epochs",
        "3",
        "--report-json",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = mite(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let loss = |k: &str| json[k].as_f64().unwrap() as f32;
    (loss("initial_train_loss"), loss("final_train_loss"))
}

#[test]
fn small_pytorch_style_cnn_imports_quantizes_and_trains() {
    let test = "small_pytorch_style_cnn_imports_quantizes_and_trains";
    let Some(cifar) = mite_test_support::shared_dir(test).map(|d| d.join("datasets/cifar10"))
    else {
        return;
    };
    let Some(python) = python_with_onnx(test) else {
        return;
    };
    let dir = temp_dir("small");
    let (float_path, _) = small_cnn(&python, &dir, None);
    let float = load_model(float_path.to_str().unwrap()).unwrap();
    // Conv+BN folded, Clip(0,6), residual Add, ReduceMean as a global pool, Gemm as linear.
    assert_eq!(op_count(&float.module, "nn.conv2d"), 5);
    assert_eq!(op_count(&float.module, "nn.clip"), 4);
    assert_eq!(op_count(&float.module, "nn.global_avg_pool"), 1);
    assert_eq!(op_count(&float.module, "nn.linear"), 1);

    let train = Dataset::load(&cifar, "train").unwrap();
    let calibration = calibrate(&float.module, &train, &options(30), |_, _| {}).unwrap();
    let mut quantized = float.module.clone();
    let stats = quantize_module(&mut quantized, calibration, false).unwrap();
    assert_eq!(stats.get("float-ops-kept"), 0);
    assert_eq!(stats.get("activations-folded"), 4);
    assert_eq!(op_count(&quantized, "q.conv2d"), 5);
    assert_eq!(op_count(&quantized, "q.add"), 1);
    assert_eq!(op_count(&quantized, "q.global_avg_pool"), 1);
    assert_eq!(op_count(&quantized, "q.linear"), 1);

    // The int8 model follows the float one on held-out images.
    let test_split = Dataset::load(&cifar, "test").unwrap();
    let norm = options(0).normalization;
    let run = |m: &mite::ir::Module| {
        evaluate(
            m,
            "forward",
            &test_split,
            norm,
            Some(40),
            Rounding::Double,
            |_, _| {},
        )
        .unwrap()
        .1
    };
    let (lf, lq) = (run(&float.module), run(&quantized));
    let agree = lf
        .values
        .chunks(10)
        .zip(lq.values.chunks(10))
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    assert!(agree >= 34, "top-1 agreement float vs int8: {agree} / 40");

    // Written as QDQ ONNX and imported back: the same int8 ops and the same logits.
    let qdq_path = dir.join("small_cnn_mite_qdq.onnx");
    mite::onnx::write_qdq(&quantized, "forward")
        .unwrap()
        .save(&qdq_path)
        .unwrap();
    let back = load_model(qdq_path.to_str().unwrap()).unwrap();
    for op in [
        "q.conv2d",
        "q.add",
        "q.global_avg_pool",
        "q.linear",
        "q.quantize",
    ] {
        assert_eq!(op_count(&back.module, op), op_count(&quantized, op), "{op}");
    }
    assert_eq!(run(&back.module).values, lq.values);

    // Trains: through `mite train --calibrate` from the float file.
    let (first, last) = train_losses(
        float_path.to_str().unwrap(),
        &[
            "--calibrate",
            cifar.to_str().unwrap(),
            "--calibrate-limit",
            "30",
        ],
        &dir,
    );
    assert!(last < first, "loss {first} -> {last}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn onnxruntime_quantize_static_model_trains() {
    let test = "onnxruntime_quantize_static_model_trains";
    let Some(cifar) = mite_test_support::shared_dir(test).map(|d| d.join("datasets/cifar10"))
    else {
        return;
    };
    let Some(python) = quantize_support::python_with_onnxruntime(test) else {
        return;
    };
    let dir = temp_dir("ort");
    let (_, qdq) = small_cnn(&python, &dir, Some(&cifar.join("train_images.npy")));
    let model = load_model(qdq.to_str().unwrap()).unwrap();
    // uint8 activations and per-channel int8 weights fused into the int8 ops.
    assert_eq!(op_count(&model.module, "q.conv2d"), 5);
    assert_eq!(op_count(&model.module, "q.add"), 1);
    assert_eq!(op_count(&model.module, "q.linear"), 1);
    let (first, last) = train_losses(qdq.to_str().unwrap(), &[], &dir);
    assert!(last < first, "loss {first} -> {last}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A float model with `Conv → HardSwish → Conv → HardSigmoid`.
fn model_with_hard_activations() -> OnnxModel {
    let w = Tensor::from_f32(&[3, 3, 1, 1], vec![0.1; 9]).unwrap();
    let graph = Graph::new("hard")
        .with_input(ValueInfo::tensor("input", DataType::F32, &[1, 3, 8, 8]))
        .with_initializer("w", w)
        .with_node(Node::new("Conv", ["input", "w"], ["a"]).with_name("conv1"))
        .with_node(Node::new("HardSwish", ["a"], ["b"]).with_name("act1"))
        .with_node(Node::new("Conv", ["b", "w"], ["c"]).with_name("conv2"))
        .with_node(Node::new("HardSigmoid", ["c"], ["d"]).with_name("act2"))
        .with_output(ValueInfo::tensor("d", DataType::F32, &[1, 3, 8, 8]));
    OnnxModel::new(graph)
}

fn write_split(dir: &Path, split: &str, shape: [usize; 4]) {
    let n: usize = shape.iter().product();
    NpyArray {
        shape: shape.to_vec(),
        data: NpyData::U8((0..n).map(|i| (i * 7 % 256) as u8).collect()),
    }
    .write(&dir.join(format!("{split}_images.npy")))
    .unwrap();
    NpyArray {
        shape: vec![shape[0]],
        data: NpyData::U8(vec![0; shape[0]]),
    }
    .write(&dir.join(format!("{split}_labels.npy")))
    .unwrap();
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = temp_dir("bad");
    // An op outside the list: every one named with its node, in one error.
    let hard = dir.join("hard.onnx");
    model_with_hard_activations().save(&hard).unwrap();
    write_split(&dir, "rgb", [2, 3, 8, 8]);
    let out = mite(&[
        "quantize",
        hard.to_str().unwrap(),
        "--calibrate",
        dir.to_str().unwrap(),
        "--calibrate-split",
        "rgb",
        "-o",
        dir.join("out.onnx").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for part in ["HardSwish", "act1", "HardSigmoid", "act2"] {
        assert!(err.contains(part), "{part} missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");

    // A float model that imports: tiny-float-cnn takes 1x3x32x32.
    let model = load_model("zoo:tiny-float-cnn").unwrap().module;
    let cases: [(&str, [usize; 4], &str); 3] = [
        (
            "gray",
            [2, 1, 32, 32],
            "the calibration images have 1 channels, the model takes 3",
        ),
        (
            "small",
            [2, 3, 16, 16],
            "the calibration images are 16x16, the model takes 32x32",
        ),
        (
            "empty",
            [0, 3, 32, 32],
            "the calibration split has no images",
        ),
    ];
    for (split, shape, want) in cases {
        write_split(&dir, split, shape);
        let data = Dataset::load(&dir, split).unwrap();
        let err = calibrate(&model, &data, &options(10), |_, _| {}).unwrap_err();
        assert!(err.contains(want), "{split}: {err}");
        let out = mite(&[
            "quantize",
            "zoo:tiny-float-cnn",
            "--calibrate",
            dir.to_str().unwrap(),
            "--calibrate-split",
            split,
            "-o",
            dir.join("out.onnx").to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
    }
    // --resize accepts the small images.
    let data = Dataset::load(&dir, "small").unwrap();
    let mut resize = options(2);
    resize.resize = true;
    assert!(calibrate(&model, &data, &resize, |_, _| {}).is_ok());
    // An int8 model is refused.
    let int8 = load_model("zoo:tiny-int8-cnn").unwrap().module;
    let mut again = int8.clone();
    let err = quantize_module(&mut again, Default::default(), false).unwrap_err();
    assert!(err.contains("already quantized"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The zoo's tiny float CNN quantized with calibration on synthetic images: the printed int8 IR
/// (data elided by digest) is snapshot-tested, and verifies.
#[test]
fn tiny_float_cnn_quantized_ir_snapshot() {
    let dir = temp_dir("snapshot");
    write_split(&dir, "synthetic", [4, 3, 32, 32]);
    let data = Dataset::load(&dir, "synthetic").unwrap();
    let mut module = load_model("zoo:tiny-float-cnn").unwrap().module;
    let calibration = calibrate(&module, &data, &options(4), |_, _| {}).unwrap();
    let stats = quantize_module(&mut module, calibration, false).unwrap();
    mite::ir::verify_module(&module).unwrap();
    let stats: Vec<String> = stats.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let ir = mite::ir::text::print_module(&module, &mite::ir::text::PrintOptions::default());
    insta::assert_snapshot!(format!("{}\n\n{ir}", stats.join("\n")));
    let _ = std::fs::remove_dir_all(&dir);
}
