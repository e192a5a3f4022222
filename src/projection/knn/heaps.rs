//! Neighbour heaps: each row's best (distance, index) pairs in a total order, and the memory
//! order of the working copy of the rows.

use rayon::prelude::*;

use super::space::{Space, finite_or_inf, true_distance};
use super::{Distance, EMPTY, KnnGraph, ROWS_PER_CHUNK};

/// `(d, j)` comes before `(d2, j2)` in the (distance, index) order.
#[inline]
pub(super) fn precedes(d: f32, j: u32, d2: f32, j2: u32) -> bool {
    d < d2 || (d == d2 && j < j2)
}

/// Offers `j` at distance `d` to a row's neighbours, kept sorted by (distance, index): true if
/// it is among the k best and was not there yet (it is then flagged new).
#[inline]
pub(super) fn insert(
    idx: &mut [u32],
    dist: &mut [f32],
    is_new: &mut [bool],
    j: u32,
    d: f32,
) -> bool {
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

/// Offers `j` at distance `d` to row `slot` of a block of rows' neighbour lists (`k` slots
/// each): the exact search's and the query's inner step.
#[inline]
pub(super) fn offer_to_block(
    idx: &mut [u32],
    dist: &mut [f32],
    is_new: &mut [bool],
    k: usize,
    slot: usize,
    j: u32,
    d: f32,
) {
    let range = slot * k..(slot + 1) * k;
    insert(
        &mut idx[range.clone()],
        &mut dist[range],
        is_new,
        j,
        finite_or_inf(d),
    );
}

/// Every row's current k best neighbours, sorted, in flat arrays; empty slots are
/// `(+∞, EMPTY)`. `is_new`: not yet used in a local join.
pub(super) struct Heaps {
    pub(super) k: usize,
    pub(super) idx: Vec<u32>,
    pub(super) dist: Vec<f32>,
    pub(super) is_new: Vec<bool>,
}

impl Heaps {
    pub(super) fn new(n: usize, k: usize) -> Self {
        Self {
            k,
            idx: vec![EMPTY; n * k],
            dist: vec![f32::INFINITY; n * k],
            is_new: vec![false; n * k],
        }
    }

    pub(super) fn n_rows(&self) -> usize {
        self.idx.len() / self.k
    }

    pub(super) fn n_chunks(&self) -> usize {
        self.n_rows().div_ceil(ROWS_PER_CHUNK)
    }

    /// The rows in chunks of `ROWS_PER_CHUNK`, in parallel.
    pub(super) fn chunks_mut(&mut self) -> impl IndexedParallelIterator<Item = HeapChunk<'_>> {
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
    pub(super) fn thresholds(&self) -> Vec<(f32, u32)> {
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
pub(super) struct HeapChunk<'a> {
    pub(super) index: usize,
    pub(super) first_row: usize,
    pub(super) k: usize,
    pub(super) idx: &'a mut [u32],
    pub(super) dist: &'a mut [f32],
    pub(super) is_new: &'a mut [bool],
}

impl HeapChunk<'_> {
    pub(super) fn rows(&self) -> std::ops::Range<usize> {
        self.first_row..self.first_row + self.idx.len() / self.k
    }

    pub(super) fn is_full(&self, row: usize) -> bool {
        self.idx[(row - self.first_row + 1) * self.k - 1] != EMPTY
    }

    /// [`insert`] into `row` (a row of this chunk).
    pub(super) fn insert(&mut self, row: usize, j: u32, d: f32) -> bool {
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
pub(super) fn into_graph(
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
pub(super) struct Order {
    pub(super) to_original: Vec<u32>,
    pub(super) to_internal: Vec<u32>,
}

impl Order {
    pub(super) fn new(to_original: Vec<u32>) -> Self {
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
    pub(super) fn breadth_first(graph: &KnnGraph) -> Self {
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
