//! The CPU convolutions lowered to im2col + GEMM (`sense::nn::conv`) against burn's own
//! `conv2d` / `conv_transpose2d`: forward pass and every gradient (input, weight, bias) on odd
//! and even sizes, through autodiff on the flex backend; and with the activation the lowered
//! kernels fold in, against burn's conv followed by burn's activation.

use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Distribution, Tensor};
use sense::nn::ActivationKind;
use sense::nn::conv::{self, ConvGeometry};

const TOLERANCE: f32 = 1e-5;

fn random<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(dims, Distribution::Normal(0.0, 1.0), device)
}

/// Largest absolute difference, relative to the reference's largest magnitude (at least 1).
fn relative_error<const D: usize>(got: Tensor<D>, want: Tensor<D>) -> f32 {
    let got: Vec<f32> = got.into_data().try_to_vec::<f32>().unwrap();
    let want: Vec<f32> = want.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / scale)
        .fold(0.0, f32::max)
}

fn geometry(kernel: usize, stride: usize, padding: usize) -> ConvGeometry {
    ConvGeometry {
        kernel: [kernel, kernel],
        stride: [stride, stride],
        padding: [padding, padding],
    }
}

/// A layer's output and its gradients with respect to x, w and b.
struct Pass {
    output: Tensor<4>,
    grad_x: Tensor<4>,
    grad_w: Tensor<4>,
    grad_b: Tensor<1>,
}

/// Runs `layer(x, w, b)` on an autodiff device and a weighted sum of its output backwards.
fn forward_backward(
    layer: impl Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>,
    x: &Tensor<4>,
    w: &Tensor<4>,
    b: &Tensor<1>,
    probe: &Tensor<4>,
) -> Pass {
    let device = x.device().autodiff();
    let x = Tensor::<4>::from_data(x.to_data(), &device).require_grad();
    let w = Tensor::<4>::from_data(w.to_data(), &device).require_grad();
    let b = Tensor::<1>::from_data(b.to_data(), &device).require_grad();
    let y = layer(x.clone(), w.clone(), b.clone());
    let probe = Tensor::<4>::from_data(probe.to_data(), &device);
    let grads = (y.clone() * probe).sum().backward();
    Pass {
        output: y.inner(),
        grad_x: x.grad(&grads).expect("x has a gradient"),
        grad_w: w.grad(&grads).expect("w has a gradient"),
        grad_b: b.grad(&grads).expect("b has a gradient"),
    }
}

/// burn's own 3×3 stride-2 transposed conv, the reference for ours.
fn burn_deconv3x3_s2(
    x: Tensor<4>,
    w: Tensor<4>,
    b: Tensor<1>,
    padding_out: [usize; 2],
) -> Tensor<4> {
    let options = ConvTransposeOptions::new([2, 2], [1, 1], padding_out, [1, 1], 1);
    conv_transpose2d(x, w, Some(b), options)
}

fn assert_close(label: &str, got: Pass, want: Pass) {
    let pairs = [
        ("output", got.output, want.output),
        ("input gradient", got.grad_x, want.grad_x),
        ("weight gradient", got.grad_w, want.grad_w),
    ];
    for (name, g, w) in pairs {
        assert_eq!(g.dims(), w.dims(), "{label}: {name} shape");
        let error = relative_error(g, w);
        assert!(error <= TOLERANCE, "{label}: {name} differs by {error:e}");
    }
    let error = relative_error(got.grad_b, want.grad_b);
    assert!(
        error <= TOLERANCE,
        "{label}: bias gradient differs by {error:e}"
    );
}

#[test]
fn lowered_conv2d_matches_burn_forward_and_gradients() {
    let device = Device::flex();
    device.seed(11);
    // (batch, c_in, c_out, h, w, kernel, stride, padding): odd and even sizes, one channel in
    // and out (the first and last layers), stride 1 and 2, a 1×1 and a 5×5 kernel.
    let cases = [
        (4, 1, 8, 28, 28, 3, 2, 1),
        (3, 8, 8, 25, 25, 3, 2, 1),
        (2, 5, 3, 13, 7, 3, 2, 1),
        (2, 4, 6, 10, 11, 3, 1, 1),
        (3, 6, 1, 9, 8, 3, 2, 1),
        (2, 3, 4, 7, 6, 1, 1, 0),
        (2, 2, 3, 12, 9, 5, 2, 2),
    ];
    for (batch, c_in, c_out, h, w, k, s, p) in cases {
        let g = geometry(k, s, p);
        let x = random([batch, c_in, h, w], &device);
        let weight = random([c_out, c_in, k, k], &device);
        let bias = random([c_out], &device);
        let [oh, ow] = g.output_px([h, w]).unwrap();
        let probe = random([batch, c_out, oh, ow], &device);
        let lowered = forward_backward(
            |x, w, b| conv::conv2d(x, w, Some(b), g, None),
            &x,
            &weight,
            &bias,
            &probe,
        );
        let reference = forward_backward(
            |x, w, b| conv2d(x, w, Some(b), ConvOptions::new([s, s], [p, p], [1, 1], 1)),
            &x,
            &weight,
            &bias,
            &probe,
        );
        assert_close(
            &format!("conv2d {batch}×{c_in}×{h}×{w} → {c_out}, k{k} s{s} p{p}"),
            lowered,
            reference,
        );
    }
}

#[test]
fn lowered_conv_transpose2d_matches_burn_forward_and_gradients() {
    let device = Device::flex();
    device.seed(12);
    // (batch, c_in, c_out, small h, small w, big h, big w): the decoder's 3×3 stride-2 layers
    // growing odd and even sizes back (output padding 0 and 1 on each axis).
    let cases = [
        (3, 8, 8, 4, 4, 7, 7),
        (2, 8, 8, 7, 7, 13, 13),
        (2, 8, 8, 13, 13, 25, 25),
        (4, 8, 1, 14, 14, 28, 28),
        (2, 6, 3, 20, 28, 40, 56),
        (3, 5, 2, 5, 9, 9, 17),
        (2, 4, 1, 25, 25, 50, 50),
    ];
    let g = geometry(3, 2, 1);
    for (batch, c_in, c_out, h, w, big_h, big_w) in cases {
        let x = random([batch, c_in, h, w], &device);
        let weight = random([c_in, c_out, 3, 3], &device);
        let bias = random([c_out], &device);
        let probe = random([batch, c_out, big_h, big_w], &device);
        let padding_out = [big_h + 1 - 2 * h, big_w + 1 - 2 * w];
        let lowered = forward_backward(
            |x, w, b| conv::conv_transpose2d(x, w, Some(b), g, [big_h, big_w], None),
            &x,
            &weight,
            &bias,
            &probe,
        );
        let reference = forward_backward(
            |x, w, b| burn_deconv3x3_s2(x, w, b, padding_out),
            &x,
            &weight,
            &bias,
            &probe,
        );
        assert_close(
            &format!("conv_transpose2d {batch}×{c_in}×{h}×{w} → {c_out}×{big_h}×{big_w}"),
            lowered,
            reference,
        );
    }
}

#[test]
fn lowered_convolutions_run_without_autodiff() {
    // Inference (`model.valid()`) calls the plain flex backend.
    let device = Device::flex();
    device.seed(13);
    let g = geometry(3, 2, 1);
    let x = random([2, 3, 9, 10], &device);
    let w = random([4, 3, 3, 3], &device);
    let want = conv2d(
        x.clone(),
        w.clone(),
        None,
        ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
    );
    let got = conv::conv2d(x, w, None, g, None);
    assert!(relative_error(got, want) <= TOLERANCE);
}

#[test]
fn fused_activations_match_burn_forward_and_gradients() {
    let device = Device::flex();
    device.seed(15);
    let g = geometry(3, 2, 1);
    // ReLU and leaky ReLU run inside the lowered kernels; ELU is applied after them by burn.
    let activations = [
        ActivationKind::Relu,
        ActivationKind::LeakyRelu,
        ActivationKind::Elu,
    ];
    for activation in activations {
        // An encoder layer (odd and even sizes) …
        for (batch, c_in, c_out, h, w) in [(3, 2, 6, 13, 12), (2, 6, 5, 25, 25)] {
            let x = random([batch, c_in, h, w], &device);
            let weight = random([c_out, c_in, 3, 3], &device);
            let bias = random([c_out], &device);
            let [oh, ow] = g.output_px([h, w]).unwrap();
            let probe = random([batch, c_out, oh, ow], &device);
            let fused = forward_backward(
                |x, w, b| conv::conv2d(x, w, Some(b), g, Some(activation)),
                &x,
                &weight,
                &bias,
                &probe,
            );
            let reference = forward_backward(
                |x, w, b| {
                    let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
                    activation.apply(conv2d(x, w, Some(b), options))
                },
                &x,
                &weight,
                &bias,
                &probe,
            );
            let label = format!("conv2d + {activation:?} {batch}×{c_in}×{h}×{w} → {c_out}");
            assert_close(&label, fused, reference);
        }
        // … and decoder layers (even and odd output sizes).
        for (batch, c_in, c_out, h, w, big_h, big_w) in
            [(2, 5, 4, 7, 7, 13, 14), (3, 4, 6, 13, 13, 25, 25)]
        {
            let x = random([batch, c_in, h, w], &device);
            let weight = random([c_in, c_out, 3, 3], &device);
            let bias = random([c_out], &device);
            let probe = random([batch, c_out, big_h, big_w], &device);
            let padding_out = [big_h + 1 - 2 * h, big_w + 1 - 2 * w];
            let fused = forward_backward(
                |x, w, b| {
                    conv::conv_transpose2d(x, w, Some(b), g, [big_h, big_w], Some(activation))
                },
                &x,
                &weight,
                &bias,
                &probe,
            );
            let reference = forward_backward(
                |x, w, b| activation.apply(burn_deconv3x3_s2(x, w, b, padding_out)),
                &x,
                &weight,
                &bias,
                &probe,
            );
            let label = format!("conv_transpose2d + {activation:?} → {c_out}×{big_h}×{big_w}");
            assert_close(&label, fused, reference);
        }
    }
}

#[test]
fn fused_activations_run_without_autodiff() {
    let device = Device::flex();
    device.seed(16);
    let g = geometry(3, 2, 1);
    let x = random([2, 3, 9, 10], &device);
    let w = random([4, 3, 3, 3], &device);
    let b = random([4], &device);
    for activation in [ActivationKind::Relu, ActivationKind::LeakyRelu] {
        let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
        let want = activation.apply(conv2d(x.clone(), w.clone(), Some(b.clone()), options));
        let got = conv::conv2d(x.clone(), w.clone(), Some(b.clone()), g, Some(activation));
        assert!(relative_error(got, want) <= TOLERANCE, "{activation:?}");
    }
}

#[test]
fn subpixel_conv_transpose_matches_burn_forward_and_gradients() {
    // The GPU form of the decoder layer, checked on the CPU backend against burn's kernel.
    let device = Device::flex();
    device.seed(14);
    let cases = [
        (2, 8, 8, 4, 4, 7, 7),
        (2, 6, 1, 14, 14, 28, 28),
        (3, 5, 2, 5, 9, 9, 17),
        (2, 4, 3, 13, 13, 25, 25),
    ];
    for (batch, c_in, c_out, h, w, big_h, big_w) in cases {
        let x = random([batch, c_in, h, w], &device);
        let weight = random([c_in, c_out, 3, 3], &device);
        let bias = random([c_out], &device);
        let probe = random([batch, c_out, big_h, big_w], &device);
        let padding_out = [big_h + 1 - 2 * h, big_w + 1 - 2 * w];
        let subpixel = forward_backward(
            |x, w, b| conv::subpixel_conv_transpose3x3_s2(x, w, Some(b), [big_h, big_w]),
            &x,
            &weight,
            &bias,
            &probe,
        );
        let reference = forward_backward(
            |x, w, b| burn_deconv3x3_s2(x, w, b, padding_out),
            &x,
            &weight,
            &bias,
            &probe,
        );
        assert_close(
            &format!("sub-pixel {batch}×{c_in}×{h}×{w} → {c_out}×{big_h}×{big_w}"),
            subpixel,
            reference,
        );
    }
}
