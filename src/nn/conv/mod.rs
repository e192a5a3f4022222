//! The dense convolutions of the autoencoders, routed by device: on the CPU (burn-flex) through
//! our im2col + GEMM lowering with its own backward pass ([`lowering`]), the bias and a ReLU or
//! leaky ReLU folded into its parallel passes ([`epilogue`]), elsewhere through
//! burn's kernels — or, for the decoder's transposed convs on a GPU when asked, as a sub-pixel
//! conv ([`subpixel`]). Every path takes burn's `Conv2d` / `ConvTranspose2d` parameters
//! unchanged, so checkpoints load either way.

mod epilogue;
mod extension;
mod im2col;
mod im2row;
mod lowering;
mod subpixel;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::module::{conv_transpose2d as burn_conv_transpose2d, conv2d as burn_conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, Tensor};

use super::blocks::LEAKY_SLOPE;
use super::config::ActivationKind;
use epilogue::FusedActivation;
use extension::LoweredConv;
pub use lowering::ConvGeometry;

/// Which kernels run the convolutions on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuConvPath {
    /// im2col + GEMM with batch-parallel backward kernels (the default).
    Lowered,
    /// burn-flex's own kernels (for comparison in tests and benches).
    Burn,
}

/// Environment variable that picks the CPU kernels at start-up (`burn` or `lowered`): an escape
/// hatch and a way to compare learning with both in the same binary.
pub const CPU_CONV_ENV: &str = "SENSE_CPU_CONV";

const UNSET: u8 = 0;
const LOWERED: u8 = 1;
const BURN: u8 = 2;
static CPU_PATH: AtomicU8 = AtomicU8::new(UNSET);

/// Chooses the CPU convolution kernels for the whole process (benches and tests compare them).
pub fn set_cpu_conv_path(path: CpuConvPath) {
    let code = match path {
        CpuConvPath::Lowered => LOWERED,
        CpuConvPath::Burn => BURN,
    };
    CPU_PATH.store(code, Ordering::Relaxed);
}

/// The kernels in use: set by [`set_cpu_conv_path`], else from [`CPU_CONV_ENV`], else lowered.
pub fn cpu_conv_path() -> CpuConvPath {
    match CPU_PATH.load(Ordering::Relaxed) {
        LOWERED => CpuConvPath::Lowered,
        BURN => CpuConvPath::Burn,
        _ => *path_from_env(),
    }
}

/// How the 3×3 stride-2 transposed convs run off the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuDeconvPath {
    /// burn's `conv_transpose2d` (the default until a GPU bench says otherwise).
    Burn,
    /// A 2×2 conv to 4·C_out channels + depth-to-space: conv2d gradients only.
    SubPixel,
}

/// Environment variable that picks [`GpuDeconvPath`] at start-up (`burn` or `subpixel`).
pub const GPU_DECONV_ENV: &str = "SENSE_GPU_DECONV";

pub fn gpu_deconv_path() -> GpuDeconvPath {
    static FROM_ENV: OnceLock<GpuDeconvPath> = OnceLock::new();
    *FROM_ENV.get_or_init(|| match std::env::var(GPU_DECONV_ENV).as_deref() {
        Ok("subpixel") => GpuDeconvPath::SubPixel,
        _ => GpuDeconvPath::Burn,
    })
}

/// The sub-pixel form of the decoder's transposed conv on any backend (tests compare it with
/// `conv_transpose2d`; the GPU path uses it when [`GPU_DECONV_ENV`] says `subpixel`).
pub use subpixel::conv_transpose3x3_s2 as subpixel_conv_transpose3x3_s2;

fn path_from_env() -> &'static CpuConvPath {
    static FROM_ENV: OnceLock<CpuConvPath> = OnceLock::new();
    FROM_ENV.get_or_init(|| match std::env::var(CPU_CONV_ENV).as_deref() {
        Ok("burn") => CpuConvPath::Burn,
        _ => CpuConvPath::Lowered,
    })
}

/// `x` `[B, C_in, H, W]` ⊛ `weight` `[C_out, C_in, k_h, k_w]` (+ `bias` `[C_out]`), then
/// `activation` → `[B, C_out, H_out, W_out]`; dilation 1, groups 1.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    geometry: ConvGeometry,
    activation: Option<ActivationKind>,
) -> Tensor<4> {
    if !runs_lowered(&x, &weight) {
        let options = ConvOptions::new(geometry.stride, geometry.padding, [1, 1], 1);
        return activate(burn_conv2d(x, weight, bias, options), activation);
    }
    let bias = bias_or_zeros(bias, &weight, 0);
    let (fused, after) = split_activation(activation);
    let y = Tensor::<4>::from_dispatch(<Dispatch as LoweredConv>::lowered_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        geometry,
        fused,
    ));
    activate(y, after)
}

/// The transposed convolution of `x` `[B, C_in, h, w]` by `weight` `[C_in, C_out, k_h, k_w]`
/// (+ `bias` `[C_out]`) to exactly `output_px` (which fixes the output padding), then
/// `activation`; dilation 1, groups 1.
pub fn conv_transpose2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    geometry: ConvGeometry,
    output_px: [usize; 2],
    activation: Option<ActivationKind>,
) -> Tensor<4> {
    let subpixel_applies = geometry.kernel == [3, 3]
        && geometry.stride == [2, 2]
        && geometry.padding == [1, 1]
        && gpu_deconv_path() == GpuDeconvPath::SubPixel;
    if !runs_lowered(&x, &weight) && subpixel_applies && !is_flex(&x) {
        let y = subpixel::conv_transpose3x3_s2(x, weight, bias, output_px);
        return activate(y, activation);
    }
    if !runs_lowered(&x, &weight) {
        let [_, _, h, w] = x.dims();
        let padding_out = [0, 1].map(|axis| {
            let grown = ([h, w][axis] - 1) * geometry.stride[axis] + geometry.kernel[axis];
            output_px[axis] + 2 * geometry.padding[axis] - grown
        });
        let options =
            ConvTransposeOptions::new(geometry.stride, geometry.padding, padding_out, [1, 1], 1);
        return activate(burn_conv_transpose2d(x, weight, bias, options), activation);
    }
    let bias = bias_or_zeros(bias, &weight, 1);
    let (fused, after) = split_activation(activation);
    let y = Tensor::<4>::from_dispatch(<Dispatch as LoweredConv>::lowered_conv_transpose2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        geometry,
        output_px,
        fused,
    ));
    activate(y, after)
}

/// The part of `activation` the lowered kernels run themselves (ReLU and leaky ReLU), and the
/// part left to burn (ELU and SELU).
fn split_activation(
    activation: Option<ActivationKind>,
) -> (Option<FusedActivation>, Option<ActivationKind>) {
    match activation {
        Some(ActivationKind::Relu) => (Some(FusedActivation::Relu), None),
        Some(ActivationKind::LeakyRelu) => {
            let negative_slope = LEAKY_SLOPE as f32;
            (Some(FusedActivation::LeakyRelu { negative_slope }), None)
        }
        other => (None, other),
    }
}

fn activate(y: Tensor<4>, activation: Option<ActivationKind>) -> Tensor<4> {
    match activation {
        Some(activation) => activation.apply(y),
        None => y,
    }
}

/// The lowered kernels run on burn-flex, for float32 tensors, unless a bench asked for burn's.
fn runs_lowered(x: &Tensor<4>, weight: &Tensor<4>) -> bool {
    cpu_conv_path() == CpuConvPath::Lowered
        && is_flex(x)
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
}

fn is_flex(x: &Tensor<4>) -> bool {
    matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// The bias, or a constant zero one sized by the weight's output-channel axis `channels_axis`.
fn bias_or_zeros(bias: Option<Tensor<1>>, weight: &Tensor<4>, channels_axis: usize) -> Tensor<1> {
    bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[channels_axis]], &weight.device()))
}
