//! The `mite` command line.

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use mite::driver::{opt, OptRequest};
use mite::ir::text::PrintOptions;
use mite::output::{check_paths, note, write_file, Stdout};
use mite::passes::{PassManagerOptions, PassRegistry};
use std::path::PathBuf;
use std::process::ExitCode;

/// mite: compile neural networks into programs that train themselves on microcontrollers.
#[derive(Parser)]
#[command(name = "mite", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once per run; boxing the large argument structs would only add indirection.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Parse, verify and transform an IR file with a pass pipeline; print the result on stdout.
    Opt(OptArgs),
    /// Show a model's ops, parameters, MACs and inference peak memory estimate.
    Inspect(InspectArgs),
    /// Measure top-1 accuracy of a model on an image split.
    Eval(EvalArgs),
    /// Compile a training step for a model and train it on an image split (batch 1).
    Train(Box<TrainArgs>),
    /// Apply a sparse-update scheme, build the training step and report it.
    Compile(CompileArgs),
    /// Quantize a float model with calibration into an int8 QDQ ONNX model.
    Quantize(QuantizeArgs),
    /// Contribution analysis and evolutionary search for a sparse-update scheme under a budget.
    Search(Box<SearchArgs>),
    /// List the registered passes.
    Passes,
    /// List the built-in ops with their attributes.
    Ops,
}

#[derive(Args)]
struct OptArgs {
    /// The `.mir` file (`-` reads standard input).
    file: PathBuf,
    /// The pass pipeline, e.g. `canonicalize,cse,constant-fold{max-elements=1024},dce`.
    #[arg(long, default_value = "")]
    passes: String,
    /// Print the IR before this pass (repeatable).
    #[arg(long = "print-ir-before", value_name = "PASS")]
    print_ir_before: Vec<String>,
    /// Print the IR after this pass (repeatable).
    #[arg(long = "print-ir-after", value_name = "PASS")]
    print_ir_after: Vec<String>,
    /// Print the IR after every pass.
    #[arg(long = "print-ir-after-all")]
    print_ir_after_all: bool,
    /// Stop after this pass.
    #[arg(long = "stop-after", value_name = "PASS")]
    stop_after: Option<String>,
    /// Print ops in the generic form.
    #[arg(long)]
    generic: bool,
    /// Print all constant data instead of eliding large data by digest.
    #[arg(long = "print-full-data")]
    print_full_data: bool,
    /// Print per-pass statistics on stderr.
    #[arg(long)]
    stats: bool,
    /// Do not run the verifier after each pass (the input is always verified).
    #[arg(long = "no-verify-each")]
    no_verify_each: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// The model: a `.onnx` or `.mir` file, or `zoo:NAME` (mcunet-5fps, mbv2-w0.35,
    /// proxyless-w0.3, tiny-int8-cnn, tiny-float-cnn).
    model: String,
    /// The function to inspect.
    #[arg(long, default_value = "forward")]
    function: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// The model: a `.onnx` or `.mir` file, or `zoo:NAME`.
    model: String,
    /// The dataset directory holding `<split>_images.npy` and `<split>_labels.npy`.
    #[arg(long)]
    data: PathBuf,
    /// The split, e.g. `val` or `test`.
    #[arg(long)]
    split: String,
    /// Pixel normalisation `MEAN,STD`: input = (pixel − MEAN) / STD.
    #[arg(long, default_value = "127.5,127.5")]
    normalize: String,
    /// Evaluate only the first N images (N ≥ 1).
    #[arg(long, value_parser = at_least_one)]
    limit: Option<usize>,
    /// int8 requantization rounding: `double` (TFLite/CMSIS-NN, what runs on a microcontroller),
    /// `single`, `float` (the paper's simulation) or `onnxruntime` (bit-exact with onnxruntime's
    /// CPU kernels).
    #[arg(long, default_value = "double")]
    rounding: String,
    /// Write the logits as a float32 `.npy` array `[N, classes]`.
    #[arg(long = "dump-logits", value_name = "FILE.npy")]
    dump_logits: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long = "report-json", value_name = "FILE")]
    report_json: Option<PathBuf>,
}

#[derive(Args)]
struct CalibrateArgs {
    /// The split of the calibration directory.
    #[arg(long = "calibrate-split", default_value = "train")]
    calibrate_split: String,
    /// Calibrate on the first N images only.
    #[arg(long = "calibrate-limit")]
    calibrate_limit: Option<usize>,
    /// Range statistic: `minmax` or `percentile:P` (e.g. `percentile:99.99`).
    #[arg(long = "calibrate-method", default_value = "minmax")]
    calibrate_method: String,
    /// Resize calibration images of another size to the model's input.
    #[arg(long)]
    resize: bool,
    /// 7-bit weights (onnxruntime's `reduce_range`): needed for onnxruntime to compute exactly
    /// on x86 CPUs without VNNI, whose `u8 × s8` kernels saturate 16-bit pair sums.
    #[arg(long = "reduce-range")]
    reduce_range: bool,
}

impl CalibrateArgs {
    fn source(
        &self,
        dir: PathBuf,
        normalization: mite::data::Normalization,
    ) -> Result<mite::quantize::CalibrationSource, String> {
        use mite::quantize::{CalibrateOptions, CalibrationSource, Method};
        Ok(CalibrationSource {
            dir,
            split: self.calibrate_split.clone(),
            options: CalibrateOptions {
                method: Method::parse(&self.calibrate_method).map_err(|e| format!("error: {e}"))?,
                limit: self.calibrate_limit,
                normalization,
                resize: self.resize,
                reduce_range: self.reduce_range,
            },
        })
    }
}

#[derive(Args)]
struct QuantizeArgs {
    /// The float model (`.onnx`, `.mir` or `zoo:NAME`).
    model: String,
    /// The calibration dataset directory (`<split>_images.npy`, `<split>_labels.npy`).
    #[arg(long)]
    calibrate: PathBuf,
    #[command(flatten)]
    calibration: CalibrateArgs,
    /// Pixel normalisation `MEAN,STD` of the model's input.
    #[arg(long, default_value = "127.5,127.5")]
    normalize: String,
    /// The output QDQ ONNX file.
    #[arg(short = 'o', long = "output", value_name = "OUT.onnx")]
    output: PathBuf,
    /// Print the pass statistics on stderr.
    #[arg(long)]
    stats: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// The model: a `.onnx` or `.mir` file, or `zoo:NAME`.
    model: String,
    /// The dataset directory holding `<split>_images.npy` and `<split>_labels.npy`.
    #[arg(long)]
    data: PathBuf,
    /// The training split.
    #[arg(long, default_value = "train")]
    split: String,
    /// Evaluate top-1 accuracy on this split after training.
    #[arg(long = "eval-split")]
    eval_split: Option<String>,
    /// Passes over the (limited) training images (≥ 1; epochs × images ≤ 10,000,000 steps).
    #[arg(long, conflicts_with = "steps", value_parser = at_least_one)]
    epochs: Option<usize>,
    /// Optimizer steps, one image each (1 to 10,000,000).
    #[arg(long, value_parser = steps_in_range)]
    steps: Option<usize>,
    /// Learning rate of every trained tensor, biases included (positive, finite) [default: the
    /// recipe's, 0.01 for `plain`].
    #[arg(long, value_parser = positive_f32)]
    lr: Option<f32>,
    /// Named preset of learning rates: `plain` (lr 0.01 for every tensor) or `paper` (the
    /// paper's on-device recipe: lr 0.0008 for weights, biases at half of it); explicit
    /// `--lr` / `--lr-scale-bias` override it.
    #[arg(long, default_value = "plain")]
    recipe: String,
    /// Learning-rate schedule: `constant` or `cosine[:WARMUP]`.
    #[arg(long = "lr-schedule", default_value = "constant")]
    lr_schedule: String,
    /// Quantization-aware scaling of int8 gradients: `on` or `off`.
    #[arg(long, default_value = "on")]
    qas: String,
    /// `int8` (the real quantized graph) or `fp32` (the dequantized float graph).
    #[arg(long, default_value = "int8")]
    precision: String,
    /// `full`, `classifier`, `last:K` (weights and biases of the last K convs + classifier),
    /// `bias:K` (biases of the last K convs + classifier), `paper:BUDGET` (the paper's sparse
    /// scheme for the model, e.g. `paper:49kb`) or a scheme file `FILE.toml`.
    #[arg(long, default_value = "classifier")]
    scheme: String,
    /// Channels a partial-channel layer trains: `first` (the first ⌈r·C⌉, as the released
    /// compiler) or `magnitude` (the largest, made contiguous by a compile-time permutation).
    #[arg(long, default_value = "first")]
    channels: String,
    /// Replace the classifier by a fresh one with N classes (seeded; 2 to 10,000).
    #[arg(long, value_parser = classes_in_range)]
    classes: Option<usize>,
    /// Seed of the fresh classifier and of stochastic rounding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train the classifier in fp32 while the backbone stays int8 (the paper's fp32 head).
    #[arg(long = "fp32-head")]
    fp32_head: bool,
    /// SGD momentum, in [0, 1).
    #[arg(long, default_value_t = 0.0, value_parser = momentum_in_range)]
    momentum: f32,
    /// L2 weight decay (≥ 0, finite).
    #[arg(long = "weight-decay", default_value_t = 0.0, value_parser = non_negative_f32)]
    weight_decay: f32,
    /// Apply the update every N steps (gradient accumulation; 1 to the number of steps).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..))]
    accumulate: i64,
    /// Round int8 updates stochastically (seeded) instead of to nearest.
    #[arg(long = "stochastic-rounding")]
    stochastic_rounding: bool,
    /// Learning-rate multiplier of biases (≥ 0, finite) [default: the recipe's, 1 for `plain`].
    #[arg(long = "lr-scale-bias", value_parser = non_negative_f32)]
    lr_scale_bias: Option<f32>,
    /// Use only the first N training images (N ≥ 1).
    #[arg(long, value_parser = at_least_one)]
    limit: Option<usize>,
    /// Evaluate only the first N images of the evaluation split (N ≥ 1).
    #[arg(long = "eval-limit", value_parser = at_least_one)]
    eval_limit: Option<usize>,
    /// Pixel normalisation `MEAN,STD`.
    #[arg(long, default_value = "127.5,127.5")]
    normalize: String,
    /// int8 requantization rounding (see `mite eval --help`).
    #[arg(long, default_value = "double")]
    rounding: String,
    /// Write the trained model as ONNX with the same tensor names (ONNX models only).
    #[arg(long = "save-model", value_name = "OUT.onnx")]
    save_model: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long = "report-json", value_name = "FILE")]
    report_json: Option<PathBuf>,
    /// Quantize a float model first, calibrating on this dataset directory.
    #[arg(long, value_name = "DIR")]
    calibrate: Option<PathBuf>,
    #[command(flatten)]
    calibration: CalibrateArgs,
}

#[derive(Args)]
struct CompileArgs {
    /// `.onnx`, `.mir` or `zoo:NAME`.
    model: String,
    /// The trainable tensors (see `mite train --help`).
    #[arg(long, default_value = "classifier")]
    scheme: String,
    /// What to write: `none` (only the report), `mir` (the IR with the training step, on
    /// stdout), `program` (the lowered Program's text, on stdout or to `-o FILE`) or `rust` (a
    /// `no_std` crate with a self-test, into the folder `-o DIR`).
    #[arg(long, default_value = "none")]
    emit: String,
    /// Where `--emit program` writes the Program (default: stdout), or the folder `--emit rust`
    /// writes its crate into (required).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the classifier by a fresh one with N classes (seeded; 2 to 10,000).
    #[arg(long, value_parser = classes_in_range)]
    classes: Option<usize>,
    /// Seed of the fresh classifier.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the parameter updates go: `asap` (each as soon as its gradient exists, the paper's
    /// reordering) or `end` (all after the backward pass).
    #[arg(long, default_value = "asap")]
    updates: String,
    /// Quantize a float model first, calibrating on this dataset directory.
    #[arg(long, value_name = "DIR")]
    calibrate: Option<PathBuf>,
    #[command(flatten)]
    calibration: CalibrateArgs,
    /// Pixel normalisation `MEAN,STD` of the calibration images.
    #[arg(long, default_value = "127.5,127.5")]
    normalize: String,
    /// Channels a partial-channel layer trains: `first` (the first ⌈r·C⌉, as the released
    /// compiler) or `magnitude` (the largest, made contiguous by a compile-time permutation).
    #[arg(long, default_value = "first")]
    channels: String,
    /// Do not fuse frozen inverted bottlenecks into row-streamed `q.bottleneck` ops.
    #[arg(long = "no-fusion")]
    no_fusion: bool,
    /// Write the report as JSON.
    #[arg(long = "report-json", value_name = "FILE")]
    report_json: Option<PathBuf>,
    /// Keep autodiff's op order (skip the `schedule` pass).
    #[arg(long = "no-reorder")]
    no_reorder: bool,
    /// SRAM budget (arena + updated parameters + optimizer state): `256K`, `0.5M`, bytes; 1K =
    /// 1024. Exceeding it fails and names the largest contributors.
    #[arg(long, value_name = "SIZE")]
    sram: Option<String>,
    /// Flash budget (frozen constants), as `--sram`.
    #[arg(long, value_name = "SIZE")]
    flash: Option<String>,
    /// Write the training step's per-op live-memory timeline as an SVG plot.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print the per-op live-memory timeline as text.
    #[arg(long)]
    timeline: bool,
    /// `--emit c`: the self-test embeds the first `--selftest-images` images of this dataset's
    /// `train` split (normalised with `--normalize`) instead of seeded synthetic ones.
    #[arg(long = "selftest-data", value_name = "DIR")]
    selftest_data: Option<PathBuf>,
    /// Images the self-test embeds from `--selftest-data` (1 to 64).
    #[arg(long = "selftest-images", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    selftest_images: u16,
}

#[derive(Args)]
struct SearchArgs {
    /// `.onnx`, `.mir` or `zoo:NAME`.
    model: String,
    /// Dataset directory (`<split>_images.npy`, `<split>_labels.npy`).
    #[arg(long)]
    data: PathBuf,
    /// Memory budget (analytic extra memory): `100K`, `100KB`, or bytes.
    #[arg(long)]
    budget: String,
    /// Results file of the contribution analysis (JSON lines; resumed if present).
    #[arg(long, default_value = "contributions.jsonl")]
    contributions: PathBuf,
    /// Replace the classifier by a fresh one with N classes (seeded).
    #[arg(long)]
    classes: Option<usize>,
    /// Training split.
    #[arg(long, default_value = "train")]
    split: String,
    /// Evaluation split.
    #[arg(long = "eval-split", default_value = "test")]
    eval_split: String,
    /// Training steps per candidate (one image each).
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Use only the first N training images.
    #[arg(long)]
    limit: Option<usize>,
    /// Evaluate only the first N images.
    #[arg(long = "eval-limit")]
    eval_limit: Option<usize>,
    /// Learning rate of every trained tensor.
    #[arg(long, default_value_t = 0.001)]
    lr: f32,
    /// Candidate bias counts, comma-separated [default: 4, 8, 16, 24, 32].
    #[arg(long = "bias-candidates")]
    bias_candidates: Option<String>,
    /// Candidate weight layers (backbone conv indices), comma-separated [default: the
    /// first pointwise conv of each block in the last half of the backbone].
    #[arg(long)]
    layers: Option<String>,
    /// Candidate ratios, comma-separated [default: 1/8,1/4,1/2,1].
    #[arg(long, default_value = "1/8,1/4,1/2,1")]
    ratios: String,
    /// Parallel fine-tuning jobs [default: available cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Seed of the fresh classifier and of the searches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fitness evaluations of each search.
    #[arg(long, default_value_t = 2000)]
    evaluations: usize,
    /// Write the scheme found as a scheme file (for `mite train --scheme FILE`).
    #[arg(long = "write-scheme", value_name = "OUT.toml")]
    write_scheme: Option<PathBuf>,
}

/// The most optimizer steps a run may take (the losses of all steps are kept in memory).
const MAX_STEPS: usize = 10_000_000;

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn steps_in_range(text: &str) -> Result<usize, String> {
    let n = at_least_one(text)?;
    if n > MAX_STEPS {
        return Err(format!("must be at most {MAX_STEPS}"));
    }
    Ok(n)
}

fn classes_in_range(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (2..=10_000).contains(&n) => Ok(n),
        Ok(n) => Err(format!("{n} is outside 2 to 10,000")),
        Err(e) => Err(e.to_string()),
    }
}

fn finite_f32(text: &str) -> Result<f32, String> {
    let v: f32 = text.parse().map_err(|e| format!("{e}"))?;
    if !v.is_finite() {
        return Err("must be finite".into());
    }
    Ok(v)
}

fn positive_f32(text: &str) -> Result<f32, String> {
    let v = finite_f32(text)?;
    if v <= 0.0 {
        return Err("must be positive".into());
    }
    Ok(v)
}

fn non_negative_f32(text: &str) -> Result<f32, String> {
    let v = finite_f32(text)?;
    if v < 0.0 {
        return Err("must not be negative".into());
    }
    Ok(v)
}

/// `--channels`: `first` (false) or `magnitude` (true).
fn parse_channels(text: &str) -> Result<bool, String> {
    match text {
        "first" => Ok(false),
        "magnitude" => Ok(true),
        other => Err(format!(
            "error: --channels: expected first or magnitude, found `{other}`"
        )),
    }
}

fn momentum_in_range(text: &str) -> Result<f32, String> {
    let v = non_negative_f32(text)?;
    if v >= 1.0 {
        return Err("must be less than 1 (the update would grow without bound)".into());
    }
    Ok(v)
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let mut out = Stdout::new();
    let result = match cli.command {
        Command::Opt(args) => run_opt(args, &mut out),
        Command::Inspect(args) => run_inspect(args, &mut out),
        Command::Eval(args) => run_eval(args, &mut out),
        Command::Train(args) => run_train(*args, &mut out),
        Command::Compile(args) => run_compile(args, &mut out),
        Command::Quantize(args) => run_quantize(args, &mut out),
        Command::Search(args) => run_search(*args, &mut out),
        Command::Passes => out.print(&PassRegistry::with_builtin().to_string()),
        Command::Ops => {
            let mut text = String::new();
            for name in mite::ir::ops::BUILTIN_OP_NAMES {
                let attrs = mite::ir::Op::attr_names(name);
                text.push_str(&format!("{name:28} {}\n", attrs.join(", ")));
            }
            out.print(&text)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            note(&format!("{message}\n"));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr when `RUST_LOG` is set (e.g. `RUST_LOG=mite_passes=info` shows each pass span).
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

fn run_opt(args: OptArgs, out: &mut Stdout) -> Result<(), String> {
    use mite::ir::limits;
    let (source, file_name) = if args.file.as_os_str() == "-" {
        let bytes = limits::read_capped(std::io::stdin().lock(), "standard input")
            .map_err(|e| format!("error: reading stdin: {e}"))?;
        let s = String::from_utf8(bytes)
            .map_err(|_| "error: standard input is not UTF-8 text".to_string())?;
        (s, "<stdin>".to_string())
    } else {
        let s = limits::read_text_file(&args.file)
            .map_err(|e| format!("error: cannot read {}: {e}", args.file.display()))?;
        (s, args.file.display().to_string())
    };
    let print = PrintOptions {
        generic: args.generic,
        elide_above: if args.print_full_data {
            None
        } else {
            PrintOptions::default().elide_above
        },
        locations: true,
    };
    let manager = PassManagerOptions {
        verify_each: !args.no_verify_each,
        print_ir_before: args.print_ir_before.into_iter().collect(),
        print_ir_after: args.print_ir_after.into_iter().collect(),
        print_ir_after_all: args.print_ir_after_all,
        stop_after: args.stop_after,
        print_options: print.clone(),
    };
    let request = OptRequest {
        source: &source,
        file_name: &file_name,
        pipeline: &args.passes,
        manager,
        print,
    };
    let output = opt(&request, &PassRegistry::with_builtin()).map_err(|e| e.to_string())?;
    note(&output.dumps);
    if args.stats {
        note(&output.report.to_string());
    }
    out.print(&output.ir)
}

fn run_inspect(args: InspectArgs, out: &mut Stdout) -> Result<(), String> {
    let model = mite::model::load_model(&args.model)?;
    let report = mite::inspect::inspect(&model.name, &model.module, &args.function)?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| format!("error: {e}"))?;
        out.print(&(json + "\n"))
    } else {
        out.print(&report.to_string())
    }
}

/// The files a model spec names (none for `zoo:`).
fn model_inputs(spec: &str) -> Vec<PathBuf> {
    if spec.starts_with("zoo:") {
        Vec::new()
    } else {
        vec![PathBuf::from(spec)]
    }
}

/// The two files of a dataset split.
fn split_inputs(dir: &std::path::Path, split: &str) -> [PathBuf; 2] {
    [
        dir.join(format!("{split}_images.npy")),
        dir.join(format!("{split}_labels.npy")),
    ]
}

fn run_compile(args: CompileArgs, out: &mut Stdout) -> Result<(), String> {
    use mite::compile::{check_budgets, compile_program, Budgets, CompileOptions};
    use mite::ir::memory::timeline::{to_svg, Timeline};
    use mite::train::scheme::Scheme;
    if !matches!(
        args.emit.as_str(),
        "none" | "mir" | "program" | "rust" | "c"
    ) {
        return Err(format!(
            "error: --emit: expected none, mir, program, rust or c, found `{}`",
            args.emit
        ));
    }
    if args.selftest_data.is_some() && args.emit != "c" {
        return Err("error: --selftest-data needs --emit c".into());
    }
    if args.emit == "c" && args.output.is_none() {
        return Err("error: --emit c needs -o DIR (the project's folder)".into());
    }
    if args.emit == "rust" && args.output.is_none() {
        return Err("error: --emit rust needs -o DIR (the crate's folder)".into());
    }
    let outputs: Vec<(&str, &std::path::Path)> = [
        ("--report-json", args.report_json.as_deref()),
        ("--plot", args.plot.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, p)| Some((flag, p?)))
    .collect();
    check_paths(&model_inputs(&args.model), &outputs)?;
    let budget = |flag: &str, text: &Option<String>| -> Result<Option<u64>, String> {
        text.as_deref()
            .map(|t| mite::search::parse_budget(t).map_err(|e| format!("error: {flag}: {e}")))
            .transpose()
    };
    let budgets = Budgets {
        sram: budget("--sram", &args.sram)?,
        flash: budget("--flash", &args.flash)?,
    };
    let scheme = Scheme::parse(&args.scheme).map_err(|e| format!("error: --scheme: {e}"))?;
    let updates = args
        .updates
        .parse()
        .map_err(|e| format!("error: --updates: {e}"))?;
    let mut model = mite::model::load_model(&args.model)?;
    if let Some(dir) = &args.calibrate {
        let normalization = mite::data::Normalization::parse(&args.normalize)
            .map_err(|e| format!("error: --normalize: {e}"))?;
        let source = args.calibration.source(dir.clone(), normalization)?;
        mite::quantize::calibrate_and_quantize(&mut model.module, &source)?;
    }
    let opts = CompileOptions {
        scheme,
        classes: args.classes,
        seed: args.seed,
        config: mite::passes::passes::TrainConfig {
            updates,
            ..Default::default()
        },
        magnitude: parse_channels(&args.channels)?,
        fusion: !args.no_fusion,
        reorder: !args.no_reorder,
    };
    let compiled = compile_program(&model.name, &mut model.module, &opts)?;
    let (report, memory) = (&compiled.report, &compiled.memory);
    if args.emit == "mir" {
        out.print(&model.module.to_string())?;
    }
    // The emitters print the Program the report describes (lowered once).
    let program = || {
        compiled.program.as_ref().ok_or_else(|| {
            format!(
                "error: --emit {}: the training step did not lower: {}",
                args.emit,
                report.program_error.as_deref().unwrap_or("unknown reason")
            )
        })
    };
    if args.emit == "program" {
        let text = mite::ir::program::print_program(program()?);
        match &args.output {
            Some(path) => write_file(path, text.as_bytes())?,
            None => out.print(&text)?,
        }
    }
    if let (true, Some(dir)) = (args.emit == "rust", &args.output) {
        let options = mite::rustgen::RustOptions {
            learning_rate: 0.01,
            training: format!(
                "scheme `{}`, SGD with QAS at learning rate 0.01 (the `plain` recipe)",
                args.scheme
            ),
            ..Default::default()
        };
        let (files, bytes) = mite::compile::emit_rust(program()?, dir, &options)?;
        note(&format!(
            "wrote a no_std Rust crate to {} ({files} files, {bytes} bytes); self-test: cd {} && cargo run --release --example selftest\n",
            dir.display(),
            dir.display()
        ));
    }
    if let (true, Some(dir)) = (args.emit == "c", &args.output) {
        let description = format!(
            "model `{}`, scheme `{}`, SGD with QAS, learning rate {}",
            model.name,
            args.scheme,
            mite::cgen::emit::DEFAULT_LR
        );
        let data = match &args.selftest_data {
            Some(d) => Some(mite::compile::SelftestData {
                dir: d.clone(),
                split: "train".into(),
                normalization: mite::data::Normalization::parse(&args.normalize)
                    .map_err(|e| format!("error: --normalize: {e}"))?,
                count: usize::from(args.selftest_images),
            }),
            None => None,
        };
        let (files, bytes) =
            mite::compile::emit_c(program()?, &model.module, dir, &description, data.as_ref())?;
        note(&format!(
            "wrote a C project to {} ({files} files, {bytes} bytes); self-test: make -C {} run-host\n",
            dir.display(),
            dir.display()
        ));
    }
    note(&format!(
        "{}: scheme {} trains {} tensors, analytic extra memory {:.1} KB; training step: {} backward ops, {} updates\n",
        report.model,
        report.scheme.name,
        report.scheme.trainable.len(),
        report.scheme.analytic_extra_bytes as f64 / 1024.0,
        report.training_step.backward_ops,
        report.training_step.optimizer_ops
    ));
    if !report.fusion.streamed_blocks.is_empty() {
        note(&format!(
            "streamed {} frozen bottlenecks ({}), {:.1} KB of intermediates not materialised\n",
            report.fusion.streamed_blocks.len(),
            report.fusion.streamed_blocks.join(", "),
            report.fusion.bytes_saved as f64 / 1024.0
        ));
    }
    if !report.fusion.chained_blocks.is_empty() {
        note(&format!(
            "streamed the output of {} of them into the next block ({})\n",
            report.fusion.chained_blocks.len(),
            report.fusion.chained_blocks.join(", ")
        ));
    }
    out.print(&report.memory_table())?;
    out.print(&report.schedule_and_timings())?;
    let timeline =
        Timeline::from_report(format!("{} {}", report.model, report.scheme.name), memory);
    if args.timeline {
        out.print(&timeline.to_text())?;
    }
    if let Some(path) = &args.plot {
        let title = format!("live arena of @{} per op", memory.function);
        write_file(path, to_svg(&[timeline], &title).as_bytes())?;
    }
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| format!("error: {e}"))?;
        write_file(path, (json + "\n").as_bytes())?;
    }
    check_budgets(report, memory, &model.module, &budgets)
}

fn run_search(args: SearchArgs, out: &mut Stdout) -> Result<(), String> {
    use mite::search::contrib::{accuracies, analyse, Candidate};
    use mite::search::evolve::{Contributions, SearchSpace};
    use mite::train::scheme::{layers, Ratio, Role, Scheme};
    use mite::train::{schedule::Schedule, Precision, TrainOptions};
    let mut inputs = model_inputs(&args.model);
    inputs.extend(split_inputs(&args.data, &args.split));
    inputs.extend(split_inputs(&args.data, &args.eval_split));
    let outputs: Vec<(&str, &std::path::Path)> = [
        ("--contributions", Some(args.contributions.as_path())),
        ("--write-scheme", args.write_scheme.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, p)| Some((flag, p?)))
    .collect();
    check_paths(&inputs, &outputs)?;
    let budget =
        mite::search::parse_budget(&args.budget).map_err(|e| format!("error: --budget: {e}"))?;
    let list = |text: &str, what: &str| -> Result<Vec<usize>, String> {
        text.split(',')
            .map(|t| {
                t.trim().parse().map_err(|_| {
                    format!("error: {what}: expected numbers separated by commas, found `{t}`")
                })
            })
            .collect()
    };
    let ratios: Vec<Ratio> = args
        .ratios
        .split(',')
        .map(|t| Ratio::parse(t).map_err(|e| format!("error: --ratios: {e}")))
        .collect::<Result<_, _>>()?;
    let model = mite::model::load_model(&args.model)?;
    let all = layers(&model.module);
    let convs = all
        .iter()
        .filter(|l| matches!(l.role, Role::Backbone(_)))
        .count();
    let bias_candidates = match &args.bias_candidates {
        Some(t) => list(t, "--bias-candidates")?,
        None => [4, 8, 16, 24, 32]
            .into_iter()
            .filter(|&k| k <= convs)
            .collect(),
    };
    let weight_layers = match &args.layers {
        Some(t) => list(t, "--layers")?,
        None => (convs / 2..convs).filter(|i| i % 3 == 0).collect(),
    };
    for &i in &weight_layers {
        if i >= convs {
            return Err(format!(
                "error: --layers: index {i} is out of range (the model has {convs} backbone convs)"
            ));
        }
    }
    if let Some(&k) = bias_candidates.iter().find(|&&k| k > convs) {
        return Err(format!(
            "error: --bias-candidates: {k} is more than the model's {convs} backbone convs"
        ));
    }
    let mut candidates = vec![Candidate::Baseline];
    candidates.extend(bias_candidates.iter().map(|&k| Candidate::Bias(k)));
    for &index in &weight_layers {
        candidates.extend(
            ratios
                .iter()
                .map(|&ratio| Candidate::Weight { index, ratio }),
        );
    }
    let train_data =
        mite::data::Dataset::load(&args.data, &args.split).map_err(|e| format!("error: {e}"))?;
    let eval_data = mite::data::Dataset::load(&args.data, &args.eval_split)
        .map_err(|e| format!("error: {e}"))?;
    let opts = TrainOptions {
        steps: args.steps,
        lr: args.lr,
        schedule: Schedule::parse("constant").map_err(|e| format!("error: {e}"))?,
        scheme: Scheme::Classifier,
        precision: Precision::Int8,
        classes: args.classes,
        fp32_head: false,
        seed: args.seed,
        config: mite::passes::passes::TrainConfig {
            lr_scale_bias: 1.0,
            ..Default::default()
        },
        normalization: mite::data::Normalization::parse("127.5,127.5")
            .map_err(|e| format!("error: {e}"))?,
        rounding: mite::interp::quant::Rounding::Double,
        train_limit: args.limit,
        magnitude: false,
    };
    let settings = format!(
        "model={} data={} split={} eval={}:{:?} steps={} limit={:?} lr={} classes={:?} seed={}",
        model.name,
        args.data.display(),
        args.split,
        args.eval_split,
        args.eval_limit,
        args.steps,
        args.limit,
        args.lr,
        args.classes,
        args.seed
    );
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let records = analyse(
        &model.module,
        &candidates,
        &opts,
        &train_data,
        (&eval_data, args.eval_limit),
        &args.contributions,
        &settings,
        jobs,
        |done, total, key| {
            let width = 30;
            let filled = done * width / total.max(1);
            eprint!(
                "\rcontributions [{}{}] {done}/{total} {key:<20}",
                "#".repeat(filled),
                ".".repeat(width - filled)
            );
        },
    )?;
    eprintln!();
    let acc = accuracies(&records);
    let baseline = acc.get("classifier").copied().unwrap_or(0.0);
    let contributions = Contributions {
        bias: bias_candidates
            .iter()
            .map(|&k| (k, acc[&Candidate::Bias(k).key()] - baseline))
            .collect(),
        weights: weight_layers
            .iter()
            .map(|&index| {
                let r = ratios
                    .iter()
                    .map(|&ratio| {
                        (
                            ratio,
                            acc[&Candidate::Weight { index, ratio }.key()] - baseline,
                        )
                    })
                    .collect();
                (index, r)
            })
            .collect(),
    };
    out.print(&(format!("classifier-only accuracy {:.2} %", 100.0 * baseline) + "\n"))?;
    out.print("contributions (Δ top-1 over classifier-only, percentage points):\n")?;
    for (k, d) in &contributions.bias {
        out.print(&(format!("  bias:{k:<3} {:+.2}", 100.0 * d) + "\n"))?;
    }
    for (i, r) in &contributions.weights {
        let cells: Vec<String> = r
            .iter()
            .map(|(r, d)| format!("{r}: {:+.2}", 100.0 * d))
            .collect();
        out.print(&(format!("  weight {i:<3} {}", cells.join("  ")) + "\n"))?;
    }
    let mut space = SearchSpace::new(&all, contributions);
    let minimum = space.minimum_bytes()?;
    if minimum > budget {
        return Err(format!(
            "error: --budget: no scheme fits {budget} bytes; the smallest (classifier only) needs {minimum} bytes"
        ));
    }
    let start = std::time::Instant::now();
    let evo = space.evolutionary_search(budget, args.evaluations, args.seed)?;
    let evo_time = start.elapsed();
    let rnd = space.random_search(budget, args.evaluations, args.seed)?;
    let (Some(evo), Some(rnd)) = (evo, rnd) else {
        return Err(format!(
            "error: --budget: no scheme within {budget} bytes was found"
        ));
    };
    let show = |f: &mite::search::evolve::Found| {
        let w: Vec<String> = f
            .scheme
            .weights
            .iter()
            .map(|w| format!("{}×{}", w.layer, w.ratio))
            .collect();
        format!(
            "score {:+.2} pp, {:.1} KB, n_bias {}, weights [{}]",
            100.0 * f.score,
            f.bytes as f64 / 1024.0,
            f.scheme.n_bias,
            w.join(", ")
        )
    };
    out.print(&format!(
        "evolutionary search ({} evaluations, {:.2} s): {}\n",
        evo.evaluations,
        evo_time.as_secs_f64(),
        show(&evo)
    ))?;
    out.print(&format!(
        "random search ({} evaluations): {}\n",
        rnd.evaluations,
        show(&rnd)
    ))?;
    if let Some(path) = &args.write_scheme {
        let mut toml = format!(
            "name = \"search-{}\"\nbias = {}\n",
            args.budget, evo.scheme.n_bias
        );
        for w in &evo.scheme.weights {
            toml += &format!(
                "\n[[weight]]\nlayer = {}\nratio = \"{}\"\n",
                w.layer, w.ratio
            );
        }
        write_file(path, toml.as_bytes())?;
    }
    Ok(())
}

fn parse_rounding(text: &str) -> Result<mite::interp::quant::Rounding, String> {
    use mite::interp::quant::Rounding;
    match text {
        "double" => Ok(Rounding::Double),
        "single" => Ok(Rounding::Single),
        "float" => Ok(Rounding::FloatScale),
        "onnxruntime" => Ok(Rounding::OnnxRuntime),
        other => Err(format!(
            "error: --rounding: expected double, single, float or onnxruntime, found `{other}`"
        )),
    }
}

fn run_eval(args: EvalArgs, out: &mut Stdout) -> Result<(), String> {
    let mut inputs = model_inputs(&args.model);
    inputs.extend(split_inputs(&args.data, &args.split));
    let outputs: Vec<(&str, &std::path::Path)> = [
        ("--dump-logits", args.dump_logits.as_deref()),
        ("--report-json", args.report_json.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, p)| Some((flag, p?)))
    .collect();
    check_paths(&inputs, &outputs)?;
    let norm = mite::data::Normalization::parse(&args.normalize)
        .map_err(|e| format!("error: --normalize: {e}"))?;
    let rounding = parse_rounding(&args.rounding)?;
    let model = mite::model::load_model(&args.model)?;
    let data =
        mite::data::Dataset::load(&args.data, &args.split).map_err(|e| format!("error: {e}"))?;
    let (report, logits) = mite::eval::evaluate(
        &model.module,
        "forward",
        &data,
        norm,
        args.limit,
        rounding,
        |done, total| {
            if done % 10 == 0 || done == total {
                note(&format!("\r{done}/{total} images"));
            }
        },
    )?;
    note("\n");
    out.print(&format!(
        "{}: {} / {} correct, top-1 accuracy {:.2} % (median {:.1} ms per image)\n",
        model.name,
        report.correct,
        report.n,
        100.0 * report.accuracy,
        report.median_ms_per_image
    ))?;
    if let Some(path) = &args.dump_logits {
        let array = mite::data::NpyArray {
            shape: vec![report.n, logits.classes],
            data: mite::data::NpyData::F32(logits.values),
        };
        write_file(path, &array.to_bytes())?;
    }
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| format!("error: {e}"))?;
        write_file(path, (json + "\n").as_bytes())?;
    }
    Ok(())
}

fn run_train(args: TrainArgs, out: &mut Stdout) -> Result<(), String> {
    use mite::train::{schedule::Schedule, scheme::Scheme, Precision, TrainOptions};
    let mut inputs = model_inputs(&args.model);
    inputs.extend(split_inputs(&args.data, &args.split));
    if let Some(split) = &args.eval_split {
        inputs.extend(split_inputs(&args.data, split));
    }
    let outputs: Vec<(&str, &std::path::Path)> = [
        ("--save-model", args.save_model.as_deref()),
        ("--report-json", args.report_json.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, p)| Some((flag, p?)))
    .collect();
    check_paths(&inputs, &outputs)?;
    let normalization = mite::data::Normalization::parse(&args.normalize)
        .map_err(|e| format!("error: --normalize: {e}"))?;
    let precision = match args.precision.as_str() {
        "int8" => Precision::Int8,
        "fp32" => Precision::Fp32,
        other => {
            return Err(format!(
                "error: --precision: expected int8 or fp32, found `{other}`"
            ))
        }
    };
    let qas = match args.qas.as_str() {
        "on" => true,
        "off" => false,
        other => return Err(format!("error: --qas: expected on or off, found `{other}`")),
    };
    let scheme = Scheme::parse(&args.scheme).map_err(|e| format!("error: --scheme: {e}"))?;
    let schedule = Schedule::parse(&args.lr_schedule).map_err(|e| format!("error: {e}"))?;
    let rounding = parse_rounding(&args.rounding)?;
    let mut model = mite::model::load_model(&args.model)?;
    if let Some(dir) = &args.calibrate {
        let source = args.calibration.source(dir.clone(), normalization)?;
        mite::quantize::calibrate_and_quantize(&mut model.module, &source)?;
        // The trained weights are written as a new QDQ model, not into the float original.
        model.onnx = None;
    }
    let save_qdq = args.calibrate.is_some();
    if args.save_model.is_some() && model.onnx.is_none() && !save_qdq {
        return Err(
            "error: --save-model needs an ONNX model to write the trained weights into".into(),
        );
    }
    if args.save_model.is_some() && (args.fp32_head || precision == Precision::Fp32) {
        return Err(
            "error: --save-model writes the weights back into the original ONNX tensors; it cannot \
             yet express float layers in an int8 model (--fp32-head, --precision fp32)"
                .into(),
        );
    }
    let train =
        mite::data::Dataset::load(&args.data, &args.split).map_err(|e| format!("error: {e}"))?;
    let eval = match &args.eval_split {
        Some(split) => {
            Some(mite::data::Dataset::load(&args.data, split).map_err(|e| format!("error: {e}"))?)
        }
        None => None,
    };
    let images = args.limit.map_or(train.len, |l| l.min(train.len));
    let steps = mite::train::checks::steps(args.steps, args.epochs, images, MAX_STEPS)?;
    mite::train::checks::accumulate(args.accumulate, steps)?;
    let recipe =
        mite::train::Recipe::parse(&args.recipe).map_err(|e| format!("error: --recipe: {e}"))?;
    let magnitude = parse_channels(&args.channels)?;
    if magnitude && args.save_model.is_some() {
        return Err(
            "error: --channels magnitude permutes channels of frozen layers too, which \
             --save-model cannot yet write back into the original ONNX tensors; use --channels first"
                .into(),
        );
    }
    let config = mite::passes::passes::TrainConfig {
        lr_scale_bias: args.lr_scale_bias.unwrap_or(recipe.lr_scale_bias()),
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        qas,
        stochastic: args.stochastic_rounding,
        accumulate: args.accumulate,
        ..Default::default()
    };
    let opts = TrainOptions {
        steps,
        lr: args.lr.unwrap_or(recipe.lr()),
        schedule,
        scheme,
        precision,
        classes: args.classes,
        fp32_head: args.fp32_head,
        seed: args.seed,
        config,
        normalization,
        rounding,
        train_limit: args.limit,
        magnitude,
    };
    let start = std::time::Instant::now();
    let mut recent = Vec::new();
    let report = mite::train::train(
        &mut model.module,
        &opts,
        &train,
        eval.as_ref().map(|d| (d, args.eval_limit)),
        |step, total, loss| {
            recent.push(loss);
            if recent.len() > 50 {
                recent.remove(0);
            }
            if step % 10 == 0 || step == total {
                let mean = recent.iter().sum::<f32>() / recent.len() as f32;
                let rate = step as f64 / start.elapsed().as_secs_f64().max(1e-9);
                note(&format!(
                    "\rstep {step}/{total}  loss {mean:.4} (last 50)  {rate:.1} steps/s   "
                ));
            }
        },
    )?;
    note("\n");
    out.print(&format!(
        "{}: {} steps, train loss {:.4} -> {:.4}, {:.1} steps/s{}\n",
        model.name,
        report.steps,
        report.initial_train_loss,
        report.final_train_loss,
        report.steps_per_second,
        report
            .eval
            .as_ref()
            .map(|e| format!(
                ", eval top-1 {:.2} % ({} / {})",
                100.0 * e.accuracy,
                e.correct,
                e.n
            ))
            .unwrap_or_default()
    ))?;
    if let (Some(path), true) = (&args.save_model, save_qdq) {
        let written = mite::onnx::write_qdq(&model.module, "forward")
            .map_err(|e| format!("error: writing {}: {e}", path.display()))?;
        write_file(path, &written.to_bytes())?;
    }
    if let (Some(path), Some(onnx)) = (&args.save_model, &model.onnx) {
        let trained =
            mite::onnx::export_weights(onnx, &model.module).map_err(|e| format!("error: {e}"))?;
        write_file(path, &trained.to_bytes())?;
    }
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| format!("error: {e}"))?;
        write_file(path, (json + "\n").as_bytes())?;
    }
    Ok(())
}

fn run_quantize(args: QuantizeArgs, out: &mut Stdout) -> Result<(), String> {
    check_paths(&model_inputs(&args.model), &[("-o", &args.output)])?;
    let normalization = mite::data::Normalization::parse(&args.normalize)
        .map_err(|e| format!("error: --normalize: {e}"))?;
    let source = args
        .calibration
        .source(args.calibrate.clone(), normalization)?;
    let mut model = mite::model::load_model(&args.model)?;
    let stats = mite::quantize::calibrate_and_quantize(&mut model.module, &source)?;
    if args.stats {
        for (name, n) in stats.iter() {
            note(&format!("quantize.{name} = {n}\n"));
        }
    }
    let written = mite::onnx::write_qdq(&model.module, "forward")
        .map_err(|e| format!("error: writing {}: {e}", args.output.display()))?;
    write_file(&args.output, &written.to_bytes())?;
    out.print(
        &(format!(
            "{}: quantized ({} ops, {} parameters) -> {}",
            model.name,
            stats.get("ops-quantized"),
            stats.get("params-quantized"),
            args.output.display()
        ) + "\n"),
    )?;
    Ok(())
}
