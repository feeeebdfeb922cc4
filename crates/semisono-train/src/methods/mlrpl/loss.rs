//! MLRPL's two losses (mlrpl spec §5): the supervised foreground Dice and the reliable mutual
//! consistency between two decoders.
//!
//! Layouts: logits and probabilities `[B, C, H, W]`, features `[B, F, H, W]`; per-pixel results are
//! `[B, H·W]` in the order of a `[B, H, W]` label tensor (the selector's channels-first rows).

use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor};
use semisono_nn::losses::pixel_cross_entropy;
use semisono_nn::ops::l2_normalize;

use crate::selector::{EntropyComparison, Probs, PseudoLabelSelector};

use super::super::common::{float_tensor, int_tensor, to_f32_vec};
use super::ConsistencyCe;

/// ε of the supervised Dice (spec §5.1).
pub const DICE_EPS: f64 = 1e-8;
/// ε added to a prototype's pixel count (spec §5.2.4).
pub const PROTOTYPE_EPS: f64 = 1e-6;
/// ε of the prototypes' L2 normalisation (PyTorch `F.normalize`).
pub const NORMALIZE_EPS: f64 = 1e-12;
/// ε of PyTorch's `cosine_similarity` (each norm is clamped to it).
pub const COSINE_EPS: f64 = 1e-8;
/// ε added to the number of selected pixels in the denominator (spec §5.2.8).
pub const SELECTED_EPS: f64 = 1e-6;

/// Mean over the foreground classes `c ≥ 1` of `1 − (2 Σ p_c y_c + ε) / (Σ p_c + Σ y_c + ε)`, the
/// sums over every pixel of the batch where `valid` is 1 (spec §5.1: batch-level, denominators not
/// squared, ε = 1e-8; for two classes exactly the code's foreground Dice, for more the §11
/// per-class mean). `probs` are softmax probabilities `[B, C, H, W]`, `target` class ids
/// `[B, H, W]`, `valid` `[B, H, W]` in {0, 1} (`None` = every pixel). All pixels invalid gives 0.
pub fn foreground_dice(
    probs: Tensor<4>,
    target: Tensor<3, Int>,
    valid: Option<Tensor<3>>,
) -> Tensor<1> {
    let [b, c, h, w] = probs.dims();
    assert!(
        c >= 2,
        "foreground Dice needs a background and a foreground class"
    );
    let valid = valid.unwrap_or_else(|| Tensor::ones([b, h, w], &probs.device()));
    let terms: Vec<Tensor<1>> = (1..c)
        .map(|class| {
            let p = probs.clone().narrow(1, class, 1).reshape([b, h, w]) * valid.clone();
            let y = target.clone().equal_elem(class as i64).float() * valid.clone();
            let inter = (p.clone() * y.clone()).sum();
            let denom = p.sum() + y.sum();
            (inter.mul_scalar(2.0).add_scalar(DICE_EPS) / denom.add_scalar(DICE_EPS))
                .neg()
                .add_scalar(1.0)
        })
        .collect();
    Tensor::cat(terms, 0).mean()
}

/// Everything one direction (student i learns from teacher j) of the reliable mutual consistency
/// computes (spec §5.2). Only `loss` carries a gradient, into the student's logits.
#[derive(Debug, Clone)]
pub struct PairTerms {
    /// L_ij = Σ ℓ·W / (Σ M + 1e-6), `[1]`.
    pub loss: Tensor<1>,
    /// M_ij: the teacher's entropy is strictly lower (per pixel, label-tensor order).
    pub keep: Vec<bool>,
    /// ŷ_j: the teacher's arg-max.
    pub labels: Vec<u32>,
    /// Unit-norm class prototypes of the teacher's features `[B, C, F]` (zero for an empty class).
    pub prototypes: Tensor<3>,
    /// S: cosine of each pixel's teacher feature to each prototype `[B, C, H·W]`.
    pub similarity: Tensor<3>,
    /// W = (1 − mean_c (S_c − p_j,c)²)·M `[B, H·W]`.
    pub weight: Tensor<2>,
    /// ℓ: the student's per-pixel CE against ŷ_j `[B, H·W]` (every pixel, before weighting).
    pub ce: Tensor<2>,
}

impl PairTerms {
    /// Share of pixels selected (M = 1).
    pub fn selected_fraction(&self) -> f64 {
        self.keep.iter().filter(|&&k| k).count() as f64 / self.keep.len().max(1) as f64
    }
}

/// One direction of the reliable mutual consistency (spec §5.2): `student_logits` z_i, and the
/// teacher's logits z_j and features f_j. The teacher side is detached here; the selection runs on
/// the host through [`EntropyComparison`], the rest as tensor operations.
pub fn reliable_pair(
    student_logits: Tensor<4>,
    teacher_logits: Tensor<4>,
    teacher_features: Tensor<4>,
    ce: ConsistencyCe,
) -> PairTerms {
    let d = student_logits.device();
    let [b, c, h, w] = student_logits.dims();
    let [fb, f, fh, fw] = teacher_features.dims();
    assert_eq!(
        (fb, fh, fw),
        (b, h, w),
        "teacher features must match the logits' batch and size"
    );
    let hw = h * w;

    // 1–3: entropies, the strict comparison and the teacher's arg-max.
    let p_t = softmax(teacher_logits.detach(), 1);
    let p_s = softmax(student_logits.clone().detach(), 1);
    let (host_t, host_s) = (to_f32_vec(p_t.clone()), to_f32_vec(p_s));
    let sel = EntropyComparison.select(
        &Probs::channels_first(&host_t, b, c, hw),
        Some(&Probs::channels_first(&host_s, b, c, hw)),
        0,
    );
    let selected = sel.keep.iter().filter(|&&k| k).count();
    let mask = float_tensor(
        sel.keep.iter().map(|&k| f32::from(u8::from(k))).collect(),
        [b, hw],
        &d,
    );

    // 4: per-image class prototypes from the teacher's hard labels.
    let mut one_hot = vec![0f32; b * c * hw];
    for (r, &l) in sel.labels.iter().enumerate() {
        let (img, pix) = (r / hw, r % hw);
        one_hot[(img * c + l as usize) * hw + pix] = 1.0;
    }
    let one_hot = float_tensor(one_hot, [b, c, hw], &d);
    let feats = teacher_features.detach().reshape([b, f, hw]);
    let sums = one_hot.clone().matmul(feats.clone().swap_dims(1, 2));
    let counts = one_hot.sum_dim(2);
    let prototypes = l2_normalize(sums / counts.add_scalar(PROTOTYPE_EPS), 2, NORMALIZE_EPS);

    // 5: cosine similarity of every pixel to every prototype (a zero prototype gives 0).
    let similarity =
        l2_normalize(prototypes.clone(), 2, COSINE_EPS).matmul(l2_normalize(feats, 1, COSINE_EPS));

    // 6: reliability weight, a constant.
    let agreement = (similarity.clone() - p_t.reshape([b, c, hw]))
        .powi_scalar(2)
        .mean_dim(1)
        .reshape([b, hw]);
    let weight = agreement.neg().add_scalar(1.0) * mask;

    // 7–8: the student's CE against the teacher's label, normalised by the selected count.
    let student = match ce {
        ConsistencyCe::Fixed => student_logits,
        // The published code fed probabilities to `CrossEntropyLoss` (spec §10.1).
        ConsistencyCe::Original => softmax(student_logits, 1),
    };
    let target = int_tensor(
        sel.labels.iter().map(|&l| i64::from(l)).collect(),
        [b, h, w],
        &d,
    );
    let ce_map = pixel_cross_entropy(student, target, None)
        .per_item
        .reshape([b, hw]);
    let loss = (ce_map.clone() * weight.clone())
        .sum()
        .div_scalar(selected as f64 + SELECTED_EPS);
    PairTerms {
        loss,
        keep: sel.keep,
        labels: sel.labels,
        prototypes,
        similarity,
        weight,
        ce: ce_map,
    }
}
