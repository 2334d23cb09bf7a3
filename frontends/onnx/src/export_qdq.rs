//! Writing a mite module as a standalone ONNX model: int8 `q.` ops in the QDQ form of the
//! paper's models (`../shared/models`), float `nn.` ops as their ONNX operators. onnxruntime runs
//! the result, and mite imports it back into the same int8 ops.
//!
//! | IR | ONNX (opset 13) |
//! |---|---|
//! | `q.quantize` | `QuantizeLinear` (per tensor, `int8`) |
//! | `q.conv2d`, `q.linear` | `DequantizeLinear` of the int8 weight (per output channel, axis 0) and int32 bias, `Conv` / `Gemm` (`transB = 1`), then `QuantizeLinear` |
//! | `q.add`, `q.avg_pool`, `q.global_avg_pool` | `Add`, `AveragePool`, `GlobalAveragePool` of the dequantized inputs, then `QuantizeLinear` |
//! | `q.dequantize` | `DequantizeLinear` |
//! | `nn.flatten`, `nn.reshape`, `nn.max_pool` of int8 values | `DequantizeLinear`, the operator, `QuantizeLinear` with the same parameters |
//! | `nn.conv2d`, `nn.linear`, `nn.add`, `nn.mul`, `nn.relu`, `nn.clip`, `nn.global_avg_pool`, `nn.avg_pool`, `nn.max_pool`, `nn.flatten`, `nn.reshape`, `nn.softmax` | `Conv`, `Gemm`, `Add`, `Mul`, `Relu`, `Clip`, `GlobalAveragePool`, `AveragePool`, `MaxPool`, `Flatten`, `Reshape`, `Softmax` |
//!
//! A clamp of an int8 op narrower than the int8 range of its output (`act_min` / `act_max`, a
//! folded ReLU6) is written as a `Clip` before the `QuantizeLinear`, at the real values of the
//! bounds, which the importer folds back. Every other op is refused by name.

use std::collections::HashMap;

use mite_ir::{ElemType, Function, GlobalData, Module, Op, Quant, TensorType, Value};

use crate::{AttrValue, DataType, Graph, Node, OnnxModel, Tensor, TensorData, ValueInfo};

/// Why a module cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The function does not exist.
    #[error("the module has no function @{0}")]
    NoFunction(String),
    /// An op has no ONNX form here.
    #[error("op {op} ({loc}) cannot be written to ONNX")]
    Unsupported {
        /// The op name.
        op: String,
        /// Its location name, or its position.
        loc: String,
    },
    /// A global has no inline data or has an element type that cannot be written.
    #[error("global @{0} has no data that can be written")]
    Data(String),
    /// A value's type cannot be written (quantization or element type).
    #[error("{0}")]
    Type(String),
}

/// Writes function `func` of `module` as an ONNX model (see the module documentation).
pub fn write_qdq(module: &Module, func: &str) -> Result<OnnxModel, WriteError> {
    let f = module
        .function(func)
        .ok_or_else(|| WriteError::NoFunction(func.to_string()))?;
    let mut w = Writer {
        module,
        f,
        graph: Graph::new(module.name.clone()),
        names: HashMap::new(),
        dq: HashMap::new(),
        counter: 0,
    };
    w.run()?;
    Ok(OnnxModel::new(w.graph))
}

struct Writer<'m> {
    module: &'m Module,
    f: &'m Function,
    graph: Graph,
    /// ONNX name of each value (int8 values: the int8 tensor).
    names: HashMap<Value, String>,
    /// Dequantized float name of int8 values.
    dq: HashMap<Value, String>,
    counter: usize,
}

fn data_type(elem: ElemType) -> Result<DataType, WriteError> {
    Ok(match elem {
        ElemType::F32 => DataType::F32,
        ElemType::I8 => DataType::I8,
        ElemType::I32 => DataType::I32,
        ElemType::I64 => DataType::I64,
        other => {
            return Err(WriteError::Type(format!(
                "element type {other} cannot be written"
            )))
        }
    })
}

fn ints(v: &[i64]) -> AttrValue {
    AttrValue::from(v.to_vec())
}

impl<'m> Writer<'m> {
    fn fresh(&mut self, base: &str) -> String {
        self.counter += 1;
        format!("{base}_{}", self.counter)
    }

    fn init(&mut self, name: &str, dims: &[usize], data: TensorData) -> Result<(), WriteError> {
        let t = Tensor::new(dims.to_vec(), data).map_err(|e| WriteError::Type(e.to_string()))?;
        self.graph.initializers.insert(name.to_string(), t);
        Ok(())
    }

    fn node(&mut self, op: &str, inputs: Vec<String>, output: &str, name: &str) -> &mut Node {
        let node_name = if name.is_empty() {
            format!("{op}_{}", self.graph.nodes.len())
        } else {
            name.to_string()
        };
        self.graph
            .nodes
            .push(Node::new(op, inputs, [output.to_string()]).with_name(node_name));
        self.graph.nodes.last_mut().expect("just pushed")
    }

    /// Scale and zero-point initializers of a quantization (`zp_elem` i8 or i32).
    fn qparams(
        &mut self,
        base: &str,
        q: &Quant,
        n: usize,
        zp_elem: ElemType,
    ) -> Result<(String, String, Option<i64>), WriteError> {
        let (s_name, z_name) = (format!("{base}.scale"), format!("{base}.zero_point"));
        let (scales, zps, axis): (Vec<f32>, Vec<i32>, Option<i64>) = match q {
            Quant::PerTensor { scale, zero_point } => (vec![*scale], vec![*zero_point], None),
            Quant::PerChannel { axis, .. } => (
                (0..n).map(|c| q.scale(c)).collect(),
                (0..n).map(|c| q.zero_point(c)).collect(),
                Some(*axis as i64),
            ),
        };
        let dims: Vec<usize> = if axis.is_some() { vec![n] } else { vec![] };
        self.init(&s_name, &dims, TensorData::F32(scales))?;
        let zdata = match zp_elem {
            ElemType::I32 => TensorData::I32(zps),
            _ => TensorData::I8(zps.iter().map(|&z| z.clamp(-128, 127) as i8).collect()),
        };
        self.init(&z_name, &dims, zdata)?;
        Ok((s_name, z_name, axis))
    }

    /// The float (dequantized) name of value `v`.
    fn float_name(&mut self, v: Value) -> Result<String, WriteError> {
        let ty = self.f.ty(v).clone();
        if ty.quant.is_none() {
            return Ok(self.names[&v].clone());
        }
        if let Some(n) = self.dq.get(&v) {
            return Ok(n.clone());
        }
        let src = self.names[&v].clone();
        let out = self.dequantize(&src, &ty, "")?;
        self.dq.insert(v, out.clone());
        Ok(out)
    }

    fn dequantize(&mut self, src: &str, ty: &TensorType, out: &str) -> Result<String, WriteError> {
        let q = ty.quant.clone().expect("quantized");
        let n = match &q {
            Quant::PerChannel { axis, .. } => ty.shape.get(*axis).copied().unwrap_or(1),
            Quant::PerTensor { .. } => 1,
        };
        let (s, z, axis) = self.qparams(src, &q, n, ty.elem)?;
        let out = if out.is_empty() {
            format!("{src}.dq")
        } else {
            out.to_string()
        };
        let name = format!("{src}.dequantize");
        let node = self.node("DequantizeLinear", vec![src.to_string(), s, z], &out, &name);
        if let Some(a) = axis {
            node.attributes.insert("axis".into(), AttrValue::Int(a));
        }
        Ok(out)
    }

    /// A global read as an initializer (int8 / int32 globals dequantized); returns the float name.
    fn global_float(&mut self, name: &str) -> Result<String, WriteError> {
        let g = &self.module.globals[name];
        let GlobalData::Inline(data) = &g.data else {
            return Err(WriteError::Data(name.to_string()));
        };
        let onnx_data = match data {
            mite_ir::TensorData::F32(v) => TensorData::F32(v.clone()),
            mite_ir::TensorData::I8(v) => TensorData::I8(v.clone()),
            mite_ir::TensorData::I32(v) => TensorData::I32(v.clone()),
            mite_ir::TensorData::I64(v) => TensorData::I64(v.clone()),
            mite_ir::TensorData::I1(_) => return Err(WriteError::Data(name.to_string())),
        };
        if !self.graph.initializers.contains_key(name) {
            let shape = g.ty.shape.to_vec();
            self.init(name, &shape, onnx_data)?;
        }
        match &g.ty.quant {
            None => Ok(name.to_string()),
            Some(_) => {
                let ty = g.ty.clone();
                let out = format!("{name}.dq");
                if self
                    .graph
                    .nodes
                    .iter()
                    .any(|n| n.outputs.first() == Some(&out))
                {
                    return Ok(out);
                }
                self.dequantize(name, &ty, &out)
            }
        }
    }

    /// All operands of an op as float names (globals dequantized).
    fn operands(&mut self, operands: &[Value]) -> Result<Vec<String>, WriteError> {
        (0..operands.len())
            .map(|i| self.operand(operands, i))
            .collect()
    }

    /// A `Conv` node over the operands (`x`, `w`[, `b`]); returns its output name.
    fn conv_node(
        &mut self,
        ops: &[Value],
        strides: &[i64],
        pads: &[i64],
        dilations: &[i64],
        groups: i64,
        label: &str,
    ) -> Result<String, WriteError> {
        let inputs = self.operands(ops)?;
        let y = format!("{label}.out");
        let w_shape = self.f.ty(ops[1]).shape.clone();
        self.node("Conv", inputs, &y, label)
            .attributes
            .extend(conv_attrs(strides, pads, dilations, groups, &w_shape));
        Ok(y)
    }

    /// A `Gemm` node (`transB = 1`) over the operands (`x`, `w`[, `b`]); returns its output name.
    fn gemm_node(&mut self, ops: &[Value], label: &str) -> Result<String, WriteError> {
        let inputs = self.operands(ops)?;
        let y = format!("{label}.out");
        self.node("Gemm", inputs, &y, label)
            .attributes
            .insert("transB".into(), AttrValue::Int(1));
        Ok(y)
    }

    /// Operand `i` of `op` as a float name (globals dequantized).
    fn operand(&mut self, operands: &[Value], i: usize) -> Result<String, WriteError> {
        let v = operands[i];
        match self.f.global_read(v) {
            Some(g) => {
                let g = g.to_string();
                self.global_float(&g)
            }
            None => self.float_name(v),
        }
    }

    /// Quantizes float `y` to the int8 type `ty`, with the real clamp of `[act_min, act_max]`
    /// written as a `Clip` first when narrower than the int8 range.
    fn requantize(
        &mut self,
        mut y: String,
        ty: &TensorType,
        act: (i64, i64),
        label: &str,
    ) -> Result<String, WriteError> {
        let q = ty.quant.clone().ok_or_else(|| {
            WriteError::Type(format!("{label}: int8 result without quantization"))
        })?;
        let (s, z) = (q.scale(0), q.zero_point(0) as f32);
        if act.0 > -128 || act.1 < 127 {
            let lo = s * (act.0 as f32 - z);
            let hi = s * (act.1 as f32 - z);
            let (lo_n, hi_n) = (self.fresh("clip_min"), self.fresh("clip_max"));
            self.init(&lo_n, &[], TensorData::F32(vec![lo]))?;
            self.init(&hi_n, &[], TensorData::F32(vec![hi]))?;
            let out = format!("{y}.clip");
            self.node("Clip", vec![y, lo_n, hi_n], &out, &format!("{label}.clip"));
            y = out;
        }
        let out = format!("{label}.q");
        let out = if self
            .graph
            .nodes
            .iter()
            .any(|n| n.outputs.first() == Some(&out))
        {
            self.fresh(&out)
        } else {
            out
        };
        let (sn, zn, _) = self.qparams(&out, &q, 1, ElemType::I8)?;
        self.node(
            "QuantizeLinear",
            vec![y, sn, zn],
            &out,
            &format!("{label}.quantize"),
        );
        Ok(out)
    }

    fn run(&mut self) -> Result<(), WriteError> {
        for (i, &a) in self.f.args().iter().enumerate() {
            let ty = self.f.ty(a);
            let name = self
                .f
                .value(a)
                .name
                .clone()
                .unwrap_or_else(|| format!("input{i}"));
            if ty.quant.is_some() {
                return Err(WriteError::Type(
                    "quantized function arguments cannot be written; quantize a float input".into(),
                ));
            }
            self.graph
                .inputs
                .push(ValueInfo::tensor(&name, data_type(ty.elem)?, &ty.shape));
            self.names.insert(a, name);
        }
        for (pos, &id) in self.f.layout().iter().enumerate() {
            let data = self.f.op(id);
            let label = data
                .loc
                .name
                .clone()
                .unwrap_or_else(|| format!("{}_{pos}", data.op.name().replace('.', "_")));
            let ops = data.operands.to_vec();
            let Some(&r) = data.results.first() else {
                return Err(self.unsupported(&data.op, &label));
            };
            let rty = self.f.ty(r).clone();
            let int8_in = ops
                .first()
                .is_some_and(|&v| self.f.ty(v).quant.is_some() && self.f.global_read(v).is_none());
            let name = match &data.op {
                Op::Param { .. } | Op::Const { .. } => continue,
                Op::Quantize {} => {
                    let x = self.operand(&ops, 0)?;
                    self.requantize(x, &rty, (-128, 127), &label)?
                }
                Op::Dequantize {} => {
                    let out = self.float_name(ops[0])?;
                    self.names.insert(r, out);
                    continue;
                }
                Op::QConv2d {
                    strides,
                    pads,
                    dilations,
                    groups,
                    act_min,
                    act_max,
                } => {
                    let y = self.conv_node(&ops, strides, pads, dilations, *groups, &label)?;
                    self.requantize(y, &rty, (*act_min, *act_max), &label)?
                }
                Op::QLinear { act_min, act_max } => {
                    let y = self.gemm_node(&ops, &label)?;
                    self.requantize(y, &rty, (*act_min, *act_max), &label)?
                }
                Op::QAdd { act_min, act_max } => {
                    let inputs = vec![self.operand(&ops, 0)?, self.operand(&ops, 1)?];
                    let y = format!("{label}.out");
                    self.node("Add", inputs, &y, &label);
                    self.requantize(y, &rty, (*act_min, *act_max), &label)?
                }
                Op::QAvgPool {
                    kernel,
                    strides,
                    pads,
                    act_min,
                    act_max,
                } => {
                    let x = self.operand(&ops, 0)?;
                    let y = format!("{label}.out");
                    let node = self.node("AveragePool", vec![x], &y, &label);
                    node.attributes.insert("kernel_shape".into(), ints(kernel));
                    node.attributes.insert("strides".into(), ints(strides));
                    node.attributes.insert("pads".into(), ints(pads));
                    self.requantize(y, &rty, (*act_min, *act_max), &label)?
                }
                Op::QGlobalAvgPool {} => {
                    let x = self.operand(&ops, 0)?;
                    let y = format!("{label}.out");
                    self.node("GlobalAveragePool", vec![x], &y, &label);
                    self.requantize(y, &rty, (-128, 127), &label)?
                }
                Op::Flatten { .. } | Op::Reshape { .. } | Op::MaxPool { .. } if int8_in => {
                    // On the dequantized values, then quantized again with the same parameters
                    // (exact): each quantized tensor stays a `Q → DQ` pair, the form
                    // onnxruntime's QDQ fusions and mite's importer expect.
                    let x = self.float_name(ops[0])?;
                    let y = format!("{label}.out");
                    self.layout_node(&data.op, x, &y, &label)?;
                    self.requantize(y, &rty, (-128, 127), &label)?
                }
                Op::Conv2d {
                    strides,
                    pads,
                    dilations,
                    groups,
                } => self.conv_node(&ops, strides, pads, dilations, *groups, &label)?,
                Op::Linear {} => self.gemm_node(&ops, &label)?,
                Op::Add {} | Op::Mul {} => {
                    let inputs = vec![self.operand(&ops, 0)?, self.operand(&ops, 1)?];
                    let y = format!("{label}.out");
                    let kind = if matches!(data.op, Op::Add {}) {
                        "Add"
                    } else {
                        "Mul"
                    };
                    self.node(kind, inputs, &y, &label);
                    y
                }
                Op::Relu {} | Op::GlobalAvgPool {} => {
                    let x = self.operand(&ops, 0)?;
                    let y = format!("{label}.out");
                    let kind = if matches!(data.op, Op::Relu {}) {
                        "Relu"
                    } else {
                        "GlobalAveragePool"
                    };
                    self.node(kind, vec![x], &y, &label);
                    y
                }
                Op::Clip { min, max } => {
                    let x = self.operand(&ops, 0)?;
                    let (lo_n, hi_n) = (self.fresh("clip_min"), self.fresh("clip_max"));
                    self.init(&lo_n, &[], TensorData::F32(vec![*min]))?;
                    self.init(&hi_n, &[], TensorData::F32(vec![*max]))?;
                    let y = format!("{label}.out");
                    self.node("Clip", vec![x, lo_n, hi_n], &y, &label);
                    y
                }
                Op::AvgPool {
                    kernel,
                    strides,
                    pads,
                    count_include_pad,
                } => {
                    let x = self.operand(&ops, 0)?;
                    let y = format!("{label}.out");
                    let node = self.node("AveragePool", vec![x], &y, &label);
                    node.attributes.insert("kernel_shape".into(), ints(kernel));
                    node.attributes.insert("strides".into(), ints(strides));
                    node.attributes.insert("pads".into(), ints(pads));
                    node.attributes.insert(
                        "count_include_pad".into(),
                        AttrValue::Int(i64::from(*count_include_pad)),
                    );
                    y
                }
                Op::Flatten { .. } | Op::Reshape { .. } | Op::MaxPool { .. } => {
                    let x = self.operand(&ops, 0)?;
                    let y = format!("{label}.out");
                    self.layout_node(&data.op, x, &y, &label)?;
                    y
                }
                Op::Softmax { axis } => {
                    let x = self.operand(&ops, 0)?;
                    let y = format!("{label}.out");
                    self.node("Softmax", vec![x], &y, &label)
                        .attributes
                        .insert("axis".into(), AttrValue::Int(*axis));
                    y
                }
                other => return Err(self.unsupported(other, &label)),
            };
            self.names.insert(r, name);
        }
        for (i, &v) in self.f.outputs().to_vec().iter().enumerate() {
            let ty = self.f.ty(v).clone();
            let name = if ty.quant.is_some() {
                self.float_name(v)?
            } else {
                self.names[&v].clone()
            };
            let _ = i;
            self.graph
                .outputs
                .push(ValueInfo::tensor(name, DataType::F32, &ty.shape));
        }
        Ok(())
    }

    fn layout_node(&mut self, op: &Op, x: String, y: &str, label: &str) -> Result<(), WriteError> {
        match op {
            Op::Flatten { axis } => {
                self.node("Flatten", vec![x], y, label)
                    .attributes
                    .insert("axis".into(), AttrValue::Int(*axis));
            }
            Op::Reshape { shape } => {
                let s = format!("{label}.shape");
                self.init(&s, &[shape.len()], TensorData::I64(shape.clone()))?;
                self.node("Reshape", vec![x, s], y, label);
            }
            Op::MaxPool {
                kernel,
                strides,
                pads,
                dilations,
            } => {
                let node = self.node("MaxPool", vec![x], y, label);
                node.attributes.insert("kernel_shape".into(), ints(kernel));
                node.attributes.insert("strides".into(), ints(strides));
                node.attributes.insert("pads".into(), ints(pads));
                node.attributes.insert("dilations".into(), ints(dilations));
            }
            other => return Err(self.unsupported(other, label)),
        }
        Ok(())
    }

    fn unsupported(&self, op: &Op, label: &str) -> WriteError {
        WriteError::Unsupported {
            op: op.name().to_string(),
            loc: label.to_string(),
        }
    }
}

fn conv_attrs(
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    groups: i64,
    w_shape: &[usize],
) -> Vec<(String, AttrValue)> {
    let kernel: Vec<i64> = w_shape.iter().skip(2).map(|&k| k as i64).collect();
    vec![
        ("kernel_shape".into(), AttrValue::from(kernel)),
        ("strides".into(), ints(strides)),
        ("pads".into(), ints(pads)),
        ("dilations".into(), ints(dilations)),
        ("group".into(), AttrValue::Int(groups)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{import_model, ImportOptions};
    use mite_ir::{Builder, Loc};

    fn op_names(module: &Module) -> Vec<String> {
        let f = module.function("forward").unwrap();
        f.layout()
            .iter()
            .map(|&id| f.op(id).op.name().to_string())
            .filter(|n| n != "param")
            .collect()
    }

    /// `q.quantize → q.conv2d (ReLU6 clamp) → nn.flatten → q.dequantize`.
    fn int8_module() -> Module {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("input", TensorType::f32(&[1, 1, 2, 2]));
        let xq = b
            .op_quant(Op::Quantize {}, &[x], Quant::per_tensor(0.5, -1))
            .unwrap();
        let wt = TensorType::quantized(
            &[2, 1, 1, 1],
            ElemType::I8,
            Quant::per_channel(0, vec![0.25, 0.5]),
        );
        let w = b
            .param("w", wt, true, Some(mite_ir::TensorData::I8(vec![4, -2])))
            .unwrap();
        let bt = TensorType::quantized(
            &[2],
            ElemType::I32,
            Quant::per_channel(0, vec![0.125, 0.25]),
        );
        let bias = b
            .param("b", bt, true, Some(mite_ir::TensorData::I32(vec![8, -4])))
            .unwrap();
        let conv = Op::QConv2d {
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            groups: 1,
            act_min: -128,
            act_max: 100,
        };
        let y = b
            .op_quant(conv, &[xq, w, bias], Quant::per_tensor(0.1, -128))
            .unwrap();
        let f = b.op(Op::Flatten { axis: 1 }, &[y]).unwrap();
        let out = b.op(Op::Dequantize {}, &[f]).unwrap();
        b.ret(&[out]);
        m
    }

    #[test]
    fn int8_ops_round_trip_through_qdq() {
        let m = int8_module();
        let model = write_qdq(&m, "forward").unwrap();
        let ops: Vec<&str> = model
            .graph
            .nodes
            .iter()
            .map(|n| n.op_type.as_str())
            .collect();
        assert!(
            ops.contains(&"Clip"),
            "the narrower clamp is written: {ops:?}"
        );
        let back = import_model(&model, &ImportOptions::batch_one()).unwrap();
        assert_eq!(op_names(&back), op_names(&m));
        let f = back.function("forward").unwrap();
        let conv = f
            .layout()
            .iter()
            .map(|&id| f.op(id))
            .find(|d| matches!(d.op, Op::QConv2d { .. }))
            .unwrap();
        assert!(matches!(
            conv.op,
            Op::QConv2d {
                act_min: -128,
                act_max: 100,
                ..
            }
        ));
        assert_eq!(back.data("w"), m.data("w"));
        assert_eq!(back.data("b"), m.data("b"));
    }

    #[test]
    fn an_unwritable_op_is_named() {
        let mut m = int8_module();
        let f = m.function_mut("forward").unwrap();
        let out = f.outputs()[0];
        let ty = f.ty(out).clone();
        let id = f.append_op(
            Op::LogSoftmax { axis: 1 },
            &[out],
            vec![ty],
            Loc::named("lsm"),
        );
        let r = f.op(id).result();
        f.set_outputs(vec![r]);
        let e = write_qdq(&m, "forward").unwrap_err();
        assert_eq!(
            e.to_string(),
            "op nn.log_softmax (lsm) cannot be written to ONNX"
        );
        assert!(matches!(
            write_qdq(&m, "nope"),
            Err(WriteError::NoFunction(_))
        ));
    }

    #[test]
    fn reduce_mean_over_h_w_imports_as_global_pool() {
        let graph = |axes: Vec<i64>| {
            Graph::new("g")
                .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 2, 4, 4]))
                .with_node(
                    Node::new("ReduceMean", ["x"], ["y"])
                        .with_name("pool")
                        .with_attr("axes", AttrValue::from(axes))
                        .with_attr("keepdims", AttrValue::Int(0)),
                )
                .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 2]))
        };
        let m = import_model(
            &OnnxModel::new(graph(vec![2, -1])),
            &ImportOptions::batch_one(),
        )
        .unwrap();
        assert_eq!(op_names(&m), ["nn.global_avg_pool", "nn.reshape"]);
        let e = import_model(&OnnxModel::new(graph(vec![1])), &ImportOptions::batch_one())
            .unwrap_err()
            .to_string();
        assert!(e.contains("pool") && e.contains("axes [2, 3]"), "{e}");
    }
}
