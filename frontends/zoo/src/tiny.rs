//! Small models for tests of later phases (passes, kernels, training).

use crate::config::TINY;
use crate::net::{build, ActQuant, BuildOptions, LayerBuilder, Precision, DEFAULT_SEED};
use mite_ir::Module;

fn options(precision: Precision) -> BuildOptions {
    BuildOptions {
        precision,
        seed: DEFAULT_SEED,
        trainable: true,
    }
}

/// A tiny int8 CNN of the zoo's skeleton ([`TINY`]): `forward(%input: tensor<1x3x32x32xf32>)
/// -> tensor<1x10xf32>` with `first_conv` (3→8, stride 2), block 0 (depthwise + projection to
/// 4), a residual block (`blocks.1.add`), a stride-2 block with a 5×5 depthwise, pool and a
/// 10-class classifier; 10 `q.conv2d`.
pub fn tiny_int8_cnn() -> Module {
    build(&TINY, &options(Precision::Int8)).expect("the tiny configuration builds")
}

/// The f32 variant of [`tiny_int8_cnn`] (`nn.conv2d`, `nn.clip`, `nn.add`, ...), with the real
/// values of its weights.
pub fn tiny_float_cnn() -> Module {
    build(&TINY, &options(Precision::F32)).expect("the tiny configuration builds")
}

/// A tiny int8 two-layer perceptron: `forward(%input: tensor<1x16xf32>) -> tensor<1x4xf32>` is
/// `q.quantize`, `q.linear` `fc1` (16→8, ReLU6 range), `q.linear` `fc2` (8→4), `q.dequantize`.
pub fn tiny_int8_mlp() -> Module {
    tiny_mlp(Precision::Int8)
}

fn tiny_mlp(precision: Precision) -> Module {
    let mut module = Module::new("tiny_mlp");
    let mut net = LayerBuilder::new(&mut module, options(precision));
    let build = |net: &mut LayerBuilder<'_>| -> Result<(), mite_ir::BuildError> {
        let x = net.input(&[1, 16])?;
        let h = net.linear(x, "fc1", 8, ActQuant::RELU6)?;
        let y = net.linear(h, "fc2", 4, ActQuant::LOGITS)?;
        let y = net.dequantize(y)?;
        net.b.ret(&[y]);
        Ok(())
    };
    build(&mut net).expect("the tiny MLP builds");
    module
}
