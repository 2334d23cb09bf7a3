//! Shared by the parity and QEMU tests: seeded random kernel cases in the harness protocol
//! (see `tests/harness/harness.c`), each with the output mite-kernels gives, and the harness
//! build.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mite_kernels::float::{self, ChannelSlice, Mask, PortableMath};
use mite_kernels::int8::{
    self, AddParams, Conv2dInt8Params, LinearInt8Params, MeanParams, PerAxis,
};
use mite_kernels::sgd::{self, ChannelQuant, SgdParams, UpdateRounding};
use mite_kernels::{
    fixed_point, ActRange, Conv2dGeometry, KernelError, LinearGeometry, OutputStage, QuantParams,
    Requant, Rounding, Window2d,
};

/// One harness case: its input tokens and the two lines mite-kernels' result prints as.
pub struct Case {
    /// Kernel name (the op token).
    pub op: &'static str,
    /// Input tokens (one line).
    pub input: String,
    /// Expected status line and output line.
    pub expected: String,
}

/// SplitMix64 generator (seeded, reproducible).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        sgd::splitmix64(self.0)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
    pub fn usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as i64, hi as i64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit() as f32
    }
    /// A float of varied magnitude (`10^-3 ..= 10^1`, either sign), sometimes zero.
    pub fn wide(&mut self) -> f32 {
        if self.chance(3) {
            return 0.0;
        }
        let m = 10f64.powf(self.unit() * 4.0 - 3.0) as f32;
        if self.chance(50) {
            -m
        } else {
            m
        }
    }
    pub fn i8(&mut self) -> i8 {
        self.range(-128, 127) as i8
    }
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.i8()).collect()
    }
    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.wide()).collect()
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.usize(0, items.len() - 1)]
    }
    /// A log-uniform positive scale in `[lo, hi]`.
    pub fn scale(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }
}

/// Builds the input tokens of a case.
#[derive(Default)]
struct In(String);

impl In {
    fn tok(&mut self, t: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.0, " {t}");
        self
    }
    fn u(&mut self, v: usize) -> &mut Self {
        self.tok(v)
    }
    fn i(&mut self, v: i64) -> &mut Self {
        self.tok(v)
    }
    fn f(&mut self, v: f32) -> &mut Self {
        self.tok(v.to_bits())
    }
    fn d(&mut self, v: f64) -> &mut Self {
        self.tok(v.to_bits())
    }
    fn i8s(&mut self, a: &[i8]) -> &mut Self {
        self.u(a.len());
        a.iter().for_each(|&v| {
            self.i(v.into());
        });
        self
    }
    fn i32s(&mut self, a: &[i32]) -> &mut Self {
        self.u(a.len());
        a.iter().for_each(|&v| {
            self.i(v.into());
        });
        self
    }
    fn u32s(&mut self, a: &[u32]) -> &mut Self {
        self.u(a.len());
        a.iter().for_each(|&v| {
            self.tok(v);
        });
        self
    }
    fn f32s(&mut self, a: &[f32]) -> &mut Self {
        self.u(a.len());
        a.iter().for_each(|&v| {
            self.f(v);
        });
        self
    }
    fn f64s(&mut self, a: &[f64]) -> &mut Self {
        self.u(a.len());
        a.iter().for_each(|&v| {
            self.d(v);
        });
        self
    }
    fn window(&mut self, w: &Window2d) -> &mut Self {
        for v in w
            .kernel
            .iter()
            .chain(&w.strides)
            .chain(&w.pads)
            .chain(&w.dilations)
        {
            self.u(*v);
        }
        self
    }
    fn dims(&mut self, d: [usize; 4]) -> &mut Self {
        d.iter().for_each(|&v| {
            self.u(v);
        });
        self
    }
    fn quant(&mut self, q: QuantParams) -> &mut Self {
        self.f(q.scale).i(q.zero_point.into())
    }
    fn range(&mut self, r: ActRange) -> &mut Self {
        self.i(r.min.into()).i(r.max.into())
    }
}

/// Builds the expected output line.
#[derive(Default)]
struct Out(String);

impl Out {
    fn int(&mut self, v: i64) -> &mut Self {
        let _ = write!(self.0, " {v}");
        self
    }
    fn i8s(&mut self, a: &[i8]) -> &mut Self {
        let _ = write!(self.0, " {}", a.len());
        a.iter().for_each(|&v| {
            let _ = write!(self.0, " {v}");
        });
        self
    }
    fn i32s(&mut self, a: &[i32]) -> &mut Self {
        let _ = write!(self.0, " {}", a.len());
        a.iter().for_each(|&v| {
            let _ = write!(self.0, " {v}");
        });
        self
    }
    fn u32s(&mut self, a: &[u32]) -> &mut Self {
        let _ = write!(self.0, " {}", a.len());
        a.iter().for_each(|&v| {
            let _ = write!(self.0, " {v}");
        });
        self
    }
    fn f32(&mut self, v: f32) -> &mut Self {
        let _ = write!(self.0, " {}", nan_canonical_bits(v));
        self
    }
    fn f32s(&mut self, a: &[f32]) -> &mut Self {
        let _ = write!(self.0, " {}", a.len());
        a.iter().for_each(|&v| {
            let _ = write!(self.0, " {}", nan_canonical_bits(v));
        });
        self
    }
}

/// The status line the harness prints for `r`.
fn status<T>(r: &Result<T, KernelError>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => {
            let (code, expected, found, index, message) = match *e {
                KernelError::Length {
                    what,
                    expected,
                    found,
                } => (1, expected, found, 0, what),
                KernelError::Scratch { needed, found } => (2, needed, found, 0, ""),
                KernelError::Geometry(m) => (3, 0, 0, 0, m),
                KernelError::Param(m) => (4, 0, 0, 0, m),
                KernelError::EmptyWindow => (5, 0, 0, 0, ""),
                KernelError::NanUpdate { index } => (6, 0, 0, index, ""),
            };
            format!("err {code} {expected} {found} {index} {message}")
        }
    }
}

fn case<T>(op: &'static str, input: In, r: &Result<T, KernelError>, out: Out) -> Case {
    Case {
        op,
        input: format!("{op}{}\n", input.0),
        expected: format!("{}\n{}\n", status(r), out.0),
    }
}

fn rounding_code(r: Rounding) -> usize {
    match r {
        Rounding::Double => 0,
        Rounding::Single => 1,
        Rounding::FloatScale => 2,
        Rounding::OnnxRuntime => 3,
    }
}

const ROUNDINGS: [Rounding; 4] = [
    Rounding::Double,
    Rounding::Single,
    Rounding::FloatScale,
    Rounding::OnnxRuntime,
];

/// A random window and input size that usually fit (sometimes not: geometry errors).
fn window(rng: &mut Rng, max_hw: usize) -> (Window2d, [usize; 2]) {
    let k = [rng.pick(&[1, 1, 2, 3, 3, 5]), rng.pick(&[1, 2, 3, 3])];
    let w = Window2d {
        kernel: k,
        strides: [rng.usize(1, 3), rng.usize(1, 3)],
        pads: [
            rng.usize(0, 2),
            rng.usize(0, 2),
            rng.usize(0, 2),
            rng.usize(0, 2),
        ],
        dilations: [rng.pick(&[1, 1, 2]), rng.pick(&[1, 1, 2])],
    };
    let hw = [rng.usize(1, max_hw), rng.usize(1, max_hw)];
    (w, hw)
}

/// A convolution geometry: dense, grouped, depthwise or pointwise.
fn conv_geometry(
    rng: &mut Rng,
    max_hw: usize,
) -> (usize, usize, [usize; 2], usize, usize, Window2d) {
    let (mut w, mut hw) = window(rng, max_hw);
    let mut n = rng.usize(1, 2);
    let (c_in, c_out, groups) = match rng.usize(0, 3) {
        0 => (rng.usize(1, 4), rng.usize(1, 4), 1),
        1 => {
            let c = rng.usize(1, 5);
            (c, c, c)
        }
        2 => {
            let g = rng.usize(2, 3);
            (g * rng.usize(1, 2), g * rng.usize(1, 3), g)
        }
        _ => {
            w = Window2d {
                kernel: [1, 1],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
            };
            // Sometimes wide enough for the C runtime's blocked pointwise paths (blocks of 4
            // and 8 input channels, chunks of 256 output channels), on small planes (the cases
            // are embedded in the Cortex-M self-test's flash and its output lines are at most
            // 32 KB).
            match rng.usize(0, 7) {
                0 => {
                    hw = [rng.usize(1, 3), rng.usize(1, 5)];
                    (rng.usize(8, 19), rng.usize(1, 6), 1)
                }
                1 => {
                    n = 1;
                    hw = [2, 4];
                    (rng.usize(3, 9), rng.usize(255, 258), 1)
                }
                _ => (rng.usize(1, 5), rng.usize(1, 5), 1),
            }
        }
    };
    (n, c_in, hw, c_out, groups, w)
}

fn conv_in(input: &mut In, g: &(usize, usize, [usize; 2], usize, usize, Window2d)) {
    input
        .u(g.0)
        .u(g.1)
        .u(g.2[0])
        .u(g.2[1])
        .u(g.3)
        .u(g.4)
        .window(&g.5);
}

/// A length that is usually `len`, sometimes off by one (length errors).
fn maybe_off(rng: &mut Rng, len: usize) -> usize {
    if rng.chance(4) {
        if len > 0 && rng.chance(50) {
            len - 1
        } else {
            len + 1
        }
    } else {
        len
    }
}

/// A requantizer's tables for `channels` effective scales.
struct Tables {
    rounding: Rounding,
    scales: Vec<f64>,
    multipliers: Vec<i32>,
    shifts: Vec<i32>,
}

fn tables(rng: &mut Rng, channels: usize) -> Tables {
    let rounding = rng.pick(&ROUNDINGS);
    let count = if rng.chance(40) { 1 } else { channels.max(1) };
    let scales: Vec<f64> = (0..count)
        .map(|_| {
            if rng.chance(3) {
                rng.scale(1.0, 4.0) // shifts > 0
            } else {
                rng.scale(1e-5, 0.9)
            }
        })
        .collect();
    let mut multipliers = vec![0; count];
    let mut shifts = vec![0; count];
    mite_kernels::requant::quantize_multipliers(&scales, rounding, &mut multipliers, &mut shifts)
        .expect("valid scales");
    Tables {
        rounding,
        scales,
        multipliers,
        shifts,
    }
}

fn act_range(rng: &mut Rng) -> ActRange {
    if rng.chance(50) {
        ActRange::FULL
    } else {
        let a = rng.i8();
        let b = rng.i8();
        ActRange {
            min: a.min(b),
            max: a.max(b),
        }
    }
}

fn stage_in(input: &mut In, t: &Tables, zp: i8, range: ActRange) {
    input
        .u(rounding_code(t.rounding))
        .f64s(&t.scales)
        .i32s(&t.multipliers)
        .i32s(&t.shifts)
        .i(zp.into())
        .range(range);
}

fn zero_points(rng: &mut Rng, channels: usize) -> Vec<i8> {
    let len = rng.pick(&[0, 1, channels]);
    (0..len).map(|_| rng.range(-12, 12) as i8).collect()
}

fn bias(rng: &mut Rng, len: usize) -> Option<Vec<i32>> {
    rng.chance(70).then(|| {
        (0..len)
            .map(|_| {
                if rng.chance(2) {
                    rng.pick(&[i32::MAX, i32::MIN])
                } else {
                    rng.range(-70_000, 70_000) as i32
                }
            })
            .collect()
    })
}

pub fn conv_i8(rng: &mut Rng) -> Case {
    let geo = conv_geometry(rng, 9);
    let (n, c_in, hw, c_out, groups, w) = geo;
    let t = tables(rng, c_out);
    let range = act_range(rng);
    let (x_zp, y_zp) = (rng.i8(), rng.i8());
    let zps = zero_points(rng, c_out);
    let bias_add = int8::BiasAdd::for_rounding(t.rounding);
    let mut input = In::default();
    conv_in(&mut input, &geo);
    input.i(x_zp.into()).i8s(&zps);
    stage_in(&mut input, &t, y_zp, range);
    input.u(rounding_code_bias(bias_add));
    let g = Conv2dGeometry::new(n, c_in, hw, c_out, groups, w);
    let (x_len, w_len, out_len, plane) = match g {
        Ok(g) => (g.input_len(), g.weight_len(), g.output_len(), g.out_plane()),
        Err(_) => (rng.usize(0, 20), rng.usize(0, 20), rng.usize(0, 20), 4),
    };
    let x = {
        let len = maybe_off(rng, x_len);
        rng.i8s(len)
    };
    let wt = {
        let len = maybe_off(rng, w_len);
        rng.i8s(len)
    };
    let b_len = maybe_off(rng, c_out);
    let b = bias(rng, b_len);
    let out_len = maybe_off(rng, out_len);
    let scratch_len = if rng.chance(5) {
        plane.saturating_sub(1)
    } else {
        plane + rng.usize(0, 2)
    };
    let requant = Requant::new(t.rounding, &t.scales, &t.multipliers, &t.shifts).unwrap();
    let stage = OutputStage {
        requant,
        zero_point: y_zp,
        range,
    };
    let mut out = vec![0i8; out_len];
    let mut scratch = vec![0i32; scratch_len];
    let r = g.and_then(|g| {
        let p = Conv2dInt8Params::new(g, x_zp, &zps, stage)?;
        assert_eq!(p.bias_add, bias_add);
        int8::conv2d_int8(&x, &wt, b.as_deref(), &mut out, &mut scratch, &p)
    });
    input.i8s(&x).i8s(&wt);
    match &b {
        Some(b) => input.u(1).i32s(b),
        None => input.u(0),
    };
    input.u(out_len).u(scratch_len);
    let mut o = Out::default();
    o.i8s(&out);
    case("conv_i8", input, &r, o)
}

/// One convolution of a bottleneck: requantization tables, zero points, clamp.
struct BottleneckStage {
    t: Tables,
    x_zp: i8,
    y_zp: i8,
    zps: Vec<i8>,
    range: ActRange,
}

impl BottleneckStage {
    fn new(rng: &mut Rng, rounding: Rounding, channels: usize) -> Self {
        let mut t = tables(rng, channels);
        if t.rounding != rounding {
            // One rounding for the whole bottleneck, as the lowering gives it.
            t = Tables {
                rounding,
                scales: t.scales.clone(),
                multipliers: vec![0; t.scales.len()],
                shifts: vec![0; t.scales.len()],
            };
            mite_kernels::requant::quantize_multipliers(
                &t.scales,
                rounding,
                &mut t.multipliers,
                &mut t.shifts,
            )
            .expect("valid scales");
        }
        Self {
            t,
            x_zp: rng.i8(),
            y_zp: rng.i8(),
            zps: zero_points(rng, channels),
            range: act_range(rng),
        }
    }

    fn write(&self, input: &mut In) {
        input.i(self.x_zp.into()).i8s(&self.zps);
        stage_in(input, &self.t, self.y_zp, self.range);
        input.u(rounding_code_bias(int8::BiasAdd::for_rounding(
            self.t.rounding,
        )));
    }

    fn params(&self, g: Conv2dGeometry) -> Result<Conv2dInt8Params<'_>, KernelError> {
        let requant = Requant::new(
            self.t.rounding,
            &self.t.scales,
            &self.t.multipliers,
            &self.t.shifts,
        )?;
        let stage = OutputStage {
            requant,
            zero_point: self.y_zp,
            range: self.range,
        };
        Conv2dInt8Params::new(g, self.x_zp, &self.zps, stage)
    }
}

/// The streamed bottleneck: a first convolution (pointwise, or a random dense window as a stem),
/// a depthwise convolution with a random window, a pointwise projection.
pub fn bottleneck_i8(rng: &mut Rng) -> Case {
    let (dw, mut hw) = window(rng, 9);
    let pw = Window2d {
        kernel: [1, 1],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
    };
    let mut first = pw;
    if rng.chance(50) {
        // A stem-like first convolution: a few tries at a window and input size whose output
        // the depthwise window fits (else the pointwise one, with the depthwise's own size).
        let fits = |first: Window2d, hw: [usize; 2]| {
            Conv2dGeometry::new(1, 1, hw, 1, 1, first)
                .and_then(|e| Conv2dGeometry::new(1, 1, e.out_hw(), 1, 1, dw))
                .is_ok()
        };
        for _ in 0..8 {
            let (w, big) = window(rng, 17);
            if fits(w, big) {
                (first, hw) = (w, big);
                break;
            }
        }
    }
    let (n, c_in, c_mid, c_out) = (
        rng.usize(1, 2),
        rng.usize(1, 4),
        rng.usize(1, 6),
        rng.usize(1, 4),
    );
    let rounding = rng.pick(&ROUNDINGS);
    let stages = [
        BottleneckStage::new(rng, rounding, c_mid),
        BottleneckStage::new(rng, rounding, c_mid),
        BottleneckStage::new(rng, rounding, c_out),
    ];
    let mut input = In::default();
    input
        .u(n)
        .u(c_in)
        .u(hw[0])
        .u(hw[1])
        .u(c_mid)
        .u(c_out)
        .window(&dw)
        .window(&first);
    for s in &stages {
        s.write(&mut input);
    }
    let geometries = Conv2dGeometry::new(n, c_in, hw, c_mid, 1, first).and_then(|e| {
        let d = Conv2dGeometry::new(n, c_mid, e.out_hw(), c_mid, c_mid, dw)?;
        let p = Conv2dGeometry::new(n, c_mid, d.out_hw(), c_out, 1, pw)?;
        Ok([e, d, p])
    });
    let lens = match &geometries {
        Ok([e, d, p]) => [
            e.input_len(),
            e.weight_len(),
            c_mid,
            d.weight_len(),
            c_mid,
            p.weight_len(),
            c_out,
            p.output_len(),
        ],
        Err(_) => [rng.usize(0, 20), 3, 3, 3, 3, 3, 3, rng.usize(0, 20)],
    };
    let x = {
        let len = maybe_off(rng, lens[0]);
        rng.i8s(len)
    };
    let mut ws = Vec::new();
    let mut bs = Vec::new();
    for k in 0..3 {
        let len = maybe_off(rng, lens[1 + 2 * k]);
        ws.push(rng.i8s(len));
        let len = maybe_off(rng, lens[2 + 2 * k]);
        bs.push(bias(rng, len));
    }
    let out_len = maybe_off(rng, lens[7]);
    let r = geometries.and_then(|[e, d, p]| {
        let params = int8::BottleneckInt8Params::new(
            stages[0].params(e)?,
            stages[1].params(d)?,
            stages[2].params(p)?,
        )?;
        Ok(params)
    });
    let needed = r.as_ref().map_or(4, int8::bottleneck_int8_scratch_len);
    let scratch_len = if rng.chance(5) {
        needed.saturating_sub(1)
    } else {
        needed + rng.usize(0, 2)
    };
    let mut out = vec![0i8; out_len];
    let mut scratch = vec![0i8; scratch_len];
    let r = r.and_then(|params| {
        let weights = int8::BottleneckWeights {
            w_expand: &ws[0],
            b_expand: bs[0].as_deref(),
            w_depthwise: &ws[1],
            b_depthwise: bs[1].as_deref(),
            w_project: &ws[2],
            b_project: bs[2].as_deref(),
        };
        int8::bottleneck_int8(&x, &weights, &mut out, &mut scratch, &params)
    });
    input.i8s(&x);
    for (w, b) in ws.iter().zip(&bs) {
        input.i8s(w);
        match b {
            Some(b) => input.u(1).i32s(b),
            None => input.u(0),
        };
    }
    input.u(out_len).u(scratch_len);
    let mut o = Out::default();
    o.i8s(&out);
    case("bottleneck_i8", input, &r, o)
}

/// A random chain of two streamed bottlenecks: a first block as [`bottleneck_i8`]'s, then a
/// block with a pointwise expansion and a random depthwise window reading its output (the link
/// zero points usually meet; sometimes not, or the windows do not fit: errors). Shared by
/// [`bottleneck_chain_i8`] and [`bottleneck_chain_in_place_i8`].
struct ChainCase {
    /// The input tokens of the shapes, windows and stages.
    input: In,
    /// The six convolutions' stages.
    stages: Vec<BottleneckStage>,
    /// The six geometries (first block, second block), or why they do not fit.
    geometries: Result<[Conv2dGeometry; 6], KernelError>,
    /// The first block's input (sometimes of a wrong length).
    x: Vec<i8>,
    /// The six weights and biases (sometimes of wrong lengths).
    ws: Vec<Vec<i8>>,
    bs: Vec<Option<Vec<i32>>>,
    /// The second block's output length (random when the geometries do not fit).
    out_len: usize,
}

impl ChainCase {
    /// A random chain; `in_place` draws mostly chains that can run in place (one image, two
    /// or more input channels).
    fn new(rng: &mut Rng, in_place: bool) -> Self {
        let pw = Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        };
        let (dw1, mut hw) = window(rng, 12);
        let mut first = pw;
        if rng.chance(50) {
            for _ in 0..8 {
                let (w, big) = window(rng, 17);
                let fits = Conv2dGeometry::new(1, 1, big, 1, 1, w)
                    .and_then(|e| Conv2dGeometry::new(1, 1, e.out_hw(), 1, 1, dw1))
                    .is_ok();
                if fits {
                    (first, hw) = (w, big);
                    break;
                }
            }
        }
        let link_hw = Conv2dGeometry::new(1, 1, hw, 1, 1, first)
            .and_then(|e| Conv2dGeometry::new(1, 1, e.out_hw(), 1, 1, dw1))
            .map_or([1, 1], |d| d.out_hw());
        let mut dw2 = window(rng, 9).0;
        for _ in 0..8 {
            if Conv2dGeometry::new(1, 1, link_hw, 1, 1, dw2).is_ok() {
                break;
            }
            dw2 = window(rng, 9).0;
        }
        let n = if in_place && rng.chance(90) {
            1
        } else {
            rng.usize(1, 2)
        };
        let mut channels = [
            rng.usize(1, 4),
            rng.usize(1, 6),
            rng.usize(1, 4),
            rng.usize(1, 6),
            rng.usize(1, 4),
        ];
        if in_place && rng.chance(90) {
            channels[0] = rng.usize(2, 4);
        }
        let [c_in, c_mid1, c_link, c_mid2, c_out] = channels;
        let rounding = rng.pick(&ROUNDINGS);
        let mut stages: Vec<BottleneckStage> = [c_mid1, c_mid1, c_link, c_mid2, c_mid2, c_out]
            .into_iter()
            .map(|c| BottleneckStage::new(rng, rounding, c))
            .collect();
        if !rng.chance(10) {
            stages[3].x_zp = stages[2].y_zp;
        }
        let mut input = In::default();
        for c in [n, c_in, hw[0], hw[1], c_mid1, c_link, c_mid2, c_out] {
            input.u(c);
        }
        input.window(&first).window(&dw1).window(&dw2);
        for st in &stages {
            st.write(&mut input);
        }
        let geometries = (|| -> Result<[Conv2dGeometry; 6], KernelError> {
            let e1 = Conv2dGeometry::new(n, c_in, hw, c_mid1, 1, first)?;
            let d1 = Conv2dGeometry::new(n, c_mid1, e1.out_hw(), c_mid1, c_mid1, dw1)?;
            let p1 = Conv2dGeometry::new(n, c_mid1, d1.out_hw(), c_link, 1, pw)?;
            let e2 = Conv2dGeometry::new(n, c_link, p1.out_hw(), c_mid2, 1, pw)?;
            let d2 = Conv2dGeometry::new(n, c_mid2, e2.out_hw(), c_mid2, c_mid2, dw2)?;
            let p2 = Conv2dGeometry::new(n, c_mid2, d2.out_hw(), c_out, 1, pw)?;
            Ok([e1, d1, p1, e2, d2, p2])
        })();
        let (x_len, out_len, weights) = match &geometries {
            Ok(g) => (
                g[0].input_len(),
                g[5].output_len(),
                g.map(|g| (g.weight_len(), g.c_out())),
            ),
            Err(_) => (rng.usize(0, 20), rng.usize(0, 20), [(3, 3); 6]),
        };
        let x = {
            let len = maybe_off(rng, x_len);
            rng.i8s(len)
        };
        let mut ws = Vec::new();
        let mut bs = Vec::new();
        for (w_len, b_len) in weights {
            let len = maybe_off(rng, w_len);
            ws.push(rng.i8s(len));
            let len = maybe_off(rng, b_len);
            bs.push(bias(rng, len));
        }
        Self {
            input,
            stages,
            geometries,
            x,
            ws,
            bs,
            out_len,
        }
    }

    /// The chain's parameters (or why they do not chain).
    fn params(&self) -> Result<int8::BottleneckChainInt8Params<'_>, KernelError> {
        let g = self.geometries.as_ref().map_err(|e| *e)?;
        let block = |i: usize| {
            int8::BottleneckInt8Params::new(
                self.stages[i].params(g[i])?,
                self.stages[i + 1].params(g[i + 1])?,
                self.stages[i + 2].params(g[i + 2])?,
            )
        };
        int8::BottleneckChainInt8Params::new(block(0)?, block(3)?)
    }

    /// The two blocks' weights.
    fn weights(&self) -> [int8::BottleneckWeights<'_>; 2] {
        [0, 3].map(|i| int8::BottleneckWeights {
            w_expand: &self.ws[i],
            b_expand: self.bs[i].as_deref(),
            w_depthwise: &self.ws[i + 1],
            b_depthwise: self.bs[i + 1].as_deref(),
            w_project: &self.ws[i + 2],
            b_project: self.bs[i + 2].as_deref(),
        })
    }

    /// The input tokens through the weights (`x` as given).
    fn tokens(&self) -> In {
        let mut input = In(self.input.0.clone());
        input.i8s(&self.x);
        for (w, b) in self.ws.iter().zip(&self.bs) {
            input.i8s(w);
            match b {
                Some(b) => input.u(1).i32s(b),
                None => input.u(0),
            };
        }
        input
    }
}

/// A scratch length that is usually `needed` or a little more, sometimes one short.
fn scratch_len_around(rng: &mut Rng, needed: usize) -> usize {
    if rng.chance(5) {
        needed.saturating_sub(1)
    } else {
        needed + rng.usize(0, 2)
    }
}

/// Two streamed bottlenecks chained ([`ChainCase`]).
pub fn bottleneck_chain_i8(rng: &mut Rng) -> Case {
    let chain = ChainCase::new(rng, false);
    let out_len = maybe_off(rng, chain.out_len);
    let r = chain.params();
    let needed = r
        .as_ref()
        .map_or(4, int8::bottleneck_chain_int8_scratch_len);
    let scratch_len = scratch_len_around(rng, needed);
    let mut out = vec![0i8; out_len];
    let mut scratch = vec![0i8; scratch_len];
    let r = r.and_then(|params| {
        let w = chain.weights();
        int8::bottleneck_chain_int8(&chain.x, [&w[0], &w[1]], &mut out, &mut scratch, &params)
    });
    let mut input = chain.tokens();
    input.u(out_len).u(scratch_len);
    let mut o = Out::default();
    o.i8s(&out);
    case("bottleneck_chain_i8", input, &r, o)
}

/// The chain in place ([`ChainCase`], mostly one image of two or more channels; sometimes an
/// output larger than an input channel, a batch or one channel: refused). The output line is
/// the whole buffer after the call: the chain's output then the clobbered rest, or the input
/// untouched on an error.
pub fn bottleneck_chain_in_place_i8(rng: &mut Rng) -> Case {
    let chain = ChainCase::new(rng, true);
    let r = chain.params();
    let needed = match &r {
        Ok(p) => int8::bottleneck_chain_int8_in_place_scratch_len(p)
            .unwrap_or_else(|| int8::bottleneck_chain_int8_scratch_len(p) + chain.out_len),
        Err(_) => 4,
    };
    let scratch_len = scratch_len_around(rng, needed);
    let mut buf = chain.x.clone();
    let mut scratch = vec![0i8; scratch_len];
    let r = r.and_then(|params| {
        let w = chain.weights();
        int8::bottleneck_chain_int8_in_place(&mut buf, [&w[0], &w[1]], &mut scratch, &params)
    });
    let mut input = chain.tokens();
    input.u(scratch_len);
    let mut o = Out::default();
    o.i8s(&buf);
    case("bottleneck_chain_in_place_i8", input, &r, o)
}

fn rounding_code_bias(b: int8::BiasAdd) -> usize {
    match b {
        int8::BiasAdd::Saturating => 0,
        int8::BiasAdd::Wrapping => 1,
    }
}

pub fn linear_i8(rng: &mut Rng) -> Case {
    let (n, k, m) = (
        rng.usize(1, 3),
        rng.pick(&[0, 1, 3, 8, 17]),
        rng.usize(1, 9),
    );
    let t = tables(rng, m);
    let range = act_range(rng);
    let (x_zp, y_zp) = (rng.i8(), rng.i8());
    let zps = zero_points(rng, m);
    let bias_add = int8::BiasAdd::for_rounding(t.rounding);
    let mut input = In::default();
    input.u(n).u(k).u(m).i(x_zp.into()).i8s(&zps);
    stage_in(&mut input, &t, y_zp, range);
    input.u(rounding_code_bias(bias_add));
    let x = {
        let len = maybe_off(rng, n * k);
        rng.i8s(len)
    };
    let w = {
        let len = maybe_off(rng, m * k);
        rng.i8s(len)
    };
    let b_len = maybe_off(rng, m);
    let b = bias(rng, b_len);
    let out_len = maybe_off(rng, n * m);
    let requant = Requant::new(t.rounding, &t.scales, &t.multipliers, &t.shifts).unwrap();
    let stage = OutputStage {
        requant,
        zero_point: y_zp,
        range,
    };
    let mut out = vec![0i8; out_len];
    let r = LinearGeometry::new(n, k, m).and_then(|g| {
        let p = LinearInt8Params::new(g, x_zp, &zps, stage)?;
        int8::linear_int8(&x, &w, b.as_deref(), &mut out, &p)
    });
    input.i8s(&x).i8s(&w);
    match &b {
        Some(b) => input.u(1).i32s(b),
        None => input.u(0),
    };
    input.u(out_len);
    let mut o = Out::default();
    o.i8s(&out);
    case("linear_i8", input, &r, o)
}

fn quant_params(rng: &mut Rng) -> QuantParams {
    QuantParams {
        scale: rng.scale(0.004, 0.3) as f32,
        zero_point: rng.range(-30, 30) as i8,
    }
}

pub fn add_i8(rng: &mut Rng) -> Case {
    let (p, rounding) = loop {
        let rounding = rng.pick(&ROUNDINGS[..3]);
        if let Ok(p) = AddParams::new(
            quant_params(rng),
            quant_params(rng),
            quant_params(rng),
            act_range(rng),
            rounding,
        ) {
            break (p, rounding);
        }
    };
    let len = rng.usize(1, 40);
    let a = rng.i8s(len);
    let b = {
        let len = maybe_off(rng, len);
        rng.i8s(len)
    };
    let out_len = maybe_off(rng, len);
    let mut input = In::default();
    input
        .quant(p.a)
        .quant(p.b)
        .quant(p.out)
        .range(p.range)
        .u(rounding_code(rounding));
    for (m, s) in p.input_multipliers.iter().chain([&p.output_multiplier]) {
        input.i((*m).into()).i((*s).into());
    }
    input.i8s(&a).i8s(&b).u(out_len);
    let mut out = vec![0i8; out_len];
    let r = int8::add_int8(&a, &b, &mut out, &p);
    let mut o = Out::default();
    o.i8s(&out);
    case("add_i8", input, &r, o)
}

fn pool_dims(rng: &mut Rng, hw: [usize; 2]) -> [usize; 4] {
    [rng.usize(1, 2), rng.usize(1, 3), hw[0], hw[1]]
}

pub fn avgpool_i8(rng: &mut Rng) -> Case {
    let (w, hw) = window(rng, 8);
    let dims = pool_dims(rng, hw);
    let range = act_range(rng);
    let x = {
        let len = maybe_off(rng, dims.iter().product());
        rng.i8s(len)
    };
    let out_len = w
        .output_size(hw)
        .map_or(3, |o| dims[0] * dims[1] * o[0] * o[1]);
    let out_len = maybe_off(rng, out_len);
    let mut input = In::default();
    input.dims(dims).window(&w).range(range).i8s(&x).u(out_len);
    let mut out = vec![0i8; out_len];
    let r = int8::avg_pool_int8(&x, dims, &w, range, &mut out);
    let mut o = Out::default();
    o.i8s(&out);
    case("avgpool_i8", input, &r, o)
}

pub fn gavgpool_i8(rng: &mut Rng) -> Case {
    let dims = {
        let hw = [rng.usize(1, 7), rng.usize(1, 7)];
        pool_dims(rng, hw)
    };
    let rounding = rng.pick(&ROUNDINGS);
    let x = {
        let len = maybe_off(rng, dims.iter().product());
        rng.i8s(len)
    };
    let out_len = maybe_off(rng, dims[0] * dims[1]);
    let mut input = In::default();
    input
        .dims(dims)
        .u(rounding_code(rounding))
        .i8s(&x)
        .u(out_len);
    let mut out = vec![0i8; out_len];
    let r = int8::global_avg_pool_int8(&x, dims, rounding, &mut out);
    let mut o = Out::default();
    o.i8s(&out);
    case("gavgpool_i8", input, &r, o)
}

pub fn mean_i8(rng: &mut Rng) -> Case {
    let dims = {
        let hw = [rng.usize(1, 7), rng.usize(1, 7)];
        pool_dims(rng, hw)
    };
    let p = MeanParams::new(
        quant_params(rng),
        quant_params(rng),
        rng.pick(&ROUNDINGS[..3]),
    )
    .unwrap();
    let x = {
        let len = maybe_off(rng, dims.iter().product());
        rng.i8s(len)
    };
    let out_len = maybe_off(rng, dims[0] * dims[1]);
    let mut input = In::default();
    input
        .dims(dims)
        .quant(p.input)
        .quant(p.output)
        .u(rounding_code(p.rounding))
        .d(p.real)
        .i(p.multiplier.0.into())
        .i(p.multiplier.1.into())
        .i8s(&x)
        .u(out_len);
    let mut out = vec![0i8; out_len];
    let r = int8::mean_int8(&x, dims, &mut out, &p);
    let mut o = Out::default();
    o.i8s(&out);
    case("mean_i8", input, &r, o)
}

/// Floats including the special values quantization must handle.
fn quantize_inputs(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if rng.chance(5) {
                rng.pick(&[
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    1e30,
                    -1e30,
                    -0.0,
                ])
            } else {
                rng.wide() * 3.0
            }
        })
        .collect()
}

fn per_axis_tables(rng: &mut Rng) -> (Vec<f32>, Vec<i8>, usize) {
    let channels = rng.usize(1, 4);
    let scales = (0..channels)
        .map(|_| rng.scale(0.001, 0.5) as f32)
        .collect();
    let zps = if rng.chance(30) {
        Vec::new()
    } else {
        rng.i8s(channels)
    };
    (scales, zps, rng.usize(0, 5))
}

pub fn quantize(rng: &mut Rng) -> Case {
    let (scales, zps, inner) = per_axis_tables(rng);
    let p = PerAxis::new(&scales, &zps, inner).unwrap();
    let x = {
        let n = rng.usize(0, 30);
        quantize_inputs(rng, n)
    };
    let out_len = maybe_off(rng, x.len());
    let mut input = In::default();
    input.f32s(&scales).i8s(&zps).u(inner).f32s(&x).u(out_len);
    let mut out = vec![0i8; out_len];
    let r = int8::quantize(&x, &mut out, &p);
    let mut o = Out::default();
    o.i8s(&out);
    case("quantize", input, &r, o)
}

pub fn dequantize(rng: &mut Rng) -> Case {
    let (scales, zps, inner) = per_axis_tables(rng);
    let p = PerAxis::new(&scales, &zps, inner).unwrap();
    let x = {
        let v = rng.usize(0, 30);
        rng.i8s(v)
    };
    let out_len = maybe_off(rng, x.len());
    let mut input = In::default();
    input.f32s(&scales).i8s(&zps).u(inner).i8s(&x).u(out_len);
    let mut out = vec![0f32; out_len];
    let r = int8::dequantize(&x, &mut out, &p);
    let mut o = Out::default();
    o.f32s(&out);
    case("dequantize", input, &r, o)
}

pub fn requantize(rng: &mut Rng) -> Case {
    let from = quant_params(rng);
    let mut to = quant_params(rng);
    if rng.chance(4) {
        to.scale = rng.pick(&[0.0, -1.0, f32::NAN]);
    }
    let x = {
        let v = rng.usize(0, 30);
        rng.i8s(v)
    };
    let out_len = maybe_off(rng, x.len());
    let mut input = In::default();
    input.quant(from).quant(to).i8s(&x).u(out_len);
    let mut out = vec![0i8; out_len];
    let r = int8::requantize(&x, &mut out, from, to);
    let mut o = Out::default();
    o.i8s(&out);
    case("requantize", input, &r, o)
}

/// Which float convolution kernel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ConvF32 {
    Forward,
    Input,
    Weight,
    WeightSlice,
    Bias,
}

pub fn conv_f32(rng: &mut Rng, which: ConvF32) -> Case {
    let geo = conv_geometry(rng, 9);
    let (n, c_in, hw, c_out, groups, w) = if which == ConvF32::WeightSlice && rng.chance(90) {
        let g = conv_geometry(rng, 9);
        (
            g.0,
            g.1.max(2),
            g.2,
            g.3,
            1,
            if g.4 == 1 { g.5 } else { geo.5 },
        )
    } else {
        geo
    };
    let geo = (n, c_in, hw, c_out, groups, w);
    let g = Conv2dGeometry::new(n, c_in, hw, c_out, groups, w);
    let (x_len, w_len, y_len, plane_in) = match g {
        Ok(g) => (g.input_len(), g.weight_len(), g.output_len(), g.in_plane()),
        Err(_) => (rng.usize(0, 9), rng.usize(0, 9), rng.usize(0, 9), 1),
    };
    let (start, len) = if rng.chance(10) {
        (rng.usize(0, c_in), rng.usize(0, c_in + 1))
    } else {
        let start = rng.usize(0, c_in - 1);
        (start, rng.usize(0, c_in - start))
    };
    let taps = w.kernel[0] * w.kernel[1];
    let mut input = In::default();
    conv_in(&mut input, &geo);
    let (op, a_len, b_len, out_len) = match which {
        ConvF32::Forward => ("conv_f32", x_len, w_len, y_len),
        ConvF32::Input => ("conv_bwd_in", y_len, w_len, x_len),
        ConvF32::Weight => ("conv_bwd_w", x_len, y_len, w_len),
        ConvF32::WeightSlice => {
            input.u(start).u(len);
            (
                "conv_bwd_w_slice",
                n * len * plane_in,
                y_len,
                c_out * len * taps,
            )
        }
        ConvF32::Bias => ("conv_bwd_b", y_len, 0, c_out),
    };
    let a = {
        let len = maybe_off(rng, a_len);
        rng.f32s(len)
    };
    let b = {
        let len = maybe_off(rng, b_len);
        rng.f32s(len)
    };
    let bias = (which == ConvF32::Forward && rng.chance(60)).then(|| {
        let len = maybe_off(rng, c_out);
        rng.f32s(len)
    });
    let out_len = maybe_off(rng, out_len);
    input.f32s(&a);
    if which != ConvF32::Bias {
        input.f32s(&b);
    }
    if which == ConvF32::Forward {
        match &bias {
            Some(bias) => input.u(1).f32s(bias),
            None => input.u(0),
        };
    }
    input.u(out_len);
    let mut out = vec![0f32; out_len];
    let r = g.and_then(|g| match which {
        ConvF32::Forward => float::conv2d(&a, &b, bias.as_deref(), &mut out, &g),
        ConvF32::Input => float::conv2d_backward_input(&a, &b, &mut out, &g),
        ConvF32::Weight => float::conv2d_backward_weight(&a, &b, &mut out, &g),
        ConvF32::WeightSlice => {
            float::conv2d_backward_weight_slice(&a, &b, &mut out, &g, ChannelSlice { start, len })
        }
        ConvF32::Bias => float::conv2d_backward_bias(&a, &mut out, &g),
    });
    let mut o = Out::default();
    o.f32s(&out);
    case(op, input, &r, o)
}

/// The transposed convolution over an `i8` weight dequantized tap by tap.
pub fn conv_bwd_in_i8w(rng: &mut Rng) -> Case {
    let geo = conv_geometry(rng, 9);
    let (n, c_in, hw, c_out, groups, w) = geo;
    let g = Conv2dGeometry::new(n, c_in, hw, c_out, groups, w);
    let (x_len, w_len, y_len) = match g {
        Ok(g) => (g.input_len(), g.weight_len(), g.output_len()),
        Err(_) => (rng.usize(0, 9), rng.usize(0, 9), rng.usize(0, 9)),
    };
    let (scales, zps, inner) = per_axis_tables(rng);
    let p = PerAxis::new(&scales, &zps, inner).unwrap();
    let dy = {
        let len = maybe_off(rng, y_len);
        rng.f32s(len)
    };
    let wq = {
        let len = maybe_off(rng, w_len);
        rng.i8s(len)
    };
    let out_len = maybe_off(rng, x_len);
    let mut input = In::default();
    conv_in(&mut input, &geo);
    input
        .f32s(&scales)
        .i8s(&zps)
        .u(inner)
        .f32s(&dy)
        .i8s(&wq)
        .u(out_len);
    let mut out = vec![0f32; out_len];
    let r = g.and_then(|g| float::conv2d_backward_input_int8(&dy, &wq, &p, &mut out, &g));
    let mut o = Out::default();
    o.f32s(&out);
    case("conv_bwd_in_i8w", input, &r, o)
}

/// The transposed convolution over an `i8` weight written over `dy` (depthwise with equal
/// planes half the time it is depthwise, else whatever geometry: the error paths too).
pub fn conv_bwd_in_i8w_inplace(rng: &mut Rng) -> Case {
    let mut geo = conv_geometry(rng, 9);
    if geo.1 == geo.4 && geo.3 == geo.4 && rng.chance(50) {
        geo.5 = Window2d {
            kernel: [3, 3],
            strides: [1, 1],
            pads: [1; 4],
            dilations: [1, 1],
        };
    }
    let (n, c_in, hw, c_out, groups, w) = geo;
    let g = Conv2dGeometry::new(n, c_in, hw, c_out, groups, w);
    let (w_len, y_len) = match g {
        Ok(g) => (g.weight_len(), g.output_len()),
        Err(_) => (rng.usize(0, 9), rng.usize(0, 9)),
    };
    let needed = g
        .ok()
        .and_then(|g| float::InPlaceConv::of(&g).map(|k| k.scratch_len(&g)))
        .unwrap_or(4);
    let (scales, zps, inner) = per_axis_tables(rng);
    let p = PerAxis::new(&scales, &zps, inner).unwrap();
    let dy = {
        let len = maybe_off(rng, y_len);
        rng.f32s(len)
    };
    let wq = {
        let len = maybe_off(rng, w_len);
        rng.i8s(len)
    };
    let scratch_len = maybe_off(rng, needed);
    let mut input = In::default();
    conv_in(&mut input, &geo);
    input
        .f32s(&scales)
        .i8s(&zps)
        .u(inner)
        .f32s(&dy)
        .i8s(&wq)
        .u(scratch_len);
    let mut buf = dy.clone();
    let mut scratch = vec![0f32; scratch_len];
    let r = g.and_then(|g| {
        float::conv2d_backward_input_int8_in_place(&mut buf, &wq, &p, &mut scratch, &g)
    });
    let mut o = Out::default();
    o.f32s(&buf);
    case("conv_bwd_in_i8w_inplace", input, &r, o)
}

/// Which float linear kernel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LinearF32 {
    Forward,
    Input,
    Weight,
    Bias,
}

pub fn linear_f32(rng: &mut Rng, which: LinearF32) -> Case {
    let (n, k, m) = (
        rng.usize(1, 3),
        rng.pick(&[0, 1, 4, 9, 16]),
        rng.pick(&[0, 1, 3, 7]),
    );
    let (op, a_len, b_len, out_len) = match which {
        LinearF32::Forward => ("linear_f32", n * k, m * k, n * m),
        LinearF32::Input => ("linear_bwd_in", n * m, m * k, n * k),
        LinearF32::Weight => ("linear_bwd_w", n * k, n * m, m * k),
        LinearF32::Bias => ("linear_bwd_b", n * m, 0, m),
    };
    let a = {
        let len = maybe_off(rng, a_len);
        rng.f32s(len)
    };
    let b = {
        let len = maybe_off(rng, b_len);
        rng.f32s(len)
    };
    let bias = (which == LinearF32::Forward && rng.chance(60)).then(|| {
        let len = maybe_off(rng, m);
        rng.f32s(len)
    });
    let out_len = maybe_off(rng, out_len);
    let mut input = In::default();
    input.u(n).u(k).u(m).f32s(&a);
    if which != LinearF32::Bias {
        input.f32s(&b);
    }
    if which == LinearF32::Forward {
        match &bias {
            Some(bias) => input.u(1).f32s(bias),
            None => input.u(0),
        };
    }
    input.u(out_len);
    let mut out = vec![0f32; out_len];
    let r = LinearGeometry::new(n, k, m).and_then(|g| match which {
        LinearF32::Forward => float::linear(&a, &b, bias.as_deref(), &mut out, &g),
        LinearF32::Input => float::linear_backward_input(&a, &b, &mut out, &g),
        LinearF32::Weight => float::linear_backward_weight(&a, &b, &mut out, &g),
        LinearF32::Bias => float::linear_backward_bias(&a, &mut out, &g),
    });
    let mut o = Out::default();
    o.f32s(&out);
    case(op, input, &r, o)
}

pub fn avgpool_bwd(rng: &mut Rng) -> Case {
    let (w, hw) = window(rng, 8);
    let dims = pool_dims(rng, hw);
    let include_pad = rng.chance(50);
    let dy_len = w
        .output_size(hw)
        .map_or(3, |o| dims[0] * dims[1] * o[0] * o[1]);
    let dy = {
        let len = maybe_off(rng, dy_len);
        rng.f32s(len)
    };
    let out_len = maybe_off(rng, dims.iter().product());
    let mut input = In::default();
    input
        .dims(dims)
        .window(&w)
        .u(include_pad.into())
        .f32s(&dy)
        .u(out_len);
    let mut out = vec![0f32; out_len];
    let r = float::avg_pool_backward(&dy, dims, &w, include_pad, &mut out);
    let mut o = Out::default();
    o.f32s(&out);
    case("avgpool_bwd", input, &r, o)
}

pub fn gavgpool_bwd(rng: &mut Rng) -> Case {
    let dims = {
        let hw = [rng.usize(1, 7), rng.usize(1, 7)];
        pool_dims(rng, hw)
    };
    let dy = {
        let len = maybe_off(rng, dims[0] * dims[1]);
        rng.f32s(len)
    };
    let out_len = maybe_off(rng, dims.iter().product());
    let mut input = In::default();
    input.dims(dims).f32s(&dy).u(out_len);
    let mut out = vec![0f32; out_len];
    let r = float::global_avg_pool_backward(&dy, dims, &mut out);
    let mut o = Out::default();
    o.f32s(&out);
    case("gavgpool_bwd", input, &r, o)
}

pub fn make_mask(rng: &mut Rng) -> Case {
    let (mut min, mut max) = (rng.f32(-1.0, 0.5), rng.f32(0.0, 6.0));
    if rng.chance(5) {
        (min, max) = (max + 1.0, min);
    }
    if rng.chance(3) {
        max = f32::NAN;
    }
    let mut x = {
        let v = rng.usize(0, 100);
        rng.f32s(v)
    };
    for v in x.iter_mut() {
        if rng.chance(5) {
            *v = rng.pick(&[min, max, f32::NAN, 0.0]);
        }
    }
    let out_len = maybe_off(rng, float::mask_words(x.len()));
    let mut input = In::default();
    input.f(min).f(max).f32s(&x).u(out_len);
    let mut out = vec![0u32; out_len];
    let r = float::make_mask(&x, &mut out, &Mask { min, max });
    let mut o = Out::default();
    o.u32s(&out);
    case("make_mask", input, &r, o)
}

pub fn apply_mask(rng: &mut Rng) -> Case {
    let dy = {
        let v = rng.usize(0, 100);
        rng.f32s(v)
    };
    let words = maybe_off(rng, float::mask_words(dy.len()));
    let mask: Vec<u32> = (0..words).map(|_| rng.next() as u32).collect();
    let out_len = maybe_off(rng, dy.len());
    let mut input = In::default();
    input.f32s(&dy).u32s(&mask).u(out_len);
    let mut out = vec![0f32; out_len];
    let r = float::apply_mask(&dy, &mask, &mut out);
    let mut o = Out::default();
    o.f32s(&out);
    case("apply_mask", input, &r, o)
}

pub fn sce(rng: &mut Rng, backward: bool) -> Case {
    let n = if rng.chance(3) { 0 } else { rng.usize(1, 4) };
    let c = rng.usize(1, 10);
    let mut logits: Vec<f32> = (0..maybe_off(rng, n * c))
        .map(|_| rng.f32(-8.0, 8.0))
        .collect();
    if rng.chance(10) && !logits.is_empty() {
        let len = logits.len();
        logits[rng.usize(0, len - 1)] = f32::NEG_INFINITY;
    }
    let labels: Vec<i32> = (0..maybe_off(rng, n))
        .map(|_| {
            if rng.chance(3) {
                rng.pick(&[-1, c as i32])
            } else {
                rng.range(0, c as i64 - 1) as i32
            }
        })
        .collect();
    let grad_loss = rng.f32(0.1, 2.0);
    let mut input = In::default();
    input.u(n).u(c).f32s(&logits).i32s(&labels);
    let mut o = Out::default();
    if backward {
        let out_len = maybe_off(rng, logits.len());
        input.f(grad_loss).u(out_len);
        let mut out = vec![0f32; out_len];
        let r = float::softmax_cross_entropy_backward::<f32, PortableMath>(
            &logits, &labels, grad_loss, &mut out, n, c,
        );
        o.f32s(&out);
        case("sce_bwd", input, &r, o)
    } else {
        let scratch_len = if rng.chance(5) {
            c - 1
        } else {
            c + rng.usize(0, 2)
        };
        input.u(scratch_len);
        let mut scratch = vec![0f32; scratch_len];
        let r =
            float::softmax_cross_entropy::<f32, PortableMath>(&logits, &labels, &mut scratch, n, c);
        o.f32(*r.as_ref().unwrap_or(&0.0));
        case("sce", input, &r, o)
    }
}

pub fn accumulate(rng: &mut Rng) -> Case {
    let len = rng.usize(0, 20);
    let g = rng.f32s(len);
    let mut acc = {
        let len = maybe_off(rng, len);
        rng.f32s(len)
    };
    let out_len = maybe_off(rng, len);
    let step = if rng.chance(10) {
        rng.pick(&[i64::MAX, i64::MIN, -1])
    } else {
        rng.range(-5, 20)
    };
    let every = rng.pick(&[0, 1, 2, 3, 4, 7]);
    let mut input = In::default();
    input
        .f32s(&g)
        .f32s(&acc)
        .u(out_len)
        .i(step)
        .u(every as usize);
    let mut out = vec![0f32; out_len];
    let r = sgd::accumulate(&g, &mut acc, &mut out, step, every);
    let mut o = Out::default();
    o.int((*r.as_ref().unwrap_or(&false)).into())
        .f32s(&acc)
        .f32s(&out);
    case("accumulate", input, &r, o)
}

/// Which parameter update.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sgd {
    F32,
    I8,
    I32,
}

/// A random update rule (rounding first, then rate, momentum, decay and QAS).
fn random_sgd_params(rng: &mut Rng) -> SgdParams {
    let rounding = if rng.chance(50) {
        UpdateRounding::HalfEven
    } else {
        UpdateRounding::Stochastic {
            seed: rng.next() as i64,
            step: rng.range(-3, 1000),
        }
    };
    SgdParams {
        eta: rng.scale(1e-4, 0.5) as f32,
        momentum: if rng.chance(50) {
            0.0
        } else {
            rng.f32(0.0, 0.95)
        },
        weight_decay: if rng.chance(50) {
            0.0
        } else {
            rng.scale(1e-5, 1e-2) as f32
        },
        qas: rng.chance(50),
        rounding,
    }
}

/// The harness tokens of an update rule.
fn sgd_params_in(input: &mut In, p: &SgdParams) {
    input
        .f(p.eta)
        .f(p.momentum)
        .f(p.weight_decay)
        .u(p.qas.into());
    match p.rounding {
        UpdateRounding::HalfEven => input.u(0).i(0).i(0),
        UpdateRounding::Stochastic { seed, step } => input.u(1).i(seed).i(step),
    };
}

pub fn sgd(rng: &mut Rng, kind: Sgd) -> Case {
    let p = random_sgd_params(rng);
    let len = rng.usize(0, 40);
    let mut g: Vec<f32> = (0..maybe_off(rng, len))
        .map(|_| rng.wide() * rng.pick(&[1.0, 1.0, 100.0, 1e6]))
        .collect();
    if rng.chance(5) && !g.is_empty() {
        let i = rng.usize(0, g.len() - 1);
        g[i] = rng.pick(&[f32::NAN, f32::INFINITY]);
    }
    let m_len = maybe_off(rng, len);
    let mut m = (rng.chance(60) || p.momentum > 0.0 && rng.chance(90)).then(|| rng.f32s(m_len));
    let mut input = In::default();
    sgd_params_in(&mut input, &p);
    let channels = rng.usize(1, 4);
    let scales: Vec<f32> = (0..channels).map(|_| rng.scale(1e-4, 0.1) as f32).collect();
    let zps: Vec<i32> = (0..channels).map(|_| rng.range(-20, 20) as i32).collect();
    let inner = rng.usize(0, 6);
    if kind != Sgd::F32 {
        input.f32s(&scales).i32s(&zps).u(inner);
    }
    let cq = ChannelQuant::new(&scales, &zps, inner).unwrap();
    let m_before = m.clone();
    let with_momentum = |input: &mut In| {
        match &m_before {
            Some(m) => input.u(1).f32s(m),
            None => input.u(0),
        };
    };
    let mut o = Out::default();
    let (op, r) = match kind {
        Sgd::F32 => {
            let mut w = rng.f32s(len);
            input.f32s(&w).f32s(&g);
            with_momentum(&mut input);
            let r = sgd::sgd_f32(&mut w, &g, m.as_deref_mut(), &p);
            o.f32s(&w);
            ("sgd_f32", r)
        }
        Sgd::I8 => {
            let mut q = rng.i8s(len);
            input.i8s(&q).f32s(&g);
            with_momentum(&mut input);
            let r = sgd::sgd_i8(&mut q, &g, m.as_deref_mut(), &cq, &p);
            o.i8s(&q);
            ("sgd_i8", r)
        }
        Sgd::I32 => {
            let mut q: Vec<i32> = (0..len)
                .map(|_| {
                    if rng.chance(5) {
                        rng.pick(&[i32::MAX, i32::MIN])
                    } else {
                        rng.range(-100_000, 100_000) as i32
                    }
                })
                .collect();
            input.i32s(&q).f32s(&g);
            with_momentum(&mut input);
            let r = sgd::sgd_i32(&mut q, &g, m.as_deref_mut(), &cq, &p);
            o.i32s(&q);
            ("sgd_i32", r)
        }
    };
    if let Some(m) = &m {
        o.f32s(m);
    }
    case(op, input, &r, o)
}

/// A convolution weight gradient fused with the update of an `f32` or `i8` weight
/// (`mite_kernels::update`), dense, grouped or over a channel slice of the parameter.
pub fn conv_weight_sgd(rng: &mut Rng, int8: bool) -> Case {
    let geo = conv_geometry(rng, 7);
    let (n, c_in, hw, c_out, groups, w) = geo;
    let g = Conv2dGeometry::new(n, c_in, hw, c_out, groups, w);
    let (x_len, y_len, w_len) = match g {
        Ok(g) => (g.input_len(), g.output_len(), g.weight_len()),
        Err(_) => (rng.usize(0, 9), rng.usize(0, 9), rng.usize(0, 9)),
    };
    let taps = w.kernel[0] * w.kernel[1];
    // A slice: the gradient's input channels are `c_in` of the parameter's `c_in + extra`.
    let view = (groups == 1 && rng.chance(50)).then(|| {
        let extra = rng.usize(0, 3);
        let start = if rng.chance(5) {
            rng.usize(0, extra + 2)
        } else {
            rng.usize(0, extra)
        };
        sgd::SliceView {
            outer: c_out,
            channels: c_in + extra,
            inner: taps,
            start,
            count: c_in,
        }
    });
    let param_len = maybe_off(rng, view.map_or(w_len, |v| v.outer * v.channels * v.inner));
    let p = random_sgd_params(rng);
    let mut input = In::default();
    conv_in(&mut input, &geo);
    sgd_params_in(&mut input, &p);
    let channels = if rng.chance(80) { c_out.max(1) } else { 1 };
    let scales: Vec<f32> = (0..channels).map(|_| rng.scale(1e-4, 0.1) as f32).collect();
    let zps: Vec<i32> = (0..channels).map(|_| rng.range(-20, 20) as i32).collect();
    let inner = param_len / channels;
    if int8 {
        input.f32s(&scales).i32s(&zps).u(inner);
    }
    let cq = ChannelQuant::new(&scales, &zps, inner).unwrap();
    match &view {
        Some(v) => input
            .u(1)
            .u(v.outer)
            .u(v.channels)
            .u(v.inner)
            .u(v.start)
            .u(v.count),
        None => input.u(0),
    };
    let x = {
        let len = maybe_off(rng, x_len);
        rng.f32s(len)
    };
    let mut dy = {
        let len = maybe_off(rng, y_len);
        rng.f32s(len)
    };
    if rng.chance(5) && !dy.is_empty() {
        let i = rng.usize(0, dy.len() - 1);
        dy[i] = rng.pick(&[f32::NAN, f32::INFINITY]);
    }
    let m_len = maybe_off(rng, param_len);
    let mut m = (rng.chance(40) || p.momentum > 0.0 && rng.chance(90)).then(|| rng.f32s(m_len));
    let mut scratch = vec![0f32; maybe_off(rng, taps)];
    input.f32s(&x).f32s(&dy);
    let mut o = Out::default();
    let (op, r) = if int8 {
        let mut q = rng.i8s(param_len);
        input.i8s(&q);
        match &m {
            Some(m) => input.u(1).f32s(m),
            None => input.u(0),
        };
        input.u(scratch.len());
        let r = g.and_then(|g| {
            mite_kernels::update::conv2d_weight_sgd_i8(
                &x,
                &dy,
                &g,
                view.as_ref(),
                &mut q,
                m.as_deref_mut(),
                &cq,
                &p,
                &mut scratch,
            )
        });
        o.i8s(&q);
        ("conv_w_sgd_i8", r)
    } else {
        let mut wf = rng.f32s(param_len);
        input.f32s(&wf);
        match &m {
            Some(m) => input.u(1).f32s(m),
            None => input.u(0),
        };
        input.u(scratch.len());
        let r = g.and_then(|g| {
            mite_kernels::update::conv2d_weight_sgd_f32(
                &x,
                &dy,
                &g,
                view.as_ref(),
                &mut wf,
                m.as_deref_mut(),
                &p,
                &mut scratch,
            )
        });
        o.f32s(&wf);
        ("conv_w_sgd_f32", r)
    };
    if let Some(m) = &m {
        o.f32s(m);
    }
    case(op, input, &r, o)
}

/// The scalar fixed-point functions on wide-ranging arguments.
pub fn fixed(rng: &mut Rng) -> Case {
    let edge = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX];
    let int = |rng: &mut Rng| {
        if rng.chance(15) {
            rng.pick(&edge)
        } else {
            (rng.next() as i32) >> rng.usize(0, 31)
        }
    };
    let x = int(rng);
    let mul = int(rng);
    let shift = if rng.chance(10) {
        rng.pick(&[i32::MIN, -100, -63, -62, 31, 32, 33, 64, 100, i32::MAX])
    } else {
        rng.range(-40, 40) as i32
    };
    let scale = if rng.chance(10) {
        rng.pick(&[0.0, 1e12, -1e12, f64::NAN, f64::INFINITY])
    } else {
        rng.scale(1e-6, 4.0)
    };
    let mut input = In::default();
    input.i(x.into()).i(mul.into()).i(shift.into()).d(scale);
    let mut o = Out::default();
    o.int(fixed_point::saturating_rounding_doubling_high_mul(x, mul).into())
        .int(fixed_point::rounding_divide_by_pot(x, shift).into())
        .int(fixed_point::multiply_by_quantized_multiplier(x, mul, shift).into())
        .int(fixed_point::multiply_by_quantized_multiplier_single_rounding(x, mul, shift).into())
        .int(fixed_point::requantize_float_scale(x, scale).into());
    case("fixed", input, &Ok::<(), KernelError>(()), o)
}

/// Per-axis tables of a weight with `channels` output channels of `inner` elements: one scale
/// or one per channel, zero points or none.
fn weight_quant(rng: &mut Rng, channels: usize, inner: usize) -> (Vec<f32>, Vec<i8>, usize) {
    let n = if rng.chance(30) { 1 } else { channels.max(1) };
    let scales = (0..n).map(|_| rng.scale(0.001, 0.1) as f32).collect();
    let zps = if rng.chance(30) {
        Vec::new()
    } else {
        (0..n).map(|_| rng.range(-8, 8) as i8).collect()
    };
    (scales, zps, inner)
}

/// The streamed backward pass of an inverted bottleneck (`float::bottleneck_backward`):
/// random widths, planes, depthwise windows (3×3 to 5×5, stride 1 or 2), quantizations, masks,
/// every optional result present or absent and the expansion weight frozen or updated by a
/// random rule, sometimes split (its trained slice of `kept` input channels updated, `dx`
/// reading the slice and the frozen remainder); sometimes a short scratch.
pub fn bottleneck_backward(rng: &mut Rng) -> Case {
    let (c_in, mid, c_out) = (rng.usize(1, 4), rng.usize(1, 6), rng.usize(1, 4));
    let hw = [rng.usize(1, 6), rng.usize(1, 6)];
    let (k, stride) = (rng.pick(&[1, 3, 5]), rng.usize(1, 2));
    let pw = Window2d {
        kernel: [1, 1],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
    };
    let dww = Window2d {
        kernel: [k, k],
        strides: [stride, stride],
        pads: [k / 2; 4],
        dilations: [1, 1],
    };
    let ge = Conv2dGeometry::new(1, c_in, hw, mid, 1, pw).unwrap();
    let gd = Conv2dGeometry::new(1, mid, hw, mid, mid, dww).unwrap();
    let gp = Conv2dGeometry::new(1, mid, gd.out_hw(), c_out, 1, pw).unwrap();
    let qp = weight_quant(rng, c_out, mid);
    let qd = weight_quant(rng, mid, k * k);
    let qe = weight_quant(rng, mid, c_in);
    let (dx, db_d, db_e, update) = (
        rng.chance(70),
        rng.chance(70),
        rng.chance(70),
        rng.chance(70),
    );
    // A split weight keeps 0..c_in − 1 input channels (a non-empty frozen remainder).
    let split = update && rng.chance(50);
    let kept = if split { rng.usize(0, c_in - 1) } else { c_in };
    let dy = rng.f32s(gp.output_len());
    let w_p = rng.i8s(gp.weight_len());
    let mask = |rng: &mut Rng, n: usize| -> Vec<u32> {
        (0..float::mask_words(n))
            .map(|_| (rng.next() | rng.next()) as u32)
            .collect()
    };
    let m_d = mask(rng, gd.output_len());
    let w_d = rng.i8s(gd.weight_len());
    let m_e = mask(rng, gd.input_len());
    let whole = rng.i8s(ge.weight_len());
    // The trained slice (the whole weight unless split) and the frozen remainder.
    let (mut w_e, w_f): (Vec<i8>, Vec<i8>) = if split {
        let (mut t, mut f) = (Vec::new(), Vec::new());
        for row in whole.chunks(c_in) {
            t.extend_from_slice(&row[..kept]);
            f.extend_from_slice(&row[kept..]);
        }
        (t, f)
    } else {
        (whole, Vec::new())
    };
    let gu = Conv2dGeometry::new(1, kept, hw, mid, 1, pw).unwrap();
    let needed = float::bottleneck_backward_scratch_len(&gd, &ge);
    let scratch_len = if rng.chance(5) { needed - 1 } else { needed };
    let mut input = In::default();
    input
        .u(c_in)
        .u(mid)
        .u(c_out)
        .u(hw[0])
        .u(hw[1])
        .u(k)
        .u(stride);
    for (scales, zps, inner) in [&qp, &qd, &qe] {
        input.f32s(scales).i8s(zps).u(*inner);
    }
    input
        .u(dx.into())
        .u(db_d.into())
        .u(db_e.into())
        .u(update.into())
        .u(split.into())
        .u(kept);
    input
        .f32s(&dy)
        .i8s(&w_p)
        .u32s(&m_d)
        .i8s(&w_d)
        .u32s(&m_e)
        .i8s(&w_e);
    if split {
        input.i8s(&w_f);
    }
    let rule = random_sgd_params(rng);
    let ch = if rng.chance(30) { 1 } else { mid };
    let u_scales: Vec<f32> = (0..ch).map(|_| rng.scale(1e-4, 0.1) as f32).collect();
    let u_zps: Vec<i32> = (0..ch).map(|_| rng.range(-8, 8) as i32).collect();
    let x = rng.i8s(gu.input_len());
    // The saved input per tensor or, sometimes, per channel (plane by plane).
    let x_channels = if kept > 1 && rng.chance(40) { kept } else { 1 };
    let x_scales: Vec<f32> = (0..x_channels)
        .map(|_| rng.scale(0.01, 0.2) as f32)
        .collect();
    let x_zps: Vec<i8> = (0..x_channels).map(|_| rng.range(-10, 10) as i8).collect();
    let x_inner = if x_channels > 1 {
        hw[0] * hw[1]
    } else {
        x.len()
    };
    let mut m =
        (update && (rule.momentum > 0.0 || rng.chance(30))).then(|| rng.f32s(gu.weight_len()));
    if update {
        sgd_params_in(&mut input, &rule);
        input.f32s(&u_scales).i32s(&u_zps).u(kept);
        input.i8s(&x).f32s(&x_scales).i8s(&x_zps).u(x_inner);
        match &m {
            Some(m) => input.u(1).f32s(m),
            None => input.u(0),
        };
    }
    input.u(scratch_len);
    let cq = ChannelQuant::new(&u_scales, &u_zps, kept).unwrap();
    let (mut dx_v, mut db_d_v, mut db_e_v) =
        (vec![0f32; ge.input_len()], vec![0f32; mid], vec![0f32; mid]);
    let mut scratch = vec![0f32; scratch_len];
    let weight = if update {
        let u = float::ExpandUpdate {
            x: &x,
            x_quant: PerAxis::new(&x_scales, &x_zps, x_inner).unwrap(),
            weight: &mut w_e,
            weight_quant: per_axis_of(&qe),
            momentum: m.as_deref_mut(),
            channels: cq,
            params: rule,
        };
        if split {
            float::ExpandWeight::Split {
                update: u,
                frozen: &w_f,
                kept,
            }
        } else {
            float::ExpandWeight::Trained(u)
        }
    } else if dx {
        float::ExpandWeight::Frozen(float::Int8Conv {
            geometry: &ge,
            weight: &w_e,
            quant: per_axis_of(&qe),
        })
    } else {
        float::ExpandWeight::Unused
    };
    let r = float::bottleneck_backward(
        &dy,
        float::Int8Conv {
            geometry: &gp,
            weight: &w_p,
            quant: per_axis_of(&qp),
        },
        float::Int8Conv {
            geometry: &gd,
            weight: &w_d,
            quant: per_axis_of(&qd),
        },
        [&m_d, &m_e],
        &ge,
        weight,
        float::BottleneckGrads {
            dx: dx.then_some(&mut dx_v[..]),
            depthwise_bias: db_d.then_some(&mut db_d_v[..]),
            expand_bias: db_e.then_some(&mut db_e_v[..]),
        },
        &mut scratch,
    );
    let mut o = Out::default();
    for (present, v) in [(dx, &dx_v), (db_d, &db_d_v), (db_e, &db_e_v)] {
        if present {
            o.f32s(v);
        }
    }
    o.i8s(&w_e);
    if let Some(m) = &m {
        o.f32s(m);
    }
    case("bottleneck_bwd", input, &r, o)
}

/// The per-axis view of [`weight_quant`]'s tables.
fn per_axis_of(q: &(Vec<f32>, Vec<i8>, usize)) -> PerAxis<'_> {
    PerAxis::new(&q.0, &q.1, q.2).unwrap()
}

/// A case generator.
pub type Generator = fn(&mut Rng) -> Case;

/// Every generator, by name.
pub fn generators() -> Vec<(&'static str, Generator)> {
    let mut g: Vec<(&'static str, Generator)> = vec![
        ("conv_i8", conv_i8),
        ("bottleneck_i8", bottleneck_i8),
        ("bottleneck_chain_i8", bottleneck_chain_i8),
        ("linear_i8", linear_i8),
        ("add_i8", add_i8),
        ("avgpool_i8", avgpool_i8),
        ("gavgpool_i8", gavgpool_i8),
        ("mean_i8", mean_i8),
        ("quantize", quantize),
        ("dequantize", dequantize),
        ("requantize", requantize),
        ("conv_f32", |r| conv_f32(r, ConvF32::Forward)),
        ("conv_bwd_in", |r| conv_f32(r, ConvF32::Input)),
        ("conv_bwd_w", |r| conv_f32(r, ConvF32::Weight)),
        ("conv_bwd_w_slice", |r| conv_f32(r, ConvF32::WeightSlice)),
        ("conv_bwd_b", |r| conv_f32(r, ConvF32::Bias)),
        ("conv_bwd_in_i8w", conv_bwd_in_i8w),
        ("conv_bwd_in_i8w_inplace", conv_bwd_in_i8w_inplace),
        ("linear_f32", |r| linear_f32(r, LinearF32::Forward)),
        ("linear_bwd_in", |r| linear_f32(r, LinearF32::Input)),
        ("linear_bwd_w", |r| linear_f32(r, LinearF32::Weight)),
        ("linear_bwd_b", |r| linear_f32(r, LinearF32::Bias)),
        ("avgpool_bwd", avgpool_bwd),
        ("gavgpool_bwd", gavgpool_bwd),
        ("make_mask", make_mask),
        ("apply_mask", apply_mask),
        ("accumulate", accumulate),
        ("sgd_f32", |r| sgd(r, Sgd::F32)),
        ("sgd_i8", |r| sgd(r, Sgd::I8)),
        ("sgd_i32", |r| sgd(r, Sgd::I32)),
        ("conv_w_sgd_f32", |r| conv_weight_sgd(r, false)),
        ("conv_w_sgd_i8", |r| conv_weight_sgd(r, true)),
        ("bottleneck_bwd", bottleneck_backward),
        ("fixed", fixed),
    ];
    g.push(("sce", |r| sce(r, false)));
    g.push(("sce_bwd", |r| sce(r, true)));
    g.push(("exp_ln", exp_ln));
    g.push(("conv_i8_split", conv_i8_split));
    g.push(("conv_bwd_in_i8w_split", conv_bwd_in_i8w_split));
    g.push(("bottleneck_chain_in_place_i8", bottleneck_chain_in_place_i8));
    g
}

/// A split weight's `kept` (sometimes beyond `c_in`: a parameter error) and the lengths of its
/// two parts (sometimes off by one).
fn split_parts(
    rng: &mut Rng,
    c_in: usize,
    c_out: usize,
    w: &Window2d,
) -> (usize, Vec<i8>, Vec<i8>) {
    let kept = if rng.chance(5) {
        c_in + 1
    } else {
        rng.usize(0, c_in)
    };
    let taps = w.kernel[0] * w.kernel[1];
    let t_len = maybe_off(rng, c_out * kept * taps);
    let f_len = maybe_off(rng, c_out * c_in.saturating_sub(kept) * taps);
    (kept, rng.i8s(t_len), rng.i8s(f_len))
}

/// The int8 convolution over a weight split into a trained slice and a frozen remainder
/// (`mite_kernels::split`; grouped geometries are refused).
pub fn conv_i8_split(rng: &mut Rng) -> Case {
    let geo = conv_geometry(rng, 9);
    let (n, c_in, hw, c_out, groups, w) = geo;
    let t = tables(rng, c_out);
    let range = act_range(rng);
    let (x_zp, y_zp) = (rng.i8(), rng.i8());
    let zps = zero_points(rng, c_out);
    let bias_add = int8::BiasAdd::for_rounding(t.rounding);
    let mut input = In::default();
    conv_in(&mut input, &geo);
    input.i(x_zp.into()).i8s(&zps);
    stage_in(&mut input, &t, y_zp, range);
    input.u(rounding_code_bias(bias_add));
    let g = Conv2dGeometry::new(n, c_in, hw, c_out, groups, w);
    let (x_len, out_len, plane, gather) = match g {
        Ok(g) => (
            g.input_len(),
            g.output_len(),
            g.out_plane(),
            mite_kernels::split::conv2d_int8_split_gather_len(&g),
        ),
        Err(_) => (rng.usize(0, 20), rng.usize(0, 20), 4, 4),
    };
    let (kept, trained, frozen) = split_parts(rng, c_in, c_out, &w);
    let x = {
        let len = maybe_off(rng, x_len);
        rng.i8s(len)
    };
    let b_len = maybe_off(rng, c_out);
    let b = bias(rng, b_len);
    let out_len = maybe_off(rng, out_len);
    let scratch_len = if rng.chance(5) {
        plane.saturating_sub(1)
    } else {
        plane + rng.usize(0, 2)
    };
    let gather_len = if rng.chance(5) {
        gather.saturating_sub(1)
    } else {
        gather + rng.usize(0, 2)
    };
    let requant = Requant::new(t.rounding, &t.scales, &t.multipliers, &t.shifts).unwrap();
    let stage = OutputStage {
        requant,
        zero_point: y_zp,
        range,
    };
    let mut out = vec![0i8; out_len];
    let mut scratch = vec![0i32; scratch_len];
    let mut gathered = vec![0i8; gather_len];
    let sw = mite_kernels::split::SplitWeight {
        trained: &trained,
        frozen: &frozen,
        kept,
    };
    let r = g.and_then(|g| {
        let p = Conv2dInt8Params::new(g, x_zp, &zps, stage)?;
        mite_kernels::split::conv2d_int8_split(
            &x,
            &sw,
            b.as_deref(),
            &mut out,
            &mut scratch,
            &mut gathered,
            &p,
        )
    });
    input.u(kept).i8s(&x).i8s(&trained).i8s(&frozen);
    match &b {
        Some(b) => input.u(1).i32s(b),
        None => input.u(0),
    };
    input.u(out_len).u(scratch_len).u(gather_len);
    let mut o = Out::default();
    o.i8s(&out);
    case("conv_i8_split", input, &r, o)
}

/// The input gradient over a split `i8` weight (per tensor or per output channel).
pub fn conv_bwd_in_i8w_split(rng: &mut Rng) -> Case {
    let geo = conv_geometry(rng, 9);
    let (n, c_in, hw, c_out, groups, w) = geo;
    let g = Conv2dGeometry::new(n, c_in, hw, c_out, groups, w);
    let (x_len, y_len) = match g {
        Ok(g) => (g.input_len(), g.output_len()),
        Err(_) => (rng.usize(0, 9), rng.usize(0, 9)),
    };
    let channels = if rng.chance(40) { 1 } else { c_out };
    let scales: Vec<f32> = (0..channels).map(|_| rng.f32(0.001, 0.2)).collect();
    let zps: Vec<i8> = if rng.chance(30) {
        Vec::new()
    } else {
        (0..channels).map(|_| rng.range(-12, 12) as i8).collect()
    };
    let inner = c_in * w.kernel[0] * w.kernel[1];
    let p = PerAxis::new(&scales, &zps, inner).unwrap();
    let (kept, trained, frozen) = split_parts(rng, c_in, c_out, &w);
    let dy = {
        let len = maybe_off(rng, y_len);
        rng.f32s(len)
    };
    let out_len = maybe_off(rng, x_len);
    let mut input = In::default();
    conv_in(&mut input, &geo);
    input
        .f32s(&scales)
        .i8s(&zps)
        .u(inner)
        .u(kept)
        .f32s(&dy)
        .i8s(&trained)
        .i8s(&frozen)
        .u(out_len);
    let mut out = vec![0f32; out_len];
    let sw = mite_kernels::split::SplitWeight {
        trained: &trained,
        frozen: &frozen,
        kept,
    };
    let r = g.and_then(|g| {
        mite_kernels::split::conv2d_backward_input_int8_split(&dy, &sw, &p, &mut out, &g)
    });
    let mut o = Out::default();
    o.f32s(&out);
    case("conv_bwd_in_i8w_split", input, &r, o)
}

/// The bits of `v`, every NaN as the positive quiet NaN: the sign and payload of a NaN an
/// operation produces differ between FPUs (x86's default NaN is negative, Arm's positive), and
/// the harness prints results the same way (`put_f32` in harness.c).
pub fn nan_canonical_bits(v: f32) -> u32 {
    if v.is_nan() {
        0x7fc0_0000
    } else {
        v.to_bits()
    }
}

/// `per_kernel` seeded cases of every generator.
pub fn cases(seed: u64, per_kernel: usize) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for (_, generate) in generators() {
        for _ in 0..per_kernel {
            out.push(generate(&mut rng));
        }
    }
    out
}

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The runtime (kernel) directory and the harness directory.
pub fn dirs() -> (PathBuf, PathBuf) {
    let c = crate_dir();
    (c.join("runtime"), c.join("tests/harness"))
}

/// A fresh temporary directory for `test`.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mite-c-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The kernel sources plus the given harness files.
pub fn harness_sources(harness: &[&str]) -> Vec<PathBuf> {
    let (runtime, hdir) = dirs();
    mite_c::runtime::sources(mite_c::runtime::FILES)
        .map(|f| runtime.join(f))
        .chain(harness.iter().map(|f| hdir.join(f)))
        .collect()
}

/// Panics with the command and its output unless it succeeded.
pub fn check_build(line: &mite_c::toolchain::CommandLine, out: &mite_c::toolchain::RunOutput) {
    assert_eq!(
        out.status,
        Some(0),
        "build failed: {line}
{}
{}",
        out.stdout,
        out.stderr
    );
}

/// Compares the harness output with the expected lines, case by case; returns a report of the
/// first mismatches.
pub fn compare(cases: &[Case], output: &str) -> Result<(), String> {
    let mut lines = output.lines();
    let mut report = String::new();
    let mut bad = 0;
    for (i, c) in cases.iter().enumerate() {
        let got = match (lines.next(), lines.next()) {
            (Some(a), Some(b)) => format!("{a}\n{b}\n"),
            (a, _) => format!("{}\n(missing)\n", a.unwrap_or("(missing)")),
        };
        if got != c.expected {
            bad += 1;
            if bad <= 5 {
                let _ = write!(
                    report,
                    "case {i} ({}):
  input: {}  C:     {}  Rust:  {}",
                    c.op,
                    c.input,
                    got.replace('\n', " | "),
                    c.expected.replace('\n', " | ")
                );
                report.push('\n');
            }
        }
    }
    if bad == 0 {
        Ok(())
    } else {
        Err(format!(
            "{bad} of {} cases differ:
{report}",
            cases.len()
        ))
    }
}

/// Where a build writes its files.
pub fn output_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// The portable `exp` / `ln` on values across their whole range, special values included.
pub fn exp_ln(rng: &mut Rng) -> Case {
    let xs: Vec<f32> = (0..16)
        .map(|_| {
            if rng.chance(10) {
                rng.pick(&[
                    0.0,
                    -0.0,
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    88.72284,
                    88.72285,
                    -103.97208,
                    -87.5,
                    f32::from_bits(1),
                    f32::MIN_POSITIVE,
                    -1.0,
                ])
            } else if rng.chance(50) {
                rng.f32(-104.0, 89.0)
            } else {
                f32::from_bits(rng.next() as u32 & 0x7fff_ffff)
            }
        })
        .collect();
    let mut input = In::default();
    input.f32s(&xs);
    let mut o = Out::default();
    for &x in &xs {
        o.f32(mite_kernels::fmath::exp_f32(x))
            .f32(mite_kernels::fmath::ln_f32(x));
    }
    case("exp_ln", input, &Ok::<(), KernelError>(()), o)
}
