//! The CAMELS seed model: a VAE whose encoder has five 3×3 stride-2 conv blocks
//! (32→64→128→256→512, LeakyReLU 0.01; 256×256 → 8×8×512), a dense Gaussian latent, and a
//! decoder of transposed convs that concatenates the feature maps of the first four encoder
//! levels (U-Net skips). Any input size works: every level is `ceil(s/2)` and each transposed
//! conv gets the output padding that restores the encoder's size exactly.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::blocks::{BlockOptions, ConvBlock, LatentHead, LatentSample, UpBlock, pyramid};
use super::config::{ActivationKind, ModelConfig};
use crate::data::Shape;

/// Channels of the encoder levels; the decoder mirrors them.
pub const WIDTHS: [usize; 5] = [32, 64, 128, 256, 512];
const LEVELS: usize = WIDTHS.len();

#[derive(Module, Debug)]
pub struct UnetVae {
    encoder: Vec<ConvBlock>,
    head: LatentHead,
    expand: Linear,
    /// `decoder[i]` goes from level `LEVELS - i` to `LEVELS - i - 1`; the last is the output.
    decoder: Vec<UpBlock>,
    #[module(skip)]
    bottleneck: [usize; 3],
    #[module(skip)]
    activation: ActivationKind,
}

/// Encoder feature maps of levels 1..=4 (shallowest first), for the skip connections.
type Skips = Vec<Tensor<4>>;

impl UnetVae {
    /// `config` must have been validated against `input`.
    pub fn new(config: &ModelConfig, input: Shape, device: &Device) -> Self {
        let options = BlockOptions {
            batch_norm: config.batch_norm,
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
                ConvBlock::new([c_in, WIDTHS[l]], 2, options, device)
            })
            .collect();

        let deepest = WIDTHS[LEVELS - 1];
        let bottleneck = [deepest, hs[LEVELS], ws[LEVELS]];
        let features = bottleneck.iter().product();

        // Level l (1-based, l ≥ 2) decodes into level l − 1, whose skip doubles the channels
        // of the next block's input.
        let decoder = (1..=LEVELS)
            .rev()
            .map(|l| {
                let c_in = if l == LEVELS {
                    deepest
                } else {
                    2 * WIDTHS[l - 1]
                };
                let small = [hs[l], ws[l]];
                let big = [hs[l - 1], ws[l - 1]];
                if l == 1 {
                    UpBlock::output([c_in, input.channels], small, big, device)
                } else {
                    UpBlock::hidden([c_in, WIDTHS[l - 2]], small, big, options, device)
                }
            })
            .collect();

        Self {
            encoder,
            head: LatentHead::new(features, config.latent_dim, true, device),
            expand: LinearConfig::new(config.latent_dim, features).init(device),
            decoder,
            bottleneck,
            activation: options.activation,
        }
    }

    fn features(&self, x: Tensor<4>) -> (Tensor<2>, Skips) {
        let mut skips = Vec::with_capacity(LEVELS - 1);
        let mut x = x;
        for (l, block) in self.encoder.iter().enumerate() {
            x = block.forward(x);
            if l + 1 < LEVELS {
                skips.push(x.clone());
            }
        }
        (x.flatten(1, 3), skips)
    }

    pub fn encode(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.mean(self.features(x).0)
    }

    /// Latent sample plus the skip features the decoder needs to reconstruct this batch.
    pub fn latent(&self, x: Tensor<4>) -> (LatentSample, Skips) {
        let (features, skips) = self.features(x);
        (self.head.forward(features), skips)
    }

    /// Decodes from the latent alone: the skip inputs are zero, since a point picked in latent
    /// space has no encoder features. Reconstructions of real members use
    /// [`UnetVae::decode_with_skips`].
    pub fn decode(&self, z: Tensor<2>) -> Tensor<4> {
        self.decode_with_skips(z, None)
    }

    pub fn decode_with_skips(&self, z: Tensor<2>, skips: Option<Skips>) -> Tensor<4> {
        let [batch, _] = z.dims();
        let [c, h, w] = self.bottleneck;
        let x = self.activation.apply(self.expand.forward(z));
        let mut x = x.reshape([batch, c, h, w]);
        let mut skips = skips;
        for (i, block) in self.decoder.iter().enumerate() {
            x = block.forward(x);
            if i + 1 < self.decoder.len() {
                // Decoder output i sits at encoder level LEVELS - 1 - i (1-based), i.e. skip
                // index LEVELS - 2 - i.
                let skip = match skips.as_mut() {
                    Some(skips) => skips.pop(),
                    None => None,
                }
                .unwrap_or_else(|| x.zeros_like());
                debug_assert_eq!(skip.dims(), x.dims(), "skip {i} misaligned");
                x = Tensor::cat(vec![x, skip], 1);
            }
        }
        x
    }
}
