//! `hermes`: semi-supervised dual-threshold contrastive learning for joint ultrasound
//! classification and segmentation (spec §4–§5, with the §13 clean gradient flow).
//!
//! One step:
//! 1. one forward per view (strong, weak, labeled) per network, S before C (each network sees its
//!    views in the code's order), with the IAS saliency bridge into S and IAS attention into C
//!    ([`views`]);
//! 2. pseudo-labels from the weak view, gradients stopped; the dual threshold (class-wise adaptive
//!    confidence + ramped entropy, [`DualThreshold`]) is evaluated on the host on the probabilities
//!    (a few thousand values at these sizes) and its masks go back as tensors;
//! 3. losses: supervised CE (+ Dice), weak → strong CE on kept images and Dice on kept pixels
//!    (weight `unsup_weight`), image SupCon and pixel contrast once contrast is active by epoch
//!    (against the memory banks when they are on), and ITC between the strong-view consistency
//!    vectors with the classifier's side detached;
//! 4. Loss_cls and Loss_seg are each applied to their own network only; then the memory banks take
//!    this step's detached entries ([`banks`]).
//!
//! Every component is a switch of [`HermesConfig`](crate::config::HermesConfig). ITC, IAS
//! attention and the saliency bridge need both networks and are off when `task` trains only one.
//! The banks are method state: saved with the weights and restored on resume.

mod banks;
mod views;

use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor};
use semisono_nn::losses::{
    class_cross_entropy, itc_loss, nearest_downsample_labels, DiceLoss, PixelContrastConfig,
    PixelContrastLoss, SupConConfig, SupConLoss,
};
use semisono_nn::nets::BridgeLevel;

use crate::config::{HermesConfig, HermesMode, SaliencyFuse, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{ImageBatch, TrainBatch};
use crate::schedule::{contrast_active, stepped_rampup};
use crate::selector::{DualThreshold, KeepRule, Probs};

use super::common::{
    bool_tensor, float_tensor, hermes_dice, images_tensor, int_tensor, scalar, step_seed,
    sup_cls_loss, sup_seg_loss, to_f32_vec, Networks,
};
use super::{Predictions, SslMethod, StepContext, StepLosses};
use banks::Banks;
use views::IasUse;

pub struct Hermes {
    nets: Networks,
    cfg: HermesConfig,
    seed: u64,
    total_steps: u64,
    dice: DiceLoss,
    supcon: SupConLoss,
    pixel: PixelContrastLoss,
    /// Where IAS attention runs (off without both networks).
    ias: IasUse,
    /// The saliency bridge is on (both networks present).
    saliency: bool,
    banks: Banks,
}

/// Detached entries of this step, pushed into the banks once the update succeeded.
#[derive(Default)]
struct BankUpdates {
    /// Averaged embeddings and their contrast labels at the embedding resolution.
    pixel: Option<(Tensor<4>, Tensor<3, Int>)>,
    /// Weak-view projections and their labels (−1 for images that were not kept).
    image: Option<(Tensor<2>, Vec<i64>)>,
}

/// Rejects configurations Hermes cannot run.
fn check(cfg: &TrainConfig) -> Result<()> {
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
        let mut nets = Networks::new(cfg, device)?;
        let both = nets.seg.is_some() && nets.cls.is_some();
        // The two cross-network modules are added to the networks `Networks` built: both are new
        // layers (never pretrained), so nothing it loaded is replaced.
        let saliency = h.saliency && both;
        if saliency {
            let level = match h.saliency_fuse {
                SaliencyFuse::Quarter => BridgeLevel::Quarter,
                SaliencyFuse::Eighth => BridgeLevel::Eighth,
            };
            nets.seg = nets
                .seg
                .take()
                .map(|s| s.with_saliency_bridge(level, cfg.model.in_channels, device));
        }
        let ias = match (h.attention && both, h.mode) {
            (false, _) => IasUse::Off,
            (true, HermesMode::Code) => IasUse::Labeled,
            (true, HermesMode::Paper) => IasUse::Every,
        };
        if let (IasUse::Labeled | IasUse::Every, Some(seg), Some(cls)) =
            (ias, nets.seg.as_ref(), nets.cls.as_mut())
        {
            cls.attach_attention(seg.feature_channels(), device);
        }
        let banks = Banks::new(h, &nets);
        Ok(Hermes {
            nets,
            ias,
            saliency,
            banks,
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

    fn run_step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses> {
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
        let mut updates = BankUpdates::default();
        let (seg_views, cls_views) = self.forward_views(&x_s, &x_w, &x_l);

        // ---- classifier (spec §5.1, §5.3, §5.5) ----
        let mut g_cls_strong = None;
        let cls_total = if let Some(views) = cls_views {
            let (o_s, o_w, o_l) = (views.strong, views.weak, views.labeled);
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
            let pseudo: Vec<i64> = sel.pseudo.labels.iter().map(|&l| i64::from(l)).collect();
            let y_hat = int_tensor(pseudo.clone(), [b], d);
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
                let bank = self.banks.image.as_ref().map(|bank| {
                    out.stats.push(("image_bank", bank.total_len() as f64));
                    let labels = pseudo.iter().zip(&keep);
                    updates.image = Some((
                        o_w.projection.clone().detach(),
                        labels.map(|(&l, &k)| if k { l } else { -1 }).collect(),
                    ));
                    bank.contrast_set(d)
                });
                let views = Tensor::stack::<3>(vec![o_s.projection, o_w.projection], 1);
                self.supcon
                    .forward_with_bank(views, y_hat, Some(keep_f), bank.flatten())
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
        let seg_total = if let Some(views) = seg_views {
            let (o_s, o_w) = (views.strong, views.weak);
            let (sup, ce, dl) = sup_seg_loss(views.labeled_logits, &batch.labeled, &self.dice);

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
                let seed = step_seed(self.seed, step);
                let con = match &self.banks.pixel {
                    Some(bank) => {
                        out.stats.push(("pixel_bank", bank.total_len() as f64));
                        updates.pixel = Some((emb.clone().detach(), labels.clone()));
                        self.pixel.forward_with_bank(emb, labels, preds, seed, bank)
                    }
                    None => self.pixel.forward(emb, labels, preds, seed),
                };
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
        // Enqueue after the update: this step's loss used the bank as it was before the step.
        if let (Some(bank), Some((emb, labels))) = (self.banks.pixel.as_mut(), updates.pixel) {
            bank.push_segment_means(emb, labels, -1);
        }
        if let (Some(bank), Some((rows, labels))) = (self.banks.image.as_mut(), updates.image) {
            bank.push_rows(rows, &labels);
        }
        Ok(out)
    }

    fn eval_forward(&self, images: &ImageBatch) -> Predictions {
        self.eval_predictions(images)
    }

    fn compute_saliency(&self, images: &ImageBatch) -> Option<Tensor<3>> {
        self.nets.saliency(images)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.nets.save(dir)?;
        self.banks.save(dir)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.nets.load(dir)?;
        self.banks.load(dir)
    }
}
