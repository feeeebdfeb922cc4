//! Pixel-level contrastive loss with hard-anchor sampling (ContrastiveSeg form; spec §5.6, §7).
//!
//! Two stages:
//! 1. [`PixelContrastLoss::plan_anchors`] chooses, per (image, class), `n_view` pixels, half "hard"
//!    (label ≠ prediction) and half "easy", exactly with ContrastiveSeg's counting rules. The choice
//!    within each subset is uniform without replacement and **deterministic given the labels,
//!    predictions and a seed** (a SplitMix64 stream; PyTorch's `randperm` cannot be reproduced).
//! 2. [`PixelContrastLoss::per_row`] is ContrastiveSeg's `_contrastive`: every sampled pixel is an
//!    anchor and a contrast; positives are same-class rows other than self, negatives other-class
//!    rows, and the denominator holds **one** positive plus all negatives:
//!    `ℓ_a = −(T/T_base) · mean_{p∈P(a)} [s_ap − log(exp s_ap + Σ_{n∈N(a)} exp s_an)]`.
//!
//! **Memory bank** ([`PixelContrastLoss::forward_with_bank`], paper Fig. 2, spec §5.6 and §13):
//! the same anchors, but the contrast set is the bank `(b_j, c_j)` (UGPCL's segment queue,
//! `contrast_count = 1`, background included) instead of the batch:
//! `ℓ_a = −(T/T_base) · mean_{j: c_j = y_a} [s_aj − log(exp s_aj + Σ_{k: c_k ≠ y_a} exp s_ak)]`.
//! An anchor whose class has no bank entry contributes 0 (UGPCL's `+1e-5` in the positive count
//! does the same); the mean runs over all anchors. An empty bank falls back to the batch form.
//!
//! Edge cases (no NaN anywhere): a single class in the sample (no negatives) gives exactly 0; a row
//! with no positive gives 0; no valid (image, class) pair gives a zero loss that is still attached to
//! the embeddings' graph. The denominators are computed as stable log-sum-exps, so un-normalised
//! features with large logits do not overflow or underflow in f32.

use burn::config::Config;
use burn::tensor::{Int, Tensor, TensorData};

use super::memory_bank::MemoryBank;
use crate::ops::{
    cross_label_mask, int_tensor_to_vec, log_add_exp, masked_logsumexp, off_diagonal_mask,
    same_label_mask,
};

/// Configuration of [`PixelContrastLoss`] (defaults: Hermes / ContrastiveSeg).
#[derive(Config, Debug)]
pub struct PixelContrastConfig {
    /// Temperature T.
    #[config(default = 0.07)]
    pub temperature: f64,
    /// Base temperature: the loss is scaled by `T / base_temperature`.
    #[config(default = 0.07)]
    pub base_temperature: f64,
    /// Upper bound on the total number of sampled pixels (M).
    #[config(default = 1024)]
    pub max_samples: usize,
    /// Upper bound on the pixels per (image, class) (V); a class needs **more** than this many
    /// labelled pixels in an image to be sampled there.
    #[config(default = 100)]
    pub max_views: usize,
    /// Label value of ignored pixels.
    #[config(default = -1)]
    pub ignore_label: i64,
}

impl PixelContrastConfig {
    /// Builds the loss.
    pub fn init(&self) -> PixelContrastLoss {
        assert!(
            self.temperature > 0.0 && self.base_temperature > 0.0,
            "PixelContrastConfig: temperatures must be > 0"
        );
        assert!(
            self.max_views > 0 && self.max_samples > 0,
            "PixelContrastConfig: max_views and max_samples must be > 0"
        );
        PixelContrastLoss {
            config: self.clone(),
        }
    }
}

/// The pixel contrastive loss.
#[derive(Debug, Clone)]
pub struct PixelContrastLoss {
    config: PixelContrastConfig,
}

/// Which pixels [`PixelContrastLoss::plan_anchors`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorPlan {
    /// Views per (image, class) pair.
    pub n_view: usize,
    /// Class of each pair, in order (images in order, classes ascending within an image).
    pub classes: Vec<i64>,
    /// `classes.len() · n_view` indices into the flattened `[B·h·w]` pixels, pair-major; within a
    /// pair the hard pixels come first, then the easy ones (as ContrastiveSeg concatenates them).
    pub pixel_indices: Vec<usize>,
}

/// `n_view = min(⌊max_samples / pairs⌋, max_views)` (spec §5.6 step 2).
pub fn anchor_views(pairs: usize, max_samples: usize, max_views: usize) -> usize {
    if pairs == 0 {
        return 0;
    }
    (max_samples / pairs).min(max_views)
}

/// How many hard and easy pixels to keep out of `n_hard` and `n_easy` (spec §5.6 step 3).
///
/// ContrastiveSeg compares with `n_view / 2` in real division, hence `2·n ≥ n_view`. The counts are
/// capped by what exists; a valid pair always has `n_hard + n_easy > max_views ≥ n_view`, so the cap
/// only matters for direct callers.
pub fn hard_easy_counts(n_hard: usize, n_easy: usize, n_view: usize) -> (usize, usize) {
    let at_least_half = |n: usize| 2 * n >= n_view;
    let (hard, easy) = if at_least_half(n_hard) && at_least_half(n_easy) {
        (n_view / 2, n_view - n_view / 2)
    } else if at_least_half(n_hard) {
        (n_view.saturating_sub(n_easy), n_easy)
    } else {
        (n_hard, n_view.saturating_sub(n_hard))
    };
    (hard.min(n_hard), easy.min(n_easy))
}

/// Downsamples a label map `[B, H, W]` to `size` with PyTorch's legacy `nearest` rule
/// (source index `⌊i · in/out⌋` in f32, so 224 → 28 picks rows 0, 8, 16, ...).
pub fn nearest_downsample_labels(labels: Tensor<3, Int>, size: [usize; 2]) -> Tensor<3, Int> {
    let [_, h, w] = labels.dims();
    let device = labels.device();
    let index = |in_size: usize, out_size: usize| -> Tensor<1, Int> {
        let idx: Vec<i64> = (0..out_size)
            .map(|i| nearest_source_index(i, in_size, out_size) as i64)
            .collect();
        Tensor::from_data(TensorData::new(idx, [out_size]), &device)
    };
    labels
        .select(1, index(h, size[0]))
        .select(2, index(w, size[1]))
}

fn nearest_source_index(dst: usize, in_size: usize, out_size: usize) -> usize {
    if in_size == out_size {
        dst
    } else if out_size == 2 * in_size {
        dst >> 1
    } else {
        // PyTorch computes the scale and the product in f32.
        let scale = in_size as f32 / out_size as f32;
        ((dst as f32 * scale).floor() as usize).min(in_size - 1)
    }
}

impl PixelContrastLoss {
    /// The configuration this loss was built from.
    pub fn config(&self) -> &PixelContrastConfig {
        &self.config
    }

    /// ContrastiveSeg `_contrastive`: loss of every row, shape `[A·V]`, rows view-major
    /// (`r = v·A + a`). `features`: `[A, V, D]` (A anchors = (image, class) pairs, V views);
    /// `labels`: `[A]`.
    pub fn per_row(&self, features: Tensor<3>, labels: Tensor<1, Int>) -> Tensor<1> {
        let [anchors, views, dim] = features.dims();
        let n = anchors * views;
        let device = features.device();
        let contrast = features.swap_dims(0, 1).reshape([n, dim]);
        let sim = contrast
            .clone()
            .matmul(contrast.transpose())
            .div_scalar(self.config.temperature);
        let logits = sim.clone() - sim.detach().max_dim(1);

        let same = same_label_mask(labels.repeat_dim(0, views));
        let positives = same.clone().bool_and(off_diagonal_mask(n, &device));
        let negatives = same.bool_not();
        let no_negative = negatives.clone().any_dim(1).bool_not().expand([n, n]);

        // log(exp(s_ap) + Σ_n exp(s_an)) = logaddexp(s_ap, logsumexp_n s_an), stable for any scale.
        let log_neg = masked_logsumexp(logits.clone(), negatives).expand([n, n]);
        let log_prob = (logits.clone() - log_add_exp(logits, log_neg))
            // Without negatives the term is log(exp s / exp s) = 0 exactly.
            .mask_fill(no_negative, 0.0);

        let positives = positives.float();
        let pos_count = positives.clone().sum_dim(1).clamp_min(1.0);
        ((positives * log_prob).sum_dim(1) / pos_count)
            .mul_scalar(-self.config.temperature / self.config.base_temperature)
            .reshape([n])
    }

    /// The loss of each anchor row of `anchors` `[N, D]` (classes `anchor_labels` `[N]`) against
    /// a fixed contrast set `contrast` `[M, D]` (classes `contrast_labels` `[M]`), shape `[N]`:
    /// the memory-bank form (module documentation).
    pub fn per_anchor_against(
        &self,
        anchors: Tensor<2>,
        anchor_labels: Tensor<1, Int>,
        contrast: Tensor<2>,
        contrast_labels: Tensor<1, Int>,
    ) -> Tensor<1> {
        let [n, _] = anchors.dims();
        let [m, _] = contrast.dims();
        let sim = anchors
            .matmul(contrast.transpose())
            .div_scalar(self.config.temperature);
        let logits = sim.clone() - sim.detach().max_dim(1);
        let positives = cross_label_mask(anchor_labels, contrast_labels);
        let negatives = positives.clone().bool_not();
        let no_negative = negatives.clone().any_dim(1).bool_not().expand([n, m]);
        let log_neg = masked_logsumexp(logits.clone(), negatives).expand([n, m]);
        let log_prob = (logits.clone() - log_add_exp(logits, log_neg)).mask_fill(no_negative, 0.0);
        let positives = positives.float();
        let pos_count = positives.clone().sum_dim(1).clamp_min(1.0);
        ((positives * log_prob).sum_dim(1) / pos_count)
            .mul_scalar(-self.config.temperature / self.config.base_temperature)
            .reshape([n])
    }

    /// Mean of [`per_row`](Self::per_row) over all rows.
    pub fn contrastive(&self, features: Tensor<3>, labels: Tensor<1, Int>) -> Tensor<1> {
        self.per_row(features, labels).mean()
    }

    /// Chooses the anchors from flattened `labels` and `predictions` (`batch` images of equal size,
    /// row-major). `None` when no (image, class) pair is valid, or when there are so many pairs that
    /// `n_view` would be 0 (more than `max_samples` pairs).
    pub fn plan_anchors(
        &self,
        labels: &[i64],
        predictions: &[i64],
        batch: usize,
        seed: u64,
    ) -> Option<AnchorPlan> {
        assert_eq!(
            labels.len(),
            predictions.len(),
            "plan_anchors: labels and predictions differ in size"
        );
        assert!(
            batch > 0 && labels.len().is_multiple_of(batch),
            "plan_anchors: {} pixels do not split into {batch} images",
            labels.len()
        );
        let pixels = labels.len() / batch;
        let cfg = &self.config;

        // (image, class) pairs whose class has more than max_views pixels in that image.
        let mut pairs = Vec::new();
        for b in 0..batch {
            let image = &labels[b * pixels..(b + 1) * pixels];
            let mut classes: Vec<i64> = image
                .iter()
                .copied()
                .filter(|&c| c != cfg.ignore_label)
                .collect();
            classes.sort_unstable();
            classes.dedup();
            for c in classes {
                if image.iter().filter(|&&l| l == c).count() > cfg.max_views {
                    pairs.push((b, c));
                }
            }
        }
        let n_view = anchor_views(pairs.len(), cfg.max_samples, cfg.max_views);
        if n_view == 0 {
            return None;
        }

        let mut rng = SplitMix64::new(seed);
        let mut pixel_indices = Vec::with_capacity(pairs.len() * n_view);
        for &(b, c) in &pairs {
            let offset = b * pixels;
            let (mut hard, mut easy) = (Vec::new(), Vec::new());
            for p in 0..pixels {
                if labels[offset + p] == c {
                    if predictions[offset + p] == c {
                        easy.push(offset + p);
                    } else {
                        hard.push(offset + p);
                    }
                }
            }
            let (keep_hard, keep_easy) = hard_easy_counts(hard.len(), easy.len(), n_view);
            pixel_indices.extend(rng.choose(&mut hard, keep_hard));
            pixel_indices.extend(rng.choose(&mut easy, keep_easy));
        }
        Some(AnchorPlan {
            n_view,
            classes: pairs.into_iter().map(|(_, c)| c).collect(),
            pixel_indices,
        })
    }

    /// The whole loss on embeddings `[B, D, h, w]` with pseudo-labels and predictions `[B, h, w]` at
    /// the embeddings' resolution (downsample with [`nearest_downsample_labels`]). Ignored pixels
    /// carry `ignore_label`. The sampled rows are gathered from `embeddings`, so gradients reach them.
    pub fn forward(
        &self,
        embeddings: Tensor<4>,
        labels: Tensor<3, Int>,
        predictions: Tensor<3, Int>,
        seed: u64,
    ) -> Tensor<1> {
        match self.sample_anchors(embeddings.clone(), labels, predictions, seed) {
            Some((features, classes)) => self.contrastive(features, classes),
            // Zero, but attached to the graph so that a backward pass through it is valid.
            None => embeddings.sum().mul_scalar(0.0),
        }
    }

    /// [`forward`](Self::forward) with `bank` as the contrast set (module documentation); the
    /// anchors are sampled exactly as there. An empty bank gives `forward`'s value.
    pub fn forward_with_bank(
        &self,
        embeddings: Tensor<4>,
        labels: Tensor<3, Int>,
        predictions: Tensor<3, Int>,
        seed: u64,
        bank: &MemoryBank,
    ) -> Tensor<1> {
        let device = embeddings.device();
        let Some((contrast, contrast_labels)) = bank.contrast_set(&device) else {
            return self.forward(embeddings, labels, predictions, seed);
        };
        match self.sample_anchors(embeddings.clone(), labels, predictions, seed) {
            Some((features, classes)) => {
                let [pairs, views, dim] = features.dims();
                let anchors = features.reshape([pairs * views, dim]);
                let anchor_labels = classes
                    .unsqueeze_dim::<2>(1)
                    .expand([pairs, views])
                    .reshape([pairs * views]);
                self.per_anchor_against(anchors, anchor_labels, contrast, contrast_labels)
                    .mean()
            }
            None => embeddings.sum().mul_scalar(0.0),
        }
    }

    /// The sampled anchors `[pairs, n_view, D]` (gathered from `embeddings`, so gradients reach
    /// them) and each pair's class; `None` when nothing can be sampled.
    fn sample_anchors(
        &self,
        embeddings: Tensor<4>,
        labels: Tensor<3, Int>,
        predictions: Tensor<3, Int>,
        seed: u64,
    ) -> Option<(Tensor<3>, Tensor<1, Int>)> {
        let [batch, dim, h, w] = embeddings.dims();
        assert_eq!(labels.dims(), [batch, h, w], "pixel contrast: label shape");
        assert_eq!(
            predictions.dims(),
            [batch, h, w],
            "pixel contrast: prediction shape"
        );
        // Sampling is index bookkeeping on a small label map (e.g. 8·28·28 values): done on the host.
        let labels = int_tensor_to_vec(labels);
        let predictions = int_tensor_to_vec(predictions);
        let plan = self.plan_anchors(&labels, &predictions, batch, seed)?;
        let device = embeddings.device();
        let pairs = plan.classes.len();
        let rows = embeddings
            .permute([0, 2, 3, 1])
            .reshape([batch * h * w, dim]);
        let index: Vec<i64> = plan.pixel_indices.iter().map(|&i| i as i64).collect();
        let index =
            Tensor::<1, Int>::from_data(TensorData::new(index, [pairs * plan.n_view]), &device);
        let features = rows.select(0, index).reshape([pairs, plan.n_view, dim]);
        let classes = Tensor::<1, Int>::from_data(TensorData::new(plan.classes, [pairs]), &device);
        Some((features, classes))
    }
}

/// SplitMix64: a tiny, well-mixed, seedable generator, enough for choosing sample subsets.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by rejection so that no value is favoured.
    fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// `k` distinct elements of `items`, uniformly, in random order (partial Fisher–Yates).
    fn choose(&mut self, items: &mut [usize], k: usize) -> Vec<usize> {
        let k = k.min(items.len());
        for i in 0..k {
            let j = i + self.below(items.len() - i);
            items.swap(i, j);
        }
        items[..k].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_counts_match_the_spec_examples() {
        // Spec §14.9.
        assert_eq!(anchor_views(16, 1024, 100), 64);
        assert_eq!(anchor_views(5, 1024, 100), 100);
        assert_eq!(anchor_views(0, 1024, 100), 0);
        assert_eq!(hard_easy_counts(10, 200, 64), (10, 54));
        assert_eq!(hard_easy_counts(40, 40, 64), (32, 32));
        assert_eq!(hard_easy_counts(150, 20, 64), (44, 20));
        // Odd n_view: ContrastiveSeg compares with n_view / 2 = 2.5.
        assert_eq!(hard_easy_counts(2, 10, 5), (2, 3));
        assert_eq!(hard_easy_counts(3, 3, 5), (2, 3));
    }

    #[test]
    fn nearest_index_matches_pytorch_legacy_rule() {
        let picked: Vec<usize> = (0..28).map(|i| nearest_source_index(i, 224, 28)).collect();
        assert_eq!(picked, (0..28).map(|i| 8 * i).collect::<Vec<_>>());
        assert_eq!(nearest_source_index(3, 5, 10), 1);
        assert_eq!(nearest_source_index(4, 7, 5), 5); // floor(4 * 1.4) = 5
    }

    #[test]
    fn choose_is_deterministic_and_distinct() {
        let mut a: Vec<usize> = (0..50).collect();
        let mut b = a.clone();
        let x = SplitMix64::new(7).choose(&mut a, 10);
        let y = SplitMix64::new(7).choose(&mut b, 10);
        assert_eq!(x, y);
        let mut sorted = x.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 10);
    }

    fn loss() -> PixelContrastLoss {
        PixelContrastConfig::new().with_max_views(2).init()
    }

    #[test]
    fn plan_needs_more_than_max_views_pixels_per_class() {
        // Image 0: class 0 has 3 pixels (valid, > 2), class 1 has 2 (not valid); -1 is ignored.
        let labels = [0, 0, 0, 1, 1, -1, -1, -1];
        let preds = [0, 1, 0, 1, 1, 0, 0, 0];
        let plan = loss().plan_anchors(&labels, &preds, 1, 3).unwrap();
        assert_eq!(plan.classes, vec![0]);
        assert_eq!(plan.n_view, 2);
        // One hard (index 1) and one easy (0 or 2), hard first.
        assert_eq!(plan.pixel_indices[0], 1);
        assert!([0, 2].contains(&plan.pixel_indices[1]));
        assert!(loss().plan_anchors(&[-1; 8], &[0; 8], 2, 0).is_none());
    }
}
