//! The float MCUNet-5FPS of issue #8, small: built from the dequantized weights of
//! `../shared/models/mcunet-5fps.onnx` (float convs, explicit `Relu` / `Clip`, every third conv
//! with an unfolded `BatchNormalization`), quantized with calibration on 10 Imagenette images,
//! and compared on 20 with the float model, and with onnxruntime. The full experiment (100
//! calibration images, all 200, CIFAR-10 training) is `tools/quantize_mcunet.sh`.

mod quantize_support;

use mite::data::{Dataset, Normalization};
use mite::eval::{argmax, evaluate, Logits};
use mite::interp::quant::Rounding;
use mite::model::load_model;
use mite::quantize::{calibrate, quantize_module, CalibrateOptions, Method};

const N: usize = 20;

fn top1(logits: &Logits, data: &Dataset, n: usize) -> usize {
    logits
        .values
        .chunks(logits.classes)
        .take(n)
        .enumerate()
        .filter(|(i, row)| argmax(row) as u32 == data.label(*i).unwrap())
        .count()
}

#[test]
fn float_mcunet_quantizes_within_two_images_and_matches_onnxruntime() {
    let test = "float_mcunet_quantizes_within_two_images_and_matches_onnxruntime";
    let Some(int8) = mite_test_support::shared_file(test, "models/mcunet-5fps.onnx") else {
        return;
    };
    let Some(val_dir) = mite_test_support::shared_dir(test).map(|d| d.join("datasets/imagenette"))
    else {
        return;
    };
    let built = quantize_support::float_mcunet(&int8);
    let (_, relus, clips, bns) = built.counts;
    assert!(
        relus >= 10 && clips >= 10 && bns >= 10,
        "{:?}",
        built.counts
    );
    let dir = std::env::temp_dir().join(format!("mite-quantize-mcunet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let float_path = dir.join("float.onnx");
    built.model.save(&float_path).unwrap();
    let float = load_model(float_path.to_str().unwrap()).unwrap().module;

    let data = Dataset::load(&val_dir, "val").unwrap();
    let norm = Normalization {
        mean: 127.5,
        std: 127.5,
    };
    let opts = CalibrateOptions {
        method: Method::MinMax,
        limit: Some(10),
        normalization: norm,
        resize: false,
        reduce_range: false,
    };
    let calibration = calibrate(&float, &data, &opts, |_, _| {}).unwrap();
    let mut quantized = float.clone();
    quantize_module(&mut quantized, calibration.clone(), false).unwrap();
    let run = |m: &mite::ir::Module, rounding: Rounding| {
        evaluate(m, "forward", &data, norm, Some(N), rounding, |_, _| {})
            .unwrap()
            .1
    };
    let float_logits = run(&float, Rounding::Double);
    let int8_logits = run(&quantized, Rounding::Double);
    let (f, q) = (top1(&float_logits, &data, N), top1(&int8_logits, &data, N));
    eprintln!("float {f} / {N}, int8 {q} / {N}");
    assert!(f >= 15, "the float model works: {f} / {N}");
    assert!(q + 2 >= f, "int8 {q} vs float {f} of {N}");

    let Some(python) = quantize_support::python_with_onnxruntime(test) else {
        return;
    };
    let images = val_dir.join("val_images.npy");
    // Float: mite and onnxruntime agree.
    let ort_float = quantize_support::onnxruntime_logits(&python, &float_path, &images, 5);
    let worst = ort_float
        .iter()
        .zip(&float_logits.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-3, "float logits differ by {worst}");
    // int8 with 7-bit weights (exact in onnxruntime on CPUs without VNNI): equal logits.
    let mut q7 = float.clone();
    quantize_module(&mut q7, calibration, true).unwrap();
    let q7_path = dir.join("quantized7.onnx");
    mite::onnx::write_qdq(&q7, "forward")
        .unwrap()
        .save(&q7_path)
        .unwrap();
    let reimported = load_model(q7_path.to_str().unwrap()).unwrap().module;
    let mite_q7 = evaluate(
        &reimported,
        "forward",
        &data,
        norm,
        Some(5),
        Rounding::OnnxRuntime,
        |_, _| {},
    )
    .unwrap()
    .1;
    let ort_q7 = quantize_support::onnxruntime_logits(&python, &q7_path, &images, 5);
    assert_eq!(
        mite_q7.values, ort_q7,
        "onnxruntime vs mite --rounding onnxruntime"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
