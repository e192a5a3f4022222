//! Features of members for when no trained model exists yet, both from average-pooled
//! members:
//! - [`PixelFeatures`]: PCA to 50 components of members pooled to at most 32 px a side (the
//!   app's first map; label spreading on data whose classes sit at fixed places, such as
//!   digits);
//! - [`SpectrumFeatures`]: the power spectrum, of members pooled to at most 80 px a side,
//!   binned by frequency and orientation,
//!   translation- and contrast-invariant (label spreading on stochastic fields, such as
//!   channel structures, whose classes differ in orientation and scale, not in position).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rayon::prelude::*;

use super::error::{ClassifyError, ClassifyResult};
use crate::data::{Ensemble, Shape};
use crate::error::DataError;
use crate::projection::Pca;
use crate::task::TaskControl;

/// Members are shrunk to at most this side before PCA.
pub const PIXEL_FEATURE_SIDE_PX: usize = 32;
/// Principal components kept.
pub const PIXEL_FEATURE_COMPONENTS: usize = 50;
/// The PCA is fitted on at most this many members (evenly spaced): more changes the
/// components little and would hold a 135K-member ensemble's pooled pixels in memory at once.
const FIT_MAX_MEMBERS: usize = 20_000;
/// Members pooled and turned into features per step, at most: enough to keep every core busy
/// and to report progress often.
const CHUNK_MEMBERS: usize = 4096;
/// Pooled values held per step, at most (32 MiB): a chunk of 4,096 three-channel members
/// pooled to 80 px a side would hold 300 MB.
const CHUNK_MAX_VALUES: usize = 1 << 23;

/// A fitted pooling + PCA, to apply to any member of the same shape.
#[derive(Debug, Clone)]
pub struct PixelFeatures {
    pooling: Pooling,
    pca: Pca,
}

impl PixelFeatures {
    /// Fits on `members` of `ensemble` (at most 20,000 of them, evenly spaced) and returns the
    /// features of all `members`, one row each.
    pub fn fit_transform(
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<(Self, Array2<f32>)> {
        let pooling = Pooling::for_shape(ensemble.shape(), PIXEL_FEATURE_SIDE_PX);
        let components = PIXEL_FEATURE_COMPONENTS
            .min(pooling.dim())
            .min(members.len().saturating_sub(1));
        if components < 2 {
            return Err(ClassifyError::Invalid(format!(
                "{}: {} members are too few for pixel features",
                ensemble.origin(),
                members.len()
            )));
        }
        let stride = members.len().div_ceil(FIT_MAX_MEMBERS).max(1);
        let fit_members: Vec<usize> = members.iter().copied().step_by(stride).collect();
        let pixels = pooling.pixels(ensemble, &fit_members, control)?;
        let pca = Pca::fit(pixels.view(), components, control).map_err(analysis)?;
        let features = Self { pooling, pca };
        let rows = match stride {
            1 => features.pca.transform(pixels.view()).map_err(analysis)?,
            _ => features.transform(ensemble, members, control)?,
        };
        Ok((features, rows))
    }

    /// Features of `members` of `ensemble`, which must have the shape fitted on.
    pub fn transform(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<Array2<f32>> {
        self.pooling.check_shape(ensemble, "pixel")?;
        let width = self.pca.n_components();
        self.pooling.chunked(
            ensemble,
            members,
            width,
            "pixel features",
            control,
            |pixels, mut out| {
                out.assign(&self.pca.transform(pixels).map_err(analysis)?);
                Ok(())
            },
        )
    }
}

/// Block averaging of members of one shape down to at most a given side.
#[derive(Debug, Clone, Copy)]
struct Pooling {
    member_shape: Shape,
    /// Side of the pooled blocks, in pixels.
    factor: usize,
    /// Pooled height and width.
    pooled: (usize, usize),
}

impl Pooling {
    fn for_shape(member_shape: Shape, max_side_px: usize) -> Self {
        let factor = member_shape
            .height
            .max(member_shape.width)
            .div_ceil(max_side_px)
            .max(1);
        Self {
            member_shape,
            factor,
            pooled: (
                member_shape.height.div_ceil(factor),
                member_shape.width.div_ceil(factor),
            ),
        }
    }

    fn check_shape(&self, ensemble: &Ensemble, what: &str) -> ClassifyResult<()> {
        if ensemble.shape() == self.member_shape {
            return Ok(());
        }
        Err(DataError::new(
            ensemble.origin(),
            format!(
                "members are {}, but the {what} features were fitted on {}",
                ensemble.shape(),
                self.member_shape
            ),
        )
        .into())
    }

    fn dim(&self) -> usize {
        self.member_shape.channels * self.pooled.0 * self.pooled.1
    }

    /// `width` features per member of `members`, from their pooled pixels a chunk at a time
    /// (`features(pixels, out)` fills one chunk's rows), so that a large ensemble's pooled
    /// pixels never sit in memory at once.
    fn chunked(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        width: usize,
        what: &'static str,
        control: &TaskControl,
        features: impl Fn(ArrayView2<f32>, ArrayViewMut2<f32>) -> ClassifyResult<()>,
    ) -> ClassifyResult<Array2<f32>> {
        let mut out = Array2::<f32>::zeros((members.len(), width));
        let per_chunk = (CHUNK_MAX_VALUES / self.dim().max(1)).clamp(1, CHUNK_MEMBERS);
        for (chunk, rows) in members.chunks(per_chunk).enumerate() {
            let pixels = self.pixels(ensemble, rows, control)?;
            let first = chunk * per_chunk;
            features(
                pixels.view(),
                out.slice_mut(s![first..first + rows.len(), ..]),
            )?;
            control.check()?;
            control.report(what, first + rows.len(), members.len());
        }
        Ok(out)
    }

    /// Pooled pixels of `members`, one row each.
    fn pixels(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<Array2<f32>> {
        let shape = self.member_shape;
        let mut data = Array2::<f32>::zeros((members.len(), self.dim()));
        data.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(members.par_iter())
            .try_for_each_init(
                || vec![0.0f32; shape.len()],
                |values, (mut row, &member)| -> ClassifyResult<()> {
                    control.check()?;
                    ensemble.source.read_f32(member, values)?;
                    let out = row
                        .as_slice_mut()
                        .ok_or_else(|| ClassifyError::Failed("pooled row not contiguous".into()))?;
                    pool_into(values, shape, self.factor, self.pooled, out);
                    Ok(())
                },
            )?;
        Ok(data)
    }
}

/// Members are shrunk to at most this side before their spectrum. Fine texture matters, pixel
/// noise does not: spreading's pseudo-labels from 50 hand labels (3 seeds, bench/README.md)
/// on `sample:channels` (50 px) were right for 0.84–0.90 of members pooled to 25 px and
/// 0.91–0.92 at 50 px; on `sample:droplets` (160×224) for 0.79–0.84 unpooled, 0.86–0.90 at
/// 80×112, 0.89–0.91 at 54×75 (this side) and 0.86–0.87 at 40×56.
const SPECTRUM_SIDE_PX: usize = 80;
/// Radial bins of the spectrum, up to the Nyquist radius (corners beyond it are left out).
const SPECTRUM_RADIAL_BINS: usize = 8;
/// Orientation bins over [0, π) (the power spectrum of a real image is symmetric).
const SPECTRUM_ANGLE_BINS: usize = 12;
/// Added to each bin's share of the power before the logarithm.
const SPECTRUM_FLOOR: f64 = 1e-6;

/// Translation-invariant texture features of members.
///
/// Per channel of the pooled member, mean removed: the 2-D power spectrum, divided by its
/// total (so contrast does not matter), averaged over 8 radial × 12 orientation bins, then
/// the logarithm, and each column standardised on the members fitted on. On
/// `sample:channels` with 50 hand labels, label spreading over these reaches 0.90–0.94
/// (scikit-learn, 3 seeds) against 0.58–0.60 over pixel PCA.
///
/// At 80 px a side the DFT (two matrix products, see [`Dft`]) costs about 1.6M multiply-adds
/// a channel.
#[derive(Debug, Clone)]
pub struct SpectrumFeatures {
    pooling: Pooling,
    dft: Dft,
    /// Column means and standard deviations of the fitted members.
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl SpectrumFeatures {
    /// Fits the standardisation on `members` of `ensemble` and returns their features.
    pub fn fit_transform(
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<(Self, Array2<f32>)> {
        let pooling = Pooling::for_shape(ensemble.shape(), SPECTRUM_SIDE_PX);
        let dft = Dft::new(pooling.pooled);
        let mut features = Self {
            pooling,
            mean: Vec::new(),
            std: Vec::new(),
            dft,
        };
        let mut rows = features.raw(ensemble, members, control)?;
        if rows.nrows() < 2 {
            return Err(ClassifyError::Invalid(format!(
                "{}: {} members are too few for spectrum features",
                ensemble.origin(),
                members.len()
            )));
        }
        for column in rows.columns() {
            let n = column.len() as f64;
            let mean = column.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = column
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            features.mean.push(mean as f32);
            // A constant column (a bin every member leaves empty) stays at 0.
            features
                .std
                .push(if var > 0.0 { var.sqrt() as f32 } else { 1.0 });
        }
        features.standardise(&mut rows);
        Ok((features, rows))
    }

    /// Features of `members` of `ensemble`, which must have the shape fitted on.
    pub fn transform(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<Array2<f32>> {
        self.pooling.check_shape(ensemble, "spectrum")?;
        let mut rows = self.raw(ensemble, members, control)?;
        self.standardise(&mut rows);
        Ok(rows)
    }

    fn standardise(&self, rows: &mut Array2<f32>) {
        for mut row in rows.rows_mut() {
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }

    /// Log binned spectra of `members`, before standardising.
    fn raw(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<Array2<f32>> {
        let channels = self.pooling.member_shape.channels;
        let bins = self.dft.n_bins;
        let plane = self.pooling.pooled.0 * self.pooling.pooled.1;
        let width = channels * bins;
        self.pooling.chunked(
            ensemble,
            members,
            width,
            "spectrum features",
            control,
            |pixels, mut out| {
                out.axis_iter_mut(Axis(0))
                    .into_par_iter()
                    .zip(pixels.axis_iter(Axis(0)).into_par_iter())
                    .for_each(|(mut features, pooled)| {
                        for c in 0..channels {
                            let channel = pooled.slice(s![c * plane..(c + 1) * plane]);
                            let binned =
                                self.dft.binned_log_power(channel.as_slice().unwrap_or(&[]));
                            features
                                .slice_mut(s![c * bins..(c + 1) * bins])
                                .assign(&ndarray::ArrayView1::from(&binned[..]));
                        }
                    });
                Ok(())
            },
        )
    }
}

/// A separable DFT of `h × w` real images, as two matrix products, with the frequency bins of
/// its output. Written here because no FFT crate is in the tree (rustfft would add itself,
/// strength_reduce, transpose and primal-check). As products, through ndarray's SIMD GEMM,
/// it is no longer latency-bound: bench/README.md has what that changed.
#[derive(Debug, Clone)]
struct Dft {
    size: (usize, usize),
    /// `[w, 2·half]`: cos(2π·kx·x/w) for kx < half, then −sin(2π·kx·x/w). A row times it gives
    /// the real parts of its first `half` frequencies, then their imaginary parts.
    row_basis: Array2<f32>,
    /// `[2h, 2h]`: the complex DFT along columns, [[C, S], [−S, C]] with C = cos(2π·ky·y/h)
    /// and S = sin(2π·ky·y/h), acting on the real parts stacked over the imaginary ones.
    column_basis: Array2<f32>,
    /// Per frequency (ky·w + kx): its bin among the used ones, if any.
    bin_of: Vec<Option<u16>>,
    /// Frequencies per used bin.
    bin_sizes: Vec<u32>,
    n_bins: usize,
}

impl Dft {
    fn new((h, w): (usize, usize)) -> Self {
        // cos and sin of 2π·k·x/n, in f64 so large n keeps its phases exact.
        let phase = |k: usize, x: usize, n: usize| {
            let angle = std::f64::consts::TAU * ((k * x) % n) as f64 / n as f64;
            (angle.cos() as f32, angle.sin() as f32)
        };
        let half = Self::half_width(w);
        let row_basis = Array2::from_shape_fn((w, 2 * half), |(x, j)| match j < half {
            true => phase(j, x, w).0,
            false => -phase(j - half, x, w).1,
        });
        let column_basis = Array2::from_shape_fn((2 * h, 2 * h), |(i, j)| {
            let (c, s) = phase(i % h, j % h, h);
            match (i < h, j < h) {
                (true, true) | (false, false) => c,
                (true, false) => s,
                (false, true) => -s,
            }
        });
        // numpy's fftfreq: k/n below n/2, (k − n)/n from there.
        let frequency = |k: usize, n: usize| {
            let k = k as f64;
            let n_f = n as f64;
            if k < n_f / 2.0 {
                k / n_f
            } else {
                (k - n_f) / n_f
            }
        };
        let mut raw_bin = vec![None; h * w];
        for ky in 0..h {
            for kx in 0..w {
                let (fy, fx) = (frequency(ky, h), frequency(kx, w));
                let radius = (fy * fy + fx * fx).sqrt();
                let ring = (radius / 0.5 * SPECTRUM_RADIAL_BINS as f64) as usize;
                if radius == 0.0 || ring >= SPECTRUM_RADIAL_BINS {
                    continue;
                }
                let angle = fy.atan2(fx).rem_euclid(std::f64::consts::PI);
                let sector = ((angle / std::f64::consts::PI * SPECTRUM_ANGLE_BINS as f64) as usize)
                    .min(SPECTRUM_ANGLE_BINS - 1);
                raw_bin[ky * w + kx] = Some(ring * SPECTRUM_ANGLE_BINS + sector);
            }
        }
        // Only bins some frequency falls in (small images leave some empty).
        let mut used = vec![None; SPECTRUM_RADIAL_BINS * SPECTRUM_ANGLE_BINS];
        let mut bin_sizes = Vec::new();
        let bin_of = raw_bin
            .iter()
            .map(|bin| {
                let bin = (*bin)?;
                let index = *used[bin].get_or_insert_with(|| {
                    bin_sizes.push(0);
                    bin_sizes.len() - 1
                });
                bin_sizes[index] += 1;
                Some(index as u16)
            })
            .collect();
        Self {
            size: (h, w),
            row_basis,
            column_basis,
            bin_of,
            n_bins: bin_sizes.len(),
            bin_sizes,
        }
    }

    /// A real image's spectrum is symmetric, (ky, kx) ~ (−ky, −kx), and both fall in one bin:
    /// only kx ≤ w/2 is computed, the others counted through their mirror.
    fn half_width(w: usize) -> usize {
        w / 2 + 1
    }

    /// ln(mean share of the power + floor) per bin of one `h × w` channel (mean removed).
    fn binned_log_power(&self, channel: &[f32]) -> Vec<f32> {
        let (h, w) = self.size;
        let half = Self::half_width(w);
        let spectrum = self.half_spectrum(channel);
        let mut sums = vec![0.0f64; self.n_bins];
        let mut total = 0.0f64;
        for ky in 0..h {
            for kx in 0..half {
                let (re, im) = (spectrum[[ky, kx]], spectrum[[h + ky, kx]]);
                let mirrored = kx > 0 && 2 * kx != w;
                let power = f64::from(re * re + im * im) * if mirrored { 2.0 } else { 1.0 };
                total += power;
                if let Some(bin) = self.bin_of[ky * w + kx] {
                    sums[bin as usize] += power;
                }
            }
        }
        let total = if total > 0.0 { total } else { 1.0 };
        sums.iter()
            .zip(&self.bin_sizes)
            .map(|(&sum, &size)| (sum / f64::from(size) / total + SPECTRUM_FLOOR).ln() as f32)
            .collect()
    }

    /// The DFT of one `h × w` channel, mean removed, for kx < half: `[2h, half]`, the real
    /// parts over the imaginary ones.
    fn half_spectrum(&self, channel: &[f32]) -> Array2<f32> {
        let (h, w) = self.size;
        let half = Self::half_width(w);
        let mean = channel.iter().sum::<f32>() / channel.len().max(1) as f32;
        let centred = Array2::from_shape_fn((h, w), |(y, x)| channel[y * w + x] - mean);
        // Along rows: [h, 2·half], real parts then imaginary parts; restacked to
        // [2h, half], real parts over imaginary ones, for the column pass.
        let along_rows = centred.dot(&self.row_basis);
        let mut stacked = Array2::<f32>::zeros((2 * h, half));
        stacked
            .slice_mut(s![..h, ..])
            .assign(&along_rows.slice(s![.., ..half]));
        stacked
            .slice_mut(s![h.., ..])
            .assign(&along_rows.slice(s![.., half..]));
        // Along columns.
        self.column_basis.dot(&stacked)
    }
}

fn analysis(e: crate::analysis::AnalysisError) -> ClassifyError {
    match e {
        crate::analysis::AnalysisError::Cancelled => ClassifyError::Cancelled,
        other => ClassifyError::Invalid(other.to_string()),
    }
}

/// Mean of each `factor`×`factor` block (partial blocks at the edges averaged over what
/// exists), NaN treated as 0 so a bad pixel cannot poison the features.
fn pool_into(values: &[f32], shape: Shape, factor: usize, (h, w): (usize, usize), out: &mut [f32]) {
    let plane = shape.height * shape.width;
    for c in 0..shape.channels {
        for oy in 0..h {
            for ox in 0..w {
                let (mut sum, mut count) = (0.0f32, 0u32);
                for y in oy * factor..((oy + 1) * factor).min(shape.height) {
                    for x in ox * factor..((ox + 1) * factor).min(shape.width) {
                        let v = values[c * plane + y * shape.width + x];
                        sum += if v.is_finite() { v } else { 0.0 };
                        count += 1;
                    }
                }
                if let Some(slot) = out.get_mut(c * h * w + oy * w + ox) {
                    *slot = sum / count.max(1) as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_averages_blocks_and_partial_edges() {
        let shape = Shape::new(1, 3, 3);
        let values: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut out = vec![0.0; 4];
        pool_into(&values, shape, 2, (2, 2), &mut out);
        assert_eq!(out, [3.0, 4.5, 7.5, 9.0]);
    }

    #[test]
    fn spectrum_puts_stripes_in_one_bin_and_ignores_shifts_and_contrast() {
        // Stripes along x (frequency 3/16 cycles per pixel): all power at (0, ±3).
        let (h, w) = (16, 16);
        let dft = Dft::new((h, w));
        let stripes: Vec<f32> = (0..h * w)
            .map(|i| (std::f32::consts::TAU * 3.0 * (i % w) as f32 / w as f32).cos())
            .collect();
        let binned = dft.binned_log_power(&stripes);
        let hot = dft.bin_of[3].unwrap() as usize;
        assert_eq!(hot, dft.bin_of[w - 3].unwrap() as usize, "±kx share a bin");
        // Bin `hot` holds (0, ±3) and whatever else falls in its ring sector; all the power
        // is there, so its share is 1 / frequencies in it.
        let expected = (1.0 / f64::from(dft.bin_sizes[hot]) + SPECTRUM_FLOOR).ln();
        assert!(
            (f64::from(binned[hot]) - expected).abs() < 1e-4,
            "{binned:?}"
        );
        assert!(
            binned
                .iter()
                .enumerate()
                .all(|(b, &v)| b == hot || v < -13.0)
        );
        // A circular shift and another contrast change nothing.
        let shifted: Vec<f32> = (0..h * w)
            .map(|i| 2.5 * stripes[(i / w) * w + (i % w + 5) % w] + 7.0)
            .collect();
        for (a, b) in binned.iter().zip(dft.binned_log_power(&shifted)) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn half_spectrum_matches_a_direct_f64_dft_on_odd_and_even_sizes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (h, w) in [(1, 1), (5, 7), (8, 8), (6, 9), (13, 4), (40, 56)] {
            let channel: Vec<f32> = (0..h * w).map(|_| rng.random_range(-2.0..3.0)).collect();
            let spectrum = Dft::new((h, w)).half_spectrum(&channel);
            let half = w / 2 + 1;
            assert_eq!(spectrum.dim(), (2 * h, half));
            let mean = channel.iter().map(|&v| f64::from(v)).sum::<f64>() / (h * w) as f64;
            let scale = (h * w) as f64;
            for ky in 0..h {
                for kx in 0..half {
                    let (mut re, mut im) = (0.0f64, 0.0f64);
                    for y in 0..h {
                        for x in 0..w {
                            let angle = std::f64::consts::TAU
                                * ((ky * y) as f64 / h as f64 + (kx * x) as f64 / w as f64);
                            let v = f64::from(channel[y * w + x]) - mean;
                            re += v * angle.cos();
                            im -= v * angle.sin();
                        }
                    }
                    for (got, want) in [(spectrum[[ky, kx]], re), (spectrum[[h + ky, kx]], im)] {
                        assert!(
                            (f64::from(got) - want).abs() < 1e-5 * scale,
                            "{h}×{w} at ({ky}, {kx}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn spectrum_features_are_standardised_and_refuse_another_shape() {
        let ensemble = crate::samples::open("channels").unwrap();
        let members: Vec<usize> = (0..200).collect();
        let control = TaskControl::new();
        let (features, rows) =
            SpectrumFeatures::fit_transform(&ensemble, &members, &control).unwrap();
        assert_eq!(rows.nrows(), 200);
        for column in rows.columns() {
            let mean = column.iter().sum::<f32>() / 200.0;
            assert!(mean.abs() < 1e-3, "{mean}");
        }
        let mnist = crate::samples::open("mnist").unwrap();
        let err = features.transform(&mnist, &[0], &control).unwrap_err();
        assert!(
            err.to_string().contains("spectrum features were fitted on"),
            "{err}"
        );
    }

    #[test]
    fn features_of_a_subsampled_fit_match_a_separate_transform() {
        let ensemble = crate::samples::open("channels").unwrap();
        let members: Vec<usize> = (0..300).collect();
        let control = TaskControl::new();
        let (features, rows) = PixelFeatures::fit_transform(&ensemble, &members, &control).unwrap();
        assert_eq!(rows.dim(), (300, PIXEL_FEATURE_COMPONENTS));
        let again = features
            .transform(&ensemble, &members[10..20], &control)
            .unwrap();
        for (a, b) in again.iter().zip(rows.slice(s![10..20, ..]).iter()) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
        let cancelled = TaskControl::new();
        cancelled.cancel();
        assert!(matches!(
            features.transform(&ensemble, &members, &cancelled),
            Err(ClassifyError::Cancelled)
        ));
    }
}
