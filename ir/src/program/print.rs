//! The text form of a [`Program`]: stable, line-oriented, for reading and snapshot tests.
//!
//! ```text
//! program @mbv2 {
//!   arena 163840
//!   b0 = input i8[1x3x128x128] @0 "input" entry=1
//!   b1 = arg label i32[1] "label" entry=1
//!   b3 = arena i8[1x16x64x64] @49152 "first_conv"
//!   b4 = flash i8[16x3x3x3] "first_conv.weight"
//!   entry @train_step(b0, b1, b2, b3) -> (b40) {
//!     conv2d_int8 (b0, b4, b5) -> (b3) scratch b6 {strides = [2, 2], ...} "first_conv"
//!   }
//! }
//! ```
//!
//! Flash and parameter contents are summarised by their length and a checksum (FNV-1a of the
//! little-endian bytes), so snapshots stay small and still change when the data does.

use std::fmt::Write;

use super::kernel::KernelAttr;
use super::{BufferDecl, Call, Program, Storage};
use crate::TensorData;

/// Prints `program` in its text form.
pub fn print_program(program: &Program) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "program @{} {{", program.name);
    let _ = writeln!(out, "  arena {}", program.arena_bytes);
    for (i, b) in program.buffers.iter().enumerate() {
        let _ = writeln!(out, "  b{i} = {}", buffer_line(b));
    }
    for entry in &program.entries {
        let list = |ids: &[super::BufferId]| {
            ids.iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "  entry @{}({}) -> ({}) {{",
            entry.name,
            list(&entry.args),
            list(&entry.results)
        );
        for call in &entry.calls {
            let _ = writeln!(out, "    {}", call_line(call));
        }
        let _ = writeln!(out, "  }}");
    }
    out.push_str("}\n");
    out
}

fn shape_text(b: &BufferDecl) -> String {
    let dims = if b.shape.is_empty() {
        String::new()
    } else {
        b.shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x")
    };
    format!("{}[{dims}]", b.elem.name())
}

fn buffer_line(b: &BufferDecl) -> String {
    let ty = shape_text(b);
    let name = format!("{:?}", b.name);
    match &b.storage {
        Storage::Arena { offset } => format!("arena {ty} @{offset} {name}"),
        Storage::Flash { global, data } => {
            let from = global
                .as_ref()
                .map(|g| format!(" global=@{g}"))
                .unwrap_or_default();
            format!("flash {ty} {name}{from} data={}", data_summary(data))
        }
        Storage::Param { global, init } => {
            format!(
                "param {ty} {name} global=@{global} init={}",
                data_summary(init)
            )
        }
        Storage::State { global } => format!("state {ty} {name} global=@{global}"),
        Storage::Input { entry, offset } => format!("input {ty} @{offset} {name} entry={entry}"),
        Storage::Arg { entry, role } => {
            format!("arg {} {ty} {name} entry={entry}", role.name())
        }
    }
}

fn call_line(call: &Call) -> String {
    let list = |ids: &[super::BufferId]| {
        ids.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut line = format!(
        "{} ({}) -> ({})",
        call.kernel.name(),
        list(&call.inputs),
        list(&call.outputs)
    );
    if let Some(s) = call.scratch {
        let _ = write!(line, " scratch {s}");
    }
    let attrs = call.kernel.attrs();
    if !attrs.is_empty() {
        let parts: Vec<String> = attrs
            .iter()
            .map(|(k, v)| format!("{k} = {}", attr_text(v)))
            .collect();
        let _ = write!(line, " {{{}}}", parts.join(", "));
    }
    if let Some(loc) = &call.loc {
        let _ = write!(line, " {loc:?}");
    }
    line
}

/// Lists longer than this are summarised (length and checksum) in the text form.
const MAX_LISTED: usize = 16;

fn list_text<T: std::fmt::Debug>(v: &[T], bytes: impl Fn(&T) -> Vec<u8>) -> String {
    if v.len() <= MAX_LISTED {
        format!("{v:?}")
    } else {
        let mut h = Fnv::default();
        v.iter().for_each(|x| h.write(&bytes(x)));
        format!("<{} x {:016x}>", v.len(), h.0)
    }
}

fn attr_text(a: &KernelAttr) -> String {
    match a {
        KernelAttr::Int(v) => v.to_string(),
        KernelAttr::F32(v) => format!("{v:?}"),
        KernelAttr::F64(v) => format!("{v:?}"),
        KernelAttr::Bool(v) => v.to_string(),
        KernelAttr::Word(w) => (*w).to_string(),
        KernelAttr::Ints(v) => list_text(v, |x| x.to_le_bytes().to_vec()),
        KernelAttr::F32s(v) => list_text(v, |x| x.to_le_bytes().to_vec()),
        KernelAttr::F64s(v) => list_text(v, |x| x.to_le_bytes().to_vec()),
    }
}

/// FNV-1a, 64 bit.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// `<len x checksum>` of a tensor's little-endian bytes.
fn data_summary(d: &TensorData) -> String {
    let mut h = Fnv::default();
    match d {
        TensorData::F32(v) => v.iter().for_each(|x| h.write(&x.to_le_bytes())),
        TensorData::I8(v) => v.iter().for_each(|x| h.write(&x.to_le_bytes())),
        TensorData::I32(v) => v.iter().for_each(|x| h.write(&x.to_le_bytes())),
        TensorData::I64(v) => v.iter().for_each(|x| h.write(&x.to_le_bytes())),
        TensorData::I1(v) => v.iter().for_each(|&x| h.write(&[u8::from(x)])),
    }
    format!("<{} x {:016x}>", d.len(), h.0)
}
