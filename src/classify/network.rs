//! An EfficientNetV2-style classifier scaled for small 1–3-channel images: a 3×3 stem,
//! Fused-MBConv stages at high resolution, MBConv + squeeze-and-excitation stages at low
//! resolution, a 1×1 head conv, global average pooling, dropout and a linear head.
//!
//! The stage table follows EfficientNetV2-S with fewer, narrower stages (the inputs are
//! 28–256 px, not 384). Stride-2 reductions are spent from the stem on, as in EfficientNetV2,
//! until the feature map would shrink below [`MIN_FEATURE_PX`]: a 28-px digit is reduced 8×
//! (to 4×4), a 46×64 or 50-px member 16× (to 3×4, 4×4). Early reduction matters doubly on the CPU, where
//! batch norm and SiLU over large feature maps cost as much as the convolutions.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{Array1, Array2};

use super::blocks::{BlockKind, BlockSpec, ConvBn, MbBlock, global_average};
use super::config::ClassifierConfig;
use crate::data::Shape;

/// Smallest side of the last feature map.
pub const MIN_FEATURE_PX: usize = 3;

/// One stage: `layers` blocks of `kind`, the first with `stride`.
struct Stage {
    kind: BlockKind,
    expansion: usize,
    channels: usize,
    layers: usize,
    /// Whether this stage may reduce the resolution.
    reduces: bool,
}

const STEM_CHANNELS: usize = 16;
const HEAD_CHANNELS: usize = 256;
const STAGES: [Stage; 5] = [
    Stage {
        kind: BlockKind::Fused,
        expansion: 1,
        channels: 16,
        layers: 1,
        reduces: false,
    },
    Stage {
        kind: BlockKind::Fused,
        expansion: 4,
        channels: 32,
        layers: 2,
        reduces: true,
    },
    Stage {
        kind: BlockKind::Fused,
        expansion: 4,
        channels: 48,
        layers: 2,
        reduces: true,
    },
    Stage {
        kind: BlockKind::MbConv,
        expansion: 4,
        channels: 96,
        layers: 3,
        reduces: true,
    },
    Stage {
        kind: BlockKind::MbConv,
        expansion: 6,
        channels: 128,
        layers: 3,
        reduces: false,
    },
];

/// Stride-2 positions: the stem and the reducing stages.
const REDUCTION_POINTS: usize = 4;

#[derive(Module, Debug)]
pub struct EfficientNet {
    stem: ConvBn,
    blocks: Vec<MbBlock>,
    head: ConvBn,
    dropout: Dropout,
    classifier: Linear,
}

/// Channel count scaled by the width multiplier: a multiple of 4, at least 8.
fn scaled_channels(channels: usize, width: f64) -> usize {
    let scaled = (channels as f64 * width / 4.0).round() as usize * 4;
    scaled.max(8)
}

/// Block count scaled by the depth multiplier (rounded up, at least 1).
fn scaled_layers(layers: usize, depth: f64) -> usize {
    ((layers as f64 * depth).ceil() as usize).max(1)
}

/// How many stride-2 reductions an input of `shape` affords.
pub fn reductions(shape: Shape) -> usize {
    let short = shape.height.min(shape.width);
    (0..=REDUCTION_POINTS)
        .rev()
        .find(|&r| crate::nn::halved(short, r) >= MIN_FEATURE_PX)
        .unwrap_or(0)
}

impl EfficientNet {
    /// A network for members of `input` shape (the working size) and `classes` classes.
    /// `config` must be valid.
    pub fn new(config: &ClassifierConfig, input: Shape, classes: usize, device: &Device) -> Self {
        let width = config.width_multiplier;
        let reductions = reductions(input);
        // Reduction points in order: stem, stage 2, stage 3, stage 4.
        let strided = |point: usize| point < reductions;
        let stride_of = |point: usize| if strided(point) { 2 } else { 1 };

        let stem_channels = scaled_channels(STEM_CHANNELS, width);
        let stem = ConvBn::new(
            [input.channels, stem_channels],
            3,
            stride_of(0),
            1,
            true,
            device,
        );

        let layer_counts: Vec<usize> = STAGES
            .iter()
            .map(|s| scaled_layers(s.layers, config.depth_multiplier))
            .collect();
        let total_blocks: usize = layer_counts.iter().sum();
        let mut blocks = Vec::with_capacity(total_blocks);
        let mut c_in = stem_channels;
        let mut point = 0;
        for (stage, &layers) in STAGES.iter().zip(&layer_counts) {
            let c_out = scaled_channels(stage.channels, width);
            let stage_stride = match stage.reduces {
                true => {
                    point += 1;
                    stride_of(point)
                }
                false => 1,
            };
            for layer in 0..layers {
                // EfficientNet's linear rule: the deepest block is dropped most often.
                let depth_share = blocks.len() as f64 / total_blocks as f64;
                blocks.push(MbBlock::new(
                    BlockSpec {
                        kind: stage.kind,
                        channels: [c_in, c_out],
                        expansion: stage.expansion,
                        stride: if layer == 0 { stage_stride } else { 1 },
                        drop_rate: config.stochastic_depth * depth_share,
                    },
                    device,
                ));
                c_in = c_out;
            }
        }
        let head_channels = scaled_channels(HEAD_CHANNELS, width);
        Self {
            stem,
            blocks,
            head: ConvBn::new([c_in, head_channels], 1, 1, 1, true, device),
            dropout: DropoutConfig::new(config.dropout).init(),
            classifier: LinearConfig::new(head_channels, classes).init(device),
        }
    }

    /// Class logits `[B, classes]` of a normalised batch `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.classifier
            .forward(self.dropout.forward(self.features(x)))
    }

    /// The pooled features `[B, F]` the linear head classifies.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.stem.forward(x);
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        global_average(self.head.forward(x))
    }

    /// The linear head on the host: weight `F × classes` (logits = features · W + b) and bias.
    pub fn head_weights(&self) -> (Array2<f32>, Array1<f32>) {
        let weight = self.classifier.weight.val();
        let [features, classes] = weight.dims();
        let w = weight.into_data().try_to_vec::<f32>().unwrap_or_default();
        let b = match &self.classifier.bias {
            Some(bias) => bias
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default(),
            None => vec![0.0; classes],
        };
        (
            Array2::from_shape_vec((features, classes), w)
                .unwrap_or_else(|_| Array2::zeros((features, classes))),
            Array1::from_vec(b),
        )
    }

    /// The same network with another linear head (same shape; on `device`).
    pub fn with_head_weights(
        mut self,
        weight: &Array2<f32>,
        bias: &Array1<f32>,
        device: &Device,
    ) -> Self {
        let (features, classes) = weight.dim();
        let w = TensorData::new(
            weight.iter().copied().collect::<Vec<_>>(),
            [features, classes],
        );
        let b = TensorData::new(bias.to_vec(), [classes]);
        self.classifier.weight = Param::from_tensor(Tensor::<2>::from_data(w, device));
        self.classifier.bias = Some(Param::from_tensor(Tensor::<1>::from_data(b, device)));
        self
    }
}
