//! `import --format hermes`, plus the bad inputs every importer shares (corrupt and non-image files,
//! mask size, non-binary masks, missing files, duplicate ids, empty input, existing output).

mod import_support;

use std::path::{Path, PathBuf};

use import_support::*;
use semisono_data::image_io::MaskPolicy;
use semisono_data::import::{detect_format, import, ImportFormat, ImportOptions};
use semisono_data::Dataset;

/// A Hermes list dir: 3 labeled (one name with spaces), 2 unlabeled, CRLF lists.
fn hermes_dir(root: &Path) -> PathBuf {
    let d = root.join("lists");
    for (i, name) in ["L1-0001-2.png", "L4-0012-3.png", "benign (1).png"]
        .iter()
        .enumerate()
    {
        write_png(&d.join("image").join(name), &gray(20, 16, i as u32));
        write_png(
            &d.join("mask").join(name),
            &rect_mask(20, 16, 2, 2, 8 + i as u32, 9),
        );
    }
    for (i, name) in ["u1.png", "u2.png"].iter().enumerate() {
        write_png(&d.join("image").join(name), &gray(20, 16, 10 + i as u32));
    }
    write(
        &d.join("labeled.txt"),
        b"L1-0001-2.png L1-0001-2.png 0\r\nL4-0012-3.png L4-0012-3.png 1\r\nbenign (1).png benign (1).png 0\r\n",
    );
    write(&d.join("unlabeled.txt"), b"u1.png\r\nu2.png\r\n\r\n");
    d
}

fn opts() -> ImportOptions {
    ImportOptions::default()
}

#[test]
fn lists_import_with_crlf_and_spaces() {
    let tmp = tempfile::tempdir().unwrap();
    let input = hermes_dir(tmp.path());
    assert_eq!(detect_format(&input), Some(ImportFormat::Hermes));
    let out = tmp.path().join("ds");
    let s = import(ImportFormat::Hermes, &input, &opts(), &out).unwrap();
    assert_eq!((s.images, s.labeled, s.unlabeled), (5, 3, 2));
    assert_eq!(s.classes, ["benign", "malignant"]);
    assert_eq!(
        s.per_class,
        [("benign".to_string(), 2), ("malignant".to_string(), 1)]
    );
    assert!(s.thresholded_masks.is_empty() && s.warnings.is_empty());
    let ds = Dataset::open(&out).unwrap();
    let ids: Vec<_> = ds.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["L1-0001-2", "L4-0012-3", "benign_1", "u1", "u2"]);
    let e = ds.get("L4-0012-3").unwrap();
    assert_eq!(e.label, Some(1));
    assert_eq!(ds.load_mask(e).unwrap().unwrap().count_nonzero(), 7 * 7);
    assert_eq!(ds.load_image(e).unwrap(), gray(20, 16, 1));
    assert_eq!(e.meta["hermes_list"], "labeled.txt");
    let u = ds.get("u2").unwrap();
    assert!(u.mask.is_none() && u.label.is_none());
    assert_eq!(ds.info.source, "hermes");
}

#[test]
fn data_split_tree_with_one_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("BUSI");
    let lab = root.join("train/60/labeled");
    let unl = root.join("train/60/unlabeled");
    let test = root.join("test");
    for (dir, name, label) in [(&lab, "a.png", 0), (&lab, "b.png", 1), (&test, "t.png", 1)] {
        write_png(&dir.join("image").join(name), &gray(8, 8, label));
        write_png(&dir.join("mask").join(name), &rect_mask(8, 8, 0, 0, 4, 4));
        let list = dir.join("labeled.txt");
        let mut text = std::fs::read_to_string(&list).unwrap_or_default();
        text.push_str(&format!("{name} {name} {label}\n"));
        write(&list, text.as_bytes());
    }
    write_png(&unl.join("image/c.png"), &gray(8, 8, 5));
    write(&unl.join("unlabeled.txt"), b"c.png\n");
    let out = tmp.path().join("ds");
    let s = import(ImportFormat::Hermes, &root, &opts(), &out).unwrap();
    assert_eq!((s.images, s.labeled, s.unlabeled), (4, 3, 1));
    let ds = Dataset::open(&out).unwrap();
    assert_eq!(ds.get("t").unwrap().meta["hermes_list"], "test/labeled.txt");
    assert_eq!(
        ds.get("c").unwrap().meta["hermes_list"],
        "train/60/unlabeled/unlabeled.txt"
    );

    // A second budget makes the tree ambiguous.
    std::fs::create_dir_all(root.join("train/120/labeled")).unwrap();
    let out2 = tmp.path().join("ds2");
    assert_failed(
        import(ImportFormat::Hermes, &root, &opts(), &out2),
        &["train", "60, 120"],
        &out2,
    );
}

#[test]
fn list_line_errors_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = hermes_dir(tmp.path());
    let out = tmp.path().join("ds");
    let list = input.join("labeled.txt");

    write(&list, b"L1-0001-2.png L1-0001-2.png 0\nL4-0012-3.png 1\n");
    let m = assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &["labeled.txt:2:", "found 2 field", "<image> <mask> <label>"],
        &out,
    );
    assert!(!m.contains("labeled.txt:1:"));

    write(
        &list,
        b"L1-0001-2.png L1-0001-2.png 0\n\nL4-0012-3.png L4-0012-3.png benign\n",
    );
    assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &["labeled.txt:3:", "\"benign\" is not an integer"],
        &out,
    );

    write(&list, b"L1-0001-2.png L1-0001-2.png 0 extra\n");
    assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &["labeled.txt:1:", "found 4 field"],
        &out,
    );

    // A label beyond the given classes.
    write(&list, b"L1-0001-2.png L1-0001-2.png 2\n");
    let o = ImportOptions {
        classes: Some(vec!["benign".into(), "malignant".into()]),
        ..opts()
    };
    assert_failed(
        import(ImportFormat::Hermes, &input, &o, &out),
        &["labeled.txt:1:", "out of range"],
        &out,
    );
    // Without classes, label 2 makes a third class.
    let s = import(ImportFormat::Hermes, &input, &opts(), &out).unwrap();
    assert_eq!(s.classes, ["benign", "malignant", "class2"]);
}

#[test]
fn missing_image_or_mask_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let input = hermes_dir(tmp.path());
    let out = tmp.path().join("ds");
    std::fs::remove_file(input.join("mask/L4-0012-3.png")).unwrap();
    assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &["labeled.txt:2:", "mask", "L4-0012-3.png not found"],
        &out,
    );
    write(&input.join("unlabeled.txt"), b"u1.png\nnope.png\n");
    write_png(
        &input.join("mask/L4-0012-3.png"),
        &rect_mask(20, 16, 0, 0, 1, 1),
    );
    assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &["unlabeled.txt:2:", "nope.png not found"],
        &out,
    );
}

#[test]
fn corrupt_and_non_image_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let input = hermes_dir(tmp.path());
    let out = tmp.path().join("ds");
    let img = input.join("image/u2.png");
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(&img, &bytes[..bytes.len() / 2]).unwrap();
    assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &["u2.png", "corrupt"],
        &out,
    );
    std::fs::write(&img, "just some text, not a PNG").unwrap();
    assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &["u2.png", "unsupported"],
        &out,
    );
}

#[test]
fn mask_size_mismatch_names_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let input = hermes_dir(tmp.path());
    let out = tmp.path().join("ds");
    write_png(
        &input.join("mask/L4-0012-3.png"),
        &rect_mask(10, 16, 0, 0, 2, 2),
    );
    assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &[
            "mask/L4-0012-3.png",
            "image/L4-0012-3.png",
            "10x16",
            "20x16",
        ],
        &out,
    );
}

#[test]
fn non_binary_masks_are_thresholded_and_reported_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = hermes_dir(tmp.path());
    let mut m = rect_mask(20, 16, 2, 2, 8, 8);
    m.data[0] = 100; // background after > 127
    m.data[1] = 200; // foreground
    write_png(&input.join("mask/L1-0001-2.png"), &m);
    let out = tmp.path().join("ds");
    let s = import(ImportFormat::Hermes, &input, &opts(), &out).unwrap();
    assert_eq!(s.thresholded_masks.len(), 1);
    let t = &s.thresholded_masks[0];
    assert!(t.file.ends_with("mask/L1-0001-2.png"));
    assert_eq!(t.non_binary_pixels, 2);
    let ds = Dataset::open(&out).unwrap();
    let mask = ds.load_mask(ds.get("L1-0001-2").unwrap()).unwrap().unwrap();
    assert_eq!((mask.get(0, 0), mask.get(1, 0)), (0, 255));
    assert_eq!(mask.count_nonzero(), 36 + 1);

    let strict = ImportOptions {
        mask_policy: MaskPolicy::Strict,
        ..opts()
    };
    let out2 = tmp.path().join("ds2");
    assert_failed(
        import(ImportFormat::Hermes, &input, &strict, &out2),
        &["mask/L1-0001-2.png", "neither 0 nor 255"],
        &out2,
    );
}

#[test]
fn duplicate_ids_empty_input_and_existing_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = hermes_dir(tmp.path());
    let out = tmp.path().join("ds");
    // The same image labeled and unlabeled.
    write(&input.join("unlabeled.txt"), b"u1.png\nL1-0001-2.png\n");
    assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &[
            "duplicate id \"L1-0001-2\"",
            "labeled.txt:1",
            "unlabeled.txt:2",
        ],
        &out,
    );

    write(&input.join("unlabeled.txt"), b"\r\n");
    write(&input.join("labeled.txt"), b"");
    assert_failed(
        import(ImportFormat::Hermes, &input, &opts(), &out),
        &["no images found", "hermes"],
        &out,
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_failed(
        import(ImportFormat::Hermes, &empty, &opts(), &out),
        &["labeled.txt", "empty"],
        &out,
    );

    // An existing output is kept unless overwrite.
    let input = hermes_dir(tmp.path());
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep"), b"x").unwrap();
    let err = import(ImportFormat::Hermes, &input, &opts(), &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    assert!(out.join("keep").exists());
    let o = ImportOptions {
        overwrite: true,
        ..opts()
    };
    import(ImportFormat::Hermes, &input, &o, &out).unwrap();
    assert!(!out.join("keep").exists());
    assert_eq!(Dataset::open(&out).unwrap().entries.len(), 5);
}
