//! Loading published backbone weights (`semisono_nn::pretrained`): real `.pth` files written by
//! PyTorch (`bench/make_weight_fixtures.py`: a width-1/8 torchvision ResNet-18 in the zip format, a
//! width-1/8 one-block-per-stage Res2Net v1b in the legacy format) checked against PyTorch's own
//! forward pass, safetensors round trips, every error, and the ImageNet input normalisation.

mod common;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::Linear;
use burn::store::{
    BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, PytorchStore, SafetensorsStore,
};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;

use common::{Checker, Tolerance};
use semisono_nn::nets::{
    find_backbone, Backbone, BackboneConfig, EncoderFeatures, InputNormConfig, Res2NetConfig,
    ResNetConfig,
};
use semisono_nn::ops::float_tensor_to_vec;
use semisono_nn::pretrained::{load_encoder_weights, PretrainedError, WeightsFormat};

/// f32 convolutions through 18 layers, summed in another order than PyTorch's.
const FORWARD: Tolerance = Tolerance {
    rel: 1e-4,
    abs: 2e-5,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn oracle() -> Value {
    let path = fixture("pretrained_oracle.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// The oracle's input: `x[n, c, h, w] = ((7n + 13c + 31h + 17w) mod 97) / 96`.
fn fixed_input(o: &Value, device: &Device) -> Tensor<4> {
    let shape: Vec<usize> = o["input"]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let [n, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
    let mut v = Vec::with_capacity(n * c * h * w);
    for ni in 0..n {
        for ci in 0..c {
            for hi in 0..h {
                for wi in 0..w {
                    let k = (7 * ni + 13 * ci + 31 * hi + 17 * wi) % 97;
                    v.push(k as f32 / 96.0);
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(v, [n, c, h, w]), device)
}

/// A scratch path that no other test uses.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("semisono-pretrained-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn resnet18(width: f64, device: &Device) -> Backbone {
    Backbone::ResNet(
        ResNetConfig::resnet18()
            .with_width_multiplier(width)
            .init(device),
    )
}

fn resnet34(width: f64, device: &Device) -> Backbone {
    Backbone::ResNet(
        ResNetConfig::resnet34()
            .with_width_multiplier(width)
            .init(device),
    )
}

fn res2net_1111(device: &Device) -> Backbone {
    Backbone::Res2Net(
        Res2NetConfig::new([1, 1, 1, 1])
            .with_width_multiplier(0.125)
            .init(device),
    )
}

fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([n, c])
}

/// Compares the stages present in `f` (and the pooled features when layer4 is) with `want`.
fn check_features(check: &mut Checker, id: &str, f: EncoderFeatures, want: &Value) {
    check.tensor(id, "stem", f.stem, &want["stem"]);
    check.tensor(id, "layer1", f.layer1, &want["layer1"]);
    check.tensor(id, "layer2", f.layer2, &want["layer2"]);
    check.tensor(id, "layer3", f.layer3, &want["layer3"]);
    if let Some(l4) = f.layer4 {
        check.tensor(id, "layer4", l4.clone(), &want["layer4"]);
        check.tensor(id, "features", global_avg_pool(l4), &want["features"]);
    }
}

/// torchvision's classifier, to load `fc.*` of the fixture and compare logits too.
#[derive(Module, Debug)]
struct Head {
    fc: Linear,
}

fn fc_of(path: &Path, features: usize, classes: usize, device: &Device) -> Linear {
    let mut head = Head {
        fc: burn::nn::LinearConfig::new(features, classes).init(device),
    };
    let mut store = PytorchStore::from_file(path).allow_partial(true);
    let r = head.load_from(&mut store).unwrap();
    assert_eq!(r.applied.len(), 2, "{r}");
    head.fc
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    float_tensor_to_vec(t)
}

fn first_weight(b: &Backbone) -> Vec<f64> {
    match b {
        Backbone::ResNet(n) => values(n.conv1.weight.val()),
        Backbone::Res2Net(n) => match &n.conv1[0] {
            semisono_nn::nets::SequentialLayer::Conv(c) => values(c.weight.val()),
            _ => unreachable!(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Real .pth files against PyTorch

#[test]
fn torchvision_resnet18_pth_gives_pytorchs_features_and_logits() {
    let device = Device::flex();
    let o = oracle();
    let case = &o["resnet18_w0125"];
    let path = fixture("resnet18_w0125.pth");
    let mut net = resnet18(0.125, &device);
    let report = load_encoder_weights(&mut net, &path).unwrap();

    // 20 convolutions/BNs... : every tensor but fc.* (2) and the 20 num_batches_tracked.
    let total = case["tensors"].as_u64().unwrap() as usize;
    assert_eq!(report.format, WeightsFormat::Pytorch);
    assert_eq!(report.prefix, "");
    assert_eq!(report.skipped.len(), 22, "{:?}", report.skipped);
    assert_eq!(report.applied, total - 22);
    assert!(report.skipped.iter().any(|k| k == "fc.weight"));
    assert!(report
        .skipped
        .iter()
        .filter(|k| *k != "fc.weight" && *k != "fc.bias")
        .all(|k| k.ends_with(".num_batches_tracked")));
    assert!(report.to_string().contains("tensors loaded"), "{report}");

    let net = net.valid();
    let f = net.forward_features(fixed_input(&o, &device));
    let features = global_avg_pool(f.layer4.clone().unwrap());
    let logits = fc_of(&path, 64, 3, &device).forward(features);
    let mut check = Checker::new("resnet18 .pth", FORWARD);
    check.tensor("resnet18", "logits", logits, &case["plain"]["logits"]);
    check_features(&mut check, "resnet18", f, &case["plain"]);
    check.finish(1);
}

#[test]
fn res2net_v1b_legacy_pth_gives_the_reference_forward() {
    let device = Device::flex();
    let o = oracle();
    let case = &o["res2net_v1b_1111_w0125"];
    let mut net = res2net_1111(&device);
    let report = load_encoder_weights(&mut net, &fixture("res2net_v1b_1111_w0125.pth")).unwrap();
    let total = case["tensors"].as_u64().unwrap() as usize;
    // BNs: 2 in the stem, bn1, and per block bn1 + 3 bns + bn3 + the shortcut's = 3 + 4·6.
    let batch_norms = 3 + 4 * 6;
    assert_eq!(
        report.skipped.len(),
        batch_norms + 2,
        "{:?}",
        report.skipped
    );
    assert_eq!(report.applied, total - batch_norms - 2);

    let f = net.valid().forward_features(fixed_input(&o, &device));
    let mut check = Checker::new("res2net .pth", FORWARD);
    check_features(&mut check, "res2net", f, &case["plain"]);
    check.finish(1);
}

#[test]
fn an_encoder_without_its_last_stage_skips_layer4() {
    let device = Device::flex();
    let o = oracle();
    let case = &o["resnet18_w0125"];
    let mut net = Backbone::ResNet(
        ResNetConfig::resnet18()
            .with_width_multiplier(0.125)
            .with_layer4(false)
            .init(&device),
    );
    let report = load_encoder_weights(&mut net, &fixture("resnet18_w0125.pth")).unwrap();
    let layer4: Vec<&String> = report
        .skipped
        .iter()
        .filter(|k| k.starts_with("layer4."))
        .collect();
    // layer4: 2 blocks × (2 convs + 2 BNs · 5 entries) + shortcut (conv + BN · 5).
    assert_eq!(layer4.len(), 2 * (2 + 2 * 5) + 6);
    let total = case["tensors"].as_u64().unwrap() as usize;
    assert_eq!(report.applied + report.skipped.len(), total);

    let f = net.valid().forward_features(fixed_input(&o, &device));
    assert!(f.layer4.is_none());
    let mut check = Checker::new("encoder .pth", FORWARD);
    check_features(&mut check, "encoder", f, &case["plain"]);
    check.finish(1);
}

#[test]
fn imagenet_normalisation_gives_pytorchs_normalised_forward() {
    let device = Device::flex();
    let o = oracle();
    let case = &o["resnet18_w0125"];
    let path = fixture("resnet18_w0125.pth");
    let spec = find_backbone("resnet18").unwrap();
    let mut net = Backbone::ResNet(
        ResNetConfig::resnet18()
            .with_width_multiplier(0.125)
            .with_input_norm(Some(InputNormConfig::for_spec(spec, 3)))
            .init(&device),
    );
    load_encoder_weights(&mut net, &path).unwrap();
    assert!(
        net.input_norm().is_some(),
        "loading keeps the normalisation"
    );
    let f = net.valid().forward_features(fixed_input(&o, &device));
    let features = global_avg_pool(f.layer4.unwrap());
    let logits = fc_of(&path, 64, 3, &device).forward(features.clone());
    let mut check = Checker::new("imagenet_norm .pth", FORWARD);
    let want = &case["imagenet_norm"];
    check.tensor("resnet18", "features", features, &want["features"]);
    check.tensor("resnet18", "logits", logits, &want["logits"]);
    check.finish(1);
}

// ---------------------------------------------------------------------------------------------
// Safetensors

/// Saves `net` as a PyTorch-style safetensors file (BN `weight`/`bias`, no enum variant names),
/// each key prefixed with `prefix`.
fn save_torch_style(net: &Backbone, path: &Path, prefix: &str) {
    let mut store = SafetensorsStore::from_file(path)
        .skip_enum_variants(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .overwrite(true);
    if !prefix.is_empty() {
        store = store.with_key_remapping("^", prefix.to_string());
    }
    net.save_into(&mut store).unwrap();
}

#[test]
fn safetensors_round_trip_has_torchvision_names_and_identical_outputs() {
    let device = Device::flex();
    let o = oracle();
    let mut original = resnet18(0.125, &device);
    load_encoder_weights(&mut original, &fixture("resnet18_w0125.pth")).unwrap();
    let path = scratch("resnet18_w0125.safetensors");
    save_torch_style(&original, &path, "");

    // The file's keys are torchvision's: the .pth keys less fc.* and num_batches_tracked.
    let mut file_keys = SafetensorsStore::from_file(&path).keys().unwrap();
    file_keys.sort();
    let mut pth_keys: Vec<String> = PytorchStore::from_file(fixture("resnet18_w0125.pth"))
        .keys()
        .unwrap()
        .into_iter()
        .filter(|k| !k.starts_with("fc.") && !k.ends_with("num_batches_tracked"))
        .collect();
    pth_keys.sort();
    assert_eq!(file_keys, pth_keys);

    let mut fresh = resnet18(0.125, &device);
    assert_ne!(first_weight(&fresh), first_weight(&original));
    let report = load_encoder_weights(&mut fresh, &path).unwrap();
    assert_eq!(report.format, WeightsFormat::Safetensors);
    assert_eq!(report.applied, file_keys.len());
    assert!(report.skipped.is_empty());

    let x = fixed_input(&o, &device);
    let a = original.valid().forward_features(x.clone());
    let b = fresh.valid().forward_features(x);
    assert_eq!(values(a.stem), values(b.stem));
    assert_eq!(values(a.layer4.unwrap()), values(b.layer4.unwrap()));
}

#[test]
fn a_wrapped_or_data_parallel_state_dict_loads_after_its_prefix() {
    let device = Device::flex();
    let mut original = res2net_1111(&device);
    load_encoder_weights(&mut original, &fixture("res2net_v1b_1111_w0125.pth")).unwrap();
    let path = scratch("wrapped.safetensors");
    save_torch_style(&original, &path, "state_dict.module.");
    let mut fresh = res2net_1111(&device);
    let report = load_encoder_weights(&mut fresh, &path).unwrap();
    assert_eq!(report.prefix, "state_dict.module.");
    assert_eq!(first_weight(&fresh), first_weight(&original));
}

#[test]
fn burn_named_safetensors_load_too() {
    // BN parameters under Burn's own names (gamma / beta) match first.
    let device = Device::flex();
    let mut original = resnet18(0.125, &device);
    load_encoder_weights(&mut original, &fixture("resnet18_w0125.pth")).unwrap();
    let path = scratch("burn_names.safetensors");
    let mut store = SafetensorsStore::from_file(&path)
        .skip_enum_variants(true)
        .overwrite(true);
    original.save_into(&mut store).unwrap();
    assert!(store.keys().unwrap().iter().any(|k| k == "bn1.gamma"));
    let mut fresh = resnet18(0.125, &device);
    load_encoder_weights(&mut fresh, &path).unwrap();
    let x = fixed_input(&oracle(), &device);
    assert_eq!(
        values(original.valid().forward_features(x.clone()).layer3),
        values(fresh.valid().forward_features(x).layer3)
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn a_file_of_another_architecture_loads_nothing_and_says_so() {
    let device = Device::flex();
    let mut net = resnet18(0.125, &device);
    let before = first_weight(&net);
    let err = load_encoder_weights(&mut net, &fixture("unrelated.pth")).unwrap_err();
    assert!(
        matches!(err, PretrainedError::LoadedNothing { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    for part in [
        "unrelated.pth",
        "loaded nothing",
        "classifier.bias",
        "features.0.weight",
        "layer1.0.conv1.weight",
        "ResNet/Res2Net state_dict",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    assert_eq!(first_weight(&net), before, "the backbone is left as it was");
}

#[test]
fn another_width_is_a_shape_mismatch_naming_the_key() {
    let device = Device::flex();
    let mut net = resnet18(0.25, &device);
    let before = first_weight(&net);
    let err = load_encoder_weights(&mut net, &fixture("resnet18_w0125.pth")).unwrap_err();
    let PretrainedError::ShapeMismatch {
        key,
        file,
        model,
        others,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(key.ends_with(".weight") || key.ends_with(".bias") || key.contains("running"));
    assert!(*others > 0);
    assert_ne!(file, model);
    let msg = err.to_string();
    assert!(msg.contains(key.as_str()), "{msg}");
    assert!(msg.contains("width_multiplier = 1.0"), "{msg}");
    assert!(msg.contains("resnet18_w0125.pth"), "{msg}");
    assert_eq!(first_weight(&net), before, "the backbone is left as it was");
}

#[test]
fn a_gray_stem_against_rgb_weights_points_at_in_channels() {
    let device = Device::flex();
    let mut net = Backbone::ResNet(
        ResNetConfig::resnet18()
            .with_width_multiplier(0.125)
            .with_in_channels(1)
            .init(&device),
    );
    let err = load_encoder_weights(&mut net, &fixture("resnet18_w0125.pth")).unwrap_err();
    let PretrainedError::ShapeMismatch {
        key, file, model, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(key, "conv1.weight");
    assert_eq!(file[..], [8, 3, 7, 7]);
    assert_eq!(model[..], [8, 1, 7, 7]);
    assert!(err.to_string().contains("model.in_channels = 3"), "{err}");
}

#[test]
fn a_shallower_file_is_missing_tensors() {
    let device = Device::flex();
    let mut net = resnet34(0.125, &device);
    let err = load_encoder_weights(&mut net, &fixture("resnet18_w0125.pth")).unwrap_err();
    let PretrainedError::Missing { count, sample, .. } = &err else {
        panic!("{err:?}");
    };
    // resnet34 has 1 + 2 + 4 + 1 more BasicBlocks: 2 convs + 2 BNs (4 tensors each) = 10.
    assert_eq!(*count, 8 * 10);
    assert!(sample.contains("layer1.2."), "{sample}");
    assert!(err.to_string().contains("missing from the file"), "{err}");
}

#[test]
fn a_deeper_file_has_tensors_that_fit_nowhere() {
    let device = Device::flex();
    let deeper = resnet34(0.125, &device);
    let path = scratch("resnet34_w0125.safetensors");
    save_torch_style(&deeper, &path, "");
    let mut net = resnet18(0.125, &device);
    let err = load_encoder_weights(&mut net, &path).unwrap_err();
    let PretrainedError::Unexpected { count, sample, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*count, 8 * 10);
    assert!(sample.contains("layer1.2."), "{sample}");
    assert!(
        err.to_string().contains("resnet34 weights for resnet18"),
        "{err}"
    );
}

#[test]
fn weights_of_the_other_family_are_named_as_such() {
    let device = Device::flex();
    let mut res2net = res2net_1111(&device);
    let err = load_encoder_weights(&mut res2net, &fixture("resnet18_w0125.pth")).unwrap_err();
    assert!(
        err.to_string()
            .contains("holds a ResNet (BasicBlock) state_dict but the network is a Res2Net v1b"),
        "{err}"
    );
    let mut resnet = resnet18(0.125, &device);
    let err =
        load_encoder_weights(&mut resnet, &fixture("res2net_v1b_1111_w0125.pth")).unwrap_err();
    assert!(
        matches!(err, PretrainedError::WrongFamily { file_family, .. } if file_family.starts_with("Res2Net")),
        "{err:?}"
    );
}

#[test]
fn missing_files_and_other_formats_are_errors() {
    let device = Device::flex();
    let mut net = resnet18(0.125, &device);
    let err = load_encoder_weights(&mut net, Path::new("/nonexistent/r18.pth")).unwrap_err();
    assert!(matches!(err, PretrainedError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/r18.pth"), "{err}");

    let err = load_encoder_weights(&mut net, Path::new("weights.ckpt")).unwrap_err();
    assert!(
        matches!(err, PretrainedError::UnsupportedExtension { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(".safetensors"), "{err}");

    let garbage = scratch("garbage.pth");
    std::fs::write(&garbage, b"not a pickle").unwrap();
    let err = load_encoder_weights(&mut net, &garbage).unwrap_err();
    assert!(matches!(err, PretrainedError::Read { .. }), "{err:?}");

    let garbage = scratch("garbage.safetensors");
    std::fs::write(&garbage, b"\x08\0\0\0\0\0\0\0{}").unwrap();
    let err = load_encoder_weights(&mut net, &garbage).unwrap_err();
    assert!(
        matches!(
            err,
            PretrainedError::Read { .. } | PretrainedError::LoadedNothing { .. }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// ImageNet normalisation

#[test]
fn input_norm_uses_the_registry_statistics() {
    let spec = find_backbone("res2net101_v1b").unwrap();
    let rgb = InputNormConfig::for_spec(spec, 3);
    let mean: Vec<f64> = spec.input_mean.iter().map(|&v| f64::from(v)).collect();
    let std: Vec<f64> = spec.input_std.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(rgb.mean, mean);
    assert_eq!(rgb.std, std);
    let gray = InputNormConfig::for_spec(spec, 1);
    assert_eq!(gray.mean.len(), 1);
    assert!((gray.mean[0] - (0.485 + 0.456 + 0.406) / 3.0).abs() < 1e-7);
    assert!((gray.std[0] - (0.229 + 0.224 + 0.225) / 3.0).abs() < 1e-7);
}

#[test]
fn input_norm_maps_mean_to_zero_and_one_std_to_one() {
    let device = Device::flex();
    let norm = InputNormConfig::new(vec![0.5, 0.25, 0.0], vec![0.25, 0.5, 2.0]).init();
    // Channel c is constant `v`: output (v − mean[c]) / std[c].
    let x: Vec<f32> = [0.5f32, 0.75, 1.0]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, 4))
        .collect();
    let y = norm.forward(Tensor::from_data(TensorData::new(x, [1, 3, 2, 2]), &device));
    let got = values(y);
    let want: Vec<f64> = [0.0, 1.0, 0.5]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, 4))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn imagenet_norm_on_equals_normalising_the_input_by_hand() {
    let device = Device::flex();
    for in_channels in [3, 1] {
        let cfg = BackboneConfig::new()
            .with_width_multiplier(0.125)
            .with_in_channels(in_channels);
        let plain = cfg.init(true, &device).unwrap().valid();
        assert!(plain.input_norm().is_none());
        let built = cfg
            .clone()
            .with_imagenet_norm(true)
            .init(true, &device)
            .unwrap();
        let spec = find_backbone("resnet18").unwrap();
        let stats = InputNormConfig::for_spec(spec, in_channels);
        let norm = built
            .input_norm()
            .expect("imagenet_norm builds an InputNorm");
        assert_eq!((&norm.mean, &norm.std), (&stats.mean, &stats.std));

        // The same weights with the normalisation switched on (the RNG is shared between test
        // threads, so the two networks are not built from one seed).
        let mut normed = plain.clone();
        match &mut normed {
            Backbone::ResNet(net) => net.input_norm = Some(stats.init()),
            Backbone::Res2Net(net) => net.input_norm = Some(stats.init()),
        }
        let x: Tensor<4> = Tensor::random(
            [2, in_channels, 32, 32],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let col = |v: &[f64]| {
            Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, in_channels, 1, 1]), &device)
        };
        let by_hand = (x.clone() - col(&stats.mean)) / col(&stats.std);
        let a = normed.forward_features(x.clone()).layer4.unwrap();
        let b = plain.forward_features(by_hand).layer4.unwrap();
        let c = plain.forward_features(x).layer4.unwrap();
        assert_eq!(values(a.clone()), values(b), "in_channels {in_channels}");
        assert_ne!(values(a), values(c), "the normalisation changes the output");
    }
}
