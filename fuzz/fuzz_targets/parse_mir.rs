//! The `.mir` parser and verifier: any text parses or fails with an error; a module that
//! verifies prints to text that parses and verifies again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mite_ir::text::{parse_module, print_module, PrintOptions};
use mite_ir::verify_module;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(module) = parse_module(text) else {
        return;
    };
    if verify_module(&module).is_err() {
        return;
    }
    let printed = print_module(
        &module,
        &PrintOptions {
            elide_above: None,
            ..PrintOptions::default()
        },
    );
    let again = parse_module(&printed)
        .unwrap_or_else(|e| panic!("printed module does not parse: {e}\n{printed}"));
    if let Err(e) = verify_module(&again) {
        panic!("printed module does not verify: {e}\n{printed}");
    }
});
