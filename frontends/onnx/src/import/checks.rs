//! Checks of an ONNX graph made before conversion, so that a malformed or hostile file is
//! refused with the node or tensor named instead of being half-converted: declared input sizes
//! against [`mite_ir::limits::max_tensor_elements`], non-finite float weights, duplicate node
//! names and nodes with more inputs than their operator takes.

use super::ImportErrorKind;
use crate::{Dim, Graph, TensorData};
use std::collections::HashSet;

/// The most inputs each standard operator takes (ONNX operator specifications); `None` for
/// variadic operators.
fn max_inputs(op_type: &str) -> Option<usize> {
    Some(match op_type {
        "Constant" => 0,
        "AveragePool" | "Flatten" | "GlobalAveragePool" | "Identity" | "LogSoftmax" | "MaxPool"
        | "Relu" | "Softmax" | "Transpose" => 1,
        "Add" | "MatMul" | "Mul" | "Reshape" => 2,
        "Clip" | "Conv" | "DequantizeLinear" | "Dropout" | "Gemm" | "QuantizeLinear" => 3,
        "Pad" => 4,
        "BatchNormalization" => 5,
        "QLinearMatMul" => 8,
        "QLinearConv" => 9,
        _ => return None,
    })
}

/// Runs every check; `batch_size` replaces a symbolic first input dimension, as the importer
/// does.
pub(super) fn check_graph(graph: &Graph, batch_size: Option<usize>) -> Result<(), ImportErrorKind> {
    check_input_sizes(graph, batch_size)?;
    check_initializers(graph)?;
    check_nodes(graph)
}

fn check_input_sizes(graph: &Graph, batch_size: Option<usize>) -> Result<(), ImportErrorKind> {
    for input in graph.runtime_inputs() {
        let Some(shape) = &input.shape else { continue };
        let dims: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Fixed(n) => *n,
                _ if i == 0 => batch_size.unwrap_or(1),
                _ => 1,
            })
            .collect();
        if let Err(e) = mite_ir::limits::check_elements(&dims) {
            return Err(ImportErrorKind::Graph(format!(
                "input `{}` of shape {dims:?}: {e}",
                input.name
            )));
        }
    }
    Ok(())
}

fn check_initializers(graph: &Graph) -> Result<(), ImportErrorKind> {
    for (name, tensor) in &graph.initializers {
        let bad = match tensor.data() {
            TensorData::F32(v) => v
                .iter()
                .position(|x| !x.is_finite())
                .map(|i| (i, v[i] as f64)),
            TensorData::F64(v) => v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i])),
            _ => None,
        };
        if let Some((i, value)) = bad {
            return Err(ImportErrorKind::Graph(format!(
                "initializer `{name}` holds a non-finite value ({value} at element {i}); the \
                 model's weights must be finite"
            )));
        }
    }
    Ok(())
}

fn check_nodes(graph: &Graph) -> Result<(), ImportErrorKind> {
    let mut names = HashSet::new();
    for (index, node) in graph.nodes.iter().enumerate() {
        let label = if node.name.is_empty() {
            format!("#{index}")
        } else {
            node.name.clone()
        };
        if !node.name.is_empty() && !names.insert(node.name.as_str()) {
            return Err(ImportErrorKind::Graph(format!(
                "two nodes are named `{}` (the second is node #{index}); node names must be unique",
                node.name
            )));
        }
        if !node.is_standard_domain() {
            continue;
        }
        if let Some(max) = max_inputs(&node.op_type) {
            if node.inputs.len() > max {
                return Err(ImportErrorKind::Node {
                    node: label,
                    op_type: node.op_type.clone(),
                    message: format!(
                        "{} inputs given, but {} takes at most {max}",
                        node.inputs.len(),
                        node.op_type
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataType, Node, Tensor, ValueInfo};

    fn graph() -> Graph {
        Graph::new("g")
            .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 4]))
            .with_initializer("w", Tensor::from_f32(&[1, 4], vec![1.0; 4]).unwrap())
            .with_node(Node::new("Add", ["x", "w"], ["y"]).with_name("add"))
            .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 4]))
    }

    #[test]
    fn a_sound_graph_passes() {
        assert!(check_graph(&graph(), Some(1)).is_ok());
    }

    #[test]
    fn huge_inputs_are_refused() {
        let g = graph().with_input(ValueInfo::tensor(
            "big",
            DataType::F32,
            &[1, 3, 16000, 16000],
        ));
        let e = check_graph(&g, Some(1)).unwrap_err().to_string();
        assert!(
            e.contains("input `big`") && e.contains("exceed the limit"),
            "{e}"
        );
    }

    #[test]
    fn non_finite_weights_are_named() {
        let g =
            graph().with_initializer("bad", Tensor::from_f32(&[2], vec![0.0, f32::NAN]).unwrap());
        let e = check_graph(&g, Some(1)).unwrap_err().to_string();
        assert!(
            e.contains("initializer `bad`") && e.contains("element 1"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_names_and_extra_inputs_are_refused() {
        let g = graph().with_node(Node::new("Relu", ["y"], ["z"]).with_name("add"));
        let e = check_graph(&g, Some(1)).unwrap_err().to_string();
        assert!(e.contains("two nodes are named `add`"), "{e}");
        let g = graph()
            .with_node(Node::new("Conv", ["x", "w", "w", "w", "w", "w"], ["c"]).with_name("conv"));
        let e = check_graph(&g, Some(1)).unwrap_err().to_string();
        assert!(
            e.contains("6 inputs given, but Conv takes at most 3"),
            "{e}"
        );
    }
}
