//! Building a [`NetConfig`] as a mite module, in int8 or f32.
//!
//! **Int8** (the form the ONNX import produces from `../shared/models`):
//! `forward(%input: tensor<1x3xSxSxf32>) -> tensor<1xKxf32>` is `q.quantize` of the input,
//! `q.conv2d` per conv (int8 weights quantized per output channel, `q<axis=0, ...>`; int32 biases
//! with scale `s_x · s_w[c]`; per-tensor int8 outputs; ReLU6 folded into the output range),
//! `q.add` for residuals (block input first, as in the ONNX), `q.global_avg_pool` keeping its
//! input's quantization, the classifier as a 1×1 `q.conv2d` on the pooled 1×1 map,
//! `q.dequantize`, and `nn.flatten` to the logits.
//!
//! **F32**: the same graph with `nn.conv2d`, `nn.clip` (ReLU6, `min = 0`, `max = 6`) after every
//! conv but the projections and the classifier, `nn.add`, `nn.global_avg_pool` and
//! `nn.flatten`; no quantize or dequantize. Its weights are the real values of the int8
//! variant's weights (`s_w[c] · w_int8`, `s_x · s_w[c] · b_int32`), so the two variants compute
//! nearly the same function.
//!
//! **Names** (op `loc` names and parameters, as in the ONNX files): `first_conv`,
//! `blocks.N.pointwise1|depthwise|pointwise2`, `blocks.N.add`, `pool`, `classifier`, `logits`
//! (the flatten); parameters `<layer>.weight` and `<layer>.bias`. The int8 quantize and
//! dequantize are named `quantize_input` and `dequantize_logits`; the f32 ReLU6 after a conv is
//! `<layer>.relu6`.
//!
//! **Weights** are placeholders (the zoo gives architectures; real weights come from ONNX
//! import): seeded with [`SplitMix64::for_name`], so each parameter depends only on the seed and
//! its name. Int8 weights are uniform in `[−127, 127]`; the per-channel scale is
//! `s_w[c] = sqrt(6 / fan_in) · (0.75 + 0.5 u_c) / 127` with `u_c` uniform in `[0, 1)` (He-uniform
//! real weights, with scales that really differ per channel); biases are real values uniform in
//! `[−0.1, 0.1]` rounded to the int32 grid `s_x · s_w[c]`.
//!
//! **Quantization parameters** are fixed, plausible values ([`ActQuant`] constants) close to those
//! of the real files: input `1/127.5`, zero point 0; ReLU6 outputs `6/255`, zero point −128
//! (real range `[0, 6]`); projections 0.05, zero point 0 (range ±6.4); residual sums 0.06, zero
//! point 0; logits 0.15, zero point 0.

use crate::config::{ConvRole, ConvSpec, NetConfig};
use crate::rng::SplitMix64;
use mite_ir::{
    Attr, BuildError, Builder, ElemType, Module, Op, Quant, TensorData, TensorType, Value,
};

/// The seed used by the zoo's convenience constructors.
pub const DEFAULT_SEED: u64 = 0x6d69_7465_7a6f_6f31;

/// Whether a network computes in int8 or in f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Real int8 graph (`q.` ops), as imported from the int8 ONNX files.
    #[default]
    Int8,
    /// Float graph (`nn.` ops).
    F32,
}

/// How to build a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Int8 or f32.
    pub precision: Precision,
    /// Seed of the placeholder weights.
    pub seed: u64,
    /// Whether the parameters are declared trainable.
    pub trainable: bool,
}

impl Default for BuildOptions {
    /// Int8, [`DEFAULT_SEED`], trainable parameters.
    fn default() -> Self {
        BuildOptions {
            precision: Precision::Int8,
            seed: DEFAULT_SEED,
            trainable: true,
        }
    }
}

/// Per-tensor quantization of an activation: `real = scale · (q − zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActQuant {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
}

impl ActQuant {
    /// The network input, `(pixel − 127.5) / 127.5` quantized with scale 1/127.5, zero point 0.
    pub const INPUT: ActQuant = ActQuant {
        scale: 1.0 / 127.5,
        zero_point: 0,
    };
    /// Outputs followed by ReLU6: real range `[0, 6]`.
    pub const RELU6: ActQuant = ActQuant {
        scale: 6.0 / 255.0,
        zero_point: -128,
    };
    /// Outputs of projecting convs (`pointwise2`, no activation): range about ±6.4.
    pub const PROJECTION: ActQuant = ActQuant {
        scale: 0.05,
        zero_point: 0,
    };
    /// Residual sums: range about ±7.7.
    pub const RESIDUAL: ActQuant = ActQuant {
        scale: 0.06,
        zero_point: 0,
    };
    /// The classifier's int8 logits: range about ±19.
    pub const LOGITS: ActQuant = ActQuant {
        scale: 0.15,
        zero_point: 0,
    };

    /// As IR quantization parameters.
    pub fn quant(self) -> Quant {
        Quant::per_tensor(self.scale, self.zero_point)
    }
}

/// Placeholder parameters of one layer in int8 form.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    /// Int8 weights, row-major, output channel first.
    pub weight: Vec<i8>,
    /// Per-output-channel weight scales `s_w[c]`.
    pub weight_scales: Vec<f32>,
    /// Int32 biases on the grid `s_x · s_w[c]`.
    pub bias: Vec<i32>,
    /// Bias scales `s_x · s_w[c]`.
    pub bias_scales: Vec<f32>,
}

impl LayerWeights {
    /// Seeded weights of layer `name` with `out` output channels, `fan_in` inputs per output
    /// and input scale `input_scale` (see the module documentation for the distribution).
    pub fn generate(
        seed: u64,
        name: &str,
        out: usize,
        fan_in: usize,
        input_scale: f32,
    ) -> LayerWeights {
        let mut rng = SplitMix64::for_name(seed, &format!("{name}.weight"));
        let bound = (6.0 / fan_in as f32).sqrt();
        let weight_scales: Vec<f32> = (0..out)
            .map(|_| bound * (0.75 + 0.5 * rng.next_f32()) / 127.0)
            .collect();
        let weight = (0..out * fan_in)
            .map(|_| rng.int_in(-127, 127) as i8)
            .collect();
        let bias_scales: Vec<f32> = weight_scales.iter().map(|s| input_scale * s).collect();
        let mut rng = SplitMix64::for_name(seed, &format!("{name}.bias"));
        let bias = bias_scales
            .iter()
            .map(|&s| {
                let real = 0.2 * rng.next_f32() - 0.1;
                (real / s).round() as i32
            })
            .collect();
        LayerWeights {
            weight,
            weight_scales,
            bias,
            bias_scales,
        }
    }

    /// The real weights `s_w[c] · w`, row-major.
    pub fn real_weight(&self) -> Vec<f32> {
        let per_channel = self.weight.len() / self.weight_scales.len().max(1);
        self.weight
            .iter()
            .enumerate()
            .map(|(i, &w)| self.weight_scales[i / per_channel] * f32::from(w))
            .collect()
    }

    /// The real biases `s_x · s_w[c] · b`.
    pub fn real_bias(&self) -> Vec<f32> {
        self.bias
            .iter()
            .zip(&self.bias_scales)
            .map(|(&b, &s)| s * b as f32)
            .collect()
    }
}

/// An activation with its nominal quantization (also tracked in the f32 variant, whose weights
/// are derived from the int8 ones).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Act {
    pub(crate) value: Value,
    pub(crate) q: ActQuant,
}

/// Appends layers with placeholder weights to a function.
pub(crate) struct LayerBuilder<'m> {
    pub(crate) b: Builder<'m>,
    pub(crate) options: BuildOptions,
}

impl<'m> LayerBuilder<'m> {
    pub(crate) fn new(module: &'m mut Module, options: BuildOptions) -> LayerBuilder<'m> {
        LayerBuilder {
            b: Builder::new(module, "forward"),
            options,
        }
    }

    /// Declares and reads `<name>.weight` and `<name>.bias` of shape `weight_shape` / `[out]`.
    fn params(
        &mut self,
        name: &str,
        weight_shape: &[usize],
        x: ActQuant,
    ) -> Result<(Value, Value), BuildError> {
        let out = weight_shape[0];
        let fan_in = weight_shape[1..].iter().product();
        let lw = LayerWeights::generate(self.options.seed, name, out, fan_in, x.scale);
        let trainable = self.options.trainable;
        let (wname, bname) = (format!("{name}.weight"), format!("{name}.bias"));
        match self.options.precision {
            Precision::Int8 => {
                let wq = Quant::per_channel(0, lw.weight_scales.clone());
                let bq = Quant::per_channel(0, lw.bias_scales.clone());
                let w = self.b.param(
                    &wname,
                    TensorType::quantized(weight_shape, ElemType::I8, wq),
                    trainable,
                    Some(TensorData::I8(lw.weight)),
                )?;
                let b = self.b.param(
                    &bname,
                    TensorType::quantized(&[out], ElemType::I32, bq),
                    trainable,
                    Some(TensorData::I32(lw.bias)),
                )?;
                Ok((w, b))
            }
            Precision::F32 => {
                let w = self.b.param(
                    &wname,
                    TensorType::f32(weight_shape),
                    trainable,
                    Some(TensorData::F32(lw.real_weight())),
                )?;
                let b = self.b.param(
                    &bname,
                    TensorType::f32(&[out]),
                    trainable,
                    Some(TensorData::F32(lw.real_bias())),
                )?;
                Ok((w, b))
            }
        }
    }

    /// A conv with its parameters; `out_q` is its output quantization, and `relu6` adds the
    /// activation (folded into `out_q` in int8, an `nn.clip` in f32).
    pub(crate) fn conv(
        &mut self,
        x: Act,
        spec: &ConvSpec,
        out_q: ActQuant,
        relu6: bool,
    ) -> Result<Act, BuildError> {
        let k = spec.kernel;
        let shape = [spec.out_channels, spec.in_channels / spec.groups, k, k];
        let (w, b) = self.params(&spec.name, &shape, x.q)?;
        let (s, p) = (spec.stride as i64, spec.pad as i64);
        let (strides, pads, dilations, groups) =
            (vec![s, s], vec![p; 4], vec![1, 1], spec.groups as i64);
        let value = match self.options.precision {
            Precision::Int8 => self.b.named(spec.name.as_str()).op_quant(
                Op::QConv2d {
                    strides,
                    pads,
                    dilations,
                    groups,
                    act_min: -128,
                    act_max: 127,
                },
                &[x.value, w, b],
                out_q.quant(),
            )?,
            Precision::F32 => {
                let y = self.b.named(spec.name.as_str()).op(
                    Op::Conv2d {
                        strides,
                        pads,
                        dilations,
                        groups,
                    },
                    &[x.value, w, b],
                )?;
                if relu6 {
                    self.b
                        .named(format!("{}.relu6", spec.name))
                        .op(Op::Clip { min: 0.0, max: 6.0 }, &[y])?
                } else {
                    y
                }
            }
        };
        Ok(Act { value, q: out_q })
    }

    /// A fully connected layer `name` from `x` ([1, K]) to `out` features.
    pub(crate) fn linear(
        &mut self,
        x: Act,
        name: &str,
        out: usize,
        out_q: ActQuant,
    ) -> Result<Act, BuildError> {
        let k = self.b.ty(x.value).shape[1];
        let (w, b) = self.params(name, &[out, k], x.q)?;
        let value = match self.options.precision {
            Precision::Int8 => self.b.named(name).op_quant(
                Op::QLinear {
                    act_min: -128,
                    act_max: 127,
                },
                &[x.value, w, b],
                out_q.quant(),
            )?,
            Precision::F32 => self.b.named(name).op(Op::Linear {}, &[x.value, w, b])?,
        };
        Ok(Act { value, q: out_q })
    }

    /// The residual sum `skip + y` named `name`.
    pub(crate) fn add(&mut self, name: &str, skip: Act, y: Act) -> Result<Act, BuildError> {
        let q = ActQuant::RESIDUAL;
        let value = match self.options.precision {
            Precision::Int8 => self.b.named(name).op_quant(
                Op::QAdd {
                    act_min: -128,
                    act_max: 127,
                },
                &[skip.value, y.value],
                q.quant(),
            )?,
            Precision::F32 => self.b.named(name).op(Op::Add {}, &[skip.value, y.value])?,
        };
        Ok(Act { value, q })
    }

    /// The function input `input` of type f32 `shape`, quantized in the int8 variant.
    pub(crate) fn input(&mut self, shape: &[usize]) -> Result<Act, BuildError> {
        let x = self.b.arg("input", TensorType::f32(shape));
        let q = ActQuant::INPUT;
        let value = match self.options.precision {
            Precision::Int8 => {
                self.b
                    .named("quantize_input")
                    .op_quant(Op::Quantize {}, &[x], q.quant())?
            }
            Precision::F32 => x,
        };
        Ok(Act { value, q })
    }

    /// Dequantizes `y` in the int8 variant (the f32 variant returns it unchanged).
    pub(crate) fn dequantize(&mut self, y: Act) -> Result<Value, BuildError> {
        match self.options.precision {
            Precision::Int8 => self
                .b
                .named("dequantize_logits")
                .op(Op::Dequantize {}, &[y.value]),
            Precision::F32 => Ok(y.value),
        }
    }
}

/// Builds `config` as a module with one function `forward(%input) -> logits`.
///
/// Fails only if the configuration is inconsistent (its shapes do not fit); the zoo's own
/// configurations always build.
pub fn build(config: &NetConfig, options: &BuildOptions) -> Result<Module, BuildError> {
    let mut module = Module::new(match options.precision {
        Precision::Int8 => config.name.to_string(),
        Precision::F32 => format!("{}_f32", config.name),
    });
    module
        .attrs
        .push(("source".into(), Attr::Str("mite-zoo".into())));
    let mut net = LayerBuilder::new(&mut module, *options);
    let size = config.input_size;
    let mut x = net.input(&[1, 3, size, size])?;

    let convs = config.convs();
    let mut convs = convs.iter();
    let mut next = || convs.next().expect("NetConfig::convs lists every conv");
    x = net.conv(x, next(), ActQuant::RELU6, true)?;
    for (n, block) in config.blocks.iter().enumerate() {
        let skip = x;
        if block.expand.is_some() {
            x = net.conv(x, next(), ActQuant::RELU6, true)?;
        }
        x = net.conv(x, next(), ActQuant::RELU6, true)?;
        x = net.conv(x, next(), ActQuant::PROJECTION, false)?;
        if block.residual {
            x = net.add(&format!("blocks.{n}.add"), skip, x)?;
        }
    }

    // The pool keeps its input's quantization (NOTES §2).
    let pooled = match options.precision {
        Precision::Int8 => {
            net.b
                .named("pool")
                .op_quant(Op::QGlobalAvgPool {}, &[x.value], x.q.quant())?
        }
        Precision::F32 => net.b.named("pool").op(Op::GlobalAvgPool {}, &[x.value])?,
    };
    let classifier = next();
    debug_assert_eq!(classifier.role, ConvRole::Classifier);
    let logits = net.conv(
        Act {
            value: pooled,
            q: x.q,
        },
        classifier,
        ActQuant::LOGITS,
        false,
    )?;
    let logits = net.dequantize(logits)?;
    let flat = net
        .b
        .named("logits")
        .op(Op::Flatten { axis: 1 }, &[logits])?;
    net.b.ret(&[flat]);
    Ok(module)
}
