//! `mite compile` with sparse-update schemes, and the errors of bad schemes, as a process.

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

/// Fails with exit code 1 and a message containing `want` (and no panic).
fn fails_with(args: &[&str], want: &str) {
    let out = mite(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn compile_reports_the_scheme_as_json() {
    let dir = std::env::temp_dir().join(format!("mite-sparse-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let out = mite(&[
        "compile",
        "zoo:mbv2-w0.35",
        "--scheme",
        "paper:99kb",
        "--emit",
        "none",
        "--report-json",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let scheme = &json["scheme"];
    assert_eq!(scheme["name"], "paper:99kb");
    let bytes = scheme["analytic_extra_bytes"].as_u64().unwrap() as f64;
    assert!((bytes / 1024.0 - 99.0).abs() < 0.03 * 99.0, "{bytes}");
    let trainable: Vec<&str> = scheme["trainable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // Conv 42 (blocks.14.pointwise1) at 1/8 of its 56 input channels.
    assert!(
        trainable.contains(&"blocks.14.pointwise1.weight[:, 0:7]"),
        "{trainable:?}"
    );
    assert!(trainable.contains(&"classifier.weight"));
    assert_eq!(
        json["training_step"]["optimizer_ops"].as_u64().unwrap() as usize,
        trainable.len()
    );
    // The first stage (stem conv -> depthwise -> pointwise) and the seven frozen bottlenecks
    // before the first trained block are streamed by rows.
    let streamed = json["fusion"]["streamed_blocks"].as_array().unwrap();
    assert_eq!(streamed.len(), 8, "{streamed:?}");
    assert_eq!(streamed[0], "first_conv.weight");
    assert_eq!(streamed[1], "blocks.1.pointwise1.weight");
    let out = mite(&[
        "compile",
        "zoo:mbv2-w0.35",
        "--scheme",
        "paper:99kb",
        "--no-fusion",
        "--report-json",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        json["fusion"]["streamed_blocks"].as_array().unwrap().len(),
        0
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_schemes_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("mite-sparse-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let malformed = dir.join("malformed.toml");
    std::fs::write(
        &malformed,
        "bias = 3\n[[weight]]\nlayer = 1\nratio = \"1/3\"\n",
    )
    .unwrap();
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "bias = [\n").unwrap();
    let compile = |scheme: &str, want: &str| {
        fails_with(
            &[
                "compile",
                "zoo:mcunet-5fps",
                "--scheme",
                scheme,
                "--emit",
                "none",
            ],
            want,
        )
    };
    compile("half", "unknown scheme `half`");
    compile("paper:50kb", "no 50kb scheme for mcunet-5fps");
    compile("last:100", "the model has 42 backbone convs, not 100");
    compile(malformed.to_str().unwrap(), "ratio `1/3` is not one of");
    compile(broken.to_str().unwrap(), "line 1");
    compile("missing.toml", "scheme file missing.toml");
    fails_with(
        &["compile", "zoo:tiny-int8-cnn", "--scheme", "paper:49kb"],
        "this model has 9 backbone convs",
    );
    fails_with(
        &["compile", "zoo:mcunet-5fps", "--emit", "wasm"],
        "--emit: expected none, mir, program, rust or c",
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn channel_selection_flag() {
    fails_with(
        &[
            "compile",
            "zoo:mcunet-5fps",
            "--scheme",
            "paper:99kb",
            "--channels",
            "sideways",
        ],
        "--channels: expected first or magnitude, found `sideways`",
    );
    // The paper's schemes slice first pointwise convs, whose input channels are the residual
    // stream: magnitude selection there is refused by name.
    fails_with(
        &[
            "compile",
            "zoo:mcunet-5fps",
            "--scheme",
            "paper:99kb",
            "--channels",
            "magnitude",
        ],
        "its channels are not produced by a conv used only by it",
    );
    // A second pointwise conv at 1/4: its input channels are permuted to the front.
    let dir = std::env::temp_dir().join(format!("mite-sparse-channels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scheme = dir.join("pw2.toml");
    std::fs::write(
        &scheme,
        "bias = 4\n[[weight]]\nlayer = 50\nratio = \"1/4\"\n",
    )
    .unwrap();
    let out = mite(&[
        "compile",
        "zoo:mbv2-w0.35",
        "--scheme",
        scheme.to_str().unwrap(),
        "--channels",
        "magnitude",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("SRAM peak"),
        "{}",
        text(&out.stdout)
    );
    std::fs::remove_dir_all(&dir).ok();
}
