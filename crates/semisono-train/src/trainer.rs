//! The training loop (ARCHITECTURE §2, §4): one method, one run directory.
//!
//! Run directory:
//! * `config.toml` — the resolved configuration; `split.json` — a copy of the split;
//! * `metrics.jsonl` — one JSON object per logged step (`"kind": "train"`), per evaluation
//!   (`"kind": "eval"`) and for a stop on a non-finite loss (`"kind": "error"`);
//! * `checkpoints/last`, `checkpoints/best` — directories with the method's state (models,
//!   optimizer records) and `state.json` (step, best value). Each is written into
//!   `<name>.tmp-dir` and renamed into place, so a crash never leaves a half-written checkpoint.
//!
//! Evaluation runs on the **val** part every `eval_every` steps (0 = at the end of every epoch) and
//! at the last step, with the `clean` protocol of [`crate::eval`]; `best` is chosen by the mean
//! per-image tumour Dice when a segmenter is trained, else by accuracy.
//!
//! **Resume** continues from `checkpoints/last`. Batches are a pure function of (seed, step), the
//! device RNG (dropout) is reseeded from (seed, step) before every step, pixel-contrast sampling
//! seeds derive from (seed, step), and optimizer state is restored exactly, so on CPU a resumed run
//! ends with bit-identical weights to an uninterrupted one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::config::{Protocol, Task, TrainConfig};
use crate::error::{Result, TrainError};
use crate::eval::{evaluate_loader, EvalReport};
use crate::loader::{Loader, LoaderConfig};
use crate::methods::{self, step_seed, SslMethod, StepContext, StepLosses};

/// One training step as the caller's progress display sees it.
#[derive(Clone, Debug)]
pub struct Progress {
    pub step: u64,
    pub total_steps: u64,
    pub epoch: u64,
    pub losses: StepLosses,
    /// Steps per second since this session started (excluding evaluation and checkpoints).
    pub rate: f64,
    /// Set on steps that evaluated: (metric name, value).
    pub eval: Option<(String, f64)>,
}

/// What a finished (or stopped) session reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// The last step completed.
    pub last_step: u64,
    pub total_steps: u64,
    /// Steps run in this session.
    pub steps_this_session: u64,
    /// Model selection metric ("val_dice" or "val_accuracy"), its best value and step.
    pub best_metric: Option<String>,
    pub best_value: Option<f64>,
    pub best_step: Option<u64>,
    pub seconds: f64,
    /// Training steps per second (excluding evaluation and checkpoints).
    pub rate: f64,
}

/// Options beyond the configuration.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Continue from `checkpoints/last` of the run directory.
    pub resume: bool,
    /// Stop (with a `last` checkpoint) after this step, e.g. to split a run into sessions.
    pub stop_after: Option<u64>,
    /// Test hook: make the loss of this step NaN.
    #[doc(hidden)]
    pub inject_nan_at: Option<u64>,
}

/// What `checkpoints/<name>/state.json` holds besides the method's files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub method: String,
    pub step: u64,
    pub best_value: Option<f64>,
    pub best_step: Option<u64>,
}

pub const CONFIG_FILE: &str = "config.toml";
pub const SPLIT_FILE: &str = "split.json";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CHECKPOINTS_DIR: &str = "checkpoints";
const STATE_FILE: &str = "state.json";

/// Trains `cfg.method` into `run_dir` (see the module docs); `resume` continues from
/// `checkpoints/last`. `progress` is called after every step.
pub fn train(
    cfg: &TrainConfig,
    run_dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TrainSummary> {
    train_with(
        cfg,
        run_dir,
        &TrainOptions {
            resume,
            ..TrainOptions::default()
        },
        progress,
    )
}

/// [`train`] with every option.
pub fn train_with(
    cfg: &TrainConfig,
    run_dir: &Path,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TrainSummary> {
    let started = Instant::now();
    cfg.validate_with(methods::REGISTERED)?;
    for (key, p) in [
        ("data.dataset", &cfg.data.dataset),
        ("data.split", &cfg.data.split),
    ] {
        if p.as_os_str().is_empty() {
            return Err(TrainError::config(key, "no path given"));
        }
    }
    let ckpt_root = run_dir.join(CHECKPOINTS_DIR);
    let last_dir = ckpt_root.join("last");
    if !opts.resume && last_dir.exists() {
        return Err(TrainError::RunDir {
            path: run_dir.to_path_buf(),
            message: "already holds a run (checkpoints/last); resume it or choose a new directory"
                .into(),
        });
    }
    if opts.resume && !last_dir.join(STATE_FILE).is_file() {
        return Err(TrainError::RunDir {
            path: run_dir.to_path_buf(),
            message: "nothing to resume: checkpoints/last/state.json is missing".into(),
        });
    }
    // Inputs are checked before anything is written, so a bad dataset leaves no run directory.
    let dataset = Dataset::open(&cfg.data.dataset)?;
    crate::eval::check_dataset_fits(cfg, &dataset)?;
    let split = Split::load(&cfg.data.split)?;
    fs::create_dir_all(&ckpt_root).map_err(|e| TrainError::io(&ckpt_root, e))?;

    let toml = cfg.to_toml()?;
    let config_path = run_dir.join(CONFIG_FILE);
    if opts.resume {
        if let Ok(old) = fs::read_to_string(&config_path) {
            if old != toml {
                return Err(TrainError::RunDir {
                    path: config_path,
                    message: "the configuration differs from the run's; resume with the run's \
                              config.toml"
                        .into(),
                });
            }
        }
    }
    write_atomic(&config_path, toml.as_bytes())?;

    split.save(&run_dir.join(SPLIT_FILE))?;
    let loader = Loader::new(&dataset, &split, LoaderConfig::from_config(cfg))?;
    let plan = loader.epoch_plan(cfg.steps, cfg.protocol == Protocol::Paper);
    let total = plan.total_steps;

    let device = methods::default_device();
    let mut method = if opts.resume {
        create_for_checkpoint(cfg, &device)?
    } else {
        methods::create(cfg, &device)?
    };
    let mut state = CheckpointState {
        method: cfg.method.clone(),
        ..CheckpointState::default()
    };
    if opts.resume {
        state = read_state(&last_dir)?;
        method.load(&last_dir)?;
        truncate_metrics(&run_dir.join(METRICS_FILE), state.step)?;
    }
    let mut metrics = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join(METRICS_FILE))
        .map_err(|e| TrainError::io(&run_dir.join(METRICS_FILE), e))?;

    let first = state.step + 1;
    let last = opts.stop_after.map_or(total, |s| s.min(total));
    let best_metric = if cfg.task == Task::Classification {
        "val_accuracy"
    } else {
        "val_dice"
    };
    let mut train_secs = 0.0;
    let mut steps_done = 0u64;
    if first <= last {
        for batch in loader.train_batches(first, last) {
            let step = batch.step;
            let t0 = Instant::now();
            let one_graph_at_a_time = methods::exclusive();
            device.seed(step_seed(cfg.seed, step));
            let ctx = StepContext {
                inject_nan: opts.inject_nan_at == Some(step),
            };
            let result = method.step(&batch, &ctx);
            drop(one_graph_at_a_time);
            let losses = match result {
                Ok(l) => l,
                Err(e) => {
                    let line = serde_json::json!({
                        "kind": "error", "step": step, "message": e.to_string()
                    });
                    writeln!(metrics, "{line}").map_err(|e| TrainError::io(run_dir, e))?;
                    return Err(e);
                }
            };
            train_secs += t0.elapsed().as_secs_f64();
            steps_done += 1;
            let rate = steps_done as f64 / train_secs.max(1e-9);

            if cfg.log_every > 0 && (step % cfg.log_every == 0 || step == 1 || step == last) {
                let line = serde_json::json!({
                    "kind": "train", "step": step, "epoch": batch.epoch,
                    "losses": to_map(&losses.losses), "stats": to_map(&losses.stats), "rate": rate,
                });
                writeln!(metrics, "{line}").map_err(|e| TrainError::io(run_dir, e))?;
            }

            let eval_due = if cfg.eval_every > 0 {
                step % cfg.eval_every == 0
            } else {
                plan.ends_epoch(step)
            } || step == total;
            let mut eval_value = None;
            if eval_due && loader.part_len(Part::Val) > 0 {
                let report =
                    evaluate_loader(method.as_ref(), &loader, Part::Val, cfg, Protocol::Clean)?;
                let value = selection_value(&report, cfg.task);
                let line = serde_json::json!({
                    "kind": "eval", "step": step, "part": "val",
                    "metric": best_metric, "value": value,
                    "summary": &report.summary,
                });
                writeln!(metrics, "{line}").map_err(|e| TrainError::io(run_dir, e))?;
                if let Some(v) = value {
                    eval_value = Some((best_metric.to_string(), v));
                    if state.best_value.is_none_or(|b| v > b) {
                        state.best_value = Some(v);
                        state.best_step = Some(step);
                        state.step = step;
                        save_checkpoint(method.as_ref(), &state, &ckpt_root, "best")?;
                    }
                }
            }
            let ckpt_due = if cfg.checkpoint_every > 0 {
                step % cfg.checkpoint_every == 0
            } else {
                eval_due
            } || step == last;
            state.step = step;
            if ckpt_due {
                save_checkpoint(method.as_ref(), &state, &ckpt_root, "last")?;
            }
            metrics.flush().map_err(|e| TrainError::io(run_dir, e))?;
            progress(&Progress {
                step,
                total_steps: total,
                epoch: batch.epoch,
                losses,
                rate,
                eval: eval_value,
            });
        }
    }
    Ok(TrainSummary {
        last_step: state.step,
        total_steps: total,
        steps_this_session: steps_done,
        best_metric: state.best_value.map(|_| best_metric.to_string()),
        best_value: state.best_value,
        best_step: state.best_step,
        seconds: started.elapsed().as_secs_f64(),
        rate: steps_done as f64 / f64::max(train_secs, 1e-9),
    })
}

/// Model selection value: mean per-image tumour Dice with a segmenter, else accuracy.
fn selection_value(r: &EvalReport, task: Task) -> Option<f64> {
    match task {
        Task::Classification => r.summary.accuracy,
        _ => r.summary.seg.as_ref().and_then(|s| s.dice.mean),
    }
}

fn to_map(v: &[(&'static str, f64)]) -> serde_json::Map<String, serde_json::Value> {
    v.iter()
        .map(|&(k, x)| (k.to_string(), serde_json::json!(x)))
        .collect()
}

/// Writes `method`'s state and `state` into `root/<name>` through `root/<name>.tmp-dir`.
pub fn save_checkpoint(
    method: &dyn SslMethod,
    state: &CheckpointState,
    root: &Path,
    name: &str,
) -> Result<()> {
    let tmp = root.join(format!("{name}.tmp-dir"));
    let target = root.join(name);
    let old = root.join(format!("{name}.old-dir"));
    for p in [&tmp, &old] {
        if p.exists() {
            fs::remove_dir_all(p).map_err(|e| TrainError::io(p, e))?;
        }
    }
    fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    method.save(&tmp)?;
    let json = serde_json::to_vec_pretty(state).expect("state serialises");
    fs::write(tmp.join(STATE_FILE), json).map_err(|e| TrainError::io(&tmp, e))?;
    if target.exists() {
        fs::rename(&target, &old).map_err(|e| TrainError::io(&target, e))?;
    }
    fs::rename(&tmp, &target).map_err(|e| TrainError::io(&tmp, e))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    Ok(())
}

/// The `state.json` of a checkpoint directory.
pub fn read_state(dir: &Path) -> Result<CheckpointState> {
    let p = dir.join(STATE_FILE);
    let text = fs::read_to_string(&p).map_err(|e| TrainError::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::io(&p, e))
}

/// Loads the configuration of a run directory and its method with the weights of checkpoint
/// `name` (`"best"` or `"last"`; `None` = best if present, else last), for evaluation and
/// prediction.
pub fn load_run(run_dir: &Path, name: Option<&str>) -> Result<(TrainConfig, Box<dyn SslMethod>)> {
    let cfg = TrainConfig::from_file(&run_dir.join(CONFIG_FILE))?;
    let root = run_dir.join(CHECKPOINTS_DIR);
    let dir = match name {
        Some(n) => root.join(n),
        None if root.join("best").is_dir() => root.join("best"),
        None => root.join("last"),
    };
    if !dir.join(STATE_FILE).is_file() {
        return Err(TrainError::RunDir {
            path: dir,
            message: "no checkpoint here (state.json missing)".into(),
        });
    }
    let mut method = create_for_checkpoint(&cfg, &methods::default_device())?;
    method.load(&dir)?;
    Ok((cfg, method))
}

/// The method of a run whose weights come from a checkpoint: the pretrained weights files of
/// `model.*_pretrained` are not read (the checkpoint replaces them, and they need not exist any
/// more where the run is resumed, evaluated or used for prediction).
fn create_for_checkpoint(
    cfg: &TrainConfig,
    device: &burn::tensor::Device,
) -> Result<Box<dyn SslMethod>> {
    let mut cfg = cfg.clone();
    cfg.model.seg_pretrained = None;
    cfg.model.cls_pretrained = None;
    methods::create(&cfg, device)
}

/// Keeps the lines of `metrics.jsonl` up to `step` (those a resumed run will not write again).
fn truncate_metrics(path: &PathBuf, step: u64) -> Result<()> {
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(path, kept.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(|e| TrainError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}
