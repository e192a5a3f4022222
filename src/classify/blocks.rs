//! EfficientNetV2 building blocks: conv + batch norm (+ SiLU), squeeze-and-excitation, and
//! the (Fused-)MBConv block with stochastic depth.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::{Device, Distribution, Tensor};

/// Square conv (no bias: batch norm follows) → batch norm → optional SiLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    norm: BatchNorm,
    #[module(skip)]
    silu: bool,
}

impl ConvBn {
    /// `kernel` is 1 or 3 (padding keeps the size at stride 1, gives `ceil(s/2)` at stride 2);
    /// `groups == channels` makes a depthwise conv.
    pub fn new(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        silu: bool,
        device: &Device,
    ) -> Self {
        let pad = kernel / 2;
        let conv = Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_groups(groups)
            .with_bias(false)
            .init(device);
        Self {
            conv,
            norm: BatchNormConfig::new(channels[1]).init(device),
            silu,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.norm.forward(self.conv.forward(x));
        match self.silu {
            true => silu(x),
            false => x,
        }
    }
}

/// Squeeze-and-excitation: channel weights from globally pooled features.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    reduce: Linear,
    expand: Linear,
}

impl SqueezeExcite {
    /// `squeezed` is the bottleneck width (a quarter of the block's input channels).
    pub fn new(channels: usize, squeezed: usize, device: &Device) -> Self {
        Self {
            reduce: LinearConfig::new(channels, squeezed).init(device),
            expand: LinearConfig::new(squeezed, channels).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [batch, channels, _, _] = x.dims();
        let pooled = global_average(x.clone());
        let weights = sigmoid(self.expand.forward(silu(self.reduce.forward(pooled))));
        x * weights.reshape([batch, channels, 1, 1])
    }
}

/// `[B, C, H, W]` → `[B, C]` means over the spatial dimensions.
pub fn global_average(x: Tensor<4>) -> Tensor<2> {
    let [batch, channels, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([batch, channels])
}

/// Whether a block's first conv is a full 3×3 conv (Fused-MBConv: cheap at high resolution,
/// where depthwise convs underuse the hardware) or a 1×1 expansion followed by a depthwise
/// 3×3 and squeeze-and-excitation (MBConv: cheaper in parameters at low resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Fused,
    MbConv,
}

/// One (Fused-)MBConv block, with a residual connection when shape allows.
#[derive(Module, Debug)]
pub struct MbBlock {
    /// Fused: 3×3 (with the stride); MBConv: 1×1 expansion (absent at expansion 1).
    expand: Option<ConvBn>,
    /// MBConv only: depthwise 3×3 with the stride.
    depthwise: Option<ConvBn>,
    se: Option<SqueezeExcite>,
    /// 1×1 projection without activation (absent for a Fused block of expansion 1, whose
    /// 3×3 conv maps straight to the output channels).
    project: Option<ConvBn>,
    #[module(skip)]
    residual: bool,
    /// Probability of skipping the block (per sample) while training.
    #[module(skip)]
    drop_rate: f64,
}

/// Shape and regularisation of one block.
#[derive(Debug, Clone, Copy)]
pub struct BlockSpec {
    pub kind: BlockKind,
    pub channels: [usize; 2],
    pub expansion: usize,
    pub stride: usize,
    pub drop_rate: f64,
}

impl MbBlock {
    pub fn new(spec: BlockSpec, device: &Device) -> Self {
        let [c_in, c_out] = spec.channels;
        let hidden = c_in * spec.expansion;
        let (expand, depthwise, se, project) = match (spec.kind, spec.expansion) {
            (BlockKind::Fused, 1) => (
                Some(ConvBn::new([c_in, c_out], 3, spec.stride, 1, true, device)),
                None,
                None,
                None,
            ),
            (BlockKind::Fused, _) => (
                Some(ConvBn::new([c_in, hidden], 3, spec.stride, 1, true, device)),
                None,
                None,
                Some(ConvBn::new([hidden, c_out], 1, 1, 1, false, device)),
            ),
            (BlockKind::MbConv, expansion) => (
                (expansion > 1).then(|| ConvBn::new([c_in, hidden], 1, 1, 1, true, device)),
                Some(ConvBn::new(
                    [hidden, hidden],
                    3,
                    spec.stride,
                    hidden,
                    true,
                    device,
                )),
                Some(SqueezeExcite::new(hidden, (c_in / 4).max(1), device)),
                Some(ConvBn::new([hidden, c_out], 1, 1, 1, false, device)),
            ),
        };
        Self {
            expand,
            depthwise,
            se,
            project,
            residual: spec.stride == 1 && c_in == c_out,
            drop_rate: spec.drop_rate,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut branch = x.clone();
        for conv in [&self.expand, &self.depthwise].into_iter().flatten() {
            branch = conv.forward(branch);
        }
        if let Some(se) = &self.se {
            branch = se.forward(branch);
        }
        if let Some(project) = &self.project {
            branch = project.forward(branch);
        }
        match self.residual {
            true => x + self.drop_path(branch),
            false => branch,
        }
    }

    /// Stochastic depth: while training (autodiff device), each sample's branch is dropped
    /// with probability `drop_rate` and the survivors scaled up, so the expectation is kept.
    fn drop_path(&self, branch: Tensor<4>) -> Tensor<4> {
        let device = branch.device();
        if self.drop_rate <= 0.0 || !device.is_autodiff() {
            return branch;
        }
        let keep = 1.0 - self.drop_rate;
        let [batch, _, _, _] = branch.dims();
        let mask = Tensor::<4>::random([batch, 1, 1, 1], Distribution::Bernoulli(keep), &device);
        branch * mask.div_scalar(keep)
    }
}
