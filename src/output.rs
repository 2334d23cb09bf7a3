//! Safe outputs for the command line.
//!
//! - [`check_paths`] refuses an output path that names one of the inputs or another output
//!   (before anything runs, so a mistyped flag never destroys a model or a dataset);
//! - [`write_file`] writes to a temporary file next to the target and renames it over the
//!   target, so an interrupted run leaves the old file intact, and a full disk is an error;
//! - [`Stdout`] prints without panicking: a closed pipe (`mite opt big.mir | head -c1`) ends the
//!   output quietly, any other failure (`> /dev/full`) is an error.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file system identity of `path`: the canonical path of the file when it exists, else the
/// canonical path of its directory joined with its name (or the path itself, when the directory
/// does not exist either).
fn identity(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// Checks that no output (`(flag, path)`) is one of `inputs` or another output.
pub fn check_paths(inputs: &[PathBuf], outputs: &[(&str, &Path)]) -> Result<(), String> {
    let input_ids: Vec<PathBuf> = inputs.iter().map(|p| identity(p)).collect();
    for (i, (flag, path)) in outputs.iter().enumerate() {
        let id = identity(path);
        if let Some(k) = input_ids.iter().position(|p| *p == id) {
            return Err(format!(
                "error: {flag} {} would overwrite the input {}; choose another file",
                path.display(),
                inputs[k].display()
            ));
        }
        if let Some((other, _)) = outputs[..i].iter().find(|(_, p)| identity(p) == id) {
            return Err(format!(
                "error: {flag} and {other} both name {}; give each output its own file",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let fail = |what: &str, e: io::Error| format!("error: cannot {what} {}: {e}", path.display());
    let name = path
        .file_name()
        .ok_or_else(|| format!("error: {} is not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write", e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail("replace", e)
    })
}

/// Standard output that reports failures instead of panicking, and goes quiet once the reader
/// has closed the pipe.
#[derive(Debug, Default)]
pub struct Stdout {
    closed: bool,
}

impl Stdout {
    /// A new writer.
    pub fn new() -> Stdout {
        Stdout::default()
    }

    /// Writes `text`; a closed pipe is not an error (later writes are dropped), any other
    /// failure is.
    pub fn print(&mut self, text: &str) -> Result<(), String> {
        if self.closed {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(format!("error: writing to standard output: {e}")),
        }
    }
}

/// Writes `text` on standard error, ignoring failures (progress and notes only).
pub fn note(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mite-output-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn outputs_may_not_name_inputs_or_each_other() {
        let dir = temp_dir("paths");
        let model = dir.join("m.onnx");
        std::fs::write(&model, b"model").unwrap();
        let same_via_dots = dir.join(".").join("m.onnx");
        let e = check_paths(
            std::slice::from_ref(&model),
            &[("--save-model", &same_via_dots)],
        )
        .unwrap_err();
        assert!(e.contains("would overwrite the input"), "{e}");
        let out = dir.join("r.json");
        let e = check_paths(&[], &[("--report-json", &out), ("--dump-logits", &out)]).unwrap_err();
        assert!(
            e.contains("--dump-logits and --report-json both name"),
            "{e}"
        );
        assert!(check_paths(&[model], &[("--report-json", &out)]).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn writes_replace_atomically_and_leave_no_temporary() {
        let dir = temp_dir("write");
        let path = dir.join("out.txt");
        std::fs::write(&path, b"old").unwrap();
        write_file(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
        let e = write_file(&dir.join("missing/out.txt"), b"x").unwrap_err();
        assert!(e.starts_with("error: cannot write"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
