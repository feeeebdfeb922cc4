//! Networks: backbones (by name), the U-Net segmenter and the classifier, and their heads.

pub mod backbone;
pub mod cls;
pub mod heads;
mod layers;
pub mod resnet;
pub mod seg;
pub mod unet;

pub use backbone::{
    find_backbone, Backbone, BackboneConfig, BackboneSpec, UnknownBackbone, BACKBONES,
};
pub use cls::{ClsModel, ClsModelConfig, ClsOutput};
pub use heads::{
    ConsistencyHead, ConsistencyHeadConfig, PixelProjectionHead, PixelProjectionHeadConfig,
    ProjectionHead, ProjectionHeadConfig,
};
pub use resnet::{BasicBlock, DownsampleLayer, ResNet, ResNetConfig, ResNetFeatures};
pub use seg::{SegModel, SegModelConfig, SegOutput};
pub use unet::{ConvBlock, DecoderOutput, UNetDecoder, UNetDecoderConfig};
