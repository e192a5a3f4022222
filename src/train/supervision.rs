//! From a [`LabelSnapshot`] to the per-batch [`Supervision`] the label losses train on.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::Ensemble;
use crate::labels::{LabelSnapshot, TrainingLabel};
use crate::nn::losses::Supervision;

/// The effective training label of every member, resolved once per snapshot.
#[derive(Debug, Clone, Default)]
pub struct MemberLabels {
    pub revision: u64,
    pub classes: usize,
    pub per_member: Vec<Option<TrainingLabel>>,
}

impl MemberLabels {
    /// Manual labels weigh 1; pseudo-labels count only from `pseudo_threshold` on and weigh
    /// their confidence (whatever threshold the snapshot was taken with).
    pub fn resolve(snapshot: &LabelSnapshot, ensemble: &Ensemble, pseudo_threshold: f32) -> Self {
        let per_member = if snapshot.is_empty() {
            vec![None; ensemble.len()]
        } else {
            snapshot
                .for_members(ensemble.len(), |i| ensemble.member_id(i))
                .into_iter()
                .map(|label| label.filter(|l| l.manual || l.weight >= pseudo_threshold))
                .collect()
        };
        Self {
            revision: snapshot.revision(),
            classes: snapshot.classes().len(),
            per_member,
        }
    }

    pub fn labelled_among(&self, members: &[usize]) -> usize {
        members
            .iter()
            .filter(|&&m| self.per_member.get(m).copied().flatten().is_some())
            .count()
    }

    /// Members with a manual label.
    pub fn manual_members(&self) -> Vec<usize> {
        (0..self.per_member.len())
            .filter(|&m| self.per_member[m].is_some_and(|l| l.manual))
            .collect()
    }

    /// Class per member for stratifying a split (`classes` = unlabelled).
    pub fn strata(&self) -> Vec<u32> {
        let unlabelled = self.classes as u32;
        self.per_member
            .iter()
            .map(|l| l.map_or(unlabelled, |l| l.class))
            .collect()
    }

    /// Supervision for a batch whose row `i` is member `members[i]`: labelled rows with
    /// one-hot × weight assignments. `None` when fewer than two rows or one class are
    /// labelled, where neither silhouette nor contrast is defined.
    pub fn supervision(&self, members: &[usize], device: &Device) -> Option<Supervision> {
        let k = self.classes;
        let mut rows = Vec::new();
        let mut assignments = Vec::new();
        let mut first_class = None;
        let mut several_classes = false;
        for (row, &member) in members.iter().enumerate() {
            let Some(label) = self.per_member.get(member).copied().flatten() else {
                continue;
            };
            if label.class as usize >= k {
                continue; // a snapshot never numbers beyond its classes; stay safe anyway
            }
            several_classes |= first_class.is_some_and(|c| c != label.class);
            first_class.get_or_insert(label.class);
            rows.push(row as i64);
            let mut one_hot = vec![0.0f32; k];
            one_hot[label.class as usize] = label.weight;
            assignments.extend(one_hot);
        }
        if rows.len() < 2 || !several_classes {
            return None;
        }
        let count = rows.len();
        Some(Supervision {
            rows: Tensor::<1, Int>::from_data(TensorData::new(rows, [count]), device),
            assignments: Tensor::<2>::from_data(TensorData::new(assignments, [count, k]), device),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::SnapshotClass;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn ensemble(n: usize) -> Ensemble {
        let raw = crate::data::RawArray::from_bytes(
            std::path::Path::new("test"),
            vec![0; n * 4],
            crate::data::DType::U8,
            crate::data::ByteOrder::Little,
            n,
            crate::data::Shape::new(1, 2, 2),
        )
        .unwrap();
        Ensemble::new(Arc::new(raw))
    }

    #[test]
    fn pseudo_labels_below_the_threshold_do_not_train() {
        let class = |name: &str| SnapshotClass {
            name: name.into(),
            colour: crate::labels::palette_colour(0),
        };
        let label = |class, weight, manual| TrainingLabel {
            class,
            weight,
            manual,
        };
        let labels = HashMap::from([
            ("0".to_string(), label(0, 1.0, true)),
            ("1".to_string(), label(1, 0.95, false)),
            ("2".to_string(), label(1, 0.5, false)),
        ]);
        let snapshot = LabelSnapshot::new(3, 0.0, vec![class("a"), class("b")], labels);
        let resolved = MemberLabels::resolve(&snapshot, &ensemble(4), 0.9);
        assert_eq!(resolved.labelled_among(&[0, 1, 2, 3]), 2);
        assert_eq!(resolved.manual_members(), vec![0]);
        assert_eq!(resolved.strata(), vec![0, 1, 2, 2]);

        let device = Device::flex();
        // Rows 1 and 3 of this batch are members 0 and 1.
        let supervision = resolved.supervision(&[3, 0, 2, 1], &device).unwrap();
        let rows: Vec<i64> = supervision.rows.try_into_vec_as().unwrap();
        assert_eq!(rows, vec![1, 3]);
        let p: Vec<f32> = supervision.assignments.try_into_vec_as().unwrap();
        assert_eq!(p, vec![1.0, 0.0, 0.0, 0.95]);
        // One class only: nothing to separate.
        assert!(resolved.supervision(&[0, 2, 3], &device).is_none());
    }
}
