//! End-to-end tests of `semisono experiment` and `semisono report`: a tiny grid (supervised and
//! hermes × 5% and 10% labels × seeds 0 and 1, 2 steps at 32×32) runs, a second invocation skips
//! every cell, a cell removed or stopped before its evaluation is retrained or resumed to the same
//! numbers, the table's mean ± std match the cells' own summaries, and bad experiment files exit 2
//! before anything is written.

mod common;

use std::path::Path;
use std::time::SystemTime;

use common::*;

const GRID: &str = r#"
[experiment]
methods = ["supervised", "hermes"]
labeled = ["10%", "5%"]
seeds = [0, 1]
preset = "quickstart-cpu"
set = ["steps=2", "image_size=32", "batch_labeled=2", "batch_unlabeled=2", "batch_eval=4",
       "eval_every=2", "model.width_multiplier=0.125"]

[dataset.phantom]
count = 40
size = 48
seed = 3

[split]
val = 0.1
test = 0.2
"#;

const CELLS: [(&str, &str, u64); 8] = [
    ("supervised", "10pct", 0),
    ("hermes", "10pct", 0),
    ("supervised", "10pct", 1),
    ("hermes", "10pct", 1),
    ("supervised", "5pct", 0),
    ("hermes", "5pct", 0),
    ("supervised", "5pct", 1),
    ("hermes", "5pct", 1),
];

fn run_dir(d: &Path, method: &str, budget: &str, seed: u64) -> std::path::PathBuf {
    d.join(format!("exp/runs/{method}/{budget}/seed{seed}"))
}

fn summary(d: &Path, method: &str, budget: &str, seed: u64) -> serde_json::Value {
    let p = run_dir(d, method, budget, seed).join("eval/test/summary.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The CSV as rows of named fields.
fn csv_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn grid_runs_resumes_and_reports_mean_and_std() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("grid.toml"), GRID).unwrap();

    // A dry run checks everything and writes nothing.
    let o = semisono(
        &[
            "experiment",
            "--config",
            "grid.toml",
            "--out",
            "exp",
            "--dry-run",
        ],
        d,
    );
    assert_ok(&o);
    assert!(stdout(&o).contains("8 cells (0 finished, 0 to resume, 8 to train)"));
    assert!(!d.join("exp").exists());

    let o = semisono(&["experiment", "--config", "grid.toml", "--out", "exp"], d);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("8 cells: 8 trained, 0 resumed, 0 skipped"),
        "{out}"
    );
    for name in ["experiment.toml", "table.md", "table.csv", "report.html"] {
        assert!(d.join("exp").join(name).is_file(), "{name}");
    }
    for split in [
        "labeled-10pct-seed0",
        "labeled-10pct-seed1",
        "labeled-5pct-seed0",
        "labeled-5pct-seed1",
    ] {
        assert!(d.join(format!("exp/splits/{split}.json")).is_file());
    }
    let table_md = read(&d.join("exp/table.md"));
    let table_csv = read(&d.join("exp/table.csv"));

    // The table against the cells' own summaries: mean and sample std (n - 1) by hand.
    let rows = csv_rows(&table_csv);
    let order: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r["method"].clone(), r["labeled"].clone(), r["runs"].clone()))
        .collect();
    let row = |m: &str, b: &str| (m.to_string(), b.to_string(), "2".to_string());
    assert_eq!(
        order,
        vec![
            row("supervised", "10%"),
            row("supervised", "5%"),
            row("hermes", "10%"),
            row("hermes", "5%"),
        ],
        "{table_csv}"
    );
    let metrics = [
        ("dice", "/seg/dice/mean"),
        ("iou", "/seg/jaccard/mean"),
        ("hd95", "/seg/hd95/mean"),
        ("accuracy", "/accuracy"),
        ("f1", "/macro_f1"),
        ("auc", "/auc"),
    ];
    let mut checked = 0;
    for r in &rows {
        let slug = r["labeled"].replace('%', "pct");
        for (key, pointer) in metrics {
            let v: Vec<f64> = (0..2)
                .filter_map(|s| {
                    summary(d, &r["method"], &slug, s)
                        .pointer(pointer)?
                        .as_f64()
                })
                .collect();
            assert_eq!(r[&format!("{key}_n")], v.len().to_string(), "{key}");
            if v.len() == 2 {
                let mean = (v[0] + v[1]) / 2.0;
                let std = (((v[0] - mean).powi(2) + (v[1] - mean).powi(2)) / 1.0).sqrt();
                let got_mean: f64 = r[&format!("{key}_mean")].parse().unwrap();
                let got_std: f64 = r[&format!("{key}_std")].parse().unwrap();
                assert!(
                    (got_mean - mean).abs() < 1e-12,
                    "{key}: {got_mean} vs {mean}"
                );
                assert!((got_std - std).abs() < 1e-12, "{key}: {got_std} vs {std}");
                // The Markdown shows the same numbers rounded.
                assert!(
                    table_md.contains(&format!("{mean:.3} ± {std:.3}")),
                    "{key} {mean:.3} ± {std:.3} not in\n{table_md}"
                );
                checked += 1;
            }
        }
    }
    // Dice, IoU and accuracy are always defined: at least those were compared in every row.
    assert!(checked >= 12, "only {checked} values compared");
    let html = read(&d.join("exp/report.html"));
    assert!(
        html.contains("<svg") && html.contains("seed0"),
        "report.html"
    );
    // Self-contained: no stylesheet, script or image fetched from anywhere.
    assert!(
        !html.contains("<link") && !html.contains("src="),
        "external assets"
    );

    // Second invocation: every cell finished, nothing retrained, the same table.
    let metrics_files: Vec<_> = CELLS
        .iter()
        .map(|(m, b, s)| run_dir(d, m, b, *s).join("metrics.jsonl"))
        .collect();
    let before: Vec<SystemTime> = metrics_files.iter().map(|p| mtime(p)).collect();
    let o = semisono(&["experiment", "--config", "grid.toml", "--out", "exp"], d);
    assert_ok(&o);
    assert!(
        stdout(&o).contains("8 cells: 0 trained, 0 resumed, 8 skipped"),
        "{}",
        stdout(&o)
    );
    let after: Vec<SystemTime> = metrics_files.iter().map(|p| mtime(p)).collect();
    assert_eq!(before, after, "a finished cell was retrained");
    assert_eq!(read(&d.join("exp/table.csv")), table_csv);

    // One cell deleted (retrained from scratch), one stopped before its evaluation (resumed from
    // its last checkpoint): same seeds, so the same numbers and byte-identical tables.
    std::fs::remove_dir_all(run_dir(d, "hermes", "5pct", 1)).unwrap();
    std::fs::remove_dir_all(run_dir(d, "supervised", "10pct", 0).join("eval")).unwrap();
    let o = semisono(&["experiment", "--config", "grid.toml", "--out", "exp"], d);
    assert_ok(&o);
    assert!(
        stdout(&o).contains("8 cells: 1 trained, 1 resumed, 6 skipped"),
        "{}",
        stdout(&o)
    );
    assert_eq!(read(&d.join("exp/table.csv")), table_csv);
    assert_eq!(read(&d.join("exp/table.md")), table_md);

    // `semisono report` over the runs: the same rows, in the registry's method order and by
    // ascending budget (the experiment listed 10% first and kept that order).
    let o = semisono(&["report", "--runs", "exp/runs", "--out", "rep"], d);
    assert_ok(&o);
    let rep = csv_rows(&read(&d.join("rep/table.csv")));
    let rep_order: Vec<(String, String)> = rep
        .iter()
        .map(|r| (r["method"].clone(), r["labeled"].clone()))
        .collect();
    assert_eq!(
        rep_order,
        [
            ("supervised", "5%"),
            ("supervised", "10%"),
            ("hermes", "5%"),
            ("hermes", "10%")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for r in &rep {
        let same = rows
            .iter()
            .find(|x| x["method"] == r["method"] && x["labeled"] == r["labeled"])
            .unwrap();
        assert_eq!(r, same);
    }
    // A second report into the same folder needs --overwrite.
    assert_bad_input(
        &semisono(&["report", "--runs", "exp/runs", "--out", "rep"], d),
        &["--overwrite"],
    );
    // One run alone: the mean only, no ± (n = 1).
    let o = semisono(
        &[
            "report",
            "--runs",
            "exp/runs/hermes/5pct/seed0",
            "--out",
            "one",
        ],
        d,
    );
    assert_ok(&o);
    let one = read(&d.join("one/table.md"));
    let dice = summary(d, "hermes", "5pct", 0)["seg"]["dice"]["mean"]
        .as_f64()
        .unwrap();
    assert!(
        one.contains(&format!("| hermes | 5% | 1 | {dice:.3} |")),
        "{one}"
    );
    assert!(
        one.lines()
            .filter(|l| l.starts_with("| hermes"))
            .all(|l| !l.contains('±')),
        "{one}"
    );

    // A changed experiment file does not silently mix with the finished cells.
    std::fs::write(d.join("grid2.toml"), GRID.replace("steps=2", "steps=3")).unwrap();
    assert_bad_input(
        &semisono(&["experiment", "--config", "grid2.toml", "--out", "exp"], d),
        &["config.toml", "`steps` was 2 and is now 3"],
    );
    std::fs::write(
        d.join("grid3.toml"),
        GRID.replace("count = 40", "count = 41"),
    )
    .unwrap();
    assert_bad_input(
        &semisono(&["experiment", "--config", "grid3.toml", "--out", "exp"], d),
        &["grid3.toml", "count", "new --out"],
    );
    assert_eq!(read(&d.join("exp/table.csv")), table_csv);
}

#[test]
fn bad_experiment_files_exit_2_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cases: [(&str, String, &[&str]); 6] = [
        (
            "unknown method",
            GRID.replace("\"hermes\"]", "\"hermez\"]"),
            &["bad.toml:3:", "hermez", "supervised, hermes"],
        ),
        (
            "bad budget",
            GRID.replace("\"5%\"", "\"five\""),
            &["bad.toml:4:", "five", "label budget"],
        ),
        (
            "budget out of range",
            GRID.replace("\"5%\"", "\"150%\""),
            &["bad.toml:4:", "out of range"],
        ),
        (
            "syntax error",
            GRID.replace("count = 40", "count = forty"),
            &["bad.toml:11:", "docs/experiment.md"],
        ),
        (
            "unknown key",
            GRID.replace("preset =", "presett ="),
            &["bad.toml:6", "presett"],
        ),
        (
            "unknown training key",
            GRID.replace("steps=2", "stepz=2"),
            &["bad.toml:7:", "stepz"],
        ),
    ];
    for (what, text, needles) in cases {
        std::fs::write(d.join("bad.toml"), text).unwrap();
        let o = semisono(&["experiment", "--config", "bad.toml", "--out", "exp"], d);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        assert_bad_input(&o, needles);
        assert!(!d.join("exp").exists(), "{what}: output written");
    }
    std::fs::write(d.join("grid.toml"), GRID).unwrap();
    assert_bad_input(
        &semisono(
            &[
                "experiment",
                "--config",
                "grid.toml",
                "--out",
                "exp",
                "--set",
                "method=cps",
            ],
            d,
        ),
        &["--set", "set by the experiment"],
    );
    assert_bad_input(
        &semisono(
            &["experiment", "--config", "missing.toml", "--out", "exp"],
            d,
        ),
        &["missing.toml"],
    );
    // A non-empty directory that is not an experiment is left alone.
    std::fs::create_dir(d.join("busy")).unwrap();
    std::fs::write(d.join("busy/notes.txt"), "mine").unwrap();
    assert_bad_input(
        &semisono(&["experiment", "--config", "grid.toml", "--out", "busy"], d),
        &["busy", "not empty"],
    );
    assert_bad_input(
        &semisono(&["report", "--runs", "busy", "--out", "rep"], d),
        &["no evaluated run", "busy"],
    );
    assert!(!d.join("exp").exists() && !d.join("rep").exists());
}

#[test]
fn existing_dataset_dir_with_a_count_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    synth(d, "ds", "30"); // three classes (normal / benign / malignant), 64x64
    let grid = |extra: &str| {
        format!(
            "[experiment]\nmethods = [\"supervised\"]\nlabeled = [6]\nseeds = [4]\n\
             set = [\"steps=2\", \"image_size=32\", \"batch_labeled=2\", \"batch_unlabeled=0\", \
             \"model.width_multiplier=0.125\"{extra}]\n\n[dataset]\ndir = \"ds\"\n"
        )
    };
    // The quickstart preset's classifier has 2 classes; the dataset has 3.
    std::fs::write(d.join("g.toml"), grid("")).unwrap();
    assert_bad_input(
        &semisono(&["experiment", "--config", "g.toml", "--out", "exp"], d),
        &["g.toml", "3 classes", "model.num_classes=3"],
    );
    assert!(!d.join("exp").exists());

    std::fs::write(d.join("g.toml"), grid(", \"model.num_classes=3\"")).unwrap();
    let o = semisono(&["experiment", "--config", "g.toml", "--out", "exp"], d);
    assert_ok(&o);
    assert!(stdout(&o).contains("1 cells: 1 trained"), "{}", stdout(&o));
    assert!(d.join("exp/splits/labeled-6-seed4.json").is_file());
    assert!(
        !d.join("exp/phantom").exists(),
        "no phantom with a dataset dir"
    );
    let split: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.join("exp/runs/supervised/6/seed4/split.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(split["labeled"].as_array().unwrap().len(), 6);
    let md = read(&d.join("exp/table.md"));
    assert!(md.contains("| supervised | 6 | 1 |"), "{md}");
}

/// Quickstart shares the cell code with the experiment: its table still prints one row per method
/// with the figures of the runs' own summaries.
#[test]
fn quickstart_prints_its_table() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = semisono(
        &[
            "quickstart",
            "--out",
            "qs",
            "--count",
            "30",
            "--set",
            "steps=2",
            "--set",
            "image_size=32",
            "--set",
            "model.width_multiplier=0.125",
            "--set",
            "batch_labeled=2",
            "--set",
            "batch_unlabeled=2",
        ],
        d,
    );
    assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains(
            "| method | Dice | IoU | HD95 (mm) | accuracy | F1 (macro) | AUC | train s |\n\
             |---|---|---|---|---|---|---|---|\n"
        ),
        "{out}"
    );
    for method in ["supervised", "hermes"] {
        let s: serde_json::Value = serde_json::from_slice(
            &std::fs::read(d.join(format!("qs/runs/{method}/eval/test/summary.json"))).unwrap(),
        )
        .unwrap();
        let f = |p: &str| {
            s.pointer(p)
                .and_then(|v| v.as_f64())
                .map_or("-".to_string(), |v| format!("{v:.3}"))
        };
        let row = format!(
            "| {method} | {} | {} | {} | {} | {} | {} | ",
            f("/seg/dice/mean"),
            f("/seg/jaccard/mean"),
            f("/seg/hd95/mean"),
            f("/accuracy"),
            f("/macro_f1"),
            f("/auc")
        );
        assert!(out.contains(&row), "{row} not in\n{out}");
        assert!(d.join(format!("qs/runs/{method}/predict/test")).is_dir());
    }
    assert!(read(&d.join("qs/report.md")).contains("| hermes |"));
}
