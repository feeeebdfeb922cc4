//! `semisono bench`: throughput figures.
//!
//! * Pipeline stages (`--what phantom|metrics|all`, the default without `--train`/`--infer`):
//!   phantom images/s and metric time per mask pair, on one thread; wall-clock medians.
//! * `--train` / `--infer`: a method's training step (s/step, it/s) and evaluation forward
//!   (ms/image) on synthetic batches, per preset, with the peak resident memory. Each case runs in a
//!   child process of its own (this binary, re-run with a hidden `--child` flag), so its peak
//!   (`VmHWM`) is its own and not memory the allocator kept from an earlier case.
//!
//! * `--unet`: issue 5's reference network (U-Net on ResNet-18, batch 8 x 3 x 128²): training
//!   step, inference and saliency, medians (`cmd_bench_unet`; `bench/torch_unet.py` is the PyTorch
//!   side).
//! * `--ops`: a per-op breakdown of the issue-5 reference network (U-Net on a ResNet-18 encoder):
//!   conv forward / input gradient / weight gradient per distinct layer shape, flex's stock ops
//!   against the GEMM kernels of `semisono_nn::kernels`, and BatchNorm, ReLU, max-pool, bilinear
//!   up-sampling and a matmul, forward and forward + backward; medians, in this process.
//!
//! Build with --release for real figures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use semisono_metrics::seg::{Mask, SegEvaluator, Spacing};
use semisono_phantom::{PhantomConfig, ProbeChoice};
use semisono_train::bench::{self, conv_profile, mem, TrainBenchOptions};
use semisono_train::config::TrainConfig;
use semisono_train::methods;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bad_input;
use crate::cmd_bench_profile::{self, ConvProfileRow};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    semisono bench                                   phantom + metrics\n  \
    semisono bench --train --infer                   both presets, 1 warm-up + 3 steps\n  \
    semisono bench --train --preset quickstart-cpu --steps 20 --warmup 3\n  \
    semisono bench --train --infer --preset hermes-paper --set hermes.attention=false --json b.json\n  \
    semisono bench --ops --ops-reps 10 --threads 2 --json ops.json   per-op breakdown\n  \
    semisono bench --unet --threads 2 --json unet.json   reference U-Net step, inference, saliency")]
pub struct BenchArgs {
    /// Pipeline stages to measure: phantom, metrics, or all. Default: all, unless --train or
    /// --infer is given (then none).
    #[arg(long)]
    pub what: Option<String>,
    /// Image sides to measure (phantom, metrics), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "128,256")]
    pub sizes: Vec<u32>,
    /// Repetitions (phantom, metrics; each a batch of images or mask pairs); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,

    /// Time training steps of the presets' method on synthetic batches (no data loading).
    #[arg(long, help_heading = "Training and inference")]
    pub train: bool,
    /// Time inference (segmenter + classifier, eval mode) on a synthetic batch.
    #[arg(long, help_heading = "Training and inference")]
    pub infer: bool,
    /// Presets to measure, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "quickstart-cpu,hermes-paper",
        help_heading = "Training and inference"
    )]
    pub preset: Vec<String>,
    /// Overrides applied to every preset, e.g. --set hermes.attention=false.
    #[arg(
        long = "set",
        value_name = "KEY=VALUE",
        help_heading = "Training and inference"
    )]
    pub overrides: Vec<String>,
    /// Measured training steps per preset (the median is the figure; hermes-paper takes minutes
    /// per step on a laptop CPU: pass fewer there).
    #[arg(long, default_value_t = 10, help_heading = "Training and inference")]
    pub steps: usize,
    /// Untimed warm-up steps (and inference passes) before the measured ones.
    #[arg(long, default_value_t = 1, help_heading = "Training and inference")]
    pub warmup: usize,
    /// Measured inference passes per preset.
    #[arg(long, default_value_t = 5, help_heading = "Training and inference")]
    pub infer_reps: usize,
    /// Images per inference pass (default: the preset's batch_eval).
    #[arg(long, help_heading = "Training and inference")]
    pub infer_batch: Option<usize>,
    /// Compute threads (default: all cores).
    #[arg(long, help_heading = "Training and inference")]
    pub threads: Option<usize>,
    /// Run the steps in epoch 0, where Hermes' contrastive terms are off (default: in the first
    /// epoch where they are on).
    #[arg(long, help_heading = "Training and inference")]
    pub no_contrast: bool,
    /// Also write every figure to this JSON file.
    #[arg(long, help_heading = "Training and inference")]
    pub json: Option<PathBuf>,
    /// Issue 5's reference network, U-Net on a ResNet-18 encoder (batch --ops-batch x 3 x
    /// --ops-size²): training step (pixel CE, Adam), inference, and ResNet-18 input-gradient
    /// saliency; medians over --unet-reps after --warmup.
    #[arg(long, help_heading = "Reference U-Net")]
    pub unet: bool,
    /// Measured repetitions of each --unet case.
    #[arg(long, default_value_t = 10, help_heading = "Reference U-Net")]
    pub unet_reps: usize,
    /// Per-op breakdown of the reference U-Net (ResNet-18 encoder): conv forward, input and
    /// weight gradient per layer shape (stock flex against the GEMM kernels), BatchNorm, ReLU,
    /// max-pool, bilinear up-sampling, matmul.
    #[arg(long, help_heading = "Per-op breakdown")]
    pub ops: bool,
    /// Batch of the per-op breakdown and of --unet.
    #[arg(long, default_value_t = 8, help_heading = "Per-op breakdown")]
    pub ops_batch: usize,
    /// Input side of the per-op breakdown and of --unet (a multiple of 32).
    #[arg(long, default_value_t = 128, help_heading = "Per-op breakdown")]
    pub ops_size: usize,
    /// Measured repetitions per op (after --warmup untimed ones); the median is reported.
    #[arg(long, default_value_t = 10, help_heading = "Per-op breakdown")]
    pub ops_reps: usize,
    /// With --train / --infer / --unet: time every convolution shape and pass over the measured steps
    /// (forward, input and weight gradient; ms per step and GFLOP/s) and print the 25 largest.
    #[arg(long, help_heading = "Training and inference")]
    pub conv_profile: bool,
    /// Internal: run one case (`train:PRESET` or `infer:PRESET`) in this process and print its
    /// result as one JSON line.
    #[arg(long, hide = true)]
    pub child: Option<String>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `f` `repeats` times and returns the median seconds per call.
fn time_median(repeats: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: LUTs, allocations
    median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn bench_phantom(size: u32, repeats: usize) {
    const IMAGES: u64 = 64;
    for (probe, name) in [
        (ProbeChoice::Linear, "linear"),
        (ProbeChoice::Curvilinear, "curvilinear"),
    ] {
        let cfg = PhantomConfig {
            width: size,
            height: size,
            probe,
            ..PhantomConfig::default()
        };
        let mut start = 0;
        let secs = time_median(repeats, || {
            for i in 0..IMAGES {
                std::hint::black_box(semisono_phantom::generate(&cfg, start + i));
            }
            start += IMAGES;
        });
        println!(
            "phantom {size}x{size} {name:<12} one thread: {:>8.0} images/s ({:.3} ms/image)",
            IMAGES as f64 / secs,
            secs * 1e3 / IMAGES as f64
        );
    }
}

fn bench_metrics(size: u32, repeats: usize) {
    // Lesion masks of the phantom against copies shifted by 3 px: realistic shapes, non-trivial HD95.
    let cfg = PhantomConfig {
        width: size,
        height: size,
        ..PhantomConfig::default()
    };
    let n = size as usize;
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..64)
        .map(|i| semisono_phantom::generate(&cfg, i).mask)
        .filter(|m| m.iter().any(|&v| v != 0))
        .take(16)
        .map(|m| {
            let mut shifted = vec![0u8; m.len()];
            for r in 0..n {
                for c in 3..n {
                    shifted[r * n + c] = m[r * n + c - 3];
                }
            }
            (shifted, m)
        })
        .collect();
    let mut evaluator = SegEvaluator::new();
    let secs = time_median(repeats, || {
        for (pred, gt) in &pairs {
            let m = evaluator
                .evaluate(
                    Mask::new(pred, n, n).expect("mask"),
                    Mask::new(gt, n, n).expect("mask"),
                    Spacing::default(),
                )
                .expect("same shape");
            std::hint::black_box(m);
        }
    });
    println!(
        "metrics {size}x{size} all (Dice..HD95, ASSD) per pair: {:.3} ms ({} lesion pairs)",
        secs * 1e3 / pairs.len() as f64,
        pairs.len()
    );
}

pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(case) = &args.child {
        return run_child(&args, case);
    }
    if args.conv_profile && !(args.train || args.infer || args.unet) {
        return Err(bad_input!(
            "--conv-profile goes with --train, --infer or --unet"
        ));
    }
    if args.ops || args.unet {
        if args.train || args.infer || (args.ops && args.unet) {
            return Err(bad_input!(
                "--ops and --unet each run on their own: run --train / --infer separately"
            ));
        }
        return if args.ops {
            run_ops(&args)
        } else {
            crate::cmd_bench_unet::run(&args)
        };
    }
    let what = match (&args.what, args.train || args.infer) {
        (Some(w), _) => Some(w.as_str()),
        (None, false) => Some("all"),
        (None, true) => None,
    };
    let (phantom, metrics) = match what {
        None => (false, false),
        Some("all") => (true, true),
        Some("phantom") => (true, false),
        Some("metrics") => (false, true),
        Some(other) => {
            return Err(bad_input!(
                "--what {other:?}: valid values: all, phantom, metrics"
            ))
        }
    };
    if args.repeats == 0 || args.sizes.iter().any(|&s| !(32..=1024).contains(&s)) {
        return Err(bad_input!(
            "--repeats must be >= 1 and --sizes within 32..1024"
        ));
    }
    if cfg!(debug_assertions) {
        println!("note: debug build; use `cargo run --release -- bench` for real figures");
    }
    if phantom || metrics {
        // One thread, so figures are per core and comparable to single-threaded MedPy.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        pool.install(|| {
            for &size in &args.sizes {
                if phantom {
                    bench_phantom(size, args.repeats);
                }
                if metrics {
                    bench_metrics(size, args.repeats);
                }
            }
        });
    }
    if args.train || args.infer {
        run_cases(&args)?;
    }
    Ok(())
}

// ---- per-op breakdown ----

#[derive(Serialize)]
struct OpsJson<'a> {
    profile: &'static str,
    cores: usize,
    loadavg_start: Option<[f64; 3]>,
    loadavg_end: Option<[f64; 3]>,
    report: &'a bench::ops::OpsReport,
    /// Σ count × (forward + needed gradients) of the convolutions, ms.
    conv_total_stock_ms: f64,
    conv_total_gemm_1t_ms: f64,
    conv_total_gemm_nt_ms: f64,
    /// Σ count × (forward + backward) of the other ops, ms.
    other_total_ms: f64,
}

fn run_ops(args: &BenchArgs) -> Result<()> {
    if args.ops_reps == 0 || args.threads == Some(0) || args.ops_batch == 0 {
        return Err(bad_input!(
            "--ops-reps, --ops-batch and --threads must be >= 1"
        ));
    }
    if args.ops_size < 32 || !args.ops_size.is_multiple_of(32) {
        return Err(bad_input!("--ops-size must be a multiple of 32"));
    }
    if cfg!(debug_assertions) {
        println!("note: debug build; use a --release build for real figures");
    }
    let opts = bench::ops::OpsOptions {
        batch: args.ops_batch,
        size: args.ops_size,
        warmup: args.warmup,
        reps: args.ops_reps,
        threads: args.threads.unwrap_or_else(cores),
    };
    let load_start = loadavg();
    eprintln!(
        "bench --ops: batch {} x {}x{}, {} warm-up + {} reps, GEMM kernels on 1 and {} threads, load average {}",
        opts.batch,
        opts.size,
        opts.size,
        opts.warmup,
        opts.reps,
        opts.threads,
        fmt_load(load_start)
    );
    let report = bench::ops::run_ops(&opts, |name| eprintln!("bench --ops: {name} done"));
    let load_end = loadavg();
    print_ops(&report, load_start, load_end);
    if let Some(path) = &args.json {
        let (a, b, c) = report.conv_totals_ms();
        let json = OpsJson {
            profile: build_profile(),
            cores: cores(),
            loadavg_start: load_start,
            loadavg_end: load_end,
            report: &report,
            conv_total_stock_ms: a,
            conv_total_gemm_1t_ms: b,
            conv_total_gemm_nt_ms: c,
            other_total_ms: report.other_total_ms(),
        };
        write_json(Some(path), &json)?;
    }
    Ok(())
}

/// "debug" or "release", as recorded in every report.
pub(crate) fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

fn print_ops(r: &bench::ops::OpsReport, start: Option<[f64; 3]>, end: Option<[f64; 3]>) {
    let nt = r.threads;
    println!(
        "\n{} build, batch {} x {}x{}, median of {} reps after {} warm-up, load average {} at start, {} at end",
        build_profile(),
        r.batch,
        r.size,
        r.size,
        r.reps,
        r.warmup,
        fmt_load(start),
        fmt_load(end)
    );
    println!("\nConvolutions, ms (fwd / input grad / weight grad); stock = flex forward + Burn's generic backward; gemm = semisono_nn::kernels on 1 and {nt} threads");
    println!(
        "| layer | n | in -> out | GFLOP | stock fwd | stock dx | stock dW | gemm1 fwd | gemm1 dx | gemm1 dW | gemm{nt} fwd | gemm{nt} dx | gemm{nt} dW | stock autodiff f+b |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for c in &r.conv {
        let s = &c.shape;
        let dx = |v: f64| {
            if s.needs_x_grad {
                format!("{v:.1}")
            } else {
                format!("({v:.1})")
            }
        };
        println!(
            "| {} | {} | {}x{}² k{}/{} -> {}x{}² | {:.2} | {:.1} | {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {} | {:.1} | {:.1} |",
            s.name,
            s.count,
            s.c_in,
            s.h_in,
            s.kernel,
            s.stride,
            s.c_out,
            c.h_out,
            c.gflop,
            c.stock.fwd_ms,
            dx(c.stock.x_grad_ms),
            c.stock.w_grad_ms,
            c.gemm_1t.fwd_ms,
            dx(c.gemm_1t.x_grad_ms),
            c.gemm_1t.w_grad_ms,
            c.gemm_nt.fwd_ms,
            dx(c.gemm_nt.x_grad_ms),
            c.gemm_nt.w_grad_ms,
            c.stock_autodiff_ms,
        );
    }
    let sum = |f: &dyn Fn(&bench::ops::ConvRow) -> f64| -> f64 {
        r.conv.iter().map(|c| c.shape.count as f64 * f(c)).sum()
    };
    let dxs = |t: &bench::ops::ConvTimes, c: &bench::ops::ConvRow| {
        if c.shape.needs_x_grad {
            t.x_grad_ms
        } else {
            0.0
        }
    };
    println!(
        "| **U-Net total (n x, dx where needed)** | | | | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | |",
        sum(&|c| c.stock.fwd_ms),
        sum(&|c| dxs(&c.stock, c)),
        sum(&|c| c.stock.w_grad_ms),
        sum(&|c| c.gemm_1t.fwd_ms),
        sum(&|c| dxs(&c.gemm_1t, c)),
        sum(&|c| c.gemm_1t.w_grad_ms),
        sum(&|c| c.gemm_nt.fwd_ms),
        sum(&|c| dxs(&c.gemm_nt, c)),
        sum(&|c| c.gemm_nt.w_grad_ms),
    );
    let gfs = |t: &bench::ops::ConvTimes, c: &bench::ops::ConvRow| {
        let n = 1.0 + f64::from(u8::from(c.shape.needs_x_grad)) + 1.0;
        n * c.gflop / (t.train_ms(c.shape.needs_x_grad) / 1e3)
    };
    println!("\nGFLOP/s per layer (fwd + needed grads): layer | stock | gemm1 | gemm{nt}");
    for c in &r.conv {
        println!(
            "  {:<28} {:>6.1} {:>6.1} {:>6.1}",
            c.shape.name,
            gfs(&c.stock, c),
            gfs(&c.gemm_1t, c),
            gfs(&c.gemm_nt, c)
        );
    }
    println!("\nOther ops, ms (autodiff device; f+b = forward + backward of (y*g).sum())");
    println!("| op | n | input shape | fwd | f+b |");
    println!("|---|---|---|---|---|");
    for o in &r.other {
        println!(
            "| {} | {} | {:?} | {:.2} | {:.2} |",
            o.op, o.count, o.shape, o.fwd_ms, o.fwd_bwd_ms
        );
    }
    let (a, b, c) = r.conv_totals_ms();
    println!(
        "\nPer training step of the U-Net (sum of n x op, no optimizer, no loss, no cat):\n  \
         convolutions: stock {a:.0} ms, gemm 1 thread {b:.0} ms, gemm {nt} threads {c:.0} ms\n  \
         other ops (BN, ReLU, max-pool, bilinear, f+b): {:.0} ms",
        r.other_total_ms()
    );
}

// ---- training and inference ----

/// Prefix of the one stdout line a child prints with its result.
pub(crate) const RESULT_TAG: &str = "SEMISONO_BENCH_CASE ";

/// Seed of the synthetic batches (the networks are initialised from the preset's `seed`).
const DATA_SEED: u64 = 0xBE7C;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CaseKind {
    Train,
    Infer,
}

impl CaseKind {
    fn name(self) -> &'static str {
        match self {
            CaseKind::Train => "train",
            CaseKind::Infer => "infer",
        }
    }
}

/// Everything one case measured, as printed and as written to `--json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CaseResult {
    kind: CaseKind,
    preset: String,
    overrides: Vec<String>,
    method: String,
    seg_backbone: String,
    cls_backbone: String,
    width_multiplier: f64,
    image_size: u32,
    in_channels: usize,
    /// Training: labeled images per step (plus as many unlabeled, each a weak and a strong view).
    batch_labeled: usize,
    batch_unlabeled: usize,
    /// Inference: images per pass.
    infer_batch: usize,
    attention: bool,
    /// Training: whether the steps ran where Hermes' contrastive terms are on.
    contrast: bool,
    threads: usize,
    warmup_s: Vec<f64>,
    measured_s: Vec<f64>,
    mean_s: f64,
    /// Median of the measured repetitions (the figure to quote).
    median_s: f64,
    min_s: f64,
    /// Cores kept busy during the measured repetitions (process CPU seconds / wall seconds).
    cores_used: Option<f64>,
    /// Training: 1 / mean s per step.
    it_per_s: Option<f64>,
    /// Inference: mean and fastest pass divided by the images per pass.
    ms_per_image_mean: Option<f64>,
    ms_per_image_min: Option<f64>,
    /// Seconds to build the networks and optimizers (not in any timing).
    build_s: f64,
    /// Resident memory before the networks were built, and the process's peak (`VmHWM`), MiB.
    base_rss_mib: Option<f64>,
    peak_rss_mib: Option<f64>,
    /// Training: the global step of the first repetition and the epoch (they pick the schedules).
    first_step: u64,
    epoch: u64,
    /// Training: loss terms and statistics of the last step.
    last_step: Vec<(String, f64)>,
    loadavg_end: Option<[f64; 3]>,
    /// With --conv-profile: time per convolution shape and pass, per measured repetition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conv_profile: Option<Vec<ConvProfileRow>>,
}

/// What a run of child-process cases (`--train` / `--infer`, `--unet`) prints and writes to `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct Report<C> {
    pub profile: &'static str,
    pub cores: usize,
    /// What the stride-1 convolutions ran (the children inherit this process's CPU and env).
    pub conv_kernel: &'static str,
    /// Whether training recomputes memory-bound ops in the backward (`SEMISONO_CHECKPOINTING`).
    pub gradient_checkpointing: bool,
    pub loadavg_start: Option<[f64; 3]>,
    pub loadavg_end: Option<[f64; 3]>,
    pub cases: Vec<C>,
}

impl<C> Report<C> {
    /// "gradient checkpointing on" / "off", for the tables' first line.
    pub fn checkpointing_label(&self) -> &'static str {
        if self.gradient_checkpointing {
            "gradient checkpointing on"
        } else {
            "gradient checkpointing off"
        }
    }

    /// The report of `cases`, begun at load average `loadavg_start`, ending now.
    pub fn new(loadavg_start: Option<[f64; 3]>, cases: Vec<C>) -> Self {
        Self {
            profile: build_profile(),
            cores: cores(),
            conv_kernel: semisono_train::bench::conv_kernel_name(),
            gradient_checkpointing: bench::gradient_checkpointing(),
            loadavg_start,
            loadavg_end: loadavg(),
            cases,
        }
    }
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), as `uptime` prints them.
pub(crate) fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = s
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    v.try_into().ok()
}

pub(crate) fn fmt_load(l: Option<[f64; 3]>) -> String {
    l.map_or_else(
        || "n/a".into(),
        |[a, b, c]| format!("{a:.2}, {b:.2}, {c:.2}"),
    )
}

pub(crate) fn mib(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / (1024.0 * 1024.0))
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn resolve(preset: &str, overrides: &[String]) -> Result<TrainConfig> {
    let mut cfg = TrainConfig::preset(preset)?;
    for o in overrides {
        cfg.apply_override(o)?;
    }
    cfg.validate_with(methods::REGISTERED)?;
    Ok(cfg)
}

/// Runs every (preset, kind) case in its own child process and prints the tables.
fn run_cases(args: &BenchArgs) -> Result<()> {
    if args.steps == 0 || args.infer_reps == 0 || args.threads == Some(0) {
        return Err(bad_input!(
            "--steps, --infer-reps and --threads must be >= 1"
        ));
    }
    if args.infer_batch == Some(0) {
        return Err(bad_input!("--infer-batch must be >= 1"));
    }
    // Check every preset and override before spending minutes on the first case.
    for p in &args.preset {
        resolve(p, &args.overrides).with_context(|| format!("preset {p}"))?;
    }
    let kinds: Vec<CaseKind> = [(args.train, CaseKind::Train), (args.infer, CaseKind::Infer)]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
    let load_start = loadavg();
    eprintln!(
        "bench: {} core(s), load average {} (1, 5, 15 min); each case in its own process",
        cores(),
        fmt_load(load_start)
    );
    let mut results = Vec::new();
    for preset in &args.preset {
        for &kind in &kinds {
            let case = format!("{}:{preset}", kind.name());
            let mut child_args: Vec<String> = Vec::new();
            for o in &args.overrides {
                child_args.extend(["--set".into(), o.clone()]);
            }
            child_args.extend([
                "--steps".into(),
                args.steps.to_string(),
                "--warmup".into(),
                args.warmup.to_string(),
                "--infer-reps".into(),
                args.infer_reps.to_string(),
            ]);
            if let Some(b) = args.infer_batch {
                child_args.extend(["--infer-batch".into(), b.to_string()]);
            }
            if let Some(t) = args.threads {
                child_args.extend(["--threads".into(), t.to_string()]);
            }
            if args.no_contrast {
                child_args.push("--no-contrast".into());
            }
            if args.conv_profile {
                child_args.push("--conv-profile".into());
            }
            results.push(run_in_child::<CaseResult>(&case, &child_args)?);
        }
    }
    let report = Report::new(load_start, results);
    print_tables(&report);
    write_json(args.json.as_deref(), &report)
}

/// Runs `semisono bench --child CASE ARGS...` (this executable) and parses the result line it
/// prints; its progress goes to our stderr.
pub(crate) fn run_in_child<T: DeserializeOwned>(case: &str, args: &[String]) -> Result<T> {
    let exe = std::env::current_exe().context("locating this executable")?;
    eprintln!("bench: {case} ...");
    let out = Command::new(exe)
        .args(["bench", "--child", case])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {case} in a child process"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match (
        out.status.success(),
        stdout.lines().find_map(|l| l.strip_prefix(RESULT_TAG)),
    ) {
        (true, Some(json)) => serde_json::from_str(json)
            .with_context(|| format!("{case}: reading the child's result")),
        _ => anyhow::bail!("{case}: the child process failed ({})", out.status),
    }
}

/// Writes `report` to `path` as pretty JSON, if a path was given.
pub(crate) fn write_json(path: Option<&Path>, report: &impl Serialize) -> Result<()> {
    if let Some(path) = path {
        let mut f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(&mut f, report)?;
        writeln!(f)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn networks(r: &CaseResult) -> String {
    format!(
        "{} + {} x{}",
        r.seg_backbone, r.cls_backbone, r.width_multiplier
    )
}

/// "threads/cores kept busy", e.g. "2/0.94".
fn threads_busy(r: &CaseResult) -> String {
    format!("{}/{}", r.threads, opt_f(r.cores_used, 2))
}

fn opt_f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"))
}

/// Three significant digits (it/s spans 0.002 to 20).
fn sig3(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

fn print_tables(report: &Report<CaseResult>) {
    println!(
        "\n{} build, {} core(s), conv kernel {}, {}, load average {} at start, {} at end",
        report.profile,
        report.cores,
        report.conv_kernel,
        report.checkpointing_label(),
        fmt_load(report.loadavg_start),
        fmt_load(report.loadavg_end)
    );
    let train: Vec<&CaseResult> = report
        .cases
        .iter()
        .filter(|r| r.kind == CaseKind::Train)
        .collect();
    if !train.is_empty() {
        println!(
            "\ntraining step (synthetic batches; median, mean and min over the measured steps)\n\
             {:<16} {:<34} {:<17} {:>8} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8}",
            "preset",
            "networks",
            "batch",
            "thr/busy",
            "median s",
            "mean s",
            "min s",
            "it/s",
            "peak MB",
            "base MB"
        );
        for r in train {
            println!(
                "{:<16} {:<34} {:<17} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>8} {:>8}",
                r.preset,
                networks(r),
                format!(
                    "{}+{}u @{}² {}ch",
                    r.batch_labeled, r.batch_unlabeled, r.image_size, r.in_channels
                ),
                threads_busy(r),
                r.median_s,
                r.mean_s,
                r.min_s,
                sig3(r.it_per_s.unwrap_or(f64::NAN)),
                opt_f(r.peak_rss_mib, 0),
                opt_f(r.base_rss_mib, 0),
            );
            println!(
                "{:<16} steps {} (warm-up {}), epoch {}, attention {}, contrast {}; \
                 busy = CPU s / wall s",
                "",
                r.measured_s.len(),
                r.warmup_s.len(),
                r.epoch,
                if r.attention { "on" } else { "off" },
                if r.contrast { "on" } else { "off" },
            );
        }
    }
    let infer: Vec<&CaseResult> = report
        .cases
        .iter()
        .filter(|r| r.kind == CaseKind::Infer)
        .collect();
    if !infer.is_empty() {
        println!(
            "\ninference (segmenter + classifier, eval mode, probabilities read back)\n\
             {:<16} {:<34} {:<17} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
            "preset",
            "networks",
            "batch",
            "thr/busy",
            "median s",
            "mean s",
            "ms/img",
            "min ms",
            "peak MB",
            "base MB"
        );
        for r in infer {
            println!(
                "{:<16} {:<34} {:<17} {:>8} {:>9.3} {:>9.3} {:>9} {:>9} {:>8} {:>8}",
                r.preset,
                networks(r),
                format!("{} @{}² {}ch", r.infer_batch, r.image_size, r.in_channels),
                threads_busy(r),
                r.median_s,
                r.mean_s,
                opt_f(r.ms_per_image_mean, 1),
                opt_f(r.ms_per_image_min, 1),
                opt_f(r.peak_rss_mib, 0),
                opt_f(r.base_rss_mib, 0),
            );
        }
    }
    for r in &report.cases {
        if let Some(rows) = &r.conv_profile {
            let case = format!("{} {}", r.kind.name(), r.preset);
            cmd_bench_profile::print(&case, rows, r.mean_s, 25);
        }
    }
}

/// One case, in this (child) process: prints progress to stderr and the result as one JSON line.
fn run_child(args: &BenchArgs, case: &str) -> Result<()> {
    if let Some(name) = case.strip_prefix("unet:") {
        return crate::cmd_bench_unet::run_child(args, name);
    }
    let (kind, preset) = match case.split_once(':') {
        Some(("train", p)) => (CaseKind::Train, p),
        Some(("infer", p)) => (CaseKind::Infer, p),
        _ => {
            return Err(bad_input!(
                "--child {case:?}: expected train:PRESET or infer:PRESET"
            ))
        }
    };
    let cfg = resolve(preset, &args.overrides)?;
    let threads = args.threads.unwrap_or_else(cores);
    // A fresh process: the global pool is the one every Burn/gemm kernel runs on.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("setting the compute thread count")?;
    let device = methods::default_device();
    let base_rss = mem::current_rss_bytes();
    let label = format!("  {case}");
    let warmup = args.warmup;
    let measured = match kind {
        CaseKind::Train => args.steps,
        CaseKind::Infer => args.infer_reps,
    };
    conv_profile::set_enabled(args.conv_profile);
    let progress = |i: usize, warm: bool, secs: f64| {
        if warm {
            // Only the measured repetitions count.
            conv_profile::reset();
            eprintln!("{label} warm-up {}/{warmup}: {secs:.3} s", i + 1);
        } else {
            eprintln!(
                "{label} measured {}/{measured}: {secs:.3} s",
                i + 1 - warmup
            );
        }
    };
    let batch = args.infer_batch.unwrap_or(cfg.batch_eval);
    let t = Instant::now();
    let (timings, build_s, first_step, epoch, last_step) = match kind {
        CaseKind::Train => {
            let opts = TrainBenchOptions {
                warmup: args.warmup,
                steps: args.steps,
                data_seed: DATA_SEED,
                contrast: !args.no_contrast,
            };
            let r = bench::time_train_steps(&cfg, &device, &opts, progress)?;
            let last = r
                .last
                .losses
                .iter()
                .chain(&r.last.stats)
                .map(|&(n, v)| (n.to_string(), v))
                .collect();
            (r.timings, r.build_s, r.first_step, r.epoch, last)
        }
        CaseKind::Infer => {
            let timings = bench::time_eval_forward(
                &cfg,
                &device,
                batch,
                args.warmup,
                args.infer_reps,
                DATA_SEED,
                progress,
            )?;
            // Building is not timed separately here: the whole minus the passes.
            let passes: f64 = timings.warmup_s.iter().chain(&timings.measured_s).sum();
            let build_s = (t.elapsed().as_secs_f64() - passes).max(0.0);
            (timings, build_s, 0, 0, Vec::new())
        }
    };
    let (mean_s, median_s, min_s) = (timings.mean(), timings.median(), timings.min());
    let cores_used = timings.cores_used();
    let per_image = |s: f64| (kind == CaseKind::Infer).then(|| s * 1e3 / batch as f64);
    let result = CaseResult {
        kind,
        preset: preset.to_string(),
        overrides: args.overrides.clone(),
        method: cfg.method.clone(),
        seg_backbone: cfg.model.seg_backbone.clone(),
        cls_backbone: cfg.model.cls_backbone.clone(),
        width_multiplier: cfg.model.width_multiplier,
        image_size: cfg.image_size,
        in_channels: cfg.model.in_channels,
        batch_labeled: cfg.batch_labeled,
        batch_unlabeled: cfg.batch_unlabeled,
        infer_batch: batch,
        attention: cfg.hermes.attention,
        contrast: kind == CaseKind::Train && !args.no_contrast,
        threads,
        mean_s,
        median_s,
        min_s,
        cores_used,
        it_per_s: (kind == CaseKind::Train).then(|| 1.0 / mean_s),
        ms_per_image_mean: per_image(mean_s),
        ms_per_image_min: per_image(min_s),
        warmup_s: timings.warmup_s,
        measured_s: timings.measured_s,
        build_s,
        base_rss_mib: mib(base_rss),
        peak_rss_mib: mib(mem::peak_rss_bytes()),
        first_step,
        epoch,
        last_step,
        loadavg_end: loadavg(),
        conv_profile: args.conv_profile.then(|| cmd_bench_profile::rows(measured)),
    };
    println!("{RESULT_TAG}{}", serde_json::to_string(&result)?);
    Ok(())
}
