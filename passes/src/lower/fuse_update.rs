//! Weight gradient + update fusion: a `conv2d_weight_grad` whose only use is the `optim.sgd` of
//! its parameter lowers, with that update, to one [`Kernel::ConvWeightSgd`] call, so the
//! gradient buffer never exists.
//!
//! The fused call runs at the **anchor**: the weight-gradient op, or, when ops between it and
//! the update still read the parameter (the layer's input gradient reads the old weight), the
//! last of those. The gradient's operands (`x`, `dy`) must then survive unchanged to the anchor:
//! no op in between may write their buffers (an in-place result), and their lifetimes are
//! extended to the anchor. Not fused: accumulation over several steps (the update needs the
//! whole gradient), parameters other than `f32` / `i8`, and gradients with other uses.

use std::collections::{HashMap, HashSet};

use mite_ir::analysis::{Liveness, Schedule, Use, UseMap};
use mite_ir::program::{BufElem, Call, Kernel};
use mite_ir::{ElemType, Function, Module, Op, OpId, Value};

use super::{EntryLowering, LowerError};

/// One fused pair.
#[derive(Clone, Copy, Debug)]
struct Pair {
    grad: OpId,
    grad_pos: usize,
    sgd: OpId,
    sgd_pos: usize,
}

/// The fusions of one entry.
#[derive(Debug, Default)]
pub(super) struct UpdateFusion {
    /// Fused pairs by anchor position.
    at_anchor: HashMap<usize, Vec<Pair>>,
    /// Positions of the fused ops (weight gradients and updates): lowered to no call of their
    /// own.
    fused_ops: HashSet<usize>,
    /// The gradient values that get no buffer.
    grads: HashSet<Value>,
    /// Liveness buffers whose last step moves later (to the anchor).
    extended: HashMap<usize, usize>,
}

impl UpdateFusion {
    /// Finds the pairs of `f` over `schedule`.
    pub(super) fn plan(
        module: &Module,
        f: &Function,
        schedule: &Schedule,
        live: &Liveness,
    ) -> UpdateFusion {
        let uses = UseMap::compute(f);
        let pos_of: HashMap<OpId, usize> = schedule
            .ops()
            .iter()
            .enumerate()
            .map(|(p, &id)| (id, p))
            .collect();
        let mut plan = UpdateFusion::default();
        for (grad_pos, &grad) in schedule.ops().iter().enumerate() {
            let data = f.op(grad);
            if !matches!(data.op, Op::ConvWeightGrad { .. }) || data.operands.len() < 2 {
                continue;
            }
            let Some(&r) = data.results.first() else {
                continue;
            };
            let [Use::Operand { op: sgd, index: 0 }] = uses.uses(r) else {
                continue;
            };
            let Some(&sgd_pos) = pos_of.get(sgd) else {
                continue;
            };
            let Op::Sgd {
                param, accumulate, ..
            } = &f.op(*sgd).op
            else {
                continue;
            };
            let trainable = module
                .globals
                .get(param.0.as_str())
                .is_some_and(|g| matches!(g.ty.elem, ElemType::F32 | ElemType::I8));
            if *accumulate > 1 || !trainable || sgd_pos <= grad_pos {
                continue;
            }
            let readers = param_readers(f, schedule, param.0.as_str());
            let anchor = readers
                .iter()
                .copied()
                .filter(|&p| p > grad_pos && p < sgd_pos)
                .max()
                .unwrap_or(grad_pos);
            let operand_buffers: Vec<usize> = data.operands[..2]
                .iter()
                .filter_map(|&v| live.buffer_of(v))
                .collect();
            let overwritten = schedule.ops()[grad_pos + 1..=anchor].iter().any(|&id| {
                f.op(id).results.iter().any(|&v| {
                    live.buffer_of(v)
                        .is_some_and(|b| operand_buffers.contains(&b))
                })
            });
            if overwritten {
                continue;
            }
            for b in operand_buffers {
                let last = plan.extended.entry(b).or_insert(live.buffers()[b].last);
                *last = (*last).max(anchor);
            }
            plan.fused_ops.extend([grad_pos, sgd_pos]);
            plan.grads.insert(r);
            plan.at_anchor.entry(anchor).or_default().push(Pair {
                grad,
                grad_pos,
                sgd: *sgd,
                sgd_pos,
            });
        }
        plan
    }

    /// Whether the op at `pos` is lowered by a fused call (not by itself).
    pub(super) fn is_fused(&self, pos: usize) -> bool {
        self.fused_ops.contains(&pos)
    }

    /// Whether value `v` is a fused gradient (no buffer).
    pub(super) fn is_fused_grad(&self, v: Value) -> bool {
        self.grads.contains(&v)
    }

    /// The last step of liveness buffer `b`, extended to the anchors of the fusions reading it.
    pub(super) fn last_step(&self, b: usize, last: usize) -> usize {
        self.extended.get(&b).map_or(last, |&l| l.max(last))
    }
}

/// The schedule positions of the ops reading global `name` (through its `param` op and views
/// of it).
fn param_readers(f: &Function, schedule: &Schedule, name: &str) -> Vec<usize> {
    let mut values: HashSet<Value> = HashSet::new();
    let mut readers = Vec::new();
    for (pos, &id) in schedule.ops().iter().enumerate() {
        let data = f.op(id);
        if data.op.global().is_some_and(|g| g == name) && !matches!(data.op, Op::Sgd { .. }) {
            values.extend(data.results.iter().copied());
            continue;
        }
        if data.operands.iter().any(|v| values.contains(v)) {
            if mite_ir::analysis::liveness::is_view(&data.op) {
                values.extend(data.results.iter().copied());
            }
            readers.push(pos);
        }
    }
    readers
}

impl EntryLowering<'_> {
    /// Pushes the fused calls anchored at `pos`.
    pub(super) fn lower_fused_updates(
        &mut self,
        fusion: &UpdateFusion,
        pos: usize,
    ) -> Result<(), LowerError> {
        for pair in fusion.at_anchor.get(&pos).into_iter().flatten() {
            let geometry = self.weight_grad_geometry(pair.grad_pos, pair.grad)?;
            let update = self.sgd_call(pair.sgd_pos, pair.sgd, true)?;
            let grad = self.func.op(pair.grad);
            let mut inputs = vec![
                self.buffer(grad.operands[0], pair.grad_pos)?,
                self.buffer(grad.operands[1], pair.grad_pos)?,
            ];
            inputs.extend_from_slice(&update.inputs);
            let taps = geometry.window().kernel[0] * geometry.window().kernel[1];
            let scratch = self.temp(
                format!("{}.grad_taps", self.program.buffer(update.outputs[0]).name),
                BufElem::F32,
                &[taps],
                0,
            );
            self.push(Call {
                kernel: Kernel::ConvWeightSgd {
                    geometry,
                    update: Box::new(update.kernel),
                },
                inputs,
                outputs: update.outputs,
                scratch: Some(scratch),
                loc: update.loc,
            });
        }
        Ok(())
    }
}
