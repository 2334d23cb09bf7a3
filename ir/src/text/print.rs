//! The printer of the textual IR.
//!
//! Output is deterministic: globals in declaration order, ops in program order, op results
//! numbered `%0, %1, ...` in that order, arguments by their name hint when it is a valid,
//! unique identifier (`%argN` otherwise), attributes in op-table order. Data of more than
//! [`PrintOptions::elide_above`] elements prints as `elided<0x…>` (its FNV-1a digest).

use super::lexer::is_bare_ident;
use crate::attr::{write_f32, write_quoted, write_symbol};
use crate::data::TensorData;
use crate::module::{Function, GlobalData, GlobalKind, Module, OpData, Trainable, Value};
use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write};

/// How to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrintOptions {
    /// Print every op in the generic form `"name"(operands) {attrs} : (types) -> types`.
    pub generic: bool,
    /// Elide data with more elements than this (`None`: print all data in full).
    pub elide_above: Option<usize>,
    /// Print `loc("name")` after named ops.
    pub locations: bool,
}

impl Default for PrintOptions {
    fn default() -> Self {
        PrintOptions {
            generic: false,
            elide_above: Some(16),
            locations: true,
        }
    }
}

impl PrintOptions {
    /// Options that print all data in full.
    pub fn full() -> Self {
        PrintOptions {
            elide_above: None,
            ..PrintOptions::default()
        }
    }
}

/// Prints a module.
pub fn print_module(module: &Module, opts: &PrintOptions) -> String {
    let mut out = String::new();
    write_module(&mut out, module, opts).expect("writing to a String cannot fail");
    out
}

/// Prints one function (with the module's globals resolved by name only).
pub fn print_function(func: &Function, opts: &PrintOptions) -> String {
    let mut out = String::new();
    write_function(&mut out, func, opts, "").expect("writing to a String cannot fail");
    out
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        write_module(&mut s, self, &PrintOptions::default())?;
        f.write_str(&s)
    }
}

/// Whether `name` is an identifier the parser reads as a value name (`%name`).
pub fn is_value_ident(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn write_module(out: &mut String, m: &Module, opts: &PrintOptions) -> fmt::Result {
    out.push_str("module ");
    write_symbol(out, &m.name)?;
    if !m.attrs.is_empty() {
        out.push_str(" attributes ");
        write_attr_dict(out, m.attrs.iter().map(|(k, v)| (k.as_str(), v)))?;
    }
    out.push_str(" {\n");
    for (name, g) in &m.globals {
        out.push_str("  ");
        out.push_str(match g.kind {
            GlobalKind::Param { .. } => "param ",
            GlobalKind::Const => "const ",
            GlobalKind::State => "state ",
        });
        write_symbol(out, name)?;
        write!(out, " : {}", g.ty)?;
        if let GlobalKind::Param { trainable } = g.kind {
            match trainable {
                Trainable::None => out.push_str(" frozen"),
                Trainable::All => out.push_str(" trainable"),
                Trainable::Channels { axis, start, len } => {
                    write!(out, " trainable<axis={axis}, {start}:{}>", start + len)?
                }
            }
        }
        match &g.data {
            GlobalData::Absent => {}
            GlobalData::Elided { digest } => write!(out, " = elided<{digest:#018x}>")?,
            GlobalData::Inline(d) => match opts.elide_above {
                Some(limit) if d.len() > limit => write!(out, " = elided<{:#018x}>", d.digest())?,
                _ => {
                    out.push_str(" = ");
                    write_dense(out, d)?;
                }
            },
        }
        out.push('\n');
    }
    for (i, func) in m.functions.iter().enumerate() {
        if i > 0 || !m.globals.is_empty() {
            out.push('\n');
        }
        write_function(out, func, opts, "  ")?;
    }
    out.push_str("}\n");
    Ok(())
}

/// Writes `dense<[...]>`.
pub fn write_dense(out: &mut String, d: &TensorData) -> fmt::Result {
    out.push_str("dense<[");
    fn list<T>(
        out: &mut String,
        v: &[T],
        mut each: impl FnMut(&mut String, &T) -> fmt::Result,
    ) -> fmt::Result {
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            each(out, x)?;
        }
        Ok(())
    }
    match d {
        TensorData::F32(v) => list(out, v, |o, x| write_f32(o, *x))?,
        TensorData::I8(v) => list(out, v, |o, x| write!(o, "{x}"))?,
        TensorData::I32(v) => list(out, v, |o, x| write!(o, "{x}"))?,
        TensorData::I64(v) => list(out, v, |o, x| write!(o, "{x}"))?,
        TensorData::I1(v) => list(out, v, |o, x| write!(o, "{x}"))?,
    }
    out.push_str("]>");
    Ok(())
}

fn write_attr_dict<'a>(
    out: &mut String,
    attrs: impl Iterator<Item = (&'a str, &'a crate::attr::Attr)>,
) -> fmt::Result {
    out.push('{');
    for (i, (k, v)) in attrs.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        // Keys that do not lex as one identifier (custom ops, module metadata) print quoted.
        if is_bare_ident(k) {
            out.push_str(k);
        } else {
            write_quoted(out, k)?;
        }
        write!(out, " = {v}")?;
    }
    out.push('}');
    Ok(())
}

/// Assigns the printed names of a function's values.
struct Names {
    names: HashMap<Value, String>,
}

impl Names {
    fn new(func: &Function) -> Names {
        let mut names = HashMap::new();
        let mut used = HashSet::new();
        for (i, &a) in func.args().iter().enumerate() {
            let hint = func
                .value(a)
                .name
                .as_deref()
                .filter(|n| is_value_ident(n) && !used.contains(*n));
            let name = match hint {
                Some(n) => n.to_string(),
                None => {
                    // `argN` may be taken by an earlier argument's hint.
                    let mut name = format!("arg{i}");
                    let mut k = 0usize;
                    while used.contains(&name) {
                        name = format!("arg{i}_{k}");
                        k += 1;
                    }
                    name
                }
            };
            used.insert(name.clone());
            names.insert(a, name);
        }
        let mut next = 0usize;
        for &id in func.layout() {
            for &r in &func.op(id).results {
                names.insert(r, next.to_string());
                next += 1;
            }
        }
        Names { names }
    }

    fn get(&self, v: Value) -> String {
        match self.names.get(&v) {
            Some(n) => format!("%{n}"),
            None => format!("%<undefined {}>", v.into_raw().into_u32()),
        }
    }
}

fn write_function(
    out: &mut String,
    func: &Function,
    opts: &PrintOptions,
    indent: &str,
) -> fmt::Result {
    let names = Names::new(func);
    write!(out, "{indent}func ")?;
    write_symbol(out, &func.name)?;
    out.push('(');
    for (i, &a) in func.args().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write!(out, "{}: {}", names.get(a), func.ty(a))?;
    }
    out.push_str(") -> (");
    for (i, &v) in func.outputs().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if func.contains_value(v) {
            write!(out, "{}", func.ty(v))?;
        } else {
            out.push_str("<undefined>");
        }
    }
    out.push_str(") {\n");
    for &id in func.layout() {
        write!(out, "{indent}  ")?;
        write_op(out, func, func.op(id), &names, opts)?;
        out.push('\n');
    }
    write!(out, "{indent}  return")?;
    for (i, &v) in func.outputs().iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        out.push_str(&names.get(v));
    }
    writeln!(out, "\n{indent}}}")
}

fn type_of(func: &Function, v: Value) -> String {
    if func.contains_value(v) {
        func.ty(v).to_string()
    } else {
        "<undefined>".to_string()
    }
}

fn write_op(
    out: &mut String,
    func: &Function,
    data: &OpData,
    names: &Names,
    opts: &PrintOptions,
) -> fmt::Result {
    for (i, &r) in data.results.iter().enumerate() {
        out.push_str(if i == 0 { "" } else { ", " });
        out.push_str(&names.get(r));
    }
    if !data.results.is_empty() {
        out.push_str(" = ");
    }
    let attrs = data.op.attrs();
    let result_types: Vec<String> = data.results.iter().map(|&r| type_of(func, r)).collect();
    // A custom op name that does not lex as one identifier prints in the generic form (quoted).
    if opts.generic || !is_bare_ident(data.op.name()) {
        write_quoted(out, data.op.name())?;
        out.push('(');
        for (i, &v) in data.operands.iter().enumerate() {
            out.push_str(if i == 0 { "" } else { ", " });
            out.push_str(&names.get(v));
        }
        out.push(')');
        if !attrs.is_empty() {
            out.push(' ');
            write_attr_dict(out, attrs.iter().map(|(k, v)| (k.as_str(), v)))?;
        }
        let operand_types: Vec<String> = data.operands.iter().map(|&v| type_of(func, v)).collect();
        write!(out, " : ({}) -> ", operand_types.join(", "))?;
        if result_types.len() == 1 {
            out.push_str(&result_types[0]);
        } else {
            write!(out, "({})", result_types.join(", "))?;
        }
    } else {
        out.push_str(data.op.name());
        let mut attrs = attrs;
        if let Some(sym) = data.op.global() {
            out.push(' ');
            write_symbol(out, sym)?;
            attrs.clear();
        }
        for (i, &v) in data.operands.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            out.push_str(&names.get(v));
        }
        if !attrs.is_empty() {
            out.push(' ');
            write_attr_dict(out, attrs.iter().map(|(k, v)| (k.as_str(), v)))?;
        }
        if !result_types.is_empty() {
            write!(out, " : {}", result_types.join(", "))?;
        }
    }
    if opts.locations {
        if let Some(name) = &data.loc.name {
            out.push_str(" loc(");
            write_quoted(out, name)?;
            out.push(')');
        }
    }
    Ok(())
}
