//! IAS attention and the saliency bridge: shapes for both backbone pairs, channel counts derived
//! from the backbones, the effect on the classifier, and the stop-gradient into the segmenter.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use semisono_nn::nets::{
    BackboneConfig, BridgeLevel, ClsAttentionConfig, ClsModel, ClsModelConfig, Res2NetConfig,
    SegModel, SegModelConfig, UNetDecoderConfig,
};
use semisono_nn::ops::float_tensor_to_vec;
use semisono_nn::saliency::vanilla_saliency;

fn images(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Uniform(0.0, 1.0), device)
}

fn backbone(name: &str, width: f64, in_channels: usize) -> BackboneConfig {
    BackboneConfig::new()
        .with_name(name.into())
        .with_width_multiplier(width)
        .with_in_channels(in_channels)
}

fn pair(seg: &str, width: f64, device: &Device) -> (SegModel, ClsModel) {
    let seg = SegModelConfig::new()
        .with_backbone(backbone(seg, width, 3))
        .init(device)
        .unwrap();
    let cls = ClsModelConfig::new()
        .with_backbone(backbone("resnet18", width, 3))
        .with_attention(Some(seg.feature_channels()))
        .init(device)
        .unwrap();
    (seg, cls)
}

fn dims4(p: &Param<Tensor<4>>) -> [usize; 4] {
    p.val().dims()
}

#[test]
fn resnet18_pair_at_quarter_width_runs_every_site() {
    let d = Device::flex();
    let (seg, cls) = pair("resnet18", 0.25, &d);
    assert_eq!(seg.feature_channels(), [16, 16, 32, 64]);
    let x = images([2, 3, 64, 64], &d);
    let feats = seg.forward(x.clone()).ias_features();
    let out = cls.forward_with_seg(x, &feats);
    assert_eq!(out.logits.dims(), [2, 2]);
    assert_eq!(out.stages.stem.dims(), [2, 16, 32, 32]);
    assert_eq!(out.stages.layer1.dims(), [2, 16, 16, 16]);
    assert_eq!(out.stages.layer2.dims(), [2, 32, 8, 8]);
    assert_eq!(out.stages.layer3.dims(), [2, 64, 4, 4]);
    let a = cls.attention.as_ref().unwrap();
    assert_eq!(dims4(&a.ias4.fuse.weight), [16, 32, 3, 3]);
    assert_eq!(dims4(&a.ias1.fuse.weight), [64, 128, 3, 3]);
    // P1: x3 (64) → max(32, 64) → 64.
    assert_eq!(dims4(&a.p1.conv1.weight), [64, 64, 3, 3]);
    assert_eq!(dims4(&a.ias1.spatial.weight), [1, 2, 3, 3]);
}

#[test]
fn res2net101_segmenter_with_resnet18_classifier() {
    // Small width so that the 23-block stage stays cheap; the channels follow the backbones.
    let d = Device::flex();
    let (seg, cls) = pair("res2net101_v1b", 0.125, &d);
    assert_eq!(seg.feature_channels(), [8, 32, 64, 128]);
    let x = images([1, 3, 32, 32], &d);
    let feats = seg.forward(x.clone()).ias_features();
    let out = cls.forward_with_seg(x, &feats);
    assert_eq!(out.logits.dims(), [1, 2]);
    assert_eq!(out.stages.layer3.dims(), [1, 32, 2, 2]);
    let a = cls.attention.as_ref().unwrap();
    assert_eq!(dims4(&a.p3.conv1.weight), [16, 32, 3, 3]);
    assert_eq!(dims4(&a.p3.conv2.weight), [8, 16, 3, 3]);
    assert_eq!(dims4(&a.p1.conv2.weight), [32, 64, 3, 3]);
}

#[test]
fn full_width_pair_has_the_spec_channels() {
    // Spec §2.2's table, from the backbones' own channel counts (no network is run).
    let res2net = Res2NetConfig::res2net101().stage_channels();
    let resnet = semisono_nn::nets::ResNetConfig::resnet18().stage_channels();
    let seg = [64, res2net[0], res2net[1], res2net[2]];
    let cls = [resnet[0], resnet[0], resnet[1], resnet[2]];
    assert_eq!((seg, cls), ([64, 256, 512, 1024], [64, 64, 128, 256]));
    let a = ClsAttentionConfig::new(cls, seg).init(&Device::flex());
    assert_eq!(dims4(&a.ias4.fuse.weight), [64, 128, 3, 3]);
    assert_eq!(dims4(&a.ias3.fuse.weight), [64, 128, 3, 3]);
    assert_eq!(dims4(&a.ias2.fuse.weight), [128, 256, 3, 3]);
    assert_eq!(dims4(&a.ias1.fuse.weight), [256, 512, 3, 3]);
    assert_eq!(a.ias1.fc1.weight.val().dims(), [256, 64]); // Burn stores [in, out]
    assert_eq!(dims4(&a.p3.conv1.weight), [128, 256, 3, 3]);
    assert_eq!(dims4(&a.p3.conv2.weight), [64, 128, 3, 3]);
    assert_eq!(dims4(&a.p2.conv1.weight), [256, 512, 3, 3]);
    assert_eq!(dims4(&a.p2.conv2.weight), [128, 256, 3, 3]);
    assert_eq!(dims4(&a.p1.conv1.weight), [512, 1024, 3, 3]);
    assert_eq!(dims4(&a.p1.conv2.weight), [256, 512, 3, 3]);
}

#[test]
fn attention_changes_the_output_and_stops_at_detached_features() {
    let d = Device::flex().autodiff();
    d.seed(11);
    let (seg, cls) = pair("resnet18", 0.125, &d);
    let x = images([2, 3, 32, 32], &d);
    let plain = float_tensor_to_vec(cls.forward(x.clone()).logits);

    let feats = seg.forward(x.clone()).ias_features();
    let with = cls.forward_with_seg(x.clone(), &feats.clone().detach());
    let attended = float_tensor_to_vec(with.logits.clone());
    let diff: f64 = plain
        .iter()
        .zip(&attended)
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(diff > 1e-6, "IAS left the logits unchanged: {plain:?}");
    let logits_only =
        float_tensor_to_vec(cls.forward_logits_with_seg(x.clone(), &feats.clone().detach()));
    assert_eq!(logits_only, attended);

    // Detached: the classifier's loss reaches the attention weights, not the segmenter.
    let grads = with.logits.sum().backward();
    let a = cls.attention.as_ref().unwrap();
    assert!(a.ias4.fuse.weight.val().grad(&grads).is_some());
    assert!(a.p1.conv1.weight.val().grad(&grads).is_some());
    assert!(seg.decoder.fuse3.conv1.weight.val().grad(&grads).is_none());
    assert!(seg.decoder.up1.conv1.weight.val().grad(&grads).is_none());

    // Not detached, the same graph would reach the segmenter: the check above is meaningful.
    let grads = cls.forward_with_seg(x, &feats).logits.sum().backward();
    assert!(seg.decoder.fuse3.conv1.weight.val().grad(&grads).is_some());
}

#[test]
fn attention_off_model_has_no_attention_parameters() {
    let d = Device::flex();
    let plain = ClsModelConfig::new()
        .with_backbone(backbone("resnet18", 0.125, 1))
        .init(&d)
        .unwrap();
    let mut with = ClsModelConfig::new()
        .with_backbone(backbone("resnet18", 0.125, 1))
        .init(&d)
        .unwrap();
    let before = with.num_params();
    assert_eq!(plain.num_params(), before);
    with.attach_attention([8, 8, 16, 32], &d);
    assert!(with.num_params() > before);
}

#[test]
fn saliency_bridge_shapes_at_both_levels() {
    let d = Device::flex();
    for (level, in_channels) in [(BridgeLevel::Quarter, 1), (BridgeLevel::Eighth, 3)] {
        let seg = SegModelConfig::new()
            .with_backbone(backbone("resnet18", 0.25, in_channels))
            .init(&d)
            .unwrap()
            .with_saliency_bridge(level, in_channels, &d);
        assert!(seg.has_saliency_bridge());
        let [c0, c1, c2, _] = seg.feature_channels();
        let dec = &seg.decoder;
        match level {
            // u2 = CB(2·c1 + in + 1, c1, c1): the output keeps u2's width (the spec's fix).
            BridgeLevel::Quarter => {
                assert_eq!(
                    dims4(&dec.fuse2.conv1.weight),
                    [c1, 2 * c1 + in_channels + 1, 3, 3]
                );
                assert_eq!(dims4(&dec.fuse2.conv2.weight), [c1, c1, 3, 3]);
                assert_eq!(dims4(&dec.fuse1.conv1.weight), [c2, 2 * c2, 3, 3]);
            }
            BridgeLevel::Eighth => {
                assert_eq!(
                    dims4(&dec.fuse1.conv1.weight),
                    [c2, 2 * c2 + in_channels + 1, 3, 3]
                );
                assert_eq!(dims4(&dec.fuse2.conv1.weight), [c1, 2 * c1, 3, 3]);
            }
        }
        let seg = seg.valid();
        let x = images([2, in_channels, 64, 64], &d);
        let s = images([2, 1, 64, 64], &d);
        let out = seg.forward_with_saliency(x.clone(), Some(s.clone()));
        assert_eq!(out.logits.dims(), [2, 2, 64, 64]);
        assert_eq!(out.x_up2.dims(), [2, c1, 16, 16]);
        assert_eq!(out.x_up3.dims(), [2, c0, 32, 32]);
        let logits = float_tensor_to_vec(seg.forward_logits_with_saliency(x.clone(), Some(s)));
        assert_eq!(logits, float_tensor_to_vec(out.logits));
        // The map is read: another map gives other logits.
        let other = float_tensor_to_vec(
            seg.forward_logits_with_saliency(x, Some(Tensor::zeros([2, 1, 64, 64], &d))),
        );
        assert_ne!(logits, other);
    }
}

#[test]
fn full_width_bridge_blocks_are_the_spec_fix() {
    // Spec §13: CB(516, 256, 256) at 1/4, or the older CB(1028, 512, 512) at 1/8, for RGB input.
    let d = Device::flex();
    let mut quarter = UNetDecoderConfig::new([64, 256, 512, 1024]).init(&d);
    quarter.attach_bridge(BridgeLevel::Quarter, 4, &d);
    assert_eq!(dims4(&quarter.fuse2.conv1.weight), [256, 516, 3, 3]);
    assert_eq!(dims4(&quarter.fuse2.conv2.weight), [256, 256, 3, 3]);
    let mut eighth = UNetDecoderConfig::new([64, 256, 512, 1024]).init(&d);
    eighth.attach_bridge(BridgeLevel::Eighth, 4, &d);
    assert_eq!(dims4(&eighth.fuse1.conv1.weight), [512, 1028, 3, 3]);
}

#[test]
fn saliency_from_an_eval_classifier_feeds_the_segmenter() {
    let d = Device::flex().autodiff();
    let cls = ClsModelConfig::new()
        .with_backbone(backbone("resnet18", 0.125, 1))
        .init(&d)
        .unwrap();
    let seg = SegModelConfig::new()
        .with_backbone(backbone("resnet18", 0.125, 1))
        .init(&d)
        .unwrap()
        .with_saliency_bridge(BridgeLevel::Quarter, 1, &d);
    let x = images([2, 1, 32, 32], &d);
    let eval = cls.valid();
    let s = vanilla_saliency(x.clone(), |x| eval.forward_logits(x)).map;
    let s = s.unsqueeze_dim::<4>(1).detach();
    let s = Tensor::<4>::from_data(s.into_data(), &d);
    let out = seg.forward_with_saliency(x, Some(s));
    assert_eq!(out.logits.dims(), [2, 2, 32, 32]);
    let grads = out.logits.sum().backward();
    assert!(seg.decoder.fuse2.conv1.weight.val().grad(&grads).is_some());
    assert!(cls.cls_head.weight.val().grad(&grads).is_none());
}
