//! The mite facade crate.
