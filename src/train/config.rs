//! Everything that defines a training run, as one serde structure (`config.toml` of a run).

use crate::data::{AugmentConfig, NormalizationConfig};
use crate::nn::losses::LossConfig;
use crate::nn::{ConfigError, ModelConfig};
use serde::{Deserialize, Serialize};

use super::backend::BackendChoice;

/// A training run: model, loss, optimiser, schedules, data handling and evaluation.
///
/// Every field has a default, so a TOML file only lists what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seeds weights, split, batch order, augmentation and VAE sampling.
    pub seed: u64,
    pub epochs: usize,
    pub backend: BackendChoice,
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    pub data: DataConfig,
    pub variant: VariantConfig,
    pub labels: LabelConfig,
    pub evaluation: EvaluationConfig,
    /// Test hook: steps (counted over the whole run, including repeated ones) whose loss is
    /// replaced by NaN. Steps trained after a NaN but before it was read back are discarded
    /// and do not count. Never read from or written to files.
    #[doc(hidden)]
    #[serde(skip)]
    pub inject_non_finite_at_attempts: Vec<u64>,
    /// Test hook: panic inside these step attempts, as a failing GPU would.
    #[doc(hidden)]
    #[serde(skip)]
    pub inject_panic_at_attempts: Vec<u64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            epochs: 10,
            backend: BackendChoice::Auto,
            model: ModelConfig::default(),
            loss: LossConfig::default(),
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            data: DataConfig::default(),
            variant: VariantConfig::default(),
            labels: LabelConfig::default(),
            evaluation: EvaluationConfig::default(),
            inject_non_finite_at_attempts: Vec::new(),
            inject_panic_at_attempts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    /// SGD with (heavy-ball) momentum.
    Sgd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub learning_rate: f64,
    pub batch_size: usize,
    /// L2 weight decay added to the gradients; 0 disables it.
    pub weight_decay: f64,
    /// Adam ε. PyTorch's 1e-8, not burn's 1e-5 default, so results match the literature.
    pub adam_epsilon: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    /// SGD momentum.
    pub momentum: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adam,
            learning_rate: 5e-4,
            batch_size: 128,
            weight_decay: 0.0,
            adam_epsilon: 1e-8,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            momentum: 0.9,
        }
    }
}

/// Learning-rate schedule, applied per epoch.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LrScheduler {
    #[default]
    None,
    /// × `gamma` every `every_epochs` epochs.
    Step { every_epochs: usize, gamma: f64 },
    /// Cosine annealing from the base rate to `min_lr` over the run.
    Cosine { min_lr: f64 },
    /// × `factor` after `patience` epochs without a better validation loss.
    ReduceOnPlateau {
        factor: f64,
        patience: usize,
        min_lr: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement before the run stops.
    pub patience: usize,
    /// Smallest decrease of the monitored loss that counts as an improvement.
    pub min_delta: f64,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        Self {
            patience: 10,
            min_delta: 0.0,
        }
    }
}

/// Which validation loss decides the best checkpoint, plateaus and early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Monitor {
    /// The weighted total as optimised.
    #[default]
    Total,
    /// The reconstruction term alone (stable while adaptive weights shift).
    Reconstruction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    pub lr_scheduler: LrScheduler,
    pub early_stopping: Option<EarlyStopping>,
    pub monitor: Monitor,
    /// KL weight ramps linearly from 0 to 1 over this many epochs (0 = full weight at once).
    pub kl_warmup_epochs: f64,
    /// Epochs trained on reconstruction (+ KL) alone before the label losses join.
    pub pretrain_epochs: usize,
    /// Shift weight from reconstruction to the label losses over the epochs (SENSE's adaptive
    /// weighting): reconstruction starts at 1 and label losses at 0.
    pub adaptive_weights: bool,
    /// Weight moved per epoch when `adaptive_weights` is on.
    pub adaptive_step: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            lr_scheduler: LrScheduler::None,
            early_stopping: None,
            monitor: Monitor::Total,
            kl_warmup_epochs: 0.0,
            pretrain_epochs: 0,
            adaptive_weights: false,
            adaptive_step: 0.01,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Share of members held out for validation.
    pub val_fraction: f64,
    /// Keep class proportions equal in both splits.
    pub stratify: bool,
    pub normalization: NormalizationConfig,
    pub augmentation: AugmentConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            val_fraction: 0.2,
            stratify: true,
            normalization: NormalizationConfig::default(),
            augmentation: AugmentConfig::default(),
        }
    }
}

/// Autoencoder variants that change the objective, not the architecture.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VariantConfig {
    /// Denoising AE: Gaussian noise of this σ (normalised units) on the input; the target
    /// stays clean. 0 disables it.
    pub denoising_noise_std: f64,
    /// Sparse AE: weight of the mean |z| penalty on the latent. 0 disables it.
    pub sparse_l1_weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelConfig {
    /// Pseudo-labels below this confidence do not train.
    pub pseudo_threshold: f32,
}

impl Default for LabelConfig {
    fn default() -> Self {
        Self {
            pseudo_threshold: 0.9,
        }
    }
}

/// Which members' latents are reported and exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EvalSubset {
    /// Hand-labelled members (the validation split when nothing is hand-labelled).
    #[default]
    Labelled,
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    pub subset: EvalSubset,
    /// At most this many members of the subset report latents: a subsample seeded by the
    /// run's seed that keeps every hand-labelled member (a live map of a very large
    /// ensemble). `None`: the whole subset.
    pub max_members: Option<usize>,
    /// Validation members whose reconstructions are shown each epoch.
    pub reconstructions: usize,
    /// A step-loss event every this many steps.
    pub step_event_every: u64,
    /// Training losses stay on the device and are read back every this many steps (and at
    /// the end of an epoch): each read-back makes the host wait for the device. A non-finite
    /// loss is noticed at the next read-back; the epoch is then trained again from its start.
    pub loss_readback_steps: usize,
    /// Latents of the evaluation subset every this many epochs (0 = only on request).
    pub latents_every_epochs: usize,
    /// Also write `latents.npy` for every member at the end, not only the evaluation subset.
    pub export_all_latents: bool,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            subset: EvalSubset::Labelled,
            max_members: None,
            reconstructions: 8,
            step_event_every: 10,
            loss_readback_steps: 16,
            latents_every_epochs: 1,
            export_all_latents: false,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML run configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    pub fn to_toml(&self) -> String {
        // Every field is a plain value, table or enum: serialisation cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Rejects settings that would fail later or train nonsense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |reason: String| Err(ConfigError(reason));
        self.loss.validate()?;
        let opt = &self.optimizer;
        if !(opt.learning_rate.is_finite() && opt.learning_rate > 0.0) {
            return fail(format!(
                "learning_rate must be > 0, got {}",
                opt.learning_rate
            ));
        }
        if opt.batch_size == 0 {
            return fail("batch_size must be at least 1".into());
        }
        if self.evaluation.loss_readback_steps == 0 {
            return fail("loss_readback_steps must be at least 1".into());
        }
        if !(opt.weight_decay.is_finite() && opt.weight_decay >= 0.0) {
            return fail(format!(
                "weight_decay must be >= 0, got {}",
                opt.weight_decay
            ));
        }
        let epsilon_ok = opt.adam_epsilon.is_finite() && opt.adam_epsilon > 0.0;
        if !(0.0..1.0).contains(&opt.momentum) || !epsilon_ok {
            return fail("momentum must be in [0, 1) and adam_epsilon > 0".into());
        }
        if !(0.0..1.0).contains(&self.data.val_fraction) {
            return fail(format!(
                "val_fraction must be in [0, 1), got {}",
                self.data.val_fraction
            ));
        }
        let v = &self.variant;
        for (name, value) in [
            ("denoising_noise_std", v.denoising_noise_std),
            ("sparse_l1_weight", v.sparse_l1_weight),
            ("kl_warmup_epochs", self.schedule.kl_warmup_epochs),
            ("adaptive_step", self.schedule.adaptive_step),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return fail(format!("{name} must be finite and >= 0, got {value}"));
            }
        }
        if !(0.0..=1.0).contains(&self.labels.pseudo_threshold) {
            return fail(format!(
                "pseudo_threshold must be in [0, 1], got {}",
                self.labels.pseudo_threshold
            ));
        }
        match self.schedule.lr_scheduler {
            LrScheduler::Step {
                every_epochs,
                gamma,
            } if every_epochs == 0 || !(gamma.is_finite() && gamma > 0.0) => {
                fail("step scheduler needs every_epochs >= 1 and gamma > 0".into())
            }
            LrScheduler::ReduceOnPlateau { factor, .. } if !(factor > 0.0 && factor < 1.0) => {
                fail(format!("plateau factor must be in (0, 1), got {factor}"))
            }
            _ => Ok(()),
        }
    }
}

/// Label-loss weights that can change while a run is going (from the next epoch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossWeights {
    pub lambda_cluster: f64,
    pub lambda_contrastive: f64,
}
