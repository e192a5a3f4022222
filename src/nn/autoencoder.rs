//! [`Autoencoder`]: the one entry point over every architecture.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::cnn_ae::CnnAe;
use super::config::{ConfigError, ModelConfig, ModelKind};
use super::paper_ae::PaperAe;
use super::unet_vae::UnetVae;
use crate::data::Shape;

#[derive(Module, Debug)]
enum Network {
    Paper(PaperAe),
    Unet(UnetVae),
    Cnn(CnnAe),
}

/// An autoencoder of any [`ModelKind`], built for one input shape.
///
/// Tensors are `[batch, channels, height, width]` with the shape given to
/// [`ModelConfig::init`]; latents are `[batch, latent_dim]`. On an autodiff device the model
/// trains (dropout active, batch-norm batch statistics, VAE sampling); on a plain device it is
/// deterministic.
#[derive(Module, Debug)]
pub struct Autoencoder {
    network: Network,
    #[module(skip)]
    config: ModelConfig,
    #[module(skip)]
    input: Shape,
}

/// One forward pass.
#[derive(Debug, Clone)]
pub struct AeOutput {
    /// Reconstruction, same shape as the input.
    pub recon: Tensor<4>,
    /// The embedding to explore: the code for an AE, μ for a VAE.
    pub latent: Tensor<2>,
    /// μ of a VAE (same values as `latent`); `None` for deterministic models.
    pub mu: Option<Tensor<2>>,
    /// log σ² of a VAE; `None` for deterministic models.
    pub logvar: Option<Tensor<2>>,
}

impl ModelConfig {
    /// Builds the model for members of shape `input`, with fresh weights on `device` (seed the
    /// device first for reproducible weights).
    pub fn init(&self, input: Shape, device: &Device) -> Result<Autoencoder, ConfigError> {
        self.validate(input)?;
        let network = match self.kind {
            ModelKind::Ae | ModelKind::Vae => Network::Paper(PaperAe::new(self, input, device)),
            ModelKind::UnetVae => Network::Unet(UnetVae::new(self, input, device)),
            ModelKind::CnnAe => Network::Cnn(CnnAe::new(self, input, device)),
        };
        Ok(Autoencoder {
            network,
            config: self.clone(),
            input,
        })
    }
}

impl Autoencoder {
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The member shape the model was built for.
    pub fn input_shape(&self) -> Shape {
        self.input
    }

    pub fn latent_dim(&self) -> usize {
        self.config.latent_dim
    }

    pub fn is_variational(&self) -> bool {
        self.config.kind.is_variational()
    }

    /// Encode, (sample,) decode.
    pub fn forward(&self, x: Tensor<4>) -> AeOutput {
        let (sample, recon) = match &self.network {
            Network::Paper(net) => {
                let sample = net.latent(x);
                let recon = net.decode(sample.z.clone());
                (sample, recon)
            }
            Network::Unet(net) => {
                let (sample, skips) = net.latent(x);
                let recon = net.decode_with_skips(sample.z.clone(), Some(skips));
                (sample, recon)
            }
            Network::Cnn(net) => {
                let sample = net.latent(x);
                let recon = net.decode(sample.z.clone());
                (sample, recon)
            }
        };
        let mu = sample.logvar.is_some().then(|| sample.mu.clone());
        AeOutput {
            recon,
            latent: sample.mu,
            mu,
            logvar: sample.logvar,
        }
    }

    /// The embedding (μ for a VAE), without sampling.
    pub fn encode(&self, x: Tensor<4>) -> Tensor<2> {
        match &self.network {
            Network::Paper(net) => net.encode(x),
            Network::Unet(net) => net.encode(x),
            Network::Cnn(net) => net.encode(x),
        }
    }

    /// Decodes latent codes to images. For `unet-vae` the skip connections are zero (a point
    /// in latent space has no encoder features), so this differs from `forward(x).recon`.
    pub fn decode(&self, z: Tensor<2>) -> Tensor<4> {
        match &self.network {
            Network::Paper(net) => net.decode(z),
            Network::Unet(net) => net.decode(z),
            Network::Cnn(net) => net.decode(z),
        }
    }
}
