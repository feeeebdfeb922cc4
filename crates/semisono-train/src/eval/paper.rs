//! The Hermes code's evaluation protocol (spec §9), for comparison with its tables: masks and
//! predictions at the network's input size (224² in the paper), Dice per class computed per batch
//! with counts pooled over the batch's pixels, `(2·|P∩G| + 1e-5) / (|P| + |G| + 1e-5)`, averaged
//! over batches with equal weight (a smaller last batch counts as much as a full one; a batch with
//! no lesion in prediction and truth scores 1); IoU per class pooled over the whole set; accuracy
//! per batch averaged over batches. All in percent, as the paper prints them.

use serde::Serialize;

/// Figures of the `paper` protocol, in percent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PaperMetrics {
    /// Batches that held at least one image with a mask (Dice) / with a class label (accuracy).
    pub seg_batches: usize,
    pub cls_batches: usize,
    pub tumour_dice: Option<f64>,
    pub background_dice: Option<f64>,
    /// Mean of the two classes ("mDice").
    pub mean_dice: Option<f64>,
    pub tumour_iou: Option<f64>,
    pub background_iou: Option<f64>,
    pub mean_iou: Option<f64>,
    pub accuracy: Option<f64>,
}

/// Running sums over batches.
#[derive(Clone, Debug, Default)]
pub struct PaperAccumulator {
    dice_sum: [f64; 2],
    seg_batches: usize,
    intersection: [u64; 2],
    union: [u64; 2],
    accuracy_sum: f64,
    cls_batches: usize,
}

const SMOOTH: f64 = 1e-5;

impl PaperAccumulator {
    /// One batch of segmentations: `pred` and `truth` hold 0 (background) or 1 (lesion) per pixel,
    /// for the images of the batch that have a mask.
    pub fn add_seg_batch(&mut self, pred: &[u8], truth: &[u8]) {
        assert_eq!(pred.len(), truth.len(), "prediction and truth of one batch");
        if pred.is_empty() {
            return;
        }
        let mut inter = [0u64; 2];
        let mut n_pred = [0u64; 2];
        let mut n_truth = [0u64; 2];
        for (&p, &t) in pred.iter().zip(truth) {
            let (p, t) = (usize::from(p > 0), usize::from(t > 0));
            n_pred[p] += 1;
            n_truth[t] += 1;
            if p == t {
                inter[p] += 1;
            }
        }
        for c in 0..2 {
            self.dice_sum[c] +=
                (2.0 * inter[c] as f64 + SMOOTH) / ((n_pred[c] + n_truth[c]) as f64 + SMOOTH);
            self.intersection[c] += inter[c];
            self.union[c] += n_pred[c] + n_truth[c] - inter[c];
        }
        self.seg_batches += 1;
    }

    /// One batch of classifications: (true, predicted) of the images with a label.
    pub fn add_cls_batch(&mut self, pairs: &[(u32, u32)]) {
        if pairs.is_empty() {
            return;
        }
        let correct = pairs.iter().filter(|(t, p)| t == p).count();
        self.accuracy_sum += correct as f64 / pairs.len() as f64;
        self.cls_batches += 1;
    }

    pub fn finish(&self) -> PaperMetrics {
        let seg = self.seg_batches > 0;
        let dice = |c: usize| seg.then(|| 100.0 * self.dice_sum[c] / self.seg_batches as f64);
        let iou = |c: usize| {
            (self.union[c] > 0).then(|| 100.0 * self.intersection[c] as f64 / self.union[c] as f64)
        };
        let mean = |a: Option<f64>, b: Option<f64>| Some((a? + b?) / 2.0);
        PaperMetrics {
            seg_batches: self.seg_batches,
            cls_batches: self.cls_batches,
            tumour_dice: dice(1),
            background_dice: dice(0),
            mean_dice: mean(dice(0), dice(1)),
            tumour_iou: iou(1),
            background_iou: iou(0),
            mean_iou: mean(iou(0), iou(1)),
            accuracy: (self.cls_batches > 0)
                .then(|| 100.0 * self.accuracy_sum / self.cls_batches as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_dice_is_averaged_over_batches_not_pixels() {
        let mut acc = PaperAccumulator::default();
        // Batch 1: 4 pixels, perfect lesion. Batch 2: lesion fully missed.
        acc.add_seg_batch(&[1, 1, 0, 0], &[1, 1, 0, 0]);
        acc.add_seg_batch(&[0, 0], &[1, 0]);
        let m = acc.finish();
        let missed = SMOOTH / (1.0 + SMOOTH);
        assert!((m.tumour_dice.unwrap() - 100.0 * (1.0 + missed) / 2.0).abs() < 1e-9);
        // Background of batch 2: 2·1 / (2 + 1).
        let bg2 = (2.0 + SMOOTH) / (3.0 + SMOOTH);
        assert!((m.background_dice.unwrap() - 100.0 * (1.0 + bg2) / 2.0).abs() < 1e-9);
        // IoU pooled over all 6 pixels: lesion 2 / 3, background 3 / 4.
        assert!((m.tumour_iou.unwrap() - 100.0 * 2.0 / 3.0).abs() < 1e-9);
        assert!((m.background_iou.unwrap() - 75.0).abs() < 1e-9);
    }

    #[test]
    fn lesion_free_batch_scores_one_and_accuracy_is_per_batch() {
        let mut acc = PaperAccumulator::default();
        acc.add_seg_batch(&[0, 0, 0], &[0, 0, 0]);
        assert_eq!(acc.finish().tumour_dice, Some(100.0));
        acc.add_cls_batch(&[(0, 0), (1, 1), (1, 0), (0, 0)]);
        acc.add_cls_batch(&[(1, 0)]);
        assert!((acc.finish().accuracy.unwrap() - 100.0 * (0.75 + 0.0) / 2.0).abs() < 1e-12);
    }
}
