//! What is fixed once per run: split, normalisation, augmentation, the members shown and
//! encoded, the baseline image; the model and optimiser as configured; the batch loaders.

use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use std::sync::Arc;

use super::step::lock_device_rng;
use super::{Engine, Flow, Halt};
use crate::data::{
    AugmentConfig, Augmentation, BatchLoader, Normalization, Shape, Split, SplitFractions,
};
use crate::nn::Autoencoder;
use crate::train::backend::SelectedBackend;
use crate::train::config::{EvalSubset, OptimizerKind};
use crate::train::metrics::channel_ranges;
use crate::train::run_dir as files;

/// Training members the mean image (the baseline) is computed from, at most.
const BASELINE_MEMBERS: usize = 10_000;

/// Everything fixed once the run is set up.
pub(super) struct Setup {
    pub backend: SelectedBackend,
    pub split: Split,
    pub norm: Arc<Normalization>,
    pub augmentation: Option<Augmentation>,
    /// Crop-only augmentation for validation and latents (one patch per member).
    pub eval_augmentation: Option<Augmentation>,
    pub sample_shape: Shape,
    pub recon_members: Vec<usize>,
    pub eval_members: Vec<usize>,
    pub mean_image: Option<Vec<f32>>,
    pub ranges: Vec<f64>,
}

impl Engine {
    pub(super) fn setup(&mut self, backend: SelectedBackend) -> Flow<Setup> {
        let n = self.ensemble.len();
        let origin = self.ensemble.origin();
        let split_path = self.run_dir.join(files::SPLIT);
        let split = if self.resume {
            files::read_json::<Split>(&split_path)?
        } else {
            let labels = self.labels();
            let strata = (self.config.data.stratify
                && labels.per_member.iter().any(Option::is_some))
            .then(|| labels.strata());
            let fractions = SplitFractions {
                val: self.config.data.val_fraction,
                test: 0.0,
            };
            let split = Split::new(n, fractions, strata.as_deref(), self.config.seed)
                .map_err(|e| Halt::Error(format!("{origin}: {e}")))?;
            files::write_json(&split_path, &split)?;
            split
        };
        if split.train.is_empty() || split.train.iter().chain(&split.val).any(|&i| i >= n) {
            return Err(Halt::Error(format!(
                "{}: the split does not fit this ensemble of {n} members",
                split_path.display()
            )));
        }

        let norm_path = self.run_dir.join(files::NORMALIZATION);
        let norm = if self.resume {
            files::read_json::<Normalization>(&norm_path)?
        } else {
            let norm = Normalization::fit(
                self.ensemble.source.as_ref(),
                &split.train,
                self.config.data.normalization,
            )?;
            files::write_json(&norm_path, &norm)?;
            norm
        };
        let shape = self.ensemble.shape();
        let aug_config = self.config.data.augmentation;
        let augmentation = (aug_config != AugmentConfig::default())
            .then(|| Augmentation::new(aug_config, shape, &origin))
            .transpose()?;
        let eval_augmentation = aug_config
            .crop
            .map(|_| {
                let config = AugmentConfig {
                    patches_per_member: 1,
                    ..aug_config.for_evaluation()
                };
                Augmentation::new(config, shape, &origin)
            })
            .transpose()?;
        let sample_shape = eval_augmentation
            .as_ref()
            .map_or(shape, Augmentation::output_shape);

        // Evenly spaced validation members, so the gallery covers the whole split.
        let want = self.config.evaluation.reconstructions.min(split.val.len());
        let recon_members = (0..want)
            .map(|i| split.val[i * split.val.len() / want])
            .collect();
        let eval_members = match self.config.evaluation.subset {
            EvalSubset::All => (0..n).collect(),
            EvalSubset::Labelled => {
                let manual = self.labels().manual_members();
                match (manual.is_empty(), split.val.is_empty()) {
                    (false, _) => manual,
                    (true, false) => split.val.clone(),
                    (true, true) => (0..n).collect(),
                }
            }
        };
        let eval_members = match self.config.evaluation.max_members {
            Some(max) if eval_members.len() > max => {
                let manual: std::collections::HashSet<usize> =
                    self.labels().manual_members().into_iter().collect();
                let keep: Vec<usize> = (0..eval_members.len())
                    .filter(|&row| manual.contains(&eval_members[row]))
                    .collect();
                crate::projection::live_subsample(eval_members.len(), max, &keep, self.config.seed)
                    .map_err(|e| Halt::Error(format!("latent subsample: {e}")))?
                    .into_iter()
                    .map(|row| eval_members[row])
                    .collect()
            }
            _ => eval_members,
        };
        if !self.resume {
            crate::atomic_file::write_atomic(
                &self.run_dir.join(files::CONFIG),
                self.config.to_toml().as_bytes(),
            )?;
        }

        let mut setup = Setup {
            backend,
            ranges: channel_ranges(&norm),
            norm: Arc::new(norm),
            split,
            augmentation,
            eval_augmentation,
            sample_shape,
            recon_members,
            eval_members,
            mean_image: None,
        };
        setup.mean_image = self.mean_image(&setup)?;
        Ok(setup)
    }

    /// Per-pixel mean of (up to [`BASELINE_MEMBERS`]) normalised training members.
    fn mean_image(&self, setup: &Setup) -> Flow<Option<Vec<f32>>> {
        if setup.split.val.is_empty() {
            return Ok(None);
        }
        let train = &setup.split.train;
        let take = train.len().min(BASELINE_MEMBERS);
        let members: Vec<usize> = (0..take).map(|i| train[i * train.len() / take]).collect();
        let mut sum = vec![0.0f64; setup.sample_shape.len()];
        let mut count = 0usize;
        for batch in self.eval_loader(setup, members, 256)? {
            let batch = batch?;
            for i in 0..batch.len() {
                for (s, v) in sum.iter_mut().zip(batch.sample(i)) {
                    *s += f64::from(*v);
                }
            }
            count += batch.len();
            self.check_stop()?;
        }
        Ok(Some(
            sum.iter()
                .map(|s| (s / count.max(1) as f64) as f32)
                .collect(),
        ))
    }

    pub(super) fn new_model(&self, setup: &Setup) -> Flow<Autoencoder> {
        let device = setup.backend.device.clone().autodiff();
        let _rng = lock_device_rng();
        device.seed(self.config.seed);
        self.config
            .model
            .init(setup.sample_shape, &device)
            .map_err(|e| Halt::Error(e.to_string()))
    }

    pub(super) fn new_optimizer(&self) -> ModuleOptimizer {
        let o = &self.config.optimizer;
        let decay = (o.weight_decay > 0.0)
            .then(|| burn::optim::decay::WeightDecayConfig::new(o.weight_decay as f32));
        match o.kind {
            OptimizerKind::Adam => AdamConfig::new()
                .with_beta_1(o.adam_beta1 as f32)
                .with_beta_2(o.adam_beta2 as f32)
                .with_epsilon(o.adam_epsilon as f32)
                .with_weight_decay(decay)
                .init(),
            OptimizerKind::Sgd => SgdConfig::new()
                .with_momentum(Some(
                    // PyTorch's SGD: no dampening (burn defaults to 0.1).
                    burn::optim::momentum::MomentumConfig::new()
                        .with_momentum(o.momentum)
                        .with_dampening(0.0),
                ))
                .with_weight_decay(decay)
                .init(),
        }
    }

    /// Training samples per epoch and whether the last, single-sample batch is dropped (a
    /// batch of one gives batch norm and the label losses nothing to work with).
    pub(super) fn epoch_plan(&self, setup: &Setup) -> (usize, bool) {
        let patches = setup
            .augmentation
            .as_ref()
            .map_or(1, Augmentation::patches_per_member);
        let samples = setup.split.train.len() * patches;
        let batch_size = self.config.optimizer.batch_size;
        let drop_last = samples % batch_size == 1 && samples > batch_size;
        let steps = match drop_last {
            true => samples / batch_size,
            false => samples.div_ceil(batch_size),
        };
        (steps, drop_last)
    }

    pub(super) fn train_loader(&self, setup: &Setup, epoch: usize) -> Flow<BatchLoader> {
        let batch_size = self.config.optimizer.batch_size;
        let train = setup.split.train.clone();
        let (_, drop_last) = self.epoch_plan(setup);
        let mut builder = BatchLoader::builder(self.ensemble.source.clone(), train, batch_size)
            .shuffle(self.config.seed)
            .epoch(epoch as u64)
            .drop_last(drop_last)
            .normalize(setup.norm.clone());
        if let Some(aug) = &setup.augmentation {
            builder = builder.augment(aug.clone());
        }
        Ok(builder.start()?)
    }

    pub(super) fn eval_loader(
        &self,
        setup: &Setup,
        members: Vec<usize>,
        batch_size: usize,
    ) -> Flow<BatchLoader> {
        let mut builder = BatchLoader::builder(self.ensemble.source.clone(), members, batch_size)
            .normalize(setup.norm.clone());
        if let Some(aug) = &setup.eval_augmentation {
            builder = builder.augment(aug.clone());
        }
        Ok(builder.start()?)
    }
}
