//! Textual pipelines: `canonicalize,cse,dce` and `constant-fold{max-elements=4096},dce`.
//!
//! Grammar (whitespace is allowed around every token):
//!
//! ```text
//! pipeline := ( element ( ',' element )* )?
//! element  := name ( '{' ( option ( ',' option )* )? '}' )?
//! option   := name '=' value
//! name     := [A-Za-z0-9_.-]+
//! value    := any characters except whitespace, ',', '{', '}' and '=' (at least one)
//! ```
//!
//! Positions in errors are 1-based character positions in the pipeline text.

use crate::pass::PassError;
use thiserror::Error;

/// One pass of a parsed pipeline, with its options, before it is looked up in a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineElement {
    /// The pass name.
    pub name: String,
    /// 1-based character position of the name.
    pub position: usize,
    /// Options in the order given.
    pub options: Vec<PipelineOption>,
}

/// One `key=value` option of a [`PipelineElement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineOption {
    /// The option name.
    pub key: String,
    /// The value as written.
    pub value: String,
    /// 1-based character position of the key.
    pub position: usize,
}

/// Why a pipeline could not be parsed or built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PipelineParseError {
    /// The text does not follow the pipeline grammar.
    #[error("pipeline, at character {position}: {message}")]
    Syntax {
        /// 1-based character position of the problem.
        position: usize,
        /// What was expected.
        message: String,
    },
    /// No pass of this name is registered.
    #[error("pipeline, at character {position}: unknown pass `{name}` (known passes: {known})")]
    UnknownPass {
        /// 1-based character position of the name.
        position: usize,
        /// The name given.
        name: String,
        /// The registered passes, comma-separated.
        known: String,
    },
    /// A pass rejected an option.
    #[error("pipeline, at character {position}: {error}")]
    Option {
        /// 1-based character position of the option.
        position: usize,
        /// The pass's error.
        #[source]
        error: PassError,
    },
}

/// Parses the syntax of a pipeline (without looking passes up; see
/// [`PassRegistry::parse_pipeline`](crate::PassRegistry::parse_pipeline)).
///
/// ```
/// use mite_passes::parse_pipeline;
/// let p = parse_pipeline("constant-fold{max-elements=4096}, dce").unwrap();
/// assert_eq!(p[0].name, "constant-fold");
/// assert_eq!(p[0].options[0].key, "max-elements");
/// assert_eq!(p[0].options[0].value, "4096");
/// assert_eq!(p[1].position, 35);
/// ```
pub fn parse_pipeline(text: &str) -> Result<Vec<PipelineElement>, PipelineParseError> {
    Parser {
        chars: text.chars().collect(),
        pos: 0,
    }
    .pipeline()
}

struct Parser {
    chars: Vec<char>,
    /// 0-based index of the next character.
    pos: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn is_value_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, ',' | '{' | '}' | '=')
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// Describes the next character for an error message.
    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("found `{c}`"),
            None => "found the end of the pipeline".to_string(),
        }
    }

    fn error(&self, message: String) -> PipelineParseError {
        PipelineParseError::Syntax {
            position: self.pos + 1,
            message,
        }
    }

    fn pipeline(mut self) -> Result<Vec<PipelineElement>, PipelineParseError> {
        let mut elements = Vec::new();
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(elements);
        }
        loop {
            self.skip_ws();
            elements.push(self.element()?);
            self.skip_ws();
            if self.peek().is_none() {
                return Ok(elements);
            }
            if !self.eat(',') {
                let name = &elements[elements.len() - 1].name;
                return Err(self.error(format!(
                    "expected `,` or the end of the pipeline after pass `{name}`, {}",
                    self.found()
                )));
            }
        }
    }

    fn element(&mut self) -> Result<PipelineElement, PipelineParseError> {
        let position = self.pos + 1;
        let name = self.take_while(is_name_char);
        if name.is_empty() {
            return Err(self.error(format!("expected a pass name, {}", self.found())));
        }
        self.skip_ws();
        let mut options = Vec::new();
        let open = self.pos + 1;
        if self.eat('{') {
            self.skip_ws();
            if !self.eat('}') {
                loop {
                    self.skip_ws();
                    options.push(self.option(&name, open)?);
                    self.skip_ws();
                    if self.eat('}') {
                        break;
                    }
                    if !self.eat(',') {
                        return Err(self.close_error(&name, open));
                    }
                }
            }
        }
        Ok(PipelineElement {
            name,
            position,
            options,
        })
    }

    fn close_error(&self, pass: &str, open: usize) -> PipelineParseError {
        if self.peek().is_none() {
            self.error(format!(
                "unclosed `{{` of pass `{pass}` (opened at character {open})"
            ))
        } else {
            self.error(format!(
                "expected `,` or `}}` in the options of pass `{pass}`, {}",
                self.found()
            ))
        }
    }

    fn option(&mut self, pass: &str, open: usize) -> Result<PipelineOption, PipelineParseError> {
        let position = self.pos + 1;
        let key = self.take_while(is_name_char);
        if key.is_empty() {
            if self.peek().is_none() {
                return Err(self.close_error(pass, open));
            }
            return Err(self.error(format!(
                "expected an option name of pass `{pass}`, {}",
                self.found()
            )));
        }
        self.skip_ws();
        if !self.eat('=') {
            return Err(self.error(format!(
                "expected `=` after option `{key}` of pass `{pass}`, {}",
                self.found()
            )));
        }
        self.skip_ws();
        let value = self.take_while(is_value_char);
        if value.is_empty() {
            return Err(self.error(format!(
                "expected a value for option `{key}` of pass `{pass}`, {}",
                self.found()
            )));
        }
        Ok(PipelineOption {
            key,
            value,
            position,
        })
    }
}
