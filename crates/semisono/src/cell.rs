//! One cell of a comparison (a method trained on one split with one seed, then evaluated on the
//! test part) and the headline metrics of its evaluation: the pieces `quickstart` and `experiment`
//! share, so both produce the same run directories and the same numbers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use semisono_data::split::{self, Budget, Part, Split, SplitConfig, SplitProtocol};
use semisono_data::Dataset;
use semisono_train::config::{Protocol, TrainConfig};
use semisono_train::eval::{self, EvalReport};
use semisono_train::trainer;

use crate::{cmd_synth, cmd_train};

/// The phantom a comparison runs on (a subset of `semisono synth`'s options).
#[derive(Clone, Debug, PartialEq)]
pub struct PhantomSpec {
    pub count: u64,
    pub size: u32,
    pub seed: u64,
    /// breast or thyroid.
    pub anatomy: String,
    pub probe: String,
    pub classes: String,
}

impl PhantomSpec {
    /// What `quickstart` synthesises (binary classes, mixed probes, 128×128).
    pub fn quickstart(count: u64, seed: u64) -> Self {
        PhantomSpec {
            count,
            size: 128,
            seed,
            anatomy: "breast".into(),
            probe: "mixed".into(),
            classes: "binary".into(),
        }
    }

    fn synth_args(&self, out: &Path) -> cmd_synth::SynthArgs {
        cmd_synth::SynthArgs {
            out: out.to_path_buf(),
            count: self.count,
            size: Some(self.size),
            config: None,
            preset: Some(self.anatomy.clone()),
            probe: Some(self.probe.clone()),
            classes: Some(self.classes.clone()),
            overlap: None,
            label_noise: None,
            ambiguous_fraction: None,
            seed: Some(self.seed),
            hermes: None,
            hermes_labeled: "10%".into(),
            overwrite: false,
        }
    }

    /// Checks every value without writing anything (so a bad one stops a grid before it starts).
    pub fn validate(&self) -> Result<()> {
        cmd_synth::resolve_config(&self.synth_args(Path::new("unused")))?;
        Ok(())
    }

    /// The number of classes the dataset will have.
    pub fn num_classes(&self) -> usize {
        if self.classes == "binary" {
            2
        } else {
            3
        }
    }

    /// Synthesises the phantom into `out` (staged: it appears complete or not at all).
    pub fn synth(&self, out: &Path) -> Result<()> {
        cmd_synth::synthesize(self.synth_args(out)).map(|_| ())
    }
}

/// The split of a comparison: `budget` labeled images, the `clean` protocol, seeded.
pub fn make_split(ds: &Dataset, budget: Budget, val: f64, test: f64, seed: u64) -> Result<Split> {
    let cfg = SplitConfig {
        labeled: budget,
        val_fraction: val,
        test_fraction: test,
        stratify: true,
        seed,
        protocol: SplitProtocol::Clean,
        ..SplitConfig::default()
    };
    Ok(split::make_split(ds, &cfg)?)
}

/// A cell's training configuration: `preset`, then method, seed and data, then `overrides` in
/// order (later ones win).
pub fn cell_config(
    preset: &str,
    method: &str,
    seed: u64,
    dataset: &Path,
    split: &Path,
    overrides: &[String],
) -> Result<TrainConfig> {
    let mut cfg = TrainConfig::preset(preset)?;
    cfg.set("method", method)?;
    cfg.seed = seed;
    cfg.data.dataset = dataset.to_path_buf();
    cfg.data.split = split.to_path_buf();
    for o in overrides {
        cfg.apply_override(o)?;
    }
    Ok(cfg)
}

/// Where a cell's evaluation lands; a cell is finished when its `summary.json` exists (written
/// last, by rename).
pub fn eval_dir(run: &Path) -> PathBuf {
    run.join("eval").join("test")
}

pub fn summary_path(run: &Path) -> PathBuf {
    eval_dir(run).join("summary.json")
}

/// Trains `cfg` into `run` (continuing from `checkpoints/last` when `resume`), evaluates the chosen
/// checkpoint on the test part with the config's protocol and writes `eval/test/`. Returns the
/// report and the seconds spent training.
pub fn train_and_eval(
    cfg: &TrainConfig,
    run: &Path,
    resume: bool,
    label: &str,
) -> Result<(EvalReport, f64)> {
    let t = Instant::now();
    cmd_train::run_training(cfg, run, resume, label)?;
    let secs = t.elapsed().as_secs_f64();
    let protocol = match cfg.protocol {
        Protocol::Clean => "clean",
        Protocol::Paper => "paper",
    };
    let report = cmd_train::evaluate_run(run, None, Part::Test, protocol)?;
    eval::write_report(&eval_dir(run), &report)?;
    Ok((report, secs))
}

/// Whether `run` holds a checkpoint a stopped training can continue from.
pub fn resumable(run: &Path) -> bool {
    run.join(trainer::CHECKPOINTS_DIR)
        .join("last")
        .join("state.json")
        .is_file()
}

/// The headline metrics of a table, in column order: (key in CSV, column header).
pub const METRICS: [(&str, &str); 6] = [
    ("dice", "Dice"),
    ("iou", "IoU"),
    ("hd95", "HD95"),
    ("accuracy", "accuracy"),
    ("f1", "F1 (macro)"),
    ("auc", "AUC"),
];

/// Where each of [`METRICS`] is in an evaluation's `summary.json`: the per-image means of the
/// tumour masks, and the classification figures.
const POINTERS: [&str; 6] = [
    "/seg/dice/mean",
    "/seg/jaccard/mean",
    "/seg/hd95/mean",
    "/accuracy",
    "/macro_f1",
    "/auc",
];

/// The [`METRICS`] of an evaluation summary (as JSON: the file `semisono eval` writes, or an
/// in-memory summary serialised); `None` where a value is undefined (no segmenter, no labels).
pub fn headline(summary: &serde_json::Value) -> [Option<f64>; 6] {
    POINTERS.map(|p| summary.pointer(p).and_then(|v| v.as_f64()))
}

pub fn headline_of(report: &EvalReport) -> [Option<f64>; 6] {
    headline(&serde_json::to_value(&report.summary).expect("summary serialises"))
}

/// A value with 3 decimals, `-` when undefined.
pub fn fmt3(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())
}

/// A budget as a table shows it: `5%` for ratios (rounded so that 0.07 is not `7.000000000000001%`),
/// the count otherwise.
pub fn budget_label(b: Budget) -> String {
    match b {
        Budget::Count(n) => n.to_string(),
        Budget::Ratio(r) => {
            let s = format!("{:.6}", r * 100.0);
            let s = s.trim_end_matches('0').trim_end_matches('.');
            format!("{s}%")
        }
    }
}

/// A budget as a directory name: `%` becomes `pct` (`5pct`, `60`).
pub fn budget_slug(b: Budget) -> String {
    budget_label(b).replace('%', "pct")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_labels_round_ratios() {
        assert_eq!(budget_label(Budget::Ratio(0.07)), "7%");
        assert_eq!(budget_label(Budget::Ratio(0.05)), "5%");
        assert_eq!(budget_label(Budget::Ratio(0.125)), "12.5%");
        assert_eq!(budget_label(Budget::Count(60)), "60");
        assert_eq!(budget_slug(Budget::Ratio(0.1)), "10pct");
    }

    #[test]
    fn headline_reads_summary_fields() {
        let v = serde_json::json!({
            "seg": {"dice": {"mean": 0.5}, "jaccard": {"mean": 0.25}, "hd95": {"mean": null}},
            "accuracy": 0.75, "macro_f1": 0.5, "auc": null
        });
        assert_eq!(
            headline(&v),
            [Some(0.5), Some(0.25), None, Some(0.75), Some(0.5), None]
        );
    }
}
