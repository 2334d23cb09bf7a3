//! The layers a scheme talks about: the convolutions and fully connected layers of `forward`,
//! each with its role (backbone conv index, or the classifier).

use mite_ir::{Function, Module, Op, OpData};

/// What a layer is to a scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The `i`-th backbone convolution in forward order (the first conv is 0; the paper's
    /// numbering, `../shared/models/README.md`).
    Backbone(usize),
    /// The classifier: the last conv / linear layer in forward order, always trained by the
    /// sparse schemes.
    Classifier,
}

/// A conv / linear layer of the forward function.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The op's location name (the ONNX node name, e.g. `blocks.7.pointwise1`).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The parameter read as its weight, if any.
    pub weight: Option<String>,
    /// The parameter read as its bias, if any.
    pub bias: Option<String>,
    /// The weight's shape (`[C_out, C_in / groups, kh, kw]`, or `[out, in]` for linear).
    pub weight_shape: Vec<usize>,
    /// Convolution groups (1 for linear layers).
    pub groups: usize,
    /// The input's shape.
    pub input_shape: Vec<usize>,
    /// The output's shape.
    pub output_shape: Vec<usize>,
}

impl Layer {
    /// Whether it is a depthwise convolution (one input channel per group, more than one group).
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.weight_shape.get(1) == Some(&1)
    }

    /// The weight axis a partial-channel update slices: the input channels (axis 1) of a dense
    /// convolution, as the released compiler does; the channels (axis 0) of a depthwise one.
    pub fn slice_axis(&self) -> usize {
        if self.is_depthwise() {
            0
        } else {
            1
        }
    }

    /// The number of channels along [`Layer::slice_axis`].
    pub fn sliceable_channels(&self) -> usize {
        self.weight_shape
            .get(self.slice_axis())
            .copied()
            .unwrap_or(0)
    }
}

/// The parameter `v` reads, directly or through `q.dequantize`.
pub(crate) fn param_of(f: &Function, v: mite_ir::Value) -> Option<String> {
    if let Some(name) = f.global_read(v) {
        return Some(name.to_string());
    }
    let id = f.defining_op(v)?;
    let data = f.op(id);
    match data.op {
        Op::Dequantize {} => param_of(f, *data.operands.first()?),
        _ => None,
    }
}

fn is_layer(data: &OpData) -> Option<usize> {
    match &data.op {
        Op::Conv2d { groups, .. } | Op::QConv2d { groups, .. } => {
            Some(usize::try_from(*groups).unwrap_or(1))
        }
        Op::Linear {} | Op::QLinear { .. } => Some(1),
        _ => None,
    }
}

/// The conv / linear layers of function `forward` in forward order; the last one is the
/// classifier, the others are the backbone numbered from 0. Empty if there is no `forward`.
pub fn layers(module: &Module) -> Vec<Layer> {
    let Some(f) = module.function("forward") else {
        return Vec::new();
    };
    let mut out: Vec<Layer> = f
        .layout()
        .iter()
        .filter_map(|&id| {
            let data = f.op(id);
            let groups = is_layer(data)?;
            let weight = data.operands.get(1).and_then(|&w| param_of(f, w));
            let weight_shape = data
                .operands
                .get(1)
                .map(|&w| f.ty(w).shape.to_vec())
                .unwrap_or_default();
            Some(Layer {
                name: data.loc.name.clone().unwrap_or_default(),
                role: Role::Classifier,
                weight,
                bias: data.operands.get(2).and_then(|&b| param_of(f, b)),
                weight_shape,
                groups,
                input_shape: data
                    .operands
                    .first()
                    .map(|&x| f.ty(x).shape.to_vec())
                    .unwrap_or_default(),
                output_shape: f.ty(data.result()).shape.to_vec(),
            })
        })
        .collect();
    let n = out.len();
    for (i, layer) in out.iter_mut().enumerate().take(n.saturating_sub(1)) {
        layer.role = Role::Backbone(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcunet_has_42_backbone_convs_and_a_classifier() {
        let m = mite_zoo::mcunet_5fps();
        let l = layers(&m);
        assert_eq!(l.len(), 43);
        assert_eq!(l[0].name, "first_conv");
        assert_eq!(l[0].role, Role::Backbone(0));
        assert_eq!(l[42].role, Role::Classifier);
        assert_eq!(l[42].name, "classifier");
        // Block b ≥ 1 = {3b: pw1, 3b+1: dw, 3b+2: pw2}.
        assert_eq!(l[21].name, "blocks.7.pointwise1");
        assert!(l[22].is_depthwise());
        assert_eq!(l[22].slice_axis(), 0);
        assert_eq!(l[21].slice_axis(), 1);
        assert_eq!(l[21].weight.as_deref(), Some("blocks.7.pointwise1.weight"));
        assert_eq!(l[21].bias.as_deref(), Some("blocks.7.pointwise1.bias"));
    }
}
