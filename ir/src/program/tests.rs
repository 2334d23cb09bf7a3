//! Tests of the Program frame: the verifier accepts planned programs and rejects broken ones.

use mite_kernels::requant::{ActRange, Rounding};
use mite_kernels::{Conv2dGeometry, Window2d};
use proptest::prelude::*;

use super::*;
use crate::memory::plan::{plan_greedy, Request};

/// A 1×1 convolution from `c_in` to `c_out` channels over an `hw`×`hw` plane, no bias.
fn pointwise(c_in: usize, c_out: usize, hw: usize) -> Kernel {
    let window = Window2d {
        kernel: [1, 1],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
    };
    Kernel::ConvInt8 {
        geometry: Conv2dGeometry::new(1, c_in, [hw, hw], c_out, 1, window).unwrap(),
        x_zero_point: 0,
        w_zero_points: vec![],
        scales: vec![0.5],
        multipliers: vec![1 << 30],
        shifts: vec![0],
        out_zero_point: 0,
        range: ActRange {
            min: -128,
            max: 127,
        },
        rounding: Rounding::Double,
        bias: false,
    }
}

fn buffer(name: &str, elem: BufElem, shape: &[usize], storage: Storage) -> BufferDecl {
    BufferDecl {
        name: name.into(),
        elem,
        len: shape.iter().product(),
        shape: shape.to_vec(),
        storage,
    }
}

/// A chain of pointwise convolutions `x → c[0] → c[1] → …` over a 4×4 plane: the input is an
/// argument, each weight in flash, each activation and scratch in the arena, planned greedily.
/// Returns the program and the planner's requests (one per arena buffer, in buffer order).
fn chain(channels: &[usize]) -> Program {
    chain_with_input(channels, false)
}

/// [`chain`], with the input in the arena (live at call 0, its only reader) when `in_arena`.
fn chain_with_input(channels: &[usize], in_arena: bool) -> Program {
    const HW: usize = 4;
    let input_storage = if in_arena {
        Storage::Input {
            entry: 0,
            offset: 0,
        }
    } else {
        Storage::Arg {
            entry: 0,
            role: ArgRole::Input,
        }
    };
    let mut buffers = vec![buffer(
        "x",
        BufElem::I8,
        &[1, channels[0], HW, HW],
        input_storage,
    )];
    let mut calls = Vec::new();
    let mut requests = Vec::new();
    let mut arena_ids = Vec::new();
    if in_arena {
        requests.push(Request {
            size: (channels[0] * HW * HW) as u64,
            align: 1,
            first: 0,
            last: 0,
        });
        arena_ids.push(BufferId(0));
    }
    let mut prev = BufferId(0);
    for (k, pair) in channels.windows(2).enumerate() {
        let (c_in, c_out) = (pair[0], pair[1]);
        let w = BufferId(buffers.len() as u32);
        buffers.push(buffer(
            &format!("w{k}"),
            BufElem::I8,
            &[c_out, c_in, 1, 1],
            Storage::Flash {
                global: None,
                data: TensorData::I8(vec![1; c_out * c_in]),
            },
        ));
        let y = BufferId(buffers.len() as u32);
        buffers.push(buffer(
            &format!("y{k}"),
            BufElem::I8,
            &[1, c_out, HW, HW],
            Storage::Arena { offset: 0 },
        ));
        let s = BufferId(buffers.len() as u32);
        buffers.push(buffer(
            &format!("s{k}"),
            BufElem::I32,
            &[HW * HW],
            Storage::Arena { offset: 0 },
        ));
        // y_k is written at call k and read at call k + 1 (the last one, the result, is live
        // to the end of the entry, which is step k + 1 too).
        requests.push(Request {
            size: (c_out * HW * HW) as u64,
            align: 1,
            first: k,
            last: k + 1,
        });
        requests.push(Request {
            size: (HW * HW * 4) as u64,
            align: 4,
            first: k,
            last: k,
        });
        arena_ids.extend([y, s]);
        calls.push(Call {
            kernel: pointwise(c_in, c_out, HW),
            inputs: vec![prev, w],
            outputs: vec![y],
            scratch: Some(s),
            loc: Some(format!("conv{k}")),
        });
        prev = y;
    }
    let plan = plan_greedy(&requests);
    for (id, &offset) in arena_ids.iter().zip(&plan.offsets) {
        let storage = &mut buffers[id.index()].storage;
        *storage = match storage {
            Storage::Input { entry, .. } => Storage::Input {
                entry: *entry,
                offset,
            },
            _ => Storage::Arena { offset },
        };
    }
    Program {
        name: "chain".into(),
        arena_bytes: plan.arena_size,
        buffers,
        entries: vec![Entry {
            name: "infer".into(),
            args: vec![BufferId(0)],
            results: vec![prev],
            calls,
        }],
    }
}

fn offset_of(p: &Program, name: &str) -> (usize, u64) {
    let i = p.buffers.iter().position(|b| b.name == name).unwrap();
    match p.buffers[i].storage {
        Storage::Arena { offset } => (i, offset),
        _ => panic!("{name} is not in the arena"),
    }
}

#[test]
fn planned_chain_verifies_and_prints() {
    let p = chain(&[3, 8, 4]);
    verify_program(&p).unwrap();
    let text = print_program(&p);
    assert!(text.starts_with("program @chain {\n  arena "), "{text}");
    assert!(
        text.contains("conv2d_int8 (b0, b1) -> (b2) scratch b3"),
        "{text}"
    );
    let bytes = p.storage_bytes();
    assert_eq!(bytes.flash, 3 * 8 + 8 * 4);
    assert_eq!(bytes.args, 3 * 16);
    assert_eq!(bytes.sram(), p.arena_bytes + 48);
}

#[test]
fn input_in_the_arena_verifies_prints_and_counts_in_the_arena() {
    let p = chain_with_input(&[3, 8, 4], true);
    verify_program(&p).unwrap();
    let Storage::Input { offset, .. } = p.buffers[0].storage else {
        panic!("the input is not in the arena")
    };
    let text = print_program(&p);
    assert!(
        text.contains(&format!("b0 = input i8[1x3x4x4] @{offset} \"x\" entry=0\n")),
        "{text}"
    );
    let bytes = p.storage_bytes();
    assert_eq!(bytes.args, 0);
    assert_eq!(bytes.input_in_arena, 48);
    assert_eq!(bytes.sram(), p.arena_bytes);
    // The planner reuses the input's bytes after call 0: the arena is smaller than the input
    // beside the largest pair of buffers live after it.
    let outside = chain_with_input(&[3, 8, 4], false);
    assert!(p.arena_bytes < outside.arena_bytes + 48, "{text}");
}

#[test]
fn a_call_writing_the_input_before_its_last_reader_is_rejected() {
    let p = chain_with_input(&[3, 8, 4], true);
    let Storage::Input { offset, .. } = p.buffers[0].storage else {
        panic!("the input is not in the arena")
    };
    // s0 is written at call 0, which reads the input: put it on the input's bytes.
    let (s0, _) = offset_of(&p, "s0");
    let mut broken = p.clone();
    let at = offset.next_multiple_of(4);
    broken.buffers[s0].storage = Storage::Arena { offset: at };
    broken.arena_bytes = broken.arena_bytes.max(at + 64);
    let errors = verify_program(&broken).unwrap_err().0;
    assert!(
        errors.iter().any(|e| matches!(
            e,
            ProgramError::Overlap { a, b, from: 0, to: 0, .. }
                if *a == BufferId(0) || *b == BufferId(0)
        )),
        "{errors:?}"
    );

    // y1 is written at call 1, after the input's last reader: its bytes may be the input's.
    let (y1, _) = offset_of(&p, "y1");
    let mut reused = p.clone();
    let end = reused.arena_bytes;
    reused.buffers[0].storage = Storage::Input {
        entry: 0,
        offset: end,
    };
    reused.buffers[y1].storage = Storage::Arena { offset: end };
    reused.arena_bytes = end + 64;
    verify_program(&reused).unwrap();

    // No call writes the input.
    let mut broken = p.clone();
    broken.entries[0].calls[0].outputs = vec![BufferId(0)];
    let errors = verify_program(&broken).unwrap_err().0;
    assert!(
        errors.iter().any(|e| matches!(
            e,
            ProgramError::BadWrite {
                storage: "input",
                ..
            }
        )),
        "{errors:?}"
    );

    // Another entry does not read it: it is never written there.
    let mut broken = p.clone();
    let mut other = broken.entries[0].clone();
    other.name = "other".into();
    other.args.clear();
    broken.entries.push(other);
    let errors = verify_program(&broken).unwrap_err().0;
    assert!(
        errors.iter().any(|e| matches!(
            e,
            ProgramError::ReadBeforeWrite { entry, buffer, .. }
                if entry == "other" && *buffer == BufferId(0)
        )),
        "{errors:?}"
    );
}

#[test]
fn overlapping_live_buffers_are_rejected() {
    let mut p = chain(&[3, 8, 4]);
    // y0 is live at calls 0 and 1, as is y1's scratch s1 at call 1: put s1 on y0.
    let (_, y0) = offset_of(&p, "y0");
    let (s1, _) = offset_of(&p, "s1");
    p.buffers[s1].storage = Storage::Arena {
        offset: y0.next_multiple_of(4),
    };
    p.arena_bytes = p.arena_bytes.max(y0.next_multiple_of(4) + 64);
    let errors = verify_program(&p).unwrap_err().0;
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, ProgramError::Overlap { from: 1, to: 1, .. })),
        "{errors:?}"
    );
}

#[test]
fn broken_programs_name_what_is_wrong() {
    let good = chain(&[3, 8, 4]);

    let mut p = good.clone();
    let (s0, _) = offset_of(&p, "s0");
    p.buffers[s0].storage = Storage::Arena { offset: 2 };
    p.arena_bytes += 64;
    let msg = verify_program(&p).unwrap_err().to_string();
    assert!(msg.contains("not aligned to 4 bytes"), "{msg}");

    let mut p = good.clone();
    p.arena_bytes = 10;
    let msg = verify_program(&p).unwrap_err().to_string();
    assert!(msg.contains("do not fit the arena of 10 bytes"), "{msg}");

    let mut p = good.clone();
    p.entries[0].calls.swap(0, 1);
    let errors = verify_program(&p).unwrap_err().0;
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, ProgramError::ReadBeforeWrite { call: 0, .. })),
        "{errors:?}"
    );

    let mut p = good.clone();
    p.entries[0].calls[0].outputs = vec![BufferId(1)];
    let errors = verify_program(&p).unwrap_err().0;
    assert!(
        errors.iter().any(|e| matches!(
            e,
            ProgramError::BadWrite {
                storage: "flash",
                ..
            }
        )),
        "{errors:?}"
    );

    let mut p = good.clone();
    p.entries[0].calls[1].inputs.pop();
    let msg = verify_program(&p).unwrap_err().to_string();
    assert!(
        msg.contains("1 operands given, the kernel takes 2"),
        "{msg}"
    );

    let mut p = good.clone();
    p.entries[0].calls[0].inputs[0] = BufferId(99);
    let msg = verify_program(&p).unwrap_err().to_string();
    assert!(msg.contains("buffer b99 does not exist"), "{msg}");

    let mut p = good;
    p.buffers[2].len += 1;
    let errors = verify_program(&p).unwrap_err().0;
    // The shape no longer matches, both calls see a wrong length, and the longer buffer now
    // overlaps its neighbours.
    let count = |f: fn(&ProgramError) -> bool| errors.iter().filter(|e| f(e)).count();
    assert_eq!(
        count(|e| matches!(e, ProgramError::Buffer { .. })),
        1,
        "{errors:?}"
    );
    assert_eq!(
        count(|e| matches!(e, ProgramError::Signature { .. })),
        2,
        "{errors:?}"
    );
    assert!(
        count(|e| matches!(e, ProgramError::Overlap { .. })) >= 1,
        "{errors:?}"
    );
}

proptest! {
    /// A planned chain always verifies; moving any arena buffer onto another one live at the same
    /// call is always rejected.
    #[test]
    fn planned_chains_verify_and_collisions_are_caught(
        channels in proptest::collection::vec(1_usize..24, 2..9),
        victim in any::<prop::sample::Index>(),
    ) {
        let p = chain(&channels);
        prop_assert!(verify_program(&p).is_ok());
        // Call k's output y_k and scratch s_k are live together at call k.
        let k = victim.index(channels.len() - 1);
        let (_, y) = offset_of(&p, &format!("y{k}"));
        let (s, _) = offset_of(&p, &format!("s{k}"));
        let mut broken = p.clone();
        let at = y.next_multiple_of(4);
        broken.buffers[s].storage = Storage::Arena { offset: at };
        broken.arena_bytes = broken.arena_bytes.max(at + 64);
        // y_k has at least 16 bytes, so the scratch (aligned up by at most 3) lands on it.
        prop_assert!(at < y + (channels[k + 1] * 16) as u64);
        prop_assert!(verify_program(&broken).is_err());
    }
}

#[test]
fn arena_lower_bound_and_peak_follow_the_live_intervals() {
    // [3, 8, 4] over 4×4: call 0 holds y0 (128 B) and s0 (64 B); call 1 holds y0, y1 (64 B)
    // and s1 (64 B), so the bound is 256 B at call 1.
    let p = chain(&[3, 8, 4]);
    let live = ArenaLiveness::of(&p, 0);
    assert_eq!(live.bytes_per_call(&p), vec![192, 256]);
    assert_eq!(live.peak(&p), Some((1, 256)));
    assert_eq!(p.arena_lower_bound(), 256);
    assert!(p.arena_bytes >= p.arena_lower_bound());
    assert_eq!(
        live.live_at(&p, 1),
        vec![BufferId(2), BufferId(5), BufferId(6)]
    );
    let report = p.arena_peak_report(2);
    assert!(
        report.starts_with("@infer: arena peak 0.2 KB at call 1 (conv2d_int8 conv1)\n"),
        "{report}"
    );
    assert_eq!(report.lines().count(), 3, "{report}");
    assert_eq!(p.arena_peak(), Some((0, 1, 256)));
    assert_eq!(
        p.arena_peak_text().as_deref(),
        Some("@infer call 1: conv2d_int8 (conv1)")
    );
}

/// A streamed bottleneck backward: 2 → 6 → 3 channels over 4×4, a 3×3 depthwise of `stride`.
fn bottleneck_backward(stride: usize, dx: bool, update: bool) -> Kernel {
    let pw = Window2d {
        kernel: [1, 1],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
    };
    let dw = Window2d {
        kernel: [3, 3],
        strides: [stride, stride],
        pads: [1; 4],
        dilations: [1, 1],
    };
    let e = Conv2dGeometry::new(1, 2, [4, 4], 6, 1, pw).unwrap();
    let d = Conv2dGeometry::new(1, 6, [4, 4], 6, 6, dw).unwrap();
    let p = Conv2dGeometry::new(1, 6, d.out_hw(), 3, 1, pw).unwrap();
    let grad = |g: Conv2dGeometry, channels: usize| {
        Box::new(Kernel::ConvBackwardInputInt8 {
            geometry: g,
            scales: vec![0.5; channels],
            zero_points: vec![0; channels],
            inner: g.weight_len() / channels,
        })
    };
    let sgd = Kernel::Sgd {
        elem: BufElem::I8,
        len: e.weight_len(),
        lr_scale: 1.0,
        momentum: 0.0,
        weight_decay: 0.0,
        qas: true,
        stochastic_seed: None,
        scales: vec![0.5; 6],
        zero_points: vec![0; 6],
        inner: 2,
        accumulate: 1,
        slice: None,
    };
    Kernel::BottleneckBackward {
        project: grad(p, 3),
        depthwise: grad(d, 6),
        expand: e,
        dx: dx.then(|| grad(e, 6)),
        depthwise_bias: true,
        expand_bias: false,
        update: update.then(|| {
            (
                Box::new(Kernel::Dequantize {
                    len: e.input_len(),
                    scales: vec![0.1],
                    zero_points: vec![0],
                    inner: e.input_len(),
                }),
                Box::new(Kernel::ConvWeightSgd {
                    geometry: e,
                    update: Box::new(sgd),
                }),
            )
        }),
        kept: None,
    }
}

#[test]
fn bottleneck_backward_signature_follows_its_parts() {
    use BufElem::{Bits, F32, I64, I8};
    let k = bottleneck_backward(2, true, true);
    assert_eq!(k.name(), "bottleneck_backward");
    assert!(k.is_update() && !k.reads_outputs());
    assert_eq!(k.fused_gradient_bytes(), 12 * 4);
    let s = k.signature();
    // dy (3 × 2 × 2), the projection weight, the depthwise mask (6 × 2 × 2), its weight, the
    // expansion mask (6 × 4 × 4), x, lr, step.
    assert_eq!(
        s.inputs,
        [
            (F32, 12),
            (I8, 18),
            (Bits, 24),
            (I8, 54),
            (Bits, 96),
            (I8, 32),
            (F32, 1),
            (I64, 1)
        ]
    );
    // The updated weight, dx, the depthwise bias gradient.
    assert_eq!(s.outputs, [(I8, 12), (F32, 32), (F32, 6)]);
    // One depthwise output plane, one input plane, c_in + 2.
    assert_eq!(s.scratch, Some((F32, 4 + 16 + 2 + 2)));
    let attrs: Vec<&str> = k.attrs().iter().map(|(n, _)| *n).collect();
    for name in [
        "mid", "strides", "p_scales", "e_scales", "dx", "x_scales", "qas",
    ] {
        assert!(attrs.contains(&name), "{name} missing: {attrs:?}");
    }
    // Frozen with dx: the weight is an operand; without dx nor update: not at all.
    let frozen = bottleneck_backward(1, true, false).signature();
    assert_eq!(frozen.inputs.len(), 6);
    assert_eq!(frozen.outputs, [(F32, 32), (F32, 6)]);
    let bias_only = bottleneck_backward(1, false, false);
    assert!(!bias_only.is_update());
    assert_eq!(bias_only.signature().inputs.len(), 5);
}

#[test]
fn a_bottleneck_backward_whose_parts_do_not_chain_matches_no_call() {
    let Kernel::BottleneckBackward {
        project,
        depthwise,
        dx,
        depthwise_bias,
        expand_bias,
        update,
        ..
    } = bottleneck_backward(1, true, true)
    else {
        unreachable!()
    };
    // The expansion's output is not the depthwise input.
    let window = Window2d {
        kernel: [1, 1],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
    };
    let k = Kernel::BottleneckBackward {
        project,
        depthwise,
        expand: Conv2dGeometry::new(1, 2, [4, 4], 5, 1, window).unwrap(),
        dx,
        depthwise_bias,
        expand_bias,
        update,
        kept: None,
    };
    assert_eq!(bottleneck_backward_parts(&k), None);
    assert_eq!(k.signature(), Signature::default());
}

/// [`bottleneck_backward`] with its expansion weight split after `kept` of 4 input channels:
/// the update's geometry, input and parameter those of the trained slice.
fn split_bottleneck_backward(kept: usize, update_channels: usize) -> Kernel {
    let Kernel::BottleneckBackward {
        project,
        depthwise,
        depthwise_bias,
        expand_bias,
        update: Some((_, sgd)),
        ..
    } = bottleneck_backward(1, true, true)
    else {
        unreachable!()
    };
    let Kernel::ConvWeightSgd { geometry: e, .. } = sgd.as_ref() else {
        unreachable!()
    };
    let whole = Conv2dGeometry::new(1, 4, e.in_hw(), e.c_out(), 1, e.window()).unwrap();
    let slice =
        Conv2dGeometry::new(1, update_channels, e.in_hw(), e.c_out(), 1, e.window()).unwrap();
    let Kernel::ConvWeightSgd { update: rule, .. } = *sgd else {
        unreachable!()
    };
    let mut rule = *rule;
    if let Kernel::Sgd { len, inner, .. } = &mut rule {
        *len = slice.weight_len();
        *inner = update_channels;
    }
    Kernel::BottleneckBackward {
        project,
        depthwise,
        expand: whole,
        dx: Some(Box::new(Kernel::ConvBackwardInputInt8 {
            geometry: whole,
            scales: vec![0.5; 6],
            zero_points: vec![0; 6],
            inner: 4,
        })),
        depthwise_bias,
        expand_bias,
        update: Some((
            Box::new(Kernel::Dequantize {
                len: slice.input_len(),
                scales: vec![0.1],
                zero_points: vec![0],
                inner: slice.input_len(),
            }),
            Box::new(Kernel::ConvWeightSgd {
                geometry: slice,
                update: Box::new(rule),
            }),
        )),
        kept: Some(kept),
    }
}

#[test]
fn a_split_bottleneck_backward_updates_the_slice_and_reads_the_remainder() {
    use BufElem::{Bits, F32, I64, I8};
    let k = split_bottleneck_backward(1, 1);
    assert!(bottleneck_backward_parts(&k).is_some());
    // x is the slice of 1 channel of 4 × 4; the frozen remainder (6 × 3) follows step.
    assert_eq!(
        k.signature().inputs,
        [
            (F32, 48),
            (I8, 18),
            (Bits, 96),
            (I8, 54),
            (Bits, 96),
            (I8, 16),
            (F32, 1),
            (I64, 1),
            (I8, 18)
        ]
    );
    // The updated slice (6 × 1), dx over all 4 channels, the depthwise bias gradient.
    assert_eq!(k.signature().outputs, [(I8, 6), (F32, 64), (F32, 6)]);
    assert!(k.attrs().iter().any(|(n, _)| *n == "kept"));
    // The update's geometry must be the slice's.
    let k = split_bottleneck_backward(2, 1);
    assert_eq!(bottleneck_backward_parts(&k), None);
    assert_eq!(k.signature(), Signature::default());
}
