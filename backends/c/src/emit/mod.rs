//! Prints a lowered [`Program`] as C99 that calls the portable kernels of [`crate::runtime`].
//!
//! The generated program (`mite_program.h`, `mite_program.c`) has
//! - one static arena of [`Program::arena_bytes`] (8-byte aligned); arena buffers are pointers at
//!   their planned offsets; an entry whose input lives in the arena ([`Storage::Input`]) still
//!   takes a pointer to the caller's image and `memmove`s it into place first (nothing to copy
//!   when the caller wrote it there, see `mite_input_buffer`);
//! - frozen constants as `const` arrays (flash); trained parameters as SRAM arrays initialised
//!   from a `const` image by `mite_init()`; optimizer state as zeroed SRAM arrays;
//! - per call, its parameter struct as a `const` (flash) value with its per-channel tables;
//! - one function per entry, `mite_<entry>(args..., results...)`, making the calls in order and
//!   returning the first kernel error (`mite_status`); the results are copied to the caller's
//!   pointers;
//! - `mite_save_params()` / `mite_load_params()` copying the trained parameters and the optimizer
//!   state to and from a caller's buffer.
//!
//! The arena is accessed through pointers of the buffers' element types; build with
//! `-fno-strict-aliasing` (in [`crate::toolchain::STRICT_FLAGS`]).

mod api;
mod arms;
mod conv;
mod literal;
mod sgd;

use std::fmt::Write as _;

use mite_ir::program::{ArgRole, BufElem, BufferId, Call, Entry, Program, Storage};
use mite_ir::TensorData;
use mite_kernels::requant::Rounding;

pub use api::DEFAULT_LR;
use literal::elements;
pub use literal::{f32_lit, f64_lit, i32_lit, i64_lit, ident};

/// The header the emitter writes.
pub const HEADER: &str = "mite_program.h";
/// The source the emitter writes.
pub const SOURCE: &str = "mite_program.c";

/// Why a program cannot be printed as C.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// A call reads or writes an argument of another entry.
    #[error("entry `{entry}`: call {call} uses buffer {buffer}, an argument of another entry")]
    ForeignArgument {
        /// The entry.
        entry: String,
        /// The call's index.
        call: usize,
        /// The buffer.
        buffer: String,
    },
    /// A call's buffer list does not match its kernel's signature.
    #[error("entry `{entry}`: call {call} ({kernel}) has {found}, expected {expected}")]
    Operands {
        /// The entry.
        entry: String,
        /// The call's index.
        call: usize,
        /// The kernel's name.
        kernel: &'static str,
        /// What the signature needs.
        expected: String,
        /// What the call has.
        found: String,
    },
    /// An entry lacks an argument a kernel needs (the learning rate or step of an update).
    #[error("entry `{entry}`: call {call} ({kernel}) needs the entry's `{role}` argument")]
    MissingArgument {
        /// The entry.
        entry: String,
        /// The call's index.
        call: usize,
        /// The kernel's name.
        kernel: &'static str,
        /// The argument's role.
        role: &'static str,
    },
    /// An entry updates a parameter before it computes the loss, so a non-finite loss could
    /// not skip the update.
    #[error("entry `{entry}`: call {call} updates a parameter before the loss is computed")]
    UpdateBeforeLoss {
        /// The entry.
        entry: String,
        /// The update's index.
        call: usize,
    },
    /// A self-test project needs the `infer` and `train_step` entries of issue #11's API.
    #[error("the program has no `infer(input) -> logits` and `train_step(input, label, lr, step) -> loss` entries for the device API")]
    NoTrainingApi,
    /// A kernel the C emitter does not print yet.
    #[error("entry `{entry}`: call {call} ({kernel}): the C emitter does not support {what} yet")]
    Unsupported {
        /// The entry.
        entry: String,
        /// The call's index.
        call: usize,
        /// The kernel's name.
        kernel: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// A buffer's initial data does not match its element type or length.
    #[error("buffer {buffer}: its {what} data does not fit a {elem} buffer of {len} elements")]
    Data {
        /// The buffer.
        buffer: String,
        /// `flash` or `param`.
        what: &'static str,
        /// The buffer's element type.
        elem: &'static str,
        /// The buffer's length.
        len: usize,
    },
}

/// The C files of a program: `(file name, contents)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmittedProgram {
    /// [`HEADER`] and [`SOURCE`].
    pub files: Vec<(String, String)>,
}

/// The C type of an element.
fn c_type(elem: BufElem) -> &'static str {
    match elem {
        BufElem::F32 => "float",
        BufElem::I8 => "int8_t",
        BufElem::I32 => "int32_t",
        BufElem::I64 => "int64_t",
        BufElem::Bits => "uint32_t",
    }
}

/// Elements of a buffer as stored (bits are packed into words).
fn stored_len(elem: BufElem, len: usize) -> usize {
    match elem {
        BufElem::Bits => len.div_ceil(32),
        _ => len,
    }
}

fn rounding_c(r: Rounding) -> &'static str {
    match r {
        Rounding::Double => "MITE_ROUNDING_DOUBLE",
        Rounding::Single => "MITE_ROUNDING_SINGLE",
        Rounding::FloatScale => "MITE_ROUNDING_FLOAT_SCALE",
        Rounding::OnnxRuntime => "MITE_ROUNDING_ONNXRUNTIME",
    }
}

/// The initialiser elements of `data` as a `elem` buffer of `len` elements, or `None` if it
/// does not fit.
fn data_elements(data: &TensorData, elem: BufElem, len: usize) -> Option<String> {
    if data.len() != len {
        return None;
    }
    Some(match (data, elem) {
        (TensorData::F32(v), BufElem::F32) => elements(v, |x| f32_lit(*x)),
        (TensorData::I8(v), BufElem::I8) => elements(v, |x| x.to_string()),
        (TensorData::I32(v), BufElem::I32) => elements(v, |x| i32_lit(*x)),
        (TensorData::I64(v), BufElem::I64) => elements(v, |x| i64_lit(*x)),
        (TensorData::I1(v), BufElem::Bits) => {
            let words: Vec<u32> = v
                .chunks(32)
                .map(|c| {
                    c.iter()
                        .enumerate()
                        .fold(0u32, |w, (i, &b)| w | (u32::from(b) << i))
                })
                .collect();
            elements(&words, |w| format!("{w}u"))
        }
        _ => return None,
    })
}

/// Prints `program` as C (see the module documentation).
pub fn emit_program(program: &Program) -> Result<EmittedProgram, EmitError> {
    let mut e = Emitter {
        program,
        globals: String::new(),
        functions: String::new(),
        prototypes: String::new(),
    };
    e.buffers()?;
    for (index, entry) in program.entries.iter().enumerate() {
        e.entry(index, entry)?;
    }
    let api = api::api(program);
    e.init_and_persistence(api.is_some());
    if let Some((protos, funcs)) = &api {
        e.prototypes.push_str(protos);
        e.functions.push_str(funcs);
    }
    let bytes = program.storage_bytes();
    let guard = format!("MITE_PROGRAM_{}_H", ident(&program.name).to_uppercase());
    let header = format!(
        "/* Generated by mite from program `{name}`. Do not edit. */\n\
         #ifndef {guard}\n#define {guard}\n\n\
         #include <stddef.h>\n#include <stdint.h>\n\n#include \"mite_kernels.h\"\n\n\
         /* Memory: arena {arena} B{input}, trained parameters {param} B, optimizer state {state} B,\n \
         * arguments {args} B (SRAM {sram} B); flash constants and parameter images {flash} B. */\n\
         #define MITE_ARENA_BYTES {arena}u\n#define MITE_SRAM_BYTES {sram}u\n\
         #define MITE_FLASH_BYTES {flash}u\n#define MITE_PARAMS_BYTES {persist}u\n\
         /* What mite_save_params writes: the parameters, the state and a 4-byte checksum. */\n\
         #define MITE_SAVE_BYTES ({persist}u + 4u)\n\n\
         /* A training entry's loss is not finite; its updates were skipped, nothing changed. */\n\
         #define MITE_ERR_NONFINITE_LOSS ((mite_status)17)\n\
         /* mite_load_params: the checksum does not match. */\n\
         #define MITE_ERR_CHECKSUM ((mite_status)18)\n\n{protos}\n\
         #endif\n",
        name = program.name,
        arena = bytes.arena,
        param = bytes.param,
        state = bytes.state,
        args = bytes.args,
        input = match bytes.input_in_arena {
            0 => String::new(),
            n => format!(" (with the input, {n} B)"),
        },
        sram = bytes.sram(),
        flash = bytes.flash,
        persist = e.persistent_bytes(),
        protos = e.prototypes,
    );
    let source = format!(
        "/* Generated by mite from program `{}`. Do not edit. */\n\
         #include \"{HEADER}\"\n\n#include <math.h>\n#include <string.h>\n\n{}\n{}",
        program.name, e.globals, e.functions
    );
    Ok(EmittedProgram {
        files: vec![(HEADER.to_owned(), header), (SOURCE.to_owned(), source)],
    })
}

struct Emitter<'a> {
    program: &'a Program,
    globals: String,
    functions: String,
    prototypes: String,
}

/// The C name of a non-arena, non-argument buffer.
fn global_name(p: &Program, id: BufferId) -> String {
    format!("mite_{}_{}", id, ident(&p.buffer(id).name))
}

/// A C expression for buffer `id` inside entry `entry` (at call `call`, for errors).
fn buffer_expr(p: &Program, id: BufferId, entry: usize, call: usize) -> Result<String, EmitError> {
    let b = p.buffer(id);
    let ty = c_type(b.elem);
    Ok(match &b.storage {
        Storage::Arena { offset } => format!("(({ty} *)(void *)(mite_arena.bytes + {offset}u))"),
        Storage::Input {
            entry: owner,
            offset,
        } => {
            if *owner != entry {
                return Err(EmitError::ForeignArgument {
                    entry: p.entries[entry].name.clone(),
                    call,
                    buffer: b.name.clone(),
                });
            }
            format!("(({ty} *)(void *)(mite_arena.bytes + {offset}u))")
        }
        Storage::Flash { .. } | Storage::Param { .. } | Storage::State { .. } => global_name(p, id),
        Storage::Arg { entry: owner, role } => {
            if *owner != entry {
                return Err(EmitError::ForeignArgument {
                    entry: p.entries[entry].name.clone(),
                    call,
                    buffer: b.name.clone(),
                });
            }
            match role {
                ArgRole::LearningRate | ArgRole::Step => format!("&{}", role.name()),
                _ => role.name().to_owned(),
            }
        }
    })
}

impl Emitter<'_> {
    /// Declares the flash, parameter, state buffers and the arena.
    fn buffers(&mut self) -> Result<(), EmitError> {
        let p = self.program;
        let _ = writeln!(
            self.globals,
            "/* The arena: activations, gradients, masks and scratch at planned offsets. */\n\
             static union {{\n    uint64_t align;\n    unsigned char bytes[{}];\n}} mite_arena;\n",
            p.arena_bytes.max(1)
        );
        for (i, b) in p.buffers.iter().enumerate() {
            let id = BufferId(i as u32);
            let ty = c_type(b.elem);
            let len = stored_len(b.elem, b.len).max(1);
            let name = global_name(self.program, id);
            let bad = |what| EmitError::Data {
                buffer: b.name.clone(),
                what,
                elem: b.elem.name(),
                len: b.len,
            };
            match &b.storage {
                Storage::Flash { data, .. } => {
                    let init = data_elements(data, b.elem, b.len).ok_or_else(|| bad("flash"))?;
                    let _ = writeln!(
                        self.globals,
                        "/* {} {:?} (flash) */\nstatic const {ty} {name}[{len}] = {{{init}}};\n",
                        b.name, b.shape
                    );
                }
                Storage::Param { init, .. } => {
                    let data = data_elements(init, b.elem, b.len).ok_or_else(|| bad("param"))?;
                    let _ = writeln!(
                        self.globals,
                        "/* {} {:?}: trained (SRAM), initial image in flash */\n\
                         static {ty} {name}[{len}];\nstatic const {ty} {name}_init[{len}] = {{{data}}};\n",
                        b.name, b.shape
                    );
                }
                Storage::State { .. } => {
                    let _ = writeln!(
                        self.globals,
                        "/* {} {:?}: optimizer state (SRAM) */\nstatic {ty} {name}[{len}];\n",
                        b.name, b.shape
                    );
                }
                Storage::Arena { .. } | Storage::Input { .. } | Storage::Arg { .. } => {}
            }
        }
        Ok(())
    }

    fn entry(&mut self, index: usize, entry: &Entry) -> Result<(), EmitError> {
        let p = self.program;
        let mut params = Vec::new();
        for &a in &entry.args {
            let b = p.buffer(a);
            let ty = c_type(b.elem);
            if let Some(role) = b.storage.arg_role() {
                params.push(match role {
                    ArgRole::LearningRate | ArgRole::Step => format!("{ty} {}", role.name()),
                    _ => format!("const {ty} *{}", role.name()),
                });
            }
        }
        for (k, &r) in entry.results.iter().enumerate() {
            let b = p.buffer(r);
            params.push(format!("{} *result{k}_{}", c_type(b.elem), ident(&b.name)));
        }
        let signature = format!(
            "mite_status mite_entry_{}({})",
            ident(&entry.name),
            if params.is_empty() {
                "void".to_owned()
            } else {
                params.join(", ")
            }
        );
        let mut doc = format!("/* Entry `{}`.", entry.name);
        for &a in entry.args.iter().chain(&entry.results) {
            let b = p.buffer(a);
            let _ = write!(doc, "\n * {}: {} {:?}", b.name, b.elem.name(), b.shape);
        }
        doc.push_str("\n * Returns MITE_OK or the first kernel error. */");
        let _ = writeln!(self.prototypes, "{doc}\n{signature};\n");
        let mut body = String::new();
        // Arguments no call reads stay legal under -Wunused-parameter -Werror.
        for &a in &entry.args {
            let b = p.buffer(a);
            match b.storage {
                Storage::Arg { role, .. } => {
                    let _ = writeln!(body, "    (void){};", role.name());
                }
                Storage::Input { offset, .. } => {
                    // The copy-in: the caller's image into the arena (nothing to do when the
                    // caller wrote it there; memmove when it overlaps).
                    let name = ArgRole::Input.name();
                    let _ = writeln!(
                        body,
                        "    if ((const void *){name} != (const void *)(mite_arena.bytes + {offset}u)) {{\n        \
                         memmove(mite_arena.bytes + {offset}u, {name}, {}u);\n    }}",
                        b.bytes()
                    );
                }
                _ => {}
            }
        }
        let loss = api::loss_call(entry)?;
        let mut checked = false;
        for (c, call) in entry.calls.iter().enumerate() {
            if let (Some(l), true, false) = (loss, call.kernel.is_update(), checked) {
                // The loss is computed before any update: a non-finite one skips them all.
                let _ = writeln!(
                    body,
                    "    if (st == MITE_OK && !isfinite(({})[0])) {{\n        return MITE_ERR_NONFINITE_LOSS;\n    }}",
                    buffer_expr(p, entry.calls[l].outputs[0], index, c)?
                );
                checked = true;
            }
            self.call(index, entry, c, call, &mut body)?;
        }
        for (k, &r) in entry.results.iter().enumerate() {
            let b = p.buffer(r);
            let _ = writeln!(
                body,
                "    memcpy(result{k}_{}, {}, {}u);",
                ident(&b.name),
                buffer_expr(p, r, index, entry.calls.len())?,
                b.bytes()
            );
        }
        let _ = writeln!(
            self.functions,
            "{signature} {{\n    mite_status st = MITE_OK;\n{body}    return st;\n}}\n"
        );
        Ok(())
    }

    /// Checks the call's buffer counts against its kernel's signature.
    fn check_operands(&self, entry: &Entry, c: usize, call: &Call) -> Result<(), EmitError> {
        let sig = call.kernel.signature();
        let counts =
            |i: usize, o: usize, s: bool| format!("{i} operands, {o} results, scratch {s}");
        let expected = counts(sig.inputs.len(), sig.outputs.len(), sig.scratch.is_some());
        let found = counts(
            call.inputs.len(),
            call.outputs.len(),
            call.scratch.is_some(),
        );
        if expected == found {
            Ok(())
        } else {
            Err(EmitError::Operands {
                entry: entry.name.clone(),
                call: c,
                kernel: call.kernel.name(),
                expected,
                found,
            })
        }
    }

    fn call(
        &mut self,
        index: usize,
        entry: &Entry,
        c: usize,
        call: &Call,
        body: &mut String,
    ) -> Result<(), EmitError> {
        self.check_operands(entry, c, call)?;
        let p = self.program;
        let prefix = format!("mite_e{index}_c{c}");
        let expr = |id: BufferId| buffer_expr(p, id, index, c);
        let len = |id: BufferId| stored_len(p.buffer(id).elem, p.buffer(id).len);
        let _ = writeln!(
            body,
            "    /* {}: {} */",
            call.loc.as_deref().unwrap_or("-"),
            call.kernel.name()
        );
        let operands = |ids: &[BufferId]| {
            ids.iter()
                .map(|&b| Ok((expr(b)?, len(b))))
                .collect::<Result<Vec<_>, EmitError>>()
        };
        let ops = arms::Operands {
            prefix,
            ins: operands(&call.inputs)?,
            outs: operands(&call.outputs)?,
            scratch: call.scratch.map(|b| Ok((expr(b)?, len(b)))).transpose()?,
        };
        arms::print(&call.kernel, &ops, &mut self.globals, body).map_err(|what| {
            EmitError::Unsupported {
                entry: entry.name.clone(),
                call: c,
                kernel: call.kernel.name(),
                what,
            }
        })
    }

    /// The trained parameters and optimizer state, in buffer order.
    fn persistent(&self) -> Vec<BufferId> {
        (0..self.program.buffers.len())
            .map(|i| BufferId(i as u32))
            .filter(|&id| {
                matches!(
                    self.program.buffer(id).storage,
                    Storage::Param { .. } | Storage::State { .. }
                )
            })
            .collect()
    }

    fn persistent_bytes(&self) -> u64 {
        self.persistent()
            .iter()
            .map(|&id| self.program.buffer(id).bytes())
            .sum()
    }

    /// `mite_init`, `mite_save_params`, `mite_load_params`.
    fn init_and_persistence(&mut self, api: bool) {
        let mut init = String::new();
        let mut save = String::new();
        let mut load = String::new();
        let mut sum = String::new();
        let mut offset = 0u64;
        for id in self.persistent() {
            let b = self.program.buffer(id);
            let name = global_name(self.program, id);
            let bytes = b.bytes();
            match b.storage {
                Storage::Param { .. } => {
                    let _ = writeln!(init, "    memcpy({name}, {name}_init, sizeof {name});");
                }
                _ => {
                    let _ = writeln!(init, "    memset({name}, 0, sizeof {name});");
                }
            }
            let _ = writeln!(save, "    memcpy(bytes + {offset}u, {name}, {bytes}u);");
            let _ = writeln!(load, "    memcpy({name}, bytes + {offset}u, {bytes}u);");
            let _ = writeln!(
                sum,
                "    h = mite_fnv1a(h, (const unsigned char *){name}, {bytes}u);"
            );
            offset += bytes;
        }
        if api {
            let _ = writeln!(self.globals, "static void mite_api_reset(void);\n");
            init.push_str("    mite_api_reset();\n");
        }
        let _ = writeln!(
            self.prototypes,
            "/* Initialise the trained parameters (from flash), the optimizer state (zeros) and the\n \
             * API's learning rate and step. */\n\
             void mite_init(void);\n\n\
             /* Copy the trained parameters and optimizer state and their checksum (MITE_SAVE_BYTES)\n \
             * to out; returns the bytes needed, copying nothing if cap is smaller. */\n\
             size_t mite_save_params(void *out, size_t cap);\n\n\
             /* Restore what mite_save_params wrote: MITE_ERR_LENGTH if len differs, MITE_ERR_CHECKSUM\n \
             * if the checksum does not match (then nothing changes). */\n\
             mite_status mite_load_params(const void *in, size_t len);\n\n\
             /* The checksum mite_save_params stores, computed over the parameters and state in\n \
             * place (no buffer): compare it before and after to see whether anything changed. */\n\
             uint32_t mite_params_checksum(void);\n"
        );
        let _ = writeln!(
            self.functions,
            "void mite_init(void) {{\n{init}}}\n\n\
             /* FNV-1a over n more bytes, from state h. */\n\
             static uint32_t mite_fnv1a(uint32_t h, const unsigned char *bytes, size_t n) {{\n    \
             size_t i;\n    \
             for (i = 0; i < n; i++) {{\n        h = (h ^ bytes[i]) * 16777619u;\n    }}\n    return h;\n}}\n\n\
             /* FNV-1a over n bytes. */\n\
             static uint32_t mite_checksum(const unsigned char *bytes, size_t n) {{\n    \
             return mite_fnv1a(2166136261u, bytes, n);\n}}\n\n\
             uint32_t mite_params_checksum(void) {{\n    uint32_t h = 2166136261u;\n{sum}    return h;\n}}\n\n\
             static void mite_put_u32(unsigned char *b, uint32_t v) {{\n    \
             b[0] = (unsigned char)(v & 0xffu);\n    b[1] = (unsigned char)((v >> 8) & 0xffu);\n    \
             b[2] = (unsigned char)((v >> 16) & 0xffu);\n    b[3] = (unsigned char)(v >> 24);\n}}\n\n\
             static uint32_t mite_get_u32(const unsigned char *b) {{\n    \
             return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);\n}}\n\n\
             size_t mite_save_params(void *out, size_t cap) {{\n    \
             unsigned char *bytes = (unsigned char *)out;\n    \
             if (cap < MITE_SAVE_BYTES) {{\n        return MITE_SAVE_BYTES;\n    }}\n{save}    \
             mite_put_u32(bytes + MITE_PARAMS_BYTES, mite_checksum(bytes, MITE_PARAMS_BYTES));\n    \
             return MITE_SAVE_BYTES;\n}}\n\n\
             mite_status mite_load_params(const void *in, size_t len) {{\n    \
             const unsigned char *bytes = (const unsigned char *)in;\n    \
             if (len != MITE_SAVE_BYTES) {{\n        return MITE_ERR_LENGTH;\n    }}\n    \
             if (mite_checksum(bytes, MITE_PARAMS_BYTES) != mite_get_u32(bytes + MITE_PARAMS_BYTES)) {{\n        \
             return MITE_ERR_CHECKSUM;\n    }}\n{load}    \
             return MITE_OK;\n}}\n"
        );
    }
}
