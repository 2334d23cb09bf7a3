//! The built-in passes.
//!
//! | name | pass | what it does |
//! |------|------|--------------|
//! | `canonicalize` | [`Canonicalize`] | local simplifications to a fixed point |
//! | `constant-fold` | [`ConstantFold`] | evaluates ops over constants at compile time |
//! | `cse` | [`Cse`] | merges identical pure ops |
//! | `dce` | [`Dce`] | removes unused pure ops and unread constants |
//! | `dequantize` | [`Dequantize`] | rewrites the int8 graph into its float equivalent |

mod canonicalize;
mod constant_fold;
mod cse;
mod dce;
mod dequantize;

pub use canonicalize::Canonicalize;
pub use constant_fold::ConstantFold;
pub use cse::Cse;
pub use dce::Dce;
pub use dequantize::Dequantize;
