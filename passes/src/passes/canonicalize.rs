//! `canonicalize`: local simplifications, applied until none applies (a fixed point).
//!
//! Each rewrite is named; its statistic counts how often it applied:
//!
//! | statistic | rewrite |
//! |-----------|---------|
//! | `reshape-of-reshape` | `reshape(reshape(x))` or `reshape(flatten(x))` → `reshape(x)` |
//! | `identity-reshape` | `reshape(x)` or `flatten(x)` of the type of `x` → `x` |
//! | `identity-transpose` | `transpose{perm = [0, 1, ..]}(x)` → `x` |
//! | `transpose-of-transpose` | `transpose{p2}(transpose{p1}(x))` → `transpose{p1 ∘ p2}(x)`, or `x` when the composition is the identity |
//! | `identity-clip` | `clip{min = -inf, max = inf}(x)` → `x` |
//! | `clip-to-relu` | `clip{min = 0, max = inf}(x)` → `relu(x)` |
//! | `relu-of-relu` | `relu(relu(x))` → `relu(x)` |
//! | `relu-of-clip` | `relu(clip{min ≥ 0}(x))` → `clip(x)` |
//! | `clip-of-relu` | `clip{a, b}(relu(x))` → `clip{max(a, 0), b}(x)` (when `b ≥ max(a, 0)`) |
//! | `single-concat` | `concat(x)` → `x` |
//! | `zero-pad` | `pad{pads = [0, ..]}(x)` → `x` |
//! | `quantize-of-dequantize` | `quantize(dequantize(x))` → `x` when the result type (with its quantization) equals the type of `x` |
//!
//! `dequantize(quantize(x))` is deliberately left alone: it rounds and saturates.
//!
//! Every rewrite keeps the result type exactly (a rewrite whose new form would infer another type
//! is skipped), so replacing a function output keeps the function's signature. Replaced ops are
//! erased; their operands' producers may become unused and are left for `dce`. Floats are
//! compared as the interpreter computes them: relu and clip keep NaN, a zero bound means `+0.0`.
//!
//! The rewrites run from a worklist: each op is visited once in program order and again only
//! when the producer of its operand changed, and a use map makes each rewrite cost only the uses
//! it touches, so the pass takes time linear in the size of the function.
//!
//! Option `max-sweeps` (default 16): a function's ops are visited at most `max-sweeps` × its
//! op count times in all; reaching that bound without a fixed point is counted in
//! `sweep-limit-reached`.

use crate::pass::{Pass, PassError};
use crate::rewrite::producer;
use crate::statistics::Statistics;
use indexmap::IndexMap;
use mite_ir::infer::infer_result_types;
use mite_ir::{Function, Global, Module, Op, OpId, Value};
use std::collections::{HashMap, HashSet};

/// The `canonicalize` pass (see the module documentation).
#[derive(Clone, Debug)]
pub struct Canonicalize {
    max_sweeps: usize,
}

impl Default for Canonicalize {
    fn default() -> Self {
        Canonicalize { max_sweeps: 16 }
    }
}

impl Canonicalize {
    /// The names of all rewrites (and of their statistics).
    pub const REWRITES: &'static [&'static str] = &[
        "reshape-of-reshape",
        "identity-reshape",
        "identity-transpose",
        "transpose-of-transpose",
        "identity-clip",
        "clip-to-relu",
        "relu-of-relu",
        "relu-of-clip",
        "clip-of-relu",
        "single-concat",
        "zero-pad",
        "quantize-of-dequantize",
    ];
}

impl Pass for Canonicalize {
    fn name(&self) -> &str {
        "canonicalize"
    }

    fn description(&self) -> &str {
        "Simplifies reshapes, transposes, relu/clip chains, trivial concat/pad and quantize∘dequantize"
    }

    fn set_option(&mut self, key: &str, value: &str) -> Result<(), PassError> {
        match key {
            "max-sweeps" => {
                self.max_sweeps = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    PassError::invalid_value(self.name(), key, value, "expected a positive integer")
                })?;
                Ok(())
            }
            _ => Err(PassError::unknown_option(self.name(), key, &["max-sweeps"])),
        }
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let mut changed = false;
        for func in &mut module.functions {
            changed |= canonicalize_function(func, &module.globals, self.max_sweeps, stats);
        }
        Ok(changed)
    }
}

/// What a rewrite does to the matched op.
// One short-lived value per matched op: boxing the `Op` would cost an allocation per rewrite.
#[allow(clippy::large_enum_variant)]
enum Action {
    /// Replace the op's result by this value and erase the op.
    ReplaceWith(Value),
    /// Change the op in place to this op over these operands (same result type).
    Rewrite(Op, Vec<Value>),
}

/// The ops that use each value, kept up to date as rewrites change operands. Entries may be
/// stale (an op that no longer uses the value); users of an entry check the operands again.
#[derive(Default)]
struct Uses(HashMap<Value, Vec<OpId>>);

impl Uses {
    fn of(func: &Function) -> Uses {
        let mut uses = Uses::default();
        for &id in func.layout() {
            for &v in &func.op(id).operands {
                uses.add(v, id);
            }
        }
        uses
    }

    fn add(&mut self, v: Value, id: OpId) {
        self.0.entry(v).or_default().push(id);
    }

    fn take(&mut self, v: Value) -> Vec<OpId> {
        self.0.remove(&v).unwrap_or_default()
    }

    fn get(&self, v: Value) -> &[OpId] {
        self.0.get(&v).map_or(&[], Vec::as_slice)
    }
}

/// Runs the rewrites to a fixed point with a worklist: every op is visited once, and an op is
/// visited again only when the producer of one of its operands changed. Each rewrite costs time
/// proportional to the uses it touches, so a chain of N ops takes O(N) rewrites and time.
/// Replaced ops are erased together at the end, in one sweep over the program order.
///
/// `max_sweeps` bounds the visits to `max_sweeps` × the number of ops; reaching the bound
/// stops the pass and counts `sweep-limit-reached`.
fn canonicalize_function(
    func: &mut Function,
    globals: &IndexMap<String, Global>,
    max_sweeps: usize,
    stats: &mut Statistics,
) -> bool {
    let mut uses = Uses::of(func);
    let mut worklist: Vec<OpId> = func.layout().iter().rev().copied().collect();
    let mut queued: HashSet<OpId> = worklist.iter().copied().collect();
    let mut dead: HashSet<OpId> = HashSet::new();
    let mut budget = max_sweeps.saturating_mul(worklist.len().max(1));
    let mut changed = false;
    while let Some(id) = worklist.pop() {
        queued.remove(&id);
        if dead.contains(&id) {
            continue;
        }
        if budget == 0 {
            stats.increment("sweep-limit-reached");
            break;
        }
        budget -= 1;
        let mut revisit = Vec::new();
        while !dead.contains(&id) {
            let Some((rule, action)) = match_rewrite(func, id) else {
                break;
            };
            let Some(users) = apply(func, globals, id, action, &mut uses, &mut dead) else {
                break;
            };
            stats.increment(rule);
            changed = true;
            revisit = users;
        }
        // The users of the rewritten op (or of the value that replaced it) see a new producer.
        for user in revisit.into_iter().rev() {
            if !dead.contains(&user) && queued.insert(user) {
                worklist.push(user);
            }
        }
    }
    if !dead.is_empty() {
        func.erase_ops_where(|id, _| dead.contains(&id));
    }
    changed
}

/// Applies `action` to op `id` if it keeps the result type; returns the ops whose operand's
/// producer changed (to visit again), or `None` when the action does not apply.
fn apply(
    func: &mut Function,
    globals: &IndexMap<String, Global>,
    id: OpId,
    action: Action,
    uses: &mut Uses,
    dead: &mut HashSet<OpId>,
) -> Option<Vec<OpId>> {
    let result = func.op(id).result();
    match action {
        Action::ReplaceWith(v) => {
            if func.ty(v) != func.ty(result) {
                return None;
            }
            let mut moved = Vec::new();
            for user in uses.take(result) {
                let mut replaced = false;
                for operand in func.op_mut(user).operands.iter_mut() {
                    if *operand == result {
                        *operand = v;
                        replaced = true;
                    }
                }
                if replaced {
                    uses.add(v, user);
                    moved.push(user);
                }
            }
            if func.outputs().contains(&result) {
                let outputs = func
                    .outputs()
                    .iter()
                    .map(|&o| if o == result { v } else { o })
                    .collect();
                func.set_outputs(outputs);
            }
            dead.insert(id);
            Some(moved)
        }
        Action::Rewrite(op, operands) => {
            let tys: Vec<_> = operands.iter().map(|&v| func.ty(v)).collect();
            match infer_result_types(&op, &tys, globals) {
                Ok(Some(inferred)) if inferred.as_slice() == [func.ty(result).clone()] => {}
                _ => return None,
            }
            for &v in &operands {
                uses.add(v, id);
            }
            let data = func.op_mut(id);
            data.op = op;
            data.operands = operands.into_iter().collect();
            Some(uses.get(result).to_vec())
        }
    }
}

fn is_identity(perm: &[i64]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| p == i as i64)
}

/// The first rewrite that matches op `id`, with its name.
fn match_rewrite(func: &Function, id: OpId) -> Option<(&'static str, Action)> {
    let data = func.op(id);
    let result = data.results.first().copied()?;
    let x = data.operands.first().copied()?;
    let same_type = func.ty(x) == func.ty(result);
    let input = producer(func, x);
    let (rule, action) = match (&data.op, input.map(|(_, op)| op)) {
        (Op::Reshape { .. } | Op::Flatten { .. }, _) if same_type => {
            ("identity-reshape", Action::ReplaceWith(x))
        }
        (Op::Reshape { shape }, Some(Op::Reshape { .. } | Op::Flatten { .. })) => {
            let (inner, _) = input?;
            let op = Op::Reshape {
                shape: shape.clone(),
            };
            (
                "reshape-of-reshape",
                Action::Rewrite(op, vec![func.op(inner).operands[0]]),
            )
        }
        (Op::Transpose { perm }, _) if is_identity(perm) => {
            ("identity-transpose", Action::ReplaceWith(x))
        }
        (Op::Transpose { perm: outer }, Some(Op::Transpose { perm: inner })) => {
            let (inner_id, _) = input?;
            let source = func.op(inner_id).operands[0];
            let composed: Option<Vec<i64>> = outer
                .iter()
                .map(|&p| usize::try_from(p).ok().and_then(|p| inner.get(p).copied()))
                .collect();
            let composed = composed?;
            let action = if is_identity(&composed) {
                Action::ReplaceWith(source)
            } else {
                Action::Rewrite(Op::Transpose { perm: composed }, vec![source])
            };
            ("transpose-of-transpose", action)
        }
        (Op::Clip { min, max }, _) if *min == f32::NEG_INFINITY && *max == f32::INFINITY => {
            ("identity-clip", Action::ReplaceWith(x))
        }
        (Op::Clip { min, max }, _) if min.to_bits() == 0 && *max == f32::INFINITY => {
            ("clip-to-relu", Action::Rewrite(Op::Relu {}, vec![x]))
        }
        (Op::Relu {}, Some(Op::Relu {})) => ("relu-of-relu", Action::ReplaceWith(x)),
        (Op::Relu {}, Some(Op::Clip { min, .. })) if *min >= 0.0 => {
            ("relu-of-clip", Action::ReplaceWith(x))
        }
        (Op::Clip { min, max }, Some(Op::Relu {})) => {
            let min = if *min > 0.0 { *min } else { 0.0 };
            if *max < min {
                return None;
            }
            let (relu, _) = input?;
            let op = Op::Clip { min, max: *max };
            (
                "clip-of-relu",
                Action::Rewrite(op, vec![func.op(relu).operands[0]]),
            )
        }
        (Op::Concat { .. }, _) if data.operands.len() == 1 => {
            ("single-concat", Action::ReplaceWith(x))
        }
        (Op::Pad { pads, .. }, _) if pads.iter().all(|&p| p == 0) => {
            ("zero-pad", Action::ReplaceWith(x))
        }
        (Op::Quantize {}, Some(Op::Dequantize {})) => {
            let (deq, _) = input?;
            let source = func.op(deq).operands[0];
            if func.ty(source) != func.ty(result) {
                return None;
            }
            ("quantize-of-dequantize", Action::ReplaceWith(source))
        }
        _ => return None,
    };
    Some((rule, action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use mite_ir::{Builder, ElemType, Quant, TensorType, ValueDef};

    /// Builds `@f(%x: x_ty)` with `body`, runs canonicalize, checks idempotence; returns the
    /// module and the statistics.
    fn canonicalize(
        x_ty: TensorType,
        body: impl FnOnce(&mut Builder, Value) -> Vec<Value>,
    ) -> (Module, Statistics) {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", x_ty);
        let outs = body(&mut b, x);
        b.ret(&outs);
        let mut pass = Canonicalize::default();
        let stats = run_ok(&mut pass, &mut m);
        assert_idempotent(&mut pass, &m);
        (m, stats)
    }

    /// The op named `name` (the only one) of the first function.
    fn only(m: &Module, name: &str) -> Op {
        let f = &m.functions[0];
        let ops: Vec<&Op> = f
            .layout()
            .iter()
            .map(|&id| &f.op(id).op)
            .filter(|op| op.name() == name)
            .collect();
        assert_eq!(ops.len(), 1, "one {name} in {:?}", op_names(m));
        ops[0].clone()
    }

    fn output_is_arg(m: &Module, i: usize) -> bool {
        let f = &m.functions[0];
        f.outputs()[i] == f.args()[0]
    }

    #[test]
    fn reshape_of_reshape_and_flatten() {
        let (m, stats) = canonicalize(TensorType::f32(&[1, 2, 3, 4]), |b, x| {
            let r = b.op(Op::Reshape { shape: vec![6, 4] }, &[x]).unwrap();
            let r2 = b.op(Op::Reshape { shape: vec![-1, 2] }, &[r]).unwrap();
            let f = b.op(Op::Flatten { axis: 2 }, &[x]).unwrap();
            let r3 = b.op(Op::Reshape { shape: vec![24] }, &[f]).unwrap();
            vec![r2, r3]
        });
        assert_eq!(stats.get("reshape-of-reshape"), 2);
        let f = &m.functions[0];
        for &out in f.outputs() {
            let ValueDef::Result(id, _) = f.value(out).def else {
                panic!("an op result")
            };
            assert_eq!(f.op(id).operands[0], f.args()[0]);
        }
        assert_eq!(f.ty(f.outputs()[0]), &TensorType::f32(&[12, 2]));
    }

    #[test]
    fn identity_reshape_and_flatten() {
        let (m, stats) = canonicalize(TensorType::f32(&[2, 3]), |b, x| {
            let r = b.op(Op::Reshape { shape: vec![2, -1] }, &[x]).unwrap();
            let f = b.op(Op::Flatten { axis: 1 }, &[r]).unwrap();
            let kept = b.op(Op::Flatten { axis: 0 }, &[f]).unwrap();
            vec![f, kept]
        });
        assert_eq!(stats.get("identity-reshape"), 2);
        assert_eq!(op_names(&m), ["nn.flatten"]);
        assert!(output_is_arg(&m, 0), "the output is now the argument");
    }

    #[test]
    fn transposes() {
        let (m, stats) = canonicalize(TensorType::f32(&[2, 3, 4]), |b, x| {
            let id = b
                .op(
                    Op::Transpose {
                        perm: vec![0, 1, 2],
                    },
                    &[x],
                )
                .unwrap();
            let t1 = b
                .op(
                    Op::Transpose {
                        perm: vec![1, 2, 0],
                    },
                    &[id],
                )
                .unwrap();
            let back = b
                .op(
                    Op::Transpose {
                        perm: vec![2, 0, 1],
                    },
                    &[t1],
                )
                .unwrap();
            let other = b
                .op(
                    Op::Transpose {
                        perm: vec![0, 2, 1],
                    },
                    &[t1],
                )
                .unwrap();
            vec![back, other]
        });
        assert_eq!(stats.get("identity-transpose"), 1);
        assert_eq!(stats.get("transpose-of-transpose"), 2);
        assert!(output_is_arg(&m, 0));
        let f = &m.functions[0];
        let out = f.outputs()[1];
        assert_eq!(f.ty(out), &TensorType::f32(&[3, 2, 4]));
        let ValueDef::Result(id, _) = f.value(out).def else {
            panic!("an op result")
        };
        assert_eq!(
            f.op(id).op,
            Op::Transpose {
                perm: vec![1, 0, 2]
            }
        );
        assert_eq!(f.op(id).operands[0], f.args()[0]);
    }

    #[test]
    fn transpose_keeps_per_channel_quantization() {
        let q = Quant::per_channel(0, vec![0.5, 0.25]);
        let ty = TensorType::quantized(&[2, 3], ElemType::I8, q);
        let (m, stats) = canonicalize(ty, |b, x| {
            let t = b.op(Op::Transpose { perm: vec![1, 0] }, &[x]).unwrap();
            let back = b.op(Op::Transpose { perm: vec![1, 0] }, &[t]).unwrap();
            vec![back]
        });
        assert_eq!(stats.get("transpose-of-transpose"), 1);
        assert!(output_is_arg(&m, 0));
    }

    #[test]
    fn clips_and_relus() {
        let (m, stats) = canonicalize(TensorType::f32(&[4]), |b, x| {
            let inf = f32::INFINITY;
            let identity = b
                .op(
                    Op::Clip {
                        min: -inf,
                        max: inf,
                    },
                    &[x],
                )
                .unwrap();
            let relu = b.op(Op::Clip { min: 0.0, max: inf }, &[identity]).unwrap();
            vec![relu]
        });
        assert_eq!(stats.get("identity-clip"), 1);
        assert_eq!(stats.get("clip-to-relu"), 1);
        assert_eq!(op_names(&m), ["nn.relu"]);

        let (m, stats) = canonicalize(TensorType::f32(&[4]), |b, x| {
            let r1 = b.op(Op::Relu {}, &[x]).unwrap();
            let r2 = b.op(Op::Relu {}, &[r1]).unwrap();
            vec![r2]
        });
        assert_eq!(stats.get("relu-of-relu"), 1);
        assert_eq!(op_names(&m), ["nn.relu"]);

        let (m, stats) = canonicalize(TensorType::f32(&[4]), |b, x| {
            let c = b.op(Op::Clip { min: 0.0, max: 6.0 }, &[x]).unwrap();
            let r = b.op(Op::Relu {}, &[c]).unwrap();
            let c2 = b
                .op(
                    Op::Clip {
                        min: -1.0,
                        max: 6.0,
                    },
                    &[x],
                )
                .unwrap();
            let kept = b.op(Op::Relu {}, &[c2]).unwrap();
            vec![r, kept]
        });
        assert_eq!(stats.get("relu-of-clip"), 1, "only when min ≥ 0");
        assert_eq!(op_names(&m), ["nn.clip", "nn.clip", "nn.relu"]);

        let (m, stats) = canonicalize(TensorType::f32(&[4]), |b, x| {
            let r = b.op(Op::Relu {}, &[x]).unwrap();
            let c = b
                .op(
                    Op::Clip {
                        min: -2.0,
                        max: 6.0,
                    },
                    &[r],
                )
                .unwrap();
            vec![c]
        });
        assert_eq!(stats.get("clip-of-relu"), 1);
        assert_eq!(only(&m, "nn.clip"), Op::Clip { min: 0.0, max: 6.0 });

        // clip{-inf, inf}(relu) becomes clip{0, inf}, then relu: a chain to the fixed point.
        let (m, stats) = canonicalize(TensorType::f32(&[4]), |b, x| {
            let r = b.op(Op::Relu {}, &[x]).unwrap();
            let c = b
                .op(
                    Op::Clip {
                        min: 0.5,
                        max: f32::INFINITY,
                    },
                    &[r],
                )
                .unwrap();
            let r2 = b.op(Op::Relu {}, &[x]).unwrap();
            let c2 = b
                .op(
                    Op::Clip {
                        min: -1.0,
                        max: f32::INFINITY,
                    },
                    &[r2],
                )
                .unwrap();
            vec![c, c2]
        });
        assert_eq!(stats.get("clip-of-relu"), 2);
        assert_eq!(stats.get("clip-to-relu"), 1);
        let f = &m.functions[0];
        let ValueDef::Result(id, _) = f.value(f.outputs()[1]).def else {
            panic!("an op result")
        };
        assert_eq!(f.op(id).op, Op::Relu {});
        assert_eq!(f.op(id).operands[0], f.args()[0]);
    }

    #[test]
    fn clip_of_relu_with_negative_max_is_left_alone() {
        let (_, stats) = canonicalize(TensorType::f32(&[4]), |b, x| {
            let r = b.op(Op::Relu {}, &[x]).unwrap();
            let c = b
                .op(
                    Op::Clip {
                        min: -3.0,
                        max: -1.0,
                    },
                    &[r],
                )
                .unwrap();
            vec![c]
        });
        assert_eq!(stats.get("clip-of-relu"), 0);
    }

    #[test]
    fn single_concat_and_zero_pad() {
        let (m, stats) = canonicalize(TensorType::f32(&[1, 2]), |b, x| {
            let c = b.op(Op::Concat { axis: 1 }, &[x]).unwrap();
            let kept = b.op(Op::Concat { axis: 1 }, &[x, c]).unwrap();
            let p = b
                .op(
                    Op::Pad {
                        pads: vec![0; 4],
                        value: 1.0,
                    },
                    &[c],
                )
                .unwrap();
            let kept_pad = b
                .op(
                    Op::Pad {
                        pads: vec![0, 1, 0, 0],
                        value: 0.0,
                    },
                    &[p],
                )
                .unwrap();
            vec![p, kept, kept_pad]
        });
        assert_eq!(stats.get("single-concat"), 1);
        assert_eq!(stats.get("zero-pad"), 1);
        assert_eq!(op_names(&m), ["nn.concat", "nn.pad"]);
        assert!(output_is_arg(&m, 0));
    }

    #[test]
    fn quantize_of_dequantize_only_with_identical_quantization() {
        let q = Quant::per_tensor(0.5, 3);
        let ty = TensorType::quantized(&[4], ElemType::I8, q.clone());
        let (m, stats) = canonicalize(ty, |b, x| {
            let d = b.op(Op::Dequantize {}, &[x]).unwrap();
            let same = b.op_quant(Op::Quantize {}, &[d], q.clone()).unwrap();
            let other = b
                .op_quant(Op::Quantize {}, &[d], Quant::per_tensor(0.25, 3))
                .unwrap();
            let d2 = b.op(Op::Dequantize {}, &[other]).unwrap();
            vec![same, d2]
        });
        assert_eq!(stats.get("quantize-of-dequantize"), 1);
        assert!(output_is_arg(&m, 0));
        assert_eq!(op_names(&m), ["q.dequantize", "q.quantize", "q.dequantize"]);
    }

    #[test]
    fn dequantize_of_quantize_is_kept() {
        let (m, stats) = canonicalize(TensorType::f32(&[4]), |b, x| {
            let q = b
                .op_quant(Op::Quantize {}, &[x], Quant::per_tensor(0.5, 0))
                .unwrap();
            vec![b.op(Op::Dequantize {}, &[q]).unwrap()]
        });
        assert!(stats.is_empty());
        assert_eq!(op_names(&m), ["q.quantize", "q.dequantize"]);
    }

    #[test]
    fn options() {
        let mut pass = Canonicalize::default();
        pass.set_option("max-sweeps", "2").unwrap();
        assert!(pass.set_option("max-sweeps", "0").is_err());
        let e = pass.set_option("sweeps", "2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pass `canonicalize` has no option `sweeps` (known options: max-sweeps)"
        );
    }
}
