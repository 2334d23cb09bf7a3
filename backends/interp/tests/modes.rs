//! The `f64` mode, tracing and parameter overrides.

mod common;

use common::{f32s, Lcg};
use mite_interp::exec::{Buffer, Interpreter, Tensor};
use mite_ir::{Builder, ElemType, Module, Op, TensorData, TensorType};

/// A small float CNN with a classifier, softmax and a cross-entropy loss.
fn float_cnn(seed: u64) -> Module {
    let mut rng = Lcg::new(seed);
    let mut m = Module::new("cnn");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("image", TensorType::f32(&[1, 3, 8, 8]));
    let labels = b.arg("labels", TensorType::new(&[1], ElemType::I32));
    let mut param = |b: &mut Builder<'_>, name: &str, shape: &[usize], scale: f32| {
        let n = shape.iter().product();
        b.param(
            name,
            TensorType::f32(shape),
            true,
            Some(TensorData::F32(rng.f32s(n, scale))),
        )
        .unwrap()
    };
    let w1 = param(&mut b, "conv1.weight", &[6, 3, 3, 3], 0.5);
    let b1 = param(&mut b, "conv1.bias", &[6], 0.1);
    let h = b
        .named("conv1")
        .op(
            Op::Conv2d {
                strides: vec![1, 1],
                pads: vec![1; 4],
                dilations: vec![1, 1],
                groups: 1,
            },
            &[x, w1, b1],
        )
        .unwrap();
    let h = b.named("relu1").op(Op::Relu {}, &[h]).unwrap();
    let wd = param(&mut b, "dw.weight", &[6, 1, 3, 3], 0.5);
    let h = b
        .named("dw")
        .op(
            Op::Conv2d {
                strides: vec![2, 2],
                pads: vec![1; 4],
                dilations: vec![1, 1],
                groups: 6,
            },
            &[h, wd],
        )
        .unwrap();
    let h = b
        .named("relu6")
        .op(Op::Clip { min: 0., max: 6. }, &[h])
        .unwrap();
    let h = b
        .named("avg")
        .op(
            Op::AvgPool {
                kernel: vec![2, 2],
                strides: vec![1, 1],
                pads: vec![0; 4],
                count_include_pad: false,
            },
            &[h],
        )
        .unwrap();
    let h = b.named("gap").op(Op::GlobalAvgPool {}, &[h]).unwrap();
    let h = b
        .named("flatten")
        .op(Op::Flatten { axis: 1 }, &[h])
        .unwrap();
    let wf = param(&mut b, "fc.weight", &[5, 6], 1.0);
    let bf = param(&mut b, "fc.bias", &[5], 0.1);
    let logits = b.named("fc").op(Op::Linear {}, &[h, wf, bf]).unwrap();
    let probs = b
        .named("softmax")
        .op(Op::Softmax { axis: -1 }, &[logits])
        .unwrap();
    let loss = b
        .named("loss")
        .op(Op::SoftmaxCrossEntropy {}, &[logits, labels])
        .unwrap();
    b.ret(&[probs, loss]);
    m
}

fn cnn_inputs(seed: u64) -> (Vec<f32>, i32) {
    (Lcg::new(seed).f32s(3 * 8 * 8, 1.0), 2)
}

#[test]
fn f64_mode_matches_f32_mode() {
    let m = float_cnn(5);
    let interp = Interpreter::new(&m).unwrap();
    let (image, label) = cnn_inputs(9);
    let out32 = interp
        .run(
            "forward",
            &[
                Tensor::f32(&[1, 3, 8, 8], image.clone()).unwrap(),
                Tensor::new(
                    TensorType::new(&[1], ElemType::I32),
                    TensorData::I32(vec![label]),
                )
                .unwrap(),
            ],
        )
        .unwrap();
    let image64: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
    let out64 = interp
        .run_f64(
            "forward",
            &[Buffer::Real(image64), Buffer::I32(vec![label])],
        )
        .unwrap();
    assert_eq!(out64.len(), 2);
    for (a, b) in out32.iter().zip(&out64) {
        let b = b.as_real().unwrap();
        for (x, y) in f32s(a).iter().zip(b) {
            assert!(
                (f64::from(*x) - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{x} vs {y}"
            );
        }
    }
    // The probabilities sum to one and the loss is positive.
    let probs = out64[0].as_real().unwrap();
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(out64[1].as_real().unwrap()[0] > 0.0);
    // The precision-generic entry point in f32 is `run`.
    let out32b = interp
        .run_real::<f32>(
            "forward",
            &[Buffer::Real(image.clone()), Buffer::I32(vec![label])],
        )
        .unwrap();
    assert_eq!(out32b[0].as_real().unwrap(), f32s(&out32[0]));
}

#[test]
fn f64_mode_really_computes_in_f64() {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1]));
    let tiny = b
        .constant("tiny", TensorType::f32(&[1]), TensorData::F32(vec![1e-8]))
        .unwrap();
    let y = b.op(Op::Add {}, &[x, tiny]).unwrap();
    b.ret(&[y]);
    let interp = Interpreter::new(&m).unwrap();
    let y32 = interp
        .run("forward", &[Tensor::f32(&[1], vec![1.0]).unwrap()])
        .unwrap();
    assert_eq!(f32s(&y32[0]), &[1.0]);
    let y64 = interp
        .run_f64("forward", &[Buffer::Real(vec![1.0])])
        .unwrap();
    let v = y64[0].as_real().unwrap()[0];
    assert!(
        v > 1.0 && (v - 1.0 - f64::from(1e-8f32)).abs() < 1e-15,
        "{v}"
    );
}

#[test]
fn trace_yields_every_value_with_its_location() {
    let m = float_cnn(5);
    let interp = Interpreter::new(&m).unwrap();
    let (image, label) = cnn_inputs(9);
    let inputs = [
        Tensor::f32(&[1, 3, 8, 8], image).unwrap(),
        Tensor::new(
            TensorType::new(&[1], ElemType::I32),
            TensorData::I32(vec![label]),
        )
        .unwrap(),
    ];
    let mut events = Vec::new();
    let out = interp
        .run_with_trace("forward", &inputs, |e| {
            events.push((
                e.index,
                e.op_name().to_string(),
                e.loc_name().map(str::to_string),
                e.into_tensor(),
            ))
        })
        .unwrap();
    let func = &m.functions[0];
    assert_eq!(events.len(), func.num_ops());
    for (i, (index, _, _, t)) in events.iter().enumerate() {
        assert_eq!(*index, i);
        let op = func.op(func.layout()[i]);
        assert_eq!(&t.ty, func.ty(op.result()));
    }
    let names: Vec<&str> = events.iter().filter_map(|e| e.2.as_deref()).collect();
    assert_eq!(
        names,
        ["conv1", "relu1", "dw", "relu6", "avg", "gap", "flatten", "fc", "softmax", "loss"]
    );
    let conv1 = events
        .iter()
        .find(|e| e.2.as_deref() == Some("conv1"))
        .unwrap();
    assert_eq!(conv1.1, "nn.conv2d");
    assert_eq!(conv1.3.shape(), &[1, 6, 8, 8]);
    let (_, _, _, probs) = events
        .iter()
        .find(|e| e.2.as_deref() == Some("softmax"))
        .unwrap();
    assert_eq!(probs, &out[0]);
    // The traced run computes what the plain run computes.
    assert_eq!(interp.run("forward", &inputs).unwrap(), out);

    // Tracing in f64 reports the same ops.
    let mut count = 0;
    let image64 = Buffer::<f64>::from_data(&inputs[0].data);
    interp
        .run_real_with_trace("forward", &[image64, Buffer::I32(vec![label])], |_| {
            count += 1
        })
        .unwrap();
    assert_eq!(count, func.num_ops());
}

#[test]
fn overrides_replace_parameters_between_runs() {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1, 2]));
    let w = b
        .param(
            "w",
            TensorType::f32(&[1, 2]),
            true,
            Some(TensorData::F32(vec![1., 1.])),
        )
        .unwrap();
    let y = b.op(Op::Linear {}, &[x, w]).unwrap();
    b.ret(&[y]);
    let mut interp = Interpreter::new(&m).unwrap();
    let input = [Tensor::f32(&[1, 2], vec![2., 3.]).unwrap()];
    assert_eq!(f32s(&interp.run("forward", &input).unwrap()[0]), &[5.]);
    interp
        .set_global("w", TensorData::F32(vec![10., -1.]))
        .unwrap();
    assert_eq!(
        interp.global_data("w"),
        Some(&TensorData::F32(vec![10., -1.]))
    );
    assert_eq!(f32s(&interp.run("forward", &input).unwrap()[0]), &[17.]);
    let taken = interp.take_overrides();
    assert_eq!(taken.len(), 1);
    assert_eq!(f32s(&interp.run("forward", &input).unwrap()[0]), &[5.]);

    let e = interp
        .set_global("w", TensorData::F32(vec![1.]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "global @w: 1 f32 elements given for tensor<1x2xf32>, which needs 2 f32 elements"
    );
    let e = interp
        .set_global("nope", TensorData::F32(vec![1.]))
        .unwrap_err();
    assert_eq!(e.to_string(), "global @nope: no such global in the module");
}
