//! The registry and both methods on the toy dataset: a few steps with finite losses, errors for
//! unknown methods and unimplemented switches, the non-finite stop, and the evaluation report.

mod common;

use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_train::config::{Protocol, Task};
use semisono_train::eval::{evaluate, write_report};
use semisono_train::loader::{Loader, LoaderConfig};
use semisono_train::methods::{self, StepContext};
use semisono_train::trainer::{read_state, train, train_with, TrainOptions};
use semisono_train::TrainError;

use common::{tiny_config, write_toy};

#[test]
fn unknown_method_lists_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let cfg = tiny_config("no-such-method", &ds, &split);
    let err = methods::create(&cfg, &methods::default_device())
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, TrainError::UnknownMethod { .. }), "{msg}");
    assert!(
        msg.contains("no-such-method") && msg.contains("supervised, hermes"),
        "{msg}"
    );
}

#[test]
fn unimplemented_switches_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let mut cfg = tiny_config("hermes", &ds, &split);
    cfg.hermes.attention = true;
    let msg = methods::create(&cfg, &methods::default_device())
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("hermes.attention") && msg.contains("not implemented"),
        "{msg}"
    );
}

/// Runs `steps` steps of `method` directly and returns the losses of each step.
fn run_steps(method: &str, task: Task, steps: u64) -> Vec<semisono_train::methods::StepLosses> {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let mut cfg = tiny_config(method, &ds, &split);
    cfg.task = task;
    let loader = Loader::new(
        &Dataset::open(&ds).unwrap(),
        &Split::load(&split).unwrap(),
        LoaderConfig::from_config(&cfg),
    )
    .unwrap();
    let mut m = methods::create(&cfg, &methods::default_device()).unwrap();
    (1..=steps)
        .map(|t| {
            let l = m
                .step(&loader.train_batch(t), &StepContext::default())
                .unwrap();
            for (name, v) in l.losses.iter().chain(&l.stats) {
                assert!(v.is_finite(), "{method} step {t}: {name} = {v}");
            }
            l
        })
        .collect()
}

#[test]
fn supervised_three_steps() {
    let l = run_steps("supervised", Task::Both, 3);
    for name in [
        "seg_ce",
        "seg_dice",
        "cls_ce",
        "seg_total",
        "cls_total",
        "lr_seg",
        "lr_cls",
    ] {
        assert!(l[2].get(name).is_some(), "{name} missing: {:?}", l[2]);
    }
    let cls_only = run_steps("supervised", Task::Classification, 1);
    assert!(cls_only[0].get("seg_total").is_none() && cls_only[0].get("cls_ce").is_some());
}

#[test]
fn hermes_three_steps() {
    let l = run_steps("hermes", Task::Both, 3);
    for name in [
        "cls_sup",
        "cls_unsup",
        "seg_sup",
        "seg_unsup",
        "itc",
        "itc_weight",
        "cls_keep",
    ] {
        assert!(l[0].get(name).is_some(), "{name} missing: {:?}", l[0]);
    }
    // Contrast is off in epoch 0 (steps 1–2) and on from step 3.
    assert!(l[0].get("cls_contrast").is_none());
    assert!(l[2].get("cls_contrast").is_some(), "{:?}", l[2]);
    let seg_only = run_steps("hermes", Task::Segmentation, 1);
    assert!(seg_only[0].get("itc").is_none() && seg_only[0].get("seg_unsup").is_some());
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let cfg = tiny_config("supervised", &ds, &split);
    let run = dir.path().join("run");
    let opts = TrainOptions {
        inject_nan_at: Some(3),
        ..TrainOptions::default()
    };
    let err = train_with(&cfg, &run, &opts, &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, TrainError::NonFinite { step: 3, .. }) && msg.contains("seg_total"),
        "{msg}"
    );
    assert_eq!(read_state(&run.join("checkpoints/last")).unwrap().step, 2);
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(log.lines().last().unwrap().contains("\"error\""), "{log}");
}

#[test]
fn train_then_evaluate_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let cfg = tiny_config("hermes", &ds, &split);
    let run = dir.path().join("run");
    let mut seen = vec![];
    let summary = train(&cfg, &run, false, &mut |p| seen.push(p.step)).unwrap();
    assert_eq!(seen, vec![1, 2, 3, 4]);
    assert_eq!(summary.last_step, 4);
    assert_eq!(summary.best_metric.as_deref(), Some("val_dice"));
    for f in [
        "config.toml",
        "split.json",
        "metrics.jsonl",
        "checkpoints/last/state.json",
        "checkpoints/best/state.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"kind\":\"train\""))
            .count(),
        4
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"kind\":\"eval\""))
            .count(),
        2
    );

    let dataset = Dataset::open(&ds).unwrap();
    let split = Split::load(&split).unwrap();
    let report = evaluate(&run, None, &dataset, &split, Part::Test, Protocol::Clean).unwrap();
    assert_eq!(report.rows.len(), 4);
    for r in &report.rows {
        let d = r.dice.unwrap();
        assert!((0.0..=1.0).contains(&d), "{r:?}");
        assert_eq!(r.probabilities.len(), 2);
        assert!((r.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        assert!(r.true_label.is_some() && r.pred_label.is_some());
    }
    let s = &report.summary;
    assert_eq!(s.seg.as_ref().unwrap().n_images, 4);
    assert!(s.accuracy.is_some() && s.macro_f1.is_some() && s.auc.is_some());
    let out = dir.path().join("eval");
    write_report(&out, &report).unwrap();
    let csv = std::fs::read_to_string(out.join("per_image.csv")).unwrap();
    assert!(csv.starts_with("id,dice,iou,hd95,assd,true_label,pred_label,prob_0,prob_1\n"));
    assert_eq!(csv.lines().count(), 5);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(json["seg"]["dice"]["mean"].is_number(), "{json}");

    let paper = evaluate(&run, None, &dataset, &split, Part::Test, Protocol::Paper);
    assert!(paper.unwrap_err().to_string().contains("paper"));
}
