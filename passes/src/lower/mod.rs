//! Lowering a training module to a [`Program`]: kernel calls with resolved parameters over one
//! planned arena.
//!
//! [`lower_module`] lowers two functions of a module prepared by
//! [`build_training_step`](crate::passes::build_training_step): the inference function
//! (`forward`, entry `infer`) and the training step (`train_step`, entry `train_step`). For each:
//!
//! 1. the ops run in the function's order ([`Schedule::program_order`]; a scheduling pass
//!    reorders the function itself);
//! 2. [`Liveness`] decides which values share a buffer (views alias their source, in-place
//!    elementwise results reuse their operand) and how long each buffer lives; its op steps are
//!    mapped to the calls each op lowers to;
//! 3. each op becomes one or more calls (the `kernels` module), its parameters (requantization
//!    multipliers, geometry, quantization tables) resolved exactly as the interpreter resolves
//!    them; an `i8` weight read by a float backward kernel is dequantized into a temporary arena
//!    buffer, and kernel scratch is an arena buffer live only at its call;
//! 4. the arena buffers are placed by [`place`] (one function, so a better planner is a one-line
//!    change) and the program is checked by [`verify_program`].
//!
//! Storage: frozen parameters and constants go to flash, trained parameters
//! (`GlobalKind::Param` with a trainable part) to SRAM copies initialised from flash, optimizer
//! state globals to state. The **input** of both entries is the `i8` tensor the function's
//! leading `q.quantize` of its image argument produces: the caller quantizes the image
//! ([`quantize_image`]), so the `f32` image never enters the arena. By default the input lives
//! in the arena ([`Storage::Input`]): the entry copies the caller's image there before its first
//! call, and the planner gives its bytes to other buffers after its last reader (usually the
//! first convolution's forward), so the image is not held through the backward pass;
//! [`LowerOptions::input_in_arena`] `= false` keeps it an argument read in place for the whole
//! step. The other arguments of the training step (label, learning rate, step) are entry
//! arguments.
//!
//! Not lowered (a [`LowerError::Unsupported`] naming the function, op and location): custom
//! ops, ops outside the paper models' training steps, and [`Rounding::OnnxRuntime`] (the
//! interpreter's onnxruntime float-path groups).

mod fuse_bottleneck_backward;
mod fuse_update;
mod kernels;
mod split_weight;

use std::collections::HashMap;

use mite_ir::analysis::{Liveness, Schedule};
use mite_ir::memory::best::{plan_best_pinned, SearchLimits};
use mite_ir::memory::plan::{check_plan, Plan, PlanError, Request};
use mite_ir::program::{
    verify_program, ArgRole, BufElem, BufferDecl, BufferId, Call, Entry, Program, ProgramError,
    ProgramErrors, Storage,
};
use mite_ir::{ElemType, Function, GlobalData, GlobalKind, Module, Op, Quant, Value};
use mite_kernels::requant::Rounding;
use thiserror::Error;

/// What to lower and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerOptions {
    /// The int8 requantization rounding (as the interpreter's option; default: double, as
    /// `mite train`).
    pub rounding: Rounding,
    /// The inference function, lowered to entry `infer`.
    pub forward: String,
    /// The training step, lowered to entry `train_step` (`None`: inference only).
    pub train_step: Option<String>,
    /// Lower each weight gradient whose only use is its parameter's update, with that update,
    /// to one fused call (no gradient buffer; see `fuse_update`). Default: on.
    pub fuse_updates: bool,
    /// Place the input image in the arena, live until its last reader (default), rather than
    /// reading it from the caller's buffer for the whole entry.
    pub input_in_arena: bool,
    /// Write each input gradient with an `i8` weight over its `dy` when `dy` dies at it and the
    /// convolution admits it (`mite_kernels::float::InPlaceConv`). Default: on.
    pub in_place_grads: bool,
    /// Keep only the trained slice of a weight trained on its first input channels in SRAM, its
    /// frozen remainder in flash (see `split_weight`). Default: on.
    pub split_weights: bool,
    /// Run the backward pass of each inverted bottleneck whose expanded gradient only its own
    /// chain reads one expanded channel at a time, as one `bottleneck_backward` call (see
    /// `fuse_bottleneck_backward`). Default: on.
    pub stream_bottleneck_backward: bool,
    /// Let a chained first stage that reads the entry's input where the input dies consume it,
    /// leaving its output in the input's bytes (`bottleneck_chain_int8_inplace`) when its
    /// geometry admits that. Default: on.
    pub chain_in_place: bool,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions {
            rounding: Rounding::Double,
            forward: "forward".into(),
            train_step: Some("train_step".into()),
            fuse_updates: true,
            input_in_arena: true,
            in_place_grads: true,
            split_weights: true,
            stream_bottleneck_backward: true,
            chain_in_place: true,
        }
    }
}

/// Why a module could not be lowered.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum LowerError {
    /// The module has no function of that name.
    #[error("lower: the module has no function @{0}")]
    NoFunction(String),
    /// An op (or argument) the lowering does not handle.
    #[error("lower: @{func}, op {index} `{op}`{}: {what}", loc_text(.loc))]
    Unsupported {
        /// The function.
        func: String,
        /// The op's position (`usize::MAX`: the function's signature).
        index: usize,
        /// The op's name.
        op: String,
        /// Its location name.
        loc: Option<String>,
        /// What is missing.
        what: String,
    },
    /// A global read by the function has no data.
    #[error("lower: global @{0} has no data (it is absent or elided)")]
    NoData(String),
    /// The planner produced an invalid plan.
    #[error("lower: @{func}: invalid arena plan: {error}")]
    Plan {
        /// The function.
        func: String,
        /// The violation.
        error: PlanError,
    },
    /// The lowered program does not verify (a lowering bug).
    #[error("lower: the lowered program does not verify: {0}")]
    Verify(ProgramErrors),
}

fn loc_text(loc: &Option<String>) -> String {
    loc.as_ref()
        .map(|l| format!(" (loc \"{l}\")"))
        .unwrap_or_default()
}

/// Places arena buffers: THE planner of the lowering —
/// [`plan_best`](mite_ir::memory::best::plan_best) with its default search, except that the node
/// limit, not the clock, bounds the exact search, so the same program always gets the same plan.
pub fn place(requests: &[Request]) -> Plan {
    place_pinned(requests, &[])
}

/// [`place`] with the requests `pinned` held at offset 0
/// ([`plan_best_pinned`]): a consumed input and the
/// result left in its bytes.
pub fn place_pinned(requests: &[Request], pinned: &[usize]) -> Plan {
    let limits = SearchLimits {
        time_limit: std::time::Duration::from_secs(3600),
        ..SearchLimits::default()
    };
    plan_best_pinned(requests, pinned, &limits).plan
}

/// Lowers the inference function and the training step of `module` (see the module
/// documentation) and verifies the result.
pub fn lower_module(module: &Module, opts: &LowerOptions) -> Result<Program, LowerError> {
    let mut program = Program {
        name: module.name.clone(),
        arena_bytes: 0,
        buffers: Vec::new(),
        entries: Vec::new(),
    };
    let mut globals = HashMap::new();
    let mut frozen = HashMap::new();
    let mut functions = vec![(opts.forward.as_str(), "infer")];
    if let Some(t) = &opts.train_step {
        functions.push((t.as_str(), "train_step"));
    }
    let lowered = functions
        .iter()
        .map(|(func, _)| {
            module
                .function(func)
                .ok_or_else(|| LowerError::NoFunction(func.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let splits = match (&opts.train_step, opts.split_weights) {
        (Some(t), true) => {
            let step = module
                .function(t)
                .ok_or_else(|| LowerError::NoFunction(t.to_string()))?;
            split_weight::Splits::plan(module, step, &lowered)
        }
        _ => split_weight::Splits::default(),
    };
    for (f, (_, entry)) in lowered.into_iter().zip(functions) {
        let lowering = EntryLowering {
            module,
            func: f,
            rounding: opts.rounding,
            fuse_updates: opts.fuse_updates,
            input_in_arena: opts.input_in_arena,
            in_place_grads: opts.in_place_grads,
            chain_in_place: opts.chain_in_place,
            consumable_input: None,
            handover: None,
            program: &mut program,
            globals: &mut globals,
            splits: &splits,
            frozen: &mut frozen,
            entry_index: 0,
            values: HashMap::new(),
            calls: Vec::new(),
            temps: Vec::new(),
        };
        lowering.lower(entry)?;
        if opts.stream_bottleneck_backward && entry == "train_step" {
            let last = program.entries.len() - 1;
            fuse_bottleneck_backward::stream_bottleneck_backward(&mut program, last)?;
        }
    }
    verify_program(&program).map_err(LowerError::Verify)?;
    Ok(program)
}

/// The `i8` input of `module`'s function `func`: the quantization its leading `q.quantize`
/// applies to the image argument.
pub fn input_quantization(module: &Module, func: &str) -> Result<(f32, i8), LowerError> {
    let f = module
        .function(func)
        .ok_or_else(|| LowerError::NoFunction(func.to_string()))?;
    let (_, q) = input_quantize(f)?;
    match &f.ty(q).quant {
        Some(Quant::PerTensor { scale, zero_point }) => match i8::try_from(*zero_point) {
            Ok(z) => Ok((*scale, z)),
            Err(_) => Err(signature_error(f, "the input's zero point is outside i8")),
        },
        _ => Err(signature_error(
            f,
            "the input must be quantized per tensor to i8",
        )),
    }
}

/// Quantizes an `f32` image for the `infer` / `train_step` entries of a program lowered from
/// `module` (with `mite_kernels::int8::quantize`, the kernel the interpreter's `q.quantize`
/// uses).
pub fn quantize_image(module: &Module, func: &str, image: &[f32]) -> Result<Vec<i8>, LowerError> {
    let (scale, zero_point) = input_quantization(module, func)?;
    let q = mite_kernels::QuantParams { scale, zero_point };
    let per = mite_kernels::int8::PerAxis::per_tensor(&q)
        .map_err(|e| signature_error(module.function(func).expect("checked"), &e.to_string()))?;
    let mut out = vec![0; image.len()];
    mite_kernels::int8::quantize(image, &mut out, &per)
        .map_err(|e| signature_error(module.function(func).expect("checked"), &e.to_string()))?;
    Ok(out)
}

fn signature_error(f: &Function, what: &str) -> LowerError {
    LowerError::Unsupported {
        func: f.name.clone(),
        index: usize::MAX,
        op: "signature".into(),
        loc: None,
        what: what.to_string(),
    }
}

/// The image argument's `q.quantize` op position and its result.
fn input_quantize(f: &Function) -> Result<(usize, Value), LowerError> {
    let Some(&image) = f.args().first() else {
        return Err(signature_error(f, "the function has no input argument"));
    };
    let mut found = None;
    for (pos, &id) in f.layout().iter().enumerate() {
        let op = f.op(id);
        if op.operands.contains(&image) {
            if found.is_some() || !matches!(op.op, Op::Quantize {}) || op.operands.len() != 1 {
                return Err(signature_error(
                    f,
                    "the input image must be read by exactly one q.quantize (the caller \
                     quantizes it)",
                ));
            }
            found = Some((pos, op.results[0]));
        }
    }
    let found = found.ok_or_else(|| signature_error(f, "the input image is never quantized"))?;
    if f.ty(found.1).elem != ElemType::I8 {
        return Err(signature_error(f, "the input must be quantized to i8"));
    }
    Ok(found)
}

/// The buffer element type of an IR element type.
pub(crate) fn buf_elem(e: ElemType) -> BufElem {
    match e {
        ElemType::F32 => BufElem::F32,
        ElemType::I8 => BufElem::I8,
        ElemType::I32 => BufElem::I32,
        ElemType::I64 => BufElem::I64,
        ElemType::I1 => BufElem::Bits,
    }
}

/// A temporary arena buffer (dequantized weight, kernel scratch) live from call `first` to call
/// `last` of its entry.
struct Temp {
    id: BufferId,
    first: usize,
    last: usize,
}

/// The lowering of one function to one entry.
struct EntryLowering<'a> {
    module: &'a Module,
    func: &'a Function,
    rounding: Rounding,
    fuse_updates: bool,
    input_in_arena: bool,
    in_place_grads: bool,
    chain_in_place: bool,
    /// The entry's input buffer while lowering the step where it dies (a chain may consume it).
    consumable_input: Option<BufferId>,
    /// The result a consuming chain leaves in the input's bytes, and that call's index.
    handover: Option<(BufferId, usize)>,
    program: &'a mut Program,
    /// Buffers of module globals, shared by the entries.
    globals: &'a mut HashMap<String, BufferId>,
    /// The weights stored as trained slice + frozen remainder.
    splits: &'a split_weight::Splits,
    /// The frozen remainder of each split weight's trained slice, and the slice's channels.
    frozen: &'a mut HashMap<BufferId, (BufferId, usize)>,
    entry_index: usize,
    /// The buffer of each value lowered so far.
    values: HashMap<Value, BufferId>,
    calls: Vec<Call>,
    temps: Vec<Temp>,
}

impl EntryLowering<'_> {
    fn lower(mut self, entry_name: &str) -> Result<(), LowerError> {
        let f = self.func;
        self.entry_index = self.program.entries.len();
        let (quantize_pos, input) = input_quantize(f)?;
        let schedule = Schedule::program_order(f);
        let live = Liveness::compute(f, &schedule);
        let fusion = if self.fuse_updates {
            fuse_update::UpdateFusion::plan(self.module, f, &schedule, &live)
        } else {
            fuse_update::UpdateFusion::default()
        };

        // Arguments: the quantized image (in the arena, placed below, or an argument), then
        // label, learning rate and step.
        let mut args = vec![if self.input_in_arena {
            self.input_in_arena(input)
        } else {
            self.arg(input, ArgRole::Input)
        }];
        let roles = [ArgRole::Label, ArgRole::LearningRate, ArgRole::Step];
        let wanted = [ElemType::I32, ElemType::F32, ElemType::I64];
        for (k, &a) in f.args().iter().enumerate().skip(1) {
            let (Some(&role), Some(&elem)) = (roles.get(k - 1), wanted.get(k - 1)) else {
                return Err(signature_error(f, "more than 4 arguments"));
            };
            if f.ty(a).elem != elem {
                return Err(signature_error(
                    f,
                    &format!(
                        "argument {k} ({}) must be {} elements",
                        role.name(),
                        elem.name()
                    ),
                ));
            }
            args.push(self.arg(a, role));
        }
        let input_buffer = live.buffer_of(input);

        // Arena buffers by liveness buffer index.
        let mut arena: HashMap<usize, BufferId> = HashMap::new();
        let mut call_range = Vec::with_capacity(schedule.len());
        for (pos, &id) in schedule.ops().iter().enumerate() {
            let first_call = self.calls.len();
            let op = f.op(id);
            if pos != quantize_pos {
                // An input gradient whose `dy` dies here is written over `dy`'s buffer.
                if let (true, Some(&dy), Some(&dx)) =
                    (self.in_place_grads, op.operands.first(), op.results.first())
                {
                    let dies_here = |b: usize| {
                        Some(b) != input_buffer
                            && fusion.last_step(b, live.buffers()[b].last) == pos
                    };
                    let shared = live.buffer_of(dy).filter(|&b| dies_here(b));
                    let target = shared.and_then(|b| arena.get(&b).copied());
                    if let (Some(buf), Some(bx)) = (target, live.buffer_of(dx)) {
                        if !self.values.contains_key(&dx)
                            && !arena.contains_key(&bx)
                            && self.in_place_input_grad(pos, id)
                        {
                            arena.insert(bx, buf);
                            self.values.insert(dx, buf);
                        }
                    }
                }
                // Results first: calls name them.
                for &r in &op.results {
                    if self.values.contains_key(&r)
                        || op.op.global().is_some()
                        || fusion.is_fused_grad(r)
                    {
                        continue;
                    }
                    match live.buffer_of(r) {
                        Some(b) if Some(b) == input_buffer => {
                            if !mite_ir::analysis::liveness::is_view(&op.op) {
                                return Err(self.unsupported(
                                    pos,
                                    "an op writes into the input argument's buffer in place",
                                ));
                            }
                            self.values.insert(r, args[0]);
                        }
                        Some(b) => {
                            let id = match arena.get(&b) {
                                Some(&id) => id,
                                None => {
                                    let id = self.arena_buffer(r);
                                    arena.insert(b, id);
                                    id
                                }
                            };
                            self.values.insert(r, id);
                        }
                        None => {}
                    }
                }
                if !fusion.is_fused(pos) {
                    let input_dies_here = self.chain_in_place
                        && self.input_in_arena
                        && input_buffer.is_some_and(|b| live.buffers()[b].last == pos);
                    self.consumable_input = input_dies_here.then_some(args[0]);
                    self.lower_op(pos, id)?;
                    self.consumable_input = None;
                }
                self.lower_fused_updates(&fusion, pos)?;
            }
            call_range.push((first_call, self.calls.len()));
        }

        // Lifetimes in calls: a liveness buffer lives from the first call of its first step to
        // the last call of its last step.
        let mut ids = Vec::new();
        let mut requests: Vec<Request> = Vec::new();
        // Liveness buffers sharing one arena buffer (an in-place input gradient) make one
        // request spanning both lifetimes.
        let mut request_of: HashMap<BufferId, usize> = HashMap::new();
        for (b, lifetime) in live.buffers().iter().enumerate() {
            let Some(&id) = arena.get(&b) else { continue };
            let mut first = call_range[lifetime.first].0;
            let last_step = fusion.last_step(b, lifetime.last);
            let mut last = call_range[last_step].1.saturating_sub(1).max(first);
            if let Some((_, c)) = self.handover.filter(|&(h, _)| h == id) {
                // Inside the consumed input's bytes during its producer's call.
                first = c + 1;
                last = last.max(first);
            }
            if let Some(&k) = request_of.get(&id) {
                let r = &mut requests[k];
                r.first = r.first.min(first);
                r.last = r.last.max(last);
                continue;
            }
            request_of.insert(id, requests.len());
            ids.push(id);
            requests.push(self.request(id, first, last));
        }
        for t in &self.temps {
            ids.push(t.id);
            requests.push(self.request(t.id, t.first, t.last));
        }
        if self.input_in_arena {
            // Copied in before call 0; live to the last call of its last reader (views of it
            // included: they share its liveness buffer).
            let last = input_buffer
                .map(|b| live.buffers()[b].last)
                .map_or(0, |step| call_range[step].1.saturating_sub(1));
            ids.push(args[0]);
            requests.push(self.request(args[0], 0, last));
        }
        // A handed-over result shares offset 0 with the input it was left in.
        let pins: Vec<usize> = match self.handover {
            Some((h, _)) if self.input_in_arena => ids
                .iter()
                .enumerate()
                .filter(|&(_, &id)| id == h || id == args[0])
                .map(|(k, _)| k)
                .collect(),
            _ => Vec::new(),
        };
        let plan = place_pinned(&requests, &pins);
        if pins.iter().any(|&k| plan.offsets[k] != 0) {
            return Err(LowerError::Verify(ProgramErrors(vec![
                ProgramError::Buffer {
                    buffer: args[0],
                    name: self.program.buffer(args[0]).name.clone(),
                    what:
                        "the consumed input and the result left in it could not both be placed at \
                       offset 0"
                            .into(),
                },
            ])));
        }
        check_plan(&requests, &plan).map_err(|error| LowerError::Plan {
            func: f.name.clone(),
            error,
        })?;
        for (&id, &offset) in ids.iter().zip(&plan.offsets) {
            let storage = &mut self.program.buffers[id.index()].storage;
            *storage = match storage {
                Storage::Input { entry, .. } => Storage::Input {
                    entry: *entry,
                    offset,
                },
                _ => Storage::Arena { offset },
            };
        }
        self.program.arena_bytes = self.program.arena_bytes.max(plan.arena_size);

        let results = f
            .outputs()
            .iter()
            .map(|v| self.buffer(*v, usize::MAX))
            .collect::<Result<Vec<_>, _>>()?;
        self.program.entries.push(Entry {
            name: entry_name.to_string(),
            args,
            results,
            calls: std::mem::take(&mut self.calls),
        });
        Ok(())
    }

    fn request(&self, id: BufferId, first: usize, last: usize) -> Request {
        let b = self.program.buffer(id);
        Request {
            size: b.bytes(),
            align: b.elem.align(),
            first,
            last,
        }
    }

    fn new_buffer(&mut self, decl: BufferDecl) -> BufferId {
        self.program.buffers.push(decl);
        BufferId((self.program.buffers.len() - 1) as u32)
    }

    fn value_name(&self, v: Value) -> String {
        let f = self.func;
        if let Some(n) = &f.value(v).name {
            return n.clone();
        }
        f.defining_op(v)
            .and_then(|id| f.op(id).loc.name.clone())
            .unwrap_or_else(|| format!("v{}", v.into_raw().into_u32()))
    }

    fn arg(&mut self, v: Value, role: ArgRole) -> BufferId {
        let entry = self.entry_index;
        self.bound_buffer(v, Storage::Arg { entry, role })
    }

    /// The entry's input `v` in the arena (placed later).
    fn input_in_arena(&mut self, v: Value) -> BufferId {
        let entry = self.entry_index;
        self.bound_buffer(v, Storage::Input { entry, offset: 0 })
    }

    /// A new buffer in `storage` holding value `v`, bound to it.
    fn bound_buffer(&mut self, v: Value, storage: Storage) -> BufferId {
        let ty = self.func.ty(v);
        let id = self.new_buffer(BufferDecl {
            name: self.value_name(v),
            elem: buf_elem(ty.elem),
            len: ty.num_elements(),
            shape: ty.shape.to_vec(),
            storage,
        });
        self.values.insert(v, id);
        id
    }

    /// A new arena buffer for value `v` (placed later).
    fn arena_buffer(&mut self, v: Value) -> BufferId {
        let ty = self.func.ty(v);
        self.new_buffer(BufferDecl {
            name: self.value_name(v),
            elem: buf_elem(ty.elem),
            len: ty.num_elements(),
            shape: ty.shape.to_vec(),
            storage: Storage::Arena { offset: 0 },
        })
    }

    /// A temporary arena buffer live during the calls from now to `calls_ahead` calls later.
    fn temp(
        &mut self,
        name: String,
        elem: BufElem,
        shape: &[usize],
        calls_ahead: usize,
    ) -> BufferId {
        let id = self.new_buffer(BufferDecl {
            name,
            elem,
            len: shape.iter().product(),
            shape: shape.to_vec(),
            storage: Storage::Arena { offset: 0 },
        });
        let first = self.calls.len();
        self.temps.push(Temp {
            id,
            first,
            last: first + calls_ahead,
        });
        id
    }

    /// The buffer of a module global (created on first use).
    fn global_buffer(&mut self, name: &str) -> Result<BufferId, LowerError> {
        if let Some(&id) = self.globals.get(name) {
            return Ok(id);
        }
        let g = self
            .module
            .globals
            .get(name)
            .ok_or_else(|| LowerError::NoData(name.to_string()))?;
        let data = || match &g.data {
            GlobalData::Inline(d) => Ok(d.clone()),
            _ => Err(LowerError::NoData(name.to_string())),
        };
        if let Some(&kept) = self.splits.kept.get(name) {
            return self.split_buffers(name, kept);
        }
        let mut shape = g.ty.shape.to_vec();
        let storage = match g.kind {
            GlobalKind::State => {
                if let Some(s) = self.splits.state_shapes.get(name) {
                    shape.clone_from(s);
                }
                Storage::State {
                    global: name.to_string(),
                }
            }
            kind if kind.is_trainable() => Storage::Param {
                global: name.to_string(),
                init: data()?,
            },
            _ => Storage::Flash {
                global: Some(name.to_string()),
                data: data()?,
            },
        };
        let id = self.new_buffer(BufferDecl {
            name: name.to_string(),
            elem: buf_elem(g.ty.elem),
            len: shape.iter().product(),
            shape,
            storage,
        });
        self.globals.insert(name.to_string(), id);
        Ok(id)
    }

    /// The buffers of split weight `name` (its first `kept` input channels trained): the
    /// trained slice (returned) and the frozen remainder.
    fn split_buffers(&mut self, name: &str, kept: usize) -> Result<BufferId, LowerError> {
        let g = &self.module.globals[name];
        let GlobalData::Inline(data) = &g.data else {
            return Err(LowerError::NoData(name.to_string()));
        };
        let shape = g.ty.shape.to_vec();
        let taps: usize = shape[2..].iter().product();
        let (trained, rest) = mite_ir::program::split_rows(data, shape[0], kept * taps)
            .ok_or_else(|| {
                LowerError::NoData(format!("{name} (its data does not fit its type)"))
            })?;
        let part = |channels: usize| vec![shape[0], channels, shape[2], shape[3]];
        let id = self.new_buffer(BufferDecl {
            name: name.to_string(),
            elem: buf_elem(g.ty.elem),
            len: trained.len(),
            shape: part(kept),
            storage: Storage::Param {
                global: name.to_string(),
                init: trained,
            },
        });
        let frozen = self.new_buffer(BufferDecl {
            name: format!("{name}.frozen"),
            elem: buf_elem(g.ty.elem),
            len: rest.len(),
            shape: part(shape[1] - kept),
            storage: Storage::Flash {
                global: Some(name.to_string()),
                data: rest,
            },
        });
        self.globals.insert(name.to_string(), id);
        self.frozen.insert(id, (frozen, kept));
        Ok(id)
    }

    /// The buffer holding value `v`.
    fn buffer(&self, v: Value, pos: usize) -> Result<BufferId, LowerError> {
        self.values
            .get(&v)
            .copied()
            .ok_or_else(|| self.unsupported(pos, "an operand has no buffer (internal error)"))
    }

    fn unsupported(&self, pos: usize, what: &str) -> LowerError {
        let (op, loc) = match self.func.layout().get(pos) {
            Some(&id) => {
                let d = self.func.op(id);
                (d.op.name().to_string(), d.loc.name.clone())
            }
            None => ("return".to_string(), None),
        };
        LowerError::Unsupported {
            func: self.func.name.clone(),
            index: pos,
            op,
            loc,
            what: what.to_string(),
        }
    }

    fn push(&mut self, call: Call) {
        self.calls.push(call);
    }
}

#[cfg(test)]
mod tests;
