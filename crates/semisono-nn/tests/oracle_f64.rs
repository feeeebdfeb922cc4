//! The whole loss and saliency oracle again in **f64**, at the oracle README's f64 tolerance
//! (abs 1e-12 + rel 1e-10): this separates formula errors from f32 rounding.
//!
//! A device's default float dtype can be set only once, before any tensor exists on it, and is
//! shared by every test of a binary; hence this separate binary with a single test.

mod common;

use burn::tensor::{Device, FloatDType};

use common::{loss_cases, saliency_cases, F64};

#[test]
fn every_oracle_case_matches_in_f64() {
    let mut device = Device::flex();
    device
        .configure(FloatDType::F64)
        .expect("flex supports f64 and no tensor exists yet in this binary");
    loss_cases::supcon(&device, F64);
    loss_cases::dice_ce(&device, F64);
    loss_cases::ce_pixel(&device, F64);
    loss_cases::ce_cls(&device, F64);
    loss_cases::cosine(&device, F64);
    loss_cases::softmax_consistency(&device, F64);
    loss_cases::contrastseg(&device, F64);
    saliency_cases::saliency(&device, F64);
}
