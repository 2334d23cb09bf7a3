//! The ONNX reader and importer: any bytes decode and import to a verified module, or fail with
//! an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mite_onnx::{import_bytes, ImportOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(module) = import_bytes(data, "fuzz.onnx", &ImportOptions::batch_one()) {
        // import_bytes verifies; verify again to be sure nothing is returned unverified.
        if let Err(e) = mite_ir::verify_module(&module) {
            panic!("an imported module does not verify: {e}");
        }
    }
});
