//! Neural networks of the training engine: the autoencoder architectures SENSE offers and the
//! differentiable losses that shape their latent space.
//!
//! Everything runs on burn's runtime [`Device`](burn::tensor::Device): `Device::flex()` (CPU)
//! everywhere, `Device::wgpu(..)` with the `gpu` feature. Train on `device.autodiff()`.

mod autoencoder;
mod blocks;
mod cnn_ae;
mod config;
pub mod conv;
pub mod losses;
mod paper_ae;
mod unet_vae;

pub use autoencoder::{AeOutput, Autoencoder};
pub use blocks::{halved, output_padding};
pub use config::{ActivationKind, ConfigError, ModelConfig, ModelKind};
