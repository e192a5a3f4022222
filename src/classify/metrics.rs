//! Held-out figures of a classifier: accuracy, per-class precision and recall, and the
//! confusion matrix.

use serde::{Deserialize, Serialize};

/// Precision and recall of one class. `None` where undefined (no member predicted as, or
/// truly of, the class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    pub class: String,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Members truly of this class in the scored set.
    pub support: usize,
}

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub classes: Vec<String>,
    /// `counts[truth][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    pub fn new(classes: Vec<String>) -> Self {
        let k = classes.len();
        Self {
            classes,
            counts: vec![vec![0; k]; k],
        }
    }

    /// Records one prediction; classes out of range are ignored (they cannot occur when the
    /// matrix and the network share their class list).
    pub fn add(&mut self, truth: u32, predicted: u32) {
        if let Some(cell) = self
            .counts
            .get_mut(truth as usize)
            .and_then(|row| row.get_mut(predicted as usize))
        {
            *cell += 1;
        }
    }

    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Share of correct predictions; `None` for an empty matrix.
    pub fn accuracy(&self) -> Option<f64> {
        let correct: usize = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        let total = self.total();
        (total > 0).then(|| correct as f64 / total as f64)
    }

    pub fn class_scores(&self) -> Vec<ClassScore> {
        let ratio = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
        (0..self.classes.len())
            .map(|c| {
                let hits = self.counts[c][c];
                let support: usize = self.counts[c].iter().sum();
                let predicted: usize = self.counts.iter().map(|row| row[c]).sum();
                ClassScore {
                    class: self.classes[c].clone(),
                    precision: ratio(hits, predicted),
                    recall: ratio(hits, support),
                    support,
                }
            })
            .collect()
    }

    /// A fixed-width text table, rows = truth, columns = prediction.
    pub fn to_table(&self) -> String {
        let width = self
            .classes
            .iter()
            .map(|c| c.chars().count())
            .chain(self.counts.iter().flatten().map(|n| n.to_string().len()))
            .max()
            .unwrap_or(1)
            .max(5);
        let mut out = format!("{:>width$}", "");
        for class in &self.classes {
            out.push_str(&format!(" {class:>width$}"));
        }
        out.push('\n');
        for (class, row) in self.classes.iter().zip(&self.counts) {
            out.push_str(&format!("{class:>width$}"));
            for n in row {
                out.push_str(&format!(" {n:>width$}"));
            }
            out.push('\n');
        }
        out
    }
}

/// What a trained classifier scored on its held-out members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldoutReport {
    pub accuracy: f64,
    /// Mean cross-entropy (nats).
    pub loss: f64,
    pub per_class: Vec<ClassScore>,
    pub confusion: ConfusionMatrix,
    /// The epoch (zero-based) whose weights were kept.
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_members: usize,
    pub heldout_members: usize,
    pub train_secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_and_recall_follow_the_matrix() {
        let mut m = ConfusionMatrix::new(vec!["a".into(), "b".into(), "c".into()]);
        // a: 3 right, 1 called b; b: 2 right; c: never predicted, 1 called a.
        for (t, p) in [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (2, 0)] {
            m.add(t, p);
        }
        assert_eq!(m.total(), 7);
        assert_eq!(m.accuracy(), Some(5.0 / 7.0));
        let scores = m.class_scores();
        assert_eq!(scores[0].precision, Some(3.0 / 4.0));
        assert_eq!(scores[0].recall, Some(3.0 / 4.0));
        assert_eq!(scores[1].precision, Some(2.0 / 3.0));
        assert_eq!(scores[1].recall, Some(1.0));
        assert_eq!(scores[2].precision, None);
        assert_eq!(scores[2].recall, Some(0.0));
        assert_eq!(ConfusionMatrix::new(vec![]).accuracy(), None);
    }
}
