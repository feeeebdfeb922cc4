//! Overlap metrics from pixel counts, with MedPy 0.5.2's (numpy 1.26) fallbacks for 0/0.
//!
//! | metric | formula | 0/0 case | value |
//! |---|---|---|---|
//! | Dice | `2 tp / (|A| + |B|)` | both masks empty | **1.0** |
//! | Jaccard | `tp / |A ∪ B|` | both masks empty | **1.0** |
//! | precision | `tp / (tp + fp)` | empty result | **0.0** |
//! | recall = sensitivity | `tp / (tp + fn)` | empty reference | **0.0** |
//! | specificity = TNR | `tn / (tn + fp)` | reference covers every pixel | **0.0** |
//!
//! These are never "undefined": they always return a number, exactly as MedPy 0.5.2 does on the
//! numpy version Hermes pins (on numpy >= 2.3 MedPy returns NaN instead, except for Jaccard).

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use super::{check_same_shape, Mask, MaskError, MaskPixel};

/// Pixel confusion counts of a (result, reference) pair; `A` = result, `B` = reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionCounts {
    /// Foreground in both.
    pub tp: u64,
    /// Foreground in the result only.
    pub fp: u64,
    /// Foreground in the reference only.
    pub fn_: u64,
    /// Background in both.
    pub tn: u64,
}

impl ConfusionCounts {
    /// Counts the four cells of a mask pair.
    pub fn from_masks<T: MaskPixel, U: MaskPixel>(
        result: Mask<'_, T>,
        reference: Mask<'_, U>,
    ) -> Result<Self, MaskError> {
        check_same_shape(&result, &reference)?;
        let mut c = Self::default();
        for (&a, &b) in result.data().iter().zip(reference.data()) {
            c.add_pixel(a.is_fg(), b.is_fg());
        }
        Ok(c)
    }

    #[inline]
    pub(crate) fn add_pixel(&mut self, a: bool, b: bool) {
        match (a, b) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// `|A|`, the result's foreground size.
    pub fn result_size(&self) -> u64 {
        self.tp + self.fp
    }

    /// `|B|`, the reference's foreground size.
    pub fn reference_size(&self) -> u64 {
        self.tp + self.fn_
    }

    /// `|A ∪ B|`.
    pub fn union(&self) -> u64 {
        self.tp + self.fp + self.fn_
    }

    /// All pixels.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// MedPy `dc`: `2 tp / (|A| + |B|)`; **1.0** when both masks are empty.
    pub fn dice(&self) -> f64 {
        let denom = self.result_size() + self.reference_size();
        if denom == 0 {
            return 1.0;
        }
        2.0 * self.tp as f64 / denom as f64
    }

    /// MedPy `jc`: `tp / |A ∪ B|`; **1.0** when both masks are empty.
    pub fn jaccard(&self) -> f64 {
        let union = self.union();
        if union == 0 {
            return 1.0;
        }
        self.tp as f64 / union as f64
    }

    /// MedPy `precision`: `tp / (tp + fp)`; **0.0** when the result is empty.
    pub fn precision(&self) -> f64 {
        ratio_or_zero(self.tp, self.tp + self.fp)
    }

    /// MedPy `recall` / `sensitivity`: `tp / (tp + fn)`; **0.0** when the reference is empty.
    pub fn recall(&self) -> f64 {
        ratio_or_zero(self.tp, self.tp + self.fn_)
    }

    /// MedPy `specificity` / `true_negative_rate`: `tn / (tn + fp)`; **0.0** when the reference
    /// covers every pixel.
    pub fn specificity(&self) -> f64 {
        ratio_or_zero(self.tn, self.tn + self.fp)
    }

    /// Hermes' smoothed Dice `(2 tp + 1e-5) / (|A| + |B| + 1e-5)` (its `calc_dice_score`):
    /// 1.0 for two empty masks, about 0 for an empty mask against a non-empty one.
    pub fn smoothed_dice(&self) -> f64 {
        const SMOOTH: f64 = 1e-5;
        (2.0 * self.tp as f64 + SMOOTH)
            / ((self.result_size() + self.reference_size()) as f64 + SMOOTH)
    }
}

fn ratio_or_zero(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Add for ConfusionCounts {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            tp: self.tp + o.tp,
            fp: self.fp + o.fp,
            fn_: self.fn_ + o.fn_,
            tn: self.tn + o.tn,
        }
    }
}

impl AddAssign for ConfusionCounts {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

/// The overlap metrics of one pair (see the module docs for the 0/0 conventions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverlapMetrics {
    /// Dice coefficient (MedPy `dc`).
    pub dice: f64,
    /// Jaccard index / IoU (MedPy `jc`).
    pub jaccard: f64,
    /// Precision (positive predictive value).
    pub precision: f64,
    /// Recall = sensitivity = true positive rate.
    pub recall: f64,
    /// Specificity = true negative rate.
    pub specificity: f64,
}

impl OverlapMetrics {
    /// All overlap metrics from counts.
    pub fn from_counts(c: &ConfusionCounts) -> Self {
        Self {
            dice: c.dice(),
            jaccard: c.jaccard(),
            precision: c.precision(),
            recall: c.recall(),
            specificity: c.specificity(),
        }
    }

    /// Same as `recall`.
    pub fn sensitivity(&self) -> f64 {
        self.recall
    }

    /// Same as `specificity`.
    pub fn true_negative_rate(&self) -> f64 {
        self.specificity
    }
}

/// Overlap metrics of a mask pair (`result` = prediction, `reference` = ground truth).
pub fn overlap_metrics<T: MaskPixel, U: MaskPixel>(
    result: Mask<'_, T>,
    reference: Mask<'_, U>,
) -> Result<OverlapMetrics, MaskError> {
    Ok(OverlapMetrics::from_counts(&ConfusionCounts::from_masks(
        result, reference,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(a: &[u8], b: &[u8]) -> ConfusionCounts {
        let n = a.len();
        ConfusionCounts::from_masks(Mask::new(a, 1, n).unwrap(), Mask::new(b, 1, n).unwrap())
            .unwrap()
    }

    #[test]
    fn basic_values() {
        let c = counts(&[1, 1, 0, 0, 1], &[1, 0, 1, 0, 1]);
        assert_eq!((c.tp, c.fp, c.fn_, c.tn), (2, 1, 1, 1));
        assert_eq!(c.dice(), 4.0 / 6.0);
        assert_eq!(c.jaccard(), 0.5);
        assert_eq!(c.precision(), 2.0 / 3.0);
        assert_eq!(c.recall(), 2.0 / 3.0);
        assert_eq!(c.specificity(), 0.5);
    }

    #[test]
    fn empty_fallbacks() {
        let both = counts(&[0, 0], &[0, 0]);
        assert_eq!((both.dice(), both.jaccard()), (1.0, 1.0));
        assert_eq!(
            (both.precision(), both.recall(), both.specificity()),
            (0.0, 0.0, 1.0)
        );
        assert_eq!(both.smoothed_dice(), 1.0);
        let res_empty = counts(&[0, 0], &[1, 0]);
        assert_eq!(
            (res_empty.dice(), res_empty.jaccard(), res_empty.precision()),
            (0.0, 0.0, 0.0)
        );
        assert!(res_empty.smoothed_dice() > 0.0 && res_empty.smoothed_dice() < 1e-5);
        let full_ref = counts(&[1, 0], &[1, 1]);
        assert_eq!(full_ref.specificity(), 0.0);
        let full_both = counts(&[1, 1], &[1, 1]);
        assert_eq!((full_both.dice(), full_both.specificity()), (1.0, 0.0));
    }

    #[test]
    fn pooled_counts_give_aggregate_dice() {
        let a = counts(&[1, 1, 0, 0], &[1, 0, 0, 0]);
        let b = counts(&[0, 0, 0, 0], &[1, 1, 1, 0]);
        let s = a + b;
        assert_eq!(s.dice(), 2.0 / 6.0);
        assert_eq!(s.jaccard(), 1.0 / 5.0);
    }
}
