//! Reconstruction quality of one image against its original: MSE, PSNR and SSIM. Images are
//! CHW f32 slices described by a [`Shape`]; PSNR and SSIM need the data range the pixel values
//! span (e.g. 1.0 for images scaled to [0, 1]), which is stated, never guessed.

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisError, AnalysisResult};
use crate::data::Shape;

/// SSIM's Gaussian window: σ = 1.5 px truncated at 3.5 σ, i.e. 11 taps (Wang et al. 2004).
pub const SSIM_SIGMA_PX: f64 = 1.5;
pub const SSIM_WINDOW_PX: usize = 11;
const SSIM_RADIUS_PX: usize = SSIM_WINDOW_PX / 2;
const SSIM_K1: f64 = 0.01;
const SSIM_K2: f64 = 0.03;

/// The three numbers a reconstruction is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageScores {
    pub mse: f64,
    /// dB; +∞ for identical images.
    pub psnr: f64,
    pub ssim: f64,
}

/// MSE, PSNR and SSIM of `reconstruction` against `original`.
pub fn image_scores(
    original: &[f32],
    reconstruction: &[f32],
    shape: Shape,
    data_range: f32,
) -> AnalysisResult<ImageScores> {
    let mse = mse(original, reconstruction)?;
    Ok(ImageScores {
        mse,
        psnr: psnr_from_mse(mse, data_range)?,
        ssim: ssim(original, reconstruction, shape, data_range)?,
    })
}

/// Mean squared difference over all values (accumulated in f64).
pub fn mse(a: &[f32], b: &[f32]) -> AnalysisResult<f64> {
    check_pair(a, b, a.len())?;
    if a.is_empty() {
        return Err(AnalysisError::Invalid("MSE of empty images".into()));
    }
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    Ok(sum / a.len() as f64)
}

/// Peak signal-to-noise ratio in dB, 10 · log10(range² / MSE), as scikit-image's
/// `peak_signal_noise_ratio` with `data_range`. Identical images give +∞ (as numpy does; note
/// that JSON cannot hold it).
pub fn psnr(a: &[f32], b: &[f32], data_range: f32) -> AnalysisResult<f64> {
    psnr_from_mse(mse(a, b)?, data_range)
}

fn psnr_from_mse(mse: f64, data_range: f32) -> AnalysisResult<f64> {
    let range = checked_range(data_range)?;
    Ok(10.0 * (range * range / mse).log10())
}

/// Mean structural similarity, as scikit-image's `structural_similarity(a, b,
/// data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
/// channel_axis=0)`: local statistics under an 11-tap Gaussian window (σ = 1.5, borders
/// extended by half-sample reflection), the SSIM map averaged over pixels at least 5 px from
/// every border, per channel, then over channels. Both sides need ≥ 11 px (the window).
pub fn ssim(a: &[f32], b: &[f32], shape: Shape, data_range: f32) -> AnalysisResult<f64> {
    check_pair(a, b, shape.len())?;
    let range = checked_range(data_range)?;
    if shape.channels == 0 || shape.height < SSIM_WINDOW_PX || shape.width < SSIM_WINDOW_PX {
        return Err(AnalysisError::Invalid(format!(
            "SSIM needs images of at least {SSIM_WINDOW_PX}×{SSIM_WINDOW_PX} px with a channel, \
             got {shape}"
        )));
    }
    let kernel = gaussian_kernel();
    let (c1, c2) = ((SSIM_K1 * range).powi(2), (SSIM_K2 * range).powi(2));
    let plane = shape.plane_len();
    let total: f64 = a
        .chunks_exact(plane)
        .zip(b.chunks_exact(plane))
        .map(|(x, y)| channel_ssim(x, y, shape.height, shape.width, &kernel, c1, c2))
        .sum();
    Ok(total / shape.channels as f64)
}

fn channel_ssim(
    x: &[f32],
    y: &[f32],
    height: usize,
    width: usize,
    kernel: &[f64],
    c1: f64,
    c2: f64,
) -> f64 {
    let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let y: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
    let product =
        |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(a, b)| a * b).collect() };
    let blur = |image: &[f64]| gaussian_blur(image, height, width, kernel);
    let (ux, uy) = (blur(&x), blur(&y));
    let (uxx, uyy, uxy) = (
        blur(&product(&x, &x)),
        blur(&product(&y, &y)),
        blur(&product(&x, &y)),
    );

    let r = SSIM_RADIUS_PX;
    let mut sum = 0.0;
    for row in r..height - r {
        for col in r..width - r {
            let i = row * width + col;
            let (mx, my) = (ux[i], uy[i]);
            // Population (co)variances, as `use_sample_covariance=False`.
            let (vx, vy, vxy) = (uxx[i] - mx * mx, uyy[i] - my * my, uxy[i] - mx * my);
            let numerator = (2.0 * mx * my + c1) * (2.0 * vxy + c2);
            let denominator = (mx * mx + my * my + c1) * (vx + vy + c2);
            sum += numerator / denominator;
        }
    }
    sum / ((height - 2 * r) * (width - 2 * r)) as f64
}

/// Normalised Gaussian taps exp(−x² / 2σ²), x = −5..=5 (scipy.ndimage's kernel).
fn gaussian_kernel() -> Vec<f64> {
    let r = SSIM_RADIUS_PX as f64;
    let taps: Vec<f64> = (0..SSIM_WINDOW_PX)
        .map(|i| (-(i as f64 - r).powi(2) / (2.0 * SSIM_SIGMA_PX * SSIM_SIGMA_PX)).exp())
        .collect();
    let total: f64 = taps.iter().sum();
    taps.iter().map(|t| t / total).collect()
}

/// Separable correlation with `kernel` along rows, then columns, as scipy.ndimage's
/// `gaussian_filter(mode="reflect")` (…c b a | a b c…).
fn gaussian_blur(image: &[f64], height: usize, width: usize, kernel: &[f64]) -> Vec<f64> {
    let r = kernel.len() / 2;
    let mut along_rows = vec![0.0; image.len()];
    for row in 0..height {
        let line = &image[row * width..(row + 1) * width];
        for col in 0..width {
            along_rows[row * width + col] = kernel
                .iter()
                .enumerate()
                .map(|(t, w)| w * line[reflect(col as isize + t as isize - r as isize, width)])
                .sum();
        }
    }
    let mut out = vec![0.0; image.len()];
    for row in 0..height {
        for col in 0..width {
            out[row * width + col] = kernel
                .iter()
                .enumerate()
                .map(|(t, w)| {
                    w * along_rows
                        [reflect(row as isize + t as isize - r as isize, height) * width + col]
                })
                .sum();
        }
    }
    out
}

/// Half-sample symmetric reflection of `index` into 0..len (period 2·len).
fn reflect(index: isize, len: usize) -> usize {
    let period = 2 * len as isize;
    let folded = index.rem_euclid(period) as usize;
    if folded < len {
        folded
    } else {
        2 * len - 1 - folded
    }
}

fn check_pair(a: &[f32], b: &[f32], expected: usize) -> AnalysisResult<()> {
    for (what, image) in [("original image", a), ("reconstructed image", b)] {
        if image.len() != expected {
            return Err(AnalysisError::LengthMismatch {
                what,
                expected,
                got: image.len(),
            });
        }
        if let Some(row) = image.iter().position(|v| !v.is_finite()) {
            return Err(AnalysisError::NonFinite { what, row });
        }
    }
    Ok(())
}

fn checked_range(data_range: f32) -> AnalysisResult<f64> {
    if !(data_range.is_finite() && data_range > 0.0) {
        return Err(AnalysisError::Invalid(format!(
            "data range must be positive and finite, got {data_range}"
        )));
    }
    Ok(f64::from(data_range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_is_half_sample_symmetric() {
        let mapped: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(mapped, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn kernel_has_eleven_normalised_taps() {
        let kernel = gaussian_kernel();
        assert_eq!(kernel.len(), 11);
        assert!((kernel.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(kernel[0], kernel[10]);
    }
}
