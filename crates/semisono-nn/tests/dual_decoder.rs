//! MLRPL's dual-decoder segmenter and the U-Net decoder's up-sampling modes.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

use semisono_nn::nets::{
    channel_dropout, BackboneConfig, DualDecoderSegConfig, UNetDecoderConfig, Upsample,
};
use semisono_nn::ops::float_tensor_to_vec;

fn images(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Uniform(0.0, 1.0), device)
}

fn net(up: [Upsample; 2], device: &Device) -> semisono_nn::nets::DualDecoderSeg {
    DualDecoderSegConfig::new()
        .with_backbone(
            BackboneConfig::new()
                .with_width_multiplier(0.25)
                .with_in_channels(1),
        )
        .with_upsample(up)
        .init(device)
        .unwrap()
}

#[test]
fn both_decoders_give_full_size_logits_and_features() {
    let d = Device::flex().autodiff();
    // 36 is not a multiple of 16: the ×2 steps miss (3 → 6 against 5) and are resized.
    for size in [32, 36] {
        for up in [
            [Upsample::Transposed, Upsample::Nearest],
            [Upsample::Bilinear, Upsample::Nearest],
        ] {
            let o = net(up, &d).forward(images([2, 1, size, size], &d));
            for k in 0..2 {
                assert_eq!(o.logits[k].dims(), [2, 2, size, size], "{up:?}");
                // ResNet-18 at width 0.25: the stem's 16 channels, as the spec's 16.
                assert_eq!(o.features[k].dims(), [2, 16, size, size], "{up:?}");
            }
        }
    }
}

#[test]
fn transposed_mode_adds_four_learned_upsamplings_and_the_others_none() {
    let d = Device::flex();
    let count = |up| {
        UNetDecoderConfig::new([16, 16, 32, 64])
            .with_upsample(up)
            .init(&d)
            .num_params()
    };
    let (bilinear, nearest, transposed) = (
        count(Upsample::Bilinear),
        count(Upsample::Nearest),
        count(Upsample::Transposed),
    );
    assert_eq!(bilinear, nearest);
    // ConvTranspose2d(c → c, 2×2) with bias for c = 64, 32, 16, 16.
    let extra: usize = [64, 32, 16, 16].iter().map(|c| c * c * 4 + c).sum();
    assert_eq!(transposed - bilinear, extra);
    let default = UNetDecoderConfig::new([16, 16, 32, 64]).init(&d);
    assert_eq!(default.upsample, Upsample::Bilinear);
    assert!(default.transposed.is_empty());
}

#[test]
fn decoders_differ_and_evaluation_is_deterministic() {
    let d = Device::flex().autodiff();
    let m = net([Upsample::Transposed, Upsample::Nearest], &d).valid();
    let x = images([2, 1, 32, 32], &d.clone().without_autodiff());
    let [a1, a2] = m.forward_logits(x.clone());
    let [b1, b2] = m.forward_logits(x);
    assert_eq!(float_tensor_to_vec(a1.clone()), float_tensor_to_vec(b1));
    assert_eq!(float_tensor_to_vec(a2.clone()), float_tensor_to_vec(b2));
    assert_ne!(float_tensor_to_vec(a1), float_tensor_to_vec(a2));
}

#[test]
fn channel_dropout_drops_whole_channels_in_training_only() {
    let d = Device::flex().autodiff();
    d.seed(7);
    let x = Tensor::<4>::ones([4, 32, 3, 3], &d);
    let v = float_tensor_to_vec(channel_dropout(x.clone(), 0.5));
    let mut dropped = 0;
    for ch in v.chunks(9) {
        // A channel is all 0 or all 1/(1 − p) = 2.
        assert!(ch.iter().all(|&e| e == 0.0) || ch.iter().all(|&e| e == 2.0));
        dropped += usize::from(ch[0] == 0.0);
    }
    assert!((32..=96).contains(&dropped), "{dropped} of 128 dropped");
    let plain = Tensor::<4>::ones([4, 32, 3, 3], &d.clone().without_autodiff());
    assert!(float_tensor_to_vec(channel_dropout(plain, 0.5))
        .iter()
        .all(|&e| e == 1.0));
    assert!(float_tensor_to_vec(channel_dropout(x, 0.0))
        .iter()
        .all(|&e| e == 1.0));
}

#[test]
fn training_forward_feeds_the_dropped_feature_to_the_head() {
    // The logits are the head applied to the returned (dropped) feature: the reference's x9 is
    // both the feature and the head's input. Dropout 0.5 makes the undropped feature differ.
    let d = Device::flex().autodiff();
    let m = net([Upsample::Transposed, Upsample::Nearest], &d);
    let o = m.forward(images([2, 1, 32, 32], &d));
    for (k, decoder) in [&m.decoder1, &m.decoder2].into_iter().enumerate() {
        let again = decoder.head.forward(o.features[k].clone());
        let (a, b) = (
            float_tensor_to_vec(again),
            float_tensor_to_vec(o.logits[k].clone()),
        );
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
    }
}
