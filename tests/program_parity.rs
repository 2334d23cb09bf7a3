//! The lowered Program, run by the Program executor, agrees bit-exactly with the graph
//! interpreter (issue #9, "Must show"): for MbV2-w0.35, MCUNet-5FPS and Proxyless-w0.3 (the
//! `../shared` ONNX models, or the zoo builders when they are absent) with `last:6` and one
//! paper scheme each, the `infer` logits on Imagenette images equal the interpreter's `forward`,
//! and after 20 training steps on CIFAR-10 images every loss and every trained parameter (int8
//! weights, int32 biases) equals the interpreter's. Without `../shared` datasets the images are
//! synthetic (and the test says so). The `*_fused` and `*_reordered` cases (issue #10) run the
//! optimised Programs: frozen bottlenecks streamed, the first stage chained into block 1 and
//! consuming the input image, weight gradients fused with their updates, trained bottlenecks'
//! backward streamed, and (reordered) updates as soon as ready in the scheduled order.
//!
//! The executor places every arena buffer at its planned offset (the input image too: it is
//! copied into the arena at entry start and its bytes are reused after its last reader), so a
//! plan in which two live buffers overlap would corrupt these results.

use mite::data::{Dataset, Normalization};
use mite::interp::program::ProgramExecutor;
use mite::interp::{Interpreter, Tensor};
use mite::ir::{ElemType, Module, TensorData, TensorType};
use mite::passes::lower::{lower_module, quantize_image, LowerOptions};
use mite::passes::passes::{
    build_training_step, chain_bottlenecks, schedule_function, stream_bottlenecks, Schedule,
    TrainConfig, UpdatePlacement,
};
use mite::passes::scheme::Scheme;
use mite_test_support::shared_file;

const TEST: &str = "program_parity";
const INFER_IMAGES: usize = 50;
const TRAIN_STEPS: usize = 20;
const LR: f32 = 0.01;

/// The model from `../shared/models/FILE`, else the zoo builder.
fn model(file: &str, zoo: &str) -> (String, Module) {
    let spec = shared_file(TEST, &format!("models/{file}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("zoo:{zoo}"));
    let m = mite::model::load_model(&spec).unwrap().module;
    (spec, m)
}

/// `n` images of shape `[c, h, w]` and their labels: from the dataset split if present, else
/// synthetic.
fn images(dataset: &str, split: &str, n: usize, chw: [usize; 3]) -> Vec<(Vec<f32>, i32)> {
    let [c, h, w] = chw;
    let norm = Normalization::parse("127.5,127.5").unwrap();
    if let Some(images) = shared_file(TEST, &format!("datasets/{dataset}/{split}_images.npy")) {
        let dir = images.parent().unwrap();
        let data = Dataset::load(dir, split).unwrap();
        return (0..n)
            .map(|i| {
                let img = data.image(i % data.len, [h, w], norm).unwrap();
                (img, data.label(i % data.len).unwrap() as i32 % 10)
            })
            .collect();
    }
    println!("SKIPPED real images of {dataset}: using synthetic ones");
    (0..n)
        .map(|i| {
            let img = (0..c * h * w)
                .map(|k| (((k * 7 + i * 13) % 255) as f32 - 127.5) / 127.5)
                .collect();
            (img, (i % 10) as i32)
        })
        .collect()
}

fn scalar(ty: TensorType, data: TensorData) -> Tensor {
    Tensor::new(ty, data).unwrap()
}

fn check(file: &str, zoo: &str, scheme: &str) {
    check_with(file, zoo, scheme, false, false);
}

/// As [`check`], with the frozen bottlenecks fused into `q.bottleneck` (`fusion`) or not, and
/// with the updates as soon as ready and the step reordered as `mite compile` does (`reorder`:
/// the input gradients then run in place over their `dy`).
fn check_with(file: &str, zoo: &str, scheme: &str, fusion: bool, reorder: bool) {
    let (spec, mut m) = model(file, zoo);
    let what = format!("{spec} {scheme} fusion={fusion} reorder={reorder}");
    mite::train::head::replace_classifier(&mut m, 10, 0).unwrap();
    Scheme::parse(scheme).unwrap().apply(&mut m).unwrap();
    let config = TrainConfig {
        updates: if reorder {
            UpdatePlacement::AsSoonAsReady
        } else {
            UpdatePlacement::End
        },
        ..TrainConfig::default()
    };
    build_training_step(&mut m, &config).unwrap();
    if fusion {
        let fused = stream_bottlenecks(&mut m);
        assert!(!fused.is_empty(), "{what}: no bottleneck fused");
        // The first stage (stem conv -> depthwise -> pointwise) is streamed too.
        assert!(
            fused.iter().any(|b| !b.pointwise_first),
            "{what}: the first stage is not streamed"
        );
        // ... and chained into block 1, consuming the input (checked below).
        assert!(
            !chain_bottlenecks(&mut m).is_empty(),
            "{what}: the first stage is not chained"
        );
    }
    // Fusion on: the frozen bottlenecks streamed and each weight gradient fused with its
    // update; off: neither.
    let opts = LowerOptions {
        fuse_updates: fusion,
        ..LowerOptions::default()
    };
    if reorder {
        let f = m.function_mut("train_step").unwrap();
        if let Some(order) = schedule_function(f, &Schedule::default()).order {
            f.set_schedule(&order).unwrap();
        }
    }
    let program = lower_module(&m, &opts).unwrap();
    if fusion {
        // The chained first stage leaves its output in the input's bytes, in both entries.
        for e in &program.entries {
            assert!(
                e.calls.iter().any(|c| c.kernel.consumes_input()),
                "{what}: @{} does not consume its input",
                e.name
            );
        }
    }
    let in_place = program.entries[1]
        .calls
        .iter()
        .filter(|c| {
            matches!(
                c.kernel,
                mite::ir::program::Kernel::ConvBackwardInputInt8InPlace { .. }
            )
        })
        .count();
    // The backward pass of the trained bottlenecks streamed one expanded channel at a time
    // wherever its expanded gradient has no other reader (the paper schemes train such blocks).
    let streamed = program.entries[1]
        .calls
        .iter()
        .filter(|c| {
            matches!(
                c.kernel,
                mite::ir::program::Kernel::BottleneckBackward { .. }
            )
        })
        .count();
    // A streamed bottleneck backward absorbs its in-place depthwise input gradient: with every
    // trained block streamed, none may be left unfused.
    if reorder {
        assert!(
            in_place + streamed > 0,
            "{what}: no input gradient in place (nor streamed)"
        );
    }
    if fusion && scheme.starts_with("paper") {
        assert!(streamed > 0, "{what}: no streamed bottleneck backward");
    }
    let fused_updates = fused_update_calls(&program);
    assert_eq!(
        fused_updates > 0,
        fusion,
        "{what}: {fused_updates} fused updates"
    );
    // The paper schemes train slices of pw1 weights: only the slice is in SRAM.
    let splits = program.weight_splits().len();
    if scheme.starts_with("paper:") {
        assert!(
            splits > 0,
            "{what}: no weight stored as trained slice + frozen rest"
        );
    }
    let s = program.storage_bytes();
    println!(
        "{what}: arena {} B (input in the arena {} B), params {} B, state {} B, flash {} B, \
         args {} B",
        s.arena, s.input_in_arena, s.param, s.state, s.flash, s.args
    );
    assert!(
        s.input_in_arena > 0,
        "{what}: the input is not in the arena"
    );
    let chw = mite::eval::image_input(&m, "forward").unwrap();
    let shape = [1, chw[0], chw[1], chw[2]];

    // Inference: logits bit for bit.
    let interp = Interpreter::new(&m).unwrap();
    let mut exec = ProgramExecutor::new(&program).unwrap();
    for (i, (img, _)) in images("imagenette", "val", INFER_IMAGES, chw)
        .iter()
        .enumerate()
    {
        let want = interp
            .run("forward", &[Tensor::f32(&shape, img.clone()).unwrap()])
            .unwrap();
        let want = want[0].as_f32().unwrap();
        let got = exec
            .infer(&quantize_image(&m, "forward", img).unwrap())
            .unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(want), "{what}: logits of image {i}");
    }

    // Training: losses and every trained parameter bit for bit.
    let mut interp = Interpreter::new(&m).unwrap();
    for (step, (img, label)) in images("cifar10", "train", TRAIN_STEPS, chw)
        .into_iter()
        .enumerate()
    {
        let q = quantize_image(&m, "train_step", &img).unwrap();
        let inputs = [
            Tensor::f32(&shape, img).unwrap(),
            scalar(
                TensorType::new(&[1], ElemType::I32),
                TensorData::I32(vec![label]),
            ),
            Tensor::f32(&[], vec![LR]).unwrap(),
            scalar(
                TensorType::new(&[], ElemType::I64),
                TensorData::I64(vec![step as i64]),
            ),
        ];
        let want = interp.run_mut("train_step", &inputs).unwrap();
        let want = want[0].as_f32().unwrap()[0];
        let got = exec.train_step(&q, label, LR).unwrap();
        assert_eq!(got.to_bits(), want.to_bits(), "{what}: loss of step {step}");
    }
    let want = interp.updated_params();
    let got = exec.params();
    assert!(!want.is_empty(), "{what}: nothing trained");
    assert_eq!(got.len(), want.len(), "{what}: trained parameters");
    for (name, data) in want {
        let (_, mine) = got.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(mine, data, "{what}: @{name} after {TRAIN_STEPS} steps");
    }
}

#[test]
fn mcunet_last6() {
    check("mcunet-5fps.onnx", "mcunet-5fps", "last:6");
}

#[test]
fn mcunet_paper() {
    check("mcunet-5fps.onnx", "mcunet-5fps", "paper:99kb");
}

#[test]
fn mbv2_last6() {
    check("mbv2-w0.35.onnx", "mbv2-w0.35", "last:6");
}

#[test]
fn mbv2_paper() {
    check("mbv2-w0.35.onnx", "mbv2-w0.35", "paper:99kb");
}

#[test]
fn proxyless_last6() {
    check("proxyless-w0.3.onnx", "proxyless-w0.3", "last:6");
}

#[test]
fn proxyless_paper() {
    check("proxyless-w0.3.onnx", "proxyless-w0.3", "paper:98kb");
}

#[test]
fn mcunet_paper_fused() {
    check_with("mcunet-5fps.onnx", "mcunet-5fps", "paper:99kb", true, false);
}

#[test]
fn mbv2_paper_fused() {
    check_with("mbv2-w0.35.onnx", "mbv2-w0.35", "paper:99kb", true, false);
}

#[test]
fn proxyless_paper_fused() {
    check_with(
        "proxyless-w0.3.onnx",
        "proxyless-w0.3",
        "paper:98kb",
        true,
        false,
    );
}

#[test]
fn mcunet_paper_reordered() {
    check_with("mcunet-5fps.onnx", "mcunet-5fps", "paper:99kb", true, true);
}

#[test]
fn mbv2_paper_reordered() {
    check_with("mbv2-w0.35.onnx", "mbv2-w0.35", "paper:99kb", true, true);
}

#[test]
fn proxyless_paper_reordered() {
    check_with(
        "proxyless-w0.3.onnx",
        "proxyless-w0.3",
        "paper:98kb",
        true,
        true,
    );
}

/// The calls of `p` computing a weight gradient fused with its update.
fn fused_update_calls(p: &mite::ir::program::Program) -> usize {
    p.entries
        .iter()
        .flat_map(|e| &e.calls)
        .filter(|c| matches!(c.kernel, mite::ir::program::Kernel::ConvWeightSgd { .. }))
        .count()
}

/// The tiny CNN's parameters after `steps` training steps of `p`.
fn tiny_trained(
    m: &Module,
    p: &mite::ir::program::Program,
    steps: usize,
) -> Vec<(String, TensorData)> {
    let mut exec = ProgramExecutor::new(p).unwrap();
    for step in 0..steps {
        let q = quantize_image(m, "train_step", &tiny_image(step)).unwrap();
        exec.train_step(&q, (step % 10) as i32, 0.5).unwrap();
    }
    exec.params()
}

#[test]
fn fused_updates_train_like_unfused_ones_and_save_their_gradients() {
    let (m, fused) = tiny();
    let unfused = lower_module(
        &m,
        &LowerOptions {
            fuse_updates: false,
            ..LowerOptions::default()
        },
    )
    .unwrap();
    assert!(fused_update_calls(&fused) > 0);
    assert_eq!(fused_update_calls(&unfused), 0);
    assert!(fused.storage_bytes().arena <= unfused.storage_bytes().arena);
    let want = tiny_trained(&m, &unfused, 5);
    assert_eq!(tiny_trained(&m, &fused, 5), want);
    assert_ne!(
        tiny_trained(&m, &fused, 0),
        want,
        "the steps changed nothing"
    );
}

/// The tiny zoo CNN, its last two layers trained, lowered.
fn tiny() -> (Module, mite::ir::program::Program) {
    let mut m = mite::zoo::tiny_int8_cnn();
    Scheme::parse("last:2").unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    let p = lower_module(&m, &LowerOptions::default()).unwrap();
    (m, p)
}

fn tiny_image(seed: usize) -> Vec<f32> {
    (0..3 * 32 * 32)
        .map(|k| (((k * 31 + seed * 17) % 251) as f32 - 125.0) / 125.0)
        .collect()
}

#[test]
fn a_failed_step_changes_nothing() {
    let (m, p) = tiny();
    let mut exec = ProgramExecutor::new(&p).unwrap();
    let q = quantize_image(&m, "train_step", &tiny_image(0)).unwrap();
    exec.train_step(&q, 3, 0.5).unwrap();
    let before = exec.params();
    let err = exec.train_step(&q, 99, 0.5).unwrap_err().to_string();
    assert!(err.contains("label 99"), "{err}");
    assert_eq!(exec.params(), before);
    assert_eq!(exec.steps(), 1);
}

#[test]
fn a_wrong_plan_corrupts_the_logits() {
    use mite::ir::program::Storage;
    let (m, mut p) = tiny();
    let img = tiny_image(1);
    let want = Interpreter::new(&m)
        .unwrap()
        .run(
            "forward",
            &[Tensor::f32(&[1, 3, 32, 32], img.clone()).unwrap()],
        )
        .unwrap();
    let q = quantize_image(&m, "forward", &img).unwrap();
    assert_eq!(
        ProgramExecutor::new(&p).unwrap().infer(&q).unwrap(),
        want[0].as_f32().unwrap()
    );
    // The residual add reads a tensor written several calls earlier; put the output of the
    // call right after that write on top of it: the planned program is right, this one is not.
    let infer = p.entry("infer").unwrap().clone();
    let add = infer
        .calls
        .iter()
        .find(|c| c.kernel.name() == "add_int8")
        .unwrap();
    let kept = add.inputs[0];
    let writer = infer
        .calls
        .iter()
        .position(|c| c.outputs.contains(&kept))
        .unwrap();
    let victim = infer.calls[writer + 1].outputs[0];
    let Storage::Arena { offset } = p.buffer(kept).storage else {
        panic!("not in the arena")
    };
    assert!(offset + p.buffer(victim).bytes() <= p.arena_bytes);
    p.buffers[victim.index()].storage = Storage::Arena { offset };
    assert!(mite::ir::program::verify_program(&p).is_err());
    let got = ProgramExecutor::new(&p).unwrap().infer(&q).unwrap();
    assert_ne!(got, want[0].as_f32().unwrap());
}

#[test]
fn the_input_in_the_arena_or_outside_gives_the_same_bits() {
    let (m, inside) = tiny();
    let outside = lower_module(
        &m,
        &LowerOptions {
            input_in_arena: false,
            ..LowerOptions::default()
        },
    )
    .unwrap();
    let (a, b) = (inside.storage_bytes(), outside.storage_bytes());
    assert_eq!(a.input_in_arena, 3 * 32 * 32);
    assert_eq!(b.input_in_arena, 0);
    assert!(a.sram() < b.sram(), "{a:?} {b:?}");
    let mut x = ProgramExecutor::new(&inside).unwrap();
    let mut y = ProgramExecutor::new(&outside).unwrap();
    for step in 0..6 {
        let q = quantize_image(&m, "train_step", &tiny_image(step)).unwrap();
        let label = (step % 10) as i32;
        let (lx, ly) = (
            x.train_step(&q, label, 0.1).unwrap(),
            y.train_step(&q, label, 0.1).unwrap(),
        );
        assert_eq!(lx.to_bits(), ly.to_bits(), "loss of step {step}");
        let q = quantize_image(&m, "forward", &tiny_image(step + 100)).unwrap();
        assert_eq!(x.infer(&q).unwrap(), y.infer(&q).unwrap(), "logits {step}");
    }
    assert_eq!(x.params(), y.params());
}

#[test]
fn an_input_overwritten_before_its_last_reader_corrupts_the_step() {
    use mite::ir::program::Storage;
    // Every layer trained: the first convolution's weight gradient reads the image late in the
    // backward pass.
    let mut m = mite::zoo::tiny_int8_cnn();
    Scheme::parse("full").unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    let good = lower_module(&m, &LowerOptions::default()).unwrap();
    let train = good.entry("train_step").unwrap().clone();
    let input = train.args[0];
    let Storage::Input { offset, .. } = good.buffer(input).storage else {
        panic!("the input is not in the arena")
    };
    let last_reader = train
        .calls
        .iter()
        .rposition(|c| c.inputs.contains(&input))
        .unwrap();
    assert!(
        last_reader > 1,
        "the image is read by call {last_reader} only"
    );
    // Call 1's output written over the image, which a later call still reads.
    let victim = train.calls[1].outputs[0];
    assert!(matches!(good.buffer(victim).storage, Storage::Arena { .. }));
    let mut bad = good.clone();
    let at = offset.next_multiple_of(bad.buffer(victim).elem.align());
    bad.buffers[victim.index()].storage = Storage::Arena { offset: at };
    bad.arena_bytes = bad.arena_bytes.max(at + bad.buffer(victim).bytes());
    let err = mite::ir::program::verify_program(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlap"), "{err}");
    let q = quantize_image(&m, "train_step", &tiny_image(2)).unwrap();
    let mut want = ProgramExecutor::new(&good).unwrap();
    let mut got = ProgramExecutor::new(&bad).unwrap();
    want.train_step(&q, 3, 0.5).unwrap();
    // The corrupted image may even make the step fail; if it runs, its updates differ.
    if got.train_step(&q, 3, 0.5).is_ok() {
        assert_ne!(got.params(), want.params());
    }
}
