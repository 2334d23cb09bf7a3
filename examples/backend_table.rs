//! The table of issue #11 / #12 ("Must show"): for MbV2-w0.35 `paper:99kb`, Proxyless-w0.3
//! `paper:98kb` and MCUNet-5FPS `paper:99kb`, the C program (Cortex-M4 and M7) and the Rust crate
//! (thumbv7em, Cortex-M4) side by side: flash (text + data), static RAM (data + bss), the
//! Program's SRAM figure, the RAM the image was linked with, and instructions per training step
//! in QEMU (`-icount shift=0`, SysTick: C counts 40-instruction ticks, Rust 1000-instruction
//! reference ticks), next to the paper's latency at 216 MHz. Every run is first checked against
//! the Program executor exactly as `tests/paper_backends.rs` does (same harness).
//!
//! `cargo run --release --example backend_table [STEPS]` (default 3; needs gcc,
//! arm-none-eabi-gcc, qemu-system-arm and the thumbv7em-none-eabihf target; ~10 minutes).

#[path = "../tests/paper_backends/harness.rs"]
mod harness;

use harness::{check, device_tools, table_rows, Targets, CASES, TABLE_HEADER};

fn main() {
    let steps = std::env::args()
        .nth(1)
        .map_or(Ok(3), |s| s.parse::<usize>())
        .unwrap_or_else(|e| {
            eprintln!("backend_table: STEPS: {e}");
            std::process::exit(2)
        });
    if !device_tools("backend_table") {
        eprintln!("backend_table: the Cortex-M tools are missing (see above)");
        std::process::exit(1);
    }
    let targets = Targets {
        device: true,
        rust: true,
    };
    let mut rows = vec![];
    for case in &CASES {
        let f = check("backend_table", case, steps, targets);
        eprintln!(
            "{}: {steps} steps checked (C host/M4/M7 and Rust host/M4 equal to the executor) in {:.0} s",
            f.spec, f.seconds
        );
        rows.extend(table_rows(&f));
    }
    println!("{TABLE_HEADER}\n{}", rows.join("\n"));
    println!(
        "Program SRAM: arena + trained parameters + optimizer state + entry arguments; link RAM: \
         256 KB when it fits with the 8 KB stack, else a larger link (the 256 KB link is shown to \
         fail first). Paper: one training step's latency on an STM32F746 at 216 MHz."
    );
}
