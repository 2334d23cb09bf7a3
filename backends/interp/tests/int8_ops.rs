//! The quantized (`q.`) ops through the interpreter: hand-computed cases, and graphs of int8
//! convolutions, additions and pools that must agree bit for bit with direct kernel calls.

mod common;

use common::{f32s, qi8, run1, run_unary, Lcg};
use mite_interp::exec::{InterpOptions, Interpreter, Tensor};
use mite_interp::geometry::{Conv2dShape, Window2d};
use mite_interp::quant::{
    self, ActRange, AddInt8, OutputStage, QuantParams, Requantizer, Rounding,
};
use mite_ir::{Builder, ElemType, Module, Op, Quant, TensorData, TensorType};

const ROUNDINGS: [Rounding; 3] = [Rounding::Double, Rounding::Single, Rounding::FloatScale];

fn qp(scale: f32, zero_point: i8) -> QuantParams {
    QuantParams { scale, zero_point }
}

/// Builds `forward(x) = op(x)` with a chosen result quantization and runs it.
fn run_quant_unary(op: Op, ty: TensorType, data: TensorData, out: Quant, r: Rounding) -> Tensor {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", ty.clone());
    let y = b.op_quant(op, &[x], out).unwrap();
    b.ret(&[y]);
    let interp = Interpreter::with_options(&m, InterpOptions::default().with_rounding(r)).unwrap();
    interp
        .run("forward", &[Tensor::new(ty, data).unwrap()])
        .unwrap()
        .remove(0)
}

#[test]
fn quantize_rounds_half_to_even_and_saturates() {
    let y = run_quant_unary(
        Op::Quantize {},
        TensorType::f32(&[5]),
        TensorData::F32(vec![0.25, 0.75, 100., -100., -0.25]),
        Quant::per_tensor(0.5, 1),
        Rounding::Double,
    );
    assert_eq!(y.ty, qi8(&[5], 0.5, 1));
    // 0.5 → 0, 1.5 → 2, saturate, saturate, -0.5 → -0; all plus the zero point 1.
    assert_eq!(y.as_i8().unwrap(), &[1, 3, 127, -128, 1]);
}

#[test]
fn dequantize_per_tensor_per_axis_and_i32() {
    let y = run_unary(
        Op::Dequantize {},
        qi8(&[3], 0.5, -2),
        TensorData::I8(vec![-2, 0, 127]),
    );
    assert_eq!(f32s(&y), &[0., 1., 64.5]);
    let per_axis =
        TensorType::quantized(&[2, 2], ElemType::I8, Quant::per_channel(0, vec![0.5, 2.0]));
    let y = run_unary(
        Op::Dequantize {},
        per_axis,
        TensorData::I8(vec![1, 2, 3, -4]),
    );
    assert_eq!(f32s(&y), &[0.5, 1., 6., -8.]);
    let per_axis_1 = TensorType::quantized(
        &[2, 2],
        ElemType::I8,
        Quant::PerChannel {
            axis: 1,
            scales: vec![0.5, 2.0].into(),
            zero_points: vec![1, 0].into(),
        },
    );
    let y = run_unary(
        Op::Dequantize {},
        per_axis_1,
        TensorData::I8(vec![1, 2, 3, -4]),
    );
    assert_eq!(f32s(&y), &[0., 4., 1., -8.]);
    let i32_ty = TensorType::quantized(&[2], ElemType::I32, Quant::per_tensor(0.25, 4));
    let y = run_unary(Op::Dequantize {}, i32_ty, TensorData::I32(vec![1000, -4]));
    assert_eq!(f32s(&y), &[249., -2.]);
}

#[test]
fn requantize_by_scale_ratio() {
    let y = run_quant_unary(
        Op::Requantize {},
        qi8(&[4], 1.0, 0),
        TensorData::I8(vec![4, -6, 100, 5]),
        Quant::per_tensor(2.0, 3),
        Rounding::Double,
    );
    assert_eq!(y.ty, qi8(&[4], 2.0, 3));
    let v = y.as_i8().unwrap();
    assert_eq!(&v[..3], &[5, 0, 53]);
    // The tie 5 · 0.5 = 2.5 goes through the requantizer's rounding.
    let req = Requantizer::per_tensor(0.5, Rounding::Double).unwrap();
    assert_eq!(i32::from(v[3]), req.apply(5, 0) + 3);
}

#[test]
fn qlinear_hand_computed() {
    // Real x = [1, 2], w = [[1, 1]], y = 3 → 3 / 0.125 + 1 = 25.
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", qi8(&[1, 2], 0.5, 0));
    let w = b
        .param(
            "w",
            qi8(&[1, 2], 0.25, 0),
            false,
            Some(TensorData::I8(vec![4, 4])),
        )
        .unwrap();
    let y = b
        .op_quant(
            Op::QLinear {
                act_min: -128,
                act_max: 127,
            },
            &[x, w],
            Quant::per_tensor(0.125, 1),
        )
        .unwrap();
    b.ret(&[y]);
    let y = run1(
        &m,
        vec![Tensor::new(qi8(&[1, 2], 0.5, 0), TensorData::I8(vec![2, 4])).unwrap()],
    );
    assert_eq!(y.as_i8().unwrap(), &[25]);
}

#[test]
fn qadd_hand_computed_with_clamp() {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let a = b.arg("a", qi8(&[3], 1.0, 0));
    let c = b.arg("c", qi8(&[3], 0.5, 2));
    let y = b
        .op_quant(
            Op::QAdd {
                act_min: -10,
                act_max: 50,
            },
            &[a, c],
            Quant::per_tensor(1.0, 0),
        )
        .unwrap();
    b.ret(&[y]);
    let interp = Interpreter::new(&m).unwrap();
    let out = interp
        .run(
            "forward",
            &[
                Tensor::new(qi8(&[3], 1.0, 0), TensorData::I8(vec![10, 100, -50])).unwrap(),
                Tensor::new(qi8(&[3], 0.5, 2), TensorData::I8(vec![22, 2, 2])).unwrap(),
            ],
        )
        .unwrap();
    // 10 + 10 = 20; 100 clamps to 50; -50 clamps to -10.
    assert_eq!(out[0].as_i8().unwrap(), &[20, 50, -10]);
}

#[test]
fn qavg_pool_rounds_half_away_from_zero() {
    let ty = qi8(&[1, 1, 2, 2], 0.1, 0);
    let op = Op::QAvgPool {
        kernel: vec![2, 2],
        strides: vec![1, 1],
        pads: vec![0; 4],
        act_min: -128,
        act_max: 127,
    };
    let q = Quant::per_tensor(0.1, 0);
    let y = run_quant_unary(
        op.clone(),
        ty.clone(),
        TensorData::I8(vec![1, 2, 3, 4]),
        q.clone(),
        Rounding::Double,
    );
    assert_eq!(y.as_i8().unwrap(), &[3]);
    let y = run_quant_unary(
        op,
        ty,
        TensorData::I8(vec![-1, -2, -3, -4]),
        q,
        Rounding::Double,
    );
    assert_eq!(y.as_i8().unwrap(), &[-3]);
}

#[test]
fn qglobal_avg_pool_same_and_other_quantization() {
    let ty = qi8(&[1, 2, 1, 2], 1.0, 0);
    let data = TensorData::I8(vec![1, 3, -5, -6]);
    let same = run_quant_unary(
        Op::QGlobalAvgPool {},
        ty.clone(),
        data.clone(),
        Quant::per_tensor(1.0, 0),
        Rounding::Double,
    );
    assert_eq!(same.shape(), &[1, 2, 1, 1]);
    assert_eq!(same.as_i8().unwrap(), &[2, -6]);
    let other = run_quant_unary(
        Op::QGlobalAvgPool {},
        ty,
        data.clone(),
        Quant::per_tensor(0.5, 1),
        Rounding::Double,
    );
    let TensorData::I8(x) = &data else {
        unreachable!()
    };
    let want = quant::mean_int8(x, [1, 2, 1, 2], qp(1.0, 0), qp(0.5, 1), Rounding::Double).unwrap();
    assert_eq!(other.as_i8().unwrap(), &want[..]);
    assert_eq!(other.as_i8().unwrap(), &[5, -10]);
}

/// A random int8 convolution graph and the same computation by direct kernel calls.
#[test]
fn qconv2d_agrees_with_the_kernel() {
    let mut rng = Lcg::new(7);
    for (case, &(groups, c_in, c_out, k, stride, pad, dil)) in [
        (1usize, 3usize, 4usize, 3usize, 1usize, 1usize, 1usize),
        (1, 4, 6, 3, 2, 1, 1),
        (8, 8, 8, 3, 2, 1, 1),
        (2, 4, 6, 1, 1, 0, 1),
        (1, 3, 2, 3, 1, 2, 2),
    ]
    .iter()
    .enumerate()
    {
        for rounding in ROUNDINGS {
            let (h, w) = (7, 6);
            let (s_x, z_x) = (0.03f32, -5i8);
            let (s_y, z_y) = (0.07f32, 3i8);
            let w_scales: Vec<f32> = (0..c_out).map(|c| 0.004 + 0.001 * c as f32).collect();
            let x_data = rng.i8s(c_in * h * w, -128, 127);
            let w_data = rng.i8s(c_out * (c_in / groups) * k * k, -127, 127);
            let b_data = rng.i32s(c_out, -500, 500);
            let (act_min, act_max) = (-100i8, 90i8);

            let mut m = Module::new("t");
            let mut b = Builder::new(&mut m, "forward");
            let x = b.arg("x", qi8(&[1, c_in, h, w], s_x, z_x.into()));
            let wt = TensorType::quantized(
                &[c_out, c_in / groups, k, k],
                ElemType::I8,
                Quant::per_channel(0, w_scales.clone()),
            );
            let wv = b
                .param("w", wt, true, Some(TensorData::I8(w_data.clone())))
                .unwrap();
            let bt = TensorType::quantized(
                &[c_out],
                ElemType::I32,
                Quant::per_channel(0, w_scales.iter().map(|s| s * s_x).collect()),
            );
            let bv = b
                .param("b", bt, true, Some(TensorData::I32(b_data.clone())))
                .unwrap();
            let y = b
                .named("conv")
                .op_quant(
                    Op::QConv2d {
                        strides: vec![stride as i64; 2],
                        pads: vec![pad as i64; 4],
                        dilations: vec![dil as i64; 2],
                        groups: groups as i64,
                        act_min: act_min.into(),
                        act_max: act_max.into(),
                    },
                    &[x, wv, bv],
                    Quant::per_tensor(s_y, z_y.into()),
                )
                .unwrap();
            b.ret(&[y]);
            let interp = Interpreter::with_options(&m, InterpOptions { rounding }).unwrap();
            let got = interp
                .run(
                    "forward",
                    &[Tensor::new(
                        qi8(&[1, c_in, h, w], s_x, z_x.into()),
                        TensorData::I8(x_data.clone()),
                    )
                    .unwrap()],
                )
                .unwrap()
                .remove(0);

            let shape = Conv2dShape {
                n: 1,
                c_in,
                in_hw: [h, w],
                c_out,
                groups,
                window: Window2d {
                    kernel: [k, k],
                    strides: [stride; 2],
                    pads: [pad; 4],
                    dilations: [dil; 2],
                },
            };
            let stage = OutputStage {
                requantizer: Requantizer::from_tensor_scales(s_x, &w_scales, s_y, rounding)
                    .unwrap(),
                zero_point: z_y,
                range: ActRange {
                    min: act_min,
                    max: act_max,
                },
            };
            let want = quant::conv2d_int8(
                &shape,
                &x_data,
                z_x,
                &w_data,
                &[0; 0],
                Some(&b_data),
                &stage,
            )
            .unwrap();
            assert_eq!(got.as_i8().unwrap(), &want[..], "case {case}, {rounding:?}");
            let [oh, ow] = shape.out_hw().unwrap();
            assert_eq!(got.shape(), &[1, c_out, oh, ow]);
        }
    }
}

/// conv → residual add → max pool → avg pool → global mean → linear, all int8, against the
/// same chain of kernel calls.
#[test]
fn int8_graph_agrees_with_kernel_chain() {
    for rounding in ROUNDINGS {
        let mut rng = Lcg::new(11);
        let (c, h, w) = (4usize, 8usize, 8usize);
        let (s_x, z_x) = (0.05f32, -3i8);
        let (s_c, z_c) = (0.04f32, -128i8);
        let (s_a, z_a) = (0.06f32, -20i8);
        let (s_g, z_g) = (0.03f32, 5i8);
        let (s_o, z_o) = (0.2f32, 0i8);
        let w_scale = 0.01f32;
        let x_data = rng.i8s(c * h * w, -128, 127);
        let w_data = rng.i8s(c * c * 9, -127, 127);
        let b_data = rng.i32s(c, -300, 300);
        let fc_data = rng.i8s(3 * c, -127, 127);
        let fc_scales = vec![0.01f32, 0.02, 0.03];

        let mut m = Module::new("t");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("x", qi8(&[1, c, h, w], s_x, z_x.into()));
        let wv = b
            .param(
                "w",
                qi8(&[c, c, 3, 3], w_scale, 0),
                true,
                Some(TensorData::I8(w_data.clone())),
            )
            .unwrap();
        let bv = b
            .param(
                "b",
                TensorType::new(&[c], ElemType::I32),
                true,
                Some(TensorData::I32(b_data.clone())),
            )
            .unwrap();
        let conv = b
            .named("conv")
            .op_quant(
                Op::QConv2d {
                    strides: vec![1, 1],
                    pads: vec![1; 4],
                    dilations: vec![1, 1],
                    groups: 1,
                    act_min: -128,
                    act_max: 0,
                },
                &[x, wv, bv],
                Quant::per_tensor(s_c, z_c.into()),
            )
            .unwrap();
        let add = b
            .named("add")
            .op_quant(
                Op::QAdd {
                    act_min: -128,
                    act_max: 127,
                },
                &[conv, x],
                Quant::per_tensor(s_a, z_a.into()),
            )
            .unwrap();
        let maxp = b
            .named("maxpool")
            .op(
                Op::MaxPool {
                    kernel: vec![2, 2],
                    strides: vec![2, 2],
                    pads: vec![0; 4],
                    dilations: vec![1, 1],
                },
                &[add],
            )
            .unwrap();
        let avgp = b
            .named("avgpool")
            .op_quant(
                Op::QAvgPool {
                    kernel: vec![3, 3],
                    strides: vec![1, 1],
                    pads: vec![1; 4],
                    act_min: -128,
                    act_max: 127,
                },
                &[maxp],
                Quant::per_tensor(s_a, z_a.into()),
            )
            .unwrap();
        let gap = b
            .named("gap")
            .op_quant(
                Op::QGlobalAvgPool {},
                &[avgp],
                Quant::per_tensor(s_g, z_g.into()),
            )
            .unwrap();
        let flat = b.op(Op::Flatten { axis: 1 }, &[gap]).unwrap();
        let fc_ty = TensorType::quantized(
            &[3, c],
            ElemType::I8,
            Quant::per_channel(0, fc_scales.clone()),
        );
        let fcw = b
            .param("fc", fc_ty, true, Some(TensorData::I8(fc_data.clone())))
            .unwrap();
        let logits = b
            .named("fc")
            .op_quant(
                Op::QLinear {
                    act_min: -128,
                    act_max: 127,
                },
                &[flat, fcw],
                Quant::per_tensor(s_o, z_o.into()),
            )
            .unwrap();
        let real = b.op(Op::Dequantize {}, &[logits]).unwrap();
        b.ret(&[logits, real]);

        let interp = Interpreter::with_options(&m, InterpOptions { rounding }).unwrap();
        let input = Tensor::new(
            qi8(&[1, c, h, w], s_x, z_x.into()),
            TensorData::I8(x_data.clone()),
        )
        .unwrap();
        let mut trace = Vec::new();
        let out = interp
            .run_with_trace("forward", &[input], |e| {
                trace.push((e.loc_name().map(str::to_string), e.into_tensor()))
            })
            .unwrap();

        // The same computation, kernel by kernel.
        let shape = Conv2dShape {
            n: 1,
            c_in: c,
            in_hw: [h, w],
            c_out: c,
            groups: 1,
            window: Window2d {
                kernel: [3, 3],
                strides: [1, 1],
                pads: [1; 4],
                dilations: [1, 1],
            },
        };
        let stage = OutputStage {
            requantizer: Requantizer::from_tensor_scales(s_x, &[w_scale], s_c, rounding).unwrap(),
            zero_point: z_c,
            range: ActRange { min: -128, max: 0 },
        };
        let conv_k =
            quant::conv2d_int8(&shape, &x_data, z_x, &w_data, &[0], Some(&b_data), &stage).unwrap();
        let add_k = AddInt8::new(
            qp(s_c, z_c),
            qp(s_x, z_x),
            qp(s_a, z_a),
            ActRange::FULL,
            rounding,
        )
        .unwrap()
        .apply(&conv_k, &x_data)
        .unwrap();
        let pool2 = Window2d {
            kernel: [2, 2],
            strides: [2, 2],
            pads: [0; 4],
            dilations: [1, 1],
        };
        let max_k = quant::max_pool_int8(&add_k, [1, c, h, w], &pool2).unwrap();
        let pool3 = Window2d {
            kernel: [3, 3],
            strides: [1, 1],
            pads: [1; 4],
            dilations: [1, 1],
        };
        let avg_k =
            quant::avg_pool_int8(&max_k, [1, c, h / 2, w / 2], &pool3, ActRange::FULL).unwrap();
        let gap_k = quant::mean_int8(
            &avg_k,
            [1, c, h / 2, w / 2],
            qp(s_a, z_a),
            qp(s_g, z_g),
            rounding,
        )
        .unwrap();
        let fc_stage = OutputStage {
            requantizer: Requantizer::from_tensor_scales(s_g, &fc_scales, s_o, rounding).unwrap(),
            zero_point: z_o,
            range: ActRange::FULL,
        };
        let fc_k = quant::fully_connected_int8(
            quant::LinearShape {
                batch: 1,
                in_features: c,
                out_features: 3,
            },
            &gap_k,
            z_g,
            &fc_data,
            &[],
            None,
            &fc_stage,
        )
        .unwrap();

        let traced = |name: &str| -> Vec<i8> {
            let (_, t) = trace
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no trace entry {name}"));
            t.as_i8().unwrap().to_vec()
        };
        assert_eq!(traced("conv"), conv_k, "{rounding:?}");
        assert_eq!(traced("add"), add_k, "{rounding:?}");
        assert_eq!(traced("maxpool"), max_k, "{rounding:?}");
        assert_eq!(traced("avgpool"), avg_k, "{rounding:?}");
        assert_eq!(traced("gap"), gap_k, "{rounding:?}");
        assert_eq!(out[0].as_i8().unwrap(), &fc_k[..], "{rounding:?}");
        assert_eq!(
            out[1].as_f32().unwrap(),
            &quant::dequantize(&fc_k, s_o, z_o).unwrap()[..]
        );
        // Every op is traced once, in program order.
        assert_eq!(trace.len(), m.functions[0].num_ops());
    }
}

#[test]
fn quantize_dequantize_round_trip_is_within_half_a_step() {
    let mut rng = Lcg::new(3);
    let x: Vec<f32> = rng.f32s(64, 2.0);
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let xv = b.arg("x", TensorType::f32(&[64]));
    let q = b
        .op_quant(Op::Quantize {}, &[xv], Quant::per_tensor(0.02, 3))
        .unwrap();
    let d = b.op(Op::Dequantize {}, &[q]).unwrap();
    b.ret(&[d]);
    let y = run1(&m, vec![Tensor::f32(&[64], x.clone()).unwrap()]);
    for (a, b) in x.iter().zip(f32s(&y)) {
        assert!((a - b).abs() <= 0.01 + 1e-6, "{a} vs {b}");
    }
}
