//! Scheme files (TOML).
//!
//! ```toml
//! name = "my-scheme"          # optional; the file path otherwise
//! bias = 20                   # biases of the last 20 backbone convs
//! biases_on_path = true       # optional (default true): see the module documentation
//!
//! [[weight]]
//! layer = 24                  # backbone conv index ...
//! ratio = "1/4"               # 1/8, 1/4, 1/2, 1 (or 0.125, 0.25, 0.5, 1.0)
//!
//! [[weight]]
//! tensor = "blocks.9.pointwise1.weight"   # ... or the weight's name
//! ratio = 1
//! ```

use super::{LayerRef, Ratio, SchemeError, SparseScheme, WeightUpdate};
use serde::Deserialize;

/// The contents of a scheme file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemeFile {
    /// The scheme's name.
    pub name: Option<String>,
    /// Biases of the last `bias` backbone convs train.
    pub bias: usize,
    /// Train the bias of every conv from the earliest trained weight on (default true).
    pub biases_on_path: Option<bool>,
    /// The weights trained.
    #[serde(default)]
    pub weight: Vec<WeightEntry>,
}

/// One `[[weight]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightEntry {
    /// Backbone conv index.
    pub layer: Option<usize>,
    /// Or the weight tensor's name.
    pub tensor: Option<String>,
    /// The ratio: a string `1/8` or a number.
    pub ratio: RatioEntry,
}

/// A ratio as written in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum RatioEntry {
    /// `"1/4"`.
    Text(String),
    /// `0.25` or `1`.
    Float(f64),
    /// `1`.
    Int(i64),
}

/// Parses a scheme file's text.
pub(super) fn parse(text: &str, path: &str) -> Result<SparseScheme, SchemeError> {
    let err = |message: String| SchemeError::File {
        path: path.to_string(),
        message,
    };
    let file: SchemeFile = toml::from_str(text).map_err(|e| err(e.to_string().trim().into()))?;
    let mut weights = Vec::new();
    for (i, w) in file.weight.iter().enumerate() {
        let layer = match (&w.layer, &w.tensor) {
            (Some(l), None) => LayerRef::Index(*l),
            (None, Some(t)) => LayerRef::Tensor(t.clone()),
            _ => {
                return Err(err(format!(
                    "[[weight]] #{}: give exactly one of `layer` (a backbone conv index) and `tensor` (a weight name)",
                    i + 1
                )))
            }
        };
        let text = match &w.ratio {
            RatioEntry::Text(t) => t.clone(),
            RatioEntry::Float(f) => f.to_string(),
            RatioEntry::Int(n) => n.to_string(),
        };
        let ratio = Ratio::parse(&text)
            .map_err(|e| err(format!("[[weight]] #{} ({layer}): {e}", i + 1)))?;
        weights.push(WeightUpdate { layer, ratio });
    }
    Ok(SparseScheme {
        name: file.name.unwrap_or_else(|| path.to_string()),
        n_bias: file.bias,
        weights,
        biases_on_path: file.biases_on_path.unwrap_or(true),
    })
}
