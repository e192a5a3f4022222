//! What a lowered convolution does to each output image once its GEMM has written it: add the
//! per-channel bias, then apply a piecewise-linear activation (ReLU or leaky ReLU) — and that
//! activation's backward, the output gradient masked by the output's sign.
//!
//! Folding them into the convolution's parallel pass matters on many cores: as separate burn
//! ops, the activation and its backward ran on one thread (burn-flex 0.22.1's `unary_op` and
//! `binary_op` do not split work), over every hidden activation of the network, twice a step
//! (bench/README.md, "The serial part of the CPU step").

use rayon::prelude::*;

/// An activation that runs inside a lowered convolution. The rules are burn-flex 0.22.1's, so
/// both paths compute the same values: ReLU lets NaN through (`relu`, `relu_backward`), leaky
/// ReLU scales values below zero (`leaky_relu`, and the gradient of burn's composite
/// `mask_where` form).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusedActivation {
    Relu,
    LeakyRelu { negative_slope: f32 },
}

/// Values per parallel task in the activation's backward: large enough that the task's loop,
/// not rayon's bookkeeping, dominates.
const BACKWARD_CHUNK: usize = 1 << 14;

impl FusedActivation {
    #[cfg(test)]
    fn apply(self, v: f32) -> f32 {
        let mut values = [v];
        self.apply_after_bias(&mut values, 0.0);
        values[0]
    }

    /// `values[i] = activation(values[i] + bias)`. One loop per activation, so each vectorises.
    fn apply_after_bias(self, values: &mut [f32], bias: f32) {
        match self {
            Self::Relu => values.iter_mut().for_each(|v| {
                let x = *v + bias;
                *v = if x.is_nan() || x > 0.0 { x } else { 0.0 };
            }),
            Self::LeakyRelu { negative_slope } => values.iter_mut().for_each(|v| {
                let x = *v + bias;
                *v = if x >= 0.0 { x } else { negative_slope * x };
            }),
        }
    }

    /// Turns the gradient at the activation's `output` into the gradient at its input, in
    /// place. The output's sign is the input's (a positive slope keeps it), so the input need
    /// not be kept.
    fn backward_serial(self, output: &[f32], grad: &mut [f32]) {
        let pairs = grad.iter_mut().zip(output);
        match self {
            Self::Relu => pairs.for_each(|(g, &y)| {
                *g = if y.is_nan() || y > 0.0 { *g } else { 0.0 };
            }),
            Self::LeakyRelu { negative_slope } => pairs.for_each(|(g, &y)| {
                *g = if y.is_nan() || y >= 0.0 {
                    *g
                } else {
                    *g * negative_slope
                };
            }),
        }
    }

    /// [`Self::backward_serial`] in parallel chunks.
    pub fn backward(self, output: &[f32], grad: &mut [f32]) {
        assert_eq!(
            output.len(),
            grad.len(),
            "fused activation: output and gradient sizes differ"
        );
        grad.par_chunks_mut(BACKWARD_CHUNK)
            .zip(output.par_chunks(BACKWARD_CHUNK))
            .for_each(|(grad, output)| self.backward_serial(output, grad));
    }
}

/// The per-channel bias and activation applied to every output image.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// `[C]`, one value per output channel.
    pub bias: Option<&'a [f32]>,
    pub activation: Option<FusedActivation>,
}

impl Epilogue<'_> {
    /// Nothing to do: a gradient pass.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        activation: None,
    };

    /// Applies the bias then the activation to one image `[C, plane]`.
    pub fn apply(&self, image: &mut [f32], plane: usize) {
        if plane == 0 {
            return;
        }
        match (self.bias, self.activation) {
            (None, None) => {}
            (Some(bias), None) => {
                for (channel, &b) in image.chunks_exact_mut(plane).zip(bias) {
                    channel.iter_mut().for_each(|v| *v += b);
                }
            }
            (None, Some(activation)) => activation.apply_after_bias(image, 0.0),
            (Some(bias), Some(activation)) => {
                for (channel, &b) in image.chunks_exact_mut(plane).zip(bias) {
                    activation.apply_after_bias(channel, b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAKY: FusedActivation = FusedActivation::LeakyRelu {
        negative_slope: 0.01,
    };

    #[test]
    fn bias_is_added_per_channel_before_the_activation() {
        // One image, three channels of 2 pixels.
        let mut image = [-1.0, 0.5, -3.0, 1.0, 0.0, -0.5];
        let bias = [0.5, 2.0, -1.0];
        Epilogue {
            bias: Some(&bias),
            activation: Some(FusedActivation::Relu),
        }
        .apply(&mut image, 2);
        assert_eq!(image, [0.0, 1.0, 0.0, 3.0, 0.0, 0.0]);

        let mut image = [-1.0, 0.5, -3.0, 1.0, 0.0, -0.5];
        Epilogue {
            bias: Some(&bias),
            activation: None,
        }
        .apply(&mut image, 2);
        assert_eq!(image, [-0.5, 1.0, -1.0, 3.0, -1.0, -1.5]);

        let mut image = [-1.0, 2.0];
        Epilogue {
            bias: None,
            activation: Some(LEAKY),
        }
        .apply(&mut image, 1);
        assert_eq!(image, [-0.01, 2.0]);
    }

    #[test]
    fn relu_lets_nan_through_in_both_directions() {
        // A NaN must reach the loss so the trainer's recovery sees it (f32::max would hide it).
        assert!(FusedActivation::Relu.apply(f32::NAN).is_nan());
        assert_eq!(FusedActivation::Relu.apply(-2.0), 0.0);
        let mut grads = [1.0; 4];
        FusedActivation::Relu.backward(&[f32::NAN, 0.0, -1.0, 3.0], &mut grads);
        assert_eq!(grads, [1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn leaky_relu_scales_the_gradient_below_zero() {
        let mut grads = [2.0, 3.0, 4.0];
        LEAKY.backward(&[-0.02, 0.0, 5.0], &mut grads);
        assert_eq!(grads, [2.0 * 0.01, 3.0, 4.0]);

        // Longer than one parallel chunk: every chunk is masked by its own outputs.
        let n = 3 * BACKWARD_CHUNK + 5;
        let output: Vec<f32> = (0..n)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let mut grads = vec![1.0; n];
        FusedActivation::Relu.backward(&output, &mut grads);
        let expected: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
        assert_eq!(grads, expected);
    }
}
