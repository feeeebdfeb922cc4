//! A run stopped at step 2 and resumed must end bit-identical to an uninterrupted run (CPU, same
//! seed). Its own test binary: the CPU backend's random generator is process-global.

mod common;

use std::fs;
use std::path::Path;

use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_train::loader::{Loader, LoaderConfig};
use semisono_train::trainer::{load_run, read_state, train, train_with, TrainOptions};

use common::{bits, checkpoint_contents, tiny_config, write_toy};

#[test]
fn stopped_and_resumed_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, split) = write_toy(dir.path());
    let cfg = tiny_config("hermes", &ds, &split);

    let full = dir.path().join("full");
    train(&cfg, &full, false, &mut |_| {}).unwrap();

    let parts = dir.path().join("parts");
    let stop = TrainOptions {
        stop_after: Some(2),
        ..TrainOptions::default()
    };
    let s = train_with(&cfg, &parts, &stop, &mut |_| {}).unwrap();
    assert_eq!(s.last_step, 2);
    assert!(
        train(&cfg, &parts, false, &mut |_| {}).is_err(),
        "a fresh run must not overwrite"
    );
    let mut resumed_steps = vec![];
    let s = train(&cfg, &parts, true, &mut |p| resumed_steps.push(p.step)).unwrap();
    assert_eq!(resumed_steps, vec![3, 4]);
    assert_eq!(s.last_step, 4);

    // Bit-identical weights, optimizer state and method state at the end.
    let (ca, cb) = (
        checkpoint_contents(&full.join("checkpoints/last")),
        checkpoint_contents(&parts.join("checkpoints/last")),
    );
    assert!(
        ca.len() >= 5,
        "models, optimizers and state: {:?}",
        ca.keys()
    );
    for (name, a) in &ca {
        assert!(
            cb.get(name) == Some(a),
            "{name} differs after stop + resume"
        );
    }
    assert_eq!(ca.len(), cb.len());
    // And through the networks: identical probabilities (bit for bit) on evaluation batches, and
    // identical losses at steps 3 and 4 (which also depend on the restored optimizer state).
    let (cfg_a, a) = load_run(&full, Some("last")).unwrap();
    let (_, b) = load_run(&parts, Some("last")).unwrap();
    let loader = Loader::new(
        &Dataset::open(&ds).unwrap(),
        &Split::load(&split).unwrap(),
        LoaderConfig::from_config(&cfg_a),
    )
    .unwrap();
    for part in [Part::Val, Part::Test, Part::Labeled] {
        let batch = loader.eval_batch(part, 0);
        let (pa, pb) = (
            a.eval_forward(&batch.batch.images),
            b.eval_forward(&batch.batch.images),
        );
        assert!(
            bits(pa.seg_probs.unwrap()) == bits(pb.seg_probs.unwrap()),
            "{part:?}: segmenter differs"
        );
        assert!(
            bits(pa.cls_probs.unwrap()) == bits(pb.cls_probs.unwrap()),
            "{part:?}: classifier differs"
        );
    }
    let losses = |run: &Path| -> Vec<String> {
        fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["kind"] == "train")
            .map(|v| v["losses"].to_string())
            .collect()
    };
    assert_eq!(losses(&full), losses(&parts));
    assert_eq!(losses(&full).len(), 4);
    assert_eq!(
        read_state(&full.join("checkpoints/best")).unwrap(),
        read_state(&parts.join("checkpoints/best")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(full.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"eval\""))
            .count(),
        fs::read_to_string(parts.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"eval\""))
            .count(),
    );
}
