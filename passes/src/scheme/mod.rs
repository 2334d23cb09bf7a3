//! Sparse-update schemes: which parameters (and which of their channels) a training step
//! updates (`../shared/paper/NOTES.md` §3).
//!
//! A [`Scheme`] is built from a name ([`Scheme::parse`]: `full`, `classifier`, `bias:K`,
//! `last:K`, `paper:49kb`, `paper:mbv2-w0.35:99kb`) or a TOML file ([`Scheme::from_toml`]), then
//! resolved against a model's [`layers()`] ([`Scheme::resolve`]) into the trainable tensors, and
//! applied to the module's parameters ([`Scheme::apply`]) before `autodiff` builds the step.
//! Every mismatch between a scheme and a model (an index out of range, a ratio outside
//! {1/8, 1/4, 1/2, 1}, an unknown tensor) is a [`SchemeError`] naming it.
//!
//! The sparse schemes follow the paper: the classifier always trains; the biases of the last
//! `n_bias` backbone convs train; each listed layer's weight trains at its ratio `r` (the first
//! `⌈r·C⌉` input channels of a dense conv, the first `⌈r·C⌉` channels of a depthwise one, as the
//! released compiler does); and "we always update the biases if we have backpropagated to a
//! layer": the biases of every conv from the earliest trained weight on train too, unless the
//! scheme sets `biases_on_path = false`.

mod file;
pub mod layers;
pub mod memory;
pub mod paper;
pub mod permute;

use mite_ir::{GlobalKind, Module, Trainable};
use std::fmt;
use thiserror::Error;

pub use file::SchemeFile;
pub use layers::{layers, Layer, Role};
pub use memory::analytic_extra_bits;
pub use paper::{PaperModel, PAPER_MODELS};

/// The fraction of a layer's channels a sparse tensor update trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ratio {
    /// 1/8.
    Eighth,
    /// 1/4.
    Quarter,
    /// 1/2.
    Half,
    /// All channels.
    Full,
}

impl Ratio {
    /// Every ratio, smallest first.
    pub const ALL: [Ratio; 4] = [Ratio::Eighth, Ratio::Quarter, Ratio::Half, Ratio::Full];

    /// `1/d` for d in {8, 4, 2, 1}.
    pub fn from_denominator(d: u8) -> Option<Ratio> {
        match d {
            8 => Some(Ratio::Eighth),
            4 => Some(Ratio::Quarter),
            2 => Some(Ratio::Half),
            1 => Some(Ratio::Full),
            _ => None,
        }
    }

    /// The denominator `d` of `1/d`.
    pub fn denominator(self) -> usize {
        match self {
            Ratio::Eighth => 8,
            Ratio::Quarter => 4,
            Ratio::Half => 2,
            Ratio::Full => 1,
        }
    }

    /// The ratio as a number.
    pub fn value(self) -> f64 {
        1.0 / self.denominator() as f64
    }

    /// The channels kept of `channels`: `⌈channels / d⌉`.
    pub fn kept(self, channels: usize) -> usize {
        channels.div_ceil(self.denominator())
    }

    /// Parses `1/8`, `1/4`, `1/2`, `1` (or `0.125`, `0.25`, `0.5`, `1.0`).
    pub fn parse(text: &str) -> Result<Ratio, SchemeError> {
        let t = text.trim();
        let found = Ratio::ALL
            .into_iter()
            .find(|r| r.to_string() == t || t.parse::<f64>().is_ok_and(|v| v == r.value()));
        found.ok_or_else(|| SchemeError::BadRatio(text.to_string()))
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ratio::Full => f.write_str("1"),
            r => write!(f, "1/{}", r.denominator()),
        }
    }
}

/// A layer named by a scheme.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LayerRef {
    /// By backbone conv index.
    Index(usize),
    /// By the name of its weight tensor (the ONNX initializer name).
    Tensor(String),
}

impl fmt::Display for LayerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerRef::Index(i) => write!(f, "{i}"),
            LayerRef::Tensor(t) => f.write_str(t),
        }
    }
}

/// One weight a sparse scheme updates.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WeightUpdate {
    /// The layer.
    pub layer: LayerRef,
    /// The fraction of its channels.
    pub ratio: Ratio,
}

/// A sparse-update scheme: biases of the last layers, some weights at some ratios.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SparseScheme {
    /// Its name (`paper:49kb`, a file's `name`, or the file path).
    pub name: String,
    /// Biases of the last `n_bias` backbone convs train.
    pub n_bias: usize,
    /// The weights trained.
    pub weights: Vec<WeightUpdate>,
    /// Train the bias of every conv from the earliest trained weight on (the paper's rule).
    pub biases_on_path: bool,
}

/// A choice of trainable tensors.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Every parameter.
    Full,
    /// Only the classifier.
    Classifier,
    /// Weights and biases of the last K backbone convs, plus the classifier.
    LastK(usize),
    /// Biases of the last K backbone convs, plus the classifier's weight and bias.
    BiasOnly(usize),
    /// A paper-style sparse scheme; `paper:NAME` resolves against the model when applied.
    Sparse(SparseScheme),
    /// `paper:BUDGET` or `paper:MODEL:BUDGET`: the paper's scheme for the model (recognised by
    /// its number of backbone convs unless named).
    Paper {
        /// The model's name, when given.
        model: Option<String>,
        /// The budget (`49kb`).
        budget: String,
    },
}

/// Why a scheme is not valid, or does not fit a model.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SchemeError {
    /// The name is none of the known forms.
    #[error("unknown scheme `{0}`: expected full, classifier, last:K, bias:K, paper:BUDGET, paper:MODEL:BUDGET or a .toml file")]
    UnknownName(String),
    /// A count is not a number.
    #[error("scheme `{0}`: expected a number after `:`")]
    BadCount(String),
    /// A ratio outside {1/8, 1/4, 1/2, 1}.
    #[error("ratio `{0}` is not one of 1/8, 1/4, 1/2, 1")]
    BadRatio(String),
    /// The model has no classifier layer.
    #[error("the model has no conv or linear layer to serve as the classifier")]
    NoClassifier,
    /// More backbone layers asked for than the model has.
    #[error("scheme `{scheme}`: the model has {convs} backbone convs, not {asked}")]
    TooManyLayers {
        /// The scheme.
        scheme: String,
        /// How many were asked for.
        asked: usize,
        /// How many there are.
        convs: usize,
    },
    /// A backbone index out of range.
    #[error("scheme `{scheme}`: layer index {index} is out of range (the model's backbone convs are 0..{convs})")]
    IndexOutOfRange {
        /// The scheme.
        scheme: String,
        /// The index.
        index: usize,
        /// How many there are.
        convs: usize,
    },
    /// A tensor name that is no backbone conv weight of the model.
    #[error("scheme `{scheme}`: `{tensor}` is not the weight of a backbone conv of the model")]
    UnknownTensor {
        /// The scheme.
        scheme: String,
        /// The name.
        tensor: String,
    },
    /// A layer listed twice.
    #[error("scheme `{scheme}`: layer {layer} is listed twice")]
    Duplicate {
        /// The scheme.
        scheme: String,
        /// The layer.
        layer: String,
    },
    /// A `paper:` scheme for a model the paper has no schemes for.
    #[error("`{scheme}`: the paper's schemes exist for mcunet-5fps (42 backbone convs), mbv2-w0.35 (51) and proxyless-w0.3 (60); {found}")]
    NoPaperModel {
        /// The scheme.
        scheme: String,
        /// What was found instead.
        found: String,
    },
    /// A budget the paper has no scheme for.
    #[error("`{scheme}`: the paper has no {budget} scheme for {model} (it has {available})")]
    UnknownBudget {
        /// The scheme.
        scheme: String,
        /// The budget asked for.
        budget: String,
        /// The model.
        model: String,
        /// The budgets it has.
        available: String,
    },
    /// Magnitude selection cannot reorder the channels of a tensor.
    #[error("magnitude channel selection for `{tensor}`: {reason}")]
    CannotPermute {
        /// The sliced tensor.
        tensor: String,
        /// Why not.
        reason: String,
    },
    /// A scheme file could not be read or parsed.
    #[error("scheme file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong (with line and column for TOML syntax errors).
        message: String,
    },
}

/// A tensor a resolved scheme trains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainedTensor {
    /// The parameter's name (the ONNX initializer name).
    pub name: String,
    /// Which of its elements train.
    pub trainable: Trainable,
}

impl fmt::Display for TrainedTensor {
    /// `blocks.7.pointwise1.weight`, `…[0:24]` (channels along axis 0) or `…[:, 0:24]` (axis 1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Trainable::Channels { axis, start, len } = self.trainable {
            f.write_str("[")?;
            for _ in 0..axis {
                f.write_str(":, ")?;
            }
            write!(f, "{start}:{}]", start + len)?;
        }
        Ok(())
    }
}

impl Scheme {
    /// Parses a scheme name: `full`, `classifier`, `last:K`, `bias:K`, `paper:BUDGET`,
    /// `paper:MODEL:BUDGET`; a name ending in `.toml` is read as a file ([`Scheme::from_toml`]).
    pub fn parse(text: &str) -> Result<Scheme, SchemeError> {
        if text.ends_with(".toml") {
            return Scheme::from_toml_file(std::path::Path::new(text));
        }
        let count = |k: &str| -> Result<usize, SchemeError> {
            k.parse()
                .map_err(|_| SchemeError::BadCount(text.to_string()))
        };
        match text.split_once(':') {
            None if text == "full" => Ok(Scheme::Full),
            None if text == "classifier" => Ok(Scheme::Classifier),
            Some(("last", k)) => Ok(Scheme::LastK(count(k)?)),
            Some(("bias", k)) => Ok(Scheme::BiasOnly(count(k)?)),
            Some(("paper", rest)) => {
                let (model, budget) = match rest.rsplit_once(':') {
                    Some((m, b)) => (Some(m.to_string()), b),
                    None => (None, rest),
                };
                if budget.is_empty() {
                    return Err(SchemeError::UnknownName(text.to_string()));
                }
                Ok(Scheme::Paper {
                    model,
                    budget: budget.to_string(),
                })
            }
            _ => Err(SchemeError::UnknownName(text.to_string())),
        }
    }

    /// Reads a scheme file (see [`SchemeFile`]); its name is the file's `name` or its path.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Scheme, SchemeError> {
        let text = std::fs::read_to_string(path).map_err(|e| SchemeError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Scheme::from_toml(&text, &path.display().to_string())
    }

    /// Parses a scheme file's text; `path` names it in errors and is the default name.
    pub fn from_toml(text: &str, path: &str) -> Result<Scheme, SchemeError> {
        file::parse(text, path).map(Scheme::Sparse)
    }

    /// The scheme's name as the user would write it.
    pub fn name(&self) -> String {
        match self {
            Scheme::Full => "full".into(),
            Scheme::Classifier => "classifier".into(),
            Scheme::LastK(k) => format!("last:{k}"),
            Scheme::BiasOnly(k) => format!("bias:{k}"),
            Scheme::Sparse(s) => s.name.clone(),
            Scheme::Paper {
                model: Some(m),
                budget,
            } => format!("paper:{m}:{budget}"),
            Scheme::Paper {
                model: None,
                budget,
            } => format!("paper:{budget}"),
        }
    }

    /// The sparse scheme this is for a model with `layers` (`paper:` looked up, others as is).
    pub fn to_sparse(&self, layers: &[Layer]) -> Result<Option<SparseScheme>, SchemeError> {
        match self {
            Scheme::Sparse(s) => Ok(Some(s.clone())),
            Scheme::Paper { model, budget } => {
                let convs = backbone_count(layers);
                let name = self.name();
                let found = match model {
                    Some(m) => PaperModel::named(m).ok_or_else(|| SchemeError::NoPaperModel {
                        scheme: name.clone(),
                        found: format!("`{m}` is none of them"),
                    })?,
                    None => PaperModel::with_backbone_convs(convs).ok_or_else(|| {
                        SchemeError::NoPaperModel {
                            scheme: name.clone(),
                            found: format!("this model has {convs} backbone convs"),
                        }
                    })?,
                };
                let scheme = found
                    .scheme(budget)
                    .ok_or_else(|| SchemeError::UnknownBudget {
                        scheme: name.clone(),
                        budget: budget.clone(),
                        model: found.name.to_string(),
                        available: found.budgets().join(", "),
                    })?;
                Ok(Some(scheme))
            }
            _ => Ok(None),
        }
    }

    /// The tensors this scheme trains in a model with `layers`, in layer order (weight before
    /// bias). `Full` trains every parameter of the module and is resolved by [`Scheme::apply`];
    /// here it lists the layers' weights and biases.
    pub fn resolve(&self, layers: &[Layer]) -> Result<Vec<TrainedTensor>, SchemeError> {
        let convs = backbone_count(layers);
        let name = self.name();
        if self != &Scheme::Full && !layers.iter().any(|l| l.role == Role::Classifier) {
            return Err(SchemeError::NoClassifier);
        }
        // Per layer: (weight trainability, bias trains).
        let mut plan: Vec<(Trainable, bool)> = vec![(Trainable::None, false); layers.len()];
        let classifier = layers.len().saturating_sub(1);
        let too_many = |asked: usize| SchemeError::TooManyLayers {
            scheme: name.clone(),
            asked,
            convs,
        };
        match self {
            Scheme::Full => plan.iter_mut().for_each(|p| *p = (Trainable::All, true)),
            Scheme::Classifier => {}
            Scheme::LastK(k) | Scheme::BiasOnly(k) => {
                if *k > convs {
                    return Err(too_many(*k));
                }
                let weights = matches!(self, Scheme::LastK(_));
                for p in &mut plan[convs - k..convs] {
                    *p = (Trainable::from_bool(weights), true);
                }
            }
            Scheme::Sparse(_) | Scheme::Paper { .. } => {
                let s = self
                    .to_sparse(layers)?
                    .ok_or_else(|| SchemeError::UnknownName(name.clone()))?;
                if s.n_bias > convs {
                    return Err(too_many(s.n_bias));
                }
                let mut lowest = convs - s.n_bias;
                let mut seen = std::collections::HashSet::new();
                for w in &s.weights {
                    let i = index_of(&w.layer, layers, &s.name)?;
                    if !seen.insert(i) {
                        return Err(SchemeError::Duplicate {
                            scheme: s.name.clone(),
                            layer: w.layer.to_string(),
                        });
                    }
                    let layer = &layers[i];
                    let channels = layer.sliceable_channels();
                    let kept = w.ratio.kept(channels);
                    plan[i].0 = if kept >= channels {
                        Trainable::All
                    } else {
                        Trainable::Channels {
                            axis: layer.slice_axis(),
                            start: 0,
                            len: kept,
                        }
                    };
                    if s.biases_on_path {
                        lowest = lowest.min(i);
                    }
                }
                for p in &mut plan[lowest..convs] {
                    p.1 = true;
                }
            }
        }
        if self != &Scheme::Full && !layers.is_empty() {
            plan[classifier] = (Trainable::All, true);
        }
        let mut out = Vec::new();
        for (layer, (w, b)) in layers.iter().zip(plan) {
            if let (Some(name), true) = (&layer.weight, w.any()) {
                out.push(TrainedTensor {
                    name: name.clone(),
                    trainable: w,
                });
            }
            if let (Some(name), true) = (&layer.bias, b) {
                out.push(TrainedTensor {
                    name: name.clone(),
                    trainable: Trainable::All,
                });
            }
        }
        Ok(out)
    }

    /// Marks the module's parameters trainable as this scheme says (all others frozen) and
    /// returns the trained tensors. `Full` marks every parameter.
    pub fn apply(&self, module: &mut Module) -> Result<Vec<TrainedTensor>, SchemeError> {
        let mut trained = self.resolve(&layers(module))?;
        if self == &Scheme::Full {
            trained = module
                .globals
                .iter()
                .filter(|(_, g)| matches!(g.kind, GlobalKind::Param { .. }))
                .map(|(name, _)| TrainedTensor {
                    name: name.clone(),
                    trainable: Trainable::All,
                })
                .collect();
        }
        for (name, g) in module.globals.iter_mut() {
            if let GlobalKind::Param { .. } = g.kind {
                let t = trained
                    .iter()
                    .find(|t| &t.name == name)
                    .map_or(Trainable::None, |t| t.trainable);
                g.kind = GlobalKind::Param { trainable: t };
            }
        }
        Ok(trained)
    }
}

/// The number of backbone layers.
fn backbone_count(layers: &[Layer]) -> usize {
    layers
        .iter()
        .filter(|l| matches!(l.role, Role::Backbone(_)))
        .count()
}

/// The position in `layers` of the backbone conv `r` names.
fn index_of(r: &LayerRef, layers: &[Layer], scheme: &str) -> Result<usize, SchemeError> {
    let convs = backbone_count(layers);
    match r {
        LayerRef::Index(i) if *i < convs => Ok(*i),
        LayerRef::Index(i) => Err(SchemeError::IndexOutOfRange {
            scheme: scheme.to_string(),
            index: *i,
            convs,
        }),
        LayerRef::Tensor(t) => layers[..convs]
            .iter()
            .position(|l| l.weight.as_deref() == Some(t.as_str()))
            .ok_or_else(|| SchemeError::UnknownTensor {
                scheme: scheme.to_string(),
                tensor: t.clone(),
            }),
    }
}

#[cfg(test)]
mod tests;
