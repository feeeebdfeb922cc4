//! ROC curve and ROC AUC (sklearn 1.3.2 `roc_curve`, `roc_auc_score`).
//!
//! Binary AUC follows sklearn step by step: stable descending sort of the scores, one ROC point per
//! distinct score (so tied scores count 1/2, the Mann–Whitney U statistic), collinear points
//! dropped (`drop_intermediate=True`), then `np.trapz`. Multiclass: one-vs-rest (macro, weighted,
//! per class) and one-vs-one (Hand & Till 2001) on probability rows.
//!
//! **Undefined AUC is an error**: a `y_true` (or one-vs-rest column) with a single class gives
//! `Err(ClsError::OnlyOneClass)`, where sklearn 1.3.2 raises `ValueError`. One-vs-one with fewer
//! than two classes present is also `Err(OnlyOneClass)` (sklearn returns NaN for macro there).

use serde::{Deserialize, Serialize};

use super::{check_lengths, ClsError, Label};
use crate::numeric::{np_mean, np_sum, np_weighted_average};

/// Averaging of multiclass ROC AUC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MultiAverage {
    /// Unweighted mean over classes (OvR) or class pairs (OvO).
    Macro,
    /// Weighted by class prevalence (OvR) or pair prevalence (OvO).
    Weighted,
}

/// A ROC curve: false / true positive rates per threshold (decreasing thresholds, the first is +inf).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// False positive rates.
    pub fpr: Vec<f64>,
    /// True positive rates.
    pub tpr: Vec<f64>,
    /// Score thresholds (`+inf` first).
    pub thresholds: Vec<f64>,
}

/// Row-major class probabilities: `n_samples x n_classes`, each row summing to 1.
#[derive(Debug, Clone, Copy)]
pub struct Proba<'a> {
    data: &'a [f64],
    n_classes: usize,
}

impl<'a> Proba<'a> {
    /// Wraps row-major probabilities. Fails if the length is not a multiple of `n_classes`, a value
    /// is not finite, or a row does not sum to 1 (numpy `allclose(1, row_sum)`).
    pub fn new(data: &'a [f64], n_classes: usize) -> Result<Self, ClsError> {
        if n_classes == 0 || !data.len().is_multiple_of(n_classes) {
            return Err(ClsError::BadLabels(
                "probability length is not a multiple of n_classes",
            ));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(ClsError::NonFiniteScore(i));
        }
        for (r, row) in data.chunks(n_classes).enumerate() {
            let s = np_sum(row);
            if (1.0 - s).abs() > 1e-8 + 1e-5 * s.abs() {
                return Err(ClsError::NotProbabilities(r));
            }
        }
        Ok(Self { data, n_classes })
    }

    /// Number of classes (columns).
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Number of samples (rows).
    pub fn n_samples(&self) -> usize {
        self.data.len() / self.n_classes
    }

    /// Probability of class `c` for sample `i`.
    #[inline]
    pub fn get(&self, i: usize, c: usize) -> f64 {
        self.data[i * self.n_classes + c]
    }

    fn column(&self, c: usize) -> Vec<f64> {
        (0..self.n_samples()).map(|i| self.get(i, c)).collect()
    }
}

/// sklearn `_binary_clf_curve` + `roc_curve(drop_intermediate=True)`: `y_true[i]` marks a positive.
pub fn roc_curve(y_true: &[bool], y_score: &[f64]) -> Result<RocCurve, ClsError> {
    if y_true.is_empty() {
        return Err(ClsError::Empty);
    }
    if y_true.len() != y_score.len() {
        return Err(ClsError::LengthMismatch {
            y_true: y_true.len(),
            what: "y_score",
            other: y_score.len(),
        });
    }
    if let Some(i) = y_score.iter().position(|v| !v.is_finite()) {
        return Err(ClsError::NonFiniteScore(i));
    }
    // np.argsort(kind="mergesort")[::-1]: stable ascending sort, then reversed.
    let mut order: Vec<usize> = (0..y_score.len()).collect();
    order.sort_by(|&a, &b| y_score[a].total_cmp(&y_score[b]));
    order.reverse();
    let (mut fps, mut tps, mut thr) = (Vec::new(), Vec::new(), Vec::new());
    let mut tp = 0.0f64;
    let n = order.len();
    for (pos, &i) in order.iter().enumerate() {
        if y_true[i] {
            tp += 1.0;
        }
        // A threshold at the last index of each run of equal scores.
        if pos + 1 == n || y_score[order[pos + 1]] != y_score[i] {
            tps.push(tp);
            fps.push((1 + pos) as f64 - tp);
            thr.push(y_score[i]);
        }
    }
    // drop_intermediate: keep the ends and the points where the second difference is non-zero.
    if fps.len() > 2 {
        let keep: Vec<usize> = (0..fps.len())
            .filter(|&i| {
                i == 0 || i + 1 == fps.len() || {
                    let d2 = |v: &[f64]| (v[i + 1] - v[i]) - (v[i] - v[i - 1]);
                    d2(&fps) != 0.0 || d2(&tps) != 0.0
                }
            })
            .collect();
        fps = keep.iter().map(|&i| fps[i]).collect();
        tps = keep.iter().map(|&i| tps[i]).collect();
        thr = keep.iter().map(|&i| thr[i]).collect();
    }
    fps.insert(0, 0.0);
    tps.insert(0, 0.0);
    thr.insert(0, f64::INFINITY);
    let (fmax, tmax) = (*fps.last().unwrap(), *tps.last().unwrap());
    let rate = |v: &[f64], m: f64| -> Vec<f64> {
        v.iter()
            .map(|&x| if m <= 0.0 { f64::NAN } else { x / m })
            .collect()
    };
    Ok(RocCurve {
        fpr: rate(&fps, fmax),
        tpr: rate(&tps, tmax),
        thresholds: thr,
    })
}

/// `np.trapz(y, x)`: `sum(diff(x) * (y[1:] + y[:-1]) / 2)`.
fn trapz(y: &[f64], x: &[f64]) -> f64 {
    let terms: Vec<f64> = (1..x.len())
        .map(|i| (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0)
        .collect();
    np_sum(&terms)
}

/// sklearn `_binary_roc_auc_score`: `y_true[i]` marks a positive; `Err(OnlyOneClass)` unless both
/// classes occur.
pub fn roc_auc_bool(y_true: &[bool], y_score: &[f64]) -> Result<f64, ClsError> {
    let pos = y_true.iter().filter(|&&t| t).count();
    if !y_true.is_empty() && (pos == 0 || pos == y_true.len()) {
        return Err(ClsError::OnlyOneClass);
    }
    let c = roc_curve(y_true, y_score)?;
    // fpr is non-decreasing, so sklearn's `auc` keeps direction = 1.
    Ok(trapz(&c.tpr, &c.fpr))
}

/// sklearn `roc_auc_score(y_true, y_score)` for binary labels: the positive class is the larger
/// of the two labels in `y_true`; `y_score` is its score. `Err(OnlyOneClass)` for a single class,
/// `Err(NotBinary)` for more than two.
pub fn roc_auc(y_true: &[Label], y_score: &[f64]) -> Result<f64, ClsError> {
    check_lengths(y_true, y_score.len(), "y_score")?;
    let mut classes = y_true.to_vec();
    classes.sort_unstable();
    classes.dedup();
    match classes.len() {
        1 => Err(ClsError::OnlyOneClass),
        2 => {
            let t: Vec<bool> = y_true.iter().map(|&y| y == classes[1]).collect();
            roc_auc_bool(&t, y_score)
        }
        k => Err(ClsError::NotBinary(k)),
    }
}

fn check_multiclass(y_true: &[Label], proba: &Proba<'_>) -> Result<(), ClsError> {
    check_lengths(y_true, proba.n_samples(), "y_proba")?;
    let k = proba.n_classes();
    match y_true.iter().find(|&&y| y >= k) {
        Some(&label) => Err(ClsError::LabelOutOfRange {
            label,
            n_classes: k,
        }),
        None => Ok(()),
    }
}

/// One-vs-rest AUC of every class `c` in `0..n_classes` (`y_true == c` against column `c`).
/// The outer `Err` is invalid input; an inner `Err(OnlyOneClass)` marks a class whose column has a
/// single class (absent from `y_true`, or the only class present).
pub fn roc_auc_ovr_per_class(
    y_true: &[Label],
    proba: Proba<'_>,
) -> Result<Vec<Result<f64, ClsError>>, ClsError> {
    check_multiclass(y_true, &proba)?;
    Ok((0..proba.n_classes())
        .map(|c| {
            let t: Vec<bool> = y_true.iter().map(|&y| y == c).collect();
            roc_auc_bool(&t, &proba.column(c))
        })
        .collect())
}

/// sklearn `roc_auc_score(multi_class="ovr", labels=range(K), average=..)`: macro = plain mean of
/// the per-class AUCs, weighted = weighted by class prevalence in `y_true`. Any undefined class
/// makes the whole score `Err(OnlyOneClass)` (sklearn 1.3.2 raises).
pub fn roc_auc_ovr(
    y_true: &[Label],
    proba: Proba<'_>,
    average: MultiAverage,
) -> Result<f64, ClsError> {
    let scores: Vec<f64> = roc_auc_ovr_per_class(y_true, proba)?
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(match average {
        MultiAverage::Macro => np_mean(&scores),
        MultiAverage::Weighted => {
            let w: Vec<f64> = (0..proba.n_classes())
                .map(|c| y_true.iter().filter(|&&y| y == c).count() as f64)
                .collect();
            np_weighted_average(&scores, &w).unwrap_or(0.0)
        }
    })
}

/// sklearn `roc_auc_score(multi_class="ovo", labels=range(K), average=..)` (Hand & Till 2001):
/// for each pair of classes present in `y_true`, the mean of the two directed AUCs on the samples
/// of those two classes; macro = plain mean over pairs, weighted = weighted by pair prevalence.
/// `Err(OnlyOneClass)` if fewer than two classes are present.
pub fn roc_auc_ovo(
    y_true: &[Label],
    proba: Proba<'_>,
    average: MultiAverage,
) -> Result<f64, ClsError> {
    check_multiclass(y_true, &proba)?;
    let mut present = y_true.to_vec();
    present.sort_unstable();
    present.dedup();
    if present.len() < 2 {
        return Err(ClsError::OnlyOneClass);
    }
    let n = y_true.len() as f64;
    let (mut pair_scores, mut prevalence) = (Vec::new(), Vec::new());
    for (ai, &a) in present.iter().enumerate() {
        for &b in &present[ai + 1..] {
            let idx: Vec<usize> = (0..y_true.len())
                .filter(|&i| y_true[i] == a || y_true[i] == b)
                .collect();
            let a_true: Vec<bool> = idx.iter().map(|&i| y_true[i] == a).collect();
            let b_true: Vec<bool> = idx.iter().map(|&i| y_true[i] == b).collect();
            let sa: Vec<f64> = idx.iter().map(|&i| proba.get(i, a)).collect();
            let sb: Vec<f64> = idx.iter().map(|&i| proba.get(i, b)).collect();
            let auc_a = roc_auc_bool(&a_true, &sa)?;
            let auc_b = roc_auc_bool(&b_true, &sb)?;
            pair_scores.push((auc_a + auc_b) / 2.0);
            prevalence.push(idx.len() as f64 / n);
        }
    }
    Ok(match average {
        MultiAverage::Macro => np_mean(&pair_scores),
        MultiAverage::Weighted => {
            np_weighted_average(&pair_scores, &prevalence).ok_or(ClsError::OnlyOneClass)?
        }
    })
}
