//! Every float (`nn.`) op and the layout ops through the interpreter, on small hand-computed
//! cases.

mod common;

use common::{assert_close, f32s, qi8, run1, run_unary};
use mite_interp::exec::Tensor;
use mite_ir::{Builder, ElemType, Module, Op, TensorData, TensorType};

fn f32t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::f32(shape, data.to_vec()).unwrap()
}

/// `forward(x) = op(x, const w [, const bias])`.
fn run_with_consts(op: Op, x: Tensor, consts: &[(&[usize], Vec<f32>)]) -> Tensor {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let xv = b.arg("x", x.ty.clone());
    let mut operands = vec![xv];
    for (i, (shape, data)) in consts.iter().enumerate() {
        let c = b
            .constant(
                &format!("c{i}"),
                TensorType::f32(shape),
                TensorData::F32(data.clone()),
            )
            .unwrap();
        operands.push(c);
    }
    let y = b.op(op, &operands).unwrap();
    b.ret(&[y]);
    run1(&m, vec![x])
}

fn conv(strides: i64, pads: i64, groups: i64) -> Op {
    Op::Conv2d {
        strides: vec![strides; 2],
        pads: vec![pads; 4],
        dilations: vec![1, 1],
        groups,
    }
}

#[test]
fn conv2d_with_bias() {
    let x = f32t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    // The kernel adds the diagonal of each 2×2 window, then the bias 10.
    let y = run_with_consts(
        conv(1, 0, 1),
        x,
        &[(&[1, 1, 2, 2], vec![1., 0., 0., 1.]), (&[1], vec![10.])],
    );
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(f32s(&y), &[16., 18., 22., 24.]);
}

#[test]
fn conv2d_padded_and_depthwise_strided() {
    // A 3×3 box filter over a 2×2 input padded by 1: every window covers the whole input.
    let x = f32t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let y = run_with_consts(conv(1, 1, 1), x, &[(&[1, 1, 3, 3], vec![1.; 9])]);
    assert_eq!(f32s(&y), &[10.; 4]);
    // Depthwise 1×1 with stride 2: channel c scaled by w[c], every other pixel.
    let x = f32t(&[1, 2, 2, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]);
    let y = run_with_consts(conv(2, 0, 2), x, &[(&[2, 1, 1, 1], vec![2., -1.])]);
    assert_eq!(y.shape(), &[1, 2, 1, 1]);
    assert_eq!(f32s(&y), &[2., -5.]);
}

#[test]
fn linear_and_matmul() {
    let y = run_with_consts(
        Op::Linear {},
        f32t(&[1, 2], &[1., 2.]),
        &[(&[2, 2], vec![1., 1., 2., -1.]), (&[2], vec![0.5, 0.])],
    );
    assert_eq!(f32s(&y), &[3.5, 0.]);
    let y = run_with_consts(
        Op::MatMul {},
        f32t(&[2, 2], &[1., 2., 3., 4.]),
        &[(&[2, 1], vec![5., 6.])],
    );
    assert_eq!(y.shape(), &[2, 1]);
    assert_eq!(f32s(&y), &[17., 39.]);
}

#[test]
fn broadcasting_add_and_mul() {
    let y = run_with_consts(
        Op::Add {},
        f32t(&[2, 2], &[1., 2., 3., 4.]),
        &[(&[2], vec![10., 20.])],
    );
    assert_eq!(f32s(&y), &[11., 22., 13., 24.]);
    let y = run_with_consts(
        Op::Mul {},
        f32t(&[2, 1], &[1., 2.]),
        &[(&[1, 3], vec![1., 2., 3.])],
    );
    assert_eq!(y.shape(), &[2, 3]);
    assert_eq!(f32s(&y), &[1., 2., 3., 2., 4., 6.]);
}

#[test]
fn relu_and_clip() {
    let ty = TensorType::f32(&[3]);
    let y = run_unary(Op::Relu {}, ty.clone(), TensorData::F32(vec![-1., 0.5, 3.]));
    assert_eq!(f32s(&y), &[0., 0.5, 3.]);
    let relu6 = Op::Clip { min: 0., max: 6. };
    let y = run_unary(relu6, ty.clone(), TensorData::F32(vec![-1., 3., 7.]));
    assert_eq!(f32s(&y), &[0., 3., 6.]);
    let upper = Op::Clip {
        min: f32::NEG_INFINITY,
        max: 1.,
    };
    let y = run_unary(upper, ty, TensorData::F32(vec![-100., 3., 0.5]));
    assert_eq!(f32s(&y), &[-100., 1., 0.5]);
}

fn pool_input() -> (TensorType, TensorData) {
    (
        TensorType::f32(&[1, 1, 2, 4]),
        TensorData::F32(vec![1., 2., 3., 4., 5., 6., 7., 8.]),
    )
}

#[test]
fn average_pools() {
    let (ty, data) = pool_input();
    let op = Op::AvgPool {
        kernel: vec![2, 2],
        strides: vec![2, 2],
        pads: vec![0; 4],
        count_include_pad: false,
    };
    let y = run_unary(op, ty.clone(), data.clone());
    assert_eq!(y.shape(), &[1, 1, 1, 2]);
    assert_eq!(f32s(&y), &[3.5, 5.5]);
    // Padding top-left by one: the first window holds one real element.
    for (include, first) in [(false, 1.0), (true, 0.25)] {
        let op = Op::AvgPool {
            kernel: vec![2, 2],
            strides: vec![1, 1],
            pads: vec![1, 1, 0, 0],
            count_include_pad: include,
        };
        let y = run_unary(op, ty.clone(), data.clone());
        assert_eq!(y.shape(), &[1, 1, 2, 4]);
        assert_eq!(f32s(&y)[0], first);
    }
    let y = run_unary(Op::GlobalAvgPool {}, ty, data);
    assert_eq!(y.shape(), &[1, 1, 1, 1]);
    assert_eq!(f32s(&y), &[4.5]);
}

#[test]
fn max_pool_f32_and_i8() {
    let (ty, data) = pool_input();
    let op = Op::MaxPool {
        kernel: vec![2, 2],
        strides: vec![2, 2],
        pads: vec![0; 4],
        dilations: vec![1, 1],
    };
    let y = run_unary(op.clone(), ty, data);
    assert_eq!(f32s(&y), &[6., 8.]);
    let ty = qi8(&[1, 1, 2, 4], 0.5, 3);
    let y = run_unary(
        op,
        ty.clone(),
        TensorData::I8(vec![-1, 9, 3, -4, 5, 2, -7, -8]),
    );
    assert_eq!(y.ty, ty.with_shape(&[1, 1, 1, 2]));
    assert_eq!(y.as_i8().unwrap(), &[9, 3]);
}

#[test]
fn concat_on_floats_and_quantized_ints() {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1, 2]));
    let y = b.arg("y", TensorType::f32(&[1, 1]));
    let q = qi8(&[2, 1], 0.1, 0);
    let a = b.arg("a", q.clone());
    let c = b.arg("c", q.clone());
    let xy = b.op(Op::Concat { axis: -1 }, &[x, y, x]).unwrap();
    let ac = b.op(Op::Concat { axis: 0 }, &[a, c]).unwrap();
    b.ret(&[xy, ac]);
    let interp = mite_interp::Interpreter::new(&m).unwrap();
    let out = interp
        .run(
            "forward",
            &[
                f32t(&[1, 2], &[1., 2.]),
                f32t(&[1, 1], &[3.]),
                Tensor::new(q.clone(), TensorData::I8(vec![1, 2])).unwrap(),
                Tensor::new(q.clone(), TensorData::I8(vec![3, 4])).unwrap(),
            ],
        )
        .unwrap();
    assert_eq!(f32s(&out[0]), &[1., 2., 3., 1., 2.]);
    assert_eq!(out[1].ty, q.with_shape(&[4, 1]));
    assert_eq!(out[1].as_i8().unwrap(), &[1, 2, 3, 4]);
}

#[test]
fn reshape_flatten_transpose_on_any_type() {
    let ty = TensorType::new(&[2, 3], ElemType::I32);
    let data = TensorData::I32(vec![0, 1, 2, 3, 4, 5]);
    let y = run_unary(Op::Transpose { perm: vec![1, 0] }, ty.clone(), data.clone());
    assert_eq!(y.shape(), &[3, 2]);
    assert_eq!(y.as_i32().unwrap(), &[0, 3, 1, 4, 2, 5]);
    let y = run_unary(Op::Reshape { shape: vec![3, -1] }, ty, data);
    assert_eq!(y.shape(), &[3, 2]);
    assert_eq!(y.as_i32().unwrap(), &[0, 1, 2, 3, 4, 5]);

    let ty = TensorType::f32(&[1, 2, 1, 2]);
    let y = run_unary(
        Op::Flatten { axis: 1 },
        ty.clone(),
        TensorData::F32(vec![1., 2., 3., 4.]),
    );
    assert_eq!(y.shape(), &[1, 4]);
    assert_eq!(f32s(&y), &[1., 2., 3., 4.]);
    let y = run_unary(
        Op::Transpose {
            perm: vec![0, 3, 1, 2],
        },
        ty,
        TensorData::F32(vec![1., 2., 3., 4.]),
    );
    assert_eq!(y.shape(), &[1, 2, 2, 1]);
    assert_eq!(f32s(&y), &[1., 3., 2., 4.]);

    // Booleans and 64-bit integers move too.
    let y = run_unary(
        Op::Transpose { perm: vec![1, 0] },
        TensorType::new(&[1, 3], ElemType::I1),
        TensorData::I1(vec![true, false, true]),
    );
    assert_eq!(y.data, TensorData::I1(vec![true, false, true]));
    let y = run_unary(
        Op::Flatten { axis: 0 },
        TensorType::new(&[2], ElemType::I64),
        TensorData::I64(vec![7, -7]),
    );
    assert_eq!(y.shape(), &[1, 2]);
    assert_eq!(y.data, TensorData::I64(vec![7, -7]));
}

#[test]
fn reshape_of_a_parameter_and_of_a_reused_value() {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[2, 2]));
    let p = b
        .param(
            "p",
            TensorType::f32(&[4]),
            false,
            Some(TensorData::F32(vec![1., 2., 3., 4.])),
        )
        .unwrap();
    let p2 = b.op(Op::Reshape { shape: vec![2, 2] }, &[p]).unwrap();
    // `x` is reshaped and used again afterwards: the reshape must copy, not move.
    let x4 = b.op(Op::Reshape { shape: vec![4] }, &[x]).unwrap();
    let x22 = b.op(Op::Reshape { shape: vec![2, 2] }, &[x4]).unwrap();
    let s = b.op(Op::Add {}, &[x, p2]).unwrap();
    let t = b.op(Op::Add {}, &[s, x22]).unwrap();
    b.ret(&[t, x4]);
    let interp = mite_interp::Interpreter::new(&m).unwrap();
    let out = interp
        .run("forward", &[f32t(&[2, 2], &[10., 20., 30., 40.])])
        .unwrap();
    assert_eq!(f32s(&out[0]), &[21., 42., 63., 84.]);
    assert_eq!(f32s(&out[1]), &[10., 20., 30., 40.]);
}

#[test]
fn pad_with_value() {
    // pads = [begin axis 0, begin axis 1, end axis 0, end axis 1].
    let y = run_unary(
        Op::Pad {
            pads: vec![0, 1, 1, 1],
            value: 9.,
        },
        TensorType::f32(&[1, 2]),
        TensorData::F32(vec![1., 2.]),
    );
    assert_eq!(y.shape(), &[2, 4]);
    assert_eq!(f32s(&y), &[9., 1., 2., 9., 9., 9., 9., 9.]);
}

#[test]
fn softmax_and_log_softmax() {
    let ln3 = 3f32.ln();
    let ty = TensorType::f32(&[2, 2]);
    let data = TensorData::F32(vec![0., ln3, 5., 5.]);
    let y = run_unary(Op::Softmax { axis: -1 }, ty.clone(), data.clone());
    assert_close(f32s(&y), &[0.25, 0.75, 0.5, 0.5], 1e-6);
    let y = run_unary(Op::LogSoftmax { axis: 1 }, ty.clone(), data.clone());
    assert_close(
        f32s(&y),
        &[0.25f32.ln(), 0.75f32.ln(), 0.5f32.ln(), 0.5f32.ln()],
        1e-6,
    );
    // Along axis 0: columns [0, 5] and [ln 3, 5].
    let y = run_unary(Op::Softmax { axis: 0 }, ty, data);
    let e = (-5f32).exp();
    assert_close(&f32s(&y)[..1], &[e / (1. + e)], 1e-6);
}

#[test]
fn losses() {
    let ln3 = 3f32.ln();
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let logits = b.arg("logits", TensorType::f32(&[2, 2]));
    let labels = b.arg("labels", TensorType::new(&[2], ElemType::I32));
    let target = b.arg("target", TensorType::f32(&[2, 2]));
    let ce = b.op(Op::SoftmaxCrossEntropy {}, &[logits, labels]).unwrap();
    let mse = b.op(Op::MseLoss {}, &[logits, target]).unwrap();
    b.ret(&[ce, mse]);
    let interp = mite_interp::Interpreter::new(&m).unwrap();
    let out = interp
        .run(
            "forward",
            &[
                f32t(&[2, 2], &[0., ln3, 1., 1.]),
                Tensor::new(
                    TensorType::new(&[2], ElemType::I32),
                    TensorData::I32(vec![1, 0]),
                )
                .unwrap(),
                f32t(&[2, 2], &[1., ln3, 3., 1.]),
            ],
        )
        .unwrap();
    assert_eq!(out[0].shape(), &[] as &[usize]);
    // Mean of -ln 0.75 and -ln 0.5.
    assert_close(f32s(&out[0]), &[-(0.75f32.ln() + 0.5f32.ln()) / 2.], 1e-6);
    // Squared errors 1, 0, 4, 0 over 4 elements.
    assert_close(f32s(&out[1]), &[1.25], 1e-6);
}
