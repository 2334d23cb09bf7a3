//! The paper's analytic extra memory of a scheme (`../shared/paper/NOTES.md` §3), in bits:
//! what training needs beyond inference.
//!
//! Per backbone conv whose bias trains: a 1-bit mask per output element and 32 bits per bias;
//! if its weight trains (on `kept` of its sliced channels): the saved input activation
//! (`H_in · W_in · kept_in · 8`, where `kept_in` is the input channels the weight gradient reads)
//! and the SRAM copy of the trained weight (`C_out · kept · k · k · 8`, depthwise
//! `kept · k · k · 8`); plus the classifier's input (8 bits per element).
//!
//! This is the budget measure of scheme search until the planned peak SRAM replaces it.

use super::layers::{Layer, Role};
use super::TrainedTensor;
use mite_ir::Trainable;

/// The analytic extra memory in bits of training `trained` (from [`super::Scheme::resolve`])
/// in a model with `layers`.
pub fn analytic_extra_bits(layers: &[Layer], trained: &[TrainedTensor]) -> u64 {
    let find = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| trained.iter().find(|t| &t.name == n))
            .map(|t| t.trainable)
    };
    let mut bits: u64 = 0;
    for layer in layers {
        if layer.role == Role::Classifier {
            bits += 8 * layer.input_shape.iter().product::<usize>() as u64;
            continue;
        }
        let bias = find(&layer.bias).is_some();
        let weight = find(&layer.weight);
        if bias {
            let out: usize = layer.output_shape.iter().product();
            let c_out = layer.output_shape.get(1).copied().unwrap_or(0);
            bits += out as u64 + 32 * c_out as u64;
        }
        if let Some(t) = weight {
            bits += weight_bits(layer, t);
        }
    }
    bits
}

/// Saved input and SRAM weight copy of a layer whose weight trains as `t`.
fn weight_bits(layer: &Layer, t: Trainable) -> u64 {
    let channels = layer.sliceable_channels();
    let kept = match t {
        Trainable::None => return 0,
        Trainable::All => channels,
        Trainable::Channels { len, .. } => len,
    };
    let kernel: usize = layer.weight_shape.iter().skip(2).product();
    let (h, w) = match layer.input_shape.as_slice() {
        [_, _, h, w] => (*h, *w),
        _ => (1, 1),
    };
    let c_out = layer.weight_shape.first().copied().unwrap_or(0);
    let copy = if layer.is_depthwise() {
        kept * kernel
    } else {
        c_out * kept * kernel
    };
    8 * (h * w * kept + copy) as u64
}
