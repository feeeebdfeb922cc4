//! Pseudo-label selection: which predictions on unlabeled data become training targets
//! (the `PseudoLabelSelector` seam of ARCHITECTURE §4).
//!
//! Framework-free on purpose: a selector reads class probabilities from a plain slice (`f32` as pulled
//! from a tensor, or `f64`), so the rules are tested here against the spec's numbers, and the Burn side
//! either calls these functions on tensor data or mirrors them with tensor ops and checks itself
//! against them. All arithmetic is in `f64`.
//!
//! * [`DualThreshold`] — Hermes (spec §4.1): class-wise adaptive confidence thresholds plus a ramped
//!   entropy threshold, combined differently per loss term.
//! * [`FixedThreshold`] — FixMatch: keep where the top probability is at least τ.
//! * [`EntropyComparison`] — MLRPL (mlrpl spec §5.2): a student learns a voxel from the teacher only
//!   where the teacher's entropy is strictly lower.

use serde::{Deserialize, Serialize};

use crate::schedule::entropy_threshold;

/// The ε inside the entropy's logarithm, H = −Σ p ln(p + ε), in both Hermes and MLRPL.
pub const ENTROPY_EPS: f64 = 1e-6;

/// Probability values, as they come: `f32` from tensors, `f64` in tests and oracles.
#[derive(Clone, Copy, Debug)]
pub enum ProbData<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl ProbData<'_> {
    fn len(&self) -> usize {
        match self {
            ProbData::F32(d) => d.len(),
            ProbData::F64(d) => d.len(),
        }
    }

    #[inline]
    fn get(&self, i: usize) -> f64 {
        match self {
            ProbData::F32(d) => d[i] as f64,
            ProbData::F64(d) => d[i],
        }
    }
}

impl<'a> From<&'a [f32]> for ProbData<'a> {
    fn from(d: &'a [f32]) -> Self {
        ProbData::F32(d)
    }
}

impl<'a> From<&'a [f64]> for ProbData<'a> {
    fn from(d: &'a [f64]) -> Self {
        ProbData::F64(d)
    }
}

impl<'a> From<&'a Vec<f32>> for ProbData<'a> {
    fn from(d: &'a Vec<f32>) -> Self {
        ProbData::F32(d)
    }
}

impl<'a> From<&'a Vec<f64>> for ProbData<'a> {
    fn from(d: &'a Vec<f64>) -> Self {
        ProbData::F64(d)
    }
}

/// A set of rows of `classes` probabilities each. A row is one image (classifier) or one pixel
/// (segmenter). Two layouts: row-major (`rows × classes`, a classifier's `[B, K]` softmax) and
/// channels-first (`[B, K, H, W]`, a segmenter's softmax as it leaves the tensor), where row
/// `b·H·W + p` is pixel `p` of image `b` — the order of a `[B, H, W]` label tensor.
#[derive(Clone, Copy, Debug)]
pub struct Probs<'a> {
    data: ProbData<'a>,
    classes: usize,
    /// Pixels per image for the channels-first layout; `None` for row-major.
    pixels: Option<usize>,
}

impl<'a> Probs<'a> {
    /// Row-major rows. Panics if `classes == 0` or the length is not a multiple of `classes`.
    pub fn rows(data: impl Into<ProbData<'a>>, classes: usize) -> Self {
        let data = data.into();
        assert!(classes > 0, "probabilities need at least one class");
        assert!(
            data.len() % classes == 0,
            "{} values are not rows of {classes} classes",
            data.len()
        );
        Probs {
            data,
            classes,
            pixels: None,
        }
    }

    /// Channels-first `[images, classes, pixels]` data (pixels = H·W). Panics on a size mismatch.
    pub fn channels_first(
        data: impl Into<ProbData<'a>>,
        images: usize,
        classes: usize,
        pixels: usize,
    ) -> Self {
        let data = data.into();
        assert!(classes > 0, "probabilities need at least one class");
        assert_eq!(
            data.len(),
            images * classes * pixels,
            "data length is not images × classes × pixels"
        );
        Probs {
            data,
            classes,
            pixels: Some(pixels.max(1)),
        }
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.classes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Probability of class `c` in row `r`.
    #[inline]
    pub fn at(&self, r: usize, c: usize) -> f64 {
        match self.pixels {
            None => self.data.get(r * self.classes + c),
            Some(hw) => {
                let (b, p) = (r / hw, r % hw);
                self.data.get((b * self.classes + c) * hw + p)
            }
        }
    }

    /// Arg-max class of row `r` (the first on ties, like `torch.argmax`) and its probability.
    pub fn argmax(&self, r: usize) -> (u32, f64) {
        let mut best = (0u32, self.at(r, 0));
        for c in 1..self.classes {
            let p = self.at(r, c);
            if p > best.1 {
                best = (c as u32, p);
            }
        }
        best
    }

    /// Entropy of row `r`: H = −Σ_c p_c ln(p_c + 1e-6).
    pub fn entropy(&self, r: usize) -> f64 {
        -(0..self.classes)
            .map(|c| {
                let p = self.at(r, c);
                p * (p + ENTROPY_EPS).ln()
            })
            .sum::<f64>()
    }
}

/// Row-wise softmax of row-major logits (the row maximum is subtracted first, for stability).
pub fn softmax_rows(logits: &[f64], classes: usize) -> Vec<f64> {
    assert!(classes > 0 && logits.len().is_multiple_of(classes));
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(classes) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = row.iter().map(|&z| (z - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        out.extend(exps.iter().map(|e| e / sum));
    }
    out
}

/// Pseudo-labels with their per-row statistics, computed once and shared by every keep rule.
#[derive(Clone, Debug, PartialEq)]
pub struct PseudoLabels {
    /// Arg-max class per row.
    pub labels: Vec<u32>,
    /// Probability of that class.
    pub confidence: Vec<f64>,
    /// Entropy H of the row.
    pub entropy: Vec<f64>,
}

impl PseudoLabels {
    pub fn from_probs(probs: &Probs<'_>) -> Self {
        let n = probs.len();
        let (mut labels, mut confidence, mut entropy) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for r in 0..n {
            let (l, p) = probs.argmax(r);
            labels.push(l);
            confidence.push(p);
            entropy.push(probs.entropy(r));
        }
        PseudoLabels {
            labels,
            confidence,
            entropy,
        }
    }
}

/// Class-wise adaptive thresholds T_c = T_max − (T_max − T_min)(1 − r_c), r_c the share of class `c`
/// among `labels` (spec §4.1; written in the code's form, which gives exactly T_min for an absent
/// class). The frequent class gets the higher threshold.
pub fn class_thresholds(labels: &[u32], classes: usize, t_min: f64, t_max: f64) -> Vec<f64> {
    let mut counts = vec![0usize; classes];
    for &l in labels {
        counts[l as usize] += 1;
    }
    let total = labels.len();
    counts
        .iter()
        .map(|&n| {
            let ratio = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            t_max - (t_max - t_min) * (1.0 - ratio)
        })
        .collect()
}

/// How the Hermes segmentation Dice term combines the two thresholds (spec §13 `seg_dice_keep`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiceKeep {
    /// The code: ignore a pixel only if it fails both, i.e. keep = conf OR H ≤ τ.
    #[default]
    Or,
    /// Keep = conf AND H ≤ τ.
    And,
}

/// How the Hermes pixel-contrast labels are masked (spec §4.1, §12.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContrastKeep {
    /// What the released code effectively does: −1 where H > τ only.
    #[default]
    EntropyOnly,
    /// The intended rule (`paper` mode): −1 where NOT conf OR H > τ.
    ConfAndCertain,
}

/// Which combination [`DualThreshold`] reports as its [`Selection::keep`] through the trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepRule {
    /// Classifier terms (L_u^cls, SupCon anchors): conf AND H < τ.
    Classifier,
    /// Segmenter Dice term.
    SegDice(DiceKeep),
    /// Pixel-contrast labels.
    Contrast(ContrastKeep),
}

/// The full result of the Hermes dual threshold on one population (the B images of a classifier
/// batch, or all B·H·W pixels of a segmenter batch taken together).
#[derive(Clone, Debug, PartialEq)]
pub struct DualSelection {
    pub pseudo: PseudoLabels,
    /// T_c per class, from this population's pseudo-label counts.
    pub thresholds: Vec<f64>,
    /// The entropy threshold τ_H(t).
    pub tau: f64,
    /// conf = p_ŷ > T_ŷ (strict).
    pub conf: Vec<bool>,
}

impl DualSelection {
    /// Classifier "certain": H < τ (strict).
    pub fn certain(&self) -> Vec<bool> {
        self.pseudo.entropy.iter().map(|&h| h < self.tau).collect()
    }

    /// Keep for the classifier terms: conf AND H < τ.
    pub fn classifier_keep(&self) -> Vec<bool> {
        self.zip(|conf, h, tau| conf && h < tau)
    }

    /// Keep for the segmenter Dice term. The segmenter's test is "uncertain = H > τ", so its
    /// complement is H ≤ τ (the two entropy tests differ exactly at H = τ, as in the code).
    pub fn seg_dice_keep(&self, rule: DiceKeep) -> Vec<bool> {
        match rule {
            DiceKeep::Or => self.zip(|conf, h, tau| conf || h <= tau),
            DiceKeep::And => self.zip(|conf, h, tau| conf && h <= tau),
        }
    }

    /// Keep for the pixel-contrast labels.
    pub fn contrast_keep(&self, rule: ContrastKeep) -> Vec<bool> {
        match rule {
            ContrastKeep::EntropyOnly => self.zip(|_, h, tau| h <= tau),
            ContrastKeep::ConfAndCertain => self.zip(|conf, h, tau| conf && h <= tau),
        }
    }

    /// Pixel-contrast labels: the pseudo-label where kept, −1 (ignore) elsewhere.
    pub fn contrast_labels(&self, rule: ContrastKeep) -> Vec<i64> {
        self.contrast_keep(rule)
            .iter()
            .zip(&self.pseudo.labels)
            .map(|(&k, &l)| if k { l as i64 } else { -1 })
            .collect()
    }

    /// Reproduces the released code's indexing bug (spec §12.2) on contrast labels laid out as
    /// images of `pixels_per_image` rows: `labels[int_mask] = -1` with a 0/1 integer mask indexes
    /// whole images, so image 0 is blanked if any pixel is confident and image 1 if any is not.
    /// Only for bit-faithful `code` runs.
    pub fn apply_code_index_bug(&self, labels: &mut [i64], pixels_per_image: usize) {
        let images = labels.len() / pixels_per_image.max(1);
        let mut blank = |b: usize| {
            if b < images {
                labels[b * pixels_per_image..(b + 1) * pixels_per_image].fill(-1);
            }
        };
        if self.conf.iter().any(|&c| c) {
            blank(0);
        }
        if self.conf.iter().any(|&c| !c) {
            blank(1);
        }
    }

    fn zip(&self, f: impl Fn(bool, f64, f64) -> bool) -> Vec<bool> {
        self.conf
            .iter()
            .zip(&self.pseudo.entropy)
            .map(|(&c, &h)| f(c, h, self.tau))
            .collect()
    }

    fn selection(&self, keep: Vec<bool>) -> Selection {
        Selection {
            labels: self.pseudo.labels.clone(),
            confidence: self.pseudo.confidence.clone(),
            keep,
        }
    }
}

/// What every selector returns: a pseudo-label per row and whether the row is a training target.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub labels: Vec<u32>,
    /// Probability of the pseudo-label under the prediction that supplied it.
    pub confidence: Vec<f64>,
    pub keep: Vec<bool>,
}

impl Selection {
    /// Share of kept rows (for logging); 0 for no rows.
    pub fn keep_fraction(&self) -> f64 {
        if self.keep.is_empty() {
            return 0.0;
        }
        self.keep.iter().filter(|&&k| k).count() as f64 / self.keep.len() as f64
    }
}

/// The selector seam. `probs` is the prediction that supplies the pseudo-labels (the weak view, or the
/// teacher); `other` is a second prediction for selectors that compare two (MLRPL: the student), and
/// is ignored by the others; `step` is the 1-based global step for ramped thresholds.
pub trait PseudoLabelSelector: Send + Sync {
    fn name(&self) -> &'static str;
    fn select(&self, probs: &Probs<'_>, other: Option<&Probs<'_>>, step: u64) -> Selection;
}

/// Hermes' dual threshold (spec §4.1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DualThreshold {
    pub t_min: f64,
    pub t_max: f64,
    /// T of the entropy ramp τ_H(t) = (0.75 + 0.25·ρ(t, T))·ln K: the configured maximum steps.
    pub total_steps: u64,
    /// The combination [`PseudoLabelSelector::select`] reports.
    pub rule: KeepRule,
}

impl DualThreshold {
    /// The Hermes defaults: T_min 0.5, T_max 0.95, classifier rule.
    pub fn hermes(total_steps: u64) -> Self {
        DualThreshold {
            t_min: 0.5,
            t_max: 0.95,
            total_steps,
            rule: KeepRule::Classifier,
        }
    }

    pub fn with_rule(self, rule: KeepRule) -> Self {
        DualThreshold { rule, ..self }
    }

    /// Every quantity of the dual threshold for one population at step `t`; the Hermes step calls
    /// this once per network and reads all the masks it needs from the result.
    pub fn evaluate(&self, probs: &Probs<'_>, step: u64) -> DualSelection {
        let k = probs.classes();
        let pseudo = PseudoLabels::from_probs(probs);
        let thresholds = class_thresholds(&pseudo.labels, k, self.t_min, self.t_max);
        let conf = pseudo
            .labels
            .iter()
            .zip(&pseudo.confidence)
            .map(|(&l, &p)| p > thresholds[l as usize])
            .collect();
        let tau = entropy_threshold(step, self.total_steps, k.max(2));
        DualSelection {
            pseudo,
            thresholds,
            tau,
            conf,
        }
    }
}

impl PseudoLabelSelector for DualThreshold {
    fn name(&self) -> &'static str {
        "dual-threshold"
    }

    fn select(&self, probs: &Probs<'_>, _other: Option<&Probs<'_>>, step: u64) -> Selection {
        let d = self.evaluate(probs, step);
        let keep = match self.rule {
            KeepRule::Classifier => d.classifier_keep(),
            KeepRule::SegDice(r) => d.seg_dice_keep(r),
            KeepRule::Contrast(r) => d.contrast_keep(r),
        };
        d.selection(keep)
    }
}

/// FixMatch: keep where p_ŷ ≥ τ (FixMatch's `ge`; default τ = 0.95).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FixedThreshold {
    pub threshold: f64,
}

impl Default for FixedThreshold {
    fn default() -> Self {
        FixedThreshold { threshold: 0.95 }
    }
}

impl PseudoLabelSelector for FixedThreshold {
    fn name(&self) -> &'static str {
        "fixed-threshold"
    }

    fn select(&self, probs: &Probs<'_>, _other: Option<&Probs<'_>>, _step: u64) -> Selection {
        let (labels, confidence): (Vec<u32>, Vec<f64>) =
            (0..probs.len()).map(|r| probs.argmax(r)).unzip();
        let keep = confidence.iter().map(|&p| p >= self.threshold).collect();
        Selection {
            labels,
            confidence,
            keep,
        }
    }
}

/// MLRPL's hard selection (mlrpl spec §5.2, §6): `probs` is the teacher j, `other` the student i;
/// the label is the teacher's arg-max, kept where H_i > H_j strictly (ties go nowhere).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntropyComparison;

impl PseudoLabelSelector for EntropyComparison {
    fn name(&self) -> &'static str {
        "entropy-comparison"
    }

    /// Panics without `other` (the student), or if the two differ in shape.
    fn select(&self, probs: &Probs<'_>, other: Option<&Probs<'_>>, _step: u64) -> Selection {
        let student = other.expect("entropy comparison needs the student's probabilities");
        assert_eq!(
            (probs.len(), probs.classes()),
            (student.len(), student.classes()),
            "teacher and student probabilities differ in shape"
        );
        let teacher = PseudoLabels::from_probs(probs);
        let keep = (0..probs.len())
            .map(|r| student.entropy(r) > teacher.entropy[r])
            .collect();
        Selection {
            labels: teacher.labels,
            confidence: teacher.confidence,
            keep,
        }
    }
}

#[cfg(test)]
mod tests;
