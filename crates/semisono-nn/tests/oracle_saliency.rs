//! The saliency cases of the PyTorch oracle (`losses.json`) in f32 on flex: the oracle's tiny nets
//! are rebuilt from their parameters and the input-gradient maps compared.

mod common;

use burn::tensor::Device;

use common::{saliency_cases, F32};

#[test]
fn saliency_matches_oracle() {
    saliency_cases::saliency(&Device::flex(), F32);
}
