//! UMAP: kNN, fuzzy simplicial set and spectral initialisation through manifolds-rs; the
//! optimisation loop is ours (a port of manifolds-rs's parallel Adam optimiser, 2-D only)
//! because the crate's loop can neither stream intermediate layouts nor be cancelled, and a
//! warm start needs its own initial positions and learning rate.
//!
//! Parameters follow umap-learn, not the crate: `n_neighbors` counts the point itself (so
//! `n_neighbors − 1` true neighbours are searched), `min_dist` 0.1, `spread` 1, and 500 epochs
//! up to 10K points, 200 above (umap-learn: `n <= 10000`).
//!
//! Deterministic for a given seed: the exact kNN (up to [`EXACT_KNN_MAX_ROWS`] rows) and the
//! optimiser (per-member RNG, gradients from frozen positions) do not depend on thread
//! scheduling (tested). Above that size the kNN is the crate's NN-descent: repeated 30K runs
//! gave bit-identical layouts, but the crate does not promise it.

use std::time::Instant;

use faer::MatRef;
use manifolds_rs::data::graph::{
    UmapGraphParams, coo_to_adjacency_list, filter_weak_edges, knn_to_coo, symmetrise_graph,
};
use manifolds_rs::data::init::{EmbdInit, initialise_embedding};
use manifolds_rs::data::nearest_neighbours::{NearestNeighbourParams, run_ann_search};
use manifolds_rs::training::umap_csr::UmapCsrGraph;
use manifolds_rs::training::umap_optimisers::UmapOptimParams;
use ndarray::{Array2, ArrayView2};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::warm_start::{Anchors, place_members};
use super::{Frames, Layout, LayoutFrame, validate};
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// Up to this many rows the kNN is exact (and deterministic); above, NN-descent.
pub const EXACT_KNN_MAX_ROWS: usize = 4096;

/// Learning rate of a warm update: small, so the map settles without being rebuilt.
const WARM_LEARNING_RATE: f32 = 0.05;
/// Jitter of newly placed members, as a fraction of the old layout's extent.
const PLACEMENT_JITTER: f32 = 0.005;

// Constants of manifolds-rs's Adam optimiser (`training::umap_csr`, `training::mod`).
const ADAM_BETA1: f32 = 0.5;
const ADAM_BETA2: f32 = 0.9;
const ADAM_EPS: f32 = 1e-7;
const GRAD_CLIP: f32 = 4.0;
const REPULSION_EPS: f32 = 0.001;
const MIN_DIST_SQ: f32 = 1e-8;
const NEGATIVE_SAMPLE_RATE: usize = 5;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    #[default]
    Euclidean,
    Cosine,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Euclidean => "euclidean",
            Metric::Cosine => "cosine",
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "euclidean" => Ok(Self::Euclidean),
            "cosine" => Ok(Self::Cosine),
            _ => Err(format!("unknown metric '{s}' (euclidean or cosine)")),
        }
    }
}

/// UMAP parameters, with umap-learn's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UmapConfig {
    /// Neighbourhood size, the point itself included (umap-learn's convention).
    pub n_neighbors: usize,
    pub min_dist: f32,
    pub spread: f32,
    /// Epochs of a cold run; `None`: 500 up to 10K members, else 200 (umap-learn's rule).
    pub epochs: Option<usize>,
    /// Epochs of a warm update from a previous layout.
    pub warm_epochs: usize,
    pub metric: Metric,
    pub seed: u64,
}

impl Default for UmapConfig {
    fn default() -> Self {
        Self {
            n_neighbors: 15,
            min_dist: 0.1,
            spread: 1.0,
            epochs: None,
            warm_epochs: 40,
            metric: Metric::Euclidean,
            seed: 42,
        }
    }
}

impl UmapConfig {
    /// Epochs of a cold run on `n_rows` members.
    pub fn cold_epochs(&self, n_rows: usize) -> usize {
        self.epochs
            .unwrap_or(if n_rows <= 10_000 { 500 } else { 200 })
    }

    fn validate(&self, n_rows: usize) -> AnalysisResult<()> {
        let invalid = |msg: String| Err(AnalysisError::Invalid(msg));
        if self.n_neighbors < 2 {
            return invalid(format!(
                "n_neighbors must be at least 2, not {}",
                self.n_neighbors
            ));
        }
        if self.n_neighbors >= n_rows {
            return invalid(format!(
                "n_neighbors ({}) must be smaller than the number of members ({n_rows})",
                self.n_neighbors
            ));
        }
        if !(self.spread > 0.0 && self.spread.is_finite()) {
            return invalid(format!("spread must be positive, not {}", self.spread));
        }
        if !(self.min_dist >= 0.0 && self.min_dist <= self.spread) {
            return invalid(format!(
                "min_dist must lie in [0, spread = {}], not {}",
                self.spread, self.min_dist
            ));
        }
        if self.cold_epochs(n_rows) == 0 || self.warm_epochs == 0 {
            return invalid("epochs must be at least 1".into());
        }
        Ok(())
    }
}

/// The UMAP pipeline behind [`super::project`].
pub(crate) fn embed(
    data: ArrayView2<f32>,
    config: &UmapConfig,
    init: Option<&Anchors>,
    control: &TaskControl,
    frames: Option<Frames<'_>>,
) -> AnalysisResult<Layout> {
    let n = data.nrows();
    validate::check_matrix(data, "data to embed", 3)?;
    config.validate(n)?;
    if let Some(anchors) = init
        && anchors.positions.len() != n
    {
        return Err(AnalysisError::LengthMismatch {
            what: "warm-start positions",
            expected: n,
            got: anchors.positions.len(),
        });
    }
    if config.metric == Metric::Cosine
        && let Some(row) = data
            .rows()
            .into_iter()
            .position(|r| r.iter().all(|&v| v == 0.0))
    {
        return Err(AnalysisError::Invalid(format!(
            "row {row} is all zeros: the cosine distance is undefined for it"
        )));
    }
    control.check()?;

    let contiguous = data.as_standard_layout();
    let values = contiguous
        .as_slice()
        .ok_or_else(|| AnalysisError::Invalid("data is not contiguous".into()))?;
    let matrix = MatRef::from_row_major_slice(values, n, data.ncols());
    let cold_epochs = config.cold_epochs(n);

    // kNN (the crate's search cannot be interrupted; polled before and after).
    control.report("knn", 0, 1);
    let started = Instant::now();
    let ann = if n <= EXACT_KNN_MAX_ROWS {
        "exhaustive"
    } else {
        "nndescent"
    };
    let nn_params = NearestNeighbourParams::<f32> {
        dist_metric: config.metric.name().to_string(),
        ..NearestNeighbourParams::default()
    };
    let k = config.n_neighbors - 1;
    let (knn_indices, knn_dist) = run_ann_search(
        matrix,
        k,
        ann.to_string(),
        &nn_params,
        config.seed as usize,
        0,
    )
    .map_err(crate_error)?;
    if knn_indices.len() != n || knn_indices.iter().any(|row| row.is_empty()) {
        return Err(AnalysisError::Invalid(
            "the nearest-neighbour search left members without neighbours".into(),
        ));
    }
    log_stage("knn", started);
    control.report("knn", 1, 1);
    control.check()?;

    // Fuzzy simplicial set.
    control.report("graph", 0, 1);
    let started = Instant::now();
    let graph_params = UmapGraphParams::<f32>::default();
    let (sigma, rho) = smooth_knn_dist(&knn_dist, config.n_neighbors);
    let graph = knn_to_coo(&knn_indices, &knn_dist, &sigma, &rho);
    let graph = symmetrise_graph(graph, graph_params.mix_weight);
    // Filtered as for a cold run, so warm updates optimise the same graph.
    let graph = filter_weak_edges(graph, cold_epochs, 0);
    log_stage("graph", started);
    control.report("graph", 1, 1);
    control.check()?;

    // Initial layout.
    control.report("init", 0, 1);
    let started = Instant::now();
    let warm = init.filter(|anchors| anchors.n_known() > 0);
    let (positions, epochs, learning_rate, placed_new) = match warm {
        Some(anchors) => {
            let jitter = PLACEMENT_JITTER * extent(anchors);
            let placed = place_members(data, anchors, &knn_indices, jitter, config.seed, control)?;
            let new = n - anchors.n_known();
            (placed, config.warm_epochs, WARM_LEARNING_RATE, new)
        }
        None => {
            let spectral = initialise_embedding(
                &EmbdInit::SpectralInit { range: None },
                2,
                config.seed,
                &graph,
                matrix,
            )
            .map_err(crate_error)?;
            let positions = spectral.iter().map(|p| [p[0], p[1]]).collect();
            (positions, cold_epochs, 1.0, 0)
        }
    };
    drop((knn_indices, knn_dist));
    log_stage("init", started);
    control.report("init", 1, 1);
    control.check()?;

    let adjacency = coo_to_adjacency_list(&graph);
    drop(graph);
    let csr = UmapCsrGraph::from_graph(&adjacency).map_err(crate_error)?;
    drop(adjacency);
    let curve = UmapOptimParams::<f32>::from_min_dist_spread(
        config.min_dist,
        config.spread,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    );
    let schedule = Schedule {
        a: curve.a,
        b: curve.b,
        learning_rate,
        epochs,
        seed: config.seed,
    };
    let started = Instant::now();
    let coords = optimise(positions, &csr, &schedule, control, frames)?;
    log_stage("optimise", started);
    Ok(Layout {
        coords,
        epochs,
        warm_started: warm.is_some(),
        placed_new,
    })
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

fn crate_error(e: manifolds_rs::errors::ManifoldsError) -> AnalysisError {
    AnalysisError::Invalid(format!("UMAP: {e}"))
}

/// Stage timings for benchmarks (`SENSE_LOG_TIMINGS=1`).
fn log_stage(stage: &str, started: Instant) {
    if std::env::var_os("SENSE_LOG_TIMINGS").is_some() {
        eprintln!("umap {stage}: {:.2} s", started.elapsed().as_secs_f64());
    }
}

/// Largest side of the known positions' bounding box.
fn extent(anchors: &Anchors) -> f32 {
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for p in anchors.positions.iter().flatten() {
        for d in 0..2 {
            lo[d] = lo[d].min(p[d]);
            hi[d] = hi[d].max(p[d]);
        }
    }
    (hi[0] - lo[0]).max(hi[1] - lo[1]).max(0.0)
}

struct Schedule {
    a: f32,
    b: f32,
    learning_rate: f32,
    epochs: usize,
    seed: u64,
}

/// `x^b` by linear interpolation in a table (the crate's trick: `powf` dominates otherwise).
struct PowTable {
    b: f32,
    max_x: f32,
    inv_step: f32,
    table: Vec<f32>,
}

impl PowTable {
    fn new(b: f32) -> Self {
        const SIZE: usize = 65_536;
        const MAX_X: f32 = 25.0;
        let step = MAX_X / (SIZE - 1) as f32;
        Self {
            b,
            max_x: MAX_X,
            inv_step: 1.0 / step,
            table: (0..SIZE).map(|i| (step * i as f32).powf(b)).collect(),
        }
    }

    #[inline(always)]
    fn get(&self, x: f32) -> f32 {
        if x >= self.max_x {
            return x.powf(self.b);
        }
        let at = x * self.inv_step;
        let i = at as usize;
        if i + 1 >= self.table.len() {
            return self.table[self.table.len() - 1];
        }
        let frac = at - i as f32;
        self.table[i] + frac * (self.table[i + 1] - self.table[i])
    }
}

/// Adam on the UMAP cross-entropy with edge sampling and negative sampling, as
/// manifolds-rs's `optimise_embedding_adam_parallel`: each member's gradient is gathered from
/// its own edges against frozen positions, so the result does not depend on the thread count.
fn optimise(
    positions: Vec<[f32; 2]>,
    csr: &UmapCsrGraph<f32>,
    schedule: &Schedule,
    control: &TaskControl,
    mut frames: Option<Frames<'_>>,
) -> AnalysisResult<Array2<f32>> {
    let n = positions.len();
    let n_epochs = schedule.epochs;
    let (a, b) = (schedule.a, schedule.b);
    let two_a_b = 2.0 * a * b;
    let two_gamma_b = 2.0 * b;
    let pow_b = PowTable::new(b);
    let neg_rate = NEGATIVE_SAMPLE_RATE as f32;

    let mut embedding = positions;
    let mut next_sample = csr.epochs_per_sample.clone();
    let mut next_negative: Vec<f32> = csr.epochs_per_sample.iter().map(|e| e / neg_rate).collect();
    let mut first_moment = vec![[0.0f32; 2]; n];
    let mut second_moment = vec![[0.0f32; 2]; n];
    let mut gradients = vec![[0.0f32; 2]; n];
    let mut updated = vec![false; n];
    let mut rngs: Vec<SmallRng> = (0..n as u64)
        .map(|i| SmallRng::seed_from_u64(schedule.seed.wrapping_add(i)))
        .collect();

    for epoch in 0..n_epochs {
        control.check()?;
        control.report("optimise", epoch, n_epochs);
        let epoch_f = epoch as f32;
        let lr = schedule.learning_rate * (1.0 - epoch_f / n_epochs as f32);
        let t = (epoch + 1) as i32;
        let sqrt_bias2 = (1.0 - ADAM_BETA2.powi(t)).sqrt();
        let step_scale = sqrt_bias2 / (1.0 - ADAM_BETA1.powi(t));
        let eps = sqrt_bias2 * ADAM_EPS;

        let frozen = &embedding;
        gradients
            .par_iter_mut()
            .zip(updated.par_iter_mut())
            .zip(rngs.par_iter_mut())
            .enumerate()
            .for_each(|(i, ((grad, has_update), rng))| {
                *grad = [0.0; 2];
                *has_update = false;
                let yi = frozen[i];
                let (lo, hi) = (
                    csr.node_edge_offsets[i] as usize,
                    csr.node_edge_offsets[i + 1] as usize,
                );
                for (&edge, &other) in csr.csr_edge_idx[lo..hi]
                    .iter()
                    .zip(&csr.csr_other_node[lo..hi])
                {
                    let (edge, other) = (edge as usize, other as usize);
                    if next_sample[edge] > epoch_f {
                        continue;
                    }
                    *has_update = true;
                    let yo = frozen[other];
                    let delta = [yo[0] - yi[0], yo[1] - yi[1]];
                    let dist_sq = delta[0] * delta[0] + delta[1] * delta[1];
                    if dist_sq >= MIN_DIST_SQ {
                        let dist_sq_b = pow_b.get(dist_sq);
                        let coeff = 2.0 * two_a_b * dist_sq_b / (dist_sq * (1.0 + a * dist_sq_b));
                        grad[0] += coeff * delta[0];
                        grad[1] += coeff * delta[1];
                    }
                    // The smaller endpoint owns the edge's negative samples.
                    if i < other {
                        let per_negative = csr.epochs_per_sample[edge] / neg_rate;
                        let n_negative = ((epoch_f - next_negative[edge]) / per_negative)
                            .floor()
                            .max(0.0);
                        for _ in 0..n_negative as usize {
                            let k = rng.random_range(0..n);
                            if k == i {
                                continue;
                            }
                            let yk = frozen[k];
                            let away = [yi[0] - yk[0], yi[1] - yk[1]];
                            let dist_sq = away[0] * away[0] + away[1] * away[1] + REPULSION_EPS;
                            let denom = dist_sq * (1.0 + a * pow_b.get(dist_sq));
                            let coeff = (two_gamma_b / denom).clamp(-GRAD_CLIP, GRAD_CLIP);
                            grad[0] += coeff * away[0];
                            grad[1] += coeff * away[1];
                        }
                    }
                }
            });

        embedding
            .par_iter_mut()
            .zip(first_moment.par_iter_mut())
            .zip(second_moment.par_iter_mut())
            .zip(gradients.par_iter().zip(updated.par_iter()))
            .for_each(|(((y, m), v), (g, &has_update))| {
                if !has_update {
                    return;
                }
                for d in 0..2 {
                    m[d] += (1.0 - ADAM_BETA1) * (g[d] - m[d]);
                    v[d] += (1.0 - ADAM_BETA2) * (g[d] * g[d] - v[d]);
                    y[d] += lr * step_scale * m[d] / (v[d].sqrt() + eps);
                }
            });

        next_sample
            .par_iter_mut()
            .zip(next_negative.par_iter_mut())
            .zip(csr.epochs_per_sample.par_iter())
            .for_each(|((next, next_neg), &per_sample)| {
                if *next <= epoch_f {
                    let per_negative = per_sample / neg_rate;
                    *next += per_sample;
                    let n_negative = ((epoch_f - *next_neg) / per_negative).floor().max(0.0);
                    *next_neg += n_negative * per_negative;
                }
            });

        if let Some(frames) = frames.as_mut() {
            let done = epoch + 1;
            if done % frames.every_epochs.max(1) == 0 || done == n_epochs {
                let flat = embedding.as_flattened();
                if let Ok(coords) = ArrayView2::from_shape((n, 2), flat) {
                    (frames.sink)(LayoutFrame {
                        epoch: done,
                        n_epochs,
                        coords,
                    });
                }
            }
        }
    }
    control.report("optimise", n_epochs, n_epochs);
    Array2::from_shape_vec((n, 2), embedding.into_flattened())
        .map_err(|e| AnalysisError::Invalid(format!("layout shape: {e}")))
}
