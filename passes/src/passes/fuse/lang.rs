//! The e-graph language of the pure tensor subset of a function, and its analysis.
//!
//! A node is either a [`TensorNode::Leaf`] — a value that stays outside the e-graph (a function
//! argument, the result of an effectful op such as a parameter read) — or a pure op applied to
//! e-classes. Ops are interned together with their result type in the analysis ([`OpTable`]), so
//! a node is small, totally ordered (egg needs `Ord`; [`Op`] has none) and carries the result
//! quantization of ops that choose it (`q.requantize`). The analysis data of an e-class is its
//! [`TensorType`]: every rule is guarded by these types.

use egg::{Analysis, DidMerge, EGraph, Id, Language};
use mite_ir::{Op, TensorType};
use std::collections::HashMap;

/// A node of the e-graph.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TensorNode {
    /// Leaf `i`: the `i`-th value outside the pure subset.
    Leaf(u32),
    /// Interned op `op` (see [`OpTable`]) applied to `args`.
    Op {
        /// The op's index in the [`OpTable`].
        op: u32,
        /// Operand e-classes.
        args: Vec<Id>,
    },
}

impl Language for TensorNode {
    type Discriminant = (bool, u32);

    fn discriminant(&self) -> (bool, u32) {
        match self {
            TensorNode::Leaf(i) => (false, *i),
            TensorNode::Op { op, .. } => (true, *op),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant()
            && self.children().len() == other.children().len()
    }

    fn children(&self) -> &[Id] {
        match self {
            TensorNode::Leaf(_) => &[],
            TensorNode::Op { args, .. } => args,
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            TensorNode::Leaf(_) => &mut [],
            TensorNode::Op { args, .. } => args,
        }
    }
}

/// The interned ops (with their result types) and the types of the leaves: the e-class analysis.
#[derive(Debug, Default)]
pub struct OpTable {
    ops: Vec<(Op, TensorType)>,
    index: HashMap<(Op, TensorType), u32>,
    leaves: Vec<TensorType>,
}

impl OpTable {
    /// The index of `op` with result type `ty`, interning it when new.
    pub fn intern(&mut self, op: Op, ty: TensorType) -> u32 {
        let key = (op, ty);
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = u32::try_from(self.ops.len()).expect("fewer than 2^32 distinct ops");
        self.ops.push(key.clone());
        self.index.insert(key, i);
        i
    }

    /// The index of `op` with result type `ty`, if it was interned.
    pub fn index_of(&self, op: &Op, ty: &TensorType) -> Option<u32> {
        self.index.get(&(op.clone(), ty.clone())).copied()
    }

    /// A new leaf of type `ty`; returns its index.
    pub fn add_leaf(&mut self, ty: TensorType) -> u32 {
        self.leaves.push(ty);
        u32::try_from(self.leaves.len() - 1).expect("fewer than 2^32 leaves")
    }

    /// The op interned at `i` and its result type.
    pub fn op(&self, i: u32) -> &(Op, TensorType) {
        &self.ops[i as usize]
    }

    /// The type of a node.
    pub fn node_type(&self, node: &TensorNode) -> &TensorType {
        match node {
            TensorNode::Leaf(i) => &self.leaves[*i as usize],
            TensorNode::Op { op, .. } => &self.ops[*op as usize].1,
        }
    }
}

impl Analysis<TensorNode> for OpTable {
    type Data = TensorType;

    fn make(egraph: &mut EGraph<TensorNode, Self>, enode: &TensorNode) -> TensorType {
        egraph.analysis.node_type(enode).clone()
    }

    fn merge(&mut self, a: &mut TensorType, b: TensorType) -> DidMerge {
        // Every rule keeps the type of the class it adds to (each checks it), so the two agree.
        debug_assert_eq!(*a, b, "a rewrite changed the type of an e-class");
        DidMerge(false, false)
    }
}

/// The e-graph of a function's pure subset.
pub type TensorGraph = EGraph<TensorNode, OpTable>;

/// The op of a node, if it is not a leaf.
pub fn node_op<'g>(graph: &'g TensorGraph, node: &TensorNode) -> Option<&'g Op> {
    match node {
        TensorNode::Leaf(_) => None,
        TensorNode::Op { op, .. } => Some(&graph.analysis.op(*op).0),
    }
}
