//! Image classification splits stored as two `.npy` files: `<split>_images.npy` (uint8
//! `[N, 3, H, W]`, RGB planar) and `<split>_labels.npy` (uint8 or uint16 `[N]`).

use crate::npy::{NpyArray, NpyData, NpyError};
use crate::resize::bilinear_chw;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a dataset could not be used.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// A file could not be read or decoded.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// The files do not form a dataset split.
    #[error("{path}: {message}")]
    Layout {
        /// The offending file.
        path: PathBuf,
        /// What was expected.
        message: String,
    },
    /// An index past the end of the split.
    #[error("image {index} requested from a split of {len}")]
    Index {
        /// Requested index.
        index: usize,
        /// Number of images.
        len: usize,
    },
}

/// How pixels map to model inputs: `(pixel − mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// Subtracted from each pixel value (0–255).
    pub mean: f32,
    /// Divides the difference.
    pub std: f32,
}

impl Default for Normalization {
    /// `(pixel − 127.5) / 127.5`, the paper models' input convention.
    fn default() -> Self {
        Normalization {
            mean: 127.5,
            std: 127.5,
        }
    }
}

impl Normalization {
    /// Parses `MEAN,STD` (e.g. `127.5,127.5`).
    pub fn parse(text: &str) -> Result<Normalization, String> {
        let (m, s) = text
            .split_once(',')
            .ok_or_else(|| format!("expected MEAN,STD, found `{text}`"))?;
        let mean: f32 = m
            .trim()
            .parse()
            .map_err(|_| format!("bad mean `{m}` in `{text}`"))?;
        let std: f32 = s
            .trim()
            .parse()
            .map_err(|_| format!("bad std `{s}` in `{text}`"))?;
        if !(std.is_finite() && std > 0.0 && mean.is_finite()) {
            return Err(format!(
                "std must be positive and finite, mean finite, in `{text}`"
            ));
        }
        Ok(Normalization { mean, std })
    }
}

/// One split of an image classification dataset, held in memory.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Number of images.
    pub len: usize,
    /// Channels, height and width of each stored image.
    pub chw: [usize; 3],
    images: Vec<u8>,
    labels: Vec<u32>,
}

impl Dataset {
    /// Loads `<dir>/<split>_images.npy` and `<dir>/<split>_labels.npy`.
    pub fn load(dir: &Path, split: &str) -> Result<Dataset, DatasetError> {
        let images_path = dir.join(format!("{split}_images.npy"));
        let labels_path = dir.join(format!("{split}_labels.npy"));
        let images = NpyArray::read(&images_path)?;
        let labels = NpyArray::read(&labels_path)?;
        let NpyData::U8(pixels) = images.data else {
            return Err(DatasetError::Layout {
                path: images_path,
                message: format!("expected uint8 images, found '{}'", images.data.descr()),
            });
        };
        let [n, c, h, w] = images.shape[..] else {
            return Err(DatasetError::Layout {
                path: images_path,
                message: format!("expected shape [N, C, H, W], found {:?}", images.shape),
            });
        };
        if labels.shape.len() != 1 {
            return Err(DatasetError::Layout {
                path: labels_path,
                message: format!(
                    "expected one label per image, shape [N], found {:?}",
                    labels.shape
                ),
            });
        }
        let labels: Vec<u32> = match labels.data {
            NpyData::U8(v) => v.into_iter().map(u32::from).collect(),
            NpyData::U16(v) => v.into_iter().map(u32::from).collect(),
            NpyData::I32(v) if v.iter().all(|&x| x >= 0) => {
                v.into_iter().map(|x| x as u32).collect()
            }
            NpyData::I64(v) if v.iter().all(|&x| (0..=i64::from(u32::MAX)).contains(&x)) => {
                v.into_iter().map(|x| x as u32).collect()
            }
            other => {
                return Err(DatasetError::Layout {
                    path: labels_path,
                    message: format!(
                        "expected non-negative integer labels, found '{}'",
                        other.descr()
                    ),
                })
            }
        };
        if labels.len() != n {
            return Err(DatasetError::Layout {
                path: labels_path,
                message: format!("{} labels for {n} images", labels.len()),
            });
        }
        Ok(Dataset {
            len: n,
            chw: [c, h, w],
            images: pixels,
            labels,
        })
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> Result<u32, DatasetError> {
        self.labels.get(i).copied().ok_or(DatasetError::Index {
            index: i,
            len: self.len,
        })
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Image `i` normalised and resized (bilinear) to `[C, out_h, out_w]`.
    pub fn image(
        &self,
        i: usize,
        out_hw: [usize; 2],
        norm: Normalization,
    ) -> Result<Vec<f32>, DatasetError> {
        if i >= self.len {
            return Err(DatasetError::Index {
                index: i,
                len: self.len,
            });
        }
        let [c, h, w] = self.chw;
        let size = c * h * w;
        let pixels: Vec<f32> = self.images[i * size..(i + 1) * size]
            .iter()
            .map(|&p| (f32::from(p) - norm.mean) / norm.std)
            .collect();
        Ok(bilinear_chw(&pixels, c, h, w, out_hw[0], out_hw[1]).unwrap_or(pixels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_parse() {
        assert_eq!(
            Normalization::parse("0,255").unwrap(),
            Normalization {
                mean: 0.0,
                std: 255.0
            }
        );
        assert!(Normalization::parse("1").is_err());
        assert!(Normalization::parse("1,0").is_err());
    }

    #[test]
    fn loads_a_written_split() {
        let dir = std::env::temp_dir().join(format!("mite-data-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images = NpyArray {
            shape: vec![2, 3, 2, 2],
            data: NpyData::U8((0..24).map(|i| i * 10).collect()),
        };
        images.write(&dir.join("t_images.npy")).unwrap();
        NpyArray {
            shape: vec![2],
            data: NpyData::U8(vec![7, 3]),
        }
        .write(&dir.join("t_labels.npy"))
        .unwrap();
        let d = Dataset::load(&dir, "t").unwrap();
        assert_eq!((d.len, d.label(1).unwrap()), (2, 3));
        let img = d
            .image(
                1,
                [2, 2],
                Normalization {
                    mean: 0.0,
                    std: 1.0,
                },
            )
            .unwrap();
        assert_eq!(img[0], 120.0);
        assert_eq!(
            d.image(0, [4, 4], Normalization::default()).unwrap().len(),
            48
        );
        assert!(matches!(
            d.image(2, [2, 2], Normalization::default()),
            Err(DatasetError::Index { .. })
        ));
        let e = Dataset::load(&dir, "missing").unwrap_err();
        assert!(e.to_string().contains("missing_images.npy"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn shared_splits_load() {
        let Some(dir) = mite_test_support::shared_dir("shared_splits_load") else {
            return;
        };
        let d = Dataset::load(&dir.join("datasets/imagenette"), "val").unwrap();
        assert_eq!((d.len, d.chw), (200, [3, 128, 128]));
        assert!(d.label(0).unwrap() < 1000);
        let c = Dataset::load(&dir.join("datasets/cifar10"), "test").unwrap();
        assert_eq!((c.len, c.chw), (10_000, [3, 32, 32]));
        assert_eq!(
            c.image(0, [128, 128], Normalization::default())
                .unwrap()
                .len(),
            3 * 128 * 128
        );
    }
}
