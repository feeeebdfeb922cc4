//! Small tensor helpers shared by the losses and heads.
//!
//! They are written so that forward values match the PyTorch formulas the Hermes code uses, and so
//! that the backward pass stays finite on the edge cases (zero rows, empty masks) where a naive
//! `sqrt` or `log(0)` would put NaN into the gradients.

use burn::tensor::{Bool, Int, Tensor};

/// A large negative *finite* number used instead of `-inf` in masked reductions: `exp` of it is 0 in
/// f32 and f64, and no `inf - inf` can appear in the backward pass.
pub(crate) const LARGE_NEGATIVE: f64 = -1.0e30;

/// `x / max(‖x‖₂, eps)` along `dim` (PyTorch `F.normalize`). A zero vector stays zero.
///
/// The norm is computed as `sqrt(max(Σx², eps²))`, which equals `max(sqrt(Σx²), eps)` but keeps the
/// gradient finite at a zero vector (the derivative of `sqrt` at 0 is infinite).
pub fn l2_normalize<const D: usize>(x: Tensor<D>, dim: usize, eps: f64) -> Tensor<D> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum_dim(dim)
        .clamp_min(eps * eps)
        .sqrt();
    x / norm
}

/// Row-wise cosine similarity of `a` and `b` (both `[N, D]`), PyTorch `cosine_similarity(dim=-1, eps)`:
/// each row is divided by `max(‖row‖, eps)` before the dot product, so a zero row gives 0, not NaN.
pub fn cosine_similarity_rows(a: Tensor<2>, b: Tensor<2>, eps: f64) -> Tensor<1> {
    let a = l2_normalize(a, 1, eps);
    let b = l2_normalize(b, 1, eps);
    (a * b).sum_dim(1).squeeze_dim::<1>(1)
}

/// Log-sum-exp of each row of `x` over the entries where `include` is true, returned as `[N, 1]`.
///
/// Stable for any magnitude (the row maximum over the included entries is subtracted first). A row
/// with no included entry gives a very negative finite value (about `log(1e-30)`), never `-inf`, so
/// callers can mask it away without NaN in the backward pass.
pub(crate) fn masked_logsumexp(x: Tensor<2>, include: Tensor<2, Bool>) -> Tensor<2> {
    let exclude = include.clone().bool_not();
    let has_any = include.any_dim(1);
    // The shift only stabilises the exponentials; the result does not depend on it, so no gradient
    // needs to flow through it.
    let shift = x
        .clone()
        .detach()
        .mask_fill(exclude.clone(), LARGE_NEGATIVE)
        .max_dim(1)
        .mask_fill(has_any.bool_not(), 0.0);
    let exp = (x - shift.clone()).mask_fill(exclude, LARGE_NEGATIVE).exp();
    // With at least one included entry the sum is >= 1 (the maximum contributes exp(0)); the clamp
    // only acts on empty rows.
    exp.sum_dim(1).clamp_min(1.0e-30).log() + shift
}

/// `log(exp(a) + exp(b))` elementwise, stable for any magnitude.
pub(crate) fn log_add_exp<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    let shift = a.clone().detach().max_pair(b.clone().detach());
    ((a - shift.clone()).exp() + (b - shift.clone()).exp()).log() + shift
}

/// `[N, N]` mask: `labels[i] == labels[j]`.
pub(crate) fn same_label_mask(labels: Tensor<1, Int>) -> Tensor<2, Bool> {
    let [n] = labels.dims();
    let rows = labels.clone().unsqueeze_dim::<2>(1).expand([n, n]);
    let cols = labels.unsqueeze_dim::<2>(0).expand([n, n]);
    rows.equal(cols)
}

/// `[N, M]` mask: `rows[i] == cols[j]`.
pub(crate) fn cross_label_mask(rows: Tensor<1, Int>, cols: Tensor<1, Int>) -> Tensor<2, Bool> {
    let [n] = rows.dims();
    let [m] = cols.dims();
    let rows = rows.unsqueeze_dim::<2>(1).expand([n, m]);
    let cols = cols.unsqueeze_dim::<2>(0).expand([n, m]);
    rows.equal(cols)
}

/// `[N, N]` mask that is true off the diagonal ("not self").
pub(crate) fn off_diagonal_mask(n: usize, device: &burn::tensor::Device) -> Tensor<2, Bool> {
    Tensor::<2, Bool>::diag_mask([n, n], 0, device)
}

/// Reads an `Int` tensor back as `i64` (flex stores `Int` as i32, so a direct `to_vec::<i64>` fails).
pub fn int_tensor_to_vec<const D: usize>(x: Tensor<D, Int>) -> Vec<i64> {
    x.try_into_vec_as::<i64>()
        .expect("an Int tensor converts to i64")
}

/// Reads a float tensor back as `f64`, whatever its storage dtype.
pub fn float_tensor_to_vec<const D: usize>(x: Tensor<D>) -> Vec<f64> {
    x.try_into_vec_as::<f64>()
        .expect("a float tensor converts to f64")
}
