//! A toy dataset for the training tests: 16 gray 32×32 images with a bright disc (the "tumour"),
//! its mask, and a class label (disc size); split 4 labeled / 4 unlabeled / 4 val / 4 test.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semisono_data::split::{Split, SplitConfig, SPLIT_FORMAT_VERSION};
use semisono_data::{DatasetInfo, DatasetWriter, GrayImage, NewEntry};
use semisono_train::config::TrainConfig;

pub const SIZE: u32 = 32;

fn ids(r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("img{i:02}")).collect()
}

/// Writes the dataset and split under `dir`; returns (dataset dir, split file).
pub fn write_toy(dir: &Path) -> (PathBuf, PathBuf) {
    let info = DatasetInfo::new("toy", vec!["benign".into(), "malignant".into()], "test");
    let root = dir.join("ds");
    let mut w = DatasetWriter::create(&root, info, false).unwrap();
    for i in 0..16usize {
        // A few native sizes, so evaluation resizes predictions back.
        let (width, height) = (SIZE + (i % 3) as u32 * 4, SIZE + (i % 2) as u32 * 6);
        let label = (i % 2) as u32;
        let r = if label == 1 { 9.0 } else { 5.0 };
        let (cx, cy) = (10.0 + (i * 7 % 12) as f64, 11.0 + (i * 5 % 10) as f64);
        let mut img = GrayImage::zeros(width, height);
        let mut mask = GrayImage::zeros(width, height);
        for y in 0..height {
            for x in 0..width {
                let p = (y * width + x) as usize;
                let noise = ((x * 31 + y * 17 + i as u32 * 13) % 40) as u8;
                let inside = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2) < r * r;
                img.data[p] = if inside { 170 + noise } else { 40 + noise };
                mask.data[p] = if inside { 255 } else { 0 };
            }
        }
        let mut e = NewEntry::new(format!("img{i:02}"), img, "toy");
        if !(4..8).contains(&i) {
            e.mask = Some(mask);
            e.label = Some(label);
        }
        w.add(e).unwrap();
    }
    w.finish().unwrap();
    let split = Split {
        format_version: SPLIT_FORMAT_VERSION,
        dataset: "toy".into(),
        seed: 0,
        strategy: SplitConfig::default(),
        fold: None,
        labeled: ids(0..4),
        unlabeled: ids(4..8),
        val: ids(8..12),
        test: ids(12..16),
        excluded: vec![],
        sha256: BTreeMap::new(),
        mask_sha256: BTreeMap::new(),
        path: None,
    };
    let split_path = dir.join("split.json");
    split.save(&split_path).unwrap();
    (root, split_path)
}

/// A tiny configuration: 32² inputs, ResNet-18 at 1/8 width, 2 + 2 images per step, 4 steps
/// (2 per epoch, so contrast is active from step 3), evaluation and checkpoints every 2 steps.
pub fn tiny_config(method: &str, dataset: &Path, split: &Path) -> TrainConfig {
    let mut c = TrainConfig::preset("quickstart-cpu").unwrap();
    c.method = method.into();
    c.steps = 4;
    c.batch_labeled = 2;
    c.batch_unlabeled = 2;
    c.batch_eval = 4;
    c.image_size = SIZE;
    c.augment.size = [SIZE, SIZE];
    c.eval_every = 2;
    c.log_every = 1;
    c.checkpoint_every = 0;
    c.model.width_multiplier = 0.125;
    c.data.dataset = dataset.to_path_buf();
    c.data.split = split.to_path_buf();
    c.data.workers = 0;
    c.hermes.contrast_after_epoch = 0;
    // 1/8 of 32² is 4×4 = 16 embedding pixels per image: a class needs more than 4 of them.
    c.hermes.max_views = 4;
    c.hermes.max_samples = 64;
    c
}

/// Every tensor of every `.bpk` file of a checkpoint directory (sub-directories included, named
/// `dir/file`), as bytes; other files whole. Optimizer tensors are keyed by random ids, so each
/// file's tensors are compared as a sorted list. `keep` selects tensors by key.
pub fn checkpoint_contents_where(
    ckpt: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out = BTreeMap::new();
    collect_checkpoint(ckpt, "", keep, &mut out);
    out
}

/// [`checkpoint_contents_where`] with every tensor.
pub fn checkpoint_contents(ckpt: &Path) -> BTreeMap<String, Vec<Vec<u8>>> {
    checkpoint_contents_where(ckpt, &|_| true)
}

fn collect_checkpoint(
    dir: &Path,
    prefix: &str,
    keep: &dyn Fn(&str) -> bool,
    out: &mut BTreeMap<String, Vec<Vec<u8>>>,
) {
    use burn::store::{BurnpackStore, ModuleStore};
    for p in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        let name = format!("{prefix}{}", p.file_name().unwrap().to_string_lossy());
        if p.is_dir() {
            collect_checkpoint(&p, &format!("{name}/"), keep, out);
        } else if p.extension().is_some_and(|e| e == "bpk") {
            let mut store = BurnpackStore::from_file(&p).auto_extension(false);
            let by_id = name.contains("optim");
            let mut v: Vec<Vec<u8>> = store
                .get_all_tensors()
                .unwrap()
                .iter()
                .filter(|(key, _)| keep(key))
                .map(|(key, t)| {
                    let mut bytes = if by_id {
                        vec![]
                    } else {
                        key.as_bytes().to_vec()
                    };
                    bytes.extend_from_slice(&t.to_bytes().unwrap());
                    bytes
                })
                .collect();
            v.sort();
            assert!(!v.is_empty(), "{name} holds tensors");
            out.insert(name, v);
        } else {
            out.insert(name, vec![std::fs::read(&p).unwrap()]);
        }
    }
}

/// The bit patterns of an `f32` tensor (bit-identity checks).
pub fn bits<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<u32> {
    let data = t.into_data().try_to_vec::<f32>().unwrap();
    data.iter().map(|v| v.to_bits()).collect()
}

/// Trains `cfg` uninterrupted into `dir/full`, and stopped after step 2 then resumed into
/// `dir/parts` (checking that the resume runs steps 3..=steps); returns (full, parts).
pub fn train_full_and_resumed(cfg: &TrainConfig, dir: &Path) -> (PathBuf, PathBuf) {
    use semisono_train::trainer::{train, train_with, TrainOptions};
    let full = dir.join("full");
    train(cfg, &full, false, &mut |_| {}).unwrap();
    let parts = dir.join("parts");
    let stop = TrainOptions {
        stop_after: Some(2),
        ..TrainOptions::default()
    };
    let stopped = train_with(cfg, &parts, &stop, &mut |_| {}).unwrap();
    assert_eq!(stopped.last_step, 2);
    let mut resumed = vec![];
    train(cfg, &parts, true, &mut |p| resumed.push(p.step)).unwrap();
    assert_eq!(
        resumed,
        (3..=cfg.steps).collect::<Vec<_>>(),
        "{}",
        cfg.method
    );
    (full, parts)
}
