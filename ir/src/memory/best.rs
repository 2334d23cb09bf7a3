//! The improving arena planner: several greedy orders, an improvement step, and an exact
//! branch and bound for small instances.
//!
//! [`plan_best`] runs, within [`SearchLimits`]:
//! 1. **Greedy orders**: the requests ordered by size, by first live step, by area (size × steps
//!    live), by lifetime length, by last live step, and by size then last live step (largest,
//!    earliest or latest first; ties by index), each placed by best fit ([`plan_in_order`]; by
//!    size that is [`plan_greedy`]) and by first fit (the lowest offset that holds it).
//! 2. **Improvement**: from each of the two best greedy orders (half the rounds each), the
//!    buffer that reaches the top of the arena is moved to the front of the order and the order
//!    is placed again, kept when the arena does not grow; when that stalls, two positions are
//!    swapped (a seeded, deterministic choice). Stops at the lower bound, after `improve_rounds`
//!    rounds or at the time limit.
//! 3. **Exact search** (when at most `exact_max_buffers` buffers have bytes and the best plan is
//!    above the lower bound): a depth-first branch and bound over placement orders, in the
//!    canonical form of dynamic storage allocation (buffers taken in order of their offsets,
//!    each at the lowest offset it fits at above the buffers placed before it that are live with
//!    it; any plan can be lowered into that form without growing). A branch is cut when the
//!    offset of the last buffer placed plus the most bytes of unplaced buffers live at one step
//!    reaches the best arena found. Stops after `max_nodes` nodes or at the time limit; when it
//!    finishes, the plan is proven optimal ([`BestPlan::optimal`]).
//!
//! A plan found by any step is checked with [`check_plan`] before it is kept, so the result is
//! never worse than the greedy plan and always valid.
//!
//! ```
//! use mite_ir::memory::best::{plan_best, SearchLimits};
//! use mite_ir::memory::plan::{check_plan, plan_greedy, Request};
//! // Largest first puts both 5-byte buffers at 0 and the 4-byte ones above them (13 bytes);
//! // starting with the long-lived 4-byte buffers reaches the lower bound, 9.
//! let r = |size, first, last| Request { size, align: 1, first, last };
//! let reqs = [r(4, 0, 2), r(4, 2, 4), r(5, 3, 3), r(5, 0, 0)];
//! assert_eq!(plan_greedy(&reqs).arena_size, 13);
//! let best = plan_best(&reqs, &SearchLimits::default());
//! check_plan(&reqs, &best.plan).unwrap();
//! assert_eq!((best.plan.arena_size, best.plan.lower_bound), (9, 9));
//! assert!(best.optimal);
//! ```

use super::plan::{check_plan, first_fit, plan_greedy, plan_in_order, Plan, Request};
use std::cmp::Reverse;
use std::time::{Duration, Instant};

/// Limits of [`plan_best`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchLimits {
    /// Rounds of the improvement step.
    pub improve_rounds: usize,
    /// The exact search runs only on instances with at most this many buffers with bytes.
    pub exact_max_buffers: usize,
    /// Nodes of the exact search.
    pub max_nodes: u64,
    /// Wall-clock limit of the improvement step and the exact search together.
    pub time_limit: Duration,
}

impl Default for SearchLimits {
    /// 200 improvement rounds, exact search up to 40 buffers and 200,000 nodes, 100 ms.
    fn default() -> SearchLimits {
        SearchLimits {
            improve_rounds: 200,
            exact_max_buffers: 40,
            max_nodes: 200_000,
            time_limit: Duration::from_millis(100),
        }
    }
}

/// Which step of [`plan_best`] found the plan it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// A greedy order (its name: `size`, `start`, `area`, `length`, `end`, `size-end`).
    Greedy(&'static str),
    /// The improvement step.
    Improved,
    /// The exact search.
    Exact,
}

impl Method {
    /// A short name (`greedy:size`, `improved`, `exact`).
    pub fn name(&self) -> String {
        match self {
            Method::Greedy(order) => format!("greedy:{order}"),
            Method::Improved => "improved".into(),
            Method::Exact => "exact".into(),
        }
    }
}

/// The result of [`plan_best`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BestPlan {
    /// The plan (valid by [`check_plan`]).
    pub plan: Plan,
    /// Which step found it.
    pub method: Method,
    /// Whether it is proven optimal (its arena is the lower bound, or the exact search finished).
    pub optimal: bool,
    /// The arena of [`plan_greedy`], for comparison.
    pub greedy_arena: u64,
    /// Nodes the exact search visited (0 when it did not run).
    pub nodes: u64,
}

/// Plans `requests` with the greedy orders, the improvement step and the exact search (see the
/// module documentation).
pub fn plan_best(requests: &[Request], limits: &SearchLimits) -> BestPlan {
    plan_best_pinned(requests, &[], limits)
}

/// [`plan_best`] with the requests `pinned` (indices) held at offset 0: each order places them
/// first, the improvement step keeps them first, and the exact search does not run (its
/// canonical form would move them). Pinned requests must not be live together: then every
/// order puts each of them at 0 (otherwise a later one cannot be, and the caller sees it in
/// the offsets).
///
/// This is how a buffer is handed over to another in place: a kernel that consumes its input
/// and leaves its output at the input's start has both pinned, the output live from the call
/// after the kernel's.
///
/// ```
/// use mite_ir::memory::best::{plan_best_pinned, SearchLimits};
/// use mite_ir::memory::plan::{check_plan, Request};
/// let r = |size, first, last| Request { size, align: 1, first, last };
/// // 0 is consumed at step 1 by the kernel that leaves 2 in its bytes.
/// let reqs = [r(48, 0, 1), r(8, 1, 1), r(16, 2, 3), r(16, 2, 3)];
/// let best = plan_best_pinned(&reqs, &[0, 2], &SearchLimits::default());
/// check_plan(&reqs, &best.plan).unwrap();
/// assert_eq!((best.plan.offsets[0], best.plan.offsets[2]), (0, 0));
/// assert_eq!(best.plan.arena_size, 56);
/// ```
pub fn plan_best_pinned(requests: &[Request], pinned: &[usize], limits: &SearchLimits) -> BestPlan {
    let start = Instant::now();
    let n = requests.len();
    let pinned: Vec<usize> = pinned.iter().copied().filter(|&i| i < n).collect();
    let pin_front = |mut order: Vec<usize>| -> Vec<usize> {
        order.retain(|i| !pinned.contains(i));
        pinned.iter().copied().chain(order).collect()
    };
    let holds_pins = |plan: &Plan| pinned.iter().all(|&i| plan.offsets[i] == 0);
    let greedy = if pinned.is_empty() {
        plan_greedy(requests)
    } else {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (Reverse(requests[i].size), requests[i].first, i));
        plan_in_order(requests, &pin_front(order))
    };
    let greedy_arena = greedy.arena_size;
    let lower = greedy.lower_bound;
    let by = |key: &dyn Fn(&Request) -> (u64, u64)| -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (key(&requests[i]), i));
        pin_front(order)
    };
    let len = |r: &Request| (r.last.max(r.first) - r.first + 1) as u64;
    let orders: [(&'static str, Vec<usize>); 6] = [
        ("size", by(&|r| (u64::MAX - r.size, r.first as u64))),
        ("start", by(&|r| (r.first as u64, u64::MAX - r.size))),
        (
            "area",
            by(&|r| (u64::MAX - r.size.saturating_mul(len(r)), 0)),
        ),
        ("length", by(&|r| (u64::MAX - len(r), u64::MAX - r.size))),
        (
            "end",
            by(&|r| (u64::MAX - r.last as u64, u64::MAX - r.size)),
        ),
        (
            "size-end",
            by(&|r| (u64::MAX - r.size, u64::MAX - r.last as u64)),
        ),
    ];
    let mut best = BestPlan {
        plan: greedy,
        method: Method::Greedy("size"),
        optimal: greedy_arena <= lower,
        greedy_arena,
        nodes: 0,
    };
    // Every greedy plan's arena with its order: the improvement starts from the best two
    // (a local search from one start can stall where another start does not).
    let mut starts: Vec<(u64, usize)> = Vec::new();
    for (k, (name, order)) in orders.iter().enumerate() {
        let best_fit = (k > 0).then(|| plan_in_order(requests, order));
        let mut arena = u64::MAX;
        for plan in best_fit.into_iter().chain([plan_lowest(requests, order)]) {
            arena = arena.min(plan.arena_size);
            if plan.arena_size < best.plan.arena_size
                && holds_pins(&plan)
                && check_plan(requests, &plan).is_ok()
            {
                best.plan = plan;
                best.method = Method::Greedy(name);
            }
        }
        starts.push((arena, k));
    }
    starts.sort_unstable();
    let per_start = SearchLimits {
        improve_rounds: limits.improve_rounds.div_ceil(2),
        ..*limits
    };
    for &(_, k) in starts.iter().take(2) {
        if best.plan.arena_size > lower {
            improve(
                requests,
                &mut best,
                orders[k].1.clone(),
                pinned.len(),
                &per_start,
                start,
            );
        }
    }
    let sized = requests.iter().filter(|r| r.size > 0).count();
    if pinned.is_empty() && best.plan.arena_size > lower && sized <= limits.exact_max_buffers {
        exact(requests, &mut best, limits, start);
    }
    if best.plan.arena_size <= lower {
        best.optimal = true;
    }
    best
}

/// Places the requests in `order`, each at the lowest offset it fits at (first fit).
fn plan_lowest(requests: &[Request], order: &[usize]) -> Plan {
    let mut offsets = vec![0u64; requests.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_size = 0u64;
    for &i in order {
        let r = &requests[i];
        if r.size == 0 {
            continue;
        }
        let mut blockers: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&j| requests[j].live_together(r))
            .map(|&j| (offsets[j], offsets[j] + requests[j].size))
            .collect();
        blockers.sort_unstable();
        offsets[i] = first_fit(&blockers, r.size, r.align(), 0);
        arena_size = arena_size.max(offsets[i] + r.size);
        placed.push(i);
    }
    Plan {
        offsets,
        arena_size,
        lower_bound: super::plan::lower_bound(requests),
    }
}

/// The improvement step: move the top buffer to the front, else swap two positions.
/// The first `fixed` positions of `order` (pinned requests) stay where they are.
fn improve(
    requests: &[Request],
    best: &mut BestPlan,
    mut order: Vec<usize>,
    fixed: usize,
    limits: &SearchLimits,
    start: Instant,
) {
    let lower = best.plan.lower_bound;
    let n = order.len();
    let fixed = fixed.min(n);
    let free = n - fixed;
    if free == 0 {
        return;
    }
    let mut current = best.plan.arena_size;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_random = |bound: usize| -> usize {
        // xorshift64*: deterministic, good enough to pick positions.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound.max(1)
    };
    let mut plan = best.plan.clone();
    for _ in 0..limits.improve_rounds {
        if best.plan.arena_size <= lower || start.elapsed() > limits.time_limit {
            break;
        }
        // The buffer reaching the top of the arena, latest in the order.
        let top = order
            .iter()
            .rposition(|&i| requests[i].size > 0 && plan.offsets[i] + requests[i].size == current);
        let mut candidate = order.clone();
        match top {
            Some(pos) if pos > fixed => {
                let i = candidate.remove(pos);
                candidate.insert(fixed, i);
            }
            _ => {
                candidate.swap(fixed + next_random(free), fixed + next_random(free));
            }
        }
        let mut tried = plan_in_order(requests, &candidate);
        if tried.arena_size > current {
            // Moving the top buffer first did not help: perturb instead.
            candidate = order.clone();
            candidate.swap(fixed + next_random(free), fixed + next_random(free));
            tried = plan_in_order(requests, &candidate);
        }
        if tried.arena_size <= current {
            current = tried.arena_size;
            order = candidate;
            plan = tried;
            if current < best.plan.arena_size && check_plan(requests, &plan).is_ok() {
                best.plan = plan.clone();
                best.method = Method::Improved;
            }
        }
    }
}

/// State of the exact search.
struct Exact<'a> {
    requests: &'a [Request],
    /// Indices of the buffers with bytes.
    items: Vec<usize>,
    /// The distinct steps at which some buffer starts (live sums only change there).
    points: Vec<usize>,
    offsets: Vec<u64>,
    placed: Vec<bool>,
    best_arena: u64,
    best_offsets: Option<Vec<u64>>,
    nodes: u64,
    max_nodes: u64,
    deadline: Instant,
    gave_up: bool,
}

impl Exact<'_> {
    /// The most bytes of unplaced buffers live at one step.
    fn unplaced_peak(&self) -> u64 {
        self.points
            .iter()
            .map(|&t| {
                self.items
                    .iter()
                    .filter(|&&i| !self.placed[i])
                    .map(|&i| &self.requests[i])
                    .filter(|r| r.first <= t && t <= r.last.max(r.first))
                    .map(|r| r.size)
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    }

    /// The lowest offset buffer `i` fits at above the placed buffers live with it.
    fn lowest_offset(&self, i: usize) -> u64 {
        let r = &self.requests[i];
        let mut blockers: Vec<(u64, u64)> = self
            .items
            .iter()
            .filter(|&&j| self.placed[j] && self.requests[j].live_together(r))
            .map(|&j| (self.offsets[j], self.offsets[j] + self.requests[j].size))
            .collect();
        blockers.sort_unstable();
        first_fit(&blockers, r.size, r.align(), 0)
    }

    /// Depth-first search; `last` is the (offset, index) of the last buffer placed, `height` the
    /// arena so far, `left` the number of buffers still to place.
    fn search(&mut self, last: (u64, usize), height: u64, left: usize) {
        if left == 0 {
            if height < self.best_arena {
                self.best_arena = height;
                self.best_offsets = Some(self.offsets.clone());
            }
            return;
        }
        self.nodes += 1;
        if self.nodes > self.max_nodes || (self.nodes % 256 == 0 && Instant::now() > self.deadline)
        {
            self.gave_up = true;
            return;
        }
        if height.max(last.0 + self.unplaced_peak()) >= self.best_arena {
            return;
        }
        // Candidates in canonical order (offsets nondecreasing, ties by index), lowest first.
        let mut candidates: Vec<(u64, usize)> = self
            .items
            .iter()
            .filter(|&&i| !self.placed[i])
            .map(|&i| (self.lowest_offset(i), i))
            .filter(|&c| c > last)
            .collect();
        candidates.sort_unstable_by_key(|&(o, i)| (o, Reverse(self.requests[i].size), i));
        for (offset, i) in candidates {
            let end = offset + self.requests[i].size;
            if end >= self.best_arena {
                continue;
            }
            self.placed[i] = true;
            self.offsets[i] = offset;
            self.search((offset, i), height.max(end), left - 1);
            self.placed[i] = false;
            self.offsets[i] = 0;
            if self.gave_up {
                return;
            }
        }
    }
}

fn exact(requests: &[Request], best: &mut BestPlan, limits: &SearchLimits, start: Instant) {
    let items: Vec<usize> = (0..requests.len())
        .filter(|&i| requests[i].size > 0)
        .collect();
    let mut points: Vec<usize> = items.iter().map(|&i| requests[i].first).collect();
    points.sort_unstable();
    points.dedup();
    let mut state = Exact {
        requests,
        points,
        offsets: vec![0; requests.len()],
        placed: vec![false; requests.len()],
        best_arena: best.plan.arena_size,
        best_offsets: None,
        nodes: 0,
        max_nodes: limits.max_nodes,
        deadline: start + limits.time_limit,
        gave_up: false,
        items,
    };
    let left = state.items.len();
    state.search_root(left);
    best.nodes = state.nodes;
    if let Some(offsets) = state.best_offsets.take() {
        let plan = Plan {
            arena_size: state.best_arena,
            offsets,
            lower_bound: best.plan.lower_bound,
        };
        if check_plan(requests, &plan).is_ok() {
            best.plan = plan;
            best.method = Method::Exact;
        }
    }
    if !state.gave_up {
        best.optimal = true;
    }
}

impl Exact<'_> {
    /// The root of the search: every buffer may come first.
    fn search_root(&mut self, left: usize) {
        let order: Vec<usize> = self.items.clone();
        if self.unplaced_peak() >= self.best_arena {
            return;
        }
        for i in order {
            let offset = self.lowest_offset(i);
            let end = offset + self.requests[i].size;
            if offset > 0 || end >= self.best_arena {
                continue;
            }
            self.placed[i] = true;
            self.search((0, i), end, left - 1);
            self.placed[i] = false;
            if self.gave_up {
                return;
            }
        }
    }
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

    /// Greedy by size places the two 5-byte buffers at 0, the 4-byte ones above them: 13
    /// bytes; 9 (the lower bound) is possible.
    fn greedy_gap() -> Vec<Request> {
        vec![
            req(4, 1, 0, 2),
            req(4, 1, 2, 4),
            req(5, 1, 3, 3),
            req(5, 1, 0, 0),
        ]
    }

    #[test]
    fn plan_best_closes_a_greedy_gap() {
        let reqs = greedy_gap();
        let best = plan_best(&reqs, &SearchLimits::default());
        check_plan(&reqs, &best.plan).unwrap();
        assert_eq!(best.greedy_arena, 13);
        assert_eq!((best.plan.arena_size, best.plan.lower_bound), (9, 9));
        assert!(best.optimal);
        assert_ne!(best.method, Method::Greedy("size"));
    }

    #[test]
    fn pinned_requests_stay_at_zero_where_the_unpinned_plan_moves_them() {
        // Unpinned, largest first puts the 12-byte buffer (4) at 0 and the handed-over output
        // (3) at the top; pinned, 0 and 3 share offset 0 and the rest goes around them, at the
        // same arena (the lower bound).
        let reqs = vec![
            req(10, 1, 0, 1),
            req(6, 1, 0, 5),
            req(2, 1, 1, 1),
            req(4, 1, 2, 5),
            req(12, 1, 2, 2),
        ];
        let free = plan_best(&reqs, &SearchLimits::default());
        assert_ne!((free.plan.offsets[0], free.plan.offsets[3]), (0, 0));
        let pinned = plan_best_pinned(&reqs, &[0, 3], &SearchLimits::default());
        check_plan(&reqs, &pinned.plan).unwrap();
        assert_eq!((pinned.plan.offsets[0], pinned.plan.offsets[3]), (0, 0));
        assert_eq!(pinned.plan.arena_size, 22);
        assert_eq!(pinned.nodes, 0, "no exact search under pins");
    }

    proptest! {
        /// Two pinned requests not live together are both at 0 in a valid plan.
        #[test]
        fn pins_hold_on_random_instances(
            raw in prop::collection::vec((1u64..64, 0u32..3, 0usize..8, 0usize..4), 2..14),
            handover in 0usize..8,
        ) {
            let mut reqs: Vec<Request> = raw
                .iter()
                .map(|&(size, a, first, len)| req(size, 1 << a, first, first + len))
                .collect();
            reqs[0] = req(64, 8, 0, handover);
            reqs[1] = req(16, 8, handover + 1, handover + 3);
            let best = plan_best_pinned(&reqs, &[0, 1], &SearchLimits::default());
            check_plan(&reqs, &best.plan).unwrap();
            prop_assert_eq!((best.plan.offsets[0], best.plan.offsets[1]), (0, 0));
        }
    }

    #[test]
    fn the_exact_search_alone_closes_it_too() {
        let reqs = greedy_gap();
        let greedy = plan_greedy(&reqs);
        let mut best = BestPlan {
            greedy_arena: greedy.arena_size,
            plan: greedy,
            method: Method::Greedy("size"),
            optimal: false,
            nodes: 0,
        };
        exact(&reqs, &mut best, &SearchLimits::default(), Instant::now());
        check_plan(&reqs, &best.plan).unwrap();
        assert_eq!(best.method, Method::Exact);
        assert_eq!(best.plan.arena_size, 9);
        assert!(best.optimal && best.nodes > 0);
    }

    #[test]
    fn limits_stop_the_search_without_losing_validity() {
        let reqs: Vec<Request> = (0..30)
            .map(|i| req(7 + (i * 13 % 17) as u64, 1 << (i % 3), i % 9, i % 9 + i % 4))
            .collect();
        let tight = SearchLimits {
            improve_rounds: 1,
            exact_max_buffers: 40,
            max_nodes: 5,
            time_limit: Duration::from_millis(50),
        };
        let best = plan_best(&reqs, &tight);
        check_plan(&reqs, &best.plan).unwrap();
        assert!(best.plan.arena_size <= best.greedy_arena);
        assert!(best.nodes <= 6);
    }

    fn requests() -> impl Strategy<Value = Vec<Request>> {
        proptest::collection::vec((0u64..200, 0u32..4, 0usize..12, 0usize..6), 0..14).prop_map(
            |v| {
                v.into_iter()
                    .map(|(size, a, first, len)| req(size, 1 << a, first, first + len))
                    .collect()
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn best_plans_are_valid_and_never_worse_than_greedy(reqs in requests()) {
            let best = plan_best(&reqs, &SearchLimits::default());
            prop_assert_eq!(check_plan(&reqs, &best.plan), Ok(()));
            prop_assert!(best.plan.lower_bound <= best.plan.arena_size);
            prop_assert!(best.plan.arena_size <= plan_greedy(&reqs).arena_size);
            for (r, &o) in reqs.iter().zip(&best.plan.offsets) {
                prop_assert_eq!(o % r.align.max(1), 0);
            }
            for i in 0..reqs.len() {
                for j in i + 1..reqs.len() {
                    let (a, b) = (&reqs[i], &reqs[j]);
                    if a.size == 0 || b.size == 0 || !a.live_together(b) {
                        continue;
                    }
                    let (oa, ob) = (best.plan.offsets[i], best.plan.offsets[j]);
                    prop_assert!(oa + a.size <= ob || ob + b.size <= oa);
                }
            }
        }

        /// On tiny instances the exact search matches brute force over all placement orders.
        #[test]
        fn exact_search_matches_brute_force(reqs in proptest::collection::vec(
            (1u64..9, 0u32..2, 0usize..4, 0usize..3), 1..6)
        ) {
            let reqs: Vec<Request> = reqs
                .into_iter()
                .map(|(size, a, first, len)| req(size, 1 << a, first, first + len))
                .collect();
            let best = plan_best(&reqs, &SearchLimits { time_limit: Duration::from_secs(5), ..SearchLimits::default() });
            prop_assert!(best.optimal);
            let brute = brute_force(&reqs);
            prop_assert_eq!(best.plan.arena_size, brute);
        }
    }

    /// The smallest arena over every assignment of aligned offsets (independent of the
    /// canonical form the exact search relies on).
    fn brute_force(reqs: &[Request]) -> u64 {
        fn go(reqs: &[Request], offsets: &mut Vec<u64>, top: u64, best: &mut u64) {
            let i = offsets.len();
            if i == reqs.len() {
                *best = (*best).min(top);
                return;
            }
            let r = reqs[i];
            let mut o = 0;
            while o + r.size < *best {
                let clash = (0..i).any(|j| {
                    reqs[j].live_together(&r)
                        && o < offsets[j] + reqs[j].size
                        && offsets[j] < o + r.size
                });
                if !clash {
                    offsets.push(o);
                    go(reqs, offsets, top.max(o + r.size), best);
                    offsets.pop();
                }
                o += r.align();
            }
        }
        let mut best: u64 = reqs.iter().map(|r| r.size + r.align()).sum::<u64>() + 1;
        go(reqs, &mut Vec::new(), 0, &mut best);
        best
    }
}
