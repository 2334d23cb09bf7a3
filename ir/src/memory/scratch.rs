//! Kernel scratch: the working memory an op's kernel needs besides its operands and results.
//!
//! A first per-op estimate, after the CMSIS-NN int8 kernels a Cortex-M build uses (a later phase
//! takes the exact figure from each `mite-kernels` parameter struct):
//! - `q.conv2d`, not depthwise: two im2col columns of `int16`,
//!   `2 · (C_in / groups) · k_h · k_w · 2` bytes (a 1×1 convolution needs none: it reads its
//!   input in place);
//! - `q.conv2d`, depthwise (`groups = C_in`, one input channel per group): one window of `int16`
//!   per channel, `C_in · k_h · k_w · 2` bytes;
//! - `q.bottleneck`: the streamed block's int8 ring of rows of its first convolution's output and
//!   one depthwise output row, `C_mid · min(span, H_mid) · W_mid + C_mid · W_out` bytes
//!   (`span = dilation · (k_h − 1) + 1` of the depthwise window, `H_mid × W_mid` the first
//!   convolution's output), the
//!   figure of `mite_kernels::int8::bottleneck_int8_scratch_len`;
//! - `q.bottleneck_chain`: its first block's scratch (as `q.bottleneck`'s), the ring of
//!   `span` rows of the link (`C_link · span · W_link`), one expanded channel's rows
//!   (`span · W_link`) and the second depthwise output row (`C_mid · W_out`), `span` the second
//!   depthwise window's vertical extent (at most `H_link`): the figure of
//!   `mite_kernels::int8::bottleneck_chain_int8_scratch_len`;
//! - every other op: 0 (the fp32 backward kernels loop directly over their operands).

use crate::module::{Function, OpData};
use crate::ops::{bottleneck_expand_window, Op};
use crate::types::TensorType;

/// The scratch bytes of op `data` of `func` (see the module documentation).
pub fn scratch_bytes(func: &Function, data: &OpData) -> u64 {
    if let Some(([first, second], _)) = data.op.bottleneck_chain_parts() {
        return bottleneck_chain_scratch_bytes(func, data, &first, &second).unwrap_or(0);
    }
    if let Op::QBottleneck {
        dilations,
        expand_window,
        ..
    } = &data.op
    {
        return bottleneck_scratch_bytes(func, data, dilations, expand_window);
    }
    let Op::QConv2d { groups, .. } = &data.op else {
        return 0;
    };
    let (Some(&x), Some(&w)) = (data.operands.first(), data.operands.get(1)) else {
        return 0;
    };
    let (x, w) = (func.ty(x), func.ty(w));
    if x.rank() != 4 || w.rank() != 4 {
        return 0;
    }
    let (c_in, per_group, kh, kw) = (x.shape[1], w.shape[1], w.shape[2], w.shape[3]);
    let bytes = if *groups > 1 && per_group == 1 {
        c_in * kh * kw * 2
    } else if kh * kw == 1 {
        0
    } else {
        2 * per_group * kh * kw * 2
    };
    bytes as u64
}

/// The ring and depthwise row of a `q.bottleneck` whose first convolution has the window
/// `expand_window` (0 when the types or the window are not as inferred).
fn bottleneck_scratch_bytes(
    func: &Function,
    data: &OpData,
    dilations: &[i64],
    expand_window: &[i64],
) -> u64 {
    let (Some(&x), Some(&w1), Some(&wd), Some(&y)) = (
        data.operands.first(),
        data.operands.get(1),
        data.operands.get(3),
        data.results.first(),
    ) else {
        return 0;
    };
    let types = [func.ty(x), func.ty(w1), func.ty(wd), func.ty(y)];
    block_scratch(types, dilations, expand_window).unwrap_or(0)
}

/// The scratch of a bottleneck with input, first weight, depthwise weight and output types
/// `[x, w1, wd, y]` (`None` when they are not as inferred).
fn block_scratch(
    [x, w1, wd, y]: [&TensorType; 4],
    dilations: &[i64],
    expand_window: &[i64],
) -> Option<u64> {
    if x.rank() != 4 || w1.rank() != 4 || wd.rank() != 4 || y.rank() != 4 {
        return None;
    }
    // The first convolution's output size along axis `d` (0: height, 1: width).
    let (strides, pads, first_dilations) = bottleneck_expand_window(expand_window)?;
    let mid = |d: usize| -> Option<usize> {
        let at = |v: &[i64], i: usize| usize::try_from(*v.get(i)?).ok();
        let (s, dl) = (at(strides, d)?.max(1), at(first_dilations, d)?.max(1));
        let padded = x.shape[2 + d] + at(pads, d)? + at(pads, d + 2)?;
        let span = dl * w1.shape[2 + d].checked_sub(1)? + 1;
        Some(padded.checked_sub(span)? / s + 1)
    };
    let (h, w) = (mid(0)?, mid(1)?);
    let (c_mid, kh, ow) = (wd.shape[0], wd.shape[2], y.shape[3]);
    let span = (depthwise_dilation(dilations) * kh.saturating_sub(1) + 1).min(h);
    Some((c_mid * span * w + c_mid * ow) as u64)
}

fn depthwise_dilation(dilations: &[i64]) -> usize {
    dilations.first().map_or(1, |&d| d.max(1) as usize)
}

/// The scratch of a `q.bottleneck_chain` of the `q.bottleneck`s `first` and `second`: the
/// first block's, the link ring (`c_link · span · w_link`), one expanded channel's rows
/// (`span · w_link`) and the second depthwise row (`c_mid · ow`), the figure of
/// `mite_kernels::int8::bottleneck_chain_int8_scratch_len`.
fn bottleneck_chain_scratch_bytes(
    func: &Function,
    data: &OpData,
    first: &Op,
    second: &Op,
) -> Option<u64> {
    let types: Vec<&TensorType> = data.operands.iter().map(|&v| func.ty(v)).collect();
    let link = crate::infer::bottleneck_chain_link(&data.op, &types).ok()?;
    let y = func.ty(*data.results.first()?);
    let (
        Op::QBottleneck {
            dilations,
            expand_window,
            ..
        },
        Op::QBottleneck {
            dilations: dilations2,
            ..
        },
    ) = (first, second)
    else {
        return None;
    };
    let first = block_scratch(
        [types[0], types[1], types[3], &link],
        dilations,
        expand_window,
    )?;
    let (wd2, [c_link, h, w]) = (types[9], [link.shape[1], link.shape[2], link.shape[3]]);
    if wd2.rank() != 4 || y.rank() != 4 {
        return None;
    }
    let span = (depthwise_dilation(dilations2) * wd2.shape[2].saturating_sub(1) + 1).min(h);
    Some(first + (c_link * span * w + span * w + wd2.shape[0] * y.shape[3]) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Builder, ElemType, Module, Quant, TensorType};

    fn qconv(groups: i64, k: usize, c_in: usize, c_out: usize) -> u64 {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let q = Quant::per_tensor(0.1, 0);
        let x = b.arg(
            "x",
            TensorType::quantized(&[1, c_in, 8, 8], ElemType::I8, q.clone()),
        );
        let per_group = c_in / groups as usize;
        let w = b
            .param(
                "w",
                TensorType::quantized(
                    &[c_out, per_group, k, k],
                    ElemType::I8,
                    Quant::per_channel(0, vec![0.1; c_out]),
                ),
                true,
                None,
            )
            .unwrap();
        let pad = (k as i64 - 1) / 2;
        let op = Op::QConv2d {
            strides: vec![1, 1],
            pads: vec![pad; 4],
            dilations: vec![1, 1],
            groups,
            act_min: -128,
            act_max: 127,
        };
        let y = b.op_quant(op, &[x, w], q).unwrap();
        b.ret(&[y]);
        let f = &m.functions[0];
        scratch_bytes(f, f.op(*f.layout().last().unwrap()))
    }

    /// `x [1,4,8,8]` -> first conv `k`x`k` stride `s` (pads `k/2`) to 12 channels -> dw 3x3
    /// stride 2 (pads 1) -> 6 channels: the result shape and the scratch bytes.
    fn bottleneck(k: usize, s: i64) -> (Vec<usize>, u64) {
        let p = k as i64 / 2;
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "f");
        let q = Quant::per_tensor(0.1, 0);
        let x = b.arg(
            "x",
            TensorType::quantized(&[1, 4, 8, 8], ElemType::I8, q.clone()),
        );
        let mut param = |name: &str, shape: &[usize]| {
            let ty = if shape.len() == 1 {
                TensorType::new(shape, ElemType::I32)
            } else {
                TensorType::quantized(
                    shape,
                    ElemType::I8,
                    Quant::per_channel(0, vec![0.1; shape[0]]),
                )
            };
            b.param(name, ty, false, None).unwrap()
        };
        let ops = [
            param("w1", &[12, 4, k, k]),
            param("b1", &[12]),
            param("wd", &[12, 1, 3, 3]),
            param("bd", &[12]),
            param("w2", &[6, 12, 1, 1]),
            param("b2", &[6]),
        ];
        let op = Op::QBottleneck {
            strides: vec![2, 2],
            pads: vec![1; 4],
            dilations: vec![1, 1],
            expand_window: vec![s, s, p, p, p, p, 1, 1],
            expand_scale: 0.1,
            expand_zero_point: 0,
            expand_act: vec![-128, 127],
            dw_scale: 0.1,
            dw_zero_point: 0,
            dw_act: vec![-128, 127],
            act_min: -128,
            act_max: 127,
        };
        let mut operands = vec![x];
        operands.extend(ops);
        let y = b.op_quant(op, &operands, q).unwrap();
        b.ret(&[y]);
        let f = &m.functions[0];
        let data = f.op(*f.layout().last().unwrap());
        (f.ty(y).shape.to_vec(), scratch_bytes(f, data))
    }

    #[test]
    fn bottleneck_ring_and_row() {
        // Pointwise expansion: the ring spans 3 rows of 8; the depthwise row is 4 wide.
        assert_eq!(bottleneck(1, 1), (vec![1, 6, 4, 4], 12 * 3 * 8 + 12 * 4));
        // A 3x3 stride-2 stem first: its output is 4x4, the ring 3 rows of 4, the dw row 2.
        assert_eq!(bottleneck(3, 2), (vec![1, 6, 2, 2], 12 * 3 * 4 + 12 * 2));
    }

    #[test]
    fn cmsis_style_estimates() {
        assert_eq!(qconv(1, 3, 8, 16), 2 * 8 * 9 * 2);
        assert_eq!(qconv(1, 1, 8, 16), 0);
        assert_eq!(qconv(8, 3, 8, 8), 8 * 9 * 2);
        assert_eq!(qconv(8, 5, 8, 8), 8 * 25 * 2);
    }
}
