//! The pseudo-labeller as the app runs it: the library's classifier thread, woken into the
//! UI on each event; its pseudo-labels come back as proposals for the label keeper.

use std::sync::Arc;

use ndarray::Array2;

use crate::app::error::AppError;
use crate::app::worker::Waker;
use crate::classify::{
    Choice, Classifier, ClassifierConfig, ClassifierEvent, ClassifierHandle, HandLabels,
    PseudoLabelProposal,
};
use crate::data::Ensemble;

/// The pseudo-labeller as the dataset panel shows it.
pub struct PseudoLabeller {
    handle: ClassifierHandle,
    pub running: bool,
    /// "epoch 12/40 · held-out 0.97" while training, the last result after.
    pub status: String,
    pub progress: f32,
    /// The last run's estimates and choice.
    pub choice: Option<Choice>,
    /// The run in progress estimates both labellers (a spreading rerun must not cancel it).
    full_run: bool,
}

/// What the app does after a pseudo-labeller event.
pub enum PseudoLabellerUpdate {
    /// New pseudo-labels for the label keeper to write, with a summary for the user.
    Proposed {
        proposal: Arc<PseudoLabelProposal>,
        summary: String,
    },
    Failed(String),
}

impl PseudoLabeller {
    pub fn start(
        ensemble: Ensemble,
        config: ClassifierConfig,
        waker: Waker,
    ) -> Result<Self, AppError> {
        let handle = Classifier::spawn(ensemble, config).map_err(|source| AppError::Thread {
            name: "classifier".into(),
            source,
        })?;
        handle.on_event(move || waker.wake());
        Ok(Self {
            handle,
            running: false,
            status: "not run yet".into(),
            progress: 0.0,
            choice: None,
            full_run: false,
        })
    }

    /// Reruns label spreading alone over the newest features (after an epoch or a relabel);
    /// the worker skips it unless spreading is the trusted labeller.
    pub fn spread(&mut self, labels: HandLabels) {
        if self.running && self.full_run {
            return;
        }
        self.handle.spread(labels);
        self.running = true;
        self.status = "spreading".into();
    }

    /// Every member's latents of the newest epoch, for spreading.
    pub fn set_features(&self, rows: Arc<Array2<f32>>) {
        self.handle.set_features(rows, "latent");
    }

    /// Retrains on the manual labels as they are now (cancelling a run in progress).
    pub fn retrain(&mut self, labels: HandLabels) {
        self.handle.train(labels);
        self.running = true;
        self.full_run = true;
        self.progress = 0.0;
        self.status = "starting".into();
    }

    pub fn stop(&self) {
        self.handle.stop();
    }

    pub fn pump(&mut self) -> Vec<PseudoLabellerUpdate> {
        let mut updates = Vec::new();
        while let Ok(event) = self.handle.try_recv() {
            let ends = event.ends_run();
            match event {
                ClassifierEvent::Backend { .. } => {}
                ClassifierEvent::Started {
                    labelled_members,
                    classes,
                    ..
                } => {
                    self.status = format!("{labelled_members} hand labels, {classes} classes");
                }
                ClassifierEvent::Epoch { progress, .. } => {
                    self.progress = (progress.epoch + 1) as f32 / progress.epochs.max(1) as f32;
                    self.status = format!(
                        "epoch {}/{} · held-out accuracy {:.3}",
                        progress.epoch + 1,
                        progress.epochs,
                        progress.heldout_accuracy
                    );
                }
                ClassifierEvent::Stage { stage, .. } => self.status = stage,
                ClassifierEvent::Chosen { choice, .. } => self.choice = Some(choice),
                ClassifierEvent::Skipped { .. } => {
                    self.status = "spreading skipped: the classifier is trusted".into();
                }
                ClassifierEvent::Trained { report, .. } => {
                    self.status = format!("held-out accuracy {:.3}; writing", report.accuracy);
                }
                ClassifierEvent::PseudoLabels {
                    proposal, summary, ..
                } => {
                    let text = format!(
                        "{} pseudo-labels, {} ≥ {:.2}",
                        summary.pseudo_labelled, summary.above_threshold, summary.threshold
                    );
                    self.status = text.clone();
                    updates.push(PseudoLabellerUpdate::Proposed {
                        proposal,
                        summary: text,
                    });
                }
                ClassifierEvent::Stopped { .. } => self.status = "stopped".into(),
                ClassifierEvent::Error { message, .. } => {
                    self.status = "failed".into();
                    updates.push(PseudoLabellerUpdate::Failed(message));
                }
            }
            if ends {
                self.running = false;
                self.full_run = false;
            }
        }
        updates
    }
}
