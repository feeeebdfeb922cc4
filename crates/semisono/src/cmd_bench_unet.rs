//! `semisono bench --unet`: issue 5's reference network (U-Net on a ResNet-18 encoder, batch 8 x 3
//! x 128², pixel cross-entropy, Adam): training step, inference forward and ResNet-18 input-gradient
//! saliency, medians over the measured repetitions, each case in a child process of its own for its
//! peak memory. `bench/torch_unet.py` runs the same three in PyTorch and prints the ratios. With
//! `--conv-profile` each case also times its convolutions per shape and pass.

use anyhow::{Context, Result};
use semisono_train::bench::unet::{time_unet, UnetBenchOptions, UnetCase};
use semisono_train::bench::{conv_profile, mem, Timings};
use semisono_train::methods;
use serde::{Deserialize, Serialize};

use crate::bad_input;
use crate::cmd_bench::{
    cores, fmt_load, loadavg, mib, run_in_child, write_json, BenchArgs, Report, RESULT_TAG,
};
use crate::cmd_bench_profile::{self, ConvProfileRow};

/// What one case measured, as printed and as written to `--json` (the PyTorch script writes the
/// same fields).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnetCaseResult {
    pub case: String,
    pub framework: String,
    pub batch: usize,
    pub size: usize,
    pub threads: usize,
    pub warmup_s: Vec<f64>,
    pub measured_s: Vec<f64>,
    pub median_s: f64,
    pub mean_s: f64,
    pub min_s: f64,
    pub cores_used: Option<f64>,
    pub base_rss_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// With `--conv-profile`: the convolutions per shape and pass, per measured repetition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_profile: Option<Vec<ConvProfileRow>>,
}

fn options(args: &BenchArgs) -> UnetBenchOptions {
    UnetBenchOptions {
        batch: args.ops_batch,
        size: args.ops_size,
        warmup: args.warmup,
        reps: args.unet_reps,
        ..UnetBenchOptions::default()
    }
}

/// Runs the three cases, each in a child process, and prints the table.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.unet_reps == 0 || args.threads == Some(0) || args.ops_batch == 0 {
        return Err(bad_input!(
            "--unet-reps, --ops-batch and --threads must be >= 1"
        ));
    }
    if args.ops_size < 32 || !args.ops_size.is_multiple_of(32) {
        return Err(bad_input!(
            "--ops-size {}: the U-Net needs a multiple of 32 (e.g. 128)",
            args.ops_size
        ));
    }
    let load_start = loadavg();
    eprintln!(
        "bench --unet: {} core(s), load average {}; each case in its own process",
        cores(),
        fmt_load(load_start)
    );
    let mut child_args: Vec<String> = [
        ("--warmup", args.warmup),
        ("--unet-reps", args.unet_reps),
        ("--ops-batch", args.ops_batch),
        ("--ops-size", args.ops_size),
    ]
    .iter()
    .flat_map(|(flag, v)| [flag.to_string(), v.to_string()])
    .collect();
    if let Some(t) = args.threads {
        child_args.extend(["--threads".into(), t.to_string()]);
    }
    if args.conv_profile {
        child_args.push("--conv-profile".into());
    }
    let cases = UnetCase::ALL
        .into_iter()
        .map(|case| run_in_child(&format!("unet:{}", case.name()), &child_args))
        .collect::<Result<Vec<UnetCaseResult>>>()?;
    let report = Report::new(load_start, cases);
    println!(
        "\n{} build, {} core(s), conv kernel {}, {}, load average {} at start, {} at end\n\
         U-Net on ResNet-18 (saliency: ResNet-18), batch {} x 3 x {}², ms\n\
         {:<9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        report.profile,
        report.cores,
        report.conv_kernel,
        report.checkpointing_label(),
        fmt_load(report.loadavg_start),
        fmt_load(report.loadavg_end),
        args.ops_batch,
        args.ops_size,
        "case",
        "median",
        "mean",
        "min",
        "busy",
        "peak MiB",
        "base MiB"
    );
    let opt = |v: Option<f64>, digits: usize| v.map_or("n/a".into(), |v| format!("{v:.digits$}"));
    for r in &report.cases {
        println!(
            "{:<9} {:>9.1} {:>9.1} {:>9.1} {:>9} {:>9} {:>9}",
            r.case,
            r.median_s * 1e3,
            r.mean_s * 1e3,
            r.min_s * 1e3,
            opt(r.cores_used, 2),
            opt(r.peak_rss_mib, 0),
            opt(r.base_rss_mib, 0)
        );
    }
    for r in &report.cases {
        if let Some(rows) = &r.conv_profile {
            cmd_bench_profile::print(&format!("unet:{}", r.case), rows, r.mean_s, 25);
        }
    }
    write_json(args.json.as_deref(), &report)
}

/// One case in this (child) process; prints the result as one JSON line.
pub fn run_child(args: &BenchArgs, name: &str) -> Result<()> {
    let case = UnetCase::parse(name).ok_or_else(|| {
        bad_input!("--child unet:{name}: expected unet:train, unet:infer or unet:saliency")
    })?;
    let threads = args.threads.unwrap_or_else(cores);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("setting the compute thread count")?;
    let device = methods::default_device();
    let base_rss = mem::current_rss_bytes();
    let o = options(args);
    let label = format!("  unet:{name}");
    conv_profile::set_enabled(args.conv_profile);
    let timings: Timings = time_unet(case, &o, &device, |i, warm, secs| {
        let (what, k, n) = if warm {
            // Only the measured repetitions count.
            conv_profile::reset();
            ("warm-up", i + 1, o.warmup)
        } else {
            ("measured", i + 1 - o.warmup, o.reps)
        };
        eprintln!("{label} {what} {k}/{n}: {:.1} ms", secs * 1e3);
    });
    let result = UnetCaseResult {
        case: name.to_string(),
        framework: "semisono (Burn 0.22.1 flex)".into(),
        batch: o.batch,
        size: o.size,
        threads,
        median_s: timings.median(),
        mean_s: timings.mean(),
        min_s: timings.min(),
        cores_used: timings.cores_used(),
        warmup_s: timings.warmup_s,
        measured_s: timings.measured_s,
        base_rss_mib: mib(base_rss),
        peak_rss_mib: mib(mem::peak_rss_bytes()),
        conv_profile: args.conv_profile.then(|| cmd_bench_profile::rows(o.reps)),
    };
    println!("{RESULT_TAG}{}", serde_json::to_string(&result)?);
    Ok(())
}
