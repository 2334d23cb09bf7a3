//! Every backward (`grad.`) op through the interpreter, against direct kernel calls or
//! hand-computed values.

mod common;

use common::{assert_close, f32s, Lcg};
use mite_interp::exec::{Buffer, Interpreter, Tensor};
use mite_interp::geometry::{Conv2dShape, Window2d};
use mite_interp::kernels::{self, LinearShape};
use mite_ir::{Builder, ElemType, Module, Op, Quant, TensorData, TensorType};

fn f32t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::f32(shape, data.to_vec()).unwrap()
}

fn random(rng: &mut Lcg, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(shape, rng.f32s(n, 1.0)).unwrap()
}

/// Builds `forward(inputs...) = op(inputs...)` and runs it.
fn run_op(op: Op, inputs: Vec<Tensor>) -> Tensor {
    let m = module(op, &inputs);
    let interp = Interpreter::new(&m).unwrap();
    let mut out = interp.run("forward", &inputs).unwrap();
    out.remove(0)
}

fn module(op: Op, inputs: &[Tensor]) -> Module {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let args: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| b.arg(&format!("x{i}"), t.ty.clone()))
        .collect();
    let y = b.op(op, &args).unwrap();
    b.ret(&[y]);
    m
}

fn bools(t: &Tensor) -> &[bool] {
    match &t.data {
        TensorData::I1(v) => v,
        other => panic!("expected i1 elements, found {}", other.elem()),
    }
}

fn conv_grad_input(strides: i64, pads: i64, groups: i64, input_shape: &[usize]) -> Op {
    Op::ConvInputGrad {
        strides: vec![strides; 2],
        pads: vec![pads; 4],
        dilations: vec![1, 1],
        groups,
        input_shape: input_shape.iter().map(|&d| d as i64).collect(),
    }
}

fn conv_geometry(
    x: [usize; 4],
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
) -> Conv2dShape {
    Conv2dShape {
        n: x[0],
        c_in: x[1],
        in_hw: [x[2], x[3]],
        c_out,
        groups,
        window: Window2d {
            kernel: [k, k],
            strides: [stride, stride],
            pads: [pad; 4],
            dilations: [1, 1],
        },
    }
}

#[test]
fn conv2d_input_matches_the_kernel() {
    let mut rng = Lcg::new(1);
    // x [2, 4, 5, 5], w [6, 2, 3, 3] (2 groups), stride 2, pad 1 -> dy [2, 6, 3, 3].
    let geo = conv_geometry([2, 4, 5, 5], 6, 3, 2, 1, 2);
    let dy = random(&mut rng, &[2, 6, 3, 3]);
    let w = random(&mut rng, &[6, 2, 3, 3]);
    let want = kernels::conv2d_backward_input(&geo, f32s(&dy), f32s(&w)).unwrap();
    let got = run_op(conv_grad_input(2, 1, 2, &[2, 4, 5, 5]), vec![dy, w]);
    assert_eq!(got.shape(), &[2, 4, 5, 5]);
    assert_eq!(f32s(&got), &want[..]);
}

#[test]
fn conv2d_input_reads_an_int8_weight_at_its_real_value() {
    let mut rng = Lcg::new(2);
    let dy = random(&mut rng, &[1, 3, 4, 4]);
    let wt = TensorType::quantized(
        &[3, 2, 1, 1],
        ElemType::I8,
        Quant::per_channel(0, vec![0.5, 0.25, 0.125]),
    );
    let wq = Tensor::new(wt, TensorData::I8(vec![2, -4, 8, 1, -128, 127])).unwrap();
    let real = wq.to_real();
    assert_eq!(real, vec![1.0, -2.0, 2.0, 0.25, -16.0, 15.875]);
    let geo = conv_geometry([1, 2, 4, 4], 3, 1, 1, 0, 1);
    let want = kernels::conv2d_backward_input(&geo, f32s(&dy), &real).unwrap();
    let got = run_op(conv_grad_input(1, 0, 1, &[1, 2, 4, 4]), vec![dy, wq]);
    assert_eq!(f32s(&got), &want[..]);
}

#[test]
fn conv2d_weight_and_bias() {
    let mut rng = Lcg::new(3);
    let x = random(&mut rng, &[2, 3, 6, 6]);
    let dy = random(&mut rng, &[2, 4, 3, 3]);
    let geo = conv_geometry([2, 3, 6, 6], 4, 3, 2, 1, 1);
    let want = kernels::conv2d_backward_weight(&geo, f32s(&x), f32s(&dy)).unwrap();
    let op = Op::ConvWeightGrad {
        strides: vec![2, 2],
        pads: vec![1; 4],
        dilations: vec![1, 1],
        groups: 1,
        kernel: vec![3, 3],
    };
    let got = run_op(op, vec![x, dy.clone()]);
    assert_eq!(got.shape(), &[4, 3, 3, 3]);
    assert_eq!(f32s(&got), &want[..]);

    let want = kernels::conv2d_backward_bias(&geo, f32s(&dy)).unwrap();
    let got = run_op(Op::ConvBiasGrad {}, vec![dy]);
    assert_eq!(got.shape(), &[4]);
    assert_eq!(f32s(&got), &want[..]);

    // By hand: [N=2, C=2, 1, 2].
    let dy = f32t(&[2, 2, 1, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]);
    let got = run_op(Op::ConvBiasGrad {}, vec![dy]);
    assert_eq!(f32s(&got), &[1. + 2. + 5. + 6., 3. + 4. + 7. + 8.]);
}

#[test]
fn linear_gradients_by_hand() {
    // x [2, 3], w [2, 3], dy [2, 2].
    let x = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let w = f32t(&[2, 3], &[1., 0., -1., 2., 1., 0.]);
    let dy = f32t(&[2, 2], &[1., 2., -1., 0.5]);
    // dx = dy · w
    let dx = run_op(Op::LinearInputGrad {}, vec![dy.clone(), w]);
    assert_eq!(f32s(&dx), &[5., 2., -1., 0., 0.5, 1.]);
    // dw = dyᵀ · x
    let dw = run_op(Op::LinearWeightGrad {}, vec![x, dy.clone()]);
    assert_eq!(f32s(&dw), &[-3., -3., -3., 4., 6.5, 9.]);
    let db = run_op(Op::LinearBiasGrad {}, vec![dy]);
    assert_eq!(f32s(&db), &[0., 2.5]);
}

#[test]
fn linear_input_with_int8_weight_matches_the_kernel() {
    let mut rng = Lcg::new(4);
    let dy = random(&mut rng, &[3, 4]);
    let wt = TensorType::quantized(
        &[4, 5],
        ElemType::I8,
        Quant::per_channel(0, vec![0.1, 0.2, 0.3, 0.4]),
    );
    let wq = Tensor::new(wt, TensorData::I8(rng.i8s(20, -128, 127))).unwrap();
    let shape = LinearShape {
        batch: 3,
        in_features: 5,
        out_features: 4,
    };
    let want = kernels::linear_backward_input(&shape, f32s(&dy), &wq.to_real()).unwrap();
    let got = run_op(Op::LinearInputGrad {}, vec![dy, wq]);
    assert_eq!(got.shape(), &[3, 5]);
    assert_eq!(f32s(&got), &want[..]);

    // A per-tensor weight with a zero point.
    let wt = TensorType::quantized(&[2, 1], ElemType::I8, Quant::per_tensor(0.5, 3));
    let wq = Tensor::new(wt, TensorData::I8(vec![5, 1])).unwrap();
    let got = run_op(Op::LinearInputGrad {}, vec![f32t(&[1, 2], &[1., 1.]), wq]);
    assert_eq!(f32s(&got), &[(5. - 3.) * 0.5 + (1. - 3.) * 0.5]);
}

#[test]
fn matmul_gradients_match_the_kernels() {
    let mut rng = Lcg::new(5);
    let (a_shape, b_shape) = ([2, 3, 4], [2, 4, 5]);
    let a = random(&mut rng, &a_shape);
    let b = random(&mut rng, &b_shape);
    let dy = random(&mut rng, &[2, 3, 5]);
    let want = kernels::matmul_backward_lhs(f32s(&dy), f32s(&b), &a_shape, &b_shape).unwrap();
    let got = run_op(Op::MatMulLhsGrad {}, vec![dy.clone(), b]);
    assert_eq!(got.shape(), &a_shape);
    assert_eq!(f32s(&got), &want[..]);
    let want = kernels::matmul_backward_rhs(f32s(&a), f32s(&dy), &a_shape, &b_shape).unwrap();
    let got = run_op(Op::MatMulRhsGrad {}, vec![a, dy]);
    assert_eq!(got.shape(), &b_shape);
    assert_eq!(f32s(&got), &want[..]);
}

#[test]
fn pooling_gradients() {
    // Average pooling 2×2 stride 2 over [1, 1, 2, 4]: each gradient spread over 4 inputs.
    let dy = f32t(&[1, 1, 1, 2], &[4., 8.]);
    let op = Op::AvgPoolGrad {
        kernel: vec![2, 2],
        strides: vec![2, 2],
        pads: vec![0; 4],
        count_include_pad: false,
        input_shape: vec![1, 1, 2, 4],
    };
    let got = run_op(op, vec![dy]);
    assert_eq!(f32s(&got), &[1., 1., 2., 2., 1., 1., 2., 2.]);

    // Padded average pooling against the kernel, both divisor conventions.
    let mut rng = Lcg::new(6);
    let dy = random(&mut rng, &[1, 2, 3, 3]);
    let window = Window2d {
        kernel: [3, 3],
        strides: [2, 2],
        pads: [1; 4],
        dilations: [1, 1],
    };
    for count_include_pad in [false, true] {
        let want = kernels::avg_pool_backward(f32s(&dy), [1, 2, 5, 5], &window, count_include_pad)
            .unwrap();
        let op = Op::AvgPoolGrad {
            kernel: vec![3, 3],
            strides: vec![2, 2],
            pads: vec![1; 4],
            count_include_pad,
            input_shape: vec![1, 2, 5, 5],
        };
        assert_eq!(f32s(&run_op(op, vec![dy.clone()])), &want[..]);
    }

    let dy = f32t(&[1, 2, 1, 1], &[4., -8.]);
    let op = Op::GlobalAvgPoolGrad {
        input_shape: vec![1, 2, 2, 2],
    };
    let got = run_op(op, vec![dy]);
    assert_eq!(f32s(&got), &[1., 1., 1., 1., -2., -2., -2., -2.]);

    // Max pooling 2×2 stride 2: each gradient goes to its window's (first) maximum.
    let x = f32t(&[1, 1, 2, 4], &[1., 5., 3., 3., 2., 0., 3., 1.]);
    let dy = f32t(&[1, 1, 1, 2], &[10., 20.]);
    let op = Op::MaxPoolGrad {
        kernel: vec![2, 2],
        strides: vec![2, 2],
        pads: vec![0; 4],
        dilations: vec![1, 1],
    };
    let got = run_op(op, vec![x, dy]);
    assert_eq!(f32s(&got), &[0., 10., 20., 0., 0., 0., 0., 0.]);
}

#[test]
fn mask_on_floats_and_int8() {
    let x = f32t(&[5], &[-1., 0., 3., 6., 6.5]);
    let got = run_op(Op::Mask { min: 0.0, max: 6.0 }, vec![x]);
    assert_eq!(got.ty.elem, ElemType::I1);
    assert_eq!(bools(&got), &[false, false, true, false, false]);

    // int8: the integer values (not the real ones) against the bounds.
    let ty = TensorType::quantized(&[5], ElemType::I8, Quant::per_tensor(0.1, -128));
    let x = Tensor::new(ty, TensorData::I8(vec![-128, -127, 0, 126, 127])).unwrap();
    let got = run_op(
        Op::Mask {
            min: -128.0,
            max: 126.5,
        },
        vec![x],
    );
    assert_eq!(bools(&got), &[false, true, true, true, false]);

    // Default bounds: everything but infinities.
    let x = f32t(&[3], &[f32::NEG_INFINITY, 1e30, f32::INFINITY]);
    let op = Op::Mask {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };
    assert_eq!(bools(&run_op(op, vec![x])), &[false, true, false]);
}

#[test]
fn apply_mask_and_reduce_to_shape() {
    let dy = f32t(&[2, 2], &[1., 2., 3., 4.]);
    let mask = Tensor::new(
        TensorType::new(&[2, 2], ElemType::I1),
        TensorData::I1(vec![true, false, false, true]),
    )
    .unwrap();
    let got = run_op(Op::ApplyMask {}, vec![dy, mask]);
    assert_eq!(f32s(&got), &[1., 0., 0., 4.]);

    let dy = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let got = run_op(Op::ReduceToShape { shape: vec![3] }, vec![dy.clone()]);
    assert_eq!(f32s(&got), &[5., 7., 9.]);
    let got = run_op(Op::ReduceToShape { shape: vec![2, 1] }, vec![dy.clone()]);
    assert_eq!(got.shape(), &[2, 1]);
    assert_eq!(f32s(&got), &[6., 15.]);
    let got = run_op(Op::ReduceToShape { shape: vec![2, 3] }, vec![dy]);
    assert_eq!(f32s(&got), &[1., 2., 3., 4., 5., 6.]);
}

#[test]
fn softmax_gradients_match_the_kernels() {
    let mut rng = Lcg::new(7);
    let shape = [2, 3, 4];
    let x = random(&mut rng, &shape);
    let dy = random(&mut rng, &shape);
    for axis in [-1i64, 1] {
        let ax = if axis < 0 { 2 } else { axis as usize };
        let y = kernels::softmax(f32s(&x), &shape, ax).unwrap();
        let want = kernels::softmax_backward(&y, f32s(&dy), &shape, ax).unwrap();
        let got = run_op(Op::SoftmaxGrad { axis }, vec![f32t(&shape, &y), dy.clone()]);
        assert_eq!(f32s(&got), &want[..]);

        let y = kernels::log_softmax(f32s(&x), &shape, ax).unwrap();
        let want = kernels::log_softmax_backward(&y, f32s(&dy), &shape, ax).unwrap();
        let got = run_op(
            Op::LogSoftmaxGrad { axis },
            vec![f32t(&shape, &y), dy.clone()],
        );
        assert_eq!(f32s(&got), &want[..]);
    }
}

#[test]
fn loss_gradients() {
    // Uniform logits: softmax = 1/2; dloss 2, N = 2: 2 · (1/2 − onehot) / 2.
    let logits = f32t(&[2, 2], &[0., 0., 1., 1.]);
    let labels = Tensor::new(
        TensorType::new(&[2], ElemType::I32),
        TensorData::I32(vec![0, 1]),
    )
    .unwrap();
    let dloss = f32t(&[], &[2.0]);
    let got = run_op(
        Op::SoftmaxCrossEntropyGrad {},
        vec![logits, labels, dloss.clone()],
    );
    assert_close(f32s(&got), &[-0.5, 0.5, 0.5, -0.5], 1e-6);

    // dloss · 2 (a − b) / len.
    let a = f32t(&[2, 2], &[1., 2., 3., 4.]);
    let b = f32t(&[2, 2], &[0., 2., 5., 4.]);
    let got = run_op(Op::MseLossGrad {}, vec![a, b, dloss]);
    assert_eq!(f32s(&got), &[1., 0., -2., 0.]);
}

#[test]
fn pad_gradient_crops() {
    // Forward pads: axis 0 [0, 0], axis 1 [1, 2]; dy [2, 5] -> [2, 2].
    let dy = f32t(&[2, 5], &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10.]);
    let got = run_op(
        Op::PadGrad {
            pads: vec![0, 1, 0, 2],
        },
        vec![dy],
    );
    assert_eq!(got.shape(), &[2, 2]);
    assert_eq!(f32s(&got), &[2., 3., 7., 8.]);
}

#[test]
fn slice_any_element_type() {
    let dy = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let op = Op::Slice {
        axis: 1,
        start: 1,
        size: 2,
    };
    let got = run_op(op.clone(), vec![dy]);
    assert_eq!(got.shape(), &[2, 2]);
    assert_eq!(f32s(&got), &[2., 3., 5., 6.]);

    // int8, keeping its quantization.
    let ty = TensorType::quantized(&[2, 3], ElemType::I8, Quant::per_tensor(0.5, 1));
    let x = Tensor::new(ty.clone(), TensorData::I8(vec![1, 2, 3, 4, 5, 6])).unwrap();
    let got = run_op(op, vec![x]);
    assert_eq!(got.ty.quant, ty.quant);
    assert_eq!(got.as_i8().unwrap(), &[2, 3, 5, 6]);

    let x = Tensor::new(
        TensorType::new(&[3, 1], ElemType::I32),
        TensorData::I32(vec![7, 8, 9]),
    )
    .unwrap();
    let op = Op::Slice {
        axis: -2,
        start: 2,
        size: 1,
    };
    assert_eq!(run_op(op, vec![x]).as_i32().unwrap(), &[9]);
}

#[test]
fn gradients_run_in_f64() {
    let mut rng = Lcg::new(8);
    let geo = conv_geometry([1, 2, 4, 4], 3, 3, 1, 1, 1);
    let dy: Vec<f64> = rng.f32s(48, 1.0).into_iter().map(f64::from).collect();
    let w: Vec<f64> = rng.f32s(54, 1.0).into_iter().map(f64::from).collect();
    let want = kernels::conv2d_backward_input(&geo, &dy, &w).unwrap();
    let inputs = [
        Tensor::f32(&[1, 3, 4, 4], vec![0.0; 48]).unwrap(),
        Tensor::f32(&[3, 2, 3, 3], vec![0.0; 54]).unwrap(),
    ];
    let m = module(conv_grad_input(1, 1, 1, &[1, 2, 4, 4]), &inputs);
    let interp = Interpreter::new(&m).unwrap();
    let out = interp
        .run_f64("forward", &[Buffer::Real(dy), Buffer::Real(w)])
        .unwrap();
    assert_eq!(out[0].as_real().unwrap(), &want[..]);
}
