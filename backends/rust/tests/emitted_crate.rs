//! An emitted crate builds and passes its self-test on the host and, as a `no_std` image for a
//! Cortex-M4 (256 KB RAM / 1 MB flash), under QEMU, with the same losses and parameters.
//!
//! Emitted crates share one target directory (`target/emitted`) so their dependencies build
//! once. Skips with a message when `qemu-system-arm` or the `thumbv7em-none-eabihf` target is
//! missing; fails instead under `MITE_REQUIRE_TOOLS=1`.

use std::path::{Path, PathBuf};

use mite_rustgen::run::{run_selftest, Runner, THUMB_TARGET};
use mite_rustgen::{emit_crate, sample, write_crate, RustOptions};
use mite_test_support::tool;

/// The workspace root (this crate is `backends/rust`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn emitted_dir(name: &str) -> PathBuf {
    let dir = workspace_root().join("target/emitted-src").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn target_dir() -> PathBuf {
    workspace_root().join("target/emitted")
}

/// Whether the toolchain has the thumb target's `core` (skips, or fails under
/// `MITE_REQUIRE_TOOLS=1`, when not).
fn thumb_target(test: &str) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let ok = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(THUMB_TARGET)
        .is_dir();
    if !ok {
        if std::env::var("MITE_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{test}: target {THUMB_TARGET} is not installed (MITE_REQUIRE_TOOLS=1)");
        }
        eprintln!("SKIPPED {test}: target {THUMB_TARGET} is not installed (rustup target add {THUMB_TARGET})");
    }
    ok
}

#[test]
fn tiny_crate_trains_on_the_host_and_in_qemu_with_equal_results() {
    let test = "tiny_crate_trains_on_the_host_and_in_qemu_with_equal_results";
    let program = sample::tiny();
    let options = RustOptions {
        selftest_steps: 6,
        learning_rate: 0.05,
        ..RustOptions::default()
    };
    let files = emit_crate(&program, &options).unwrap();
    let dir = emitted_dir("tiny");
    write_crate(&dir, &files).unwrap();

    let host = run_selftest(&dir, &target_dir(), Runner::Host, None).unwrap();
    assert!(host.ok, "host self-test failed:\n{}", host.lines.join("\n"));
    assert_eq!(host.loss_bits.len(), 6, "{}", host.lines.join("\n"));
    let losses: Vec<f32> = host.loss_bits.iter().map(|&b| f32::from_bits(b)).collect();
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
    // Training changed something: the loss of the first image differs on its second visit.
    assert_ne!(losses[0], losses[4], "{losses:?}");

    if tool(test, "qemu-system-arm").is_none() || !thumb_target(test) {
        return;
    }
    let m4 = run_selftest(&dir, &target_dir(), Runner::Qemu, None).unwrap();
    assert!(m4.ok, "QEMU self-test failed:\n{}", m4.lines.join("\n"));
    assert_eq!(m4.loss_bits, host.loss_bits, "losses differ");
    assert_eq!(m4.infer_hash, host.infer_hash, "inference differs");
    assert_eq!(m4.params_crc, host.params_crc, "parameters differ");
    assert!(m4.per_step.is_some_and(|t| t > 0));
}
