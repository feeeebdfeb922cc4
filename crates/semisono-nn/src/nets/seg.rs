//! The segmentation network S (spec §2.1): backbone encoder (stem + stages 1–3), U-Net decoder,
//! pixel projection head and consistency head.
//!
//! With the saliency bridge ([`SegModel::with_saliency_bridge`], spec §2.1 "Saliency path") the
//! decoder also reads cat[x, s], the input and the classifier's saliency map, at 1/4 or 1/8.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::backbone::{Backbone, BackboneConfig, UnknownBackbone};
use super::heads::{
    global_avg_pool, ConsistencyHead, ConsistencyHeadConfig, PixelProjectionHead,
    PixelProjectionHeadConfig,
};
use super::ias::SegFeatures;
use super::unet::{BridgeLevel, UNetDecoder, UNetDecoderConfig};

/// Configuration of a [`SegModel`].
#[derive(Config, Debug)]
pub struct SegModelConfig {
    /// The encoder.
    #[config(default = "BackboneConfig::new()")]
    pub backbone: BackboneConfig,
    /// Output classes (Hermes: background, tumour).
    #[config(default = 2)]
    pub num_classes: usize,
    /// Dropout at the end of each decoder block.
    #[config(default = 0.25)]
    pub dropout: f64,
    /// Encoder feature the pixel projection head reads, with Hermes' `contrast_feature` numbering:
    /// 1 = after the max-pool, 2 = stage 1, 3 = stage 2 (default, 1/8 resolution), 4 = stage 3.
    #[config(default = 3)]
    pub contrast_feature: usize,
    /// Pixel embedding channels.
    #[config(default = 256)]
    pub embedding_dim: usize,
    /// Hidden width of the consistency head.
    #[config(default = 512)]
    pub consistency_hidden: usize,
    /// Output width of the consistency head (must match the classifier's for ITC).
    #[config(default = 256)]
    pub consistency_dim: usize,
}

impl SegModelConfig {
    /// Builds the model.
    pub fn init(&self, device: &Device) -> Result<SegModel, UnknownBackbone> {
        assert!(
            (1..=4).contains(&self.contrast_feature),
            "SegModelConfig: contrast_feature must be 1..=4, got {}",
            self.contrast_feature
        );
        let encoder = self.backbone.init(false, device)?;
        let [c0, c1, c2, c3, _] = encoder.channels();
        let contrast_channels = [c0, c1, c2, c3][self.contrast_feature - 1];
        Ok(SegModel {
            encoder,
            decoder: UNetDecoderConfig::new([c0, c1, c2, c3])
                .with_num_classes(self.num_classes)
                .with_dropout(self.dropout)
                .init(device),
            pixel_projection: PixelProjectionHeadConfig::new(contrast_channels)
                .with_output(self.embedding_dim)
                .init(device),
            consistency: ConsistencyHeadConfig::new(
                c3,
                self.consistency_hidden,
                self.consistency_dim,
            )
            .init(device),
            contrast_feature: self.contrast_feature,
        })
    }
}

/// Everything S computes in one forward pass (Hermes' output dict).
#[derive(Debug, Clone)]
pub struct SegOutput {
    /// Class logits `[N, classes, H, W]`.
    pub logits: Tensor<4>,
    /// Decoder feature at 1/8 (`x_up1`).
    pub x_up1: Tensor<4>,
    /// Decoder feature at 1/4 (`x_up2`).
    pub x_up2: Tensor<4>,
    /// Decoder feature at 1/2 (`x_up3`).
    pub x_up3: Tensor<4>,
    /// Deepest encoder feature, 1/16 (`x3`).
    pub x3: Tensor<4>,
    /// Unit-norm pixel embeddings `[N, embedding_dim, h, w]` (`e`).
    pub embedding: Tensor<4>,
    /// Global consistency vector `[N, consistency_dim]` (`g_seg`).
    pub consistency: Tensor<2>,
}

impl SegOutput {
    /// The features IAS attention reads (still attached to S's graph).
    pub fn ias_features(&self) -> SegFeatures {
        SegFeatures {
            x_up3: self.x_up3.clone(),
            x_up2: self.x_up2.clone(),
            x_up1: self.x_up1.clone(),
            x3: self.x3.clone(),
        }
    }
}

/// Hermes' segmentation network with a registry backbone.
#[derive(Module, Debug)]
pub struct SegModel {
    /// Stem and stages 1–3.
    pub encoder: Backbone,
    /// U-Net decoder and 1×1 head.
    pub decoder: UNetDecoder,
    /// Pixel embedding head for the pixel contrast.
    pub pixel_projection: PixelProjectionHead,
    /// GAP(x3) → consistency vector for ITC.
    pub consistency: ConsistencyHead,
    /// Which encoder feature feeds `pixel_projection` (1..=4).
    pub contrast_feature: usize,
}

impl SegModel {
    /// Channels of the features IAS attention reads: `[x_up3, x_up2, x_up1, x3]` (the encoder's
    /// stem and stages 1–3; the decoder keeps them).
    pub fn feature_channels(&self) -> [usize; 4] {
        let [c0, c1, c2, c3, _] = self.encoder.channels();
        [c0, c1, c2, c3]
    }

    /// Adds the saliency bridge at `level` for `image_channels`-channel inputs: the decoder then
    /// takes cat[x, s] (`image_channels + 1` channels) and needs a saliency map in every forward.
    pub fn with_saliency_bridge(
        mut self,
        level: BridgeLevel,
        image_channels: usize,
        device: &Device,
    ) -> Self {
        self.decoder
            .attach_bridge(level, image_channels + 1, device);
        self
    }

    /// Whether the decoder takes a saliency bridge.
    pub fn has_saliency_bridge(&self) -> bool {
        self.decoder.bridge_level != 0
    }

    /// Full forward pass: logits, decoder features and both heads.
    pub fn forward(&self, x: Tensor<4>) -> SegOutput {
        self.forward_with_saliency(x, None)
    }

    /// [`forward`](Self::forward) with the classifier's saliency map `saliency` `[N, 1, H, W]` of
    /// the same images; give it exactly when the model has a saliency bridge. It should be a
    /// constant (detached): S does not train C through it.
    pub fn forward_with_saliency(&self, x: Tensor<4>, saliency: Option<Tensor<4>>) -> SegOutput {
        let [_, _, h, w] = x.dims();
        let bridge = saliency.map(|s| Tensor::cat(vec![x.clone(), s], 1));
        let f = self.encoder.forward_features(x);
        let contrast_input = match self.contrast_feature {
            1 => f.pooled.clone(),
            2 => f.layer1.clone(),
            3 => f.layer2.clone(),
            _ => f.layer3.clone(),
        };
        let embedding = self.pixel_projection.forward(contrast_input);
        let consistency = self.consistency.forward(global_avg_pool(f.layer3.clone()));
        let x3 = f.layer3.clone();
        let decoded =
            self.decoder
                .forward_bridged([f.stem, f.layer1, f.layer2, f.layer3], [h, w], bridge);
        SegOutput {
            logits: decoded.logits,
            x_up1: decoded.x_up1,
            x_up2: decoded.x_up2,
            x_up3: decoded.x_up3,
            x3,
            embedding,
            consistency,
        }
    }

    /// Logits only (evaluation, prediction): skips both heads.
    pub fn forward_logits(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_logits_with_saliency(x, None)
    }

    /// Logits of [`forward_with_saliency`](Self::forward_with_saliency) only.
    pub fn forward_logits_with_saliency(
        &self,
        x: Tensor<4>,
        saliency: Option<Tensor<4>>,
    ) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let bridge = saliency.map(|s| Tensor::cat(vec![x.clone(), s], 1));
        let f = self.encoder.forward_features(x);
        self.decoder
            .forward_bridged([f.stem, f.layer1, f.layer2, f.layer3], [h, w], bridge)
            .logits
    }
}
