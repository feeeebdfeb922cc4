//! `fixmatch`: FixMatch (Sohn et al. 2020) for the segmenter (per pixel) and the classifier (per
//! image).
//!
//! One step, per network:
//! 1. one forward of the labeled batch, the weak views and the strong views together (one batch,
//!    as the FixMatch code's interleaving: BatchNorm sees all three);
//! 2. pseudo-labels from the weak view, gradients stopped: the arg-max where its probability is
//!    ≥ τ ([`FixedThreshold`], `cls_threshold` / `seg_threshold`);
//! 3. loss = supervised loss (segmentation CE + Dice as in `supervised`, image CE) + λ_u · the
//!    cross-entropy of the strong view against those pseudo-labels, zero where not kept and
//!    averaged over **all** unlabeled images (pixels), as FixMatch (and UniMatch) do.
//!
//! Pixel-wise pseudo-labels need the strong view pixel-aligned with the weak one: the loader's
//! strong view is the weak view plus photometric changes only (jitter, blur; `loader.rs`), so
//! pixel `p` of the weak view's prediction labels pixel `p` of the strong view. This is why
//! RandAugment's geometric operations (rotate, shear, translate) are not part of the strong view.
//!
//! Evaluation uses the trained networks themselves (no EMA model).

use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use semisono_nn::losses::{class_cross_entropy, pixel_cross_entropy, DiceLoss};

use crate::config::{FixMatchConfig, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{ImageBatch, TrainBatch};
use crate::selector::{FixedThreshold, Probs, PseudoLabelSelector, Selection};

use super::common::{
    float_tensor, hermes_dice, images_tensor, int_tensor, scalar, sup_cls_loss, sup_seg_loss,
    to_f32_vec, Networks,
};
use super::mean_teacher::need_unlabeled;
use super::{Predictions, SslMethod, StepContext, StepLosses};

pub struct FixMatch {
    nets: Networks,
    cfg: FixMatchConfig,
    dice: DiceLoss,
}

/// The unlabeled loss of FixMatch and how much of it was kept.
pub struct UnsupLoss {
    /// Mean over every row (image or pixel) of `keep · CE(strong, pseudo-label)`.
    pub loss: Tensor<1>,
    /// Share of kept rows.
    pub keep_fraction: f64,
}

/// The 0/1 keep mask and the pseudo-labels of a selection as tensors of `shape`.
fn selection_tensors<const D: usize>(
    sel: &Selection,
    shape: [usize; D],
    d: &Device,
) -> (Tensor<D>, Tensor<D, burn::tensor::Int>) {
    let keep = sel.keep.iter().map(|&k| f32::from(u8::from(k))).collect();
    let labels = sel.labels.iter().map(|&l| i64::from(l)).collect();
    (float_tensor(keep, shape, d), int_tensor(labels, shape, d))
}

/// FixMatch's image loss: `weak_probs` is the weak view's softmax `[B, K]` (row-major, detached),
/// `strong` the strong view's logits `[B, K]`.
pub fn cls_unsup_loss(strong: Tensor<2>, weak_probs: &[f32], threshold: f64) -> UnsupLoss {
    let [b, k] = strong.dims();
    let sel = FixedThreshold { threshold }.select(&Probs::rows(weak_probs, k), None, 0);
    let (keep, labels) = selection_tensors(&sel, [b], &strong.device());
    let per_item = class_cross_entropy(strong, labels, None).per_item;
    UnsupLoss {
        loss: (per_item * keep).mean(),
        keep_fraction: sel.keep_fraction(),
    }
}

/// FixMatch's pixel loss: `weak_probs` is the weak view's softmax `[B, K, H, W]` (channels
/// first, detached), `strong` the strong view's logits of the same shape, pixel-aligned.
pub fn seg_unsup_loss(strong: Tensor<4>, weak_probs: &[f32], threshold: f64) -> UnsupLoss {
    let [b, k, h, w] = strong.dims();
    let probs = Probs::channels_first(weak_probs, b, k, h * w);
    let sel = FixedThreshold { threshold }.select(&probs, None, 0);
    let (keep, labels) = selection_tensors(&sel, [b, h, w], &strong.device());
    let per_item = pixel_cross_entropy(strong, labels, None).per_item;
    UnsupLoss {
        loss: (per_item * keep).mean(),
        keep_fraction: sel.keep_fraction(),
    }
}

impl FixMatch {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        need_unlabeled(cfg, "fixmatch")?;
        Ok(FixMatch {
            nets: Networks::new(cfg, device)?,
            cfg: cfg.fixmatch.clone(),
            dice: hermes_dice(cfg.model.seg_classes),
        })
    }
}

impl SslMethod for FixMatch {
    fn name(&self) -> &'static str {
        "fixmatch"
    }

    fn run_step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses> {
        let unl = batch.unlabeled.as_ref().ok_or_else(|| {
            TrainError::config("batch_unlabeled", "fixmatch needs unlabeled batches")
        })?;
        let d = &self.nets.device;
        let (n_l, n_u) = (batch.labeled.images.n, unl.weak.n);
        let x = Tensor::cat(
            vec![
                images_tensor(&batch.labeled.images, d),
                images_tensor(&unl.weak, d),
                images_tensor(&unl.strong, d),
            ],
            0,
        );
        let c = &self.cfg;
        let mut out = StepLosses::default();

        let seg_total = self.nets.seg.as_ref().map(|seg| {
            let logits = seg.forward_logits(x.clone());
            let (sup, ce, dl) =
                sup_seg_loss(logits.clone().narrow(0, 0, n_l), &batch.labeled, &self.dice);
            let weak = to_f32_vec(softmax(logits.clone().narrow(0, n_l, n_u).detach(), 1));
            let u = seg_unsup_loss(logits.narrow(0, n_l + n_u, n_u), &weak, c.seg_threshold);
            out.losses.push(("seg_sup", scalar(&sup)));
            out.losses.push(("seg_ce", scalar(&ce)));
            out.losses.push(("seg_dice", scalar(&dl)));
            out.losses.push(("seg_unsup", scalar(&u.loss)));
            out.stats.push(("seg_keep", u.keep_fraction));
            sup + u.loss.mul_scalar(c.unsup_weight)
        });
        let cls_total = self.nets.cls.as_ref().map(|cls| {
            let logits = cls.forward_logits(x);
            let sup = sup_cls_loss(logits.clone().narrow(0, 0, n_l), &batch.labeled.labels);
            let weak = to_f32_vec(softmax(logits.clone().narrow(0, n_l, n_u).detach(), 1));
            let u = cls_unsup_loss(logits.narrow(0, n_l + n_u, n_u), &weak, c.cls_threshold);
            out.losses.push(("cls_sup", scalar(&sup)));
            out.losses.push(("cls_unsup", scalar(&u.loss)));
            out.stats.push(("cls_keep", u.keep_fraction));
            sup + u.loss.mul_scalar(c.unsup_weight)
        });
        self.nets
            .apply(batch.step, seg_total, cls_total, ctx, &mut out)?;
        Ok(out)
    }

    fn eval_forward(&self, images: &ImageBatch) -> Predictions {
        self.nets.eval_forward(images)
    }

    fn compute_saliency(&self, images: &ImageBatch) -> Option<Tensor<3>> {
        self.nets.saliency(images)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.nets.save(dir)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.nets.load(dir)
    }
}
