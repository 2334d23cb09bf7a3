//! The IR each VJP rule of the `autodiff` pass emits, on small forward functions built with the
//! `Builder`: one insta snapshot of the whole `@train_step` per rule.

use mite_ir::text::print_function;
use mite_ir::verify::verify_module;
use mite_ir::{Builder, ElemType, Module, Op, PrintOptions, Quant, TensorType, Value};
use mite_passes::passes::{build_training_step, Loss, TrainConfig, TrainStats};

/// Builds `@forward(%x: x_ty)` with `body` (which returns the logits).
fn forward(x_ty: TensorType, body: impl FnOnce(&mut Builder<'_>, Value) -> Value) -> Module {
    let mut m = Module::new("rule");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", x_ty);
    let y = body(&mut b, x);
    b.ret(&[y]);
    verify_module(&m).expect("the forward function verifies");
    m
}

fn param(b: &mut Builder<'_>, name: &str, shape: &[usize], trainable: bool) -> Value {
    b.param(name, TensorType::f32(shape), trainable, None)
        .unwrap()
}

/// Builds the training step with `config`; returns the printed `@train_step` and statistics.
fn train_with(m: &mut Module, config: &TrainConfig) -> (String, TrainStats) {
    let stats = build_training_step(m, config).expect("the training step builds");
    verify_module(m).expect("the training step verifies");
    let f = m.function("train_step").unwrap();
    (print_function(f, &PrintOptions::default()), stats)
}

fn train(m: &mut Module) -> String {
    train_with(m, &TrainConfig::default()).0
}

fn conv(groups: i64, pads: i64) -> Op {
    Op::Conv2d {
        strides: vec![1, 1],
        pads: vec![pads; 4],
        dilations: vec![1, 1],
        groups,
    }
}

fn flatten(b: &mut Builder<'_>, v: Value) -> Value {
    b.op(Op::Flatten { axis: 1 }, &[v]).unwrap()
}

#[test]
fn conv2d_weight_bias_and_input() {
    // conv1 trains (so its output is on the path); conv2 is frozen: input gradient only.
    let mut m = forward(TensorType::f32(&[1, 2, 4, 4]), |b, x| {
        let w1 = param(b, "w1", &[3, 2, 3, 3], true);
        let b1 = param(b, "b1", &[3], true);
        let h = b.named("conv1").op(conv(1, 1), &[x, w1, b1]).unwrap();
        let w2 = param(b, "w2", &[3, 1, 3, 3], false);
        let h = b.named("conv2").op(conv(3, 0), &[h, w2]).unwrap();
        let p = b.op(Op::GlobalAvgPool {}, &[h]).unwrap();
        flatten(b, p)
    });
    insta::assert_snapshot!(train(&mut m));
}

#[test]
fn linear_and_bias_lr_scale() {
    let mut m = forward(TensorType::f32(&[2, 8]), |b, x| {
        let w1 = param(b, "w1", &[6, 8], true);
        let h = b.named("fc1").op(Op::Linear {}, &[x, w1]).unwrap();
        let w2 = param(b, "w2", &[4, 6], true);
        let b2 = param(b, "b2", &[4], true);
        b.named("fc2").op(Op::Linear {}, &[h, w2, b2]).unwrap()
    });
    // Biases get their own rate (the paper's recipe: half of the weights').
    let config = TrainConfig {
        lr_scale_bias: 0.5,
        ..TrainConfig::default()
    };
    insta::assert_snapshot!(train_with(&mut m, &config).0);
}

#[test]
fn matmul_both_operands() {
    let mut m = forward(TensorType::f32(&[1, 4]), |b, x| {
        let shift = param(b, "shift", &[1, 4], true);
        let a = b.named("shift").op(Op::Add {}, &[x, shift]).unwrap();
        let w = param(b, "w", &[4, 3], true);
        b.named("mm").op(Op::MatMul {}, &[a, w]).unwrap()
    });
    insta::assert_snapshot!(train(&mut m));
}

#[test]
fn add_and_mul_reduce_broadcast_operands() {
    let mut m = forward(TensorType::f32(&[2, 3]), |b, x| {
        let scale = param(b, "scale", &[3], true);
        let h = b.named("scale").op(Op::Mul {}, &[x, scale]).unwrap();
        let shift = param(b, "shift", &[1, 1], true);
        b.named("shift").op(Op::Add {}, &[h, shift]).unwrap()
    });
    insta::assert_snapshot!(train(&mut m));
}

#[test]
fn relu_and_clip_save_masks_of_their_inputs() {
    let mut m = forward(TensorType::f32(&[1, 4]), |b, x| {
        let w1 = param(b, "w1", &[5, 4], true);
        let h = b.named("fc1").op(Op::Linear {}, &[x, w1]).unwrap();
        let h = b.named("relu").op(Op::Relu {}, &[h]).unwrap();
        let h = b
            .named("relu6")
            .op(Op::Clip { min: 0.0, max: 6.0 }, &[h])
            .unwrap();
        let w2 = param(b, "w2", &[3, 5], false);
        b.named("fc2").op(Op::Linear {}, &[h, w2]).unwrap()
    });
    let (text, stats) = train_with(&mut m, &TrainConfig::default());
    assert_eq!(stats.masks_saved, 2);
    // Only the input of fc1's weight gradient is kept: fc2 is frozen and the clamps keep masks.
    assert_eq!(stats.activations_saved, 2, "%x and the logits");
    insta::assert_snapshot!(text);
}

#[test]
fn pools() {
    let mut m = forward(TensorType::f32(&[1, 2, 8, 8]), |b, x| {
        let w = param(b, "w", &[2, 2, 1, 1], true);
        let h = b.named("conv").op(conv(1, 0), &[x, w]).unwrap();
        let pool = |kind: &str| -> Op {
            match kind {
                "max" => Op::MaxPool {
                    kernel: vec![2, 2],
                    strides: vec![2, 2],
                    pads: vec![0; 4],
                    dilations: vec![1, 1],
                },
                _ => Op::AvgPool {
                    kernel: vec![3, 3],
                    strides: vec![1, 1],
                    pads: vec![1; 4],
                    count_include_pad: true,
                },
            }
        };
        let h = b.named("max").op(pool("max"), &[h]).unwrap();
        let h = b.named("avg").op(pool("avg"), &[h]).unwrap();
        let h = b.named("gap").op(Op::GlobalAvgPool {}, &[h]).unwrap();
        flatten(b, h)
    });
    insta::assert_snapshot!(train(&mut m));
}

#[test]
fn concat_slices_only_operands_on_the_path() {
    let mut m = forward(TensorType::f32(&[1, 4]), |b, x| {
        let w1 = param(b, "w1", &[2, 4], true);
        let w2 = param(b, "w2", &[3, 4], false);
        let w3 = param(b, "w3", &[1, 4], true);
        let h1 = b.named("fc1").op(Op::Linear {}, &[x, w1]).unwrap();
        let h2 = b.named("fc2").op(Op::Linear {}, &[x, w2]).unwrap();
        let h3 = b.named("fc3").op(Op::Linear {}, &[x, w3]).unwrap();
        b.named("cat")
            .op(Op::Concat { axis: -1 }, &[h1, h2, h3])
            .unwrap()
    });
    insta::assert_snapshot!(train(&mut m));
}

#[test]
fn layout_ops_pad_transpose_reshape() {
    let mut m = forward(TensorType::f32(&[1, 2, 3, 3]), |b, x| {
        let w = param(b, "w", &[2, 1, 1, 1], true);
        let h = b.named("conv").op(conv(2, 0), &[x, w]).unwrap();
        let pads = vec![0, 0, 1, 0, 0, 0, 0, 2];
        let h = b
            .named("pad")
            .op(Op::Pad { pads, value: 0.0 }, &[h])
            .unwrap();
        let perm = vec![0, 2, 3, 1];
        let h = b.named("nhwc").op(Op::Transpose { perm }, &[h]).unwrap();
        b.named("reshape")
            .op(Op::Reshape { shape: vec![1, -1] }, &[h])
            .unwrap()
    });
    insta::assert_snapshot!(train(&mut m));
}

#[test]
fn softmax_and_log_softmax_use_their_outputs() {
    let mut m = forward(TensorType::f32(&[1, 4]), |b, x| {
        let w = param(b, "w", &[4, 4], true);
        let h = b.named("fc").op(Op::Linear {}, &[x, w]).unwrap();
        let h = b
            .named("softmax")
            .op(Op::Softmax { axis: -1 }, &[h])
            .unwrap();
        b.named("log_softmax")
            .op(Op::LogSoftmax { axis: 1 }, &[h])
            .unwrap()
    });
    insta::assert_snapshot!(train(&mut m));
}

#[test]
fn mse_loss_takes_a_target() {
    let mut m = forward(TensorType::f32(&[1, 4]), |b, x| {
        let w = param(b, "w", &[2, 4], true);
        b.named("fc").op(Op::Linear {}, &[x, w]).unwrap()
    });
    let config = TrainConfig {
        loss: Loss::Mse,
        ..TrainConfig::default()
    };
    insta::assert_snapshot!(train_with(&mut m, &config).0);
}

#[test]
fn shared_and_reused_values_sum_their_gradients() {
    // The same parameter read twice, and a value used twice by one op.
    let mut m = forward(TensorType::f32(&[1, 4]), |b, x| {
        let w = param(b, "w", &[4, 4], true);
        let h = b.named("fc1").op(Op::Linear {}, &[x, w]).unwrap();
        let h = b.named("double").op(Op::Add {}, &[h, h]).unwrap();
        let again = b
            .op(
                Op::Param {
                    global: mite_ir::Symbol("w".into()),
                },
                &[],
            )
            .unwrap();
        b.named("fc2").op(Op::Linear {}, &[h, again]).unwrap()
    });
    let text = train(&mut m);
    assert_eq!(text.matches("optim.sgd").count(), 1);
    insta::assert_snapshot!(text);
}

/// An int8 chain with every int8 op that is not a convolution: `q.quantize`,
/// `q.requantize`, `nn.max_pool` on int8, `q.avg_pool`, `q.add`, `q.global_avg_pool`,
/// `q.dequantize`; a trainable f32 shift before the quantization puts it all on the path.
#[test]
fn int8_elementwise_pool_and_quantization_ops() {
    let q = |s: f32, z: i32| Quant::per_tensor(s, z);
    let mut m = forward(TensorType::f32(&[1, 2, 4, 4]), |b, x| {
        let shift = param(b, "shift", &[1, 2, 1, 1], true);
        let h = b.named("shift").op(Op::Add {}, &[x, shift]).unwrap();
        let h = b
            .named("quantize")
            .op_quant(Op::Quantize {}, &[h], q(0.05, 0))
            .unwrap();
        let h = b
            .named("requantize")
            .op_quant(Op::Requantize {}, &[h], q(0.1, -10))
            .unwrap();
        let h2 = b
            .named("max")
            .op(
                Op::MaxPool {
                    kernel: vec![1, 1],
                    strides: vec![1, 1],
                    pads: vec![0; 4],
                    dilations: vec![1, 1],
                },
                &[h],
            )
            .unwrap();
        let h = b
            .named("avg")
            .op_quant(
                Op::QAvgPool {
                    kernel: vec![3, 3],
                    strides: vec![1, 1],
                    pads: vec![1; 4],
                    act_min: -128,
                    act_max: 127,
                },
                &[h2],
                q(0.1, -10),
            )
            .unwrap();
        let h = b
            .named("residual")
            .op_quant(
                Op::QAdd {
                    act_min: -10,
                    act_max: 127,
                },
                &[h, h2],
                q(0.2, -10),
            )
            .unwrap();
        let h = b
            .named("gap")
            .op_quant(Op::QGlobalAvgPool {}, &[h], q(0.2, -10))
            .unwrap();
        let h = b.named("dequantize").op(Op::Dequantize {}, &[h]).unwrap();
        flatten(b, h)
    });
    let (text, stats) = train_with(&mut m, &TrainConfig::default());
    assert_eq!(stats.masks_saved, 4, "quantize, requantize, avg, residual");
    insta::assert_snapshot!(text);
}

#[test]
fn int8_linear_uses_the_int8_weight_and_dequantizes_its_input() {
    let mut m = mite_zoo::tiny_int8_mlp();
    let (text, stats) = train_with(&mut m, &TrainConfig::default());
    assert_eq!(stats.updated_params.len(), 4);
    assert!(text.contains("grad.linear_input"));
    insta::assert_snapshot!(text);
}

#[test]
fn quantized_weights_read_through_dequantize_get_real_gradients() {
    // QDQ form: a float conv over dequantized int8 parameters.
    let mut m = forward(TensorType::f32(&[1, 2, 3, 3]), |b, x| {
        let wq = TensorType::quantized(
            &[2, 2, 1, 1],
            ElemType::I8,
            Quant::per_channel(0, vec![0.1, 0.2]),
        );
        let w = b.param("w", wq, true, None).unwrap();
        let bq =
            TensorType::quantized(&[2], ElemType::I32, Quant::per_channel(0, vec![0.01, 0.02]));
        let bias = b.param("b", bq, true, None).unwrap();
        let w = b.op(Op::Dequantize {}, &[w]).unwrap();
        let bias = b.op(Op::Dequantize {}, &[bias]).unwrap();
        let h = b.named("conv").op(conv(1, 0), &[x, w, bias]).unwrap();
        let h = b.op(Op::GlobalAvgPool {}, &[h]).unwrap();
        flatten(b, h)
    });
    // Biases get their own rate: with `lr_scale_bias = 0.5` this one must get it.
    let config = TrainConfig {
        lr_scale_bias: 0.5,
        ..TrainConfig::default()
    };
    let text = train_with(&mut m, &config).0;
    assert!(
        text.contains("param = @b, lr_scale = 0.5"),
        "a bias through q.dequantize is a bias"
    );
    insta::assert_snapshot!(text);
}
