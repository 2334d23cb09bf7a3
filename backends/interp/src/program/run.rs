//! One call of a Program: operands copied out of their buffers, the `mite-kernels` kernel with
//! parameters built from the [`Kernel`] variant, results copied back.

use mite_ir::program::{BufferId, Call, Kernel, SgdSlice};
use mite_kernels::float::{self as kf, Mask};
use mite_kernels::int8 as k8;
use mite_kernels::requant::{OutputStage, Requant};
use mite_kernels::sgd::{self, SgdParams, UpdateRounding};
use mite_kernels::{Conv2dGeometry, Window2d};

use super::memory::{Memory, Vals};

type Res<T> = Result<T, String>;

fn ke(e: mite_kernels::KernelError) -> String {
    e.to_string()
}

fn f32s(m: &Memory<'_>, id: BufferId) -> Res<Vec<f32>> {
    match m.read(id)? {
        Vals::F32(v) => Ok(v),
        o => Err(format!("{id}: {} elements, expected f32", o.elem_name())),
    }
}

fn i8s(m: &Memory<'_>, id: BufferId) -> Res<Vec<i8>> {
    match m.read(id)? {
        Vals::I8(v) => Ok(v),
        o => Err(format!("{id}: {} elements, expected i8", o.elem_name())),
    }
}

fn i32s(m: &Memory<'_>, id: BufferId) -> Res<Vec<i32>> {
    match m.read(id)? {
        Vals::I32(v) => Ok(v),
        o => Err(format!("{id}: {} elements, expected i32", o.elem_name())),
    }
}

fn bits(m: &Memory<'_>, id: BufferId) -> Res<Vec<u32>> {
    match m.read(id)? {
        Vals::Bits(v) => Ok(v),
        o => Err(format!("{id}: {} elements, expected bits", o.elem_name())),
    }
}

fn scalar_f32(m: &Memory<'_>, id: BufferId) -> Res<f32> {
    match f32s(m, id)?[..] {
        [v] => Ok(v),
        _ => Err(format!("{id}: expected one f32")),
    }
}

fn operand(call: &Call, i: usize) -> Res<BufferId> {
    call.inputs
        .get(i)
        .copied()
        .ok_or_else(|| format!("missing operand {i}"))
}

fn result(call: &Call, i: usize) -> Res<BufferId> {
    call.outputs
        .get(i)
        .copied()
        .ok_or_else(|| format!("missing result {i}"))
}

/// Runs `call` on `mem`.
pub(crate) fn call(mem: &mut Memory<'_>, call: &Call) -> Res<()> {
    let x = |i: usize| operand(call, i);
    let y0 = result(call, 0)?;
    let out = match &call.kernel {
        Kernel::ConvInt8 {
            geometry,
            x_zero_point,
            w_zero_points,
            scales,
            multipliers,
            shifts,
            out_zero_point,
            range,
            rounding,
            bias,
        } => {
            let requant = Requant::new(*rounding, scales, multipliers, shifts).map_err(ke)?;
            let stage = OutputStage {
                requant,
                zero_point: *out_zero_point,
                range: *range,
            };
            let p = k8::Conv2dInt8Params::new(*geometry, *x_zero_point, w_zero_points, stage)
                .map_err(ke)?;
            let (xv, wv) = (i8s(mem, x(0)?)?, i8s(mem, x(1)?)?);
            let b = if *bias { Some(i32s(mem, x(2)?)?) } else { None };
            let scratch_id = call.scratch.ok_or("conv2d_int8 needs scratch")?;
            let mut scratch = i32s(mem, scratch_id)?;
            let mut y = vec![0; geometry.output_len()];
            k8::conv2d_int8(&xv, &wv, b.as_deref(), &mut y, &mut scratch, &p).map_err(ke)?;
            mem.write(scratch_id, Vals::I32(scratch))?;
            Vals::I8(y)
        }
        Kernel::AddInt8 { len, params } => {
            let (a, b) = (i8s(mem, x(0)?)?, i8s(mem, x(1)?)?);
            let mut y = vec![0; *len];
            k8::add_int8(&a, &b, &mut y, params).map_err(ke)?;
            Vals::I8(y)
        }
        Kernel::GlobalAvgPoolInt8 { dims, rounding } => {
            let mut y = vec![0; dims[0] * dims[1]];
            k8::global_avg_pool_int8(&i8s(mem, x(0)?)?, *dims, *rounding, &mut y).map_err(ke)?;
            Vals::I8(y)
        }
        Kernel::MeanInt8 { dims, params } => {
            let mut y = vec![0; dims[0] * dims[1]];
            k8::mean_int8(&i8s(mem, x(0)?)?, *dims, &mut y, params).map_err(ke)?;
            Vals::I8(y)
        }
        Kernel::Dequantize {
            len,
            scales,
            zero_points,
            inner,
        } => {
            let p = k8::PerAxis::new(scales, zero_points, *inner).map_err(ke)?;
            let mut y = vec![0.0; *len];
            k8::dequantize(&i8s(mem, x(0)?)?, &mut y, &p).map_err(ke)?;
            Vals::F32(y)
        }
        Kernel::MaskInt8 { len, min, max } => {
            let v: Vec<f32> = i8s(mem, x(0)?)?.into_iter().map(f32::from).collect();
            let mut y = vec![0; kf::mask_words(*len)];
            kf::make_mask(
                &v,
                &mut y,
                &Mask {
                    min: *min,
                    max: *max,
                },
            )
            .map_err(ke)?;
            Vals::Bits(y)
        }
        Kernel::MaskF32 { len, min, max } => {
            let mut y = vec![0; kf::mask_words(*len)];
            kf::make_mask(
                &f32s(mem, x(0)?)?,
                &mut y,
                &Mask {
                    min: *min,
                    max: *max,
                },
            )
            .map_err(ke)?;
            Vals::Bits(y)
        }
        Kernel::ApplyMask { len } => {
            let mut y = vec![0.0; *len];
            kf::apply_mask(&f32s(mem, x(0)?)?, &bits(mem, x(1)?)?, &mut y).map_err(ke)?;
            Vals::F32(y)
        }
        Kernel::AddF32 { .. } => {
            let (a, b) = (f32s(mem, x(0)?)?, f32s(mem, x(1)?)?);
            Vals::F32(a.iter().zip(&b).map(|(p, q)| p + q).collect())
        }
        Kernel::Slice {
            outer,
            channels,
            inner,
            start,
            size,
            ..
        } => {
            let v = mem.read(x(0)?)?;
            let pick = |i: usize| {
                let (o, rest) = (i / (size * inner), i % (size * inner));
                o * channels * inner + start * inner + rest
            };
            let n = outer * size * inner;
            match v {
                Vals::F32(v) => Vals::F32((0..n).map(|i| v[pick(i)]).collect()),
                Vals::I8(v) => Vals::I8((0..n).map(|i| v[pick(i)]).collect()),
                Vals::I32(v) => Vals::I32((0..n).map(|i| v[pick(i)]).collect()),
                Vals::I64(v) => Vals::I64((0..n).map(|i| v[pick(i)]).collect()),
                Vals::Bits(_) => return Err("slicing a mask".into()),
            }
        }
        Kernel::ConvBackwardInput { geometry } => {
            let mut y = vec![0.0; geometry.input_len()];
            kf::conv2d_backward_input(&f32s(mem, x(0)?)?, &f32s(mem, x(1)?)?, &mut y, geometry)
                .map_err(ke)?;
            Vals::F32(y)
        }
        Kernel::ConvBackwardInputInt8 {
            geometry,
            scales,
            zero_points,
            inner,
        } => {
            let p = k8::PerAxis::new(scales, zero_points, *inner).map_err(ke)?;
            let mut y = vec![0.0; geometry.input_len()];
            kf::conv2d_backward_input_int8(
                &f32s(mem, x(0)?)?,
                &i8s(mem, x(1)?)?,
                &p,
                &mut y,
                geometry,
            )
            .map_err(ke)?;
            Vals::F32(y)
        }
        Kernel::ConvBackwardInputInt8InPlace {
            geometry,
            scales,
            zero_points,
            inner,
        } => {
            let p = k8::PerAxis::new(scales, zero_points, *inner).map_err(ke)?;
            let scratch_id = call
                .scratch
                .ok_or("conv2d_backward_input_int8w_inplace needs scratch")?;
            let mut scratch = f32s(mem, scratch_id)?;
            let mut y = f32s(mem, y0)?;
            kf::conv2d_backward_input_int8_in_place(
                &mut y,
                &i8s(mem, x(0)?)?,
                &p,
                &mut scratch,
                geometry,
            )
            .map_err(ke)?;
            mem.write(scratch_id, Vals::F32(scratch))?;
            Vals::F32(y)
        }
        Kernel::ConvBackwardWeight { geometry } => {
            let mut y = vec![0.0; geometry.weight_len()];
            kf::conv2d_backward_weight(&f32s(mem, x(0)?)?, &f32s(mem, x(1)?)?, &mut y, geometry)
                .map_err(ke)?;
            Vals::F32(y)
        }
        Kernel::ConvBackwardBias { dims } => {
            let [n, c, h, w] = *dims;
            let window = Window2d {
                kernel: [1, 1],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
            };
            let g = Conv2dGeometry::new(n, c, [h, w], c, 1, window).map_err(ke)?;
            let mut y = vec![0.0; c];
            kf::conv2d_backward_bias(&f32s(mem, x(0)?)?, &mut y, &g).map_err(ke)?;
            Vals::F32(y)
        }
        Kernel::GlobalAvgPoolBackward { dims } => {
            let mut y = vec![0.0; dims.iter().product()];
            kf::global_avg_pool_backward(&f32s(mem, x(0)?)?, *dims, &mut y).map_err(ke)?;
            Vals::F32(y)
        }
        Kernel::SoftmaxCrossEntropy { batch, classes } => {
            let loss = crate::kernels::softmax_cross_entropy(
                &f32s(mem, x(0)?)?,
                &i32s(mem, x(1)?)?,
                *batch,
                *classes,
            )
            .map_err(|e| e.to_string())?;
            Vals::F32(vec![loss])
        }
        Kernel::SoftmaxCrossEntropyBackward { batch, classes } => {
            let g = crate::kernels::softmax_cross_entropy_backward(
                &f32s(mem, x(0)?)?,
                &i32s(mem, x(1)?)?,
                *batch,
                *classes,
                scalar_f32(mem, x(2)?)?,
            )
            .map_err(|e| e.to_string())?;
            Vals::F32(g)
        }
        Kernel::SplitWeight { .. } => split_call(mem, call)?,
        Kernel::Sgd { .. } => return sgd_call(mem, call),
        Kernel::ConvWeightSgd { .. } => return conv_weight_sgd_call(mem, call),
        Kernel::BottleneckBackward { .. } => return bottleneck_backward_call(mem, call),
        Kernel::BottleneckInt8 { .. } => {
            let p = block_params(&call.kernel)?;
            let v: Vec<Vec<i8>> = [0, 1, 3, 5]
                .into_iter()
                .map(|i| i8s(mem, x(i)?))
                .collect::<Res<_>>()?;
            let b: Vec<Vec<i32>> = [2, 4, 6]
                .into_iter()
                .map(|i| i32s(mem, x(i)?))
                .collect::<Res<_>>()?;
            let weights = block_weights(&v[1..], &b);
            let scratch_id = call.scratch.ok_or("bottleneck_int8 needs scratch")?;
            let mut scratch = i8s(mem, scratch_id)?;
            let mut y = vec![0; p.project.geometry.output_len()];
            k8::bottleneck_int8(&v[0], &weights, &mut y, &mut scratch, &p).map_err(ke)?;
            mem.write(scratch_id, Vals::I8(scratch))?;
            Vals::I8(y)
        }
        Kernel::BottleneckChainInt8 {
            first,
            second,
            in_place,
        } => {
            let p = k8::BottleneckChainInt8Params::new(block_params(first)?, block_params(second)?)
                .map_err(ke)?;
            let v: Vec<Vec<i8>> = [0, 1, 3, 5, 7, 9, 11]
                .into_iter()
                .map(|i| i8s(mem, x(i)?))
                .collect::<Res<_>>()?;
            let b: Vec<Vec<i32>> = [2, 4, 6, 8, 10, 12]
                .into_iter()
                .map(|i| i32s(mem, x(i)?))
                .collect::<Res<_>>()?;
            let weights = [
                block_weights(&v[1..4], &b[..3]),
                block_weights(&v[4..], &b[3..]),
            ];
            let scratch_id = call.scratch.ok_or("bottleneck_chain_int8 needs scratch")?;
            let mut scratch = i8s(mem, scratch_id)?;
            let out_len = p.second.project.geometry.output_len();
            let y = if *in_place {
                // The input's bytes are consumed (written back as the kernel left them, as
                // the C program's arena holds them); the output is their start.
                let mut buf = v[0].clone();
                k8::bottleneck_chain_int8_in_place(
                    &mut buf,
                    [&weights[0], &weights[1]],
                    &mut scratch,
                    &p,
                )
                .map_err(ke)?;
                let y = buf[..out_len].to_vec();
                mem.write(x(0)?, Vals::I8(buf))?;
                y
            } else {
                let mut y = vec![0; out_len];
                k8::bottleneck_chain_int8(
                    &v[0],
                    [&weights[0], &weights[1]],
                    &mut y,
                    &mut scratch,
                    &p,
                )
                .map_err(ke)?;
                y
            };
            mem.write(scratch_id, Vals::I8(scratch))?;
            Vals::I8(y)
        }
    };
    mem.write(y0, out)
}

/// `Kernel::SplitWeight`: a convolution or its input gradient over a weight stored as trained
/// slice + frozen remainder (`mite_kernels::split`).
fn split_call(mem: &mut Memory<'_>, call: &Call) -> Res<Vals> {
    let Kernel::SplitWeight { kernel, kept } = &call.kernel else {
        return Err("not a split-weight call".into());
    };
    let x = |i: usize| operand(call, i);
    let (trained, frozen) = (i8s(mem, x(1)?)?, i8s(mem, x(2)?)?);
    let w = mite_kernels::split::SplitWeight {
        trained: &trained,
        frozen: &frozen,
        kept: *kept,
    };
    match kernel.as_ref() {
        Kernel::ConvInt8 { geometry, bias, .. } => {
            let p = conv_stage(kernel)?;
            let xv = i8s(mem, x(0)?)?;
            let b = if *bias { Some(i32s(mem, x(3)?)?) } else { None };
            let scratch_id = call.scratch.ok_or("conv2d_int8_split needs scratch")?;
            // The scratch: the accumulator plane, then the gathered rows.
            let plane = mite_kernels::split::conv2d_int8_split_scratch_len(geometry);
            let mut scratch = i32s(mem, scratch_id)?;
            scratch.truncate(plane);
            let mut gather = vec![0; mite_kernels::split::conv2d_int8_split_gather_len(geometry)];
            let mut y = vec![0; geometry.output_len()];
            mite_kernels::split::conv2d_int8_split(
                &xv,
                &w,
                b.as_deref(),
                &mut y,
                &mut scratch,
                &mut gather,
                &p,
            )
            .map_err(ke)?;
            Ok(Vals::I8(y))
        }
        Kernel::ConvBackwardInputInt8 {
            geometry,
            scales,
            zero_points,
            inner,
        } => {
            let p = k8::PerAxis::new(scales, zero_points, *inner).map_err(ke)?;
            let mut y = vec![0.0; geometry.input_len()];
            mite_kernels::split::conv2d_backward_input_int8_split(
                &f32s(mem, x(0)?)?,
                &w,
                &p,
                &mut y,
                geometry,
            )
            .map_err(ke)?;
            Ok(Vals::F32(y))
        }
        other => Err(format!("a split weight read by {}", other.name())),
    }
}

/// The full-size gradient of a sliced update: the covered elements in order, zeros elsewhere.
/// The parameters of one stage of a bottleneck (a [`Kernel::ConvInt8`]).
/// The parameters of a [`Kernel::BottleneckInt8`].
fn block_params(k: &Kernel) -> Res<k8::BottleneckInt8Params<'_>> {
    let Kernel::BottleneckInt8 {
        expand,
        depthwise,
        project,
    } = k
    else {
        return Err(format!(
            "a bottleneck block is {}, not bottleneck_int8",
            k.name()
        ));
    };
    k8::BottleneckInt8Params::new(
        conv_stage(expand)?,
        conv_stage(depthwise)?,
        conv_stage(project)?,
    )
    .map_err(ke)
}

/// A bottleneck's weights `w` (expansion, depthwise, projection) and biases `b` (same order).
fn block_weights<'a>(w: &'a [Vec<i8>], b: &'a [Vec<i32>]) -> k8::BottleneckWeights<'a> {
    k8::BottleneckWeights {
        w_expand: &w[0],
        b_expand: Some(&b[0]),
        w_depthwise: &w[1],
        b_depthwise: Some(&b[1]),
        w_project: &w[2],
        b_project: Some(&b[2]),
    }
}

fn conv_stage(k: &Kernel) -> Res<k8::Conv2dInt8Params<'_>> {
    let Kernel::ConvInt8 {
        geometry,
        x_zero_point,
        w_zero_points,
        scales,
        multipliers,
        shifts,
        out_zero_point,
        range,
        rounding,
        ..
    } = k
    else {
        return Err(format!(
            "a bottleneck stage is {}, not conv2d_int8",
            k.name()
        ));
    };
    let requant = Requant::new(*rounding, scales, multipliers, shifts).map_err(ke)?;
    let stage = OutputStage {
        requant,
        zero_point: *out_zero_point,
        range: *range,
    };
    k8::Conv2dInt8Params::new(*geometry, *x_zero_point, w_zero_points, stage).map_err(ke)
}

fn scatter(g: &[f32], slice: &SgdSlice, len: usize) -> Vec<f32> {
    let mut it = g.iter();
    (0..len)
        .map(|i| {
            if slice.covers(i) {
                it.next().copied().unwrap_or(0.0)
            } else {
                0.0
            }
        })
        .collect()
}

fn keep_outside<T: Copy>(new: &mut [T], old: &[T], slice: &SgdSlice) {
    for (i, (n, &o)) in new.iter_mut().zip(old).enumerate() {
        if !slice.covers(i) {
            *n = o;
        }
    }
}

/// `Kernel::Sgd`: the interpreter's `optim.sgd` rules (accumulation, momentum, QAS, rounding,
/// channel slices) over the kernels of `mite_kernels::sgd`.
/// The update rule of a `Kernel::Sgd` (alone or fused with its weight gradient) at step `step`
/// with learning rate `eta` (the entry's rate times the kernel's scale).
fn update_rule(
    eta: f32,
    momentum: f32,
    weight_decay: f32,
    qas: bool,
    stochastic_seed: Option<i64>,
    step: i64,
) -> SgdParams {
    SgdParams {
        eta,
        momentum,
        weight_decay,
        qas,
        rounding: match stochastic_seed {
            Some(seed) => UpdateRounding::Stochastic { seed, step },
            None => UpdateRounding::HalfEven,
        },
    }
}

fn sgd_call(mem: &mut Memory<'_>, call: &Call) -> Res<()> {
    let Kernel::Sgd {
        len,
        lr_scale,
        momentum,
        weight_decay,
        qas,
        stochastic_seed,
        scales,
        zero_points,
        inner,
        accumulate,
        slice,
        ..
    } = &call.kernel
    else {
        return Err("not an sgd call".into());
    };
    let len = *len;
    let mut g = f32s(mem, operand(call, 0)?)?;
    let lr = scalar_f32(mem, operand(call, 1)?)?;
    let step = match mem.read(operand(call, 2)?)? {
        Vals::I64(v) if v.len() == 1 => v[0],
        _ => return Err("the step operand is not one i64".into()),
    };
    if let Some(s) = slice {
        g = scatter(&g, s, len);
        if let Some(sc) = call.scratch {
            // The full-size gradient lives in the call's scratch.
            mem.write(sc, Vals::F32(g))?;
            g = f32s(mem, sc)?;
        }
    }
    let param = result(call, 0)?;
    let mut next = 1;
    let momentum_id = if *momentum != 0.0 {
        next += 1;
        Some(result(call, 1)?)
    } else {
        None
    };
    if *accumulate > 1 {
        let acc_id = result(call, next)?;
        let mut acc = f32s(mem, acc_id)?;
        let mut mean = vec![0.0; len];
        let ready = sgd::accumulate(&g, &mut acc, &mut mean, step, *accumulate).map_err(ke)?;
        mem.write(acc_id, Vals::F32(acc))?;
        if !ready {
            return Ok(());
        }
        g = mean;
    }
    // The interpreter uses the momentum state only when momentum > 0.
    let mut m = match momentum_id {
        Some(id) if *momentum > 0.0 => Some(f32s(mem, id)?),
        _ => None,
    };
    let rule = update_rule(
        lr * lr_scale,
        *momentum,
        *weight_decay,
        *qas,
        *stochastic_seed,
        step,
    );
    let current = mem.read(param)?;
    let before_m = m.clone();
    let mut updated = current.clone();
    let nan = |e: mite_kernels::KernelError, g: &[f32]| match e {
        mite_kernels::KernelError::NanUpdate { index } => format!(
            "the update of element {index} is NaN (gradient {})",
            g.get(index).copied().unwrap_or(f32::NAN)
        ),
        e => e.to_string(),
    };
    let r = match &mut updated {
        Vals::F32(w) => sgd::sgd_f32(w, &g, m.as_deref_mut(), &rule),
        Vals::I8(q) => {
            let cq = sgd::ChannelQuant::new(scales, zero_points, *inner).map_err(ke)?;
            sgd::sgd_i8(q, &g, m.as_deref_mut(), &cq, &rule)
        }
        Vals::I32(q) => {
            let cq = sgd::ChannelQuant::new(scales, zero_points, *inner).map_err(ke)?;
            sgd::sgd_i32(q, &g, m.as_deref_mut(), &cq, &rule)
        }
        other => return Err(format!("cannot train {} elements", other.elem_name())),
    };
    r.map_err(|e| nan(e, &g))?;
    if let Some(s) = slice {
        match (&mut updated, &current) {
            (Vals::F32(n), Vals::F32(o)) => keep_outside(n, o, s),
            (Vals::I8(n), Vals::I8(o)) => keep_outside(n, o, s),
            (Vals::I32(n), Vals::I32(o)) => keep_outside(n, o, s),
            _ => {}
        }
        if let (Some(m), Some(old)) = (m.as_mut(), &before_m) {
            keep_outside(m, old, s);
        }
    }
    mem.write(param, updated)?;
    if let (Some(id), Some(m)) = (momentum_id, m) {
        mem.write(id, Vals::F32(m))?;
    }
    Ok(())
}

/// `Kernel::ConvWeightSgd`: the weight gradient and its update in one
/// `mite_kernels::update` kernel (bit-identical with `conv2d_backward_weight` then `sgd`).
fn conv_weight_sgd_call(mem: &mut Memory<'_>, call: &Call) -> Res<()> {
    let Kernel::ConvWeightSgd { geometry, update } = &call.kernel else {
        return Err("not a conv2d_backward_weight_sgd call".into());
    };
    let Kernel::Sgd {
        len,
        lr_scale,
        momentum,
        weight_decay,
        qas,
        stochastic_seed,
        scales,
        zero_points,
        inner,
        accumulate: 1,
        slice,
        ..
    } = update.as_ref()
    else {
        return Err(
            "conv2d_backward_weight_sgd: the update is not an sgd without accumulation".into(),
        );
    };
    let x = f32s(mem, operand(call, 0)?)?;
    let dy = f32s(mem, operand(call, 1)?)?;
    let lr = scalar_f32(mem, operand(call, 2)?)?;
    let step = match mem.read(operand(call, 3)?)? {
        Vals::I64(v) if v.len() == 1 => v[0],
        _ => return Err("the step operand is not one i64".into()),
    };
    let view = slice.map(|s| sgd::SliceView {
        outer: len / (s.channels * s.inner).max(1),
        channels: s.channels,
        inner: s.inner,
        start: s.start,
        count: s.count,
    });
    let param = result(call, 0)?;
    let momentum_id = if *momentum != 0.0 {
        Some(result(call, 1)?)
    } else {
        None
    };
    // The interpreter uses the momentum state only when momentum > 0.
    let mut m = match momentum_id {
        Some(id) if *momentum > 0.0 => Some(f32s(mem, id)?),
        _ => None,
    };
    let rule = update_rule(
        lr * lr_scale,
        *momentum,
        *weight_decay,
        *qas,
        *stochastic_seed,
        step,
    );
    let scratch_id = call
        .scratch
        .ok_or("conv2d_backward_weight_sgd needs scratch")?;
    let mut scratch = f32s(mem, scratch_id)?;
    let mut updated = mem.read(param)?;
    let r = match &mut updated {
        Vals::F32(w) => mite_kernels::update::conv2d_weight_sgd_f32(
            &x,
            &dy,
            geometry,
            view.as_ref(),
            w,
            m.as_deref_mut(),
            &rule,
            &mut scratch,
        ),
        Vals::I8(q) => {
            let cq = sgd::ChannelQuant::new(scales, zero_points, *inner).map_err(ke)?;
            mite_kernels::update::conv2d_weight_sgd_i8(
                &x,
                &dy,
                geometry,
                view.as_ref(),
                q,
                m.as_deref_mut(),
                &cq,
                &rule,
                &mut scratch,
            )
        }
        other => {
            return Err(format!(
                "conv2d_backward_weight_sgd cannot train {} elements",
                other.elem_name()
            ))
        }
    };
    r.map_err(|e| match e {
        mite_kernels::KernelError::NanUpdate { index } => {
            format!("the update of element {index} is NaN")
        }
        e => e.to_string(),
    })?;
    mem.write(scratch_id, Vals::F32(scratch))?;
    mem.write(param, updated)?;
    if let (Some(id), Some(m)) = (momentum_id, m) {
        mem.write(id, Vals::F32(m))?;
    }
    Ok(())
}

/// The quantization of a [`Kernel::ConvBackwardInputInt8`]'s weight.
fn int8_weight_quant(k: &Kernel) -> Res<k8::PerAxis<'_>> {
    let Kernel::ConvBackwardInputInt8 {
        scales,
        zero_points,
        inner,
        ..
    } = k
    else {
        return Err(
            "bottleneck_backward: a part is not an input gradient with an i8 weight".into(),
        );
    };
    k8::PerAxis::new(scales, zero_points, *inner).map_err(ke)
}

/// `Kernel::BottleneckBackward`: `mite_kernels::float::bottleneck_backward` (bit-identical
/// with the unfused input gradients, masks, bias gradients and fused weight update).
fn bottleneck_backward_call(mem: &mut Memory<'_>, call: &Call) -> Res<()> {
    let Kernel::BottleneckBackward {
        project,
        depthwise,
        expand,
        dx,
        depthwise_bias,
        expand_bias,
        update,
        kept,
    } = &call.kernel
    else {
        return Err("not a bottleneck_backward call".into());
    };
    let [gp, gd, _] = mite_ir::program::bottleneck_backward_parts(&call.kernel)
        .ok_or("bottleneck_backward: its parts do not chain")?;
    let x = |i: usize| operand(call, i);
    let dy = f32s(mem, x(0)?)?;
    let (w_p, m_d, w_d, m_e) = (
        i8s(mem, x(1)?)?,
        bits(mem, x(2)?)?,
        i8s(mem, x(3)?)?,
        bits(mem, x(4)?)?,
    );
    let (q_p, q_d) = (int8_weight_quant(project)?, int8_weight_quant(depthwise)?);
    let q_e = dx.as_deref().map(int8_weight_quant).transpose()?;
    // Results: the updated weight (and momentum) first, then dx and the bias gradients.
    let mut next_result = 0;
    let mut take = || {
        next_result += 1;
        result(call, next_result - 1)
    };
    let mut weight_q = None;
    let mut momentum_buf = None;
    let mut trained = None;
    if let Some((deq, sgd_k)) = update {
        let Kernel::Dequantize {
            scales: xs,
            zero_points: xz,
            inner: xi,
            ..
        } = deq.as_ref()
        else {
            return Err("bottleneck_backward: the input's dequantization is missing".into());
        };
        let Kernel::ConvWeightSgd { update: u, .. } = sgd_k.as_ref() else {
            return Err(
                "bottleneck_backward: the update is not a conv2d_backward_weight_sgd".into(),
            );
        };
        let Kernel::Sgd {
            lr_scale,
            momentum,
            weight_decay,
            qas,
            stochastic_seed,
            scales,
            zero_points,
            inner,
            ..
        } = u.as_ref()
        else {
            return Err("bottleneck_backward: the update is not an sgd".into());
        };
        let xv = i8s(mem, x(5)?)?;
        let lr = scalar_f32(mem, x(6)?)?;
        let step = match mem.read(x(7)?)? {
            Vals::I64(v) if v.len() == 1 => v[0],
            _ => return Err("the step operand is not one i64".into()),
        };
        let param = take()?;
        weight_q = Some((param, i8s(mem, param)?));
        if *momentum != 0.0 {
            let id = take()?;
            // The interpreter uses the momentum state only when momentum > 0.
            momentum_buf = Some((id, (*momentum > 0.0).then(|| f32s(mem, id)).transpose()?));
        }
        let rule = update_rule(
            lr * lr_scale,
            *momentum,
            *weight_decay,
            *qas,
            *stochastic_seed,
            step,
        );
        trained = Some((xv, xs, xz, *xi, rule, scales, zero_points, *inner));
    }
    let frozen_w = match (&update, &dx, kept) {
        (None, Some(_), _) => Some(i8s(mem, x(5)?)?),
        // A split weight's frozen remainder follows `step`.
        (Some(_), _, Some(_)) => Some(i8s(mem, x(8)?)?),
        _ => None,
    };
    let dx_id = dx.as_ref().map(|_| take()).transpose()?;
    let db_d_id = depthwise_bias.then(&mut take).transpose()?;
    let db_e_id = expand_bias.then(&mut take).transpose()?;
    let mut dx_v = dx_id.map(|_| vec![0.0; expand.input_len()]);
    let mut db_d = db_d_id.map(|_| vec![0.0; gd.c_in()]);
    let mut db_e = db_e_id.map(|_| vec![0.0; gd.c_in()]);
    let scratch_id = call.scratch.ok_or("bottleneck_backward needs scratch")?;
    let mut scratch = f32s(mem, scratch_id)?;
    let mut m_vals = momentum_buf.as_mut().and_then(|(_, m)| m.take());
    let zps: Vec<i32>;
    let weight = match (&mut weight_q, &trained, &frozen_w) {
        (Some((_, q)), Some((xv, xs, xz, xi, rule, scales, zero_points, inner)), frozen) => {
            zps = zero_points.to_vec();
            let update = kf::ExpandUpdate {
                x: xv,
                x_quant: k8::PerAxis::new(xs, xz, *xi).map_err(ke)?,
                weight: q,
                weight_quant: match q_e {
                    Some(p) => p,
                    // Not read without dx.
                    None => k8::PerAxis::new(scales, &[], *inner).map_err(ke)?,
                },
                momentum: m_vals.as_deref_mut(),
                channels: sgd::ChannelQuant::new(scales, &zps, *inner).map_err(ke)?,
                params: *rule,
            };
            match (kept, frozen) {
                (Some(kept), Some(frozen)) => kf::ExpandWeight::Split {
                    update,
                    frozen,
                    kept: *kept,
                },
                _ => kf::ExpandWeight::Trained(update),
            }
        }
        (_, _, Some(w)) => kf::ExpandWeight::Frozen(kf::Int8Conv {
            geometry: expand,
            weight: w,
            quant: q_e.ok_or("bottleneck_backward: dx without its weight's quantization")?,
        }),
        _ => kf::ExpandWeight::Unused,
    };
    let grads = kf::BottleneckGrads {
        dx: dx_v.as_deref_mut(),
        depthwise_bias: db_d.as_deref_mut(),
        expand_bias: db_e.as_deref_mut(),
    };
    kf::bottleneck_backward(
        &dy,
        kf::Int8Conv {
            geometry: &gp,
            weight: &w_p,
            quant: q_p,
        },
        kf::Int8Conv {
            geometry: &gd,
            weight: &w_d,
            quant: q_d,
        },
        [&m_d, &m_e],
        expand,
        weight,
        grads,
        &mut scratch,
    )
    .map_err(|e| match e {
        mite_kernels::KernelError::NanUpdate { index } => {
            format!("the update of element {index} is NaN")
        }
        e => e.to_string(),
    })?;
    mem.write(scratch_id, Vals::F32(scratch))?;
    if let Some((id, q)) = weight_q {
        mem.write(id, Vals::I8(q))?;
    }
    if let (Some((id, _)), Some(m)) = (momentum_buf, m_vals) {
        mem.write(id, Vals::F32(m))?;
    }
    for (id, v) in [(dx_id, dx_v), (db_d_id, db_d), (db_e_id, db_e)] {
        if let (Some(id), Some(v)) = (id, v) {
            mem.write(id, Vals::F32(v))?;
        }
    }
    Ok(())
}
