//! `mlrpl`: mutual learning with reliable pseudo-labels (Su et al., MedIA 2024; specs/mlrpl.md),
//! in the 2-D mapping of spec §11 (docs/methods/mlrpl.md).
//!
//! One segmenter, [`DualDecoderSeg`]: a shared registry encoder and two U-Net decoders that differ
//! only in their up-sampling. One step:
//! 1. one forward of cat[labeled, unlabeled weak view] (the code's one batch; no weak/strong pair);
//! 2. supervised: each decoder's foreground Dice on the labeled part (images without a mask left
//!    out), summed, weight λ (spec §5.1);
//! 3. reliable mutual consistency on the whole batch, labeled images included (spec §5.2, §10.4):
//!    for each ordered pair, the student learns the teacher's arg-max where the teacher's entropy
//!    is strictly lower ([`EntropyComparison`](crate::selector::EntropyComparison)), weighted by the
//!    agreement of the teacher's softmax with its prototype-similarity map ([`loss`]);
//! 4. total λ·L_sup + w(t)·L_cons with w(t) = ρ(⌊t / every⌋, 40) (spec §5.3, §12.3).
//!
//! When `task` includes classification, the classifier trains supervised-only on the labeled batch,
//! exactly as the `supervised` method does (MLRPL has no classification branch; the grid reports
//! accuracy/F1/AUC for every method). Evaluation reads decoder 1 or the two decoders' softmax mean.

pub mod loss;

use std::path::Path;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use semisono_nn::losses::pixel_cross_entropy;
use semisono_nn::nets::{BackboneConfig, DualDecoderSeg, DualDecoderSegConfig, Upsample};
use semisono_nn::pretrained::load_encoder_weights;
use serde::{Deserialize, Serialize};

use crate::config::{MlrplConfig, OptimizerConfig, Task, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{ImageBatch, TrainBatch};
use crate::schedule::lr_at_iteration;

use super::common::{
    build_optimizer, images_tensor, load_module, load_optimizer, mask_targets, save_module,
    save_optimizer, scalar, sup_cls_loss, Networks,
};
use super::{Predictions, SslMethod, StepContext, StepLosses};
pub use loss::{foreground_dice, reliable_pair, PairTerms};

/// Which cross-entropy the reliable consistency applies to the student (spec §10.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsistencyCe {
    /// CE on the student's logits (the code since Oct 2024).
    #[default]
    Fixed,
    /// CE on the student's softmax probabilities, −log softmax(p)[ŷ] (the published code).
    Original,
}

/// Up-sampling of one decoder (spec §11; MC-Net up types 0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderUpsample {
    /// Learned ConvTranspose2d, kernel 2, stride 2 (type 0).
    Transposed,
    /// Bilinear, align_corners = true (type 1, MC-Net 2-D's default).
    Bilinear,
    /// Nearest neighbour (type 2).
    Nearest,
}

impl From<DecoderUpsample> for Upsample {
    fn from(u: DecoderUpsample) -> Self {
        match u {
            DecoderUpsample::Transposed => Upsample::Transposed,
            DecoderUpsample::Bilinear => Upsample::Bilinear,
            DecoderUpsample::Nearest => Upsample::Nearest,
        }
    }
}

/// What evaluation and prediction read from the two decoders (spec §7, §11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlrplInference {
    /// Decoder 1's softmax (the code's validation and test).
    #[default]
    Decoder1,
    /// The mean of both decoders' softmax probabilities (not the code's mean of raw logits,
    /// spec §10.9).
    Average,
}

const SEG_FILE: &str = "seg.bpk";
const SEG_OPT_FILE: &str = "seg-optim.bpk";

pub struct Mlrpl {
    device: Device,
    cfg: MlrplConfig,
    /// The dual-decoder segmenter and its optimizer (`None` without segmentation).
    seg: Option<DualDecoderSeg>,
    seg_opt: Option<ModuleOptimizer>,
    seg_optim: OptimizerConfig,
    /// The classifier, its optimizer and rate (`None` without classification): the shared
    /// [`Networks`], built for classification only.
    cls: Option<Networks>,
    total_steps: u64,
    poly_power: f64,
    /// Pretrained segmenter weights loaded at construction, logged with the first step.
    pending_stats: Vec<(&'static str, f64)>,
}

impl Mlrpl {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        if cfg.batch_unlabeled == 0 {
            return Err(TrainError::config(
                "batch_unlabeled",
                "mlrpl needs unlabeled batches (batch_unlabeled > 0)",
            ));
        }
        let m = &cfg.model;
        let want_seg = matches!(cfg.task, Task::Segmentation | Task::Both);
        let want_cls = matches!(cfg.task, Task::Classification | Task::Both);
        if m.seg_pretrained.is_some() && !want_seg {
            return Err(TrainError::config(
                "model.seg_pretrained",
                "task = classification builds no segmenter, so these weights would be ignored; \
                 leave it empty",
            ));
        }
        let mut pending_stats = Vec::new();
        let seg = if want_seg {
            let mut seg = DualDecoderSegConfig::new()
                .with_backbone(
                    BackboneConfig::new()
                        .with_name(m.seg_backbone.clone())
                        .with_width_multiplier(m.width_multiplier)
                        .with_in_channels(m.in_channels)
                        .with_imagenet_norm(m.imagenet_norm),
                )
                .with_num_classes(m.seg_classes)
                .with_dropout(m.dropout)
                .with_upsample([
                    cfg.mlrpl.decoder1_upsample.into(),
                    cfg.mlrpl.decoder2_upsample.into(),
                ])
                .with_feature_dropout(cfg.mlrpl.feature_dropout)
                .init(device)
                .map_err(|e| TrainError::Model(e.to_string()))?;
            if let Some(path) = &m.seg_pretrained {
                let r = load_encoder_weights(&mut seg.encoder, path)
                    .map_err(|e| TrainError::config("model.seg_pretrained", e.to_string()))?;
                pending_stats.push(("seg_pretrained_tensors", r.applied as f64));
                pending_stats.push(("seg_pretrained_skipped", r.skipped.len() as f64));
            }
            Some(seg)
        } else {
            None
        };
        // The shared networks build the classifier exactly as for `supervised`; the segmenter
        // (and its pretrained weights) is ours.
        let cls = if want_cls {
            let mut c = cfg.clone();
            c.task = Task::Classification;
            c.model.seg_pretrained = None;
            Some(Networks::new(&c, device)?)
        } else {
            None
        };
        Ok(Mlrpl {
            device: device.clone(),
            cfg: cfg.mlrpl.clone(),
            seg_opt: seg.as_ref().map(|_| build_optimizer(&cfg.optim.seg)),
            seg,
            seg_optim: cfg.optim.seg.clone(),
            cls,
            total_steps: cfg.steps,
            poly_power: cfg.optim.poly_power,
            pending_stats,
        })
    }

    /// Softmax probabilities of decoder 1 and decoder 2 on `images` (evaluation mode); `None`
    /// without a segmenter.
    pub fn decoder_probs(&self, images: &ImageBatch) -> Option<[Tensor<4>; 2]> {
        let seg = self.seg.as_ref()?.valid();
        let x = images_tensor(images, &self.device.clone().without_autodiff());
        Some(seg.forward_logits(x).map(|z| softmax(z, 1)))
    }

    /// The segmenter's loss terms of one step: λ·L_sup + w(t)·L_cons.
    fn seg_loss(
        &self,
        seg: &DualDecoderSeg,
        batch: &TrainBatch,
        x_l: Tensor<4>,
        out: &mut StepLosses,
    ) -> Result<Tensor<1>> {
        let c = &self.cfg;
        let d = &self.device;
        let unl = batch.unlabeled.as_ref().ok_or_else(|| {
            TrainError::config("batch_unlabeled", "mlrpl needs unlabeled batches")
        })?;
        let n_l = batch.labeled.images.n;
        let x = Tensor::cat(vec![x_l, images_tensor(&unl.weak, d)], 0);
        let o = seg.forward(x);

        // Supervised (spec §5.1), labeled part only.
        let (target, ignore) = mask_targets(&batch.labeled, d);
        let valid = ignore.clone().map(|i| i.bool_not().float());
        let mut sup = Tensor::<1>::zeros([1], d);
        for (k, z) in o.logits.iter().enumerate() {
            let z_l = z.clone().narrow(0, 0, n_l);
            let dice = foreground_dice(softmax(z_l.clone(), 1), target.clone(), valid.clone());
            out.losses
                .push((["seg_dice1", "seg_dice2"][k], scalar(&dice)));
            sup = sup + dice;
            if c.sup_ce_weight > 0.0 {
                let ce = pixel_cross_entropy(z_l, target.clone(), ignore.clone()).mean;
                out.losses.push((["seg_ce1", "seg_ce2"][k], scalar(&ce)));
                sup = sup + ce.mul_scalar(c.sup_ce_weight);
            }
        }
        out.losses.push(("seg_sup", scalar(&sup)));

        // Reliable mutual consistency (spec §5.2), whole batch, both directions.
        let [z1, z2] = o.logits;
        let [f1, f2] = o.features;
        let p12 = reliable_pair(z1.clone(), z2.clone(), f2, c.consistency_ce);
        let p21 = reliable_pair(z2, z1, f1, c.consistency_ce);
        out.losses.push(("cons_12", scalar(&p12.loss)));
        out.losses.push(("cons_21", scalar(&p21.loss)));
        out.stats.push(("selected_12", p12.selected_fraction()));
        out.stats.push(("selected_21", p21.selected_fraction()));
        let cons = p12.loss + p21.loss;
        out.losses.push(("cons", scalar(&cons)));
        let w = c.consistency_weight_at(batch.step, self.total_steps);
        out.stats.push(("cons_weight", w));
        Ok(sup.mul_scalar(c.sup_weight) + cons.mul_scalar(w))
    }
}

impl SslMethod for Mlrpl {
    fn name(&self) -> &'static str {
        "mlrpl"
    }

    fn run_step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses> {
        let step = batch.step;
        let mut out = StepLosses::default();
        let x_l = images_tensor(&batch.labeled.images, &self.device);
        let seg_total = match &self.seg {
            Some(seg) => {
                let mut t = self.seg_loss(seg, batch, x_l.clone(), &mut out)?;
                if ctx.inject_nan {
                    t = t.add_scalar(f64::NAN);
                }
                out.losses.push(("seg_total", scalar(&t)));
                Some(t)
            }
            None => None,
        };
        let cls_loss = self.cls.as_ref().and_then(|n| n.cls.as_ref()).map(|cls| {
            let ce = sup_cls_loss(cls.forward_logits(x_l), &batch.labeled.labels);
            out.losses.push(("cls_ce", scalar(&ce)));
            ce
        });
        // Every term is checked before any network moves.
        if let Some(&(term, value)) = out.losses.iter().find(|(_, v)| !v.is_finite()) {
            return Err(TrainError::NonFinite {
                step,
                term: term.to_string(),
                value,
            });
        }
        if let (Some(total), Some(model), Some(opt)) =
            (seg_total, self.seg.take(), self.seg_opt.as_mut())
        {
            out.stats.append(&mut self.pending_stats);
            let lr = lr_at_iteration(self.seg_optim.lr, step, self.total_steps, self.poly_power);
            let mut grads = total.backward();
            let g = GradientsParams::from_module(&mut grads, &model);
            self.seg = Some(opt.step(lr, model, g));
            out.stats.push(("lr_seg", lr));
        }
        if let Some(nets) = self.cls.as_mut() {
            // The NaN hook goes to the classifier only when there is no segmenter to take it.
            let cls_ctx = if self.seg.is_some() {
                StepContext::default()
            } else {
                ctx.clone()
            };
            nets.apply(step, None, cls_loss, &cls_ctx, &mut out)?;
        }
        Ok(out)
    }

    fn eval_forward(&self, images: &ImageBatch) -> Predictions {
        let seg_probs = self
            .decoder_probs(images)
            .map(|[p1, p2]| match self.cfg.inference {
                MlrplInference::Decoder1 => p1,
                MlrplInference::Average => (p1 + p2).div_scalar(2.0),
            });
        let cls_probs = self
            .cls
            .as_ref()
            .and_then(|n| n.eval_forward(images).cls_probs);
        Predictions {
            seg_probs,
            cls_probs,
        }
    }

    fn compute_saliency(&self, images: &ImageBatch) -> Option<Tensor<3>> {
        self.cls.as_ref()?.saliency(images)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        if let Some(m) = &self.seg {
            save_module(m, &dir.join(SEG_FILE))?;
        }
        if let Some(o) = &self.seg_opt {
            save_optimizer(o, &dir.join(SEG_OPT_FILE))?;
        }
        match &self.cls {
            Some(n) => n.save(dir),
            None => Ok(()),
        }
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        if let Some(m) = self.seg.as_mut() {
            load_module(m, &dir.join(SEG_FILE))?;
        }
        if self.seg_opt.is_some() {
            self.seg_opt = Some(load_optimizer(&self.seg_optim, &dir.join(SEG_OPT_FILE))?);
        }
        match self.cls.as_mut() {
            Some(n) => n.load(dir),
            None => Ok(()),
        }
    }
}
