//! Split files: save / load round trip, verify() against the dataset, and errors that name the file.

use std::path::Path;

use semisono_data::image_io::save_png;
use semisono_data::split::{make_split, Budget, Split, SplitConfig};
use semisono_data::{Dataset, DatasetInfo, DatasetWriter, GrayImage, NewEntry};

fn dataset(dir: &Path) -> Dataset {
    let root = dir.join("ds");
    let info = DatasetInfo::new("toy", vec!["benign".into(), "malignant".into()], "test");
    let mut w = DatasetWriter::create(&root, info, false).unwrap();
    for i in 0..20u8 {
        let mut e = NewEntry::new(
            format!("img{i:02}"),
            GrayImage::new(3, 3, vec![i; 9]),
            "mem",
        );
        if i < 16 {
            e.label = Some(u32::from(i % 2));
            e.mask = Some(GrayImage::new(3, 3, vec![0, 0, 0, 0, 255, 0, 0, 0, 0]));
        }
        w.add(e).unwrap();
    }
    w.finish().unwrap();
    Dataset::open(&root).unwrap()
}

fn split(ds: &Dataset) -> Split {
    let cfg = SplitConfig {
        labeled: Budget::Count(4),
        val_fraction: 0.25,
        test_fraction: 0.25,
        seed: 1,
        ..SplitConfig::default()
    };
    make_split(ds, &cfg).unwrap()
}

#[test]
fn save_load_round_trip_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let s = split(&ds);
    let path = dir.path().join("splits/split.json");
    s.save(&path).unwrap();
    let loaded = Split::load(&path).unwrap();
    assert_eq!(loaded.path.as_deref(), Some(path.as_path()));
    assert_eq!(
        Split {
            path: None,
            ..loaded.clone()
        },
        s
    );
    loaded.verify(&ds).unwrap();
    // The file is documented JSON with the advertised keys.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for key in [
        "format_version",
        "dataset",
        "seed",
        "strategy",
        "fold",
        "labeled",
        "unlabeled",
        "val",
        "test",
        "sha256",
        "mask_sha256",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["strategy"]["labeled"]["count"], 4);
    assert_eq!(v["strategy"]["protocol"], "clean");
    // No temporary file left behind.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
}

#[test]
fn verify_catches_an_unknown_id() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let mut s = split(&ds);
    s.unlabeled.push("ghost".into());
    s.sha256.insert("ghost".into(), "00".into());
    let path = dir.path().join("split.json");
    s.save(&path).unwrap();
    let err = Split::load(&path)
        .unwrap()
        .verify(&ds)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"ghost\""), "{err}");
    assert!(err.contains("split.json"), "{err}");
    assert!(err.contains("semisono split"), "{err}");
    // Without a file (made in memory) the message still names the id.
    let err = s.verify(&ds).unwrap_err().to_string();
    assert!(err.contains("\"ghost\""), "{err}");
}

#[test]
fn verify_catches_a_changed_image_and_mask() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let s = split(&ds);
    let victim = s.test[0].clone();
    let e = ds.get(&victim).unwrap();
    save_png(&ds.image_path(e), &GrayImage::new(3, 3, vec![200; 9])).unwrap();
    let err = s.verify(&ds).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "image {victim:?} changed since the split was made: re-run `semisono split`"
        )),
        "{err}"
    );
    assert!(err.contains("1 problem"), "{err}");

    let dir2 = tempfile::tempdir().unwrap();
    let ds = dataset(dir2.path());
    let e = ds.get(&s.labeled[0]).unwrap();
    save_png(&ds.mask_path(e).unwrap(), &GrayImage::zeros(3, 3)).unwrap();
    let err = s.verify(&ds).unwrap_err().to_string();
    assert!(err.contains("the mask of image"), "{err}");
}

#[test]
fn overlapping_parts_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let mut s = split(&ds);
    s.val.push(s.test[0].clone());
    assert!(s
        .verify(&ds)
        .unwrap_err()
        .to_string()
        .contains("both 'val' and 'test'"));
    let path = dir.path().join("overlap.json");
    s.save(&path).unwrap();
    let err = Split::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("overlap.json") && err.contains("disjoint"),
        "{err}"
    );
}

#[test]
fn bad_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\"format_version\": 1, \"labeled\": [").unwrap();
    let err = Split::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("broken.json") && err.contains("not a valid split file"),
        "{err}"
    );

    std::fs::write(&path, "{\"format_version\": 1, \"surprise\": true}").unwrap();
    let err = Split::load(&path).unwrap_err().to_string();
    assert!(err.contains("broken.json"), "{err}");

    let ds_dir = tempfile::tempdir().unwrap();
    let s = split(&dataset(ds_dir.path()));
    let mut v = serde_json::to_value(&s).unwrap();
    v["format_version"] = 99.into();
    std::fs::write(&path, v.to_string()).unwrap();
    let err = Split::load(&path).unwrap_err().to_string();
    assert!(err.contains("version 99"), "{err}");

    let missing = dir.path().join("nope.json");
    assert!(Split::load(&missing)
        .unwrap_err()
        .to_string()
        .contains("nope.json"));
}
