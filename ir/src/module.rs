//! Storage: modules, globals, functions, ops and values.
//!
//! A [`Function`] keeps ops and values in `la_arena` arenas and the program order in a separate
//! layout vector (storage and order apart, as in cranelift's DataFlowGraph / Layout split). Erasing
//! an op unlinks it from the layout and leaves a tombstone in the arena; [`Function::compact`]
//! rebuilds the arenas without tombstones and unused values. Handles ([`OpId`], [`Value`]) belong
//! to one function: never use one function's handles with another.

use crate::attr::Attr;
use crate::data::TensorData;
use crate::ops::Op;
use crate::types::TensorType;
use indexmap::IndexMap;
use la_arena::{Arena, Idx};
use smallvec::SmallVec;
use std::fmt;

/// Handle of an op in its function.
pub type OpId = Idx<OpData>;

/// Handle of an SSA value in its function.
pub type Value = Idx<ValueData>;

/// Where an op came from: an optional name (an ONNX node name, a layer name) and, for ops parsed
/// from text, the `line:column` of the op.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Loc {
    /// The op's name in its source (printed as `loc("name")`).
    pub name: Option<String>,
    /// 1-based line and column in the parsed text.
    pub line_col: Option<(u32, u32)>,
}

impl Loc {
    /// A location with a name only.
    pub fn named(name: impl Into<String>) -> Loc {
        Loc {
            name: Some(name.into()),
            line_col: None,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, self.line_col) {
            (Some(n), Some((l, c))) => write!(f, "\"{n}\" at {l}:{c}"),
            (Some(n), None) => write!(f, "\"{n}\""),
            (None, Some((l, c))) => write!(f, "{l}:{c}"),
            (None, None) => Ok(()),
        }
    }
}

/// An op with its operands and results.
#[derive(Clone, Debug, PartialEq)]
pub struct OpData {
    /// What the op computes, with its attributes.
    pub op: Op,
    /// Operand values, defined earlier in the function.
    pub operands: SmallVec<[Value; 3]>,
    /// Result values, defined by this op.
    pub results: SmallVec<[Value; 1]>,
    /// Source location.
    pub loc: Loc,
    erased: bool,
}

impl OpData {
    /// Whether the op was erased (a tombstone until the next [`Function::compact`]).
    pub fn is_erased(&self) -> bool {
        self.erased
    }

    /// The single result of a one-result op.
    pub fn result(&self) -> Value {
        self.results[0]
    }
}

/// Where a value is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueDef {
    /// The function argument at this index.
    Arg(usize),
    /// Result `index` of an op.
    Result(OpId, usize),
}

/// An SSA value: its type, its definition and an optional name hint.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueData {
    /// The value's type.
    pub ty: TensorType,
    /// Where it is defined.
    pub def: ValueDef,
    /// A name hint (function arguments print with it, e.g. `%input`).
    pub name: Option<String>,
}

/// A function: arguments, a straight-line list of ops, and outputs.
#[derive(Clone, Debug, Default)]
pub struct Function {
    /// The function's name (printed `@name`).
    pub name: String,
    /// 1-based line and column of its definition, for functions parsed from text.
    pub line_col: Option<(u32, u32)>,
    ops: Arena<OpData>,
    values: Arena<ValueData>,
    layout: Vec<OpId>,
    args: Vec<Value>,
    outputs: Vec<Value>,
}

impl Function {
    /// An empty function.
    pub fn new(name: impl Into<String>) -> Function {
        Function {
            name: name.into(),
            ..Function::default()
        }
    }

    /// Adds an argument of type `ty` with an optional name.
    pub fn add_arg(&mut self, ty: TensorType, name: Option<String>) -> Value {
        let v = self.values.alloc(ValueData {
            ty,
            def: ValueDef::Arg(self.args.len()),
            name,
        });
        self.args.push(v);
        v
    }

    /// The arguments in order.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// The outputs (the values returned) in order.
    pub fn outputs(&self) -> &[Value] {
        &self.outputs
    }

    /// Replaces the outputs.
    pub fn set_outputs(&mut self, outputs: Vec<Value>) {
        self.outputs = outputs;
    }

    /// The ops in program order (erased ops excluded).
    pub fn layout(&self) -> &[OpId] {
        &self.layout
    }

    /// Runs the ops in the order of `schedule` from now on; fails, changing nothing, when it is
    /// not a schedule of this function.
    pub fn set_schedule(
        &mut self,
        schedule: &crate::analysis::Schedule,
    ) -> Result<(), crate::analysis::ScheduleError> {
        let checked = crate::analysis::Schedule::new(self, schedule.ops().to_vec())?;
        self.layout = checked.ops().to_vec();
        Ok(())
    }

    /// Number of ops in program order.
    pub fn num_ops(&self) -> usize {
        self.layout.len()
    }

    /// The op `id`.
    pub fn op(&self, id: OpId) -> &OpData {
        &self.ops[id]
    }

    /// The op `id`, mutably (operands and attributes may be changed; results may not).
    pub fn op_mut(&mut self, id: OpId) -> &mut OpData {
        &mut self.ops[id]
    }

    /// The value `v`.
    pub fn value(&self, v: Value) -> &ValueData {
        &self.values[v]
    }

    /// The type of value `v`.
    pub fn ty(&self, v: Value) -> &TensorType {
        &self.values[v].ty
    }

    /// The op defining `v`, or `None` for an argument.
    pub fn defining_op(&self, v: Value) -> Option<OpId> {
        match self.values[v].def {
            ValueDef::Result(op, _) => Some(op),
            ValueDef::Arg(_) => None,
        }
    }

    /// The global that `v` reads, when it is the result of a `param` or `const` op.
    pub fn global_read(&self, v: Value) -> Option<&str> {
        self.op(self.defining_op(v)?).op.global()
    }

    /// Sets the type of value `v` (passes that retype values re-verify afterwards).
    pub fn set_ty(&mut self, v: Value, ty: TensorType) {
        self.values[v].ty = ty;
    }

    /// Sets the name hint of value `v`.
    pub fn set_name(&mut self, v: Value, name: Option<String>) {
        self.values[v].name = name;
    }

    /// Number of value slots in the arena (including values of erased ops until compaction).
    pub fn value_capacity(&self) -> usize {
        self.values.len()
    }

    /// Whether `v` is a handle into this function's value arena.
    pub fn contains_value(&self, v: Value) -> bool {
        v.into_raw().into_u32() < self.values.len() as u32
    }

    /// All values with their data, in allocation order (including dead ones until compaction).
    pub fn values(&self) -> impl Iterator<Item = (Value, &ValueData)> {
        self.values.iter()
    }

    /// Creates an op with results of the given types, without linking it into the layout.
    fn create_op(
        &mut self,
        op: Op,
        operands: &[Value],
        result_types: Vec<TensorType>,
        loc: Loc,
    ) -> OpId {
        let id = self.ops.alloc(OpData {
            op,
            operands: operands.into(),
            results: SmallVec::new(),
            loc,
            erased: false,
        });
        let results = result_types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| {
                self.values.alloc(ValueData {
                    ty,
                    def: ValueDef::Result(id, i),
                    name: None,
                })
            })
            .collect();
        self.ops[id].results = results;
        id
    }

    /// Appends an op at the end of the program. Types are taken as given: run the verifier (or
    /// use the [`crate::builder::Builder`], which infers them).
    pub fn append_op(
        &mut self,
        op: Op,
        operands: &[Value],
        result_types: Vec<TensorType>,
        loc: Loc,
    ) -> OpId {
        let id = self.create_op(op, operands, result_types, loc);
        self.layout.push(id);
        id
    }

    /// Inserts an op at position `index` of the program order (0 = first).
    ///
    /// # Panics
    /// If `index` is greater than [`Function::num_ops`].
    pub fn insert_op(
        &mut self,
        index: usize,
        op: Op,
        operands: &[Value],
        result_types: Vec<TensorType>,
        loc: Loc,
    ) -> OpId {
        let id = self.create_op(op, operands, result_types, loc);
        self.layout.insert(index, id);
        id
    }

    /// The position of op `id` in program order, if it is linked.
    pub fn position(&self, id: OpId) -> Option<usize> {
        self.layout.iter().position(|&o| o == id)
    }

    /// Unlinks op `id` and marks it erased. Its results must no longer be used.
    pub fn erase_op(&mut self, id: OpId) {
        if let Some(pos) = self.position(id) {
            self.layout.remove(pos);
        }
        self.ops[id].erased = true;
    }

    /// Erases every op for which `dead` returns true, in one sweep.
    pub fn erase_ops_where(&mut self, mut dead: impl FnMut(OpId, &OpData) -> bool) -> usize {
        let ops = &mut self.ops;
        let before = self.layout.len();
        self.layout.retain(|&id| {
            if dead(id, &ops[id]) {
                ops[id].erased = true;
                false
            } else {
                true
            }
        });
        before - self.layout.len()
    }

    /// Replaces every use of `old` (operands and outputs) by `new`; returns the number of uses
    /// replaced.
    pub fn replace_all_uses(&mut self, old: Value, new: Value) -> usize {
        let mut n = 0;
        for &id in &self.layout {
            for operand in self.ops[id].operands.iter_mut() {
                if *operand == old {
                    *operand = new;
                    n += 1;
                }
            }
        }
        for out in &mut self.outputs {
            if *out == old {
                *out = new;
                n += 1;
            }
        }
        n
    }

    /// Rebuilds the arenas in program order, dropping erased ops and values no longer defined by
    /// a linked op or argument. All previously held handles become invalid.
    pub fn compact(&mut self) {
        let old_values = std::mem::take(&mut self.values);
        let old_ops = std::mem::take(&mut self.ops);
        let mut map: Vec<Option<Value>> = vec![None; old_values.len()];
        fn remap(
            map: &mut [Option<Value>],
            old_values: &Arena<ValueData>,
            values: &mut Arena<ValueData>,
            v: Value,
            def: ValueDef,
        ) -> Value {
            *map[v.into_raw().into_u32() as usize].get_or_insert_with(|| {
                let mut data = old_values[v].clone();
                data.def = def;
                values.alloc(data)
            })
        }
        let args = std::mem::take(&mut self.args);
        for (i, &a) in args.iter().enumerate() {
            let v = remap(&mut map, &old_values, &mut self.values, a, ValueDef::Arg(i));
            self.args.push(v);
        }
        let layout = std::mem::take(&mut self.layout);
        for id in layout {
            let data = &old_ops[id];
            let operands: SmallVec<[Value; 3]> = data
                .operands
                .iter()
                .map(|&v| map[v.into_raw().into_u32() as usize].unwrap_or(v))
                .collect();
            let new_id = self.ops.alloc(OpData {
                op: data.op.clone(),
                operands,
                results: SmallVec::new(),
                loc: data.loc.clone(),
                erased: false,
            });
            let results = data
                .results
                .iter()
                .enumerate()
                .map(|(i, &r)| {
                    remap(
                        &mut map,
                        &old_values,
                        &mut self.values,
                        r,
                        ValueDef::Result(new_id, i),
                    )
                })
                .collect();
            self.ops[new_id].results = results;
            self.layout.push(new_id);
        }
        for out in &mut self.outputs {
            if let Some(v) = map[out.into_raw().into_u32() as usize] {
                *out = v;
            }
        }
    }
}

/// Which elements of a parameter a training step may update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trainable {
    /// None: the parameter is frozen (printed `frozen`).
    None,
    /// Every element (printed `trainable`).
    All,
    /// Only the channels `[start, start + len)` along `axis` (sparse tensor update; printed
    /// `trainable<axis=A, S:E>` with `E = S + len`).
    Channels {
        /// The sliced axis of the parameter.
        axis: usize,
        /// The first trained channel.
        start: usize,
        /// How many channels train.
        len: usize,
    },
}

impl Trainable {
    /// `All` for true, `None` for false.
    pub fn from_bool(on: bool) -> Trainable {
        if on {
            Trainable::All
        } else {
            Trainable::None
        }
    }

    /// Whether any element trains.
    pub fn any(self) -> bool {
        self != Trainable::None
    }
}

/// Whether a global is a parameter or a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GlobalKind {
    /// A parameter of the network; `trainable` ones may be updated by a training step.
    Param {
        /// Which of its elements training may update.
        trainable: Trainable,
    },
    /// A constant.
    Const,
    /// Mutable state that is not a parameter: optimizer buffers (momentum, gradient
    /// accumulation), updated in place by `optim.` ops.
    State,
}

impl GlobalKind {
    /// Whether this is a parameter of which at least one element trains.
    pub fn is_trainable(self) -> bool {
        matches!(self, GlobalKind::Param { trainable } if trainable.any())
    }
}

/// The data of a global, kept in the module's side table.
#[derive(Clone, Debug, PartialEq)]
pub enum GlobalData {
    /// No data (a declaration, e.g. IR written by hand for a pass test).
    Absent,
    /// The elements.
    Inline(TensorData),
    /// Data that was elided when printed; only its digest is known.
    Elided {
        /// [`TensorData::digest`] of the elided data.
        digest: u64,
    },
}

/// A module-level parameter or constant.
#[derive(Clone, Debug, PartialEq)]
pub struct Global {
    /// Its type.
    pub ty: TensorType,
    /// Parameter or constant.
    pub kind: GlobalKind,
    /// Its data.
    pub data: GlobalData,
    /// 1-based line and column of its declaration, for globals parsed from text.
    pub line_col: Option<(u32, u32)>,
}

/// A compilation unit: globals (with their data in a side table) and functions.
#[derive(Clone, Debug, Default)]
pub struct Module {
    /// The module's name (printed `module @name`).
    pub name: String,
    /// Globals by name, in declaration order.
    pub globals: IndexMap<String, Global>,
    /// Functions in order.
    pub functions: Vec<Function>,
    /// Module attributes (free-form metadata such as the source file), in order.
    pub attrs: Vec<(String, Attr)>,
}

impl Module {
    /// An empty module.
    pub fn new(name: impl Into<String>) -> Module {
        Module {
            name: name.into(),
            ..Module::default()
        }
    }

    /// The function named `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The function named `name`, mutably.
    pub fn function_mut(&mut self, name: &str) -> Option<&mut Function> {
        self.functions.iter_mut().find(|f| f.name == name)
    }

    /// Declares a parameter with data; returns false (and changes nothing) if the name is taken.
    pub fn add_param(
        &mut self,
        name: impl Into<String>,
        ty: TensorType,
        trainable: bool,
        data: GlobalData,
    ) -> bool {
        self.add_global(
            name.into(),
            Global {
                ty,
                kind: GlobalKind::Param {
                    trainable: Trainable::from_bool(trainable),
                },
                data,
                line_col: None,
            },
        )
    }

    /// Declares optimizer state with data; returns false (and changes nothing) if the name is taken.
    pub fn add_state(&mut self, name: impl Into<String>, ty: TensorType, data: GlobalData) -> bool {
        self.add_global(
            name.into(),
            Global {
                ty,
                kind: GlobalKind::State,
                data,
                line_col: None,
            },
        )
    }

    /// Declares a constant with data; returns false (and changes nothing) if the name is taken.
    pub fn add_const(&mut self, name: impl Into<String>, ty: TensorType, data: GlobalData) -> bool {
        self.add_global(
            name.into(),
            Global {
                ty,
                kind: GlobalKind::Const,
                data,
                line_col: None,
            },
        )
    }

    fn add_global(&mut self, name: String, global: Global) -> bool {
        if self.globals.contains_key(&name) {
            return false;
        }
        self.globals.insert(name, global);
        true
    }

    /// The inline data of global `name`, if it has any.
    pub fn data(&self, name: &str) -> Option<&TensorData> {
        match &self.globals.get(name)?.data {
            GlobalData::Inline(d) => Some(d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TensorType;

    #[test]
    fn erase_and_compact_renumber() {
        let mut f = Function::new("f");
        let x = f.add_arg(TensorType::f32(&[2]), Some("x".into()));
        let a = f.append_op(
            Op::Relu {},
            &[x],
            vec![TensorType::f32(&[2])],
            Loc::default(),
        );
        let a_out = f.op(a).result();
        let b = f.append_op(
            Op::Relu {},
            &[a_out],
            vec![TensorType::f32(&[2])],
            Loc::default(),
        );
        let b_out = f.op(b).result();
        f.set_outputs(vec![b_out]);
        f.replace_all_uses(b_out, a_out);
        f.erase_op(b);
        assert_eq!(f.num_ops(), 1);
        assert!(f.op(b).is_erased());
        f.compact();
        assert_eq!(f.value_capacity(), 2);
        let only = f.layout()[0];
        assert_eq!(f.outputs(), &[f.op(only).result()]);
        assert_eq!(f.value(f.outputs()[0]).def, ValueDef::Result(only, 0));
    }
}
