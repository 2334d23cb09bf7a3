//! `fuse`: fusion by equality saturation on [egg](https://docs.rs/egg).
//!
//! Only the pure tensor subset of a function enters the e-graph ([`lang`]): every op with
//! [`Effect::Pure`] and one result. Everything else — arguments, parameter reads, updates — stays
//! outside: values they define are leaves, and the pure values they use (or the function
//! returns) are the roots. The named, type-guarded [`rules`] run under explicit node, iteration
//! and time limits; then [`extract`] chooses, for every root, the equivalent expression with the
//! fewest bytes materialised (a DAG cost: a value used twice counts once), and the function is
//! rewritten where that expression is cheaper than the original. Dead ops are removed.
//!
//! Rewrites on effectful ops (folding a weight gradient into its `optim.sgd`) cannot be e-graph
//! rules — an update is not a value — and are not part of this pass yet.
//!
//! Options: `node-limit` (default 20000), `iter-limit` (30), `time-limit-ms` (500).
//!
//! Statistics: `rule.NAME` (times each rule applied), `egraph-nodes`, `egraph-classes`,
//! `iterations`, `stop.saturated` / `stop.node-limit` / `stop.iter-limit` /
//! `stop.time-limit` / `stop.other` (runs that stopped so), `roots-rewritten`, `ops-added`,
//! `ops-removed`, `bytes-before` / `bytes-after` (bytes materialised by the pure subset's roots,
//! by the extraction cost).

pub mod extract;
pub mod lang;
pub mod rules;

use crate::pass::{Pass, PassError};
use crate::passes::dce::remove_dead_ops;
use crate::statistics::Statistics;
use egg::{Id, Language, Runner, SimpleScheduler, StopReason};
use lang::{OpTable, TensorGraph, TensorNode};
use mite_ir::{Effect, Function, Loc, Module, OpId, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The `fuse` pass (see the module documentation).
#[derive(Clone, Debug)]
pub struct Fuse {
    /// Stop when the e-graph has more nodes than this.
    pub node_limit: usize,
    /// Stop after this many iterations.
    pub iter_limit: usize,
    /// Stop after this long.
    pub time_limit: Duration,
}

impl Default for Fuse {
    fn default() -> Fuse {
        Fuse {
            node_limit: 20_000,
            iter_limit: 30,
            time_limit: Duration::from_millis(500),
        }
    }
}

const OPTIONS: &[&str] = &["node-limit", "iter-limit", "time-limit-ms"];

impl Pass for Fuse {
    fn name(&self) -> &str {
        "fuse"
    }

    fn description(&self) -> &str {
        "Fuses pure tensor ops by equality saturation (egg) with a bytes-materialised cost"
    }

    fn set_option(&mut self, key: &str, value: &str) -> Result<(), PassError> {
        let n: u64 = value
            .parse()
            .map_err(|_| PassError::invalid_value("fuse", key, value, "a non-negative integer"))?;
        match key {
            "node-limit" => self.node_limit = n as usize,
            "iter-limit" => self.iter_limit = n as usize,
            "time-limit-ms" => self.time_limit = Duration::from_millis(n),
            _ => return Err(PassError::unknown_option("fuse", key, OPTIONS)),
        }
        Ok(())
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let mut changed = false;
        for rule in rules::all_rules() {
            stats.add(&format!("rule.{}", rule.name), 0);
        }
        for func in &mut module.functions {
            changed |= self.run_function(func, stats);
        }
        Ok(changed)
    }
}

/// The pure subset of a function as an e-graph, and where its values went.
struct Entered {
    graph: TensorGraph,
    /// The class of every value that entered (leaves and pure results).
    class_of: HashMap<Value, Id>,
    /// The value of every leaf, by leaf index.
    leaf_values: Vec<Value>,
    /// Pure values used outside the pure subset (by effectful ops or as outputs), in order.
    roots: Vec<Value>,
}

fn is_pure(func: &Function, id: OpId) -> bool {
    let data = func.op(id);
    data.op.effect() == Effect::Pure && data.results.len() == 1
}

fn enter(func: &Function) -> Entered {
    let mut graph = TensorGraph::new(OpTable::default());
    let mut class_of: HashMap<Value, Id> = HashMap::new();
    let mut leaf_values = Vec::new();
    let mut leaf = |graph: &mut TensorGraph, class_of: &mut HashMap<Value, Id>, v: Value| {
        if let Some(&id) = class_of.get(&v) {
            return id;
        }
        let i = graph.analysis.add_leaf(func.ty(v).clone());
        leaf_values.push(v);
        let id = graph.add(TensorNode::Leaf(i));
        class_of.insert(v, id);
        id
    };
    let mut roots = Vec::new();
    let mut root_set = HashSet::new();
    for &id in func.layout() {
        let data = func.op(id);
        if is_pure(func, id) {
            let args: Vec<Id> = data
                .operands
                .iter()
                .map(|&v| leaf(&mut graph, &mut class_of, v))
                .collect();
            let r = data.result();
            let op = graph.analysis.intern(data.op.clone(), func.ty(r).clone());
            let node = graph.add(TensorNode::Op { op, args });
            class_of.insert(r, node);
        } else {
            for &v in &data.operands {
                if is_pure_value(func, v) && root_set.insert(v) {
                    roots.push(v);
                }
            }
        }
    }
    for &v in func.outputs() {
        if is_pure_value(func, v) && root_set.insert(v) {
            roots.push(v);
        }
    }
    Entered {
        graph,
        class_of,
        leaf_values,
        roots,
    }
}

fn is_pure_value(func: &Function, v: Value) -> bool {
    func.defining_op(v).is_some_and(|id| is_pure(func, id))
}

fn stop_name(reason: Option<&StopReason>) -> &'static str {
    match reason {
        Some(StopReason::Saturated) => "saturated",
        Some(StopReason::NodeLimit(_)) => "node-limit",
        Some(StopReason::IterationLimit(_)) => "iter-limit",
        Some(StopReason::TimeLimit(_)) => "time-limit",
        _ => "other",
    }
}

impl Fuse {
    /// Runs the rules on `func`'s pure subset and rewrites its roots; returns whether it changed.
    fn run_function(&self, func: &mut Function, stats: &mut Statistics) -> bool {
        let bytes_before = pure_bytes(func);
        let entered = enter(func);
        let rules: Vec<_> = rules::all_rules()
            .into_iter()
            .map(|r| r.rewrite())
            .collect();
        let runner = Runner::default()
            .with_egraph(entered.graph)
            .with_scheduler(SimpleScheduler)
            .with_node_limit(self.node_limit)
            .with_iter_limit(self.iter_limit)
            .with_time_limit(self.time_limit)
            .run(&rules);
        for it in &runner.iterations {
            for (name, n) in &it.applied {
                stats.add(&format!("rule.{name}"), *n as u64);
            }
        }
        let graph = runner.egraph;
        stats.add("egraph-nodes", graph.total_number_of_nodes() as u64);
        stats.add("egraph-classes", graph.number_of_classes() as u64);
        stats.add("iterations", runner.iterations.len() as u64);
        stats.increment(&format!("stop.{}", stop_name(runner.stop_reason.as_ref())));
        let pinned: HashSet<Id> = entered
            .roots
            .iter()
            .map(|r| graph.find(entered.class_of[r]))
            .collect();
        let extraction = extract::extract(&graph, &pinned);
        let rebuilt = Rebuild {
            graph: &graph,
            extraction: &extraction,
            class_of: &entered.class_of,
            leaf_values: &entered.leaf_values,
            pinned: &pinned,
        }
        .apply(func, &entered.roots, stats);
        let removed = if rebuilt > 0 {
            remove_dead_ops(func)
        } else {
            0
        };
        stats.add("roots-rewritten", rebuilt as u64);
        stats.add("bytes-before", bytes_before);
        stats.add("bytes-after", pure_bytes(func));
        stats.add("ops-removed", removed as u64);
        rebuilt > 0
    }
}

/// Bytes materialised by the pure ops of `func` (views excluded).
fn pure_bytes(func: &Function) -> u64 {
    func.layout()
        .iter()
        .filter(|&&id| is_pure(func, id) && !mite_ir::analysis::liveness::is_view(&func.op(id).op))
        .map(|&id| func.ty(func.op(id).result()).size_bytes() as u64)
        .sum()
}

/// The cost of the original expression of `root`: bytes of the non-view pure values it needs,
/// each once, then their number; values of pinned classes (the roots) cost nothing.
fn original_cost(func: &Function, root: Value, free: impl Fn(Value) -> bool) -> extract::Cost {
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    let mut cost = (0, 0);
    while let Some(v) = stack.pop() {
        let Some(id) = func.defining_op(v).filter(|&id| is_pure(func, id)) else {
            continue;
        };
        if !seen.insert(v) {
            continue;
        }
        let data = func.op(id);
        stack.extend(data.operands.iter().copied());
        if free(v) {
            continue;
        }
        if !mite_ir::analysis::liveness::is_view(&data.op) {
            cost.0 += func.ty(v).size_bytes() as u64;
        }
        cost.1 += 1;
    }
    cost
}

/// Rewrites the roots of a function to their extracted expressions.
struct Rebuild<'a> {
    graph: &'a TensorGraph,
    extraction: &'a extract::Extraction,
    class_of: &'a HashMap<Value, Id>,
    leaf_values: &'a [Value],
    pinned: &'a HashSet<Id>,
}

/// What building one root needs besides the graph.
struct BuildState {
    /// Positions of the original ops.
    positions: HashMap<OpId, usize>,
    /// Original pure values by their canonical node.
    original: HashMap<TensorNode, Value>,
    /// Values already built for a class (valid for every later root).
    made: HashMap<Id, Value>,
    /// Ops added.
    added: usize,
}

impl Rebuild<'_> {
    fn canonical(&self, node: &TensorNode) -> TensorNode {
        let mut n = node.clone();
        for c in n.children_mut() {
            *c = self.graph.find(*c);
        }
        n
    }

    fn state(&self, func: &Function) -> BuildState {
        let positions = func
            .layout()
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i))
            .collect();
        let mut original = HashMap::new();
        for &id in func.layout() {
            if !is_pure(func, id) {
                continue;
            }
            let data = func.op(id);
            let args: Option<Vec<Id>> = data
                .operands
                .iter()
                .map(|o| self.class_of.get(o).map(|&c| self.graph.find(c)))
                .collect();
            let op = self
                .graph
                .analysis
                .index_of(&data.op, func.ty(data.result()));
            if let (Some(args), Some(op)) = (args, op) {
                original.insert(TensorNode::Op { op, args }, data.result());
            }
        }
        BuildState {
            positions,
            original,
            made: HashMap::new(),
            added: 0,
        }
    }

    /// Whether `v` is defined before position `limit` (arguments always are).
    fn defined_before(func: &Function, st: &BuildState, v: Value, limit: usize) -> bool {
        match func.defining_op(v) {
            None => true,
            Some(id) => st.positions.get(&id).is_none_or(|&p| p < limit),
        }
    }

    /// The value of `class`'s extracted expression, built before `root_op` (whose original
    /// position is `limit`); `None` when it cannot be built there.
    fn build(
        &self,
        func: &mut Function,
        st: &mut BuildState,
        class: Id,
        root_op: OpId,
        limit: usize,
    ) -> Option<Value> {
        let mut stack = vec![(self.graph.find(class), false)];
        let mut budget = 4 * self.graph.number_of_classes() + 16;
        while let Some((c, expanded)) = stack.pop() {
            budget = budget.checked_sub(1)?;
            let c = self.graph.find(c);
            if st.made.contains_key(&c) {
                continue;
            }
            let node = self.extraction.node(c)?;
            if !expanded {
                stack.push((c, true));
                stack.extend(node.children().iter().map(|&ch| (ch, false)));
                continue;
            }
            let args: Vec<Value> = node
                .children()
                .iter()
                .map(|&ch| st.made.get(&self.graph.find(ch)).copied())
                .collect::<Option<_>>()?;
            let v = match node {
                TensorNode::Leaf(i) => {
                    let v = self.leaf_values[*i as usize];
                    if !Self::defined_before(func, st, v, limit) {
                        return None;
                    }
                    v
                }
                TensorNode::Op { op, .. } => {
                    let reuse = st
                        .original
                        .get(&self.canonical(node))
                        .copied()
                        .filter(|&o| {
                            Self::defined_before(func, st, o, limit)
                                && func
                                    .defining_op(o)
                                    .is_some_and(|id| func.op(id).operands[..] == args[..])
                        });
                    match reuse {
                        Some(o) => o,
                        None => {
                            let (op, ty) = self.graph.analysis.op(*op).clone();
                            // Right after the last operand's definition: as early as possible, so
                            // never after an update of a parameter an operand was read from.
                            let mut at = 0;
                            for &a in &args {
                                if let Some(def) = func.defining_op(a) {
                                    at = at.max(func.position(def)? + 1);
                                }
                            }
                            if at > func.position(root_op)? {
                                return None;
                            }
                            let loc = func.op(root_op).loc.clone();
                            let loc = Loc {
                                name: loc.name.map(|n| format!("{n}.fused")),
                                line_col: None,
                            };
                            let id = func.insert_op(at, op, &args, vec![ty], loc);
                            st.added += 1;
                            func.op(id).result()
                        }
                    }
                }
            };
            st.made.insert(c, v);
        }
        st.made.get(&self.graph.find(class)).copied()
    }

    /// Rewrites every root whose extracted expression is cheaper; returns how many.
    fn apply(&self, func: &mut Function, roots: &[Value], stats: &mut Statistics) -> usize {
        let mut st = self.state(func);
        let mut roots: Vec<(usize, Value)> = roots
            .iter()
            .filter_map(|&r| {
                let id = func.defining_op(r)?;
                Some((st.positions[&id], r))
            })
            .collect();
        roots.sort();
        let mut rewritten = 0;
        for (limit, root) in roots {
            let class = self.graph.find(self.class_of[&root]);
            let Some(best) = self.extraction.cost(self.graph, class) else {
                continue;
            };
            let free = |v: Value| {
                self.class_of
                    .get(&v)
                    .is_some_and(|&c| self.pinned.contains(&self.graph.find(c)))
            };
            if best >= original_cost(func, root, free) {
                continue;
            }
            let root_op = func.defining_op(root).expect("a root is an op result");
            if let Some(v) = self.build(func, &mut st, class, root_op, limit) {
                if v != root {
                    func.replace_all_uses(root, v);
                    rewritten += 1;
                }
            }
        }
        stats.add("ops-added", st.added as u64);
        rewritten
    }
}

#[cfg(test)]
mod tests;
