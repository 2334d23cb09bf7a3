//! The error every kernel returns when its inputs do not fit together.

use thiserror::Error;

/// A kernel was called with inconsistent shapes or parameters.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum KernelError {
    /// A buffer does not have the length its shape implies.
    #[error("{what}: expected {expected} elements, found {found}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Length implied by the shape.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// Shapes or parameters are inconsistent (the message says how).
    #[error("{0}")]
    Invalid(String),
    /// A `mite-kernels` kernel rejected its arguments.
    #[error("{0}")]
    Kernel(mite_kernels::KernelError),
}

impl From<mite_kernels::KernelError> for KernelError {
    /// Length mismatches keep their own variant; every other kernel error is wrapped.
    fn from(e: mite_kernels::KernelError) -> Self {
        match e {
            mite_kernels::KernelError::Length {
                what,
                expected,
                found,
            } => Self::Length {
                what,
                expected,
                found,
            },
            e => Self::Kernel(e),
        }
    }
}

/// Checks that buffer `what` has `expected` elements.
pub fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), KernelError> {
    if expected == found {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            found,
        })
    }
}
