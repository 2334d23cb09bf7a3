//! `dge`: dead-gradient elimination — the paper's backward-graph pruning (NOTES §4 step 2).
//!
//! Runs on a training step built by `autodiff` (function `train-step`, default `train_step`):
//! removes the `optim.` update of every parameter that is now frozen (`Trainable::None`: a
//! scheme applied after the step was built), then every pure op of the step whose results no
//! longer reach an update or the returned loss — weight and input gradients nobody needs, the
//! masks and saved activations only they read — transitively; and the optimizer state globals
//! no update uses any more. The forward computation of the loss is never removed (the step
//! returns it).
//!
//! So `autodiff` on the full model followed by a scheme and `dge` gives the same backward graph
//! as `autodiff` on the model with the scheme applied first. Partial-channel trainability is not
//! introduced here: a parameter marked `Trainable::Channels` after the step was built keeps its
//! whole-tensor update (apply the scheme before `autodiff` for sub-operator slicing).
//!
//! Statistics: `updates-removed`, `ops-removed` (all ops removed, updates included),
//! `backward-ops-removed`, `masks-removed`, `mask-bytes-removed` (masks the backward pass no
//! longer reads), `saved-activations-removed`, `saved-activation-bytes-removed` (forward values
//! it no longer reads), `state-removed`.

use super::autodiff::saved;
use super::dce::remove_dead_ops;
use crate::pass::{Pass, PassError};
use crate::statistics::Statistics;
use mite_ir::{Function, GlobalKind, Module, Op};
use std::collections::HashSet;

/// The `dge` pass (see the module documentation).
#[derive(Clone, Debug)]
pub struct DeadGradientElimination {
    /// The training step pruned.
    pub train_step: String,
}

impl Default for DeadGradientElimination {
    fn default() -> Self {
        DeadGradientElimination {
            train_step: "train_step".into(),
        }
    }
}

/// The end of the forward section: just after the (last) loss op.
fn forward_end(func: &Function) -> Option<usize> {
    func.layout()
        .iter()
        .rposition(|&id| matches!(func.op(id).op, Op::SoftmaxCrossEntropy {} | Op::MseLoss {}))
        .map(|i| i + 1)
}

impl Pass for DeadGradientElimination {
    fn name(&self) -> &str {
        "dge"
    }

    fn description(&self) -> &str {
        "Dead-gradient elimination: drops updates of frozen parameters and the gradients, masks and saved activations only they needed"
    }

    fn set_option(&mut self, key: &str, value: &str) -> Result<(), PassError> {
        match key {
            "train-step" => self.train_step = value.to_string(),
            _ => return Err(PassError::unknown_option("dge", key, &["train-step"])),
        }
        Ok(())
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let frozen: HashSet<String> = module
            .globals
            .iter()
            .filter(|(_, g)| matches!(g.kind, GlobalKind::Param { .. }) && !g.kind.is_trainable())
            .map(|(name, _)| name.clone())
            .collect();
        let name = self.train_step.clone();
        let func = module.function_mut(&name).ok_or_else(|| {
            PassError::failed("dge", format!("no function @{name}: run `autodiff` first"))
        })?;
        let end = forward_end(func).ok_or_else(|| {
            PassError::failed(
                "dge",
                format!("@{name} has no loss op (nn.softmax_cross_entropy or nn.mse_loss)"),
            )
        })?;
        let args = func.args().to_vec();
        let before = saved(func, end, &args);
        let ops_before = func.num_ops();
        let updates_removed = func
            .erase_ops_where(|_, data| data.op.updated_param().is_some_and(|p| frozen.contains(p)));
        remove_dead_ops(func);
        let ops_removed = ops_before - func.num_ops();
        let end = forward_end(func).unwrap_or(end);
        let after = saved(func, end, &args);
        let updated: HashSet<String> = module
            .functions
            .iter()
            .flat_map(|f| f.layout().iter().map(move |&id| &f.op(id).op))
            .filter_map(|op| op.updated_param().map(str::to_string))
            .collect();
        let globals_before = module.globals.len();
        module.globals.retain(|g, data| {
            data.kind != GlobalKind::State
                || [".momentum", ".grad_acc"]
                    .iter()
                    .all(|s| g.strip_suffix(s).is_none_or(|p| updated.contains(p)))
        });
        let state_removed = globals_before - module.globals.len();
        let diff = |a: usize, b: usize| a.saturating_sub(b) as u64;
        stats.add("updates-removed", updates_removed as u64);
        stats.add("ops-removed", ops_removed as u64);
        stats.add(
            "backward-ops-removed",
            diff(before.backward_ops, after.backward_ops),
        );
        stats.add("masks-removed", diff(before.masks, after.masks));
        stats.add(
            "mask-bytes-removed",
            diff(before.mask_bytes, after.mask_bytes),
        );
        stats.add(
            "saved-activations-removed",
            diff(before.activations, after.activations),
        );
        stats.add(
            "saved-activation-bytes-removed",
            diff(before.activation_bytes, after.activation_bytes),
        );
        stats.add("state-removed", state_removed as u64);
        Ok(ops_removed + state_removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::{build_training_step, TrainConfig};
    use crate::scheme::Scheme;
    use crate::testutil::*;

    /// Full training step, then `bias:2` applied and pruned, equals `bias:2` built directly.
    #[test]
    fn pruning_the_full_step_equals_building_the_scheme() {
        let scheme = Scheme::parse("bias:2").unwrap();
        let mut direct = mite_zoo::tiny_int8_cnn();
        scheme.apply(&mut direct).unwrap();
        build_training_step(&mut direct, &TrainConfig::default()).unwrap();

        let mut pruned = mite_zoo::tiny_int8_cnn();
        Scheme::Full.apply(&mut pruned).unwrap();
        build_training_step(&mut pruned, &TrainConfig::default()).unwrap();
        scheme.apply(&mut pruned).unwrap();
        let stats = run_ok(&mut DeadGradientElimination::default(), &mut pruned);
        assert!(stats.get("updates-removed") > 0);
        assert!(stats.get("saved-activations-removed") > 0);
        assert!(stats.get("backward-ops-removed") > 0);

        let ops = |m: &Module| -> Vec<String> {
            let f = m.function("train_step").unwrap();
            f.layout()
                .iter()
                .map(|&id| f.op(id).op.name().to_string())
                .collect()
        };
        assert_eq!(ops(&pruned), ops(&direct));
        mite_ir::verify_module(&pruned).unwrap();
        assert_idempotent(&mut DeadGradientElimination::default(), &pruned);
    }

    #[test]
    fn without_a_training_step_it_says_so() {
        let mut m = mite_zoo::tiny_int8_cnn();
        let err = DeadGradientElimination::default()
            .run(&mut m, &mut Statistics::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no function @train_step"), "{err}");
    }
}
