//! `mite compile`: apply a sparse-update scheme to a model and build its training step, and
//! report what was built. Later phases add memory planning and code generation; the report is a
//! struct of sections so that they add their own.

use crate::train::head;
use crate::train::scheme::permute::permute_by_magnitude;
use crate::train::scheme::{analytic_extra_bits, layers, Scheme};
use mite_ir::memory::{memory_report, MemoryReport};
use mite_ir::Module;
use mite_passes::passes::{
    build_training_step, chain_bottlenecks, schedule_function, stream_bottlenecks, Schedule,
    TrainConfig, TrainStats,
};
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
    /// Reorder the training step's ops to lower its memory peak (the `schedule` pass);
    /// `--no-reorder` turns it off.
    pub reorder: bool,
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
    /// How the arena was planned (`greedy:size`, `improved`, `exact`; `, optimal` when proven).
    pub planner: String,
}

/// The flash section of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlashReport {
    /// Frozen parameters and constants the training step reads (the initial values of trained
    /// parameters, which the SRAM copies start from, are not counted yet).
    pub constants_bytes: u64,
}

/// The memory of the lowered Program (what the C and Rust backends emit): the planned arena
/// (with the int8 input image, live there until its last reader), the SRAM copies of the
/// trained parameters, the optimizer state and the caller's label; flash holds the frozen
/// constants and the trained parameters' initial images.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramReport {
    /// Arena + parameters + state + arguments.
    pub sram_bytes: u64,
    /// The planned arena (largest over the entries).
    pub arena_bytes: u64,
    /// SRAM copies of the trained parameters.
    pub params_bytes: u64,
    /// Optimizer state.
    pub state_bytes: u64,
    /// The entry arguments read from the caller (label, learning rate, step; the int8 input
    /// image too when it is not in the arena).
    pub args_bytes: u64,
    /// The int8 input image in the arena (part of `arena_bytes`; 0 when it is an argument).
    pub input_in_arena_bytes: u64,
    /// Flash: frozen constants and the trained parameters' initial values.
    pub flash_bytes: u64,
    /// Weight gradients computed by the kernel that applies their update (no gradient buffer).
    pub fused_updates: u64,
    /// The bytes of the gradient buffers those fused updates do not materialise.
    pub fused_update_bytes: u64,
    /// Inverted bottlenecks whose backward pass runs one expanded channel at a time
    /// (`bottleneck_backward` calls: the gradient of the expanded tensor never exists whole).
    pub streamed_backwards: u64,
    /// Calls that consume the entry's input and leave their output in its bytes (the chained
    /// first stage, `bottleneck_chain_int8_inplace`; one per entry at most).
    pub consumed_inputs: u64,
    /// The arena's lower bound: the most bytes live at one call (no plan can use less).
    pub arena_lower_bound_bytes: u64,
    /// Where the arena's live bytes peak (`@entry call N: kernel (layer)`).
    pub arena_peak: Option<String>,
}

/// The fusion section of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FusionReport {
    /// The frozen bottlenecks streamed by rows, by their expansion weight.
    pub streamed_blocks: Vec<String>,
    /// Bytes of the intermediates they no longer materialise, less their scratch.
    pub bytes_saved: u64,
    /// Streamed blocks whose output streams into the next one (`q.bottleneck_chain`), by
    /// their first weight.
    pub chained_blocks: Vec<String>,
}

/// The `schedule` section of the report: what reordering the training step did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduleReport {
    /// Arena bytes live at the peak (scratch included) in autodiff's order.
    pub peak_before_bytes: u64,
    /// The same after reordering.
    pub peak_after_bytes: u64,
    /// The peak after the loss (the backward pass) in autodiff's order.
    pub backward_peak_before_bytes: u64,
    /// The same after reordering.
    pub backward_peak_after_bytes: u64,
    /// Ops that left their relative order.
    pub ops_moved: usize,
    /// Whether the search stopped at its time limit.
    pub time_limit_hit: bool,
}

/// The wall-clock time of one stage of the compilation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Timing {
    /// The stage (`scheme`, `autodiff`, `schedule`, `plan`).
    pub stage: String,
    /// Microseconds.
    pub micros: u64,
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
    /// The lowered Program's memory (absent when the step cannot be lowered; see
    /// `program_error`).
    pub program: Option<ProgramReport>,
    /// Why the step could not be lowered to a Program, if it could not.
    pub program_error: Option<String>,
    /// Reordering (absent with `--no-reorder`).
    pub schedule: Option<ScheduleReport>,
    /// Wall-clock time of each stage.
    pub timings: Vec<Timing>,
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
        let program = match (&self.program, &self.program_error) {
            (Some(p), _) => format!(
                "Program SRAM    {}  (arena {}{}, parameters {}, state {}, {} {})\n\
                 \x20 arena         {}  (lower bound {}, ratio {:.3}; peak at {})\n\
                 Program flash   {}\n\
                 fused updates   {:>9}     ({} of weight gradients not materialised)\n\
                 streamed backward {:>7}     (bottlenecks whose backward runs channel by channel)\n\
                 input consumed  {:>9}     (calls leaving their output in the input's bytes)\n",
                kb(p.sram_bytes),
                kb(p.arena_bytes).trim(),
                if p.input_in_arena_bytes > 0 {
                    format!(
                        ", input in the arena {} of it",
                        kb(p.input_in_arena_bytes).trim()
                    )
                } else {
                    String::new()
                },
                kb(p.params_bytes).trim(),
                kb(p.state_bytes).trim(),
                if p.input_in_arena_bytes > 0 {
                    "label, lr and step"
                } else {
                    "int8 input and label"
                },
                if p.args_bytes < 1024 {
                    format!("{} B", p.args_bytes)
                } else {
                    kb(p.args_bytes).trim().to_string()
                },
                kb(p.arena_bytes),
                kb(p.arena_lower_bound_bytes).trim(),
                p.arena_bytes as f64 / p.arena_lower_bound_bytes.max(1) as f64,
                p.arena_peak.as_deref().unwrap_or("no call"),
                kb(p.flash_bytes),
                p.fused_updates,
                kb(p.fused_update_bytes).trim(),
                p.streamed_backwards,
                p.consumed_inputs
            ),
            (None, Some(e)) => format!("Program         not lowered: {e}\n"),
            (None, None) => String::new(),
        };
        format!(
            "{program}graph-level estimate (before lowering: f32 input image, unfused gradients):\n\
             SRAM peak       {}\n  arena         {}  (lower bound {}, ratio {ratio:.3}, {})\n  \
             parameters    {}\n  state         {}\n  input         {}  (in the arena)\n\
             flash constants {}\ncompile time    {:>9} ms\n",
            kb(s.peak_bytes),
            kb(s.arena_bytes),
            kb(s.lower_bound_bytes).trim(),
            s.planner,
            kb(s.params_bytes),
            kb(s.state_bytes),
            kb(s.input_bytes),
            kb(self.flash.constants_bytes),
            self.compile_millis
        )
    }
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

/// Writes the Rust backend's `no_std` crate of `program` (see [`compile_program`] or
/// [`lower_program`]) into `dir`; returns the number of files and their bytes.
pub fn emit_rust(
    program: &mite_ir::program::Program,
    dir: &std::path::Path,
    options: &mite_rustgen::RustOptions,
) -> Result<(usize, usize), String> {
    let files = mite_rustgen::emit_crate(program, options).map_err(|e| format!("error: {e}"))?;
    mite_rustgen::write_crate(dir, &files).map_err(|e| format!("error: {e}"))?;
    Ok((files.len(), files.iter().map(|f| f.contents.len()).sum()))
}

impl CompileReport {
    /// The schedule's effect and the stage timings, as text (what `mite compile` prints after
    /// the memory table).
    pub fn schedule_and_timings(&self) -> String {
        let kb = |b: u64| b as f64 / 1024.0;
        let mut out = String::new();
        if let Some(s) = &self.schedule {
            out += &format!(
                "reorder         peak {:.1} -> {:.1} KB, backward peak {:.1} -> {:.1} KB, {} ops moved{}\n",
                kb(s.peak_before_bytes),
                kb(s.peak_after_bytes),
                kb(s.backward_peak_before_bytes),
                kb(s.backward_peak_after_bytes),
                s.ops_moved,
                if s.time_limit_hit { " (time limit)" } else { "" }
            );
        }
        let stages: Vec<String> = self
            .timings
            .iter()
            .map(|t| format!("{} {:.1} ms", t.stage, t.micros as f64 / 1000.0))
            .collect();
        out += &format!("timings         {}\n", stages.join(", "));
        out
    }
}

/// Memory budgets of `mite compile` (`--sram`, `--flash`), in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budgets {
    /// SRAM: arena + updated parameters + optimizer state.
    pub sram: Option<u64>,
    /// Flash: frozen constants.
    pub flash: Option<u64>,
}

/// Checks the compiled step against `budgets`; the error names the largest contributors: the
/// arena buffers live at the peak (with their op and layer), the updated parameters and the
/// state for SRAM, the largest frozen tensors for flash.
pub fn check_budgets(
    report: &CompileReport,
    memory: &MemoryReport,
    module: &Module,
    budgets: &Budgets,
) -> Result<(), String> {
    let kb = |b: u64| format!("{:.1} KB", b as f64 / 1024.0);
    let size_of = |name: &str| {
        module
            .globals
            .get(name)
            .map_or(0, |g| g.ty.size_bytes() as u64)
    };
    let largest = |mut items: Vec<(String, u64)>, n: usize| -> String {
        items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let shown: Vec<String> = items
            .iter()
            .take(n)
            .map(|(name, b)| format!("{name} {}", kb(*b)))
            .collect();
        let rest = items.len().saturating_sub(n);
        if rest > 0 {
            format!("{} and {rest} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    let mut errors = Vec::new();
    // The lowered Program's SRAM when there is one (int8 input), else the graph estimate.
    let sram = report
        .program
        .as_ref()
        .map_or(report.sram.peak_bytes, |p| p.sram_bytes);
    if let Some(limit) = budgets.sram.filter(|&l| sram > l) {
        let step = memory.peak_step;
        let at_peak: Vec<(String, u64)> = memory
            .buffers
            .iter()
            .filter(|b| b.live.0 <= step && step <= b.live.1)
            .map(|b| (format!("{} [{}]", b.what, b.kind.name()), b.size))
            .collect();
        let params: Vec<(String, u64)> = memory
            .updated_params
            .iter()
            .map(|p| (p.clone(), size_of(p)))
            .collect();
        errors.push(format!(
            "error: SRAM {} exceeds the budget of {} (--sram) by {}\n  \
             graph arena {} at its peak, step {} ({}): {}\n  \
             updated parameters {}: {}\n  optimizer state {}",
            kb(sram),
            kb(limit),
            kb(sram - limit),
            kb(report.sram.arena_bytes),
            step,
            memory.steps.get(step).map_or("", String::as_str),
            largest(at_peak, 5),
            kb(report.sram.params_bytes),
            largest(params, 5),
            kb(report.sram.state_bytes),
        ));
    }
    if let Some(limit) = budgets.flash.filter(|&l| report.flash.constants_bytes > l) {
        let updated: std::collections::HashSet<&str> =
            memory.updated_params.iter().map(String::as_str).collect();
        let mut read: std::collections::BTreeSet<&str> = Default::default();
        if let Some(f) = module.function(&memory.function) {
            for &id in f.layout() {
                read.extend(f.op(id).op.effects().reads);
            }
        }
        let frozen: Vec<(String, u64)> = read
            .iter()
            .filter(|g| !updated.contains(*g))
            .map(|g| (g.to_string(), size_of(g)))
            .collect();
        errors.push(format!(
            "error: flash {} exceeds the budget of {} (--flash) by {}\n  largest frozen tensors: {}",
            kb(report.flash.constants_bytes),
            kb(limit),
            kb(report.flash.constants_bytes - limit),
            largest(frozen, 5)
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// The images the C self-test embeds: the first `count` of a dataset split, resized to the
/// model's input, normalised and quantized; labels must be classes of the model.
#[derive(Clone, Debug)]
pub struct SelftestData {
    /// The dataset directory (`mite_data::Dataset` layout).
    pub dir: std::path::PathBuf,
    /// The split.
    pub split: String,
    /// Pixel normalisation.
    pub normalization: mite_data::Normalization,
    /// Images to embed.
    pub count: usize,
}

/// The self-test's samples from `data` (see [`SelftestData`]) for a program of `classes`
/// classes.
fn selftest_samples(
    module: &Module,
    data: &SelftestData,
    classes: usize,
) -> Result<Vec<mite_c::project::Sample>, String> {
    let what = format!("--selftest-data {}", data.dir.display());
    let set = mite_data::Dataset::load(&data.dir, &data.split)
        .map_err(|e| format!("error: {what}: {e}"))?;
    if set.len < data.count {
        return Err(format!(
            "error: {what}: split `{}` has {} images, the self-test needs {}",
            data.split, set.len, data.count
        ));
    }
    let [_, h, w] = crate::eval::image_input(module, "forward")?;
    (0..data.count)
        .map(|i| {
            let label = set.label(i).map_err(|e| format!("error: {what}: {e}"))? as usize;
            if label >= classes {
                return Err(format!(
                    "error: {what}: image {i} has label {label}, the model has {classes} classes"
                ));
            }
            let img = set
                .image(i, [h, w], data.normalization)
                .map_err(|e| format!("error: {what}: image {i}: {e}"))?;
            let image = mite_passes::lower::quantize_image(module, "forward", &img)
                .map_err(|e| format!("error: {what}: image {i}: {e}"))?;
            Ok(mite_c::project::Sample {
                image,
                label: label as i32,
            })
        })
        .collect()
}

/// Writes the C backend's project (program, runtime, self-test, Makefile, README) of `program`
/// (lowered from `module`, see [`compile_program`]) into `dir`; returns the number of files and
/// their bytes. The self-test embeds the images of `data` (quantized as `module`'s input) when
/// given, else seeded synthetic ones.
pub fn emit_c(
    program: &mite_ir::program::Program,
    module: &Module,
    dir: &std::path::Path,
    description: &str,
    data: Option<&SelftestData>,
) -> Result<(usize, usize), String> {
    let (len, classes) = program_io(program)
        .ok_or_else(|| "error: --emit c: the program has no int8 input and loss".to_string())?;
    let samples = match data {
        Some(d) => selftest_samples(module, d, classes)?,
        None => mite_c::project::synthetic_samples(4, len, classes, 7),
    };
    let files = mite_c::project::emit_project(program, &samples, description)
        .map_err(|e| format!("error: --emit c: {e}"))?;
    mite_c::project::write_project(dir, &files)
        .map_err(|e| format!("error: {}: {e}", dir.display()))?;
    Ok((files.len(), files.iter().map(|f| f.1.len()).sum()))
}

/// The input length and the classes of a lowered training program.
fn program_io(p: &mite_ir::program::Program) -> Option<(usize, usize)> {
    use mite_ir::program::{ArgRole, Kernel};
    let len = p
        .buffers
        .iter()
        .find_map(|b| (b.storage.arg_role() == Some(ArgRole::Input)).then_some(b.len))?;
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
    compile_with_memory(name, module, opts).map(|(report, _)| report)
}

/// [`compile`], also returning the training step's full memory report (its buffers, for budget
/// messages and timelines).
pub fn compile_with_memory(
    name: &str,
    module: &mut Module,
    opts: &CompileOptions,
) -> Result<(CompileReport, MemoryReport), String> {
    compile_program(name, module, opts).map(|c| (c.report, c.memory))
}

/// What [`compile_program`] returns.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The report (what `mite compile` prints).
    pub report: CompileReport,
    /// The training step's graph-level memory report (buffers, for budget messages and
    /// timelines).
    pub memory: MemoryReport,
    /// The lowered, planned and verified Program the report describes (`None` when lowering
    /// failed: the report's `program_error` says why) — what the emitters print.
    pub program: Option<mite_ir::program::Program>,
}

/// [`compile`], also returning the memory report and the lowered Program, so that a caller
/// that emits code lowers once.
pub fn compile_program(
    name: &str,
    module: &mut Module,
    opts: &CompileOptions,
) -> Result<Compiled, String> {
    let start = std::time::Instant::now();
    let mut timings = Vec::new();
    let mut lap = start;
    let mut time = |stage: &str| {
        let now = std::time::Instant::now();
        timings.push(Timing {
            stage: stage.to_string(),
            micros: u64::try_from((now - lap).as_micros()).unwrap_or(u64::MAX),
        });
        lap = now;
    };
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
    time("scheme");
    let stats = build_training_step(module, &opts.config).map_err(|e| format!("error: {e}"))?;
    time("autodiff");
    let (fused, chains) = if opts.fusion {
        let fused = stream_bottlenecks(module);
        (fused, chain_bottlenecks(module))
    } else {
        (Vec::new(), Vec::new())
    };
    // The `fuse` pass (egg) is not part of this pipeline: its rewrites (mask folding, view and
    // requantize chains) do not lower the planned arena — masks are applied in place and views
    // cost nothing — and it is available to `mite opt` and library users by name.
    let step_blocks: Vec<_> = fused
        .iter()
        .filter(|b| b.function == opts.config.train_step)
        .collect();
    time("fusion");
    let schedule = if opts.reorder {
        Some(reorder(module, &opts.config.train_step)?)
    } else {
        None
    };
    time("schedule");
    let memory =
        memory_report(module, &opts.config.train_step).map_err(|e| format!("error: {e}"))?;
    time("plan");
    let (program, lowered, program_error) = match lower_program(module, &opts.config) {
        Ok(p) => {
            let b = p.storage_bytes();
            let report = ProgramReport {
                sram_bytes: b.sram(),
                arena_bytes: b.arena,
                params_bytes: b.param,
                state_bytes: b.state,
                args_bytes: b.args,
                input_in_arena_bytes: b.input_in_arena,
                flash_bytes: b.flash,
                fused_updates: p
                    .entries
                    .iter()
                    .flat_map(|e| &e.calls)
                    .filter(|c| c.kernel.fused_gradient_bytes() > 0)
                    .count() as u64,
                fused_update_bytes: p
                    .entries
                    .iter()
                    .flat_map(|e| &e.calls)
                    .map(|c| c.kernel.fused_gradient_bytes() as u64)
                    .sum(),
                streamed_backwards: p
                    .entries
                    .iter()
                    .flat_map(|e| &e.calls)
                    .filter(|c| {
                        matches!(
                            c.kernel,
                            mite_ir::program::Kernel::BottleneckBackward { .. }
                        )
                    })
                    .count() as u64,
                consumed_inputs: p
                    .entries
                    .iter()
                    .flat_map(|e| &e.calls)
                    .filter(|c| c.kernel.consumes_input())
                    .count() as u64,
                arena_lower_bound_bytes: p.arena_lower_bound(),
                arena_peak: p.arena_peak_text(),
            };
            (Some(report), Some(p), None)
        }
        Err(e) => (
            None,
            None,
            Some(e.trim_start_matches("error: ").to_string()),
        ),
    };
    time("lower");
    let report = CompileReport {
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
            planner: memory.planner.clone(),
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
            chained_blocks: chains
                .iter()
                .filter(|c| c.function == opts.config.train_step)
                .map(|c| c.first_weight.clone())
                .collect(),
        },
        compile_millis: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        program,
        program_error,
        schedule,
        timings,
    };
    Ok(Compiled {
        report,
        memory,
        program: lowered,
    })
}

/// Runs the `schedule` pass's search on function `name` and applies its order.
fn reorder(module: &mut Module, name: &str) -> Result<ScheduleReport, String> {
    let func = module
        .function_mut(name)
        .ok_or_else(|| format!("error: the module has no function @{name}"))?;
    let result = schedule_function(func, &Schedule::default());
    if let Some(order) = &result.order {
        func.set_schedule(order)
            .map_err(|e| format!("error: schedule of @{name}: {e}"))?;
    }
    Ok(ScheduleReport {
        peak_before_bytes: result.before.peak,
        peak_after_bytes: result.after.peak,
        backward_peak_before_bytes: result.before.backward_peak,
        backward_peak_after_bytes: result.after.backward_peak,
        ops_moved: result.ops_moved,
        time_limit_hit: result.time_limit_hit,
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
            reorder: true,
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
        // The int8 image lives in the arena; only label, learning rate and step are arguments.
        let p = r.program.as_ref().unwrap();
        assert_eq!((p.input_in_arena_bytes, p.args_bytes), (3 * 128 * 128, 16));
        assert_eq!(
            p.sram_bytes,
            p.arena_bytes + p.params_bytes + p.state_bytes + p.args_bytes
        );
        let table = r.memory_table();
        assert!(table.contains("input in the arena 48.0 KB"), "{table}");
    }
}
