//! What `mite opt` does, as a library call: parse IR text, verify it, run a pass pipeline with
//! instrumentation, print the result.

use mite_ir::text::{parse_module_named, print_module, ParseError, PrintOptions};
use mite_ir::{verify_module, VerifyErrors};
use mite_passes::{
    PassManager, PassManagerOptions, PassRegistry, PipelineError, PipelineParseError,
    PipelineReport,
};
use std::fmt;

/// A request to optimise one IR file.
#[derive(Clone, Debug)]
pub struct OptRequest<'a> {
    /// The IR text.
    pub source: &'a str,
    /// The file name used in diagnostics.
    pub file_name: &'a str,
    /// The textual pipeline, e.g. `canonicalize,cse,dce` (empty: parse and verify only).
    pub pipeline: &'a str,
    /// Instrumentation (print before/after, stop-after, verify-each).
    pub manager: PassManagerOptions,
    /// How to print the result.
    pub print: PrintOptions,
}

/// The result of [`opt`].
#[derive(Clone, Debug)]
pub struct OptOutput {
    /// The resulting IR text.
    pub ir: String,
    /// IR dumps requested by the instrumentation options.
    pub dumps: String,
    /// What each pass did.
    pub report: PipelineReport,
}

/// Why [`opt`] failed; displays as compiler diagnostics (`file:line:column: error: …`).
#[derive(Debug)]
pub enum OptError {
    /// The text does not parse.
    Parse(ParseError),
    /// The input does not verify.
    Verify {
        /// The file.
        file: String,
        /// Every violation.
        errors: VerifyErrors,
    },
    /// The pipeline text is malformed or names an unknown pass or option.
    Pipeline {
        /// The pipeline text.
        pipeline: String,
        /// What is wrong.
        error: PipelineParseError,
    },
    /// Running the pipeline failed (a pass error, a verifier error after a pass, an option).
    Run {
        /// The file.
        file: String,
        /// What went wrong.
        error: PipelineError,
    },
}

impl fmt::Display for OptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptError::Parse(e) => match &e.file {
                Some(file) => write!(f, "{file}:{}:{}: error: {}", e.line, e.column, e.message),
                None => write!(f, "{}:{}: error: {}", e.line, e.column, e.message),
            },
            OptError::Verify { file, errors } => {
                for (i, e) in errors.0.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    match e.line_col {
                        Some((l, c)) => {
                            write!(f, "{file}:{l}:{c}: error: {}: {}", e.location, e.message)?
                        }
                        None => write!(f, "{file}: error: {}: {}", e.location, e.message)?,
                    }
                }
                Ok(())
            }
            OptError::Pipeline { pipeline, error } => {
                write!(f, "error: in pipeline `{pipeline}`: {error}")
            }
            OptError::Run { file, error } => write!(f, "{file}: error: {error}"),
        }
    }
}

impl std::error::Error for OptError {}

/// Parses, verifies, runs the pipeline of `registry` and prints, as `mite opt` does.
pub fn opt(request: &OptRequest<'_>, registry: &PassRegistry) -> Result<OptOutput, Box<OptError>> {
    let mut module = parse_module_named(request.source, request.file_name)
        .map_err(|e| Box::new(OptError::Parse(e)))?;
    verify_module(&module).map_err(|errors| {
        Box::new(OptError::Verify {
            file: request.file_name.to_string(),
            errors,
        })
    })?;
    let passes = registry.parse_pipeline(request.pipeline).map_err(|error| {
        Box::new(OptError::Pipeline {
            pipeline: request.pipeline.to_string(),
            error,
        })
    })?;
    let mut manager = PassManager::new(passes);
    manager.options = request.manager.clone();
    let mut dumps = Vec::new();
    let report = manager
        .run_with_sink(&mut module, &mut dumps)
        .map_err(|error| {
            Box::new(OptError::Run {
                file: request.file_name.to_string(),
                error,
            })
        })?;
    Ok(OptOutput {
        ir: print_module(&module, &request.print),
        dumps: String::from_utf8_lossy(&dumps).into_owned(),
        report,
    })
}
