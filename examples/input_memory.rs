//! What keeping the int8 input image in the arena saves: the lowered Program's SRAM of each paper
//! model and scheme (as `mite compile MODEL --scheme S --classes 10`: updates as soon as ready,
//! reordered, frozen bottlenecks streamed), with the image read from the caller's buffer for the
//! whole step (the old layout) and with it copied into the arena and reused after its last
//! reader (the default).
//!
//! Run: `cargo run --release --example input_memory [DIR]`: the zoo models (seeded weights), or
//! with `DIR` the real int8 models `DIR/{mcunet-5fps,mbv2-w0.35,proxyless-w0.3}.onnx` (e.g.
//! `../shared/models`).

use mite::compile::{compile, CompileOptions};
use mite::passes::lower::{lower_module, LowerOptions};
use mite::passes::passes::{TrainConfig, UpdatePlacement};
use mite::train::scheme::Scheme;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1);
    let source = |name: &str| match &dir {
        Some(dir) => format!("{dir}/{name}.onnx"),
        None => format!("zoo:{name}"),
    };
    let kb = |b: u64| b as f64 / 1024.0;
    println!(
        "{:<16} {:<11} {:<8} {:>8} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9}",
        "model",
        "scheme",
        "input",
        "SRAM B",
        "SRAM KB",
        "arena KB",
        "in-arena",
        "args KB",
        "param KB",
        "state KB"
    );
    for (name, scheme) in [
        ("mbv2-w0.35", "paper:99kb"),
        ("proxyless-w0.3", "paper:98kb"),
        ("mcunet-5fps", "paper:99kb"),
    ] {
        let mut model = mite::model::load_model(&source(name))?;
        let config = TrainConfig {
            updates: UpdatePlacement::AsSoonAsReady,
            ..TrainConfig::default()
        };
        let opts = CompileOptions {
            scheme: Scheme::parse(scheme)?,
            classes: Some(10),
            seed: 0,
            config: config.clone(),
            magnitude: false,
            fusion: true,
            reorder: true,
        };
        compile(name, &mut model.module, &opts)?;
        let mut sram = Vec::new();
        for in_arena in [false, true] {
            let lower = LowerOptions {
                forward: config.forward.clone(),
                train_step: Some(config.train_step.clone()),
                input_in_arena: in_arena,
                ..LowerOptions::default()
            };
            let s = lower_module(&model.module, &lower)?.storage_bytes();
            println!(
                "{:<16} {:<11} {:<8} {:>8} {:>9.1} {:>9.1} {:>10.1} {:>9.1} {:>9.1} {:>9.1}",
                name,
                scheme,
                if in_arena { "arena" } else { "argument" },
                s.sram(),
                kb(s.sram()),
                kb(s.arena),
                kb(s.input_in_arena),
                kb(s.args),
                kb(s.param),
                kb(s.state)
            );
            sram.push(s.sram());
        }
        println!(
            "{:<16} {:<11} saved {:.1} KB of SRAM",
            "",
            "",
            kb(sram[0]) - kb(sram[1])
        );
    }
    Ok(())
}
