//! Magnitude channel selection (the paper's simulation) made contiguous by a compile-time
//! permutation.
//!
//! A partial-channel update trains the first `⌈r·C⌉` channels. To train the largest-magnitude
//! ones instead, [`permute_by_magnitude`] reorders, before the scheme is applied, the expanded
//! channels of the inverted-bottleneck block around each sliced layer so that they come first:
//! the output channels of the block's first pointwise conv (weight rows, bias, per-channel
//! scales), the depthwise conv's channels, and the input channels of the conv after it. Every
//! activation in between is quantized per tensor and the depthwise conv works channel by
//! channel, so the network computes exactly the same function.
//!
//! The channels are ranked by the L2 norm of the sliced layer's real weights for each channel
//! (its filter for a depthwise conv; its input-channel column for a pointwise one). A sliced
//! layer whose channels do not sit between a dense conv, a depthwise conv and a dense conv with
//! no other users (such as the first pointwise conv of a block, whose input channels are the
//! residual stream) is an error naming it.

use super::layers::param_of;
use super::{SchemeError, TrainedTensor};
use mite_ir::{
    Function, GlobalData, Module, Op, OpId, Quant, TensorData, TensorType, Trainable, Value,
};
use std::sync::Arc;

/// Permutes the channels around every channel-sliced tensor of `trained` so that its slice
/// holds its largest-magnitude channels; returns how many blocks were permuted.
pub fn permute_by_magnitude(
    module: &mut Module,
    trained: &[TrainedTensor],
) -> Result<usize, SchemeError> {
    let mut done = 0;
    for t in trained {
        if !matches!(t.trainable, Trainable::Channels { .. }) {
            continue;
        }
        let f = module
            .function("forward")
            .ok_or_else(|| unsupported(&t.name, "the module has no @forward"))?;
        let (first, depthwise, last, sliced) = block_of(f, &t.name)?;
        let scores = magnitude(module, f, sliced, &t.name)?;
        let mut perm: Vec<usize> = (0..scores.len()).collect();
        perm.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let weight = |id: OpId, i: usize| -> Result<String, SchemeError> {
            param_of(
                f,
                f.op(id).operands.get(i).copied().ok_or_else(|| {
                    unsupported(&t.name, "a conv of its block has no weight or bias")
                })?,
            )
            .ok_or_else(|| unsupported(&t.name, "a conv of its block reads no parameter"))
        };
        let mut edits = vec![
            (weight(first, 1)?, 0),
            (weight(depthwise, 1)?, 0),
            (weight(last, 1)?, 1),
        ];
        for id in [first, depthwise] {
            if f.op(id).operands.len() > 2 {
                edits.push((weight(id, 2)?, 0));
            }
        }
        for (name, axis) in edits {
            permute_global(module, &name, axis, &perm).map_err(|why| unsupported(&t.name, &why))?;
        }
        done += 1;
    }
    Ok(done)
}

fn unsupported(tensor: &str, why: &str) -> SchemeError {
    SchemeError::CannotPermute {
        tensor: tensor.to_string(),
        reason: why.to_string(),
    }
}

/// The conv op reading parameter `name` as its weight.
fn conv_reading(f: &Function, name: &str) -> Option<OpId> {
    f.layout().iter().copied().find(|&id| {
        let d = f.op(id);
        matches!(d.op, Op::Conv2d { .. } | Op::QConv2d { .. })
            && d.operands.get(1).and_then(|&w| param_of(f, w)).as_deref() == Some(name)
    })
}

fn groups(f: &Function, id: OpId) -> i64 {
    match f.op(id).op {
        Op::Conv2d { groups, .. } | Op::QConv2d { groups, .. } => groups,
        _ => 0,
    }
}

/// The only op using `v`, if it has exactly one user.
fn sole_user(f: &Function, v: Value) -> Option<OpId> {
    let mut users = f
        .layout()
        .iter()
        .copied()
        .filter(|&id| f.op(id).operands.contains(&v));
    let first = users.next()?;
    (users.next().is_none() && !f.outputs().contains(&v)).then_some(first)
}

/// `(first pointwise, depthwise, conv after it, the sliced conv)` around weight `name`.
fn block_of(f: &Function, name: &str) -> Result<(OpId, OpId, OpId, OpId), SchemeError> {
    let err = |why: &str| unsupported(name, why);
    let sliced = conv_reading(f, name).ok_or_else(|| err("no conv reads it"))?;
    let producer = |id: OpId| -> Result<OpId, SchemeError> {
        let x = f.op(id).operands[0];
        let p = f
            .defining_op(x)
            .ok_or_else(|| err("its block's input is not computed by a conv"))?;
        if !matches!(f.op(p).op, Op::Conv2d { .. } | Op::QConv2d { .. })
            || sole_user(f, f.op(p).result()) != Some(id)
        {
            return Err(err(
                "its channels are not produced by a conv used only by it (e.g. a residual stream)",
            ));
        }
        Ok(p)
    };
    let dw = if groups(f, sliced) > 1 {
        sliced
    } else {
        producer(sliced)?
    };
    if groups(f, dw) <= 1 {
        return Err(err("its input channels do not come from a depthwise conv"));
    }
    let first = producer(dw)?;
    let last = sole_user(f, f.op(dw).result())
        .filter(|&id| groups(f, id) == 1)
        .ok_or_else(|| err("the depthwise conv's output feeds more than one dense conv"))?;
    if groups(f, first) != 1 {
        return Err(err(
            "the depthwise conv's input is not a dense conv's output",
        ));
    }
    Ok((first, dw, last, sliced))
}

/// Per channel of the sliced axis: the sum of squares of the real weights.
fn magnitude(
    module: &Module,
    f: &Function,
    sliced: OpId,
    name: &str,
) -> Result<Vec<f32>, SchemeError> {
    let g = &module.globals[name];
    let GlobalData::Inline(data) = &g.data else {
        return Err(unsupported(name, "its weights are not loaded"));
    };
    let real = data
        .real_values(&g.ty)
        .or_else(|| match data {
            TensorData::F32(v) => Some(v.clone()),
            _ => None,
        })
        .ok_or_else(|| unsupported(name, "its weights have no real values"))?;
    let shape = &g.ty.shape;
    let axis = if groups(f, sliced) > 1 { 0 } else { 1 };
    let inner: usize = shape[axis + 1..].iter().product();
    let n = shape[axis];
    let mut scores = vec![0.0f32; n];
    for (i, v) in real.iter().enumerate() {
        scores[(i / inner) % n] += v * v;
    }
    Ok(scores)
}

/// `new[.., j, ..] = old[.., perm[j], ..]` along `axis`.
fn permute_axis<T: Copy>(data: &[T], shape: &[usize], axis: usize, perm: &[usize]) -> Vec<T> {
    let inner: usize = shape[axis + 1..].iter().product();
    let n = shape[axis];
    (0..data.len())
        .map(|i| {
            let (outer, rest) = (i / (n * inner), i % (n * inner));
            let (j, k) = (rest / inner, rest % inner);
            data[outer * n * inner + perm[j] * inner + k]
        })
        .collect()
}

/// Permutes global `name` (data and per-channel quantization) along `axis`, and retypes its
/// reads.
fn permute_global(
    module: &mut Module,
    name: &str,
    axis: usize,
    perm: &[usize],
) -> Result<(), String> {
    let g = module
        .globals
        .get_mut(name)
        .ok_or_else(|| format!("no global @{name}"))?;
    let shape = g.ty.shape.to_vec();
    if shape.get(axis) != Some(&perm.len()) {
        return Err(format!(
            "@{name} has no {} channels along axis {axis}",
            perm.len()
        ));
    }
    if let GlobalData::Inline(d) = &mut g.data {
        *d = match d {
            TensorData::F32(v) => TensorData::F32(permute_axis(v, &shape, axis, perm)),
            TensorData::I8(v) => TensorData::I8(permute_axis(v, &shape, axis, perm)),
            TensorData::I32(v) => TensorData::I32(permute_axis(v, &shape, axis, perm)),
            TensorData::I64(v) => TensorData::I64(permute_axis(v, &shape, axis, perm)),
            TensorData::I1(v) => TensorData::I1(permute_axis(v, &shape, axis, perm)),
        };
    }
    if let Some(Quant::PerChannel {
        axis: qa,
        scales,
        zero_points,
    }) = &mut g.ty.quant
    {
        if *qa == axis {
            *scales = perm.iter().map(|&p| scales[p]).collect::<Arc<[f32]>>();
            *zero_points = perm.iter().map(|&p| zero_points[p]).collect::<Arc<[i32]>>();
        }
    }
    let ty: TensorType = g.ty.clone();
    for f in &mut module.functions {
        let reads: Vec<Value> = f
            .layout()
            .iter()
            .filter(|&&id| f.op(id).op.global() == Some(name))
            .map(|&id| f.op(id).result())
            .collect();
        for v in reads {
            f.set_ty(v, ty.clone());
        }
    }
    Ok(())
}
