//! Snapshot-testing a lowered Program: compile a model's training step, lower it to a Program
//! (kernel calls over a planned arena), and keep its text form under insta, so any change to
//! the lowering, the planner or a kernel's resolved parameters shows up as a reviewable diff.
//!
//! Run it: `cargo run --example snapshot_lowered_ir` prints the Program; `cargo test --example
//! snapshot_lowered_ir` compares it with `examples/snapshots/` (accept a change with
//! `cargo insta accept`, after reading it).

use mite::ir::program::print_program;
use mite::passes::lower::{lower_module, LowerOptions};
use mite::passes::passes::{build_training_step, TrainConfig};
use mite::passes::scheme::Scheme;

/// The zoo's tiny int8 CNN with its last two layers trained, lowered and printed.
fn lowered_text() -> Result<String, Box<dyn std::error::Error>> {
    let mut module = mite::zoo::tiny_int8_cnn();
    Scheme::parse("last:2")?.apply(&mut module)?;
    build_training_step(&mut module, &TrainConfig::default())?;
    let program = lower_module(&module, &LowerOptions::default())?;
    let bytes = program.storage_bytes();
    let mut text = print_program(&program);
    text.push_str(&format!(
        "// arena {} B (the input in the arena {} B), parameters {} B, state {} B, arguments {} B, \
         flash {} B\n",
        bytes.arena, bytes.input_in_arena, bytes.param, bytes.state, bytes.args, bytes.flash
    ));
    Ok(text)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", lowered_text()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lowered_program_snapshot() {
        insta::assert_snapshot!(super::lowered_text().unwrap());
    }
}
