//! Round trip of the text format: random well-typed modules built with the `Builder` print, parse
//! and print again to the same text, in the pretty and the generic form, with data elided and in
//! full; printed in full, the data parses back exactly.

use mite_ir::text::{parse_module, print_module, PrintOptions};
use mite_ir::{
    Attr, Builder, CustomOp, ElemType, GlobalData, Module, Op, Quant, Symbol, TensorData,
    TensorType, Value,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// SplitMix64: a small deterministic generator seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// A signed number in `lo..=hi`.
    fn irange(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    /// True with probability `1 / n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len())]
    }

    /// Any f32, with special values often.
    fn f32_any(&mut self) -> f32 {
        match self.below(8) {
            0 => *self.pick(&[
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                -0.0,
                0.0,
                f32::MIN_POSITIVE,
                1e-45,
                f32::MAX,
                f32::MIN,
                0.1,
                1e-8,
            ]),
            1 | 2 => f32::from_bits(self.next() as u32),
            _ => (self.irange(-1000, 1000) as f32) / 64.0,
        }
    }

    /// A positive, finite scale.
    fn scale(&mut self) -> f32 {
        match self.below(3) {
            0 => *self.pick(&[0.0235, 1.0, 1e-8, 0.5, 3.4e38, 1e-45]),
            _ => {
                let x = f32::from_bits(self.next() as u32).abs();
                if x.is_finite() && x > 0.0 {
                    x
                } else {
                    0.125
                }
            }
        }
    }
}

const LOC_NAMES: &[&str] = &[
    "conv",
    "blocks.0/conv",
    "quote \" inside",
    "back\\slash",
    "new\nline",
    "tab\there",
    "ünïcödé ✓",
    "",
    "loc(\"x\")",
    "// not a comment",
    "%0 = @x",
];

const ARG_NAMES: &[&str] = &[
    "input", "x", "x.1", "_y", "my input", "0", "arg0", "arg1", "arg2", "input", "return", "inf",
];

const CUSTOM_NAMES: &[&str] = &[
    "acme.fft",
    "my_dialect.op2",
    "x.y.z",
    "acme.weird name",
    "acme.my-op",
    "loc.x",
    "return.x",
    "tensor.x",
    "acme.\"quoted\"",
];

const ATTR_KEYS: &[&str] = &[
    "n", "mode", "odd key", "alpha", "tensor", "loc", "x-y", "true", "", "a=b",
];

const GLOBAL_NAMES: &[&str] = &["w", "blocks.0.conv", "odd name", "x-y$z", "ünï", "q\"uote"];

fn rand_string(rng: &mut Rng) -> String {
    let mut s = rng.pick(LOC_NAMES).to_string();
    if rng.one_in(3) {
        s.push('\r');
        s.push('\\');
        s.push('"');
    }
    s
}

fn rand_attr(rng: &mut Rng) -> Attr {
    match rng.below(6) {
        0 => Attr::Bool(rng.one_in(2)),
        1 => Attr::Int(match rng.below(4) {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => rng.irange(-300, 300),
        }),
        2 => Attr::F32(rng.f32_any()),
        3 => Attr::Ints((0..rng.below(5)).map(|_| rng.irange(-9, 99)).collect()),
        4 => Attr::Str(rand_string(rng)),
        _ => Attr::Sym(rng.pick(GLOBAL_NAMES).to_string()),
    }
}

fn rand_attrs(rng: &mut Rng) -> Vec<(String, Attr)> {
    let mut attrs: Vec<(String, Attr)> = Vec::new();
    for _ in 0..rng.below(4) {
        let key = rng.pick(ATTR_KEYS).to_string();
        if attrs.iter().all(|(k, _)| *k != key) {
            attrs.push((key, rand_attr(rng)));
        }
    }
    attrs
}

fn rand_quant(rng: &mut Rng, elem: ElemType, shape: &[usize]) -> Option<Quant> {
    if !elem.is_quantizable() || rng.one_in(2) {
        return None;
    }
    let (lo, hi) = if elem == ElemType::I8 {
        (-128, 127)
    } else {
        (i64::from(i32::MIN), i64::from(i32::MAX))
    };
    if shape.is_empty() || rng.one_in(2) {
        return Some(Quant::per_tensor(rng.scale(), rng.irange(lo, hi) as i32));
    }
    let axis = rng.below(shape.len());
    let scales: Vec<f32> = (0..shape[axis]).map(|_| rng.scale()).collect();
    if rng.one_in(2) {
        Some(Quant::per_channel(axis, scales))
    } else {
        let zero_points: Vec<i32> = (0..shape[axis])
            .map(|_| rng.irange(lo, hi) as i32)
            .collect();
        Some(Quant::PerChannel {
            axis,
            scales: scales.into(),
            zero_points: zero_points.into(),
        })
    }
}

fn rand_type(rng: &mut Rng) -> TensorType {
    let rank = rng.below(5);
    let shape: Vec<usize> = (0..rank)
        .map(|_| if rng.one_in(20) { 0 } else { rng.range(1, 4) })
        .collect();
    let elem = *rng.pick(&ElemType::ALL);
    let quant = rand_quant(rng, elem, &shape);
    TensorType {
        shape: shape.as_slice().into(),
        elem,
        quant,
    }
}

fn rand_data(rng: &mut Rng, ty: &TensorType) -> TensorData {
    let n = ty.num_elements();
    match ty.elem {
        ElemType::F32 => TensorData::F32((0..n).map(|_| rng.f32_any()).collect()),
        ElemType::I8 => TensorData::I8((0..n).map(|_| rng.next() as i8).collect()),
        ElemType::I32 => TensorData::I32((0..n).map(|_| rng.next() as i32).collect()),
        ElemType::I64 => TensorData::I64((0..n).map(|_| rng.next() as i64).collect()),
        ElemType::I1 => TensorData::I1((0..n).map(|_| rng.one_in(2)).collect()),
    }
}

/// Builds one function of random ops; each step tries one op and skips it if it does not fit.
struct FuncGen<'r, 'm> {
    rng: &'r mut Rng,
    b: Builder<'m>,
    pool: Vec<Value>,
    globals: &'r mut usize,
}

impl FuncGen<'_, '_> {
    fn global_name(&mut self) -> String {
        *self.globals += 1;
        format!("{}{}", self.rng.pick(GLOBAL_NAMES), self.globals)
    }

    /// A parameter read, with random (small or large, possibly absent) data.
    fn param(&mut self, ty: TensorType) -> Option<Value> {
        let name = self.global_name();
        let data = if self.rng.one_in(4) {
            None
        } else {
            Some(rand_data(self.rng, &ty))
        };
        let trainable = self.rng.one_in(2);
        self.b.param(&name, ty, trainable, data).ok()
    }

    fn constant(&mut self, ty: TensorType) -> Option<Value> {
        let name = self.global_name();
        let data = rand_data(self.rng, &ty);
        self.b.constant(&name, ty, data).ok()
    }

    fn ty(&self, v: Value) -> TensorType {
        self.b.ty(v).clone()
    }

    /// A random value of the pool whose type satisfies `pred`.
    fn pick(&mut self, pred: impl Fn(&TensorType) -> bool) -> Option<Value> {
        let fits: Vec<Value> = self
            .pool
            .iter()
            .copied()
            .filter(|&v| pred(self.b.ty(v)))
            .collect();
        if fits.is_empty() {
            None
        } else {
            Some(fits[self.rng.below(fits.len())])
        }
    }

    fn maybe_name(&mut self) {
        if self.rng.one_in(3) {
            let name = rand_string(self.rng);
            self.b.named(name);
        }
    }

    fn per_tensor_quant(&mut self) -> Quant {
        Quant::per_tensor(self.rng.scale(), self.rng.irange(-128, 127) as i32)
    }

    fn window(&mut self, h: usize, w: usize) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
        let kh = self.rng.range(1, h.min(3));
        let kw = self.rng.range(1, w.min(3));
        let pads = vec![
            self.rng.below(kh) as i64,
            self.rng.below(kw) as i64,
            self.rng.below(kh) as i64,
            self.rng.below(kw) as i64,
        ];
        let strides = vec![self.rng.range(1, 2) as i64, self.rng.range(1, 2) as i64];
        (vec![kh as i64, kw as i64], strides, pads)
    }

    fn f32_4d(t: &TensorType) -> bool {
        t.elem == ElemType::F32 && t.quant.is_none() && t.rank() == 4 && t.num_elements() > 0
    }

    fn i8_4d(t: &TensorType) -> bool {
        t.elem == ElemType::I8
            && t.rank() == 4
            && t.num_elements() > 0
            && matches!(t.quant, Some(Quant::PerTensor { .. }))
    }

    fn plain_f32(t: &TensorType) -> bool {
        t.elem == ElemType::F32 && t.quant.is_none()
    }

    /// Tries one random op; returns its results.
    fn step(&mut self) -> Option<Vec<Value>> {
        self.maybe_name();
        let one = |v: Option<Value>| v.map(|v| vec![v]);
        match self.rng.below(24) {
            0 | 1 => one(self.conv(false)),
            2 => one(self.conv(true)),
            3 => {
                let x = self.pick(|t| Self::plain_f32(t) && t.rank() == 2)?;
                let xt = self.ty(x);
                let m = self.rng.range(1, 5);
                let w = self.param(TensorType::f32(&[m, xt.shape[1]]))?;
                let mut operands = vec![x, w];
                if self.rng.one_in(2) {
                    operands.push(self.param(TensorType::f32(&[m]))?);
                }
                one(self.b.op(Op::Linear {}, &operands).ok())
            }
            4 | 5 => {
                let x = self.pick(Self::plain_f32)?;
                let xt = self.ty(x);
                let y = match self.rng.below(3) {
                    0 => x,
                    1 => self.pick(Self::plain_f32)?,
                    _ => {
                        let keep = self.rng.range(0, xt.rank());
                        let shape: Vec<usize> = xt.shape[xt.rank() - keep..]
                            .iter()
                            .map(|&d| if self.rng.one_in(2) { 1 } else { d })
                            .collect();
                        self.constant(TensorType::f32(&shape))?
                    }
                };
                let (a, b) = if self.rng.one_in(2) { (x, y) } else { (y, x) };
                let op = if self.rng.one_in(2) {
                    Op::Add {}
                } else {
                    Op::Mul {}
                };
                one(self.b.op(op, &[a, b]).ok())
            }
            6 => {
                let x = self.pick(Self::plain_f32)?;
                one(self.b.op(Op::Relu {}, &[x]).ok())
            }
            7 => {
                let x = self.pick(Self::plain_f32)?;
                let (min, max) = *self.rng.pick(&[
                    (f32::NEG_INFINITY, f32::INFINITY),
                    (0.0, 6.0),
                    (-1.5, 1e-8),
                    (-0.0, 0.0),
                    (f32::MIN, f32::MAX),
                ]);
                one(self.b.op(Op::Clip { min, max }, &[x]).ok())
            }
            8 => {
                let quantized = self.rng.one_in(3);
                let x = if quantized {
                    self.pick(Self::i8_4d)?
                } else {
                    self.pick(Self::f32_4d)?
                };
                let xt = self.ty(x);
                let (kernel, strides, pads) = self.window(xt.shape[2], xt.shape[3]);
                let op = match (quantized, self.rng.below(3)) {
                    (false, 0) => Op::AvgPool {
                        kernel,
                        strides,
                        pads,
                        count_include_pad: self.rng.one_in(2),
                    },
                    (true, 0) => {
                        let act_min = self.rng.irange(-128, 0);
                        let op = Op::QAvgPool {
                            kernel,
                            strides,
                            pads,
                            act_min,
                            act_max: self.rng.irange(act_min, 127),
                        };
                        let q = self.per_tensor_quant();
                        return one(self.b.op_quant(op, &[x], q).ok());
                    }
                    _ => Op::MaxPool {
                        kernel,
                        strides,
                        pads,
                        dilations: vec![1, 1],
                    },
                };
                one(self.b.op(op, &[x]).ok())
            }
            9 => {
                if self.rng.one_in(2) {
                    let x = self.pick(Self::f32_4d)?;
                    one(self.b.op(Op::GlobalAvgPool {}, &[x]).ok())
                } else {
                    let x = self.pick(Self::i8_4d)?;
                    let q = self.per_tensor_quant();
                    one(self.b.op_quant(Op::QGlobalAvgPool {}, &[x], q).ok())
                }
            }
            10 => {
                let x = self.pick(|t| {
                    t.rank() >= 1 && !matches!(t.quant, Some(Quant::PerChannel { .. }))
                })?;
                let xt = self.ty(x);
                let axis = self.rng.irange(-(xt.rank() as i64), xt.rank() as i64 - 1);
                let mut operands = vec![x];
                for _ in 0..self.rng.range(0, 2) {
                    let other = self.pick(|t| *t == xt).unwrap_or(x);
                    operands.push(other);
                }
                one(self.b.op(Op::Concat { axis }, &operands).ok())
            }
            11 => {
                let x = self.pick(|t| !matches!(t.quant, Some(Quant::PerChannel { .. })))?;
                let xt = self.ty(x);
                let shape = match self.rng.below(3) {
                    0 => vec![-1],
                    1 => vec![1, -1],
                    _ => xt.shape.iter().rev().map(|&d| d as i64).collect(),
                };
                one(self.b.op(Op::Reshape { shape }, &[x]).ok())
            }
            12 => {
                let x = self.pick(|t| !matches!(t.quant, Some(Quant::PerChannel { .. })))?;
                let r = self.ty(x).rank() as i64;
                let axis = self.rng.irange(-r, r);
                one(self.b.op(Op::Flatten { axis }, &[x]).ok())
            }
            13 => {
                let x = self.pick(|_| true)?;
                let r = self.ty(x).rank();
                let mut perm: Vec<i64> = (0..r as i64).collect();
                for i in (1..r).rev() {
                    let j = self.rng.below(i + 1);
                    perm.swap(i, j);
                }
                one(self.b.op(Op::Transpose { perm }, &[x]).ok())
            }
            14 => {
                let x = self.pick(|t| t.elem == ElemType::F32)?;
                let r = self.ty(x).rank();
                let pads = (0..2 * r).map(|_| self.rng.irange(0, 2)).collect();
                let value = self.rng.f32_any();
                one(self.b.op(Op::Pad { pads, value }, &[x]).ok())
            }
            15 => {
                let x = self.pick(|t| t.elem == ElemType::F32 && t.rank() >= 1)?;
                let r = self.ty(x).rank() as i64;
                let axis = self.rng.irange(-r, r - 1);
                let op = if self.rng.one_in(2) {
                    Op::Softmax { axis }
                } else {
                    Op::LogSoftmax { axis }
                };
                one(self.b.op(op, &[x]).ok())
            }
            16 => {
                let x = self.pick(|t| t.elem == ElemType::F32)?;
                let q = self.per_tensor_quant();
                one(self.b.op_quant(Op::Quantize {}, &[x], q).ok())
            }
            17 => {
                let x = self.pick(|t| t.elem.is_quantizable() && t.quant.is_some())?;
                one(self.b.op(Op::Dequantize {}, &[x]).ok())
            }
            18 => one(self.qconv()),
            19 => {
                let x = self.pick(|t| {
                    t.elem == ElemType::I8 && matches!(t.quant, Some(Quant::PerTensor { .. }))
                })?;
                let xt = self.ty(x);
                let y = self.pick(|t| *t == xt).unwrap_or(x);
                let act_min = self.rng.irange(-128, 127);
                let op = Op::QAdd {
                    act_min,
                    act_max: self.rng.irange(act_min, 127),
                };
                let q = self.per_tensor_quant();
                one(self.b.op_quant(op, &[x, y], q).ok())
            }
            20 => {
                let x = self.pick(|t| Self::plain_f32(t) && t.rank() >= 2)?;
                let xt = self.ty(x);
                let r = xt.rank();
                let mut shape: Vec<usize> = xt.shape[..r - 2].to_vec();
                shape.push(xt.shape[r - 1]);
                shape.push(self.rng.range(1, 3));
                let y = self.constant(TensorType::f32(&shape))?;
                one(self.b.op(Op::MatMul {}, &[x, y]).ok())
            }
            21 => {
                if self.rng.one_in(2) {
                    let x = self.pick(|t| t.elem == ElemType::F32)?;
                    one(self.b.op(Op::MseLoss {}, &[x, x]).ok())
                } else {
                    let x = self.pick(|t| t.elem == ElemType::F32 && t.rank() == 2)?;
                    let n = self.ty(x).shape[0];
                    let labels = self.constant(TensorType::new(&[n], ElemType::I32))?;
                    one(self.b.op(Op::SoftmaxCrossEntropy {}, &[x, labels]).ok())
                }
            }
            22 => {
                // Read an existing global again (possibly declared by another function).
                let globals: Vec<(String, bool)> = self
                    .b
                    .module()
                    .globals
                    .iter()
                    .map(|(n, g)| (n.clone(), g.kind == mite_ir::GlobalKind::Const))
                    .collect();
                if globals.is_empty() || self.rng.one_in(2) {
                    let ty = rand_type(self.rng);
                    return one(if self.rng.one_in(2) {
                        self.param(ty)
                    } else {
                        self.constant(ty)
                    });
                }
                let (name, is_const) = self.rng.pick(&globals).clone();
                let global = Symbol(name);
                let op = if is_const {
                    Op::Const { global }
                } else {
                    Op::Param { global }
                };
                one(self.b.op(op, &[]).ok())
            }
            _ => {
                let name = self.rng.pick(CUSTOM_NAMES).to_string();
                let attrs = rand_attrs(self.rng);
                let operands: Vec<Value> = (0..self.rng.below(4))
                    .filter_map(|_| self.pick(|_| true))
                    .collect();
                let types: Vec<TensorType> = (0..self.rng.below(4))
                    .map(|_| rand_type(self.rng))
                    .collect();
                let op = Op::Custom(CustomOp { name, attrs });
                self.b.op_typed(op, &operands, types).ok()
            }
        }
    }

    /// `nn.conv2d`, plain, grouped or depthwise.
    fn conv(&mut self, depthwise: bool) -> Option<Value> {
        let x = self.pick(Self::f32_4d)?;
        let xt = self.ty(x);
        let (c, h, w) = (xt.shape[1], xt.shape[2], xt.shape[3]);
        let groups = if depthwise {
            c
        } else {
            *self
                .rng
                .pick(&(1..=c).filter(|g| c % g == 0).collect::<Vec<_>>())
        };
        let co = groups * self.rng.range(1, 2);
        let (kernel, strides, pads) = self.window(h, w);
        let dilations = vec![1, if kernel[1] == 1 { 3 } else { 1 }];
        let weight = TensorType::f32(&[co, c / groups, kernel[0] as usize, kernel[1] as usize]);
        let w = self.param(weight)?;
        let mut operands = vec![x, w];
        if self.rng.one_in(2) {
            operands.push(self.param(TensorType::f32(&[co]))?);
        }
        let op = Op::Conv2d {
            strides,
            pads,
            dilations,
            groups: groups as i64,
        };
        self.b.op(op, &operands).ok()
    }

    /// `q.conv2d` with per-channel weights and an i32 bias.
    fn qconv(&mut self) -> Option<Value> {
        let x = self.pick(Self::i8_4d)?;
        let xt = self.ty(x);
        let (c, h, w) = (xt.shape[1], xt.shape[2], xt.shape[3]);
        let groups = if self.rng.one_in(2) { c } else { 1 };
        let co = groups * self.rng.range(1, 2);
        let (kernel, strides, pads) = self.window(h, w);
        let scales = (0..co).map(|_| self.rng.scale()).collect();
        let weight = TensorType::quantized(
            &[co, c / groups, kernel[0] as usize, kernel[1] as usize],
            ElemType::I8,
            Quant::per_channel(0, scales),
        );
        let w = self.param(weight)?;
        let mut operands = vec![x, w];
        if self.rng.one_in(2) {
            operands.push(self.param(TensorType::new(&[co], ElemType::I32))?);
        }
        let act_min = self.rng.irange(-128, 0);
        let op = Op::QConv2d {
            strides,
            pads,
            dilations: vec![1, 1],
            groups: groups as i64,
            act_min,
            act_max: self.rng.irange(act_min, 127),
        };
        let q = self.per_tensor_quant();
        self.b.op_quant(op, &operands, q).ok()
    }
}

fn arg_type(rng: &mut Rng) -> TensorType {
    match rng.below(5) {
        0 | 1 => TensorType::f32(&[1, rng.range(1, 4), rng.range(1, 6), rng.range(1, 6)]),
        2 => TensorType::f32(&[rng.range(1, 3), rng.range(1, 8)]),
        3 => TensorType::quantized(
            &[1, rng.range(1, 4), rng.range(1, 5), rng.range(1, 5)],
            ElemType::I8,
            Quant::per_tensor(rng.scale(), rng.irange(-128, 127) as i32),
        ),
        _ => rand_type(rng),
    }
}

/// A random well-typed module of 1 to 3 functions.
fn gen_module(seed: u64, steps: usize) -> Module {
    let mut rng = Rng(seed);
    let name = *rng.pick(&["net", "odd name", "", "m.1"]);
    let mut m = Module::new(name);
    m.attrs = rand_attrs(&mut rng);
    let mut globals = 0usize;
    let num_funcs = rng.range(1, 3);
    for fi in 0..num_funcs {
        let fname = format!("{}{fi}", rng.pick(&["forward", "train step", "f", "ü"]));
        let mut gen = FuncGen {
            rng: &mut rng,
            b: Builder::new(&mut m, &fname),
            pool: Vec::new(),
            globals: &mut globals,
        };
        for _ in 0..gen.rng.range(1, 3) {
            let name = gen.rng.pick(ARG_NAMES).to_string();
            let ty = arg_type(gen.rng);
            let v = gen.b.arg(&name, ty);
            gen.pool.push(v);
        }
        for _ in 0..steps {
            if let Some(results) = gen.step() {
                gen.pool.extend(results);
            }
        }
        let outputs: Vec<Value> = (0..gen.rng.below(4))
            .filter_map(|_| gen.pick(|_| true))
            .collect();
        gen.b.ret(&outputs);
    }
    m
}

/// Data equality with NaN equal to NaN (the text has one `nan`, so payloads are not kept).
fn same_data(a: &GlobalData, b: &GlobalData) -> bool {
    match (a, b) {
        (GlobalData::Inline(TensorData::F32(x)), GlobalData::Inline(TensorData::F32(y))) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
        }
        _ => a == b,
    }
}

fn check_roundtrip(m: &Module) -> Result<(), TestCaseError> {
    let all_opts = [
        PrintOptions::default(),
        PrintOptions::full(),
        PrintOptions {
            generic: true,
            ..PrintOptions::default()
        },
        PrintOptions {
            generic: true,
            ..PrintOptions::full()
        },
        PrintOptions {
            locations: false,
            ..PrintOptions::default()
        },
    ];
    for opts in all_opts {
        let text = print_module(m, &opts);
        let parsed = parse_module(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- text ---\n{text}")))?;
        let again = print_module(&parsed, &opts);
        prop_assert_eq!(&again, &text, "options {:?}", opts);
        prop_assert_eq!(parsed.globals.len(), m.globals.len());
        for ((name, g), (pname, pg)) in m.globals.iter().zip(&parsed.globals) {
            prop_assert_eq!(name, pname);
            prop_assert_eq!(&g.ty, &pg.ty);
            prop_assert_eq!(g.kind, pg.kind);
            let expected = match (&g.data, opts.elide_above) {
                (GlobalData::Inline(d), Some(limit)) if d.len() > limit => {
                    GlobalData::Elided { digest: d.digest() }
                }
                (data, _) => data.clone(),
            };
            prop_assert!(
                same_data(&expected, &pg.data),
                "data of @{} differs: {:?} vs {:?}",
                name,
                expected,
                pg.data
            );
        }
        for (f, pf) in m.functions.iter().zip(&parsed.functions) {
            prop_assert_eq!(f.num_ops(), pf.num_ops());
            prop_assert_eq!(f.args().len(), pf.args().len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn printed_modules_parse_back_to_the_same_text(seed in any::<u64>(), steps in 0usize..40) {
        let m = gen_module(seed, steps);
        check_roundtrip(&m)?;
    }
}

/// The generator really produces the op set (guards against a generator that silently skips).
#[test]
fn generator_covers_the_op_set() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let m = gen_module(seed, 40);
        for f in &m.functions {
            for &id in f.layout() {
                seen.insert(f.op(id).op.name().to_string());
            }
        }
    }
    for name in [
        "param",
        "const",
        "nn.conv2d",
        "nn.linear",
        "nn.add",
        "nn.mul",
        "nn.relu",
        "nn.clip",
        "nn.avg_pool",
        "nn.max_pool",
        "nn.global_avg_pool",
        "nn.concat",
        "nn.reshape",
        "nn.flatten",
        "nn.transpose",
        "nn.pad",
        "nn.softmax",
        "nn.log_softmax",
        "q.quantize",
        "q.dequantize",
        "q.conv2d",
        "q.add",
        "q.avg_pool",
        "acme.fft",
        "acme.weird name",
    ] {
        assert!(seen.contains(name), "{name} never generated; seen {seen:?}");
    }
}
