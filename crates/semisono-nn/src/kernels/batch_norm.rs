//! Batch-norm kernels on `[batch, channels, inner...]` f32 slices (NCHW and `[N, C]`), for
//! [`super::batch_norm_op`]. Burn's generic batch norm swaps batch and channels twice (two layout
//! copies) and runs about ten element-wise passes, each on one thread on flex; here the forward is
//! two read passes (mean, then variance) and one write, the backward one read pass (two sums) and
//! one write, all over every core. Sums run in 16 f32 lanes per run of `inner` values and add the
//! runs in f64, so a channel of 10⁶ values loses no more than a few ulps.

use rayon::prelude::*;

use super::collect_runs;

/// Shape of a `[batch, channels, inner...]` tensor: channel `c` of image `n` is the contiguous
/// run starting at `(n · channels + c) · inner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLayout {
    pub batch: usize,
    pub channels: usize,
    /// Values per image and channel (`H · W`; 1 for `[N, C]`).
    pub inner: usize,
}

impl ChannelLayout {
    /// The layout of a tensor of shape `dims` (rank ≥ 2).
    pub fn of(dims: &[usize]) -> Self {
        assert!(dims.len() >= 2, "batch norm needs [batch, channels, ...]");
        Self {
            batch: dims[0],
            channels: dims[1],
            inner: dims[2..].iter().product(),
        }
    }

    /// Values per channel over the batch.
    pub fn count(&self) -> usize {
        self.batch * self.inner
    }

    /// The runs of channel `c` in `values`, one per image.
    fn runs<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let Self {
            channels, inner, ..
        } = *self;
        (0..self.batch).map(move |n| &values[(n * channels + c) * inner..][..inner])
    }

    /// Per-channel sum of `f(a, b)` over the paired values of `a` and `b` (same layout).
    fn channel_sum(&self, a: &[f32], b: &[f32], c: usize, f: impl Fn(f32, f32) -> f32) -> f64 {
        self.runs(a, c)
            .zip(self.runs(b, c))
            .map(|(a, b)| lane_sum(a, b, &f))
            .sum()
    }

    /// Runs (one per image and channel) handed to one rayon task: about 16k values.
    fn runs_per_task(&self) -> usize {
        (1 << 14) / self.inner.max(1) + 1
    }
}

/// `Σ f(a[i], b[i])` in 16 f32 lanes (vectorised), the lanes added in f64.
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = (a_chunks.remainder().iter())
        .zip(b_chunks.remainder())
        .map(|(&x, &y)| f(x, y) as f64)
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(a).zip(b) {
            *lane += f(x, y);
        }
    }
    lanes.iter().map(|&l| l as f64).sum::<f64>() + tail
}

/// Per-channel mean and biased variance (what Burn's `batch_norm_train` returns), two passes.
pub fn statistics(layout: ChannelLayout, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let count = layout.count() as f64;
    (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            let mean = layout.channel_sum(x, x, c, |v, _| v) / count;
            let m = mean as f32;
            let var = layout.channel_sum(x, x, c, |v, _| (v - m) * (v - m)) / count;
            (m, var as f32)
        })
        .unzip()
}

/// `x · scale[c] + shift[c]`, the one write pass of every batch norm here.
pub fn channel_affine(layout: ChannelLayout, x: &[f32], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let inner = layout.inner.max(1);
    collect_runs(x.len(), inner, layout.runs_per_task(), |run| {
        let c = run % layout.channels;
        let (s, b) = (scale[c], shift[c]);
        x[run * inner..][..inner].iter().map(move |&x| x * s + b)
    })
}

/// The per-channel `scale = γ / √(var + ε)` and `shift = β − mean · scale` that normalise `x`.
pub fn normalizing_affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
) -> (Vec<f32>, Vec<f32>) {
    (0..gamma.len())
        .map(|c| {
            let scale = gamma[c] / (var[c] + epsilon).sqrt();
            (scale, beta[c] - mean[c] * scale)
        })
        .unzip()
}

/// Gradients of the training batch norm `y = (x − mean)/√(var + ε) · γ + β` (mean and var of the
/// batch itself) given `dy`: `(dx, dγ, dβ)`.
pub fn train_backward(
    layout: ChannelLayout,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let count = layout.count() as f32;
    // dβ = Σ dy, Σ dy·(x − mean) per channel.
    let (beta_grad, centred_dot): (Vec<f32>, Vec<f32>) = (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            let sum_dy = layout.channel_sum(dy, dy, c, |g, _| g);
            let dot = layout.channel_sum(x, dy, c, |v, g| (v - m) * g);
            (sum_dy as f32, dot as f32)
        })
        .unzip();
    // dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)) with x̂ = (x − mean)/σ, written as
    // a·dy + b·x + d per channel.
    let mut a = vec![0f32; layout.channels];
    let mut b = vec![0f32; layout.channels];
    let mut d = vec![0f32; layout.channels];
    let mut gamma_grad = vec![0f32; layout.channels];
    for c in 0..layout.channels {
        let inv_std = 1.0 / (var[c] + epsilon).sqrt();
        gamma_grad[c] = centred_dot[c] * inv_std;
        a[c] = gamma[c] * inv_std;
        b[c] = -a[c] * inv_std * inv_std * centred_dot[c] / count;
        d[c] = -a[c] * beta_grad[c] / count - b[c] * mean[c];
    }
    let inner = layout.inner.max(1);
    let dx = collect_runs(x.len(), inner, layout.runs_per_task(), |run| {
        let c = run % layout.channels;
        let (a, b, d) = (a[c], b[c], d[c]);
        let span = run * inner..(run + 1) * inner;
        (x[span.clone()].iter())
            .zip(&dy[span])
            .map(move |(&x, &g)| a * g + b * x + d)
    });
    (dx, gamma_grad, beta_grad)
}

/// Gradients of [`channel_affine`] given `dy`: `(dx, dscale, dshift)`.
pub fn affine_backward(
    layout: ChannelLayout,
    x: &[f32],
    dy: &[f32],
    scale: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (scale_grad, shift_grad): (Vec<f32>, Vec<f32>) = (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            let dot = layout.channel_sum(x, dy, c, |v, g| v * g);
            let sum = layout.channel_sum(dy, dy, c, |g, _| g);
            (dot as f32, sum as f32)
        })
        .unzip();
    let zeros = vec![0f32; layout.channels];
    let dx = channel_affine(layout, dy, scale, &zeros);
    (dx, scale_grad, shift_grad)
}
