//! The decoder's 3×3 stride-2 transposed convolution as a sub-pixel convolution: one 2×2
//! stride-1 conv to 4·C_out channels (one group per output pixel phase), then depth-to-space
//! and a crop to the exact size.
//!
//! Same maths as `conv_transpose2d` with the same `[C_in, C_out, 3, 3]` weights, but its
//! gradients are those of an ordinary conv2d. On burn-cubecl 0.22.1 the transposed conv's
//! weight gradient has no kernel of its own (the generic fallback runs a conv whose kernel is
//! the whole output gradient), while conv2d's weight gradient has an im2col kernel.
//! ~1.8× the multiplies (16 taps instead of 9).
//!
//! Written for few GPU kernel launches, because on the GPU each launch costs host time that
//! the step cannot hide at these sizes (bench/README.md, "host's share"): the 2×2 phase kernels
//! come out of the 3×3 weights in one matrix product with a constant tap-selection matrix
//! (its backward is one product too), and the conv pads symmetrically, so the padding at the
//! end that the maths needs is a shift of the final crop instead of a concatenation of zeros.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

/// Kernel tap of the 3×3 transposed conv (stride 2, padding 1) that output phase `phase`
/// (even 0 / odd 1) reads through input offset `offset` (0 or 1); `None` where none does.
/// Output `2m` reads input `m` through tap 1; output `2m + 1` reads `m` through tap 2 and
/// `m + 1` through tap 0.
const TAPS: [[Option<usize>; 2]; 2] = [[Some(1), None], [Some(2), Some(0)]];

/// `[9, 16]`: column `((py·2 + px)·2 + a)·2 + b` picks the 3×3 tap (row-major `3·ky + kx`)
/// that phase `(py, px)` reads through offset `(a, b)`, or is zero.
fn tap_selection() -> TensorData {
    let mut selection = vec![0.0f32; 9 * 16];
    for column in 0..16 {
        let [py, px, a, b] = [3, 2, 1, 0].map(|bit| (column >> bit) & 1);
        if let (Some(ky), Some(kx)) = (TAPS[py][a], TAPS[px][b]) {
            selection[(3 * ky + kx) * 16 + column] = 1.0;
        }
    }
    TensorData::new(selection, [9, 16])
}

/// `x` `[B, C_in, h, w]`, `weight` `[C_in, C_out, 3, 3]` → `[B, C_out, H, W]` with
/// `H ≤ 2h`, `W ≤ 2w` (the output padding of a stride-2 transposed conv).
pub fn conv_transpose3x3_s2(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    output_px: [usize; 2],
) -> Tensor<4> {
    let [batch, c_in, h, w] = x.dims();
    let [_, c_out, _, _] = weight.dims();
    let selection = Tensor::<2>::from_data(tap_selection(), &weight.device());

    // [4·C_out, C_in, 2, 2], output channels in the order (row phase, column phase, C_out).
    let phase_kernels = weight
        .reshape([c_in * c_out, 9])
        .matmul(selection)
        .reshape([c_in, c_out, 4, 2, 2])
        .permute([2, 1, 0, 3, 4])
        .reshape([4 * c_out, c_in, 2, 2]);

    // Phase (py, px) of output pixel (2m + py, 2n + px) reads inputs m..m+1 and n..n+1, the ones
    // past the end being zero. Padding by one on both sides shifts that to conv output
    // (m + 1, n + 1): an extra first row and column, cropped off below.
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let phased = conv2d(x, phase_kernels, None, options);

    // Depth to space: [B, (py, px, C_out), h + 1, w + 1] → [B, C_out, (h + 1, py), (w + 1, px)],
    // then the crop past the shifted first row and column: output pixel k is at k + 2.
    let y = phased
        .reshape([batch, 2, 2, c_out, h + 1, w + 1])
        .permute([0, 3, 4, 1, 5, 2])
        .reshape([batch, c_out, 2 * h + 2, 2 * w + 2]);
    let [big_h, big_w] = output_px;
    let y = y.slice([0..batch, 0..c_out, 2..big_h + 2, 2..big_w + 2]);
    match bias {
        Some(bias) => y + bias.reshape([1, c_out, 1, 1]),
        None => y,
    }
}
