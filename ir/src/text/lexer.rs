//! The lexer of the textual IR.
//!
//! Tokens carry their source text and 1-based line and column (columns count characters, lines
//! count `\n`). `//` comments run to the end of the line. The lexer is a cheap cursor that can be
//! cloned for lookahead.
//!
//! One token is contextual: right after `tensor <` the lexer reads the dimension list and the
//! element type as a single [`TokenKind::Dims`] token (`1x16x8x8xi8`), since `1x16` is not a
//! number anywhere else.

use super::parse::ParseError;

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TokenKind<'a> {
    /// A bare word: keywords, op names, attribute keys (`[A-Za-z_][A-Za-z0-9_.]*`).
    Ident(&'a str),
    /// A value reference `%name`, without the `%`.
    Value(&'a str),
    /// A symbol `@name` or `@"quoted name"`, without the `@` and unescaped.
    Symbol(String),
    /// A quoted string, unescaped.
    Str(String),
    /// An integer literal with its optional sign.
    Int(&'a str),
    /// A float literal (`1.0`, `-2.5e-3`, `-inf`); `inf` and `nan` alone are identifiers.
    Float(&'a str),
    /// A hexadecimal literal `0x…`: the digits after `0x`.
    Hex(&'a str),
    /// The body of a tensor type after `tensor<`: dimensions and the element type name.
    Dims {
        /// The dimensions, outermost first.
        dims: Vec<usize>,
        /// The element type's name (checked by the parser).
        elem: &'a str,
    },
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `,`
    Comma,
    /// `:`
    Colon,
    /// `=`
    Equals,
    /// `->`
    Arrow,
    /// The end of the input.
    Eof,
}

/// A token with its source text and position.
#[derive(Clone, Debug)]
pub(crate) struct Token<'a> {
    /// What it is.
    pub kind: TokenKind<'a>,
    /// Its text in the source (empty at the end of the input).
    pub text: &'a str,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

impl Token<'_> {
    /// The token as shown in "found …" parts of messages.
    pub fn describe(&self) -> String {
        if self.kind == TokenKind::Eof {
            return "end of input".to_string();
        }
        const MAX: usize = 32;
        if self.text.chars().count() > MAX {
            let short: String = self.text.chars().take(MAX).collect();
            format!("'{short}...'")
        } else {
            format!("'{}'", self.text)
        }
    }

    /// Whether the token is the identifier `word`.
    pub fn is_ident(&self, word: &str) -> bool {
        self.kind == TokenKind::Ident(word)
    }
}

/// Whether `c` may start a bare identifier.
fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Whether `c` may continue a bare identifier.
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Whether `c` may appear in a value name after `%` (see [`super::is_value_ident`]).
fn is_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Whether `c` may appear in a bare symbol after `@` (see [`crate::attr::is_bare_symbol`]).
fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$' | '-')
}

/// Whether `name` lexes as one bare identifier (op names and attribute keys print bare only then).
pub(crate) fn is_bare_ident(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if is_ident_start(c)) && chars.all(is_ident_char)
}

/// Where the lexer is relative to a `tensor<` prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TypeState {
    /// Anywhere else.
    None,
    /// Just after the identifier `tensor`.
    Tensor,
    /// Just after `tensor <`: the next token is the dimension list.
    TensorLt,
}

/// A cursor over the source that produces tokens on demand.
#[derive(Clone, Debug)]
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
    state: TypeState,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `src`.
    pub fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            line: 1,
            col: 1,
            state: TypeState::None,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn bump_while(&mut self, mut pred: impl FnMut(char) -> bool) {
        while self.peek_char().is_some_and(&mut pred) {
            self.bump();
        }
    }

    fn slice(&self, start: usize) -> &'a str {
        self.src.get(start..self.pos).unwrap_or("")
    }

    fn error_at(line: u32, col: u32, message: impl Into<String>) -> ParseError {
        ParseError::new(line, col, message)
    }

    fn skip_trivia(&mut self) {
        loop {
            match self.peek_char() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek_second() == Some('/') => {
                    self.bump_while(|c| c != '\n');
                }
                _ => return,
            }
        }
    }

    /// The next token (an [`TokenKind::Eof`] token at the end, again on every call).
    pub fn next_token(&mut self) -> Result<Token<'a>, ParseError> {
        self.skip_trivia();
        let (start, line, col) = (self.pos, self.line, self.col);
        let kind = if self.state == TypeState::TensorLt && self.peek_char().is_some() {
            self.lex_dims(line, col)?
        } else {
            self.lex_plain(line, col)?
        };
        self.state = match (&kind, self.state) {
            (TokenKind::Ident("tensor"), _) => TypeState::Tensor,
            (TokenKind::Lt, TypeState::Tensor) => TypeState::TensorLt,
            _ => TypeState::None,
        };
        Ok(Token {
            kind,
            text: self.slice(start),
            line,
            col,
        })
    }

    fn lex_plain(&mut self, line: u32, col: u32) -> Result<TokenKind<'a>, ParseError> {
        let start = self.pos;
        let Some(c) = self.bump() else {
            return Ok(TokenKind::Eof);
        };
        let kind = match c {
            '(' => TokenKind::LParen,
            ')' => TokenKind::RParen,
            '{' => TokenKind::LBrace,
            '}' => TokenKind::RBrace,
            '[' => TokenKind::LBracket,
            ']' => TokenKind::RBracket,
            '<' => TokenKind::Lt,
            '>' => TokenKind::Gt,
            ',' => TokenKind::Comma,
            ':' => TokenKind::Colon,
            '=' => TokenKind::Equals,
            '-' => match self.peek_char() {
                Some('>') => {
                    self.bump();
                    TokenKind::Arrow
                }
                Some(d) if d.is_ascii_digit() => self.lex_number(start, line, col)?,
                Some(d) if is_ident_start(d) => {
                    self.bump_while(is_ident_char);
                    let word = self.slice(start);
                    if matches!(word, "-inf" | "-nan" | "-NaN") {
                        TokenKind::Float(word)
                    } else {
                        return Err(Self::error_at(
                            line,
                            col,
                            format!("unexpected '{word}' (a '-' starts a number or '->')"),
                        ));
                    }
                }
                _ => {
                    return Err(Self::error_at(
                        line,
                        col,
                        "unexpected character '-' (a '-' starts a number or '->')",
                    ))
                }
            },
            '0'..='9' => self.lex_number(start, line, col)?,
            '%' => {
                let name_start = self.pos;
                self.bump_while(is_value_char);
                let name = self.slice(name_start);
                if name.is_empty() {
                    return Err(Self::error_at(line, col, "expected a value name after '%'"));
                }
                TokenKind::Value(name)
            }
            '@' => {
                if self.peek_char() == Some('"') {
                    let (qline, qcol) = (self.line, self.col);
                    self.bump();
                    TokenKind::Symbol(self.lex_string_body(qline, qcol)?)
                } else {
                    let name_start = self.pos;
                    self.bump_while(is_symbol_char);
                    let name = self.slice(name_start);
                    if name.is_empty() {
                        return Err(Self::error_at(
                            line,
                            col,
                            "expected a symbol name or a quoted string after '@'",
                        ));
                    }
                    TokenKind::Symbol(name.to_string())
                }
            }
            '"' => TokenKind::Str(self.lex_string_body(line, col)?),
            c if is_ident_start(c) => {
                self.bump_while(is_ident_char);
                TokenKind::Ident(self.slice(start))
            }
            c => {
                return Err(Self::error_at(
                    line,
                    col,
                    format!("unexpected character {c:?}"),
                ))
            }
        };
        Ok(kind)
    }

    /// Lexes the rest of a number whose first character (a digit or `-`) was consumed.
    fn lex_number(
        &mut self,
        start: usize,
        line: u32,
        col: u32,
    ) -> Result<TokenKind<'a>, ParseError> {
        let first = self.slice(start);
        if first == "0"
            && matches!(self.peek_char(), Some('x' | 'X'))
            && self.peek_second().is_some_and(|c| c.is_ascii_hexdigit())
        {
            self.bump();
            let digits_start = self.pos;
            self.bump_while(|c| c.is_ascii_hexdigit());
            let digits = self.slice(digits_start);
            self.reject_suffix(start, line, col)?;
            return Ok(TokenKind::Hex(digits));
        }
        self.bump_while(|c| c.is_ascii_digit());
        let mut is_float = false;
        if self.peek_char() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            self.bump_while(|c| c.is_ascii_digit());
            is_float = true;
        }
        if matches!(self.peek_char(), Some('e' | 'E')) {
            let mut ahead = self.rest().chars().skip(1);
            let exponent_follows = match ahead.next() {
                Some('+' | '-') => ahead.next().is_some_and(|c| c.is_ascii_digit()),
                Some(c) => c.is_ascii_digit(),
                None => false,
            };
            if exponent_follows {
                self.bump();
                if matches!(self.peek_char(), Some('+' | '-')) {
                    self.bump();
                }
                self.bump_while(|c| c.is_ascii_digit());
                is_float = true;
            }
        }
        self.reject_suffix(start, line, col)?;
        let text = self.slice(start);
        Ok(if is_float {
            TokenKind::Float(text)
        } else {
            TokenKind::Int(text)
        })
    }

    /// A number directly followed by letters (`12ab`, `1.5.3`) is an error, not two tokens.
    fn reject_suffix(&mut self, start: usize, line: u32, col: u32) -> Result<(), ParseError> {
        if self.peek_char().is_some_and(is_ident_char) {
            self.bump_while(is_ident_char);
            return Err(Self::error_at(
                line,
                col,
                format!("invalid number '{}'", self.slice(start)),
            ));
        }
        Ok(())
    }

    /// Lexes a string after its opening quote, which is at `line:col`.
    fn lex_string_body(&mut self, line: u32, col: u32) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            let (eline, ecol) = (self.line, self.col);
            match self.bump() {
                None => return Err(Self::error_at(line, col, "unterminated string")),
                Some('"') => return Ok(out),
                Some('\n') => {
                    return Err(Self::error_at(
                        line,
                        col,
                        "unterminated string (a line break inside a string is written \\n)",
                    ))
                }
                Some('\\') => match self.bump() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    None => return Err(Self::error_at(line, col, "unterminated string")),
                    Some(c) => {
                        return Err(Self::error_at(
                            eline,
                            ecol,
                            format!(
                                "invalid escape '\\{}' in string (use \\\", \\\\, \\n, \\t or \\r)",
                                c.escape_debug()
                            ),
                        ))
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// Lexes `1x16x8x8xi8` (or `f32` for a scalar) after `tensor<`.
    fn lex_dims(&mut self, line: u32, col: u32) -> Result<TokenKind<'a>, ParseError> {
        let mut dims = Vec::new();
        loop {
            let (dline, dcol) = (self.line, self.col);
            match self.peek_char() {
                Some(c) if c.is_ascii_digit() => {
                    let start = self.pos;
                    self.bump_while(|c| c.is_ascii_digit());
                    let text = self.slice(start);
                    let dim = text.parse::<usize>().map_err(|_| {
                        Self::error_at(dline, dcol, format!("dimension {text} is too large"))
                    })?;
                    if self.peek_char() != Some('x') {
                        let found = self.peek_char().map_or_else(
                            || "end of input".to_string(),
                            |c| format!("'{}'", c.escape_debug()),
                        );
                        return Err(Self::error_at(
                            self.line,
                            self.col,
                            format!(
                                "expected 'x' after dimension {text} in tensor type, found {found}"
                            ),
                        ));
                    }
                    self.bump();
                    dims.push(dim);
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    let start = self.pos;
                    self.bump_while(|c| c.is_ascii_alphanumeric() || c == '_');
                    return Ok(TokenKind::Dims {
                        dims,
                        elem: self.slice(start),
                    });
                }
                other => {
                    let found = other.map_or_else(
                        || "end of input".to_string(),
                        |c| format!("'{}'", c.escape_debug()),
                    );
                    let what = if dims.is_empty() && dline == line && dcol == col {
                        "expected dimensions and an element type after 'tensor<'"
                    } else {
                        "expected a dimension or an element type in tensor type"
                    };
                    return Err(Self::error_at(
                        dline,
                        dcol,
                        format!("{what}, found {found}"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind<'_>> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token().unwrap();
            if t.kind == TokenKind::Eof {
                return out;
            }
            out.push(t.kind);
        }
    }

    #[test]
    fn tensor_types_lex_dims_in_one_token() {
        assert_eq!(
            kinds("tensor<1x16xi8, q<0.5, -128>>"),
            vec![
                TokenKind::Ident("tensor"),
                TokenKind::Lt,
                TokenKind::Dims {
                    dims: vec![1, 16],
                    elem: "i8"
                },
                TokenKind::Comma,
                TokenKind::Ident("q"),
                TokenKind::Lt,
                TokenKind::Float("0.5"),
                TokenKind::Comma,
                TokenKind::Int("-128"),
                TokenKind::Gt,
                TokenKind::Gt,
            ]
        );
        assert_eq!(
            kinds("tensor <0x2xf32>")[2],
            TokenKind::Dims {
                dims: vec![0, 2],
                elem: "f32"
            }
        );
    }

    #[test]
    fn numbers_symbols_and_strings() {
        assert_eq!(
            kinds("1e-8 -inf 0x1F -> @a.b-c @\"x \\\"y\\\"\" // comment\n %arg0"),
            vec![
                TokenKind::Float("1e-8"),
                TokenKind::Float("-inf"),
                TokenKind::Hex("1F"),
                TokenKind::Arrow,
                TokenKind::Symbol("a.b-c".into()),
                TokenKind::Symbol("x \"y\"".into()),
                TokenKind::Value("arg0"),
            ]
        );
    }

    #[test]
    fn positions_count_characters() {
        let mut lexer = Lexer::new("é \n  %x");
        let t = lexer.next_token();
        assert!(t.is_err());
        let mut lexer = Lexer::new("\"é\" \n  %x");
        let t = lexer.next_token().unwrap();
        assert_eq!((t.line, t.col), (1, 1));
        let t = lexer.next_token().unwrap();
        assert_eq!((t.line, t.col, t.text), (2, 3, "%x"));
    }

    #[test]
    fn lexer_errors() {
        let e = Lexer::new("12ab").next_token().unwrap_err();
        assert_eq!(e.to_string(), "1:1: invalid number '12ab'");
        let e = Lexer::new("  \"abc").next_token().unwrap_err();
        assert_eq!(e.to_string(), "1:3: unterminated string");
        let e = Lexer::new("\"a\\qb\"").next_token().unwrap_err();
        assert_eq!(
            e.to_string(),
            "1:3: invalid escape '\\q' in string (use \\\", \\\\, \\n, \\t or \\r)"
        );
        let e = Lexer::new("#").next_token().unwrap_err();
        assert_eq!(e.to_string(), "1:1: unexpected character '#'");
        assert!(is_bare_ident("acme.fft2d"));
        assert!(!is_bare_ident("acme.my-op"));
        assert!(!is_bare_ident("1x"));
    }
}
