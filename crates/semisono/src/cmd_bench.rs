//! `semisono bench`: throughput figures of the pipeline's CPU stages (training and inference join when
//! the Burn crates land). Wall-clock medians over repeated runs; build with --release for real figures.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use semisono_metrics::seg::{Mask, SegEvaluator, Spacing};
use semisono_phantom::{PhantomConfig, ProbeChoice};

use crate::bad_input;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure: phantom, metrics, or all.
    #[arg(long, default_value = "all")]
    pub what: String,
    /// Image sides to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "128,256")]
    pub sizes: Vec<u32>,
    /// Repetitions (each a batch of images or mask pairs); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
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
    let (phantom, metrics) = match args.what.as_str() {
        "all" => (true, true),
        "phantom" => (true, false),
        "metrics" => (false, true),
        other => {
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
    Ok(())
}
