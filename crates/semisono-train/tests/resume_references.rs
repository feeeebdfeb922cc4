//! `mean-teacher`, `fixmatch` and `cps` stopped at step 2 and resumed must end bit-identical to an
//! uninterrupted run (CPU, same seed): the students, the teachers, the second CPS pair, every
//! optimizer state, the logged losses and the evaluation probabilities. One test running the three
//! methods in turn, in its own binary, because the CPU backend's random generator is
//! process-global.

mod common;

use std::fs;
use std::path::Path;

use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_train::config::Task;
use semisono_train::loader::{Loader, LoaderConfig};
use semisono_train::trainer::load_run;

use common::{bits, checkpoint_contents, tiny_config, train_full_and_resumed, write_toy};

fn train_losses(run: &Path) -> Vec<String> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| format!("{} {}", v["losses"], v["stats"]))
        .collect()
}

/// Files each method's checkpoint must hold besides `state.json` and the first pair.
fn extra_files(method: &str) -> &'static [&'static str] {
    match method {
        "mean-teacher" => &["teacher-seg.bpk", "teacher-cls.bpk"],
        "cps" => &[
            "cps-second/seg.bpk",
            "cps-second/cls.bpk",
            "cps-second/seg-optim.bpk",
            "cps-second/cls-optim.bpk",
        ],
        _ => &[],
    }
}

#[test]
fn reference_methods_resume_bit_identically() {
    for method in ["mean-teacher", "fixmatch", "cps"] {
        let dir = tempfile::tempdir().unwrap();
        let (ds, split) = write_toy(dir.path());
        let mut cfg = tiny_config(method, &ds, &split);
        cfg.task = Task::Both;
        // Low thresholds so that FixMatch's pseudo-labels are kept from the start and steps 3–4
        // depend on them.
        cfg.fixmatch.cls_threshold = 0.5;
        cfg.fixmatch.seg_threshold = 0.5;

        let (full, parts) = train_full_and_resumed(&cfg, dir.path());

        let a = checkpoint_contents(&full.join("checkpoints/last"));
        let b = checkpoint_contents(&parts.join("checkpoints/last"));
        for f in [
            "state.json",
            "seg.bpk",
            "cls.bpk",
            "seg-optim.bpk",
            "cls-optim.bpk",
        ]
        .iter()
        .chain(extra_files(method))
        {
            assert!(a.contains_key(*f), "{method}: {f} missing: {:?}", a.keys());
        }
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{method}"
        );
        for (name, v) in &a {
            assert!(
                b[name] == *v,
                "{method}: {name} differs after stop + resume"
            );
        }
        let losses = train_losses(&full);
        assert_eq!(losses.len(), 4);
        assert_eq!(losses, train_losses(&parts), "{method}");

        // Through the networks each method evaluates with (the teachers for Mean Teacher).
        let (cfg_a, ma) = load_run(&full, Some("last")).unwrap();
        let (_, mb) = load_run(&parts, Some("last")).unwrap();
        let loader = Loader::new(
            &Dataset::open(&ds).unwrap(),
            &Split::load(&split).unwrap(),
            LoaderConfig::from_config(&cfg_a),
        )
        .unwrap();
        let x = loader.eval_batch(Part::Test, 0).batch.images;
        let (pa, pb) = (ma.eval_forward(&x), mb.eval_forward(&x));
        assert!(
            bits(pa.seg_probs.unwrap()) == bits(pb.seg_probs.unwrap()),
            "{method}: segmenter"
        );
        assert!(
            bits(pa.cls_probs.unwrap()) == bits(pb.cls_probs.unwrap()),
            "{method}: classifier"
        );
    }
}
