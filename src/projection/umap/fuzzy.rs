//! The fuzzy simplicial set of a kNN graph (umap-learn's `fuzzy_simplicial_set`, fuzzy union,
//! weak edges dropped) and its directed edge list for the optimiser. The sparse symmetrisation
//! is manifolds-rs's; the kernel widths are ours (see [`smooth_knn_dist`]).

use manifolds_rs::data::graph::{filter_weak_edges, knn_to_coo, symmetrise_graph};
use manifolds_rs::data::structures::CoordinateList;
use rayon::prelude::*;

use super::sgd::Edges;
use crate::projection::knn::KnnGraph;

/// umap-learn's `set_op_mix_ratio`: 1 is the pure fuzzy union `w + wᵀ − w∘wᵀ`.
const SET_OP_MIX_RATIO: f32 = 1.0;

/// The symmetric fuzzy graph of `knn` (both directions of every edge), without the edges too
/// weak to be sampled once in `epochs` epochs (umap-learn drops them before optimising).
pub fn fuzzy_graph(knn: &KnnGraph, n_neighbors: usize, epochs: usize) -> CoordinateList<f32> {
    let indices: Vec<Vec<usize>> = (0..knn.n_rows())
        .map(|row| knn.neighbours(row).iter().map(|&j| j as usize).collect())
        .collect();
    let distances: Vec<Vec<f32>> = (0..knn.n_rows())
        .map(|row| knn.distances(row).to_vec())
        .collect();
    let (sigma, rho) = smooth_knn_dist(&distances, n_neighbors);
    let directed = knn_to_coo(&indices, &distances, &sigma, &rho);
    let graph = symmetrise_graph(directed, SET_OP_MIX_RATIO);
    filter_weak_edges(graph, epochs, 0)
}

/// The graph's entries as directed edges sorted by head, each sampled every
/// `max weight / weight` epochs (umap-learn's `make_epochs_per_sample`).
pub fn edges_of(graph: &CoordinateList<f32>) -> Edges {
    let max_weight = graph.values.iter().copied().fold(0.0f32, f32::max);
    let mut order: Vec<usize> = (0..graph.values.len())
        .filter(|&e| graph.values[e] > 0.0)
        .collect();
    if !order
        .windows(2)
        .all(|w| graph.row_indices[w[0]] <= graph.row_indices[w[1]])
    {
        order.par_sort_by_key(|&e| (graph.row_indices[e], graph.col_indices[e]));
    }
    Edges {
        head: order.iter().map(|&e| graph.row_indices[e] as u32).collect(),
        tail: order.iter().map(|&e| graph.col_indices[e] as u32).collect(),
        epochs_per_sample: order
            .iter()
            .map(|&e| max_weight / graph.values[e])
            .collect(),
    }
}

/// Per member, the kernel width σ and the nearest-neighbour distance ρ of the fuzzy simplicial
/// set, exactly as umap-learn's `smooth_knn_dist` (local connectivity 1, bandwidth 1): σ solves
/// Σ_j exp(−max(0, d_j − ρ)/σ) = log2(n_neighbors) over the neighbours other than the member
/// itself, and is at least 1e-3 × the mean neighbour distance. Written here because
/// manifolds-rs 0.8's version aims at ln(k) instead (with the bandwidth as the tolerance),
/// which narrows every kernel and measurably loosens the clusters.
fn smooth_knn_dist(dists: &[Vec<f32>], n_neighbors: usize) -> (Vec<f32>, Vec<f32>) {
    const ITERATIONS: usize = 64;
    const TOLERANCE: f64 = 1e-5;
    const MIN_K_DIST_SCALE: f64 = 1e-3;
    let target = (n_neighbors as f64).log2();
    let all_mean = {
        let (sum, count) = dists
            .iter()
            .flatten()
            .fold((0.0f64, 0usize), |(s, c), &d| (s + f64::from(d), c + 1));
        sum / count.max(1) as f64
    };
    dists
        .par_iter()
        .map(|row| {
            let rho = row.iter().copied().find(|&d| d > 0.0).unwrap_or(0.0);
            let rho = f64::from(rho);
            let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
            for _ in 0..ITERATIONS {
                let psum: f64 = row
                    .iter()
                    .map(|&d| {
                        let d = f64::from(d) - rho;
                        if d > 0.0 { (-d / mid).exp() } else { 1.0 }
                    })
                    .sum();
                if (psum - target).abs() < TOLERANCE {
                    break;
                }
                if psum > target {
                    hi = mid;
                    mid = (lo + hi) / 2.0;
                } else {
                    lo = mid;
                    mid = if hi.is_infinite() {
                        mid * 2.0
                    } else {
                        (lo + hi) / 2.0
                    };
                }
            }
            // The member itself (distance 0) counts in umap-learn's mean.
            let row_mean = row.iter().map(|&d| f64::from(d)).sum::<f64>() / (row.len() + 1) as f64;
            let floor = MIN_K_DIST_SCALE * if rho > 0.0 { row_mean } else { all_mean };
            (mid.max(floor) as f32, rho as f32)
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_width_meets_the_log2_k_target() {
        let row = vec![0.5f32, 0.7, 1.0, 1.1, 1.6, 2.0];
        let (sigma, rho) = smooth_knn_dist(std::slice::from_ref(&row), 7);
        assert_eq!(rho[0], 0.5);
        let total: f32 = row
            .iter()
            .map(|&d| (-(d - rho[0]).max(0.0) / sigma[0]).exp())
            .sum();
        assert!((total - 7f32.log2()).abs() < 1e-3, "{total}");
    }

    #[test]
    fn edges_are_symmetric_sorted_and_weighted() {
        // Six points on a line, each with its two nearest others.
        let data = [0.0f32, 1.0, 2.0, 3.5, 4.0, 6.0];
        let knn = crate::projection::knn::KnnSearch {
            data: &data,
            n_rows: 6,
            dim: 1,
            k: 2,
            distance: crate::projection::knn::Distance::Euclidean,
            seed: 0,
        }
        .exact(&|| false, &|_, _| {})
        .unwrap();
        let graph = fuzzy_graph(&knn, 3, 200);
        let edges = edges_of(&graph);
        assert!(edges.head.windows(2).all(|w| w[0] <= w[1]));
        for e in 0..edges.len() {
            let back = (0..edges.len())
                .find(|&f| edges.head[f] == edges.tail[e] && edges.tail[f] == edges.head[e]);
            let f = back.expect("every edge has its reverse");
            assert_eq!(edges.epochs_per_sample[e], edges.epochs_per_sample[f]);
            assert!(edges.epochs_per_sample[e] >= 1.0);
        }
        assert!(edges.epochs_per_sample.contains(&1.0));
    }
}
