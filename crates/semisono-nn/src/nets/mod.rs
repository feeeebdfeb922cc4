//! Networks: backbones (by name: ResNet-18/34, Res2Net-50/101 v1b), the U-Net segmenter and the
//! classifier, their heads, and the IAS attention between them.

pub mod backbone;
pub mod cls;
pub mod dual_decoder;
pub mod heads;
pub mod ias;
mod layers;
pub mod res2net;
pub mod resnet;
pub mod seg;
pub mod unet;

pub use backbone::{
    find_backbone, Backbone, BackboneConfig, BackboneFamily, BackboneSpec, EncoderFeatures,
    InputNorm, InputNormConfig, UnknownBackbone, BACKBONES,
};
pub use cls::{ClsModel, ClsModelConfig, ClsOutput};
pub use dual_decoder::{channel_dropout, DualDecoderOutput, DualDecoderSeg, DualDecoderSegConfig};
pub use heads::{
    ConsistencyHead, ConsistencyHeadConfig, PixelProjectionHead, PixelProjectionHeadConfig,
    ProjectionHead, ProjectionHeadConfig,
};
pub use ias::{ClsAttention, ClsAttentionConfig, IasAttention, SegFeatures, SegProjection};
pub use layers::{batch_norm, dropout, Activation, Conv2d, SequentialLayer};
pub use res2net::{Bottle2neck, Bottle2neckShape, Res2Net, Res2NetConfig};
pub use resnet::{BasicBlock, ResNet, ResNetConfig};
pub use seg::{SegModel, SegModelConfig, SegOutput};
pub use unet::{
    BridgeLevel, ConvBlock, DecoderFeatures, DecoderOutput, UNetDecoder, UNetDecoderConfig,
    Upsample,
};
