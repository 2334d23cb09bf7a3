//! Memory reports of training steps: the tiny int8 MLP checked by hand, the tiny CNN's plan, and
//! the paper's three networks (full update and `last:12`) next to the paper's figures.

use mite::ir::memory::plan::{check_plan, Plan, Request};
use mite::ir::memory::{memory_report, BufferKind, MemoryReport};
use mite::ir::Module;
use mite::passes::passes::{build_training_step, TrainConfig, UpdatePlacement};
use mite::passes::scheme::Scheme;
use mite::zoo::ZooModel;

fn train_step(mut m: Module, config: &TrainConfig) -> Module {
    build_training_step(&mut m, config).expect("the training step builds");
    m
}

/// The report's own placement passes the independent plan checker.
fn assert_plan_valid(r: &MemoryReport) {
    let requests: Vec<Request> = r
        .buffers
        .iter()
        .map(|b| Request {
            size: b.size,
            align: 1,
            first: b.live.0,
            last: b.live.1,
        })
        .collect();
    let plan = Plan {
        offsets: r.buffers.iter().map(|b| b.offset).collect(),
        arena_size: r.arena_bytes,
        lower_bound: r.lower_bound_bytes,
    };
    check_plan(&requests, &plan).expect("the arena plan is valid");
    assert!(r.lower_bound_bytes <= r.arena_bytes);
}

/// `tiny_int8_mlp` (`q.quantize`, `fc1` 16→8, `fc2` 8→4, `q.dequantize`), every parameter
/// trained, updates at the end. The training step's ops (steps) are: 0 quantize, 1-2 params,
/// 3 fc1, 4 mask, 5-6 params, 7 fc2, 8 mask, 9 dequantize, 10 loss, 11 seed, 12 loss grad,
/// 13 apply_mask, 14 linear_input, 15 dequantize, 16 fc2 weight grad, 17 fc2 bias grad,
/// 18 apply_mask, 19 dequantize, 20 fc1 weight grad, 21 fc1 bias grad, 22-25 sgd.
#[test]
fn tiny_mlp_by_hand() {
    let m = train_step(mite::zoo::tiny_int8_mlp(), &TrainConfig::default());
    let r = memory_report(&m, "train_step").unwrap();
    assert_plan_valid(&r);
    // Parameters in SRAM: fc1 8×16 i8 + 8 i32, fc2 4×8 i8 + 4 i32.
    assert_eq!(r.params_bytes, 128 + 32 + 32 + 16);
    assert_eq!(r.updated_params.len(), 4);
    // Flash: only the loss seed constant (every parameter is trained).
    assert_eq!(r.flash_bytes, 4);
    assert_eq!(r.state_bytes, 0);
    // Inputs: image 16 f32, label i32, lr f32, step i64.
    assert_eq!(r.input_bytes, 64 + 4 + 4 + 8);
    // Saved for the backward pass: the int8 input of fc1 (16), the int8 output of fc1 (8, the
    // input of fc2) and the f32 logits (16, for the loss gradient); masks 8 and 4 bits.
    assert_eq!(r.saved_activation_bytes, 16 + 8 + 16);
    assert_eq!(r.mask_bytes, 1 + 1);
    // The peak is at step 20 (fc1's weight gradient): lr 4 + step 8 + loss 4 + dx of fc2 (32,
    // masked in place) + dW2 128 + db2 16 + dequantized input 64 + dW1 512 = 768.
    assert_eq!(r.peak_step, 20);
    assert_eq!(r.lower_bound_bytes, 768);
    assert_eq!(
        r.at_peak,
        vec![
            (BufferKind::Input, 12),
            (BufferKind::Gradient, 752),
            (BufferKind::Output, 4)
        ]
    );
    assert_eq!(r.peak_bytes, r.arena_bytes + r.params_bytes);

    // Momentum adds one f32 per updated element: (128 + 8 + 32 + 4) · 4.
    let config = TrainConfig {
        momentum: 0.9,
        ..TrainConfig::default()
    };
    let with_momentum = memory_report(
        &train_step(mite::zoo::tiny_int8_mlp(), &config),
        "train_step",
    )
    .unwrap();
    assert_eq!(with_momentum.state_bytes, 172 * 4);
    assert_eq!(
        with_momentum.peak_bytes,
        with_momentum.arena_bytes + 208 + 688
    );
}

#[test]
fn tiny_cnn_classifier_only_keeps_the_backbone_in_flash() {
    let mut m = mite::zoo::tiny_int8_cnn();
    let full = memory_report(
        &train_step(m.clone(), &TrainConfig::default()),
        "train_step",
    )
    .unwrap();
    Scheme::Classifier.apply(&mut m).unwrap();
    let head = memory_report(&train_step(m, &TrainConfig::default()), "train_step").unwrap();
    assert_plan_valid(&full);
    assert_plan_valid(&head);
    assert_eq!(head.updated_params.len(), 2, "classifier weight and bias");
    assert!(head.params_bytes < full.params_bytes);
    assert_eq!(
        head.params_bytes + head.flash_bytes,
        full.params_bytes + full.flash_bytes,
        "every parameter is either in SRAM or in flash"
    );
    assert!(head.arena_bytes < full.arena_bytes);
    assert!(
        full.max_scratch_bytes > 0,
        "3×3 and 5×5 int8 convolutions need im2col scratch"
    );
    println!("full:\n{full}\n\nclassifier:\n{head}");
}

fn kb(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

/// Peak SRAM of the three paper models for a full update and `last:12` (int8 with QAS, this
/// phase's program order and greedy placement; updates at the end of the backward pass, and as
/// soon as each gradient is ready), beside the paper's full-update figures (NOTES: 2939 / 2745 /
/// 3650 KB). Run with `--nocapture` to see the table.
#[test]
fn paper_models_full_and_last_12() {
    let paper_full = [2939.0, 2745.0, 3650.0];
    println!(
        "{:<14} {:<8} {:<7} {:>9} {:>9} {:>9} {:>6} {:>9} {:>8} {:>9} {:>8}",
        "model",
        "scheme",
        "updates",
        "peak KB",
        "arena KB",
        "bound KB",
        "ratio",
        "params KB",
        "state KB",
        "flash KB",
        "paper KB"
    );
    for (model, paper) in ZooModel::ALL.into_iter().zip(paper_full) {
        for scheme in [Scheme::Full, Scheme::LastK(12)] {
            let mut peaks = Vec::new();
            for updates in [UpdatePlacement::End, UpdatePlacement::AsSoonAsReady] {
                let mut m = model.build(&Default::default());
                scheme.apply(&mut m).unwrap();
                let config = TrainConfig {
                    updates,
                    ..TrainConfig::default()
                };
                let r = memory_report(&train_step(m, &config), "train_step").unwrap();
                assert_plan_valid(&r);
                println!(
                    "{:<14} {:<8} {:<7} {:>9.1} {:>9.1} {:>9.1} {:>6.3} {:>9.1} {:>8.1} {:>9.1} {:>8}",
                    model.name(),
                    if scheme == Scheme::Full { "full" } else { "last:12" },
                    if updates == UpdatePlacement::End { "end" } else { "asap" },
                    kb(r.peak_bytes),
                    kb(r.arena_bytes),
                    kb(r.lower_bound_bytes),
                    r.ratio(),
                    kb(r.params_bytes),
                    kb(r.state_bytes),
                    kb(r.flash_bytes),
                    if scheme == Scheme::Full { paper.to_string() } else { "-".into() }
                );
                peaks.push(r);
            }
            assert!(
                peaks[1].arena_bytes < peaks[0].arena_bytes,
                "updating as soon as a gradient is ready frees gradient buffers earlier"
            );
            assert_eq!(peaks[0].params_bytes, peaks[1].params_bytes);
        }
    }
}
