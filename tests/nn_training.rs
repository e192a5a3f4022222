//! A short training run of the paper AE that must reduce the reconstruction error. In its own
//! test binary so that no concurrent test draws from the seeded device RNG: weight
//! initialisation, and so the loss curve, are then reproducible.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use sense::data::Shape;
use sense::nn::losses::mse;
use sense::nn::{ModelConfig, ModelKind};

/// 64 structured 28×28 images: a Gaussian blob whose position and width vary per member,
/// standardised to zero mean and unit std like SENSE inputs.
fn blob_images(count: usize) -> Vec<f32> {
    let side = 28;
    let mut pixels = Vec::with_capacity(count * side * side);
    for m in 0..count {
        let cx = 6.0 + (m % 8) as f32 * 2.2;
        let cy = 6.0 + (m / 8) as f32 * 2.2;
        let sigma = 2.0 + (m % 3) as f32;
        for y in 0..side {
            for x in 0..side {
                let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                pixels.push((-d2 / (2.0 * sigma * sigma)).exp());
            }
        }
    }
    let n = pixels.len() as f32;
    let mean = pixels.iter().sum::<f32>() / n;
    let std = (pixels.iter().map(|p| (p - mean).powi(2)).sum::<f32>() / n).sqrt();
    pixels.iter().map(|p| (p - mean) / std).collect()
}

#[test]
fn paper_ae_training_reduces_mse() {
    // Seeds 1–8 all ended below 0.45 × the first loss with these settings (42: 0.27).
    let (seed, steps, lr) = (42, 25, 3e-3);
    let device = Device::flex().autodiff();
    device.seed(seed);
    let shape = Shape::new(1, 28, 28);
    let config = ModelConfig::new(ModelKind::Ae).with_latent_dim(16);
    let mut model = config.init(shape, &device).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(blob_images(64), [64, 1, 28, 28]), &device);

    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let out = model.forward(x.clone());
        let loss = mse(out.recon, x.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
    }
    let first = losses[0];
    let last = losses[losses.len() - 1];
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(last < 0.7 * first, "MSE did not drop enough: {losses:?}");
}
