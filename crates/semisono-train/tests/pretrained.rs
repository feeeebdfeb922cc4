//! `model.seg_pretrained` / `model.cls_pretrained` / `model.imagenet_norm` in training: weights are
//! loaded into the encoders and logged with the first step, bad files are configuration errors
//! naming the key and the file, runs resume and reload without the weights file, and ImageNet
//! normalisation is part of the networks (training, evaluation, reloading).
//!
//! The weights are the semisono-nn fixture `resnet18_w0125.pth` (a torchvision-layout ResNet-18 at
//! width 1/8, written by `bench/make_weight_fixtures.py`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use burn::store::{BurnpackStore, ModuleStore, PytorchStore};
use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_train::config::{Task, TrainConfig};
use semisono_train::loader::{Loader, LoaderConfig};
use semisono_train::methods::{self, StepContext};
use semisono_train::trainer::{load_run, train, train_with, TrainOptions};
use semisono_train::TrainError;

use common::{tiny_config, write_toy};

/// Tensors of the fixture that land in a full ResNet-18 (all but `fc.*` and the 20
/// `num_batches_tracked`), and in the segmentation encoder (less the 25 of `layer4`).
const CLS_TENSORS: f64 = 100.0;
const SEG_TENSORS: f64 = 75.0;

fn nn_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../semisono-nn/tests/fixtures")
        .join(name)
}

/// The tiny configuration at the fixture's shape: ResNet-18 at width 1/8 with 3 input channels.
fn config(dir: &Path, method: &str) -> TrainConfig {
    let (ds, split) = write_toy(dir);
    let mut cfg = tiny_config(method, &ds, &split);
    cfg.model.seg_backbone = "resnet18".into();
    cfg.model.cls_backbone = "resnet18".into();
    cfg.model.width_multiplier = 0.125;
    cfg.model.in_channels = 3;
    cfg
}

fn loader(cfg: &TrainConfig) -> Loader {
    Loader::new(
        &Dataset::open(&cfg.data.dataset).unwrap(),
        &Split::load(&cfg.data.split).unwrap(),
        LoaderConfig::from_config(cfg),
    )
    .unwrap()
}

fn config_error(cfg: &TrainConfig) -> (String, String) {
    match methods::create(cfg, &methods::default_device()) {
        Err(TrainError::Config { key, message }) => (key, message),
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("expected a configuration error"),
    }
}

fn probabilities(m: &dyn methods::SslMethod, cfg: &TrainConfig) -> Vec<f32> {
    let batch = loader(cfg).eval_batch(Part::Val, 0);
    let p = m.eval_forward(&batch.batch.images);
    [
        p.seg_probs.map(|t| t.into_data()),
        p.cls_probs.map(|t| t.into_data()),
    ]
    .into_iter()
    .flatten()
    .flat_map(|d| d.convert::<f32>().try_to_vec::<f32>().unwrap())
    .collect()
}

#[test]
fn weights_load_into_both_networks_and_the_first_step_logs_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "supervised");
    // A copy, removed after the first session: resuming and reloading must not need it.
    let weights = dir.path().join("r18.pth");
    fs::copy(nn_fixture("resnet18_w0125.pth"), &weights).unwrap();
    cfg.model.seg_pretrained = Some(weights.clone());
    cfg.model.cls_pretrained = Some(weights.clone());

    let run = dir.path().join("run");
    let stop = TrainOptions {
        stop_after: Some(2),
        ..TrainOptions::default()
    };
    let mut first = None;
    train_with(&cfg, &run, &stop, &mut |p| {
        if p.step == 1 {
            first = Some(p.losses.clone());
        }
    })
    .unwrap();
    let first = first.unwrap();
    assert_eq!(first.get("seg_pretrained_tensors"), Some(SEG_TENSORS));
    assert_eq!(first.get("cls_pretrained_tensors"), Some(CLS_TENSORS));
    assert_eq!(first.get("cls_pretrained_skipped"), Some(22.0));

    // The run's log has them on its step-1 line, and only there.
    let log = fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let train_lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .collect();
    assert_eq!(train_lines[0]["step"], 1);
    assert_eq!(
        train_lines[0]["stats"]["seg_pretrained_tensors"],
        SEG_TENSORS
    );
    assert_eq!(
        train_lines[0]["stats"]["cls_pretrained_tensors"],
        CLS_TENSORS
    );
    assert!(train_lines[1..]
        .iter()
        .all(|v| v["stats"].get("cls_pretrained_tensors").is_none()));
    // ... and its config.toml names the file.
    let toml = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(toml.contains("r18.pth"), "{toml}");

    // Resume and reload come from the checkpoint: the weights file is not read again.
    fs::remove_file(&weights).unwrap();
    let mut resumed = vec![];
    train(&cfg, &run, true, &mut |p| resumed.push(p.losses.clone())).unwrap();
    assert_eq!(resumed.len(), 2);
    assert!(resumed[0].get("cls_pretrained_tensors").is_none());
    let (_, m) = load_run(&run, Some("last")).unwrap();
    assert!(probabilities(m.as_ref(), &cfg)
        .iter()
        .all(|p| p.is_finite()));

    // A fresh run with the file gone is a configuration error naming the key and the file.
    let (key, message) = config_error(&cfg);
    assert_eq!(key, "model.seg_pretrained");
    assert!(message.contains("r18.pth"), "{message}");
}

/// The bytes of the tensor of `file` (a `.bpk` checkpoint) whose key is `prefix` + `conv1.weight`,
/// enum variant names aside.
fn stem_weight_in_checkpoint(file: &Path, prefix: &str) -> Vec<u8> {
    let mut store = BurnpackStore::from_file(file).auto_extension(false);
    let tensors = store.get_all_tensors().unwrap();
    let (_, t) = tensors
        .iter()
        .find(|(k, _)| {
            k.starts_with(prefix) && k.ends_with(".conv1.weight") && !k.contains("layer")
        })
        .unwrap_or_else(|| panic!("no stem conv under {prefix} in {}", file.display()));
    t.to_bytes().unwrap().to_vec()
}

#[test]
fn the_loaded_weights_are_the_networks_initial_weights() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "supervised");
    let fixture = nn_fixture("resnet18_w0125.pth");
    cfg.model.cls_pretrained = Some(fixture.clone());
    cfg.model.seg_pretrained = Some(fixture.clone());
    let m = methods::create(&cfg, &methods::default_device()).unwrap();
    let ckpt = dir.path().join("ckpt");
    fs::create_dir_all(&ckpt).unwrap();
    m.save(&ckpt).unwrap();

    let mut pth = PytorchStore::from_file(&fixture);
    let want = pth
        .get_tensor("conv1.weight")
        .unwrap()
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec();
    assert_eq!(
        stem_weight_in_checkpoint(&ckpt.join("cls.bpk"), "backbone."),
        want
    );
    assert_eq!(
        stem_weight_in_checkpoint(&ckpt.join("seg.bpk"), "encoder."),
        want
    );
}

#[test]
fn hermes_loads_and_logs_the_weights_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "hermes");
    cfg.model.cls_pretrained = Some(nn_fixture("resnet18_w0125.pth"));
    let mut m = methods::create(&cfg, &methods::default_device()).unwrap();
    let out = m
        .step(&loader(&cfg).train_batch(1), &StepContext::default())
        .unwrap();
    assert_eq!(out.get("cls_pretrained_tensors"), Some(CLS_TENSORS));
    assert!(out.get("seg_pretrained_tensors").is_none());
}

#[test]
fn bad_weights_files_are_configuration_errors_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = config(dir.path(), "supervised");

    let mut cfg = base.clone();
    cfg.model.cls_pretrained = Some(nn_fixture("unrelated.pth"));
    let (key, message) = config_error(&cfg);
    assert_eq!(key, "model.cls_pretrained");
    assert!(message.contains("unrelated.pth"), "{message}");
    assert!(message.contains("loaded nothing"), "{message}");

    let mut cfg = base.clone();
    cfg.model.width_multiplier = 0.25;
    cfg.model.seg_pretrained = Some(nn_fixture("resnet18_w0125.pth"));
    let (key, message) = config_error(&cfg);
    assert_eq!(key, "model.seg_pretrained");
    assert!(message.contains("conv1.weight"), "{message}");
    assert!(message.contains("width_multiplier = 1.0"), "{message}");

    let mut cfg = base.clone();
    cfg.model.in_channels = 1;
    cfg.model.cls_pretrained = Some(nn_fixture("resnet18_w0125.pth"));
    let (_, message) = config_error(&cfg);
    assert!(message.contains("model.in_channels = 3"), "{message}");

    let mut cfg = base.clone();
    cfg.model.cls_pretrained = Some(dir.path().join("weights.ckpt"));
    let (_, message) = config_error(&cfg);
    assert!(message.contains(".safetensors"), "{message}");

    // Weights for a network the task does not build would be ignored: an error too.
    let mut cfg = base;
    cfg.task = Task::Classification;
    cfg.model.seg_pretrained = Some(nn_fixture("resnet18_w0125.pth"));
    let (key, message) = config_error(&cfg);
    assert_eq!(key, "model.seg_pretrained");
    assert!(message.contains("builds no segmenter"), "{message}");
}

#[test]
fn imagenet_norm_is_part_of_the_networks_and_of_the_saved_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "supervised");
    cfg.model.in_channels = 1;
    cfg.steps = 2;
    cfg.model.imagenet_norm = true;
    let device = methods::default_device();

    // Training with it works, and a reloaded run normalises as it was trained.
    let run = dir.path().join("run");
    train(&cfg, &run, false, &mut |_| {}).unwrap();
    let (saved, reloaded) = load_run(&run, Some("last")).unwrap();
    assert!(saved.model.imagenet_norm);
    let mut without = saved.clone();
    without.model.imagenet_norm = false;
    let mut other = methods::create(&without, &device).unwrap();
    other.load(&run.join("checkpoints/last")).unwrap();
    let (a, b) = (
        probabilities(reloaded.as_ref(), &cfg),
        probabilities(other.as_ref(), &cfg),
    );
    assert!(a.iter().all(|p| p.is_finite()));
    assert_ne!(
        a, b,
        "the same weights without the normalisation predict otherwise"
    );
}
