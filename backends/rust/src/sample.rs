//! A small hand-built [`Program`] that trains end to end, for tests and demonstrations of the
//! backend without the lowering.

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

/// Buffers of a program under construction, arena buffers placed one after another.
#[derive(Default)]
struct Builder {
    buffers: Vec<BufferDecl>,
    arena: u64,
}

impl Builder {
    fn add(&mut self, name: &str, elem: BufElem, shape: &[usize], storage: Storage) -> BufferId {
        self.buffers.push(buf(name, elem, shape, storage));
        BufferId(self.buffers.len() as u32 - 1)
    }

    fn arena(&mut self, name: &str, elem: BufElem, shape: &[usize]) -> BufferId {
        self.placed(name, elem, shape, |offset| Storage::Arena { offset })
    }

    /// Entry `entry`'s int8 input, in the arena.
    fn input(&mut self, entry: usize, shape: &[usize]) -> BufferId {
        self.placed("input", BufElem::I8, shape, |offset| Storage::Input {
            entry,
            offset,
        })
    }

    /// A buffer at the next free (8-aligned) arena offset.
    fn placed(
        &mut self,
        name: &str,
        elem: BufElem,
        shape: &[usize],
        storage: impl FnOnce(u64) -> Storage,
    ) -> BufferId {
        let offset = self.arena.div_ceil(8) * 8;
        let id = self.add(name, elem, shape, storage(offset));
        self.arena = offset + self.buffers[id.index()].bytes();
        id
    }

    fn arg(&mut self, entry: usize, role: ArgRole, elem: BufElem, shape: &[usize]) -> BufferId {
        self.add(role.name(), elem, shape, Storage::Arg { entry, role })
    }
}

fn call(
    kernel: Kernel,
    inputs: &[BufferId],
    outputs: &[BufferId],
    scratch: Option<BufferId>,
) -> Call {
    Call {
        loc: Some(kernel.name().to_string()),
        kernel,
        inputs: inputs.to_vec(),
        outputs: outputs.to_vec(),
        scratch,
    }
}

/// A tiny network trained end to end: 3x3 convolution `[1,2,6,6] -> [1,4,4,4]` (trained
/// weight), global average pool, dequantized logits, softmax cross-entropy; its backward pass
/// (pool, weight gradient of the dequantized input) and a QAS update of the weight.
pub fn tiny() -> Program {
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
    let mut b = Builder::default();
    let weight = b.add(
        "conv.weight",
        BufElem::I8,
        &[4, 2, 3, 3],
        Storage::Param {
            global: "conv.weight".into(),
            init: TensorData::I8(w),
        },
    );
    let one = b.add(
        "one",
        BufElem::F32,
        &[1],
        Storage::Flash {
            global: None,
            data: TensorData::F32(vec![1.0]),
        },
    );
    let pooled_quant = Kernel::Dequantize {
        len: 4,
        scales: vec![0.1],
        zero_points: vec![5],
        inner: 1,
    };
    let forward = |b: &mut Builder, x: BufferId| {
        let y = b.arena("conv", BufElem::I8, &[1, 4, 4, 4]);
        let s = b.arena("conv.scratch", BufElem::I32, &[16]);
        let pooled = b.arena("pool", BufElem::I8, &[1, 4]);
        let logits = b.arena("logits", BufElem::F32, &[1, 4]);
        let calls = vec![
            call(conv(g, false), &[x, weight], &[y], Some(s)),
            call(
                Kernel::GlobalAvgPoolInt8 {
                    dims: [1, 4, 4, 4],
                    rounding: Rounding::Double,
                },
                &[y],
                &[pooled],
                None,
            ),
            call(pooled_quant.clone(), &[pooled], &[logits], None),
        ];
        (calls, logits)
    };
    let x0 = b.input(0, &[1, 2, 6, 6]);
    let (infer_calls, logits0) = forward(&mut b, x0);
    let x = b.input(1, &[1, 2, 6, 6]);
    let label = b.arg(1, ArgRole::Label, BufElem::I32, &[1]);
    let lr = b.arg(1, ArgRole::LearningRate, BufElem::F32, &[1]);
    let step = b.arg(1, ArgRole::Step, BufElem::I64, &[1]);
    let (mut calls, logits) = forward(&mut b, x);
    let loss = b.arena("loss", BufElem::F32, &[1]);
    let ce_scratch = b.arena("loss.scratch", BufElem::F32, &[4]);
    let dlogits = b.arena("logits.grad", BufElem::F32, &[1, 4]);
    let dy = b.arena("conv.grad", BufElem::F32, &[1, 4, 4, 4]);
    let xf = b.arena("x.real", BufElem::F32, &[1, 2, 6, 6]);
    let dw = b.arena("conv.weight.grad", BufElem::F32, &[4, 2, 3, 3]);
    calls.extend([
        call(
            Kernel::SoftmaxCrossEntropy {
                batch: 1,
                classes: 4,
            },
            &[logits, label],
            &[loss],
            Some(ce_scratch),
        ),
        call(
            Kernel::SoftmaxCrossEntropyBackward {
                batch: 1,
                classes: 4,
            },
            &[logits, label, one],
            &[dlogits],
            None,
        ),
        call(
            Kernel::GlobalAvgPoolBackward { dims: [1, 4, 4, 4] },
            &[dlogits],
            &[dy],
            None,
        ),
        call(
            Kernel::Dequantize {
                len: 72,
                scales: vec![0.05],
                zero_points: vec![-3],
                inner: 1,
            },
            &[x],
            &[xf],
            None,
        ),
        call(
            Kernel::ConvBackwardWeight { geometry: g },
            &[xf, dy],
            &[dw],
            None,
        ),
        call(
            Kernel::Sgd {
                elem: BufElem::I8,
                len: 72,
                lr_scale: 1.0,
                momentum: 0.0,
                weight_decay: 0.0,
                qas: true,
                stochastic_seed: None,
                scales: vec![0.02; 4],
                zero_points: vec![0; 4],
                inner: 18,
                accumulate: 1,
                slice: None,
            },
            &[dw, lr, step],
            &[weight],
            None,
        ),
    ]);
    Program {
        name: "tiny".into(),
        arena_bytes: b.arena.div_ceil(8) * 8,
        buffers: b.buffers,
        entries: vec![
            Entry {
                name: "infer".into(),
                args: vec![x0],
                results: vec![logits0],
                calls: infer_calls,
            },
            Entry {
                name: "train_step".into(),
                args: vec![x, label, lr, step],
                results: vec![loss],
                calls,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiny_program_verifies_and_emits() {
        let p = tiny();
        mite_ir::program::verify_program(&p).unwrap();
        let files = crate::emit_crate(&p, &crate::RustOptions::default()).unwrap();
        let steps = files
            .iter()
            .find(|f| f.path.ends_with("src/steps.rs"))
            .unwrap();
        let steps = String::from_utf8(steps.contents.clone()).unwrap();
        // The loss is checked right after the call that computes it, before any update.
        let check = steps.find("NonFiniteLoss").unwrap();
        assert!(check > steps.find("rt::softmax_cross_entropy(").unwrap());
        assert!(check < steps.find("rt::sgd::<i8>").unwrap());
    }

    #[test]
    fn a_training_entry_without_a_loss_is_refused() {
        let mut p = tiny();
        let loss_call = p.entries[1]
            .calls
            .iter()
            .position(|c| matches!(c.kernel, Kernel::SoftmaxCrossEntropy { .. }))
            .unwrap();
        p.entries[1].calls.remove(loss_call);
        let Err(err) = crate::codegen::generate(&p, &crate::RustOptions::default()) else {
            panic!("emitted a training step without a loss");
        };
        assert!(
            err.to_string().contains("no call computes its loss"),
            "{err}"
        );
    }

    #[test]
    fn an_update_before_the_loss_is_refused() {
        let mut p = tiny();
        let calls = &mut p.entries[1].calls;
        let sgd = calls.pop().unwrap();
        calls.insert(3, sgd);
        let Err(err) = crate::codegen::generate(&p, &crate::RustOptions::default()) else {
            panic!("emitted an update before the loss");
        };
        assert!(
            matches!(err, crate::EmitError::UpdateBeforeLoss { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_program_without_an_inference_entry_is_refused() {
        let mut p = tiny();
        p.entries.remove(0);
        let Err(err) = crate::codegen::generate(&p, &crate::RustOptions::default()) else {
            panic!("emitted a program without an inference entry");
        };
        assert!(
            matches!(err, crate::EmitError::MissingEntry("inference", _)),
            "{err}"
        );
    }
}
