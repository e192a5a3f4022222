//! Reconstruction losses: MSE and a differentiable SSIM.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// How reconstructions are scored.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ReconstructionLoss {
    /// Mean squared error over all pixels and channels.
    #[default]
    Mse,
    /// α·MSE + (1 − α)·(1 − SSIM).
    MseSsim {
        alpha: f64,
        #[serde(default)]
        ssim: SsimConfig,
    },
}

impl ReconstructionLoss {
    /// `recon`, `target`: `[batch, channels, height, width]`. Returns `[1]`.
    pub fn compute(&self, recon: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
        match self {
            Self::Mse => mse(recon, target),
            Self::MseSsim { alpha, ssim } => mse_ssim(recon, target, *alpha, ssim),
        }
    }
}

/// Structural similarity (Wang et al. 2004) with a Gaussian window, computed per channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SsimConfig {
    /// Side of the Gaussian window (odd). Images smaller than it use the largest odd window
    /// that fits.
    pub window_px: usize,
    pub sigma_px: f64,
    /// Dynamic range L of the values (C1 = (k1·L)², C2 = (k2·L)²). Inputs are standardised, so
    /// set it to the spread of the normalised data (e.g. max − min); 1.0 suits data in [0, 1].
    pub data_range: f64,
    pub k1: f64,
    pub k2: f64,
}

impl Default for SsimConfig {
    fn default() -> Self {
        Self {
            window_px: 11,
            sigma_px: 1.5,
            data_range: 1.0,
            k1: 0.01,
            k2: 0.03,
        }
    }
}

/// Mean squared error. Returns `[1]`.
pub fn mse<const D: usize>(recon: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    (recon - target).square().mean()
}

/// α·MSE + (1 − α)·(1 − SSIM). Returns `[1]`.
pub fn mse_ssim(recon: Tensor<4>, target: Tensor<4>, alpha: f64, config: &SsimConfig) -> Tensor<1> {
    let mse = mse(recon.clone(), target.clone()).mul_scalar(alpha);
    let dissimilarity = ssim(recon, target, config).neg().add_scalar(1.0);
    mse + dissimilarity.mul_scalar(1.0 - alpha)
}

/// Normalised 1-D Gaussian of odd length `len`.
fn gaussian_window(len: usize, sigma_px: f64) -> Vec<f32> {
    let centre = (len / 2) as f64;
    let weights: Vec<f64> = (0..len)
        .map(|i| {
            let x = i as f64 - centre;
            (-x * x / (2.0 * sigma_px * sigma_px)).exp()
        })
        .collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| (w / total) as f32).collect()
}

/// Mean SSIM over batch, channels and all window positions ("valid" filtering, as in
/// Wang et al. and scikit-image without padding). Returns `[1]`.
///
/// Local statistics come from a separable Gaussian filter applied depthwise (groups = channels),
/// to x, y, x², y² and x·y in one batched pass.
pub fn ssim(x: Tensor<4>, y: Tensor<4>, config: &SsimConfig) -> Tensor<1> {
    let [batch, channels, height, width] = x.dims();
    let fit = config.window_px.min(height).min(width).max(1);
    let window_px = if fit % 2 == 0 { fit - 1 } else { fit };
    let window = gaussian_window(window_px, config.sigma_px);
    let device = x.device();

    let kernel = |shape: [usize; 4]| {
        let values: Vec<f32> = (0..channels).flat_map(|_| window.iter().copied()).collect();
        Tensor::<4>::from_data(TensorData::new(values, shape), &device)
    };
    let vertical = kernel([channels, 1, window_px, 1]);
    let horizontal = kernel([channels, 1, 1, window_px]);
    let depthwise = ConvOptions::new([1, 1], [0, 0], [1, 1], channels);
    let filter = |t: Tensor<4>| {
        let t = conv2d(t, vertical.clone(), None, depthwise.clone());
        conv2d(t, horizontal.clone(), None, depthwise.clone())
    };

    let stacked = Tensor::cat(
        vec![
            x.clone(),
            y.clone(),
            x.clone().square(),
            y.clone().square(),
            x * y,
        ],
        0,
    );
    let filtered = filter(stacked);
    let part = |i: usize| filtered.clone().narrow(0, i * batch, batch);
    let (mu_x, mu_y, xx, yy, xy) = (part(0), part(1), part(2), part(3), part(4));

    let c1 = (config.k1 * config.data_range).powi(2);
    let c2 = (config.k2 * config.data_range).powi(2);
    let mu_xx = mu_x.clone().square();
    let mu_yy = mu_y.clone().square();
    let mu_xy = mu_x * mu_y;
    let var_x = xx - mu_xx.clone();
    let var_y = yy - mu_yy.clone();
    let cov = xy - mu_xy.clone();

    let numerator = mu_xy.mul_scalar(2.0).add_scalar(c1) * cov.mul_scalar(2.0).add_scalar(c2);
    let denominator = (mu_xx + mu_yy).add_scalar(c1) * (var_x + var_y).add_scalar(c2);
    (numerator / denominator).mean()
}
