//! The SENSE paper autoencoder (Gadirov, Manuel, Frey 2025): four 3×3 stride-2 convolutions
//! with `filters` channels, a dense latent, and a mirrored decoder of transposed convolutions
//! that restores exactly the input size. As a β-VAE the dense latent becomes μ / log σ² heads.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::blocks::{
    BlockOptions, ConvBlock, DenseDecoder, LatentHead, LatentSample, UpBlock, pyramid,
};
use super::config::ModelConfig;
use crate::data::Shape;

/// Number of stride-2 levels in encoder and decoder.
pub const LEVELS: usize = 4;

#[derive(Module, Debug)]
pub struct PaperAe {
    encoder: Vec<ConvBlock>,
    head: LatentHead,
    decoder: DenseDecoder,
}

impl PaperAe {
    /// `config` must have been validated against `input`.
    pub fn new(config: &ModelConfig, input: Shape, device: &Device) -> Self {
        let options = BlockOptions {
            batch_norm: config.batch_norm,
            dropout: config.dropout,
            activation: config.activation(),
        };
        let f = config.filters;
        let hs = pyramid(input.height, LEVELS);
        let ws = pyramid(input.width, LEVELS);

        let encoder = (0..LEVELS)
            .map(|l| {
                let c_in = if l == 0 { input.channels } else { f };
                ConvBlock::new([c_in, f], 2, options, device)
            })
            .collect();

        let bottleneck = [f, hs[LEVELS], ws[LEVELS]];
        let features = bottleneck.iter().product();
        let decoder = (1..=LEVELS)
            .rev()
            .map(|l| {
                let small = [hs[l], ws[l]];
                let big = [hs[l - 1], ws[l - 1]];
                if l == 1 {
                    UpBlock::output([f, input.channels], small, big, device)
                } else {
                    UpBlock::hidden([f, f], small, big, options, device)
                }
            })
            .collect();

        Self {
            encoder,
            head: LatentHead::new(
                features,
                config.latent_dim,
                config.kind.is_variational(),
                device,
            ),
            decoder: DenseDecoder::new(
                config.latent_dim,
                bottleneck,
                decoder,
                options.activation,
                device,
            ),
        }
    }

    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.encoder.iter().fold(x, |x, block| block.forward(x));
        x.flatten(1, 3)
    }

    pub fn encode(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.mean(self.features(x))
    }

    pub fn latent(&self, x: Tensor<4>) -> LatentSample {
        self.head.forward(self.features(x))
    }

    pub fn decode(&self, z: Tensor<2>) -> Tensor<4> {
        self.decoder.forward(z)
    }
}
