//! Quantizing a user's float model: calibration over an image split with the interpreter, then
//! the [`Quantize`] pass (`mite quantize`, `mite train --calibrate`).
//!
//! Calibration runs the float function on each image and records, for every float value, its
//! minimum and maximum ([`Method::MinMax`]), or the given low / high percentiles of each image's
//! values averaged over the images ([`Method::Percentile`], which ignores rare outliers).

use crate::eval::image_input;
use mite_data::{Dataset, Normalization};
use mite_interp::exec::Buffer;
use mite_interp::{Interpreter, Tensor};
use mite_ir::{verify_module, ElemType, Module, Value};
use mite_passes::passes::{Calibration, Quantize, Range};
use mite_passes::{Pass, Statistics};
use std::collections::HashMap;

/// How ranges are computed from the calibration images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The smallest and largest value over all images.
    MinMax,
    /// Per image, the `p`-th and `(100 − p)`-th percentiles (`p` in (50, 100]); averaged over the
    /// images.
    Percentile(f32),
}

impl Method {
    /// Parses `minmax` or `percentile:P` (e.g. `percentile:99.99`).
    pub fn parse(text: &str) -> Result<Method, String> {
        match text.split_once(':') {
            None if text == "minmax" => Ok(Method::MinMax),
            Some(("percentile", p)) => match p.parse::<f32>() {
                Ok(p) if p > 50.0 && p <= 100.0 => Ok(Method::Percentile(p)),
                _ => Err(format!(
                    "calibration method `{text}`: the percentile must be a number in (50, 100]"
                )),
            },
            _ => Err(format!(
                "calibration method `{text}`: expected minmax or percentile:P"
            )),
        }
    }
}

/// Options of [`calibrate`].
#[derive(Clone, Copy, Debug)]
pub struct CalibrateOptions {
    /// Range statistic.
    pub method: Method,
    /// Use only the first N images.
    pub limit: Option<usize>,
    /// Pixel normalisation of the model's input.
    pub normalization: Normalization,
    /// Resize images of another size to the model's input (bilinear) instead of refusing them.
    pub resize: bool,
    /// 7-bit weights (onnxruntime's `reduce_range`, see [`Quantize::weight_max`]).
    pub reduce_range: bool,
}

/// Per-value running statistics.
#[derive(Clone, Copy)]
struct Acc {
    min: f32,
    max: f32,
    lo_sum: f64,
    hi_sum: f64,
    n: usize,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            lo_sum: 0.0,
            hi_sum: 0.0,
            n: 0,
        }
    }

    fn add(&mut self, values: &[f32], method: Method) {
        for &v in values {
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
        }
        if let Method::Percentile(p) = method {
            let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
            if sorted.is_empty() {
                return;
            }
            sorted.sort_by(f32::total_cmp);
            let last = sorted.len() - 1;
            let hi = ((f64::from(p) / 100.0) * last as f64).round() as usize;
            let lo = last - hi.min(last);
            self.lo_sum += f64::from(sorted[lo]);
            self.hi_sum += f64::from(sorted[hi.min(last)]);
            self.n += 1;
        }
    }

    fn range(&self, method: Method) -> Option<Range> {
        if !(self.min.is_finite() && self.max.is_finite()) {
            return None;
        }
        Some(match method {
            Method::MinMax => Range {
                min: self.min,
                max: self.max,
            },
            Method::Percentile(_) if self.n > 0 => Range {
                min: (self.lo_sum / self.n as f64) as f32,
                max: (self.hi_sum / self.n as f64) as f32,
            },
            Method::Percentile(_) => return None,
        })
    }
}

/// Checks that `data` fits the input `[1, C, H, W]` of `forward`; returns `[C, H, W]`.
pub fn check_split(module: &Module, data: &Dataset, resize: bool) -> Result<[usize; 3], String> {
    let [c, h, w] = image_input(module, "forward")?;
    if data.len == 0 {
        return Err("error: the calibration split has no images".into());
    }
    if data.chw[0] != c {
        return Err(format!(
            "error: the calibration images have {} channels, the model takes {c}",
            data.chw[0]
        ));
    }
    if !resize && [data.chw[1], data.chw[2]] != [h, w] {
        return Err(format!(
            "error: the calibration images are {}x{}, the model takes {h}x{w} (pass --resize to \
             resize them bilinearly)",
            data.chw[1], data.chw[2]
        ));
    }
    Ok([c, h, w])
}

/// Runs `forward` of the float `module` on the calibration images and returns the range of every
/// float value; calls `progress(done, total)` after each image.
pub fn calibrate(
    module: &Module,
    data: &Dataset,
    opts: &CalibrateOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Calibration, String> {
    let [c, h, w] = check_split(module, data, opts.resize)?;
    let func = module
        .function("forward")
        .ok_or("error: the model has no function @forward")?;
    let arg = func.args()[0];
    let interp = Interpreter::new(module).map_err(|e| format!("error: {e}"))?;
    let n = opts.limit.map_or(data.len, |l| l.min(data.len));
    if n == 0 {
        return Err("error: --limit 0 leaves no calibration images".into());
    }
    let mut accs: HashMap<Value, Acc> = HashMap::new();
    for i in 0..n {
        let image = data
            .image(i, [h, w], opts.normalization)
            .map_err(|e| format!("error: {e}"))?;
        accs.entry(arg)
            .or_insert_with(Acc::new)
            .add(&image, opts.method);
        let input = Tensor::f32(&[1, c, h, w], image).map_err(|e| format!("error: {e}"))?;
        let mut failure = None;
        interp
            .run_with_trace("forward", &[input], |event| {
                if event.ty.elem != ElemType::F32 {
                    return;
                }
                let Some(&result) = event.op.results.first() else {
                    return;
                };
                match &event.value {
                    Buffer::Real(values) => accs
                        .entry(result)
                        .or_insert_with(Acc::new)
                        .add(values, opts.method),
                    _ => failure = Some(format!("op {} gave no float values", event.op_name())),
                }
            })
            .map_err(|e| format!("error: calibration image {i}: {e}"))?;
        if let Some(f) = failure {
            return Err(format!("error: calibration image {i}: {f}"));
        }
        progress(i + 1, n);
    }
    let ranges = accs
        .into_iter()
        .filter_map(|(v, a)| Some((v, a.range(opts.method)?)))
        .collect();
    Ok(Calibration { ranges })
}

/// Quantizes `forward` of the float `module` in place with `calibration`, verifies the result
/// and returns the pass statistics; `reduce_range` asks for 7-bit weights.
pub fn quantize_module(
    module: &mut Module,
    calibration: Calibration,
    reduce_range: bool,
) -> Result<Statistics, String> {
    let float_params = module
        .globals
        .values()
        .any(|g| g.ty.elem == ElemType::F32 && g.ty.quant.is_none());
    let has_q = module
        .functions
        .iter()
        .any(|f| f.layout().iter().any(|&id| f.op(id).op.dialect() == "q"));
    if has_q || !float_params {
        return Err(
            "error: the model is already quantized (it has int8 ops or no float parameters)".into(),
        );
    }
    let mut stats = Statistics::new();
    let mut pass = Quantize::new(calibration);
    if reduce_range {
        pass.weight_max = 63;
    }
    pass.run(module, &mut stats)
        .map_err(|e| format!("error: {e}"))?;
    verify_module(module).map_err(|e| format!("error: the quantized model: {e}"))?;
    Ok(stats)
}

/// Where and how to calibrate (the command line's `--calibrate DIR --split S --limit N`).
#[derive(Clone, Debug)]
pub struct CalibrationSource {
    /// The dataset directory.
    pub dir: std::path::PathBuf,
    /// The split.
    pub split: String,
    /// Options.
    pub options: CalibrateOptions,
}

/// Loads the calibration split, calibrates the float `module` and quantizes it in place, with a
/// progress bar on stderr; returns the pass statistics.
pub fn calibrate_and_quantize(
    module: &mut Module,
    source: &CalibrationSource,
) -> Result<Statistics, String> {
    use std::io::Write;
    let data = Dataset::load(&source.dir, &source.split)
        .map_err(|e| format!("error: calibration split: {e}"))?;
    let calibration = calibrate(module, &data, &source.options, |done, total| {
        if done % 10 == 0 || done == total {
            let width = 30;
            let filled = width * done / total.max(1);
            eprint!(
                "\rcalibrating [{}{}] {done}/{total} images",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
        }
    })?;
    eprintln!();
    quantize_module(module, calibration, source.options.reduce_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse() {
        assert_eq!(Method::parse("minmax").unwrap(), Method::MinMax);
        assert_eq!(
            Method::parse("percentile:99.9").unwrap(),
            Method::Percentile(99.9)
        );
        assert!(Method::parse("percentile:40").is_err());
        assert!(Method::parse("entropy")
            .unwrap_err()
            .contains("expected minmax"));
    }

    #[test]
    fn percentile_ignores_outliers_and_minmax_does_not() {
        let mut values: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        values.push(100.0);
        values.push(-50.0);
        let mut minmax = Acc::new();
        minmax.add(&values, Method::MinMax);
        assert_eq!(
            minmax.range(Method::MinMax),
            Some(Range {
                min: -50.0,
                max: 100.0
            })
        );
        let method = Method::Percentile(99.0);
        let mut p = Acc::new();
        p.add(&values, method);
        p.add(&values, method);
        let r = p.range(method).unwrap();
        assert!(r.min >= 0.0 && r.min < 0.02, "{r:?}");
        assert!(r.max > 0.97 && r.max < 1.0, "{r:?}");
    }
}
