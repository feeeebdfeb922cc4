//! Cross-entropy for pixels (segmentation) and images (classification), PyTorch `F.cross_entropy`
//! semantics, with an ignore mask.
//!
//! **All-ignored inputs.** PyTorch returns NaN for the mean when every pixel is ignored (0/0). Here
//! the mean divides by `max(count, 1)`, so it is **0 with a zero gradient** instead: a batch whose
//! pseudo-labels were all filtered out must not poison the optimizer state with NaN.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Int, Tensor};

/// The per-item losses and their reductions.
#[derive(Debug, Clone)]
pub struct CrossEntropy<const D: usize> {
    /// Loss of every item (pixel or image); 0 where ignored.
    pub per_item: Tensor<D>,
    /// Sum over the non-ignored items.
    pub sum: Tensor<1>,
    /// `sum / max(#non-ignored, 1)`: 0 when every item is ignored (PyTorch: NaN).
    pub mean: Tensor<1>,
}

/// `ignore == (target == ignore_index)`, e.g. for labels that mark unknown pixels with 255.
pub fn ignore_mask_from_index<const D: usize>(
    target: &Tensor<D, Int>,
    ignore_index: i64,
) -> Tensor<D, Bool> {
    target.clone().equal_elem(ignore_index)
}

/// Pixel-wise cross-entropy of `logits` `[N, C, H, W]` against class ids `target` `[N, H, W]`.
///
/// `ignore` (`[N, H, W]`, true = ignored) removes pixels from the loss and from the mean's count.
/// Ignored pixels may hold any target value (255, -1, ...); they are never used as an index.
pub fn pixel_cross_entropy(
    logits: Tensor<4>,
    target: Tensor<3, Int>,
    ignore: Option<Tensor<3, Bool>>,
) -> CrossEntropy<3> {
    let [n, c, h, w] = logits.dims();
    // [N, C, H, W] -> [N*H*W, C], then the same code as the image-level loss.
    let flat_logits = logits.permute([0, 2, 3, 1]).reshape([n * h * w, c]);
    let flat_target = target.reshape([n * h * w]);
    let flat_ignore = ignore.map(|m| m.reshape([n * h * w]));
    let flat = class_cross_entropy(flat_logits, flat_target, flat_ignore);
    CrossEntropy {
        per_item: flat.per_item.reshape([n, h, w]),
        sum: flat.sum,
        mean: flat.mean,
    }
}

/// Image-level cross-entropy of `logits` `[N, C]` against class ids `target` `[N]`.
///
/// `ignore` (`[N]`, true = ignored) works as in [`pixel_cross_entropy`].
pub fn class_cross_entropy(
    logits: Tensor<2>,
    target: Tensor<1, Int>,
    ignore: Option<Tensor<1, Bool>>,
) -> CrossEntropy<1> {
    let log_p = log_softmax(logits, 1);
    let (per_item, kept) = match ignore {
        None => {
            let [n] = target.dims();
            let picked = log_p.gather(1, target.unsqueeze_dim::<2>(1));
            let per_item = picked.squeeze_dim::<1>(1).neg();
            let kept = Tensor::<1>::full([1], n as f64, &per_item.device());
            (per_item, kept)
        }
        Some(ignore) => {
            // An ignored target may be out of range (255, -1): point it at class 0 before gathering.
            let safe_target = target.mask_fill(ignore.clone(), 0);
            let picked = log_p.gather(1, safe_target.unsqueeze_dim::<2>(1));
            let per_item = picked
                .squeeze_dim::<1>(1)
                .neg()
                .mask_fill(ignore.clone(), 0.0);
            // Counted on the device: no host round trip in the training step.
            let kept = ignore.bool_not().float().sum();
            (per_item, kept)
        }
    };
    let sum = per_item.clone().sum();
    let mean = sum.clone() / kept.clamp_min(1.0);
    CrossEntropy {
        per_item,
        sum,
        mean,
    }
}
