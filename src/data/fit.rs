//! Bringing members of another size to the ensemble's size: resize or centre crop.
//!
//! Works on raw `f32` CHW values of any range (counts, physical units), which is why the
//! resampler is our own: `image::imageops::resize` clamps float pixels to `[0, 1]`.

use super::{DType, MemberSource, Shape};
use crate::error::{DataError, DataResult};
use std::fmt;
use std::sync::Arc;

/// How to bring a member to `height × width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitMode {
    /// Resample to the target size (bilinear, antialiased when shrinking); the aspect ratio
    /// is not kept.
    Resize { height: usize, width: usize },
    /// Keep the central `height × width` pixels; members smaller than that are an error.
    CenterCrop { height: usize, width: usize },
}

impl FitMode {
    pub fn target_shape(&self, channels: usize) -> Shape {
        match *self {
            FitMode::Resize { height, width } | FitMode::CenterCrop { height, width } => {
                Shape::new(channels, height, width)
            }
        }
    }
}

impl fmt::Display for FitMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FitMode::Resize { height, width } => write!(f, "resize to {height}×{width}"),
            FitMode::CenterCrop { height, width } => write!(f, "centre crop to {height}×{width}"),
        }
    }
}

/// Why an image could not be fitted; the caller names the file or member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub from: Shape,
    pub mode: FitMode,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {}: the image is only {}×{} px",
            self.mode, self.from.height, self.from.width
        )
    }
}

/// Fits one CHW image of shape `from` into `out` (length `mode.target_shape(from.channels)
/// .len()`). Each channel is fitted independently.
pub fn fit_image(
    pixels: &[f32],
    from: Shape,
    mode: FitMode,
    out: &mut [f32],
) -> Result<(), FitError> {
    let to = mode.target_shape(from.channels);
    debug_assert_eq!(pixels.len(), from.len());
    debug_assert_eq!(out.len(), to.len());
    match mode {
        FitMode::CenterCrop { height, width } => {
            if from.height < height || from.width < width {
                return Err(FitError { from, mode });
            }
            let top = (from.height - height) / 2;
            let left = (from.width - width) / 2;
            for (src, dst) in pixels
                .chunks_exact(from.plane_len())
                .zip(out.chunks_exact_mut(to.plane_len()))
            {
                for (row, dst_row) in dst.chunks_exact_mut(width).enumerate() {
                    let start = (top + row) * from.width + left;
                    dst_row.copy_from_slice(&src[start..start + width]);
                }
            }
        }
        FitMode::Resize { height, width } => {
            let rows = Taps::new(from.height, height);
            let cols = Taps::new(from.width, width);
            // Rows first: from.height × from.width → height × from.width → height × width.
            let mut tall = vec![0.0f32; height * from.width];
            for (src, dst) in pixels
                .chunks_exact(from.plane_len())
                .zip(out.chunks_exact_mut(to.plane_len()))
            {
                for (y, tall_row) in tall.chunks_exact_mut(from.width).enumerate() {
                    tall_row.fill(0.0);
                    for &(sy, weight) in rows.of(y) {
                        let src_row = &src[sy * from.width..(sy + 1) * from.width];
                        for (t, &s) in tall_row.iter_mut().zip(src_row) {
                            *t += weight * s;
                        }
                    }
                }
                for (tall_row, dst_row) in tall
                    .chunks_exact(from.width)
                    .zip(dst.chunks_exact_mut(width))
                {
                    for (x, d) in dst_row.iter_mut().enumerate() {
                        *d = cols.of(x).iter().map(|&(sx, w)| w * tall_row[sx]).sum();
                    }
                }
            }
        }
    }
    Ok(())
}

/// Resampling weights along one axis: a triangle (tent) filter, which is bilinear
/// interpolation when enlarging and widens to average every source pixel when shrinking
/// (as Pillow's BILINEAR does), so shrinking does not alias.
struct Taps {
    /// `starts[o]..starts[o + 1]` indexes the taps of output position `o`.
    starts: Vec<usize>,
    taps: Vec<(usize, f32)>,
}

impl Taps {
    fn new(from_px: usize, to_px: usize) -> Self {
        let scale = from_px as f64 / to_px as f64;
        let radius = scale.max(1.0);
        let mut starts = Vec::with_capacity(to_px + 1);
        let mut taps = Vec::new();
        for o in 0..to_px {
            starts.push(taps.len());
            let centre = (o as f64 + 0.5) * scale;
            let first = (centre - radius).floor().max(0.0) as usize;
            let last = ((centre + radius).ceil() as usize).min(from_px);
            let begin = taps.len();
            for i in first..last {
                let weight = 1.0 - ((i as f64 + 0.5 - centre) / radius).abs();
                if weight > 0.0 {
                    taps.push((i, weight));
                }
            }
            let total: f64 = taps[begin..].iter().map(|&(_, w)| w).sum();
            for tap in &mut taps[begin..] {
                tap.1 /= total;
            }
        }
        starts.push(taps.len());
        let taps = taps.into_iter().map(|(i, w)| (i, w as f32)).collect();
        Self { starts, taps }
    }

    fn of(&self, o: usize) -> &[(usize, f32)] {
        &self.taps[self.starts[o]..self.starts[o + 1]]
    }
}

/// A source whose members are fitted to one size on read.
pub struct FittedSource {
    inner: Arc<dyn MemberSource>,
    mode: FitMode,
}

impl FittedSource {
    pub fn new(inner: Arc<dyn MemberSource>, mode: FitMode) -> Self {
        Self { inner, mode }
    }
}

impl MemberSource for FittedSource {
    fn origin(&self) -> String {
        self.inner.origin()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn shape(&self) -> Shape {
        self.mode.target_shape(self.inner.shape().channels)
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn member_id(&self, index: usize) -> String {
        self.inner.member_id(index)
    }
    fn read_f32(&self, index: usize, out: &mut [f32]) -> DataResult<()> {
        let from = self.inner.shape();
        let mut full = vec![0.0; from.len()];
        self.inner.read_f32(index, &mut full)?;
        fit_image(&full, from, self.mode, out).map_err(|e| {
            DataError::new(
                self.inner.origin(),
                format!("member {}: {e}", self.inner.member_id(index)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_crop_keeps_the_middle_of_each_channel() {
        // Two 4×4 channels holding 0..16 and 100..116.
        let pixels: Vec<f32> = (0..16).chain(100..116).map(|v| v as f32).collect();
        let mut out = vec![0.0; 2 * 2 * 2];
        let mode = FitMode::CenterCrop {
            height: 2,
            width: 2,
        };
        fit_image(&pixels, Shape::new(2, 4, 4), mode, &mut out).unwrap();
        assert_eq!(out, [5.0, 6.0, 9.0, 10.0, 105.0, 106.0, 109.0, 110.0]);
    }

    #[test]
    fn centre_crop_larger_than_the_image_is_an_error() {
        let mode = FitMode::CenterCrop {
            height: 5,
            width: 2,
        };
        let err = fit_image(&[0.0; 16], Shape::new(1, 4, 4), mode, &mut [0.0; 10]).unwrap_err();
        assert!(err.to_string().contains("only 4×4"), "{err}");
    }

    #[test]
    fn resize_keeps_constants_and_raw_ranges() {
        // Values far outside [0, 1] must survive (no clamping).
        let mut out = vec![0.0; 3 * 5];
        let mode = FitMode::Resize {
            height: 3,
            width: 5,
        };
        fit_image(&[4000.0; 64], Shape::new(1, 8, 8), mode, &mut out).unwrap();
        assert!(out.iter().all(|&v| (v - 4000.0).abs() < 1e-2), "{out:?}");
    }

    #[test]
    fn resize_halving_averages_pixel_pairs_and_doubling_interpolates() {
        // Halving a linear ramp with a tent filter of radius 2 weights (1,3,3,1)/8.
        let ramp: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let mut half = vec![0.0; 4];
        let mode = FitMode::Resize {
            height: 1,
            width: 4,
        };
        fit_image(&ramp, Shape::new(1, 1, 8), mode, &mut half).unwrap();
        // Interior outputs are the pair means of a linear ramp; edges are renormalised.
        assert!(
            (half[1] - 2.5).abs() < 1e-5 && (half[2] - 4.5).abs() < 1e-5,
            "{half:?}"
        );

        let mut double = vec![0.0; 4];
        let mode = FitMode::Resize {
            height: 1,
            width: 4,
        };
        fit_image(&[0.0, 8.0], Shape::new(1, 1, 2), mode, &mut double).unwrap();
        // Output centres at source coordinates 0.25, 0.75, 1.25, 1.75 (pixel centres 0.5, 1.5).
        assert_eq!(double, [0.0, 2.0, 6.0, 8.0]);
    }
}
