//! Consistency losses between two views or two networks.
//!
//! * [`itc_loss`] — Hermes' inter-task consistency (`segAndclass_consistency`, spec §5.7):
//!   `1 − mean_i cos(g_cls_i, g_seg_i)` after L2-normalising both (eps 1e-12); the cosine itself
//!   uses eps 1e-8. A zero row stays zero and contributes cosine 0 (never NaN, also in backward).
//! * [`softmax_consistency_loss`] — Hermes' unused `consistency_loss` helper: per sample
//!   `1 − cos(softmax(weak)/0.5, softmax(strong))`, flattened over classes and pixels, averaged.

use burn::tensor::activation::softmax;
use burn::tensor::Tensor;

use crate::ops::{cosine_similarity_rows, l2_normalize};

/// ε of the L2 normalisation before the ITC cosine (PyTorch `F.normalize` default).
pub const ITC_NORMALIZE_EPS: f64 = 1e-12;
/// ε of PyTorch `cosine_similarity` (its default).
pub const COSINE_EPS: f64 = 1e-8;

/// Per-row cosines and the loss of [`itc_loss`].
#[derive(Debug, Clone)]
pub struct CosineOutput {
    /// `cos(a_i, b_i)` for each row, shape `[N]`.
    pub per_row: Tensor<1>,
    /// `1 − mean(per_row)`, shape `[1]`.
    pub loss: Tensor<1>,
}

/// Per-sample terms and the loss of [`softmax_consistency_loss`].
#[derive(Debug, Clone)]
pub struct SoftmaxConsistencyOutput {
    /// `1 − cos(...)` for each sample, shape `[N]`.
    pub per_sample: Tensor<1>,
    /// Mean of `per_sample`, shape `[1]`.
    pub loss: Tensor<1>,
}

/// Inter-task consistency loss between `a` and `b`, both `[N, D]`.
///
/// Hermes computes it on the strong views with `a = g_cls`, `b = g_seg`; detach the tensor of the
/// network that must not learn from it (spec §13: every cross-network input is a stop-gradient).
pub fn itc_loss(a: Tensor<2>, b: Tensor<2>) -> CosineOutput {
    let a = l2_normalize(a, 1, ITC_NORMALIZE_EPS);
    let b = l2_normalize(b, 1, ITC_NORMALIZE_EPS);
    let per_row = cosine_similarity_rows(a, b, COSINE_EPS);
    let loss = per_row.clone().mean().neg().add_scalar(1.0);
    CosineOutput { per_row, loss }
}

/// Softmax consistency between weak and strong logits `[N, C, H, W]` (or any `[N, ...]` reshaped to
/// 4-D): `per_sample = 1 − cos(softmax(weak, 1) / 0.5, softmax(strong, 1))`.
///
/// The 1/0.5 factor does not change a cosine; it is kept to mirror the reference code. The weak
/// branch is not detached here: detach it at the call site if it is a target.
pub fn softmax_consistency_loss(weak: Tensor<4>, strong: Tensor<4>) -> SoftmaxConsistencyOutput {
    let weak = softmax(weak, 1).div_scalar(0.5).flatten::<2>(1, 3);
    let strong = softmax(strong, 1).flatten::<2>(1, 3);
    let cos = cosine_similarity_rows(weak, strong, COSINE_EPS);
    let per_sample = cos.neg().add_scalar(1.0);
    let loss = per_sample.clone().mean();
    SoftmaxConsistencyOutput { per_sample, loss }
}
