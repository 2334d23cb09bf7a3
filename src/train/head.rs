//! Replacing a model's classifier by a fresh one for a new number of classes (transfer learning).

use mite_ir::infer::infer_result_types;
use mite_ir::{ElemType, GlobalData, Module, Quant, TensorData, TensorType};

/// A small deterministic generator (splitmix64), so a seed gives the same head everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[-bound, bound)`.
    fn uniform(&mut self, bound: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * bound
    }
}

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
        let v = *data.operands.get(k)?;
        match func.value(v).def {
            mite_ir::ValueDef::Result(op, _) => func.op(op).op.global().map(str::to_string),
            mite_ir::ValueDef::Arg(_) => None,
        }
    };
    let (Some(weight), bias) = (global_of(1), global_of(2)) else {
        return Err("the classifier's weight is not a parameter".into());
    };
    let input_scale = func.ty(data.operands[0]).quant.as_ref().map(|q| q.scale(0));
    let w_ty = module.globals[&weight].ty.clone();
    let fan_in: usize = w_ty.shape[1..].iter().product();
    let mut shape = w_ty.shape.clone();
    shape[0] = classes;
    let mut rng = SplitMix64(seed ^ 0x6d69_7465_6865_6164);
    let bound = 1.0 / (fan_in as f32).sqrt();
    let real: Vec<f32> = (0..classes * fan_in).map(|_| rng.uniform(bound)).collect();
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
