//! Helpers for the passes' unit tests.

use crate::pass::Pass;
use crate::statistics::Statistics;
use mite_ir::verify::verify_module;
use mite_ir::{print_module, Module, PrintOptions};

/// Runs `pass` on `m`, asserts that the result verifies, and returns the statistics.
pub(crate) fn run_ok(pass: &mut dyn Pass, m: &mut Module) -> Statistics {
    let mut stats = Statistics::new();
    pass.run(m, &mut stats).expect("the pass runs");
    if let Err(e) = verify_module(m) {
        panic!(
            "invalid IR after {}:\n{e}\n{}",
            pass.name(),
            print_module(m, &PrintOptions::full())
        );
    }
    stats
}

/// The op names of the first function, in program order.
pub(crate) fn op_names(m: &Module) -> Vec<String> {
    let f = &m.functions[0];
    f.layout()
        .iter()
        .map(|&id| f.op(id).op.name().to_string())
        .collect()
}

/// Asserts that running `pass` again on (a copy of) `m` reports no change and changes nothing.
pub(crate) fn assert_idempotent(pass: &mut dyn Pass, m: &Module) {
    let mut again = m.clone();
    let mut stats = Statistics::new();
    let changed = pass.run(&mut again, &mut stats).expect("the pass runs");
    let opts = PrintOptions::full();
    assert!(!changed, "second run of {} changed: {stats}", pass.name());
    assert_eq!(print_module(&again, &opts), print_module(m, &opts));
}
