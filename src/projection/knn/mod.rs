//! k-nearest-neighbour graph for UMAP and label spreading: an exact search for small sets and NN-descent (Dong,
//! Moses & Li 2011, as pynndescent implements it) above, both parallel, seeded and cancellable.
//!
//! We write it ourselves because the available crates (ann-search-rs, through manifolds-rs)
//! can neither be cancelled nor warm-started from a previous graph; UMAP of a training run's
//! latents is recomputed as they change, and the previous graph is an excellent start.
//!
//! Deterministic for a given seed, whatever the thread count: every random choice comes from a
//! generator seeded per tree, tree node or fixed-size chunk of rows (never per thread), and a
//! row's neighbour list keeps the best (distance, index) pairs it was offered, a total order,
//! so the order in which parallel chunks deliver their proposals cannot change the result.
//!
//! NN-descent works on a copy of the rows, reordered so that likely neighbours sit next to each
//! other in memory (first tree's leaves, or breadth-first through the start graph). Wide rows
//! (≥ 32 columns, with AVX2) take their local-join distances from dot products, `|a|² + |b|² −
//! 2 a·b` on centred rows, which a blocked kernel computes three times faster than differences
//! (those that rounding may have spoiled, of close rows far from the centre, are computed
//! directly), and the trees read them as bfloat16; the graph's distances are recomputed
//! directly, so they equal the exact search's. Memory: the copy (`n × dim` f32; another for
//! cosine, whose rows are normalised once), a bfloat16 copy while the trees are built, O(n·k).
//!
//! Internally Euclidean distances are squared and cosine distances are `1 − dot` of normalised
//! rows; the graph holds true distances. The data must be finite (the caller validates); a zero
//! row under cosine is at distance 1 from everything.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

pub use crate::task::Cancelled;

mod descent;
mod forest;
mod heaps;
mod space;
#[cfg(test)]
mod tests;

use descent::iterate;
use forest::{build_forest, fill_at_random, join_leaves, seed_from_graph, splitmix64};
use heaps::{Heaps, Order, into_graph, offer_to_block};
use space::Space;

/// Up to this many rows, [`KnnSearch::auto`] searches exactly (a fraction of a second on
/// 2 cores); NN-descent's approximation wins beyond.
pub const EXACT_MAX_ROWS: usize = 4096;
/// Rows per unit of parallel work (join, candidates, updates): fixed, so that the work split,
/// and with it every seeded choice, does not depend on the thread count. Also the granularity
/// of cancellation (a chunk's local join takes about a millisecond).
const ROWS_PER_CHUNK: usize = 256;
/// Chunks joined between two rounds of heap updates: bounds the memory of pending proposals and
/// lets later rows filter theirs against fresher thresholds (pynndescent: 16384 rows).
const CHUNKS_PER_WAVE: usize = 64;
/// Query rows that share one pass over the data in the exact search (they stay in cache).
const EXACT_QUERY_BLOCK: usize = 32;
/// The exact search polls for cancellation every this many rows of its pass (a few
/// milliseconds on wide rows).
const EXACT_POLL_ROWS: usize = 4096;
/// Tree leaves per unit of parallel work when the leaves seed the heaps.
const LEAVES_PER_CHUNK: usize = 64;
/// Tree nodes at least this large split their two halves in parallel.
const PARALLEL_NODE_SIZE: usize = 2048;
/// Tree nodes at least this large poll for cancellation before they are split.
const POLL_NODE_SIZE: usize = 512;
/// Below this depth a tree splits by hyperplanes; deeper (pathological data), at random.
const MAX_TREE_DEPTH: usize = 100;
/// Points this close to a splitting hyperplane go to a random side (as pynndescent).
const SPLIT_EPS: f32 = 1e-8;
/// NN-descent stops once an iteration makes at most `DELTA · n · k` updates (pynndescent).
const DELTA: f64 = 0.001;
/// Rows at least this wide use the Gram kernel in NN-descent (narrower ones are cheap anyway,
/// and their small distances would lose more to the subtraction).
const GRAM_MIN_DIM: usize = 32;
/// Gram-mode Euclidean distances whose rounding error may exceed this fraction of their value
/// are computed directly.
const GRAM_TOLERANCE: f32 = 1e-4;
/// An empty heap slot: worse than any real entry, even one at infinite distance.
const EMPTY: u32 = u32::MAX;
/// Flag bit of a reverse-graph entry: the edge is new.
const NEW_EDGE: u32 = 1 << 31;
/// Candidate lists hold at most 2k neighbours per row, per kind (new, old), and at most
/// pynndescent's 60 (unless k is larger).
const MAX_CANDIDATES: usize = 60;

// Streams of the seeded generators, one family per use.
const TREE_STREAM: u64 = 1 << 40;
const FILL_STREAM: u64 = 2 << 40;

/// Distance between rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    Euclidean,
    /// `1 − cos similarity`, as pynndescent and umap-learn.
    Cosine,
}

/// A kNN graph: row i's k neighbours (never i itself), nearest first, ties by index.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnGraph {
    k: usize,
    /// `n_rows × k`, row-major.
    indices: Vec<u32>,
    /// `n_rows × k`, row-major; +∞ in a graph made by [`KnnGraph::from_indices`].
    distances: Vec<f32>,
}

impl KnnGraph {
    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n_rows(&self) -> usize {
        self.indices.len() / self.k
    }

    pub fn neighbours(&self, row: usize) -> &[u32] {
        &self.indices[row * self.k..(row + 1) * self.k]
    }

    pub fn distances(&self, row: usize) -> &[f32] {
        &self.distances[row * self.k..(row + 1) * self.k]
    }

    /// All rows' neighbours, row-major.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// A saved graph, to warm-start [`KnnSearch::nn_descent`]: its distances are unknown (+∞)
    /// and recomputed by the search. `None` unless `indices` has `n_rows × k` entries (k ≥ 1),
    /// all below `n_rows`, none the row itself and none repeated within a row.
    pub fn from_indices(n_rows: usize, k: usize, indices: Vec<u32>) -> Option<Self> {
        if k == 0 || n_rows <= k || n_rows >= NEW_EDGE as usize || indices.len() != n_rows * k {
            return None;
        }
        let valid = indices
            .chunks_exact(k)
            .enumerate()
            .all(|(row, neighbours)| {
                neighbours.iter().enumerate().all(|(slot, &j)| {
                    (j as usize) < n_rows && j as usize != row && !neighbours[..slot].contains(&j)
                })
            });
        valid.then(|| Self {
            k,
            distances: vec![f32::INFINITY; indices.len()],
            indices,
        })
    }
}

/// What a search cost, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Random-projection trees built (0 for a warm start).
    pub trees: usize,
    /// NN-descent iterations run.
    pub iterations: usize,
    /// Distances computed.
    pub distance_evaluations: u64,
}

/// A kNN search over `n_rows × dim` row-major `data`.
///
/// # Panics
/// The search functions panic unless `data.len() == n_rows · dim`, `dim ≥ 1`, `1 ≤ k < n_rows`
/// and `n_rows < 2³¹`: the caller checks these.
pub struct KnnSearch<'a> {
    pub data: &'a [f32],
    pub n_rows: usize,
    pub dim: usize,
    pub k: usize,
    pub distance: Distance,
    pub seed: u64,
}

impl KnnSearch<'_> {
    /// Exact search (used up to a few thousand rows): deterministic, and independent of the
    /// seed. `progress(rows done, n_rows)` is called from the worker threads as blocks finish.
    pub fn exact(
        &self,
        is_cancelled: &(dyn Fn() -> bool + Sync),
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<KnnGraph, Cancelled> {
        self.check_shape();
        let guard = Guard::new(is_cancelled);
        let space = Space::new(self);
        let (n, k) = (self.n_rows, self.k);
        let mut heaps = Heaps::new(n, k);
        let done = AtomicUsize::new(0);
        heaps
            .idx
            .par_chunks_mut(EXACT_QUERY_BLOCK * k)
            .zip(heaps.dist.par_chunks_mut(EXACT_QUERY_BLOCK * k))
            .enumerate()
            .for_each(|(block, (idx, dist))| {
                if guard.stopped() {
                    return;
                }
                let first = block * EXACT_QUERY_BLOCK;
                let rows = idx.len() / k;
                let mut is_new = vec![false; k];
                let queries: Vec<u32> = (first..first + rows).map(|i| i as u32).collect();
                // One pass over the data per block: row j is loaded once for all its queries.
                for j in 0..n {
                    if j % EXACT_POLL_ROWS == EXACT_POLL_ROWS - 1 && guard.stopped() {
                        return;
                    }
                    space.for_each_dist(space.row(j), &queries, |i, d| {
                        if i as usize != j {
                            let slot = i as usize - first;
                            offer_to_block(idx, dist, &mut is_new, k, slot, j as u32, d);
                        }
                    });
                }
                progress(done.fetch_add(rows, Ordering::Relaxed) + rows, n);
            });
        guard.check()?;
        Ok(into_graph(&heaps, k, None, None, self.distance))
    }

    /// The k nearest of these rows to each of `queries` (row-major, `dim` wide, rows of
    /// another matrix: new members to place among known ones), exactly, as row-major
    /// `queries × k` indices in (distance, index) order. Parallel over blocks of queries and
    /// deterministic; polls `is_cancelled` as [`exact`](Self::exact) does.
    pub fn query(
        &self,
        queries: &[f32],
        is_cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Vec<u32>, Cancelled> {
        self.check_shape();
        assert_eq!(queries.len() % self.dim, 0, "query rows are dim wide");
        let guard = Guard::new(is_cancelled);
        let space = Space::new(self);
        let query_space = Space::new(&KnnSearch {
            data: queries,
            n_rows: queries.len() / self.dim,
            ..*self
        });
        let k = self.k.min(self.n_rows);
        let mut indices = vec![EMPTY; query_space.n_rows() * k];
        indices
            .par_chunks_mut(EXACT_QUERY_BLOCK * k)
            .enumerate()
            .for_each(|(block, idx)| {
                if guard.stopped() {
                    return;
                }
                let first = block * EXACT_QUERY_BLOCK;
                let rows: Vec<&[f32]> = (first..first + idx.len() / k)
                    .map(|q| query_space.row(q))
                    .collect();
                let mut dist = vec![f32::INFINITY; idx.len()];
                let mut is_new = vec![false; k];
                let mut offer = |q: usize, j: usize, d: f32| {
                    offer_to_block(idx, &mut dist, &mut is_new, k, q, j as u32, d);
                };
                let (fours, rest) = rows.as_chunks::<4>();
                for j in 0..self.n_rows {
                    if j % EXACT_POLL_ROWS == EXACT_POLL_ROWS - 1 && guard.stopped() {
                        return;
                    }
                    let base = space.row(j);
                    for (f, four) in fours.iter().enumerate() {
                        for (i, d) in space.dists(base, *four).into_iter().enumerate() {
                            offer(4 * f + i, j, d);
                        }
                    }
                    for (i, row) in rest.iter().enumerate() {
                        let [d] = space.dists(base, [row]);
                        offer(4 * fours.len() + i, j, d);
                    }
                }
            });
        guard.check()?;
        Ok(indices)
    }

    /// Exact search up to [`EXACT_MAX_ROWS`] rows, else NN-descent from `start`.
    pub fn auto(
        &self,
        start: Option<&KnnGraph>,
        is_cancelled: &(dyn Fn() -> bool + Sync),
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<KnnGraph, Cancelled> {
        match self.n_rows <= EXACT_MAX_ROWS {
            true => self.exact(is_cancelled, progress),
            false => self.nn_descent(start, is_cancelled, progress),
        }
    }

    /// NN-descent (Dong et al. 2011, as pynndescent): random-projection-forest initialisation,
    /// or `start` (a previous graph of the same rows, e.g. of the previous training epoch's
    /// latents) when given, then local joins until an iteration makes at most `δ · n · k`
    /// updates (δ = 0.001). Deterministic for a given seed.
    ///
    /// A `start` with another row count is ignored (cold start); one with another k gives its
    /// first k neighbours, topped up at random. `progress(done, total)` counts trees and
    /// iterations.
    pub fn nn_descent(
        &self,
        start: Option<&KnnGraph>,
        is_cancelled: &(dyn Fn() -> bool + Sync),
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<KnnGraph, Cancelled> {
        self.nn_descent_with_stats(start, is_cancelled, progress)
            .map(|(graph, _)| graph)
    }

    /// [`nn_descent`](Self::nn_descent), with what it cost.
    pub fn nn_descent_with_stats(
        &self,
        start: Option<&KnnGraph>,
        is_cancelled: &(dyn Fn() -> bool + Sync),
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(KnnGraph, SearchStats), Cancelled> {
        self.check_shape();
        let guard = Guard::new(is_cancelled);
        let (n, k) = (self.n_rows, self.k);
        let start = start.filter(|graph| graph.n_rows() == n);
        let params = Params::new(n, k, start.is_some());
        let total = params.n_iters + if start.is_some() { 0 } else { params.n_trees };
        let mut stats = SearchStats::default();
        // The rows as given: the graph's distances are computed on these.
        let exact = Space::new(self);
        let mut heaps = Heaps::new(n, params.heap_size);
        let (space, order) = match start {
            Some(graph) => {
                let order = Order::breadth_first(graph);
                let space = exact.working_copy(&order);
                stats.distance_evaluations +=
                    seed_from_graph(&mut heaps, &space, graph, &order, &guard)?;
                (space, order)
            }
            None => {
                let (space, order, trees) =
                    build_forest(&exact, &params, self.seed, &guard, progress)?;
                stats.trees = trees.len();
                for tree in &trees {
                    stats.distance_evaluations += join_leaves(&mut heaps, &space, tree, &guard)?;
                }
                (space, order)
            }
        };
        stats.distance_evaluations += fill_at_random(&mut heaps, &space, self.seed, &guard)?;

        let max_updates = DELTA * (n * k) as f64;
        let mut done = total - params.n_iters;
        for iteration in 0..params.n_iters {
            let key = splitmix64(self.seed ^ splitmix64(iteration as u64));
            let (updates, evaluations) = iterate(&mut heaps, &space, &params, key, &guard)?;
            stats.iterations += 1;
            stats.distance_evaluations += evaluations;
            done += 1;
            progress(done, total);
            if updates as f64 <= max_updates {
                break;
            }
        }
        progress(total, total);
        let graph = into_graph(&heaps, k, Some(&order), Some(&exact), self.distance);
        Ok((graph, stats))
    }

    fn check_shape(&self) {
        assert!(self.dim >= 1, "kNN search: dim is 0");
        assert_eq!(
            self.data.len(),
            self.n_rows * self.dim,
            "kNN search: data is not n_rows × dim"
        );
        assert!(
            self.k >= 1 && self.k < self.n_rows,
            "kNN search: k must be in 1..n_rows"
        );
        assert!(self.n_rows < NEW_EDGE as usize, "kNN search: too many rows");
    }
}

/// Sizes of the NN-descent: pynndescent's, tuned for k ≈ 15 on the benchmark cases
/// (`examples/bench_knn.rs`: 30K × 256, 10K × 784 and 135K × 256 with near-duplicates) for
/// recall ≥ 0.99 at the least work.
struct Params {
    /// Neighbours kept per row during the search. Two more than k reach the true k more often
    /// (recall on lat 0.990 → 0.993, for 20 % more work); a warm start keeps k, since its
    /// extra slots would start random and cost a round of updates.
    heap_size: usize,
    /// Three quarters of pynndescent's `5 + √n / 20`: each tree costs a pass over the data per
    /// level, and fewer trees cost recall on near-duplicates (whose copies fill each other's
    /// lists, so the local joins explore less).
    n_trees: usize,
    /// 3.5k, about ann-search-rs's 64 and well above pynndescent's `max(10, k)`: bigger leaves
    /// make shallower trees and a better start for little more work.
    leaf_size: usize,
    n_iters: usize,
    /// 2k (pynndescent: 60): all of a typical row's new neighbours, forward and reverse; 60
    /// gained 0.001 in recall for 20 % more work.
    max_candidates: usize,
}

impl Params {
    fn new(n: usize, k: usize, warm: bool) -> Self {
        let extra = if warm { 0 } else { 2 };
        let trees = 0.75 * (5.0 + (n as f64).sqrt() / 20.0);
        Self {
            heap_size: (k + extra).min(n - 1),
            n_trees: (trees.round() as usize).clamp(5, 48),
            leaf_size: (7 * k / 2).max(16),
            n_iters: ((n as f64).log2().round() as usize).max(5),
            max_candidates: (2 * k).clamp(k, MAX_CANDIDATES.max(k)),
        }
    }
}

/// Polls `is_cancelled` and remembers a cancellation, so that parallel workers stop at their
/// next poll.
struct Guard<'c> {
    is_cancelled: &'c (dyn Fn() -> bool + Sync),
    stop: AtomicBool,
}

impl<'c> Guard<'c> {
    fn new(is_cancelled: &'c (dyn Fn() -> bool + Sync)) -> Self {
        Self {
            is_cancelled,
            stop: AtomicBool::new(false),
        }
    }

    fn stopped(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return true;
        }
        let cancelled = (self.is_cancelled)();
        if cancelled {
            self.stop.store(true, Ordering::Relaxed);
        }
        cancelled
    }

    fn check(&self) -> Result<(), Cancelled> {
        if self.stopped() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}
