//! Each op of a training step as kernel calls with their parameters resolved, exactly as the
//! interpreter resolves them (`mite-interp`'s `exec::{int8_ops, grad_ops, optim}`).

use mite_ir::ops::bottleneck_expand_window;
use mite_ir::program::{BufElem, Call, Kernel, SgdSlice};
use mite_ir::{ElemType, Op, OpId, Quant, TensorType, Value};
use mite_kernels::float::InPlaceConv;
use mite_kernels::int8::{AddParams, MeanParams};
use mite_kernels::requant::{effective_scales, quantize_multipliers, ActRange, QuantParams};
use mite_kernels::{Conv2dGeometry, Rounding, Window2d};

use super::{EntryLowering, LowerError};

type Result<T> = std::result::Result<T, LowerError>;

impl EntryLowering<'_> {
    /// Lowers op `id` at schedule position `pos`; its results already have buffers (except
    /// globals and views, mapped here).
    pub(super) fn lower_op(&mut self, pos: usize, id: OpId) -> Result<()> {
        let f = self.func;
        let data = f.op(id);
        let x = &data.operands;
        let ty = |v: Value| f.ty(v);
        let loc = data.loc.name.clone();
        let result = data.results.first().copied();
        let call = |kernel: Kernel, inputs: Vec<_>, outputs: Vec<_>| Call {
            kernel,
            inputs,
            outputs,
            scratch: None,
            loc: loc.clone(),
        };
        let out = |s: &Self| -> Result<_> {
            let r = result.ok_or_else(|| s.unsupported(pos, "the op has no result"))?;
            s.buffer(r, pos)
        };
        let kernel = match &data.op {
            Op::Param { global } | Op::Const { global } => {
                let b = self.global_buffer(&global.0)?;
                if let Some(r) = result {
                    self.values.insert(r, b);
                }
                return Ok(());
            }
            Op::Reshape { .. } | Op::Flatten { .. } => {
                let b = self.buffer(x[0], pos)?;
                if let Some(r) = result {
                    self.values.entry(r).or_insert(b);
                }
                return Ok(());
            }
            Op::QConv2d {
                strides,
                pads,
                dilations,
                groups,
                act_min,
                act_max,
            } => {
                let r = result.ok_or_else(|| self.unsupported(pos, "no result"))?;
                let k = self.conv_int8(
                    pos,
                    x,
                    r,
                    (strides, pads, dilations, *groups),
                    (*act_min, *act_max),
                )?;
                let g = match &k {
                    Kernel::ConvInt8 { geometry, .. } => *geometry,
                    _ => unreachable!("conv_int8 builds a ConvInt8"),
                };
                let mut inputs = x
                    .iter()
                    .map(|&v| self.buffer(v, pos))
                    .collect::<Result<Vec<_>>>()?;
                let (k, scratch_len) = match self.frozen.get(&inputs[1]) {
                    Some(&(frozen, kept)) => {
                        inputs.insert(2, frozen);
                        let k = Kernel::SplitWeight {
                            kernel: Box::new(k),
                            kept,
                        };
                        let len = k.signature().scratch.map_or(0, |(_, len)| len);
                        (k, len)
                    }
                    None => (k, g.out_plane()),
                };
                let y = out(self)?;
                let scratch = self.temp(
                    format!("{}.scratch", self.program.buffer(y).name),
                    BufElem::I32,
                    &[scratch_len],
                    0,
                );
                self.push(Call {
                    scratch: Some(scratch),
                    ..call(k, inputs, vec![y])
                });
                return Ok(());
            }
            Op::QBottleneck { .. } | Op::QBottleneckChain { .. } => {
                let r = result.ok_or_else(|| self.unsupported(pos, "no result"))?;
                let mut k = if matches!(data.op, Op::QBottleneck { .. }) {
                    self.bottleneck(pos, &data.op, x, r)?
                } else {
                    self.bottleneck_chain(pos, &data.op, x, r)?
                };
                let inputs = x
                    .iter()
                    .map(|&v| self.buffer(v, pos))
                    .collect::<Result<Vec<_>>>()?;
                // A chain reading the entry's input where the input dies consumes it, when its
                // geometry admits that: its output takes the input's place.
                let mut handed_over = false;
                if let Kernel::BottleneckChainInt8 { first, second, .. } = &k {
                    if self.consumable_input.is_some()
                        && self.consumable_input == inputs.first().copied()
                    {
                        let consuming = Kernel::BottleneckChainInt8 {
                            first: first.clone(),
                            second: second.clone(),
                            in_place: true,
                        };
                        if consuming.signature().scratch.is_some() {
                            k = consuming;
                            handed_over = true;
                        }
                    }
                }
                let len = match k.signature().scratch {
                    Some((_, len)) => len,
                    None => {
                        return Err(self.unsupported(pos, "the bottleneck's stages do not chain"))
                    }
                };
                let y = out(self)?;
                if handed_over {
                    self.handover = Some((y, self.calls.len()));
                }
                let scratch = self.temp(
                    format!("{}.scratch", self.program.buffer(y).name),
                    BufElem::I8,
                    &[len],
                    0,
                );
                self.push(Call {
                    scratch: Some(scratch),
                    ..call(k, inputs, vec![y])
                });
                return Ok(());
            }
            Op::QAdd { act_min, act_max } => {
                let r = result.ok_or_else(|| self.unsupported(pos, "no result"))?;
                let params = AddParams::new(
                    self.per_tensor(pos, ty(x[0]))?,
                    self.per_tensor(pos, ty(x[1]))?,
                    self.per_tensor(pos, ty(r))?,
                    self.act_range(pos, *act_min, *act_max)?,
                    self.rounding(pos)?,
                )
                .map_err(|e| self.unsupported(pos, &e.to_string()))?;
                Kernel::AddInt8 {
                    len: ty(r).num_elements(),
                    params,
                }
            }
            Op::QGlobalAvgPool {} => {
                let r = result.ok_or_else(|| self.unsupported(pos, "no result"))?;
                let dims = self.dims4(pos, &ty(x[0]).shape)?;
                let rounding = self.rounding(pos)?;
                if ty(x[0]).quant == ty(r).quant {
                    Kernel::GlobalAvgPoolInt8 { dims, rounding }
                } else {
                    let params = MeanParams::new(
                        self.per_tensor(pos, ty(x[0]))?,
                        self.per_tensor(pos, ty(r))?,
                        rounding,
                    )
                    .map_err(|e| self.unsupported(pos, &e.to_string()))?;
                    Kernel::MeanInt8 { dims, params }
                }
            }
            Op::Dequantize {} => self.dequantize(pos, ty(x[0]))?,
            Op::Mask { min, max } => {
                let t = ty(x[0]);
                let len = t.num_elements();
                match t.elem {
                    ElemType::I8 => Kernel::MaskInt8 {
                        len,
                        min: *min,
                        max: *max,
                    },
                    ElemType::F32 => Kernel::MaskF32 {
                        len,
                        min: *min,
                        max: *max,
                    },
                    _ => return Err(self.unsupported(pos, "a mask of neither f32 nor i8 values")),
                }
            }
            Op::ApplyMask {} => Kernel::ApplyMask {
                len: ty(x[0]).num_elements(),
            },
            Op::Add {} => {
                let (a, b) = (ty(x[0]), ty(x[1]));
                if a.elem != ElemType::F32 || a.shape != b.shape {
                    return Err(self.unsupported(
                        pos,
                        "nn.add is lowered for equally shaped f32 operands only (no broadcasting)",
                    ));
                }
                Kernel::AddF32 {
                    len: a.num_elements(),
                }
            }
            Op::Slice { axis, start, size } => {
                let t = ty(x[0]);
                let bad = || self.unsupported(pos, "slice outside the operand");
                let axis = usize::try_from(*axis)
                    .ok()
                    .filter(|&a| a < t.rank())
                    .ok_or_else(bad)?;
                let start = usize::try_from(*start).map_err(|_| bad())?;
                let size = usize::try_from(*size).map_err(|_| bad())?;
                if start + size > t.shape[axis] {
                    return Err(bad());
                }
                Kernel::Slice {
                    elem: super::buf_elem(t.elem),
                    outer: t.shape[..axis].iter().product(),
                    channels: t.shape[axis],
                    inner: t.shape[axis + 1..].iter().product(),
                    start,
                    size,
                }
            }
            Op::ConvInputGrad {
                strides,
                pads,
                dilations,
                groups,
                input_shape,
            } => {
                let xs = self.dims4_i64(pos, input_shape)?;
                let ws = self.dims4(pos, &ty(x[1]).shape)?;
                let geometry = self.geometry(pos, xs, ws, (strides, pads, dilations, *groups))?;
                let t = ty(x[1]);
                match t.elem {
                    ElemType::F32 => Kernel::ConvBackwardInput { geometry },
                    ElemType::I8 => {
                        let Kernel::Dequantize {
                            scales,
                            zero_points,
                            inner,
                            ..
                        } = self.dequantize(pos, t)?
                        else {
                            unreachable!("dequantize builds a Dequantize")
                        };
                        let dy = self.buffer(x[0], pos)?;
                        let y = out(self)?;
                        let w = self.buffer(x[1], pos)?;
                        if let Some(&(frozen, kept)) = self.frozen.get(&w) {
                            let k = Kernel::SplitWeight {
                                kernel: Box::new(Kernel::ConvBackwardInputInt8 {
                                    geometry,
                                    scales,
                                    zero_points,
                                    inner,
                                }),
                                kept,
                            };
                            self.push(call(k, vec![dy, w, frozen], vec![y]));
                            return Ok(());
                        }
                        if y != dy {
                            Kernel::ConvBackwardInputInt8 {
                                geometry,
                                scales,
                                zero_points,
                                inner,
                            }
                        } else {
                            // The lowering gave dx dy's buffer (`in_place_input_grad`).
                            let kind = InPlaceConv::of(&geometry).ok_or_else(|| {
                                self.unsupported(
                                    pos,
                                    "dx shares dy's buffer but cannot be in place",
                                )
                            })?;
                            let k = Kernel::ConvBackwardInputInt8InPlace {
                                geometry,
                                scales,
                                zero_points,
                                inner,
                            };
                            let w = self.buffer(x[1], pos)?;
                            let scratch = self.temp(
                                format!("{}.scratch", self.program.buffer(y).name),
                                BufElem::F32,
                                &[kind.scratch_len(&geometry)],
                                0,
                            );
                            self.push(Call {
                                scratch: Some(scratch),
                                ..call(k, vec![w], vec![y])
                            });
                            return Ok(());
                        }
                    }
                    _ => {
                        return Err(self.unsupported(pos, "a weight of neither f32 nor i8 elements"))
                    }
                }
            }
            Op::ConvWeightGrad { .. } => Kernel::ConvBackwardWeight {
                geometry: self.weight_grad_geometry(pos, id)?,
            },
            Op::ConvBiasGrad {} => {
                self.need_f32(pos, &[x[0]])?;
                Kernel::ConvBackwardBias {
                    dims: self.dims4(pos, &ty(x[0]).shape)?,
                }
            }
            Op::GlobalAvgPoolGrad { input_shape } => {
                self.need_f32(pos, &[x[0]])?;
                Kernel::GlobalAvgPoolBackward {
                    dims: self.dims4_i64(pos, input_shape)?,
                }
            }
            Op::SoftmaxCrossEntropy {} => {
                let (batch, classes) = self.logits(pos, ty(x[0]))?;
                let inputs = vec![self.buffer(x[0], pos)?, self.buffer(x[1], pos)?];
                let y = out(self)?;
                let scratch = self.temp(
                    format!("{}.scratch", self.program.buffer(y).name),
                    BufElem::F32,
                    &[classes],
                    0,
                );
                self.push(Call {
                    scratch: Some(scratch),
                    ..call(
                        Kernel::SoftmaxCrossEntropy { batch, classes },
                        inputs,
                        vec![y],
                    )
                });
                return Ok(());
            }
            Op::SoftmaxCrossEntropyGrad {} => {
                let (batch, classes) = self.logits(pos, ty(x[0]))?;
                Kernel::SoftmaxCrossEntropyBackward { batch, classes }
            }
            Op::Sgd { .. } => return self.sgd(pos, id),
            other => {
                return Err(self.unsupported(
                    pos,
                    &format!(
                        "no kernel lowers `{}` (the lowering covers the ops of the paper models' \
                         int8 training steps)",
                        other.name()
                    ),
                ))
            }
        };
        let inputs = x
            .iter()
            .map(|&v| self.buffer(v, pos))
            .collect::<Result<Vec<_>>>()?;
        let y = out(self)?;
        self.push(call(kernel, inputs, vec![y]));
        Ok(())
    }

    /// Whether op `id` is an input gradient with an `i8` weight that can be computed over its
    /// operand `dy` (its geometry admits [`InPlaceConv`] and `dx` is as long as `dy`).
    pub(super) fn in_place_input_grad(&self, pos: usize, id: OpId) -> bool {
        let data = self.func.op(id);
        let Op::ConvInputGrad {
            strides,
            pads,
            dilations,
            groups,
            input_shape,
        } = &data.op
        else {
            return false;
        };
        let x = &data.operands;
        if x.len() != 2 || self.func.ty(x[1]).elem != ElemType::I8 {
            return false;
        }
        // A split weight's input gradient is two partial calls: not in place.
        if self
            .values
            .get(&x[1])
            .is_some_and(|w| self.frozen.contains_key(w))
        {
            return false;
        }
        let geometry = self.dims4_i64(pos, input_shape).and_then(|xs| {
            let ws = self.dims4(pos, &self.func.ty(x[1]).shape)?;
            self.geometry(pos, xs, ws, (strides, pads, dilations, *groups))
        });
        geometry.is_ok_and(|g| {
            InPlaceConv::of(&g).is_some()
                && g.input_len() == g.output_len()
                && self.func.ty(x[0]).num_elements() == g.output_len()
        })
    }

    fn rounding(&self, pos: usize) -> Result<Rounding> {
        if self.rounding == Rounding::OnnxRuntime {
            return Err(self.unsupported(
                pos,
                "the onnxruntime rounding mode (its float-path groups) is not lowered",
            ));
        }
        Ok(self.rounding)
    }

    fn per_tensor(&self, pos: usize, t: &TensorType) -> Result<QuantParams> {
        match &t.quant {
            Some(Quant::PerTensor { scale, zero_point }) => Ok(QuantParams {
                scale: *scale,
                zero_point: i8::try_from(*zero_point)
                    .map_err(|_| self.unsupported(pos, "a zero point outside i8"))?,
            }),
            _ => Err(self.unsupported(
                pos,
                &format!("expected a per-tensor quantized type, found {t}"),
            )),
        }
    }

    fn act_range(&self, pos: usize, min: i64, max: i64) -> Result<ActRange> {
        match (i8::try_from(min), i8::try_from(max)) {
            (Ok(min), Ok(max)) => Ok(ActRange { min, max }),
            _ => Err(self.unsupported(pos, "act_min/act_max outside the i8 range")),
        }
    }

    fn dims4(&self, pos: usize, s: &[usize]) -> Result<[usize; 4]> {
        <[usize; 4]>::try_from(s)
            .map_err(|_| self.unsupported(pos, &format!("expected a rank-4 shape, found {s:?}")))
    }

    fn dims4_i64(&self, pos: usize, s: &[i64]) -> Result<[usize; 4]> {
        let d: Vec<usize> = s
            .iter()
            .map(|&v| usize::try_from(v))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| self.unsupported(pos, "negative dimension"))?;
        self.dims4(pos, &d)
    }

    fn need_f32(&self, pos: usize, vs: &[Value]) -> Result<()> {
        if vs.iter().all(|&v| self.func.ty(v).elem == ElemType::F32) {
            Ok(())
        } else {
            Err(self.unsupported(pos, "expected f32 operands"))
        }
    }

    fn logits(&self, pos: usize, t: &TensorType) -> Result<(usize, usize)> {
        match t.shape[..] {
            [n, c] if t.elem == ElemType::F32 => Ok((n, c)),
            _ => Err(self.unsupported(pos, &format!("expected f32 logits [n, c], found {t}"))),
        }
    }

    /// The geometry of a convolution of `x` by `w` (as the interpreter's `conv_shape`).
    fn geometry(
        &self,
        pos: usize,
        x: [usize; 4],
        w: [usize; 4],
        (strides, pads, dilations, groups): (&[i64], &[i64], &[i64], i64),
    ) -> Result<Conv2dGeometry> {
        let u = |v: i64| {
            usize::try_from(v).map_err(|_| self.unsupported(pos, "negative window attribute"))
        };
        let two = |v: &[i64]| -> Result<[usize; 2]> {
            match v {
                [a, b] => Ok([u(*a)?, u(*b)?]),
                _ => Err(self.unsupported(pos, "expected 2 window values")),
            }
        };
        let pads = match pads {
            [a, b, c, d] => [u(*a)?, u(*b)?, u(*c)?, u(*d)?],
            _ => return Err(self.unsupported(pos, "expected 4 pads")),
        };
        let window = Window2d {
            kernel: [w[2], w[3]],
            strides: two(strides)?,
            pads,
            dilations: two(dilations)?,
        };
        Conv2dGeometry::new(x[0], x[1], [x[2], x[3]], w[0], u(groups)?, window)
            .map_err(|e| self.unsupported(pos, &e.to_string()))
    }

    fn conv_int8(
        &self,
        pos: usize,
        x: &[Value],
        r: Value,
        window: (&[i64], &[i64], &[i64], i64),
        (act_min, act_max): (i64, i64),
    ) -> Result<Kernel> {
        let f = self.func;
        let (tx, ty) = (f.ty(x[0]), f.ty(r));
        let mut k = self.conv_int8_stage(
            pos,
            self.dims4(pos, &tx.shape)?,
            (
                self.per_tensor(pos, tx)?,
                f.ty(x[1]),
                self.per_tensor(pos, ty)?,
            ),
            window,
            (act_min, act_max),
        )?;
        if let Kernel::ConvInt8 { bias, .. } = &mut k {
            *bias = x.len() > 2;
        }
        Ok(k)
    }

    /// A convolution of an input of dims `x` (quantization `input`) by a weight of type `tw`
    /// into quantization `output`, with a bias.
    fn conv_int8_stage(
        &self,
        pos: usize,
        x: [usize; 4],
        (input, tw, output): (QuantParams, &TensorType, QuantParams),
        window: (&[i64], &[i64], &[i64], i64),
        (act_min, act_max): (i64, i64),
    ) -> Result<Kernel> {
        let rounding = self.rounding(pos)?;
        let geometry = self.geometry(pos, x, self.dims4(pos, &tw.shape)?, window)?;
        let (w_scales, w_zero_points) = match &tw.quant {
            Some(Quant::PerTensor { scale, zero_point }) => (vec![*scale], vec![*zero_point]),
            Some(Quant::PerChannel {
                axis: 0,
                scales,
                zero_points,
            }) => (scales.to_vec(), zero_points.to_vec()),
            _ => {
                return Err(
                    self.unsupported(pos, "weight: expected per-tensor or axis-0 quantization")
                )
            }
        };
        let w_zero_points = w_zero_points
            .iter()
            .map(|&z| i8::try_from(z))
            .collect::<std::result::Result<Vec<i8>, _>>()
            .map_err(|_| self.unsupported(pos, "a weight zero point outside i8"))?;
        let err = |e: mite_kernels::KernelError| self.unsupported(pos, &e.to_string());
        let mut scales = vec![0.0; w_scales.len()];
        effective_scales(input.scale, &w_scales, output.scale, rounding, &mut scales)
            .map_err(err)?;
        let mut multipliers = vec![0; scales.len()];
        let mut shifts = vec![0; scales.len()];
        quantize_multipliers(&scales, rounding, &mut multipliers, &mut shifts).map_err(err)?;
        Ok(Kernel::ConvInt8 {
            geometry,
            x_zero_point: input.zero_point,
            w_zero_points,
            scales,
            multipliers,
            shifts,
            out_zero_point: output.zero_point,
            range: self.act_range(pos, act_min, act_max)?,
            rounding,
            bias: true,
        })
    }

    /// `q.bottleneck` as [`Kernel::BottleneckInt8`], its three stages resolved as the
    /// interpreter's `exec::bottleneck` resolves them (intermediate quantizations from the
    /// op's attributes).
    fn bottleneck(&self, pos: usize, op: &Op, x: &[Value], r: Value) -> Result<Kernel> {
        if x.len() != 7 {
            return Err(self.unsupported(pos, "q.bottleneck needs 7 operands"));
        }
        let f = self.func;
        let types = [f.ty(x[0]), f.ty(x[1]), f.ty(x[3]), f.ty(x[5])];
        self.bottleneck_block(pos, op, types, f.ty(r))
    }

    /// `q.bottleneck_chain` as [`Kernel::BottleneckChainInt8`]: its two blocks resolved as
    /// `q.bottleneck`s, the first one's output of the link's type.
    fn bottleneck_chain(&self, pos: usize, op: &Op, x: &[Value], r: Value) -> Result<Kernel> {
        let f = self.func;
        let types: Vec<&TensorType> = x.iter().map(|&v| f.ty(v)).collect();
        let link = mite_ir::infer::bottleneck_chain_link(op, &types)
            .map_err(|e| self.unsupported(pos, &e.to_string()))?;
        let Some(([a, b], _)) = op.bottleneck_chain_parts() else {
            return Err(self.unsupported(pos, "not a q.bottleneck_chain"));
        };
        let first =
            self.bottleneck_block(pos, &a, [types[0], types[1], types[3], types[5]], &link)?;
        let second =
            self.bottleneck_block(pos, &b, [&link, types[7], types[9], types[11]], f.ty(r))?;
        Ok(Kernel::BottleneckChainInt8 {
            first: Box::new(first),
            second: Box::new(second),
            in_place: false,
        })
    }

    /// A `q.bottleneck` `op` of input type `x`, weight types `w1`, `wd`, `w2` and output type
    /// `out` as [`Kernel::BottleneckInt8`].
    fn bottleneck_block(
        &self,
        pos: usize,
        op: &Op,
        [x, w1, wd, w2]: [&TensorType; 4],
        out: &TensorType,
    ) -> Result<Kernel> {
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
            return Err(self.unsupported(pos, "not a q.bottleneck"));
        };
        let quant = |scale: f32, zp: i64| -> Result<QuantParams> {
            Ok(QuantParams {
                scale,
                zero_point: i8::try_from(zp)
                    .map_err(|_| self.unsupported(pos, "a zero point outside i8"))?,
            })
        };
        let pair = |v: &[i64], what: &str| -> Result<(i64, i64)> {
            match v {
                [a, b] => Ok((*a, *b)),
                _ => Err(self.unsupported(pos, &format!("{what}: expected [min, max]"))),
            }
        };
        let input = self.per_tensor(pos, x)?;
        let mid = quant(*expand_scale, *expand_zero_point)?;
        let dw = quant(*dw_scale, *dw_zero_point)?;
        let output = self.per_tensor(pos, out)?;
        let (ones, zeros): ([i64; 2], [i64; 4]) = ([1, 1], [0; 4]);
        let xs = self.dims4(pos, &x.shape)?;
        let (e_strides, e_pads, e_dilations) = bottleneck_expand_window(expand_window)
            .ok_or_else(|| self.unsupported(pos, "expand_window: expected 8 values"))?;
        let expand = self.conv_int8_stage(
            pos,
            xs,
            (input, w1, mid),
            (e_strides, e_pads, e_dilations, 1),
            pair(expand_act, "expand_act")?,
        )?;
        let eg = conv_geometry(&expand);
        let (c_mid, [mh, mw]) = (eg.c_out(), eg.out_hw());
        let depthwise = self.conv_int8_stage(
            pos,
            [xs[0], c_mid, mh, mw],
            (mid, wd, dw),
            (strides, pads, dilations, c_mid as i64),
            pair(dw_act, "dw_act")?,
        )?;
        let dg = conv_geometry(&depthwise);
        let [oh, ow] = dg.out_hw();
        let project = self.conv_int8_stage(
            pos,
            [xs[0], dg.c_out(), oh, ow],
            (dw, w2, output),
            (&ones, &zeros, &ones, 1),
            (*act_min, *act_max),
        )?;
        Ok(Kernel::BottleneckInt8 {
            expand: Box::new(expand),
            depthwise: Box::new(depthwise),
            project: Box::new(project),
        })
    }

    /// `q.dequantize` of an `i8` tensor of type `t` (per tensor or per axis).
    fn dequantize(&self, pos: usize, t: &TensorType) -> Result<Kernel> {
        if t.elem != ElemType::I8 {
            return Err(self.unsupported(pos, &format!("dequantizing {t} (only i8 is lowered)")));
        }
        let len = t.num_elements();
        let (scales, zps, inner) = match &t.quant {
            Some(Quant::PerTensor { scale, zero_point }) => {
                (vec![*scale], vec![*zero_point], len.max(1))
            }
            Some(Quant::PerChannel {
                axis,
                scales,
                zero_points,
            }) if t.shape.get(*axis) == Some(&scales.len()) => (
                scales.to_vec(),
                zero_points.to_vec(),
                t.shape[axis + 1..].iter().product(),
            ),
            _ => return Err(self.unsupported(pos, &format!("{t} has no usable quantization"))),
        };
        let zero_points = zps
            .iter()
            .map(|&z| i8::try_from(z))
            .collect::<std::result::Result<Vec<i8>, _>>()
            .map_err(|_| self.unsupported(pos, "a zero point outside i8"))?;
        Ok(Kernel::Dequantize {
            len,
            scales,
            zero_points,
            inner,
        })
    }

    /// The geometry of the `conv2d_weight_grad` op `id` (at `pos`), whose operands must be
    /// `f32`.
    pub(super) fn weight_grad_geometry(&self, pos: usize, id: OpId) -> Result<Conv2dGeometry> {
        let f = self.func;
        let data = f.op(id);
        let Op::ConvWeightGrad {
            strides,
            pads,
            dilations,
            groups,
            ..
        } = &data.op
        else {
            return Err(self.unsupported(pos, "not a convolution weight gradient"));
        };
        let (x, r) = match (&data.operands[..], data.results.first()) {
            ([x, dy, ..], Some(&r)) => {
                self.need_f32(pos, &[*x, *dy])?;
                (*x, r)
            }
            _ => return Err(self.unsupported(pos, "expected operands (x, dy) and a result")),
        };
        let xs = self.dims4(pos, &f.ty(x).shape)?;
        let ws = self.dims4(pos, &f.ty(r).shape)?;
        self.geometry(pos, xs, ws, (strides, pads, dilations, *groups))
    }

    /// `optim.sgd` (the interpreter's `exec::optim::sgd`).
    fn sgd(&mut self, pos: usize, id: OpId) -> Result<()> {
        let call = self.sgd_call(pos, id, false)?;
        self.push(call);
        Ok(())
    }

    /// The call of `optim.sgd` op `id` (at `pos`); `fused`: its gradient is computed by the
    /// fused call the caller builds, so no full-size gradient scratch is made.
    pub(super) fn sgd_call(&mut self, pos: usize, id: OpId, fused: bool) -> Result<Call> {
        let f = self.func;
        let data = f.op(id);
        let Op::Sgd {
            param,
            lr_scale,
            momentum,
            weight_decay,
            qas,
            stochastic,
            seed,
            accumulate,
            momentum_state,
            accum_state,
            slice_axis,
            slice_start,
        } = &data.op
        else {
            return Err(self.unsupported(pos, "not optim.sgd"));
        };
        let name = param.0.as_str();
        let g = self
            .module
            .globals
            .get(name)
            .ok_or_else(|| self.unsupported(pos, &format!("unknown parameter @{name}")))?;
        if !g.kind.is_trainable() {
            return Err(self.unsupported(pos, &format!("@{name} is not a trainable parameter")));
        }
        let ty = &g.ty;
        let param_buffer = self.global_buffer(name)?;
        // A split weight's buffer is its trained slice: the update covers it whole.
        let shape = match self.frozen.contains_key(&param_buffer) {
            true => self.program.buffer(param_buffer).shape.clone(),
            false => ty.shape.to_vec(),
        };
        let len = shape.iter().product();
        let grad_shape = &f.ty(data.operands[0]).shape;
        let split = shape[..] != ty.shape[..];
        let slice = if grad_shape[..] == shape[..] && (*slice_start == 0 || split) {
            None
        } else if split {
            return Err(self.unsupported(
                pos,
                &format!("gradient {grad_shape:?} is not the trained slice {shape:?} of @{name}"),
            ));
        } else {
            let bad = || {
                self.unsupported(
                    pos,
                    &format!(
                        "gradient {grad_shape:?} is not a channel slice of @{name} {:?}",
                        ty.shape
                    ),
                )
            };
            let axis = usize::try_from(*slice_axis).map_err(|_| bad())?;
            let start = usize::try_from(*slice_start).map_err(|_| bad())?;
            if grad_shape.len() != ty.rank()
                || axis >= ty.rank()
                || start + grad_shape[axis] > ty.shape[axis]
            {
                return Err(bad());
            }
            Some(SgdSlice {
                channels: ty.shape[axis],
                inner: ty.shape[axis + 1..].iter().product(),
                start,
                count: grad_shape[axis],
            })
        };
        let (scales, zero_points, inner) = match (ty.elem, &ty.quant) {
            (ElemType::F32, _) => (Vec::new(), Vec::new(), 1),
            (ElemType::I8 | ElemType::I32, Some(q @ Quant::PerTensor { .. })) => {
                (vec![q.scale(0)], vec![q.zero_point(0)], 1)
            }
            (ElemType::I8 | ElemType::I32, Some(q @ Quant::PerChannel { axis, scales, .. }))
                if ty.shape.get(*axis) == Some(&scales.len()) =>
            {
                let c = scales.len();
                (
                    (0..c).map(|i| q.scale(i)).collect(),
                    (0..c).map(|i| q.zero_point(i)).collect(),
                    shape[axis + 1..].iter().product(),
                )
            }
            _ => return Err(self.unsupported(pos, &format!("cannot train @{name} : {ty}"))),
        };
        if scales.iter().any(|s: &f32| !(s.is_finite() && *s > 0.0)) {
            return Err(self.unsupported(
                pos,
                &format!("@{name}: cannot train with a non-positive scale"),
            ));
        }
        let accumulate = u32::try_from((*accumulate).max(1))
            .map_err(|_| self.unsupported(pos, "accumulation over too many steps"))?;
        let mut outputs = vec![param_buffer];
        if *momentum != 0.0 {
            let s = momentum_state
                .as_ref()
                .ok_or_else(|| self.unsupported(pos, "momentum without momentum_state"))?;
            outputs.push(self.global_buffer(&s.0)?);
        }
        if accumulate > 1 {
            let s = accum_state
                .as_ref()
                .ok_or_else(|| self.unsupported(pos, "accumulation without accum_state"))?;
            outputs.push(self.global_buffer(&s.0)?);
        }
        // A fused update's gradient has no buffer: its call takes the other operands.
        let inputs = data.operands[usize::from(fused)..]
            .iter()
            .map(|&v| self.buffer(v, pos))
            .collect::<Result<Vec<_>>>()?;
        let scratch = (!fused && (slice.is_some() || accumulate > 1))
            .then(|| self.temp(format!("{name}.grad_full"), BufElem::F32, &shape, 0));
        Ok(Call {
            kernel: Kernel::Sgd {
                elem: super::buf_elem(ty.elem),
                len,
                lr_scale: *lr_scale,
                momentum: *momentum,
                weight_decay: *weight_decay,
                qas: *qas,
                stochastic_seed: stochastic.then_some(*seed),
                scales,
                zero_points,
                inner,
                accumulate,
                slice,
            },
            inputs,
            outputs,
            scratch,
            loc: data
                .loc
                .name
                .clone()
                .or_else(|| Some(format!("{name}.update"))),
        })
    }
}

/// The geometry of a [`Kernel::ConvInt8`] (what `conv_int8_stage` builds).
fn conv_geometry(k: &Kernel) -> Conv2dGeometry {
    match k {
        Kernel::ConvInt8 { geometry, .. } => *geometry,
        _ => unreachable!("conv_int8_stage builds a ConvInt8"),
    }
}
