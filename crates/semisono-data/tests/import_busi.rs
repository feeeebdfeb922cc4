//! `import --format busi`: class folders, `_mask*` files OR-ed, RGB/RGBA masks, normal images.

mod import_support;

use std::path::{Path, PathBuf};

use import_support::*;
use semisono_data::import::{detect_format, import, ImportFormat, ImportOptions};
use semisono_data::Dataset;

/// `Dataset_BUSI_with_GT/` one level below the returned input dir.
fn busi_tree(root: &Path) -> PathBuf {
    let input = root.join("download");
    let d = input.join("Dataset_BUSI_with_GT");
    let (w, h) = (24, 18);
    // benign (1): one mask; benign (2): two masks OR-ed; benign (10) sorts after (2).
    write_png(&d.join("benign/benign (1).png"), &gray(w, h, 1));
    write_png(
        &d.join("benign/benign (1)_mask.png"),
        &rect_mask(w, h, 0, 0, 4, 4),
    );
    write_png(&d.join("benign/benign (2).png"), &gray(w, h, 2));
    write_png(
        &d.join("benign/benign (2)_mask.png"),
        &rect_mask(w, h, 0, 0, 4, 4),
    );
    write_png(
        &d.join("benign/benign (2)_mask_1.png"),
        &rect_mask(w, h, 10, 10, 14, 14),
    );
    write_png(&d.join("benign/benign (10).png"), &gray(w, h, 10));
    write_png(
        &d.join("benign/benign (10)_mask.png"),
        &rect_mask(w, h, 1, 1, 2, 2),
    );
    // malignant (1): an RGB image and an RGB mask; malignant (2): an RGBA mask.
    std::fs::create_dir_all(d.join("malignant")).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 9) as u8, (y * 9) as u8, 50]))
        .save(d.join("malignant/malignant (1).png"))
        .unwrap();
    image::RgbImage::from_fn(w, h, |x, _| {
        let v = if x < 6 { 255 } else { 0 };
        image::Rgb([v, v, v])
    })
    .save(d.join("malignant/malignant (1)_mask.png"))
    .unwrap();
    write_png(&d.join("malignant/malignant (2).png"), &gray(w, h, 3));
    image::RgbaImage::from_fn(w, h, |_, y| {
        let v = if y < 3 { 255 } else { 0 };
        image::Rgba([v, v, v, 255])
    })
    .save(d.join("malignant/malignant (2)_mask.png"))
    .unwrap();
    // normal (1) with its all-zero mask; normal (2) without one.
    write_png(&d.join("normal/normal (1).png"), &gray(w, h, 4));
    write_png(
        &d.join("normal/normal (1)_mask.png"),
        &rect_mask(w, h, 0, 0, 0, 0),
    );
    write_png(&d.join("normal/normal (2).png"), &gray(w, h, 5));
    // Not images: ignored.
    write(&d.join("benign/Thumbs.db"), b"junk");
    input
}

#[test]
fn busi_classes_masks_and_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let input = busi_tree(tmp.path());
    assert_eq!(detect_format(&input), Some(ImportFormat::Busi));
    let out = tmp.path().join("ds");
    let s = import(ImportFormat::Busi, &input, &ImportOptions::default(), &out).unwrap();
    assert_eq!(s.classes, ["benign", "malignant", "normal"]);
    assert_eq!(
        s.per_class,
        [
            ("benign".to_string(), 3),
            ("malignant".to_string(), 2),
            ("normal".to_string(), 2)
        ]
    );
    assert_eq!(
        (s.images, s.labeled, s.unlabeled, s.with_mask),
        (7, 7, 0, 7)
    );
    let ds = Dataset::open(&out).unwrap();
    let ids: Vec<_> = ds.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "benign_1",
            "benign_2",
            "benign_10",
            "malignant_1",
            "malignant_2",
            "normal_1",
            "normal_2"
        ]
    );
    let mask = |id: &str| ds.load_mask(ds.get(id).unwrap()).unwrap().unwrap();
    // OR of two masks.
    assert_eq!(mask("benign_2").count_nonzero(), 16 + 16);
    assert_eq!(ds.get("benign_2").unwrap().meta["masks_merged"], 2);
    // RGB and RGBA masks reduced to one channel.
    assert_eq!(mask("malignant_1").count_nonzero(), 6 * 18);
    assert_eq!(mask("malignant_2").count_nonzero(), 3 * 24);
    // The RGB image became gray.
    let img = ds.load_image(ds.get("malignant_1").unwrap()).unwrap();
    assert_eq!((img.width, img.height), (24, 18));
    // Normal: all-zero masks, whether shipped or not.
    assert_eq!(mask("normal_1").count_nonzero(), 0);
    assert_eq!(mask("normal_2").count_nonzero(), 0);
    assert_eq!(ds.get("normal_2").unwrap().label, Some(2));
    assert!(ds
        .get("benign_10")
        .unwrap()
        .source
        .ends_with("benign (10).png"));
}

#[test]
fn busi_without_normal() {
    let tmp = tempfile::tempdir().unwrap();
    let input = busi_tree(tmp.path());
    let out = tmp.path().join("ds");
    let o = ImportOptions {
        keep_normal: false,
        ..ImportOptions::default()
    };
    let s = import(ImportFormat::Busi, &input, &o, &out).unwrap();
    assert_eq!(s.classes, ["benign", "malignant"]);
    assert_eq!((s.images, s.skipped), (5, 2));

    // With explicit classes lacking `normal` and normal kept, the folder is an error.
    let o = ImportOptions {
        classes: Some(vec!["benign".into(), "malignant".into()]),
        ..ImportOptions::default()
    };
    let out2 = tmp.path().join("ds2");
    assert_failed(
        import(ImportFormat::Busi, &input, &o, &out2),
        &["normal", "not in the class list"],
        &out2,
    );
}

#[test]
fn busi_missing_mask_and_orphan_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let input = busi_tree(tmp.path());
    let d = input.join("Dataset_BUSI_with_GT");
    let out = tmp.path().join("ds");
    write_png(
        &d.join("benign/benign (7)_mask.png"),
        &rect_mask(24, 18, 0, 0, 2, 2),
    );
    let s = import(ImportFormat::Busi, &input, &ImportOptions::default(), &out).unwrap();
    assert!(
        s.warnings.iter().any(|w| w.contains("benign (7)_mask.png")),
        "{:?}",
        s.warnings
    );

    std::fs::remove_file(d.join("malignant/malignant (2)_mask.png")).unwrap();
    let out2 = tmp.path().join("ds2");
    assert_failed(
        import(ImportFormat::Busi, &input, &ImportOptions::default(), &out2),
        &["malignant (2).png", "no mask found"],
        &out2,
    );
}

#[test]
fn busi_mask_size_and_corrupt_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let input = busi_tree(tmp.path());
    let d = input.join("Dataset_BUSI_with_GT");
    let out = tmp.path().join("ds");
    write_png(
        &d.join("benign/benign (2)_mask_1.png"),
        &rect_mask(23, 18, 0, 0, 2, 2),
    );
    assert_failed(
        import(ImportFormat::Busi, &input, &ImportOptions::default(), &out),
        &["benign (2)_mask_1.png", "benign (2).png", "23x18"],
        &out,
    );
    write(
        &d.join("benign/benign (2)_mask_1.png"),
        b"\x89PNG\r\n\x1a\ntruncated",
    );
    assert_failed(
        import(ImportFormat::Busi, &input, &ImportOptions::default(), &out),
        &["benign (2)_mask_1.png"],
        &out,
    );
    let empty = tmp.path().join("nothing");
    std::fs::create_dir_all(empty.join("benign")).unwrap();
    assert_failed(
        import(ImportFormat::Busi, &empty, &ImportOptions::default(), &out),
        &["no images found"],
        &out,
    );
}
