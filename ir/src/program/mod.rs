//! The lowered Program: what the backends print and the Program executor runs.
//!
//! A [`Program`] is the training step (and the inference function) of a module after
//! scheduling, liveness and memory planning: ordered [`Call`]s of `mite-kernels` kernels with
//! their parameters resolved at compile time ([`Kernel`]), over [`BufferDecl`]s that each live in
//! one place ([`Storage`]):
//!
//! - the **arena**, one block of SRAM at planned, aligned offsets: activations, saved values,
//!   masks (1 bit per element, packed in `u32` words), gradients and kernel scratch;
//! - **flash**: frozen parameters and constants, read-only;
//! - **SRAM parameters**: the trained parameters, initialised from their flash image and updated
//!   in place by the optimizer calls;
//! - **state**: optimizer state (momentum, accumulated gradients) and the step counter's
//!   companions, zero-initialised;
//! - **the input** ([`Storage::Input`]): the entry's int8 input image, in the arena at a planned
//!   offset; the entry copies the caller's image there before its first call, and its bytes are
//!   free for other buffers after its last reader (the image is dead after the first layer's
//!   forward and, unless that layer is trained, for the whole backward pass);
//! - **arguments**: the label (and the learning rate and step of a training step), read in
//!   place from the caller; a program lowered with the input outside the arena takes the image
//!   as an argument too.
//!
//! Views (`nn.reshape`, `nn.flatten`) are not calls: their result is the same buffer.
//! The text form ([`print_program`]) is stable and meant for snapshot tests; [`verify_program`]
//! checks that no two simultaneously live arena buffers overlap, every read follows a write, every
//! buffer fits its storage and every call's buffers have the lengths its kernel expects.

mod kernel;
mod live;
mod print;
mod split;
mod verify;

pub use kernel::{
    bottleneck_backward_parts, rounding_name, Kernel, KernelAttr, SgdSlice, Signature,
};
pub use live::ArenaLiveness;
pub use print::print_program;
pub use split::{join_rows, split_rows, WeightSplit};
pub use verify::{verify_program, ProgramError, ProgramErrors};

use crate::TensorData;

/// Index of a buffer in [`Program::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub u32);

impl BufferId {
    /// The index into [`Program::buffers`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for BufferId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// The element type of a buffer as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufElem {
    /// `f32`.
    F32,
    /// `i8`.
    I8,
    /// `i32`.
    I32,
    /// `i64` (the step counter).
    I64,
    /// Bits packed 32 to a `u32` word, least significant bit first (masks); `len` counts bits.
    Bits,
}

impl BufElem {
    /// The text name.
    pub fn name(self) -> &'static str {
        match self {
            BufElem::F32 => "f32",
            BufElem::I8 => "i8",
            BufElem::I32 => "i32",
            BufElem::I64 => "i64",
            BufElem::Bits => "bits",
        }
    }

    /// Bytes of `len` elements (bits round up to whole `u32` words).
    pub fn bytes(self, len: usize) -> u64 {
        let len = len as u64;
        match self {
            BufElem::F32 | BufElem::I32 => 4 * len,
            BufElem::I8 => len,
            BufElem::I64 => 8 * len,
            BufElem::Bits => 4 * len.div_ceil(32),
        }
    }

    /// The alignment of a buffer of this element type in bytes.
    pub fn align(self) -> u64 {
        match self {
            BufElem::I8 => 1,
            BufElem::F32 | BufElem::I32 | BufElem::Bits => 4,
            BufElem::I64 => 8,
        }
    }
}

/// The role of an entry argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgRole {
    /// The (quantized) input image.
    Input,
    /// The class label (`i32`, one per batch element).
    Label,
    /// The learning rate (`f32` scalar).
    LearningRate,
    /// The step counter (`i64` scalar; seeds stochastic rounding).
    Step,
}

impl ArgRole {
    /// The text name.
    pub fn name(self) -> &'static str {
        match self {
            ArgRole::Input => "input",
            ArgRole::Label => "label",
            ArgRole::LearningRate => "lr",
            ArgRole::Step => "step",
        }
    }
}

/// Where a buffer lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    /// In the arena at this byte offset (planned; aligned to [`BufElem::align`]).
    Arena {
        /// Byte offset from the arena's start.
        offset: u64,
    },
    /// In flash, read-only: a frozen parameter or a constant.
    Flash {
        /// The module global it comes from, if any.
        global: Option<String>,
        /// Its elements.
        data: TensorData,
    },
    /// A trained parameter's SRAM copy, initialised from `init` (kept in flash).
    Param {
        /// The module parameter.
        global: String,
        /// Its initial elements.
        init: TensorData,
    },
    /// Optimizer state in SRAM, zero-initialised.
    State {
        /// The module global it comes from.
        global: String,
    },
    /// The input image of entry `entry`, in the arena at this byte offset: the entry copies the
    /// caller's data here before its first call (no call writes it); it is live from the entry's
    /// start to its last reader, and the planner reuses its bytes afterwards. Its role is
    /// [`ArgRole::Input`].
    Input {
        /// The index of the entry in [`Program::entries`].
        entry: usize,
        /// Byte offset from the arena's start (aligned to [`BufElem::align`]).
        offset: u64,
    },
    /// An argument of entry `entry`, provided by the caller and read in place (outside the
    /// arena).
    Arg {
        /// The index of the entry in [`Program::entries`].
        entry: usize,
        /// What the argument is.
        role: ArgRole,
    },
}

impl Storage {
    /// The storage's text name.
    pub fn kind(&self) -> &'static str {
        match self {
            Storage::Arena { .. } => "arena",
            Storage::Flash { .. } => "flash",
            Storage::Param { .. } => "param",
            Storage::State { .. } => "state",
            Storage::Input { .. } => "input",
            Storage::Arg { .. } => "arg",
        }
    }

    /// The byte offset in the arena of an arena or input buffer.
    pub fn arena_offset(&self) -> Option<u64> {
        match self {
            Storage::Arena { offset } | Storage::Input { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The role of an entry argument (the input, in the arena or not, or an argument).
    pub fn arg_role(&self) -> Option<ArgRole> {
        match self {
            Storage::Input { .. } => Some(ArgRole::Input),
            Storage::Arg { role, .. } => Some(*role),
            _ => None,
        }
    }

    /// The entry owning an argument or input buffer.
    pub fn arg_entry(&self) -> Option<usize> {
        match self {
            Storage::Input { entry, .. } | Storage::Arg { entry, .. } => Some(*entry),
            _ => None,
        }
    }
}

/// One buffer of a program.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferDecl {
    /// A readable name (the layer or value it holds, e.g. `blocks.3.pointwise1`).
    pub name: String,
    /// The element type.
    pub elem: BufElem,
    /// The number of elements (bits for [`BufElem::Bits`]).
    pub len: usize,
    /// The logical shape (its product is `len`), for documentation and the backends' headers.
    pub shape: Vec<usize>,
    /// Where it lives.
    pub storage: Storage,
}

impl BufferDecl {
    /// Its size in bytes.
    pub fn bytes(&self) -> u64 {
        self.elem.bytes(self.len)
    }
}

/// One kernel call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The kernel and its resolved parameters.
    pub kernel: Kernel,
    /// The buffers read, in the kernel's operand order.
    pub inputs: Vec<BufferId>,
    /// The buffers written, in the kernel's result order. A buffer updated in place (a
    /// parameter, optimizer state) is listed in `outputs` only; [`Kernel::reads_outputs`] says
    /// whether the kernel also reads them.
    pub outputs: Vec<BufferId>,
    /// The kernel's scratch buffer (in the arena), if it needs one.
    pub scratch: Option<BufferId>,
    /// The layer or op it comes from (for reports and comments in generated code).
    pub loc: Option<String>,
}

impl Call {
    /// Whether `b` is the result this call leaves in the bytes of the operand it consumes
    /// ([`Kernel::consumes_input`]): it is live only from the next call on.
    pub fn hands_over(&self, b: BufferId) -> bool {
        self.kernel.consumes_input() && self.outputs.first() == Some(&b)
    }
}

/// An entry point: `infer` or `train_step`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The entry's name (the module function it was lowered from).
    pub name: String,
    /// Its arguments, in order.
    pub args: Vec<BufferId>,
    /// Its results (the logits of `infer`, the loss of `train_step`).
    pub results: Vec<BufferId>,
    /// Its calls, in execution order.
    pub calls: Vec<Call>,
}

/// A lowered, planned program (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The module's name.
    pub name: String,
    /// Bytes of the arena (every arena buffer fits below it).
    pub arena_bytes: u64,
    /// Every buffer, indexed by [`BufferId`].
    pub buffers: Vec<BufferDecl>,
    /// The entry points.
    pub entries: Vec<Entry>,
}

impl Program {
    /// The buffer `id`.
    pub fn buffer(&self, id: BufferId) -> &BufferDecl {
        &self.buffers[id.index()]
    }

    /// The entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Bytes in each storage class.
    pub fn storage_bytes(&self) -> StorageBytes {
        let mut s = StorageBytes {
            arena: self.arena_bytes,
            ..StorageBytes::default()
        };
        for b in &self.buffers {
            match b.storage {
                Storage::Arena { .. } => {}
                Storage::Input { .. } => s.input_in_arena = s.input_in_arena.max(b.bytes()),
                Storage::Flash { .. } => s.flash += b.bytes(),
                Storage::Param { .. } => {
                    s.param += b.bytes();
                    s.flash += b.bytes();
                }
                Storage::State { .. } => s.state += b.bytes(),
                Storage::Arg { .. } => {}
            }
        }
        s.args = self
            .entries
            .iter()
            .map(|e| {
                e.args
                    .iter()
                    .map(|&a| self.buffer(a))
                    .filter(|b| matches!(b.storage, Storage::Arg { .. }))
                    .map(BufferDecl::bytes)
                    .sum()
            })
            .max()
            .unwrap_or(0);
        s
    }
}

/// Bytes of a program by storage class (see [`Program::storage_bytes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageBytes {
    /// The arena.
    pub arena: u64,
    /// Flash: frozen constants plus the initial images of the trained parameters.
    pub flash: u64,
    /// SRAM copies of the trained parameters.
    pub param: u64,
    /// Optimizer state.
    pub state: u64,
    /// Arguments read in place from the caller (label, learning rate, step, and the input image
    /// when it is not in the arena) of the entry with the most.
    pub args: u64,
    /// The largest input image copied into the arena ([`Storage::Input`]); already counted in
    /// `arena`, 0 when the input is an argument.
    pub input_in_arena: u64,
}

impl StorageBytes {
    /// SRAM of a training step: arena (with the input, when it lives there) + parameters +
    /// state + arguments.
    pub fn sram(&self) -> u64 {
        self.arena + self.param + self.state + self.args
    }
}

#[cfg(test)]
mod tests;
