//! `dce`: dead-code elimination.
//!
//! Removes ops whose results are all unused (by ops or function outputs), transitively, when they
//! have no effect besides computing their results: [`Effect::Pure`] ops and global reads
//! ([`Effect::ReadGlobal`]). Ops with [`Effect::Write`] (updates, custom ops) are kept. Then
//! removes constant globals that no function reads any more; parameters are never removed.
//! Unused function arguments are kept (they are part of the function's signature).
//!
//! Statistics: `ops-removed`, `globals-removed`.

use crate::pass::{Pass, PassError};
use crate::statistics::Statistics;
use mite_ir::analysis::UseCounts;
use mite_ir::{Effect, Function, GlobalKind, Module, Op, OpId};
use std::collections::HashSet;

/// The `dce` pass (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &str {
        "dce"
    }

    fn description(&self) -> &str {
        "Removes unused pure ops and global reads, transitively, and constants no longer read"
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let ops_removed: usize = module.functions.iter_mut().map(remove_dead_ops).sum();
        let read: HashSet<String> = module
            .functions
            .iter()
            .flat_map(|f| f.layout().iter().map(move |&id| &f.op(id).op))
            .filter_map(|op| match op {
                Op::Const { global } => Some(global.0.clone()),
                _ => None,
            })
            .collect();
        let before = module.globals.len();
        module
            .globals
            .retain(|name, g| g.kind != GlobalKind::Const || read.contains(name));
        let globals_removed = before - module.globals.len();
        stats.add("ops-removed", ops_removed as u64);
        stats.add("globals-removed", globals_removed as u64);
        Ok(ops_removed + globals_removed > 0)
    }
}

/// Whether an op may be removed when its results are unused.
fn removable(op: &Op) -> bool {
    matches!(op.effect(), Effect::Pure | Effect::ReadGlobal)
}

/// Removes the dead ops of `func`; returns how many.
pub(crate) fn remove_dead_ops(func: &mut Function) -> usize {
    let mut counts = UseCounts::compute(func);
    let mut dead: HashSet<OpId> = HashSet::new();
    // Uses come after definitions, so one backward sweep sees every op after all its users.
    for &id in func.layout().iter().rev() {
        let data = func.op(id);
        if removable(&data.op) && data.results.iter().all(|&r| counts.is_unused(r)) {
            for &v in &data.operands {
                counts.remove_use(v);
            }
            dead.insert(id);
        }
    }
    if dead.is_empty() {
        return 0;
    }
    func.erase_ops_where(|id, _| dead.contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use mite_ir::{Builder, CustomOp, TensorData, TensorType};

    #[test]
    fn removes_unused_chains_transitively() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[4]));
        let a = b.op(Op::Relu {}, &[x]).unwrap();
        let c = b.op(Op::Relu {}, &[a]).unwrap();
        let _d = b.op(Op::Add {}, &[c, a]).unwrap();
        let kept = b.op(Op::Clip { min: 0.0, max: 6.0 }, &[x]).unwrap();
        b.ret(&[kept]);
        let stats = run_ok(&mut Dce, &mut m);
        assert_eq!(stats.get("ops-removed"), 3);
        assert_eq!(op_names(&m), ["nn.clip"]);
        assert_idempotent(&mut Dce, &m);
    }

    #[test]
    fn keeps_writes_and_parameters_removes_unread_constants() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[2]));
        let w = b
            .param(
                "w",
                TensorType::f32(&[2]),
                true,
                Some(TensorData::F32(vec![1.0, 2.0])),
            )
            .unwrap();
        let c = b
            .constant("c", TensorType::f32(&[2]), TensorData::F32(vec![3.0, 4.0]))
            .unwrap();
        let used = b
            .constant(
                "used",
                TensorType::f32(&[2]),
                TensorData::F32(vec![5.0, 6.0]),
            )
            .unwrap();
        let _unused_sum = b.op(Op::Add {}, &[w, c]).unwrap();
        let effect = Op::Custom(CustomOp {
            name: "acme.log".into(),
            attrs: vec![],
        });
        b.op_typed(effect, &[x], vec![TensorType::f32(&[2])])
            .unwrap();
        let y = b.op(Op::Mul {}, &[x, used]).unwrap();
        b.ret(&[y]);
        let stats = run_ok(&mut Dce, &mut m);
        assert_eq!(stats.get("ops-removed"), 3, "param w, const c and the add");
        assert_eq!(stats.get("globals-removed"), 1);
        assert_eq!(op_names(&m), ["const", "acme.log", "nn.mul"]);
        assert!(m.globals.contains_key("w"), "parameters are never removed");
        assert!(!m.globals.contains_key("c"));
        assert!(m.globals.contains_key("used"));
        assert_idempotent(&mut Dce, &m);
    }

    #[test]
    fn outputs_and_arguments_count_as_live() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[2]));
        let _unused_arg = b.arg("y", TensorType::f32(&[2]));
        let r = b.op(Op::Relu {}, &[x]).unwrap();
        b.ret(&[r, x]);
        let stats = run_ok(&mut Dce, &mut m);
        assert_eq!(stats.get("ops-removed"), 0);
        assert_eq!(m.functions[0].args().len(), 2);
        assert_eq!(op_names(&m), ["nn.relu"]);
    }
}
