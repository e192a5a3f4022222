//! Per-channel normalisation: an optional pre-transform (log, arcsinh) followed by z-score or
//! min–max scaling, with statistics fitted on the training split only.
//!
//! Statistics are streamed member by member (never the whole ensemble in memory), in parallel,
//! accumulated in `f64`: each channel plane gets an exact two-pass mean and sum of squared
//! deviations, and planes are combined with Chan et al.'s pairwise update, which stays
//! accurate for 10⁹+ values where a naive Σx² would cancel catastrophically.

use super::{MemberSource, Shape};
use crate::error::{DataError, DataResult};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Monotone transform applied to raw values before scaling, for heavy-tailed data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PreTransform {
    #[default]
    None,
    /// `ln(x + epsilon)`; fitting fails if a finite training value is `<= -epsilon`.
    Log { epsilon: f32 },
    /// `asinh(x)`: log-like for large |x|, linear near 0, defined for negative values.
    Asinh,
}

impl PreTransform {
    #[inline]
    pub fn forward(self, x: f32) -> f32 {
        match self {
            PreTransform::None => x,
            PreTransform::Log { epsilon } => (x + epsilon).ln(),
            PreTransform::Asinh => x.asinh(),
        }
    }

    #[inline]
    pub fn inverse(self, y: f32) -> f32 {
        match self {
            PreTransform::None => y,
            PreTransform::Log { epsilon } => y.exp() - epsilon,
            PreTransform::Asinh => y.sinh(),
        }
    }
}

/// How pre-transformed values are scaled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scaling {
    /// `(v − mean) / std`: the mean maps to 0.
    #[default]
    ZScore,
    /// `(v − min) / (max − min)`: the training range maps to [0, 1].
    MinMax,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NormalizationConfig {
    pub pre: PreTransform,
    pub scaling: Scaling,
}

/// Statistics of one channel's pre-transformed, finite training values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Finite values seen.
    pub count: u64,
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

/// Fitted per-channel normalisation, stored with a run so every later use (validation,
/// embedding, reconstructions) sees exactly the training transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub config: NormalizationConfig,
    pub channels: Vec<ChannelStats>,
    /// Training members the statistics were computed from.
    pub fitted_members: usize,
    /// Non-finite training values that the statistics skipped.
    pub skipped_values: u64,
}

impl Normalization {
    /// Fits statistics on `train_indices` of `source`, streaming members in parallel.
    ///
    /// The result does not depend on the number of threads: members are accumulated in
    /// fixed-size chunks whose partial results are merged in order.
    pub fn fit(
        source: &dyn MemberSource,
        train_indices: &[usize],
        config: NormalizationConfig,
    ) -> DataResult<Self> {
        if train_indices.is_empty() {
            return Err(DataError::new(
                source.origin(),
                "cannot fit normalisation statistics: the training split is empty",
            ));
        }
        if let Some(&bad) = train_indices.iter().find(|&&i| i >= source.len()) {
            return Err(DataError::new(
                source.origin(),
                format!("member {bad} out of range (ensemble has {})", source.len()),
            ));
        }
        let shape = source.shape();
        // Large enough to amortise the per-chunk buffer, small enough to balance two cores.
        const MEMBERS_PER_CHUNK: usize = 32;
        let partials: Vec<ChunkStats> = train_indices
            .par_chunks(MEMBERS_PER_CHUNK)
            .map(|chunk| accumulate_chunk(source, chunk, shape, config.pre))
            .collect::<DataResult<_>>()?;

        let mut total = ChunkStats::new(shape.channels);
        for partial in &partials {
            total.merge(partial);
        }
        if let Some((member, value)) = total.first_out_of_domain {
            return Err(DataError::new(
                source.origin(),
                format!(
                    "the {:?} pre-transform is undefined for value {value} in member {} \
                     (log needs x + epsilon > 0); choose a larger epsilon or asinh",
                    config.pre,
                    source.member_id(member),
                ),
            ));
        }
        Ok(Self {
            config,
            channels: total.channels.iter().map(RunningStats::finish).collect(),
            fitted_members: train_indices.len(),
            skipped_values: total.skipped_values,
        })
    }

    /// Number of channels the statistics were fitted for.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Normalises one member (CHW) in place. Non-finite values (and values outside the
    /// pre-transform's domain) become 0: the mean under z-score, the minimum under min–max.
    ///
    /// # Panics
    /// If `shape` does not match `member` or has another channel count than the fit;
    /// [`BatchLoader`](super::batch::BatchLoader) checks this up front.
    pub fn apply(&self, member: &mut [f32], shape: Shape) {
        self.check_shape(member, shape);
        for (plane, stats) in member
            .chunks_exact_mut(shape.plane_len())
            .zip(&self.channels)
        {
            let (offset, scale) = self.affine(stats);
            let pre = self.config.pre;
            for v in plane {
                let t = (pre.forward(*v) - offset) * scale;
                *v = if t.is_finite() { t } else { 0.0 };
            }
        }
    }

    /// Maps normalised values back to data units (for showing reconstructions).
    pub fn invert(&self, member: &mut [f32], shape: Shape) {
        self.check_shape(member, shape);
        for (plane, stats) in member
            .chunks_exact_mut(shape.plane_len())
            .zip(&self.channels)
        {
            let (offset, scale) = self.affine(stats);
            let pre = self.config.pre;
            for v in plane {
                *v = pre.inverse(*v / scale + offset);
            }
        }
    }

    /// `(offset, scale)` with `normalised = (pre(x) − offset) · scale`. A degenerate channel
    /// (constant, or no finite values) gets scale 1 so it maps to 0 instead of NaN.
    fn affine(&self, stats: &ChannelStats) -> (f32, f32) {
        let (offset, spread) = match self.config.scaling {
            Scaling::ZScore => (stats.mean, stats.std),
            Scaling::MinMax => (stats.min, stats.max - stats.min),
        };
        // Relative threshold: a spread this small next to the offset is rounding noise.
        let usable = spread > offset.abs() * 1e-9 && (1.0 / spread).is_finite();
        let scale = if usable { 1.0 / spread } else { 1.0 };
        (offset as f32, scale as f32)
    }

    fn check_shape(&self, member: &[f32], shape: Shape) {
        assert_eq!(
            member.len(),
            shape.len(),
            "member length does not match {shape}"
        );
        assert_eq!(
            shape.channels,
            self.channels.len(),
            "normalisation was fitted for {} channels, member has {}",
            self.channels.len(),
            shape.channels
        );
    }
}

/// Count, mean and sum of squared deviations (M2) of a set of values, mergeable in any grouping.
#[derive(Debug, Clone, Copy)]
struct RunningStats {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl RunningStats {
    const EMPTY: Self = Self {
        count: 0,
        mean: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    /// Exact two-pass statistics of the finite values of one plane (fits in cache).
    fn of_plane(plane: &[f32]) -> Self {
        if let Some(stats) = Self::of_finite_plane(plane) {
            return stats;
        }
        let mut stats = Self::EMPTY;
        let mut sum = 0.0f64;
        for &v in plane.iter().filter(|v| v.is_finite()) {
            let v = f64::from(v);
            stats.count += 1;
            sum += v;
            stats.min = stats.min.min(v);
            stats.max = stats.max.max(v);
        }
        if stats.count == 0 {
            return stats;
        }
        stats.mean = sum / stats.count as f64;
        stats.m2 = plane
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| (f64::from(v) - stats.mean).powi(2))
            .sum();
        stats
    }

    /// [`Self::of_plane`] for the common all-finite case, written with independent lanes so
    /// the compiler vectorises it; `None` if the plane holds a non-finite value (a sum of
    /// finite `f32` values cannot overflow `f64`, so a non-finite sum betrays one).
    fn of_finite_plane(plane: &[f32]) -> Option<Self> {
        const LANES: usize = 8;
        let Some(&first) = plane.first() else {
            return Some(Self::EMPTY);
        };
        // Separate passes vectorise better than one fused loop.
        let chunks = plane.chunks_exact(LANES);
        let tail = chunks.remainder();
        let mut sum = [0.0f64; LANES];
        for chunk in chunks.clone() {
            for lane in 0..LANES {
                sum[lane] += f64::from(chunk[lane]);
            }
        }
        let total = sum.iter().sum::<f64>() + tail.iter().map(|&v| f64::from(v)).sum::<f64>();
        if !total.is_finite() {
            return None;
        }
        let (mut min, mut max) = ([first; LANES], [first; LANES]);
        for chunk in chunks.clone() {
            for lane in 0..LANES {
                min[lane] = min[lane].min(chunk[lane]);
                max[lane] = max[lane].max(chunk[lane]);
            }
        }
        let lo = min.iter().chain(tail).copied().fold(first, f32::min);
        let hi = max.iter().chain(tail).copied().fold(first, f32::max);
        let mean = total / plane.len() as f64;
        let mut m2 = [0.0f64; LANES];
        for chunk in chunks {
            for lane in 0..LANES {
                let d = f64::from(chunk[lane]) - mean;
                m2[lane] += d * d;
            }
        }
        let tail_m2: f64 = tail.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
        Some(Self {
            count: plane.len() as u64,
            mean,
            m2: m2.iter().sum::<f64>() + tail_m2,
            min: f64::from(lo),
            max: f64::from(hi),
        })
    }

    /// Chan, Golub & LeVeque's pairwise combination.
    fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let (n_a, n_b) = (self.count as f64, other.count as f64);
        let n = n_a + n_b;
        let delta = other.mean - self.mean;
        self.mean += delta * (n_b / n);
        self.m2 += other.m2 + delta * delta * (n_a * n_b / n);
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    fn finish(&self) -> ChannelStats {
        if self.count == 0 {
            // Finite placeholders keep the stats serialisable as JSON.
            return ChannelStats {
                count: 0,
                mean: 0.0,
                std: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        ChannelStats {
            count: self.count,
            mean: self.mean,
            std: (self.m2 / self.count as f64).sqrt(),
            min: self.min,
            max: self.max,
        }
    }
}

/// Partial statistics of a run of training members.
struct ChunkStats {
    channels: Vec<RunningStats>,
    skipped_values: u64,
    /// First (member, raw value) the pre-transform could not handle.
    first_out_of_domain: Option<(usize, f32)>,
}

impl ChunkStats {
    fn new(channels: usize) -> Self {
        Self {
            channels: vec![RunningStats::EMPTY; channels],
            skipped_values: 0,
            first_out_of_domain: None,
        }
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.channels.iter_mut().zip(&other.channels) {
            a.merge(b);
        }
        self.skipped_values += other.skipped_values;
        self.first_out_of_domain = self.first_out_of_domain.or(other.first_out_of_domain);
    }
}

fn accumulate_chunk(
    source: &dyn MemberSource,
    members: &[usize],
    shape: Shape,
    pre: PreTransform,
) -> DataResult<ChunkStats> {
    let mut stats = ChunkStats::new(shape.channels);
    let mut buf = vec![0.0f32; shape.len()];
    for &member in members {
        source.read_f32(member, &mut buf)?;
        if let PreTransform::Log { epsilon } = pre
            && stats.first_out_of_domain.is_none()
            && let Some(&bad) = buf.iter().find(|&&x| x.is_finite() && x + epsilon <= 0.0)
        {
            stats.first_out_of_domain = Some((member, bad));
        }
        if pre != PreTransform::None {
            buf.iter_mut().for_each(|v| *v = pre.forward(*v));
        }
        for (acc, plane) in stats
            .channels
            .iter_mut()
            .zip(buf.chunks_exact(shape.plane_len()))
        {
            let plane_stats = RunningStats::of_plane(plane);
            stats.skipped_values += (plane.len() as u64) - plane_stats.count;
            acc.merge(&plane_stats);
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chan_merge_matches_direct_statistics() {
        // Large offset and small spread: where a naive Σx² loses every digit.
        let values: Vec<f32> = (0..10_000)
            .map(|i| 1.0e4 + ((i * 7919) % 1000) as f32 * 1e-2)
            .collect();
        let direct = RunningStats::of_plane(&values);
        let mut merged = RunningStats::EMPTY;
        for chunk in values.chunks(37) {
            merged.merge(&RunningStats::of_plane(chunk));
        }
        assert_eq!(merged.count, direct.count);
        assert!((merged.mean - direct.mean).abs() < 1e-9 * direct.mean);
        assert!((merged.m2 - direct.m2).abs() < 1e-9 * direct.m2);
        assert_eq!((merged.min, merged.max), (direct.min, direct.max));
    }

    #[test]
    fn finite_fast_path_matches_the_general_path() {
        let plane: Vec<f32> = (0..1003).map(|i| ((i * 37) % 101) as f32 - 50.5).collect();
        let fast = RunningStats::of_finite_plane(&plane).unwrap();
        let mut with_nan = plane.clone();
        with_nan.push(f32::NAN); // forces the general path over the same finite values
        assert!(RunningStats::of_finite_plane(&with_nan).is_none());
        let general = RunningStats::of_plane(&with_nan);
        assert_eq!(fast.count, general.count);
        assert!((fast.mean - general.mean).abs() < 1e-12);
        assert!((fast.m2 - general.m2).abs() < 1e-9 * general.m2);
        assert_eq!((fast.min, fast.max), (general.min, general.max));
        assert_eq!((fast.min, fast.max), (-50.5, 49.5));
    }

    #[test]
    fn plane_statistics_skip_non_finite_values() {
        let stats = RunningStats::of_plane(&[1.0, f32::NAN, 3.0, f32::INFINITY]);
        assert_eq!(stats.count, 2);
        assert_eq!(stats.mean, 2.0);
        assert_eq!(stats.m2, 2.0);
        assert_eq!((stats.min, stats.max), (1.0, 3.0));
    }

    #[test]
    fn degenerate_channel_maps_to_zero_not_nan() {
        let norm = Normalization {
            config: NormalizationConfig::default(),
            channels: vec![RunningStats::of_plane(&[5.0; 4]).finish()],
            fitted_members: 1,
            skipped_values: 0,
        };
        let mut member = [5.0f32; 4];
        norm.apply(&mut member, Shape::new(1, 2, 2));
        assert_eq!(member, [0.0; 4]);
    }

    #[test]
    fn empty_channel_serialises_as_json() {
        let norm = Normalization {
            config: NormalizationConfig::default(),
            channels: vec![RunningStats::EMPTY.finish()],
            fitted_members: 1,
            skipped_values: 4,
        };
        let json = serde_json::to_string(&norm).unwrap();
        let back: Normalization = serde_json::from_str(&json).unwrap();
        assert_eq!(back, norm);
    }
}
