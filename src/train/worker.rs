//! The public face of the engine: [`Trainer::spawn`] starts a run on its own thread and
//! returns a [`TrainerHandle`] to steer it and read its [`TrainEvent`]s.

use crossbeam_channel::{RecvTimeoutError, Sender, TryRecvError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::config::{LossWeights, TrainConfig};
use super::engine::Engine;
use super::events::{EventReceiver, TrainEvent, event_channel};
use super::heartbeat::ProgressClock;
use crate::data::Ensemble;
use crate::labels::LabelSnapshot;

/// Instructions to a running trainer. Each takes effect between two training steps.
#[derive(Debug, Clone)]
pub enum Command {
    Pause,
    Resume,
    Stop,
    /// New labels, used from the next batch on.
    UpdateLabels(LabelSnapshot),
    /// New label-loss weights, used from the next epoch on.
    UpdateLossWeights(LossWeights),
    /// Latents of the evaluation subset after the current step.
    RequestLatents,
}

pub struct Trainer;

impl Trainer {
    /// Starts a new run in `run_dir` (created if needed; an existing checkpoint there is
    /// replaced). Setup errors arrive as [`TrainEvent::Error`].
    pub fn spawn(
        ensemble: Ensemble,
        labels: LabelSnapshot,
        config: TrainConfig,
        run_dir: impl Into<PathBuf>,
    ) -> std::io::Result<TrainerHandle> {
        Self::start(ensemble, labels, config, run_dir.into(), false)
    }

    /// Continues the run in `run_dir` from its last checkpoint. `config` is normally the
    /// run's own `config.toml` (see [`Trainer::load_config`]), possibly with more epochs or
    /// another backend; changing the model or data settings makes the checkpoint unusable.
    pub fn resume(
        ensemble: Ensemble,
        labels: LabelSnapshot,
        config: TrainConfig,
        run_dir: impl Into<PathBuf>,
    ) -> std::io::Result<TrainerHandle> {
        Self::start(ensemble, labels, config, run_dir.into(), true)
    }

    /// The configuration a run directory was trained with.
    pub fn load_config(run_dir: &std::path::Path) -> crate::error::DataResult<TrainConfig> {
        let path = run_dir.join(super::run_dir::CONFIG);
        let text =
            std::fs::read_to_string(&path).map_err(|e| crate::error::DataError::io(&path, e))?;
        TrainConfig::from_toml(&text).map_err(|e| crate::error::DataError::new(&path, e.0))
    }

    fn start(
        ensemble: Ensemble,
        labels: LabelSnapshot,
        config: TrainConfig,
        run_dir: PathBuf,
        resume: bool,
    ) -> std::io::Result<TrainerHandle> {
        let (events_tx, events) = event_channel();
        let (commands, commands_rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(ProgressClock::default());
        let engine = Engine::new(
            ensemble,
            labels,
            config,
            run_dir,
            resume,
            events_tx,
            commands_rx,
            stop.clone(),
            progress.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("sense-trainer".into())
            .spawn(move || engine.run())?;
        Ok(TrainerHandle {
            commands,
            events,
            stop,
            progress,
            thread: Some(thread),
        })
    }
}

/// Steers a run and receives its events. Dropping it stops the run and waits for the thread.
pub struct TrainerHandle {
    commands: Sender<Command>,
    events: EventReceiver,
    stop: Arc<AtomicBool>,
    progress: Arc<ProgressClock>,
    thread: Option<JoinHandle<()>>,
}

impl TrainerHandle {
    pub fn send(&self, command: Command) {
        if matches!(command, Command::Stop) {
            self.stop.store(true, Ordering::Release);
        }
        // A finished trainer has dropped its receiver; commands to it are moot.
        let _ = self.commands.send(command);
    }

    /// How long the trainer has gone without progress (a step, a batch of evaluation, a pass
    /// of its setup; marked while paused too). Minutes of it mean it may be hung.
    pub fn idle(&self) -> std::time::Duration {
        self.progress.idle()
    }

    pub fn pause(&self) {
        self.send(Command::Pause);
    }

    pub fn resume(&self) {
        self.send(Command::Resume);
    }

    /// Stops after the current batch (also while paused); a [`TrainEvent::Stopped`] follows.
    pub fn stop(&self) {
        self.send(Command::Stop);
    }

    pub fn update_labels(&self, labels: LabelSnapshot) {
        self.send(Command::UpdateLabels(labels));
    }

    /// A sender of new labels that outlives borrows of this handle: the label store's owner
    /// pushes each new snapshot through it, used from the trainer's next batch.
    pub fn label_sink(&self) -> impl Fn(LabelSnapshot) + Send + Sync + 'static {
        let commands = self.commands.clone();
        move |labels| {
            // A finished trainer has dropped its receiver; labels for it are moot.
            let _ = commands.send(Command::UpdateLabels(labels));
        }
    }

    /// `wake` runs on the training thread after each event is queued (a UI asks for a
    /// repaint in it instead of polling). Only the first call takes effect.
    pub fn on_event(&self, wake: impl Fn() + Send + Sync + 'static) {
        self.events.on_event(wake);
    }

    pub fn update_loss_weights(&self, weights: LossWeights) {
        self.send(Command::UpdateLossWeights(weights));
    }

    pub fn request_latents(&self) {
        self.send(Command::RequestLatents);
    }

    pub fn try_recv(&self) -> Result<TrainEvent, TryRecvError> {
        self.events.try_recv()
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Result<TrainEvent, RecvTimeoutError> {
        self.events.recv_timeout(timeout)
    }

    /// Blocks for the next event; `None` after the last one.
    pub fn recv(&self) -> Option<TrainEvent> {
        self.events.recv()
    }

    /// Whether the training thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the training thread to end (after a final event).
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TrainerHandle {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Release);
            let _ = self.commands.send(Command::Stop);
            let _ = thread.join();
        }
    }
}
