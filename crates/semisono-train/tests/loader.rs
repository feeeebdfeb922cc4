//! Loader tests on a tiny dataset written to a temporary directory: shapes, value ranges, which
//! parts ids come from, epochs, eval order, determinism across thread counts and resumption.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use semisono_data::augment::{eval_view, AugmentConfig};
use semisono_data::split::{Part, Split, SplitConfig, SPLIT_FORMAT_VERSION};
use semisono_data::{Dataset, DatasetInfo, DatasetWriter, GrayImage, NewEntry};
use semisono_train::config::TrainConfig;
use semisono_train::loader::{Loader, LoaderConfig, LoaderError};

const SIZE: u32 = 12;

fn ids(r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("img{i:02}")).collect()
}

/// 21 images of varying native sizes: 0..5 labeled (4 with a class label), 5..14 unlabeled, 14..16
/// val, 16..21 test. Every image but the unlabeled ones has a rectangle mask.
fn write_dataset(dir: &Path) -> (Dataset, Split) {
    let info = DatasetInfo::new("tiny", vec!["benign".into(), "malignant".into()], "test");
    let root = dir.join("ds");
    let mut w = DatasetWriter::create(&root, info, false).unwrap();
    for i in 0..21usize {
        let (width, height) = (20 + (i % 3) as u32 * 4, 16 + (i % 2) as u32 * 6);
        let data = (0..width * height)
            .map(|p| ((i as u32 * 13 + (p % width) * 3 + (p / width) * 5) % 256) as u8)
            .collect();
        let mut e = NewEntry::new(
            format!("img{i:02}"),
            GrayImage::new(width, height, data),
            "mem",
        );
        if !(5..14).contains(&i) {
            let mut m = GrayImage::zeros(width, height);
            for y in 4..10 {
                for x in 5..12 {
                    m.data[(y * width + x) as usize] = 255;
                }
            }
            e.mask = Some(m);
            e.label = (i != 3).then_some((i % 2) as u32);
        }
        w.add(e).unwrap();
    }
    w.finish().unwrap();
    let split = Split {
        format_version: SPLIT_FORMAT_VERSION,
        dataset: "tiny".into(),
        seed: 0,
        strategy: SplitConfig::default(),
        fold: None,
        labeled: ids(0..5),
        unlabeled: ids(5..14),
        val: ids(14..16),
        test: ids(16..21),
        excluded: vec![],
        sha256: BTreeMap::new(),
        mask_sha256: BTreeMap::new(),
        path: None,
    };
    (Dataset::open(&root).unwrap(), split)
}

fn config(seed: u64, workers: usize) -> LoaderConfig {
    LoaderConfig {
        seed,
        batch_labeled: 3,
        batch_unlabeled: 4,
        batch_eval: 2,
        channels: 1,
        augment: AugmentConfig {
            size: [SIZE, SIZE],
            ..AugmentConfig::default()
        },
        workers,
        prefetch: 2,
    }
}

#[test]
fn shapes_values_and_parts() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_dataset(dir.path());
    let loader = Loader::new(
        &ds,
        &split,
        LoaderConfig {
            channels: 3,
            ..config(1, 0)
        },
    )
    .unwrap();
    assert_eq!(loader.iters_per_epoch(), 2); // ⌊9 / 4⌋
    let (labeled, unlabeled): (HashSet<_>, HashSet<_>) = (
        split.labeled.iter().collect(),
        split.unlabeled.iter().collect(),
    );
    let px = (SIZE * SIZE) as usize;
    for t in 1..=12 {
        let b = loader.train_batch(t);
        assert_eq!((b.step, b.epoch), (t, (t - 1) / 2));
        let l = &b.labeled;
        assert_eq!(l.images.shape(), [3, 3, SIZE as usize, SIZE as usize]);
        assert_eq!((l.masks.len(), l.ids.len(), l.labels.len()), (3 * px, 3, 3));
        assert!(l.images.data.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(l.masks.iter().all(|&m| m <= 1));
        assert!(
            l.has_mask.iter().all(|&h| h),
            "every labeled image here has a mask"
        );
        for (k, id) in l.ids.iter().enumerate() {
            assert!(labeled.contains(id), "{id} is not labeled");
            let want = if id == "img03" {
                -1
            } else {
                (id[3..].parse::<i64>().unwrap()) % 2
            };
            assert_eq!(l.labels[k], want);
            // Gray replicated: the three channel planes are equal.
            let img = &l.images.data[k * 3 * px..(k + 1) * 3 * px];
            assert_eq!(img[..px], img[px..2 * px]);
            assert_eq!(img[..px], img[2 * px..]);
        }
        let u = b.unlabeled.expect("semi-supervised batches");
        assert_eq!(u.weak.shape(), [4, 3, SIZE as usize, SIZE as usize]);
        assert_eq!(u.strong.shape(), u.weak.shape());
        assert!(u.ids.iter().all(|id| unlabeled.contains(id)));
        assert!(u.strong.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn epochs_and_labeled_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_dataset(dir.path());
    let loader = Loader::new(&ds, &split, config(5, 0)).unwrap();
    // An epoch draws ⌊9/4⌋·4 = 8 distinct unlabeled images (the last partial batch dropped), and
    // different epochs are shuffled differently.
    let mut epochs = Vec::new();
    for e in 0..4u64 {
        let ids: Vec<String> = (1..=2)
            .flat_map(|j| loader.train_batch(e * 2 + j).unlabeled.unwrap().ids)
            .collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 8, "{ids:?}");
        epochs.push(ids);
    }
    assert!(epochs.windows(2).any(|w| w[0] != w[1]));
    // Labeled: 3 per step from consecutive 5-image passes, each pass a permutation.
    let stream: Vec<String> = (1..=10)
        .flat_map(|t| loader.train_batch(t).labeled.ids)
        .collect();
    let passes: Vec<&[String]> = stream.chunks(5).collect();
    for pass in &passes {
        let mut p = pass.to_vec();
        p.sort();
        assert_eq!(p, split.labeled);
    }
    assert!(
        passes.windows(2).any(|w| w[0] != w[1]),
        "passes are reshuffled"
    );
    // Same image in different steps gets different augmentations (no cached replay).
    let views: HashSet<Vec<u32>> = (1..=10)
        .flat_map(|t| {
            let b = loader.train_batch(t).labeled;
            let n = b.images.data.len() / 3;
            (0..3)
                .filter(|&k| b.ids[k] == "img00")
                .map(|k| {
                    b.images.data[k * n..(k + 1) * n]
                        .iter()
                        .map(|v| v.to_bits())
                        .collect()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(views.len() > 1, "img00 got {} distinct views", views.len());
}

#[test]
fn weak_and_strong_views_are_pixel_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_dataset(dir.path());
    // Without photometric ops the strong view is the weak view itself.
    let mut cfg = config(2, 0);
    cfg.augment.p_jitter = 0.0;
    cfg.augment.p_blur = 0.0;
    let loader = Loader::new(&ds, &split, cfg).unwrap();
    for t in 1..=4 {
        let u = loader.train_batch(t).unlabeled.unwrap();
        assert_eq!(u.weak, u.strong);
    }
    // With them, the same geometry: the views differ, but only photometrically. (Jitter keeps the
    // zero-filled corners of a rotation dark and blur is local, so we only check they differ.)
    let loader = Loader::new(&ds, &split, config(2, 0)).unwrap();
    let differ = (1..=4).any(|t| {
        let u = loader.train_batch(t).unlabeled.unwrap();
        u.weak != u.strong
    });
    assert!(differ);
}

#[test]
fn eval_order_partial_batch_and_native_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_dataset(dir.path());
    for workers in [0, 2] {
        let loader = Loader::new(&ds, &split, config(0, workers)).unwrap();
        assert_eq!(loader.eval_batch_count(Part::Test), 3);
        let batches: Vec<_> = loader.eval_batches(Part::Test).collect();
        assert_eq!(
            batches
                .iter()
                .map(|b| b.batch.ids.len())
                .collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(
            batches.iter().map(|b| b.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let order: Vec<String> = batches.iter().flat_map(|b| b.batch.ids.clone()).collect();
        assert_eq!(order, split.test);
        let aug = &loader.config().augment;
        for b in &batches {
            assert_eq!(b.batch.images.shape()[0], b.batch.ids.len());
            for (k, s) in b.samples.iter().enumerate() {
                assert_eq!(s.id, b.batch.ids[k]);
                assert_eq!(b.native_sizes[k], [s.image.width, s.image.height]);
                // Exactly the evaluation view: resized image and nearest-resized mask.
                let (img, mask) = eval_view(&s.image, s.mask.as_ref(), aug);
                let px = (SIZE * SIZE) as usize;
                let got = &b.batch.images.data[k * px..(k + 1) * px];
                assert!(got
                    .iter()
                    .zip(&img.data)
                    .all(|(g, &v)| *g == v as f32 / 255.0));
                let m: Vec<u8> = mask
                    .unwrap()
                    .data
                    .iter()
                    .map(|&v| u8::from(v > 0))
                    .collect();
                assert_eq!(b.batch.masks[k * px..(k + 1) * px], m[..]);
                assert!(m.contains(&1));
            }
        }
        assert_eq!(loader.eval_batch(Part::Val, 0).batch.ids, split.val);
        assert_eq!(loader.eval_batch_count(Part::Val), 1);
        assert_eq!(loader.sample("img20").unwrap().image.width, 28);
    }
}

#[test]
fn deterministic_for_any_thread_count_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_dataset(dir.path());
    let reference: Vec<_> = {
        let loader = Loader::new(&ds, &split, config(9, 0)).unwrap();
        (1..=14).map(|t| loader.train_batch(t)).collect()
    };
    for workers in [0, 1, 2, 3] {
        let loader = Loader::new(&ds, &split, config(9, workers)).unwrap();
        let all: Vec<_> = loader.train_batches(1, 14).collect();
        assert_eq!(all, reference, "{workers} workers");
        // A run resumed at step k gets exactly batches k.. of the uninterrupted run.
        for k in [2, 5, 8, 13] {
            let resumed: Vec<_> = loader.train_batches(k, 14).collect();
            assert_eq!(resumed[..], reference[(k - 1) as usize..], "resume at {k}");
        }
    }
    // A fresh loader (a restarted process) as well; another seed gives other batches.
    let again = Loader::new(&ds, &split, config(9, 2)).unwrap();
    assert_eq!(again.train_batch(7), reference[6]);
    let other = Loader::new(&ds, &split, config(10, 0)).unwrap();
    assert_ne!(other.train_batch(7), reference[6]);
    // Leaving an endless stream early does not hang.
    let mut it = again.train_batches(1, u64::MAX);
    assert_eq!(it.next().unwrap(), reference[0]);
    drop(it);
}

#[test]
fn supervised_and_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_dataset(dir.path());
    let mut train = TrainConfig::preset("quickstart-cpu").unwrap();
    train.set("method", "supervised").unwrap();
    train.set("batch_unlabeled", "0").unwrap();
    train.set("image_size", "16").unwrap();
    let cfg = LoaderConfig::from_config(&train);
    assert_eq!(
        (cfg.batch_labeled, cfg.channels, cfg.augment.size),
        (4, 1, [16, 16])
    );
    let loader = Loader::new(&ds, &split, cfg).unwrap();
    // 5 labeled in batches of 4: one step per epoch; no unlabeled views.
    assert_eq!(loader.iters_per_epoch(), 1);
    let b = loader.train_batch(3);
    assert!(b.unlabeled.is_none());
    assert_eq!((b.epoch, b.labeled.images.shape()), (2, [4, 1, 16, 16]));
    let plan = loader.epoch_plan(10, false);
    assert_eq!((plan.iters_per_epoch, plan.total_steps), (1, 10));
}

#[test]
fn bad_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_dataset(dir.path());
    let err = |split: &Split, cfg: LoaderConfig| match Loader::new(&ds, split, cfg) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    let mut s = split.clone();
    s.test.push("ghost".into());
    assert!(err(&s, config(0, 0)).contains("\"ghost\", which is not in the dataset"));
    let s = Split {
        labeled: vec![],
        ..split.clone()
    };
    assert!(err(&s, config(0, 0)).contains("no labeled images"));
    let s = Split {
        labeled: ids(5..6),
        unlabeled: ids(6..14),
        ..split.clone()
    };
    assert!(err(&s, config(0, 0)).contains("neither a mask nor a class label"));
    let msg = err(
        &split,
        LoaderConfig {
            batch_unlabeled: 10,
            ..config(0, 0)
        },
    );
    assert!(
        msg.contains("9 unlabeled images, fewer than batch_unlabeled = 10"),
        "{msg}"
    );
    assert!(err(
        &split,
        LoaderConfig {
            channels: 2,
            ..config(0, 0)
        }
    )
    .contains("1 or 3"));
    let mut cfg = config(0, 0);
    cfg.augment.resize = false;
    assert!(err(&split, cfg).contains("fixed size"));
    let mut cfg = config(0, 0);
    cfg.augment.p_blur = 3.0;
    let e = Loader::new(&ds, &split, cfg).err().unwrap();
    assert!(matches!(e, LoaderError::Data(_)), "{e}");
}
