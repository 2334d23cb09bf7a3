//! mite's C backend.
//!
//! - [`runtime`]: the portable C99 kernels (a second implementation of `mite-kernels`, held
//!   bit-exact against it by `tests/parity.rs`) and the bare-metal Cortex-M platform (startup,
//!   vector table, semihosting, SysTick counter, a linker script of exactly 256 KB SRAM and
//!   1 MB flash), embedded as text so that the emitter can write them out;
//! - [`emit`]: prints a lowered `mite_ir::program::Program` as C calling those kernels;
//! - [`toolchain`]: finding `gcc`, `arm-none-eabi-gcc` and `qemu-system-arm`, compile and run
//!   commands as data, running QEMU with a timeout and reading `mite-selftest:` lines.

#![forbid(unsafe_code)]

pub mod emit;
pub mod project;
pub mod runtime;
pub mod toolchain;
