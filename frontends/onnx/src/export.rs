//! Writing trained weights back into the ONNX model they came from.
//!
//! [`export_weights`] copies the current data of every parameter of a module imported with
//! [`crate::import::import_model`] into the initializer of the same name, keeping the
//! initializer's element type (`int8` stays `int8`, `int32` biases stay `int32`, `uint8` weights
//! imported as shifted `i8` are shifted back) and dims. Everything else in the model is left as
//! it was, so the file re-encodes byte for byte except for the changed initializers.
//!
//! A parameter whose shape changed since import (a classifier replaced for a new number of
//! classes) gets an initializer of its new shape; when it is quantized per channel, the scale and
//! zero-point initializers of the `DequantizeLinear` that reads it are rewritten to match, and the
//! graph outputs take the shapes of `forward`'s outputs.
//!
//! A `BatchNormalization` that the importer folded into its `Conv` is set to the identity
//! (scale 1, mean 0, variance `1 − epsilon`, and shift 0 unless the shift holds the folded
//! bias), since the folded parameters already include it.

use mite_ir::{GlobalData, GlobalKind, Module};

use crate::{DataType, OnnxModel, Tensor, TensorData};

/// Why the weights could not be exported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A parameter has no initializer of the same name in the original model.
    #[error("parameter @{0} has no initializer of the same name in the original model")]
    MissingInitializer(String),
    /// A parameter has no inline data.
    #[error("parameter @{0} has no data to export")]
    NoData(String),
    /// The parameter's element type does not fit the initializer's.
    #[error("parameter @{name} holds {param} elements but initializer `{name}` is {initializer}")]
    ElementType {
        /// The parameter and initializer name.
        name: String,
        /// The parameter's element type.
        param: String,
        /// The initializer's element type.
        initializer: DataType,
    },
    /// A resized parameter whose quantization parameters cannot be written back.
    #[error("parameter @{name} changed shape, but {reason}")]
    Resize {
        /// The parameter and initializer name.
        name: String,
        /// What prevents it.
        reason: String,
    },
    /// The parameter's element count differs from the initializer's.
    #[error("parameter @{name} has {param} elements but initializer `{name}` has {initializer}")]
    ElementCount {
        /// The parameter and initializer name.
        name: String,
        /// The parameter's element count.
        param: usize,
        /// The initializer's element count.
        initializer: usize,
    },
}

/// A copy of `original` whose initializers hold the current data of `module`'s parameters of
/// the same names (see the module documentation).
pub fn export_weights(original: &OnnxModel, module: &Module) -> Result<OnnxModel, ExportError> {
    let mut model = original.clone();
    for (name, global) in &module.globals {
        if !matches!(global.kind, GlobalKind::Param { .. }) {
            continue;
        }
        let Some(init) = model.graph.initializers.get(name) else {
            return Err(ExportError::MissingInitializer(name.clone()));
        };
        let GlobalData::Inline(data) = &global.data else {
            return Err(ExportError::NoData(name.clone()));
        };
        let resized = global.ty.shape.as_slice() != init.dims();
        if resized {
            resize_quantization(&mut model, name, &global.ty)?;
        } else if data.len() != init.len() {
            return Err(ExportError::ElementCount {
                name: name.clone(),
                param: data.len(),
                initializer: init.len(),
            });
        }
        let init = &model.graph.initializers[name];
        let dims = if resized {
            global.ty.shape.to_vec()
        } else {
            init.dims().to_vec()
        };
        let new = match (data, init.data_type()) {
            (mite_ir::TensorData::F32(v), DataType::F32) => TensorData::F32(v.clone()),
            (mite_ir::TensorData::I8(v), DataType::I8) => TensorData::I8(v.clone()),
            (mite_ir::TensorData::I8(v), DataType::U8) => {
                TensorData::U8(v.iter().map(|&x| (i16::from(x) + 128) as u8).collect())
            }
            (mite_ir::TensorData::I32(v), DataType::I32) => TensorData::I32(v.clone()),
            (mite_ir::TensorData::I64(v), DataType::I64) => TensorData::I64(v.clone()),
            (mite_ir::TensorData::I1(v), DataType::Bool) => TensorData::Bool(v.clone()),
            (data, initializer) => {
                return Err(ExportError::ElementType {
                    name: name.clone(),
                    param: data.elem().to_string(),
                    initializer,
                })
            }
        };
        let tensor = Tensor::new(dims, new).map_err(|_| ExportError::ElementCount {
            name: name.clone(),
            param: data.len(),
            initializer: init.len(),
        })?;
        model.graph.initializers.insert(name.clone(), tensor);
    }
    neutralise_folded_batch_norms(&mut model, module);
    let resized_any = module.globals.iter().any(|(name, g)| {
        original
            .graph
            .initializers
            .get(name)
            .is_some_and(|i| i.dims() != g.ty.shape.as_slice())
    });
    if resized_any {
        if let Some(forward) = module.function("forward") {
            for (info, &v) in model.graph.outputs.iter_mut().zip(forward.outputs()) {
                if info.shape.is_some() {
                    info.shape = Some(
                        forward
                            .ty(v)
                            .shape
                            .iter()
                            .map(|&d| crate::Dim::Fixed(d))
                            .collect(),
                    );
                }
            }
        }
    }
    Ok(model)
}

/// Rewrites the scale and zero-point initializers of the one `DequantizeLinear` reading
/// initializer `name`, for a parameter that changed shape (per-tensor parameters keep theirs).
fn resize_quantization(
    model: &mut OnnxModel,
    name: &str,
    ty: &mite_ir::TensorType,
) -> Result<(), ExportError> {
    let fail = |reason: &str| ExportError::Resize {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let Some(quant) = &ty.quant else {
        return Ok(());
    };
    let mite_ir::Quant::PerChannel {
        scales,
        zero_points,
        ..
    } = quant
    else {
        return Ok(());
    };
    let readers: Vec<&crate::Node> = model
        .graph
        .nodes
        .iter()
        .filter(|n| n.inputs.iter().any(|i| i == name))
        .collect();
    let [dq] = readers[..] else {
        return Err(fail("it is not read by exactly one DequantizeLinear"));
    };
    if dq.op_type != "DequantizeLinear" || dq.inputs.first().map(String::as_str) != Some(name) {
        return Err(fail("it is not read by exactly one DequantizeLinear"));
    }
    let (scale_name, zp_name) = (dq.inputs.get(1).cloned(), dq.inputs.get(2).cloned());
    let n = scales.len();
    for init_name in scale_name.iter().chain(zp_name.iter()) {
        let shared = model
            .graph
            .nodes
            .iter()
            .filter(|n| n.inputs.iter().any(|i| i == init_name))
            .count();
        if shared != 1 {
            return Err(fail(&format!(
                "its quantization initializer `{init_name}` is shared"
            )));
        }
    }
    if let Some(scale_name) = scale_name {
        let t = Tensor::new(vec![n], TensorData::F32(scales.to_vec()))
            .map_err(|_| fail("bad scales"))?;
        model.graph.initializers.insert(scale_name, t);
    }
    if let Some(zp_name) = zp_name {
        let old = model
            .graph
            .initializers
            .get(&zp_name)
            .ok_or_else(|| fail("its zero point is not an initializer"))?;
        let data = match old.data_type() {
            DataType::I8 => TensorData::I8(zero_points.iter().map(|&z| z as i8).collect()),
            DataType::I32 => TensorData::I32(zero_points.to_vec()),
            other => return Err(fail(&format!("its zero point is {other}"))),
        };
        let t = Tensor::new(vec![n], data).map_err(|_| fail("bad zero points"))?;
        model.graph.initializers.insert(zp_name, t);
    }
    Ok(())
}

/// Sets each `BatchNormalization` folded by the importer (its `Conv`'s weight is a parameter
/// and its own statistics are not) to the identity.
fn neutralise_folded_batch_norms(model: &mut OnnxModel, module: &Module) {
    let is_param = |name: &str| {
        module
            .globals
            .get(name)
            .is_some_and(|g| matches!(g.kind, GlobalKind::Param { .. }))
    };
    let mut resets: Vec<(String, f32)> = Vec::new();
    let graph = &model.graph;
    for bn in graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "BatchNormalization")
    {
        let Some(input) = bn.inputs.first() else {
            continue;
        };
        let Some(conv) = graph
            .nodes
            .iter()
            .find(|n| n.op_type == "Conv" && n.outputs.first() == Some(input))
        else {
            continue;
        };
        let folded = conv.inputs.get(1).is_some_and(|w| is_param(w))
            && bn.inputs.get(1).is_some_and(|s| !is_param(s));
        if !folded || bn.inputs.len() < 5 {
            continue;
        }
        let eps = bn
            .attr("epsilon")
            .and_then(|a| a.as_float())
            .unwrap_or(1e-5);
        resets.push((bn.inputs[1].clone(), 1.0));
        if !is_param(&bn.inputs[2]) {
            resets.push((bn.inputs[2].clone(), 0.0));
        }
        resets.push((bn.inputs[3].clone(), 0.0));
        resets.push((bn.inputs[4].clone(), (1.0 - f64::from(eps)) as f32));
    }
    for (name, value) in resets {
        if let Some(t) = model.graph.initializers.get_mut(&name) {
            if let Ok(new) = Tensor::new(t.dims().to_vec(), TensorData::F32(vec![value; t.len()])) {
                *t = new;
            }
        }
    }
}
