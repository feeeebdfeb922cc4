//! Inference's fused convolution + eval BatchNorm + activation (`Conv2d::forward_bn` on a plain flex
//! device) against Burn's three ops on random inputs: stride 1 (shifted GEMMs), stride 2 (im2col),
//! small planes, with and without a convolution bias, each activation, and a layer too thin for
//! the kernels (Burn's path). On an autodiff device `forward_bn` must be the unfused ops exactly.

use burn::module::{Param, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use semisono_nn::nets::{Activation, Conv2d};

fn host(t: Tensor<4>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

fn normal<const D: usize>(shape: [usize; D], mean: f64, std: f64, dev: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(mean, std), dev)
}

/// A BatchNorm with random γ, β and running statistics (variance positive).
fn random_batch_norm(channels: usize, dev: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(channels).init(dev);
    bn.gamma = Param::from_tensor(normal([channels], 1.0, 0.5, dev));
    bn.beta = Param::from_tensor(normal([channels], 0.0, 0.5, dev));
    bn.running_mean = RunningState::new(normal([channels], 0.0, 0.3, dev));
    bn.running_var = RunningState::new(Tensor::<1>::random(
        [channels],
        Distribution::Uniform(0.2, 2.0),
        dev,
    ));
    bn
}

/// Burn's ops: conv2d, BatchNorm::forward (running statistics without autodiff), activation.
fn reference(conv: &Conv2d, bn: &BatchNorm, activation: Activation, x: Tensor<4>) -> Tensor<4> {
    let options = ConvOptions::new(conv.stride, conv.padding, conv.dilation, 1);
    let y = bn.forward(conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(Param::val),
        options,
    ));
    match activation {
        Activation::Identity => y,
        Activation::Relu => burn::tensor::activation::relu(y),
        Activation::LeakyRelu(slope) => burn::tensor::activation::leaky_relu(y, slope),
    }
}

fn random_conv(
    [c_in, c_out, kernel, stride, padding]: [usize; 5],
    bias: bool,
    dev: &Device,
) -> Conv2d {
    Conv2d {
        weight: Param::from_tensor(normal([c_out, c_in, kernel, kernel], 0.0, 0.2, dev)),
        bias: bias.then(|| Param::from_tensor(normal([c_out], 0.0, 0.5, dev))),
        stride: [stride; 2],
        padding: [padding; 2],
        dilation: [1, 1],
    }
}

#[test]
fn fused_conv_bn_activation_matches_burn_in_inference() {
    let dev = Device::flex();
    dev.seed(5);
    let activations = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.01),
    ];
    // [c_in, c_out, kernel, stride, padding], input side.
    let cases = [
        ([6, 16, 3, 1, 1], 20), // shifted GEMMs, wide grid
        ([5, 12, 1, 1, 0], 17), // 1x1 in place
        ([4, 16, 3, 2, 1], 21), // im2col
        ([8, 24, 3, 1, 1], 6),  // a plane under the shifted path's minimum
        ([3, 16, 7, 2, 3], 30), // a stem
        ([16, 2, 1, 1, 0], 12), // too few output channels: Burn's path
    ];
    for (i, (geometry, side)) in cases.into_iter().enumerate() {
        for bias in [false, true] {
            let conv = random_conv(geometry, bias, &dev);
            let bn = random_batch_norm(geometry[1], &dev);
            let x = normal([3, geometry[0], side, side], 0.0, 1.0, &dev);
            for activation in activations {
                let ours = host(conv.forward_bn(&bn, activation, x.clone()));
                let theirs = host(reference(&conv, &bn, activation, x.clone()));
                assert_eq!(ours.len(), theirs.len());
                let scale = theirs.iter().fold(1f32, |m, v| m.max(v.abs()));
                for (j, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale,
                        "case {i} bias {bias} {activation:?}: [{j}] {a} against {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn forward_bn_under_autodiff_is_the_unfused_ops() {
    let dev = Device::flex().autodiff();
    dev.seed(6);
    let conv = random_conv([6, 16, 3, 1, 1], true, &dev);
    let bn = random_batch_norm(16, &dev);
    let x = normal([2, 6, 18, 18], 0.0, 1.0, &dev);
    let unfused = semisono_nn::kernels::activation_op::leaky_relu(
        semisono_nn::nets::batch_norm(&bn, conv.forward(x.clone())),
        0.01,
    );
    let fused = conv.forward_bn(&bn, Activation::LeakyRelu(0.01), x);
    assert_eq!(host(fused), host(unfused));
}
