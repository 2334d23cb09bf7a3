//! The error every kernel returns when its arguments do not fit together.

use core::fmt;

/// A kernel or a parameter constructor was given inconsistent arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// A buffer does not have the length its geometry implies.
    Length {
        /// Which buffer.
        what: &'static str,
        /// Length implied by the geometry.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A scratch buffer is shorter than the kernel needs.
    Scratch {
        /// Elements needed.
        needed: usize,
        /// Elements given.
        found: usize,
    },
    /// A geometry is inconsistent (the message says how).
    Geometry(&'static str),
    /// A parameter is out of its domain (the message says which).
    Param(&'static str),
    /// A window (pooling) lies entirely in the padding.
    EmptyWindow,
    /// An integer parameter update is NaN at element `index`.
    NanUpdate {
        /// Row-major element index.
        index: usize,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected {expected} elements, found {found}"),
            Self::Scratch { needed, found } => {
                write!(f, "scratch: needs {needed} elements, found {found}")
            }
            Self::Geometry(why) => write!(f, "{why}"),
            Self::Param(why) => write!(f, "{why}"),
            Self::EmptyWindow => write!(f, "a pooling window lies entirely in the padding"),
            Self::NanUpdate { index } => write!(f, "the update of element {index} is NaN"),
        }
    }
}

impl core::error::Error for KernelError {}

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

/// Checks that a scratch buffer has at least `needed` elements.
pub fn check_scratch(needed: usize, found: usize) -> Result<(), KernelError> {
    if found >= needed {
        Ok(())
    } else {
        Err(KernelError::Scratch { needed, found })
    }
}

/// Multiplies dimensions, failing instead of overflowing.
pub fn checked_product(dims: &[usize]) -> Result<usize, KernelError> {
    dims.iter()
        .try_fold(1_usize, |acc, &d| acc.checked_mul(d))
        .ok_or(KernelError::Geometry("tensor size overflows usize"))
}
