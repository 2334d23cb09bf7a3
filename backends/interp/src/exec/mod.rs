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
//!   with [`Interpreter::set_global`] (the hook for a training step that updates parameters
//!   between runs). A global whose data is [`GlobalData::Absent`] or [`GlobalData::Elided`] is an
//!   error naming it, raised when an op reads it.
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
//!   quantization are equal and [`mean_int8`](crate::quant::mean_int8) otherwise.
//! - Custom ops are an error naming the op.
//! - Float ops run in a precision `T` ([`ExecReal`]): `f32` by [`Interpreter::run`], `f64` by
//!   [`Interpreter::run_f64`] (for finite-difference gradient checks), through the same dispatch
//!   code. Integer values are the same in both.
//! - Values are freed after their last use; parameters, constants, inputs and the results of
//!   `nn.reshape` / `nn.flatten` of them are borrowed, not copied.
//!
//! Errors ([`InterpError`]) name the function, the op's position, name and location name, and
//! what went wrong.

mod error;
mod float_ops;
mod int8_ops;
mod layout_ops;
mod operands;
mod value;

use std::collections::HashMap;

use mite_ir::{verify_module, Function, GlobalData, Module, Op, OpData, TensorData, TensorType};

use crate::quant::Rounding;

pub use error::{InterpError, OpFailure};
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
}

impl FreePlan {
    fn new(func: &Function) -> FreePlan {
        const KEEP: usize = usize::MAX;
        let mut last_use: Vec<Option<usize>> = vec![None; func.value_capacity()];
        for (pos, &id) in func.layout().iter().enumerate() {
            for &v in &func.op(id).operands {
                last_use[value_index(v)] = Some(pos);
            }
        }
        for &v in func.outputs() {
            last_use[value_index(v)] = Some(KEEP);
        }
        let mut after = vec![Vec::new(); func.num_ops()];
        for (pos, &id) in func.layout().iter().enumerate() {
            for &r in &func.op(id).results {
                // A result nobody uses is freed right after it is computed.
                if last_use[value_index(r)].is_none() {
                    after[pos].push(value_index(r));
                }
            }
        }
        for (v, last) in last_use.iter().enumerate() {
            if let Some(pos) = *last {
                if pos != KEEP {
                    after[pos].push(v);
                }
            }
        }
        FreePlan { after }
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
        let Some(global) = self.module.globals.get(name) else {
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
        self.overrides.insert(name.to_string(), data);
        Ok(())
    }

    /// Removes every override set with [`Interpreter::set_global`]; returns them by name.
    pub fn take_overrides(&mut self) -> HashMap<String, TensorData> {
        std::mem::take(&mut self.overrides)
    }

    /// The data `param` / `const` read for global `name`: its override, else the module's
    /// inline data.
    pub fn global_data(&self, name: &str) -> Option<&TensorData> {
        self.overrides.get(name).or_else(|| self.module.data(name))
    }

    /// Runs function `func` on `inputs` (one per argument); returns its outputs.
    pub fn run(&self, func: &str, inputs: &[Tensor]) -> Result<Vec<Tensor>, InterpError> {
        self.run_tensors(func, inputs, None)
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
        self.run_tensors(func, inputs, Some(&mut observer))
    }

    fn run_tensors(
        &self,
        func: &str,
        inputs: &[Tensor],
        observer: Option<&mut Observer<'_, f32>>,
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
        let outputs = self.execute::<f32>(index, data, observer)?;
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
        self.run_buffers(func, inputs, None)
    }

    /// [`Interpreter::run_real`] with an observer of every value computed (see
    /// [`Interpreter::run_with_trace`]).
    pub fn run_real_with_trace<T: ExecReal>(
        &self,
        func: &str,
        inputs: &[Buffer<T>],
        mut observer: impl FnMut(TraceEvent<'_, T>),
    ) -> Result<Vec<Buffer<T>>, InterpError> {
        self.run_buffers(func, inputs, Some(&mut observer))
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
    ) -> Result<Vec<Buffer<T>>, InterpError> {
        let (index, f) = self.function(func)?;
        check_input_count(f, inputs.len())?;
        for (i, (b, &arg)) in inputs.iter().zip(f.args()).enumerate() {
            check_input(f, i, f.ty(arg), b.elem(), b.len())?;
        }
        let data = inputs.iter().map(Data::from_buffer).collect();
        let outputs = self.execute::<T>(index, data, observer)?;
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

    /// Runs function number `index` on checked inputs.
    fn execute<'a, T: ExecReal>(
        &'a self,
        index: usize,
        inputs: Vec<Data<'a, T>>,
        mut observer: Option<&mut Observer<'_, T>>,
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
                let result_ty = match &op.op {
                    Op::Custom(c) => return Err(fail(OpFailure::CustomOp(c.name.clone()))),
                    _ => op.results.first().map(|&r| func.ty(r)).ok_or_else(|| {
                        fail(OpFailure::Internal("the op has no result".to_string()))
                    })?,
                };
                self.eval(&op.op, &Operands::new(&data, &types), result_ty)
                    .map_err(fail)?
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
            let r = op.result();
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

    /// Computes one op. The `match` is exhaustive over the built-in ops: a new op without a
    /// kernel does not compile.
    fn eval<'a, T: ExecReal>(
        &'a self,
        op: &Op,
        x: &Operands<'_, 'a, T>,
        out: &TensorType,
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
                rounding,
            )?,
            Op::QLinear { act_min, act_max } => {
                int8_ops::linear(x, out, (*act_min, *act_max), rounding)?
            }
            Op::QAdd { act_min, act_max } => int8_ops::add(x, out, (*act_min, *act_max), rounding)?,
            Op::QAvgPool {
                kernel,
                strides,
                pads,
                act_min,
                act_max,
            } => int8_ops::avg_pool(x, out, kernel, strides, pads, (*act_min, *act_max))?,
            Op::QGlobalAvgPool {} => int8_ops::global_avg_pool(x, out, rounding)?,
            Op::ConvInputGrad { .. }
            | Op::ConvWeightGrad { .. }
            | Op::ConvBiasGrad {}
            | Op::LinearInputGrad {}
            | Op::LinearWeightGrad {}
            | Op::LinearBiasGrad {}
            | Op::MatMulLhsGrad {}
            | Op::MatMulRhsGrad {}
            | Op::AvgPoolGrad { .. }
            | Op::GlobalAvgPoolGrad { .. }
            | Op::MaxPoolGrad { .. }
            | Op::Mask { .. }
            | Op::ApplyMask {}
            | Op::ReduceToShape { .. }
            | Op::SoftmaxGrad { .. }
            | Op::LogSoftmaxGrad { .. }
            | Op::SoftmaxCrossEntropyGrad {}
            | Op::MseLossGrad {}
            | Op::PadGrad { .. }
            | Op::Slice { .. }
            | Op::Sgd { .. } => {
                return Err(OpFailure::Unsupported(format!(
                    "`{}` is not implemented by the interpreter yet",
                    op.name()
                )))
            }
            Op::Custom(c) => return Err(OpFailure::CustomOp(c.name.clone())),
        };
        Ok(Outcome::New(data))
    }
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
