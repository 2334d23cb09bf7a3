//! The parser of the textual IR: reads everything the printer prints, in the pretty and the
//! generic form.
//!
//! The parser checks syntax, names and the shape of data, not types: built-in ops get the result
//! types stated in the text and the verifier checks them. The exceptions are the operand types
//! stated in the generic form and the result types stated in a function's signature, which must
//! equal the actual types. Every error carries the 1-based line and column where it was found.
//!
//! Each parsed op gets `Loc::line_col` = the position of its name; errors from
//! [`Op::from_parts`] (unknown op, bad attribute) are reported there too.

use super::lexer::{Lexer, Token, TokenKind};
use crate::attr::Attr;
use crate::data::TensorData;
use crate::module::{Function, Global, GlobalData, GlobalKind, Loc, Module, Trainable, Value};
use crate::ops::Op;
use crate::types::{ElemType, Quant, Shape, TensorType};
use std::collections::{HashMap, HashSet};
use thiserror::Error;

/// A syntax or naming error in IR text, at a 1-based line and column.
///
/// Displays as `line:column: message`, or `file:line:column: message` when the text was parsed
/// with [`parse_module_named`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{}{line}:{column}: {message}", .file.as_ref().map(|f| format!("{f}:")).unwrap_or_default())]
pub struct ParseError {
    /// 1-based line of the error.
    pub line: u32,
    /// 1-based column of the error, in characters.
    pub column: u32,
    /// What was expected and what was found.
    pub message: String,
    /// The name of the file parsed, if given.
    pub file: Option<String>,
}

impl ParseError {
    /// An error at `line:column` without a file name.
    pub fn new(line: u32, column: u32, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            column,
            message: message.into(),
            file: None,
        }
    }
}

/// Parses a module from its text form (pretty or generic, as printed by
/// [`super::print_module`]).
pub fn parse_module(src: &str) -> Result<Module, ParseError> {
    Parser::new(src).module()
}

/// Parses a module like [`parse_module`]; errors carry `file_name` and display as
/// `file_name:line:column: message`.
pub fn parse_module_named(src: &str, file_name: &str) -> Result<Module, ParseError> {
    parse_module(src).map_err(|e| ParseError {
        file: Some(file_name.to_string()),
        ..e
    })
}

/// The most elements a tensor type may have (so that sizes in bytes cannot overflow).
const MAX_ELEMENTS: usize = usize::MAX / 64;

/// A token source with one token of lookahead; cloned for longer lookahead.
#[derive(Clone)]
struct Tokens<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
}

impl<'a> Tokens<'a> {
    fn peek(&mut self) -> Result<&Token<'a>, ParseError> {
        let tok = match self.peeked.take() {
            Some(t) => t,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(tok))
    }

    fn next(&mut self) -> Result<Token<'a>, ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }
}

/// Where a value of the function being parsed was defined.
struct ValueEntry {
    value: Value,
    line: u32,
    col: u32,
}

/// The values of the function being parsed, by printed name.
#[derive(Default)]
struct Scope {
    values: HashMap<String, ValueEntry>,
}

struct Parser<'a> {
    tokens: Tokens<'a>,
}

fn error(tok: &Token<'_>, message: impl Into<String>) -> ParseError {
    ParseError::new(tok.line, tok.col, message)
}

fn expected(what: &str, tok: &Token<'_>) -> ParseError {
    error(tok, format!("expected {what}, found {}", tok.describe()))
}

/// The text of a float literal (`1.0`, `-inf`, `nan`, ...), to be read by `str::parse::<f32>`.
fn float_text<'t>(tok: &Token<'t>) -> Option<&'t str> {
    match tok.kind {
        TokenKind::Float(t) => Some(t),
        TokenKind::Ident(t @ ("inf" | "nan" | "NaN")) => Some(t),
        _ => None,
    }
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Parser<'a> {
        Parser {
            tokens: Tokens {
                lexer: Lexer::new(src),
                peeked: None,
            },
        }
    }

    fn peek(&mut self) -> Result<&Token<'a>, ParseError> {
        self.tokens.peek()
    }

    fn next(&mut self) -> Result<Token<'a>, ParseError> {
        self.tokens.next()
    }

    /// Whether the next token is `kind` (punctuation only).
    fn at(&mut self, kind: &TokenKind<'_>) -> Result<bool, ParseError> {
        Ok(&self.peek()?.kind == kind)
    }

    /// Consumes the next token if it is `kind`.
    fn eat(&mut self, kind: &TokenKind<'_>) -> Result<bool, ParseError> {
        if self.at(kind)? {
            self.next()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Consumes the next token if it is the identifier `word`.
    fn eat_ident(&mut self, word: &str) -> Result<bool, ParseError> {
        if self.peek()?.is_ident(word) {
            self.next()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Consumes `kind` or fails with "expected {what}, found …".
    fn expect(&mut self, kind: &TokenKind<'_>, what: &str) -> Result<Token<'a>, ParseError> {
        let tok = self.next()?;
        if &tok.kind == kind {
            Ok(tok)
        } else {
            Err(expected(what, &tok))
        }
    }

    fn expect_ident(&mut self, word: &str, what: &str) -> Result<Token<'a>, ParseError> {
        let tok = self.next()?;
        if tok.is_ident(word) {
            Ok(tok)
        } else {
            Err(expected(what, &tok))
        }
    }

    fn expect_symbol(&mut self, what: &str) -> Result<(String, Token<'a>), ParseError> {
        let tok = self.next()?;
        match &tok.kind {
            TokenKind::Symbol(s) => Ok((s.clone(), tok)),
            _ => Err(expected(what, &tok)),
        }
    }

    fn expect_string(&mut self, what: &str) -> Result<String, ParseError> {
        let tok = self.next()?;
        match tok.kind {
            TokenKind::Str(s) => Ok(s),
            _ => Err(expected(what, &tok)),
        }
    }

    // ---- module level ----

    fn module(mut self) -> Result<Module, ParseError> {
        self.expect_ident("module", "'module'")?;
        let (name, _) = self.expect_symbol("the module name (@name)")?;
        let mut module = Module::new(name);
        if self.eat_ident("attributes")? {
            module.attrs = self.attr_dict()?;
        }
        self.expect(&TokenKind::LBrace, "'{' to open the module body")?;
        // Function names seen so far, so that a duplicate is found in constant time.
        let mut function_names = HashSet::new();
        loop {
            let tok = self.next()?;
            match tok.kind {
                TokenKind::RBrace => break,
                TokenKind::Ident("param" | "const" | "state") => self.global(&mut module, &tok)?,
                TokenKind::Ident("func") => {
                    let func = self.function()?;
                    if !function_names.insert(func.name.clone()) {
                        return Err(error(
                            &tok,
                            format!("function @{} is defined twice", func.name),
                        ));
                    }
                    module.functions.push(func);
                }
                _ => {
                    return Err(expected(
                        "'param', 'const', 'state', 'func' or '}' in the module body",
                        &tok,
                    ))
                }
            }
        }
        let tok = self.next()?;
        if tok.kind != TokenKind::Eof {
            return Err(expected("end of input after the module", &tok));
        }
        Ok(module)
    }

    /// Parses the optional `<axis=A, S:E>` after `trainable`.
    fn channel_slice(&mut self) -> Result<Trainable, ParseError> {
        if !self.eat(&TokenKind::Lt)? {
            return Ok(Trainable::All);
        }
        self.expect_ident(
            "axis",
            "'axis' in the channel slice `trainable<axis=A, S:E>`",
        )?;
        self.expect(&TokenKind::Equals, "'=' after 'axis'")?;
        let what = "an integer in the channel slice `trainable<axis=A, S:E>`";
        let tok = self.next()?;
        let axis: usize = self.int_value(&tok, what)?;
        self.expect(&TokenKind::Comma, "',' after the axis")?;
        let tok = self.next()?;
        let start: usize = self.int_value(&tok, what)?;
        self.expect(
            &TokenKind::Colon,
            "':' between the first and the end channel",
        )?;
        let end_tok = self.next()?;
        let end: usize = self.int_value(&end_tok, what)?;
        self.expect(&TokenKind::Gt, "'>' closing the channel slice")?;
        if end <= start {
            return Err(error(
                &end_tok,
                format!("empty channel slice {start}:{end}"),
            ));
        }
        Ok(Trainable::Channels {
            axis,
            start,
            len: end - start,
        })
    }

    /// Parses `@name : T [trainable[<axis=A, S:E>]|frozen] [= data]` after `param`, `const` or `state`.
    fn global(&mut self, module: &mut Module, keyword: &Token<'a>) -> Result<(), ParseError> {
        let (name, name_tok) =
            self.expect_symbol(&format!("a name (@name) after '{}'", keyword.text))?;
        self.expect(&TokenKind::Colon, "':' and the type of the global")?;
        let ty = self.tensor_type()?;
        let kind = match keyword.text {
            "param" => {
                let tok = self.next()?;
                match tok.kind {
                    TokenKind::Ident("trainable") => GlobalKind::Param {
                        trainable: self.channel_slice()?,
                    },
                    TokenKind::Ident("frozen") => GlobalKind::Param {
                        trainable: Trainable::None,
                    },
                    _ => return Err(expected("'trainable' or 'frozen' after the type", &tok)),
                }
            }
            "state" => GlobalKind::State,
            _ => GlobalKind::Const,
        };
        let data = if self.eat(&TokenKind::Equals)? {
            self.global_data(&ty)?
        } else {
            GlobalData::Absent
        };
        if module.globals.contains_key(&name) {
            return Err(error(
                &name_tok,
                format!("global {} is declared twice", name_tok.text),
            ));
        }
        let line_col = Some((name_tok.line, name_tok.col));
        module.globals.insert(
            name,
            Global {
                ty,
                kind,
                data,
                line_col,
            },
        );
        Ok(())
    }

    /// Parses `dense<[...]>` or `elided<0x...>`.
    fn global_data(&mut self, ty: &TensorType) -> Result<GlobalData, ParseError> {
        let tok = self.next()?;
        if tok.is_ident("elided") {
            self.expect(&TokenKind::Lt, "'<' after 'elided'")?;
            let digest_tok = self.next()?;
            let TokenKind::Hex(digits) = digest_tok.kind else {
                return Err(expected("a hexadecimal digest (0x...)", &digest_tok));
            };
            let digest = u64::from_str_radix(digits, 16).map_err(|_| {
                error(
                    &digest_tok,
                    "digest does not fit in 64 bits (16 hex digits)",
                )
            })?;
            self.expect(&TokenKind::Gt, "'>' after the digest")?;
            return Ok(GlobalData::Elided { digest });
        }
        if !tok.is_ident("dense") {
            return Err(expected("'dense<[...]>' or 'elided<0x...>'", &tok));
        }
        self.expect(&TokenKind::Lt, "'<' after 'dense'")?;
        self.expect(&TokenKind::LBracket, "'[' to open the data")?;
        let want = ty.num_elements();
        let mut data = DataBuilder::new(ty.elem);
        let mut count = 0usize;
        if !self.eat(&TokenKind::RBracket)? {
            loop {
                let tok = self.next()?;
                if count == want {
                    return Err(error(&tok, format!("too many elements: {ty} has {want}")));
                }
                data.push(&tok)?;
                count += 1;
                let sep = self.next()?;
                match sep.kind {
                    TokenKind::Comma => {}
                    TokenKind::RBracket => break,
                    _ => return Err(expected("',' or ']' after an element", &sep)),
                }
            }
        }
        if count != want {
            // The position just after the data is where the missing elements belong.
            let end = self.peek()?.clone();
            return Err(error(
                &end,
                format!("too few elements: {count} given, but {ty} has {want}"),
            ));
        }
        self.expect(&TokenKind::Gt, "'>' after the data")?;
        Ok(GlobalData::Inline(data.finish()))
    }

    // ---- types ----

    /// Parses `tensor<dims x elem [, q<...>]>`.
    fn tensor_type(&mut self) -> Result<TensorType, ParseError> {
        let start = self.next()?;
        if !start.is_ident("tensor") {
            return Err(expected("a tensor type", &start));
        }
        self.expect(&TokenKind::Lt, "'<' after 'tensor'")?;
        let body = self.next()?;
        let TokenKind::Dims { dims, elem } = &body.kind else {
            return Err(expected("dimensions and an element type", &body));
        };
        let Some(elem) = ElemType::from_name(elem) else {
            return Err(error(
                &body,
                format!("unknown element type '{elem}' (expected f32, i8, i32, i64 or i1)"),
            ));
        };
        let too_big = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .is_none_or(|n| n > MAX_ELEMENTS);
        if too_big {
            return Err(error(&body, "tensor type has too many elements"));
        }
        let shape: Shape = dims.iter().copied().collect();
        let quant = if self.eat(&TokenKind::Comma)? {
            Some(self.quant()?)
        } else {
            None
        };
        self.expect(&TokenKind::Gt, "'>' to close the tensor type")?;
        Ok(TensorType { shape, elem, quant })
    }

    /// Parses `q<scale, zero_point>` or `q<axis=A, [scales] [, [zero points]]>`.
    fn quant(&mut self) -> Result<Quant, ParseError> {
        self.expect_ident("q", "'q<...>' quantization parameters")?;
        self.expect(&TokenKind::Lt, "'<' after 'q'")?;
        if self.eat_ident("axis")? {
            self.expect(&TokenKind::Equals, "'=' after 'axis'")?;
            let tok = self.next()?;
            let axis = self.int_value::<usize>(&tok, "a quantization axis")?;
            self.expect(&TokenKind::Comma, "',' after the axis")?;
            self.expect(&TokenKind::LBracket, "'[' to open the scales")?;
            let mut scales = Vec::new();
            if !self.eat(&TokenKind::RBracket)? {
                loop {
                    let tok = self.next()?;
                    scales.push(self.scale(&tok)?);
                    let sep = self.next()?;
                    match sep.kind {
                        TokenKind::Comma => {}
                        TokenKind::RBracket => break,
                        _ => return Err(expected("',' or ']' after a scale", &sep)),
                    }
                }
            }
            let mut zero_points = vec![0i32; scales.len()];
            if self.eat(&TokenKind::Comma)? {
                let open = self.expect(&TokenKind::LBracket, "'[' to open the zero points")?;
                let mut given = Vec::new();
                if !self.eat(&TokenKind::RBracket)? {
                    loop {
                        let tok = self.next()?;
                        given.push(self.int_value::<i32>(&tok, "an integer zero point")?);
                        let sep = self.next()?;
                        match sep.kind {
                            TokenKind::Comma => {}
                            TokenKind::RBracket => break,
                            _ => return Err(expected("',' or ']' after a zero point", &sep)),
                        }
                    }
                }
                if given.len() != scales.len() {
                    return Err(error(
                        &open,
                        format!(
                            "{} zero points given for {} scales",
                            given.len(),
                            scales.len()
                        ),
                    ));
                }
                zero_points = given;
            }
            self.expect(&TokenKind::Gt, "'>' to close the quantization parameters")?;
            return Ok(Quant::PerChannel {
                axis,
                scales: scales.into(),
                zero_points: zero_points.into(),
            });
        }
        let tok = self.next()?;
        let scale = self.scale(&tok)?;
        self.expect(&TokenKind::Comma, "',' and a zero point after the scale")?;
        let tok = self.next()?;
        let zero_point = self.int_value::<i32>(&tok, "an integer zero point")?;
        self.expect(&TokenKind::Gt, "'>' to close the quantization parameters")?;
        Ok(Quant::PerTensor { scale, zero_point })
    }

    /// A quantization scale: a float, or an integer read as a float.
    fn scale(&self, tok: &Token<'a>) -> Result<f32, ParseError> {
        let text = match tok.kind {
            TokenKind::Int(t) => t,
            _ => float_text(tok).ok_or_else(|| expected("a scale (a float)", tok))?,
        };
        text.parse::<f32>()
            .map_err(|_| error(tok, format!("invalid float '{text}'")))
    }

    /// An integer token converted to `T`, with a range error otherwise.
    fn int_value<T: TryFrom<i128>>(&self, tok: &Token<'a>, what: &str) -> Result<T, ParseError> {
        let TokenKind::Int(text) = tok.kind else {
            return Err(expected(what, tok));
        };
        text.parse::<i128>()
            .ok()
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| error(tok, format!("{text} is out of range for {what}")))
    }

    // ---- attributes ----

    /// Parses `{key = value, ...}` (the `{` is next).
    fn attr_dict(&mut self) -> Result<Vec<(String, Attr)>, ParseError> {
        self.expect(&TokenKind::LBrace, "'{' to open the attributes")?;
        let mut attrs = Vec::new();
        if self.eat(&TokenKind::RBrace)? {
            return Ok(attrs);
        }
        loop {
            let key_tok = self.next()?;
            let key = match key_tok.kind {
                TokenKind::Ident(k) => k.to_string(),
                TokenKind::Str(k) => k,
                _ => return Err(expected("an attribute name", &key_tok)),
            };
            self.expect(&TokenKind::Equals, "'=' after the attribute name")?;
            let value = self.attr_value()?;
            attrs.push((key, value));
            let sep = self.next()?;
            match sep.kind {
                TokenKind::Comma => {}
                TokenKind::RBrace => return Ok(attrs),
                _ => return Err(expected("',' or '}' after an attribute", &sep)),
            }
        }
    }

    fn attr_value(&mut self) -> Result<Attr, ParseError> {
        let tok = self.next()?;
        if let Some(text) = float_text(&tok) {
            return text
                .parse::<f32>()
                .map(Attr::F32)
                .map_err(|_| error(&tok, format!("invalid float '{text}'")));
        }
        match tok.kind {
            TokenKind::Ident("true") => Ok(Attr::Bool(true)),
            TokenKind::Ident("false") => Ok(Attr::Bool(false)),
            TokenKind::Int(_) => Ok(Attr::Int(self.int_value::<i64>(&tok, "an i64")?)),
            TokenKind::Str(s) => Ok(Attr::Str(s)),
            TokenKind::Symbol(s) => Ok(Attr::Sym(s)),
            TokenKind::LBracket => {
                let mut items = Vec::new();
                if self.eat(&TokenKind::RBracket)? {
                    return Ok(Attr::Ints(items));
                }
                loop {
                    let tok = self.next()?;
                    items.push(self.int_value::<i64>(&tok, "an integer in the list")?);
                    let sep = self.next()?;
                    match sep.kind {
                        TokenKind::Comma => {}
                        TokenKind::RBracket => return Ok(Attr::Ints(items)),
                        _ => return Err(expected("',' or ']' in the integer list", &sep)),
                    }
                }
            }
            _ => Err(expected(
                "an attribute value (bool, integer, float, [integers], string or @symbol)",
                &tok,
            )),
        }
    }

    // ---- functions ----

    /// Parses `@name(%a: T, ...) -> (T, ...) { ops; return ... }` after `func`.
    fn function(&mut self) -> Result<Function, ParseError> {
        let (name, name_tok) = self.expect_symbol("a function name (@name) after 'func'")?;
        let mut func = Function::new(name);
        func.line_col = Some((name_tok.line, name_tok.col));
        let mut scope = Scope::default();
        self.expect(&TokenKind::LParen, "'(' to open the arguments")?;
        if !self.eat(&TokenKind::RParen)? {
            loop {
                let tok = self.next()?;
                let TokenKind::Value(arg) = tok.kind else {
                    return Err(expected("an argument (%name)", &tok));
                };
                scope.check_new(arg, &tok)?;
                self.expect(&TokenKind::Colon, "':' and the argument's type")?;
                let ty = self.tensor_type()?;
                let v = func.add_arg(ty, Some(arg.to_string()));
                scope.define(arg, v, &tok);
                let sep = self.next()?;
                match sep.kind {
                    TokenKind::Comma => {}
                    TokenKind::RParen => break,
                    _ => return Err(expected("',' or ')' after an argument", &sep)),
                }
            }
        }
        self.expect(&TokenKind::Arrow, "'->' and the result types")?;
        let result_types = self.type_list("the function's result types")?;
        self.expect(&TokenKind::LBrace, "'{' to open the function body")?;
        loop {
            let tok = self.peek()?.clone();
            match tok.kind {
                TokenKind::Ident("return") => {
                    self.next()?;
                    self.ret(&mut func, &scope, &tok, &result_types)?;
                    self.expect(&TokenKind::RBrace, "'}' after 'return'")?;
                    return Ok(func);
                }
                TokenKind::Value(_) | TokenKind::Ident(_) | TokenKind::Str(_) => {
                    self.op(&mut func, &mut scope)?;
                }
                _ => return Err(expected("an op or 'return'", &tok)),
            }
        }
    }

    /// Parses `(T, ...)` or a single type `T`.
    fn type_list(&mut self, what: &str) -> Result<Vec<(TensorType, Token<'a>)>, ParseError> {
        if !self.eat(&TokenKind::LParen)? {
            let tok = self.peek()?.clone();
            if !tok.is_ident("tensor") {
                return Err(expected(&format!("'(' and {what}"), &tok));
            }
            return Ok(vec![(self.tensor_type()?, tok)]);
        }
        let mut types = Vec::new();
        if self.eat(&TokenKind::RParen)? {
            return Ok(types);
        }
        loop {
            let tok = self.peek()?.clone();
            types.push((self.tensor_type()?, tok));
            let sep = self.next()?;
            match sep.kind {
                TokenKind::Comma => {}
                TokenKind::RParen => return Ok(types),
                _ => return Err(expected("',' or ')' after a type", &sep)),
            }
        }
    }

    /// Parses the values after `return` and checks them against the declared result types.
    fn ret(
        &mut self,
        func: &mut Function,
        scope: &Scope,
        keyword: &Token<'a>,
        result_types: &[(TensorType, Token<'a>)],
    ) -> Result<(), ParseError> {
        let mut outputs = Vec::new();
        if matches!(self.peek()?.kind, TokenKind::Value(_)) {
            loop {
                let tok = self.next()?;
                let v = self.use_value(scope, &tok)?;
                if let Some((declared, _)) = result_types.get(outputs.len()) {
                    if func.ty(v) != declared {
                        return Err(error(
                            &tok,
                            format!(
                                "returned value {} has type {}, but the function declares {declared}",
                                tok.text,
                                func.ty(v)
                            ),
                        ));
                    }
                }
                outputs.push(v);
                if !self.eat(&TokenKind::Comma)? {
                    break;
                }
            }
        }
        if outputs.len() != result_types.len() {
            return Err(error(
                keyword,
                format!(
                    "the function declares {} results, but 'return' gives {}",
                    result_types.len(),
                    outputs.len()
                ),
            ));
        }
        func.set_outputs(outputs);
        Ok(())
    }

    /// Resolves a value token, distinguishing a later definition from none at all.
    fn use_value(&self, scope: &Scope, tok: &Token<'a>) -> Result<Value, ParseError> {
        let TokenKind::Value(name) = tok.kind else {
            return Err(expected("a value (%name)", tok));
        };
        if let Some(entry) = scope.values.get(name) {
            return Ok(entry.value);
        }
        if self.defined_later(name) {
            Err(error(
                tok,
                format!("value %{name} is used before its definition"),
            ))
        } else {
            Err(error(tok, format!("undefined value %{name}")))
        }
    }

    /// Whether `%name` is defined (`%name = ...` or `..., %name, ... =`) later in this function.
    fn defined_later(&self, name: &str) -> bool {
        let mut tokens = self.tokens.clone();
        let mut run: Vec<&str> = Vec::new();
        let mut after_comma = false;
        loop {
            let Ok(tok) = tokens.next() else { return false };
            match tok.kind {
                TokenKind::Eof | TokenKind::Ident("func") => return false,
                TokenKind::Value(v) => {
                    if !after_comma {
                        run.clear();
                    }
                    run.push(v);
                    after_comma = false;
                }
                TokenKind::Comma if !run.is_empty() => after_comma = true,
                TokenKind::Equals if run.contains(&name) && !after_comma => return true,
                _ => {
                    run.clear();
                    after_comma = false;
                }
            }
        }
    }

    /// Whether the values next are the results of the next op (`%a, %b =`), not operands.
    fn values_then_equals(&self) -> bool {
        let mut tokens = self.tokens.clone();
        loop {
            match tokens.next().map(|t| t.kind) {
                Ok(TokenKind::Value(_)) => {}
                _ => return false,
            }
            match tokens.next().map(|t| t.kind) {
                Ok(TokenKind::Comma) => {}
                Ok(TokenKind::Equals) => return true,
                _ => return false,
            }
        }
    }

    /// Parses one op, in the pretty or the generic form, and appends it to `func`.
    fn op(&mut self, func: &mut Function, scope: &mut Scope) -> Result<(), ParseError> {
        let mut results: Vec<Token<'a>> = Vec::new();
        if matches!(self.peek()?.kind, TokenKind::Value(_)) {
            loop {
                let tok = self.next()?;
                let TokenKind::Value(name) = tok.kind else {
                    return Err(expected("a result (%name)", &tok));
                };
                scope.check_new(name, &tok)?;
                if results.iter().any(|r| r.text == tok.text) {
                    return Err(error(&tok, format!("value %{name} is defined twice")));
                }
                results.push(tok);
                let sep = self.next()?;
                match sep.kind {
                    TokenKind::Comma => {}
                    TokenKind::Equals => break,
                    _ => return Err(expected("',' or '=' after a result", &sep)),
                }
            }
        }
        let name_tok = self.next()?;
        let (op, operands, types) = match &name_tok.kind {
            TokenKind::Str(name) => {
                let name = name.clone();
                self.generic_op(func, scope, &name_tok, &name, results.len())?
            }
            TokenKind::Ident(name) => self.pretty_op(scope, &name_tok, name, &results)?,
            _ => return Err(expected("an op name", &name_tok)),
        };
        let loc_name = if self.eat_ident("loc")? {
            self.expect(&TokenKind::LParen, "'(' after 'loc'")?;
            let name = self.expect_string("a quoted location name")?;
            self.expect(&TokenKind::RParen, "')' after the location name")?;
            Some(name)
        } else {
            None
        };
        let loc = Loc {
            name: loc_name,
            line_col: Some((name_tok.line, name_tok.col)),
        };
        let id = func.append_op(op, &operands, types, loc);
        let values = func.op(id).results.clone();
        for (tok, v) in results.iter().zip(values) {
            if let TokenKind::Value(name) = tok.kind {
                scope.define(name, v, tok);
            }
        }
        Ok(())
    }

    /// Parses the operand list `%a, %b, ...` (possibly empty).
    fn operand_list(
        &mut self,
        scope: &Scope,
        close: Option<&TokenKind<'_>>,
    ) -> Result<(Vec<Value>, Vec<Token<'a>>), ParseError> {
        let mut values = Vec::new();
        let mut toks = Vec::new();
        if let Some(close) = close {
            if self.eat(close)? {
                return Ok((values, toks));
            }
        }
        loop {
            let tok = self.next()?;
            values.push(self.use_value(scope, &tok)?);
            toks.push(tok);
            match close {
                Some(close) => {
                    let sep = self.next()?;
                    if sep.kind == TokenKind::Comma {
                        continue;
                    }
                    if &sep.kind == close {
                        return Ok((values, toks));
                    }
                    return Err(expected("',' or ')' after an operand", &sep));
                }
                None => {
                    if !self.eat(&TokenKind::Comma)? {
                        return Ok((values, toks));
                    }
                }
            }
        }
    }

    /// Builds the op from its name and attributes, reporting [`crate::ops::OpError`] at the name.
    fn build_op(
        name_tok: &Token<'a>,
        name: &str,
        attrs: Vec<(String, Attr)>,
    ) -> Result<Op, ParseError> {
        Op::from_parts(name, attrs).map_err(|e| error(name_tok, e.to_string()))
    }

    /// `name [@sym] [%a, ...] [{attrs}] [: T, ...]`
    fn pretty_op(
        &mut self,
        scope: &Scope,
        name_tok: &Token<'a>,
        name: &str,
        results: &[Token<'a>],
    ) -> Result<(Op, Vec<Value>, Vec<TensorType>), ParseError> {
        let mut attrs = Vec::new();
        if matches!(name, "param" | "const") {
            let tok = self.peek()?.clone();
            match tok.kind {
                TokenKind::Symbol(sym) => {
                    self.next()?;
                    attrs.push(("global".to_string(), Attr::Sym(sym)));
                }
                _ => return Err(expected(&format!("a global (@name) after '{name}'"), &tok)),
            }
        }
        let mut operands = Vec::new();
        if matches!(self.peek()?.kind, TokenKind::Value(_)) && !self.values_then_equals() {
            operands = self.operand_list(scope, None)?.0;
        }
        if self.at(&TokenKind::LBrace)? {
            attrs.extend(self.attr_dict()?);
        }
        let op = Self::build_op(name_tok, name, attrs)?;
        let mut types = Vec::new();
        if results.is_empty() {
            let tok = self.peek()?.clone();
            if tok.kind == TokenKind::Colon {
                return Err(error(
                    &tok,
                    format!("`{name}` has no results here, so it takes no result types (write '%r = {name} ...')"),
                ));
            }
        } else {
            self.expect(&TokenKind::Colon, "':' and the result types")?;
            let first = self.peek()?.clone();
            loop {
                types.push(self.tensor_type()?);
                if !self.eat(&TokenKind::Comma)? {
                    break;
                }
            }
            if types.len() != results.len() {
                return Err(error(
                    &first,
                    format!(
                        "{} result types given for {} results",
                        types.len(),
                        results.len()
                    ),
                ));
            }
        }
        Ok((op, operands, types))
    }

    /// `"name"(%a, ...) [{attrs}] : (T, ...) -> T | (T, ...)`
    fn generic_op(
        &mut self,
        func: &Function,
        scope: &Scope,
        name_tok: &Token<'a>,
        name: &str,
        num_results: usize,
    ) -> Result<(Op, Vec<Value>, Vec<TensorType>), ParseError> {
        self.expect(&TokenKind::LParen, "'(' and the operands")?;
        let (operands, operand_toks) = self.operand_list(scope, Some(&TokenKind::RParen))?;
        let attrs = if self.at(&TokenKind::LBrace)? {
            self.attr_dict()?
        } else {
            Vec::new()
        };
        let op = Self::build_op(name_tok, name, attrs)?;
        let colon = self.expect(&TokenKind::Colon, "':' and the op's type")?;
        if !self.at(&TokenKind::LParen)? {
            let tok = self.peek()?.clone();
            return Err(expected("'(' and the operand types", &tok));
        }
        let stated = self.type_list("the operand types")?;
        for (i, ((ty, ty_tok), (&v, v_tok))) in stated
            .iter()
            .zip(operands.iter().zip(&operand_toks))
            .enumerate()
        {
            if func.ty(v) != ty {
                return Err(error(
                    ty_tok,
                    format!(
                        "operand {i} ({}) has type {}, but the op states {ty}",
                        v_tok.text,
                        func.ty(v)
                    ),
                ));
            }
        }
        if stated.len() != operands.len() {
            return Err(error(
                &colon,
                format!(
                    "{} operand types stated for {} operands",
                    stated.len(),
                    operands.len()
                ),
            ));
        }
        let arrow = self.expect(&TokenKind::Arrow, "'->' and the result types")?;
        let types: Vec<TensorType> = self
            .type_list("the result types")?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        if types.len() != num_results {
            return Err(error(
                &arrow,
                format!(
                    "{} result types stated for {} results",
                    types.len(),
                    num_results
                ),
            ));
        }
        Ok((op, operands, types))
    }
}

impl Scope {
    /// Fails if `name` is defined already.
    fn check_new(&self, name: &str, tok: &Token<'_>) -> Result<(), ParseError> {
        match self.values.get(name) {
            Some(prev) => Err(error(
                tok,
                format!(
                    "redefinition of value %{name} (first defined at {}:{})",
                    prev.line, prev.col
                ),
            )),
            None => Ok(()),
        }
    }

    fn define(&mut self, name: &str, value: Value, tok: &Token<'_>) {
        self.values.insert(
            name.to_string(),
            ValueEntry {
                value,
                line: tok.line,
                col: tok.col,
            },
        );
    }
}

/// Collects the elements of `dense<[...]>`, checking each against the element type.
enum DataBuilder {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    I1(Vec<bool>),
}

impl DataBuilder {
    fn new(elem: ElemType) -> DataBuilder {
        match elem {
            ElemType::F32 => DataBuilder::F32(Vec::new()),
            ElemType::I8 => DataBuilder::I8(Vec::new()),
            ElemType::I32 => DataBuilder::I32(Vec::new()),
            ElemType::I64 => DataBuilder::I64(Vec::new()),
            ElemType::I1 => DataBuilder::I1(Vec::new()),
        }
    }

    fn push(&mut self, tok: &Token<'_>) -> Result<(), ParseError> {
        fn int<T: TryFrom<i64>>(tok: &Token<'_>, elem: &str) -> Result<T, ParseError> {
            let TokenKind::Int(text) = tok.kind else {
                return Err(expected(&format!("an {elem} element (an integer)"), tok));
            };
            text.parse::<i64>()
                .ok()
                .and_then(|v| T::try_from(v).ok())
                .ok_or_else(|| error(tok, format!("{text} is out of range for {elem}")))
        }
        match self {
            DataBuilder::F32(v) => {
                let text = float_text(tok)
                    .ok_or_else(|| expected("an f32 element (a float such as 1.0)", tok))?;
                let x = text
                    .parse::<f32>()
                    .map_err(|_| error(tok, format!("invalid float '{text}'")))?;
                v.push(x);
            }
            DataBuilder::I8(v) => v.push(int(tok, "i8")?),
            DataBuilder::I32(v) => v.push(int(tok, "i32")?),
            DataBuilder::I64(v) => v.push(int(tok, "i64")?),
            DataBuilder::I1(v) => match tok.kind {
                TokenKind::Ident("true") => v.push(true),
                TokenKind::Ident("false") => v.push(false),
                _ => return Err(expected("an i1 element (true or false)", tok)),
            },
        }
        Ok(())
    }

    fn finish(self) -> TensorData {
        match self {
            DataBuilder::F32(v) => TensorData::F32(v),
            DataBuilder::I8(v) => TensorData::I8(v),
            DataBuilder::I32(v) => TensorData::I32(v),
            DataBuilder::I64(v) => TensorData::I64(v),
            DataBuilder::I1(v) => TensorData::I1(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{print_module, PrintOptions};

    fn err(src: &str) -> String {
        match parse_module(src) {
            Ok(_) => panic!("parsed:\n{src}"),
            Err(e) => e.to_string(),
        }
    }

    /// A module with one function `@f(%x: tensor<2xf32>) -> (tensor<2xf32>)` and `body` inside.
    fn func(body: &str) -> String {
        format!(
            "module @m {{\n  func @f(%x: tensor<2xf32>) -> (tensor<2xf32>) {{\n{body}\n  }}\n}}\n"
        )
    }

    #[test]
    fn tricky_syntax() {
        let src = r#"// leading comment
module @"odd name" attributes {"a key" = "x\n\"y\"\\", b = -inf, c = [], d = @"s y m"} { // trailing
  param @blocks.0.w : tensor<2x1xi8, q<axis=0, [0.5, 1e-8], [-1, 3]>> frozen = dense<[1, -128]>
  const @"c-1" : tensor<i1> = dense<[true]>
  const @big : tensor<2xi64> = elided<0x00000000000000ff>
  param @decl : tensor<f32> trainable
  func @f(%in.put: tensor<2xf32>, %_y: tensor<f32>) -> tensor<2xf32> {
    acme.tick
    %a, %b = acme.split %in.put {n = 2, f = nan, g = 1.5e3, h = true} : tensor<1xf32>, tensor<1xf32>
    acme.tock %a, %b
    return.x
    %0 = "nn.relu"(%in.put) : (tensor<2xf32>) -> (tensor<2xf32>) loc("r\"\\\n")
    // a comment between ops
    %1 = nn.clip %0 {min = -inf, max = inf} : tensor<2xf32>
    %2 = param @blocks.0.w : tensor<2x1xi8, q<axis=0, [0.5, 1e-8], [-1, 3]>>
    return %1
  }
  func @"g 2"() -> () {
    "acme.sink"() : () -> ()
    return
  }
}"#;
        let m = parse_module(src).unwrap();
        assert_eq!(m.name, "odd name");
        assert_eq!(m.attrs[0], ("a key".into(), Attr::Str("x\n\"y\"\\".into())));
        assert_eq!(m.attrs[3], ("d".into(), Attr::Sym("s y m".into())));
        let w = &m.globals["blocks.0.w"];
        assert_eq!(w.data, GlobalData::Inline(TensorData::I8(vec![1, -128])));
        assert_eq!(w.ty.quant.as_ref().map(|q| q.zero_point(1)), Some(3));
        assert_eq!(
            m.globals["c-1"].data,
            GlobalData::Inline(TensorData::I1(vec![true]))
        );
        assert_eq!(m.globals["big"].data, GlobalData::Elided { digest: 255 });
        assert_eq!(m.globals["decl"].data, GlobalData::Absent);
        let f = &m.functions[0];
        assert_eq!(f.num_ops(), 7);
        assert_eq!(f.value(f.args()[0]).name.as_deref(), Some("in.put"));
        let ops: Vec<_> = f.layout().iter().map(|&id| f.op(id)).collect();
        assert_eq!(ops[0].op.name(), "acme.tick");
        assert!(ops[0].operands.is_empty() && ops[0].results.is_empty());
        assert_eq!(ops[1].results.len(), 2);
        assert_eq!(ops[2].operands.as_slice(), ops[1].results.as_slice());
        assert_eq!(ops[3].op.name(), "return.x");
        assert_eq!(ops[4].loc.name.as_deref(), Some("r\"\\\n"));
        assert_eq!(ops[4].loc.line_col, Some((12, 10)));
        assert_eq!(ops[1].op.attrs()[2], ("g".to_string(), Attr::F32(1500.0)));
        assert_eq!(
            ops[5].op,
            Op::Clip {
                min: f32::NEG_INFINITY,
                max: f32::INFINITY
            }
        );
        assert_eq!(m.functions[1].name, "g 2");
        // The printed form parses back to the same text.
        for opts in [
            PrintOptions::default(),
            PrintOptions {
                generic: true,
                ..PrintOptions::full()
            },
        ] {
            let text = print_module(&m, &opts);
            let again = parse_module(&text).unwrap();
            assert_eq!(print_module(&again, &opts), text);
        }
    }

    #[test]
    fn floats_parse_exactly() {
        let src =
            "module @m {\n  const @c : tensor<4xf32> = dense<[0.1, 1e-45, 3.4028235e38, -0.0]>\n}";
        let m = parse_module(src).unwrap();
        let Some(TensorData::F32(v)) = m.data("c") else {
            panic!()
        };
        assert_eq!(v[0].to_bits(), 0.1f32.to_bits());
        assert_eq!(v[1].to_bits(), 1);
        assert_eq!(v[2], f32::MAX);
        assert_eq!(v[3].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            err(&func(
                "    %0 = \"nn.relu\"(%x tensor<2xf32>) : (tensor<2xf32>) -> tensor<2xf32>"
            )),
            "3:23: expected ',' or ')' after an operand, found 'tensor'"
        );
        assert_eq!(err(""), "1:1: expected 'module', found end of input");
        assert_eq!(
            err("module @m {"),
            "1:12: expected 'param', 'const', 'state', 'func' or '}' in the module body, found end of input"
        );
        assert_eq!(
            err("module @m {}\n}"),
            "2:1: expected end of input after the module, found '}'"
        );
        assert_eq!(
            err("module @m {\n  param @p : tensor<2xf32> = dense<[1.0, 2.0]>\n}"),
            "2:28: expected 'trainable' or 'frozen' after the type, found '='"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<2xf33>\n}"),
            "2:21: unknown element type 'f33' (expected f32, i8, i32, i64 or i1)"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<2x3f32>\n}"),
            "2:24: expected 'x' after dimension 3 in tensor type, found 'f'"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<99999999999x99999999999x99999999999xf32>\n}"),
            "2:21: tensor type has too many elements"
        );
        assert_eq!(
            err(&func(
                "    %0 = nn.relu %x : tensor<2xf32> loc(\"abc)\n    return %0"
            )),
            "3:41: unterminated string (a line break inside a string is written \\n)"
        );
        assert_eq!(
            err(&func("    %0 = nn.relu %x\n    return %0")),
            "4:5: expected ':' and the result types, found 'return'"
        );
        assert_eq!(
            err(&func(
                "    %0 = nn.relu %x : tensor<2xf32>, tensor<2xf32>\n    return %0"
            )),
            "3:23: 2 result types given for 1 results"
        );
        assert_eq!(
            err(&func("    acme.x %x : tensor<2xf32>\n    return %x")),
            "3:15: `acme.x` has no results here, so it takes no result types (write '%r = acme.x ...')"
        );
        assert_eq!(
            err(&func("    %0 = nn.relu %x : tensor<2xf32>")),
            "4:3: expected an op or 'return', found '}'"
        );
        assert_eq!(
            err(&func(
                "    %0 = \"acme.x\"(%x) : (tensor<2xf32>) -> ()\n    return %x"
            )),
            "3:41: 0 result types stated for 1 results"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<i64> = dense<[9223372036854775808]>\n}"),
            "2:35: 9223372036854775808 is out of range for i64"
        );
        assert_eq!(
            err("module @m attributes {a = 1.5.2} {}"),
            "1:27: invalid number '1.5.2'"
        );
    }

    #[test]
    fn value_errors() {
        assert_eq!(
            err(&func("    %0 = nn.add %x, %1 : tensor<2xf32>\n    %1 = nn.relu %x : tensor<2xf32>\n    return %0")),
            "3:21: value %1 is used before its definition"
        );
        assert_eq!(
            err(&func(
                "    %0 = nn.add %x, %y : tensor<2xf32>\n    return %0"
            )),
            "3:21: undefined value %y"
        );
        assert_eq!(
            err(&func("    %0 = nn.relu %x : tensor<2xf32>\n    %0 = nn.relu %x : tensor<2xf32>\n    return %0")),
            "4:5: redefinition of value %0 (first defined at 3:5)"
        );
        assert_eq!(
            err(&func("    %x = nn.relu %x : tensor<2xf32>\n    return %x")),
            "3:5: redefinition of value %x (first defined at 2:11)"
        );
        assert_eq!(
            err(&func(
                "    %0, %0 = acme.two %x : tensor<2xf32>, tensor<2xf32>\n    return %0"
            )),
            "3:9: value %0 is defined twice"
        );
        assert_eq!(
            err(&func("    return")),
            "3:5: the function declares 1 results, but 'return' gives 0"
        );
        assert_eq!(
            err(&func("    %0 = nn.flatten %x : tensor<1x2xf32>\n    return %0")),
            "4:12: returned value %0 has type tensor<1x2xf32>, but the function declares tensor<2xf32>"
        );
    }

    #[test]
    fn generic_operand_types_are_checked() {
        assert_eq!(
            err(&func(
                "    %0 = \"nn.relu\"(%x) : (tensor<3xf32>) -> tensor<2xf32>\n    return %0"
            )),
            "3:27: operand 0 (%x) has type tensor<2xf32>, but the op states tensor<3xf32>"
        );
        assert_eq!(
            err(&func(
                "    %0 = \"nn.add\"(%x, %x) : (tensor<2xf32>) -> tensor<2xf32>\n    return %0"
            )),
            "3:27: 1 operand types stated for 2 operands"
        );
    }

    #[test]
    fn op_errors_are_reported_at_the_op() {
        assert_eq!(
            err(&func("    %0 = nn.frobnicate %x : tensor<2xf32>\n    return %0")),
            "3:10: unknown op `nn.frobnicate` (built-in ops are listed by `mite ops`; custom ops need a dialect prefix outside nn, q, grad, optim, mem)"
        );
        assert_eq!(
            err(&func("    %0 = \"relu\"(%x) : (tensor<2xf32>) -> tensor<2xf32>\n    return %0")),
            "3:10: unknown op `relu` (built-in ops are listed by `mite ops`; custom ops need a dialect prefix outside nn, q, grad, optim, mem)"
        );
        assert_eq!(
            err(&func(
                "    %0 = nn.softmax %x {axis = 1.0} : tensor<2xf32>\n    return %0"
            )),
            "3:10: attribute `axis` of `nn.softmax`: expected an integer, found float"
        );
        assert_eq!(
            err(&func(
                "    %0 = nn.avg_pool %x : tensor<2xf32>\n    return %0"
            )),
            "3:10: op `nn.avg_pool` needs attribute `kernel`"
        );
        assert_eq!(
            err(&func("    %0 = param : tensor<2xf32>\n    return %0")),
            "3:16: expected a global (@name) after 'param', found ':'"
        );
    }

    #[test]
    fn data_errors() {
        assert_eq!(
            err("module @m {\n  const @c : tensor<2xf32> = dense<[1.0, 2.0, 3.0]>\n}"),
            "2:47: too many elements: tensor<2xf32> has 2"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<2xf32> = dense<[1.0]>\n}"),
            "2:41: too few elements: 1 given, but tensor<2xf32> has 2"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<2xf32> = dense<[1.0, 2]>\n}"),
            "2:42: expected an f32 element (a float such as 1.0), found '2'"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<1xi8> = dense<[128]>\n}"),
            "2:36: 128 is out of range for i8"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<1xi1> = dense<[1]>\n}"),
            "2:36: expected an i1 element (true or false), found '1'"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<2xi8> = elided<0x1ffffffffffffffff>\n}"),
            "2:36: digest does not fit in 64 bits (16 hex digits)"
        );
        assert_eq!(
            err("module @m {\n  const @c : tensor<2xi8, q<axis=0, [1.0, 1.0], [0]>>\n}"),
            "2:49: 1 zero points given for 2 scales"
        );
    }

    #[test]
    fn printer_output_that_used_to_be_ambiguous_round_trips() {
        let mut m = Module::new("m");
        let f = {
            let mut f = Function::new("f");
            // The first argument's hint takes the second argument's fallback name `arg1`.
            f.add_arg(TensorType::f32(&[1]), Some("arg1".into()));
            let b = f.add_arg(TensorType::f32(&[1]), None);
            let op = Op::Custom(crate::ops::CustomOp {
                name: "acme.odd name".into(),
                attrs: vec![("a key".into(), Attr::Int(1))],
            });
            let id = f.append_op(op, &[b], vec![TensorType::f32(&[1])], Loc::default());
            let out = f.op(id).result();
            f.set_outputs(vec![out]);
            f
        };
        m.functions.push(f);
        let text = print_module(&m, &PrintOptions::default());
        assert!(
            text.contains("func @f(%arg1: tensor<1xf32>, %arg1_0: tensor<1xf32>)"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"%0 = "acme.odd name"(%arg1_0) {"a key" = 1} : (tensor<1xf32>) -> tensor<1xf32>"#
            ),
            "{text}"
        );
        let parsed = parse_module(&text).unwrap();
        assert_eq!(print_module(&parsed, &PrintOptions::default()), text);
    }

    #[test]
    fn duplicates_and_file_names() {
        assert_eq!(
            err("module @m {\n  const @c : tensor<i1>\n  const @c : tensor<i1>\n}"),
            "3:9: global @c is declared twice"
        );
        assert_eq!(
            err("module @m {\n  func @f() -> () {\n    return\n  }\n  func @f() -> () {\n    return\n  }\n}"),
            "5:3: function @f is defined twice"
        );
        let e = parse_module_named("module @m {\n  #\n}", "net.mite").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert_eq!(e.to_string(), "net.mite:2:3: unexpected character '#'");
    }
}
