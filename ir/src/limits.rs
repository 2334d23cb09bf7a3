//! Resource limits for input that mite reads: how many bytes a file may have and how many
//! elements a declared tensor may hold.
//!
//! A malformed or hostile file must never make mite allocate more than the file can justify.
//! Two documented maxima bound what a file can ask for:
//!
//! - [`max_input_bytes`]: the size of a model, IR or dataset file (or of standard input),
//!   128 MiB unless the environment variable `MITE_MAX_INPUT_BYTES` says otherwise;
//! - [`max_tensor_elements`]: the elements of any tensor type a module declares or infers
//!   (64 Mi elements, 256 MB of `f32`), unless `MITE_MAX_TENSOR_ELEMENTS` says otherwise.
//!
//! Readers that go through [`read_file`] or [`read_capped`] stop at the limit with an error
//! that names the file, whatever the file is (a regular file, `/dev/zero`, a pipe).

use std::io::{self, Read};
use std::path::Path;
use std::sync::OnceLock;

/// Default of [`max_input_bytes`]: 128 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 128 << 20;

/// Default of [`max_tensor_elements`]: 64 Mi elements (256 MB of `f32`).
pub const DEFAULT_MAX_TENSOR_ELEMENTS: usize = 1 << 26;

/// Environment variable overriding [`DEFAULT_MAX_INPUT_BYTES`].
pub const MAX_INPUT_BYTES_VAR: &str = "MITE_MAX_INPUT_BYTES";

/// Environment variable overriding [`DEFAULT_MAX_TENSOR_ELEMENTS`].
pub const MAX_TENSOR_ELEMENTS_VAR: &str = "MITE_MAX_TENSOR_ELEMENTS";

fn env_or<T: std::str::FromStr + Copy>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The largest file (or standard input) mite reads, in bytes.
pub fn max_input_bytes() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| env_or(MAX_INPUT_BYTES_VAR, DEFAULT_MAX_INPUT_BYTES))
}

/// The most elements a tensor type in a module may have.
pub fn max_tensor_elements() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| env_or(MAX_TENSOR_ELEMENTS_VAR, DEFAULT_MAX_TENSOR_ELEMENTS))
}

/// The product of `dims`, or `None` when it overflows `usize`.
pub fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Checks that a shape has at most [`max_tensor_elements`] elements; the error says how many
/// it has (or that the count overflows) and names the limit.
pub fn check_elements(dims: &[usize]) -> Result<usize, String> {
    let limit = max_tensor_elements();
    match checked_product(dims) {
        Some(n) if n <= limit => Ok(n),
        Some(n) => Err(format!(
            "{n} elements exceed the limit of {limit} per tensor (set {MAX_TENSOR_ELEMENTS_VAR} to raise it)"
        )),
        None => Err(format!(
            "the element count overflows (limit {limit} per tensor, {MAX_TENSOR_ELEMENTS_VAR})"
        )),
    }
}

/// Reads all of `reader` (named `name` in errors), refusing more than [`max_input_bytes`].
pub fn read_capped(reader: impl Read, name: &str) -> io::Result<Vec<u8>> {
    read_with_limit(reader, name, max_input_bytes())
}

fn read_with_limit(reader: impl Read, name: &str, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(name, limit));
    }
    Ok(bytes)
}

fn too_large(name: &str, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{name} is larger than the input limit of {limit} bytes (set {MAX_INPUT_BYTES_VAR} to raise it)"
        ),
    )
}

/// Reads the file at `path`, refusing one larger than [`max_input_bytes`] before reading it
/// when its size is known, and while reading otherwise (devices, pipes).
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let limit = max_input_bytes();
    let name = path.display().to_string();
    if let Ok(meta) = file.metadata() {
        if meta.is_file() && meta.len() > limit {
            return Err(too_large(&name, limit));
        }
    }
    read_with_limit(file, &name, limit)
}

/// [`read_file`] decoded as UTF-8.
pub fn read_text_file(path: &Path) -> io::Result<String> {
    String::from_utf8(read_file(path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_element_limits() {
        assert_eq!(checked_product(&[2, 3, 4]), Some(24));
        assert_eq!(checked_product(&[]), Some(1));
        assert_eq!(checked_product(&[usize::MAX, 2]), None);
        assert!(check_elements(&[1, 3, 224, 224]).is_ok());
        let e = check_elements(&[1, 3, 100_000, 100_000]).unwrap_err();
        assert!(e.contains("30000000000 elements exceed"), "{e}");
        let e = check_elements(&[usize::MAX, 3]).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
    }

    #[test]
    fn endless_readers_stop_at_the_limit() {
        let e = read_with_limit(io::repeat(0), "<zeros>", 1000).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e
            .to_string()
            .starts_with("<zeros> is larger than the input limit of 1000 bytes"));
        let ok = read_with_limit(&[1u8, 2, 3][..], "x", 3).unwrap();
        assert_eq!(ok, vec![1, 2, 3]);
    }

    #[cfg(unix)]
    #[test]
    fn dev_zero_is_refused() {
        let e = read_file(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("/dev/zero is larger than"), "{e}");
    }
}
