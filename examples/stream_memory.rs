//! What streaming the frozen inverted bottlenecks (`stream-bottlenecks`, issue #10 (e)) does to
//! the training step's memory, per paper model and scheme: the arena and its lower bound with and
//! without fusion, the lower bound once the `f32` input image has been quantized (`--updates asap`, as `mite compile`; the image is
//! the first peak of every model and no fusion touches it), and the largest activation.
//!
//! Run: `cargo run --release --example stream_memory [DIR]`: the zoo models (seeded weights), or
//! with `DIR` the real int8 models `DIR/{mcunet-5fps,mbv2-w0.35,proxyless-w0.3}.onnx` (e.g.
//! `../shared/models`).

use mite::compile::{compile, CompileOptions};
use mite::ir::memory::{memory_report, BufferKind, MemoryReport};
use mite::passes::passes::{TrainConfig, UpdatePlacement};
use mite::train::scheme::Scheme;

/// The most bytes live at one step after the last step of the largest input buffer.
fn after_input(r: &MemoryReport) -> u64 {
    let input_end = r
        .buffers
        .iter()
        .filter(|b| b.kind == BufferKind::Input)
        .max_by_key(|b| b.size)
        .map_or(0, |b| b.live.1);
    let last = r.buffers.iter().map(|b| b.live.1).max().unwrap_or(0);
    (input_end + 1..=last)
        .map(|s| {
            r.buffers
                .iter()
                .filter(|b| b.live.0 <= s && s <= b.live.1)
                .map(|b| b.size)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

fn largest_activation(r: &MemoryReport) -> String {
    r.buffers
        .iter()
        .filter(|b| b.kind != BufferKind::Input)
        .max_by_key(|b| b.size)
        .map_or_else(String::new, |b| {
            format!("{:.1} KB {}", b.size as f64 / 1024.0, b.what)
        })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1);
    let source = |name: &str| match &dir {
        Some(dir) => format!("{dir}/{name}.onnx"),
        None => format!("zoo:{name}"),
    };
    let kb = |b: u64| b as f64 / 1024.0;
    println!(
        "{:<16} {:<11} {:>6} {:>9} {:>9} {:>11} {:>8}  largest buffer",
        "model", "scheme", "fusion", "arena KB", "bound KB", "after-in KB", "streamed"
    );
    for (name, scheme) in [
        ("mcunet-5fps", "paper:99kb"),
        ("mbv2-w0.35", "paper:99kb"),
        ("proxyless-w0.3", "paper:98kb"),
    ] {
        for fusion in [false, true] {
            let mut model = mite::model::load_model(&source(name))?;
            let opts = CompileOptions {
                scheme: Scheme::parse(scheme)?,
                classes: Some(10),
                seed: 0,
                config: TrainConfig {
                    updates: UpdatePlacement::AsSoonAsReady,
                    ..TrainConfig::default()
                },
                magnitude: false,
                fusion,
            };
            let report = compile(name, &mut model.module, &opts)?;
            let memory = memory_report(&model.module, "train_step")?;
            println!(
                "{:<16} {:<11} {:>6} {:>9.1} {:>9.1} {:>11.1} {:>8}  {}",
                name,
                scheme,
                if fusion { "on" } else { "off" },
                kb(memory.arena_bytes),
                kb(memory.lower_bound_bytes),
                kb(after_input(&memory)),
                report.fusion.streamed_blocks.len(),
                largest_activation(&memory)
            );
        }
    }
    Ok(())
}
