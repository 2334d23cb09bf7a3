//! Analyses over a function: use lists and use counts (side tables keyed by value), and the
//! schedule and buffer liveness ([`liveness`]).
//!
//! Both are snapshots: they describe the function at the time they were computed and are not
//! updated when the function changes (except through the explicit update methods of
//! [`UseCounts`], which passes such as dead-code elimination use as they go).
//!
//! A use is either an operand of a linked (not erased) op or a function output. Values of erased
//! ops and values that are never used have no uses.
//!
//! ```
//! use mite_ir::analysis::{Use, UseMap};
//! use mite_ir::{Builder, Module, Op, TensorType};
//! let mut m = Module::new("m");
//! let mut b = Builder::new(&mut m, "f");
//! let x = b.arg("x", TensorType::f32(&[4]));
//! let y = b.op(Op::Relu {}, &[x]).unwrap();
//! b.ret(&[y, y]);
//! let uses = UseMap::compute(&m.functions[0]);
//! assert_eq!(uses.num_uses(x), 1);
//! assert_eq!(uses.uses(y), &[Use::Output(0), Use::Output(1)]);
//! ```

use crate::module::{Function, OpId, Value};
use la_arena::ArenaMap;

pub mod liveness;
pub use liveness::{BufferLifetime, Liveness, Schedule, ScheduleError};

/// One use of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Use {
    /// Operand `index` of op `op`.
    Operand {
        /// The using op.
        op: OpId,
        /// The operand position.
        index: usize,
    },
    /// The function output at this position.
    Output(usize),
}

/// The uses of every value of a function, in program order (op operands first, in layout order,
/// then outputs).
#[derive(Clone, Debug, Default)]
pub struct UseMap {
    uses: ArenaMap<Value, Vec<Use>>,
}

impl UseMap {
    /// Computes the uses of every value of `func`.
    pub fn compute(func: &Function) -> UseMap {
        let mut uses: ArenaMap<Value, Vec<Use>> = ArenaMap::default();
        for &op in func.layout() {
            for (index, &v) in func.op(op).operands.iter().enumerate() {
                uses.entry(v).or_default().push(Use::Operand { op, index });
            }
        }
        for (i, &v) in func.outputs().iter().enumerate() {
            uses.entry(v).or_default().push(Use::Output(i));
        }
        UseMap { uses }
    }

    /// The uses of `v` (empty if it has none).
    pub fn uses(&self, v: Value) -> &[Use] {
        self.uses.get(v).map_or(&[], Vec::as_slice)
    }

    /// The number of uses of `v` (an op using `v` twice counts twice).
    pub fn num_uses(&self, v: Value) -> usize {
        self.uses(v).len()
    }

    /// Whether `v` has at least one use.
    pub fn is_used(&self, v: Value) -> bool {
        self.num_uses(v) > 0
    }

    /// The distinct ops using `v`, in program order.
    pub fn users(&self, v: Value) -> Vec<OpId> {
        let mut users: Vec<OpId> = Vec::new();
        for u in self.uses(v) {
            if let Use::Operand { op, .. } = *u {
                if users.last() != Some(&op) {
                    users.push(op);
                }
            }
        }
        users
    }

    /// Whether `v` is a function output.
    pub fn is_output(&self, v: Value) -> bool {
        self.uses(v).iter().any(|u| matches!(u, Use::Output(_)))
    }
}

/// The number of uses of every value of a function, updatable as ops are removed.
#[derive(Clone, Debug, Default)]
pub struct UseCounts {
    counts: ArenaMap<Value, usize>,
}

impl UseCounts {
    /// Counts the uses of every value of `func` (operands of linked ops and outputs).
    pub fn compute(func: &Function) -> UseCounts {
        let mut counts: ArenaMap<Value, usize> = ArenaMap::default();
        let operands = func
            .layout()
            .iter()
            .flat_map(|&op| func.op(op).operands.iter().copied());
        for v in operands.chain(func.outputs().iter().copied()) {
            *counts.entry(v).or_default() += 1;
        }
        UseCounts { counts }
    }

    /// The number of uses of `v`.
    pub fn get(&self, v: Value) -> usize {
        self.counts.get(v).copied().unwrap_or(0)
    }

    /// Whether `v` has no uses.
    pub fn is_unused(&self, v: Value) -> bool {
        self.get(v) == 0
    }

    /// Records one more use of `v`.
    pub fn add_use(&mut self, v: Value) {
        *self.counts.entry(v).or_default() += 1;
    }

    /// Records that one use of `v` went away (saturating at zero).
    pub fn remove_use(&mut self, v: Value) {
        if let Some(n) = self.counts.get_mut(v) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Builder, Module, Op, TensorType};

    #[test]
    fn uses_and_counts() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[2]));
        let y = b.op(Op::Add {}, &[x, x]).unwrap();
        let z = b.op(Op::Relu {}, &[y]).unwrap();
        let dead = b.op(Op::Relu {}, &[y]).unwrap();
        b.ret(&[z]);
        let f = &m.functions[0];
        let map = UseMap::compute(f);
        let add = f.layout()[0];
        assert_eq!(
            map.uses(x),
            &[
                Use::Operand { op: add, index: 0 },
                Use::Operand { op: add, index: 1 }
            ]
        );
        assert_eq!(map.users(x), vec![add]);
        assert_eq!(map.num_uses(y), 2);
        assert!(map.is_output(z));
        assert!(!map.is_used(dead));

        let mut counts = UseCounts::compute(f);
        assert_eq!(counts.get(x), 2);
        assert!(counts.is_unused(dead));
        counts.remove_use(y);
        counts.remove_use(y);
        counts.remove_use(y);
        assert!(counts.is_unused(y));
        counts.add_use(dead);
        assert_eq!(counts.get(dead), 1);
    }
}
