//! `mite train`: compile a training step for a model and run it on an image split with the
//! reference interpreter, batch 1, in file order.
//!
//! The run: optionally dequantize the model (`--precision fp32`, the paper's fp32 baseline),
//! optionally replace the classifier for a new number of classes, mark the trainable parameters
//! of the scheme, build `train_step` by compile-time autodiff, then for each step feed one image
//! with its label, the learning rate of the schedule and the step number.

pub mod checks;
pub mod head;
pub mod schedule;
pub use mite_passes::scheme;

use crate::eval::{evaluate, image_input, EvalReport};
use mite_data::{Dataset, Normalization};
use mite_interp::quant::Rounding;
use mite_interp::{InterpOptions, Interpreter, Tensor};
use mite_ir::{ElemType, Module, TensorData, TensorType};
use mite_passes::passes::{build_training_step, Dequantize, TrainConfig};
use mite_passes::{Pass, Statistics};
use schedule::Schedule;
use scheme::{Scheme, TrainedTensor};
use serde::Serialize;

/// A named preset of learning rates (`--recipe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// Every trained tensor at the same rate, 0.01 (what PyTorch users expect of `--lr`).
    Plain,
    /// The paper's on-device recipe (NOTES §2): SGD without momentum, weights at 0.0008 and
    /// biases at half of it (0.0004), QAS on.
    Paper,
}

impl Recipe {
    /// Parses `plain` or `paper`.
    pub fn parse(text: &str) -> Result<Recipe, String> {
        match text {
            "plain" => Ok(Recipe::Plain),
            "paper" => Ok(Recipe::Paper),
            _ => Err(format!("expected plain or paper, found `{text}`")),
        }
    }

    /// The learning rate of weights.
    pub fn lr(self) -> f32 {
        match self {
            Recipe::Plain => 0.01,
            Recipe::Paper => 0.0008,
        }
    }

    /// The multiplier of biases' learning rate.
    pub fn lr_scale_bias(self) -> f32 {
        match self {
            Recipe::Plain => 1.0,
            Recipe::Paper => 0.5,
        }
    }
}

/// Numeric precision of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// The real int8 graph, updated in the integer domain (QAS optional).
    Int8,
    /// The dequantized float graph (the paper's fp32 baseline).
    Fp32,
}

/// How to train.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Number of optimizer steps (one image each).
    pub steps: usize,
    /// Base learning rate.
    pub lr: f32,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Which parameters train.
    pub scheme: Scheme,
    /// Precision.
    pub precision: Precision,
    /// Replace the classifier by a fresh one with this many classes.
    pub classes: Option<usize>,
    /// Train the classifier in fp32 (the paper's fp32 head) while the backbone stays int8.
    pub fp32_head: bool,
    /// Seed of the fresh classifier and of stochastic rounding.
    pub seed: u64,
    /// Autodiff and optimizer settings (loss, QAS, momentum, ...).
    pub config: TrainConfig,
    /// Pixel normalisation.
    pub normalization: Normalization,
    /// int8 requantization rounding.
    pub rounding: Rounding,
    /// Use only the first N training images (cycled through in file order).
    pub train_limit: Option<usize>,
    /// Train the largest-magnitude channels of partial-channel layers (permuted to the front at
    /// compile time, which leaves the network's function unchanged) instead of the first ones.
    pub magnitude: bool,
}

/// What a training run reports (the JSON of `--report-json`).
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Optimizer steps run.
    pub steps: usize,
    /// Mean loss over the last 10% of the steps (at least one).
    pub final_train_loss: f32,
    /// Mean loss over the first 10% of the steps (at least one).
    pub initial_train_loss: f32,
    /// Top-1 accuracy on the evaluation split, when one was given.
    pub eval_accuracy: Option<f64>,
    /// The evaluation report.
    pub eval: Option<EvalReport>,
    /// The loss of every step.
    pub losses: Vec<f32>,
    /// Training throughput.
    pub steps_per_second: f64,
    /// Parameters updated.
    pub trainable: Vec<String>,
    /// What autodiff built: forward / backward / optimizer ops, saved masks and activations.
    pub training_ir: String,
}

/// Prepares `module` for training: precision, head, scheme; returns the trainable parameters.
pub fn prepare(module: &mut Module, opts: &TrainOptions) -> Result<Vec<TrainedTensor>, String> {
    if opts.precision == Precision::Fp32 {
        Dequantize
            .run(module, &mut Statistics::new())
            .map_err(|e| format!("error: {e}"))?;
    }
    if let Some(classes) = opts.classes {
        head::replace_classifier(module, classes, opts.seed).map_err(|e| format!("error: {e}"))?;
    }
    if opts.fp32_head {
        head::float_classifier(module).map_err(|e| format!("error: --fp32-head: {e}"))?;
    }
    if opts.magnitude {
        let wanted = opts
            .scheme
            .resolve(&scheme::layers(module))
            .map_err(|e| format!("error: --scheme: {e}"))?;
        scheme::permute::permute_by_magnitude(module, &wanted)
            .map_err(|e| format!("error: --channels: {e}"))?;
    }
    let trainable = opts
        .scheme
        .apply(module)
        .map_err(|e| format!("error: --scheme: {e}"))?;
    if trainable.is_empty() {
        return Err("error: the scheme selects no parameter to train".into());
    }
    Ok(trainable)
}

/// Trains `module` in place (its parameters hold the trained values afterwards) on `train`, and
/// evaluates on `eval` when given; `progress(step, total, loss)` is called after every step.
pub fn train(
    module: &mut Module,
    opts: &TrainOptions,
    train: &Dataset,
    eval: Option<(&Dataset, Option<usize>)>,
    mut progress: impl FnMut(usize, usize, f32),
) -> Result<TrainReport, String> {
    checks::logits_output(module, "forward")?;
    crate::eval::check_images(train, image_input(module, "forward")?[0])?;
    let trainable = prepare(module, opts)?;
    let mut config = opts.config.clone();
    config.seed = opts.seed as i64;
    let stats = build_training_step(module, &config).map_err(|e| format!("error: {e}"))?;
    let [c, h, w] = image_input(module, "forward")?;
    let classes = {
        let f = module.function("forward").ok_or("no @forward")?;
        f.ty(f.outputs()[0]).shape.last().copied().unwrap_or(0)
    };
    let n = opts.train_limit.map_or(train.len, |l| l.min(train.len));
    if n == 0 {
        return Err("error: the training split is empty".into());
    }
    let mut interp = Interpreter::with_options(
        module,
        InterpOptions::default().with_rounding(opts.rounding),
    )
    .map_err(|e| format!("error: {e}"))?;
    let mut losses = Vec::with_capacity(opts.steps.min(1 << 20));
    let start = std::time::Instant::now();
    for step in 0..opts.steps {
        let i = step % n;
        let label = train.label(i).map_err(|e| format!("error: {e}"))?;
        if label as usize >= classes {
            return Err(format!("error: image {i} has label {label} but the model has {classes} classes (use --classes)"));
        }
        let image = train
            .image(i, [h, w], opts.normalization)
            .map_err(|e| format!("error: {e}"))?;
        let inputs = [
            Tensor::f32(&[1, c, h, w], image).map_err(|e| format!("error: {e}"))?,
            Tensor::new(
                TensorType::new(&[1], ElemType::I32),
                TensorData::I32(vec![label as i32]),
            )
            .map_err(|e| format!("error: {e}"))?,
            Tensor::f32(&[], vec![opts.schedule.rate(opts.lr, step, opts.steps)])
                .map_err(|e| format!("error: {e}"))?,
            Tensor::new(
                TensorType::new(&[], ElemType::I64),
                TensorData::I64(vec![step as i64]),
            )
            .map_err(|e| format!("error: {e}"))?,
        ];
        let out = interp
            .run_mut(&config.train_step, &inputs)
            .map_err(|e| format!("error: step {step}: {e}"))?;
        let loss = out
            .first()
            .and_then(|t| t.as_f32())
            .and_then(|v| v.first().copied())
            .unwrap_or(f32::NAN);
        if !loss.is_finite() && step == 0 {
            return Err(format!(
                "error: the loss is {loss} at the first step, before any update: the model \
                 computes non-finite values on image 0 (check its weights and --normalize)"
            ));
        }
        if !loss.is_finite() {
            return Err(format!(
                "error: the loss diverged at step {step} ({loss}); lower --lr"
            ));
        }
        losses.push(loss);
        progress(step + 1, opts.steps, loss);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let updated = interp.take_overrides();
    drop(interp);
    mite_interp::exec::write_globals(module, updated).map_err(|e| format!("error: {e}"))?;
    let window = (opts.steps / 10).max(1).min(losses.len().max(1));
    let mean = |v: &[f32]| {
        if v.is_empty() {
            f32::NAN
        } else {
            v.iter().sum::<f32>() / v.len() as f32
        }
    };
    let eval_report = match eval {
        Some((data, limit)) => Some(
            evaluate(
                module,
                "forward",
                data,
                opts.normalization,
                limit,
                opts.rounding,
                |_, _| {},
            )?
            .0,
        ),
        None => None,
    };
    Ok(TrainReport {
        steps: opts.steps,
        final_train_loss: mean(&losses[losses.len().saturating_sub(window)..]),
        initial_train_loss: mean(&losses[..window.min(losses.len())]),
        eval_accuracy: eval_report.as_ref().map(|r| r.accuracy),
        eval: eval_report,
        losses,
        steps_per_second: if elapsed > 0.0 {
            opts.steps as f64 / elapsed
        } else {
            0.0
        },
        trainable: trainable.iter().map(ToString::to_string).collect(),
        training_ir: format!("{stats:?}"),
    })
}
