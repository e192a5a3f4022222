//! Initialisation: a random-projection forest, a previous graph, a random fill.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::descent::{JoinScratch, Proposals, apply, join};
use super::heaps::{HeapChunk, Heaps, Order};
use super::space::{Kernel, Space, finite_or_inf};
use super::{
    Cancelled, FILL_STREAM, GRAM_MIN_DIM, Guard, KnnGraph, LEAVES_PER_CHUNK, MAX_TREE_DEPTH,
    PARALLEL_NODE_SIZE, POLL_NODE_SIZE, Params, SPLIT_EPS, TREE_STREAM,
};

/// One random-projection tree: `order` is a permutation of the rows, each leaf a range of it.
pub(super) struct Tree {
    pub(super) order: Vec<u32>,
    pub(super) leaves: Vec<(usize, usize)>,
}

/// The forest, and the working copy of the rows in the order of tree 0's leaves (the other
/// trees are built on it, where their splits read nearby memory; their orders are internal
/// rows).
pub(super) fn build_forest(
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
pub(super) fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

pub(super) fn from_bf16(b: u16) -> f32 {
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
pub(super) fn join_leaves(
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
pub(super) fn seed_from_graph(
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
pub(super) fn fill_at_random(
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

pub(super) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
