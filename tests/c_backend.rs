//! The C backend end to end (issue #11): MbV2-w0.35 (`../shared` ONNX model, else the zoo
//! builder) with `paper:99kb` and 10 classes, its frozen bottlenecks streamed, is lowered, printed as a C project, built with gcc
//! (`-std=c99 -Wall -Wextra -Werror -pedantic`) and run on the host: after a few training steps
//! on seeded synthetic images every loss, the logits and every trained parameter equal the
//! Program executor's bit for bit; a bad label and a NaN learning rate return their codes and
//! leave the parameters unchanged. Every other step, and the inference, take the image written
//! straight into the arena through `mite_input_buffer()`.

use std::path::Path;
use std::process::Command;

use mite::cgen::project::{emit_project, synthetic_samples, write_project};
use mite::interp::program::ProgramExecutor;
use mite::ir::program::{ArgRole, Kernel, Program, Storage};
use mite::ir::TensorData;
use mite::passes::lower::{lower_module, LowerOptions};
use mite::passes::passes::{
    build_training_step, schedule_function, stream_bottlenecks, Schedule, TrainConfig,
    UpdatePlacement,
};
use mite::passes::scheme::Scheme;
use mite_test_support::{shared_file, tool};

const TEST: &str = "c_backend";
const STEPS: usize = 6;
const LR: f32 = 0.01;

/// The parity main: trains STEPS steps, then prints the losses, the logits of image 0 and the
/// saved parameters as hex, then checks the bad-label and NaN-update codes.
const MAIN: &str = r#"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "mite_program.h"
#include "samples.h"

static unsigned char before[MITE_SAVE_BYTES], after[MITE_SAVE_BYTES];

static unsigned bits(float f) { uint32_t u; memcpy(&u, &f, 4); return (unsigned)u; }

int main(void) {
    float loss, logits[MITE_CLASSES], copied[MITE_CLASSES];
    size_t i;
    mite_init();
    for (i = 0; i < STEPS; i++) {
        const int8_t *image = images[i % N_IMAGES];
        mite_status st;
        if (i % 2 == 1) {
            memcpy(mite_input_buffer(), image, MITE_INPUT_LEN);
            image = mite_input_buffer();
        }
        st = mite_train_step(image, labels[i % N_IMAGES], &loss);
        if (st != MITE_OK) { printf("step %u status %d\n", (unsigned)i, (int)st); return 1; }
        printf("loss %08x\n", bits(loss));
    }
    if (mite_infer(images[0], copied) != MITE_OK) { return 1; }
    memcpy(mite_input_buffer(), images[0], MITE_INPUT_LEN);
    if (mite_infer(mite_input_buffer(), logits) != MITE_OK) { return 1; }
    if (memcmp(copied, logits, sizeof logits) != 0) { return 5; }
    printf("logits");
    for (i = 0; i < MITE_CLASSES; i++) { printf(" %08x", bits(logits[i])); }
    printf("\nparams ");
    mite_save_params(before, sizeof before);
    for (i = 0; i < MITE_PARAMS_BYTES; i++) { printf("%02x", before[i]); }
    printf("\n");
    if (mite_train_step(images[0], -1, &loss) != MITE_ERR_BAD_LABEL) { return 2; }
    mite_set_lr((float)NAN);
    if (mite_train_step(images[0], labels[0], &loss) != MITE_ERR_NAN_UPDATE) { return 3; }
    mite_save_params(after, sizeof after);
    if (memcmp(before, after, sizeof before) != 0) { return 4; }
    printf("codes ok\n");
    return 0;
}
"#;

fn program() -> Program {
    let spec = shared_file(TEST, "models/mbv2-w0.35.onnx")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "zoo:mbv2-w0.35".into());
    let mut m = mite::model::load_model(&spec).unwrap().module;
    mite::train::head::replace_classifier(&mut m, 10, 0).unwrap();
    Scheme::parse("paper:99kb").unwrap().apply(&mut m).unwrap();
    let config = TrainConfig {
        updates: UpdatePlacement::AsSoonAsReady,
        ..TrainConfig::default()
    };
    build_training_step(&mut m, &config).unwrap();
    // The frozen bottlenecks streamed and the step reordered, as `mite compile --emit c` does
    // (the input gradients then run in place over their `dy`).
    assert!(
        !stream_bottlenecks(&mut m).is_empty(),
        "no bottleneck fused"
    );
    let f = m.function_mut("train_step").unwrap();
    if let Some(order) = schedule_function(f, &Schedule::default()).order {
        f.set_schedule(&order).unwrap();
    }
    let program = lower_module(&m, &LowerOptions::default()).unwrap();
    // The trained bottlenecks' backward passes are streamed (their in-place depthwise input
    // gradients within), those whose expansion weight is split (a trained slice + its frozen
    // remainder) too.
    let calls = &program.entries[1].calls;
    assert!(
        calls.iter().any(|c| matches!(
            c.kernel,
            Kernel::ConvBackwardInputInt8InPlace { .. } | Kernel::BottleneckBackward { .. }
        )),
        "no input gradient in place nor streamed"
    );
    assert!(
        calls
            .iter()
            .any(|c| matches!(c.kernel, Kernel::BottleneckBackward { kept: Some(_), .. })),
        "no streamed bottleneck backward with a split expansion weight"
    );
    program
}

fn hex_bytes(data: &TensorData) -> String {
    let bytes: Vec<u8> = match data {
        TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        other => panic!("unexpected parameter data {other:?}"),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn build(dir: &Path, gcc: &Path, sanitize: bool) -> std::path::PathBuf {
    let exe = dir.join(if sanitize { "parity-asan" } else { "parity" });
    let mut cmd = Command::new(gcc);
    cmd.args(mite::cgen::toolchain::STRICT_FLAGS);
    if sanitize {
        cmd.args(mite::cgen::toolchain::SANITIZER_FLAGS);
    }
    cmd.current_dir(dir)
        .args(["-I.", "-Iarm", "mite_program.c"])
        .args(mite::cgen::runtime::sources(mite::cgen::runtime::FILES))
        .args(["parity.c", "-lm", "-o"]);
    cmd.arg(&exe);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

#[test]
fn mbv2_trains_bit_exact_with_the_program_executor() {
    let Some(gcc) = tool(TEST, "gcc") else {
        return;
    };
    let program = program();
    let input = program
        .buffers
        .iter()
        .find(|b| b.storage.arg_role() == Some(ArgRole::Input))
        .unwrap()
        .len;
    let samples = synthetic_samples(4, input, 10, 7);
    let files = emit_project(&program, &samples, "test").unwrap();
    let dir = std::env::temp_dir().join(format!("mite-c-backend-{}", std::process::id()));
    write_project(&dir, &files).unwrap();
    let mut header = format!(
        "#define STEPS {STEPS}u\n#define N_IMAGES {}u\nstatic const int32_t labels[] = {{",
        samples.len()
    );
    for s in &samples {
        header.push_str(&format!("{},", s.label));
    }
    header.push_str("};\nstatic const int8_t images[][MITE_INPUT_LEN] = {");
    for s in &samples {
        header.push('{');
        for v in &s.image {
            header.push_str(&format!("{v},"));
        }
        header.push_str("},\n");
    }
    header.push_str("};\n");
    std::fs::write(dir.join("samples.h"), header).unwrap();
    std::fs::write(dir.join("parity.c"), MAIN).unwrap();

    // The Program executor on the same images.
    let mut exec = ProgramExecutor::new(&program).unwrap();
    let mut want = Vec::new();
    for i in 0..STEPS {
        let s = &samples[i % samples.len()];
        let loss = exec.train_step(&s.image, s.label, LR).unwrap();
        want.push(format!("loss {:08x}", loss.to_bits()));
    }
    let logits = exec.infer(&samples[0].image).unwrap();
    want.push(format!(
        "logits{}",
        logits
            .iter()
            .map(|x| format!(" {:08x}", x.to_bits()))
            .collect::<String>()
    ));
    // The saved image: parameters and state in buffer order.
    let params: Vec<_> = exec
        .param_buffers()
        .into_iter()
        .map(|(_, g, d)| (g, d))
        .collect();
    let mut k = 0;
    let mut blob = String::new();
    for b in &program.buffers {
        match b.storage {
            Storage::Param { .. } => {
                blob.push_str(&hex_bytes(&params[k].1));
                k += 1;
            }
            Storage::State { .. } => blob.push_str(&"00".repeat(b.bytes() as usize)),
            _ => {}
        }
    }
    want.push(format!("params {blob}"));
    want.push("codes ok".into());

    for sanitize in [false, true] {
        let exe = build(&dir, &gcc, sanitize);
        let out = Command::new(&exe).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} (sanitize {sanitize}) failed: {:?}\n{stdout}\n{}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<&str> = stdout.lines().collect();
        assert_eq!(got.len(), want.len(), "{stdout}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g == w,
                "C vs executor:\n  C:    {:.200}\n  exec: {:.200}",
                g,
                w
            );
        }
        println!(
            "sanitize {sanitize}: {} losses, logits and params equal",
            STEPS
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `mite compile --emit c -o DIR` then `make run-host`: the self-test trains on its embedded
/// images (seeded synthetic ones by default, the first four CIFAR-10 training images with
/// `--selftest-data`), prints the mean loss of its first and last epochs and ends
/// `mite-selftest: ok` (the last epoch's mean below the first's).
#[test]
fn cli_project_self_test_on_seeded_and_real_images() {
    let (Some(_), Some(make)) = (tool(TEST, "gcc"), tool(TEST, "make")) else {
        return;
    };
    let cifar = mite_test_support::shared_dir(TEST).map(|d| d.join("datasets/cifar10"));
    let mut runs = vec![("seeded", None)];
    if let Some(c) = &cifar {
        runs.push(("cifar10", Some(c.clone())));
    }
    let mut embedded = vec![];
    for (name, data) in runs {
        let dir = std::env::temp_dir().join(format!("mite-c-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mite"));
        cmd.args([
            "compile",
            "zoo:tiny-int8-cnn",
            "--scheme",
            "last:2",
            "--classes",
            "10",
            "--emit",
            "c",
            "-o",
        ])
        .arg(&dir);
        if let Some(d) = &data {
            cmd.arg("--selftest-data").arg(d);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Command::new(&make)
            .args(["-s", "-C"])
            .arg(&dir)
            .arg("run-host")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{name}: make run-host:\n{stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let s = mite::cgen::toolchain::parse_selftest(&stdout);
        assert_eq!(s.ok, Some(true), "{name}:\n{stdout}");
        let mean = s
            .values
            .iter()
            .find(|(k, _)| k == "mean")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert!(mean.starts_with("loss first epoch"), "{name}:\n{stdout}");
        println!("{name}: mean {mean}");
        embedded.push(std::fs::read_to_string(dir.join("selftest.c")).unwrap());
        std::fs::remove_dir_all(&dir).ok();
    }
    if embedded.len() == 2 {
        assert_ne!(
            embedded[0], embedded[1],
            "--selftest-data embedded no other images"
        );
    }
    let wrong = Command::new(env!("CARGO_BIN_EXE_mite"))
        .args(["compile", "zoo:tiny-int8-cnn", "--selftest-data", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--selftest-data needs --emit c"));
}
