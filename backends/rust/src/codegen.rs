//! Printing the Program's entries (`src/steps.rs`), its flash tables and kernel descriptors
//! (`src/tables.rs`, `data/*.bin`).
//!
//! Every buffer lives in one of three byte blocks of the `Model` (arena, parameters, state), in
//! flash, or in an entry's arguments; the entries' input images live in the arena (the API copies
//! the caller's image there, or the caller writes it there through `Model::input_buffer`). A call borrows each of its buffers once: the buffers of a
//! block it writes are split out of that block together (`rt::carve`, sorted, disjoint), those of
//! a block it only reads are sliced; typed views come from `bytemuck`.

use std::collections::BTreeMap;
use std::fmt::Write;

use mite_ir::program::{ArgRole, BufElem, BufferId, Call, Entry, Kernel, Program, Storage};
use mite_ir::TensorData;

use crate::{CrateFile, EmitError, RustOptions};

/// The generated sources and what the other files need to know.
pub(crate) struct Code {
    /// `src/steps.rs`.
    pub steps: String,
    /// `src/tables.rs`.
    pub tables: String,
    /// `data/*.bin`.
    pub data: Vec<CrateFile>,
    /// Facts for `lib.rs` and the README.
    pub facts: Facts,
}

/// Facts about the program the API and documentation state.
pub(crate) struct Facts {
    /// The input's shape.
    pub input_shape: Vec<usize>,
    /// Its element count.
    pub input_len: usize,
    /// The arena offset of the training step's input.
    pub train_input_at: u64,
    /// The arena offset of the inference entry's input.
    pub infer_input_at: u64,
    /// The inference output's element type (`f32`, `i8` or `i32`).
    pub output_elem: &'static str,
    /// Its shape.
    pub output_shape: Vec<usize>,
    /// Its element count.
    pub output_len: usize,
    /// Classes (the output's last dimension).
    pub classes: usize,
    /// Bytes of the parameter block.
    pub param_bytes: u64,
    /// Bytes of the state block.
    pub state_bytes: u64,
    /// Bytes of flash tables (constants and parameter images).
    pub flash_bytes: u64,
    /// Number of kernel calls per entry (`(name, calls)`).
    pub calls: Vec<(String, usize)>,
}

/// Where a buffer is, as the generated code reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// A byte range of a `Model` block (`arena`, `params` or `state`).
    Block(&'static str, u64, u64),
    /// A flash table.
    Flash,
    /// An entry argument.
    Arg(ArgKind),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ArgKind {
    Input,
    Label,
    Lr,
    Step,
}

/// Offsets of the parameter and state blocks (the arena's are the Program's).
pub(crate) struct Layout {
    places: Vec<Place>,
    param_bytes: u64,
    state_bytes: u64,
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

pub(crate) fn layout(p: &Program) -> Layout {
    let (mut param_bytes, mut state_bytes) = (0, 0);
    let places = p
        .buffers
        .iter()
        .map(|b| match &b.storage {
            Storage::Arena { offset } | Storage::Input { offset, .. } => {
                Place::Block("arena", *offset, offset + b.bytes())
            }
            Storage::Flash { .. } => Place::Flash,
            Storage::Param { .. } => {
                let start = align_up(param_bytes, b.elem.align());
                param_bytes = start + b.bytes();
                Place::Block("params", start, param_bytes)
            }
            Storage::State { .. } => {
                let start = align_up(state_bytes, b.elem.align());
                state_bytes = start + b.bytes();
                Place::Block("state", start, state_bytes)
            }
            Storage::Arg { role, .. } => Place::Arg(match role {
                ArgRole::Input => ArgKind::Input,
                ArgRole::Label => ArgKind::Label,
                ArgRole::LearningRate => ArgKind::Lr,
                ArgRole::Step => ArgKind::Step,
            }),
        })
        .collect();
    Layout {
        places,
        param_bytes: align_up(param_bytes, 8),
        state_bytes: align_up(state_bytes, 8),
    }
}

impl Layout {
    /// The byte range of a parameter buffer in the parameter block.
    pub(crate) fn param_range(&self, b: BufferId) -> Option<(u64, u64)> {
        match self.places[b.index()] {
            Place::Block("params", s, e) => Some((s, e)),
            _ => None,
        }
    }

    /// Bytes of the parameter block.
    pub(crate) fn param_bytes(&self) -> u64 {
        self.param_bytes
    }
}

fn rust_elem(e: BufElem) -> &'static str {
    match e {
        BufElem::F32 => "f32",
        BufElem::I8 => "i8",
        BufElem::I32 => "i32",
        BufElem::I64 => "i64",
        BufElem::Bits => "u32",
    }
}

/// The entries the API maps onto: training (with a label argument) and inference.
struct Entries<'a> {
    train: (usize, &'a Entry),
    infer: (usize, &'a Entry),
}

fn has_role(p: &Program, e: &Entry, role: ArgRole) -> bool {
    e.args
        .iter()
        .any(|&a| p.buffer(a).storage.arg_role() == Some(role))
}

fn find_entries(p: &Program) -> Result<Entries<'_>, EmitError> {
    let find = |label: bool| {
        p.entries.iter().enumerate().find(|(_, e)| {
            has_role(p, e, ArgRole::Input) && has_role(p, e, ArgRole::Label) == label
        })
    };
    Ok(Entries {
        train: find(true).ok_or(EmitError::MissingEntry(
            "training",
            "an input and a label argument",
        ))?,
        infer: find(false).ok_or(EmitError::MissingEntry(
            "inference",
            "an input and no label argument",
        ))?,
    })
}

fn entry_error(e: &Entry, what: impl Into<String>) -> EmitError {
    EmitError::Entry {
        entry: e.name.clone(),
        what: what.into(),
    }
}

/// The single result of `e`, checked to be one of `elems`.
fn single_result(p: &Program, e: &Entry, elems: &[BufElem]) -> Result<BufferId, EmitError> {
    match e.results.as_slice() {
        [r] if elems.contains(&p.buffer(*r).elem) => Ok(*r),
        [r] => Err(entry_error(
            e,
            format!(
                "its result {r} is {}, expected one of {:?}",
                p.buffer(*r).elem.name(),
                elems.iter().map(|e| e.name()).collect::<Vec<_>>()
            ),
        )),
        rs => Err(entry_error(
            e,
            format!("has {} results, expected 1", rs.len()),
        )),
    }
}

/// Whether a call of `e` reads its label argument.
fn uses_label(p: &Program, e: &Entry) -> bool {
    e.calls.iter().flat_map(|c| &c.inputs).any(|&b| {
        matches!(
            p.buffer(b).storage,
            Storage::Arg {
                role: ArgRole::Label,
                ..
            }
        )
    })
}

/// The input of `e` and its arena offset.
fn input_of(p: &Program, e: &Entry) -> Result<(BufferId, u64), EmitError> {
    let input = e
        .args
        .iter()
        .copied()
        .find(|&a| p.buffer(a).storage.arg_role() == Some(ArgRole::Input))
        .ok_or_else(|| entry_error(e, "no input argument"))?;
    if p.buffer(input).elem != BufElem::I8 {
        return Err(entry_error(e, "the input is not i8"));
    }
    match p.buffer(input).storage {
        Storage::Input { offset, .. } => Ok((input, offset)),
        _ => Err(entry_error(
            e,
            "its input is not in the arena (the Rust API copies it there; lower with \
             `input_in_arena`)",
        )),
    }
}

/// Generates the sources of `p`.
pub(crate) fn generate(p: &Program, options: &RustOptions) -> Result<Code, EmitError> {
    let entries = find_entries(p)?;
    let lay = layout(p);
    let (infer_i, infer) = entries.infer;
    let (train_i, train) = entries.train;
    let (input, infer_input_at) = input_of(p, infer)?;
    let (train_input, train_input_at) = input_of(p, train)?;
    let input_len = p.buffer(input).len;
    if p.buffer(train_input).len != input_len {
        return Err(entry_error(
            train,
            format!(
                "its input has {} elements, the inference input {input_len}",
                p.buffer(train_input).len
            ),
        ));
    }
    let out = single_result(p, infer, &[BufElem::F32, BufElem::I8, BufElem::I32])?;
    let loss = single_result(p, train, &[BufElem::F32])?;
    if p.buffer(loss).len != 1 {
        return Err(entry_error(train, "its result (the loss) is not one f32"));
    }
    let out_decl = p.buffer(out);
    // The classes are what the loss ranges labels over.
    let classes = train
        .calls
        .iter()
        .find_map(|c| match c.kernel {
            Kernel::SoftmaxCrossEntropy { classes, .. } => Some(classes),
            _ => None,
        })
        .unwrap_or(out_decl.len);

    let mut tables = Tables::default();
    let (data, flash_bytes) = flash_data(p, &lay, &mut tables)?;

    let mut steps = String::from(
        "//! The entries: one kernel call after another, over views of the model's memory.\n\n\
         use crate::runtime::{self as rt, Error};\n\
         #[allow(unused_imports)]\n\
         use mite_kernels::requant::Rounding;\n\
         #[allow(unused_imports)]\n\
         use crate::tables as t;\n\
         use crate::Model;\n",
    );
    let out_ty = rust_elem(out_decl.elem);
    let _ = write!(
        steps,
        "\n/// Entry @{}: {} calls, its input already in the arena.\npub(crate) fn infer(m: &mut Model, out: &mut [{out_ty}]) -> Result<(), Error> {{\n",
        infer.name,
        infer.calls.len()
    );
    entry_body(p, &lay, infer_i, infer, None, &mut tables, &mut steps)?;
    let _ = writeln!(
        steps,
        "    out.copy_from_slice({});\n    Ok(())\n}}",
        read_expr(p, &lay, out)
    );
    let _ = write!(
        steps,
        "\n/// Entry @{}: {} calls, its input already in the arena. The label is in range (checked by\n\
         /// the caller).\n{}\
         pub(crate) fn train_step(m: &mut Model, label: i32) -> Result<f32, Error> {{\n",
        train.name,
        train.calls.len(),
        if uses_label(p, train) {
            ""
        } else {
            "#[allow(unused_variables)]\n"
        }
    );
    entry_body(p, &lay, train_i, train, Some(loss), &mut tables, &mut steps)?;
    steps.push_str("    Ok(loss)\n}\n");

    let _ = options;
    Ok(Code {
        steps,
        tables: tables.finish(&lay),
        data,
        facts: Facts {
            input_shape: p.buffer(input).shape.clone(),
            input_len,
            train_input_at,
            infer_input_at,
            output_elem: out_ty,
            output_shape: out_decl.shape.clone(),
            output_len: out_decl.len,
            classes,
            param_bytes: lay.param_bytes,
            state_bytes: lay.state_bytes,
            flash_bytes,
            calls: p
                .entries
                .iter()
                .map(|e| (e.name.clone(), e.calls.len()))
                .collect(),
        },
    })
}

/// `src/tables.rs` under construction.
#[derive(Default)]
struct Tables {
    /// Flash table statics.
    statics: String,
    /// `init_params` body.
    init: String,
    /// Kernel descriptors.
    descs: String,
    /// The name of each distinct descriptor, by its type and fields.
    interned: BTreeMap<(&'static str, String), String>,
}

impl Tables {
    /// The name of a descriptor of type `ty` with `fields` (a struct body): an identical one
    /// already emitted (repeated blocks share their tables), or a new `static` named `name`.
    fn intern(&mut self, name: &str, ty: &'static str, fields: String) -> String {
        if let Some(existing) = self.interned.get(&(ty, fields.clone())) {
            return existing.clone();
        }
        let _ = writeln!(
            self.descs,
            "\npub(crate) static {name}: {ty} = {ty} {fields};"
        );
        self.interned.insert((ty, fields), name.to_string());
        name.to_string()
    }

    fn finish(self, lay: &Layout) -> String {
        let mut s = String::from(
            "//! Flash: frozen constants, the trained parameters' initial images, and each call's\n\
             //! resolved kernel parameters.\n\n\
             #![allow(clippy::unreadable_literal, clippy::excessive_precision)]\n\n\
             #[allow(unused_imports)]\n\
             use crate::runtime::{ConvDesc, DequantDesc, GeomDesc, SgdDesc, SliceDesc, Table};\n\
             #[allow(unused_imports)]\n\
             use mite_kernels::int8::{AddParams, MeanParams};\n\
             #[allow(unused_imports)]\n\
             use mite_kernels::requant::{ActRange, QuantParams, Rounding};\n\
             #[allow(unused_imports)]\n\
             use mite_kernels::Window2d;\n\n",
        );
        s.push_str(&self.statics);
        let _ = write!(
            s,
            "\n/// Copies the parameters' initial images into the parameter block ({} bytes).\n\
             pub(crate) fn init_params(p: &mut [u8]) {{\n{}}}\n",
            lay.param_bytes, self.init
        );
        if lay.param_bytes == 0 {
            s = s.replace("init_params(p: &mut", "init_params(_p: &mut");
        }
        s.push_str(&self.descs);
        s
    }
}

/// Little-endian bytes of `data`, checked against `elem` and `len`.
pub(crate) fn data_bytes(elem: BufElem, len: usize, data: &TensorData) -> Result<Vec<u8>, String> {
    if data.len() != len {
        return Err(format!("{} elements, declared {len}", data.len()));
    }
    Ok(match (elem, data) {
        (BufElem::F32, TensorData::F32(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (BufElem::I8, TensorData::I8(v)) => v.iter().map(|&x| x as u8).collect(),
        (BufElem::I32, TensorData::I32(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (BufElem::I64, TensorData::I64(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (BufElem::Bits, TensorData::I1(v)) => {
            let mut words = vec![0u32; len.div_ceil(32)];
            for (i, &b) in v.iter().enumerate() {
                words[i / 32] |= u32::from(b) << (i % 32);
            }
            words.iter().flat_map(|w| w.to_le_bytes()).collect()
        }
        _ => return Err(format!("data does not match element type {}", elem.name())),
    })
}

/// The `data/bN.bin` files of flash buffers and parameter images, their statics and the
/// parameter initialisation; returns the files and the flash bytes.
fn flash_data(
    p: &Program,
    lay: &Layout,
    tables: &mut Tables,
) -> Result<(Vec<CrateFile>, u64), EmitError> {
    let mut files = vec![];
    let mut flash = 0;
    for (i, b) in p.buffers.iter().enumerate() {
        let data = match &b.storage {
            Storage::Flash { data, .. } => data,
            Storage::Param { init, .. } => init,
            _ => continue,
        };
        let bytes = data_bytes(b.elem, b.len, data).map_err(|what| EmitError::Data {
            buffer: format!("b{i}"),
            name: b.name.clone(),
            what,
        })?;
        let _ = writeln!(
            tables.statics,
            "/// b{i} {:?}: {}[{}].\npub(crate) static B{i}: Table<{}> = Table(*include_bytes!(\"../data/b{i}.bin\"));",
            b.name,
            b.elem.name(),
            dims(&b.shape),
            bytes.len()
        );
        if let Place::Block(_, start, end) = lay.places[i] {
            let _ = writeln!(
                tables.init,
                "    p[{start}..{end}].copy_from_slice(&B{i}.0);"
            );
        }
        flash += bytes.len() as u64;
        files.push(CrateFile::bytes(format!("data/b{i}.bin"), bytes));
    }
    Ok((files, flash))
}

fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// An expression reading buffer `b` whole (outside any call), as a typed slice.
fn read_expr(p: &Program, lay: &Layout, b: BufferId) -> String {
    let elem = p.buffer(b).elem;
    let bytes = match lay.places[b.index()] {
        Place::Block(block, s, e) => format!("rt::region(&m.{block}.0, {s}, {e})?"),
        Place::Flash => format!("&t::B{}.0", b.0),
        Place::Arg(kind) => return arg_expr(kind).to_string(),
    };
    typed(elem, &bytes, false)
}

fn arg_expr(kind: ArgKind) -> &'static str {
    match kind {
        ArgKind::Input => "input",
        ArgKind::Label => "&[label][..]",
        ArgKind::Lr => "&[m.lr][..]",
        ArgKind::Step => "&[m.step][..]",
    }
}

/// A typed view of the bytes `bytes` (an expression of type `&[u8]` or `&mut [u8]`).
fn typed(elem: BufElem, bytes: &str, write: bool) -> String {
    match (elem, write) {
        (BufElem::I8, false) => format!("rt::i8s({bytes})"),
        (BufElem::I8, true) => format!("rt::i8s_mut({bytes})"),
        (e, false) => format!("rt::view::<{}>({bytes})?", rust_elem(e)),
        (e, true) => format!("rt::view_mut::<{}>({bytes})?", rust_elem(e)),
    }
}

/// The body of one entry: its calls, with the loss check after the call that computes `loss`.
fn entry_body(
    p: &Program,
    lay: &Layout,
    entry_index: usize,
    e: &Entry,
    loss: Option<BufferId>,
    tables: &mut Tables,
    out: &mut String,
) -> Result<(), EmitError> {
    let loss_call = match loss {
        Some(l) => Some(
            e.calls
                .iter()
                .rposition(|c| c.outputs.contains(&l))
                .ok_or_else(|| entry_error(e, format!("no call computes its loss {l}")))?,
        ),
        None => None,
    };
    if let Some(lc) = loss_call {
        check_no_update_before(p, e, lc)?;
    }
    for (ci, call) in e.calls.iter().enumerate() {
        let _ = writeln!(
            out,
            "    // {ci}: {}{}",
            call.kernel.name(),
            call.loc
                .as_ref()
                .map(|l| format!(" {l:?}"))
                .unwrap_or_default()
        );
        let views = bind(p, lay, e, ci, call)?;
        let desc = format!("K{entry_index}_{ci}");
        let stmt = kernel_stmt(e, ci, call, &views, &desc, tables)?;
        let _ = writeln!(out, "    {{\n{}        {stmt}\n    }}", views.prelude);
        if Some(ci) == loss_call {
            let l = loss.expect("loss_call implies loss");
            let _ = writeln!(
                out,
                "    let loss = rt::first({})?;\n    \
                 if !loss.is_finite() {{\n        return Err(Error::NonFiniteLoss {{ loss }});\n    }}",
                read_expr(p, lay, l)
            );
        }
    }
    Ok(())
}

/// Whether `call` writes a parameter or optimizer state.
fn updated_buffer(p: &Program, call: &Call) -> Option<BufferId> {
    call.outputs.iter().copied().find(|&b| {
        matches!(
            p.buffer(b).storage,
            Storage::Param { .. } | Storage::State { .. }
        )
    })
}

fn check_no_update_before(p: &Program, e: &Entry, loss_call: usize) -> Result<(), EmitError> {
    for (ci, call) in e.calls.iter().enumerate().take(loss_call + 1) {
        if let Some(b) = updated_buffer(p, call) {
            return Err(EmitError::UpdateBeforeLoss {
                entry: e.name.clone(),
                call: ci,
                kernel: call.kernel.name(),
                buffer: format!("{b} ({})", p.buffer(b).name),
                loss_call,
            });
        }
    }
    Ok(())
}

/// The typed views of one call's operands.
struct Views {
    /// Statements binding the carved blocks.
    prelude: String,
    /// The operand the first result overwrites in place (its expression is empty).
    in_place: Option<usize>,
    /// One expression per input.
    inputs: Vec<String>,
    /// One per output.
    outputs: Vec<String>,
    /// The scratch, if any.
    scratch: Option<String>,
}

/// The operand of an elementwise kernel that its result overwrites (the same buffer, or the same
/// bytes).
fn in_place_input(lay: &Layout, call: &Call) -> Option<usize> {
    if !matches!(
        call.kernel,
        Kernel::AddInt8 { .. } | Kernel::AddF32 { .. } | Kernel::ApplyMask { .. }
    ) {
        return None;
    }
    let out = *call.outputs.first()?;
    call.inputs.iter().position(|&b| {
        b == out
            || matches!(
                (lay.places[b.index()], lay.places[out.index()]),
                (Place::Block(x, s, e), Place::Block(y, s2, e2)) if x == y && s == s2 && e == e2
            )
    })
}

fn bind(p: &Program, lay: &Layout, e: &Entry, ci: usize, call: &Call) -> Result<Views, EmitError> {
    // Each distinct buffer once, mutable when written; an operand the result overwrites in
    // place is reached through the result.
    let in_place = in_place_input(lay, call);
    // A consuming kernel writes its operand 0 and leaves result 0 inside it: the operand is
    // bound mutable, the result not at all.
    let consumed = call.kernel.consumes_input();
    let mut written: BTreeMap<BufferId, bool> = BTreeMap::new();
    for (k, &b) in call.inputs.iter().enumerate() {
        if Some(k) != in_place {
            *written.entry(b).or_insert(false) |= consumed && k == 0;
        }
    }
    let results = call.outputs.iter().skip(usize::from(consumed));
    for &b in results.chain(call.scratch.iter()) {
        if written.insert(b, true).is_some() {
            return Err(EmitError::Alias {
                entry: e.name.clone(),
                call: ci,
                a: format!("{b} ({})", p.buffer(b).name),
                b: format!("{b} ({})", p.buffer(b).name),
            });
        }
    }
    // Group the block buffers by block.
    let mut blocks: BTreeMap<&'static str, Vec<(u64, u64, BufferId)>> = BTreeMap::new();
    for &b in written.keys() {
        if let Place::Block(block, s, end) = lay.places[b.index()] {
            blocks.entry(block).or_default().push((s, end, b));
        }
    }
    let mut prelude = String::new();
    let mut bytes_of: BTreeMap<BufferId, String> = BTreeMap::new();
    let mut n = 0;
    for (block, mut list) in blocks {
        if !list.iter().any(|(_, _, b)| written[b]) {
            for (s, end, b) in list {
                bytes_of.insert(b, format!("rt::region(&m.{block}.0, {s}, {end})?"));
            }
            continue;
        }
        list.sort();
        for w in list.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(EmitError::Alias {
                    entry: e.name.clone(),
                    call: ci,
                    a: format!("{} ({})", w[0].2, p.buffer(w[0].2).name),
                    b: format!("{} ({})", w[1].2, p.buffer(w[1].2).name),
                });
            }
        }
        let names: Vec<String> = (0..list.len()).map(|i| format!("r{}", n + i)).collect();
        n += list.len();
        let ranges: Vec<String> = list
            .iter()
            .map(|(s, end, _)| format!("({s}, {end})"))
            .collect();
        let _ = writeln!(
            prelude,
            "        let [{}] = rt::carve(&mut m.{block}.0, [{}])?;",
            names.join(", "),
            ranges.join(", ")
        );
        for ((_, _, b), name) in list.iter().zip(names) {
            bytes_of.insert(*b, name);
        }
    }
    let expr = |b: BufferId, write: bool| -> String {
        let elem = p.buffer(b).elem;
        match lay.places[b.index()] {
            Place::Block(..) => typed(elem, &bytes_of[&b], write),
            Place::Flash => typed(elem, &format!("&t::B{}.0", b.0), false),
            Place::Arg(kind) => arg_expr(kind).to_string(),
        }
    };
    Ok(Views {
        prelude,
        in_place,
        inputs: call
            .inputs
            .iter()
            .enumerate()
            .map(|(k, &b)| {
                if Some(k) == in_place {
                    String::new()
                } else {
                    expr(b, consumed && k == 0)
                }
            })
            .collect(),
        outputs: call
            .outputs
            .iter()
            .enumerate()
            .map(|(j, &b)| {
                if consumed && j == 0 {
                    String::new()
                } else {
                    expr(b, true)
                }
            })
            .collect(),
        scratch: call.scratch.map(|b| expr(b, true)),
    })
}

/// A literal that round-trips, non-finite values by name (`ty` is `f32` or `f64`).
fn float_text(debug: String, ty: &str) -> String {
    match debug.as_str() {
        "NaN" => format!("{ty}::NAN"),
        "inf" => format!("{ty}::INFINITY"),
        "-inf" => format!("{ty}::NEG_INFINITY"),
        _ => debug,
    }
}

fn f64_lit(v: f64) -> String {
    float_text(format!("{v:?}"), "f64")
}

fn f32_lit(v: f32) -> String {
    float_text(format!("{v:?}"), "f32")
}

fn list<T: Copy>(v: &[T], f: impl Fn(T) -> String) -> String {
    format!(
        "&[{}]",
        v.iter().map(|&x| f(x)).collect::<Vec<_>>().join(", ")
    )
}

fn usizes<const N: usize>(v: [usize; N]) -> String {
    format!("{v:?}")
}

/// The descriptor of a call (into `tables`) and the statement running it.
fn kernel_stmt(
    e: &Entry,
    ci: usize,
    call: &Call,
    v: &Views,
    desc: &str,
    tables: &mut Tables,
) -> Result<String, EmitError> {
    match &call.kernel {
        Kernel::ConvBackwardInputInt8 {
            geometry,
            scales,
            zero_points,
            inner,
        } => {
            let geom = geometry_desc(tables, desc, geometry);
            let quant = tables.intern(
                &format!("{desc}_W"),
                "DequantDesc",
                format!(
                    "{{ scales: {}, zero_points: {}, inner: {inner} }}",
                    list(scales, f32_lit),
                    list(zero_points, |z| z.to_string())
                ),
            );
            Ok(format!(
                "rt::conv_backward_input_int8(&t::{geom}, &t::{quant}, {}, {}, {})?;",
                v.inputs[0], v.inputs[1], v.outputs[0]
            ))
        }
        Kernel::ConvBackwardInputInt8InPlace {
            geometry,
            scales,
            zero_points,
            inner,
        } => {
            let geom = geometry_desc(tables, desc, geometry);
            let quant = tables.intern(
                &format!("{desc}_W"),
                "DequantDesc",
                format!(
                    "{{ scales: {}, zero_points: {}, inner: {inner} }}",
                    list(scales, f32_lit),
                    list(zero_points, |z| z.to_string())
                ),
            );
            Ok(format!(
                "rt::conv_backward_input_int8_in_place(&t::{geom}, &t::{quant}, {}, {}, {})?;",
                v.outputs[0],
                v.inputs[0],
                scratch(e, ci, call, v)?
            ))
        }
        Kernel::SplitWeight { kernel, kept } => {
            split_stmt(e, ci, call, (kernel, *kept), v, desc, tables)
        }
        Kernel::ConvInt8 { bias, .. } => {
            let desc = tables.intern(
                desc,
                "ConvDesc",
                conv_desc(&call.kernel).unwrap_or_default(),
            );
            let bias_arg = if *bias {
                format!("Some({})", v.inputs[2])
            } else {
                "None".to_string()
            };
            Ok(format!(
                "rt::conv_int8(&t::{desc}, {}, {}, {bias_arg}, {}, {})?;",
                v.inputs[0],
                v.inputs[1],
                v.outputs[0],
                scratch(e, ci, call, v)?
            ))
        }
        Kernel::BottleneckInt8 {
            expand,
            depthwise,
            project,
        } => {
            let mut names = Vec::new();
            for (suffix, k) in [("_E", expand), ("_D", depthwise), ("_P", project)] {
                let fields = conv_desc(k).ok_or_else(|| EmitError::Entry {
                    entry: e.name.clone(),
                    what: format!("call {ci} (bottleneck_int8): a stage is not conv2d_int8"),
                })?;
                names.push(tables.intern(&format!("{desc}{suffix}"), "ConvDesc", fields));
            }
            let i = &v.inputs;
            Ok(format!(
                "rt::bottleneck_int8([&t::{}, &t::{}, &t::{}], {}, [{}, {}, {}], [{}, {}, {}], {}, {})?;",
                names[0],
                names[1],
                names[2],
                i[0],
                i[1],
                i[3],
                i[5],
                i[2],
                i[4],
                i[6],
                v.outputs[0],
                scratch(e, ci, call, v)?
            ))
        }
        Kernel::BottleneckChainInt8 {
            first,
            second,
            in_place,
        } => {
            let mut names = Vec::new();
            for (block, k) in [("_A", first), ("_B", second)] {
                let Kernel::BottleneckInt8 {
                    expand,
                    depthwise,
                    project,
                } = &**k
                else {
                    return Err(EmitError::Entry {
                        entry: e.name.clone(),
                        what: format!(
                            "call {ci} (bottleneck_chain_int8): a block is not bottleneck_int8"
                        ),
                    });
                };
                for (suffix, k) in [("E", expand), ("D", depthwise), ("P", project)] {
                    let fields = conv_desc(k).ok_or_else(|| EmitError::Entry {
                        entry: e.name.clone(),
                        what: format!(
                            "call {ci} (bottleneck_chain_int8): a stage is not conv2d_int8"
                        ),
                    })?;
                    let name = format!("{desc}{block}{suffix}");
                    names.push(format!("&t::{}", tables.intern(&name, "ConvDesc", fields)));
                }
            }
            let i = &v.inputs;
            let pick = |idx: [usize; 6]| idx.map(|j| i[j].clone()).join(", ");
            if *in_place {
                // The input is consumed; the output is left at its start (`bind` gives no
                // separate output view).
                return Ok(format!(
                    "rt::bottleneck_chain_int8_in_place([{}], {}, [{}], [{}], {})?;",
                    names.join(", "),
                    i[0],
                    pick([1, 3, 5, 7, 9, 11]),
                    pick([2, 4, 6, 8, 10, 12]),
                    scratch(e, ci, call, v)?
                ));
            }
            Ok(format!(
                "rt::bottleneck_chain_int8([{}], {}, [{}], [{}], {}, {})?;",
                names.join(", "),
                i[0],
                pick([1, 3, 5, 7, 9, 11]),
                pick([2, 4, 6, 8, 10, 12]),
                v.outputs[0],
                scratch(e, ci, call, v)?
            ))
        }
        Kernel::Sgd {
            elem,
            momentum,
            weight_decay,
            stochastic_seed,
            accumulate,
            slice,
            ..
        } => {
            let unsupported = |kernel| EmitError::Unsupported {
                entry: e.name.clone(),
                call: ci,
                kernel,
            };
            if slice.is_some()
                && (*momentum != 0.0
                    || *weight_decay != 0.0
                    || *accumulate > 1
                    || (*elem == BufElem::I32 && stochastic_seed.is_some()))
            {
                return Err(unsupported(
                    "sgd of a channel slice with momentum, weight decay, accumulation, or \
                     stochastic rounding of an i32 parameter",
                ));
            }
            let ty = match elem {
                BufElem::I8 | BufElem::I32 | BufElem::F32 => rust_elem(*elem),
                _ => return Err(unsupported("sgd of a non-numeric parameter")),
            };
            let desc = tables.intern(desc, "SgdDesc", sgd_desc(&call.kernel));
            let mut state = v.outputs[1..].iter();
            let mut opt = |present: bool| match (present, state.next()) {
                (true, Some(x)) => format!("Some({x})"),
                _ => "None".to_string(),
            };
            let m = opt(*momentum != 0.0);
            let acc = opt(*accumulate > 1);
            let scratch = v
                .scratch
                .as_ref()
                .map_or("None".to_string(), |s| format!("Some({s})"));
            Ok(format!(
                "rt::sgd::<{ty}>(&t::{desc}, {}, {}, {}, {}, {m}, {acc}, {scratch})?;",
                v.inputs[0], v.inputs[1], v.inputs[2], v.outputs[0]
            ))
        }
        Kernel::ConvWeightSgd { geometry, update } => {
            let (Kernel::Sgd { elem, momentum, .. }, BufElem::I8 | BufElem::F32) =
                (update.as_ref(), update_elem(update))
            else {
                return Err(EmitError::Unsupported {
                    entry: e.name.clone(),
                    call: ci,
                    kernel: "conv2d_backward_weight_sgd of a parameter neither i8 nor f32",
                });
            };
            let geom = geometry_desc(tables, &format!("{desc}_G"), geometry);
            let sgd = tables.intern(desc, "SgdDesc", sgd_desc(update));
            let m = match v.outputs.get(1) {
                Some(m) if *momentum != 0.0 => format!("Some({m})"),
                _ => "None".to_string(),
            };
            Ok(format!(
                "rt::conv_weight_sgd::<{}>(&t::{geom}, &t::{sgd}, {}, {}, {}, {}, {}, {m}, {})?;",
                rust_elem(*elem),
                v.inputs[0],
                v.inputs[1],
                v.inputs[2],
                v.inputs[3],
                v.outputs[0],
                scratch(e, ci, call, v)?
            ))
        }
        Kernel::BottleneckBackward { .. } => bottleneck_backward_stmt(e, ci, call, v, desc, tables),
        Kernel::AddInt8 { params: a, .. } => {
            let q = |q: &mite_kernels::QuantParams| {
                format!(
                    "QuantParams {{ scale: {}, zero_point: {} }}",
                    f32_lit(q.scale),
                    q.zero_point
                )
            };
            let [(ma, sa), (mb, sb)] = a.input_multipliers;
            let (mo, so) = a.output_multiplier;
            let desc = tables.intern(
                desc,
                "AddParams",
                format!(
                    "{{\n    a: {},\n    b: {},\n    out: {},\n    range: ActRange {{ min: {}, max: {} }},\n    \
                     rounding: Rounding::{:?},\n    input_multipliers: [({ma}, {sa}), ({mb}, {sb})],\n    \
                     output_multiplier: ({mo}, {so}),\n}}",
                    q(&a.a),
                    q(&a.b),
                    q(&a.out),
                    a.range.min,
                    a.range.max,
                    a.rounding
                ),
            );
            Ok(match v.in_place {
                None => format!(
                    "rt::add_int8(&t::{desc}, {}, {}, {})?;",
                    v.inputs[0], v.inputs[1], v.outputs[0]
                ),
                Some(0) => format!(
                    "rt::add_int8_into_a(&t::{desc}, {}, {})?;",
                    v.outputs[0], v.inputs[1]
                ),
                Some(_) => format!(
                    "rt::add_int8_into_b(&t::{desc}, {}, {})?;",
                    v.inputs[0], v.outputs[0]
                ),
            })
        }
        Kernel::AddF32 { .. } => Ok(match v.in_place {
            None => format!(
                "rt::add_f32({}, {}, {})?;",
                v.inputs[0], v.inputs[1], v.outputs[0]
            ),
            Some(k) => format!(
                "rt::add_f32_into({}, {})?;",
                v.outputs[0],
                v.inputs[1 - k.min(1)]
            ),
        }),
        Kernel::ApplyMask { .. } => Ok(match v.in_place {
            None => format!(
                "rt::apply_mask({}, {}, {})?;",
                v.inputs[0], v.inputs[1], v.outputs[0]
            ),
            Some(0) => format!(
                "rt::apply_mask_in_place({}, {})?;",
                v.outputs[0], v.inputs[1]
            ),
            Some(_) => {
                return Err(EmitError::Alias {
                    entry: e.name.clone(),
                    call: ci,
                    a: "the mask".into(),
                    b: "the result".into(),
                })
            }
        }),
        Kernel::GlobalAvgPoolInt8 { dims, rounding } => Ok(format!(
            "rt::global_avg_pool_int8({}, Rounding::{rounding:?}, {}, {})?;",
            usizes(*dims),
            v.inputs[0],
            v.outputs[0]
        )),
        Kernel::MeanInt8 { dims, params: mp } => {
            let desc = tables.intern(
                desc,
                "MeanParams",
                format!(
                    "{{\n    input: QuantParams {{ scale: {}, zero_point: {} }},\n    \
                     output: QuantParams {{ scale: {}, zero_point: {} }},\n    rounding: Rounding::{:?},\n    \
                     real: {},\n    multiplier: ({}, {}),\n}}",
                    f32_lit(mp.input.scale),
                    mp.input.zero_point,
                    f32_lit(mp.output.scale),
                    mp.output.zero_point,
                    mp.rounding,
                    f64_lit(mp.real),
                    mp.multiplier.0,
                    mp.multiplier.1
                ),
            );
            Ok(format!(
                "rt::mean_int8({}, &t::{desc}, {}, {})?;",
                usizes(*dims),
                v.inputs[0],
                v.outputs[0]
            ))
        }
        Kernel::Dequantize {
            scales,
            zero_points,
            inner,
            ..
        } => {
            let desc = tables.intern(
                desc,
                "DequantDesc",
                format!(
                    "{{ scales: {}, zero_points: {}, inner: {inner} }}",
                    list(scales, f32_lit),
                    list(zero_points, |z| z.to_string())
                ),
            );
            Ok(format!(
                "rt::dequantize(&t::{desc}, {}, {})?;",
                v.inputs[0], v.outputs[0]
            ))
        }
        Kernel::MaskInt8 { min, max, .. } => Ok(format!(
            "rt::mask_int8({}, {}, {}, {})?;",
            f32_lit(*min),
            f32_lit(*max),
            v.inputs[0],
            v.outputs[0]
        )),
        Kernel::MaskF32 { min, max, .. } => Ok(format!(
            "rt::mask_f32({}, {}, {}, {})?;",
            f32_lit(*min),
            f32_lit(*max),
            v.inputs[0],
            v.outputs[0]
        )),
        Kernel::Slice {
            outer,
            channels,
            inner,
            start,
            size,
            ..
        } => Ok(format!(
            "rt::slice({}, {}, {})?;",
            usizes([*outer, *channels, *inner, *start, *size]),
            v.inputs[0],
            v.outputs[0]
        )),
        Kernel::ConvBackwardInput { geometry } => {
            let desc = geometry_desc(tables, desc, geometry);
            Ok(format!(
                "rt::conv_backward_input(&t::{desc}, {}, {}, {})?;",
                v.inputs[0], v.inputs[1], v.outputs[0]
            ))
        }
        Kernel::ConvBackwardWeight { geometry } => {
            let desc = geometry_desc(tables, desc, geometry);
            Ok(format!(
                "rt::conv_backward_weight(&t::{desc}, {}, {}, {})?;",
                v.inputs[0], v.inputs[1], v.outputs[0]
            ))
        }
        Kernel::ConvBackwardBias { dims } => Ok(format!(
            "rt::conv_backward_bias({}, {}, {})?;",
            usizes(*dims),
            v.inputs[0],
            v.outputs[0]
        )),
        Kernel::GlobalAvgPoolBackward { dims } => Ok(format!(
            "rt::global_avg_pool_backward({}, {}, {})?;",
            usizes(*dims),
            v.inputs[0],
            v.outputs[0]
        )),
        Kernel::SoftmaxCrossEntropy { batch, classes } => Ok(format!(
            "rt::softmax_cross_entropy({batch}, {classes}, {}, {}, {}, {})?;",
            v.inputs[0],
            v.inputs[1],
            v.outputs[0],
            scratch(e, ci, call, v)?
        )),
        Kernel::SoftmaxCrossEntropyBackward { batch, classes } => Ok(format!(
            "rt::softmax_cross_entropy_backward({batch}, {classes}, {}, {}, {}, {})?;",
            v.inputs[0], v.inputs[1], v.inputs[2], v.outputs[0]
        )),
    }
}

/// The `static` geometry of a convolution (shared by identical ones).
/// The element type of an update's parameter (`Bits` for a kernel that is not an update).
fn update_elem(k: &Kernel) -> BufElem {
    match k {
        Kernel::Sgd { elem, .. } => *elem,
        _ => BufElem::Bits,
    }
}

/// The body of the `SgdDesc` of a [`Kernel::Sgd`] (empty braces for another kernel).
fn sgd_desc(k: &Kernel) -> String {
    let Kernel::Sgd {
        lr_scale,
        momentum,
        weight_decay,
        qas,
        stochastic_seed,
        scales,
        zero_points,
        inner,
        accumulate,
        slice,
        ..
    } = k
    else {
        return "{}".to_string();
    };
    let slice_text = match slice {
        Some(s) => format!(
            "Some(SliceDesc {{ channels: {}, inner: {}, start: {}, count: {} }})",
            s.channels, s.inner, s.start, s.count
        ),
        None => "None".to_string(),
    };
    format!(
        "{{\n    lr_scale: {},\n    momentum: {},\n    weight_decay: {},\n    qas: {qas},\n    \
         seed: {:?},\n    scales: {},\n    zero_points: {},\n    inner: {inner},\n    \
         accumulate: {accumulate},\n    slice: {slice_text},\n}}",
        f32_lit(*lr_scale),
        f32_lit(*momentum),
        f32_lit(*weight_decay),
        stochastic_seed,
        list(scales, f32_lit),
        list(zero_points, |z| z.to_string()),
    )
}

fn geometry_desc(tables: &mut Tables, desc: &str, g: &mite_kernels::Conv2dGeometry) -> String {
    let w = g.window();
    let [h, wd] = g.in_hw();
    tables.intern(
        desc,
        "GeomDesc",
        format!(
            "{{\n    input: {},\n    c_out: {},\n    groups: {},\n    \
             window: Window2d {{ kernel: {}, strides: {}, pads: {}, dilations: {} }},\n}}",
            usizes([g.n(), g.c_in(), h, wd]),
            g.c_out(),
            g.groups(),
            usizes(w.kernel),
            usizes(w.strides),
            usizes(w.pads),
            usizes(w.dilations),
        ),
    )
}

/// The statement of a [`Kernel::SplitWeight`] call (operands: the inner kernel's, the weight
/// replaced by its trained slice and frozen remainder).
fn split_stmt(
    e: &Entry,
    ci: usize,
    call: &Call,
    (kernel, kept): (&Kernel, usize),
    v: &Views,
    desc: &str,
    tables: &mut Tables,
) -> Result<String, EmitError> {
    let i = &v.inputs;
    match kernel {
        Kernel::ConvInt8 { bias, .. } => {
            let name = tables.intern(desc, "ConvDesc", conv_desc(kernel).unwrap_or_default());
            let bias_arg = if *bias {
                format!("Some({})", i[3])
            } else {
                "None".to_string()
            };
            Ok(format!(
                "rt::conv_int8_split(&t::{name}, {kept}, {}, {}, {}, {bias_arg}, {}, {})?;",
                i[0],
                i[1],
                i[2],
                v.outputs[0],
                scratch(e, ci, call, v)?
            ))
        }
        Kernel::ConvBackwardInputInt8 {
            geometry,
            scales,
            zero_points,
            inner,
        } => {
            let geom = geometry_desc(tables, desc, geometry);
            let quant = tables.intern(
                &format!("{desc}_W"),
                "DequantDesc",
                format!(
                    "{{ scales: {}, zero_points: {}, inner: {inner} }}",
                    list(scales, f32_lit),
                    list(zero_points, |z| z.to_string())
                ),
            );
            Ok(format!(
                "rt::conv_backward_input_int8_split(&t::{geom}, &t::{quant}, {kept}, {}, {}, {}, {})?;",
                i[0], i[1], i[2], v.outputs[0]
            ))
        }
        other => Err(EmitError::Entry {
            entry: e.name.clone(),
            what: format!(
                "call {ci}: a split weight read by {} (only int8 convolutions and their input \
                 gradients are split)",
                other.name()
            ),
        }),
    }
}

/// The body of the `ConvDesc` of a [`Kernel::ConvInt8`] (`None` for another kernel).
fn conv_desc(k: &Kernel) -> Option<String> {
    let Kernel::ConvInt8 {
        geometry: g,
        x_zero_point,
        w_zero_points,
        scales,
        multipliers,
        shifts,
        out_zero_point,
        range,
        rounding,
        ..
    } = k
    else {
        return None;
    };
    let w = g.window();
    let [h, wd] = g.in_hw();
    Some(format!(
        "{{\n    input: {},\n    c_out: {},\n    groups: {},\n    \
         window: Window2d {{ kernel: {}, strides: {}, pads: {}, dilations: {} }},\n    x_zp: {x_zero_point},\n    \
         w_zp: {},\n    scales: {},\n    multipliers: {},\n    shifts: {},\n    y_zp: {out_zero_point},\n    \
         range: ActRange {{ min: {}, max: {} }},\n    rounding: Rounding::{:?},\n}}",
        usizes([g.n(), g.c_in(), h, wd]),
        g.c_out(),
        g.groups(),
        usizes(w.kernel),
        usizes(w.strides),
        usizes(w.pads),
        usizes(w.dilations),
        list(w_zero_points, |z| z.to_string()),
        list(scales, f64_lit),
        list(multipliers, |m| m.to_string()),
        list(shifts, |s| s.to_string()),
        range.min,
        range.max,
        rounding
    ))
}

fn scratch(e: &Entry, ci: usize, call: &Call, v: &Views) -> Result<String, EmitError> {
    v.scratch.clone().ok_or_else(|| EmitError::Entry {
        entry: e.name.clone(),
        what: format!("call {ci} ({}) has no scratch buffer", call.kernel.name()),
    })
}

/// The `DequantDesc` of a [`Kernel::ConvBackwardInputInt8`] or [`Kernel::Dequantize`]'s
/// quantization (`None` for another kernel).
fn dequant_desc(tables: &mut Tables, desc: &str, k: &Kernel) -> Option<String> {
    let (Kernel::ConvBackwardInputInt8 {
        scales,
        zero_points,
        inner,
        ..
    }
    | Kernel::Dequantize {
        scales,
        zero_points,
        inner,
        ..
    }) = k
    else {
        return None;
    };
    Some(tables.intern(
        desc,
        "DequantDesc",
        format!(
            "{{ scales: {}, zero_points: {}, inner: {inner} }}",
            list(scales, f32_lit),
            list(zero_points, |z| z.to_string())
        ),
    ))
}

/// A [`Kernel::BottleneckBackward`]: its descriptor and the `rt::bottleneck_backward` call.
fn bottleneck_backward_stmt(
    e: &Entry,
    ci: usize,
    call: &Call,
    v: &Views,
    desc: &str,
    tables: &mut Tables,
) -> Result<String, EmitError> {
    let unsupported = || EmitError::Unsupported {
        entry: e.name.clone(),
        call: ci,
        kernel: "bottleneck_backward whose parts do not chain",
    };
    let Kernel::BottleneckBackward {
        project,
        depthwise,
        expand,
        dx,
        depthwise_bias,
        expand_bias,
        update,
        kept,
    } = &call.kernel
    else {
        return Err(unsupported());
    };
    let [gp, gd, _] =
        mite_ir::program::bottleneck_backward_parts(&call.kernel).ok_or_else(unsupported)?;
    let some = |s: Option<String>| s.map_or("None".to_string(), |s| format!("Some(&t::{s})"));
    let geoms = [
        geometry_desc(tables, &format!("{desc}_PG"), &gp),
        geometry_desc(tables, &format!("{desc}_DG"), &gd),
        geometry_desc(tables, &format!("{desc}_EG"), expand),
    ];
    let pw = dequant_desc(tables, &format!("{desc}_PW"), project).ok_or_else(unsupported)?;
    let dw = dequant_desc(tables, &format!("{desc}_DW"), depthwise).ok_or_else(unsupported)?;
    let ew = dx
        .as_deref()
        .and_then(|k| dequant_desc(tables, &format!("{desc}_EW"), k));
    let (xq, sgd, momentum) = match update.as_ref().map(|(d, s)| (d.as_ref(), s.as_ref())) {
        Some((deq, Kernel::ConvWeightSgd { update: u, .. })) => {
            let Kernel::Sgd { momentum, .. } = u.as_ref() else {
                return Err(unsupported());
            };
            (
                dequant_desc(tables, &format!("{desc}_X"), deq),
                Some(tables.intern(&format!("{desc}_U"), "SgdDesc", sgd_desc(u))),
                *momentum != 0.0,
            )
        }
        Some(_) => return Err(unsupported()),
        None => (None, None, false),
    };
    let d = tables.intern(
        desc,
        "crate::runtime::BottleneckBackwardDesc",
        format!(
            "{{\n    project: &t::{},\n    project_w: &t::{pw},\n    depthwise: &t::{},\n    \
             depthwise_w: &t::{dw},\n    expand: &t::{},\n    expand_w: {},\n    x: {},\n    sgd: {},\n    \
             kept: {:?},\n}}",
            geoms[0],
            geoms[1],
            geoms[2],
            some(ew),
            some(xq),
            some(sgd.clone()),
            kept,
        )
        .replace("&t::", "&"),
    );
    let mut outs = v.outputs.iter();
    let mut next = || outs.next().cloned().ok_or_else(unsupported);
    let (frozen, trained) = if sgd.is_some() {
        let w = next()?;
        let m = if momentum {
            format!("Some({})", next()?)
        } else {
            "None".to_string()
        };
        // A split weight's frozen remainder follows `step`.
        let frozen = match kept {
            Some(_) => format!("Some({})", v.inputs.get(8).ok_or_else(unsupported)?),
            None => "None".to_string(),
        };
        (
            frozen,
            format!(
                "Some(rt::ExpandTrained {{ x: {}, lr: {}, step: {}, w: {w}, m: {m} }})",
                v.inputs[5], v.inputs[6], v.inputs[7]
            ),
        )
    } else if dx.is_some() {
        (format!("Some({})", v.inputs[5]), "None".to_string())
    } else {
        ("None".to_string(), "None".to_string())
    };
    let mut grad = |present: bool| -> Result<String, EmitError> {
        Ok(if present {
            format!("Some({})", next()?)
        } else {
            "None".to_string()
        })
    };
    let grads = [
        grad(dx.is_some())?,
        grad(*depthwise_bias)?,
        grad(*expand_bias)?,
    ];
    Ok(format!(
        "rt::bottleneck_backward(&t::{d}, {}, {}, [{}, {}], {}, {frozen}, {trained}, [{}], {})?;",
        v.inputs[0],
        v.inputs[1],
        v.inputs[2],
        v.inputs[4],
        v.inputs[3],
        grads.join(", "),
        scratch(e, ci, call, v)?
    ))
}
