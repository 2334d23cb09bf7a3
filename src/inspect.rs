//! `mite inspect`: what a model contains and costs.

use mite_ir::cost::function_cost;
use mite_ir::{GlobalKind, Module};
use serde::Serialize;
use std::collections::BTreeMap;

/// The figures `mite inspect` prints.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The model's name.
    pub model: String,
    /// The function inspected.
    pub function: String,
    /// Argument types, as text.
    pub inputs: Vec<String>,
    /// Output types, as text.
    pub outputs: Vec<String>,
    /// Number of ops.
    pub num_ops: usize,
    /// Ops by name.
    pub ops: BTreeMap<String, usize>,
    /// Parameter tensors (all / trainable).
    pub param_tensors: usize,
    /// Trainable parameter tensors.
    pub trainable_param_tensors: usize,
    /// Parameter elements read by the function.
    pub param_elements: u64,
    /// Parameter storage in bytes.
    pub param_bytes: u64,
    /// Multiply-accumulates of one forward pass.
    pub macs: u64,
    /// Multiply-accumulates excluding the op named `classifier` (the paper's convention).
    pub macs_backbone: u64,
    /// Parameter elements excluding the `classifier` op's (the paper's convention).
    pub param_elements_backbone: u64,
    /// Inference peak memory estimate: the most activation bytes live at once.
    pub inference_peak_bytes: u64,
    /// The op at which the peak occurs, as `#index name`.
    pub peak_at: Option<String>,
}

/// Inspects function `func` of `module`.
pub fn inspect(model: &str, module: &Module, func: &str) -> Result<Inspection, String> {
    let f = module
        .function(func)
        .ok_or_else(|| format!("error: {model} has no function @{func}"))?;
    let cost = function_cost(f);
    let mut ops = BTreeMap::new();
    for &id in f.layout() {
        *ops.entry(f.op(id).op.name().to_string()).or_insert(0) += 1;
    }
    let params = module
        .globals
        .values()
        .filter(|g| matches!(g.kind, GlobalKind::Param { .. }));
    let is_classifier = |c: &mite_ir::cost::OpCost| c.loc.as_deref() == Some("classifier");
    Ok(Inspection {
        model: model.to_string(),
        function: func.to_string(),
        inputs: f.args().iter().map(|&a| f.ty(a).to_string()).collect(),
        outputs: f.outputs().iter().map(|&o| f.ty(o).to_string()).collect(),
        num_ops: f.num_ops(),
        ops,
        param_tensors: params.clone().count(),
        trainable_param_tensors: params.filter(|g| g.kind.is_trainable()).count(),
        param_elements: cost.total_params,
        param_bytes: cost.param_bytes,
        macs: cost.total_macs,
        macs_backbone: cost.macs_where(|c| !is_classifier(c)),
        param_elements_backbone: cost.params_where(|c| !is_classifier(c)),
        inference_peak_bytes: cost.peak_activation_bytes,
        peak_at: cost.peak_op.map(|i| format!("#{i} {}", cost.ops[i].op)),
    })
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "model:      {} (@{})", self.model, self.function)?;
        writeln!(f, "inputs:     {}", self.inputs.join(", "))?;
        writeln!(f, "outputs:    {}", self.outputs.join(", "))?;
        writeln!(f, "ops:        {}", self.num_ops)?;
        for (name, n) in &self.ops {
            writeln!(f, "  {name:26} {n}")?;
        }
        writeln!(
            f,
            "parameters: {} tensors ({} trainable), {} elements, {} bytes",
            self.param_tensors, self.trainable_param_tensors, self.param_elements, self.param_bytes
        )?;
        writeln!(
            f,
            "            {} elements without the classifier",
            self.param_elements_backbone
        )?;
        writeln!(
            f,
            "MACs:       {} ({} without the classifier)",
            self.macs, self.macs_backbone
        )?;
        write!(
            f,
            "inference peak memory estimate: {} bytes",
            self.inference_peak_bytes
        )?;
        if let Some(at) = &self.peak_at {
            write!(f, " (at op {at})")?;
        }
        writeln!(f)
    }
}
