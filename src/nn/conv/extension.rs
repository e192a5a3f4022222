//! The lowered convolutions as a burn backend extension: implemented for burn-flex (the CPU
//! backend) on top of [`super::lowering`], with a backward pass of our own for autodiff over
//! flex. Other backends never reach these methods (`super::conv2d` routes by device).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::TensorData;

use super::epilogue::{Epilogue, FusedActivation};
use super::lowering::{self, ConvDims, ConvGeometry};

/// Dense 2-D convolutions (groups 1, dilation 1) with a per-channel bias and an optional
/// activation, lowered to im2col + GEMM. The bias and the activation are folded in so they, and
/// their gradients, run in the convolution's parallel passes instead of as whole-tensor ops of
/// their own.
#[backend_extension(Flex, Autodiff)]
pub trait LoweredConv: Backend {
    /// `x` `[B, C_in, H, W]`, `weight` `[C_out, C_in, k_h, k_w]`, `bias` `[C_out]` →
    /// `activation(conv + bias)` `[B, C_out, H_out, W_out]`.
    fn lowered_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: ConvGeometry,
        activation: Option<FusedActivation>,
    ) -> FloatTensor<Self>;

    /// `x` `[B, C_in, h, w]`, `weight` `[C_in, C_out, k_h, k_w]`, `bias` `[C_out]` →
    /// `activation(convᵀ + bias)` `[B, C_out, H, W]` with `[H, W] = output_px` (which fixes the
    /// output padding).
    fn lowered_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: ConvGeometry,
        output_px: [usize; 2],
        activation: Option<FusedActivation>,
    ) -> FloatTensor<Self>;
}

impl LoweredConv for Flex {
    fn lowered_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        geometry: ConvGeometry,
        activation: Option<FusedActivation>,
    ) -> FlexTensor {
        let dims = conv_dims(&x, &weight, geometry);
        let bias = values(&bias);
        let epilogue = Epilogue {
            bias: Some(&bias),
            activation,
        };
        let y = lowering::conv_forward(&values(&x), &values(&weight), &dims, epilogue);
        tensor(
            y,
            [dims.batch, dims.c_out, dims.output_px[0], dims.output_px[1]],
        )
    }

    fn lowered_conv_transpose2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        geometry: ConvGeometry,
        output_px: [usize; 2],
        activation: Option<FusedActivation>,
    ) -> FlexTensor {
        let dims = transposed_dims(&x, &weight, geometry, output_px);
        let bias = values(&bias);
        let epilogue = Epilogue {
            bias: Some(&bias),
            activation,
        };
        let y = lowering::conv_input_grad(&values(&x), &values(&weight), &dims, epilogue);
        tensor(y, [dims.batch, dims.c_in, output_px[0], output_px[1]])
    }
}

/// What a fused activation's backward needs: which activation, and the layer's output (the
/// mask is the output's sign, so the pre-activation values are never kept).
#[derive(Debug, Clone)]
struct ActivationState {
    activation: FusedActivation,
    output: FlexTensor,
}

impl ActivationState {
    fn of(activation: Option<FusedActivation>, output: &FlexTensor) -> Option<Self> {
        activation.map(|activation| Self {
            activation,
            output: output.clone(),
        })
    }

    /// The gradient before the activation, from the gradient after it: in place when the
    /// gradient's buffer is its own (the usual case), else in a copy.
    fn backward(this: Option<Self>, mut grad: FlexTensor) -> FlexTensor {
        let Some(state) = this else {
            return grad;
        };
        let output = values(&state.output);
        let elements = grad.shape().num_elements();
        if grad.is_contiguous()
            && let Some(values) = grad.try_storage_mut::<f32>()
            && values.len() == elements
        {
            state.activation.backward(&output, values);
            return grad;
        }
        let mut input_grad = values(&grad).into_owned();
        state.activation.backward(&output, &mut input_grad);
        FlexTensor::from_data(TensorData::new(input_grad, grad.shape()))
    }
}

impl<C: CheckpointStrategy> LoweredConv for Autodiff<Flex, C> {
    fn lowered_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: ConvGeometry,
        activation: Option<FusedActivation>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvBackward;

        impl Backward<Flex, 3> for ConvBackward {
            type State = (NodeId, NodeId, ConvGeometry, Option<ActivationState>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let (x_id, weight_id, geometry, activation) = ops.state;
                let grad = ActivationState::backward(activation, grads.consume::<Flex>(&ops.node));
                let x: FlexTensor = checkpointer.retrieve_node_output(x_id);
                let weight: FlexTensor = checkpointer.retrieve_node_output(weight_id);
                let dims = conv_dims(&x, &weight, geometry);
                let dy = values(&grad);
                if let Some(node) = node_bias {
                    let db = lowering::channel_sums(&dy, dims.c_out, dims.output_px);
                    grads.register::<Flex>(node.id, vector(db));
                }
                if let Some(node) = node_weight {
                    let dw = lowering::conv_weight_grad(&values(&x), &dy, &dims);
                    grads.register::<Flex>(node.id, tensor(dw, weight.shape().dims()));
                }
                if let Some(node) = node_x {
                    let dx =
                        lowering::conv_input_grad(&dy, &values(&weight), &dims, Epilogue::NONE);
                    grads.register::<Flex>(node.id, tensor(dx, x.shape().dims()));
                }
            }
        }

        let nodes = [x.node(), weight.node(), bias.node()];
        match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let (x_id, weight_id) = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let y = Flex::lowered_conv2d(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    geometry,
                    activation,
                );
                let state = (
                    x_id,
                    weight_id,
                    geometry,
                    ActivationState::of(activation, &y),
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::lowered_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                geometry,
                activation,
            )),
        }
    }

    fn lowered_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: ConvGeometry,
        output_px: [usize; 2],
        activation: Option<FusedActivation>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvTransposeBackward;

        impl Backward<Flex, 3> for ConvTransposeBackward {
            type State = (
                NodeId,
                NodeId,
                ConvGeometry,
                [usize; 2],
                Option<ActivationState>,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let (x_id, weight_id, geometry, output_px, activation) = ops.state;
                let grad = ActivationState::backward(activation, grads.consume::<Flex>(&ops.node));
                let x: FlexTensor = checkpointer.retrieve_node_output(x_id);
                let weight: FlexTensor = checkpointer.retrieve_node_output(weight_id);
                // In the conv view the transposed conv's output gradient is the large side
                // and its input the small side.
                let dims = transposed_dims(&x, &weight, geometry, output_px);
                let dy_large = values(&grad);
                if let Some(node) = node_bias {
                    let db = lowering::channel_sums(&dy_large, dims.c_in, output_px);
                    grads.register::<Flex>(node.id, vector(db));
                }
                if let Some(node) = node_weight {
                    let dw = lowering::conv_weight_grad(&dy_large, &values(&x), &dims);
                    grads.register::<Flex>(node.id, tensor(dw, weight.shape().dims()));
                }
                if let Some(node) = node_x {
                    let dx =
                        lowering::conv_forward(&dy_large, &values(&weight), &dims, Epilogue::NONE);
                    grads.register::<Flex>(node.id, tensor(dx, x.shape().dims()));
                }
            }
        }

        let nodes = [x.node(), weight.node(), bias.node()];
        match ConvTransposeBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let (x_id, weight_id) = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let y = Flex::lowered_conv_transpose2d(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    geometry,
                    output_px,
                    activation,
                );
                let activation = ActivationState::of(activation, &y);
                let state = (x_id, weight_id, geometry, output_px, activation);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::lowered_conv_transpose2d(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                geometry,
                output_px,
                activation,
            )),
        }
    }
}

/// The conv-view dimensions of a convolution of `x` `[B, C_in, H, W]` by `weight`
/// `[C_out, C_in, k_h, k_w]`.
fn conv_dims(x: &FlexTensor, weight: &FlexTensor, geometry: ConvGeometry) -> ConvDims {
    let [batch, c_in, h, w] = dims4(x);
    let [c_out, ..] = dims4(weight);
    let input_px = [h, w];
    ConvDims {
        batch,
        c_in,
        c_out,
        input_px,
        output_px: output_px(geometry, input_px),
        geometry,
    }
}

/// The conv-view dimensions of a transposed convolution of `x` `[B, C_in, h, w]` by `weight`
/// `[C_in, C_out, k_h, k_w]` to `output_px`: the conv that maps the output back to `x`.
fn transposed_dims(
    x: &FlexTensor,
    weight: &FlexTensor,
    geometry: ConvGeometry,
    output_px: [usize; 2],
) -> ConvDims {
    let [batch, c_small, h, w] = dims4(x);
    let [_, c_large, ..] = dims4(weight);
    let dims = ConvDims {
        batch,
        c_in: c_large,
        c_out: c_small,
        input_px: output_px,
        output_px: [h, w],
        geometry,
    };
    assert_eq!(
        geometry.output_px(output_px),
        Some([h, w]),
        "lowered conv_transpose2d: output size {output_px:?} does not invert to the input size {:?}",
        [h, w]
    );
    dims
}

fn output_px(geometry: ConvGeometry, input_px: [usize; 2]) -> [usize; 2] {
    geometry.output_px(input_px).unwrap_or_else(|| {
        panic!("lowered conv2d: kernel {geometry:?} is larger than the padded input {input_px:?}")
    })
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    t.shape().dims::<4>()
}

/// The values of a float32 tensor, contiguous (a copy only when the layout is strided).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => {
            let contiguous = t.to_contiguous();
            let slice = contiguous
                .as_slice::<f32>()
                .expect("lowered conv: tensors are float32 (checked before dispatch)");
            std::borrow::Cow::Owned(slice.to_vec())
        }
    }
}

fn tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn vector(values: Vec<f32>) -> FlexTensor {
    let len = values.len();
    FlexTensor::from_data(TensorData::new(values, [len]))
}
