//! Memory: kernel scratch estimates ([`scratch`]), the arena planner ([`plan`]) and the memory
//! report of a training step ([`report`]).

pub mod best;
pub mod plan;
pub mod report;
pub mod scratch;
pub mod timeline;

pub use report::{memory_report, ArenaBuffer, BufferKind, MemoryError, MemoryReport};
