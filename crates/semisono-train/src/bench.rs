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
/// `semisono bench --ops`: the time of each op of the issue-5 reference network (U-Net on a
/// ResNet-18 encoder: stem and stages 1-3 as our encoder uses them, the decoder of
/// `semisono_nn::nets::unet`), per distinct layer shape, at a given batch and input size.
///
/// Convolutions are timed three ways, each op alone, median over the repetitions: flex's own
/// forward and Burn's stock backward as it runs on flex (input gradient = a transposed conv, weight
/// gradient = a conv with batch and channels swapped; `semisono_nn::kernels::stock`, checked
/// against autodiff by the tests), and the GEMM kernels of `semisono_nn::kernels::conv2d` on one
/// thread and on `threads`. The kernels are timed on host buffers (as a backend op would run on
/// flex's storage), so no tensor conversion is in their time. BatchNorm (train mode), ReLU,
/// max-pool and bilinear ×2 are timed as forward, and forward + backward through autodiff on
/// `(y·g).sum()`. The repetitions of the variants are interleaved so load changes hit all alike.
pub mod ops {
    use std::time::Instant;

    use burn::nn::pool::MaxPool2dConfig;
    use burn::nn::{BatchNormConfig, PaddingConfig2d};
    use burn::tensor::activation::relu;
    use burn::tensor::{Device, Distribution, Tensor};
    use semisono_nn::kernels::{conv2d as gk, stock, Conv2dParams};
    use semisono_nn::nets::unet::upsample_bilinear;
    use serde::{Deserialize, Serialize};

    /// What to measure.
    #[derive(Clone, Debug)]
    pub struct OpsOptions {
        pub batch: usize,
        /// Input side; a multiple of 32.
        pub size: usize,
        pub warmup: usize,
        pub reps: usize,
        /// Threads of the GEMM kernels' multi-threaded column (flex's own ops use one).
        pub threads: usize,
    }

    /// One distinct convolution shape of the network.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct ConvShape {
        pub name: String,
        /// How often the U-Net runs it per forward (0: ResNet-18 stage 4, listed for the classifier).
        pub count: usize,
        /// Whether training needs its input gradient (not for the stem, whose input is the image).
        pub needs_x_grad: bool,
        pub c_in: usize,
        pub c_out: usize,
        pub h_in: usize,
        pub kernel: usize,
        pub stride: usize,
        pub padding: usize,
    }

    /// Median milliseconds of the three conv ops.
    #[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
    pub struct ConvTimes {
        pub fwd_ms: f64,
        pub x_grad_ms: f64,
        pub w_grad_ms: f64,
    }

    impl ConvTimes {
        /// Forward + the gradients training needs.
        pub fn train_ms(&self, needs_x_grad: bool) -> f64 {
            self.fwd_ms + self.w_grad_ms + if needs_x_grad { self.x_grad_ms } else { 0.0 }
        }
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct ConvRow {
        pub shape: ConvShape,
        pub h_out: usize,
        /// GFLOP of one forward (each gradient has the same).
        pub gflop: f64,
        pub stock: ConvTimes,
        pub gemm_1t: ConvTimes,
        pub gemm_nt: ConvTimes,
        /// Stock forward + backward through autodiff (both gradients, or only the weight's for the
        /// stem): a check that `stock` times what training runs.
        pub stock_autodiff_ms: f64,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct OtherRow {
        pub op: String,
        pub shape: [usize; 4],
        pub count: usize,
        pub fwd_ms: f64,
        pub fwd_bwd_ms: f64,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct OpsReport {
        pub batch: usize,
        pub size: usize,
        pub reps: usize,
        pub warmup: usize,
        pub threads: usize,
        pub conv: Vec<ConvRow>,
        pub other: Vec<OtherRow>,
    }

    impl OpsReport {
        /// Σ count × (forward + needed gradients) of the convolutions, ms: (stock, GEMM 1 thread,
        /// GEMM `threads`).
        pub fn conv_totals_ms(&self) -> (f64, f64, f64) {
            self.conv.iter().fold((0.0, 0.0, 0.0), |(a, b, c), r| {
                let n = r.shape.count as f64;
                let x = r.shape.needs_x_grad;
                (
                    a + n * r.stock.train_ms(x),
                    b + n * r.gemm_1t.train_ms(x),
                    c + n * r.gemm_nt.train_ms(x),
                )
            })
        }

        /// Σ count × forward + backward of the other ops, ms.
        pub fn other_total_ms(&self) -> f64 {
            self.other
                .iter()
                .map(|r| r.count as f64 * r.fwd_bwd_ms)
                .sum()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn shape(
        name: &str,
        count: usize,
        c_in: usize,
        c_out: usize,
        h_in: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> ConvShape {
        ConvShape {
            name: name.into(),
            count,
            needs_x_grad: true,
            c_in,
            c_out,
            h_in,
            kernel,
            stride,
            padding,
        }
    }

    /// The distinct convolutions of the reference U-Net at input side `s` (ResNet-18 stem and
    /// stages 1-3, decoder CB blocks with encoder channels 64, 64, 128, 256; 2 classes), and
    /// ResNet-18's stage 4 with count 0.
    pub fn unet_convs(s: usize) -> Vec<ConvShape> {
        let (s2, s4, s8, s16) = (s / 2, s / 4, s / 8, s / 16);
        let mut stem = shape("stem 7x7/2", 1, 3, 64, s, 7, 2, 3);
        stem.needs_x_grad = false;
        vec![
            stem,
            shape("layer1 3x3 (4) + dec (1)", 5, 64, 64, s4, 3, 1, 1),
            shape("layer2.0 3x3/2", 1, 64, 128, s4, 3, 2, 1),
            shape("layer2.0 down 1x1/2", 1, 64, 128, s4, 1, 2, 0),
            shape("layer2 3x3 (3) + dec (1)", 4, 128, 128, s8, 3, 1, 1),
            shape("layer3.0 3x3/2", 1, 128, 256, s8, 3, 2, 1),
            shape("layer3.0 down 1x1/2", 1, 128, 256, s8, 1, 2, 0),
            shape("layer3 3x3", 3, 256, 256, s16, 3, 1, 1),
            shape("dec up1 3x3", 1, 256, 256, s8, 3, 1, 1),
            shape("dec up1/fuse1 3x3", 2, 256, 128, s8, 3, 1, 1),
            shape("dec up2 3x3", 1, 128, 128, s4, 3, 1, 1),
            shape("dec up2/fuse2 3x3", 2, 128, 64, s4, 3, 1, 1),
            shape("dec up3/fuse3 3x3", 3, 64, 64, s2, 3, 1, 1),
            shape("dec fuse3 3x3", 1, 128, 64, s2, 3, 1, 1),
            shape("dec head 1x1", 1, 64, 2, s, 1, 1, 0),
            shape("layer4.0 3x3/2", 0, 256, 512, s16, 3, 2, 1),
            shape("layer4.0 down 1x1/2", 0, 256, 512, s16, 1, 2, 0),
            shape("layer4 3x3", 0, 512, 512, s / 32, 3, 1, 1),
        ]
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        v[v.len() / 2]
    }

    /// Runs each closure `warmup + reps` times, interleaved, and returns each one's median ms.
    fn interleaved(warmup: usize, reps: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
        let mut t = vec![Vec::with_capacity(reps); fs.len()];
        for rep in 0..warmup + reps {
            for (i, f) in fs.iter_mut().enumerate() {
                let start = Instant::now();
                f();
                if rep >= warmup {
                    t[i].push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        t.into_iter().map(median).collect()
    }

    fn random(shape: [usize; 4], dev: &Device) -> Tensor<4> {
        Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), dev)
    }

    fn host(t: &Tensor<4>) -> Vec<f32> {
        t.clone().try_into_vec_as::<f32>().expect("f32 tensor")
    }

    fn conv_row(c: &ConvShape, o: &OpsOptions, dev: &Device) -> ConvRow {
        let p = Conv2dParams::new(c.stride, c.padding);
        let xs = [o.batch, c.c_in, c.h_in, c.h_in];
        let ws = [c.c_out, c.c_in, c.kernel, c.kernel];
        let g = p.geom(xs, ws);
        let [ho, wo] = g.out_hw();
        let ys = [o.batch, c.c_out, ho, wo];
        let (x, w, dy) = (random(xs, dev), random(ws, dev), random(ys, dev));
        let (xh, wh, dyh) = (host(&x), host(&w), host(&dy));
        let ad = dev.clone().autodiff();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("rayon pool");
        let many = rayon::ThreadPoolBuilder::new()
            .num_threads(o.threads.max(1))
            .build()
            .expect("rayon pool");
        // The same values on the autodiff device, made before the clock starts.
        let xa0 = Tensor::<4>::from_data(x.to_data(), &ad);
        let wa0 = Tensor::<4>::from_data(w.to_data(), &ad);
        let dya = Tensor::<4>::from_data(dy.to_data(), &ad);
        let sink = |t: Tensor<4>| drop(std::hint::black_box(t));
        let mut fs: Vec<Box<dyn FnMut() + '_>> = vec![
            Box::new(|| sink(stock::forward(x.clone(), w.clone(), None, p))),
            Box::new(|| drop(one.install(|| gk::conv2d_forward(&g, &xh, &wh, None)))),
            Box::new(|| drop(many.install(|| gk::conv2d_forward(&g, &xh, &wh, None)))),
            Box::new(|| sink(stock::x_grad(xs, w.clone(), dy.clone(), p))),
            Box::new(|| drop(one.install(|| gk::conv2d_x_grad(&g, &wh, &dyh)))),
            Box::new(|| drop(many.install(|| gk::conv2d_x_grad(&g, &wh, &dyh)))),
            Box::new(|| sink(stock::w_grad(x.clone(), ws, dy.clone(), p))),
            Box::new(|| drop(one.install(|| gk::conv2d_w_grad(&g, &xh, &dyh)))),
            Box::new(|| drop(many.install(|| gk::conv2d_w_grad(&g, &xh, &dyh)))),
            Box::new(|| {
                let xa = if c.needs_x_grad {
                    xa0.clone().require_grad()
                } else {
                    xa0.clone()
                };
                let wa = wa0.clone().require_grad();
                let y = stock::forward(xa, wa, None, p);
                drop(std::hint::black_box((y * dya.clone()).sum().backward()));
            }),
        ];
        let mut refs: Vec<&mut dyn FnMut()> = fs.iter_mut().map(|f| &mut **f as _).collect();
        let t = interleaved(o.warmup, o.reps, &mut refs);
        let times = |i: usize| ConvTimes {
            fwd_ms: t[i],
            x_grad_ms: t[i + 3],
            w_grad_ms: t[i + 6],
        };
        ConvRow {
            shape: c.clone(),
            h_out: ho,
            gflop: g.flops() / 1e9,
            stock: times(0),
            gemm_1t: times(1),
            gemm_nt: times(2),
            stock_autodiff_ms: t[9],
        }
    }

    /// Forward and forward + backward (autodiff, `(y·g).sum()`) of `f` on an input of `shape`.
    fn other_row(
        op: &str,
        shape: [usize; 4],
        count: usize,
        o: &OpsOptions,
        dev: &Device,
        f: &dyn Fn(Tensor<4>) -> Tensor<4>,
    ) -> OtherRow {
        let ad = dev.clone().autodiff();
        let x = random(shape, &ad);
        let gy = f(x.clone()).detach();
        let mut fwd = || drop(std::hint::black_box(f(x.clone()).sum()));
        let mut both = || {
            let xg = x.clone().require_grad();
            drop(std::hint::black_box((f(xg) * gy.clone()).sum().backward()));
        };
        let t = interleaved(o.warmup, o.reps, &mut [&mut fwd, &mut both]);
        OtherRow {
            op: op.into(),
            shape,
            count,
            fwd_ms: t[0],
            fwd_bwd_ms: t[1],
        }
    }

    /// Times every op; `progress` is called with each finished row's name.
    pub fn run_ops(o: &OpsOptions, mut progress: impl FnMut(&str)) -> OpsReport {
        assert!(
            o.size >= 32 && o.size.is_multiple_of(32),
            "size must be a multiple of 32"
        );
        let dev = Device::flex();
        let convs = unet_convs(o.size);
        let mut conv = Vec::new();
        for c in &convs {
            conv.push(conv_row(c, o, &dev));
            progress(&c.name);
        }
        // BatchNorm + ReLU after every conv but the head, grouped by output shape.
        let mut bn: Vec<([usize; 4], usize)> = Vec::new();
        for r in &conv {
            if r.shape.name.contains("head") || r.shape.count == 0 {
                continue;
            }
            let s = [o.batch, r.shape.c_out, r.h_out, r.h_out];
            match bn.iter_mut().find(|(t, _)| *t == s) {
                Some((_, n)) => *n += r.shape.count,
                None => bn.push((s, r.shape.count)),
            }
        }
        let ad = dev.clone().autodiff();
        let mut other = Vec::new();
        for &(s, n) in &bn {
            let norm = BatchNormConfig::new(s[1]).init(&ad);
            other.push(other_row("batch_norm (train)", s, n, o, &dev, &|x| {
                norm.forward(x)
            }));
            other.push(other_row("relu", s, n, o, &dev, &relu));
            progress(&format!("batch_norm, relu {s:?}"));
        }
        let s = o.size;
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let pool_in = [o.batch, 64, s / 2, s / 2];
        other.push(other_row("max_pool 3x3/2", pool_in, 1, o, &dev, &|x| {
            pool.forward(x)
        }));
        for (c, h) in [(256, s / 16), (128, s / 8), (64, s / 4), (64, s / 2)] {
            let out = if h == s / 2 { s } else { 2 * h };
            other.push(other_row(
                "bilinear up (align_corners)",
                [o.batch, c, h, h],
                1,
                o,
                &dev,
                &move |x| upsample_bilinear(x, [out, out]),
            ));
        }
        progress("max_pool, interpolate");
        // Flex's matmul on stage 1's conv as a GEMM ([Cout, K] · [K, N·H·W]), count 0: what
        // flex's GEMM reaches on a well-shaped product of the same size.
        let k = 64 * 9;
        let l = o.batch * (s / 4) * (s / 4);
        let a = Tensor::<2>::random([64, k], Distribution::Uniform(-1.0, 1.0), &ad);
        other.push(other_row(
            "matmul [64,576]x[576,N*H*W]",
            [1, 1, k, l],
            0,
            o,
            &dev,
            &|x| a.clone().matmul(x.reshape([k, l])).reshape([1, 1, 64, l]),
        ));
        progress("matmul");
        OpsReport {
            batch: o.batch,
            size: o.size,
            reps: o.reps,
            warmup: o.warmup,
            threads: o.threads,
            conv,
            other,
        }
    }
}

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
