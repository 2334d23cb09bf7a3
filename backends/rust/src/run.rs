//! Building and running an emitted crate's self-test on the host or under QEMU, and reading
//! its output (for tests and reports; needs `cargo`, and for the device `rustup`'s
//! `thumbv7em-none-eabihf` target and `qemu-system-arm`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The Cortex-M4 target of the emitted crates.
pub const THUMB_TARGET: &str = "thumbv7em-none-eabihf";

/// Where a self-test ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    /// The host.
    Host,
    /// A Cortex-M4 emulated by QEMU (the crate's `.cargo/config.toml` runner).
    Qemu,
}

/// What a self-test printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selftest {
    /// Every line.
    pub lines: Vec<String>,
    /// The losses' bits, step by step.
    pub loss_bits: Vec<u32>,
    /// The CRC-32 of the parameters, state and step after the run (from the `ok` line).
    pub params_crc: Option<u32>,
    /// The CRC-32 of the parameter block after training (see [`crate::param_block`]).
    pub param_block_crc: Option<u32>,
    /// The hash of `infer`'s output after training (see [`output_hash`]).
    pub infer_hash: Option<u32>,
    /// Time per step in the runner's unit (host ns, SysTick reference ticks on the device).
    pub per_step: Option<u64>,
    /// The run passed (exit status 0 and a last line starting `mite-selftest: ok`).
    pub ok: bool,
    /// Build time (`cargo build`).
    pub build_time: Duration,
}

/// Why a self-test could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `cargo` could not be started.
    #[error("cannot run cargo: {0}")]
    Spawn(#[from] std::io::Error),
    /// The build failed.
    #[error("cargo build failed:\n{0}")]
    Build(String),
}

fn cargo(
    dir: &Path,
    target_dir: &Path,
    runner: Runner,
    verb: &str,
    ram_kb: Option<u32>,
) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(dir)
        .args([verb, "--release", "--example", "selftest"])
        .arg("--target-dir")
        .arg(target_dir)
        // The emitted crate is built on its own, whatever the calling cargo set.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if runner == Runner::Qemu {
        c.args(["--target", THUMB_TARGET]);
    }
    match ram_kb {
        Some(kb) => c.env("MITE_RAM_KB", kb.to_string()),
        None => c.env_remove("MITE_RAM_KB"),
    };
    c
}

/// Builds the self-test of the crate in `dir` (artefacts in `target_dir`, shared between
/// crates so that dependencies build once) and runs it. `ram_kb` overrides the 256 KB of RAM
/// the Cortex-M image links against (see the emitted `build.rs`).
pub fn run_selftest(
    dir: &Path,
    target_dir: &Path,
    runner: Runner,
    ram_kb: Option<u32>,
) -> Result<Selftest, RunError> {
    let start = Instant::now();
    let build = cargo(dir, target_dir, runner, "build", ram_kb).output()?;
    let build_time = start.elapsed();
    if !build.status.success() {
        return Err(RunError::Build(
            String::from_utf8_lossy(&build.stderr).into_owned(),
        ));
    }
    let out = cargo(dir, target_dir, runner, "run", ram_kb)
        .arg("-q")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut s = parse(&text);
    s.ok = out.status.success()
        && s.lines
            .last()
            .is_some_and(|l| l.starts_with("mite-selftest: ok"));
    if !s.ok {
        s.lines
            .push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    s.build_time = build_time;
    Ok(s)
}

/// The self-test's hash of `infer`'s output: `h = h.rotl(5) ^ bits(v)` over the elements
/// (`f32` bits, or the `i8` / `i32` value as `u32`).
pub fn output_hash(bits: impl IntoIterator<Item = u32>) -> u32 {
    bits.into_iter().fold(0, |h, b| h.rotate_left(5) ^ b)
}

/// CRC-32 (IEEE), as the emitted crates compute it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn hex_in(line: &str, open: &str, close: &str) -> Option<u32> {
    let start = line.find(open)? + open.len();
    let rest = &line[start..];
    let end = rest.find(close).unwrap_or(rest.len());
    u32::from_str_radix(rest[..end].trim(), 16).ok()
}

/// Reads a self-test's output.
pub fn parse(text: &str) -> Selftest {
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut s = Selftest {
        lines: lines.clone(),
        loss_bits: vec![],
        params_crc: None,
        param_block_crc: None,
        infer_hash: None,
        per_step: None,
        ok: false,
        build_time: Duration::ZERO,
    };
    for line in &lines {
        if line.starts_with("step ") {
            if let Some(bits) = hex_in(line, "(", ")") {
                s.loss_bits.push(bits);
            }
        } else if let Some(rest) = line.strip_prefix("time per step: ") {
            s.per_step = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if line.starts_with("infer output hash: ") {
            s.infer_hash = hex_in(line, "hash: ", "\n");
        } else if line.starts_with("param-block crc: ") {
            s.param_block_crc = hex_in(line, "crc: ", "\n");
        } else if line.starts_with("mite-selftest: ok") {
            s.params_crc = hex_in(line, "params-crc ", "\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_a_selftest_output() {
        let s = super::parse(
            "mite-selftest: tiny (2 steps on 4 images)\n\
             step 0 label 0 loss 1.386294 (3fb17218)\n\
             step 1 label 1 loss 1.300000 (3fa66666)\n\
             time per step: 75 SysTick reference ticks (loss 1.386294 -> 1.300000)\n\
             infer output hash: 4579e252\n\
             param-block crc: 0000002a\n\
             mite-selftest: ok params-crc 6a4aaf8e\n",
        );
        assert_eq!(s.loss_bits, vec![0x3fb1_7218, 0x3fa6_6666]);
        assert_eq!(s.per_step, Some(75));
        assert_eq!(s.infer_hash, Some(0x4579_e252));
        assert_eq!(s.params_crc, Some(0x6a4a_af8e));
        assert_eq!(s.param_block_crc, Some(42));
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}
