//! Float (f32) reference kernels over NCHW slices.
