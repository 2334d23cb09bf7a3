//! The emitter: a hand-built, verified training program (two int8 convolutions, an int8 weight
//! updated with momentum, QAS and stochastic rounding, an int32 bias updated half to even) is
//! printed as C, built with gcc (`-Werror -pedantic`, and once under ASan + UBSan), run for
//! three steps, and its outputs and saved parameters must equal those of the same calls made
//! with mite-kernels in Rust.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::{check_build, temp_dir};
use mite_c::emit::{emit_program, EmitError};
use mite_c::runtime;
use mite_c::toolchain::{self, Build, CommandLine};
use mite_ir::program::{
    verify_program, ArgRole, BufElem, BufferDecl, BufferId, Call, Entry, Kernel, Program, Storage,
};
use mite_ir::TensorData;
use mite_kernels::int8::{conv2d_int8, Conv2dInt8Params};
use mite_kernels::requant::{quantize_multipliers, ActRange, OutputStage, Requant, Rounding};
use mite_kernels::sgd::{self, ChannelQuant, SgdParams, UpdateRounding};
use mite_kernels::{Conv2dGeometry, Window2d};

fn decl(name: &str, elem: BufElem, shape: &[usize], storage: Storage) -> BufferDecl {
    BufferDecl {
        name: name.into(),
        elem,
        len: shape.iter().product(),
        shape: shape.to_vec(),
        storage,
    }
}

fn conv(
    g: Conv2dGeometry,
    scales: Vec<f64>,
    rounding: Rounding,
    w_zero_points: Vec<i8>,
    x_zero_point: i8,
) -> Kernel {
    let mut multipliers = vec![0; scales.len()];
    let mut shifts = vec![0; scales.len()];
    quantize_multipliers(&scales, rounding, &mut multipliers, &mut shifts).unwrap();
    Kernel::ConvInt8 {
        geometry: g,
        x_zero_point,
        w_zero_points,
        scales,
        multipliers,
        shifts,
        out_zero_point: -3,
        range: ActRange {
            min: -128,
            max: 100,
        },
        rounding,
        bias: true,
    }
}

const LR: f32 = 0.05;
const STEPS: i64 = 3;

/// The test program and its input image.
fn program() -> (Program, Vec<i8>) {
    let mut rng = common::Rng::new(11);
    let arg = |role| Storage::Arg { entry: 0, role };
    let arena = |offset| Storage::Arena { offset };
    let flash = |data| Storage::Flash { global: None, data };
    let win3 = Window2d {
        kernel: [3, 3],
        strides: [1, 1],
        pads: [1; 4],
        dilations: [1, 1],
    };
    let win1 = Window2d {
        kernel: [1, 1],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
    };
    let g0 = Conv2dGeometry::new(1, 3, [5, 5], 4, 1, win3).unwrap();
    let g1 = Conv2dGeometry::new(1, 4, [5, 5], 6, 1, win1).unwrap();
    let buffers = vec![
        decl("input", BufElem::I8, &[1, 3, 5, 5], arg(ArgRole::Input)),
        decl("lr", BufElem::F32, &[1], arg(ArgRole::LearningRate)),
        decl("step", BufElem::I64, &[1], arg(ArgRole::Step)),
        decl(
            "conv0.weight",
            BufElem::I8,
            &[4, 3, 3, 3],
            flash(TensorData::I8(rng.i8s(108))),
        ),
        decl(
            "conv0.bias",
            BufElem::I32,
            &[4],
            flash(TensorData::I32(vec![100, -2000, i32::MIN, 7])),
        ),
        decl("conv0", BufElem::I8, &[1, 4, 5, 5], arena(0)),
        decl("conv0.scratch", BufElem::I32, &[25], arena(100)),
        decl(
            "conv1.weight",
            BufElem::I8,
            &[6, 4, 1, 1],
            Storage::Param {
                global: "conv1.weight".into(),
                init: TensorData::I8(rng.i8s(24)),
            },
        ),
        decl("conv1", BufElem::I8, &[1, 6, 5, 5], arena(200)),
        decl(
            "conv1.weight.grad",
            BufElem::F32,
            &[6, 4, 1, 1],
            flash(TensorData::F32(rng.f32s(24))),
        ),
        decl(
            "conv1.weight.momentum",
            BufElem::F32,
            &[6, 4, 1, 1],
            Storage::State {
                global: "conv1.weight.momentum".into(),
            },
        ),
        decl(
            "conv1.bias",
            BufElem::I32,
            &[6],
            Storage::Param {
                global: "conv1.bias".into(),
                init: TensorData::I32(vec![5, -5, 1000, i32::MAX, 0, -77]),
            },
        ),
        decl(
            "conv1.bias.grad",
            BufElem::F32,
            &[6],
            flash(TensorData::F32(vec![1e-3, -2.0, 0.5, -1e9, 0.0, 3.0])),
        ),
        decl("conv1.scratch", BufElem::I32, &[25], arena(100)),
    ];
    let b = BufferId;
    let calls = vec![
        Call {
            kernel: conv(
                g0,
                vec![0.002, 0.004, 0.0007, 0.01],
                Rounding::Double,
                vec![],
                5,
            ),
            inputs: vec![b(0), b(3), b(4)],
            outputs: vec![b(5)],
            scratch: Some(b(6)),
            loc: Some("conv0".into()),
        },
        Call {
            kernel: conv(
                g1,
                vec![0.01, 0.02, 0.03, 0.004, 0.05, 0.006],
                Rounding::Single,
                vec![2],
                -3,
            ),
            inputs: vec![b(5), b(7), b(11)],
            outputs: vec![b(8)],
            scratch: Some(b(13)),
            loc: Some("conv1".into()),
        },
        Call {
            kernel: Kernel::Sgd {
                elem: BufElem::I8,
                len: 24,
                lr_scale: 1.0,
                momentum: 0.9,
                weight_decay: 1e-4,
                qas: true,
                stochastic_seed: Some(42),
                scales: vec![0.01, 0.02, 0.005, 0.03, 0.01, 0.02],
                zero_points: vec![0, 1, -1, 0, 2, 0],
                inner: 4,
                accumulate: 1,
                slice: None,
            },
            inputs: vec![b(9), b(1), b(2)],
            outputs: vec![b(7), b(10)],
            scratch: None,
            loc: Some("conv1.weight update".into()),
        },
        Call {
            kernel: Kernel::Sgd {
                elem: BufElem::I32,
                len: 6,
                lr_scale: 0.5,
                momentum: 0.0,
                weight_decay: 0.0,
                qas: false,
                stochastic_seed: None,
                scales: vec![1e-4],
                zero_points: vec![0],
                inner: 1,
                accumulate: 1,
                slice: None,
            },
            inputs: vec![b(12), b(1), b(2)],
            outputs: vec![b(11)],
            scratch: None,
            loc: Some("conv1.bias update".into()),
        },
    ];
    let p = Program {
        name: "emit_test".into(),
        arena_bytes: 350,
        buffers,
        entries: vec![Entry {
            name: "train_step".into(),
            args: vec![b(0), b(1), b(2)],
            results: vec![b(8)],
            calls,
        }],
    };
    (p, rng.i8s(75))
}

/// Runs the program's calls with mite-kernels: per step, the result, then the saved state.
fn reference(p: &Program, input: &[i8]) -> String {
    let mut bufs: Vec<Buf> = p
        .buffers
        .iter()
        .map(|b| match &b.storage {
            Storage::Flash { data, .. } | Storage::Param { init: data, .. } => match data {
                TensorData::I8(v) => Buf::I8(v.clone()),
                TensorData::I32(v) => Buf::I32(v.clone()),
                TensorData::F32(v) => Buf::F32(v.clone()),
                other => panic!("no {other:?} here"),
            },
            _ => match b.elem {
                BufElem::I8 => Buf::I8(vec![0; b.len]),
                BufElem::I32 => Buf::I32(vec![0; b.len]),
                _ => Buf::F32(vec![0.0; b.len]),
            },
        })
        .collect();
    bufs[0] = Buf::I8(input.to_vec());
    let mut out = String::new();
    for step in 0..STEPS {
        for call in &p.entries[0].calls {
            match &call.kernel {
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
                    ..
                } => {
                    let requant = Requant::new(*rounding, scales, multipliers, shifts).unwrap();
                    let stage = OutputStage {
                        requant,
                        zero_point: *out_zero_point,
                        range: *range,
                    };
                    let params =
                        Conv2dInt8Params::new(*geometry, *x_zero_point, w_zero_points, stage)
                            .unwrap();
                    let x = bufs[call.inputs[0].index()].i8().to_vec();
                    let w = bufs[call.inputs[1].index()].i8().to_vec();
                    let bias = bufs[call.inputs[2].index()].i32().to_vec();
                    let mut scratch = vec![0; geometry.out_plane()];
                    let y = bufs[call.outputs[0].index()].i8_mut();
                    conv2d_int8(&x, &w, Some(&bias), y, &mut scratch, &params).unwrap();
                }
                Kernel::Sgd {
                    lr_scale,
                    momentum,
                    weight_decay,
                    qas,
                    stochastic_seed,
                    scales,
                    zero_points,
                    inner,
                    ..
                } => {
                    let p = SgdParams {
                        eta: LR * lr_scale,
                        momentum: *momentum,
                        weight_decay: *weight_decay,
                        qas: *qas,
                        rounding: match stochastic_seed {
                            Some(seed) => UpdateRounding::Stochastic { seed: *seed, step },
                            None => UpdateRounding::HalfEven,
                        },
                    };
                    let cq = ChannelQuant::new(scales, zero_points, *inner).unwrap();
                    let g = bufs[call.inputs[0].index()].f32().to_vec();
                    let mut m = call.outputs.get(1).map(|m| bufs[m.index()].f32().to_vec());
                    match &mut bufs[call.outputs[0].index()] {
                        Buf::I8(q) => sgd::sgd_i8(q, &g, m.as_deref_mut(), &cq, &p).unwrap(),
                        Buf::I32(q) => sgd::sgd_i32(q, &g, m.as_deref_mut(), &cq, &p).unwrap(),
                        Buf::F32(w) => sgd::sgd_f32(w, &g, m.as_deref_mut(), &p).unwrap(),
                    }
                    if let (Some(id), Some(m)) = (call.outputs.get(1), m) {
                        bufs[id.index()] = Buf::F32(m);
                    }
                }
                other => panic!("the reference runs conv and sgd only, not {}", other.name()),
            }
        }
        let _ = write!(out, "step {step} status 0:");
        for v in bufs[8].i8() {
            let _ = write!(out, " {v}");
        }
        out.push('\n');
    }
    out.push_str("params:");
    for (b, decl) in bufs.iter().zip(&p.buffers) {
        if matches!(decl.storage, Storage::Param { .. } | Storage::State { .. }) {
            for byte in b.bytes() {
                let _ = write!(out, " {byte:02x}");
            }
        }
    }
    out.push('\n');
    out
}

enum Buf {
    I8(Vec<i8>),
    I32(Vec<i32>),
    F32(Vec<f32>),
}

impl Buf {
    fn i8(&self) -> &[i8] {
        match self {
            Buf::I8(v) => v,
            _ => panic!("not i8"),
        }
    }
    fn i8_mut(&mut self) -> &mut [i8] {
        match self {
            Buf::I8(v) => v,
            _ => panic!("not i8"),
        }
    }
    fn i32(&self) -> &[i32] {
        match self {
            Buf::I32(v) => v,
            _ => panic!("not i32"),
        }
    }
    fn f32(&self) -> &[f32] {
        match self {
            Buf::F32(v) => v,
            _ => panic!("not f32"),
        }
    }
    fn bytes(&self) -> Vec<u8> {
        match self {
            Buf::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Buf::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Buf::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

const MAIN: &str = r#"#include <stdio.h>
#include "mite_program.h"
#include "input.h"

int main(void) {
    static int8_t y[150];
    static unsigned char params[MITE_SAVE_BYTES];
    int64_t step;
    size_t i;
    mite_init();
    for (step = 0; step < STEPS; step++) {
        mite_status st = mite_entry_train_step(input, LR, step, y);
        printf("step %d status %d:", (int)step, (int)st);
        for (i = 0; i < sizeof y; i++) {
            printf(" %d", y[i]);
        }
        printf("\n");
    }
    if (mite_save_params(params, sizeof params) != sizeof params) {
        return 1;
    }
    printf("params:");
    for (i = 0; i < MITE_PARAMS_BYTES; i++) {
        printf(" %02x", params[i]);
    }
    printf("\n");
    return mite_load_params(params, sizeof params) == MITE_OK ? 0 : 1;
}
"#;

/// Verifies and emits `p` into a fresh directory with the runtime and an `input.h`.
fn write_program(test: &str, p: &Program, input: &[i8]) -> std::path::PathBuf {
    verify_program(p).expect("the test program verifies");
    let dir = temp_dir(test);
    runtime::write_files(&dir, runtime::FILES).unwrap();
    let emitted = emit_program(p).expect("emits");
    for (name, text) in &emitted.files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let input_h = format!(
        "#define STEPS {STEPS}\n#define LR {}\nstatic const int8_t input[75] = {{{}}};\n",
        mite_c::emit::f32_lit(LR),
        input
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(dir.join("input.h"), input_h).unwrap();
    dir
}

fn build_and_run(test: &str, sanitize: bool) -> Option<(String, String)> {
    let cc = mite_test_support::tool(test, &toolchain::host_cc().to_string_lossy())?;
    let (p, input) = program();
    let dir = write_program(test, &p, &input);
    std::fs::write(dir.join("main.c"), MAIN).unwrap();
    let mut sources: Vec<_> = runtime::sources(runtime::FILES)
        .map(|f| dir.join(f))
        .collect();
    sources.push(dir.join("mite_program.c"));
    sources.push(dir.join("main.c"));
    let build = Build {
        sources,
        include_dirs: vec![dir.clone()],
        extra_flags: vec![],
        output: dir.join("program"),
    };
    let line = toolchain::host_compile(&cc, &build, sanitize);
    let out = line.run(b"", Duration::from_secs(300)).unwrap();
    check_build(&line, &out);
    let run = CommandLine::new(&build.output)
        .run(b"", Duration::from_secs(60))
        .unwrap();
    assert_eq!(run.status, Some(0), "{}\n{}", run.stdout, run.stderr);
    Some((run.stdout, reference(&p, &input)))
}

#[test]
fn emitted_program_trains_like_mite_kernels() {
    let Some((c, rust)) = build_and_run("emit", false) else {
        return;
    };
    assert_eq!(c, rust);
    // The parameters moved: the saved state is not the initial image.
    let (p, input) = program();
    let _ = input;
    let Storage::Param {
        init: TensorData::I8(w0),
        ..
    } = &p.buffers[7].storage
    else {
        unreachable!()
    };
    let initial: String = w0.iter().map(|&x| format!(" {:02x}", x as u8)).collect();
    let saved = c.lines().last().unwrap();
    assert!(!saved.starts_with(&format!("params:{initial}")));
}

const ARM_MAIN: &str = r#"#include "mite_platform.h"
#include "mite_program.h"
#include "input.h"

static void put_int(long v) {
    char buf[24];
    int n = 23;
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    buf[n] = '\0';
    do {
        buf[--n] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u != 0);
    if (v < 0) {
        buf[--n] = '-';
    }
    mite_platform_write(buf + n);
}

static void put_hex(unsigned v) {
    static const char digits[] = "0123456789abcdef";
    char buf[4];
    buf[0] = ' ';
    buf[1] = digits[(v >> 4) & 15u];
    buf[2] = digits[v & 15u];
    buf[3] = '\0';
    mite_platform_write(buf);
}

int main(void) {
    static int8_t y[150];
    static unsigned char params[MITE_SAVE_BYTES];
    int64_t step;
    size_t i;
    uint64_t ticks = 0, t0;
    mite_init();
    for (step = 0; step < STEPS; step++) {
        mite_status st;
        t0 = mite_platform_ticks();
        st = mite_entry_train_step(input, LR, step, y);
        ticks += mite_platform_ticks() - t0;
        mite_platform_write("step ");
        put_int((long)step);
        mite_platform_write(" status ");
        put_int((long)st);
        mite_platform_write(":");
        for (i = 0; i < sizeof y; i++) {
            mite_platform_write(" ");
            put_int(y[i]);
        }
        mite_platform_write("\n");
    }
    (void)mite_save_params(params, sizeof params);
    mite_platform_write("params:");
    for (i = 0; i < MITE_PARAMS_BYTES; i++) {
        put_hex(params[i]);
    }
    mite_platform_write("\nmite-selftest: instructions ");
    put_int((long)(ticks * MITE_PLATFORM_INSNS_PER_TICK / STEPS));
    mite_platform_write("\nmite-selftest: ok\n");
    return 0;
}
"#;

#[test]
fn emitted_program_trains_in_qemu_like_mite_kernels() {
    let test = "emit-qemu";
    let Some(cc) = mite_test_support::tool(test, &toolchain::arm_cc().to_string_lossy()) else {
        return;
    };
    let Some(qemu) = mite_test_support::tool(test, &toolchain::qemu().to_string_lossy()) else {
        return;
    };
    let (p, input) = program();
    let dir = write_program(test, &p, &input);
    let arm = dir.join("arm");
    runtime::write_files(&arm, runtime::ARM_FILES).unwrap();
    std::fs::write(dir.join("main.c"), ARM_MAIN).unwrap();
    let expected = reference(&p, &input);
    for target in [toolchain::Target::CortexM4, toolchain::Target::CortexM7] {
        let mut sources: Vec<_> = runtime::sources(runtime::FILES)
            .map(|f| dir.join(f))
            .collect();
        sources.extend(["mite_program.c", "main.c"].map(|f| dir.join(f)));
        sources.extend(["startup.c", "semihost.c"].map(|f| arm.join(f)));
        let build = Build {
            sources,
            include_dirs: vec![dir.clone(), arm.clone()],
            extra_flags: vec![],
            output: dir.join(format!("program-{}.elf", target.name())),
        };
        let line = toolchain::arm_compile(&cc, target, &build, &arm.join(runtime::LINKER_SCRIPT));
        let out = line.run(b"", Duration::from_secs(300)).unwrap();
        check_build(&line, &out);
        let run = toolchain::qemu_run(&qemu, target, &build.output)
            .unwrap()
            .run(b"", Duration::from_secs(60))
            .unwrap();
        assert_eq!(run.status, Some(0), "{}\n{}", run.stdout, run.stderr);
        let report = toolchain::parse_selftest(&run.stdout);
        assert_eq!(report.ok, Some(true));
        let printed: String = run
            .stdout
            .lines()
            .filter(|l| !l.starts_with("mite-selftest:"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(printed, expected, "{}", target.name());
        eprintln!(
            "emit-qemu {}: {:?} instructions per training step",
            target.name(),
            report.instructions
        );
    }
}

#[test]
fn emitted_program_is_clean_under_sanitizers() {
    let Some((c, rust)) = build_and_run("emit-sanitizers", true) else {
        return;
    };
    assert_eq!(c, rust);
}

#[test]
fn emitter_refuses_an_update_before_the_loss() {
    let (mut p, _) = program();
    let b = |i| BufferId(i);
    p.entries[0].calls.push(Call {
        kernel: Kernel::SoftmaxCrossEntropy {
            batch: 1,
            classes: 6,
        },
        inputs: vec![b(9), b(1)],
        outputs: vec![b(12)],
        scratch: Some(b(9)),
        loc: Some("a loss after the updates".into()),
    });
    assert!(matches!(
        emit_program(&p),
        Err(EmitError::UpdateBeforeLoss { call: 2, .. })
    ));
}

#[test]
fn emitted_header_snapshot() {
    let (p, _) = program();
    let emitted = emit_program(&p).unwrap();
    let (_, header) = &emitted.files[0];
    insta::assert_snapshot!(header);
}

#[test]
fn inference_entry_without_parameters_builds_and_runs() {
    let test = "emit-infer";
    let Some(cc) = mite_test_support::tool(test, &toolchain::host_cc().to_string_lossy()) else {
        return;
    };
    let mut rng = common::Rng::new(5);
    let window = Window2d {
        kernel: [3, 3],
        strides: [2, 2],
        pads: [1, 0, 1, 0],
        dilations: [1, 1],
    };
    let g = Conv2dGeometry::new(1, 4, [5, 5], 4, 4, window).unwrap(); // depthwise
    let mut kernel = conv(g, vec![0.03], Rounding::FloatScale, vec![1, 2, 3, 4], 0);
    if let Kernel::ConvInt8 { bias, .. } = &mut kernel {
        *bias = false;
    }
    let weights = rng.i8s(g.weight_len());
    let input = rng.i8s(g.input_len());
    let p = Program {
        name: "infer".into(),
        arena_bytes: 64,
        buffers: vec![
            decl(
                "input",
                BufElem::I8,
                &[1, 4, 5, 5],
                Storage::Arg {
                    entry: 0,
                    role: ArgRole::Input,
                },
            ),
            decl(
                "label",
                BufElem::I32,
                &[1],
                Storage::Arg {
                    entry: 0,
                    role: ArgRole::Label,
                },
            ),
            decl(
                "dw.weight",
                BufElem::I8,
                &[4, 1, 3, 3],
                Storage::Flash {
                    global: None,
                    data: TensorData::I8(weights.clone()),
                },
            ),
            decl(
                "dw",
                BufElem::I8,
                &[1, 4, 3, 2],
                Storage::Arena { offset: 0 },
            ),
            decl(
                "dw.scratch",
                BufElem::I32,
                &[6],
                Storage::Arena { offset: 24 },
            ),
        ],
        entries: vec![Entry {
            name: "infer".into(),
            args: vec![BufferId(0), BufferId(1)],
            results: vec![BufferId(3)],
            calls: vec![Call {
                kernel: kernel.clone(),
                inputs: vec![BufferId(0), BufferId(2)],
                outputs: vec![BufferId(3)],
                scratch: Some(BufferId(4)),
                loc: None,
            }],
        }],
    };
    verify_program(&p).expect("verifies");
    let dir = temp_dir(test);
    runtime::write_files(&dir, runtime::FILES).unwrap();
    for (name, text) in &emit_program(&p).unwrap().files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let main = format!(
        "#include <stdio.h>\n#include \"mite_program.h\"\n\
         static const int8_t input[100] = {{{}}};\n\
         int main(void) {{\n    int8_t y[24];\n    int32_t label = 0;\n    size_t i;\n    \
         unsigned char none[1];\n    mite_init();\n    \
         if (mite_entry_infer(input, &label, y) != MITE_OK || mite_save_params(none, 0) != MITE_SAVE_BYTES) {{\n        \
         return 1;\n    }}\n    for (i = 0; i < sizeof y; i++) {{\n        printf(\" %d\", y[i]);\n    }}\n    \
         printf(\"\\n\");\n    return 0;\n}}\n",
        input
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(dir.join("main.c"), main).unwrap();
    let mut sources: Vec<_> = runtime::sources(runtime::FILES)
        .map(|f| dir.join(f))
        .collect();
    sources.extend(["mite_program.c", "main.c"].map(|f| dir.join(f)));
    let build = Build {
        sources,
        include_dirs: vec![dir.clone()],
        extra_flags: vec![],
        output: dir.join("infer"),
    };
    let line = toolchain::host_compile(&cc, &build, false);
    let out = line.run(b"", Duration::from_secs(300)).unwrap();
    check_build(&line, &out);
    let run = CommandLine::new(&build.output)
        .run(b"", Duration::from_secs(30))
        .unwrap();
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let Kernel::ConvInt8 {
        scales,
        multipliers,
        shifts,
        w_zero_points,
        range,
        ..
    } = &kernel
    else {
        unreachable!()
    };
    let requant = Requant::new(Rounding::FloatScale, scales, multipliers, shifts).unwrap();
    let stage = OutputStage {
        requant,
        zero_point: -3,
        range: *range,
    };
    let params = Conv2dInt8Params::new(g, 0, w_zero_points, stage).unwrap();
    let mut y = vec![0; 24];
    let mut scratch = vec![0; 6];
    conv2d_int8(&input, &weights, None, &mut y, &mut scratch, &params).unwrap();
    let expected: String = y.iter().map(|v| format!(" {v}")).collect::<String>() + "\n";
    assert_eq!(run.stdout, expected);
}
