//! The rewrite rules of the `fuse` pass, each named and guarded by the types of its e-classes.
//!
//! A rule looks at one node of an e-class (and at the nodes of its operand classes) and proposes
//! equivalent [`Term`]s, which are added to the e-graph and merged with the class. Rules are egg
//! [`Rewrite`]s whose searcher and applier are [`NodeRule`]: the searcher reports the classes
//! where the rule proposes something, the applier adds the proposals.
//!
//! | rule | from | to | guard |
//! |------|------|----|-------|
//! | `reshape-of-reshape` | `reshape(reshape(x))`, also through `flatten` | `reshape(x)` to the outer shape | element types agree |
//! | `flatten-as-reshape` | `flatten(x)` | `reshape(x)` to the flattened shape | — |
//! | `reshape-identity` | `reshape(x)` | `x` | `x` has the result's type |
//! | `requantize-identity` | `q.requantize(x)` | `x` | `x` has the result's type (same scale and zero point) |
//! | `clip-of-clip` | `clip(clip(x, a, b), c, d)` | `clip(x, max(a, c), min(b, d))` | f32, `max(a, c) ≤ min(b, d)` |
//! | `mask-into-conv-input` | `grad.apply_mask(grad.conv2d_input(dy, w), m)` | `grad.conv2d_input_masked(dy, w, m)` | the mask has the gradient's shape |
//!
//! `q.requantize ∘ q.requantize` is not collapsed: the inner rounding is not exact in general,
//! so the pair and the single requantize differ in the last bit.

use super::lang::{node_op, TensorGraph, TensorNode};
use egg::{
    Applier, Id, Language, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var,
};
use mite_ir::{ElemType, Op, TensorType};

/// An expression a rule adds: an existing class, or an op over sub-terms.
// Terms are built once per rule application and consumed at once; boxing the large variant would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// An existing e-class.
    Class(Id),
    /// A new node `op(args)` of type `ty`.
    Node {
        /// The op.
        op: Op,
        /// Its result type.
        ty: TensorType,
        /// Its operands.
        args: Vec<Term>,
    },
}

impl Term {
    /// Adds the term to `graph`; returns its class.
    pub fn add(&self, graph: &mut TensorGraph) -> Id {
        match self {
            Term::Class(id) => graph.find(*id),
            Term::Node { op, ty, args } => {
                let args: Vec<Id> = args.iter().map(|a| a.add(graph)).collect();
                let op = graph.analysis.intern(op.clone(), ty.clone());
                graph.add(TensorNode::Op { op, args })
            }
        }
    }
}

/// The most proposals one rule adds to one class per application.
const MAX_PROPOSALS: usize = 8;

/// The most nodes of an operand class a rule looks at.
const MAX_INNER: usize = 8;

/// Proposes the terms equivalent to one node of a class (empty: the rule does not apply).
pub type Propose = fn(&TensorGraph, Id, &TensorNode) -> Vec<Term>;

/// A rule: its name and its proposal function (see the module documentation).
#[derive(Clone, Copy)]
pub struct NodeRule {
    /// The rule's name.
    pub name: &'static str,
    /// Its proposals.
    pub propose: Propose,
}

impl NodeRule {
    /// The first `limit` proposals of the rule for class `class` (a class merged from a long
    /// chain can hold thousands of nodes: the limit keeps one application linear).
    pub fn proposals(&self, graph: &TensorGraph, class: Id, limit: usize) -> Vec<Term> {
        graph[class]
            .nodes
            .iter()
            .flat_map(|n| (self.propose)(graph, class, n))
            .take(limit)
            .collect()
    }

    /// The rule as an egg rewrite.
    pub fn rewrite(self) -> Rewrite<TensorNode, super::lang::OpTable> {
        Rewrite::new(self.name, self, self).expect("a node rule binds no variables")
    }
}

impl Searcher<TensorNode, super::lang::OpTable> for NodeRule {
    fn search_eclass_with_limit(
        &self,
        graph: &TensorGraph,
        eclass: Id,
        limit: usize,
    ) -> Option<SearchMatches<'_, TensorNode>> {
        if limit == 0 || self.proposals(graph, eclass, 1).is_empty() {
            return None;
        }
        Some(SearchMatches {
            eclass,
            substs: vec![Subst::default()],
            ast: None,
        })
    }

    fn vars(&self) -> Vec<Var> {
        Vec::new()
    }
}

impl Applier<TensorNode, super::lang::OpTable> for NodeRule {
    fn apply_one(
        &self,
        graph: &mut TensorGraph,
        eclass: Id,
        _subst: &Subst,
        _ast: Option<&PatternAst<TensorNode>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let mut changed = Vec::new();
        for term in self.proposals(graph, eclass, MAX_PROPOSALS) {
            let id = term.add(graph);
            if graph.union(eclass, id) {
                changed.push(id);
            }
        }
        changed
    }
}

/// The rules of the pass, in a fixed order.
pub fn all_rules() -> Vec<NodeRule> {
    vec![
        NodeRule {
            name: "reshape-of-reshape",
            propose: reshape_of_reshape,
        },
        NodeRule {
            name: "flatten-as-reshape",
            propose: flatten_as_reshape,
        },
        NodeRule {
            name: "reshape-identity",
            propose: reshape_identity,
        },
        NodeRule {
            name: "requantize-identity",
            propose: requantize_identity,
        },
        NodeRule {
            name: "clip-of-clip",
            propose: clip_of_clip,
        },
        NodeRule {
            name: "mask-into-conv-input",
            propose: mask_into_conv_input,
        },
    ]
}

use mite_ir::analysis::liveness::is_view;

/// `nn.reshape` to the dimensions of `ty`.
fn reshape_to(ty: &TensorType) -> Op {
    Op::Reshape {
        shape: ty.shape.iter().map(|&d| d as i64).collect(),
    }
}

fn reshape_of_reshape(g: &TensorGraph, class: Id, node: &TensorNode) -> Vec<Term> {
    let Some(outer) = node_op(g, node) else {
        return Vec::new();
    };
    if !is_view(outer) {
        return Vec::new();
    }
    let ty = &g[class].data;
    let inner_class = node.children()[0];
    g[inner_class]
        .nodes
        .iter()
        .filter(|n| node_op(g, n).is_some_and(is_view))
        .take(MAX_INNER)
        .map(|n| n.children()[0])
        .filter(|&x| g[x].data.elem == ty.elem && g[x].data.quant == ty.quant)
        .map(|x| Term::Node {
            op: reshape_to(ty),
            ty: ty.clone(),
            args: vec![Term::Class(x)],
        })
        .collect()
}

fn flatten_as_reshape(g: &TensorGraph, class: Id, node: &TensorNode) -> Vec<Term> {
    match node_op(g, node) {
        Some(Op::Flatten { .. }) => {
            let ty = &g[class].data;
            vec![Term::Node {
                op: reshape_to(ty),
                ty: ty.clone(),
                args: vec![Term::Class(node.children()[0])],
            }]
        }
        _ => Vec::new(),
    }
}

fn same_type_operand(g: &TensorGraph, class: Id, node: &TensorNode) -> Vec<Term> {
    let x = node.children()[0];
    if g.find(x) != g.find(class) && g[x].data == g[class].data {
        vec![Term::Class(x)]
    } else {
        Vec::new()
    }
}

fn reshape_identity(g: &TensorGraph, class: Id, node: &TensorNode) -> Vec<Term> {
    match node_op(g, node) {
        Some(Op::Reshape { .. }) => same_type_operand(g, class, node),
        _ => Vec::new(),
    }
}

fn requantize_identity(g: &TensorGraph, class: Id, node: &TensorNode) -> Vec<Term> {
    match node_op(g, node) {
        Some(Op::Requantize {}) => same_type_operand(g, class, node),
        _ => Vec::new(),
    }
}

fn clip_of_clip(g: &TensorGraph, class: Id, node: &TensorNode) -> Vec<Term> {
    let Some(&Op::Clip { min: c, max: d }) = node_op(g, node) else {
        return Vec::new();
    };
    let ty = &g[class].data;
    if ty.elem != ElemType::F32 {
        return Vec::new();
    }
    let inner = node.children()[0];
    g[inner]
        .nodes
        .iter()
        .filter_map(|n| match node_op(g, n) {
            Some(&Op::Clip { min: a, max: b }) => Some((a.max(c), b.min(d), n.children()[0])),
            _ => None,
        })
        // Equal bounds of different signs (-0.0 and 0.0) would make the choice visible.
        .take(MAX_INNER)
        .filter(|&(lo, hi, _)| lo <= hi && signs_agree(lo, c) && signs_agree(hi, d))
        .map(|(min, max, x)| Term::Node {
            op: Op::Clip { min, max },
            ty: ty.clone(),
            args: vec![Term::Class(x)],
        })
        .collect()
}

/// Whether `a` and `b` are not zeros of different signs.
fn signs_agree(a: f32, b: f32) -> bool {
    a != b || a.to_bits() == b.to_bits()
}

fn mask_into_conv_input(g: &TensorGraph, class: Id, node: &TensorNode) -> Vec<Term> {
    let Some(Op::ApplyMask {}) = node_op(g, node) else {
        return Vec::new();
    };
    let (dx, mask) = (node.children()[0], node.children()[1]);
    let ty = &g[class].data;
    if g[mask].data.shape != ty.shape || g[mask].data.elem != ElemType::I1 {
        return Vec::new();
    }
    g[dx]
        .nodes
        .iter()
        .filter_map(|n| match node_op(g, n) {
            Some(Op::ConvInputGrad {
                strides,
                pads,
                dilations,
                groups,
                input_shape,
            }) => Some(Term::Node {
                op: Op::ConvInputGradMasked {
                    strides: strides.clone(),
                    pads: pads.clone(),
                    dilations: dilations.clone(),
                    groups: *groups,
                    input_shape: input_shape.clone(),
                },
                ty: ty.clone(),
                args: vec![
                    Term::Class(n.children()[0]),
                    Term::Class(n.children()[1]),
                    Term::Class(mask),
                ],
            }),
            _ => None,
        })
        .take(MAX_INNER)
        .collect()
}
