//! `semisono bench --ops`: the time of each op of the issue-5 reference network (U-Net on a
//! ResNet-18 encoder: stem and stages 1-3 as our encoder uses them, the decoder of
//! `semisono_nn::nets::unet`), per distinct layer shape, at a given batch and input size.
//!
//! Convolutions are timed three ways, each op alone, median over the repetitions: flex's own
//! forward and Burn's stock backward as it runs on flex (input gradient = a transposed conv, weight
//! gradient = a conv with batch and channels swapped; `semisono_nn::kernels::stock`, checked
//! against autodiff by the tests), and the GEMM kernels of `semisono_nn::kernels::conv2d` on one
//! thread and on `threads`. The kernels are timed on host buffers (as a backend op would run on
//! flex's storage), so no tensor conversion is in their time. BatchNorm (train mode; ours and
//! Burn's), ReLU, max-pool (ours and Burn's) and bilinear ×2 (ours; Burn's `interpolate` at the
//! largest size) are timed as forward, and forward + backward through autodiff on `(y·g).sum()`.
//! The repetitions of the variants are interleaved so load changes hit all alike.

use std::time::Instant;

use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use semisono_nn::kernels::activation_op::relu;
use semisono_nn::kernels::bilinear_op;
use semisono_nn::kernels::max_pool_op::max_pool2d;
use semisono_nn::kernels::{conv2d as gk, stock, Conv2dParams};
use semisono_nn::nets::batch_norm;
use semisono_nn::nets::unet::upsample_bilinear;
use serde::{Deserialize, Serialize};

use super::median;

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
            batch_norm(&norm, x)
        }));
        // Count 0: for comparison only, not in the step's total.
        other.push(other_row(
            "batch_norm (train, Burn's)",
            s,
            0,
            o,
            &dev,
            &|x| norm.forward(x),
        ));
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
        max_pool2d(&pool, x)
    }));
    other.push(other_row(
        "max_pool 3x3/2 (Burn's)",
        pool_in,
        0,
        o,
        &dev,
        &|x| pool.forward(x),
    ));
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
    other.push(other_row(
        "bilinear up (Burn's interpolate)",
        [o.batch, 64, s / 2, s / 2],
        0,
        o,
        &dev,
        &move |x| bilinear_op::reference(x, [s, s]),
    ));
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
