//! `mite-kernels` builds for a Cortex-M4F microcontroller (`thumbv7em-none-eabihf`), which has
//! no `std`: the crate is `no_std` and does not link `alloc`.
//!
//! Skips with a message when the target's standard library is not installed (install it with
//! `rustup target add thumbv7em-none-eabihf`); fails instead under `MITE_REQUIRE_TOOLS=1`.

use std::path::Path;
use std::process::Command;

use mite_test_support::workspace_root;

const TARGET: &str = "thumbv7em-none-eabihf";

/// Whether the toolchain has the target's `core` library.
fn target_installed(rustc: &str) -> bool {
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

#[test]
fn kernels_build_for_thumbv7em() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if !target_installed(&rustc) {
        if std::env::var("MITE_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("kernels_build_for_thumbv7em: target {TARGET} is not installed (MITE_REQUIRE_TOOLS=1)");
        }
        eprintln!(
            "SKIPPED kernels_build_for_thumbv7em: target {TARGET} is not installed \
             (rustup target add {TARGET})"
        );
        return;
    }
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "-p",
            "mite-kernels",
            "--release",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(root.join("target").join("kernels-thumbv7em"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build -p mite-kernels --target {TARGET} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = root
        .join("target/kernels-thumbv7em")
        .join(TARGET)
        .join("release/libmite_kernels.rlib");
    assert!(lib.is_file(), "{} was not built", lib.display());
    // No allocation: the crate never links `alloc`.
    let src = root.join("backends/kernels/src");
    for entry in walk(&src) {
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(
            !text.contains("extern crate alloc"),
            "{} links alloc",
            entry.display()
        );
    }
}

/// The `.rs` files under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
