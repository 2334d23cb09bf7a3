//! Exact int8 fixed-point arithmetic and int8 kernels.
