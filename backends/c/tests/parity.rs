//! The C kernels against mite-kernels, bit for bit: the harness (`tests/harness`, built with
//! gcc `-std=c99 -Wall -Wextra -Werror -pedantic -O2 -ffp-contract=off`) runs seeded random
//! cases of every kernel — valid ones over many shapes, strides, paddings, dilations, groups,
//! per-channel scales and all roundings, and invalid ones (wrong lengths, short scratch, bad
//! parameters) whose errors must agree too — and its output must equal what the Rust kernels
//! give. A second build with AddressSanitizer and UndefinedBehaviorSanitizer must run clean.

mod common;

use std::time::Duration;

use common::{cases, check_build, compare, harness_sources, temp_dir, Case};
use mite_c::toolchain::{self, Build, CommandLine};

fn build_harness(test: &str, sanitize: bool) -> Option<std::path::PathBuf> {
    let cc = mite_test_support::tool(test, &toolchain::host_cc().to_string_lossy())?;
    let dir = temp_dir(test);
    let (runtime, harness) = common::dirs();
    let build = Build {
        sources: harness_sources(&["harness.c", "host_main.c"]),
        include_dirs: vec![runtime, harness],
        extra_flags: vec![],
        output: dir.join("harness"),
    };
    let line = toolchain::host_compile(&cc, &build, sanitize);
    let out = line
        .run(b"", Duration::from_secs(300))
        .expect("compiler runs");
    check_build(&line, &out);
    Some(build.output)
}

fn run(harness: &std::path::Path, cases: &[Case]) -> toolchain::RunOutput {
    let input: String = cases.iter().map(|c| c.input.as_str()).collect();
    let out = CommandLine::new(harness)
        .run(input.as_bytes(), Duration::from_secs(300))
        .expect("harness runs");
    assert_eq!(
        out.status,
        Some(0),
        "harness failed: {}\n{}",
        out.stderr,
        out.stdout.lines().last().unwrap_or("")
    );
    out
}

#[test]
fn c_kernels_are_bit_exact_with_mite_kernels() {
    let Some(harness) = build_harness("parity", false) else {
        return;
    };
    let cases = cases(0x5EED_0001, 400);
    let out = run(&harness, &cases);
    if let Err(report) = compare(&cases, &out.stdout) {
        panic!("{report}");
    }
    let errors = cases
        .iter()
        .filter(|c| c.expected.starts_with("err"))
        .count();
    eprintln!(
        "parity: {} cases ({} kernels' error paths: {errors}) bit-exact",
        cases.len(),
        common::generators().len()
    );
    // The cases exercise both the kernels and their errors.
    assert!(
        errors > cases.len() / 20 && errors < cases.len() / 2,
        "{errors} error cases"
    );
}

#[test]
fn c_kernels_are_clean_under_asan_and_ubsan() {
    let Some(harness) = build_harness("parity-sanitizers", true) else {
        return;
    };
    let cases = cases(0x5EED_0002, 60);
    let out = run(&harness, &cases);
    assert!(
        !out.stderr.contains("runtime error") && !out.stderr.contains("Sanitizer"),
        "sanitizer report:\n{}",
        out.stderr
    );
    if let Err(report) = compare(&cases, &out.stdout) {
        panic!("{report}");
    }
}

#[test]
fn a_broken_kernel_is_caught() {
    // The comparison can fail: flip one output bit of a real case.
    let cases = cases(7, 1);
    let c = &cases[0];
    let mut wrong = c.expected.clone();
    let last = wrong.pop();
    assert_eq!(last, Some('\n'));
    wrong.push_str(" 1\n");
    assert!(compare(&cases[..1], &wrong).is_err());
    assert!(compare(&cases[..1], &c.expected).is_ok());
}
