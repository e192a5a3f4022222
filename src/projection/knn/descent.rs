//! NN-descent's local joins: candidates from forward and reverse neighbours, proposals
//! applied in waves of chunks.

use rayon::prelude::*;

use super::forest::splitmix64;
use super::heaps::{HeapChunk, Heaps, precedes};
use super::space::Space;
use super::{CHUNKS_PER_WAVE, Cancelled, Guard, NEW_EDGE, Params, ROWS_PER_CHUNK};

/// A proposed neighbour `other` for `row`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Proposal {
    pub(super) row: u32,
    pub(super) other: u32,
    pub(super) dist: f32,
}

/// One chunk's proposals, grouped by the heap chunk of their row (counting sort).
pub(super) struct Proposals {
    pub(super) entries: Vec<Proposal>,
    block_starts: Vec<usize>,
}

impl Proposals {
    pub(super) fn bucket(entries: Vec<Proposal>, n_blocks: usize) -> Self {
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

    pub(super) fn block(&self, b: usize) -> &[Proposal] {
        &self.entries[self.block_starts[b]..self.block_starts[b + 1]]
    }
}

/// Applies proposals to the heaps, each heap chunk in parallel and in the batches' order; the
/// number of updates.
pub(super) fn apply(heaps: &mut Heaps, batches: &[(Proposals, u64)]) -> usize {
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
pub(super) struct JoinScratch {
    /// The candidates, new then old.
    tile: Vec<u32>,
    /// Theirs: bar (worst distance, index) and squared norm, gathered once per row.
    pub(super) local: Vec<(f32, u32, f32)>,
}

/// The local join of one row's candidates: every pair of new ones and every new–old pair; a
/// pair is proposed to each side whose current worst neighbour it beats (pairs already known
/// are proposed too: checking the heaps first costs more than it saves). Returns the
/// distances computed.
pub(super) fn join(
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
pub(super) fn iterate(
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
