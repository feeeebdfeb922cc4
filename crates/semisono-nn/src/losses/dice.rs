//! The Hermes soft Dice loss (`DiceLoss_` in Hermes' `loss_manager.py`) and its CE + Dice total.
//!
//! Sums run over **all pixels of the whole batch** (batch-level soft Dice with squared
//! denominators), not per image:
//! `d_c = 1 − (2 Σ p_c t_c + ε) / (Σ p_c² + Σ t_c² + ε)` and `loss = Σ_c w_c d_c / C`.
//! The division is by the number of classes C even when some weights are 0 (Hermes uses weights
//! [0, 1], so the tumour term is halved).
//!
//! **All-ignored inputs.** Every sum is 0, so `d_c = 1 − ε/ε = 0`: the loss is 0 with a zero
//! gradient, not NaN (this is also what the Hermes code computes).

use burn::config::Config;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Int, Tensor};

use super::cross_entropy::pixel_cross_entropy;

/// Configuration of [`DiceLoss`].
#[derive(Config, Debug)]
pub struct DiceLossConfig {
    /// Weight of each class's Dice term; its length must equal the number of logit channels.
    /// Hermes: `[0, 1]` (tumour only).
    #[config(default = "vec![0.0, 1.0]")]
    pub class_weights: Vec<f64>,
    /// Smoothing ε added to numerator and denominator.
    #[config(default = 1e-5)]
    pub smooth: f64,
}

impl DiceLossConfig {
    /// Builds the loss.
    pub fn init(&self) -> DiceLoss {
        assert!(
            !self.class_weights.is_empty(),
            "DiceLossConfig: class_weights must name at least one class"
        );
        assert!(
            self.smooth > 0.0,
            "DiceLossConfig: smooth must be > 0 (it keeps an all-ignored batch finite)"
        );
        DiceLoss {
            class_weights: self.class_weights.clone(),
            smooth: self.smooth,
        }
    }
}

/// Batch-level soft Dice loss over softmax probabilities.
#[derive(Debug, Clone)]
pub struct DiceLoss {
    class_weights: Vec<f64>,
    smooth: f64,
}

/// The Dice loss and its per-class terms.
#[derive(Debug, Clone)]
pub struct DiceOutput {
    /// `Σ_c w_c d_c / C`, shape `[1]`.
    pub loss: Tensor<1>,
    /// `d_c` for every class (unweighted), shape `[C]`.
    pub per_class: Tensor<1>,
}

impl DiceLoss {
    /// Dice loss of `logits` `[N, C, H, W]` against class ids `target` `[N, H, W]`.
    ///
    /// `ignore` (`[N, H, W]`, true = ignored) removes pixels from every sum; `None` uses all pixels.
    pub fn forward(
        &self,
        logits: Tensor<4>,
        target: Tensor<3, Int>,
        ignore: Option<Tensor<3, Bool>>,
    ) -> DiceOutput {
        let [_, classes, _, _] = logits.dims();
        assert_eq!(
            classes,
            self.class_weights.len(),
            "DiceLoss: {} class weights for {} logit channels",
            self.class_weights.len(),
            classes
        );
        let device = logits.device();
        let probs = softmax(logits, 1);
        // One-hot by comparison rather than `one_hot`, so out-of-range ids in ignored pixels (255)
        // simply match no class.
        let target = target.unsqueeze_dim::<4>(1);
        let one_hot = Tensor::cat(
            (0..classes)
                .map(|c| target.clone().equal_elem(c as i64).float())
                .collect(),
            1,
        );
        let (probs, one_hot) = match ignore {
            None => (probs, one_hot),
            Some(ignore) => {
                let keep = ignore.bool_not().float().unsqueeze_dim::<4>(1);
                (probs * keep.clone(), one_hot * keep)
            }
        };
        let sum_per_class =
            |x: Tensor<4>| -> Tensor<1> { x.sum_dims_squeeze::<1, usize>(&[0, 2, 3]) };
        let intersection = sum_per_class(probs.clone() * one_hot.clone());
        let prob_sq = sum_per_class(probs.powi_scalar(2));
        // one_hot is 0/1, so its square is itself.
        let target_sq = sum_per_class(one_hot);
        let dice = (intersection.mul_scalar(2.0).add_scalar(self.smooth))
            / (prob_sq + target_sq).add_scalar(self.smooth);
        let per_class = dice.neg().add_scalar(1.0);
        let weights = Tensor::<1>::from_data(
            burn::tensor::TensorData::new(self.class_weights.clone(), [classes]),
            &device,
        );
        let loss = (per_class.clone() * weights)
            .sum()
            .div_scalar(classes as f64);
        DiceOutput { loss, per_class }
    }
}

/// Hermes' supervised segmentation loss and its two logged parts.
#[derive(Debug, Clone)]
pub struct CeDiceOutput {
    /// `(0.5·ce_mean + dice_loss) / 2` — Hermes `ce_dice_loss`; with weights [0, 1] this is
    /// `0.25·CE + 0.25·(1 − Dice_fg)`.
    pub total: Tensor<1>,
    /// Mean pixel cross-entropy (no ignore).
    pub ce_mean: Tensor<1>,
    /// The Dice loss `Σ_c w_c d_c / C`.
    pub dice_loss: Tensor<1>,
}

/// Hermes' supervised segmentation loss, `(0.5·CE + Dice) / 2` (spec §5.2).
pub fn ce_dice_loss(logits: Tensor<4>, target: Tensor<3, Int>, dice: &DiceLoss) -> CeDiceOutput {
    let ce_mean = pixel_cross_entropy(logits.clone(), target.clone(), None).mean;
    let dice_loss = dice.forward(logits, target, None).loss;
    let total = (ce_mean.clone().mul_scalar(0.5) + dice_loss.clone()).div_scalar(2.0);
    CeDiceOutput {
        total,
        ce_mean,
        dice_loss,
    }
}
