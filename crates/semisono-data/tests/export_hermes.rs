//! Export to Hermes lists, and the round trip import → export → import.

mod import_support;

use std::path::{Path, PathBuf};

use import_support::*;
use semisono_data::export::{export_hermes, HermesSelection};
use semisono_data::import::{import, ImportFormat, ImportOptions};
use semisono_data::{Dataset, NewEntry};

/// A Hermes list dir with 3 labeled (one name with spaces, CRLF) and 2 unlabeled images.
fn hermes_input(root: &Path) -> PathBuf {
    let d = root.join("lists");
    for (i, name) in ["L1-0001-2.png", "L5-0033-1.png", "benign (7).png"]
        .iter()
        .enumerate()
    {
        write_png(&d.join("image").join(name), &gray(18, 14, i as u32));
        write_png(
            &d.join("mask").join(name),
            &rect_mask(18, 14, i as u32, 1, 9, 9),
        );
    }
    for (i, name) in ["u1.png", "u2.png"].iter().enumerate() {
        write_png(&d.join("image").join(name), &gray(18, 14, 20 + i as u32));
    }
    write(
        &d.join("labeled.txt"),
        b"L1-0001-2.png L1-0001-2.png 0\r\nL5-0033-1.png L5-0033-1.png 1\r\nbenign (7).png benign (7).png 0\r\n",
    );
    write(&d.join("unlabeled.txt"), b"u1.png\r\nu2.png\r\n");
    d
}

/// (id, label, has mask, sha256, mask sha256) per entry, in manifest order.
type Row = (String, Option<u32>, bool, String, Option<String>);

fn content(ds: &Dataset) -> Vec<Row> {
    ds.entries
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                e.label,
                e.mask.is_some(),
                e.sha256.clone(),
                e.mask_sha256.clone(),
            )
        })
        .collect()
}

#[test]
fn round_trip_keeps_ids_labels_and_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let input = hermes_input(tmp.path());
    let first = tmp.path().join("ds1");
    import(
        ImportFormat::Hermes,
        &input,
        &ImportOptions::default(),
        &first,
    )
    .unwrap();
    let ds1 = Dataset::open(&first).unwrap();

    let exported = tmp.path().join("hermes");
    let s = export_hermes(&ds1, HermesSelection::All, &exported, false).unwrap();
    assert_eq!(
        (s.labeled, s.unlabeled, s.dropped_masks, s.dropped_labels),
        (3, 2, 0, 0)
    );
    let labeled = std::fs::read_to_string(exported.join("labeled.txt")).unwrap();
    assert_eq!(
        labeled,
        "L1-0001-2.png L1-0001-2.png 0\nL5-0033-1.png L5-0033-1.png 1\nbenign_7.png benign_7.png 0\n"
    );
    assert_eq!(
        std::fs::read_to_string(exported.join("unlabeled.txt")).unwrap(),
        "u1.png\nu2.png\n"
    );
    assert!(exported.join("mask/benign_7.png").is_file());
    assert!(!exported.join("mask/u1.png").exists());

    let second = tmp.path().join("ds2");
    import(
        ImportFormat::Hermes,
        &exported,
        &ImportOptions::default(),
        &second,
    )
    .unwrap();
    let ds2 = Dataset::open(&second).unwrap();
    assert_eq!(content(&ds1), content(&ds2));
    assert_eq!(ds1.info.classes, ds2.info.classes);
}

#[test]
fn selections_and_what_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let ds_dir = tmp.path().join("ds");
    let info = semisono_data::DatasetInfo::new("t", vec!["b".into(), "m".into()], "test");
    let mut w = semisono_data::DatasetWriter::create(&ds_dir, info, false).unwrap();
    let mut full = NewEntry::new("full", gray(8, 8, 1), "mem");
    full.mask = Some(rect_mask(8, 8, 0, 0, 2, 2));
    full.label = Some(1);
    let mut mask_only = NewEntry::new("mask_only", gray(8, 8, 2), "mem");
    mask_only.mask = Some(rect_mask(8, 8, 0, 0, 2, 2));
    let mut label_only = NewEntry::new("label_only", gray(8, 8, 3), "mem");
    label_only.label = Some(0);
    w.add_batch(vec![full, mask_only, label_only]).unwrap();
    w.finish().unwrap();
    let ds = Dataset::open(&ds_dir).unwrap();

    // All: only "full" is labeled; the others lose their mask / label.
    let out = tmp.path().join("h1");
    let s = export_hermes(&ds, HermesSelection::All, &out, false).unwrap();
    assert_eq!(
        (s.labeled, s.unlabeled, s.dropped_masks, s.dropped_labels),
        (1, 2, 1, 1)
    );

    // Ids: a subset, in the given order.
    let ids = vec!["label_only".to_string(), "full".to_string()];
    let out = tmp.path().join("h2");
    let s = export_hermes(&ds, HermesSelection::Ids(&ids), &out, false).unwrap();
    assert_eq!((s.labeled, s.unlabeled), (1, 1));
    assert_eq!(
        std::fs::read_to_string(out.join("unlabeled.txt")).unwrap(),
        "label_only.png\n"
    );

    // Sets: a labeled id without a mask is refused, and nothing is written.
    let out = tmp.path().join("h3");
    let labeled = vec!["full".to_string(), "label_only".to_string()];
    let err = export_hermes(
        &ds,
        HermesSelection::Sets {
            labeled: &labeled,
            unlabeled: &[],
        },
        &out,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("label_only") && err.contains("no mask"),
        "{err}"
    );
    assert!(!out.exists());

    // Unknown and repeated ids.
    let bad = vec!["full".to_string(), "nope".to_string()];
    let err = export_hermes(&ds, HermesSelection::Ids(&bad), &out, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nope\" is not in the dataset"), "{err}");
    let twice = vec!["full".to_string()];
    let err = export_hermes(
        &ds,
        HermesSelection::Sets {
            labeled: &twice,
            unlabeled: &twice,
        },
        &out,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("selected twice"), "{err}");
    assert!(!out.exists());

    // An existing output needs overwrite.
    let out = tmp.path().join("h1");
    let err = export_hermes(&ds, HermesSelection::All, &out, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    export_hermes(&ds, HermesSelection::All, &out, true).unwrap();

    // A missing stored image fails the export and leaves nothing.
    std::fs::remove_file(ds_dir.join("images/full.png")).unwrap();
    let out = tmp.path().join("h4");
    let err = export_hermes(&ds, HermesSelection::All, &out, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("full.png"), "{err}");
    assert!(!out.exists());
    let leftovers = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".partial-")
        })
        .count();
    assert_eq!(leftovers, 0);
}
