//! The three paper models through both backends (issues #11 / #12, "Must show"), shared by the
//! test `tests/paper_backends.rs` and the example `examples/backend_table.rs`.
//!
//! For one model and scheme: lower the training step into a Program, train it `steps` steps on
//! the same images with the Program executor (the reference), the emitted C program (host gcc,
//! Cortex-M4 and Cortex-M7 under QEMU) and the emitted Rust crate (host, thumbv7em Cortex-M4
//! under QEMU), and hold every run to the executor: the C losses bit for bit, the Rust losses
//! within 4 ulp (as `tests/rustgen.rs`), the int8/int32 parameters equal after training (the
//! C program's FNV-1a checksum of its saved image, the Rust crate's CRC-32 of its parameter
//! block, both recomputed here from the executor's parameters), the logits after training equal;
//! the device runs equal to their host runs. The C program also refuses a bad label and a NaN
//! learning rate on every target with its parameters unchanged.
//!
//! The Cortex-M images are linked with 256 KB of RAM when the Program's SRAM figure (arena,
//! trained parameters, optimizer state, entry arguments) plus the 8 KB stack fits, and then a
//! failed link is an error; otherwise the test first proves that the 256 KB link fails (C, M4),
//! then links with [`LARGE_RAM_KB`] and says so. The switch follows the Program, so it becomes
//! 256 KB as soon as the Program fits.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mite::cgen::project::{emit_project, write_project, Sample as CSample};
use mite::cgen::runtime;
use mite::cgen::toolchain::{self, Build, ImageSize, Target};
use mite::data::{Dataset, Normalization};
use mite::interp::program::ProgramExecutor;
use mite::ir::program::{Program, Storage};
use mite::ir::TensorData;
use mite::passes::lower::quantize_image;
use mite::passes::passes::{TrainConfig, UpdatePlacement};
use mite::rustgen::run::{crc32, output_hash, run_selftest, RunError, Runner, THUMB_TARGET};
use mite::rustgen::{emit_crate, param_block, write_crate, RustOptions, Sample};
use mite::train::scheme::Scheme;
use mite_test_support::{shared_dir, shared_file, tool};

/// The learning rate of every run.
pub const LR: f32 = 0.01;
/// Training images (used in turn).
pub const IMAGES: usize = 2;
/// The RAM of a Cortex-M link when the Program does not fit 256 KB.
pub const LARGE_RAM_KB: u32 = 4096;
/// The stack reserved at the top of RAM by the linker script.
pub const STACK_BYTES: u64 = 8 * 1024;

/// A paper model and its scheme.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// Short name (directories, table rows).
    pub name: &'static str,
    /// The ONNX file under `../shared/models`.
    pub file: &'static str,
    /// The zoo builder used when `../shared` is absent.
    pub zoo: &'static str,
    /// The sparse-update scheme.
    pub scheme: &'static str,
    /// The paper's latency of one training step at 216 MHz (ms).
    pub paper_ms: u32,
}

/// MbV2-w0.35 `paper:99kb`, Proxyless-w0.3 `paper:98kb`, MCUNet-5FPS `paper:99kb`.
pub const CASES: [Case; 3] = [
    Case {
        name: "mbv2",
        file: "mbv2-w0.35.onnx",
        zoo: "mbv2-w0.35",
        scheme: "paper:99kb",
        paper_ms: 373,
    },
    Case {
        name: "proxyless",
        file: "proxyless-w0.3.onnx",
        zoo: "proxyless-w0.3",
        scheme: "paper:98kb",
        paper_ms: 443,
    },
    Case {
        name: "mcunet",
        file: "mcunet-5fps.onnx",
        zoo: "mcunet-5fps",
        scheme: "paper:99kb",
        paper_ms: 546,
    },
];

/// What one target's build and run measured.
#[derive(Clone, Debug)]
pub struct Run {
    /// `text`, `data`, `bss` of the image (Cortex-M only).
    pub size: Option<ImageSize>,
    /// Instructions per training step (Cortex-M only; `-icount shift=0`).
    pub insns_per_step: Option<u64>,
    /// RAM of the link in KB (Cortex-M only).
    pub ram_kb: Option<u32>,
}

/// What one model measured.
#[derive(Clone, Debug)]
pub struct Figures {
    /// The case.
    pub case: Case,
    /// The model spec (file or zoo name).
    pub spec: String,
    /// The Program's SRAM figure (arena, parameters, state, arguments).
    pub program_sram: u64,
    /// The Program's flash figure.
    pub program_flash: u64,
    /// The executor's losses.
    pub losses: Vec<f32>,
    /// C: host, M4, M7 (`None` where the tools are missing).
    pub c: Vec<(Target, Option<Run>)>,
    /// Rust: host, thumbv7em M4.
    pub rust: Vec<(Target, Option<Run>)>,
    /// Largest difference of a Rust loss from the executor's, in ulp.
    pub rust_ulps: u64,
    /// Seconds spent.
    pub seconds: f64,
}

/// This worktree's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The model with a 10-class head and `case`'s scheme, compiled as `mite compile` does (updates
/// as soon as ready, the step reordered, frozen bottlenecks and the first stage streamed) and
/// lowered.
pub fn lowered(test: &str, case: &Case) -> (String, mite::ir::Module, Program) {
    let spec = shared_file(test, &format!("models/{}", case.file))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("zoo:{}", case.zoo));
    let mut model = mite::model::load_model(&spec).unwrap();
    let opts = mite::compile::CompileOptions {
        scheme: Scheme::parse(case.scheme).unwrap(),
        classes: Some(10),
        seed: 0,
        config: TrainConfig {
            updates: UpdatePlacement::AsSoonAsReady,
            ..TrainConfig::default()
        },
        magnitude: false,
        reorder: true,
        fusion: true,
    };
    let compiled = mite::compile::compile_program(&model.name, &mut model.module, &opts).unwrap();
    let program = compiled.program.expect("the training step lowers");
    (format!("{spec} {}", case.scheme), model.module, program)
}

/// `n` quantized training images: CIFAR-10 from `../shared` if present, else seeded synthetic
/// ones (said on stdout).
pub fn samples(test: &str, m: &mite::ir::Module, n: usize) -> Vec<Sample> {
    let [c, h, w] = mite::eval::image_input(m, "forward").unwrap();
    let cifar = shared_dir(test)
        .map(|d| d.join("datasets/cifar10"))
        .filter(|d| d.is_dir());
    let images: Vec<(Vec<f32>, i32)> = match cifar {
        Some(dir) => {
            let data = Dataset::load(&dir, "train").unwrap();
            let norm = Normalization::parse("127.5,127.5").unwrap();
            (0..n)
                .map(|i| {
                    let img = data.image(i, [h, w], norm).unwrap();
                    (img, data.label(i).unwrap() as i32 % 10)
                })
                .collect()
        }
        None => {
            println!("{test}: no ../shared CIFAR-10, training on seeded synthetic images");
            (0..n)
                .map(|i| {
                    let img = (0..c * h * w)
                        .map(|k| (((k * 7 + i * 13) % 255) as f32 - 127.5) / 127.5)
                        .collect();
                    (img, i as i32)
                })
                .collect()
        }
    };
    images
        .into_iter()
        .map(|(img, label)| Sample {
            input: quantize_image(m, "forward", &img).unwrap(),
            label,
        })
        .collect()
}

/// FNV-1a of `bytes` (what the C program's `mite_params_checksum` computes).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

/// The C program's saved image (parameters then optimizer state, in buffer order) from the
/// executor's parameters; the state is zero (the default configuration has no momentum).
fn c_param_image(program: &Program, params: &[(String, TensorData)]) -> Vec<u8> {
    let mut k = 0;
    let mut blob = Vec::new();
    for b in &program.buffers {
        match b.storage {
            Storage::Param { .. } => {
                match &params[k].1 {
                    TensorData::I8(v) => blob.extend(v.iter().map(|&x| x as u8)),
                    TensorData::I32(v) => blob.extend(v.iter().flat_map(|x| x.to_le_bytes())),
                    TensorData::F32(v) => blob.extend(v.iter().flat_map(|x| x.to_le_bytes())),
                    other => panic!("unexpected parameter data {other:?}"),
                }
                k += 1;
            }
            Storage::State { .. } => blob.extend(std::iter::repeat_n(0u8, b.bytes() as usize)),
            _ => {}
        }
    }
    blob
}

/// The C main of the check: trains, prints `loss XXXXXXXX` per step (bits), `logits ...`,
/// `params XXXXXXXX` (checksum), `insns N` per step, then refuses a bad label and a NaN
/// learning rate with the parameters unchanged, and ends `mite-selftest: ok`.
const MAIN: &str = r#"#include <math.h>
#include <string.h>
#include "mite_program.h"
#include "mite_platform.h"
#include "samples.h"

static void put_hex(uint32_t v) {
    char b[10];
    int i;
    for (i = 0; i < 8; i++) {
        unsigned d = (unsigned)((v >> (28 - 4 * i)) & 0xfu);
        b[i] = (char)(d < 10u ? '0' + (int)d : 'a' + (int)d - 10);
    }
    b[8] = '\0';
    mite_platform_write(b);
}

static void put_uint(uint64_t v) {
    char b[24];
    size_t n = sizeof b - 1;
    b[n] = '\0';
    do {
        b[--n] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u && n > 0u);
    mite_platform_write(b + n);
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void fail(const char *why) {
    mite_platform_write("mite-selftest: FAIL ");
    mite_platform_write(why);
    mite_platform_write("\n");
    mite_platform_exit(1);
}

int main(void) {
    float loss, logits[MITE_CLASSES];
    uint64_t t0, ticks = 0u;
    uint32_t sum;
    size_t i;
    mite_init();
    mite_set_lr(LR);
    for (i = 0; i < STEPS; i++) {
        mite_status st;
        t0 = mite_platform_ticks();
        st = mite_train_step(images[i % N_IMAGES], labels[i % N_IMAGES], &loss);
        ticks += mite_platform_ticks() - t0;
        if (st != MITE_OK) { fail("a training step returned an error"); }
        mite_platform_write("loss ");
        put_hex(bits(loss));
        mite_platform_write("\n");
    }
    if (mite_infer(images[0], logits) != MITE_OK) { fail("inference"); }
    mite_platform_write("logits");
    for (i = 0; i < MITE_CLASSES; i++) { mite_platform_write(" "); put_hex(bits(logits[i])); }
    sum = mite_params_checksum();
    mite_platform_write("\nparams ");
    put_hex(sum);
    mite_platform_write("\ninsns ");
    put_uint(ticks * MITE_PLATFORM_INSNS_PER_TICK / STEPS);
    mite_platform_write("\n");
    if (mite_train_step(images[0], -1, &loss) != MITE_ERR_BAD_LABEL) { fail("bad label"); }
    if (mite_params_checksum() != sum) { fail("a bad label changed the parameters"); }
    mite_set_lr((float)NAN);
    if (mite_train_step(images[0], labels[0], &loss) != MITE_ERR_NAN_UPDATE) { fail("NaN rate"); }
    if (mite_params_checksum() != sum) { fail("a NaN learning rate changed the parameters"); }
    mite_platform_write("mite-selftest: ok\n");
    mite_platform_exit(0);
    return 0;
}
"#;

fn samples_header(samples: &[Sample], steps: usize) -> String {
    let mut h = format!(
        "#define STEPS {steps}u\n#define N_IMAGES {}u\n#define LR {}\nstatic const int32_t labels[] = {{",
        samples.len(),
        mite::cgen::emit::f32_lit(LR)
    );
    for s in samples {
        let _ = write!(h, "{},", s.label);
    }
    h.push_str("};\nstatic const int8_t images[][MITE_INPUT_LEN] = {");
    for s in samples {
        h.push('{');
        for (i, v) in s.input.iter().enumerate() {
            if i % 32 == 0 {
                h.push('\n');
            }
            let _ = write!(h, "{v},");
        }
        h.push_str("},\n");
    }
    h.push_str("};\n");
    h
}

/// The lines every C run must print, from the executor.
struct Expected {
    losses: Vec<u32>,
    logits: String,
    c_params: u32,
    rust_block_crc: u32,
    rust_infer_hash: u32,
}

fn c_lines(out: &str) -> (Vec<u32>, String, Option<u32>, Option<u64>, bool) {
    let mut losses = vec![];
    let (mut logits, mut params, mut insns, mut ok) = (String::new(), None, None, false);
    for line in out.lines() {
        if let Some(h) = line.strip_prefix("loss ") {
            losses.extend(u32::from_str_radix(h.trim(), 16).ok());
        } else if line.starts_with("logits") {
            logits = line.to_owned();
        } else if let Some(h) = line.strip_prefix("params ") {
            params = u32::from_str_radix(h.trim(), 16).ok();
        } else if let Some(n) = line.strip_prefix("insns ") {
            insns = n.trim().parse().ok();
        } else if line.starts_with("mite-selftest: ok") {
            ok = true;
        }
    }
    (losses, logits, params, insns, ok)
}

fn arm_size(cc: &Path, elf: &Path) -> Option<ImageSize> {
    let size = cc
        .to_string_lossy()
        .strip_suffix("gcc")
        .map(|p| format!("{p}size"))
        .unwrap_or_else(|| "arm-none-eabi-size".to_owned());
    let out = Command::new(size).arg(elf).output().ok()?;
    toolchain::parse_size(&String::from_utf8_lossy(&out.stdout))
}

/// The RAM of a Cortex-M link for a Program whose SRAM figure is `sram` bytes.
pub fn link_ram_kb(sram: u64) -> u32 {
    if sram + STACK_BYTES <= 256 * 1024 {
        256
    } else {
        LARGE_RAM_KB
    }
}

/// Builds and runs the C program in `dir` for `target`; checks it against `want`.
fn c_run(test: &str, what: &str, dir: &Path, target: Target, want: &Expected, sram: u64) -> Run {
    let mut sources: Vec<PathBuf> = ["mite_program.c", "parity.c"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    sources.extend(
        runtime::FILES
            .iter()
            .filter(|(n, _)| n.ends_with(".c"))
            .map(|(n, _)| dir.join(n)),
    );
    let arm = dir.join("arm");
    let exe = dir.join(format!("parity-{}", target.name()));
    let mut build = Build {
        sources,
        include_dirs: vec![dir.to_path_buf(), arm.clone()],
        extra_flags: vec![],
        output: exe.clone(),
    };
    let timeout = Duration::from_secs(900);
    if target == Target::Host {
        build.sources.push(dir.join("host_platform.c"));
        let line = toolchain::host_compile(&toolchain::host_cc(), &build, false);
        let out = line.run(b"", timeout).unwrap();
        assert_eq!(out.status, Some(0), "{what}: {line}\n{}", out.stderr);
        let run = Command::new(&exe).output().unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        assert!(run.status.success(), "{what}: host C run failed:\n{stdout}");
        check_c(what, "host", &stdout, want);
        return Run {
            size: None,
            insns_per_step: None,
            ram_kb: None,
        };
    }
    let cc = toolchain::arm_cc();
    build.sources.push(arm.join("startup.c"));
    build.sources.push(arm.join("semihost.c"));
    let ram_kb = link_ram_kb(sram);
    let ld_text = std::fs::read_to_string(arm.join(runtime::LINKER_SCRIPT)).unwrap();
    let link = |kb: u32| {
        let ld = dir.join(format!("mps2-{kb}k.ld"));
        std::fs::write(
            &ld,
            ld_text.replace("LENGTH = 256K", &format!("LENGTH = {kb}K")),
        )
        .unwrap();
        let line = toolchain::arm_compile(&cc, target, &build, &ld);
        let out = line.run(b"", timeout).unwrap();
        (line, out)
    };
    if ram_kb != 256 && target == Target::CortexM4 {
        let (_, out) = link(256);
        assert_ne!(
            out.status,
            Some(0),
            "{what}: {sram} B of Program SRAM linked into 256 KB"
        );
        assert!(
            out.stderr.contains("overflowed") || out.stderr.contains("will not fit"),
            "{what}: the 256 KB link failed otherwise:\n{}",
            out.stderr
        );
        println!(
            "{test}: {what}: the Program's {sram} B of SRAM do not fit 256 KB (link error); \
             linking the Cortex-M images with {ram_kb} KB of RAM"
        );
    }
    let (line, out) = link(ram_kb);
    assert_eq!(out.status, Some(0), "{what}: {line}\n{}", out.stderr);
    let qemu = toolchain::qemu_run(&toolchain::qemu(), target, &exe).unwrap();
    let run = qemu.run(b"", timeout).unwrap();
    assert_eq!(
        run.status,
        Some(0),
        "{what}: QEMU {}:\n{}\n{}",
        target.name(),
        run.stdout,
        run.stderr
    );
    let insns = check_c(what, target.name(), &run.stdout, want);
    Run {
        size: arm_size(&cc, &exe),
        insns_per_step: insns,
        ram_kb: Some(ram_kb),
    }
}

fn check_c(what: &str, target: &str, out: &str, want: &Expected) -> Option<u64> {
    let (losses, logits, params, insns, ok) = c_lines(out);
    assert!(ok, "{what}: C {target} self-check failed:\n{out}");
    assert_eq!(
        losses, want.losses,
        "{what}: C {target} losses vs the executor's"
    );
    assert_eq!(
        logits, want.logits,
        "{what}: C {target} logits vs the executor's"
    );
    assert_eq!(
        params,
        Some(want.c_params),
        "{what}: C {target} trained parameters vs the executor's"
    );
    insns
}

/// Which targets to run.
#[derive(Clone, Copy, Debug)]
pub struct Targets {
    /// Cortex-M builds and QEMU runs (C M4 and M7, Rust thumbv7em).
    pub device: bool,
    /// The Rust crate at all.
    pub rust: bool,
}

/// Whether the Cortex-M tools are here (skips with a message, fails under
/// `MITE_REQUIRE_TOOLS=1`).
pub fn device_tools(test: &str) -> bool {
    thumb_target(test)
        && tool(test, &toolchain::arm_cc().to_string_lossy()).is_some()
        && tool(test, &toolchain::qemu().to_string_lossy()).is_some()
}

/// Whether Rust's `thumbv7em-none-eabihf` target is installed (skips with a message, fails
/// under `MITE_REQUIRE_TOOLS=1`).
pub fn thumb_target(test: &str) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let thumb = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(THUMB_TARGET)
        .is_dir();
    if !thumb {
        if std::env::var("MITE_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{test}: target {THUMB_TARGET} is not installed (MITE_REQUIRE_TOOLS=1)");
        }
        println!("SKIPPED {test} (Cortex-M): target {THUMB_TARGET} is not installed");
        return false;
    }
    true
}

/// Runs `case` through the executor, C and Rust (see the module documentation); panics on any
/// difference.
pub fn check(test: &str, case: &Case, steps: usize, targets: Targets) -> Figures {
    let start = Instant::now();
    let (what, m, program) = lowered(test, case);
    let samples = samples(test, &m, IMAGES);
    let bytes = program.storage_bytes();

    // The reference: the Program executor.
    let mut exec = ProgramExecutor::new(&program).unwrap();
    let mut losses = vec![];
    for step in 0..steps {
        let s = &samples[step % samples.len()];
        losses.push(exec.train_step(&s.input, s.label, LR).unwrap());
    }
    let logits = exec.infer(&samples[0].input).unwrap();
    // The parameter buffers as saved (a split weight's trained slice only).
    let params: Vec<_> = exec
        .param_buffers()
        .into_iter()
        .map(|(_, g, d)| (g, d))
        .collect();
    let want = Expected {
        losses: losses.iter().map(|l| l.to_bits()).collect(),
        logits: format!(
            "logits{}",
            logits
                .iter()
                .map(|x| format!(" {:08x}", x.to_bits()))
                .collect::<String>()
        ),
        c_params: fnv1a(&c_param_image(&program, &params)),
        rust_block_crc: crc32(&param_block(&program, &params).unwrap()),
        rust_infer_hash: output_hash(logits.iter().map(|v| v.to_bits())),
    };

    // C.
    let dir = root().join("target/paper-backends").join(case.name);
    let _ = std::fs::remove_dir_all(&dir);
    let csamples: Vec<CSample> = samples
        .iter()
        .map(|s| CSample {
            image: s.input.clone(),
            label: s.label,
        })
        .collect();
    let files = emit_project(&program, &csamples, &what).unwrap();
    write_project(&dir, &files).unwrap();
    std::fs::write(dir.join("samples.h"), samples_header(&samples, steps)).unwrap();
    std::fs::write(dir.join("parity.c"), MAIN).unwrap();
    let sram = bytes.sram();
    let mut c = vec![(
        Target::Host,
        Some(c_run(test, &what, &dir, Target::Host, &want, sram)),
    )];
    for t in [Target::CortexM4, Target::CortexM7] {
        c.push((
            t,
            targets
                .device
                .then(|| c_run(test, &what, &dir, t, &want, sram)),
        ));
    }

    // Rust.
    let mut rust = vec![];
    let mut rust_ulps = 0;
    if targets.rust {
        let options = RustOptions {
            learning_rate: LR,
            training: format!("scheme `{}`", case.scheme),
            samples: samples.clone(),
            selftest_steps: steps,
            ..RustOptions::default()
        };
        let crate_dir = root()
            .join("target/emitted-src")
            .join(format!("paper-{}", case.name));
        let _ = std::fs::remove_dir_all(&crate_dir);
        write_crate(&crate_dir, &emit_crate(&program, &options).unwrap()).unwrap();
        let target_dir = root().join("target/emitted");
        let host = run_selftest(&crate_dir, &target_dir, Runner::Host, None).unwrap();
        assert!(host.ok, "{what}: Rust host:\n{}", host.lines.join("\n"));
        assert_eq!(host.loss_bits.len(), steps, "{what}: Rust steps");
        rust_ulps = host
            .loss_bits
            .iter()
            .zip(&want.losses)
            .map(|(&a, &b)| (i64::from(a) - i64::from(b)).unsigned_abs())
            .max()
            .unwrap_or(0);
        assert!(
            rust_ulps <= 4,
            "{what}: Rust losses differ from the executor's (and C's) by {rust_ulps} ulp"
        );
        assert_eq!(
            host.param_block_crc,
            Some(want.rust_block_crc),
            "{what}: Rust trained parameters vs the executor's (and C's)"
        );
        assert_eq!(
            host.infer_hash,
            Some(want.rust_infer_hash),
            "{what}: Rust inference vs the executor's"
        );
        rust.push((
            Target::Host,
            Some(Run {
                size: None,
                insns_per_step: None,
                ram_kb: None,
            }),
        ));
        let device = targets.device.then(|| {
            let rsram = bytes.arena + bytes.param + bytes.state;
            let ram_kb = link_ram_kb(rsram);
            if ram_kb != 256 {
                match run_selftest(&crate_dir, &target_dir, Runner::Qemu, None) {
                    Err(RunError::Build(log)) => assert!(
                        log.contains("will not fit in region 'RAM'") || log.contains("overflowed"),
                        "{what}: the Rust 256 KB link failed otherwise:\n{log}"
                    ),
                    _ => panic!("{what}: the Rust crate's {rsram} B of SRAM linked into 256 KB"),
                }
                println!(
                    "{test}: {what}: Rust: {rsram} B of SRAM do not fit 256 KB (link error); \
                     linking with {ram_kb} KB"
                );
            }
            let run = run_selftest(
                &crate_dir,
                &target_dir,
                Runner::Qemu,
                (ram_kb != 256).then_some(ram_kb),
            )
            .unwrap();
            assert!(run.ok, "{what}: Rust QEMU:\n{}", run.lines.join("\n"));
            assert_eq!(run.loss_bits, host.loss_bits, "{what}: Rust QEMU losses");
            assert_eq!(
                run.params_crc, host.params_crc,
                "{what}: Rust QEMU parameters"
            );
            assert_eq!(
                run.infer_hash, host.infer_hash,
                "{what}: Rust QEMU inference"
            );
            let elf = target_dir
                .join(THUMB_TARGET)
                .join("release/examples/selftest");
            Run {
                size: arm_size(&toolchain::arm_cc(), &elf),
                insns_per_step: run.per_step.map(|t| t * 1000),
                ram_kb: Some(ram_kb),
            }
        });
        rust.push((Target::CortexM4, device));
    }
    Figures {
        case: *case,
        spec: what,
        program_sram: sram,
        program_flash: bytes.flash,
        losses,
        c,
        rust,
        rust_ulps,
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn kb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

/// One table row per Cortex-M run of `f`.
pub fn table_rows(f: &Figures) -> Vec<String> {
    let paper_mcycles = f64::from(f.case.paper_ms) * 216.0 / 1000.0;
    let mut rows = vec![];
    for (backend, runs) in [("C", &f.c), ("Rust", &f.rust)] {
        for (t, run) in runs.iter() {
            let Some(run) = run else { continue };
            let Some(size) = run.size else { continue };
            rows.push(format!(
                "| {} {} | {backend} | {} | {} | {} | {} | {} | {} | {:.1} M | {} ms ≈ {paper_mcycles:.0} M |",
                f.case.name,
                f.case.scheme,
                t.name(),
                kb(size.text + size.data),
                kb(size.data + size.bss),
                kb(f.program_sram),
                run.ram_kb.map_or("-".into(), |k| format!("{k} KB")),
                run.insns_per_step.map_or("-".into(), |n| n.to_string()),
                run.insns_per_step.unwrap_or(0) as f64 / 1e6,
                f.case.paper_ms,
            ));
        }
    }
    rows
}

/// The table's header.
pub const TABLE_HEADER: &str = "| model | backend | core | flash KB (text+data) | static RAM KB (data+bss; C: with its 8 KB stack section) | Program SRAM KB | link RAM | instructions / step | | paper (216 MHz) |\n|---|---|---|---|---|---|---|---|---|---|";
