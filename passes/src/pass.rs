//! The [`Pass`] trait and the errors a pass reports.

use crate::statistics::Statistics;
use mite_ir::Module;
use thiserror::Error;

/// A transformation of a module.
///
/// Implement it for your own passes and register them with
/// [`PassRegistry::register`](crate::PassRegistry::register) to use them in textual pipelines,
/// or add them to a [`PassManager`](crate::PassManager) directly.
///
/// ```
/// use mite_ir::Module;
/// use mite_passes::{Pass, PassError, Statistics};
///
/// /// Counts the ops of every function.
/// struct CountOps;
///
/// impl Pass for CountOps {
///     fn name(&self) -> &str {
///         "count-ops"
///     }
///     fn description(&self) -> &str {
///         "Counts ops (changes nothing)"
///     }
///     fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
///         let n: usize = module.functions.iter().map(|f| f.num_ops()).sum();
///         stats.add("ops", n as u64);
///         Ok(false)
///     }
/// }
/// ```
pub trait Pass {
    /// The pass's name as written in pipelines (`dce`), also used in IR dump headers,
    /// statistics and errors.
    fn name(&self) -> &str;

    /// A one-line description, shown in pass listings.
    fn description(&self) -> &str;

    /// Sets option `key` to `value` (written `pass{key=value}` in a pipeline).
    ///
    /// The default accepts no option and returns [`PassError::UnknownOption`].
    fn set_option(&mut self, key: &str, value: &str) -> Result<(), PassError> {
        let _ = value;
        Err(PassError::UnknownOption {
            pass: self.name().to_string(),
            option: key.to_string(),
            known: String::new(),
        })
    }

    /// Runs the pass over `module`, adding its counters to `stats` (a fresh set for this run).
    /// Returns whether the module changed.
    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError>;
}

/// Why a pass could not be configured or could not run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PassError {
    /// The pass has no such option.
    #[error("pass `{pass}` has no option `{option}` ({})", known_options(.known))]
    UnknownOption {
        /// The pass.
        pass: String,
        /// The option given.
        option: String,
        /// The options the pass accepts, comma-separated (empty if none).
        known: String,
    },
    /// The option's value is not valid.
    #[error("option `{option}` of pass `{pass}`: invalid value `{value}`: {reason}")]
    InvalidOptionValue {
        /// The pass.
        pass: String,
        /// The option.
        option: String,
        /// The value given.
        value: String,
        /// What a valid value looks like.
        reason: String,
    },
    /// The pass failed while running.
    #[error("pass `{pass}` failed: {message}")]
    Failed {
        /// The pass.
        pass: String,
        /// What went wrong.
        message: String,
    },
}

fn known_options(known: &str) -> String {
    if known.is_empty() {
        "it takes no options".to_string()
    } else {
        format!("known options: {known}")
    }
}

impl PassError {
    /// An [`PassError::UnknownOption`] error for a pass accepting the options `known`.
    pub fn unknown_option(pass: &str, option: &str, known: &[&str]) -> PassError {
        PassError::UnknownOption {
            pass: pass.to_string(),
            option: option.to_string(),
            known: known.join(", "),
        }
    }

    /// An [`PassError::InvalidOptionValue`] error.
    pub fn invalid_value(pass: &str, option: &str, value: &str, reason: &str) -> PassError {
        PassError::InvalidOptionValue {
            pass: pass.to_string(),
            option: option.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A [`PassError::Failed`] error.
    pub fn failed(pass: &str, message: impl Into<String>) -> PassError {
        PassError::Failed {
            pass: pass.to_string(),
            message: message.into(),
        }
    }
}
