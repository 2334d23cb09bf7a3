//! Trained weight slices in SRAM, frozen remainders in flash.
//!
//! A sparse-update scheme entry `i x r` with `r < 1` trains the first `⌈r · c_in⌉` input
//! channels of convolution `i`'s weight: its `optim.sgd` takes the gradient of that slice
//! (`slice_axis = 1`, `slice_start = 0`). Such a weight is lowered as two buffers
//! ([`mite_ir::program::WeightSplit`]): the trained slice `[c_out, kept, kh, kw]` in SRAM
//! ([`Storage::Param`]) and the frozen remainder `[c_out, c_in − kept, kh, kw]` in flash
//! ([`Storage::Flash`] of the same global); the calls reading it are
//! [`Kernel::SplitWeight`](mite_ir::program::Kernel::SplitWeight) convolutions, its update
//! (alone or fused with its weight gradient) covers the slice as a whole, and its optimizer
//! state (momentum, accumulator) is slice-sized too.
//!
//! A weight is split only when every reader can take the two parts: an `i8` weight of rank 4,
//! quantized per tensor or per output channel, read only as the weight operand of dense
//! (`groups = 1`) `q.conv2d` and `grad.conv2d_input` ops (the input gradient then runs out of
//! place) and updated by one `optim.sgd` of its first input channels. Any other slice (along
//! output channels, not starting at channel 0) or reader keeps the whole weight in SRAM, as
//! before.

use std::collections::HashMap;

use mite_ir::analysis::{Use, UseMap};
use mite_ir::{ElemType, Function, Module, Op, Quant};

/// The weights to split: global name → trained input channels; and the optimizer state
/// globals of their updates → the slice's shape.
#[derive(Clone, Debug, Default)]
pub(super) struct Splits {
    /// Trained input channels of each split weight.
    pub(super) kept: HashMap<String, usize>,
    /// The slice shape of each split weight's optimizer state.
    pub(super) state_shapes: HashMap<String, Vec<usize>>,
}

impl Splits {
    /// The splits of `module`'s training step `train_step`, checked against every function in
    /// `functions` that reads the weights.
    pub(super) fn plan(module: &Module, train_step: &Function, functions: &[&Function]) -> Splits {
        let mut splits = Splits::default();
        let mut updates: HashMap<&str, usize> = HashMap::new();
        for &id in train_step.layout() {
            if let Op::Sgd { param, .. } = &train_step.op(id).op {
                *updates.entry(param.0.as_str()).or_default() += 1;
            }
        }
        for &id in train_step.layout() {
            let data = train_step.op(id);
            let Op::Sgd {
                param,
                slice_axis: 1,
                slice_start: 0,
                momentum_state,
                accum_state,
                ..
            } = &data.op
            else {
                continue;
            };
            let name = param.0.as_str();
            let Some(g) = module.globals.get(name) else {
                continue;
            };
            let ty = &g.ty;
            let per_out_channel = match &ty.quant {
                Some(Quant::PerTensor { .. }) => true,
                Some(Quant::PerChannel { axis, .. }) => *axis == 0,
                None => false,
            };
            let Some(&grad) = data.operands.first() else {
                continue;
            };
            let grad = &train_step.ty(grad).shape;
            let fits = ty.elem == ElemType::I8
                && per_out_channel
                && ty.rank() == 4
                && grad.len() == 4
                && grad[0] == ty.shape[0]
                && grad[2..] == ty.shape[2..]
                && grad[1] > 0
                && grad[1] < ty.shape[1]
                && updates.get(name) == Some(&1);
            if !fits || !functions.iter().all(|f| reads_split_weight(f, name)) {
                continue;
            }
            splits.kept.insert(name.to_string(), grad[1]);
            for s in [momentum_state, accum_state].into_iter().flatten() {
                splits.state_shapes.insert(s.0.clone(), grad.to_vec());
            }
        }
        splits
    }
}

/// Whether every reader of global `name` in `f` is a dense convolution or input gradient taking
/// it as its weight (or the update of it).
fn reads_split_weight(f: &Function, name: &str) -> bool {
    let uses = UseMap::compute(f);
    f.layout().iter().all(|&id| {
        let data = f.op(id);
        if !matches!(&data.op, Op::Param { global } if global.0 == name) {
            return !matches!(&data.op, Op::Const { global } if global.0 == name);
        }
        data.results.iter().all(|&r| {
            uses.uses(r).iter().all(|u| match u {
                Use::Operand { op, index: 1 } => matches!(
                    f.op(*op).op,
                    Op::QConv2d { groups: 1, .. } | Op::ConvInputGrad { groups: 1, .. }
                ),
                _ => false,
            })
        })
    })
}
