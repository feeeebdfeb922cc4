//! Res2Net v1b (Bottle2neck, 26w×4s) backbones with a width multiplier — the encoder of Hermes'
//! segmentation network (spec §2.1: Res2Net-101 v1b, stem and layer1–3).
//!
//! Field names mirror `res2net_v1b.py` of Res2Net-PretrainedModels: the deep stem `conv1` is a
//! `Vec<SequentialLayer>` [conv, BN, ReLU, conv, BN, ReLU, conv] (keys `conv1.0/1/3/4/6.*`), then
//! `bn1`, `layer1..4` of `Bottle2neck` with `conv1, bn1, convs.i, bns.i, conv3, bn3` and
//! `downsample` = [AvgPool, conv, BN] (keys `downsample.1/2.*`). The published `.pth` files
//! therefore map key for key at `width_multiplier = 1`.

use crate::kernels::activation_op::relu;
use crate::kernels::cat_op::cat_channels;
use burn::config::Config;
use burn::module::Module;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};

use super::backbone::{EncoderFeatures, InputNorm, InputNormConfig, StageHook};
use super::layers::{
    batch_norm, conv, kaiming_normal_fan_out, new_batch_norm, run_sequential, Activation, Conv2d,
    SequentialLayer,
};
use crate::kernels::max_pool_op::max_pool2d;

/// Bottle2neck expansion: a stage of `planes` outputs `4·planes` channels.
const EXPANSION: usize = 4;

/// Configuration of a [`Res2Net`] v1b.
#[derive(Config, Debug)]
pub struct Res2NetConfig {
    /// Blocks per stage: `[3, 4, 6, 3]` is Res2Net-50, `[3, 4, 23, 3]` Res2Net-101.
    pub layers: [usize; 4],
    /// Channel multiplier on the published widths (stage planes 64, 128, 256, 512).
    #[config(default = 1.0)]
    pub width_multiplier: f64,
    /// Width of each scale group per 64 planes (the "26w").
    #[config(default = 26)]
    pub base_width: usize,
    /// Number of scale groups (the "4s").
    #[config(default = 4)]
    pub scale: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Build `layer4` (Hermes' encoder never runs it).
    #[config(default = true)]
    pub layer4: bool,
    /// Input normalisation before the stem (`None`: the inputs go in as they are).
    #[config(default = "None")]
    pub input_norm: Option<InputNormConfig>,
}

impl Res2NetConfig {
    /// Res2Net-50 v1b layout.
    pub fn res2net50() -> Self {
        Self::new([3, 4, 6, 3])
    }

    /// Res2Net-101 v1b layout.
    pub fn res2net101() -> Self {
        Self::new([3, 4, 23, 3])
    }

    fn scaled(&self, channels: usize) -> usize {
        assert!(
            self.width_multiplier > 0.0,
            "Res2NetConfig: width_multiplier must be > 0"
        );
        ((channels as f64 * self.width_multiplier).round() as usize).max(1)
    }

    /// Output channels of `layer1..4` (`4 × planes`).
    pub fn stage_channels(&self) -> [usize; 4] {
        let planes = self.scaled(64);
        [1, 2, 4, 8].map(|m| m * planes * EXPANSION)
    }

    /// Builds the network (Kaiming-normal fan-out convs, BN γ = 1, β = 0, as the reference).
    pub fn init(&self, device: &Device) -> Res2Net {
        assert!(self.scale >= 1, "Res2NetConfig: scale must be >= 1");
        let init = || Some(kaiming_normal_fan_out());
        let (stem_mid, stem_out) = (self.scaled(32), self.scaled(64));
        let conv1 = vec![
            SequentialLayer::Conv(conv(
                [self.in_channels, stem_mid],
                3,
                2,
                1,
                false,
                init(),
                device,
            )),
            SequentialLayer::Norm(new_batch_norm(stem_mid, device)),
            SequentialLayer::Relu(Relu),
            SequentialLayer::Conv(conv([stem_mid, stem_mid], 3, 1, 1, false, init(), device)),
            SequentialLayer::Norm(new_batch_norm(stem_mid, device)),
            SequentialLayer::Relu(Relu),
            SequentialLayer::Conv(conv([stem_mid, stem_out], 3, 1, 1, false, init(), device)),
        ];
        let mut in_channels = stem_out;
        let mut stage = |index: usize, stride: usize| -> Vec<Bottle2neck> {
            let planes = self.scaled(64 << index);
            (0..self.layers[index])
                .map(|b| {
                    let block = Bottle2neck::new(
                        Bottle2neckShape {
                            in_channels,
                            planes,
                            stride: if b == 0 { stride } else { 1 },
                            first_of_stage: b == 0,
                            base_width: self.base_width,
                            scale: self.scale,
                        },
                        device,
                    );
                    in_channels = planes * EXPANSION;
                    block
                })
                .collect()
        };
        let layer1 = stage(0, 1);
        let layer2 = stage(1, 2);
        let layer3 = stage(2, 2);
        let layer4 = if self.layer4 { stage(3, 2) } else { Vec::new() };
        Res2Net {
            input_norm: self.input_norm.as_ref().map(InputNormConfig::init),
            conv1,
            bn1: new_batch_norm(stem_out, device),
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

/// The shape of one [`Bottle2neck`].
#[derive(Debug, Clone, Copy)]
pub struct Bottle2neckShape {
    /// Input channels.
    pub in_channels: usize,
    /// Stage planes; the block outputs `4 · planes`.
    pub planes: usize,
    /// Stride of the 3×3 convs (and of the pools) in this block.
    pub stride: usize,
    /// The reference's `stype == 'stage'`: groups are not chained and the last one is pooled.
    pub first_of_stage: bool,
    /// Group width per 64 planes.
    pub base_width: usize,
    /// Number of groups.
    pub scale: usize,
}

/// Res2Net's bottleneck: 1×1 conv, `scale` channel groups processed hierarchically by 3×3 convs
/// (each group after the first adds the previous group's output, except in the first block of a
/// stage), concatenation, 1×1 conv, residual.
#[derive(Module, Debug)]
pub struct Bottle2neck {
    /// 1×1 conv to `width · scale`.
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// One 3×3 conv per processed group (`scale − 1`, or 1 when `scale == 1`).
    pub convs: Vec<Conv2d>,
    /// BN after each of `convs`.
    pub bns: Vec<BatchNorm>,
    /// 3×3 average pool of the last, unprocessed group in a stage's first block.
    pub pool: Option<AvgPool2d>,
    /// 1×1 conv to `4 · planes`.
    pub conv3: Conv2d,
    /// BN after `conv3`.
    pub bn3: BatchNorm,
    /// `[AvgPool(stride, ceil, no pad count), 1×1 conv, BN]` when the shape changes, else empty.
    pub downsample: Vec<SequentialLayer>,
    /// Channels per group.
    pub width: usize,
    /// Number of groups.
    pub scale: usize,
}

impl Bottle2neck {
    /// Builds a block.
    pub fn new(shape: Bottle2neckShape, device: &Device) -> Self {
        let init = || Some(kaiming_normal_fan_out());
        let width = (shape.planes * shape.base_width / 64).max(1);
        let processed = if shape.scale == 1 { 1 } else { shape.scale - 1 };
        let out_channels = shape.planes * EXPANSION;
        let convs = (0..processed)
            .map(|_| conv([width, width], 3, shape.stride, 1, false, init(), device))
            .collect();
        let bns = (0..processed)
            .map(|_| new_batch_norm(width, device))
            .collect();
        let pool = (shape.first_of_stage && shape.scale != 1).then(|| {
            AvgPool2dConfig::new([3, 3])
                .with_strides([shape.stride, shape.stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init()
        });
        let downsample = if shape.stride != 1 || shape.in_channels != out_channels {
            vec![
                SequentialLayer::AvgPool(
                    AvgPool2dConfig::new([shape.stride, shape.stride])
                        .with_strides([shape.stride, shape.stride])
                        .with_ceil_mode(true)
                        .with_count_include_pad(false)
                        .init(),
                ),
                SequentialLayer::Conv(conv(
                    [shape.in_channels, out_channels],
                    1,
                    1,
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
                [shape.in_channels, width * shape.scale],
                1,
                1,
                0,
                false,
                init(),
                device,
            ),
            bn1: new_batch_norm(width * shape.scale, device),
            convs,
            bns,
            pool,
            conv3: conv(
                [width * shape.scale, out_channels],
                1,
                1,
                0,
                false,
                init(),
                device,
            ),
            bn3: new_batch_norm(out_channels, device),
            downsample,
            width,
            scale: shape.scale,
        }
    }

    /// Applies the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self
            .conv1
            .forward_bn(&self.bn1, Activation::Relu, x.clone());
        let groups = out.split(self.width, 1);
        // A stage's first block has a pool and processes its groups independently.
        let chained = self.pool.is_none();
        let mut outputs = Vec::with_capacity(self.scale);
        let mut previous: Option<Tensor<4>> = None;
        for (i, (conv, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            let input = match previous.take() {
                Some(prev) if chained => prev + groups[i].clone(),
                _ => groups[i].clone(),
            };
            let processed = conv.forward_bn(bn, Activation::Relu, input);
            previous = Some(processed.clone());
            outputs.push(processed);
        }
        if self.scale != 1 {
            let last = groups[self.convs.len()].clone();
            outputs.push(match &self.pool {
                Some(pool) => pool.forward(last),
                None => last,
            });
        }
        let out = self
            .conv3
            .forward_bn(&self.bn3, Activation::Identity, cat_channels(outputs));
        let shortcut = run_sequential(&self.downsample, x);
        relu(out + shortcut)
    }
}

/// A Res2Net v1b trunk without its classifier.
#[derive(Module, Debug)]
pub struct Res2Net {
    /// Input normalisation, applied first (see [`InputNormConfig`]); holds no parameter.
    pub input_norm: Option<InputNorm>,
    /// Deep stem: conv3×3 s2 → BN → ReLU → conv3×3 → BN → ReLU → conv3×3.
    pub conv1: Vec<SequentialLayer>,
    /// BN after the stem.
    pub bn1: BatchNorm,
    /// 3×3 stride-2 max-pool (padding 1).
    pub maxpool: MaxPool2d,
    /// Stage 1 (stride 1).
    pub layer1: Vec<Bottle2neck>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<Bottle2neck>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<Bottle2neck>,
    /// Stage 4 (stride 2); empty when built with `layer4 = false`.
    pub layer4: Vec<Bottle2neck>,
}

fn run_stage(blocks: &[Bottle2neck], x: Tensor<4>) -> Tensor<4> {
    blocks.iter().fold(x, |h, block| block.forward(h))
}

impl Res2Net {
    /// Runs every stage and returns all intermediate feature maps.
    pub fn forward_features(&self, x: Tensor<4>) -> EncoderFeatures {
        self.forward_features_with(x, &mut |_, f| f)
    }

    /// [`forward_features`](Self::forward_features) with `hook(site, feature)` replacing the stem
    /// output (site 0) and the outputs of `layer1..3` (sites 1–3), as in the ResNet.
    pub fn forward_features_with(&self, x: Tensor<4>, hook: StageHook<'_>) -> EncoderFeatures {
        let x = match &self.input_norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        let stem = hook(
            0,
            relu(batch_norm(&self.bn1, run_sequential(&self.conv1, x))),
        );
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

    /// Channels of the stem and of `layer1..4` (`layer4` reported even when not built).
    pub fn channels(&self) -> [usize; 5] {
        let [stem, ..] = self.bn1.gamma.dims();
        let [s1, ..] = self.layer1[0].bn3.gamma.dims();
        [stem, s1, 2 * s1, 4 * s1, 8 * s1]
    }
}
