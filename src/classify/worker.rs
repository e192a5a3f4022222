//! The classifier thread: [`Classifier::spawn`] starts it next to an ensemble and its label
//! store; [`ClassifierHandle::train`] (re)trains on the store's current manual labels and
//! writes pseudo-labels, [`ClassifierHandle::stop`] cancels. Sending never blocks, and
//! events arrive on an unbounded channel (a few per epoch).

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::config::ClassifierConfig;
use super::error::ClassifyError;
use super::labelled::LabelledSet;
use super::metrics::HeldoutReport;
use super::pipeline::train_and_predict;
use super::pseudo::{PseudoLabelSummary, new_run_id, write_pseudo_labels};
use super::train::EpochProgress;
use crate::data::Ensemble;
use crate::labels::{LabelStore, Provenance};
use crate::task::TaskControl;
use crate::train::backend::panic_message;
use crate::train::{SelectedBackend, select_backend};

/// What the classifier thread reports. Every run ends with exactly one of
/// `PseudoLabelsWritten`, `Stopped` or `Error`.
#[derive(Debug, Clone)]
pub enum ClassifierEvent {
    /// The backend in use (once, before the first run).
    Backend {
        name: String,
        fallback_reason: Option<String>,
    },
    Started {
        run_id: String,
        labelled_members: usize,
        classes: usize,
    },
    Epoch {
        run_id: String,
        progress: EpochProgress,
    },
    /// Trained and predicted (with the held-out figures); the pseudo-labels are written next.
    Trained {
        run_id: String,
        report: HeldoutReport,
    },
    PseudoLabelsWritten {
        run_id: String,
        summary: PseudoLabelSummary,
    },
    Stopped {
        run_id: String,
    },
    Error {
        run_id: String,
        message: String,
    },
}

impl ClassifierEvent {
    /// Whether this event ends a run.
    pub fn ends_run(&self) -> bool {
        matches!(
            self,
            Self::PseudoLabelsWritten { .. } | Self::Stopped { .. } | Self::Error { .. }
        )
    }
}

enum Command {
    Train {
        run_id: String,
        control: TaskControl,
    },
}

pub struct Classifier;

impl Classifier {
    /// Starts the thread; it waits for [`ClassifierHandle::train`]. `store` is shared with
    /// whoever edits labels (the app): it is locked only to read the manual labels when a
    /// run starts and to write the pseudo-labels when it ends.
    pub fn spawn(
        ensemble: Ensemble,
        store: Arc<Mutex<LabelStore>>,
        config: ClassifierConfig,
    ) -> std::io::Result<ClassifierHandle> {
        let (commands, commands_rx) = crossbeam_channel::unbounded();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let worker = Worker {
            ensemble,
            store,
            config,
            backend: None,
            events: events_tx,
        };
        let thread = std::thread::Builder::new()
            .name("sense-classifier".into())
            .spawn(move || worker.run(commands_rx))?;
        Ok(ClassifierHandle {
            commands: Some(commands),
            events,
            current: Mutex::new(TaskControl::new()),
            thread: Some(thread),
        })
    }
}

/// Steers the classifier thread. Dropping it cancels any run and waits for the thread.
pub struct ClassifierHandle {
    commands: Option<Sender<Command>>,
    events: Receiver<ClassifierEvent>,
    /// The control of the latest requested run.
    current: Mutex<TaskControl>,
    thread: Option<JoinHandle<()>>,
}

impl ClassifierHandle {
    /// Starts a run on the store's manual labels now, cancelling a run in progress (call it
    /// whenever manual labels change). Returns the new run's id.
    pub fn train(&self) -> String {
        let run_id = new_run_id();
        let control = TaskControl::new();
        let previous = std::mem::replace(&mut *self.current_control(), control.clone());
        previous.cancel();
        if let Some(commands) = &self.commands {
            // The thread only ends when this handle drops; a send cannot fail before.
            let _ = commands.send(Command::Train {
                run_id: run_id.clone(),
                control,
            });
        }
        run_id
    }

    /// Cancels the run in progress (it ends with [`ClassifierEvent::Stopped`]).
    pub fn stop(&self) {
        self.current_control().cancel();
    }

    pub fn try_recv(&self) -> Result<ClassifierEvent, TryRecvError> {
        self.events.try_recv()
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Result<ClassifierEvent, RecvTimeoutError> {
        self.events.recv_timeout(timeout)
    }

    fn current_control(&self) -> MutexGuard<'_, TaskControl> {
        // The guarded value is replaced whole; a poisoned lock holds a valid control.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ClassifierHandle {
    fn drop(&mut self) {
        self.current_control().cancel();
        // Closing the command channel ends the thread's wait.
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker {
    ensemble: Ensemble,
    store: Arc<Mutex<LabelStore>>,
    config: ClassifierConfig,
    backend: Option<SelectedBackend>,
    events: Sender<ClassifierEvent>,
}

impl Worker {
    fn run(mut self, commands: Receiver<Command>) {
        while let Ok(Command::Train { run_id, control }) = commands.recv() {
            if control.is_cancelled() {
                // Superseded before it started: a newer run is queued.
                self.send(ClassifierEvent::Stopped { run_id });
                continue;
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| self.run_once(&run_id, &control)))
                .unwrap_or_else(|panic| {
                    Err(ClassifyError::Failed(format!(
                        "internal error: {}",
                        panic_message(&*panic)
                    )))
                });
            let event = match outcome {
                Ok(summary) => ClassifierEvent::PseudoLabelsWritten { run_id, summary },
                Err(ClassifyError::Cancelled) => ClassifierEvent::Stopped { run_id },
                Err(e) => ClassifierEvent::Error {
                    run_id,
                    message: e.to_string(),
                },
            };
            self.send(event);
        }
    }

    fn send(&self, event: ClassifierEvent) {
        // Nobody listening any more is fine: the handle is being dropped.
        let _ = self.events.send(event);
    }

    fn store(&self) -> MutexGuard<'_, LabelStore> {
        // A panic elsewhere while holding the store leaves it consistent: every store
        // change is all-or-nothing.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn run_once(
        &mut self,
        run_id: &str,
        control: &TaskControl,
    ) -> Result<PseudoLabelSummary, ClassifyError> {
        let backend = match &self.backend {
            Some(backend) => backend.clone(),
            None => {
                let backend = select_backend(self.config.backend);
                self.send(ClassifierEvent::Backend {
                    name: backend.name.clone(),
                    fallback_reason: backend.fallback_reason.clone(),
                });
                self.backend = Some(backend.clone());
                backend
            }
        };
        let labelled = {
            let store = self.store();
            // NaN admits no pseudo-label: the classifier learns from hand labels only.
            let snapshot = store.snapshot(f32::NAN);
            LabelledSet::from_snapshot(&snapshot, &self.ensemble, store.path())?
        };
        self.send(ClassifierEvent::Started {
            run_id: run_id.to_string(),
            labelled_members: labelled.len(),
            classes: labelled.classes.len(),
        });
        let events = self.events.clone();
        let mut on_epoch = |progress: &EpochProgress| {
            let _ = events.send(ClassifierEvent::Epoch {
                run_id: run_id.to_string(),
                progress: progress.clone(),
            });
        };
        let outcome = train_and_predict(
            &self.ensemble,
            &labelled,
            &self.config,
            &backend,
            run_id,
            control,
            &mut on_epoch,
        )?;
        self.send(ClassifierEvent::Trained {
            run_id: run_id.to_string(),
            report: outcome.classifier.report().clone(),
        });
        control.check()?;
        write_pseudo_labels(
            &mut self.store(),
            &self.ensemble,
            outcome.classifier.classes(),
            &outcome.predictions,
            Provenance::classifier(run_id),
        )?;
        Ok(outcome.summary)
    }
}
