//! Vanilla input-gradient saliency of a classifier (the "S" of Hermes' IAS, spec §2.1).
//!
//! `s(x) = max_c |∂ Σ_n max_k z_{n,k} / ∂x_{n,c,h,w}|`: the gradient of each image's top logit with
//! respect to its input pixels, reduced over the colour channels by the maximum absolute value.
//! Each image's top logit depends only on that image (in eval mode), so summing over the batch and
//! backpropagating once gives every image's own gradient.

use burn::tensor::Tensor;

/// The saliency of a batch, all without autodiff association (constants for later graphs).
#[derive(Debug, Clone)]
pub struct Saliency {
    /// Logits of the forward pass, `[N, K]`.
    pub logits: Tensor<2>,
    /// `∂ Σ_n max_k z_{n,k} / ∂x`, `[N, C, H, W]`.
    pub input_grad: Tensor<4>,
    /// `max_c |input_grad|`, `[N, H, W]`.
    pub map: Tensor<3>,
}

/// Computes the vanilla saliency of `forward` at `input` (`[N, C, H, W]`).
///
/// `forward` maps images to logits `[N, K]`. Pass an eval-mode model (`model.valid()`), as Hermes
/// does, so that BatchNorm uses its running statistics and images do not interact; `valid()` drops
/// the model's autodiff, which is fine: the input alone is tracked here. The input is detached from
/// any graph it belongs to and moved onto autodiff, so this works on any device.
pub fn vanilla_saliency<F>(input: Tensor<4>, forward: F) -> Saliency
where
    F: FnOnce(Tensor<4>) -> Tensor<2>,
{
    let x = input.detach().autodiff().require_grad();
    let logits = forward(x.clone());
    let top_logit_sum = logits.clone().max_dim(1).sum();
    let grads = top_logit_sum.backward();
    let input_grad = x
        .grad(&grads)
        .expect("the saliency input requires grad, so backward gives it a gradient");
    let map = input_grad.clone().abs().max_dim(1).squeeze_dim::<3>(1);
    Saliency {
        logits: logits.without_autodiff(),
        input_grad,
        map,
    }
}
