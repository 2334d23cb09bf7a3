//! An owned, validated representation of an ONNX model.
//!
//! Decoding (`crate::from_bytes`, `crate::load`) checks what can be checked without knowing
//! operator semantics: element types are known, tensor data matches its dims, attribute values
//! match their declared kind. Graph structure (which value feeds which node) and operator
//! semantics are left to the importer.

use std::collections::BTreeMap;
use std::fmt;

use indexmap::IndexMap;

/// The ONNX IR version written by [`OnnxModel::new`] (IR version 8 goes with opsets up to 18).
pub const DEFAULT_IR_VERSION: i64 = 8;

/// The `ai.onnx` opset version written by [`OnnxModel::new`].
pub const DEFAULT_OPSET: i64 = 13;

/// A whole ONNX model: metadata, imported operator sets and the main graph.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxModel {
    /// The ONNX IR version the file declares (`ModelProto.ir_version`).
    pub ir_version: i64,
    /// The tool that wrote the file (`ModelProto.producer_name`), possibly empty.
    pub producer_name: String,
    /// The version of that tool (`ModelProto.producer_version`), possibly empty.
    pub producer_version: String,
    /// The imported operator sets, in file order.
    pub opsets: Vec<OpsetImport>,
    /// Free-form key/value metadata (`ModelProto.metadata_props`), in file order.
    pub metadata: Vec<(String, String)>,
    /// The main graph.
    pub graph: Graph,
}

impl OnnxModel {
    /// A model around `graph` importing `ai.onnx` opset [`DEFAULT_OPSET`], with IR version
    /// [`DEFAULT_IR_VERSION`] and producer `mite`.
    pub fn new(graph: Graph) -> Self {
        Self {
            ir_version: DEFAULT_IR_VERSION,
            producer_name: "mite".to_owned(),
            producer_version: env!("CARGO_PKG_VERSION").to_owned(),
            opsets: vec![OpsetImport::new("", DEFAULT_OPSET)],
            metadata: Vec::new(),
            graph,
        }
    }

    /// The version imported for operator-set `domain`, treating `""` and `"ai.onnx"` as the
    /// same domain. When a domain is imported several times the highest version wins.
    pub fn opset_version(&self, domain: &str) -> Option<i64> {
        let wanted = canonical_domain(domain);
        self.opsets
            .iter()
            .filter(|o| canonical_domain(&o.domain) == wanted)
            .map(|o| o.version)
            .max()
    }
}

/// Maps the two spellings of the standard domain to one.
fn canonical_domain(domain: &str) -> &str {
    if domain == "ai.onnx" {
        ""
    } else {
        domain
    }
}

/// One imported operator set (`OperatorSetIdProto`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OpsetImport {
    /// The domain; `""` (or `"ai.onnx"`) is the standard ONNX operator set.
    pub domain: String,
    /// The operator-set version.
    pub version: i64,
}

impl OpsetImport {
    /// An import of `domain` at `version`.
    pub fn new(domain: impl Into<String>, version: i64) -> Self {
        Self {
            domain: domain.into(),
            version,
        }
    }
}

/// A computation graph: nodes in file (topological) order, constant tensors and interface.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// The graph's name, possibly empty.
    pub name: String,
    /// The nodes, in file order (ONNX requires topological order; not checked here).
    pub nodes: Vec<Node>,
    /// Constant tensors by name, in file order.
    pub initializers: IndexMap<String, Tensor>,
    /// The graph inputs. Older files also list initializers here; see
    /// [`Graph::runtime_inputs`].
    pub inputs: Vec<ValueInfo>,
    /// The graph outputs.
    pub outputs: Vec<ValueInfo>,
    /// Type hints for intermediate values (`GraphProto.value_info`). Entries without a tensor
    /// type are not kept.
    pub value_info: Vec<ValueInfo>,
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Appends `node` and returns the graph, for building small graphs.
    pub fn with_node(mut self, node: Node) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds (or replaces) initializer `name` and returns the graph.
    pub fn with_initializer(mut self, name: impl Into<String>, tensor: Tensor) -> Self {
        self.initializers.insert(name.into(), tensor);
        self
    }

    /// Appends graph input `input` and returns the graph.
    pub fn with_input(mut self, input: ValueInfo) -> Self {
        self.inputs.push(input);
        self
    }

    /// Appends graph output `output` and returns the graph.
    pub fn with_output(mut self, output: ValueInfo) -> Self {
        self.outputs.push(output);
        self
    }

    /// The graph inputs that are not initializers: what a caller must supply.
    pub fn runtime_inputs(&self) -> impl Iterator<Item = &ValueInfo> {
        self.inputs
            .iter()
            .filter(|input| !self.initializers.contains_key(&input.name))
    }

    /// The first node whose name is `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The number of nodes per `op_type` (domain ignored), sorted by op type.
    pub fn op_histogram(&self) -> BTreeMap<String, usize> {
        let mut histogram = BTreeMap::new();
        for node in &self.nodes {
            *histogram.entry(node.op_type.clone()).or_insert(0) += 1;
        }
        histogram
    }
}

/// One operator application (`NodeProto`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    /// The node's name, possibly empty.
    pub name: String,
    /// The operator, e.g. `Conv`.
    pub op_type: String,
    /// The operator-set domain, kept as written: `""` or `"ai.onnx"` for standard operators,
    /// anything else (e.g. `com.microsoft`) for extensions. See [`Node::is_standard_domain`].
    pub domain: String,
    /// Input value names; `""` marks an omitted optional input.
    pub inputs: Vec<String>,
    /// Output value names; `""` marks an omitted optional output.
    pub outputs: Vec<String>,
    /// Attributes by name, in file order.
    pub attributes: IndexMap<String, AttrValue>,
}

impl Node {
    /// A node of operator `op_type` in the standard domain, without name or attributes.
    pub fn new<I, O>(op_type: impl Into<String>, inputs: I, outputs: O) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
        O: IntoIterator,
        O::Item: Into<String>,
    {
        Self {
            op_type: op_type.into(),
            inputs: inputs.into_iter().map(Into::into).collect(),
            outputs: outputs.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Sets the node's name and returns the node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the node's domain and returns the node.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = domain.into();
        self
    }

    /// Adds (or replaces) attribute `name` and returns the node.
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// Whether the node belongs to the standard ONNX domain (`""` or `"ai.onnx"`).
    pub fn is_standard_domain(&self) -> bool {
        canonical_domain(&self.domain).is_empty()
    }

    /// Attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attributes.get(name)
    }
}

/// The value of a node attribute (`AttributeProto`). Subgraph, sparse-tensor and type
/// attributes are refused when decoding, so they have no variant.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// A single float (`FLOAT`).
    Float(f32),
    /// A single integer (`INT`).
    Int(i64),
    /// A UTF-8 string (`STRING`).
    String(String),
    /// A tensor (`TENSOR`), e.g. the `value` of `Constant`.
    Tensor(Tensor),
    /// A list of floats (`FLOATS`).
    Floats(Vec<f32>),
    /// A list of integers (`INTS`).
    Ints(Vec<i64>),
    /// A list of UTF-8 strings (`STRINGS`).
    Strings(Vec<String>),
    /// A list of tensors (`TENSORS`).
    Tensors(Vec<Tensor>),
}

impl AttrValue {
    /// The ONNX name of this value's kind, e.g. `INTS`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Float(_) => "FLOAT",
            Self::Int(_) => "INT",
            Self::String(_) => "STRING",
            Self::Tensor(_) => "TENSOR",
            Self::Floats(_) => "FLOATS",
            Self::Ints(_) => "INTS",
            Self::Strings(_) => "STRINGS",
            Self::Tensors(_) => "TENSORS",
        }
    }

    /// The value if it is a single float.
    pub fn as_float(&self) -> Option<f32> {
        match self {
            Self::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// The value if it is a single integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The value if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is a tensor.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            Self::Tensor(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is a list of floats.
    pub fn as_floats(&self) -> Option<&[f32]> {
        match self {
            Self::Floats(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is a list of integers.
    pub fn as_ints(&self) -> Option<&[i64]> {
        match self {
            Self::Ints(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is a list of strings.
    pub fn as_strings(&self) -> Option<&[String]> {
        match self {
            Self::Strings(v) => Some(v),
            _ => None,
        }
    }
}

impl From<f32> for AttrValue {
    fn from(value: f32) -> Self {
        Self::Float(value)
    }
}

impl From<i64> for AttrValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<Tensor> for AttrValue {
    fn from(value: Tensor) -> Self {
        Self::Tensor(value)
    }
}

impl From<Vec<f32>> for AttrValue {
    fn from(value: Vec<f32>) -> Self {
        Self::Floats(value)
    }
}

impl From<Vec<i64>> for AttrValue {
    fn from(value: Vec<i64>) -> Self {
        Self::Ints(value)
    }
}

impl From<Vec<String>> for AttrValue {
    fn from(value: Vec<String>) -> Self {
        Self::Strings(value)
    }
}

impl From<Vec<Tensor>> for AttrValue {
    fn from(value: Vec<Tensor>) -> Self {
        Self::Tensors(value)
    }
}

/// ONNX element types (`TensorProto.DataType`), without `UNDEFINED`.
///
/// Every type ONNX defines is listed so that value types can be reported; tensor *data* is only
/// decoded for the types [`TensorData`] has a variant for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    /// 32-bit IEEE float (`FLOAT`, code 1).
    F32,
    /// Unsigned 8-bit integer (`UINT8`, code 2).
    U8,
    /// Signed 8-bit integer (`INT8`, code 3).
    I8,
    /// Unsigned 16-bit integer (`UINT16`, code 4).
    U16,
    /// Signed 16-bit integer (`INT16`, code 5).
    I16,
    /// Signed 32-bit integer (`INT32`, code 6).
    I32,
    /// Signed 64-bit integer (`INT64`, code 7).
    I64,
    /// UTF-8 string (`STRING`, code 8).
    String,
    /// Boolean (`BOOL`, code 9).
    Bool,
    /// IEEE half-precision float (`FLOAT16`, code 10).
    F16,
    /// 64-bit IEEE float (`DOUBLE`, code 11).
    F64,
    /// Unsigned 32-bit integer (`UINT32`, code 12).
    U32,
    /// Unsigned 64-bit integer (`UINT64`, code 13).
    U64,
    /// Complex of two 32-bit floats (`COMPLEX64`, code 14).
    Complex64,
    /// Complex of two 64-bit floats (`COMPLEX128`, code 15).
    Complex128,
    /// Brain float (`BFLOAT16`, code 16).
    Bf16,
    /// 8-bit float E4M3, finite (`FLOAT8E4M3FN`, code 17).
    F8E4M3Fn,
    /// 8-bit float E4M3, finite, no negative zero (`FLOAT8E4M3FNUZ`, code 18).
    F8E4M3FnUz,
    /// 8-bit float E5M2 (`FLOAT8E5M2`, code 19).
    F8E5M2,
    /// 8-bit float E5M2, no negative zero (`FLOAT8E5M2FNUZ`, code 20).
    F8E5M2FnUz,
    /// Unsigned 4-bit integer (`UINT4`, code 21).
    U4,
    /// Signed 4-bit integer (`INT4`, code 22).
    I4,
    /// 4-bit float E2M1 (`FLOAT4E2M1`, code 23).
    F4E2M1,
}

impl DataType {
    /// All element types, in code order.
    pub const ALL: [DataType; 23] = [
        Self::F32,
        Self::U8,
        Self::I8,
        Self::U16,
        Self::I16,
        Self::I32,
        Self::I64,
        Self::String,
        Self::Bool,
        Self::F16,
        Self::F64,
        Self::U32,
        Self::U64,
        Self::Complex64,
        Self::Complex128,
        Self::Bf16,
        Self::F8E4M3Fn,
        Self::F8E4M3FnUz,
        Self::F8E5M2,
        Self::F8E5M2FnUz,
        Self::U4,
        Self::I4,
        Self::F4E2M1,
    ];

    /// The type with wire code `code`, or `None` for `UNDEFINED` (0) and unknown codes.
    pub fn from_code(code: i32) -> Option<Self> {
        let index = usize::try_from(code).ok()?.checked_sub(1)?;
        Self::ALL.get(index).copied()
    }

    /// The wire code of this type (`TensorProto.DataType`).
    pub fn code(self) -> i32 {
        // `ALL` is in code order starting at 1.
        match Self::ALL.iter().position(|&t| t == self) {
            Some(index) => index as i32 + 1,
            None => 0,
        }
    }

    /// The ONNX spelling of this type, e.g. `FLOAT`.
    pub fn onnx_name(self) -> &'static str {
        match self {
            Self::F32 => "FLOAT",
            Self::U8 => "UINT8",
            Self::I8 => "INT8",
            Self::U16 => "UINT16",
            Self::I16 => "INT16",
            Self::I32 => "INT32",
            Self::I64 => "INT64",
            Self::String => "STRING",
            Self::Bool => "BOOL",
            Self::F16 => "FLOAT16",
            Self::F64 => "DOUBLE",
            Self::U32 => "UINT32",
            Self::U64 => "UINT64",
            Self::Complex64 => "COMPLEX64",
            Self::Complex128 => "COMPLEX128",
            Self::Bf16 => "BFLOAT16",
            Self::F8E4M3Fn => "FLOAT8E4M3FN",
            Self::F8E4M3FnUz => "FLOAT8E4M3FNUZ",
            Self::F8E5M2 => "FLOAT8E5M2",
            Self::F8E5M2FnUz => "FLOAT8E5M2FNUZ",
            Self::U4 => "UINT4",
            Self::I4 => "INT4",
            Self::F4E2M1 => "FLOAT4E2M1",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.onnx_name())
    }
}

/// The elements of a tensor, in row-major order.
///
/// `F16` and `Bf16` hold the raw 16-bit patterns. Equality is element-wise, so a tensor holding
/// a float NaN is not equal to itself.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// `FLOAT` elements.
    F32(Vec<f32>),
    /// `DOUBLE` elements.
    F64(Vec<f64>),
    /// `FLOAT16` elements, as bit patterns.
    F16(Vec<u16>),
    /// `BFLOAT16` elements, as bit patterns.
    Bf16(Vec<u16>),
    /// `INT8` elements.
    I8(Vec<i8>),
    /// `UINT8` elements.
    U8(Vec<u8>),
    /// `INT16` elements.
    I16(Vec<i16>),
    /// `UINT16` elements.
    U16(Vec<u16>),
    /// `INT32` elements.
    I32(Vec<i32>),
    /// `UINT32` elements.
    U32(Vec<u32>),
    /// `INT64` elements.
    I64(Vec<i64>),
    /// `UINT64` elements.
    U64(Vec<u64>),
    /// `BOOL` elements.
    Bool(Vec<bool>),
    /// `STRING` elements, as raw bytes (ONNX asks for UTF-8 but does not enforce it).
    String(Vec<Vec<u8>>),
}

impl TensorData {
    /// The element type.
    pub fn data_type(&self) -> DataType {
        match self {
            Self::F32(_) => DataType::F32,
            Self::F64(_) => DataType::F64,
            Self::F16(_) => DataType::F16,
            Self::Bf16(_) => DataType::Bf16,
            Self::I8(_) => DataType::I8,
            Self::U8(_) => DataType::U8,
            Self::I16(_) => DataType::I16,
            Self::U16(_) => DataType::U16,
            Self::I32(_) => DataType::I32,
            Self::U32(_) => DataType::U32,
            Self::I64(_) => DataType::I64,
            Self::U64(_) => DataType::U64,
            Self::Bool(_) => DataType::Bool,
            Self::String(_) => DataType::String,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F64(v) => v.len(),
            Self::F16(v) | Self::Bf16(v) | Self::U16(v) => v.len(),
            Self::I8(v) => v.len(),
            Self::U8(v) => v.len(),
            Self::I16(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::U32(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::U64(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::String(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements if they are `FLOAT`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            Self::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements if they are `INT8`.
    pub fn as_i8(&self) -> Option<&[i8]> {
        match self {
            Self::I8(v) => Some(v),
            _ => None,
        }
    }

    /// The elements if they are `UINT8`.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match self {
            Self::U8(v) => Some(v),
            _ => None,
        }
    }

    /// The elements if they are `INT32`.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match self {
            Self::I32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements if they are `INT64`.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            Self::I64(v) => Some(v),
            _ => None,
        }
    }
}

/// A tensor whose element count always matches its dims.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    dims: Vec<usize>,
    data: TensorData,
}

/// Why [`Tensor::new`] refused its arguments.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TensorShapeError {
    /// The product of the dims does not fit in `usize`.
    #[error("dims {dims:?} hold more elements than can be addressed")]
    Overflow {
        /// The offending dims.
        dims: Vec<usize>,
    },
    /// The data holds a different number of elements than the dims imply.
    #[error("dims {dims:?} imply {expected} elements but the data holds {found}")]
    ElementCount {
        /// The dims.
        dims: Vec<usize>,
        /// The element count implied by the dims.
        expected: usize,
        /// The element count of the data.
        found: usize,
    },
}

/// The number of elements of a tensor with `dims` (1 for a scalar), or `None` on overflow.
pub fn element_count(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    /// A tensor of shape `dims` (empty for a scalar) holding `data`.
    pub fn new(dims: Vec<usize>, data: TensorData) -> Result<Self, TensorShapeError> {
        let Some(expected) = element_count(&dims) else {
            return Err(TensorShapeError::Overflow { dims });
        };
        let found = data.len();
        if expected != found {
            return Err(TensorShapeError::ElementCount {
                dims,
                expected,
                found,
            });
        }
        Ok(Self { dims, data })
    }

    /// A one-dimensional tensor holding `data`.
    pub fn vector(data: TensorData) -> Self {
        Self {
            dims: vec![data.len()],
            data,
        }
    }

    /// A `FLOAT` tensor; errors when the element count does not match `dims`.
    pub fn from_f32(dims: &[usize], values: Vec<f32>) -> Result<Self, TensorShapeError> {
        Self::new(dims.to_vec(), TensorData::F32(values))
    }

    /// A scalar (rank 0) tensor holding one `FLOAT`.
    pub fn scalar_f32(value: f32) -> Self {
        Self {
            dims: Vec::new(),
            data: TensorData::F32(vec![value]),
        }
    }

    /// The shape; empty for a scalar.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The element type.
    pub fn data_type(&self) -> DataType {
        self.data.data_type()
    }

    /// The number of elements (the product of the dims).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements (some dim is 0).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The shape and elements, by value.
    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.dims, self.data)
    }
}

/// One dimension of a declared value shape (`TensorShapeProto.Dimension`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed extent (`dim_value`).
    Fixed(usize),
    /// A named, unknown extent (`dim_param`), e.g. `batch`.
    Symbolic(String),
    /// An extent with neither value nor name.
    Unknown,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(n) => write!(f, "{n}"),
            Self::Symbolic(name) => f.write_str(name),
            Self::Unknown => f.write_str("?"),
        }
    }
}

/// The declared type of a tensor value (`ValueInfoProto` with a tensor `TypeProto`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueInfo {
    /// The value's name.
    pub name: String,
    /// The element type.
    pub elem_type: DataType,
    /// The declared shape, or `None` when not even the rank is known.
    pub shape: Option<Vec<Dim>>,
}

impl ValueInfo {
    /// A value of element type `elem_type` and fixed shape `dims`.
    pub fn tensor(name: impl Into<String>, elem_type: DataType, dims: &[usize]) -> Self {
        Self {
            name: name.into(),
            elem_type,
            shape: Some(dims.iter().map(|&d| Dim::Fixed(d)).collect()),
        }
    }

    /// The shape if its rank and every dim are known.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .as_ref()?
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Some(*n),
                Dim::Symbolic(_) | Dim::Unknown => None,
            })
            .collect()
    }
}
