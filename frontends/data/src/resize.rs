//! Bilinear resizing of planar (CHW) images.
//!
//! Sampling uses half-pixel centres (`src = (dst + 0.5) · in / out − 0.5`, clamped to the edge),
//! the convention of OpenCV's `INTER_LINEAR` and PyTorch's `align_corners=False`, without
//! antialiasing. Equal sizes copy the image unchanged.

/// Resizes a `[c, h, w]` image of `f32` values to `[c, out_h, out_w]`.
///
/// Returns `None` when `src` does not hold `c · h · w` values or a size is zero.
pub fn bilinear_chw(
    src: &[f32],
    c: usize,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Option<Vec<f32>> {
    if src.len() != c * h * w || h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        return None;
    }
    if (h, w) == (out_h, out_w) {
        return Some(src.to_vec());
    }
    let ys = taps(h, out_h);
    let xs = taps(w, out_w);
    let mut out = Vec::with_capacity(c * out_h * out_w);
    for plane in src.chunks_exact(h * w) {
        for &(y0, y1, fy) in &ys {
            for &(x0, x1, fx) in &xs {
                let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
                let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    Some(out)
}

/// For each output index: the two source indices and the weight of the second.
fn taps(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|o| {
            let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            (i0, i1, (s - i0 as f64) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_constant() {
        let img: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(bilinear_chw(&img, 1, 3, 4, 3, 4).unwrap(), img);
        let flat = vec![5.0; 2 * 4 * 4];
        assert!(bilinear_chw(&flat, 2, 4, 4, 7, 9)
            .unwrap()
            .iter()
            .all(|&v| (v - 5.0).abs() < 1e-6));
    }

    #[test]
    fn upsample_two_by_two() {
        // 1x2 -> 1x4 with half-pixel centres: 0, 0.25, 0.75, 1 of the way.
        let out = bilinear_chw(&[0.0, 4.0], 1, 1, 2, 1, 4).unwrap();
        assert_eq!(out, vec![0.0, 1.0, 3.0, 4.0]);
    }

    #[test]
    fn bad_sizes() {
        assert!(bilinear_chw(&[1.0; 3], 1, 2, 2, 4, 4).is_none());
        assert!(bilinear_chw(&[], 1, 0, 2, 4, 4).is_none());
    }
}
