//! Soft silhouette (Vardakas, Papakostas, Likas 2024, "Deep clustering using the soft
//! silhouette score") as a differentiable clustering loss, and the exact silhouette
//! (Rousseeuw 1987) in plain f64 as its reference.
//!
//! Notation: latents Z `[B, D]`, soft assignments P `[B, K]` (a row per labelled member; one-hot
//! for manual labels, confidence-scaled one-hot for pseudo-labels), Euclidean d_ij.
//!
//! - a_k(i) = Σ_{j≠i} P_jk d_ij / Σ_{j≠i} P_jk — the P-weighted mean distance from i to
//!   cluster k.
//! - b_k(i) = min_{l≠k} a_l(i), over clusters l present for i.
//! - s_k(i) = (b_k(i) − a_k(i)) / max(a_k(i), b_k(i)),  S = mean_i Σ_k P_ik s_k(i),
//!   L_cl = 1 − S.
//!
//! **Normalisation.** Both sums exclude j = i. Vardakas et al. define a_k(i) as a
//! probability-weighted average over the data set and show that it reduces to the silhouette
//! for hard assignments; Rousseeuw's a(i) averages over the *other* |C| − 1 members of i's
//! cluster. Excluding j = i from numerator and denominator is what makes one-hot P reproduce
//! the exact silhouette (the numerator is unchanged since d_ii = 0, but including i would
//! divide by |C| instead of |C| − 1, biasing small clusters — and labelled clusters within one
//! batch are small). For a cluster l ≠ own the exclusion changes nothing with one-hot P.
//!
//! **Degenerate cases.** A cluster with no mass besides i itself is *absent* for i: it is left
//! out of the min in b, and if it is i's own cluster, s_k(i) = 0 (the silhouette convention for
//! singletons). If no other cluster is present, s_k(i) = 0. A batch with fewer than two clusters
//! has no silhouette: the loss is 0 (and its gradient zero), never NaN.

use burn::tensor::{Bool, Tensor};

use super::distance::pairwise_distances;

/// Below this total weight a cluster counts as absent.
const MASS_EPS: f64 = 1e-6;
/// Stand-in distance for absent clusters: never the minimum, never overflows f32 arithmetic.
const FAR: f64 = 1e30;

/// The soft silhouette S ∈ [−1, 1] of latents `z` `[B, D]` under assignments `p` `[B, K]`.
/// Returns `[1]`; 0 when no point has a present own and other cluster.
pub fn soft_silhouette_score(z: Tensor<2>, p: Tensor<2>) -> Tensor<1> {
    let [batch, _] = z.dims();
    let [_, clusters] = p.dims();
    let device = z.device();

    // Off-diagonal weights implement the j ≠ i exclusion (and zero d_ii = √ε).
    let others = Tensor::<2, Bool>::diag_mask([batch, batch], 0, &device).float();
    let dist = pairwise_distances(z) * others.clone();
    let mass = others.matmul(p.clone()); // Σ_{j≠i} P_jk
    let weighted = dist.matmul(p.clone()); // Σ_{j≠i} P_jk d_ij
    let present = mass.clone().greater_elem(MASS_EPS);
    let a = weighted / mass.clamp_min(MASS_EPS);

    // b_k(i): min over l ≠ k of a_l(i); absent clusters and l = k are pushed to FAR.
    let candidates = a
        .clone()
        .mask_fill(present.clone().bool_not(), FAR)
        .unsqueeze_dim::<3>(1)
        .expand([batch, clusters, clusters]);
    let same_cluster = Tensor::<2, Bool>::diag_mask([clusters, clusters], 0, &device)
        .bool_not()
        .unsqueeze_dim::<3>(0)
        .expand([batch, clusters, clusters]);
    let b = candidates
        .mask_fill(same_cluster, FAR)
        .min_dim(2)
        .reshape([batch, clusters]);
    let has_other = b.clone().lower_elem(FAR / 2.0);

    let s = (b.clone() - a.clone()) / a.max_pair(b).clamp_min(MASS_EPS);
    let defined = present.bool_and(has_other);
    let s = s.mask_fill(defined.bool_not(), 0.0);
    (p * s).sum().div_scalar(batch.max(1) as f64)
}

/// L_cl = 1 − S, or 0 when the batch holds fewer than two clusters. Returns `[1]`.
pub fn soft_silhouette_loss(z: Tensor<2>, p: Tensor<2>) -> Tensor<1> {
    let clusters_present = p.clone().sum_dim(0).greater_elem(MASS_EPS).float().sum();
    let defined = clusters_present.greater_equal_elem(2.0).float();
    soft_silhouette_score(z, p).neg().add_scalar(1.0) * defined
}

/// Exact mean silhouette of `points` (row-major, `labels.len()` rows of `dim` values) with
/// Euclidean distance, as scikit-learn defines it (s = 0 for members of singleton clusters).
/// `None` when it is undefined: fewer than two distinct labels, or `points` does not hold
/// `labels.len() × dim` values.
pub fn silhouette_exact(points: &[f64], dim: usize, labels: &[usize]) -> Option<f64> {
    let n = labels.len();
    if dim == 0 || points.len() != n.checked_mul(dim)? {
        return None;
    }
    // Compact labels to 0..K so per-cluster sums fit a small Vec.
    let mut distinct: Vec<usize> = labels.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return None;
    }
    let cluster_of: Vec<usize> = labels
        .iter()
        .map(|l| distinct.partition_point(|d| d < l))
        .collect();
    let mut sizes = vec![0usize; distinct.len()];
    for &c in &cluster_of {
        sizes[c] += 1;
    }

    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    let mut total = 0.0;
    let mut sums = vec![0.0f64; distinct.len()];
    for i in 0..n {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for j in 0..n {
            if j != i {
                let d2: f64 = row(i)
                    .iter()
                    .zip(row(j))
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                sums[cluster_of[j]] += d2.sqrt();
            }
        }
        let own = cluster_of[i];
        if sizes[own] < 2 {
            continue; // singleton: s = 0
        }
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..distinct.len())
            .filter(|&c| c != own)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let denom = a.max(b);
        if denom > 0.0 {
            total += (b - a) / denom;
        }
    }
    Some(total / n as f64)
}
