//! `hermes`: semi-supervised dual-threshold contrastive learning for joint ultrasound
//! classification and segmentation (spec §4–§5, with the §13 clean gradient flow).
//!
//! One step:
//! 1. one forward per view (strong, weak, labeled) per network, in the code's order;
//! 2. pseudo-labels from the weak view, gradients stopped; the dual threshold (class-wise adaptive
//!    confidence + ramped entropy, [`DualThreshold`]) is evaluated on the host on the probabilities
//!    (a few thousand values at these sizes) and its masks go back as tensors;
//! 3. losses: supervised CE (+ Dice), weak → strong CE on kept images and Dice on kept pixels
//!    (weight `unsup_weight`), image SupCon and pixel contrast once contrast is active by epoch,
//!    and ITC between the strong-view consistency vectors with the classifier's side detached;
//! 4. Loss_cls and Loss_seg are each applied to their own network only.
//!
//! Every component is a switch of [`HermesConfig`](crate::config::HermesConfig). Switches this
//! build does not implement (IAS attention, saliency fuse, memory banks) are configuration errors,
//! never silent no-ops. ITC needs both networks and is skipped when `task` trains only one.

use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use semisono_nn::losses::{
    class_cross_entropy, itc_loss, nearest_downsample_labels, DiceLoss, PixelContrastConfig,
    PixelContrastLoss, SupConConfig, SupConLoss,
};

use crate::config::{HermesConfig, HermesMode, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{ImageBatch, TrainBatch};
use crate::schedule::{contrast_active, stepped_rampup};
use crate::selector::{DualThreshold, KeepRule, Probs};

use super::common::{
    bool_tensor, float_tensor, hermes_dice, images_tensor, int_tensor, scalar, step_seed,
    sup_cls_loss, sup_seg_loss, to_f32_vec, Networks,
};
use super::{Predictions, SslMethod, StepContext, StepLosses};

pub struct Hermes {
    nets: Networks,
    cfg: HermesConfig,
    seed: u64,
    total_steps: u64,
    dice: DiceLoss,
    supcon: SupConLoss,
    pixel: PixelContrastLoss,
}

/// Rejects the Hermes switches this build does not implement.
fn check(cfg: &TrainConfig) -> Result<()> {
    let h = &cfg.hermes;
    let todo = |key: &str, what: &str| {
        Err(TrainError::config(
            key,
            format!("{what} is not implemented yet; set it to false"),
        ))
    };
    if h.attention {
        return todo("hermes.attention", "IAS attention");
    }
    if h.saliency {
        return todo("hermes.saliency", "the IAS saliency bridge");
    }
    if h.memory_bank {
        return todo("hermes.memory_bank", "the contrastive memory bank");
    }
    if cfg.batch_unlabeled == 0 {
        return Err(TrainError::config(
            "batch_unlabeled",
            "hermes needs unlabeled batches (batch_unlabeled > 0)",
        ));
    }
    Ok(())
}

impl Hermes {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        check(cfg)?;
        let h = &cfg.hermes;
        Ok(Hermes {
            nets: Networks::new(cfg, device)?,
            cfg: h.clone(),
            seed: cfg.seed,
            total_steps: cfg.steps,
            dice: hermes_dice(cfg.model.seg_classes),
            supcon: SupConConfig::new()
                .with_temperature(h.temperature)
                .with_base_temperature(h.base_temperature)
                .init(),
            pixel: PixelContrastConfig::new()
                .with_temperature(h.temperature)
                .with_base_temperature(h.base_temperature)
                .with_max_samples(h.max_samples)
                .with_max_views(h.max_views)
                .init(),
        })
    }

    fn selector(&self) -> DualThreshold {
        DualThreshold {
            t_min: self.cfg.t_min,
            t_max: self.cfg.t_max,
            total_steps: self.total_steps,
            rule: KeepRule::Classifier,
        }
    }
}

fn fraction(keep: &[bool]) -> f64 {
    keep.iter().filter(|&&k| k).count() as f64 / keep.len().max(1) as f64
}

impl SslMethod for Hermes {
    fn name(&self) -> &'static str {
        "hermes"
    }

    fn step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses> {
        let h = &self.cfg;
        let d = &self.nets.device;
        let step = batch.step;
        let unl = batch.unlabeled.as_ref().ok_or_else(|| {
            TrainError::config("batch_unlabeled", "hermes needs unlabeled batches")
        })?;
        let x_l = images_tensor(&batch.labeled.images, d);
        let x_s = images_tensor(&unl.strong, d);
        let x_w = images_tensor(&unl.weak, d);
        let contrast_on = contrast_active(batch.epoch, h.contrast_after_epoch);
        let selector = self.selector();
        let mut out = StepLosses::default();

        // ---- classifier (spec §5.1, §5.3, §5.5) ----
        let mut g_cls_strong = None;
        let cls_total = if let Some(cls) = &self.nets.cls {
            let o_s = cls.forward(x_s.clone());
            let o_w = cls.forward(x_w.clone());
            let o_l = cls.forward(x_l.clone());
            let sup = sup_cls_loss(o_l.logits, &batch.labeled.labels);

            let [b, k] = o_w.logits.dims();
            let p_w = to_f32_vec(softmax(o_w.logits.detach(), 1));
            let sel = selector.evaluate(&Probs::rows(&p_w, k), step);
            let keep = if h.dual_threshold {
                sel.classifier_keep()
            } else {
                vec![true; b]
            };
            out.stats.push(("cls_keep", fraction(&keep)));
            let y_hat = int_tensor(
                sel.pseudo.labels.iter().map(|&l| i64::from(l)).collect(),
                [b],
                d,
            );
            let keep_f = float_tensor(
                keep.iter().map(|&k| f32::from(u8::from(k))).collect(),
                [b],
                d,
            );
            // Mean over all B images, not over the kept ones (spec §5.3).
            let unsup = (class_cross_entropy(o_s.logits, y_hat.clone(), None).per_item
                * keep_f.clone())
            .mean();
            let con = (h.image_contrast && contrast_on).then(|| {
                let views = Tensor::stack::<3>(vec![o_s.projection, o_w.projection], 1);
                self.supcon.forward(views, y_hat, Some(keep_f))
            });
            out.losses.push(("cls_sup", scalar(&sup)));
            out.losses.push(("cls_unsup", scalar(&unsup)));
            let mut inner = sup + unsup.mul_scalar(h.unsup_weight);
            if let Some(con) = con {
                out.losses.push(("cls_contrast", scalar(&con)));
                inner = inner + con.mul_scalar(h.cls_contrast_weight);
            }
            g_cls_strong = Some(o_s.consistency.detach());
            Some(inner.mul_scalar(h.cls_weight))
        } else {
            None
        };

        // ---- segmenter (spec §5.2, §5.4, §5.6, §5.7) ----
        let seg_total = if let Some(seg) = &self.nets.seg {
            let o_s = seg.forward(x_s.clone());
            let o_w = seg.forward(x_w.clone());
            let o_l = seg.forward_logits(x_l.clone());
            let (sup, ce, dl) = sup_seg_loss(o_l, &batch.labeled, &self.dice);

            let [b, k, hh, ww] = o_w.logits.dims();
            let p_w = to_f32_vec(softmax(o_w.logits.detach(), 1));
            let sel = selector.evaluate(&Probs::channels_first(&p_w, b, k, hh * ww), step);
            let y_hat = int_tensor(
                sel.pseudo.labels.iter().map(|&l| i64::from(l)).collect(),
                [b, hh, ww],
                d,
            );
            let ignore = h.dual_threshold.then(|| {
                let keep = sel.seg_dice_keep(h.seg_dice_keep);
                out.stats.push(("seg_keep", fraction(&keep)));
                bool_tensor(keep.iter().map(|&k| !k).collect(), [b, hh, ww], d)
            });
            let unsup = self.dice.forward(o_s.logits.clone(), y_hat, ignore).loss;
            out.losses.push(("seg_sup", scalar(&sup)));
            out.losses.push(("seg_ce", scalar(&ce)));
            out.losses.push(("seg_dice", scalar(&dl)));
            out.losses.push(("seg_unsup", scalar(&unsup)));
            let mut inner = sup + unsup.mul_scalar(h.unsup_weight);

            if h.pixel_contrast && contrast_on {
                let mut labels: Vec<i64> = if h.dual_threshold {
                    sel.contrast_labels(h.contrast_keep())
                } else {
                    sel.pseudo.labels.iter().map(|&l| i64::from(l)).collect()
                };
                if h.dual_threshold && h.mode == HermesMode::Code && h.code_index_bug {
                    sel.apply_code_index_bug(&mut labels, hh * ww);
                }
                let emb = (o_s.embedding + o_w.embedding).div_scalar(2.0);
                let [_, _, eh, ew] = emb.dims();
                let labels =
                    nearest_downsample_labels(int_tensor(labels, [b, hh, ww], d), [eh, ew]);
                let preds = o_s.logits.clone().detach().argmax(1).squeeze_dim::<3>(1);
                let preds = nearest_downsample_labels(preds, [eh, ew]);
                let con = self
                    .pixel
                    .forward(emb, labels, preds, step_seed(self.seed, step));
                out.losses.push(("seg_contrast", scalar(&con)));
                inner = inner + con.mul_scalar(h.seg_contrast_weight);
            }
            let mut total = inner.mul_scalar(h.seg_weight);
            if let (true, Some(g_cls)) = (h.consistency, g_cls_strong) {
                let w = stepped_rampup(step, h.itc_ramp_every, h.itc_ramp_length);
                // The classifier's vector is detached: S learns from ITC, C does not (§4.4, §13).
                let itc = itc_loss(g_cls, o_s.consistency).loss;
                out.losses.push(("itc", scalar(&itc)));
                out.stats.push(("itc_weight", w));
                total = total + itc.mul_scalar(w);
            }
            Some(total)
        } else {
            None
        };

        self.nets.apply(step, seg_total, cls_total, ctx, &mut out)?;
        Ok(out)
    }

    fn eval_forward(&self, images: &ImageBatch) -> Predictions {
        self.nets.eval_forward(images)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.nets.save(dir)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.nets.load(dir)
    }
}
