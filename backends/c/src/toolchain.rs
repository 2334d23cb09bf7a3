//! The external tools of the C backend, as data: which compiler and emulator to use, the exact
//! command lines for a host build, a sanitizer build and a Cortex-M build, running a program or
//! QEMU with a time limit, and reading the `mite-selftest:` lines a program prints.
//!
//! The QEMU invocation for a Cortex-M program built against [`crate::runtime::ARM_FILES`]:
//!
//! ```text
//! qemu-system-arm -M mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none \
//!     -chardev stdio,id=semihost -semihosting-config enable=on,target=native,chardev=semihost \
//!     -icount shift=0 -kernel prog.elf
//! ```
//!
//! (`-M mps2-an500 -cpu cortex-m7` for the Cortex-M7). Output goes through semihosting
//! (`SYS_WRITE0`) to QEMU's stdout (without the `chardev`, QEMU writes it to stderr), the program's `main` return value becomes QEMU's exit status
//! (`SYS_EXIT_EXTENDED`), and `-icount shift=0` makes one guest instruction one nanosecond of
//! virtual time, so the SysTick counter (25 MHz on MPS2) counts one tick per 40 instructions.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a tool could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    /// The program could not be started.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading or writing the program's streams failed.
    #[error("I/O with `{program}` failed: {source}")]
    Io {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The program ran longer than its limit and was killed.
    #[error("`{program}` did not finish within {seconds} s and was killed")]
    Timeout {
        /// The program.
        program: String,
        /// The limit.
        seconds: u64,
    },
}

/// Where a program is built to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The machine running mite (gcc or `$CC`).
    Host,
    /// Cortex-M4 with single-precision FPU, QEMU `mps2-an386`.
    CortexM4,
    /// Cortex-M7 with double-precision FPU, QEMU `mps2-an500`.
    CortexM7,
}

impl Target {
    /// The code-generation flags of the target (empty for the host).
    pub fn cpu_flags(self) -> &'static [&'static str] {
        match self {
            Target::Host => &[],
            Target::CortexM4 => &[
                "-mthumb",
                "-mcpu=cortex-m4",
                "-mfpu=fpv4-sp-d16",
                "-mfloat-abi=hard",
            ],
            Target::CortexM7 => &[
                "-mthumb",
                "-mcpu=cortex-m7",
                "-mfpu=fpv5-d16",
                "-mfloat-abi=hard",
            ],
        }
    }

    /// The QEMU machine and CPU emulating the target, or `None` for the host.
    pub fn qemu_machine(self) -> Option<(&'static str, &'static str)> {
        match self {
            Target::Host => None,
            Target::CortexM4 => Some(("mps2-an386", "cortex-m4")),
            Target::CortexM7 => Some(("mps2-an500", "cortex-m7")),
        }
    }

    /// A short name (`host`, `m4`, `m7`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Host => "host",
            Target::CortexM4 => "m4",
            Target::CortexM7 => "m7",
        }
    }
}

/// Warnings and language flags every build of mite's C uses: C99, pedantic, warnings as errors,
/// no floating-point contraction (a fused multiply-add would change the bits), and no
/// strict-aliasing assumptions (generated programs use one byte arena for buffers of every
/// element type).
pub const STRICT_FLAGS: &[&str] = &[
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-O2",
    "-ffp-contract=off",
    "-fno-strict-aliasing",
];

/// Flags of the sanitizer build (AddressSanitizer and UndefinedBehaviorSanitizer, every report
/// fatal).
pub const SANITIZER_FLAGS: &[&str] = &[
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
];

/// The host C compiler: `$CC` if set, else `gcc`.
pub fn host_cc() -> PathBuf {
    std::env::var_os("CC").map_or_else(|| PathBuf::from("gcc"), PathBuf::from)
}

/// The Arm cross-compiler: `$MITE_ARM_CC` if set, else `arm-none-eabi-gcc`.
pub fn arm_cc() -> PathBuf {
    std::env::var_os("MITE_ARM_CC")
        .map_or_else(|| PathBuf::from("arm-none-eabi-gcc"), PathBuf::from)
}

/// The emulator: `$MITE_QEMU` if set, else `qemu-system-arm`.
pub fn qemu() -> PathBuf {
    std::env::var_os("MITE_QEMU").map_or_else(|| PathBuf::from("qemu-system-arm"), PathBuf::from)
}

/// Whether `program --version` runs successfully.
pub fn available(program: &Path) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A command line as data: printable (for Makefiles and error messages) and runnable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl CommandLine {
    /// A command line of `program` without arguments.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// Appends arguments.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Appends paths as arguments.
    pub fn paths<P: AsRef<Path>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.args.extend(
            paths
                .into_iter()
                .map(|p| p.as_ref().to_string_lossy().into_owned()),
        );
        self
    }

    /// A [`Command`] running this line.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        c
    }

    /// Runs the command with `stdin` as input and a time limit.
    pub fn run(&self, stdin: &[u8], timeout: Duration) -> Result<RunOutput, ToolchainError> {
        run_with_timeout(self.command(), &self.to_string(), stdin, timeout)
    }
}

impl std::fmt::Display for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.program.display())?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// What a C build consists of.
#[derive(Clone, Debug, Default)]
pub struct Build {
    /// Source files.
    pub sources: Vec<PathBuf>,
    /// Include directories.
    pub include_dirs: Vec<PathBuf>,
    /// Extra compiler flags (after the target's and [`STRICT_FLAGS`]).
    pub extra_flags: Vec<String>,
    /// Output executable.
    pub output: PathBuf,
}

/// The host build of `build` with compiler `cc` (optionally with the sanitizers).
pub fn host_compile(cc: &Path, build: &Build, sanitize: bool) -> CommandLine {
    let mut line = CommandLine::new(cc).args(STRICT_FLAGS);
    if sanitize {
        line = line.args(SANITIZER_FLAGS);
    }
    line.args(&build.extra_flags)
        .args(
            build
                .include_dirs
                .iter()
                .map(|d| format!("-I{}", d.display())),
        )
        .paths(&build.sources)
        .args(["-lm", "-o"])
        .paths([&build.output])
}

/// The bare-metal build of `build` for a Cortex-M `target` with compiler `cc`, linked with the
/// linker script `linker_script` (no C runtime start files; newlib-nano for `memcpy` and libm).
pub fn arm_compile(cc: &Path, target: Target, build: &Build, linker_script: &Path) -> CommandLine {
    CommandLine::new(cc)
        .args(target.cpu_flags())
        .args(STRICT_FLAGS)
        .args(&build.extra_flags)
        .args(
            build
                .include_dirs
                .iter()
                .map(|d| format!("-I{}", d.display())),
        )
        .paths(&build.sources)
        .args(["-T"])
        .paths([linker_script])
        .args([
            "-nostartfiles",
            "--specs=nano.specs",
            "-Wl,--gc-sections",
            "-ffunction-sections",
            "-fdata-sections",
            "-lm",
            "-o",
        ])
        .paths([&build.output])
}

/// The QEMU command running the Cortex-M program `elf` on `target`'s board (see the module
/// documentation), or `None` for [`Target::Host`].
pub fn qemu_run(qemu: &Path, target: Target, elf: &Path) -> Option<CommandLine> {
    let (machine, cpu) = target.qemu_machine()?;
    Some(
        CommandLine::new(qemu)
            .args(["-M", machine, "-cpu", cpu])
            .args(["-nographic", "-monitor", "none", "-serial", "none"])
            .args(["-chardev", "stdio,id=semihost"])
            .args([
                "-semihosting-config",
                "enable=on,target=native,chardev=semihost",
            ])
            .args(["-icount", "shift=0", "-kernel"])
            .paths([elf]),
    )
}

/// The `text`, `data` and `bss` sizes of an ELF file (from `arm-none-eabi-size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSize {
    /// Code and constants (flash).
    pub text: u64,
    /// Initialised data (flash and SRAM).
    pub data: u64,
    /// Zeroed data, including the stack reserve (SRAM).
    pub bss: u64,
}

/// Parses the Berkeley-format output of `size` (`text data bss dec hex filename`).
pub fn parse_size(output: &str) -> Option<ImageSize> {
    let line = output.lines().nth(1)?;
    let mut it = line.split_whitespace().map(str::parse::<u64>);
    Some(ImageSize {
        text: it.next()?.ok()?,
        data: it.next()?.ok()?,
        bss: it.next()?.ok()?,
    })
}

/// What a finished program did.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// Exit status (`None` if killed by a signal).
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// Runs `command` with `stdin` as its input; kills it after `timeout`.
pub fn run_with_timeout(
    mut command: Command,
    name: &str,
    stdin: &[u8],
    timeout: Duration,
) -> Result<RunOutput, ToolchainError> {
    let io = |source| ToolchainError::Io {
        program: name.to_owned(),
        source,
    };
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ToolchainError::Spawn {
            program: name.to_owned(),
            source,
        })?;
    let mut input = child.stdin.take();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(mut pipe) = input.take() {
            // A program that stops reading early closes the pipe: not an error of ours.
            let _ = pipe.write_all(&data);
        }
    });
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ToolchainError::Timeout {
                program: name.to_owned(),
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(RunOutput {
        status: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    })
}

/// The `mite-selftest:` lines of a program's output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selftest {
    /// `Some(true)` after `mite-selftest: ok`, `Some(false)` after `mite-selftest: FAIL`.
    pub ok: Option<bool>,
    /// The text after `ok` / `FAIL` on the verdict line.
    pub detail: String,
    /// `mite-selftest: instructions N` (SysTick ticks × 40 under `-icount shift=0`).
    pub instructions: Option<u64>,
    /// Other `mite-selftest: key value` lines, in order.
    pub values: Vec<(String, String)>,
}

/// Reads the `mite-selftest:` lines of `output`.
pub fn parse_selftest(output: &str) -> Selftest {
    let mut s = Selftest::default();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("mite-selftest:") else {
            continue;
        };
        let rest = rest.trim();
        let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
        match key {
            "ok" => {
                s.ok = Some(true);
                s.detail = value.trim().to_owned();
            }
            "FAIL" => {
                s.ok = Some(false);
                s.detail = value.trim().to_owned();
            }
            "instructions" => s.instructions = value.trim().parse().ok(),
            _ => s.values.push((key.to_owned(), value.trim().to_owned())),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selftest_lines() {
        let s = parse_selftest(
            "hello\nmite-selftest: loss 2.30\nmite-selftest: instructions 1200\n\
             mite-selftest: ok 12 cases\n",
        );
        assert_eq!(s.ok, Some(true));
        assert_eq!(s.detail, "12 cases");
        assert_eq!(s.instructions, Some(1200));
        assert_eq!(s.values, vec![("loss".to_owned(), "2.30".to_owned())]);
        let f = parse_selftest("mite-selftest: FAIL case 3 differs\n");
        assert_eq!(f.ok, Some(false));
        assert_eq!(f.detail, "case 3 differs");
        assert_eq!(parse_selftest("nothing").ok, None);
    }

    #[test]
    fn size_output() {
        let out = "   text\t   data\t    bss\t    dec\t    hex\tfilename\n    968\t      0\t  16428\t  17396\t   43f4\thello.elf\n";
        assert_eq!(
            parse_size(out),
            Some(ImageSize {
                text: 968,
                data: 0,
                bss: 16428
            })
        );
        assert_eq!(parse_size("garbage"), None);
    }

    #[test]
    fn command_lines() {
        let q = qemu_run(
            Path::new("qemu-system-arm"),
            Target::CortexM7,
            Path::new("a.elf"),
        )
        .unwrap()
        .to_string();
        assert!(q.starts_with("qemu-system-arm -M mps2-an500 -cpu cortex-m7"));
        assert!(q.contains("-semihosting-config enable=on,target=native,chardev=semihost"));
        assert!(q.contains("-icount shift=0 -kernel a.elf"));
        assert!(qemu_run(Path::new("q"), Target::Host, Path::new("a")).is_none());
        let b = Build {
            sources: vec!["a.c".into()],
            include_dirs: vec!["inc".into()],
            extra_flags: vec![],
            output: "a.out".into(),
        };
        let h = host_compile(Path::new("gcc"), &b, true).to_string();
        assert!(h.contains("-std=c99") && h.contains("-ffp-contract=off"));
        assert!(h.contains("-fsanitize=address,undefined") && h.ends_with("-o a.out"));
        let a = arm_compile(Path::new("cc"), Target::CortexM4, &b, Path::new("m.ld")).to_string();
        assert!(a.contains("-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard"));
        assert!(a.contains("-T m.ld -nostartfiles"));
    }

    #[test]
    fn timeout_kills() {
        let mut c = Command::new("sleep");
        c.arg("5");
        match run_with_timeout(c, "sleep", b"", Duration::from_millis(100)) {
            Err(ToolchainError::Timeout { .. }) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
}
