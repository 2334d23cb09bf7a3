//! Memory: the arena planner ([`plan`]) and the memory report of a training step ([`report`]).

pub mod plan;
