//! Clustering of latents: k-means, Gaussian mixtures and agglomerative clustering, one
//! [`Clustering`] result for all of them, and the choice of K over a range ([`sweep_k`]).
//!
//! Every method is deterministic for a given seed. Inputs are `f32` matrices with one row per
//! member; the work is done in `f64` (linfa and the reference implementations work in double).

mod agglomerative;
mod gmm;
mod kmeans;
mod model_selection;

pub use agglomerative::{Dendrogram, Linkage, MAX_AGGLOMERATIVE_MEMBERS, Merge, agglomerative};
pub use gmm::{GmmFit, GmmOptions, gmm};
pub use kmeans::{KMeansFit, KMeansOptions, kmeans};
pub use model_selection::{KScore, KSweep, elbow_k, sweep_k};

use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// The clustering algorithm, as the CLI's `--method` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMethod {
    /// k-means (k-means++ initialisation, best of several restarts).
    Kmeans,
    /// Gaussian mixture with full covariances, fitted by EM.
    Gmm,
    /// Agglomerative, Ward linkage (minimum increase of within-cluster variance).
    Ward,
    /// Agglomerative, complete linkage (maximum pairwise distance).
    Complete,
    /// Agglomerative, average linkage (UPGMA).
    Average,
    /// Agglomerative, single linkage (minimum pairwise distance).
    Single,
}

impl ClusterMethod {
    /// The linkage of an agglomerative method; `None` for k-means and GMM.
    pub fn linkage(self) -> Option<Linkage> {
        match self {
            Self::Kmeans | Self::Gmm => None,
            Self::Ward => Some(Linkage::Ward),
            Self::Complete => Some(Linkage::Complete),
            Self::Average => Some(Linkage::Average),
            Self::Single => Some(Linkage::Single),
        }
    }
}

/// Everything that steers a clustering run. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterOptions {
    /// Seeds every random choice (initialisation, restarts, silhouette subsample).
    pub seed: u64,
    pub kmeans: KMeansOptions,
    pub gmm: GmmOptions,
    /// The silhouette that picks K is exact on at most this many members; above it, on a
    /// seeded uniform subsample of this size (reported in [`KSweep::silhouette_sample_size`]).
    pub silhouette_sample_max: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            kmeans: KMeansOptions::default(),
            gmm: GmmOptions::default(),
            silhouette_sample_max: 5_000,
        }
    }
}

/// One flat clustering of the members, whatever the method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clustering {
    pub method: ClusterMethod,
    /// Number of clusters asked for; assignments lie in `0..k`.
    pub k: usize,
    /// Cluster of each member (row), in input order.
    pub assignments: Vec<usize>,
    /// Sum over members of the squared Euclidean distance to the mean of their cluster
    /// (scikit-learn's `inertia_`), computed the same way for every method.
    pub inertia: f64,
    /// GMM only: total log-likelihood of the members under the fitted mixture.
    pub log_likelihood: Option<f64>,
    /// GMM only: Bayesian information criterion, −2·logL + p·ln n (lower is better).
    pub bic: Option<f64>,
    /// Agglomerative only: the full merge tree, for a dendrogram plot.
    pub dendrogram: Option<Dendrogram>,
}

/// Clusters `points` into `k` clusters with `method`.
pub fn cluster(
    points: ArrayView2<f32>,
    method: ClusterMethod,
    k: usize,
    options: &ClusterOptions,
    control: &TaskControl,
) -> AnalysisResult<Clustering> {
    let points = to_f64(points)?;
    check_k(k, points.nrows())?;
    match method.linkage() {
        Some(linkage) => {
            let dendrogram = agglomerative(points.view(), linkage, control)?;
            Ok(agglomerative_clustering(
                points.view(),
                method,
                dendrogram,
                k,
            ))
        }
        None if method == ClusterMethod::Kmeans => {
            let fit = kmeans(points.view(), k, &options.kmeans, options.seed, control)?;
            Ok(fit.into_clustering())
        }
        None => {
            let fit = gmm(points.view(), k, &options.gmm, options.seed, control)?;
            Ok(fit.into_clustering(points.view()))
        }
    }
}

fn agglomerative_clustering(
    points: ArrayView2<f64>,
    method: ClusterMethod,
    dendrogram: Dendrogram,
    k: usize,
) -> Clustering {
    let assignments = dendrogram.cut(k);
    Clustering {
        method,
        k,
        inertia: inertia(points, &assignments, k),
        assignments,
        log_likelihood: None,
        bic: None,
        dendrogram: Some(dendrogram),
    }
}

/// Checks that every value is finite and widens to `f64`.
pub(crate) fn to_f64(points: ArrayView2<f32>) -> AnalysisResult<Array2<f64>> {
    if points.nrows() == 0 || points.ncols() == 0 {
        return Err(AnalysisError::Invalid(format!(
            "cannot cluster a {}×{} matrix: need at least one member and one dimension",
            points.nrows(),
            points.ncols()
        )));
    }
    if let Some(row) = points
        .rows()
        .into_iter()
        .position(|row| row.iter().any(|v| !v.is_finite()))
    {
        return Err(AnalysisError::NonFinite {
            what: "points",
            row,
        });
    }
    Ok(points.mapv(f64::from))
}

pub(crate) fn check_k(k: usize, n_members: usize) -> AnalysisResult<()> {
    if k == 0 || k > n_members {
        return Err(AnalysisError::Invalid(format!(
            "cannot form {k} clusters from {n_members} members: K must be in 1..={n_members}"
        )));
    }
    Ok(())
}

/// Sum of squared distances of each member to the mean of its cluster.
pub(crate) fn inertia(points: ArrayView2<f64>, assignments: &[usize], k: usize) -> f64 {
    let means = cluster_means(points, assignments, k);
    points
        .rows()
        .into_iter()
        .zip(assignments)
        .map(|(row, &c)| squared_distance(row, means.row(c)))
        .sum()
}

/// Mean of each cluster (a zero row for an empty cluster). Partial sums per block of rows
/// run in parallel and are added in block order, so the result does not depend on scheduling.
pub(crate) fn cluster_means(
    points: ArrayView2<f64>,
    assignments: &[usize],
    k: usize,
) -> Array2<f64> {
    const BLOCK_ROWS: usize = 4096;
    let n = points.nrows();
    let partials: Vec<(Array2<f64>, Vec<usize>)> = (0..n.div_ceil(BLOCK_ROWS))
        .into_par_iter()
        .map(|block| {
            let rows = block * BLOCK_ROWS..((block + 1) * BLOCK_ROWS).min(n);
            let mut sums = Array2::<f64>::zeros((k, points.ncols()));
            let mut counts = vec![0usize; k];
            for i in rows {
                let mut sum = sums.row_mut(assignments[i]);
                sum += &points.row(i);
                counts[assignments[i]] += 1;
            }
            (sums, counts)
        })
        .collect();
    let mut sums = Array2::<f64>::zeros((k, points.ncols()));
    let mut counts = vec![0usize; k];
    for (partial_sums, partial_counts) in partials {
        sums += &partial_sums;
        counts
            .iter_mut()
            .zip(partial_counts)
            .for_each(|(c, p)| *c += p);
    }
    for (mut sum, &count) in sums.rows_mut().into_iter().zip(&counts) {
        if count > 0 {
            sum /= count as f64;
        }
    }
    sums
}

pub(crate) fn squared_distance(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) => squared_distance_slices(a, b),
        _ => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
    }
}

/// Squared Euclidean distance of equal-length slices, with eight independent accumulators so
/// the compiler can vectorise the loop.
pub(crate) fn squared_distance_slices(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            let d = x[lane] - y[lane];
            lanes[lane] += d * d;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Relabels clusters by order of first appearance (member 0 is in cluster 0), so equal
/// partitions get equal label vectors.
pub(crate) fn relabel_by_first_appearance(labels: &mut [usize]) {
    let mut map = std::collections::HashMap::new();
    for label in labels.iter_mut() {
        let next = map.len();
        *label = *map.entry(*label).or_insert(next);
    }
}
