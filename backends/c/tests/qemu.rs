//! The Cortex-M platform under QEMU: the kernel harness, with seeded cases and mite-kernels'
//! outputs compiled in, is cross-compiled for Cortex-M4 (`mps2-an386`) and Cortex-M7
//! (`mps2-an500`) against the runtime's startup code and 256 KB / 1 MB linker script, run with
//! semihosting and `-icount shift=0`, and must print `mite-selftest: ok` and exit 0. An image
//! whose static data exceeds 256 KB SRAM, or whose constants exceed 1 MB flash, must fail to
//! link.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{cases, check_build, harness_sources, temp_dir};
use mite_c::runtime;
use mite_c::toolchain::{self, Build, CommandLine, Target};

/// The Arm compiler and QEMU, or `None` (skipped with a message; failing under
/// MITE_REQUIRE_TOOLS=1).
fn tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let cc = mite_test_support::tool(test, &toolchain::arm_cc().to_string_lossy())?;
    let qemu = mite_test_support::tool(test, &toolchain::qemu().to_string_lossy())?;
    Some((cc, qemu))
}

/// A C array definition of `bytes` (string literals longer than 4095 bytes are not C99).
fn c_bytes(name: &str, bytes: &[u8]) -> String {
    let mut s = format!("const char {name}[] = {{");
    for (i, b) in bytes.iter().enumerate() {
        if i % 24 == 0 {
            s.push_str("\n    ");
        }
        let _ = write!(s, "{b},");
    }
    let _ = write!(
        s,
        "\n    0}};\nconst unsigned long {name}_len = {};\n",
        bytes.len()
    );
    s
}

/// Writes the platform files and `cases.c` into `dir`; returns the platform directory.
fn write_platform(dir: &Path) -> PathBuf {
    let arm = dir.join("arm");
    runtime::write_files(&arm, runtime::ARM_FILES).expect("write platform");
    arm
}

fn arm_build(
    cc: &Path,
    target: Target,
    dir: &Path,
    arm: &Path,
    extra_sources: Vec<PathBuf>,
    name: &str,
) -> (CommandLine, toolchain::RunOutput, PathBuf) {
    let (runtime_dir, harness_dir) = common::dirs();
    let mut sources = extra_sources;
    sources.push(arm.join("startup.c"));
    sources.push(arm.join("semihost.c"));
    let build = Build {
        sources,
        include_dirs: vec![runtime_dir, harness_dir, arm.to_path_buf()],
        extra_flags: vec![],
        output: dir.join(format!("{name}-{}.elf", target.name())),
    };
    let line = toolchain::arm_compile(cc, target, &build, &arm.join(runtime::LINKER_SCRIPT));
    let out = line
        .run(b"", Duration::from_secs(300))
        .expect("compiler runs");
    (line, out, build.output)
}

fn size_of(cc: &Path, elf: &Path) -> toolchain::ImageSize {
    let size = cc
        .to_string_lossy()
        .strip_suffix("gcc")
        .map(|p| format!("{p}size"))
        .unwrap_or_else(|| "arm-none-eabi-size".to_owned());
    let out = CommandLine::new(size)
        .paths([elf])
        .run(b"", Duration::from_secs(30))
        .expect("size runs");
    toolchain::parse_size(&out.stdout).expect("size output")
}

#[test]
fn kernel_selftest_runs_bit_exact_on_cortex_m4_and_m7() {
    let Some((cc, qemu)) = tools("qemu-selftest") else {
        return;
    };
    // Two seeded case sets (each as much as the image's flash holds): the Arm DSP path of the
    // int8 kernels runs only here.
    for seed in [0x5EED_0003, 0x5EED_0005] {
        kernel_selftest(&cc, &qemu, seed);
    }
}

/// One kernel self-test image per core with the cases of `seed`, run in QEMU.
fn kernel_selftest(cc: &Path, qemu: &Path, seed: u64) {
    let dir = temp_dir(&format!("qemu-selftest-{seed:x}"));
    let arm = write_platform(&dir);
    let cases = cases(seed, 12);
    let input: String = cases.iter().map(|c| c.input.as_str()).collect();
    let expected: String = cases.iter().map(|c| c.expected.as_str()).collect();
    let cases_c = dir.join("cases.c");
    std::fs::write(
        &cases_c,
        c_bytes("mite_cases", input.as_bytes()) + &c_bytes("mite_expected", expected.as_bytes()),
    )
    .unwrap();
    for target in [Target::CortexM4, Target::CortexM7] {
        let mut sources = harness_sources(&["harness.c", "embedded_main.c"]);
        sources.push(cases_c.clone());
        let (line, out, elf) = arm_build(cc, target, &dir, &arm, sources, "selftest");
        check_build(&line, &out);
        let size = size_of(cc, &elf);
        assert!(size.text + size.data <= runtime::FLASH_BYTES);
        assert!(size.data + size.bss <= runtime::RAM_BYTES);
        let run = toolchain::qemu_run(qemu, target, &elf).unwrap();
        let out = run.run(b"", Duration::from_secs(120)).expect("qemu runs");
        let report = toolchain::parse_selftest(&out.stdout);
        eprintln!(
            "qemu {}: status {:?}, {} ({:?} instructions), text {} data {} bss {}, {:.1} s",
            target.name(),
            out.status,
            report.detail,
            report.instructions,
            size.text,
            size.data,
            size.bss,
            out.elapsed.as_secs_f64()
        );
        assert_eq!(
            (out.status, report.ok),
            (Some(0), Some(true)),
            "{run}\nstdout:\n{}\nstderr:\n{}",
            out.stdout,
            out.stderr
        );
        assert!(report.detail.starts_with(&format!("{} cases", cases.len())));
        assert!(report.instructions.is_some_and(|n| n > 10_000));
    }
}

#[test]
fn selftest_failure_is_reported_with_a_nonzero_status() {
    let Some((cc, qemu)) = tools("qemu-selftest-fail") else {
        return;
    };
    let dir = temp_dir("qemu-selftest-fail");
    let arm = write_platform(&dir);
    let cases = cases(0x5EED_0004, 1);
    let input: String = cases.iter().map(|c| c.input.as_str()).collect();
    // Expect something else than mite-kernels' output for the first case.
    let expected: String = cases.iter().map(|c| c.expected.as_str()).collect();
    let expected = expected.replacen("ok\n", "ok\n 999", 1);
    let cases_c = dir.join("cases.c");
    std::fs::write(
        &cases_c,
        c_bytes("mite_cases", input.as_bytes()) + &c_bytes("mite_expected", expected.as_bytes()),
    )
    .unwrap();
    let mut sources = harness_sources(&["harness.c", "embedded_main.c"]);
    sources.push(cases_c);
    let (line, out, elf) = arm_build(&cc, Target::CortexM4, &dir, &arm, sources, "fail");
    check_build(&line, &out);
    let out = toolchain::qemu_run(&qemu, Target::CortexM4, &elf)
        .unwrap()
        .run(b"", Duration::from_secs(60))
        .expect("qemu runs");
    let report = toolchain::parse_selftest(&out.stdout);
    assert_eq!(report.ok, Some(false), "{}", out.stdout);
    assert_eq!(out.status, Some(1));
}

#[test]
fn images_over_256_kb_sram_or_1_mb_flash_fail_to_link() {
    let Some((cc, _)) = tools("qemu-link-limits") else {
        return;
    };
    let dir = temp_dir("qemu-link-limits");
    let arm = write_platform(&dir);
    let program = |name: &str, decl: &str, body: &str| {
        let path = dir.join(format!("{name}.c"));
        std::fs::write(
            &path,
            format!(
                "#include \"mite_platform.h\"\n{decl}\nint main(void) {{\n    {body}\n    \
                 mite_platform_write(\"mite-selftest: ok\\n\");\n    return 0;\n}}\n"
            ),
        )
        .unwrap();
        path
    };
    // Fits: 200 KB of SRAM and 900 KB of flash.
    let fits = program(
        "fits",
        "static volatile unsigned char ram[200u * 1024u];\n\
         static const unsigned char rom[900u * 1024u] = {1};\n\
         static volatile unsigned idx;",
        "ram[idx] = rom[idx];",
    );
    let (line, out, _) = arm_build(&cc, Target::CortexM4, &dir, &arm, vec![fits], "fits");
    check_build(&line, &out);
    for (name, decl, body, region) in [
        (
            "ram",
            "static volatile unsigned char ram[250u * 1024u];\n\
             static volatile unsigned idx;",
            "ram[idx] = 2;",
            "RAM",
        ),
        (
            "flash",
            "static const unsigned char rom[1030u * 1024u] = {1};\n\
             static volatile unsigned char sink;\n\
             static volatile unsigned idx;",
            "sink = rom[idx];",
            "FLASH",
        ),
    ] {
        let src = program(name, decl, body);
        let (line, out, _) = arm_build(&cc, Target::CortexM7, &dir, &arm, vec![src], name);
        assert_ne!(out.status, Some(0), "{line} linked an oversized image");
        assert!(
            out.stderr
                .contains(&format!("region `{region}' overflowed")),
            "{line}:\n{}",
            out.stderr
        );
    }
}
