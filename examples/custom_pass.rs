//! A user's own pass, written outside mite's crates, registered next to the built-in passes and
//! run in a textual pipeline.
//!
//! The pass fuses `nn.conv2d` followed by `nn.clip` (ReLU6 and friends) into one op of the user's
//! own dialect, `acme.conv2d_clip`, as a backend with a fused kernel would want. It takes an
//! option (`max-clip`: only fuse clips whose upper bound is at most this) and reports statistics.
//!
//! Run it: `cargo run --example custom_pass`. Its output is snapshot-tested (`cargo test
//! --example custom_pass`).

use mite::ir::analysis::UseMap;
use mite::ir::text::{parse_module, print_module, PrintOptions};
use mite::ir::{CustomOp, Module, Op, OpId, ValueDef};
use mite::passes::{Pass, PassError, PassManager, PassRegistry, Statistics};

/// Fuses `nn.clip(nn.conv2d(..))` into `acme.conv2d_clip` when the conv has no other use.
struct FuseConvClip {
    max_clip: f32,
}

impl Default for FuseConvClip {
    fn default() -> Self {
        FuseConvClip {
            max_clip: f32::INFINITY,
        }
    }
}

impl Pass for FuseConvClip {
    fn name(&self) -> &str {
        "acme-fuse-conv-clip"
    }

    fn description(&self) -> &str {
        "fuse nn.conv2d + nn.clip into acme.conv2d_clip"
    }

    fn set_option(&mut self, key: &str, value: &str) -> Result<(), PassError> {
        match key {
            "max-clip" => {
                self.max_clip = value.parse().map_err(|_| {
                    PassError::invalid_value(self.name(), key, value, "expected a number")
                })?;
                Ok(())
            }
            _ => Err(PassError::unknown_option(self.name(), key, &["max-clip"])),
        }
    }

    fn run(&mut self, module: &mut Module, stats: &mut Statistics) -> Result<bool, PassError> {
        let mut changed = false;
        for func in &mut module.functions {
            let uses = UseMap::compute(func);
            // Collect the (conv, clip) pairs first, then rewrite: handles stay valid because
            // erasing only unlinks ops.
            let mut pairs: Vec<(OpId, OpId)> = Vec::new();
            for &clip in func.layout() {
                let Op::Clip { max, .. } = func.op(clip).op else {
                    continue;
                };
                let input = func.op(clip).operands[0];
                let ValueDef::Result(conv, 0) = func.value(input).def else {
                    continue;
                };
                if !matches!(func.op(conv).op, Op::Conv2d { .. }) {
                    continue;
                }
                if max > self.max_clip {
                    stats.increment("skipped-clip-too-high");
                    continue;
                }
                if uses.num_uses(input) != 1 {
                    stats.increment("skipped-conv-has-other-uses");
                    continue;
                }
                pairs.push((conv, clip));
            }
            for (conv, clip) in pairs {
                let conv_data = func.op(conv).clone();
                let clip_data = func.op(clip).clone();
                let mut attrs = conv_data.op.attrs();
                attrs.extend(clip_data.op.attrs());
                let fused = Op::Custom(CustomOp {
                    name: "acme.conv2d_clip".into(),
                    attrs,
                });
                let ty = func.ty(clip_data.result()).clone();
                let at = func.position(clip).expect("clip is linked");
                let loc = conv_data.loc.clone();
                let new = func.insert_op(at, fused, &conv_data.operands, vec![ty], loc);
                let new_result = func.op(new).result();
                func.replace_all_uses(clip_data.result(), new_result);
                func.erase_op(clip);
                func.erase_op(conv);
                stats.increment("fused");
                changed = true;
            }
        }
        Ok(changed)
    }
}

const INPUT: &str = r#"
module @mbv2_block {
  param @pw1.weight : tensor<24x8x1x1xf32> frozen
  param @dw.weight : tensor<24x1x3x3xf32> frozen
  param @pw2.weight : tensor<16x24x1x1xf32> trainable

  func @forward(%x: tensor<1x8x16x16xf32>) -> (tensor<1x16x8x8xf32>, tensor<1x24x8x8xf32>) {
    %0 = param @pw1.weight : tensor<24x8x1x1xf32>
    %1 = nn.conv2d %x, %0 : tensor<1x24x16x16xf32> loc("pointwise1")
    %2 = nn.clip %1 {min = 0.0, max = 6.0} : tensor<1x24x16x16xf32>
    %3 = param @dw.weight : tensor<24x1x3x3xf32>
    %4 = nn.conv2d %2, %3 {strides = [2, 2], pads = [1, 1, 1, 1], groups = 24} : tensor<1x24x8x8xf32> loc("depthwise")
    %5 = nn.clip %4 {min = -inf, max = inf} : tensor<1x24x8x8xf32>
    %6 = nn.clip %5 {min = 0.0, max = 6.0} : tensor<1x24x8x8xf32>
    %7 = param @pw2.weight : tensor<16x24x1x1xf32>
    %8 = nn.conv2d %6, %7 : tensor<1x16x8x8xf32> loc("pointwise2")
    %9 = nn.clip %8 {min = 0.0, max = 20.0} : tensor<1x16x8x8xf32>
    return %9, %4
  }
}
"#;

/// Runs the example pipeline and returns the printed IR followed by the statistics.
fn run() -> Result<String, Box<dyn std::error::Error>> {
    let mut registry = PassRegistry::with_builtin();
    registry.register_default::<FuseConvClip>()?;
    let mut module = parse_module(INPUT)?;
    let mut manager = PassManager::from_pipeline(
        &registry,
        "canonicalize,acme-fuse-conv-clip{max-clip=6.0},dce",
    )?;
    manager.options.verify_each = true;
    let report = manager.run(&mut module)?;
    let mut out = print_module(&module, &PrintOptions::default());
    for (name, n) in report.statistics().iter() {
        out.push_str(&format!("// {name} = {n}\n"));
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", run()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn custom_pass_output() {
        insta::assert_snapshot!(super::run().unwrap());
    }
}
