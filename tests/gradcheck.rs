//! Gradient check: on random small float graphs covering every differentiable op, the gradients
//! that mite's autodiff computes agree with central finite differences of the loss evaluated in
//! f64.
//!
//! Each case builds `forward` (input → conv (+ bias) → 2–5 random ops → head → logits) and
//! `loss` (the same ops plus the loss). Autodiff builds `train_step` with plain SGD at learning
//! rate 1, so every parameter's gradient is `w_before − w_after` (the update is applied in f32,
//! so gradients carry f32 rounding). Finite differences: `(L(w + h) − L(w − h)) / (2h)` in f64
//! with `h = 1e-4` on 3 random elements of every parameter; elements whose one-sided differences
//! disagree (a ReLU / clip / max-pool kink inside `[w − h, w + h]`) are skipped, and at least one
//! element per case must be checked.
//!
//! Tolerance: `|g_ad − g_fd| ≤ 2e-3 · max(|g_fd|, max |g| of the parameter) + 1e-5`.

use mite::interp::{Buffer, Interpreter, Tensor};
use mite::ir::{Builder, ElemType, Module, Op, Symbol, TensorData, TensorType, Value};
use mite::passes::passes::{build_training_step, Loss, TrainConfig};
use proptest::prelude::*;

/// One op of the random chain.
#[derive(Clone, Debug)]
enum Step {
    Relu,
    Clip(f32, f32),
    AvgPool {
        stride: i64,
        pad: i64,
        count_include_pad: bool,
    },
    MaxPool {
        stride: i64,
    },
    Pointwise,
    ResidualAdd,
    ScaleMul,
    Pad,
    Transpose,
    ConcatSelf,
    Softmax {
        log: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Relu),
        (-1.0f32..0.0, 0.1f32..1.0).prop_map(|(a, b)| Step::Clip(a, b)),
        (1i64..3, 0i64..2, any::<bool>()).prop_map(|(stride, pad, count_include_pad)| {
            Step::AvgPool {
                stride,
                pad,
                count_include_pad,
            }
        }),
        (1i64..3).prop_map(|stride| Step::MaxPool { stride }),
        Just(Step::Pointwise),
        Just(Step::ResidualAdd),
        Just(Step::ScaleMul),
        Just(Step::Pad),
        Just(Step::Transpose),
        Just(Step::ConcatSelf),
        any::<bool>().prop_map(|log| Step::Softmax { log }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    channels: usize,
    size: usize,
    depthwise: bool,
    stride: i64,
    steps: Vec<Step>,
    matmul_head: bool,
    mse: bool,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        2usize..4,
        4usize..7,
        any::<bool>(),
        1i64..3,
        prop::collection::vec(step(), 2..6),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(channels, size, depthwise, stride, steps, matmul_head, mse, seed)| Case {
                channels,
                size,
                depthwise,
                stride,
                steps,
                matmul_head,
                mse,
                seed,
            },
        )
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

const CLASSES: usize = 3;

/// Reads parameter `name`, declaring it (with random data) on first use.
fn param(b: &mut Builder, rng: &mut Rng, name: &str, shape: &[usize]) -> Value {
    if b.module().globals.contains_key(name) {
        return b
            .op(
                Op::Param {
                    global: Symbol(name.into()),
                },
                &[],
            )
            .unwrap();
    }
    let n: usize = shape.iter().product();
    let data = TensorData::F32(rng.values(n, 0.7));
    b.param(name, TensorType::f32(shape), true, Some(data))
        .unwrap()
}

/// Builds the chain into the function of `b`; returns the logits.
fn build(b: &mut Builder, c: &Case, x: Value) -> Value {
    let mut rng = Rng(c.seed);
    let ch = c.channels;
    let w_shape = if c.depthwise {
        [ch, 1, 3, 3]
    } else {
        [ch, ch, 3, 3]
    };
    let w = param(b, &mut rng, "conv.weight", &w_shape);
    let bias = param(b, &mut rng, "conv.bias", &[ch]);
    let conv = Op::Conv2d {
        strides: vec![c.stride, c.stride],
        pads: vec![1; 4],
        dilations: vec![1, 1],
        groups: if c.depthwise { ch as i64 } else { 1 },
    };
    let mut v = b.op(conv, &[x, w, bias]).unwrap();
    for (i, s) in c.steps.iter().enumerate() {
        let shape = b.ty(v).shape.clone();
        let (chan, h) = (shape[1], shape[2]);
        let next = match s {
            Step::Relu => b.op(Op::Relu {}, &[v]),
            Step::Clip(lo, hi) => b.op(Op::Clip { min: *lo, max: *hi }, &[v]),
            Step::AvgPool {
                stride,
                pad,
                count_include_pad,
            } if h >= 2 => b.op(
                Op::AvgPool {
                    kernel: vec![2, 2],
                    strides: vec![*stride, *stride],
                    pads: vec![*pad; 4],
                    count_include_pad: *count_include_pad,
                },
                &[v],
            ),
            Step::MaxPool { stride } if h >= 2 => b.op(
                Op::MaxPool {
                    kernel: vec![2, 2],
                    strides: vec![*stride, *stride],
                    pads: vec![0; 4],
                    dilations: vec![1, 1],
                },
                &[v],
            ),
            Step::Pointwise => {
                let w = param(b, &mut rng, &format!("pw{i}.weight"), &[chan, chan, 1, 1]);
                b.op(
                    Op::Conv2d {
                        strides: vec![1, 1],
                        pads: vec![0; 4],
                        dilations: vec![1, 1],
                        groups: 1,
                    },
                    &[v, w],
                )
            }
            Step::ResidualAdd => {
                let r = b.op(Op::Relu {}, &[v]).unwrap();
                b.op(Op::Add {}, &[v, r])
            }
            Step::ScaleMul => {
                let s = param(b, &mut rng, &format!("scale{i}"), &[chan, 1, 1]);
                b.op(Op::Mul {}, &[v, s])
            }
            Step::Pad => b.op(
                Op::Pad {
                    pads: vec![0, 0, 1, 0, 0, 0, 0, 1],
                    value: 0.25,
                },
                &[v],
            ),
            Step::Transpose => {
                let t = b
                    .op(
                        Op::Transpose {
                            perm: vec![0, 1, 3, 2],
                        },
                        &[v],
                    )
                    .unwrap();
                Ok(t)
            }
            Step::ConcatSelf => {
                let r = b
                    .op(
                        Op::Clip {
                            min: -0.3,
                            max: 0.3,
                        },
                        &[v],
                    )
                    .unwrap();
                b.op(Op::Concat { axis: 1 }, &[v, r])
            }
            Step::Softmax { log } => {
                let op = if *log {
                    Op::LogSoftmax { axis: 1 }
                } else {
                    Op::Softmax { axis: 1 }
                };
                b.op(op, &[v])
            }
            _ => Ok(v),
        };
        v = next.unwrap();
    }
    if c.matmul_head {
        let flat = b.op(Op::Flatten { axis: 1 }, &[v]).unwrap();
        let features = b.ty(flat).shape[1];
        let w = param(b, &mut rng, "head.matrix", &[features, CLASSES]);
        b.op(Op::MatMul {}, &[flat, w]).unwrap()
    } else {
        let pooled = b.op(Op::GlobalAvgPool {}, &[v]).unwrap();
        let flat = b.op(Op::Flatten { axis: 1 }, &[pooled]).unwrap();
        let features = b.ty(flat).shape[1];
        let w = param(b, &mut rng, "fc.weight", &[CLASSES, features]);
        let bias = param(b, &mut rng, "fc.bias", &[CLASSES]);
        b.op(Op::Linear {}, &[flat, w, bias]).unwrap()
    }
}

/// `forward` (logits) and `loss` (logits and loss against `target`).
fn module(c: &Case) -> Module {
    let mut m = Module::new("gradcheck");
    let input = TensorType::f32(&[1, c.channels, c.size, c.size]);
    {
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("input", input.clone());
        let logits = build(&mut b, c, x);
        b.ret(&[logits]);
    }
    {
        let mut b = Builder::new(&mut m, "loss");
        let x = b.arg("input", input);
        let target = if c.mse {
            b.arg("target", TensorType::f32(&[1, CLASSES]))
        } else {
            b.arg("labels", TensorType::new(&[1], ElemType::I32))
        };
        let logits = build(&mut b, c, x);
        let op = if c.mse {
            Op::MseLoss {}
        } else {
            Op::SoftmaxCrossEntropy {}
        };
        let loss = b.op(op, &[logits, target]).unwrap();
        b.ret(&[loss]);
    }
    m
}

fn target(c: &Case) -> Buffer<f64> {
    if c.mse {
        Buffer::Real(vec![0.3, -0.2, 0.5])
    } else {
        Buffer::I32(vec![(c.seed % CLASSES as u64) as i32])
    }
}

fn loss_f64(interp: &Interpreter<'_>, input: &[f64], c: &Case) -> f64 {
    let out = interp
        .run_f64("loss", &[Buffer::Real(input.to_vec()), target(c)])
        .unwrap();
    match &out[0] {
        Buffer::Real(v) => v[0],
        _ => panic!("loss is real"),
    }
}

fn check(c: &Case) -> Result<usize, TestCaseError> {
    let mut m = module(c);
    let config = TrainConfig {
        loss: if c.mse { Loss::Mse } else { Loss::CrossEntropy },
        lr_scale_bias: 1.0,
        qas: false,
        ..TrainConfig::default()
    };
    build_training_step(&mut m, &config)
        .map_err(|e| TestCaseError::fail(format!("autodiff: {e}")))?;
    let n_in = c.channels * c.size * c.size;
    let mut rng = Rng(c.seed ^ 0xabcdef);
    let input: Vec<f32> = rng.values(n_in, 1.0);
    let input64: Vec<f64> = input.iter().map(|&v| f64::from(v)).collect();

    // Autodiff gradients: one SGD step at lr 1 from the initial parameters.
    let mut interp = Interpreter::new(&m).unwrap();
    let target_tensor = if c.mse {
        Tensor::f32(&[1, CLASSES], vec![0.3, -0.2, 0.5]).unwrap()
    } else {
        Tensor::new(
            TensorType::new(&[1], ElemType::I32),
            TensorData::I32(vec![(c.seed % CLASSES as u64) as i32]),
        )
        .unwrap()
    };
    let inputs = [
        Tensor::f32(&[1, c.channels, c.size, c.size], input).unwrap(),
        target_tensor,
        Tensor::f32(&[], vec![1.0]).unwrap(),
        Tensor::new(
            TensorType::new(&[], ElemType::I64),
            TensorData::I64(vec![0]),
        )
        .unwrap(),
    ];
    interp
        .run_mut("train_step", &inputs)
        .map_err(|e| TestCaseError::fail(format!("train_step: {e}")))?;
    let after: std::collections::HashMap<String, TensorData> = interp
        .updated_params()
        .into_iter()
        .map(|(n, d)| (n.to_string(), d.clone()))
        .collect();
    drop(interp);

    let mut checked = 0;
    let names: Vec<String> = m
        .globals
        .iter()
        .filter(|(_, g)| matches!(g.kind, mite::ir::GlobalKind::Param { .. }))
        .map(|(n, _)| n.clone())
        .collect();
    for name in names {
        let Some(TensorData::F32(before)) = m.data(&name).cloned() else {
            continue;
        };
        let Some(TensorData::F32(updated)) = after.get(&name) else {
            return Err(TestCaseError::fail(format!("{name} was not updated")));
        };
        let grad: Vec<f64> = before
            .iter()
            .zip(updated)
            .map(|(b, a)| f64::from(*b) - f64::from(*a))
            .collect();
        let gmax = grad.iter().fold(0f64, |m, g| m.max(g.abs()));
        let mut pick = Rng(c.seed ^ name.len() as u64);
        for _ in 0..3 {
            let k = ((pick.next() + 1.0) * 0.5 * before.len() as f32) as usize % before.len();
            let h = 1e-4f32;
            let eval = |w: f32| -> f64 {
                let mut interp = Interpreter::new(&m).unwrap();
                let mut data = before.clone();
                data[k] = w;
                interp.set_global(&name, TensorData::F32(data)).unwrap();
                loss_f64(&interp, &input64, c)
            };
            let (wp, w0, wm) = (before[k] + h, before[k], before[k] - h);
            let (lp, l0, lm) = (eval(wp), eval(w0), eval(wm));
            let fwd = (lp - l0) / (f64::from(wp) - f64::from(w0));
            let bwd = (l0 - lm) / (f64::from(w0) - f64::from(wm));
            let fd = (lp - lm) / (f64::from(wp) - f64::from(wm));
            if (fwd - bwd).abs() > 2e-3 * fwd.abs().max(bwd.abs()).max(1e-3) {
                continue; // a kink inside [w − h, w + h]
            }
            let tol = 2e-3 * fd.abs().max(gmax) + 1e-5;
            prop_assert!(
                (grad[k] - fd).abs() <= tol,
                "{name}[{k}]: autodiff {} vs finite difference {fd} (tolerance {tol:e})\n{c:?}",
                grad[k]
            );
            checked += 1;
        }
    }
    Ok(checked)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]
    #[test]
    fn autodiff_matches_finite_differences(c in case()) {
        let checked = check(&c)?;
        prop_assert!(checked > 0, "no element could be checked: {c:?}");
    }
}
