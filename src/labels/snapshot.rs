//! An immutable view of the labels for the training thread.

use super::colour::{Colour, palette_colour};
use crate::data::ClassLabels;
use std::collections::HashMap;
use std::sync::Arc;

/// The label a member trains with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainingLabel {
    /// Index into [`LabelSnapshot::classes`].
    pub class: u32,
    /// 1 for a manual label, the confidence for a pseudo-label.
    pub weight: f32,
    /// Whether the label was set by hand (else it is a pseudo-label).
    pub manual: bool,
}

/// A class as the snapshot numbers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotClass {
    pub name: String,
    pub colour: Colour,
}

/// The effective training labels at one moment: per member the manual label (weight 1), else
/// the pseudo-label if its confidence reaches the threshold (weight = confidence).
///
/// Cheap to clone and `Send + Sync`: hand it to the training thread; the store keeps changing
/// independently. Compare [`revision`](Self::revision) with
/// [`LabelStore::revision`](super::LabelStore::revision) to see whether it is stale.
#[derive(Clone, Debug)]
pub struct LabelSnapshot(Arc<SnapshotData>);

#[derive(Debug)]
struct SnapshotData {
    revision: u64,
    threshold: f32,
    classes: Vec<SnapshotClass>,
    labels: HashMap<String, TrainingLabel>,
}

impl LabelSnapshot {
    pub(crate) fn new(
        revision: u64,
        threshold: f32,
        classes: Vec<SnapshotClass>,
        labels: HashMap<String, TrainingLabel>,
    ) -> Self {
        Self(Arc::new(SnapshotData {
            revision,
            threshold,
            classes,
            labels,
        }))
    }

    /// No labels at all (training on reconstruction alone).
    pub fn empty() -> Self {
        Self::new(0, 1.0, Vec::new(), HashMap::new())
    }

    /// Manual labels (weight 1) from labels that came with a dataset (a labels file, or a
    /// sample's hand-labelled subset); `id_of` gives the id of member `i`. Classes keep the
    /// labels' order and take palette colours in that order.
    pub fn from_class_labels(labels: &ClassLabels, id_of: impl Fn(usize) -> String) -> Self {
        let classes = labels
            .classes
            .iter()
            .enumerate()
            .map(|(i, name)| SnapshotClass {
                name: name.clone(),
                colour: palette_colour(i),
            })
            .collect();
        let members = labels
            .per_member
            .iter()
            .enumerate()
            .filter_map(|(i, class)| {
                class.map(|class| {
                    let label = TrainingLabel {
                        class,
                        weight: 1.0,
                        manual: true,
                    };
                    (id_of(i), label)
                })
            })
            .collect();
        Self::new(0, 1.0, classes, members)
    }

    /// The store revision this snapshot was taken at.
    pub fn revision(&self) -> u64 {
        self.0.revision
    }

    /// The pseudo-label confidence threshold it was taken with.
    pub fn threshold(&self) -> f32 {
        self.0.threshold
    }

    /// Classes in store order; [`TrainingLabel::class`] indexes this.
    pub fn classes(&self) -> &[SnapshotClass] {
        &self.0.classes
    }

    /// The training label of member `id`, if it has one.
    pub fn get(&self, id: &str) -> Option<TrainingLabel> {
        self.0.labels.get(id).copied()
    }

    /// Members with a training label.
    pub fn len(&self) -> usize {
        self.0.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.labels.is_empty()
    }

    /// All (id, label) pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, TrainingLabel)> {
        self.0.labels.iter().map(|(id, l)| (id.as_str(), *l))
    }

    /// Training labels by member index, for an ensemble of `count` members whose ids
    /// `id_of` gives.
    pub fn for_members(
        &self,
        count: usize,
        id_of: impl Fn(usize) -> String,
    ) -> Vec<Option<TrainingLabel>> {
        (0..count).map(|i| self.get(&id_of(i))).collect()
    }
}
