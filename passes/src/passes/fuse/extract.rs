//! Extraction by bytes materialised, aware that the result is a DAG.
//!
//! A tree cost (egg's `Extractor`) counts a value used twice twice; here the cost of choosing a
//! node for a class is the total over the *set* of classes its choice needs (the class itself and,
//! transitively, the classes of its operands), so shared values count once. Each class in the set
//! costs the bytes of its value when its chosen node materialises one (views — reshape, flatten —
//! and leaves cost nothing), then one per op as a tie-break (a shorter chain of views wins).
//! Classes whose value is materialised anyway (the roots: values the effectful ops and the
//! outputs use) cost nothing, so a fusion that would recompute a value still needed elsewhere
//! is not chosen.
//!
//! The choice is greedy, the DAG extraction of the extraction-gym family: classes are visited
//! in id order (operands before users, as the graph was built) until no choice improves; a node
//! is taken only when every operand class has a choice and its set does not contain the class
//! itself (no cycles). The result is not always the optimum (which is NP-hard); it is exact for
//! the rewrites here, whose alternatives differ locally.

use super::lang::{node_op, TensorGraph, TensorNode};
use egg::{Id, Language};
use mite_ir::analysis::liveness::is_view;
use std::collections::{HashMap, HashSet};

/// A set of classes as a bitset over class ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ClassSet(Vec<u64>);

impl ClassSet {
    fn insert(&mut self, id: usize) {
        let (w, b) = (id / 64, id % 64);
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << b;
    }

    fn contains(&self, id: usize) -> bool {
        self.0.get(id / 64).is_some_and(|w| w >> (id % 64) & 1 == 1)
    }

    fn union_with(&mut self, other: &ClassSet) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            (0..64)
                .filter(move |b| word >> b & 1 == 1)
                .map(move |b| w * 64 + b)
        })
    }
}

/// The cost of a choice: bytes materialised, then ops.
pub type Cost = (u64, u64);

/// The chosen node of every class that has one, with the set of classes its DAG needs.
#[derive(Debug, Default)]
pub struct Extraction {
    choice: HashMap<Id, (TensorNode, Cost)>,
    sets: HashMap<Id, ClassSet>,
    pinned: HashSet<Id>,
}

impl Extraction {
    /// The node chosen for `class` (canonical id).
    pub fn node(&self, class: Id) -> Option<&TensorNode> {
        self.choice.get(&class).map(|(n, _)| n)
    }

    /// The cost of the DAG needed for `class` under the final choices.
    pub fn cost(&self, graph: &TensorGraph, class: Id) -> Option<Cost> {
        let set = self.sets.get(&class)?;
        Some(total(graph, &self.pinned, set, &self.choice))
    }
}

/// The cost of the classes in `set` under `choice`.
fn total(
    graph: &TensorGraph,
    pinned: &HashSet<Id>,
    set: &ClassSet,
    choice: &HashMap<Id, (TensorNode, Cost)>,
) -> Cost {
    set.iter().fold((0, 0), |acc, c| {
        let c = Id::from(c);
        let own = choice
            .get(&c)
            .map_or((0, 0), |(n, _)| own_cost(graph, pinned, c, n));
        (acc.0 + own.0, acc.1 + own.1)
    })
}

/// What one node of class `class` costs on its own: bytes of its value unless it is a view or a
/// leaf, and one op; nothing in a pinned class (a value that exists anyway).
pub fn own_cost(graph: &TensorGraph, pinned: &HashSet<Id>, class: Id, node: &TensorNode) -> Cost {
    if pinned.contains(&graph.find(class)) {
        return (0, 0);
    }
    match node_op(graph, node) {
        None => (0, 0),
        Some(op) if is_view(op) => (0, 1),
        Some(_) => (graph.analysis.node_type(node).size_bytes() as u64, 1),
    }
}

/// The most sweeps over the classes.
const MAX_SWEEPS: usize = 32;

/// Chooses a node for every class (see the module documentation). The classes in `pinned` hold
/// values that are materialised whatever the choice (the roots): they cost nothing.
///
/// A node with one operand class (a chain) costs that class's cost plus its own, in constant
/// time; a node with several counts the union of their sets, so shared classes count once.
pub fn extract(graph: &TensorGraph, pinned: &HashSet<Id>) -> Extraction {
    let mut ids: Vec<Id> = graph.classes().map(|c| c.id).collect();
    ids.sort();
    let mut sets: HashMap<Id, ClassSet> = HashMap::new();
    let mut choice: HashMap<Id, (TensorNode, Cost)> = HashMap::new();
    // Costs only decrease, so this ends; the cap bounds the time on adversarial graphs.
    for _ in 0..MAX_SWEEPS {
        let mut changed = false;
        for &class in &ids {
            for node in &graph[class].nodes {
                let mut children: Vec<Id> =
                    node.children().iter().map(|&c| graph.find(c)).collect();
                children.sort();
                children.dedup();
                if children.iter().any(|c| !sets.contains_key(c)) {
                    continue;
                }
                let mut set = ClassSet::default();
                for c in &children {
                    set.union_with(&sets[c]);
                }
                if set.contains(usize::from(class)) {
                    continue;
                }
                set.insert(usize::from(class));
                let own = own_cost(graph, pinned, class, node);
                let cost = match children.as_slice() {
                    [] => own,
                    [only] => {
                        let c = choice.get(only).map_or((0, 0), |&(_, c)| c);
                        (c.0 + own.0, c.1 + own.1)
                    }
                    _ => {
                        let rest = total(graph, pinned, &set, &choice);
                        let mine = choice
                            .get(&class)
                            .map_or((0, 0), |(n, _)| own_cost(graph, pinned, class, n));
                        // `total` counted the class's current choice; count this node instead.
                        (rest.0 - mine.0 + own.0, rest.1 - mine.1 + own.1)
                    }
                };
                if choice.get(&class).is_none_or(|&(_, old)| cost < old) {
                    choice.insert(class, (node.clone(), cost));
                    sets.insert(class, set);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    Extraction {
        choice,
        sets,
        pinned: pinned.clone(),
    }
}
