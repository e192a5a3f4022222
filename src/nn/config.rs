//! Serde configuration that selects and sizes an autoencoder.

use serde::{Deserialize, Serialize};

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
        let dense_weights = self
            .bottleneck_len(input)
            .checked_mul(self.latent_dim)
            .unwrap_or(usize::MAX);
        if dense_weights > MAX_DENSE_WEIGHTS {
            return fail(format!(
                "a {} model with latent_dim {} on {input} inputs needs {dense_weights} dense \
                 weights (limit {MAX_DENSE_WEIGHTS}); use a smaller latent or input",
                serde_json::to_string(&self.kind).unwrap_or_default(),
                self.latent_dim,
            ));
        }
        Ok(())
    }

    /// Length of the flattened feature map that feeds the latent layer.
    pub fn bottleneck_len(&self, input: Shape) -> usize {
        let (levels, channels) = match self.kind {
            ModelKind::Ae | ModelKind::Vae => (crate::nn::paper_ae::LEVELS, self.filters),
            ModelKind::UnetVae => (
                crate::nn::unet_vae::WIDTHS.len(),
                crate::nn::unet_vae::WIDTHS[crate::nn::unet_vae::WIDTHS.len() - 1],
            ),
            ModelKind::CnnAe => (
                crate::nn::cnn_ae::WIDTHS.len(),
                crate::nn::cnn_ae::WIDTHS[crate::nn::cnn_ae::WIDTHS.len() - 1],
            ),
        };
        let h = crate::nn::blocks::halved(input.height, levels);
        let w = crate::nn::blocks::halved(input.width, levels);
        channels.saturating_mul(h).saturating_mul(w)
    }
}
