//! im2col and its adjoint col2im for one image, through the stride's phase planes.
//!
//! With stride s, kernel tap k of an axis reads input pixel s·o + k − p for output pixel o:
//! every s-th pixel, a gather that moves one scalar at a time (a third of a CPU training step
//! at 28×28 went to these gathers and the matching scattered adds). Split once into its s × s
//! phase planes — pixel (i, j) to plane (i mod s_h, j mod s_w) at (i div s_h, j div s_w) — the
//! same tap reads a contiguous run of one plane, so every im2col row is a sequence of copies
//! and col2im adds contiguous runs. At stride 1 the image is its own single phase plane.
//! Layers with many channels and narrow outputs, where these runs are still short, use the
//! pixel-major form instead ([`super::im2row`]).

use super::lowering::{ConvDims, ConvGeometry};

/// The phase planes of one `[H, W]` channel plane under a stride `[s_h, s_w]`: `s_h · s_w`
/// planes of `[⌈H / s_h⌉, ⌈W / s_w⌉]`, plane `(py, px)` at `(py · s_w + px) · plane_len`.
#[derive(Debug, Clone, Copy)]
struct PhaseLayout {
    stride: [usize; 2],
    input_px: [usize; 2],
    /// `[⌈H / s_h⌉, ⌈W / s_w⌉]`.
    phase_px: [usize; 2],
}

impl PhaseLayout {
    fn of(dims: &ConvDims) -> Self {
        let stride = dims.geometry.stride;
        let input_px = dims.input_px;
        Self {
            stride,
            input_px,
            phase_px: [0, 1].map(|axis| input_px[axis].div_ceil(stride[axis].max(1))),
        }
    }

    /// At stride 1 the plane is its only phase plane and needs no split.
    fn is_identity(&self) -> bool {
        self.stride == [1, 1]
    }

    fn plane_len(&self) -> usize {
        self.phase_px[0] * self.phase_px[1]
    }

    /// Values in all phase planes of one channel plane.
    fn len(&self) -> usize {
        self.stride[0] * self.stride[1] * self.plane_len()
    }

    fn plane_offset(&self, py: usize, px: usize) -> usize {
        (py * self.stride[1] + px) * self.plane_len()
    }

    /// `plane` `[H, W]` → its phase planes in `phases` (positions past the image's edge keep
    /// whatever they held; no tap reads them).
    fn split(&self, plane: &[f32], phases: &mut [f32]) {
        let [sh, sw] = self.stride;
        let [_, w] = self.input_px;
        let jw = self.phase_px[1];
        // Row iy lies in phase row (iy mod s_h, iy div s_h), counted up without a division.
        let (mut py, mut jy) = (0, 0);
        for row in plane.chunks_exact(w) {
            if sw == 2 {
                let (even, odd) = self.phase_row_pair(phases, py, jy);
                let pairs = row.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    even[w / 2] = *last;
                }
                for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                    *e = pair[0];
                    *o = pair[1];
                }
            } else {
                for px in 0..sw {
                    let dst = &mut phases[self.plane_offset(py, px) + jy * jw..][..jw];
                    for (d, v) in dst.iter_mut().zip(row.iter().skip(px).step_by(sw)) {
                        *d = *v;
                    }
                }
            }
            py += 1;
            if py == sh {
                (py, jy) = (0, jy + 1);
            }
        }
    }

    /// The adjoint of [`Self::split`]: `phases` interleaved back into `plane` `[H, W]`
    /// (overwritten).
    fn merge(&self, phases: &[f32], plane: &mut [f32]) {
        let [sh, sw] = self.stride;
        let [_, w] = self.input_px;
        let jw = self.phase_px[1];
        let (mut py, mut jy) = (0, 0);
        for row in plane.chunks_exact_mut(w) {
            if sw == 2 {
                let even = &phases[self.plane_offset(py, 0) + jy * jw..][..jw];
                let odd = &phases[self.plane_offset(py, 1) + jy * jw..][..jw];
                let mut pairs = row.chunks_exact_mut(2);
                for ((pair, e), o) in pairs.by_ref().zip(even).zip(odd) {
                    pair[0] = *e;
                    pair[1] = *o;
                }
                if let [last] = pairs.into_remainder() {
                    *last = even[w / 2];
                }
            } else {
                for px in 0..sw {
                    let src = &phases[self.plane_offset(py, px) + jy * jw..][..jw];
                    for (v, s) in row.iter_mut().skip(px).step_by(sw).zip(src) {
                        *v = *s;
                    }
                }
            }
            py += 1;
            if py == sh {
                (py, jy) = (0, jy + 1);
            }
        }
    }

    /// Row `jy` of phase planes `(py, 0)` and `(py, 1)` (stride 2 across), both writable.
    fn phase_row_pair<'a>(
        &self,
        phases: &'a mut [f32],
        py: usize,
        jy: usize,
    ) -> (&'a mut [f32], &'a mut [f32]) {
        let jw = self.phase_px[1];
        let (first, second) = phases.split_at_mut(self.plane_offset(py, 1));
        (
            &mut first[self.plane_offset(py, 0) + jy * jw..][..jw],
            &mut second[jy * jw..][..jw],
        )
    }
}

/// What kernel tap `tap` of one axis reads: output pixels `first..end` see the image (the
/// others the zero padding), and output pixel `o` reads pixel `o + shift` of phase `phase` —
/// since `s·o + tap − pad = s·(o + shift) + phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TapSpan {
    first: usize,
    end: usize,
    phase: usize,
    shift: isize,
}

impl TapSpan {
    /// Tap `tap` of a kernel with padding `pad` and stride `stride` over `len` input pixels
    /// and `out_len` output pixels.
    fn of(tap: usize, pad: usize, stride: usize, len: usize, out_len: usize) -> Self {
        // o·s + tap ≥ pad  ⇔  o ≥ ceil((pad − tap) / s)
        let first = pad.saturating_sub(tap).div_ceil(stride).min(out_len);
        // o·s + tap − pad < len  ⇔  o < ceil((len + pad − tap) / s)
        let end = (len + pad)
            .saturating_sub(tap)
            .div_ceil(stride)
            .min(out_len);
        let offset = tap as isize - pad as isize;
        Self {
            first,
            end: end.max(first),
            phase: offset.rem_euclid(stride as isize) as usize,
            shift: offset.div_euclid(stride as isize),
        }
    }

    /// The first phase pixel a valid output pixel reads (in range: `first..end` keeps the
    /// input inside the image).
    fn start(&self) -> usize {
        (self.first as isize + self.shift) as usize
    }

    fn len(&self) -> usize {
        self.end - self.first
    }

    /// Whether this column tap reads whole phase rows of `phase_len` pixels into whole output
    /// rows of `out_len`: then a tap's valid rows are one contiguous block on both sides, one
    /// copy instead of a copy per row (for 3×3 stride 2 padding 1, the middle column and, at
    /// even widths, the right one).
    fn reads_whole_rows(&self, out_len: usize, phase_len: usize) -> bool {
        self.first == 0 && self.end == out_len && self.shift == 0 && phase_len == out_len
    }
}

/// im2col and col2im for every image of one convolution: the phase layout and the tap spans,
/// computed once per convolution, and the phase planes of one channel plane, reused.
#[derive(Debug)]
pub(super) struct Im2col {
    dims: ConvDims,
    layout: PhaseLayout,
    /// The spans of the kernel's row taps and column taps.
    taps: [Vec<TapSpan>; 2],
    phases: Vec<f32>,
}

impl Im2col {
    pub(super) fn new(dims: &ConvDims) -> Self {
        let layout = PhaseLayout::of(dims);
        let ConvGeometry {
            kernel,
            stride,
            padding,
        } = dims.geometry;
        let taps = [0, 1].map(|axis| {
            (0..kernel[axis])
                .map(|tap| {
                    TapSpan::of(
                        tap,
                        padding[axis],
                        stride[axis],
                        dims.input_px[axis],
                        dims.output_px[axis],
                    )
                })
                .collect()
        });
        let phases = match layout.is_identity() {
            true => Vec::new(),
            false => vec![0.0; layout.len()],
        };
        Self {
            dims: *dims,
            layout,
            taps,
            phases,
        }
    }

    /// One image `x` `[C_in, H, W]` → the im2col rows `[C_in·k_h·k_w, H_out·W_out]`, row `r`
    /// at `col[r · row_stride..]` (a group's matrices lie side by side).
    pub(super) fn im2col(&mut self, x: &[f32], col: &mut [f32], row_stride: usize) {
        let Self {
            dims,
            layout,
            taps: [rows, columns],
            phases,
        } = self;
        let [h, w] = dims.input_px;
        let [oh, ow] = dims.output_px;
        let jw = layout.phase_px[1];
        let mut r = 0;
        for plane in x.chunks_exact(h * w) {
            let source: &[f32] = match layout.is_identity() {
                true => plane,
                false => {
                    layout.split(plane, phases);
                    phases
                }
            };
            for ty in rows.iter() {
                for tx in columns.iter() {
                    let row = &mut col[r * row_stride..][..oh * ow];
                    r += 1;
                    let phase =
                        &source[layout.plane_offset(ty.phase, tx.phase)..][..layout.plane_len()];
                    row[..ty.first * ow].fill(0.0);
                    row[ty.end * ow..].fill(0.0);
                    if tx.reads_whole_rows(ow, jw) {
                        let rows = ty.first * ow..ty.end * ow;
                        let start = ty.start() * jw;
                        row[rows.clone()].copy_from_slice(&phase[start..start + rows.len()]);
                        continue;
                    }
                    for (oy, out) in row
                        .chunks_exact_mut(ow)
                        .enumerate()
                        .take(ty.end)
                        .skip(ty.first)
                    {
                        zero_padding(&mut out[..tx.first]);
                        zero_padding(&mut out[tx.end..]);
                        let jy = (oy as isize + ty.shift) as usize;
                        copy_run(
                            &mut out[tx.first..tx.end],
                            &phase[jy * jw + tx.start()..][..tx.len()],
                        );
                    }
                }
            }
        }
    }

    /// The adjoint of [`Self::im2col`]: the rows (row `r` at `col[r · row_stride..]`) summed
    /// into one image `x` `[C_in, H, W]` (overwritten).
    pub(super) fn col2im(&mut self, col: &[f32], row_stride: usize, x: &mut [f32]) {
        let Self {
            dims,
            layout,
            taps: [rows, columns],
            phases,
        } = self;
        let [h, w] = dims.input_px;
        let [oh, ow] = dims.output_px;
        let jw = layout.phase_px[1];
        let mut r = 0;
        for plane in x.chunks_exact_mut(h * w) {
            let sums: &mut [f32] = match layout.is_identity() {
                true => &mut *plane,
                false => phases,
            };
            sums.fill(0.0);
            for ty in rows.iter() {
                for tx in columns.iter() {
                    let row = &col[r * row_stride..][..oh * ow];
                    r += 1;
                    let offset = layout.plane_offset(ty.phase, tx.phase);
                    let phase = &mut sums[offset..offset + layout.plane_len()];
                    if tx.reads_whole_rows(ow, jw) {
                        let rows = &row[ty.first * ow..ty.end * ow];
                        let start = ty.start() * jw;
                        let dst = &mut phase[start..start + rows.len()];
                        dst.iter_mut().zip(rows).for_each(|(d, s)| *d += s);
                        continue;
                    }
                    for (oy, src) in row.chunks_exact(ow).enumerate().take(ty.end).skip(ty.first) {
                        let jy = (oy as isize + ty.shift) as usize;
                        let dst = &mut phase[jy * jw + tx.start()..][..tx.len()];
                        dst.iter_mut()
                            .zip(&src[tx.first..tx.end])
                            .for_each(|(d, s)| *d += s);
                    }
                }
            }
            if !layout.is_identity() {
                layout.merge(phases, plane);
            }
        }
    }
}

/// Zeroes the few values of a row that fall on the padding (none or one for a 3×3 kernel): a
/// `fill` is a `memset` call even for an empty span, and at 28×28 those calls cost more than
/// the rest of the row's copy.
fn zero_padding(span: &mut [f32]) {
    match span {
        [] => {}
        [value] => *value = 0.0,
        _ => span.fill(0.0),
    }
}

/// Copies the run of one output row (a few to a few hundred values) in 8-value blocks, the
/// last overlapping the one before: a `memcpy` call per row cost more than the copy itself at
/// 28×28, where rows are 4 to 14 values.
fn copy_run(dst: &mut [f32], src: &[f32]) {
    const BLOCK: usize = 8;
    let n = dst.len();
    assert_eq!(n, src.len(), "copy_run: lengths differ");
    if n < BLOCK {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
        return;
    }
    let mut start = 0;
    while start + BLOCK <= n {
        let block: &[f32; BLOCK] = src[start..start + BLOCK].try_into().expect("8 values");
        dst[start..start + BLOCK].copy_from_slice(block);
        start += BLOCK;
    }
    if start < n {
        dst[n - BLOCK..].copy_from_slice(&src[n - BLOCK..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(stride: [usize; 2], input_px: [usize; 2]) -> PhaseLayout {
        PhaseLayout {
            stride,
            input_px,
            phase_px: [0, 1].map(|a| input_px[a].div_ceil(stride[a])),
        }
    }

    #[test]
    fn short_runs_are_copied_and_padding_zeroed_whatever_their_length() {
        for n in (0..=20).chain([63, 64, 100]) {
            let src: Vec<f32> = (0..n).map(|v| v as f32 + 0.5).collect();
            let mut dst = vec![f32::NAN; n];
            copy_run(&mut dst, &src);
            assert_eq!(dst, src, "{n} values");
            zero_padding(&mut dst);
            assert!(dst.iter().all(|&v| v == 0.0), "{n} values");
        }
    }

    #[test]
    fn split_then_merge_gives_the_plane_back_for_odd_and_even_sizes() {
        for (stride, px) in [
            ([2, 2], [5, 7]),
            ([2, 2], [4, 6]),
            ([3, 2], [7, 5]),
            ([1, 3], [4, 8]),
        ] {
            let layout = layout(stride, px);
            let plane: Vec<f32> = (0..px[0] * px[1]).map(|v| v as f32).collect();
            let mut phases = vec![f32::NAN; layout.len()];
            layout.split(&plane, &mut phases);
            let mut back = vec![0.0; plane.len()];
            layout.merge(&phases, &mut back);
            assert_eq!(back, plane, "stride {stride:?}, {px:?}");
        }
    }

    #[test]
    fn a_phase_plane_holds_every_stride_th_pixel() {
        // 5 × 5 at stride 2: plane (1, 0) holds rows 1, 3 and columns 0, 2, 4.
        let layout = layout([2, 2], [5, 5]);
        let plane: Vec<f32> = (0..25).map(|v| v as f32).collect();
        let mut phases = vec![0.0; layout.len()];
        layout.split(&plane, &mut phases);
        let p10 = &phases[layout.plane_offset(1, 0)..][..layout.plane_len()];
        assert_eq!(&p10[..3], &[5.0, 7.0, 9.0]);
        assert_eq!(&p10[3..6], &[15.0, 17.0, 19.0]);
    }

    #[test]
    fn a_tap_reads_its_phase_at_the_shifted_pixel_and_only_inside_the_image() {
        let (len, out_len) = (9, 5);
        for stride in 1..4 {
            for pad in 0..3 {
                for tap in 0..5 {
                    let span = TapSpan::of(tap, pad, stride, len, out_len);
                    for o in 0..out_len {
                        let input = (o * stride + tap) as isize - pad as isize;
                        let phase_pixel = o as isize + span.shift;
                        assert_eq!(input, stride as isize * phase_pixel + span.phase as isize);
                        let inside = (0..len as isize).contains(&input);
                        assert_eq!((span.first..span.end).contains(&o), inside, "{o}");
                    }
                }
            }
        }
    }
}
