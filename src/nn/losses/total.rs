//! The terms of the SENSE objective: reconstruction (+ KL), soft silhouette and contrastive.
//! They are computed unweighted: the trainer's `Objective` (`crate::train`) weights them, with
//! the λ values the schedule holds while a run goes.

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::contrastive::contrastive_loss;
use super::kl::kl_divergence;
use super::reconstruction::ReconstructionLoss;
use super::silhouette::soft_silhouette_loss;
use crate::nn::{AeOutput, ConfigError, ModelConfig};

/// Loss weights and options (β lives in [`ModelConfig`], with the architecture it belongs to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    pub reconstruction: ReconstructionLoss,
    /// Free-bits floor per latent dimension, in nats (0 = plain KL).
    pub free_bits_nats: f64,
    /// λ_cl, weight of the soft-silhouette loss at the start of a run (the training schedule
    /// holds the live value, which the app may change between epochs).
    pub lambda_cluster: f64,
    /// λ_con, weight of the contrastive loss at the start of a run (as `lambda_cluster`).
    pub lambda_contrastive: f64,
    /// Margin m of the contrastive loss, in latent units.
    pub contrastive_margin: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            reconstruction: ReconstructionLoss::Mse,
            free_bits_nats: 0.0,
            lambda_cluster: 0.2,
            lambda_contrastive: 0.2,
            contrastive_margin: 1.0,
        }
    }
}

impl LossConfig {
    /// Rejects weights that would silently break training (negative, NaN, α outside [0, 1]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let non_negative = [
            ("free_bits_nats", self.free_bits_nats),
            ("lambda_cluster", self.lambda_cluster),
            ("lambda_contrastive", self.lambda_contrastive),
            ("contrastive_margin", self.contrastive_margin),
        ];
        for (name, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ConfigError(format!(
                    "{name} must be finite and >= 0, got {value}"
                )));
            }
        }
        if let ReconstructionLoss::MseSsim { alpha, ssim } = &self.reconstruction {
            if !(0.0..=1.0).contains(alpha) {
                return Err(ConfigError(format!("alpha must be in [0, 1], got {alpha}")));
            }
            if ssim.window_px == 0 || !(ssim.sigma_px > 0.0 && ssim.data_range > 0.0) {
                return Err(ConfigError(format!(
                    "SSIM needs window_px >= 1, sigma_px > 0 and data_range > 0, got {ssim:?}"
                )));
            }
        }
        Ok(())
    }
}

/// The labelled part of a batch.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// Batch rows that carry a label `[L]`.
    pub rows: Tensor<1, Int>,
    /// Soft assignments of those rows `[L, K]`: one-hot for manual labels, confidence × one-hot
    /// for pseudo-labels. The contrastive loss uses each row's arg-max as its class.
    pub assignments: Tensor<2>,
}

/// The unweighted terms of one evaluation, as `[1]` tensors.
#[derive(Debug, Clone)]
pub struct LossTerms {
    pub reconstruction: Tensor<1>,
    /// Plain KL (free bits applied), before any weight. VAEs only.
    pub kl: Option<Tensor<1>>,
    /// 1 − soft silhouette. Only with supervision.
    pub cluster: Option<Tensor<1>>,
    pub contrastive: Option<Tensor<1>>,
}

/// Computes the [`LossTerms`] of SENSE's loss for a model: the KL term for variational models,
/// the label terms for supervised rows.
#[derive(Debug, Clone)]
pub struct TotalLoss {
    config: LossConfig,
    variational: bool,
}

impl TotalLoss {
    pub fn new(config: LossConfig, model: &ModelConfig) -> Self {
        Self {
            config,
            variational: model.kind.is_variational(),
        }
    }

    pub fn config(&self) -> &LossConfig {
        &self.config
    }

    /// Scores one forward pass against its `target` batch. Clustering terms are computed on
    /// `output.latent` (μ for a VAE) of the supervised rows, when there are any.
    pub fn compute(
        &self,
        output: &AeOutput,
        target: Tensor<4>,
        supervision: Option<&Supervision>,
    ) -> LossTerms {
        let reconstruction = self
            .config
            .reconstruction
            .compute(output.recon.clone(), target);

        let kl = match (self.variational, &output.mu, &output.logvar) {
            (true, Some(mu), Some(logvar)) => Some(kl_divergence(
                mu.clone(),
                logvar.clone(),
                self.config.free_bits_nats,
            )),
            _ => None,
        };

        let supervision = supervision.filter(|s| s.rows.dims()[0] > 0);
        let (cluster, contrastive) = match supervision {
            Some(supervision) => {
                let z = output.latent.clone().select(0, supervision.rows.clone());
                let p = supervision.assignments.clone();
                let cluster = soft_silhouette_loss(z.clone(), p.clone());
                let [rows, _] = p.dims();
                let classes = p.argmax(1).reshape([rows]);
                let contrastive = contrastive_loss(z, classes, self.config.contrastive_margin);
                (Some(cluster), Some(contrastive))
            }
            None => (None, None),
        };

        LossTerms {
            reconstruction,
            kl,
            cluster,
            contrastive,
        }
    }
}
