//! The Rust `no_std` backend: prints a lowered [`Program`] as a crate that trains on a
//! microcontroller.
//!
//! [`emit_crate`] returns the files of a standalone Cargo package (paths relative to its folder);
//! [`write_crate`] writes them. The emitted crate:
//!
//! - is `#![no_std]`, uses no `alloc` and forbids `unsafe`; its API is one `Model` struct with a
//!   `const fn new()` (all zeros, so a `static` holding it lands in `.bss`), `init`, `infer`,
//!   `train_step` (returning the loss, or an error for a bad label or a non-finite loss, both
//!   found before anything is written), and `save_params` / `load_params` (CRC-32 checked);
//! - keeps the activation arena, the trained parameters and the optimizer state as three
//!   byte blocks aligned to 8 inside `Model`, at the Program's planned arena offsets; each call
//!   borrows disjoint typed views of them (`split_at_mut` and `bytemuck`), so no `unsafe` is
//!   needed;
//! - keeps frozen constants and the parameters' initial images as `static` tables in flash
//!   (`include_bytes!` of `data/*.bin`, little-endian), and each call's resolved kernel
//!   parameters as a `static` descriptor;
//! - vendors the sources of `mite-kernels` into `mite-kernels/` (its README says why: the crate
//!   builds from its folder alone, with exactly the kernels its Program was lowered for, and the
//!   bits do not depend on where mite is checked out);
//! - has an example `selftest` that trains on a few embedded images on the host or, through the
//!   `.cargo/config.toml` runner, on a Cortex-M4 emulated by QEMU (`ld/memory.x`: 256 KB RAM,
//!   1 MB flash).

#![forbid(unsafe_code)]

mod codegen;
mod files;
pub mod run;
pub mod sample;
mod vendor;

use std::path::{Path, PathBuf};

use mite_ir::program::{Program, ProgramErrors};
use thiserror::Error;

/// One embedded training image of the self-test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The quantized image (the program's input length).
    pub input: Vec<i8>,
    /// Its class.
    pub label: i32,
}

/// What to emit besides the Program itself.
#[derive(Clone, Debug, PartialEq)]
pub struct RustOptions {
    /// The package name (`mite-model-<program name>` when `None`); the library is always
    /// `mite_model`.
    pub package: Option<String>,
    /// The learning rate `init` sets.
    pub learning_rate: f32,
    /// A line for the documentation saying how the model is trained (scheme, updates).
    pub training: String,
    /// The self-test's images; when empty, [`synthetic_samples`] with seed 1 and 4 images.
    pub samples: Vec<Sample>,
    /// Training steps of the self-test.
    pub selftest_steps: usize,
}

impl Default for RustOptions {
    fn default() -> Self {
        Self {
            package: None,
            learning_rate: 0.001,
            training: "SGD".to_string(),
            samples: Vec::new(),
            selftest_steps: 4,
        }
    }
}

/// Why a Program cannot be emitted.
#[derive(Debug, Error)]
pub enum EmitError {
    /// The Program fails verification.
    #[error("the program does not verify: {0}")]
    Invalid(#[from] ProgramErrors),
    /// The Program lacks an entry the crate's API needs.
    #[error("the program has no {0} entry (an entry with {1})")]
    MissingEntry(&'static str, &'static str),
    /// An entry's arguments or results do not have the form the API needs.
    #[error("entry @{entry}: {what}")]
    Entry {
        /// The entry.
        entry: String,
        /// What is wrong.
        what: String,
    },
    /// The backend has no code for a kernel.
    #[error(
        "entry @{entry}, call {call}: the Rust backend does not support kernel `{kernel}` yet"
    )]
    Unsupported {
        /// The entry.
        entry: String,
        /// The call's position.
        call: usize,
        /// The kernel's name.
        kernel: &'static str,
    },
    /// Two buffers of one call overlap, or a call reads and writes one buffer.
    #[error("entry @{entry}, call {call}: buffers {a} and {b} overlap (the kernels take disjoint buffers)")]
    Alias {
        /// The entry.
        entry: String,
        /// The call's position.
        call: usize,
        /// One buffer.
        a: String,
        /// The other.
        b: String,
    },
    /// A parameter or optimizer state is written before the loss is known, so a non-finite
    /// loss could not leave the model unchanged.
    #[error("entry @{entry}: call {call} ({kernel}) updates {buffer} before the loss is computed (call {loss_call})")]
    UpdateBeforeLoss {
        /// The entry.
        entry: String,
        /// The updating call.
        call: usize,
        /// Its kernel.
        kernel: &'static str,
        /// The buffer it writes.
        buffer: String,
        /// The call that computes the loss.
        loss_call: usize,
    },
    /// A flash or parameter buffer's data does not match its declaration.
    #[error("buffer {buffer} ({name}): {what}")]
    Data {
        /// The buffer.
        buffer: String,
        /// Its name.
        name: String,
        /// What does not match.
        what: String,
    },
    /// A self-test sample does not fit the program.
    #[error("self-test sample {index}: {what}")]
    Sample {
        /// The sample's position.
        index: usize,
        /// What does not fit.
        what: String,
    },
    /// Writing the crate failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A file of an emitted crate: its path relative to the crate's folder and its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrateFile {
    /// Relative path.
    pub path: PathBuf,
    /// Contents.
    pub contents: Vec<u8>,
}

impl CrateFile {
    fn text(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            contents: text.into().into_bytes(),
        }
    }

    fn bytes(path: impl Into<PathBuf>, contents: Vec<u8>) -> Self {
        Self {
            path: path.into(),
            contents,
        }
    }
}

/// Prints `program` as the files of a `no_std` crate (see the crate documentation).
pub fn emit_crate(program: &Program, options: &RustOptions) -> Result<Vec<CrateFile>, EmitError> {
    mite_ir::program::verify_program(program)?;
    let code = codegen::generate(program, options)?;
    files::crate_files(program, options, code)
}

/// Writes the files of [`emit_crate`] under `dir` (created if missing); existing files of the
/// same names are replaced.
pub fn write_crate(dir: &Path, files: &[CrateFile]) -> Result<(), EmitError> {
    for f in files {
        let path = dir.join(&f.path);
        let io = |source| EmitError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, &f.contents).map_err(io)?;
    }
    Ok(())
}

/// The parameter block of `program`'s emitted crate holding `params` (`(global, data)` pairs,
/// as a Program executor reports them): what the crate's `Model::param_block_crc` covers.
pub fn param_block(
    program: &Program,
    params: &[(String, mite_ir::TensorData)],
) -> Result<Vec<u8>, EmitError> {
    let lay = codegen::layout(program);
    let mut block = vec![0u8; lay.param_bytes() as usize];
    for (i, b) in program.buffers.iter().enumerate() {
        let mite_ir::program::Storage::Param { global, .. } = &b.storage else {
            continue;
        };
        let id = mite_ir::program::BufferId(i as u32);
        let data_error = |what: String| EmitError::Data {
            buffer: id.to_string(),
            name: b.name.clone(),
            what,
        };
        let (_, data) = params
            .iter()
            .find(|(n, _)| n == global)
            .ok_or_else(|| data_error(format!("no data for @{global}")))?;
        let bytes = codegen::data_bytes(b.elem, b.len, data).map_err(data_error)?;
        let (start, end) = lay
            .param_range(id)
            .ok_or_else(|| data_error("not in the parameter block".into()))?;
        block[start as usize..end as usize].copy_from_slice(&bytes);
    }
    Ok(block)
}

/// `count` seeded pseudo-random images of `len` int8 values with labels in `0..classes`, for a
/// self-test when no real images are at hand.
pub fn synthetic_samples(count: usize, len: usize, classes: usize, seed: u64) -> Vec<Sample> {
    let mut state = seed;
    let mut next = move || {
        state = mite_kernels::sgd::splitmix64(state);
        state
    };
    (0..count)
        .map(|i| Sample {
            input: (0..len).map(|_| (next() >> 56) as u8 as i8).collect(),
            label: (i % classes.max(1)) as i32,
        })
        .collect()
}
