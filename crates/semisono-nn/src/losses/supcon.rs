//! Supervised contrastive loss (Khosla et al., 'all' mode), as Hermes uses it on the classifier's
//! projection embeddings (spec §5.5; Hermes `soft_supconloss_no_reweight.py`).
//!
//! With `N = n_views · bsz` rows ordered view-major (row `r = v·bsz + i`):
//! `s = f fᵀ / T`, shifted by its row maximum (self included); positives are the same-label columns
//! other than the anchor itself; the denominator is the sum of `exp` over all non-self columns;
//! `ℓ_a = −(T / T_base) · mean_{p∈P(a)} (s_ap − log Σ_{k≠a} exp s_ak)`.
//!
//! **No positive.** Hermes divides by `|P(a)|` with no guard (with 2 views it is never 0). Here an
//! anchor with no positive (one view and a unique label) gets loss 0 instead of NaN.
//!
//! **Memory bank** (paper Fig. 2, spec §13; not in the code): the bank's vectors `(b_j, c_j)`
//! join the contrast set as extra columns. They are never anchors, never "self", positives when
//! `c_j` is the anchor's label and negatives otherwise, so for an anchor `a`
//! `ℓ_a = −(T / T_base) · mean_{p∈P(a)} (s_ap − log Σ_{k≠a} exp s_ak)` with `P(a)` and the sum
//! running over the other views of the batch and the whole bank. The bank is a constant.

use burn::config::Config;
use burn::tensor::{Int, Tensor};

use crate::ops::{cross_label_mask, masked_logsumexp, off_diagonal_mask};

/// Configuration of [`SupConLoss`].
#[derive(Config, Debug)]
pub struct SupConConfig {
    /// Temperature T dividing the similarities.
    #[config(default = 0.07)]
    pub temperature: f64,
    /// Base temperature: the loss is scaled by `T / base_temperature`.
    #[config(default = 0.07)]
    pub base_temperature: f64,
}

impl SupConConfig {
    /// Builds the loss.
    pub fn init(&self) -> SupConLoss {
        assert!(
            self.temperature > 0.0 && self.base_temperature > 0.0,
            "SupConConfig: temperatures must be > 0"
        );
        SupConLoss {
            temperature: self.temperature,
            base_temperature: self.base_temperature,
        }
    }
}

/// Supervised contrastive loss over several views per sample.
#[derive(Debug, Clone)]
pub struct SupConLoss {
    temperature: f64,
    base_temperature: f64,
}

impl SupConLoss {
    /// Loss of every anchor, shape `[n_views, bsz]`.
    ///
    /// `features`: `[bsz, n_views, dim]`, used as given (Hermes feeds unit vectors; normalise with
    /// [`crate::ops::l2_normalize`] first if yours are not). `labels`: `[bsz]`, one per sample,
    /// shared by its views.
    pub fn per_anchor(&self, features: Tensor<3>, labels: Tensor<1, Int>) -> Tensor<2> {
        self.per_anchor_with_bank(features, labels, None)
    }

    /// [`per_anchor`](Self::per_anchor) with the memory bank's `([M, dim], [M] labels)` as extra
    /// contrasts (see the module documentation); `None` is exactly `per_anchor`.
    pub fn per_anchor_with_bank(
        &self,
        features: Tensor<3>,
        labels: Tensor<1, Int>,
        bank: Option<(Tensor<2>, Tensor<1, Int>)>,
    ) -> Tensor<2> {
        let [bsz, n_views, dim] = features.dims();
        let n = bsz * n_views;
        let device = features.device();
        let anchors = features.swap_dims(0, 1).reshape([n, dim]);
        let anchor_labels = labels.repeat_dim(0, n_views);
        let (contrast, contrast_labels, not_self) = match bank {
            None => (
                anchors.clone(),
                anchor_labels.clone(),
                off_diagonal_mask(n, &device),
            ),
            Some((bank, bank_labels)) => {
                let [m, _] = bank.dims();
                (
                    Tensor::cat(vec![anchors.clone(), bank], 0),
                    Tensor::cat(vec![anchor_labels.clone(), bank_labels], 0),
                    Tensor::cat(
                        vec![
                            off_diagonal_mask(n, &device),
                            Tensor::<2, burn::tensor::Bool>::full([n, m], true, &device),
                        ],
                        1,
                    ),
                )
            }
        };
        let sim = anchors
            .matmul(contrast.transpose())
            .div_scalar(self.temperature);
        // Subtracting the row maximum (self included) changes no loss value; it is kept so that the
        // intermediate "logits" are the ones the reference code computes.
        let logits = sim.clone() - sim.detach().max_dim(1);

        let positives = cross_label_mask(anchor_labels, contrast_labels).bool_and(not_self.clone());
        let log_denominator = masked_logsumexp(logits.clone(), not_self);
        let log_prob = logits - log_denominator;

        let positives = positives.float();
        let pos_count = positives.clone().sum_dim(1);
        let mean_log_prob_pos = (positives * log_prob).sum_dim(1) / pos_count.clamp_min(1.0);
        mean_log_prob_pos
            .mul_scalar(-self.temperature / self.base_temperature)
            .reshape([n_views, bsz])
    }

    /// Mean of [`per_anchor`](Self::per_anchor) over all `n_views · bsz` anchors, each anchor
    /// multiplied by its sample's weight when `sample_weights` (`[bsz]`) is given.
    ///
    /// The weights mask anchors only (Hermes' keep mask): a weighted-out sample still serves as a
    /// positive and a negative, and the mean still divides by all `n_views · bsz` anchors.
    pub fn forward(
        &self,
        features: Tensor<3>,
        labels: Tensor<1, Int>,
        sample_weights: Option<Tensor<1>>,
    ) -> Tensor<1> {
        self.forward_with_bank(features, labels, sample_weights, None)
    }

    /// [`forward`](Self::forward) with the memory bank's `([M, dim], [M] labels)` as extra
    /// contrasts; the mean still runs over the batch's `n_views · bsz` anchors only.
    pub fn forward_with_bank(
        &self,
        features: Tensor<3>,
        labels: Tensor<1, Int>,
        sample_weights: Option<Tensor<1>>,
        bank: Option<(Tensor<2>, Tensor<1, Int>)>,
    ) -> Tensor<1> {
        let per_anchor = self.per_anchor_with_bank(features, labels, bank);
        match sample_weights {
            None => per_anchor.mean(),
            Some(w) => (per_anchor * w.unsqueeze_dim::<2>(0)).mean(),
        }
    }
}
