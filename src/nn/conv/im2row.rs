//! im2col in pixel-major form ("im2row") for convolutions with many input channels, and its
//! adjoint.
//!
//! The planar im2col ([`super::im2col`]) writes one row per input channel and kernel tap: at
//! 28×28 and 64 channels those are runs of 4 to 14 values, copied one scalar at a time, and
//! im2col and col2im took a third of a one-thread training step. Here the image is first
//! turned channels-last (`[H·W, C_in]`, one pass), and each output pixel's row of the matrix
//! is `k_h · k_w` runs of `C_in` contiguous values, one per tap: whole-vector copies of 256
//! bytes at 64 channels, or zeros where the tap falls on the padding. The weight is read in
//! the matching `[C_out, k_h, k_w, C_in]` order ([`to_tap_major`]).

use super::lowering::ConvDims;

/// The fewest input channels for which the pixel-major form is used: below that its runs are
/// as short as the planar form's (a one-channel layer would copy one value per tap).
const MIN_CHANNELS: usize = 16;

/// The widest output (pixels) for which the pixel-major form is used. Past it the planar
/// form's rows are long copies already, and the two layout changes (a pass each over images
/// that no longer fit in cache) cost more than they save: at 160×224, 64 channels, the
/// 80×112 ↔ 40×56 layers took 14–21 % longer pixel-major, the 20×28 ↔ 10×14 ones 13–26 % less
/// (bench/README.md).
const MAX_OUTPUT_WIDTH_PX: usize = 16;

/// Whether a convolution with `c_in` input channels and outputs `output_px` wide runs
/// pixel-major.
pub(super) fn applies(c_in: usize, output_px: [usize; 2]) -> bool {
    c_in >= MIN_CHANNELS && output_px[1] <= MAX_OUTPUT_WIDTH_PX
}

/// A source index that marks a tap on the zero padding.
const PADDING: u32 = u32::MAX;

/// im2row and row2im for every image of one convolution: which input pixel each output pixel
/// reads at each tap, computed once per convolution, and one image's channels-last copy,
/// reused.
#[derive(Debug)]
pub(super) struct Im2row {
    channels: usize,
    /// Input pixels of one image (`H · W`).
    pixels: usize,
    taps: usize,
    /// For output pixel `p` and tap `t` (kernel row-major), at `p · taps + t`: the input pixel
    /// read, or [`PADDING`].
    sources: Vec<u32>,
    /// One image, channels last: `[H · W, C_in]`.
    channels_last: Vec<f32>,
}

impl Im2row {
    pub(super) fn new(dims: &ConvDims) -> Self {
        let geometry = dims.geometry;
        let [h, w] = dims.input_px;
        let [oh, ow] = dims.output_px;
        let [kh, kw] = geometry.kernel;
        assert!(
            h * w < PADDING as usize,
            "im2row: {h}×{w} input pixels do not fit a u32 index"
        );
        let along = |axis: usize, out: usize, tap: usize, len: usize| {
            let at = (out * geometry.stride[axis] + tap) as isize - geometry.padding[axis] as isize;
            (0..len as isize).contains(&at).then_some(at as usize)
        };
        let mut sources = Vec::with_capacity(oh * ow * kh * kw);
        for oy in 0..oh {
            for ox in 0..ow {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let source = match (along(0, oy, ky, h), along(1, ox, kx, w)) {
                            (Some(iy), Some(ix)) => (iy * w + ix) as u32,
                            _ => PADDING,
                        };
                        sources.push(source);
                    }
                }
            }
        }
        Self {
            channels: dims.c_in,
            pixels: h * w,
            taps: kh * kw,
            sources,
            channels_last: vec![0.0; h * w * dims.c_in],
        }
    }

    /// Values in one row: one per kernel tap and input channel (`K`).
    fn row_len(&self) -> usize {
        self.taps * self.channels
    }

    /// One image `x` `[C_in, H, W]` → its rows `[H_out · W_out, K]` (tap-major, channels
    /// fastest), contiguous at the start of `rows`.
    pub(super) fn im2row(&mut self, x: &[f32], rows: &mut [f32]) {
        to_channels_last(x, self.channels, self.pixels, &mut self.channels_last);
        let c = self.channels;
        let k = self.row_len();
        let rows = rows.chunks_exact_mut(k);
        for (row, sources) in rows.zip(self.sources.chunks_exact(self.taps)) {
            for (values, &source) in row.chunks_exact_mut(c).zip(sources) {
                match source {
                    PADDING => values.fill(0.0),
                    _ => values.copy_from_slice(&self.channels_last[source as usize * c..][..c]),
                }
            }
        }
    }

    /// The adjoint of [`Self::im2row`]: one image's rows (contiguous at the start of `rows`)
    /// summed into `x` `[C_in, H, W]` (overwritten).
    pub(super) fn row2im(&mut self, rows: &[f32], x: &mut [f32]) {
        let c = self.channels;
        let k = self.row_len();
        self.channels_last.fill(0.0);
        for (row, sources) in rows
            .chunks_exact(k)
            .zip(self.sources.chunks_exact(self.taps))
        {
            for (values, &source) in row.chunks_exact(c).zip(sources) {
                if source != PADDING {
                    let sums = &mut self.channels_last[source as usize * c..][..c];
                    sums.iter_mut().zip(values).for_each(|(s, v)| *s += v);
                }
            }
        }
        from_channels_last(&self.channels_last, self.channels, self.pixels, x);
    }
}

/// The side of the square tiles the layout changes go through: 4 × 4, one SSE register per
/// tile row on x86-64 (a value-at-a-time loop spent most of its time on index arithmetic).
const TILE: usize = 4;

/// `planes` `[C, P]` → `out` `[P, C]`.
fn to_channels_last(planes: &[f32], channels: usize, pixels: usize, out: &mut [f32]) {
    transpose(planes, channels, pixels, out);
}

/// `pixels_major` `[P, C]` → `planes` `[C, P]` (the inverse of [`to_channels_last`]).
fn from_channels_last(pixels_major: &[f32], channels: usize, pixels: usize, planes: &mut [f32]) {
    transpose(pixels_major, pixels, channels, planes);
}

/// `src` `[rows, cols]` (row-major) → `dst` `[cols, rows]`, in [`TILE`]-square tiles and
/// plain loops along the edges.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert!(
        src.len() >= rows * cols && dst.len() >= rows * cols,
        "transpose: buffers smaller than {rows}×{cols}"
    );
    let (full_rows, full_cols) = (rows - rows % TILE, cols - cols % TILE);
    for r0 in (0..full_rows).step_by(TILE) {
        for c0 in (0..full_cols).step_by(TILE) {
            transpose_tile(
                &src[r0 * cols + c0..(r0 + TILE - 1) * cols + c0 + TILE],
                cols,
                &mut dst[c0 * rows + r0..(c0 + TILE - 1) * rows + r0 + TILE],
                rows,
            );
        }
        for r in r0..r0 + TILE {
            for c in full_cols..cols {
                dst[c * rows + r] = src[r * cols + c];
            }
        }
    }
    for r in full_rows..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// One [`TILE`]-square tile: `src` starts at the tile's first value, its rows `src_stride`
/// apart; `dst` likewise. Both slices end at their tile's last value.
#[cfg(target_arch = "x86_64")]
fn transpose_tile(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
    use std::arch::x86_64::{_MM_TRANSPOSE4_PS, _mm_loadu_ps, _mm_storeu_ps};
    assert!(
        src.len() > 3 * src_stride + 3 && dst.len() > 3 * dst_stride + 3,
        "transpose: a tile outside its buffers"
    );
    // SAFETY: SSE is part of x86-64's baseline; every load and store reads or writes 4 values
    // at offsets ≤ 3 · stride, inside the slices (asserted above).
    unsafe {
        let at = |row: usize| src.as_ptr().add(row * src_stride);
        let (mut r0, mut r1, mut r2, mut r3) = (
            _mm_loadu_ps(at(0)),
            _mm_loadu_ps(at(1)),
            _mm_loadu_ps(at(2)),
            _mm_loadu_ps(at(3)),
        );
        _MM_TRANSPOSE4_PS(&mut r0, &mut r1, &mut r2, &mut r3);
        let to = dst.as_mut_ptr();
        _mm_storeu_ps(to, r0);
        _mm_storeu_ps(to.add(dst_stride), r1);
        _mm_storeu_ps(to.add(2 * dst_stride), r2);
        _mm_storeu_ps(to.add(3 * dst_stride), r3);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn transpose_tile(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
    for i in 0..TILE {
        for j in 0..TILE {
            dst[j * dst_stride + i] = src[i * src_stride + j];
        }
    }
}

/// A weight `[C_out, C_in, T]` (T taps) in the pixel-major rows' order `[C_out, T, C_in]`.
pub(super) fn to_tap_major(weight: &[f32], c_out: usize, c_in: usize, taps: usize) -> Vec<f32> {
    transpose_each(weight, c_out, c_in, taps)
}

/// The inverse of [`to_tap_major`]: `[C_out, T, C_in]` → `[C_out, C_in, T]`.
pub(super) fn from_tap_major(weight: &[f32], c_out: usize, c_in: usize, taps: usize) -> Vec<f32> {
    transpose_each(weight, c_out, taps, c_in)
}

/// `count` row-major `[rows, cols]` matrices, one after another → each transposed.
fn transpose_each(matrices: &[f32], count: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; matrices.len()];
    let each = rows * cols;
    if each > 0 {
        for (src, dst) in matrices
            .chunks_exact(each)
            .zip(out.chunks_exact_mut(each))
            .take(count)
        {
            transpose(src, rows, cols, dst);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::lowering::ConvGeometry;
    use super::*;

    #[test]
    fn the_two_layouts_invert_each_other() {
        for (channels, pixels) in [(16, 49), (19, 10), (64, 4), (24, 64), (3, 5)] {
            let planes: Vec<f32> = (0..channels * pixels).map(|v| v as f32).collect();
            let mut last = vec![f32::NAN; planes.len()];
            to_channels_last(&planes, channels, pixels, &mut last);
            // Pixel p, channel c of the planes is at p · C + c.
            let (p, c) = (pixels - 1, channels - 1);
            assert_eq!(last[p * channels + c], planes[c * pixels + p]);
            let mut back = vec![f32::NAN; planes.len()];
            from_channels_last(&last, channels, pixels, &mut back);
            assert_eq!(back, planes);

            let weight: Vec<f32> = (0..3 * channels * 9).map(|v| v as f32).collect();
            let tap_major = to_tap_major(&weight, 3, channels, 9);
            assert_eq!(tap_major[2 * channels + c], weight[c * 9 + 2]);
            assert_eq!(from_tap_major(&tap_major, 3, channels, 9), weight);
        }
    }

    #[test]
    fn a_row_holds_each_taps_channels_or_zeros_on_the_padding() {
        // 16 channels of 3 × 3, 3×3 kernel, stride 2, padding 1 → 2 × 2 outputs.
        let geometry = ConvGeometry {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
        };
        let dims = ConvDims {
            batch: 1,
            c_in: 16,
            c_out: 1,
            input_px: [3, 3],
            output_px: [2, 2],
            geometry,
        };
        let x: Vec<f32> = (0..16 * 9).map(|v| v as f32 + 1.0).collect();
        let mut lowering = Im2row::new(&dims);
        let k = 9 * 16;
        let mut rows = vec![f32::NAN; 4 * k];
        lowering.im2row(&x, &mut rows);
        // Output pixel (0, 0): taps (0, *) and (*, 0) are on the padding; tap (1, 1) reads
        // input pixel (0, 0), tap (2, 2) input pixel (1, 1).
        let row0 = &rows[..k];
        assert!(row0[..16].iter().all(|&v| v == 0.0));
        let channel_values = |tap: usize| &row0[tap * 16..][..16];
        let expected = |pixel: usize| (0..16).map(|c| x[c * 9 + pixel]).collect::<Vec<_>>();
        assert_eq!(channel_values(4), expected(0));
        assert_eq!(channel_values(8), expected(4));
        assert!(rows.iter().all(|v| !v.is_nan()));
    }
}
