//! The classification network C (spec §2.2): backbone with all four stages, global average
//! pooling, the class head, the SupCon projection head and the consistency head.
//!
//! IAS attention (S's decoder features re-weighting C's stages) is not built here yet; the stage
//! features it needs are returned in [`ClsOutput::stages`].

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::backbone::{Backbone, BackboneConfig, EncoderFeatures, UnknownBackbone};
use super::heads::{
    global_avg_pool, ConsistencyHead, ConsistencyHeadConfig, ProjectionHead, ProjectionHeadConfig,
};

/// Configuration of a [`ClsModel`].
#[derive(Config, Debug)]
pub struct ClsModelConfig {
    /// The backbone.
    #[config(default = "BackboneConfig::new()")]
    pub backbone: BackboneConfig,
    /// Output classes (Hermes: benign, malignant).
    #[config(default = 2)]
    pub num_classes: usize,
    /// Hidden width of the projection head.
    #[config(default = 256)]
    pub projection_hidden: usize,
    /// SupCon embedding width.
    #[config(default = 128)]
    pub projection_dim: usize,
    /// Hidden width of the consistency head.
    #[config(default = 256)]
    pub consistency_hidden: usize,
    /// Output width of the consistency head (must match the segmenter's for ITC).
    #[config(default = 256)]
    pub consistency_dim: usize,
}

impl ClsModelConfig {
    /// Builds the model.
    pub fn init(&self, device: &Device) -> Result<ClsModel, UnknownBackbone> {
        let backbone = self.backbone.init(true, device)?;
        let [.., features] = backbone.channels();
        Ok(ClsModel {
            backbone,
            cls_head: LinearConfig::new(features, self.num_classes).init(device),
            projection: ProjectionHeadConfig::new(features)
                .with_hidden(self.projection_hidden)
                .with_output(self.projection_dim)
                .init(device),
            consistency: ConsistencyHeadConfig::new(
                features,
                self.consistency_hidden,
                self.consistency_dim,
            )
            .init(device),
        })
    }
}

/// Everything C computes in one forward pass.
#[derive(Debug, Clone)]
pub struct ClsOutput {
    /// Class logits `[N, classes]` (`z`).
    pub logits: Tensor<2>,
    /// Pooled backbone features `[N, F]` (`f`).
    pub features: Tensor<2>,
    /// Unit-norm SupCon embedding `[N, projection_dim]` (`h`).
    pub projection: Tensor<2>,
    /// Global consistency vector `[N, consistency_dim]` (`g_cls`).
    pub consistency: Tensor<2>,
    /// The backbone's stage features (for IAS attention).
    pub stages: EncoderFeatures,
}

/// Hermes' classification network with a registry backbone.
#[derive(Module, Debug)]
pub struct ClsModel {
    /// All four stages; `.pth` backbone weights load straight into this field.
    pub backbone: Backbone,
    /// `Linear(F → classes)` (Hermes' `cls_head`).
    pub cls_head: Linear,
    /// SupCon projection head.
    pub projection: ProjectionHead,
    /// Consistency head for ITC.
    pub consistency: ConsistencyHead,
}

impl ClsModel {
    /// Full forward pass: logits and all heads.
    pub fn forward(&self, x: Tensor<4>) -> ClsOutput {
        let stages = self.backbone.forward_features(x);
        let last = stages
            .layer4
            .clone()
            .expect("the classifier backbone is built with its last stage");
        let features = global_avg_pool(last);
        ClsOutput {
            logits: self.cls_head.forward(features.clone()),
            projection: self.projection.forward(features.clone()),
            consistency: self.consistency.forward(features.clone()),
            features,
            stages,
        }
    }

    /// Logits only (evaluation, prediction, saliency).
    pub fn forward_logits(&self, x: Tensor<4>) -> Tensor<2> {
        let stages = self.backbone.forward_features(x);
        let last = stages
            .layer4
            .expect("the classifier backbone is built with its last stage");
        self.cls_head.forward(global_avg_pool(last))
    }
}
