//! Live arena bytes of a Program's entries, call by call.
//!
//! An arena buffer (the entry's input image too, when it lives in the arena) is live from the
//! call that first touches it to the call that last touches it (the verifier's interval); an
//! arena buffer passed as an entry argument is live from the entry's start, an entry result to
//! its end. From these intervals come the arena's lower bound
//! (the most bytes live at one call: no plan can use less) and a per-call timeline naming the
//! buffers at the peak — what a user reads to see where the memory goes.

use super::{BufferId, Program};

/// The live interval `[first, last]` (call indices) of each arena buffer of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaLiveness {
    /// The entry's name.
    pub entry: String,
    /// Calls in the entry.
    pub calls: usize,
    /// `(buffer, first call, last call)` for every arena buffer the entry touches.
    pub intervals: Vec<(BufferId, usize, usize)>,
}

impl ArenaLiveness {
    /// The intervals of entry `entry` of `program` (buffers that do not exist are skipped:
    /// the verifier reports them).
    pub fn of(program: &Program, entry: usize) -> ArenaLiveness {
        let e = &program.entries[entry];
        let n = program.buffers.len();
        let in_arena =
            |b: BufferId| b.index() < n && program.buffer(b).storage.arena_offset().is_some();
        let mut span: Vec<Option<(usize, usize)>> = vec![None; n];
        let mut touch = |b: BufferId, c: usize| {
            if in_arena(b) {
                let s = span[b.index()].get_or_insert((c, c));
                s.0 = s.0.min(c);
                s.1 = s.1.max(c);
            }
        };
        for &b in &e.args {
            touch(b, 0);
        }
        for (c, call) in e.calls.iter().enumerate() {
            for &b in call.inputs.iter().chain(&call.outputs).chain(&call.scratch) {
                // A consuming kernel's result is inside its operand's bytes during the call.
                if !call.hands_over(b) {
                    touch(b, c);
                } else if c + 1 < e.calls.len() {
                    touch(b, c + 1);
                }
            }
        }
        let end = e.calls.len().saturating_sub(1);
        for &b in &e.results {
            touch(b, end);
        }
        ArenaLiveness {
            entry: e.name.clone(),
            calls: e.calls.len(),
            intervals: span
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|(f, l)| (BufferId(i as u32), f, l)))
                .collect(),
        }
    }

    /// Bytes live at each call.
    pub fn bytes_per_call(&self, program: &Program) -> Vec<u64> {
        let mut delta = vec![0i128; self.calls + 1];
        for &(b, f, l) in &self.intervals {
            let bytes = i128::from(program.buffer(b).bytes());
            delta[f] += bytes;
            delta[l + 1] -= bytes;
        }
        let mut live = 0i128;
        delta[..self.calls]
            .iter()
            .map(|d| {
                live += d;
                u64::try_from(live).unwrap_or(0)
            })
            .collect()
    }

    /// The call with the most live bytes and those bytes (`None` for an entry without calls).
    pub fn peak(&self, program: &Program) -> Option<(usize, u64)> {
        self.bytes_per_call(program)
            .into_iter()
            .enumerate()
            .max_by_key(|&(c, b)| (b, std::cmp::Reverse(c)))
    }

    /// The buffers live at call `call`, largest first.
    pub fn live_at(&self, program: &Program, call: usize) -> Vec<BufferId> {
        let mut v: Vec<BufferId> = self
            .intervals
            .iter()
            .filter(|&&(_, f, l)| f <= call && call <= l)
            .map(|&(b, _, _)| b)
            .collect();
        v.sort_by_key(|&b| (std::cmp::Reverse(program.buffer(b).bytes()), b));
        v
    }
}

impl Program {
    /// The arena's lower bound: the most arena bytes live at one call of any entry (alignment
    /// padding aside, no placement can use less).
    pub fn arena_lower_bound(&self) -> u64 {
        (0..self.entries.len())
            .filter_map(|e| ArenaLiveness::of(self, e).peak(self).map(|(_, b)| b))
            .max()
            .unwrap_or(0)
    }

    /// Where the arena's live bytes peak over all entries: `(entry index, call, bytes)` (the
    /// first such call of the first such entry; `None` without calls).
    pub fn arena_peak(&self) -> Option<(usize, usize, u64)> {
        (0..self.entries.len())
            .filter_map(|e| {
                ArenaLiveness::of(self, e)
                    .peak(self)
                    .map(|(call, bytes)| (e, call, bytes))
            })
            .max_by_key(|&(e, _, bytes)| (bytes, std::cmp::Reverse(e)))
    }

    /// The call at the arena's peak as text: `@entry call N: kernel (loc)`.
    pub fn arena_peak_text(&self) -> Option<String> {
        let (e, call, _) = self.arena_peak()?;
        let c = &self.entries[e].calls[call];
        Some(format!(
            "@{} call {call}: {}{}",
            self.entries[e].name,
            c.kernel.name(),
            c.loc
                .as_deref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        ))
    }

    /// A text report of where the arena peaks: per entry, the peak call, its live bytes and
    /// the `top` largest buffers live there.
    pub fn arena_peak_report(&self, top: usize) -> String {
        let mut out = String::new();
        for e in 0..self.entries.len() {
            let live = ArenaLiveness::of(self, e);
            let Some((call, bytes)) = live.peak(self) else {
                continue;
            };
            let at = self.entries[e].calls[call]
                .loc
                .as_deref()
                .unwrap_or("(unnamed)");
            out.push_str(&format!(
                "@{}: arena peak {:.1} KB at call {call} ({} {at})\n",
                live.entry,
                bytes as f64 / 1024.0,
                self.entries[e].calls[call].kernel.name(),
            ));
            for b in live.live_at(self, call).into_iter().take(top) {
                let d = self.buffer(b);
                out.push_str(&format!(
                    "    {:>9.1} KB  {b} {} {}\n",
                    d.bytes() as f64 / 1024.0,
                    d.elem.name(),
                    d.name
                ));
            }
        }
        out
    }
}
