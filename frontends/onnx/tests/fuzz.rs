//! Mutated and truncated files never panic the decoder, and errors name the source.

use mite_onnx::{DataType, Graph, Node, OnnxModel, Tensor, TensorData, ValueInfo};
use proptest::prelude::*;

/// The source name given to the decoder.
const SOURCE: &str = "fuzz-model.onnx";

/// A small QDQ convolution, encoded.
fn small_model_bytes() -> Vec<u8> {
    let weight = Tensor::new(vec![2, 1, 3, 3], TensorData::I8((-9..9).collect())).expect("weight");
    let graph = Graph::new("small")
        .with_input(ValueInfo::tensor("input", DataType::F32, &[1, 1, 4, 4]))
        .with_initializer("scale", Tensor::scalar_f32(0.5))
        .with_initializer(
            "zero",
            Tensor::new(vec![], TensorData::I8(vec![0])).expect("zero"),
        )
        .with_initializer("w", weight)
        .with_initializer("w_scale", Tensor::vector(TensorData::F32(vec![0.1, 0.2])))
        .with_initializer("w_zero", Tensor::vector(TensorData::I8(vec![0, 0])))
        .with_initializer("bias", Tensor::vector(TensorData::I32(vec![-3, 4])))
        .with_node(Node::new("QuantizeLinear", ["input", "scale", "zero"], ["q"]).with_name("q"))
        .with_node(Node::new("DequantizeLinear", ["q", "scale", "zero"], ["x"]).with_name("dq"))
        .with_node(
            Node::new("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wf"])
                .with_name("dq_w")
                .with_attr("axis", 0i64),
        )
        .with_node(
            Node::new("Conv", ["x", "wf", "bias"], ["y"])
                .with_name("conv")
                .with_attr("pads", vec![1i64, 1, 1, 1])
                .with_attr("group", 1i64)
                .with_attr("auto_pad", "NOTSET"),
        )
        .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 2, 4, 4]));
    OnnxModel::new(graph).to_bytes()
}

/// Decodes `bytes`: either a model that re-encodes stably, or an error naming the source.
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    match mite_onnx::from_bytes(bytes, SOURCE) {
        Ok(model) => {
            // Compare encodings rather than models: a flipped bit may produce a NaN.
            let encoded = model.to_bytes();
            let again = mite_onnx::from_bytes(&encoded, SOURCE)
                .map_err(|e| TestCaseError::fail(format!("re-decode failed: {e}")))?;
            prop_assert_eq!(again.to_bytes(), encoded);
        }
        Err(err) => {
            let message = err.to_string();
            prop_assert!(message.starts_with(SOURCE), "{}", message);
            prop_assert!(message.len() > SOURCE.len() + 2, "{}", message);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_bytes_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8)
    ) {
        let mut bytes = small_model_bytes();
        for (index, mask) in flips {
            let i = index.index(bytes.len());
            bytes[i] ^= mask;
        }
        check_decode(&bytes)?;
    }

    #[test]
    fn truncated_bytes_never_panic(cut in any::<prop::sample::Index>()) {
        let bytes = small_model_bytes();
        let len = cut.index(bytes.len());
        check_decode(&bytes[..len])?;
    }

    #[test]
    fn mutated_and_truncated_bytes_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = small_model_bytes();
        for (index, mask) in flips {
            let i = index.index(bytes.len());
            bytes[i] ^= mask;
        }
        let len = cut.index(bytes.len());
        check_decode(&bytes[..len])?;
    }

    #[test]
    fn random_tensors_round_trip(
        values in prop::collection::vec(-1.0e6f32..1.0e6, 0..64),
        ints in prop::collection::vec(any::<i8>(), 0..64),
        pads in prop::collection::vec(any::<i64>(), 0..8),
    ) {
        let graph = Graph::new("random")
            .with_initializer("f", Tensor::vector(TensorData::F32(values)))
            .with_initializer("i", Tensor::vector(TensorData::I8(ints)))
            .with_node(Node::new("Pad", ["f"], ["g"]).with_attr("pads", pads));
        let model = OnnxModel::new(graph);
        let decoded = mite_onnx::from_bytes(&model.to_bytes(), SOURCE);
        prop_assert_eq!(decoded.ok(), Some(model));
    }
}
