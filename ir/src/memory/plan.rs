//! The arena planner: buffer lifetimes in, offsets out, as a pure function.
//!
//! [`plan_greedy`] places buffers largest first (ties: earlier first step, then lower index);
//! each goes into the smallest gap, between the buffers already placed that are live at a common
//! step, that holds it at its alignment (best fit), or above all of them. [`check_plan`] verifies
//! any plan independently: every offset aligned, every buffer inside the arena, no two buffers
//! live at a common step sharing a byte. [`lower_bound`] is the most bytes live at one step; no
//! plan is smaller, and [`Plan::ratio`] says how far a plan is from it.
//!
//! ```
//! use mite_ir::memory::plan::{check_plan, plan_greedy, Request};
//! let reqs = [
//!     Request { size: 100, align: 4, first: 0, last: 1 },
//!     Request { size: 60, align: 4, first: 1, last: 2 },
//!     Request { size: 40, align: 4, first: 2, last: 3 },
//! ];
//! let plan = plan_greedy(&reqs);
//! check_plan(&reqs, &plan).unwrap();
//! assert_eq!((plan.arena_size, plan.lower_bound), (160, 160));
//! assert_eq!(plan.offsets, [0, 100, 0]);
//! ```

use crate::analysis::BufferLifetime;
use thiserror::Error;

/// One buffer to place: its size and alignment in bytes and its inclusive live steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// Size in bytes (0: nothing to place; it gets offset 0).
    pub size: u64,
    /// Alignment of its offset in bytes (0 is taken as 1).
    pub align: u64,
    /// First live step (inclusive).
    pub first: usize,
    /// Last live step (inclusive).
    pub last: usize,
}

impl Request {
    pub(crate) fn align(&self) -> u64 {
        self.align.max(1)
    }

    pub(crate) fn live_together(&self, other: &Request) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl From<&BufferLifetime> for Request {
    fn from(b: &BufferLifetime) -> Request {
        Request {
            size: b.size,
            align: b.align,
            first: b.first,
            last: b.last,
        }
    }
}

/// Offsets for a list of [`Request`]s in one arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The offset of each request, in request order.
    pub offsets: Vec<u64>,
    /// Bytes of the arena: the end of the highest buffer.
    pub arena_size: u64,
    /// The most bytes live at one step ([`lower_bound`] of the requests).
    pub lower_bound: u64,
}

impl Plan {
    /// `arena_size / lower_bound` (1.0 when both are 0).
    pub fn ratio(&self) -> f64 {
        if self.lower_bound == 0 {
            1.0
        } else {
            self.arena_size as f64 / self.lower_bound as f64
        }
    }
}

/// Why a plan is not valid for its requests.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PlanError {
    /// The plan has a different number of offsets than there are requests.
    #[error("the plan has {found} offsets for {expected} buffers")]
    WrongLength {
        /// Requests.
        expected: usize,
        /// Offsets.
        found: usize,
    },
    /// An offset is not a multiple of its buffer's alignment.
    #[error("buffer {buffer} at offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        /// The buffer.
        buffer: usize,
        /// Its offset.
        offset: u64,
        /// Its alignment.
        align: u64,
    },
    /// A buffer ends beyond the arena.
    #[error("buffer {buffer} ends at byte {end}, beyond the arena of {arena} bytes")]
    OutOfArena {
        /// The buffer.
        buffer: usize,
        /// Its end (offset + size).
        end: u64,
        /// The arena size.
        arena: u64,
    },
    /// Two buffers live at a common step share bytes.
    #[error("buffers {a} and {b} are live at the same time and overlap in the arena")]
    Overlap {
        /// The first buffer.
        a: usize,
        /// The second buffer.
        b: usize,
    },
}

/// The most bytes live at one step (0 without requests).
pub fn lower_bound(requests: &[Request]) -> u64 {
    let Some(steps) = requests.iter().map(|r| r.last.max(r.first) + 1).max() else {
        return 0;
    };
    let mut delta = vec![0i128; steps + 1];
    for r in requests {
        delta[r.first] += i128::from(r.size);
        delta[r.last.max(r.first) + 1] -= i128::from(r.size);
    }
    let mut live = 0i128;
    let mut peak = 0i128;
    for d in &delta {
        live += d;
        peak = peak.max(live);
    }
    u64::try_from(peak).unwrap_or(u64::MAX)
}

pub(crate) fn align_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align).saturating_mul(align)
}

/// Places `requests` greedily, largest first, each in the best-fitting gap (see the module
/// documentation).
pub fn plan_greedy(requests: &[Request]) -> Plan {
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(requests[i].size), requests[i].first, i));
    plan_in_order(requests, &order)
}

/// Places the requests one by one in `order` (indices into `requests`; requests it leaves out
/// get offset 0 and should have size 0), each in the smallest gap, between the buffers already
/// placed that are live at a common step, that holds it at its alignment, or above all of them.
pub fn plan_in_order(requests: &[Request], order: &[usize]) -> Plan {
    let mut offsets = vec![0u64; requests.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_size = 0u64;
    for &i in order {
        let req = &requests[i];
        if req.size == 0 {
            continue;
        }
        let blockers = placed
            .iter()
            .filter(|&&j| requests[j].live_together(req))
            .map(|&j| (offsets[j], offsets[j] + requests[j].size));
        let offset = best_fit(blockers, req.size, req.align());
        offsets[i] = offset;
        arena_size = arena_size.max(offset + req.size);
        placed.push(i);
    }
    Plan {
        offsets,
        arena_size,
        lower_bound: lower_bound(requests),
    }
}

/// The offset of the smallest gap between `blockers` (byte ranges `[start, end)`) that holds
/// `size` bytes at `align`, or the first aligned offset above all of them.
pub(crate) fn best_fit(blockers: impl Iterator<Item = (u64, u64)>, size: u64, align: u64) -> u64 {
    let mut blockers: Vec<(u64, u64)> = blockers.collect();
    blockers.sort_unstable();
    let mut best: Option<(u64, u64)> = None; // (gap size, offset)
    let mut cursor = 0u64;
    for &(start, end) in &blockers {
        let at = align_up(cursor, align);
        if at.saturating_add(size) <= start {
            let gap = start - cursor;
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, at));
            }
        }
        cursor = cursor.max(end);
    }
    best.map_or_else(|| align_up(cursor, align), |(_, at)| at)
}

/// The lowest offset at or above `floor` that holds `size` bytes at `align` between `blockers`
/// (byte ranges `[start, end)`, sorted by start).
pub(crate) fn first_fit(blockers: &[(u64, u64)], size: u64, align: u64, floor: u64) -> u64 {
    let mut at = align_up(floor, align);
    for &(start, end) in blockers {
        if at.saturating_add(size) <= start {
            break;
        }
        if end > at {
            at = align_up(end, align);
        }
    }
    at
}

/// Checks `plan` against `requests` (see [`PlanError`] for what is checked).
pub fn check_plan(requests: &[Request], plan: &Plan) -> Result<(), PlanError> {
    if plan.offsets.len() != requests.len() {
        return Err(PlanError::WrongLength {
            expected: requests.len(),
            found: plan.offsets.len(),
        });
    }
    for (i, (r, &offset)) in requests.iter().zip(&plan.offsets).enumerate() {
        if r.size == 0 {
            continue;
        }
        if offset % r.align() != 0 {
            return Err(PlanError::Misaligned {
                buffer: i,
                offset,
                align: r.align(),
            });
        }
        let end = offset.saturating_add(r.size);
        if end > plan.arena_size {
            return Err(PlanError::OutOfArena {
                buffer: i,
                end,
                arena: plan.arena_size,
            });
        }
    }
    // Sweep by offset: a buffer can only overlap those that start before it ends.
    let mut by_offset: Vec<usize> = (0..requests.len())
        .filter(|&i| requests[i].size > 0)
        .collect();
    by_offset.sort_by_key(|&i| plan.offsets[i]);
    for (k, &a) in by_offset.iter().enumerate() {
        let end_a = plan.offsets[a] + requests[a].size;
        for &b in &by_offset[k + 1..] {
            if plan.offsets[b] >= end_a {
                break;
            }
            if requests[a].live_together(&requests[b]) {
                return Err(PlanError::Overlap {
                    a: a.min(b),
                    b: a.max(b),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(size: u64, align: u64, first: usize, last: usize) -> Request {
        Request {
            size,
            align,
            first,
            last,
        }
    }

    #[test]
    fn best_fit_takes_the_smallest_gap() {
        // P and R die after step 0 and leave holes of 100 and 80 bytes under Q and S; T (30
        // bytes, live at steps 5 and 6) takes the 80-byte hole, not the first one.
        let reqs = [
            req(100, 1, 0, 0),
            req(90, 1, 0, 9),
            req(80, 1, 0, 0),
            req(70, 1, 0, 9),
            req(30, 1, 5, 6),
        ];
        let plan = plan_greedy(&reqs);
        check_plan(&reqs, &plan).unwrap();
        assert_eq!(plan.offsets, [0, 100, 190, 270, 190]);
        assert_eq!(plan.arena_size, 340);
        assert_eq!(plan.lower_bound, 340);
        assert!((plan.ratio() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn alignment_is_respected() {
        let reqs = [req(5, 1, 0, 0), req(4, 4, 0, 0), req(0, 8, 0, 0)];
        let plan = plan_greedy(&reqs);
        check_plan(&reqs, &plan).unwrap();
        assert_eq!(plan.offsets, [0, 8, 0]);
        assert_eq!((plan.arena_size, plan.lower_bound), (12, 9));
        assert!((plan.ratio() - 12.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn broken_plans_are_rejected() {
        let reqs = [req(16, 4, 0, 2), req(16, 4, 1, 3), req(16, 4, 3, 4)];
        let good = plan_greedy(&reqs);
        check_plan(&reqs, &good).unwrap();
        let mut overlap = good.clone();
        overlap.offsets[1] = overlap.offsets[0] + 8;
        overlap.arena_size = overlap.arena_size.max(overlap.offsets[1] + 16);
        assert_eq!(
            check_plan(&reqs, &overlap),
            Err(PlanError::Overlap { a: 0, b: 1 })
        );
        let mut misaligned = good.clone();
        misaligned.offsets[2] += 2;
        misaligned.arena_size += 2;
        assert!(matches!(
            check_plan(&reqs, &misaligned),
            Err(PlanError::Misaligned { buffer: 2, .. })
        ));
        let mut small = good.clone();
        small.arena_size -= 1;
        assert!(matches!(
            check_plan(&reqs, &small),
            Err(PlanError::OutOfArena { .. })
        ));
        let short = Plan {
            offsets: vec![0],
            ..good
        };
        assert!(matches!(
            check_plan(&reqs, &short),
            Err(PlanError::WrongLength { .. })
        ));
    }

    fn requests() -> impl Strategy<Value = Vec<Request>> {
        proptest::collection::vec((0u64..200, 0u32..4, 0usize..20, 0usize..8), 0..40).prop_map(
            |v| {
                v.into_iter()
                    .map(|(size, a, first, len)| req(size, 1 << a, first, first + len))
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn greedy_plans_are_valid(reqs in requests()) {
            let plan = plan_greedy(&reqs);
            prop_assert_eq!(check_plan(&reqs, &plan), Ok(()));
            prop_assert!(plan.lower_bound <= plan.arena_size);
            for (r, &o) in reqs.iter().zip(&plan.offsets) {
                prop_assert_eq!(o % r.align.max(1), 0);
            }
            // No two buffers live together share a byte (checked here directly, too).
            for i in 0..reqs.len() {
                for j in i + 1..reqs.len() {
                    let (a, b) = (&reqs[i], &reqs[j]);
                    if a.size == 0 || b.size == 0 || !a.live_together(b) {
                        continue;
                    }
                    let (oa, ob) = (plan.offsets[i], plan.offsets[j]);
                    prop_assert!(oa + a.size <= ob || ob + b.size <= oa);
                }
            }
        }

        #[test]
        fn moving_a_buffer_onto_a_live_neighbour_is_rejected(reqs in requests(), pick in 0usize..1000) {
            let plan = plan_greedy(&reqs);
            let pairs: Vec<(usize, usize)> = (0..reqs.len())
                .flat_map(|i| (0..reqs.len()).map(move |j| (i, j)))
                .filter(|&(i, j)| {
                    i != j && reqs[i].size > 0 && reqs[j].size > 0
                        && reqs[i].live_together(&reqs[j])
                        && reqs[j].align.max(1) <= reqs[i].align.max(1)
                })
                .collect();
            prop_assume!(!pairs.is_empty());
            let (i, j) = pairs[pick % pairs.len()];
            let mut broken = plan.clone();
            broken.offsets[j] = plan.offsets[i];
            broken.arena_size = broken.arena_size.max(plan.offsets[i] + reqs[j].size);
            let rejected = matches!(check_plan(&reqs, &broken), Err(PlanError::Overlap { .. }));
            prop_assert!(rejected, "moving buffer {} onto buffer {} was accepted", j, i);
        }
    }
}
