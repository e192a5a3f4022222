//! The training loop, run on the trainer thread.
//!
//! Where to read what:
//! - `epoch.rs` — the epoch loop (`run_inner`) and one pass over the training split, with the
//!   deferred loss read-back;
//! - `step.rs` — one optimiser step and its seeding;
//! - `losses.rs` — step losses kept on the device until read back, and epoch means;
//! - `recovery.rs` — a non-finite loss (roll back, halve the learning rate, once) and a failing
//!   GPU (continue on the CPU);
//! - `evaluation.rs` — validation, reconstructions and latents;
//! - `checkpoint.rs` — the start state (fresh or resumed), checkpoints, the end-of-run files;
//! - `setup.rs` — split, normalisation, augmentation and loaders, fixed once per run.
//!
//! The weighting of the loss terms lives in [`Objective`](super::objective::Objective).
//!
//! Determinism: batch order and augmentation are keyed by `(seed, epoch)`, and the device RNG
//! (VAE sampling, dropout) and denoising noise are re-seeded from `(seed, epoch, step)` before
//! every step, so a resumed run repeats the uninterrupted one step for step on one backend.

mod checkpoint;
mod epoch;
mod evaluation;
mod losses;
mod recovery;
mod setup;
mod step;

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use crossbeam_channel::Receiver;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::backend::{SelectedBackend, panic_message};
use super::config::{LossWeights, Monitor, TrainConfig};
use super::events::{EventSender, Losses, TermWeights, TrainEvent};
use super::heartbeat::{ProgressClock, RunEnd};
use super::objective::Objective;
use super::run_dir::{self as files, TrainerState};
use super::supervision::MemberLabels;
use super::worker::Command;
use crate::data::Ensemble;
use crate::error::DataError;
use crate::labels::LabelSnapshot;
use crate::nn::Autoencoder;
use crate::nn::losses::Supervision;

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

/// The model, optimiser and trainer state an epoch starts from.
type RunState = (Autoencoder, ModuleOptimizer, TrainerState);

pub(crate) struct Engine {
    config: TrainConfig,
    objective: Objective,
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
    /// The latest latents and reconstructions into `RUN_DIR/live/`, for a process following
    /// the run (`None` when its thread could not start: nothing else depends on it).
    live: Option<crate::train::live::LiveWriter>,
    /// Marked whenever the run moves on; its heartbeat and its handle read it.
    progress: Arc<ProgressClock>,
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
        progress: Arc<ProgressClock>,
    ) -> Self {
        let live = {
            let events = events.clone();
            crate::train::live::LiveWriter::spawn(
                run_dir.clone(),
                progress.clone(),
                move |message| events.send(TrainEvent::Notice(message)),
            )
            .ok()
        };
        Self {
            live,
            progress,
            objective: Objective::new(&config),
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
            Err(Halt::Stop) => self.stopped_event(),
            Err(Halt::Error(message)) => TrainEvent::Error(message),
        };
        if let Some(live) = self.live.as_mut() {
            live.finish(match &event {
                TrainEvent::Stopped { epoch, global_step } => RunEnd::Stopped {
                    epoch: *epoch,
                    global_step: *global_step,
                },
                TrainEvent::Error(message) => RunEnd::Failed {
                    message: message.clone(),
                },
                _ => RunEnd::Finished,
            });
        }
        self.events.send(event);
    }

    /// Where the run stands on disk: what a resume would continue from.
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

    /// The labelled rows of a batch, when the label terms weigh anything under `weights`.
    fn supervision(
        &self,
        weights: &TermWeights,
        members: &[usize],
        device: &Device,
    ) -> Option<Supervision> {
        self.objective
            .uses_labels(weights)
            .then(|| self.labels.supervision(members, device))
            .flatten()
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
            Monitor::Total => losses.total,
            Monitor::Reconstruction => losses.reconstruction,
        }
    }

    // ---------------------------------------------------------------- commands

    /// Whether the run was asked to stop. Called at every step, evaluation batch and pass of
    /// the setup, so it also tells the heartbeat that the trainer moves on.
    fn check_stop(&self) -> Flow<()> {
        self.progress.mark();
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
}
