//! Import of ONNX models into mite's IR.
//!
//! [`import_model`] turns an [`OnnxModel`] into a [`Module`] with one function, `forward`, whose
//! arguments are the graph's runtime inputs and whose outputs are the graph outputs:
//!
//! 1. every node is converted literally, in file order (see [`convert`] for the supported
//!    operators and attributes); weights and biases of `Conv`, `Gemm` and `MatMul` (also behind
//!    `DequantizeLinear`) become parameters named like their initializers, other initializers
//!    become constants or are consumed by the conversion (`Reshape` shapes, `Pad` pads, `Clip`
//!    bounds, quantization scales and zero points);
//! 2. quantize / dequantize patterns are fused into mite's `q.` ops ([`qdq`]);
//! 3. the module is verified; verifier errors are import errors.
//!
//! All unsupported operators of a model are reported together in one error.
//!
//! ```
//! use mite_onnx::{DataType, Graph, Node, OnnxModel, ValueInfo};
//! use mite_onnx::import::{import_model, ImportOptions};
//!
//! let graph = Graph::new("tiny")
//!     .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 4]))
//!     .with_node(Node::new("Relu", ["x"], ["y"]).with_name("relu"))
//!     .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 4]));
//! let module = import_model(&OnnxModel::new(graph), &ImportOptions::default()).unwrap();
//! assert_eq!(module.functions[0].num_ops(), 1);
//! ```

mod checks;
pub mod convert;
pub mod qdq;

use std::fmt;
use std::path::Path;

use mite_ir::{Module, VerifyErrors};

use crate::{OnnxError, OnnxModel};

/// Options of [`import_model`].
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// When set, a symbolic (or unknown) first dimension of a graph input is fixed to this
    /// batch size; otherwise such an input is refused.
    pub batch_size: Option<usize>,
    /// Whether imported parameters are marked trainable (the training phase may change this).
    pub trainable: bool,
    /// Whether quantize / dequantize patterns are fused into `q.` ops ([`qdq::fuse_qdq`]).
    pub fuse_qdq: bool,
    /// The module's name; the graph name (or `model`) when `None`.
    pub module_name: Option<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            batch_size: None,
            trainable: true,
            fuse_qdq: true,
            module_name: None,
        }
    }
}

impl ImportOptions {
    /// The default options with a symbolic batch dimension fixed to 1.
    pub fn batch_one() -> Self {
        Self {
            batch_size: Some(1),
            ..Self::default()
        }
    }
}

/// An operator the importer does not support, with where it occurs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedOp {
    /// The node's name (or `#index` when it has none).
    pub node: String,
    /// The node's domain as written (`""` for the standard domain).
    pub domain: String,
    /// The operator.
    pub op_type: String,
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.domain.is_empty() || self.domain == "ai.onnx" {
            write!(
                f,
                "op {} (node {}) is not supported",
                self.op_type, self.node
            )
        } else {
            write!(
                f,
                "contrib op {}.{} (node {}) is not supported",
                self.domain, self.op_type, self.node
            )
        }
    }
}

/// What went wrong during an import (see [`ImportError`] for the location).
#[derive(Debug)]
#[non_exhaustive]
pub enum ImportErrorKind {
    /// The file could not be read or decoded.
    Read(Box<OnnxError>),
    /// The model uses operators the importer does not support (all of them are listed).
    UnsupportedOps(Vec<UnsupportedOp>),
    /// The model imports a version of the standard operator set outside the supported range.
    Opset(i64),
    /// A node cannot be converted.
    Node {
        /// The node's name (or `#index` when it has none).
        node: String,
        /// The node's operator.
        op_type: String,
        /// What is wrong.
        message: String,
    },
    /// A problem with the graph's interface or structure (inputs, outputs, undefined values).
    Graph(String),
    /// The imported module does not verify (an importer bug or an inconsistent model).
    Verify(VerifyErrors),
}

impl fmt::Display for ImportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "{e}"),
            Self::UnsupportedOps(ops) => {
                write!(f, "{} unsupported op(s):", ops.len())?;
                for op in ops {
                    write!(f, "\n  {op}")?;
                }
                Ok(())
            }
            Self::Opset(v) => write!(
                f,
                "the model imports ai.onnx opset {v}; supported opsets are {} to {}",
                convert::MIN_OPSET,
                convert::MAX_OPSET
            ),
            Self::Node {
                node,
                op_type,
                message,
            } => write!(f, "{op_type} (node {node}): {message}"),
            Self::Graph(message) => f.write_str(message),
            Self::Verify(e) => write!(f, "the imported module does not verify:\n{e}"),
        }
    }
}

/// An import error, naming the source (a file name or the graph) and the problem.
#[derive(Debug)]
pub struct ImportError {
    /// The file or graph imported.
    pub source: String,
    /// What went wrong.
    pub kind: ImportErrorKind,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            // Decode errors already name the file.
            ImportErrorKind::Read(e) => write!(f, "{e}"),
            kind => write!(f, "{}: {kind}", self.source),
        }
    }
}

impl std::error::Error for ImportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ImportErrorKind::Read(e) => Some(e.as_ref()),
            ImportErrorKind::Verify(e) => Some(e),
            _ => None,
        }
    }
}

/// Imports `model`; errors name the graph.
pub fn import_model(model: &OnnxModel, opts: &ImportOptions) -> Result<Module, ImportError> {
    let source = if model.graph.name.is_empty() {
        "graph".to_owned()
    } else {
        format!("graph `{}`", model.graph.name)
    };
    import_named(model, &source, opts)
}

/// Decodes `bytes` and imports the model; errors name `source_name` (usually a file name).
pub fn import_bytes(
    bytes: &[u8],
    source_name: &str,
    opts: &ImportOptions,
) -> Result<Module, ImportError> {
    let model = crate::from_bytes(bytes, source_name).map_err(|e| ImportError {
        source: source_name.to_owned(),
        kind: ImportErrorKind::Read(Box::new(e)),
    })?;
    import_named(&model, source_name, opts)
}

/// Reads, decodes and imports the model at `path`; errors name the file.
pub fn import_file(path: impl AsRef<Path>, opts: &ImportOptions) -> Result<Module, ImportError> {
    let path = path.as_ref();
    let source = path.display().to_string();
    let model = crate::load(path).map_err(|e| ImportError {
        source: source.clone(),
        kind: ImportErrorKind::Read(Box::new(e)),
    })?;
    import_named(&model, &source, opts)
}

fn import_named(
    model: &OnnxModel,
    source: &str,
    opts: &ImportOptions,
) -> Result<Module, ImportError> {
    let err = |kind| ImportError {
        source: source.to_owned(),
        kind,
    };
    checks::check_graph(&model.graph, opts.batch_size).map_err(err)?;
    let mut module = convert::convert(model, opts).map_err(err)?;
    if opts.fuse_qdq {
        for func in &mut module.functions {
            qdq::fuse_qdq(func);
        }
    }
    mite_ir::verify_module(&module).map_err(|e| err(ImportErrorKind::Verify(e)))?;
    Ok(module)
}
