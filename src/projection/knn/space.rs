//! Distances: the rows as searched (normalised for cosine), and the kernels that compare them
//! (direct differences, or dot products from a blocked Gram kernel, AVX2 where available).

use std::borrow::Cow;

use rayon::prelude::*;

use super::forest::from_bf16;
use super::heaps::Order;
use super::{Distance, GRAM_MIN_DIM, GRAM_TOLERANCE, KnnSearch, ROWS_PER_CHUNK};

/// The rows as searched (normalised for cosine) and the distance kernel.
pub(super) struct Space<'a> {
    pub(super) data: Cow<'a, [f32]>,
    pub(super) dim: usize,
    pub(super) distance: Distance,
    pub(super) kernel: Kernel,
    /// Local joins take distances from dot products (`|a|² + |b|² − 2 a·b`, or `1 − a·b`): a
    /// blocked Gram kernel computes those three times faster than differences. Set for
    /// NN-descent's working copy of wide rows, whose Euclidean rows are then centred (so that
    /// the norms stay small and the subtraction loses little).
    pub(super) gram: bool,
    /// Squared norms of the rows, from the Gram kernel (Euclidean Gram mode only).
    pub(super) sq_norms: Vec<f32>,
    /// The rounding error of a dot product, relative to the rows' squared norms: about
    /// `4 √dim ε` (a sum of dim products rounds like a random walk).
    gram_error: f32,
}

impl<'a> Space<'a> {
    pub(super) fn new(search: &KnnSearch<'a>) -> Self {
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
    pub(super) fn working_copy(&self, order: &Order) -> Space<'static> {
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
    pub(super) fn column_means(&self) -> Vec<f32> {
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

    pub(super) fn n_rows(&self) -> usize {
        self.data.len() / self.dim
    }

    pub(super) fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The internal distances from `p` to each of `q`: squared Euclidean, or `1 − dot` of
    /// normalised rows (clamped at 0 so that duplicates are at 0 whatever the rounding).
    /// Symmetric bit for bit.
    #[inline]
    pub(super) fn dists<const N: usize>(&self, p: &[f32], q: [&[f32]; N]) -> [f32; N] {
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
    pub(super) fn dist_from_dot(&self, sq_a: f32, sq_b: f32, dot: f32) -> Option<f32> {
        match self.distance {
            Distance::Euclidean => {
                let d = sq_a + sq_b - 2.0 * dot;
                (self.gram_error * (sq_a + sq_b) <= GRAM_TOLERANCE * d).then_some(d)
            }
            Distance::Cosine => Some((1.0 - dot).max(0.0)),
        }
    }

    /// The internal distance of rows `a` and `b`.
    pub(super) fn dist(&self, a: usize, b: usize) -> f32 {
        self.dists(self.row(a), [self.row(b)])[0]
    }

    /// Calls `f(j, distance)` for each row `j` of `targets`, four at a time.
    #[inline]
    pub(super) fn for_each_dist(&self, p: &[f32], targets: &[u32], mut f: impl FnMut(u32, f32)) {
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
pub(super) fn true_distance(distance: Distance, d: f32) -> f32 {
    match distance {
        Distance::Euclidean => d.max(0.0).sqrt(),
        Distance::Cosine => d,
    }
}

/// NaN (only from non-finite data) as +∞, so that every row still fills up.
pub(super) fn finite_or_inf(d: f32) -> f32 {
    if d.is_nan() { f32::INFINITY } else { d }
}

/// The distance kernels: AVX2 + FMA intrinsics where the CPU has them (the default x86-64
/// target only assumes SSE2, and LLVM vectorises the portable loops poorly: the intrinsics are
/// 2.5× faster at 256 dimensions), portable otherwise. Differences and dot products compare one
/// row with up to four others at once, loading the first once for all; the Gram kernel
/// computes a block of dot products.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Kernel {
    pub(super) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Self::Avx2Fma;
        }
        Self::Portable
    }

    /// Σ (p − q)² for each q.
    #[inline]
    pub(super) fn sq_euclidean<const N: usize>(self, p: &[f32], q: [&[f32]; N]) -> [f32; N] {
        match self {
            Self::Portable => q.map(|q| accumulate::<true>(p, q)),
            // SAFETY: `detect` chose this kernel only where the CPU has AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Fma => unsafe { accumulate_avx2_fma::<N, true>(p, q) },
        }
    }

    /// Σ p·q for each q.
    #[inline]
    pub(super) fn dot<const N: usize>(self, p: &[f32], q: [&[f32]; N]) -> [f32; N] {
        match self {
            Self::Portable => q.map(|q| accumulate::<false>(p, q)),
            // SAFETY: `detect` chose this kernel only where the CPU has AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Fma => unsafe { accumulate_avx2_fma::<N, false>(p, q) },
        }
    }

    /// Σ p·q for each bfloat16 row q.
    #[inline]
    pub(super) fn dot_bf16<const N: usize>(self, p: &[f32], q: [&[u16]; N]) -> [f32; N] {
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
    pub(super) fn gram<const R: usize, const C: usize>(
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
