//! The hand-labelled members a classifier trains on, from labels that came with the data or
//! from the manual labels of a label store.

use crate::data::{ClassLabels, Ensemble};
use crate::error::DataError;
use crate::labels::LabelSnapshot;
use std::path::Path;

use super::error::{ClassifyError, ClassifyResult};

/// Hand-labelled members and their classes. Only classes with at least one member are kept,
/// so the network never has an output it cannot learn.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSet {
    pub classes: Vec<String>,
    /// Member indices, ascending.
    pub members: Vec<usize>,
    /// Class (index into `classes`) of each of `members`.
    pub targets: Vec<u32>,
}

impl LabelledSet {
    /// The labelled members of `labels` (one entry per member of `ensemble`).
    pub fn from_class_labels(labels: &ClassLabels, ensemble: &Ensemble) -> ClassifyResult<Self> {
        if labels.per_member.len() != ensemble.len() {
            return Err(ClassifyError::Invalid(format!(
                "{}: {} labels for {} members",
                ensemble.origin(),
                labels.per_member.len(),
                ensemble.len()
            )));
        }
        let pairs = labels
            .per_member
            .iter()
            .enumerate()
            .filter_map(|(member, class)| class.map(|c| (member, c)));
        Self::from_pairs(&labels.classes, pairs)
    }

    /// The manual labels of a snapshot of the store at `store_path` (pseudo-labels never
    /// train the classifier that proposes them). A manual label on an id that is not a
    /// member means the store belongs to another dataset: an error naming the store.
    pub fn from_snapshot(
        snapshot: &LabelSnapshot,
        ensemble: &Ensemble,
        store_path: &Path,
    ) -> ClassifyResult<Self> {
        if let Some((id, _)) = snapshot
            .iter()
            .find(|(id, label)| label.manual && ensemble.index_of(id).is_none())
        {
            return Err(DataError::new(
                store_path,
                format!(
                    "labels member '{id}', which {} does not have: the label store belongs \
                     to another dataset",
                    ensemble.origin()
                ),
            )
            .into());
        }
        let classes: Vec<String> = snapshot.classes().iter().map(|c| c.name.clone()).collect();
        let per_member = snapshot.for_members(ensemble.len(), |i| ensemble.member_id(i));
        let pairs = per_member
            .iter()
            .enumerate()
            .filter_map(|(member, label)| label.filter(|l| l.manual).map(|l| (member, l.class)));
        Self::from_pairs(&classes, pairs)
    }

    fn from_pairs(
        classes: &[String],
        pairs: impl Iterator<Item = (usize, u32)>,
    ) -> ClassifyResult<Self> {
        let pairs: Vec<(usize, u32)> = pairs
            .filter(|&(_, class)| (class as usize) < classes.len())
            .collect();
        let mut used = vec![false; classes.len()];
        for &(_, class) in &pairs {
            used[class as usize] = true;
        }
        let mut dense = vec![u32::MAX; classes.len()];
        let mut kept = Vec::new();
        for (class, name) in classes.iter().enumerate().filter(|&(c, _)| used[c]) {
            dense[class] = kept.len() as u32;
            kept.push(name.clone());
        }
        Ok(Self {
            classes: kept,
            members: pairs.iter().map(|&(m, _)| m).collect(),
            targets: pairs.iter().map(|&(_, c)| dense[c as usize]).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Class per member of an ensemble of `count` members (`u32::MAX`: unlabelled).
    pub fn dense_targets(&self, count: usize) -> Vec<u32> {
        let mut dense = vec![u32::MAX; count];
        for (&member, &class) in self.members.iter().zip(&self.targets) {
            if let Some(slot) = dense.get_mut(member) {
                *slot = class;
            }
        }
        dense
    }
}
