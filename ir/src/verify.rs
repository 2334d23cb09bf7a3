//! The verifier: checks every invariant of a module and reports all violations with locations.
//!
//! Invariants checked, in order:
//!
//! **Globals**
//! 1. Each global's type is well formed ([`check_type`]): quantization only on `i8`/`i32`,
//!    positive finite scales, zero points in range, a per-channel axis inside the shape with one
//!    scale and zero point per channel.
//! 2. Inline data has the element type of the declared type and exactly as many elements.
//!
//! **Functions**
//! 3. Function names are unique in the module.
//! 4. Argument values are defined as arguments, at their position, with well-formed types.
//!
//! **Ops** (each in program order)
//! 5. An op is linked into the program order at most once and is not erased.
//! 6. Every operand is a value of this function, defined before the op (an argument or a result
//!    of an earlier op): straight-line SSA dominance.
//! 7. Every result is defined by this op at its position, and is defined nowhere else.
//! 8. The number of operands is within the op's arity; built-in ops have as many results as the
//!    op table says (one, or none for `optim.` updates).
//! 9. Result types are well formed, and equal the types inferred from the operands and
//!    attributes ([`infer_result_types`]): shapes, element types, quantization. Where the result
//!    quantization is a free choice ([`Op::result_quant_is_chosen`]), the declared result must
//!    carry per-tensor quantization and match the inferred shape and element type.
//! 10. `param` / `const` read an existing global of the matching kind, with its type; `optim.`
//!     ops update an existing parameter with a gradient of its shape, and name the optimizer
//!     state they need (`momentum_state = @..` with momentum, `accum_state = @..` with
//!     accumulation), declared `state` of the parameter's shape in f32.
//! 11. The int32 bias of `q.conv2d` / `q.linear`, when quantized, has scale `s_x · s_w[c]` per
//!     output channel (relative tolerance 1e-4) and zero point 0.
//!
//! **Outputs**
//! 12. Every output is a value of this function defined by an argument or a linked op.
//!
//! **Effects**
//! 13. No value read from a parameter (a `param` result or a view of one) is used, as an operand
//!     or an output, after an op that writes that parameter ([`Op::effects`]); see
//!     `verify/param_reads.rs`.

mod param_reads;

use crate::infer::{check_type, infer_result_types};
use crate::module::{
    Function, GlobalData, GlobalKind, Module, OpData, OpId, Trainable, Value, ValueDef,
};
use crate::ops::Op;
use crate::types::{Quant, TensorType};
use std::collections::HashSet;
use std::fmt;

/// One violated invariant, with where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// `line:column` of the op (or nothing for built or global-level errors).
    pub line_col: Option<(u32, u32)>,
    /// Where: `@func op #3 nn.conv2d "conv"`, `@func`, or `global @name`.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((l, c)) = self.line_col {
            write!(f, "{l}:{c}: ")?;
        }
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// All violations found in a module (never empty when returned as an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyErrors(pub Vec<VerifyError>);

impl fmt::Display for VerifyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for VerifyErrors {}

/// Verifies `module`; returns every violation found.
pub fn verify_module(module: &Module) -> Result<(), VerifyErrors> {
    let mut errors = Vec::new();
    for (name, g) in &module.globals {
        let location = format!("global @{name}");
        let mut push = |message: String| {
            errors.push(VerifyError {
                line_col: g.line_col,
                location: location.clone(),
                message,
            })
        };
        if let Err(e) = check_type(&g.ty) {
            push(e.0);
        }
        if let GlobalKind::Param {
            trainable: Trainable::Channels { axis, start, len },
        } = g.kind
        {
            match g.ty.shape.get(axis) {
                Some(&n) if len > 0 && start + len <= n => {}
                _ => push(format!(
                    "trainable channels {start}:{} along axis {axis} are not inside {}",
                    start + len,
                    g.ty
                )),
            }
        }
        if let GlobalData::Inline(d) = &g.data {
            let need = crate::limits::checked_product(&g.ty.shape);
            if d.elem() != g.ty.elem || Some(d.len()) != need {
                push(format!(
                    "data has {} {} elements but the type {} needs {} {} elements",
                    d.len(),
                    d.elem(),
                    g.ty,
                    need.map_or("too many".to_string(), |n| n.to_string()),
                    g.ty.elem
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    for func in &module.functions {
        if !seen.insert(func.name.as_str()) {
            errors.push(VerifyError {
                line_col: func.line_col,
                location: format!("@{}", func.name),
                message: "a function of this name is defined twice".into(),
            });
        }
        verify_function(module, func, &mut errors);
        param_reads::check(func, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(VerifyErrors(errors))
    }
}

fn op_location(func: &Function, index: usize, data: &OpData) -> String {
    let mut s = format!("@{} op #{index} `{}`", func.name, data.op.name());
    if let Some(n) = &data.loc.name {
        s.push_str(&format!(" \"{n}\""));
    }
    s
}

fn verify_function(module: &Module, func: &Function, errors: &mut Vec<VerifyError>) {
    let fn_error = |message: String| VerifyError {
        line_col: func.line_col,
        location: format!("@{}", func.name),
        message,
    };
    let mut defined: HashSet<Value> = HashSet::new();
    for (i, &a) in func.args().iter().enumerate() {
        if !func.contains_value(a) {
            errors.push(fn_error(format!(
                "argument {i} is not a value of this function"
            )));
            continue;
        }
        if func.value(a).def != ValueDef::Arg(i) {
            errors.push(fn_error(format!(
                "argument {i} is not defined as argument {i}"
            )));
        }
        if let Err(e) = check_type(func.ty(a)) {
            errors.push(fn_error(format!("argument {i}: {}", e.0)));
        }
        defined.insert(a);
    }
    let mut linked: HashSet<OpId> = HashSet::new();
    for (index, &id) in func.layout().iter().enumerate() {
        let data = func.op(id);
        let location = op_location(func, index, data);
        let line_col = data.loc.line_col;
        let mut push = |message: String| {
            errors.push(VerifyError {
                line_col,
                location: location.clone(),
                message,
            })
        };
        if !linked.insert(id) {
            push("the op appears twice in program order".into());
            continue;
        }
        if data.is_erased() {
            push("an erased op is still in program order".into());
        }
        let mut operands_ok = true;
        for (k, &v) in data.operands.iter().enumerate() {
            if !func.contains_value(v) {
                push(format!("operand {k} is not a value of this function"));
                operands_ok = false;
            } else if !defined.contains(&v) {
                push(format!("operand {k} is used before it is defined"));
                operands_ok = false;
            }
        }
        let mut results_ok = true;
        for (k, &r) in data.results.iter().enumerate() {
            if !func.contains_value(r) || func.value(r).def != ValueDef::Result(id, k) {
                push(format!("result {k} is not defined by this op"));
                results_ok = false;
            } else if !defined.insert(r) {
                push(format!("result {k} is defined twice"));
            } else if let Err(e) = check_type(func.ty(r)) {
                push(format!("result {k}: {}", e.0));
                results_ok = false;
            }
        }
        if let Some(n) = data.op.num_results() {
            if data.results.len() != n {
                push(format!(
                    "expected {n} results, found {}",
                    data.results.len()
                ));
                results_ok = false;
            }
        }
        if !(operands_ok && results_ok) {
            continue;
        }
        let operand_types: Vec<&TensorType> = data.operands.iter().map(|&v| func.ty(v)).collect();
        match infer_result_types(&data.op, &operand_types, &module.globals) {
            Err(e) => push(e.0),
            Ok(None) => {}
            Ok(Some(inferred)) => {
                let (Some(want), Some(&result)) = (inferred.first(), data.results.first()) else {
                    continue;
                };
                let declared = func.ty(result);
                if data.op.result_quant_is_chosen() {
                    if declared.shape != want.shape || declared.elem != want.elem {
                        push(format!(
                            "result type: expected {} with per-tensor quantization, found {declared}",
                            want
                        ));
                    } else if !matches!(declared.quant, Some(Quant::PerTensor { .. })) {
                        push(format!(
                            "result type: expected per-tensor quantization, found {declared}"
                        ));
                    }
                } else if declared != want {
                    push(format!("result type: expected {want}, found {declared}"));
                }
                if let Some(message) = check_bias_scale(&data.op, &operand_types) {
                    push(message);
                }
            }
        }
    }
    for (i, &v) in func.outputs().iter().enumerate() {
        if !func.contains_value(v) || !defined.contains(&v) {
            errors.push(fn_error(format!(
                "output {i} is not defined by an argument or an op"
            )));
        }
    }
}

fn check_bias_scale(op: &Op, operands: &[&TensorType]) -> Option<String> {
    if !matches!(op, Op::QConv2d { .. } | Op::QLinear { .. }) {
        return None;
    }
    let (x, w, b) = (operands[0], operands[1], operands.get(2)?);
    let bq = b.quant.as_ref()?;
    let (xq, wq) = (x.quant.as_ref()?, w.quant.as_ref()?);
    let channels = b.shape.first().copied().unwrap_or(1);
    for c in 0..channels {
        let want = xq.scale(0) * wq.scale(if wq.is_per_tensor() { 0 } else { c });
        let got = bq.scale(if bq.is_per_tensor() { 0 } else { c });
        if ((got - want) / want).abs() > 1e-4
            || bq.zero_point(if bq.is_per_tensor() { 0 } else { c }) != 0
        {
            return Some(format!(
                "operand 2 (bias): channel {c} must have scale s_x · s_w[{c}] = {want:?} and zero point 0, found {b}"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::Builder;
    use crate::module::Loc;
    use crate::types::{ElemType, TensorType};

    #[test]
    fn well_typed_module_passes() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[1, 4]));
        let y = b.op(Op::Relu {}, &[x]).unwrap();
        b.ret(&[y]);
        verify_module(&m).unwrap();
    }

    #[test]
    fn reports_all_errors_with_locations() {
        let mut m = Module::new("m");
        let f = {
            let mut b = Builder::new(&mut m, "f");
            b.arg("x", TensorType::f32(&[1, 4]));
            0
        };
        let func = &mut m.functions[f];
        let x = func.args()[0];
        let loc = Loc {
            name: Some("r".into()),
            line_col: Some((3, 5)),
        };
        // Wrong result type.
        let a = func.append_op(Op::Relu {}, &[x], vec![TensorType::f32(&[1, 5])], loc);
        // Wrong operand element type for softmax cross-entropy labels.
        let a_out = func.op(a).result();
        func.append_op(
            Op::SoftmaxCrossEntropy {},
            &[a_out, x],
            vec![TensorType::f32(&[])],
            Loc::default(),
        );
        let errs = verify_module(&m).unwrap_err();
        assert_eq!(errs.0.len(), 2, "{errs}");
        assert_eq!(
            errs.0[0].to_string(),
            "3:5: @f op #0 `nn.relu` \"r\": result type: expected tensor<1x4xf32>, found tensor<1x5xf32>"
        );
        assert!(
            errs.0[1].message.contains("expected rank 2")
                || errs.0[1].message.contains("expected an i32"),
            "{}",
            errs.0[1]
        );
    }

    #[test]
    fn use_before_definition() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[2]));
        let y = b.op(Op::Relu {}, &[x]).unwrap();
        let z = b.op(Op::Relu {}, &[y]).unwrap();
        b.ret(&[z]);
        let f = &mut m.functions[0];
        let first = f.layout()[0];
        f.op_mut(first).operands[0] = z;
        let errs = verify_module(&m).unwrap_err();
        assert!(
            errs.to_string()
                .contains("operand 0 is used before it is defined"),
            "{errs}"
        );
    }

    #[test]
    fn bad_global_data() {
        let mut m = Module::new("m");
        m.add_const(
            "c",
            TensorType::new(&[3], ElemType::I32),
            GlobalData::Inline(crate::TensorData::I32(vec![1])),
        );
        let errs = verify_module(&m).unwrap_err();
        assert_eq!(
            errs.0[0].to_string(),
            "global @c: data has 1 i32 elements but the type tensor<3xi32> needs 3 i32 elements"
        );
    }
}
