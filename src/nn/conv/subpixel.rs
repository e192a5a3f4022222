//! The decoder's 3×3 stride-2 transposed convolution as a sub-pixel convolution: one 2×2
//! stride-1 conv to 4·C_out channels (one group per output pixel phase) over the input padded
//! by one row and column at the end, then depth-to-space and a crop to the exact size.
//!
//! Same maths as `conv_transpose2d` with the same `[C_in, C_out, 3, 3]` weights, but its
//! gradients are those of an ordinary conv2d. On burn-cubecl 0.22.1 the transposed conv's
//! weight gradient has no kernel of its own (the generic fallback runs a conv whose kernel is
//! the whole output gradient), while conv2d's weight gradient has an im2col kernel.
//! ~1.8× the multiplies (16 taps instead of 9).

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Int, Tensor};

/// Kernel tap of the 3×3 transposed conv (stride 2, padding 1) that output phase `phase`
/// (even 0 / odd 1) reads through input offset `offset` (0 or 1); `NONE` where none does.
/// Output `2m` reads input `m` through tap 1; output `2m + 1` reads `m` through tap 2 and
/// `m + 1` through tap 0.
const TAPS: [[i64; 2]; 2] = [[1, NONE], [2, 0]];
/// Index of the zero row / column appended to the kernel.
const NONE: i64 = 3;

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
    let device = x.device();

    // [C_out, C_in, 4, 4]: the kernel as conv weights, with a zero 4th row and column.
    let kernel = weight.swap_dims(0, 1);
    let kernel = Tensor::cat(
        vec![kernel.clone(), Tensor::zeros([c_out, c_in, 1, 3], &device)],
        2,
    );
    let kernel = Tensor::cat(vec![kernel, Tensor::zeros([c_out, c_in, 4, 1], &device)], 3);
    let taps = |phase: usize| Tensor::<1, Int>::from_data(TAPS[phase], &device);
    // [4·C_out, C_in, 2, 2], phases in the order (row phase, column phase).
    let phases = (0..2)
        .flat_map(|py| (0..2).map(move |px| (py, px)))
        .map(|(py, px)| kernel.clone().select(2, taps(py)).select(3, taps(px)))
        .collect();
    let phase_kernels = Tensor::cat(phases, 0);

    let padded = Tensor::cat(vec![x, Tensor::zeros([batch, c_in, 1, w], &device)], 2);
    let padded = Tensor::cat(
        vec![padded, Tensor::zeros([batch, c_in, h + 1, 1], &device)],
        3,
    );
    let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let phased = conv2d(padded, phase_kernels, None, options);

    // Depth to space: [B, (py, px, C_out), h, w] → [B, C_out, (h, py), (w, px)].
    let y = phased
        .reshape([batch, 2, 2, c_out, h, w])
        .permute([0, 3, 4, 1, 5, 2])
        .reshape([batch, c_out, 2 * h, 2 * w]);
    let [big_h, big_w] = output_px;
    let y = y.slice([0..batch, 0..c_out, 0..big_h, 0..big_w]);
    match bias {
        Some(bias) => y + bias.reshape([1, c_out, 1, 1]),
        None => y,
    }
}
