//! The DeepDLT seed model: three blocks of 3×3 conv → batch norm → activation → dropout →
//! 2×2 max pool (32/64/128 channels), a dense latent, and a transposed-conv decoder. Pooling
//! uses ceil mode so every level is `ceil(s/2)` and the decoder restores any input size.

use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::{Device, Tensor};

use super::blocks::{
    BlockOptions, ConvBlock, DenseDecoder, LatentHead, LatentSample, UpBlock, pyramid,
};
use super::config::ModelConfig;
use crate::data::Shape;

/// Channels of the encoder blocks; the decoder mirrors them.
pub const WIDTHS: [usize; 3] = [32, 64, 128];
pub const LEVELS: usize = WIDTHS.len();
/// Channels of the deepest feature map, which feeds the latent.
pub const DEEPEST: usize = WIDTHS[LEVELS - 1];

#[derive(Module, Debug)]
pub struct CnnAe {
    encoder: Vec<ConvBlock>,
    pool: MaxPool2d,
    head: LatentHead,
    decoder: DenseDecoder,
}

impl CnnAe {
    /// `config` must have been validated against `input`. Batch norm is always on, as published.
    pub fn new(config: &ModelConfig, input: Shape, device: &Device) -> Self {
        let options = BlockOptions {
            batch_norm: true,
            dropout: config.dropout,
            activation: config.activation(),
        };
        let hs = pyramid(input.height, LEVELS);
        let ws = pyramid(input.width, LEVELS);

        let encoder = (0..LEVELS)
            .map(|l| {
                let c_in = if l == 0 {
                    input.channels
                } else {
                    WIDTHS[l - 1]
                };
                ConvBlock::new([c_in, WIDTHS[l]], 1, options, device)
            })
            .collect();
        let pool = MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init();

        let bottleneck = [DEEPEST, hs[LEVELS], ws[LEVELS]];
        let features = bottleneck.iter().product();
        let decoder = (1..=LEVELS)
            .rev()
            .map(|l| {
                let small = [hs[l], ws[l]];
                let big = [hs[l - 1], ws[l - 1]];
                if l == 1 {
                    UpBlock::output([WIDTHS[0], input.channels], small, big, device)
                } else {
                    UpBlock::hidden([WIDTHS[l - 1], WIDTHS[l - 2]], small, big, options, device)
                }
            })
            .collect();

        Self {
            encoder,
            pool,
            head: LatentHead::new(features, config.latent_dim, false, device),
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
        let x = self
            .encoder
            .iter()
            .fold(x, |x, block| self.pool.forward(block.forward(x)));
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
