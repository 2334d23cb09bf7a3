//! Schedules and buffer liveness: the one place that decides how long a value needs memory.
//!
//! A [`Schedule`] is an order of a function's ops (a permutation of its layout in which every
//! operand is defined before it is used); [`Schedule::program_order`] is the layout itself.
//! [`Liveness`] computes, over a schedule, the **buffers** a function needs and when each is
//! live. Steps are schedule positions: op `i` of the schedule runs at step `i`.
//!
//! **Which values get a buffer.** Function arguments and op results, except:
//! - results of `param` and `const` (module globals: flash constants or parameter copies that are
//!   accounted apart from the arena), and views of them;
//! - results of *views* (`nn.reshape`, `nn.flatten`): they alias their operand's buffer and cost
//!   no bytes;
//! - results of *in-place* ops that reuse an operand's buffer: an elementwise op (`nn.relu`,
//!   `nn.clip`, `q.requantize`, `nn.add`, `nn.mul`, `q.add`, `grad.apply_mask`) whose result has
//!   the same shape, element type and size as an operand whose buffer dies at this op (no later
//!   use of any value in that buffer), and that buffer holds no argument and no function output.
//!
//! **Lifetimes.** A buffer is live from the step of its first value's definition (arguments:
//! step 0) to the last step at which any value in it is used; values that are function outputs
//! stay live to the last step; a result nobody uses is live only at its own step. Both ends are
//! inclusive: an op's operands and results are live together while it runs.
//!
//! **Lower bound.** The largest sum of the sizes of the buffers live at one step: no placement of
//! these buffers in one arena can be smaller. [`Liveness::peak_buffers`] names the buffers that
//! make it.
//!
//! ```
//! use mite_ir::analysis::{Liveness, Schedule};
//! use mite_ir::{Builder, Module, Op, TensorType};
//! let mut m = Module::new("m");
//! let mut b = Builder::new(&mut m, "f");
//! let x = b.arg("x", TensorType::f32(&[1, 4]));
//! let y = b.op(Op::Reshape { shape: vec![4] }, &[x]).unwrap(); // a view of x
//! let z = b.op(Op::Mul {}, &[y, y]).unwrap(); // a new buffer: x is an argument
//! let r = b.op(Op::Relu {}, &[z]).unwrap(); // in place: z dies here
//! b.ret(&[r]);
//! let f = &m.functions[0];
//! let live = Liveness::compute(f, &Schedule::program_order(f));
//! assert_eq!(live.buffers().len(), 2);
//! assert_eq!(live.buffer_of(y), live.buffer_of(x));
//! assert_eq!(live.buffer_of(r), live.buffer_of(z));
//! assert_eq!(live.lower_bound(), 32);
//! ```

use crate::module::{Function, OpId, Value};
use crate::ops::Op;
use crate::types::TensorType;
use std::collections::{HashMap, HashSet};
use thiserror::Error;

/// An order in which a function's ops run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    order: Vec<OpId>,
}

/// Why an order of ops is not a schedule of a function.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ScheduleError {
    /// The order has a different number of ops than the function.
    #[error("the schedule has {found} ops, the function {expected}")]
    WrongLength {
        /// Ops in the function.
        expected: usize,
        /// Ops in the order.
        found: usize,
    },
    /// An op is not in the function's layout or appears twice.
    #[error("schedule position {position}: op is not in the function or appears twice")]
    NotAPermutation {
        /// The position in the order.
        position: usize,
    },
    /// An op uses a value whose defining op comes later.
    #[error("schedule position {position} (`{op}`): operand {operand} is defined later")]
    UseBeforeDefinition {
        /// The position in the order.
        position: usize,
        /// The op's name.
        op: String,
        /// The operand index.
        operand: usize,
    },
}

impl Schedule {
    /// The function's program order (its layout).
    pub fn program_order(func: &Function) -> Schedule {
        Schedule {
            order: func.layout().to_vec(),
        }
    }

    /// Checks that `order` is a permutation of `func`'s ops in which every operand is defined
    /// before its use.
    pub fn new(func: &Function, order: Vec<OpId>) -> Result<Schedule, ScheduleError> {
        if order.len() != func.num_ops() {
            return Err(ScheduleError::WrongLength {
                expected: func.num_ops(),
                found: order.len(),
            });
        }
        let in_layout: HashSet<OpId> = func.layout().iter().copied().collect();
        let mut done: HashSet<OpId> = HashSet::new();
        for (position, &id) in order.iter().enumerate() {
            if !in_layout.contains(&id) || done.contains(&id) {
                return Err(ScheduleError::NotAPermutation { position });
            }
            let data = func.op(id);
            for (operand, &v) in data.operands.iter().enumerate() {
                if let Some(def) = func.defining_op(v) {
                    if !done.contains(&def) {
                        return Err(ScheduleError::UseBeforeDefinition {
                            position,
                            op: data.op.name().to_string(),
                            operand,
                        });
                    }
                }
            }
            done.insert(id);
        }
        Ok(Schedule { order })
    }

    /// The ops in the order they run.
    pub fn ops(&self) -> &[OpId] {
        &self.order
    }

    /// The number of steps (ops).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the schedule has no ops.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// One buffer of a function: where one or more values (a value, its views and in-place results)
/// live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferLifetime {
    /// The first value stored in the buffer (an argument or the result that allocates it).
    pub value: Value,
    /// Size in bytes (sub-byte elements are packed: a 1-bit mask of `n` elements takes `⌈n/8⌉`).
    pub size: u64,
    /// Required alignment in bytes (the element size, at least 1).
    pub align: u64,
    /// First step at which the buffer is live (inclusive).
    pub first: usize,
    /// Last step at which the buffer is live (inclusive).
    pub last: usize,
}

impl BufferLifetime {
    /// Whether the two buffers are live at a common step.
    pub fn overlaps_in_time(&self, other: &BufferLifetime) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// The lifetimes of values and buffers of a function over a schedule (see the module
/// documentation).
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    buffers: Vec<BufferLifetime>,
    buffer_of: HashMap<Value, usize>,
    /// Per step, the values whose last use is at that step (function outputs never die).
    dies_after: Vec<Vec<Value>>,
    /// Bytes of the buffers live at each step.
    live_bytes: Vec<u64>,
}

/// The alignment of a tensor's elements in bytes.
pub fn element_align(ty: &TensorType) -> u64 {
    (ty.elem.bits() / 8).max(1) as u64
}

/// Whether `op`'s result is its operand's bytes under another shape.
pub fn is_view(op: &Op) -> bool {
    matches!(op, Op::Reshape { .. } | Op::Flatten { .. })
}

/// The operands whose buffer an elementwise `op` may overwrite with its result.
pub fn in_place_operands(op: &Op) -> &'static [usize] {
    match op {
        Op::Relu {} | Op::Clip { .. } | Op::Requantize {} | Op::ApplyMask {} => &[0],
        Op::Add {} | Op::Mul {} | Op::QAdd { .. } => &[0, 1],
        _ => &[],
    }
}

impl Liveness {
    /// Computes the buffers of `func` and their lifetimes over `schedule`.
    pub fn compute(func: &Function, schedule: &Schedule) -> Liveness {
        let steps = schedule.len().max(1);
        let end = steps - 1;
        let outputs: HashSet<Value> = func.outputs().iter().copied().collect();

        // The last use of every value (outputs: the last step; unused results: their own step).
        let mut last_use: HashMap<Value, usize> = HashMap::new();
        for (i, &id) in schedule.ops().iter().enumerate() {
            for &r in &func.op(id).results {
                last_use.insert(r, i);
            }
            for &v in &func.op(id).operands {
                last_use.insert(v, i);
            }
        }
        for &a in func.args() {
            last_use.entry(a).or_insert(0);
        }
        for &v in &outputs {
            last_use.insert(v, end);
        }

        let mut live = Liveness {
            dies_after: vec![Vec::new(); steps],
            ..Liveness::default()
        };
        for (&v, &i) in &last_use {
            if !outputs.contains(&v) {
                live.dies_after[i].push(v);
            }
        }
        for d in &mut live.dies_after {
            d.sort_unstable();
        }

        // Buffers holding an argument or an output may not be overwritten in place.
        let mut pinned: HashSet<usize> = HashSet::new();
        for &a in func.args() {
            let b = live.new_buffer(func, a, 0, last_use[&a]);
            pinned.insert(b);
        }
        for (i, &id) in schedule.ops().iter().enumerate() {
            let data = func.op(id);
            if matches!(data.op, Op::Param { .. } | Op::Const { .. }) {
                continue;
            }
            for &r in &data.results {
                let reuse = if is_view(&data.op) {
                    // A view of a global is no arena buffer either.
                    Some(data.operands.first().and_then(|&x| live.buffer_of(x)))
                } else {
                    in_place_operands(&data.op)
                        .iter()
                        .filter_map(|&k| data.operands.get(k))
                        .filter_map(|&x| live.buffer_of(x).map(|b| (x, b)))
                        .find(|&(x, b)| {
                            let (tx, tr) = (func.ty(x), func.ty(r));
                            live.buffers[b].last == i
                                && !pinned.contains(&b)
                                && tx.shape == tr.shape
                                && tx.elem == tr.elem
                        })
                        .map(|(_, b)| Some(b))
                };
                let b = match reuse {
                    Some(Some(b)) => {
                        live.buffer_of.insert(r, b);
                        let buf = &mut live.buffers[b];
                        buf.last = buf.last.max(last_use[&r]);
                        b
                    }
                    Some(None) => continue,
                    None => live.new_buffer(func, r, i, last_use[&r]),
                };
                if outputs.contains(&r) {
                    pinned.insert(b);
                }
            }
        }

        let mut delta = vec![0i128; steps + 1];
        for b in &live.buffers {
            delta[b.first] += i128::from(b.size);
            delta[b.last + 1] -= i128::from(b.size);
        }
        let mut acc = 0i128;
        live.live_bytes = delta[..steps]
            .iter()
            .map(|d| {
                acc += d;
                u64::try_from(acc).unwrap_or(0)
            })
            .collect();
        live
    }

    fn new_buffer(&mut self, func: &Function, v: Value, first: usize, last: usize) -> usize {
        let ty = func.ty(v);
        self.buffers.push(BufferLifetime {
            value: v,
            size: ty.size_bytes() as u64,
            align: element_align(ty),
            first,
            last: last.max(first),
        });
        let b = self.buffers.len() - 1;
        self.buffer_of.insert(v, b);
        b
    }

    /// The buffers, in the order they are first defined.
    pub fn buffers(&self) -> &[BufferLifetime] {
        &self.buffers
    }

    /// The index (into [`Liveness::buffers`]) of the buffer holding `v`; `None` for globals and
    /// their views, and for values not in the function.
    pub fn buffer_of(&self, v: Value) -> Option<usize> {
        self.buffer_of.get(&v).copied()
    }

    /// The values whose last use is step `step`, sorted (function outputs are never listed; a
    /// result nobody uses is listed at its own step).
    pub fn dies_after(&self, step: usize) -> &[Value] {
        self.dies_after.get(step).map_or(&[], Vec::as_slice)
    }

    /// Bytes of the buffers live at `step` (0 outside the schedule).
    pub fn live_bytes_at(&self, step: usize) -> u64 {
        self.live_bytes.get(step).copied().unwrap_or(0)
    }

    /// The lower bound of any arena: the most bytes live at one step.
    pub fn lower_bound(&self) -> u64 {
        self.live_bytes.iter().copied().max().unwrap_or(0)
    }

    /// The first step at which [`Liveness::lower_bound`] is reached.
    pub fn peak_step(&self) -> usize {
        let peak = self.lower_bound();
        self.live_bytes.iter().position(|&b| b == peak).unwrap_or(0)
    }

    /// The buffers live at the peak step, largest first.
    pub fn peak_buffers(&self) -> Vec<usize> {
        let s = self.peak_step();
        let mut live: Vec<usize> = (0..self.buffers.len())
            .filter(|&b| self.buffers[b].first <= s && s <= self.buffers[b].last)
            .collect();
        live.sort_by_key(|&b| std::cmp::Reverse(self.buffers[b].size));
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Builder, ElemType, Module, Quant, TensorData};

    #[test]
    fn views_alias_in_place_reuses_and_peak_is_named() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[2, 8])); // 64 bytes
        let w = b
            .param(
                "w",
                TensorType::f32(&[16]),
                true,
                Some(TensorData::F32(vec![0.0; 16])),
            )
            .unwrap();
        let wv = b.op(Op::Reshape { shape: vec![2, 8] }, &[w]).unwrap();
        let a = b.op(Op::Mul {}, &[x, wv]).unwrap(); // 0: new (x pinned), 64
        let r = b.op(Op::Relu {}, &[a]).unwrap(); // 1: in place of a
        let f = b.op(Op::Flatten { axis: 0 }, &[r]).unwrap(); // 2: view
        let s = b.op(Op::Add {}, &[r, r]).unwrap(); // 3: new: r's buffer lives on through f
        let q = b
            .op_quant(Op::Quantize {}, &[s], Quant::per_tensor(0.1, 0))
            .unwrap(); // 4: new, 16 bytes (size differs)
        b.ret(&[q, f]);
        let func = &m.functions[0];
        let sched = Schedule::program_order(func);
        let live = Liveness::compute(func, &sched);
        assert_eq!(live.buffer_of(w), None);
        assert_eq!(live.buffer_of(wv), None, "a view of a global is no buffer");
        assert_eq!(live.buffer_of(r), live.buffer_of(a));
        assert_eq!(live.buffer_of(f), live.buffer_of(a));
        assert_ne!(live.buffer_of(s), live.buffer_of(a));
        let bufs = live.buffers();
        assert_eq!(bufs.len(), 4, "x, a (= r = f), s, q");
        let [bx, ba, bs, bq] = [x, a, s, q].map(|v| bufs[live.buffer_of(v).unwrap()]);
        // Steps: 0 param, 1 reshape, 2 mul, 3 relu, 4 flatten, 5 add, 6 quantize.
        assert_eq!((bx.first, bx.last, bx.size, bx.align), (0, 2, 64, 4));
        assert_eq!((ba.first, ba.last), (2, 6), "f is an output");
        assert_eq!((bs.first, bs.last), (5, 6));
        assert_eq!((bq.first, bq.last, bq.size, bq.align), (6, 6, 16, 1));
        assert_eq!(live.lower_bound(), 64 + 64 + 16);
        assert_eq!(live.peak_step(), 6);
        assert_eq!(live.peak_buffers().len(), 3);
        assert_eq!(live.live_bytes_at(2), 128);
        assert_eq!(live.live_bytes_at(3), 64);
        assert_eq!(live.dies_after(2), &[x, wv]);
    }

    #[test]
    fn no_in_place_over_a_value_still_needed_or_an_output() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[4]));
        let a = b.op(Op::Mul {}, &[x, x]).unwrap();
        let r = b.op(Op::Relu {}, &[a]).unwrap(); // a is used again below: new buffer
        let s = b.op(Op::Add {}, &[a, r]).unwrap(); // a dies here: in place of a
        let t = b.op(Op::Relu {}, &[s]).unwrap(); // s is an output: new buffer
        b.ret(&[s, t]);
        let func = &m.functions[0];
        let live = Liveness::compute(func, &Schedule::program_order(func));
        assert_ne!(live.buffer_of(r), live.buffer_of(a));
        assert_eq!(live.buffer_of(s), live.buffer_of(a));
        assert_ne!(live.buffer_of(t), live.buffer_of(s));
        assert_ne!(
            live.buffer_of(a),
            live.buffer_of(x),
            "arguments are never overwritten"
        );
    }

    #[test]
    fn masks_take_one_bit_per_element() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[3, 7]));
        let k = b.op(Op::Mask { min: 0.0, max: 6.0 }, &[x]).unwrap();
        b.ret(&[k]);
        let func = &m.functions[0];
        let live = Liveness::compute(func, &Schedule::program_order(func));
        let mask = live.buffers()[live.buffer_of(k).unwrap()];
        assert_eq!(func.ty(k).elem, ElemType::I1);
        assert_eq!((mask.size, mask.align), (3, 1));
    }

    #[test]
    fn schedules_are_checked() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[4]));
        let a = b.op(Op::Relu {}, &[x]).unwrap();
        let c = b.op(Op::Relu {}, &[x]).unwrap();
        let s = b.op(Op::Add {}, &[a, c]).unwrap();
        b.ret(&[s]);
        let func = &m.functions[0];
        let l = func.layout().to_vec();
        let swapped = Schedule::new(func, vec![l[1], l[0], l[2]]).unwrap();
        let live = Liveness::compute(func, &swapped);
        assert_eq!(live.buffers()[live.buffer_of(c).unwrap()].first, 0);
        assert!(matches!(
            Schedule::new(func, vec![l[2], l[0], l[1]]),
            Err(ScheduleError::UseBeforeDefinition { position: 0, .. })
        ));
        assert!(matches!(
            Schedule::new(func, vec![l[0], l[0], l[1]]),
            Err(ScheduleError::NotAPermutation { position: 1 })
        ));
        assert!(matches!(
            Schedule::new(func, vec![l[0]]),
            Err(ScheduleError::WrongLength { .. })
        ));
    }
}
