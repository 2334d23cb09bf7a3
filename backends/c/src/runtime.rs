//! The C sources that every generated program is built with, embedded as text.
//!
//! [`FILES`] are the portable kernels (C99, no allocation; on a core with the Arm DSP extension,
//! such as Cortex-M4 / M7, the int8 multiply-accumulate loops use ACLE SIMD intrinsics, with the
//! same results, unless `MITE_NO_ARM_DSP` is defined); [`ARM_FILES`] the
//! bare-metal platform for QEMU's MPS2 boards and similar Cortex-M4 / M7 parts. Both are lists
//! of `(file name, contents)`; [`write_files`] writes them into a directory.

use std::io;
use std::path::Path;

/// The portable C99 kernels: `(file name, contents)`.
pub const FILES: &[(&str, &str)] = &[
    ("mite_kernels.h", include_str!("../runtime/mite_kernels.h")),
    (
        "mite_internal.h",
        include_str!("../runtime/mite_internal.h"),
    ),
    ("mite_common.c", include_str!("../runtime/mite_common.c")),
    ("mite_int8.c", include_str!("../runtime/mite_int8.c")),
    ("mite_float.c", include_str!("../runtime/mite_float.c")),
    ("mite_inplace.c", include_str!("../runtime/mite_inplace.c")),
    ("mite_sgd.c", include_str!("../runtime/mite_sgd.c")),
    (
        "mite_bottleneck.c",
        include_str!("../runtime/mite_bottleneck.c"),
    ),
    ("mite_split.c", include_str!("../runtime/mite_split.c")),
    (
        "mite_bottleneck_backward.c",
        include_str!("../runtime/mite_bottleneck_backward.c"),
    ),
];

/// The Cortex-M platform (startup code and vector table, semihosting, SysTick counter, linker
/// script): `(file name, contents)`.
pub const ARM_FILES: &[(&str, &str)] = &[
    (
        "mite_platform.h",
        include_str!("../runtime/arm/mite_platform.h"),
    ),
    ("startup.c", include_str!("../runtime/arm/startup.c")),
    ("semihost.c", include_str!("../runtime/arm/semihost.c")),
    (LINKER_SCRIPT, include_str!("../runtime/arm/mps2.ld")),
];

/// The name of the linker script in [`ARM_FILES`].
pub const LINKER_SCRIPT: &str = "mps2.ld";

/// SRAM the linker script gives a program, in bytes (exactly 256 KB).
pub const RAM_BYTES: u64 = 256 * 1024;

/// Flash the linker script gives a program, in bytes (exactly 1 MB).
pub const FLASH_BYTES: u64 = 1024 * 1024;

/// Writes `files` into `dir` (created if missing).
pub fn write_files(dir: &Path, files: &[(&str, &str)]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// The `.c` files among `files`.
pub fn sources<'a>(files: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a str> + 'a {
    files
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| name.ends_with(".c"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linker_script_has_exactly_the_paper_budget() {
        let (_, ld) = ARM_FILES.iter().find(|(n, _)| *n == LINKER_SCRIPT).unwrap();
        assert!(ld.contains("LENGTH = 1024K"), "flash is 1 MB");
        assert!(ld.contains("LENGTH = 256K"), "SRAM is 256 KB");
        assert_eq!(RAM_BYTES, 262_144);
        assert_eq!(FLASH_BYTES, 1_048_576);
    }

    #[test]
    fn every_file_is_listed_once_and_sources_are_c() {
        let mut names: Vec<_> = FILES.iter().chain(ARM_FILES).map(|(n, _)| *n).collect();
        let len = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), len);
        assert_eq!(sources(FILES).count(), 8);
        assert!(sources(ARM_FILES).all(|s| s.ends_with(".c")));
    }

    #[test]
    fn kernels_use_no_allocation() {
        for (name, text) in FILES {
            for banned in ["malloc", "calloc", "free(", "printf"] {
                assert!(!text.contains(banned), "{name} uses {banned}");
            }
        }
    }
}
