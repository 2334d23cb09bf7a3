//! Writes the seed corpora of the fuzz targets (`fuzz/`) into `fuzz/seeds/<target>/` (small
//! files, kept in git): the IR files of `tests/ir` and `examples/ir`, the zoo's tiny models as
//! IR text, handmade ONNX models and `.npy` arrays.
//!
//! With `--shared`, also copies the ONNX models of `../shared/models` into the run-time corpora
//! `fuzz/corpus/{import_onnx,front_pipeline}/` (not kept in git).
//!
//! Run from the workspace root: `cargo run --release --example fuzz_seeds [-- --shared]`.

use mite::data::{NpyArray, NpyData};
use mite::ir::text::{print_module, PrintOptions};
use mite::onnx::{DataType, Graph, Node, OnnxModel, Tensor, ValueInfo};
use std::path::Path;

fn write(dir: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir).expect("create the seed directory");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

fn values(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| scale * ((i * 7 % 11) as f32 - 5.0))
        .collect()
}

/// `[1, 3, 8, 8]` → Conv 3x3 → Relu → GlobalAveragePool → Flatten → Gemm → `[1, 4]`.
fn small_cnn(softmax: bool) -> OnnxModel {
    let mut graph = Graph::new("small_cnn")
        .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 3, 8, 8]))
        .with_initializer(
            "conv.weight",
            Tensor::from_f32(&[8, 3, 3, 3], values(216, 0.05)).unwrap(),
        )
        .with_initializer(
            "conv.bias",
            Tensor::from_f32(&[8], values(8, 0.01)).unwrap(),
        )
        .with_initializer(
            "fc.weight",
            Tensor::from_f32(&[4, 8], values(32, 0.1)).unwrap(),
        )
        .with_initializer("fc.bias", Tensor::from_f32(&[4], values(4, 0.01)).unwrap())
        .with_node(
            Node::new("Conv", ["x", "conv.weight", "conv.bias"], ["c"])
                .with_name("conv")
                .with_attr("pads", vec![1i64, 1, 1, 1])
                .with_attr("strides", vec![2i64, 2]),
        )
        .with_node(Node::new("Relu", ["c"], ["r"]).with_name("relu"))
        .with_node(Node::new("GlobalAveragePool", ["r"], ["g"]).with_name("gap"))
        .with_node(Node::new("Flatten", ["g"], ["f"]).with_name("flatten"))
        .with_node(
            Node::new("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"])
                .with_name("fc")
                .with_attr("transB", 1i64),
        );
    let out = if softmax {
        graph = graph.with_node(Node::new("Softmax", ["logits"], ["p"]).with_name("softmax"));
        "p"
    } else {
        "logits"
    };
    OnnxModel::new(graph.with_output(ValueInfo::tensor(out, DataType::F32, &[1, 4])))
}

/// `[1, 4]` → QuantizeLinear → DequantizeLinear → MatMul → Add → `[1, 2]`.
fn qdq_mlp() -> OnnxModel {
    OnnxModel::new(
        Graph::new("qdq_mlp")
            .with_input(ValueInfo::tensor("x", DataType::F32, &[1, 4]))
            .with_initializer("s", Tensor::from_f32(&[], vec![0.05]).unwrap())
            .with_initializer(
                "z",
                Tensor::new(vec![], mite::onnx::TensorData::I8(vec![0])).unwrap(),
            )
            .with_initializer("w", Tensor::from_f32(&[4, 2], values(8, 0.1)).unwrap())
            .with_initializer("b", Tensor::from_f32(&[2], values(2, 0.1)).unwrap())
            .with_node(Node::new("QuantizeLinear", ["x", "s", "z"], ["q"]).with_name("quant"))
            .with_node(Node::new("DequantizeLinear", ["q", "s", "z"], ["d"]).with_name("dequant"))
            .with_node(Node::new("MatMul", ["d", "w"], ["m"]).with_name("matmul"))
            .with_node(Node::new("Add", ["m", "b"], ["y"]).with_name("add"))
            .with_output(ValueInfo::tensor("y", DataType::F32, &[1, 2])),
    )
}

fn npy_seeds() -> Vec<(&'static str, NpyArray)> {
    vec![
        (
            "u8_images.npy",
            NpyArray {
                shape: vec![2, 3, 2, 2],
                data: NpyData::U8((0..24).collect()),
            },
        ),
        (
            "u16_labels.npy",
            NpyArray {
                shape: vec![3],
                data: NpyData::U16(vec![0, 9, 999]),
            },
        ),
        (
            "i64.npy",
            NpyArray {
                shape: vec![2, 2],
                data: NpyData::I64(vec![-1, 0, 1, i64::MAX]),
            },
        ),
        (
            "f32.npy",
            NpyArray {
                shape: vec![2, 3],
                data: NpyData::F32(values(6, 0.5)),
            },
        ),
        (
            "f64_scalar.npy",
            NpyArray {
                shape: vec![],
                data: NpyData::F64(vec![3.5]),
            },
        ),
        (
            "i8_empty.npy",
            NpyArray {
                shape: vec![0, 4],
                data: NpyData::I8(vec![]),
            },
        ),
    ]
}

fn main() {
    let full = PrintOptions {
        elide_above: None,
        ..PrintOptions::default()
    };
    for dir in ["tests/ir", "examples/ir"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "mir") {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let text = std::fs::read(&path).expect("read an IR file");
                write("fuzz/seeds/parse_mir", &name, &text);
                if text.starts_with(b"module") {
                    write("fuzz/seeds/front_pipeline", &name, &text);
                }
            }
        }
    }
    for (name, module) in [
        ("tiny_int8_cnn.mir", mite::zoo::tiny_int8_cnn()),
        ("tiny_float_cnn.mir", mite::zoo::tiny_float_cnn()),
        ("tiny_int8_mlp.mir", mite::zoo::tiny_int8_mlp()),
    ] {
        let text = print_module(&module, &full);
        write("fuzz/seeds/parse_mir", name, text.as_bytes());
        write("fuzz/seeds/front_pipeline", name, text.as_bytes());
    }
    for (name, model) in [
        ("small_cnn.onnx", small_cnn(false)),
        ("small_cnn_softmax.onnx", small_cnn(true)),
        ("qdq_mlp.onnx", qdq_mlp()),
    ] {
        let bytes = model.to_bytes();
        write("fuzz/seeds/import_onnx", name, &bytes);
        write("fuzz/seeds/front_pipeline", name, &bytes);
    }
    for (name, array) in npy_seeds() {
        write("fuzz/seeds/read_npy", name, &array.to_bytes());
    }
    if std::env::args().any(|a| a == "--shared") {
        if let Ok(entries) = std::fs::read_dir("../shared/models") {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "onnx") {
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    let bytes = std::fs::read(&path).expect("read a shared model");
                    write("fuzz/corpus/import_onnx", &name, &bytes);
                    write("fuzz/corpus/front_pipeline", &name, &bytes);
                }
            }
        }
    }
}
