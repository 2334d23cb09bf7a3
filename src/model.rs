//! Loading a model from what a user names on the command line: an ONNX file, an IR file, or a
//! zoo model.

use mite_ir::text::parse_module_named;
use mite_ir::{verify_module, Module};
use mite_onnx::{import_model, ImportOptions, OnnxModel};
use mite_zoo::{BuildOptions, ZooModel};
use std::path::{Path, PathBuf};

/// A loaded model: the IR module, and the ONNX model it came from (to write trained weights back).
#[derive(Clone, Debug)]
pub struct LoadedModel {
    /// A short name for reports (the file name or the zoo name).
    pub name: String,
    /// The IR.
    pub module: Module,
    /// The source ONNX model, when the model was imported from ONNX.
    pub onnx: Option<OnnxModel>,
}

/// The zoo models by the names accepted after `zoo:`.
pub const ZOO_NAMES: &[(&str, &str)] = &[
    (
        "mcunet-5fps",
        "MCUNet-5FPS (int8, architecture with seeded weights)",
    ),
    (
        "mbv2-w0.35",
        "MobileNetV2-w0.35 (int8, architecture with seeded weights)",
    ),
    (
        "proxyless-w0.3",
        "ProxylessNAS-w0.3 (int8, architecture with seeded weights)",
    ),
    ("tiny-int8-cnn", "a tiny int8 CNN, 1x3x32x32 -> 10"),
    ("tiny-float-cnn", "a tiny float CNN, 1x3x32x32 -> 10"),
];

fn zoo(name: &str) -> Option<Module> {
    let defaults = BuildOptions::default();
    Some(match name {
        "mcunet-5fps" => ZooModel::Mcunet5fps.build(&defaults),
        "mbv2-w0.35" => ZooModel::Mbv2W035.build(&defaults),
        "proxyless-w0.3" => ZooModel::ProxylessW03.build(&defaults),
        "tiny-int8-cnn" => mite_zoo::tiny_int8_cnn(),
        "tiny-float-cnn" => mite_zoo::tiny_float_cnn(),
        _ => return None,
    })
}

/// Loads `spec`: `zoo:NAME`, a `.onnx` file (imported, QDQ fused, batch fixed to 1) or a `.mir`
/// file (parsed and verified).
pub fn load_model(spec: &str) -> Result<LoadedModel, String> {
    if let Some(name) = spec.strip_prefix("zoo:") {
        let module = zoo(name).ok_or_else(|| {
            let known: Vec<&str> = ZOO_NAMES.iter().map(|(n, _)| *n).collect();
            format!(
                "error: unknown zoo model `{name}` (known: {})",
                known.join(", ")
            )
        })?;
        return Ok(LoadedModel {
            name: name.to_string(),
            module,
            onnx: None,
        });
    }
    let path = PathBuf::from(spec);
    let name = path
        .file_name()
        .map_or(spec.to_string(), |n| n.to_string_lossy().into_owned());
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => {
            let onnx = mite_onnx::load(&path).map_err(|e| format!("error: {e}"))?;
            let module = import_model(&onnx, &ImportOptions::batch_one())
                .map_err(|e| format!("error: {e}"))?;
            Ok(LoadedModel {
                name,
                module,
                onnx: Some(onnx),
            })
        }
        Some("mir") => {
            let text = read_text(&path)?;
            let module = parse_module_named(&text, spec).map_err(|e| format!("error: {e}"))?;
            verify_module(&module).map_err(|e| format!("{spec}: {e}"))?;
            finite_weights(&module).map_err(|e| format!("error: {spec}: {e}"))?;
            Ok(LoadedModel {
                name,
                module,
                onnx: None,
            })
        }
        _ => Err(format!(
            "error: {spec}: expected a .onnx or .mir file, or zoo:NAME"
        )),
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    mite_ir::limits::read_text_file(path)
        .map_err(|e| format!("error: cannot read {}: {e}", path.display()))
}

/// Refuses a module whose `f32` parameters or constants hold NaN or an infinity, naming the
/// first such global.
pub fn finite_weights(module: &Module) -> Result<(), String> {
    for (name, g) in &module.globals {
        if let mite_ir::GlobalData::Inline(mite_ir::TensorData::F32(v)) = &g.data {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!(
                    "global @{name} holds a non-finite value ({} at element {i}); the model's \
                     weights must be finite",
                    v[i]
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mite_ir::{Builder, TensorData, TensorType};

    #[test]
    fn non_finite_weights_are_named() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let w = b
            .constant(
                "w",
                TensorType::f32(&[2]),
                TensorData::F32(vec![1.0, f32::INFINITY]),
            )
            .unwrap();
        b.ret(&[w]);
        let e = finite_weights(&m).unwrap_err();
        assert!(
            e.contains("global @w holds a non-finite value (inf at element 1)"),
            "{e}"
        );
        let mut ok = Module::new("ok");
        let mut b = Builder::new(&mut ok, "forward");
        let w = b
            .constant("w", TensorType::f32(&[1]), TensorData::F32(vec![1.0]))
            .unwrap();
        b.ret(&[w]);
        assert!(finite_weights(&ok).is_ok());
    }
}
