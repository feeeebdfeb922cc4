//! Small constructors for the convolution and normalisation layers the networks share, and the
//! layer enum that mirrors a PyTorch `nn.Sequential`.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::AvgPool2d;
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d, Relu};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};

pub use crate::kernels::batch_norm_op::batch_norm;
pub use crate::kernels::conv2d::Activation;
use crate::kernels::dropout_op::hashed_dropout;
use crate::kernels::{conv_bn_op, conv_op};

/// A 2-D convolution (groups 1, symmetric padding) whose backward runs the GEMM kernels on
/// `flex` ([`crate::kernels::conv_op`]). Its parameters are named as in `burn::nn::conv::Conv2d`
/// and PyTorch (`weight`, `bias`), so checkpoints and imported `.pth` weights are unchanged.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out channels, in channels, kh, kw]`.
    pub weight: Param<Tensor<4>>,
    /// `[out channels]`, if any.
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Conv2d {
    /// Applies the convolution to `x` `[batch, in channels, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_op::conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(Param::val),
            self.options(),
        )
    }

    /// `activation(bn(self.forward(x)))`; in inference on flex one fused kernel call
    /// ([`conv_bn_op::conv_bn_activation`]).
    pub fn forward_bn(&self, bn: &BatchNorm, activation: Activation, x: Tensor<4>) -> Tensor<4> {
        conv_bn_op::conv_bn_activation(
            x,
            self.weight.val(),
            self.bias.as_ref().map(Param::val),
            self.options(),
            bn,
            activation,
        )
    }

    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new(self.stride, self.padding, self.dilation, 1)
    }
}

/// One layer of a PyTorch `nn.Sequential` (torchvision's `downsample`, Res2Net's deep stem).
///
/// A `Vec<SequentialLayer>` has the Sequential's parameter keys (`downsample.0.weight`,
/// `conv1.3.weight`, ...): burn-store skips enum variant names, and parameter-free layers (ReLU,
/// average pooling) keep their index as they do in PyTorch.
#[derive(Module, Debug)]
pub enum SequentialLayer {
    /// A convolution.
    Conv(Conv2d),
    /// A BatchNorm.
    Norm(BatchNorm),
    /// A ReLU.
    Relu(Relu),
    /// An average pooling.
    AvgPool(AvgPool2d),
}

impl SequentialLayer {
    /// Applies the layer.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Conv(conv) => conv.forward(x),
            Self::Norm(norm) => batch_norm(norm, x),
            Self::Relu(_) => crate::kernels::activation_op::relu(x),
            Self::AvgPool(pool) => pool.forward(x),
        }
    }
}

/// Runs a `Vec<SequentialLayer>` in order (identity when empty); a convolution followed by a
/// BatchNorm (and a ReLU) runs as [`Conv2d::forward_bn`].
pub fn run_sequential(layers: &[SequentialLayer], x: Tensor<4>) -> Tensor<4> {
    use SequentialLayer::{Conv, Norm, Relu};
    let (mut h, mut rest) = (x, layers);
    loop {
        (h, rest) = match rest {
            [Conv(conv), Norm(bn), Relu(_), tail @ ..] => {
                (conv.forward_bn(bn, Activation::Relu, h), tail)
            }
            [Conv(conv), Norm(bn), tail @ ..] => {
                (conv.forward_bn(bn, Activation::Identity, h), tail)
            }
            [layer, tail @ ..] => (layer.forward(h), tail),
            [] => return h,
        };
    }
}

/// Kaiming-normal, fan-out, ReLU gain: torchvision's ResNet init (`kaiming_normal_(mode="fan_out",
/// nonlinearity="relu")`), std = sqrt(2 / fan_out).
pub(crate) fn kaiming_normal_fan_out() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

/// A square convolution with symmetric padding. `init = None` keeps Burn's default, which is
/// PyTorch's default `Conv2d` init (Kaiming-uniform with a = √5, and the matching bias range).
pub(crate) fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
    init: Option<Initializer>,
    device: &Device,
) -> Conv2d {
    let mut config = Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(bias);
    if let Some(init) = init {
        config = config.with_initializer(init);
    }
    // Burn's initialisation, so weights are drawn exactly as before this type existed.
    let burn_conv = config.init(device);
    Conv2d {
        weight: burn_conv.weight,
        bias: burn_conv.bias,
        stride: [stride; 2],
        padding: [padding; 2],
        dilation: [1, 1],
    }
}

/// BatchNorm with PyTorch's defaults (eps 1e-5, momentum 0.1, γ = 1, β = 0).
pub(crate) fn new_batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}

/// `layer.forward(x)` with a cheaper mask: Burn's draws a Bernoulli tensor with ChaCha on one
/// thread and multiplies twice (6% of the reference U-Net's training step, docs/benchmarks.md);
/// here a counter-based hash of the element index gives the mask `{0, 1/keep}` on every core, where
/// it is used ([`hashed_dropout`]: never stored, and recomputed in the backward). The hash's seed is
/// one draw from the device's RNG, so the per-step seed still decides every mask (a resumed run
/// draws the same ones) and the thread count does not.
pub fn dropout<const D: usize>(layer: &burn::nn::Dropout, x: Tensor<D>) -> Tensor<D> {
    if !layer.training.is_enabled() || !x.device().is_autodiff() || layer.prob == 0.0 {
        return x;
    }
    let draw = Tensor::<1>::random([2], Distribution::Uniform(0.0, 1.0), &x.device())
        .try_into_vec_as::<f32>()
        .expect("f32 random draw");
    let seed = (u64::from(draw[0].to_bits()) << 32) | u64::from(draw[1].to_bits());
    hashed_dropout(x, seed, 1.0 - layer.prob)
}
