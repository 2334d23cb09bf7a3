//! Errors of reading and writing ONNX files.

use std::fmt;

use crate::model::DataType;

/// An error while reading or writing an ONNX file.
///
/// It always names the file (or the source name given to [`crate::from_bytes`]); `context`
/// locates the problem inside the model, e.g. ``node `conv1` attribute `pads` ``.
#[derive(Debug)]
pub struct OnnxError {
    /// The file or source name.
    pub file: String,
    /// Where in the model the problem is; empty for whole-file problems.
    pub context: String,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl OnnxError {
    /// An error about `file` at `context`.
    pub(crate) fn new(file: &str, context: impl Into<String>, kind: ErrorKind) -> Self {
        Self {
            file: file.to_owned(),
            context: context.into(),
            kind,
        }
    }
}

impl fmt::Display for OnnxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            write!(f, "{}: {}", self.file, self.kind)
        } else {
            write!(f, "{}: {}: {}", self.file, self.context, self.kind)
        }
    }
}

impl std::error::Error for OnnxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// What went wrong, without the location (see [`OnnxError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read or written.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// The bytes are not a valid `ModelProto`.
    #[error("malformed protobuf: {0}")]
    Protobuf(#[source] prost::DecodeError),
    /// The model has no main graph.
    #[error("the model has no graph")]
    MissingGraph,
    /// Tensor data lives in an external file, which is not supported.
    #[error(
        "tensor data is stored in an external file (location `{location}`), which is not \
         supported: expected the data inside the .onnx file"
    )]
    ExternalData {
        /// The `location` entry of the external data, or `?` when absent.
        location: String,
    },
    /// The tensor is stored as a segment of a larger tensor, which is not supported.
    #[error("segmented tensors are not supported: expected the whole tensor in one message")]
    SegmentedTensor,
    /// The graph has sparse initializers, which are not supported.
    #[error("{count} sparse initializer(s) found: sparse tensors are not supported")]
    SparseInitializer {
        /// How many sparse initializers there are.
        count: usize,
    },
    /// A data type code that ONNX does not define (or `UNDEFINED`).
    #[error("unknown data type code {0}: expected one of the TensorProto.DataType codes 1..=23")]
    UnknownDataType(i32),
    /// A known data type whose tensor data cannot be decoded.
    #[error("tensor data of type {0} is not supported")]
    UnsupportedDataType(DataType),
    /// The tensor's element count does not match its dims.
    #[error("dims {dims:?} imply {expected} elements but the data holds {found}")]
    ElementCount {
        /// The tensor's dims.
        dims: Vec<i64>,
        /// Elements implied by the dims.
        expected: usize,
        /// Elements present in the data.
        found: usize,
    },
    /// `raw_data` whose length is not a multiple of the element size.
    #[error(
        "raw_data holds {len} bytes, which is not a multiple of the {elem_size}-byte {data_type} \
         element"
    )]
    RawDataLength {
        /// The length of `raw_data` in bytes.
        len: usize,
        /// The size of one element in bytes.
        elem_size: usize,
        /// The element type.
        data_type: DataType,
    },
    /// A dim that is negative or whose product overflows.
    #[error("invalid dims {dims:?}: expected non-negative extents with an addressable product")]
    InvalidDims {
        /// The tensor's dims.
        dims: Vec<i64>,
    },
    /// A negative `dim_value` in a declared shape.
    #[error("negative dimension {0} in a declared shape")]
    NegativeDim(i64),
    /// Tensor data stored in a field that does not go with its data type, or in two fields.
    #[error("tensor data of type {data_type}: expected {expected}, found {found}")]
    MisplacedData {
        /// The element type.
        data_type: DataType,
        /// The field(s) that may hold this type.
        expected: &'static str,
        /// The field(s) found populated.
        found: String,
    },
    /// A typed-field value outside the range of the element type.
    #[error("value {value} does not fit in element type {data_type}")]
    ValueOutOfRange {
        /// The stored value.
        value: i128,
        /// The element type.
        data_type: DataType,
    },
    /// An attribute kind this crate does not represent (subgraphs, sparse tensors, types).
    #[error("{kind} attributes are not supported")]
    UnsupportedAttribute {
        /// The ONNX name of the attribute kind, e.g. `GRAPH`.
        kind: &'static str,
    },
    /// An attribute type code ONNX does not define, or `UNDEFINED`.
    #[error("unknown attribute type code {0}: expected one of AttributeType 1..=14")]
    UnknownAttributeType(i32),
    /// An attribute whose value field does not match its declared type.
    #[error("attribute declared {declared} but its value field is missing")]
    MissingAttributeValue {
        /// The declared kind.
        declared: &'static str,
    },
    /// An attribute that refers to a function attribute (`ref_attr_name`).
    #[error("attribute refers to function attribute `{0}`: expected a value in the main graph")]
    AttributeReference(String),
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// The same name appears twice where names must be unique.
    #[error("duplicate {what} `{name}`")]
    Duplicate {
        /// What kind of name, e.g. `initializer`.
        what: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A graph input or output without a tensor type.
    #[error("expected a tensor type, found {found}")]
    NotATensorType {
        /// What was found instead.
        found: &'static str,
    },
}

impl ErrorKind {
    /// This kind, located at `context` in `file`.
    pub(crate) fn at(self, file: &str, context: impl Into<String>) -> OnnxError {
        OnnxError::new(file, context, self)
    }
}
