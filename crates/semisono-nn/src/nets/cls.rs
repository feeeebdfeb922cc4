//! The classification network C (spec §2.2): backbone with all four stages, global average
//! pooling, the class head, the SupCon projection head and the consistency head.
//!
//! With IAS attention ([`ClsAttention`], built when the configuration names the segmenter's
//! feature channels) [`ClsModel::forward_with_seg`] re-weights the stem and stages 1–3 with S's
//! features; [`ClsModel::forward`] never uses it. A model without attention has exactly the
//! parameters it had before attention existed, so its checkpoints load unchanged.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::backbone::{Backbone, BackboneConfig, EncoderFeatures, UnknownBackbone};
use super::heads::{
    global_avg_pool, ConsistencyHead, ConsistencyHeadConfig, ProjectionHead, ProjectionHeadConfig,
};
use super::ias::{ClsAttention, ClsAttentionConfig, SegFeatures};

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
    /// Builds IAS attention for a segmenter with these feature channels `[x_up3, x_up2, x_up1,
    /// x3]` (`SegModel::feature_channels()`); `None` = no attention.
    #[config(default = "None")]
    pub attention: Option<[usize; 4]>,
}

impl ClsModelConfig {
    /// Builds the model.
    pub fn init(&self, device: &Device) -> Result<ClsModel, UnknownBackbone> {
        let backbone = self.backbone.init(true, device)?;
        let [.., features] = backbone.channels();
        let mut model = ClsModel {
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
            attention: None,
        };
        if let Some(seg_channels) = self.attention {
            model.attach_attention(seg_channels, device);
        }
        Ok(model)
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
    /// IAS attention; `None` when the model is built without it.
    pub attention: Option<ClsAttention>,
}

impl ClsModel {
    /// Full forward pass: logits and all heads.
    pub fn forward(&self, x: Tensor<4>) -> ClsOutput {
        self.heads(self.backbone.forward_features(x))
    }

    /// Full forward pass with IAS attention after the stem and stages 1–3, guided by the
    /// segmenter's features of the same images. Detach `seg` first (as Hermes' training does) unless
    /// the segmenter is meant to learn from the classifier's loss.
    ///
    /// # Panics
    /// If the model was built without attention.
    pub fn forward_with_seg(&self, x: Tensor<4>, seg: &SegFeatures) -> ClsOutput {
        let attention = self.attention_module();
        self.heads(
            self.backbone
                .forward_features_with(x, &mut |site, f| attention.apply(site, f, seg)),
        )
    }

    /// Logits of [`forward_with_seg`](Self::forward_with_seg) only.
    pub fn forward_logits_with_seg(&self, x: Tensor<4>, seg: &SegFeatures) -> Tensor<2> {
        let attention = self.attention_module();
        let stages = self
            .backbone
            .forward_features_with(x, &mut |site, f| attention.apply(site, f, seg));
        self.cls_head
            .forward(global_avg_pool(Self::last_stage(stages)))
    }

    /// Adds IAS attention (fresh weights) for a segmenter with feature channels `seg_channels`
    /// `[x_up3, x_up2, x_up1, x3]`; the classifier's side follows its backbone's channels.
    pub fn attach_attention(&mut self, seg_channels: [usize; 4], device: &Device) {
        let [c0, c1, c2, c3, _] = self.backbone.channels();
        self.attention = Some(ClsAttentionConfig::new([c0, c1, c2, c3], seg_channels).init(device));
    }

    fn attention_module(&self) -> &ClsAttention {
        self.attention
            .as_ref()
            .expect("forward_with_seg needs a classifier built with IAS attention")
    }

    fn last_stage(stages: EncoderFeatures) -> Tensor<4> {
        stages
            .layer4
            .expect("the classifier backbone is built with its last stage")
    }

    fn heads(&self, stages: EncoderFeatures) -> ClsOutput {
        let features = global_avg_pool(Self::last_stage(stages.clone()));
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
        self.cls_head
            .forward(global_avg_pool(Self::last_stage(stages)))
    }
}
