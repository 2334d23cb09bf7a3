//! The Program executor: runs a lowered [`Program`] with the `mite-kernels` kernels, every arena
//! buffer at its planned offset in one byte arena.
//!
//! ```text
//! let mut exec = ProgramExecutor::new(&program)?;
//! let logits = exec.infer(&image_i8)?;
//! let loss = exec.train_step(&image_i8, label, lr)?;
//! let params = exec.params();
//! ```
//!
//! - **Memory.** The arena is one block of bytes; an entry whose input lives in the arena
//!   ([`Storage::Input`]) starts by copying the caller's image there; a call reads its operands out of their
//!   buffers (arena bytes at the planned offsets, flash data, the SRAM copies of parameters,
//!   state, arguments), runs its kernel, and writes its results back. Operands are copied out and
//!   results copied in (no `unsafe` and no typed views), so a plan in which two live buffers
//!   overlap corrupts the results, as it would on the device; kernel scratch lives in the arena
//!   too.
//! - **Parameters** start from their flash images, **state** from zeros. A training step that
//!   fails (a bad label, a NaN update of an integer parameter) leaves parameters and state as they
//!   were, like the interpreter.
//! - The step counter is kept by the executor: the `n`-th successful training step runs with
//!   step `n − 1` (as `mite train` numbers its steps).
//! - Kernels run as the interpreter runs them: the same `mite-kernels` functions with the
//!   parameters the lowering resolved, the host's `exp` / `ln` for the loss (the interpreter's
//!   loss wrappers), and the interpreter's rules for sparse (channel-slice) updates.

mod memory;
mod run;

use mite_ir::program::{ArgRole, BufferId, Program, Storage};
use mite_ir::TensorData;
use thiserror::Error;

use memory::{Memory, Vals};

/// Why a program could not run.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ProgramExecError {
    /// The program has no entry of that name.
    #[error("the program has no entry @{0}")]
    NoEntry(String),
    /// An argument does not fit the entry.
    #[error("entry @{entry}: argument {role}: {what}")]
    Arg {
        /// The entry.
        entry: String,
        /// The argument's role.
        role: &'static str,
        /// What is wrong.
        what: String,
    },
    /// A call failed.
    #[error("entry @{entry}, call {call} ({kernel}{}): {message}", .loc.as_ref().map(|l| format!(" \"{l}\"")).unwrap_or_default())]
    Call {
        /// The entry.
        entry: String,
        /// The call's position.
        call: usize,
        /// The kernel.
        kernel: &'static str,
        /// The call's location.
        loc: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// A buffer does not hold what the program declares (an invalid program).
    #[error("buffer {buffer}: {what}")]
    Buffer {
        /// The buffer.
        buffer: BufferId,
        /// What is wrong.
        what: String,
    },
}

/// Runs the entries of one [`Program`] (see the module documentation).
#[derive(Clone, Debug)]
pub struct ProgramExecutor<'p> {
    program: &'p Program,
    memory: Memory<'p>,
    step: i64,
}

impl<'p> ProgramExecutor<'p> {
    /// An executor with a zeroed arena, parameters at their initial values and zeroed state.
    pub fn new(program: &'p Program) -> Result<ProgramExecutor<'p>, ProgramExecError> {
        Ok(ProgramExecutor {
            program,
            memory: Memory::new(program)?,
            step: 0,
        })
    }

    /// The program.
    pub fn program(&self) -> &'p Program {
        self.program
    }

    /// Training steps run so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Runs entry `infer` on an `i8` image (quantized by the caller); returns its first result
    /// (the logits) as `f32`.
    pub fn infer(&mut self, image: &[i8]) -> Result<Vec<f32>, ProgramExecError> {
        let out = self.run("infer", image, None)?;
        match out {
            Vals::F32(v) => Ok(v),
            Vals::I8(v) => Ok(v.into_iter().map(f32::from).collect()),
            other => Err(ProgramExecError::Arg {
                entry: "infer".into(),
                role: "result",
                what: format!("a {} result, expected f32 or i8 logits", other.elem_name()),
            }),
        }
    }

    /// Runs entry `train_step` on an `i8` image with its label and learning rate; returns the
    /// loss. On failure parameters and state are unchanged and the step counter does not move.
    pub fn train_step(
        &mut self,
        image: &[i8],
        label: i32,
        lr: f32,
    ) -> Result<f32, ProgramExecError> {
        let saved = self.memory.sram_snapshot();
        match self.run("train_step", image, Some((label, lr))) {
            Ok(Vals::F32(v)) if v.len() == 1 => {
                self.step += 1;
                Ok(v[0])
            }
            Ok(other) => {
                self.memory.restore(saved);
                Err(ProgramExecError::Arg {
                    entry: "train_step".into(),
                    role: "result",
                    what: format!(
                        "{} {} elements, expected one f32 loss",
                        other.len(),
                        other.elem_name()
                    ),
                })
            }
            Err(e) => {
                self.memory.restore(saved);
                Err(e)
            }
        }
    }

    /// The trained parameters by their module global names, in buffer order: each whole, a
    /// weight stored as trained slice + frozen remainder joined back
    /// ([`Program::whole_param`](mite_ir::program::Program::whole_param)).
    pub fn params(&self) -> Vec<(String, TensorData)> {
        self.param_buffers()
            .into_iter()
            .filter_map(|(id, global, data)| Some((global, self.program.whole_param(id, &data)?)))
            .collect()
    }

    /// The contents of the parameter buffers (the SRAM copies, what a backend's saved image
    /// holds: a split weight's trained slice only), with their module global names, in buffer
    /// order.
    pub fn param_buffers(&self) -> Vec<(BufferId, String, TensorData)> {
        self.program
            .buffers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match &b.storage {
                Storage::Param { global, .. } => {
                    let id = BufferId(i as u32);
                    Some((id, global.clone(), self.memory.slot(id)?.to_tensor_data()?))
                }
                _ => None,
            })
            .collect()
    }

    fn run(
        &mut self,
        entry_name: &str,
        image: &[i8],
        train: Option<(i32, f32)>,
    ) -> Result<Vals, ProgramExecError> {
        let program = self.program;
        let entry = program
            .entry(entry_name)
            .ok_or_else(|| ProgramExecError::NoEntry(entry_name.to_string()))?;
        for &a in &entry.args {
            let decl = program.buffer(a);
            let Some(role) = decl.storage.arg_role() else {
                return Err(ProgramExecError::Buffer {
                    buffer: a,
                    what: "an entry argument that is not an argument buffer".into(),
                });
            };
            let arg_error = |what: String| ProgramExecError::Arg {
                entry: entry_name.to_string(),
                role: role.name(),
                what,
            };
            let vals = match (role, train) {
                (ArgRole::Input, _) => {
                    if image.len() != decl.len {
                        return Err(arg_error(format!(
                            "{} elements given, the input has {}",
                            image.len(),
                            decl.len
                        )));
                    }
                    if let Storage::Input { .. } = decl.storage {
                        self.memory
                            .copy_in(a, image)
                            .map_err(|what| ProgramExecError::Buffer { buffer: a, what })?;
                        continue;
                    }
                    Vals::I8(image.to_vec())
                }
                (ArgRole::Label, Some((label, _))) => Vals::I32(vec![label; decl.len]),
                (ArgRole::LearningRate, Some((_, lr))) => Vals::F32(vec![lr]),
                (ArgRole::Step, Some(_)) => Vals::I64(vec![self.step]),
                (_, None) => return Err(arg_error("the entry is not a training step".into())),
            };
            self.memory.set_arg(a, vals);
        }
        for (c, call) in entry.calls.iter().enumerate() {
            run::call(&mut self.memory, call).map_err(|message| ProgramExecError::Call {
                entry: entry_name.to_string(),
                call: c,
                kernel: call.kernel.name(),
                loc: call.loc.clone(),
                message,
            })?;
        }
        let Some(&result) = entry.results.first() else {
            return Err(ProgramExecError::Arg {
                entry: entry_name.to_string(),
                role: "result",
                what: "the entry has no result".into(),
            });
        };
        self.memory
            .read(result)
            .map_err(|what| ProgramExecError::Buffer {
                buffer: result,
                what,
            })
    }
}
