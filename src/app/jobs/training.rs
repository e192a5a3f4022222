//! A training run as the UI sees it: the trainer's handle, its state, progress with ETA, and
//! the history of losses the curves draw.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::app::error::AppError;
use crate::app::session::PastRun;
use crate::app::worker::Waker;
use crate::data::Ensemble;
use crate::labels::LabelSnapshot;
use crate::train::follow::RunFollower;
use crate::train::heartbeat;
use crate::train::{
    EpochSummary, EvalSubset, LossWeights, Losses, Reconstruction, StepProgress, TrainConfig,
    TrainEvent, Trainer, TrainerHandle,
};

/// Ensembles up to this size report every member's latents each epoch (the map subsamples,
/// and spreading follows them); above it, a seeded live subsample of [`LIVE_SAMPLE_MEMBERS`].
const ALL_LATENTS_MAX_MEMBERS: usize = 50_000;
/// Members of a very large ensemble whose latents reach the live map each epoch (every
/// hand-labelled member among them).
pub const LIVE_SAMPLE_MEMBERS: usize = 20_000;

/// The training configuration the app runs: the form's, with the latents the map needs.
pub fn app_train_config(form: &TrainConfig, ensemble_len: usize) -> TrainConfig {
    let mut config = form.clone();
    config.evaluation.latents_every_epochs = 1;
    config.evaluation.subset = EvalSubset::All;
    config.evaluation.max_members =
        (ensemble_len > ALL_LATENTS_MAX_MEMBERS).then_some(LIVE_SAMPLE_MEMBERS);
    config
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Starting,
    Running,
    Paused,
    Stopping,
    Finished,
    Stopped,
    Failed(String),
}

impl RunState {
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Running | Self::Paused | Self::Stopping
        )
    }
}

/// What the UI reacts to beyond the run's own bookkeeping.
#[derive(Debug)]
pub enum TrainingUpdate {
    Latents(crate::train::Latents),
    /// A message for the notifications (fallback to the CPU, NaN recovery, errors).
    Notice {
        text: String,
        error: bool,
    },
    /// What the notifications say of the trainer's health (it failed, or may be hung), in place
    /// of what they said before; `None` takes that down (a new run started, or it moves again).
    TrainerHealth(Option<String>),
}

/// Everything the training, loss-curve and reconstruction panels show.
#[derive(Debug, Default)]
pub struct TrainingHistory {
    pub epochs: Vec<EpochSummary>,
    /// (global step, losses) every few steps.
    pub steps: Vec<(u64, Losses)>,
    pub reconstructions: Option<(usize, Vec<Reconstruction>)>,
}

/// Where a run's events come from.
enum RunSource {
    /// A trainer in this process.
    Trainer(TrainerHandle),
    /// Another process's run, read from its directory as it grows.
    Follower(RunFollower),
    /// A run of an earlier session, restored from its files: no events.
    Files,
}

pub struct TrainingRun {
    source: RunSource,
    /// Restored from the session's run directory, not trained in this app.
    pub restored: bool,
    /// When the followed run's directory last gave news.
    pub last_news: Option<Instant>,
    pub state: RunState,
    /// "NVIDIA H200 (Vulkan)" or "CPU (burn flex)", once the trainer has chosen.
    pub backend: Option<String>,
    pub history: TrainingHistory,
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub steps_per_epoch: usize,
    pub first_epoch: usize,
    pub epochs: usize,
    pub images_per_sec: Option<f64>,
    /// A checkpoint of this run is on disk.
    pub checkpoint_written: bool,
    /// Why the trainer may be hung (it runs, without progress for long).
    pub stalled: Option<String>,
    /// The latest step, for saying where a hung trainer stopped.
    last_step: Option<StepProgress>,
    started_at: Option<Instant>,
    backlog: bool,
}

impl TrainingRun {
    /// Starts a run (or continues the one in `run_dir`). Setup errors arrive as events;
    /// each event wakes the UI through `waker`.
    pub fn start(
        ensemble: Ensemble,
        labels: LabelSnapshot,
        config: TrainConfig,
        run_dir: PathBuf,
        resume: bool,
        waker: Waker,
    ) -> Result<Self, AppError> {
        let handle = match resume {
            true => Trainer::resume(ensemble, labels, config.clone(), &run_dir),
            false => Trainer::spawn(ensemble, labels, config.clone(), &run_dir),
        }
        .map_err(|source| AppError::Thread {
            name: "trainer".into(),
            source,
        })?;
        handle.on_event(move || waker.wake());
        Ok(Self::new(RunSource::Trainer(handle), config.epochs))
    }

    /// Follows `run_dir`, which another process trains: its epochs, reconstructions and
    /// latents arrive as they are written (members matched to `ensemble` by id).
    pub fn follow(run_dir: PathBuf, ensemble: &Ensemble, waker: Waker) -> Result<Self, AppError> {
        let ensemble = ensemble.clone();
        let follower = RunFollower::spawn(run_dir, Box::new(move |id| ensemble.index_of(id)))
            .map_err(|source| AppError::Thread {
                name: "run follower".into(),
                source,
            })?;
        follower.on_event(move || waker.wake());
        Ok(Self::new(RunSource::Follower(follower), 0))
    }

    fn new(source: RunSource, epochs: usize) -> Self {
        Self {
            source,
            restored: false,
            last_news: None,
            state: RunState::Starting,
            backend: None,
            history: TrainingHistory::default(),
            epoch: 0,
            step_in_epoch: 0,
            steps_per_epoch: 0,
            first_epoch: 0,
            epochs,
            images_per_sec: None,
            checkpoint_written: false,
            stalled: None,
            last_step: None,
            started_at: None,
            backlog: false,
        }
    }

    /// The directory of the run this app follows (trained by another process).
    pub fn followed_dir(&self) -> Option<&std::path::Path> {
        match &self.source {
            RunSource::Follower(follower) => Some(follower.run_dir()),
            _ => None,
        }
    }

    /// The run an earlier session left in its run directory: its loss history, and
    /// finished or stopped by whether it reached the epochs it planned.
    pub fn restored(past: PastRun) -> Self {
        let done = past.epochs.len();
        Self {
            source: RunSource::Files,
            restored: true,
            last_news: None,
            state: match done >= past.planned_epochs {
                true => RunState::Finished,
                false => RunState::Stopped,
            },
            backend: None,
            epoch: done,
            step_in_epoch: 0,
            steps_per_epoch: 0,
            first_epoch: 0,
            epochs: past.planned_epochs,
            images_per_sec: past.epochs.last().map(|e| e.images_per_sec),
            checkpoint_written: false,
            stalled: None,
            last_step: None,
            started_at: None,
            backlog: false,
            history: TrainingHistory {
                epochs: past.epochs,
                ..TrainingHistory::default()
            },
        }
    }

    /// A continued run shows the epochs before it too.
    pub fn continue_history(&mut self, earlier: TrainingHistory) {
        self.history.epochs = earlier.epochs;
    }

    /// The trainer in this process, if this run has one.
    fn trainer(&self) -> Option<&TrainerHandle> {
        match &self.source {
            RunSource::Trainer(handle) => Some(handle),
            _ => None,
        }
    }

    pub fn pause(&mut self) {
        if let Some(handle) = self.trainer() {
            handle.pause();
        }
    }

    pub fn resume(&mut self) {
        if let Some(handle) = self.trainer() {
            handle.resume();
        }
    }

    /// Stops the trainer, or stops following (the other process trains on).
    pub fn stop(&mut self) {
        if let RunSource::Follower(_) = self.source {
            self.source = RunSource::Files;
            if self.state.is_active() {
                self.state = RunState::Stopped;
            }
            return;
        }
        if self.state.is_active() {
            self.state = RunState::Stopping;
        }
        if let Some(handle) = self.trainer() {
            handle.stop();
        }
    }

    /// Where the label keeper pushes each new training snapshot (`None`: nothing trains
    /// here).
    pub fn label_sink(&self) -> Option<crate::app::label_keeper::LabelSink> {
        let handle = self.trainer()?;
        Some(Box::new(handle.label_sink()))
    }

    pub fn update_loss_weights(&self, weights: LossWeights) {
        if let Some(handle) = self.trainer() {
            handle.update_loss_weights(weights);
        }
    }

    /// Reads at most `budget` pending events (so a flood never stalls a frame).
    pub fn pump(&mut self, budget: usize) -> Vec<TrainingUpdate> {
        let mut updates = Vec::new();
        self.backlog = true;
        for _ in 0..budget {
            let event = match &self.source {
                RunSource::Trainer(handle) => handle.try_recv(),
                RunSource::Follower(follower) => follower.try_recv(),
                RunSource::Files => Err(crossbeam_channel::TryRecvError::Empty),
            };
            let Ok(event) = event else {
                self.backlog = false;
                break;
            };
            if matches!(self.source, RunSource::Follower(_)) {
                self.last_news = Some(Instant::now());
            }
            self.absorb(event, &mut updates);
        }
        if let Some(handle) = self.trainer().filter(|_| self.state.is_active()) {
            let idle = handle.idle();
            self.watch_progress(idle, &mut updates);
        }
        updates
    }

    /// A trainer in this process whose events cannot say it is stuck: checked every frame
    /// (the UI asks for one every few seconds while it runs, see [`Self::watches_its_trainer`]).
    pub fn watches_its_trainer(&self) -> bool {
        self.trainer().is_some() && self.state.is_active()
    }

    /// Says when the trainer in this process, `idle` since its last progress, may be hung, and
    /// when it moves again. (A followed run's trainer says so through its heartbeat.)
    fn watch_progress(&mut self, idle: Duration, updates: &mut Vec<TrainingUpdate>) {
        let reason = heartbeat::stall_reason("the trainer", idle, self.last_step.as_ref());
        if reason.is_some() != self.stalled.is_some() {
            updates.push(TrainingUpdate::TrainerHealth(
                reason
                    .as_ref()
                    .map(|why| format!("Training may be hung: {why}")),
            ));
        }
        // The panel shows the minutes as they grow; the notification says it once.
        self.stalled = reason;
    }

    /// The last [`pump`](Self::pump) left events unread.
    pub fn has_pending_events(&self) -> bool {
        self.backlog
    }

    fn absorb(&mut self, event: TrainEvent, updates: &mut Vec<TrainingUpdate>) {
        let notice = |text: String, error: bool| TrainingUpdate::Notice { text, error };
        match event {
            TrainEvent::Backend {
                name,
                fallback_reason,
                ..
            } => {
                if let Some(reason) = fallback_reason {
                    updates.push(notice(format!("Training on {name}: {reason}"), false));
                }
                self.backend = Some(name);
            }
            TrainEvent::Started {
                steps_per_epoch,
                first_epoch,
                epochs,
                ..
            } => {
                // What was said of a trainer before (it failed, is gone, may be hung) is over
                // with a new start: a followed run taken up again, or a new run here.
                updates.push(TrainingUpdate::TrainerHealth(None));
                self.stalled = None;
                self.state = RunState::Running;
                self.steps_per_epoch = steps_per_epoch;
                self.first_epoch = first_epoch;
                self.epoch = first_epoch;
                self.epochs = epochs;
                self.started_at = Some(Instant::now());
            }
            TrainEvent::Step(
                progress @ StepProgress {
                    epoch,
                    step,
                    steps_per_epoch,
                    global_step,
                    losses,
                    ..
                },
            ) => {
                self.last_step = Some(progress);
                self.epoch = epoch;
                self.step_in_epoch = step + 1;
                // A followed run learns the epoch's length here (its start cannot tell).
                self.steps_per_epoch = steps_per_epoch;
                supersede(&mut self.history.steps, |(s, _)| *s >= global_step);
                self.history.steps.push((global_step, losses));
            }
            TrainEvent::Epoch(summary) => {
                self.epoch = summary.epoch + 1;
                self.step_in_epoch = 0;
                self.images_per_sec = Some(summary.images_per_sec);
                supersede(&mut self.history.epochs, |e| e.epoch >= summary.epoch);
                self.history.epochs.push(summary);
            }
            TrainEvent::Reconstructions { epoch, images } => {
                self.history.reconstructions = Some((epoch, images));
            }
            TrainEvent::Latents(latents) => updates.push(TrainingUpdate::Latents(latents)),
            TrainEvent::Recovered { message, .. } | TrainEvent::Notice(message) => {
                updates.push(notice(message, false))
            }
            TrainEvent::Stalled(why) => {
                updates.push(TrainingUpdate::TrainerHealth(
                    why.as_ref()
                        .map(|why| format!("Training may be hung: {why}")),
                ));
                self.stalled = why;
            }
            TrainEvent::Paused => self.state = RunState::Paused,
            TrainEvent::Resumed => self.state = RunState::Running,
            TrainEvent::Finished(_) => self.end(RunState::Finished, updates),
            TrainEvent::Stopped { .. } => self.end(RunState::Stopped, updates),
            TrainEvent::Error(message) => {
                self.stalled = None;
                updates.push(TrainingUpdate::TrainerHealth(Some(format!(
                    "Training failed: {message}"
                ))));
                self.state = RunState::Failed(message);
            }
            TrainEvent::CheckpointWritten { .. } => self.checkpoint_written = true,
            TrainEvent::LabelsUpdated { .. } | TrainEvent::LossWeightsUpdated { .. } => {}
        }
    }

    /// The run ended as it should: a stall it was in is over.
    fn end(&mut self, state: RunState, updates: &mut Vec<TrainingUpdate>) {
        if self.stalled.take().is_some() {
            updates.push(TrainingUpdate::TrainerHealth(None));
        }
        self.state = state;
    }

    /// Fraction of the run done, in 0..=1.
    pub fn progress(&self) -> f32 {
        let total = self.epochs.saturating_sub(self.first_epoch).max(1) as f32;
        let within = match self.steps_per_epoch {
            0 => 0.0,
            n => self.step_in_epoch as f32 / n as f32,
        };
        ((self.epoch.saturating_sub(self.first_epoch)) as f32 + within.min(1.0)) / total
    }

    /// Time left at the pace so far.
    pub fn eta(&self) -> Option<Duration> {
        let elapsed = self.started_at?.elapsed().as_secs_f32();
        let done = self.progress();
        (done > 0.01 && self.state == RunState::Running)
            .then(|| Duration::from_secs_f32(elapsed * (1.0 - done) / done))
    }
}

/// Drops the points a newer one replaces: a run that went back (a NaN rollback, a resume
/// from an earlier checkpoint, a fresh run in a followed directory) trains those steps or
/// epochs again, and the curves show each once. Checks the last point first: in order, the
/// common case, nothing is scanned.
fn supersede<T>(points: &mut Vec<T>, replaced: impl Fn(&T) -> bool) {
    if points.last().is_some_and(&replaced) {
        points.retain(|point| !replaced(point));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(global_step: u64) -> TrainEvent {
        TrainEvent::Step(StepProgress {
            epoch: 0,
            step: global_step as usize,
            steps_per_epoch: 10,
            global_step,
            losses: Losses::default(),
            learning_rate: 1e-3,
        })
    }

    #[test]
    fn a_trainer_here_without_progress_for_the_limit_may_be_hung_until_it_moves() {
        let mut run = TrainingRun::new(RunSource::Files, 3);
        let mut updates = Vec::new();
        run.absorb(step(7), &mut updates);
        let limit = heartbeat::STALL_LIMIT;
        run.watch_progress(limit - Duration::from_secs(1), &mut updates);
        assert!(updates.is_empty() && run.stalled.is_none());

        run.watch_progress(limit + Duration::from_secs(5), &mut updates);
        let Some(TrainingUpdate::TrainerHealth(Some(said))) = updates.pop() else {
            panic!("a stall is said");
        };
        assert!(
            said.starts_with("Training may be hung: the trainer has made no progress for 10 min")
                && said.contains("epoch 1, step 8 of 10"),
            "{said}"
        );
        // Said once; the panel's minutes grow.
        run.watch_progress(limit + Duration::from_secs(125), &mut updates);
        assert!(updates.is_empty());
        assert!(
            run.stalled
                .as_ref()
                .is_some_and(|why| why.contains("for 12 min"))
        );

        run.watch_progress(Duration::ZERO, &mut updates);
        assert!(matches!(
            updates.as_slice(),
            [TrainingUpdate::TrainerHealth(None)]
        ));
        assert_eq!(run.stalled, None);
    }

    #[test]
    fn a_run_that_goes_back_replaces_the_steps_it_trains_again() {
        let mut run = TrainingRun::new(RunSource::Files, 3);
        let mut updates = Vec::new();
        for s in [1, 2, 3, 4, 2, 3, 4, 5] {
            run.absorb(step(s), &mut updates);
        }
        let steps: Vec<u64> = run.history.steps.iter().map(|(s, _)| *s).collect();
        assert_eq!(steps, [1, 2, 3, 4, 5]);
        assert_eq!((run.step_in_epoch, run.steps_per_epoch), (6, 10));
    }
}
