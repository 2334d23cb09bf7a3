//! The whole front half: a model (IR text when the input starts with `module`, ONNX bytes
//! otherwise) is loaded and verified, optimised with the standard passes (verifying after each),
//! and given a training step by autodiff. Every stage must return an error or a module that
//! verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mite_ir::{verify_module, Module};
use mite_onnx::{import_bytes, ImportOptions};
use mite_passes::passes::{build_training_step, TrainConfig};
use mite_passes::{PassManager, PassRegistry};

fn load(data: &[u8]) -> Option<Module> {
    if data.starts_with(b"module") {
        let text = std::str::from_utf8(data).ok()?;
        let module = mite_ir::text::parse_module(text).ok()?;
        verify_module(&module).ok()?;
        Some(module)
    } else {
        import_bytes(data, "fuzz.onnx", &ImportOptions::batch_one()).ok()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(mut module) = load(data) else {
        return;
    };
    let registry = PassRegistry::with_builtin();
    let passes = registry
        .parse_pipeline("canonicalize,cse,constant-fold,dce")
        .expect("the standard pipeline parses");
    let mut manager = PassManager::new(passes);
    manager.options.verify_each = true;
    if manager.run_with_sink(&mut module, &mut Vec::new()).is_err() {
        return;
    }
    if let Err(e) = verify_module(&module) {
        panic!("the optimised module does not verify: {e}");
    }
    if build_training_step(&mut module, &TrainConfig::default()).is_ok() {
        if let Err(e) = verify_module(&module) {
            panic!("the training module does not verify: {e}");
        }
    }
});
