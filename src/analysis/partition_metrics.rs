//! Agreement between two partitions of the same members (true classes vs found clusters):
//! adjusted Rand index, normalised mutual information and clustering accuracy. Label values are
//! only names: the two labellings may use different values and different counts.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

use crate::analysis::{AnalysisError, AnalysisResult};

/// Adjusted Rand index, as scikit-learn's `adjusted_rand_score`: 1 for identical partitions,
/// about 0 for independent ones, negative below chance.
pub fn adjusted_rand_index(labels_true: &[usize], labels_pred: &[usize]) -> AnalysisResult<f64> {
    let table = Contingency::new(labels_true, labels_pred)?;
    // Pair counts reach n², and their products n⁴: i128 keeps them exact up to n ≈ 10⁹.
    let n = table.total as i128;
    let sum_squares: i128 = table
        .cells
        .iter()
        .map(|&(_, _, c)| (c as i128).pow(2))
        .sum();
    let cross = |sizes: &[usize], pick: fn(&(usize, usize, usize)) -> usize| -> i128 {
        table
            .cells
            .iter()
            .map(|cell| cell.2 as i128 * sizes[pick(cell)] as i128)
            .sum::<i128>()
    };
    let true_pred = cross(&table.pred_sizes, |cell| cell.1) - sum_squares;
    let pred_true = cross(&table.true_sizes, |cell| cell.0) - sum_squares;
    let both = sum_squares - n;
    let neither = n * n - true_pred - pred_true - sum_squares;
    // sklearn's pair confusion matrix: [[neither, fp], [fn, both]].
    let (fp, fn_) = (true_pred, pred_true);
    if fp == 0 && fn_ == 0 {
        return Ok(1.0);
    }
    let numerator = 2 * (both * neither - fn_ * fp);
    let denominator = (both + fn_) * (fn_ + neither) + (both + fp) * (fp + neither);
    Ok(numerator as f64 / denominator as f64)
}

/// Normalised mutual information with arithmetic-mean normalisation, as scikit-learn's
/// `normalized_mutual_info_score` default: MI / ((H(true) + H(pred)) / 2). 1 when both sides
/// are a single cluster; 0 when the mutual information is 0.
pub fn normalized_mutual_info(labels_true: &[usize], labels_pred: &[usize]) -> AnalysisResult<f64> {
    let table = Contingency::new(labels_true, labels_pred)?;
    let (classes, clusters) = (table.true_sizes.len(), table.pred_sizes.len());
    if classes == 1 && clusters == 1 {
        return Ok(1.0);
    }
    let mi = mutual_information(&table);
    if mi == 0.0 {
        return Ok(0.0);
    }
    let normaliser = (entropy(&table.true_sizes) + entropy(&table.pred_sizes)) / 2.0;
    Ok(mi / normaliser)
}

/// Fraction of members whose cluster maps to their class under the best one-to-one matching of
/// clusters to classes (Hungarian algorithm). Unmatched clusters (when there are more clusters
/// than classes) count as wrong.
pub fn clustering_accuracy(labels_true: &[usize], labels_pred: &[usize]) -> AnalysisResult<f64> {
    let table = Contingency::new(labels_true, labels_pred)?;
    let (classes, clusters) = (table.true_sizes.len(), table.pred_sizes.len());
    // kuhn_munkres needs rows ≤ columns: put the shorter side on the rows.
    let (rows, columns) = (classes.min(clusters), classes.max(clusters));
    // The matching is O(rows² · columns) over a dense table: refuse labellings that are
    // really member ids rather than a few classes or clusters.
    if rows.saturating_mul(columns) > MAX_MATCHING_CELLS {
        return Err(AnalysisError::Invalid(format!(
            "clustering accuracy of {classes} classes against {clusters} clusters: at most \
             {MAX_MATCHING_CELLS} class × cluster pairs are supported"
        )));
    }
    let mut weights = vec![0i64; rows * columns];
    for &(class, cluster, count) in &table.cells {
        let (row, column) = if classes <= clusters {
            (class, cluster)
        } else {
            (cluster, class)
        };
        weights[row * columns + column] = count as i64;
    }
    let matrix = Matrix::from_vec(rows, columns, weights)
        .map_err(|err| AnalysisError::Invalid(format!("clustering accuracy: {err}")))?;
    let (matched, _) = kuhn_munkres(&matrix);
    Ok(matched as f64 / table.total as f64)
}

/// Largest class × cluster table the Hungarian matching takes (e.g. 1000 × 1000).
const MAX_MATCHING_CELLS: usize = 1_000_000;

/// Sparse contingency table of two labellings, with labels mapped to dense indices.
struct Contingency {
    /// (true index, predicted index, count) for every non-empty cell.
    cells: Vec<(usize, usize, usize)>,
    true_sizes: Vec<usize>,
    pred_sizes: Vec<usize>,
    total: usize,
}

impl Contingency {
    fn new(labels_true: &[usize], labels_pred: &[usize]) -> AnalysisResult<Self> {
        if labels_pred.len() != labels_true.len() {
            return Err(AnalysisError::LengthMismatch {
                what: "predicted labels",
                expected: labels_true.len(),
                got: labels_pred.len(),
            });
        }
        if labels_true.is_empty() {
            return Err(AnalysisError::Invalid(
                "no labelled members to compare".into(),
            ));
        }
        let (true_index, true_sizes) = dense(labels_true);
        let (pred_index, pred_sizes) = dense(labels_pred);
        let mut pairs: Vec<(usize, usize)> = true_index.into_iter().zip(pred_index).collect();
        pairs.sort_unstable();
        let mut cells: Vec<(usize, usize, usize)> = Vec::new();
        for (t, p) in pairs {
            match cells.last_mut() {
                Some(last) if (last.0, last.1) == (t, p) => last.2 += 1,
                _ => cells.push((t, p, 1)),
            }
        }
        Ok(Self {
            cells,
            true_sizes,
            pred_sizes,
            total: labels_true.len(),
        })
    }
}

/// Labels as dense indices 0..count (ascending label order) and the size of each.
fn dense(labels: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut distinct = labels.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut sizes = vec![0; distinct.len()];
    let index = labels
        .iter()
        .map(|label| {
            // Present by construction.
            let i = distinct.binary_search(label).unwrap_or(0);
            sizes[i] += 1;
            i
        })
        .collect();
    (index, sizes)
}

/// MI in nats, computed term by term as scikit-learn does (tiny terms dropped, clipped at 0).
fn mutual_information(table: &Contingency) -> f64 {
    if table.true_sizes.len() == 1 || table.pred_sizes.len() == 1 {
        return 0.0;
    }
    let n = table.total as f64;
    let mi: f64 = table
        .cells
        .iter()
        .map(|&(t, p, count)| {
            let count = count as f64;
            let outer = table.true_sizes[t] as f64 * table.pred_sizes[p] as f64;
            let term = count / n * (count.ln() - n.ln()) + count / n * (-outer.ln() + 2.0 * n.ln());
            if term.abs() < f64::EPSILON { 0.0 } else { term }
        })
        .sum();
    mi.max(0.0)
}

/// Entropy in nats of a labelling given its class sizes.
fn entropy(sizes: &[usize]) -> f64 {
    if sizes.len() <= 1 {
        return 0.0;
    }
    let total = sizes.iter().sum::<usize>() as f64;
    -sizes
        .iter()
        .map(|&s| s as f64 / total * ((s as f64).ln() - total.ln()))
        .sum::<f64>()
}
