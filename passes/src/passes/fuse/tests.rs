//! Unit tests of the rules (one or more each, with their guards), the extraction cost and the
//! pass on small functions.

use super::rules::{all_rules, NodeRule, Term};
use super::*;
use crate::testutil::*;
use mite_ir::{Builder, ElemType, Op, Quant, TensorType};

fn rule(name: &str) -> NodeRule {
    all_rules()
        .into_iter()
        .find(|r| r.name == name)
        .expect("the rule exists")
}

/// The proposals of rule `name` for the class of `v` in the e-graph of `m`'s function.
fn proposals(m: &Module, name: &str, v: Value) -> (Entered, Vec<Term>) {
    let entered = enter(&m.functions[0]);
    let class = entered.class_of[&v];
    let terms = rule(name).proposals(&entered.graph, class, usize::MAX);
    (entered, terms)
}

fn reshape(shape: &[i64]) -> Op {
    Op::Reshape {
        shape: shape.to_vec(),
    }
}

#[test]
fn reshape_of_reshape_collapses_to_the_outer_shape() {
    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "f");
    let x = b.arg("x", TensorType::f32(&[2, 3, 4]));
    let r1 = b.op(reshape(&[6, 4]), &[x]).unwrap();
    let r2 = b.op(Op::Flatten { axis: 0 }, &[r1]).unwrap();
    let r3 = b.op(reshape(&[-1, 12]), &[r2]).unwrap();
    b.ret(&[r3]);
    let (e, terms) = proposals(&m, "reshape-of-reshape", r3);
    let Some(Term::Node { op, ty, args }) = terms.first() else {
        panic!("no proposal: {terms:?}");
    };
    assert_eq!(
        *op,
        reshape(&[2, 12]),
        "the -1 is resolved from the result type"
    );
    assert_eq!(ty.shape.as_slice(), [2, 12]);
    assert_eq!(args, &[Term::Class(e.class_of[&r1])]);
    // A reshape of a non-view proposes nothing.
    let (_, none) = proposals(&m, "reshape-of-reshape", r1);
    assert!(none.is_empty());
    let stats = run_ok(&mut Fuse::default(), &mut m);
    assert_eq!(op_names(&m), ["nn.reshape"]);
    assert!(stats.get("rule.reshape-of-reshape") > 0);
    let f = &m.functions[0];
    assert_eq!(f.op(f.layout()[0]).operands.as_slice(), &[x]);
    assert_idempotent(&mut Fuse::default(), &m);
}

#[test]
fn flatten_is_a_reshape() {
    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "f");
    let x = b.arg("x", TensorType::f32(&[2, 3, 4]));
    let f = b.op(Op::Flatten { axis: 1 }, &[x]).unwrap();
    let r = b.op(Op::Relu {}, &[x]).unwrap();
    b.ret(&[f, r]);
    let (_, terms) = proposals(&m, "flatten-as-reshape", f);
    assert!(matches!(&terms[..], [Term::Node { op, .. }] if *op == reshape(&[2, 12])));
    let (_, none) = proposals(&m, "flatten-as-reshape", r);
    assert!(none.is_empty());
}

#[test]
fn reshape_to_the_same_type_is_the_operand() {
    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "f");
    let x = b.arg("x", TensorType::f32(&[2, 3]));
    let same = b.op(reshape(&[2, 3]), &[x]).unwrap();
    let other = b.op(reshape(&[3, 2]), &[x]).unwrap();
    b.ret(&[same, other]);
    let (e, terms) = proposals(&m, "reshape-identity", same);
    assert_eq!(terms, [Term::Class(e.class_of[&x])]);
    let (_, none) = proposals(&m, "reshape-identity", other);
    assert!(none.is_empty(), "a different shape is not the identity");
}

#[test]
fn requantize_to_the_same_quantization_is_the_operand() {
    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "f");
    let q = Quant::per_tensor(0.1, 3);
    let x = b.arg(
        "x",
        TensorType::new(&[4], ElemType::I8).with_quant(Some(q.clone())),
    );
    let same = b.op_quant(Op::Requantize {}, &[x], q).unwrap();
    let other = b
        .op_quant(Op::Requantize {}, &[x], Quant::per_tensor(0.2, 3))
        .unwrap();
    b.ret(&[same, other]);
    let (e, terms) = proposals(&m, "requantize-identity", same);
    assert_eq!(terms, [Term::Class(e.class_of[&x])]);
    let (_, none) = proposals(&m, "requantize-identity", other);
    assert!(none.is_empty(), "another scale is a real requantization");
}

#[test]
fn clip_of_clip_intersects_the_bounds() {
    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "f");
    let x = b.arg("x", TensorType::f32(&[4]));
    let inner = b.op(Op::Clip { min: 0.0, max: 6.0 }, &[x]).unwrap();
    let outer = b
        .op(
            Op::Clip {
                min: -1.0,
                max: 4.0,
            },
            &[inner],
        )
        .unwrap();
    let apart = b.op(Op::Clip { min: 7.0, max: 8.0 }, &[inner]).unwrap();
    let signs = b
        .op(
            Op::Clip {
                min: -0.0,
                max: 6.0,
            },
            &[inner],
        )
        .unwrap();
    b.ret(&[outer, apart, signs]);
    let (_, terms) = proposals(&m, "clip-of-clip", outer);
    assert!(
        matches!(&terms[..], [Term::Node { op: Op::Clip { min, max }, .. }] if *min == 0.0 && *max == 4.0),
        "{terms:?}"
    );
    let (_, none) = proposals(&m, "clip-of-clip", apart);
    assert!(
        none.is_empty(),
        "disjoint ranges do not compose into one clip"
    );
    let (_, none) = proposals(&m, "clip-of-clip", signs);
    assert!(none.is_empty(), "-0.0 against 0.0 is left alone");
}

fn conv_input(input_shape: &[i64]) -> Op {
    Op::ConvInputGrad {
        strides: vec![1, 1],
        pads: vec![1, 1, 1, 1],
        dilations: vec![1, 1],
        groups: 1,
        input_shape: input_shape.to_vec(),
    }
}

/// `apply_mask(conv2d_input(dy, w), mask(x))`, with the conv gradient also returned when `shared`.
fn masked_conv_input(shared: bool) -> (Module, Value, Value) {
    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "f");
    let x = b.arg("x", TensorType::f32(&[1, 3, 5, 5]));
    let w = b.arg("w", TensorType::f32(&[4, 3, 3, 3]));
    let dy = b.arg("dy", TensorType::f32(&[1, 4, 5, 5]));
    let mask = b.op(Op::Mask { min: 0.0, max: 6.0 }, &[x]).unwrap();
    let dx = b.op(conv_input(&[1, 3, 5, 5]), &[dy, w]).unwrap();
    let masked = b.op(Op::ApplyMask {}, &[dx, mask]).unwrap();
    let outs = if shared {
        vec![masked, dx]
    } else {
        vec![masked]
    };
    b.ret(&outs);
    (m, masked, dx)
}

#[test]
fn the_mask_folds_into_the_transposed_conv() {
    let (mut m, masked, dx) = masked_conv_input(false);
    let (_, terms) = proposals(&m, "mask-into-conv-input", masked);
    assert!(
        matches!(&terms[..], [Term::Node { op: Op::ConvInputGradMasked { .. }, args, .. }] if args.len() == 3),
        "{terms:?}"
    );
    let (_, none) = proposals(&m, "mask-into-conv-input", dx);
    assert!(none.is_empty());
    let stats = run_ok(&mut Fuse::default(), &mut m);
    assert_eq!(op_names(&m), ["grad.mask", "grad.conv2d_input_masked"]);
    assert_eq!(stats.get("rule.mask-into-conv-input"), 1);
    assert_eq!(stats.get("roots-rewritten"), 1);
    // 300 bytes of input gradient and 10 of mask (75 bits) before: the unmasked gradient is gone.
    assert_eq!(stats.get("bytes-before"), 2 * 300 + 10);
    assert_eq!(stats.get("bytes-after"), 300 + 10);
    assert_eq!(stats.get("stop.saturated"), 1);
}

#[test]
fn a_shared_unmasked_gradient_is_not_duplicated() {
    // The unmasked gradient is needed anyway: fusing would compute the conv twice for no byte.
    let (mut m, _, _) = masked_conv_input(true);
    let stats = run_ok(&mut Fuse::default(), &mut m);
    assert_eq!(
        op_names(&m),
        ["grad.mask", "grad.conv2d_input", "grad.apply_mask"]
    );
    assert_eq!(stats.get("roots-rewritten"), 0);
}

#[test]
fn a_mask_of_another_shape_is_not_folded() {
    let mut m = Module::new("m");
    let mut b = Builder::new(&mut m, "f");
    let dy = b.arg("dy", TensorType::f32(&[1, 4, 5, 5]));
    let w = b.arg("w", TensorType::f32(&[4, 3, 3, 3]));
    let dx = b.op(conv_input(&[1, 3, 5, 5]), &[dy, w]).unwrap();
    let r = b.op(Op::Relu {}, &[dx]).unwrap();
    b.ret(&[r]);
    let (_, none) = proposals(&m, "mask-into-conv-input", r);
    assert!(none.is_empty(), "only grad.apply_mask is folded");
}

#[test]
fn options_parse_and_unknown_ones_are_named() {
    let mut f = Fuse::default();
    f.set_option("node-limit", "5").unwrap();
    f.set_option("time-limit-ms", "7").unwrap();
    f.set_option("iter-limit", "2").unwrap();
    assert_eq!(f.node_limit, 5);
    assert_eq!(f.iter_limit, 2);
    assert_eq!(f.time_limit, Duration::from_millis(7));
    let e = f.set_option("nodes", "5").unwrap_err();
    assert!(e.to_string().contains("node-limit"), "{e}");
    assert!(f.set_option("node-limit", "many").is_err());
}
