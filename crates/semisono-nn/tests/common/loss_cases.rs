//! The loss cases of `losses.json`, one function per kind, run at a given tolerance on a given
//! device (f32 in `oracle_losses.rs`, f64 in `oracle_f64.rs`). Each checks every case of its kind
//! and panics listing the ids and fields that did not match.

use burn::tensor::Device;
use serde_json::Value;

use super::{flatten, float_tensor, id, int_tensor, number, oracle_cases, Checker, Tolerance};
use semisono_nn::losses::{
    class_cross_entropy, ignore_mask_from_index, itc_loss, pixel_cross_entropy,
    softmax_consistency_loss, DiceLossConfig, PixelContrastConfig, SupConConfig,
};
use semisono_nn::ops::{float_tensor_to_vec, int_tensor_to_vec, l2_normalize};

pub fn supcon(dev: &Device, tolerance: Tolerance) {
    let cases = oracle_cases("supcon");
    let mut check = Checker::new("supcon", tolerance);
    for case in &cases {
        let id = id(case);
        let loss = SupConConfig::new()
            .with_temperature(number(&case["temperature"]))
            .with_base_temperature(number(&case["base_temperature"]))
            .init();
        let raw = float_tensor::<3>(&case["features_raw"], dev);
        check.tensor(
            &id,
            "features",
            l2_normalize(raw, 2, 1e-12),
            &case["features"],
        );

        let features = float_tensor::<3>(&case["features"], dev);
        let labels = int_tensor::<1>(&case["labels"], dev);
        let weights = float_tensor::<1>(&case["sample_weights"], dev);
        let per_anchor = loss.per_anchor(features.clone(), labels.clone());
        check.tensor(&id, "per_anchor_loss", per_anchor, &case["per_anchor_loss"]);
        let mean = loss.forward(features.clone(), labels.clone(), None);
        check.scalar(&id, "loss_mean", mean, &case["loss_mean"]);
        let weighted = loss.forward(features, labels, Some(weights));
        check.scalar(&id, "weighted_mean", weighted, &case["weighted_mean"]);
    }
    check.finish(cases.len());
}

pub fn dice_ce(dev: &Device, tolerance: Tolerance) {
    let cases = oracle_cases("dice_ce");
    let mut check = Checker::new("dice_ce", tolerance);
    for case in &cases {
        let id = id(case);
        let (weights, _) = flatten(&case["class_weight"]);
        let dice = DiceLossConfig::new()
            .with_class_weights(weights.clone())
            .with_smooth(number(&case["smooth"]))
            .init();
        let logits = float_tensor::<4>(&case["logits"], dev);
        let target = int_tensor::<3>(&case["target"], dev);
        let ignore = match &case["ignore"] {
            Value::Null => None,
            v => Some(float_tensor::<3>(v, dev).equal_elem(1.0)),
        };
        check.tensor(
            &id,
            "softmax_probs",
            burn::tensor::activation::softmax(logits.clone(), 1),
            &case["softmax_probs"],
        );
        let out = dice.forward(logits.clone(), target.clone(), ignore);
        check.tensor(
            &id,
            "dice_per_class_loss",
            out.per_class,
            &case["dice_per_class_loss"],
        );
        check.scalar(&id, "dice_loss", out.loss, &case["dice_loss"]);

        let ce = pixel_cross_entropy(logits.clone(), target.clone(), None);
        check.scalar(&id, "ce_mean", ce.mean, &case["ce_mean"]);
        check.tensor(&id, "ce_per_pixel", ce.per_item, &case["ce_per_pixel"]);
        if !case["hermes_ce_dice_total"].is_null() {
            let total = semisono_nn::losses::ce_dice_loss(logits, target, &dice).total;
            check.scalar(
                &id,
                "hermes_ce_dice_total",
                total,
                &case["hermes_ce_dice_total"],
            );
        }
    }
    check.finish(cases.len());
}

fn cross_entropy_cases(per_sample: bool) -> Vec<Value> {
    oracle_cases("cross_entropy")
        .into_iter()
        .filter(|c| c.get("ce_per_sample").is_some() == per_sample)
        .collect()
}

pub fn ce_pixel(dev: &Device, tolerance: Tolerance) {
    let cases = cross_entropy_cases(false);
    let mut check = Checker::new("ce_pixel", tolerance);
    for case in &cases {
        let id = id(case);
        let logits = float_tensor::<4>(&case["logits"], dev);
        let target = int_tensor::<3>(&case["target"], dev);
        let ignore = case["ignore_index"]
            .as_i64()
            .map(|index| ignore_mask_from_index(&target, index));
        let every_pixel_ignored = ignore
            .clone()
            .is_some_and(|m| int_tensor_to_vec(m.int()).iter().all(|&x| x == 1));
        let ce = pixel_cross_entropy(logits, target, ignore);
        check.tensor(&id, "ce_per_pixel", ce.per_item, &case["ce_per_pixel"]);
        check.scalar(&id, "ce_sum", ce.sum, &case["ce_sum"]);
        if every_pixel_ignored {
            // Documented deviation: PyTorch's mean is 0/0 = NaN, ours is 0 (see cross_entropy.rs).
            assert!(
                number(&case["ce_mean"]).is_nan(),
                "{id}: oracle mean should be NaN"
            );
            check.values(
                &id,
                "ce_mean(all ignored -> 0)",
                &float_tensor_to_vec(ce.mean),
                &[0.0],
            );
        } else {
            check.scalar(&id, "ce_mean", ce.mean, &case["ce_mean"]);
        }
    }
    check.finish(cases.len());
}

pub fn ce_cls(dev: &Device, tolerance: Tolerance) {
    let cases = cross_entropy_cases(true);
    let mut check = Checker::new("ce_cls", tolerance);
    for case in &cases {
        let id = id(case);
        let logits = float_tensor::<2>(&case["logits"], dev);
        let target = int_tensor::<1>(&case["target"], dev);
        let ignore = case["ignore_index"]
            .as_i64()
            .map(|index| ignore_mask_from_index(&target, index));
        let ce = class_cross_entropy(logits, target, ignore);
        check.tensor(&id, "ce_per_sample", ce.per_item, &case["ce_per_sample"]);
        check.scalar(&id, "ce_sum", ce.sum, &case["ce_sum"]);
        check.scalar(&id, "ce_mean", ce.mean, &case["ce_mean"]);
    }
    check.finish(cases.len());
}

pub fn cosine(dev: &Device, tolerance: Tolerance) {
    let cases = oracle_cases("cosine");
    let mut check = Checker::new("cosine", tolerance);
    for case in &cases {
        let id = id(case);
        let a = float_tensor::<2>(&case["a_raw"], dev);
        let b = float_tensor::<2>(&case["b_raw"], dev);
        check.tensor(
            &id,
            "a_normalized",
            l2_normalize(a.clone(), 1, 1e-12),
            &case["a_normalized"],
        );
        check.tensor(
            &id,
            "b_normalized",
            l2_normalize(b.clone(), 1, 1e-12),
            &case["b_normalized"],
        );
        let out = itc_loss(a, b);
        check.tensor(&id, "cosine_per_row", out.per_row, &case["cosine_per_row"]);
        check.scalar(&id, "loss", out.loss, &case["loss"]);
    }
    check.finish(cases.len());
}

pub fn softmax_consistency(dev: &Device, tolerance: Tolerance) {
    let cases = oracle_cases("softmax_consistency");
    let mut check = Checker::new("softmax_consistency", tolerance);
    for case in &cases {
        let id = id(case);
        let weak = float_tensor::<4>(&case["weak_logits"], dev);
        let strong = float_tensor::<4>(&case["strong_logits"], dev);
        let out = softmax_consistency_loss(weak, strong);
        check.tensor(&id, "per_sample", out.per_sample, &case["per_sample"]);
        check.scalar(&id, "loss", out.loss, &case["loss"]);
    }
    check.finish(cases.len());
}

pub fn contrastseg(dev: &Device, tolerance: Tolerance) {
    let cases = oracle_cases("contrastseg");
    let mut check = Checker::new("contrastseg", tolerance);
    for case in &cases {
        let id = id(case);
        let loss = PixelContrastConfig::new()
            .with_temperature(number(&case["temperature"]))
            .with_base_temperature(number(&case["base_temperature"]))
            .init();
        let features = float_tensor::<3>(&case["features"], dev);
        // Labels are float class ids in the oracle.
        let labels = int_tensor::<1>(&case["labels"], dev);
        let per_row = loss.per_row(features.clone(), labels.clone());
        check.tensor(&id, "per_row_loss", per_row, &case["per_row_loss"]);
        check.scalar(
            &id,
            "loss",
            loss.contrastive(features, labels),
            &case["loss"],
        );
    }
    check.finish(cases.len());
}
