//! Class labels attached to an ensemble on load: from a labels CSV (`id,label`), an IDX labels
//! file, or a built-in sample's ground truth.

/// One optional class per member, by index into `classes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassLabels {
    /// Class names in first-seen order (or the sample's defined order).
    pub classes: Vec<String>,
    /// `per_member[i]` is the class index of member `i`, or `None` when unlabelled.
    pub per_member: Vec<Option<u32>>,
}

impl ClassLabels {
    /// Members that carry a label.
    pub fn labelled_count(&self) -> usize {
        self.per_member.iter().filter(|l| l.is_some()).count()
    }

    /// Members per class, in `classes` order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &class in self.per_member.iter().flatten() {
            counts[class as usize] += 1;
        }
        counts
    }

    pub fn class_name(&self, member: usize) -> Option<&str> {
        self.per_member
            .get(member)
            .copied()
            .flatten()
            .map(|c| self.classes[c as usize].as_str())
    }
}

impl ClassLabels {
    /// Loads labels for `ensemble` from a CSV (`id,label`) or an IDX labels file.
    /// STUB: to be implemented.
    pub fn load(path: &std::path::Path, _ensemble: &super::Ensemble) -> crate::error::DataResult<Self> {
        Err(crate::error::DataError::new(path, "labels not implemented yet"))
    }
}
