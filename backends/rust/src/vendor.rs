//! The sources of `mite-kernels`, embedded at build time, so that an emitted crate carries the
//! exact kernels its Program was lowered for and builds from its own folder.

/// `(path inside the kernel crate, contents)` of every source file of `mite-kernels`.
pub(crate) const KERNEL_SOURCES: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../kernels/src/lib.rs")),
    ("src/error.rs", include_str!("../../kernels/src/error.rs")),
    (
        "src/fixed_point.rs",
        include_str!("../../kernels/src/fixed_point.rs"),
    ),
    ("src/fmath.rs", include_str!("../../kernels/src/fmath.rs")),
    (
        "src/geometry.rs",
        include_str!("../../kernels/src/geometry.rs"),
    ),
    (
        "src/requant.rs",
        include_str!("../../kernels/src/requant.rs"),
    ),
    ("src/sgd.rs", include_str!("../../kernels/src/sgd.rs")),
    ("src/update.rs", include_str!("../../kernels/src/update.rs")),
    ("src/split.rs", include_str!("../../kernels/src/split.rs")),
    (
        "src/float/mod.rs",
        include_str!("../../kernels/src/float/mod.rs"),
    ),
    (
        "src/float/conv.rs",
        include_str!("../../kernels/src/float/conv.rs"),
    ),
    (
        "src/float/linear.rs",
        include_str!("../../kernels/src/float/linear.rs"),
    ),
    (
        "src/float/loss.rs",
        include_str!("../../kernels/src/float/loss.rs"),
    ),
    (
        "src/float/mask.rs",
        include_str!("../../kernels/src/float/mask.rs"),
    ),
    (
        "src/float/pool.rs",
        include_str!("../../kernels/src/float/pool.rs"),
    ),
    (
        "src/float/fused.rs",
        include_str!("../../kernels/src/float/fused.rs"),
    ),
    (
        "src/float/bottleneck_backward.rs",
        include_str!("../../kernels/src/float/bottleneck_backward.rs"),
    ),
    (
        "src/float/inplace.rs",
        include_str!("../../kernels/src/float/inplace.rs"),
    ),
    (
        "src/int8/mod.rs",
        include_str!("../../kernels/src/int8/mod.rs"),
    ),
    (
        "src/int8/add.rs",
        include_str!("../../kernels/src/int8/add.rs"),
    ),
    (
        "src/int8/bottleneck.rs",
        include_str!("../../kernels/src/int8/bottleneck.rs"),
    ),
    (
        "src/int8/bottleneck_chain.rs",
        include_str!("../../kernels/src/int8/bottleneck_chain.rs"),
    ),
    (
        "src/int8/conv.rs",
        include_str!("../../kernels/src/int8/conv.rs"),
    ),
    (
        "src/int8/conv_fast.rs",
        include_str!("../../kernels/src/int8/conv_fast.rs"),
    ),
    (
        "src/int8/linear.rs",
        include_str!("../../kernels/src/int8/linear.rs"),
    ),
    (
        "src/int8/pool.rs",
        include_str!("../../kernels/src/int8/pool.rs"),
    ),
    (
        "src/int8/quantize.rs",
        include_str!("../../kernels/src/int8/quantize.rs"),
    ),
];

/// The vendored kernel crate's manifest (the workspace's uses workspace inheritance, which does
/// not exist outside it).
pub(crate) const KERNEL_MANIFEST: &str = r#"[package]
name = "mite-kernels"
description = "no_std, allocation-free int8 and f32 training kernels for mite programs (vendored)."
version = "0.1.0"
edition = "2021"
license = "MIT OR Apache-2.0"
publish = false

[dependencies]
"#;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The `.rs` files under `dir`, relative to `base`.
    fn rust_files(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(base).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    /// A new kernel file must be added to the list, or the emitted crates would not build.
    #[test]
    fn every_kernel_source_is_vendored() {
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kernels");
        let mut files = vec![];
        rust_files(&base.join("src"), &base, &mut files);
        files.sort();
        let mut listed: Vec<String> = super::KERNEL_SOURCES
            .iter()
            .map(|(p, _)| (*p).to_string())
            .collect();
        listed.sort();
        assert_eq!(files, listed);
    }
}
