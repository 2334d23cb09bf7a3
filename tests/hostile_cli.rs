//! Hostile input to the `mite` command line (issue #13): every case that used to crash, hang,
//! corrupt a file or mislead, rebuilt from its description. Each run must end with a clear
//! message and exit code 1 (or 2 for a flag clap refuses), never 101 (panic) or 134 (abort),
//! under a 1 GB address-space limit, and leave its input files unchanged.

use mite::data::{NpyArray, NpyData};
use mite::onnx::{DataType, Graph, Node, OnnxModel, Tensor, ValueInfo};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Address-space limit of every run, in KiB (1 GiB; the binary itself needs a few tens of MB).
const MEMORY_LIMIT_KB: u32 = 1 << 20;

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mite-hostile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Every regular file of the directory with its bytes.
    fn contents(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&self.0).unwrap() {
            let path = entry.unwrap().path();
            if std::fs::symlink_metadata(&path).unwrap().is_file() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
        files
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `mite args` under the memory limit, with `stdin` as standard input.
fn mite_with(args: &[&str], stdin: Stdio, stdout: Stdio) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_LIMIT_KB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_mite"))
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("the mite binary runs")
}

fn mite(args: &[&str]) -> Output {
    mite_with(args, Stdio::null(), Stdio::piped())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a clean failure with `code` whose message contains `needle`.
#[track_caller]
fn fails(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status {:?}: {err}",
        out.status
    );
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Runs `mite args` in `dir` and checks that the files there are unchanged afterwards.
fn mite_keeping(dir: &Scratch, args: &[&str]) -> Output {
    let before = dir.contents();
    let out = mite(args);
    assert_eq!(
        before,
        dir.contents(),
        "the input files changed: {}",
        stderr(&out)
    );
    out
}

/// A float classifier `[1, 3, 32, 32] → [1, classes]` (Flatten + Gemm), optionally ending in
/// Softmax; `weight` fills the weight matrix.
fn classifier(classes: usize, weight: f32, softmax: bool) -> OnnxModel {
    let features = 3 * 32 * 32;
    let w: Vec<f32> = (0..classes * features)
        .map(|i| weight * ((i % 7) as f32 - 3.0) / 100.0)
        .collect();
    let mut graph = Graph::new("clf")
        .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 3, 32, 32]))
        .with_initializer("w", Tensor::from_f32(&[classes, features], w).unwrap())
        .with_initializer(
            "b",
            Tensor::from_f32(&[classes], vec![0.0; classes]).unwrap(),
        )
        .with_node(Node::new("Flatten", ["x"], ["f"]).with_name("flatten"))
        .with_node(
            Node::new("Gemm", ["f", "w", "b"], ["logits"])
                .with_name("fc")
                .with_attr("transB", 1i64),
        );
    let out = if softmax {
        graph = graph.with_node(Node::new("Softmax", ["logits"], ["p"]).with_name("softmax"));
        "p"
    } else {
        "logits"
    };
    OnnxModel::new(graph.with_output(ValueInfo::tensor(out, DataType::F32, &[1, classes])))
}

/// Writes `<split>_images.npy` ([n, c, h, w] uint8) and `<split>_labels.npy` into the scratch.
fn write_split(dir: &Scratch, split: &str, shape: [usize; 4], labels: NpyArray) {
    let count: usize = shape.iter().product();
    NpyArray {
        shape: shape.to_vec(),
        data: NpyData::U8((0..count).map(|i| (i * 37 % 251) as u8).collect()),
    }
    .write(&dir.path(&format!("{split}_images.npy")))
    .unwrap();
    labels
        .write(&dir.path(&format!("{split}_labels.npy")))
        .unwrap();
}

fn labels(values: &[u8]) -> NpyArray {
    NpyArray {
        shape: vec![values.len()],
        data: NpyData::U8(values.to_vec()),
    }
}

/// A scratch with `m.onnx` (10 classes) and the split `t` (4 images, labels < 10).
fn model_and_split(tag: &str) -> Scratch {
    let dir = Scratch::new(tag);
    classifier(10, 1.0, false).save(dir.path("m.onnx")).unwrap();
    write_split(&dir, "t", [4, 3, 32, 32], labels(&[1, 2, 3, 4]));
    dir
}

/// A chain of `n` relu ops in IR text.
fn relu_chain(n: usize) -> String {
    let mut s =
        String::from("module @chain {\n  func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {\n");
    let mut prev = "x".to_string();
    for i in 0..n {
        s.push_str(&format!("    %r{i} = nn.relu %{prev} : tensor<4xf32>\n"));
        prev = format!("r{i}");
    }
    s.push_str(&format!("    return %{prev}\n  }}\n}}\n"));
    s
}

// ---- output errors ----

#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    for cmd in [
        &["ops"][..],
        &["passes"],
        &["inspect", "zoo:tiny-float-cnn"],
    ] {
        let out = mite_with(cmd, Stdio::null(), Stdio::from(full.try_clone().unwrap()));
        fails(&out, 1, "error: writing to standard output");
    }
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = Scratch::new("pipe");
    std::fs::write(dir.path("big.mir"), relu_chain(20_000)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mite"))
        .args(["opt", &dir.arg("big.mir")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reader is gone (as after `| head -c1`); the rest of the output has nowhere to go.
    let out = child.wait_with_output().unwrap();
    assert_eq!(first[0], b'm');
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

// ---- memory bombs ----

#[test]
fn huge_class_counts_are_refused_by_the_flag() {
    let dir = model_and_split("classes");
    for n in ["9223372036854775807", "4294967296", "0", "1"] {
        let out = mite_keeping(
            &dir,
            &[
                "train",
                &dir.arg("m.onnx"),
                "--data",
                &dir.arg(""),
                "--split",
                "t",
                "--classes",
                n,
            ],
        );
        fails(&out, 2, "--classes");
    }
}

#[test]
fn a_huge_declared_ir_input_is_refused() {
    let dir = model_and_split("hugemir");
    std::fs::write(
        dir.path("big.mir"),
        "module @big {\n  func @forward(%x: tensor<1x3x100000x100000xf32>) -> tensor<1x3x100000x100000xf32> {\n    return %x\n  }\n}\n",
    )
    .unwrap();
    let out = mite_keeping(
        &dir,
        &[
            "eval",
            &dir.arg("big.mir"),
            "--data",
            &dir.arg(""),
            "--split",
            "t",
        ],
    );
    fails(&out, 1, "30000000000 elements exceed the limit");
}

#[test]
fn a_huge_declared_onnx_input_is_refused() {
    let dir = Scratch::new("hugeonnx");
    let model = OnnxModel::new(
        Graph::new("g")
            .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 3, 16000, 16000]))
            .with_node(Node::new("Relu", ["x"], ["y"]).with_name("relu"))
            .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 3, 16000, 16000])),
    );
    model.save(dir.path("big.onnx")).unwrap();
    let out = mite_keeping(&dir, &["inspect", &dir.arg("big.onnx")]);
    fails(&out, 1, "input `x` of shape [1, 3, 16000, 16000]");
}

#[cfg(unix)]
#[test]
fn endless_files_stop_at_the_input_limit() {
    let dir = model_and_split("zero");
    for name in ["zero.onnx", "zero.mir", "z_images.npy"] {
        std::os::unix::fs::symlink("/dev/zero", dir.path(name)).unwrap();
    }
    std::fs::copy(dir.path("t_labels.npy"), dir.path("z_labels.npy")).unwrap();
    for model in ["zero.onnx", "zero.mir"] {
        let out = mite(&["inspect", &dir.arg(model)]);
        fails(&out, 1, "is larger than the input limit");
    }
    let out = mite(&[
        "eval",
        &dir.arg("m.onnx"),
        "--data",
        &dir.arg(""),
        "--split",
        "z",
    ]);
    fails(&out, 1, "is larger than the input limit");
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let out = mite_with(&["opt", "-"], Stdio::from(zero), Stdio::piped());
    fails(&out, 1, "standard input is larger than the input limit");
}

// ---- super-linear passes ----

#[test]
fn long_chains_canonicalize_in_linear_time() {
    let dir = Scratch::new("chain");
    std::fs::write(dir.path("chain.mir"), relu_chain(100_000)).unwrap();
    let start = std::time::Instant::now();
    let out = mite(&[
        "opt",
        &dir.arg("chain.mir"),
        "--passes",
        "canonicalize,dce",
        "--stats",
    ]);
    let seconds = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("canonicalize.relu-of-relu = 99999"),
        "{}",
        stderr(&out)
    );
    // Quadratic canonicalization took minutes here; linear takes well under a second.
    assert!(seconds < 60.0, "100k-op chain took {seconds:.1} s");
}

// ---- silent wrong results ----

#[test]
fn pads_and_dilations_near_the_integer_limit_are_refused() {
    let dir = Scratch::new("pads");
    let max = i64::MAX;
    // 4 · 2^62 wraps to 0, so a 5x5 kernel of this dilation used to span one pixel.
    let d = 1i64 << 62;
    std::fs::write(
        dir.path("pad.mir"),
        format!(
            "module @p {{\n  const @c : tensor<2x2xf32> = dense<[1.0, 2.0, 3.0, 4.0]>\n  func @forward() -> tensor<0x2xf32> {{\n    %0 = const @c : tensor<2x2xf32>\n    %1 = nn.pad %0 {{pads = [{max}, 0, {max}, 0]}} : tensor<0x2xf32>\n    return %1\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let out = mite_keeping(
        &dir,
        &["opt", &dir.arg("pad.mir"), "--passes", "constant-fold"],
    );
    fails(&out, 1, "overflow");
    assert!(out.stdout.is_empty());
    std::fs::write(
        dir.path("dil.mir"),
        format!(
            "module @d {{\n  func @forward(%x: tensor<1x1x5x5xf32>, %w: tensor<1x1x5x5xf32>) -> tensor<1x1x5x5xf32> {{\n    %0 = nn.conv2d %x, %w {{dilations = [{d}, {d}]}} : tensor<1x1x5x5xf32>\n    return %0\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let out = mite_keeping(&dir, &["opt", &dir.arg("dil.mir")]);
    fails(&out, 1, "overflows");
}

#[test]
fn step_counts_that_overflow_or_are_zero_are_refused() {
    let dir = model_and_split("steps");
    let data = dir.arg("");
    let m = dir.arg("m.onnx");
    let base = ["train", m.as_str(), "--data", data.as_str(), "--split", "t"];
    let run = |extra: &[&str]| mite_keeping(&dir, &[&base[..], extra].concat());
    fails(
        &run(&["--epochs", "4611686018427387904"]),
        1,
        "exceeds the limit of",
    );
    fails(&run(&["--steps", "0"]), 2, "must be at least 1");
    fails(&run(&["--epochs", "0"]), 2, "must be at least 1");
    fails(
        &run(&["--steps", "20000000"]),
        2,
        "must be at most 10000000",
    );
}

#[test]
fn eval_refuses_labels_beyond_the_classes_and_nan_weights() {
    let dir = Scratch::new("evalbad");
    classifier(10, 1.0, false).save(dir.path("m.onnx")).unwrap();
    classifier(10, f32::NAN, false)
        .save(dir.path("nan.onnx"))
        .unwrap();
    write_split(&dir, "t", [4, 3, 32, 32], labels(&[1, 2, 30, 4]));
    let out = mite_keeping(
        &dir,
        &[
            "eval",
            &dir.arg("m.onnx"),
            "--data",
            &dir.arg(""),
            "--split",
            "t",
        ],
    );
    fails(
        &out,
        1,
        "image 2 has label 30 but the model predicts 10 classes",
    );
    let out = mite_keeping(
        &dir,
        &[
            "eval",
            &dir.arg("nan.onnx"),
            "--data",
            &dir.arg(""),
            "--split",
            "t",
        ],
    );
    fails(&out, 1, "initializer `w` holds a non-finite value");
    let out = mite_keeping(
        &dir,
        &[
            "train",
            &dir.arg("nan.onnx"),
            "--data",
            &dir.arg(""),
            "--split",
            "t",
        ],
    );
    fails(&out, 1, "initializer `w` holds a non-finite value");
    assert!(!stderr(&out).contains("lower --lr"));
}

#[test]
fn a_trailing_softmax_is_refused_for_training() {
    let dir = Scratch::new("softmax");
    classifier(10, 1.0, true).save(dir.path("sm.onnx")).unwrap();
    write_split(&dir, "t", [4, 3, 32, 32], labels(&[1, 2, 3, 4]));
    let out = mite_keeping(
        &dir,
        &[
            "train",
            &dir.arg("sm.onnx"),
            "--data",
            &dir.arg(""),
            "--split",
            "t",
            "--precision",
            "fp32",
        ],
    );
    fails(&out, 1, "ends in `nn.softmax`");
}

// ---- destroyed inputs ----

#[test]
fn outputs_never_overwrite_inputs_or_each_other() {
    let dir = model_and_split("outputs");
    let (m, data) = (dir.arg("m.onnx"), dir.arg(""));
    let images = dir.arg("t_images.npy");
    let eval = ["eval", m.as_str(), "--data", data.as_str(), "--split", "t"];
    let train = [
        "train",
        m.as_str(),
        "--data",
        data.as_str(),
        "--split",
        "t",
        "--steps",
        "1",
    ];
    let cases: Vec<Vec<&str>> = vec![
        [&eval[..], &["--report-json", &m]].concat(),
        [&eval[..], &["--dump-logits", &images]].concat(),
        [&train[..], &["--save-model", &m]].concat(),
        [&train[..], &["--report-json", &images]].concat(),
    ];
    for args in &cases {
        fails(&mite_keeping(&dir, args), 1, "would overwrite the input");
    }
    let same = dir.arg("out.json");
    let out = mite_keeping(
        &dir,
        &[&eval[..], &["--report-json", &same, "--dump-logits", &same]].concat(),
    );
    fails(&out, 1, "both name");
    assert!(!dir.path("out.json").exists());
}

#[test]
fn outputs_are_written_whole() {
    let dir = model_and_split("written");
    let (m, data) = (dir.arg("m.onnx"), dir.arg(""));
    std::fs::write(dir.path("r.json"), "old").unwrap();
    let out = mite(&[
        "eval",
        &m,
        "--data",
        &data,
        "--split",
        "t",
        "--report-json",
        &dir.arg("r.json"),
        "--dump-logits",
        &dir.arg("l.npy"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path("r.json")).unwrap()).unwrap();
    assert_eq!(json["n"], 4);
    let logits = NpyArray::read(&dir.path("l.npy")).unwrap();
    assert_eq!(logits.shape, vec![4, 10]);
    let leftovers: Vec<String> = dir
        .contents()
        .into_keys()
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---- accepted nonsense ----

#[test]
fn out_of_range_training_flags_are_refused() {
    let dir = model_and_split("flags");
    let (m, data) = (dir.arg("m.onnx"), dir.arg(""));
    let base = ["train", m.as_str(), "--data", data.as_str(), "--split", "t"];
    for (flag, value, needle) in [
        ("--lr", "-0.1", "must be positive"),
        ("--lr", "NaN", "must be finite"),
        ("--weight-decay", "-1", "must not be negative"),
        ("--lr-scale-bias", "-0.5", "must not be negative"),
        ("--momentum", "1", "must be less than 1"),
        ("--momentum", "-0.1", "must not be negative"),
        ("--accumulate", "0", "--accumulate"),
        ("--limit", "0", "must be at least 1"),
    ] {
        let arg = format!("{flag}={value}");
        let out = mite_keeping(&dir, &[&base[..], &[arg.as_str()]].concat());
        fails(&out, 2, needle);
    }
    let out = mite_keeping(
        &dir,
        &[&base[..], &["--steps", "3", "--accumulate", "4"]].concat(),
    );
    fails(&out, 1, "--accumulate 4 is larger than the 3 steps");
}

#[test]
fn malformed_graphs_are_refused_by_name() {
    let dir = Scratch::new("graphs");
    let conv = OnnxModel::new(
        Graph::new("g")
            .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 1, 4, 4]))
            .with_initializer("w", Tensor::from_f32(&[1, 1, 1, 1], vec![1.0]).unwrap())
            .with_node(Node::new("Conv", ["x", "w", "w", "w", "w", "w"], ["y"]).with_name("six"))
            .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 1, 4, 4])),
    );
    conv.save(dir.path("conv6.onnx")).unwrap();
    fails(
        &mite_keeping(&dir, &["inspect", &dir.arg("conv6.onnx")]),
        1,
        "6 inputs given",
    );
    let dup = OnnxModel::new(
        Graph::new("g")
            .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 4]))
            .with_node(Node::new("Relu", ["x"], ["y"]).with_name("n"))
            .with_node(Node::new("Relu", ["y"], ["z"]).with_name("n"))
            .with_output(ValueInfo::tensor("z", DataType::F32, &[1, 4])),
    );
    dup.save(dir.path("dup.onnx")).unwrap();
    fails(
        &mite_keeping(&dir, &["inspect", &dir.arg("dup.onnx")]),
        1,
        "two nodes are named `n`",
    );
}

#[test]
fn malformed_label_files_are_refused() {
    let dir = Scratch::new("labels");
    classifier(10, 1.0, false).save(dir.path("m.onnx")).unwrap();
    let square = NpyArray {
        shape: vec![2, 2],
        data: NpyData::U8(vec![1, 2, 3, 4]),
    };
    write_split(&dir, "sq", [4, 3, 32, 32], square);
    let out = mite_keeping(
        &dir,
        &[
            "eval",
            &dir.arg("m.onnx"),
            "--data",
            &dir.arg(""),
            "--split",
            "sq",
        ],
    );
    fails(
        &out,
        1,
        "expected one label per image, shape [N], found [2, 2]",
    );
    write_split(&dir, "dk", [2, 3, 32, 32], labels(&[1, 2]));
    let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), 'shape': (2,), }\n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[1, 2]);
    std::fs::write(dir.path("dk_labels.npy"), bytes).unwrap();
    let out = mite_keeping(
        &dir,
        &[
            "eval",
            &dir.arg("m.onnx"),
            "--data",
            &dir.arg(""),
            "--split",
            "dk",
        ],
    );
    fails(&out, 1, "the key 'shape' twice");
}

// ---- misleading messages ----

#[test]
fn image_layouts_are_named() {
    let dir = Scratch::new("layouts");
    classifier(10, 1.0, false).save(dir.path("m.onnx")).unwrap();
    write_split(&dir, "grey", [2, 1, 32, 32], labels(&[1, 2]));
    write_split(&dir, "nhwc", [2, 32, 32, 3], labels(&[1, 2]));
    for cmd in ["eval", "train"] {
        let out = mite_keeping(
            &dir,
            &[
                cmd,
                &dir.arg("m.onnx"),
                "--data",
                &dir.arg(""),
                "--split",
                "grey",
            ],
        );
        fails(&out, 1, "the images have 1 channel(s)");
        let out = mite_keeping(
            &dir,
            &[
                cmd,
                &dir.arg("m.onnx"),
                "--data",
                &dir.arg(""),
                "--split",
                "nhwc",
            ],
        );
        fails(&out, 1, "looks like NHWC");
    }
}

#[test]
fn eval_limit_zero_and_inspect_help() {
    let dir = model_and_split("limit");
    let out = mite_keeping(
        &dir,
        &[
            "eval",
            &dir.arg("m.onnx"),
            "--data",
            &dir.arg(""),
            "--split",
            "t",
            "--limit",
            "0",
        ],
    );
    fails(&out, 2, "must be at least 1");
    let out = mite(&["inspect", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("mite zoo"), "{help}");
    assert!(help.contains("tiny-float-cnn"), "{help}");
}
