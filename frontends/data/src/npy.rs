//! Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0, C order).
//!
//! Supported element types: `u1`, `i1`, `u2`, `i2`, `i4`, `i8`, `f4`, `f8` (little endian, or
//! byte-sized). Fortran order, big-endian data and object arrays are refused with a message.

use std::path::Path;
use thiserror::Error;

/// The elements of an array, by type.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `|u1`.
    U8(Vec<u8>),
    /// `|i1`.
    I8(Vec<i8>),
    /// `<u2`.
    U16(Vec<u16>),
    /// `<i2`.
    I16(Vec<i16>),
    /// `<i4`.
    I32(Vec<i32>),
    /// `<i8`.
    I64(Vec<i64>),
    /// `<f4`.
    F32(Vec<f32>),
    /// `<f8`.
    F64(Vec<f64>),
}

impl NpyData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::U8(v) => v.len(),
            NpyData::I8(v) => v.len(),
            NpyData::U16(v) => v.len(),
            NpyData::I16(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy type descriptor (`<f4`, `|u1`, ...).
    pub fn descr(&self) -> &'static str {
        match self {
            NpyData::U8(_) => "|u1",
            NpyData::I8(_) => "|i1",
            NpyData::U16(_) => "<u2",
            NpyData::I16(_) => "<i2",
            NpyData::I32(_) => "<i4",
            NpyData::I64(_) => "<i8",
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
        }
    }

    /// Element `i` as `f64` (integers are exact up to 2^53).
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        Some(match self {
            NpyData::U8(v) => f64::from(*v.get(i)?),
            NpyData::I8(v) => f64::from(*v.get(i)?),
            NpyData::U16(v) => f64::from(*v.get(i)?),
            NpyData::I16(v) => f64::from(*v.get(i)?),
            NpyData::I32(v) => f64::from(*v.get(i)?),
            NpyData::I64(v) => *v.get(i)? as f64,
            NpyData::F32(v) => f64::from(*v.get(i)?),
            NpyData::F64(v) => *v.get(i)?,
        })
    }

    /// Element `i` as an integer, if the array has an integer type.
    pub fn get_i64(&self, i: usize) -> Option<i64> {
        Some(match self {
            NpyData::U8(v) => i64::from(*v.get(i)?),
            NpyData::I8(v) => i64::from(*v.get(i)?),
            NpyData::U16(v) => i64::from(*v.get(i)?),
            NpyData::I16(v) => i64::from(*v.get(i)?),
            NpyData::I32(v) => i64::from(*v.get(i)?),
            NpyData::I64(v) => *v.get(i)?,
            NpyData::F32(_) | NpyData::F64(_) => return None,
        })
    }
}

/// A dense array: shape and elements in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements.
    pub data: NpyData,
}

/// Why an `.npy` file could not be read or written.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid or supported `.npy` file.
    #[error("{path}: {message}")]
    Format {
        /// The file (or the name given to [`NpyArray::from_bytes`]).
        path: String,
        /// What is wrong.
        message: String,
    },
}

const MAGIC: &[u8] = b"\x93NUMPY";

impl NpyArray {
    /// Reads an `.npy` file (at most [`mite_ir::limits::max_input_bytes`] bytes).
    pub fn read(path: &Path) -> Result<NpyArray, NpyError> {
        let bytes = mite_ir::limits::read_file(path).map_err(|source| NpyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        NpyArray::from_bytes(&bytes, &path.display().to_string())
    }

    /// Decodes the bytes of an `.npy` file; `name` is used in error messages.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<NpyArray, NpyError> {
        let fail = |message: String| NpyError::Format {
            path: name.to_string(),
            message,
        };
        if bytes.len() < 10 || &bytes[..6] != MAGIC {
            return Err(fail("not an .npy file (missing \\x93NUMPY magic)".into()));
        }
        let (header_len, start) = match bytes[6] {
            1 => (
                usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
                10usize,
            ),
            2 | 3 if bytes.len() >= 12 => {
                let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
                (n as usize, 12)
            }
            v => {
                return Err(fail(format!(
                    "unsupported .npy format version {v}.{}",
                    bytes[7]
                )))
            }
        };
        let header = bytes
            .get(start..start.saturating_add(header_len))
            .ok_or_else(|| fail(format!("header of {header_len} bytes is truncated")))?;
        let header = std::str::from_utf8(header).map_err(|_| fail("header is not text".into()))?;
        for key in ["descr", "fortran_order", "shape"] {
            if header.matches(&format!("'{key}'")).count() > 1 {
                return Err(fail(format!("header has the key '{key}' twice: {header}")));
            }
        }
        let descr = header_value(header, "descr")
            .and_then(|v| v.strip_prefix('\'').and_then(|v| v.split('\'').next()))
            .ok_or_else(|| fail(format!("header has no 'descr': {header}")))?;
        let fortran = header_value(header, "fortran_order")
            .ok_or_else(|| fail(format!("header has no 'fortran_order': {header}")))?;
        if fortran.starts_with("True") {
            return Err(fail("Fortran-order arrays are not supported".into()));
        }
        if !fortran.starts_with("False") {
            return Err(fail(format!(
                "'fortran_order' must be True or False: {header}"
            )));
        }
        let shape =
            parse_shape(header).ok_or_else(|| fail(format!("cannot read 'shape' in {header}")))?;
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| fail("shape overflows".into()))?;
        let body = &bytes[start + header_len..];
        let width = match descr {
            "|u1" | "|i1" | "<u1" | "<i1" => 1,
            "<u2" | "<i2" => 2,
            "<i4" | "<f4" => 4,
            "<i8" | "<f8" => 8,
            other => return Err(fail(format!("unsupported element type '{other}' (expected one of |u1 |i1 <u2 <i2 <i4 <i8 <f4 <f8)"))),
        };
        let need = count
            .checked_mul(width)
            .ok_or_else(|| fail("shape overflows".into()))?;
        if body.len() != need {
            return Err(fail(format!(
                "shape {shape:?} of '{descr}' needs {need} data bytes, found {}",
                body.len()
            )));
        }
        let chunks = |w: usize| body.chunks_exact(w);
        let data = match descr {
            "|u1" | "<u1" => NpyData::U8(body.to_vec()),
            "|i1" | "<i1" => NpyData::I8(body.iter().map(|&b| b as i8).collect()),
            "<u2" => NpyData::U16(
                chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            "<i2" => NpyData::I16(
                chunks(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            "<i4" => NpyData::I32(
                chunks(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            "<f4" => NpyData::F32(
                chunks(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            "<i8" => NpyData::I64(
                chunks(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
            _ => NpyData::F64(
                chunks(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
        };
        Ok(NpyArray { shape, data })
    }

    /// Encodes as `.npy` format version 1.0.
    pub fn to_bytes(&self) -> Vec<u8> {
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        let mut header = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
            self.data.descr()
        );
        // Pad so that the data starts at a multiple of 64 bytes, header ending in '\n'.
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len() + self.data.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        match &self.data {
            NpyData::U8(v) => out.extend_from_slice(v),
            NpyData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
            NpyData::U16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::I16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::I32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::I64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::F64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
        out
    }

    /// Writes an `.npy` file.
    pub fn write(&self, path: &Path) -> Result<(), NpyError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| NpyError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// The text after `'key':` in a header dictionary, trimmed.
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

fn parse_shape(header: &str) -> Option<Vec<usize>> {
    let rest = header_value(header, "shape")?.strip_prefix('(')?;
    let inner = &rest[..rest.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_f32() {
        let a = NpyArray {
            shape: vec![2, 3],
            data: NpyData::F32(vec![1.0, -2.0, 3.5, 0.0, 1e-8, 7.0]),
        };
        let bytes = a.to_bytes();
        assert_eq!((bytes.len() - a.data.len() * 4) % 64, 0);
        assert_eq!(NpyArray::from_bytes(&bytes, "t").unwrap(), a);
    }

    #[test]
    fn one_dimensional_shape_has_trailing_comma() {
        let a = NpyArray {
            shape: vec![4],
            data: NpyData::U16(vec![0, 217, 482, 701]),
        };
        let bytes = a.to_bytes();
        let text = String::from_utf8_lossy(&bytes[10..]);
        assert!(text.contains("'shape': (4,)"), "{text}");
        assert_eq!(NpyArray::from_bytes(&bytes, "t").unwrap(), a);
    }

    fn with_header(header: &str) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[1, 2]);
        bytes
    }

    #[test]
    fn duplicate_header_keys_are_refused() {
        let ok = with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }\n");
        assert!(NpyArray::from_bytes(&ok, "ok.npy").is_ok());
        let twice = with_header(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), 'shape': (1,), }\n",
        );
        let e = NpyArray::from_bytes(&twice, "d.npy").unwrap_err();
        assert!(e.to_string().contains("the key 'shape' twice"), "{e}");
        let odd = with_header("{'descr': '|u1', 'fortran_order': 0, 'shape': (2,), }\n");
        assert!(NpyArray::from_bytes(&odd, "o.npy").is_err());
    }

    #[test]
    fn errors_name_the_file() {
        let e = NpyArray::from_bytes(b"hello", "x.npy").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.npy: not an .npy file (missing \\x93NUMPY magic)"
        );
        let mut bytes = NpyArray {
            shape: vec![3],
            data: NpyData::I32(vec![1, 2, 3]),
        }
        .to_bytes();
        bytes.pop();
        let e = NpyArray::from_bytes(&bytes, "y.npy").unwrap_err();
        assert_eq!(
            e.to_string(),
            "y.npy: shape [3] of '<i4' needs 12 data bytes, found 11"
        );
    }

    proptest! {
        #[test]
        fn mutated_files_never_panic(flips in prop::collection::vec((0usize..200, any::<u8>()), 0..8), cut in 0usize..300) {
            let a = NpyArray { shape: vec![2, 5], data: NpyData::F32((0..10).map(|i| i as f32).collect()) };
            let mut bytes = a.to_bytes();
            for (at, b) in flips {
                if let Some(x) = bytes.get_mut(at) { *x = b; }
            }
            bytes.truncate(cut.min(bytes.len()));
            if let Err(e) = NpyArray::from_bytes(&bytes, "m.npy") {
                prop_assert!(e.to_string().starts_with("m.npy: "));
            }
        }
    }
}
