//! Fusion of quantize / dequantize (QDQ) patterns into mite's int8 `q.` ops.
//!
//! The importer converts QDQ models literally: `DequantizeLinear` becomes `q.dequantize`,
//! `QuantizeLinear` becomes `q.quantize`, and the compute between them stays in float. The
//! rewrites here then recognise the int8 computation the pattern stands for. Each is exact
//! (the fused op computes what the float pattern computes, up to the rounding of the int8
//! kernels' requantization) and only fires when every condition holds; anything not fused stays
//! correct in float. `DQ(v)` below is `q.dequantize(v)`, `Q_o(·)` is `q.quantize` with result
//! quantization `o` (per tensor, `i8`).
//!
//! 1. [`sink_dequantize_through_transpose`]: `nn.transpose(DQ(w))` → `DQ(nn.transpose(w))`
//!    (the per-channel axis moves with the permutation), so that transposed weights (`Gemm`
//!    with `transB = 0`, `MatMul`) are int8 tensors again.
//! 2. [`fuse_quantized_ops`], for each `Q_o(y)`, where `y` (and the activation below) has no
//!    other use:
//!    - `Q_o(nn.conv2d(DQ(x), DQ(w), DQ(b)?))` → `q.conv2d(x, w, b?)` with result `o`, when `x`
//!      is `i8` per tensor, `w` is `i8` per tensor or per output channel, and `b` is `i32` with
//!      zero point 0 and scale `s_x · s_w[c]` (relative tolerance 1e-4);
//!    - `Q_o(nn.linear(DQ(x), DQ(w), DQ(b)?))` → `q.linear(x, w, b?)`, same conditions;
//!    - `Q_o(nn.add(DQ(a), DQ(b)))` → `q.add(a, b)` when `a`, `b` and the sum have one shape;
//!    - `Q_o(nn.avg_pool(DQ(x)))` → `q.avg_pool(x)` when padding is not counted (or absent);
//!    - `Q_o(nn.global_avg_pool(DQ(x)))` → `q.global_avg_pool(x)` (no activation);
//!    - `Q_o(L(DQ(x)))` → `L(x)` for `L` = `nn.flatten`, `nn.reshape`, `nn.max_pool` when `o`
//!      is `x`'s quantization (the float layout op and the quantize change nothing);
//!    - an `nn.relu` or `nn.clip` between the float op and `Q_o` folds into `act_min` /
//!      `act_max`: `Q_o(relu(y))` clamps below at `o`'s zero point, `Q_o(clip(y, lo, hi))`
//!      clamps to `[Q_o(lo), Q_o(hi)]` (quantization is monotonic, so this is exact).
//! 3. [`remove_quantize_dequantize_pairs`]: `Q_o(DQ(x))` → `x` when `x` has type `o` (same
//!    shape, element type and parameters).
//! 4. [`remove_dead_ops`]: ops without effects (and `param` reads) whose results are unused.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use mite_ir::infer::{check_type, infer_result_types};
use mite_ir::{Effect, ElemType, Function, Op, OpId, Quant, TensorType, Value};

/// How many rewrites [`fuse_qdq`] made, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FuseStats {
    /// Dequantizes moved below a transpose.
    pub sunk_dequantizes: usize,
    /// Float patterns replaced by a `q.` op.
    pub fused_ops: usize,
    /// `q.quantize(q.dequantize(x))` pairs removed.
    pub removed_pairs: usize,
    /// Dead ops removed.
    pub removed_dead: usize,
}

/// Runs every rewrite of this module in order, then compacts the function.
pub fn fuse_qdq(func: &mut Function) -> FuseStats {
    let stats = FuseStats {
        sunk_dequantizes: sink_dequantize_through_transpose(func),
        fused_ops: fuse_quantized_ops(func),
        removed_pairs: remove_quantize_dequantize_pairs(func),
        removed_dead: remove_dead_ops(func),
    };
    func.compact();
    stats
}

/// The op defining `v`, if `v` is an op result.
fn def_op(func: &Function, v: Value) -> Option<OpId> {
    func.defining_op(v).filter(|&op| !func.op(op).is_erased())
}

/// `x` when `v` is `q.dequantize(x)`.
fn dequantized(func: &Function, v: Value) -> Option<Value> {
    let op = func.op(def_op(func, v)?);
    matches!(op.op, Op::Dequantize {}).then(|| op.operands[0])
}

/// The number of uses of every value (operands of linked ops and function outputs).
fn use_counts(func: &Function) -> HashMap<Value, usize> {
    let mut counts = HashMap::new();
    for &id in func.layout() {
        for &v in &func.op(id).operands {
            *counts.entry(v).or_insert(0) += 1;
        }
    }
    for &v in func.outputs() {
        *counts.entry(v).or_insert(0) += 1;
    }
    counts
}

/// The result type of `op` on `operands`, if it type-checks (no `param`/`const` here).
fn infer(func: &Function, op: &Op, operands: &[Value]) -> Option<TensorType> {
    let tys: Vec<&TensorType> = operands.iter().map(|&v| func.ty(v)).collect();
    let mut types = infer_result_types(op, &tys, &IndexMap::new()).ok()??;
    (types.len() == 1).then(|| types.remove(0))
}

/// Rewrites `nn.transpose(q.dequantize(w))` into `q.dequantize(nn.transpose(w))`; returns the
/// number of rewrites.
pub fn sink_dequantize_through_transpose(func: &mut Function) -> usize {
    let mut count = 0;
    for id in func.layout().to_vec() {
        let data = func.op(id).clone();
        let Op::Transpose { perm } = &data.op else {
            continue;
        };
        let Some(w) = dequantized(func, data.operands[0]) else {
            continue;
        };
        let transpose = Op::Transpose { perm: perm.clone() };
        let Some(ty) = infer(func, &transpose, &[w]) else {
            continue;
        };
        if check_type(&ty).is_err() {
            continue;
        }
        let Some(pos) = func.position(id) else {
            continue;
        };
        let result_ty = func.ty(data.result()).clone();
        let t = func.insert_op(pos, transpose, &[w], vec![ty], data.loc.clone());
        let t = func.op(t).result();
        let d = func.insert_op(
            pos + 1,
            Op::Dequantize {},
            &[t],
            vec![result_ty],
            data.loc.clone(),
        );
        let d = func.op(d).result();
        func.replace_all_uses(data.result(), d);
        func.erase_op(id);
        count += 1;
    }
    count
}

/// The int8 value `x` when `v` is `q.dequantize(x)` with `x` `i8` per tensor.
fn dq_activation(func: &Function, v: Value) -> Option<Value> {
    let x = dequantized(func, v)?;
    let ty = func.ty(x);
    (ty.elem == ElemType::I8 && matches!(ty.quant, Some(Quant::PerTensor { .. }))).then_some(x)
}

/// The quantization of `x` (an int8 activation).
fn quant_of(func: &Function, x: Value) -> Option<&Quant> {
    func.ty(x).quant.as_ref()
}

/// `b` when `v` is `q.dequantize(b)` with `b` an `i32` bias of scale `s_x · s_w[c]`, zero 0.
fn dq_bias(func: &Function, v: Value, x: Value, w: Value) -> Option<Value> {
    let b = dequantized(func, v)?;
    let (bt, wt) = (func.ty(b), func.ty(w));
    let sx = quant_of(func, x)?.scale(0);
    let (bq, wq) = (bt.quant.as_ref()?, wt.quant.as_ref()?);
    if bt.elem != ElemType::I32 || bt.rank() != 1 || wt.rank() == 0 {
        return None;
    }
    let co = wt.shape[0];
    if bt.shape[0] != co {
        return None;
    }
    let channel_ok = |c: usize| -> bool {
        let want = f64::from(sx) * f64::from(wq.scale(c));
        let got = f64::from(bq.scale(c));
        bq.zero_point(c) == 0 && want > 0.0 && ((got - want) / want).abs() <= 1e-4
    };
    let scales_fit = match (bq, wq) {
        (Quant::PerChannel { axis, .. }, _) if *axis != 0 => false,
        (_, Quant::PerChannel { axis, .. }) if *axis != 0 => false,
        _ => (0..co).all(channel_ok),
    };
    scales_fit.then_some(b)
}

/// The int8 weight `w` when `v` is `q.dequantize(w)`.
fn dq_weight(func: &Function, v: Value) -> Option<Value> {
    let w = dequantized(func, v)?;
    (func.ty(w).elem == ElemType::I8).then_some(w)
}

/// `round_half_even(x / scale) + zero_point`, clamped to the int8 range.
fn quantize_bound(x: f32, scale: f32, zero_point: i32) -> i64 {
    if x == f32::NEG_INFINITY {
        return -128;
    }
    if x == f32::INFINITY {
        return 127;
    }
    let q = f64::from((x / scale).round_ties_even()) + f64::from(zero_point);
    q.clamp(-128.0, 127.0) as i64
}

/// The fused op and its operands for the float op `f` under a quantize to `act`.
fn fused_op(func: &Function, f: OpId, act: (i64, i64)) -> Option<(Op, Vec<Value>)> {
    let data = func.op(f);
    let (act_min, act_max) = act;
    let ops = &data.operands;
    match &data.op {
        Op::Conv2d { .. } | Op::Linear {} => {
            let x = dq_activation(func, ops[0])?;
            let w = dq_weight(func, ops[1])?;
            let mut operands = vec![x, w];
            if let Some(&b) = ops.get(2) {
                operands.push(dq_bias(func, b, x, w)?);
            }
            let op = match &data.op {
                Op::Conv2d {
                    strides,
                    pads,
                    dilations,
                    groups,
                } => Op::QConv2d {
                    strides: strides.clone(),
                    pads: pads.clone(),
                    dilations: dilations.clone(),
                    groups: *groups,
                    act_min,
                    act_max,
                },
                _ => Op::QLinear { act_min, act_max },
            };
            Some((op, operands))
        }
        Op::Add {} => {
            let a = dq_activation(func, ops[0])?;
            let b = dq_activation(func, ops[1])?;
            let same = func.ty(a).shape == func.ty(b).shape
                && func.ty(a).shape == func.ty(data.result()).shape;
            same.then(|| (Op::QAdd { act_min, act_max }, vec![a, b]))
        }
        Op::AvgPool {
            kernel,
            strides,
            pads,
            count_include_pad,
        } => {
            if *count_include_pad && pads.iter().any(|&p| p != 0) {
                return None;
            }
            let x = dq_activation(func, ops[0])?;
            let op = Op::QAvgPool {
                kernel: kernel.clone(),
                strides: strides.clone(),
                pads: pads.clone(),
                act_min,
                act_max,
            };
            Some((op, vec![x]))
        }
        Op::GlobalAvgPool {} if act == (-128, 127) => {
            Some((Op::QGlobalAvgPool {}, vec![dq_activation(func, ops[0])?]))
        }
        // Layout ops keep the quantization: fused only when the quantize restores it exactly.
        Op::Flatten { .. } | Op::Reshape { .. } | Op::MaxPool { .. } if act == (-128, 127) => {
            Some((data.op.clone(), vec![dq_activation(func, ops[0])?]))
        }
        _ => None,
    }
}

/// Replaces float ops between dequantizes and a quantize by the equivalent `q.` op (pattern 2
/// of the module documentation); returns the number of fusions.
pub fn fuse_quantized_ops(func: &mut Function) -> usize {
    let uses = use_counts(func);
    let single = |v: Value| uses.get(&v).copied() == Some(1);
    let mut count = 0;
    for id in func.layout().to_vec() {
        let data = func.op(id);
        if !matches!(data.op, Op::Quantize {}) || data.is_erased() {
            continue;
        }
        let q_result = data.result();
        let q_ty = func.ty(q_result).clone();
        let Some(Quant::PerTensor { scale, zero_point }) = q_ty.quant.clone() else {
            continue;
        };
        if q_ty.elem != ElemType::I8 {
            continue;
        }
        let mut inner = data.operands[0];
        let mut act = (-128, 127);
        if let Some(a) = def_op(func, inner).filter(|_| single(inner)) {
            let a_data = func.op(a);
            let range = match a_data.op {
                Op::Relu {} => Some((i64::from(zero_point).clamp(-128, 127), 127)),
                Op::Clip { min, max } => Some((
                    quantize_bound(min, scale, zero_point),
                    quantize_bound(max, scale, zero_point),
                )),
                _ => None,
            };
            if let Some(range) = range {
                act = range;
                inner = a_data.operands[0];
            }
        }
        let Some(f) = def_op(func, inner).filter(|_| single(inner)) else {
            continue;
        };
        let Some((op, operands)) = fused_op(func, f, act) else {
            continue;
        };
        let Some(ty) = infer(func, &op, &operands) else {
            continue;
        };
        if ty.shape != q_ty.shape || ty.elem != q_ty.elem {
            continue;
        }
        let layout = matches!(
            op,
            Op::Flatten { .. } | Op::Reshape { .. } | Op::MaxPool { .. }
        );
        if layout && ty.quant != q_ty.quant {
            continue;
        }
        let Some(pos) = func.position(id) else {
            continue;
        };
        let loc = func.op(f).loc.clone();
        let new = func.insert_op(pos, op, &operands, vec![q_ty], loc);
        let new = func.op(new).result();
        func.replace_all_uses(q_result, new);
        func.erase_op(id);
        count += 1;
    }
    count
}

/// Removes `q.quantize(q.dequantize(x))` when the quantize's result type equals `x`'s type;
/// returns the number of pairs removed.
pub fn remove_quantize_dequantize_pairs(func: &mut Function) -> usize {
    let mut count = 0;
    for id in func.layout().to_vec() {
        let data = func.op(id);
        if !matches!(data.op, Op::Quantize {}) {
            continue;
        }
        let result = data.result();
        let Some(x) = dequantized(func, data.operands[0]) else {
            continue;
        };
        if func.ty(x) != func.ty(result) {
            continue;
        }
        func.replace_all_uses(result, x);
        func.erase_op(id);
        count += 1;
    }
    count
}

/// Removes ops whose results are unused and that have no effect other than reading a global;
/// returns the number removed.
pub fn remove_dead_ops(func: &mut Function) -> usize {
    let mut uses = use_counts(func);
    let mut dead = HashSet::new();
    for &id in func.layout().iter().rev() {
        let data = func.op(id);
        if data.op.effect() == Effect::Write {
            continue;
        }
        if data
            .results
            .iter()
            .all(|r| uses.get(r).copied().unwrap_or(0) == 0)
        {
            dead.insert(id);
            for v in &data.operands {
                if let Some(n) = uses.get_mut(v) {
                    *n = n.saturating_sub(1);
                }
            }
        }
    }
    func.erase_ops_where(|id, _| dead.contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mite_ir::{verify_module, Builder, Module, TensorData};

    fn histogram(func: &Function) -> Vec<String> {
        let mut names: Vec<String> = func
            .layout()
            .iter()
            .map(|&id| func.op(id).op.name().to_owned())
            .collect();
        names.sort();
        names
    }

    fn conv_op() -> Op {
        Op::Conv2d {
            strides: vec![1, 1],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            groups: 1,
        }
    }

    /// `Q(act(conv(DQ(Q(x)), DQ(w), DQ(b))))` with a bias of scale `bias_scale[c]`.
    fn conv_module(bias_scales: Vec<f32>, act: Option<Op>) -> Module {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("x", TensorType::f32(&[1, 1, 4, 4]));
        let xq = b
            .op_quant(Op::Quantize {}, &[x], Quant::per_tensor(0.5, 0))
            .unwrap();
        let xf = b.op(Op::Dequantize {}, &[xq]).unwrap();
        let wty = TensorType::quantized(
            &[2, 1, 3, 3],
            ElemType::I8,
            Quant::per_channel(0, vec![0.1, 0.2]),
        );
        let w = b
            .param("w", wty, true, Some(TensorData::I8(vec![1; 18])))
            .unwrap();
        let wf = b.op(Op::Dequantize {}, &[w]).unwrap();
        let bty = TensorType::quantized(&[2], ElemType::I32, Quant::per_channel(0, bias_scales));
        let bias = b
            .param("b", bty, true, Some(TensorData::I32(vec![3, -4])))
            .unwrap();
        let bf = b.op(Op::Dequantize {}, &[bias]).unwrap();
        b.named("conv");
        let mut y = b.op(conv_op(), &[xf, wf, bf]).unwrap();
        if let Some(act) = act {
            y = b.op(act, &[y]).unwrap();
        }
        let yq = b
            .op_quant(Op::Quantize {}, &[y], Quant::per_tensor(0.25, -10))
            .unwrap();
        let out = b.op(Op::Dequantize {}, &[yq]).unwrap();
        b.ret(&[out]);
        m
    }

    #[test]
    fn conv_with_relu_fuses() {
        let mut m = conv_module(vec![0.05, 0.1], Some(Op::Relu {}));
        let stats = fuse_qdq(&mut m.functions[0]);
        assert_eq!(stats.fused_ops, 1);
        verify_module(&m).unwrap();
        let f = &m.functions[0];
        assert_eq!(
            histogram(f),
            ["param", "param", "q.conv2d", "q.dequantize", "q.quantize"]
        );
        let conv = f
            .layout()
            .iter()
            .map(|&id| f.op(id))
            .find(|o| o.op.name() == "q.conv2d")
            .unwrap();
        assert_eq!(conv.loc.name.as_deref(), Some("conv"));
        assert!(matches!(
            conv.op,
            Op::QConv2d {
                act_min: -10,
                act_max: 127,
                ..
            }
        ));
    }

    #[test]
    fn clip_folds_into_the_activation_range() {
        let clip = Op::Clip { min: 0.0, max: 6.0 };
        let mut m = conv_module(vec![0.05, 0.1], Some(clip));
        fuse_qdq(&mut m.functions[0]);
        verify_module(&m).unwrap();
        let f = &m.functions[0];
        let conv = f
            .layout()
            .iter()
            .map(|&id| &f.op(id).op)
            .find(|o| o.name() == "q.conv2d")
            .cloned()
            .unwrap();
        // 6 / 0.25 - 10 = 14.
        assert!(matches!(
            conv,
            Op::QConv2d {
                act_min: -10,
                act_max: 14,
                ..
            }
        ));
    }

    #[test]
    fn a_mismatched_bias_scale_stays_in_float() {
        let mut m = conv_module(vec![0.05, 0.3], None);
        let stats = fuse_qdq(&mut m.functions[0]);
        assert_eq!(stats.fused_ops, 0);
        verify_module(&m).unwrap();
        assert!(histogram(&m.functions[0]).contains(&"nn.conv2d".to_owned()));
    }

    fn dq_input(b: &mut Builder, name: &str, shape: &[usize], scale: f32) -> Value {
        let x = b.arg(name, TensorType::f32(shape));
        let q = b
            .op_quant(Op::Quantize {}, &[x], Quant::per_tensor(scale, 0))
            .unwrap();
        b.op(Op::Dequantize {}, &[q]).unwrap()
    }

    #[test]
    fn add_and_pools_fuse() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let a = dq_input(&mut b, "a", &[1, 2, 4, 4], 0.5);
        let c = dq_input(&mut b, "c", &[1, 2, 4, 4], 0.25);
        let s = b.op(Op::Add {}, &[a, c]).unwrap();
        let sq = b
            .op_quant(Op::Quantize {}, &[s], Quant::per_tensor(0.5, 3))
            .unwrap();
        let sf = b.op(Op::Dequantize {}, &[sq]).unwrap();
        let pool = Op::AvgPool {
            kernel: vec![2, 2],
            strides: vec![2, 2],
            pads: vec![0; 4],
            count_include_pad: false,
        };
        let p = b.op(pool, &[sf]).unwrap();
        let pq = b
            .op_quant(Op::Quantize {}, &[p], Quant::per_tensor(0.5, 3))
            .unwrap();
        let pf = b.op(Op::Dequantize {}, &[pq]).unwrap();
        let g = b.op(Op::GlobalAvgPool {}, &[pf]).unwrap();
        let gq = b
            .op_quant(Op::Quantize {}, &[g], Quant::per_tensor(0.5, 3))
            .unwrap();
        let gf = b.op(Op::Dequantize {}, &[gq]).unwrap();
        b.ret(&[gf]);
        let stats = fuse_qdq(&mut m.functions[0]);
        assert_eq!(stats.fused_ops, 3);
        verify_module(&m).unwrap();
        assert_eq!(
            histogram(&m.functions[0]),
            [
                "q.add",
                "q.avg_pool",
                "q.dequantize",
                "q.global_avg_pool",
                "q.quantize",
                "q.quantize"
            ]
        );
    }

    #[test]
    fn transposed_weight_fuses_into_linear() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let x = dq_input(&mut b, "x", &[1, 3], 0.5);
        // A MatMul weight [K = 3, N = 2], quantized per column.
        let wty =
            TensorType::quantized(&[3, 2], ElemType::I8, Quant::per_channel(1, vec![0.1, 0.2]));
        let w = b
            .param("w", wty, true, Some(TensorData::I8(vec![1; 6])))
            .unwrap();
        let wf = b.op(Op::Dequantize {}, &[w]).unwrap();
        let wt = b.op(Op::Transpose { perm: vec![1, 0] }, &[wf]).unwrap();
        let y = b.op(Op::Linear {}, &[x, wt]).unwrap();
        let yq = b
            .op_quant(Op::Quantize {}, &[y], Quant::per_tensor(0.5, 0))
            .unwrap();
        b.ret(&[yq]);
        let stats = fuse_qdq(&mut m.functions[0]);
        assert_eq!((stats.sunk_dequantizes, stats.fused_ops), (1, 1));
        verify_module(&m).unwrap();
        assert_eq!(
            histogram(&m.functions[0]),
            ["nn.transpose", "param", "q.linear", "q.quantize"]
        );
    }

    #[test]
    fn requantize_pairs_with_equal_parameters_vanish() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("x", TensorType::f32(&[4]));
        let q1 = b
            .op_quant(Op::Quantize {}, &[x], Quant::per_tensor(0.5, 1))
            .unwrap();
        let d1 = b.op(Op::Dequantize {}, &[q1]).unwrap();
        let same = b
            .op_quant(Op::Quantize {}, &[d1], Quant::per_tensor(0.5, 1))
            .unwrap();
        let other = b
            .op_quant(Op::Quantize {}, &[d1], Quant::per_tensor(0.25, 1))
            .unwrap();
        b.ret(&[same, other]);
        let stats = fuse_qdq(&mut m.functions[0]);
        assert_eq!(stats.removed_pairs, 1);
        verify_module(&m).unwrap();
        let f = &m.functions[0];
        assert_eq!(histogram(f), ["q.dequantize", "q.quantize", "q.quantize"]);
        assert_eq!(f.ty(f.outputs()[0]).quant, Some(Quant::per_tensor(0.5, 1)));
    }

    #[test]
    fn dead_ops_go_but_effects_stay() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("x", TensorType::f32(&[4]));
        let _unused = b.op(Op::Relu {}, &[x]).unwrap();
        b.ret(&[x]);
        assert_eq!(remove_dead_ops(&mut m.functions[0]), 1);
        assert_eq!(m.functions[0].num_ops(), 0);
    }
}
