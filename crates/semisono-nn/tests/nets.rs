//! Shapes, the backbone registry, torchvision key compatibility, and a few training steps.

mod common;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor};

use semisono_nn::losses::{ce_dice_loss, class_cross_entropy, DiceLossConfig};
use semisono_nn::nets::{
    find_backbone, BackboneConfig, ClsModelConfig, ResNetConfig, SegModelConfig, BACKBONES,
};
use semisono_nn::ops::float_tensor_to_vec;
use semisono_nn::saliency::vanilla_saliency;

use common::torch_keys::TorchKeys;

fn small_backbone(width: f64) -> BackboneConfig {
    BackboneConfig::new().with_width_multiplier(width)
}

fn images(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Uniform(0.0, 1.0), device)
}

fn row_norms(x: Tensor<2>) -> Vec<f64> {
    float_tensor_to_vec(x.powi_scalar(2).sum_dim(1).sqrt())
}

#[test]
fn resnet18_stage_shapes_follow_the_width_multiplier() {
    let device = Device::flex();
    let net = ResNetConfig::resnet18()
        .with_width_multiplier(0.25)
        .init(&device);
    let f = net.forward_features(images([2, 3, 64, 64], &device));
    assert_eq!(f.stem.dims(), [2, 16, 32, 32]);
    assert_eq!(f.pooled.dims(), [2, 16, 16, 16]);
    assert_eq!(f.layer1.dims(), [2, 16, 16, 16]);
    assert_eq!(f.layer2.dims(), [2, 32, 8, 8]);
    assert_eq!(f.layer3.dims(), [2, 64, 4, 4]);
    assert_eq!(f.layer4.unwrap().dims(), [2, 128, 2, 2]);
}

#[test]
fn resnet34_has_its_block_counts() {
    let device = Device::flex();
    let net = ResNetConfig::resnet34()
        .with_width_multiplier(0.125)
        .init(&device);
    let counts = [
        net.layer1.len(),
        net.layer2.len(),
        net.layer3.len(),
        net.layer4.len(),
    ];
    assert_eq!(counts, [3, 4, 6, 3]);
    // Only the first block of stages 2-4 projects its shortcut.
    assert!(net.layer1.iter().all(|b| b.downsample.is_empty()));
    assert_eq!(net.layer2[0].downsample.len(), 2);
    assert!(net.layer2[1..].iter().all(|b| b.downsample.is_empty()));
}

#[test]
fn segmenter_outputs_have_hermes_shapes() {
    let device = Device::flex();
    let model = SegModelConfig::new()
        .with_backbone(small_backbone(0.25))
        .init(&device)
        .unwrap();
    let out = model.forward(images([2, 3, 64, 64], &device));
    assert_eq!(out.logits.dims(), [2, 2, 64, 64]);
    assert_eq!(out.x_up1.dims(), [2, 32, 8, 8]);
    assert_eq!(out.x_up2.dims(), [2, 16, 16, 16]);
    assert_eq!(out.x_up3.dims(), [2, 16, 32, 32]);
    assert_eq!(out.x3.dims(), [2, 64, 4, 4]);
    assert_eq!(out.embedding.dims(), [2, 256, 8, 8]);
    assert_eq!(out.consistency.dims(), [2, 256]);
    // Unit pixel embeddings; the consistency vector ends in a ReLU.
    let norms = float_tensor_to_vec(out.embedding.powi_scalar(2).sum_dim(1).sqrt());
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
    assert!(float_tensor_to_vec(out.consistency)
        .iter()
        .all(|&g| g >= 0.0));
}

#[test]
fn segmenter_handles_sizes_not_divisible_by_16() {
    let device = Device::flex();
    let model = SegModelConfig::new()
        .with_backbone(small_backbone(0.125))
        .init(&device)
        .unwrap();
    assert_eq!(
        model.forward_logits(images([1, 3, 50, 70], &device)).dims(),
        [1, 2, 50, 70]
    );
}

#[test]
fn classifier_outputs_have_hermes_shapes() {
    let device = Device::flex();
    let model = ClsModelConfig::new()
        .with_backbone(small_backbone(0.25))
        .with_num_classes(3)
        .init(&device)
        .unwrap();
    let out = model.forward(images([2, 3, 64, 64], &device));
    assert_eq!(out.logits.dims(), [2, 3]);
    assert_eq!(out.features.dims(), [2, 128]);
    assert_eq!(out.projection.dims(), [2, 128]);
    assert_eq!(out.consistency.dims(), [2, 256]);
    assert!(row_norms(out.projection)
        .iter()
        .all(|n| (n - 1.0).abs() < 1e-4));
}

#[test]
fn registry_knows_its_backbones_and_names_them_on_error() {
    assert_eq!(
        BACKBONES.iter().map(|b| b.name).collect::<Vec<_>>(),
        ["resnet18", "resnet34", "res2net50_v1b", "res2net101_v1b"]
    );
    assert_eq!(find_backbone("resnet34").unwrap().layers, [3, 4, 6, 3]);
    assert_eq!(
        find_backbone("res2net101_v1b").unwrap().layers,
        [3, 4, 23, 3]
    );
    let err = SegModelConfig::new()
        .with_backbone(BackboneConfig::new().with_name("resnet1000".into()))
        .init(&Device::flex())
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("resnet1000") && message.contains("resnet18, resnet34, res2net50_v1b")
    );
}

/// torchvision `resnet18().state_dict()` keys without `fc.*` and `*.num_batches_tracked`.
fn torchvision_resnet18_keys() -> Vec<String> {
    let bn = |prefix: &str| -> Vec<String> {
        ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|p| format!("{prefix}.{p}"))
            .collect()
    };
    let mut keys = vec!["conv1.weight".to_string()];
    keys.extend(bn("bn1"));
    for layer in 1..=4 {
        for block in 0..2 {
            let p = format!("layer{layer}.{block}");
            keys.push(format!("{p}.conv1.weight"));
            keys.extend(bn(&format!("{p}.bn1")));
            keys.push(format!("{p}.conv2.weight"));
            keys.extend(bn(&format!("{p}.bn2")));
            if layer > 1 && block == 0 {
                keys.push(format!("{p}.downsample.0.weight"));
                keys.extend(bn(&format!("{p}.downsample.1")));
            }
        }
    }
    keys
}

#[test]
fn resnet18_parameter_paths_are_torchvision_state_dict_keys() {
    let net = ResNetConfig::resnet18().init(&Device::flex());
    let mut got = TorchKeys::of(&net);
    let mut want = torchvision_resnet18_keys();
    got.sort();
    want.sort();
    assert_eq!(want.len(), 100);
    assert_eq!(got, want);
}

fn random_mask(shape: [usize; 3], device: &Device) -> Tensor<3, Int> {
    Tensor::<3>::random(shape, Distribution::Uniform(0.0, 1.0), device)
        .greater_elem(0.5)
        .int()
}

#[test]
fn segmenter_loss_decreases_over_a_few_adam_steps() {
    let device = Device::flex().autodiff();
    device.seed(7);
    let mut model = SegModelConfig::new()
        .with_backbone(small_backbone(0.125))
        .with_dropout(0.0)
        .init(&device)
        .unwrap();
    let mut optim = AdamConfig::new().init();
    let dice = DiceLossConfig::new().init();
    let x = images([2, 3, 32, 32], &device);
    let y = random_mask([2, 32, 32], &device);
    let mut losses = Vec::new();
    for _ in 0..6 {
        let loss = ce_dice_loss(model.forward_logits(x.clone()), y.clone(), &dice).total;
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[5] < losses[0], "loss did not decrease: {losses:?}");
}

#[test]
fn classifier_loss_decreases_over_a_few_adam_steps() {
    let device = Device::flex().autodiff();
    device.seed(11);
    let mut model = ClsModelConfig::new()
        .with_backbone(small_backbone(0.125))
        .init(&device)
        .unwrap();
    let mut optim = AdamConfig::new().init();
    let x = images([4, 3, 32, 32], &device);
    let y = Tensor::<1, Int>::from_ints([0, 1, 1, 0], &device);
    let mut losses = Vec::new();
    for _ in 0..6 {
        let loss = class_cross_entropy(model.forward_logits(x.clone()), y.clone(), None).mean;
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[5] < losses[0], "loss did not decrease: {losses:?}");
}

#[test]
fn classifier_saliency_in_eval_mode_has_one_value_per_pixel() {
    let device = Device::flex().autodiff();
    let model = ClsModelConfig::new()
        .with_backbone(small_backbone(0.125))
        .init(&device)
        .unwrap();
    let eval = model.valid();
    let out = vanilla_saliency(images([2, 3, 32, 32], &device), |x| eval.forward_logits(x));
    assert_eq!(out.input_grad.dims(), [2, 3, 32, 32]);
    assert_eq!(out.map.dims(), [2, 32, 32]);
    let map = float_tensor_to_vec(out.map);
    assert!(map.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(map.iter().any(|&v| v > 0.0));
}

#[test]
fn every_segmenter_head_receives_gradients_from_the_hermes_losses() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = SegModelConfig::new()
        .with_backbone(small_backbone(0.125))
        .init(&device)
        .unwrap();
    let x = images([2, 3, 32, 32], &device);
    let out = model.forward(x);
    let target = random_mask([2, 32, 32], &device);
    let dice = DiceLossConfig::new().init();
    // A stand-in for g_cls: a constant (cross-network inputs are stop-gradients).
    let g_cls = Tensor::<2>::random([2, 256], Distribution::Uniform(0.0, 1.0), &device);
    let loss = ce_dice_loss(out.logits, target, &dice).total
        + semisono_nn::losses::itc_loss(g_cls, out.consistency).loss
        + out.embedding.mean();
    let grads = loss.backward();
    let has_grad = |p: &Param<Tensor<4>>| {
        p.val()
            .grad(&grads)
            .is_some_and(|g| float_tensor_to_vec(g).iter().all(|v| v.is_finite()))
    };
    assert!(has_grad(&model.decoder.head.weight));
    assert!(has_grad(&model.pixel_projection.conv2.weight));
    let fc2 = model.consistency.fc2.weight.val().grad(&grads);
    assert!(fc2.is_some_and(|g| float_tensor_to_vec(g).iter().all(|v| v.is_finite())));
}
