//! Learning-rate schedules.

use std::f64::consts::PI;

/// How the learning rate changes over the steps of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate at every step.
    Constant,
    /// Linear warm-up from 0 over `warmup` steps, then cosine decay to 0 at the last step.
    Cosine {
        /// Warm-up steps.
        warmup: usize,
    },
}

impl Schedule {
    /// Parses `constant` or `cosine[:WARMUP]`.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        match text.split_once(':') {
            None if text == "constant" => Ok(Schedule::Constant),
            None if text == "cosine" => Ok(Schedule::Cosine { warmup: 0 }),
            Some(("cosine", w)) => w
                .parse()
                .map(|warmup| Schedule::Cosine { warmup })
                .map_err(|_| format!("--lr-schedule: bad warm-up `{w}`")),
            _ => Err(format!(
                "--lr-schedule: expected constant or cosine[:WARMUP], found `{text}`"
            )),
        }
    }

    /// The learning rate at `step` (0-based) of `total`, for base rate `base`.
    pub fn rate(self, base: f32, step: usize, total: usize) -> f32 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine { warmup } => {
                if step < warmup {
                    return base * (step + 1) as f32 / warmup as f32;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let t = (step - warmup) as f64 / span;
                (f64::from(base) * 0.5 * (1.0 + (PI * t).cos())) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_with_warmup() {
        let s = Schedule::parse("cosine:2").unwrap();
        assert_eq!(s.rate(1.0, 0, 10), 0.5);
        assert_eq!(s.rate(1.0, 1, 10), 1.0);
        assert_eq!(s.rate(1.0, 2, 10), 1.0);
        assert!((s.rate(1.0, 6, 10) - 0.5).abs() < 1e-6);
        assert_eq!(Schedule::parse("constant").unwrap().rate(0.1, 99, 100), 0.1);
        assert!(Schedule::parse("linear").is_err());
    }
}
