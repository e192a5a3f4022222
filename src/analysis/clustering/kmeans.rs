//! k-means: linfa-clustering's k-means++ initialisation and iterations, one seeded run per
//! restart, finished with exact Lloyd steps.
//!
//! linfa updates each centroid as `(sum + old) / (count + 1)` (its "m_k-means"), whose fixed
//! point is the cluster mean but which stops at its tolerance slightly short of it. The exact
//! Lloyd steps afterwards (assign, recompute means, until no member moves) put the centroids on
//! the means, so the inertia is scikit-learn's `inertia_` for the same partition.

use linfa::DatasetBase;
use linfa::prelude::{Fit, ParamGuard};
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView2};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{ClusterMethod, Clustering, check_k, cluster_means, squared_distance};
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansOptions {
    /// Independent k-means++ starts; the one with the lowest inertia wins (scikit-learn's
    /// `n_init`).
    pub n_restarts: usize,
    /// Iteration cap for each start (linfa's iterations and the final Lloyd steps each).
    pub max_iterations: u64,
    /// linfa's stopping rule: Euclidean norm of the centroid change below this.
    pub tolerance: f64,
}

impl Default for KMeansOptions {
    fn default() -> Self {
        Self {
            n_restarts: 10,
            max_iterations: 300,
            tolerance: 1e-4,
        }
    }
}

/// A fitted k-means partition.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansFit {
    /// `k × dims` cluster means.
    pub centroids: Array2<f64>,
    pub assignments: Vec<usize>,
    /// Sum of squared distances to the own centroid (scikit-learn's `inertia_`).
    pub inertia: f64,
}

impl KMeansFit {
    pub fn into_clustering(self) -> Clustering {
        Clustering {
            method: ClusterMethod::Kmeans,
            k: self.centroids.nrows(),
            assignments: self.assignments,
            inertia: self.inertia,
            log_likelihood: None,
            bic: None,
            dendrogram: None,
        }
    }
}

/// k-means of the (finite) `points` into `k` clusters; restart `r` is seeded with
/// `seed + r`. Polls `control` between restarts and reports one unit per restart.
pub fn kmeans(
    points: ArrayView2<f64>,
    k: usize,
    options: &KMeansOptions,
    seed: u64,
    control: &TaskControl,
) -> AnalysisResult<KMeansFit> {
    check_k(k, points.nrows())?;
    if options.n_restarts == 0 {
        return Err(AnalysisError::Invalid(
            "k-means needs at least one restart".into(),
        ));
    }
    let dataset = DatasetBase::new(points, ());
    let mut best: Option<KMeansFit> = None;
    for restart in 0..options.n_restarts {
        control.check()?;
        let rng = Xoshiro256Plus::seed_from_u64(seed.wrapping_add(restart as u64));
        let model = KMeans::params_with_rng(k, rng)
            .n_runs(1)
            .max_n_iterations(options.max_iterations)
            .tolerance(options.tolerance)
            .check()
            .map_err(|e| AnalysisError::Invalid(format!("k-means parameters: {e}")))?
            .fit(&dataset)
            .map_err(|e| AnalysisError::Invalid(format!("k-means: {e}")))?;
        let fit = lloyd(points, model.centroids().clone(), options.max_iterations);
        if best.as_ref().is_none_or(|b| fit.inertia < b.inertia) {
            best = Some(fit);
        }
        control.report("k-means restarts", restart + 1, options.n_restarts);
    }
    best.ok_or_else(|| AnalysisError::Invalid("k-means produced no fit".into()))
}

/// Exact Lloyd iterations from `centroids` until no assignment changes. An emptied cluster
/// keeps its previous centroid.
fn lloyd(points: ArrayView2<f64>, mut centroids: Array2<f64>, max_iterations: u64) -> KMeansFit {
    let k = centroids.nrows();
    let (mut assignments, mut distances) = assign(points, &centroids);
    for _ in 0..max_iterations {
        let means = cluster_means(points, &assignments, k);
        let mut counts = vec![0usize; k];
        assignments.iter().for_each(|&c| counts[c] += 1);
        for (c, count) in counts.into_iter().enumerate() {
            if count > 0 {
                centroids.row_mut(c).assign(&means.row(c));
            }
        }
        let (next, next_distances) = assign(points, &centroids);
        distances = next_distances;
        if next == assignments {
            break;
        }
        assignments = next;
    }
    KMeansFit {
        centroids,
        assignments,
        inertia: distances.iter().sum(),
    }
}

/// Nearest centroid of every member (lowest index on ties) and its squared distance.
fn assign(points: ArrayView2<f64>, centroids: &Array2<f64>) -> (Vec<usize>, Vec<f64>) {
    (0..points.nrows())
        .into_par_iter()
        .map(|i| {
            let row = points.row(i);
            centroids
                .rows()
                .into_iter()
                .map(|centroid| squared_distance(row, centroid))
                .enumerate()
                .fold(
                    (0, f64::INFINITY),
                    |best, (c, d)| if d < best.1 { (c, d) } else { best },
                )
        })
        .unzip()
}
