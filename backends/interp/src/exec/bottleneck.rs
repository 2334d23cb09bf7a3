//! `q.bottleneck` and `q.bottleneck_chain`: the streamed frozen inverted bottleneck, through
//! [`mite_kernels::int8::bottleneck_int8`], with the parameters the three `q.conv2d` it replaces
//! would have (the intermediates' quantization comes from the op's attributes).

use std::borrow::Cow;

use mite_ir::ops::bottleneck_expand_window;
use mite_ir::{Op, TensorType};
use mite_kernels::int8 as k;

use crate::quant::{ActRange, OutputStage, QuantParams, Requantizer, Rounding};

use super::error::OpFailure;
use super::float_ops::OpResult;
use super::operands::{conv_shape, per_tensor, weight_quant, zero_point_i8, Operands};
use super::value::{Data, ExecReal};

/// The clamp of a `[min, max]` attribute.
fn act(range: &[i64], what: &str) -> Result<ActRange, OpFailure> {
    match range {
        [lo, hi] => match (i8::try_from(*lo), i8::try_from(*hi)) {
            (Ok(min), Ok(max)) => Ok(ActRange { min, max }),
            _ => Err(OpFailure::Internal(format!(
                "{what} {range:?} outside the i8 range"
            ))),
        },
        _ => Err(OpFailure::Internal(format!(
            "{what}: expected [min, max], found {range:?}"
        ))),
    }
}

/// One of the three convolutions: its output stage and weight zero points.
struct Stage {
    out: OutputStage,
    w_zero_points: Vec<i8>,
    x_zero_point: i8,
}

impl Stage {
    fn new(
        input: QuantParams,
        weight: &TensorType,
        output: QuantParams,
        range: ActRange,
        rounding: Rounding,
    ) -> Result<Self, OpFailure> {
        let (w_scales, w_zero_points) = weight_quant(weight)?;
        let requantizer =
            Requantizer::from_tensor_scales(input.scale, &w_scales, output.scale, rounding)?;
        Ok(Self {
            out: OutputStage {
                requantizer,
                zero_point: output.zero_point,
                range,
            },
            w_zero_points,
            x_zero_point: input.zero_point,
        })
    }

    fn params(
        &self,
        shape: &crate::geometry::Conv2dShape,
    ) -> Result<k::Conv2dInt8Params<'_>, OpFailure> {
        let geometry = shape.geometry()?;
        Ok(k::Conv2dInt8Params::new(
            geometry,
            self.x_zero_point,
            &self.w_zero_points,
            self.out.as_kernel(),
        )
        .map_err(crate::kernel_error::KernelError::from)?)
    }
}

/// `q.bottleneck` with operands `(x, w1, b1, wd, bd, w2, b2)`. Refused with
/// [`Rounding::OnnxRuntime`]: onnxruntime runs a block's convolutions fused or in float depending
/// on the data flow of the graph the fusion removed.
pub(crate) fn bottleneck<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    op: &Op,
    out: &TensorType,
    rounding: Rounding,
) -> OpResult<T> {
    let types = [x.ty(0)?, x.ty(1)?, x.ty(3)?, x.ty(5)?];
    let block = Block::resolve(op, types, out, rounding)?;
    let params = block.params()?;
    let weights = block_weights(x, 1)?;
    let mut y = vec![0; params.project.geometry.output_len()];
    let mut scratch = vec![0; k::bottleneck_int8_scratch_len(&params)];
    k::bottleneck_int8(x.i8(0)?, &weights, &mut y, &mut scratch, &params)
        .map_err(crate::kernel_error::KernelError::from)?;
    Ok(Data::I8(Cow::Owned(y)))
}

/// `q.bottleneck_chain` with operands `(x, the first block's six weights and biases, the
/// second's six)`, through [`mite_kernels::int8::bottleneck_chain_int8`]: its two blocks
/// resolved as `q.bottleneck`s, the first one's output of the link's type. Refused with
/// [`Rounding::OnnxRuntime`] as `q.bottleneck`.
pub(crate) fn bottleneck_chain<T: ExecReal>(
    x: &Operands<'_, '_, T>,
    op: &Op,
    out: &TensorType,
    rounding: Rounding,
) -> OpResult<T> {
    let types = (0..13).map(|i| x.ty(i)).collect::<Result<Vec<_>, _>>()?;
    let link = mite_ir::infer::bottleneck_chain_link(op, &types)
        .map_err(|e| OpFailure::Internal(format!("q.bottleneck_chain: {e}")))?;
    let Some(([a, b], _)) = op.bottleneck_chain_parts() else {
        return Err(OpFailure::Internal(format!(
            "not a q.bottleneck_chain: {}",
            op.name()
        )));
    };
    let first = Block::resolve(
        &a,
        [types[0], types[1], types[3], types[5]],
        &link,
        rounding,
    )?;
    let second = Block::resolve(&b, [&link, types[7], types[9], types[11]], out, rounding)?;
    let params = k::BottleneckChainInt8Params::new(first.params()?, second.params()?)
        .map_err(crate::kernel_error::KernelError::from)?;
    let weights = [block_weights(x, 1)?, block_weights(x, 7)?];
    let mut y = vec![0; params.second.project.geometry.output_len()];
    let mut scratch = vec![0; k::bottleneck_chain_int8_scratch_len(&params)];
    k::bottleneck_chain_int8(
        x.i8(0)?,
        [&weights[0], &weights[1]],
        &mut y,
        &mut scratch,
        &params,
    )
    .map_err(crate::kernel_error::KernelError::from)?;
    Ok(Data::I8(Cow::Owned(y)))
}

/// The weights and biases of a block, operands `first..first + 6` of `x`.
fn block_weights<'r, T: ExecReal>(
    x: &Operands<'r, '_, T>,
    first: usize,
) -> Result<k::BottleneckWeights<'r>, OpFailure> {
    Ok(k::BottleneckWeights {
        w_expand: x.i8(first)?,
        b_expand: Some(x.i32(first + 1)?),
        w_depthwise: x.i8(first + 2)?,
        b_depthwise: Some(x.i32(first + 3)?),
        w_project: x.i8(first + 4)?,
        b_project: Some(x.i32(first + 5)?),
    })
}

/// The shape of a rank-4 tensor.
fn shape4(t: &TensorType, what: &str) -> Result<[usize; 4], OpFailure> {
    <[usize; 4]>::try_from(t.shape.as_slice())
        .map_err(|_| OpFailure::Internal(format!("{what}: expected rank 4, found {t}")))
}

/// A `q.bottleneck`'s three stages and their shapes.
struct Block {
    stages: [Stage; 3],
    shapes: [crate::geometry::Conv2dShape; 3],
}

impl Block {
    /// The `q.bottleneck` `op` of input type `x`, weight types `w1`, `wd`, `w2` and output
    /// type `out`.
    fn resolve(
        op: &Op,
        [x, w1, wd, w2]: [&TensorType; 4],
        out: &TensorType,
        rounding: Rounding,
    ) -> Result<Self, OpFailure> {
        let Op::QBottleneck {
            strides,
            pads,
            dilations,
            expand_window,
            expand_scale,
            expand_zero_point,
            expand_act,
            dw_scale,
            dw_zero_point,
            dw_act,
            act_min,
            act_max,
        } = op
        else {
            return Err(OpFailure::Internal(format!(
                "not a q.bottleneck: {}",
                op.name()
            )));
        };
        if rounding == Rounding::OnnxRuntime {
            return Err(OpFailure::Unsupported(
                "q.bottleneck with onnxruntime rounding (compile without fusion, --no-fusion)"
                    .into(),
            ));
        }
        let quant = |scale: f32, zero_point: i64, what: &str| -> Result<QuantParams, OpFailure> {
            let zero_point = i32::try_from(zero_point)
                .map_err(|_| OpFailure::Internal(format!("{what} zero point {zero_point}")))?;
            Ok(QuantParams {
                scale,
                zero_point: zero_point_i8(zero_point)?,
            })
        };
        let input = per_tensor(x, "operand 0")?;
        let mid = quant(*expand_scale, *expand_zero_point, "expand")?;
        let dw = quant(*dw_scale, *dw_zero_point, "dw")?;
        let output = per_tensor(out, "result")?;
        let ranges = [
            act(expand_act, "expand_act")?,
            act(dw_act, "dw_act")?,
            act(&[*act_min, *act_max], "act_min/act_max")?,
        ];
        let stages = [
            Stage::new(input, w1, mid, ranges[0], rounding)?,
            Stage::new(mid, wd, dw, ranges[1], rounding)?,
            Stage::new(dw, w2, output, ranges[2], rounding)?,
        ];
        let (ones, zeros) = ([1, 1], [0; 4]);
        let xs = shape4(x, "operand 0")?;
        let (e_strides, e_pads, e_dilations) =
            bottleneck_expand_window(expand_window).ok_or_else(|| {
                OpFailure::Internal(format!(
                    "expand_window: expected 8 values, found {expand_window:?}"
                ))
            })?;
        let expand = conv_shape(
            xs,
            shape4(w1, "the first weight")?,
            e_strides,
            e_pads,
            e_dilations,
            1,
        )?;
        let [mh, mw] = expand.checked_out_hw()?;
        let mid_shape = [xs[0], expand.c_out, mh, mw];
        let depthwise = conv_shape(
            mid_shape,
            shape4(wd, "the depthwise weight")?,
            strides,
            pads,
            dilations,
            expand.c_out as i64,
        )?;
        let [oh, ow] = depthwise.checked_out_hw()?;
        let project = conv_shape(
            [xs[0], depthwise.c_out, oh, ow],
            shape4(w2, "the projection weight")?,
            &ones,
            &zeros,
            &ones,
            1,
        )?;
        Ok(Self {
            stages,
            shapes: [expand, depthwise, project],
        })
    }

    fn params(&self) -> Result<k::BottleneckInt8Params<'_>, OpFailure> {
        Ok(k::BottleneckInt8Params::new(
            self.stages[0].params(&self.shapes[0])?,
            self.stages[1].params(&self.shapes[1])?,
            self.stages[2].params(&self.shapes[2])?,
        )
        .map_err(crate::kernel_error::KernelError::from)?)
    }
}
