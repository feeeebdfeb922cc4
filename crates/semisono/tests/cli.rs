//! End-to-end tests of the `semisono` binary: the happy path of every stage, and bad input giving a
//! message that names the file, exit code 2, and no half-written output.

mod common;

use std::path::Path;

use common::*;

#[test]
fn synth_split_export_and_eval_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = semisono(
        &[
            "synth",
            "--out",
            "ph",
            "--count",
            "24",
            "--size",
            "64",
            "--seed",
            "7",
            "--hermes",
            "ph_hermes",
            "--hermes-labeled",
            "6",
        ],
        d,
    );
    assert_ok(&o);
    assert!(
        stdout(&o).contains("wrote 24 phantom images 64x64"),
        "{}",
        stdout(&o)
    );
    let manifest = std::fs::read_to_string(d.join("ph/manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 24);
    let labeled = std::fs::read_to_string(d.join("ph_hermes/labeled.txt")).unwrap();
    assert_eq!(labeled.lines().count(), 6);

    // Same seed, same bytes.
    synth(d, "ph_again", "24");
    for id in ["000000", "000023"] {
        let a = std::fs::read(d.join(format!("ph/images/{id}.png"))).unwrap();
        let b = std::fs::read(d.join(format!("ph_again/images/{id}.png"))).unwrap();
        assert_eq!(a, b, "image {id} differs between two runs with one seed");
    }

    let o = semisono(
        &[
            "split",
            "--dataset",
            "ph",
            "--labeled",
            "25%",
            "--out",
            "split.json",
        ],
        d,
    );
    assert_ok(&o);
    assert!(stdout(&o).contains("labeled"), "{}", stdout(&o));
    assert_ok(&semisono(
        &["split", "--dataset", "ph", "--verify", "split.json"],
        d,
    ));

    let o = semisono(
        &[
            "export",
            "--dataset",
            "ph",
            "--out",
            "tree",
            "--split",
            "split.json",
        ],
        d,
    );
    assert_ok(&o);
    assert!(d.join("tree/test/labeled.txt").exists());

    // Ground truth scored against itself: Dice 1, and the summary says so.
    let o = semisono(
        &[
            "eval-masks",
            "--pred",
            "ph/masks",
            "--gt",
            "ph",
            "--out",
            "ev",
        ],
        d,
    );
    assert_ok(&o);
    let csv = std::fs::read_to_string(d.join("ev/per_image.csv")).unwrap();
    assert_eq!(csv.lines().count(), 25, "{csv}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ev/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["summary"]["dice"]["mean"], 1.0);
    assert_eq!(summary["summary"]["pooled"]["dice"], 1.0);
}

#[test]
fn eval_masks_scores_a_wrong_prediction() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    synth(d, "ph", "12");
    // Predict "nothing" everywhere: Dice 0 on lesions, surface metrics undefined, not 0.
    std::fs::create_dir(d.join("empty")).unwrap();
    for e in std::fs::read_dir(d.join("ph/masks")).unwrap() {
        let p = e.unwrap().path();
        let img = image::open(&p).unwrap().into_luma8();
        let blank = image::GrayImage::new(img.width(), img.height());
        blank
            .save(d.join("empty").join(p.file_name().unwrap()))
            .unwrap();
    }
    let o = semisono(
        &["eval-masks", "--pred", "empty", "--gt", "ph", "--out", "ev"],
        d,
    );
    assert_ok(&o);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ev/summary.json")).unwrap()).unwrap();
    let hd95 = &summary["summary"]["hd95"];
    assert_eq!(hd95["n"], 0, "{hd95}");
    assert_eq!(hd95["n_skipped"], 12, "{hd95}");
    assert_eq!(summary["summary"]["pooled"]["dice"], 0.0);
}

#[test]
fn unknown_option_and_value_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_bad_input(
        &semisono(&["synth", "--out", "x", "--frobnicate"], d),
        &["--frobnicate"],
    );
    assert_bad_input(
        &semisono(&["synth", "--out", "x", "--preset", "liver"], d),
        &["liver", "breast", "thyroid"],
    );
    assert_bad_input(
        &semisono(&["split", "--dataset", "ph", "--labeled", "lots"], d),
        &["ph"],
    );
    assert!(listing(d).is_empty(), "{:?}", listing(d));
}

#[test]
fn corrupt_image_on_import_names_the_file_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let src = d.join("src/images");
    std::fs::create_dir_all(&src).unwrap();
    image::GrayImage::new(8, 8)
        .save(src.join("good.png"))
        .unwrap();
    let png = std::fs::read(src.join("good.png")).unwrap();
    std::fs::write(src.join("broken.png"), &png[..png.len() / 2]).unwrap();
    let o = semisono(
        &[
            "import", "--format", "folders", "--input", "src", "--out", "ds",
        ],
        d,
    );
    assert_bad_input(&o, &["broken.png"]);
    assert_eq!(listing(d), vec!["src".to_string()]);
}

#[test]
fn mask_of_the_wrong_size_in_eval_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("gt")).unwrap();
    std::fs::create_dir_all(d.join("pred")).unwrap();
    image::GrayImage::new(16, 16)
        .save(d.join("gt/a.png"))
        .unwrap();
    image::GrayImage::new(8, 16)
        .save(d.join("pred/a.png"))
        .unwrap();
    let o = semisono(
        &["eval-masks", "--pred", "pred", "--gt", "gt", "--out", "ev"],
        d,
    );
    assert_bad_input(&o, &["a.png", "8x16", "16x16"]);
    assert!(!d.join("ev").exists());
    std::fs::remove_file(d.join("pred/a.png")).unwrap();
    let o = semisono(
        &["eval-masks", "--pred", "pred", "--gt", "gt", "--out", "ev"],
        d,
    );
    assert_bad_input(&o, &["no prediction", "a"]);
}

#[test]
fn split_with_unknown_id_or_changed_image_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    synth(d, "ph", "12");
    assert_ok(&semisono(
        &[
            "split",
            "--dataset",
            "ph",
            "--labeled",
            "2",
            "--out",
            "s.json",
        ],
        d,
    ));
    let text = std::fs::read_to_string(d.join("s.json")).unwrap();
    let mut split: serde_json::Value = serde_json::from_str(&text).unwrap();
    split["test"].as_array_mut().unwrap().push("nope".into());
    std::fs::write(d.join("bad.json"), serde_json::to_vec(&split).unwrap()).unwrap();
    assert_bad_input(
        &semisono(&["split", "--dataset", "ph", "--verify", "bad.json"], d),
        &["bad.json", "nope"],
    );
    // Change one image: the stored sha256 no longer matches.
    let img = d.join("ph/images/000003.png");
    let mut pixels = image::open(&img).unwrap().into_luma8();
    pixels.put_pixel(0, 0, image::Luma([77]));
    pixels.save(&img).unwrap();
    assert_bad_input(
        &semisono(&["split", "--dataset", "ph", "--verify", "s.json"], d),
        &["s.json", "000003"],
    );
    let o = semisono(
        &[
            "export",
            "--dataset",
            "ph",
            "--out",
            "tree",
            "--split",
            "s.json",
        ],
        d,
    );
    assert_bad_input(&o, &["000003"]);
    assert!(!d.join("tree").exists());
}

#[test]
fn dicom_import_of_real_ultrasound_files() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../semisono-data/tests/fixtures/dicom")
        .canonicalize()
        .unwrap();
    let o = semisono(
        &[
            "import",
            "--format",
            "dicom",
            "--input",
            fixtures.to_str().unwrap(),
            "--out",
            "us",
            "--crop-to-region",
        ],
        tmp.path(),
    );
    assert_ok(&o);
    let manifest = std::fs::read_to_string(tmp.path().join("us/manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 3, "{manifest}");
    assert!(manifest.contains("pixel_spacing_mm"), "{manifest}");
}

/// `bench --unet --conv-profile` on a tiny U-Net: each case's child records its convolutions by
/// pass (training all three passes, inference the forward only, saliency forward and input
/// gradient), the report says gradient checkpointing is on; `--conv-profile` alone is refused.
#[test]
fn bench_unet_conv_profile_per_case() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = semisono(
        &[
            "bench",
            "--unet",
            "--conv-profile",
            "--ops-batch",
            "1",
            "--ops-size",
            "32",
            "--unet-reps",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--json",
            "u.json",
        ],
        d,
    );
    assert_ok(&o);
    assert!(
        stdout(&o).contains("gradient checkpointing on"),
        "{}",
        stdout(&o)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("u.json")).unwrap()).unwrap();
    assert_eq!(report["gradient_checkpointing"], true);
    let passes = |case: &str| -> Vec<String> {
        let case = (report["cases"].as_array().unwrap().iter())
            .find(|c| c["case"] == case)
            .unwrap_or_else(|| panic!("no case {case}"));
        let mut passes: Vec<String> = (case["conv_profile"].as_array().unwrap().iter())
            .map(|row| row["pass"].as_str().unwrap().to_string())
            .collect();
        passes.sort();
        passes.dedup();
        passes
    };
    assert_eq!(
        passes("train"),
        ["bias grad", "forward", "input grad", "weight grad"]
    );
    assert_eq!(passes("infer"), ["forward"]);
    assert_eq!(passes("saliency"), ["forward", "input grad"]);

    let o = semisono(&["bench", "--conv-profile"], d);
    assert_bad_input(&o, &["--conv-profile", "--unet"]);
}
