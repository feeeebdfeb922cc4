//! `supervised`: the SupOnly baseline. The same networks, optimizers and schedule as Hermes, trained
//! on the labeled batch only: segmentation CE + Dice (spec §5.2), classification CE (§5.1).
//! Unlabeled batches, if the configuration asks for them, are ignored.

use std::path::Path;

use burn::tensor::Tensor;

use crate::config::TrainConfig;
use crate::error::Result;
use crate::loader::{ImageBatch, TrainBatch};

use super::common::{hermes_dice, images_tensor, scalar, sup_cls_loss, sup_seg_loss, Networks};
use super::{Predictions, SslMethod, StepContext, StepLosses};

pub struct Supervised {
    nets: Networks,
    dice: semisono_nn::losses::DiceLoss,
}

impl Supervised {
    pub fn new(cfg: &TrainConfig, device: &burn::tensor::Device) -> Result<Self> {
        Ok(Supervised {
            nets: Networks::new(cfg, device)?,
            dice: hermes_dice(cfg.model.seg_classes),
        })
    }
}

impl SslMethod for Supervised {
    fn name(&self) -> &'static str {
        "supervised"
    }

    fn run_step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses> {
        let mut out = StepLosses::default();
        let x = images_tensor(&batch.labeled.images, &self.nets.device);
        let seg_total = self.nets.seg.as_ref().map(|seg| {
            let (total, ce, dice) =
                sup_seg_loss(seg.forward_logits(x.clone()), &batch.labeled, &self.dice);
            out.losses.push(("seg_ce", scalar(&ce)));
            out.losses.push(("seg_dice", scalar(&dice)));
            total
        });
        let cls_total = self.nets.cls.as_ref().map(|cls| {
            let ce = sup_cls_loss(cls.forward_logits(x.clone()), &batch.labeled.labels);
            out.losses.push(("cls_ce", scalar(&ce)));
            ce
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
