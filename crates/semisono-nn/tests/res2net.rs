//! Res2Net v1b backbones: stage shapes, the Hermes decoder widths on Res2Net-101, the reference
//! implementation's `state_dict` keys, and a training step through the segmenter.

mod common;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor};

use common::torch_keys::TorchKeys;
use semisono_nn::losses::{ce_dice_loss, DiceLossConfig};
use semisono_nn::nets::{BackboneConfig, Res2NetConfig, SegModelConfig};

fn images(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Uniform(0.0, 1.0), device)
}

#[test]
fn res2net50_stage_shapes_follow_the_width_multiplier() {
    let device = Device::flex();
    let net = Res2NetConfig::res2net50()
        .with_width_multiplier(0.25)
        .init(&device);
    let f = net.forward_features(images([2, 3, 64, 64], &device));
    assert_eq!(f.stem.dims(), [2, 16, 32, 32]);
    assert_eq!(f.pooled.dims(), [2, 16, 16, 16]);
    assert_eq!(f.layer1.dims(), [2, 64, 16, 16]);
    assert_eq!(f.layer2.dims(), [2, 128, 8, 8]);
    assert_eq!(f.layer3.dims(), [2, 256, 4, 4]);
    assert_eq!(f.layer4.unwrap().dims(), [2, 512, 2, 2]);
    assert_eq!(net.channels(), [16, 64, 128, 256, 512]);
}

#[test]
fn hermes_segmenter_on_res2net101_has_the_spec_widths() {
    // Spec §2.1 at full width: encoder x0..x3 = 64, 256, 512, 1024 channels; groups of 26/52/104.
    let model = SegModelConfig::new()
        .with_backbone(BackboneConfig::new().with_name("res2net101_v1b".into()))
        .init(&Device::flex())
        .unwrap();
    assert_eq!(model.encoder.channels()[..4], [64, 256, 512, 1024]);
    let d = &model.decoder;
    assert_eq!(d.up1.conv1.weight.dims(), [1024, 1024, 3, 3]);
    assert_eq!(d.up1.conv2.weight.dims(), [512, 1024, 3, 3]);
    assert_eq!(d.fuse1.conv1.weight.dims(), [512, 1024, 3, 3]);
    assert_eq!(d.up2.conv2.weight.dims(), [256, 512, 3, 3]);
    assert_eq!(d.fuse2.conv1.weight.dims(), [256, 512, 3, 3]);
    assert_eq!(d.up3.conv2.weight.dims(), [64, 256, 3, 3]);
    assert_eq!(d.fuse3.conv1.weight.dims(), [64, 128, 3, 3]);
    assert_eq!(d.head.weight.dims(), [2, 64, 1, 1]);
    assert_eq!(model.pixel_projection.conv2.weight.dims(), [256, 512, 1, 1]);
    // Burn stores linear weights as [in, out].
    assert_eq!(model.consistency.fc1.weight.dims(), [1024, 512]);
    let semisono_nn::nets::Backbone::Res2Net(net) = &model.encoder else {
        panic!("res2net101_v1b builds a Res2Net");
    };
    let counts = [
        net.layer1.len(),
        net.layer2.len(),
        net.layer3.len(),
        net.layer4.len(),
    ];
    assert_eq!(counts, [3, 4, 23, 0], "the segmenter leaves layer4 out");
    let widths: Vec<usize> = [&net.layer1[0], &net.layer2[0], &net.layer3[0]]
        .iter()
        .map(|b| b.width)
        .collect();
    assert_eq!(widths, [26, 52, 104]);
}

/// `res2net_v1b.py`'s `state_dict` keys for the given blocks per stage, without `fc.*`.
fn reference_keys(layers: [usize; 4]) -> Vec<String> {
    let bn = |prefix: &str| -> Vec<String> {
        ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|p| format!("{prefix}.{p}"))
            .collect()
    };
    let mut keys = vec!["conv1.0.weight".to_string()];
    keys.extend(bn("conv1.1"));
    keys.push("conv1.3.weight".into());
    keys.extend(bn("conv1.4"));
    keys.push("conv1.6.weight".into());
    keys.extend(bn("bn1"));
    for (stage, &blocks) in layers.iter().enumerate() {
        for block in 0..blocks {
            let p = format!("layer{}.{block}", stage + 1);
            keys.push(format!("{p}.conv1.weight"));
            keys.extend(bn(&format!("{p}.bn1")));
            for i in 0..3 {
                keys.push(format!("{p}.convs.{i}.weight"));
                keys.extend(bn(&format!("{p}.bns.{i}")));
            }
            keys.push(format!("{p}.conv3.weight"));
            keys.extend(bn(&format!("{p}.bn3")));
            if block == 0 {
                keys.push(format!("{p}.downsample.1.weight"));
                keys.extend(bn(&format!("{p}.downsample.2")));
            }
        }
    }
    keys
}

#[test]
fn res2net50_parameter_paths_are_the_reference_state_dict_keys() {
    let net = Res2NetConfig::res2net50()
        .with_width_multiplier(0.125)
        .init(&Device::flex());
    let mut got = TorchKeys::of(&net);
    let mut want = reference_keys([3, 4, 6, 3]);
    got.sort();
    want.sort();
    assert_eq!(want.len(), 435);
    assert_eq!(got, want);
}

#[test]
fn segmenter_on_res2net_trains() {
    let device = Device::flex().autodiff();
    device.seed(5);
    let mut model = SegModelConfig::new()
        .with_backbone(
            BackboneConfig::new()
                .with_name("res2net50_v1b".into())
                .with_width_multiplier(0.125),
        )
        .with_dropout(0.0)
        .init(&device)
        .unwrap();
    let mut optim = AdamConfig::new().init();
    let dice = DiceLossConfig::new().init();
    let x = images([2, 3, 32, 32], &device);
    let y: Tensor<3, Int> =
        Tensor::<3>::random([2, 32, 32], Distribution::Uniform(0.0, 1.0), &device)
            .greater_elem(0.5)
            .int();
    let mut losses = Vec::new();
    for _ in 0..6 {
        let loss = ce_dice_loss(model.forward_logits(x.clone()), y.clone(), &dice).total;
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[5] < losses[0], "loss did not decrease: {losses:?}");
    assert_eq!(
        model
            .valid()
            .forward_logits(images([1, 3, 32, 32], &Device::flex()))
            .dims(),
        [1, 2, 32, 32]
    );
}
