//! Attribute values: the generic form in which every op's attributes print and parse.

use std::fmt;

/// One attribute value.
///
/// Equality and hashing compare floats by their bits (so `0.0 != -0.0` and a NaN equals itself),
/// which makes attributes usable as map keys.
#[derive(Clone, Debug)]
pub enum Attr {
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A single-precision float (printed so that it parses back to the same bits).
    F32(f32),
    /// A list of integers, `[1, 2]`.
    Ints(Vec<i64>),
    /// A quoted string.
    Str(String),
    /// A reference to a global, `@name`.
    Sym(String),
}

impl PartialEq for Attr {
    fn eq(&self, other: &Attr) -> bool {
        match (self, other) {
            (Attr::Bool(a), Attr::Bool(b)) => a == b,
            (Attr::Int(a), Attr::Int(b)) => a == b,
            (Attr::F32(a), Attr::F32(b)) => a.to_bits() == b.to_bits(),
            (Attr::Ints(a), Attr::Ints(b)) => a == b,
            (Attr::Str(a), Attr::Str(b)) | (Attr::Sym(a), Attr::Sym(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Attr {}

impl std::hash::Hash for Attr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Attr::Bool(b) => b.hash(state),
            Attr::Int(i) => i.hash(state),
            Attr::F32(x) => x.to_bits().hash(state),
            Attr::Ints(v) => v.hash(state),
            Attr::Str(s) | Attr::Sym(s) => s.hash(state),
        }
    }
}

impl Attr {
    /// A short name of the attribute's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Attr::Bool(_) => "bool",
            Attr::Int(_) => "integer",
            Attr::F32(_) => "float",
            Attr::Ints(_) => "integer list",
            Attr::Str(_) => "string",
            Attr::Sym(_) => "symbol",
        }
    }
}

/// Writes `s` as a quoted string with `"` and `\` escaped.
pub fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Whether `name` can be printed as a bare symbol (`@name`) rather than a quoted one (`@"name"`).
pub fn is_bare_symbol(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$' | '-'))
}

/// Writes a symbol reference, quoting it when needed.
pub fn write_symbol(f: &mut impl fmt::Write, name: &str) -> fmt::Result {
    f.write_char('@')?;
    if is_bare_symbol(name) {
        f.write_str(name)
    } else {
        write_quoted(f, name)
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Bool(b) => write!(f, "{b}"),
            Attr::Int(i) => write!(f, "{i}"),
            Attr::F32(x) => write_f32(f, *x),
            Attr::Ints(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
            Attr::Str(s) => write_quoted(f, s),
            Attr::Sym(s) => write_symbol(f, s),
        }
    }
}

/// Writes an `f32` so that it always reads as a float (`1.0`, not `1`) and parses back exactly.
pub fn write_f32(f: &mut impl fmt::Write, x: f32) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        write!(f, "{x:?}")
    }
}

/// Conversion between a typed op field and its generic [`Attr`].
pub trait AttrValue: Sized {
    /// The generic form.
    fn to_attr(&self) -> Attr;
    /// The generic form, or `None` for an absent optional attribute (which is not printed).
    fn to_attr_opt(&self) -> Option<Attr> {
        Some(self.to_attr())
    }
    /// The typed form, or a description of what was expected.
    fn from_attr(attr: &Attr) -> Result<Self, &'static str>;
}

impl AttrValue for bool {
    fn to_attr(&self) -> Attr {
        Attr::Bool(*self)
    }
    fn from_attr(attr: &Attr) -> Result<Self, &'static str> {
        match attr {
            Attr::Bool(b) => Ok(*b),
            _ => Err("a bool"),
        }
    }
}

impl AttrValue for i64 {
    fn to_attr(&self) -> Attr {
        Attr::Int(*self)
    }
    fn from_attr(attr: &Attr) -> Result<Self, &'static str> {
        match attr {
            Attr::Int(i) => Ok(*i),
            _ => Err("an integer"),
        }
    }
}

impl AttrValue for f32 {
    fn to_attr(&self) -> Attr {
        Attr::F32(*self)
    }
    fn from_attr(attr: &Attr) -> Result<Self, &'static str> {
        match attr {
            Attr::F32(x) => Ok(*x),
            _ => Err("a float"),
        }
    }
}

impl AttrValue for Vec<i64> {
    fn to_attr(&self) -> Attr {
        Attr::Ints(self.clone())
    }
    fn from_attr(attr: &Attr) -> Result<Self, &'static str> {
        match attr {
            Attr::Ints(v) => Ok(v.clone()),
            _ => Err("an integer list"),
        }
    }
}

/// A reference to a module global (printed `@name`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(pub String);

impl AttrValue for Symbol {
    fn to_attr(&self) -> Attr {
        Attr::Sym(self.0.clone())
    }
    fn from_attr(attr: &Attr) -> Result<Self, &'static str> {
        match attr {
            Attr::Sym(s) => Ok(Symbol(s.clone())),
            _ => Err("a symbol (@name)"),
        }
    }
}

/// An optional symbol attribute (e.g. the optimizer state an update uses): absent attributes
/// are not printed and parse back as `None`.
impl AttrValue for Option<Symbol> {
    /// The symbol; `None` gives the empty symbol (absent attributes are skipped through
    /// [`AttrValue::to_attr_opt`] and never printed).
    fn to_attr(&self) -> Attr {
        Attr::Sym(self.as_ref().map_or_else(String::new, |s| s.0.clone()))
    }
    fn to_attr_opt(&self) -> Option<Attr> {
        self.as_ref().map(Symbol::to_attr)
    }
    fn from_attr(attr: &Attr) -> Result<Self, &'static str> {
        Symbol::from_attr(attr).map(Some)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_symbol(f, &self.0)
    }
}
