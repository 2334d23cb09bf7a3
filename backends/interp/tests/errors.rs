//! Error cases: every error names where it happened and what went wrong.

mod common;

use common::qi8;
use mite_interp::exec::{Buffer, InterpError, Interpreter, OpFailure, Tensor};
use mite_ir::{
    Attr, Builder, CustomOp, ElemType, GlobalData, Module, Op, Quant, TensorData, TensorType,
};

/// `forward(x: [1, 2]) = linear(x, param w)` with `w` declared without data.
fn module_without_weight_data() -> Module {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1, 2]));
    let w = b.param("w", TensorType::f32(&[3, 2]), true, None).unwrap();
    let y = b.named("fc").op(Op::Linear {}, &[x, w]).unwrap();
    b.ret(&[y]);
    m
}

fn input() -> Tensor {
    Tensor::f32(&[1, 2], vec![1., 2.]).unwrap()
}

#[test]
fn missing_parameter_data_names_the_global() {
    let m = module_without_weight_data();
    let interp = Interpreter::new(&m).unwrap();
    let e = interp.run("forward", &[input()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "@forward op #0 `param`: global @w has no data (it was declared without any)"
    );
    assert!(matches!(
        e,
        InterpError::Op { index: 0, failure: OpFailure::AbsentData(ref g), .. } if g == "w"
    ));
}

#[test]
fn elided_parameter_data_names_the_global() {
    let mut m = module_without_weight_data();
    m.globals["w"].data = GlobalData::Elided { digest: 0xabc };
    let interp = Interpreter::new(&m).unwrap();
    let e = interp.run("forward", &[input()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "@forward op #0 `param`: global @w has elided data (digest 0x0000000000000abc); \
         load the module with its data"
    );
    // An override supplies the missing data.
    let mut interp = interp;
    interp
        .set_global("w", TensorData::F32(vec![1., 0., 0., 1., 1., 1.]))
        .unwrap();
    let y = interp.run("forward", &[input()]).unwrap();
    assert_eq!(y[0].as_f32().unwrap(), &[1., 2., 3.]);
}

#[test]
fn wrong_inputs_are_explained() {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1, 4]));
    let q = b.arg("q", qi8(&[2], 0.5, 0));
    let y = b.op(Op::Relu {}, &[x]).unwrap();
    b.ret(&[y, q]);
    let interp = Interpreter::new(&m).unwrap();
    let q_ok = Tensor::new(qi8(&[2], 0.5, 0), TensorData::I8(vec![1, 2])).unwrap();

    let e = interp
        .run(
            "forward",
            &[Tensor::f32(&[1, 5], vec![0.; 5]).unwrap(), q_ok.clone()],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "@forward: input 0 (%x): expected tensor<1x4xf32>, found tensor<1x5xf32>"
    );

    let e = interp
        .run("forward", &[Tensor::f32(&[1, 4], vec![0.; 4]).unwrap()])
        .unwrap_err();
    assert_eq!(e.to_string(), "@forward: expected 2 inputs, found 1");

    // Another quantization is an error; none means "the argument's".
    let other = Tensor::new(qi8(&[2], 0.25, 0), TensorData::I8(vec![1, 2])).unwrap();
    let e = interp
        .run(
            "forward",
            &[Tensor::f32(&[1, 4], vec![0.; 4]).unwrap(), other],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "@forward: input 1 (%q): expected tensor<2xi8, q<0.5, 0>>, found tensor<2xi8, q<0.25, 0>>"
    );
    let raw = Tensor::new(
        TensorType::new(&[2], ElemType::I8),
        TensorData::I8(vec![1, 2]),
    )
    .unwrap();
    let out = interp
        .run(
            "forward",
            &[Tensor::f32(&[1, 4], vec![0.; 4]).unwrap(), raw],
        )
        .unwrap();
    assert_eq!(out[1], q_ok);

    // A tensor built by hand whose data does not fit its type.
    let bad = Tensor {
        ty: TensorType::f32(&[1, 4]),
        data: TensorData::F32(vec![0.; 3]),
    };
    let e = interp.run("forward", &[bad, q_ok.clone()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "@forward: input 0 (%x): 3 f32 elements given for tensor<1x4xf32>, which needs 4 f32 elements"
    );

    // Buffers of the wrong kind in f64 mode.
    let e = interp
        .run_f64(
            "forward",
            &[Buffer::I32(vec![0; 4]), Buffer::I8(vec![1, 2])],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "@forward: input 0 (%x): 4 i32 elements given for tensor<1x4xf32>, which needs 4 f32 elements"
    );

    let e = interp.run("backward", &[]).unwrap_err();
    assert_eq!(e.to_string(), "the module has no function @backward");
}

#[test]
fn custom_ops_are_named() {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[4]));
    let y = b.op(Op::Relu {}, &[x]).unwrap();
    let op = Op::Custom(CustomOp {
        name: "acme.fft".into(),
        attrs: vec![("n".into(), Attr::Int(4))],
    });
    let z = b
        .named("spectrum")
        .op_typed(op, &[y], vec![TensorType::f32(&[4])])
        .unwrap();
    b.ret(&[z[0]]);
    let interp = Interpreter::new(&m).unwrap();
    let e = interp
        .run("forward", &[Tensor::f32(&[4], vec![0.; 4]).unwrap()])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "@forward op #1 `acme.fft` \"spectrum\": custom op `acme.fft` has no kernel in the interpreter"
    );
}

#[test]
fn kernel_errors_carry_the_location() {
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let logits = b.arg("logits", TensorType::f32(&[1, 3]));
    let labels = b.arg("labels", TensorType::new(&[1], ElemType::I32));
    let loss = b
        .named("loss")
        .op(Op::SoftmaxCrossEntropy {}, &[logits, labels])
        .unwrap();
    b.ret(&[loss]);
    let interp = Interpreter::new(&m).unwrap();
    let e = interp
        .run(
            "forward",
            &[
                Tensor::f32(&[1, 3], vec![0.; 3]).unwrap(),
                Tensor::new(
                    TensorType::new(&[1], ElemType::I32),
                    TensorData::I32(vec![3]),
                )
                .unwrap(),
            ],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "@forward op #0 `nn.softmax_cross_entropy` \"loss\": kernel error: \
         softmax_cross_entropy: label 3 of sample 0 is not in 0..3"
    );
}

#[test]
fn unsupported_quantization_choices_are_errors() {
    // q.add whose output scale is too small for TFLite's fixed-point rescaling.
    let mut m = Module::new("t");
    let mut b = Builder::new(&mut m, "forward");
    let a = b.arg("a", qi8(&[2], 1.0, 0));
    let y = b
        .named("residual")
        .op_quant(
            Op::QAdd {
                act_min: -128,
                act_max: 127,
            },
            &[a, a],
            Quant::per_tensor(1e-7, 0),
        )
        .unwrap();
    // q.avg_pool that changes the quantization.
    let x = b.arg("x", qi8(&[1, 1, 2, 2], 1.0, 0));
    let p = b
        .named("pool")
        .op_quant(
            Op::QAvgPool {
                kernel: vec![2, 2],
                strides: vec![1, 1],
                pads: vec![0; 4],
                act_min: -128,
                act_max: 127,
            },
            &[x],
            Quant::per_tensor(0.5, 0),
        )
        .unwrap();
    b.ret(&[p, y]);
    let interp = Interpreter::new(&m).unwrap();
    let inputs = [
        Tensor::new(qi8(&[2], 1.0, 0), TensorData::I8(vec![1, 2])).unwrap(),
        Tensor::new(qi8(&[1, 1, 2, 2], 1.0, 0), TensorData::I8(vec![1, 2, 3, 4])).unwrap(),
    ];
    let e = interp.run("forward", &inputs).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("@forward op #0 `q.add` \"residual\": kernel error: add rescale factor"),
        "{msg}"
    );
    // Without the add, the pool is reached.
    let mut m2 = m.clone();
    let f = &mut m2.functions[0];
    let pool_out = f.outputs()[0];
    f.set_outputs(vec![pool_out]);
    let add = f.layout()[0];
    f.erase_op(add);
    let interp = Interpreter::new(&m2).unwrap();
    let e = interp.run("forward", &inputs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "@forward op #0 `q.avg_pool` \"pool\": unsupported: q.avg_pool must keep its operand's \
         quantization: operand tensor<1x1x2x2xi8, q<1.0, 0>>, result tensor<1x1x1x1xi8, q<0.5, 0>> \
         (requantize before or after pooling)"
    );
}

#[test]
fn unverified_modules_are_rejected_up_front() {
    let mut m = Module::new("t");
    {
        let mut b = Builder::new(&mut m, "forward");
        b.arg("x", TensorType::f32(&[1, 4]));
    }
    let f = &mut m.functions[0];
    let x = f.args()[0];
    let id = f.append_op(
        Op::Relu {},
        &[x],
        vec![TensorType::f32(&[1, 5])],
        mite_ir::Loc::named("r"),
    );
    let r = f.op(id).result();
    f.set_outputs(vec![r]);
    let e = Interpreter::new(&m).unwrap_err();
    assert!(matches!(e, InterpError::Verify(_)));
    assert_eq!(
        e.to_string(),
        "the module does not verify:\nerror: @forward op #0 `nn.relu` \"r\": result type: \
         expected tensor<1x4xf32>, found tensor<1x5xf32>"
    );
}
