//! Settings of the classic reference methods: Mean Teacher, FixMatch and cross pseudo supervision
//! (docs/methods/references.md). Each table works for every `task`: its terms apply to the
//! segmenter and to the classifier alike.
//!
//! Ramp-ups are given as a fraction of the run's `steps`, so one default fits a 300-step quickstart
//! and a 30 000-step paper run: the weight is `w · ρ(t, fraction · steps)` with the sigmoid ramp
//! ρ(c, L) = exp(−5 (1 − c/L)²) (`schedule::sigmoid_rampup`); a fraction of 0 means no ramp.

use serde::{Deserialize, Serialize};

use super::TrainConfig;

/// Mean Teacher (Tarvainen & Valpola 2017).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeanTeacherConfig {
    /// EMA decay α of the teacher: `teacher ← α·teacher + (1 − α)·student` after every step, with
    /// the warm-up `min(1 − 1/t, α)` (so the teacher starts as the student). In [0, 1).
    pub ema_alpha: f64,
    /// Maximum weight of the consistency term (mean squared difference of the softmax outputs).
    pub consistency_weight: f64,
    /// Length of the sigmoid ramp-up of the consistency weight, as a fraction of `steps` (0 = no
    /// ramp). In [0, 1].
    pub consistency_rampup: f64,
}

impl Default for MeanTeacherConfig {
    fn default() -> Self {
        MeanTeacherConfig {
            // SSL4MIS (medical segmentation); the original uses 0.99 early and 0.999 later on.
            ema_alpha: 0.99,
            // SSL4MIS's softmax-MSE weight (the mean over every element, not a per-image sum).
            consistency_weight: 0.1,
            // About the original's ramp (80 of 300 epochs).
            consistency_rampup: 0.25,
        }
    }
}

/// FixMatch (Sohn et al. 2020), for segmentation (per pixel) and classification (per image).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FixMatchConfig {
    /// Confidence threshold τ of the classifier: an unlabeled image becomes a target where the
    /// weak view's top probability is ≥ τ. In (0, 1].
    pub cls_threshold: f64,
    /// Confidence threshold τ of the segmenter, per pixel. In (0, 1].
    pub seg_threshold: f64,
    /// Weight λ_u of the unlabeled cross-entropy on the strong view.
    pub unsup_weight: f64,
}

impl Default for FixMatchConfig {
    fn default() -> Self {
        // The paper's τ = 0.95 and λ_u = 1 (UniMatch keeps 0.95 for segmentation).
        FixMatchConfig {
            cls_threshold: 0.95,
            seg_threshold: 0.95,
            unsup_weight: 1.0,
        }
    }
}

/// Cross pseudo supervision (Chen et al. 2021).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpsConfig {
    /// Weight λ of the segmenters' cross pseudo-label cross-entropy (each against the other's
    /// arg-max, per pixel).
    pub seg_weight: f64,
    /// Weight λ of the classifiers' cross pseudo-label cross-entropy (per image).
    pub cls_weight: f64,
    /// Length of the sigmoid ramp-up of both λ, as a fraction of `steps` (0 = no ramp). In [0, 1].
    pub cps_rampup: f64,
    /// Evaluate (and predict) with the mean of both networks' softmax outputs; `false` = the
    /// first network of each pair, as the CPS code does. The saliency map is always the first
    /// classifier's.
    pub eval_mean: bool,
}

impl Default for CpsConfig {
    fn default() -> Self {
        // The paper's λ = 1.5 (PASCAL VOC) against a supervised CE of weight 1. The segmenter's
        // supervised loss here is (0.5·CE + Dice)/2, a CE of weight 0.25, so the same ratio is
        // λ = 0.375 (in a 200-step quickstart run, 1.5 reached a best val Dice of 0.21, 0.375
        // reached 0.39); the classifier's supervised CE has weight 1.
        CpsConfig {
            seg_weight: 0.375,
            cls_weight: 1.5,
            // Not in the paper (pretrained backbones there): with random initialisation the early
            // pseudo-labels are noise, so λ ramps up as in SSL4MIS's CPS.
            cps_rampup: 0.25,
            eval_mean: false,
        }
    }
}

/// The checks of `[mean_teacher]`, `[fixmatch]` and `[cps]`, as `(key, message)`; called from
/// `check.rs`. Every table is checked whatever the method, like `[hermes]`.
pub(super) fn check(cfg: &TrainConfig) -> Result<(), (String, String)> {
    let fail = |key: &str, msg: String| Err((key.to_string(), msg));
    let (mt, fm, cps) = (&cfg.mean_teacher, &cfg.fixmatch, &cfg.cps);
    if !(0.0..1.0).contains(&mt.ema_alpha) {
        return fail(
            "mean_teacher.ema_alpha",
            format!("= {} must be in [0, 1)", mt.ema_alpha),
        );
    }
    for (key, v) in [
        ("mean_teacher.consistency_weight", mt.consistency_weight),
        ("fixmatch.unsup_weight", fm.unsup_weight),
        ("cps.seg_weight", cps.seg_weight),
        ("cps.cls_weight", cps.cls_weight),
    ] {
        if !(v >= 0.0 && v.is_finite()) {
            return fail(key, format!("= {v} must be a non-negative number"));
        }
    }
    for (key, v) in [
        ("mean_teacher.consistency_rampup", mt.consistency_rampup),
        ("cps.cps_rampup", cps.cps_rampup),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return fail(
                key,
                format!("= {v} must be in [0, 1] (a fraction of `steps`)"),
            );
        }
    }
    for (key, v) in [
        ("fixmatch.cls_threshold", fm.cls_threshold),
        ("fixmatch.seg_threshold", fm.seg_threshold),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            return fail(key, format!("= {v} must be in (0, 1]"));
        }
    }
    Ok(())
}
