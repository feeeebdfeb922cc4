//! Hermes with IAS attention, the saliency bridge and both memory banks: a run stopped after step 3
//! and resumed must end bit-identical to an uninterrupted one. Step 3 is the first contrastive step
//! (it fills the banks), step 4 contrasts against them, so step 4 only matches if the banks came
//! back from the checkpoint. Its own test binary: the CPU backend's random generator is
//! process-global.

mod common;

use std::fs;
use std::path::Path;

use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_train::config::HermesMode;
use semisono_train::loader::{Loader, LoaderConfig};
use semisono_train::trainer::{load_run, train, train_with, TrainOptions};

use common::{tiny_config, write_toy};

fn train_lines(run: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .collect()
}

#[test]
fn banks_attention_and_saliency_survive_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let mut cfg = tiny_config("hermes", &ds, &split);
    cfg.hermes.mode = HermesMode::Paper;
    cfg.hermes.attention = true;
    cfg.hermes.saliency = true;
    cfg.hermes.memory_bank = true;
    cfg.hermes.pixel_bank_size = 5;
    cfg.hermes.image_bank_size = 3;
    // Every pseudo-label kept: the banks surely receive entries at step 3.
    cfg.hermes.dual_threshold = false;

    let full = dir.path().join("full");
    train(&cfg, &full, false, &mut |_| {}).unwrap();
    let parts = dir.path().join("parts");
    let stop = TrainOptions {
        stop_after: Some(3),
        ..TrainOptions::default()
    };
    train_with(&cfg, &parts, &stop, &mut |_| {}).unwrap();
    let bank_file = parts.join("checkpoints/last/hermes-banks.json");
    assert!(bank_file.is_file());
    train(&cfg, &parts, true, &mut |_| {}).unwrap();

    let (a, b) = (train_lines(&full), train_lines(&parts));
    assert_eq!(a.len(), 4);
    let step4 = &a[3]["stats"];
    assert!(step4["pixel_bank"].as_f64().unwrap() > 0.0, "{step4}");
    assert!(step4["image_bank"].as_f64().unwrap() > 0.0, "{step4}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["losses"], y["losses"], "step {}", x["step"]);
        assert_eq!(x["stats"], y["stats"]);
    }
    assert_eq!(
        fs::read(full.join("checkpoints/last/hermes-banks.json")).unwrap(),
        fs::read(parts.join("checkpoints/last/hermes-banks.json")).unwrap()
    );

    // Paper-mode evaluation runs S, then C with IAS: equal on both runs.
    let (cfg_a, ma) = load_run(&full, Some("last")).unwrap();
    let (_, mb) = load_run(&parts, Some("last")).unwrap();
    let loader = Loader::new(
        &Dataset::open(&ds).unwrap(),
        &Split::load(&split).unwrap(),
        LoaderConfig::from_config(&cfg_a),
    )
    .unwrap();
    let batch = loader.eval_batch(Part::Test, 0);
    let (pa, pb) = (
        ma.eval_forward(&batch.batch.images),
        mb.eval_forward(&batch.batch.images),
    );
    let v = |t: burn::tensor::Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(v(pa.cls_probs.unwrap()), v(pb.cls_probs.unwrap()));
}
