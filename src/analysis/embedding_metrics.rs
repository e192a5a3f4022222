//! How well an embedding keeps classes apart and neighbourhoods intact: silhouette,
//! neighbourhood hit, separability (kNN majority vote), kNN accuracy and trustworthiness.
//!
//! Every metric is a mean over members of a per-member value computed against the *whole* set
//! by exact brute force (parallel over blocks of members, memory O(n) per thread, no n×n
//! matrix). When the work would exceed the [`Sampling`] budget, the mean is taken over a seeded
//! sample of members instead — each sampled member is still scored exactly against all members,
//! so the estimate is unbiased — and the returned [`Score`] says how many were used.
//!
//! Conventions follow scikit-learn where it has the metric: euclidean distances; silhouette of a
//! member of a singleton cluster is 0; neighbours exclude the member itself; among equidistant
//! neighbours the one with the smaller row index comes first; a majority vote tied between
//! labels goes to the smallest label (as `KNeighborsClassifier`'s argmax does).

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// Neighbours for neighbourhood hit and separability, as in Gadirov et al. 2021.
pub const CLASS_NEIGHBOURS: usize = 17;
/// Neighbours for [`EmbeddingScores::knn_accuracy`] (scikit-learn's `KNeighborsClassifier`
/// default).
pub const KNN_ACCURACY_NEIGHBOURS: usize = 5;
/// Neighbours for [`EmbeddingScores::trustworthiness`].
pub const TRUSTWORTHINESS_NEIGHBOURS: usize = 10;

/// When to score every member and when a seeded sample of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Largest exact cost, in distance evaluations × (dimensions + 10) summed over the passes
    /// over all pairs a computation makes — the 10 stands for the per-pair work beyond the
    /// distance (square root, comparisons). The default, 3·10¹⁰, keeps a silhouette of
    /// 10K × 256 or 50K × 2 exact, about 2 s each on two cores.
    pub max_cost: u64,
    /// Fewest members to score when sampling, whatever the budget.
    pub min_sample_members: usize,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            max_cost: 30_000_000_000,
            min_sample_members: 2_000,
            seed: 0,
        }
    }
}

impl Sampling {
    /// Always score every member.
    pub fn exact() -> Self {
        Self {
            max_cost: u64::MAX,
            ..Self::default()
        }
    }

    /// How many members to score out of `total`, each costing `total · pair_cost`.
    fn members_to_score(&self, total: usize, pair_cost: u64) -> usize {
        let per_member = (total as u64).saturating_mul(pair_cost);
        if per_member.saturating_mul(total as u64) <= self.max_cost {
            return total;
        }
        let affordable = (self.max_cost / per_member.max(1)) as usize;
        affordable.max(self.min_sample_members).min(total)
    }
}

/// Cost of one pass over all pairs: the distance plus the per-pair work beyond it, in units of
/// one dimension's share (measured: ~1.3 ns per pair in 2-D, ~33 ns in 256-D).
fn pass_cost(dims: usize) -> u64 {
    dims as u64 + 10
}

/// A metric's value and how many members it was averaged over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub value: f64,
    /// Members scored (each against all members).
    pub members_used: usize,
    pub members_total: usize,
}

impl Score {
    /// Whether `value` estimates the mean from a sample of members.
    pub fn is_sampled(&self) -> bool {
        self.members_used < self.members_total
    }
}

/// The set `sense eval` prints. Serialised with exactly these keys (plus `sampled_members` only
/// when sampling was used).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingScores {
    pub silhouette: f64,
    /// Leave-one-out kNN majority-vote accuracy, k = [`CLASS_NEIGHBOURS`].
    pub separability: f64,
    /// Mean same-label fraction of the k = [`CLASS_NEIGHBOURS`] nearest neighbours.
    pub neighbourhood_hit: f64,
    /// k = [`TRUSTWORTHINESS_NEIGHBOURS`]; `None` without the high-dimensional input.
    pub trustworthiness: Option<f64>,
    /// Leave-one-out kNN majority-vote accuracy, k = [`KNN_ACCURACY_NEIGHBOURS`].
    pub knn_accuracy: f64,
    /// Members scored when the set was too large to score them all (stratified by label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_members: Option<usize>,
    /// The neighbour counts used when too few members allowed the standard ones (each is at
    /// most members − 1, and trustworthiness's below members / 2); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduced_neighbours: Option<NeighbourCounts>,
}

/// The k of each neighbourhood metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourCounts {
    /// Separability and neighbourhood hit ([`CLASS_NEIGHBOURS`] normally).
    pub class: usize,
    /// kNN accuracy ([`KNN_ACCURACY_NEIGHBOURS`] normally).
    pub knn: usize,
    /// Trustworthiness ([`TRUSTWORTHINESS_NEIGHBOURS`] normally).
    pub trustworthiness: usize,
}

impl NeighbourCounts {
    pub const STANDARD: Self = Self {
        class: CLASS_NEIGHBOURS,
        knn: KNN_ACCURACY_NEIGHBOURS,
        trustworthiness: TRUSTWORTHINESS_NEIGHBOURS,
    };

    /// The standard counts, reduced where `rows` members cannot provide them: a small
    /// labelled set is still scored (and says with which k) rather than refused.
    pub fn for_members(rows: usize) -> Self {
        let below = |k: usize, bound: usize| k.min(bound.saturating_sub(1)).max(1);
        Self {
            class: below(CLASS_NEIGHBOURS, rows),
            knn: below(KNN_ACCURACY_NEIGHBOURS, rows),
            trustworthiness: below(TRUSTWORTHINESS_NEIGHBOURS, rows.div_ceil(2)),
        }
    }
}

/// Scores a labelled embedding (`embedding` rows = members, labels one per row); with the
/// high-dimensional input it came from (same rows), trustworthiness too. One stratified sample
/// of members, if any, serves all metrics.
pub fn embedding_scores(
    embedding: ArrayView2<f32>,
    labels: &[usize],
    high_dim: Option<ArrayView2<f32>>,
    sampling: &Sampling,
    control: &TaskControl,
) -> AnalysisResult<EmbeddingScores> {
    let points = Points::new(embedding, "embedding")?;
    let classes = Classes::new(labels, points.rows, "labels")?;
    let k = NeighbourCounts::for_members(points.rows);
    let k_max = k.class.max(k.knn);
    check_neighbours(k_max, points.rows)?;
    let high = high_dim
        .map(|high| {
            let high = Points::new(high, "high-dimensional input")?;
            check_same_rows(&high, &points)?;
            check_trustworthiness_neighbours(k.trustworthiness, points.rows)?;
            Ok::<_, AnalysisError>(high)
        })
        .transpose()?;

    // Silhouette and neighbours each pass over the embedding; trustworthiness over both.
    let pair_cost = 2 * pass_cost(points.dims)
        + high
            .as_ref()
            .map_or(0, |h| pass_cost(h.dims) + pass_cost(points.dims));
    let queries = QuerySet::stratified(
        &classes,
        sampling.members_to_score(points.rows, pair_cost),
        sampling.seed,
    );

    let silhouette = silhouette_of(&points, &classes, &queries, control)?;
    let neighbours = nearest_neighbours(&points, &queries, k_max, control)?;
    let separability = classify(&neighbours, &queries, &classes, k.class, Vote::Majority);
    let neighbourhood_hit = classify(&neighbours, &queries, &classes, k.class, Vote::Hit);
    let knn_accuracy = classify(&neighbours, &queries, &classes, k.knn, Vote::Majority);
    let trustworthiness = high
        .map(|high| trustworthiness_of(&high, &points, k.trustworthiness, &queries, control))
        .transpose()?;

    Ok(EmbeddingScores {
        silhouette,
        separability,
        neighbourhood_hit,
        trustworthiness,
        knn_accuracy,
        sampled_members: (queries.len() < points.rows).then_some(queries.len()),
        reduced_neighbours: (k != NeighbourCounts::STANDARD).then_some(k),
    })
}

/// Mean silhouette coefficient (euclidean), as scikit-learn's `silhouette_score`. Needs at
/// least 2 and at most n − 1 distinct labels. Sampling is stratified by label.
pub fn silhouette(
    points: ArrayView2<f32>,
    labels: &[usize],
    sampling: &Sampling,
    control: &TaskControl,
) -> AnalysisResult<Score> {
    let points = Points::new(points, "points")?;
    let classes = Classes::new(labels, points.rows, "labels")?;
    check_silhouette_labels(&classes)?;
    let queries = QuerySet::stratified(
        &classes,
        sampling.members_to_score(points.rows, pass_cost(points.dims)),
        sampling.seed,
    );
    let value = silhouette_of(&points, &classes, &queries, control)?;
    Ok(queries.score(value))
}

/// Silhouette coefficient of every member (scikit-learn's `silhouette_samples`), always exact.
pub fn silhouette_samples(
    points: ArrayView2<f32>,
    labels: &[usize],
    control: &TaskControl,
) -> AnalysisResult<Vec<f64>> {
    let points = Points::new(points, "points")?;
    let classes = Classes::new(labels, points.rows, "labels")?;
    check_silhouette_labels(&classes)?;
    per_member_silhouettes(&points, &classes, &QuerySet::all(points.rows), control)
}

/// Mean fraction of each member's `k` nearest neighbours (itself excluded) that share its label.
pub fn neighbourhood_hit(
    points: ArrayView2<f32>,
    labels: &[usize],
    k: usize,
    sampling: &Sampling,
    control: &TaskControl,
) -> AnalysisResult<Score> {
    knn_metric(points, labels, k, Vote::Hit, sampling, control)
}

/// Leave-one-out accuracy of a `k`-nearest-neighbour majority vote.
pub fn knn_accuracy(
    points: ArrayView2<f32>,
    labels: &[usize],
    k: usize,
    sampling: &Sampling,
    control: &TaskControl,
) -> AnalysisResult<Score> {
    knn_metric(points, labels, k, Vote::Majority, sampling, control)
}

/// Separability as in Gadirov et al. 2021: [`knn_accuracy`] with k = [`CLASS_NEIGHBOURS`].
pub fn separability(
    points: ArrayView2<f32>,
    labels: &[usize],
    sampling: &Sampling,
    control: &TaskControl,
) -> AnalysisResult<Score> {
    knn_accuracy(points, labels, CLASS_NEIGHBOURS, sampling, control)
}

/// How much the `k`-neighbourhoods of `low` (the embedding) are true neighbours in `high` (the
/// input), as scikit-learn's `manifold.trustworthiness` (euclidean). Needs k < n / 2. Sampling
/// is uniform.
pub fn trustworthiness(
    high: ArrayView2<f32>,
    low: ArrayView2<f32>,
    k: usize,
    sampling: &Sampling,
    control: &TaskControl,
) -> AnalysisResult<Score> {
    let high = Points::new(high, "high-dimensional input")?;
    let low = Points::new(low, "embedding")?;
    check_same_rows(&high, &low)?;
    check_trustworthiness_neighbours(k, low.rows)?;
    let queries = QuerySet::uniform(
        low.rows,
        sampling.members_to_score(low.rows, pass_cost(high.dims) + pass_cost(low.dims)),
        sampling.seed,
    );
    let value = trustworthiness_of(&high, &low, k, &queries, control)?;
    Ok(queries.score(value))
}

fn knn_metric(
    points: ArrayView2<f32>,
    labels: &[usize],
    k: usize,
    vote: Vote,
    sampling: &Sampling,
    control: &TaskControl,
) -> AnalysisResult<Score> {
    let points = Points::new(points, "points")?;
    let classes = Classes::new(labels, points.rows, "labels")?;
    check_neighbours(k, points.rows)?;
    let queries = QuerySet::stratified(
        &classes,
        sampling.members_to_score(points.rows, pass_cost(points.dims)),
        sampling.seed,
    );
    let neighbours = nearest_neighbours(&points, &queries, k, control)?;
    Ok(queries.score(classify(&neighbours, &queries, &classes, k, vote)))
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// Row-major f32 points, checked finite.
struct Points<'a> {
    data: std::borrow::Cow<'a, [f32]>,
    rows: usize,
    dims: usize,
}

impl<'a> Points<'a> {
    fn new(view: ArrayView2<'a, f32>, what: &'static str) -> AnalysisResult<Self> {
        let (rows, dims) = view.dim();
        if dims == 0 {
            return Err(AnalysisError::Invalid(format!("{what} has no columns")));
        }
        if let Some(row) = view
            .outer_iter()
            .position(|row| row.iter().any(|v| !v.is_finite()))
        {
            return Err(AnalysisError::NonFinite { what, row });
        }
        let data = match view.to_slice() {
            Some(slice) => std::borrow::Cow::Borrowed(slice),
            None => std::borrow::Cow::Owned(view.iter().copied().collect()),
        };
        Ok(Self { data, rows, dims })
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }
}

/// Labels mapped to dense class indices 0..count (in ascending label order).
struct Classes {
    of_member: Vec<u32>,
    sizes: Vec<usize>,
}

impl Classes {
    fn new(labels: &[usize], rows: usize, what: &'static str) -> AnalysisResult<Self> {
        if labels.len() != rows {
            return Err(AnalysisError::LengthMismatch {
                what,
                expected: rows,
                got: labels.len(),
            });
        }
        let mut distinct = labels.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 2 {
            return Err(AnalysisError::Invalid(format!(
                "{what}: {} distinct label(s); at least 2 classes are needed",
                distinct.len()
            )));
        }
        let mut sizes = vec![0; distinct.len()];
        let of_member = labels
            .iter()
            .map(|label| {
                // Present by construction: `distinct` holds every label.
                let class = distinct.binary_search(label).unwrap_or(0);
                sizes[class] += 1;
                class as u32
            })
            .collect();
        Ok(Self { of_member, sizes })
    }

    fn count(&self) -> usize {
        self.sizes.len()
    }
}

fn check_silhouette_labels(classes: &Classes) -> AnalysisResult<()> {
    let rows = classes.of_member.len();
    if classes.count() >= rows {
        return Err(AnalysisError::Invalid(format!(
            "silhouette needs between 2 and {} distinct labels for {rows} members, got {}",
            rows.saturating_sub(1),
            classes.count()
        )));
    }
    Ok(())
}

fn check_neighbours(k: usize, rows: usize) -> AnalysisResult<()> {
    if k == 0 || k >= rows {
        return Err(AnalysisError::Invalid(format!(
            "{k} neighbours asked for {rows} members; need 1 ≤ k < members"
        )));
    }
    Ok(())
}

fn check_trustworthiness_neighbours(k: usize, rows: usize) -> AnalysisResult<()> {
    if k == 0 || 2 * k >= rows {
        return Err(AnalysisError::Invalid(format!(
            "trustworthiness with {k} neighbours needs more than {} members, got {rows}",
            2 * k
        )));
    }
    Ok(())
}

fn check_same_rows(high: &Points, low: &Points) -> AnalysisResult<()> {
    if high.rows != low.rows {
        return Err(AnalysisError::LengthMismatch {
            what: "embedding",
            expected: high.rows,
            got: low.rows,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Which members are scored

/// Members to score, each with the number of members it stands for (1 when exact).
struct QuerySet {
    members: Vec<usize>,
    weights: Vec<f64>,
    total: usize,
}

impl QuerySet {
    fn all(total: usize) -> Self {
        Self {
            members: (0..total).collect(),
            weights: vec![1.0; total],
            total,
        }
    }

    /// `wanted` members drawn uniformly without replacement.
    fn uniform(total: usize, wanted: usize, seed: u64) -> Self {
        if wanted >= total {
            return Self::all(total);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut members = rand::seq::index::sample(&mut rng, total, wanted).into_vec();
        members.sort_unstable();
        let weight = total as f64 / wanted as f64;
        Self {
            weights: vec![weight; members.len()],
            members,
            total,
        }
    }

    /// About `wanted` members, allocated to classes in proportion to their size (at least one
    /// per class), drawn uniformly within each class; each weighted by its class's size over
    /// its class's draws, so means stay unbiased.
    fn stratified(classes: &Classes, wanted: usize, seed: u64) -> Self {
        let total = classes.of_member.len();
        if wanted >= total {
            return Self::all(total);
        }
        let mut by_class: Vec<Vec<usize>> = classes
            .sizes
            .iter()
            .map(|&s| Vec::with_capacity(s))
            .collect();
        for (member, &class) in classes.of_member.iter().enumerate() {
            by_class[class as usize].push(member);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut picked = Vec::with_capacity(wanted + classes.count());
        for members in &by_class {
            let share = (wanted as f64 * members.len() as f64 / total as f64).round() as usize;
            let draws = share.clamp(1, members.len());
            let weight = members.len() as f64 / draws as f64;
            for index in rand::seq::index::sample(&mut rng, members.len(), draws) {
                picked.push((members[index], weight));
            }
        }
        picked.sort_unstable_by_key(|&(member, _)| member);
        Self {
            members: picked.iter().map(|&(m, _)| m).collect(),
            weights: picked.iter().map(|&(_, w)| w).collect(),
            total,
        }
    }

    fn len(&self) -> usize {
        self.members.len()
    }

    /// Weighted mean of per-query values (the estimate of the mean over all members).
    fn mean(&self, values: impl Iterator<Item = f64>) -> f64 {
        let sum: f64 = values.zip(&self.weights).map(|(v, w)| v * w).sum();
        sum / self.total as f64
    }

    fn score(&self, value: f64) -> Score {
        Score {
            value,
            members_used: self.len(),
            members_total: self.total,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Brute-force distances, block by block

/// Distance values held per block when the points are wide: large blocks let each tile of
/// points loaded from memory serve many queries; bounds each thread's buffer to ~16 MB.
const BLOCK_VALUES: usize = 4 << 20;
/// Distance values held per block for 2-D/3-D points, which all stay in cache anyway: small
/// enough that the distance rows stay in L2 until they are read.
const SMALL_BLOCK_VALUES: usize = 64 << 10;
/// Points per cache tile when streaming all members against a block of queries.
const TILE_POINTS: usize = 256;

/// Squared euclidean distance, summed in 16 lanes so the compiler vectorises it with
/// independent accumulators.
#[inline(always)]
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let (a_chunks, b_chunks) = (a.chunks_exact(16), b.chunks_exact(16));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..16 {
            let d = x[lane] - y[lane];
            lanes[lane] += d * d;
        }
    }
    let mut sum = lanes.iter().sum::<f32>();
    for (x, y) in a_rest.iter().zip(b_rest) {
        let d = x - y;
        sum += d * d;
    }
    sum
}

/// Fills `out` (block × n, row-major) with squared distances from each `from` row in `block`
/// to every row of `to` (same dimensions).
fn squared_distances(from: &Points, block: &[usize], to: &Points, out: &mut Vec<f32>) {
    out.clear();
    out.resize(block.len() * to.rows, 0.0);
    match to.dims {
        // Embeddings: fixed-size rows let the compiler unroll; all points fit in cache.
        2 => squared_distances_fixed::<2>(from, block, to, out),
        3 => squared_distances_fixed::<3>(from, block, to, out),
        _ => squared_distances_tiled(from, block, to, out),
    }
}

fn squared_distances_fixed<const D: usize>(
    from: &Points,
    block: &[usize],
    to: &Points,
    out: &mut [f32],
) {
    let (queries, targets) = (from.data.as_chunks::<D>().0, to.data.as_chunks::<D>().0);
    for (&query, row) in block.iter().zip(out.chunks_exact_mut(to.rows)) {
        let x = &queries[query];
        for (d2, y) in row.iter_mut().zip(targets) {
            *d2 = (0..D).map(|k| (x[k] - y[k]) * (x[k] - y[k])).sum();
        }
    }
}

/// Tiles the targets so a tile stays in cache while every query of the block passes over it.
/// Compiled twice: with AVX2 (8 lanes, twice the SSE2 baseline) where the CPU has it.
fn squared_distances_tiled(from: &Points, block: &[usize], to: &Points, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { squared_distances_tiled_avx2(from, block, to, out) };
    }
    squared_distances_tiled_portable(from, block, to, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn squared_distances_tiled_avx2(from: &Points, block: &[usize], to: &Points, out: &mut [f32]) {
    squared_distances_tiled_portable(from, block, to, out);
}

#[inline(always)]
fn squared_distances_tiled_portable(from: &Points, block: &[usize], to: &Points, out: &mut [f32]) {
    let n = to.rows;
    for tile_start in (0..n).step_by(TILE_POINTS) {
        let tile = tile_start..(tile_start + TILE_POINTS).min(n);
        for (&query, row) in block.iter().zip(out.chunks_exact_mut(n)) {
            let x = from.row(query);
            for j in tile.clone() {
                row[j] = squared_distance(x, to.row(j));
            }
        }
    }
}

/// Runs `work` on blocks of the queries in parallel, each with a reusable thread-local buffer,
/// polling `control` between blocks. Results come back in query order.
fn per_block<T: Send>(
    queries: &[usize],
    points: &Points,
    stage: &'static str,
    control: &TaskControl,
    work: impl Fn(&[usize], &mut Buffers) -> Vec<T> + Sync,
) -> AnalysisResult<Vec<T>> {
    let values = match points.dims {
        ..=3 => SMALL_BLOCK_VALUES,
        _ => BLOCK_VALUES,
    };
    let block = (values / points.rows.max(1)).clamp(1, 64);
    let done = AtomicUsize::new(0);
    let blocks: Vec<Vec<T>> = queries
        .par_chunks(block)
        .map_init(Buffers::default, |buffers, chunk| {
            control.check()?;
            let out = work(chunk, buffers);
            let finished = done.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
            control.report(stage, finished, queries.len());
            Ok(out)
        })
        .collect::<AnalysisResult<_>>()?;
    Ok(blocks.into_iter().flatten().collect())
}

#[derive(Default)]
struct Buffers {
    first: Vec<f32>,
    second: Vec<f32>,
}

// ---------------------------------------------------------------------------------------------
// Silhouette

fn silhouette_of(
    points: &Points,
    classes: &Classes,
    queries: &QuerySet,
    control: &TaskControl,
) -> AnalysisResult<f64> {
    check_silhouette_labels(classes)?;
    let values = per_member_silhouettes(points, classes, queries, control)?;
    Ok(queries.mean(values.into_iter()))
}

fn per_member_silhouettes(
    points: &Points,
    classes: &Classes,
    queries: &QuerySet,
    control: &TaskControl,
) -> AnalysisResult<Vec<f64>> {
    // Against a class-sorted copy, each class is a contiguous stretch of a distance row.
    let mut order: Vec<usize> = (0..points.rows).collect();
    order.sort_by_key(|&member| classes.of_member[member]);
    let sorted = Points {
        data: order
            .iter()
            .flat_map(|&member| points.row(member).iter().copied())
            .collect(),
        rows: points.rows,
        dims: points.dims,
    };
    let n = points.rows;
    per_block(
        &queries.members,
        points,
        "silhouette",
        control,
        |block, buffers| {
            squared_distances(points, block, &sorted, &mut buffers.first);
            let mut sums = vec![0f64; classes.count()];
            block
                .iter()
                .zip(buffers.first.chunks_exact(n))
                .map(|(&member, row)| {
                    let mut start = 0;
                    for (sum, &size) in sums.iter_mut().zip(&classes.sizes) {
                        *sum = sum_of_roots(&row[start..start + size]);
                        start += size;
                    }
                    member_silhouette(&sums, classes, classes.of_member[member] as usize)
                })
                .collect()
        },
    )
}

/// Σ √v in f64 over f32 squared distances, in 8 lanes so it vectorises.
fn sum_of_roots(squared: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = squared.chunks_exact(8);
    let rest: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| f64::from(v.sqrt()))
        .sum();
    for chunk in chunks {
        for lane in 0..8 {
            lanes[lane] += f64::from(chunk[lane].sqrt());
        }
    }
    lanes.iter().sum::<f64>() + rest
}

/// s = (b − a) / max(a, b) with a the mean distance to the own cluster (self excluded) and b the
/// smallest mean distance to another cluster; 0 for singletons and for a = b = 0, as sklearn.
fn member_silhouette(sums: &[f64], classes: &Classes, own: usize) -> f64 {
    let own_size = classes.sizes[own];
    if own_size < 2 {
        return 0.0;
    }
    let a = sums[own] / (own_size - 1) as f64;
    let b = sums
        .iter()
        .zip(&classes.sizes)
        .enumerate()
        .filter(|&(class, _)| class != own)
        .map(|(_, (sum, &size))| sum / size as f64)
        .fold(f64::INFINITY, f64::min);
    let s = (b - a) / a.max(b);
    if s.is_nan() { 0.0 } else { s }
}

// ---------------------------------------------------------------------------------------------
// Nearest neighbours and votes

/// The `k` nearest neighbours of each query, self excluded, nearest first (ties: smaller row
/// index first). Flat: query q's neighbours are `[q * k, (q + 1) * k)`.
fn nearest_neighbours(
    points: &Points,
    queries: &QuerySet,
    k: usize,
    control: &TaskControl,
) -> AnalysisResult<Vec<u32>> {
    let n = points.rows;
    per_block(
        &queries.members,
        points,
        "nearest neighbours",
        control,
        |block, buffers| {
            squared_distances(points, block, points, &mut buffers.first);
            let mut flat = Vec::with_capacity(block.len() * k);
            for (q, &member) in block.iter().enumerate() {
                let row = &buffers.first[q * n..(q + 1) * n];
                flat.extend(
                    k_smallest(row, member, k)
                        .into_iter()
                        .map(|(_, j)| j as u32),
                );
            }
            flat
        },
    )
}

/// The `k` smallest (distance, index) pairs of `row`, skipping `exclude`, sorted ascending.
/// Scanning in index order and replacing only on strictly smaller distance keeps the smaller
/// index among equals.
fn k_smallest(row: &[f32], exclude: usize, k: usize) -> Vec<(f32, usize)> {
    const CHUNK: usize = 16;
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (c, chunk) in row.chunks(CHUNK).enumerate() {
        // Once full, most chunks hold nothing nearer: test them in one vectorised sweep.
        if best.len() == k {
            let worst = best[k - 1].0;
            if !chunk.iter().fold(false, |any, &d| any | (d < worst)) {
                continue;
            }
        }
        for (offset, &d) in chunk.iter().enumerate() {
            let j = c * CHUNK + offset;
            if j == exclude || (best.len() == k && d >= best[k - 1].0) {
                continue;
            }
            // Insert after every entry with distance ≤ d: equals keep index order.
            let at = best.partition_point(|&(e, _)| e <= d);
            best.insert(at, (d, j));
            best.truncate(k);
        }
    }
    best
}

#[derive(Clone, Copy)]
enum Vote {
    /// Fraction of the neighbours sharing the member's label.
    Hit,
    /// 1 when the most frequent neighbour label (smallest label on ties) is the member's.
    Majority,
}

/// Weighted mean over queries of the vote on their first `k` neighbours (`neighbours` holds
/// `stride = neighbours.len() / queries` per query, nearest first).
fn classify(
    neighbours: &[u32],
    queries: &QuerySet,
    classes: &Classes,
    k: usize,
    vote: Vote,
) -> f64 {
    let stride = neighbours.len() / queries.len().max(1);
    let mut counts = vec![0usize; classes.count()];
    let values = queries.members.iter().enumerate().map(|(q, &member)| {
        let own = classes.of_member[member] as usize;
        let near = &neighbours[q * stride..q * stride + k];
        counts.fill(0);
        for &j in near {
            counts[classes.of_member[j as usize] as usize] += 1;
        }
        match vote {
            Vote::Hit => counts[own] as f64 / k as f64,
            Vote::Majority => {
                // First maximum = smallest class index = smallest label.
                let winner = counts
                    .iter()
                    .enumerate()
                    .fold(
                        (0, 0),
                        |best, (class, &c)| if c > best.1 { (class, c) } else { best },
                    )
                    .0;
                f64::from(u8::from(winner == own))
            }
        }
    });
    queries.mean(values)
}

// ---------------------------------------------------------------------------------------------
// Trustworthiness

/// T(k) = 1 − 2 / (n k (2n − 3k − 1)) · Σ_i Σ_{j ∈ U_k(i)} (r(i, j) − k), where U_k(i) are the
/// low-dimensional neighbours of i not among its high-dimensional k nearest and r(i, j) is j's
/// rank by high-dimensional distance from i (1 = nearest, ties by row index). Ranks are counted
/// from one distance row per member, so no n × n matrix is held.
fn trustworthiness_of(
    high: &Points,
    low: &Points,
    k: usize,
    queries: &QuerySet,
    control: &TaskControl,
) -> AnalysisResult<f64> {
    let n = low.rows;
    let penalties = per_block(
        &queries.members,
        high,
        "trustworthiness",
        control,
        |block, buffers| {
            squared_distances(high, block, high, &mut buffers.first);
            squared_distances(low, block, low, &mut buffers.second);
            let rows = buffers
                .first
                .chunks_exact_mut(n)
                .zip(buffers.second.chunks_exact(n));
            block
                .iter()
                .zip(rows)
                .map(|(&member, (high_row, low_row))| {
                    // The member itself ranks last, as in sklearn (∞ on the diagonal).
                    high_row[member] = f32::INFINITY;
                    let high_nearest = k_smallest(high_row, member, k);
                    k_smallest(low_row, member, k)
                        .into_iter()
                        .filter(|&(_, j)| !high_nearest.iter().any(|&(_, h)| h == j))
                        .map(|(_, j)| (high_rank(high_row, j) - k) as f64)
                        .sum::<f64>()
                })
                .collect()
        },
    )?;
    let (n, k) = (n as f64, k as f64);
    let penalty = queries.mean(penalties.into_iter()) * n;
    Ok(1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))
}

/// 1-based rank of `j` in `row` by ascending distance, equal distances in index order.
fn high_rank(row: &[f32], j: usize) -> usize {
    let dj = row[j];
    let closer = row.iter().filter(|&&d| d < dj).count();
    let equal_before = row[..j].iter().filter(|&&d| d == dj).count();
    1 + closer + equal_before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_labelled_members_are_scored_with_smaller_k() {
        // Six members: the standard k = 17 / 5 / 10 do not fit, 5 / 5 / 2 do.
        let x = ndarray::array![
            [0.0f32, 0.0],
            [0.1, 0.0],
            [0.0, 0.1],
            [5.0, 5.0],
            [5.1, 5.0],
            [5.0, 5.1]
        ];
        let y = [0, 0, 0, 1, 1, 1];
        let scores = embedding_scores(
            x.view(),
            &y,
            Some(x.view()),
            &Sampling::exact(),
            &TaskControl::new(),
        )
        .unwrap();
        let expected = NeighbourCounts {
            class: 5,
            knn: 5,
            trustworthiness: 2,
        };
        assert_eq!(scores.reduced_neighbours, Some(expected));
        assert_eq!(scores.trustworthiness, Some(1.0));
        let standard = NeighbourCounts::for_members(100);
        assert_eq!(standard, NeighbourCounts::STANDARD);
    }

    #[test]
    fn k_smallest_keeps_the_smaller_index_among_equals() {
        let row = [0.0, 1.0, 1.0, 0.5, 1.0];
        assert_eq!(k_smallest(&row, 0, 2), vec![(0.5, 3), (1.0, 1)]);
        assert_eq!(k_smallest(&row, 3, 3), vec![(0.0, 0), (1.0, 1), (1.0, 2)]);
    }

    #[test]
    fn squared_distance_covers_lanes_and_remainder() {
        let a: Vec<f32> = (0..11).map(|i| i as f32).collect();
        let b = vec![0.0; 11];
        assert_eq!(
            squared_distance(&a, &b),
            (0..11).map(|i| (i * i) as f32).sum::<f32>()
        );
    }

    #[test]
    fn distance_kernels_agree_with_the_definition() {
        // Several tiles of targets, and the fixed-size kernels.
        for dims in [2, 3, 19] {
            let rows = 2 * TILE_POINTS + 37;
            let data: Vec<f32> = (0..rows * dims)
                .map(|i| ((i * 7919) % 101) as f32 / 10.0)
                .collect();
            let view = ArrayView2::from_shape((rows, dims), &data).unwrap();
            let points = Points::new(view, "points").unwrap();
            let block = [0, 5, rows - 1];
            let mut out = Vec::new();
            squared_distances(&points, &block, &points, &mut out);
            for (q, &query) in block.iter().enumerate() {
                for j in 0..rows {
                    let expected: f32 = (0..dims)
                        .map(|d| (data[query * dims + d] - data[j * dims + d]).powi(2))
                        .sum();
                    let got = out[q * rows + j];
                    assert!(
                        (got - expected).abs() <= 1e-4 * expected.max(1.0),
                        "{dims}-D {query}→{j}"
                    );
                }
            }
        }
    }

    #[test]
    fn stratified_sample_weights_sum_to_the_total() {
        let labels: Vec<usize> = (0..1000).map(|i| usize::from(i % 10 == 0)).collect();
        let classes = Classes::new(&labels, labels.len(), "labels").unwrap();
        let queries = QuerySet::stratified(&classes, 100, 7);
        assert_eq!(queries.len(), 100);
        assert!((queries.weights.iter().sum::<f64>() - 1000.0).abs() < 1e-9);
        assert!(queries.members.windows(2).all(|w| w[0] < w[1]));
    }
}
