//! Analyses over a function: use lists and use counts (side tables keyed by value).
