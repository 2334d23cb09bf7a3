//! A builder that appends ops to a function and infers their result types as it goes.
//!
//! ```
//! use mite_ir::{Builder, Module, Op, TensorType};
//! let mut m = Module::new("tiny");
//! let mut b = Builder::new(&mut m, "forward");
//! let x = b.arg("x", TensorType::f32(&[1, 4]));
//! let y = b.op(Op::Relu {}, &[x]).unwrap();
//! b.ret(&[y]);
//! assert_eq!(m.functions[0].num_ops(), 1);
//! ```

use crate::data::TensorData;
use crate::infer::{check_type, infer_result_types};
use crate::module::{Function, GlobalData, Loc, Module, Value};
use crate::ops::Op;
use crate::types::{Quant, TensorType};
use thiserror::Error;

/// An op could not be added.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum BuildError {
    /// The operands or attributes do not type-check.
    #[error("`{op}`{loc}: {message}")]
    Type {
        /// The op's name.
        op: String,
        /// Its location (` "name"` or empty).
        loc: String,
        /// What is wrong.
        message: String,
    },
    /// A global of this name exists already.
    #[error("global @{0} is declared twice")]
    DuplicateGlobal(String),
    /// Data does not match the declared type.
    #[error("global @{name}: {message}")]
    BadData {
        /// The global.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The op's result quantization is a free choice: use [`Builder::op_quant`].
    #[error("`{0}` needs its result quantization: use `op_quant`")]
    NeedsQuant(String),
    /// The op has no result (an `optim.` update): use [`Builder::effect`].
    #[error("`{0}` has no result: use `effect`")]
    NoResult(String),
    /// A custom op needs declared result types: use [`Builder::op_typed`].
    #[error("custom op `{0}` needs declared result types: use `op_typed`")]
    NeedsTypes(String),
}

/// Appends ops to one function of a module, inferring and checking types.
pub struct Builder<'m> {
    module: &'m mut Module,
    func: usize,
    name: Option<String>,
}

impl<'m> Builder<'m> {
    /// A builder for function `func` of `module`, created empty if it does not exist.
    pub fn new(module: &'m mut Module, func: &str) -> Builder<'m> {
        let index = match module.functions.iter().position(|f| f.name == func) {
            Some(i) => i,
            None => {
                module.functions.push(Function::new(func));
                module.functions.len() - 1
            }
        };
        Builder {
            module,
            func: index,
            name: None,
        }
    }

    /// The function being built.
    pub fn func(&self) -> &Function {
        &self.module.functions[self.func]
    }

    /// The module being built.
    pub fn module(&self) -> &Module {
        self.module
    }

    /// The type of value `v`.
    pub fn ty(&self, v: Value) -> &TensorType {
        self.func().ty(v)
    }

    /// Names the next op added (its `loc("name")`).
    pub fn named(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a function argument.
    pub fn arg(&mut self, name: &str, ty: TensorType) -> Value {
        self.module.functions[self.func].add_arg(ty, Some(name.to_string()))
    }

    /// Sets the function's outputs.
    pub fn ret(&mut self, outputs: &[Value]) {
        self.module.functions[self.func].set_outputs(outputs.to_vec());
    }

    fn check_data(
        name: &str,
        ty: &TensorType,
        data: &Option<TensorData>,
    ) -> Result<(), BuildError> {
        check_type(ty).map_err(|e| BuildError::BadData {
            name: name.into(),
            message: e.0,
        })?;
        if let Some(d) = data {
            if d.elem() != ty.elem || d.len() != ty.num_elements() {
                return Err(BuildError::BadData {
                    name: name.into(),
                    message: format!("{} {} elements given for {ty}", d.len(), d.elem()),
                });
            }
        }
        Ok(())
    }

    /// Declares parameter `name` and reads it.
    pub fn param(
        &mut self,
        name: &str,
        ty: TensorType,
        trainable: bool,
        data: Option<TensorData>,
    ) -> Result<Value, BuildError> {
        Self::check_data(name, &ty, &data)?;
        let data = data.map_or(GlobalData::Absent, GlobalData::Inline);
        if !self.module.add_param(name, ty, trainable, data) {
            return Err(BuildError::DuplicateGlobal(name.into()));
        }
        self.op(
            Op::Param {
                global: crate::attr::Symbol(name.into()),
            },
            &[],
        )
    }

    /// Declares constant `name` and reads it.
    pub fn constant(
        &mut self,
        name: &str,
        ty: TensorType,
        data: TensorData,
    ) -> Result<Value, BuildError> {
        let data = Some(data);
        Self::check_data(name, &ty, &data)?;
        if !self.module.add_const(
            name,
            ty,
            data.map_or(GlobalData::Absent, GlobalData::Inline),
        ) {
            return Err(BuildError::DuplicateGlobal(name.into()));
        }
        self.op(
            Op::Const {
                global: crate::attr::Symbol(name.into()),
            },
            &[],
        )
    }

    fn infer(&self, op: &Op, operands: &[Value]) -> Result<Option<Vec<TensorType>>, BuildError> {
        let f = self.func();
        let tys: Vec<&TensorType> = operands.iter().map(|&v| f.ty(v)).collect();
        infer_result_types(op, &tys, &self.module.globals).map_err(|e| BuildError::Type {
            op: op.name().to_string(),
            loc: self
                .name
                .as_ref()
                .map(|n| format!(" \"{n}\""))
                .unwrap_or_default(),
            message: e.0,
        })
    }

    fn push(&mut self, op: Op, operands: &[Value], types: Vec<TensorType>) -> Vec<Value> {
        let loc = Loc {
            name: self.name.take(),
            line_col: None,
        };
        let f = &mut self.module.functions[self.func];
        let id = f.append_op(op, operands, types, loc);
        f.op(id).results.to_vec()
    }

    /// Adds a built-in op whose result type is fully determined by its operands.
    pub fn op(&mut self, op: Op, operands: &[Value]) -> Result<Value, BuildError> {
        if op.result_quant_is_chosen() {
            return Err(BuildError::NeedsQuant(op.name().into()));
        }
        let Some(types) = self.infer(&op, operands)? else {
            return Err(BuildError::NeedsTypes(op.name().into()));
        };
        if types.len() != 1 {
            return Err(BuildError::NoResult(op.name().into()));
        }
        Ok(self.push(op, operands, types)[0])
    }

    /// Adds a built-in op without results (an `optim.` update); returns its handle.
    pub fn effect(
        &mut self,
        op: Op,
        operands: &[Value],
    ) -> Result<crate::module::OpId, BuildError> {
        let Some(types) = self.infer(&op, operands)? else {
            return Err(BuildError::NeedsTypes(op.name().into()));
        };
        if !types.is_empty() {
            return Err(BuildError::Type {
                op: op.name().into(),
                loc: String::new(),
                message: "the op has a result: use `op`".into(),
            });
        }
        let loc = Loc {
            name: self.name.take(),
            line_col: None,
        };
        let f = &mut self.module.functions[self.func];
        Ok(f.append_op(op, operands, Vec::new(), loc))
    }

    /// Adds an op whose result quantization is chosen (`q.quantize`, `q.conv2d`, ...).
    pub fn op_quant(
        &mut self,
        op: Op,
        operands: &[Value],
        quant: Quant,
    ) -> Result<Value, BuildError> {
        let Some(types) = self.infer(&op, operands)? else {
            return Err(BuildError::NeedsTypes(op.name().into()));
        };
        let Some(first) = types.first() else {
            return Err(BuildError::NoResult(op.name().into()));
        };
        let ty = first.with_quant(Some(quant));
        check_type(&ty).map_err(|e| BuildError::Type {
            op: op.name().into(),
            loc: String::new(),
            message: e.0,
        })?;
        Ok(self.push(op, operands, vec![ty])[0])
    }

    /// Adds an op with declared result types (custom ops); built-in ops are still checked.
    pub fn op_typed(
        &mut self,
        op: Op,
        operands: &[Value],
        types: Vec<TensorType>,
    ) -> Result<Vec<Value>, BuildError> {
        if let Some(inferred) = self.infer(&op, operands)? {
            let same = inferred.len() == types.len()
                && inferred.iter().zip(&types).all(|(i, t)| {
                    if op.result_quant_is_chosen() {
                        i.shape == t.shape && i.elem == t.elem
                    } else {
                        i == t
                    }
                });
            if !same {
                return Err(BuildError::Type {
                    op: op.name().into(),
                    loc: String::new(),
                    message: format!(
                        "declared result types {types:?} differ from inferred {inferred:?}"
                    ),
                });
            }
        }
        Ok(self.push(op, operands, types))
    }
}
