//! What the training thread reports, and the channel that carries it without ever blocking
//! training.
//!
//! One unbounded FIFO keeps every event in order. Frequent, replaceable events (step losses,
//! reconstructions, latents) are *droppable*: each kind has a small cap on how many may wait
//! unread, and beyond it new ones are dropped (a slow consumer sees fewer frames, never stale
//! backlog). Everything else (epoch summaries, checkpoints, backend, recovery, finished /
//! stopped / error) is always delivered.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::backend::BackendKind;

/// Every loss term of a step or an epoch mean. `total` is the weighted sum that was optimised;
/// the terms are unweighted. Absent terms did not apply (no VAE, no labels, no sparsity).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Losses {
    pub total: f64,
    pub reconstruction: f64,
    pub kl: Option<f64>,
    pub cluster: Option<f64>,
    pub contrastive: Option<f64>,
    pub sparsity: Option<f64>,
}

impl Losses {
    pub fn is_finite(&self) -> bool {
        [
            Some(self.total),
            Some(self.reconstruction),
            self.kl,
            self.cluster,
            self.contrastive,
            self.sparsity,
        ]
        .into_iter()
        .flatten()
        .all(f64::is_finite)
    }
}

/// The weights in force during an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TermWeights {
    pub reconstruction: f64,
    /// Multiplier of the KL term (warm-up), before β·latent/(H·W).
    pub kl: f64,
    /// Multiplier of both label losses (pre-training, adaptive weights).
    pub label: f64,
    pub lambda_cluster: f64,
    pub lambda_contrastive: f64,
}

/// One epoch, as written to `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// Zero-based.
    pub epoch: usize,
    pub train: Losses,
    pub val: Option<Losses>,
    /// PSNR of validation reconstructions in data units (dB).
    pub val_psnr_db: Option<f64>,
    pub val_ssim: Option<f64>,
    /// Training throughput (samples per second of training-step time).
    pub images_per_sec: f64,
    pub learning_rate: f64,
    pub weights: TermWeights,
    /// Training members that carried a label this epoch.
    pub labelled_members: usize,
    /// Whether this epoch gave the best monitored validation loss so far.
    pub best: bool,
    pub elapsed_secs: f64,
}

/// Where the trainer is within the run: a step whose losses were read back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepProgress {
    /// Zero-based, like the step.
    pub epoch: usize,
    pub step: usize,
    pub steps_per_epoch: usize,
    pub global_step: u64,
    pub losses: Losses,
    pub learning_rate: f64,
}

/// Original and reconstruction of one member, in data units.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconstruction {
    pub member: usize,
    pub id: String,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    pub original: Vec<f32>,
    pub reconstruction: Vec<f32>,
}

/// Latent codes of a set of members (`values` is row-major `members.len() × dim`).
#[derive(Debug, Clone, PartialEq)]
pub struct Latents {
    pub epoch: usize,
    pub members: Vec<usize>,
    pub ids: Arc<Vec<String>>,
    pub dim: usize,
    pub values: Vec<f32>,
}

/// End-of-run figures, as written to `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub backend: String,
    pub backend_kind: BackendKind,
    /// Epochs completed in the run (including those before a resume).
    pub epochs: usize,
    pub steps: u64,
    pub final_train_loss: f64,
    pub final_val_loss: Option<f64>,
    /// Validation MSE in normalised units.
    pub val_mse: Option<f64>,
    /// MSE of predicting the per-pixel training mean image for every validation member
    /// (normalised units): what "learning nothing" scores.
    pub baseline_val_mse: Option<f64>,
    pub val_psnr: Option<f64>,
    pub val_ssim: Option<f64>,
    pub images_per_sec: f64,
    pub best_epoch: Option<usize>,
    pub best_val_loss: Option<f64>,
    pub stopped_early: bool,
    pub train_members: usize,
    pub val_members: usize,
    pub latent_dim: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    /// Where the run trains, decided once at start-up (or after a GPU failure).
    Backend {
        kind: BackendKind,
        name: String,
        /// Why this is not the backend asked for.
        fallback_reason: Option<String>,
    },
    Started {
        train_members: usize,
        val_members: usize,
        eval_members: usize,
        steps_per_epoch: usize,
        /// First epoch this session trains (non-zero after a resume).
        first_epoch: usize,
        epochs: usize,
    },
    /// Droppable.
    Step(StepProgress),
    Epoch(EpochSummary),
    /// Droppable.
    Reconstructions {
        epoch: usize,
        images: Vec<Reconstruction>,
    },
    /// Droppable.
    Latents(Latents),
    CheckpointWritten {
        epoch: usize,
        path: PathBuf,
        best: bool,
    },
    LabelsUpdated {
        revision: u64,
        labelled_members: usize,
    },
    LossWeightsUpdated {
        lambda_cluster: f64,
        lambda_contrastive: f64,
    },
    /// A non-finite loss: the run went back to the start of the epoch with a lower LR.
    Recovered {
        epoch: usize,
        step: usize,
        learning_rate: f64,
        message: String,
    },
    Paused,
    Resumed,
    /// Something worth saying that is not an error of the run (a followed run's file that
    /// cannot be read).
    Notice(String),
    /// A followed run's trainer is alive but has made no progress for a long while (why it may
    /// be hung); `None` once that is over (it moves again, or its run ended).
    Stalled(Option<String>),
    Finished(RunSummary),
    Stopped {
        epoch: usize,
        global_step: u64,
    },
    Error(String),
}

impl TrainEvent {
    /// Whether the run is over after this event.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TrainEvent::Finished(_) | TrainEvent::Stopped { .. } | TrainEvent::Error(_)
        )
    }

    fn droppable_kind(&self) -> Option<usize> {
        match self {
            TrainEvent::Step(_) => Some(0),
            TrainEvent::Reconstructions { .. } => Some(1),
            TrainEvent::Latents(_) => Some(2),
            _ => None,
        }
    }
}

/// Unread events of each droppable kind allowed in the queue: step, reconstructions, latents.
const DROPPABLE_CAPS: [usize; 3] = [256, 2, 2];

type Pending = Arc<[AtomicUsize; 3]>;

/// Called on the training thread after each queued event (set once, by the consumer).
pub(crate) type Wake = Arc<std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>>;

/// The training thread's end.
#[derive(Clone)]
pub(crate) struct EventSender {
    tx: Sender<TrainEvent>,
    pending: Pending,
    wake: Wake,
}

/// The consumer's end.
pub struct EventReceiver {
    rx: Receiver<TrainEvent>,
    pending: Pending,
    wake: Wake,
}

pub(crate) fn event_channel() -> (EventSender, EventReceiver) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let pending: Pending = Arc::new(Default::default());
    let wake: Wake = Arc::new(std::sync::OnceLock::new());
    (
        EventSender {
            tx,
            pending: pending.clone(),
            wake: wake.clone(),
        },
        EventReceiver { rx, pending, wake },
    )
}

impl EventSender {
    /// Queues `event` without blocking; a droppable event over its cap is discarded.
    pub(crate) fn send(&self, event: TrainEvent) {
        if let Some(kind) = event.droppable_kind() {
            let counter = &self.pending[kind];
            if counter.fetch_add(1, Ordering::AcqRel) >= DROPPABLE_CAPS[kind] {
                counter.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
        // A gone receiver means nobody listens any more; training goes on to its checkpoint.
        let _ = self.tx.send(event);
        if let Some(wake) = self.wake.get() {
            wake();
        }
    }
}

impl EventReceiver {
    /// `wake` runs on the training thread after each queued event (a UI requests a repaint
    /// in it instead of polling). Only the first call takes effect.
    pub fn on_event(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.wake.set(Box::new(wake));
    }

    fn received(&self, event: TrainEvent) -> TrainEvent {
        if let Some(kind) = event.droppable_kind() {
            self.pending[kind].fetch_sub(1, Ordering::AcqRel);
        }
        event
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Result<TrainEvent, TryRecvError> {
        self.rx.try_recv().map(|e| self.received(e))
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Result<TrainEvent, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map(|e| self.received(e))
    }

    /// Blocks for the next event; `None` once the training thread is gone and all is read.
    pub fn recv(&self) -> Option<TrainEvent> {
        self.rx.recv().ok().map(|e| self.received(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(i: u64) -> TrainEvent {
        TrainEvent::Step(StepProgress {
            epoch: 0,
            step: i as usize,
            steps_per_epoch: 100,
            global_step: i,
            losses: Losses::default(),
            learning_rate: 1e-3,
        })
    }

    #[test]
    fn droppable_events_are_capped_and_finals_always_arrive() {
        let (tx, rx) = event_channel();
        for i in 0..1000 {
            tx.send(step(i));
        }
        tx.send(TrainEvent::Stopped {
            epoch: 0,
            global_step: 1000,
        });
        let mut steps = 0;
        let mut last = None;
        while let Ok(event) = rx.try_recv() {
            if matches!(event, TrainEvent::Step(_)) {
                steps += 1;
            }
            last = Some(event);
        }
        assert_eq!(steps, DROPPABLE_CAPS[0]);
        assert!(last.unwrap().is_final());
        // Reading frees room again.
        tx.send(step(2000));
        assert!(matches!(rx.try_recv(), Ok(TrainEvent::Step(_))));
    }
}
