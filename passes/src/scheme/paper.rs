//! The sparse-update schemes the paper ships for its three models (`../shared/paper/NOTES.md`
//! §3): bias count and `layer × ratio` lists exactly as listed there.

use super::{Ratio, SparseScheme, WeightUpdate};

/// One shipped scheme: budget name, `n_bias`, and `(conv index, d)` for the weight of that conv
/// at ratio `1/d`.
type Shipped = (&'static str, usize, &'static [(usize, u8)]);

/// A model the paper ships schemes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaperModel {
    /// Its name (`mcunet-5fps`, `mbv2-w0.35`, `proxyless-w0.3`).
    pub name: &'static str,
    /// Its number of backbone convolutions, by which a module is recognised.
    pub backbone_convs: usize,
    /// Its schemes: `(budget name, n_bias, [(conv index, ratio as 1/den, or 1)])`.
    schemes: &'static [Shipped],
}

const MCUNET: &[Shipped] = &[
    ("49kb", 20, &[(24, 4), (27, 2), (30, 2)]),
    ("74kb", 21, &[(21, 1), (24, 1), (27, 2), (30, 1)]),
    (
        "99kb",
        22,
        &[(21, 1), (24, 1), (27, 1), (30, 1), (36, 8), (39, 4)],
    ),
    (
        "124kb",
        24,
        &[(21, 4), (24, 1), (27, 1), (30, 1), (33, 2), (39, 2)],
    ),
    (
        "148kb",
        23,
        &[(21, 1), (24, 1), (27, 1), (30, 1), (36, 1), (39, 2)],
    ),
];

const MBV2: &[Shipped] = &[
    (
        "49kb",
        16,
        &[
            (36, 1),
            (39, 1),
            (41, 4),
            (42, 8),
            (45, 8),
            (48, 8),
            (49, 8),
        ],
    ),
    (
        "99kb",
        25,
        &[
            (27, 1),
            (30, 1),
            (33, 1),
            (36, 1),
            (39, 1),
            (42, 8),
            (45, 2),
            (48, 1),
        ],
    ),
    (
        "138kb",
        34,
        &[
            (27, 1),
            (30, 1),
            (33, 1),
            (36, 1),
            (39, 1),
            (42, 1),
            (45, 1),
            (48, 1),
        ],
    ),
];

const PROXYLESS: &[Shipped] = &[
    (
        "49kb",
        21,
        &[(39, 4), (42, 1), (45, 1), (51, 8), (54, 4), (57, 4)],
    ),
    (
        "98kb",
        25,
        &[
            (36, 1),
            (39, 2),
            (42, 1),
            (45, 1),
            (48, 4),
            (51, 2),
            (54, 1),
            (57, 1),
        ],
    ),
    (
        "148kb",
        45,
        &[
            (36, 1),
            (39, 1),
            (42, 1),
            (45, 1),
            (48, 1),
            (51, 1),
            (54, 1),
            (57, 1),
        ],
    ),
];

/// The three models.
pub const PAPER_MODELS: [PaperModel; 3] = [
    PaperModel {
        name: "mcunet-5fps",
        backbone_convs: 42,
        schemes: MCUNET,
    },
    PaperModel {
        name: "mbv2-w0.35",
        backbone_convs: 51,
        schemes: MBV2,
    },
    PaperModel {
        name: "proxyless-w0.3",
        backbone_convs: 60,
        schemes: PROXYLESS,
    },
];

impl PaperModel {
    /// The model of this name.
    pub fn named(name: &str) -> Option<PaperModel> {
        PAPER_MODELS.into_iter().find(|m| m.name == name)
    }

    /// The model with this many backbone convolutions.
    pub fn with_backbone_convs(n: usize) -> Option<PaperModel> {
        PAPER_MODELS.into_iter().find(|m| m.backbone_convs == n)
    }

    /// The budget names of its schemes (`49kb`, ...), smallest first.
    pub fn budgets(&self) -> Vec<&'static str> {
        self.schemes.iter().map(|s| s.0).collect()
    }

    /// Its scheme `budget` (`49kb`), named `paper:<budget>`.
    pub fn scheme(&self, budget: &str) -> Option<SparseScheme> {
        let &(b, n_bias, weights) = self.schemes.iter().find(|s| s.0 == budget)?;
        Some(SparseScheme {
            name: format!("paper:{b}"),
            n_bias,
            weights: weights
                .iter()
                .map(|&(index, den)| WeightUpdate {
                    layer: super::LayerRef::Index(index),
                    ratio: Ratio::from_denominator(den).unwrap_or(Ratio::Full),
                })
                .collect(),
            biases_on_path: true,
        })
    }

    /// All its schemes.
    pub fn schemes(&self) -> Vec<SparseScheme> {
        self.budgets()
            .into_iter()
            .filter_map(|b| self.scheme(b))
            .collect()
    }
}
