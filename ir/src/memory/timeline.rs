//! Per-op live-memory timelines of a [`MemoryReport`], as text and as an SVG plot.
//!
//! A [`Timeline`] holds, for each step of the function, the arena bytes live at that step split
//! by [`BufferKind`] (scratch counted at its op). [`Timeline::to_text`] prints one line per
//! step; [`to_svg`] draws one or more timelines on a common plot: one timeline as stacked areas
//! by kind, several (full update vs sparse vs sparse + reorder, like the paper's Fig. 10) as
//! step lines over the fraction of the training step run, since their op counts differ.
//!
//! ```
//! use mite_ir::memory::timeline::{to_svg, Timeline};
//! use mite_ir::memory::BufferKind;
//! let t = Timeline::from_steps("demo", vec![
//!     ("q.conv2d (conv0)".into(), vec![(BufferKind::Input, 100), (BufferKind::Activation, 50)]),
//!     ("grad.conv2d_weight (conv0.grad)".into(), vec![(BufferKind::Gradient, 80)]),
//! ]);
//! assert_eq!(t.peak(), (0, 150));
//! assert!(t.to_text().contains("q.conv2d (conv0)"));
//! assert!(to_svg(&[t], "demo").starts_with("<svg"));
//! ```

use super::report::{BufferKind, MemoryReport};
use std::fmt::Write;

/// The bytes live at one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineStep {
    /// The step (op position in the function).
    pub step: usize,
    /// The op run at this step.
    pub what: String,
    /// Bytes live by kind (in [`BufferKind::ALL`] order; kinds with none left out).
    pub by_kind: Vec<(BufferKind, u64)>,
}

impl TimelineStep {
    /// All bytes live at this step.
    pub fn total(&self) -> u64 {
        self.by_kind.iter().map(|&(_, b)| b).sum()
    }
}

/// The live memory of a function at every step (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// A name for the legend (`sparse + reorder`).
    pub label: String,
    /// One entry per step.
    pub steps: Vec<TimelineStep>,
}

fn kb(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

impl Timeline {
    /// The timeline of a memory report's arena, leaving out the steps of `param` and `const`
    /// reads (they own no buffer: never more is live than at the next op).
    pub fn from_report(label: impl Into<String>, report: &MemoryReport) -> Timeline {
        let is_global_read = |what: &str| {
            let op = what.split(' ').next().unwrap_or("");
            op == "param" || op == "const"
        };
        let steps = report
            .steps
            .iter()
            .enumerate()
            .filter(|(_, what)| !is_global_read(what))
            .map(|(step, what)| {
                let by_kind = BufferKind::ALL
                    .iter()
                    .map(|&k| {
                        let bytes = report
                            .buffers
                            .iter()
                            .filter(|b| b.kind == k && b.live.0 <= step && step <= b.live.1)
                            .map(|b| b.size)
                            .sum::<u64>();
                        (k, bytes)
                    })
                    .filter(|&(_, b)| b > 0)
                    .collect();
                TimelineStep {
                    step,
                    what: what.clone(),
                    by_kind,
                }
            })
            .collect();
        Timeline {
            label: label.into(),
            steps,
        }
    }

    /// A timeline from `(op, bytes by kind)` per step (steps numbered from 0).
    pub fn from_steps(
        label: impl Into<String>,
        steps: Vec<(String, Vec<(BufferKind, u64)>)>,
    ) -> Timeline {
        Timeline {
            label: label.into(),
            steps: steps
                .into_iter()
                .enumerate()
                .map(|(step, (what, by_kind))| TimelineStep {
                    step,
                    what,
                    by_kind,
                })
                .collect(),
        }
    }

    /// The first step with the most bytes live, and those bytes (`(0, 0)` when empty).
    pub fn peak(&self) -> (usize, u64) {
        let mut best = (0, 0);
        for s in &self.steps {
            if s.total() > best.1 {
                best = (s.step, s.total());
            }
        }
        best
    }

    /// One line per step: step, KB live, a bar scaled to the peak, the op, and the bytes by
    /// kind.
    pub fn to_text(&self) -> String {
        let (peak_step, peak) = self.peak();
        let mut out = format!(
            "timeline of {}: {} steps shown, peak {:.1} KB at step {peak_step}\n",
            self.label,
            self.steps.len(),
            kb(peak)
        );
        const WIDTH: u64 = 32;
        for s in &self.steps {
            let i = s.step;
            let total = s.total();
            let bar = (total * WIDTH).checked_div(peak).unwrap_or(0) as usize;
            let kinds: Vec<String> = s
                .by_kind
                .iter()
                .map(|&(k, b)| format!("{} {:.1}", k.name(), kb(b)))
                .collect();
            let _ = writeln!(
                out,
                "{i:>5} {:>8.1} KB {:<32} {}  [{}]",
                kb(total),
                "#".repeat(bar),
                s.what,
                kinds.join(", ")
            );
        }
        out
    }
}

/// Fill colours of the kinds, in [`BufferKind::ALL`] order.
const KIND_COLOURS: [&str; 7] = [
    "#9e9e9e", "#90caf9", "#1565c0", "#ffb74d", "#e53935", "#8e24aa", "#43a047",
];
/// Line colours of several timelines.
const LINE_COLOURS: [&str; 6] = [
    "#e53935", "#1e88e5", "#43a047", "#8e24aa", "#fb8c00", "#546e7a",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG plot of `timelines` (see the module documentation).
pub fn to_svg(timelines: &[Timeline], title: &str) -> String {
    let (w, h) = (900.0_f64, 420.0_f64);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let max_kb = timelines
        .iter()
        .map(|t| kb(t.peak().1))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    // A round tick step: 1, 2 or 5 times a power of ten, about 5 ticks.
    let raw = max_kb / 5.0;
    let pow = 10f64.powf(raw.log10().floor());
    let tick = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|&t| t >= raw)
        .unwrap_or(10.0 * pow);
    let y_max = (max_kb / tick).ceil() * tick;
    let y = |v: f64| top + ph - v / y_max * ph;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(svg, "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
        w / 2.0,
        escape(title)
    );
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e0e0e0\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            left + pw,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0
        );
        v += tick;
    }
    let _ = writeln!(
        svg,
        "<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">\
         live arena (KB)</text>",
        top + ph / 2.0,
        top + ph / 2.0
    );
    let single = timelines.len() == 1;
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        left + pw / 2.0,
        h - 30.0,
        if single {
            "step (op of the training step)"
        } else {
            "fraction of the training step run"
        }
    );
    if let [t] = timelines {
        // Stacked areas by kind, bottom to top in kind order.
        let n = t.steps.len().max(1) as f64;
        let x = |i: f64| left + i / n * pw;
        let mut base = vec![0u64; t.steps.len()];
        for (k, kind) in BufferKind::ALL.iter().enumerate() {
            let bytes: Vec<u64> = t
                .steps
                .iter()
                .map(|s| {
                    s.by_kind
                        .iter()
                        .find(|(kk, _)| kk == kind)
                        .map_or(0, |&(_, b)| b)
                })
                .collect();
            if bytes.iter().all(|&b| b == 0) {
                continue;
            }
            let mut points: Vec<String> = Vec::new();
            for (i, (&b, &lo)) in bytes.iter().zip(&base).enumerate() {
                let top_kb = kb(lo + b);
                points.push(format!("{:.1},{:.1}", x(i as f64), y(top_kb)));
                points.push(format!("{:.1},{:.1}", x(i as f64 + 1.0), y(top_kb)));
            }
            for (i, &lo) in base.iter().enumerate().rev() {
                points.push(format!("{:.1},{:.1}", x(i as f64 + 1.0), y(kb(lo))));
                points.push(format!("{:.1},{:.1}", x(i as f64), y(kb(lo))));
            }
            let _ = writeln!(
                svg,
                "<polygon points=\"{}\" fill=\"{}\" stroke=\"none\"><title>{}</title></polygon>",
                points.join(" "),
                KIND_COLOURS[k],
                kind.name()
            );
            for (lo, b) in base.iter_mut().zip(&bytes) {
                *lo += b;
            }
            let ly = top + 8.0 + 16.0 * k as f64;
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                left + pw - 150.0,
                ly,
                KIND_COLOURS[k],
                left + pw - 135.0,
                ly + 9.0,
                kind.name()
            );
        }
    }
    for (k, t) in timelines.iter().enumerate() {
        let n = t.steps.len().max(1) as f64;
        let x = |i: f64| left + i / n * pw;
        let mut points: Vec<String> = Vec::new();
        for (i, s) in t.steps.iter().enumerate() {
            let v = y(kb(s.total()));
            points.push(format!("{:.1},{v:.1}", x(i as f64)));
            points.push(format!("{:.1},{v:.1}", x(i as f64 + 1.0)));
        }
        let colour = if single {
            "#212121"
        } else {
            LINE_COLOURS[k % LINE_COLOURS.len()]
        };
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>",
            points.join(" ")
        );
        let (step, peak) = t.peak();
        let ly = h - 12.0 - 16.0 * (timelines.len() - 1 - k) as f64;
        let what = t.steps.iter().find(|s| s.step == step);
        let label = format!(
            "{}: peak {:.1} KB at step {step} ({})",
            t.label,
            kb(peak),
            what.map_or("", |s| s.what.as_str())
        );
        if single {
            let _ = writeln!(
                svg,
                "<text x=\"{left}\" y=\"{:.1}\">{}</text>",
                h - 12.0,
                escape(&label)
            );
        } else {
            let _ = writeln!(
                svg,
                "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" \
                 stroke-width=\"3\"/><text x=\"{}\" y=\"{:.1}\">{}</text>",
                left + pw * 0.45,
                left + pw * 0.45 + 18.0,
                ly - 4.0,
                ly - 4.0,
                left + pw * 0.45 + 24.0,
                ly,
                escape(&label)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo(label: &str, totals: &[u64]) -> Timeline {
        Timeline::from_steps(
            label,
            totals
                .iter()
                .enumerate()
                .map(|(i, &b)| (format!("op{i}"), vec![(BufferKind::Activation, b)]))
                .collect(),
        )
    }

    #[test]
    fn text_lines_and_peak() {
        let t = Timeline::from_steps(
            "t",
            vec![
                ("a".into(), vec![(BufferKind::Input, 1024)]),
                (
                    "b".into(),
                    vec![(BufferKind::Input, 1024), (BufferKind::Gradient, 3072)],
                ),
                ("c".into(), vec![(BufferKind::Gradient, 2048)]),
            ],
        );
        assert_eq!(t.peak(), (1, 4096));
        let text = t.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            "timeline of t: 3 steps shown, peak 4.0 KB at step 1"
        );
        assert!(lines[2].contains(&"#".repeat(32)), "{}", lines[2]);
        assert!(
            lines[1].contains(&format!("{} ", "#".repeat(8))),
            "{}",
            lines[1]
        );
        assert!(!lines[1].contains(&"#".repeat(9)), "{}", lines[1]);
        assert!(
            lines[2].ends_with("[input 1.0, gradient 3.0]"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn svg_has_one_line_per_timeline_and_escapes_labels() {
        let svg = to_svg(
            &[
                demo("full <update>", &[2048, 4096]),
                demo("sparse", &[1024]),
            ],
            "a & b",
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &amp; b"));
        assert!(svg.contains("full &lt;update&gt;: peak 4.0 KB at step 1 (op1)"));
        assert!(
            !svg.contains("<polygon"),
            "several timelines are drawn as lines only"
        );
        let one = to_svg(&[demo("one", &[0, 5000])], "one");
        assert_eq!(
            one.matches("<polygon").count(),
            1,
            "one kind: one stacked area"
        );
        assert!(one.trim_end().ends_with("</svg>"));
    }
}
