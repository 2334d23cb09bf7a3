//! The paper's memory table (NOTES §5), side by side with ours, for the three paper models.
//!
//! For each model (the built-in zoo networks; the `../shared` ONNX models too when present,
//! `$MITE_SHARED` overrides the directory) three training steps are compiled:
//! - **full**: every tensor trained, updates after the backward pass, program order;
//! - **sparse**: the paper's scheme (`paper:99kb` for MbV2 and MCUNet, `paper:98kb` for
//!   Proxyless), updates after the backward pass (`--updates end`), program order;
//! - **sparse + reorder**: the same scheme, each update as soon as its gradient exists
//!   (`--updates asap`) and the `schedule` pass.
//!
//! Printed, from the lowered Program (what the C and Rust backends emit): its peak SRAM (the
//! planned arena, which holds the int8 input image too, + SRAM copies of the trained parameters +
//! optimizer state + the entry's arguments: label, learning rate and step), the arena, the arena's lower bound (the most bytes live at one
//! call) and their ratio, the trained parameters' SRAM, the peak of the backward part (graph
//! level), the paper's figure and the compile time (the whole pipeline, lowering included).
//! Under each model, where its reordered Program's arena peaks. With a directory argument, one
//! SVG per model is written there with the three graph-level timelines (like the paper's
//! Fig. 10).
//!
//! `cargo run --release --example paper_memory [PLOT_DIR]`

use mite::compile::{compile_with_memory, lower_program, CompileOptions};
use mite::ir::memory::timeline::{to_svg, Timeline};
use mite::passes::passes::{TrainConfig, UpdatePlacement};
use mite::train::scheme::Scheme;
use std::path::PathBuf;

/// (zoo name, shared ONNX file, paper scheme, paper KB: full, sparse, sparse + reorder)
const MODELS: [(&str, &str, &str, [u32; 3]); 3] = [
    (
        "mbv2-w0.35",
        "mbv2-w0.35.onnx",
        "paper:99kb",
        [2939, 335, 141],
    ),
    (
        "proxyless-w0.3",
        "proxyless-w0.3.onnx",
        "paper:98kb",
        [2745, 326, 135],
    ),
    (
        "mcunet-5fps",
        "mcunet-5fps.onnx",
        "paper:99kb",
        [3650, 560, 173],
    ),
];

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MITE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"));
    dir.join("models").is_dir().then_some(dir)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plot_dir = std::env::args().nth(1).map(PathBuf::from);
    let mut sources: Vec<(String, String, &str, [u32; 3])> = MODELS
        .iter()
        .map(|&(zoo, _, scheme, paper)| (format!("zoo:{zoo}"), zoo.to_string(), scheme, paper))
        .collect();
    match shared_dir() {
        Some(dir) => {
            for &(zoo, file, scheme, paper) in &MODELS {
                let path = dir.join("models").join(file);
                if path.is_file() {
                    sources.push((
                        path.display().to_string(),
                        format!("{zoo} (onnx)"),
                        scheme,
                        paper,
                    ));
                }
            }
        }
        None => println!("(no ../shared: the ONNX models are left out)"),
    }
    println!(
        "{:<22} {:<25} {:>8} {:>8} {:>8} {:>6} {:>8} {:>7} {:>7} {:>6} {:>8}",
        "model",
        "step",
        "SRAM KB",
        "arena",
        "bound",
        "ratio",
        "params",
        "args",
        "bwd KB",
        "paper",
        "compile"
    );
    let configs: [(&str, bool, UpdatePlacement, bool); 3] = [
        ("full", true, UpdatePlacement::End, false),
        ("sparse", false, UpdatePlacement::End, false),
        (
            "sparse + reorder + fusion",
            false,
            UpdatePlacement::AsSoonAsReady,
            true,
        ),
    ];
    for (source, label, scheme, paper) in &sources {
        let mut timelines = Vec::new();
        for (k, &(name, full, updates, reorder)) in configs.iter().enumerate() {
            let mut model = mite::model::load_model(source)?;
            let opts = CompileOptions {
                scheme: Scheme::parse(if full { "full" } else { scheme })?,
                classes: Some(10),
                seed: 0,
                config: TrainConfig {
                    updates,
                    ..TrainConfig::default()
                },
                magnitude: false,
                reorder,
                // Streaming frozen bottlenecks goes with the reordered configuration.
                fusion: reorder,
            };
            let start = std::time::Instant::now();
            let (report, memory) = compile_with_memory(&model.name, &mut model.module, &opts)?;
            // `MITE_IN_PLACE_GRADS=0`: input gradients out of place; `MITE_SPLIT_WEIGHTS=0`:
            // partially trained weights whole in SRAM (the figures before each).
            let off = |var: &str| std::env::var_os(var).is_some_and(|v| v == "0");
            // `MITE_STREAM_BACKWARD=0`: no streamed bottleneck backward; `MITE_CHAIN_IN_PLACE=0`:
            // the chained first stage does not consume the input.
            let program = if off("MITE_IN_PLACE_GRADS")
                || off("MITE_SPLIT_WEIGHTS")
                || off("MITE_STREAM_BACKWARD")
                || off("MITE_CHAIN_IN_PLACE")
            {
                let lower = mite::passes::lower::LowerOptions {
                    forward: opts.config.forward.clone(),
                    train_step: Some(opts.config.train_step.clone()),
                    in_place_grads: !off("MITE_IN_PLACE_GRADS"),
                    split_weights: !off("MITE_SPLIT_WEIGHTS"),
                    stream_bottleneck_backward: !off("MITE_STREAM_BACKWARD"),
                    chain_in_place: !off("MITE_CHAIN_IN_PLACE"),
                    ..Default::default()
                };
                mite::passes::lower::lower_module(&model.module, &lower)?
            } else {
                lower_program(&model.module, &opts.config)?
            };
            let millis = start.elapsed().as_secs_f64() * 1000.0;
            let kb = |b: u64| b as f64 / 1024.0;
            let bytes = program.storage_bytes();
            let bound = program.arena_lower_bound();
            // The backward part: the steps after the loss's operands exist (as the schedule
            // pass measures it).
            let backward = report.schedule.as_ref().map_or_else(
                || {
                    let f = model.module.function("train_step").expect("built");
                    let order = mite::ir::analysis::Schedule::program_order(f);
                    mite::passes::passes::schedule_cost(f, &order).backward_peak
                },
                |r| r.backward_peak_after_bytes,
            );
            println!(
                "{:<22} {:<25} {:>8.1} {:>8.1} {:>8.1} {:>6.3} {:>8.1} {:>7.1} {:>7.1} {:>6} {:>5.0} ms",
                label,
                name,
                kb(bytes.sram()),
                kb(bytes.arena),
                kb(bound),
                bytes.arena as f64 / bound.max(1) as f64,
                kb(bytes.param),
                kb(bytes.args),
                kb(backward),
                paper[k],
                millis
            );
            if k + 1 == configs.len() {
                for line in program.arena_peak_report(4).lines() {
                    println!("    {line}");
                }
            }
            let s = &report.sram;
            timelines.push(Timeline::from_report(
                format!("{name} ({:.0} KB SRAM)", kb(s.peak_bytes)),
                &memory,
            ));
        }
        if let Some(dir) = &plot_dir {
            std::fs::create_dir_all(dir)?;
            let file = dir.join(format!("{}.svg", label.replace([' ', '(', ')'], "")));
            std::fs::write(
                &file,
                to_svg(&timelines, &format!("{label}: live arena per op")),
            )?;
            println!("  wrote {}", file.display());
        }
    }
    Ok(())
}
