//! The input gradient of a convolution with an `i8` weight written over its operand `dy`:
//! bit-identical to [`super::conv2d_backward_input_int8`] (every element is the same sum in
//! the same order), with a small scratch instead of a second activation-sized buffer.
//!
//! Two shapes qualify ([`InPlaceConv::of`]):
//! - depthwise with `dx` planes the size of `dy` planes: `dx` of channel `c` only reads `dy` of
//!   channel `c`, so it is computed into a one-plane scratch and copied over `dy[c]`;
//! - pointwise (1×1, unit stride, no padding, one group) with `c_in <= c_out`: pixel by pixel,
//!   `dy[b, :, p]` is copied into a `c_out` scratch and `dx[b, :, p]` computed from it. `dx`
//!   occupies the buffer's first `input_len` elements; element `(b, ic, p)` lands on a `dy`
//!   element of an earlier batch or on `dy[b, oc <= ic, p]` of the same pixel, both already read.

use crate::error::{check_len, KernelError};
use crate::geometry::Conv2dGeometry;
use crate::int8::PerAxis;

use super::conv::{backward_input_with, int8_weight};

/// Which in-place order a convolution's input gradient can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InPlaceConv {
    /// Depthwise, `dx` and `dy` planes of the same size: scratch of one plane.
    Depthwise,
    /// Pointwise with `c_in <= c_out`: scratch of `c_out` elements.
    Pointwise,
}

impl InPlaceConv {
    /// The in-place order `g` admits, if any.
    pub fn of(g: &Conv2dGeometry) -> Option<Self> {
        if g.is_depthwise() && g.in_hw() == g.out_hw() {
            Some(Self::Depthwise)
        } else if g.is_pointwise() && g.c_in() <= g.c_out() {
            Some(Self::Pointwise)
        } else {
            None
        }
    }

    /// Elements of the `f32` scratch it needs.
    pub fn scratch_len(self, g: &Conv2dGeometry) -> usize {
        match self {
            Self::Depthwise => g.in_plane(),
            Self::Pointwise => g.c_out(),
        }
    }
}

/// [`super::conv2d_backward_input_int8`] in place: `buf` holds `dy` (`output_len` elements) on
/// entry and `dx` in its first `input_len` elements on return (the rest, if any, is left
/// unspecified). `scratch` needs [`InPlaceConv::scratch_len`] elements.
pub fn conv2d_backward_input_int8_in_place(
    buf: &mut [f32],
    w: &[i8],
    p: &PerAxis<'_>,
    scratch: &mut [f32],
    g: &Conv2dGeometry,
) -> Result<(), KernelError> {
    let kind = InPlaceConv::of(g).ok_or(KernelError::Geometry(
        "in-place conv2d input gradient needs a depthwise conv with equal planes or a \
         pointwise conv with c_in <= c_out",
    ))?;
    check_len("conv2d grad_output", g.output_len(), buf.len())?;
    check_len("conv2d weight", g.weight_len(), w.len())?;
    let needed = kind.scratch_len(g);
    if scratch.len() < needed {
        return Err(KernelError::Scratch {
            needed,
            found: scratch.len(),
        });
    }
    let weight = int8_weight(w, p);
    match kind {
        InPlaceConv::Depthwise => depthwise(buf, &weight, &mut scratch[..needed], g),
        InPlaceConv::Pointwise => {
            pointwise(buf, &weight, &mut scratch[..needed], g);
            Ok(())
        }
    }
}

/// The depthwise order: each plane through the out-of-place kernel on a one-channel geometry.
fn depthwise(
    buf: &mut [f32],
    weight: &impl Fn(usize) -> f32,
    plane_scratch: &mut [f32],
    g: &Conv2dGeometry,
) -> Result<(), KernelError> {
    let plane = g.in_plane();
    if plane == 0 {
        return Ok(());
    }
    let one = Conv2dGeometry::new(1, 1, g.in_hw(), 1, 1, g.window())?;
    let taps = g.window().kernel[0] * g.window().kernel[1];
    for (i, dy) in buf.chunks_exact_mut(plane).enumerate() {
        let base = (i % g.c_in()) * taps;
        backward_input_with(dy, plane_scratch, &one, |t| weight(base + t))?;
        dy.copy_from_slice(plane_scratch);
    }
    Ok(())
}

/// The pointwise order: `dx[b, ic, p] = 0 + Σ_oc w[oc, ic] · dy[b, oc, p]`, `oc` ascending (the
/// out-of-place kernel's order).
fn pointwise(
    buf: &mut [f32],
    weight: &impl Fn(usize) -> f32,
    column: &mut [f32],
    g: &Conv2dGeometry,
) {
    let (plane, c_in, c_out) = (g.in_plane(), g.c_in(), g.c_out());
    for b in 0..g.n() {
        for px in 0..plane {
            for (oc, v) in column.iter_mut().enumerate() {
                *v = buf[(b * c_out + oc) * plane + px];
            }
            for ic in 0..c_in {
                let mut acc = 0.0_f32;
                for (oc, &dy) in column.iter().enumerate() {
                    acc += weight(oc * c_in + ic) * dy;
                }
                buf[(b * c_in + ic) * plane + px] = acc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::float::conv2d_backward_input_int8;
    use crate::geometry::Window2d;

    /// Runs both kernels on the same pseudo-random data; returns (out-of-place, in-place prefix).
    fn both(g: &Conv2dGeometry, per_channel: bool, seed: u32) -> (Vec<u32>, Vec<u32>) {
        let mut s = seed | 1;
        let mut next = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s >> 8
        };
        let dy: Vec<f32> = (0..g.output_len())
            .map(|_| next() as f32 / 16_777_216.0 - 0.5)
            .collect();
        let w: Vec<i8> = (0..g.weight_len()).map(|_| next() as u8 as i8).collect();
        let channels = if per_channel { g.c_out() } else { 1 };
        let scales: Vec<f32> = (0..channels)
            .map(|_| (next() % 1000 + 1) as f32 / 7919.0)
            .collect();
        let zps: Vec<i8> = (0..channels).map(|_| next() as u8 as i8).collect();
        let p = PerAxis::new(&scales, &zps, g.weight_len() / g.c_out()).unwrap();
        let mut expect = vec![0.0; g.input_len()];
        conv2d_backward_input_int8(&dy, &w, &p, &mut expect, g).unwrap();
        let mut buf = dy;
        let kind = InPlaceConv::of(g).unwrap();
        let mut scratch = vec![7.0; kind.scratch_len(g)];
        conv2d_backward_input_int8_in_place(&mut buf, &w, &p, &mut scratch, g).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect();
        (bits(&expect), bits(&buf[..g.input_len()]))
    }

    proptest! {
        /// Depthwise in place equals the out-of-place kernel bit for bit.
        #[test]
        fn depthwise_matches(n in 1..3_usize, c in 1..5_usize, h in 1..7_usize, w in 1..7_usize, k in 1..4_usize, dil in 1..3_usize, per_channel in any::<bool>(), seed in any::<u32>()) {
            // Padding `dil·(k−1)` in total keeps the planes the same size at stride 1.
            let pad = dil * (k - 1);
            let window = Window2d { kernel: [k, k], strides: [1, 1], pads: [pad / 2, pad / 2, pad - pad / 2, pad - pad / 2], dilations: [dil, dil] };
            let Ok(g) = Conv2dGeometry::new(n, c, [h, w], c, c, window) else { return Ok(()) };
            prop_assert_eq!(InPlaceConv::of(&g), Some(InPlaceConv::Depthwise));
            let (expect, got) = both(&g, per_channel, seed);
            prop_assert_eq!(got, expect);
        }

        /// Pointwise in place (c_in <= c_out) equals the out-of-place kernel bit for bit.
        #[test]
        fn pointwise_matches(n in 1..3_usize, c_in in 1..6_usize, extra in 0..5_usize, h in 1..5_usize, w in 1..5_usize, per_channel in any::<bool>(), seed in any::<u32>()) {
            let window = Window2d { kernel: [1, 1], strides: [1, 1], pads: [0; 4], dilations: [1, 1] };
            let g = Conv2dGeometry::new(n, c_in, [h, w], c_in + extra, 1, window).unwrap();
            // 1 → 1 channel is also depthwise; either order is exact.
            prop_assert!(InPlaceConv::of(&g).is_some());
            let (expect, got) = both(&g, per_channel, seed);
            prop_assert_eq!(got, expect);
        }
    }

    #[test]
    fn rejects_other_shapes() {
        let window = Window2d {
            kernel: [3, 3],
            strides: [2, 2],
            pads: [1; 4],
            dilations: [1, 1],
        };
        let strided = Conv2dGeometry::new(1, 4, [8, 8], 4, 4, window).unwrap();
        assert_eq!(InPlaceConv::of(&strided), None);
        let pw = Window2d {
            kernel: [1, 1],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
        };
        let narrowing = Conv2dGeometry::new(1, 8, [2, 2], 4, 1, pw).unwrap();
        assert_eq!(InPlaceConv::of(&narrowing), None);
        let mut buf = vec![0.0; narrowing.output_len()];
        let p = PerAxis::new(&[1.0], &[], 8).unwrap();
        let err =
            conv2d_backward_input_int8_in_place(&mut buf, &[0; 32], &p, &mut [0.0; 8], &narrowing);
        assert!(matches!(err, Err(KernelError::Geometry(_))));
        let dw = Conv2dGeometry::new(1, 2, [2, 2], 2, 2, pw).unwrap();
        let mut buf = vec![0.0; 8];
        let err = conv2d_backward_input_int8_in_place(&mut buf, &[0; 2], &p, &mut [0.0; 3], &dw);
        assert_eq!(
            err,
            Err(KernelError::Scratch {
                needed: 4,
                found: 3
            })
        );
    }
}
