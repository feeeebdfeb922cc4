//! The small heads on top of the encoders (spec §2.1 "Heads on S", §2.2 "Heads on C").

use crate::kernels::activation_op::relu;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, Linear, LinearConfig};

use crate::kernels::activation_op::leaky_relu;
use burn::tensor::{Device, Tensor};

use super::layers::{batch_norm, conv, new_batch_norm, Activation, Conv2d};
use crate::ops::l2_normalize;

/// ε of the L2 normalisations of embeddings (PyTorch `F.normalize`'s default). Hermes' image
/// projection divides by the bare norm; the ε only matters for an all-zero vector, which it keeps
/// at zero instead of NaN.
pub const EMBEDDING_NORM_EPS: f64 = 1e-12;

/// Configuration of a [`ConsistencyHead`].
#[derive(Config, Debug)]
pub struct ConsistencyHeadConfig {
    /// Input features (the pooled encoder width).
    pub input: usize,
    /// Hidden width (Hermes: 512 on S, 256 on C).
    pub hidden: usize,
    /// Output width; must be equal on both networks for the ITC loss (Hermes: 256).
    pub output: usize,
}

impl ConsistencyHeadConfig {
    /// Builds the head.
    pub fn init(&self, device: &Device) -> ConsistencyHead {
        ConsistencyHead {
            fc1: LinearConfig::new(self.input, self.hidden)
                .with_bias(false)
                .init(device),
            bn1: new_batch_norm(self.hidden, device),
            fc2: LinearConfig::new(self.hidden, self.output).init(device),
            bn2: new_batch_norm(self.output, device),
        }
    }
}

/// Global-vector head for inter-task consistency:
/// `Linear(no bias) → BN1d → ReLU → Linear → BN1d → ReLU`. The final ReLU makes it non-negative.
#[derive(Module, Debug)]
pub struct ConsistencyHead {
    /// First projection, no bias (the BN that follows has one).
    pub fc1: Linear,
    /// BN1d after `fc1`.
    pub bn1: BatchNorm,
    /// Second projection.
    pub fc2: Linear,
    /// BN1d after `fc2`.
    pub bn2: BatchNorm,
}

impl ConsistencyHead {
    /// `[N, input] → [N, output]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = relu(batch_norm(&self.bn1, self.fc1.forward(x)));
        relu(batch_norm(&self.bn2, self.fc2.forward(h)))
    }
}

/// Configuration of a [`ProjectionHead`].
#[derive(Config, Debug)]
pub struct ProjectionHeadConfig {
    /// Input features.
    pub input: usize,
    /// Hidden width (Hermes: 256).
    #[config(default = 256)]
    pub hidden: usize,
    /// Embedding width (Hermes: 128).
    #[config(default = 128)]
    pub output: usize,
}

impl ProjectionHeadConfig {
    /// Builds the head.
    pub fn init(&self, device: &Device) -> ProjectionHead {
        ProjectionHead {
            fc1: LinearConfig::new(self.input, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, self.output).init(device),
        }
    }
}

/// Image projection head for SupCon: `Linear → LeakyReLU(0.1) → Linear → L2-normalise`.
#[derive(Module, Debug)]
pub struct ProjectionHead {
    /// First projection.
    pub fc1: Linear,
    /// Second projection.
    pub fc2: Linear,
}

impl ProjectionHead {
    /// `[N, input] → [N, output]`, unit rows.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = leaky_relu(self.fc1.forward(x), 0.1);
        l2_normalize(self.fc2.forward(h), 1, EMBEDDING_NORM_EPS)
    }
}

/// Configuration of a [`PixelProjectionHead`].
#[derive(Config, Debug)]
pub struct PixelProjectionHeadConfig {
    /// Channels of the encoder feature it projects.
    pub input: usize,
    /// Embedding channels (Hermes: 256).
    #[config(default = 256)]
    pub output: usize,
}

impl PixelProjectionHeadConfig {
    /// Builds the head.
    pub fn init(&self, device: &Device) -> PixelProjectionHead {
        PixelProjectionHead {
            conv1: conv([self.input, self.input], 1, 1, 0, true, None, device),
            bn: new_batch_norm(self.input, device),
            conv2: conv([self.input, self.output], 1, 1, 0, true, None, device),
        }
    }
}

/// Pixel projection head for the pixel contrast:
/// `conv1×1 → BN → ReLU → conv1×1 → L2-normalise over channels`.
#[derive(Module, Debug)]
pub struct PixelProjectionHead {
    /// 1×1 conv keeping the width.
    pub conv1: Conv2d,
    /// BN after `conv1`.
    pub bn: BatchNorm,
    /// 1×1 conv to the embedding width.
    pub conv2: Conv2d,
}

impl PixelProjectionHead {
    /// `[N, input, h, w] → [N, output, h, w]`, unit vectors per pixel.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward_bn(&self.bn, Activation::Relu, x);
        l2_normalize(self.conv2.forward(h), 1, EMBEDDING_NORM_EPS)
    }
}

/// Global average pooling `[N, C, H, W] → [N, C]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    x.mean_dims(&[2, 3]).flatten::<2>(1, 3)
}
