//! The epoch loop, and one pass over the training split.
//!
//! Step losses stay on the device and are read back together (see `losses.rs`): after the
//! first step of an epoch (so its loss shows at once), every
//! `evaluation.loss_readback_steps` steps, before a waiting command is applied (so events
//! keep their order), before latents are sent mid-epoch, and at the end of the epoch. A
//! non-finite value found at a read-back ends the pass; the epoch loop then rolls back.

use burn::optim::ModuleOptimizer;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use super::checkpoint::weights_are_finite;
use super::evaluation::Validation;
use super::losses::{LossSums, PendingSteps, StepRecord};
use super::recovery::NonFinite;
use super::setup::Setup;
use super::step::{StepInput, step_seed};
use super::{Engine, Flow, Halt, RunState};
use crate::error::DataError;
use crate::nn::Autoencoder;
use crate::train::backend::{panic_message, select_backend};
use crate::train::events::{EpochSummary, Losses, RunSummary, StepProgress, TrainEvent};
use crate::train::run_dir::{self as files, TrainerState};
use crate::train::supervision::MemberLabels;

/// How one pass over the training split ended.
pub(super) enum EpochRun {
    Done {
        model: Box<Autoencoder>,
        pass: Pass,
    },
    NonFinite {
        step: usize,
        what: NonFinite,
        losses: Losses,
    },
    Panicked(String),
}

/// What a completed pass over the training split reports.
pub(super) struct Pass {
    epoch: usize,
    lr: f64,
    losses: Losses,
    samples: usize,
    /// Training time, pauses excluded.
    train_secs: f64,
    started: Instant,
}

/// The training losses of one epoch: steps still on the device, and the sums of those read.
struct EpochLog {
    epoch: usize,
    steps: usize,
    lr: f64,
    pending: PendingSteps,
    sums: LossSums,
    /// The last step read back, for the error message of a non-finite weight.
    last: Option<(usize, Losses)>,
}

impl Engine {
    pub(super) fn run_inner(&mut self) -> Flow<RunSummary> {
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
        while state.epochs_done < self.config.epochs {
            let epoch = state.epochs_done;
            if let Some(weights) = self.pending_weights.take() {
                state.schedule.lambda_cluster = weights.lambda_cluster;
                state.schedule.lambda_contrastive = weights.lambda_contrastive;
            }
            let lr = state.schedule.learning_rate(&self.config, epoch);
            // What a non-finite value rolls back to.
            let saved: RunState = (model.clone(), optim.clone(), state.clone());
            match self.train_epoch(&setup, model, &mut optim, &mut state, epoch, lr)? {
                EpochRun::Done {
                    model: trained,
                    pass,
                } => {
                    model = *trained;
                    let validation = self.close_epoch(&setup, &model, &optim, &mut state, pass)?;
                    if let Some(v) = validation {
                        last_quality = v.quality;
                        last_val = Some(v.losses);
                    }
                    if state.schedule.should_stop_early(&self.config) {
                        stopped_early = true;
                        break;
                    }
                }
                EpochRun::NonFinite { step, what, losses } => {
                    (model, optim, state) =
                        self.recover_non_finite(saved, epoch, step, what, losses)?;
                }
                EpochRun::Panicked(message) => {
                    (model, optim, state) = self.recover_from_panic(&mut setup, message)?;
                }
            }
        }
        self.finish(
            &setup,
            &model,
            &state,
            last_val,
            last_quality,
            stopped_early,
        )
    }

    /// One pass over the training split at learning rate `lr`.
    fn train_epoch(
        &mut self,
        setup: &Setup,
        mut model: Autoencoder,
        optim: &mut ModuleOptimizer,
        state: &mut TrainerState,
        epoch: usize,
        lr: f64,
    ) -> Flow<EpochRun> {
        let started = Instant::now();
        let loader = self.train_loader(setup, epoch)?;
        let steps = loader.batch_count().max(1);
        let readback_steps = self.config.evaluation.loss_readback_steps.max(1);
        let mut log = EpochLog {
            epoch,
            steps,
            lr,
            pending: PendingSteps::default(),
            sums: LossSums::default(),
            last: None,
        };
        let mut samples = 0usize;
        let paused_before = self.paused_secs;
        let start = Instant::now();
        let device = setup.backend.device.clone().autodiff();
        for (step, batch) in loader.enumerate() {
            // A command may pause the run or change what the next steps train on: report the
            // steps so far first, so the events keep their order.
            if !self.commands.is_empty()
                && let Some(failed) = self.read_back(&mut log)
            {
                return Ok(failed);
            }
            self.poll_commands()?;
            let batch = batch?;
            let weights = state
                .schedule
                .weights(&self.config, epoch, step as f64 / steps as f64);
            let attempt = self.attempts;
            self.attempts += 1;
            let input = StepInput {
                device: &device,
                batch: &batch,
                weights: &weights,
                lr,
                seed: step_seed(self.config.seed, epoch, step),
                attempt,
            };
            let this = &*self;
            let stepped = catch_unwind(AssertUnwindSafe(|| this.train_step(model, optim, input)));
            let (trained, losses) = match stepped {
                Ok(result) => result,
                Err(panic) => return Ok(EpochRun::Panicked(panic_message(&*panic))),
            };
            model = trained;
            samples += batch.len();
            state.global_step += 1;
            let record = StepRecord {
                step,
                global_step: state.global_step,
                attempt,
                samples: batch.len(),
            };
            log.pending.push(record, losses);

            // Read back after an epoch's first step (its loss shows at once), every
            // `readback_steps`, and before latents (never sent from weights a pending NaN spoiled).
            let latents = std::mem::take(&mut self.latents_requested);
            if (step == 0 || latents || log.pending.len() >= readback_steps)
                && let Some(failed) = self.read_back(&mut log)
            {
                return Ok(failed);
            }
            if latents {
                self.send_latents(setup, &model, epoch)?;
            }
        }
        self.check_stop()?;
        if let Some(failed) = self.read_back(&mut log) {
            return Ok(failed);
        }
        // A finite loss can still come with a non-finite gradient: check the weights too,
        // before they can reach a checkpoint.
        match catch_unwind(AssertUnwindSafe(|| weights_are_finite(&model))) {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                let (step, losses) = log.last.unwrap_or((steps - 1, Losses::default()));
                return Ok(EpochRun::NonFinite {
                    step,
                    what: NonFinite::Weights,
                    losses,
                });
            }
            Ok(Err(message)) => return Ok(EpochRun::Panicked(message)),
            Err(panic) => return Ok(EpochRun::Panicked(panic_message(&*panic))),
        }
        let train_secs =
            (start.elapsed().as_secs_f64() - (self.paused_secs - paused_before)).max(1e-9);
        Ok(EpochRun::Done {
            model: Box::new(model),
            pass: Pass {
                epoch,
                lr,
                losses: log.sums.mean(),
                samples,
                train_secs,
                started,
            },
        })
    }

    /// After a completed pass: validation, reconstructions and latents, the schedule, the
    /// checkpoint and the epoch's summary. Returns the validation.
    fn close_epoch(
        &self,
        setup: &Setup,
        model: &Autoencoder,
        optim: &ModuleOptimizer,
        state: &mut TrainerState,
        pass: Pass,
    ) -> Flow<Option<Validation>> {
        let epoch = pass.epoch;
        let validation = self.validate(setup, model, state, epoch)?;
        self.send_reconstructions(setup, model, epoch)?;
        let every = self.config.evaluation.latents_every_epochs;
        if every > 0 && (epoch + 1).is_multiple_of(every) {
            self.send_latents(setup, model, epoch)?;
        }
        let monitored = self.monitored(validation.as_ref().map_or(&pass.losses, |v| &v.losses));
        let best = state.schedule.observe(&self.config, epoch, monitored);
        state.epochs_done = epoch + 1;
        state.train_secs += pass.train_secs;
        let quality = validation.as_ref().and_then(|v| v.quality);
        let summary = EpochSummary {
            epoch,
            train: pass.losses,
            val: validation.as_ref().map(|v| v.losses),
            val_psnr_db: quality.map(|q| q.psnr_db),
            val_ssim: quality.map(|q| q.ssim),
            images_per_sec: pass.samples as f64 / pass.train_secs.max(1e-9),
            learning_rate: pass.lr,
            weights: state.schedule.weights(&self.config, epoch, 0.0),
            labelled_members: self.labels().labelled_among(&setup.split.train),
            best,
            elapsed_secs: pass.started.elapsed().as_secs_f64(),
        };
        state.last_epoch = Some(summary.clone());
        // The metrics line first: a process killed between the two leaves a line the
        // checkpoint does not cover, which a resume truncates and trains again. The other
        // order would leave a checkpointed epoch without its line, and no resume restores it.
        files::append_metrics(&self.run_dir, &summary)?;
        self.write_checkpoint(model, optim, state, best)?;
        self.events.send(TrainEvent::Epoch(summary));
        Ok(validation)
    }

    /// Reads the pending step losses back: adds them to the epoch's sums and sends their Step
    /// events. `Some` ends the pass: at the first non-finite step, or when the read fails.
    fn read_back(&mut self, log: &mut EpochLog) -> Option<EpochRun> {
        let read = match catch_unwind(AssertUnwindSafe(|| log.pending.read())) {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                return Some(EpochRun::Panicked(format!(
                    "cannot read the losses back: {e}"
                )));
            }
            Err(panic) => return Some(EpochRun::Panicked(panic_message(&*panic))),
        };
        let every = self.config.evaluation.step_event_every.max(1);
        for (record, losses) in read {
            if !losses.is_finite() {
                // The steps trained after it are discarded with the epoch: they do not count
                // as attempts, so a retried step has the attempt number it had before.
                self.attempts = record.attempt + 1;
                return Some(EpochRun::NonFinite {
                    step: record.step,
                    what: NonFinite::Loss,
                    losses,
                });
            }
            log.sums.add(&losses, record.samples);
            log.last = Some((record.step, losses));
            let progress = StepProgress {
                epoch: log.epoch,
                step: record.step,
                steps_per_epoch: log.steps,
                global_step: record.global_step,
                losses,
                learning_rate: log.lr,
            };
            if let Some(live) = &self.live {
                live.step(progress);
            }
            if record.global_step.is_multiple_of(every) || record.step + 1 == log.steps {
                self.events.send(TrainEvent::Step(progress));
            }
        }
        None
    }
}
