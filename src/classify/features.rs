//! Raw-pixel features of members, for when no trained model exists yet: each member
//! average-pooled to at most 32 px a side, then PCA to 50 components. The app's first map and
//! label spreading before training both use them.

use ndarray::{Array2, Axis, s};
use rayon::prelude::*;

use super::error::{ClassifyError, ClassifyResult};
use crate::data::{Ensemble, Shape};
use crate::error::DataError;
use crate::projection::Pca;
use crate::task::TaskControl;

/// Members are shrunk to at most this side before PCA.
pub const PIXEL_FEATURE_SIDE_PX: usize = 32;
/// Principal components kept.
pub const PIXEL_FEATURE_COMPONENTS: usize = 50;
/// The PCA is fitted on at most this many members (evenly spaced): more changes the
/// components little and would hold a 135K-member ensemble's pooled pixels in memory at once.
const FIT_MAX_MEMBERS: usize = 20_000;
/// Members pooled and projected per step of [`PixelFeatures::transform`].
const CHUNK_MEMBERS: usize = 4096;

/// A fitted pooling + PCA, to apply to any member of the same shape.
#[derive(Debug, Clone)]
pub struct PixelFeatures {
    pooling: Pooling,
    pca: Pca,
}

impl PixelFeatures {
    /// Fits on `members` of `ensemble` (at most 20,000 of them, evenly spaced) and returns the
    /// features of all `members`, one row each.
    pub fn fit_transform(
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<(Self, Array2<f32>)> {
        let pooling = Pooling::for_shape(ensemble.shape());
        let components = PIXEL_FEATURE_COMPONENTS
            .min(pooling.dim())
            .min(members.len().saturating_sub(1));
        if components < 2 {
            return Err(ClassifyError::Invalid(format!(
                "{}: {} members are too few for pixel features",
                ensemble.origin(),
                members.len()
            )));
        }
        let stride = members.len().div_ceil(FIT_MAX_MEMBERS).max(1);
        let fit_members: Vec<usize> = members.iter().copied().step_by(stride).collect();
        let pixels = pooling.pixels(ensemble, &fit_members, control)?;
        let pca = Pca::fit(pixels.view(), components, control).map_err(analysis)?;
        let features = Self { pooling, pca };
        let rows = match stride {
            1 => features.pca.transform(pixels.view()).map_err(analysis)?,
            _ => features.transform(ensemble, members, control)?,
        };
        Ok((features, rows))
    }

    /// Features of `members` of `ensemble`, which must have the shape fitted on.
    pub fn transform(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<Array2<f32>> {
        if ensemble.shape() != self.pooling.member_shape {
            return Err(DataError::new(
                ensemble.origin(),
                format!(
                    "members are {}, but the pixel features were fitted on {}",
                    ensemble.shape(),
                    self.pooling.member_shape
                ),
            )
            .into());
        }
        let mut out = Array2::<f32>::zeros((members.len(), self.pca.n_components()));
        for (chunk, rows) in members.chunks(CHUNK_MEMBERS).enumerate() {
            let pixels = self.pooling.pixels(ensemble, rows, control)?;
            let first = chunk * CHUNK_MEMBERS;
            out.slice_mut(s![first..first + rows.len(), ..])
                .assign(&self.pca.transform(pixels.view()).map_err(analysis)?);
            control.report("pixel features", first + rows.len(), members.len());
        }
        Ok(out)
    }
}

/// Block averaging of members of one shape down to at most 32 px a side.
#[derive(Debug, Clone, Copy)]
struct Pooling {
    member_shape: Shape,
    /// Side of the pooled blocks, in pixels.
    factor: usize,
    /// Pooled height and width.
    pooled: (usize, usize),
}

impl Pooling {
    fn for_shape(member_shape: Shape) -> Self {
        let factor = member_shape
            .height
            .max(member_shape.width)
            .div_ceil(PIXEL_FEATURE_SIDE_PX)
            .max(1);
        Self {
            member_shape,
            factor,
            pooled: (
                member_shape.height.div_ceil(factor),
                member_shape.width.div_ceil(factor),
            ),
        }
    }

    fn dim(&self) -> usize {
        self.member_shape.channels * self.pooled.0 * self.pooled.1
    }

    /// Pooled pixels of `members`, one row each.
    fn pixels(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<Array2<f32>> {
        let shape = self.member_shape;
        let mut data = Array2::<f32>::zeros((members.len(), self.dim()));
        data.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(members.par_iter())
            .try_for_each_init(
                || vec![0.0f32; shape.len()],
                |values, (mut row, &member)| -> ClassifyResult<()> {
                    control.check()?;
                    ensemble.source.read_f32(member, values)?;
                    let out = row
                        .as_slice_mut()
                        .ok_or_else(|| ClassifyError::Failed("pooled row not contiguous".into()))?;
                    pool_into(values, shape, self.factor, self.pooled, out);
                    Ok(())
                },
            )?;
        Ok(data)
    }
}

fn analysis(e: crate::analysis::AnalysisError) -> ClassifyError {
    match e {
        crate::analysis::AnalysisError::Cancelled => ClassifyError::Cancelled,
        other => ClassifyError::Invalid(other.to_string()),
    }
}

/// Mean of each `factor`×`factor` block (partial blocks at the edges averaged over what
/// exists), NaN treated as 0 so a bad pixel cannot poison the features.
fn pool_into(values: &[f32], shape: Shape, factor: usize, (h, w): (usize, usize), out: &mut [f32]) {
    let plane = shape.height * shape.width;
    for c in 0..shape.channels {
        for oy in 0..h {
            for ox in 0..w {
                let (mut sum, mut count) = (0.0f32, 0u32);
                for y in oy * factor..((oy + 1) * factor).min(shape.height) {
                    for x in ox * factor..((ox + 1) * factor).min(shape.width) {
                        let v = values[c * plane + y * shape.width + x];
                        sum += if v.is_finite() { v } else { 0.0 };
                        count += 1;
                    }
                }
                if let Some(slot) = out.get_mut(c * h * w + oy * w + ox) {
                    *slot = sum / count.max(1) as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_averages_blocks_and_partial_edges() {
        let shape = Shape::new(1, 3, 3);
        let values: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut out = vec![0.0; 4];
        pool_into(&values, shape, 2, (2, 2), &mut out);
        assert_eq!(out, [3.0, 4.5, 7.5, 9.0]);
    }

    #[test]
    fn features_of_a_subsampled_fit_match_a_separate_transform() {
        let ensemble = crate::samples::open("channels").unwrap();
        let members: Vec<usize> = (0..300).collect();
        let control = TaskControl::new();
        let (features, rows) = PixelFeatures::fit_transform(&ensemble, &members, &control).unwrap();
        assert_eq!(rows.dim(), (300, PIXEL_FEATURE_COMPONENTS));
        let again = features
            .transform(&ensemble, &members[10..20], &control)
            .unwrap();
        for (a, b) in again.iter().zip(rows.slice(s![10..20, ..]).iter()) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
        let cancelled = TaskControl::new();
        cancelled.cancel();
        assert!(matches!(
            features.transform(&ensemble, &members, &cancelled),
            Err(ClassifyError::Cancelled)
        ));
    }
}
