//! `dequantize`: rewrites a real int8 graph into the float graph it approximates — the paper's
//! fp32 baseline ("train the dequantized model").
//!
//! Every quantized parameter becomes an f32 parameter holding its real values
//! (`scale[c] · (q − zero_point[c])`), and every int8 op becomes its float counterpart followed
//! by the clamp that the int8 output range implied (folded ReLU / ReLU6):
//!
//! | int8 op | float ops |
//! |---|---|
//! | `q.conv2d`, `q.linear`, `q.add`, `q.avg_pool` | `nn.conv2d`, `nn.linear`, `nn.add`, `nn.avg_pool`, then `nn.clip` to `[s_y·(act_min − z_y), s_y·(act_max − z_y)]` |
//! | `q.global_avg_pool`, `q.requantize` | `nn.global_avg_pool` / nothing, then `nn.clip` to the output's int8 range |
//! | `q.quantize`, `q.dequantize` | removed (the value is already real) |
//! | layout ops and `nn.max_pool` on i8 | the same op on f32 |
//!
//! Quantized function arguments become f32 arguments. Data that is elided or absent cannot be
//! dequantized and is an error naming the parameter; so is a custom op consuming int8 values.
//!
//! Statistics: `params-dequantized`, `ops-rewritten`, `clips-added`.

use crate::pass::{Pass, PassError};
use crate::statistics::Statistics;
use mite_ir::infer::infer_result_types;
use mite_ir::{
    Function, GlobalData, GlobalKind, Loc, Module, Op, Quant, TensorData, TensorType, Value,
};
use std::collections::HashMap;

/// The `dequantize` pass (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct Dequantize;

impl Pass for Dequantize {
    fn name(&self) -> &str {
        "dequantize"
    }

    fn description(&self) -> &str {
        "Rewrites the int8 graph into the equivalent float graph (the fp32 baseline)"
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let mut params = 0;
        for (name, g) in module.globals.iter_mut() {
            if !matches!(g.kind, GlobalKind::Param { .. }) || g.ty.quant.is_none() {
                continue;
            }
            let GlobalData::Inline(data) = &g.data else {
                return Err(PassError::failed(
                    self.name(),
                    format!("parameter @{name} has no data to dequantize"),
                ));
            };
            let real = dequantize_data(data, &g.ty).ok_or_else(|| {
                PassError::failed(self.name(), format!("parameter @{name}: unsupported data"))
            })?;
            g.data = GlobalData::Inline(TensorData::F32(real));
            g.ty = TensorType::f32(&g.ty.shape);
            params += 1;
        }
        let mut rewritten = 0;
        let mut clips = 0;
        let functions = std::mem::take(&mut module.functions);
        for func in functions {
            let (new, r, c) =
                rewrite(module, &func).map_err(|m| PassError::failed("dequantize", m))?;
            module.functions.push(new);
            rewritten += r;
            clips += c;
        }
        stats.add("params-dequantized", params);
        stats.add("ops-rewritten", rewritten);
        stats.add("clips-added", clips);
        Ok(params + rewritten > 0)
    }
}

/// Real values of quantized integer data.
fn dequantize_data(data: &TensorData, ty: &TensorType) -> Option<Vec<f32>> {
    match data {
        TensorData::I8(_) | TensorData::I32(_) => data.real_values(ty),
        _ => None,
    }
}

/// The real interval an int8 output with quantization `q` and clamp `[lo, hi]` can hold.
fn real_range(q: &Quant, lo: i64, hi: i64) -> (f32, f32) {
    let (s, z) = (q.scale(0), q.zero_point(0) as f32);
    (s * (lo as f32 - z), s * (hi as f32 - z))
}

/// Rebuilds `func` with float ops; returns it with the number of ops rewritten and clips added.
fn rewrite(module: &Module, func: &Function) -> Result<(Function, u64, u64), String> {
    let mut out = Function::new(func.name.clone());
    out.line_col = func.line_col;
    let mut map: HashMap<Value, Value> = HashMap::new();
    for &a in func.args() {
        let ty = func.ty(a);
        let new_ty = if ty.quant.is_some() {
            TensorType::f32(&ty.shape)
        } else {
            ty.clone()
        };
        map.insert(a, out.add_arg(new_ty, func.value(a).name.clone()));
    }
    let (mut rewritten, mut clips) = (0, 0);
    for &id in func.layout() {
        let data = func.op(id);
        let operands: Vec<Value> = data
            .operands
            .iter()
            .map(|v| {
                map.get(v)
                    .copied()
                    .ok_or_else(|| format!("@{}: undefined operand", func.name))
            })
            .collect::<Result<_, _>>()?;
        let result_ty = data.results.first().map(|&r| func.ty(r).clone());
        let out_quant = result_ty.as_ref().and_then(|t| t.quant.clone());
        // (float op, clamp range) for int8 ops; `None` op means "pass the operand through".
        let (op, range): (Option<Op>, Option<(f32, f32)>) = match &data.op {
            Op::QConv2d {
                strides,
                pads,
                dilations,
                groups,
                act_min,
                act_max,
            } => (
                Some(Op::Conv2d {
                    strides: strides.clone(),
                    pads: pads.clone(),
                    dilations: dilations.clone(),
                    groups: *groups,
                }),
                out_quant
                    .as_ref()
                    .map(|q| real_range(q, *act_min, *act_max)),
            ),
            Op::QLinear { act_min, act_max } => (
                Some(Op::Linear {}),
                out_quant
                    .as_ref()
                    .map(|q| real_range(q, *act_min, *act_max)),
            ),
            Op::QAdd { act_min, act_max } => (
                Some(Op::Add {}),
                out_quant
                    .as_ref()
                    .map(|q| real_range(q, *act_min, *act_max)),
            ),
            Op::QAvgPool {
                kernel,
                strides,
                pads,
                act_min,
                act_max,
            } => (
                Some(Op::AvgPool {
                    kernel: kernel.clone(),
                    strides: strides.clone(),
                    pads: pads.clone(),
                    count_include_pad: false,
                }),
                out_quant
                    .as_ref()
                    .map(|q| real_range(q, *act_min, *act_max)),
            ),
            Op::QGlobalAvgPool {} => (
                Some(Op::GlobalAvgPool {}),
                out_quant.as_ref().map(|q| real_range(q, -128, 127)),
            ),
            Op::Requantize {} => (None, out_quant.as_ref().map(|q| real_range(q, -128, 127))),
            Op::Quantize {} | Op::Dequantize {} => (None, None),
            Op::Custom(c) if data.operands.iter().any(|&v| func.ty(v).quant.is_some()) => {
                return Err(format!(
                    "custom op `{}` consumes int8 values and cannot be dequantized",
                    c.name
                ))
            }
            other => (Some(other.clone()), None),
        };
        let is_int8_op = data.op.dialect() == "q";
        let mut value = match op {
            None => operands[0],
            Some(op) => {
                let tys: Vec<&TensorType> = operands.iter().map(|&v| out.ty(v)).collect();
                let types = match infer_result_types(&op, &tys, &module.globals).map_err(|e| e.0)? {
                    Some(types) => types,
                    None => data.results.iter().map(|&r| func.ty(r).clone()).collect(),
                };
                let new_id = out.append_op(op, &operands, types, data.loc.clone());
                for (k, &r) in data.results.iter().enumerate().skip(1) {
                    map.insert(r, out.op(new_id).results[k]);
                }
                match out.op(new_id).results.first() {
                    Some(&r) => r,
                    None => continue,
                }
            }
        };
        if is_int8_op {
            rewritten += 1;
        }
        if let Some((min, max)) = range {
            let ty = out.ty(value).clone();
            let clip = out.append_op(Op::Clip { min, max }, &[value], vec![ty], Loc::default());
            value = out.op(clip).result();
            clips += 1;
        }
        if let Some(&r) = data.results.first() {
            map.insert(r, value);
        }
    }
    let outputs = func
        .outputs()
        .iter()
        .map(|v| map.get(v).copied().ok_or("undefined output"))
        .collect::<Result<_, _>>()?;
    out.set_outputs(outputs);
    Ok((out, rewritten, clips))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mite_ir::{verify_module, Builder, ElemType};

    #[test]
    fn int8_conv_becomes_float_conv_and_clip() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("x", TensorType::f32(&[1, 1, 2, 2]));
        let xq = b
            .op_quant(Op::Quantize {}, &[x], Quant::per_tensor(0.5, 0))
            .unwrap();
        let wt = TensorType::quantized(
            &[2, 1, 1, 1],
            ElemType::I8,
            Quant::per_channel(0, vec![0.25, 0.5]),
        );
        let w = b
            .param("w", wt, true, Some(TensorData::I8(vec![4, -2])))
            .unwrap();
        let conv = Op::QConv2d {
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            groups: 1,
            act_min: -128,
            act_max: 127,
        };
        let y = b
            .op_quant(conv, &[xq, w], Quant::per_tensor(0.1, -128))
            .unwrap();
        let yf = b.op(Op::Dequantize {}, &[y]).unwrap();
        b.ret(&[yf]);
        let mut stats = Statistics::new();
        assert!(Dequantize.run(&mut m, &mut stats).unwrap());
        verify_module(&m).unwrap();
        assert_eq!(m.data("w"), Some(&TensorData::F32(vec![1.0, -1.0])));
        let f = &m.functions[0];
        let names: Vec<&str> = f.layout().iter().map(|&id| f.op(id).op.name()).collect();
        assert_eq!(names, ["param", "nn.conv2d", "nn.clip"]);
        let clip = f.op(f.layout()[2]);
        assert_eq!(
            clip.op,
            Op::Clip {
                min: 0.0,
                max: 0.1 * 255.0
            }
        );
        assert_eq!(
            (
                stats.get("params-dequantized"),
                stats.get("ops-rewritten"),
                stats.get("clips-added")
            ),
            (1, 3, 1)
        );
        // Idempotent: nothing quantized is left.
        let mut again = Statistics::new();
        assert!(!Dequantize.run(&mut m, &mut again).unwrap());
    }

    #[test]
    fn elided_data_is_an_error() {
        let mut m = Module::new("m");
        let wt = TensorType::quantized(&[2], ElemType::I8, Quant::per_tensor(0.5, 0));
        m.add_param("w", wt, true, GlobalData::Elided { digest: 1 });
        let e = Dequantize.run(&mut m, &mut Statistics::new()).unwrap_err();
        assert!(e.to_string().contains("parameter @w has no data"), "{e}");
    }
}
