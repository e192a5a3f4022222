//! Per-member labels: a manual label and a pseudo-label, each with its provenance.

use super::classes::ClassId;
use super::provenance::Provenance;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A label set by a person (or imported ground truth).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Manual {
    pub class: ClassId,
    /// Shared by every member the same change labelled.
    pub provenance: Arc<Provenance>,
}

/// A label proposed by a classifier, with its confidence in 0..=1.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pseudo {
    pub class: ClassId,
    pub confidence: f32,
    pub provenance: Arc<Provenance>,
}

/// Everything known about one member. Members with neither label are not stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MemberLabels {
    pub manual: Option<Manual>,
    pub pseudo: Option<Pseudo>,
}

impl MemberLabels {
    pub(crate) fn is_empty(&self) -> bool {
        self.manual.is_none() && self.pseudo.is_none()
    }
}

/// Member id → labels, sorted by id so the CSV is stable and diffable.
pub(crate) type Members = BTreeMap<String, MemberLabels>;

/// Sets `id`'s labels, dropping the entry when it becomes empty.
pub(crate) fn put(members: &mut Members, id: &str, labels: &MemberLabels) {
    if labels.is_empty() {
        members.remove(id);
    } else if let Some(slot) = members.get_mut(id) {
        slot.clone_from(labels);
    } else {
        members.insert(id.to_string(), labels.clone());
    }
}

/// A member's manual label, as returned by [`LabelStore::manual`](super::LabelStore::manual).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ManualLabel<'a> {
    pub class: &'a str,
    pub provenance: &'a Provenance,
}

/// A member's pseudo-label, as returned by [`LabelStore::pseudo`](super::LabelStore::pseudo).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PseudoLabel<'a> {
    pub class: &'a str,
    /// The classifier's confidence, in 0..=1.
    pub confidence: f32,
    pub provenance: &'a Provenance,
}
