//! The ONNX file layer of mite: decoding `.onnx` files into an owned, validated model and
//! encoding such a model back, independently of mite's IR.
//!
//! ```
//! use mite_onnx::{DataType, Graph, Node, OnnxModel, Tensor, ValueInfo};
//!
//! let graph = Graph::new("tiny")
//!     .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 4]))
//!     .with_initializer("w", Tensor::from_f32(&[1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap())
//!     .with_node(Node::new("Add", ["x", "w"], ["y"]).with_name("add"))
//!     .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 4]));
//! let model = OnnxModel::new(graph);
//! let bytes = model.to_bytes();
//! let back = mite_onnx::from_bytes(&bytes, "tiny.onnx").unwrap();
//! assert_eq!(back, model);
//! ```
//!
//! Operators of any domain (including `com.microsoft`) are kept as data; refusing them is the
//! importer's job ([`import`]: ONNX → mite IR, float and int8 QDQ; [`export`]: trained weights
//! back into the original model). What cannot be represented is refused with an [`OnnxError`] naming the file
//! and the place: external tensor data, segmented or sparse tensors, subgraph attributes, and
//! tensor data of complex, 8-bit float or 4-bit types. Model-local functions, training info,
//! doc strings and quantization annotations are not kept.

mod decode;
mod encode;
mod error;
pub mod export;
pub mod export_qdq;
pub mod import;
mod model;
mod proto;
pub mod tensor_file;

use std::path::Path;

use prost::Message;

pub use error::{ErrorKind, OnnxError};
pub use export::{export_weights, ExportError};
pub use export_qdq::{write_qdq, WriteError};
pub use import::{
    import_bytes, import_file, import_model, ImportError, ImportErrorKind, ImportOptions,
};
pub use model::{
    element_count, AttrValue, DataType, Dim, Graph, Node, OnnxModel, OpsetImport, Tensor,
    TensorData, TensorShapeError, ValueInfo, DEFAULT_IR_VERSION, DEFAULT_OPSET,
};

/// Reads and decodes the ONNX model at `path`.
pub fn load(path: impl AsRef<Path>) -> Result<OnnxModel, OnnxError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let bytes = mite_ir::limits::read_file(path).map_err(|e| ErrorKind::Io(e).at(&file, ""))?;
    from_bytes(&bytes, &file)
}

/// Decodes an ONNX model from `bytes`; `source_name` (usually a file name) names the input in
/// errors.
pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<OnnxModel, OnnxError> {
    let proto =
        proto::ModelProto::decode(bytes).map_err(|e| ErrorKind::Protobuf(e).at(source_name, ""))?;
    decode::model(proto, source_name)
}

impl OnnxModel {
    /// Encodes the model as the bytes of an `.onnx` file.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode::model(self).encode_to_vec()
    }

    /// Encodes the model and writes it to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), OnnxError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes())
            .map_err(|e| ErrorKind::Io(e).at(&path.display().to_string(), "writing"))
    }
}

#[cfg(test)]
mod tests;
