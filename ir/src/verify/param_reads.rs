//! Invariant 13: no value read from a parameter is used after that parameter's update.
//!
//! A `param` read names the parameter's storage (the lowered program reads the SRAM copy in
//! place), and so do its views (`nn.reshape`, `nn.flatten`). Once an op that writes the
//! parameter ([`Op::effects`]: `optim.sgd`) has run, such a value would see the updated data:
//! every later use of it (as an operand, or as a function output) is an error. Reading the
//! parameter again with a new `param` op after the update is fine.

use super::{op_location, VerifyError};
use crate::analysis::liveness::is_view;
use crate::module::{Function, Value};
use crate::ops::Op;
use std::collections::HashMap;

/// Appends a [`VerifyError`] for every use of a parameter read after the parameter's update.
pub(super) fn check(func: &Function, errors: &mut Vec<VerifyError>) {
    // The parameter each value reads (a `param` result or a view of one) and where it was read.
    let mut read_of: HashMap<Value, (&str, usize)> = HashMap::new();
    // For each updated parameter, the positions of its updates.
    let mut updates: HashMap<&str, Vec<usize>> = HashMap::new();
    let update_after = |updates: &HashMap<&str, Vec<usize>>, global: &str, read: usize| {
        updates
            .get(global)
            .and_then(|at| at.iter().copied().find(|&u| u > read))
    };
    for (index, &id) in func.layout().iter().enumerate() {
        let data = func.op(id);
        for (k, v) in data.operands.iter().enumerate() {
            let Some(&(global, read)) = read_of.get(v) else {
                continue;
            };
            if let Some(at) = update_after(&updates, global, read) {
                errors.push(VerifyError {
                    line_col: data.loc.line_col,
                    location: op_location(func, index, data),
                    message: format!(
                        "operand {k} was read from @{global} before its update at op #{at}; \
                         read the parameter again after the update, or use it before"
                    ),
                });
            }
        }
        match &data.op {
            Op::Param { global } => {
                for &r in &data.results {
                    read_of.insert(r, (global.0.as_str(), index));
                }
            }
            op if is_view(op) => {
                if let Some(&read) = data.operands.first().and_then(|v| read_of.get(v)) {
                    for &r in &data.results {
                        read_of.insert(r, read);
                    }
                }
            }
            op => {
                for global in op.effects().writes {
                    updates.entry(global).or_default().push(index);
                }
            }
        }
    }
    for (i, v) in func.outputs().iter().enumerate() {
        let Some(&(global, read)) = read_of.get(v) else {
            continue;
        };
        if let Some(at) = update_after(&updates, global, read) {
            errors.push(VerifyError {
                line_col: func.line_col,
                location: format!("@{}", func.name),
                message: format!(
                    "output {i} was read from @{global} before its update at op #{at}"
                ),
            });
        }
    }
}
