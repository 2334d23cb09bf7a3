//! Property tests: the interpreter agrees with direct kernel calls on random inputs.

mod common;

use mite_interp::exec::{InterpOptions, Interpreter, Tensor};
use mite_interp::quant::{self, ActRange, OutputStage, Requantizer, Rounding};
use mite_ir::{Builder, ElemType, Module, Op, Quant, TensorData, TensorType};
use proptest::prelude::*;

fn rounding() -> impl Strategy<Value = Rounding> {
    prop_oneof![
        Just(Rounding::Double),
        Just(Rounding::Single),
        Just(Rounding::FloatScale)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `q.requantize` is `clamp(requant(x − z_in) + z_out)` with the chosen rounding.
    #[test]
    fn requantize_matches_the_output_stage(
        x in prop::collection::vec(any::<i8>(), 1..40),
        s_in in 0.001f32..1.0,
        s_out in 0.001f32..1.0,
        z_in in -128i32..=127,
        z_out in -128i32..=127,
        rounding in rounding(),
    ) {
        let ty = common::qi8(&[x.len()], s_in, z_in);
        let mut m = Module::new("t");
        let mut b = Builder::new(&mut m, "forward");
        let v = b.arg("x", ty.clone());
        let y = b.op_quant(Op::Requantize {}, &[v], Quant::per_tensor(s_out, z_out)).unwrap();
        b.ret(&[y]);
        let interp = Interpreter::with_options(&m, InterpOptions { rounding }).unwrap();
        let out = interp
            .run("forward", &[Tensor::new(ty, TensorData::I8(x.clone())).unwrap()])
            .unwrap();
        let stage = OutputStage {
            requantizer: Requantizer::per_tensor(f64::from(s_in) / f64::from(s_out), rounding)
                .unwrap(),
            zero_point: z_out as i8,
            range: ActRange::FULL,
        };
        let want: Vec<i8> = x.iter().map(|&q| stage.finish(i32::from(q) - z_in, 0)).collect();
        prop_assert_eq!(out[0].as_i8().unwrap(), &want[..]);
    }

    /// `q.quantize` is ONNX `QuantizeLinear` ([`quant::quantize`]).
    #[test]
    fn quantize_matches_the_kernel(
        x in prop::collection::vec(-300f32..300.0, 1..40),
        scale in 0.01f32..4.0,
        zero_point in -128i32..=127,
    ) {
        let ty = TensorType::f32(&[x.len()]);
        let mut m = Module::new("t");
        let mut b = Builder::new(&mut m, "forward");
        let v = b.arg("x", ty);
        let y = b.op_quant(Op::Quantize {}, &[v], Quant::per_tensor(scale, zero_point)).unwrap();
        b.ret(&[y]);
        let out = common::run1(&m, vec![Tensor::f32(&[x.len()], x.clone()).unwrap()]);
        let want = quant::quantize(&x, scale, zero_point as i8).unwrap();
        prop_assert_eq!(out.as_i8().unwrap(), &want[..]);
    }

    /// Transposing by a permutation and then by its inverse gives the input back (any element
    /// type), and reshaping in between does not change the elements.
    #[test]
    fn transpose_round_trip(
        dims in prop::collection::vec(1usize..4, 1..5),
        seed in any::<u64>(),
        rotate in 0usize..4,
    ) {
        let rank = dims.len();
        let perm: Vec<i64> = (0..rank).map(|i| ((i + rotate) % rank) as i64).collect();
        let mut inverse = vec![0i64; rank];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p as usize] = i as i64;
        }
        let n: usize = dims.iter().product();
        let data = common::Lcg::new(seed).i32s(n, -1000, 1000);
        let ty = TensorType::new(&dims, ElemType::I32);
        let mut m = Module::new("t");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("x", ty.clone());
        let t = b.op(Op::Transpose { perm }, &[x]).unwrap();
        let f = b.op(Op::Reshape { shape: vec![-1] }, &[t]).unwrap();
        let t_shape: Vec<i64> = b.ty(t).shape.iter().map(|&d| d as i64).collect();
        let r = b.op(Op::Reshape { shape: t_shape }, &[f]).unwrap();
        let back = b.op(Op::Transpose { perm: inverse }, &[r]).unwrap();
        b.ret(&[back]);
        let out = common::run1(&m, vec![Tensor::new(ty, TensorData::I32(data.clone())).unwrap()]);
        prop_assert_eq!(out.as_i32().unwrap(), &data[..]);
    }
}
