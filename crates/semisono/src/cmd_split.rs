//! `semisono split`: labeled / unlabeled / val / test id lists, stored with each image's sha256.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use semisono_data::split::{self, Budget, Split, SplitConfig, SplitProtocol};
use semisono_data::Dataset;

use crate::bad_input;

#[derive(Args, Debug)]
pub struct SplitArgs {
    /// Dataset directory (from `semisono synth` or `semisono import`).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Output split file (JSON). Default: <dataset>/splits/seed<SEED>.json (k-fold: ..._fold<K>.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Labeled budget: a count ("60") or a ratio of the training pool ("10%" or "0.1").
    #[arg(long, default_value = "10%")]
    pub labeled: String,
    /// Fraction of the labelled images held out for validation (model selection).
    #[arg(long, default_value_t = 0.1)]
    pub val: f64,
    /// Fraction of the labelled images held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub test: f64,
    /// Seed for every random draw of the split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Protocol: clean (train/val/test) or hermes (70/30 per class, N/2 labeled per class, no val).
    #[arg(long, default_value = "clean")]
    pub protocol: String,
    /// Write K splits whose test parts are the K folds.
    #[arg(long)]
    pub folds: Option<usize>,
    /// Do not stratify by class.
    #[arg(long)]
    pub no_stratify: bool,
    /// Instead of splitting, check that an existing split file still matches the dataset.
    #[arg(long, conflicts_with_all = ["out", "folds"])]
    pub verify: Option<PathBuf>,
    /// Replace existing split files.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn parse_budget(text: &str) -> Result<Budget> {
    let t = text.trim();
    let bad = || {
        bad_input!("--labeled: {text:?} is not a count (\"60\") or a ratio (\"10%\" or \"0.1\")")
    };
    if let Some(p) = t.strip_suffix('%') {
        let v: f64 = p.trim().parse().map_err(|_| bad())?;
        return Ok(Budget::Ratio(v / 100.0));
    }
    if t.contains('.') {
        return Ok(Budget::Ratio(t.parse().map_err(|_| bad())?));
    }
    Ok(Budget::Count(t.parse().map_err(|_| bad())?))
}

fn print_summary(split: &Split, ds: &Dataset, path: &Path) {
    let s = split.summary(ds);
    println!("{}: {s}", path.display());
}

pub fn run(args: SplitArgs) -> Result<()> {
    let ds = Dataset::open(&args.dataset)?;
    if let Some(path) = &args.verify {
        let split = Split::load(path)?;
        split.verify(&ds)?;
        println!(
            "{}: matches {} (every id present, every sha256 unchanged)",
            path.display(),
            args.dataset.display()
        );
        print_summary(&split, &ds, path);
        return Ok(());
    }
    let protocol: SplitProtocol =
        crate::cmd_synth::parse_named("protocol", &args.protocol, &["clean", "hermes"])?;
    let cfg = SplitConfig {
        labeled: parse_budget(&args.labeled)?,
        val_fraction: args.val,
        test_fraction: args.test,
        stratify: !args.no_stratify,
        seed: args.seed,
        protocol,
        ..SplitConfig::default()
    };
    let splits = match args.folds {
        Some(k) => split::make_kfold(&ds, &cfg, k)?,
        None => vec![split::make_split(&ds, &cfg)?],
    };
    let base = args.out.clone().unwrap_or_else(|| {
        args.dataset
            .join("splits")
            .join(format!("seed{}.json", args.seed))
    });
    let paths: Vec<PathBuf> = if splits.len() == 1 {
        vec![base.clone()]
    } else {
        let stem = base
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        (0..splits.len())
            .map(|i| base.with_file_name(format!("{stem}_fold{i}.json")))
            .collect()
    };
    for p in &paths {
        if p.exists() && !args.overwrite {
            return Err(bad_input!(
                "{} already exists; pass --overwrite or choose --out",
                p.display()
            ));
        }
    }
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| bad_input!("cannot create {}: {e}", parent.display()))?;
    }
    for (split, path) in splits.iter().zip(&paths) {
        split.save(path)?;
        print_summary(split, &ds, path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        assert!(matches!(parse_budget("60").unwrap(), Budget::Count(60)));
        assert!(
            matches!(parse_budget("10%").unwrap(), Budget::Ratio(r) if (r - 0.1).abs() < 1e-12)
        );
        assert!(matches!(parse_budget("0.25").unwrap(), Budget::Ratio(r) if r == 0.25));
        assert!(parse_budget("ten").is_err());
    }
}
