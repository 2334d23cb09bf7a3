//! Writes the float MCUNet-5FPS used by the quantization tests (float convs from the dequantized
//! int8 weights, explicit `Relu` / `Clip`, some `BatchNormalization` unfolded) to a file:
//!
//! ```sh
//! cargo run --release --example float_mcunet -- ../shared/models/mcunet-5fps.onnx float.onnx
//! ```

#[path = "../tests/quantize_support/mod.rs"]
mod quantize_support;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = &args[..] else {
        eprintln!("usage: float_mcunet INT8_MODEL.onnx OUT.onnx");
        std::process::exit(2);
    };
    let built = quantize_support::float_mcunet(std::path::Path::new(input));
    let (dropped, relus, clips, bns) = built.counts;
    built.model.save(output).expect("writing the float model");
    println!(
        "{output}: {relus} Relu, {clips} Clip, {bns} BatchNormalization unfolded, {dropped} \
         linear-layer clamps dropped"
    );
}
