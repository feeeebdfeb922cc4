//! `semisono bench --train/--infer --conv-profile`: the time of every convolution shape and pass
//! over the measured repetitions (after warm-up), per repetition, with its GFLOP/s: which layers
//! of a preset's networks the step spends its time in.

use semisono_train::bench::conv_profile::{self, ConvPass};
use serde::{Deserialize, Serialize};

/// One (pass, shape) of the convolution profile, per measured repetition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConvProfileRow {
    pub pass: String,
    /// `N x Cin x H x W -> Cout, k3x3 s1 p1 (d2)`.
    pub shape: String,
    pub calls: f64,
    pub ms: f64,
    pub gflop_per_s: f64,
}

/// What was recorded, divided by the `reps` measured repetitions.
pub fn rows(reps: usize) -> Vec<ConvProfileRow> {
    let reps = reps.max(1) as f64;
    conv_profile::snapshot()
        .into_iter()
        .map(|e| {
            let g = e.geom;
            let flops = match e.pass {
                ConvPass::BiasGrad => 0.0,
                _ => g.flops() * e.calls as f64,
            };
            let dilation = if g.dilation == [1, 1] {
                String::new()
            } else {
                format!(" d{}", g.dilation[0])
            };
            ConvProfileRow {
                pass: e.pass.name().to_string(),
                shape: format!(
                    "{}x{}x{}x{} -> {}, k{}x{} s{} p{}{dilation}",
                    g.batch,
                    g.c_in,
                    g.h_in,
                    g.w_in,
                    g.c_out,
                    g.kernel[0],
                    g.kernel[1],
                    g.stride[0],
                    g.padding[0]
                ),
                calls: e.calls as f64 / reps,
                ms: e.seconds * 1e3 / reps,
                gflop_per_s: flops / e.seconds.max(1e-12) / 1e9,
            }
        })
        .collect()
}

/// Prints `rows` (the most time first) against the mean repetition `rep_s`.
pub fn print(case: &str, rows: &[ConvProfileRow], rep_s: f64, top: usize) {
    let total_ms: f64 = rows.iter().map(|r| r.ms).sum();
    println!(
        "\nconvolutions of {case}, per measured repetition: {total_ms:.0} ms in all ({:.0}% of the mean {:.0} ms; \
         convolutions with under 8 output channels run flex's own and are not listed)",
        100.0 * total_ms / (rep_s * 1e3),
        rep_s * 1e3
    );
    println!(
        "{:<12} {:<36} {:>6} {:>9} {:>6} {:>8}",
        "pass", "shape", "calls", "ms", "%", "GFLOP/s"
    );
    for r in rows.iter().take(top) {
        println!(
            "{:<12} {:<36} {:>6.1} {:>9.1} {:>6.1} {:>8.1}",
            r.pass,
            r.shape,
            r.calls,
            r.ms,
            100.0 * r.ms / (rep_s * 1e3),
            r.gflop_per_s
        );
    }
    if rows.len() > top {
        let rest: f64 = rows[top..].iter().map(|r| r.ms).sum();
        println!(
            "{:<12} {:<36} {:>6} {:>9.1}",
            "", "(the other rows)", "", rest
        );
    }
    let mut by_pass: Vec<(String, f64)> = Vec::new();
    for r in rows {
        match by_pass.iter_mut().find(|(p, _)| *p == r.pass) {
            Some((_, ms)) => *ms += r.ms,
            None => by_pass.push((r.pass.clone(), r.ms)),
        }
    }
    let sums: Vec<String> = by_pass
        .iter()
        .map(|(p, ms)| format!("{p} {ms:.0} ms"))
        .collect();
    println!("by pass: {}", sums.join(", "));
}
