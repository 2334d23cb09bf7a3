//! Literal, node-by-node conversion of an ONNX graph into mite IR.
//!
//! Supported operators (standard domain, opsets [`MIN_OPSET`] to [`MAX_OPSET`]) and attributes:
//!
//! | ONNX | IR | notes |
//! |---|---|---|
//! | `Conv` | `nn.conv2d` | 2-D only; `auto_pad` (`NOTSET`/`VALID`/`SAME_UPPER`/`SAME_LOWER` become explicit pads), `dilations`, `group`, `kernel_shape` (checked), `pads`, `strides` |
//! | `BatchNormalization` | folded into the preceding `Conv` | inference mode, one output; the conv's weight (and bias) must be float initializers used only there |
//! | `Gemm` | `nn.linear` (+ `nn.transpose`, `nn.mul`, `nn.add`) | `alpha`, `beta`, `transA`, `transB`; a runtime `B` uses `nn.matmul` |
//! | `MatMul` | `nn.linear` when `B` is 2-D, else `nn.matmul` | higher-rank `A` is flattened to 2-D and back |
//! | `Add`, `Mul` | `nn.add`, `nn.mul` | numpy broadcasting |
//! | `Relu`, `Clip` | `nn.relu`, `nn.clip` | `Clip` bounds: attributes below opset 11, constant inputs from 11 |
//! | `AveragePool` | `nn.avg_pool` | `auto_pad`, `count_include_pad`, `kernel_shape`, `pads`, `strides`; `ceil_mode = 1` and dilations ≠ 1 are refused |
//! | `MaxPool` | `nn.max_pool` | `auto_pad`, `dilations`, `kernel_shape`, `pads`, `strides`; `ceil_mode = 1`, `storage_order = 1` and the indices output are refused |
//! | `GlobalAveragePool` | `nn.global_avg_pool` | rank 4 |
//! | `Concat`, `Flatten`, `Transpose` | `nn.concat`, `nn.flatten`, `nn.transpose` | `Transpose` without `perm` reverses the dimensions |
//! | `ReduceMean` | `nn.global_avg_pool` (+ `nn.reshape` when `keepdims = 0`) | over axes H, W of a rank-4 tensor only; `axes` attribute below opset 18, constant input from 18 |
//! | `Reshape` | `nn.reshape` | constant shape (input, or attribute below opset 5); `0` copies, `-1` is inferred, `allowzero` |
//! | `Pad` | `nn.pad` | `constant` mode; pads and value as attributes below opset 11, constant inputs from 11; the `axes` input is refused |
//! | `Softmax`, `LogSoftmax` | `nn.softmax`, `nn.log_softmax` | below opset 13 the input is coerced to 2-D at `axis` (through `nn.reshape` when needed) |
//! | `Identity`, `Dropout` | nothing (aliases) | `Dropout`'s mask output must be unused |
//! | `Constant` | a constant | `value`, `value_float(s)`, `value_int(s)` |
//! | `QuantizeLinear` | `q.quantize` | per tensor; `int8` or `uint8` output |
//! | `DequantizeLinear` | `q.dequantize` | per tensor or per axis; of an initializer, the quantization is folded into the global's type |
//! | `QLinearConv` | `q.conv2d` | as `Conv` |
//! | `QLinearMatMul` | `nn.transpose` of the weight + `q.linear` | 2-D, constant `B` |
//!
//! `uint8` quantized tensors are represented as `i8` with the zero point shifted by −128 (and the
//! stored data shifted likewise), which represents the same real values.

use std::collections::{HashMap, HashSet};
use std::fmt;

use mite_ir::{Builder, ElemType, Module, Op, Quant, TensorType, Value, ValueDef};

use super::{ImportErrorKind, ImportOptions, UnsupportedOp};
use crate::{AttrValue, DataType, Dim, Graph, Node, OnnxModel, Tensor, TensorData};

/// The oldest supported version of the standard operator set.
pub const MIN_OPSET: i64 = 7;
/// The newest supported version of the standard operator set.
pub const MAX_OPSET: i64 = 21;

/// The standard operators the importer converts.
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "Concat",
    "Constant",
    "Conv",
    "DequantizeLinear",
    "Dropout",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "LogSoftmax",
    "MatMul",
    "MaxPool",
    "Mul",
    "Pad",
    "QLinearConv",
    "QLinearMatMul",
    "QuantizeLinear",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Softmax",
    "Transpose",
];

/// The largest accepted window attribute value (kernel, stride, dilation, pad).
const MAX_WINDOW: i64 = 1 << 16;
/// The largest accepted number of elements of a tensor.
const MAX_ELEMENTS: usize = 1 << 32;

type R<T> = Result<T, ImportErrorKind>;

/// Converts `model` literally (without QDQ fusion or verification).
pub fn convert(model: &OnnxModel, opts: &ImportOptions) -> R<Module> {
    let opset = model.opset_version("").unwrap_or(1);
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(ImportErrorKind::Opset(opset));
    }
    let graph = &model.graph;
    let unsupported: Vec<UnsupportedOp> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !(n.is_standard_domain() && SUPPORTED_OPS.contains(&n.op_type.as_str())))
        .map(|(i, n)| UnsupportedOp {
            node: node_label(n, i),
            domain: n.domain.clone(),
            op_type: n.op_type.clone(),
        })
        .collect();
    if !unsupported.is_empty() {
        return Err(ImportErrorKind::UnsupportedOps(unsupported));
    }
    let name = opts.module_name.clone().unwrap_or_else(|| {
        if graph.name.is_empty() {
            "model".to_owned()
        } else {
            graph.name.clone()
        }
    });
    let mut module = Module::new(name);
    let mut cx = Converter::new(graph, opset, opts, &mut module);
    cx.run()?;
    Ok(module)
}

/// A node's name for messages: its name, or `#index` when it has none.
fn node_label(node: &Node, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index}")
    } else {
        node.name.clone()
    }
}

/// A short rendering of an attribute value for messages.
struct ShowAttr<'a>(&'a AttrValue);

impl fmt::Display for ShowAttr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            AttrValue::Float(v) => write!(f, "{v:?}"),
            AttrValue::Int(v) => write!(f, "{v}"),
            AttrValue::String(s) => write!(f, "{s:?}"),
            AttrValue::Tensor(t) => write!(f, "<{} tensor {:?}>", t.data_type(), t.dims()),
            AttrValue::Floats(v) => write!(f, "{v:?}"),
            AttrValue::Ints(v) => write!(f, "{v:?}"),
            AttrValue::Strings(v) => write!(f, "{v:?}"),
            AttrValue::Tensors(v) => write!(f, "<{} tensors>", v.len()),
        }
    }
}

/// The node being converted, for attribute access and errors.
struct NodeCx<'g> {
    node: &'g Node,
    label: String,
}

impl<'g> NodeCx<'g> {
    fn err(&self, message: impl Into<String>) -> ImportErrorKind {
        ImportErrorKind::Node {
            node: self.label.clone(),
            op_type: self.node.op_type.clone(),
            message: message.into(),
        }
    }

    fn bad_attr(&self, attr: &str, why: &str) -> ImportErrorKind {
        match self.node.attr(attr) {
            Some(v) => self.err(format!("attribute `{attr}` = {} {why}", ShowAttr(v))),
            None => self.err(format!("attribute `{attr}` {why}")),
        }
    }

    /// Refuses attributes outside `known`.
    fn check_attrs(&self, known: &[&str]) -> R<()> {
        for (name, value) in &self.node.attributes {
            if !known.contains(&name.as_str()) {
                return Err(self.err(format!(
                    "attribute `{name}` = {} is not supported",
                    ShowAttr(value)
                )));
            }
        }
        Ok(())
    }

    fn wrong_kind(&self, attr: &str, want: &str) -> ImportErrorKind {
        let found = self.node.attr(attr).map_or("nothing", AttrValue::kind);
        self.err(format!("attribute `{attr}` must be {want}, found {found}"))
    }

    fn int(&self, attr: &str, default: i64) -> R<i64> {
        match self.node.attr(attr) {
            None => Ok(default),
            Some(v) => v.as_int().ok_or_else(|| self.wrong_kind(attr, "INT")),
        }
    }

    fn float(&self, attr: &str, default: f32) -> R<f32> {
        match self.node.attr(attr) {
            None => Ok(default),
            Some(v) => v.as_float().ok_or_else(|| self.wrong_kind(attr, "FLOAT")),
        }
    }

    fn ints(&self, attr: &str) -> R<Option<Vec<i64>>> {
        match self.node.attr(attr) {
            None => Ok(None),
            Some(v) => v
                .as_ints()
                .map(|v| Some(v.to_vec()))
                .ok_or_else(|| self.wrong_kind(attr, "INTS")),
        }
    }

    fn string(&self, attr: &str, default: &str) -> R<String> {
        match self.node.attr(attr) {
            None => Ok(default.to_owned()),
            Some(v) => v
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.wrong_kind(attr, "STRING")),
        }
    }

    /// Input `i` if present and not omitted (`""`).
    fn opt_input(&self, i: usize) -> Option<&'g str> {
        self.node
            .inputs
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn input(&self, i: usize) -> R<&'g str> {
        self.opt_input(i)
            .ok_or_else(|| self.err(format!("required input {i} is missing")))
    }

    fn output(&self, i: usize) -> R<&'g str> {
        self.node
            .outputs
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.err(format!("required output {i} is missing")))
    }

    /// Refuses non-empty outputs from index `from` on.
    fn only_outputs(&self, from: usize, what: &str) -> R<()> {
        if self.node.outputs.iter().skip(from).any(|o| !o.is_empty()) {
            return Err(self.err(format!("{what} is not supported")));
        }
        Ok(())
    }
}

/// Parsed quantization parameters of a `QuantizeLinear` / `DequantizeLinear`.
struct QParams {
    scales: Vec<f32>,
    zero_points: Vec<i64>,
    /// The element type of the zero point, when given.
    zp_type: Option<DataType>,
    /// The quantized axis (normalised) for per-axis parameters.
    axis: Option<usize>,
}

impl QParams {
    /// The IR quantization, with zero points shifted by `shift` (−128 for `uint8`).
    fn quant(&self, shift: i64) -> R<Quant> {
        let zp = |z: i64| -> i32 { (z + shift).clamp(i32::MIN.into(), i32::MAX.into()) as i32 };
        Ok(match self.axis {
            None => Quant::per_tensor(self.scales[0], zp(self.zero_points[0])),
            Some(axis) => Quant::PerChannel {
                axis,
                scales: self.scales.clone().into(),
                zero_points: self.zero_points.iter().map(|&z| zp(z)).collect(),
            },
        })
    }
}

/// Converts one graph.
struct Converter<'g, 'm> {
    graph: &'g Graph,
    opset: i64,
    opts: &'g ImportOptions,
    module: &'m mut Module,
    /// ONNX value name → IR value.
    values: HashMap<String, Value>,
    /// Outputs of `Constant` nodes.
    consts: HashMap<String, Tensor>,
    /// ONNX values of type `uint8` represented as shifted `i8`.
    uint8: HashSet<String>,
    /// Initializers that become parameters.
    weights: HashSet<String>,
    /// Node indices consumed by an earlier node (folded `BatchNormalization`).
    folded: HashSet<usize>,
    /// Per value name: the indices of the nodes reading it.
    consumers: HashMap<&'g str, Vec<usize>>,
    /// Per value name: the index of the node producing it.
    producers: HashMap<&'g str, usize>,
}

/// A `BatchNormalization` that can be folded into the `Conv` before it.
struct BnFold {
    bn: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
    bias_name: String,
}

impl<'g, 'm> Converter<'g, 'm> {
    fn new(graph: &'g Graph, opset: i64, opts: &'g ImportOptions, module: &'m mut Module) -> Self {
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut producers = HashMap::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            for input in node.inputs.iter().filter(|s| !s.is_empty()) {
                consumers.entry(input.as_str()).or_default().push(i);
            }
            for output in node.outputs.iter().filter(|s| !s.is_empty()) {
                producers.insert(output.as_str(), i);
            }
        }
        let mut cx = Self {
            graph,
            opset,
            opts,
            module,
            values: HashMap::new(),
            consts: HashMap::new(),
            uint8: HashSet::new(),
            weights: HashSet::new(),
            folded: HashSet::new(),
            consumers,
            producers,
        };
        cx.weights = cx.find_weights();
        cx
    }

    /// The initializers read as weights or biases, directly or through a `DequantizeLinear`.
    fn find_weights(&self) -> HashSet<String> {
        let mut weights = HashSet::new();
        for node in &self.graph.nodes {
            let slots: &[usize] = match node.op_type.as_str() {
                "Conv" | "Gemm" | "MatMul" => &[1, 2],
                "QLinearConv" => &[3, 8],
                "QLinearMatMul" => &[3],
                _ => &[],
            };
            for &slot in slots {
                let Some(name) = node.inputs.get(slot).filter(|s| !s.is_empty()) else {
                    continue;
                };
                let source = match self.producers.get(name.as_str()) {
                    Some(&p) if self.graph.nodes[p].op_type == "DequantizeLinear" => {
                        self.graph.nodes[p].inputs.first()
                    }
                    _ => Some(name),
                };
                if let Some(source) = source {
                    if self.graph.initializers.contains_key(source) {
                        weights.insert(source.clone());
                    }
                }
            }
        }
        weights
    }

    fn builder(&mut self) -> Builder<'_> {
        Builder::new(self.module, "forward")
    }

    fn func_mut(&mut self) -> &mut mite_ir::Function {
        // The builder created the function; `run` creates it before anything else.
        let index = self.module.functions.len() - 1;
        &mut self.module.functions[index]
    }

    fn ty(&mut self, v: Value) -> TensorType {
        self.builder().ty(v).clone()
    }

    /// A constant tensor: an initializer or the output of a `Constant` node.
    fn tensor(&self, name: &str) -> Option<&Tensor> {
        if self.values.contains_key(name) {
            return None;
        }
        self.consts
            .get(name)
            .or_else(|| self.graph.initializers.get(name))
    }

    fn run(&mut self) -> R<()> {
        Builder::new(self.module, "forward");
        let inputs: Vec<_> = self.graph.runtime_inputs().cloned().collect();
        for input in &inputs {
            self.add_input(input)?;
        }
        for (i, node) in self.graph.nodes.iter().enumerate() {
            if self.folded.contains(&i) {
                continue;
            }
            let cx = NodeCx {
                node,
                label: node_label(node, i),
            };
            self.node(&cx, i)?;
        }
        let mut outputs = Vec::new();
        for out in &self.graph.outputs {
            let v = self.value(&out.name).map_err(|_| {
                ImportErrorKind::Graph(format!(
                    "graph output `{}` is not produced by any node, initializer or input",
                    out.name
                ))
            })?;
            let ty = self.ty(v);
            if let Some(shape) = out.static_shape() {
                if shape.as_slice() != ty.shape.as_slice() {
                    return Err(ImportErrorKind::Graph(format!(
                        "graph output `{}` is declared with shape {shape:?} but computes {ty}",
                        out.name
                    )));
                }
            }
            outputs.push(v);
        }
        self.builder().ret(&outputs);
        let names: Vec<(String, Value)> =
            self.values.iter().map(|(k, &v)| (k.clone(), v)).collect();
        let func = self.func_mut();
        for (name, v) in names {
            if func.value(v).name.is_none() && mite_ir::text::is_value_ident(&name) {
                func.set_name(v, Some(name));
            }
        }
        Ok(())
    }

    fn add_input(&mut self, input: &crate::ValueInfo) -> R<()> {
        let gerr = |m: String| ImportErrorKind::Graph(format!("graph input `{}`: {m}", input.name));
        let elem = match input.elem_type {
            DataType::F32 => ElemType::F32,
            DataType::I8 => ElemType::I8,
            DataType::I32 => ElemType::I32,
            DataType::I64 => ElemType::I64,
            DataType::Bool => ElemType::I1,
            other => return Err(gerr(format!("element type {other} is not supported"))),
        };
        let Some(dims) = &input.shape else {
            return Err(gerr(
                "the shape is unknown; a static shape is needed".into(),
            ));
        };
        let mut shape = Vec::with_capacity(dims.len());
        for (i, d) in dims.iter().enumerate() {
            match (d, i, self.opts.batch_size) {
                (Dim::Fixed(n), _, _) => shape.push(*n),
                (_, 0, Some(b)) => shape.push(b),
                (d, _, _) => {
                    let hint = if i == 0 {
                        " (set ImportOptions::batch_size to fix a symbolic batch dimension)"
                    } else {
                        ""
                    };
                    return Err(gerr(format!(
                        "dimension {i} is symbolic (`{d}`); static shapes are needed{hint}"
                    )));
                }
            }
        }
        match crate::element_count(&shape) {
            Some(n) if n <= MAX_ELEMENTS => {}
            _ => return Err(gerr(format!("shape {shape:?} is too large"))),
        }
        let v = self
            .builder()
            .arg(&input.name, TensorType::new(&shape, elem));
        self.values.insert(input.name.clone(), v);
        Ok(())
    }

    /// The IR value of ONNX value `name`, materialising an initializer or constant on first use.
    fn value(&mut self, name: &str) -> R<Value> {
        if let Some(&v) = self.values.get(name) {
            return Ok(v);
        }
        let Some(tensor) = self.tensor(name).cloned() else {
            return Err(ImportErrorKind::Graph(format!(
                "value `{name}` is not produced by an earlier node, an initializer or a graph input"
            )));
        };
        let (elem, data) = ir_data(&tensor).ok_or_else(|| {
            ImportErrorKind::Graph(format!(
                "tensor `{name}`: element type {} is not supported",
                tensor.data_type()
            ))
        })?;
        let ty = TensorType::new(tensor.dims(), elem);
        let v = self.global(name, ty, data)?;
        self.values.insert(name.to_owned(), v);
        Ok(v)
    }

    /// Declares global `name` (a parameter if it is a weight) and reads it.
    fn global(&mut self, name: &str, ty: TensorType, data: mite_ir::TensorData) -> R<Value> {
        let is_param = self.weights.contains(name);
        let trainable = self.opts.trainable;
        let gerr = |e: mite_ir::BuildError| ImportErrorKind::Graph(format!("tensor `{name}`: {e}"));
        let mut b = self.builder();
        b.named(name);
        if is_param {
            b.param(name, ty, trainable, Some(data)).map_err(gerr)
        } else {
            b.constant(name, ty, data).map_err(gerr)
        }
    }

    /// A fresh constant (for values the importer makes up, e.g. `Gemm`'s `alpha`).
    fn fresh_const(&mut self, base: &str, ty: TensorType, data: mite_ir::TensorData) -> R<Value> {
        let mut name = base.to_owned();
        let mut n = 1;
        while self.module.globals.contains_key(&name) || self.graph.initializers.contains_key(&name)
        {
            name = format!("{base}.{n}");
            n += 1;
        }
        let mut b = self.builder();
        b.named(name.clone());
        b.constant(&name, ty, data)
            .map_err(|e| ImportErrorKind::Graph(format!("constant `{name}`: {e}")))
    }

    /// Adds a built-in op named after the node.
    fn op(&mut self, cx: &NodeCx, op: Op, operands: &[Value]) -> R<Value> {
        let label = cx.node.name.clone();
        let mut b = self.builder();
        if !label.is_empty() {
            b.named(label);
        }
        b.op(op, operands).map_err(|e| cx.err(e.to_string()))
    }

    /// Adds an op whose result quantization is chosen.
    fn op_quant(&mut self, cx: &NodeCx, op: Op, operands: &[Value], quant: Quant) -> R<Value> {
        let label = cx.node.name.clone();
        let mut b = self.builder();
        if !label.is_empty() {
            b.named(label);
        }
        b.op_quant(op, operands, quant)
            .map_err(|e| cx.err(e.to_string()))
    }

    fn define(&mut self, cx: &NodeCx, index: usize, v: Value) -> R<()> {
        let name = cx.output(index)?;
        let ty = self.ty(v);
        if ty.num_elements() > MAX_ELEMENTS {
            return Err(cx.err(format!("the result {ty} is too large")));
        }
        self.values.insert(name.to_owned(), v);
        Ok(())
    }

    /// A constant input as a tensor (refusing runtime values).
    fn const_input(&self, cx: &NodeCx, i: usize, what: &str) -> R<Option<&Tensor>> {
        let Some(name) = cx.opt_input(i) else {
            return Ok(None);
        };
        match self.tensor(name) {
            Some(t) => Ok(Some(t)),
            None => Err(cx.err(format!(
                "input {i} ({what}, `{name}`) must be a constant (an initializer or a Constant node)"
            ))),
        }
    }

    fn const_ints(&self, cx: &NodeCx, i: usize, what: &str) -> R<Option<Vec<i64>>> {
        let Some(t) = self.const_input(cx, i, what)? else {
            return Ok(None);
        };
        match t.data() {
            TensorData::I64(v) => Ok(Some(v.clone())),
            TensorData::I32(v) => Ok(Some(v.iter().map(|&x| i64::from(x)).collect())),
            other => Err(cx.err(format!(
                "input {i} ({what}) must be INT64, found {}",
                other.data_type()
            ))),
        }
    }

    fn const_scalar_f32(&self, cx: &NodeCx, i: usize, what: &str) -> R<Option<f32>> {
        let Some(t) = self.const_input(cx, i, what)? else {
            return Ok(None);
        };
        match t.data() {
            TensorData::F32(v) if v.len() == 1 => Ok(Some(v[0])),
            other => Err(cx.err(format!(
                "input {i} ({what}) must be one FLOAT, found {} {} element(s)",
                other.len(),
                other.data_type()
            ))),
        }
    }

    fn node(&mut self, cx: &NodeCx, index: usize) -> R<()> {
        match cx.node.op_type.as_str() {
            "Conv" => self.conv(cx, index),
            "BatchNormalization" => Err(self.bn_refusal(cx, index)),
            "Gemm" => self.gemm(cx),
            "MatMul" => self.matmul(cx),
            "Add" | "Mul" => {
                cx.check_attrs(&[])?;
                let a = self.value(cx.input(0)?)?;
                let b = self.value(cx.input(1)?)?;
                let op = if cx.node.op_type == "Add" {
                    Op::Add {}
                } else {
                    Op::Mul {}
                };
                let y = self.op(cx, op, &[a, b])?;
                self.define(cx, 0, y)
            }
            "Relu" => {
                cx.check_attrs(&[])?;
                let x = self.value(cx.input(0)?)?;
                let y = self.op(cx, Op::Relu {}, &[x])?;
                self.define(cx, 0, y)
            }
            "Clip" => self.clip(cx),
            "AveragePool" | "MaxPool" => self.pool(cx),
            "GlobalAveragePool" => {
                cx.check_attrs(&[])?;
                let x = self.value(cx.input(0)?)?;
                let y = self.op(cx, Op::GlobalAvgPool {}, &[x])?;
                self.define(cx, 0, y)
            }
            "Concat" => {
                cx.check_attrs(&["axis"])?;
                if cx.node.attr("axis").is_none() {
                    return Err(cx.err("attribute `axis` is required"));
                }
                let axis = cx.int("axis", 0)?;
                let mut operands = Vec::new();
                for name in cx.node.inputs.iter().filter(|s| !s.is_empty()) {
                    operands.push(self.value(name)?);
                }
                if operands.is_empty() {
                    return Err(cx.err("at least one input is required"));
                }
                let y = self.op(cx, Op::Concat { axis }, &operands)?;
                self.define(cx, 0, y)
            }
            "Flatten" => {
                cx.check_attrs(&["axis"])?;
                let axis = cx.int("axis", 1)?;
                let x = self.value(cx.input(0)?)?;
                let y = self.op(cx, Op::Flatten { axis }, &[x])?;
                self.define(cx, 0, y)
            }
            "Reshape" => self.reshape(cx),
            "ReduceMean" => self.reduce_mean(cx),
            "Transpose" => {
                cx.check_attrs(&["perm"])?;
                let x = self.value(cx.input(0)?)?;
                let rank = self.ty(x).rank() as i64;
                let perm = cx
                    .ints("perm")?
                    .unwrap_or_else(|| (0..rank).rev().collect());
                let y = self.op(cx, Op::Transpose { perm }, &[x])?;
                self.define(cx, 0, y)
            }
            "Pad" => self.pad(cx),
            "Softmax" | "LogSoftmax" => self.softmax(cx),
            "Identity" => {
                cx.check_attrs(&[])?;
                let x = self.value(cx.input(0)?)?;
                self.define(cx, 0, x)
            }
            "Dropout" => {
                cx.check_attrs(&["ratio", "is_test", "seed", "training_mode"])?;
                if let Some(mask) = cx.node.outputs.get(1).filter(|s| !s.is_empty()) {
                    let used = self.consumers.contains_key(mask.as_str())
                        || self.graph.outputs.iter().any(|o| &o.name == mask);
                    if used {
                        return Err(cx.err("the mask output is not supported"));
                    }
                }
                if let Some(t) = self.const_input(cx, 2, "training_mode")? {
                    if matches!(t.data(), TensorData::Bool(v) if v.iter().any(|&b| b)) {
                        return Err(cx.err("training_mode = true is not supported"));
                    }
                }
                let x = self.value(cx.input(0)?)?;
                self.define(cx, 0, x)
            }
            "Constant" => self.constant(cx),
            "QuantizeLinear" => self.quantize(cx),
            "DequantizeLinear" => self.dequantize(cx),
            "QLinearConv" => self.qlinear_conv(cx),
            "QLinearMatMul" => self.qlinear_matmul(cx),
            other => Err(cx.err(format!("op {other} is not supported"))),
        }
    }

    // ---- windows -------------------------------------------------------------------------

    /// Strides, pads and dilations of a 2-D window of `kernel` over input `x_shape`.
    fn window(
        &self,
        cx: &NodeCx,
        x_shape: &[usize],
        kernel: [usize; 2],
    ) -> R<(Vec<i64>, Vec<i64>, Vec<i64>)> {
        if x_shape.len() != 4 {
            return Err(cx.err(format!(
                "only 2-D windows over rank-4 NCHW inputs are supported, found an input of shape {x_shape:?}"
            )));
        }
        let in_range = |attr: &str, v: &[i64], len: usize, min: i64| -> R<()> {
            if v.len() != len || v.iter().any(|&x| !(min..=MAX_WINDOW).contains(&x)) {
                return Err(cx.bad_attr(
                    attr,
                    &format!("is not supported (expected {len} values in {min}..={MAX_WINDOW})"),
                ));
            }
            Ok(())
        };
        let strides = cx.ints("strides")?.unwrap_or_else(|| vec![1, 1]);
        in_range("strides", &strides, 2, 1)?;
        let dilations = cx.ints("dilations")?.unwrap_or_else(|| vec![1, 1]);
        in_range("dilations", &dilations, 2, 1)?;
        let auto_pad = cx.string("auto_pad", "NOTSET")?;
        let pads = match auto_pad.as_str() {
            "NOTSET" => {
                let pads = cx.ints("pads")?.unwrap_or_else(|| vec![0; 4]);
                in_range("pads", &pads, 4, 0)?;
                pads
            }
            "VALID" => vec![0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut pads = vec![0i64; 4];
                for d in 0..2 {
                    let input = x_shape[d + 2] as i64;
                    let (s, k, dil) = (strides[d], kernel[d] as i64, dilations[d]);
                    let out = (input + s - 1) / s;
                    let total = ((out - 1) * s + (k - 1) * dil + 1 - input).max(0);
                    let small = total / 2;
                    let (begin, end) = if auto_pad == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    pads[d] = begin;
                    pads[d + 2] = end;
                }
                pads
            }
            _ => return Err(cx.bad_attr("auto_pad", "is not supported")),
        };
        Ok((strides, pads, dilations))
    }

    fn kernel_attr(&self, cx: &NodeCx) -> R<[usize; 2]> {
        match cx.ints("kernel_shape")?.as_deref() {
            Some(&[h, w]) if (1..=MAX_WINDOW).contains(&h) && (1..=MAX_WINDOW).contains(&w) => {
                Ok([h as usize, w as usize])
            }
            Some(_) => Err(cx.bad_attr(
                "kernel_shape",
                "is not supported (expected 2 positive values)",
            )),
            None => Err(cx.err("attribute `kernel_shape` is required")),
        }
    }

    // ---- Conv and BatchNormalization ---------------------------------------------------

    fn conv(&mut self, cx: &NodeCx, index: usize) -> R<()> {
        cx.check_attrs(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ])?;
        let x = self.value(cx.input(0)?)?;
        let fold = self.bn_fold(index).ok();
        let (w, b) = match &fold {
            Some(fold) => {
                let w_name = cx.input(1)?;
                let w_dims = self.tensor(w_name).map(|t| t.dims().to_vec());
                let w_dims = w_dims.unwrap_or_default();
                let trainable = self.opts.trainable;
                let ty = TensorType::f32(&w_dims);
                let bias_ty = TensorType::f32(&[fold.bias.len()]);
                let mut bld = self.builder();
                bld.named(w_name);
                let w = bld
                    .param(
                        w_name,
                        ty,
                        trainable,
                        Some(mite_ir::TensorData::F32(fold.weight.clone())),
                    )
                    .map_err(|e| cx.err(e.to_string()))?;
                bld.named(fold.bias_name.clone());
                let b = bld
                    .param(
                        &fold.bias_name,
                        bias_ty,
                        trainable,
                        Some(mite_ir::TensorData::F32(fold.bias.clone())),
                    )
                    .map_err(|e| cx.err(e.to_string()))?;
                (w, Some(b))
            }
            None => {
                let w = self.value(cx.input(1)?)?;
                let b = match cx.opt_input(2) {
                    Some(name) => Some(self.value(name)?),
                    None => None,
                };
                (w, b)
            }
        };
        let (x_ty, w_ty) = (self.ty(x), self.ty(w));
        if w_ty.rank() != 4 {
            return Err(cx.err(format!(
                "only 2-D convolutions are supported, found weight {w_ty}"
            )));
        }
        let kernel = [w_ty.shape[2], w_ty.shape[3]];
        if let Some(ks) = cx.ints("kernel_shape")? {
            if ks.len() != 2 || ks[0] as usize != kernel[0] || ks[1] as usize != kernel[1] {
                return Err(
                    cx.bad_attr("kernel_shape", &format!("does not match the weight {w_ty}"))
                );
            }
        }
        let (strides, pads, dilations) = self.window(cx, &x_ty.shape, kernel)?;
        let groups = cx.int("group", 1)?;
        let mut operands = vec![x, w];
        operands.extend(b);
        let y = self.op(
            cx,
            Op::Conv2d {
                strides,
                pads,
                dilations,
                groups,
            },
            &operands,
        )?;
        match fold {
            Some(fold) => {
                self.folded.insert(fold.bn);
                let bn = &self.graph.nodes[fold.bn];
                let bn_cx = NodeCx {
                    node: bn,
                    label: node_label(bn, fold.bn),
                };
                self.define(&bn_cx, 0, y)?;
                self.define(cx, 0, y)
            }
            None => self.define(cx, 0, y),
        }
    }

    /// Folds the `BatchNormalization` reading the output of `Conv` node `conv`, or says why not.
    fn bn_fold(&self, conv: usize) -> Result<BnFold, String> {
        let node = &self.graph.nodes[conv];
        let out = node.outputs.first().map(String::as_str).unwrap_or("");
        let users = self.consumers.get(out).map(Vec::as_slice).unwrap_or(&[]);
        let [bn] = users else {
            return Err(format!(
                "the Conv output `{out}` must be read by this node only"
            ));
        };
        let bn_node = &self.graph.nodes[*bn];
        if bn_node.op_type != "BatchNormalization" || !bn_node.is_standard_domain() {
            return Err("the Conv is not followed by a BatchNormalization".into());
        }
        if self.graph.outputs.iter().any(|o| o.name == out) {
            return Err(format!("the Conv output `{out}` is also a graph output"));
        }
        let bcx = NodeCx {
            node: bn_node,
            label: String::new(),
        };
        bcx.check_attrs(&["epsilon", "momentum", "spatial", "training_mode"])
            .map_err(|e| e.to_string())?;
        if bcx.int("training_mode", 0).map_err(|e| e.to_string())? != 0 {
            return Err("training_mode = 1 is not supported".into());
        }
        if bcx.int("spatial", 1).map_err(|e| e.to_string())? != 1 {
            return Err("spatial = 0 is not supported".into());
        }
        if bn_node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
            return Err("the running statistics outputs are not supported".into());
        }
        let eps = bcx.float("epsilon", 1e-5).map_err(|e| e.to_string())?;
        let w_name = node.inputs.get(1).map(String::as_str).unwrap_or("");
        let only_here = |name: &str| self.consumers.get(name).is_some_and(|u| u.len() == 1);
        let w = match self.graph.initializers.get(w_name) {
            Some(t) if only_here(w_name) => t,
            _ => {
                return Err(format!(
                    "the Conv weight `{w_name}` must be a float initializer used only by the Conv"
                ))
            }
        };
        let Some(wv) = w.data().as_f32() else {
            return Err(format!("the Conv weight `{w_name}` must be FLOAT"));
        };
        let co = w.dims().first().copied().unwrap_or(0);
        let conv_bias = match node.inputs.get(2).filter(|s| !s.is_empty()) {
            None => None,
            Some(b) => match self.graph.initializers.get(b).and_then(|t| t.data().as_f32()) {
                Some(v) if only_here(b) && v.len() == co => Some((b.clone(), v)),
                _ => {
                    return Err(format!(
                        "the Conv bias `{b}` must be a float initializer of {co} elements used only by the Conv"
                    ))
                }
            },
        };
        let mut params = Vec::new();
        for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            let name = bn_node.inputs.get(i).map(String::as_str).unwrap_or("");
            match self.tensor(name).and_then(|t| t.data().as_f32()) {
                Some(v) if v.len() == co => params.push(v),
                _ => {
                    return Err(format!(
                        "{what} (`{name}`) must be a FLOAT constant of {co} elements"
                    ))
                }
            }
        }
        let bias_name = match &conv_bias {
            Some((name, _)) => name.clone(),
            None => {
                let beta = bn_node.inputs.get(2).cloned().unwrap_or_default();
                if !only_here(&beta) || !self.graph.initializers.contains_key(&beta) {
                    return Err(format!(
                        "the Conv has no bias and B (`{beta}`) is not an initializer used only by this node"
                    ));
                }
                beta
            }
        };
        let per = wv.len().checked_div(co).unwrap_or(0);
        let mut weight = Vec::with_capacity(wv.len());
        let mut bias = Vec::with_capacity(co);
        for c in 0..co {
            let k = f64::from(params[0][c]) / (f64::from(params[3][c]) + f64::from(eps)).sqrt();
            weight.extend(
                wv[c * per..(c + 1) * per]
                    .iter()
                    .map(|&x| (f64::from(x) * k) as f32),
            );
            let b0 = conv_bias.as_ref().map_or(0.0, |(_, v)| f64::from(v[c]));
            bias.push(((b0 - f64::from(params[2][c])) * k + f64::from(params[1][c])) as f32);
        }
        Ok(BnFold {
            bn: *bn,
            weight,
            bias,
            bias_name,
        })
    }

    fn bn_refusal(&self, cx: &NodeCx, _index: usize) -> ImportErrorKind {
        let input = cx.node.inputs.first().map(String::as_str).unwrap_or("");
        let reason = match self.producers.get(input) {
            Some(&p) if self.graph.nodes[p].op_type == "Conv" => match self.bn_fold(p) {
                Ok(_) => "the preceding Conv could not be converted".to_owned(),
                Err(reason) => reason,
            },
            _ => format!("its input `{input}` is not produced by a Conv"),
        };
        cx.err(format!("cannot be folded into a preceding Conv: {reason}"))
    }

    // ---- Gemm and MatMul ---------------------------------------------------------------

    fn transpose2d(&mut self, cx: &NodeCx, v: Value) -> R<Value> {
        self.op(cx, Op::Transpose { perm: vec![1, 0] }, &[v])
    }

    fn scalar_const(&mut self, cx: &NodeCx, what: &str, x: f32) -> R<Value> {
        let base = format!("{}.{what}", cx.label);
        self.fresh_const(
            &base,
            TensorType::f32(&[]),
            mite_ir::TensorData::F32(vec![x]),
        )
    }

    fn gemm(&mut self, cx: &NodeCx) -> R<()> {
        cx.check_attrs(&["alpha", "beta", "transA", "transB", "broadcast"])?;
        let alpha = cx.float("alpha", 1.0)?;
        let beta = cx.float("beta", 1.0)?;
        let trans_a = cx.int("transA", 0)? != 0;
        let trans_b = cx.int("transB", 0)? != 0;
        let a_name = cx.input(0)?;
        let b_name = cx.input(1)?;
        let b_is_weight = self.is_weight_input(b_name);
        let mut a = self.value(a_name)?;
        let b = self.value(b_name)?;
        for (v, what) in [(a, "A"), (b, "B")] {
            if self.ty(v).rank() != 2 {
                return Err(cx.err(format!("{what} must be 2-D, found {}", self.ty(v))));
            }
        }
        if trans_a {
            a = self.transpose2d(cx, a)?;
        }
        let c = match cx.opt_input(2) {
            Some(name) => Some(self.value(name)?),
            None => None,
        };
        let mut y = if b_is_weight {
            // nn.linear wants the weight as [N, K].
            let w = if trans_b { b } else { self.transpose2d(cx, b)? };
            let n = self.ty(w).shape[0];
            let bias = match c {
                Some(c) if alpha == 1.0 && beta == 1.0 && self.ty(c).shape.as_slice() == [n] => {
                    Some(c)
                }
                _ => None,
            };
            let mut operands = vec![a, w];
            operands.extend(bias);
            let y = self.op(cx, Op::Linear {}, &operands)?;
            if bias.is_some() {
                return self.define(cx, 0, y);
            }
            y
        } else {
            let b = if trans_b { self.transpose2d(cx, b)? } else { b };
            self.op(cx, Op::MatMul {}, &[a, b])?
        };
        if alpha != 1.0 {
            let k = self.scalar_const(cx, "alpha", alpha)?;
            y = self.op(cx, Op::Mul {}, &[y, k])?;
        }
        if let Some(mut c) = c {
            if beta != 1.0 {
                let k = self.scalar_const(cx, "beta", beta)?;
                c = self.op(cx, Op::Mul {}, &[c, k])?;
            }
            let y_shape = self.ty(y).shape.clone();
            y = self.op(cx, Op::Add {}, &[y, c])?;
            if self.ty(y).shape != y_shape {
                return Err(cx.err("C must broadcast to the shape of A · B"));
            }
        }
        self.define(cx, 0, y)
    }

    /// Whether `name` is a weight initializer, directly or through a `DequantizeLinear`.
    fn is_weight_input(&self, name: &str) -> bool {
        if self.weights.contains(name) {
            return true;
        }
        match self.producers.get(name) {
            Some(&p) => {
                let n = &self.graph.nodes[p];
                n.op_type == "DequantizeLinear"
                    && n.inputs.first().is_some_and(|i| self.weights.contains(i))
            }
            None => false,
        }
    }

    fn matmul(&mut self, cx: &NodeCx) -> R<()> {
        cx.check_attrs(&[])?;
        let a = self.value(cx.input(0)?)?;
        let b = self.value(cx.input(1)?)?;
        let (a_ty, b_ty) = (self.ty(a), self.ty(b));
        if b_ty.rank() == 2 && a_ty.rank() >= 2 {
            let k = b_ty.shape[0];
            let n = b_ty.shape[1];
            if a_ty.shape[a_ty.rank() - 1] != k {
                return Err(cx.err(format!("cannot multiply {a_ty} by {b_ty}")));
            }
            let rows = a_ty.num_elements() / k.max(1);
            let a2 = if a_ty.rank() == 2 {
                a
            } else {
                let shape = vec![rows as i64, k as i64];
                self.op(cx, Op::Reshape { shape }, &[a])?
            };
            let w = self.transpose2d(cx, b)?;
            let mut y = self.op(cx, Op::Linear {}, &[a2, w])?;
            if a_ty.rank() != 2 {
                let mut shape: Vec<i64> = a_ty.shape.iter().map(|&d| d as i64).collect();
                if let Some(last) = shape.last_mut() {
                    *last = n as i64;
                }
                y = self.op(cx, Op::Reshape { shape }, &[y])?;
            }
            return self.define(cx, 0, y);
        }
        if a_ty.rank() != b_ty.rank() {
            return Err(cx.err(format!(
                "operands of different ranks are only supported with a 2-D B, found {a_ty} and {b_ty}"
            )));
        }
        let y = self.op(cx, Op::MatMul {}, &[a, b])?;
        self.define(cx, 0, y)
    }

    // ---- elementwise, pooling, shapes -----------------------------------------------------

    fn clip(&mut self, cx: &NodeCx) -> R<()> {
        let (min, max) = if self.opset < 11 {
            cx.check_attrs(&["min", "max"])?;
            (
                cx.float("min", f32::NEG_INFINITY)?,
                cx.float("max", f32::INFINITY)?,
            )
        } else {
            cx.check_attrs(&[])?;
            (
                self.const_scalar_f32(cx, 1, "min")?
                    .unwrap_or(f32::NEG_INFINITY),
                self.const_scalar_f32(cx, 2, "max")?
                    .unwrap_or(f32::INFINITY),
            )
        };
        let x = self.value(cx.input(0)?)?;
        let y = self.op(cx, Op::Clip { min, max }, &[x])?;
        self.define(cx, 0, y)
    }

    fn pool(&mut self, cx: &NodeCx) -> R<()> {
        let is_max = cx.node.op_type == "MaxPool";
        if is_max {
            cx.check_attrs(&[
                "auto_pad",
                "ceil_mode",
                "dilations",
                "kernel_shape",
                "pads",
                "storage_order",
                "strides",
            ])?;
            if cx.int("storage_order", 0)? != 0 {
                return Err(cx.bad_attr("storage_order", "is not supported"));
            }
            cx.only_outputs(1, "the Indices output")?;
        } else {
            cx.check_attrs(&[
                "auto_pad",
                "ceil_mode",
                "count_include_pad",
                "dilations",
                "kernel_shape",
                "pads",
                "strides",
            ])?;
        }
        if cx.int("ceil_mode", 0)? != 0 {
            return Err(cx.bad_attr("ceil_mode", "is not supported"));
        }
        let kernel = self.kernel_attr(cx)?;
        let x = self.value(cx.input(0)?)?;
        let x_ty = self.ty(x);
        let (strides, pads, dilations) = self.window(cx, &x_ty.shape, kernel)?;
        let kernel = vec![kernel[0] as i64, kernel[1] as i64];
        let op = if is_max {
            Op::MaxPool {
                kernel,
                strides,
                pads,
                dilations,
            }
        } else {
            if dilations.iter().any(|&d| d != 1) {
                return Err(cx.bad_attr("dilations", "is not supported"));
            }
            Op::AvgPool {
                kernel,
                strides,
                pads,
                count_include_pad: cx.int("count_include_pad", 0)? != 0,
            }
        };
        let y = self.op(cx, op, &[x])?;
        self.define(cx, 0, y)
    }

    /// `ReduceMean` over the spatial axes of a rank-4 tensor: `nn.global_avg_pool`, then
    /// `nn.reshape` to `[N, C]` when `keepdims = 0`. Axes are an attribute below opset 18 and a
    /// constant input from 18.
    fn reduce_mean(&mut self, cx: &NodeCx) -> R<()> {
        let axes = if self.opset < 18 {
            cx.check_attrs(&["axes", "keepdims"])?;
            cx.ints("axes")?
        } else {
            cx.check_attrs(&["keepdims", "noop_with_empty_axes"])?;
            self.const_ints(cx, 1, "axes")?
        };
        let keepdims = cx.int("keepdims", 1)? != 0;
        let x = self.value(cx.input(0)?)?;
        let x_ty = self.ty(x);
        let mut axes: Vec<i64> = axes
            .unwrap_or_default()
            .iter()
            .map(|&a| if a < 0 { a + x_ty.rank() as i64 } else { a })
            .collect();
        axes.sort_unstable();
        if x_ty.rank() != 4 || axes != [2, 3] {
            return Err(cx.err(format!(
                "only the mean over H and W (axes [2, 3]) of a rank-4 tensor is supported, found \
                 axes {axes:?} of {x_ty}"
            )));
        }
        let (n, c) = (x_ty.shape[0] as i64, x_ty.shape[1] as i64);
        let y = self.op(cx, Op::GlobalAvgPool {}, &[x])?;
        let y = if keepdims {
            y
        } else {
            self.op(cx, Op::Reshape { shape: vec![n, c] }, &[y])?
        };
        self.define(cx, 0, y)
    }

    fn reshape(&mut self, cx: &NodeCx) -> R<()> {
        let requested = if self.opset < 5 {
            cx.check_attrs(&["shape"])?;
            cx.ints("shape")?
        } else {
            cx.check_attrs(&["allowzero"])?;
            self.const_ints(cx, 1, "shape")?
        };
        let Some(requested) = requested else {
            return Err(cx.err("the target shape is missing"));
        };
        let allowzero = cx.int("allowzero", 0)? != 0;
        let x = self.value(cx.input(0)?)?;
        let x_ty = self.ty(x);
        let total = x_ty.num_elements();
        let mut shape = Vec::with_capacity(requested.len());
        let mut unknown = None;
        for (i, &d) in requested.iter().enumerate() {
            let dim = match d {
                -1 if unknown.is_none() => {
                    unknown = Some(i);
                    1
                }
                0 if !allowzero => match x_ty.shape.get(i) {
                    Some(&n) => n,
                    None => {
                        return Err(cx.err(format!(
                            "shape {requested:?}: 0 at position {i} copies a dimension the input {x_ty} does not have"
                        )))
                    }
                },
                d if d > 0 && d <= MAX_ELEMENTS as i64 => d as usize,
                _ => {
                    return Err(cx.err(format!(
                        "shape {requested:?} is not supported (dimensions must be positive, 0 or one -1)"
                    )))
                }
            };
            shape.push(dim);
        }
        let known = crate::element_count(&shape).unwrap_or(usize::MAX);
        if let Some(i) = unknown {
            if known == 0 || total % known != 0 {
                return Err(cx.err(format!("cannot reshape {x_ty} to {requested:?}")));
            }
            shape[i] = total / known;
        } else if known != total {
            return Err(cx.err(format!("cannot reshape {x_ty} to {requested:?}")));
        }
        let shape = shape.iter().map(|&d| d as i64).collect();
        let y = self.op(cx, Op::Reshape { shape }, &[x])?;
        self.define(cx, 0, y)
    }

    fn pad(&mut self, cx: &NodeCx) -> R<()> {
        let (pads, value) = if self.opset < 11 {
            cx.check_attrs(&["mode", "pads", "value"])?;
            (cx.ints("pads")?, cx.float("value", 0.0)?)
        } else {
            cx.check_attrs(&["mode"])?;
            if cx.opt_input(3).is_some() {
                return Err(cx.err("the axes input is not supported"));
            }
            (
                self.const_ints(cx, 1, "pads")?,
                self.const_scalar_f32(cx, 2, "constant_value")?
                    .unwrap_or(0.0),
            )
        };
        let mode = cx.string("mode", "constant")?;
        if mode != "constant" {
            return Err(cx.bad_attr("mode", "is not supported (only \"constant\")"));
        }
        let Some(pads) = pads else {
            return Err(cx.err("the pads are missing"));
        };
        if pads.iter().any(|&p| !(0..=MAX_WINDOW).contains(&p)) {
            return Err(cx.err(format!(
                "pads {pads:?} are not supported (expected values in 0..={MAX_WINDOW})"
            )));
        }
        let x = self.value(cx.input(0)?)?;
        let y = self.op(cx, Op::Pad { pads, value }, &[x])?;
        self.define(cx, 0, y)
    }

    fn softmax(&mut self, cx: &NodeCx) -> R<()> {
        cx.check_attrs(&["axis"])?;
        let log = cx.node.op_type == "LogSoftmax";
        let make = |axis| {
            if log {
                Op::LogSoftmax { axis }
            } else {
                Op::Softmax { axis }
            }
        };
        let x = self.value(cx.input(0)?)?;
        let x_ty = self.ty(x);
        let rank = x_ty.rank() as i64;
        if self.opset >= 13 {
            let axis = cx.int("axis", -1)?;
            let y = self.op(cx, make(axis), &[x])?;
            return self.define(cx, 0, y);
        }
        // Below opset 13 the input is coerced to 2-D [prod(d < axis), prod(d ≥ axis)].
        let axis = cx.int("axis", 1)?;
        let a = if axis < 0 { axis + rank } else { axis };
        if !(0..=rank).contains(&a) || rank == 0 {
            return Err(cx.bad_attr("axis", &format!("is out of range for {x_ty}")));
        }
        if a == rank - 1 {
            let y = self.op(cx, make(-1), &[x])?;
            return self.define(cx, 0, y);
        }
        let outer: usize = x_ty.shape[..a as usize].iter().product();
        let inner: usize = x_ty.shape[a as usize..].iter().product();
        let flat = self.op(
            cx,
            Op::Reshape {
                shape: vec![outer as i64, inner as i64],
            },
            &[x],
        )?;
        let s = self.op(cx, make(1), &[flat])?;
        let shape = x_ty.shape.iter().map(|&d| d as i64).collect();
        let y = self.op(cx, Op::Reshape { shape }, &[s])?;
        self.define(cx, 0, y)
    }

    fn constant(&mut self, cx: &NodeCx) -> R<()> {
        let name = cx.output(0)?;
        let mut found = None;
        for (attr, value) in &cx.node.attributes {
            let t = match (attr.as_str(), value) {
                ("value", AttrValue::Tensor(t)) => t.clone(),
                ("value_float", AttrValue::Float(x)) => Tensor::scalar_f32(*x),
                ("value_floats", AttrValue::Floats(v)) => {
                    Tensor::vector(TensorData::F32(v.clone()))
                }
                ("value_int", AttrValue::Int(x)) => Tensor::new(vec![], TensorData::I64(vec![*x]))
                    .map_err(|e| cx.err(e.to_string()))?,
                ("value_ints", AttrValue::Ints(v)) => Tensor::vector(TensorData::I64(v.clone())),
                _ => {
                    return Err(cx.err(format!(
                        "attribute `{attr}` = {} is not supported",
                        ShowAttr(value)
                    )))
                }
            };
            if found.replace(t).is_some() {
                return Err(cx.err("exactly one value attribute is expected"));
            }
        }
        let Some(t) = found else {
            return Err(cx.err("a value attribute is required"));
        };
        self.consts.insert(name.to_owned(), t);
        Ok(())
    }

    // ---- quantization ---------------------------------------------------------------------

    /// Reads scale input `si` and zero point input `zi` for a tensor of rank `rank`.
    fn qparams(&self, cx: &NodeCx, si: usize, zi: usize, axis: i64, rank: usize) -> R<QParams> {
        let Some(scale) = self.const_input(cx, si, "scale")? else {
            return Err(cx.err(format!("required input {si} (scale) is missing")));
        };
        let Some(scales) = scale.data().as_f32() else {
            return Err(cx.err(format!(
                "the scale must be FLOAT, found {}",
                scale.data_type()
            )));
        };
        let zp = self.const_input(cx, zi, "zero point")?;
        let (zero_points, zp_type) = match zp {
            None => (vec![0; scales.len()], None),
            Some(t) => {
                let v: Vec<i64> = match t.data() {
                    TensorData::I8(v) => v.iter().map(|&x| x.into()).collect(),
                    TensorData::U8(v) => v.iter().map(|&x| x.into()).collect(),
                    TensorData::I32(v) => v.iter().map(|&x| x.into()).collect(),
                    other => {
                        return Err(cx.err(format!(
                            "zero points of type {} are not supported (INT8, UINT8 or INT32)",
                            other.data_type()
                        )))
                    }
                };
                (v, Some(t.data_type()))
            }
        };
        if zero_points.len() != scales.len() || scales.is_empty() {
            return Err(cx.err(format!(
                "{} scales and {} zero points given",
                scales.len(),
                zero_points.len()
            )));
        }
        let per_tensor = scale.dims().is_empty() || (scales.len() == 1 && scale.dims().len() <= 1);
        let axis = if per_tensor {
            None
        } else {
            let r = rank as i64;
            let a = if axis < 0 { axis + r } else { axis };
            if !(0..r).contains(&a) || scale.dims().len() != 1 {
                return Err(cx.bad_attr(
                    "axis",
                    &format!("is not supported for per-axis parameters on a rank-{rank} tensor"),
                ));
            }
            Some(a as usize)
        };
        Ok(QParams {
            scales: scales.to_vec(),
            zero_points,
            zp_type,
            axis,
        })
    }

    /// A quantized global for initializer `name` (`int8`, `uint8` or `int32`) read through a
    /// dequantize with parameters `qp`.
    fn quantized_global(&mut self, cx: &NodeCx, name: &str, qp: &QParams) -> R<Value> {
        let Some(t) = self.tensor(name).cloned() else {
            return Err(cx.err(format!("`{name}` is not a constant")));
        };
        let (elem, data, shift) = match t.data() {
            TensorData::I8(v) => (ElemType::I8, mite_ir::TensorData::I8(v.clone()), 0),
            TensorData::U8(v) => (
                ElemType::I8,
                mite_ir::TensorData::I8(v.iter().map(|&x| (i16::from(x) - 128) as i8).collect()),
                -128,
            ),
            TensorData::I32(v) => (ElemType::I32, mite_ir::TensorData::I32(v.clone()), 0),
            other => {
                return Err(cx.err(format!(
                    "dequantizing a {} tensor (`{name}`) is not supported",
                    other.data_type()
                )))
            }
        };
        check_zp_type(cx, t.data_type(), qp.zp_type)?;
        let quant = qp.quant(shift)?;
        let ty = TensorType::quantized(t.dims(), elem, quant);
        if let Some(&v) = self.values.get(name) {
            if self.ty(v) == ty {
                return Ok(v);
            }
            return Err(cx.err(format!(
                "`{name}` is dequantized with different parameters elsewhere"
            )));
        }
        let v = self.global(name, ty, data)?;
        self.values.insert(name.to_owned(), v);
        if shift != 0 {
            self.uint8.insert(name.to_owned());
        }
        Ok(v)
    }

    /// Checks that runtime value `name` (IR value `v`) carries `qp`, giving a quantization to
    /// a graph input that has none. Returns the value.
    fn quantized_value(&mut self, cx: &NodeCx, name: &str, qp: &QParams) -> R<Value> {
        if self.tensor(name).is_some() {
            return self.quantized_global(cx, name, qp);
        }
        let v = self.value(name)?;
        let ty = self.ty(v);
        let shift = if self.uint8.contains(name) { -128 } else { 0 };
        let onnx_type = match (ty.elem, shift) {
            (ElemType::I8, 0) => DataType::I8,
            (ElemType::I8, _) => DataType::U8,
            (ElemType::I32, _) => DataType::I32,
            _ => {
                return Err(cx.err(format!(
                    "input `{name}` must be a quantized integer tensor, found {ty}"
                )))
            }
        };
        check_zp_type(cx, onnx_type, qp.zp_type)?;
        let want = qp.quant(shift)?;
        match &ty.quant {
            Some(q) if *q == want => Ok(v),
            None if matches!(self.func_mut().value(v).def, ValueDef::Arg(_)) => {
                let typed = ty.with_quant(Some(want));
                mite_ir::infer::check_type(&typed).map_err(|e| cx.err(e.to_string()))?;
                self.func_mut().set_ty(v, typed);
                Ok(v)
            }
            Some(q) => Err(cx.err(format!(
                "input `{name}` is quantized as {q} but read with {want}; only matching parameters are supported"
            ))),
            None => Err(cx.err(format!("input `{name}` has no quantization parameters"))),
        }
    }

    fn dequantize(&mut self, cx: &NodeCx) -> R<()> {
        cx.check_attrs(&["axis", "block_size"])?;
        if cx.int("block_size", 0)? != 0 {
            return Err(cx.bad_attr("block_size", "is not supported"));
        }
        let x_name = cx.input(0)?;
        let rank = match self.tensor(x_name) {
            Some(t) => t.dims().len(),
            None => {
                let v = self.value(x_name)?;
                self.ty(v).rank()
            }
        };
        let qp = self.qparams(cx, 1, 2, cx.int("axis", 1)?, rank)?;
        let x = self.quantized_value(cx, x_name, &qp)?;
        let y = self.op(cx, Op::Dequantize {}, &[x])?;
        self.define(cx, 0, y)
    }

    fn quantize(&mut self, cx: &NodeCx) -> R<()> {
        cx.check_attrs(&["axis", "saturate", "block_size", "output_dtype"])?;
        if cx.int("block_size", 0)? != 0 {
            return Err(cx.bad_attr("block_size", "is not supported"));
        }
        if cx.int("output_dtype", 0)? != 0 {
            return Err(cx.bad_attr("output_dtype", "is not supported"));
        }
        let x = self.value(cx.input(0)?)?;
        let rank = self.ty(x).rank();
        let qp = self.qparams(cx, 1, 2, cx.int("axis", 1)?, rank)?;
        if qp.axis.is_some() {
            return Err(cx.err("per-axis quantization of activations is not supported"));
        }
        let shift = match qp.zp_type {
            Some(DataType::I8) => 0,
            None | Some(DataType::U8) => -128,
            Some(other) => {
                return Err(cx.err(format!(
                    "quantizing to {other} is not supported (INT8 or UINT8)"
                )))
            }
        };
        let y = self.op_quant(cx, Op::Quantize {}, &[x], qp.quant(shift)?)?;
        if shift != 0 {
            self.uint8.insert(cx.output(0)?.to_owned());
        }
        self.define(cx, 0, y)
    }

    /// The output quantization of a `QLinear*` node from inputs `si` and `zi`.
    fn qlinear_output(&self, cx: &NodeCx, si: usize, zi: usize) -> R<(Quant, bool)> {
        let qp = self.qparams(cx, si, zi, 1, 4)?;
        if qp.axis.is_some() {
            return Err(cx.err("the output must be quantized per tensor"));
        }
        let u8 = matches!(qp.zp_type, None | Some(DataType::U8));
        if !matches!(qp.zp_type, None | Some(DataType::U8) | Some(DataType::I8)) {
            return Err(cx.err("the output zero point must be INT8 or UINT8"));
        }
        Ok((qp.quant(if u8 { -128 } else { 0 })?, u8))
    }

    fn qlinear_conv(&mut self, cx: &NodeCx) -> R<()> {
        cx.check_attrs(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ])?;
        let x_name = cx.input(0)?;
        let x_rank = {
            let v = self.value(x_name)?;
            self.ty(v).rank()
        };
        let xq = self.qparams(cx, 1, 2, 1, x_rank)?;
        let x = self.quantized_value(cx, x_name, &xq)?;
        let w_name = cx.input(3)?;
        let w_rank = self.tensor(w_name).map_or(0, |t| t.dims().len());
        let wq = self.qparams(cx, 4, 5, 0, w_rank)?;
        let w = self.quantized_global(cx, w_name, &wq)?;
        let (yq, u8) = self.qlinear_output(cx, 6, 7)?;
        let w_ty = self.ty(w);
        if w_ty.rank() != 4 {
            return Err(cx.err(format!(
                "only 2-D convolutions are supported, found weight {w_ty}"
            )));
        }
        let mut operands = vec![x, w];
        if let Some(b_name) = cx.opt_input(8) {
            let co = w_ty.shape[0];
            let sx = xq.scales[0];
            let scales: Vec<f32> = (0..co)
                .map(|c| sx * wq.scales.get(c).copied().unwrap_or(wq.scales[0]))
                .collect();
            let bq = QParams {
                scales,
                zero_points: vec![0; co],
                zp_type: Some(DataType::I32),
                axis: Some(0),
            };
            operands.push(self.quantized_global(cx, b_name, &bq)?);
        }
        let kernel = [w_ty.shape[2], w_ty.shape[3]];
        let x_shape = self.ty(x).shape;
        let (strides, pads, dilations) = self.window(cx, &x_shape, kernel)?;
        let op = Op::QConv2d {
            strides,
            pads,
            dilations,
            groups: cx.int("group", 1)?,
            act_min: -128,
            act_max: 127,
        };
        let y = self.op_quant(cx, op, &operands, yq)?;
        if u8 {
            self.uint8.insert(cx.output(0)?.to_owned());
        }
        self.define(cx, 0, y)
    }

    fn qlinear_matmul(&mut self, cx: &NodeCx) -> R<()> {
        cx.check_attrs(&[])?;
        let a_name = cx.input(0)?;
        let a_rank = {
            let v = self.value(a_name)?;
            self.ty(v).rank()
        };
        let aq = self.qparams(cx, 1, 2, 1, a_rank)?;
        let a = self.quantized_value(cx, a_name, &aq)?;
        let b_name = cx.input(3)?;
        let b_rank = self.tensor(b_name).map_or(0, |t| t.dims().len());
        let bq = self.qparams(cx, 4, 5, 1, b_rank)?;
        let b = self.quantized_global(cx, b_name, &bq)?;
        if b_rank != 2 || a_rank != 2 {
            return Err(cx.err("only 2-D operands are supported"));
        }
        let (yq, u8) = self.qlinear_output(cx, 6, 7)?;
        let w = self.transpose2d(cx, b)?;
        let y = self.op_quant(
            cx,
            Op::QLinear {
                act_min: -128,
                act_max: 127,
            },
            &[a, w],
            yq,
        )?;
        if u8 {
            self.uint8.insert(cx.output(0)?.to_owned());
        }
        self.define(cx, 0, y)
    }
}

/// Checks that a zero point's type goes with the quantized tensor's type.
fn check_zp_type(cx: &NodeCx, data: DataType, zp: Option<DataType>) -> R<()> {
    match zp {
        Some(z) if z != data => Err(cx.err(format!(
            "the zero point is {z} but the quantized tensor is {data}"
        ))),
        _ => Ok(()),
    }
}

/// The IR element type and data of an ONNX tensor, for the types mite represents.
pub(crate) fn ir_data(t: &Tensor) -> Option<(ElemType, mite_ir::TensorData)> {
    Some(match t.data() {
        TensorData::F32(v) => (ElemType::F32, mite_ir::TensorData::F32(v.clone())),
        TensorData::I8(v) => (ElemType::I8, mite_ir::TensorData::I8(v.clone())),
        TensorData::I32(v) => (ElemType::I32, mite_ir::TensorData::I32(v.clone())),
        TensorData::I64(v) => (ElemType::I64, mite_ir::TensorData::I64(v.clone())),
        TensorData::Bool(v) => (ElemType::I1, mite_ir::TensorData::I1(v.clone())),
        _ => return None,
    })
}
