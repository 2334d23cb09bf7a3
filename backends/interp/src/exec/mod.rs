//! The interpreter: executes the functions of a verified [`Module`] op by op.
//!
//! ```
//! use mite_interp::exec::{Interpreter, Tensor};
//! use mite_ir::{Builder, Module, Op, TensorType};
//!
//! let mut m = Module::new("tiny");
//! let mut b = Builder::new(&mut m, "forward");
//! let x = b.arg("x", TensorType::f32(&[1, 3]));
//! let y = b.named("act").op(Op::Relu {}, &[x]).unwrap();
//! b.ret(&[y]);
//!
//! let interp = Interpreter::new(&m).unwrap();
//! let out = interp.run("forward", &[Tensor::f32(&[1, 3], vec![-1.0, 0.5, 2.0]).unwrap()]).unwrap();
//! assert_eq!(out[0].as_f32().unwrap(), &[0.0, 0.5, 2.0]);
//! ```
//!
//! # Semantics
//!
//! - The module is verified once, by [`Interpreter::new`]; kernels never see ill-typed operands.
//! - `param` / `const` read the module's global data ([`GlobalData::Inline`]), or an override set
//!   with [`Interpreter::set_global`] or written by a training run. A global whose data is
//!   [`GlobalData::Absent`] or [`GlobalData::Elided`] is an error naming it, raised when an op
//!   reads it.
//! - Training: [`Interpreter::run_mut`] (and [`Interpreter::run_real_mut`]) run a function whose
//!   `optim.` ops update parameters and optimizer state in place. The new data is kept in the
//!   interpreter's overrides, so it persists across runs (the module is not changed) and later
//!   runs, training or inference, read it; it is committed only when the run succeeds (a failed
//!   run changes nothing). Read it back with [`Interpreter::updated_params`] /
//!   [`Interpreter::updated_globals`], or take it with [`Interpreter::take_overrides`] and store
//!   it in a module with [`write_globals`]. The `&self` entry points ([`Interpreter::run`], ...)
//!   are for inference: an `optim.` op there is an error ([`OpFailure::ReadOnlyRun`]). The update
//!   rules of `optim.sgd` are documented in `optim` (see also [`stochastic_u`]).
//! - Gradients (`grad.`) are real-valued, computed in the run's precision by the backward kernels
//!   of [`crate::kernels`]; quantized `i8` weights of `grad.conv2d_input` / `grad.linear_input`
//!   are used at their real value (dequantized per channel); `grad.mask` compares `f32` values,
//!   or `i8` integer values, with its `f32` bounds (both exclusive). Details in `grad_ops`.
//! - Inputs are checked against the function's argument types: element type, shape, element
//!   count, and quantization when the input carries one (an input without quantization is read
//!   with the argument's).
//! - Every built-in op has a kernel, chosen by an exhaustive `match` on [`Op`] (a new op without
//!   one does not compile). Float ops call [`crate::kernels`], int8 ops [`crate::quant`] with the
//!   [`InterpOptions::rounding`] mode; the choices for each `q.` op are documented in
//!   `int8_ops`: `q.quantize` rounds half to even and saturates (ONNX `QuantizeLinear`),
//!   `q.dequantize` handles `i8` and `i32`, per tensor and per axis, `q.requantize` uses a
//!   [`Requantizer`](crate::quant::Requantizer) of scale `s_in / s_out`, `q.conv2d` / `q.linear`
//!   use [`Requantizer::from_tensor_scales`](crate::quant::Requantizer::from_tensor_scales)
//!   with the `act_min` / `act_max` clamp, `q.add` uses [`AddInt8`](crate::quant::AddInt8),
//!   `q.avg_pool` requires equal input and output quantization, and `q.global_avg_pool` uses
//!   [`global_avg_pool_int8`](crate::quant::global_avg_pool_int8) when input and output
//!   quantization are equal and [`mean_int8`](crate::quant::mean_int8) otherwise. With
//!   [`Rounding::OnnxRuntime`], `q.conv2d`, `q.linear`, `q.add` and `q.global_avg_pool` run
//!   onnxruntime's fused int8 kernel when the op's result and non-constant operands each have one
//!   use, and its float kernel between dequantization and quantization otherwise (which is how
//!   onnxruntime executes a QDQ graph; see [`crate::quant::onnxruntime`]).
//! - Custom ops are an error naming the op.
//! - Float ops run in a precision `T` ([`ExecReal`]): `f32` by [`Interpreter::run`], `f64` by
//!   [`Interpreter::run_f64`] (for finite-difference gradient checks), through the same dispatch
//!   code. Integer values are the same in both.
//! - Values are freed after their last use ([`mite_ir::analysis::Liveness`]); parameters,
//!   constants, inputs and the results of
//!   `nn.reshape` / `nn.flatten` of them are borrowed, not copied.
//!
//! Errors ([`InterpError`]) name the function, the op's position, name and location name, and
//! what went wrong.

mod bottleneck;
mod error;
mod float_ops;
mod fused_ops;
mod grad_ops;
mod int8_ops;
mod layout_ops;
mod operands;
mod optim;
mod value;

use std::collections::HashMap;

use mite_ir::analysis::{Liveness, Schedule};
use mite_ir::{
    verify_module, Function, GlobalData, GlobalKind, Module, Op, OpData, TensorData, TensorType,
};

use crate::quant::Rounding;

pub use error::{InterpError, OpFailure};
pub use optim::stochastic_u;
pub use value::{Buffer, ExecReal, Tensor};

use operands::Operands;
use value::Data;

/// Options of the interpreter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterpOptions {
    /// How int8 ops requantize their accumulators (default: TFLite's double rounding).
    pub rounding: Rounding,
}

impl InterpOptions {
    /// These options with another rounding mode.
    pub fn with_rounding(self, rounding: Rounding) -> InterpOptions {
        InterpOptions { rounding }
    }
}

/// One value computed during a traced run (see [`Interpreter::run_with_trace`]).
#[derive(Clone, Debug)]
pub struct TraceEvent<'e, T = f32> {
    /// The op's position in program order.
    pub index: usize,
    /// The op that computed the value (its name, attributes, operands and location).
    pub op: &'e OpData,
    /// The value's type.
    pub ty: &'e TensorType,
    /// The value's elements.
    pub value: Buffer<T>,
}

impl<T> TraceEvent<'_, T> {
    /// The op's name (`nn.conv2d`).
    pub fn op_name(&self) -> &str {
        self.op.op.name()
    }

    /// The op's location name (`loc("conv1")`), if any.
    pub fn loc_name(&self) -> Option<&str> {
        self.op.loc.name.as_deref()
    }
}

impl<T: ExecReal> TraceEvent<'_, T> {
    /// The value as a [`Tensor`] (float elements rounded to `f32`).
    pub fn into_tensor(self) -> Tensor {
        Tensor {
            ty: self.ty.clone(),
            data: self.value.into_data(),
        }
    }
}

/// A callback receiving every value computed during a run.
type Observer<'o, T> = dyn FnMut(TraceEvent<'_, T>) + 'o;

/// For each op of a function (by position), the values whose last use it is.
#[derive(Clone, Debug, Default)]
struct FreePlan {
    /// Value indices to free after op `i` runs.
    after: Vec<Vec<usize>>,
    /// Whether op `i` reads and writes values no other op uses (see
    /// [`int8_ops::exclusive_data_flow`]); [`Rounding::OnnxRuntime`] picks kernels by it.
    exclusive: Vec<bool>,
}

impl FreePlan {
    fn new(func: &Function) -> FreePlan {
        // One liveness for the interpreter, the cost model and the planner: a value is freed
        // after its last use; outputs never; a result nobody uses right after its op.
        let live = Liveness::compute(func, &Schedule::program_order(func));
        let after = (0..func.num_ops())
            .map(|pos| {
                live.dies_after(pos)
                    .iter()
                    .map(|&v| value_index(v))
                    .collect()
            })
            .collect();
        FreePlan {
            after,
            exclusive: int8_ops::exclusive_data_flow(func),
        }
    }
}

fn value_index(v: mite_ir::Value) -> usize {
    v.into_raw().into_u32() as usize
}

/// What an op produced.
enum Outcome<'a, T: Clone> {
    /// New data.
    New(Data<'a, T>),
    /// The elements of this operand, unchanged (reshape, flatten).
    Forward(usize),
}

/// Executes the functions of one verified module.
#[derive(Clone, Debug)]
pub struct Interpreter<'m> {
    module: &'m Module,
    options: InterpOptions,
    plans: Vec<FreePlan>,
    overrides: HashMap<String, TensorData>,
}

impl<'m> Interpreter<'m> {
    /// An interpreter with default options; verifies the module.
    pub fn new(module: &'m Module) -> Result<Interpreter<'m>, InterpError> {
        Interpreter::with_options(module, InterpOptions::default())
    }

    /// An interpreter with `options`; verifies the module.
    pub fn with_options(
        module: &'m Module,
        options: InterpOptions,
    ) -> Result<Interpreter<'m>, InterpError> {
        verify_module(module)?;
        Ok(Interpreter {
            module,
            options,
            plans: module.functions.iter().map(FreePlan::new).collect(),
            overrides: HashMap::new(),
        })
    }

    /// The module being interpreted.
    pub fn module(&self) -> &'m Module {
        self.module
    }

    /// The options.
    pub fn options(&self) -> InterpOptions {
        self.options
    }

    /// Replaces the data of global `name` for later runs (the module is not changed); e.g. the
    /// parameters updated by a training step. Errors if there is no such global or the data does
    /// not fit its type.
    pub fn set_global(&mut self, name: &str, data: TensorData) -> Result<(), InterpError> {
        check_global_data(self.module, name, &data)?;
        self.overrides.insert(name.to_string(), data);
        Ok(())
    }

    /// Removes every override (set with [`Interpreter::set_global`] or written by
    /// [`Interpreter::run_mut`]); returns them by name. Later runs read the module's data again.
    pub fn take_overrides(&mut self) -> HashMap<String, TensorData> {
        std::mem::take(&mut self.overrides)
    }

    /// Every overridden global (updated by training runs or set with
    /// [`Interpreter::set_global`]: parameters and optimizer state) with its current data, in the
    /// module's declaration order.
    pub fn updated_globals(&self) -> Vec<(&'m str, &TensorData)> {
        self.module
            .globals
            .keys()
            .filter_map(|name| Some((name.as_str(), self.overrides.get(name)?)))
            .collect()
    }

    /// The overridden parameters (not optimizer state) with their current data, in declaration
    /// order: the trained weights after [`Interpreter::run_mut`].
    pub fn updated_params(&self) -> Vec<(&'m str, &TensorData)> {
        self.updated_globals()
            .into_iter()
            .filter(|(name, _)| {
                self.module
                    .globals
                    .get(*name)
                    .is_some_and(|g| matches!(g.kind, GlobalKind::Param { .. }))
            })
            .collect()
    }

    /// The data `param` / `const` read for global `name`: its override, else the module's
    /// inline data.
    pub fn global_data(&self, name: &str) -> Option<&TensorData> {
        self.overrides.get(name).or_else(|| self.module.data(name))
    }

    /// Runs function `func` on `inputs` (one per argument); returns its outputs. For inference:
    /// a function with `optim.` ops needs [`Interpreter::run_mut`].
    pub fn run(&self, func: &str, inputs: &[Tensor]) -> Result<Vec<Tensor>, InterpError> {
        self.run_tensors(func, inputs, None, None)
    }

    /// Runs function `func` like [`Interpreter::run`], and executes its `optim.` ops: a training
    /// step. The updated parameters and optimizer state are kept by the interpreter (see
    /// [`Interpreter::updated_params`]) and read by later runs; nothing changes if the run fails.
    pub fn run_mut(&mut self, func: &str, inputs: &[Tensor]) -> Result<Vec<Tensor>, InterpError> {
        let mut pending = HashMap::new();
        let outputs = self.run_tensors(func, inputs, None, Some(&mut pending))?;
        self.overrides.extend(pending);
        Ok(outputs)
    }

    /// [`Interpreter::run_real`] with updates: float values in precision `T`, `optim.` ops
    /// executed and their updates kept, as by [`Interpreter::run_mut`]. (Optimizer arithmetic is
    /// in `f32` in both precisions.)
    pub fn run_real_mut<T: ExecReal>(
        &mut self,
        func: &str,
        inputs: &[Buffer<T>],
    ) -> Result<Vec<Buffer<T>>, InterpError> {
        let mut pending = HashMap::new();
        let outputs = self.run_buffers(func, inputs, None, Some(&mut pending))?;
        self.overrides.extend(pending);
        Ok(outputs)
    }

    /// Runs function `func` like [`Interpreter::run`], calling `observer` with every value an op
    /// computes, in program order, with the op (and so its location name): for comparing layer
    /// by layer against a reference.
    pub fn run_with_trace(
        &self,
        func: &str,
        inputs: &[Tensor],
        mut observer: impl FnMut(TraceEvent<'_, f32>),
    ) -> Result<Vec<Tensor>, InterpError> {
        self.run_tensors(func, inputs, Some(&mut observer), None)
    }

    fn run_tensors(
        &self,
        func: &str,
        inputs: &[Tensor],
        observer: Option<&mut Observer<'_, f32>>,
        pending: Option<&mut HashMap<String, TensorData>>,
    ) -> Result<Vec<Tensor>, InterpError> {
        let (index, f) = self.function(func)?;
        check_input_count(f, inputs.len())?;
        for (i, t) in inputs.iter().enumerate() {
            check_input(f, i, &t.ty, t.data.elem(), t.data.len())?;
        }
        let data = inputs
            .iter()
            .map(|t| Data::from_tensor_data(&t.data))
            .collect();
        let outputs = self.execute::<f32>(index, data, observer, pending)?;
        Ok(outputs
            .into_iter()
            .zip(f.outputs())
            .map(|(d, &v)| Tensor {
                ty: f.ty(v).clone(),
                data: d.into_buffer().into_data(),
            })
            .collect())
    }

    /// Runs function `func` with float values in precision `T`: `inputs` are the elements of the
    /// arguments (float arguments as [`Buffer::Real`]); returns the elements of the outputs.
    pub fn run_real<T: ExecReal>(
        &self,
        func: &str,
        inputs: &[Buffer<T>],
    ) -> Result<Vec<Buffer<T>>, InterpError> {
        self.run_buffers(func, inputs, None, None)
    }

    /// [`Interpreter::run_real`] with an observer of every value computed (see
    /// [`Interpreter::run_with_trace`]).
    pub fn run_real_with_trace<T: ExecReal>(
        &self,
        func: &str,
        inputs: &[Buffer<T>],
        mut observer: impl FnMut(TraceEvent<'_, T>),
    ) -> Result<Vec<Buffer<T>>, InterpError> {
        self.run_buffers(func, inputs, Some(&mut observer), None)
    }

    /// Runs function `func` with every `f32` value computed in `f64` (for finite-difference
    /// gradient checks); see [`Interpreter::run_real`].
    pub fn run_f64(
        &self,
        func: &str,
        inputs: &[Buffer<f64>],
    ) -> Result<Vec<Buffer<f64>>, InterpError> {
        self.run_real(func, inputs)
    }

    fn run_buffers<T: ExecReal>(
        &self,
        func: &str,
        inputs: &[Buffer<T>],
        observer: Option<&mut Observer<'_, T>>,
        pending: Option<&mut HashMap<String, TensorData>>,
    ) -> Result<Vec<Buffer<T>>, InterpError> {
        let (index, f) = self.function(func)?;
        check_input_count(f, inputs.len())?;
        for (i, (b, &arg)) in inputs.iter().zip(f.args()).enumerate() {
            check_input(f, i, f.ty(arg), b.elem(), b.len())?;
        }
        let data = inputs.iter().map(Data::from_buffer).collect();
        let outputs = self.execute::<T>(index, data, observer, pending)?;
        Ok(outputs.into_iter().map(Data::into_buffer).collect())
    }

    fn function(&self, name: &str) -> Result<(usize, &'m Function), InterpError> {
        self.module
            .functions
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == name)
            .ok_or_else(|| InterpError::UnknownFunction(name.to_string()))
    }

    /// Runs function number `index` on checked inputs. `optim.` ops write into `pending`
    /// (an error without it); `param` reads see data written there earlier in the run.
    fn execute<'a, T: ExecReal>(
        &'a self,
        index: usize,
        inputs: Vec<Data<'a, T>>,
        mut observer: Option<&mut Observer<'_, T>>,
        mut pending: Option<&mut HashMap<String, TensorData>>,
    ) -> Result<Vec<Data<'a, T>>, InterpError> {
        let func = &self.module.functions[index];
        let plan = &self.plans[index];
        let mut slots: Vec<Option<Data<'a, T>>> = vec![None; func.value_capacity()];
        for (&arg, data) in func.args().iter().zip(inputs) {
            slots[value_index(arg)] = Some(data);
        }
        for (pos, &id) in func.layout().iter().enumerate() {
            let op = func.op(id);
            let fail = |failure: OpFailure| InterpError::Op {
                func: func.name.clone(),
                index: pos,
                op: op.op.name().to_string(),
                loc: op.loc.name.clone(),
                failure,
            };
            let outcome = {
                let data = op
                    .operands
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| {
                        slots[value_index(v)]
                            .as_ref()
                            .ok_or_else(|| OpFailure::Internal(format!("operand {k} has no value")))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(fail)?;
                let types: Vec<&TensorType> = op.operands.iter().map(|&v| func.ty(v)).collect();
                let operands = Operands::new(&data, &types);
                if let Some(param) = op.op.updated_param() {
                    let Some(pending) = pending.as_deref_mut() else {
                        return Err(fail(OpFailure::ReadOnlyRun(param.to_string())));
                    };
                    self.update(&op.op, &operands, pending).map_err(fail)?;
                    None
                } else if let Some(d) = pending_read(&op.op, pending.as_deref()) {
                    Some(Outcome::New(owned_data(d)))
                } else {
                    let result_ty = match &op.op {
                        Op::Custom(c) => return Err(fail(OpFailure::CustomOp(c.name.clone()))),
                        _ => op.results.first().map(|&r| func.ty(r)).ok_or_else(|| {
                            fail(OpFailure::Internal("the op has no result".to_string()))
                        })?,
                    };
                    Some(
                        self.eval(&op.op, &operands, result_ty, plan.exclusive[pos])
                            .map_err(fail)?,
                    )
                }
            };
            let Some(outcome) = outcome else {
                // An update: no result to store.
                for &v in &plan.after[pos] {
                    slots[v] = None;
                }
                continue;
            };
            let result = match outcome {
                Outcome::New(d) => d,
                Outcome::Forward(k) => {
                    let v = value_index(op.operands[k]);
                    let used_again = op.operands.iter().filter(|&&o| value_index(o) == v).count()
                        > 1
                        || !plan.after[pos].contains(&v);
                    if used_again {
                        slots[v].clone()
                    } else {
                        slots[v].take()
                    }
                    .ok_or_else(|| fail(OpFailure::Internal(format!("operand {k} has no value"))))?
                }
            };
            let Some(&r) = op.results.first() else {
                return Err(fail(OpFailure::Internal(
                    "the op has no result".to_string(),
                )));
            };
            let ty = func.ty(r);
            if result.elem() != ty.elem || result.len() != ty.num_elements() {
                return Err(fail(OpFailure::Internal(format!(
                    "computed {} {} elements for a result of type {ty}",
                    result.len(),
                    result.elem()
                ))));
            }
            if let Some(observer) = observer.as_mut() {
                observer(TraceEvent {
                    index: pos,
                    op,
                    ty,
                    value: result.to_buffer(),
                });
            }
            slots[value_index(r)] = Some(result);
            for &v in &plan.after[pos] {
                slots[v] = None;
            }
        }
        let outputs = func.outputs();
        let mut results = Vec::with_capacity(outputs.len());
        for (i, &v) in outputs.iter().enumerate() {
            let slot = &mut slots[value_index(v)];
            let repeated = outputs[i + 1..].contains(&v);
            let data = if repeated { slot.clone() } else { slot.take() };
            results.push(data.ok_or_else(|| InterpError::Op {
                func: func.name.clone(),
                index: func.num_ops(),
                op: "return".to_string(),
                loc: None,
                failure: OpFailure::Internal(format!("output {i} has no value")),
            })?);
        }
        Ok(results)
    }

    /// The data global `name` holds, borrowed.
    fn read_global<T: ExecReal>(&self, name: &str) -> Result<Data<'_, T>, OpFailure> {
        if let Some(data) = self.overrides.get(name) {
            return Ok(Data::from_tensor_data(data));
        }
        let global = self
            .module
            .globals
            .get(name)
            .ok_or_else(|| OpFailure::Internal(format!("unknown global @{name}")))?;
        match &global.data {
            GlobalData::Inline(data) => Ok(Data::from_tensor_data(data)),
            GlobalData::Absent => Err(OpFailure::AbsentData(name.to_string())),
            GlobalData::Elided { digest } => Err(OpFailure::ElidedData {
                global: name.to_string(),
                digest: *digest,
            }),
        }
    }

    /// Executes one `optim.` op, writing the new data into `pending`.
    fn update<T: ExecReal>(
        &self,
        op: &Op,
        x: &Operands<'_, '_, T>,
        pending: &mut HashMap<String, TensorData>,
    ) -> Result<(), OpFailure> {
        let mut globals = optim::Globals {
            module: self.module,
            committed: &self.overrides,
            pending,
        };
        match op {
            Op::Sgd { .. } => optim::sgd(op, x, &mut globals),
            _ => Err(OpFailure::Internal(format!(
                "`{}` is not an update",
                op.name()
            ))),
        }
    }

    /// Computes one op. The `match` is exhaustive over the built-in ops: a new op without a
    /// kernel does not compile. `exclusive`: see [`FreePlan::exclusive`].
    fn eval<'a, T: ExecReal>(
        &'a self,
        op: &Op,
        x: &Operands<'_, 'a, T>,
        out: &TensorType,
        exclusive: bool,
    ) -> Result<Outcome<'a, T>, OpFailure> {
        let rounding = self.options.rounding;
        let data = match op {
            Op::Param { global } | Op::Const { global } => self.read_global(&global.0)?,
            Op::Conv2d {
                strides,
                pads,
                dilations,
                groups,
            } => float_ops::conv2d(x, strides, pads, dilations, *groups)?,
            Op::Linear {} => float_ops::linear(x)?,
            Op::MatMul {} => float_ops::matmul(x)?,
            Op::Add {} => float_ops::add(x)?,
            Op::Mul {} => float_ops::mul(x)?,
            Op::Relu {} => float_ops::relu(x)?,
            Op::Clip { min, max } => float_ops::clip(x, *min, *max)?,
            Op::AvgPool {
                kernel,
                strides,
                pads,
                count_include_pad,
            } => float_ops::avg_pool(x, kernel, strides, pads, *count_include_pad)?,
            Op::GlobalAvgPool {} => float_ops::global_avg_pool(x)?,
            Op::MaxPool {
                kernel,
                strides,
                pads,
                dilations,
            } => match x.data(0)? {
                Data::I8(_) => int8_ops::max_pool(x, kernel, strides, pads, dilations)?,
                _ => float_ops::max_pool(x, kernel, strides, pads, dilations)?,
            },
            Op::Concat { axis } => layout_ops::concat(x, *axis)?,
            Op::Reshape { .. } | Op::Flatten { .. } => return Ok(Outcome::Forward(0)),
            Op::Transpose { perm } => layout_ops::transpose(x, perm)?,
            Op::Pad { pads, value } => float_ops::pad(x, pads, *value)?,
            Op::Softmax { axis } => float_ops::softmax(x, *axis)?,
            Op::LogSoftmax { axis } => float_ops::log_softmax(x, *axis)?,
            Op::SoftmaxCrossEntropy {} => float_ops::softmax_cross_entropy(x)?,
            Op::MseLoss {} => float_ops::mse_loss(x)?,
            Op::Quantize {} => int8_ops::quantize(x, out)?,
            Op::Dequantize {} => int8_ops::dequantize(x)?,
            Op::Requantize {} => int8_ops::requantize(x, out, rounding)?,
            Op::QConv2d {
                strides,
                pads,
                dilations,
                groups,
                act_min,
                act_max,
            } => int8_ops::conv2d(
                x,
                out,
                strides,
                pads,
                dilations,
                *groups,
                (*act_min, *act_max),
                (rounding, exclusive),
            )?,
            Op::QBottleneck { .. } => bottleneck::bottleneck(x, op, out, rounding)?,
            Op::QBottleneckChain { .. } => bottleneck::bottleneck_chain(x, op, out, rounding)?,
            Op::QLinear { act_min, act_max } => {
                int8_ops::linear(x, out, (*act_min, *act_max), (rounding, exclusive))?
            }
            Op::QAdd { act_min, act_max } => {
                int8_ops::add(x, out, (*act_min, *act_max), (rounding, exclusive))?
            }
            Op::QAvgPool {
                kernel,
                strides,
                pads,
                act_min,
                act_max,
            } => int8_ops::avg_pool(
                x,
                out,
                kernel,
                strides,
                pads,
                (*act_min, *act_max),
                rounding,
            )?,
            Op::QGlobalAvgPool {} => int8_ops::global_avg_pool(x, out, (rounding, exclusive))?,
            Op::ConvInputGrad {
                strides,
                pads,
                dilations,
                groups,
                input_shape,
            } => grad_ops::conv2d_input(x, strides, pads, dilations, *groups, input_shape)?,
            Op::ConvInputGradMasked {
                strides,
                pads,
                dilations,
                groups,
                input_shape,
            } => fused_ops::conv2d_input_masked(x, strides, pads, dilations, *groups, input_shape)?,
            Op::ConvWeightGrad {
                strides,
                pads,
                dilations,
                groups,
                kernel: _,
            } => grad_ops::conv2d_weight(x, out, strides, pads, dilations, *groups)?,
            Op::ConvBiasGrad {} => grad_ops::conv2d_bias(x)?,
            Op::LinearInputGrad {} => grad_ops::linear_input(x)?,
            Op::LinearWeightGrad {} => grad_ops::linear_weight(x)?,
            Op::LinearBiasGrad {} => grad_ops::linear_bias(x)?,
            Op::MatMulLhsGrad {} => grad_ops::matmul_lhs(x, out)?,
            Op::MatMulRhsGrad {} => grad_ops::matmul_rhs(x, out)?,
            Op::AvgPoolGrad {
                kernel,
                strides,
                pads,
                count_include_pad,
                input_shape,
            } => grad_ops::avg_pool(x, kernel, strides, pads, *count_include_pad, input_shape)?,
            Op::GlobalAvgPoolGrad { input_shape } => grad_ops::global_avg_pool(x, input_shape)?,
            Op::MaxPoolGrad {
                kernel,
                strides,
                pads,
                dilations,
            } => grad_ops::max_pool(x, kernel, strides, pads, dilations)?,
            Op::Mask { min, max } => grad_ops::mask(x, *min, *max)?,
            Op::ApplyMask {} => grad_ops::apply_mask(x)?,
            Op::ReduceToShape { .. } => grad_ops::reduce_to_shape(x, out)?,
            Op::SoftmaxGrad { axis } => grad_ops::softmax(x, *axis)?,
            Op::LogSoftmaxGrad { axis } => grad_ops::log_softmax(x, *axis)?,
            Op::SoftmaxCrossEntropyGrad {} => grad_ops::softmax_cross_entropy(x)?,
            Op::MseLossGrad {} => grad_ops::mse_loss(x)?,
            Op::PadGrad { pads } => grad_ops::pad(x, out, pads)?,
            Op::Slice { axis, start, size } => grad_ops::slice(x, *axis, *start, *size)?,
            Op::Sgd { .. } => {
                return Err(OpFailure::Internal(
                    "`optim.sgd` has no result; it runs as an update".to_string(),
                ))
            }
            Op::Custom(c) => return Err(OpFailure::CustomOp(c.name.clone())),
        };
        Ok(Outcome::New(data))
    }
}

/// The data a `param` op reads if an `optim.` op updated it earlier in this run.
fn pending_read<'p>(
    op: &Op,
    pending: Option<&'p HashMap<String, TensorData>>,
) -> Option<&'p TensorData> {
    match op {
        Op::Param { global } => pending?.get(&global.0),
        _ => None,
    }
}

/// An owned copy of `data` in precision `T`.
fn owned_data<T: ExecReal>(data: &TensorData) -> Data<'static, T> {
    use std::borrow::Cow;
    match data {
        TensorData::F32(v) => Data::Real(Cow::Owned(T::vec_from_f32(v.clone()))),
        TensorData::I8(v) => Data::I8(Cow::Owned(v.clone())),
        TensorData::I32(v) => Data::I32(Cow::Owned(v.clone())),
        TensorData::I64(v) => Data::I64(Cow::Owned(v.clone())),
        TensorData::I1(v) => Data::I1(Cow::Owned(v.clone())),
    }
}

/// Checks that `data` fits global `name` of `module` (element type and count).
fn check_global_data(module: &Module, name: &str, data: &TensorData) -> Result<(), InterpError> {
    let Some(global) = module.globals.get(name) else {
        return Err(InterpError::InvalidGlobal {
            name: name.to_string(),
            message: "no such global in the module".to_string(),
        });
    };
    if data.elem() != global.ty.elem || data.len() != global.ty.num_elements() {
        return Err(InterpError::InvalidGlobal {
            name: name.to_string(),
            message: format!(
                "{} {} elements given for {}, which needs {} {} elements",
                data.len(),
                data.elem(),
                global.ty,
                global.ty.num_elements(),
                global.ty.elem
            ),
        });
    }
    Ok(())
}

/// Stores `data` (e.g. [`Interpreter::take_overrides`] after training) into the globals of
/// `module` as [`GlobalData::Inline`]: the trained parameters and optimizer state become the
/// module's data. Checks every entry first (the global exists, element type and count fit) and
/// changes nothing if one does not.
pub fn write_globals(
    module: &mut Module,
    data: impl IntoIterator<Item = (String, TensorData)>,
) -> Result<(), InterpError> {
    let data: Vec<(String, TensorData)> = data.into_iter().collect();
    for (name, d) in &data {
        check_global_data(module, name, d)?;
    }
    for (name, d) in data {
        if let Some(global) = module.globals.get_mut(&name) {
            global.data = GlobalData::Inline(d);
        }
    }
    Ok(())
}

fn check_input_count(f: &Function, found: usize) -> Result<(), InterpError> {
    if found == f.args().len() {
        Ok(())
    } else {
        Err(InterpError::InputCount {
            func: f.name.clone(),
            expected: f.args().len(),
            found,
        })
    }
}

/// Checks input `index` (of type `ty`, holding `len` elements of type `elem`) against the
/// argument's type.
fn check_input(
    f: &Function,
    index: usize,
    ty: &TensorType,
    elem: mite_ir::ElemType,
    len: usize,
) -> Result<(), InterpError> {
    let arg = f.args()[index];
    let want = f.ty(arg);
    let error = |message: String| InterpError::InputType {
        func: f.name.clone(),
        index,
        name: f.value(arg).name.clone(),
        message,
    };
    let quant_differs = ty.quant.is_some() && ty.quant != want.quant;
    if ty.elem != want.elem || ty.shape != want.shape || quant_differs {
        return Err(error(format!("expected {want}, found {ty}")));
    }
    if elem != want.elem || len != want.num_elements() {
        return Err(error(format!(
            "{len} {elem} elements given for {want}, which needs {} {} elements",
            want.num_elements(),
            want.elem
        )));
    }
    Ok(())
}
