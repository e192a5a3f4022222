//! Autoencoder architectures on the flex CPU backend: exact output shapes for any input size,
//! configuration checks, and a short training run that must reduce the reconstruction error.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use sense::data::Shape;
use sense::nn::losses::mse;
use sense::nn::{ActivationKind, ModelConfig, ModelKind};

fn random_batch(batch: usize, shape: Shape, device: &Device) -> Tensor<4> {
    Tensor::random(
        [batch, shape.channels, shape.height, shape.width],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

/// Builds `config` for `shape`, runs forward / encode / decode on a batch of 2 and checks that
/// every shape is what the caller will rely on.
fn check_shapes(config: &ModelConfig, shape: Shape, device: &Device) {
    device.seed(7);
    let model = config
        .init(shape, device)
        .unwrap_or_else(|e| panic!("{config:?} on {shape}: {e}"));
    let x = random_batch(2, shape, device);
    let expected = [2, shape.channels, shape.height, shape.width];

    let out = model.forward(x.clone());
    assert_eq!(
        out.recon.dims(),
        expected,
        "{:?} recon on {shape}",
        config.kind
    );
    assert_eq!(out.latent.dims(), [2, config.latent_dim]);
    assert_eq!(out.mu.is_some(), config.kind.is_variational());
    assert_eq!(out.logvar.is_some(), config.kind.is_variational());
    if let Some(logvar) = &out.logvar {
        assert_eq!(logvar.dims(), [2, config.latent_dim]);
    }

    let z = model.encode(x);
    assert_eq!(z.dims(), [2, config.latent_dim]);
    assert_eq!(
        model.decode(z).dims(),
        expected,
        "{:?} decode on {shape}",
        config.kind
    );
}

#[test]
fn paper_ae_restores_exact_input_size() {
    let device = Device::flex();
    for shape in [
        Shape::new(1, 28, 28),
        Shape::new(1, 50, 50),
        Shape::new(3, 50, 50),
        Shape::new(1, 160, 224),
        Shape::new(3, 160, 224),
        Shape::new(2, 17, 9), // odd sizes at every level
    ] {
        check_shapes(
            &ModelConfig::new(ModelKind::Ae).with_latent_dim(16),
            shape,
            &device,
        );
    }
}

#[test]
fn paper_ae_latent_widths() {
    let device = Device::flex();
    for latent_dim in [32, 64, 128, 256] {
        check_shapes(
            &ModelConfig::new(ModelKind::Ae).with_latent_dim(latent_dim),
            Shape::new(1, 28, 28),
            &device,
        );
    }
}

#[test]
fn vae_shapes_and_deterministic_inference() {
    let device = Device::flex();
    let config = ModelConfig::new(ModelKind::Vae).with_latent_dim(8);
    for shape in [Shape::new(1, 28, 28), Shape::new(3, 50, 50)] {
        check_shapes(&config, shape, &device);
    }

    // On a plain device the VAE decodes μ: forward is deterministic and latent == μ == encode.
    let shape = Shape::new(1, 28, 28);
    let model = config.init(shape, &device).unwrap();
    let x = random_batch(3, shape, &device);
    let a = model.forward(x.clone());
    let b = model.forward(x.clone());
    let recon_a: Vec<f32> = a.recon.try_into_vec_as().unwrap();
    let recon_b: Vec<f32> = b.recon.try_into_vec_as().unwrap();
    assert_eq!(recon_a, recon_b);
    let mu: Vec<f32> = a.mu.unwrap().try_into_vec_as().unwrap();
    let latent: Vec<f32> = a.latent.try_into_vec_as().unwrap();
    let encoded: Vec<f32> = model.encode(x).try_into_vec_as().unwrap();
    assert_eq!(mu, latent);
    assert_eq!(mu, encoded);
}

#[test]
fn vae_samples_while_training() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let shape = Shape::new(1, 28, 28);
    let model = ModelConfig::new(ModelKind::Vae)
        .with_latent_dim(8)
        .init(shape, &device)
        .unwrap();
    let x = random_batch(2, shape, &device);
    let out = model.forward(x.clone());
    // The decoder saw z = μ + σ·ε, so its output differs from decoding μ.
    let sampled: Vec<f32> = out.recon.try_into_vec_as().unwrap();
    let from_mu: Vec<f32> = model.decode(out.latent).try_into_vec_as().unwrap();
    assert_ne!(sampled, from_mu);
}

#[test]
fn regularised_models_keep_shapes_while_training() {
    let device = Device::flex().autodiff();
    for kind in [ModelKind::Ae, ModelKind::Vae] {
        let config = ModelConfig::new(kind)
            .with_latent_dim(8)
            .with_dropout(0.3)
            .with_batch_norm(true);
        check_shapes(&config, Shape::new(1, 28, 28), &device);
    }
}

#[test]
fn unet_vae_shapes() {
    let device = Device::flex();
    let config = ModelConfig::new(ModelKind::UnetVae).with_latent_dim(16);
    for shape in [
        Shape::new(1, 32, 32),
        Shape::new(2, 28, 28),
        Shape::new(1, 50, 40),
    ] {
        check_shapes(&config, shape, &device);
    }
    // At the CAMELS size the latent reads a flattened 8×8×512 map.
    assert_eq!(
        ModelConfig::new(ModelKind::UnetVae).bottleneck_len(Shape::new(1, 256, 256)),
        8 * 8 * 512
    );
}

#[test]
fn unet_vae_decode_from_latent_alone_differs_from_skip_reconstruction() {
    let device = Device::flex();
    device.seed(5);
    let shape = Shape::new(1, 32, 32);
    let model = ModelConfig::new(ModelKind::UnetVae)
        .with_latent_dim(8)
        .init(shape, &device)
        .unwrap();
    let x = random_batch(2, shape, &device);
    let out = model.forward(x);
    let with_skips: Vec<f32> = out.recon.try_into_vec_as().unwrap();
    let latent_only: Vec<f32> = model.decode(out.latent).try_into_vec_as().unwrap();
    assert_eq!(with_skips.len(), latent_only.len());
    assert_ne!(with_skips, latent_only);
}

#[test]
fn cnn_ae_shapes_for_every_activation() {
    let device = Device::flex().autodiff();
    for (activation, shape) in [
        (ActivationKind::Relu, Shape::new(1, 28, 28)),
        (ActivationKind::LeakyRelu, Shape::new(3, 50, 50)),
        (ActivationKind::Elu, Shape::new(1, 33, 20)),
        (ActivationKind::Selu, Shape::new(2, 28, 28)),
    ] {
        let config = ModelConfig::new(ModelKind::CnnAe)
            .with_latent_dim(16)
            .with_dropout(0.2)
            .with_activation(activation);
        check_shapes(&config, shape, &device);
    }
}

#[test]
fn invalid_configurations_are_rejected_before_allocation() {
    let device = Device::flex();
    let mnist = Shape::new(1, 28, 28);
    let bad = [
        (ModelConfig::new(ModelKind::Ae).with_latent_dim(0), mnist),
        (ModelConfig::new(ModelKind::Ae).with_dropout(1.0), mnist),
        (
            ModelConfig::new(ModelKind::Ae).with_dropout(f64::NAN),
            mnist,
        ),
        (ModelConfig::new(ModelKind::Vae).with_beta(-1.0), mnist),
        (ModelConfig::new(ModelKind::Ae).with_filters(0), mnist),
        (ModelConfig::new(ModelKind::Ae), Shape::new(0, 28, 28)),
        // 64·4096·4096 features × 2^20 latent: far beyond any memory.
        (
            ModelConfig::new(ModelKind::Ae).with_latent_dim(1 << 20),
            Shape::new(1, 65536, 65536),
        ),
    ];
    for (config, shape) in bad {
        let err = config.init(shape, &device).map(|_| ()).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn config_serde_round_trip_and_defaults() {
    let config: ModelConfig =
        serde_json::from_str(r#"{"kind": "unet-vae", "latent_dim": 64, "beta": 4.0}"#).unwrap();
    assert_eq!(config.kind, ModelKind::UnetVae);
    assert_eq!(config.latent_dim, 64);
    assert_eq!(config.filters, 64);
    assert_eq!(config.activation(), ActivationKind::LeakyRelu);
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(serde_json::from_str::<ModelConfig>(&text).unwrap(), config);
    assert!(serde_json::from_str::<ModelConfig>(r#"{"kind": "gan"}"#).is_err());
    assert!(serde_json::from_str::<ModelConfig>(r#"{"latent": 3}"#).is_err());
}

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
    let device = Device::flex().autodiff();
    device.seed(42);
    let shape = Shape::new(1, 28, 28);
    let config = ModelConfig::new(ModelKind::Ae).with_latent_dim(16);
    let mut model = config.init(shape, &device).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(blob_images(64), [64, 1, 28, 28]), &device);

    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..25 {
        let out = model.forward(x.clone());
        let loss = mse(out.recon, x.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(2e-3, model, grads);
    }
    let first = losses[0];
    let last = losses[losses.len() - 1];
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(last < 0.7 * first, "MSE did not drop enough: {losses:?}");
}
