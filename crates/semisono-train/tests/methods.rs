//! The registry and both methods on the toy dataset: a few steps with finite losses (Hermes with
//! every switch on too), errors for unknown methods, the non-finite stop, and the evaluation
//! report.

mod common;

use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_train::config::{HermesMode, Protocol, SaliencyFuse, Task, TrainConfig};
use semisono_train::eval::{evaluate, write_report};
use semisono_train::loader::{Loader, LoaderConfig};
use semisono_train::methods::{self, StepContext};
use semisono_train::trainer::{read_state, train, train_with, TrainOptions};
use semisono_train::TrainError;

use common::{checkpoint_contents, tiny_config, write_toy};

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

/// Runs `steps` steps of `method` directly and returns the losses of each step.
fn run_steps(method: &str, task: Task, steps: u64) -> Vec<semisono_train::methods::StepLosses> {
    run_steps_with(method, task, steps, |_| {})
}

/// [`run_steps`] with the configuration changed by `edit`; also runs an evaluation forward.
fn run_steps_with(
    method: &str,
    task: Task,
    steps: u64,
    edit: impl FnOnce(&mut TrainConfig),
) -> Vec<semisono_train::methods::StepLosses> {
    run_steps_on(&methods::default_device(), method, task, steps, edit)
}

/// [`run_steps_with`] on `device`.
fn run_steps_on(
    device: &burn::tensor::Device,
    method: &str,
    task: Task,
    steps: u64,
    edit: impl FnOnce(&mut TrainConfig),
) -> Vec<semisono_train::methods::StepLosses> {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let mut cfg = tiny_config(method, &ds, &split);
    cfg.task = task;
    edit(&mut cfg);
    let loader = Loader::new(
        &Dataset::open(&ds).unwrap(),
        &Split::load(&split).unwrap(),
        LoaderConfig::from_config(&cfg),
    )
    .unwrap();
    let mut m = methods::create(&cfg, device).unwrap();
    let losses = (1..=steps)
        .map(|t| {
            let l = m
                .step(&loader.train_batch(t), &StepContext::default())
                .unwrap();
            for (name, v) in l.losses.iter().chain(&l.stats) {
                assert!(v.is_finite(), "{method} step {t}: {name} = {v}");
            }
            l
        })
        .collect();
    let batch = loader.eval_batch(Part::Val, 0);
    let p = m.eval_forward(&batch.batch.images);
    for probs in [
        p.seg_probs.map(|t| t.into_data()),
        p.cls_probs.map(|t| t.into_data()),
    ]
    .into_iter()
    .flatten()
    {
        let v = probs.convert::<f32>().try_to_vec::<f32>().unwrap();
        let bad: Vec<(usize, f32)> = v
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, x)| !(x.is_finite() && (0.0..=1.0).contains(x)))
            .take(5)
            .collect();
        assert!(
            bad.is_empty(),
            "{method}: probabilities outside [0, 1]: {bad:?}"
        );
    }
    losses
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

/// Gradient checkpointing recomputes BatchNorm, ReLU and the other memory-bound ops in the
/// backward from what it kept: every method's losses (so its gradients and updates) come out the
/// same to the bit as when every activation is kept.
#[test]
fn gradient_checkpointing_trains_bit_identically() {
    let kept = burn::tensor::Device::flex().autodiff();
    let recomputed = kept.clone().gradient_checkpointing();
    for method in semisono_train::config::METHODS {
        let losses = |device| {
            // The RNG is process-wide: no other test's draws between these steps.
            let _alone = methods::exclusive();
            run_steps_on(device, method, Task::Both, 3, |_| {})
                .iter()
                .map(|l| {
                    (l.losses.iter())
                        .map(|&(name, v)| (name, v.to_bits()))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(losses(&kept), losses(&recomputed), "{method}");
    }
}

#[test]
fn hermes_with_every_switch_on() {
    // Without the dual threshold every pseudo-label is kept, so both banks surely fill at step 3;
    // with it (paper mode) they may stay empty this early.
    for (mode, fuse, dual) in [
        (HermesMode::Code, SaliencyFuse::Eighth, false),
        (HermesMode::Paper, SaliencyFuse::Quarter, true),
    ] {
        let l = run_steps_with("hermes", Task::Both, 4, |c| {
            c.hermes.mode = mode;
            c.hermes.dual_threshold = dual;
            c.hermes.attention = true;
            c.hermes.saliency = true;
            c.hermes.saliency_fuse = fuse;
            c.hermes.memory_bank = true;
            c.hermes.pixel_bank_size = 6;
            c.hermes.image_bank_size = 3;
        });
        // Contrast starts at step 3 with empty banks; step 4 contrasts against what step 3 left.
        assert_eq!(l[2].get("pixel_bank"), Some(0.0), "{mode:?}: {:?}", l[2]);
        assert_eq!(l[2].get("image_bank"), Some(0.0));
        let (pixel, image) = (
            l[3].get("pixel_bank").unwrap(),
            l[3].get("image_bank").unwrap(),
        );
        assert!(pixel <= 12.0 && image <= 6.0, "{mode:?}: {:?}", l[3]);
        if !dual {
            // 2 images, at least one class each; 2 weak-view projections.
            assert!(pixel >= 2.0, "{:?}", l[3]);
            assert_eq!(image, 2.0, "{:?}", l[3]);
        }
        for name in ["cls_contrast", "seg_contrast", "itc", "cls_sup"] {
            assert!(
                l[3].get(name).is_some(),
                "{mode:?}: {name} missing: {:?}",
                l[3]
            );
        }
    }
    // One network only: attention, saliency and ITC are off, the rest runs.
    let seg_only = run_steps_with("hermes", Task::Segmentation, 1, |c| {
        c.hermes.attention = true;
        c.hermes.saliency = true;
        c.hermes.memory_bank = true;
    });
    assert!(seg_only[0].get("itc").is_none() && seg_only[0].get("seg_sup").is_some());
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
        let d = r.seg.as_ref().unwrap().overlap.dice;
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
    assert!(csv.starts_with(
        "id,dice,iou,precision,recall,specificity,hd,hd95,asd,assd,true_label,pred_label,prob_0,prob_1\n"
    ));
    assert_eq!(csv.lines().count(), 5);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(json["seg"]["dice"]["mean"].is_number(), "{json}");

    let paper = evaluate(&run, None, &dataset, &split, Part::Test, Protocol::Paper).unwrap();
    let p = paper.summary.paper.as_ref().expect("paper figures");
    assert!(p.seg_batches >= 1 && p.cls_batches >= 1, "{p:?}");
    for v in [p.tumour_dice, p.mean_dice, p.tumour_iou, p.accuracy] {
        assert!((0.0..=100.0).contains(&v.unwrap()), "{p:?}");
    }
    // The per-image rows are the clean protocol's.
    assert_eq!(paper.rows, report.rows);
}

#[test]
fn dataset_with_another_class_count_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let classes = Dataset::open(&ds).unwrap().info.classes.len();
    let mut cfg = tiny_config("supervised", &ds, &split);
    cfg.model.num_classes = classes + 1;
    let run = dir.path().join("run");
    let err = train(&cfg, &run, false, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, TrainError::Config { key, .. } if key == "model.num_classes"),
        "{err}"
    );
    assert!(!run.join("checkpoints").exists(), "nothing written");
}

/// Two trainings at once in one process (as the test harness runs them) end with bit-identical
/// weights: `methods::exclusive` keeps their seeds, random draws and autodiff graphs apart. Without
/// it the two initialisations and dropout masks interleave on the process-wide RNG.
#[test]
fn concurrent_trainings_end_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let cfg = tiny_config("hermes", &ds, &split);
    let runs: Vec<_> = (0..2).map(|i| dir.path().join(format!("run{i}"))).collect();
    std::thread::scope(|s| {
        for run in &runs {
            let cfg = &cfg;
            s.spawn(move || train(cfg, run, false, &mut |_| {}).unwrap());
        }
    });
    let [a, b] = [&runs[0], &runs[1]].map(|r| checkpoint_contents(&r.join("checkpoints/last")));
    assert!(!a.is_empty());
    assert!(a == b, "the two trainings differ");
}
