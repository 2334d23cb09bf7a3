//! Contribution analysis: fine-tune each candidate (the biases of the last k backbone convs; one
//! conv's weight at a ratio) on a dataset and record its accuracy gain over classifier-only.
//!
//! Runs candidates in parallel on `jobs` threads; every finished candidate is appended at once
//! to the results file (one JSON object per line), so an interrupted run loses no finished
//! candidate and a rerun with the same settings only runs the missing ones.

use crate::train::scheme::{LayerRef, Ratio, Scheme, SparseScheme, WeightUpdate};
use crate::train::{train, TrainOptions};
use mite_data::Dataset;
use mite_ir::Module;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;

/// One candidate update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Candidate {
    /// Classifier only (the baseline).
    Baseline,
    /// Biases of the last `k` backbone convs (and the classifier).
    Bias(usize),
    /// The weight of backbone conv `index` at `ratio` (and the classifier), no bias.
    Weight {
        /// Backbone conv index.
        index: usize,
        /// Channel ratio.
        ratio: Ratio,
    },
}

impl Candidate {
    /// `classifier`, `bias:K`, `weight:I:R`.
    pub fn key(&self) -> String {
        match self {
            Candidate::Baseline => "classifier".into(),
            Candidate::Bias(k) => format!("bias:{k}"),
            Candidate::Weight { index, ratio } => format!("weight:{index}:{ratio}"),
        }
    }

    /// The scheme fine-tuned for this candidate.
    pub fn scheme(&self) -> Scheme {
        let (n_bias, weights) = match *self {
            Candidate::Baseline => (0, Vec::new()),
            Candidate::Bias(k) => (k, Vec::new()),
            Candidate::Weight { index, ratio } => (
                0,
                vec![WeightUpdate {
                    layer: LayerRef::Index(index),
                    ratio,
                }],
            ),
        };
        Scheme::Sparse(SparseScheme {
            name: self.key(),
            n_bias,
            weights,
            biases_on_path: false,
        })
    }
}

/// One line of the results file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContributionRecord {
    /// [`Candidate::key`].
    pub candidate: String,
    /// The settings it was measured with (runs with other settings are not reused).
    pub settings: String,
    /// Top-1 accuracy after fine-tuning.
    pub accuracy: f64,
    /// Mean training loss of the last 10% of the steps.
    pub final_train_loss: f32,
}

/// Reads the records of `path` measured with `settings` (none if the file does not exist).
pub fn read_results(path: &Path, settings: &str) -> Result<Vec<ContributionRecord>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("error: cannot read {}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("error: {}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: ContributionRecord = serde_json::from_str(&line).map_err(|e| {
            format!(
                "error: {}:{}: not a contribution record: {e}",
                path.display(),
                i + 1
            )
        })?;
        if r.settings == settings {
            out.push(r);
        }
    }
    Ok(out)
}

/// Accuracy per candidate key, from records.
pub fn accuracies(records: &[ContributionRecord]) -> HashMap<String, f64> {
    records
        .iter()
        .map(|r| (r.candidate.clone(), r.accuracy))
        .collect()
}

/// Fine-tunes every candidate not yet in `results` (run with `settings`) on `jobs` threads and
/// appends each result to `results` as it finishes; `progress(done, total, key)` after each.
#[allow(clippy::too_many_arguments)]
pub fn analyse(
    module: &Module,
    candidates: &[Candidate],
    opts: &TrainOptions,
    train_data: &Dataset,
    eval: (&Dataset, Option<usize>),
    results: &Path,
    settings: &str,
    jobs: usize,
    progress: impl Fn(usize, usize, &str) + Sync,
) -> Result<Vec<ContributionRecord>, String> {
    let done = read_results(results, settings)?;
    let have = accuracies(&done);
    let todo: Vec<Candidate> = candidates
        .iter()
        .copied()
        .filter(|c| !have.contains_key(&c.key()))
        .collect();
    let total = candidates.len();
    let finished = Mutex::new((done, total - todo.len()));
    let file = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(results)
            .map_err(|e| format!("error: cannot write {}: {e}", results.display()))?,
    );
    let queue = Mutex::new(todo.into_iter());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let Some(c) = queue.lock().ok().and_then(|mut q| q.next()) else {
                    return;
                };
                let mut m = module.clone();
                let mut o = opts.clone();
                o.scheme = c.scheme();
                match train(&mut m, &o, train_data, Some(eval), |_, _, _| {}) {
                    Ok(report) => {
                        let record = ContributionRecord {
                            candidate: c.key(),
                            settings: settings.to_string(),
                            accuracy: report.eval_accuracy.unwrap_or(0.0),
                            final_train_loss: report.final_train_loss,
                        };
                        let line = serde_json::to_string(&record).unwrap_or_default();
                        if let Ok(mut f) = file.lock() {
                            if let Err(e) = writeln!(f, "{line}").and_then(|()| f.flush()) {
                                if let Ok(mut errs) = errors.lock() {
                                    errs.push(format!("error: {}: {e}", results.display()));
                                }
                            }
                        }
                        if let Ok(mut fin) = finished.lock() {
                            fin.0.push(record);
                            fin.1 += 1;
                            progress(fin.1, total, &c.key());
                        }
                    }
                    Err(e) => {
                        if let Ok(mut errs) = errors.lock() {
                            errs.push(format!("candidate {}: {e}", c.key()));
                        }
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(finished.into_inner().map(|f| f.0).unwrap_or_default())
}
