//! IAS attention (spec §2.2, Hermes' `Intra_task_attention`): segmenter features re-weight the
//! classifier's stage features.
//!
//! One site, classifier feature F (C channels) and segmenter feature G:
//! 1. fuse: Q = conv3×3(C + C_G → C)(cat[F, G]);
//! 2. channel gate: a = σ(Linear(C/4 → C)(ReLU(Linear(C → C/4)(GAP(Q))))), F' = a ⊙ F — only F is
//!    gated, G acts through a;
//! 3. spatial gate: m = σ(conv3×3(2 → 1)(cat[max_c F', mean_c F'])), output m ⊙ F'. No residual.
//!
//! Hermes has C_G = C at every site; here the fuse conv takes C + C_G inputs so that any
//! segmenter/classifier pair fits without an extra layer (at IAS-4 G = `x_up3` is used as is).
//!
//! Sites (classifier feature ← segmenter feature):
//!
//! | site | classifier | segmenter |
//! |---|---|---|
//! | IAS-4 | stem output (1/2) | `x_up3` |
//! | IAS-3 | layer1 (1/4) | P3(`x_up2`) |
//! | IAS-2 | layer2 (1/8) | P2(`x_up1`) |
//! | IAS-1 | layer3 (1/16) | P1(`x3`) |
//!
//! P = conv3×3 → BN → ReLU → conv3×3 → BN → ReLU from the segmenter's to the classifier's channels.

use crate::kernels::activation_op::relu;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use super::heads::global_avg_pool;
use super::layers::{conv, new_batch_norm, Activation, Conv2d};
use super::unet::upsample_bilinear;

/// The segmenter features the four IAS sites read (Hermes' names), from S's forward pass on the
/// same images as the classifier's.
#[derive(Debug, Clone)]
pub struct SegFeatures {
    /// Decoder feature at 1/2 (`u3`), for IAS-4.
    pub x_up3: Tensor<4>,
    /// Decoder feature at 1/4 (`u2`), for IAS-3 through P3.
    pub x_up2: Tensor<4>,
    /// Decoder feature at 1/8 (`u1`), for IAS-2 through P2.
    pub x_up1: Tensor<4>,
    /// Deepest encoder feature at 1/16, for IAS-1 through P1.
    pub x3: Tensor<4>,
}

impl SegFeatures {
    /// The same features cut from their graph: the classifier's loss then cannot reach the
    /// segmenter (spec §4.4, §13: every cross-network input is a stop-gradient).
    pub fn detach(self) -> Self {
        Self {
            x_up3: self.x_up3.detach(),
            x_up2: self.x_up2.detach(),
            x_up1: self.x_up1.detach(),
            x3: self.x3.detach(),
        }
    }
}

/// One IAS site.
#[derive(Module, Debug)]
pub struct IasAttention {
    /// conv3×3(C + C_G → C, bias) on cat[F, G].
    pub fuse: Conv2d,
    /// Linear(C → C/4, bias) of the channel gate.
    pub fc1: Linear,
    /// Linear(C/4 → C, bias) of the channel gate.
    pub fc2: Linear,
    /// conv3×3(2 → 1, bias) of the spatial gate.
    pub spatial: Conv2d,
}

impl IasAttention {
    /// A site for a classifier feature of `channels` and a segmenter feature of `guide_channels`.
    pub fn new(channels: usize, guide_channels: usize, device: &Device) -> Self {
        let hidden = (channels / 4).max(1);
        Self {
            fuse: conv(
                [channels + guide_channels, channels],
                3,
                1,
                1,
                true,
                None,
                device,
            ),
            fc1: LinearConfig::new(channels, hidden).init(device),
            fc2: LinearConfig::new(hidden, channels).init(device),
            spatial: conv([2, 1], 3, 1, 1, true, None, device),
        }
    }

    /// Re-weights `feature` `[N, C, h, w]` with `guide` `[N, C_G, h', w']`.
    ///
    /// For the registry's backbones at one input size the two spatial sizes agree (ResNet and
    /// Res2Net both halve with ceil at every stride-2 step, and the decoder resizes to the skip
    /// sizes). If a pair ever differs, the guide is resized bilinearly (align_corners = true, as
    /// the decoder's `up`) to the classifier's size instead of failing at the concatenation.
    pub fn forward(&self, feature: Tensor<4>, guide: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = feature.dims();
        let [.., gh, gw] = guide.dims();
        let guide = if [gh, gw] == [h, w] {
            guide
        } else {
            upsample_bilinear(guide, [h, w])
        };
        let fused = self
            .fuse
            .forward(Tensor::cat(vec![feature.clone(), guide], 1));
        let gate = sigmoid(
            self.fc2
                .forward(relu(self.fc1.forward(global_avg_pool(fused)))),
        );
        let gated = feature * gate.reshape([n, c, 1, 1]);
        let pooled = Tensor::cat(vec![gated.clone().max_dim(1), gated.clone().mean_dim(1)], 1);
        gated * sigmoid(self.spatial.forward(pooled))
    }
}

/// Hermes' P block: conv3×3 → BN → ReLU → conv3×3 → BN → ReLU (convs with bias, PyTorch's
/// default), mapping a segmenter feature to the classifier's channels.
#[derive(Module, Debug)]
pub struct SegProjection {
    /// conv3×3(in → mid).
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// conv3×3(mid → out).
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
}

impl SegProjection {
    /// `input → max(input / 2, output) → output`: Hermes' 1024→512→256, 512→256→128 and
    /// 256→128→64 halve first; the `max` keeps the middle from narrowing below the output when
    /// the segmenter is no wider than the classifier (ResNet-18 on both sides).
    pub fn new(input: usize, output: usize, device: &Device) -> Self {
        let middle = (input / 2).max(output);
        Self {
            conv1: conv([input, middle], 3, 1, 1, true, None, device),
            bn1: new_batch_norm(middle, device),
            conv2: conv([middle, output], 3, 1, 1, true, None, device),
            bn2: new_batch_norm(output, device),
        }
    }

    /// Applies the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward_bn(&self.bn1, Activation::Relu, x);
        self.conv2.forward_bn(&self.bn2, Activation::Relu, h)
    }
}

/// Configuration of a [`ClsAttention`]: the channels on both sides.
#[derive(Config, Debug)]
pub struct ClsAttentionConfig {
    /// Classifier channels `[stem, layer1, layer2, layer3]` (`Backbone::channels()[..4]`).
    pub cls_channels: [usize; 4],
    /// Segmenter channels `[x_up3, x_up2, x_up1, x3]` (`SegModel::feature_channels()`).
    pub seg_channels: [usize; 4],
}

impl ClsAttentionConfig {
    /// Builds the four sites and the three projections (PyTorch default init, as Hermes).
    pub fn init(&self, device: &Device) -> ClsAttention {
        let [c0, c1, c2, c3] = self.cls_channels;
        let [s_up3, s_up2, s_up1, s3] = self.seg_channels;
        ClsAttention {
            ias4: IasAttention::new(c0, s_up3, device),
            ias3: IasAttention::new(c1, c1, device),
            ias2: IasAttention::new(c2, c2, device),
            ias1: IasAttention::new(c3, c3, device),
            p3: SegProjection::new(s_up2, c1, device),
            p2: SegProjection::new(s_up1, c2, device),
            p1: SegProjection::new(s3, c3, device),
        }
    }
}

/// The classifier's four IAS sites and the segmenter-side projections.
#[derive(Module, Debug)]
pub struct ClsAttention {
    /// IAS-4: stem output with `x_up3`.
    pub ias4: IasAttention,
    /// IAS-3: layer1 with P3(`x_up2`).
    pub ias3: IasAttention,
    /// IAS-2: layer2 with P2(`x_up1`).
    pub ias2: IasAttention,
    /// IAS-1: layer3 with P1(`x3`).
    pub ias1: IasAttention,
    /// P3: `x_up2` → layer1 channels.
    pub p3: SegProjection,
    /// P2: `x_up1` → layer2 channels.
    pub p2: SegProjection,
    /// P1: `x3` → layer3 channels.
    pub p1: SegProjection,
}

impl ClsAttention {
    /// The attention output that replaces the classifier feature of backbone `site` (0 = stem,
    /// 1–3 = stages 1–3; other sites pass through).
    pub fn apply(&self, site: usize, feature: Tensor<4>, seg: &SegFeatures) -> Tensor<4> {
        match site {
            0 => self.ias4.forward(feature, seg.x_up3.clone()),
            1 => self
                .ias3
                .forward(feature, self.p3.forward(seg.x_up2.clone())),
            2 => self
                .ias2
                .forward(feature, self.p2.forward(seg.x_up1.clone())),
            3 => self.ias1.forward(feature, self.p1.forward(seg.x3.clone())),
            _ => feature,
        }
    }
}
