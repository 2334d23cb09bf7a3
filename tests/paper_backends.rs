//! The three paper models (MbV2-w0.35 `paper:99kb`, Proxyless-w0.3 `paper:98kb`, MCUNet-5FPS
//! `paper:99kb`, 10 classes) through the C and Rust backends against the Program executor, on
//! the host and on QEMU's Cortex-M4 and M7 (issues #11 / #12, "Must show"; see
//! `tests/paper_backends/harness.rs`). `STEPS` training steps each; the Cortex-M images link with
//! 256 KB of RAM as soon as the Program fits (else with a larger RAM, said on stdout).
//!
//! `cargo run --release --example backend_table` prints the table of flash, RAM and instructions
//! per step of the same runs.

#[path = "paper_backends/harness.rs"]
mod harness;

use harness::{check, device_tools, table_rows, Targets, CASES, TABLE_HEADER};

const TEST: &str = "paper_backends";
/// Training steps per model (two images in turn: the second step trains on the first step's
/// updated parameters, the third revisits an image).
const STEPS: usize = 3;

#[test]
fn paper_models_train_alike_in_c_rust_and_the_executor() {
    let targets = Targets {
        device: device_tools(TEST),
        rust: true,
    };
    let mut rows = vec![];
    for case in &CASES {
        let f = check(TEST, case, STEPS, targets);
        println!(
            "{TEST}: {}: {STEPS} steps, losses {:?}: C host{} equal bit for bit to the executor \
             (losses, logits, int8/int32 parameters); Rust host{} equal (losses within {} ulp, \
             parameters and logits exact) ({:.0} s)",
            f.spec,
            f.losses,
            if targets.device { ", M4, M7" } else { "" },
            if targets.device { " and M4" } else { "" },
            f.rust_ulps,
            f.seconds
        );
        rows.extend(table_rows(&f));
    }
    if !rows.is_empty() {
        println!("{TABLE_HEADER}\n{}", rows.join("\n"));
    }
}
