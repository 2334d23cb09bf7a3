//! Tests of the lowering: the zoo models' training steps lower, verify and account their memory.

use super::*;
use crate::passes::{build_training_step, TrainConfig};
use crate::scheme::Scheme;
use mite_ir::program::print_program;

fn lowered(mut m: Module, scheme: &str) -> Program {
    Scheme::parse(scheme).unwrap().apply(&mut m).unwrap();
    build_training_step(&mut m, &TrainConfig::default()).unwrap();
    lower_module(&m, &LowerOptions::default()).unwrap()
}

#[test]
fn zoo_models_lower_and_verify() {
    for (m, scheme) in [
        (mite_zoo::mcunet_5fps(), "last:6"),
        (mite_zoo::mcunet_5fps(), "paper:99kb"),
    ] {
        let p = lowered(m, scheme);
        let s = p.storage_bytes();
        assert!(s.arena > 0 && s.param > 0, "{s:?}");
        assert_eq!(p.entries.len(), 2);
        let text = print_program(&p);
        assert!(text.contains("entry @train_step"), "{text}");
    }
}
