//! Choosing K: one clustering per K over a range, scored by inertia (the elbow curve),
//! silhouette and, for Gaussian mixtures, BIC.

use std::ops::RangeInclusive;

use ndarray::{ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    ClusterMethod, ClusterOptions, Clustering, agglomerative, agglomerative_clustering, check_k,
    gmm, kmeans, relabel_by_first_appearance, to_f64,
};
use crate::analysis::embedding_metrics::{self, Sampling};
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// The scores of one K.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KScore {
    pub k: usize,
    pub inertia: f64,
    /// Mean silhouette (Euclidean); `None` for K = 1, where it is undefined.
    pub silhouette: Option<f64>,
    /// GMM only.
    pub bic: Option<f64>,
}

/// A sweep over K and the choices it supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KSweep {
    pub method: ClusterMethod,
    /// One entry per K, in increasing K (the elbow curve is `inertia` against `k`).
    pub scores: Vec<KScore>,
    /// Members the silhouettes were computed on: all of them, or the seeded subsample.
    pub silhouette_sample_size: usize,
    /// Knee of the inertia curve (see [`elbow_k`]); `None` with fewer than 3 K values.
    pub elbow_k: Option<usize>,
    /// K with the highest silhouette.
    pub silhouette_k: Option<usize>,
    /// GMM only: K with the lowest BIC.
    pub bic_k: Option<usize>,
    /// The K taken: lowest BIC for GMM, else highest silhouette, else the elbow.
    pub chosen_k: usize,
    /// The clustering at `chosen_k`.
    pub chosen: Clustering,
}

/// Clusters `points` with `method` for every K in `ks` and picks one. Reports one progress
/// unit per K and polls `control` between them.
pub fn sweep_k(
    points: ArrayView2<f32>,
    method: ClusterMethod,
    ks: RangeInclusive<usize>,
    options: &ClusterOptions,
    control: &TaskControl,
) -> AnalysisResult<KSweep> {
    let points = to_f64(points)?;
    let n = points.nrows();
    if ks.is_empty() {
        return Err(AnalysisError::Invalid(format!("empty K range {ks:?}")));
    }
    check_k(*ks.start(), n)?;
    check_k(*ks.end(), n)?;

    let sample = silhouette_sample(n, options.silhouette_sample_max, options.seed);
    let sample_points = points.select(Axis(0), &sample).mapv(|v| v as f32);
    // One tree serves every K of an agglomerative sweep.
    let dendrogram = match method.linkage() {
        Some(linkage) => Some(agglomerative(points.view(), linkage, control)?),
        None => None,
    };

    let n_ks = ks.clone().count();
    let mut clusterings = Vec::with_capacity(n_ks);
    let mut scores = Vec::with_capacity(n_ks);
    for (done, k) in ks.enumerate() {
        control.check()?;
        let clustering = match (&dendrogram, method) {
            (Some(tree), _) => agglomerative_clustering(points.view(), method, tree.clone(), k),
            (None, ClusterMethod::Kmeans) => {
                kmeans(points.view(), k, &options.kmeans, options.seed, control)?.into_clustering()
            }
            (None, _) => gmm(points.view(), k, &options.gmm, options.seed, control)?
                .into_clustering(points.view()),
        };
        let sample_labels: Vec<usize> = sample.iter().map(|&i| clustering.assignments[i]).collect();
        scores.push(KScore {
            k,
            inertia: clustering.inertia,
            silhouette: silhouette(sample_points.view(), sample_labels)?,
            bic: clustering.bic,
        });
        clusterings.push(clustering);
        control.report("clustering over K", done + 1, n_ks);
    }

    let elbow = elbow_k(&scores);
    let silhouette_k = arg_best(&scores, |s| s.silhouette, |a, b| a > b);
    let bic_k = arg_best(&scores, |s| s.bic, |a, b| a < b);
    let chosen_k = bic_k.or(silhouette_k).or(elbow).unwrap_or(scores[0].k);
    let chosen = clusterings
        .into_iter()
        .find(|c| c.k == chosen_k)
        .ok_or_else(|| AnalysisError::Invalid(format!("no clustering for K = {chosen_k}")))?;
    Ok(KSweep {
        method,
        scores,
        silhouette_sample_size: sample.len(),
        elbow_k: elbow,
        silhouette_k,
        bic_k,
        chosen_k,
        chosen,
    })
}

/// The knee of a decreasing inertia curve: the K whose point lies farthest below the straight
/// line from the first to the last point, both axes scaled to [0, 1] (the "kneedle" rule).
/// `None` with fewer than 3 points or a flat curve.
pub fn elbow_k(scores: &[KScore]) -> Option<usize> {
    let (first, last) = (scores.first()?, scores.last()?);
    if scores.len() < 3 || first.inertia <= last.inertia {
        return None;
    }
    let k_span = (last.k - first.k) as f64;
    let inertia_span = first.inertia - last.inertia;
    scores
        .iter()
        .map(|s| {
            let x = (s.k - first.k) as f64 / k_span;
            let y = (s.inertia - last.inertia) / inertia_span;
            // The chord runs from (0, 1) to (1, 0): distance below it ∝ 1 − x − y.
            (s.k, 1.0 - x - y)
        })
        .fold(None, |best: Option<(usize, f64)>, (k, gap)| match best {
            Some((_, best_gap)) if best_gap >= gap => best,
            _ => Some((k, gap)),
        })
        .filter(|&(_, gap)| gap > 0.0)
        .map(|(k, _)| k)
}

fn arg_best(
    scores: &[KScore],
    value: impl Fn(&KScore) -> Option<f64>,
    better: impl Fn(f64, f64) -> bool,
) -> Option<usize> {
    scores
        .iter()
        .filter_map(|s| value(s).map(|v| (s.k, v)))
        .fold(None, |best: Option<(usize, f64)>, (k, v)| match best {
            Some((_, b)) if !better(v, b) => best,
            _ => Some((k, v)),
        })
        .map(|(k, _)| k)
}

/// Sorted member indices the silhouette is computed on: all members up to `max`, else a
/// seeded uniform sample of `max`.
fn silhouette_sample(n: usize, max: usize, seed: u64) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = rand::seq::index::sample(&mut rng, n, max.max(2).min(n)).into_vec();
    sample.sort_unstable();
    sample
}

/// Silhouette of the sampled members, `None` where it is undefined (fewer than two clusters
/// present, or every member in its own cluster).
fn silhouette(points: ArrayView2<f32>, mut labels: Vec<usize>) -> AnalysisResult<Option<f64>> {
    relabel_by_first_appearance(&mut labels);
    let n_clusters = labels.iter().max().map_or(0, |m| m + 1);
    if n_clusters < 2 || n_clusters >= labels.len() {
        return Ok(None);
    }
    // The members are already sampled above; the metric itself stays exact.
    embedding_metrics::silhouette(points, &labels, &Sampling::exact(), &TaskControl::new())
        .map(|score| Some(score.value))
}
