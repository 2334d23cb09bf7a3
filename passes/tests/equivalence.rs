//! Property: canonicalize, cse and dce keep what a function computes.
//!
//! Random chains of shape and activation ops over a constant are evaluated by `constant-fold`
//! before and after `canonicalize,cse,dce`; the results must agree bit for bit.

use mite_ir::{Builder, Module, Op, TensorData, TensorType, Value};
use mite_passes::{PassManager, PassRegistry};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Relu,
    Clip(f32, f32),
    Transpose,
    ReshapeFlat,
    ReshapeBack,
    Flatten,
    ZeroPad,
    Concat1,
    /// The same op applied to the same operand again (a common subexpression), then added.
    Doubled,
}

fn step() -> impl Strategy<Value = Step> {
    let bound = prop::sample::select(vec![f32::NEG_INFINITY, -1.0, 0.0, 0.5, 2.0, f32::INFINITY]);
    prop_oneof![
        Just(Step::Relu),
        (bound.clone(), bound).prop_map(|(a, b)| Step::Clip(a.min(b), a.max(b))),
        Just(Step::Transpose),
        Just(Step::ReshapeFlat),
        Just(Step::ReshapeBack),
        Just(Step::Flatten),
        Just(Step::ZeroPad),
        Just(Step::Concat1),
        Just(Step::Doubled),
    ]
}

fn build(values: &[f32], steps: &[Step]) -> Module {
    let mut m = Module::new("p");
    let mut b = Builder::new(&mut m, "f");
    let mut v: Value = b
        .constant(
            "x",
            TensorType::f32(&[2, 3]),
            TensorData::F32(values.to_vec()),
        )
        .unwrap();
    for s in steps {
        let rank = b.ty(v).rank();
        let op = match s {
            Step::Relu => Op::Relu {},
            Step::Clip(min, max) => Op::Clip {
                min: *min,
                max: *max,
            },
            Step::Transpose => Op::Transpose {
                perm: (0..rank as i64).rev().collect(),
            },
            Step::ReshapeFlat => Op::Reshape { shape: vec![-1] },
            Step::ReshapeBack => Op::Reshape { shape: vec![2, -1] },
            Step::Flatten => Op::Flatten { axis: 1 },
            Step::ZeroPad => Op::Pad {
                pads: vec![0; 2 * rank],
                value: 0.0,
            },
            Step::Concat1 => Op::Concat { axis: 0 },
            Step::Doubled => {
                let a = b.op(Op::Relu {}, &[v]).unwrap();
                let c = b.op(Op::Relu {}, &[v]).unwrap();
                v = b.op(Op::Add {}, &[a, c]).unwrap();
                continue;
            }
        };
        // Reshapes to `[2, -1]` need an even element count, which every step keeps (6 or 12).
        v = b.op(op, &[v]).unwrap();
    }
    b.ret(&[v]);
    m
}

/// Runs `pipeline`, then returns the output's type and folded data as bits.
fn evaluate(mut m: Module, pipeline: &str) -> (TensorType, Vec<u32>) {
    let registry = PassRegistry::with_builtin();
    let mut pm = PassManager::from_pipeline(&registry, pipeline).unwrap();
    pm.run_with_sink(&mut m, &mut std::io::sink()).unwrap();
    let f = &m.functions[0];
    let out = f.outputs()[0];
    let mite_ir::ValueDef::Result(id, _) = f.value(out).def else {
        panic!("the output is an op result")
    };
    let global = f
        .op(id)
        .op
        .global()
        .expect("the output is folded")
        .to_string();
    let Some(TensorData::F32(data)) = m.data(&global) else {
        panic!("f32 data")
    };
    (
        f.ty(out).clone(),
        data.iter().map(|x| x.to_bits()).collect(),
    )
}

proptest! {
    #[test]
    fn simplifications_keep_results(
        values in prop::collection::vec(
            prop::sample::select(vec![-3.0f32, -0.5, -0.0, 0.0, 0.25, 1.0, 7.0, f32::NAN]),
            6,
        ),
        steps in prop::collection::vec(step(), 0..8),
    ) {
        let m = build(&values, &steps);
        let reference = evaluate(m.clone(), "constant-fold");
        let simplified = evaluate(m, "canonicalize,cse,dce,constant-fold");
        prop_assert_eq!(reference, simplified);
    }
}
