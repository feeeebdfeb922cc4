//! `import --format folders`: images/, optional masks/ and a labels CSV.

mod import_support;

use std::path::{Path, PathBuf};

use import_support::*;
use semisono_data::import::{detect_format, import, ImportFormat, ImportOptions};
use semisono_data::Dataset;

/// images a.png, b.jpg, c.bmp, 10.png, 2.png; masks for a (png) and b (png); labels for a and 2.
fn folders_tree(root: &Path) -> PathBuf {
    let d = root.join("data");
    write_png(&d.join("images/a.png"), &gray(12, 10, 1));
    std::fs::create_dir_all(d.join("masks")).unwrap();
    let g = gray(12, 10, 2);
    image::GrayImage::from_raw(12, 10, g.data.clone())
        .unwrap()
        .save(d.join("images/b.jpg"))
        .unwrap();
    image::GrayImage::from_raw(12, 10, g.data)
        .unwrap()
        .save(d.join("images/c.bmp"))
        .unwrap();
    write_png(&d.join("images/10.png"), &gray(12, 10, 3));
    write_png(&d.join("images/2.png"), &gray(12, 10, 4));
    write_png(&d.join("masks/a.png"), &rect_mask(12, 10, 0, 0, 3, 3));
    write_png(&d.join("masks/b.png"), &rect_mask(12, 10, 0, 0, 2, 2));
    write(&d.join("notes.txt"), b"ignored");
    d
}

#[test]
fn folders_without_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let input = folders_tree(tmp.path());
    assert_eq!(detect_format(&input), Some(ImportFormat::Folders));
    let out = tmp.path().join("ds");
    let s = import(
        ImportFormat::Folders,
        &input,
        &ImportOptions::default(),
        &out,
    )
    .unwrap();
    assert_eq!((s.images, s.with_mask, s.with_label), (5, 2, 0));
    assert_eq!((s.labeled, s.unlabeled), (2, 3));
    let ds = Dataset::open(&out).unwrap();
    let ids: Vec<_> = ds.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["2", "10", "a", "b", "c"]);
    assert!(ds.info.classes.is_empty());
    let b = ds.load_image(ds.get("b").unwrap()).unwrap();
    assert_eq!((b.width, b.height), (12, 10));
    assert_eq!(
        ds.load_image(ds.get("c").unwrap()).unwrap(),
        gray(12, 10, 2)
    );
}

#[test]
fn folders_with_named_and_integer_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let input = folders_tree(tmp.path());
    write(
        &input.join("labels.csv"),
        b"image,label\na.png,malignant\n2,Benign\nc,\n",
    );
    let out = tmp.path().join("ds");
    let s = import(
        ImportFormat::Folders,
        &input,
        &ImportOptions::default(),
        &out,
    )
    .unwrap();
    assert_eq!(s.classes, ["benign", "malignant"]);
    assert_eq!((s.with_label, s.labeled, s.unlabeled), (2, 3, 2));
    let ds = Dataset::open(&out).unwrap();
    assert_eq!(ds.get("a").unwrap().label, Some(1));
    assert_eq!(ds.get("2").unwrap().label, Some(0));
    assert_eq!(ds.get("c").unwrap().label, None);

    // Integers, from a CSV elsewhere, named by --classes.
    let csv = tmp.path().join("my_labels.csv");
    write(&csv, b"id;label\na;1\nb;0\n");
    let o = ImportOptions {
        labels_csv: Some(csv.clone()),
        classes: Some(vec!["benign".into(), "malignant".into(), "normal".into()]),
        ..ImportOptions::default()
    };
    let out2 = tmp.path().join("ds2");
    let s = import(ImportFormat::Folders, &input, &o, &out2).unwrap();
    assert_eq!(s.classes, ["benign", "malignant", "normal"]);
    let ds = Dataset::open(&out2).unwrap();
    assert_eq!(ds.get("a").unwrap().label, Some(1));

    // Integers without names: classes "0".."max".
    let out3 = tmp.path().join("ds3");
    let o = ImportOptions {
        labels_csv: Some(csv),
        ..ImportOptions::default()
    };
    let s = import(ImportFormat::Folders, &input, &o, &out3).unwrap();
    assert_eq!(s.classes, ["0", "1"]);
}

#[test]
fn folders_label_errors_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = folders_tree(tmp.path());
    let out = tmp.path().join("ds");
    let csv = input.join("labels.csv");
    write(&csv, b"id,label\na,0\nzzz,1\n");
    assert_failed(
        import(
            ImportFormat::Folders,
            &input,
            &ImportOptions::default(),
            &out,
        ),
        &["labels.csv:3:", "\"zzz\" matches no file"],
        &out,
    );
    write(&csv, b"id,label\na,0\nb,malignant\n");
    let o = ImportOptions {
        classes: Some(vec!["benign".into()]),
        ..ImportOptions::default()
    };
    assert_failed(
        import(ImportFormat::Folders, &input, &o, &out),
        &["labels.csv:3:", "\"malignant\""],
        &out,
    );
    write(&csv, b"id,label\na,0\na.png,1\n");
    assert_failed(
        import(
            ImportFormat::Folders,
            &input,
            &ImportOptions::default(),
            &out,
        ),
        &["labels.csv:3:", "twice"],
        &out,
    );
    write(&csv, b"file_name,cls\na,0\n");
    assert_failed(
        import(
            ImportFormat::Folders,
            &input,
            &ImportOptions::default(),
            &out,
        ),
        &["labels.csv:1:", "no id column"],
        &out,
    );
}

#[test]
fn folders_duplicate_ids_mask_size_and_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let input = folders_tree(tmp.path());
    let out = tmp.path().join("ds");
    write_png(&input.join("images/a.jpg"), &gray(12, 10, 5)); // a PNG named .jpg: still a dup id
    assert_failed(
        import(
            ImportFormat::Folders,
            &input,
            &ImportOptions::default(),
            &out,
        ),
        &["duplicate id \"a\"", "images/a.jpg", "images/a.png"],
        &out,
    );
    std::fs::remove_file(input.join("images/a.jpg")).unwrap();

    write_png(&input.join("masks/c.png"), &rect_mask(10, 10, 0, 0, 2, 2));
    assert_failed(
        import(
            ImportFormat::Folders,
            &input,
            &ImportOptions::default(),
            &out,
        ),
        &["masks/c.png", "images/c.bmp", "10x10", "12x10"],
        &out,
    );
    std::fs::remove_file(input.join("masks/c.png")).unwrap();

    // A mask without an image is only a warning.
    write_png(&input.join("masks/zz.png"), &rect_mask(12, 10, 0, 0, 2, 2));
    let s = import(
        ImportFormat::Folders,
        &input,
        &ImportOptions::default(),
        &out,
    )
    .unwrap();
    assert!(
        s.warnings.iter().any(|w| w.contains("zz.png")),
        "{:?}",
        s.warnings
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("images")).unwrap();
    write(&empty.join("images/readme.txt"), b"no images here");
    let out2 = tmp.path().join("ds2");
    assert_failed(
        import(
            ImportFormat::Folders,
            &empty,
            &ImportOptions::default(),
            &out2,
        ),
        &["no images found", "empty"],
        &out2,
    );
    let out3 = tmp.path().join("ds3");
    assert_failed(
        import(
            ImportFormat::Folders,
            &tmp.path().join("does-not-exist"),
            &ImportOptions::default(),
            &out3,
        ),
        &["does-not-exist", "not found"],
        &out3,
    );
}

#[test]
fn folders_may_hold_dicom() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("mixed");
    write_png(&input.join("images/a.png"), &gray(8, 8, 1));
    let dcm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom/examples_rgb_color.dcm");
    std::fs::copy(dcm, input.join("images/scan.dcm")).unwrap();
    let out = tmp.path().join("ds");
    let s = import(
        ImportFormat::Folders,
        &input,
        &ImportOptions::default(),
        &out,
    )
    .unwrap();
    assert_eq!(s.images, 2);
    let ds = Dataset::open(&out).unwrap();
    let e = ds.get("scan").unwrap();
    assert_eq!((e.width, e.height), (320, 240));
    assert_eq!(e.meta["dicom"]["photometric"], "RGB");
}
