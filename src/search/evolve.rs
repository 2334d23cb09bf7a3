//! Search for the scheme with the best summed contribution under a memory budget:
//! `argmax Δacc_b[:k] + Σ Δacc_{W_i,r}` subject to `Memory(k, i, r) ≤ budget` (NOTES §3), by an
//! evolutionary search and, for comparison, by random search with the same number of
//! evaluations. The memory is the paper's analytic extra memory of the resolved scheme (with the
//! biases on the path trained); both searches are seeded.

use crate::train::scheme::{
    analytic_extra_bits, Layer, LayerRef, Ratio, Scheme, SparseScheme, WeightUpdate,
};
use mite_zoo::rng::SplitMix64;
use std::collections::HashMap;

/// The measured contributions (accuracy gains over classifier-only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contributions {
    /// `(k, Δacc)` of training the last k biases; k = 0 (gain 0) is always a choice.
    pub bias: Vec<(usize, f64)>,
    /// Per backbone conv index, `(ratio, Δacc)` of training its weight at that ratio.
    pub weights: Vec<(usize, Vec<(Ratio, f64)>)>,
}

/// A point of the search space: an index into `bias`, and per weight layer none or an index
/// into its ratios.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Genome {
    bias: usize,
    weights: Vec<Option<usize>>,
}

/// The best scheme a search found.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// The scheme.
    pub scheme: SparseScheme,
    /// Its summed contribution.
    pub score: f64,
    /// Its analytic extra memory in bytes.
    pub bytes: u64,
    /// Evaluations used.
    pub evaluations: usize,
}

/// The contributions and the model's layers: what a search explores.
pub struct SearchSpace<'a> {
    layers: &'a [Layer],
    contributions: Contributions,
    memory: HashMap<Genome, u64>,
}

impl<'a> SearchSpace<'a> {
    /// A space over `contributions` for a model with `layers`.
    pub fn new(layers: &'a [Layer], mut contributions: Contributions) -> SearchSpace<'a> {
        if !contributions.bias.iter().any(|&(k, _)| k == 0) {
            contributions.bias.insert(0, (0, 0.0));
        }
        SearchSpace {
            layers,
            contributions,
            memory: HashMap::new(),
        }
    }

    /// The scheme of a genome.
    pub fn scheme(&self, g: &Genome, name: &str) -> SparseScheme {
        let c = &self.contributions;
        SparseScheme {
            name: name.to_string(),
            n_bias: c.bias[g.bias].0,
            weights: g
                .weights
                .iter()
                .zip(&c.weights)
                .filter_map(|(choice, (index, ratios))| {
                    choice.map(|r| WeightUpdate {
                        layer: LayerRef::Index(*index),
                        ratio: ratios[r].0,
                    })
                })
                .collect(),
            biases_on_path: true,
        }
    }

    /// Summed contribution.
    pub fn score(&self, g: &Genome) -> f64 {
        let c = &self.contributions;
        c.bias[g.bias].1
            + g.weights
                .iter()
                .zip(&c.weights)
                .filter_map(|(choice, (_, ratios))| choice.map(|r| ratios[r].1))
                .sum::<f64>()
    }

    /// Analytic extra memory in bytes (cached).
    pub fn bytes(&mut self, g: &Genome) -> Result<u64, String> {
        if let Some(&b) = self.memory.get(g) {
            return Ok(b);
        }
        let trained = Scheme::Sparse(self.scheme(g, "candidate"))
            .resolve(self.layers)
            .map_err(|e| format!("error: {e}"))?;
        let b = analytic_extra_bits(self.layers, &trained).div_ceil(8);
        self.memory.insert(g.clone(), b);
        Ok(b)
    }

    /// The memory of the smallest scheme (classifier only).
    pub fn minimum_bytes(&mut self) -> Result<u64, String> {
        let g = Genome {
            bias: self
                .contributions
                .bias
                .iter()
                .position(|&(k, _)| k == 0)
                .unwrap_or(0),
            weights: vec![None; self.contributions.weights.len()],
        };
        self.bytes(&g)
    }

    fn random(&self, rng: &mut SplitMix64) -> Genome {
        let pick = |rng: &mut SplitMix64, n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
        Genome {
            bias: pick(rng, self.contributions.bias.len()),
            weights: self
                .contributions
                .weights
                .iter()
                .map(|(_, ratios)| {
                    if rng.next_u64() % 2 == 0 || ratios.is_empty() {
                        None
                    } else {
                        Some(pick(rng, ratios.len()))
                    }
                })
                .collect(),
        }
    }

    fn mutate(&self, g: &mut Genome, rng: &mut SplitMix64) {
        let genes = 1 + g.weights.len();
        let gene = (rng.next_u64() % genes as u64) as usize;
        if gene == 0 {
            g.bias = (rng.next_u64() % self.contributions.bias.len() as u64) as usize;
        } else {
            let n = self.contributions.weights[gene - 1].1.len() as u64;
            let v = rng.next_u64() % (n + 1);
            g.weights[gene - 1] = (v < n).then_some(v as usize);
        }
    }

    /// Fitness: the score if within budget, else minus infinity.
    fn fitness(&mut self, g: &Genome, budget: u64) -> Result<f64, String> {
        Ok(if self.bytes(g)? <= budget {
            self.score(g)
        } else {
            f64::NEG_INFINITY
        })
    }

    fn found(&mut self, g: &Genome, name: &str, evaluations: usize) -> Result<Found, String> {
        Ok(Found {
            scheme: self.scheme(g, name),
            score: self.score(g),
            bytes: self.bytes(g)?,
            evaluations,
        })
    }

    /// Random search: the best of `evaluations` random genomes within `budget`.
    pub fn random_search(
        &mut self,
        budget: u64,
        evaluations: usize,
        seed: u64,
    ) -> Result<Option<Found>, String> {
        let mut rng = SplitMix64::new(seed);
        let mut best: Option<(f64, Genome)> = None;
        for _ in 0..evaluations {
            let g = self.random(&mut rng);
            let f = self.fitness(&g, budget)?;
            if f.is_finite() && best.as_ref().is_none_or(|(b, _)| f > *b) {
                best = Some((f, g));
            }
        }
        best.map(|(_, g)| self.found(&g, "random-search", evaluations))
            .transpose()
    }

    /// Evolutionary search: a population of 32 seeded random genomes; each generation keeps the
    /// best 8 and fills the rest with uniform crossovers of two of them plus one or two
    /// mutations; stops after `evaluations` fitness evaluations.
    pub fn evolutionary_search(
        &mut self,
        budget: u64,
        evaluations: usize,
        seed: u64,
    ) -> Result<Option<Found>, String> {
        const POPULATION: usize = 32;
        const PARENTS: usize = 8;
        let mut rng = SplitMix64::new(seed);
        let mut used = 0;
        let mut population: Vec<(f64, Genome)> = Vec::new();
        while population.len() < POPULATION && used < evaluations {
            let g = self.random(&mut rng);
            population.push((self.fitness(&g, budget)?, g));
            used += 1;
        }
        while used < evaluations {
            population.sort_by(|a, b| b.0.total_cmp(&a.0));
            population.truncate(PARENTS);
            let parents = population.clone();
            while population.len() < POPULATION && used < evaluations {
                let a = &parents[(rng.next_u64() % parents.len() as u64) as usize].1;
                let b = &parents[(rng.next_u64() % parents.len() as u64) as usize].1;
                let mut child = Genome {
                    bias: if rng.next_u64() % 2 == 0 {
                        a.bias
                    } else {
                        b.bias
                    },
                    weights: a
                        .weights
                        .iter()
                        .zip(&b.weights)
                        .map(|(x, y)| if rng.next_u64() % 2 == 0 { *x } else { *y })
                        .collect(),
                };
                for _ in 0..1 + rng.next_u64() % 2 {
                    self.mutate(&mut child, &mut rng);
                }
                population.push((self.fitness(&child, budget)?, child));
                used += 1;
            }
        }
        population.sort_by(|a, b| b.0.total_cmp(&a.0));
        match population.first() {
            Some((f, g)) if f.is_finite() => {
                let g = g.clone();
                self.found(&g, "evolutionary-search", used).map(Some)
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::scheme::layers;

    /// Synthetic contributions on MbV2: later layers and pointwise1 convs contribute more.
    fn space(l: &[Layer]) -> SearchSpace<'_> {
        let weights = (27..51)
            .map(|i| {
                let base = (i as f64 - 20.0) / 10.0 * if i % 3 == 0 { 2.0 } else { 1.0 };
                let ratios = Ratio::ALL
                    .iter()
                    .map(|&r| (r, base * r.value().sqrt()))
                    .collect();
                (i, ratios)
            })
            .collect();
        let bias = (0..=8).map(|j| (j * 4, j as f64 * 0.8)).collect();
        SearchSpace::new(l, Contributions { bias, weights })
    }

    #[test]
    fn evolutionary_beats_random_at_equal_evaluations_and_respects_the_budget() {
        let m = mite_zoo::mbv2_w035();
        let l = layers(&m);
        let budget = 100 * 1024;
        let mut wins = 0;
        for seed in 0..5 {
            let mut s = space(&l);
            let evo = s.evolutionary_search(budget, 2000, seed).unwrap().unwrap();
            let rnd = s.random_search(budget, 2000, seed).unwrap().unwrap();
            assert!(evo.bytes <= budget && rnd.bytes <= budget);
            assert_eq!(evo.evaluations, rnd.evaluations);
            if evo.score > rnd.score {
                wins += 1;
            }
        }
        assert_eq!(wins, 5);
    }

    #[test]
    fn an_impossible_budget_finds_nothing() {
        let m = mite_zoo::mbv2_w035();
        let l = layers(&m);
        let mut s = space(&l);
        assert!(s.minimum_bytes().unwrap() > 100);
        assert!(s.evolutionary_search(100, 200, 1).unwrap().is_none());
        assert!(s.random_search(100, 200, 1).unwrap().is_none());
    }
}
