//! `cse`: common-subexpression elimination.
//!
//! Merges ops that compute the same thing: the same [`Op`] (its `Eq`/`Hash` compare floats
//! bit for bit), the same operands and the same result types. Only [`Effect::Pure`] ops are
//! merged, and `param` reads ([`Effect::ReadGlobal`]) only of parameters that no op of the
//! function may write ([`Op::effects`]: an update of that parameter, or a custom op with unknown
//! effects), since a write could update the parameter between two reads. The first
//! occurrence in program order is kept; later ones are replaced by it (also in function outputs)
//! and erased. One forward sweep suffices: operands are rewritten before ops are compared, so
//! chains of duplicates merge in one run.
//!
//! Statistics: `ops-merged`.

use crate::pass::{Pass, PassError};
use crate::statistics::Statistics;
use mite_ir::{Effect, Function, Module, Op, OpId, TensorType, Value};
use std::collections::{HashMap, HashSet};

/// The `cse` pass (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &str {
        "cse"
    }

    fn description(&self) -> &str {
        "Merges identical pure ops (and parameter reads in functions without writes)"
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let merged: usize = module.functions.iter_mut().map(merge_duplicates).sum();
        stats.add("ops-merged", merged as u64);
        Ok(merged > 0)
    }
}

/// What makes two ops interchangeable: the op itself (its `Eq`/`Hash` compare float attributes
/// by their bits), its operands and its result types.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OpKey {
    op: Op,
    operands: Vec<Value>,
    result_types: Vec<TensorType>,
}

impl OpKey {
    fn new(func: &Function, id: OpId) -> OpKey {
        let data = func.op(id);
        OpKey {
            op: data.op.clone(),
            operands: data.operands.to_vec(),
            result_types: data.results.iter().map(|&r| func.ty(r).clone()).collect(),
        }
    }
}

/// Merges the duplicate ops of `func`; returns how many were erased.
fn merge_duplicates(func: &mut Function) -> usize {
    // Globals some op of the function may write (`None`: an op with unknown effects).
    let mut written: Option<HashSet<String>> = Some(HashSet::new());
    for &id in func.layout() {
        let effects = func.op(id).op.effects();
        match (&mut written, effects.unknown) {
            (_, true) => written = None,
            (Some(w), false) => w.extend(effects.writes.iter().map(|g| g.to_string())),
            (None, false) => {}
        }
    }
    let mergeable = |op: &Op| match op.effect() {
        Effect::Pure => true,
        Effect::ReadGlobal => written
            .as_ref()
            .is_some_and(|w| op.effects().reads.iter().all(|g| !w.contains(*g))),
        Effect::Write => false,
    };
    let mut replacement: HashMap<Value, Value> = HashMap::new();
    let mut seen: HashMap<OpKey, OpId> = HashMap::new();
    let mut erased: HashSet<OpId> = HashSet::new();
    for id in func.layout().to_vec() {
        if !replacement.is_empty() {
            let data = func.op_mut(id);
            for v in data.operands.iter_mut() {
                if let Some(&r) = replacement.get(v) {
                    *v = r;
                }
            }
        }
        if !mergeable(&func.op(id).op) {
            continue;
        }
        let key = OpKey::new(func, id);
        match seen.get(&key) {
            Some(&first) => {
                let pairs = func.op(id).results.iter().zip(&func.op(first).results);
                replacement.extend(pairs.map(|(&dup, &kept)| (dup, kept)));
                erased.insert(id);
            }
            None => {
                seen.insert(key, id);
            }
        }
    }
    if erased.is_empty() {
        return 0;
    }
    let outputs = func
        .outputs()
        .iter()
        .map(|v| replacement.get(v).copied().unwrap_or(*v))
        .collect();
    func.set_outputs(outputs);
    func.erase_ops_where(|id, _| erased.contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use mite_ir::{Builder, CustomOp, TensorData};

    #[test]
    fn merges_identical_pure_ops_transitively() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[4]));
        let a1 = b.op(Op::Relu {}, &[x]).unwrap();
        let a2 = b.op(Op::Relu {}, &[x]).unwrap();
        let s1 = b.op(Op::Add {}, &[a1, x]).unwrap();
        let s2 = b.op(Op::Add {}, &[a2, x]).unwrap();
        let out = b.op(Op::Mul {}, &[s1, s2]).unwrap();
        b.ret(&[out, s2]);
        let stats = run_ok(&mut Cse, &mut m);
        assert_eq!(stats.get("ops-merged"), 2);
        assert_eq!(op_names(&m), ["nn.relu", "nn.add", "nn.mul"]);
        let f = &m.functions[0];
        let add = f.op(f.layout()[1]).result();
        let mul = f.op(f.layout()[2]);
        assert_eq!(mul.operands.as_slice(), &[add, add]);
        assert_eq!(
            f.outputs(),
            &[mul.result(), add],
            "outputs follow the merge"
        );
        assert_idempotent(&mut Cse, &m);
    }

    #[test]
    fn attributes_and_operand_order_distinguish() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[4]));
        let y = b.arg("y", TensorType::f32(&[4]));
        let c1 = b.op(Op::Clip { min: 0.0, max: 6.0 }, &[x]).unwrap();
        let c2 = b
            .op(
                Op::Clip {
                    min: -0.0,
                    max: 6.0,
                },
                &[x],
            )
            .unwrap();
        let c3 = b.op(Op::Clip { min: 0.0, max: 1.0 }, &[x]).unwrap();
        let s1 = b.op(Op::Add {}, &[x, y]).unwrap();
        let s2 = b.op(Op::Add {}, &[y, x]).unwrap();
        b.ret(&[c1, c2, c3, s1, s2]);
        let stats = run_ok(&mut Cse, &mut m);
        assert_eq!(stats.get("ops-merged"), 0);
        assert_eq!(m.functions[0].num_ops(), 5);
    }

    fn reads_twice(with_write: bool) -> Module {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[2]));
        let w1 = b
            .param(
                "w",
                TensorType::f32(&[2]),
                true,
                Some(TensorData::F32(vec![1.0, 2.0])),
            )
            .unwrap();
        let c1 = b
            .constant("c", TensorType::f32(&[2]), TensorData::F32(vec![3.0, 4.0]))
            .unwrap();
        if with_write {
            let update = Op::Custom(CustomOp {
                name: "acme.update".into(),
                attrs: vec![],
            });
            b.op_typed(update, &[x], vec![TensorType::f32(&[2])])
                .unwrap();
        }
        let read_w = Op::Param {
            global: mite_ir::Symbol("w".into()),
        };
        let w2 = b.op(read_w, &[]).unwrap();
        let read_c = Op::Const {
            global: mite_ir::Symbol("c".into()),
        };
        let c2 = b.op(read_c, &[]).unwrap();
        let s1 = b.op(Op::Add {}, &[w1, c1]).unwrap();
        let s2 = b.op(Op::Add {}, &[w2, c2]).unwrap();
        b.ret(&[s1, s2]);
        m
    }

    #[test]
    fn parameter_reads_merge_only_without_writes() {
        let mut m = reads_twice(false);
        let stats = run_ok(&mut Cse, &mut m);
        assert_eq!(stats.get("ops-merged"), 3, "param, const and add");
        assert_eq!(op_names(&m), ["param", "const", "nn.add"]);
        assert_idempotent(&mut Cse, &m);

        let mut m = reads_twice(true);
        let stats = run_ok(&mut Cse, &mut m);
        assert_eq!(stats.get("ops-merged"), 1, "only the constant read");
        assert_eq!(
            op_names(&m),
            ["param", "const", "acme.update", "param", "nn.add", "nn.add"]
        );
        assert_idempotent(&mut Cse, &m);
    }

    #[test]
    fn reads_of_parameters_nothing_updates_merge_beside_an_update() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let g = b.arg("g", TensorType::f32(&[2]));
        let lr = b.arg("lr", TensorType::f32(&[]));
        let step = b.arg("step", TensorType::new(&[], mite_ir::ElemType::I64));
        let data = || Some(TensorData::F32(vec![1.0, 2.0]));
        let w1 = b.param("w", TensorType::f32(&[2]), true, data()).unwrap();
        let v1 = b.param("v", TensorType::f32(&[2]), true, data()).unwrap();
        let sgd = Op::Sgd {
            param: mite_ir::Symbol("w".into()),
            lr_scale: 1.0,
            momentum: 0.0,
            weight_decay: 0.0,
            qas: false,
            stochastic: false,
            seed: 0,
            accumulate: 1,
            momentum_state: None,
            accum_state: None,
            slice_axis: 0,
            slice_start: 0,
        };
        b.effect(sgd, &[g, lr, step]).unwrap();
        let read = |name: &str| Op::Param {
            global: mite_ir::Symbol(name.into()),
        };
        let w2 = b.op(read("w"), &[]).unwrap();
        let v2 = b.op(read("v"), &[]).unwrap();
        let _ = w1; // returning w1 would read @w after its update (a verifier error)
        b.ret(&[v1, w2, v2]);
        let stats = run_ok(&mut Cse, &mut m);
        assert_eq!(stats.get("ops-merged"), 1, "only the read of @v");
        assert_eq!(op_names(&m), ["param", "param", "optim.sgd", "param"]);
        assert_idempotent(&mut Cse, &m);
    }

    #[test]
    fn custom_ops_are_never_merged() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[2]));
        let op = Op::Custom(CustomOp {
            name: "acme.random".into(),
            attrs: vec![],
        });
        let r1 = b
            .op_typed(op.clone(), &[x], vec![TensorType::f32(&[2])])
            .unwrap();
        let r2 = b.op_typed(op, &[x], vec![TensorType::f32(&[2])]).unwrap();
        b.ret(&[r1[0], r2[0]]);
        let stats = run_ok(&mut Cse, &mut m);
        assert_eq!(stats.get("ops-merged"), 0);
        assert_eq!(m.functions[0].num_ops(), 2);
    }
}
