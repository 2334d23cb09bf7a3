//! `optim.sgd` through the interpreter: f32 and quantized parameters, optimizer state,
//! persistence across runs, reading parameters back.

mod common;

use mite_interp::exec::{stochastic_u, write_globals, Buffer, Interpreter, OpFailure, Tensor};
use mite_interp::InterpError;
use mite_ir::{Builder, ElemType, GlobalData, Module, Op, Quant, Symbol, TensorData, TensorType};

/// `optim.sgd` of `param` with default attributes.
fn sgd(param: &str) -> Op {
    Op::Sgd {
        param: Symbol(param.to_string()),
        lr_scale: 1.0,
        momentum: 0.0,
        weight_decay: 0.0,
        qas: false,
        stochastic: false,
        seed: 0,
        accumulate: 1,
        momentum_state: None,
        accum_state: None,
        slice_axis: 0,
        slice_start: 0,
    }
}

fn with(op: Op, f: impl FnOnce(&mut Op)) -> Op {
    let mut op = op;
    f(&mut op);
    op
}

/// A module with parameter `@w` of type `ty` holding `data` and a function
/// `train(g, lr, step)` that applies `op` (an `optim.sgd` of `@w`). Declares the state `op` needs
/// (without data) and names it in the op.
fn train_module(ty: TensorType, data: TensorData, op: Op) -> Module {
    let mut m = Module::new("t");
    let mut op = op;
    let shape = ty.shape.clone();
    assert!(m.add_param("w", ty, true, GlobalData::Inline(data)));
    if let Op::Sgd {
        momentum,
        accumulate,
        momentum_state,
        accum_state,
        ..
    } = &mut op
    {
        if *momentum > 0.0 {
            m.add_state("w.momentum", TensorType::f32(&shape), GlobalData::Absent);
            *momentum_state = Some(Symbol("w.momentum".into()));
        }
        if *accumulate > 1 {
            m.add_state("w.grad_acc", TensorType::f32(&shape), GlobalData::Absent);
            *accum_state = Some(Symbol("w.grad_acc".into()));
        }
    }
    let mut b = Builder::new(&mut m, "train");
    let g = b.arg("g", TensorType::f32(&shape));
    let lr = b.arg("lr", TensorType::f32(&[]));
    let step = b.arg("step", TensorType::new(&[], ElemType::I64));
    b.effect(op, &[g, lr, step]).unwrap();
    b.ret(&[]);
    m
}

fn inputs(g: &[f32], lr: f32, step: i64) -> Vec<Tensor> {
    shaped_inputs(&[g.len()], g, lr, step)
}

/// The inputs of `train` for a gradient of shape `shape`.
fn shaped_inputs(shape: &[usize], g: &[f32], lr: f32, step: i64) -> Vec<Tensor> {
    vec![
        Tensor::f32(shape, g.to_vec()).unwrap(),
        Tensor::f32(&[], vec![lr]).unwrap(),
        Tensor::new(
            TensorType::new(&[], ElemType::I64),
            TensorData::I64(vec![step]),
        )
        .unwrap(),
    ]
}

/// Trains `@w` (f32 `[n]`) with gradients `steps[k]` at step `k`; returns its data.
fn train_f32(w: &[f32], op: Op, lr: f32, steps: &[&[f32]]) -> Vec<f32> {
    let m = train_module(TensorType::f32(&[w.len()]), TensorData::F32(w.to_vec()), op);
    let mut interp = Interpreter::new(&m).unwrap();
    for (k, g) in steps.iter().enumerate() {
        interp.run_mut("train", &inputs(g, lr, k as i64)).unwrap();
    }
    match interp.global_data("w").unwrap() {
        TensorData::F32(v) => v.clone(),
        other => panic!("expected f32, found {}", other.elem()),
    }
}

/// Trains an int8 `@w` of type `ty` once; returns its data.
fn train_int(ty: TensorType, q: TensorData, op: Op, g: &[f32], lr: f32, step: i64) -> TensorData {
    let shape = ty.shape.clone();
    let m = train_module(ty, q, op);
    let mut interp = Interpreter::new(&m).unwrap();
    interp
        .run_mut("train", &shaped_inputs(&shape, g, lr, step))
        .unwrap();
    interp.global_data("w").unwrap().clone()
}

fn qi8(shape: &[usize], quant: Quant) -> TensorType {
    TensorType::quantized(shape, ElemType::I8, quant)
}

#[test]
fn f32_plain_and_lr_scale() {
    let w = train_f32(&[1.0, 2.0], sgd("w"), 0.5, &[&[0.5, -1.0]]);
    assert_eq!(w, vec![0.75, 2.5]);
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { lr_scale, .. } = op {
            *lr_scale = 0.5;
        }
    });
    let w = train_f32(&[1.0, 2.0], op, 0.5, &[&[0.5, -1.0]]);
    assert_eq!(w, vec![0.875, 2.25]);
}

#[test]
fn f32_weight_decay() {
    // g = 0 + 0.5 · w; w − 0.25 · g = w · (1 − 0.125).
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { weight_decay, .. } = op {
            *weight_decay = 0.5;
        }
    });
    let w = train_f32(&[1.0, -2.0], op, 0.25, &[&[0.0, 0.0]]);
    assert_eq!(w, vec![0.875, -1.75]);
}

#[test]
fn f32_momentum_keeps_state_across_runs() {
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { momentum, .. } = op {
            *momentum = 0.5;
        }
    });
    let m = train_module(TensorType::f32(&[1]), TensorData::F32(vec![10.0]), op);
    let mut interp = Interpreter::new(&m).unwrap();
    // m1 = 1, w1 = 10 − 1; m2 = 0.5 + 1 = 1.5, w2 = 9 − 1.5.
    interp.run_mut("train", &inputs(&[1.0], 1.0, 0)).unwrap();
    assert_eq!(interp.global_data("w"), Some(&TensorData::F32(vec![9.0])));
    interp.run_mut("train", &inputs(&[1.0], 1.0, 1)).unwrap();
    assert_eq!(interp.global_data("w"), Some(&TensorData::F32(vec![7.5])));
    assert_eq!(
        interp.global_data("w.momentum"),
        Some(&TensorData::F32(vec![1.5]))
    );
    // Both the parameter and its state are overridden; only the parameter is a parameter.
    let names: Vec<&str> = interp.updated_globals().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, vec!["w", "w.momentum"]);
    let params = interp.updated_params();
    assert_eq!(params, vec![("w", &TensorData::F32(vec![7.5]))]);
}

#[test]
fn momentum_starts_from_declared_state() {
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { momentum, .. } = op {
            *momentum = 0.5;
        }
    });
    let mut m = train_module(TensorType::f32(&[1]), TensorData::F32(vec![10.0]), op);
    m.globals["w.momentum"].data = GlobalData::Inline(TensorData::F32(vec![4.0]));
    let mut interp = Interpreter::new(&m).unwrap();
    // m = 0.5 · 4 + 1 = 3.
    interp.run_mut("train", &inputs(&[1.0], 1.0, 0)).unwrap();
    assert_eq!(interp.global_data("w"), Some(&TensorData::F32(vec![7.0])));
}

#[test]
fn f32_accumulation_applies_the_mean_every_n_steps() {
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { accumulate, .. } = op {
            *accumulate = 2;
        }
    });
    let m = train_module(TensorType::f32(&[1]), TensorData::F32(vec![10.0]), op);
    let mut interp = Interpreter::new(&m).unwrap();
    interp.run_mut("train", &inputs(&[1.0], 1.0, 0)).unwrap();
    // Step 0: accumulated only.
    assert_eq!(interp.global_data("w"), Some(&TensorData::F32(vec![10.0])));
    assert_eq!(
        interp.global_data("w.grad_acc"),
        Some(&TensorData::F32(vec![1.0]))
    );
    // Step 1: (1 + 3) / 2 applied, buffer zeroed.
    interp.run_mut("train", &inputs(&[3.0], 1.0, 1)).unwrap();
    assert_eq!(interp.global_data("w"), Some(&TensorData::F32(vec![8.0])));
    assert_eq!(
        interp.global_data("w.grad_acc"),
        Some(&TensorData::F32(vec![0.0]))
    );
    // Steps 2, 3 again.
    interp.run_mut("train", &inputs(&[2.0], 1.0, 2)).unwrap();
    interp.run_mut("train", &inputs(&[2.0], 1.0, 3)).unwrap();
    assert_eq!(interp.global_data("w"), Some(&TensorData::F32(vec![6.0])));

    // N = 3 with the step counter: applied when (step + 1) % 3 == 0.
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { accumulate, .. } = op {
            *accumulate = 3;
        }
    });
    let w = train_f32(&[0.0], op, 1.0, &[&[3.0], &[3.0], &[6.0], &[30.0]]);
    assert_eq!(w, vec![-4.0]);
}

#[test]
fn int8_without_and_with_qas() {
    // s = 0.5, g = 1, lr = 1: without QAS Δq = −s·g = −0.5, with QAS Δq = −g/s = −2.
    let ty = qi8(&[4], Quant::per_tensor(0.5, 0));
    let q = TensorData::I8(vec![10, 11, -10, -11]);
    let g = [1.0; 4];
    // 9.5 → 10 and 10.5 → 10 (ties to even); −10.5 → −10, −11.5 → −12.
    let plain = train_int(ty.clone(), q.clone(), sgd("w"), &g, 1.0, 0);
    assert_eq!(plain, TensorData::I8(vec![10, 10, -10, -12]));
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { qas, .. } = op {
            *qas = true;
        }
    });
    let qas = train_int(ty, q, op, &g, 1.0, 0);
    assert_eq!(qas, TensorData::I8(vec![8, 9, -12, -13]));
}

#[test]
fn int8_per_channel_scales_along_the_quantization_axis() {
    let qas_op = with(sgd("w"), |op| {
        if let Op::Sgd { qas, .. } = op {
            *qas = true;
        }
    });
    // [2, 2] weights, per output channel (axis 0): rows scale 0.5 and 0.25.
    let ty = qi8(&[2, 2], Quant::per_channel(0, vec![0.5, 0.25]));
    let q = TensorData::I8(vec![3, 4, 3, 4]);
    let g = [1.0; 4];
    // Without QAS: v = 2.5, 3.5, 2.75, 3.75.
    let got = train_int(ty.clone(), q.clone(), sgd("w"), &g, 1.0, 0);
    assert_eq!(got, TensorData::I8(vec![2, 4, 3, 4]));
    // With QAS: Δ = 2, 2, 4, 4.
    let got = train_int(ty, q.clone(), qas_op.clone(), &g, 1.0, 0);
    assert_eq!(got, TensorData::I8(vec![1, 2, -1, 0]));
    // Axis 1: columns scale 0.5 and 0.25.
    let ty = qi8(&[2, 2], Quant::per_channel(1, vec![0.5, 0.25]));
    let got = train_int(ty, q, qas_op, &g, 1.0, 0);
    assert_eq!(got, TensorData::I8(vec![1, 0, 1, 0]));
}

#[test]
fn int8_weight_decay_and_momentum() {
    // s = 0.5, q = 10 (real 5), weight_decay 0.1: g = 0.5 in real units.
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { weight_decay, .. } = op {
            *weight_decay = 0.1;
        }
    });
    let ty = qi8(&[1], Quant::per_tensor(0.5, 0));
    // Without QAS g̃ = 0.25; lr 4: Δ = 1.
    let got = train_int(
        ty.clone(),
        TensorData::I8(vec![10]),
        op.clone(),
        &[0.0],
        4.0,
        0,
    );
    assert_eq!(got, TensorData::I8(vec![9]));
    // The zero point: q = 12, z = 2 is the same real value 5.
    let tz = qi8(&[1], Quant::per_tensor(0.5, 2));
    let got = train_int(tz, TensorData::I8(vec![12]), op, &[0.0], 4.0, 0);
    assert_eq!(got, TensorData::I8(vec![11]));

    // Momentum on the scaled gradient: s = 0.5, QAS, g = 1: g̃ = 2; m1 = 2, m2 = 0.5·2 + 2 = 3.
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { qas, momentum, .. } = op {
            *qas = true;
            *momentum = 0.5;
        }
    });
    let m = train_module(ty, TensorData::I8(vec![10]), op);
    let mut interp = Interpreter::new(&m).unwrap();
    interp.run_mut("train", &inputs(&[1.0], 1.0, 0)).unwrap();
    interp.run_mut("train", &inputs(&[1.0], 1.0, 1)).unwrap();
    assert_eq!(interp.global_data("w"), Some(&TensorData::I8(vec![5])));
    assert_eq!(
        interp.global_data("w.momentum"),
        Some(&TensorData::F32(vec![3.0]))
    );
}

#[test]
fn int32_bias_with_qas_and_saturation() {
    let op = with(sgd("w"), |op| {
        if let Op::Sgd { qas, .. } = op {
            *qas = true;
        }
    });
    // Bias scale s_x · s_w = 1/64 per channel and 1/32; QAS: Δ = lr · g / s.
    let ty = TensorType::quantized(
        &[3],
        ElemType::I32,
        Quant::per_channel(0, vec![1.0 / 64.0, 1.0 / 32.0, 1.0 / 64.0]),
    );
    let q = TensorData::I32(vec![1000, -1000, i32::MAX - 1]);
    // Δ = 0.5 · 2 · 64 = 64, 0.5 · (−3) · 32 = −48, 0.5 · (−1) · 64 = −32 (saturates).
    let got = train_int(ty.clone(), q.clone(), op, &[2.0, -3.0, -1.0], 0.5, 0);
    assert_eq!(got, TensorData::I32(vec![936, -952, i32::MAX]));
    // Without QAS: Δ = 0.5 · 2 / 64 = 1/64 → 999.98 → 1000; 0.5 · (−3) / 32 → −999.95 → −1000;
    // a huge gradient saturates at the bottom.
    let got = train_int(ty, q, sgd("w"), &[2.0, -3.0, 1e12], 0.5, 0);
    assert_eq!(got, TensorData::I32(vec![1000, -1000, i32::MIN]));
}

#[test]
fn int8_saturates() {
    let ty = qi8(&[2], Quant::per_tensor(1.0, 0));
    let got = train_int(
        ty,
        TensorData::I8(vec![120, -120]),
        sgd("w"),
        &[-100.0, 100.0],
        1.0,
        0,
    );
    assert_eq!(got, TensorData::I8(vec![127, -128]));
}

#[test]
fn stochastic_rounding_is_reproducible_and_unbiased() {
    let n = 4096;
    let op = |seed: i64| {
        with(sgd("w"), |op| {
            if let Op::Sgd {
                stochastic,
                seed: s,
                ..
            } = op
            {
                *stochastic = true;
                *s = seed;
            }
        })
    };
    let ty = qi8(&[n], Quant::per_tensor(1.0, 0));
    let q = TensorData::I8(vec![0; n]);
    // v = 0 − 0.3 for every element.
    let g = vec![0.3; n];
    let run = |seed: i64, step: i64| train_int(ty.clone(), q.clone(), op(seed), &g, 1.0, step);
    let a = run(7, 5);
    assert_eq!(a, run(7, 5));
    assert_ne!(a, run(8, 5));
    assert_ne!(a, run(7, 6));
    let TensorData::I8(values) = &a else {
        panic!("expected i8");
    };
    // Exactly ⌊v + u(seed, step, i)⌋.
    for (i, &v) in values.iter().enumerate() {
        let want = (-f64::from(0.3f32) + stochastic_u(7, 5, i as u64)).floor();
        assert_eq!(f64::from(v), want, "element {i}");
    }
    assert!(values.iter().all(|&v| v == 0 || v == -1));
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    assert!((mean + 0.3).abs() < 0.03, "mean {mean}");

    // Unbiased over many steps on one element too.
    let m = train_module(
        qi8(&[1], Quant::per_tensor(1.0, 0)),
        TensorData::I8(vec![0]),
        op(3),
    );
    let mut interp = Interpreter::new(&m).unwrap();
    let mut total = 0.0;
    let steps = 2000;
    for step in 0..steps {
        interp.set_global("w", TensorData::I8(vec![0])).unwrap();
        interp.run_mut("train", &inputs(&[0.7], 1.0, step)).unwrap();
        let Some(TensorData::I8(v)) = interp.global_data("w") else {
            panic!("expected i8");
        };
        total += f64::from(v[0]);
    }
    let mean = total / steps as f64;
    assert!((mean + 0.7).abs() < 0.05, "mean {mean}");
}

#[test]
fn nan_update_of_an_integer_parameter_is_an_error_and_changes_nothing() {
    let m = train_module(
        qi8(&[2], Quant::per_tensor(1.0, 0)),
        TensorData::I8(vec![1, 2]),
        sgd("w"),
    );
    let mut interp = Interpreter::new(&m).unwrap();
    let err = interp
        .run_mut("train", &inputs(&[0.0, f32::NAN], 1.0, 0))
        .unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    assert!(interp.updated_globals().is_empty());
    assert_eq!(interp.global_data("w"), Some(&TensorData::I8(vec![1, 2])));
}

/// A module with `@w : f32[2]` = [1, 2], `train(g, lr, step)` (plain SGD, then returns the value
/// `param @w` reads after the update) and `forward(x) = x · w`.
fn train_and_forward() -> Module {
    let mut m = train_module(
        TensorType::f32(&[2]),
        TensorData::F32(vec![1.0, 2.0]),
        sgd("w"),
    );
    {
        let mut b = Builder::new(&mut m, "train");
        let w = b
            .op(
                Op::Param {
                    global: Symbol("w".into()),
                },
                &[],
            )
            .unwrap();
        b.ret(&[w]);
    }
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[2]));
    let w = b
        .op(
            Op::Param {
                global: Symbol("w".into()),
            },
            &[],
        )
        .unwrap();
    let y = b.op(Op::Mul {}, &[x, w]).unwrap();
    b.ret(&[y]);
    m
}

#[test]
fn updates_persist_across_runs_and_inference_sees_them() {
    let m = train_and_forward();
    let mut interp = Interpreter::new(&m).unwrap();
    let x = Tensor::f32(&[2], vec![1.0, 1.0]).unwrap();
    let before = interp.run("forward", std::slice::from_ref(&x)).unwrap();
    assert_eq!(before[0].as_f32().unwrap(), &[1.0, 2.0]);

    // The read after the update in the same run sees the new value.
    let out = interp
        .run_mut("train", &inputs(&[1.0, 1.0], 0.5, 0))
        .unwrap();
    assert_eq!(out[0].as_f32().unwrap(), &[0.5, 1.5]);
    let out = interp
        .run_mut("train", &inputs(&[1.0, -1.0], 0.5, 1))
        .unwrap();
    assert_eq!(out[0].as_f32().unwrap(), &[0.0, 2.0]);
    let after = interp.run("forward", &[x]).unwrap();
    assert_eq!(after[0].as_f32().unwrap(), &[0.0, 2.0]);
}

#[test]
fn read_only_runs_refuse_updates() {
    let m = train_and_forward();
    let interp = Interpreter::new(&m).unwrap();
    let err = interp
        .run("train", &inputs(&[1.0, 1.0], 0.5, 0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            InterpError::Op {
                failure: OpFailure::ReadOnlyRun(ref param),
                ..
            } if param == "w"
        ),
        "{err}"
    );
    assert!(interp.updated_globals().is_empty());
}

#[test]
fn trained_parameters_are_written_back_into_the_module() {
    let mut m = train_and_forward();
    let updates = {
        let mut interp = Interpreter::new(&m).unwrap();
        interp
            .run_mut("train", &inputs(&[2.0, 2.0], 0.5, 0))
            .unwrap();
        assert_eq!(
            interp.updated_params(),
            vec![("w", &TensorData::F32(vec![0.0, 1.0]))]
        );
        interp.take_overrides()
    };
    write_globals(&mut m, updates).unwrap();
    assert_eq!(
        m.globals["w"].data,
        GlobalData::Inline(TensorData::F32(vec![0.0, 1.0]))
    );
    // A fresh interpreter of the updated module reads the trained weights.
    let interp = Interpreter::new(&m).unwrap();
    let x = Tensor::f32(&[2], vec![3.0, 3.0]).unwrap();
    assert_eq!(
        interp.run("forward", &[x]).unwrap()[0].as_f32().unwrap(),
        &[0.0, 3.0]
    );
    // Data that does not fit is refused, and nothing is written.
    let bad = vec![
        ("w".to_string(), TensorData::F32(vec![5.0, 5.0])),
        ("nope".to_string(), TensorData::F32(vec![1.0])),
    ];
    assert!(write_globals(&mut m, bad).is_err());
    assert_eq!(
        m.globals["w"].data,
        GlobalData::Inline(TensorData::F32(vec![0.0, 1.0]))
    );
}

#[test]
fn training_in_f64_mode() {
    let m = train_module(
        TensorType::f32(&[2]),
        TensorData::F32(vec![1.0, 2.0]),
        sgd("w"),
    );
    let mut interp = Interpreter::new(&m).unwrap();
    interp
        .run_real_mut::<f64>(
            "train",
            &[
                Buffer::Real(vec![0.5, -1.0]),
                Buffer::Real(vec![0.5]),
                Buffer::I64(vec![0]),
            ],
        )
        .unwrap();
    assert_eq!(
        interp.global_data("w"),
        Some(&TensorData::F32(vec![0.75, 2.5]))
    );
}

/// A gradient covering channels 1..3 of axis 1 updates those elements only, momentum included.
#[test]
fn a_channel_slice_updates_only_its_elements() {
    let mut m = Module::new("t");
    let ty = TensorType::f32(&[2, 4]);
    let w0: Vec<f32> = (0..8).map(|i| i as f32).collect();
    assert!(m.add_param(
        "w",
        ty,
        true,
        GlobalData::Inline(TensorData::F32(w0.clone()))
    ));
    m.add_state("w.momentum", TensorType::f32(&[2, 4]), GlobalData::Absent);
    let op = with(sgd("w"), |op| {
        if let Op::Sgd {
            slice_axis,
            slice_start,
            momentum,
            momentum_state,
            ..
        } = op
        {
            *slice_axis = 1;
            *slice_start = 1;
            *momentum = 0.5;
            *momentum_state = Some(mite_ir::Symbol("w.momentum".into()));
        }
    });
    let mut b = Builder::new(&mut m, "train");
    let g = b.arg("g", TensorType::f32(&[2, 2]));
    let lr = b.arg("lr", TensorType::f32(&[]));
    let step = b.arg("step", TensorType::new(&[], ElemType::I64));
    b.effect(op, &[g, lr, step]).unwrap();
    b.ret(&[]);
    mite_ir::verify_module(&m).unwrap();
    let mut interp = Interpreter::new(&m).unwrap();
    let inputs = shaped_inputs(&[2, 2], &[1.0, 2.0, 3.0, 4.0], 1.0, 0);
    interp.run_mut("train", &inputs).unwrap();
    interp.run_mut("train", &inputs).unwrap();
    let updated = interp.take_overrides();
    // m = g, then m = 0.5 m + g = 1.5 g: w = w0 − 2.5 g inside the slice.
    let want = [
        0.0,
        1.0 - 2.5,
        2.0 - 5.0,
        3.0,
        4.0,
        5.0 - 7.5,
        6.0 - 10.0,
        7.0,
    ];
    assert_eq!(updated["w"], TensorData::F32(want.to_vec()));
    let m_want = [0.0, 1.5, 3.0, 0.0, 0.0, 4.5, 6.0, 0.0];
    assert_eq!(updated["w.momentum"], TensorData::F32(m_want.to_vec()));
}

/// A gradient slice outside the parameter is refused by the type rules.
#[test]
fn a_channel_slice_outside_the_parameter_does_not_verify() {
    let mut m = Module::new("t");
    assert!(m.add_param("w", TensorType::f32(&[2, 4]), true, GlobalData::Absent));
    let op = with(sgd("w"), |op| {
        if let Op::Sgd {
            slice_axis,
            slice_start,
            ..
        } = op
        {
            *slice_axis = 1;
            *slice_start = 3;
        }
    });
    let mut b = Builder::new(&mut m, "train");
    let g = b.arg("g", TensorType::f32(&[2, 2]));
    let lr = b.arg("lr", TensorType::f32(&[]));
    let step = b.arg("step", TensorType::new(&[], ElemType::I64));
    let err = b.effect(op, &[g, lr, step]).unwrap_err().to_string();
    assert!(err.contains("channels 3:5 of axis 1"), "{err}");
}
