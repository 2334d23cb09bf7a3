//! The MLIR-flavoured text format: printer and parser.
//!
//! ```text
//! module @tiny {
//!   param @fc.weight : tensor<10x16xf32> trainable = elided<0x1c3a…>
//!
//!   func @forward(%x: tensor<1x16xf32>) -> (tensor<1x10xf32>) {
//!     %0 = param @fc.weight : tensor<10x16xf32>
//!     %1 = nn.linear %x, %0 : tensor<1x10xf32> loc("fc")
//!     return %1
//!   }
//! }
//! ```
//! Every op also prints and parses in the generic form
//! `%1 = "nn.linear"(%x, %0) : (tensor<1x16xf32>, tensor<10x16xf32>) -> tensor<1x10xf32>`.

mod lexer;
mod parse;
mod print;

pub use parse::{parse_module, parse_module_named, ParseError};
pub use print::{is_value_ident, print_function, print_module, write_dense, PrintOptions};
