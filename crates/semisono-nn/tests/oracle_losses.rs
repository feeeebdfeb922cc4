//! Every loss case of the PyTorch oracle (`losses.json`) against the Burn implementation in f32
//! on flex, at the oracle README's f32 tolerance (abs 1e-5 + rel 1e-4). Each test checks every case
//! of its kind, then fails listing the ids of the cases (and fields) that did not match. Run with
//! `--nocapture` to see the largest absolute and relative errors per kind.

mod common;

use burn::tensor::Device;

use common::{loss_cases, F32};

#[test]
fn supcon_matches_oracle() {
    loss_cases::supcon(&Device::flex(), F32);
}

#[test]
fn dice_ce_matches_oracle() {
    loss_cases::dice_ce(&Device::flex(), F32);
}

#[test]
fn ce_pixel_matches_oracle() {
    loss_cases::ce_pixel(&Device::flex(), F32);
}

#[test]
fn ce_cls_matches_oracle() {
    loss_cases::ce_cls(&Device::flex(), F32);
}

#[test]
fn cosine_matches_oracle() {
    loss_cases::cosine(&Device::flex(), F32);
}

#[test]
fn softmax_consistency_matches_oracle() {
    loss_cases::softmax_consistency(&Device::flex(), F32);
}

#[test]
fn contrastseg_matches_oracle() {
    loss_cases::contrastseg(&Device::flex(), F32);
}
