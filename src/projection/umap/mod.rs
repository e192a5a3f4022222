//! UMAP, as umap-learn computes it: a kNN graph (`super::knn`: exact up to
//! [`EXACT_KNN_MAX_ROWS`] rows, else our NN-descent, which can be cancelled and warm-started
//! from the previous graph), the fuzzy
//! simplicial set, a spectral initialisation (manifolds-rs) and umap-learn's SGD epoch loop
//! (ours: it streams intermediate layouts, can be cancelled and continues from a previous
//! layout for the live map).
//!
//! ```text
//! fuzzy.rs  kernel widths, fuzzy union, weak edges dropped, the optimiser's edge list
//! curve.rs  the a/b fit of the low-dimensional similarity (umap-learn's find_ab_params)
//! sgd.rs    the layout optimisation: Hogwild over edges, or one thread for a fixed seed
//! ```
//!
//! Parameters follow umap-learn: `n_neighbors` counts the point itself (so `n_neighbors − 1`
//! true neighbours are searched), `min_dist` 0.1, `spread` 1, and 500 epochs up to 10K points,
//! 200 above (umap-learn: `n <= 10000`).
//!
//! Deterministic for a given seed when [`UmapConfig::deterministic`] (the default): the kNN
//! search does not depend on thread scheduling, and the optimiser runs on one thread, as
//! umap-learn's does when seeded. The live map turns it off for Hogwild on every core.

pub mod curve;
pub mod fuzzy;
pub mod sgd;

use std::sync::Arc;
use std::time::Instant;

use faer::MatRef;
use manifolds_rs::data::init::{EmbdInit, initialise_embedding};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use self::curve::Curve;
use self::sgd::Schedule;
use super::knn::{Distance, KnnGraph, KnnSearch};
use super::warm_start::{Anchors, place_members};
use super::{Frames, Layout, validate};
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// Up to this many rows the kNN is exact (and deterministic); above, NN-descent.
pub const EXACT_KNN_MAX_ROWS: usize = super::knn::EXACT_MAX_ROWS;

/// Learning rate of a warm update: small, so the map settles without being rebuilt.
const WARM_LEARNING_RATE: f32 = 0.05;
/// Jitter of newly placed members, as a fraction of the old layout's extent.
const PLACEMENT_JITTER: f32 = 0.005;

/// umap-learn's size of the initial layout: each axis scaled to [0, 10].
const INITIAL_EXTENT: f32 = 10.0;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    #[default]
    Euclidean,
    Cosine,
}

impl Metric {
    fn distance(self) -> Distance {
        match self {
            Metric::Euclidean => Distance::Euclidean,
            Metric::Cosine => Distance::Cosine,
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
    /// The same layout for the same seed (the optimiser on one thread); `false` runs it
    /// Hogwild on every core, as umap-learn without a seed.
    pub deterministic: bool,
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
            deterministic: true,
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
    let cold_epochs = config.cold_epochs(n);
    let warm = init.filter(|anchors| anchors.n_known() > 0);

    let started = Instant::now();
    let knn = Arc::new(nearest_neighbours(
        values,
        (n, data.ncols()),
        config,
        warm.and_then(|anchors| anchors.knn_start.as_ref()),
        control,
    )?);
    log_stage("knn", started);

    // Fuzzy simplicial set, filtered as for a cold run so warm updates optimise the same graph.
    control.report("graph", 0, 1);
    let started = Instant::now();
    let graph = fuzzy::fuzzy_graph(&knn, config.n_neighbors, cold_epochs);
    log_stage("graph", started);
    control.report("graph", 1, 1);
    control.check()?;

    control.report("init", 0, 1);
    let started = Instant::now();
    let (positions, epochs, learning_rate, placed_new) = match warm {
        Some(anchors) => {
            let jitter = PLACEMENT_JITTER * extent(anchors);
            let placed = place_members(data, anchors, &knn, jitter, config.seed, control)?;
            let new = n - anchors.n_known();
            (placed, config.warm_epochs, WARM_LEARNING_RATE, new)
        }
        None => {
            let matrix = MatRef::from_row_major_slice(values, n, data.ncols());
            let spectral = initialise_embedding(
                &EmbdInit::SpectralInit { range: None },
                2,
                config.seed,
                &graph,
                matrix,
            )
            .map_err(crate_error)?;
            let positions: Vec<[f32; 2]> = spectral.iter().map(|p| [p[0], p[1]]).collect();
            (fill_initial_box(positions), cold_epochs, 1.0, 0)
        }
    };
    log_stage("init", started);
    control.report("init", 1, 1);
    control.check()?;

    let edges = fuzzy::edges_of(&graph);
    drop(graph);
    let schedule = Schedule {
        curve: Curve::fit(config.min_dist, config.spread),
        initial_learning_rate: learning_rate,
        epochs,
        seed: config.seed,
        deterministic: config.deterministic,
    };
    let started = Instant::now();
    let coords = sgd::optimise(&positions, &edges, &schedule, control, frames)?;
    log_stage("optimise", started);
    Ok(Layout {
        coords,
        epochs,
        warm_started: warm.is_some(),
        placed_new,
        knn: Some(knn),
    })
}

/// The `n_neighbors − 1` nearest other members of every row: exact for small inputs, else
/// NN-descent (from `start`, the previous graph mapped onto these rows, when there is one).
fn nearest_neighbours(
    values: &[f32],
    (n_rows, dim): (usize, usize),
    config: &UmapConfig,
    start: Option<&KnnGraph>,
    control: &TaskControl,
) -> AnalysisResult<KnnGraph> {
    let search = KnnSearch {
        data: values,
        n_rows,
        dim,
        k: config.n_neighbors - 1,
        distance: config.metric.distance(),
        seed: config.seed,
    };
    let is_cancelled = || control.is_cancelled();
    let progress = |done: usize, total: usize| control.report("knn", done, total);
    progress(0, 1);
    let graph = search
        .auto(start, &is_cancelled, &progress)
        .map_err(|_| AnalysisError::Cancelled)?;
    progress(1, 1);
    Ok(graph)
}

/// umap-learn's last step before optimising: each axis scaled to `[0, INITIAL_EXTENT]`.
fn fill_initial_box(mut positions: Vec<[f32; 2]>) -> Vec<[f32; 2]> {
    for d in 0..2 {
        let (lo, hi) = positions
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p[d]), hi.max(p[d]))
            });
        let scale = if hi > lo {
            INITIAL_EXTENT / (hi - lo)
        } else {
            1.0
        };
        for p in &mut positions {
            p[d] = (p[d] - lo) * scale;
        }
    }
    positions
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
