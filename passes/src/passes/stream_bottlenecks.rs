//! `stream-bottlenecks`: fuses frozen inverted bottlenecks into `q.bottleneck`, which runs them in
//! row tiles so that the expanded tensor and the depthwise output never exist whole.
//!
//! A chain `q.conv2d` dense (`w1`, `b1`) → `q.conv2d` depthwise (`wd`, `bd`) → `q.conv2d` 1×1
//! (`w2`, `b2`) is fused when:
//! - each convolution has its `i32` bias; the first is dense (one group, any window: the
//!   pointwise expansion of an inverted bottleneck, or a network's stem convolution, whose rows
//!   are then produced on demand from the whole input), the middle one depthwise (`groups` = its
//!   channels, one weight channel per group) and the last pointwise (1×1 kernel, unit stride and
//!   dilation, no padding, one group);
//! - the two intermediates are used only by the next convolution of the chain (no backward op,
//!   `grad.mask`, saved activation or function output reads them) and are int8 per tensor;
//! - the six weights and biases are read by `const` or by `param` of a parameter that is not
//!   trainable and that no op of the module may write (a frozen parameter);
//! - no convolution of it is already in an earlier chain (chains are taken in program order: a
//!   projection that could also start the next chain stays with its own block).
//!
//! The fused op takes the last convolution's place and result type; the intermediates'
//! quantization and clamps become its attributes, so it computes the same bits
//! (`mite_kernels::int8::bottleneck_int8`). Run it after `autodiff`: the backward ops of trained
//! blocks read their intermediates and so keep them unfused.
//!
//! A second step chains fused blocks: a `q.bottleneck` whose output (an int8 per-tensor tensor,
//! the link) is read only by a second `q.bottleneck` whose first convolution is pointwise
//! becomes, with it, one `q.bottleneck_chain`, which streams the link's rows from the first
//! block into the second through a ring of a few rows (`mite_kernels::int8::bottleneck_chain_int8`),
//! so that the link never exists whole either. Pairs are taken in program order, each block in
//! at most one pair (in the paper's networks: the first stage into the first stride-2 block).
//!
//! Statistics: `blocks-fused`, `first-stages-fused` (blocks whose first convolution is not
//! pointwise, e.g. the stem), `bytes-saved` (per block, the bytes of the two intermediates less
//! the fused op's scratch), `chains-fused` (pairs of fused blocks chained), `link-bytes-streamed`
//! (the bytes of the links the chains no longer materialise; each chain's scratch is the first
//! block's, the link ring and one expanded channel's rows beside the second block's depthwise
//! row, see `chain-scratch-bytes`), `chain-scratch-bytes`.

use crate::pass::{Pass, PassError};
use crate::statistics::Statistics;
use mite_ir::memory::scratch::scratch_bytes;
use mite_ir::{ElemType, Function, GlobalKind, Module, Op, OpId, Quant, Value};
use std::collections::{HashMap, HashSet};

/// The `stream-bottlenecks` pass (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamBottlenecks;

/// One fused block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusedBlock {
    /// The function it is in.
    pub function: String,
    /// The global the expansion weight reads (names the block, e.g. `blocks.1.pointwise1.weight`).
    pub expand_weight: String,
    /// Bytes of the two intermediates less the fused op's scratch.
    pub bytes_saved: u64,
    /// Whether the first convolution is pointwise (an expansion); `false` for a stem-like
    /// first stage (a k×k, possibly strided, convolution).
    pub pointwise_first: bool,
}

/// Two fused blocks chained into one `q.bottleneck_chain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainedPair {
    /// The function it is in.
    pub function: String,
    /// The global the first block's first weight reads (names the pair).
    pub first_weight: String,
    /// Bytes of the link (the first block's output), which no longer exists whole.
    pub link_bytes: u64,
    /// The chain's scratch bytes.
    pub scratch: u64,
}

impl Pass for StreamBottlenecks {
    fn name(&self) -> &str {
        "stream-bottlenecks"
    }

    fn description(&self) -> &str {
        "Fuses frozen inverted bottlenecks (pw or any dense conv -> dw -> pw) into row-streamed q.bottleneck ops"
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let fused = stream_bottlenecks(module);
        stats.add("blocks-fused", fused.len() as u64);
        let first_stages = fused.iter().filter(|b| !b.pointwise_first).count();
        stats.add("first-stages-fused", first_stages as u64);
        stats.add("bytes-saved", fused.iter().map(|b| b.bytes_saved).sum());
        let chains = chain_bottlenecks(module);
        stats.add("chains-fused", chains.len() as u64);
        stats.add(
            "link-bytes-streamed",
            chains.iter().map(|c| c.link_bytes).sum(),
        );
        stats.add(
            "chain-scratch-bytes",
            chains.iter().map(|c| c.scratch).sum(),
        );
        Ok(!fused.is_empty() || !chains.is_empty())
    }
}

/// Fuses every eligible bottleneck of every function of `module`; returns the fused blocks in
/// program order.
pub fn stream_bottlenecks(module: &mut Module) -> Vec<FusedBlock> {
    let frozen = frozen_globals(module);
    let mut fused = Vec::new();
    for func in &mut module.functions {
        fuse_function(func, &frozen, &mut fused);
    }
    fused
}

/// Parameters no training updates (not trainable, written by no op) and constants.
fn frozen_globals(module: &Module) -> HashSet<String> {
    let mut written: HashSet<&str> = HashSet::new();
    let mut unknown = false;
    for func in &module.functions {
        for &id in func.layout() {
            let effects = func.op(id).op.effects();
            unknown |= effects.unknown;
            written.extend(effects.writes);
        }
    }
    if unknown {
        return HashSet::new();
    }
    module
        .globals
        .iter()
        .filter(|(name, g)| match g.kind {
            GlobalKind::Param { .. } => !g.kind.is_trainable() && !written.contains(name.as_str()),
            GlobalKind::Const => true,
            GlobalKind::State => false,
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// How many times each value is used (operands and function outputs).
fn use_counts(func: &Function) -> HashMap<Value, usize> {
    let mut uses = HashMap::new();
    for &id in func.layout() {
        for &v in &func.op(id).operands {
            *uses.entry(v).or_insert(0) += 1;
        }
    }
    for &v in func.outputs() {
        *uses.entry(v).or_insert(0) += 1;
    }
    uses
}

/// The convolution attributes of a `q.conv2d`: strides, pads, dilations, groups, clamp.
struct Conv<'a> {
    strides: &'a [i64],
    pads: &'a [i64],
    dilations: &'a [i64],
    groups: i64,
    act: [i64; 2],
}

fn as_conv(op: &Op) -> Option<Conv<'_>> {
    match op {
        Op::QConv2d {
            strides,
            pads,
            dilations,
            groups,
            act_min,
            act_max,
        } => Some(Conv {
            strides,
            pads,
            dilations,
            groups: *groups,
            act: [*act_min, *act_max],
        }),
        _ => None,
    }
}

/// The `q.conv2d` defining `v` with its three operands, if `v` is used exactly once.
fn single_use_conv(func: &Function, v: Value, uses: &HashMap<Value, usize>) -> Option<OpId> {
    let id = func.defining_op(v)?;
    let data = func.op(id);
    (as_conv(&data.op).is_some() && data.operands.len() == 3 && uses.get(&v) == Some(&1))
        .then_some(id)
}

/// Whether a `q.conv2d` is pointwise: 1×1 weight, unit strides and dilations, no padding.
fn is_pointwise(func: &Function, id: OpId) -> bool {
    let data = func.op(id);
    let Some(c) = as_conv(&data.op) else {
        return false;
    };
    let w = func.ty(data.operands[1]);
    c.groups == 1
        && w.rank() == 4
        && w.shape[2..] == [1, 1]
        && c.strides == [1, 1]
        && c.dilations == [1, 1]
        && c.pads.iter().all(|&p| p == 0)
}

/// Whether a `q.conv2d` is dense: one group, a rank-4 weight (any window).
fn is_dense(func: &Function, id: OpId) -> bool {
    let data = func.op(id);
    as_conv(&data.op).is_some_and(|c| c.groups == 1) && func.ty(data.operands[1]).rank() == 4
}

/// Whether a `q.conv2d` is depthwise with one output channel per input channel.
fn is_depthwise(func: &Function, id: OpId) -> bool {
    let data = func.op(id);
    let Some(c) = as_conv(&data.op) else {
        return false;
    };
    let (x, w) = (func.ty(data.operands[0]), func.ty(data.operands[1]));
    x.rank() == 4
        && w.rank() == 4
        && c.groups as usize == x.shape[1]
        && w.shape[0] == x.shape[1]
        && w.shape[1] == 1
}

/// The per-tensor int8 quantization of `v`.
fn per_tensor_i8(func: &Function, v: Value) -> Option<(f32, i64)> {
    let t = func.ty(v);
    match (&t.elem, &t.quant) {
        (ElemType::I8, Some(Quant::PerTensor { scale, zero_point })) => {
            Some((*scale, i64::from(*zero_point)))
        }
        _ => None,
    }
}

/// A candidate chain ending at op `last`: `[expand, depthwise, project]`.
fn chain(func: &Function, last: OpId, uses: &HashMap<Value, usize>) -> Option<[OpId; 3]> {
    if as_conv(&func.op(last).op).is_none() || func.op(last).operands.len() != 3 {
        return None;
    }
    if !is_pointwise(func, last) {
        return None;
    }
    let dw = single_use_conv(func, func.op(last).operands[0], uses)?;
    if !is_depthwise(func, dw) {
        return None;
    }
    let first = single_use_conv(func, func.op(dw).operands[0], uses)?;
    is_dense(func, first).then_some([first, dw, last])
}

fn fuse_function(func: &mut Function, frozen: &HashSet<String>, fused: &mut Vec<FusedBlock>) {
    let uses = use_counts(func);
    let reads_frozen =
        |func: &Function, v: Value| func.global_read(v).is_some_and(|g| frozen.contains(g));
    let mut chains = Vec::new();
    let mut claimed: HashSet<OpId> = HashSet::new();
    for &id in func.layout() {
        let Some(ops) = chain(func, id, &uses) else {
            continue;
        };
        if ops.iter().any(|op| claimed.contains(op)) {
            continue;
        }
        let params_frozen = ops.iter().all(|&c| {
            func.op(c).operands[1..]
                .iter()
                .all(|&v| reads_frozen(func, v))
        });
        let mids = [func.op(ops[0]).result(), func.op(ops[1]).result()];
        if params_frozen && mids.iter().all(|&v| per_tensor_i8(func, v).is_some()) {
            claimed.extend(ops);
            chains.push(ops);
        }
    }
    for [expand, dw, project] in chains {
        let (e, d, p) = (func.op(expand), func.op(dw), func.op(project));
        let (Some(ce), Some(cd), Some(cp)) = (as_conv(&e.op), as_conv(&d.op), as_conv(&p.op))
        else {
            continue;
        };
        let (Some((expand_scale, expand_zero_point)), Some((dw_scale, dw_zero_point))) = (
            per_tensor_i8(func, e.result()),
            per_tensor_i8(func, d.result()),
        ) else {
            continue;
        };
        let pointwise_first = is_pointwise(func, expand);
        let op = Op::QBottleneck {
            strides: cd.strides.to_vec(),
            pads: cd.pads.to_vec(),
            dilations: cd.dilations.to_vec(),
            expand_window: [ce.strides, ce.pads, ce.dilations].concat(),
            expand_scale,
            expand_zero_point,
            expand_act: ce.act.to_vec(),
            dw_scale,
            dw_zero_point,
            dw_act: cd.act.to_vec(),
            act_min: cp.act[0],
            act_max: cp.act[1],
        };
        let operands = [
            e.operands[0],
            e.operands[1],
            e.operands[2],
            d.operands[1],
            d.operands[2],
            p.operands[1],
            p.operands[2],
        ];
        let intermediates = func.ty(e.result()).num_elements() + func.ty(d.result()).num_elements();
        let expand_weight = func.global_read(e.operands[1]).unwrap_or("?").to_string();
        let result_ty = func.ty(p.result()).clone();
        let (old, loc) = (p.result(), p.loc.clone());
        let Some(pos) = func.position(project) else {
            continue;
        };
        let new = func.insert_op(pos, op, &operands, vec![result_ty], loc);
        let scratch = scratch_bytes(func, func.op(new));
        let result = func.op(new).result();
        func.replace_all_uses(old, result);
        for id in [project, dw, expand] {
            func.erase_op(id);
        }
        fused.push(FusedBlock {
            function: func.name.clone(),
            expand_weight,
            bytes_saved: (intermediates as u64).saturating_sub(scratch),
            pointwise_first,
        });
    }
}

/// Chains every pair of `q.bottleneck`s of `module` where the first one's output is read only
/// by the second and the second starts with a pointwise expansion; returns the pairs in program
/// order.
pub fn chain_bottlenecks(module: &mut Module) -> Vec<ChainedPair> {
    let mut chained = Vec::new();
    for func in &mut module.functions {
        chain_function(func, &mut chained);
    }
    chained
}

fn chain_function(func: &mut Function, chained: &mut Vec<ChainedPair>) {
    let uses = use_counts(func);
    let mut pairs = Vec::new();
    let mut claimed: HashSet<OpId> = HashSet::new();
    for &id in func.layout() {
        let data = func.op(id);
        let Some(&link) = data.operands.first() else {
            continue;
        };
        let Some(first) = func.defining_op(link) else {
            continue;
        };
        let both = [&func.op(first).op, &data.op]
            .iter()
            .all(|op| matches!(op, Op::QBottleneck { .. }));
        if !both || uses.get(&link) != Some(&1) || claimed.contains(&first) {
            continue;
        }
        let Some(quant) = per_tensor_i8(func, link) else {
            continue;
        };
        if let Some(op) = Op::bottleneck_chain(&func.op(first).op, &data.op, quant) {
            claimed.extend([first, id]);
            pairs.push((first, id, op));
        }
    }
    for (first, second, op) in pairs {
        let (a, b) = (func.op(first), func.op(second));
        let operands: Vec<Value> = a.operands.iter().chain(&b.operands[1..]).copied().collect();
        let link_bytes = func.ty(a.result()).num_elements() as u64;
        let first_weight = func.global_read(a.operands[1]).unwrap_or("?").to_string();
        let result_ty = func.ty(b.result()).clone();
        let (old, loc) = (b.result(), b.loc.clone());
        let Some(pos) = func.position(second) else {
            continue;
        };
        let new = func.insert_op(pos, op, &operands, vec![result_ty], loc);
        let scratch = scratch_bytes(func, func.op(new));
        let result = func.op(new).result();
        func.replace_all_uses(old, result);
        func.erase_op(second);
        func.erase_op(first);
        chained.push(ChainedPair {
            function: func.name.clone(),
            first_weight,
            link_bytes,
            scratch,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use mite_ir::{Builder, TensorData, TensorType};

    /// `x [1,4,8,8] -> pw 4->12 (relu6) -> dw 3x3 stride `s` -> pw 12->6`, parameters frozen
    /// unless `trained`; `extra_use` makes the expanded tensor a function output too.
    fn block(stride: i64, trained: bool, extra_use: bool) -> Module {
        block_with(1, 1, stride, trained, extra_use)
    }

    /// As [`block`] with a first convolution `k`x`k`, stride `first_stride`, padding `k / 2`.
    fn block_with(
        k: usize,
        first_stride: i64,
        stride: i64,
        trained: bool,
        extra_use: bool,
    ) -> Module {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let q = |s: f32, z: i32| Quant::per_tensor(s, z);
        let x = b.arg(
            "x",
            TensorType::quantized(&[1, 4, 8, 8], ElemType::I8, q(0.05, -3)),
        );
        let param = |b: &mut Builder<'_>, name: &str, shape: &[usize], int32: bool| {
            let c = shape[0];
            let ty = if int32 {
                TensorType::new(shape, ElemType::I32)
            } else {
                TensorType::quantized(shape, ElemType::I8, Quant::per_channel(0, vec![0.02; c]))
            };
            let n: usize = shape.iter().product();
            let data = if int32 {
                TensorData::I32((0..n).map(|i| i as i32 * 7 - 20).collect())
            } else {
                TensorData::I8((0..n).map(|i| (i * 37 % 255) as i8).collect())
            };
            b.param(name, ty, trained && name == "w1", Some(data))
                .unwrap()
        };
        let (w1, b1) = (
            param(&mut b, "w1", &[12, 4, k, k], false),
            param(&mut b, "b1", &[12], true),
        );
        let (wd, bd) = (
            param(&mut b, "wd", &[12, 1, 3, 3], false),
            param(&mut b, "bd", &[12], true),
        );
        let (w2, b2) = (
            param(&mut b, "w2", &[6, 12, 1, 1], false),
            param(&mut b, "b2", &[6], true),
        );
        let conv = |strides: i64, pads: i64, groups: i64, act: [i64; 2]| Op::QConv2d {
            strides: vec![strides; 2],
            pads: vec![pads; 4],
            dilations: vec![1, 1],
            groups,
            act_min: act[0],
            act_max: act[1],
        };
        let mid = b
            .op_quant(
                conv(first_stride, k as i64 / 2, 1, [-128, 60]),
                &[x, w1, b1],
                q(0.1, -128),
            )
            .unwrap();
        let dw = b
            .op_quant(conv(stride, 1, 12, [-128, 127]), &[mid, wd, bd], q(0.2, 5))
            .unwrap();
        let y = b
            .op_quant(conv(1, 0, 1, [-128, 127]), &[dw, w2, b2], q(0.3, 1))
            .unwrap();
        if extra_use {
            b.ret(&[y, mid]);
        } else {
            b.ret(&[y]);
        }
        m
    }

    #[test]
    fn fuses_a_frozen_block() {
        for stride in [1, 2] {
            let mut m = block(stride, false, false);
            let stats = run_ok(&mut StreamBottlenecks, &mut m);
            assert_eq!(stats.get("blocks-fused"), 1);
            // 12·64 + 12·(8/stride)² intermediates, less the ring (12·3·8) and a row (12·8/stride).
            let side = 8 / stride as u64;
            assert_eq!(
                stats.get("bytes-saved"),
                12 * 64 + 12 * side * side - (12 * 3 * 8 + 12 * side)
            );
            let names: Vec<String> = op_names(&m).into_iter().filter(|n| n != "param").collect();
            assert_eq!(names, ["q.bottleneck"]);
            let f = &m.functions[0];
            let fused = f.op(*f.layout().last().unwrap());
            let Op::QBottleneck {
                strides,
                expand_scale,
                expand_zero_point,
                expand_act,
                dw_zero_point,
                ..
            } = &fused.op
            else {
                panic!("{:?}", fused.op);
            };
            assert_eq!(strides, &[stride, stride]);
            assert_eq!((*expand_scale, *expand_zero_point), (0.1, -128));
            assert_eq!(expand_act, &[-128, 60]);
            assert_eq!(*dw_zero_point, 5);
            assert_eq!(f.ty(fused.result()).quant, Some(Quant::per_tensor(0.3, 1)));
            assert_idempotent(&mut StreamBottlenecks, &m);
        }
    }

    #[test]
    fn fuses_a_stem_first_stage() {
        // 3x3 stride 2 first: its output is 4x4, the depthwise (stride 1) output 4x4.
        let mut m = block_with(3, 2, 1, false, false);
        let stats = run_ok(&mut StreamBottlenecks, &mut m);
        assert_eq!(stats.get("blocks-fused"), 1);
        assert_eq!(stats.get("first-stages-fused"), 1);
        // 12·16 + 12·16 intermediates, less the ring (12·3·4) and a row (12·4).
        assert_eq!(
            stats.get("bytes-saved"),
            12 * 16 * 2 - (12 * 3 * 4 + 12 * 4)
        );
        let f = &m.functions[0];
        let fused = f.op(*f.layout().last().unwrap());
        let Op::QBottleneck {
            expand_window,
            strides,
            ..
        } = &fused.op
        else {
            panic!("{:?}", fused.op);
        };
        assert_eq!(expand_window, &[2, 2, 1, 1, 1, 1, 1, 1]);
        assert_eq!(strides, &[1, 1]);
        assert_eq!(f.ty(fused.result()).shape.as_slice(), &[1, 6, 4, 4]);
        assert_idempotent(&mut StreamBottlenecks, &m);
        // A pointwise expansion is not counted as a first stage.
        let mut m = block(1, false, false);
        assert_eq!(
            run_ok(&mut StreamBottlenecks, &mut m).get("first-stages-fused"),
            0
        );
    }

    /// A stem-like block `x [1,3,8,8] -> 3x3/s2 -> dw -> pw 4->2` then a block whose first
    /// convolution is pointwise (or 3x3 when `!pointwise`) `2->6 -> dw 3x3/s2 -> pw 6->3`, all
    /// frozen; `link_out` makes the first block's output a function output too.
    fn two_blocks(pointwise: bool, link_out: bool) -> Module {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let q = |s: f32, z: i32| Quant::per_tensor(s, z);
        let x = b.arg(
            "x",
            TensorType::quantized(&[1, 3, 8, 8], ElemType::I8, q(0.05, -3)),
        );
        let mut param = |name: &str, shape: &[usize]| {
            let n: usize = shape.iter().product();
            let (ty, data) = if shape.len() == 1 {
                let data = TensorData::I32((0..n).map(|i| i as i32 * 5 - 9).collect());
                (TensorType::new(shape, ElemType::I32), data)
            } else {
                let quant = Quant::per_channel(0, vec![0.02; shape[0]]);
                let data = TensorData::I8((0..n).map(|i| (i * 37 % 255) as i8).collect());
                (TensorType::quantized(shape, ElemType::I8, quant), data)
            };
            b.param(name, ty, false, Some(data)).unwrap()
        };
        let k = if pointwise { 1 } else { 3 };
        let ws = [
            param("w1", &[4, 3, 3, 3]),
            param("b1", &[4]),
            param("wd", &[4, 1, 3, 3]),
            param("bd", &[4]),
            param("w2", &[2, 4, 1, 1]),
            param("b2", &[2]),
            param("we", &[6, 2, k, k]),
            param("be", &[6]),
            param("wd2", &[6, 1, 3, 3]),
            param("bd2", &[6]),
            param("w3", &[3, 6, 1, 1]),
            param("b3", &[3]),
        ];
        let conv = |strides: i64, pads: i64, groups: i64| Op::QConv2d {
            strides: vec![strides; 2],
            pads: vec![pads; 4],
            dilations: vec![1, 1],
            groups,
            act_min: -128,
            act_max: 127,
        };
        let mut v = x;
        let layers = [
            (conv(2, 1, 1), q(0.1, -128)),
            (conv(1, 1, 4), q(0.2, 5)),
            (conv(1, 0, 1), q(0.3, 1)),
            (conv(1, k as i64 / 2, 1), q(0.1, -100)),
            (conv(2, 1, 6), q(0.2, 2)),
            (conv(1, 0, 1), q(0.2, 0)),
        ];
        let mut link = x;
        for (i, (op, quant)) in layers.into_iter().enumerate() {
            v = b
                .op_quant(op, &[v, ws[2 * i], ws[2 * i + 1]], quant)
                .unwrap();
            if i == 2 {
                link = v;
            }
        }
        if link_out {
            b.ret(&[v, link]);
        } else {
            b.ret(&[v]);
        }
        m
    }

    #[test]
    fn chains_a_first_stage_into_the_next_block() {
        let mut m = two_blocks(true, false);
        let stats = run_ok(&mut StreamBottlenecks, &mut m);
        assert_eq!(stats.get("blocks-fused"), 2);
        assert_eq!(stats.get("chains-fused"), 1);
        // The 2x4x4 link; scratch: the first block's ring 4·3·4 and row 4·4, the link ring
        // 2·3·4, one channel's rows 3·4, the second depthwise row 6·2.
        assert_eq!(stats.get("link-bytes-streamed"), 2 * 16);
        assert_eq!(
            stats.get("chain-scratch-bytes"),
            4 * 3 * 4 + 4 * 4 + 2 * 3 * 4 + 3 * 4 + 6 * 2
        );
        let names: Vec<String> = op_names(&m).into_iter().filter(|n| n != "param").collect();
        assert_eq!(names, ["q.bottleneck_chain"]);
        mite_ir::verify_module(&m).unwrap();
        let f = &m.functions[0];
        let chain = f.op(*f.layout().last().unwrap());
        assert_eq!(chain.operands.len(), 13);
        assert_eq!(f.ty(chain.result()).shape.as_slice(), &[1, 3, 2, 2]);
        let Some(([first, second], link)) = chain.op.bottleneck_chain_parts() else {
            panic!("{:?}", chain.op);
        };
        assert_eq!(link, (0.3, 1));
        let Op::QBottleneck { expand_window, .. } = &first else {
            panic!("{first:?}");
        };
        assert_eq!(expand_window, &[2, 2, 1, 1, 1, 1, 1, 1]);
        let Op::QBottleneck {
            strides,
            expand_zero_point,
            dw_zero_point,
            ..
        } = &second
        else {
            panic!("{second:?}");
        };
        assert_eq!(
            (strides.as_slice(), *expand_zero_point, *dw_zero_point),
            (&[2, 2][..], -100, 2)
        );
        assert_idempotent(&mut StreamBottlenecks, &m);
    }

    #[test]
    fn keeps_links_read_elsewhere_and_non_pointwise_second_blocks() {
        for (pointwise, link_out) in [(true, true), (false, false)] {
            let mut m = two_blocks(pointwise, link_out);
            let stats = run_ok(&mut StreamBottlenecks, &mut m);
            assert_eq!(stats.get("blocks-fused"), 2);
            assert_eq!(stats.get("chains-fused"), 0);
            let names: Vec<String> = op_names(&m).into_iter().filter(|n| n != "param").collect();
            assert_eq!(names, ["q.bottleneck", "q.bottleneck"]);
        }
    }

    #[test]
    fn keeps_trained_and_shared_blocks() {
        for m in [block(1, true, false), block(1, false, true)] {
            let mut m = m;
            let before = op_names(&m);
            let stats = run_ok(&mut StreamBottlenecks, &mut m);
            assert_eq!(stats.get("blocks-fused"), 0);
            assert_eq!(op_names(&m), before);
        }
    }
}
