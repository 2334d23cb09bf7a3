//! A MobileNetV2-class int8 network at 128×128 runs end to end; in release builds it must take
//! well under a second.

mod common;

use std::time::Instant;

use common::{mobilenet_v2_int8, qi8, Lcg};
use mite_interp::exec::{Interpreter, Tensor};
use mite_ir::TensorData;

#[test]
fn mobilenet_v2_int8_128() {
    let m = mobilenet_v2_int8(128, 1.0, 1000, 1);
    let interp = Interpreter::new(&m).unwrap();
    let image = Tensor::new(
        qi8(&[1, 3, 128, 128], 0.02, 0),
        TensorData::I8(Lcg::new(2).i8s(3 * 128 * 128, -128, 127)),
    )
    .unwrap();
    let start = Instant::now();
    let out = interp.run("forward", std::slice::from_ref(&image)).unwrap();
    let elapsed = start.elapsed();
    eprintln!(
        "MobileNetV2 int8 128x128: {} ops in {elapsed:?}",
        m.functions[0].num_ops()
    );
    assert_eq!(out[0].shape(), &[1, 1000]);
    let logits = out[0].as_i8().unwrap();
    assert!(logits.iter().any(|&v| v != logits[0]), "constant logits");
    // Deterministic.
    assert_eq!(interp.run("forward", &[image]).unwrap(), out);
    if !cfg!(debug_assertions) {
        assert!(elapsed.as_secs_f64() < 1.0, "took {elapsed:?}");
    }
}
