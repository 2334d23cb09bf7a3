//! The registry of passes by name, for textual pipelines.

use crate::pass::Pass;
use crate::passes::{
    Autodiff, Canonicalize, ConstantFold, Cse, Dce, DeadGradientElimination, Dequantize, Fuse,
    Schedule, StreamBottlenecks,
};
use crate::pipeline::{parse_pipeline, PipelineParseError};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// Creates a fresh instance of a pass (with default options).
pub type PassFactory = Box<dyn Fn() -> Box<dyn Pass> + Send + Sync>;

/// A registered pass: its name and description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassInfo<'a> {
    /// The name used in pipelines.
    pub name: &'a str,
    /// A one-line description.
    pub description: &'a str,
}

/// Why a pass could not be registered.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RegisterError {
    /// A pass of this name is registered already.
    #[error("a pass named `{0}` is registered already")]
    Duplicate(String),
    /// The name cannot be written in a pipeline.
    #[error("invalid pass name `{0}`: use letters, digits, `-`, `_` and `.`")]
    InvalidName(String),
}

struct Entry {
    description: String,
    factory: PassFactory,
}

/// Passes by name; parses textual pipelines into pass instances.
///
/// ```
/// use mite_passes::{Pass, PassError, PassRegistry, Statistics};
/// use mite_ir::Module;
///
/// struct Nothing;
/// impl Pass for Nothing {
///     fn name(&self) -> &str { "nothing" }
///     fn description(&self) -> &str { "Does nothing" }
///     fn run(&mut self, _: &mut Module, _: &mut Statistics) -> Result<bool, PassError> {
///         Ok(false)
///     }
/// }
///
/// let mut registry = PassRegistry::with_builtin();
/// registry.register("nothing", "Does nothing", || Box::new(Nothing)).unwrap();
/// let passes = registry.parse_pipeline("nothing,dce").unwrap();
/// assert_eq!(passes[0].name(), "nothing");
/// assert!(registry.list().any(|p| p.name == "cse"));
/// ```
#[derive(Default)]
pub struct PassRegistry {
    entries: BTreeMap<String, Entry>,
}

impl PassRegistry {
    /// An empty registry.
    pub fn new() -> PassRegistry {
        PassRegistry::default()
    }

    /// A registry with the built-in passes: `autodiff`, `canonicalize`, `constant-fold`, `cse`,
    /// `dce`, `dge`, `dequantize`, `schedule`.
    pub fn with_builtin() -> PassRegistry {
        let mut r = PassRegistry::new();
        r.register_default::<Autodiff>()
            .and_then(|()| r.register_default::<Canonicalize>())
            .and_then(|()| r.register_default::<ConstantFold>())
            .and_then(|()| r.register_default::<Cse>())
            .and_then(|()| r.register_default::<Dce>())
            .and_then(|()| r.register_default::<DeadGradientElimination>())
            .and_then(|()| r.register_default::<Dequantize>())
            .and_then(|()| r.register_default::<Fuse>())
            .and_then(|()| r.register_default::<Schedule>())
            .and_then(|()| r.register_default::<StreamBottlenecks>())
            .expect("built-in pass names are valid and distinct");
        r
    }

    /// Registers a pass under `name` (which should equal the pass's [`Pass::name`]).
    pub fn register(
        &mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        factory: impl Fn() -> Box<dyn Pass> + Send + Sync + 'static,
    ) -> Result<(), RegisterError> {
        let name = name.into();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(RegisterError::InvalidName(name));
        }
        if self.entries.contains_key(&name) {
            return Err(RegisterError::Duplicate(name));
        }
        self.entries.insert(
            name,
            Entry {
                description: description.into(),
                factory: Box::new(factory),
            },
        );
        Ok(())
    }

    /// Registers pass type `P` under its [`Pass::name`] and [`Pass::description`]; each instance
    /// is created with [`Default::default`].
    pub fn register_default<P: Pass + Default + 'static>(&mut self) -> Result<(), RegisterError> {
        let pass = P::default();
        self.register(pass.name(), pass.description(), || {
            Box::new(P::default()) as Box<dyn Pass>
        })
    }

    /// Whether a pass named `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// A fresh instance of pass `name` with default options.
    pub fn create(&self, name: &str) -> Option<Box<dyn Pass>> {
        self.entries.get(name).map(|e| (e.factory)())
    }

    /// The registered passes, sorted by name.
    pub fn list(&self) -> impl Iterator<Item = PassInfo<'_>> {
        self.entries.iter().map(|(name, e)| PassInfo {
            name,
            description: &e.description,
        })
    }

    /// The names of the registered passes, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Parses a textual pipeline and creates its passes with their options set.
    pub fn parse_pipeline(&self, text: &str) -> Result<Vec<Box<dyn Pass>>, PipelineParseError> {
        let mut passes = Vec::new();
        for element in parse_pipeline(text)? {
            let Some(mut pass) = self.create(&element.name) else {
                return Err(PipelineParseError::UnknownPass {
                    position: element.position,
                    name: element.name,
                    known: self.names().join(", "),
                });
            };
            for option in &element.options {
                pass.set_option(&option.key, &option.value)
                    .map_err(|error| PipelineParseError::Option {
                        position: option.position,
                        error,
                    })?;
            }
            passes.push(pass);
        }
        Ok(passes)
    }
}

impl fmt::Display for PassRegistry {
    /// One pass per line: the name padded to a column, then the description.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.entries.keys().map(String::len).max().unwrap_or(0);
        for info in self.list() {
            writeln!(f, "  {:width$}  {}", info.name, info.description)?;
        }
        Ok(())
    }
}

impl fmt::Debug for PassRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
