//! `mite eval`: top-1 accuracy of a model on an image split, with the logits if asked.

use mite_data::{Dataset, Normalization};
use mite_interp::quant::Rounding;
use mite_interp::{InterpOptions, Interpreter, Tensor};
use mite_ir::{ElemType, Module};
use serde::Serialize;

/// What `mite eval` reports.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Images evaluated.
    pub n: usize,
    /// Images whose top-1 prediction equals the label.
    pub correct: usize,
    /// `correct / n`.
    pub accuracy: f64,
    /// Wall time per image, median, in milliseconds.
    pub median_ms_per_image: f64,
}

/// Logits of every evaluated image, row-major `[n, classes]`.
#[derive(Clone, Debug)]
pub struct Logits {
    /// Number of classes.
    pub classes: usize,
    /// The values.
    pub values: Vec<f32>,
}

/// The model input `[1, C, H, W]` of function `func`, checked to be f32 NCHW with batch 1.
pub fn image_input(module: &Module, func: &str) -> Result<[usize; 3], String> {
    let f = module
        .function(func)
        .ok_or_else(|| format!("error: the model has no function @{func}"))?;
    let [arg] = f.args() else {
        return Err(format!(
            "error: @{func} takes {} inputs; an image classifier takes one",
            f.args().len()
        ));
    };
    let ty = f.ty(*arg);
    match (ty.elem, &ty.shape[..]) {
        (ElemType::F32, &[1, c, h, w]) => Ok([c, h, w]),
        _ => Err(format!(
            "error: @{func} takes {ty}; expected an f32 image tensor<1xCxHxWxf32>"
        )),
    }
}

/// Checks that the images of `data` are planar with the `c` channels the model takes, naming
/// the layout that was found otherwise (e.g. NHWC, or grey images).
pub fn check_images(data: &Dataset, c: usize) -> Result<(), String> {
    let [dc, dh, dw] = data.chw;
    if dc == c {
        return Ok(());
    }
    if dw == c {
        return Err(format!(
            "error: the images are stored as [N, {dc}, {dh}, {dw}], which looks like NHWC \
             (channels last); mite expects planar [N, C, H, W] images with C = {c}"
        ));
    }
    Err(format!(
        "error: the images have {dc} channel(s) ([N, {dc}, {dh}, {dw}]) but the model takes {c}"
    ))
}

/// The number of classes `func` predicts: the last dimension of its first output.
pub fn model_classes(module: &Module, func: &str) -> Result<usize, String> {
    let f = module
        .function(func)
        .ok_or_else(|| format!("error: the model has no function @{func}"))?;
    let out = f
        .outputs()
        .first()
        .ok_or_else(|| format!("error: @{func} returns nothing"))?;
    Ok(f.ty(*out).shape.last().copied().unwrap_or(1))
}

/// Checks that the first `n` labels name one of the `classes` classes.
pub fn check_labels(data: &Dataset, n: usize, classes: usize) -> Result<(), String> {
    let labels = &data.labels()[..n.min(data.labels().len())];
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(i) => Err(format!(
            "error: image {i} has label {} but the model predicts {classes} classes (0 to {})",
            labels[i],
            classes.saturating_sub(1)
        )),
        None => Ok(()),
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Runs `func` on the first `limit` images of `data` (all when `None`), resized bilinearly to the
/// model's input and normalised; calls `progress(done, total)` after each image.
pub fn evaluate(
    module: &Module,
    func: &str,
    data: &Dataset,
    norm: Normalization,
    limit: Option<usize>,
    rounding: Rounding,
    mut progress: impl FnMut(usize, usize),
) -> Result<(EvalReport, Logits), String> {
    let [c, h, w] = image_input(module, func)?;
    check_images(data, c)?;
    let n = limit.map_or(data.len, |l| l.min(data.len));
    check_labels(data, n, model_classes(module, func)?)?;
    let interp =
        Interpreter::with_options(module, InterpOptions::default().with_rounding(rounding))
            .map_err(|e| format!("error: {e}"))?;
    let mut values = Vec::new();
    let mut classes = 0;
    let mut correct = 0;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let image = data
            .image(i, [h, w], norm)
            .map_err(|e| format!("error: {e}"))?;
        let input = Tensor::f32(&[1, c, h, w], image).map_err(|e| format!("error: {e}"))?;
        let start = std::time::Instant::now();
        let outputs = interp
            .run(func, &[input])
            .map_err(|e| format!("error: image {i}: {e}"))?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        let logits = outputs
            .first()
            .map(Tensor::to_real)
            .ok_or_else(|| format!("error: @{func} returns nothing"))?;
        classes = logits.len();
        if argmax(&logits) as u32 == data.label(i).map_err(|e| format!("error: {e}"))? {
            correct += 1;
        }
        values.extend_from_slice(&logits);
        progress(i + 1, n);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    let report = EvalReport {
        n,
        correct,
        accuracy: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
        median_ms_per_image: median,
    };
    Ok((report, Logits { classes, values }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
