//! Named counters reported by passes.

use indexmap::IndexMap;
use std::fmt;

/// Named counters, in the order they were first added (deterministic for deterministic passes).
///
/// A pass receives a fresh set for each run and names its counters without a prefix
/// (`ops-removed`); [`PipelineReport::statistics`](crate::PipelineReport::statistics) merges them
/// under the pass's name (`dce.ops-removed`). Displayed one counter per line, `name = value`.
///
/// ```
/// use mite_passes::Statistics;
/// let mut s = Statistics::new();
/// s.add("ops-removed", 2);
/// s.increment("ops-removed");
/// s.add("globals-removed", 0);
/// assert_eq!(s.get("ops-removed"), 3);
/// assert_eq!(s.to_string(), "ops-removed = 3\nglobals-removed = 0\n");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statistics {
    counters: IndexMap<String, u64>,
}

impl Statistics {
    /// No counters.
    pub fn new() -> Statistics {
        Statistics::default()
    }

    /// Adds `n` to counter `name`, creating it (even when `n` is 0).
    pub fn add(&mut self, name: &str, n: u64) {
        match self.counters.get_mut(name) {
            Some(c) => *c += n,
            None => {
                self.counters.insert(name.to_string(), n);
            }
        }
    }

    /// Adds 1 to counter `name`.
    pub fn increment(&mut self, name: &str) {
        self.add(name, 1);
    }

    /// The value of counter `name` (0 if it was never added).
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Whether counter `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.counters.contains_key(name)
    }

    /// The counters in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counters.iter().map(|(k, &v)| (k.as_str(), v))
    }

    /// Number of counters.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether there are no counters.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Adds every counter of `other` to this set, named `prefix.name`.
    pub fn merge_prefixed(&mut self, prefix: &str, other: &Statistics) {
        for (name, n) in other.iter() {
            self.add(&format!("{prefix}.{name}"), n);
        }
    }
}

impl fmt::Display for Statistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, n) in self.iter() {
            writeln!(f, "{name} = {n}")?;
        }
        Ok(())
    }
}
