//! `mean-teacher`: Mean Teacher (Tarvainen & Valpola 2017) for the segmenter and the classifier.
//!
//! One step:
//! 1. the students (the networks `Networks` trains) run once on the labeled batch and the strong
//!    views together (one batch, so BatchNorm sees both, as SSL4MIS does);
//! 2. the teachers run on the weak views in training mode, as in the Mean Teacher code (batch
//!    statistics, dropout; no gradient): their softmax is a constant target, and the forward
//!    updates the teachers' own BatchNorm running statistics;
//! 3. loss per network = supervised loss (segmentation CE + Dice as in `supervised`, image CE) +
//!    w(t) · mean((softmax(student on strong) − softmax(teacher on weak))²), with the sigmoid
//!    ramp-up w(t) = `consistency_weight` · ρ(t, `consistency_rampup` · steps);
//! 4. after the optimizer step each teacher takes the EMA of its student's **parameters**,
//!    `α_t = min(1 − 1/t, ema_alpha)` ([`ema_parameters`]). BatchNorm running statistics are not
//!    averaged: they must describe the teacher's own activations, which differ from the student's
//!    (averaging them as well, with the teacher in evaluation mode, left the teacher useless: val
//!    Dice 0.11 and flat over a 200-step quickstart run in which `supervised` reached 0.44).
//!
//! **Evaluation and prediction use the teachers** (the averaged weights are the method's product);
//! [`MeanTeacher::student_forward`] gives the students' predictions. The saliency map is the
//! teacher classifier's. Checkpoints hold the students, their optimizers and the teachers
//! (`teacher-seg.bpk`, `teacher-cls.bpk`).

use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use semisono_nn::losses::DiceLoss;
use semisono_nn::nets::{ClsModel, SegModel};
use semisono_nn::saliency::vanilla_saliency;

use crate::config::{MeanTeacherConfig, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{ImageBatch, TrainBatch};
use crate::schedule::sigmoid_rampup;

use super::common::{
    hermes_dice, images_tensor, load_module, save_module, scalar, sup_cls_loss, sup_seg_loss,
    Networks,
};
use super::ema::ema_decay;
use super::{Predictions, SslMethod, StepContext, StepLosses};

const TEACHER_SEG_FILE: &str = "teacher-seg.bpk";
const TEACHER_CLS_FILE: &str = "teacher-cls.bpk";

pub struct MeanTeacher {
    /// The students and their optimizers.
    nets: Networks,
    teacher_seg: Option<SegModel>,
    teacher_cls: Option<ClsModel>,
    cfg: MeanTeacherConfig,
    total_steps: u64,
    dice: DiceLoss,
}

/// The weight `weight · ρ(t, fraction · steps)` of a ramped unlabeled term at 1-based `step`
/// (`fraction` = 0: no ramp). Shared with `cps`.
pub fn ramped_weight(weight: f64, fraction: f64, step: u64, steps: u64) -> f64 {
    weight * sigmoid_rampup(step as f64, fraction * steps as f64)
}

/// Mean Teacher's consistency: the mean over every element of
/// `(softmax(student_logits, 1) − teacher_probs)²`. `teacher_probs` is a constant (no gradient
/// flows into it). Works for `[N, K]` image logits and `[N, K, H, W]` pixel logits alike.
pub fn softmax_mse<const D: usize>(
    student_logits: Tensor<D>,
    teacher_probs: Tensor<D>,
) -> Tensor<1> {
    (softmax(student_logits, 1) - teacher_probs.detach())
        .powi_scalar(2)
        .mean()
}

/// Whether the field being visited is a BatchNorm running statistic.
fn is_running_stat(path: &[String]) -> bool {
    matches!(
        path.last().map(String::as_str),
        Some("running_mean" | "running_var")
    )
}

/// `teacher ← alpha·teacher + (1 − alpha)·student` for every parameter, detached; BatchNorm
/// running statistics are left as the teacher has them (the Mean Teacher code averages
/// parameters only). The two modules must have the same architecture.
pub fn ema_parameters<M: Module>(teacher: M, student: &M, alpha: f64) -> M {
    let mut collect = CollectParams::default();
    student.visit(&mut collect);
    let mut mix = MixParams {
        path: Vec::new(),
        student: collect.tensors.into_iter(),
        alpha,
    };
    let out = teacher.map(&mut mix);
    assert!(
        mix.student.next().is_none(),
        "EMA teacher and student differ in architecture"
    );
    out
}

/// The student's parameters, flattened and detached, in visiting order.
#[derive(Default)]
struct CollectParams {
    path: Vec<String>,
    tensors: Vec<Tensor<1>>,
}

impl ModuleVisitor for CollectParams {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !is_running_stat(&self.path) {
            let t = param.val().detach();
            let n = t.shape().num_elements();
            self.tensors.push(t.reshape([n]));
        }
    }
}

struct MixParams {
    path: Vec<String>,
    student: std::vec::IntoIter<Tensor<1>>,
    alpha: f64,
}

impl ModuleMapper for MixParams {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if is_running_stat(&self.path) {
            return param;
        }
        let s = self
            .student
            .next()
            .expect("EMA teacher and student differ in architecture");
        let a = self.alpha;
        param.map(|t| {
            let shape = t.shape();
            (t.detach().mul_scalar(a) + s.reshape(shape).mul_scalar(1.0 - a)).detach()
        })
    }
}

/// Rejects configurations Mean Teacher cannot run.
pub(super) fn need_unlabeled(cfg: &TrainConfig, method: &str) -> Result<()> {
    if cfg.batch_unlabeled == 0 {
        return Err(TrainError::config(
            "batch_unlabeled",
            format!("{method} needs unlabeled batches (batch_unlabeled > 0)"),
        ));
    }
    Ok(())
}

impl MeanTeacher {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        need_unlabeled(cfg, "mean-teacher")?;
        let nets = Networks::new(cfg, device)?;
        // Teachers of the same architecture, then set equal to the students: a fresh module
        // rather than a clone, because a cloned module shares its BatchNorm running state with
        // the original, and the teacher's forwards would then update the student's statistics.
        // Both start with BatchNorm's initial statistics.
        let mut plain = cfg.clone();
        plain.model.seg_pretrained = None;
        plain.model.cls_pretrained = None;
        let fresh = Networks::new(&plain, device)?;
        let teacher_seg = fresh
            .seg
            .zip(nets.seg.as_ref())
            .map(|(t, s)| ema_parameters(t, s, 0.0));
        let teacher_cls = fresh
            .cls
            .zip(nets.cls.as_ref())
            .map(|(t, s)| ema_parameters(t, s, 0.0));
        Ok(MeanTeacher {
            nets,
            teacher_seg,
            teacher_cls,
            cfg: cfg.mean_teacher.clone(),
            total_steps: cfg.steps,
            dice: hermes_dice(cfg.model.seg_classes),
        })
    }

    /// The students' probabilities (evaluation mode), for comparison with the teachers'.
    pub fn student_forward(&self, images: &ImageBatch) -> Predictions {
        self.nets.eval_forward(images)
    }

    /// The consistency weight of 1-based `step`.
    pub fn consistency_weight(&self, step: u64) -> f64 {
        ramped_weight(
            self.cfg.consistency_weight,
            self.cfg.consistency_rampup,
            step,
            self.total_steps,
        )
    }

    /// `teacher ← α·teacher + (1 − α)·student` for the parameters of both networks.
    fn update_teachers(&mut self, alpha: f64) {
        if let (Some(t), Some(s)) = (self.teacher_seg.take(), self.nets.seg.as_ref()) {
            self.teacher_seg = Some(ema_parameters(t, s, alpha));
        }
        if let (Some(t), Some(s)) = (self.teacher_cls.take(), self.nets.cls.as_ref()) {
            self.teacher_cls = Some(ema_parameters(t, s, alpha));
        }
    }
}

impl SslMethod for MeanTeacher {
    fn name(&self) -> &'static str {
        "mean-teacher"
    }

    fn run_step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses> {
        let unl = batch.unlabeled.as_ref().ok_or_else(|| {
            TrainError::config("batch_unlabeled", "mean-teacher needs unlabeled batches")
        })?;
        let d = &self.nets.device;
        let n_l = batch.labeled.images.n;
        let n_u = unl.strong.n;
        let x = Tensor::cat(
            vec![
                images_tensor(&batch.labeled.images, d),
                images_tensor(&unl.strong, d),
            ],
            0,
        );
        // On the autodiff device for training-mode BatchNorm; nothing here requires a gradient
        // (the teachers' parameters are detached), so no graph is recorded.
        let x_w = images_tensor(&unl.weak, d);
        let w = self.consistency_weight(batch.step);
        let mut out = StepLosses::default();
        out.stats.push(("consistency_weight", w));

        let seg_total = match (self.nets.seg.as_ref(), self.teacher_seg.as_ref()) {
            (Some(seg), Some(teacher)) => {
                let logits = seg.forward_logits(x.clone());
                let (sup, ce, dl) =
                    sup_seg_loss(logits.clone().narrow(0, 0, n_l), &batch.labeled, &self.dice);
                let target = softmax(teacher.forward_logits(x_w.clone()).detach(), 1);
                let cons = softmax_mse(logits.narrow(0, n_l, n_u), target);
                out.losses.push(("seg_sup", scalar(&sup)));
                out.losses.push(("seg_ce", scalar(&ce)));
                out.losses.push(("seg_dice", scalar(&dl)));
                out.losses.push(("seg_consistency", scalar(&cons)));
                Some(sup + cons.mul_scalar(w))
            }
            _ => None,
        };
        let cls_total = match (self.nets.cls.as_ref(), self.teacher_cls.as_ref()) {
            (Some(cls), Some(teacher)) => {
                let logits = cls.forward_logits(x);
                let sup = sup_cls_loss(logits.clone().narrow(0, 0, n_l), &batch.labeled.labels);
                let target = softmax(teacher.forward_logits(x_w).detach(), 1);
                let cons = softmax_mse(logits.narrow(0, n_l, n_u), target);
                out.losses.push(("cls_sup", scalar(&sup)));
                out.losses.push(("cls_consistency", scalar(&cons)));
                Some(sup + cons.mul_scalar(w))
            }
            _ => None,
        };
        self.nets
            .apply(batch.step, seg_total, cls_total, ctx, &mut out)?;
        let alpha = ema_decay(self.cfg.ema_alpha, batch.step);
        self.update_teachers(alpha);
        out.stats.push(("ema_decay", alpha));
        Ok(out)
    }

    /// The teachers' probabilities.
    fn eval_forward(&self, images: &ImageBatch) -> Predictions {
        let x = images_tensor(images, &self.nets.device.clone().without_autodiff());
        Predictions {
            seg_probs: self
                .teacher_seg
                .as_ref()
                .map(|m| softmax(m.valid().forward_logits(x.clone()), 1)),
            cls_probs: self
                .teacher_cls
                .as_ref()
                .map(|m| softmax(m.valid().forward_logits(x.clone()), 1)),
        }
    }

    /// The teacher classifier's vanilla saliency.
    fn compute_saliency(&self, images: &ImageBatch) -> Option<Tensor<3>> {
        let cls = self.teacher_cls.as_ref()?.valid();
        let x = images_tensor(images, &self.nets.device.clone().without_autodiff());
        Some(vanilla_saliency(x, |x| cls.forward_logits(x)).map)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.nets.save(dir)?;
        if let Some(t) = &self.teacher_seg {
            save_module(t, &dir.join(TEACHER_SEG_FILE))?;
        }
        if let Some(t) = &self.teacher_cls {
            save_module(t, &dir.join(TEACHER_CLS_FILE))?;
        }
        Ok(())
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.nets.load(dir)?;
        if let Some(t) = self.teacher_seg.as_mut() {
            load_module(t, &dir.join(TEACHER_SEG_FILE))?;
        }
        if let Some(t) = self.teacher_cls.as_mut() {
            load_module(t, &dir.join(TEACHER_CLS_FILE))?;
        }
        Ok(())
    }
}
