//! ResNet-18/34 (BasicBlock) backbones with a width multiplier.
//!
//! Field names mirror torchvision's `ResNet` (`conv1`, `bn1`, `layer1..4` as `Vec<BasicBlock>`,
//! each block's `conv1/bn1/conv2/bn2/downsample`), and `downsample` is a `Vec` of a conv then a BN
//! (a `Vec<SequentialLayer>` standing for torchvision's `Sequential`, keys `downsample.0.*`,
//! `downsample.1.*`). A torchvision
//! `state_dict` therefore maps onto this module key for key (burn-store's `PytorchStore` skips
//! enum variant names and maps BN `weight/bias` to `gamma/beta`); only `fc.*` and
//! `*.num_batches_tracked` are left over. Width multipliers other than 1 change the shapes, so
//! pretrained weights apply to `width_multiplier = 1` only.

use crate::kernels::activation_op::relu;
use burn::config::Config;
use burn::module::Module;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::backbone::{EncoderFeatures, InputNorm, InputNormConfig, StageHook};
use super::layers::{
    conv, kaiming_normal_fan_out, new_batch_norm, run_sequential, Activation, Conv2d,
    SequentialLayer,
};
use crate::kernels::max_pool_op::max_pool2d;

/// Configuration of a [`ResNet`] built from BasicBlocks.
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Blocks per stage: `[2, 2, 2, 2]` is ResNet-18, `[3, 4, 6, 3]` ResNet-34.
    pub layers: [usize; 4],
    /// Channel multiplier on torchvision's widths (64, 128, 256, 512); e.g. 0.25 for a CPU preset.
    #[config(default = 1.0)]
    pub width_multiplier: f64,
    /// Input channels (3 for RGB; grey ultrasound is replicated to 3 for pretrained weights).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Build `layer4`. The segmentation encoder stops at `layer3` (as Hermes does), so it need not
    /// hold the weights of a stage it never runs.
    #[config(default = true)]
    pub layer4: bool,
    /// Input normalisation before the stem (`None`: the inputs go in as they are).
    #[config(default = "None")]
    pub input_norm: Option<InputNormConfig>,
}

impl ResNetConfig {
    /// ResNet-18 layout.
    pub fn resnet18() -> Self {
        Self::new([2, 2, 2, 2])
    }

    /// ResNet-34 layout.
    pub fn resnet34() -> Self {
        Self::new([3, 4, 6, 3])
    }

    /// Output channels of `layer1..4` (the stem has as many as `layer1`).
    pub fn stage_channels(&self) -> [usize; 4] {
        assert!(
            self.width_multiplier > 0.0,
            "ResNetConfig: width_multiplier must be > 0"
        );
        let base = ((64.0 * self.width_multiplier).round() as usize).max(1);
        [base, 2 * base, 4 * base, 8 * base]
    }

    /// Builds the network (torchvision's init: Kaiming-normal fan-out convs, BN γ = 1, β = 0).
    pub fn init(&self, device: &Device) -> ResNet {
        let widths = self.stage_channels();
        let stem = widths[0];
        let conv1 = conv(
            [self.in_channels, stem],
            7,
            2,
            3,
            false,
            Some(kaiming_normal_fan_out()),
            device,
        );
        let mut in_channels = stem;
        let mut stage = |index: usize, stride: usize| -> Vec<BasicBlock> {
            let out = widths[index];
            (0..self.layers[index])
                .map(|b| {
                    let block_stride = if b == 0 { stride } else { 1 };
                    let block = BasicBlock::new(in_channels, out, block_stride, device);
                    in_channels = out;
                    block
                })
                .collect()
        };
        let layer1 = stage(0, 1);
        let layer2 = stage(1, 2);
        let layer3 = stage(2, 2);
        let layer4 = if self.layer4 { stage(3, 2) } else { Vec::new() };
        ResNet {
            input_norm: self.input_norm.as_ref().map(InputNormConfig::init),
            conv1,
            bn1: new_batch_norm(stem, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

/// torchvision's `BasicBlock`: two 3×3 convs with BN, plus a projected shortcut when the shape
/// changes.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3×3, carries the block's stride.
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3, stride 1.
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
    /// `[1×1 conv, BN]` when the stride or width changes, empty otherwise (identity shortcut).
    pub downsample: Vec<SequentialLayer>,
}

impl BasicBlock {
    /// A block from `in_channels` to `out_channels` with the given stride.
    pub fn new(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Self {
        let init = || Some(kaiming_normal_fan_out());
        let downsample = if stride != 1 || in_channels != out_channels {
            vec![
                SequentialLayer::Conv(conv(
                    [in_channels, out_channels],
                    1,
                    stride,
                    0,
                    false,
                    init(),
                    device,
                )),
                SequentialLayer::Norm(new_batch_norm(out_channels, device)),
            ]
        } else {
            Vec::new()
        };
        Self {
            conv1: conv(
                [in_channels, out_channels],
                3,
                stride,
                1,
                false,
                init(),
                device,
            ),
            bn1: new_batch_norm(out_channels, device),
            conv2: conv([out_channels, out_channels], 3, 1, 1, false, init(), device),
            bn2: new_batch_norm(out_channels, device),
            downsample,
        }
    }

    /// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self
            .conv1
            .forward_bn(&self.bn1, Activation::Relu, x.clone());
        let out = self.conv2.forward_bn(&self.bn2, Activation::Identity, out);
        let shortcut = run_sequential(&self.downsample, x);
        relu(out + shortcut)
    }
}

/// A ResNet trunk without its classifier (`avgpool`/`fc` belong to the heads).
#[derive(Module, Debug)]
pub struct ResNet {
    /// Input normalisation, applied first (see [`InputNormConfig`]); holds no parameter.
    pub input_norm: Option<InputNorm>,
    /// 7×7 stride-2 stem convolution.
    pub conv1: Conv2d,
    /// Stem BN.
    pub bn1: BatchNorm,
    /// 3×3 stride-2 max-pool (padding 1).
    pub maxpool: MaxPool2d,
    /// Stage 1 (stride 1).
    pub layer1: Vec<BasicBlock>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<BasicBlock>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<BasicBlock>,
    /// Stage 4 (stride 2); empty when built with `layer4 = false`.
    pub layer4: Vec<BasicBlock>,
}

fn run_stage(blocks: &[BasicBlock], x: Tensor<4>) -> Tensor<4> {
    blocks.iter().fold(x, |h, block| block.forward(h))
}

impl ResNet {
    /// Runs every stage and returns all intermediate feature maps.
    pub fn forward_features(&self, x: Tensor<4>) -> EncoderFeatures {
        self.forward_features_with(x, &mut |_, f| f)
    }

    /// [`forward_features`](Self::forward_features) with `hook(site, feature)` replacing the stem
    /// output (site 0, before the max-pool) and the outputs of `layer1..3` (sites 1–3) before the
    /// next stage runs (IAS attention).
    pub fn forward_features_with(&self, x: Tensor<4>, hook: StageHook<'_>) -> EncoderFeatures {
        let x = match &self.input_norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        let stem = hook(0, self.conv1.forward_bn(&self.bn1, Activation::Relu, x));
        let pooled = max_pool2d(&self.maxpool, stem.clone());
        let layer1 = hook(1, run_stage(&self.layer1, pooled.clone()));
        let layer2 = hook(2, run_stage(&self.layer2, layer1.clone()));
        let layer3 = hook(3, run_stage(&self.layer3, layer2.clone()));
        let layer4 = (!self.layer4.is_empty()).then(|| run_stage(&self.layer4, layer3.clone()));
        EncoderFeatures {
            stem,
            pooled,
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }

    /// Output channels of `layer1..4` (the stem has as many as `layer1`; `layer4` is reported even
    /// when it was not built).
    pub fn stage_channels(&self) -> [usize; 4] {
        let [stem, ..] = self.conv1.weight.dims();
        [stem, 2 * stem, 4 * stem, 8 * stem]
    }
}
