//! Helpers shared by the interpreter's integration tests.

#![allow(dead_code)]

use mite_interp::exec::{Interpreter, Tensor};
use mite_ir::{Builder, ElemType, Module, Op, Quant, TensorData, TensorType, Value};

/// A small deterministic generator (64-bit LCG, high bits).
pub struct Lcg(u64);

impl Lcg {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1))
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// Uniform in `[lo, hi]`.
    pub fn int(&mut self, lo: i32, hi: i32) -> i32 {
        let span = (hi - lo + 1) as u32;
        lo + (self.next_u32() % span) as i32
    }

    /// `n` uniform `i8` values in `[lo, hi]`.
    pub fn i8s(&mut self, n: usize, lo: i8, hi: i8) -> Vec<i8> {
        (0..n)
            .map(|_| self.int(i32::from(lo), i32::from(hi)) as i8)
            .collect()
    }

    /// `n` uniform `i32` values in `[lo, hi]`.
    pub fn i32s(&mut self, n: usize, lo: i32, hi: i32) -> Vec<i32> {
        (0..n).map(|_| self.int(lo, hi)).collect()
    }

    /// Uniform in `[-1, 1)`.
    pub fn unit(&mut self) -> f32 {
        (f64::from(self.next_u32()) / f64::from(u32::MAX) * 2.0 - 1.0) as f32
    }

    /// `n` values uniform in `[-scale, scale)`.
    pub fn f32s(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.unit() * scale).collect()
    }
}

/// Builds a one-function module `forward(x: ty) -> op(x)` and runs it on `data`.
pub fn run_unary(op: Op, ty: TensorType, data: TensorData) -> Tensor {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", ty.clone());
    let y = b.op(op, &[x]).unwrap();
    b.ret(&[y]);
    run1(&m, vec![Tensor::new(ty, data).unwrap()])
}

/// Runs `forward` of `m` and returns its single output.
pub fn run1(m: &Module, inputs: Vec<Tensor>) -> Tensor {
    let interp = Interpreter::new(m).unwrap();
    let mut out = interp.run("forward", &inputs).unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// `f32` elements of `t`.
pub fn f32s(t: &Tensor) -> &[f32] {
    t.as_f32().expect("an f32 tensor")
}

/// Asserts that `a` and `b` agree to `tol` (absolute, elementwise).
pub fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "lengths differ: {a:?} vs {b:?}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "element {i}: {x} vs {y} (all: {a:?} vs {b:?})"
        );
    }
}

/// An `i8` type quantized per tensor.
pub fn qi8(shape: &[usize], scale: f32, zero_point: i32) -> TensorType {
    TensorType::quantized(shape, ElemType::I8, Quant::per_tensor(scale, zero_point))
}

/// An int8 pointwise / depthwise / full conv layer of a MobileNet-class network: per-channel
/// weights, an `i32` bias, ReLU6 folded into the clamp when `relu6`.
#[allow(clippy::too_many_arguments)]
pub fn qconv(
    b: &mut Builder<'_>,
    rng: &mut Lcg,
    name: &str,
    x: Value,
    c_out: usize,
    kernel: usize,
    stride: usize,
    depthwise: bool,
    relu6: bool,
) -> Value {
    let xt = b.ty(x).clone();
    let c_in = xt.shape[1];
    let s_x = xt.quant.as_ref().unwrap().scale(0);
    let cin_g = if depthwise { 1 } else { c_in };
    let fan_in = (cin_g * kernel * kernel) as f32;
    let w_scales: Vec<f32> = (0..c_out)
        .map(|c| 0.02 / fan_in.sqrt() * (1.0 + 0.01 * c as f32))
        .collect();
    let wt = TensorType::quantized(
        &[c_out, cin_g, kernel, kernel],
        ElemType::I8,
        Quant::per_channel(0, w_scales.clone()),
    );
    let w_data = rng.i8s(wt.num_elements(), -127, 127);
    let w = b
        .param(
            &format!("{name}.weight"),
            wt,
            true,
            Some(TensorData::I8(w_data)),
        )
        .unwrap();
    let bias_scales: Vec<f32> = w_scales.iter().map(|s| s * s_x).collect();
    let bt = TensorType::quantized(&[c_out], ElemType::I32, Quant::per_channel(0, bias_scales));
    let bias = b
        .param(
            &format!("{name}.bias"),
            bt,
            true,
            Some(TensorData::I32(rng.i32s(c_out, -2000, 2000))),
        )
        .unwrap();
    let pad = (kernel / 2) as i64;
    let op = Op::QConv2d {
        strides: vec![stride as i64; 2],
        pads: vec![pad; 4],
        dilations: vec![1, 1],
        groups: if depthwise { c_in as i64 } else { 1 },
        act_min: -128,
        // ReLU6 on an output with scale 0.05 and zero point -128: real [0, 6] is [-128, -8].
        act_max: if relu6 { -8 } else { 127 },
    };
    let zero_point = if relu6 { -128 } else { 0 };
    b.named(name)
        .op_quant(op, &[x, w, bias], Quant::per_tensor(0.05, zero_point))
        .unwrap()
}

/// An int8 MobileNetV2-style network on `[1, 3, res, res]` inputs with `classes` outputs
/// (inverted residual blocks with expansion 6, residual `q.add`s, global average pool, linear
/// classifier). Returns the module; the function is `forward`.
pub fn mobilenet_v2_int8(res: usize, width: f32, classes: usize, seed: u64) -> Module {
    let mut rng = Lcg::new(seed);
    let ch = |c: usize| (((c as f32 * width) / 8.0).round() as usize * 8).max(8);
    let mut m = Module::new("mbv2");
    let mut b = Builder::new(&mut m, "forward");
    let input = b.arg("image", qi8(&[1, 3, res, res], 0.02, 0));
    let mut x = qconv(&mut b, &mut rng, "stem", input, ch(32), 3, 2, false, true);
    let blocks: [(usize, usize, usize, usize); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let mut block = 0;
    for (t, c, n, s) in blocks {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let c_in = b.ty(x).shape[1];
            let c_out = ch(c);
            let name = format!("block{block}");
            let mut h = x;
            if t != 1 {
                h = qconv(
                    &mut b,
                    &mut rng,
                    &format!("{name}.expand"),
                    h,
                    c_in * t,
                    1,
                    1,
                    false,
                    true,
                );
            }
            let hc = b.ty(h).shape[1];
            h = qconv(
                &mut b,
                &mut rng,
                &format!("{name}.dw"),
                h,
                hc,
                3,
                stride,
                true,
                true,
            );
            h = qconv(
                &mut b,
                &mut rng,
                &format!("{name}.project"),
                h,
                c_out,
                1,
                1,
                false,
                false,
            );
            if stride == 1 && c_in == c_out {
                h = b
                    .named(format!("{name}.add"))
                    .op_quant(
                        Op::QAdd {
                            act_min: -128,
                            act_max: 127,
                        },
                        &[x, h],
                        Quant::per_tensor(0.08, -10),
                    )
                    .unwrap();
            }
            x = h;
            block += 1;
        }
    }
    x = qconv(
        &mut b,
        &mut rng,
        "head",
        x,
        ch(1280).max(1280),
        1,
        1,
        false,
        true,
    );
    let pooled = b
        .named("pool")
        .op_quant(Op::QGlobalAvgPool {}, &[x], Quant::per_tensor(0.05, -128))
        .unwrap();
    let flat = b
        .named("flatten")
        .op(Op::Flatten { axis: 1 }, &[pooled])
        .unwrap();
    let k = b.ty(flat).shape[1];
    let wt = TensorType::quantized(&[classes, k], ElemType::I8, Quant::per_tensor(0.001, 0));
    let w = b
        .param(
            "fc.weight",
            wt,
            true,
            Some(TensorData::I8(rng.i8s(classes * k, -127, 127))),
        )
        .unwrap();
    let logits = b
        .named("fc")
        .op_quant(
            Op::QLinear {
                act_min: -128,
                act_max: 127,
            },
            &[flat, w],
            Quant::per_tensor(0.1, 0),
        )
        .unwrap();
    b.ret(&[logits]);
    m
}
