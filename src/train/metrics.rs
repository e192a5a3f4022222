//! Validation image quality in data units: PSNR and SSIM after undoing the normalisation, with
//! the data range taken from the training statistics.

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::{Normalization, Shape};
use crate::nn::losses::{SsimConfig, ssim};

/// Running sums over the validation set.
#[derive(Debug, Default, Clone)]
pub struct QualityAccumulator {
    psnr_sum_db: f64,
    psnr_count: u64,
    ssim_sum: f64,
    ssim_count: u64,
    sq_err_sum: f64,
    baseline_sq_err_sum: f64,
    values: u64,
}

/// Final validation quality figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub psnr_db: f64,
    pub ssim: f64,
    /// MSE in normalised units.
    pub mse: f64,
    /// MSE of the training mean image, normalised units.
    pub baseline_mse: Option<f64>,
}

/// Data range of each channel in data units, from the training min and max.
pub fn channel_ranges(norm: &Normalization) -> Vec<f64> {
    norm.channels
        .iter()
        .map(|stats| {
            let pre = norm.config.pre;
            let lo = f64::from(pre.inverse(stats.min as f32));
            let hi = f64::from(pre.inverse(stats.max as f32));
            let range = hi - lo;
            if range.is_finite() && range > 0.0 {
                range
            } else {
                1.0
            }
        })
        .collect()
}

impl QualityAccumulator {
    /// Adds one batch. `original` and `recon` are normalised `[B, C, H, W]` values;
    /// `mean_image` (normalised, one sample) feeds the baseline.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        original: &[f32],
        recon: &[f32],
        shape: [usize; 4],
        norm: &Normalization,
        ranges: &[f64],
        mean_image: Option<&[f32]>,
        device: &Device,
    ) {
        let [batch, channels, height, width] = shape;
        let sample = Shape::new(channels, height, width);
        let sample_len = sample.len();
        let plane = height * width;

        for (x, y) in original.iter().zip(recon) {
            self.sq_err_sum += f64::from(x - y).powi(2);
        }
        self.values += original.len() as u64;
        if let Some(mean) = mean_image {
            for x in original.chunks_exact(sample_len) {
                for (v, m) in x.iter().zip(mean) {
                    self.baseline_sq_err_sum += f64::from(v - m).powi(2);
                }
            }
        }

        // Back to data units.
        let mut x_data = original.to_vec();
        let mut y_data = recon.to_vec();
        for (x, y) in x_data
            .chunks_exact_mut(sample_len)
            .zip(y_data.chunks_exact_mut(sample_len))
        {
            norm.invert(x, sample);
            norm.invert(y, sample);
        }

        // PSNR per sample and channel.
        for (x, y) in x_data
            .chunks_exact(sample_len)
            .zip(y_data.chunks_exact(sample_len))
        {
            for (c, range) in ranges.iter().enumerate().take(channels) {
                let xs = &x[c * plane..(c + 1) * plane];
                let ys = &y[c * plane..(c + 1) * plane];
                let mse = xs
                    .iter()
                    .zip(ys)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .filter(|e| e.is_finite())
                    .sum::<f64>()
                    / plane as f64;
                // A perfect reconstruction would be infinite dB: cap at 1e-10 of the range².
                let mse = mse.max(range * range * 1e-10);
                self.psnr_sum_db += 10.0 * (range * range / mse).log10();
                self.psnr_count += 1;
            }
        }

        // SSIM per channel with that channel's range.
        for (c, range) in ranges.iter().enumerate().take(channels) {
            let channel = |data: &[f32]| {
                let values: Vec<f32> = data
                    .chunks_exact(sample_len)
                    .flat_map(|s| s[c * plane..(c + 1) * plane].iter().copied())
                    .collect();
                Tensor::<4>::from_data(TensorData::new(values, [batch, 1, height, width]), device)
            };
            let config = SsimConfig {
                data_range: *range,
                ..SsimConfig::default()
            };
            let value =
                ssim(channel(&x_data), channel(&y_data), &config).into_scalar::<f32>() as f64;
            if value.is_finite() {
                self.ssim_sum += value * batch as f64;
                self.ssim_count += batch as u64;
            }
        }
    }

    pub fn finish(&self, with_baseline: bool) -> Option<Quality> {
        if self.values == 0 {
            return None;
        }
        let n = self.values as f64;
        Some(Quality {
            psnr_db: self.psnr_sum_db / self.psnr_count.max(1) as f64,
            ssim: self.ssim_sum / self.ssim_count.max(1) as f64,
            mse: self.sq_err_sum / n,
            baseline_mse: with_baseline.then_some(self.baseline_sq_err_sum / n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{NormalizationConfig, transform::ChannelStats};

    fn identity_norm() -> Normalization {
        Normalization {
            config: NormalizationConfig::default(),
            channels: vec![ChannelStats {
                count: 1,
                mean: 0.0,
                std: 1.0,
                min: 0.0,
                max: 2.0,
            }],
            fitted_members: 1,
            skipped_values: 0,
        }
    }

    #[test]
    fn psnr_matches_its_definition_and_perfect_ssim_is_one() {
        let norm = identity_norm();
        let ranges = channel_ranges(&norm);
        assert_eq!(ranges, vec![2.0]);
        let x: Vec<f32> = (0..2 * 16 * 16).map(|i| (i % 7) as f32 * 0.25).collect();
        let y: Vec<f32> = x.iter().map(|v| v + 0.1).collect();
        let device = Device::flex();
        let mut acc = QualityAccumulator::default();
        acc.add(
            &x,
            &y,
            [2, 1, 16, 16],
            &norm,
            &ranges,
            Some(&x[..256]),
            &device,
        );
        let q = acc.finish(true).unwrap();
        let expected = 10.0 * (4.0f64 / 0.01).log10();
        assert!((q.psnr_db - expected).abs() < 1e-3, "{q:?}");
        assert!((q.mse - 0.01).abs() < 1e-6);
        let mut same = QualityAccumulator::default();
        same.add(&x, &x, [2, 1, 16, 16], &norm, &ranges, None, &device);
        assert!((same.finish(false).unwrap().ssim - 1.0).abs() < 1e-4);
    }
}
