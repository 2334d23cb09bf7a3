//! Tests of the lowering: the zoo models' training steps lower, verify and account their memory.

use super::*;
use crate::passes::{build_training_step, TrainConfig};
use crate::scheme::Scheme;
use mite_ir::program::{print_program, Kernel};

fn lowered(mut m: Module, scheme: &str) -> Program {
    Scheme::parse(scheme).unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    lower_module(&m, &LowerOptions::default()).unwrap()
}

#[test]
fn zoo_models_lower_and_verify() {
    for (m, scheme) in [
        (mite_zoo::mcunet_5fps(), "last:6"),
        (mite_zoo::mcunet_5fps(), "paper:99kb"),
    ] {
        let p = lowered(m, scheme);
        let s = p.storage_bytes();
        assert!(s.arena > 0 && s.param > 0, "{s:?}");
        assert_eq!(p.entries.len(), 2);
        let text = print_program(&p);
        assert!(text.contains("entry @train_step"), "{text}");
    }
}

#[test]
fn tiny_model_lowers_with_every_storage_class() {
    let p = lowered(mite_zoo::tiny_int8_cnn(), "last:2");
    let kinds: std::collections::BTreeSet<&str> =
        p.buffers.iter().map(|b| b.storage.kind()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["arena", "arg", "flash", "input", "param"]
    );
    let train = p.entry("train_step").unwrap();
    // input, label, lr, step; the int8 image is the input, in the arena.
    assert_eq!(train.args.len(), 4);
    assert_eq!(p.buffer(train.args[0]).elem, BufElem::I8);
    assert_eq!(p.buffer(train.args[0]).storage.kind(), "input");
    assert_eq!(p.entry("infer").unwrap().args.len(), 1);
    // One update per trained parameter, each writing that parameter's SRAM copy.
    let params: Vec<BufferId> = (0..p.buffers.len())
        .map(|i| BufferId(i as u32))
        .filter(|&b| p.buffer(b).storage.kind() == "param")
        .collect();
    let mut updated: Vec<BufferId> = train
        .calls
        .iter()
        .filter(|c| c.kernel.is_update())
        .map(|c| c.outputs[0])
        .collect();
    updated.sort();
    assert_eq!(updated, params);
    // Scratch lives in the arena, only at its call.
    assert!(train.calls.iter().any(|c| c.scratch.is_some()));
}

#[test]
fn a_broken_plan_is_rejected() {
    let mut p = lowered(mite_zoo::tiny_int8_cnn(), "last:2");
    // Put the first call's output where its input... any two buffers a call reads and writes.
    let train = p.entry("train_step").unwrap().clone();
    let call = train
        .calls
        .iter()
        .find(|c| c.kernel.name() == "conv2d_int8" && c.scratch.is_some())
        .unwrap();
    let (y, scratch) = (call.outputs[0], call.scratch.unwrap());
    let Storage::Arena { offset } = p.buffer(y).storage else {
        panic!("conv output not in the arena")
    };
    p.buffers[scratch.index()].storage = Storage::Arena { offset };
    let err = verify_program(&p).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|e| matches!(e, mite_ir::program::ProgramError::Overlap { .. })),
        "{err}"
    );
}

#[test]
fn unsupported_ops_name_function_op_and_location() {
    let mut m = mite_zoo::tiny_int8_cnn();
    Scheme::parse("last:2").unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    let opts = LowerOptions {
        rounding: Rounding::OnnxRuntime,
        ..LowerOptions::default()
    };
    let err = lower_module(&m, &opts).unwrap_err().to_string();
    assert!(
        err.contains("@forward") && err.contains("q.conv2d") && err.contains("onnxruntime"),
        "{err}"
    );
    let err = lower_module(
        &m,
        &LowerOptions {
            forward: "nope".into(),
            ..LowerOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err, LowerError::NoFunction("nope".into()));
}

/// The calls of the training step, by kernel name.
fn train_kernels(p: &Program) -> Vec<&'static str> {
    p.entries[1].calls.iter().map(|c| c.kernel.name()).collect()
}

#[test]
fn weight_gradients_fuse_with_their_updates() {
    let mut m = mite_zoo::mcunet_5fps();
    Scheme::parse("paper:99kb").unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    // Without the streamed bottleneck backward, which fuses some of these updates further.
    let fused = lower_module(
        &m,
        &LowerOptions {
            stream_bottleneck_backward: false,
            ..LowerOptions::default()
        },
    )
    .unwrap();
    let unfused = lower_module(
        &m,
        &LowerOptions {
            fuse_updates: false,
            stream_bottleneck_backward: false,
            ..LowerOptions::default()
        },
    )
    .unwrap();
    let count = |p: &Program, name: &str| train_kernels(p).iter().filter(|&&k| k == name).count();
    let pairs = count(&unfused, "conv2d_backward_weight");
    assert!(pairs > 0);
    assert_eq!(count(&fused, "conv2d_backward_weight_sgd"), pairs);
    assert_eq!(count(&fused, "conv2d_backward_weight"), 0);
    assert_eq!(count(&unfused, "conv2d_backward_weight_sgd"), 0);
    // Each fused pair drops one gradient and one update call, adds one.
    assert_eq!(
        fused.entries[1].calls.len() + pairs,
        unfused.entries[1].calls.len()
    );
    // No gradient buffer and no full-size scratch of the fused updates remains.
    let text = print_program(&fused);
    assert!(!text.contains("grad_full"), "{text}");
    assert!(fused.storage_bytes().arena < unfused.storage_bytes().arena);
    // The fused call comes after every other reader of the weight it updates.
    for (k, call) in fused.entries[1].calls.iter().enumerate() {
        if call.kernel.fused_gradient_bytes() > 0 {
            let w = call.outputs[0];
            let later_reader = fused.entries[1].calls[k + 1..]
                .iter()
                .any(|c| c.inputs.contains(&w));
            assert!(!later_reader, "call {k} updates {w} before a reader");
        }
    }
}

/// The arena buffers of entry `name` other than its input whose bytes meet the input's, and the
/// input's offset and size.
fn on_the_input(p: &Program, name: &str) -> (BufferId, Vec<(usize, BufferId)>) {
    let e = p.entry(name).unwrap();
    let input = e.args[0];
    let Storage::Input { offset, .. } = p.buffer(input).storage else {
        panic!("the input of @{name} is not in the arena")
    };
    let end = offset + p.buffer(input).bytes();
    let mut on = Vec::new();
    for (c, call) in e.calls.iter().enumerate() {
        for &b in call.outputs.iter().chain(call.scratch.iter()) {
            if let Storage::Arena { offset: o } = p.buffer(b).storage {
                if o < end && offset < o + p.buffer(b).bytes() {
                    on.push((c, b));
                }
            }
        }
    }
    (input, on)
}

#[test]
fn the_input_lives_in_the_arena_until_its_last_reader() {
    let p = lowered(mite_zoo::mcunet_5fps(), "paper:99kb");
    let train = p.entry("train_step").unwrap();
    let (input, on) = on_the_input(&p, "train_step");
    let last_reader = train
        .calls
        .iter()
        .rposition(|c| c.inputs.contains(&input))
        .unwrap();
    // The planner reuses the image's bytes, but only after its last reader.
    assert!(!on.is_empty());
    assert!(on.iter().all(|&(c, _)| c > last_reader), "{on:?}");
    let s = p.storage_bytes();
    assert_eq!(s.input_in_arena, 3 * 128 * 128);
    // label (4), learning rate (4), step (8)
    assert_eq!(s.args, 16);

    // The old layout: the image is an argument for the whole step, beside the arena.
    let mut m = mite_zoo::mcunet_5fps();
    Scheme::parse("paper:99kb").unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    let outside = lower_module(
        &m,
        &LowerOptions {
            input_in_arena: false,
            ..LowerOptions::default()
        },
    )
    .unwrap();
    let o = outside.storage_bytes();
    assert_eq!((o.input_in_arena, o.args), (0, 3 * 128 * 128 + 16));
    assert!(s.sram() < o.sram(), "{s:?} {o:?}");
}

#[test]
fn a_buffer_written_on_the_input_before_its_last_reader_is_rejected() {
    let mut p = lowered(mite_zoo::tiny_int8_cnn(), "last:2");
    let train = p.entry("train_step").unwrap().clone();
    let input = train.args[0];
    let Storage::Input { offset, .. } = p.buffer(input).storage else {
        panic!("the input is not in the arena")
    };
    // The first reader of the input writes its output while the input is still live.
    let reader = train
        .calls
        .iter()
        .find(|c| c.inputs.contains(&input))
        .unwrap();
    let y = reader.outputs[0];
    let at = offset.next_multiple_of(p.buffer(y).elem.align());
    p.buffers[y.index()].storage = Storage::Arena { offset: at };
    p.arena_bytes = p.arena_bytes.max(at + p.buffer(y).bytes());
    let err = verify_program(&p).unwrap_err();
    assert!(
        err.0.iter().any(|e| matches!(
            e,
            mite_ir::program::ProgramError::Overlap { a, b, .. } if *a == input || *b == input
        )),
        "{err}"
    );
}

#[test]
fn input_gradients_are_computed_over_dy_and_shrink_the_arena() {
    // As `mite train` compiles it: updates as soon as ready, frozen bottlenecks streamed and
    // the step reordered, so that the bias and weight gradients read dy before the input
    // gradient does and the backward pass holds the peak.
    let mut m = mite_zoo::mbv2_w035();
    Scheme::parse("paper:99kb").unwrap().apply(&mut m).unwrap();
    let config = TrainConfig {
        updates: crate::passes::UpdatePlacement::AsSoonAsReady,
        ..TrainConfig::default()
    };
    build_training_step(&mut m, &config).unwrap();
    crate::passes::stream_bottlenecks(&mut m);
    let f = m.function_mut("train_step").unwrap();
    let order = crate::passes::schedule_function(f, &Default::default()).order;
    if let Some(order) = order {
        f.set_schedule(&order).unwrap();
    }
    // Without the streamed bottleneck backward, which consumes most of these calls and puts
    // the step's peak elsewhere (see `bottleneck_backwards_stream_without_the_expanded_gradient`).
    let in_place = lower_module(
        &m,
        &LowerOptions {
            stream_bottleneck_backward: false,
            ..LowerOptions::default()
        },
    )
    .unwrap();
    let out_of_place = lower_module(
        &m,
        &LowerOptions {
            in_place_grads: false,
            stream_bottleneck_backward: false,
            ..LowerOptions::default()
        },
    )
    .unwrap();
    let train = &in_place.entries[1];
    let calls: Vec<&Call> = train
        .calls
        .iter()
        .filter(|c| {
            matches!(
                c.kernel,
                mite_ir::program::Kernel::ConvBackwardInputInt8InPlace { .. }
            )
        })
        .collect();
    assert!(!calls.is_empty(), "{:?}", train_kernels(&in_place));
    assert!(!train_kernels(&out_of_place).contains(&"conv2d_backward_input_int8w_inplace"));
    for c in &calls {
        // The one result is the buffer of dy (written by an earlier call), with a scratch.
        let dy = c.outputs[0];
        let earlier = train.calls.iter().take_while(|d| !std::ptr::eq(*d, *c));
        assert!(earlier.into_iter().any(|d| d.outputs.contains(&dy)));
        assert!(c.scratch.is_some() && c.inputs.len() == 1);
    }
    let (a, b) = (
        in_place.storage_bytes().arena,
        out_of_place.storage_bytes().arena,
    );
    assert!(a < b, "arena {a} in place, {b} out of place");
}

/// MCUNet's `paper:99kb` training step, lowered with or without weight splitting.
fn mcunet_paper(split_weights: bool) -> (Module, Program) {
    let mut m = mite_zoo::mcunet_5fps();
    Scheme::parse("paper:99kb").unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    let p = lower_module(
        &m,
        &LowerOptions {
            split_weights,
            ..LowerOptions::default()
        },
    )
    .unwrap();
    (m, p)
}

#[test]
fn partially_trained_weights_keep_only_their_slice_in_sram() {
    let (m, split) = mcunet_paper(true);
    let (_, whole) = mcunet_paper(false);
    assert!(whole.weight_splits().is_empty());
    // 36 x 1/8 and 39 x 1/4: two pointwise weights trained on their first input channels.
    let splits = split.weight_splits();
    assert_eq!(splits.len(), 2, "{splits:?}");
    let mut frozen_bytes = 0;
    for s in &splits {
        let (t, f) = (split.buffer(s.trained), split.buffer(s.frozen));
        let Storage::Param { global, init } = &t.storage else {
            panic!("{} is not a parameter", t.name);
        };
        assert!(matches!(f.storage, Storage::Flash { .. }), "{}", f.name);
        assert_eq!(t.shape[0], f.shape[0]);
        assert_eq!(t.shape[1] + f.shape[1], 96, "{global}: 96 input channels");
        assert!(t.shape[1] < f.shape[1], "{global}: a slice of at most 1/4");
        // The slice ++ the remainder is the module's weight.
        let GlobalData::Inline(data) = &m.globals[global.as_str()].data else {
            panic!("@{global} has no data");
        };
        assert_eq!(split.whole_param(s.trained, init).as_ref(), Some(data));
        frozen_bytes += f.bytes();
        // Every call reading the slice reads the remainder beside it, but the update, which
        // covers the slice alone: a weight-gradient update, or a streamed bottleneck backward
        // whose dx reads the remainder (operand 8) with the slice it updates.
        for e in &split.entries {
            for c in &e.calls {
                if c.inputs.contains(&s.trained) {
                    assert!(
                        matches!(c.kernel, Kernel::SplitWeight { kept, .. } if kept == t.shape[1])
                            && c.inputs[2] == s.frozen,
                        "{}: {} reads the slice alone",
                        e.name,
                        c.kernel.name()
                    );
                }
                if c.outputs.contains(&s.trained) {
                    let sgd = match &c.kernel {
                        k @ Kernel::ConvWeightSgd { .. } => k,
                        Kernel::BottleneckBackward {
                            kept: Some(kept),
                            update: Some((_, sgd)),
                            ..
                        } if *kept == t.shape[1] && c.inputs[8] == s.frozen => sgd.as_ref(),
                        k => panic!("{} updates @{global}", k.name()),
                    };
                    let Kernel::ConvWeightSgd { update, .. } = sgd else {
                        panic!("{} updates @{global}", sgd.name());
                    };
                    assert!(
                        matches!(update.as_ref(), Kernel::Sgd { len, slice: None, .. } if *len == t.len)
                    );
                }
            }
        }
    }
    // The remainders moved from SRAM to flash; flash holds the same bytes.
    let (a, b) = (whole.storage_bytes(), split.storage_bytes());
    assert_eq!(a.param - b.param, frozen_bytes);
    assert_eq!(a.flash, b.flash);
    assert_eq!(a.arena, b.arena);
    let names = |p: &Program| -> Vec<&'static str> {
        p.entries
            .iter()
            .flat_map(|e| e.calls.iter().map(|c| c.kernel.name()))
            .filter(|n| n.ends_with("_split"))
            .collect()
    };
    // Forward in both entries (2 + 2); the training step's two input gradients are streamed
    // within the bottleneck backwards that update the slices.
    assert_eq!(names(&split).len(), 4, "{:?}", names(&split));
    let streamed_split = split.entries[1]
        .calls
        .iter()
        .filter(|c| matches!(c.kernel, Kernel::BottleneckBackward { kept: Some(_), .. }))
        .count();
    assert_eq!(streamed_split, 2);
    let text = print_program(&split);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("blocks.12.pointwise1.weight\"") || l.contains(".frozen\""))
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn a_split_call_must_read_its_own_remainder() {
    let (_, mut p) = mcunet_paper(true);
    let splits = p.weight_splits();
    let (a, b) = (splits[0], splits[1]);
    let call = p.entries[1]
        .calls
        .iter_mut()
        .find(|c| c.inputs.get(1) == Some(&a.trained) && c.inputs.len() > 2)
        .unwrap();
    call.inputs[2] = b.frozen;
    assert_rejected(&p, "not a trained slice");
}

/// `p` fails to verify with an error whose message contains `what`.
fn assert_rejected(p: &Program, what: &str) {
    let err = verify_program(p).expect_err(what);
    assert!(
        err.0.iter().any(|e| e.to_string().contains(what)),
        "no error says {what:?}: {err:?}"
    );
}

#[test]
fn a_split_bottleneck_backward_must_read_its_own_remainder() {
    let (_, mut p) = mcunet_paper(true);
    let splits = p.weight_splits();
    let (a, b) = (splits[0], splits[1]);
    let call = p.entries[1]
        .calls
        .iter_mut()
        .find(|c| {
            matches!(c.kernel, Kernel::BottleneckBackward { kept: Some(_), .. })
                && c.outputs.first() == Some(&a.trained)
        })
        .expect("the slice's update is streamed");
    assert_eq!(call.inputs[8], a.frozen);
    call.inputs[8] = b.frozen;
    assert_rejected(&p, "result 0 and operand 8");
}

/// MbV2 with the paper's 99 KB scheme as `mite compile` builds it (updates as soon as ready,
/// frozen bottlenecks streamed, reordered), lowered with the bottleneck backward streamed or
/// not.
fn mbv2_paper(stream: bool, fuse_updates: bool) -> Program {
    mbv2_paper_with(
        LowerOptions {
            stream_bottleneck_backward: stream,
            fuse_updates,
            ..LowerOptions::default()
        },
        false,
    )
}

/// MbV2-w0.35 `paper:99kb`, updates as soon as ready, frozen bottlenecks streamed (with
/// `chain`, the first stage chained into block 1), reordered, lowered with `opts`.
fn mbv2_paper_with(opts: LowerOptions, chain: bool) -> Program {
    let mut m = mite_zoo::mbv2_w035();
    Scheme::parse("paper:99kb").unwrap().apply(&mut m).unwrap();
    let config = TrainConfig {
        updates: crate::passes::UpdatePlacement::AsSoonAsReady,
        ..TrainConfig::default()
    };
    build_training_step(&mut m, &config).unwrap();
    crate::passes::stream_bottlenecks(&mut m);
    if chain {
        crate::passes::chain_bottlenecks(&mut m);
    }
    let f = m.function_mut("train_step").unwrap();
    if let Some(order) = crate::passes::schedule_function(f, &Default::default()).order {
        f.set_schedule(&order).unwrap();
    }
    lower_module(&m, &opts).unwrap()
}

/// The calls of `p` that consume their input: `(entry, call)`.
fn consuming(p: &Program) -> Vec<(usize, usize)> {
    p.entries
        .iter()
        .enumerate()
        .flat_map(|(e, entry)| {
            entry
                .calls
                .iter()
                .enumerate()
                .filter(|(_, c)| c.kernel.consumes_input())
                .map(move |(c, _)| (e, c))
        })
        .collect()
}

#[test]
fn the_chained_first_stage_leaves_its_output_in_the_input() {
    let p = mbv2_paper_with(LowerOptions::default(), true);
    let q = mbv2_paper_with(
        LowerOptions {
            chain_in_place: false,
            ..LowerOptions::default()
        },
        true,
    );
    assert!(consuming(&q).is_empty());
    let calls = consuming(&p);
    assert_eq!(calls.len(), 2, "one in each entry: {calls:?}");
    let mut out_bytes = 0;
    for &(e, c) in &calls {
        let call = &p.entries[e].calls[c];
        assert_eq!(call.kernel.name(), "bottleneck_chain_int8_inplace");
        assert_eq!(call.inputs[0], p.entries[e].args[0], "the entry's input");
        let (x, y) = (p.buffer(call.inputs[0]), p.buffer(call.outputs[0]));
        assert_eq!(x.storage.arena_offset(), y.storage.arena_offset());
        out_bytes = y.bytes();
    }
    // The output's bytes come off the arena, less the rows the kernel stages in its scratch.
    assert!(
        p.arena_bytes + out_bytes / 2 <= q.arena_bytes,
        "{} vs {} (output {out_bytes} bytes)",
        p.arena_bytes,
        q.arena_bytes
    );
    assert_eq!(p.arena_bytes, p.arena_lower_bound());
}

#[test]
fn a_consumed_input_is_checked_by_the_verifier() {
    let p = mbv2_paper_with(LowerOptions::default(), true);
    let (e, c) = consuming(&p)[0];
    // The output moved off the input's offset.
    let mut moved = p.clone();
    let y = moved.entries[e].calls[c].outputs[0];
    if let Storage::Arena { offset } = &mut moved.buffers[y.index()].storage {
        *offset += 64;
    }
    assert_rejected(&moved, "must sit at the offset of the operand it consumes");
    // A later call reading the consumed input.
    let mut read = p.clone();
    let x = read.entries[e].calls[c].inputs[0];
    read.entries[e].calls[c + 1].inputs.push(x);
    assert_rejected(&read, &format!("is consumed here but call {}", c + 1));
}

/// The training step's streamed bottleneck backwards.
fn streamed(p: &Program) -> Vec<&Call> {
    p.entries[1]
        .calls
        .iter()
        .filter(|c| {
            matches!(
                c.kernel,
                mite_ir::program::Kernel::BottleneckBackward { .. }
            )
        })
        .collect()
}

#[test]
fn bottleneck_backwards_stream_without_the_expanded_gradient() {
    let on = mbv2_paper(true, true);
    let off = mbv2_paper(false, true);
    let calls = streamed(&on);
    assert!(streamed(&off).is_empty());
    // MbV2's paper scheme trains blocks 12 to 16 (and the expansion weights of some).
    assert!(calls.len() >= 4, "{}", calls.len());
    // Each streamed call replaces its chain: the projection's, the depthwise and (with dx) the
    // expansion's input gradients, two masks, the bias gradients and the weight update.
    let count = |p: &Program, name: &str| train_kernels(p).iter().filter(|&&k| k == name).count();
    let removed = |name: &str| count(&off, name) - count(&on, name);
    assert!(
        removed("apply_mask") == 2 * calls.len(),
        "{}",
        removed("apply_mask")
    );
    let updates = calls
        .iter()
        .filter(|c| c.kernel.fused_gradient_bytes() > 0)
        .count();
    assert_eq!(removed("conv2d_backward_weight_sgd"), updates);
    assert_eq!(removed("dequantize"), updates);
    // No f32 buffer of an expanded tensor (192 channels × 8 × 8, block 12) remains; the
    // planes of the scratch replace it.
    let expanded = |p: &Program| {
        p.buffers
            .iter()
            .filter(|b| b.elem == BufElem::F32 && b.len == 192 * 8 * 8)
            .count()
    };
    assert!(expanded(&off) > 0);
    assert_eq!(expanded(&on), 0);
    for c in &calls {
        let s = on.buffer(c.scratch.unwrap());
        assert!(s.len < 2 * 8 * 8 + 64, "{} floats of scratch", s.len);
    }
    let train_peak = |p: &Program| {
        mite_ir::program::ArenaLiveness::of(p, 1)
            .peak(p)
            .map_or(0, |(_, b)| b)
    };
    // The step's peak was block 12's 48 KB expanded gradient; now it is elsewhere, lower.
    assert!(
        train_peak(&on) < train_peak(&off),
        "{} vs {}",
        train_peak(&on),
        train_peak(&off)
    );
    // The updates and the parameters they write: the same set.
    let written = |p: &Program| {
        let mut w: Vec<String> = p.entries[1]
            .calls
            .iter()
            .filter(|c| c.kernel.is_update())
            .map(|c| p.buffer(c.outputs[0]).name.clone())
            .collect();
        w.sort();
        w
    };
    assert_eq!(written(&on), written(&off));
    let text: String = print_program(&on)
        .lines()
        .filter(|l| l.contains("bottleneck_backward") || l.contains(".planes"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!(text);
}

#[test]
fn bottleneck_backwards_whose_expanded_gradient_has_another_reader_stay_unfused() {
    // Unfused weight updates read the expanded gradient in a conv2d_backward_weight: the
    // blocks whose expansion weight is trained keep their chain.
    let fused = mbv2_paper(true, true);
    let unfused = mbv2_paper(true, false);
    let with_update = |p: &Program| {
        streamed(p)
            .iter()
            .filter(|c| c.kernel.fused_gradient_bytes() > 0)
            .count()
    };
    assert!(with_update(&fused) > 0);
    assert_eq!(with_update(&unfused), 0);
    assert!(train_kernels(&unfused).contains(&"conv2d_backward_weight"));
}
