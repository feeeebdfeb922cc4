//! Settings of the `patchcl` method (specs/patchcl.md §9, §11). Defaults are scaled for the
//! `quickstart-cpu` preset (64² inputs, ResNet-18 at width 0.25, 4 + 4 images, 300 steps); the
//! reference code's values are given with each key (docs/methods/patchcl.md).

use serde::{Deserialize, Serialize};

/// What the stochastic-approximation filter scores a patch by (§4); it keeps `score ≤ θ_c`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchFilter {
    /// The code: covered fraction (class pixels with a non-zero image value / P²).
    #[default]
    Coverage,
    /// The paper's average patch entropy (reconstructed, [unverified]): mean over the patch's class
    /// pixels of the teacher's normalised entropy; labeled patches score 0 and are always kept.
    Entropy,
}

/// The consistency term of phase 2 (§12.7; the code's `const_reg.py` is unpublished).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchClConsistency {
    /// Mean squared difference of the student's and the teacher's softmax (mean teacher).
    #[default]
    Mse,
    /// Cross-entropy of the student against the teacher's argmax.
    Ce,
}

/// PatchCL: EMA teacher, per-class patch queues and the Gaussian joint contrastive loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatchClConfig {
    /// Patch side P in pixels (code: 256 of 512, S/2; spec §11: S/8). 16 = S/4 at 64²: an S/8
    /// patch of 8 pixels is a single pixel at the encoder's 1/16 feature.
    pub patch_size: usize,
    /// Steps of phase 1 (labeled data only: CE + contrast); phase 2 (semi-supervised) follows.
    /// Code: 100 of 300 epochs; here 100 of the preset's 300 steps.
    pub warmup_steps: u64,
    /// EMA decay of the teacher (code 0.999), ramped as `min(1 − 1/t, alpha)`. 0.99 because
    /// 0.999 averages over more steps than the preset runs.
    pub ema_alpha: f64,
    /// Patch embedding width (code 128; the head is GAP → Linear → BN → ReLU → Linear → BN → L2).
    pub embedding_dim: usize,
    /// Teacher embeddings kept per class (code 4096).
    pub queue_length: usize,
    /// Teacher patches per step, ⌈n/K_present⌉ per class, topped up with augmented copies
    /// (code 128).
    pub teacher_patches: usize,
    /// At most this many student patches per class and step, a random subset (0 = all, the
    /// code); bounds the cost of the student's patch forward.
    pub max_student_patches: usize,
    /// Whether the student's patch forward updates the encoder's BN running statistics (the code:
    /// it does). Off (default), the encoder keeps statistics of whole images only, which
    /// evaluation uses; the patches are still normalised with their own batch statistics in
    /// training. Off measured val Dice 0.33 against 0.25 at the end of phase 1 (docs/methods).
    pub patch_bn_stats: bool,
    /// NMS: a window covered by more than this fraction of a kept one is dropped (code 0.8).
    pub nms_overlap: f64,
    /// Patch score of the phase-2 filter.
    pub filter: PatchFilter,
    /// Initial threshold θ_0 of the filter (code 0.5).
    pub filter_theta0: f64,
    /// Fraction of patches the filter aims to keep (code 0.8).
    pub filter_target: f64,
    /// Step size η of the threshold update, divided by the update count (code 0.01).
    pub filter_eta: f64,
    /// Weight of PCGJCL in both phases (code 0.5).
    pub contrast_weight: f64,
    /// PCGJCL τ and λ of phase 1 (code 0.2, 4).
    pub phase1_temperature: f64,
    pub phase1_lambda: f64,
    /// PCGJCL τ and λ of phase 2 (the values the code passes: 1, 10).
    pub phase2_temperature: f64,
    pub phase2_lambda: f64,
    /// PCGJCL ψ, the negatives' weight ψ/K (code 4096).
    pub psi: f64,
    /// Hard-negative Gaussians (§6.1); off = the plain class Gaussians (deterministic).
    pub hard_negatives: bool,
    /// Synthetic negatives mix with w ~ U(β − 0.2, β + 0.2) (code 0.5).
    pub hard_negative_beta: f64,
    /// Rounds of 1000 draws before a hard-negative search falls back to the plain Gaussian
    /// (the code has no cap; spec §11 suggests 100).
    pub hard_negative_rounds: usize,
    /// Phase-2 consistency between the student (strong view) and the teacher (weak view).
    pub consistency: PatchClConsistency,
    /// Its weight (code 4).
    pub consistency_weight: f64,
    /// Sigmoid ramp of the consistency weight over this many phase-2 steps; 0 = none (the code).
    pub consistency_rampup: u64,
    /// Phase-2 optimizer of the segmenter: SGD from `phase2_lr` down to `phase2_lr_end`, poly
    /// power `phase2_poly_power`, over the phase-2 steps (code: 0.007, 1e-4, 2, over 200 steps).
    pub phase2_lr: f64,
    pub phase2_lr_end: f64,
    pub phase2_poly_power: f64,
    /// SGD momentum of phase 2 (code 0). 0.9 measured lower val Dice in phase 2 (docs/methods).
    pub phase2_momentum: f64,
}

impl Default for PatchClConfig {
    fn default() -> Self {
        PatchClConfig {
            patch_size: 16,
            warmup_steps: 100,
            ema_alpha: 0.99,
            embedding_dim: 64,
            queue_length: 256,
            teacher_patches: 32,
            max_student_patches: 32,
            patch_bn_stats: false,
            nms_overlap: 0.8,
            filter: PatchFilter::Coverage,
            filter_theta0: 0.5,
            filter_target: 0.8,
            filter_eta: 0.01,
            contrast_weight: 0.5,
            phase1_temperature: 0.2,
            phase1_lambda: 4.0,
            phase2_temperature: 1.0,
            phase2_lambda: 10.0,
            psi: 4096.0,
            hard_negatives: true,
            hard_negative_beta: 0.5,
            hard_negative_rounds: 20,
            consistency: PatchClConsistency::Mse,
            consistency_weight: 4.0,
            consistency_rampup: 0,
            phase2_lr: 0.007,
            phase2_lr_end: 1e-4,
            phase2_poly_power: 2.0,
            phase2_momentum: 0.0,
        }
    }
}

impl PatchClConfig {
    /// Whether the filter scores patches by average patch entropy (else by coverage).
    pub fn entropy_filter(&self) -> bool {
        self.filter == PatchFilter::Entropy
    }

    /// Whether the consistency term is the CE to the teacher's argmax (else the softmax MSE).
    pub fn ce_consistency(&self) -> bool {
        self.consistency == PatchClConsistency::Ce
    }

    /// Value checks of the `patchcl.*` keys, as `(key, message)`. The patch must fit the image
    /// only when `patchcl` is the method (another method's small images do not care).
    pub(super) fn check(&self, image_size: u32, active: bool) -> Result<(), (String, String)> {
        let fail = |key: &str, msg: String| Err((format!("patchcl.{key}"), msg));
        if self.patch_size < 4 || (active && self.patch_size > image_size as usize) {
            return fail(
                "patch_size",
                format!(
                    "= {} must be at least 4 and at most image_size ({image_size})",
                    self.patch_size
                ),
            );
        }
        for (key, v, min) in [
            ("embedding_dim", self.embedding_dim, 2),
            ("queue_length", self.queue_length, 2),
            ("teacher_patches", self.teacher_patches, 2),
        ] {
            if v < min {
                return fail(key, format!("= {v} must be at least {min}"));
            }
        }
        if self.hard_negatives && self.hard_negative_rounds == 0 {
            return fail(
                "hard_negative_rounds",
                "must be at least 1 with hard_negatives = true".into(),
            );
        }
        for (key, v, lo, hi) in [
            ("ema_alpha", self.ema_alpha, 0.0, 1.0),
            ("filter_theta0", self.filter_theta0, 0.0, 1.0),
            ("filter_target", self.filter_target, 0.0, 1.0),
            ("hard_negative_beta", self.hard_negative_beta, 0.2, 0.8),
        ] {
            if !(lo..=hi).contains(&v) {
                return fail(key, format!("= {v} must be in [{lo}, {hi}]"));
            }
        }
        if !(self.nms_overlap > 0.0 && self.nms_overlap <= 1.0) {
            return fail(
                "nms_overlap",
                format!("= {} must be in (0, 1]", self.nms_overlap),
            );
        }
        if !(0.0..1.0).contains(&self.phase2_momentum) {
            return fail(
                "phase2_momentum",
                format!("= {} must be in [0, 1)", self.phase2_momentum),
            );
        }
        for (key, v) in [
            ("filter_eta", self.filter_eta),
            ("phase1_temperature", self.phase1_temperature),
            ("phase2_temperature", self.phase2_temperature),
            ("psi", self.psi),
            ("phase2_lr", self.phase2_lr),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return fail(key, format!("= {v} must be a positive number"));
            }
        }
        for (key, v) in [
            ("phase1_lambda", self.phase1_lambda),
            ("phase2_lambda", self.phase2_lambda),
            ("contrast_weight", self.contrast_weight),
            ("consistency_weight", self.consistency_weight),
            ("phase2_poly_power", self.phase2_poly_power),
            ("phase2_lr_end", self.phase2_lr_end),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return fail(key, format!("= {v} must be a non-negative number"));
            }
        }
        if self.phase2_lr_end > self.phase2_lr {
            return fail(
                "phase2_lr_end",
                format!(
                    "= {} must not exceed phase2_lr ({})",
                    self.phase2_lr_end, self.phase2_lr
                ),
            );
        }
        Ok(())
    }
}
