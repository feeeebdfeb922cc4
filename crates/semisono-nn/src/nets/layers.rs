//! Small constructors for the convolution and normalisation layers the networks share.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::Device;

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
    config.init(device)
}

/// BatchNorm with PyTorch's defaults (eps 1e-5, momentum 0.1, γ = 1, β = 0).
pub(crate) fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}
