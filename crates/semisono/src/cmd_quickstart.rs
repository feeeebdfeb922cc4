//! `semisono quickstart`: phantom -> split (10% labels) -> train supervised and hermes -> eval on test ->
//! one table. The README's main command.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_train::eval::EvalReport;

use crate::cell::{self, PhantomSpec};
use crate::cmd_predict::{predict_inputs, Input, PredictOptions};
use crate::{cmd_split, cmd_train};

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

/// One row of the quickstart table: the headline metrics and the training time.
fn table_row(method: &str, r: &EvalReport, secs: f64) -> String {
    let cells: Vec<String> = cell::headline_of(r).into_iter().map(cell::fmt3).collect();
    format!("| {method} | {} | {secs:.0} |", cells.join(" | "))
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
    let budget = cmd_split::parse_budget(&args.labeled)?;
    std::fs::create_dir_all(&args.out)?;
    let dataset = args.out.join("phantom");
    PhantomSpec::quickstart(args.count, args.seed).synth(&dataset)?;
    let split_path = args.out.join("split.json");
    let ds = Dataset::open(&dataset)?;
    let split = cell::make_split(&ds, budget, 0.1, 0.2, args.seed)?;
    split.save(&split_path)?;
    println!("{}: {}", split_path.display(), split.summary(&ds));

    let mut table = String::from(
        "| method | Dice | IoU | HD95 (mm) | accuracy | F1 (macro) | AUC | train s |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for method in &args.methods {
        let cfg = cell::cell_config(
            "quickstart-cpu",
            method,
            args.seed,
            &dataset,
            &split_path,
            &args.overrides,
        )?;
        let run = args.out.join("runs").join(method);
        let (report, secs) = cell::train_and_eval(&cfg, &run, false, method)?;
        println!("{method}: {}", cmd_train::summary_line(&report));
        predict_test_images(&run, &ds, &split)?;
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
fn predict_test_images(run: &Path, ds: &Dataset, split: &Split) -> Result<()> {
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
