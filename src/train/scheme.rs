//! Which parameters a training run updates: the paper's schemes by layer.

use mite_ir::{GlobalKind, Module, Op};

/// A choice of trainable parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Every parameter.
    Full,
    /// Only the classifier (the op named `classifier`).
    Classifier,
    /// Weights and biases of the last K convolutions of the backbone, plus the classifier.
    LastK(usize),
    /// Only biases: of the last K backbone convolutions, plus the classifier's weight and bias.
    BiasOnly(usize),
}

impl Scheme {
    /// Parses `full`, `classifier`, `last:K` or `bias:K`.
    pub fn parse(text: &str) -> Result<Scheme, String> {
        let count = |k: &str| -> Result<usize, String> {
            k.parse()
                .map_err(|_| format!("--scheme: expected a number after `:` in `{text}`"))
        };
        match text.split_once(':') {
            None if text == "full" => Ok(Scheme::Full),
            None if text == "classifier" => Ok(Scheme::Classifier),
            Some(("last", k)) => Ok(Scheme::LastK(count(k)?)),
            Some(("bias", k)) => Ok(Scheme::BiasOnly(count(k)?)),
            _ => Err(format!(
                "--scheme: expected full, classifier, last:K or bias:K, found `{text}`"
            )),
        }
    }
}

/// The convolution / linear layers of `forward` in program order: `(loc name, weight, bias)`.
pub fn layers(module: &Module) -> Vec<(String, Option<String>, Option<String>)> {
    let Some(f) = module.function("forward") else {
        return Vec::new();
    };
    let param_of = |v| f.global_read(v).map(str::to_string);
    f.layout()
        .iter()
        .filter_map(|&id| {
            let data = f.op(id);
            match data.op {
                Op::Conv2d { .. } | Op::QConv2d { .. } | Op::Linear {} | Op::QLinear { .. } => {
                    Some((
                        data.loc.name.clone().unwrap_or_default(),
                        data.operands.get(1).and_then(|&w| param_of(w)),
                        data.operands.get(2).and_then(|&b| param_of(b)),
                    ))
                }
                _ => None,
            }
        })
        .collect()
}

/// Marks the parameters of `scheme` trainable and all others frozen; returns the trainable names.
pub fn apply(module: &mut Module, scheme: Scheme) -> Result<Vec<String>, String> {
    let layers = layers(module);
    let (head, backbone): (Vec<_>, Vec<_>) = layers
        .into_iter()
        .partition(|(name, _, _)| name == "classifier");
    if head.is_empty() && scheme != Scheme::Full {
        return Err("the model has no layer named `classifier`; use --scheme full".into());
    }
    let mut chosen: Vec<String> = Vec::new();
    let mut take = |w: &Option<String>, b: &Option<String>, weights: bool| {
        if weights {
            chosen.extend(w.iter().cloned());
        }
        chosen.extend(b.iter().cloned());
    };
    match scheme {
        Scheme::Full => {}
        Scheme::Classifier => head.iter().for_each(|(_, w, b)| take(w, b, true)),
        Scheme::LastK(k) | Scheme::BiasOnly(k) => {
            if k > backbone.len() {
                return Err(format!(
                    "--scheme: the model has only {} backbone layers, not {k}",
                    backbone.len()
                ));
            }
            let weights = matches!(scheme, Scheme::LastK(_));
            backbone[backbone.len() - k..]
                .iter()
                .for_each(|(_, w, b)| take(w, b, weights));
            head.iter().for_each(|(_, w, b)| take(w, b, true));
        }
    }
    let mut trainable = Vec::new();
    for (name, g) in module.globals.iter_mut() {
        if let GlobalKind::Param { .. } = g.kind {
            let on = scheme == Scheme::Full || chosen.contains(name);
            g.kind = GlobalKind::Param { trainable: on };
            if on {
                trainable.push(name.clone());
            }
        }
    }
    Ok(trainable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_schemes() {
        assert_eq!(Scheme::parse("last:6").unwrap(), Scheme::LastK(6));
        assert_eq!(Scheme::parse("classifier").unwrap(), Scheme::Classifier);
        assert!(Scheme::parse("last:x").unwrap_err().contains("number"));
        assert!(Scheme::parse("half").is_err());
    }

    #[test]
    fn last_k_on_the_tiny_model() {
        let mut m = mite_zoo::tiny_int8_cnn();
        let all = layers(&m);
        let trainable = apply(&mut m, Scheme::LastK(2)).unwrap();
        let n = all.len();
        let expect: Vec<String> = all[n - 3..]
            .iter()
            .flat_map(|(_, w, b)| w.iter().chain(b.iter()).cloned())
            .collect();
        let mut sorted = trainable.clone();
        sorted.sort();
        let mut want = expect;
        want.sort();
        assert_eq!(sorted, want);
        assert!(apply(&mut m, Scheme::LastK(99)).is_err());
    }
}
