//! The pass manager: reports, IR dumps, stop-after and verification after each pass.

use mite_ir::{Builder, Module, Op, PrintOptions, TensorData, TensorType};
use mite_passes::{Pass, PassError, PassManager, PassRegistry, PipelineError, Statistics};

/// `relu(relu(x))` plus an unused `clip` and an unread constant.
fn sample() -> Module {
    let mut m = Module::new("sample");
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("x", TensorType::f32(&[1, 4]));
    let r1 = b.op(Op::Relu {}, &[x]).unwrap();
    let r2 = b.named("act").op(Op::Relu {}, &[r1]).unwrap();
    let _unused = b.op(Op::Clip { min: 0.0, max: 6.0 }, &[x]).unwrap();
    let _unread = b
        .constant("k", TensorType::f32(&[2]), TensorData::F32(vec![1.0, 2.0]))
        .unwrap();
    b.ret(&[r2]);
    m
}

fn manager(pipeline: &str) -> PassManager {
    let mut pm = PassManager::from_pipeline(&PassRegistry::with_builtin(), pipeline).unwrap();
    pm.options.print_options = PrintOptions::full();
    pm
}

fn run(
    pm: &mut PassManager,
    m: &mut Module,
) -> (Result<mite_passes::PipelineReport, PipelineError>, String) {
    let mut sink = Vec::new();
    let result = pm.run_with_sink(m, &mut sink);
    (result, String::from_utf8(sink).unwrap())
}

#[test]
fn verification_is_on_in_tests() {
    assert!(PassManager::default().options.verify_each);
}

#[test]
fn report_has_flags_statistics_and_times() {
    let mut m = sample();
    let mut pm = manager("canonicalize,cse,dce");
    let (report, dump) = run(&mut pm, &mut m);
    let report = report.unwrap();
    assert!(dump.is_empty(), "nothing asked to be printed");
    let flags: Vec<(&str, bool)> = report
        .passes
        .iter()
        .map(|p| (p.name.as_str(), p.changed))
        .collect();
    assert_eq!(
        flags,
        [("canonicalize", true), ("cse", false), ("dce", true)]
    );
    assert!(report.changed());
    assert_eq!(report.stopped_after, None);
    assert_eq!(
        report.statistics().to_string(),
        "canonicalize.relu-of-relu = 1\ncse.ops-merged = 0\ndce.ops-removed = 2\ndce.globals-removed = 1\n"
    );
    assert!(report.duration() >= report.passes[0].duration);
    let shown = report.to_string();
    assert!(shown.starts_with("canonicalize (changed, "), "{shown}");
    assert!(shown.contains("\n  dce.ops-removed = 2\n"), "{shown}");
    assert_eq!(m.functions[0].num_ops(), 1);
    assert!(m.globals.is_empty());
}

#[test]
fn print_ir_before_and_after() {
    let mut m = sample();
    let mut pm = manager("canonicalize,dce");
    pm.options.print_ir_before.insert("dce".into());
    pm.options.print_ir_after.insert("dce".into());
    let (report, dump) = run(&mut pm, &mut m);
    report.unwrap();
    insta::assert_snapshot!("print_ir_before_and_after_dce", dump);
}

#[test]
fn print_ir_after_all_dumps_every_pass() {
    let mut m = sample();
    let mut pm = manager("canonicalize,cse,dce");
    pm.options.print_ir_after_all = true;
    let (report, dump) = run(&mut pm, &mut m);
    report.unwrap();
    let headers: Vec<&str> = dump
        .lines()
        .filter(|l| l.starts_with("// -----//"))
        .collect();
    assert_eq!(
        headers,
        [
            "// -----// IR Dump After canonicalize //----- //",
            "// -----// IR Dump After cse //----- //",
            "// -----// IR Dump After dce //----- //",
        ]
    );
    assert!(
        dump.ends_with(&format!("{m}\n")),
        "the last dump is the result"
    );
}

#[test]
fn stop_after_stops() {
    let mut m = sample();
    let mut pm = manager("canonicalize,cse,dce");
    pm.options.stop_after = Some("cse".into());
    let (report, _) = run(&mut pm, &mut m);
    let report = report.unwrap();
    assert_eq!(report.passes.len(), 2);
    assert_eq!(report.stopped_after.as_deref(), Some("cse"));
    assert_eq!(m.functions[0].num_ops(), 3, "dce did not run");
    assert!(report.to_string().ends_with("stopped after cse\n"));
}

#[test]
fn instrumented_names_must_be_in_the_pipeline() {
    let mut m = sample();
    let mut pm = manager("canonicalize,dce");
    pm.options.stop_after = Some("cse".into());
    let (result, _) = run(&mut pm, &mut m);
    let e = result.unwrap_err();
    assert!(matches!(
        e,
        PipelineError::NotInPipeline {
            option: "stop-after",
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "stop-after: pass `cse` is not in the pipeline (passes: canonicalize, dce)"
    );
    assert_eq!(m.functions[0].num_ops(), 4, "nothing ran");

    let mut pm = manager("dce");
    pm.options.print_ir_after.insert("dse".into());
    let (result, _) = run(&mut pm, &mut m);
    assert!(matches!(
        result,
        Err(PipelineError::NotInPipeline {
            option: "print-ir-after",
            ..
        })
    ));
}

/// Erases the first op without replacing its uses: a deliberately broken pass.
struct EraseFirstOp;

impl Pass for EraseFirstOp {
    fn name(&self) -> &str {
        "erase-first-op"
    }
    fn description(&self) -> &str {
        "Breaks the IR"
    }
    fn run(&mut self, module: &mut Module, _: &mut Statistics) -> Result<bool, PassError> {
        let f = &mut module.functions[0];
        let first = f.layout()[0];
        f.erase_op(first);
        Ok(true)
    }
}

#[test]
fn verify_each_catches_a_broken_pass() {
    let mut m = sample();
    let mut pm = manager("canonicalize");
    pm.add_pass(EraseFirstOp)
        .add_boxed_pass(Box::new(mite_passes::passes::Dce));
    pm.options.print_ir_after.insert("erase-first-op".into());
    let (result, dump) = run(&mut pm, &mut m);
    let e = result.unwrap_err();
    let PipelineError::Verification { pass, errors } = &e else {
        panic!("expected a verification error, found {e}");
    };
    assert_eq!(pass, "erase-first-op");
    assert!(!errors.0.is_empty());
    let text = e.to_string();
    assert!(
        text.starts_with("the module is invalid after pass `erase-first-op`:\nerror: @forward"),
        "{text}"
    );
    assert!(
        dump.starts_with("// -----// IR Dump After erase-first-op //----- //\n"),
        "the dump comes before the verification, to help debugging"
    );

    let mut m = sample();
    pm.options.verify_each = false;
    let (result, _) = run(&mut pm, &mut m);
    assert!(
        result.is_ok(),
        "without verification the broken IR goes through"
    );
}

#[test]
fn invalid_input_is_reported_before_any_pass() {
    let mut m = sample();
    let f = &mut m.functions[0];
    let first = f.layout()[0];
    f.erase_op(first);
    let mut pm = manager("dce");
    pm.options.verify_each = true;
    let (result, _) = run(&mut pm, &mut m);
    let e = result.unwrap_err();
    assert!(matches!(e, PipelineError::InvalidInput { .. }), "{e}");
    assert!(e
        .to_string()
        .starts_with("the module is invalid before the pipeline runs:\n"));
}

/// Fails on purpose.
struct Failing;

impl Pass for Failing {
    fn name(&self) -> &str {
        "failing"
    }
    fn description(&self) -> &str {
        "Always fails"
    }
    fn run(&mut self, _: &mut Module, _: &mut Statistics) -> Result<bool, PassError> {
        Err(PassError::failed("failing", "out of budget"))
    }
}

#[test]
fn pass_errors_name_the_pass() {
    let mut m = sample();
    let mut pm = PassManager::default();
    pm.add_pass(Failing);
    let (result, _) = run(&mut pm, &mut m);
    assert_eq!(
        result.unwrap_err().to_string(),
        "pass `failing` returned an error: pass `failing` failed: out of budget"
    );
}

#[test]
fn each_builtin_pass_is_idempotent_in_a_pipeline() {
    for name in ["canonicalize", "constant-fold", "cse", "dce"] {
        let mut m = sample();
        let mut pm = manager(&format!("{name},{name}"));
        let report = run(&mut pm, &mut m).0.unwrap();
        assert!(
            !report.passes[1].changed,
            "{name} changed on its second run"
        );
    }
}
