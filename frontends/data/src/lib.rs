//! Dataset input for mite: NumPy `.npy` arrays ([`npy`]), image splits stored as
//! `<split>_images.npy` / `<split>_labels.npy` ([`dataset`]), bilinear resizing ([`resize`]).

#![forbid(unsafe_code)]

pub mod dataset;
pub mod npy;
pub mod resize;

pub use dataset::{Dataset, DatasetError, Normalization};
pub use npy::{NpyArray, NpyData, NpyError};
