//! The `mite` command line, run as a process.

use std::path::Path;
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

#[test]
fn opt_prints_the_optimised_ir() {
    let out = mite(&[
        "opt",
        "examples/ir/mbv2_block.mir",
        "--passes",
        "canonicalize,cse,dce",
        "--stats",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("module @mbv2_block {"), "{stdout}");
    assert!(stdout.contains("nn.conv2d"), "{stdout}");
    assert!(
        text(&out.stderr).contains("cse (unchanged"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn type_error_names_op_location_and_types() {
    let out = mite(&[
        "opt",
        "tests/ir/err_verify_conv_channels.mir",
        "--passes",
        "dce",
    ]);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    assert_eq!(
        stderr.trim_end(),
        "tests/ir/err_verify_conv_channels.mir:7:10: error: @forward op #1 `nn.conv2d` \"first_conv\": \
         operand 1: expected a weight with 3 input channels per group (3 / 1), found tensor<8x4x3x3xf32>"
    );
}

#[test]
fn result_type_error_shows_expected_and_found() {
    let out = mite(&["opt", "tests/ir/err_verify_result_type.mir"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("5:10: error: @forward op #1 `nn.avg_pool` \"pool\": result type: expected tensor<1x3x4x4xf32>, found tensor<1x3x3x3xf32>"),
        "{stderr}"
    );
}

#[test]
fn instrumentation_goes_to_stderr() {
    let out = mite(&[
        "opt",
        "tests/ir/stop_after.mir",
        "--passes",
        "canonicalize,cse,dce",
        "--print-ir-after-all",
        "--stop-after=cse",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("// -----// IR Dump After canonicalize //----- //"),
        "{stderr}"
    );
    assert!(
        stderr.contains("// -----// IR Dump After cse //----- //"),
        "{stderr}"
    );
    assert!(!stderr.contains("After dce"), "{stderr}");
    assert!(text(&out.stdout).contains("nn.softmax"), "dce did not run");
}

#[test]
fn bad_pipeline_and_missing_file_fail_cleanly() {
    let out = mite(&["opt", "examples/ir/mbv2_block.mir", "--passes", "cse,,dce"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).starts_with("error: in pipeline `cse,,dce`"),
        "{}",
        text(&out.stderr)
    );
    let missing = Path::new("tests/ir/does_not_exist.mir");
    let out = mite(&["opt", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).starts_with("error: cannot read tests/ir/does_not_exist.mir"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn generic_output_parses_back() {
    let out = mite(&["opt", "examples/ir/mbv2_block.mir", "--generic"]);
    assert!(out.status.success());
    let generic = text(&out.stdout);
    assert!(generic.contains("\"nn.conv2d\"("), "{generic}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mite"))
        .args(["opt", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(generic.as_bytes())
        .unwrap();
    let back = child.wait_with_output().unwrap();
    assert!(back.status.success());
    let pretty = mite(&["opt", "examples/ir/mbv2_block.mir"]);
    assert_eq!(text(&back.stdout), text(&pretty.stdout));
}

#[test]
fn lists_passes_and_ops() {
    let out = mite(&["passes"]);
    assert!(out.status.success());
    for pass in ["canonicalize", "constant-fold", "cse", "dce"] {
        assert!(text(&out.stdout).contains(pass), "{}", text(&out.stdout));
    }
    let out = mite(&["ops"]);
    assert!(text(&out.stdout).contains("nn.conv2d"));
    assert!(text(&out.stdout).contains("q.conv2d"));
}

#[test]
fn inspect_reports_the_paper_figures_as_json() {
    let Some(model) = mite_test_support::shared_file("inspect_json", "models/mbv2-w0.35.onnx")
    else {
        return;
    };
    let out = mite(&["inspect", model.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // NOTES §6: 0.24 M parameters and 16.6 M MACs for the backbone (classifier excluded).
    assert_eq!(json["param_elements_backbone"], 244_448);
    assert_eq!(json["macs_backbone"], 16_646_912);
    assert_eq!(json["ops"]["q.conv2d"], 52);
    assert_eq!(json["inputs"][0], "tensor<1x3x128x128xf32>");
}

#[test]
fn eval_writes_logits_and_a_json_report() {
    let Some(shared) = mite_test_support::shared_dir("eval_cli") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("mite-eval-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (logits, report) = (dir.join("logits.npy"), dir.join("report.json"));
    let out = mite(&[
        "eval",
        shared.join("models/mcunet-5fps.onnx").to_str().unwrap(),
        "--data",
        shared.join("datasets/imagenette").to_str().unwrap(),
        "--split",
        "val",
        "--limit",
        "4",
        "--dump-logits",
        logits.to_str().unwrap(),
        "--report-json",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["n"], 4);
    assert!(json["accuracy"].as_f64().unwrap() >= 0.0);
    let array = mite::data::NpyArray::read(&logits).unwrap();
    assert_eq!(array.shape, vec![4, 1000]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn eval_rejects_bad_inputs_with_clear_messages() {
    let out = mite(&[
        "eval",
        "zoo:tiny-float-cnn",
        "--data",
        "/nonexistent",
        "--split",
        "val",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/nonexistent/val_images.npy"),
        "{}",
        text(&out.stderr)
    );
    let out = mite(&["eval", "zoo:nope", "--data", "/x", "--split", "val"]);
    assert!(
        text(&out.stderr).contains("unknown zoo model `nope`"),
        "{}",
        text(&out.stderr)
    );
    let out = mite(&[
        "eval",
        "zoo:tiny-float-cnn",
        "--data",
        "/x",
        "--split",
        "val",
        "--normalize",
        "1",
    ]);
    assert!(
        text(&out.stderr).contains("--normalize"),
        "{}",
        text(&out.stderr)
    );
}

/// Writes a small random image split (`n` images 3×32×32, labels < 10) into `dir`.
fn write_split(dir: &std::path::Path, split: &str, n: usize) {
    use mite::data::{NpyArray, NpyData};
    let pixels: Vec<u8> = (0..n * 3 * 32 * 32)
        .map(|i| ((i * 7919) % 251) as u8)
        .collect();
    let images = NpyArray {
        shape: vec![n, 3, 32, 32],
        data: NpyData::U8(pixels),
    };
    images
        .write(&dir.join(format!("{split}_images.npy")))
        .unwrap();
    let labels = NpyArray {
        shape: vec![n],
        data: NpyData::U8((0..n).map(|i| (i % 10) as u8).collect()),
    };
    labels
        .write(&dir.join(format!("{split}_labels.npy")))
        .unwrap();
}

#[test]
fn train_runs_steps_and_writes_a_report() {
    let dir = std::env::temp_dir().join(format!("mite-train-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_split(&dir, "train", 8);
    write_split(&dir, "test", 4);
    let report = dir.join("report.json");
    for extra in [
        &["--precision", "int8"][..],
        &["--precision", "fp32"],
        &["--fp32-head", "--qas", "off"],
    ] {
        let mut args = vec![
            "train",
            "zoo:tiny-int8-cnn",
            "--data",
            dir.to_str().unwrap(),
            "--eval-split",
            "test",
            "--steps",
            "12",
            "--scheme",
            "last:2",
            "--lr",
            "0.001",
            "--report-json",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = mite(&args);
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("steps/s"), "progress on stderr");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(json["steps"], 12);
        assert_eq!(json["losses"].as_array().unwrap().len(), 12);
        assert!(json["final_train_loss"].as_f64().unwrap().is_finite());
        assert!(json["eval_accuracy"].as_f64().unwrap() >= 0.0);
    }
    let out = mite(&[
        "train",
        "zoo:tiny-int8-cnn",
        "--data",
        dir.to_str().unwrap(),
        "--scheme",
        "last:x",
    ]);
    assert!(
        text(&out.stderr).contains("--scheme"),
        "{}",
        text(&out.stderr)
    );
    let out = mite(&[
        "train",
        "zoo:tiny-int8-cnn",
        "--data",
        dir.to_str().unwrap(),
        "--save-model",
        "x.onnx",
    ]);
    assert!(
        text(&out.stderr).contains("--save-model needs an ONNX model"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn train_saves_the_trained_onnx_model() {
    let Some(shared) = mite_test_support::shared_dir("train_save_model") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("mite-train-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("trained.onnx");
    let model = shared.join("models/mcunet-5fps.onnx");
    let out = mite(&[
        "train",
        model.to_str().unwrap(),
        "--data",
        shared.join("datasets/imagenette").to_str().unwrap(),
        "--split",
        "val",
        "--steps",
        "3",
        "--scheme",
        "classifier",
        "--lr",
        "0.001",
        "--save-model",
        saved.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = mite::onnx::load(&model).unwrap();
    let after = mite::onnx::load(&saved).unwrap();
    let changed: Vec<&String> = before
        .graph
        .initializers
        .iter()
        .filter(|(name, t)| after.graph.initializers[*name] != **t)
        .map(|(name, _)| name)
        .collect();
    assert!(!changed.is_empty(), "training changed no initializer");
    assert!(
        changed.iter().all(|n| n.starts_with("classifier.")),
        "only the classifier trained: {changed:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn train_with_a_new_head_saves_a_resized_onnx_model() {
    let Some(shared) = mite_test_support::shared_dir("train_save_new_head") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("mite-train-head-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("trained10.onnx");
    let out = mite(&[
        "train",
        shared.join("models/mcunet-5fps.onnx").to_str().unwrap(),
        "--data",
        shared.join("datasets/cifar10").to_str().unwrap(),
        "--classes",
        "10",
        "--scheme",
        "last:2",
        "--steps",
        "3",
        "--lr",
        "0.001",
        "--save-model",
        saved.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let model = mite::onnx::load(&saved).unwrap();
    assert_eq!(
        model.graph.initializers["classifier.weight"].dims(),
        &[10, 160, 1, 1]
    );
    assert_eq!(model.graph.initializers["classifier.bias"].dims(), &[10]);
    // The written model imports again, verifies, and computes 10 logits.
    let back = mite::onnx::import_model(&model, &mite::onnx::ImportOptions::batch_one()).unwrap();
    let f = back.function("forward").unwrap();
    assert_eq!(f.ty(f.outputs()[0]).shape.as_slice(), &[1, 10]);
    std::fs::remove_dir_all(&dir).ok();
}
