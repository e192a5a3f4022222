//! The SENSE training objective: reconstruction (+ KL) + λ_cl·soft silhouette + λ_con·contrastive.

use burn::tensor::{Int, Tensor, TensorReadError};
use serde::{Deserialize, Serialize};

use super::contrastive::contrastive_loss;
use super::kl::{kl_divergence, kl_weight};
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
    /// λ_cl, weight of the soft-silhouette loss.
    pub lambda_cluster: f64,
    /// λ_con, weight of the contrastive loss.
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

/// Every term of one evaluation, as `[1]` tensors. `total` is the one to back-propagate; the
/// others are *unweighted* values for logging.
#[derive(Debug, Clone)]
pub struct LossTerms {
    pub total: Tensor<1>,
    pub reconstruction: Tensor<1>,
    /// Plain KL (free bits applied), before the β·latent/(H·W) weight. VAEs only.
    pub kl: Option<Tensor<1>>,
    /// 1 − soft silhouette. Only with supervision.
    pub cluster: Option<Tensor<1>>,
    pub contrastive: Option<Tensor<1>>,
}

/// [`LossTerms`] read back to the host.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LossScalars {
    pub total: f64,
    pub reconstruction: f64,
    pub kl: Option<f64>,
    pub cluster: Option<f64>,
    pub contrastive: Option<f64>,
}

impl LossTerms {
    /// Reads all terms in one device round trip (detached: no effect on the graph).
    pub fn scalars(&self) -> Result<LossScalars, TensorReadError> {
        let optional = [&self.kl, &self.cluster, &self.contrastive];
        let mut parts = vec![
            self.total.clone().detach(),
            self.reconstruction.clone().detach(),
        ];
        parts.extend(
            optional
                .iter()
                .filter_map(|t| t.as_ref().map(|t| t.clone().detach())),
        );
        let values = Tensor::cat(parts, 0).try_into_vec_as::<f64>()?;
        // `values` holds exactly one entry per present term, in this order.
        let mut values = values.into_iter();
        let mut next = || values.next().unwrap_or(f64::NAN);
        let total = next();
        let reconstruction = next();
        let [kl, cluster, contrastive] = optional.map(|t| t.as_ref().map(|_| next()));
        Ok(LossScalars {
            total,
            reconstruction,
            kl,
            cluster,
            contrastive,
        })
    }
}

/// L = L_rec (+ β·latent/(H·W)·KL) + λ_cl·L_cl + λ_con·L_con.
#[derive(Debug, Clone)]
pub struct TotalLoss {
    config: LossConfig,
    /// β for variational models, `None` for deterministic ones.
    beta: Option<f64>,
    latent_dim: usize,
}

impl TotalLoss {
    pub fn new(config: LossConfig, model: &ModelConfig) -> Self {
        Self {
            config,
            beta: model.kind.is_variational().then_some(model.beta),
            latent_dim: model.latent_dim,
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
        let [_, _, height_px, width_px] = target.dims();
        let reconstruction = self
            .config
            .reconstruction
            .compute(output.recon.clone(), target);
        let mut total = reconstruction.clone();

        let kl = match (self.beta, &output.mu, &output.logvar) {
            (Some(beta), Some(mu), Some(logvar)) => {
                let kl = kl_divergence(mu.clone(), logvar.clone(), self.config.free_bits_nats);
                let weight = kl_weight(beta, self.latent_dim, height_px, width_px);
                total = total + kl.clone().mul_scalar(weight);
                Some(kl)
            }
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
                total = total
                    + cluster.clone().mul_scalar(self.config.lambda_cluster)
                    + contrastive
                        .clone()
                        .mul_scalar(self.config.lambda_contrastive);
                (Some(cluster), Some(contrastive))
            }
            None => (None, None),
        };

        LossTerms {
            total,
            reconstruction,
            kl,
            cluster,
            contrastive,
        }
    }
}
