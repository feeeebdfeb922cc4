//! `cps`: cross pseudo supervision (Chen et al. 2021) for the segmenter and the classifier.
//!
//! Two pairs of networks of the same architecture with different initialisations (built one
//! after the other from the seeded device generator; pretrained encoder weights, if any, go into
//! both, as in CPS where both branches start from the same ImageNet backbone). One step:
//! 1. each network runs once on the labeled batch and the weak views together;
//! 2. each network's hard pseudo-labels (arg-max, detached) supervise the other network with a
//!    cross-entropy over the whole batch, labeled images included (as the CPS code does);
//! 3. loss of network i = its supervised loss (segmentation CE + Dice as in `supervised`, image
//!    CE) plus λ(t) · CE(P_i, arg-max P_j), λ(t) = λ · ρ(t, `cps_rampup` · steps), λ =
//!    `seg_weight` for the segmenters and `cls_weight` for the classifiers.
//!
//! CPS uses one augmented view per image; here that is the weak view and the strong views are
//! not used. Evaluation uses the first pair (`cps.eval_mean = false`, the CPS code's choice) or
//! the mean of both pairs' softmax outputs; the saliency map is the first classifier's. The
//! second pair and its optimizers are saved in the checkpoint's `cps-second/` directory.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor};
use semisono_nn::losses::{class_cross_entropy, pixel_cross_entropy, DiceLoss};

use crate::config::{CpsConfig, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{ImageBatch, TrainBatch};

use super::common::{hermes_dice, images_tensor, scalar, sup_cls_loss, sup_seg_loss, Networks};
use super::mean_teacher::{need_unlabeled, ramped_weight};
use super::{Predictions, SslMethod, StepContext, StepLosses};

const SECOND_DIR: &str = "cps-second";

pub struct Cps {
    /// `[first, second]`, each a segmenter and/or classifier with their optimizers.
    nets: [Networks; 2],
    cfg: CpsConfig,
    total_steps: u64,
    dice: DiceLoss,
}

/// Arg-max over dim 1 of detached logits `[N, K, ...]`, without the class dimension.
fn hard_labels<const D: usize, const E: usize>(logits: &Tensor<D>) -> Tensor<E, Int> {
    logits.clone().detach().argmax(1).squeeze_dim::<E>(1)
}

/// The two CPS terms for pixel logits `[N, K, H, W]` of networks `a` and `b`:
/// (CE(a, arg-max b), CE(b, arg-max a)), each a mean over every pixel. Only the network on the
/// left of each CE gets a gradient.
pub fn cps_seg_loss(a: Tensor<4>, b: Tensor<4>) -> (Tensor<1>, Tensor<1>) {
    let (ya, yb) = (hard_labels::<4, 3>(&a), hard_labels::<4, 3>(&b));
    (
        pixel_cross_entropy(a, yb, None).mean,
        pixel_cross_entropy(b, ya, None).mean,
    )
}

/// [`cps_seg_loss`] for image logits `[N, K]`.
pub fn cps_cls_loss(a: Tensor<2>, b: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let (ya, yb) = (hard_labels::<2, 1>(&a), hard_labels::<2, 1>(&b));
    (
        class_cross_entropy(a, yb, None).mean,
        class_cross_entropy(b, ya, None).mean,
    )
}

impl Cps {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        need_unlabeled(cfg, "cps")?;
        // Built in sequence from the one seeded generator: different initial weights.
        let first = Networks::new(cfg, device)?;
        let second = Networks::new(cfg, device)?;
        Ok(Cps {
            nets: [first, second],
            cfg: cfg.cps.clone(),
            total_steps: cfg.steps,
            dice: hermes_dice(cfg.model.seg_classes),
        })
    }

    /// The probabilities of network pair `index` (0 or 1) alone.
    pub fn pair_forward(&self, index: usize, images: &ImageBatch) -> Predictions {
        self.nets[index].eval_forward(images)
    }

    /// (segmenters', classifiers') λ(t) at 1-based `step`.
    pub fn cps_weights(&self, step: u64) -> (f64, f64) {
        let c = &self.cfg;
        let w = |weight| ramped_weight(weight, c.cps_rampup, step, self.total_steps);
        (w(c.seg_weight), w(c.cls_weight))
    }
}

/// The mean of two optional probability tensors (both present or both absent).
fn mean_probs<const D: usize>(a: Option<Tensor<D>>, b: Option<Tensor<D>>) -> Option<Tensor<D>> {
    a.zip(b).map(|(a, b)| (a + b).div_scalar(2.0))
}

impl SslMethod for Cps {
    fn name(&self) -> &'static str {
        "cps"
    }

    fn run_step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses> {
        let unl = batch
            .unlabeled
            .as_ref()
            .ok_or_else(|| TrainError::config("batch_unlabeled", "cps needs unlabeled batches"))?;
        let d = &self.nets[0].device;
        let n_l = batch.labeled.images.n;
        let x = Tensor::cat(
            vec![
                images_tensor(&batch.labeled.images, d),
                images_tensor(&unl.weak, d),
            ],
            0,
        );
        let (w_seg, w_cls) = self.cps_weights(batch.step);
        let mut out = StepLosses::default();

        let [seg1, seg2] = match (self.nets[0].seg.as_ref(), self.nets[1].seg.as_ref()) {
            (Some(s1), Some(s2)) => {
                let (l1, l2) = (s1.forward_logits(x.clone()), s2.forward_logits(x.clone()));
                let sup = |l: &Tensor<4>| {
                    sup_seg_loss(l.clone().narrow(0, 0, n_l), &batch.labeled, &self.dice).0
                };
                let (sup1, sup2) = (sup(&l1), sup(&l2));
                let (cps1, cps2) = cps_seg_loss(l1, l2);
                out.losses.push(("seg_sup", scalar(&sup1)));
                out.losses.push(("seg_cps", scalar(&cps1)));
                out.losses.push(("seg_sup2", scalar(&sup2)));
                out.losses.push(("seg_cps2", scalar(&cps2)));
                out.stats.push(("seg_cps_weight", w_seg));
                [
                    Some(sup1 + cps1.mul_scalar(w_seg)),
                    Some(sup2 + cps2.mul_scalar(w_seg)),
                ]
            }
            _ => [None, None],
        };
        let [cls1, cls2] = match (self.nets[0].cls.as_ref(), self.nets[1].cls.as_ref()) {
            (Some(c1), Some(c2)) => {
                let (l1, l2) = (c1.forward_logits(x.clone()), c2.forward_logits(x));
                let labels = &batch.labeled.labels;
                let sup1 = sup_cls_loss(l1.clone().narrow(0, 0, n_l), labels);
                let sup2 = sup_cls_loss(l2.clone().narrow(0, 0, n_l), labels);
                let (cps1, cps2) = cps_cls_loss(l1, l2);
                out.losses.push(("cls_sup", scalar(&sup1)));
                out.losses.push(("cls_cps", scalar(&cps1)));
                out.losses.push(("cls_sup2", scalar(&sup2)));
                out.losses.push(("cls_cps2", scalar(&cps2)));
                out.stats.push(("cls_cps_weight", w_cls));
                [
                    Some(sup1 + cps1.mul_scalar(w_cls)),
                    Some(sup2 + cps2.mul_scalar(w_cls)),
                ]
            }
            _ => [None, None],
        };
        // The second pair's totals are logged (and so checked for NaN) before the first pair's
        // update: a non-finite loss must leave both pairs untouched.
        for (name, t) in [("seg_total2", &seg2), ("cls_total2", &cls2)] {
            if let Some(t) = t {
                out.losses.push((name, scalar(t)));
            }
        }
        self.nets[0].apply(batch.step, seg1, cls1, ctx, &mut out)?;
        // The second pair's own log (its totals again, the same learning rates) is redundant.
        let mut second = StepLosses::default();
        self.nets[1].apply(batch.step, seg2, cls2, &StepContext::default(), &mut second)?;
        Ok(out)
    }

    fn eval_forward(&self, images: &ImageBatch) -> Predictions {
        let first = self.nets[0].eval_forward(images);
        if !self.cfg.eval_mean {
            return first;
        }
        let second = self.nets[1].eval_forward(images);
        Predictions {
            seg_probs: mean_probs(first.seg_probs, second.seg_probs),
            cls_probs: mean_probs(first.cls_probs, second.cls_probs),
        }
    }

    fn compute_saliency(&self, images: &ImageBatch) -> Option<Tensor<3>> {
        self.nets[0].saliency(images)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.nets[0].save(dir)?;
        let second = dir.join(SECOND_DIR);
        std::fs::create_dir_all(&second).map_err(|e| TrainError::io(&second, e))?;
        self.nets[1].save(&second)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.nets[0].load(dir)?;
        self.nets[1].load(&dir.join(SECOND_DIR))
    }
}
