//! The pseudo-labeller as the app runs it: the library's classifier thread, woken into the
//! UI on each event; its pseudo-labels come back as proposals for the label keeper.

use std::sync::Arc;

use ndarray::Array2;

use crate::app::error::AppError;
use crate::app::label_keeper::LabelView;
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
    /// How the last proposal changed the pseudo-labels.
    pub last_changes: Option<PseudoChanges>,
    /// The run in progress estimates both labellers (a spreading rerun must not cancel it).
    full_run: bool,
}

/// How a proposal changes the pseudo-labels in the store: members whose pseudo-label moves to
/// another class (per new class), gains one, or loses it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PseudoChanges {
    pub flipped: usize,
    pub added: usize,
    pub removed: usize,
    /// (class, members whose pseudo-label flipped to it), largest first.
    pub flipped_to: Vec<(String, usize)>,
}

impl PseudoChanges {
    pub fn between(view: &LabelView, proposal: &PseudoLabelProposal) -> Self {
        let mut proposed: Vec<Option<&str>> = vec![None; view.pseudo.len()];
        for p in &proposal.predictions {
            if let (Some(slot), Some(class)) = (
                proposed.get_mut(p.member),
                proposal.classes.get(p.class as usize),
            ) {
                *slot = Some(class.as_str());
            }
        }
        let mut changes = Self::default();
        let mut flipped_to: std::collections::BTreeMap<&str, usize> = Default::default();
        for (old, new) in view.pseudo.iter().zip(proposed) {
            let old = old
                .and_then(|p| view.classes.get(p.class))
                .map(|c| c.name.as_str());
            match (old, new) {
                (Some(old), Some(new)) if old != new => {
                    changes.flipped += 1;
                    *flipped_to.entry(new).or_default() += 1;
                }
                (None, Some(_)) => changes.added += 1,
                (Some(_), None) => changes.removed += 1,
                _ => {}
            }
        }
        changes.flipped_to = flipped_to
            .into_iter()
            .map(|(class, n)| (class.to_string(), n))
            .collect();
        changes
            .flipped_to
            .sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        changes
    }

    /// "12 flipped (vortex 9, jet 3), 4 new, 0 dropped".
    pub fn describe(&self) -> String {
        let per_class: Vec<String> = self
            .flipped_to
            .iter()
            .map(|(class, n)| format!("to {class} {n}"))
            .collect();
        let detail = match per_class.is_empty() {
            true => String::new(),
            false => format!(" ({})", per_class.join(", ")),
        };
        format!(
            "{} flipped{detail}, {} new, {} dropped",
            self.flipped, self.added, self.removed
        )
    }
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
            last_changes: None,
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
        self.full_run_started("starting");
    }

    /// After hand-label edits: the last run's choice refreshed on the labels as they are now,
    /// its classifier's linear head refitted from its weights (a full run when there is
    /// nothing to refresh). Cancels a run in progress.
    pub fn refresh(&mut self, labels: HandLabels) {
        self.handle.refresh(labels);
        self.full_run_started("refreshing");
    }

    /// A run that spreading alone must not cancel has been asked for.
    fn full_run_started(&mut self, status: &str) {
        self.running = true;
        self.full_run = true;
        self.progress = 0.0;
        self.status = status.into();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Prediction;
    use crate::labels::{LabelStore, Provenance};

    #[test]
    fn changes_count_flips_per_new_class_additions_and_drops() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LabelStore::create(dir.path().join("labels.csv")).unwrap();
        let ids: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
        store
            .set_manual(&["m0"], "a", Provenance::user("t"))
            .unwrap();
        store.add_class("b").unwrap();
        store
            .set_pseudo(
                [("m1", "a", 0.9), ("m2", "b", 0.8)],
                Provenance::classifier("r1"),
            )
            .unwrap();
        let view = crate::app::label_keeper::view_of(&store, &ids, 0.5);
        let prediction = |member, class| Prediction {
            member,
            class,
            confidence: 0.9,
        };
        let proposal = PseudoLabelProposal {
            classes: vec!["b".into(), "a".into()],
            // m1: a → b, m3: new (a), m2: dropped.
            predictions: vec![prediction(1, 0), prediction(3, 1)],
            provenance: Provenance::classifier("r2"),
        };
        let changes = PseudoChanges::between(&view, &proposal);
        assert_eq!(
            changes,
            PseudoChanges {
                flipped: 1,
                added: 1,
                removed: 1,
                flipped_to: vec![("b".into(), 1)],
            }
        );
        assert_eq!(changes.describe(), "1 flipped (to b 1), 1 new, 1 dropped");
    }
}
