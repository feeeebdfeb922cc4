//! Classification metrics with scikit-learn 1.3.2 semantics.
//!
//! Labels are class indices ([`Label`] = `usize`). Conventions (see also the crate docs):
//!
//! - **Default label set** (`labels: None`): the sorted union of the labels seen in `y_true` or
//!   `y_pred`, like sklearn. A class absent from both is left out of macro averages; pass
//!   `Some(&[0, 1, .., K-1])` to include it (it then contributes 0.0).
//! - **zero_division**: sklearn's default `"warn"` — a 0/0 precision, recall or F1 is **0.0**.
//! - **Undefined values are errors, never NaN**: where sklearn 1.3.2 raises (ROC AUC with one
//!   class in `y_true`) *or* returns NaN (Cohen's kappa when both raters use one single label,
//!   one-vs-one AUC with fewer than two classes present), these functions return
//!   `Err(ClsError::..)`.
//! - Empty inputs, length mismatches and malformed probabilities are `Err` as well.

pub mod auc;
pub mod prf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use auc::{
    roc_auc, roc_auc_bool, roc_auc_ovo, roc_auc_ovr, roc_auc_ovr_per_class, roc_curve,
    MultiAverage, Proba, RocCurve,
};
pub use prf::{
    f1, precision, precision_recall_f1, precision_recall_f1_per_class, recall, specificity,
    specificity_macro, specificity_per_class, Average, PerClass, Prf,
};

use crate::numeric::{np_mean, np_sum};

/// A class label (class index).
pub type Label = usize;

/// Invalid input or an undefined classification metric.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
pub enum ClsError {
    /// No samples.
    #[error("no samples")]
    Empty,
    /// `y_true` and another input have different lengths.
    #[error("length mismatch: y_true has {y_true} samples but {what} has {other}")]
    LengthMismatch {
        y_true: usize,
        what: &'static str,
        other: usize,
    },
    /// An empty or duplicated explicit label list.
    #[error("invalid label list: {0}")]
    BadLabels(&'static str),
    /// `confusion_matrix(labels=..)`: none of the labels occurs in `y_true`.
    #[error("at least one label specified must be in y_true")]
    NoLabelInYTrue,
    /// `average=binary` on data with more than two labels.
    #[error("target is multiclass ({0} labels) but average is binary; choose another average")]
    MulticlassWithBinaryAverage(usize),
    /// `average=binary` with a `pos_label` that is not among two present labels.
    #[error("pos_label={pos_label} is not a valid label: {present:?}")]
    PosLabelNotPresent {
        pos_label: Label,
        present: Vec<Label>,
    },
    /// ROC AUC is undefined: only one class is present in `y_true` (or in a one-vs-rest column).
    #[error("only one class present in y_true; ROC AUC is not defined in that case")]
    OnlyOneClass,
    /// Binary ROC AUC needs exactly two classes in `y_true`; use the multiclass functions.
    #[error("y_true has {0} classes; binary ROC AUC needs 2 (use roc_auc_ovr / roc_auc_ovo)")]
    NotBinary(usize),
    /// A score is NaN or infinite.
    #[error("score {0} is not finite")]
    NonFiniteScore(usize),
    /// A probability row does not sum to 1 (numpy `allclose`).
    #[error("probability row {0} does not sum to 1")]
    NotProbabilities(usize),
    /// A label is outside `0..n_classes`.
    #[error("label {label} is out of range for {n_classes} classes")]
    LabelOutOfRange { label: Label, n_classes: usize },
    /// Cohen's kappa is undefined (both raters use a single, common label: 0/0).
    #[error("Cohen's kappa is undefined: expected disagreement is zero (a single common label)")]
    KappaUndefined,
}

pub(crate) fn check_lengths(
    y_true: &[Label],
    other: usize,
    what: &'static str,
) -> Result<(), ClsError> {
    if y_true.is_empty() {
        return Err(ClsError::Empty);
    }
    if y_true.len() != other {
        return Err(ClsError::LengthMismatch {
            y_true: y_true.len(),
            what,
            other,
        });
    }
    Ok(())
}

/// Sorted union of the labels in `y_true` and `y_pred` (sklearn `unique_labels`).
pub fn unique_labels(y_true: &[Label], y_pred: &[Label]) -> Vec<Label> {
    let mut v: Vec<Label> = y_true.iter().chain(y_pred).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The labels to use: the explicit list (validated) or the sorted union.
pub(crate) fn resolve_labels(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
) -> Result<Vec<Label>, ClsError> {
    match labels {
        None => Ok(unique_labels(y_true, y_pred)),
        Some([]) => Err(ClsError::BadLabels("labels must not be empty")),
        Some(l) => {
            let mut s = l.to_vec();
            s.sort_unstable();
            s.dedup();
            if s.len() != l.len() {
                return Err(ClsError::BadLabels("labels must be unique"));
            }
            Ok(l.to_vec())
        }
    }
}

/// Position of `x` in `labels` (small lists: linear scan is fastest).
#[inline]
pub(crate) fn index_of(labels: &[Label], x: Label) -> Option<usize> {
    labels.iter().position(|&l| l == x)
}

/// A confusion matrix: rows are the true class, columns the predicted class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Row / column labels, in order.
    pub labels: Vec<Label>,
    /// Row-major `k x k` counts.
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// Number of classes `k`.
    pub fn n_classes(&self) -> usize {
        self.labels.len()
    }

    /// Count of samples with true label index `i` predicted as label index `j`.
    pub fn get(&self, i: usize, j: usize) -> u64 {
        self.counts[i * self.labels.len() + j]
    }

    /// The matrix as nested rows.
    pub fn rows(&self) -> Vec<Vec<u64>> {
        let k = self.labels.len().max(1);
        self.counts.chunks(k).map(<[u64]>::to_vec).collect()
    }

    /// Row sums (true counts per class).
    pub fn row_sums(&self) -> Vec<u64> {
        (0..self.n_classes())
            .map(|i| (0..self.n_classes()).map(|j| self.get(i, j)).sum())
            .collect()
    }

    /// Column sums (predicted counts per class).
    pub fn col_sums(&self) -> Vec<u64> {
        (0..self.n_classes())
            .map(|j| (0..self.n_classes()).map(|i| self.get(i, j)).sum())
            .collect()
    }
}

/// sklearn `confusion_matrix(y_true, y_pred, labels=labels)`. Samples whose true or predicted
/// label is not in an explicit `labels` list are ignored (as sklearn).
pub fn confusion_matrix(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
) -> Result<ConfusionMatrix, ClsError> {
    check_lengths(y_true, y_pred.len(), "y_pred")?;
    let labels = resolve_labels(y_true, y_pred, labels)?;
    if !y_true.iter().any(|t| labels.contains(t)) {
        return Err(ClsError::NoLabelInYTrue);
    }
    let k = labels.len();
    let mut counts = vec![0u64; k * k];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if let (Some(i), Some(j)) = (index_of(&labels, t), index_of(&labels, p)) {
            counts[i * k + j] += 1;
        }
    }
    Ok(ConfusionMatrix { labels, counts })
}

/// sklearn `accuracy_score`: the fraction of exact matches.
pub fn accuracy(y_true: &[Label], y_pred: &[Label]) -> Result<f64, ClsError> {
    check_lengths(y_true, y_pred.len(), "y_pred")?;
    let hits = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(hits as f64 / y_true.len() as f64)
}

/// sklearn `balanced_accuracy_score`: mean recall over the classes **present in `y_true`**
/// (classes seen only in `y_pred` are dropped, as sklearn does with a warning).
pub fn balanced_accuracy(y_true: &[Label], y_pred: &[Label]) -> Result<f64, ClsError> {
    let cm = confusion_matrix(y_true, y_pred, None)?;
    let rows = cm.row_sums();
    let per_class: Vec<f64> = (0..cm.n_classes())
        .filter(|&i| rows[i] > 0)
        .map(|i| cm.get(i, i) as f64 / rows[i] as f64)
        .collect();
    Ok(np_mean(&per_class))
}

/// Weighting of Cohen's kappa.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KappaWeights {
    /// Plain Cohen's kappa.
    #[default]
    None,
    /// Linear weights `|i - j|` (label positions, not values).
    Linear,
    /// Quadratic weights `(i - j)^2`.
    Quadratic,
}

/// sklearn `cohen_kappa_score(y1, y2, labels=labels, weights=weights)`.
///
/// `Err(ClsError::KappaUndefined)` where sklearn returns NaN (both raters use one common label).
pub fn cohen_kappa(
    y_true: &[Label],
    y_pred: &[Label],
    labels: Option<&[Label]>,
    weights: KappaWeights,
) -> Result<f64, ClsError> {
    let cm = confusion_matrix(y_true, y_pred, labels)?;
    let k = cm.n_classes();
    let sum0 = cm.col_sums();
    let sum1 = cm.row_sums();
    let total: u64 = sum0.iter().sum();
    let w = |i: usize, j: usize| -> u64 {
        let d = i.abs_diff(j) as u64;
        match weights {
            KappaWeights::None => u64::from(i != j),
            KappaWeights::Linear => d,
            KappaWeights::Quadratic => d * d,
        }
    };
    let mut num = 0u64;
    let mut den_terms = Vec::with_capacity(k * k);
    for (i, &s0) in sum0.iter().enumerate() {
        for (j, &s1) in sum1.iter().enumerate() {
            num += w(i, j) * cm.get(i, j);
            // numpy: expected = outer(sum0, sum1) / sum(sum0), then w * expected.
            let expected = (s0 * s1) as f64 / total as f64;
            den_terms.push(w(i, j) as f64 * expected);
        }
    }
    let den = np_sum(&den_terms);
    if den == 0.0 {
        return Err(ClsError::KappaUndefined);
    }
    Ok(1.0 - num as f64 / den)
}

#[cfg(test)]
mod tests;
