//! Networks and losses on Burn 0.22 (backbones, U-Net decoder, heads, saliency, losses), and
//! loading published backbone weights ([`pretrained`]).
//!
//! Burn 0.22 has no backend type parameter: every tensor is `Tensor<D>` on a runtime `Device`
//! (`Device::flex()` for CPU, `.autodiff()` for training), so nothing here is generic.

pub mod kernels;
pub mod losses;
pub mod nets;
pub mod ops;
pub mod pretrained;
pub mod saliency;
