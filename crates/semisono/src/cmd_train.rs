//! `semisono train` and `semisono eval`: runs of any registered method, and their evaluation.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use semisono_data::split::{Part, Split};
use semisono_data::{Dataset, StagedDir};
use semisono_train::config::TrainConfig;
use semisono_train::eval::{self, EvalReport};
use semisono_train::trainer::{self, Progress, TrainSummary};

use crate::bad_input;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run configuration (TOML); it may name a `preset` and override its keys.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Built-in preset: quickstart-cpu or hermes-paper.
    #[arg(long)]
    pub preset: Option<String>,
    /// Method: supervised, hermes, patchcl, mlrpl, mean-teacher, fixmatch, cps (overrides the config's `method`).
    #[arg(long)]
    pub method: Option<String>,
    /// Dataset directory (overrides data.dataset).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Split file (overrides data.split).
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Single overrides, e.g. --set steps=500 --set optim.seg.lr=3e-4.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Run directory (config, split copy, metrics.jsonl, checkpoints/).
    #[arg(long)]
    pub run: PathBuf,
    /// Continue a stopped run from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
}

pub fn resolve_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg = match (&args.config, &args.preset) {
        (Some(path), _) => TrainConfig::from_file(path)?,
        (None, Some(name)) => TrainConfig::preset(name)?,
        (None, None) => TrainConfig::preset("quickstart-cpu")?,
    };
    if let Some(m) = &args.method {
        cfg.set("method", m)?;
    }
    if let Some(d) = &args.dataset {
        cfg.data.dataset = d.clone();
    }
    if let Some(s) = &args.split {
        cfg.data.split = s.clone();
    }
    for o in &args.overrides {
        cfg.apply_override(o)?;
    }
    if cfg.data.dataset.as_os_str().is_empty() || cfg.data.split.as_os_str().is_empty() {
        return Err(bad_input!(
            "no data: pass --dataset DIR and --split FILE (or set data.dataset / data.split in the config)"
        ));
    }
    Ok(cfg)
}

/// A one-line progress display: a bar on a terminal, a line every `every` steps otherwise.
pub struct ProgressLine {
    label: String,
    terminal: bool,
    every: u64,
}

impl ProgressLine {
    pub fn new(label: &str, every: u64) -> Self {
        ProgressLine {
            label: label.to_string(),
            terminal: std::io::stderr().is_terminal(),
            every: every.max(1),
        }
    }

    pub fn update(&mut self, p: &Progress) {
        let eval = p.eval.as_ref();
        if !self.terminal
            && !p.step.is_multiple_of(self.every)
            && eval.is_none()
            && p.step != p.total_steps
        {
            return;
        }
        let width = 24usize;
        let done = (p.step as f64 / p.total_steps.max(1) as f64).min(1.0);
        let filled = (done * width as f64).round() as usize;
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
        let losses: Vec<String> = p
            .losses
            .losses
            .iter()
            .take(4)
            .map(|(n, v)| format!("{n} {v:.3}"))
            .collect();
        let eta = if p.rate > 0.0 {
            let secs = (p.total_steps.saturating_sub(p.step)) as f64 / p.rate;
            format!("{}:{:02}", secs as u64 / 60, secs as u64 % 60)
        } else {
            "-".into()
        };
        let mut line = format!(
            "{} [{bar}] {}/{} | {} | {:.2} it/s | ETA {eta}",
            self.label,
            p.step,
            p.total_steps,
            losses.join(", "),
            p.rate
        );
        if let Some((name, v)) = eval {
            line.push_str(&format!(" | val {name} {v:.4}"));
        }
        let mut err = std::io::stderr();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
            if eval.is_some() || p.step == p.total_steps {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}

pub fn run_training(
    cfg: &TrainConfig,
    run: &Path,
    resume: bool,
    label: &str,
) -> Result<TrainSummary> {
    if run.join(trainer::CHECKPOINTS_DIR).exists() && !resume {
        return Err(bad_input!(
            "{} already holds a run; pass --resume to continue it or choose another --run",
            run.display()
        ));
    }
    let mut line = ProgressLine::new(label, cfg.log_every.max(1));
    let summary = trainer::train(cfg, run, resume, &mut |p| line.update(p))?;
    Ok(summary)
}

pub fn run_train(args: TrainArgs) -> Result<()> {
    let cfg = resolve_config(&args)?;
    let s = run_training(&cfg, &args.run, args.resume, &cfg.method)?;
    println!(
        "trained {} to step {}/{} in {:.0} s ({:.2} it/s); best {} = {} at step {}; run: {}",
        cfg.method,
        s.last_step,
        s.total_steps,
        s.seconds,
        s.rate,
        s.best_metric.as_deref().unwrap_or("-"),
        s.best_value
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "-".into()),
        s.best_step
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into()),
        args.run.display()
    );
    println!(
        "next: semisono eval --run {} (test split, best-on-val checkpoint)",
        args.run.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directory from `semisono train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Checkpoint: best (chosen on val; default when present) or last.
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Split part to evaluate: test (default), val, labeled, unlabeled.
    #[arg(long, default_value = "test")]
    pub part: String,
    /// Protocol: clean (per image, native resolution) or paper (the Hermes code's protocol).
    #[arg(long, default_value = "clean")]
    pub protocol: String,
    /// Output folder for per_image.csv and summary.json (default: <run>/eval/<part>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the output folder if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn evaluate_run(
    run: &Path,
    checkpoint: Option<&str>,
    part: Part,
    protocol: &str,
) -> Result<EvalReport> {
    if !run.join(trainer::CONFIG_FILE).is_file() {
        return Err(bad_input!(
            "{} is not a run directory (no {}); train one with `semisono train`",
            run.display(),
            trainer::CONFIG_FILE
        ));
    }
    let cfg = TrainConfig::from_file(&run.join(trainer::CONFIG_FILE))?;
    let ds = Dataset::open(&cfg.data.dataset)?;
    let split = Split::load(&run.join(trainer::SPLIT_FILE))?;
    split.verify(&ds)?;
    let protocol = crate::cmd_synth::parse_named("protocol", protocol, &["clean", "paper"])?;
    Ok(eval::evaluate(
        run, checkpoint, &ds, &split, part, protocol,
    )?)
}

pub fn parse_part(text: &str) -> Result<Part> {
    crate::cmd_synth::parse_named("part", text, &["test", "val", "labeled", "unlabeled"])
}

pub fn run_eval(args: EvalArgs) -> Result<()> {
    let part = parse_part(&args.part)?;
    let report = evaluate_run(&args.run, args.checkpoint.as_deref(), part, &args.protocol)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join("eval").join(&args.part));
    let staged = StagedDir::create(&out, args.overwrite)?;
    eval::write_report(staged.path(), &report)?;
    let out = staged.commit()?;
    println!("{}", summary_line(&report));
    println!(
        "per-image: {}\nsummary: {}",
        out.join("per_image.csv").display(),
        out.join("summary.json").display()
    );
    Ok(())
}

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

pub fn summary_line(r: &EvalReport) -> String {
    let s = &r.summary;
    let seg = s.seg.as_ref();
    format!(
        "{} images of {}: dice {} iou {} hd95 {} | accuracy {} balanced {} auc {}",
        s.n_images,
        s.part,
        fmt(seg.and_then(|g| g.dice.mean)),
        fmt(seg.and_then(|g| g.jaccard.mean)),
        fmt(seg.and_then(|g| g.hd95.mean)),
        fmt(s.accuracy),
        fmt(s.balanced_accuracy),
        fmt(s.auc)
    )
}
