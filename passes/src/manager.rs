//! Running a pipeline of passes with instrumentation.

use crate::pass::{Pass, PassError};
use crate::pipeline::PipelineParseError;
use crate::registry::PassRegistry;
use crate::statistics::Statistics;
use mite_ir::verify::{verify_module, VerifyErrors};
use mite_ir::{print_module, Function, Module, PrintOptions};
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How a [`PassManager`] instruments the passes it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassManagerOptions {
    /// Verify the module before the pipeline and after each pass
    /// ([`mite_ir::verify::verify_module`]). Default: on, in every build (as MLIR's pass
    /// manager): verification is cheap next to compilation; turn it off explicitly to save it.
    pub verify_each: bool,
    /// Dump the IR before each pass with one of these names.
    pub print_ir_before: BTreeSet<String>,
    /// Dump the IR after each pass with one of these names.
    pub print_ir_after: BTreeSet<String>,
    /// Dump the IR after every pass.
    pub print_ir_after_all: bool,
    /// Run up to and including the first pass of this name, then stop.
    pub stop_after: Option<String>,
    /// How IR dumps are printed.
    pub print_options: PrintOptions,
}

impl Default for PassManagerOptions {
    fn default() -> Self {
        PassManagerOptions {
            verify_each: true,
            print_ir_before: BTreeSet::new(),
            print_ir_after: BTreeSet::new(),
            print_ir_after_all: false,
            stop_after: None,
            print_options: PrintOptions::default(),
        }
    }
}

/// Why running a pipeline failed.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// An instrumentation option names a pass that is not in the pipeline.
    #[error("{option}: pass `{name}` is not in the pipeline (passes: {pipeline})")]
    NotInPipeline {
        /// The option (`stop-after`, `print-ir-before`, `print-ir-after`).
        option: &'static str,
        /// The name given.
        name: String,
        /// The pipeline's passes, comma-separated.
        pipeline: String,
    },
    /// The module did not verify before the first pass ran.
    #[error("the module is invalid before the pipeline runs:\n{errors}")]
    InvalidInput {
        /// The verifier's errors.
        errors: VerifyErrors,
    },
    /// A pass returned an error.
    #[error("pass `{pass}` returned an error: {error}")]
    PassFailed {
        /// The pass.
        pass: String,
        /// Its error.
        error: PassError,
    },
    /// The module did not verify after a pass.
    #[error("the module is invalid after pass `{pass}`:\n{errors}")]
    Verification {
        /// The pass that ran last.
        pass: String,
        /// The verifier's errors.
        errors: VerifyErrors,
    },
    /// An IR dump could not be written to the sink.
    #[error("writing the IR dump {when} pass `{pass}`: {error}")]
    Dump {
        /// `before` or `after`.
        when: &'static str,
        /// The pass.
        pass: String,
        /// The sink's error.
        error: io::Error,
    },
}

/// What one pass run did.
#[derive(Clone, Debug, PartialEq)]
pub struct PassRecord {
    /// The pass's name.
    pub name: String,
    /// Whether the pass reported a change.
    pub changed: bool,
    /// The counters it reported.
    pub statistics: Statistics,
    /// Wall time of [`Pass::run`] (verification and dumps excluded).
    pub duration: Duration,
}

/// What a pipeline run did, pass by pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineReport {
    /// One record per pass run, in order.
    pub passes: Vec<PassRecord>,
    /// The pass after which the pipeline stopped early (`stop_after`), if it did.
    pub stopped_after: Option<String>,
}

impl PipelineReport {
    /// Whether any pass changed the module.
    pub fn changed(&self) -> bool {
        self.passes.iter().any(|p| p.changed)
    }

    /// All counters, named `pass.counter` (summed over repeated runs of one pass), in pipeline
    /// order.
    pub fn statistics(&self) -> Statistics {
        let mut all = Statistics::new();
        for p in &self.passes {
            all.merge_prefixed(&p.name, &p.statistics);
        }
        all
    }

    /// Total wall time of the passes.
    pub fn duration(&self) -> Duration {
        self.passes.iter().map(|p| p.duration).sum()
    }
}

impl fmt::Display for PipelineReport {
    /// One line per pass (name, changed or unchanged, time), then its counters indented.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.passes {
            writeln!(
                f,
                "{} ({}, {:.3} ms)",
                p.name,
                if p.changed { "changed" } else { "unchanged" },
                p.duration.as_secs_f64() * 1e3
            )?;
            for (name, n) in p.statistics.iter() {
                writeln!(f, "  {}.{name} = {n}", p.name)?;
            }
        }
        if let Some(stop) = &self.stopped_after {
            writeln!(f, "stopped after {stop}")?;
        }
        Ok(())
    }
}

/// Runs a sequence of passes over a module, with the instrumentation of its
/// [`PassManagerOptions`].
///
/// ```
/// use mite_ir::{Builder, Module, Op, TensorType};
/// use mite_passes::{PassManager, PassRegistry};
///
/// let mut m = Module::new("m");
/// let mut b = Builder::new(&mut m, "f");
/// let x = b.arg("x", TensorType::f32(&[2]));
/// let _unused = b.op(Op::Relu {}, &[x]).unwrap();
/// b.ret(&[x]);
///
/// let mut pm = PassManager::from_pipeline(&PassRegistry::with_builtin(), "cse,dce").unwrap();
/// pm.options.print_ir_after.insert("dce".to_string());
/// let mut dump = Vec::new();
/// let report = pm.run_with_sink(&mut m, &mut dump).unwrap();
/// assert_eq!(report.statistics().get("dce.ops-removed"), 1);
/// assert!(String::from_utf8(dump).unwrap().starts_with("// -----// IR Dump After dce //----- //\n"));
/// ```
#[derive(Default)]
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    /// Instrumentation.
    pub options: PassManagerOptions,
}

impl fmt::Debug for PassManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassManager")
            .field("passes", &self.pass_names())
            .field("options", &self.options)
            .finish()
    }
}

impl PassManager {
    /// A manager running `passes` in order, with default options.
    pub fn new(passes: Vec<Box<dyn Pass>>) -> PassManager {
        PassManager {
            passes,
            options: PassManagerOptions::default(),
        }
    }

    /// A manager for a textual pipeline whose passes are looked up in `registry`.
    pub fn from_pipeline(
        registry: &PassRegistry,
        pipeline: &str,
    ) -> Result<PassManager, PipelineParseError> {
        Ok(PassManager::new(registry.parse_pipeline(pipeline)?))
    }

    /// Appends a pass to the pipeline.
    pub fn add_pass(&mut self, pass: impl Pass + 'static) -> &mut Self {
        self.passes.push(Box::new(pass));
        self
    }

    /// Appends a boxed pass to the pipeline.
    pub fn add_boxed_pass(&mut self, pass: Box<dyn Pass>) -> &mut Self {
        self.passes.push(pass);
        self
    }

    /// The names of the pipeline's passes, in order.
    pub fn pass_names(&self) -> Vec<&str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs the pipeline over `module`; IR dumps go to standard error.
    pub fn run(&mut self, module: &mut Module) -> Result<PipelineReport, PipelineError> {
        self.run_with_sink(module, &mut io::stderr())
    }

    /// Runs the pipeline over `module`; IR dumps go to `sink`, each after a header line
    /// `// -----// IR Dump After cse //----- //` (or `Before`).
    ///
    /// Checks first that the passes named by `stop_after`, `print_ir_before` and
    /// `print_ir_after` are in the pipeline, and (with `verify_each`) that the module verifies.
    /// Between passes, functions changed by a pass are compacted.
    pub fn run_with_sink(
        &mut self,
        module: &mut Module,
        sink: &mut dyn io::Write,
    ) -> Result<PipelineReport, PipelineError> {
        self.check_names()?;
        let opts = &self.options;
        if opts.verify_each {
            verify_module(module).map_err(|errors| PipelineError::InvalidInput { errors })?;
        }
        let mut report = PipelineReport::default();
        for pass in &mut self.passes {
            let name = pass.name().to_string();
            let span = tracing::info_span!("pass", name = name.as_str());
            let _entered = span.enter();
            if opts.print_ir_before.contains(&name) {
                dump(sink, "Before", &name, module, &opts.print_options)?;
            }
            let mut statistics = Statistics::new();
            let start = Instant::now();
            let changed =
                pass.run(module, &mut statistics)
                    .map_err(|error| PipelineError::PassFailed {
                        pass: name.clone(),
                        error,
                    })?;
            let duration = start.elapsed();
            tracing::debug!(changed, ?duration, "pass finished");
            if opts.print_ir_after_all || opts.print_ir_after.contains(&name) {
                dump(sink, "After", &name, module, &opts.print_options)?;
            }
            if opts.verify_each {
                verify_module(module).map_err(|errors| PipelineError::Verification {
                    pass: name.clone(),
                    errors,
                })?;
            }
            if changed {
                module.functions.iter_mut().for_each(compact_if_sound);
            }
            report.passes.push(PassRecord {
                name: name.clone(),
                changed,
                statistics,
                duration,
            });
            if opts.stop_after.as_deref() == Some(name.as_str()) {
                report.stopped_after = Some(name);
                break;
            }
        }
        Ok(report)
    }

    fn check_names(&self) -> Result<(), PipelineError> {
        let names = self.pass_names();
        let stop = self.options.stop_after.iter().map(|n| ("stop-after", n));
        let before = self.options.print_ir_before.iter();
        let after = self.options.print_ir_after.iter();
        let checks = stop
            .chain(before.map(|n| ("print-ir-before", n)))
            .chain(after.map(|n| ("print-ir-after", n)));
        for (option, name) in checks {
            if !names.contains(&name.as_str()) {
                return Err(PipelineError::NotInPipeline {
                    option,
                    name: name.clone(),
                    pipeline: names.join(", "),
                });
            }
        }
        Ok(())
    }
}

fn dump(
    sink: &mut dyn io::Write,
    when: &'static str,
    pass: &str,
    module: &Module,
    opts: &PrintOptions,
) -> Result<(), PipelineError> {
    let text = print_module(module, opts);
    write!(
        sink,
        "// -----// IR Dump {when} {pass} //----- //\n{text}\n"
    )
    .and_then(|()| sink.flush())
    .map_err(|error| PipelineError::Dump {
        when: if when == "Before" { "before" } else { "after" },
        pass: pass.to_string(),
        error,
    })
}

/// Compacts `func` unless it holds handles that compaction cannot remap (possible only when a
/// broken pass ran without verification); such a function is left as it is.
fn compact_if_sound(func: &mut Function) {
    let sound = func
        .layout()
        .iter()
        .flat_map(|&op| func.op(op).operands.iter())
        .chain(func.outputs())
        .all(|&v| func.contains_value(v));
    if sound {
        func.compact();
    }
}
