//! `mite compile`: apply a sparse-update scheme to a model and build its training step, and
//! report what was built. Later phases add memory planning and code generation; the report is a
//! struct of sections so that they add their own.

use crate::train::head;
use crate::train::scheme::permute::permute_by_magnitude;
use crate::train::scheme::{analytic_extra_bits, layers, Scheme};
use mite_ir::memory::memory_report;
use mite_ir::Module;
use mite_passes::passes::{build_training_step, stream_bottlenecks, TrainConfig, TrainStats};
use serde::Serialize;

/// What to compile.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The trainable tensors.
    pub scheme: Scheme,
    /// Replace the classifier by a fresh one with this many classes (seeded by `seed`).
    pub classes: Option<usize>,
    /// Seed of the fresh classifier.
    pub seed: u64,
    /// Autodiff and optimizer settings.
    pub config: TrainConfig,
    /// Train the largest-magnitude channels of partial-channel layers (permuting channels at
    /// compile time) instead of the first ones.
    pub magnitude: bool,
    /// Fuse frozen inverted bottlenecks into row-streamed `q.bottleneck` ops (the
    /// `stream-bottlenecks` pass; `--no-fusion` turns it off).
    pub fusion: bool,
}

/// The scheme section of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemeReport {
    /// The scheme's name as given (`paper:49kb`, `last:12`, a file path).
    pub name: String,
    /// The trained tensors by their ONNX initializer names, with their channel slice if partial
    /// (`blocks.7.pointwise1.weight[:, 0:24]` for input channels, `…[0:24]` for axis 0).
    pub trainable: Vec<String>,
    /// The paper's analytic extra memory of the scheme in bytes (NOTES §3).
    pub analytic_extra_bytes: u64,
}

/// The training-step section of the report (what `autodiff` built).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// Ops of the forward section (copied forward ops and the loss).
    pub forward_ops: usize,
    /// Ops of the backward pass.
    pub backward_ops: usize,
    /// Parameter updates.
    pub optimizer_ops: usize,
    /// Masks the backward pass reads, and their bytes.
    pub masks_saved: usize,
    /// Bytes of those masks.
    pub mask_bytes: usize,
    /// Activations the backward pass reads.
    pub activations_saved: usize,
    /// Bytes of those activations.
    pub activation_bytes: usize,
}

impl From<&TrainStats> for StepReport {
    fn from(s: &TrainStats) -> StepReport {
        StepReport {
            forward_ops: s.forward_ops,
            backward_ops: s.backward_ops,
            optimizer_ops: s.optimizer_ops,
            masks_saved: s.masks_saved,
            mask_bytes: s.mask_bytes,
            activations_saved: s.activations_saved,
            activation_bytes: s.activation_bytes,
        }
    }
}

/// The SRAM section of the report: the training step's memory from one liveness analysis and
/// the greedy planner (program order; Phase 5's scheduling and fusion lower it further).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SramReport {
    /// Arena + SRAM copies of updated parameters + optimizer state.
    pub peak_bytes: u64,
    /// The planned arena (activations, gradients, saved values, masks, scratch, input).
    pub arena_bytes: u64,
    /// The most bytes live at once in the arena: no placement can do better.
    pub lower_bound_bytes: u64,
    /// SRAM copies of the updated parameters (int8 weights, int32 biases, f32 where float).
    pub params_bytes: u64,
    /// Optimizer state (momentum, gradient accumulators).
    pub state_bytes: u64,
    /// The input image (inside the arena).
    pub input_bytes: u64,
}

/// The flash section of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlashReport {
    /// Frozen parameters and constants the training step reads (the initial values of trained
    /// parameters, which the SRAM copies start from, are not counted yet).
    pub constants_bytes: u64,
}

/// The fusion section of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FusionReport {
    /// The frozen bottlenecks streamed by rows, by their expansion weight.
    pub streamed_blocks: Vec<String>,
    /// Bytes of the intermediates they no longer materialise, less their scratch.
    pub bytes_saved: u64,
}

/// The report of `mite compile` (`--report-json`); one field per section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompileReport {
    /// The model's name.
    pub model: String,
    /// The scheme and its analytic memory.
    pub scheme: SchemeReport,
    /// The training step.
    pub training_step: StepReport,
    /// SRAM of one training step.
    pub sram: SramReport,
    /// Flash.
    pub flash: FlashReport,
    /// Fusion.
    pub fusion: FusionReport,
    /// Wall-clock time of the compilation, in milliseconds.
    pub compile_millis: u64,
}

impl CompileReport {
    /// The memory figures as a short text table (what `mite compile` prints).
    pub fn memory_table(&self) -> String {
        let kb = |b: u64| format!("{:>9.1} KB", b as f64 / 1024.0);
        let s = &self.sram;
        let ratio = if s.lower_bound_bytes == 0 {
            1.0
        } else {
            s.arena_bytes as f64 / s.lower_bound_bytes as f64
        };
        format!(
            "SRAM peak       {}\n  arena         {}  (lower bound {}, ratio {ratio:.3})\n  \
             parameters    {}\n  state         {}\n  input         {}  (in the arena)\n\
             flash constants {}\ncompile time    {:>9} ms\n",
            kb(s.peak_bytes),
            kb(s.arena_bytes),
            kb(s.lower_bound_bytes).trim(),
            kb(s.params_bytes),
            kb(s.state_bytes),
            kb(s.input_bytes),
            kb(self.flash.constants_bytes),
            self.compile_millis
        )
    }
}

/// The text of the Program lowered from `module` (after [`compile`]): its inference function
/// and the training step of `config`, planned and verified.
pub fn program_text(module: &Module, config: &TrainConfig) -> Result<String, String> {
    Ok(mite_ir::program::print_program(&lower_program(
        module, config,
    )?))
}

/// The Program lowered from `module` (after [`compile`]): its inference function and the
/// training step of `config`, planned and verified.
pub fn lower_program(
    module: &Module,
    config: &TrainConfig,
) -> Result<mite_ir::program::Program, String> {
    let opts = mite_passes::lower::LowerOptions {
        forward: config.forward.clone(),
        train_step: Some(config.train_step.clone()),
        ..Default::default()
    };
    mite_passes::lower::lower_module(module, &opts).map_err(|e| format!("error: {e}"))
}

/// Lowers `module` (after [`compile`]) and writes the Rust backend's `no_std` crate into `dir`;
/// returns the number of files and their bytes.
pub fn emit_rust(
    module: &Module,
    config: &TrainConfig,
    dir: &std::path::Path,
    options: &mite_rustgen::RustOptions,
) -> Result<(usize, usize), String> {
    let program = lower_program(module, config)?;
    let files = mite_rustgen::emit_crate(&program, options).map_err(|e| format!("error: {e}"))?;
    mite_rustgen::write_crate(dir, &files).map_err(|e| format!("error: {e}"))?;
    Ok((files.len(), files.iter().map(|f| f.contents.len()).sum()))
}

/// Lowers `module` (after [`compile`]) and writes the C backend's project (program, runtime,
/// self-test on seeded synthetic images, Makefile, README) into `dir`; returns the number of
/// files and their bytes.
pub fn emit_c(
    module: &Module,
    config: &TrainConfig,
    dir: &std::path::Path,
    description: &str,
) -> Result<(usize, usize), String> {
    let program = lower_program(module, config)?;
    let (len, classes) = program_io(&program)
        .ok_or_else(|| "error: --emit c: the program has no int8 input and loss".to_string())?;
    let samples = mite_c::project::synthetic_samples(4, len, classes, 7);
    let files = mite_c::project::emit_project(&program, &samples, description)
        .map_err(|e| format!("error: --emit c: {e}"))?;
    mite_c::project::write_project(dir, &files)
        .map_err(|e| format!("error: {}: {e}", dir.display()))?;
    Ok((files.len(), files.iter().map(|f| f.1.len()).sum()))
}

/// The input length and the classes of a lowered training program.
fn program_io(p: &mite_ir::program::Program) -> Option<(usize, usize)> {
    use mite_ir::program::{ArgRole, Kernel, Storage};
    let len = p.buffers.iter().find_map(|b| match b.storage {
        Storage::Arg {
            role: ArgRole::Input,
            ..
        } => Some(b.len),
        _ => None,
    })?;
    let classes = p
        .entries
        .iter()
        .flat_map(|e| &e.calls)
        .find_map(|c| match c.kernel {
            Kernel::SoftmaxCrossEntropy { classes, .. } => Some(classes),
            _ => None,
        })?;
    Some((len, classes))
}

/// Applies the scheme to `module`, builds the training step and reports it.
pub fn compile(
    name: &str,
    module: &mut Module,
    opts: &CompileOptions,
) -> Result<CompileReport, String> {
    let start = std::time::Instant::now();
    if let Some(classes) = opts.classes {
        head::replace_classifier(module, classes, opts.seed).map_err(|e| format!("error: {e}"))?;
    }
    let all_layers = layers(module);
    if opts.magnitude {
        let wanted = opts
            .scheme
            .resolve(&all_layers)
            .map_err(|e| format!("error: --scheme: {e}"))?;
        permute_by_magnitude(module, &wanted).map_err(|e| format!("error: --channels: {e}"))?;
    }
    let trained = opts
        .scheme
        .apply(module)
        .map_err(|e| format!("error: --scheme: {e}"))?;
    if trained.is_empty() {
        return Err("error: --scheme: the scheme selects no parameter to train".into());
    }
    let bits = analytic_extra_bits(&all_layers, &trained);
    let stats = build_training_step(module, &opts.config).map_err(|e| format!("error: {e}"))?;
    let fused = if opts.fusion {
        stream_bottlenecks(module)
    } else {
        Vec::new()
    };
    let step_blocks: Vec<_> = fused
        .iter()
        .filter(|b| b.function == opts.config.train_step)
        .collect();
    let memory =
        memory_report(module, &opts.config.train_step).map_err(|e| format!("error: {e}"))?;
    Ok(CompileReport {
        model: name.to_string(),
        scheme: SchemeReport {
            name: opts.scheme.name(),
            trainable: trained.iter().map(ToString::to_string).collect(),
            analytic_extra_bytes: bits.div_ceil(8),
        },
        training_step: StepReport::from(&stats),
        sram: SramReport {
            peak_bytes: memory.peak_bytes,
            arena_bytes: memory.arena_bytes,
            lower_bound_bytes: memory.lower_bound_bytes,
            params_bytes: memory.params_bytes,
            state_bytes: memory.state_bytes,
            input_bytes: memory.input_bytes,
        },
        flash: FlashReport {
            constants_bytes: memory.flash_bytes,
        },
        fusion: FusionReport {
            streamed_blocks: step_blocks
                .iter()
                .map(|b| b.expand_weight.clone())
                .collect(),
            bytes_saved: step_blocks.iter().map(|b| b.bytes_saved).sum(),
        },
        compile_millis: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcunet_paper_49kb_report() {
        let mut m = mite_zoo::mcunet_5fps();
        let opts = CompileOptions {
            scheme: Scheme::parse("paper:49kb").unwrap(),
            classes: None,
            seed: 0,
            config: TrainConfig::default(),
            magnitude: false,
            fusion: true,
        };
        let r = compile("mcunet", &mut m, &opts).unwrap();
        assert_eq!(r.scheme.name, "paper:49kb");
        let kb = r.scheme.analytic_extra_bytes as f64 / 1024.0;
        assert!((kb - 49.0).abs() / 49.0 < 0.03, "{kb}");
        // Conv 24 (blocks.8.pointwise1) at 1/4 of its 48 input channels.
        assert!(r
            .scheme
            .trainable
            .contains(&"blocks.8.pointwise1.weight[:, 0:12]".to_string()));
        assert_eq!(r.training_step.optimizer_ops, r.scheme.trainable.len());
    }
}
