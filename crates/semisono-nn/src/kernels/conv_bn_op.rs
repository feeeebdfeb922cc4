//! Inference: convolution, eval-mode BatchNorm and activation as one kernel call. The BatchNorm
//! (and the convolution's bias) fold into a per-channel `scale` and `shift` that the GEMM forward
//! applies with the activation to each image while it is in cache
//! ([`super::conv2d::Epilogue`]), instead of two more passes over the tensor and two more
//! allocations. Only a plain flex device takes this path (no autodiff: nothing to differentiate,
//! and BatchNorm uses its running statistics there); everything else runs the three ops.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::nn::BatchNorm;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};

use super::activation_op::{leaky_relu, relu};
use super::batch_norm_op::{batch_norm, eval_scale_shift};
use super::conv2d::Activation;
use super::conv_op::{self, gemm_forward, geometry, geometry_of, on_flex, GEMM_FORWARD_MIN_C_OUT};

/// The custom op; only flex implements it ([`conv_bn_activation`] routes nothing else here).
#[backend_extension(Flex)]
pub trait ConvAffineBackend: Backend {
    /// `activation(conv2d(x, weight) · scale[c] + shift[c])`.
    fn conv2d_affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        options: ConvOptions<2>,
        activation: Activation,
    ) -> FloatTensor<Self>;
}

impl ConvAffineBackend for Flex {
    fn conv2d_affine(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        options: ConvOptions<2>,
        activation: Activation,
    ) -> FloatTensor<Self> {
        let geom = geometry(&x, &weight, None, &options)
            .expect("conv2d_affine: conv_bn_activation checks that the kernels apply");
        gemm_forward(&geom, &x, &weight, Some(&scale), Some(&shift), activation)
    }
}

/// `activation(bn(conv2d(x, weight, bias)))`: one fused kernel call on a plain flex device (f32,
/// groups 1, symmetric padding, at least `GEMM_FORWARD_MIN_C_OUT` output channels), the three
/// ops otherwise (training, autodiff, other backends).
pub fn conv_bn_activation(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    bn: &BatchNorm,
    activation: Activation,
) -> Tensor<4> {
    let all_f32 = [x.dtype(), weight.dtype()] == [DType::F32; 2];
    let fusable = !x.device().is_autodiff()
        && geometry_of(&x.dims(), &weight.dims(), all_f32, &options)
            .is_some_and(|g| g.c_out >= GEMM_FORWARD_MIN_C_OUT);
    let x = x.into_dispatch();
    if !fusable || !on_flex(&x) {
        let y = conv_op::conv2d(Tensor::from_dispatch(x), weight, bias, options);
        return activate(batch_norm(bn, y), activation);
    }
    let (scale, shift) = eval_scale_shift(bn, bn.gamma.val(), bn.beta.val());
    // conv + b, normalised: (y + b)·scale + shift = y·scale + (b·scale + shift).
    let shift = match bias {
        Some(b) => shift.add(b.mul(scale.clone())),
        None => shift,
    };
    Tensor::from_dispatch(<Dispatch as ConvAffineBackend>::conv2d_affine(
        x,
        weight.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
        options,
        activation,
    ))
}

/// `activation(x)` through the same ops the networks use unfused.
fn activate(x: Tensor<4>, activation: Activation) -> Tensor<4> {
    match activation {
        Activation::Identity => x,
        Activation::Relu => relu(x),
        Activation::LeakyRelu(slope) => leaky_relu(x, slope),
    }
}
