//! The training objective: the one place that weights the loss terms.
//!
//! `L = w_rec·L_rec + w_KL·β·latent/(H·W)·KL + w_label·(λ_cl·L_cl + λ_con·L_con) + s·mean|z|`
//!
//! [`TotalLoss`] computes the terms unweighted. Every weight that changes during a run comes in
//! as [`TermWeights`] from the schedule ([`ScheduleState::weights`](super::schedule::ScheduleState)):
//! λ_cl and λ_con start at the config's values and change live from the app; w_rec, w_KL and
//! w_label follow pre-training, adaptive weighting and KL warm-up. β and the sparsity weight s
//! are fixed by the config.

use burn::tensor::{Tensor, TensorReadError};

use super::config::TrainConfig;
use super::events::{Losses, TermWeights};
use crate::nn::AeOutput;
use crate::nn::losses::{Supervision, TotalLoss, kl_weight};

pub(crate) struct Objective {
    terms: TotalLoss,
    beta: f64,
    latent_dim: usize,
    sparse_l1_weight: f64,
}

/// One batch scored.
pub(crate) struct Scored {
    /// The weighted sum to back-propagate.
    pub total: Tensor<1>,
    /// What is logged, detached and still on the device.
    pub losses: DeviceLosses,
}

impl Objective {
    pub fn new(config: &TrainConfig) -> Self {
        Self {
            terms: TotalLoss::new(config.loss.clone(), &config.model),
            beta: config.model.beta,
            latent_dim: config.model.latent_dim,
            sparse_l1_weight: config.variant.sparse_l1_weight,
        }
    }

    /// Whether the label terms weigh anything under `weights` (if not, supervision need not be
    /// built at all).
    pub fn uses_labels(&self, weights: &TermWeights) -> bool {
        weights.label > 0.0 && (weights.lambda_cluster > 0.0 || weights.lambda_contrastive > 0.0)
    }

    /// Scores `output` against `target`. Label terms need `supervision` with at least one row.
    pub fn score(
        &self,
        output: &AeOutput,
        target: Tensor<4>,
        supervision: Option<&Supervision>,
        weights: &TermWeights,
    ) -> Scored {
        let [_, _, height_px, width_px] = target.dims();
        let terms = self.terms.compute(output, target, supervision);
        let mut total = terms
            .reconstruction
            .clone()
            .mul_scalar(weights.reconstruction);
        if let Some(kl) = &terms.kl {
            let w = weights.kl * kl_weight(self.beta, self.latent_dim, height_px, width_px);
            total = total + kl.clone().mul_scalar(w);
        }
        if let Some(cluster) = &terms.cluster {
            let w = weights.label * weights.lambda_cluster;
            total = total + cluster.clone().mul_scalar(w);
        }
        if let Some(contrastive) = &terms.contrastive {
            let w = weights.label * weights.lambda_contrastive;
            total = total + contrastive.clone().mul_scalar(w);
        }
        let sparsity = (self.sparse_l1_weight > 0.0).then(|| {
            let l1 = output.latent.clone().abs().mean();
            total = total.clone() + l1.clone().mul_scalar(self.sparse_l1_weight);
            l1
        });

        let optional = [terms.kl, terms.cluster, terms.contrastive, sparsity];
        let layout = TermLayout::new(optional.each_ref().map(Option::is_some));
        let mut parts = vec![total.clone(), terms.reconstruction];
        parts.extend(optional.into_iter().flatten());
        let parts = parts.into_iter().map(Tensor::detach).collect();
        Scored {
            total,
            losses: DeviceLosses {
                values: Tensor::cat(parts, 0),
                layout,
            },
        }
    }
}

/// Which optional terms a batch had: KL, cluster, contrastive, sparsity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TermLayout([bool; 4]);

impl TermLayout {
    pub fn new(present: [bool; 4]) -> Self {
        Self(present)
    }

    /// Values per batch: total, reconstruction, then the optional terms present.
    pub fn len(&self) -> usize {
        2 + self.0.iter().filter(|&&present| present).count()
    }

    /// `values` holds [`len`](Self::len) entries in the order of [`DeviceLosses`].
    pub fn losses(&self, values: &[f64]) -> Losses {
        let mut values = values.iter().copied();
        let mut next = || values.next().unwrap_or(f64::NAN);
        let total = next();
        let reconstruction = next();
        let [kl, cluster, contrastive, sparsity] = self.0.map(|present| present.then(&mut next));
        Losses {
            total,
            reconstruction,
            kl,
            cluster,
            contrastive,
            sparsity,
        }
    }
}

/// One batch's logged losses on the device: `[total, reconstruction, optional terms...]`,
/// detached (they keep no autodiff graph alive).
pub(crate) struct DeviceLosses {
    pub values: Tensor<1>,
    pub layout: TermLayout,
}

impl DeviceLosses {
    /// Reads the values back (a device sync).
    pub fn read(self) -> Result<Losses, TensorReadError> {
        let values = self.values.try_into_vec_as::<f64>()?;
        Ok(self.layout.losses(&values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Shape;
    use crate::nn::losses::{contrastive_loss, mse, soft_silhouette_loss};
    use crate::nn::{ModelConfig, ModelKind};
    use burn::tensor::{Device, Int, TensorData};

    fn scalar(t: Tensor<1>) -> f64 {
        f64::from(t.into_scalar::<f32>())
    }

    fn weights(label: f64, lambda_cluster: f64, lambda_contrastive: f64) -> TermWeights {
        TermWeights {
            reconstruction: 1.0,
            kl: 1.0,
            label,
            lambda_cluster,
            lambda_contrastive,
        }
    }

    #[test]
    fn layout_places_the_present_terms() {
        let layout = TermLayout::new([false, true, true, false]);
        assert_eq!(layout.len(), 4);
        let losses = layout.losses(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!((losses.total, losses.reconstruction), (1.0, 2.0));
        assert_eq!((losses.kl, losses.cluster), (None, Some(3.0)));
        assert_eq!((losses.contrastive, losses.sparsity), (Some(4.0), None));
    }

    /// Four seeded standard-normal 28×28 images on the CPU.
    fn mnist_sized_batch() -> (Device, Tensor<4>) {
        let device = Device::flex();
        device.seed(9);
        let x = Tensor::<4>::random(
            [4, 1, 28, 28],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        (device, x)
    }

    #[test]
    fn vae_total_weights_kl_by_beta_and_warm_up() {
        let (device, x) = mnist_sized_batch();
        let config = TrainConfig {
            model: ModelConfig::new(ModelKind::Vae)
                .with_latent_dim(8)
                .with_beta(2.0),
            ..TrainConfig::default()
        };
        let model = config.model.init(Shape::new(1, 28, 28), &device).unwrap();
        let out = model.forward(x.clone());
        let mut warm = weights(1.0, 0.2, 0.2);
        warm.kl = 0.5;
        let losses = Objective::new(&config)
            .score(&out, x.clone(), None, &warm)
            .losses
            .read()
            .unwrap();
        let rec = scalar(mse(out.recon.clone(), x));
        assert!((losses.reconstruction - rec).abs() < 1e-6);
        let kl = losses.kl.expect("a KL term");
        let expected = rec + 0.5 * kl_weight(2.0, 8, 28, 28) * kl;
        assert!((losses.total - expected).abs() < 1e-5, "{losses:?}");
        assert_eq!((losses.cluster, losses.sparsity), (None, None));
    }

    /// λ comes from the weights passed in (the schedule's live values), not from the config.
    #[test]
    fn label_terms_take_lambda_from_the_schedule_weights() {
        let (device, x) = mnist_sized_batch();
        let mut config = TrainConfig {
            model: ModelConfig::new(ModelKind::Ae).with_latent_dim(8),
            ..TrainConfig::default()
        };
        config.loss.lambda_cluster = 5.0;
        config.loss.lambda_contrastive = 5.0;
        config.variant.sparse_l1_weight = 0.01;
        let model = config.model.init(Shape::new(1, 28, 28), &device).unwrap();
        let out = model.forward(x.clone());
        let rows = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 3], [3]), &device);
        let one_hot = vec![1.0f32, 0.0, 0.0, 1.0, 0.0, 1.0];
        let supervision = Supervision {
            rows: rows.clone(),
            assignments: Tensor::from_data(TensorData::new(one_hot, [3, 2]), &device),
        };
        let objective = Objective::new(&config);
        let live = weights(0.5, 0.3, 0.1);
        assert!(objective.uses_labels(&live));
        assert!(!objective.uses_labels(&weights(0.0, 0.3, 0.1)));
        let losses = objective
            .score(&out, x, Some(&supervision), &live)
            .losses
            .read()
            .unwrap();
        let z = out.latent.clone().select(0, rows);
        let cluster = scalar(soft_silhouette_loss(z.clone(), supervision.assignments));
        let classes = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 1], [3]), &device);
        let contrastive = scalar(contrastive_loss(z, classes, 1.0));
        let l1 = scalar(out.latent.abs().mean());
        assert!((losses.cluster.unwrap() - cluster).abs() < 1e-6);
        assert!((losses.contrastive.unwrap() - contrastive).abs() < 1e-6);
        assert!((losses.sparsity.unwrap() - l1).abs() < 1e-6);
        let expected =
            losses.reconstruction + 0.5 * (0.3 * cluster + 0.1 * contrastive) + 0.01 * l1;
        assert!((losses.total - expected).abs() < 1e-5, "{losses:?}");
    }
}
