//! What every method shares: the two networks with their optimizers and poly learning rate,
//! host ↔ tensor conversions, the supervised losses, evaluation forwards and checkpoint files.

use std::path::Path;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use semisono_nn::kernels::adam::FusedAdam;
use semisono_nn::losses::{class_cross_entropy, pixel_cross_entropy, DiceLoss, DiceLossConfig};
use semisono_nn::nets::{
    Backbone, BackboneConfig, ClsModel, ClsModelConfig, SegModel, SegModelConfig,
};
use semisono_nn::ops::float_tensor_to_vec;
use semisono_nn::pretrained::{load_encoder_weights, LoadReport};
use semisono_nn::saliency::vanilla_saliency;

use crate::config::{OptimKind, OptimizerConfig, Task, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{ImageBatch, LabeledBatch};
use crate::schedule::lr_at_iteration;

use super::{Predictions, StepContext, StepLosses};

/// `f32` NCHW images as a tensor on `device`.
pub fn images_tensor(b: &ImageBatch, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(b.data.clone(), b.shape()), device)
}

/// A seed for the random choices of step `step` (pixel-contrast sampling, dropout), a pure function
/// of (seed, step) so that a resumed run draws exactly what an uninterrupted one would.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED_5EED_0000_0001;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn int_tensor<const D: usize>(
    v: Vec<i64>,
    shape: [usize; D],
    d: &Device,
) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(v, shape), d)
}

pub(crate) fn bool_tensor<const D: usize>(
    v: Vec<bool>,
    shape: [usize; D],
    d: &Device,
) -> Tensor<D, Bool> {
    Tensor::from_data(TensorData::new(v, shape), d)
}

pub(crate) fn float_tensor<const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
    d: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), d)
}

/// Host copy of an `f32` tensor.
pub(crate) fn to_f32_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor data")
}

/// The scalar of a `[1]` loss tensor.
pub(crate) fn scalar(t: &Tensor<1>) -> f64 {
    float_tensor_to_vec(t.clone())[0]
}

/// Masks of a labeled batch as class ids `[N, H, W]`, and the pixels to ignore (images without a
/// mask) when some image has none.
pub(crate) fn mask_targets(
    b: &LabeledBatch,
    d: &Device,
) -> (Tensor<3, Int>, Option<Tensor<3, Bool>>) {
    let [n, _, h, w] = b.images.shape();
    let target = int_tensor(
        b.masks.iter().map(|&m| i64::from(m)).collect(),
        [n, h, w],
        d,
    );
    let ignore = (!b.has_mask.iter().all(|&m| m)).then(|| {
        let v = b
            .has_mask
            .iter()
            .flat_map(|&m| std::iter::repeat_n(!m, h * w))
            .collect();
        bool_tensor(v, [n, h, w], d)
    });
    (target, ignore)
}

/// Hermes' supervised segmentation loss `(0.5·CE + Dice)/2` (spec §5.2), with images that have no
/// mask left out of both terms. Returns (total, CE mean, Dice loss).
pub(crate) fn sup_seg_loss(
    logits: Tensor<4>,
    b: &LabeledBatch,
    dice: &DiceLoss,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let d = logits.device();
    let (target, ignore) = mask_targets(b, &d);
    let ce = pixel_cross_entropy(logits.clone(), target.clone(), ignore.clone()).mean;
    let dl = dice.forward(logits, target, ignore).loss;
    let total = (ce.clone().mul_scalar(0.5) + dl.clone()).div_scalar(2.0);
    (total, ce, dl)
}

/// Mean image cross-entropy over the images that have a class label (label −1 is ignored).
pub(crate) fn sup_cls_loss(logits: Tensor<2>, labels: &[i64]) -> Tensor<1> {
    let d = logits.device();
    let n = labels.len();
    let target = int_tensor(labels.iter().map(|&l| l.max(0)).collect(), [n], &d);
    let ignore = labels
        .iter()
        .any(|&l| l < 0)
        .then(|| bool_tensor(labels.iter().map(|&l| l < 0).collect(), [n], &d));
    class_cross_entropy(logits, target, ignore).mean
}

/// The Hermes Dice loss: tumour class only (weights [0, 1, ..., 1]).
pub(crate) fn hermes_dice(classes: usize) -> DiceLoss {
    let mut w = vec![1.0; classes];
    w[0] = 0.0;
    DiceLossConfig::new().with_class_weights(w).init()
}

/// The optimizer `o` describes, with PyTorch semantics (SGD without dampening).
pub(crate) fn build_optimizer(o: &OptimizerConfig) -> ModuleOptimizer {
    let decay = (o.weight_decay > 0.0).then(|| WeightDecayConfig::new(o.weight_decay as f32));
    match o.kind {
        // Burn's Adam, bit for bit, as one multi-threaded pass per parameter.
        OptimKind::Adam => ModuleOptimizer::from(FusedAdam::new(
            o.betas[0] as f32,
            o.betas[1] as f32,
            o.eps as f32,
            (o.weight_decay > 0.0).then_some(o.weight_decay as f32),
        )),
        // PyTorch SGD: dampening 0 (Burn's MomentumConfig defaults to 0.1).
        OptimKind::Sgd => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum((o.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(o.momentum)
                    .with_dampening(0.0)
                    .with_nesterov(o.nesterov)
            }))
            .init(),
    }
}

/// Rejects switches that would have no effect, instead of silently ignoring them: pretrained
/// weights for a network the task does not build.
pub(crate) fn check_common(cfg: &TrainConfig) -> Result<()> {
    let (seg, cls) = wanted_networks(cfg.task);
    for (key, path, built, network) in [
        (
            "model.seg_pretrained",
            &cfg.model.seg_pretrained,
            seg,
            "segmenter",
        ),
        (
            "model.cls_pretrained",
            &cfg.model.cls_pretrained,
            cls,
            "classifier",
        ),
    ] {
        if path.is_some() && !built {
            return Err(TrainError::config(
                key,
                format!(
                    "task = {:?} builds no {network}, so these weights would be ignored; leave it \
                     empty",
                    cfg.task
                ),
            ));
        }
    }
    Ok(())
}

/// Which networks a task trains: (segmenter, classifier).
fn wanted_networks(task: Task) -> (bool, bool) {
    (
        matches!(task, Task::Segmentation | Task::Both),
        matches!(task, Task::Classification | Task::Both),
    )
}

/// Loads the published weights at `path` into `backbone`; a failure is a configuration error of
/// `key` (the message names the file and what does not fit).
fn load_pretrained(backbone: &mut Backbone, key: &str, path: &Path) -> Result<LoadReport> {
    load_encoder_weights(backbone, path).map_err(|e| TrainError::config(key, e.to_string()))
}

/// What [`Networks::new`] loaded, as step statistics (`<net>_pretrained_tensors`,
/// `<net>_pretrained_skipped`): logged with the first training step, next to the paths in the
/// run's `config.toml`.
fn pretrained_stats(
    seg: Option<&LoadReport>,
    cls: Option<&LoadReport>,
) -> Vec<(&'static str, f64)> {
    let mut stats = Vec::new();
    if let Some(r) = seg {
        stats.push(("seg_pretrained_tensors", r.applied as f64));
        stats.push(("seg_pretrained_skipped", r.skipped.len() as f64));
    }
    if let Some(r) = cls {
        stats.push(("cls_pretrained_tensors", r.applied as f64));
        stats.push(("cls_pretrained_skipped", r.skipped.len() as f64));
    }
    stats
}

/// The segmenter and/or the classifier (by `task`), their optimizers and learning rates.
pub(crate) struct Networks {
    pub device: Device,
    pub seg: Option<SegModel>,
    pub cls: Option<ClsModel>,
    seg_opt: Option<ModuleOptimizer>,
    cls_opt: Option<ModuleOptimizer>,
    cfg: TrainConfig,
    /// Pretrained weights loaded at construction, as statistics for the first step's log.
    pending_stats: Vec<(&'static str, f64)>,
}

const SEG_FILE: &str = "seg.bpk";
const CLS_FILE: &str = "cls.bpk";
const SEG_OPT_FILE: &str = "seg-optim.bpk";
const CLS_OPT_FILE: &str = "cls-optim.bpk";

impl Networks {
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        check_common(cfg)?;
        let m = &cfg.model;
        let backbone = |name: &str| {
            BackboneConfig::new()
                .with_name(name.to_string())
                .with_width_multiplier(m.width_multiplier)
                .with_in_channels(m.in_channels)
                .with_imagenet_norm(m.imagenet_norm)
        };
        let (want_seg, want_cls) = wanted_networks(cfg.task);
        let mut seg = want_seg
            .then(|| {
                SegModelConfig::new()
                    .with_backbone(backbone(&m.seg_backbone))
                    .with_num_classes(m.seg_classes)
                    .with_dropout(m.dropout)
                    .init(device)
            })
            .transpose()
            .map_err(|e| TrainError::Model(e.to_string()))?;
        let mut cls = want_cls
            .then(|| {
                ClsModelConfig::new()
                    .with_backbone(backbone(&m.cls_backbone))
                    .with_num_classes(m.num_classes)
                    .init(device)
            })
            .transpose()
            .map_err(|e| TrainError::Model(e.to_string()))?;
        let seg_report = match (seg.as_mut(), &m.seg_pretrained) {
            (Some(model), Some(path)) => Some(load_pretrained(
                &mut model.encoder,
                "model.seg_pretrained",
                path,
            )?),
            _ => None,
        };
        let cls_report = match (cls.as_mut(), &m.cls_pretrained) {
            (Some(model), Some(path)) => Some(load_pretrained(
                &mut model.backbone,
                "model.cls_pretrained",
                path,
            )?),
            _ => None,
        };
        Ok(Networks {
            device: device.clone(),
            seg_opt: seg.as_ref().map(|_| build_optimizer(&cfg.optim.seg)),
            cls_opt: cls.as_ref().map(|_| build_optimizer(&cfg.optim.cls)),
            seg,
            cls,
            cfg: cfg.clone(),
            pending_stats: pretrained_stats(seg_report.as_ref(), cls_report.as_ref()),
        })
    }

    /// Learning rates of iteration `step` (poly schedule, spec §4.3): (segmenter, classifier).
    pub fn lrs(&self, step: u64) -> (f64, f64) {
        let o = &self.cfg.optim;
        let lr = |base| lr_at_iteration(base, step, self.cfg.steps, o.poly_power);
        (lr(o.seg.lr), lr(o.cls.lr))
    }

    /// Checks every loss term, then backpropagates `seg_total + cls_total` once and steps each
    /// network with the gradients of its own parameters only. Cross-network terms must already be
    /// detached (spec §13), so this equals one backward per network.
    pub fn apply(
        &mut self,
        step: u64,
        seg_total: Option<Tensor<1>>,
        cls_total: Option<Tensor<1>>,
        ctx: &StepContext,
        out: &mut StepLosses,
    ) -> Result<()> {
        let mut seg_total = seg_total;
        let mut cls_total = cls_total;
        if ctx.inject_nan {
            if let Some(t) = seg_total.as_mut().or(cls_total.as_mut()) {
                *t = t.clone().add_scalar(f64::NAN);
            }
        }
        if let Some(t) = &seg_total {
            out.losses.push(("seg_total", scalar(t)));
        }
        if let Some(t) = &cls_total {
            out.losses.push(("cls_total", scalar(t)));
        }
        if let Some(&(term, value)) = out.losses.iter().find(|(_, v)| !v.is_finite()) {
            return Err(TrainError::NonFinite {
                step,
                term: term.to_string(),
                value,
            });
        }
        let total = match (seg_total, cls_total) {
            (Some(s), Some(c)) => s + c,
            (Some(s), None) => s,
            (None, Some(c)) => c,
            (None, None) => return Ok(()),
        };
        out.stats.append(&mut self.pending_stats);
        let (lr_seg, lr_cls) = self.lrs(step);
        let mut grads = total.backward();
        if let (Some(model), Some(opt)) = (self.seg.take(), self.seg_opt.as_mut()) {
            let g = GradientsParams::from_module(&mut grads, &model);
            self.seg = Some(opt.step(lr_seg, model, g));
            out.stats.push(("lr_seg", lr_seg));
        }
        if let (Some(model), Some(opt)) = (self.cls.take(), self.cls_opt.as_mut()) {
            let g = GradientsParams::from_module(&mut grads, &model);
            self.cls = Some(opt.step(lr_cls, model, g));
            out.stats.push(("lr_cls", lr_cls));
        }
        Ok(())
    }

    pub fn eval_forward(&self, images: &ImageBatch) -> Predictions {
        let seg_probs = self.seg.as_ref().map(|m| {
            let m = m.valid();
            let x = images_tensor(images, &self.device.clone().without_autodiff());
            softmax(m.forward_logits(x), 1)
        });
        let cls_probs = self.cls.as_ref().map(|m| {
            let m = m.valid();
            let x = images_tensor(images, &self.device.clone().without_autodiff());
            softmax(m.forward_logits(x), 1)
        });
        Predictions {
            seg_probs,
            cls_probs,
        }
    }

    /// Vanilla saliency of the classifier in eval mode (spec §2.1), without IAS attention.
    pub fn saliency(&self, images: &ImageBatch) -> Option<Tensor<3>> {
        let cls = self.cls.as_ref()?.valid();
        let x = images_tensor(images, &self.device.clone().without_autodiff());
        Some(vanilla_saliency(x, |x| cls.forward_logits(x)).map)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        if let Some(m) = &self.seg {
            save_module(m, &dir.join(SEG_FILE))?;
        }
        if let Some(m) = &self.cls {
            save_module(m, &dir.join(CLS_FILE))?;
        }
        for (opt, file) in [(&self.seg_opt, SEG_OPT_FILE), (&self.cls_opt, CLS_OPT_FILE)] {
            if let Some(o) = opt {
                save_optimizer(o, &dir.join(file))?;
            }
        }
        Ok(())
    }

    pub fn load(&mut self, dir: &Path) -> Result<()> {
        if let Some(m) = self.seg.as_mut() {
            load_module(m, &dir.join(SEG_FILE))?;
        }
        if let Some(m) = self.cls.as_mut() {
            load_module(m, &dir.join(CLS_FILE))?;
        }
        for (opt, file, ocfg) in [
            (&mut self.seg_opt, SEG_OPT_FILE, &self.cfg.optim.seg),
            (&mut self.cls_opt, CLS_OPT_FILE, &self.cfg.optim.cls),
        ] {
            if opt.is_some() {
                *opt = Some(load_optimizer(ocfg, &dir.join(file))?);
            }
        }
        Ok(())
    }
}

/// Writes one module's weights to `path` (every method's checkpoint files).
pub(crate) fn save_module<M: Module>(m: &M, path: &Path) -> Result<()> {
    // BN running statistics keep their latest update pending until something syncs them, and
    // saving reads the synced value only; `valid()` syncs the (shared) state first, otherwise a
    // checkpoint not preceded by an evaluation would miss the last update and a resume from it
    // would diverge from the uninterrupted run.
    let _ = m.valid();
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .overwrite(true);
    m.save_into(&mut store)
        .map_err(|e| TrainError::io(path, format!("saving weights: {e:?}")))
}

/// The first few items of a long list, for error messages.
fn first_few<T: std::fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(4).map(|i| format!("{i:?}")).collect();
    match items.len() {
        n if n > 4 => format!("{} and {} more", shown.join(", "), n - 4),
        _ => shown.join(", "),
    }
}

/// Restores `m` from a checkpoint file. Every failure here is about the run directory the user
/// pointed at (missing file, another architecture, a damaged file), so it is a `RunDir` error
/// (exit 2), not an I/O failure of the run.
pub(crate) fn load_module<M: Module>(m: &mut M, path: &Path) -> Result<()> {
    let fail = |message: String| TrainError::RunDir {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(fail("missing from the checkpoint".into()));
    }
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let r = m.load_from(&mut store).map_err(|e| {
        // Burn lists every mismatching tensor; the first one or two say enough.
        let text = e.to_string();
        let mismatches = text.matches("ShapeMismatch").count();
        let mut cut = text.len().min(360);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let ellipsis = if cut < text.len() { " ..." } else { "" };
        let what = if mismatches > 0 {
            format!("{mismatches} tensors have other shapes")
        } else {
            "the file is damaged".to_string()
        };
        fail(format!(
            "cannot load these weights: {what} ({}{ellipsis}); the checkpoint was written with \
             another architecture or width (model.* keys, or the method's own table such as \
             mlrpl.* or patchcl.*, of the run's config.toml), or damaged",
            &text[..cut]
        ))
    })?;
    if !r.errors.is_empty() || !r.missing.is_empty() {
        return Err(fail(format!(
            "the checkpoint does not fit the configured network ({} tensors missing: {}; {} \
             errors: {}); it was written with another architecture or width (model.* keys of \
             the run's config.toml)",
            r.missing.len(),
            first_few(&r.missing),
            r.errors.len(),
            first_few(&r.errors)
        )));
    }
    Ok(())
}

/// Saves an optimizer's state.
pub(crate) fn save_optimizer(o: &ModuleOptimizer, path: &Path) -> Result<()> {
    o.save(path)
        .map_err(|e| TrainError::io(path, format!("{e:?}")))
}

/// Loads an optimizer's state into a fresh one built from `cfg`.
pub(crate) fn load_optimizer(cfg: &OptimizerConfig, path: &Path) -> Result<ModuleOptimizer> {
    build_optimizer(cfg)
        .load(path)
        .map_err(|e| TrainError::io(path, format!("optimizer state: {e:?}")))
}
