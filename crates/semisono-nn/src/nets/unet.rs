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

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Dropout, DropoutConfig};
use burn::tensor::activation::leaky_relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use super::layers::{batch_norm, conv};

const LEAKY_SLOPE: f64 = 0.2;

/// Bilinear resize with align_corners = true (Hermes' `up`).
pub fn upsample_bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(true)
            .with_output_size(size),
    )
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
            bn1: batch_norm(middle, device),
            conv2: conv([middle, output], 3, 1, 1, true, None, device),
            bn2: batch_norm(output, device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// Applies the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = leaky_relu(self.bn1.forward(self.conv1.forward(x)), LEAKY_SLOPE);
        let h = leaky_relu(self.bn2.forward(self.conv2.forward(h)), LEAKY_SLOPE);
        self.dropout.forward(h)
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
}

impl UNetDecoder {
    /// Decodes the encoder features `[x0, x1, x2, x3]` into logits of size `output_size`.
    pub fn forward(&self, features: [Tensor<4>; 4], output_size: [usize; 2]) -> DecoderOutput {
        let [x0, x1, x2, x3] = features;
        let d1 = self.up1.forward(upsample_bilinear(x3, spatial(&x2)));
        let x_up1 = self.fuse1.forward(Tensor::cat(vec![x2, d1], 1));
        let d2 = self
            .up2
            .forward(upsample_bilinear(x_up1.clone(), spatial(&x1)));
        let x_up2 = self.fuse2.forward(Tensor::cat(vec![x1, d2], 1));
        let d3 = self
            .up3
            .forward(upsample_bilinear(x_up2.clone(), spatial(&x0)));
        let x_up3 = self.fuse3.forward(Tensor::cat(vec![x0, d3], 1));
        let logits = self
            .head
            .forward(upsample_bilinear(x_up3.clone(), output_size));
        DecoderOutput {
            logits,
            x_up1,
            x_up2,
            x_up3,
        }
    }
}
