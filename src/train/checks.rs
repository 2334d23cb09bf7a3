//! Checks of a training request made before anything runs: the number of steps, gradient
//! accumulation against it, and a model whose output is already a probability distribution.

use mite_ir::{Module, Op};

/// The number of optimizer steps: `steps`, or `epochs` passes over `images` images, or one
/// pass; refused when it overflows or exceeds `max`.
pub fn steps(
    steps: Option<usize>,
    epochs: Option<usize>,
    images: usize,
    max: usize,
) -> Result<usize, String> {
    let n = match (steps, epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => e.checked_mul(images).filter(|&n| n <= max).ok_or_else(|| {
            format!("error: --epochs {e} over {images} images exceeds the limit of {max} steps")
        })?,
        (None, None) => images,
    };
    if n == 0 {
        return Err("error: the run would take no step (no training images)".into());
    }
    if n > max {
        return Err(format!("error: {n} steps exceed the limit of {max} steps"));
    }
    Ok(n)
}

/// Refuses gradient accumulation over more steps than the run takes (nothing would ever be
/// applied).
pub fn accumulate(accumulate: i64, steps: usize) -> Result<(), String> {
    if usize::try_from(accumulate).is_ok_and(|a| a > steps) {
        return Err(format!(
            "error: --accumulate {accumulate} is larger than the {steps} steps of the run; no \
             update would ever be applied"
        ));
    }
    Ok(())
}

/// Refuses a model whose `forward` ends in `nn.softmax` or `nn.log_softmax`: training applies a
/// softmax cross-entropy to the output, which must be the logits.
pub fn logits_output(module: &Module, forward: &str) -> Result<(), String> {
    let Some(f) = module.function(forward) else {
        return Ok(());
    };
    let Some(&out) = f.outputs().first() else {
        return Ok(());
    };
    let Some(id) = f.defining_op(out) else {
        return Ok(());
    };
    let data = f.op(id);
    if matches!(data.op, Op::Softmax { .. } | Op::LogSoftmax { .. }) {
        let name = data
            .loc
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        return Err(format!(
            "error: @{forward} ends in `{}`{name}; training applies softmax cross-entropy to the \
             output, which must be the logits: remove the final softmax from the model (evaluation \
             is unaffected by it)",
            data.op.name()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mite_ir::{Builder, TensorType};

    #[test]
    fn step_counts() {
        assert_eq!(steps(Some(5), None, 100, 1000), Ok(5));
        assert_eq!(steps(None, Some(3), 100, 1000), Ok(300));
        assert_eq!(steps(None, None, 100, 1000), Ok(100));
        let e = steps(None, Some(usize::MAX / 2 + 1), 2, 1000).unwrap_err();
        assert!(e.contains("exceeds the limit of 1000 steps"), "{e}");
        assert!(steps(None, None, 0, 1000).is_err());
        assert!(steps(Some(1001), None, 1, 1000).is_err());
    }

    #[test]
    fn accumulation_beyond_the_run_is_refused() {
        assert!(accumulate(4, 4).is_ok());
        let e = accumulate(5, 4).unwrap_err();
        assert!(e.contains("no update would ever be applied"), "{e}");
    }

    #[test]
    fn a_trailing_softmax_is_refused() {
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("x", TensorType::f32(&[1, 10]));
        let y = b.op(Op::Softmax { axis: -1 }, &[x]).unwrap();
        b.ret(&[y]);
        let e = logits_output(&m, "forward").unwrap_err();
        assert!(e.contains("ends in `nn.softmax`"), "{e}");
        let mut m = Module::new("m");
        let mut b = Builder::new(&mut m, "forward");
        let x = b.arg("x", TensorType::f32(&[1, 10]));
        let y = b.op(Op::Relu {}, &[x]).unwrap();
        b.ret(&[y]);
        assert!(logits_output(&m, "forward").is_ok());
    }
}
