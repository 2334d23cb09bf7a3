//! Writing trained weights back into the ONNX model they came from.
//!
//! [`export_weights`] copies the current data of every parameter of a module imported with
//! [`crate::import::import_model`] into the initializer of the same name, keeping the
//! initializer's element type (`int8` stays `int8`, `int32` biases stay `int32`, `uint8` weights
//! imported as shifted `i8` are shifted back) and dims. Everything else in the model is left as
//! it was, so the file re-encodes byte for byte except for the changed initializers.
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
        if data.len() != init.len() {
            return Err(ExportError::ElementCount {
                name: name.clone(),
                param: data.len(),
                initializer: init.len(),
            });
        }
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
        let tensor =
            Tensor::new(init.dims().to_vec(), new).map_err(|_| ExportError::ElementCount {
                name: name.clone(),
                param: data.len(),
                initializer: init.len(),
            })?;
        model.graph.initializers.insert(name.clone(), tensor);
    }
    neutralise_folded_batch_norms(&mut model, module);
    Ok(model)
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
