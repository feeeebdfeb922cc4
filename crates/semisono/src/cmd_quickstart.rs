//! `semisono quickstart`: phantom -> split (10% labels) -> train supervised and hermes -> eval on test ->
//! one table. The README's main command.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_train::config::TrainConfig;
use semisono_train::eval::{self, EvalReport};

use crate::cmd_predict::{predict_inputs, Input, PredictOptions};
use crate::{cmd_split, cmd_synth, cmd_train};

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Working directory for the dataset, split, runs and report.
    #[arg(long, default_value = "quickstart")]
    pub out: PathBuf,
    /// Phantom images to generate.
    #[arg(long, default_value_t = 400)]
    pub count: u64,
    /// Methods to train and compare, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "supervised,hermes")]
    pub methods: Vec<String>,
    /// Labeled budget of the split.
    #[arg(long, default_value = "10%")]
    pub labeled: String,
    /// Seed for the data, the split and the runs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Overrides of the quickstart-cpu preset, e.g. --set steps=100.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Start over if the working directory exists.
    #[arg(long)]
    pub overwrite: bool,
}

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())
}

fn table_row(method: &str, r: &EvalReport, secs: f64) -> String {
    let s = &r.summary;
    let seg = s.seg.as_ref();
    let f1 = s
        .cls
        .as_ref()
        .and_then(|c| c.macro_avg.as_ref().ok())
        .map(|p| p.f1);
    format!(
        "| {method} | {} | {} | {} | {} | {} | {} | {secs:.0} |",
        fmt(seg.and_then(|g| g.dice.mean)),
        fmt(seg.and_then(|g| g.jaccard.mean)),
        fmt(seg.and_then(|g| g.hd95.mean)),
        fmt(s.accuracy),
        fmt(f1),
        fmt(s.auc)
    )
}

pub fn run(args: QuickstartArgs) -> Result<()> {
    let started = Instant::now();
    if args.out.exists() {
        if !args.overwrite {
            return Err(crate::bad_input!(
                "{} already exists; pass --overwrite to start over or choose --out",
                args.out.display()
            ));
        }
        std::fs::remove_dir_all(&args.out)?;
    }
    std::fs::create_dir_all(&args.out)?;
    let dataset = args.out.join("phantom");
    cmd_synth::run(cmd_synth::SynthArgs {
        out: dataset.clone(),
        count: args.count,
        size: Some(128),
        config: None,
        preset: None,
        probe: Some("mixed".into()),
        classes: Some("binary".into()),
        overlap: None,
        label_noise: None,
        ambiguous_fraction: None,
        seed: Some(args.seed),
        hermes: None,
        hermes_labeled: "10%".into(),
        overwrite: false,
    })?;
    let split = args.out.join("split.json");
    cmd_split::run(cmd_split::SplitArgs {
        dataset: dataset.clone(),
        out: Some(split.clone()),
        labeled: args.labeled.clone(),
        val: 0.1,
        test: 0.2,
        seed: args.seed,
        protocol: "clean".into(),
        folds: None,
        no_stratify: false,
        verify: None,
        overwrite: false,
    })?;

    let mut table = String::from(
        "| method | Dice | IoU | HD95 (mm) | accuracy | F1 (macro) | AUC | train s |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for method in &args.methods {
        let mut cfg = TrainConfig::preset("quickstart-cpu")?;
        cfg.set("method", method)?;
        cfg.seed = args.seed;
        cfg.data.dataset = dataset.clone();
        cfg.data.split = split.clone();
        for o in &args.overrides {
            cfg.apply_override(o)?;
        }
        let run = args.out.join("runs").join(method);
        let t = Instant::now();
        cmd_train::run_training(&cfg, &run, false, method)?;
        let secs = t.elapsed().as_secs_f64();
        let report = cmd_train::evaluate_run(&run, None, Part::Test, "clean")?;
        let eval_dir = run.join("eval").join("test");
        std::fs::create_dir_all(&eval_dir)?;
        eval::write_report(&eval_dir, &report)?;
        println!("{method}: {}", cmd_train::summary_line(&report));
        predict_test_images(&run, &dataset, &split)?;
        let _ = writeln!(table, "{}", table_row(method, &report, secs));
    }
    let report_path = args.out.join("report.md");
    let text = format!(
        "# semisono quickstart\n\nPhantom ({} images, 128x128, binary), split {} labeled, seed {}; \
         preset quickstart-cpu; test split, best-on-val checkpoint, per-image mean at native resolution.\n\n{table}",
        args.count, args.labeled, args.seed
    );
    std::fs::write(&report_path, &text)?;
    println!("\n{table}");
    println!(
        "finished in {:.0} s. Report: {}; per-image metrics: {}/runs/<method>/eval/test/; \
         masks, overlays (yellow agree, red missed, green extra) and saliency maps: \
         {}/runs/<method>/predict/test/",
        started.elapsed().as_secs_f64(),
        report_path.display(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// Masks, overlays against the ground truth and saliency maps of the test images, for looking at.
fn predict_test_images(run: &Path, dataset: &Path, split: &Path) -> Result<()> {
    let ds = Dataset::open(dataset)?;
    let split = Split::load(split)?;
    let inputs: Vec<Input> = split
        .part(Part::Test)
        .iter()
        .filter_map(|id| ds.get(id))
        .map(|e| Input {
            id: e.id.clone(),
            path: ds.image_path(e),
            truth: ds.mask_path(e),
            spacing_mm: e.pixel_spacing_mm,
        })
        .collect();
    let opts = PredictOptions {
        checkpoint: None,
        crop_to_region: false,
        saliency: true,
        overwrite: true,
    };
    predict_inputs(run, &inputs, &run.join("predict").join("test"), &opts)?;
    Ok(())
}
