//! `quantize`: rewrites a float forward graph into the real int8 graph the paper trains
//! (`NOTES.md` §2), given calibration statistics of its float values.
//!
//! | float pattern | int8 result |
//! |---|---|
//! | `nn.conv2d(x, w, b?)` then any chain of single-use `nn.relu` / `nn.clip` | `q.conv2d` with `act_min` / `act_max` from the chain |
//! | `nn.linear(x, w, b?)` (optionally `nn.add` of a constant `[M]` vector: `MatMul`+`Add`), then relu / clip | `q.linear` |
//! | `nn.add(a, b)` of equal shapes, then relu / clip | `q.add` (residual) |
//! | `nn.avg_pool` (padding not counted), `nn.global_avg_pool` | `q.avg_pool`, `q.global_avg_pool` (keeps the input's quantization) |
//! | `nn.flatten`, `nn.reshape`, `nn.max_pool` of an int8 value | the same op on `i8` (same quantization) |
//! | anything else | kept in float between `q.dequantize` and `q.quantize` |
//!
//! Weights become `i8` symmetric per output channel (`s_W[c] = max|W[c]| / 127`, zero point 0),
//! biases `i32` with scale `s_x · s_W[c]` (a zero bias is added to a conv or linear layer without
//! one, so that it can be trained like the paper's layers), activations `i8` per tensor with
//! scale and zero point from the calibrated real range (widened to contain 0). The float
//! arguments stay float and are quantized on entry; float outputs are dequantized on exit.
//!
//! The pass needs [`Calibration`] ranges for every float value that becomes int8 (the calibration
//! module of the `mite` facade crate collects them with the interpreter); a missing range is an
//! error naming the op. It cannot be constructed from a textual pipeline for that reason.
//!
//! Statistics: `ops-quantized`, `params-quantized`, `activations-folded`, `quantizes-inserted`,
//! `dequantizes-inserted`, `float-ops-kept`.

use crate::pass::{Pass, PassError};
use crate::statistics::Statistics;
use mite_ir::attr::Symbol;
use mite_ir::{
    ElemType, Function, GlobalData, GlobalKind, Loc, Module, Op, Quant, TensorData, TensorType,
    Trainable, Value, ValueDef,
};
use std::collections::{HashMap, HashSet};

/// The real range `[min, max]` a float value took during calibration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// The smallest value seen (or the chosen low percentile).
    pub min: f32,
    /// The largest value seen (or the chosen high percentile).
    pub max: f32,
}

impl Range {
    /// The per-tensor int8 quantization covering this range widened to contain 0:
    /// `scale = (max − min) / 255`, `zero_point = −128 − round(min / scale)`.
    pub fn quant(self) -> Quant {
        let lo = self.min.min(0.0);
        let hi = self.max.max(0.0);
        let mut scale = (hi - lo) / 255.0;
        if !scale.is_finite() || scale <= f32::MIN_POSITIVE {
            scale = 1.0 / 255.0;
        }
        let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
        Quant::per_tensor(scale, zp)
    }
}

/// Calibration statistics: the range of each float value of one function.
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    /// Ranges by value of the calibrated function (its arguments and op results).
    pub ranges: HashMap<Value, Range>,
}

/// The `quantize` pass (see the module documentation).
#[derive(Clone, Debug)]
pub struct Quantize {
    /// The function rewritten (usually `forward`).
    pub function: String,
    /// Ranges of the values of that function.
    pub calibration: Calibration,
    /// The largest int8 weight magnitude: 127, or 63 for onnxruntime's `reduce_range` (7-bit
    /// weights, which x86 CPUs without VNNI need: their `u8 × s8` pair sums saturate at 16 bits).
    pub weight_max: i8,
}

impl Quantize {
    /// The pass for function `forward` with `calibration`.
    pub fn new(calibration: Calibration) -> Quantize {
        Quantize {
            function: "forward".to_string(),
            calibration,
            weight_max: 127,
        }
    }
}

#[derive(Default)]
struct Counts {
    ops: u64,
    params: u64,
    folded: u64,
    quantizes: u64,
    dequantizes: u64,
    float_ops: u64,
}

impl Pass for Quantize {
    fn name(&self) -> &str {
        "quantize"
    }

    fn description(&self) -> &str {
        "Rewrites a float forward graph into the real int8 graph, from calibration ranges"
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let index = module
            .functions
            .iter()
            .position(|f| f.name == self.function)
            .ok_or_else(|| {
                PassError::failed(
                    "quantize",
                    format!("the module has no function @{}", self.function),
                )
            })?;
        let old = module.functions.remove(index);
        let result = Rewriter::new(module, &old, &self.calibration, self.weight_max).run();
        match result {
            Ok((new, counts)) => {
                module.functions.insert(index, new);
                stats.add("ops-quantized", counts.ops);
                stats.add("params-quantized", counts.params);
                stats.add("activations-folded", counts.folded);
                stats.add("quantizes-inserted", counts.quantizes);
                stats.add("dequantizes-inserted", counts.dequantizes);
                stats.add("float-ops-kept", counts.float_ops);
                Ok(counts.ops > 0)
            }
            Err(message) => {
                module.functions.insert(index, old);
                Err(PassError::failed("quantize", message))
            }
        }
    }
}

/// Symmetric per-row int8 quantization of `w` (rows of `fan_in` elements): values and scales.
/// Row `c`'s scale is `max|w[c]| / qmax`, but at least `min_scales[c]` when given.
pub fn quantize_weight_per_channel(
    w: &[f32],
    rows: usize,
    min_scales: Option<&[f32]>,
    qmax: i8,
) -> (Vec<i8>, Vec<f32>) {
    let qmax = f32::from(qmax.max(1));
    let fan_in = w.len() / rows.max(1);
    let mut scales = Vec::with_capacity(rows);
    let mut q = Vec::with_capacity(w.len());
    for (c, row) in w.chunks(fan_in.max(1)).enumerate() {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let floor = min_scales.and_then(|m| m.get(c)).copied().unwrap_or(0.0);
        let mut s = (max / qmax).max(floor);
        if !(s > 0.0 && s.is_finite()) {
            s = 1.0;
        }
        scales.push(s);
        q.extend(
            row.iter()
                .map(|v| (v / s).round_ties_even().clamp(-qmax, qmax) as i8),
        );
    }
    (q, scales)
}

/// The largest magnitude of a quantized bias: `2^24`, leaving the accumulator room.
const MAX_BIAS: f32 = (1u32 << 24) as f32;

/// The int8 value of real bound `r` under per-tensor `quant`, clamped to the int8 range
/// (infinite bounds are the ends of the range).
fn clamp_bound(quant: &Quant, r: f32) -> i64 {
    let (s, z) = (quant.scale(0), quant.zero_point(0) as f32);
    if r.is_finite() {
        ((r / s).round_ties_even() + z).clamp(-128.0, 127.0) as i64
    } else if r > 0.0 {
        127
    } else {
        -128
    }
}

/// `op` (an int8 op with an output clamp) with `act_min` / `act_max` set.
fn with_clamp(op: Op, act_min: i64, act_max: i64) -> Op {
    match op {
        Op::QConv2d {
            strides,
            pads,
            dilations,
            groups,
            ..
        } => Op::QConv2d {
            strides,
            pads,
            dilations,
            groups,
            act_min,
            act_max,
        },
        Op::QLinear { .. } => Op::QLinear { act_min, act_max },
        Op::QAdd { .. } => Op::QAdd { act_min, act_max },
        Op::QAvgPool {
            kernel,
            strides,
            pads,
            ..
        } => Op::QAvgPool {
            kernel,
            strides,
            pads,
            act_min,
            act_max,
        },
        other => other,
    }
}

/// What an old value became in the new function.
#[derive(Clone, Copy)]
struct Mapped {
    value: Value,
    int8: bool,
}

struct Rewriter<'a> {
    module: &'a mut Module,
    old: &'a Function,
    cal: &'a Calibration,
    out: Function,
    map: HashMap<Value, Mapped>,
    /// Cached conversions (old value → new value in the other representation).
    as_int8_cache: HashMap<Value, Value>,
    as_float_cache: HashMap<Value, Value>,
    uses: HashMap<Value, Vec<usize>>,
    /// Old ops (by position) already consumed by a fold.
    consumed: HashSet<usize>,
    converted: HashSet<String>,
    counts: Counts,
    weight_max: i8,
}

impl<'a> Rewriter<'a> {
    fn new(
        module: &'a mut Module,
        old: &'a Function,
        cal: &'a Calibration,
        weight_max: i8,
    ) -> Self {
        let mut uses: HashMap<Value, Vec<usize>> = HashMap::new();
        for (pos, &id) in old.layout().iter().enumerate() {
            for &v in &old.op(id).operands {
                uses.entry(v).or_default().push(pos);
            }
        }
        for &v in old.outputs() {
            uses.entry(v).or_default().push(usize::MAX);
        }
        let mut out = Function::new(old.name.clone());
        out.line_col = old.line_col;
        Rewriter {
            module,
            old,
            cal,
            out,
            map: HashMap::new(),
            as_int8_cache: HashMap::new(),
            as_float_cache: HashMap::new(),
            uses,
            consumed: HashSet::new(),
            converted: HashSet::new(),
            counts: Counts::default(),
            weight_max,
        }
    }

    fn run(mut self) -> Result<(Function, Counts), String> {
        for &a in self.old.args() {
            let v = self
                .out
                .add_arg(self.old.ty(a).clone(), self.old.value(a).name.clone());
            self.map.insert(
                a,
                Mapped {
                    value: v,
                    int8: false,
                },
            );
        }
        let layout = self.old.layout().to_vec();
        for (pos, &id) in layout.iter().enumerate() {
            if self.consumed.contains(&pos) {
                continue;
            }
            let data = self.old.op(id);
            match &data.op {
                // Globals are read where they are used.
                Op::Param { .. } | Op::Const { .. } => {}
                Op::Conv2d { .. } | Op::Linear {} => self.weighted(pos)?,
                Op::Add {} if self.is_residual(pos) => self.residual(pos)?,
                Op::GlobalAvgPool {} if self.is_int8_capable(data.operands[0]) => {
                    let x = self.as_int8(data.operands[0], &data.loc)?;
                    let ty = self.int8_like(data.results[0], self.out.ty(x).quant.clone());
                    let v = self.append(Op::QGlobalAvgPool {}, &[x], ty, data.loc.clone());
                    self.counts.ops += 1;
                    self.map_int8(data.results[0], v);
                }
                Op::AvgPool {
                    kernel,
                    strides,
                    pads,
                    count_include_pad,
                } if (!count_include_pad || pads.iter().all(|&p| p == 0))
                    && self.is_int8_capable(data.operands[0]) =>
                {
                    let op = Op::QAvgPool {
                        kernel: kernel.clone(),
                        strides: strides.clone(),
                        pads: pads.clone(),
                        act_min: -128,
                        act_max: 127,
                    };
                    self.activation_op(pos, op, &[data.operands[0]])?;
                }
                Op::Flatten { .. } | Op::Reshape { .. } | Op::MaxPool { .. }
                    if self.is_int8(data.operands[0]) =>
                {
                    let x = self.map[&data.operands[0]].value;
                    let ty = self.int8_like(data.results[0], self.out.ty(x).quant.clone());
                    let v = self.append(data.op.clone(), &[x], ty, data.loc.clone());
                    self.map_int8(data.results[0], v);
                }
                _ => self.float_op(pos)?,
            }
        }
        let outputs: Vec<Value> = self.old.outputs().to_vec();
        let mut new_outputs = Vec::with_capacity(outputs.len());
        for v in outputs {
            new_outputs.push(self.as_float(v, &Loc::named("logits"))?);
        }
        self.out.set_outputs(new_outputs);
        Ok((self.out, self.counts))
    }

    fn op_label(&self, pos: usize) -> String {
        let data = self.old.op(self.old.layout()[pos]);
        match &data.loc.name {
            Some(n) => format!("{} `{n}`", data.op.name()),
            None => format!("{} #{pos}", data.op.name()),
        }
    }

    fn append(&mut self, op: Op, operands: &[Value], ty: TensorType, loc: Loc) -> Value {
        let id = self.out.append_op(op, operands, vec![ty], loc);
        self.out.op(id).result()
    }

    fn map_int8(&mut self, old: Value, new: Value) {
        self.map.insert(
            old,
            Mapped {
                value: new,
                int8: true,
            },
        );
    }

    /// The old result type's shape as `i8` with `quant`.
    fn int8_like(&self, old: Value, quant: Option<Quant>) -> TensorType {
        let shape = &self.old.ty(old).shape;
        match quant {
            Some(q) => TensorType::quantized(shape, ElemType::I8, q),
            None => TensorType::new(shape, ElemType::I8),
        }
    }

    fn is_int8(&self, v: Value) -> bool {
        self.map.get(&v).is_some_and(|m| m.int8)
    }

    /// Whether `v` is int8 already, or f32 with a calibrated range.
    fn is_int8_capable(&self, v: Value) -> bool {
        self.is_int8(v)
            || (self.old.ty(v).elem == ElemType::F32 && self.cal.ranges.contains_key(&v))
    }

    fn range(&self, v: Value, loc: &Loc) -> Result<Range, String> {
        self.cal.ranges.get(&v).copied().ok_or_else(|| {
            let what = match self.old.value(v).def {
                ValueDef::Arg(i) => format!("argument {i}"),
                ValueDef::Result(id, _) => {
                    let pos = self.old.position(id).unwrap_or(usize::MAX);
                    format!("the result of {}", self.op_label(pos))
                }
            };
            format!(
                "no calibration range for {what} (needed by {})",
                loc.name.as_deref().unwrap_or("an op")
            )
        })
    }

    /// The new int8 value for old value `v` (quantizing a float value with its range).
    fn as_int8(&mut self, v: Value, loc: &Loc) -> Result<Value, String> {
        if let Some(m) = self.map.get(&v).copied() {
            if m.int8 {
                return Ok(m.value);
            }
        }
        if let Some(&q) = self.as_int8_cache.get(&v) {
            return Ok(q);
        }
        let quant = self.range(v, loc)?.quant();
        let x = self.read(v)?;
        let ty = TensorType::quantized(&self.out.ty(x).shape, ElemType::I8, quant);
        let name = match self.old.value(v).def {
            ValueDef::Arg(_) => Loc::named("input_quantize"),
            ValueDef::Result(..) => Loc::default(),
        };
        let q = self.append(Op::Quantize {}, &[x], ty, name);
        self.counts.quantizes += 1;
        self.as_int8_cache.insert(v, q);
        Ok(q)
    }

    /// The new float value for old value `v`.
    fn as_float(&mut self, v: Value, loc: &Loc) -> Result<Value, String> {
        match self.map.get(&v).copied() {
            Some(m) if m.int8 => {
                if let Some(&f) = self.as_float_cache.get(&v) {
                    return Ok(f);
                }
                let ty = TensorType::f32(&self.out.ty(m.value).shape);
                let f = self.append(Op::Dequantize {}, &[m.value], ty, loc.clone());
                self.counts.dequantizes += 1;
                self.as_float_cache.insert(v, f);
                Ok(f)
            }
            Some(m) => Ok(m.value),
            None => self.read(v),
        }
    }

    /// A global read for old value `v` (a `param` / `const` result), or its mapped value.
    fn read(&mut self, v: Value) -> Result<Value, String> {
        if let Some(m) = self.map.get(&v) {
            if !m.int8 {
                return Ok(m.value);
            }
        }
        let global = self
            .old
            .global_read(v)
            .ok_or("internal error: a value is used before it is defined")?
            .to_string();
        let id = self
            .old
            .defining_op(v)
            .ok_or("internal error: no defining op")?;
        let op = self.old.op(id).op.clone();
        let ty = self.module.globals[&global].ty.clone();
        let r = self.append(op, &[], ty, Loc::default());
        self.map.insert(
            v,
            Mapped {
                value: r,
                int8: false,
            },
        );
        Ok(r)
    }

    /// The single user of `v` (its position) when it has exactly one and it is an op.
    fn single_user(&self, v: Value) -> Option<usize> {
        match self.uses.get(&v).map(Vec::as_slice) {
            Some(&[pos]) if pos != usize::MAX => Some(pos),
            _ => None,
        }
    }

    /// Follows single-use `nn.relu` / `nn.clip` ops after `v`: the last value of the chain, the
    /// clamp in real units, and the positions consumed.
    fn activation_chain(&self, mut v: Value) -> (Value, f32, f32, Vec<usize>) {
        let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
        let mut consumed = Vec::new();
        while let Some(pos) = self.single_user(v) {
            let data = self.old.op(self.old.layout()[pos]);
            match data.op {
                Op::Relu {} => lo = lo.max(0.0),
                Op::Clip { min, max } => {
                    lo = lo.max(min);
                    hi = hi.min(max);
                }
                _ => break,
            }
            consumed.push(pos);
            v = data.results[0];
        }
        (v, lo, hi, consumed)
    }

    /// Appends int8 `op` over `operands` (old values, quantized as needed) for old op `pos`,
    /// folding the activation chain after it into `act_min` / `act_max`.
    fn activation_op(&mut self, pos: usize, op: Op, operands: &[Value]) -> Result<(), String> {
        let data = self.old.op(self.old.layout()[pos]);
        let loc = data.loc.clone();
        let result = data.results[0];
        let mut xs = Vec::with_capacity(operands.len());
        for &o in operands {
            xs.push(self.as_int8(o, &loc)?);
        }
        self.emit(result, op, &xs, loc)
    }

    /// Appends int8 `op` over the new int8 values `xs` as the value of old `result`, folding the
    /// single-use relu / clip chain after `result` into `act_min` / `act_max`; the result's
    /// quantization comes from the range of the chain's last value.
    fn emit(&mut self, result: Value, op: Op, xs: &[Value], loc: Loc) -> Result<(), String> {
        let (last, lo, hi, consumed) = self.activation_chain(result);
        let quant = self.range(last, &loc)?.quant();
        let op = with_clamp(op, clamp_bound(&quant, lo), clamp_bound(&quant, hi));
        let ty = self.int8_like(last, Some(quant));
        let v = self.append(op, xs, ty, loc);
        self.counts.ops += 1;
        self.counts.folded += consumed.len() as u64;
        self.consumed.extend(consumed);
        self.map_int8(last, v);
        self.map_int8(result, v);
        Ok(())
    }

    fn is_residual(&self, pos: usize) -> bool {
        let data = self.old.op(self.old.layout()[pos]);
        let shape = &self.old.ty(data.results[0]).shape;
        data.operands
            .iter()
            .all(|&o| &self.old.ty(o).shape == shape && self.is_int8_capable(o))
            && self.cal.ranges.contains_key(&data.results[0])
    }

    fn residual(&mut self, pos: usize) -> Result<(), String> {
        let operands = self.old.op(self.old.layout()[pos]).operands.to_vec();
        let op = Op::QAdd {
            act_min: -128,
            act_max: 127,
        };
        self.activation_op(pos, op, &operands)
    }

    /// The float data of global `name`, checked to be an inline f32 parameter or constant.
    fn float_global(&self, name: &str, what: &str, label: &str) -> Result<Vec<f32>, String> {
        let g = &self.module.globals[name];
        match (&g.data, g.ty.elem) {
            (GlobalData::Inline(TensorData::F32(v)), ElemType::F32) => Ok(v.clone()),
            _ => Err(format!(
                "{label}: the {what} @{name} is not a float tensor with data ({})",
                g.ty
            )),
        }
    }

    /// `nn.conv2d` / `nn.linear` (with a following constant `nn.add` folded as bias).
    fn weighted(&mut self, pos: usize) -> Result<(), String> {
        let label = self.op_label(pos);
        let data = self.old.op(self.old.layout()[pos]);
        let (op, x, w, b) = (
            data.op.clone(),
            data.operands[0],
            data.operands[1],
            data.operands.get(2).copied(),
        );
        let Some(w_name) = self.old.global_read(w).map(str::to_string) else {
            return self.float_op(pos);
        };
        if !self.is_int8_capable(x) {
            return self.float_op(pos);
        }
        let mut result = data.results[0];
        let mut bias_global = b.and_then(|b| self.old.global_read(b).map(str::to_string));
        if b.is_some() && bias_global.is_none() {
            return self.float_op(pos);
        }
        let co = self.module.globals[&w_name].ty.shape[0];
        // MatMul + Add: a constant [M] vector added to a linear layer without bias.
        if matches!(op, Op::Linear {}) && b.is_none() {
            if let Some(user) = self.single_user(result) {
                let u = self.old.op(self.old.layout()[user]);
                if matches!(u.op, Op::Add {}) {
                    let other = if u.operands[0] == result {
                        u.operands[1]
                    } else {
                        u.operands[0]
                    };
                    if let Some(g) = self.old.global_read(other) {
                        if self.module.globals[g].ty.shape.as_slice() == [co]
                            && self.old.ty(u.results[0]).shape == self.old.ty(result).shape
                        {
                            bias_global = Some(g.to_string());
                            self.consumed.insert(user);
                            result = u.results[0];
                        }
                    }
                }
            }
        }
        let loc = data.loc.clone();
        let xq = self.as_int8(x, &loc)?;
        let s_x = self.out.ty(xq).quant.as_ref().map_or(1.0, |q| q.scale(0));
        let b_name = match &bias_global {
            Some(name) => name.clone(),
            None => self.fresh_bias_name(&w_name),
        };
        if self.converted.contains(&b_name) {
            return Err(format!(
                "{label}: the bias @{b_name} is shared with another layer; int8 biases depend on \
                 each layer's input scale"
            ));
        }
        let real_bias = match &bias_global {
            Some(name) => {
                let v = self.float_global(name, "bias", &label)?;
                if v.len() != co {
                    return Err(format!(
                        "{label}: the bias @{name} has {} elements, expected {co}",
                        v.len()
                    ));
                }
                v
            }
            None => vec![0.0; co],
        };
        // Weight: per output channel symmetric; a channel whose bias would not fit the int32
        // range at scale `s_x · s_W[c]` (a nearly dead channel) gets a larger weight scale.
        let w_scales = if self.converted.contains(&w_name) {
            let ty = &self.module.globals[&w_name].ty;
            (0..co)
                .map(|c| ty.quant.as_ref().map_or(1.0, |q| q.scale(c)))
                .collect()
        } else {
            let real = self.float_global(&w_name, "weight", &label)?;
            let floors: Vec<f32> = real_bias
                .iter()
                .map(|b| b.abs() / (s_x * MAX_BIAS))
                .collect();
            let (q, scales) =
                quantize_weight_per_channel(&real, co, Some(&floors), self.weight_max);
            let g = self.module.globals.get_mut(&w_name).expect("weight global");
            g.ty = TensorType::quantized(
                &g.ty.shape,
                ElemType::I8,
                Quant::per_channel(0, scales.clone()),
            );
            g.data = GlobalData::Inline(TensorData::I8(q));
            self.converted.insert(w_name.clone());
            self.counts.params += 1;
            scales
        };
        // Bias: int32 with scale s_x · s_W[c]; a zero bias when there is none.
        let bias_scales: Vec<f32> = w_scales.iter().map(|s| s * s_x).collect();
        let qb: Vec<i32> = real_bias
            .iter()
            .zip(&bias_scales)
            .map(|(b, s)| {
                (f64::from(*b) / f64::from(*s))
                    .round()
                    .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
            })
            .collect();
        let b_ty = TensorType::quantized(&[co], ElemType::I32, Quant::per_channel(0, bias_scales));
        // The bias trains whenever any part of its weight does (the paper's rule).
        let trainable = match self.module.globals[&w_name].kind {
            GlobalKind::Param { trainable } => Trainable::from_bool(trainable.any()),
            _ => Trainable::None,
        };
        match self.module.globals.get_mut(&b_name) {
            Some(g) => {
                g.ty = b_ty.clone();
                g.data = GlobalData::Inline(TensorData::I32(qb));
                g.kind = GlobalKind::Param { trainable };
            }
            None => {
                self.module.add_param(
                    &b_name,
                    b_ty.clone(),
                    trainable.any(),
                    GlobalData::Inline(TensorData::I32(qb)),
                );
            }
        }
        self.converted.insert(b_name.clone());
        self.counts.params += 1;
        let w_ty = self.module.globals[&w_name].ty.clone();
        let wv = self.append(
            Op::Param {
                global: Symbol(w_name.clone()),
            },
            &[],
            w_ty,
            Loc::default(),
        );
        let bv = self.append(
            Op::Param {
                global: Symbol(b_name.clone()),
            },
            &[],
            b_ty,
            Loc::default(),
        );
        let qop = match op {
            Op::Conv2d {
                strides,
                pads,
                dilations,
                groups,
            } => Op::QConv2d {
                strides,
                pads,
                dilations,
                groups,
                act_min: -128,
                act_max: 127,
            },
            _ => Op::QLinear {
                act_min: -128,
                act_max: 127,
            },
        };
        // Fold the activation chain after the (possibly bias-added) result.
        self.emit(result, qop, &[xq, wv, bv], loc)?;
        let v = self.map[&result].value;
        self.map_int8(data.results[0], v);
        Ok(())
    }

    /// `<layer>.bias` for weight `<layer>.weight`, or another unused name.
    fn fresh_bias_name(&self, weight: &str) -> String {
        let base = weight.strip_suffix(".weight").unwrap_or(weight);
        let mut name = format!("{base}.bias");
        let mut k = 1;
        while self.module.globals.contains_key(&name) {
            name = format!("{base}.bias_{k}");
            k += 1;
        }
        name
    }

    /// Keeps old op `pos` in float (dequantizing int8 operands).
    fn float_op(&mut self, pos: usize) -> Result<(), String> {
        let data = self.old.op(self.old.layout()[pos]);
        let mut xs = Vec::with_capacity(data.operands.len());
        for &o in &data.operands {
            xs.push(self.as_float(o, &data.loc)?);
        }
        let types = data
            .results
            .iter()
            .map(|&r| self.old.ty(r).clone())
            .collect();
        let id = self
            .out
            .append_op(data.op.clone(), &xs, types, data.loc.clone());
        for (k, &r) in data.results.iter().enumerate() {
            let v = self.out.op(id).results[k];
            self.map.insert(
                r,
                Mapped {
                    value: v,
                    int8: false,
                },
            );
        }
        self.counts.float_ops += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mite_ir::{verify_module, Builder};

    /// `x [1,1,2,2] → conv 1×1 (2 channels, bias) → relu → add(·, ·) → flatten`, with ranges.
    fn float_model() -> (Module, Calibration, [Value; 5]) {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("x", TensorType::f32(&[1, 1, 2, 2]));
        let w = b
            .param(
                "conv.weight",
                TensorType::f32(&[2, 1, 1, 1]),
                true,
                Some(TensorData::F32(vec![0.5, -2.0])),
            )
            .unwrap();
        let bias = b
            .param(
                "conv.bias",
                TensorType::f32(&[2]),
                true,
                Some(TensorData::F32(vec![0.25, 0.0])),
            )
            .unwrap();
        let conv = Op::Conv2d {
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            groups: 1,
        };
        let y = b.op(conv, &[x, w, bias]).unwrap();
        let r = b.op(Op::Relu {}, &[y]).unwrap();
        let s = b.op(Op::Add {}, &[r, r]).unwrap();
        let f = b.op(Op::Flatten { axis: 1 }, &[s]).unwrap();
        b.ret(&[f]);
        let mut cal = Calibration::default();
        cal.ranges.insert(
            x,
            Range {
                min: -1.0,
                max: 1.0,
            },
        );
        cal.ranges.insert(
            y,
            Range {
                min: -2.0,
                max: 0.75,
            },
        );
        cal.ranges.insert(
            r,
            Range {
                min: 0.0,
                max: 0.75,
            },
        );
        cal.ranges.insert(s, Range { min: 0.0, max: 1.5 });
        (m, cal, [x, y, r, s, f])
    }

    #[test]
    fn range_quantization_contains_zero() {
        let q = Range {
            min: 0.0,
            max: 2.55,
        }
        .quant();
        assert_eq!((q.scale(0), q.zero_point(0)), (0.01, -128));
        let q = Range { min: 0.5, max: 1.0 }.quant();
        assert_eq!(q.zero_point(0), -128, "widened to contain 0");
        let q = Range {
            min: -1.0,
            max: 1.0,
        }
        .quant();
        assert!((q.scale(0) - 2.0 / 255.0).abs() < 1e-9);
    }

    #[test]
    fn weights_are_symmetric_per_channel_with_a_bias_floor() {
        let (q, s) = quantize_weight_per_channel(&[1.0, -0.5, 0.0, 0.0], 2, None, 127);
        assert_eq!(q, [127, -64, 0, 0]);
        assert_eq!(s, [1.0 / 127.0, 1.0]);
        let (q, s) = quantize_weight_per_channel(&[1.0, -0.5], 1, Some(&[0.1]), 63);
        assert_eq!((q, s), (vec![10, -5], vec![0.1]));
    }

    #[test]
    fn conv_relu_add_become_int8_ops() {
        let (mut m, cal, _) = float_model();
        let mut stats = Statistics::new();
        assert!(Quantize::new(cal).run(&mut m, &mut stats).unwrap());
        verify_module(&m).unwrap();
        let f = &m.functions[0];
        let names: Vec<&str> = f.layout().iter().map(|&id| f.op(id).op.name()).collect();
        assert_eq!(
            names,
            [
                "q.quantize",
                "param",
                "param",
                "q.conv2d",
                "q.add",
                "nn.flatten",
                "q.dequantize"
            ]
        );
        // Weight: per channel, s = max|w| / 127.
        let w = &m.globals["conv.weight"];
        assert_eq!(
            m.data("conv.weight"),
            Some(&TensorData::I8(vec![127, -127]))
        );
        assert_eq!(w.ty.quant.as_ref().unwrap().scale(1), 2.0 / 127.0);
        // Bias: int32 at s_x · s_w[c].
        let s_x = 2.0f32 / 255.0;
        let b = &m.globals["conv.bias"];
        let bs = b.ty.quant.as_ref().unwrap().scale(0);
        assert!((bs - s_x * 0.5 / 127.0).abs() < 1e-12);
        let TensorData::I32(bq) = m.data("conv.bias").unwrap() else {
            panic!("int32 bias")
        };
        assert_eq!(bq[0], (0.25 / bs as f64).round() as i32);
        // The ReLU folded: the conv's output range is the ReLU's, zero point −128.
        let conv = f.op(f.layout()[3]);
        let out = f.ty(conv.result()).quant.clone().unwrap();
        assert_eq!(out.zero_point(0), -128);
        assert!(matches!(
            conv.op,
            Op::QConv2d {
                act_min: -128,
                act_max: 127,
                ..
            }
        ));
        assert_eq!(stats.get("ops-quantized"), 2);
        assert_eq!(stats.get("params-quantized"), 2);
        assert_eq!(stats.get("activations-folded"), 1);
        assert_eq!(stats.get("float-ops-kept"), 0);
    }

    #[test]
    fn relu6_clip_becomes_the_clamp() {
        let (mut m, mut cal, [_, y, r, ..]) = float_model();
        let f = m.function_mut("forward").unwrap();
        let relu = f.defining_op(r).unwrap();
        f.op_mut(relu).op = Op::Clip { min: 0.0, max: 0.5 };
        cal.ranges.insert(
            y,
            Range {
                min: -2.0,
                max: 0.75,
            },
        );
        Quantize::new(cal)
            .run(&mut m, &mut Statistics::new())
            .unwrap();
        let f = &m.functions[0];
        let conv = f.op(f.layout()[3]);
        // Range [0, 0.75]: scale 0.75/255; 0.5 → round(170) − 128 = 42.
        assert!(
            matches!(
                conv.op,
                Op::QConv2d {
                    act_min: -128,
                    act_max: 42,
                    ..
                }
            ),
            "{:?}",
            conv.op
        );
    }

    #[test]
    fn a_missing_range_names_the_op() {
        let (mut m, mut cal, [_, _, r, _, _]) = float_model();
        cal.ranges.remove(&r);
        let e = Quantize::new(cal)
            .run(&mut m, &mut Statistics::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no calibration range for the result of nn.relu"),
            "{e}"
        );
        // The function is left as it was.
        assert_eq!(m.functions[0].layout().len(), 6);
    }

    #[test]
    fn an_add_without_a_range_stays_float() {
        let (mut m, mut cal, [_, _, _, s, _]) = float_model();
        cal.ranges.remove(&s);
        let mut stats = Statistics::new();
        Quantize::new(cal).run(&mut m, &mut stats).unwrap();
        verify_module(&m).unwrap();
        assert_eq!(stats.get("float-ops-kept"), 2, "nn.add and nn.flatten");
    }

    #[test]
    fn an_unknown_op_stays_float_between_dequantize_and_quantize() {
        let (mut m, cal, [.., f_out]) = float_model();
        let f = m.function_mut("forward").unwrap();
        let ty = f.ty(f_out).clone();
        let id = f.append_op(Op::Softmax { axis: -1 }, &[f_out], vec![ty], Loc::default());
        let sm = f.op(id).result();
        f.set_outputs(vec![sm]);
        let mut stats = Statistics::new();
        Quantize::new(cal).run(&mut m, &mut stats).unwrap();
        verify_module(&m).unwrap();
        assert_eq!(stats.get("float-ops-kept"), 1);
        let f = &m.functions[0];
        let last: Vec<&str> = f
            .layout()
            .iter()
            .rev()
            .take(2)
            .map(|&id| f.op(id).op.name())
            .collect();
        assert_eq!(last, ["nn.softmax", "q.dequantize"]);
    }
}
