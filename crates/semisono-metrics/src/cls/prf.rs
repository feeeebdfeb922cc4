//! Precision, recall, F1 and specificity (sklearn 1.3.2 `precision_recall_fscore_support`).

use serde::{Deserialize, Serialize};

use super::{check_lengths, index_of, resolve_labels, unique_labels, ClsError, Label};
use crate::numeric::{np_mean, np_weighted_average};

/// How per-class scores are combined (sklearn's `average=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Average {
    /// Only the class `pos_label` (binary data only; an explicit label list is ignored).
    Binary {
        /// The positive class.
        pos_label: Label,
    },
    /// Unweighted mean over the labels.
    Macro,
    /// Mean weighted by support (true count) per label.
    Weighted,
    /// Global counts over the labels (equals accuracy with the default labels).
    Micro,
}

/// Precision, recall and F1 of one averaging.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1 score.
    pub f1: f64,
}

/// Per-class precision, recall, F1, support and specificity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerClass {
    /// Class labels, in order.
    pub labels: Vec<Label>,
    /// Precision per class (0.0 when nothing was predicted as the class).
    pub precision: Vec<f64>,
    /// Recall per class (0.0 when the class has no true sample).
    pub recall: Vec<f64>,
    /// F1 per class, `2PR/(P+R)` (0.0 when `P + R == 0`).
    pub f1: Vec<f64>,
    /// Specificity `TN/(TN+FP)` per class (0.0 for 0/0).
    pub specificity: Vec<f64>,
    /// True count per class.
    pub support: Vec<u64>,
}

/// Counts per label: true positives, predicted count, true count (sklearn's `multilabel_confusion_matrix`).
struct Sums {
    tp: Vec<u64>,
    pred: Vec<u64>,
    truth: Vec<u64>,
    n: u64,
}

fn sums(y_true: &[Label], y_pred: &[Label], labels: &[Label]) -> Sums {
    let k = labels.len();
    let mut s = Sums {
        tp: vec![0; k],
        pred: vec![0; k],
        truth: vec![0; k],
        n: y_true.len() as u64,
    };
    for (&t, &p) in y_true.iter().zip(y_pred) {
        let it = index_of(labels, t);
        if let Some(i) = it {
            s.truth[i] += 1;
        }
        if let Some(j) = index_of(labels, p) {
            s.pred[j] += 1;
            if t == p {
                s.tp[j] += 1;
            }
        }
    }
    s
}

/// sklearn `_prf_divide` with `zero_division="warn"`: 0/0 -> 0.0.
fn divide(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// sklearn 1.3.2's F-score with beta = 1: `(2 P) R / (P + R)`, zero_division when `P + R ≈ 0`
/// or `pred + true ≈ 0` (numpy `isclose`).
fn f_score(p: f64, r: f64, pred_plus_true: u64) -> f64 {
    let denom = p + r;
    let isclose0 = |x: f64| x.abs() <= 1e-8;
    if isclose0(denom) || pred_plus_true == 0 {
        0.0
    } else {
        2.0 * p * r / denom
    }
}

fn labels_for(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
    average: Average,
) -> Result<Vec<Label>, ClsError> {
    check_lengths(y_true, y_pred.len(), "y_pred")?;
    match average {
        Average::Binary { pos_label } => {
            let present = unique_labels(y_true, y_pred);
            if present.len() > 2 {
                return Err(ClsError::MulticlassWithBinaryAverage(present.len()));
            }
            if present.len() == 2 && !present.contains(&pos_label) {
                return Err(ClsError::PosLabelNotPresent { pos_label, present });
            }
            Ok(vec![pos_label])
        }
        _ => resolve_labels(y_true, y_pred, labels),
    }
}

/// sklearn `precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average)`.
pub fn precision_recall_f1(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
    average: Average,
) -> Result<Prf, ClsError> {
    let labels = labels_for(y_true, y_pred, labels, average)?;
    let mut s = sums(y_true, y_pred, &labels);
    if average == Average::Micro {
        s = Sums {
            tp: vec![s.tp.iter().sum()],
            pred: vec![s.pred.iter().sum()],
            truth: vec![s.truth.iter().sum()],
            n: s.n,
        };
    }
    let k = s.tp.len();
    let p: Vec<f64> = (0..k).map(|i| divide(s.tp[i], s.pred[i])).collect();
    let r: Vec<f64> = (0..k).map(|i| divide(s.tp[i], s.truth[i])).collect();
    let f: Vec<f64> = (0..k)
        .map(|i| f_score(p[i], r[i], s.pred[i] + s.truth[i]))
        .collect();
    let avg = |v: &[f64]| -> f64 {
        if average == Average::Weighted {
            let w: Vec<f64> = s.truth.iter().map(|&x| x as f64).collect();
            // All-zero weights: sklearn's `_nanaverage` falls back to the plain mean.
            np_weighted_average(v, &w).unwrap_or_else(|| np_mean(v))
        } else {
            np_mean(v)
        }
    };
    Ok(Prf {
        precision: avg(&p),
        recall: avg(&r),
        f1: avg(&f),
    })
}

/// sklearn `precision_score`.
pub fn precision(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
    average: Average,
) -> Result<f64, ClsError> {
    Ok(precision_recall_f1(y_true, y_pred, labels, average)?.precision)
}

/// sklearn `recall_score`.
pub fn recall(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
    average: Average,
) -> Result<f64, ClsError> {
    Ok(precision_recall_f1(y_true, y_pred, labels, average)?.recall)
}

/// sklearn `f1_score`.
pub fn f1(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
    average: Average,
) -> Result<f64, ClsError> {
    Ok(precision_recall_f1(y_true, y_pred, labels, average)?.f1)
}

/// sklearn `precision_recall_fscore_support(average=None)` plus one-vs-rest specificity.
pub fn precision_recall_f1_per_class(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
) -> Result<PerClass, ClsError> {
    check_lengths(y_true, y_pred.len(), "y_pred")?;
    let labels = resolve_labels(y_true, y_pred, labels)?;
    let s = sums(y_true, y_pred, &labels);
    let k = labels.len();
    let precision: Vec<f64> = (0..k).map(|i| divide(s.tp[i], s.pred[i])).collect();
    let recall: Vec<f64> = (0..k).map(|i| divide(s.tp[i], s.truth[i])).collect();
    let f1 = (0..k)
        .map(|i| f_score(precision[i], recall[i], s.pred[i] + s.truth[i]))
        .collect();
    let specificity = (0..k)
        .map(|i| {
            let fp = s.pred[i] - s.tp[i];
            let tn = s.n - s.tp[i] - fp - (s.truth[i] - s.tp[i]);
            divide(tn, tn + fp)
        })
        .collect();
    Ok(PerClass {
        labels,
        precision,
        recall,
        f1,
        specificity,
        support: s.truth,
    })
}

/// One-vs-rest specificity `TN / (TN + FP)` of class `pos_label` (0.0 for 0/0).
///
/// For binary data this equals sklearn's `recall_score(pos_label=<the other label>)`.
pub fn specificity(y_true: &[Label], y_pred: &[Label], pos_label: Label) -> Result<f64, ClsError> {
    Ok(precision_recall_f1_per_class(y_true, y_pred, Some(&[pos_label]))?.specificity[0])
}

/// One-vs-rest specificity per class (from sklearn's `multilabel_confusion_matrix`), 0/0 -> 0.0.
pub fn specificity_per_class(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
) -> Result<Vec<f64>, ClsError> {
    Ok(precision_recall_f1_per_class(y_true, y_pred, labels)?.specificity)
}

/// Plain mean of [`specificity_per_class`].
pub fn specificity_macro(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
) -> Result<f64, ClsError> {
    Ok(np_mean(&specificity_per_class(y_true, y_pred, labels)?))
}
