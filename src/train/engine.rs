//! The training loop, run on the trainer thread.
//!
//! Determinism: batch order and augmentation are keyed by `(seed, epoch)`, and the device RNG
//! (VAE sampling, dropout) and denoising noise are re-seeded from `(seed, epoch, step)` before
//! every step, so a resumed run repeats the uninterrupted one step for step on one backend.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use crossbeam_channel::Receiver;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::backend::{BackendKind, SelectedBackend, cpu_backend, panic_message, select_backend};
use super::config::{EvalSubset, LossWeights, OptimizerKind, TrainConfig};
use super::events::{
    EpochSummary, EventSender, Latents, Losses, Reconstruction, RunSummary, TermWeights, TrainEvent,
};
use super::metrics::{Quality, QualityAccumulator, channel_ranges};
use super::run_dir::{self as files, TrainerState};
use super::schedule::ScheduleState;
use super::supervision::MemberLabels;
use super::worker::Command;
use crate::data::{
    AugmentConfig, Augmentation, Batch, BatchLoader, Ensemble, Normalization, Shape, Split,
    SplitFractions,
};
use crate::error::DataError;
use crate::labels::LabelSnapshot;
use crate::nn::Autoencoder;
use crate::nn::losses::{LossTerms, TotalLoss, kl_weight};

/// Why a run ends before its last epoch.
enum Halt {
    Stop,
    Error(String),
}

impl From<DataError> for Halt {
    fn from(err: DataError) -> Self {
        Halt::Error(err.to_string())
    }
}

type Flow<T> = Result<T, Halt>;

/// How one pass over the training split ended.
enum EpochRun {
    Done {
        model: Box<Autoencoder>,
        losses: Losses,
        samples: usize,
        train_secs: f64,
    },
    NonFinite {
        step: usize,
        losses: Losses,
    },
    Panicked(String),
}

/// burn seeds its CPU backend's random generator process-wide: trainers in one process (tests,
/// an app comparing runs) hold this while they seed and draw, so each sees only its own seed.
static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_device_rng() -> std::sync::MutexGuard<'static, ()> {
    // A panic while holding it leaves nothing inconsistent: the guard protects no data.
    DEVICE_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Training members the mean image (the baseline) is computed from, at most.
const BASELINE_MEMBERS: usize = 10_000;

pub(crate) struct Engine {
    config: TrainConfig,
    ensemble: Ensemble,
    run_dir: PathBuf,
    resume: bool,
    events: EventSender,
    commands: Receiver<Command>,
    stop: Arc<AtomicBool>,
    snapshot: LabelSnapshot,
    /// Resolved from `snapshot` when the run starts and on every label update.
    labels: MemberLabels,
    paused_secs: f64,
    latents_requested: bool,
    pending_weights: Option<LossWeights>,
    /// Step attempts over the run, repeated steps included (fault injection counts these).
    attempts: u64,
}

/// Everything fixed once the run is set up.
struct Setup {
    backend: SelectedBackend,
    split: Split,
    norm: Arc<Normalization>,
    augmentation: Option<Augmentation>,
    /// Crop-only augmentation for validation and latents (one patch per member).
    eval_augmentation: Option<Augmentation>,
    sample_shape: Shape,
    recon_members: Vec<usize>,
    eval_members: Vec<usize>,
    mean_image: Option<Vec<f32>>,
    ranges: Vec<f64>,
}

struct Validation {
    losses: Losses,
    quality: Option<Quality>,
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ensemble: Ensemble,
        snapshot: LabelSnapshot,
        config: TrainConfig,
        run_dir: PathBuf,
        resume: bool,
        events: EventSender,
        commands: Receiver<Command>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            config,
            ensemble,
            run_dir,
            resume,
            events,
            commands,
            stop,
            snapshot,
            labels: MemberLabels::default(),
            paused_secs: 0.0,
            latents_requested: false,
            pending_weights: None,
            attempts: 0,
        }
    }

    pub(crate) fn run(mut self) {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.run_inner())).unwrap_or_else(|panic| {
            Err(Halt::Error(format!(
                "internal error: {}",
                panic_message(&*panic)
            )))
        });
        let event = match outcome {
            Ok(summary) => TrainEvent::Finished(summary),
            Err(Halt::Stop) => TrainEvent::Stopped {
                epoch: 0,
                global_step: 0,
            },
            Err(Halt::Error(message)) => TrainEvent::Error(message),
        };
        let event = match event {
            TrainEvent::Stopped { .. } => self.stopped_event(),
            other => other,
        };
        self.events.send(event);
    }

    fn stopped_event(&self) -> TrainEvent {
        let state: Option<TrainerState> =
            files::read_json(&self.run_dir.join(files::CHECKPOINT).join(files::STATE_FILE)).ok();
        TrainEvent::Stopped {
            epoch: state.as_ref().map_or(0, |s| s.epochs_done),
            global_step: state.map_or(0, |s| s.global_step),
        }
    }

    fn labels(&self) -> &MemberLabels {
        &self.labels
    }

    /// Training samples per epoch and whether the last, single-sample batch is dropped (a
    /// batch of one gives batch norm and the label losses nothing to work with).
    fn epoch_plan(&self, setup: &Setup) -> (usize, bool) {
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

    fn run_inner(&mut self) -> Flow<RunSummary> {
        self.config
            .validate()
            .map_err(|e| Halt::Error(e.to_string()))?;
        std::fs::create_dir_all(&self.run_dir).map_err(|e| DataError::io(&self.run_dir, e))?;
        if self.ensemble.is_empty() {
            return Err(Halt::Error(format!(
                "{}: the ensemble has no members",
                self.ensemble.origin()
            )));
        }

        let backend = select_backend(self.config.backend);
        self.announce_backend(&backend);
        self.labels = MemberLabels::resolve(
            &self.snapshot,
            &self.ensemble,
            self.config.labels.pseudo_threshold,
        );
        let mut setup = self.setup(backend)?;

        let (mut model, mut optim, mut state) = self.initial_state(&setup)?;
        self.events.send(TrainEvent::Started {
            train_members: setup.split.train.len(),
            val_members: setup.split.val.len(),
            eval_members: setup.eval_members.len(),
            steps_per_epoch: self.epoch_plan(&setup).0,
            first_epoch: state.epochs_done,
            epochs: self.config.epochs,
        });

        let mut last_quality = None;
        let mut last_val = None;
        let mut stopped_early = false;
        let run_start = Instant::now();
        while state.epochs_done < self.config.epochs {
            let epoch = state.epochs_done;
            if let Some(weights) = self.pending_weights.take() {
                state.schedule.lambda_cluster = weights.lambda_cluster;
                state.schedule.lambda_contrastive = weights.lambda_contrastive;
            }
            let lr = state.schedule.learning_rate(&self.config, epoch);
            let saved = (model.clone(), optim.clone(), state.clone());
            let epoch_start = Instant::now();
            match self.train_epoch(&setup, model, &mut optim, &mut state, epoch, lr)? {
                EpochRun::Done {
                    model: trained,
                    losses,
                    samples,
                    train_secs,
                } => {
                    model = *trained;
                    let validation = self.validate(&setup, &model, &state, epoch)?;
                    if let Some(v) = &validation {
                        last_quality = v.quality;
                        last_val = Some(v.losses);
                    }
                    self.send_reconstructions(&setup, &model, epoch)?;
                    let every = self.config.evaluation.latents_every_epochs;
                    if every > 0 && (epoch + 1) % every == 0 {
                        self.send_latents(&setup, &model, epoch)?;
                    }
                    let monitored = validation
                        .as_ref()
                        .map(|v| self.monitored(&v.losses))
                        .unwrap_or_else(|| self.monitored(&losses));
                    let best = state.schedule.observe(&self.config, epoch, monitored);
                    state.epochs_done = epoch + 1;
                    state.train_secs += train_secs;
                    let summary = EpochSummary {
                        epoch,
                        train: losses,
                        val: validation.as_ref().map(|v| v.losses),
                        val_psnr_db: validation
                            .as_ref()
                            .and_then(|v| v.quality.map(|q| q.psnr_db)),
                        val_ssim: validation.as_ref().and_then(|v| v.quality.map(|q| q.ssim)),
                        images_per_sec: samples as f64 / train_secs.max(1e-9),
                        learning_rate: lr,
                        weights: state.schedule.weights(&self.config, epoch, 0.0),
                        labelled_members: self.labels().labelled_among(&setup.split.train),
                        best,
                        elapsed_secs: epoch_start.elapsed().as_secs_f64(),
                    };
                    state.last_epoch = Some(summary.clone());
                    self.write_checkpoint(&model, &optim, &state, best)?;
                    files::append_metrics(&self.run_dir, &summary)?;
                    self.events.send(TrainEvent::Epoch(summary));
                    if state.schedule.should_stop_early(&self.config) {
                        stopped_early = true;
                        break;
                    }
                }
                EpochRun::NonFinite { step, losses } => {
                    let (m, o, s) = saved;
                    (model, optim, state) = (m, o, s);
                    if state.recoveries >= 1 {
                        return Err(Halt::Error(format!(
                            "the loss became non-finite again (epoch {epoch}, step {step}: {losses:?}) \
                             after going back to the last good state with half the learning rate; \
                             stopping. Lower the learning rate or check the data for extreme values"
                        )));
                    }
                    state.recoveries += 1;
                    state.schedule.lr_factor *= 0.5;
                    let new_lr = state.schedule.learning_rate(&self.config, epoch);
                    self.events.send(TrainEvent::Recovered {
                        epoch,
                        step,
                        learning_rate: new_lr,
                        message: format!(
                            "non-finite loss at epoch {epoch}, step {step}; restarted the epoch \
                             from the last good state with the learning rate halved to {new_lr:e}"
                        ),
                    });
                }
                EpochRun::Panicked(message) if setup.backend.kind == BackendKind::Gpu => {
                    let backend = cpu_backend(Some(format!(
                        "the GPU failed during training ({message}); continuing on the CPU \
                         from the last checkpoint"
                    )));
                    self.announce_backend(&backend);
                    setup.backend = backend;
                    (model, optim, state) = self.initial_state_after_failure(&setup)?;
                }
                EpochRun::Panicked(message) => {
                    return Err(Halt::Error(format!("training failed: {message}")));
                }
            }
        }
        let _ = run_start;
        self.finish(
            &setup,
            &model,
            &state,
            last_val,
            last_quality,
            stopped_early,
        )
    }

    fn announce_backend(&self, backend: &SelectedBackend) {
        self.events.send(TrainEvent::Backend {
            kind: backend.kind,
            name: backend.name.clone(),
            fallback_reason: backend.fallback_reason.clone(),
        });
    }

    fn monitored(&self, losses: &Losses) -> f64 {
        match self.config.schedule.monitor {
            super::config::Monitor::Total => losses.total,
            super::config::Monitor::Reconstruction => losses.reconstruction,
        }
    }

    // ---------------------------------------------------------------- setup

    fn setup(&mut self, backend: SelectedBackend) -> Flow<Setup> {
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
        if !self.resume {
            files::write_atomic(
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

    fn new_model(&self, setup: &Setup) -> Flow<Autoencoder> {
        let device = setup.backend.device.clone().autodiff();
        let _rng = lock_device_rng();
        device.seed(self.config.seed);
        self.config
            .model
            .init(setup.sample_shape, &device)
            .map_err(|e| Halt::Error(e.to_string()))
    }

    fn new_optimizer(&self) -> ModuleOptimizer {
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

    fn initial_state(&self, setup: &Setup) -> Flow<(Autoencoder, ModuleOptimizer, TrainerState)> {
        let model = self.new_model(setup)?;
        let optim = self.new_optimizer();
        if !self.resume {
            // A fresh run: forget metrics of an earlier run in the same directory.
            files::truncate_metrics(&self.run_dir, 0)?;
            let state = TrainerState {
                epochs_done: 0,
                global_step: 0,
                schedule: ScheduleState::new(&self.config),
                recoveries: 0,
                train_secs: 0.0,
                last_epoch: None,
            };
            return Ok((model, optim, state));
        }
        let dir = self.run_dir.join(files::CHECKPOINT);
        let state: TrainerState = files::read_json(&dir.join(files::STATE_FILE))?;
        let model_path = dir.join(files::MODEL_FILE);
        let model = model
            .try_load_file(&model_path)
            .map_err(|e| DataError::new(&model_path, format!("cannot load the model: {e}")))?;
        let optim_path = dir.join(files::OPTIMIZER_FILE);
        let optim = optim.load(&optim_path).map_err(|e| {
            DataError::new(&optim_path, format!("cannot load the optimiser state: {e}"))
        })?;
        files::truncate_metrics(&self.run_dir, state.epochs_done)?;
        Ok((model, optim, state))
    }

    /// After a GPU failure: the last checkpoint on the new backend, or a fresh start.
    fn initial_state_after_failure(
        &mut self,
        setup: &Setup,
    ) -> Flow<(Autoencoder, ModuleOptimizer, TrainerState)> {
        let has_checkpoint = self
            .run_dir
            .join(files::CHECKPOINT)
            .join(files::STATE_FILE)
            .exists();
        self.resume = has_checkpoint;
        self.initial_state(setup)
    }

    // ---------------------------------------------------------------- loaders

    fn train_loader(&self, setup: &Setup, epoch: usize) -> Flow<BatchLoader> {
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

    fn eval_loader(
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

    // ---------------------------------------------------------------- commands

    fn check_stop(&self) -> Flow<()> {
        match self.stop.load(Ordering::Acquire) {
            true => Err(Halt::Stop),
            false => Ok(()),
        }
    }

    /// Applies waiting commands; while paused, waits here for resume or stop.
    fn poll_commands(&mut self) -> Flow<()> {
        let mut paused_since: Option<Instant> = None;
        loop {
            self.check_stop()?;
            let command = match paused_since {
                Some(_) => match self.commands.recv_timeout(Duration::from_millis(100)) {
                    Ok(command) => command,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        return Err(Halt::Stop);
                    }
                },
                None => match self.commands.try_recv() {
                    Ok(command) => command,
                    Err(_) => return Ok(()),
                },
            };
            match command {
                Command::Pause => {
                    if paused_since.is_none() {
                        paused_since = Some(Instant::now());
                        self.events.send(TrainEvent::Paused);
                    }
                }
                Command::Resume => {
                    if let Some(since) = paused_since.take() {
                        self.paused_secs += since.elapsed().as_secs_f64();
                        self.events.send(TrainEvent::Resumed);
                    }
                }
                Command::Stop => return Err(Halt::Stop),
                Command::UpdateLabels(snapshot) => {
                    let labels = MemberLabels::resolve(
                        &snapshot,
                        &self.ensemble,
                        self.config.labels.pseudo_threshold,
                    );
                    self.events.send(TrainEvent::LabelsUpdated {
                        revision: labels.revision,
                        labelled_members: labels.per_member.iter().flatten().count(),
                    });
                    self.snapshot = snapshot;
                    self.labels = labels;
                }
                Command::UpdateLossWeights(weights) => {
                    self.pending_weights = Some(weights);
                    self.events.send(TrainEvent::LossWeightsUpdated {
                        lambda_cluster: weights.lambda_cluster,
                        lambda_contrastive: weights.lambda_contrastive,
                    });
                }
                Command::RequestLatents => self.latents_requested = true,
            }
        }
    }

    // ---------------------------------------------------------------- training

    fn train_epoch(
        &mut self,
        setup: &Setup,
        mut model: Autoencoder,
        optim: &mut ModuleOptimizer,
        state: &mut TrainerState,
        epoch: usize,
        lr: f64,
    ) -> Flow<EpochRun> {
        let loader = self.train_loader(setup, epoch)?;
        let steps = loader.batch_count().max(1);
        let mut sums = LossSums::default();
        let mut samples = 0usize;
        let paused_before = self.paused_secs;
        let start = Instant::now();
        for (step, batch) in loader.enumerate() {
            self.poll_commands()?;
            let batch = batch?;
            let weights = state
                .schedule
                .weights(&self.config, epoch, step as f64 / steps as f64);
            let seed = step_seed(self.config.seed, epoch, step);
            let attempt = self.attempts;
            self.attempts += 1;
            let this = &*self;
            let device = setup.backend.device.clone().autodiff();
            let stepped = catch_unwind(AssertUnwindSafe(|| {
                this.train_step(&device, model, optim, &batch, &weights, lr, seed, attempt)
            }));
            let (trained, losses) = match stepped {
                Ok(Ok(result)) => result,
                Ok(Err(losses)) => return Ok(EpochRun::NonFinite { step, losses }),
                Err(panic) => return Ok(EpochRun::Panicked(panic_message(&*panic))),
            };
            model = trained;
            sums.add(&losses, batch.len());
            samples += batch.len();
            state.global_step += 1;
            let every = self.config.evaluation.step_event_every.max(1);
            if state.global_step.is_multiple_of(every) || step + 1 == steps {
                self.events.send(TrainEvent::Step {
                    epoch,
                    step,
                    global_step: state.global_step,
                    losses,
                    learning_rate: lr,
                });
            }
            if std::mem::take(&mut self.latents_requested) {
                self.send_latents(setup, &model, epoch)?;
            }
        }
        self.check_stop()?;
        let train_secs =
            (start.elapsed().as_secs_f64() - (self.paused_secs - paused_before)).max(1e-9);
        Ok(EpochRun::Done {
            model: Box::new(model),
            losses: sums.mean(),
            samples,
            train_secs,
        })
    }

    /// One optimiser step. `Err` carries the losses when they are not finite (no step taken).
    #[allow(clippy::too_many_arguments)]
    fn train_step(
        &self,
        device: &Device,
        model: Autoencoder,
        optim: &mut ModuleOptimizer,
        batch: &Batch,
        weights: &TermWeights,
        lr: f64,
        seed: u64,
        attempt: u64,
    ) -> Result<(Autoencoder, Losses), Losses> {
        if self.config.inject_panic_at_attempts.contains(&attempt) {
            panic!("injected failure at step attempt {attempt}");
        }
        // Only models that draw random numbers in the forward pass need the lock held.
        let model_config = &self.config.model;
        let stochastic = model_config.kind.is_variational() || model_config.dropout > 0.0;
        let rng_guard = stochastic.then(lock_device_rng);
        device.seed(seed);
        let target =
            Tensor::<4>::from_data(TensorData::new(batch.data.clone(), batch.shape), device);
        let input = match self.config.variant.denoising_noise_std {
            sigma if sigma > 0.0 => {
                let noisy = add_noise(&batch.data, sigma as f32, seed);
                Tensor::<4>::from_data(TensorData::new(noisy, batch.shape), device)
            }
            _ => target.clone(),
        };
        let (mut total, terms, sparsity, _) =
            self.objective(&model, input, target, &batch.members, weights, device);
        drop(rng_guard);
        if self.config.inject_non_finite_at_attempts.contains(&attempt) {
            total = total.mul_scalar(f64::NAN);
        }
        let losses = read_losses(&total, &terms, sparsity.as_ref());
        if !losses.is_finite() {
            return Err(losses);
        }
        let grads = GradientsParams::from_grads(total.backward(), &model);
        Ok((optim.step(lr, model, grads), losses))
    }

    /// The weighted loss and its terms for one batch.
    fn objective(
        &self,
        model: &Autoencoder,
        input: Tensor<4>,
        target: Tensor<4>,
        members: &[usize],
        weights: &TermWeights,
        device: &Device,
    ) -> (Tensor<1>, LossTerms, Option<Tensor<1>>, Tensor<4>) {
        let [_, _, height_px, width_px] = target.dims();
        let output = model.forward(input);
        let label_losses_on = weights.label > 0.0
            && (weights.lambda_cluster > 0.0 || weights.lambda_contrastive > 0.0);
        let supervision = label_losses_on
            .then(|| self.labels().supervision(members, device))
            .flatten();
        let loss = TotalLoss::new(self.config.loss.clone(), &self.config.model);
        let terms = loss.compute(&output, target, supervision.as_ref());

        let mut total = terms
            .reconstruction
            .clone()
            .mul_scalar(weights.reconstruction);
        if let Some(kl) = &terms.kl {
            let m = &self.config.model;
            let w = weights.kl * kl_weight(m.beta, m.latent_dim, height_px, width_px);
            total = total + kl.clone().mul_scalar(w);
        }
        if let Some(cluster) = &terms.cluster {
            total = total
                + cluster
                    .clone()
                    .mul_scalar(weights.label * weights.lambda_cluster);
        }
        if let Some(contrastive) = &terms.contrastive {
            total = total
                + contrastive
                    .clone()
                    .mul_scalar(weights.label * weights.lambda_contrastive);
        }
        let sparsity = (self.config.variant.sparse_l1_weight > 0.0).then(|| {
            let l1 = output.latent.clone().abs().mean();
            total = total.clone() + l1.clone().mul_scalar(self.config.variant.sparse_l1_weight);
            l1
        });
        (total, terms, sparsity, output.recon)
    }

    // ---------------------------------------------------------------- evaluation

    fn validate(
        &self,
        setup: &Setup,
        model: &Autoencoder,
        state: &TrainerState,
        epoch: usize,
    ) -> Flow<Option<Validation>> {
        if setup.split.val.is_empty() {
            return Ok(None);
        }
        let valid = model.valid();
        let device = setup.backend.device.clone();
        let weights = state.schedule.weights(&self.config, epoch, 1.0);
        let mut sums = LossSums::default();
        let mut quality = QualityAccumulator::default();
        let batch_size = self.config.optimizer.batch_size;
        for batch in self.eval_loader(setup, setup.split.val.clone(), batch_size)? {
            self.check_stop()?;
            let batch = batch?;
            let x =
                Tensor::<4>::from_data(TensorData::new(batch.data.clone(), batch.shape), &device);
            let (total, terms, sparsity, recon) =
                self.objective(&valid, x.clone(), x, &batch.members, &weights, &device);
            sums.add(&read_losses(&total, &terms, sparsity.as_ref()), batch.len());
            let recon = to_vec(recon);
            quality.add(
                &batch.data,
                &recon,
                batch.shape,
                &setup.norm,
                &setup.ranges,
                setup.mean_image.as_deref(),
                &device,
            );
        }
        Ok(Some(Validation {
            losses: sums.mean(),
            quality: quality.finish(setup.mean_image.is_some()),
        }))
    }

    fn send_reconstructions(&self, setup: &Setup, model: &Autoencoder, epoch: usize) -> Flow<()> {
        if setup.recon_members.is_empty() {
            return Ok(());
        }
        let valid = model.valid();
        let device = setup.backend.device.clone();
        let shape = setup.sample_shape;
        let mut images = Vec::new();
        for batch in self.eval_loader(setup, setup.recon_members.clone(), 64)? {
            let batch = batch?;
            let x =
                Tensor::<4>::from_data(TensorData::new(batch.data.clone(), batch.shape), &device);
            let recon = to_vec(valid.forward(x).recon);
            for (i, &member) in batch.members.iter().enumerate() {
                let mut original = batch.sample(i).to_vec();
                let mut reconstruction = recon[i * shape.len()..(i + 1) * shape.len()].to_vec();
                setup.norm.invert(&mut original, shape);
                setup.norm.invert(&mut reconstruction, shape);
                images.push(Reconstruction {
                    member,
                    id: self.ensemble.member_id(member),
                    shape: [shape.channels, shape.height, shape.width],
                    original,
                    reconstruction,
                });
            }
        }
        self.events
            .send(TrainEvent::Reconstructions { epoch, images });
        Ok(())
    }

    /// Latent codes (μ for a VAE) of `members`, row-major.
    fn encode(&self, setup: &Setup, model: &Autoencoder, members: &[usize]) -> Flow<Vec<f32>> {
        let valid = model.valid();
        let device = setup.backend.device.clone();
        let mut values = Vec::with_capacity(members.len() * self.config.model.latent_dim);
        for batch in self.eval_loader(setup, members.to_vec(), 256)? {
            self.check_stop()?;
            let batch = batch?;
            let x = Tensor::<4>::from_data(TensorData::new(batch.data, batch.shape), &device);
            values.extend(to_vec(valid.encode(x)));
        }
        Ok(values)
    }

    fn send_latents(&self, setup: &Setup, model: &Autoencoder, epoch: usize) -> Flow<()> {
        let members = setup.eval_members.clone();
        let values = self.encode(setup, model, &members)?;
        let ids = members
            .iter()
            .map(|&m| self.ensemble.member_id(m))
            .collect();
        self.events.send(TrainEvent::Latents(Latents {
            epoch,
            members,
            ids: Arc::new(ids),
            dim: self.config.model.latent_dim,
            values,
        }));
        Ok(())
    }

    // ---------------------------------------------------------------- persistence

    fn write_checkpoint(
        &self,
        model: &Autoencoder,
        optim: &ModuleOptimizer,
        state: &TrainerState,
        best: bool,
    ) -> Flow<()> {
        let save = |name: &str, with_optimizer: bool| -> Flow<PathBuf> {
            let staging = files::staging_dir(&self.run_dir, name)?;
            let model_path = staging.join(files::MODEL_FILE);
            model
                .clone()
                .save_file(&model_path)
                .map_err(|e| DataError::new(&model_path, format!("cannot save the model: {e}")))?;
            if with_optimizer {
                let path = staging.join(files::OPTIMIZER_FILE);
                optim.save(&path).map_err(|e| {
                    DataError::new(&path, format!("cannot save the optimiser state: {e}"))
                })?;
            }
            files::write_json(&staging.join(files::STATE_FILE), state)?;
            Ok(files::commit_dir(&self.run_dir, name, &staging)?)
        };
        let path = save(files::CHECKPOINT, true)?;
        self.events.send(TrainEvent::CheckpointWritten {
            epoch: state.epochs_done.saturating_sub(1),
            path,
            best: false,
        });
        if best {
            let path = save(files::BEST, false)?;
            self.events.send(TrainEvent::CheckpointWritten {
                epoch: state.epochs_done.saturating_sub(1),
                path,
                best: true,
            });
        }
        Ok(())
    }

    fn finish(
        &self,
        setup: &Setup,
        model: &Autoencoder,
        state: &TrainerState,
        last_val: Option<Losses>,
        last_quality: Option<Quality>,
        stopped_early: bool,
    ) -> Flow<RunSummary> {
        let last = state.last_epoch.as_ref();
        let last_val = last_val.or_else(|| last.and_then(|e| e.val));
        let summary = RunSummary {
            backend: setup.backend.name.clone(),
            backend_kind: setup.backend.kind,
            epochs: state.epochs_done,
            steps: state.global_step,
            final_train_loss: last.map_or(f64::NAN, |e| e.train.total),
            final_val_loss: last_val.map(|v| v.total),
            val_mse: last_quality.map(|q| q.mse),
            baseline_val_mse: last_quality.and_then(|q| q.baseline_mse),
            val_psnr: last_quality
                .map(|q| q.psnr_db)
                .or_else(|| last.and_then(|e| e.val_psnr_db)),
            val_ssim: last_quality
                .map(|q| q.ssim)
                .or_else(|| last.and_then(|e| e.val_ssim)),
            images_per_sec: last.map_or(0.0, |e| e.images_per_sec),
            best_epoch: state.schedule.best_epoch,
            best_val_loss: state.schedule.best_val,
            stopped_early,
            train_members: setup.split.train.len(),
            val_members: setup.split.val.len(),
            latent_dim: self.config.model.latent_dim,
        };
        let members: Vec<usize> = match self.config.evaluation.export_all_latents {
            true => (0..self.ensemble.len()).collect(),
            false => setup.eval_members.clone(),
        };
        let values = self.encode(setup, model, &members)?;
        let ids: Vec<String> = members
            .iter()
            .map(|&m| self.ensemble.member_id(m))
            .collect();
        files::write_latents(
            &self.run_dir,
            &members,
            &ids,
            self.config.model.latent_dim,
            &values,
        )?;
        files::write_summary(&self.run_dir, &summary)?;
        Ok(summary)
    }
}

fn to_vec<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.try_into_vec_as::<f32>().unwrap_or_default()
}

/// All loss terms of one evaluation, read back in a single transfer.
fn read_losses(total: &Tensor<1>, terms: &LossTerms, sparsity: Option<&Tensor<1>>) -> Losses {
    let optional = [&terms.kl, &terms.cluster, &terms.contrastive];
    let mut parts = vec![
        total.clone().detach(),
        terms.reconstruction.clone().detach(),
    ];
    parts.extend(
        optional
            .iter()
            .filter_map(|t| t.as_ref().map(|t| t.clone().detach())),
    );
    parts.extend(sparsity.map(|t| t.clone().detach()));
    let values = Tensor::cat(parts, 0)
        .try_into_vec_as::<f64>()
        .unwrap_or_default();
    let mut values = values.into_iter();
    let mut next = || values.next().unwrap_or(f64::NAN);
    let total = next();
    let reconstruction = next();
    let [kl, cluster, contrastive] = optional.map(|t| t.as_ref().map(|_| next()));
    let sparsity = sparsity.map(|_| next());
    Losses {
        total,
        reconstruction,
        kl,
        cluster,
        contrastive,
        sparsity,
    }
}

/// Sample-weighted means of loss terms over an epoch.
#[derive(Default)]
struct LossSums {
    samples: f64,
    total: f64,
    reconstruction: f64,
    optional: [(f64, f64); 4],
}

impl LossSums {
    fn add(&mut self, losses: &Losses, samples: usize) {
        let n = samples as f64;
        self.samples += n;
        self.total += losses.total * n;
        self.reconstruction += losses.reconstruction * n;
        let terms = [
            losses.kl,
            losses.cluster,
            losses.contrastive,
            losses.sparsity,
        ];
        for (acc, term) in self.optional.iter_mut().zip(terms) {
            if let Some(v) = term {
                acc.0 += v * n;
                acc.1 += n;
            }
        }
    }

    fn mean(&self) -> Losses {
        let n = self.samples.max(1.0);
        let [kl, cluster, contrastive, sparsity] = self
            .optional
            .map(|(sum, count)| (count > 0.0).then(|| sum / count));
        Losses {
            total: self.total / n,
            reconstruction: self.reconstruction / n,
            kl,
            cluster,
            contrastive,
            sparsity,
        }
    }
}

/// Seed of one step's random draws, from `(seed, epoch, step)` (SplitMix64 finaliser).
fn step_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    let mut z = seed
        ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn add_noise(data: &[f32], sigma: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6E6F_6973_6521);
    match Normal::new(0.0f32, sigma) {
        Ok(normal) => data.iter().map(|v| v + normal.sample(&mut rng)).collect(),
        Err(_) => data.to_vec(), // σ was validated finite and positive
    }
}
