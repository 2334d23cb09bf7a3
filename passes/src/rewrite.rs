//! Small helpers shared by the passes.

use mite_ir::{Function, Op, OpId, Value};

/// The op defining `v`, if it is an op result (not an argument).
pub(crate) fn defining_op(func: &Function, v: Value) -> Option<OpId> {
    func.defining_op(v)
}

/// The op defining `v` with its op kind, if `v` is an op result.
pub(crate) fn producer(func: &Function, v: Value) -> Option<(OpId, &Op)> {
    defining_op(func, v).map(|id| (id, &func.op(id).op))
}

/// Replaces every use of the single result of `op` (operands and function outputs) by `value`
/// and erases `op`. Each call scans the function; `canonicalize` keeps its own use map instead.
#[allow(dead_code)]
pub(crate) fn replace_op_with_value(func: &mut Function, op: OpId, value: Value) {
    let old = func.op(op).result();
    func.replace_all_uses(old, value);
    func.erase_op(op);
}
