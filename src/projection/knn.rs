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

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

pub use crate::task::Cancelled;

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
                            let range = (i as usize - first) * k..(i as usize - first + 1) * k;
                            let d = finite_or_inf(d);
                            insert(
                                &mut idx[range.clone()],
                                &mut dist[range],
                                &mut is_new,
                                j as u32,
                                d,
                            );
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
                    let range = q * k..(q + 1) * k;
                    let d = finite_or_inf(d);
                    insert(
                        &mut idx[range.clone()],
                        &mut dist[range],
                        &mut is_new,
                        j as u32,
                        d,
                    );
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

// ---------------------------------------------------------------------------------------------
// Distances

/// The rows as searched (normalised for cosine) and the distance kernel.
struct Space<'a> {
    data: Cow<'a, [f32]>,
    dim: usize,
    distance: Distance,
    kernel: Kernel,
    /// Local joins take distances from dot products (`|a|² + |b|² − 2 a·b`, or `1 − a·b`): a
    /// blocked Gram kernel computes those three times faster than differences. Set for
    /// NN-descent's working copy of wide rows, whose Euclidean rows are then centred (so that
    /// the norms stay small and the subtraction loses little).
    gram: bool,
    /// Squared norms of the rows, from the Gram kernel (Euclidean Gram mode only).
    sq_norms: Vec<f32>,
    /// The rounding error of a dot product, relative to the rows' squared norms: about
    /// `4 √dim ε` (a sum of dim products rounds like a random walk).
    gram_error: f32,
}

impl<'a> Space<'a> {
    fn new(search: &KnnSearch<'a>) -> Self {
        let kernel = Kernel::detect();
        let data = match search.distance {
            Distance::Euclidean => Cow::Borrowed(search.data),
            Distance::Cosine => {
                let mut rows = search.data.to_vec();
                rows.par_chunks_mut(search.dim).for_each(|row| {
                    let [dot] = kernel.dot(row, [row]);
                    let norm = dot.sqrt();
                    if norm > 0.0 {
                        row.iter_mut().for_each(|x| *x /= norm);
                    }
                });
                Cow::Owned(rows)
            }
        };
        Self {
            data,
            dim: search.dim,
            distance: search.distance,
            kernel,
            gram: false,
            sq_norms: Vec::new(),
            gram_error: 0.0,
        }
    }

    /// NN-descent's working copy: the rows in `order`, in Gram mode (Euclidean rows centred)
    /// when they are wide enough and the CPU has the kernel.
    fn working_copy(&self, order: &Order) -> Space<'static> {
        let gram = self.dim >= GRAM_MIN_DIM && self.kernel.has_gram();
        let centre = if gram && self.distance == Distance::Euclidean {
            self.column_means()
        } else {
            vec![0.0; self.dim]
        };
        let mut data = vec![0.0f32; self.data.len()];
        data.par_chunks_mut(self.dim)
            .zip(&order.to_original)
            .for_each(|(row, &i)| {
                for ((x, &v), &m) in row.iter_mut().zip(self.row(i as usize)).zip(&centre) {
                    *x = v - m;
                }
            });
        let mut space = Space {
            data: Cow::Owned(data),
            dim: self.dim,
            distance: self.distance,
            kernel: self.kernel,
            gram,
            sq_norms: Vec::new(),
            gram_error: 4.0 * (self.dim as f32).sqrt() * f32::EPSILON,
        };
        if gram && self.distance == Distance::Euclidean {
            let mut sq_norms = Vec::with_capacity(space.n_rows());
            space
                .data
                .par_chunks(self.dim)
                .map(|row| self.kernel.gram([row], [row])[0][0])
                .collect_into_vec(&mut sq_norms);
            space.sq_norms = sq_norms;
        }
        space
    }

    /// Column means, summed in f64 per fixed chunk of rows and the chunks in order.
    fn column_means(&self) -> Vec<f32> {
        let partial: Vec<Vec<f64>> = self
            .data
            .par_chunks(ROWS_PER_CHUNK * self.dim)
            .map(|rows| {
                let mut sums = vec![0.0f64; self.dim];
                for row in rows.chunks_exact(self.dim) {
                    sums.iter_mut()
                        .zip(row)
                        .for_each(|(s, &x)| *s += f64::from(x));
                }
                sums
            })
            .collect();
        let n = self.n_rows() as f64;
        (0..self.dim)
            .map(|c| (partial.iter().map(|sums| sums[c]).sum::<f64>() / n) as f32)
            .collect()
    }

    fn n_rows(&self) -> usize {
        self.data.len() / self.dim
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The internal distances from `p` to each of `q`: squared Euclidean, or `1 − dot` of
    /// normalised rows (clamped at 0 so that duplicates are at 0 whatever the rounding).
    /// Symmetric bit for bit.
    #[inline]
    fn dists<const N: usize>(&self, p: &[f32], q: [&[f32]; N]) -> [f32; N] {
        match self.distance {
            Distance::Euclidean => self.kernel.sq_euclidean(p, q),
            Distance::Cosine => self.kernel.dot(p, q).map(|dot| (1.0 - dot).max(0.0)),
        }
    }

    /// The internal distance of two rows from their dot product and squared norms (Gram mode),
    /// unless rounding may have cost a Euclidean distance more than 10⁻⁴ of its value: then
    /// the caller computes it directly. That happens where rows are much closer to each other
    /// than to the centre (far-apart clusters, duplicates). Cosine distances are `1 − a·b`
    /// however they are computed.
    #[inline]
    fn dist_from_dot(&self, sq_a: f32, sq_b: f32, dot: f32) -> Option<f32> {
        match self.distance {
            Distance::Euclidean => {
                let d = sq_a + sq_b - 2.0 * dot;
                (self.gram_error * (sq_a + sq_b) <= GRAM_TOLERANCE * d).then_some(d)
            }
            Distance::Cosine => Some((1.0 - dot).max(0.0)),
        }
    }

    /// The internal distance of rows `a` and `b`.
    fn dist(&self, a: usize, b: usize) -> f32 {
        self.dists(self.row(a), [self.row(b)])[0]
    }

    /// Calls `f(j, distance)` for each row `j` of `targets`, four at a time.
    #[inline]
    fn for_each_dist(&self, p: &[f32], targets: &[u32], mut f: impl FnMut(u32, f32)) {
        let (fours, rest) = targets.as_chunks::<4>();
        for &four in fours {
            let d = self.dists(p, four.map(|j| self.row(j as usize)));
            for (j, d) in four.into_iter().zip(d) {
                f(j, d);
            }
        }
        for &j in rest {
            let [d] = self.dists(p, [self.row(j as usize)]);
            f(j, d);
        }
    }
}

/// The internal distance as returned to the caller.
fn true_distance(distance: Distance, d: f32) -> f32 {
    match distance {
        Distance::Euclidean => d.max(0.0).sqrt(),
        Distance::Cosine => d,
    }
}

/// NaN (only from non-finite data) as +∞, so that every row still fills up.
fn finite_or_inf(d: f32) -> f32 {
    if d.is_nan() { f32::INFINITY } else { d }
}

/// The distance kernels: AVX2 + FMA intrinsics where the CPU has them (the default x86-64
/// target only assumes SSE2, and LLVM vectorises the portable loops poorly: the intrinsics are
/// 2.5× faster at 256 dimensions), portable otherwise. Differences and dot products compare one
/// row with up to four others at once, loading the first once for all; the Gram kernel
/// computes a block of dot products.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Self::Avx2Fma;
        }
        Self::Portable
    }

    /// Σ (p − q)² for each q.
    #[inline]
    fn sq_euclidean<const N: usize>(self, p: &[f32], q: [&[f32]; N]) -> [f32; N] {
        match self {
            Self::Portable => q.map(|q| accumulate::<true>(p, q)),
            // SAFETY: `detect` chose this kernel only where the CPU has AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Fma => unsafe { accumulate_avx2_fma::<N, true>(p, q) },
        }
    }

    /// Σ p·q for each q.
    #[inline]
    fn dot<const N: usize>(self, p: &[f32], q: [&[f32]; N]) -> [f32; N] {
        match self {
            Self::Portable => q.map(|q| accumulate::<false>(p, q)),
            // SAFETY: `detect` chose this kernel only where the CPU has AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Fma => unsafe { accumulate_avx2_fma::<N, false>(p, q) },
        }
    }

    /// Σ p·q for each bfloat16 row q.
    #[inline]
    fn dot_bf16<const N: usize>(self, p: &[f32], q: [&[u16]; N]) -> [f32; N] {
        match self {
            Self::Portable => q.map(|q| {
                let mut acc = [0.0f32; 8];
                let (p_body, q_body) = (p.chunks_exact(8), q.chunks_exact(8));
                let tail: f32 = (p_body.remainder().iter())
                    .zip(q_body.remainder())
                    .map(|(&x, &b)| x * from_bf16(b))
                    .sum();
                for (x, y) in p_body.zip(q_body) {
                    for ((acc, &x), &b) in acc.iter_mut().zip(x).zip(y) {
                        *acc += x * from_bf16(b);
                    }
                }
                sum8(acc) + tail
            }),
            // SAFETY: `detect` chose this kernel only where the CPU has AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Fma => unsafe { dot_bf16_avx2_fma(p, q) },
        }
    }

    /// Whether [`gram`](Self::gram) is the fast kernel.
    fn has_gram(self) -> bool {
        !matches!(self, Self::Portable)
    }

    /// Dot products of each of `left` with each of `right`; a pair's result does not depend on
    /// R, C nor on its place in the block, and is symmetric.
    #[inline]
    fn gram<const R: usize, const C: usize>(
        self,
        left: [&[f32]; R],
        right: [&[f32]; C],
    ) -> [[f32; C]; R] {
        match self {
            Self::Portable => left.map(|l| right.map(|r| accumulate::<false>(l, r))),
            // SAFETY: `detect` chose this kernel only where the CPU has AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Fma => unsafe { gram_avx2_fma(left, right) },
        }
    }
}

/// [`Kernel::gram`] with AVX2 + FMA: an R×C block of accumulators (12 with R = 3, C = 4) over
/// blocks of 8, so each loaded vector serves several products (about 7 ns a pair at 256
/// dimensions against 20 for a difference), then a scalar tail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gram_avx2_fma<const R: usize, const C: usize>(
    left: [&[f32]; R],
    right: [&[f32]; C],
) -> [[f32; C]; R] {
    use std::arch::x86_64::{
        __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    // SAFETY: reads the 8 floats of an array.
    let load = |x: &[f32; 8]| unsafe { _mm256_loadu_ps(x.as_ptr()) };
    let left = left.map(|row| row.as_chunks::<8>());
    let right = right.map(|row| row.as_chunks::<8>());
    let blocks = left[0].0.len();
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    for b in 0..blocks {
        let l: [__m256; R] = std::array::from_fn(|r| load(&left[r].0[b]));
        for (c, (chunks, _)) in right.iter().enumerate() {
            let x = load(&chunks[b]);
            for (acc, &l) in acc.iter_mut().zip(&l) {
                acc[c] = _mm256_fmadd_ps(l, x, acc[c]);
            }
        }
    }
    let mut out = [[0.0f32; C]; R];
    for ((out, acc), (_, left_tail)) in out.iter_mut().zip(&acc).zip(&left) {
        for ((out, acc), (_, right_tail)) in out.iter_mut().zip(acc).zip(&right) {
            let mut lanes = [0.0f32; 8];
            // SAFETY: stores 8 floats into an array of 8.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *acc) };
            let mut tail = 0.0f32;
            for (&x, &y) in left_tail.iter().zip(*right_tail) {
                tail = x.mul_add(y, tail);
            }
            *out = sum8(lanes) + tail;
        }
    }
    out
}

/// [`Kernel::dot_bf16`] with AVX2 + FMA: each bfloat16 widened to f32 by a shift.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_bf16_avx2_fma<const N: usize>(p: &[f32], q: [&[u16]; N]) -> [f32; N] {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm256_castsi256_ps, _mm256_cvtepu16_epi32, _mm256_fmadd_ps,
        _mm256_loadu_ps, _mm256_setzero_ps, _mm256_slli_epi32, _mm256_storeu_ps,
    };
    let (p_chunks, p_tail) = p.as_chunks::<8>();
    let q = q.map(|q| q.as_chunks::<8>());
    let mut acc = [_mm256_setzero_ps(); N];
    for (c, chunk) in p_chunks.iter().enumerate() {
        // SAFETY: reads the 8 floats of an array.
        let x = unsafe { _mm256_loadu_ps(chunk.as_ptr()) };
        for (acc, (rows, _)) in acc.iter_mut().zip(&q) {
            // SAFETY: reads the 16 bytes of an array of 8 u16.
            let half = unsafe { _mm_loadu_si128(rows[c].as_ptr().cast::<__m128i>()) };
            let y = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(half)));
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
    }
    let mut out = [0.0f32; N];
    for ((out, acc), (_, tail)) in out.iter_mut().zip(&acc).zip(&q) {
        let mut lanes = [0.0f32; 8];
        // SAFETY: stores 8 floats into an array of 8.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *acc) };
        let tail: f32 = p_tail
            .iter()
            .zip(*tail)
            .map(|(&x, &b)| x * from_bf16(b))
            .sum();
        *out = sum8(lanes) + tail;
    }
    out
}

/// Σ (a − b)² (`SQUARE`) or Σ a·b over equal-length rows: 8 independent accumulators, then a
/// scalar tail, summed in a fixed order (so symmetric and reproducible).
fn accumulate<const SQUARE: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a_body, b_body) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_tail, b_tail) = (a_body.remainder(), b_body.remainder());
    for (x, y) in a_body.zip(b_body) {
        for ((acc, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *acc += if SQUARE { (x - y) * (x - y) } else { x * y };
        }
    }
    let mut tail = 0.0f32;
    for (&x, &y) in a_tail.iter().zip(b_tail) {
        tail += if SQUARE { (x - y) * (x - y) } else { x * y };
    }
    sum8(acc) + tail
}

/// [`accumulate`] of `p` with each of `q` (N ≤ 4) with AVX2 + FMA: two 8-lane accumulators per
/// row over blocks of 16 (2N independent chains hide the FMA latency; `p` is loaded once per
/// block for all rows), then 8, then a scalar tail. A pair's result does not depend on N nor on
/// the row's place in `q`, and is symmetric.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn accumulate_avx2_fma<const N: usize, const SQUARE: bool>(p: &[f32], q: [&[f32]; N]) -> [f32; N] {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        _mm256_storeu_ps, _mm256_sub_ps,
    };
    // SAFETY: reads the 8 floats of an array.
    let load = |x: &[f32; 8]| unsafe { _mm256_loadu_ps(x.as_ptr()) };
    let step = |acc: __m256, x: __m256, y: __m256| -> __m256 {
        if SQUARE {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        } else {
            _mm256_fmadd_ps(x, y, acc)
        }
    };
    let (p_wide, p_rest) = p.as_chunks::<16>();
    let (p_narrow, p_tail) = p_rest.as_chunks::<8>();
    let q_wide = q.map(|q| q.as_chunks::<16>());
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    for (c, block) in p_wide.iter().enumerate() {
        let (halves, _) = block.as_chunks::<8>();
        let (p0, p1) = (load(&halves[0]), load(&halves[1]));
        for (acc, (rows, _)) in acc.iter_mut().zip(&q_wide) {
            let (halves, _) = rows[c].as_chunks::<8>();
            acc[0] = step(acc[0], p0, load(&halves[0]));
            acc[1] = step(acc[1], p1, load(&halves[1]));
        }
    }
    let mut out = [0.0f32; N];
    for ((out, acc), (_, rest)) in out.iter_mut().zip(&mut acc).zip(&q_wide) {
        let (narrow, tail) = rest.as_chunks::<8>();
        for (x, y) in p_narrow.iter().zip(narrow) {
            acc[0] = step(acc[0], load(x), load(y));
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: stores 8 floats into an array of 8.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc[0], acc[1])) };
        let mut scalar = 0.0f32;
        for (&x, &y) in p_tail.iter().zip(tail) {
            scalar = if SQUARE {
                (x - y).mul_add(x - y, scalar)
            } else {
                x.mul_add(y, scalar)
            };
        }
        *out = sum8(lanes) + scalar;
    }
    out
}

#[inline(always)]
fn sum8([a0, a1, a2, a3, a4, a5, a6, a7]: [f32; 8]) -> f32 {
    ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))
}

// ---------------------------------------------------------------------------------------------
// Neighbour heaps

/// `(d, j)` comes before `(d2, j2)` in the (distance, index) order.
#[inline]
fn precedes(d: f32, j: u32, d2: f32, j2: u32) -> bool {
    d < d2 || (d == d2 && j < j2)
}

/// Offers `j` at distance `d` to a row's neighbours, kept sorted by (distance, index): true if
/// it is among the k best and was not there yet (it is then flagged new).
#[inline]
fn insert(idx: &mut [u32], dist: &mut [f32], is_new: &mut [bool], j: u32, d: f32) -> bool {
    let last = idx.len() - 1;
    if !precedes(d, j, dist[last], idx[last]) || idx.contains(&j) {
        return false;
    }
    let mut slot = last;
    while slot > 0 && precedes(d, j, dist[slot - 1], idx[slot - 1]) {
        idx[slot] = idx[slot - 1];
        dist[slot] = dist[slot - 1];
        is_new[slot] = is_new[slot - 1];
        slot -= 1;
    }
    idx[slot] = j;
    dist[slot] = d;
    is_new[slot] = true;
    true
}

/// Every row's current k best neighbours, sorted, in flat arrays; empty slots are
/// `(+∞, EMPTY)`. `is_new`: not yet used in a local join.
struct Heaps {
    k: usize,
    idx: Vec<u32>,
    dist: Vec<f32>,
    is_new: Vec<bool>,
}

impl Heaps {
    fn new(n: usize, k: usize) -> Self {
        Self {
            k,
            idx: vec![EMPTY; n * k],
            dist: vec![f32::INFINITY; n * k],
            is_new: vec![false; n * k],
        }
    }

    fn n_rows(&self) -> usize {
        self.idx.len() / self.k
    }

    fn n_chunks(&self) -> usize {
        self.n_rows().div_ceil(ROWS_PER_CHUNK)
    }

    /// The rows in chunks of `ROWS_PER_CHUNK`, in parallel.
    fn chunks_mut(&mut self) -> impl IndexedParallelIterator<Item = HeapChunk<'_>> {
        let k = self.k;
        let len = ROWS_PER_CHUNK * k;
        self.idx
            .par_chunks_mut(len)
            .zip(self.dist.par_chunks_mut(len))
            .zip(self.is_new.par_chunks_mut(len))
            .enumerate()
            .map(move |(chunk, ((idx, dist), is_new))| HeapChunk {
                index: chunk,
                first_row: chunk * ROWS_PER_CHUNK,
                k,
                idx,
                dist,
                is_new,
            })
    }

    /// Each row's worst entry, the bar a proposal must pass.
    fn thresholds(&self) -> Vec<(f32, u32)> {
        let k = self.k;
        let mut bars = Vec::with_capacity(self.n_rows());
        self.dist
            .par_chunks(k)
            .zip(self.idx.par_chunks(k))
            .map(|(dist, idx)| (dist[k - 1], idx[k - 1]))
            .collect_into_vec(&mut bars);
        bars
    }
}

/// A chunk of rows of the heaps, owned by one worker.
struct HeapChunk<'a> {
    index: usize,
    first_row: usize,
    k: usize,
    idx: &'a mut [u32],
    dist: &'a mut [f32],
    is_new: &'a mut [bool],
}

impl HeapChunk<'_> {
    fn rows(&self) -> std::ops::Range<usize> {
        self.first_row..self.first_row + self.idx.len() / self.k
    }

    fn is_full(&self, row: usize) -> bool {
        self.idx[(row - self.first_row + 1) * self.k - 1] != EMPTY
    }

    /// [`insert`] into `row` (a row of this chunk).
    fn insert(&mut self, row: usize, j: u32, d: f32) -> bool {
        let range = (row - self.first_row) * self.k..(row - self.first_row + 1) * self.k;
        insert(
            &mut self.idx[range.clone()],
            &mut self.dist[range.clone()],
            &mut self.is_new[range],
            j,
            d,
        )
    }
}

/// The heaps' k best neighbours as the graph, in the original row order (`order`: the rows'
/// internal order, if not the original): true distances, ties by index. With `exact` (the
/// rows as the caller gave them) the distances are recomputed directly, and the k best chosen
/// again, where the search worked on approximations (Gram mode) or other rows (centred).
fn into_graph(
    heaps: &Heaps,
    k: usize,
    order: Option<&Order>,
    exact: Option<&Space>,
    distance: Distance,
) -> KnnGraph {
    debug_assert!(!heaps.idx.contains(&EMPTY));
    let n = heaps.n_rows();
    let mut indices = vec![0u32; n * k];
    let mut distances = vec![0.0f32; n * k];
    indices
        .par_chunks_mut(ROWS_PER_CHUNK * k)
        .zip(distances.par_chunks_mut(ROWS_PER_CHUNK * k))
        .enumerate()
        .for_each(|(chunk, (indices, distances))| {
            let mut row_idx = vec![0u32; heaps.k];
            let mut row_dist = vec![0.0f32; heaps.k];
            let rows = indices
                .chunks_exact_mut(k)
                .zip(distances.chunks_exact_mut(k));
            for (r, (idx, dist)) in rows.enumerate() {
                let row = chunk * ROWS_PER_CHUNK + r;
                let from = order.map_or(row, |o| o.to_internal[row] as usize) * heaps.k;
                for (slot, i) in row_idx.iter_mut().enumerate() {
                    let j = heaps.idx[from + slot];
                    *i = order.map_or(j, |o| o.to_original[j as usize]);
                }
                row_dist.copy_from_slice(&heaps.dist[from..from + heaps.k]);
                if let Some(space) = exact {
                    let mut slot = 0;
                    space.for_each_dist(space.row(row), &row_idx, |_, d| {
                        row_dist[slot] = finite_or_inf(d);
                        slot += 1;
                    });
                }
                row_dist
                    .iter_mut()
                    .for_each(|d| *d = true_distance(distance, *d));
                // Sorted by (distance, index): recomputed and square-rooted distances can
                // reorder or merge.
                for slot in 1..heaps.k {
                    let mut s = slot;
                    while s > 0
                        && precedes(row_dist[s], row_idx[s], row_dist[s - 1], row_idx[s - 1])
                    {
                        row_dist.swap(s, s - 1);
                        row_idx.swap(s, s - 1);
                        s -= 1;
                    }
                }
                idx.copy_from_slice(&row_idx[..k]);
                dist.copy_from_slice(&row_dist[..k]);
            }
        });
    KnnGraph {
        k,
        indices,
        distances,
    }
}

/// A relabelling of the rows that puts likely neighbours next to each other in memory, so
/// that the local joins mostly hit the cache (internal row r is original row
/// `to_original[r]`).
struct Order {
    to_original: Vec<u32>,
    to_internal: Vec<u32>,
}

impl Order {
    fn new(to_original: Vec<u32>) -> Self {
        let mut to_internal = vec![0u32; to_original.len()];
        for (r, &i) in to_original.iter().enumerate() {
            to_internal[i as usize] = r as u32;
        }
        Self {
            to_original,
            to_internal,
        }
    }

    /// Breadth-first through a kNN graph (its rows' neighbours tend to be each other's).
    fn breadth_first(graph: &KnnGraph) -> Self {
        let n = graph.n_rows();
        let mut seen = vec![false; n];
        let mut to_original = Vec::with_capacity(n);
        for root in 0..n {
            if seen[root] {
                continue;
            }
            seen[root] = true;
            let mut head = to_original.len();
            to_original.push(root as u32);
            while let Some(&row) = to_original.get(head) {
                head += 1;
                for &j in graph.neighbours(row as usize) {
                    if !std::mem::replace(&mut seen[j as usize], true) {
                        to_original.push(j);
                    }
                }
            }
        }
        Self::new(to_original)
    }
}

// ---------------------------------------------------------------------------------------------
// Initialisation: random-projection forest, previous graph, random fill

/// One random-projection tree: `order` is a permutation of the rows, each leaf a range of it.
struct Tree {
    order: Vec<u32>,
    leaves: Vec<(usize, usize)>,
}

/// The forest, and the working copy of the rows in the order of tree 0's leaves (the other
/// trees are built on it, where their splits read nearby memory; their orders are internal
/// rows).
fn build_forest(
    space: &Space,
    params: &Params,
    seed: u64,
    guard: &Guard,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Space<'static>, Order, Vec<Tree>), Cancelled> {
    let total = params.n_trees + params.n_iters;
    let builder = TreeBuilder {
        leaf_size: params.leaf_size,
        guard,
    };
    let rows = TreeRows::new(space);
    let first = builder.build(&rows, seed, 0).ok_or(Cancelled)?;
    progress(1, total);
    let order = Order::new(first.order);
    let working = space.working_copy(&order);
    let rows = rows.reordered(&order, &working);
    let built = AtomicUsize::new(1);
    let mut trees = vec![Tree {
        order: (0..working.n_rows() as u32).collect(),
        leaves: first.leaves,
    }];
    let others: Vec<Option<Tree>> = (1..params.n_trees)
        .into_par_iter()
        .map(|t| {
            let tree = builder.build(&rows, seed, t)?;
            progress(built.fetch_add(1, Ordering::Relaxed) + 1, total);
            Some(tree)
        })
        .collect();
    for tree in others {
        trees.push(tree.ok_or(Cancelled)?);
    }
    drop(rows);
    Ok((working, order, trees))
}

/// The rows as the trees read them. Wide rows (as wide as for the Gram kernel) are kept
/// centred as bfloat16, the upper half of each f32: every level of a tree streams through all
/// the rows, so half the bytes is about half the forest's time, and a split only needs the
/// side of a hyperplane each row falls on (those within 0.4 % of it may go either way).
/// Narrow rows stay f32: their trees are cheap, and their close neighbours would blur.
enum TreeRows<'a> {
    Full(&'a Space<'a>),
    Half {
        bits: Vec<u16>,
        dim: usize,
        kernel: Kernel,
    },
}

impl<'a> TreeRows<'a> {
    fn new(space: &'a Space) -> Self {
        if space.dim < GRAM_MIN_DIM {
            return Self::Full(space);
        }
        // Centred (splits are translation-invariant), so that the 8-bit mantissa resolves the
        // rows' differences rather than a common offset.
        let means = space.column_means();
        let mut bits = vec![0u16; space.data.len()];
        bits.par_chunks_mut(space.dim)
            .zip(space.data.par_chunks(space.dim))
            .for_each(|(bits, row)| {
                for ((b, &x), &m) in bits.iter_mut().zip(row).zip(&means) {
                    *b = bf16(x - m);
                }
            });
        Self::Half {
            bits,
            dim: space.dim,
            kernel: space.kernel,
        }
    }

    /// The same rows in `order` (`working`: the f32 rows in that order).
    fn reordered<'w>(&self, order: &Order, working: &'w Space) -> TreeRows<'w> {
        match self {
            Self::Full(_) => TreeRows::Full(working),
            Self::Half { bits, dim, kernel } => {
                let mut reordered = vec![0u16; bits.len()];
                reordered
                    .par_chunks_mut(*dim)
                    .zip(&order.to_original)
                    .for_each(|(row, &i)| {
                        row.copy_from_slice(&bits[i as usize * dim..(i as usize + 1) * dim]);
                    });
                TreeRows::Half {
                    bits: reordered,
                    dim: *dim,
                    kernel: *kernel,
                }
            }
        }
    }

    fn n_rows(&self) -> usize {
        match self {
            Self::Full(space) => space.n_rows(),
            Self::Half { bits, dim, .. } => bits.len() / dim,
        }
    }

    /// Row `i` as f32, into `out`.
    fn row_into(&self, i: u32, out: &mut Vec<f32>) {
        out.clear();
        match self {
            Self::Full(space) => out.extend_from_slice(space.row(i as usize)),
            Self::Half { bits, dim, .. } => {
                let row = &bits[i as usize * dim..(i as usize + 1) * dim];
                out.extend(row.iter().map(|&b| from_bf16(b)));
            }
        }
    }

    /// `normal · row` for each of `rows`.
    #[inline]
    fn dots<const N: usize>(&self, normal: &[f32], rows: [u32; N]) -> [f32; N] {
        match self {
            Self::Full(space) => space
                .kernel
                .dot(normal, rows.map(|i| space.row(i as usize))),
            Self::Half { bits, dim, kernel } => {
                let rows = rows.map(|i| &bits[i as usize * dim..(i as usize + 1) * dim]);
                kernel.dot_bf16(normal, rows)
            }
        }
    }
}

/// `x` as bfloat16, rounded to nearest (ties to even).
fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

fn from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// Random-projection trees: split rows recursively by the hyperplane halfway between two
/// random rows of the node until at most `leaf_size` remain (large nodes split their halves
/// in parallel, each node with its own seeded generator).
struct TreeBuilder<'g, 'c> {
    leaf_size: usize,
    guard: &'g Guard<'c>,
}

/// Per-worker buffers of a tree split.
#[derive(Default)]
struct SplitScratch {
    a: Vec<f32>,
    b: Vec<f32>,
    normal: Vec<f32>,
    sides: Vec<(u32, bool)>,
}

/// A node of a tree being built: rows `offset..offset + rows.len()` of the tree's order.
struct Node<'r> {
    rows: &'r mut [u32],
    offset: usize,
    /// Seeds the node's own generator, so that nodes can be split in any order.
    seed: u64,
    depth: usize,
}

impl TreeBuilder<'_, '_> {
    /// Tree number `tree`; `None` when cancelled.
    fn build(&self, rows: &TreeRows, seed: u64, tree: usize) -> Option<Tree> {
        let mut order: Vec<u32> = (0..rows.n_rows() as u32).collect();
        let mut leaves = Vec::new();
        let root = Node {
            rows: &mut order,
            offset: 0,
            seed: splitmix64(seed ^ splitmix64(TREE_STREAM + tree as u64)),
            depth: 0,
        };
        self.split(rows, root, &mut leaves, &mut SplitScratch::default())?;
        Some(Tree { order, leaves })
    }

    /// Splits `node` recursively, appending its leaves left to right.
    fn split(
        &self,
        rows: &TreeRows,
        node: Node,
        leaves: &mut Vec<(usize, usize)>,
        scratch: &mut SplitScratch,
    ) -> Option<()> {
        let len = node.rows.len();
        if len <= self.leaf_size {
            leaves.push((node.offset, node.offset + len));
            return Some(());
        }
        if len >= POLL_NODE_SIZE && self.guard.stopped() {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(node.seed);
        let left = if node.depth < MAX_TREE_DEPTH {
            hyperplane_split(rows, node.rows, &mut rng, scratch)
        } else {
            None
        };
        let left = left.unwrap_or_else(|| random_split(node.rows, &mut rng));
        let (left_rows, right_rows) = node.rows.split_at_mut(left);
        let left_node = Node {
            rows: left_rows,
            offset: node.offset,
            seed: rng.random(),
            depth: node.depth + 1,
        };
        let right_node = Node {
            rows: right_rows,
            offset: node.offset + left,
            seed: rng.random(),
            depth: node.depth + 1,
        };
        if len >= PARALLEL_NODE_SIZE {
            let (left_done, right_leaves) = rayon::join(
                || self.split(rows, left_node, leaves, scratch),
                || {
                    let mut right_leaves = Vec::new();
                    let mut scratch = SplitScratch::default();
                    self.split(rows, right_node, &mut right_leaves, &mut scratch)
                        .map(|()| right_leaves)
                },
            );
            left_done?;
            leaves.extend(right_leaves?);
        } else {
            self.split(rows, left_node, leaves, scratch)?;
            self.split(rows, right_node, leaves, scratch)?;
        }
        Some(())
    }
}

/// Partitions `node` by the hyperplane between two random members; the size of the first part,
/// or `None` when one side is empty (duplicates).
fn hyperplane_split(
    rows: &TreeRows,
    node: &mut [u32],
    rng: &mut ChaCha8Rng,
    scratch: &mut SplitScratch,
) -> Option<usize> {
    let len = node.len();
    let a = rng.random_range(0..len);
    let mut b = rng.random_range(0..len - 1);
    if b >= a {
        b += 1;
    }
    let SplitScratch {
        a: xa,
        b: xb,
        normal,
        sides,
    } = scratch;
    rows.row_into(node[a], xa);
    rows.row_into(node[b], xb);
    normal.clear();
    let mut offset = 0.0f32;
    for (&p, &q) in xa.iter().zip(xb.iter()) {
        normal.push(p - q);
        offset -= (p - q) * (p + q) * 0.5;
    }
    sides.clear();
    let mut sort = |i: u32, dot: f32| {
        let margin = dot + offset;
        let left = if margin.abs() <= SPLIT_EPS {
            rng.random::<bool>()
        } else {
            margin > 0.0
        };
        sides.push((i, left));
    };
    let (fours, rest) = node.as_chunks::<4>();
    for &four in fours {
        let dots = rows.dots(normal, four);
        four.into_iter().zip(dots).for_each(|(i, dot)| sort(i, dot));
    }
    for &i in rest {
        let [dot] = rows.dots(normal, [i]);
        sort(i, dot);
    }
    let n_left = sides.iter().filter(|(_, left)| *left).count();
    if n_left == 0 || n_left == len {
        return None;
    }
    let lefts = sides.iter().filter(|(_, left)| *left);
    let rights = sides.iter().filter(|(_, left)| !*left);
    for (slot, &(i, _)) in node.iter_mut().zip(lefts.chain(rights)) {
        *slot = i;
    }
    Some(n_left)
}

/// Shuffles the first half of `node` in at random: always splits.
fn random_split(node: &mut [u32], rng: &mut ChaCha8Rng) -> usize {
    let half = node.len() / 2;
    for i in 0..half {
        let j = rng.random_range(i..node.len());
        node.swap(i, j);
    }
    half
}

/// Offers every pair of rows that share a leaf of `tree` to the heaps (the leaves joined in
/// parallel chunks, the proposals then applied in chunk order).
fn join_leaves(
    heaps: &mut Heaps,
    space: &Space,
    tree: &Tree,
    guard: &Guard,
) -> Result<u64, Cancelled> {
    let n_blocks = heaps.n_chunks();
    let bars = heaps.thresholds();
    let batches: Vec<(Proposals, u64)> = tree
        .leaves
        .par_chunks(LEAVES_PER_CHUNK)
        .map(|leaves| {
            let (mut out, mut scratch) = (Vec::new(), JoinScratch::default());
            let mut evaluations = 0;
            if !guard.stopped() {
                for &(lo, hi) in leaves {
                    let leaf = &tree.order[lo..hi];
                    evaluations += join(space, &bars, leaf, &[], &mut out, &mut scratch);
                }
            }
            (Proposals::bucket(out, n_blocks), evaluations)
        })
        .collect();
    guard.check()?;
    apply(heaps, &batches);
    Ok(batches.iter().map(|(_, e)| e).sum())
}

/// Heaps from a previous graph's neighbours, at their distances in the current data.
fn seed_from_graph(
    heaps: &mut Heaps,
    space: &Space,
    graph: &KnnGraph,
    order: &Order,
    guard: &Guard,
) -> Result<u64, Cancelled> {
    let evaluations: u64 = heaps
        .chunks_mut()
        .map(|mut chunk| {
            if guard.stopped() {
                return 0;
            }
            let mut evaluations = 0;
            for row in chunk.rows() {
                let original = order.to_original[row] as usize;
                for &j in graph.neighbours(original).iter().take(chunk.k) {
                    let j = order.to_internal[j as usize];
                    chunk.insert(row, j, finite_or_inf(space.dist(row, j as usize)));
                    evaluations += 1;
                }
            }
            evaluations
        })
        .sum();
    guard.check()?;
    Ok(evaluations)
}

/// Fills rows that still have empty slots with random rows (seeded per chunk).
fn fill_at_random(
    heaps: &mut Heaps,
    space: &Space,
    seed: u64,
    guard: &Guard,
) -> Result<u64, Cancelled> {
    let n = heaps.n_rows();
    let k = heaps.k;
    let evaluations: u64 = heaps
        .chunks_mut()
        .map(|mut chunk| {
            if guard.stopped() {
                return 0;
            }
            let mut rng = seeded_rng(seed, FILL_STREAM + chunk.index as u64);
            let mut evaluations = 0;
            for row in chunk.rows() {
                if chunk.is_full(row) {
                    continue;
                }
                let mut offer = |chunk: &mut HeapChunk, j: usize| {
                    if j != row {
                        chunk.insert(row, j as u32, finite_or_inf(space.dist(row, j)));
                        evaluations += 1;
                    }
                };
                for _ in 0..8 * k {
                    if chunk.is_full(row) {
                        break;
                    }
                    offer(&mut chunk, rng.random_range(0..n));
                }
                // Few rows (n close to k): sweep, so that the row surely fills.
                let start = rng.random_range(0..n);
                for step in 0..n {
                    if chunk.is_full(row) {
                        break;
                    }
                    offer(&mut chunk, (start + step) % n);
                }
            }
            evaluations
        })
        .sum();
    guard.check()?;
    Ok(evaluations)
}

fn seeded_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------------
// Local joins

/// A proposed neighbour `other` for `row`.
#[derive(Debug, Clone, Copy, Default)]
struct Proposal {
    row: u32,
    other: u32,
    dist: f32,
}

/// One chunk's proposals, grouped by the heap chunk of their row (counting sort).
struct Proposals {
    entries: Vec<Proposal>,
    block_starts: Vec<usize>,
}

impl Proposals {
    fn bucket(entries: Vec<Proposal>, n_blocks: usize) -> Self {
        let mut block_starts = vec![0; n_blocks + 1];
        for p in &entries {
            block_starts[p.row as usize / ROWS_PER_CHUNK + 1] += 1;
        }
        for b in 0..n_blocks {
            block_starts[b + 1] += block_starts[b];
        }
        let mut cursor = block_starts.clone();
        let mut sorted = vec![Proposal::default(); entries.len()];
        for p in entries {
            let slot = &mut cursor[p.row as usize / ROWS_PER_CHUNK];
            sorted[*slot] = p;
            *slot += 1;
        }
        Self {
            entries: sorted,
            block_starts,
        }
    }

    fn block(&self, b: usize) -> &[Proposal] {
        &self.entries[self.block_starts[b]..self.block_starts[b + 1]]
    }
}

/// Applies proposals to the heaps, each heap chunk in parallel and in the batches' order; the
/// number of updates.
fn apply(heaps: &mut Heaps, batches: &[(Proposals, u64)]) -> usize {
    heaps
        .chunks_mut()
        .map(|mut chunk| {
            let mut updates = 0;
            for (proposals, _) in batches {
                for p in proposals.block(chunk.index) {
                    updates += usize::from(chunk.insert(p.row as usize, p.other, p.dist));
                }
            }
            updates
        })
        .sum()
}

/// Per-worker buffers of the local joins.
#[derive(Default)]
struct JoinScratch {
    /// The candidates, new then old.
    tile: Vec<u32>,
    /// Theirs: bar (worst distance, index) and squared norm, gathered once per row.
    local: Vec<(f32, u32, f32)>,
}

/// The local join of one row's candidates: every pair of new ones and every new–old pair; a
/// pair is proposed to each side whose current worst neighbour it beats (pairs already known
/// are proposed too: checking the heaps first costs more than it saves). Returns the
/// distances computed.
fn join(
    space: &Space,
    bars: &[(f32, u32)],
    new: &[u32],
    old: &[u32],
    out: &mut Vec<Proposal>,
    scratch: &mut JoinScratch,
) -> u64 {
    let JoinScratch { tile, local } = scratch;
    tile.clear();
    tile.extend_from_slice(new);
    tile.extend_from_slice(old);
    local.clear();
    local.extend(tile.iter().map(|&i| {
        let (bar_d, bar_j) = bars[i as usize];
        (
            bar_d,
            bar_j,
            space.sq_norms.get(i as usize).copied().unwrap_or(0.0),
        )
    }));
    let (n_new, n_all) = (new.len(), tile.len());
    let mut propose = |a: usize, b: usize, d: f32| {
        for (row, other) in [(a, b), (b, a)] {
            let (bar_d, bar_j, _) = local[row];
            if precedes(d, tile[other], bar_d, bar_j) {
                out.push(Proposal {
                    row: tile[row],
                    other: tile[other],
                    dist: d,
                });
            }
        }
    };
    let mut evaluations = 0;
    if space.gram {
        // Blocks of 3 new rows × 4 of the rest; edge blocks repeat their last row.
        let row = |i: usize| space.row(tile[i] as usize);
        for a0 in (0..n_new).step_by(3) {
            let left = std::array::from_fn::<_, 3, _>(|r| row((a0 + r).min(n_new - 1)));
            for b0 in (a0 + 1..n_all).step_by(4) {
                let right = std::array::from_fn::<_, 4, _>(|c| row((b0 + c).min(n_all - 1)));
                let dots = space.kernel.gram(left, right);
                for (a, dots) in (a0..n_new.min(a0 + 3)).zip(dots) {
                    for (b, dot) in (b0..n_all.min(b0 + 4)).zip(dots) {
                        if b > a && tile[a] != tile[b] {
                            evaluations += 1;
                            let (p, q) = (tile[a] as usize, tile[b] as usize);
                            let d = space.dist_from_dot(local[a].2, local[b].2, dot);
                            let d = d.unwrap_or_else(|| space.dist(p, q));
                            propose(a, b, d);
                        }
                    }
                }
            }
        }
    } else {
        let mut targets = Vec::with_capacity(n_all);
        for a in 0..n_new {
            targets.clear();
            targets.extend(
                (a + 1..n_all)
                    .filter(|&b| tile[b] != tile[a])
                    .map(|b| b as u32),
            );
            evaluations += targets.len() as u64;
            let xa = space.row(tile[a] as usize);
            let rows = |b: u32| space.row(tile[b as usize] as usize);
            let (fours, rest) = targets.as_chunks::<4>();
            for &four in fours {
                let d = space.dists(xa, four.map(rows));
                for (b, d) in four.into_iter().zip(d) {
                    propose(a, b as usize, d);
                }
            }
            for &b in rest {
                let [d] = space.dists(xa, [rows(b)]);
                propose(a, b as usize, d);
            }
        }
    }
    evaluations
}

/// The reverse graph as CSR: for row j, the rows that hold j, with the edge's new flag.
struct Reverse {
    starts: Vec<usize>,
    entries: Vec<u32>,
}

impl Reverse {
    fn new(heaps: &Heaps) -> Self {
        let (n, k) = (heaps.n_rows(), heaps.k);
        let mut starts = vec![0usize; n + 1];
        for &j in &heaps.idx {
            starts[j as usize + 1] += 1;
        }
        for j in 0..n {
            starts[j + 1] += starts[j];
        }
        let mut cursor = starts.clone();
        let mut entries = vec![0u32; heaps.idx.len()];
        for (e, (&j, &is_new)) in heaps.idx.iter().zip(&heaps.is_new).enumerate() {
            let slot = &mut cursor[j as usize];
            entries[*slot] = (e / k) as u32 | if is_new { NEW_EDGE } else { 0 };
            *slot += 1;
        }
        Self { starts, entries }
    }

    fn of(&self, j: usize) -> &[u32] {
        &self.entries[self.starts[j]..self.starts[j + 1]]
    }
}

/// One chunk's candidate lists (CSR over its rows): new and old neighbours, forward and
/// reverse, at most `max_candidates` of each, chosen by a seeded priority.
struct Candidates {
    new_starts: Vec<usize>,
    new: Vec<u32>,
    old_starts: Vec<usize>,
    old: Vec<u32>,
}

impl Candidates {
    fn rows(&self) -> usize {
        self.new_starts.len() - 1
    }

    fn new_of(&self, r: usize) -> &[u32] {
        &self.new[self.new_starts[r]..self.new_starts[r + 1]]
    }

    fn old_of(&self, r: usize) -> &[u32] {
        &self.old[self.old_starts[r]..self.old_starts[r + 1]]
    }
}

/// Builds the chunk's candidates and marks the forward neighbours chosen as new candidates old
/// (each pair is joined once as new).
fn candidates(
    chunk: &mut HeapChunk,
    reverse: &Reverse,
    max_candidates: usize,
    key: u64,
) -> Candidates {
    let rows = chunk.rows();
    let k = chunk.k;
    let mut out = Candidates {
        new_starts: Vec::with_capacity(rows.len() + 1),
        new: Vec::with_capacity(rows.len() * max_candidates),
        old_starts: Vec::with_capacity(rows.len() + 1),
        old: Vec::new(),
    };
    out.new_starts.push(0);
    out.old_starts.push(0);
    // (neighbour, forward slot or NO_SLOT).
    let (mut new, mut old, mut keyed) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let base = (row - chunk.first_row) * k;
        new.clear();
        old.clear();
        for slot in 0..k {
            let entry = (chunk.idx[base + slot], slot as u32);
            if chunk.is_new[base + slot] {
                new.push(entry);
            } else {
                old.push(entry);
            }
        }
        let (forward_new, forward_old) = (new.len(), old.len());
        for &e in reverse.of(row) {
            let (list, forward) = if e & NEW_EDGE != 0 {
                (&mut new, forward_new)
            } else {
                (&mut old, forward_old)
            };
            // A mutual neighbour is there already.
            let j = e & !NEW_EDGE;
            if !list[..forward].iter().any(|&(i, _)| i == j) {
                list.push((j, NO_SLOT));
            }
        }
        sample(&mut new, max_candidates, key, row as u32, &mut keyed);
        for &(j, slot) in &new {
            out.new.push(j);
            if slot != NO_SLOT {
                chunk.is_new[base + slot as usize] = false;
            }
        }
        out.new_starts.push(out.new.len());
        // Old candidates are only joined with new ones.
        if !new.is_empty() {
            sample(&mut old, max_candidates, key, row as u32, &mut keyed);
            out.old.extend(old.iter().map(|&(j, _)| j));
        }
        out.old_starts.push(out.old.len());
    }
    out
}

/// The forward slot of a reverse candidate: none.
const NO_SLOT: u32 = u32::MAX;

/// Keeps `n` of a row's candidates, chosen at random by a seeded priority, if it has more.
fn sample(list: &mut Vec<(u32, u32)>, n: usize, key: u64, row: u32, keyed: &mut Vec<(u64, u32)>) {
    if list.len() <= n {
        return;
    }
    keyed.clear();
    keyed.extend(list.iter().map(|&(j, slot)| (priority(key, row, j), slot)));
    keyed.select_nth_unstable(n - 1);
    list.clear();
    list.extend(keyed[..n].iter().map(|&(p, slot)| (p as u32, slot)));
}

/// The sort key of neighbour `j` among row `i`'s candidates: a seeded hash of the unordered
/// pair in the high half (random choice), `j` in the low half.
#[inline]
fn priority(key: u64, i: u32, j: u32) -> u64 {
    let (lo, hi) = if i < j { (i, j) } else { (j, i) };
    let hash = splitmix64(key ^ ((u64::from(hi) << 32) | u64::from(lo)));
    (hash & 0xFFFF_FFFF_0000_0000) | u64::from(j)
}

/// One NN-descent iteration: candidates, then local joins wave by wave, each wave's proposals
/// applied before the next. (updates, distances computed).
fn iterate(
    heaps: &mut Heaps,
    space: &Space,
    params: &Params,
    key: u64,
    guard: &Guard,
) -> Result<(usize, u64), Cancelled> {
    guard.check()?;
    let reverse = Reverse::new(heaps);
    let candidates: Vec<Candidates> = heaps
        .chunks_mut()
        .map(|mut chunk| {
            if guard.stopped() {
                return Candidates {
                    new_starts: vec![0],
                    new: Vec::new(),
                    old_starts: vec![0],
                    old: Vec::new(),
                };
            }
            candidates(&mut chunk, &reverse, params.max_candidates, key)
        })
        .collect();
    guard.check()?;
    drop(reverse);

    let n_blocks = heaps.n_chunks();
    let mut updates = 0;
    let mut evaluations = 0;
    for wave in candidates.chunks(CHUNKS_PER_WAVE) {
        let bars = heaps.thresholds();
        let batches: Vec<(Proposals, u64)> = wave
            .par_iter()
            .map(|cands| {
                let (mut out, mut scratch) = (Vec::new(), JoinScratch::default());
                let mut evaluations = 0;
                if !guard.stopped() {
                    for r in 0..cands.rows() {
                        let (new, old) = (cands.new_of(r), cands.old_of(r));
                        evaluations += join(space, &bars, new, old, &mut out, &mut scratch);
                    }
                }
                (Proposals::bucket(out, n_blocks), evaluations)
            })
            .collect();
        guard.check()?;
        updates += apply(heaps, &batches);
        evaluations += batches.iter().map(|(_, e)| e).sum::<u64>();
    }
    Ok((updates, evaluations))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    use super::*;

    fn never() -> bool {
        false
    }

    fn quiet(_: usize, _: usize) {}

    fn search(data: &[f32], dim: usize, k: usize, distance: Distance, seed: u64) -> KnnSearch<'_> {
        KnnSearch {
            data,
            n_rows: data.len() / dim,
            dim,
            k,
            distance,
            seed,
        }
    }

    fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
        // Box–Muller.
        let u: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
        let v: f32 = rng.random();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    fn uniform_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * dim).map(|_| rng.random::<f32>()).collect()
    }

    /// `n` rows around `blobs` Gaussian centres, blob width and centre spread 1: overlapping,
    /// so that the neighbours are not simply a blob's members (NN-descent's recall ≈ 0.995).
    fn blobs(n: usize, dim: usize, blobs: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<f32> = (0..blobs * dim).map(|_| gaussian(&mut rng)).collect();
        (0..n)
            .flat_map(|i| {
                let c = (i * 7919) % blobs;
                (0..dim)
                    .map(|d| centres[c * dim + d] + gaussian(&mut rng))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn jitter(data: &[f32], scale: f32, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        data.iter()
            .map(|&x| x + scale * gaussian(&mut rng))
            .collect()
    }

    /// Brute force in f64: each row's k nearest (distance, index), ties by index.
    fn reference(data: &[f32], dim: usize, k: usize, distance: Distance) -> Vec<Vec<(f64, u32)>> {
        let rows: Vec<&[f32]> = data.chunks_exact(dim).collect();
        let norm = |r: &[f32]| r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        (0..rows.len())
            .map(|i| {
                let mut all: Vec<(f64, u32)> = (0..rows.len())
                    .filter(|&j| j != i)
                    .map(|j| {
                        let (a, b) = (rows[i], rows[j]);
                        let d = match distance {
                            Distance::Euclidean => a
                                .iter()
                                .zip(b)
                                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                                .sum::<f64>()
                                .sqrt(),
                            Distance::Cosine => {
                                let dot: f64 = a
                                    .iter()
                                    .zip(b)
                                    .map(|(&x, &y)| f64::from(x) * f64::from(y))
                                    .sum();
                                let norms = norm(a) * norm(b);
                                if norms > 0.0 {
                                    (1.0 - dot / norms).max(0.0)
                                } else {
                                    1.0
                                }
                            }
                        };
                        (d, j as u32)
                    })
                    .collect();
                all.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
                all.truncate(k);
                all
            })
            .collect()
    }

    /// Same neighbours as the reference, ranks swapped only between near-equal distances (f32
    /// rounding), exact ties by index.
    fn assert_matches(graph: &KnnGraph, truth: &[Vec<(f64, u32)>]) {
        const TOL: f64 = 1e-5;
        assert_eq!(graph.n_rows(), truth.len());
        for (row, want) in truth.iter().enumerate() {
            let (got_j, got_d) = (graph.neighbours(row), graph.distances(row));
            for (rank, &(d, j)) in want.iter().enumerate() {
                assert!(
                    (f64::from(got_d[rank]) - d).abs() <= TOL * (1.0 + d),
                    "row {row} rank {rank}: distance {} vs {d}",
                    got_d[rank]
                );
                let near_tie = want
                    .iter()
                    .any(|&(e, i)| i != j && e != d && (e - d).abs() <= TOL * (1.0 + d));
                assert!(
                    got_j[rank] == j || near_tie,
                    "row {row} rank {rank}: {} vs {j}",
                    got_j[rank]
                );
            }
        }
    }

    /// Row i's neighbours are valid: k distinct rows other than i, nearest first.
    fn assert_valid(graph: &KnnGraph, n: usize, k: usize) {
        assert_eq!((graph.n_rows(), graph.k()), (n, k));
        for row in 0..n {
            let (idx, dist) = (graph.neighbours(row), graph.distances(row));
            for (slot, &j) in idx.iter().enumerate() {
                assert!((j as usize) < n && j as usize != row, "row {row}: {j}");
                assert!(!idx[..slot].contains(&j), "row {row}: {j} twice");
                assert!(dist[slot].is_finite() && dist[slot] >= 0.0);
            }
            assert!(
                dist.windows(2)
                    .zip(idx.windows(2))
                    .all(|(d, i)| precedes(d[0], i[0], d[1], i[1])),
                "row {row} not sorted: {idx:?} {dist:?}"
            );
        }
    }

    fn recall(graph: &KnnGraph, truth: &KnnGraph) -> f64 {
        let hits: usize = (0..truth.n_rows())
            .map(|row| {
                let want = truth.neighbours(row);
                graph
                    .neighbours(row)
                    .iter()
                    .filter(|j| want.contains(j))
                    .count()
            })
            .sum();
        hits as f64 / truth.indices().len() as f64
    }

    fn in_pool<T: Send>(threads: usize, run: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(run)
    }

    #[test]
    fn exact_matches_brute_force_with_duplicates() {
        let (dim, k) = (5, 7);
        let mut data = uniform_rows(80, dim, 1);
        // Rows 10..14 copy row 3, row 40 copies row 41: exact ties, broken by index.
        for copy in 10..14 {
            data.copy_within(3 * dim..4 * dim, copy * dim);
        }
        data.copy_within(41 * dim..42 * dim, 40 * dim);
        for distance in [Distance::Euclidean, Distance::Cosine] {
            let graph = search(&data, dim, k, distance, 0)
                .exact(&never, &quiet)
                .unwrap();
            assert_valid(&graph, 80, k);
            assert_matches(&graph, &reference(&data, dim, k, distance));
            assert_eq!(&graph.neighbours(3)[..4], &[10, 11, 12, 13]);
            assert_eq!(graph.neighbours(40)[0], 41);
            assert_eq!(graph.distances(3)[..4], [0.0; 4]);
        }
    }

    #[test]
    fn smallest_sets_give_every_other_row() {
        let (dim, k) = (3, 6);
        for (n, data) in [
            (k + 1, uniform_rows(k + 1, dim, 2)),
            (k + 3, vec![0.5; (k + 3) * dim]),
        ] {
            let truth = reference(&data, dim, k, Distance::Euclidean);
            let s = search(&data, dim, k, Distance::Euclidean, 3);
            let exact = s.exact(&never, &quiet).unwrap();
            let descent = s.nn_descent(None, &never, &quiet).unwrap();
            assert_valid(&exact, n, k);
            assert_valid(&descent, n, k);
            assert_matches(&exact, &truth);
            if n == k + 1 {
                assert_eq!(descent, exact);
            }
        }
    }

    #[test]
    fn nn_descent_finds_the_neighbours_of_clustered_data() {
        // Narrow rows take direct distances, wide ones (≥ GRAM_MIN_DIM) dot products.
        let cases = [
            (2000, 32, Distance::Euclidean),
            (800, 40, Distance::Cosine),
            (800, 16, Distance::Euclidean),
        ];
        for (n, dim, distance) in cases {
            let k = 14;
            let data = blobs(n, dim, 20, 4);
            let s = search(&data, dim, k, distance, 5);
            let exact = s.exact(&never, &quiet).unwrap();
            let (graph, stats) = s.nn_descent_with_stats(None, &never, &quiet).unwrap();
            assert_valid(&graph, n, k);
            let r = recall(&graph, &exact);
            assert!(r >= 0.98, "dim {dim}, {distance:?}: recall {r}");
            // Work bounded by n · k (a few dozen distances per neighbour found; lat: 38).
            assert!(
                stats.distance_evaluations < (50 * n * k) as u64,
                "{stats:?}"
            );
            assert!(stats.trees >= 5 && stats.iterations >= 1, "{stats:?}");
            // Distances as the exact search computes them, whatever the search used.
            for row in (0..n).step_by(7) {
                for (&j, &d) in graph.neighbours(row).iter().zip(graph.distances(row)) {
                    if let Some(slot) = exact.neighbours(row).iter().position(|&e| e == j) {
                        assert_eq!(d, exact.distances(row)[slot], "row {row}");
                    }
                }
            }
        }
    }

    #[test]
    fn duplicate_rows_are_each_others_nearest() {
        for dim in [8, 40] {
            let k = 5;
            let base = uniform_rows(300, dim, 6);
            // Every row three times: rows 3i, 3i+1, 3i+2 coincide.
            let data: Vec<f32> = base
                .chunks_exact(dim)
                .flat_map(|row| row.iter().chain(row).chain(row).copied())
                .collect();
            let graph = search(&data, dim, k, Distance::Euclidean, 7)
                .nn_descent(None, &never, &quiet)
                .unwrap();
            assert_valid(&graph, 900, k);
            for row in 0..900 {
                let first = row / 3 * 3;
                let twins: Vec<u32> = (first..first + 3)
                    .filter(|&j| j != row)
                    .map(|j| j as u32)
                    .collect();
                assert_eq!(&graph.neighbours(row)[..2], twins.as_slice(), "row {row}");
                assert_eq!(graph.distances(row)[..2], [0.0, 0.0]);
            }
        }
    }

    #[test]
    fn warm_start_converges_with_less_work() {
        let (n, dim, k) = (800, 32, 14);
        let before = blobs(n, dim, 20, 8);
        let after = jitter(&before, 0.05, 9);
        let start = search(&before, dim, k, Distance::Euclidean, 10)
            .nn_descent(None, &never, &quiet)
            .unwrap();
        let s = search(&after, dim, k, Distance::Euclidean, 10);
        let exact = s.exact(&never, &quiet).unwrap();
        let (cold, cold_stats) = s.nn_descent_with_stats(None, &never, &quiet).unwrap();
        let (warm, warm_stats) = s
            .nn_descent_with_stats(Some(&start), &never, &quiet)
            .unwrap();
        assert_valid(&warm, n, k);
        let (r_cold, r_warm) = (recall(&cold, &exact), recall(&warm, &exact));
        assert!(
            r_warm >= 0.98 && r_warm >= r_cold - 0.005,
            "warm {r_warm}, cold {r_cold}"
        );
        assert!(
            warm_stats.distance_evaluations < cold_stats.distance_evaluations * 3 / 4,
            "warm {warm_stats:?}, cold {cold_stats:?}"
        );
        assert_eq!(warm_stats.trees, 0);
        // The warm start changed something: the start graph alone is worse.
        assert!(recall(&start, &exact) < r_warm);

        // A saved graph (no distances) and one with fewer neighbours work too.
        let saved = KnnGraph::from_indices(n, k, start.indices().to_vec()).unwrap();
        let from_saved = s.nn_descent(Some(&saved), &never, &quiet).unwrap();
        assert_eq!(from_saved, warm);
        let fewer: Vec<u32> = (0..n)
            .flat_map(|row| start.neighbours(row)[..5].to_vec())
            .collect();
        let fewer = KnnGraph::from_indices(n, 5, fewer).unwrap();
        let from_fewer = s.nn_descent(Some(&fewer), &never, &quiet).unwrap();
        assert!(recall(&from_fewer, &exact) >= 0.98);
        // Another row count: ignored (cold start).
        let other = search(&after[..100 * dim], dim, k, Distance::Euclidean, 10);
        let (_, stats) = other
            .nn_descent_with_stats(Some(&start), &never, &quiet)
            .unwrap();
        assert!(stats.trees > 0);
    }

    #[test]
    fn same_result_on_any_thread_count() {
        // Enough rows for several chunks of parallel work, wide enough for the Gram kernel.
        let (dim, k) = (32, 10);
        let data = blobs(700, dim, 12, 11);
        let run = |threads: usize, seed: u64| {
            in_pool(threads, || {
                search(&data, dim, k, Distance::Euclidean, seed)
                    .nn_descent(None, &never, &quiet)
                    .unwrap()
            })
        };
        let exact = |threads: usize| {
            in_pool(threads, || {
                search(&data, dim, k, Distance::Euclidean, 12)
                    .exact(&never, &quiet)
                    .unwrap()
            })
        };
        let descent = run(1, 12);
        for threads in [2, 4] {
            assert_eq!(run(threads, 12), descent, "{threads} threads");
        }
        let truth = exact(1);
        assert_eq!(exact(4), truth);
        let other_seed = run(2, 13);
        assert_ne!(other_seed, descent);
        assert!(recall(&other_seed, &truth) >= 0.98 && recall(&descent, &truth) >= 0.98);
        // Warm starts too.
        let moved = jitter(&data, 0.05, 14);
        let warm = |threads: usize| {
            in_pool(threads, || {
                search(&moved, dim, k, Distance::Euclidean, 12)
                    .nn_descent(Some(&descent), &never, &quiet)
                    .unwrap()
            })
        };
        assert_eq!(warm(1), warm(4));
    }

    #[test]
    fn cosine_on_normalised_rows_ranks_as_euclidean() {
        let (dim, k) = (12, 8);
        let mut data = blobs(800, dim, 10, 15);
        for row in data.chunks_exact_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        for exact in [true, false] {
            let run = |distance| {
                let s = search(&data, dim, k, distance, 16);
                if exact {
                    s.exact(&never, &quiet).unwrap()
                } else {
                    s.nn_descent(None, &never, &quiet).unwrap()
                }
            };
            let (euclidean, cosine) = (run(Distance::Euclidean), run(Distance::Cosine));
            let same = recall(&cosine, &euclidean);
            assert!(same >= 0.99, "exact {exact}: {same}");
            // |a − b|² = 2 (1 − cos) for unit rows.
            for row in 0..data.len() / dim {
                for (e, c) in euclidean.distances(row).iter().zip(cosine.distances(row)) {
                    assert!((e * e - 2.0 * c).abs() < 1e-4, "{e} {c}");
                }
            }
        }
        let truth = reference(&data[..200 * dim], dim, k, Distance::Cosine);
        let small = search(&data[..200 * dim], dim, k, Distance::Cosine, 0);
        assert_matches(&small.exact(&never, &quiet).unwrap(), &truth);
    }

    /// `is_cancelled` that turns true after `calls` polls, noting when.
    struct CancelAfter {
        calls: usize,
        polls: AtomicUsize,
        fired: Mutex<Option<Instant>>,
    }

    impl CancelAfter {
        fn new(calls: usize) -> Self {
            Self {
                calls,
                polls: AtomicUsize::new(0),
                fired: Mutex::new(None),
            }
        }

        fn poll(&self) -> bool {
            let cancelled = self.polls.fetch_add(1, Ordering::SeqCst) >= self.calls;
            if cancelled {
                self.fired.lock().unwrap().get_or_insert_with(Instant::now);
            }
            cancelled
        }
    }

    #[test]
    fn cancellation_stops_promptly() {
        let (dim, k) = (16, 10);
        let data = blobs(800, dim, 10, 17);
        let s = search(&data, dim, k, Distance::Euclidean, 18);
        type Run<'s> = Box<dyn Fn(&(dyn Fn() -> bool + Sync)) -> Result<KnnGraph, Cancelled> + 's>;
        let runs: [(&str, Run); 2] = [
            ("nn_descent", Box::new(|c| s.nn_descent(None, c, &quiet))),
            ("exact", Box::new(|c| s.exact(c, &quiet))),
        ];
        for (name, run) in runs {
            let uncancelled = CancelAfter::new(usize::MAX);
            let started = Instant::now();
            assert!(run(&|| uncancelled.poll()).is_ok());
            let full = started.elapsed();
            let polls = uncancelled.polls.load(Ordering::SeqCst);
            assert!(polls >= 10, "{name}: {polls} polls");
            // Every poll counts, the first and the last included.
            for calls in [0, polls / 2, polls - 1] {
                let cancel = CancelAfter::new(calls);
                assert_eq!(
                    run(&|| cancel.poll()),
                    Err(Cancelled),
                    "{name} after {calls}"
                );
                let fired = cancel.fired.lock().unwrap().expect("polled past the limit");
                let latency = fired.elapsed();
                assert!(
                    latency <= (full / 4).max(Duration::from_millis(50)),
                    "{name}: returned {latency:?} after the cancellation (full run {full:?})"
                );
            }
            let exactly = CancelAfter::new(polls);
            assert!(run(&|| exactly.poll()).is_ok(), "{name}");
        }
    }

    #[test]
    fn progress_reaches_its_total() {
        let data = blobs(1000, 8, 5, 19);
        let s = search(&data, 8, 5, Distance::Euclidean, 20);
        let seen = Mutex::new(Vec::new());
        let record = |done, total| seen.lock().unwrap().push((done, total));
        s.nn_descent(None, &never, &record).unwrap();
        let seen = seen.into_inner().unwrap();
        let &(done, total) = seen.last().unwrap();
        assert_eq!(done, total);
        assert!(seen.len() >= 3 && seen.iter().all(|&(d, t)| d <= t && t == total));
        let max_done = Mutex::new(0);
        s.exact(&never, &|done, total| {
            assert_eq!(total, 1000);
            let mut max = max_done.lock().unwrap();
            *max = (*max).max(done);
        })
        .unwrap();
        assert_eq!(max_done.into_inner().unwrap(), 1000);
    }

    #[test]
    fn from_indices_rejects_invalid_graphs() {
        let valid = vec![1, 2, 0, 2, 0, 1];
        assert!(KnnGraph::from_indices(3, 2, valid.clone()).is_some());
        assert!(
            KnnGraph::from_indices(3, 2, valid[..5].to_vec()).is_none(),
            "short"
        );
        assert!(
            KnnGraph::from_indices(2, 2, vec![1, 0, 0, 1]).is_none(),
            "n ≤ k"
        );
        assert!(KnnGraph::from_indices(3, 0, vec![]).is_none(), "k = 0");
        assert!(
            KnnGraph::from_indices(3, 2, vec![1, 3, 0, 2, 0, 1]).is_none(),
            "out of range"
        );
        assert!(
            KnnGraph::from_indices(3, 2, vec![1, 2, 1, 2, 0, 1]).is_none(),
            "self loop"
        );
        assert!(
            KnnGraph::from_indices(3, 2, vec![1, 1, 0, 2, 0, 1]).is_none(),
            "repeated"
        );
        let graph = KnnGraph::from_indices(3, 2, valid.clone()).unwrap();
        assert_eq!(
            (graph.n_rows(), graph.k(), graph.indices()),
            (3, 2, valid.as_slice())
        );
        assert_eq!(graph.neighbours(1), &[0, 2]);
    }

    #[test]
    fn far_apart_clusters_keep_their_neighbours() {
        // Clusters 1000 times farther apart than they are wide: dot products lose the
        // neighbours' distances to rounding, which the Gram mode must notice.
        let (n, dim, k) = (600, 40, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        let centres: Vec<f32> = (0..10 * dim).map(|_| 1000.0 * gaussian(&mut rng)).collect();
        let data: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = i % 10;
                let centre = &centres[c * dim..(c + 1) * dim];
                centre
                    .iter()
                    .map(|&m| m + gaussian(&mut rng))
                    .collect::<Vec<_>>()
            })
            .collect();
        let s = search(&data, dim, k, Distance::Euclidean, 24);
        let exact = s.exact(&never, &quiet).unwrap();
        let graph = s.nn_descent(None, &never, &quiet).unwrap();
        let r = recall(&graph, &exact);
        assert!(r >= 0.98, "recall {r}");
    }

    #[test]
    fn bfloat16_rounds_to_nearest_even() {
        assert_eq!(bf16(1.0), 0x3F80);
        assert_eq!(from_bf16(bf16(-2.5)), -2.5);
        // Halfway between two bfloat16 values: to the even one.
        assert_eq!(bf16(f32::from_bits(0x3F80_8000)), 0x3F80);
        assert_eq!(bf16(f32::from_bits(0x3F81_8000)), 0x3F82);
        assert_eq!(bf16(f32::from_bits(0x3F80_8001)), 0x3F81);
        let data = uniform_rows(5, 45, 25);
        let rows: Vec<&[f32]> = data.chunks_exact(45).collect();
        let halves: Vec<Vec<u16>> = rows
            .iter()
            .map(|r| r.iter().map(|&x| bf16(x)).collect())
            .collect();
        let four = [
            &halves[1][..],
            &halves[2][..],
            &halves[3][..],
            &halves[4][..],
        ];
        for kernel in [Kernel::Portable, Kernel::detect()] {
            let dots = kernel.dot_bf16(rows[0], four);
            for (dot, q) in dots.iter().zip(&rows[1..]) {
                let want: f32 = rows[0].iter().zip(*q).map(|(a, b)| a * b).sum();
                assert!(
                    (dot - want).abs() < 1e-2 * want,
                    "{kernel:?}: {dot} vs {want}"
                );
            }
        }
    }

    #[test]
    fn gram_kernel_is_consistent() {
        let data = uniform_rows(7, 77, 22);
        let rows: Vec<&[f32]> = data.chunks_exact(77).collect();
        let left = [rows[0], rows[1], rows[2]];
        let right = [rows[3], rows[4], rows[5], rows[6]];
        for kernel in [Kernel::Portable, Kernel::detect()] {
            let block = kernel.gram(left, right);
            for (r, l) in left.iter().enumerate() {
                for (c, q) in right.iter().enumerate() {
                    // Any block shape, either way round: the same bits.
                    let single = kernel.gram([*l], [*q])[0][0];
                    assert_eq!(single.to_bits(), block[r][c].to_bits());
                    assert_eq!(kernel.gram([*q], [*l])[0][0].to_bits(), single.to_bits());
                    let want: f32 = l.iter().zip(*q).map(|(a, b)| a * b).sum();
                    assert!((single - want).abs() < 1e-4 * want, "{kernel:?}");
                }
            }
        }
    }

    #[test]
    fn kernels_agree() {
        let data = uniform_rows(6, 77, 21);
        let rows: Vec<&[f32]> = data.chunks_exact(77).collect();
        let p = rows[0];
        let four = [rows[1], rows[2], rows[3], rows[4]];
        for kernel in [Kernel::Portable, Kernel::detect()] {
            let sq = kernel.sq_euclidean(p, four);
            let dot = kernel.dot(p, four);
            for (i, q) in four.iter().enumerate() {
                // One row at a time, either way round: the same bits.
                assert_eq!(kernel.sq_euclidean(p, [q])[0].to_bits(), sq[i].to_bits());
                assert_eq!(kernel.sq_euclidean(q, [p])[0].to_bits(), sq[i].to_bits());
                assert_eq!(kernel.dot(q, [p])[0].to_bits(), dot[i].to_bits());
                let want_sq: f32 = p.iter().zip(*q).map(|(a, b)| (a - b) * (a - b)).sum();
                let want_dot: f32 = p.iter().zip(*q).map(|(a, b)| a * b).sum();
                assert!((sq[i] - want_sq).abs() < 1e-4 * want_sq, "{kernel:?}");
                assert!((dot[i] - want_dot).abs() < 1e-4 * want_dot, "{kernel:?}");
            }
        }
    }

    #[test]
    fn query_finds_the_exact_nearest_known_rows_of_new_rows() {
        let (dim, k) = (12, 7);
        let base = uniform_rows(500, dim, 1);
        let queries = uniform_rows(70, dim, 2);
        let found = search(&base, dim, k, Distance::Euclidean, 0)
            .query(&queries, &never)
            .unwrap();
        for (q, row) in queries.chunks_exact(dim).enumerate() {
            let mut all: Vec<(f64, u32)> = base
                .chunks_exact(dim)
                .enumerate()
                .map(|(j, b)| {
                    let d: f64 = row
                        .iter()
                        .zip(b)
                        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                        .sum();
                    (d, j as u32)
                })
                .collect();
            all.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            let expected: Vec<u32> = all.iter().take(k).map(|&(_, j)| j).collect();
            assert_eq!(found[q * k..(q + 1) * k], expected[..], "query {q}");
        }
        let cancelled = search(&base, dim, k, Distance::Euclidean, 0).query(&queries, &|| true);
        assert!(cancelled.is_err());
    }
}
