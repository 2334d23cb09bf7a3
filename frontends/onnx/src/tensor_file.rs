//! Standalone serialized `TensorProto` files, such as the `test_data_set_0/input_0.pb` files of
//! the ONNX backend tests.
//!
//! The tensor is decoded exactly like an initializer of a model: the same element types, storage
//! forms and checks (see [`crate::OnnxError`] for what is refused).
//!
//! ```no_run
//! let (name, tensor) = mite_onnx::tensor_file::load_tensor("test_data_set_0/input_0.pb").unwrap();
//! println!("{name}: {:?} {:?}", tensor.dims(), tensor.data_type());
//! ```

use std::path::Path;

use prost::Message;

use crate::error::{ErrorKind, OnnxError};
use crate::model::Tensor;
use crate::{decode, proto};

/// Reads and decodes the serialized `TensorProto` at `path`; returns the tensor's name (empty
/// when the file has none) and the tensor.
pub fn load_tensor(path: impl AsRef<Path>) -> Result<(String, Tensor), OnnxError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ErrorKind::Io(e).at(&file, ""))?;
    tensor_from_bytes(&bytes, &file)
}

/// Decodes a serialized `TensorProto` from `bytes`; `source_name` (usually a file name) names
/// the input in errors. Returns the tensor's name (empty when it has none) and the tensor.
pub fn tensor_from_bytes(bytes: &[u8], source_name: &str) -> Result<(String, Tensor), OnnxError> {
    let proto = proto::TensorProto::decode(bytes)
        .map_err(|e| ErrorKind::Protobuf(e).at(source_name, ""))?;
    let name = proto.name.clone().unwrap_or_default();
    let context = if name.is_empty() {
        "tensor".to_owned()
    } else {
        format!("tensor `{name}`")
    };
    let tensor = decode::tensor(proto).map_err(|e| e.at(source_name, context))?;
    Ok((name, tensor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TensorData;

    #[test]
    fn decodes_raw_float_tensor() {
        let proto = proto::TensorProto {
            dims: vec![2],
            data_type: Some(1),
            name: Some("x".to_owned()),
            raw_data: Some(
                [1.5f32, -2.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            ..Default::default()
        };
        let (name, tensor) = tensor_from_bytes(&proto.encode_to_vec(), "x.pb").unwrap();
        assert_eq!(name, "x");
        assert_eq!(tensor.dims(), &[2]);
        assert_eq!(tensor.data(), &TensorData::F32(vec![1.5, -2.0]));
    }

    #[test]
    fn names_the_file_on_a_bad_element_count() {
        let proto = proto::TensorProto {
            dims: vec![3],
            data_type: Some(1),
            float_data: vec![1.0],
            ..Default::default()
        };
        let err = tensor_from_bytes(&proto.encode_to_vec(), "bad.pb").unwrap_err();
        assert_eq!(err.file, "bad.pb");
        assert!(err.to_string().starts_with("bad.pb: tensor: "), "{err}");
    }
}
