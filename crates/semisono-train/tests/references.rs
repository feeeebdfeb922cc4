//! The reference methods `mean-teacher`, `fixmatch` and `cps`: a few steps for every task with
//! finite losses, their losses and selection rules against hand-computed values, the EMA teacher,
//! the CPS pairs, the non-finite stop, checkpoints and the configuration checks.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::{BurnpackStore, ModuleStore};

use burn::tensor::{Device, Tensor, TensorData};
use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_train::config::{Task, TrainConfig};
use semisono_train::loader::{ImageBatch, Loader, LoaderConfig};
use semisono_train::methods::cps::{cps_cls_loss, cps_seg_loss, Cps};
use semisono_train::methods::fixmatch::{cls_unsup_loss, seg_unsup_loss};
use semisono_train::methods::mean_teacher::{ramped_weight, softmax_mse, MeanTeacher};
use semisono_train::methods::{self, Predictions, SslMethod, StepContext, StepLosses};
use semisono_train::TrainError;

use common::{tiny_config, write_toy};

const LN3: f64 = 1.098_612_288_668_109_8;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-5
}

fn value(t: Tensor<1>) -> f64 {
    f64::from(t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()[0])
}

fn t2(v: Vec<f32>, shape: [usize; 2], d: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, shape), d)
}

fn t4(v: Vec<f32>, shape: [usize; 4], d: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v, shape), d)
}

/// The toy data set, a tiny configuration of `method` for `task`, and its loader.
fn setup(dir: &Path, method: &str, task: Task) -> (TrainConfig, Loader) {
    let (ds, split) = write_toy(dir);
    let mut cfg = tiny_config(method, &ds, &split);
    cfg.task = task;
    let loader = Loader::new(
        &Dataset::open(&ds).unwrap(),
        &Split::load(&split).unwrap(),
        LoaderConfig::from_config(&cfg),
    )
    .unwrap();
    (cfg, loader)
}

fn probs_bits(p: &Predictions) -> Vec<u32> {
    let mut v = vec![];
    if let Some(t) = &p.seg_probs {
        v.extend(t.clone().into_data().try_to_vec::<f32>().unwrap());
    }
    if let Some(t) = &p.cls_probs {
        v.extend(t.clone().into_data().try_to_vec::<f32>().unwrap());
    }
    v.iter().map(|x| x.to_bits()).collect()
}

fn eval_images(loader: &Loader) -> ImageBatch {
    loader.eval_batch(Part::Val, 0).batch.images
}

/// Two steps of `method` for every task through the registry: finite losses, the terms of each
/// network present exactly when it is trained, probabilities in [0, 1].
fn two_steps_every_task(method: &str, seg_terms: &[&str], cls_terms: &[&str]) {
    for task in [Task::Segmentation, Task::Classification, Task::Both] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, loader) = setup(dir.path(), method, task);
        let mut m = methods::create(&cfg, &methods::default_device()).unwrap();
        assert_eq!(m.name(), method);
        let mut last = StepLosses::default();
        for t in 1..=2 {
            last = m
                .step(&loader.train_batch(t), &StepContext::default())
                .unwrap();
            for (name, v) in last.losses.iter().chain(&last.stats) {
                assert!(v.is_finite(), "{method} {task:?} step {t}: {name} = {v}");
            }
        }
        let (seg, cls) = (task != Task::Classification, task != Task::Segmentation);
        for (terms, on) in [(seg_terms, seg), (cls_terms, cls)] {
            for name in terms {
                assert_eq!(
                    last.get(name).is_some(),
                    on,
                    "{method} {task:?}: {name} in {last:?}"
                );
            }
        }
        let p = m.eval_forward(&eval_images(&loader));
        assert_eq!((p.seg_probs.is_some(), p.cls_probs.is_some()), (seg, cls));
        let bits = probs_bits(&p);
        assert!(bits
            .iter()
            .all(|&b| (0.0..=1.0).contains(&f32::from_bits(b))));
        assert_eq!(
            m.saliency(&eval_images(&loader)).is_some(),
            cls,
            "{method} {task:?}"
        );
    }
}

#[test]
fn mean_teacher_runs_for_every_task() {
    two_steps_every_task(
        "mean-teacher",
        &["seg_sup", "seg_consistency", "seg_total"],
        &["cls_sup", "cls_consistency", "cls_total"],
    );
}

#[test]
fn fixmatch_runs_for_every_task() {
    two_steps_every_task(
        "fixmatch",
        &["seg_sup", "seg_unsup", "seg_keep", "seg_total"],
        &["cls_sup", "cls_unsup", "cls_keep", "cls_total"],
    );
}

#[test]
fn cps_runs_for_every_task() {
    two_steps_every_task(
        "cps",
        &[
            "seg_sup",
            "seg_cps",
            "seg_sup2",
            "seg_cps2",
            "seg_total2",
            "seg_cps_weight",
        ],
        &[
            "cls_sup",
            "cls_cps",
            "cls_sup2",
            "cls_cps2",
            "cls_total2",
            "cls_cps_weight",
        ],
    );
}

// ---- losses and rules against hand-computed values ----

#[test]
fn softmax_mse_is_the_mean_squared_softmax_difference() {
    let d = Device::flex();
    // softmax([0, ln 3]) = [1/4, 3/4]; against [1/2, 1/2]: (1/4)² twice, and [1, 0] against
    // softmax([0, 0]) = [1/2, 1/2]: (1/2)² twice. Mean of the four = (2/16 + 2/4) / 4 = 5/32.
    let student = t2(vec![0.0, LN3 as f32, 0.0, 0.0], [2, 2], &d);
    let teacher = t2(vec![0.5, 0.5, 1.0, 0.0], [2, 2], &d);
    assert!(close(value(softmax_mse(student, teacher)), 5.0 / 32.0));
    // Pixels: the softmax runs over dim 1 (classes), not over the pixels. One image, 2 classes,
    // 2 pixels: logits class 0 = [0, 0], class 1 = [ln 3, 0] → probs [1/4, 1/2] and [3/4, 1/2].
    let student = t4(vec![0.0, 0.0, LN3 as f32, 0.0], [1, 2, 1, 2], &d);
    let teacher = t4(vec![0.25, 0.5, 0.75, 0.5], [1, 2, 1, 2], &d);
    assert!(value(softmax_mse(student.clone(), teacher)) < 1e-12);
    let teacher = t4(vec![0.0, 0.0, 1.0, 1.0], [1, 2, 1, 2], &d);
    // Differences: 1/4, 1/2, −1/4, −1/2 → mean of squares (1/16 + 1/4) · 2 / 4 = 5/32.
    assert!(close(value(softmax_mse(student, teacher)), 5.0 / 32.0));

    // The teacher's target gets no gradient, the student's logits do.
    let d = Device::flex().autodiff();
    let s = t2(vec![0.0, 1.0], [1, 2], &d).require_grad();
    let t = t2(vec![0.5, 0.5], [1, 2], &d).require_grad();
    let g = softmax_mse(s.clone(), t.clone()).backward();
    assert!(s.grad(&g).is_some());
    assert!(
        t.grad(&g).is_none(),
        "the teacher's target must be a constant"
    );
}

#[test]
fn ramp_reaches_the_weight_at_the_fraction_of_the_run() {
    // 400 steps, fraction 1/4: the ramp is 100 steps long; ρ(50, 100) = exp(−5 · 0.5²).
    assert!(close(
        ramped_weight(0.1, 0.25, 50, 400),
        0.1 * (-1.25f64).exp()
    ));
    assert!(close(ramped_weight(0.1, 0.25, 100, 400), 0.1));
    assert!(close(ramped_weight(0.1, 0.25, 300, 400), 0.1));
    assert!(ramped_weight(0.1, 0.25, 1, 400) < 0.1 * 0.01);
    // No ramp: the full weight from the first step.
    assert_eq!(ramped_weight(1.5, 0.0, 1, 400), 1.5);
}

#[test]
fn fixmatch_keeps_images_at_or_above_the_threshold() {
    let d = Device::flex();
    // Weak: image 0 at exactly τ = 0.75 (kept: ≥), image 1 at 0.5 (dropped). Pseudo-label of
    // image 0 is class 0; the strong logits [0, ln 3] give it probability 1/4, CE = ln 4. The
    // mean runs over both images: ln 4 / 2.
    let weak = [0.75f32, 0.25, 0.5, 0.5];
    let strong = t2(vec![0.0, LN3 as f32, 5.0, -5.0], [2, 2], &d);
    let u = cls_unsup_loss(strong.clone(), &weak, 0.75);
    assert_eq!(u.keep_fraction, 0.5);
    assert!(close(value(u.loss), 4f64.ln() / 2.0));
    // Above every probability: nothing kept, a zero loss.
    let u = cls_unsup_loss(strong, &weak, 0.8);
    assert_eq!((u.keep_fraction, value(u.loss)), (0.0, 0.0));
    // The label is the weak view's arg-max, the loss the strong view's: weak says class 1.
    let weak = [0.125f32, 0.875];
    let strong = t2(vec![LN3 as f32, 0.0], [1, 2], &d);
    let u = cls_unsup_loss(strong, &weak, 0.75);
    assert!(close(value(u.loss), 4f64.ln()));
}

#[test]
fn fixmatch_keeps_pixels_at_or_above_the_threshold() {
    let d = Device::flex();
    // One image, 2 classes, 1×2 pixels, channels first: pixel 0 is class 0 at 0.875 (kept at
    // τ = 0.875), pixel 1 class 1 at 0.75 (dropped). Strong pixel 0 has logits [0, ln 3]:
    // CE(class 0) = ln 4; the mean is over both pixels.
    let weak = [0.875f32, 0.25, 0.125, 0.75];
    let strong = t4(vec![0.0, 0.0, LN3 as f32, 0.0], [1, 2, 1, 2], &d);
    let u = seg_unsup_loss(strong.clone(), &weak, 0.875);
    assert_eq!(u.keep_fraction, 0.5);
    assert!(close(value(u.loss), 4f64.ln() / 2.0));
    // τ = 0.75 keeps pixel 1 too (class 1, strong probability 1/2): (ln 4 + ln 2) / 2.
    let u = seg_unsup_loss(strong, &weak, 0.75);
    assert_eq!(u.keep_fraction, 1.0);
    assert!(close(value(u.loss), (4f64.ln() + 2f64.ln()) / 2.0));
}

#[test]
fn cps_each_network_learns_from_the_others_arg_max() {
    let d = Device::flex();
    // a: softmax [1/4, 3/4] → label 1; b: logits [ln 7, 0] → softmax [7/8, 1/8] → label 0.
    // CE(a, 0) = ln 4 and CE(b, 1) = ln 8. (Self-supervision would give −ln 3/4 and −ln 7/8.)
    let a = t2(vec![0.0, LN3 as f32], [1, 2], &d);
    let b = t2(vec![7f32.ln(), 0.0], [1, 2], &d);
    let (la, lb) = cps_cls_loss(a, b);
    assert!(close(value(la), 4f64.ln()), "CE(a, argmax b)");
    assert!(close(value(lb), 8f64.ln()), "CE(b, argmax a)");
    // The same per pixel, averaged over pixels: pixel 0 as above, pixel 1 where both agree on
    // class 0 with logits [0, 0] (CE ln 2 each).
    let a = t4(vec![0.0, 0.0, LN3 as f32, 0.0], [1, 2, 1, 2], &d);
    let b = t4(vec![7f32.ln(), 0.0, 0.0, 0.0], [1, 2, 1, 2], &d);
    let (la, lb) = cps_seg_loss(a, b);
    assert!(close(value(la), (4f64.ln() + 2f64.ln()) / 2.0));
    assert!(close(value(lb), (8f64.ln() + 2f64.ln()) / 2.0));

    // Each term trains only the network on its left: the pseudo-labels carry no gradient.
    let d = Device::flex().autodiff();
    let a = t2(vec![0.0, 1.0], [1, 2], &d).require_grad();
    let b = t2(vec![1.0, 0.0], [1, 2], &d).require_grad();
    let (la, _) = cps_cls_loss(a.clone(), b.clone());
    let g = la.backward();
    assert!(a.grad(&g).is_some());
    assert!(
        b.grad(&g).is_none(),
        "b must get no gradient from CE(a, argmax b)"
    );
}

// ---- the EMA teacher and the CPS pairs ----

/// The tensors of one `.bpk` model file by name, as `f32` values.
fn module_tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    store
        .get_all_tensors()
        .unwrap()
        .iter()
        .map(|(key, t)| {
            let bytes = t.to_bytes().unwrap();
            let v = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (key.clone(), v)
        })
        .collect()
}

fn is_running(key: &str) -> bool {
    key.contains("running_mean") || key.contains("running_var")
}

/// (teacher, student) segmenter tensors of `m` as saved in a checkpoint.
fn teacher_and_student(m: &MeanTeacher, dir: &Path) -> [BTreeMap<String, Vec<f32>>; 2] {
    std::fs::create_dir_all(dir).unwrap();
    m.save(dir).unwrap();
    [
        module_tensors(&dir.join("teacher-seg.bpk")),
        module_tensors(&dir.join("seg.bpk")),
    ]
}

#[test]
fn teacher_starts_as_the_student_and_follows_its_parameters_by_ema() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, loader) = setup(dir.path(), "mean-teacher", Task::Both);
    let device = methods::default_device();
    device.seed(cfg.seed);
    let mut m = MeanTeacher::new(&cfg, &device).unwrap();
    let x = eval_images(&loader);
    let ctx = StepContext::default();
    // At construction the teacher is a copy of the student, BN statistics included.
    assert_eq!(
        probs_bits(&m.eval_forward(&x)),
        probs_bits(&m.student_forward(&x))
    );
    // Step 1: decay min(1 − 1/1, α) = 0, so the teacher's parameters become the student's
    // exactly; its BN running statistics are its own (from its forward on the weak views).
    let l = m.step(&loader.train_batch(1), &ctx).unwrap();
    assert_eq!(l.get("ema_decay"), Some(0.0));
    let [t1, s1] = teacher_and_student(&m, &dir.path().join("c1"));
    assert_eq!(t1.keys().collect::<Vec<_>>(), s1.keys().collect::<Vec<_>>());
    // (Statistics of layers that `forward_logits` does not use stay at their initial values in
    // both, hence counts rather than every key.)
    let mut own = 0;
    for (k, v) in &t1 {
        if is_running(k) {
            own += usize::from(*v != s1[k]);
        } else {
            assert_eq!(*v, s1[k], "{k}: step 1 copies the student");
        }
    }
    assert!(own > 0, "the teacher must keep its own BN statistics");
    // Step 2: decay 1/2: every parameter is the mean of the old teacher and the new student;
    // the statistics move with the teacher's own forward, not towards the student's.
    let l = m.step(&loader.train_batch(2), &ctx).unwrap();
    assert_eq!(l.get("ema_decay"), Some(0.5));
    let [t2, s2] = teacher_and_student(&m, &dir.path().join("c2"));
    let (mut moved, mut updated, mut own) = (0, 0, 0);
    for (k, v) in &t2 {
        if is_running(k) {
            updated += usize::from(*v != t1[k]);
            own += usize::from(*v != s2[k]);
            continue;
        }
        for ((t, old), s) in v.iter().zip(&t1[k]).zip(&s2[k]) {
            let want = old * 0.5 + s * 0.5;
            assert!(
                (t - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{k}: {t} vs {want}"
            );
        }
        moved += usize::from(*v != t1[k]);
    }
    assert!(moved > 0, "no teacher parameter changed");
    assert!(
        updated > 0 && own > 0,
        "the teacher's forward updates its own statistics"
    );
    assert_ne!(
        probs_bits(&m.eval_forward(&x)),
        probs_bits(&m.student_forward(&x))
    );
    // The teacher's target enters the loss: the consistency term is positive once they differ.
    let l = m.step(&loader.train_batch(3), &ctx).unwrap();
    assert!(l.get("seg_consistency").unwrap() > 0.0, "{l:?}");
    assert!(l.get("cls_consistency").unwrap() > 0.0, "{l:?}");
}

#[test]
fn cps_pairs_start_different_and_mean_evaluation_averages_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cfg, loader) = setup(dir.path(), "cps", Task::Both);
    cfg.cps.eval_mean = true;
    let device = methods::default_device();
    device.seed(cfg.seed);
    let mut m = Cps::new(&cfg, &device).unwrap();
    m.step(&loader.train_batch(1), &StepContext::default())
        .unwrap();
    let x = eval_images(&loader);
    let (p0, p1, mean) = (
        m.pair_forward(0, &x),
        m.pair_forward(1, &x),
        m.eval_forward(&x),
    );
    assert_ne!(probs_bits(&p0), probs_bits(&p1), "the pairs are identical");
    let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    let (a, b, c) = (
        host(p0.seg_probs.clone().unwrap()),
        host(p1.seg_probs.clone().unwrap()),
        host(mean.seg_probs.unwrap()),
    );
    for ((a, b), c) in a.iter().zip(&b).zip(&c) {
        assert!((c - (a + b) / 2.0).abs() < 1e-6);
    }
    // Without `eval_mean`, evaluation is the first pair.
    cfg.cps.eval_mean = false;
    let mut first = Cps::new(&cfg, &device).unwrap();
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    m.save(&ckpt).unwrap();
    first.load(&ckpt).unwrap();
    assert_eq!(probs_bits(&first.eval_forward(&x)), probs_bits(&p0));
    assert_eq!(probs_bits(&first.pair_forward(1, &x)), probs_bits(&p1));
}

/// Every tensor of every `.bpk` file under `dir` (recursively), by file and tensor name, except
/// BatchNorm running statistics; optimizer tensors (named by random parameter ids) as a sorted
/// list.
fn weights_and_optimizers(dir: &Path) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for p in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        if p.is_dir() {
            for (k, v) in weights_and_optimizers(&p) {
                let sub = p.file_name().unwrap().to_string_lossy();
                out.insert(format!("{sub}/{k}"), v);
            }
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let mut store = BurnpackStore::from_file(&p).auto_extension(false);
        let optim = name.contains("optim");
        let mut v: Vec<Vec<u8>> = store
            .get_all_tensors()
            .unwrap()
            .iter()
            .filter(|(key, _)| !key.contains("running"))
            .map(|(key, t)| {
                let mut b = if optim {
                    vec![]
                } else {
                    key.as_bytes().to_vec()
                };
                b.extend_from_slice(&t.to_bytes().unwrap());
                b
            })
            .collect();
        v.sort();
        out.insert(name, v);
    }
    out
}

#[test]
fn non_finite_cps_loss_leaves_both_pairs_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, loader) = setup(dir.path(), "cps", Task::Both);
    let device = methods::default_device();
    device.seed(cfg.seed);
    let mut m = Cps::new(&cfg, &device).unwrap();
    let ctx = StepContext::default();
    // One good step first, so that the optimizers hold state that a second update would change.
    m.step(&loader.train_batch(1), &ctx).unwrap();
    let snapshot = |m: &Cps, name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        m.save(&d).unwrap();
        weights_and_optimizers(&d)
    };
    let before = snapshot(&m, "before");
    assert!(before.len() >= 8, "{:?}", before.keys());
    let nan = StepContext { inject_nan: true };
    let err = m.step(&loader.train_batch(2), &nan).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { step: 2, .. }),
        "{err}"
    );
    // The forward pass has updated the BN running statistics (as in every method), nothing else.
    let after = snapshot(&m, "after");
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (k, v) in &before {
        assert!(after[k] == *v, "{k} changed after a non-finite step");
    }
    // And the step goes through without the injected NaN (the check is not always failing).
    m.step(&loader.train_batch(2), &ctx).unwrap();
    let moved = snapshot(&m, "moved");
    assert!(before.iter().any(|(k, v)| moved[k] != *v));
}

#[test]
fn a_checkpoint_without_the_teacher_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = setup(dir.path(), "mean-teacher", Task::Segmentation);
    let device = methods::default_device();
    let m = MeanTeacher::new(&cfg, &device).unwrap();
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    m.save(&ckpt).unwrap();
    assert!(ckpt.join("teacher-seg.bpk").is_file());
    assert!(!ckpt.join("teacher-cls.bpk").exists(), "no classifier");
    std::fs::remove_file(ckpt.join("teacher-seg.bpk")).unwrap();
    let mut fresh = MeanTeacher::new(&cfg, &device).unwrap();
    let err = fresh.load(&ckpt).unwrap_err();
    assert!(
        matches!(&err, TrainError::RunDir { path, .. } if path.ends_with("teacher-seg.bpk")),
        "{err}"
    );
}

// ---- configuration ----

#[test]
fn reference_tables_have_their_defaults_and_round_trip() {
    let cfg = TrainConfig::default();
    assert_eq!(cfg.mean_teacher.ema_alpha, 0.99);
    assert_eq!(cfg.mean_teacher.consistency_weight, 0.1);
    assert_eq!(cfg.mean_teacher.consistency_rampup, 0.25);
    assert_eq!(
        (cfg.fixmatch.cls_threshold, cfg.fixmatch.seg_threshold),
        (0.95, 0.95)
    );
    assert_eq!(cfg.fixmatch.unsup_weight, 1.0);
    assert_eq!(
        (cfg.cps.seg_weight, cfg.cps.cls_weight, cfg.cps.cps_rampup),
        (0.375, 1.5, 0.25)
    );
    assert!(!cfg.cps.eval_mean);
    let text = "method = \"cps\"\n[mean_teacher]\nema_alpha = 0.999\n[fixmatch]\nseg_threshold = \
                0.9\n[cps]\neval_mean = true\ncps_rampup = 0.0\n";
    let c = TrainConfig::from_toml_str(text, None).unwrap();
    assert_eq!(c.mean_teacher.ema_alpha, 0.999);
    assert_eq!(c.fixmatch.seg_threshold, 0.9);
    assert!(c.cps.eval_mean && c.cps.cps_rampup == 0.0);
    assert_eq!(
        TrainConfig::from_toml_str(&c.to_toml().unwrap(), None).unwrap(),
        c
    );
}

#[test]
fn bad_reference_values_name_their_key() {
    for (table, key, v) in [
        ("mean_teacher", "ema_alpha", "1.0"),
        ("mean_teacher", "ema_alpha", "-0.1"),
        ("mean_teacher", "consistency_weight", "-1.0"),
        ("mean_teacher", "consistency_rampup", "1.5"),
        ("fixmatch", "cls_threshold", "0.0"),
        ("fixmatch", "seg_threshold", "1.01"),
        ("fixmatch", "unsup_weight", "nan"),
        ("cps", "seg_weight", "inf"),
        ("cps", "cls_weight", "-1.0"),
        ("cps", "cps_rampup", "-0.5"),
    ] {
        let text = format!("[{table}]\n{key} = {v}\n");
        let err = TrainConfig::from_toml_str(&text, None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("`{table}.{key}`")), "{text}: {msg}");
    }
    let err = TrainConfig::from_toml_str("[fixmatch]\nthreshold = 0.9\n", None).unwrap_err();
    assert!(err.to_string().contains("threshold"), "{err}");
}

#[test]
fn every_reference_method_needs_unlabeled_batches() {
    for method in ["mean-teacher", "fixmatch", "cps"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut cfg, _) = setup(dir.path(), method, Task::Both);
        cfg.batch_unlabeled = 0;
        let err = methods::create(&cfg, &methods::default_device())
            .err()
            .unwrap();
        assert!(
            matches!(&err, TrainError::Config { key, .. } if key == "batch_unlabeled"),
            "{method}: {err}"
        );
    }
}
