//! The Program verifier.
//!
//! Invariants (each violation is one [`ProgramError`]; all are collected):
//! 1. every buffer id a call or entry names exists;
//! 2. every call's buffers have the element types and lengths of its kernel's
//!    [`Signature`](super::kernel::Signature), and a buffer's `shape` multiplies to its `len`;
//! 3. arena buffers are aligned and fit the arena; an arena buffer named by an entry is written
//!    (as a result or scratch) before it is read, within that entry;
//! 4. no two arena buffers live at a common call of an entry share a byte (a buffer is live from
//!    the call that first writes it to the last call that reads it, or to the end of the entry
//!    if it is a result);
//! 5. nothing is written to flash or to an argument; parameters and state are written only by
//!    in-place update kernels; an argument belongs to the entry that lists it;
//! 6. an entry's input in the arena ([`Storage::Input`]) is written only by the entry's copy-in
//!    before its first call (no call writes it), is read only by its own entry, and lives from
//!    the entry's start to its last reader: a buffer placed on its bytes and written before that
//!    reader is an overlap (invariant 4), and a call of another entry reading it reads before
//!    any write (invariant 3).

use thiserror::Error;

use super::{BufElem, BufferId, Program, Storage};

/// One violated invariant of a [`Program`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProgramError {
    /// A call or entry names a buffer that does not exist.
    #[error("entry @{entry}, call {call}: buffer {buffer} does not exist ({count} buffers)")]
    NoSuchBuffer {
        /// The entry.
        entry: String,
        /// The call's position (`usize::MAX`: the entry's arguments or results).
        call: usize,
        /// The buffer.
        buffer: BufferId,
        /// How many buffers the program has.
        count: usize,
    },
    /// A call's buffers do not match its kernel's signature.
    #[error("entry @{entry}, call {call} ({kernel}): {what}")]
    Signature {
        /// The entry.
        entry: String,
        /// The call's position.
        call: usize,
        /// The kernel.
        kernel: &'static str,
        /// What does not match.
        what: String,
    },
    /// A buffer's declaration is inconsistent.
    #[error("buffer {buffer} ({name}): {what}")]
    Buffer {
        /// The buffer.
        buffer: BufferId,
        /// Its name.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// An arena buffer is read before any call of the entry writes it.
    #[error(
        "entry @{entry}, call {call}: arena buffer {buffer} ({name}) is read before it is written"
    )]
    ReadBeforeWrite {
        /// The entry.
        entry: String,
        /// The reading call (`usize::MAX`: the entry's results).
        call: usize,
        /// The buffer.
        buffer: BufferId,
        /// Its name.
        name: String,
    },
    /// Two simultaneously live arena buffers overlap.
    #[error("entry @{entry}: arena buffers {a} ({a_name}, bytes {a_start}..{a_end}) and {b} ({b_name}, bytes {b_start}..{b_end}) overlap while both are live (calls {from}..={to})")]
    Overlap {
        /// The entry.
        entry: String,
        /// The first buffer.
        a: BufferId,
        /// Its name.
        a_name: String,
        /// Its first byte.
        a_start: u64,
        /// One past its last byte.
        a_end: u64,
        /// The second buffer.
        b: BufferId,
        /// Its name.
        b_name: String,
        /// Its first byte.
        b_start: u64,
        /// One past its last byte.
        b_end: u64,
        /// First call at which both are live.
        from: usize,
        /// Last call at which both are live.
        to: usize,
    },
    /// A buffer is written where it may not be.
    #[error("entry @{entry}, call {call} ({kernel}): writes {storage} buffer {buffer} ({name})")]
    BadWrite {
        /// The entry.
        entry: String,
        /// The call's position.
        call: usize,
        /// The kernel.
        kernel: &'static str,
        /// The storage kind written.
        storage: &'static str,
        /// The buffer.
        buffer: BufferId,
        /// Its name.
        name: String,
    },
}

/// All violations found by [`verify_program`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{} program error(s); first: {}", .0.len(), .0[0])]
pub struct ProgramErrors(pub Vec<ProgramError>);

/// Checks every invariant of the module documentation.
pub fn verify_program(p: &Program) -> Result<(), ProgramErrors> {
    let mut errors = Vec::new();
    check_buffers(p, &mut errors);
    check_splits(p, &mut errors);
    for (e, _) in p.entries.iter().enumerate() {
        check_entry(p, e, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ProgramErrors(errors))
    }
}

fn check_buffers(p: &Program, errors: &mut Vec<ProgramError>) {
    for (i, b) in p.buffers.iter().enumerate() {
        let err = |what: String| ProgramError::Buffer {
            buffer: BufferId(i as u32),
            name: b.name.clone(),
            what,
        };
        let product = b.shape.iter().try_fold(1_usize, |a, &d| a.checked_mul(d));
        if product != Some(b.len) {
            errors.push(err(format!(
                "shape {:?} does not have {} elements",
                b.shape, b.len
            )));
        }
        if let Some(offset) = b.storage.arena_offset() {
            if offset % b.elem.align() != 0 {
                errors.push(err(format!(
                    "offset {offset} is not aligned to {} bytes",
                    b.elem.align()
                )));
            }
            if offset
                .checked_add(b.bytes())
                .is_none_or(|end| end > p.arena_bytes)
            {
                errors.push(err(format!(
                    "bytes {offset}..{} do not fit the arena of {} bytes",
                    offset.saturating_add(b.bytes()),
                    p.arena_bytes
                )));
            }
        }
        match &b.storage {
            Storage::Arena { .. } | Storage::State { .. } => {}
            Storage::Flash { data, .. } | Storage::Param { init: data, .. } => {
                if data.len() != b.len {
                    errors.push(err(format!(
                        "has {} elements of data for {} elements",
                        data.len(),
                        b.len
                    )));
                }
            }
            Storage::Arg { entry, .. } | Storage::Input { entry, .. } => {
                let listed = p
                    .entries
                    .get(*entry)
                    .is_some_and(|e| e.args.contains(&BufferId(i as u32)));
                if !listed {
                    errors.push(err(format!(
                        "is an argument of entry {entry}, which does not list it"
                    )));
                }
            }
        }
        if b.elem == BufElem::Bits && !matches!(b.storage, Storage::Arena { .. }) {
            errors.push(err("bit buffers (masks) live in the arena".into()));
        }
    }
}

/// The live interval `[first write, last read]` of each arena buffer of entry `e`.
fn check_entry(p: &Program, e: usize, errors: &mut Vec<ProgramError>) {
    let entry = &p.entries[e];
    let n = p.buffers.len();
    let exists = |b: BufferId| b.index() < n;
    let end = entry.calls.len();
    for &b in entry.args.iter().chain(&entry.results) {
        if !exists(b) {
            errors.push(ProgramError::NoSuchBuffer {
                entry: entry.name.clone(),
                call: usize::MAX,
                buffer: b,
                count: n,
            });
        }
    }
    // first: the call that first writes the buffer; last: the last call that reads it.
    let mut first: Vec<Option<usize>> = vec![None; n];
    let mut last: Vec<Option<usize>> = vec![None; n];
    // The entry's input in the arena is written by the copy-in, before call 0.
    for &a in &entry.args {
        if exists(a)
            && matches!(p.buffer(a).storage, Storage::Input { entry: owner, .. } if owner == e)
        {
            first[a.index()] = Some(0);
            last[a.index()] = Some(0);
        }
    }
    for (c, call) in entry.calls.iter().enumerate() {
        let all = call
            .inputs
            .iter()
            .chain(&call.outputs)
            .chain(call.scratch.iter());
        let mut ok = true;
        for &b in all {
            if !exists(b) {
                ok = false;
                errors.push(ProgramError::NoSuchBuffer {
                    entry: entry.name.clone(),
                    call: c,
                    buffer: b,
                    count: n,
                });
            }
        }
        if !ok {
            continue;
        }
        check_signature(p, e, c, errors);
        check_split_call(p, e, c, errors);
        let in_place = call.kernel.reads_outputs();
        let reads = call
            .inputs
            .iter()
            .chain(call.outputs.iter().filter(|_| in_place));
        for &b in reads {
            if p.buffer(b).storage.arena_offset().is_some() {
                if first[b.index()].is_none() {
                    errors.push(ProgramError::ReadBeforeWrite {
                        entry: entry.name.clone(),
                        call: c,
                        buffer: b,
                        name: p.buffer(b).name.clone(),
                    });
                    first[b.index()] = Some(c);
                }
                last[b.index()] = Some(c);
            }
        }
        for &b in call.outputs.iter().chain(call.scratch.iter()) {
            let decl = p.buffer(b);
            let bad = match decl.storage {
                Storage::Arena { .. } => None,
                Storage::Param { .. } | Storage::State { .. }
                    if in_place || call.kernel.is_update() =>
                {
                    None
                }
                _ => Some(decl.storage.kind()),
            };
            if let Some(storage) = bad {
                errors.push(ProgramError::BadWrite {
                    entry: entry.name.clone(),
                    call: c,
                    kernel: call.kernel.name(),
                    storage,
                    buffer: b,
                    name: decl.name.clone(),
                });
            }
            if let Storage::Arena { .. } = decl.storage {
                // A consuming kernel's result lives in its operand's bytes during the call.
                first[b.index()].get_or_insert(if call.hands_over(b) { c + 1 } else { c });
                last[b.index()] = Some(last[b.index()].map_or(c, |l| l.max(c)));
            }
        }
        if call.kernel.consumes_input() {
            check_consumed(p, e, c, errors);
        }
    }
    for &b in &entry.results {
        if b.index() < n && p.buffer(b).storage.arena_offset().is_some() {
            if first[b.index()].is_none() {
                errors.push(ProgramError::ReadBeforeWrite {
                    entry: entry.name.clone(),
                    call: usize::MAX,
                    buffer: b,
                    name: p.buffer(b).name.clone(),
                });
            }
            last[b.index()] = Some(end);
        }
    }
    check_overlaps(p, e, &first, &last, errors);
}

/// The [`ProgramError::Signature`] of call `c` of entry `e`: what is wrong with its operands.
fn call_error(p: &Program, e: usize, c: usize, what: String) -> ProgramError {
    let entry = &p.entries[e];
    ProgramError::Signature {
        entry: entry.name.clone(),
        call: c,
        kernel: entry.calls[c].kernel.name(),
        what,
    }
}

/// A consuming call ([`Kernel::consumes_input`](super::Kernel::consumes_input)): operand 0 is
/// an arena buffer no later call reads and no entry result is, and result 0 sits at its offset
/// inside its bytes.
fn check_consumed(p: &Program, e: usize, c: usize, errors: &mut Vec<ProgramError>) {
    let entry = &p.entries[e];
    let call = &entry.calls[c];
    let (Some(&x), Some(&y)) = (call.inputs.first(), call.outputs.first()) else {
        return; // reported by the signature check
    };
    let mut report = |what: String| errors.push(call_error(p, e, c, what));
    let (bx, by) = (p.buffer(x), p.buffer(y));
    match (bx.storage.arena_offset(), by.storage.arena_offset()) {
        (Some(ox), Some(oy)) if ox == oy && by.bytes() <= bx.bytes() => {}
        _ => report(format!(
            "result 0 {y} ({}) must sit at the offset of the operand it consumes, {x} ({}), \
             inside its bytes (both in the arena)",
            by.name, bx.name
        )),
    }
    let later = entry.calls[c + 1..]
        .iter()
        .position(|k| k.inputs.contains(&x) || k.outputs.contains(&x) || k.scratch == Some(x));
    if let Some(k) = later {
        report(format!(
            "operand 0 {x} ({}) is consumed here but call {} uses it",
            bx.name,
            c + 1 + k
        ));
    }
    if entry.results.contains(&x) {
        report(format!(
            "operand 0 {x} ({}) is consumed here but is a result of the entry",
            bx.name
        ));
    }
}

/// Each split parameter's two parts: the same element type and dims but along axis 1.
fn check_splits(p: &Program, errors: &mut Vec<ProgramError>) {
    for s in p.weight_splits() {
        let (t, f) = (p.buffer(s.trained), p.buffer(s.frozen));
        let fits = t.elem == f.elem
            && t.shape.len() == f.shape.len()
            && t.shape.len() >= 2
            && t.shape[0] == f.shape[0]
            && t.shape[2..] == f.shape[2..];
        if !fits {
            errors.push(ProgramError::Buffer {
                buffer: s.trained,
                name: t.name.clone(),
                what: format!(
                    "a trained slice {} {:?} does not fit its frozen remainder {} {} {:?} \
                     (the same dims but axis 1)",
                    t.elem.name(),
                    t.shape,
                    s.frozen,
                    f.elem.name(),
                    f.shape
                ),
            });
        }
    }
}

/// A [`Kernel::SplitWeight`](super::Kernel::SplitWeight) call reads a trained slice (operand
/// 1, `kept` channels along axis 1) and its own frozen remainder (operand 2); a split
/// [`Kernel::BottleneckBackward`](super::Kernel::BottleneckBackward) updates the slice (result
/// 0) and reads its frozen remainder (operand 8).
fn check_split_call(p: &Program, e: usize, c: usize, errors: &mut Vec<ProgramError>) {
    let call = &p.entries[e].calls[c];
    let (kept, t, f) = match &call.kernel {
        super::Kernel::SplitWeight { kept, .. } => (kept, call.inputs.get(1), call.inputs.get(2)),
        super::Kernel::BottleneckBackward {
            kept: Some(kept), ..
        } => (kept, call.outputs.first(), call.inputs.get(8)),
        _ => return,
    };
    let (Some(&t), Some(&f)) = (t, f) else {
        return; // reported by the signature check
    };
    let ok = p.frozen_part(t) == Some(f) && p.buffer(t).shape.get(1) == Some(kept);
    if !ok {
        let which = if matches!(call.kernel, super::Kernel::SplitWeight { .. }) {
            "operands 1 and 2"
        } else {
            "result 0 and operand 8"
        };
        errors.push(call_error(
            p,
            e,
            c,
            format!(
                "{which} ({t}, {f}) are not a trained slice of {kept} channels and its frozen \
                 remainder"
            ),
        ));
    }
}

fn check_signature(p: &Program, e: usize, c: usize, errors: &mut Vec<ProgramError>) {
    let entry = &p.entries[e];
    let call = &entry.calls[c];
    let sig = call.kernel.signature();
    let mut report = |what: String| errors.push(call_error(p, e, c, what));
    let groups = [
        ("operand", &call.inputs[..], &sig.inputs[..]),
        ("result", &call.outputs[..], &sig.outputs[..]),
    ];
    for (what, ids, expected) in groups {
        if ids.len() != expected.len() {
            report(format!(
                "{} {what}s given, the kernel takes {}",
                ids.len(),
                expected.len()
            ));
            continue;
        }
        for (k, (&id, &(elem, len))) in ids.iter().zip(expected).enumerate() {
            let b = p.buffer(id);
            if b.elem != elem || b.len != len {
                report(format!(
                    "{what} {k} is {id} ({}: {} x {}), expected {} x {len}",
                    b.name,
                    b.elem.name(),
                    b.len,
                    elem.name()
                ));
            }
        }
    }
    match (call.scratch, sig.scratch) {
        (None, None) => {}
        (Some(id), Some((elem, len))) => {
            let b = p.buffer(id);
            if b.elem != elem || b.len < len {
                report(format!(
                    "scratch {id} is {} x {}, expected at least {} x {len}",
                    b.elem.name(),
                    b.len,
                    elem.name()
                ));
            }
        }
        (None, Some((elem, len))) => report(format!("needs scratch of {} x {len}", elem.name())),
        (Some(id), None) => report(format!("scratch {id} given to a kernel that takes none")),
    }
}

fn check_overlaps(
    p: &Program,
    e: usize,
    first: &[Option<usize>],
    last: &[Option<usize>],
    errors: &mut Vec<ProgramError>,
) {
    let mut live: Vec<(usize, usize, usize, u64, u64)> = Vec::new();
    for (i, b) in p.buffers.iter().enumerate() {
        if let (Some(offset), Some(f), Some(l)) = (b.storage.arena_offset(), first[i], last[i]) {
            if b.bytes() > 0 {
                live.push((i, f, l, offset, offset.saturating_add(b.bytes())));
            }
        }
    }
    // Sorted by offset: a buffer can only overlap those starting before its end.
    live.sort_by_key(|x| (x.3, x.0));
    for (k, a) in live.iter().enumerate() {
        for b in &live[k + 1..] {
            if b.3 >= a.4 {
                break;
            }
            let (from, to) = (a.1.max(b.1), a.2.min(b.2));
            if from <= to {
                errors.push(ProgramError::Overlap {
                    entry: p.entries[e].name.clone(),
                    a: BufferId(a.0 as u32),
                    a_name: p.buffers[a.0].name.clone(),
                    a_start: a.3,
                    a_end: a.4,
                    b: BufferId(b.0 as u32),
                    b_name: p.buffers[b.0].name.clone(),
                    b_start: b.3,
                    b_end: b.4,
                    from,
                    to,
                });
            }
        }
    }
}
