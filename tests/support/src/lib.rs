//! Test helpers shared by mite's crates.
//!
//! Tests that need the shared models and datasets (`../shared`, or the directory named by
//! `MITE_SHARED`) or an external tool call [`shared_dir`] or [`tool`]. When the resource is
//! missing they print why the test is skipped and return `None`; when `MITE_REQUIRE_SHARED=1`
//! (respectively `MITE_REQUIRE_TOOLS=1`) is set, as in CI, a missing resource fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the environment variable `name` is set to a true value (`1`, `true`, `yes`).
fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| matches!(v.trim(), "1" | "true" | "yes"))
        .unwrap_or(false)
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate lives at `<root>/tests/support`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support has two ancestors")
        .to_path_buf()
}

/// Locates the shared directory without printing anything: `MITE_SHARED` if set, otherwise
/// `../shared` beside the workspace root.
pub fn find_shared_dir() -> Option<PathBuf> {
    let candidate = match std::env::var_os("MITE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().parent()?.join("shared"),
    };
    candidate.is_dir().then_some(candidate)
}

/// The shared directory for test `test`, or `None` after printing why the test is skipped.
///
/// # Panics
/// When the directory is missing and `MITE_REQUIRE_SHARED=1` is set.
pub fn shared_dir(test: &str) -> Option<PathBuf> {
    match find_shared_dir() {
        Some(dir) => Some(dir),
        None if env_flag("MITE_REQUIRE_SHARED") => panic!(
            "{test}: the shared directory is required (MITE_REQUIRE_SHARED=1) but neither \
             $MITE_SHARED nor ../shared exists"
        ),
        None => {
            eprintln!("SKIPPED {test}: no shared directory (set MITE_SHARED or place ../shared)");
            None
        }
    }
}

/// A file below the shared directory for test `test`, or `None` after printing why it is skipped.
///
/// # Panics
/// When the file is missing and `MITE_REQUIRE_SHARED=1` is set.
pub fn shared_file(test: &str, relative: &str) -> Option<PathBuf> {
    let dir = shared_dir(test)?;
    let path = dir.join(relative);
    if path.is_file() {
        Some(path)
    } else if env_flag("MITE_REQUIRE_SHARED") {
        panic!("{test}: required shared file {} is missing", path.display())
    } else {
        eprintln!("SKIPPED {test}: shared file {} is missing", path.display());
        None
    }
}

/// The path of external tool `program` if it runs (`program --version` succeeds), or `None`
/// after printing why the test is skipped.
///
/// # Panics
/// When the tool is missing and `MITE_REQUIRE_TOOLS=1` is set.
pub fn tool(test: &str, program: &str) -> Option<PathBuf> {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Some(PathBuf::from(program))
    } else if env_flag("MITE_REQUIRE_TOOLS") {
        panic!("{test}: required tool `{program}` is not available (MITE_REQUIRE_TOOLS=1)")
    } else {
        eprintln!("SKIPPED {test}: tool `{program}` is not available");
        None
    }
}
