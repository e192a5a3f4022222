//! Building blocks shared by the architectures: activations, stride-2 geometry, conv blocks and
//! the (deterministic or Gaussian) latent head.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::{elu, leaky_relu, relu, selu};
use burn::tensor::{Device, Distribution, Tensor};

use super::config::ActivationKind;
use super::conv::{self, ConvGeometry};

/// Negative slope of [`ActivationKind::LeakyRelu`].
pub const LEAKY_SLOPE: f64 = 0.01;

impl ActivationKind {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            ActivationKind::Relu => relu(x),
            ActivationKind::LeakyRelu => leaky_relu(x, LEAKY_SLOPE),
            ActivationKind::Elu => elu(x, 1.0),
            ActivationKind::Selu => selu(x),
        }
    }
}

/// Spatial size after `levels` stride-2 reductions. A 3×3/stride 2/padding 1 conv and a 2×2
/// ceil-mode max pool both map `s` to `ceil(s / 2)`.
pub fn halved(size_px: usize, levels: usize) -> usize {
    (0..levels).fold(size_px, |s, _| s.div_ceil(2))
}

/// Sizes at every level: `[s, ceil(s/2), …]`, `levels + 1` entries.
pub fn pyramid(size_px: usize, levels: usize) -> Vec<usize> {
    (0..=levels).map(|l| halved(size_px, l)).collect()
}

/// Output padding that makes a 3×3/stride 2/padding 1 transposed conv grow `small_px` back to
/// exactly `big_px` (out = 2·in − 1 + op, so op is 1 for even sizes and 0 for odd ones).
pub fn output_padding(big_px: usize, small_px: usize) -> usize {
    big_px + 1 - 2 * small_px
}

/// Conv (3×3, padding 1) → optional batch norm → activation → optional dropout.
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    norm: Option<BatchNorm>,
    dropout: Option<Dropout>,
    #[module(skip)]
    activation: ActivationKind,
    #[module(skip)]
    geometry: ConvGeometry,
}

/// 3×3 kernel, padding 1, the given stride: what every conv of the autoencoders uses.
fn geometry_3x3(stride: usize) -> ConvGeometry {
    ConvGeometry {
        kernel: [3, 3],
        stride: [stride, stride],
        padding: [1, 1],
    }
}

/// Hidden-layer options common to every block of one model.
#[derive(Debug, Clone, Copy)]
pub struct BlockOptions {
    pub batch_norm: bool,
    pub dropout: f64,
    pub activation: ActivationKind,
}

impl BlockOptions {
    fn norm(&self, channels: usize, device: &Device) -> Option<BatchNorm> {
        self.batch_norm
            .then(|| BatchNormConfig::new(channels).init(device))
    }

    fn dropout(&self) -> Option<Dropout> {
        (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init())
    }
}

impl ConvBlock {
    /// `stride` is 1 (size preserving) or 2 (halving, `ceil(s/2)`).
    pub fn new(
        channels: [usize; 2],
        stride: usize,
        options: BlockOptions,
        device: &Device,
    ) -> Self {
        let conv = Conv2dConfig::new(channels, [3, 3])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device);
        Self {
            conv,
            norm: options.norm(channels[1], device),
            dropout: options.dropout(),
            activation: options.activation,
            geometry: geometry_3x3(stride),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let weight = self.conv.weight.val();
        let bias = self.conv.bias.as_ref().map(|b| b.val());
        let x = match &self.norm {
            // The activation runs inside the convolution when nothing comes between them.
            None => conv::conv2d(x, weight, bias, self.geometry, Some(self.activation)),
            Some(norm) => {
                let x = conv::conv2d(x, weight, bias, self.geometry, None);
                self.activation.apply(norm.forward(x))
            }
        };
        match &self.dropout {
            Some(dropout) => dropout.forward(x),
            None => x,
        }
    }
}

/// 3×3 stride-2 transposed conv to an exact target size, then (unless it is the output layer)
/// optional batch norm → activation → optional dropout.
#[derive(Module, Debug)]
pub struct UpBlock {
    deconv: ConvTranspose2d,
    /// The exact output size `[H, W]`.
    #[module(skip)]
    output_px: [usize; 2],
    norm: Option<BatchNorm>,
    dropout: Option<Dropout>,
    /// `None` for the linear output layer.
    #[module(skip)]
    activation: Option<ActivationKind>,
}

impl UpBlock {
    /// Grows `[small_h, small_w]` to exactly `[big_h, big_w]`.
    pub fn hidden(
        channels: [usize; 2],
        small_px: [usize; 2],
        big_px: [usize; 2],
        options: BlockOptions,
        device: &Device,
    ) -> Self {
        Self {
            deconv: Self::deconv(channels, small_px, big_px, device),
            output_px: big_px,
            norm: options.norm(channels[1], device),
            dropout: options.dropout(),
            activation: Some(options.activation),
        }
    }

    /// The last layer: no normalisation, no activation (standardised targets take any sign).
    pub fn output(
        channels: [usize; 2],
        small_px: [usize; 2],
        big_px: [usize; 2],
        device: &Device,
    ) -> Self {
        Self {
            deconv: Self::deconv(channels, small_px, big_px, device),
            output_px: big_px,
            norm: None,
            dropout: None,
            activation: None,
        }
    }

    fn deconv(
        channels: [usize; 2],
        small_px: [usize; 2],
        big_px: [usize; 2],
        device: &Device,
    ) -> ConvTranspose2d {
        ConvTranspose2dConfig::new(channels, [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_padding_out([
                output_padding(big_px[0], small_px[0]),
                output_padding(big_px[1], small_px[1]),
            ])
            .init(device)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let weight = self.deconv.weight.val();
        let bias = self.deconv.bias.as_ref().map(|b| b.val());
        let geometry = geometry_3x3(2);
        let x = match (&self.norm, self.activation) {
            // The activation runs inside the convolution when nothing comes between them (and
            // the output layer has none).
            (None, activation) => {
                conv::conv_transpose2d(x, weight, bias, geometry, self.output_px, activation)
            }
            (Some(norm), activation) => {
                let x = conv::conv_transpose2d(x, weight, bias, geometry, self.output_px, None);
                let x = norm.forward(x);
                match activation {
                    Some(activation) => activation.apply(x),
                    None => x,
                }
            }
        };
        match &self.dropout {
            Some(dropout) => dropout.forward(x),
            None => x,
        }
    }
}

/// Flattened features → latent. Deterministic (one linear map) or Gaussian (μ and log σ² heads
/// with the reparameterisation trick).
#[derive(Module, Debug)]
pub struct LatentHead {
    mu: Linear,
    logvar: Option<Linear>,
}

/// What the latent head produced for one batch.
#[derive(Debug, Clone)]
pub struct LatentSample {
    /// The code fed to the decoder: μ + σ·ε while training a VAE, μ otherwise.
    pub z: Tensor<2>,
    /// μ (the embedding used for exploration) or the deterministic code.
    pub mu: Tensor<2>,
    pub logvar: Option<Tensor<2>>,
}

impl LatentHead {
    pub fn new(features: usize, latent_dim: usize, variational: bool, device: &Device) -> Self {
        Self {
            mu: LinearConfig::new(features, latent_dim).init(device),
            logvar: variational.then(|| LinearConfig::new(features, latent_dim).init(device)),
        }
    }

    /// μ only: the deterministic embedding (no sampling).
    pub fn mean(&self, features: Tensor<2>) -> Tensor<2> {
        self.mu.forward(features)
    }

    /// Samples z = μ + exp(½ log σ²)·ε with ε from the device's seeded RNG — but only on an
    /// autodiff device (training), like burn's dropout; inference decodes μ deterministically.
    pub fn forward(&self, features: Tensor<2>) -> LatentSample {
        let mu = self.mu.forward(features.clone());
        let Some(logvar_head) = &self.logvar else {
            return LatentSample {
                z: mu.clone(),
                mu,
                logvar: None,
            };
        };
        let logvar = logvar_head.forward(features);
        let z = if mu.device().is_autodiff() {
            let eps = Tensor::random(mu.shape(), Distribution::Normal(0.0, 1.0), &mu.device());
            mu.clone() + logvar.clone().mul_scalar(0.5).exp() * eps
        } else {
            mu.clone()
        };
        LatentSample {
            z,
            mu,
            logvar: Some(logvar),
        }
    }
}

/// Latent → dense layer → activation → unflatten → transposed-conv stack: the decoder of every
/// model whose decoder has no skip connections.
#[derive(Module, Debug)]
pub struct DenseDecoder {
    expand: Linear,
    /// Hidden transposed convs, then the linear output layer last.
    blocks: Vec<UpBlock>,
    /// Shape of the deepest feature map `[channels, h, w]`, to unflatten the dense output.
    #[module(skip)]
    bottleneck: [usize; 3],
    #[module(skip)]
    activation: ActivationKind,
}

impl DenseDecoder {
    pub fn new(
        latent_dim: usize,
        bottleneck: [usize; 3],
        blocks: Vec<UpBlock>,
        activation: ActivationKind,
        device: &Device,
    ) -> Self {
        Self {
            expand: LinearConfig::new(latent_dim, bottleneck.iter().product()).init(device),
            blocks,
            bottleneck,
            activation,
        }
    }

    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let [batch, _] = z.dims();
        let [c, h, w] = self.bottleneck;
        let x = self.activation.apply(self.expand.forward(z));
        let x = x.reshape([batch, c, h, w]);
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}
