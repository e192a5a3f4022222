//! Serde configuration that selects and sizes an autoencoder.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::blocks::halved;
use super::{cnn_ae, paper_ae, unet_vae};
use crate::data::Shape;

/// Which architecture to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// SENSE paper autoencoder: 4 stride-2 convs (64 filters), linear latent, mirrored decoder.
    Ae,
    /// The paper architecture as a β-VAE (μ and log σ² heads, reparameterisation).
    Vae,
    /// CAMELS seed: 5-level stride-2 encoder (32…512), VAE latent, U-Net skips in the decoder.
    UnetVae,
    /// DeepDLT seed: conv + batch norm + activation + dropout + max-pool blocks (32/64/128).
    CnnAe,
}

impl ModelKind {
    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Ae => "ae",
            ModelKind::Vae => "vae",
            ModelKind::UnetVae => "unet-vae",
            ModelKind::CnnAe => "cnn-ae",
        }
    }

    /// Whether the latent is Gaussian (μ, log σ²) and the loss carries a KL term.
    pub fn is_variational(self) -> bool {
        matches!(self, ModelKind::Vae | ModelKind::UnetVae)
    }

    /// The activation the original publication used for this architecture.
    pub fn default_activation(self) -> ActivationKind {
        match self {
            ModelKind::UnetVae => ActivationKind::LeakyRelu,
            ModelKind::Ae | ModelKind::Vae | ModelKind::CnnAe => ActivationKind::Relu,
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Hidden-layer non-linearity. The output layer is always linear (inputs are standardised, so
/// reconstructions take any sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    Relu,
    /// Negative slope 0.01 (PyTorch's default, as in the CAMELS model).
    LeakyRelu,
    /// α = 1.
    Elu,
    Selu,
}

/// Architecture and regularisation of one autoencoder. The input shape is not part of it: it
/// comes from the ensemble when the model is built ([`ModelConfig::init`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Width of the bottleneck (the paper found 32, 64, 128 and 256 all work).
    pub latent_dim: usize,
    /// Filters per conv layer of the paper AE/VAE (64 in the paper). UNet and CNN-AE widths are
    /// fixed by their publications.
    pub filters: usize,
    /// Dropout probability after hidden activations, in [0, 1); 0 disables it.
    pub dropout: f64,
    /// Batch norm after every hidden conv (always on for `cnn-ae`, as published).
    pub batch_norm: bool,
    /// β of the β-VAE KL weight (1 = plain VAE); ignored for deterministic models.
    pub beta: f64,
    /// Hidden activation; `None` picks the architecture's published one.
    pub activation: Option<ActivationKind>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Ae,
            latent_dim: 256,
            filters: 64,
            dropout: 0.0,
            batch_norm: false,
            beta: 1.0,
            activation: None,
        }
    }
}

/// A model or loss configuration that cannot be used as given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Upper bound on the weights of the dense bottleneck layers, so a typo in `latent_dim` or an
/// unexpected input size fails with a message instead of exhausting memory (~4 GB of f32).
const MAX_DENSE_WEIGHTS: usize = 1 << 30;

/// Upper bound on the convolution weights (3×3 kernels), for the same reason: `filters` enters
/// squared, so `filters = 100000` would ask for terabytes. 2^28 f32 is 1 GiB.
const MAX_CONV_WEIGHTS: usize = 1 << 28;

impl ModelConfig {
    pub fn new(kind: ModelKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    pub fn with_latent_dim(mut self, latent_dim: usize) -> Self {
        self.latent_dim = latent_dim;
        self
    }

    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    pub fn with_batch_norm(mut self, batch_norm: bool) -> Self {
        self.batch_norm = batch_norm;
        self
    }

    pub fn with_beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    pub fn with_filters(mut self, filters: usize) -> Self {
        self.filters = filters;
        self
    }

    pub fn with_activation(mut self, activation: ActivationKind) -> Self {
        self.activation = Some(activation);
        self
    }

    /// The activation actually used: the configured one or the architecture's default.
    pub fn activation(&self) -> ActivationKind {
        self.activation
            .unwrap_or_else(|| self.kind.default_activation())
    }

    /// Checks the configuration against an input shape before any weight is allocated.
    pub fn validate(&self, input: Shape) -> Result<(), ConfigError> {
        let fail = |reason: String| Err(ConfigError(reason));
        if input.channels == 0 || input.height == 0 || input.width == 0 {
            return fail(format!("input shape {input} has an empty dimension"));
        }
        if self.latent_dim == 0 {
            return fail("latent_dim must be at least 1".into());
        }
        if self.filters == 0 {
            return fail("filters must be at least 1".into());
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return fail(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return fail(format!("beta must be finite and >= 0, got {}", self.beta));
        }
        let conv_weights = self.conv_weights(input);
        if conv_weights > MAX_CONV_WEIGHTS {
            return fail(format!(
                "a {} model with filters {} on {input} inputs needs about {conv_weights} \
                 convolution weights (limit {MAX_CONV_WEIGHTS}); use fewer filters",
                self.kind, self.filters,
            ));
        }
        let dense_weights = self.bottleneck_len(input).saturating_mul(self.latent_dim);
        if dense_weights > MAX_DENSE_WEIGHTS {
            return fail(format!(
                "a {} model with latent_dim {} on {input} inputs needs {dense_weights} dense \
                 weights (limit {MAX_DENSE_WEIGHTS}); use a smaller latent or input",
                self.kind, self.latent_dim,
            ));
        }
        Ok(())
    }

    /// Convolution weights of the encoder and the mirrored decoder, 3×3 kernels; only the
    /// paper AE/VAE take their width from `filters`.
    fn conv_weights(&self, input: Shape) -> usize {
        match self.kind {
            ModelKind::Ae | ModelKind::Vae => {
                let f = self.filters;
                let widest = f.max(input.channels);
                widest
                    .saturating_mul(f)
                    .saturating_mul(9)
                    .saturating_mul(2 * paper_ae::LEVELS)
            }
            ModelKind::UnetVae | ModelKind::CnnAe => 0,
        }
    }

    /// Length of the flattened feature map that feeds the latent layer.
    pub fn bottleneck_len(&self, input: Shape) -> usize {
        let (levels, channels) = match self.kind {
            ModelKind::Ae | ModelKind::Vae => (paper_ae::LEVELS, self.filters),
            ModelKind::UnetVae => (unet_vae::LEVELS, unet_vae::DEEPEST),
            ModelKind::CnnAe => (cnn_ae::LEVELS, cnn_ae::DEEPEST),
        };
        let h = halved(input.height, levels);
        let w = halved(input.width, levels);
        channels.saturating_mul(h).saturating_mul(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_filters_are_refused_before_allocation() {
        let input = Shape::new(1, 64, 64);
        let config = ModelConfig::new(ModelKind::Ae);
        assert!(config.validate(input).is_ok());
        let err = config.with_filters(100_000).validate(input).unwrap_err();
        assert!(err.0.contains("convolution weights"), "{err}");
    }
}
