//! Replacing a model's classifier by a fresh one for a new number of classes (transfer learning).

use mite_ir::infer::infer_result_types;
use mite_ir::{ElemType, GlobalData, Module, Quant, TensorData, TensorType};
use mite_zoo::rng::SplitMix64;

/// Replaces the weight and bias of the op named `classifier` in `forward` by fresh ones for
/// `classes` outputs: weights uniform in `±1/√fan_in` (seeded), biases zero. int8 classifiers get
/// per-output-channel symmetric int8 weights (`s = max|w| / 127`) and int32 biases with scale
/// `s_x · s_w[c]`; the logits keep their quantization. Types after the classifier are re-inferred.
pub fn replace_classifier(module: &mut Module, classes: usize, seed: u64) -> Result<(), String> {
    if classes == 0 {
        return Err("--classes must be at least 1".into());
    }
    let func = module
        .function("forward")
        .ok_or("the model has no function @forward")?;
    let id = *func
        .layout()
        .iter()
        .find(|&&id| func.op(id).loc.name.as_deref() == Some("classifier"))
        .ok_or("the model has no op named `classifier` to replace")?;
    let data = func.op(id);
    let global_of = |k: usize| -> Option<String> {
        func.global_read(*data.operands.get(k)?).map(str::to_string)
    };
    let (Some(weight), bias) = (global_of(1), global_of(2)) else {
        return Err("the classifier's weight is not a parameter".into());
    };
    let input_scale = func.ty(data.operands[0]).quant.as_ref().map(|q| q.scale(0));
    let w_ty = module.globals[&weight].ty.clone();
    let fan_in: usize = w_ty.shape[1..].iter().product();
    let mut shape = w_ty.shape.clone();
    shape[0] = classes;
    let mut rng = SplitMix64::new(seed ^ 0x6d69_7465_6865_6164);
    let bound = 1.0 / (fan_in as f32).sqrt();
    let real: Vec<f32> = (0..classes * fan_in)
        .map(|_| (2.0 * rng.next_f32() - 1.0) * bound)
        .collect();
    let (w_new, w_scales) = match w_ty.elem {
        ElemType::F32 => (GlobalData::Inline(TensorData::F32(real)), None),
        ElemType::I8 => {
            let mut scales = Vec::with_capacity(classes);
            let mut q = Vec::with_capacity(real.len());
            for row in real.chunks(fan_in) {
                let max = row
                    .iter()
                    .fold(0f32, |m, v| m.max(v.abs()))
                    .max(f32::MIN_POSITIVE);
                let s = max / 127.0;
                scales.push(s);
                q.extend(
                    row.iter()
                        .map(|v| (v / s).round_ties_even().clamp(-127.0, 127.0) as i8),
                );
            }
            (GlobalData::Inline(TensorData::I8(q)), Some(scales))
        }
        other => return Err(format!("cannot replace a classifier with {other} weights")),
    };
    let g = module
        .globals
        .get_mut(&weight)
        .ok_or("classifier weight vanished")?;
    g.ty = match &w_scales {
        Some(s) => TensorType::quantized(&shape, ElemType::I8, Quant::per_channel(0, s.clone())),
        None => TensorType::f32(&shape),
    };
    g.data = w_new;
    if let Some(bias) = bias {
        let g = module
            .globals
            .get_mut(&bias)
            .ok_or("classifier bias vanished")?;
        g.ty = match (&w_scales, g.ty.elem) {
            (Some(s), ElemType::I32) => {
                let sx = input_scale.ok_or("int8 classifier without input quantization")?;
                let bias_scales = s.iter().map(|w| sx * w).collect();
                TensorType::quantized(
                    &[classes],
                    ElemType::I32,
                    Quant::per_channel(0, bias_scales),
                )
            }
            (None, ElemType::F32) => TensorType::f32(&[classes]),
            (_, other) => return Err(format!("cannot replace a classifier bias of type {other}")),
        };
        g.data = GlobalData::Inline(TensorData::zeros(g.ty.elem, classes));
    }
    retype(module)
}

/// Re-infers the result types of `forward` in program order (after a parameter changed shape).
fn retype(module: &mut Module) -> Result<(), String> {
    let Module {
        globals, functions, ..
    } = module;
    let func = functions
        .iter_mut()
        .find(|f| f.name == "forward")
        .ok_or("no @forward")?;
    let ids: Vec<_> = func.layout().to_vec();
    for id in ids {
        let data = func.op(id);
        let operand_types: Vec<&TensorType> = data.operands.iter().map(|&v| func.ty(v)).collect();
        let inferred = infer_result_types(&data.op, &operand_types, globals)
            .map_err(|e| format!("after replacing the classifier, `{}`: {e}", data.op.name()))?;
        let Some(inferred) = inferred else { continue };
        let chosen = data.op.result_quant_is_chosen();
        let results = data.results.clone();
        for (r, ty) in results.into_iter().zip(inferred) {
            let ty = if chosen {
                ty.with_quant(func.ty(r).quant.clone())
            } else {
                ty
            };
            func.set_ty(r, ty);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_model_gets_a_seven_class_head() {
        let mut m = mite_zoo::tiny_int8_cnn();
        replace_classifier(&mut m, 7, 1).unwrap();
        mite_ir::verify_module(&m).unwrap();
        let f = m.function("forward").unwrap();
        assert_eq!(f.ty(f.outputs()[0]).shape.as_slice(), &[1, 7]);
        let again = {
            let mut m2 = mite_zoo::tiny_int8_cnn();
            replace_classifier(&mut m2, 7, 1).unwrap();
            m2.globals.clone()
        };
        assert_eq!(again, m.globals, "seeded: the same head twice");
        let mut f32_model = mite_zoo::tiny_float_cnn();
        replace_classifier(&mut f32_model, 3, 1).unwrap();
        mite_ir::verify_module(&f32_model).unwrap();
        assert!(replace_classifier(&mut f32_model, 0, 1).is_err());
    }
}

/// Turns an int8 classifier into a float one (the paper's fp32 head, +2.3 % on average): its
/// weight and bias become f32 parameters holding their real values, its input is dequantized,
/// and it computes float logits directly (the `q.dequantize` that followed it goes away).
///
/// Requires the `classifier` to be a `q.conv2d` or `q.linear` whose only user is a
/// `q.dequantize`; a float classifier is left as it is.
pub fn float_classifier(module: &mut Module) -> Result<(), String> {
    use mite_ir::analysis::UseMap;
    use mite_ir::{Loc, Op, Symbol};
    let Module {
        globals, functions, ..
    } = module;
    let func = functions
        .iter_mut()
        .find(|f| f.name == "forward")
        .ok_or("the model has no function @forward")?;
    let Some(&id) = func
        .layout()
        .iter()
        .find(|&&id| func.op(id).loc.name.as_deref() == Some("classifier"))
    else {
        return Err("the model has no op named `classifier`".into());
    };
    let data = func.op(id).clone();
    let float_op = match &data.op {
        Op::QConv2d {
            strides,
            pads,
            dilations,
            groups,
            ..
        } => Op::Conv2d {
            strides: strides.clone(),
            pads: pads.clone(),
            dilations: dilations.clone(),
            groups: *groups,
        },
        Op::QLinear { .. } => Op::Linear {},
        Op::Conv2d { .. } | Op::Linear {} => return Ok(()),
        other => {
            return Err(format!(
                "the classifier is `{}`, not a conv or linear layer",
                other.name()
            ))
        }
    };
    let uses = UseMap::compute(func);
    let users = uses.users(data.result());
    let [deq] = users[..] else {
        return Err("the int8 classifier's output must feed exactly one q.dequantize".into());
    };
    if !matches!(func.op(deq).op, Op::Dequantize {}) || uses.is_output(data.result()) {
        return Err("the int8 classifier's output must feed exactly one q.dequantize".into());
    }
    // Parameters: real values in f32 (per-channel scales along the quantized axis).
    let mut float_params = Vec::new();
    let mut old_reads = Vec::new();
    for &v in &data.operands[1..] {
        let (Some(read), Some(name)) =
            (func.defining_op(v), func.global_read(v).map(str::to_string))
        else {
            return Err("the classifier's weight and bias must be parameters".into());
        };
        if uses.num_uses(v) != 1 {
            return Err("the classifier's parameters must not be used elsewhere".into());
        }
        old_reads.push(read);
        let g = globals
            .get_mut(&name)
            .ok_or("unknown classifier parameter")?;
        if g.ty.quant.is_some() {
            let real = match &g.data {
                GlobalData::Inline(d) => d.real_values(&g.ty),
                _ => None,
            }
            .ok_or_else(|| format!("classifier parameter @{name} has no data to convert"))?;
            g.data = GlobalData::Inline(TensorData::F32(real));
            g.ty = TensorType::f32(&g.ty.shape);
        }
        float_params.push(name);
    }
    let pos = func.position(id).ok_or("classifier not linked")?;
    let x = data.operands[0];
    let x_ty = TensorType::f32(&func.ty(x).shape);
    let xf_op = func.insert_op(pos, Op::Dequantize {}, &[x], vec![x_ty], Loc::default());
    let mut operands = vec![func.op(xf_op).result()];
    for (k, name) in float_params.iter().enumerate() {
        let ty = globals[name].ty.clone();
        let read = func.insert_op(
            pos + 1 + k,
            Op::Param {
                global: Symbol(name.clone()),
            },
            &[],
            vec![ty],
            Loc::default(),
        );
        operands.push(func.op(read).result());
    }
    let out_ty = TensorType::f32(&func.ty(data.result()).shape);
    let new = func.insert_op(
        pos + 1 + float_params.len(),
        float_op,
        &operands,
        vec![out_ty],
        data.loc.clone(),
    );
    let logits = func.op(new).result();
    let deq_result = func.op(deq).result();
    func.replace_all_uses(deq_result, logits);
    func.erase_op(deq);
    func.erase_op(id);
    for read in old_reads {
        func.erase_op(read);
    }
    func.compact();
    Ok(())
}

#[cfg(test)]
mod float_head_tests {
    use super::*;

    #[test]
    fn int8_head_becomes_float() {
        let mut m = mite_zoo::tiny_int8_cnn();
        float_classifier(&mut m).unwrap();
        mite_ir::verify_module(&m).unwrap();
        let f = m.function("forward").unwrap();
        let head = f
            .layout()
            .iter()
            .find(|&&id| f.op(id).loc.name.as_deref() == Some("classifier"))
            .unwrap();
        assert!(matches!(
            f.op(*head).op,
            mite_ir::Op::Conv2d { .. } | mite_ir::Op::Linear {}
        ));
        assert_eq!(f.ty(f.outputs()[0]).elem, ElemType::F32);
        // The float head computes what the int8 head approximated: compare on a random input.
        let int8 = mite_zoo::tiny_int8_cnn();
        let x = mite_interp::Tensor::f32(
            &[1, 3, 32, 32],
            (0..3072)
                .map(|i| ((i * 37) % 255) as f32 / 127.5 - 1.0)
                .collect(),
        )
        .unwrap();
        let a = mite_interp::Interpreter::new(&int8)
            .unwrap()
            .run("forward", std::slice::from_ref(&x))
            .unwrap()[0]
            .to_real();
        let b = mite_interp::Interpreter::new(&m)
            .unwrap()
            .run("forward", &[x])
            .unwrap()[0]
            .to_real();
        let worst = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        let scale = a.iter().fold(0f32, |s, v| s.max(v.abs())).max(1e-3);
        assert!(worst <= 0.05 * scale + 0.05, "int8 {a:?} vs float {b:?}");
        // Idempotent on a float head.
        float_classifier(&mut m).unwrap();
    }
}
