//! `constant-fold`: evaluates ops whose operands are all constants.
//!
//! An op whose operands are all `const` reads of globals with inline data is evaluated at compile
//! time; the result becomes a new constant global (named `fold.0`, `fold.1`, …: the first free
//! names, in program order, so the names are deterministic) read by a `const` op that takes the
//! folded op's place (and location). The operands' `const` reads and globals are left for `dce`.
//!
//! Folded ops and their semantics (matching the reference interpreter):
//! - `nn.reshape`, `nn.flatten`: the same elements; `nn.transpose`, `nn.concat`: elements moved;
//!   any element type;
//! - `nn.add`, `nn.mul`: f32 arithmetic with numpy broadcasting;
//! - `nn.relu`, `nn.clip`: `x < lo → lo`, `x > hi → hi`, NaN stays NaN;
//! - `nn.pad`: the constant `value` around the data;
//! - `q.quantize`: ONNX `QuantizeLinear`: `saturate(round_half_even(x / scale) + zero_point)`,
//!   the division in f32, rounding half to even, saturating to the range of the result type
//!   (i8: `[-128, 127]`); NaN becomes the zero point; per-channel parameters use the channel's;
//! - `q.dequantize`: ONNX `DequantizeLinear`: `(q − zero_point) · scale` in f32.
//!
//! Option `max-elements` (default 65536): results with more elements are not folded.
//!
//! Statistics: `ops-folded`, `too-large` (not folded because of `max-elements`), `unsupported`
//! (ops over constants that this pass does not evaluate, such as `nn.conv2d`).

use crate::pass::{Pass, PassError};
use crate::rewrite::producer;
use crate::statistics::Statistics;
use mite_ir::infer::{infer_result_types, norm_axis};
use mite_ir::{
    Effect, Global, GlobalData, GlobalKind, Module, Op, Quant, Symbol, TensorData, TensorType,
};

/// The `constant-fold` pass (see the module documentation).
#[derive(Clone, Debug)]
pub struct ConstantFold {
    max_elements: usize,
}

impl ConstantFold {
    /// The default of option `max-elements`.
    pub const DEFAULT_MAX_ELEMENTS: usize = 65536;

    /// A pass folding results of at most `max_elements` elements.
    pub fn with_max_elements(max_elements: usize) -> ConstantFold {
        ConstantFold { max_elements }
    }
}

impl Default for ConstantFold {
    fn default() -> Self {
        ConstantFold::with_max_elements(Self::DEFAULT_MAX_ELEMENTS)
    }
}

impl Pass for ConstantFold {
    fn name(&self) -> &str {
        "constant-fold"
    }

    fn description(&self) -> &str {
        "Evaluates reshape, transpose, add, mul, relu, clip, pad, concat, quantize and dequantize over constants"
    }

    fn set_option(&mut self, key: &str, value: &str) -> Result<(), PassError> {
        match key {
            "max-elements" => {
                self.max_elements = value.parse().map_err(|_| {
                    PassError::invalid_value(self.name(), key, value, "expected an element count")
                })?;
                Ok(())
            }
            _ => Err(PassError::unknown_option(
                self.name(),
                key,
                &["max-elements"],
            )),
        }
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let mut folded = 0u64;
        let mut too_large = 0u64;
        let mut unsupported = 0u64;
        let mut next_name = 0usize;
        let Module {
            globals, functions, ..
        } = module;
        for func in functions.iter_mut() {
            for id in func.layout().to_vec() {
                let data = func.op(id);
                if data.operands.is_empty()
                    || data.results.len() != 1
                    || data.op.effect() != Effect::Pure
                {
                    continue;
                }
                let inputs: Option<Vec<(&TensorData, &TensorType)>> = data
                    .operands
                    .iter()
                    .map(|&v| match producer(func, v) {
                        Some((_, Op::Const { global })) => match globals.get(&global.0) {
                            Some(Global {
                                data: GlobalData::Inline(d),
                                ..
                            }) => Some((d, func.ty(v))),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect();
                let Some(inputs) = inputs else { continue };
                let result = data.result();
                let out_ty = func.ty(result).clone();
                let out_elements = mite_ir::limits::checked_product(&out_ty.shape);
                if out_elements.is_none_or(|n| n > self.max_elements) {
                    too_large += 1;
                    continue;
                }
                // Evaluation indexes by the types: check them first (they hold in verified IR).
                let operand_types: Vec<&TensorType> = inputs.iter().map(|&(_, t)| t).collect();
                let consistent = matches!(
                    infer_result_types(&data.op, &operand_types, globals),
                    Ok(Some(t)) if t.len() == 1 && t[0].shape == out_ty.shape && t[0].elem == out_ty.elem
                );
                let value = if consistent {
                    evaluate(&data.op, &inputs, &out_ty)
                } else {
                    Err(format!(
                        "the result type {out_ty} does not match the operands"
                    ))
                };
                let value = value.map_err(|message| {
                    PassError::failed(
                        "constant-fold",
                        format!(
                            "@{}: cannot fold `{}`: {message}",
                            func.name,
                            data.op.name()
                        ),
                    )
                })?;
                let Some(value) = value else {
                    unsupported += 1;
                    continue;
                };
                let name = loop {
                    let name = format!("fold.{next_name}");
                    next_name += 1;
                    if !globals.contains_key(&name) {
                        break name;
                    }
                };
                let loc = data.loc.clone();
                let position = func
                    .position(id)
                    .expect("ops of the layout have a position");
                let read = Op::Const {
                    global: Symbol(name.clone()),
                };
                let new_id = func.insert_op(position, read, &[], vec![out_ty.clone()], loc);
                let new_value = func.op(new_id).result();
                func.replace_all_uses(result, new_value);
                func.erase_op(id);
                globals.insert(
                    name,
                    Global {
                        ty: out_ty,
                        kind: GlobalKind::Const,
                        data: GlobalData::Inline(value),
                        line_col: None,
                    },
                );
                folded += 1;
            }
        }
        stats.add("ops-folded", folded);
        stats.add("too-large", too_large);
        stats.add("unsupported", unsupported);
        Ok(folded > 0)
    }
}

/// Evaluates `op` over `inputs` (data with its type) into a result of type `out`; `Ok(None)`
/// when the op is not folded.
fn evaluate(
    op: &Op,
    inputs: &[(&TensorData, &TensorType)],
    out: &TensorType,
) -> Result<Option<TensorData>, String> {
    for (i, (d, ty)) in inputs.iter().enumerate() {
        if Some(d.len()) != mite_ir::limits::checked_product(&ty.shape) || d.elem() != ty.elem {
            return Err(format!(
                "operand {i} has {} {} elements for {ty}",
                d.len(),
                d.elem()
            ));
        }
    }
    let (x, x_ty) = inputs[0];
    let value = match op {
        Op::Reshape { .. } | Op::Flatten { .. } => x.clone(),
        Op::Transpose { perm } => {
            let in_strides = strides(&x_ty.shape);
            let permuted: Vec<usize> = perm
                .iter()
                .map(|&p| {
                    usize::try_from(p)
                        .ok()
                        .and_then(|p| in_strides.get(p).copied())
                })
                .collect::<Option<_>>()
                .ok_or("invalid permutation")?;
            gather(x, &offsets(&out.shape, &permuted))
        }
        Op::Concat { axis } => concat(inputs, *axis, out)?,
        Op::Add {} | Op::Mul {} => {
            let (y, y_ty) = inputs[1];
            let (a, b) = (f32s(x)?, f32s(y)?);
            let ia = offsets(&out.shape, &broadcast_strides(&x_ty.shape, out.rank()));
            let ib = offsets(&out.shape, &broadcast_strides(&y_ty.shape, out.rank()));
            let pairs = ia.iter().zip(&ib).map(|(&i, &j)| (a[i], b[j]));
            TensorData::F32(match op {
                Op::Add {} => pairs.map(|(p, q)| p + q).collect(),
                _ => pairs.map(|(p, q)| p * q).collect(),
            })
        }
        Op::Relu {} => TensorData::F32(
            f32s(x)?
                .iter()
                .map(|&v| clamp(v, 0.0, f32::INFINITY))
                .collect(),
        ),
        Op::Clip { min, max } => {
            TensorData::F32(f32s(x)?.iter().map(|&v| clamp(v, *min, *max)).collect())
        }
        Op::Pad { pads, value } => pad(f32s(x)?, &x_ty.shape, pads, *value, out)?,
        Op::Quantize {} => quantize(f32s(x)?, out)?,
        Op::Dequantize {} => dequantize(x, x_ty)?,
        _ => return Ok(None),
    };
    Ok(Some(value))
}

fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

fn f32s(d: &TensorData) -> Result<&[f32], String> {
    match d {
        TensorData::F32(v) => Ok(v),
        other => Err(format!("expected f32 data, found {}", other.elem())),
    }
}

/// Row-major strides of `shape`.
///
/// Folding only runs on types whose element count [`evaluate`] has checked against the data, so
/// the products cannot overflow; they saturate rather than wrap all the same.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1].saturating_mul(shape[d + 1]);
    }
    s
}

/// Strides of `shape` broadcast to rank `rank`: 0 along missing and size-1 dimensions.
fn broadcast_strides(shape: &[usize], rank: usize) -> Vec<usize> {
    let own = strides(shape);
    let lead = rank - shape.len();
    (0..rank)
        .map(|d| match d.checked_sub(lead) {
            Some(i) if shape[i] != 1 => own[i],
            _ => 0,
        })
        .collect()
}

/// For every element of `shape` in row-major order, `Σ index[d] · strides[d]`.
fn offsets(shape: &[usize], strides: &[usize]) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    for _ in 0..n {
        out.push(offset);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            offset += strides[d];
            if index[d] < shape[d] {
                break;
            }
            offset -= strides[d] * shape[d];
            index[d] = 0;
        }
    }
    out
}

/// The elements of `d` at `indices`.
fn gather(d: &TensorData, indices: &[usize]) -> TensorData {
    fn pick<T: Copy>(v: &[T], indices: &[usize]) -> Vec<T> {
        indices.iter().map(|&i| v[i]).collect()
    }
    match d {
        TensorData::F32(v) => TensorData::F32(pick(v, indices)),
        TensorData::I8(v) => TensorData::I8(pick(v, indices)),
        TensorData::I32(v) => TensorData::I32(pick(v, indices)),
        TensorData::I64(v) => TensorData::I64(pick(v, indices)),
        TensorData::I1(v) => TensorData::I1(pick(v, indices)),
    }
}

/// All inputs' elements one after another (they share one element type).
fn append_all(inputs: &[(&TensorData, &TensorType)]) -> Result<TensorData, String> {
    let mut all = inputs[0].0.clone();
    for (d, _) in &inputs[1..] {
        match (&mut all, d) {
            (TensorData::F32(a), TensorData::F32(b)) => a.extend_from_slice(b),
            (TensorData::I8(a), TensorData::I8(b)) => a.extend_from_slice(b),
            (TensorData::I32(a), TensorData::I32(b)) => a.extend_from_slice(b),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend_from_slice(b),
            (TensorData::I1(a), TensorData::I1(b)) => a.extend_from_slice(b),
            (a, b) => return Err(format!("cannot join {} and {} data", a.elem(), b.elem())),
        }
    }
    Ok(all)
}

fn concat(
    inputs: &[(&TensorData, &TensorType)],
    axis: i64,
    out: &TensorType,
) -> Result<TensorData, String> {
    let axis = norm_axis(axis, out.rank()).map_err(|e| e.0)?;
    let all = append_all(inputs)?;
    let outer: usize = out.shape[..axis].iter().product();
    let inner: usize = out.shape[axis + 1..].iter().product();
    let mut indices = Vec::with_capacity(out.num_elements());
    let mut bases = Vec::with_capacity(inputs.len());
    let mut base = 0;
    for (d, _) in inputs {
        bases.push(base);
        base += d.len();
    }
    for o in 0..outer {
        for ((_, ty), &base) in inputs.iter().zip(&bases) {
            let block = ty.shape[axis] * inner;
            indices.extend(base + o * block..base + (o + 1) * block);
        }
    }
    Ok(gather(&all, &indices))
}

fn pad(
    x: &[f32],
    shape: &[usize],
    pads: &[i64],
    value: f32,
    out: &TensorType,
) -> Result<TensorData, String> {
    let rank = shape.len();
    if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
        return Err(format!("invalid pads {pads:?}"));
    }
    let in_strides = strides(shape);
    let mut result = Vec::with_capacity(out.num_elements());
    let mut index = vec![0usize; rank];
    for _ in 0..out.num_elements() {
        let mut offset = Some(0usize);
        for d in 0..rank {
            let begin = pads[d] as usize;
            offset = match offset {
                Some(o) if index[d] >= begin && index[d] - begin < shape[d] => {
                    Some(o + (index[d] - begin) * in_strides[d])
                }
                _ => None,
            };
        }
        result.push(offset.map_or(value, |o| x[o]));
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < out.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(TensorData::F32(result))
}

/// The channel of each element for per-channel parameters (`None` for per-tensor ones).
fn channel_of(quant: &Quant, shape: &[usize]) -> Result<Option<(usize, usize)>, String> {
    match quant {
        Quant::PerTensor { .. } => Ok(None),
        Quant::PerChannel { axis, .. } => {
            let dim = *shape.get(*axis).ok_or("quantization axis out of range")?;
            let inner: usize = shape[axis + 1..].iter().product();
            Ok(Some((dim, inner)))
        }
    }
}

fn channel(layout: Option<(usize, usize)>, i: usize) -> usize {
    layout.map_or(0, |(dim, inner)| (i / inner) % dim)
}

fn quantize(x: &[f32], out: &TensorType) -> Result<TensorData, String> {
    let quant = out
        .quant
        .as_ref()
        .ok_or("the result type has no quantization")?;
    let (lo, hi) = out
        .elem
        .int_range()
        .ok_or("the result type is not an integer type")?;
    let layout = channel_of(quant, &out.shape)?;
    let q = x.iter().enumerate().map(|(i, &v)| {
        let c = channel(layout, i);
        let zero_point = i64::from(quant.zero_point(c));
        if v.is_nan() {
            return zero_point;
        }
        let rounded = f64::from((v / quant.scale(c)).round_ties_even());
        // Saturate in f64 (exact for the i8 and i32 ranges), then convert.
        (rounded + zero_point as f64).clamp(lo as f64, hi as f64) as i64
    });
    match out.elem {
        mite_ir::ElemType::I8 => Ok(TensorData::I8(q.map(|v| v as i8).collect())),
        mite_ir::ElemType::I32 => Ok(TensorData::I32(q.map(|v| v as i32).collect())),
        other => Err(format!("cannot quantize to {other}")),
    }
}

fn dequantize(x: &TensorData, x_ty: &TensorType) -> Result<TensorData, String> {
    let quant = x_ty
        .quant
        .as_ref()
        .ok_or("the operand has no quantization")?;
    let layout = channel_of(quant, &x_ty.shape)?;
    let real = |i: usize, q: i64| {
        let c = channel(layout, i);
        (q - i64::from(quant.zero_point(c))) as f32 * quant.scale(c)
    };
    let values: Vec<f32> = match x {
        TensorData::I8(v) => v
            .iter()
            .enumerate()
            .map(|(i, &q)| real(i, q.into()))
            .collect(),
        TensorData::I32(v) => v
            .iter()
            .enumerate()
            .map(|(i, &q)| real(i, q.into()))
            .collect(),
        other => return Err(format!("cannot dequantize {} data", other.elem())),
    };
    Ok(TensorData::F32(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use mite_ir::{Builder, ElemType, Value};

    /// Builds `@f` whose body may declare constants, runs constant-fold and then checks that
    /// the single output is a `const` read; returns the module, the statistics and the output's
    /// data (if it was folded).
    fn fold(
        pass: &mut ConstantFold,
        body: impl FnOnce(&mut Builder) -> Value,
    ) -> (Module, Statistics, Option<TensorData>) {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let out = body(&mut b);
        b.ret(&[out]);
        let stats = run_ok(pass, &mut m);
        assert_idempotent(pass, &m);
        let f = &m.functions[0];
        let data = producer(f, f.outputs()[0]).and_then(|(_, op)| match op {
            Op::Const { global } => m.data(&global.0).cloned(),
            _ => None,
        });
        (m, stats, data)
    }

    fn c(b: &mut Builder, name: &str, shape: &[usize], v: Vec<f32>) -> Value {
        b.constant(name, TensorType::f32(shape), TensorData::F32(v))
            .unwrap()
    }

    fn fold_default(body: impl FnOnce(&mut Builder) -> Value) -> (Module, Statistics, TensorData) {
        let (m, stats, data) = fold(&mut ConstantFold::default(), body);
        (m, stats, data.expect("the output is folded"))
    }

    #[test]
    fn reshape_and_transpose() {
        let (m, stats, d) = fold_default(|b| {
            let x = c(b, "x", &[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
            let t = b.op(Op::Transpose { perm: vec![1, 0] }, &[x]).unwrap();
            b.op(Op::Reshape { shape: vec![6] }, &[t]).unwrap()
        });
        assert_eq!(d, TensorData::F32(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
        assert_eq!(stats.get("ops-folded"), 2);
        assert!(m.globals.contains_key("fold.0") && m.globals.contains_key("fold.1"));
        assert_eq!(m.globals["fold.1"].ty, TensorType::f32(&[6]));
    }

    #[test]
    fn transpose_rank_three_and_flatten_of_ints() {
        let (_, _, d) = fold_default(|b| {
            let ty = TensorType::new(&[2, 2, 2], ElemType::I32);
            let x = b
                .constant("x", ty, TensorData::I32((0..8).collect()))
                .unwrap();
            let t = b
                .op(
                    Op::Transpose {
                        perm: vec![2, 0, 1],
                    },
                    &[x],
                )
                .unwrap();
            b.op(Op::Flatten { axis: 1 }, &[t]).unwrap()
        });
        // out[k][i][j] = x[i][j][k]
        assert_eq!(d, TensorData::I32(vec![0, 2, 4, 6, 1, 3, 5, 7]));
    }

    #[test]
    fn add_and_mul_broadcast() {
        let (_, _, d) = fold_default(|b| {
            let x = c(b, "x", &[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
            let row = c(b, "row", &[3], vec![10.0, 20.0, 30.0]);
            let col = c(b, "col", &[2, 1], vec![2.0, -1.0]);
            let s = b.op(Op::Add {}, &[x, row]).unwrap();
            b.op(Op::Mul {}, &[col, s]).unwrap()
        });
        assert_eq!(
            d,
            TensorData::F32(vec![22.0, 44.0, 66.0, -14.0, -25.0, -36.0])
        );
    }

    #[test]
    fn relu_clip_and_pad() {
        let (_, _, d) = fold_default(|b| {
            let x = c(b, "x", &[1, 3], vec![-1.0, 0.5, 9.0]);
            let r = b.op(Op::Relu {}, &[x]).unwrap();
            let cl = b.op(Op::Clip { min: 0.0, max: 6.0 }, &[r]).unwrap();
            b.op(
                Op::Pad {
                    pads: vec![1, 1, 0, 0],
                    value: -7.0,
                },
                &[cl],
            )
            .unwrap()
        });
        assert_eq!(
            d,
            TensorData::F32(vec![-7.0, -7.0, -7.0, -7.0, -7.0, 0.0, 0.5, 6.0])
        );
    }

    #[test]
    fn relu_keeps_nan() {
        let (_, _, d) = fold_default(|b| {
            let x = c(b, "x", &[2], vec![f32::NAN, -2.0]);
            b.op(Op::Relu {}, &[x]).unwrap()
        });
        let TensorData::F32(v) = d else { panic!("f32") };
        assert!(v[0].is_nan() && v[1] == 0.0);
    }

    #[test]
    fn concat_inner_axis() {
        let (_, _, d) = fold_default(|b| {
            let x = c(b, "x", &[2, 1], vec![1.0, 2.0]);
            let y = c(b, "y", &[2, 2], vec![3.0, 4.0, 5.0, 6.0]);
            b.op(Op::Concat { axis: -1 }, &[x, y]).unwrap()
        });
        assert_eq!(d, TensorData::F32(vec![1.0, 3.0, 4.0, 2.0, 5.0, 6.0]));
    }

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        let (_, _, d) = fold_default(|b| {
            let x = c(
                b,
                "x",
                &[7],
                vec![0.25, 0.75, -0.25, -0.75, 100.0, -100.0, f32::NAN],
            );
            b.op_quant(Op::Quantize {}, &[x], Quant::per_tensor(0.5, 1))
                .unwrap()
        });
        // x / 0.5 = 0.5, 1.5, -0.5, -1.5 → 0, 2, -0, -2; then + 1; ±200 + 1 saturate; NaN → 1.
        assert_eq!(d, TensorData::I8(vec![1, 3, 1, -1, 127, -128, 1]));
    }

    #[test]
    fn dequantize_per_tensor_and_per_channel() {
        let (_, _, d) = fold_default(|b| {
            let ty = TensorType::quantized(&[2], ElemType::I8, Quant::per_tensor(0.5, -2));
            let x = b.constant("x", ty, TensorData::I8(vec![-128, 4])).unwrap();
            b.op(Op::Dequantize {}, &[x]).unwrap()
        });
        assert_eq!(d, TensorData::F32(vec![-63.0, 3.0]));

        let (_, _, d) = fold_default(|b| {
            let q = Quant::per_channel(0, vec![1.0, 0.25]);
            let ty = TensorType::quantized(&[2, 2], ElemType::I8, q);
            let x = b
                .constant("x", ty, TensorData::I8(vec![1, 2, 4, 8]))
                .unwrap();
            b.op(Op::Dequantize {}, &[x]).unwrap()
        });
        assert_eq!(d, TensorData::F32(vec![1.0, 2.0, 1.0, 2.0]));
    }

    #[test]
    fn large_results_and_unsupported_ops_are_counted() {
        let mut small = ConstantFold::default();
        small.set_option("max-elements", "4").unwrap();
        let (m, stats, d) = fold(&mut small, |b| {
            let x = c(b, "x", &[6], vec![1.0; 6]);
            b.op(Op::Relu {}, &[x]).unwrap()
        });
        assert!(d.is_none());
        assert_eq!(stats.get("too-large"), 1);
        assert_eq!(stats.get("ops-folded"), 0);
        assert_eq!(op_names(&m), ["const", "nn.relu"]);

        let (_, stats, d) = fold(&mut ConstantFold::default(), |b| {
            let x = c(b, "x", &[1, 4], vec![1.0; 4]);
            b.op(Op::Softmax { axis: -1 }, &[x]).unwrap()
        });
        assert!(d.is_none());
        assert_eq!(stats.get("unsupported"), 1);
    }

    #[test]
    fn operands_must_all_be_constants_with_data() {
        let (m, stats, d) = fold(&mut ConstantFold::default(), |b| {
            let x = b.arg("x", TensorType::f32(&[2]));
            let k = c(b, "k", &[2], vec![1.0, 2.0]);
            let w = b.param("w", TensorType::f32(&[2]), false, None).unwrap();
            let s = b.op(Op::Add {}, &[x, k]).unwrap();
            b.op(Op::Add {}, &[s, w]).unwrap()
        });
        assert!(d.is_none());
        assert_eq!(stats.get("ops-folded"), 0);
        assert_eq!(m.globals.len(), 2);
    }

    #[test]
    fn fold_names_skip_taken_ones_and_outputs_follow() {
        let (m, _, d) = fold_default(|b| {
            let taken = c(b, "fold.0", &[1], vec![5.0]);
            b.op(Op::Relu {}, &[taken]).unwrap()
        });
        assert_eq!(d, TensorData::F32(vec![5.0]));
        let f = &m.functions[0];
        let (_, op) = producer(f, f.outputs()[0]).unwrap();
        assert_eq!(op.global(), Some("fold.1"));
    }

    #[test]
    fn a_pad_whose_size_overflows_is_not_folded() {
        // pads near i64::MAX used to wrap to a declared 0x2 result and fold to zeros.
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let k = c(&mut b, "k", &[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        b.ret(&[k]);
        let f = &mut m.functions[0];
        let max = i64::MAX;
        let pad = Op::Pad {
            pads: vec![max, 0, max, 0],
            value: 0.0,
        };
        let id = f.append_op(
            pad,
            &[k],
            vec![TensorType::f32(&[0, 2])],
            Default::default(),
        );
        let out = f.op(id).result();
        f.set_outputs(vec![out]);
        assert!(
            mite_ir::verify_module(&m).is_err(),
            "the verifier refuses it"
        );
        let e = ConstantFold::default()
            .run(&mut m, &mut Statistics::new())
            .unwrap_err();
        assert!(e.to_string().contains("does not match the operands"), "{e}");
    }

    #[test]
    fn option_errors() {
        let mut pass = ConstantFold::default();
        let e = pass.set_option("max-elements", "many").unwrap_err();
        assert_eq!(
            e.to_string(),
            "option `max-elements` of pass `constant-fold`: invalid value `many`: expected an element count"
        );
        assert!(matches!(
            pass.set_option("limit", "1"),
            Err(PassError::UnknownOption { .. })
        ));
    }
}
