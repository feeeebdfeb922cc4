//! Timing of a method's training step and evaluation forward on synthetic batches, and the
//! process's resident-memory figures — the measuring side of `semisono bench --train / --infer`.
//!
//! Batches are built directly as [`TrainBatch`] / [`ImageBatch`] from a seeded generator before
//! the clock starts, so data loading and augmentation are not measured: a timed training step is
//! exactly [`SslMethod::step`](crate::methods::SslMethod::step) (forwards, pseudo-labels, losses,
//! one backward, both optimizer steps, and the host reads of the logged loss values), and a timed
//! inference is [`SslMethod::eval_forward`](crate::methods::SslMethod::eval_forward) with its
//! outputs read back to the host.
//!
//! Synthetic data: images are uniform noise in [0, 1) (gray, replicated to the configured
//! channels, as the loader does); the strong view is the weak view with a contrast change (the
//! loader's strong view is photometric only); each labeled image has one random elliptical lesion
//! mask and a random class label. Values do not change the amount of network work; they only
//! decide how many pseudo-labels pass the thresholds and so the size of the pixel-contrast anchor
//! set, which is small next to the networks.

use std::time::Instant;

use semisono_data::rng::Rng;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::Result;
use crate::loader::{ImageBatch, LabeledBatch, TrainBatch, UnlabeledBatch};
use crate::methods::{self, step_seed, StepContext, StepLosses};

use burn::tensor::Device;

/// Stream ids of the synthetic data, apart from the loader's.
const IMAGES: u64 = 0x4245_4E43_0000_0001;
const MASKS: u64 = 0x4245_4E43_0000_0002;

/// `n` gray noise images, replicated to `channels`, `size`×`size`.
pub fn synthetic_images(n: usize, channels: usize, size: usize, rng: &mut Rng) -> ImageBatch {
    let plane = size * size;
    let mut data = Vec::with_capacity(n * channels * plane);
    for _ in 0..n {
        let gray: Vec<f32> = (0..plane).map(|_| rng.uniform() as f32).collect();
        for _ in 0..channels {
            data.extend_from_slice(&gray);
        }
    }
    ImageBatch {
        n,
        channels,
        height: size,
        width: size,
        data,
    }
}

/// A pixel-aligned strong view: `weak` with its contrast raised by 30% about 0.5, clamped to [0, 1].
fn strong_of(weak: &ImageBatch) -> ImageBatch {
    ImageBatch {
        data: weak
            .data
            .iter()
            .map(|&v| ((v - 0.5) * 1.3 + 0.5).clamp(0.0, 1.0))
            .collect(),
        ..weak.clone()
    }
}

/// One random ellipse per image (centre in the middle half, radii 10–30% of the side), 0/1.
fn ellipse_masks(n: usize, size: usize, rng: &mut Rng) -> Vec<u8> {
    let s = size as f64;
    let mut masks = Vec::with_capacity(n * size * size);
    for _ in 0..n {
        let (cy, cx) = (rng.range(0.25, 0.75) * s, rng.range(0.25, 0.75) * s);
        let (ry, rx) = (rng.range(0.1, 0.3) * s, rng.range(0.1, 0.3) * s);
        for r in 0..size {
            for c in 0..size {
                let (dy, dx) = ((r as f64 + 0.5 - cy) / ry, (c as f64 + 0.5 - cx) / rx);
                masks.push(u8::from(dy * dy + dx * dx <= 1.0));
            }
        }
    }
    masks
}

/// A synthetic training batch with `cfg`'s batch sizes, image size and channels; a pure function of
/// (`seed`, `step`). The unlabeled part is present when `cfg.batch_unlabeled > 0`.
pub fn synthetic_train_batch(cfg: &TrainConfig, seed: u64, step: u64, epoch: u64) -> TrainBatch {
    let (size, channels) = (cfg.image_size as usize, cfg.model.in_channels);
    let mut img = Rng::derive(seed, IMAGES ^ step.wrapping_mul(0x9E37_79B9));
    let mut msk = Rng::derive(seed, MASKS ^ step.wrapping_mul(0x9E37_79B9));
    let nl = cfg.batch_labeled;
    let labels = (0..nl)
        .map(|_| msk.below(cfg.model.num_classes.max(1)) as i64)
        .collect();
    let labeled = LabeledBatch {
        ids: (0..nl).map(|i| format!("synthetic-l{step}-{i}")).collect(),
        images: synthetic_images(nl, channels, size, &mut img),
        masks: ellipse_masks(nl, size, &mut msk),
        has_mask: vec![true; nl],
        labels,
    };
    let unlabeled = (cfg.batch_unlabeled > 0).then(|| {
        let nu = cfg.batch_unlabeled;
        let weak = synthetic_images(nu, channels, size, &mut img);
        UnlabeledBatch {
            ids: (0..nu).map(|i| format!("synthetic-u{step}-{i}")).collect(),
            strong: strong_of(&weak),
            weak,
        }
    });
    TrainBatch {
        step,
        epoch,
        labeled,
        unlabeled,
    }
}

/// Seconds of the warm-up and of the measured repetitions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub warmup_s: Vec<f64>,
    pub measured_s: Vec<f64>,
    /// CPU seconds (user + system, all threads) of this process over the measured repetitions;
    /// `None` where `/proc/self/stat` is not available.
    pub measured_cpu_s: Option<f64>,
}

impl Timings {
    /// Cores kept busy on average during the measured repetitions (CPU seconds / wall seconds).
    pub fn cores_used(&self) -> Option<f64> {
        let wall: f64 = self.measured_s.iter().sum();
        self.measured_cpu_s.map(|cpu| cpu / wall)
    }

    /// Mean of the measured repetitions (NaN when there are none).
    pub fn mean(&self) -> f64 {
        self.measured_s.iter().sum::<f64>() / self.measured_s.len() as f64
    }

    /// Adds one repetition of `secs` wall seconds that started at process CPU time `cpu_start`.
    fn record(&mut self, warm: bool, secs: f64, cpu_start: Option<f64>) {
        if warm {
            self.warmup_s.push(secs);
            return;
        }
        self.measured_s.push(secs);
        let cpu = cpu_start.zip(mem::cpu_seconds()).map(|(a, b)| b - a);
        self.measured_cpu_s = match (self.measured_s.len(), self.measured_cpu_s, cpu) {
            (1, _, cpu) => cpu,
            (_, Some(total), Some(cpu)) => Some(total + cpu),
            _ => None,
        };
    }

    /// Median of the measured repetitions (the upper one of an even count; NaN when there are
    /// none): the figure least moved by a stray slow repetition.
    pub fn median(&self) -> f64 {
        median(self.measured_s.clone())
    }

    /// Fastest measured repetition (NaN when there are none).
    pub fn min(&self) -> f64 {
        self.measured_s
            .iter()
            .copied()
            .fold(f64::NAN, |m, v| if m.is_nan() { v } else { m.min(v) })
    }
}

/// How a training-step benchmark runs.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainBenchOptions {
    pub warmup: usize,
    pub steps: usize,
    /// Seed of the synthetic data (the networks are initialised from `cfg.seed`).
    pub data_seed: u64,
    /// Run the steps in an epoch where Hermes' contrastive terms are on (`contrast_after_epoch + 1`);
    /// off = epoch 0, where they are exactly 0 and not computed.
    pub contrast: bool,
}

/// What a training-step benchmark measured.
#[derive(Clone, Debug)]
pub struct TrainBench {
    pub timings: Timings,
    /// Seconds to build the method (networks and optimizers), not part of any step.
    pub build_s: f64,
    /// Loss terms and statistics of the last step (which terms were active).
    pub last: StepLosses,
    /// Global steps the repetitions ran as (their schedules: entropy threshold, ITC weight, LR).
    pub first_step: u64,
    pub epoch: u64,
}

/// The global steps of the repetitions: the last `n` steps of the schedule, so the ramped entropy
/// threshold is near ln K and nearly every pseudo-label is certain (the most work for the pixel
/// contrast), and the learning rate is still positive.
fn bench_steps(cfg: &TrainConfig, n: usize) -> impl Iterator<Item = u64> {
    let last = cfg.steps.max(n as u64);
    (last + 1 - n as u64)..=last
}

/// Builds `cfg.method` on `device` and times `warmup + steps` training steps, each on its own
/// synthetic batch (made before its clock starts). `on_step(index, warmup, seconds)` is called after
/// every step, for progress output.
pub fn time_train_steps(
    cfg: &TrainConfig,
    device: &Device,
    opts: &TrainBenchOptions,
    mut on_step: impl FnMut(usize, bool, f64),
) -> Result<TrainBench> {
    let t = Instant::now();
    let mut method = methods::create(cfg, device)?;
    let build_s = t.elapsed().as_secs_f64();
    let epoch = if opts.contrast {
        cfg.hermes.contrast_after_epoch + 1
    } else {
        0
    };
    let total = opts.warmup + opts.steps;
    let mut timings = Timings::default();
    let mut last = StepLosses::default();
    let mut first_step = 0;
    for (i, step) in bench_steps(cfg, total).enumerate() {
        if i == 0 {
            first_step = step;
        }
        let batch = synthetic_train_batch(cfg, opts.data_seed, step, epoch);
        // As the trainer does: dropout draws are a function of (seed, step).
        device.seed(step_seed(cfg.seed, step));
        let cpu = mem::cpu_seconds();
        let t = Instant::now();
        last = method.step(&batch, &StepContext::default())?;
        let secs = t.elapsed().as_secs_f64();
        let warm = i < opts.warmup;
        timings.record(warm, secs, cpu);
        on_step(i, warm, secs);
    }
    Ok(TrainBench {
        timings,
        build_s,
        last,
        first_step,
        epoch,
    })
}

/// Builds `cfg.method` on `device` and times `warmup + reps` evaluation forwards of one synthetic
/// batch of `batch` images (`cfg`'s size and channels), reading the probabilities back to the host.
pub fn time_eval_forward(
    cfg: &TrainConfig,
    device: &Device,
    batch: usize,
    warmup: usize,
    reps: usize,
    data_seed: u64,
    mut on_rep: impl FnMut(usize, bool, f64),
) -> Result<Timings> {
    let method = methods::create(cfg, device)?;
    let mut rng = Rng::derive(data_seed, IMAGES);
    let images = synthetic_images(
        batch,
        cfg.model.in_channels,
        cfg.image_size as usize,
        &mut rng,
    );
    let mut timings = Timings::default();
    for i in 0..warmup + reps {
        let cpu = mem::cpu_seconds();
        let t = Instant::now();
        let p = method.eval_forward(&images);
        let seg = p.seg_probs.map(|t| t.into_data());
        let cls = p.cls_probs.map(|t| t.into_data());
        std::hint::black_box((seg, cls));
        let secs = t.elapsed().as_secs_f64();
        let warm = i < warmup;
        timings.record(warm, secs, cpu);
        on_rep(i, warm, secs);
    }
    Ok(timings)
}

/// Resident memory and CPU time of this process, from `/proc/self` (Linux only; `None` elsewhere).
/// Median of `v` (the upper one of an even count; NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub mod ops;
pub mod unet;

/// What the 3x3 / stride-1 convolutions run in this process (e.g. "winograd 3x3 + direct (AVX-512)").
pub use semisono_nn::kernels::conv2d::conv_kernel_name;
/// Whether training on the default device recomputes memory-bound ops in the backward (gradient
/// checkpointing, see [`crate::methods::cpu_device`]).
pub fn gradient_checkpointing() -> bool {
    crate::methods::default_device()
        .gradient_checkpointing_strategy()
        .is_some_and(|s| s == burn::tensor::GradientCheckpointingStrategy::Balanced)
}

/// Time per convolution shape and pass (`bench --conv-profile`).
pub use semisono_nn::kernels::profile as conv_profile;

pub mod mem {
    /// User + system CPU seconds of this process, all threads (`/proc/self/stat` fields 14 and
    /// 15, in clock ticks of 1/100 s: Linux's `USER_HZ`).
    pub fn cpu_seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name, which may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (utime, stime): (u64, u64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
        Some((utime + stime) as f64 / 100.0)
    }

    fn status_kib(key: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse().ok()
        })
    }

    /// Peak resident set size (`VmHWM`) in bytes.
    pub fn peak_rss_bytes() -> Option<u64> {
        status_kib("VmHWM").map(|k| k * 1024)
    }

    /// Current resident set size (`VmRSS`) in bytes.
    pub fn current_rss_bytes() -> Option<u64> {
        status_kib("VmRSS").map(|k| k * 1024)
    }

    /// Resets the peak to the current resident size (writes `5` to `/proc/self/clear_refs`).
    pub fn reset_peak() -> std::io::Result<()> {
        std::fs::write("/proc/self/clear_refs", "5")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::default_device;

    fn tiny() -> TrainConfig {
        let mut cfg = TrainConfig::preset("quickstart-cpu").unwrap();
        cfg.image_size = 32;
        cfg.batch_labeled = 2;
        cfg.batch_unlabeled = 2;
        cfg.model.width_multiplier = 0.125;
        cfg.hermes.max_views = 4;
        cfg.steps = 10;
        cfg
    }

    #[test]
    fn synthetic_batch_has_the_configured_shapes_and_is_repeatable() {
        let cfg = tiny();
        let b = synthetic_train_batch(&cfg, 7, 3, 0);
        assert_eq!(b.labeled.images.shape(), [2, 1, 32, 32]);
        assert_eq!(b.labeled.masks.len(), 2 * 32 * 32);
        assert!(b.labeled.masks.contains(&1));
        let u = b.unlabeled.as_ref().unwrap();
        assert_eq!(u.strong.shape(), u.weak.shape());
        assert_eq!(b, synthetic_train_batch(&cfg, 7, 3, 0));
        assert_ne!(b, synthetic_train_batch(&cfg, 7, 4, 0));
    }

    #[test]
    fn one_hermes_step_and_one_inference_run_on_a_tiny_config() {
        let cfg = tiny();
        let device = default_device();
        let opts = TrainBenchOptions {
            warmup: 0,
            steps: 1,
            data_seed: 1,
            contrast: true,
        };
        let r = time_train_steps(&cfg, &device, &opts, |_, _, _| {}).unwrap();
        assert_eq!(r.timings.measured_s.len(), 1);
        assert!(r.timings.mean().is_finite() && r.timings.min() > 0.0);
        assert_eq!(
            (r.first_step, r.epoch),
            (10, cfg.hermes.contrast_after_epoch + 1)
        );
        assert!(r.last.get("seg_total").is_some() && r.last.get("cls_total").is_some());
        let t = time_eval_forward(&cfg, &device, 2, 1, 1, 1, |_, _, _| {}).unwrap();
        assert_eq!((t.warmup_s.len(), t.measured_s.len()), (1, 1));
        if cfg!(target_os = "linux") {
            assert!(mem::peak_rss_bytes().unwrap() >= mem::current_rss_bytes().unwrap() / 2);
            assert!(mem::cpu_seconds().unwrap() > 0.0);
            assert!(r.timings.cores_used().is_some());
        }
    }

    #[test]
    fn the_op_breakdown_runs_on_a_tiny_size_and_lists_every_layer() {
        let o = ops::OpsOptions {
            batch: 1,
            size: 32,
            warmup: 0,
            reps: 1,
            threads: 2,
        };
        let mut done = Vec::new();
        let r = ops::run_ops(&o, |name| done.push(name.to_string()));
        assert_eq!(r.conv.len(), ops::unet_convs(32).len());
        assert!(done.len() > r.conv.len());
        for c in &r.conv {
            for t in [c.stock, c.gemm_1t, c.gemm_nt] {
                assert!(
                    t.fwd_ms > 0.0 && t.x_grad_ms > 0.0 && t.w_grad_ms > 0.0,
                    "{c:?}"
                );
            }
            assert!(c.stock_autodiff_ms > 0.0);
        }
        // Stem 7x7/2 on 32x32 -> 16x16; the stage-4 rows are listed but not counted.
        assert_eq!(r.conv[0].h_out, 16);
        assert!(!r.conv[0].shape.needs_x_grad);
        assert_eq!(r.conv.iter().filter(|c| c.shape.count == 0).count(), 3);
        assert!(r.other.iter().all(|o| o.fwd_ms > 0.0 && o.fwd_bwd_ms > 0.0));
        let (a, b, c) = r.conv_totals_ms();
        assert!(a > 0.0 && b > 0.0 && c > 0.0 && r.other_total_ms() > 0.0);
    }
}
