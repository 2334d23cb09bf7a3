//! IR file tests: every `tests/ir/*.mir` file runs through the same driver as `mite opt`, and its
//! output (or its diagnostics) is compared with an insta snapshot.
//!
//! Header lines at the top of each file:
//! - `// RUN: PIPELINE` — the pass pipeline (empty: parse, verify and print);
//! - `// PRINT: generic` or `// PRINT: full` — print in the generic form / with all data;
//! - `// ARGS: print-ir-after-all`, `print-ir-before=PASS`, `print-ir-after=PASS`,
//!   `stop-after=PASS` — instrumentation, space-separated.
//!
//! Files named `err_*` must fail; all others must succeed. Snapshots hold the printed IR with the
//! statistics the passes reported, or the diagnostics.

use mite::driver::{opt, OptRequest};
use mite::ir::text::PrintOptions;
use mite::passes::{PassManagerOptions, PassRegistry};
use std::path::Path;

struct Header {
    pipeline: String,
    print: PrintOptions,
    manager: PassManagerOptions,
}

fn header(source: &str, path: &Path) -> Header {
    let mut pipeline = None;
    let mut print = PrintOptions::default();
    let mut manager = PassManagerOptions {
        verify_each: true,
        ..PassManagerOptions::default()
    };
    for line in source.lines().take_while(|l| l.starts_with("//")) {
        let line = line.trim_start_matches("//").trim();
        if let Some(p) = line.strip_prefix("RUN:") {
            pipeline = Some(p.trim().to_string());
        } else if let Some(p) = line.strip_prefix("PRINT:") {
            match p.trim() {
                "generic" => print.generic = true,
                "full" => print.elide_above = None,
                other => panic!("{}: unknown PRINT mode `{other}`", path.display()),
            }
        } else if let Some(args) = line.strip_prefix("ARGS:") {
            for arg in args.split_whitespace() {
                match arg.split_once('=') {
                    None if arg == "print-ir-after-all" => manager.print_ir_after_all = true,
                    Some(("print-ir-before", p)) => {
                        manager.print_ir_before.insert(p.to_string());
                    }
                    Some(("print-ir-after", p)) => {
                        manager.print_ir_after.insert(p.to_string());
                    }
                    Some(("stop-after", p)) => manager.stop_after = Some(p.to_string()),
                    _ => panic!("{}: unknown ARGS entry `{arg}`", path.display()),
                }
            }
        }
    }
    let pipeline = pipeline.unwrap_or_else(|| panic!("{}: missing `// RUN:` line", path.display()));
    manager.print_options = print.clone();
    Header {
        pipeline,
        print,
        manager,
    }
}

#[test]
fn ir_file_tests() {
    let registry = PassRegistry::with_builtin();
    let mut count = 0;
    insta::glob!("ir/*.mir", |path| {
        count += 1;
        let source = std::fs::read_to_string(path).unwrap();
        let h = header(&source, path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let request = OptRequest {
            source: &source,
            file_name: &name,
            pipeline: &h.pipeline,
            manager: h.manager,
            print: h.print,
        };
        let expect_error = name.starts_with("err_");
        let snapshot = match opt(&request, &registry) {
            Ok(out) => {
                assert!(
                    !expect_error,
                    "{name} should fail but succeeded:\n{}",
                    out.ir
                );
                let mut s = String::new();
                s.push_str(&out.dumps);
                s.push_str(&out.ir);
                let stats = out.report.statistics();
                if !stats.is_empty() {
                    s.push_str("// statistics:\n");
                    for (k, v) in stats.iter() {
                        s.push_str(&format!("//   {k} = {v}\n"));
                    }
                }
                s
            }
            Err(e) => {
                assert!(expect_error, "{name} failed unexpectedly:\n{e}");
                format!("{e}\n")
            }
        };
        insta::assert_snapshot!(snapshot);
    });
    assert!(
        count >= 40,
        "expected at least 40 IR file tests, found {count}"
    );
}
