//! Anomaly ranking by reconstruction error: members the autoencoder reconstructs worst come
//! first, those above a percentile of the training errors are flagged, and with known
//! anomalies the ranking is scored by ROC-AUC.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisError, AnalysisResult};

/// Members whose error exceeds this percentile of the training errors are flagged.
pub const DEFAULT_THRESHOLD_PERCENTILE: f64 = 99.0;

/// The ranking of a set of members by reconstruction error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRanking {
    /// Member indices, most anomalous (largest error) first; equal errors keep input order.
    pub ranking: Vec<usize>,
    /// The percentile of the training errors used as threshold, in [0, 100].
    pub threshold_percentile: f64,
    /// Its value (see [`percentile`]).
    pub threshold: f64,
    /// Per member: error strictly above `threshold`.
    pub flagged: Vec<bool>,
    pub n_flagged: usize,
    /// ROC-AUC of the errors as a score for the given anomaly labels.
    pub roc_auc: Option<f64>,
}

/// Mean squared error of each row of `reconstructions` against the same row of `originals`
/// (flattened images or any per-member vectors).
pub fn reconstruction_errors(
    originals: ArrayView2<f32>,
    reconstructions: ArrayView2<f32>,
) -> AnalysisResult<Vec<f64>> {
    if originals.nrows() != reconstructions.nrows() {
        return Err(AnalysisError::LengthMismatch {
            what: "reconstructions",
            expected: originals.nrows(),
            got: reconstructions.nrows(),
        });
    }
    if originals.ncols() != reconstructions.ncols() || originals.ncols() == 0 {
        return Err(AnalysisError::Invalid(format!(
            "reconstructions have {} values per member where the originals have {}",
            reconstructions.ncols(),
            originals.ncols()
        )));
    }
    originals
        .rows()
        .into_iter()
        .zip(reconstructions.rows())
        .enumerate()
        .map(|(row, (a, b))| {
            let sum: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum();
            let mse = sum / a.len() as f64;
            match mse.is_finite() {
                true => Ok(mse),
                false => Err(AnalysisError::NonFinite {
                    what: "reconstruction error",
                    row,
                }),
            }
        })
        .collect()
}

/// Ranks `errors` (one per member), thresholds them at `threshold_percentile` of
/// `training_errors` and, given one label per member (`true` = anomaly), scores the ranking.
pub fn rank_anomalies(
    errors: &[f64],
    training_errors: &[f64],
    threshold_percentile: f64,
    anomaly_labels: Option<&[bool]>,
) -> AnalysisResult<AnomalyRanking> {
    check_finite("reconstruction errors", errors)?;
    let threshold = percentile(training_errors, threshold_percentile)?;
    let mut ranking: Vec<usize> = (0..errors.len()).collect();
    // Stable sort: ties stay in input order.
    ranking.sort_by(|&a, &b| errors[b].total_cmp(&errors[a]));
    let flagged: Vec<bool> = errors.iter().map(|&e| e > threshold).collect();
    let roc_auc = anomaly_labels
        .map(|labels| roc_auc(errors, labels))
        .transpose()?;
    Ok(AnomalyRanking {
        ranking,
        threshold_percentile,
        threshold,
        n_flagged: flagged.iter().filter(|&&f| f).count(),
        flagged,
        roc_auc,
    })
}

/// The `q`-th percentile (q in [0, 100]) with linear interpolation between the two nearest
/// ranks, as numpy's default `np.percentile(values, q)`: sorted values v, position
/// h = (n − 1)·q/100, result v[⌊h⌋] + (h − ⌊h⌋)·(v[⌊h⌋+1] − v[⌊h⌋]).
pub fn percentile(values: &[f64], q: f64) -> AnalysisResult<f64> {
    if !(0.0..=100.0).contains(&q) {
        return Err(AnalysisError::Invalid(format!(
            "percentile {q} is outside [0, 100]"
        )));
    }
    if values.is_empty() {
        return Err(AnalysisError::Invalid("percentile of no values".into()));
    }
    check_finite("values", values)?;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = (sorted.len() - 1) as f64 * q / 100.0;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    Ok(sorted[below] + fraction * (sorted[above] - sorted[below]))
}

/// Area under the ROC curve of `scores` (higher = more anomalous) for the binary `labels`:
/// the Mann–Whitney statistic with tied scores given their average rank, which equals the
/// trapezoidal area scikit-learn's `roc_auc_score` computes, ties included.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> AnalysisResult<f64> {
    if labels.len() != scores.len() {
        return Err(AnalysisError::LengthMismatch {
            what: "anomaly labels",
            expected: scores.len(),
            got: labels.len(),
        });
    }
    check_finite("scores", scores)?;
    let n_positive = labels.iter().filter(|&&l| l).count();
    let n_negative = labels.len() - n_positive;
    if n_positive == 0 || n_negative == 0 {
        return Err(AnalysisError::Invalid(format!(
            "ROC-AUC needs both anomalies and normal members, got {n_positive} and {n_negative}"
        )));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        positive_rank_sum += positives as f64 * average_rank;
        start = end;
    }
    let n_pos = n_positive as f64;
    let u = positive_rank_sum - n_pos * (n_pos + 1.0) / 2.0;
    Ok(u / (n_pos * n_negative as f64))
}

fn check_finite(what: &'static str, values: &[f64]) -> AnalysisResult<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(row) => Err(AnalysisError::NonFinite { what, row }),
        None => Ok(()),
    }
}
