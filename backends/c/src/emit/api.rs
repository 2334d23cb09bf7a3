//! Issue #11's device API over the entry functions of a training program: `mite_infer`,
//! `mite_train_step` (learning rate and step kept in static state, `mite_set_lr`), with error
//! codes for a bad label and a non-finite loss; when the training step's input lives in the
//! arena, `mite_input_buffer` returns where, so a board writes its camera image straight there.

use mite_ir::program::{ArgRole, BufElem, Entry, Kernel, Program, Storage};

use super::literal::f32_lit;
use super::{ident, EmitError};

/// The entry the API's `mite_infer` calls.
pub const INFER: &str = "infer";
/// The entry the API's `mite_train_step` calls.
pub const TRAIN: &str = "train_step";

/// The learning rate `mite_init` sets (change it with `mite_set_lr`).
pub const DEFAULT_LR: f32 = 0.01;

fn find<'a>(p: &'a Program, name: &str) -> Option<&'a Entry> {
    p.entries.iter().find(|e| e.name == name)
}

fn roles(p: &Program, e: &Entry) -> Vec<ArgRole> {
    e.args
        .iter()
        .filter_map(|&a| p.buffer(a).storage.arg_role())
        .collect()
}

/// The index of the call that computes the loss of a training entry, checked to come before
/// every update; `None` if the entry updates nothing or computes no loss.
pub(super) fn loss_call(entry: &Entry) -> Result<Option<usize>, EmitError> {
    let loss = entry
        .calls
        .iter()
        .position(|c| matches!(c.kernel, Kernel::SoftmaxCrossEntropy { .. }));
    let first_update = entry.calls.iter().position(|c| c.kernel.is_update());
    match (loss, first_update) {
        (_, None) | (None, _) => Ok(None),
        (Some(l), Some(u)) if l < u => Ok(Some(l)),
        (_, Some(u)) => Err(EmitError::UpdateBeforeLoss {
            entry: entry.name.clone(),
            call: u,
        }),
    }
}

/// The API's prototypes and functions, or `None` if the program lacks the `infer` /
/// `train_step` entries of the expected form.
pub(super) fn api(p: &Program) -> Option<(String, String)> {
    let infer = find(p, INFER)?;
    let train = find(p, TRAIN)?;
    if roles(p, infer) != [ArgRole::Input]
        || roles(p, train)
            != [
                ArgRole::Input,
                ArgRole::Label,
                ArgRole::LearningRate,
                ArgRole::Step,
            ]
        || infer.results.len() != 1
        || train.results.len() != 1
    {
        return None;
    }
    let classes = train.calls.iter().find_map(|c| match c.kernel {
        Kernel::SoftmaxCrossEntropy { batch: 1, classes } => Some(classes),
        _ => None,
    })?;
    let input = p.buffer(infer.args[0]);
    let (buffer_proto, buffer_fn) = match p.buffer(train.args[0]).storage {
        Storage::Input { offset, .. } => (
            "/* Where mite_train_step keeps its input in the arena (MITE_INPUT_LEN int8 values):\n \
             * write the image here and pass this pointer to mite_train_step or mite_infer, and no\n \
             * second image buffer is needed (mite_train_step copies nothing; mite_infer moves the\n \
             * image if its own input lives elsewhere). Every call overwrites it. */\n\
             int8_t *mite_input_buffer(void);\n\n"
                .to_owned(),
            format!(
                "int8_t *mite_input_buffer(void) {{\n    \
                 return (int8_t *)(void *)(mite_arena.bytes + {offset}u);\n}}\n\n"
            ),
        ),
        _ => (String::new(), String::new()),
    };
    let logits = p.buffer(infer.results[0]);
    let loss = p.buffer(train.results[0]);
    if input.elem != BufElem::I8 || logits.elem != BufElem::F32 || loss.elem != BufElem::F32 {
        return None;
    }
    let protos = format!(
        "/* ---- Device API (issue #11). Input: int8 {shape:?} ({len} values, quantized as the\n \
         * model's first layer expects); logits: {classes} floats. */\n\
         #define MITE_INPUT_LEN {len}u\n#define MITE_CLASSES {classes}u\n\
         /* The label is not in 0..MITE_CLASSES; nothing ran. */\n\
         #define MITE_ERR_BAD_LABEL ((mite_status)16)\n\n\
         /* Logits of one image. */\n\
         mite_status mite_infer(const int8_t *input, float *logits);\n\n{buffer_proto}\
         /* One training step on one image: forward, loss, backward, update (learning rate of\n \
         * mite_set_lr, default {lr}; the step counter advances on success). */\n\
         mite_status mite_train_step(const int8_t *input, int32_t label, float *loss);\n\n\
         /* The learning rate of the following steps. */\nvoid mite_set_lr(float lr);\n\n\
         /* The arena (MITE_ARENA_BYTES bytes): nothing in it outlives a call, so between calls a\n \
         * board may use it as scratch, e.g. to stage mite_save_params's image before writing it\n \
         * to flash. Every mite_* call overwrites it. */\n\
         void *mite_scratch(void);\n\n",
        shape = input.shape,
        len = input.len,
        lr = DEFAULT_LR,
    );
    let entry = |e: &Entry| format!("mite_entry_{}", ident(&e.name));
    let funcs = format!(
        "static float mite_lr = {lr};\nstatic int64_t mite_step = 0;\n\n\
         void mite_set_lr(float lr) {{\n    mite_lr = lr;\n}}\n\n\
         void *mite_scratch(void) {{\n    return (void *)mite_arena.bytes;\n}}\n\n{buffer_fn}\
         mite_status mite_infer(const int8_t *input, float *logits) {{\n    \
         return {infer}(input, logits);\n}}\n\n\
         mite_status mite_train_step(const int8_t *input, int32_t label, float *loss) {{\n    \
         mite_status st;\n    \
         if (label < 0 || label >= (int32_t){classes}) {{\n        return MITE_ERR_BAD_LABEL;\n    }}\n    \
         st = {train}(input, &label, mite_lr, mite_step, loss);\n    \
         if (st == MITE_OK) {{\n        mite_step++;\n    }}\n    return st;\n}}\n\n\
         static void mite_api_reset(void) {{\n    mite_lr = {lr};\n    mite_step = 0;\n}}\n\n",
        lr = f32_lit(DEFAULT_LR),
        infer = entry(infer),
        train = entry(train),
    );
    Some((protos, funcs))
}
