//! Errors of the interpreter.

use mite_ir::VerifyErrors;
use thiserror::Error;

use crate::kernel_error::KernelError;

/// Why a module could not be interpreted.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum InterpError {
    /// The module does not verify; the interpreter only runs verified modules.
    #[error("the module does not verify:\n{0}")]
    Verify(#[from] VerifyErrors),
    /// There is no function of this name.
    #[error("the module has no function @{0}")]
    UnknownFunction(String),
    /// A function was called with the wrong number of inputs.
    #[error("@{func}: expected {expected} inputs, found {found}")]
    InputCount {
        /// The function.
        func: String,
        /// Its number of arguments.
        expected: usize,
        /// The number of inputs given.
        found: usize,
    },
    /// An input does not match its argument's type.
    #[error("@{func}: input {index}{}: {message}", arg_name(.name))]
    InputType {
        /// The function.
        func: String,
        /// The argument position.
        index: usize,
        /// The argument's name hint, if any.
        name: Option<String>,
        /// What does not match.
        message: String,
    },
    /// A tensor's data does not match its type.
    #[error("invalid tensor: {0}")]
    InvalidTensor(String),
    /// A parameter override does not fit the global it replaces.
    #[error("global @{name}: {message}")]
    InvalidGlobal {
        /// The global.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An op failed.
    #[error("@{func} op #{index} `{op}`{}: {failure}", loc_name(.loc))]
    Op {
        /// The function.
        func: String,
        /// The op's position in program order.
        index: usize,
        /// The op's name (`nn.conv2d`).
        op: String,
        /// The op's location name (`loc("conv1")`), if any.
        loc: Option<String>,
        /// What went wrong.
        failure: OpFailure,
    },
}

fn arg_name(name: &Option<String>) -> String {
    name.as_ref()
        .map(|n| format!(" (%{n})"))
        .unwrap_or_default()
}

fn loc_name(loc: &Option<String>) -> String {
    loc.as_ref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default()
}

/// Why one op failed (wrapped with the op's position in [`InterpError::Op`]).
#[derive(Clone, Debug, PartialEq, Error)]
pub enum OpFailure {
    /// A global read by `param` / `const` was declared without data.
    #[error("global @{0} has no data (it was declared without any)")]
    AbsentData(String),
    /// A global read by `param` / `const` had its data elided when printed.
    #[error(
        "global @{global} has elided data (digest {digest:#018x}); load the module with its data"
    )]
    ElidedData {
        /// The global.
        global: String,
        /// The digest of the elided data.
        digest: u64,
    },
    /// An `optim.` op (named in [`InterpError::Op`]) in a run that cannot update parameters (the
    /// `&self` entry points such as
    /// [`Interpreter::run`](super::Interpreter::run)): run the function with
    /// [`Interpreter::run_mut`](super::Interpreter::run_mut).
    #[error("updates @{0} in place: run the function with `Interpreter::run_mut`")]
    ReadOnlyRun(
        /// The parameter the op updates.
        String,
    ),
    /// A custom op: the interpreter has no kernel for it.
    #[error("custom op `{0}` has no kernel in the interpreter")]
    CustomOp(String),
    /// A kernel rejected its inputs or parameters.
    #[error("kernel error: {0}")]
    Kernel(#[from] KernelError),
    /// The op is well typed but this combination of types or attributes is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An inconsistency the verifier should have excluded (a bug in the interpreter or the
    /// verifier).
    #[error("internal error: {0}")]
    Internal(String),
}
