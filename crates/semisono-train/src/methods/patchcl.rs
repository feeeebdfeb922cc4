//! `patchcl`: pseudo-label guided patch contrastive learning (Basak & Yin, CVPR 2023), the clean 2-D
//! re-implementation of specs/patchcl.md §11.
//!
//! Networks: the student is a [`SegModel`] plus a patch embedding head on its deepest encoder
//! feature ([`PatchNet`]); the teacher is its EMA (parameters and BN statistics) and only runs in
//! evaluation mode. One step:
//! 1. supervised pixel CE of the student on the labeled batch;
//! 2. phase 2 only (after `warmup_steps`): the teacher's softmax on the weak unlabeled view gives
//!    pseudo-labels (argmax) and is the target of the consistency term on the strong view;
//! 3. class-wise masked patches ([`patches`], [`geometry`]) from the labeled images (ground truth)
//!    and, in phase 2, the unlabeled ones (pseudo-labels), filtered in phase 2 by the stochastic
//!    approximation threshold ([`filter`]);
//! 4. the teacher embeds a class-balanced, partly augmented copy of them and its embeddings join
//!    the per-class queues; the student embeds its patches (with gradient);
//! 5. PCGJCL against the queues' Gaussians, with hard-negative Gaussians ([`pcgjcl`]), computed in
//!    `f64` on the host and fed back to the graph as value + gradient;
//! 6. `CE + contrast_weight·PCGJCL (+ w_c·consistency)` → optimizer step (phase 1: `optim.seg`,
//!    constant rate; phase 2: SGD with poly decay to `phase2_lr_end`) → EMA update.
//!
//! With a classification task the classifier is trained supervised-only on the labeled batch,
//! exactly as in `supervised` (its own optimizer and schedule, `optim.cls`): PatchCL has no image
//! level part.
//!
//! Randomness (patch subsets, augmentations, hard negatives) comes from a generator seeded by
//! (seed, step); queues, filter thresholds and both optimizers are checkpointed, so a resumed run
//! is bit-identical to an uninterrupted one on the CPU.

pub mod filter;
pub mod geometry;
mod net;
pub mod patches;
pub mod pcgjcl;
mod state;

use std::path::Path;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use semisono_data::rng::Rng;
use semisono_nn::losses::pixel_cross_entropy;
use semisono_nn::nets::{BackboneConfig, SegModel, SegModelConfig};
use semisono_nn::pretrained::load_encoder_weights;

use crate::config::{OptimizerConfig, PatchClConfig, Task, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{ImageBatch, TrainBatch, UnlabeledBatch};
use crate::schedule::sigmoid_rampup;

use super::common::{
    build_optimizer as optimizer, load_module, load_optimizer, save_module, save_optimizer,
};
use super::common::{
    check_common, float_tensor, images_tensor, mask_targets, scalar, step_seed, sup_cls_loss,
    to_f32_vec, Networks,
};
use super::ema::{ema_decay, ema_update};
use super::{Predictions, SslMethod, StepContext, StepLosses};
use filter::{poly_lr_with_end, SaFilter};
use net::EncoderBnStats;
pub use net::{consistency_loss, PatchHead, PatchNet};
use patches::{teacher_batch, Cutter, Patch, Source};
use pcgjcl::{hard_negative, pcgjcl, ClassTerm, Gaussian, MiningParams, PcgjclParams, Spectral};
use state::{MethodState, Queues};

const STUDENT_FILE: &str = "patchcl-student.bpk";
const TEACHER_FILE: &str = "patchcl-teacher.bpk";
/// Optimizer state of phase 1 and phase 2 ("optim" in the name: tensors keyed by parameter id).
const OPTIM_FILES: [&str; 2] = ["patchcl-optim-phase1.bpk", "patchcl-optim-phase2.bpk"];
/// Stream of the method's host-side random choices, apart from the loader's.
const RNG_STREAM: u64 = 0x5041_5443_484C_0001;

pub struct PatchCl {
    cfg: PatchClConfig,
    seed: u64,
    total_steps: u64,
    classes: usize,
    device: Device,
    /// Optimizers of phase 1 (`optim.seg`) and phase 2 (SGD).
    optim_cfgs: [OptimizerConfig; 2],
    /// `None` when the task trains no segmenter.
    student: Option<PatchNet>,
    teacher: Option<PatchNet>,
    /// Built at the first step of their phase (or restored), so the files say which ran.
    optims: [Option<ModuleOptimizer>; 2],
    /// The classifier alone (supervised), when the task has one.
    cls: Option<Networks>,
    state: MethodState,
    /// Pretrained-weight statistics for the first step's log.
    pending_stats: Vec<(&'static str, f64)>,
}

/// What the segmenter's part of a step produced, applied once every loss is known to be finite.
struct SegPlan {
    total: Tensor<1>,
    state: MethodState,
    phase: usize,
    lr: f64,
}

impl PatchCl {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        if cfg.batch_unlabeled == 0 {
            return Err(TrainError::config(
                "batch_unlabeled",
                "patchcl needs unlabeled batches (batch_unlabeled > 0)",
            ));
        }
        check_common(cfg)?;
        let (m, c) = (&cfg.model, &cfg.patchcl);
        let mut pending_stats = Vec::new();
        let student = if matches!(cfg.task, Task::Segmentation | Task::Both) {
            let backbone = BackboneConfig::new()
                .with_name(m.seg_backbone.clone())
                .with_width_multiplier(m.width_multiplier)
                .with_in_channels(m.in_channels)
                .with_imagenet_norm(m.imagenet_norm);
            let mut seg: SegModel = SegModelConfig::new()
                .with_backbone(backbone)
                .with_num_classes(m.seg_classes)
                .with_dropout(m.dropout)
                .init(device)
                .map_err(|e| TrainError::Model(e.to_string()))?;
            if let Some(path) = &m.seg_pretrained {
                let r = load_encoder_weights(&mut seg.encoder, path)
                    .map_err(|e| TrainError::config("model.seg_pretrained", e.to_string()))?;
                pending_stats.push(("seg_pretrained_tensors", r.applied as f64));
                pending_stats.push(("seg_pretrained_skipped", r.skipped.len() as f64));
            }
            Some(PatchNet::new(seg, c.embedding_dim, device))
        } else {
            None
        };
        let cls = matches!(cfg.task, Task::Classification | Task::Both)
            .then(|| {
                let mut only_cls = cfg.clone();
                only_cls.task = Task::Classification;
                only_cls.model.seg_pretrained = None;
                Networks::new(&only_cls, device)
            })
            .transpose()?;
        let classes = m.seg_classes;
        Ok(PatchCl {
            state: MethodState {
                queues: Queues::new(classes, c.queue_length, c.embedding_dim),
                filter: SaFilter::new(classes, c.filter_theta0, c.filter_target, c.filter_eta),
                phase_steps: [0, 0],
            },
            optim_cfgs: [
                cfg.optim.seg.clone(),
                OptimizerConfig::sgd(c.phase2_lr, c.phase2_momentum, 0.0),
            ],
            teacher: student.clone(),
            student,
            optims: [None, None],
            cls,
            cfg: c.clone(),
            seed: cfg.seed,
            total_steps: cfg.steps,
            classes,
            device: device.clone(),
            pending_stats,
        })
    }

    /// The phase (0 or 1) and segmenter learning rate of `step`: phase 1 at the constant
    /// `optim.seg.lr` (the code's Adam); phase 2 from `phase2_lr` (first phase-2 step) down the
    /// poly curve over the remaining steps.
    fn phase_lr(&self, step: u64) -> (usize, f64) {
        let c = &self.cfg;
        if step <= c.warmup_steps {
            return (0, self.optim_cfgs[0].lr);
        }
        let k = step - c.warmup_steps - 1;
        let t = self.total_steps.saturating_sub(c.warmup_steps);
        let lr = poly_lr_with_end(c.phase2_lr, c.phase2_lr_end, k, t, c.phase2_poly_power);
        (1, lr)
    }

    /// The segmenter's losses of one step (nothing is updated here).
    fn seg_losses(
        &self,
        batch: &TrainBatch,
        unl: &UnlabeledBatch,
        out: &mut StepLosses,
    ) -> Result<SegPlan> {
        let c = &self.cfg;
        let d = &self.device;
        let step = batch.step;
        let (phase, lr) = self.phase_lr(step);
        let student = self.student.as_ref().expect("segmenter");
        let teacher = self.teacher.as_ref().expect("teacher").valid();
        let inner = d.clone().without_autodiff();
        let mut rng = Rng::derive(step_seed(self.seed, step), RNG_STREAM);
        let mut state = self.state.clone();
        out.stats.push(("phase", (phase + 1) as f64));

        let lb = &batch.labeled;
        let (target, ignore) = mask_targets(lb, d);
        let logits_l = student.seg.forward_logits(images_tensor(&lb.images, d));
        let ce = pixel_cross_entropy(logits_l, target, ignore).mean;
        out.losses.push(("seg_ce", scalar(&ce)));
        let mut total = ce;

        let [n_l, ch, h, w] = lb.images.shape();
        let hw = h * w;
        // Pseudo-labels and their normalised entropies (phase 2), owned here for `sources`.
        let mut pseudo: Option<(Vec<u8>, Vec<f32>)> = None;
        if phase == 1 {
            let probs = softmax(
                teacher.seg.forward_logits(images_tensor(&unl.weak, &inner)),
                1,
            );
            let [b, k, ..] = probs.dims();
            let p = to_f32_vec(probs);
            let student_logits = student.seg.forward_logits(images_tensor(&unl.strong, d));
            let target = float_tensor(p.clone(), [b, k, h, w], d);
            let cons = consistency_loss(student_logits, target, c.ce_consistency());
            let weight = c.consistency_weight
                * match c.consistency_rampup {
                    0 => 1.0,
                    len => sigmoid_rampup((step - c.warmup_steps - 1) as f64, len as f64),
                };
            out.losses.push(("consistency", scalar(&cons)));
            out.stats.push(("consistency_weight", weight));
            total = total + cons.mul_scalar(weight);
            pseudo = Some(pseudo_labels(&p, b, k, hw));
        }
        let mut sources = Vec::new();
        if let Some((labels, entropy)) = &pseudo {
            let n_u = unl.weak.n;
            for i in 0..n_u {
                sources.push(Source {
                    pixels: &unl.weak.data[i * ch * hw..(i + 1) * ch * hw],
                    labels: &labels[i * hw..(i + 1) * hw],
                    entropy: Some(&entropy[i * hw..(i + 1) * hw]),
                });
            }
        }
        for i in (0..n_l).filter(|&i| lb.has_mask[i]) {
            sources.push(Source {
                pixels: &lb.images.data[i * ch * hw..(i + 1) * ch * hw],
                labels: &lb.masks[i * hw..(i + 1) * hw],
                entropy: None,
            });
        }
        let cutter = Cutter {
            h,
            w,
            p: c.patch_size,
            channels: ch,
            classes: self.classes,
            nms: c.nms_overlap,
        };
        let mut per_class = cutter.cut(&sources);
        out.stats.push(("patches", count(&per_class) as f64));
        if phase == 1 {
            // The filter runs in phase 2 only (the code bypasses it while warming up).
            for (class, patches) in per_class.iter_mut().enumerate() {
                let scores: Vec<f64> = patches
                    .iter()
                    .map(|p| {
                        if c.entropy_filter() {
                            p.entropy
                        } else {
                            p.coverage
                        }
                    })
                    .collect();
                let keep = state.filter.apply(class, &scores);
                let mut k = keep.into_iter();
                patches.retain(|_| k.next().unwrap_or(false));
            }
            out.stats.push(("patches_kept", count(&per_class) as f64));
        }
        let teacher_set = teacher_batch(&per_class, c.teacher_patches, c.patch_size, ch, &mut rng);
        if c.max_student_patches > 0 {
            for patches in per_class.iter_mut() {
                if patches.len() > c.max_student_patches {
                    let mut idx: Vec<usize> = (0..patches.len()).collect();
                    rng.shuffle(&mut idx);
                    idx.truncate(c.max_student_patches);
                    idx.sort_unstable();
                    *patches = idx.iter().map(|&i| patches[i].clone()).collect();
                }
            }
        }
        // BN1d in the head needs two rows in training; fewer patches means no contrast this step.
        if count(&per_class) >= 2 {
            let con = self.contrast(
                student,
                &teacher,
                &per_class,
                &teacher_set,
                [ch, c.patch_size],
                phase,
                &mut state,
                &mut rng,
                out,
            );
            total = total + con.mul_scalar(c.contrast_weight);
        }
        Ok(SegPlan {
            total,
            state,
            phase,
            lr,
        })
    }

    /// Enqueues the teacher's embeddings of `teacher_set`, embeds `students` with the student and
    /// returns PCGJCL as a graph tensor (value and gradient of the host computation).
    #[allow(clippy::too_many_arguments)]
    fn contrast(
        &self,
        student: &PatchNet,
        teacher: &PatchNet,
        students: &[Vec<Patch>],
        teacher_set: &[Vec<Patch>],
        [ch, p]: [usize; 2],
        phase: usize,
        state: &mut MethodState,
        rng: &mut Rng,
        out: &mut StepLosses,
    ) -> Tensor<1> {
        let c = &self.cfg;
        let d = &self.device;
        let dim = c.embedding_dim;
        let stack = |set: &[Vec<Patch>], device: &Device| {
            let n = count(set);
            let data: Vec<f32> = set.iter().flatten().flat_map(|x| x.data.clone()).collect();
            float_tensor(data, [n, ch, p, p], device)
        };
        // Teacher first: the code enqueues before the loss, so this step's embeddings count.
        let t_emb = to_f32_vec(teacher.embed(stack(teacher_set, &d.clone().without_autodiff())));
        let mut rows = t_emb.chunks(dim).map(<[f32]>::to_vec);
        for (class, set) in teacher_set.iter().enumerate() {
            state.queues.push(class, rows.by_ref().take(set.len()));
        }
        let emb = if c.patch_bn_stats {
            student.embed(stack(students, d))
        } else {
            let saved = EncoderBnStats::take(&student.seg.encoder);
            let emb = student.embed(stack(students, d));
            saved.restore(&student.seg.encoder);
            emb
        };
        let host = to_f32_vec(emb.clone().detach());
        let mut rows = host
            .chunks(dim)
            .map(|r| r.iter().map(|&v| f64::from(v)).collect());
        let present: Vec<usize> = (0..students.len())
            .filter(|&i| !students[i].is_empty())
            .collect();
        let samples: Vec<Vec<Vec<f64>>> = present
            .iter()
            .map(|&i| rows.by_ref().take(students[i].len()).collect())
            .collect();
        let queues: Vec<Vec<Vec<f64>>> = present.iter().map(|&i| state.queues.entries(i)).collect();
        let gauss: Vec<Gaussian> = queues.iter().map(|q| Gaussian::of(q)).collect();
        let negatives = self.negatives(&samples, &queues, &gauss, rng, out);
        let terms: Vec<ClassTerm<'_>> = (0..present.len())
            .map(|a| ClassTerm {
                samples: &samples[a],
                positive: &gauss[a],
                negatives: negatives[a].iter().collect(),
            })
            .collect();
        let (tau, lambda) = if phase == 0 {
            (c.phase1_temperature, c.phase1_lambda)
        } else {
            (c.phase2_temperature, c.phase2_lambda)
        };
        let r = pcgjcl(
            &terms,
            PcgjclParams {
                tau,
                lambda,
                psi: c.psi,
            },
        );
        out.losses.push(("contrast", r.loss));
        out.stats.push(("contrast_classes", present.len() as f64));
        let grad: Vec<f64> = r.grads.into_iter().flatten().flatten().collect();
        let t_dot_g: f64 = host.iter().zip(&grad).map(|(&t, g)| f64::from(t) * g).sum();
        let n = grad.len() / dim;
        let g = float_tensor(grad.iter().map(|&v| v as f32).collect(), [n, dim], d);
        // Value L, gradient G with respect to the embeddings.
        (emb * g).sum().add_scalar(r.loss - t_dot_g)
    }

    /// For every class a (in `samples` order), one negative Gaussian per other class b: the hard
    /// negative of b against a, or b's own Gaussian without mining or when the search fails.
    fn negatives(
        &self,
        samples: &[Vec<Vec<f64>>],
        queues: &[Vec<Vec<f64>>],
        gauss: &[Gaussian],
        rng: &mut Rng,
        out: &mut StepLosses,
    ) -> Vec<Vec<Gaussian>> {
        let c = &self.cfg;
        let k = gauss.len();
        let spectra: Vec<Spectral> = if c.hard_negatives {
            gauss
                .iter()
                .map(|g| Spectral::of(&g.cov, g.dim()))
                .collect()
        } else {
            Vec::new()
        };
        let mining = MiningParams {
            beta: c.hard_negative_beta,
            oversample: 3,
            chunk: 1000,
            max_chunks: c.hard_negative_rounds,
        };
        let mut fallbacks = 0usize;
        let mut uniform = || rng.uniform();
        let negs = (0..k)
            .map(|a| {
                (0..k)
                    .filter(|&b| b != a)
                    .map(|b| {
                        if !c.hard_negatives {
                            return gauss[b].clone();
                        }
                        hard_negative(
                            &samples[a],
                            &gauss[a],
                            &spectra[a],
                            &queues[b],
                            &gauss[b],
                            &spectra[b],
                            mining,
                            &mut uniform,
                        )
                        .unwrap_or_else(|| {
                            fallbacks += 1;
                            gauss[b].clone()
                        })
                    })
                    .collect()
            })
            .collect();
        if c.hard_negatives {
            out.stats
                .push(("hard_negative_fallbacks", fallbacks as f64));
        }
        negs
    }

    /// The optimizer of `phase`, built at its first step.
    fn optim(&mut self, phase: usize) -> &mut ModuleOptimizer {
        let cfg = &self.optim_cfgs[phase];
        self.optims[phase].get_or_insert_with(|| optimizer(cfg))
    }
}

fn count(per_class: &[Vec<Patch>]) -> usize {
    per_class.iter().map(Vec::len).sum()
}

/// Argmax labels (ties to the lowest class) and entropies normalised by ln K of `b` images of
/// `k`-class probabilities, channels first (`[b, k, hw]`).
fn pseudo_labels(p: &[f32], b: usize, k: usize, hw: usize) -> (Vec<u8>, Vec<f32>) {
    let ln_k = (k as f64).ln();
    let mut labels = Vec::with_capacity(b * hw);
    let mut entropy = Vec::with_capacity(b * hw);
    for i in 0..b {
        for px in 0..hw {
            let at = |c: usize| p[(i * k + c) * hw + px];
            let best = (0..k).fold(0, |m, c| if at(c) > at(m) { c } else { m });
            let h: f64 = (0..k)
                .map(|c| f64::from(at(c)))
                .filter(|&q| q > 0.0)
                .map(|q| -q * q.ln())
                .sum();
            labels.push(best as u8);
            entropy.push((h / ln_k) as f32);
        }
    }
    (labels, entropy)
}

impl SslMethod for PatchCl {
    fn name(&self) -> &'static str {
        "patchcl"
    }

    fn run_step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses> {
        let step = batch.step;
        let unl = batch.unlabeled.as_ref().ok_or_else(|| {
            TrainError::config("batch_unlabeled", "patchcl needs unlabeled batches")
        })?;
        let mut out = StepLosses::default();
        let cls_total = self.cls.as_ref().and_then(|n| n.cls.as_ref()).map(|cls| {
            let x = images_tensor(&batch.labeled.images, &self.device);
            let ce = sup_cls_loss(cls.forward_logits(x), &batch.labeled.labels);
            out.losses.push(("cls_ce", scalar(&ce)));
            ce
        });
        let mut plan = match self.student {
            Some(_) => Some(self.seg_losses(batch, unl, &mut out)?),
            None => None,
        };
        let mut cls_ctx = ctx.clone();
        if let Some(plan) = plan.as_mut() {
            if ctx.inject_nan {
                plan.total = plan.total.clone().add_scalar(f64::NAN);
                cls_ctx.inject_nan = false;
            }
            out.losses.push(("seg_total", scalar(&plan.total)));
        }
        // Every term is checked before anything is updated (the classifier's apply checks again).
        if let Some(&(term, value)) = out.losses.iter().find(|(_, v)| !v.is_finite()) {
            return Err(TrainError::NonFinite {
                step,
                term: term.to_string(),
                value,
            });
        }
        if let Some(nets) = self.cls.as_mut() {
            nets.apply(step, None, cls_total, &cls_ctx, &mut out)?;
        }
        if let Some(plan) = plan {
            let student = self.student.take().expect("segmenter");
            let mut grads = plan.total.backward();
            let g = GradientsParams::from_module(&mut grads, &student);
            let student = self.optim(plan.phase).step(plan.lr, student, g);
            let teacher = self.teacher.take().expect("teacher");
            let alpha = ema_decay(self.cfg.ema_alpha, step);
            self.teacher = Some(ema_update(teacher, &student, alpha));
            self.student = Some(student);
            self.state = plan.state;
            self.state.phase_steps[plan.phase] += 1;
            out.stats.push(("lr_seg", plan.lr));
            out.stats.push(("ema_decay", alpha));
        }
        out.stats.append(&mut self.pending_stats);
        Ok(out)
    }

    fn eval_forward(&self, images: &ImageBatch) -> Predictions {
        let inner = self.device.clone().without_autodiff();
        let seg_probs = self.student.as_ref().map(|s| {
            let seg = s.seg.valid();
            softmax(seg.forward_logits(images_tensor(images, &inner)), 1)
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
        self.cls.as_ref().and_then(|n| n.saliency(images))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        if let Some(n) = &self.cls {
            n.save(dir)?;
        }
        if let (Some(s), Some(t)) = (&self.student, &self.teacher) {
            save_module(s, &dir.join(STUDENT_FILE))?;
            save_module(t, &dir.join(TEACHER_FILE))?;
            for (o, file) in self.optims.iter().zip(OPTIM_FILES) {
                if let Some(o) = o {
                    save_optimizer(o, &dir.join(file))?;
                }
            }
            self.state.save(dir)?;
        }
        Ok(())
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        if let Some(n) = self.cls.as_mut() {
            n.load(dir)?;
        }
        if let (Some(s), Some(t)) = (self.student.as_mut(), self.teacher.as_mut()) {
            load_module(s, &dir.join(STUDENT_FILE))?;
            load_module(t, &dir.join(TEACHER_FILE))?;
            self.state.load(dir)?;
            for (phase, file) in OPTIM_FILES.iter().enumerate() {
                self.optims[phase] = if self.state.phase_steps[phase] > 0 {
                    Some(load_optimizer(&self.optim_cfgs[phase], &dir.join(file))?)
                } else {
                    None
                };
            }
        }
        Ok(())
    }
}
