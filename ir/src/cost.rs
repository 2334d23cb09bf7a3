//! Cost model: parameter counts, multiply-accumulates and activation sizes per op and function.
//!
//! Every figure comes from types and attributes alone (no data is read), so it works on modules
//! whose globals are declarations only.
//!
//! **What is counted**
//! - *MACs* (multiply-accumulates), per op:
//!   - `nn.conv2d` / `q.conv2d`: `N · C_out · H_out · W_out · (C_in / groups) · k_h · k_w`
//!     (so a depthwise convolution counts `k_h · k_w` per output element);
//!   - `nn.linear` / `q.linear`: `N · M · K`;
//!   - `nn.matmul`: `batch · M · K · N` (batch = product of the leading dimensions);
//!   - every other op counts **0**: elementwise ops, pooling, softmax, losses, quantization and
//!     layout ops are not multiply-accumulates, and the bias addition of a convolution or linear
//!     layer is not counted either.
//! - *Parameters of an op* ([`OpCost::params`]): the elements of the distinct parameters the op
//!   consumes, found by following each operand back through `q.dequantize`, `q.quantize`,
//!   `q.requantize`, `nn.reshape`, `nn.flatten` and `nn.transpose` to a `param` op. For a
//!   convolution this is its weight plus its bias. The `param` op itself counts 0, so a
//!   parameter is attributed to the ops that consume it.
//! - *Parameters of a function* ([`CostReport::total_params`]): the elements of the distinct
//!   globals read by `param` ops, each counted once, whether or not anything consumes them.
//!   Constants (`const`) are not parameters and are not counted.
//! - *Output bytes* ([`OpCost::output_bytes`]): the sum of [`TensorType::size_bytes`] over the
//!   op's results.
//!
//! **Inference peak-memory estimate** ([`CostReport::peak_activation_bytes`]): the lower bound
//! of [`Liveness`] over program order. Activations are the buffers of the function arguments and
//! of the results of every op except `param` and `const` (parameters and constants live in flash
//! and are excluded); `nn.reshape` / `nn.flatten` results alias their operand and elementwise ops
//! may overwrite an operand that dies at them (see [`crate::analysis::liveness`]). Arguments are
//! live from the first op; a value stays live up to and including its last use; function outputs
//! stay live to the end. The memory *at* an op is the sum of the bytes of every buffer live while
//! it runs: its operands, its results and everything still needed later. It assumes no alignment
//! padding and no scratch buffers (im2col and the like; [`crate::memory`] accounts for both).

use crate::analysis::{Liveness, Schedule};
use crate::module::{Function, OpData, OpId, Value, ValueDef};
use crate::ops::Op;
use crate::types::TensorType;
use std::collections::HashSet;
use std::fmt;

/// The cost of one op of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpCost {
    /// Position in program order.
    pub index: usize,
    /// The op's text name, e.g. `q.conv2d`.
    pub op: String,
    /// The op's location name (`loc("...")`), if any.
    pub loc: Option<String>,
    /// Multiply-accumulates (0 for ops other than convolutions, linear layers and matmuls).
    pub macs: u64,
    /// Elements of the distinct parameters the op consumes (see the module documentation).
    pub params: u64,
    /// Bytes of the op's results.
    pub output_bytes: u64,
    /// Bytes of all live activations while the op runs (see the module documentation); 0 for
    /// `param` and `const`, which compute nothing.
    pub live_bytes: u64,
}

/// Per-op and total costs of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostReport {
    /// The function's name.
    pub function: String,
    /// One entry per op, in program order.
    pub ops: Vec<OpCost>,
    /// Sum of the MACs of all ops.
    pub total_macs: u64,
    /// Elements of the distinct globals read by `param` ops.
    pub total_params: u64,
    /// Bytes of the distinct globals read by `param` ops (their storage in flash).
    pub param_bytes: u64,
    /// Bytes of the function's arguments.
    pub input_bytes: u64,
    /// The inference peak-memory estimate: the largest sum of live activation bytes.
    pub peak_activation_bytes: u64,
    /// Program-order index of the first op at which the peak is reached (`None`: the function
    /// has no ops).
    pub peak_op: Option<usize>,
}

impl CostReport {
    /// Sum of the MACs of the ops accepted by `keep`.
    pub fn macs_where(&self, keep: impl Fn(&OpCost) -> bool) -> u64 {
        self.ops.iter().filter(|c| keep(c)).map(|c| c.macs).sum()
    }

    /// Sum of the per-op parameter counts of the ops accepted by `keep` (a parameter consumed by
    /// two accepted ops counts twice).
    pub fn params_where(&self, keep: impl Fn(&OpCost) -> bool) -> u64 {
        self.ops.iter().filter(|c| keep(c)).map(|c| c.params).sum()
    }
}

impl fmt::Display for CostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cost of @{}", self.function)?;
        writeln!(
            f,
            "{:>5}  {:<20} {:<28} {:>12} {:>10} {:>10} {:>10}",
            "#", "op", "loc", "MACs", "params", "out bytes", "live bytes"
        )?;
        for c in &self.ops {
            if matches!(c.op.as_str(), "param" | "const") {
                continue;
            }
            writeln!(
                f,
                "{:>5}  {:<20} {:<28} {:>12} {:>10} {:>10} {:>10}",
                c.index,
                c.op,
                c.loc.as_deref().unwrap_or(""),
                c.macs,
                c.params,
                c.output_bytes,
                c.live_bytes
            )?;
        }
        writeln!(f, "total MACs: {}", self.total_macs)?;
        writeln!(
            f,
            "parameters: {} ({} bytes)",
            self.total_params, self.param_bytes
        )?;
        writeln!(f, "input bytes: {}", self.input_bytes)?;
        write!(
            f,
            "peak activation bytes: {}{}",
            self.peak_activation_bytes,
            match self.peak_op {
                Some(i) => format!(" (at op #{i})"),
                None => String::new(),
            }
        )
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The multiply-accumulates of op `data` of `func` (see the module documentation for which ops
/// count). Ops whose operands do not have the expected ranks count 0.
pub fn op_macs(func: &Function, data: &OpData) -> u64 {
    let ty = |i: usize| -> Option<&TensorType> { data.operands.get(i).map(|&v| func.ty(v)) };
    let out = data.results.first().map(|&r| func.ty(r));
    match &data.op {
        Op::Conv2d { groups, .. } | Op::QConv2d { groups, .. } => {
            let (Some(x), Some(w), Some(y)) = (ty(0), ty(1), out) else {
                return 0;
            };
            if x.rank() != 4 || w.rank() != 4 || *groups <= 0 {
                return 0;
            }
            // The weight is [C_out, C_in / groups, k_h, k_w]: each output element reads
            // C_in / groups · k_h · k_w weights.
            let per_output = w.shape[1] * w.shape[2] * w.shape[3];
            to_u64(y.num_elements()).saturating_mul(to_u64(per_output))
        }
        Op::Linear {} | Op::QLinear { .. } => {
            let (Some(x), Some(w)) = (ty(0), ty(1)) else {
                return 0;
            };
            if x.rank() != 2 || w.rank() != 2 {
                return 0;
            }
            to_u64(x.shape[0] * w.shape[0] * w.shape[1])
        }
        Op::MatMul {} => {
            let (Some(a), Some(b)) = (ty(0), ty(1)) else {
                return 0;
            };
            if a.rank() < 2 || b.rank() != a.rank() {
                return 0;
            }
            // a is [.., M, K]: every element of a meets the N columns of b once.
            let n = b.shape[b.rank() - 1];
            to_u64(a.num_elements() * n)
        }
        _ => 0,
    }
}

/// Ops through which a parameter keeps its identity when tracing operands back to `param`.
fn is_pass_through(op: &Op) -> bool {
    matches!(
        op,
        Op::Dequantize {}
            | Op::Quantize {}
            | Op::Requantize {}
            | Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Transpose { .. }
    )
}

/// The `param` op that `v` is read from, directly or through pass-through ops.
fn param_source(func: &Function, mut v: Value) -> Option<OpId> {
    loop {
        let ValueDef::Result(id, _) = func.value(v).def else {
            return None;
        };
        let data = func.op(id);
        match &data.op {
            Op::Param { .. } => return Some(id),
            op if is_pass_through(op) && data.operands.len() == 1 => v = data.operands[0],
            _ => return None,
        }
    }
}

fn is_global_read(op: &Op) -> bool {
    matches!(op, Op::Param { .. } | Op::Const { .. })
}

/// Computes the [`CostReport`] of `func` from its types and attributes.
pub fn function_cost(func: &Function) -> CostReport {
    let layout = func.layout();
    let live = Liveness::compute(func, &Schedule::program_order(func));
    let bytes = |v: Value| to_u64(func.ty(v).size_bytes());
    let input_bytes: u64 = func.args().iter().map(|&a| bytes(a)).sum();

    let mut ops = Vec::with_capacity(layout.len());
    let mut globals_seen: HashSet<&str> = HashSet::new();
    let (mut total_params, mut param_bytes, mut total_macs) = (0u64, 0u64, 0u64);
    for (i, &id) in layout.iter().enumerate() {
        let data = func.op(id);
        let output_bytes: u64 = data.results.iter().map(|&r| bytes(r)).sum();
        let macs = op_macs(func, data);
        total_macs += macs;

        let mut consumed: Vec<OpId> = data
            .operands
            .iter()
            .filter_map(|&v| param_source(func, v))
            .collect();
        consumed.sort_unstable();
        consumed.dedup();
        let params: u64 = consumed
            .iter()
            .map(|&p| to_u64(func.ty(func.op(p).result()).num_elements()))
            .sum();

        if let Op::Param { global } = &data.op {
            if globals_seen.insert(global.0.as_str()) {
                let ty = func.ty(data.result());
                total_params += to_u64(ty.num_elements());
                param_bytes += to_u64(ty.size_bytes());
            }
        }
        let live_bytes = if is_global_read(&data.op) {
            0
        } else {
            live.live_bytes_at(i)
        };
        ops.push(OpCost {
            index: i,
            op: data.op.name().to_string(),
            loc: data.loc.name.clone(),
            macs,
            params,
            output_bytes,
            live_bytes,
        });
    }

    CostReport {
        function: func.name.clone(),
        ops,
        total_macs,
        total_params,
        param_bytes,
        input_bytes,
        peak_activation_bytes: live.lower_bound(),
        peak_op: (!layout.is_empty()).then(|| live.peak_step()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::Builder;
    use crate::module::Module;
    use crate::types::{ElemType, Quant};

    fn conv(groups: i64, stride: i64, pad: i64) -> Op {
        Op::Conv2d {
            strides: vec![stride, stride],
            pads: vec![pad; 4],
            dilations: vec![1, 1],
            groups,
        }
    }

    /// input 1x4x8x8 f32 → conv 3x3 pad 1 (4→6) → depthwise 3x3 stride 2 (6) → relu → add.
    #[test]
    fn conv_macs_params_and_peak_by_hand() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[1, 4, 8, 8]));
        let w1 = b
            .param("w1", TensorType::f32(&[6, 4, 3, 3]), true, None)
            .unwrap();
        let b1 = b.param("b1", TensorType::f32(&[6]), true, None).unwrap();
        let y1 = b.named("conv").op(conv(1, 1, 1), &[x, w1, b1]).unwrap();
        let w2 = b
            .param("w2", TensorType::f32(&[6, 1, 3, 3]), true, None)
            .unwrap();
        let y2 = b.named("dw").op(conv(6, 2, 1), &[y1, w2]).unwrap();
        let y3 = b.op(Op::Relu {}, &[y2]).unwrap();
        let y4 = b.named("add").op(Op::Add {}, &[y3, y2]).unwrap();
        b.ret(&[y4]);
        let r = function_cost(&m.functions[0]);

        let row = |name: &str| {
            r.ops
                .iter()
                .find(|c| c.loc.as_deref() == Some(name))
                .unwrap()
        };
        // conv: 6·8·8 outputs × 4·3·3 = 13 824; params 6·4·9 + 6 = 222.
        assert_eq!(row("conv").macs, 13_824);
        assert_eq!(row("conv").params, 222);
        assert_eq!(row("conv").output_bytes, 6 * 64 * 4);
        // depthwise: 6·4·4 outputs × 1·3·3 = 864; params 54.
        assert_eq!(row("dw").macs, 864);
        assert_eq!(row("dw").params, 54);
        assert_eq!(row("add").macs, 0);
        assert_eq!(r.total_macs, 13_824 + 864);
        assert_eq!(r.total_params, 216 + 6 + 54);
        assert_eq!(r.param_bytes, 4 * (216 + 6 + 54));
        assert_eq!(r.macs_where(|c| c.loc.as_deref() == Some("dw")), 864);
        assert_eq!(r.params_where(|c| c.op == "nn.conv2d"), 276);

        // Activation bytes: x 1024, y1 1536, y2 384, y3 384, y4 384.
        // conv: x + y1 = 2560 (x dies); dw: y1 + y2 = 1920 (y1 dies);
        // relu: y2 + y3 = 768 (y2 is used again: not in place); add: y2 + y3 = 768, y4
        // overwrites y3 in place (both operands die there).
        assert_eq!(r.input_bytes, 1024);
        assert_eq!(row("conv").live_bytes, 2560);
        assert_eq!(row("dw").live_bytes, 1920);
        assert_eq!(row("add").live_bytes, 768);
        assert_eq!(r.peak_activation_bytes, 2560);
        assert_eq!(r.peak_op, Some(2));
    }

    #[test]
    fn linear_matmul_and_quantized_ops() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[2, 5]));
        let xq = b
            .op_quant(Op::Quantize {}, &[x], Quant::per_tensor(0.5, 0))
            .unwrap();
        let w = b
            .param(
                "w",
                TensorType::quantized(&[3, 5], ElemType::I8, Quant::per_channel(0, vec![0.1; 3])),
                true,
                None,
            )
            .unwrap();
        let bias = b
            .param(
                "b",
                TensorType::quantized(&[3], ElemType::I32, Quant::per_channel(0, vec![0.05; 3])),
                true,
                None,
            )
            .unwrap();
        let y = b
            .named("fc")
            .op_quant(
                Op::QLinear {
                    act_min: -128,
                    act_max: 127,
                },
                &[xq, w, bias],
                Quant::per_tensor(0.25, 0),
            )
            .unwrap();
        let yf = b.op(Op::Dequantize {}, &[y]).unwrap();
        // Weight of the matmul is a dequantized parameter: still attributed to it.
        let w2 = b
            .param(
                "w2",
                TensorType::quantized(&[1, 3, 4], ElemType::I8, Quant::per_tensor(0.1, 0)),
                true,
                None,
            )
            .unwrap();
        let w2f = b.op(Op::Dequantize {}, &[w2]).unwrap();
        let y3 = b
            .op(
                Op::Reshape {
                    shape: vec![1, 2, 3],
                },
                &[yf],
            )
            .unwrap();
        let z = b.named("mm").op(Op::MatMul {}, &[y3, w2f]).unwrap();
        b.ret(&[z]);
        let r = function_cost(&m.functions[0]);
        let row = |name: &str| {
            r.ops
                .iter()
                .find(|c| c.loc.as_deref() == Some(name))
                .unwrap()
        };
        assert_eq!(row("fc").macs, 2 * 3 * 5);
        assert_eq!(row("fc").params, 15 + 3);
        assert_eq!(row("fc").output_bytes, 6);
        // [1,2,3] · [1,3,4]: 2·3·4 = 24.
        assert_eq!(row("mm").macs, 24);
        assert_eq!(row("mm").params, 12);
        assert_eq!(r.total_macs, 30 + 24);
        assert_eq!(r.total_params, 15 + 3 + 12);
        assert_eq!(r.param_bytes, 15 + 12 + 12);
    }

    #[test]
    fn outputs_stay_live_and_unused_values_are_freed() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[10]));
        let unused = b.arg("unused", TensorType::f32(&[100]));
        let _ = unused;
        // An unused argument is live at the first op only.
        let a = b.op(Op::Relu {}, &[x]).unwrap(); // x 40 + unused 400 + a 40 = 480
        let _dead = b.op(Op::Relu {}, &[a]).unwrap(); // x + a + dead = 120, dead freed
        let c = b.op(Op::Add {}, &[x, x]).unwrap(); // x + a + c = 120 (x is an argument)
        b.ret(&[a, c]);
        let r = function_cost(&m.functions[0]);
        assert_eq!(r.input_bytes, 440);
        assert_eq!(r.peak_activation_bytes, 480);
        assert_eq!(r.peak_op, Some(0));
        let live: Vec<u64> = r.ops.iter().map(|c| c.live_bytes).collect();
        assert_eq!(live, vec![480, 120, 120]);
    }

    #[test]
    fn shared_parameter_counts_once_in_the_total() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let x = b.arg("x", TensorType::f32(&[1, 4]));
        let w = b.param("w", TensorType::f32(&[4, 4]), true, None).unwrap();
        let y = b.op(Op::Linear {}, &[x, w]).unwrap();
        let z = b.op(Op::Linear {}, &[y, w]).unwrap();
        b.ret(&[z]);
        let r = function_cost(&m.functions[0]);
        assert_eq!(r.total_params, 16);
        assert_eq!(r.params_where(|c| c.op == "nn.linear"), 32);
        assert_eq!(r.total_macs, 32);
        assert!(r.to_string().contains("peak activation bytes: 32"), "{r}");
    }
}
