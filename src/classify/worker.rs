//! The pseudo-labeller thread: [`Classifier::spawn`] starts it next to an ensemble.
//! [`ClassifierHandle::train`] estimates label spreading and the classifier on the hand labels
//! it is given, chooses ([`choose_and_label`]) and proposes the chosen labeller's
//! pseudo-labels ([`ClassifierEvent::PseudoLabels`]); it never writes a label store itself —
//! the store's one owner applies the proposal. [`ClassifierHandle::spread`] reruns spreading
//! alone (a second or two) over the newest features [`ClassifierHandle::set_features`] gave
//! it — the latents of the latest epoch — so the pseudo-labels follow the map after each
//! epoch and relabel. [`ClassifierHandle::stop`] cancels. Sending never blocks, and events
//! arrive on an unbounded channel (a few per epoch).

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use ndarray::Array2;

use super::choice::{
    Choice, FeatureSet, Labeller, LabellerOptions, LabellerOutcome, LabellerStep, Refresh,
    choose_and_label,
};
use super::config::ClassifierConfig;
use super::error::{ClassifyError, ClassifyResult};
use super::features::{PixelFeatures, SpectrumFeatures};
use super::labelled::LabelledSet;
use super::metrics::HeldoutReport;
use super::predict::TrainedClassifier;
use super::pseudo::{PseudoLabelProposal, PseudoLabelSummary, new_run_id, summarise};
use super::spreading::SpreadingConfig;
use super::train::EpochProgress;
use crate::data::Ensemble;
use crate::labels::{LabelSnapshot, Provenance};
use crate::projection::KnnGraph;
use crate::task::TaskControl;
use crate::train::backend::panic_message;
use crate::train::{SelectedBackend, select_backend};

/// What the classifier thread reports. Every run ends with exactly one of
/// `PseudoLabels`, `Stopped`, `Skipped` or `Error`.
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
    /// Trained and predicted (with the held-out figures); the pseudo-labels follow.
    Trained {
        run_id: String,
        report: HeldoutReport,
    },
    /// What a run is doing now (kNN graph, a cross-validation fold, …).
    Stage {
        run_id: String,
        stage: String,
    },
    /// The estimates and the choice; the pseudo-labels (none if nothing was chosen) follow.
    Chosen {
        run_id: String,
        choice: Choice,
    },
    /// The run's pseudo-labels for the store's owner to write (empty when no labeller was
    /// trusted: writing them clears stale proposals).
    PseudoLabels {
        run_id: String,
        proposal: Arc<PseudoLabelProposal>,
        summary: PseudoLabelSummary,
    },
    Stopped {
        run_id: String,
    },
    /// A spreading rerun that did not run: the last full run trusted another labeller.
    Skipped {
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
            Self::PseudoLabels { .. }
                | Self::Stopped { .. }
                | Self::Skipped { .. }
                | Self::Error { .. }
        )
    }
}

/// The hand labels a run learns from, and the file they came from (for error messages).
#[derive(Debug, Clone)]
pub struct HandLabels {
    /// Manual labels only (a snapshot taken with a NaN threshold admits no pseudo-label).
    pub snapshot: LabelSnapshot,
    pub origin: PathBuf,
}

enum Command {
    /// Estimate both labellers, choose, propose.
    Train {
        run_id: String,
        labels: HandLabels,
        control: TaskControl,
    },
    /// The last full run's choice again, on new hand labels: spreading reruns and a chosen
    /// classifier's linear head is refitted from its weights (a full run when there is none).
    Refresh {
        run_id: String,
        labels: HandLabels,
        control: TaskControl,
    },
    /// Spreading alone over the newest features, if spreading is what the last run trusted.
    Spread {
        run_id: String,
        labels: HandLabels,
        control: TaskControl,
    },
    /// Features of every member for spreading (`name`: `latent`, `pixels`).
    Features {
        rows: Arc<Array2<f32>>,
        name: &'static str,
    },
}

/// A feature set's kNN graph with the rows it was built on.
type BuiltGraph = (&'static str, Arc<KnnGraph>, Arc<Array2<f32>>);

/// What a refresh starts from: the last run's choice, its classifier and that classifier's
/// features of every member.
struct LastRun {
    choice: Choice,
    classifier: Option<TrainedClassifier>,
    features: Option<Arc<Array2<f32>>>,
}

/// What a command asks of the worker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunKind {
    Full,
    Refresh,
    SpreadingOnly,
}

pub struct Classifier;

impl Classifier {
    /// Starts the thread; it waits for [`ClassifierHandle::train`].
    pub fn spawn(
        ensemble: Ensemble,
        config: ClassifierConfig,
    ) -> std::io::Result<ClassifierHandle> {
        let (commands, commands_rx) = crossbeam_channel::unbounded();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let wake: Wake = Arc::new(std::sync::OnceLock::new());
        let worker = Worker {
            ensemble,
            config,
            wake: wake.clone(),
            backend: None,
            given: None,
            own: Vec::new(),
            graphs: Vec::new(),
            trusted: None,
            last: None,
            events: events_tx,
        };
        let thread = std::thread::Builder::new()
            .name("sense-classifier".into())
            .spawn(move || worker.run(commands_rx))?;
        Ok(ClassifierHandle {
            commands: Some(commands),
            events,
            current: Mutex::new(TaskControl::new()),
            wake,
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
    wake: Wake,
    thread: Option<JoinHandle<()>>,
}

/// Called on the classifier thread after each event is queued (set once).
type Wake = Arc<std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>>;

impl ClassifierHandle {
    /// Starts a run on `labels` now, cancelling a run in progress (call it whenever manual
    /// labels change). Returns the new run's id.
    pub fn train(&self, labels: HandLabels) -> String {
        self.start(|run_id, control| Command::Train {
            run_id,
            labels,
            control,
        })
    }

    /// `wake` is called on the classifier thread after each event is queued (a UI asks for
    /// a repaint in it instead of polling). Only the first call takes effect.
    pub fn on_event(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.wake.set(Box::new(wake));
    }

    /// After hand-label edits: keeps the last full run's choice and refreshes it on `labels`
    /// (spreading reruns; a chosen classifier's linear head is refitted from its weights on
    /// its cached features, seconds where a full run takes minutes). A full run instead when
    /// there is nothing to refresh: no earlier run, nothing trusted, or a new class.
    pub fn refresh(&self, labels: HandLabels) -> String {
        self.start(|run_id, control| Command::Refresh {
            run_id,
            labels,
            control,
        })
    }

    /// Reruns label spreading alone over the newest features (after an epoch or a relabel),
    /// cancelling a run in progress. It writes only while spreading is the trusted
    /// labeller: before any full run, or when the last one chose spreading.
    pub fn spread(&self, labels: HandLabels) -> String {
        self.start(|run_id, control| Command::Spread {
            run_id,
            labels,
            control,
        })
    }

    /// Features of every member (one row each) for the next runs, e.g. an epoch's latents.
    pub fn set_features(&self, rows: Arc<Array2<f32>>, name: &'static str) {
        if let Some(commands) = &self.commands {
            let _ = commands.send(Command::Features { rows, name });
        }
    }

    fn start(&self, command: impl FnOnce(String, TaskControl) -> Command) -> String {
        let run_id = new_run_id();
        let control = TaskControl::new();
        let previous = std::mem::replace(&mut *self.current_control(), control.clone());
        previous.cancel();
        if let Some(commands) = &self.commands {
            // The thread only ends when this handle drops; a send cannot fail before.
            let _ = commands.send(command(run_id.clone(), control));
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
    config: ClassifierConfig,
    wake: Wake,
    backend: Option<SelectedBackend>,
    /// The newest features given (an epoch's latents), by name.
    given: Option<(Arc<Array2<f32>>, &'static str)>,
    /// Pixel PCA and spectrum features, computed on first need.
    own: Vec<(Arc<Array2<f32>>, &'static str)>,
    /// The last kNN graph of each feature set and the rows it was built on: reused as it is
    /// while the rows stay the same (pixels, spectrum), else the next search starts from it.
    graphs: Vec<BuiltGraph>,
    /// What the last full run chose (`None` before one: spreading may write).
    trusted: Option<Option<Labeller>>,
    /// The last full or refreshed run, for the next refresh.
    last: Option<LastRun>,
    events: Sender<ClassifierEvent>,
}

impl Worker {
    fn run(mut self, commands: Receiver<Command>) {
        while let Ok(command) = commands.recv() {
            let (run_id, labels, control, kind) = match command {
                Command::Features { rows, name } => {
                    if rows.nrows() == self.ensemble.len() {
                        self.given = Some((rows, name));
                    }
                    continue;
                }
                Command::Train {
                    run_id,
                    labels,
                    control,
                } => (run_id, labels, control, RunKind::Full),
                Command::Refresh {
                    run_id,
                    labels,
                    control,
                } => (run_id, labels, control, RunKind::Refresh),
                Command::Spread {
                    run_id,
                    labels,
                    control,
                } => (run_id, labels, control, RunKind::SpreadingOnly),
            };
            let spreading_only = kind == RunKind::SpreadingOnly;
            let trusts_spreading = matches!(self.trusted, None | Some(Some(Labeller::Spreading)));
            if spreading_only && !trusts_spreading {
                self.send(ClassifierEvent::Skipped { run_id });
                continue;
            }
            if control.is_cancelled() {
                // Superseded before it started: a newer run is queued.
                self.send(ClassifierEvent::Stopped { run_id });
                continue;
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                self.run_once(&run_id, &labels, &control, kind)
            }))
            .unwrap_or_else(|panic| {
                Err(ClassifyError::Failed(format!(
                    "internal error: {}",
                    panic_message(&*panic)
                )))
            });
            let event = match outcome {
                Ok((proposal, summary)) => ClassifierEvent::PseudoLabels {
                    run_id,
                    proposal: Arc::new(proposal),
                    summary,
                },
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
        send_and_wake(&self.events, &self.wake, event);
    }

    fn backend(&mut self) -> SelectedBackend {
        if let Some(backend) = &self.backend {
            return backend.clone();
        }
        let backend = select_backend(self.config.backend);
        self.send(ClassifierEvent::Backend {
            name: backend.name.clone(),
            fallback_reason: backend.fallback_reason.clone(),
        });
        self.backend = Some(backend.clone());
        backend
    }

    /// The feature sets spreading chooses from: the given latents first, then pixel PCA
    /// and the spectrum, each with its last graph to start from.
    fn feature_sets(&mut self, control: &TaskControl) -> ClassifyResult<Vec<FeatureSet>> {
        if self.own.is_empty() {
            let members: Vec<usize> = (0..self.ensemble.len()).collect();
            let (_, pixels) = PixelFeatures::fit_transform(&self.ensemble, &members, control)?;
            let (_, spectrum) = SpectrumFeatures::fit_transform(&self.ensemble, &members, control)?;
            self.own = vec![
                (Arc::new(pixels), "pixels"),
                (Arc::new(spectrum), "spectrum"),
            ];
        }
        Ok(self
            .given
            .iter()
            .chain(&self.own)
            .map(|(rows, name)| {
                let last = self
                    .graphs
                    .iter()
                    .find(|(n, g, _)| n == name && g.n_rows() == rows.nrows());
                FeatureSet {
                    name,
                    rows: rows.clone(),
                    start: last.map(|(_, g, _)| g.clone()),
                    start_is_current: last
                        .is_some_and(|(_, _, built_on)| Arc::ptr_eq(built_on, rows)),
                }
            })
            .collect())
    }

    fn run_once(
        &mut self,
        run_id: &str,
        labels: &HandLabels,
        control: &TaskControl,
        kind: RunKind,
    ) -> Result<(PseudoLabelProposal, PseudoLabelSummary), ClassifyError> {
        let backend = self.backend();
        let labelled =
            LabelledSet::from_snapshot(&labels.snapshot, &self.ensemble, &labels.origin)?;
        let spreading_only = kind == RunKind::SpreadingOnly;
        self.send(ClassifierEvent::Started {
            run_id: run_id.to_string(),
            labelled_members: labelled.len(),
            classes: labelled.classes.len(),
        });
        let stage = |stage: &str| ClassifierEvent::Stage {
            run_id: run_id.to_string(),
            stage: stage.to_string(),
        };
        self.send(stage("features"));
        let features = self.feature_sets(control)?;
        // A refresh keeps a trusted choice; a chosen classifier must know exactly these
        // classes to be refitted (a new class needs a full run).
        let refresh = match (&self.last, kind) {
            (Some(last), RunKind::Refresh) => match last.choice.chosen {
                Some(Labeller::Spreading) => Some(Refresh {
                    choice: &last.choice,
                    classifier: None,
                    features: None,
                }),
                Some(_) => last
                    .classifier
                    .as_ref()
                    .filter(|c| c.classes() == labelled.classes)
                    .zip(last.features.as_ref())
                    .map(|(classifier, features)| Refresh {
                        choice: &last.choice,
                        classifier: Some(classifier),
                        features: Some(features),
                    }),
                None => None,
            },
            _ => None,
        };
        let (events, wake) = (self.events.clone(), self.wake.clone());
        let mut observe = |step: LabellerStep<'_>| {
            let event = match step {
                LabellerStep::Stage(s) => stage(s),
                LabellerStep::Epoch(progress) => ClassifierEvent::Epoch {
                    run_id: run_id.to_string(),
                    progress: progress.clone(),
                },
            };
            send_and_wake(&events, &wake, event);
        };
        let options = LabellerOptions {
            spreading: Some(SpreadingConfig::default()),
            classifier: (!spreading_only).then_some((&self.config, &backend)),
            keep_both: false,
            refresh,
            seed: self.config.seed,
        };
        let outcome = choose_and_label(
            &self.ensemble,
            &labelled,
            &features,
            &options,
            control,
            &mut observe,
        )?;
        if let Some(classifier) = &outcome.classifier {
            self.send(ClassifierEvent::Trained {
                run_id: run_id.to_string(),
                report: classifier.report().clone(),
            });
        }
        // The graphs this run built replace their names' earlier ones; a refresh builds
        // only the one it spreads over, so the others stay.
        for (name, graph) in &outcome.graphs {
            if let Some(set) = features.iter().find(|f| f.name == *name) {
                self.graphs.retain(|(n, _, _)| n != name);
                self.graphs.push((*name, graph.clone(), set.rows.clone()));
            }
        }
        self.send(ClassifierEvent::Chosen {
            run_id: run_id.to_string(),
            choice: outcome.choice.clone(),
        });
        if !spreading_only {
            self.trusted = Some(outcome.choice.chosen);
        }
        let LabellerOutcome {
            choice,
            classes,
            predictions,
            classifier,
            classifier_features,
            ..
        } = outcome;
        if !spreading_only {
            // A run that labelled without the classifier (spreading won) keeps the one it had.
            let earlier = self.last.take();
            let (classifier, features) = match (classifier, classifier_features) {
                (Some(c), Some(f)) => (Some(c), Some(f)),
                _ => earlier.map_or((None, None), |l| (l.classifier, l.features)),
            };
            self.last = Some(LastRun {
                choice: choice.clone(),
                classifier,
                features,
            });
        }
        control.check()?;
        let (written_id, provenance) = match choice.chosen {
            Some(labeller) => labeller.provenance(choice.features.as_deref().unwrap_or("none")),
            None => (String::new(), Provenance::classifier("none")),
        };
        let summary = summarise(
            &written_id,
            &classes,
            &predictions,
            self.config.confidence_threshold,
        );
        let proposal = PseudoLabelProposal {
            classes,
            predictions,
            provenance,
        };
        Ok((proposal, summary))
    }
}

fn send_and_wake(events: &Sender<ClassifierEvent>, wake: &Wake, event: ClassifierEvent) {
    // Nobody listening any more is fine: the handle is being dropped.
    let _ = events.send(event);
    if let Some(wake) = wake.get() {
        wake();
    }
}
