//! Hand-built Programs for the tests.

use mite_ir::program::{
    ArgRole, BufElem, BufferDecl, BufferId, Call, Entry, Kernel, Program, Storage,
};
use mite_ir::TensorData;
use mite_kernels::requant::{ActRange, Rounding};
use mite_kernels::{Conv2dGeometry, Window2d};

fn buf(name: &str, elem: BufElem, shape: &[usize], storage: Storage) -> BufferDecl {
    BufferDecl {
        name: name.to_string(),
        elem,
        len: shape.iter().product(),
        shape: shape.to_vec(),
        storage,
    }
}

fn conv(geometry: Conv2dGeometry, bias: bool) -> Kernel {
    let scales = vec![0.01_f64; geometry.c_out()];
    let (multipliers, shifts) = scales
        .iter()
        .map(|&s| Rounding::Double.quantize_multiplier(s))
        .unzip();
    Kernel::ConvInt8 {
        geometry,
        x_zero_point: -3,
        w_zero_points: vec![],
        scales,
        multipliers,
        shifts,
        out_zero_point: 5,
        range: ActRange::FULL,
        rounding: Rounding::Double,
        bias,
    }
}

/// A 3x3 convolution `[1,2,6,6] -> [1,4,4,4]` (inference) and a training entry that updates its
/// weight with a constant gradient.
pub(crate) fn conv_sgd() -> Program {
    let g = Conv2dGeometry::new(
        1,
        2,
        [6, 6],
        4,
        1,
        Window2d {
            kernel: [3, 3],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        },
    )
    .unwrap();
    let w: Vec<i8> = (0..72).map(|i| (i * 7 % 23) as i8 - 11).collect();
    let grad: Vec<f32> = (0..72).map(|i| (i as f32 - 36.0) * 0.125).collect();
    let buffers = vec![
        buf(
            "x",
            BufElem::I8,
            &[1, 2, 6, 6],
            Storage::Arg {
                entry: 0,
                role: ArgRole::Input,
            },
        ),
        buf(
            "conv.weight",
            BufElem::I8,
            &[4, 2, 3, 3],
            Storage::Param {
                global: "conv.weight".into(),
                init: TensorData::I8(w),
            },
        ),
        buf(
            "conv",
            BufElem::I8,
            &[1, 4, 4, 4],
            Storage::Arena { offset: 0 },
        ),
        buf(
            "conv.scratch",
            BufElem::I32,
            &[16],
            Storage::Arena { offset: 64 },
        ),
        buf(
            "x",
            BufElem::I8,
            &[1, 2, 6, 6],
            Storage::Arg {
                entry: 1,
                role: ArgRole::Input,
            },
        ),
        buf(
            "label",
            BufElem::I32,
            &[1],
            Storage::Arg {
                entry: 1,
                role: ArgRole::Label,
            },
        ),
        buf(
            "grad",
            BufElem::F32,
            &[4, 2, 3, 3],
            Storage::Flash {
                global: None,
                data: TensorData::F32(grad),
            },
        ),
        buf(
            "loss",
            BufElem::F32,
            &[1],
            Storage::Arg {
                entry: 1,
                role: ArgRole::LearningRate,
            },
        ),
    ];
    let b = BufferId;
    let conv_call = |x| Call {
        kernel: conv(g, false),
        inputs: vec![x, b(1)],
        outputs: vec![b(2)],
        scratch: Some(b(3)),
        loc: Some("conv".into()),
    };
    Program {
        name: "conv_sgd".into(),
        arena_bytes: 128,
        buffers,
        entries: vec![
            Entry {
                name: "infer".into(),
                args: vec![b(0)],
                results: vec![b(2)],
                calls: vec![conv_call(b(0))],
            },
            Entry {
                name: "train_step".into(),
                args: vec![b(4), b(5), b(7)],
                results: vec![b(7)],
                calls: vec![
                    conv_call(b(4)),
                    Call {
                        kernel: Kernel::Sgd {
                            elem: BufElem::I8,
                            len: 72,
                            lr_scale: 1.0,
                            momentum: 0.0,
                            weight_decay: 0.0,
                            qas: true,
                            stochastic_seed: None,
                            scales: vec![0.05; 4],
                            zero_points: vec![0; 4],
                            inner: 18,
                        },
                        inputs: vec![b(6)],
                        outputs: vec![b(1)],
                        scratch: None,
                        loc: Some("conv.weight".into()),
                    },
                ],
            },
        ],
    }
}

#[test]
fn a_training_entry_without_a_loss_is_refused() {
    let p = conv_sgd();
    mite_ir::program::verify_program(&p).unwrap();
    let err = crate::emit_crate(&p, &crate::RustOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry @train_step: no call computes its loss b7"
    );
}

#[test]
fn a_program_without_an_inference_entry_is_refused() {
    let mut p = conv_sgd();
    p.entries.remove(0);
    let Err(err) = crate::codegen::generate(&p, &crate::RustOptions::default()) else {
        panic!("emitted a program without an inference entry");
    };
    assert!(
        matches!(err, crate::EmitError::MissingEntry("inference", _)),
        "{err}"
    );
}
