//! make_split / make_kfold on small real datasets written with DatasetWriter.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use semisono_data::split::{
    make_kfold, make_split, Budget, Part, Split, SplitConfig, SplitProtocol,
};
use semisono_data::{Dataset, DatasetInfo, DatasetWriter, GrayImage, NewEntry};

/// What one toy image has.
#[derive(Clone, Copy)]
enum Kind {
    Class(u32), // label + mask
    MaskOnly,
    Neither,
}

fn write_dataset(dir: &Path, items: &[(String, Kind, Option<String>)]) -> Dataset {
    let root = dir.join("ds");
    let info = DatasetInfo::new("toy", vec!["benign".into(), "malignant".into()], "test");
    let mut w = DatasetWriter::create(&root, info, false).unwrap();
    let batch = items
        .iter()
        .enumerate()
        .map(|(i, (id, kind, group))| {
            let img = GrayImage::new(4, 4, (0..16).map(|p| (i * 7 + p) as u8).collect());
            let mut e = NewEntry::new(id.clone(), img, format!("mem:{id}"));
            e.group = group.clone();
            match kind {
                Kind::Class(c) => {
                    e.label = Some(*c);
                    e.mask = Some(GrayImage::zeros(4, 4));
                }
                Kind::MaskOnly => e.mask = Some(GrayImage::zeros(4, 4)),
                Kind::Neither => {}
            }
            e
        })
        .collect();
    w.add_batch(batch).unwrap();
    w.finish().unwrap();
    Dataset::open(&root).unwrap()
}

/// 50 benign, 30 malignant, 5 mask-only, 20 with neither label nor mask.
fn toy(dir: &Path) -> Dataset {
    let mut items = Vec::new();
    for i in 0..50 {
        items.push((format!("b{i:03}"), Kind::Class(0), None));
    }
    for i in 0..30 {
        items.push((format!("m{i:03}"), Kind::Class(1), None));
    }
    for i in 0..5 {
        items.push((format!("k{i:03}"), Kind::MaskOnly, None));
    }
    for i in 0..20 {
        items.push((format!("u{i:03}"), Kind::Neither, None));
    }
    write_dataset(dir, &items)
}

fn parts_of(s: &Split) -> HashMap<String, Part> {
    let mut m = HashMap::new();
    for p in Part::ALL {
        for id in s.part(p) {
            assert!(m.insert(id.clone(), p).is_none(), "{id} in two parts");
        }
    }
    m
}

fn count(s: &Split, part: Part, prefix: &str) -> usize {
    s.part(part)
        .iter()
        .filter(|id| id.starts_with(prefix))
        .count()
}

#[test]
fn deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let ds = toy(dir.path());
    let cfg = SplitConfig {
        seed: 7,
        ..SplitConfig::default()
    };
    let a = make_split(&ds, &cfg).unwrap();
    let b = make_split(&ds, &cfg).unwrap();
    assert_eq!(a, b);
    let c = make_split(&ds, &SplitConfig { seed: 8, ..cfg }).unwrap();
    assert_ne!(a.test, c.test);
}

#[test]
fn disjoint_covering_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let ds = toy(dir.path());
    let s = make_split(&ds, &SplitConfig::default()).unwrap();
    let parts = parts_of(&s);
    let all: BTreeSet<&str> = ds.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        parts.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        all
    );
    // Images with neither label nor mask are only ever unlabeled.
    for i in 0..20 {
        assert_eq!(parts[&format!("u{i:03}")], Part::Unlabeled);
    }
    // 85 eligible: test round(0.2*85) = 17, val round(0.1*85) = 9 (rounded half up: 8.5 -> 9).
    assert_eq!(s.test.len(), 17);
    assert_eq!(s.val.len(), 9);
    // Pool 59, labeled round(0.1*59) = 6.
    assert_eq!(s.labeled.len(), 6);
    assert_eq!(s.unlabeled.len(), 59 - 6 + 20);
    assert!(s.excluded.is_empty());
    for list in [&s.labeled, &s.unlabeled, &s.val, &s.test] {
        assert!(list.windows(2).all(|w| w[0] < w[1]), "lists are sorted");
    }
    assert_eq!(s.sha256.len(), ds.entries.len());
    assert_eq!(s.mask_sha256.len(), 85);
    assert_eq!(s.dataset, "toy");
    assert_eq!(s.fold, None);
}

#[test]
fn stratified_proportions() {
    let dir = tempfile::tempdir().unwrap();
    let ds = toy(dir.path());
    for seed in 0..5 {
        let cfg = SplitConfig {
            seed,
            labeled: Budget::Count(16),
            ..SplitConfig::default()
        };
        let s = make_split(&ds, &cfg).unwrap();
        // Largest-remainder shares of 17 test over strata 50/30/5: 10, 6, 1.
        assert_eq!(
            (
                count(&s, Part::Test, "b"),
                count(&s, Part::Test, "m"),
                count(&s, Part::Test, "k")
            ),
            (10, 6, 1)
        );
        // 9 val over 50/30/5: 5.29, 3.18, 0.53 -> 5, 3, 1.
        assert_eq!(
            (
                count(&s, Part::Val, "b"),
                count(&s, Part::Val, "m"),
                count(&s, Part::Val, "k")
            ),
            (5, 3, 1)
        );
        // Pool 35/21/3 = 59; 16 labeled -> 9.49, 5.69, 0.81 -> 9, 6, 1.
        assert_eq!(
            (
                count(&s, Part::Labeled, "b"),
                count(&s, Part::Labeled, "m"),
                count(&s, Part::Labeled, "k")
            ),
            (9, 6, 1)
        );
        let summary = s.summary(&ds);
        assert_eq!(summary.get(Part::Labeled).per_class, vec![9, 6]);
        assert_eq!(summary.get(Part::Labeled).no_label, 1);
        assert_eq!(summary.get(Part::Unlabeled).total, 43 + 20);
        assert!(summary.to_string().contains("malignant"));
    }
}

#[test]
fn unstratified_still_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let ds = toy(dir.path());
    let cfg = SplitConfig {
        stratify: false,
        ..SplitConfig::default()
    };
    let s = make_split(&ds, &cfg).unwrap();
    parts_of(&s);
    assert_eq!((s.test.len(), s.val.len()), (17, 9));
}

#[test]
fn budgets() {
    let dir = tempfile::tempdir().unwrap();
    let ds = toy(dir.path());
    let with = |labeled| SplitConfig {
        labeled,
        ..SplitConfig::default()
    };
    assert_eq!(
        make_split(&ds, &with(Budget::Count(20)))
            .unwrap()
            .labeled
            .len(),
        20
    );
    assert_eq!(
        make_split(&ds, &with(Budget::Ratio(0.25)))
            .unwrap()
            .labeled
            .len(),
        15
    );
    assert_eq!(
        make_split(&ds, &with(Budget::Ratio(1.0)))
            .unwrap()
            .labeled
            .len(),
        59
    );
    assert_eq!(
        make_split(&ds, &with(Budget::Count(59)))
            .unwrap()
            .labeled
            .len(),
        59
    );
    let err = make_split(&ds, &with(Budget::Count(60)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("maximum labeled count is 59"), "{err}");
    // The test and val sets do not depend on the budget.
    let a = make_split(&ds, &with(Budget::Count(10))).unwrap();
    let b = make_split(&ds, &with(Budget::Count(30))).unwrap();
    assert_eq!((&a.test, &a.val), (&b.test, &b.val));
}

#[test]
fn config_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let ds = toy(dir.path());
    let bad = [
        SplitConfig {
            val_fraction: 0.5,
            test_fraction: 0.5,
            ..SplitConfig::default()
        },
        SplitConfig {
            test_fraction: 1.0,
            ..SplitConfig::default()
        },
        SplitConfig {
            val_fraction: -0.1,
            ..SplitConfig::default()
        },
        SplitConfig {
            labeled: Budget::Ratio(0.0),
            ..SplitConfig::default()
        },
        SplitConfig {
            labeled: Budget::Count(0),
            ..SplitConfig::default()
        },
    ];
    for cfg in bad {
        assert!(make_split(&ds, &cfg).is_err(), "{cfg:?}");
    }
}

#[test]
fn hermes_protocol_counts() {
    let dir = tempfile::tempdir().unwrap();
    let ds = toy(dir.path());
    let cfg = SplitConfig {
        protocol: SplitProtocol::Hermes,
        labeled: Budget::Count(20),
        seed: 3,
        ..SplitConfig::default()
    };
    let s = make_split(&ds, &cfg).unwrap();
    parts_of(&s);
    // Train pool int(0.7*50) = 35 and int(0.7*30) = 21; test 15 + 9; 10 labeled per class; no val.
    assert_eq!(
        (count(&s, Part::Test, "b"), count(&s, Part::Test, "m")),
        (15, 9)
    );
    assert_eq!(
        (count(&s, Part::Labeled, "b"), count(&s, Part::Labeled, "m")),
        (10, 10)
    );
    assert_eq!(
        (
            count(&s, Part::Unlabeled, "b"),
            count(&s, Part::Unlabeled, "m")
        ),
        (25, 11)
    );
    assert!(s.val.is_empty());
    // Without a label an image is not eligible under hermes: mask-only and neither are unlabeled.
    assert_eq!(count(&s, Part::Unlabeled, "k"), 5);
    assert_eq!(count(&s, Part::Unlabeled, "u"), 20);
    assert_eq!(s.strategy.val_fraction, 0.0);
    assert_eq!(s.strategy.test_fraction, 0.3);
    // An odd budget gives floor(N/2) per class.
    let odd = make_split(
        &ds,
        &SplitConfig {
            labeled: Budget::Count(21),
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(odd.labeled.len(), 20);
    // At most 2 * 21 labeled images: the malignant pool is the limit.
    assert_eq!(
        make_split(
            &ds,
            &SplitConfig {
                labeled: Budget::Count(42),
                ..cfg.clone()
            }
        )
        .unwrap()
        .labeled
        .len(),
        42
    );
    let err = make_split(
        &ds,
        &SplitConfig {
            labeled: Budget::Count(44),
            ..cfg
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"malignant\"") && err.contains("between 2 and 42"),
        "{err}"
    );
}

#[test]
fn kfold_covers_every_eligible_image_once() {
    let dir = tempfile::tempdir().unwrap();
    let ds = toy(dir.path());
    let cfg = SplitConfig {
        labeled: Budget::Count(12),
        seed: 11,
        ..SplitConfig::default()
    };
    let folds = make_kfold(&ds, &cfg, 5).unwrap();
    assert_eq!(folds.len(), 5);
    let mut tested: HashMap<String, usize> = HashMap::new();
    for (i, s) in folds.iter().enumerate() {
        assert_eq!(s.fold.unwrap().index, i);
        assert_eq!(s.fold.unwrap().k, 5);
        parts_of(&s.clone());
        for id in &s.test {
            *tested.entry(id.clone()).or_default() += 1;
        }
        // Stratified folds: 10 benign, 6 malignant, 1 mask-only per fold.
        assert_eq!(
            (
                count(s, Part::Test, "b"),
                count(s, Part::Test, "m"),
                count(s, Part::Test, "k")
            ),
            (10, 6, 1)
        );
        assert_eq!(s.val.len(), 9);
        assert_eq!(s.labeled.len(), 12);
        assert_eq!(s.unlabeled.len(), 85 - 17 - 9 - 12 + 20);
    }
    assert_eq!(tested.len(), 85);
    assert!(tested.values().all(|&n| n == 1));
    assert_eq!(folds, make_kfold(&ds, &cfg, 5).unwrap());
    assert!(make_kfold(&ds, &cfg, 1).is_err());
    assert!(make_kfold(&ds, &cfg, 86).is_err());
}

#[test]
fn groups_stay_on_one_side() {
    let dir = tempfile::tempdir().unwrap();
    // 30 patients with 3 images each (label by patient), plus one unlabeled image per patient.
    let mut items = Vec::new();
    for p in 0..30 {
        let g = Some(format!("p{p:02}"));
        for i in 0..3 {
            items.push((format!("p{p:02}_{i}"), Kind::Class(p % 2), g.clone()));
        }
        items.push((format!("p{p:02}_u"), Kind::Neither, g.clone()));
    }
    let ds = write_dataset(dir.path(), &items);
    let s = make_split(&ds, &SplitConfig::default()).unwrap();
    let parts = parts_of(&s);
    let side = |p: Part| match p {
        Part::Labeled | Part::Unlabeled => "train",
        Part::Val => "val",
        Part::Test => "test",
        Part::Excluded => "excluded",
    };
    for p in 0..30 {
        let sides: BTreeSet<&str> = (0..3)
            .map(|i| side(parts[&format!("p{p:02}_{i}")]))
            .collect();
        assert_eq!(sides.len(), 1, "patient {p} straddles {sides:?}");
        // The unlabeled image of a held-out patient is kept out of training.
        let u = parts[&format!("p{p:02}_u")];
        if sides.contains("train") {
            assert_eq!(u, Part::Unlabeled);
        } else {
            assert_eq!(u, Part::Excluded);
        }
    }
    // 18 test images = 6 patients; val 9 = 3 patients.
    assert_eq!((s.test.len(), s.val.len()), (18, 9));
    assert_eq!(s.excluded.len(), 9);
    // k-fold keeps groups inside one fold too.
    for f in make_kfold(&ds, &SplitConfig::default(), 3).unwrap() {
        let groups: BTreeSet<&str> = f.test.iter().map(|id| &id[..3]).collect();
        assert_eq!(f.test.len(), groups.len() * 3);
    }
    // Not group-aware: images of one patient may be split.
    let loose = make_split(
        &ds,
        &SplitConfig {
            group_aware: false,
            ..SplitConfig::default()
        },
    )
    .unwrap();
    assert!(loose.excluded.is_empty());
}

#[test]
fn no_eligible_image_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<_> = (0..4)
        .map(|i| (format!("u{i}"), Kind::Neither, None))
        .collect();
    let ds = write_dataset(dir.path(), &items);
    let err = make_split(&ds, &SplitConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no image with a class label or mask"), "{err}");
}
