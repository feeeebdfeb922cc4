//! MLRPL: the spec's test oracles (specs/mlrpl.md §12, every entry with its numbers), the method
//! on the toy dataset, its configuration, and stop + resume.
//!
//! The CPU backend's random generator is process-global, so every test that builds networks or
//! draws dropout holds [`RNG`]; the oracle tests draw nothing and run freely.

mod common;

use std::fs;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_nn::ops::float_tensor_to_vec;
use semisono_train::config::{ConfigError, OptimizerConfig, Task, TrainConfig};
use semisono_train::loader::{Loader, LoaderConfig};
use semisono_train::methods::mlrpl::{
    foreground_dice, reliable_pair, ConsistencyCe, DecoderUpsample, Mlrpl, MlrplInference,
};
use semisono_train::methods::{self, SslMethod, StepContext, StepLosses};
use semisono_train::schedule::EpochPlan;
use semisono_train::selector::Probs;
use semisono_train::trainer::{load_run, read_state, train_with, TrainOptions};
use semisono_train::TrainError;

use common::{bits, checkpoint_contents, tiny_config, train_full_and_resumed, write_toy};

static RNG: Mutex<()> = Mutex::new(());

fn rng_lock() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// `got` equals the printed oracle `want` to within half a unit of its last printed digit, plus
/// 2e-6 for the `f32` tensors (the spec computes in float64).
fn close(got: f64, want: &str) {
    let w: f64 = want.parse().unwrap();
    let decimals = want.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let tol = 0.5 * 10f64.powi(-decimals) + 2e-6;
    assert!((got - w).abs() <= tol, "got {got:.9}, want {want}");
}

/// [`close`] for values computed in `f64` (schedules): half a unit of the last printed digit.
fn close64(got: f64, want: &str) {
    let w: f64 = want.parse().unwrap();
    let decimals = want.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    assert!(
        (got - w).abs() <= 0.5 * 10f64.powi(-decimals),
        "got {got:.12}, want {want}"
    );
}

fn close_all(got: Vec<f64>, want: &[&str]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.into_iter().zip(want) {
        close(g, w);
    }
}

fn plain() -> Device {
    Device::flex()
}

/// `[1, K, 3, 1]` from three voxels of `K` values each (the spec's row layout).
fn voxels(rows: [[f32; 2]; 3], d: &Device) -> Tensor<4> {
    let mut v = vec![0f32; 6];
    for (i, r) in rows.iter().enumerate() {
        v[i] = r[0];
        v[3 + i] = r[1];
    }
    Tensor::from_data(TensorData::new(v, [1, 2, 3, 1]), d)
}

/// §12.1 inputs: (z₁, f₁, z₂, f₂).
fn oracle_inputs(d: &Device) -> [Tensor<4>; 4] {
    [
        voxels([[2.0, 0.0], [0.0, 1.0], [0.5, 0.0]], d),
        voxels([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], d),
        voxels([[3.0, 0.0], [0.0, 0.5], [0.0, 2.0]], d),
        voxels([[1.0, 0.0], [0.0, 1.0], [0.5, 1.0]], d),
    ]
}

/// `[1, 2, 3]` class-major values back as per-voxel rows, flattened (voxel 0's classes first).
fn by_voxel(t: Tensor<3>) -> Vec<f64> {
    let v = float_tensor_to_vec(t);
    (0..3).flat_map(|i| [v[i], v[3 + i]]).collect()
}

#[test]
fn oracle_12_1_softmax_and_entropy() {
    // mlrpl spec §12.1, "Softmax and entropy".
    let d = plain();
    let [z1, _, z2, _] = oracle_inputs(&d);
    for (z, p_want, h_want) in [
        (
            z1,
            [
                "0.880797", "0.119203", "0.268941", "0.731059", "0.622459", "0.377541",
            ],
            ["0.365332", "0.582201", "0.662845"],
        ),
        (
            z2,
            [
                "0.952574", "0.047426", "0.377541", "0.622459", "0.119203", "0.880797",
            ],
            ["0.190863", "0.662845", "0.365332"],
        ),
    ] {
        let p: Vec<f32> = float_tensor_to_vec(softmax(z, 1))
            .iter()
            .map(|&v| v as f32)
            .collect();
        let probs = Probs::channels_first(&p, 1, 2, 3);
        close_all(
            (0..3)
                .flat_map(|r| [probs.at(r, 0), probs.at(r, 1)])
                .collect(),
            &p_want,
        );
        close_all((0..3).map(|r| probs.entropy(r)).collect(), &h_want);
    }
}

#[test]
fn oracle_12_1_pair_student_1_teacher_2() {
    // mlrpl spec §12.1, "Pair (student 1, teacher 2)".
    let d = plain();
    let [z1, _, z2, f2] = oracle_inputs(&d);
    let t = reliable_pair(z1.clone(), z2.clone(), f2.clone(), ConsistencyCe::Fixed);
    assert_eq!(t.keep, vec![true, false, true]);
    assert_eq!(t.labels, vec![0, 1, 1]);
    close_all(
        float_tensor_to_vec(t.prototypes.clone()),
        &["1", "0", "0.242536", "0.970143"],
    );
    close_all(
        by_voxel(t.similarity.clone()),
        &["1", "0.242536", "0", "0.970143", "0.447214", "0.976187"],
    );
    close_all(
        float_tensor_to_vec(t.weight.clone()),
        &["0.979841", "0", "0.941655"],
    );
    close_all(
        float_tensor_to_vec(t.ce.clone()),
        &["0.126928", "0.313262", "0.974077"],
    );
    close(float_tensor_to_vec(t.loss)[0], "0.520806575");
    // With the double softmax (old commit).
    let old = reliable_pair(z1, z2, f2, ConsistencyCe::Original);
    close(float_tensor_to_vec(old.loss)[0], "0.575252141");
}

#[test]
fn oracle_12_1_pair_student_2_teacher_1_and_total() {
    // mlrpl spec §12.1, "Pair (student 2, teacher 1)" and L_cons.
    let d = plain();
    let [z1, f1, z2, f2] = oracle_inputs(&d);
    let t = reliable_pair(z2.clone(), z1.clone(), f1.clone(), ConsistencyCe::Fixed);
    assert_eq!(t.keep, vec![false, true, false]);
    assert_eq!(t.labels, vec![0, 1, 0]);
    close_all(
        float_tensor_to_vec(t.prototypes.clone()),
        &["0.894427", "0.447214", "0", "1"],
    );
    close_all(
        float_tensor_to_vec(t.weight.clone()),
        &["0", "0.947945", "0"],
    );
    close_all(
        float_tensor_to_vec(t.ce.clone()),
        &["0.048587", "0.474077", "2.126928"],
    );
    let l21 = float_tensor_to_vec(t.loss.clone())[0];
    close(l21, "0.449398349");
    let old = reliable_pair(z2.clone(), z1.clone(), f1.clone(), ConsistencyCe::Original);
    let l21_old = float_tensor_to_vec(old.loss)[0];
    close(l21_old, "0.548070147");

    let l12 = float_tensor_to_vec(
        reliable_pair(z1.clone(), z2.clone(), f2.clone(), ConsistencyCe::Fixed).loss,
    )[0];
    close(l12 + l21, "0.970204925");
    let l12_old = float_tensor_to_vec(reliable_pair(z1, z2, f2, ConsistencyCe::Original).loss)[0];
    close(l12_old + l21_old, "1.123322287");
}

#[test]
fn consistency_gradient_reaches_only_the_student_logits() {
    // spec §5.2: prototypes, similarities, masks and weights carry no gradient.
    let d = plain().autodiff();
    let [z1, _, z2, f2] = oracle_inputs(&d);
    let (z1, z2, f2) = (z1.require_grad(), z2.require_grad(), f2.require_grad());
    let t = reliable_pair(z1.clone(), z2.clone(), f2.clone(), ConsistencyCe::Fixed);
    let grads = t.loss.backward();
    let g1 = z1
        .grad(&grads)
        .expect("the student's logits get a gradient");
    assert!(float_tensor_to_vec(g1).iter().any(|&g| g != 0.0));
    assert!(z2.grad(&grads).is_none(), "teacher logits got a gradient");
    assert!(f2.grad(&grads).is_none(), "teacher features got a gradient");
}

#[test]
fn oracle_12_2_binary_dice() {
    // mlrpl spec §12.2: p_fg = [0.9, 0.2, 0.6, 0.1], y = [1, 0, 1, 0] → 1 − 3.0/3.8.
    let d = plain();
    let fg = [0.9f32, 0.2, 0.6, 0.1];
    let mut p: Vec<f32> = fg.iter().map(|v| 1.0 - v).collect();
    p.extend(fg);
    let probs = Tensor::<4>::from_data(TensorData::new(p, [1, 2, 2, 2]), &d);
    let target = Tensor::<3, Int>::from_data(TensorData::new(vec![1i32, 0, 1, 0], [1, 2, 2]), &d);
    close(
        float_tensor_to_vec(foreground_dice(probs.clone(), target.clone(), None))[0],
        "0.210526315",
    );
    // Invalid pixels leave every sum; none valid gives 0 (ε/ε), not NaN.
    let none = Tensor::<3>::zeros([1, 2, 2], &d);
    assert_eq!(
        float_tensor_to_vec(foreground_dice(probs, target, Some(none)))[0],
        0.0
    );
}

#[test]
fn oracle_12_3_consistency_weight() {
    // mlrpl spec §12.3: w(t) = ρ(⌊t/150⌋, 40).
    let mut c = TrainConfig::default().mlrpl;
    c.consistency_ramp_every = 150;
    let auto = TrainConfig::default().mlrpl; // every = 0: steps / 100, i.e. 150 at 15000 steps
    for cfg in [&c, &auto] {
        let w = |t| cfg.consistency_weight_at(t, 15000);
        for t in [1, 75, 149] {
            close64(w(t), "0.006737947");
        }
        close64(w(150), "0.008624701");
        close64(w(1500), "0.060054668");
        close64(w(3000), "0.286504797");
        close64(w(4500), "0.731615629");
        for t in [6000, 9000, 15000] {
            assert_eq!(w(t), 1.0);
        }
    }
    // The quickstart's 300 steps ramp in chunks of 3 and reach 1 at step 120.
    assert_eq!(auto.ramp_every(300), 3);
    close64(auto.consistency_weight_at(60, 300), "0.286504797");
    assert_eq!(auto.consistency_weight_at(120, 300), 1.0);
}

/// The toy dataset's loader and configuration for `task`, edited by `edit`.
fn toy(dir: &Path, task: Task, edit: impl FnOnce(&mut TrainConfig)) -> (TrainConfig, Loader) {
    let dir = dir.join(format!("{task:?}"));
    fs::create_dir_all(&dir).unwrap();
    let (ds, split) = write_toy(&dir);
    let mut cfg = tiny_config("mlrpl", &ds, &split);
    cfg.task = task;
    edit(&mut cfg);
    cfg.validate().unwrap();
    let loader = Loader::new(
        &Dataset::open(&ds).unwrap(),
        &Split::load(&split).unwrap(),
        LoaderConfig::from_config(&cfg),
    )
    .unwrap();
    (cfg, loader)
}

fn build(cfg: &TrainConfig) -> Mlrpl {
    let d = methods::default_device();
    d.seed(cfg.seed);
    Mlrpl::new(cfg, &d).unwrap()
}

#[test]
fn oracle_12_4_learning_rate_and_sampler() {
    let _g = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    // The code's optimizer; iteration t runs with the rate set after iteration t − 1.
    let (mut cfg, loader) = toy(dir.path(), Task::Segmentation, |c| {
        c.steps = 30000;
        c.optim.seg = OptimizerConfig::sgd(0.01, 0.9, 1e-4);
        c.optim.poly_power = 0.0;
    });
    let lr = |cfg: &TrainConfig, t| {
        let mut m = build(cfg);
        let l = m
            .step(&loader.train_batch(t), &StepContext::default())
            .unwrap();
        l.get("lr_seg").unwrap()
    };
    // Constant: 0.01 at every t.
    for t in [1, 15001, 30000] {
        assert_eq!(lr(&cfg, t), 0.01);
    }
    // Poly (base 0.01, T = 30000, power 0.9): t = 0 → 0.01, t = 15000 → 0.005358867.
    cfg.optim.poly_power = 0.9;
    assert_eq!(lr(&cfg, 1), 0.01);
    close64(lr(&cfg, 15001), "0.005358867");
    // TwoStreamBatchSampler: the labeled set defines the epoch, 2 labeled per batch. LA-8: 4
    // iterations per epoch, max_epoch = ⌊15000/4⌋ + 1 = 3751 (the loop bound; the run stops at
    // iteration 15000, after 3750 epochs). LA-16: 8 and 1876.
    for (labeled, ipe, max_epoch) in [(8, 4, 3751), (16, 8, 1876)] {
        let plan = EpochPlan::new(labeled, 2, 15000, false);
        assert_eq!(plan.iters_per_epoch, ipe);
        assert_eq!(15000 / plan.iters_per_epoch + 1, max_epoch);
        assert_eq!(plan.epochs, max_epoch - 1);
        assert_eq!(plan.total_steps, 15000);
    }
}

#[test]
fn oracle_12_5_ties_go_nowhere() {
    // mlrpl spec §12.5: p_i = p_j → H_i = H_j → M = 0 both ways, no contribution.
    let d = plain();
    let [z1, f1, ..] = oracle_inputs(&d);
    for ce in [ConsistencyCe::Fixed, ConsistencyCe::Original] {
        let t = reliable_pair(z1.clone(), z1.clone(), f1.clone(), ce);
        assert_eq!(t.keep, vec![false; 3]);
        assert!(float_tensor_to_vec(t.weight).iter().all(|&w| w == 0.0));
        assert_eq!(float_tensor_to_vec(t.loss)[0], 0.0);
    }
}

fn assert_finite(l: &StepLosses) {
    for (name, v) in l.losses.iter().chain(&l.stats) {
        assert!(v.is_finite(), "{name} = {v}");
    }
}

#[test]
fn steps_on_the_toy_dataset() {
    let _g = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (cfg, loader) = toy(dir.path(), Task::Both, |c| c.mlrpl.sup_ce_weight = 0.5);
    let mut m = build(&cfg);
    for t in 1..=3 {
        let l = m
            .step(&loader.train_batch(t), &StepContext::default())
            .unwrap();
        assert_finite(&l);
        for name in [
            "seg_dice1",
            "seg_dice2",
            "seg_ce1",
            "seg_ce2",
            "seg_sup",
            "cons_12",
            "cons_21",
            "cons",
            "seg_total",
            "cls_ce",
            "cls_total",
            "lr_seg",
            "lr_cls",
        ] {
            assert!(l.get(name).is_some(), "{name} missing: {l:?}");
        }
        assert_eq!(
            l.get("cons_weight"),
            Some(cfg.mlrpl.consistency_weight_at(t, cfg.steps))
        );
        // spec §6: each pixel is a target in at most one direction.
        let (s12, s21) = (l.get("selected_12").unwrap(), l.get("selected_21").unwrap());
        assert!(s12 + s21 <= 1.0 + 1e-12 && s12 + s21 > 0.0, "{s12} + {s21}");
    }
    let p = m.eval_forward(&loader.eval_batch(Part::Val, 0).batch.images);
    assert!(p.seg_probs.is_some() && p.cls_probs.is_some());
    assert!(m
        .saliency(&loader.eval_batch(Part::Val, 0).batch.images)
        .is_some());

    // Segmentation only, with the published code's CE and bilinear + nearest decoders.
    let (cfg, loader) = toy(dir.path(), Task::Segmentation, |c| {
        c.mlrpl.consistency_ce = ConsistencyCe::Original;
        c.mlrpl.decoder1_upsample = DecoderUpsample::Bilinear;
    });
    let mut m = build(&cfg);
    let l = m
        .step(&loader.train_batch(1), &StepContext::default())
        .unwrap();
    assert_finite(&l);
    assert!(l.get("cls_ce").is_none() && l.get("seg_ce1").is_none() && l.get("cons").is_some());
    assert!(m
        .saliency(&loader.eval_batch(Part::Val, 0).batch.images)
        .is_none());
}

#[test]
fn classifier_trains_exactly_as_supervised() {
    // Classification only: the same networks, optimizer and losses as `supervised`, step for step.
    let _g = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (cfg, loader) = toy(dir.path(), Task::Classification, |_| {});
    let d = methods::default_device();
    let mut sup_cfg = cfg.clone();
    sup_cfg.method = "supervised".into();
    let mut a = methods::create(&cfg, &d).unwrap();
    let la: Vec<StepLosses> = (1..=2)
        .map(|t| {
            a.step(&loader.train_batch(t), &StepContext::default())
                .unwrap()
        })
        .collect();
    let mut b = methods::create(&sup_cfg, &d).unwrap();
    let lb: Vec<StepLosses> = (1..=2)
        .map(|t| {
            b.step(&loader.train_batch(t), &StepContext::default())
                .unwrap()
        })
        .collect();
    assert_eq!(la, lb);
    assert!(la[1].get("cls_ce").is_some() && la[1].get("seg_total").is_none());
}

#[test]
fn inference_reads_decoder_1_or_the_softmax_mean() {
    let _g = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (cfg, loader) = toy(dir.path(), Task::Segmentation, |_| {});
    let images = loader.eval_batch(Part::Val, 0).batch.images;
    let vals = |t: Tensor<4>| float_tensor_to_vec(t);
    let one = build(&cfg);
    let [p1, p2] = one.decoder_probs(&images).unwrap();
    assert_ne!(vals(p1.clone()), vals(p2.clone()));
    assert_eq!(
        vals(one.eval_forward(&images).seg_probs.unwrap()),
        vals(p1.clone())
    );
    let mut avg_cfg = cfg.clone();
    avg_cfg.mlrpl.inference = MlrplInference::Average;
    let avg = build(&avg_cfg).eval_forward(&images).seg_probs.unwrap();
    let want = vals((p1 + p2).div_scalar(2.0));
    assert!(vals(avg)
        .iter()
        .zip(&want)
        .all(|(a, b)| (a - b).abs() < 1e-6));
}

#[test]
fn a_non_finite_loss_stops_before_any_update() {
    // The last checkpoint stays at the step before; nothing of step 3 is applied.
    let _g = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let cfg = tiny_config("mlrpl", &ds, &split);
    let run = dir.path().join("run");
    let opts = TrainOptions {
        inject_nan_at: Some(3),
        ..TrainOptions::default()
    };
    let err = train_with(&cfg, &run, &opts, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, TrainError::NonFinite { step: 3, term, .. } if term == "seg_total"),
        "{err}"
    );
    assert_eq!(read_state(&run.join("checkpoints/last")).unwrap().step, 2);
    // Classification only: the classifier's own check takes the hook.
    let mut cfg = cfg;
    cfg.task = Task::Classification;
    let run = dir.path().join("cls");
    let err = train_with(&cfg, &run, &opts, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, TrainError::NonFinite { step: 3, term, .. } if term == "cls_total"),
        "{err}"
    );
}

fn invalid_key(toml: &str) -> String {
    let text = format!("method = \"mlrpl\"\n[mlrpl]\n{toml}\n");
    match TrainConfig::from_toml_str(&text, Some("quickstart-cpu")) {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("{toml}: expected an invalid value, got {other:?}"),
    }
}

#[test]
fn config_table_round_trip_and_bad_values() {
    let text = "method = \"mlrpl\"\n[mlrpl]\nconsistency_ce = \"original\"\n\
                decoder1_upsample = \"bilinear\"\ninference = \"average\"\n\
                consistency_ramp_every = 150\nfeature_dropout = 0\n";
    let cfg = TrainConfig::from_toml_str(text, Some("quickstart-cpu")).unwrap();
    let m = &cfg.mlrpl;
    assert_eq!(m.consistency_ce, ConsistencyCe::Original);
    assert_eq!(m.decoder1_upsample, DecoderUpsample::Bilinear);
    assert_eq!(m.decoder2_upsample, DecoderUpsample::Nearest);
    assert_eq!(m.inference, MlrplInference::Average);
    assert_eq!((m.consistency_ramp_every, m.feature_dropout), (150, 0.0));
    assert_eq!((m.sup_weight, m.consistency_weight), (0.5, 1.0));
    let again = TrainConfig::from_toml_str(&cfg.to_toml().unwrap(), None).unwrap();
    assert_eq!(again.mlrpl, cfg.mlrpl);

    for (toml, key) in [
        ("sup_weight = -1.0", "mlrpl.sup_weight"),
        ("sup_ce_weight = nan", "mlrpl.sup_ce_weight"),
        ("consistency_weight = inf", "mlrpl.consistency_weight"),
        ("feature_dropout = 1.0", "mlrpl.feature_dropout"),
        ("decoder1_upsample = \"nearest\"", "mlrpl.decoder2_upsample"),
    ] {
        assert_eq!(invalid_key(toml), key, "{toml}");
    }
    for toml in [
        "no_such_key = 1",
        "consistency_ce = \"paper\"",
        "inference = 2",
    ] {
        let text = format!("method = \"mlrpl\"\n[mlrpl]\n{toml}\n");
        let e = TrainConfig::from_toml_str(&text, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mlrpl"), "{toml}: {e}");
    }
}

#[test]
fn stopped_and_resumed_equals_uninterrupted() {
    let _g = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let cfg = tiny_config("mlrpl", &ds, &split);
    assert!(cfg.mlrpl.feature_dropout > 0.0 && cfg.model.dropout > 0.0);

    let (full, parts) = train_full_and_resumed(&cfg, dir.path());

    // Both networks, both optimizers and the state, bit for bit.
    let (a, b) = (
        checkpoint_contents(&full.join("checkpoints/last")),
        checkpoint_contents(&parts.join("checkpoints/last")),
    );
    for file in ["seg.bpk", "seg-optim.bpk", "cls.bpk", "cls-optim.bpk"] {
        assert!(a.contains_key(file), "{file} missing: {:?}", a.keys());
    }
    assert_eq!(a.len(), b.len());
    for (name, v) in &a {
        assert!(b.get(name) == Some(v), "{name} differs after stop + resume");
    }
    // The same losses at every step, and the same probabilities from the loaded runs.
    let losses = |run: &Path| -> Vec<String> {
        fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["kind"] == "train")
            .map(|v| v["losses"].to_string())
            .collect()
    };
    assert_eq!(losses(&full).len(), 4);
    assert_eq!(losses(&full), losses(&parts));
    let (_, ma) = load_run(&full, Some("last")).unwrap();
    let (_, mb) = load_run(&parts, Some("last")).unwrap();
    let loader = Loader::new(
        &Dataset::open(&ds).unwrap(),
        &Split::load(&split).unwrap(),
        LoaderConfig::from_config(&cfg),
    )
    .unwrap();
    let images = loader.eval_batch(Part::Test, 0).batch.images;
    assert!(
        bits(ma.eval_forward(&images).seg_probs.unwrap())
            == bits(mb.eval_forward(&images).seg_probs.unwrap())
    );
    assert_eq!(
        read_state(&full.join("checkpoints/best")).unwrap(),
        read_state(&parts.join("checkpoints/best")).unwrap()
    );
}
