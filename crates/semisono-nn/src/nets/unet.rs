//! The U-Net decoder of Hermes' segmentation network (spec §2.1, "Decoder").
//!
//! `CB(i, m, o)` = conv3×3(i→m) → BN → LeakyReLU(0.2) → conv3×3(m→o) → BN → LeakyReLU(0.2) →
//! Dropout(0.25). With encoder channels `c0..c3` (stem, stage 1, 2, 3):
//!
//! | step | op |
//! |---|---|
//! | d1 | CB(c3, c3, c2)(up(x3)) |
//! | u1 | CB(2·c2, c2, c2)(cat[x2, d1]) → `x_up1` |
//! | d2 | CB(c2, c2, c1)(up(u1)) |
//! | u2 | CB(2·c1, c1, c1)(cat[x1, d2]) → `x_up2` |
//! | d3 | CB(c1, c1, c0)(up(u2)) |
//! | u3 | CB(2·c0, c0, c0)(cat[x0, d3]) → `x_up3` |
//! | logits | conv1×1(c0 → classes)(up(u3)) |
//!
//! With Res2Net-101 (1024, 512, 256, 64) this is exactly Hermes' table. `up` is bilinear with
//! **align_corners = true** (set explicitly: Burn's default is true, PyTorch's false). It resizes to
//! the skip connection's size (the input size for the last one) rather than by a fixed ×2, which is
//! the same for sizes divisible by 16 and keeps other sizes from failing at the concatenation.
//!
//! **Bridge** (Hermes' saliency path, spec §2.1 and §13): an extra input, resized bilinearly
//! (align_corners = true) to the skip's size, concatenated last at u2 (1/4:
//! `CB(2·c1 + k, c1, c1)(cat[x1, d2, bridge])`, the current file's level with its channel count
//! fixed) or at u1 (1/8: `CB(2·c2 + k, c2, c2)(cat[x2, d1, bridge])`, the older file's). Only the
//! fuse block's input width changes, so everything after it is as without a bridge.
//!
//! **Up-sampling mode** ([`Upsample`], default bilinear as above): `nearest` resizes with nearest
//! neighbour instead; `transposed` replaces each of the four `up`s by a learned
//! ConvTranspose2d(c → c, kernel 2, stride 2) (then a bilinear resize only where ×2 misses the
//! target size). MLRPL's two decoders differ only in this (mlrpl spec §11: MC-Net up types 0, 1, 2;
//! ours keep the channel count and leave the channel change to the following block).

use crate::kernels::bilinear_op;
use crate::kernels::cat_op::cat_channels;
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, Dropout, DropoutConfig};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use super::layers::{conv, dropout, new_batch_norm, Activation, Conv2d};

const LEAKY_SLOPE: f64 = 0.2;

/// Bilinear resize with align_corners = true (Hermes' `up`): a direct two-pass kernel on flex
/// ([`bilinear_op`]), Burn's `interpolate` elsewhere.
pub fn upsample_bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    bilinear_op::bilinear_align_corners(x, size)
}

fn spatial(x: &Tensor<4>) -> [usize; 2] {
    let [_, _, h, w] = x.dims();
    [h, w]
}

/// Hermes' `CB(i, m, o)` double-conv block.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// 3×3 conv i → m (with bias, as in Hermes).
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3 conv m → o.
    pub conv2: Conv2d,
    /// BN after `conv2`.
    pub bn2: BatchNorm,
    /// Dropout at the end of the block.
    pub dropout: Dropout,
}

impl ConvBlock {
    /// `CB(input, middle, output)` with the given dropout probability.
    pub fn new(channels: [usize; 3], dropout: f64, device: &Device) -> Self {
        let [input, middle, output] = channels;
        Self {
            conv1: conv([input, middle], 3, 1, 1, true, None, device),
            bn1: new_batch_norm(middle, device),
            conv2: conv([middle, output], 3, 1, 1, true, None, device),
            bn2: new_batch_norm(output, device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// Applies the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let act = Activation::LeakyRelu(LEAKY_SLOPE);
        let h = self.conv1.forward_bn(&self.bn1, act, x);
        let h = self.conv2.forward_bn(&self.bn2, act, h);
        dropout(&self.dropout, h)
    }
}

/// Nearest-neighbour resize.
pub fn upsample_nearest(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size(size),
    )
}

/// How a [`UNetDecoder`] up-samples before each block and before the head.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Upsample {
    /// Bilinear, align_corners = true (Hermes).
    Bilinear,
    /// Nearest neighbour (MC-Net / MLRPL up type 2, without its 1×1 conv).
    Nearest,
    /// Learned ConvTranspose2d(c → c, k 2, s 2) (MC-Net / MLRPL up type 0).
    Transposed,
}

/// Where a [`UNetDecoder`] takes its bridge input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeLevel {
    /// At u1, 1/8 of the input size.
    Eighth,
    /// At u2, 1/4 of the input size.
    Quarter,
}

impl BridgeLevel {
    /// The value of [`UNetDecoder::bridge_level`].
    fn code(self) -> usize {
        match self {
            Self::Eighth => 1,
            Self::Quarter => 2,
        }
    }
}

/// Configuration of a [`UNetDecoder`].
#[derive(Config, Debug)]
pub struct UNetDecoderConfig {
    /// Encoder channels `[c0, c1, c2, c3]`: stem (1/2), stage 1 (1/4), stage 2 (1/8), stage 3 (1/16).
    pub encoder_channels: [usize; 4],
    /// Output classes (Hermes: 2).
    #[config(default = 2)]
    pub num_classes: usize,
    /// Dropout probability at the end of every block (Hermes: 0.25).
    #[config(default = 0.25)]
    pub dropout: f64,
    /// Up-sampling before each block and before the head.
    #[config(default = "Upsample::Bilinear")]
    pub upsample: Upsample,
}

impl UNetDecoderConfig {
    /// Builds the decoder (PyTorch default init, as Hermes leaves the decoder).
    pub fn init(&self, device: &Device) -> UNetDecoder {
        let [c0, c1, c2, c3] = self.encoder_channels;
        let p = self.dropout;
        UNetDecoder {
            up1: ConvBlock::new([c3, c3, c2], p, device),
            fuse1: ConvBlock::new([2 * c2, c2, c2], p, device),
            up2: ConvBlock::new([c2, c2, c1], p, device),
            fuse2: ConvBlock::new([2 * c1, c1, c1], p, device),
            up3: ConvBlock::new([c1, c1, c0], p, device),
            fuse3: ConvBlock::new([2 * c0, c0, c0], p, device),
            head: conv([c0, self.num_classes], 1, 1, 0, true, None, device),
            bridge_level: 0,
            // Deepest first, in the order the `up`s run; empty unless transposed, so the other
            // modes keep their parameter set (and checkpoints) unchanged.
            transposed: match self.upsample {
                Upsample::Transposed => [c3, c2, c1, c0]
                    .iter()
                    .map(|&c| {
                        ConvTranspose2dConfig::new([c, c], [2, 2])
                            .with_stride([2, 2])
                            .init(device)
                    })
                    .collect(),
                _ => Vec::new(),
            },
            upsample: self.upsample,
        }
    }
}

/// The decoder's outputs (Hermes' names).
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// Class logits at the input resolution, `[N, classes, H, W]`.
    pub logits: Tensor<4>,
    /// `u1`, `[N, c2, H/8, W/8]`.
    pub x_up1: Tensor<4>,
    /// `u2`, `[N, c1, H/4, W/4]`.
    pub x_up2: Tensor<4>,
    /// `u3`, `[N, c0, H/2, W/2]`.
    pub x_up3: Tensor<4>,
}

/// U-Net decoder with skip concatenations and a 1×1 head.
#[derive(Module, Debug)]
pub struct UNetDecoder {
    /// d1: block on the upsampled deepest feature.
    pub up1: ConvBlock,
    /// u1: block on `cat[x2, d1]`.
    pub fuse1: ConvBlock,
    /// d2.
    pub up2: ConvBlock,
    /// u2: block on `cat[x1, d2]`.
    pub fuse2: ConvBlock,
    /// d3.
    pub up3: ConvBlock,
    /// u3: block on `cat[x0, d3]`.
    pub fuse3: ConvBlock,
    /// 1×1 classifier on the upsampled `u3`.
    pub head: Conv2d,
    /// Fuse step that takes the bridge input: 0 = none, 1 = u1 (1/8), 2 = u2 (1/4).
    pub bridge_level: usize,
    /// The learned up-samplings of [`Upsample::Transposed`] (empty otherwise).
    pub transposed: Vec<ConvTranspose2d>,
    /// The up-sampling mode.
    #[module(skip)]
    pub upsample: Upsample,
}

/// The decoder's features before the head (see [`UNetDecoder::decode_bridged`]).
#[derive(Debug, Clone)]
pub struct DecoderFeatures {
    /// `u1`, `[N, c2, H/8, W/8]`.
    pub x_up1: Tensor<4>,
    /// `u2`, `[N, c1, H/4, W/4]`.
    pub x_up2: Tensor<4>,
    /// `u3`, `[N, c0, H/2, W/2]`.
    pub x_up3: Tensor<4>,
    /// `u3` up-sampled to the output size, `[N, c0, H, W]`: what the head reads.
    pub head_input: Tensor<4>,
}

impl UNetDecoder {
    /// Decodes the encoder features `[x0, x1, x2, x3]` into logits of size `output_size`.
    pub fn forward(&self, features: [Tensor<4>; 4], output_size: [usize; 2]) -> DecoderOutput {
        self.forward_bridged(features, output_size, None)
    }

    /// Replaces the fuse block at `level` by one that also takes a `channels`-channel bridge input
    /// (fresh weights, same dropout); see the module documentation.
    ///
    /// # Panics
    /// If the decoder already has a bridge.
    pub fn attach_bridge(&mut self, level: BridgeLevel, channels: usize, device: &Device) {
        assert_eq!(self.bridge_level, 0, "UNetDecoder: only one bridge input");
        let block = match level {
            BridgeLevel::Eighth => &mut self.fuse1,
            BridgeLevel::Quarter => &mut self.fuse2,
        };
        let [_, input, ..] = block.conv1.weight.dims();
        let [out, ..] = block.conv2.weight.dims();
        *block = ConvBlock::new([input + channels, out, out], block.dropout.prob, device);
        self.bridge_level = level.code();
    }

    /// [`forward`](Self::forward) with the bridge input (any size; it is resized to the fuse
    /// level). `bridge` must be given exactly when the decoder was built with one.
    pub fn forward_bridged(
        &self,
        features: [Tensor<4>; 4],
        output_size: [usize; 2],
        bridge: Option<Tensor<4>>,
    ) -> DecoderOutput {
        let f = self.decode_bridged(features, output_size, bridge);
        DecoderOutput {
            logits: self.head.forward(f.head_input),
            x_up1: f.x_up1,
            x_up2: f.x_up2,
            x_up3: f.x_up3,
        }
    }

    /// Up-sampling number `index` (0 = deepest, 3 = before the head) of `x` to `size`.
    fn up(&self, index: usize, x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
        match self.upsample {
            Upsample::Bilinear => upsample_bilinear(x, size),
            Upsample::Nearest => upsample_nearest(x, size),
            Upsample::Transposed => {
                let y = self.transposed[index].forward(x);
                // ×2 misses odd sizes; resize the rest of the way, as the bilinear mode does.
                if spatial(&y) == size {
                    y
                } else {
                    upsample_bilinear(y, size)
                }
            }
        }
    }

    /// [`forward_bridged`](Self::forward_bridged) up to the head's input: every decoder feature,
    /// for callers that act on the head's input before the head (MLRPL's feature dropout).
    pub fn decode_bridged(
        &self,
        features: [Tensor<4>; 4],
        output_size: [usize; 2],
        bridge: Option<Tensor<4>>,
    ) -> DecoderFeatures {
        assert_eq!(
            bridge.is_some(),
            self.bridge_level != 0,
            "UNetDecoder: a bridge input must be given exactly when the decoder has a bridge"
        );
        let fuse_input = |level: usize, skip: Tensor<4>, up: Tensor<4>| {
            let size = spatial(&skip);
            let mut parts = vec![skip, up];
            if self.bridge_level == level {
                if let Some(b) = &bridge {
                    parts.push(upsample_bilinear(b.clone(), size));
                }
            }
            cat_channels(parts)
        };
        let [x0, x1, x2, x3] = features;
        let d1 = self.up1.forward(self.up(0, x3, spatial(&x2)));
        let x_up1 = self.fuse1.forward(fuse_input(1, x2, d1));
        let d2 = self.up2.forward(self.up(1, x_up1.clone(), spatial(&x1)));
        let x_up2 = self.fuse2.forward(fuse_input(2, x1, d2));
        let d3 = self.up3.forward(self.up(2, x_up2.clone(), spatial(&x0)));
        let x_up3 = self.fuse3.forward(cat_channels(vec![x0, d3]));
        let head_input = self.up(3, x_up3.clone(), output_size);
        DecoderFeatures {
            x_up1,
            x_up2,
            x_up3,
            head_input,
        }
    }
}
