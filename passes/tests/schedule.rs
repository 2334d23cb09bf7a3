//! File test of the `schedule` pass: a small training step, parsed, scheduled with the pass's
//! default options and with `keep-update-order=false`, verified after each, and the printed IR
//! with the pass's statistics compared with an insta snapshot.

use mite_ir::text::{parse_module, print_module, PrintOptions};
use mite_ir::verify::verify_module;
use mite_passes::{PassManager, PassRegistry};

fn run(source: &str, pipeline: &str) -> String {
    let mut module = parse_module(source).expect("the file parses");
    verify_module(&module).expect("the file verifies");
    let registry = PassRegistry::with_builtin();
    let mut manager = PassManager::from_pipeline(&registry, pipeline).expect("the pipeline parses");
    manager.options.verify_each = true;
    let report = manager
        .run(&mut module)
        .expect("the pipeline runs and verifies");
    format!(
        "// {pipeline}\n{}\n// statistics\n{}",
        print_module(&module, &PrintOptions::default()),
        report.statistics()
    )
}

#[test]
fn schedule_a_training_step() {
    let source = include_str!("schedule/updates_at_end.mir");
    insta::assert_snapshot!("updates_in_order", run(source, "schedule"));
    insta::assert_snapshot!(
        "updates_free",
        run(source, "schedule{keep-update-order=false}")
    );
}
