//! The `mite` command line.

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use mite::driver::{opt, OptRequest};
use mite::ir::text::PrintOptions;
use mite::passes::{PassManagerOptions, PassRegistry};
use std::io::Read;
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
enum Command {
    /// Parse, verify and transform an IR file with a pass pipeline; print the result on stdout.
    Opt(OptArgs),
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

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Opt(args) => run_opt(args),
        Command::Passes => {
            print!("{}", PassRegistry::with_builtin());
            Ok(())
        }
        Command::Ops => {
            for name in mite::ir::ops::BUILTIN_OP_NAMES {
                let attrs = mite::ir::Op::attr_names(name);
                println!("{name:28} {}", attrs.join(", "));
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
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

fn run_opt(args: OptArgs) -> Result<(), String> {
    let (source, file_name) = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("error: reading stdin: {e}"))?;
        (s, "<stdin>".to_string())
    } else {
        let s = std::fs::read_to_string(&args.file)
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
    eprint!("{}", output.dumps);
    if args.stats {
        eprint!("{}", output.report);
    }
    print!("{}", output.ir);
    Ok(())
}
