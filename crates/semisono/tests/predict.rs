//! End-to-end tests of `semisono predict` (and of the checkpoint checks behind `eval`): a tiny run
//! predicts PNG and real DICOM files; bad runs and inputs exit 2 and leave nothing behind.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A binary phantom dataset, a split and a 2-step hermes run at 32×32, in `dir`.
fn tiny_run(dir: &Path) -> PathBuf {
    assert_ok(&semisono(
        &[
            "synth",
            "--out",
            "ds",
            "--count",
            "24",
            "--size",
            "48",
            "--classes",
            "binary",
            "--seed",
            "3",
        ],
        dir,
    ));
    assert_ok(&semisono(
        &["split", "--dataset", "ds", "--out", "split.json"],
        dir,
    ));
    assert_ok(&semisono(
        &[
            "train",
            "--preset",
            "quickstart-cpu",
            "--dataset",
            "ds",
            "--split",
            "split.json",
            "--run",
            "run",
            "--set",
            "steps=2",
            "--set",
            "image_size=32",
            "--set",
            "batch_labeled=2",
            "--set",
            "batch_unlabeled=2",
            "--set",
            "model.width_multiplier=0.125",
        ],
        dir,
    ));
    dir.join("run")
}

fn dicom_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../semisono-data/tests/fixtures/dicom")
        .canonicalize()
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect()
}

#[test]
fn predict_png_with_truth_and_dicom_without() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = tiny_run(d);
    let run_s = run.to_str().unwrap();

    // PNG folder with ground truth: comparison overlays and per-image scores.
    let o = semisono(
        &[
            "predict",
            "--run",
            run_s,
            "--input",
            "ds/images",
            "--truth",
            "ds/masks",
            "--out",
            "pred",
        ],
        d,
    );
    assert_ok(&o);
    assert!(
        stdout(&o).contains("24 with ground truth"),
        "{}",
        stdout(&o)
    );
    for sub in ["masks", "probabilities", "overlays", "saliency"] {
        assert_eq!(files(&d.join("pred").join(sub)).len(), 24, "{sub}");
    }
    let csv = std::fs::read_to_string(d.join("pred/predictions.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,source,width,height,class,class_name,prob_0,prob_1,lesion_pixels,dice,iou,precision,recall,specificity,hd,hd95,asd,assd"
    );
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(first[2..4], ["48", "48"], "native size");
    let p: f64 = first[6].parse::<f64>().unwrap() + first[7].parse::<f64>().unwrap();
    assert!(
        (p - 1.0).abs() < 1e-5,
        "class probabilities sum to 1: {first:?}"
    );
    assert!(["benign", "malignant"].contains(&first[5]), "{first:?}");
    let dice: f64 = first[9].parse().unwrap();
    assert!((0.0..=1.0).contains(&dice));
    let mask = image::open(d.join("pred/masks").join(format!("{}.png", first[0])))
        .unwrap()
        .into_luma8();
    assert_eq!(mask.dimensions(), (48, 48));
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    let overlay = image::open(d.join("pred/overlays").join(format!("{}.png", first[0]))).unwrap();
    assert_eq!(overlay.color(), image::ColorType::Rgb8);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("pred/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["images_with_truth"], 24);
    assert!(summary["seg"]["dice"]["mean"].is_number(), "{summary}");

    // Real ultrasound DICOM files, no ground truth, cropped to the ultrasound region.
    let o = semisono(
        &[
            "predict",
            "--run",
            run_s,
            "--input",
            dicom_fixtures().to_str().unwrap(),
            "--out",
            "us",
            "--crop-to-region",
        ],
        d,
    );
    assert_ok(&o);
    let csv = std::fs::read_to_string(d.join("us/predictions.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "3 DICOM files + header:\n{csv}");
    let aloka = csv
        .lines()
        .find(|l| l.starts_with("gdcm-US-ALOKA-16,"))
        .expect("the ALOKA file");
    assert!(aloka.contains(",304,392,"), "cropped region size: {aloka}");
    assert!(aloka.ends_with(",,,,"), "no truth, no scores: {aloka}");
    assert_eq!(files(&d.join("us/overlays")).len(), 3);
}

#[test]
fn predict_refuses_bad_runs_and_inputs_leaving_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = tiny_run(d);
    let run_s = run.to_str().unwrap();

    // Not a run directory.
    let o = semisono(
        &[
            "predict",
            "--run",
            "ds",
            "--input",
            "ds/images",
            "--out",
            "p1",
        ],
        d,
    );
    assert_bad_input(&o, &["not a run directory"]);
    // Missing input.
    let o = semisono(
        &["predict", "--run", run_s, "--input", "nope", "--out", "p2"],
        d,
    );
    assert_bad_input(&o, &["nope", "no such file"]);
    // A corrupt image names the file; nothing is left of the output.
    std::fs::create_dir(d.join("bad")).unwrap();
    std::fs::write(d.join("bad/scan.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let o = semisono(
        &["predict", "--run", run_s, "--input", "bad", "--out", "p3"],
        d,
    );
    assert_bad_input(&o, &["scan.png"]);
    // A truth mask of the wrong size names both files.
    std::fs::create_dir(d.join("img")).unwrap();
    std::fs::create_dir(d.join("gt")).unwrap();
    image::GrayImage::new(40, 30)
        .save(d.join("img/a.png"))
        .unwrap();
    image::GrayImage::new(20, 20)
        .save(d.join("gt/a.png"))
        .unwrap();
    let o = semisono(
        &[
            "predict", "--run", run_s, "--input", "img", "--truth", "gt", "--out", "p4",
        ],
        d,
    );
    assert_bad_input(&o, &["gt/a.png", "img/a.png", "20x20"]);

    // A checkpoint from another architecture: the run's config says another width.
    let other = d.join("other");
    std::fs::create_dir(&other).unwrap();
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("width_multiplier = 0.125"), "{cfg}");
    std::fs::write(
        other.join("config.toml"),
        cfg.replace("width_multiplier = 0.125", "width_multiplier = 0.25"),
    )
    .unwrap();
    copy_dir(&run.join("checkpoints"), &other.join("checkpoints"));
    let o = semisono(
        &["predict", "--run", "other", "--input", "img", "--out", "p5"],
        d,
    );
    assert_bad_input(&o, &["another architecture"]);
    // A run without checkpoints.
    std::fs::remove_dir_all(other.join("checkpoints")).unwrap();
    let o = semisono(
        &["predict", "--run", "other", "--input", "img", "--out", "p6"],
        d,
    );
    assert_bad_input(&o, &["no checkpoint"]);

    let left = listing(d);
    for p in ["p1", "p2", "p3", "p4", "p5", "p6"] {
        assert!(
            !left.iter().any(|n| n.contains(p)),
            "{p} was (partly) written: {left:?}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
