//! Convolutions lowered to im2col + GEMM on `f32` buffers, batch-parallel with rayon: the
//! forward pass, the input gradient and the weight gradient of a dense 2-D convolution
//! (groups 1, dilation 1). A transposed convolution is the input gradient of the convolution
//! that shares its weights, so these three kernels cover both layers and both directions.
//!
//! Written here because burn-flex 0.22.1 has no dedicated backward kernels: its weight
//! gradient runs a forward conv whose kernel is the whole output gradient (one skinny GEMM,
//! parallel over at most C_in tasks) and every conv copies NCHW→NHWC on one thread
//! (bench/README.md, "Where the time goes"). The GEMMs are the `gemm` crate's, the one
//! burn-flex itself uses; only the data movement around them is ours: the im2col matrix is
//! built planar ([`super::im2col`]) or, for many channels and narrow outputs, pixel-major
//! ([`super::im2row`]).
//!
//! Conventions ("conv" view): `x` is the large side `[B, C_in, H, W]`, `y` the small side
//! `[B, C_out, H_out, W_out]`, the weight `[C_out, C_in, k_h, k_w]` — for a transposed conv the
//! same buffers with the roles of `x` and `y` swapped, and its `[C_in, C_out, k_h, k_w]` weight
//! read as is. All buffers are contiguous, row-major.

use std::cell::Cell;

use gemm::Parallelism;
use rayon::prelude::*;

use super::epilogue::Epilogue;
use super::im2col::Im2col;
use super::im2row::{self, Im2row};

/// Kernel size, stride and zero padding of a dense 2-D convolution (dilation 1, groups 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl ConvGeometry {
    /// Output size of the convolution over an input of `input_px` (floor division, as burn
    /// and PyTorch); `None` when the padded input is smaller than the kernel.
    pub fn output_px(&self, input_px: [usize; 2]) -> Option<[usize; 2]> {
        let along = |axis: usize| {
            let padded = input_px[axis] + 2 * self.padding[axis];
            (padded >= self.kernel[axis] && self.stride[axis] > 0)
                .then(|| (padded - self.kernel[axis]) / self.stride[axis] + 1)
        };
        Some([along(0)?, along(1)?])
    }

    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
}

/// Every size of one lowered convolution, in the "conv" view (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDims {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    /// Spatial size of the large side `x`.
    pub input_px: [usize; 2],
    /// Spatial size of the small side `y`.
    pub output_px: [usize; 2],
    pub geometry: ConvGeometry,
}

impl ConvDims {
    /// Rows of the im2col matrix: one per input channel and kernel tap.
    fn patch_len(&self) -> usize {
        self.c_in * self.geometry.taps()
    }

    /// Columns of the im2col matrix: one per output pixel.
    fn output_pixels(&self) -> usize {
        self.output_px[0] * self.output_px[1]
    }

    fn input_len(&self) -> usize {
        self.c_in * self.input_px[0] * self.input_px[1]
    }

    fn output_len(&self) -> usize {
        self.c_out * self.output_pixels()
    }

    pub fn weight_len(&self) -> usize {
        self.c_out * self.patch_len()
    }

    /// Whether the im2col matrix is built pixel-major ([`im2row`]): with many input channels
    /// and narrow outputs, where the planar rows are short runs and the pixel-major ones whole
    /// channel vectors.
    fn pixel_major(&self) -> bool {
        im2row::applies(self.c_in, self.output_px)
    }

    /// The weight `[C_out, K]` in the order of the im2col matrix's `K` axis (a copy only when
    /// pixel-major).
    fn weight_for_gemm<'a>(&self, weight: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        match self.pixel_major() {
            true => {
                let taps = self.geometry.taps();
                im2row::to_tap_major(weight, self.c_out, self.c_in, taps).into()
            }
            false => weight.into(),
        }
    }

    /// A weight gradient in the im2col matrix's `K` order → `[C_out, C_in, k_h, k_w]`.
    fn weight_from_gemm(&self, weight: Vec<f32>) -> Vec<f32> {
        match self.pixel_major() {
            true => im2row::from_tap_major(&weight, self.c_out, self.c_in, self.geometry.taps()),
            false => weight,
        }
    }
}

/// Columns one GEMM should have at least: with fewer, the GEMM's micro-kernels idle on a
/// narrow matrix, so the im2col matrices of small images are laid side by side (a group) and
/// multiplied at once. ~2 MB of im2col per group at 64 channels: it stays in L2.
const MIN_GEMM_COLUMNS: usize = 512;

/// How the batch is cut into groups of images that share one GEMM.
#[derive(Debug, Clone, Copy)]
struct Grouping {
    images_per_group: usize,
    groups: usize,
    /// GEMM threading: the groups run in parallel when there are enough of them, else each
    /// GEMM runs on all threads.
    parallelism: Parallelism,
}

impl Grouping {
    fn of(dims: &ConvDims) -> Self {
        let threads = rayon::current_num_threads().max(1);
        let wanted = MIN_GEMM_COLUMNS.div_ceil(dims.output_pixels().max(1));
        // At least one group per thread, so no core waits.
        let fair = dims.batch.div_ceil(threads).max(1);
        let images_per_group = wanted.clamp(1, fair);
        let groups = dims.batch.div_ceil(images_per_group);
        let parallelism = match groups >= threads {
            true => Parallelism::None,
            false => Parallelism::Rayon(0),
        };
        Self {
            images_per_group,
            groups,
            parallelism,
        }
    }

    fn images(&self, group: usize, batch: usize) -> std::ops::Range<usize> {
        let start = group * self.images_per_group;
        start..(start + self.images_per_group).min(batch)
    }
}

/// Per-thread scratch: a group's im2col matrix (`[K, n]`, or `[n, K]` when pixel-major) and a
/// `[C_out, n]` matrix of outputs or output gradients side by side (n = images · output
/// pixels). Both are always written before they are read, so reused buffers need no clearing.
struct Scratch {
    col: Vec<f32>,
    wide: Vec<f32>,
    lowering: Lowering,
}

/// How the im2col matrix is laid out and built.
enum Lowering {
    /// `[K, n]`, one row per input channel and tap ([`Im2col`]).
    Planar(Im2col),
    /// `[n, K]`, one row per output pixel ([`Im2row`]).
    PixelMajor(Im2row),
}

impl Lowering {
    /// `col`, an im2col matrix of `n` columns in this layout, as a `[K, n]` view.
    fn view<'a>(&self, col: &'a [f32], k: usize, n: usize) -> Matrix<'a> {
        match self {
            Self::Planar(_) => Matrix::row_major(col, k, n),
            Self::PixelMajor(_) => Matrix::transposed(col, n, k),
        }
    }

    /// The same view, writable.
    fn view_mut<'a>(&self, col: &'a mut [f32], k: usize, n: usize) -> MatrixMut<'a> {
        match self {
            Self::Planar(_) => MatrixMut::row_major(col, k, n),
            Self::PixelMajor(_) => MatrixMut::transposed(col, n, k),
        }
    }
}

/// The most values a thread keeps in its spare scratch buffers (8 MiB): enough for every layer
/// up to 160×224 at 64 channels, and at most 8 MiB a core when the app is idle.
const SPARE_MAX_VALUES: usize = 1 << 21;

thread_local! {
    /// The buffers of this thread's last [`Scratch`], for the next one: every convolution of a
    /// step needs one per task, and allocating them fresh (zeroed, often page-faulted) cost 3 %
    /// of a 28×28 step.
    static SPARE_BUFFERS: Cell<Option<(Vec<f32>, Vec<f32>)>> = const { Cell::new(None) };
}

impl Scratch {
    fn new(dims: &ConvDims, grouping: &Grouping) -> Self {
        let columns = grouping.images_per_group * dims.output_pixels();
        // A task that starts inside another one's GEMM on the same thread finds the slot empty
        // and allocates its own.
        let (mut col, mut wide) = SPARE_BUFFERS.take().unwrap_or_default();
        col.resize(dims.patch_len() * columns, 0.0);
        wide.resize(dims.c_out * columns, 0.0);
        Self {
            col,
            wide,
            lowering: match dims.pixel_major() {
                true => Lowering::PixelMajor(Im2row::new(dims)),
                false => Lowering::Planar(Im2col::new(dims)),
            },
        }
    }

    /// im2col of `images` of `x`, side by side (`n = images · L` columns); returns `n`.
    fn im2col(&mut self, x: &[f32], images: std::ops::Range<usize>, dims: &ConvDims) -> usize {
        let (k, l) = (dims.patch_len(), dims.output_pixels());
        let columns = images.len() * l;
        for (g, b) in images.enumerate() {
            let x_b = image(x, b, dims.input_len());
            match &mut self.lowering {
                Lowering::Planar(planar) => planar.im2col(x_b, &mut self.col[g * l..], columns),
                Lowering::PixelMajor(rows) => rows.im2row(x_b, &mut self.col[g * l * k..]),
            }
        }
        columns
    }

    /// The im2col matrix of `n` columns as a `[K, n]` view, whatever its layout.
    fn col_view(&self, k: usize, n: usize) -> Matrix<'_> {
        self.lowering.view(&self.col, k, n)
    }

    /// col2im of image `g` of the group's `n`-column matrix into `x_b` `[C_in, H, W]`.
    fn col2im(&mut self, g: usize, n: usize, dims: &ConvDims, x_b: &mut [f32]) {
        let (k, l) = (dims.patch_len(), dims.output_pixels());
        match &mut self.lowering {
            Lowering::Planar(planar) => planar.col2im(&self.col[g * l..], n, x_b),
            Lowering::PixelMajor(rows) => rows.row2im(&self.col[g * l * k..][..l * k], x_b),
        }
    }

    /// `dy` of `images` side by side in `wide` (`[C_out, images · L]`).
    fn gather(&mut self, dy: &[f32], images: std::ops::Range<usize>, dims: &ConvDims) {
        let l = dims.output_pixels();
        let columns = images.len() * l;
        for (g, b) in images.enumerate() {
            let dy_b = image(dy, b, dims.output_len());
            for (co, row) in dy_b.chunks_exact(l).enumerate() {
                self.wide[co * columns + g * l..][..l].copy_from_slice(row);
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buffers = (
            std::mem::take(&mut self.col),
            std::mem::take(&mut self.wide),
        );
        if buffers.0.capacity() + buffers.1.capacity() <= SPARE_MAX_VALUES {
            SPARE_BUFFERS.set(Some(buffers));
        }
    }
}

/// `y = conv(x, weight)`, then `epilogue` on each image: `x` `[B, C_in, H, W]`, `weight`
/// `[C_out, C_in, k_h, k_w]` → `y` `[B, C_out, H_out, W_out]`.
pub fn conv_forward(x: &[f32], weight: &[f32], dims: &ConvDims, epilogue: Epilogue) -> Vec<f32> {
    check_len("input", x, dims.batch * dims.input_len());
    check_len("weight", weight, dims.weight_len());
    let (k, l) = (dims.patch_len(), dims.output_pixels());
    let grouping = Grouping::of(dims);
    let weight = dims.weight_for_gemm(weight);
    map_groups(
        dims.output_len(),
        dims,
        &grouping,
        |scratch, images, y_group| {
            let count = images.len();
            let n = scratch.im2col(x, images, dims);
            let w = Matrix::row_major(&weight, dims.c_out, k);
            if count == 1 {
                // y_b [C_out, L] = W [C_out, K] · col [K, L]
                let y_b = MatrixMut::row_major(y_group, dims.c_out, n);
                gemm(y_b, false, w, scratch.col_view(k, n), grouping.parallelism);
            } else {
                let Scratch {
                    col,
                    wide,
                    lowering,
                } = &mut *scratch;
                let col = lowering.view(col, k, n);
                let wide = MatrixMut::row_major(wide, dims.c_out, n);
                gemm(wide, false, w, col, grouping.parallelism);
                for (g, y_b) in y_group.chunks_exact_mut(dims.output_len()).enumerate() {
                    for (co, row) in y_b.chunks_exact_mut(l).enumerate() {
                        row.copy_from_slice(&scratch.wide[co * n + g * l..][..l]);
                    }
                }
            }
            for y_b in y_group.chunks_exact_mut(dims.output_len()) {
                epilogue.apply(y_b, l);
            }
        },
    )
}

/// The input gradient `dx = convᵀ(dy, weight)`, which is also the forward pass of a transposed
/// convolution (then with `epilogue` on each image): `dy` `[B, C_out, H_out, W_out]` → `dx`
/// `[B, C_in, H, W]`.
pub fn conv_input_grad(
    dy: &[f32],
    weight: &[f32],
    dims: &ConvDims,
    epilogue: Epilogue,
) -> Vec<f32> {
    check_len("output gradient", dy, dims.batch * dims.output_len());
    check_len("weight", weight, dims.weight_len());
    let (k, l) = (dims.patch_len(), dims.output_pixels());
    let grouping = Grouping::of(dims);
    let weight = dims.weight_for_gemm(weight);
    map_groups(
        dims.input_len(),
        dims,
        &grouping,
        |scratch, images, dx_group| {
            let n = images.len() * l;
            // col [K, n] = Wᵀ [K, C_out] · dy [C_out, n]
            let w_t = Matrix::transposed(&weight, dims.c_out, k);
            if images.len() == 1 {
                let dy_b = image(dy, images.start, dims.output_len());
                let dy_b = Matrix::row_major(dy_b, dims.c_out, n);
                let Scratch { col, lowering, .. } = &mut *scratch;
                let col = lowering.view_mut(col, k, n);
                gemm(col, false, w_t, dy_b, grouping.parallelism);
            } else {
                scratch.gather(dy, images, dims);
                let Scratch {
                    col,
                    wide,
                    lowering,
                } = &mut *scratch;
                let col = lowering.view_mut(col, k, n);
                let wide = Matrix::row_major(wide, dims.c_out, n);
                gemm(col, false, w_t, wide, grouping.parallelism);
            }
            let plane = dims.input_px[0] * dims.input_px[1];
            for (g, dx_b) in dx_group.chunks_exact_mut(dims.input_len()).enumerate() {
                scratch.col2im(g, n, dims, dx_b);
                epilogue.apply(dx_b, plane);
            }
        },
    )
}

/// The weight gradient `dW = Σ_b dy_b · im2col(x_b)ᵀ`: `x` `[B, C_in, H, W]`, `dy`
/// `[B, C_out, H_out, W_out]` → `[C_out, C_in, k_h, k_w]`. Each thread sums its share of the
/// groups into its own buffer; the partial sums are added in a fixed order, so the result
/// depends only on the thread count.
pub fn conv_weight_grad(x: &[f32], dy: &[f32], dims: &ConvDims) -> Vec<f32> {
    check_len("input", x, dims.batch * dims.input_len());
    check_len("output gradient", dy, dims.batch * dims.output_len());
    let k = dims.patch_len();
    let grouping = Grouping::of(dims);
    let accumulate = |groups: std::ops::Range<usize>| {
        let mut dw = vec![0.0f32; dims.weight_len()];
        let mut scratch = Scratch::new(dims, &grouping);
        for (i, group) in groups.enumerate() {
            let images = grouping.images(group, dims.batch);
            let first = images.start;
            let single = images.len() == 1;
            let n = scratch.im2col(x, images.clone(), dims);
            if !single {
                scratch.gather(dy, images, dims);
            }
            let dy_group = match single {
                true => image(dy, first, dims.output_len()),
                false => &scratch.wide,
            };
            // dW [C_out, K] (+)= dy [C_out, n] · colᵀ [n, K]
            gemm(
                MatrixMut::row_major(&mut dw, dims.c_out, k),
                i > 0,
                Matrix::row_major(dy_group, dims.c_out, n),
                scratch.col_view(k, n).transpose(),
                grouping.parallelism,
            );
        }
        dw
    };
    let chunks = chunk_ranges(grouping.groups, rayon::current_num_threads());
    let partials: Vec<Vec<f32>> = chunks.into_par_iter().map(accumulate).collect();
    let mut partials = partials.into_iter();
    let mut dw = partials
        .next()
        .unwrap_or_else(|| vec![0.0; dims.weight_len()]);
    for partial in partials {
        dw.iter_mut().zip(&partial).for_each(|(a, b)| *a += b);
    }
    dims.weight_from_gemm(dw)
}

/// Per-channel sums of `dy` `[B, C, H, W]` over the batch and the pixels (the bias gradient):
/// each image summed in parallel (in f64, [`sum_f64`]), then the images in a fixed order.
pub fn channel_sums(dy: &[f32], channels: usize, spatial_px: [usize; 2]) -> Vec<f32> {
    let plane = spatial_px[0] * spatial_px[1];
    if plane == 0 || channels == 0 {
        return vec![0.0; channels];
    }
    let per_image: Vec<Vec<f64>> = dy
        .par_chunks(plane * channels)
        .map(|image| image.chunks_exact(plane).map(sum_f64).collect())
        .collect();
    let mut sums = vec![0.0f64; channels];
    for image in &per_image {
        sums.iter_mut().zip(image).for_each(|(s, v)| *s += v);
    }
    sums.into_iter().map(|s| s as f32).collect()
}

/// Lanes of [`sum_f64`]: enough independent adds to cover the adder's latency, and a multiple
/// of the SIMD width.
const SUM_LANES: usize = 8;

/// `Σ values` in f64, over [`SUM_LANES`] running sums (element `i` into lane `i % 8`) added at
/// the end: one running sum would wait on every add's latency, a quarter of the adder's
/// throughput (it was 5 % of a 160×224 step). The order is fixed, so the result is too.
fn sum_f64(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; SUM_LANES];
    let chunks = values.chunks_exact(SUM_LANES);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v as f64;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Runs `work(scratch, images, out_group)` for every group of images, in parallel, and returns
/// the output: `per_image` values for each image, of which `out_group` is the group's part,
/// zeroed before `work` sees it.
///
/// The output is allocated uninitialised and each group zeroes its own part on the thread that
/// then writes it: a zeroed allocation (`vec![0.0; n]`) would zero, and page-fault, the whole
/// output on the calling thread first, a serial pass over every activation of the network.
fn map_groups<F>(per_image: usize, dims: &ConvDims, grouping: &Grouping, work: F) -> Vec<f32>
where
    F: Fn(&mut Scratch, std::ops::Range<usize>, &mut [f32]) + Sync + Send,
{
    let len = dims.batch * per_image;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(grouping.images_per_group * per_image)
        .enumerate()
        .for_each_init(
            || Scratch::new(dims, grouping),
            |scratch, (group, out_group)| {
                let out_group = zero(out_group);
                work(scratch, grouping.images(group, dims.batch), out_group)
            },
        );
    // SAFETY: the chunks cover `..len` and every one was initialised by `zero` above (a panic
    // in `work` propagates out of `for_each_init` before this line, leaving `out` empty).
    unsafe { out.set_len(len) };
    out
}

/// Writes zeros over `uninit` and returns it as the initialised slice it now is.
fn zero(uninit: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    for value in uninit.iter_mut() {
        value.write(0.0);
    }
    // SAFETY: every element was just written, and `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(uninit as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}

/// Splits `0..n` into at most `parts` contiguous, non-empty ranges of near-equal length.
fn chunk_ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let per = n.div_ceil(parts).max(1);
    (0..n)
        .step_by(per)
        .map(|start| start..(start + per).min(n))
        .collect()
}

fn image(buffer: &[f32], b: usize, len: usize) -> &[f32] {
    &buffer[b * len..(b + 1) * len]
}

fn check_len(what: &str, buffer: &[f32], expected: usize) {
    assert_eq!(
        buffer.len(),
        expected,
        "lowered conv: {what} has {} values, its dimensions say {expected}",
        buffer.len()
    );
}

/// A read-only matrix view over a row-major buffer, possibly transposed.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Matrix<'a> {
    /// `data` holds `rows × cols` in row-major order.
    fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        debug_assert!(data.len() >= rows * cols);
        Self {
            data,
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The transpose of the row-major `rows × cols` matrix in `data` (a `cols × rows` view).
    fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        debug_assert!(data.len() >= rows * cols);
        Self {
            data,
            rows: cols,
            cols: rows,
            row_stride: 1,
            col_stride: cols as isize,
        }
    }

    /// The same values, transposed.
    fn transpose(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// A writable matrix view over a buffer that holds `rows × cols` values densely, row-major or
/// transposed.
struct MatrixMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> MatrixMut<'a> {
    fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "lowered conv: GEMM output buffer too small"
        );
        Self {
            data,
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The transpose of the row-major `rows × cols` matrix in `data` (a `cols × rows` view).
    fn transposed(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        let view = Self::row_major(data, rows, cols);
        Self {
            rows: cols,
            cols: rows,
            row_stride: 1,
            col_stride: cols as isize,
            data: view.data,
        }
    }

    /// Zeroes the view's values (both layouts are dense).
    fn fill_zero(&mut self) {
        self.data[..self.rows * self.cols].fill(0.0);
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`.
fn gemm(mut dst: MatrixMut, accumulate: bool, lhs: Matrix, rhs: Matrix, parallelism: Parallelism) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "lowered conv: inner GEMM dimensions differ");
    assert!(
        dst.rows == m && dst.cols == n,
        "lowered conv: GEMM output is {}×{}, the product {m}×{n}",
        dst.rows,
        dst.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill_zero();
        }
        return;
    }
    // SAFETY: the views were built over buffers of at least rows × cols elements (asserted
    // in the constructors) with strides that stay inside them, and `dst` is such a view of
    // m × n values.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.col_stride,
            dst.row_stride,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride,
            lhs.row_stride,
            rhs.data.as_ptr(),
            rhs.col_stride,
            rhs.row_stride,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::epilogue::FusedActivation;
    use super::*;

    /// Direct convolution by the definition, for reference.
    fn naive_forward(x: &[f32], w: &[f32], d: &ConvDims) -> Vec<f32> {
        let g = d.geometry;
        let [h, wd] = d.input_px;
        let [oh, ow] = d.output_px;
        let mut y = vec![0.0; d.batch * d.c_out * oh * ow];
        for b in 0..d.batch {
            for co in 0..d.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0.0f64;
                        for ci in 0..d.c_in {
                            for ky in 0..g.kernel[0] {
                                for kx in 0..g.kernel[1] {
                                    let iy =
                                        (oy * g.stride[0] + ky) as isize - g.padding[0] as isize;
                                    let ix =
                                        (ox * g.stride[1] + kx) as isize - g.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xv =
                                        x[((b * d.c_in + ci) * h + iy as usize) * wd + ix as usize];
                                    let wv = w[((co * d.c_in + ci) * g.kernel[0] + ky)
                                        * g.kernel[1]
                                        + kx];
                                    acc += (xv * wv) as f64;
                                }
                            }
                        }
                        y[((b * d.c_out + co) * oh + oy) * ow + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // A small deterministic generator: values in [-1, 1).
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as f64) * (*y as f64))
            .sum()
    }

    fn cases() -> Vec<ConvDims> {
        let g = |k: usize, s: usize, p: usize| ConvGeometry {
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
        };
        let dims = |batch, c_in, c_out, input_px: [usize; 2], geometry: ConvGeometry| ConvDims {
            batch,
            c_in,
            c_out,
            input_px,
            output_px: geometry.output_px(input_px).unwrap(),
            geometry,
        };
        vec![
            dims(3, 2, 4, [7, 6], g(3, 2, 1)),
            dims(2, 1, 5, [8, 9], g(3, 2, 1)),
            dims(5, 3, 1, [5, 5], g(3, 1, 1)),
            dims(1, 2, 3, [6, 7], g(1, 1, 0)),
            dims(4, 2, 2, [9, 4], g(5, 2, 2)),
            dims(2, 3, 2, [2, 3], g(3, 2, 1)),
            // Different strides, kernels and paddings per axis, stride 3 (the generic phase
            // split), and a stride larger than the kernel.
            dims(
                2,
                2,
                3,
                [10, 7],
                ConvGeometry {
                    kernel: [3, 2],
                    stride: [3, 2],
                    padding: [1, 0],
                },
            ),
            dims(2, 1, 2, [9, 9], g(2, 3, 0)),
            // Enough input channels for the pixel-major im2col: the encoder's 3×3 stride-2
            // convs on odd and even sizes, stride 1, a 5×5 kernel and a 1×1 one.
            dims(3, 16, 4, [7, 6], g(3, 2, 1)),
            dims(2, 17, 3, [4, 4], g(3, 2, 1)),
            dims(3, 16, 2, [5, 5], g(3, 1, 1)),
            dims(2, 18, 3, [9, 4], g(5, 2, 2)),
            dims(2, 16, 5, [3, 2], g(1, 1, 0)),
        ]
    }

    /// Runs `check` on pools of 1, 2 and 3 threads: the images of a batch are grouped by the
    /// thread count, so this covers one group, several, and uneven last groups.
    fn on_thread_counts(check: impl Fn() + Sync) {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(&check);
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        on_thread_counts(forward_matches_the_definition_here);
    }

    fn forward_matches_the_definition_here() {
        for d in cases() {
            let x = values(d.batch * d.input_len(), 1);
            let w = values(d.weight_len(), 2);
            let got = conv_forward(&x, &w, &d, Epilogue::NONE);
            let want = naive_forward(&x, &w, &d);
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 1e-4, "{d:?}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn gradients_are_the_adjoints_of_the_forward_pass() {
        on_thread_counts(gradients_are_the_adjoints_here);
    }

    fn gradients_are_the_adjoints_here() {
        // ⟨dy, conv(x, W)⟩ = ⟨conv_input_grad(dy, W), x⟩ = ⟨conv_weight_grad(x, dy), W⟩
        for d in cases() {
            let x = values(d.batch * d.input_len(), 3);
            let w = values(d.weight_len(), 4);
            let dy = values(d.batch * d.output_len(), 5);
            let y = conv_forward(&x, &w, &d, Epilogue::NONE);
            let reference = dot(&dy, &y);
            let via_input = dot(&conv_input_grad(&dy, &w, &d, Epilogue::NONE), &x);
            let via_weight = dot(&conv_weight_grad(&x, &dy, &d), &w);
            let tol = 1e-4 * reference.abs().max(1.0);
            assert!(
                (via_input - reference).abs() < tol,
                "{d:?}: {via_input} vs {reference}"
            );
            assert!(
                (via_weight - reference).abs() < tol,
                "{d:?}: {via_weight} vs {reference}"
            );
        }
    }

    #[test]
    fn weight_gradient_is_the_same_whatever_the_batch_split() {
        let d = cases()[0];
        let x = values(d.batch * d.input_len(), 6);
        let dy = values(d.batch * d.output_len(), 7);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let one_thread = pool.install(|| conv_weight_grad(&x, &dy, &d));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let three_threads = pool.install(|| conv_weight_grad(&x, &dy, &d));
        for (a, b) in one_thread.iter().zip(&three_threads) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn output_size_follows_floor_division() {
        let g = ConvGeometry {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
        };
        assert_eq!(g.output_px([50, 50]), Some([25, 25]));
        assert_eq!(g.output_px([25, 13]), Some([13, 7]));
        assert_eq!(g.output_px([1, 1]), Some([1, 1]));
        let big = ConvGeometry {
            kernel: [5, 5],
            stride: [1, 1],
            padding: [0, 0],
        };
        assert_eq!(big.output_px([4, 8]), None);
    }

    #[test]
    fn bias_gradient_sums_per_channel() {
        // Two images, three channels of 1×2 pixels.
        let dy: Vec<f32> = (0..12).map(|v| v as f32).collect();
        // channel 0: 0+1+6+7, channel 1: 2+3+8+9, channel 2: 4+5+10+11
        assert_eq!(channel_sums(&dy, 3, [1, 2]), [14.0, 22.0, 30.0]);
    }

    #[test]
    fn lane_sums_equal_the_plain_sum() {
        for n in [0, 1, 7, 8, 9, 63, 1000] {
            let v = values(n, 13);
            let plain: f64 = v.iter().map(|&x| x as f64).sum();
            assert!((sum_f64(&v) - plain).abs() < 1e-9, "{n} values");
        }
    }

    #[test]
    fn the_epilogue_runs_on_every_image_of_both_passes() {
        on_thread_counts(the_epilogue_runs_here);
    }

    fn the_epilogue_runs_here() {
        for d in cases() {
            let x = values(d.batch * d.input_len(), 8);
            let w = values(d.weight_len(), 9);
            let dy = values(d.batch * d.output_len(), 10);
            let bias_out = values(d.c_out, 11);
            let bias_in = values(d.c_in, 12);
            let relu = |bias| Epilogue {
                bias: Some(bias),
                activation: Some(FusedActivation::Relu),
            };
            let expect = |plain: Vec<f32>, bias: &[f32], plane: usize| -> Vec<f32> {
                plain
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v + bias[(i / plane) % bias.len()]).max(0.0))
                    .collect()
            };
            let pairs = [
                (
                    conv_forward(&x, &w, &d, relu(&bias_out)),
                    expect(
                        conv_forward(&x, &w, &d, Epilogue::NONE),
                        &bias_out,
                        d.output_pixels(),
                    ),
                ),
                (
                    conv_input_grad(&dy, &w, &d, relu(&bias_in)),
                    expect(
                        conv_input_grad(&dy, &w, &d, Epilogue::NONE),
                        &bias_in,
                        d.input_px[0] * d.input_px[1],
                    ),
                ),
            ];
            for (got, want) in pairs {
                assert_eq!(got, want, "{d:?}");
            }
        }
    }

    #[test]
    fn chunks_cover_the_batch_once() {
        for (n, parts) in [(0, 2), (1, 4), (7, 2), (128, 16), (5, 5)] {
            let ranges = chunk_ranges(n, parts);
            let covered: Vec<usize> = ranges.iter().cloned().flatten().collect();
            assert_eq!(covered, (0..n).collect::<Vec<_>>());
            assert!(ranges.len() <= parts.max(1));
        }
    }
}
