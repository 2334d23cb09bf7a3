//! Streaming the backward pass of inverted bottlenecks: the chain of calls between the
//! gradient at a bottleneck's projection output and the gradient at its input becomes one
//! [`Kernel::BottleneckBackward`] call, which runs it one expanded channel at a time, so the
//! `f32` gradient of the expanded tensor (the largest buffer of a sparse-update step) never
//! exists whole.
//!
//! The rewrite works on a lowered entry. The chain it recognises, following the expanded
//! gradient `h` from call to call (each call is the next one touching `h`):
//!
//! 1. `conv2d_backward_input_int8w (dy, w_project) -> h` (pointwise, batch 1);
//! 2. `apply_mask (h, mask_depthwise) -> h'`, then optionally `conv2d_backward_bias (h')`;
//! 3. the depthwise input gradient, `conv2d_backward_input_int8w_inplace` over `h'` or
//!    `conv2d_backward_input_int8w (h') -> h''` (a strided depthwise);
//! 4. `apply_mask (h'', mask_expand) -> h'''`, then optionally `conv2d_backward_bias (h''')`;
//! 5. the readers of `h'''`: optionally the expansion's input gradient
//!    `conv2d_backward_input_int8w (h''', w_expand) -> dx` and optionally its weight update
//!    `conv2d_backward_weight_sgd (dequantize(x), h''')` (an `i8` weight, not channel-sliced,
//!    after `dx`, which reads the weight before its update). The expansion weight may be split
//!    (`Kernel::SplitWeight`, see `split_weight`): then `dx` is
//!    `conv2d_backward_input_int8w_split (h''', w_trained, w_frozen) -> dx` reading the trained
//!    slice and its frozen remainder (`Program::frozen_part`), and the update, required, writes
//!    the slice from the saved input's first `kept` channels.
//!
//! It is replaced when every intermediate `f32` buffer (each version of `h`, the dequantized
//! `x`) is read by the chain only, and no other call between the chain's first and last call
//! touches a buffer the fused call reads or writes (so running it at the chain's last call
//! computes the same values). The dequantization of `x` may run well before the chain (with
//! the forward's recomputation): it is replaced too, provided no call from it to the chain's
//! last call writes `x`. The fused call is bit-identical with the chain
//! (`mite_kernels::float::bottleneck_backward`). Chains of any other form stay unfused: a
//! channel-sliced weight update, a split `dx` without its slice's update, trained depthwise or
//! projection weights (their weight gradients read `h`), missing masks, batches above 1. The
//! arena of a rewritten entry is then planned again over the calls' live intervals.

use std::collections::HashSet;

use mite_ir::memory::plan::check_plan;
use mite_ir::program::{
    ArenaLiveness, BufElem, BufferDecl, BufferId, Call, Kernel, Program, Storage,
};
use mite_kernels::Conv2dGeometry;

use super::{place_pinned, LowerError};

/// Streams every recognised bottleneck backward chain of entry `entry`, re-plans the entry's
/// arena if any was, and returns how many were.
pub(super) fn stream_bottleneck_backward(
    program: &mut Program,
    entry: usize,
) -> Result<usize, LowerError> {
    let mut count = 0;
    let mut from = 0;
    while let Some(found) = find_chain(program, entry, from) {
        let Found {
            chain,
            removed,
            mut call,
            dead,
            order: (before, after),
        } = found;
        let plane_name = match &call.loc {
            Some(loc) => format!("{loc}.planes"),
            None => format!("{}.planes", program.buffer(call.inputs[0]).name),
        };
        let scratch_len = match mite_ir::program::bottleneck_backward_parts(&call.kernel) {
            Some([_, d, e]) => mite_kernels::float::bottleneck_backward_scratch_len(&d, &e),
            None => break,
        };
        program.buffers.push(BufferDecl {
            name: plane_name,
            elem: BufElem::F32,
            len: scratch_len,
            shape: vec![scratch_len],
            storage: Storage::Arena { offset: 0 },
        });
        call.scratch = Some(BufferId((program.buffers.len() - 1) as u32));
        let (lo, hi) = (chain[0], *chain.last().expect("a chain has calls"));
        let calls = &mut program.entries[entry].calls;
        let mut old: Vec<Option<Call>> = std::mem::take(calls).into_iter().map(Some).collect();
        let n = old.len();
        let mut take = |k: usize| old[k].take().expect("each call is placed once");
        let kept = |k: &usize| !removed.contains(k);
        let mut placed: Vec<Call> = (0..lo).filter(kept).map(&mut take).collect();
        placed.extend(before.iter().map(|&k| take(k)));
        placed.push(call);
        from = placed.len();
        placed.extend(after.iter().map(|&k| take(k)));
        placed.extend((hi + 1..n).filter(kept).map(&mut take));
        *calls = placed;
        remove_untouched(program, &dead);
        count += 1;
    }
    if count > 0 {
        replan(program, entry)?;
    }
    Ok(count)
}

/// The buffers a call touches.
fn touches(c: &Call) -> impl Iterator<Item = BufferId> + '_ {
    c.inputs.iter().chain(&c.outputs).chain(&c.scratch).copied()
}

/// The index of the first call at or after `from` touching `b`.
fn next_toucher(calls: &[Call], b: BufferId, from: usize) -> Option<usize> {
    (from..calls.len()).find(|&i| touches(&calls[i]).any(|t| t == b))
}

/// The geometry of a `conv2d_backward_input_int8w` call reading `h` as its `dy`.
fn input_grad_of(c: &Call, h: BufferId) -> Option<Conv2dGeometry> {
    match &c.kernel {
        Kernel::ConvBackwardInputInt8 { geometry, .. } if c.inputs.first() == Some(&h) => {
            Some(*geometry)
        }
        _ => None,
    }
}

/// The geometry of a split `conv2d_backward_input_int8w_split` call reading `h` as its `dy`,
/// and the input channels of its trained slice.
fn split_input_grad_of(c: &Call, h: BufferId) -> Option<(Conv2dGeometry, usize)> {
    match &c.kernel {
        Kernel::SplitWeight { kernel, kept } if c.inputs.first() == Some(&h) => {
            match kernel.as_ref() {
                Kernel::ConvBackwardInputInt8 { geometry, .. } => Some((*geometry, *kept)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An `apply_mask` of `h` of `len` elements: `(mask, result)`.
fn mask_of(c: &Call, h: BufferId, len: usize) -> Option<(BufferId, BufferId)> {
    match (&c.kernel, &c.inputs[..], &c.outputs[..]) {
        (Kernel::ApplyMask { len: l }, &[x, m], &[y]) if x == h && *l == len => Some((m, y)),
        _ => None,
    }
}

/// A `conv2d_backward_bias` of `h` over `channels` channels: its result.
fn bias_of(c: &Call, h: BufferId, channels: usize) -> Option<BufferId> {
    match (&c.kernel, &c.inputs[..], &c.outputs[..]) {
        (Kernel::ConvBackwardBias { dims }, &[x], &[y])
            if x == h && dims[0] == 1 && dims[1] == channels =>
        {
            Some(y)
        }
        _ => None,
    }
}

/// The first recognised chain of entry `entry` starting at or after call `from`: its call
/// indices (ascending), the fused call (scratch not yet set) and the buffers only the chain
/// touched.
fn find_chain(program: &Program, entry: usize, from: usize) -> Option<Found> {
    let calls = &program.entries[entry].calls;
    (from..calls.len()).find_map(|a| chain_at(program, entry, a))
}

/// The chain starting at call `a`, if it is one (see the module documentation).
fn chain_at(program: &Program, entry: usize, a: usize) -> Option<Found> {
    let e = &program.entries[entry];
    let calls = &e.calls;
    let first = &calls[a];
    let Kernel::ConvBackwardInputInt8 { geometry: gp, .. } = &first.kernel else {
        return None;
    };
    if !gp.is_pointwise() || gp.n() != 1 {
        return None;
    }
    let (dy, w_project) = (first.inputs[0], first.inputs[1]);
    let mut h = first.outputs[0];
    let mut chain = vec![a];
    let mut intermediates = vec![h];
    let mid = gp.c_in();

    // 2: the depthwise mask.
    let i = next_toucher(calls, h, a + 1)?;
    let (mask_d, h2) = mask_of(&calls[i], h, gp.input_len())?;
    chain.push(i);
    h = h2;
    intermediates.push(h);
    // 3: the depthwise input gradient; the bias gradient reads the masked plane before it
    // (in place) or before or after it (out of place).
    let mut db_d = None;
    let mut found = None;
    let mut next = next_toucher(calls, h, i + 1);
    while let Some(k) = next {
        let c = &calls[k];
        if let (Some(b), None) = (bias_of(c, h, mid), db_d) {
            db_d = Some(b);
            chain.push(k);
            next = next_toucher(calls, h, k + 1);
            continue;
        }
        if found.is_some() {
            return None;
        }
        match &c.kernel {
            Kernel::ConvBackwardInputInt8InPlace {
                geometry,
                scales,
                zero_points,
                inner,
            } if c.outputs.first() == Some(&h) => {
                let k8 = Kernel::ConvBackwardInputInt8 {
                    geometry: *geometry,
                    scales: scales.clone(),
                    zero_points: zero_points.clone(),
                    inner: *inner,
                };
                found = Some((k, k8, c.inputs[0], h));
                // The plane is overwritten: its next toucher is the next stage's.
                break;
            }
            Kernel::ConvBackwardInputInt8 { .. } if input_grad_of(c, h).is_some() => {
                found = Some((k, c.kernel.clone(), c.inputs[1], c.outputs[0]));
                next = next_toucher(calls, h, k + 1);
            }
            _ => return None,
        }
    }
    let (at, depthwise, w_depthwise, h3) = found?;
    if h3 != h {
        h = h3;
        intermediates.push(h);
    }
    let Kernel::ConvBackwardInputInt8 { geometry: gd, .. } = &depthwise else {
        return None;
    };
    chain.push(at);

    // 4: the expansion's mask and bias gradient.
    let i = next_toucher(calls, h, at + 1)?;
    let (mask_e, h4) = mask_of(&calls[i], h, gd.input_len())?;
    chain.push(i);
    h = h4;
    intermediates.push(h);
    let mut rest = next_toucher(calls, h, i + 1);
    let mut db_e = None;
    if let Some(j) = rest {
        db_e = bias_of(&calls[j], h, mid);
        if db_e.is_some() {
            chain.push(j);
            rest = next_toucher(calls, h, j + 1);
        }
    }

    // 5: dx and the weight update, the only other readers of `h`.
    let mut dx = None;
    let mut update = None;
    while let Some(j) = rest {
        let c = &calls[j];
        if let (Some(g), None, None) = (input_grad_of(c, h), &dx, &update) {
            dx = Some((j, g, None));
        } else if let (Some((g, kept)), None, None) = (split_input_grad_of(c, h), &dx, &update) {
            dx = Some((j, g, Some(kept)));
        } else if let (Some(b), None) = (bias_of(c, h, mid), db_e) {
            db_e = Some(b);
            chain.push(j);
        } else if let (
            Kernel::ConvWeightSgd {
                geometry,
                update: u,
            },
            None,
        ) = (&c.kernel, &update)
        {
            let plain_i8 = matches!(
                u.as_ref(),
                Kernel::Sgd {
                    elem: BufElem::I8,
                    accumulate: 1,
                    slice: None,
                    ..
                }
            );
            if !(plain_i8 && c.inputs.get(1) == Some(&h)) {
                return None;
            }
            let xf = c.inputs[0];
            // The dequantization writing `xf`: the last call before `j` touching it.
            let d = (0..j)
                .rev()
                .find(|&k| touches(&calls[k]).any(|t| t == xf))?;
            let dq = &calls[d];
            if !matches!(dq.kernel, Kernel::Dequantize { .. }) || dq.outputs[..] != [xf] {
                return None;
            }
            update = Some((j, d, *geometry));
        } else {
            return None;
        }
        rest = next_toucher(calls, h, j + 1);
    }
    // The expansion's geometry: from dx or the update (they agree: the update of a split
    // weight has the slice's `kept` input channels), else rebuilt.
    let ge = match (dx, update) {
        (Some((_, g, kept)), Some((_, _, u))) => {
            let trained = match kept {
                None => g,
                Some(k) => Conv2dGeometry::new(1, k, g.in_hw(), g.c_out(), 1, g.window()).ok()?,
            };
            if u != trained {
                return None;
            }
            g
        }
        // A split dx without the slice's update is left alone.
        (Some((_, _, Some(_))), None) => return None,
        (Some((_, g, None)), None) | (None, Some((_, _, g))) => g,
        // Without dx or an update the expansion's input channels are not known (nor needed):
        // one, in the rebuilt geometry.
        (None, None) => {
            let window = mite_kernels::Window2d {
                kernel: [1, 1],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
            };
            Conv2dGeometry::new(1, 1, gd.in_hw(), mid, 1, window).ok()?
        }
    };
    if dx.is_none() && update.is_none() && db_d.is_none() && db_e.is_none() {
        return None;
    }

    let mut inputs = vec![dy, w_project, mask_d, w_depthwise, mask_e];
    let mut outputs = Vec::new();
    let mut dx_kernel = None;
    let mut update_kernels = None;
    let mut dequantize = None;
    if let Some((j, d, _)) = update {
        let (c, dq) = (&calls[j], &calls[d]);
        chain.push(j);
        dequantize = Some(d);
        intermediates.push(dq.outputs[0]);
        // `x`, lr, step.
        inputs.extend([dq.inputs[0], c.inputs[2], c.inputs[3]]);
        outputs.extend(c.outputs.iter().copied());
        update_kernels = Some((Box::new(dq.kernel.clone()), Box::new(c.kernel.clone())));
        if let Some((k, _, kept)) = dx {
            // dx reads the weight before its update, and the weight the update writes.
            if k > j || calls[k].inputs[1] != c.outputs[0] {
                return None;
            }
            // A split dx reads the slice's own frozen remainder, after `step`.
            if kept.is_some() {
                let frozen = *calls[k].inputs.get(2)?;
                if program.frozen_part(c.outputs[0]) != Some(frozen) {
                    return None;
                }
                inputs.push(frozen);
            }
        }
    }
    let mut kept = None;
    if let Some((k, _, split)) = dx {
        let c = &calls[k];
        chain.push(k);
        if update.is_none() {
            inputs.push(c.inputs[1]);
        }
        outputs.push(c.outputs[0]);
        let inner = match &c.kernel {
            Kernel::SplitWeight { kernel, .. } => kernel.as_ref(),
            k => k,
        };
        dx_kernel = Some(Box::new(inner.clone()));
        kept = split;
    }
    outputs.extend(db_d);
    outputs.extend(db_e);
    chain.sort_unstable();
    chain.dedup();
    // The dequantization of `x` may run well before the chain (with the forward's
    // recomputation): it is removed too, and the fused call reads `x`, which no call from the
    // dequantization to the chain's end may write.
    let mut removed = chain.clone();
    if let Some(d) = dequantize {
        let x = calls[d].inputs[0];
        let hi = *chain.last()?;
        if (d + 1..=hi).any(|k| !chain.contains(&k) && writes(&calls[k]).any(|b| b == x)) {
            return None;
        }
        removed.push(d);
        removed.sort_unstable();
        removed.dedup();
    }

    // The intermediates: in the arena, touched by the replaced calls only, not results.
    let in_chain: HashSet<usize> = removed.iter().copied().collect();
    for &b in &intermediates {
        let decl = program.buffer(b);
        if !matches!(decl.storage, Storage::Arena { .. })
            || e.results.contains(&b)
            || e.args.contains(&b)
            || calls
                .iter()
                .enumerate()
                .any(|(k, c)| !in_chain.contains(&k) && touches(c).any(|t| t == b))
        {
            return None;
        }
    }
    let order = interleave(calls, &chain, &removed, &inputs, &outputs)?;
    // Scratch buffers of the replaced calls die with them.
    let mut dead = intermediates;
    dead.extend(removed.iter().filter_map(|&k| calls[k].scratch));
    dead.retain(|b| !inputs.contains(b) && !outputs.contains(b));
    let call = Call {
        kernel: Kernel::BottleneckBackward {
            project: Box::new(first.kernel.clone()),
            depthwise: Box::new(depthwise),
            expand: ge,
            dx: dx_kernel,
            depthwise_bias: db_d.is_some(),
            expand_bias: db_e.is_some(),
            update: update_kernels,
            kept,
        },
        inputs,
        outputs,
        scratch: None,
        loc: calls[at].loc.as_ref().map(|l| {
            l.strip_suffix(".depthwise.grad")
                .map_or_else(|| l.clone(), |s| format!("{s}.backward"))
        }),
    };
    mite_ir::program::bottleneck_backward_parts(&call.kernel)?;
    Some(Found {
        chain,
        removed,
        call,
        dead,
        order,
    })
}

/// A recognised chain.
struct Found {
    /// Its call indices, ascending (the dequantization of `x` aside).
    chain: Vec<usize>,
    /// The indices of the calls the fused call replaces, ascending: the chain's and the
    /// dequantization of `x`, which may run before the chain's first call.
    removed: Vec<usize>,
    /// The fused call (scratch not yet set).
    call: Call,
    /// Buffers only the chain touched.
    dead: Vec<BufferId>,
    /// The other calls between the chain's first and last call: those to run before the fused
    /// call, then those to run after it.
    order: (Vec<usize>, Vec<usize>),
}

/// The buffers a call writes.
fn writes(c: &Call) -> impl Iterator<Item = BufferId> + '_ {
    c.outputs.iter().chain(&c.scratch).copied()
}

/// Splits the calls between the chain's ends that are not replaced (`removed`) into those that
/// run before the fused call (they read none of its results) and those that run after it (they
/// read its results, or the results of another call moved after it); `None` when some call
/// writes what the fused call reads or writes, or when moving a call after it would reorder two
/// dependent calls.
fn interleave(
    calls: &[Call],
    chain: &[usize],
    removed: &[usize],
    inputs: &[BufferId],
    outputs: &[BufferId],
) -> Option<(Vec<usize>, Vec<usize>)> {
    let (lo, hi) = (chain[0], *chain.last()?);
    let others: Vec<usize> = (lo..=hi).filter(|k| !removed.contains(k)).collect();
    let mut moved: HashSet<BufferId> = outputs.iter().copied().collect();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for &k in &others {
        let c = &calls[k];
        if writes(c).any(|b| inputs.contains(&b) || outputs.contains(&b)) {
            return None;
        }
        if c.inputs.iter().any(|b| moved.contains(b)) {
            moved.extend(writes(c));
            after.push(k);
        } else {
            before.push(k);
        }
    }
    // A call moved after the fused call passes the later calls that stay before it: they must
    // be independent.
    let independent = |a: &Call, b: &Call| {
        !writes(a).any(|x| touches(b).any(|y| y == x)) && !writes(b).any(|x| a.inputs.contains(&x))
    };
    for &a in &after {
        for &b in before.iter().filter(|&&b| b > a) {
            if !independent(&calls[a], &calls[b]) {
                return None;
            }
        }
    }
    Some((before, after))
}

/// Removes the buffers of `dead` no call or entry of `program` touches any more, renumbering
/// the others.
fn remove_untouched(program: &mut Program, dead: &[BufferId]) {
    let used: HashSet<BufferId> = program
        .entries
        .iter()
        .flat_map(|e| {
            e.args
                .iter()
                .chain(&e.results)
                .copied()
                .chain(e.calls.iter().flat_map(|c| touches(c).collect::<Vec<_>>()))
        })
        .collect();
    let gone: HashSet<BufferId> = dead.iter().copied().filter(|b| !used.contains(b)).collect();
    if gone.is_empty() {
        return;
    }
    let mut new_id = Vec::with_capacity(program.buffers.len());
    let mut next = 0u32;
    for i in 0..program.buffers.len() {
        new_id.push(BufferId(next));
        if !gone.contains(&BufferId(i as u32)) {
            next += 1;
        }
    }
    let map = |b: &mut BufferId| *b = new_id[b.index()];
    for e in &mut program.entries {
        e.args.iter_mut().for_each(map);
        e.results.iter_mut().for_each(map);
        for c in &mut e.calls {
            c.inputs.iter_mut().for_each(map);
            c.outputs.iter_mut().for_each(map);
            c.scratch.iter_mut().for_each(map);
        }
    }
    let mut i = 0;
    program.buffers.retain(|_| {
        i += 1;
        !gone.contains(&BufferId(i as u32 - 1))
    });
}

/// Places the arena buffers of entry `entry` again over the calls' live intervals; the arena
/// is the larger of that plan and the extent of the other entries' buffers.
fn replan(program: &mut Program, entry: usize) -> Result<(), LowerError> {
    let live = ArenaLiveness::of(program, entry);
    let requests: Vec<_> = live
        .intervals
        .iter()
        .map(|&(b, first, last)| {
            let d = program.buffer(b);
            mite_ir::memory::plan::Request {
                size: d.bytes(),
                align: d.elem.align(),
                first,
                last,
            }
        })
        .collect();
    // A consumed input and the result left in its bytes stay together at offset 0 (the
    // lowering lets only the entry's input be consumed: one such pair per entry).
    let handed: HashSet<BufferId> = program.entries[entry]
        .calls
        .iter()
        .filter(|c| c.kernel.consumes_input())
        .flat_map(|c| c.inputs.first().into_iter().chain(c.outputs.first()))
        .copied()
        .collect();
    let pins: Vec<usize> = (0..live.intervals.len())
        .filter(|&k| handed.contains(&live.intervals[k].0))
        .collect();
    let plan = place_pinned(&requests, &pins);
    check_plan(&requests, &plan).map_err(|error| LowerError::Plan {
        func: program.entries[entry].name.clone(),
        error,
    })?;
    let mine: HashSet<BufferId> = live.intervals.iter().map(|&(b, _, _)| b).collect();
    for (&(b, _, _), &offset) in live.intervals.iter().zip(&plan.offsets) {
        let storage = &mut program.buffers[b.index()].storage;
        *storage = match storage {
            Storage::Input { entry, .. } => Storage::Input {
                entry: *entry,
                offset,
            },
            _ => Storage::Arena { offset },
        };
    }
    let others = (0..program.entries.len())
        .filter(|&k| k != entry)
        .flat_map(|k| ArenaLiveness::of(program, k).intervals)
        .filter(|(b, _, _)| !mine.contains(b))
        .map(|(b, _, _)| {
            let d = program.buffer(b);
            d.storage.arena_offset().unwrap_or(0) + d.bytes()
        })
        .max()
        .unwrap_or(0);
    program.arena_bytes = plan.arena_size.max(others);
    Ok(())
}
