//! UMAP's layout optimisation as umap-learn's `optimize_layout_euclidean`: stochastic gradient
//! descent on the fuzzy cross-entropy, each directed edge sampled every `epochs_per_sample`
//! epochs (moving both endpoints), `NEGATIVE_SAMPLE_RATE` random members repelled from the
//! head per sample, every gradient coordinate clipped at ±4, and the learning rate decayed
//! linearly to zero.
//!
//! Within a chunk, eight due edges are processed at once in SIMD lanes (`wide`), each lane
//! walking its own stretch of the head-sorted chunk, and a sample's negative samples are
//! computed against the head's position after its attraction and applied together (umap-learn
//! moves the head after each one; the difference is within one sample's step). This is what
//! makes the loop several times faster than a scalar port: a scalar loop waits on each
//! sample's `pow` and division before the next sample of the same head can start.
//!
//! Parallel form: Hogwild over chunks of edges, as umap-learn's `parallel=True`. Positions live
//! in one `AtomicU64` per member (both coordinates packed), read and written with relaxed
//! ordering: racing updates may overwrite each other, which SGD tolerates, and on x86-64 and
//! aarch64 these are plain loads and stores. The deterministic form runs the same chunks in
//! order on one thread, so a seed gives one layout (umap-learn is also single-threaded when
//! seeded).

use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array2, ArrayView2};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rayon::prelude::*;
use wide::{f32x8, i32x8};

use super::curve::Curve;
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::projection::{Frames, LayoutFrame};
use crate::task::TaskControl;

pub const NEGATIVE_SAMPLE_RATE: f32 = 5.0;
/// Weight of the repulsive term (umap-learn's `repulsion_strength`).
const REPULSION: f32 = 1.0;
const GRADIENT_CLIP: f32 = 4.0;
/// Added to squared distances in the repulsive gradient (umap-learn's constant).
const REPULSION_EPS: f32 = 0.001;
/// Edges per parallel work item, and the unit of the per-chunk random streams (changing it
/// changes the layouts of a seed). At most 2¹⁶: due edges are indexed by `u16`.
const EDGES_PER_CHUNK: usize = 4096;
/// Edges processed together, one per SIMD lane.
const LANES: usize = 8;

/// The directed edges of the fuzzy graph, sorted by head, with how often each is sampled.
#[derive(Debug, Clone, Default)]
pub struct Edges {
    pub head: Vec<u32>,
    pub tail: Vec<u32>,
    /// Epochs between two samples of the edge: `max weight / weight` (≥ 1).
    pub epochs_per_sample: Vec<f32>,
}

impl Edges {
    pub fn len(&self) -> usize {
        self.head.len()
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_empty()
    }
}

/// What one optimisation run does.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub curve: Curve,
    pub initial_learning_rate: f32,
    pub epochs: usize,
    pub seed: u64,
    /// One thread, chunks in order: the same layout for the same seed.
    pub deterministic: bool,
}

/// Runs the schedule from `positions`, streaming frames and polling `control` every epoch.
pub fn optimise(
    positions: &[[f32; 2]],
    edges: &Edges,
    schedule: &Schedule,
    control: &TaskControl,
    mut frames: Option<Frames<'_>>,
) -> AnalysisResult<Array2<f32>> {
    let n = positions.len();
    let layout = SharedLayout::new(positions);
    let mut next_sample = edges.epochs_per_sample.clone();
    let mut next_negative: Vec<f32> = edges
        .epochs_per_sample
        .iter()
        .map(|e| e / NEGATIVE_SAMPLE_RATE)
        .collect();
    let kernel = Kernel {
        layout: &layout,
        n_members: n as u32,
        a: schedule.curve.a,
        b: schedule.curve.b,
    };
    let mut frame_buffer = Vec::new();

    for epoch in 0..schedule.epochs {
        control.check()?;
        control.report("optimise", epoch, schedule.epochs);
        let alpha = schedule.initial_learning_rate * (1.0 - epoch as f32 / schedule.epochs as f32);
        let epoch_seed = mix(schedule.seed, epoch as u64);
        let work = |(chunk, ((head, tail), (per_sample, (next, next_neg)))): ChunkItem<'_>| {
            let mut rng = SmallRng::seed_from_u64(mix(epoch_seed, chunk as u64));
            kernel.run_chunk(
                EdgeChunk {
                    head,
                    tail,
                    per_sample,
                    next,
                    next_neg,
                },
                epoch as f32,
                alpha,
                &mut rng,
            );
        };
        let chunks = edges
            .head
            .chunks(EDGES_PER_CHUNK)
            .zip(edges.tail.chunks(EDGES_PER_CHUNK))
            .zip(
                edges.epochs_per_sample.chunks(EDGES_PER_CHUNK).zip(
                    next_sample
                        .chunks_mut(EDGES_PER_CHUNK)
                        .zip(next_negative.chunks_mut(EDGES_PER_CHUNK)),
                ),
            )
            .enumerate()
            .collect::<Vec<_>>();
        if schedule.deterministic {
            chunks.into_iter().for_each(work);
        } else {
            chunks.into_par_iter().for_each(work);
        }

        if let Some(frames) = frames.as_mut() {
            let done = epoch + 1;
            if done % frames.every_epochs.max(1) == 0 || done == schedule.epochs {
                layout.copy_into(&mut frame_buffer);
                if let Ok(coords) = ArrayView2::from_shape((n, 2), &frame_buffer[..]) {
                    (frames.sink)(LayoutFrame {
                        epoch: done,
                        n_epochs: schedule.epochs,
                        coords,
                    });
                }
            }
        }
    }
    control.report("optimise", schedule.epochs, schedule.epochs);
    layout.copy_into(&mut frame_buffer);
    Array2::from_shape_vec((n, 2), frame_buffer)
        .map_err(|e| AnalysisError::Invalid(format!("layout shape: {e}")))
}

type ChunkItem<'a> = (
    usize,
    (
        (&'a [u32], &'a [u32]),
        (&'a [f32], (&'a mut [f32], &'a mut [f32])),
    ),
);

/// One chunk of edges with its sampling clocks (owned by the chunk's worker alone).
struct EdgeChunk<'a> {
    head: &'a [u32],
    tail: &'a [u32],
    per_sample: &'a [f32],
    next: &'a mut [f32],
    next_neg: &'a mut [f32],
}

struct Kernel<'a> {
    layout: &'a SharedLayout,
    n_members: u32,
    a: f32,
    b: f32,
}

impl Kernel<'_> {
    /// umap-learn's `_optimize_layout_euclidean_single_epoch` on one chunk of edges, `LANES`
    /// edges at a time in SIMD lanes. Lane `l` walks its own stretch of the (head-sorted)
    /// chunk, so the lanes of a step hold different heads and each head's samples stay in
    /// order; a step's lanes are written back in lane order.
    fn run_chunk(&self, chunk: EdgeChunk<'_>, epoch: f32, alpha: f32, rng: &mut SmallRng) {
        // The edges due this epoch, compacted without branches (a third are due on average,
        // at random: a branch per edge would mispredict often).
        let mut due = [0u16; EDGES_PER_CHUNK];
        let mut n_due = 0;
        for (e, &next) in chunk.next.iter().enumerate() {
            due[n_due] = e as u16;
            n_due += usize::from(next <= epoch);
        }
        let due = &due[..n_due];
        let stretch = n_due.div_ceil(LANES);
        let (a, b) = (f32x8::splat(self.a), self.b);
        let attraction = f32x8::splat(-2.0 * self.a * self.b);
        let repulsion = f32x8::splat(2.0 * REPULSION * self.b);
        let alpha_x8 = f32x8::splat(alpha);
        for step in 0..stretch {
            // Lane l takes the step-th due edge of its own stretch of the chunk.
            let edge: [usize; LANES] = std::array::from_fn(|lane| {
                due.get(lane * stretch + step)
                    .map_or(usize::MAX, |&e| usize::from(e))
            });
            let (mut cx, mut cy, mut ox, mut oy) = (
                [0.0f32; LANES],
                [0.0f32; LANES],
                [0.0f32; LANES],
                [0.0f32; LANES],
            );
            let mut n_negative = [0usize; LANES];
            for lane in 0..LANES {
                let e = edge[lane];
                if e == usize::MAX {
                    continue;
                }
                let [x, y] = self.layout.load(chunk.head[e]);
                let [u, v] = self.layout.load(chunk.tail[e]);
                (cx[lane], cy[lane], ox[lane], oy[lane]) = (x, y, u, v);
                chunk.next[e] += chunk.per_sample[e];
                let per_negative = chunk.per_sample[e] * (1.0 / NEGATIVE_SAMPLE_RATE);
                let n = ((epoch - chunk.next_neg[e]) / per_negative).max(0.0) as usize;
                chunk.next_neg[e] += n as f32 * per_negative;
                n_negative[lane] = n;
            }
            // Attraction along the edge (idle lanes are at distance 0: no move).
            let (mut cx8, mut cy8) = (f32x8::from(cx), f32x8::from(cy));
            let (mut ox8, mut oy8) = (f32x8::from(ox), f32x8::from(oy));
            let (dx, dy) = (cx8 - ox8, cy8 - oy8);
            let dist_sq = (dx * dx + dy * dy).max(f32x8::splat(f32::MIN_POSITIVE));
            let dist_sq_b = fast_pow_x8(dist_sq, b);
            let coeff = attraction * (dist_sq_b / dist_sq) / (a * dist_sq_b + 1.0);
            let (gx, gy) = (
                clip_x8(coeff * dx) * alpha_x8,
                clip_x8(coeff * dy) * alpha_x8,
            );
            cx8 += gx;
            cy8 += gy;
            ox8 -= gx;
            oy8 -= gy;
            let (cx, cy) = (cx8.to_array(), cy8.to_array());

            // Negative samples: round r draws the r-th sample of every lane that has one.
            let (mut push_x, mut push_y) = (f32x8::ZERO, f32x8::ZERO);
            let rounds = n_negative.iter().copied().max().unwrap_or(0);
            for round in 0..rounds {
                let (mut nx, mut ny) = (cx, cy);
                for lane in 0..LANES {
                    if round < n_negative[lane] && edge[lane] != usize::MAX {
                        // Multiply-shift instead of a rejection loop: bias below 2⁻³² × n.
                        let k =
                            ((u64::from(rng.next_u32()) * u64::from(self.n_members)) >> 32) as u32;
                        if k != chunk.head[edge[lane]] {
                            [nx[lane], ny[lane]] = self.layout.load(k);
                        }
                    }
                }
                let (dx, dy) = (cx8 - f32x8::from(nx), cy8 - f32x8::from(ny));
                let dist_sq = dx * dx + dy * dy;
                let dist_sq_b = fast_pow_x8(dist_sq.max(f32x8::splat(f32::MIN_POSITIVE)), b);
                let coeff = repulsion / ((dist_sq + REPULSION_EPS) * (a * dist_sq_b + 1.0));
                push_x += clip_x8(coeff * dx);
                push_y += clip_x8(coeff * dy);
            }
            cx8 += push_x * alpha_x8;
            cy8 += push_y * alpha_x8;

            let (cx, cy, ox, oy) = (
                cx8.to_array(),
                cy8.to_array(),
                ox8.to_array(),
                oy8.to_array(),
            );
            for lane in 0..LANES {
                let e = edge[lane];
                if e == usize::MAX {
                    continue;
                }
                self.layout.store(chunk.tail[e], [ox[lane], oy[lane]]);
                self.layout.store(chunk.head[e], [cx[lane], cy[lane]]);
            }
        }
    }
}

#[inline(always)]
fn clip_x8(g: f32x8) -> f32x8 {
    g.fast_max(f32x8::splat(-GRADIENT_CLIP))
        .fast_min(f32x8::splat(GRADIENT_CLIP))
}

/// `x^b` for positive normal `x`, lane-wise, as `2^(b·log₂x)` with each factor a polynomial
/// (relative error below 5e-6): `powf` per lane would dominate the loop, and a lookup table
/// costs a cache miss per lane. The coefficients below are least-squares fits (numpy) of
/// log₂(1 + u) on u ∈ [0, 1] and of 2^f on f ∈ [0, 1].
#[inline(always)]
fn fast_pow_x8(x: f32x8, b: f32) -> f32x8 {
    let bits: i32x8 = bytemuck::cast(x);
    let exponent = f32x8::from_i32x8((bits >> 23) - i32x8::splat(127));
    let mantissa: f32x8 =
        bytemuck::cast((bits & i32x8::splat(0x007f_ffff)) | i32x8::splat(0x3f80_0000));
    let u = mantissa - 1.0;
    let mut log2_mantissa = f32x8::ZERO;
    for c in LOG2.iter().rev() {
        log2_mantissa = (log2_mantissa + *c) * u;
    }
    let y = ((exponent + log2_mantissa) * b)
        .fast_max(f32x8::splat(-126.0))
        .fast_min(f32x8::splat(127.0));
    let truncated = y.fast_trunc_int();
    let above: i32x8 = bytemuck::cast(f32x8::from_i32x8(truncated).simd_gt(y));
    let whole = truncated + above; // `above` is −1 where truncation rounded up
    let f = y - f32x8::from_i32x8(whole);
    let mut two_to_f = f32x8::ZERO;
    for c in EXP2.iter().rev() {
        two_to_f = two_to_f * f + *c;
    }
    let scale: f32x8 = bytemuck::cast((whole + i32x8::splat(127)) << 23);
    scale * two_to_f
}

/// log₂(1 + u) ≈ Σ LOG2[i]·u^(i+1).
const LOG2: [f32; 7] = [
    1.442_659_3,
    -0.720_458_3,
    0.472_893_37,
    -0.324_294_87,
    0.192_307_1,
    -0.078_356_91,
    0.015_251_047,
];
/// 2^f ≈ Σ EXP2[i]·f^i.
const EXP2: [f32; 6] = [
    0.999_999_77,
    0.693_156_8,
    0.240_131_69,
    0.055_876_557,
    0.008_940_583,
    0.001_894_379_4,
];

/// SplitMix64's finaliser over `seed + value`: independent-looking seeds per epoch and chunk.
fn mix(seed: u64, value: u64) -> u64 {
    let mut z = seed
        .wrapping_add(value.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Member positions shared by the Hogwild workers, one packed `(x, y)` per atomic.
struct SharedLayout(Vec<AtomicU64>);

impl SharedLayout {
    fn new(positions: &[[f32; 2]]) -> Self {
        Self(
            positions
                .iter()
                .map(|&[x, y]| {
                    AtomicU64::new(u64::from(x.to_bits()) | u64::from(y.to_bits()) << 32)
                })
                .collect(),
        )
    }

    #[inline(always)]
    fn load(&self, member: u32) -> [f32; 2] {
        let bits = self.0[member as usize].load(Ordering::Relaxed);
        [
            f32::from_bits(bits as u32),
            f32::from_bits((bits >> 32) as u32),
        ]
    }

    #[inline(always)]
    fn store(&self, member: u32, [x, y]: [f32; 2]) {
        let bits = u64::from(x.to_bits()) | u64::from(y.to_bits()) << 32;
        self.0[member as usize].store(bits, Ordering::Relaxed);
    }

    /// Row-major `n × 2` copy.
    fn copy_into(&self, out: &mut Vec<f32>) {
        out.clear();
        out.extend((0..self.0.len() as u32).flat_map(|member| self.load(member)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_clusters() -> (Vec<[f32; 2]>, Edges) {
        // Members 0–9 and 10–19, each a ring of edges within its cluster.
        let mut edges = Edges::default();
        for cluster in 0..2u32 {
            for i in 0..10u32 {
                let (u, v) = (cluster * 10 + i, cluster * 10 + (i + 1) % 10);
                for (h, t) in [(u, v), (v, u)] {
                    edges.head.push(h);
                    edges.tail.push(t);
                    edges.epochs_per_sample.push(1.0);
                }
            }
        }
        let mut order: Vec<usize> = (0..edges.len()).collect();
        order.sort_by_key(|&e| edges.head[e]);
        let edges = Edges {
            head: order.iter().map(|&e| edges.head[e]).collect(),
            tail: order.iter().map(|&e| edges.tail[e]).collect(),
            epochs_per_sample: order.iter().map(|&e| edges.epochs_per_sample[e]).collect(),
        };
        // Interleaved start: the clusters begin mixed.
        let positions = (0..20).map(|i| [(i % 7) as f32, (i % 5) as f32]).collect();
        (positions, edges)
    }

    fn schedule(deterministic: bool, seed: u64) -> Schedule {
        Schedule {
            curve: Curve::fit(0.1, 1.0),
            initial_learning_rate: 1.0,
            epochs: 200,
            seed,
            deterministic,
        }
    }

    fn centroid(layout: &Array2<f32>, rows: std::ops::Range<usize>) -> [f32; 2] {
        let n = rows.len() as f32;
        let mut c = [0.0; 2];
        for r in rows {
            c[0] += layout[[r, 0]] / n;
            c[1] += layout[[r, 1]] / n;
        }
        c
    }

    #[test]
    fn separates_two_connected_groups() {
        let (positions, edges) = two_clusters();
        for deterministic in [true, false] {
            let layout = optimise(
                &positions,
                &edges,
                &schedule(deterministic, 3),
                &TaskControl::new(),
                None,
            )
            .unwrap();
            let (c0, c1) = (centroid(&layout, 0..10), centroid(&layout, 10..20));
            let between = (c0[0] - c1[0]).hypot(c0[1] - c1[1]);
            let spread = |c: [f32; 2], rows: std::ops::Range<usize>| {
                rows.map(|r| (layout[[r, 0]] - c[0]).hypot(layout[[r, 1]] - c[1]))
                    .fold(0.0f32, f32::max)
            };
            let within = spread(c0, 0..10).max(spread(c1, 10..20));
            assert!(
                between > 2.0 * within,
                "deterministic {deterministic}: centres {between} apart, clusters {within} wide"
            );
        }
    }

    #[test]
    fn deterministic_form_repeats_and_follows_the_seed() {
        let (positions, edges) = two_clusters();
        let run = |seed| {
            optimise(
                &positions,
                &edges,
                &schedule(true, seed),
                &TaskControl::new(),
                None,
            )
            .unwrap()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn fast_pow_is_close_to_powf() {
        for b in [0.79f32, 0.895, 1.33, 1.92] {
            let mut x = 1e-12f32;
            while x < 1e8 {
                let lanes: [f32; LANES] = std::array::from_fn(|l| x * (1.0 + 0.01 * l as f32));
                let got = fast_pow_x8(f32x8::from(lanes), b).to_array();
                for (&x, got) in lanes.iter().zip(got) {
                    let want = f64::from(x).powf(f64::from(b));
                    assert!(
                        (f64::from(got) - want).abs() <= 5e-6 * want,
                        "{x}^{b}: {got} vs {want}"
                    );
                }
                x *= 1.37;
            }
        }
    }

    #[test]
    fn packed_positions_round_trip() {
        let layout = SharedLayout::new(&[[1.5, -2.25], [f32::MIN_POSITIVE, 3e7]]);
        assert_eq!(layout.load(0), [1.5, -2.25]);
        layout.store(1, [-0.0, 7.0]);
        assert_eq!(layout.load(1), [-0.0, 7.0]);
    }
}
