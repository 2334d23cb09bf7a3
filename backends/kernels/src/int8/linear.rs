//! int8 fully connected layer (TFLite `FullyConnected`, per-tensor or per-channel).

use crate::error::{check_len, KernelError};
use crate::geometry::LinearGeometry;
use crate::requant::OutputStage;

use super::conv::BiasAdd;
use super::{check_zero_points, zero_point_of};

/// The parameters of [`linear_int8`], computed once on the host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearInt8Params<'a> {
    /// Geometry.
    pub geometry: LinearGeometry,
    /// Input zero point.
    pub x_zero_point: i8,
    /// Weight zero points: empty, one, or one per output feature.
    pub w_zero_points: &'a [i8],
    /// Requantization, output zero point and clamp.
    pub out: OutputStage<'a>,
    /// How the bias is added.
    pub bias_add: BiasAdd,
}

impl<'a> LinearInt8Params<'a> {
    /// Checks and bundles the parameters.
    pub fn new(
        geometry: LinearGeometry,
        x_zero_point: i8,
        w_zero_points: &'a [i8],
        out: OutputStage<'a>,
    ) -> Result<Self, KernelError> {
        check_zero_points(w_zero_points, geometry.out_features())?;
        out.check(geometry.out_features())?;
        Ok(Self {
            geometry,
            x_zero_point,
            w_zero_points,
            out,
            bias_add: BiasAdd::for_rounding(out.requant.rounding()),
        })
    }
}

/// `y[n,m] = clamp(requant_m(Σ_k (x[n,k] − z_x)·(w[m,k] − z_w[m]) + bias[m]) + z_y)`: `x`
/// `[N, K]`, `w` `[M, K]`, `bias` `[M]`, `out` `[N, M]`.
pub fn linear_int8(
    x: &[i8],
    w: &[i8],
    bias: Option<&[i32]>,
    out: &mut [i8],
    p: &LinearInt8Params<'_>,
) -> Result<(), KernelError> {
    let (n, k, m) = (
        p.geometry.batch(),
        p.geometry.in_features(),
        p.geometry.out_features(),
    );
    check_len("linear x", n * k, x.len())?;
    check_len("linear w", m * k, w.len())?;
    check_len("linear out", n * m, out.len())?;
    if let Some(b) = bias {
        check_len("linear bias", m, b.len())?;
    }
    check_zero_points(p.w_zero_points, m)?;
    p.out.check(m)?;
    if k == 0 {
        for (i, y) in out.iter_mut().enumerate() {
            let o = i % m;
            *y = p.out.finish(p.bias_add.add(0, bias.map_or(0, |b| b[o])), o);
        }
        return Ok(());
    }
    let zx = i32::from(p.x_zero_point);
    for (row, y) in x.chunks_exact(k).zip(out.chunks_exact_mut(m.max(1))) {
        for (o, (yv, wr)) in y.iter_mut().zip(w.chunks_exact(k)).enumerate() {
            let zw = zero_point_of(p.w_zero_points, o);
            let acc = row.iter().zip(wr).fold(0_i32, |acc, (&xv, &wv)| {
                acc.wrapping_add((i32::from(xv) - zx).wrapping_mul(i32::from(wv) - zw))
            });
            *yv = p
                .out
                .finish(p.bias_add.add(acc, bias.map_or(0, |b| b[o])), o);
        }
    }
    Ok(())
}
