//! Hermes' forward passes: one per view and network, with the IAS saliency bridge into S and IAS
//! attention into C, for training and for evaluation.
//!
//! * **Saliency** (spec §2.1, §13): for every S call (strong, weak, labeled; evaluation too) the
//!   classifier's vanilla saliency map of the same images, C in eval mode with its current weights,
//!   enters S's decoder as a constant. All maps of a step are computed before any train-mode
//!   forward, so they read C's BN running statistics from before the step (the code, which never
//!   ran this path, would interleave them with C's forwards). C has no IAS in this pass: S's
//!   features do not exist yet.
//! * **Attention** (spec §2.2, §13): `code` mode = IAS only on C's labeled-batch forward; `paper`
//!   mode = IAS on every C forward, evaluation included (S runs first there). S's features are
//!   always detached: C's loss never reaches S.
//!
//! Both need the two networks; with one (`task` = segmentation or classification) they are off, as
//! ITC is.

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::Tensor;
use semisono_nn::nets::{ClsModel, ClsOutput, SegFeatures, SegOutput};
use semisono_nn::saliency::vanilla_saliency;

use crate::loader::ImageBatch;

use super::super::common::images_tensor;
use super::super::Predictions;
use super::Hermes;

/// Where IAS attention runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IasUse {
    Off,
    /// The code: C's labeled-batch forward only, none at evaluation.
    Labeled,
    /// The paper: every C forward, evaluation included.
    Every,
}

/// S on the three views.
pub(super) struct SegViews {
    pub strong: SegOutput,
    pub weak: SegOutput,
    pub labeled_logits: Tensor<4>,
    /// S's features of the labeled batch, when some C forward reads them.
    pub labeled_features: Option<SegFeatures>,
}

/// C on the three views.
pub(super) struct ClsViews {
    pub strong: ClsOutput,
    pub weak: ClsOutput,
    pub labeled: ClsOutput,
}

/// The vanilla saliency of `cls` (an eval-mode model) at `x`, `[N, 1, H, W]`, as a constant on
/// `x`'s device.
fn saliency_map(cls: &ClsModel, x: &Tensor<4>) -> Tensor<4> {
    let map = vanilla_saliency(x.clone(), |x| cls.forward_logits(x)).map;
    let [n, h, w] = map.dims();
    // Through the host: the gradient lives on the inner backend, S runs on `x`'s device.
    Tensor::<3>::from_data(map.into_data(), &x.device()).reshape([n, 1, h, w])
}

impl Hermes {
    /// Every forward pass of a training step: S on strong, weak, labeled, then C on the same.
    pub(super) fn forward_views(
        &self,
        x_s: &Tensor<4>,
        x_w: &Tensor<4>,
        x_l: &Tensor<4>,
    ) -> (Option<SegViews>, Option<ClsViews>) {
        let eval_cls = self
            .saliency
            .then(|| self.nets.cls.as_ref().map(|c| c.valid()))
            .flatten();
        let saliency = |x: &Tensor<4>| eval_cls.as_ref().map(|c| saliency_map(c, x));
        let seg = self.nets.seg.as_ref().map(|seg| {
            let [sal_s, sal_w, sal_l] = [x_s, x_w, x_l].map(saliency);
            let strong = seg.forward_with_saliency(x_s.clone(), sal_s);
            let weak = seg.forward_with_saliency(x_w.clone(), sal_w);
            let (labeled_logits, labeled_features) = if self.ias == IasUse::Off {
                (seg.forward_logits_with_saliency(x_l.clone(), sal_l), None)
            } else {
                let o = seg.forward_with_saliency(x_l.clone(), sal_l);
                let features = o.ias_features();
                (o.logits, Some(features))
            };
            SegViews {
                strong,
                weak,
                labeled_logits,
                labeled_features,
            }
        });
        let cls = self.nets.cls.as_ref().map(|cls| {
            let run = |x: &Tensor<4>, features: Option<SegFeatures>| match features {
                Some(f) => cls.forward_with_seg(x.clone(), &f.detach()),
                None => cls.forward(x.clone()),
            };
            let (f_s, f_w, f_l) = match (self.ias, &seg) {
                (IasUse::Every, Some(s)) => (
                    Some(s.strong.ias_features()),
                    Some(s.weak.ias_features()),
                    s.labeled_features.clone(),
                ),
                (IasUse::Labeled, Some(s)) => (None, None, s.labeled_features.clone()),
                _ => (None, None, None),
            };
            ClsViews {
                strong: run(x_s, f_s),
                weak: run(x_w, f_w),
                labeled: run(x_l, f_l),
            }
        });
        (seg, cls)
    }

    /// Evaluation: both networks in eval mode on a plain device; S first when C's forward or S's
    /// bridge needs the other network.
    pub(super) fn eval_predictions(&self, images: &ImageBatch) -> Predictions {
        if !self.saliency && self.ias != IasUse::Every {
            return self.nets.eval_forward(images);
        }
        let x = images_tensor(images, &self.nets.device.clone().without_autodiff());
        let cls = self.nets.cls.as_ref().map(|m| m.valid());
        let seg = self.nets.seg.as_ref().map(|m| m.valid());
        let saliency = match (&cls, self.saliency) {
            (Some(c), true) => Some(saliency_map(c, &x)),
            _ => None,
        };
        let (seg_logits, features) = match &seg {
            Some(m) if self.ias == IasUse::Every => {
                let o = m.forward_with_saliency(x.clone(), saliency);
                let features = o.ias_features();
                (Some(o.logits), Some(features))
            }
            Some(m) => (
                Some(m.forward_logits_with_saliency(x.clone(), saliency)),
                None,
            ),
            None => (None, None),
        };
        let cls_logits = cls.as_ref().map(|m| match &features {
            Some(f) => m.forward_logits_with_seg(x.clone(), f),
            None => m.forward_logits(x.clone()),
        });
        Predictions {
            seg_probs: seg_logits.map(|l| softmax(l, 1)),
            cls_probs: cls_logits.map(|l| softmax(l, 1)),
        }
    }
}
