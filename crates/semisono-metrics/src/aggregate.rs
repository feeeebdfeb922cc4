//! Aggregation over images: the [`Metric`] shape (update per image, aggregate, reset).
//!
//! - [`Stat`]: per-image **mean ± sample standard deviation** (`ddof = 1`, numpy's
//!   `np.std(x, ddof=1)`; `None` with fewer than two values) over the *defined* values, plus how
//!   many values were undefined and skipped (surface metrics of images with an empty mask).
//! - [`SegMetrics`]: per-image segmentation metrics and pooled ("aggregate") overlap metrics
//!   computed from the summed pixel counts: aggregate Dice `2ΣI / Σ(|A|+|B|)`, aggregate Jaccard
//!   `ΣI / Σ|A∪B|` (1.0 when every mask is empty, like MedPy on the stacked volume).
//! - [`ClsMetrics`]: collects labels (and optionally probabilities) and computes every
//!   classification metric at the end (they are dataset-level by nature).

use serde::{Deserialize, Serialize};

use crate::cls::{
    self, Average, ClsError, ConfusionMatrix, KappaWeights, Label, MultiAverage, PerClass, Prf,
    Proba,
};
use crate::numeric::{np_mean, np_std};
use crate::seg::{
    ConfusionCounts, Mask, MaskError, MaskPixel, SegEvaluator, SegImageMetrics, Spacing,
};

/// One metric shape for both tasks: feed items one at a time, aggregate, reset.
pub trait Metric {
    /// What one update consumes.
    type Item<'a>;
    /// The aggregate.
    type Summary;
    /// Why an update can be rejected.
    type Error;
    /// Adds one item (an image pair, a sample).
    fn update(&mut self, item: Self::Item<'_>) -> Result<(), Self::Error>;
    /// Aggregates everything added since the last reset.
    fn aggregate(&self) -> Self::Summary;
    /// Forgets everything.
    fn reset(&mut self);
}

/// Summary of one per-image metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Number of defined values used.
    pub n: usize,
    /// Number of undefined values skipped (empty-mask surface metrics, NaN).
    pub n_skipped: usize,
    /// Arithmetic mean (numpy `np.mean`); `None` if `n == 0`.
    pub mean: Option<f64>,
    /// **Sample** standard deviation (`ddof = 1`, as usually reported in papers); `None` if `n < 2`.
    pub std: Option<f64>,
    /// Smallest defined value.
    pub min: Option<f64>,
    /// Largest defined value.
    pub max: Option<f64>,
}

impl Stat {
    /// Summarises values; `None` and NaN count as skipped.
    pub fn from_values<I: IntoIterator<Item = Option<f64>>>(values: I) -> Self {
        let mut v = Vec::new();
        let mut skipped = 0;
        for x in values {
            match x {
                Some(x) if !x.is_nan() => v.push(x),
                _ => skipped += 1,
            }
        }
        let fold = |f: fn(f64, f64) -> f64| v.iter().copied().reduce(f);
        Self {
            n: v.len(),
            n_skipped: skipped,
            mean: (!v.is_empty()).then(|| np_mean(&v)),
            std: (v.len() >= 2).then(|| np_std(&v, 1)),
            min: fold(f64::min),
            max: fold(f64::max),
        }
    }
}

/// One image pair for [`SegMetrics::update`].
#[derive(Debug, Clone, Copy)]
pub struct SegPair<'a> {
    /// Prediction.
    pub result: Mask<'a, u8>,
    /// Ground truth.
    pub reference: Mask<'a, u8>,
    /// Pixel spacing of this image (`None`: the accumulator's default).
    pub spacing: Option<Spacing>,
}

/// Pooled overlap metrics from the summed pixel counts of all images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PooledOverlap {
    /// Summed counts.
    pub counts: ConfusionCounts,
    /// `2ΣI / Σ(|A|+|B|)`; 1.0 if every mask is empty.
    pub dice: f64,
    /// `ΣI / Σ|A∪B|`; 1.0 if every mask is empty.
    pub jaccard: f64,
    /// `Σtp / Σ(tp+fp)` (0.0 for 0/0).
    pub precision: f64,
    /// `Σtp / Σ(tp+fn)` (0.0 for 0/0).
    pub recall: f64,
    /// `Σtn / Σ(tn+fp)` (0.0 for 0/0).
    pub specificity: f64,
}

/// Aggregate of [`SegMetrics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegSummary {
    /// Images added.
    pub n_images: usize,
    /// Per-image Dice (MedPy `dc`, both-empty = 1.0; never skipped).
    pub dice: Stat,
    /// Per-image Jaccard / IoU.
    pub jaccard: Stat,
    /// Per-image precision.
    pub precision: Stat,
    /// Per-image recall / sensitivity.
    pub recall: Stat,
    /// Per-image specificity.
    pub specificity: Stat,
    /// Per-image Hermes smoothed Dice `(2I + 1e-5)/(|A|+|B| + 1e-5)`.
    pub smoothed_dice: Stat,
    /// Per-image HD (images with an empty mask skipped).
    pub hd: Stat,
    /// Per-image HD95 (skips empty).
    pub hd95: Stat,
    /// Per-image ASD result → reference (skips empty).
    pub asd: Stat,
    /// Per-image ASD reference → result (skips empty).
    pub asd_reverse: Stat,
    /// Per-image ASSD, MedPy 0.5.x pooled definition (skips empty).
    pub assd: Stat,
    /// Per-image ASSD, MedPy <= 0.4 mean-of-directed definition (skips empty).
    pub assd_legacy: Stat,
    /// Pooled ("aggregate") overlap metrics.
    pub pooled: PooledOverlap,
}

/// Segmentation accumulator: per-image metrics plus pooled counts.
#[derive(Debug, Clone, Default)]
pub struct SegMetrics {
    spacing: Spacing,
    evaluator: SegEvaluator,
    images: Vec<SegImageMetrics>,
    pooled: ConfusionCounts,
}

impl SegMetrics {
    /// An empty accumulator whose default spacing is `spacing`.
    pub fn new(spacing: Spacing) -> Self {
        Self {
            spacing,
            ..Self::default()
        }
    }

    /// Adds one pair of masks of any pixel type; returns its metrics.
    pub fn update_masks<T: MaskPixel, U: MaskPixel>(
        &mut self,
        result: Mask<'_, T>,
        reference: Mask<'_, U>,
        spacing: Option<Spacing>,
    ) -> Result<&SegImageMetrics, MaskError> {
        let m = self
            .evaluator
            .evaluate(result, reference, spacing.unwrap_or(self.spacing))?;
        self.pooled += m.counts;
        self.images.push(m);
        Ok(self.images.last().expect("just pushed"))
    }

    /// Metrics of every image added so far, in order.
    pub fn per_image(&self) -> &[SegImageMetrics] {
        &self.images
    }

    /// Number of images added.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// `true` if no image was added.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    fn stat(&self, f: impl Fn(&SegImageMetrics) -> Option<f64>) -> Stat {
        Stat::from_values(self.images.iter().map(f))
    }
}

impl Metric for SegMetrics {
    type Item<'a> = SegPair<'a>;
    type Summary = SegSummary;
    type Error = MaskError;

    fn update(&mut self, item: SegPair<'_>) -> Result<(), MaskError> {
        self.update_masks(item.result, item.reference, item.spacing)
            .map(|_| ())
    }

    fn aggregate(&self) -> SegSummary {
        let c = self.pooled;
        let d = |f: fn(&crate::seg::SurfaceDistances) -> f64| {
            self.stat(move |m| m.distances.as_ref().ok().map(f))
        };
        SegSummary {
            n_images: self.images.len(),
            dice: self.stat(|m| Some(m.overlap.dice)),
            jaccard: self.stat(|m| Some(m.overlap.jaccard)),
            precision: self.stat(|m| Some(m.overlap.precision)),
            recall: self.stat(|m| Some(m.overlap.recall)),
            specificity: self.stat(|m| Some(m.overlap.specificity)),
            smoothed_dice: self.stat(|m| Some(m.counts.smoothed_dice())),
            hd: d(|x| x.hd),
            hd95: d(|x| x.hd95),
            asd: d(|x| x.asd),
            asd_reverse: d(|x| x.asd_reverse),
            assd: d(|x| x.assd),
            assd_legacy: d(|x| x.assd_legacy),
            pooled: PooledOverlap {
                counts: c,
                dice: c.dice(),
                jaccard: c.jaccard(),
                precision: c.precision(),
                recall: c.recall(),
                specificity: c.specificity(),
            },
        }
    }

    fn reset(&mut self) {
        self.images.clear();
        self.pooled = ConfusionCounts::default();
    }
}

/// One sample for [`ClsMetrics::update`].
#[derive(Debug, Clone, Copy)]
pub struct ClsSample<'a> {
    /// True class.
    pub y_true: Label,
    /// Predicted class.
    pub y_pred: Label,
    /// Class probabilities (length `n_classes`), or `None` if the accumulator has no scores.
    pub proba: Option<&'a [f64]>,
}

/// Aggregate of [`ClsMetrics`]. Labels are `0..n_classes` throughout (absent classes included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClsSummary {
    /// Samples added.
    pub n_samples: usize,
    /// Accuracy.
    pub accuracy: Result<f64, ClsError>,
    /// Balanced accuracy (classes present in y_true only).
    pub balanced_accuracy: Result<f64, ClsError>,
    /// Macro average over `0..n_classes`.
    pub macro_avg: Result<Prf, ClsError>,
    /// Support-weighted average.
    pub weighted_avg: Result<Prf, ClsError>,
    /// Micro average.
    pub micro_avg: Result<Prf, ClsError>,
    /// Per class, with specificity.
    pub per_class: Result<PerClass, ClsError>,
    /// Mean one-vs-rest specificity.
    pub specificity_macro: Result<f64, ClsError>,
    /// Confusion matrix over `0..n_classes`.
    pub confusion_matrix: Result<ConfusionMatrix, ClsError>,
    /// Cohen's kappa (unweighted).
    pub cohen_kappa: Result<f64, ClsError>,
    /// Quadratic-weighted kappa.
    pub cohen_kappa_quadratic: Result<f64, ClsError>,
    /// ROC AUC: binary (`n_classes == 2`, score of class 1) or one-vs-rest macro; `None` without scores.
    pub roc_auc: Option<Result<f64, ClsError>>,
    /// One-vs-rest weighted ROC AUC (`n_classes > 2` only).
    pub roc_auc_ovr_weighted: Option<Result<f64, ClsError>>,
    /// One-vs-one macro ROC AUC (`n_classes > 2` only).
    pub roc_auc_ovo: Option<Result<f64, ClsError>>,
}

/// Classification accumulator.
#[derive(Debug, Clone)]
pub struct ClsMetrics {
    n_classes: usize,
    y_true: Vec<Label>,
    y_pred: Vec<Label>,
    proba: Vec<f64>,
    with_proba: bool,
}

impl ClsMetrics {
    /// An accumulator for `n_classes` classes; `with_proba` if every sample brings probabilities.
    pub fn new(n_classes: usize, with_proba: bool) -> Self {
        Self {
            n_classes,
            y_true: Vec::new(),
            y_pred: Vec::new(),
            proba: Vec::new(),
            with_proba,
        }
    }

    /// True labels added so far.
    pub fn y_true(&self) -> &[Label] {
        &self.y_true
    }

    /// Predicted labels added so far.
    pub fn y_pred(&self) -> &[Label] {
        &self.y_pred
    }
}

impl Metric for ClsMetrics {
    type Item<'a> = ClsSample<'a>;
    type Summary = ClsSummary;
    type Error = ClsError;

    fn update(&mut self, s: ClsSample<'_>) -> Result<(), ClsError> {
        let k = self.n_classes;
        for label in [s.y_true, s.y_pred] {
            if label >= k {
                return Err(ClsError::LabelOutOfRange {
                    label,
                    n_classes: k,
                });
            }
        }
        match (self.with_proba, s.proba) {
            (true, Some(p)) if p.len() == k => self.proba.extend_from_slice(p),
            (false, None) => {}
            (true, Some(p)) => {
                return Err(ClsError::LengthMismatch {
                    y_true: k,
                    what: "proba",
                    other: p.len(),
                })
            }
            _ => {
                return Err(ClsError::BadLabels(
                    "probabilities given to an accumulator without scores, or missing",
                ))
            }
        }
        self.y_true.push(s.y_true);
        self.y_pred.push(s.y_pred);
        Ok(())
    }

    fn aggregate(&self) -> ClsSummary {
        let (t, p) = (&self.y_true[..], &self.y_pred[..]);
        let all: Vec<Label> = (0..self.n_classes).collect();
        let prf = |a| cls::precision_recall_f1(t, p, Some(&all), a);
        let proba = self
            .with_proba
            .then(|| Proba::new(&self.proba, self.n_classes));
        let multi = self.n_classes > 2;
        let auc = proba.as_ref().map(|pr| {
            let pr = pr.clone()?;
            if multi {
                cls::roc_auc_ovr(t, pr, MultiAverage::Macro)
            } else {
                let s: Vec<f64> = (0..pr.n_samples())
                    .map(|i| pr.get(i, self.n_classes - 1))
                    .collect();
                let pos: Vec<bool> = t.iter().map(|&y| y == self.n_classes - 1).collect();
                cls::roc_auc_bool(&pos, &s)
            }
        });
        let multi_auc = |f: fn(&[Label], Proba<'_>) -> Result<f64, ClsError>| {
            proba.as_ref().filter(|_| multi).map(|pr| f(t, pr.clone()?))
        };
        ClsSummary {
            n_samples: t.len(),
            accuracy: cls::accuracy(t, p),
            balanced_accuracy: cls::balanced_accuracy(t, p),
            macro_avg: prf(Average::Macro),
            weighted_avg: prf(Average::Weighted),
            micro_avg: prf(Average::Micro),
            per_class: cls::precision_recall_f1_per_class(t, p, Some(&all)),
            specificity_macro: cls::specificity_macro(t, p, Some(&all)),
            confusion_matrix: cls::confusion_matrix(t, p, Some(&all)),
            cohen_kappa: cls::cohen_kappa(t, p, None, KappaWeights::None),
            cohen_kappa_quadratic: cls::cohen_kappa(t, p, None, KappaWeights::Quadratic),
            roc_auc: auc,
            roc_auc_ovr_weighted: multi_auc(|t, pr| {
                cls::roc_auc_ovr(t, pr, MultiAverage::Weighted)
            }),
            roc_auc_ovo: multi_auc(|t, pr| cls::roc_auc_ovo(t, pr, MultiAverage::Macro)),
        }
    }

    fn reset(&mut self) {
        self.y_true.clear();
        self.y_pred.clear();
        self.proba.clear();
    }
}

#[cfg(test)]
mod tests;
